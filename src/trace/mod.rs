//! Records of what a simulation did, and the sinks they go to. The engine emits an
//! [`EventRecord`] per step completion, cancellation, send and arrival; algorithms emit a
//! [`RoundRecord`] per server round (or per server update for asynchronous methods). A [`Sink`]
//! receives them: [`csv::CsvSink`] streams them to disk (a 10^7-event trace never sits in memory),
//! [`MemorySink`] keeps them for tests, [`NullSink`] drops them.

pub mod csv;
pub mod file;

use crate::error::Result;

/// What happened in an [`EventRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A local step finished.
    Step,
    /// A step in progress was cancelled.
    Cancel,
    /// A message was sent.
    Send,
    /// A message arrived.
    Arrive,
}

impl EventKind {
    /// The name written in `events.csv`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Step => "step",
            EventKind::Cancel => "cancel",
            EventKind::Send => "send",
            EventKind::Arrive => "arrive",
        }
    }
}

/// One engine event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    /// Simulated time.
    pub time: f64,
    /// The worker concerned (for messages: the worker end of the link).
    pub worker: usize,
    /// The epoch (round) the worker was in.
    pub round: u64,
    /// What happened.
    pub kind: EventKind,
    /// For steps and cancellations: the worker's step number within the round, from 1.
    /// For messages: the number of bytes.
    pub step: u64,
    /// For a message between two workers: the other worker (the sender, since `worker` is the
    /// receiver). None for messages to or from the server, steps and cancellations.
    pub peer: Option<usize>,
}

/// One server round (round-synchronous algorithms) or one server update (asynchronous ones).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoundRecord {
    /// Round index, from 0.
    pub round: u64,
    /// When the server broadcast the model (or made its previous update).
    pub start: f64,
    /// When the round's computation stopped (the K-th fastest worker finished U steps).
    pub compute_end: f64,
    /// When the server had everything it aggregates (after uploads).
    pub end: f64,
    /// Models the server sent out this round: one per participating worker in the
    /// round-synchronous algorithms; in the asynchronous family one per job started, so a worker
    /// restarted several times in a round counts each time (and the count can exceed M).
    pub participants: u32,
    /// Workers whose work enters the aggregate (uploaders |𝓜|, or contributors).
    pub uploaders: u32,
    /// Messages that reached the server in the round (one per uploader in round-synchronous
    /// algorithms; one per gradient in the asynchronous family).
    pub uploads: u32,
    /// Local steps completed in the round (Σ_m N_m); in training runs, the local steps of the
    /// models that enter the aggregate (see `experiment::drivers::count_aggregated`).
    pub updates: u64,
    /// Steps in progress that were cancelled when the round closed.
    pub cancelled: u32,
    /// Per-worker completed steps N_m (empty where the algorithm does not track them).
    pub counts: Vec<u32>,
}

impl RoundRecord {
    /// Wall-clock length of the round.
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// Where records go.
pub trait Sink {
    /// True when the sink wants per-event records (they cost time to build).
    fn wants_events(&self) -> bool {
        false
    }
    /// Receives one event.
    fn event(&mut self, _record: &EventRecord) -> Result<()> {
        Ok(())
    }
    /// Receives one round.
    fn round(&mut self, record: &RoundRecord) -> Result<()>;
}

/// Drops everything.
#[derive(Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn round(&mut self, _record: &RoundRecord) -> Result<()> {
        Ok(())
    }
}

/// Keeps everything in memory (for tests and small runs).
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Keep per-event records too.
    pub keep_events: bool,
    /// Events received.
    pub events: Vec<EventRecord>,
    /// Rounds received.
    pub rounds: Vec<RoundRecord>,
}

impl Sink for MemorySink {
    fn wants_events(&self) -> bool {
        self.keep_events
    }
    fn event(&mut self, record: &EventRecord) -> Result<()> {
        self.events.push(record.clone());
        Ok(())
    }
    fn round(&mut self, record: &RoundRecord) -> Result<()> {
        self.rounds.push(record.clone());
        Ok(())
    }
}

/// Sends every record to two sinks.
pub struct Tee<'a>(pub &'a mut dyn Sink, pub &'a mut dyn Sink);

impl Sink for Tee<'_> {
    fn wants_events(&self) -> bool {
        self.0.wants_events() || self.1.wants_events()
    }
    fn event(&mut self, record: &EventRecord) -> Result<()> {
        if self.0.wants_events() {
            self.0.event(record)?;
        }
        if self.1.wants_events() {
            self.1.event(record)?;
        }
        Ok(())
    }
    fn round(&mut self, record: &RoundRecord) -> Result<()> {
        self.0.round(record)?;
        self.1.round(record)
    }
}
