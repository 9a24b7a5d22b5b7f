//! Running an experiment: load the data and the network once, then for every seed and every
//! algorithm train on the simulated cluster and record the results directory:
//!
//! - `config.toml` — the resolved config (overrides applied, seeds, crate version and commit);
//! - `evals.csv` — one row per evaluation, flushed as it is written: time, messages
//!   (`comm_transmissions`) and their bytes (`comm_bytes`: whole models, or the drivers' own
//!   count for sparse and peer-to-peer messages), uploads, local updates and the metrics;
//! - `rounds.csv` — one row per round or server update (`events.csv` on request);
//! - `summary.json` — per algorithm: time, messages, bytes and rounds to the target accuracy,
//!   final accuracy, over the seeds; rewritten after every run, with `status` saying whether
//!   the experiment is still running, complete, was interrupted, or failed (with `error`).
//!
//! With one seed, every algorithm starts from the same initial model, uses the same data
//! partition, and sees the same per-worker step durations and minibatches wherever its schedule
//! allows (common random numbers; see [`crate::rng`]).

pub mod drivers;
pub mod monitor;
pub mod overlap;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;

use crate::algorithms::adacomm::AdaComm;
use crate::algorithms::adasync::AdaSync;
use crate::algorithms::fedavg::FedAvg;
use crate::algorithms::fednova::FedNova;
use crate::algorithms::flanp::Flanp;
use crate::algorithms::kasync::KAsync;
use crate::algorithms::kbatch_async::KBatchAsync;
use crate::algorithms::kbatch_sync::KBatchSync;
use crate::algorithms::ksync::KSync;
use crate::algorithms::local_sgd::Pasgd;
use crate::algorithms::round::RoundAlgorithm;
use crate::algorithms::stsyn::Stsyn;
// Asynchronous methods (specs/baselines.md §5–8, §11).
use crate::algorithms::asgd::{Asgd, Stepsize};
use crate::algorithms::fedbuff::FedBuff;
use crate::algorithms::rennala::Rennala;
use crate::algorithms::rescaled_asgd::{Rescaling, StepTimes};
use crate::algorithms::ringmaster::Ringmaster;
use crate::config::AsgdStepsize;
use crate::config::{AlgorithmEntry, AlgorithmSpec, DataSource, Experiment, Problem};
use crate::data::{self, Partition, Split};
use crate::error::{Error, Result, check_memory};
use crate::learner::{Classification, Learner, Logistic, LogisticData, Objective, Quadratic, Shards};
use crate::model::Network;
use crate::rng::{Purpose, Seeds};
use crate::sim::{Algorithm, Engine, RoundKernel, RoundSync};
use crate::timing::ComputeTime;
use crate::trace::csv::CsvSink;
use crate::trace::file::PendingFile;
use drivers::{AsyncTrainer, RoundTrainer};
use monitor::{EvalsWriter, Limits, Monitor, RunResult, Status};
use summary::Summary;

/// Seed of synthetic datasets (the data stays the same across experiment seeds).
pub const SYNTHETIC_DATA_SEED: u64 = 0;

/// How to run.
#[derive(Debug)]
pub struct RunOptions<'a> {
    /// Results directory.
    pub out: PathBuf,
    /// Also write `events.csv` (uses the heap engine for every algorithm).
    pub events: bool,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Set from outside (Ctrl-C) to stop after the current round.
    pub interrupted: &'a AtomicBool,
}

/// Loads the dataset of an experiment.
pub fn load_data(source: &DataSource) -> Result<Split> {
    match source {
        DataSource::Digits => Ok(data::digits()),
        DataSource::Cifar10(dir) => data::cifar10(dir),
        DataSource::Mnist(dir) => data::mnist(dir),
        DataSource::Synthetic { shape, classes, train, test } => {
            Ok(data::synthetic(*shape, *classes, *train, *test, SYNTHETIC_DATA_SEED))
        }
    }
}

/// Splits the training set over the workers (stream (Partition, 0, 0): the same for every
/// algorithm of a seed).
pub fn make_shards(spec: &str, split: &Split, workers: usize, seeds: &Seeds) -> Result<Shards> {
    let all: Vec<u32> = (0..split.train.len() as u32).collect();
    if spec.trim() == "shared" {
        return Ok(Shards::Shared(all));
    }
    let how: Partition = spec.parse().map_err(|e: crate::Error| match e {
        crate::Error::Parse { what, input, reason } => {
            crate::Error::Parse { what, input, reason: format!("{reason}, or shared (every worker samples all data)") }
        }
        other => other,
    })?;
    let mut rng = seeds.stream(Purpose::Partition, 0, 0);
    Ok(Shards::PerWorker(data::partition(&split.train.labels, split.train.classes, workers, &how, &mut rng)?))
}

