//! The discrete-event engine. It owns the clock, the event queue and the workers' random
//! streams; an [`Algorithm`] owns the decisions. The engine pops the earliest event, hands it to
//! the algorithm, and applies the [`Command`]s the algorithm answers with: start a local step on a
//! worker, cancel one, send a message, set a timer, enter a new round (epoch), record a round,
//! stop. The algorithm never sees the queue, the clock's internals or an RNG, so it can be tested
//! with scripted events.
//!
//! Exactness rules:
//! - Events are ordered by (time, sequence number): simultaneous events are handled in the order
//!   they were scheduled.
//! - A step's duration is drawn when the step starts, from the worker's stream for the current
//!   epoch (time-varying rates compute it from the start time); the next completion fires at
//!   start + duration.
//! - The queue holds at most one event per id (see below). Cancelling a step removes its
//!   completion from the queue (the whole queue is cleared at once when every pending event is a
//!   cancelled step). The event being handled stays queued until its handler's commands are
//!   applied: the first event scheduled under the same id (the worker's next step, or a message
//!   reusing the slot) overwrites it in one update of the queue, else it is removed.
//! - A step cancelled at the instant it started never ran: its draw is given back (a replayed
//!   trace's row is not used up), and it is neither counted nor logged as cancelled.
//! - Queue ids: worker m's step completions carry id m; messages and timers carry M + their
//!   slot. Ids have 24 bits, so workers plus pending messages and timers are at most 2^24.
//! - A message over a zero-time link is delivered at the current instant, right after the
//!   commands of the handler that sent it (in send order); other messages become events.
//! - Messages to the server take the uplink, messages from the server the downlink, each with a
//!   stream per (worker, direction, epoch). Messages between workers take the per-edge
//!   [`PeerLinks`] given with [`Engine::with_peer_links`] (one stream per directed edge and
//!   epoch), or the receiver's downlink when none are given. A message in flight never blocks
//!   anybody: workers keep computing while it travels, unless the algorithm makes them wait.

use std::collections::{HashMap, VecDeque};

use super::queue::{MAX_ID, TournamentQueue};
use crate::error::{Error, Result};
use crate::rng::{Seeds, Stream};
use crate::timing::{CommTime, ComputeTime, PeerLinks, WorkerClock};
use crate::trace::{EventKind, EventRecord, RoundRecord, Sink};

/// An endpoint of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// The parameter server.
    Server,
    /// Worker m.
    Worker(usize),
}

/// A message in flight or delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Sender.
    pub from: Node,
    /// Receiver.
    pub to: Node,
    /// Size, for bandwidth and byte counts.
    pub bytes: u64,
    /// Algorithm-defined label (typically the round it belongs to).
    pub tag: u64,
    /// Algorithm-defined payload (typically a job id).
    pub data: u64,
    /// When it was sent.
    pub sent: f64,
}

/// A strategy that reacts to engine events with commands. See the module docs.
pub trait Algorithm {
    /// Called once at time 0.
    fn start(&mut self, now: f64, act: &mut Actions);
    /// Worker `worker` finished the step it was running.
    fn on_step(&mut self, worker: usize, now: f64, act: &mut Actions);
    /// A message arrived.
    fn on_message(&mut self, _msg: &Message, _now: f64, _act: &mut Actions) {}
    /// A timer set with [`Actions::timer`] fired.
    fn on_timer(&mut self, _tag: u64, _now: f64, _act: &mut Actions) {}
}

/// What an algorithm asks the engine to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Start one local step on an idle worker now.
    Step(usize),
    /// Cancel the worker's step in progress (no-op when idle).
    Cancel(usize),
    /// Cancel every step in progress.
    CancelAll,
    /// Send a message now.
    Send {
        /// Sender.
        from: Node,
        /// Receiver.
        to: Node,
        /// Size in bytes.
        bytes: u64,
        /// Label.
        tag: u64,
        /// Payload.
        data: u64,
    },
    /// Fire `on_timer(tag)` at time `at` (>= now).
    Timer {
        /// When.
        at: f64,
        /// Label.
        tag: u64,
    },
    /// From now on, workers draw durations from the streams of this epoch (round number).
    Epoch(u64),
    /// A finished round, for the sinks.
    Round(RoundRecord),
    /// End the run after this handler's commands.
    Stop,
}

/// The command buffer an algorithm writes to.
#[derive(Debug, Default)]
pub struct Actions {
    commands: Vec<Command>,
}

