//! Output files that are either complete or absent. A [`PendingFile`] writes to
//! `<name>.partial` next to the target and renames it into place only in [`PendingFile::finish`];
//! dropping it unfinished (an error, a panic) deletes the partial file. A process killed outright
//! leaves at most a `.partial` file, never one that looks complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written; see the module docs.
#[derive(Debug)]
pub struct PendingFile {
    target: PathBuf,
    partial: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl PendingFile {
    /// Starts writing `target` (creating its parent directory if needed).
    pub fn create(target: &Path) -> Result<PendingFile> {
        if target.is_dir() {
            return Err(Error::invalid("output file", target.display(), "is a directory"));
        }
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut name = target
            .file_name()
            .ok_or_else(|| Error::invalid("output file", target.display(), "is not a file name"))?
            .to_os_string();
        name.push(".partial");
        let partial = target.with_file_name(name);
        let file = File::create(&partial).map_err(|e| Error::io(target, e))?;
        Ok(PendingFile { target: target.to_path_buf(), partial, writer: Some(BufWriter::with_capacity(1 << 16, file)) })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Where the rows go until `finish`.
    pub fn partial_path(&self) -> &Path {
        &self.partial
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
            file.sync_all().map_err(|e| Error::io(&self.target, e))?;
            std::fs::rename(&self.partial, &self.target).map_err(|e| Error::io(&self.target, e))
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&self.partial);
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

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
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
}
