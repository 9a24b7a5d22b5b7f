//! Training drivers of the overlap, sparsification and decentralized methods: LOSCAR-SGD
//! ([`crate::algorithms::loscar`]), local SGD on a communication schedule
//! ([`crate::algorithms::growing_intervals`]) and decentralized SGD with backup workers
//! ([`crate::algorithms::dbw`]). Each couples its timing strategy with the learner through the
//! strategy's hooks and reports to the [`Monitor`] like every other algorithm, so `evals.csv`,
//! `rounds.csv` and `summary.json` keep their format. LOSCAR and decentralized SGD evaluate the
//! average x̄ = (1/M) Σ_i x_i of the workers' models (specs/baselines.md §1.4). A LOSCAR round
//! is recorded (and evaluated) when the server has formed its average m̄^r, which is before the
//! workers merge it.
//!
//! Two extra files record what these methods add:
//!
//! - `metrics.csv`, one row per evaluation (the same rounds as `evals.csv`): bytes sent so far
//!   by everybody, by the workers and by the server, the most one worker sent, overlap steps
//!   (LOSCAR's Q_i, summed), the mean number of backup workers b_i(k) and the iteration spread
//!   max_i k_i − min_i k_i (decentralized), and the consensus distance
//!   √((1/M) Σ_i ‖x_i − x̄‖²) (empty where every worker holds the same model);
//! - `workers.csv`, one row per worker at the end of each run: bytes and messages it sent, its
//!   local steps, overlap steps, iterations and mean backup workers.
//!
//! Both are appended to run after run (the header is written once) and flushed row by row.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::RunOptions;
use super::monitor::{Monitor, RunResult, csv_field};
use crate::algorithms::dbw::{self, Dbw, DecentralizedHooks};
use crate::algorithms::growing_intervals::{ScheduledLocalSgd, StepSize};
use crate::algorithms::loscar::{self, Loscar, LoscarHooks};
use crate::algorithms::round::RoundAlgorithm;
use crate::algorithms::traffic::Traffic;
use crate::config::{AlgorithmEntry, AlgorithmSpec, Experiment};
use crate::error::{Error, Result};
use crate::learner::{Evaluation, Learner, LocalJob, MergeRule, Objective, WorkerModels};
use crate::rng::{Purpose, Seeds};
use crate::sim::{Engine, RoundKernel, RoundPlan, RoundPolicy, RoundSync};
use crate::timing::PeerLinks;
use crate::trace::RoundRecord;
use crate::trace::csv::CsvSink;

/// Per-evaluation metrics file.
pub const METRICS_FILE: &str = "metrics.csv";
/// Per-worker totals file.
pub const WORKERS_FILE: &str = "workers.csv";
/// Header of `metrics.csv`.
pub const METRICS_HEADER: &str = "algorithm,seed,round,wall_clock,bytes_sent,worker_bytes_sent,server_bytes_sent,max_worker_bytes_sent,overlap_steps,mean_backup_workers,iteration_spread,consensus_distance";
/// Header of `workers.csv`.
pub const WORKERS_HEADER: &str =
    "algorithm,seed,worker,bytes_sent,messages_sent,local_steps,overlap_steps,iterations,mean_backup_workers";

/// Second index of the stream (Algorithm, LOSCAR_MASK_STREAM, r) that draws LOSCAR's mask S_r.
pub const LOSCAR_MASK_STREAM: u64 = 0x4C4F_5343_4152; // "LOSCAR"

/// True for the algorithms this module drives.
pub fn handles(spec: &AlgorithmSpec) -> bool {
    matches!(spec, AlgorithmSpec::Loscar(_) | AlgorithmSpec::LocalSgd(_) | AlgorithmSpec::Dbw(_))
}

/// An append-only CSV file with a header written once.
struct CsvAppender {
    path: PathBuf,
    file: BufWriter<File>,
}

impl CsvAppender {
    fn open(path: &Path, header: &str) -> Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        let empty = file.metadata().map_err(|e| Error::io(path, e))?.len() == 0;
        let mut w = CsvAppender { path: path.to_path_buf(), file: BufWriter::new(file) };
        if empty {
            w.line(header)?;
        }
        Ok(w)
    }

    fn line(&mut self, text: &str) -> Result<()> {
        writeln!(self.file, "{text}").and_then(|_| self.file.flush()).map_err(|e| Error::io(&self.path, e))
    }
}

