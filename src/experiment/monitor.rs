//! Bookkeeping of one training run: cumulative simulated time, messages, uploads and local
//! updates; evaluations on schedule, written to `evals.csv` as they happen (each row flushed, so
//! an interrupted run leaves complete rows); the first crossing of the target accuracy; and the
//! decision to stop (round limit, time limit, target reached, interrupt, divergence).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::algorithms::delays::StalenessReport;
use crate::error::{Error, Result};
use crate::learner::{Evaluation, Learner};
use crate::trace::RoundRecord;

/// Header of `evals.csv`.
pub const EVALS_HEADER: &str = "algorithm,seed,round,wall_clock,comm_transmissions,uploads,local_updates,train_loss,test_loss,test_accuracy,distance_to_optimum,distance_to_weighted_optimum,comm_bytes";

/// `evals.csv`, one flushed row per evaluation.
#[derive(Debug)]
pub struct EvalsWriter {
    path: std::path::PathBuf,
    file: BufWriter<File>,
}

impl EvalsWriter {
    /// Creates (truncates) the file and writes the header.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = EvalsWriter { path: path.to_path_buf(), file: BufWriter::new(file) };
        w.line(EVALS_HEADER)?;
        Ok(w)
    }

    fn line(&mut self, text: &str) -> Result<()> {
        writeln!(self.file, "{text}").and_then(|_| self.file.flush()).map_err(|e| Error::io(&self.path, e))
    }
}

/// When the target accuracy was first reached.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Reached {
    /// Simulated wall-clock time.
    pub time: f64,
    /// Messages (downloads + uploads) so far.
    pub comms: u64,
    /// Bytes of those messages.
    pub bytes: u64,
    /// Rounds (server updates) so far.
    pub rounds: u64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Ran its rounds or its time, or reached the target with `stop_at_target`.
    Complete,
    /// The loss or the parameters became NaN or infinite.
    Diverged,
    /// Stopped by Ctrl-C.
    Interrupted,
}

/// The outcome of one (algorithm, seed) run.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Algorithm label.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// How it ended.
    pub status: Status,
    /// Why it ended early, if it did.
    pub message: Option<String>,
    /// Rounds (server updates) completed.
    pub rounds: u64,
    /// Simulated time at the end.
    pub wall_clock: f64,
    /// Messages at the end.
    pub comm_transmissions: u64,
    /// Their bytes.
    pub comm_bytes: u64,
    /// Local updates computed.
    pub local_updates: u64,
    /// First crossing of the target.
    pub reached: Option<Reached>,
    /// Metrics of the final model.
    pub final_eval: Option<FinalEval>,
    /// Staleness of the asynchronous methods (ASGD and its variants, K-async, K-batch-async and
    /// async, Rennala, Malenia, Ringmaster, FedBuff).
    pub staleness: Option<StalenessReport>,
}

/// Final metrics (serialisable).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FinalEval {
    /// Training loss.
    pub train_loss: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_accuracy: Option<f64>,
    /// Distance to the optimum.
    pub distance_to_optimum: Option<f64>,
    /// Distance to the speed-weighted optimum.
    pub distance_to_weighted_optimum: Option<f64>,
    /// Distance between the two optima.
    pub optimum_gap: Option<f64>,
}

impl From<Evaluation> for FinalEval {
    fn from(e: Evaluation) -> Self {
        FinalEval {
            train_loss: e.train_loss,
            test_loss: e.test_loss,
            test_accuracy: e.test_accuracy,
            distance_to_optimum: e.distance_to_optimum,
            distance_to_weighted_optimum: e.distance_to_weighted_optimum,
            optimum_gap: e.optimum_gap,
        }
    }
}

/// Limits and schedule of a run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum rounds.
    pub rounds: u64,
    /// Maximum simulated time.
    pub max_time: Option<f64>,
    /// Evaluate every this many rounds.
    pub eval_every: u64,
    /// Target accuracy.
    pub target: Option<f64>,
    /// Stop at the target.
    pub stop_at_target: bool,
}