impl Actions {
    /// Start one local step on `worker` now.
    #[inline]
    pub fn step(&mut self, worker: usize) {
        self.commands.push(Command::Step(worker));
    }
    /// Cancel `worker`'s step in progress.
    pub fn cancel(&mut self, worker: usize) {
        self.commands.push(Command::Cancel(worker));
    }
    /// Cancel every step in progress.
    pub fn cancel_all(&mut self) {
        self.commands.push(Command::CancelAll);
    }
    /// Send a message.
    pub fn send(&mut self, from: Node, to: Node, bytes: u64, tag: u64) {
        self.commands.push(Command::Send { from, to, bytes, tag, data: 0 });
    }
    /// Send a message carrying a payload word (e.g. a job id).
    pub fn send_data(&mut self, from: Node, to: Node, bytes: u64, tag: u64, data: u64) {
        self.commands.push(Command::Send { from, to, bytes, tag, data });
    }
    /// Set a timer.
    pub fn timer(&mut self, at: f64, tag: u64) {
        self.commands.push(Command::Timer { at, tag });
    }
    /// Switch workers to the random streams of `epoch`.
    pub fn epoch(&mut self, epoch: u64) {
        self.commands.push(Command::Epoch(epoch));
    }
    /// Record a finished round.
    pub fn round(&mut self, record: RoundRecord) {
        self.commands.push(Command::Round(record));
    }
    /// Stop the run.
    pub fn stop(&mut self) {
        self.commands.push(Command::Stop);
    }
    /// The commands issued so far (for scripted tests of algorithms).
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }
    /// Takes the commands out (for scripted tests of algorithms).
    pub fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }
}

/// Counters of what the engine did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    /// Events handled: step completions, message arrivals (including instant ones) and timers.
    pub events: u64,
    /// Local steps completed.
    pub steps: u64,
    /// Steps cancelled while in progress.
    pub cancelled: u64,
    /// Messages sent, by direction (to the server, to workers).
    pub messages_up: u64,
    /// Messages sent to workers.
    pub messages_down: u64,
    /// Bytes sent to the server.
    pub bytes_up: u64,
    /// Bytes sent to workers.
    pub bytes_down: u64,
    /// Messages sent from one worker to another (decentralized runs).
    pub messages_peer: u64,
    /// Bytes sent from one worker to another.
    pub bytes_peer: u64,
    /// Bytes sent by each worker, to the server and to other workers.
    pub bytes_sent_by_worker: Vec<u64>,
    /// Simulated time at the end.
    pub end_time: f64,
}

#[derive(Clone, Debug)]
struct WorkerSlot {
    clock: WorkerClock,
    /// Epoch the clock is keyed for.
    epoch: u64,
    busy: bool,
    /// When the step in progress started.
    started: f64,
    /// Steps started in the current epoch (for event records).
    steps: u64,
}

#[derive(Clone, Debug)]
enum Payload {
    Message(Message),
    Timer(u64),
    Free,
}

/// Per-worker message streams, keyed by epoch.
#[derive(Clone, Debug)]
struct LinkStreams {
    epoch: u64,
    up: Stream,
    down: Stream,
}

/// The stream of one directed worker-to-worker edge, keyed by epoch.
#[derive(Clone, Debug)]
struct EdgeStream {
    epoch: u64,
    stream: Stream,
}

/// The engine; see the module docs.
pub struct Engine<'a> {
    compute: &'a ComputeTime,
    comm: &'a CommTime,
    peer: Option<&'a PeerLinks>,
    edge_streams: HashMap<(usize, usize), EdgeStream>,
    seeds: Seeds,
    queue: TournamentQueue,
    /// Id of the event being handled while it is still queued (see the module docs).
    handled: Option<u32>,
    workers: Vec<WorkerSlot>,
    links: Vec<LinkStreams>,
    slots: Vec<Payload>,
    free_slots: Vec<u32>,
    epoch: u64,
    now: f64,
    instant: VecDeque<Message>,
    actions: Actions,
    stopped: bool,
    /// No event later than this is handled.
    horizon: f64,
    /// What happened so far.
    pub stats: EngineStats,
}

