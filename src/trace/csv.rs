//! CSV sinks for `rounds.csv` and `events.csv`. Rows are streamed through a buffered writer into
//! a [`PendingFile`], so memory stays constant however long the run, and the file appears under
//! its final name only when the run completed.

use std::path::Path;

use super::file::PendingFile;
use super::{EventRecord, RoundRecord, Sink};
use crate::error::{Error, Result};

/// Streams rounds and/or events to CSV files.
#[derive(Debug, Default)]
pub struct CsvSink {
    rounds: Option<csv::Writer<PendingFileWriter>>,
    events: Option<csv::Writer<PendingFileWriter>>,
}

/// Adapter so that `csv::Writer` can own a [`PendingFile`].
#[derive(Debug)]
pub struct PendingFileWriter(PendingFile);

impl std::io::Write for PendingFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.writer().flush()
    }
}

fn open(path: &Path, header: &[&str]) -> Result<csv::Writer<PendingFileWriter>> {
    let mut w = csv::Writer::from_writer(PendingFileWriter(PendingFile::create(path)?));
    w.write_record(header).map_err(|e| csv_err(path, e))?;
    Ok(w)
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

/// Header of `rounds.csv`.
pub const ROUND_HEADER: [&str; 9] = [
    "round",
    "start",
    "end",
    "duration",
    "compute_end",
    "uploaders",
    "updates",
    "cancelled",
    "mean_updates_per_worker",
];

/// Header of `events.csv`.
pub const EVENT_HEADER: [&str; 5] = ["time", "worker", "round", "kind", "step"];

impl CsvSink {
    /// Opens the requested files (either may be None).
    pub fn create(rounds: Option<&Path>, events: Option<&Path>) -> Result<CsvSink> {
        Ok(CsvSink {
            rounds: rounds.map(|p| open(p, &ROUND_HEADER)).transpose()?,
            events: events.map(|p| open(p, &EVENT_HEADER)).transpose()?,
        })
    }

    /// Completes both files (renames them into place).
    pub fn finish(self) -> Result<()> {
        for w in [self.rounds, self.events].into_iter().flatten() {
            let inner = w
                .into_inner()
                .map_err(|e| Error::io("csv", std::io::Error::other(e.to_string())))?;
            inner.0.finish()?;
        }
        Ok(())
    }
}

impl Sink for CsvSink {
    fn wants_events(&self) -> bool {
        self.events.is_some()
    }

    fn event(&mut self, r: &EventRecord) -> Result<()> {
        if let Some(w) = &mut self.events {
            w.serialize((r.time, r.worker, r.round, r.kind.name(), r.step))
                .map_err(|e| csv_err(Path::new("events.csv"), e))?;
        }
        Ok(())
    }

    fn round(&mut self, r: &RoundRecord) -> Result<()> {
        if let Some(w) = &mut self.rounds {
            let per_worker =
                (!r.counts.is_empty()).then(|| r.updates as f64 / r.counts.len() as f64);
            w.serialize((
                r.round,
                r.start,
                r.end,
                r.duration(),
                r.compute_end,
                r.uploaders,
                r.updates,
                r.cancelled,
                per_worker,
            ))
            .map_err(|e| csv_err(Path::new("rounds.csv"), e))?;
        }
        Ok(())
    }
}