/// Observer of one run; see the module docs.
pub struct Monitor<'a> {
    label: String,
    seed: u64,
    limits: Limits,
    evals: &'a mut EvalsWriter,
    interrupted: &'a AtomicBool,
    on_round: &'a dyn Fn(),
    time: f64,
    comms: u64,
    /// Bytes of one message, when every message is a whole model (0: the driver reports its
    /// bytes through [`Monitor::set_bytes`]).
    message_bytes: u64,
    bytes: u64,
    uploads: u64,
    updates: u64,
    rounds: u64,
    last_eval: Option<(u64, Evaluation)>,
    /// Work was accounted after the last evaluation without closing a round
    /// ([`Monitor::account_tail`]).
    tail_unevaluated: bool,
    reached: Option<Reached>,
    error: Option<Error>,
    was_interrupted: bool,
}

impl<'a> Monitor<'a> {
    /// A monitor writing to `evals`; `on_round` is called after every round (progress bar).
    pub fn new(
        label: &str,
        seed: u64,
        limits: Limits,
        evals: &'a mut EvalsWriter,
        interrupted: &'a AtomicBool,
        on_round: &'a dyn Fn(),
    ) -> Self {
        Monitor {
            label: label.to_string(),
            seed,
            limits,
            evals,
            interrupted,
            on_round,
            time: 0.0,
            comms: 0,
            message_bytes: 0,
            bytes: 0,
            uploads: 0,
            updates: 0,
            rounds: 0,
            last_eval: None,
            tail_unevaluated: false,
            reached: None,
            error: None,
            was_interrupted: false,
        }
    }

    /// Every message carries `bytes` (a whole model): `comm_bytes` is the message count times it.
    pub fn with_message_bytes(mut self, bytes: u64) -> Self {
        self.message_bytes = bytes;
        self
    }

    /// Bytes sent so far, for drivers whose messages differ in size (sparse LOSCAR) or that
    /// count their own traffic; call before [`Monitor::after_round_with`].
    pub fn set_bytes(&mut self, total: u64) {
        self.bytes = total;
    }

    /// True while the run should go on.
    pub fn go_on(&mut self) -> bool {
        if self.interrupted.load(Ordering::Relaxed) {
            self.was_interrupted = true;
        }
        self.error.is_none()
            && !self.was_interrupted
            && self.rounds < self.limits.rounds
            && self.limits.max_time.is_none_or(|t| self.time < t)
            && !(self.limits.stop_at_target && self.reached.is_some())
    }

    /// Records an error that ends the run (divergence, or a failed write).
    pub fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Evaluates the initial model (round 0, time 0).
    pub fn start(&mut self, learner: &Learner) {
        self.start_with(&mut || Ok(learner.evaluate()));
    }

    /// [`Monitor::start`] for a model that is not a [`Learner`]'s: `evaluate` gives its
    /// metrics (an error ends the run).
    pub fn start_with(&mut self, evaluate: &mut dyn FnMut() -> Result<Evaluation>) {
        self.evaluate_with(evaluate);
    }

    /// Rounds accounted for so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Simulated time at the end of the last round.
    pub fn time(&self) -> f64 {
        self.time
    }

    /// Accounts for the local updates done after the last closed round, up to simulated time
    /// `end`, given `updates_so_far` in all. Per-worker models (LOSCAR, decentralized SGD) change
    /// with every local step, so a run stopped by its time budget between two rounds holds models
    /// newer than the last round: the final evaluation is then due, and it is labelled with `end`
    /// and counts those updates, so that no target is credited earlier than it was reached.
    pub fn account_tail(&mut self, end: f64, updates_so_far: u64) {
        if updates_so_far > self.updates {
            self.time = self.time.max(end);
            self.updates = updates_so_far;
            self.tail_unevaluated = true;
        }
    }

    /// Accounts for a finished round and evaluates when due.
    pub fn after_round(&mut self, record: &RoundRecord, learner: &Learner) {
        self.after_round_with(record, &mut || Ok(learner.evaluate()));
    }

    /// [`Monitor::after_round`] for a model that is not a [`Learner`]'s.
    pub fn after_round_with(&mut self, record: &RoundRecord, evaluate: &mut dyn FnMut() -> Result<Evaluation>) {
        self.time = record.end;
        let messages = record.participants as u64 + record.uploads as u64;
        self.comms += messages;
        self.bytes += messages * self.message_bytes;
        self.uploads += record.uploads as u64;
        self.updates += record.updates;
        self.rounds += 1;
        (self.on_round)();
        if self.rounds.is_multiple_of(self.limits.eval_every) {
            self.evaluate_with(evaluate);
        }
    }