impl<'a> Engine<'a> {
    /// An engine for `workers` workers at time 0, epoch 0.
    pub fn new(workers: usize, compute: &'a ComputeTime, comm: &'a CommTime, seeds: Seeds) -> Self {
        let workers_vec = (0..workers)
            .map(|w| WorkerSlot { clock: compute.clock(&seeds, w, 0), epoch: 0, busy: false, started: 0.0, steps: 0 })
            .collect();
        let links = if comm.is_zero() {
            Vec::new()
        } else {
            (0..workers)
                .map(|w| LinkStreams {
                    epoch: 0,
                    up: CommTime::stream(&seeds, w, true, 0),
                    down: CommTime::stream(&seeds, w, false, 0),
                })
                .collect()
        };
        Engine {
            compute,
            comm,
            peer: None,
            edge_streams: HashMap::new(),
            seeds,
            queue: TournamentQueue::with_capacity(workers + 16),
            handled: None,
            workers: workers_vec,
            links,
            slots: Vec::new(),
            free_slots: Vec::new(),
            epoch: 0,
            now: 0.0,
            instant: VecDeque::new(),
            actions: Actions::default(),
            stopped: false,
            horizon: f64::INFINITY,
            stats: EngineStats { bytes_sent_by_worker: vec![0; workers], ..EngineStats::default() },
        }
    }

    /// Sends worker-to-worker messages over `links` (per directed edge) instead of the
    /// receiver's downlink.
    pub fn with_peer_links(mut self, links: &'a PeerLinks) -> Self {
        self.peer = Some(links);
        self
    }

    /// Stops the run before the first event later than `horizon` (a simulated-time budget):
    /// whatever is still in progress then never completes.
    pub fn with_horizon(mut self, horizon: f64) -> Self {
        self.horizon = horizon;
        self
    }

    /// Current simulated time.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Runs `alg` until it stops or nothing is left to happen.
    pub fn run<A: Algorithm + ?Sized>(&mut self, alg: &mut A, sink: &mut dyn Sink) -> Result<EngineStats> {
        let events = sink.wants_events();
        let workers = self.workers.len();
        check_workers(workers)?;
        alg.start(self.now, &mut self.actions);
        self.apply(sink, events)?;
        self.deliver_instant(alg, sink, events)?;
        while !self.stopped {
            let Some(entry) = self.queue.peek().filter(|e| e.time <= self.horizon) else {
                break;
            };
            if self.queue.exhausted() {
                return Err(Error::invalid(
                    "run length",
                    format!("{} events", self.stats.events),
                    "more than 2^40 events were scheduled, beyond the event queue's sequence numbers",
                ));
            }
            let id = entry.id as usize;
            if id < workers {
                let w = id;
                let slot = &mut self.workers[w];
                debug_assert!(slot.busy, "completion of idle worker {w} still queued");
                slot.busy = false;
                self.now = entry.time;
                check_clock(self.now, self.compute, self.comm)?;
                self.stats.events += 1;
                self.stats.steps += 1;
                if events {
                    sink.event(&EventRecord {
                        time: self.now,
                        worker: w,
                        round: slot.epoch,
                        kind: EventKind::Step,
                        step: slot.steps,
                        peer: None,
                    })?;
                }
                alg.on_step(w, self.now, &mut self.actions);
            } else {
                self.now = entry.time;
                check_clock(self.now, self.compute, self.comm)?;
                self.stats.events += 1;
                let index = (id - workers) as u32;
                let payload = std::mem::replace(&mut self.slots[index as usize], Payload::Free);
                self.free_slots.push(index);
                match payload {
                    Payload::Message(msg) => {
                        if events {
                            self.record_message(sink, &msg, EventKind::Arrive)?;
                        }
                        alg.on_message(&msg, self.now, &mut self.actions);
                    }
                    Payload::Timer(tag) => alg.on_timer(tag, self.now, &mut self.actions),
                    Payload::Free => unreachable!("event for a free slot"),
                }
            }
            // The handled event is still queued: the first event scheduled under its id, by the
            // handler or by a message it delivered instantly, overwrites it; else it goes here.
            self.handled = Some(entry.id);
            self.apply(sink, events)?;
            if !self.instant.is_empty() {
                self.deliver_instant(alg, sink, events)?;
            }
            if let Some(id) = self.handled.take() {
                self.queue.remove(id);
            }
        }
        self.stats.end_time = self.now;
        Ok(self.stats.clone())
    }

    /// Delivers the messages sent with zero latency, in order.
    fn deliver_instant<A: Algorithm + ?Sized>(&mut self, alg: &mut A, sink: &mut dyn Sink, events: bool) -> Result<()> {
        while let Some(msg) = self.instant.pop_front() {
            if self.stopped {
                self.instant.clear();
                break;
            }
            self.stats.events += 1;
            if events {
                self.record_message(sink, &msg, EventKind::Arrive)?;
            }
            alg.on_message(&msg, self.now, &mut self.actions);
            self.apply(sink, events)?;
        }
        Ok(())
    }