/// What one run writes besides the monitor's files.
struct Extras {
    label: String,
    seed: u64,
    metrics: CsvAppender,
    workers: CsvAppender,
}

fn opt(x: Option<f64>) -> String {
    x.filter(|v| !v.is_nan()).map_or(String::new(), |v| format!("{v:?}"))
}

impl Extras {
    fn open(out: &Path, label: &str, seed: u64) -> Result<Self> {
        Ok(Extras {
            label: csv_field(label),
            seed,
            metrics: CsvAppender::open(&out.join(METRICS_FILE), METRICS_HEADER)?,
            workers: CsvAppender::open(&out.join(WORKERS_FILE), WORKERS_HEADER)?,
        })
    }

    fn metrics_row(&mut self, round: u64, time: f64, traffic: &Traffic, consensus: Option<f64>) -> Result<()> {
        let worker_bytes: u64 = traffic.bytes_sent.iter().sum();
        let spread = if traffic.iterations.iter().any(|&k| k > 0) {
            let max = traffic.iterations.iter().max().copied().unwrap_or(0);
            let min = traffic.iterations.iter().min().copied().unwrap_or(0);
            Some((max - min) as f64)
        } else {
            None
        };
        let row = format!(
            "{},{},{},{:?},{},{},{},{},{},{},{},{}",
            self.label,
            self.seed,
            round,
            time,
            traffic.total_bytes(),
            worker_bytes,
            traffic.server_bytes_sent,
            traffic.max_worker_bytes(),
            traffic.total_overlap_steps(),
            opt(Some(traffic.mean_backup_workers())),
            opt(spread),
            opt(consensus),
        );
        self.metrics.line(&row)
    }

    fn worker_rows(&mut self, traffic: &Traffic) -> Result<()> {
        for i in 0..traffic.bytes_sent.len() {
            let backup =
                (traffic.iterations[i] > 0).then(|| traffic.backup_workers[i] as f64 / traffic.iterations[i] as f64);
            let row = format!(
                "{},{},{},{},{},{},{},{},{}",
                self.label,
                self.seed,
                i,
                traffic.bytes_sent[i],
                traffic.messages_sent[i],
                traffic.local_steps[i],
                traffic.overlap_steps[i],
                traffic.iterations[i],
                opt(backup),
            );
            self.workers.line(&row)?;
        }
        Ok(())
    }
}

/// Trains one issue-6 algorithm with one seed (see [`handles`]).
pub fn run(
    exp: &Experiment,
    entry: &AlgorithmEntry,
    objective: &dyn Objective,
    seeds: Seeds,
    monitor: Monitor,
    sink: &mut CsvSink,
    opts: &RunOptions,
) -> Result<RunResult> {
    let extras = Extras::open(&opts.out, &entry.label, seeds.master())?;
    match &entry.spec {
        AlgorithmSpec::Loscar(settings) => run_loscar(exp, entry, settings, objective, seeds, monitor, extras, sink),
        AlgorithmSpec::Dbw(settings) => run_dbw(exp, entry, settings, objective, seeds, monitor, extras, sink),
        AlgorithmSpec::LocalSgd(settings) => {
            let algorithm = ScheduledLocalSgd::new(settings, exp.workers)?;
            let learner = Learner::new(objective, seeds, entry.lr);
            let model_bytes = 4 * objective.dim() as u64;
            let mut trainer = ScheduledTrainer::new(
                algorithm,
                settings.step_size,
                entry.lr,
                learner,
                monitor,
                extras,
                exp.workers,
                model_bytes,
            );
            let (compute, comm) = (&exp.compute, &exp.comm);
            if opts.events {
                let mut driver = RoundSync::new(trainer, exp.workers, model_bytes);
                Engine::new(exp.workers, compute, comm, seeds).with_horizon(exp.horizon()).run(&mut driver, sink)?;
                trainer = driver.into_policy();
            } else {
                RoundKernel::new(exp.workers, compute, comm, seeds, model_bytes)
                    .with_horizon(exp.horizon())
                    .run(&mut trainer, sink)?;
            }
            trainer.finish()
        }
        _ => unreachable!("handles() lists the algorithms run here"),
    }
}