/// The training samples on which the training loss is reported: all, or a seeded subset.
fn train_eval_indices(n: usize, wanted: usize, seeds: &Seeds) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    if wanted < n {
        idx.shuffle(&mut seeds.stream(Purpose::Partition, 1, 0));
        idx.truncate(wanted);
        idx.sort_unstable();
    }
    idx
}

/// What stays the same for every seed of an experiment.
enum Loaded {
    Network { net: Box<Network>, split: Box<Split>, partition: String, train_eval_samples: usize },
    Quadratic,
    Homogeneous,
    Logistic,
}

/// The data side of one seed.
enum SeedProblem {
    Network { shards: Shards, train_eval: Vec<u32> },
    Quadratic(Quadratic),
    Homogeneous(Box<dyn Objective>),
    Logistic(LogisticData),
}

/// Loads the network and data (or checks the synthetic problem) before any output is written.
fn load(exp: &Experiment) -> Result<Loaded> {
    match &exp.problem {
        Problem::Network { spec, data, partition, train_eval_samples, precision } => {
            let net = Network::from_file(spec)?.with_precision(*precision)?;
            let split = load_data(data)?;
            if net.input_shape() != split.train.shape || net.num_classes() != split.train.classes {
                return Err(Error::Config(format!(
                    "network '{}' takes {:?} inputs and {} classes, but the data has {:?} images and {} classes",
                    spec.display(),
                    net.input_shape(),
                    net.num_classes(),
                    split.train.shape,
                    split.train.classes
                )));
            }
            // each thread holds the activations of one minibatch
            let threads = rayon::current_num_threads() as u128;
            for entry in &exp.algorithms {
                let bytes = threads * net.workspace_bytes(entry.batch);
                let how = format!("{} bytes per sample on each of {threads} threads", net.workspace_bytes(1));
                check_memory(&format!("{}.batch", entry.label), entry.batch, bytes, &how)?;
            }
            make_shards(partition, &split, exp.workers, &Seeds::new(exp.seeds[0]))?;
            Ok(Loaded::Network {
                net: Box::new(net),
                split: Box::new(split),
                partition: partition.clone(),
                train_eval_samples: *train_eval_samples,
            })
        }
        Problem::Quadratic { .. } => {
            exp.problem.quadratic(&Seeds::new(exp.seeds[0]))?;
            Ok(Loaded::Quadratic)
        }
        Problem::NoisyQuadratic { .. } | Problem::PiecewiseQuadratic { .. } => {
            exp.problem.homogeneous()?;
            Ok(Loaded::Homogeneous)
        }
        Problem::Logistic { .. } => Ok(Loaded::Logistic),
    }
}

fn seed_problem(exp: &Experiment, loaded: &Loaded, seeds: &Seeds) -> Result<SeedProblem> {
    Ok(match loaded {
        Loaded::Network { split, partition, train_eval_samples, .. } => SeedProblem::Network {
            shards: make_shards(partition, split, exp.workers, seeds)?,
            train_eval: train_eval_indices(split.train.len(), *train_eval_samples, seeds),
        },
        Loaded::Homogeneous => SeedProblem::Homogeneous(exp.problem.homogeneous()?.expect("a homogeneous problem")),
        Loaded::Logistic => {
            let data = exp.problem.logistic(seeds)?;
            SeedProblem::Logistic(match speed_weights(&exp.compute, exp.workers) {
                Some(w) => data.with_reference_weights(&w)?,
                None => data,
            })
        }
        Loaded::Quadratic => {
            let q = exp.problem.quadratic(seeds)?;
            SeedProblem::Quadratic(match speed_weights(&exp.compute, exp.workers) {
                Some(w) => q.with_reference_weights(&w)?,
                None => q,
            })
        }
    })
}