    fn record_message(&self, sink: &mut dyn Sink, msg: &Message, kind: EventKind) -> Result<()> {
        let (worker, peer) = match (msg.from, msg.to) {
            (Node::Worker(w), Node::Server) | (Node::Server, Node::Worker(w)) => (w, None),
            (Node::Worker(from), Node::Worker(to)) => (to, Some(from)),
            (Node::Server, Node::Server) => (0, None),
        };
        sink.event(&EventRecord { time: self.now, worker, round: self.epoch, kind, step: msg.bytes, peer })
    }

    /// Schedules event `id` at `at`, overwriting the handled event if it has the same id.
    #[inline]
    fn schedule(&mut self, at: f64, id: u32) {
        if self.handled == Some(id) {
            self.handled = None;
        }
        self.queue.schedule(at, id);
    }

    /// Applies the buffered commands.
    fn apply(&mut self, sink: &mut dyn Sink, events: bool) -> Result<()> {
        let mut commands = std::mem::take(&mut self.actions.commands);
        for command in commands.drain(..) {
            match command {
                Command::Step(w) => {
                    let slot = &mut self.workers[w];
                    assert!(!slot.busy, "algorithm started a step on busy worker {w}");
                    if slot.epoch != self.epoch {
                        self.compute.rekey(&self.seeds, w, self.epoch, &mut slot.clock);
                        slot.epoch = self.epoch;
                        slot.steps = 0;
                    }
                    let duration = self.compute.next(w, &mut slot.clock, self.now);
                    slot.busy = true;
                    slot.started = self.now;
                    slot.steps += 1;
                    let at = self.now + duration;
                    self.schedule(at, w as u32);
                }
                Command::Cancel(w) => self.cancel(w, sink, events, true)?,
                Command::CancelAll => {
                    // With no message or timer pending, only steps are queued (and the handled
                    // event, if any): clear the queue at once instead of removing each.
                    let only_steps = self.free_slots.len() == self.slots.len();
                    for w in 0..self.workers.len() {
                        self.cancel(w, sink, events, !only_steps)?;
                    }
                    if only_steps {
                        self.queue.clear();
                        self.handled = None;
                    }
                }
                Command::Send { from, to, bytes, tag, data } => {
                    self.send(Message { from, to, bytes, tag, data, sent: self.now }, sink, events)?
                }
                Command::Timer { at, tag } => {
                    assert!(at >= self.now, "timer set in the past");
                    let id = self.slot(Payload::Timer(tag))?;
                    self.schedule(at, id);
                }
                Command::Epoch(e) => self.epoch = e,
                Command::Round(record) => {
                    super::round::check_steps(&record)?;
                    sink.round(&record)?
                }
                Command::Stop => self.stopped = true,
            }
        }
        self.actions.commands = commands;
        Ok(())
    }

    /// Cancels worker `w`'s step in progress, if any; `dequeue`: remove its completion from the
    /// queue (false when the caller clears the queue).
    fn cancel(&mut self, w: usize, sink: &mut dyn Sink, events: bool, dequeue: bool) -> Result<()> {
        let slot = &mut self.workers[w];
        if slot.busy {
            slot.busy = false;
            if dequeue {
                self.queue.remove(w as u32);
            }
            if slot.started == self.now {
                // cancelled the instant it started: it never ran, and leaves no trace
                self.compute.give_back(&mut slot.clock);
                slot.steps -= 1;
                return Ok(());
            }
            self.stats.cancelled += 1;
            if events {
                sink.event(&EventRecord {
                    time: self.now,
                    worker: w,
                    round: slot.epoch,
                    kind: EventKind::Cancel,
                    step: slot.steps,
                    peer: None,
                })?;
            }
        }
        Ok(())
    }