/// Evaluates x̄ of per-worker models and writes the metrics row of that evaluation.
fn evaluate_workers(
    models: &mut WorkerModels,
    extras: &mut Extras,
    traffic: &Traffic,
    round: u64,
    time: f64,
) -> Result<Evaluation> {
    let e = models.evaluate()?;
    let consensus = models.consensus_distance()?;
    extras.metrics_row(round, time, traffic, Some(consensus))?;
    Ok(e)
}

// ---- LOSCAR-SGD ----

/// LOSCAR's learning side: per-worker models, the masks S_r and the averages m̄^r in flight.
struct LoscarTrainer<'a, 'm> {
    models: WorkerModels<'a>,
    monitor: Monitor<'m>,
    extras: Extras,
    seeds: Seeds,
    dim: usize,
    coordinates: usize,
    rule: MergeRule,
    masks: BTreeMap<u64, Arc<Vec<u32>>>,
    averages: BTreeMap<u64, (Arc<Vec<f32>>, usize)>,
}

impl LoscarTrainer<'_, '_> {
    /// S_r: K coordinates drawn uniformly without replacement from stream
    /// (Algorithm, [`LOSCAR_MASK_STREAM`], r), shared by every worker; all d when K = d.
    fn mask(&mut self, round: u64) -> Arc<Vec<u32>> {
        let (seeds, dim, k) = (self.seeds, self.dim, self.coordinates);
        Arc::clone(self.masks.entry(round).or_insert_with(|| {
            if k == dim {
                return Arc::new((0..dim as u32).collect());
            }
            let mut rng = seeds.stream(Purpose::Algorithm, LOSCAR_MASK_STREAM, round);
            let mut coords: Vec<u32> =
                rand::seq::index::sample(&mut rng, dim, k).into_iter().map(|c| c as u32).collect();
            coords.sort_unstable();
            Arc::new(coords)
        }))
    }
}

impl LoscarHooks for LoscarTrainer<'_, '_> {
    fn round_started(&mut self, worker: usize, round: u64) {
        self.models.restream(worker, round);
    }

    fn step(&mut self, worker: usize) {
        self.models.steps(worker, 1);
    }

    fn snapshot(&mut self, worker: usize, round: u64) {
        let mask = self.mask(round);
        self.models.snapshot_masked(worker, round, mask);
    }

    fn average(&mut self, round: u64) {
        match self.models.masked_average(round) {
            Ok(average) => {
                self.averages.insert(round, (average, 0));
            }
            Err(e) => self.monitor.fail(e),
        }
    }

    fn merge(&mut self, worker: usize, round: u64) {
        let mask = self.mask(round);
        let Some((average, merged)) = self.averages.get_mut(&round) else {
            return; // the average failed (divergence): the run is ending
        };
        self.models.merge(worker, round, mask, Arc::clone(average), self.rule);
        *merged += 1;
        if *merged == self.models.workers() {
            self.averages.remove(&round);
            self.masks.remove(&round);
        }
    }

    fn round_done(&mut self, record: &RoundRecord, traffic: &Traffic) -> bool {
        let (models, extras) = (&mut self.models, &mut self.extras);
        let (round, time) = (record.round + 1, record.end);
        self.monitor.set_bytes(traffic.total_bytes());
        self.monitor.after_round_with(record, &mut || evaluate_workers(models, extras, traffic, round, time));
        self.monitor.go_on()
    }
}

fn run_loscar(
    exp: &Experiment,
    entry: &AlgorithmEntry,
    settings: &loscar::Settings,
    objective: &dyn Objective,
    seeds: Seeds,
    mut monitor: Monitor,
    mut extras: Extras,
    sink: &mut CsvSink,
) -> Result<RunResult> {
    let m = exp.workers;
    let dim = objective.dim();
    let coordinates = loscar::coordinates(settings.sparsity, dim);
    let steps = loscar::steps_per_worker(settings.local_steps, &exp.compute, m)?;
    let mut models = WorkerModels::new(objective, seeds, entry.lr);
    let empty = Traffic::new(m);
    monitor.start_with(&mut || evaluate_workers(&mut models, &mut extras, &empty, 0, 0.0));
    let trainer = LoscarTrainer {
        models,
        monitor,
        extras,
        seeds,
        dim,
        coordinates,
        rule: settings.merge,
        masks: BTreeMap::new(),
        averages: BTreeMap::new(),
    };
    let bytes = 4 * coordinates as u64;
    // a server-drawn mask sends its K indices (u32) with the average
    let down = if settings.server_mask { 2 * bytes } else { bytes };
    let mut alg = Loscar::new(steps, settings.overlap, bytes, entry.rounds, trainer).with_downlink_bytes(down);
    let mut end = 0.0;
    if alg.hooks_mut().monitor.go_on() {
        end = Engine::new(m, &exp.compute, &exp.comm, seeds).with_horizon(exp.horizon()).run(&mut alg, sink)?.end_time;
    }
    let traffic = alg.traffic.clone();
    let LoscarTrainer { mut models, mut monitor, mut extras, .. } = alg.into_hooks();
    monitor.account_tail(end, traffic.local_steps.iter().sum());
    finish_with_workers(monitor, &mut models, &mut extras, &traffic)
}

