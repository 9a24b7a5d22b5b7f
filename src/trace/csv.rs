//! CSV sinks for `rounds.csv` and `events.csv`. Rows are streamed through a buffered writer into
//! a [`PendingFile`], so memory stays constant however long the run, and the file appears under
//! its final name only when the run completed.

use std::path::Path;

use super::file::PendingFile;
use super::{EventRecord, RoundRecord, Sink};
use crate::error::{Error, Result};

/// Streams rounds and/or events to CSV files. With a label, every row starts with the
/// algorithm name and seed (one results directory holds several runs).
#[derive(Debug, Default)]
pub struct CsvSink {
    rounds: Option<csv::Writer<PendingFileWriter>>,
    events: Option<csv::Writer<PendingFileWriter>>,
    label: Option<(String, u64)>,
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

/// Header of `rounds.csv` (after the optional `algorithm,seed` label columns).
pub const ROUND_HEADER: [&str; 10] = [
    "round",
    "start",
    "end",
    "duration",
    "compute_end",
    "participants",
    "uploaders",
    "updates",
    "cancelled",
    "mean_updates_per_worker",
];

/// Header of `events.csv` (after the optional `algorithm,seed` label columns): `step` is the
/// worker's step number for steps and cancellations and the byte count for messages; `peer` is
/// the sending worker of a worker-to-worker message (`worker` is then the receiver), empty
/// otherwise.
pub const EVENT_HEADER: [&str; 6] = ["time", "worker", "round", "kind", "step", "peer"];

const LABEL_HEADER: [&str; 2] = ["algorithm", "seed"];

impl CsvSink {
    /// Opens the requested files (either may be None); `label` adds `algorithm,seed` columns.
    pub fn create(rounds: Option<&Path>, events: Option<&Path>, label: Option<(String, u64)>) -> Result<CsvSink> {
        let header = |cols: &[&'static str]| -> Vec<&'static str> {
            let mut h = if label.is_some() { LABEL_HEADER.to_vec() } else { Vec::new() };
            h.extend_from_slice(cols);
            h
        };
        Ok(CsvSink {
            rounds: rounds.map(|p| open(p, &header(&ROUND_HEADER))).transpose()?,
            events: events.map(|p| open(p, &header(&EVENT_HEADER))).transpose()?,
            label,
        })
    }

    /// Sets the label of the rows written from now on (same columns: it must have had one).
    pub fn relabel(&mut self, algorithm: &str, seed: u64) {
        assert!(self.label.is_some(), "relabel on an unlabelled sink");
        self.label = Some((algorithm.to_string(), seed));
    }

    /// The `.partial` files being written.
    pub fn partial_paths(&self) -> Vec<std::path::PathBuf> {
        [&self.rounds, &self.events]
            .into_iter()
            .flatten()
            .filter_map(|w| w.get_ref().0.partial_path().map(Path::to_path_buf))
            .collect()
    }

    /// Flushes buffered rows to the (partial) files.
    pub fn flush(&mut self) -> Result<()> {
        for w in [&mut self.rounds, &mut self.events].into_iter().flatten() {
            w.flush().map_err(|e| Error::io("csv", e))?;
        }
        Ok(())
    }

    /// Completes both files (renames them into place).
    pub fn finish(self) -> Result<()> {
        for w in [self.rounds, self.events].into_iter().flatten() {
            let inner = w.into_inner().map_err(|e| Error::io("csv", std::io::Error::other(e.to_string())))?;
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
            let row = (r.time, r.worker, r.round, r.kind.name(), r.step, r.peer);
            match &self.label {
                Some((a, seed)) => w.serialize((a, seed, row)),
                None => w.serialize(row),
            }
            .map_err(|e| csv_err(w.get_ref().0.path(), e))?;
        }
        Ok(())
    }

    fn round(&mut self, r: &RoundRecord) -> Result<()> {
        if let Some(w) = &mut self.rounds {
            let per_worker = (!r.counts.is_empty()).then(|| r.updates as f64 / r.counts.len() as f64);
            let row = (
                r.round,
                r.start,
                r.end,
                r.duration(),
                r.compute_end,
                r.participants,
                r.uploaders,
                r.updates,
                r.cancelled,
                per_worker,
            );
            match &self.label {
                Some((a, seed)) => w.serialize((a, seed, row)),
                None => w.serialize(row),
            }
            .map_err(|e| csv_err(w.get_ref().0.path(), e))?;
        }
        Ok(())
    }
}