/// Runs `exp`, writing the results directory; returns the summary.
pub fn run(exp: &Experiment, opts: &RunOptions) -> Result<Summary> {
    let loaded = load(exp)?;
    let out = &opts.out;
    crate::trace::file::create_dirs(out)?;
    // a reused directory keeps none of an earlier run's files, whatever this run writes
    let figures = crate::plot::FIGURE_STEMS.iter().flat_map(|s| [format!("{s}.svg"), format!("{s}.png")]);
    let tables =
        ["evals.csv", "rounds.csv", "events.csv", "summary.json", overlap::METRICS_FILE, overlap::WORKERS_FILE];
    for stale in tables.into_iter().map(String::from).chain(figures) {
        let _ = std::fs::remove_file(out.join(stale));
    }
    // the recorded config says how many training samples the training loss really uses
    let mut resolved = exp.resolved.clone();
    if let (Some(data), Loaded::Network { split, train_eval_samples, .. }) = (&mut resolved.data, &loaded) {
        data.train_eval_samples = Some((*train_eval_samples).min(split.train.len()));
    }
    let config =
        toml::to_string(&resolved).map_err(|e| Error::Config(format!("cannot write the resolved config: {e}")))?;
    PendingFile::write_all(&out.join("config.toml"), config.as_bytes())?;
    let mut evals = EvalsWriter::create(&out.join("evals.csv"))?;
    let events_path = out.join("events.csv");
    let mut sink = CsvSink::create(
        Some(&out.join("rounds.csv")),
        opts.events.then_some(events_path.as_path()),
        Some((String::new(), 0)),
    )?;

    let labels: Vec<String> = exp.algorithms.iter().map(|a| a.label.clone()).collect();
    let total: u64 = exp.algorithms.iter().map(|a| a.rounds).sum::<u64>() * exp.seeds.len() as u64;
    let bar = progress_bar(total, opts.progress);
    let mut results: Vec<RunResult> = Vec::new();
    let write_summary = |status: &str, results: &[RunResult], error: Option<String>| -> Result<Summary> {
        let mut s = Summary::new(&exp.name, status, exp.target_accuracy, &exp.seeds, &labels, results);
        s.error = error;
        let json = serde_json::to_string_pretty(&s).expect("summary serialises");
        PendingFile::write_all(&out.join("summary.json"), json.as_bytes())?;
        Ok(s)
    };
    write_summary("running", &results, None)?;
    let mut interrupted = false;
    let mut run_all = || -> Result<()> {
        'seeds: for &seed in &exp.seeds {
            let seeds = Seeds::new(seed);
            let problem = seed_problem(exp, &loaded, &seeds)?;
            for entry in &exp.algorithms {
                bar.set_message(format!("{} (seed {seed})", entry.label));
                let classification;
                let logistic;
                let objective: &dyn Objective = match (&loaded, &problem) {
                    (Loaded::Network { net, split, .. }, SeedProblem::Network { shards, train_eval }) => {
                        classification = Classification {
                            net,
                            train: &split.train,
                            test: &split.test,
                            shards,
                            workers: exp.workers,
                            train_eval,
                            batch: entry.batch,
                        };
                        &classification
                    }
                    (_, SeedProblem::Quadratic(q)) => q,
                    (_, SeedProblem::Homogeneous(o)) => o.as_ref(),
                    (_, SeedProblem::Logistic(data)) => {
                        logistic = Logistic { data, batch: entry.batch };
                        &logistic
                    }
                    (_, SeedProblem::Network { .. }) => {
                        unreachable!("built from the same problem")
                    }
                };
                sink.relabel(&entry.label, seed);
                let result = run_one(exp, entry, objective, seeds, &mut evals, &mut sink, opts, &|| bar.inc(1))?;
                sink.flush()?;
                interrupted = result.status == Status::Interrupted;
                if result.status == Status::Diverged {
                    // said even with --quiet: the table's mean leaves this run out
                    bar.suspend(|| {
                        eprintln!(
                            "warning: {} (seed {seed}) {}; its final metrics are left out of the means",
                            entry.label,
                            result.message.as_deref().unwrap_or("diverged")
                        )
                    });
                }
                if let Some(w) = exp.compute.clock_resolution_warning(result.wall_clock, exp.workers) {
                    bar.suspend(|| eprintln!("warning: {} (seed {seed}): {w}", entry.label));
                }
                if result.rounds == 0 && result.status != Status::Interrupted {
                    bar.suspend(|| {
                        eprintln!(
                            "warning: {} (seed {seed}) completed no round{}",
                            entry.label,
                            exp.max_time
                                .map_or(String::new(), |t| format!(" within max_time = {}", crate::error::shown(t)))
                        )
                    });
                }
                results.push(result);
                write_summary("running", &results, None)?;
                if interrupted {
                    break 'seeds;
                }
            }
        }
        Ok(())
    };
    if let Err(e) = run_all() {
        // the files written so far stay valid; the summary says the run failed, and why
        bar.finish_and_clear();
        let _ = sink.finish();
        write_summary("failed", &results, Some(e.to_string()))?;
        return Err(e);
    }
    bar.finish_and_clear();
    sink.finish()?;
    write_summary(if interrupted { "interrupted" } else { "complete" }, &results, None)
}

