//! The library's error type. Every variant names the bad value and where it came from, so the
//! binary can print one line and exit with code 2 for bad input ([`Error::exit_code`]).
//! Internal failures (a bug, an I/O error on a path the user did not name) are distinguished so
//! that they do not masquerade as user mistakes.

use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter value is out of its allowed range (K > M, a negative rate, NaN, ...).
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter, as the user spells it (`--wait`, `compute_time.mean`, ...).
        name: String,
        /// The offending value, as text.
        value: String,
        /// What the value must satisfy.
        reason: String,
    },
    /// A short spec string (distribution, profile, graph, ...) could not be parsed.
    #[error("cannot parse {what} '{input}': {reason}")]
    Parse {
        /// What kind of spec it was meant to be.
        what: String,
        /// The text that was given.
        input: String,
        /// Why it failed.
        reason: String,
    },
    /// A file the user named is malformed: bad format, truncated, wrong sizes.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the offset, line or field where known.
        reason: String,
    },
    /// A file or directory the user named cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration is inconsistent (unknown algorithm, missing section, conflicting keys).
    #[error("{0}")]
    Config(String),
    /// A run stopped early for a reason that is not the user's fault (NaN loss).
    #[error("{0}")]
    Stopped(String),
    /// The user interrupted the run (Ctrl-C); exit code 130.
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(name: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidParameter { name: name.into(), value: value.to_string(), reason: reason.into() }
    }

    /// Shorthand for [`Error::Parse`].
    pub fn parse(what: impl Into<String>, input: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Parse { what: what.into(), input: input.into(), reason: reason.into() }
    }

    /// Shorthand for [`Error::BadFile`].
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), reason: reason.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// The process exit code for this error: 2 for bad input, 130 for an interrupt, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted(_) => 130,
            Error::Stopped(_) => 1,
            _ => 2,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `value` as error messages show it: plain decimals, or scientific notation where the plain
/// form would run to dozens of digits (1e300, 1e-320).
pub fn shown(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && magnitude.is_finite() && !(1e-6..1e16).contains(&magnitude) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// Checks that a parameter is finite and strictly positive.
pub fn positive(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(name, shown(value), "must be a finite number > 0"))
    }
}

/// Checks that a parameter is finite and non-negative.
pub fn non_negative(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(name, shown(value), "must be a finite number >= 0"))
    }
}

/// Physical memory in bytes (Linux: `MemTotal` of /proc/meminfo; elsewhere unknown).
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Fails when a setup needs more than this machine's physical memory (`bytes`, estimated by the
/// caller; `how` says how), naming the value that asks for it: such a run could only abort on a
/// failed allocation. Passes where the memory size is unknown.
pub fn check_memory(name: &str, value: impl std::fmt::Display, bytes: u128, how: &str) -> Result<()> {
    match physical_memory() {
        Some(total) if bytes > total as u128 => {
            let gb = |b: f64| format!("{:.1} GB", b / 1e9);
            let why =
                format!("needs about {} of memory ({how}); this machine has {}", gb(bytes as f64), gb(total as f64));
            Err(Error::invalid(name, value, why))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_numbers_are_shown_short() {
        assert_eq!(shown(1e300), "1e300");
        assert_eq!(shown(-1e-320), "-1e-320");
        assert_eq!(shown(0.25), "0.25");
        assert_eq!(shown(0.0), "0");
        assert_eq!(shown(f64::NAN), "NaN");
        assert_eq!(positive("lr", 1e300).map_err(|e| e.to_string()), Ok(1e300));
        assert_eq!(positive("lr", -1e300).unwrap_err().to_string(), "invalid lr = -1e300: must be a finite number > 0");
    }
}