/// Ends a per-worker-model run: final evaluation (with its metrics row) and `workers.csv`.
fn finish_with_workers(
    monitor: Monitor,
    models: &mut WorkerModels,
    extras: &mut Extras,
    traffic: &Traffic,
) -> Result<RunResult> {
    let (round, time) = (monitor.rounds(), monitor.time());
    let result = monitor.finish_with(&mut || evaluate_workers(models, extras, traffic, round, time))?;
    extras.worker_rows(traffic)?;
    Ok(result)
}

// ---- Decentralized SGD with backup workers ----

/// The learning side of decentralized SGD: per-worker models and the snapshots in flight.
struct DbwTrainer<'a, 'm> {
    models: WorkerModels<'a>,
    monitor: Monitor<'m>,
    extras: Extras,
    order: dbw::Order,
    /// Snapshots in flight or waiting in an inbox, with the number of receivers yet to use or
    /// drop them.
    payloads: HashMap<u64, (Arc<Vec<f32>>, usize)>,
    next_payload: u64,
}

impl DbwTrainer<'_, '_> {
    fn take(&mut self, payload: u64) -> Option<Arc<Vec<f32>>> {
        let (snapshot, left) = self.payloads.get_mut(&payload)?;
        let snapshot = Arc::clone(snapshot);
        *left -= 1;
        if *left == 0 {
            self.payloads.remove(&payload);
        }
        Some(snapshot)
    }
}

impl DecentralizedHooks for DbwTrainer<'_, '_> {
    fn iteration_started(&mut self, worker: usize, k: u64) {
        self.models.restream(worker, k);
        self.models.gradient(worker);
    }

    fn broadcast(&mut self, worker: usize, _k: u64, receivers: usize) -> u64 {
        if self.order == dbw::Order::AdaptThenCombine {
            self.models.descend(worker);
        }
        let snapshot = self.models.snapshot(worker);
        let id = self.next_payload;
        self.next_payload += 1;
        self.payloads.insert(id, (snapshot, receivers));
        id
    }

    fn mix(&mut self, worker: usize, _k: u64, self_weight: f64, neighbours: &[(u64, f64)]) {
        let list: Vec<(f64, Arc<Vec<f32>>)> =
            neighbours.iter().map(|&(p, w)| (w, self.take(p).expect("a payload is used at most once"))).collect();
        let descend = self.order == dbw::Order::CombineThenAdapt;
        self.models.mix(worker, self_weight, list, descend);
    }

    fn discard(&mut self, payload: u64) {
        self.take(payload);
    }

    fn round_done(&mut self, record: &RoundRecord, traffic: &Traffic) -> bool {
        let (models, extras) = (&mut self.models, &mut self.extras);
        let (round, time) = (record.round + 1, record.end);
        self.monitor.set_bytes(traffic.total_bytes());
        self.monitor.after_round_with(record, &mut || evaluate_workers(models, extras, traffic, round, time));
        self.monitor.go_on()
    }
}