    /// Stores a message or timer and returns its queue id (M + its slot).
    fn slot(&mut self, payload: Payload) -> Result<u32> {
        let index = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = payload;
                i as usize
            }
            None => {
                self.slots.push(payload);
                self.slots.len() - 1
            }
        };
        let id = self.workers.len() + index;
        if id > MAX_ID as usize {
            return Err(Error::invalid(
                "pending messages and timers",
                index + 1,
                format!(
                    "with M = {} workers the event engine holds at most {}",
                    self.workers.len(),
                    MAX_ID as usize + 1 - self.workers.len()
                ),
            ));
        }
        Ok(id as u32)
    }

    fn send(&mut self, msg: Message, sink: &mut dyn Sink, events: bool) -> Result<()> {
        if let Node::Worker(w) = msg.from {
            self.stats.bytes_sent_by_worker[w] += msg.bytes;
        }
        if let (Node::Worker(from), Node::Worker(to)) = (msg.from, msg.to) {
            return self.send_peer(msg, from, to, sink, events);
        }
        let (up, worker) = match (msg.from, msg.to) {
            (_, Node::Server) => (true, if let Node::Worker(w) = msg.from { w } else { 0 }),
            (_, Node::Worker(w)) => (false, w),
        };
        if up {
            self.stats.messages_up += 1;
            self.stats.bytes_up += msg.bytes;
        } else {
            self.stats.messages_down += 1;
            self.stats.bytes_down += msg.bytes;
        }
        if events {
            self.record_message(sink, &msg, EventKind::Send)?;
        }
        if self.comm.link(up).is_zero() {
            self.instant.push_back(msg);
            return Ok(());
        }
        let streams = &mut self.links[worker];
        if streams.epoch != self.epoch {
            streams.epoch = self.epoch;
            streams.up = CommTime::stream(&self.seeds, worker, true, self.epoch);
            streams.down = CommTime::stream(&self.seeds, worker, false, self.epoch);
        }
        let delay = self.comm.message_time(worker, up, msg.bytes, if up { &mut streams.up } else { &mut streams.down });
        let at = self.now + delay;
        let id = self.slot(Payload::Message(msg))?;
        self.schedule(at, id);
        Ok(())
    }

    /// A message from worker `from` to worker `to`.
    fn send_peer(&mut self, msg: Message, from: usize, to: usize, sink: &mut dyn Sink, events: bool) -> Result<()> {
        self.stats.messages_peer += 1;
        self.stats.bytes_peer += msg.bytes;
        if events {
            self.record_message(sink, &msg, EventKind::Send)?;
        }
        let delay = match self.peer {
            Some(links) => {
                let link = links.link(from, to);
                if link.is_zero() {
                    self.instant.push_back(msg);
                    return Ok(());
                }
                let (seeds, epoch) = (self.seeds, self.epoch);
                let edge = self
                    .edge_streams
                    .entry((from, to))
                    .or_insert_with(|| EdgeStream { epoch, stream: PeerLinks::stream(&seeds, from, to, epoch) });
                if edge.epoch != epoch {
                    *edge = EdgeStream { epoch, stream: PeerLinks::stream(&seeds, from, to, epoch) };
                }
                link.sample(msg.bytes, &mut edge.stream)
            }
            None => {
                // Without peer links, the receiver's downlink (and its stream) carries the message.
                if self.comm.downlink.is_zero() {
                    self.instant.push_back(msg);
                    return Ok(());
                }
                let streams = &mut self.links[to];
                if streams.epoch != self.epoch {
                    streams.epoch = self.epoch;
                    streams.up = CommTime::stream(&self.seeds, to, true, self.epoch);
                    streams.down = CommTime::stream(&self.seeds, to, false, self.epoch);
                }
                self.comm.message_time(to, false, msg.bytes, &mut streams.down)
            }
        };
        let at = self.now + delay;
        let id = self.slot(Payload::Message(msg))?;
        self.schedule(at, id);
        Ok(())
    }
}

/// Fails when M is more than the event engine's 2^24 queue ids can name (see the module docs);
/// [`Engine::run`] checks it, callers that would allocate much for M first can check earlier.
pub fn check_workers(workers: usize) -> Result<()> {
    if workers > MAX_ID as usize + 1 {
        return Err(Error::invalid(
            "workers (M)",
            workers,
            format!("the event engine handles at most {} workers", MAX_ID as usize + 1),
        ));
    }
    Ok(())
}

/// Fails when simulated time has left the finite numbers: a duration drawn from a tail too
/// heavy for f64 (e.g. `pareto(shape=0.01)`), or message times that large.
#[inline]
fn check_clock(now: f64, compute: &ComputeTime, comm: &CommTime) -> Result<()> {
    if now.is_finite() { Ok(()) } else { Err(clock_error(now, compute, comm)) }
}

/// The error of a simulated clock at `now` = inf: names the compute time, and the message times
/// when there are any.
#[cold]
pub(crate) fn clock_error(now: f64, compute: &ComputeTime, comm: &CommTime) -> Error {
    let why =
        format!("drew durations whose sum is {now} in f64: their tail is too heavy, or they are too long, to simulate");
    if comm.is_zero() {
        Error::invalid("compute time", compute.spec(), why)
    } else {
        Error::invalid("compute and message times", format!("{} with the given uplink/downlink", compute.spec()), why)
    }
}
