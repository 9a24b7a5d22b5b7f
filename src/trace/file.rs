//! Output files that are either complete or absent. A [`PendingFile`] writes to
//! `<name>.partial` next to the target and renames it into place only in [`PendingFile::finish`];
//! dropping it unfinished (an error, a panic) deletes the partial file. A process killed outright
//! leaves at most a `.partial` file, never one that looks complete.
//!
//! A target that is a symbolic link is written where the link points (the link stays). A target
//! that exists but is not a regular file — `/dev/stdout`, `/dev/null`, a named pipe — is written
//! to directly, as a stream: it cannot be renamed over, and a stream has no "complete" state. So
//! is anything under `/dev` or `/proc/self/fd` (`/dev/stdout` redirected to a regular file).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written; see the module docs.
#[derive(Debug)]
pub struct PendingFile {
    target: PathBuf,
    /// Where the rows go until `finish` (None: straight into a non-regular target).
    partial: Option<PathBuf>,
    writer: Option<BufWriter<File>>,
}

impl PendingFile {
    /// Starts writing `target` (creating its parent directory if needed).
    pub fn create(target: &Path) -> Result<PendingFile> {
        if target.is_dir() {
            return Err(Error::invalid("output file", target.display(), "is a directory"));
        }
        let is_link = std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink());
        // /dev/stdout and /dev/fd/N name an open file, which may be a regular file the shell
        // redirected to: replacing it would delete what else was written there
        let open_file = target.starts_with("/dev") || target.starts_with("/proc/self/fd");
        let target = match std::fs::metadata(target) {
            // a stream or device (possibly behind a link, as /dev/stdout is): write to it
            Ok(m) if !m.is_file() || open_file => {
                let file = open_stream(target).map_err(|e| Error::io(target, e))?;
                return Ok(PendingFile {
                    target: target.to_path_buf(),
                    partial: None,
                    writer: Some(BufWriter::new(file)),
                });
            }
            // a link to a regular file: replace the file it points to, not the link
            Ok(_) if is_link => std::fs::canonicalize(target).map_err(|e| Error::io(target, e))?,
            // a dangling link: create the file it names
            Err(_) if is_link => {
                let mut to = target.to_path_buf();
                for _ in 0..40 {
                    let Ok(next) = std::fs::read_link(&to) else { break };
                    to = to.parent().map_or(next.clone(), |dir| dir.join(&next));
                }
                to
            }
            _ => target.to_path_buf(),
        };
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dirs(dir)?;
        }
        let mut name = target
            .file_name()
            .ok_or_else(|| Error::invalid("output file", target.display(), "is not a file name"))?
            .to_os_string();
        name.push(".partial");
        let partial = target.with_file_name(name);
        let file = File::create(&partial).map_err(|e| Error::io(&target, e))?;
        Ok(PendingFile { target, partial: Some(partial), writer: Some(BufWriter::with_capacity(1 << 16, file)) })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Where the rows go until `finish` (None when the target is a stream written directly).
    pub fn partial_path(&self) -> Option<&Path> {
        self.partial.as_deref()
    }

    /// The writer (valid until `finish`).
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("PendingFile used after finish")
    }

    /// Flushes, syncs and renames the file into place; on failure the partial file is removed.
    pub fn finish(mut self) -> Result<PathBuf> {
        let mut writer = self.writer.take().expect("finish called twice");
        let done = (|| {
            writer.flush().map_err(|e| Error::io(&self.target, e))?;
            let file = writer.into_inner().map_err(|e| Error::io(&self.target, e.into_error()))?;
            let Some(partial) = &self.partial else { return Ok(()) };
            file.sync_all().map_err(|e| Error::io(&self.target, e))?;
            std::fs::rename(partial, &self.target).map_err(|e| Error::io(&self.target, e))
        })();
        if let (Err(_), Some(partial)) = (&done, &self.partial) {
            let _ = std::fs::remove_file(partial);
        }
        done.map(|()| self.target.clone())
    }

    /// Writes the whole content of a small file at once.
    pub fn write_all(target: &Path, bytes: &[u8]) -> Result<()> {
        let mut f = PendingFile::create(target)?;
        f.writer().write_all(bytes).map_err(|e| Error::io(target, e))?;
        f.finish().map(|_| ())
    }
}

/// Opens a stream target. The process's own stdout and stderr are duplicated, not reopened, so
/// that the rows share their file offset with what else the process prints there; other
/// targets are appended to, not truncated.
fn open_stream(target: &Path) -> std::io::Result<File> {
    use std::os::fd::AsFd;
    match target.to_str() {
        Some("/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1") => {
            Ok(File::from(std::io::stdout().as_fd().try_clone_to_owned()?))
        }
        Some("/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2") => {
            Ok(File::from(std::io::stderr().as_fd().try_clone_to_owned()?))
        }
        _ => File::options().append(true).open(target),
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.writer.take().is_some()
            && let Some(partial) = &self.partial
        {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// `create_dir_all(dir)`, with an error that names the part of `dir` that is a file when one is
/// (the system's own message, "File exists", does not say which).
pub fn create_dirs(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| match dir.ancestors().find(|a| a.exists()).filter(|a| !a.is_dir()) {
        Some(file) => {
            Error::invalid("output directory", dir.display(), format!("{} is not a directory", file.display()))
        }
        None => Error::invalid("output directory", dir.display(), format!("cannot be created: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_files_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.csv");
        {
            let mut f = PendingFile::create(&target).unwrap();
            f.writer().write_all(b"x,y\n").unwrap();
            assert!(dir.path().join("a.csv.partial").exists());
        }
        assert!(!target.exists());
        assert!(!dir.path().join("a.csv.partial").exists());
        let mut f = PendingFile::create(&target).unwrap();
        f.writer().write_all(b"x,y\n").unwrap();
        f.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x,y\n");
    }

    #[cfg(unix)]
    #[test]
    fn links_are_written_through_and_streams_directly() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink("real.csv", &link).unwrap();
        PendingFile::write_all(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        // /dev/null is no regular file: written to, not replaced
        PendingFile::write_all(Path::new("/dev/null"), b"x").unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
        assert!(!Path::new("/dev/null.partial").exists());
    }
}