/// Trains one algorithm with one seed.
fn run_one(
    exp: &Experiment,
    entry: &AlgorithmEntry,
    objective: &dyn Objective,
    seeds: Seeds,
    evals: &mut EvalsWriter,
    sink: &mut CsvSink,
    opts: &RunOptions,
    on_round: &dyn Fn(),
) -> Result<RunResult> {
    let m = exp.workers;
    let limits = Limits {
        rounds: entry.rounds,
        max_time: exp.max_time,
        eval_every: entry.eval_every,
        target: exp.target_accuracy,
        stop_at_target: exp.stop_at_target,
    };
    let monitor = Monitor::new(&entry.label, seeds.master(), limits, evals, opts.interrupted, on_round);
    // Overlap, sparsification and decentralized methods (issue 6) have their own drivers.
    if overlap::handles(&entry.spec) {
        return overlap::run(exp, entry, objective, seeds, monitor, sink, opts);
    }
    let learner = Learner::new(objective, seeds, entry.lr);
    let bytes = 4 * objective.dim() as u64;
    let monitor = monitor.with_message_bytes(bytes);
    let (compute, comm) = (&exp.compute, &exp.comm);
    let round_algorithm: Option<Box<dyn RoundAlgorithm>> = match entry.spec {
        AlgorithmSpec::Stsyn { wait, local_steps, max_steps, drop_most_updates } => {
            Some(Box::new(Stsyn { wait, local_steps, max_steps, drop_most_updates }))
        }
        AlgorithmSpec::Pasgd { local_steps } | AlgorithmSpec::Sync { local_steps } => {
            Some(Box::new(Pasgd { local_steps }))
        }
        AlgorithmSpec::AdaComm { local_steps, interval, probe_batch } => {
            Some(Box::new(AdaComm::new(local_steps, interval, probe_batch)))
        }
        AlgorithmSpec::AdaSync { wait, interval, probe_batch } => {
            Some(Box::new(AdaSync::new(m, wait, interval, probe_batch)))
        }
        AlgorithmSpec::Flanp { participants, local_steps, threshold, selection } => {
            Some(Box::new(Flanp::new(m, participants, local_steps, threshold, selection, seeds)))
        }
        AlgorithmSpec::FedNova { min_local_steps, max_local_steps, extra_step, redraw, weight_by_samples } => {
            let fednova =
                FedNova::new(m, min_local_steps, max_local_steps, extra_step, seeds).redrawn_every_round(redraw);
            Some(Box::new(match objective.shard_sizes().filter(|_| weight_by_samples) {
                Some(sizes) => fednova.weighted_by(&sizes),
                None => fednova,
            }))
        }
        AlgorithmSpec::FedAvg { participants, local_steps, weight_by_samples, deadline } => {
            let fedavg = FedAvg::new(participants, local_steps, seeds).with_deadline(deadline);
            Some(Box::new(match objective.shard_sizes().filter(|_| weight_by_samples) {
                Some(sizes) => fedavg.weighted_by(&sizes),
                None => fedavg,
            }))
        }
        AlgorithmSpec::KSync { wait } => Some(Box::new(KSync { wait })),
        _ => None,
    };
    if let Some(algorithm) = round_algorithm {
        let mut trainer = RoundTrainer::new(algorithm, learner, monitor, m);
        if opts.events {
            let mut driver = RoundSync::new(trainer, m, bytes);
            Engine::new(m, compute, comm, seeds).with_horizon(exp.horizon()).run(&mut driver, sink)?;
            trainer = driver.into_policy();
        } else {
            RoundKernel::new(m, compute, comm, seeds, bytes).with_horizon(exp.horizon()).run(&mut trainer, sink)?;
        }
        return trainer.monitor.finish(&trainer.learner);
    }
    let hooks = AsyncTrainer::new(learner, monitor);
    let mut engine = Engine::new(m, compute, comm, seeds).with_horizon(exp.horizon());
    let (hooks, delays) = match entry.spec {
        AlgorithmSpec::KBatchSync { wait } => {
            (drive(&mut engine, KBatchSync::new(m, wait, u64::MAX, bytes, hooks), sink)?.into_hooks(), None)
        }
        AlgorithmSpec::KAsync { wait } => {
            let s = drive(&mut engine, KAsync::new(m, wait, u64::MAX, bytes, hooks), sink)?;
            let delays = Some(s.delays().into());
            (s.into_hooks(), delays)
        }
        AlgorithmSpec::KBatchAsync { wait } => {
            let s = drive(&mut engine, KBatchAsync::new(m, wait, u64::MAX, bytes, hooks), sink)?;
            let delays = Some(s.delays().into());
            (s.into_hooks(), delays)
        }
        // Asynchronous methods (specs/baselines.md §5–8, §11).
        AlgorithmSpec::Asgd { stepsize } => {
            let s =
                drive(&mut engine, Asgd::new(m, u64::MAX, bytes, asgd_stepsize(stepsize, compute, m)?, hooks), sink)?;
            let delays = Some(s.delays().into());
            (s.into_hooks(), delays)
        }
        AlgorithmSpec::Rennala { rule, leftover } => {
            let s = drive(&mut engine, Rennala::new(m, rule, leftover, u64::MAX, bytes, hooks), sink)?;
            let delays = Some(s.delays().into());
            (s.into_hooks(), delays)
        }
        AlgorithmSpec::Ringmaster { delay_threshold, rule } => {
            let s = drive(&mut engine, Ringmaster::new(m, delay_threshold, rule, u64::MAX, bytes, hooks), sink)?;
            let delays = Some(s.delays().into());
            (s.into_hooks(), delays)
        }
        AlgorithmSpec::FedBuff { params } => {
            let rng = seeds.stream(Purpose::Algorithm, 0, 1);
            let s = drive(&mut engine, FedBuff::new(m, params, u64::MAX, bytes, hooks, rng), sink)?;
            let delays = Some(s.delays().into());
            (s.into_hooks(), delays)
        }
        _ => unreachable!("round-synchronous algorithms are handled above"),
    };
    let mut result = hooks.monitor.finish(&hooks.learner)?;
    result.staleness = delays;
    Ok(result)
}

