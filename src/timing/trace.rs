//! Replay of measured step durations. A trace is a CSV file with the header `worker,duration`
//! and one row per local step; worker w's steps take the durations of its rows, in file order.
//! When a worker has used all its rows it starts again from its first row (the trace is
//! treated as periodic), so a short trace can drive a long run; every worker 0..M−1 needs at
//! least one row. A line longer than [`MAX_LINE`] ends the reading with an error, so that a file
//! without line breaks (`/dev/zero`, a binary file) cannot fill the memory.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::spec::{Bound, check_bound};
use crate::error::{Error, Result};

/// The 1-based line of the record that the csv reader places at byte offset `byte` of the file
/// at `path`: the offset is where the reader started, before the blank lines it skipped.
fn line_at(path: &Path, byte: u64) -> usize {
    let text = std::fs::read(path).unwrap_or_default();
    let start = (byte as usize).min(text.len());
    let blank = text[start..].iter().take_while(|b| b.is_ascii_whitespace()).filter(|&&b| b == b'\n').count();
    1 + text[..start].iter().filter(|&&b| b == b'\n').count() + blank
}

/// Longest line a trace may have, in bytes (1 MiB; a `worker,duration` row has a few dozen).
pub const MAX_LINE: usize = 1 << 20;

/// A reader that fails once more than [`MAX_LINE`] bytes pass without a line break.
struct LineLimit<R> {
    inner: R,
    since_break: usize,
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        self.since_break = match chunk.iter().rposition(|&b| b == b'\n') {
            Some(last) => n - 1 - last,
            None => self.since_break + n,
        };
        if self.since_break > MAX_LINE {
            return Err(std::io::Error::other(format!("a line is longer than {MAX_LINE} bytes: not a trace CSV")));
        }
        Ok(n)
    }
}

/// Per-worker duration sequences read from a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The file it was read from.
    pub path: PathBuf,
    /// `durations[w]` is worker w's sequence.
    pub durations: Vec<Vec<f64>>,
}

impl Trace {
    /// Reads a trace for `workers` workers.
    pub fn read(path: &Path, workers: usize) -> Result<Trace> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let file = LineLimit { inner: file, since_break: 0 };
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(file);
        let bad = |reason: String| Error::bad_file(path, reason);
        let headers = reader.headers().map_err(|e| bad(format!("cannot read the header: {e}")))?.clone();
        let column = |name: &str| headers.iter().position(|h| h == name);
        for name in ["worker", "duration"] {
            if headers.iter().filter(|&h| h == name).count() > 1 {
                return Err(bad(format!("the header names the column '{name}' more than once")));
            }
        }
        let (Some(wcol), Some(dcol)) = (column("worker"), column("duration")) else {
            return Err(bad(format!(
                "expected the header 'worker,duration', found '{}'",
                headers.iter().collect::<Vec<_>>().join(",")
            )));
        };
        let per_worker = std::mem::size_of::<Vec<f64>>() as u128;
        crate::error::check_memory("trace workers (M)", workers, per_worker * workers as u128, "one list per worker")?;
        let mut durations = vec![Vec::new(); workers];
        for record in reader.records() {
            let record = record.map_err(|e| bad(format!("{e}")))?;
            // the csv reader skips blank lines without counting them, so the line is counted
            // from the record's byte offset (on the error path only)
            let line = || match record.position() {
                Some(p) => line_at(path, p.byte()),
                None => 0,
            };
            let field = |c: usize| record.get(c).unwrap_or("");
            let worker: usize = field(wcol)
                .parse()
                .map_err(|_| bad(format!("line {}: worker '{}' is not a whole number", line(), field(wcol))))?;
            if worker >= workers {
                return Err(bad(format!("line {}: worker {worker} is out of range for M = {workers}", line())));
            }
            let d: f64 = field(dcol)
                .parse()
                .map_err(|_| bad(format!("line {}: duration '{}' is not a number", line(), field(dcol))))?;
            if let Err(why) = check_bound(d, Bound::Positive) {
                return Err(bad(format!("line {}: duration {why}", line())));
            }
            durations[worker].push(d);
        }
        if let Some(w) = durations.iter().position(|d| d.is_empty()) {
            return Err(bad(format!("worker {w} has no rows (every worker 0..{} needs at least one)", workers - 1)));
        }
        Ok(Trace { path: path.to_path_buf(), durations })
    }

    /// Duration number `step` (0-based, wrapping) of worker `w`.
    #[inline]
    pub fn get(&self, w: usize, step: u64) -> f64 {
        let d = &self.durations[w];
        d[(step % d.len() as u64) as usize]
    }

    /// Mean of worker w's durations.
    pub fn mean(&self, w: usize) -> f64 {
        self.durations[w].iter().sum::<f64>() / self.durations[w].len() as f64
    }
}