    fn evaluate_with(&mut self, evaluate: &mut dyn FnMut() -> Result<Evaluation>) {
        let mut e = match (&self.error, self.last_eval) {
            // the parameters are no longer finite: whatever the model would output (a ReLU can
            // turn NaN into 0) measures nothing, so it is not evaluated; the row has the last
            // evaluation's columns, NaN
            (Some(Error::Stopped(_)), Some((_, last))) => {
                let nan = |x: Option<f64>| x.map(|_| f64::NAN);
                Evaluation {
                    train_loss: f64::NAN,
                    test_loss: f64::NAN,
                    test_accuracy: None,
                    distance_to_optimum: nan(last.distance_to_optimum),
                    distance_to_weighted_optimum: nan(last.distance_to_weighted_optimum),
                    optimum_gap: last.optimum_gap,
                }
            }
            _ => match evaluate() {
                Ok(e) => e,
                Err(err) => return self.fail(err),
            },
        };
        if !e.test_loss.is_finite() {
            e.test_accuracy = None; // the arg-max of non-finite logits says nothing
        }
        // floats as `{:?}` (shortest round-trip, always with a decimal point or exponent), like
        // the serde-written rounds.csv
        let opt = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:?}"));
        let row = format!(
            "{},{},{},{:?},{},{},{},{:?},{:?},{},{},{},{}",
            csv_field(&self.label),
            self.seed,
            self.rounds,
            self.time,
            self.comms,
            self.uploads,
            self.updates,
            e.train_loss,
            e.test_loss,
            opt(e.test_accuracy),
            opt(e.distance_to_optimum),
            opt(e.distance_to_weighted_optimum),
            self.bytes
        );
        if let Err(err) = self.evals.line(&row) {
            self.fail(err);
        }
        if let (Some(target), Some(acc), None) = (self.limits.target, e.test_accuracy, self.reached)
            && acc >= target
        {
            self.reached = Some(Reached { time: self.time, comms: self.comms, bytes: self.bytes, rounds: self.rounds });
        }
        if !e.test_loss.is_finite() && self.error.is_none() {
            self.fail(Error::Stopped(format!("diverged: test loss is {} after round {}", e.test_loss, self.rounds)));
        }
        self.last_eval = Some((self.rounds, e));
        self.tail_unevaluated = false;
    }

    /// Ends the run: evaluates the final model if the last round was not evaluated (a diverged
    /// one too, so that `evals.csv` shows the divergence where it happened). A divergence is a
    /// result; any other error (a failed write) is returned.
    pub fn finish(self, learner: &Learner) -> Result<RunResult> {
        self.finish_with(&mut || Ok(learner.evaluate()))
    }

    /// True when [`Monitor::finish`] will evaluate the final model (the last round was not
    /// evaluated, and nothing failed but the model, by diverging).
    pub fn final_evaluation_due(&self) -> bool {
        (self.tail_unevaluated || self.last_eval.is_none_or(|(r, _)| r != self.rounds))
            && matches!(self.error, None | Some(Error::Stopped(_)))
    }

    /// [`Monitor::finish`] for a model that is not a [`Learner`]'s.
    pub fn finish_with(mut self, evaluate: &mut dyn FnMut() -> Result<Evaluation>) -> Result<RunResult> {
        if self.final_evaluation_due() {
            self.evaluate_with(evaluate);
        }
        let (status, message) = match (self.error.take(), self.was_interrupted) {
            (Some(Error::Stopped(m)), _) => (Status::Diverged, Some(m)),
            (Some(e), _) => return Err(e),
            (None, true) => (Status::Interrupted, Some("interrupted".to_string())),
            (None, false) => (Status::Complete, None),
        };
        Ok(RunResult {
            name: self.label,
            seed: self.seed,
            status,
            message,
            rounds: self.rounds,
            wall_clock: self.time,
            comm_transmissions: self.comms,
            comm_bytes: self.bytes,
            local_updates: self.updates,
            reached: self.reached,
            final_eval: self.last_eval.map(|(_, e)| e.into()),
            staleness: None,
        })
    }
}

/// Quotes a CSV field if needed.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}