fn run_dbw(
    exp: &Experiment,
    entry: &AlgorithmEntry,
    settings: &dbw::Settings,
    objective: &dyn Objective,
    seeds: Seeds,
    mut monitor: Monitor,
    mut extras: Extras,
    sink: &mut CsvSink,
) -> Result<RunResult> {
    let m = exp.workers;
    let graph = settings.graph.build(m, &seeds)?;
    let mut links = PeerLinks::new(exp.peer.clone());
    for e in &graph.edge_links {
        links.set_constant(e.a, e.b, e.latency, e.bandwidth);
    }
    let mut models = WorkerModels::new(objective, seeds, entry.lr);
    let empty = Traffic::new(m);
    monitor.start_with(&mut || evaluate_workers(&mut models, &mut extras, &empty, 0, 0.0));
    let trainer =
        DbwTrainer { models, monitor, extras, order: settings.order, payloads: HashMap::new(), next_payload: 0 };
    let model_bytes = 4 * objective.dim() as u64;
    let mut alg = Dbw::new(graph, settings, model_bytes, entry.rounds, trainer);
    let mut end = 0.0;
    if alg.hooks_mut().monitor.go_on() {
        end = Engine::new(m, &exp.compute, &exp.comm, seeds)
            .with_horizon(exp.horizon())
            .with_peer_links(&links)
            .run(&mut alg, sink)?
            .end_time;
    }
    let traffic = alg.traffic.clone();
    let DbwTrainer { mut models, mut monitor, mut extras, .. } = alg.into_hooks();
    monitor.account_tail(end, traffic.iterations.iter().sum());
    finish_with_workers(monitor, &mut models, &mut extras, &traffic)
}

// ---- Local SGD on a communication schedule ----

/// Round policy of scheduled local SGD: plans H_r steps for everybody, trains with the
/// step-size schedule, counts the dense messages.
struct ScheduledTrainer<'a, 'm> {
    algorithm: ScheduledLocalSgd,
    step_size: StepSize,
    lr: f64,
    learner: Learner<'a>,
    monitor: Monitor<'m>,
    extras: Extras,
    traffic: Traffic,
    jobs: Vec<LocalJob>,
    workers: usize,
    model_bytes: u64,
}

impl<'a, 'm> ScheduledTrainer<'a, 'm> {
    fn new(
        algorithm: ScheduledLocalSgd,
        step_size: StepSize,
        lr: f64,
        learner: Learner<'a>,
        mut monitor: Monitor<'m>,
        mut extras: Extras,
        workers: usize,
        model_bytes: u64,
    ) -> Self {
        let traffic = Traffic::new(workers);
        monitor.start_with(&mut || {
            let e = learner.evaluate();
            extras.metrics_row(0, 0.0, &traffic, None)?;
            Ok(e)
        });
        ScheduledTrainer {
            algorithm,
            step_size,
            lr,
            learner,
            monitor,
            extras,
            traffic,
            jobs: Vec::new(),
            workers,
            model_bytes,
        }
    }

    fn finish(mut self) -> Result<RunResult> {
        let (round, time) = (self.monitor.rounds(), self.monitor.time());
        let (learner, extras, traffic) = (&self.learner, &mut self.extras, &self.traffic);
        let result = self.monitor.finish_with(&mut || {
            let e = learner.evaluate();
            extras.metrics_row(round, time, traffic, None)?;
            Ok(e)
        })?;
        self.extras.worker_rows(&self.traffic)?;
        Ok(result)
    }
}

impl RoundPolicy for ScheduledTrainer<'_, '_> {
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) -> bool {
        if round >= self.algorithm.rounds() || !self.monitor.go_on() {
            return false;
        }
        plan.targets.resize(self.workers, 0);
        self.algorithm.plan(round, plan);
        true
    }

    fn finish(&mut self, record: &mut RoundRecord) {
        self.algorithm.jobs(record, &mut self.jobs);
        let first = self.algorithm.first_step(record.round);
        let (step_size, lr) = (self.step_size, self.lr);
        if let Err(e) =
            self.learner.local_round_with(record.round, &self.jobs, &|s| step_size.at(first + s as u64, lr) as f32)
        {
            self.monitor.fail(e);
        }
        for (i, &c) in record.counts.iter().enumerate() {
            self.traffic.local_steps[i] += c as u64;
            if c >= 1 {
                self.traffic.worker_sent(i, self.model_bytes);
            }
        }
        for _ in 0..record.participants {
            self.traffic.server_sent(self.model_bytes);
        }
        let (learner, extras, traffic) = (&self.learner, &mut self.extras, &self.traffic);
        let (round, time) = (record.round + 1, record.end);
        self.monitor.set_bytes(traffic.total_bytes());
        self.monitor.after_round_with(record, &mut || {
            let e = learner.evaluate();
            extras.metrics_row(round, time, traffic, None)?;
            Ok(e)
        });
    }
}