/// Runs an event-driven strategy to its end on `engine` and hands it back (with its hooks).
fn drive<S: Algorithm>(engine: &mut Engine, mut strategy: S, sink: &mut CsvSink) -> Result<S> {
    engine.run(&mut strategy, sink)?;
    Ok(strategy)
}

/// ω_m = 1/E\[τ_m\], the weights of the objective vanilla asynchronous SGD converges to on
/// heterogeneous data (specs/baselines.md §5), when every worker's mean step time is finite.
fn speed_weights(compute: &ComputeTime, workers: usize) -> Option<Vec<f64>> {
    (0..workers).map(|w| compute.mean(w).filter(|t| t.is_finite() && *t > 0.0).map(|t| 1.0 / t)).collect()
}

/// The stepsize rule of an ASGD entry; a model-based rescaling reads the per-worker mean step
/// times τ_i of the compute-time model.
fn asgd_stepsize(stepsize: AsgdStepsize, compute: &ComputeTime, workers: usize) -> Result<Stepsize> {
    Ok(match stepsize {
        AsgdStepsize::Constant => Stepsize::Constant,
        AsgdStepsize::DelayAdaptive => Stepsize::DelayAdaptive,
        AsgdStepsize::Rescaled { reference, step_times: StepTimes::Model } => {
            let taus = (0..workers).map(|w| compute.mean(w).unwrap_or(f64::INFINITY)).collect();
            Stepsize::Rescaled(Rescaling::from_model(taus, reference)?)
        }
        AsgdStepsize::Rescaled { reference, step_times: StepTimes::Observed } => {
            Stepsize::Rescaled(Rescaling::observed(workers, reference))
        }
    })
}

fn progress_bar(total: u64, wanted: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} rounds {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The directory a results directory defaults to: `results/<experiment name>`.
pub fn default_out_dir(exp: &Experiment) -> PathBuf {
    Path::new("results").join(&exp.name)
}
