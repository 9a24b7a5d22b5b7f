//! Experiment configuration. A TOML file is read into the raw serde structs below
//! (`deny_unknown_fields`, so a misspelt key is an error that names it), command-line overrides
//! are applied to the raw form, and [`RawExperiment::validate`] turns it into the checked
//! [`Experiment`] — the only type the runner sees. Paths in a config file are relative to the
//! file's directory. The raw form, with overrides and the crate version filled in, is what a
//! results directory records as `config.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::algorithms::{dbw, growing_intervals, loscar};
use crate::error::{Error, Result, check_memory, non_negative, positive};
use crate::learner::MergeRule;
use crate::model::Precision;
use crate::sim::{GraphSpec, check_steps_per_round};
use crate::timing::{CommTime, ComputeTime, Link};

/// An experiment file as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Short name (default: the file stem).
    pub name: Option<String>,
    /// What the experiment shows.
    pub description: Option<String>,
    /// Master seeds; every algorithm runs once per seed (default: `[1]`).
    pub seeds: Option<Vec<u64>>,
    /// Maximum rounds (server updates for asynchronous algorithms) per run.
    pub rounds: u64,
    /// Simulated-time budget of a run: no round or update that would end after it is made (what
    /// is still in progress at `max_time` never completes).
    pub max_time: Option<f64>,
    /// Test accuracy in [0, 1] whose first crossing is reported.
    pub target_accuracy: Option<f64>,
    /// Stop a run once the target accuracy is reached.
    #[serde(default)]
    pub stop_at_target: bool,
    /// Evaluate every this many rounds (and at the start and the end).
    pub eval_every: Option<u64>,
    /// The dataset (with `[model] spec`), or absent for a synthetic `[problem]`.
    pub data: Option<RawData>,
    /// The network and its optimiser (`spec` is omitted for a `[problem]`).
    pub model: RawModel,
    /// A synthetic problem with a known optimum instead of a network on a dataset.
    pub problem: Option<RawProblem>,
    /// The simulated cluster.
    pub cluster: RawCluster,
    /// The algorithms to compare.
    pub algorithms: Vec<RawAlgorithm>,
    /// Filled in by stsyn when it records a resolved config; ignored on input.
    pub stsyn_version: Option<String>,
    /// Filled in by stsyn when it records a resolved config: the git commit it was built from
    /// (`-dirty` with local changes); ignored on input.
    pub stsyn_commit: Option<String>,
    /// Filled in by stsyn when it records a resolved config: the directory that the file's
    /// relative paths were resolved against. When present, relative paths are resolved against
    /// it instead of the file's own directory, so a results directory's `config.toml` runs again
    /// from anywhere.
    pub config_dir: Option<String>,
}

/// `[data]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// digits (embedded), cifar10, mnist or synthetic.
    pub dataset: String,
    /// Directory of the CIFAR-10 or MNIST files.
    pub dir: Option<String>,
    /// iid, sorted (about one class per worker at M = 20), dirichlet(alpha=...), or shared.
    pub partition: Option<String>,
    /// Synthetic data: [channels, height, width].
    pub shape: Option<[usize; 3]>,
    /// Synthetic data: number of classes.
    pub classes: Option<usize>,
    /// Synthetic data: training samples.
    pub train_samples: Option<usize>,
    /// Synthetic data: test samples.
    pub test_samples: Option<usize>,
    /// Training samples used to report the training loss (default: up to 10,000).
    pub train_eval_samples: Option<usize>,
}

/// `[model]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Path of the network spec (relative to the config file); omitted for a `[problem]`.
    pub spec: Option<String>,
    /// Minibatch size per local step.
    pub batch: usize,
    /// Local learning rate η.
    pub lr: f64,
    /// Arithmetic of the network's matrix products: `f32` (default) or `bf16` (factors rounded
    /// to bfloat16, f32 accumulation; needs a CPU with AMX-BF16; see `model::gemm_bf16`).
    pub precision: Option<Precision>,
}

/// `[problem]`: a synthetic objective with a known optimum.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawProblem {
    /// `quadratic`: f_m(x) = ½ Σ_j a_j (x_j − c_{m,j})² (see `learner::quadratic`).
    pub kind: String,
    /// d (default: the length of `curvatures`, of a centre, or 1).
    pub dim: Option<usize>,
    /// c_m, one row per worker (default: drawn N(0, center_spread²) per seed).
    pub centers: Option<Vec<Vec<f64>>>,
    /// Spread of drawn centres (default 1).
    pub center_spread: Option<f64>,
    /// a_j (default 1 for every coordinate).
    pub curvatures: Option<Vec<f64>>,
    /// σ of the gradient noise (default 0).
    pub noise: Option<f64>,
    /// x⁰ (default 0).
    pub init: Option<Vec<f64>>,
    /// `noisy_quadratic`: c, the standard deviation of the multiplicative noise (default 1).
    pub multiplicative_noise: Option<f64>,
    /// `piecewise_quadratic`: μ (default 1).
    pub mu: Option<f64>,

    // `logistic` (see `learner::logistic`); `dim` defaults to 100 there.
    /// Training samples per worker (default 64).
    pub samples_per_worker: Option<usize>,
    /// λ, the L2 regularisation (default 1e-3).
    pub ridge: Option<f64>,
    /// h, how far each worker's planted vector is from the common one (default 1).
    pub heterogeneity: Option<f64>,
}

/// `[cluster]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// M.
    pub workers: usize,
    /// Step duration spec (see `stsyn timing --help`).
    pub compute_time: String,
    /// Per-worker speeds spec (default `same`).
    pub speeds: Option<String>,
    /// Uplink latency spec (default none).
    pub uplink: Option<String>,
    /// Downlink latency spec (default none).
    pub downlink: Option<String>,
    /// Uplink bytes per time unit.
    pub uplink_bandwidth: Option<f64>,
    /// Downlink bytes per time unit.
    pub downlink_bandwidth: Option<f64>,
    /// Per-worker multipliers of the uplink and downlink times, a speeds spec (default `same`).
    pub link_speeds: Option<String>,
    /// Worker-to-worker latency spec, per directed edge (default none).
    pub peer_latency: Option<String>,
    /// Worker-to-worker bytes per time unit.
    pub peer_bandwidth: Option<f64>,
}

/// One `[[algorithms]]` entry. Which keys apply depends on `name`; validation
/// rejects keys that do not apply, naming them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAlgorithm {
    /// Which algorithm: stsyn, pasgd, adacomm, adasync, flanp, fednova, fedavg, sync, ksync, kbatch-sync, kasync,
    /// kbatch-async, async, asgd, rescaled-asgd, rennala, malenia, ringmaster, fedbuff, loscar,
    /// local-sgd or dbw (experiments/README.md lists the keys of each).
    pub name: String,
    /// Display name in tables, CSV files and plots (default: the algorithm's name).
    pub label: Option<String>,
    /// K: workers (or gradients) waited for.
    #[serde(alias = "K")]
    pub wait: Option<usize>,
    /// U (or τ): local steps per round.
    #[serde(alias = "U")]
    pub local_steps: Option<u32>,
    /// STSyn: stop a worker after this many steps (Comparisons.py: ⌈1.5U⌉).
    pub max_steps: Option<u32>,
    /// STSyn: drop the worker with the most updates from the average (Comparisons.py).
    pub drop_most_updates: Option<bool>,
    /// FLANP: initial number of participants S; FedAvg: clients per round m.
    pub participants: Option<usize>,
    /// FedAvg: fraction C of the clients per round, m = max(⌊C·M⌋, 1) (default 0.1).
    pub fraction: Option<f64>,
    /// FedAvg: drop the clients not finished this long after the round starts.
    pub deadline: Option<f64>,
    /// FLANP: double S when the norm of the averaged update is at most this (default 0.2).
    pub threshold: Option<f64>,
    /// FLANP: `fastest` (the S fastest of the round train) or `random` (Comparisons.py).
    pub selection: Option<String>,
    /// AdaComm, AdaSync: simulated time between changes of τ or K.
    pub interval: Option<f64>,
    /// AdaComm: test samples in the loss probe (default 400).
    pub probe_batch: Option<usize>,
    /// FedNova: smallest per-worker τ_m (default 8).
    pub min_local_steps: Option<u32>,
    /// FedNova: largest per-worker τ_m (default 12).
    pub max_local_steps: Option<u32>,
    /// FedNova: run τ_m + 1 steps but charge τ_m (Comparisons.py).
    pub extra_step: Option<bool>,
    /// FedNova: draw the τ_m again every round (FedNova's own experiments) instead of once
    /// before training (Comparisons.py, the default).
    pub redraw_local_steps: Option<bool>,
    /// FedNova: p_m = `samples` (n_m/n, the default, as FedNova's code) or `uniform` (1/M, as
    /// Comparisons.py); the same for equal shards. FedAvg: n_k/Σ n_j over the round's clients
    /// (`samples`, the default) or 1/m.
    pub weighting: Option<String>,
    /// LOSCAR: N_i = max(1, ⌊budget / E\[τ_i\]⌋) instead of one `local_steps` for all.
    pub compute_budget: Option<f64>,
    /// LOSCAR: p = K/d, the fraction of coordinates averaged each round (default 1).
    pub sparsity: Option<f64>,
    /// LOSCAR: `until_arrival` (default) or `fixed_q`.
    pub overlap_mode: Option<String>,
    /// LOSCAR: Q, the overlap steps of `fixed_q` (0: no overlap).
    pub overlap_steps: Option<u32>,
    /// LOSCAR: `delay_corrected` (default) or `naive`.
    pub merge: Option<String>,
    /// LOSCAR: where S_r comes from: `shared_seed` (default; no index is sent) or `server` (the
    /// server draws it and sends the K indices with the average, 4·K more bytes down).
    pub mask: Option<String>,
    /// local-sgd: T, the total number of local steps.
    pub total_steps: Option<u64>,
    /// local-sgd: the communication schedule (default `increasing`).
    pub schedule: Option<String>,
    /// local-sgd: `constant` (default), `inverse(alpha, mu, beta)` or `inverse_capped(eta, smoothness)`.
    pub step_size: Option<String>,
    /// dbw: the graph (ring, torus, erdos_renyi(p=...), regular(d=...), complete, file(path)).
    pub graph: Option<String>,
    /// dbw: `static` or `dynamic` (default: static when backup_workers is set, else dynamic).
    pub backup: Option<String>,
    /// dbw: b, the static number of backup workers.
    pub backup_workers: Option<usize>,
    /// dbw: `uniform` (default) or `metropolis` weights.
    pub mixing: Option<String>,
    /// dbw: `combine_then_adapt` (default) or `adapt_then_combine`.
    pub order: Option<String>,
    /// Override of `[model] lr`.
    pub lr: Option<f64>,
    /// Override of `[model] batch`.
    pub batch: Option<usize>,
    /// Override of the experiment's `rounds`.
    pub rounds: Option<u64>,
    /// Override of the experiment's `eval_every`.
    pub eval_every: Option<u64>,

    // Asynchronous methods (specs/baselines.md §5–8, §11). Rennala and Malenia read `wait` as
    // their batch size S; FedBuff reads `wait` as its buffer size K and `local_steps` as Q.
    /// asgd: γ_k = γ·min(1, M/δ_k) instead of γ (default false).
    pub delay_adaptive: Option<bool>,
    /// rescaled-asgd: τ_ref, `max` (default) or `mean`.
    pub reference: Option<String>,
    /// rescaled-asgd: τ_i from the compute-time `model` (default) or the `observed` running mean.
    pub step_times: Option<String>,
    /// ringmaster: R, the delay threshold.
    #[serde(alias = "R")]
    pub delay_threshold: Option<u64>,
    /// rennala, malenia, ringmaster: stale work is `cancel`led (default) or `ignore`d.
    pub stale: Option<String>,
    /// fedbuff: a in the staleness weight 1/(1 + s)^a (default 0.5).
    pub staleness_exponent: Option<f64>,
    /// fedbuff: the server learning rate η_g (default 1).
    pub server_lr: Option<f64>,
    /// fedbuff: C, clients training at once (default M).
    pub concurrency: Option<usize>,

    /// A grid: `grid = { wait = [1, 5, 10], lr = [0.05, 0.1] }` makes one entry per combination
    /// of the listed values (keys in the order written, the last varying fastest), each
    /// with the entry's other keys. Its label is `label` with `{wait}`, `{lr}` replaced by the
    /// values, or, without placeholders, the label (or name) followed by `wait=1, lr=0.05`.
    /// Expanded when the file is read: the resolved `config.toml` lists the entries.
    pub grid: Option<toml::Table>,
}

/// How FLANP picks the workers that train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The S workers that finish τ steps first in the round (the FLANP paper's idea).
    Fastest,
    /// S workers chosen uniformly at random, charged the time of the S-th fastest of all M
    /// (the STSyn authors' Comparisons.py).
    Random,
}

/// A checked algorithm.
#[derive(Clone, Debug, PartialEq)]
pub enum AlgorithmSpec {
    /// STSyn (specs/stsyn.md §1.3), with the Comparisons.py switches.
    Stsyn {
        /// K.
        wait: usize,
        /// U.
        local_steps: u32,
        /// Cap on steps per round.
        max_steps: Option<u32>,
        /// Drop the worker with the most updates from the average.
        drop_most_updates: bool,
    },
    /// AdaSync: K-sync whose K grows as the loss falls.
    AdaSync {
        /// K_0.
        wait: usize,
        /// Time between K updates.
        interval: f64,
        /// Samples in the loss probe.
        probe_batch: usize,
    },
    /// Periodic-averaging local SGD with full participation.
    Pasgd {
        /// τ.
        local_steps: u32,
    },
    /// AdaComm: PASGD whose τ shrinks with the loss.
    AdaComm {
        /// τ_0.
        local_steps: u32,
        /// Time between τ updates.
        interval: f64,
        /// Samples in the loss probe.
        probe_batch: usize,
    },
    /// FLANP with the doubling rule.
    Flanp {
        /// Initial S.
        participants: usize,
        /// τ.
        local_steps: u32,
        /// Doubling threshold on the averaged update's norm.
        threshold: f64,
        /// Which workers train.
        selection: Selection,
    },
    /// FedAvg with m sampled clients a round.
    FedAvg {
        /// m.
        participants: usize,
        /// H.
        local_steps: u32,
        /// Weights n_k/Σ n_j (true) or 1/m.
        weight_by_samples: bool,
        /// D: drop the clients not finished by then.
        deadline: Option<f64>,
    },
    /// FedNova with per-worker τ_m drawn once, or every round.
    FedNova {
        /// Smallest τ_m.
        min_local_steps: u32,
        /// Largest τ_m.
        max_local_steps: u32,
        /// τ_m + 1 steps charged as τ_m.
        extra_step: bool,
        /// τ_m drawn again every round.
        redraw: bool,
        /// p_m = n_m/n (true) or 1/M.
        weight_by_samples: bool,
    },
    /// Fully synchronous SGD: all M workers, U local steps (U = 1: minibatch SGD).
    Sync {
        /// U.
        local_steps: u32,
    },
    /// K-sync SGD.
    KSync {
        /// K.
        wait: usize,
    },
    /// K-batch-sync SGD.
    KBatchSync {
        /// K.
        wait: usize,
    },
    /// K-async SGD.
    KAsync {
        /// K.
        wait: usize,
    },
    /// K-batch-async SGD (K = 1: asynchronous SGD).
    KBatchAsync {
        /// K.
        wait: usize,
    },
    /// LOSCAR-SGD: overlap and delay-corrected sparse averaging.
    Loscar(loscar::Settings),
    /// Local SGD on a communication schedule (growing intervals, one-shot averaging, budgets).
    LocalSgd(growing_intervals::Settings),
    /// Decentralized SGD with (dynamic) backup workers.
    Dbw(dbw::Settings),

    // Asynchronous methods (specs/baselines.md §5–8, §11).
    /// Asynchronous SGD, vanilla or delay-adaptive, or Rescaled ASGD.
    Asgd {
        /// The stepsize rule.
        stepsize: AsgdStepsize,
    },
    /// Rennala or Malenia SGD.
    Rennala {
        /// When a round ends and how its gradients combine (with S).
        rule: crate::algorithms::rennala::Rule,
        /// What happens to computations running at the end of a round.
        leftover: crate::algorithms::rennala::Leftover,
    },
    /// Ringmaster ASGD.
    Ringmaster {
        /// R.
        delay_threshold: u64,
        /// Version 1 (ignore) or 2 (cancel).
        rule: crate::algorithms::ringmaster::StaleRule,
    },
    /// FedBuff.
    FedBuff {
        /// K, Q, a, η_g, C.
        params: crate::algorithms::fedbuff::FedBuffParams,
    },
}

/// The stepsize rule of an `asgd` or `rescaled-asgd` entry (the learner-independent part; a
/// model-based rescaling gets its τ_i from the compute-time model when the run starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsgdStepsize {
    /// γ.
    Constant,
    /// γ·min(1, M/δ).
    DelayAdaptive,
    /// γ·τ_i/τ_ref.
    Rescaled {
        /// τ_ref.
        reference: crate::algorithms::rescaled_asgd::Reference,
        /// Where τ_i comes from.
        step_times: crate::algorithms::rescaled_asgd::StepTimes,
    },
}

/// Warnings about settings that no algorithm of the experiment uses: only `dbw` sends
/// worker-to-worker messages, and it sends nothing to a server.
fn unused_links(c: &RawCluster, algorithms: &[AlgorithmEntry]) -> Vec<String> {
    let is_dbw = |a: &AlgorithmEntry| matches!(a.spec, AlgorithmSpec::Dbw(_));
    let set =
        |keys: &[(&str, bool)]| keys.iter().filter(|k| k.1).map(|k| format!("cluster.{}", k.0)).collect::<Vec<_>>();
    let mut warnings = Vec::new();
    let peer = set(&[("peer_latency", c.peer_latency.is_some()), ("peer_bandwidth", c.peer_bandwidth.is_some())]);
    if !peer.is_empty() && !algorithms.iter().any(is_dbw) {
        warnings.push(format!(
            "{} not used: only dbw sends worker-to-worker messages, and this experiment runs none",
            peer.join(", ")
        ));
    }
    let server = set(&[
        ("uplink", c.uplink.is_some()),
        ("downlink", c.downlink.is_some()),
        ("uplink_bandwidth", c.uplink_bandwidth.is_some()),
        ("downlink_bandwidth", c.downlink_bandwidth.is_some()),
        ("link_speeds", c.link_speeds.is_some()),
    ]);
    if !server.is_empty() && algorithms.iter().all(is_dbw) {
        warnings.push(format!(
            "{} not used: dbw sends no messages to a server, only to its neighbours (cluster.peer_latency, cluster.peer_bandwidth)",
            server.join(", ")
        ));
    }
    warnings
}

/// Fails when `dataset` is built in (digits, synthetic) but a directory was given by `key`.
fn reads_no_directory(key: &str, dir: impl std::fmt::Display, dataset: &str) -> Result<()> {
    if matches!(dataset, "digits" | "synthetic") {
        return Err(Error::invalid(key, dir, format!("dataset = '{dataset}' is built in and reads no directory")));
    }
    Ok(())
}

/// The `{name}` placeholders of a label (a name: letters, digits and `_`, not starting with a
/// digit).
fn placeholders(label: &str) -> impl Iterator<Item = &str> {
    label.split('{').skip(1).filter_map(|rest| {
        let name = rest.split_once('}')?.0;
        let word = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        word.then_some(name)
    })
}

/// Most entries one grid may make.
const MAX_GRID_ENTRIES: usize = 10_000;

/// The entries of `entry` (the `i`-th), one per combination of `grid`'s values.
fn expand_grid(i: usize, entry: &RawAlgorithm, grid: &toml::Table) -> Result<Vec<RawAlgorithm>> {
    let base_label = entry.label.clone().unwrap_or_else(|| entry.name.clone());
    let field = |key: &str| format!("algorithms[{i}] ('{base_label}').grid.{key}");
    let toml::Value::Table(mut base) =
        toml::Value::try_from(entry).map_err(|e| Error::Config(format!("algorithms[{i}] ('{base_label}'): {e}")))?
    else {
        unreachable!("an entry serialises to a table")
    };
    base.remove("grid");
    let mut axes = Vec::new();
    let mut total = 1usize;
    for (key, values) in grid {
        if matches!(key.as_str(), "name" | "label" | "grid") {
            return Err(Error::Config(format!("{}: {key} cannot be swept; give one entry per value", field(key))));
        }
        if base.contains_key(key) {
            return Err(Error::Config(format!(
                "{}: {key} is also a key of the entry; give it in one place",
                field(key)
            )));
        }
        let values = match values {
            toml::Value::Array(v) if !v.is_empty() => v,
            toml::Value::Array(_) => return Err(Error::invalid(field(key), "[]", "lists no value")),
            other => {
                return Err(Error::invalid(
                    field(key),
                    other,
                    format!("must be a list of values, e.g. {key} = [1, 2]"),
                ));
            }
        };
        total = total.saturating_mul(values.len());
        axes.push((key.as_str(), values));
    }
    if let Some(unknown) = placeholders(&base_label).find(|p| !axes.iter().any(|(key, _)| key == p)) {
        let keys: Vec<String> = axes.iter().map(|(key, _)| format!("{{{key}}}")).collect();
        return Err(Error::invalid(
            format!("algorithms[{i}].label"),
            format!("'{base_label}'"),
            format!("has the placeholder {{{unknown}}}, which is not a key of its grid ({})", keys.join(", ")),
        ));
    }
    if total > MAX_GRID_ENTRIES {
        return Err(Error::invalid(
            format!("algorithms[{i}] ('{base_label}').grid"),
            format!("{total} combinations"),
            format!("makes at most {MAX_GRID_ENTRIES} entries"),
        ));
    }
    let shown = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut entries = Vec::with_capacity(total);
    for n in 0..total {
        // mixed radix: the last key varies fastest
        let (mut rest, mut point) = (n, Vec::with_capacity(axes.len()));
        for (key, values) in axes.iter().rev() {
            point.push((*key, &values[rest % values.len()]));
            rest /= values.len();
        }
        point.reverse();
        let mut table = base.clone();
        let mut label = base_label.clone();
        let templated = point.iter().any(|(key, _)| label.contains(&format!("{{{key}}}")));
        for (key, value) in &point {
            table.insert(key.to_string(), (*value).clone());
            label = label.replace(&format!("{{{key}}}"), &shown(value));
        }
        if !templated {
            let values: Vec<String> = point.iter().map(|(key, value)| format!("{key}={}", shown(value))).collect();
            label = format!("{label} {}", values.join(", "));
        }
        table.insert("label".into(), toml::Value::String(label.clone()));
        let raw: RawAlgorithm = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(format!("algorithms[{i}] ('{label}'): {}", e.message())))?;
        entries.push(raw);
    }
    Ok(entries)
}

/// A checked `[[algorithms]]` entry with its resolved run settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AlgorithmEntry {
    /// Display name (unique within the experiment).
    pub label: String,
    /// What to run.
    pub spec: AlgorithmSpec,
    /// η.
    pub lr: f64,
    /// Minibatch size.
    pub batch: usize,
    /// Maximum rounds.
    pub rounds: u64,
    /// Evaluation period in rounds.
    pub eval_every: u64,
}

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// The embedded 8×8 digits.
    Digits,
    /// CIFAR-10 binary files in a directory.
    Cifar10(PathBuf),
    /// MNIST IDX files in a directory.
    Mnist(PathBuf),
    /// Seeded synthetic images.
    Synthetic {
        /// [C, H, W].
        shape: [usize; 3],
        /// Classes.
        classes: usize,
        /// Training samples.
        train: usize,
        /// Test samples.
        test: usize,
    },
}

/// What is trained.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A network from `models/` on a dataset split over the workers.
    Network {
        /// Network spec file.
        spec: PathBuf,
        /// Data source.
        data: DataSource,
        /// Partition spec (parsed by the data module), or `shared`.
        partition: String,
        /// Training samples for the training loss.
        train_eval_samples: usize,
        /// Arithmetic of the matrix products.
        precision: Precision,
    },
    /// Spiridonoff et al.'s quadratic with multiplicative and additive noise
    /// (`learner::homogeneous`).
    NoisyQuadratic {
        /// M.
        workers: usize,
        /// a_i.
        curvatures: Vec<f64>,
        /// c.
        multiplicative_noise: f64,
        /// σ.
        noise: f64,
        /// x⁰.
        init: Vec<f64>,
    },
    /// Spiridonoff et al.'s piecewise quadratic (`learner::homogeneous`).
    PiecewiseQuadratic {
        /// M.
        workers: usize,
        /// μ.
        mu: f64,
        /// σ.
        noise: f64,
        /// x⁰.
        init: Vec<f64>,
    },
    /// L2-regularised logistic regression on synthetic per-worker data (`learner::logistic`).
    Logistic {
        /// M.
        workers: usize,
        /// d.
        dim: usize,
        /// n per worker.
        samples: usize,
        /// λ.
        ridge: f64,
        /// h.
        heterogeneity: f64,
    },
    /// Heterogeneous quadratics (`learner::quadratic`).
    Quadratic {
        /// M.
        workers: usize,
        /// d.
        dim: usize,
        /// Explicit centres, or None to draw them per seed.
        centers: Option<Vec<Vec<f64>>>,
        /// Spread of drawn centres.
        center_spread: f64,
        /// a_j.
        curvatures: Vec<f64>,
        /// σ.
        noise: f64,
        /// x⁰.
        init: Vec<f64>,
    },
}

/// A checked experiment: everything the runner needs.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Name.
    pub name: String,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Simulated-time budget: no round or update ending after it is made.
    pub max_time: Option<f64>,
    /// Reported target accuracy.
    pub target_accuracy: Option<f64>,
    /// Stop at the target.
    pub stop_at_target: bool,
    /// What is trained.
    pub problem: Problem,
    /// M.
    pub workers: usize,
    /// Step durations.
    pub compute: ComputeTime,
    /// Message durations.
    pub comm: CommTime,
    /// Worker-to-worker message durations (every edge, unless its edge list says otherwise).
    pub peer: Link,
    /// The algorithms.
    pub algorithms: Vec<AlgorithmEntry>,
    /// The raw config as resolved (overrides applied), for `config.toml`.
    pub resolved: RawExperiment,
    /// Settings that are valid but will not act as a user may expect (printed before the run).
    pub warnings: Vec<String>,
}

impl Experiment {
    /// The simulated time after which nothing happens (`max_time`, or infinity).
    pub fn horizon(&self) -> f64 {
        self.max_time.unwrap_or(f64::INFINITY)
    }
}

/// Command-line overrides of the common knobs.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replace the seeds.
    pub seeds: Option<Vec<u64>>,
    /// Replace `rounds` (and every per-algorithm `rounds`).
    pub rounds: Option<u64>,
    /// Replace `[cluster] workers`.
    pub workers: Option<usize>,
    /// Replace `[data] dir` (relative to the working directory).
    pub data_dir: Option<PathBuf>,
    /// Replace `[cluster] compute_time` (a trace file relative to the working directory).
    pub compute_time: Option<String>,
    /// Replace `[model] precision`.
    pub precision: Option<Precision>,
    /// Replace `[cluster] speeds`.
    pub speeds: Option<String>,
    /// Replace `[cluster] uplink` (`none` for instantaneous).
    pub uplink: Option<String>,
    /// Replace `[cluster] downlink`.
    pub downlink: Option<String>,
    /// Replace `[cluster] link_speeds`.
    pub link_speeds: Option<String>,
}

/// A `trace(file)` compute time given on the command line names its file relative to the
/// working directory, like every other command-line path; made absolute, it is not resolved
/// against the config's directory.
fn cli_trace_path_made_absolute(spec: &str) -> Result<String> {
    let t = spec.trim();
    match t.strip_prefix("trace(").and_then(|r| r.strip_suffix(')')) {
        Some(inner) => {
            let path = inner.trim().strip_prefix("path=").unwrap_or(inner.trim());
            let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
            Ok(format!("trace({})", abs.display()))
        }
        None => Ok(spec.to_string()),
    }
}

impl RawExperiment {
    /// Reads a config file and expands the grids of its entries ([`RawAlgorithm::grid`]).
    pub fn read(path: &Path) -> Result<RawExperiment> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut raw: RawExperiment =
            toml::from_str(&text).map_err(|e| Error::bad_file(path, toml_error(&e, Some(&text))))?;
        raw.expand_grids()?;
        Ok(raw)
    }

    /// Replaces every entry that has a grid by its entries, in place.
    pub fn expand_grids(&mut self) -> Result<()> {
        let mut expanded = Vec::with_capacity(self.algorithms.len());
        for (i, entry) in self.algorithms.iter().enumerate() {
            match &entry.grid {
                None => expanded.push(entry.clone()),
                Some(grid) => expanded.extend(expand_grid(i, entry, grid)?),
            }
        }
        self.algorithms = expanded;
        Ok(())
    }

    /// Applies command-line overrides. A data directory given on the command line is made
    /// absolute so that it does not get resolved against the config's directory.
    pub fn apply(&mut self, o: &Overrides) -> Result<()> {
        if let Some(seeds) = &o.seeds {
            self.seeds = Some(seeds.clone());
        }
        if let Some(r) = o.rounds {
            self.rounds = r;
            for a in &mut self.algorithms {
                a.rounds = None;
            }
        }
        if let Some(m) = o.workers {
            self.cluster.workers = m;
        }
        if let Some(c) = &o.compute_time {
            self.cluster.compute_time = cli_trace_path_made_absolute(c)?;
        }
        if o.precision.is_some() {
            self.model.precision = o.precision;
        }
        let cluster = &mut self.cluster;
        for (field, value) in [
            (&mut cluster.speeds, &o.speeds),
            (&mut cluster.uplink, &o.uplink),
            (&mut cluster.downlink, &o.downlink),
            (&mut cluster.link_speeds, &o.link_speeds),
        ] {
            if value.is_some() {
                field.clone_from(value);
            }
        }
        if let Some(dir) = &o.data_dir {
            let abs = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
            let data = self
                .data
                .as_mut()
                .ok_or_else(|| Error::Config("--data applies to experiments with a [data] section".into()))?;
            reads_no_directory("--data", dir.display(), &data.dataset)?;
            data.dir = Some(abs.display().to_string());
        }
        Ok(())
    }

    /// Checks everything; `base` is the directory relative paths are resolved against.
    /// A recorded config's `config_dir` takes the place of `base`.
    pub fn validate(&self, base: &Path, default_name: &str) -> Result<Experiment> {
        let base = self.config_dir.as_deref().map_or(base, Path::new);
        let seeds = self.seeds.clone().unwrap_or_else(|| vec![1]);
        if seeds.is_empty() {
            return Err(Error::invalid("seeds", "[]", "give at least one seed"));
        }
        if let Some(dup) = seeds.iter().enumerate().find_map(|(i, s)| seeds[..i].contains(s).then_some(s)) {
            return Err(Error::invalid("seeds", dup, "appears twice: the runs would be identical"));
        }
        if let Some(name) = &self.name
            && (name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']))
        {
            // the name is the directory under results/ when --out is not given
            return Err(Error::invalid(
                "name",
                format!("{name:?}"),
                "must be a plain file name (no '/', not starting with '.')",
            ));
        }
        if self.rounds == 0 {
            return Err(Error::invalid("rounds", 0, "must be at least 1"));
        }
        if let Some(t) = self.max_time {
            positive("max_time", t)?;
        }
        if let Some(a) = self.target_accuracy
            && !(a.is_finite() && (0.0..=1.0).contains(&a))
        {
            return Err(Error::invalid("target_accuracy", a, "must be a fraction in [0, 1] (e.g. 0.7 for 70 %)"));
        }
        if self.stop_at_target && self.target_accuracy.is_none() {
            return Err(Error::invalid("stop_at_target", true, "needs target_accuracy"));
        }
        let eval_every = self.eval_every.unwrap_or(10);
        if eval_every == 0 {
            return Err(Error::invalid("eval_every", 0, "must be at least 1"));
        }
        let m = self.cluster.workers;
        if m == 0 {
            return Err(Error::invalid("cluster.workers (M)", 0, "must be at least 1"));
        }
        crate::sim::engine::check_workers(m)?;
        crate::algorithms::timing::check_worker_memory("cluster.workers (M)", m)?;
        let problem = match (&self.problem, &self.data, &self.model.spec) {
            (Some(_), None, None) if self.model.precision.is_some() => {
                return Err(Error::Config(
                    "model.precision (or --precision) applies to networks, not to a [problem]: remove it".into(),
                ));
            }
            (Some(p), None, None) => p.validate(m)?,
            (None, Some(data), Some(spec)) => Problem::Network {
                spec: base.join(spec),
                data: data.validate(base)?,
                partition: data.partition.clone().unwrap_or_else(|| "iid".into()),
                train_eval_samples: data.train_eval_samples.unwrap_or(10_000),
                precision: self.model.precision.unwrap_or_default(),
            },
            (Some(_), _, _) => {
                return Err(Error::Config("a [problem] replaces [data] and [model] spec: remove them".into()));
            }
            (None, None, _) => {
                return Err(Error::Config("the experiment needs [data] (with [model] spec) or a [problem]".into()));
            }
            (None, Some(_), None) => return Err(Error::Config("[model] needs spec, the network file to train".into())),
        };
        let c = &self.cluster;
        let compute = ComputeTime::parse(&c.compute_time, c.speeds.as_deref().unwrap_or("same"), m, base).map_err(
            |e| match e {
                // name the keys of the file, as the other settings do
                Error::Parse { what, input, reason } => {
                    let what = match what.as_str() {
                        "compute time" => "cluster.compute_time".to_string(),
                        "speeds" => "cluster.speeds".to_string(),
                        _ => what,
                    };
                    Error::Parse { what, input, reason }
                }
                e => e,
            },
        )?;
        let comm = CommTime::new(
            Link::parse(
                "cluster.uplink",
                c.uplink.as_deref().unwrap_or("none"),
                "cluster.uplink_bandwidth",
                c.uplink_bandwidth,
            )?,
            Link::parse(
                "cluster.downlink",
                c.downlink.as_deref().unwrap_or("none"),
                "cluster.downlink_bandwidth",
                c.downlink_bandwidth,
            )?,
        )
        .with_link_speeds("cluster.link_speeds", c.link_speeds.as_deref().unwrap_or("same"), m)?;
        let peer = Link::parse(
            "cluster.peer_latency",
            c.peer_latency.as_deref().unwrap_or("none"),
            "cluster.peer_bandwidth",
            c.peer_bandwidth,
        )?;
        if self.model.batch == 0 {
            return Err(Error::invalid("model.batch", 0, "must be at least 1"));
        }
        positive("model.lr", self.model.lr)?;
        if self.algorithms.is_empty() {
            return Err(Error::Config("the experiment lists no [[algorithms]]".into()));
        }
        let mut algorithms = Vec::new();
        for (i, raw) in self.algorithms.iter().enumerate() {
            let entry = raw.validate(i, m, self, eval_every)?;
            if algorithms.iter().any(|a: &AlgorithmEntry| a.label == entry.label) {
                return Err(Error::Config(format!(
                    "two algorithms are labelled '{}': give each a distinct label",
                    entry.label
                )));
            }
            algorithms.push(entry);
        }
        let mut warnings = unused_links(c, &algorithms);
        let without_accuracy = matches!(
            problem,
            Problem::Quadratic { .. } | Problem::NoisyQuadratic { .. } | Problem::PiecewiseQuadratic { .. }
        );
        if without_accuracy && self.target_accuracy.is_some() {
            warnings.push("target_accuracy not used: a quadratic [problem] has no test accuracy".to_string());
        }
        let network = matches!(problem, Problem::Network { .. });
        if !network {
            for (raw, entry) in self.algorithms.iter().zip(&algorithms) {
                if raw.probe_batch.is_some() {
                    warnings.push(format!(
                        "algorithms ('{}').probe_batch not used: on a [problem] the probe is the exact objective",
                        entry.label
                    ));
                }
            }
        }
        for a in &algorithms {
            if let AlgorithmSpec::LocalSgd(s) = &a.spec {
                // the schedule, with its intervals checked
                let averagings = growing_intervals::ScheduledLocalSgd::new(s, m)?.rounds();
                if a.rounds < averagings {
                    warnings.push(format!(
                        "'{}' stops after rounds = {} of its schedule's {averagings} averagings, before T = {} local steps",
                        a.label, a.rounds, s.total_steps
                    ));
                }
            }
        }
        check_overlap_algorithms(&mut algorithms, base, m, &seeds, &compute)?;
        check_rescaled_step_times(&algorithms, &compute, m)?;
        let mut resolved = self.clone();
        resolved.name = Some(self.name.clone().unwrap_or_else(|| default_name.to_string()));
        resolved.seeds = Some(seeds.clone());
        resolved.eval_every = Some(eval_every);
        resolved.cluster.speeds = Some(c.speeds.clone().unwrap_or_else(|| "same".into()));
        if let (Some(data), Problem::Network { partition, train_eval_samples, .. }) = (&mut resolved.data, &problem) {
            data.partition = Some(partition.clone());
            data.train_eval_samples = Some(*train_eval_samples);
        }
        if let Problem::Network { precision, .. } = &problem {
            resolved.model.precision = Some(*precision);
        }
        for (raw, entry) in resolved.algorithms.iter_mut().zip(&algorithms) {
            raw.fill_defaults(entry, network);
        }
        resolved.stsyn_version = Some(env!("CARGO_PKG_VERSION").to_string());
        resolved.stsyn_commit = Some(env!("STSYN_COMMIT").to_string());
        let base_abs = std::path::absolute(base).map_err(|e| Error::io(base, e))?;
        resolved.config_dir = Some(base_abs.display().to_string());
        Ok(Experiment {
            name: self.name.clone().unwrap_or_else(|| default_name.to_string()),
            seeds,
            max_time: self.max_time,
            target_accuracy: self.target_accuracy,
            stop_at_target: self.stop_at_target,
            problem,
            workers: m,
            compute,
            comm,
            peer,
            algorithms,
            resolved,
            warnings,
        })
    }
}

impl RawProblem {
    fn validate(&self, workers: usize) -> Result<Problem> {
        // the keys given, and the ones each kind takes (besides `kind` and `dim`)
        let given = [
            ("centers", self.centers.is_some()),
            ("center_spread", self.center_spread.is_some()),
            ("curvatures", self.curvatures.is_some()),
            ("noise", self.noise.is_some()),
            ("init", self.init.is_some()),
            ("multiplicative_noise", self.multiplicative_noise.is_some()),
            ("mu", self.mu.is_some()),
            ("samples_per_worker", self.samples_per_worker.is_some()),
            ("ridge", self.ridge.is_some()),
            ("heterogeneity", self.heterogeneity.is_some()),
        ];
        let takes: &[&str] = match self.kind.as_str() {
            "quadratic" => &["centers", "center_spread", "curvatures", "noise", "init"],
            "logistic" => &["samples_per_worker", "ridge", "heterogeneity"],
            "noisy_quadratic" => &["curvatures", "multiplicative_noise", "noise", "init"],
            "piecewise_quadratic" => &["mu", "noise", "init"],
            _ => &[], // an unknown kind is reported below
        };
        if !takes.is_empty()
            && let Some((key, _)) = given.iter().find(|(key, set)| *set && !takes.contains(key))
        {
            return Err(Error::Config(format!("problem.{key} does not apply to kind = '{}'", self.kind)));
        }
        match self.kind.as_str() {
            "logistic" => {
                let dim = self.dim.unwrap_or(100);
                let samples = self.samples_per_worker.unwrap_or(64);
                if dim == 0 {
                    return Err(Error::invalid("problem.dim", 0, "must be at least 1"));
                }
                if samples == 0 {
                    return Err(Error::invalid("problem.samples_per_worker", 0, "must be at least 1"));
                }
                check_problem_memory(
                    "problem.dim × problem.samples_per_worker × M",
                    format!("{dim} × {samples} × {workers}"),
                    dim,
                    workers as u128 * samples as u128,
                    4,
                )?;
                Ok(Problem::Logistic {
                    workers,
                    dim,
                    samples,
                    ridge: non_negative("problem.ridge", self.ridge.unwrap_or(1e-3))?,
                    heterogeneity: non_negative("problem.heterogeneity", self.heterogeneity.unwrap_or(1.0))?,
                })
            }
            "quadratic" => {
                let dim = self
                    .dim
                    .or(self.curvatures.as_ref().map(Vec::len))
                    .or(self.centers.as_ref().and_then(|c| c.first()).map(Vec::len))
                    .or(self.init.as_ref().map(Vec::len))
                    .unwrap_or(1);
                if dim == 0 {
                    return Err(Error::invalid("problem.dim", 0, "must be at least 1"));
                }
                check_problem_memory("problem.dim × M", format!("{dim} × {workers}"), dim, workers as u128, 8)?;
                for (key, values) in [("curvatures", &self.curvatures), ("init", &self.init)] {
                    if let Some(v) = values
                        && v.len() != dim
                    {
                        return Err(Error::invalid(
                            format!("problem.{key}"),
                            format!("{} values", v.len()),
                            format!("must have dim = {dim} values"),
                        ));
                    }
                }
                if let Some(c) = &self.centers
                    && c.len() != workers
                {
                    return Err(Error::invalid(
                        "problem.centers",
                        format!("{} rows", c.len()),
                        format!("needs one row per worker (M = {workers})"),
                    ));
                }
                let center_spread = non_negative("problem.center_spread", self.center_spread.unwrap_or(1.0))?;
                let problem = Problem::Quadratic {
                    workers,
                    dim,
                    centers: self.centers.clone(),
                    center_spread,
                    curvatures: self.curvatures.clone().unwrap_or_else(|| vec![1.0; dim]),
                    noise: self.noise.unwrap_or(0.0),
                    init: self.init.clone().unwrap_or_else(|| vec![0.0; dim]),
                };
                problem.quadratic(&crate::rng::Seeds::new(0))?; // checks sizes and values
                Ok(problem)
            }
            "noisy_quadratic" | "piecewise_quadratic" => self.validate_homogeneous(workers),
            other => Err(Error::invalid(
                "problem.kind",
                other,
                "expected quadratic, noisy_quadratic, piecewise_quadratic or logistic",
            )),
        }
    }
}

impl Problem {
    /// The quadratic of a seed (centres drawn from the seed unless given).
    pub fn quadratic(&self, seeds: &crate::rng::Seeds) -> Result<crate::learner::Quadratic> {
        match self {
            Problem::Quadratic { workers, dim, centers, center_spread, curvatures, noise, init } => {
                let centers = match centers {
                    Some(c) => c.clone(),
                    None => crate::learner::Quadratic::random_centers(*workers, *dim, *center_spread, seeds),
                };
                crate::learner::Quadratic::new(centers, curvatures.clone(), *noise, init.clone())
            }
            _ => Err(Error::Config("not a quadratic problem".into())),
        }
    }

    /// The logistic-regression data of a seed.
    pub fn logistic(&self, seeds: &crate::rng::Seeds) -> Result<crate::learner::LogisticData> {
        match self {
            Problem::Logistic { workers, dim, samples, ridge, heterogeneity } => {
                crate::learner::LogisticData::generate(*workers, *dim, *samples, *ridge, *heterogeneity, seeds)
            }
            _ => Err(Error::Config("not a logistic problem".into())),
        }
    }
}

impl RawData {
    fn validate(&self, base: &Path) -> Result<DataSource> {
        let dir = |hint: &str| -> Result<PathBuf> {
            let d = self.dir.as_ref().ok_or_else(|| {
                Error::Config(format!("data.dataset = '{}' needs data.dir (or --data DIR); {hint}", self.dataset))
            })?;
            Ok(base.join(d))
        };
        let synthetic_keys = self.shape.is_some()
            || self.classes.is_some()
            || self.train_samples.is_some()
            || self.test_samples.is_some();
        if let Some(dir) = &self.dir {
            reads_no_directory("data.dir", dir, &self.dataset)?;
        }
        let source = match self.dataset.as_str() {
            "digits" => DataSource::Digits,
            "cifar10" | "cifar-10" => DataSource::Cifar10(dir(crate::data::CIFAR10_FILES)?),
            "mnist" => DataSource::Mnist(dir(crate::data::MNIST_FILES)?),
            "synthetic" => {
                let shape = self.shape.unwrap_or([1, 8, 8]);
                if shape.contains(&0) {
                    return Err(Error::invalid("data.shape", format!("{shape:?}"), "sizes must be at least 1"));
                }
                let classes = self.classes.unwrap_or(10);
                if classes < 2 {
                    return Err(Error::invalid("data.classes", classes, "must be at least 2"));
                }
                let (train, test) = (self.train_samples.unwrap_or(10_000), self.test_samples.unwrap_or(2_000));
                if train == 0 || test == 0 {
                    return Err(Error::invalid(
                        "data.train_samples/test_samples",
                        format!("{train}/{test}"),
                        "must be at least 1",
                    ));
                }
                let floats = shape.iter().fold(1u128, |n, &d| n.saturating_mul(d as u128));
                let bytes = floats.saturating_mul(4).saturating_mul(train as u128 + test as u128);
                check_memory("data.train_samples", train, bytes, &format!("{floats} floats per image"))?;
                return Ok(DataSource::Synthetic { shape, classes, train, test });
            }
            other => return Err(Error::invalid("data.dataset", other, "expected digits, cifar10, mnist or synthetic")),
        };
        if synthetic_keys {
            return Err(Error::Config(format!(
                "data.shape/classes/train_samples/test_samples apply only to dataset = 'synthetic', not '{}'",
                self.dataset
            )));
        }
        Ok(source)
    }
}

// Defaults of the keys of LOSCAR-SGD, local SGD on a schedule and dbw (written into the
// resolved config as well).
const DEFAULT_SPARSITY: f64 = 1.0;
const DEFAULT_OVERLAP_MODE: &str = "until_arrival";
const DEFAULT_MERGE: &str = "delay_corrected";
const DEFAULT_MASK: &str = "shared_seed";
const DEFAULT_SCHEDULE: &str = "increasing";
const DEFAULT_STEP_SIZE: &str = "constant";
const DEFAULT_MIXING: &str = "uniform";
const DEFAULT_ORDER: &str = "combine_then_adapt";

/// Most test samples AdaComm's and AdaSync's loss probe may draw (ten times CIFAR-10's test
/// set; the probe runs after every round).
pub const MAX_PROBE_BATCH: usize = 100_000;

impl RawAlgorithm {
    /// Keys set in this entry, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        macro_rules! check {
            ($($field:ident),*) => { $( if self.$field.is_some() { keys.push(stringify!($field)); } )* };
        }
        check!(
            wait,
            local_steps,
            max_steps,
            drop_most_updates,
            participants,
            fraction,
            deadline,
            threshold,
            selection,
            interval,
            probe_batch,
            min_local_steps,
            max_local_steps,
            extra_step,
            redraw_local_steps,
            weighting
        );
        check!(
            compute_budget,
            sparsity,
            overlap_mode,
            overlap_steps,
            merge,
            mask,
            total_steps,
            schedule,
            step_size,
            graph,
            backup,
            backup_workers,
            mixing,
            order,
            delay_adaptive,
            reference,
            step_times,
            delay_threshold,
            stale,
            staleness_exponent,
            server_lr,
            concurrency
        );
        keys
    }

    /// Writes the settings `entry` was checked into back as keys (label, lr, batch, rounds,
    /// eval_every, and the defaults of the paper's round-synchronous algorithms), so that the
    /// recorded config states them. `network`: the problem is a network on data (a
    /// `[problem]` does not use `probe_batch`, so none is written for it).
    fn fill_defaults(&mut self, entry: &AlgorithmEntry, network: bool) {
        self.label = Some(entry.label.clone());
        self.lr = Some(entry.lr);
        self.batch = Some(entry.batch);
        self.rounds = Some(entry.rounds);
        self.eval_every = Some(entry.eval_every);
        match &entry.spec {
            AlgorithmSpec::Stsyn { drop_most_updates, .. } => self.drop_most_updates = Some(*drop_most_updates),
            AlgorithmSpec::AdaComm { probe_batch, .. } | AlgorithmSpec::AdaSync { probe_batch, .. } if network => {
                self.probe_batch = Some(*probe_batch)
            }
            AlgorithmSpec::Flanp { participants, local_steps, threshold, selection } => {
                self.participants = Some(*participants);
                self.local_steps = Some(*local_steps);
                self.threshold = Some(*threshold);
                self.selection = Some(match selection {
                    Selection::Fastest => "fastest".into(),
                    Selection::Random => "random".into(),
                });
            }
            AlgorithmSpec::FedNova { min_local_steps, max_local_steps, extra_step, redraw, weight_by_samples } => {
                self.min_local_steps = Some(*min_local_steps);
                self.max_local_steps = Some(*max_local_steps);
                self.extra_step = Some(*extra_step);
                self.redraw_local_steps = Some(*redraw);
                self.weighting = Some(if *weight_by_samples { "samples" } else { "uniform" }.into());
            }
            AlgorithmSpec::FedAvg { participants, weight_by_samples, .. } => {
                self.participants = Some(*participants);
                self.fraction = None;
                self.weighting = Some(if *weight_by_samples { "samples" } else { "uniform" }.into());
            }
            AlgorithmSpec::Sync { local_steps } => self.local_steps = Some(*local_steps),
            AlgorithmSpec::Loscar(_) => {
                self.sparsity.get_or_insert(DEFAULT_SPARSITY);
                self.overlap_mode.get_or_insert_with(|| DEFAULT_OVERLAP_MODE.into());
                self.merge.get_or_insert_with(|| DEFAULT_MERGE.into());
                self.mask.get_or_insert_with(|| DEFAULT_MASK.into());
            }
            AlgorithmSpec::LocalSgd(_) => {
                self.schedule.get_or_insert_with(|| DEFAULT_SCHEDULE.into());
                self.step_size.get_or_insert_with(|| DEFAULT_STEP_SIZE.into());
            }
            AlgorithmSpec::Dbw(settings) => {
                let backup = if let dbw::Backup::Static(_) = settings.backup { "static" } else { "dynamic" };
                self.backup.get_or_insert_with(|| backup.into());
                self.mixing.get_or_insert_with(|| DEFAULT_MIXING.into());
                self.order.get_or_insert_with(|| DEFAULT_ORDER.into());
            }
            _ => {}
        }
    }

    /// `interval` of AdaComm and AdaSync: simulated time between changes, required.
    fn probe_interval(&self, at: &str, kind: &str) -> Result<f64> {
        let interval = self
            .interval
            .ok_or_else(|| Error::Config(format!("{at}: {kind} needs interval (simulated time between changes)")))?;
        positive(&format!("{at}.interval"), interval)
    }

    /// `probe_batch` of AdaComm and AdaSync (default 400, at most [`MAX_PROBE_BATCH`]).
    fn probe_batch(&self, at: &str) -> Result<usize> {
        match self.probe_batch.unwrap_or(400) {
            0 => Err(Error::invalid(format!("{at}.probe_batch"), 0, "must be at least 1")),
            b if b > MAX_PROBE_BATCH => Err(Error::invalid(
                format!("{at}.probe_batch"),
                b,
                format!(
                    "must be at most {MAX_PROBE_BATCH} (the loss is probed on that many test samples after every round)"
                ),
            )),
            b => Ok(b),
        }
    }

    fn validate(&self, index: usize, workers: usize, exp: &RawExperiment, eval_every: u64) -> Result<AlgorithmEntry> {
        let label = self.label.clone().unwrap_or_else(|| self.name.clone());
        let at = format!("algorithms[{index}] ('{label}')");
        if label.trim().is_empty() || label.contains(['\n', '\r']) {
            return Err(Error::invalid(
                format!("algorithms[{index}].label"),
                format!("{label:?}"),
                "must be a non-empty name on one line",
            ));
        }
        let kind = self.name.trim().to_ascii_lowercase().replace('_', "-");
        let allowed: &[&str] = match kind.as_str() {
            "stsyn" => &["wait", "local_steps", "max_steps", "drop_most_updates"],
            "pasgd" => &["local_steps"],
            "adacomm" => &["local_steps", "interval", "probe_batch"],
            "adasync" => &["wait", "interval", "probe_batch"],
            "flanp" => &["participants", "local_steps", "threshold", "selection"],
            "fednova" => &["min_local_steps", "max_local_steps", "extra_step", "redraw_local_steps", "weighting"],
            "fedavg" => &["participants", "fraction", "local_steps", "weighting", "deadline"],
            "sync" => &["local_steps"],
            "ksync" | "kbatch-sync" | "kasync" | "kbatch-async" => &["wait"],
            "async" => &[],
            "loscar" => {
                &["local_steps", "compute_budget", "sparsity", "overlap_mode", "overlap_steps", "merge", "mask"]
            }
            "local-sgd" => &["total_steps", "schedule", "step_size"],
            "dbw" => &["graph", "backup", "backup_workers", "mixing", "order"],
            "asgd" => &["delay_adaptive"],
            "rescaled-asgd" => &["reference", "step_times"],
            "rennala" | "malenia" => &["wait", "stale"],
            "ringmaster" => &["delay_threshold", "stale"],
            "fedbuff" => &["wait", "local_steps", "staleness_exponent", "server_lr", "concurrency"],
            other => {
                return Err(Error::invalid(
                    format!("{at}.name"),
                    other,
                    "unknown algorithm (expected stsyn, pasgd, adacomm, adasync, flanp, fednova, fedavg, sync, ksync, kbatch-sync, kasync, kbatch-async, async, asgd, rescaled-asgd, rennala, malenia, ringmaster, fedbuff, loscar, local-sgd or dbw)",
                ));
            }
        };
        if let Some(key) = self.set_keys().into_iter().find(|k| !allowed.contains(k)) {
            // name the alias too: the file may say K, U or R
            let alias = match key {
                "wait" => " (K)",
                "local_steps" => " (U)",
                "delay_threshold" => " (R)",
                _ => "",
            };
            return Err(Error::Config(format!(
                "{at}: key '{key}'{alias} does not apply to {kind} (it takes: {})",
                if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
            )));
        }
        let need_k = || -> Result<usize> {
            let k = self.wait.ok_or_else(|| Error::Config(format!("{at}: {kind} needs wait (K)")))?;
            if k == 0 || k > workers {
                return Err(Error::invalid(
                    format!("{at}.wait (K)"),
                    k,
                    format!("must be between 1 and M = {workers}"),
                ));
            }
            Ok(k)
        };
        let steps = |default: Option<u32>| -> Result<u32> {
            let u = self
                .local_steps
                .or(default)
                .ok_or_else(|| Error::Config(format!("{at}: {kind} needs local_steps (U)")))?;
            if u == 0 {
                return Err(Error::invalid(format!("{at}.local_steps (U)"), 0, "must be at least 1"));
            }
            check_steps_per_round(&format!("{at}.local_steps (U)"), u.into())?;
            Ok(u)
        };
        let spec = match kind.as_str() {
            "stsyn" => {
                let (wait, local_steps) = (need_k()?, steps(None)?);
                if let Some(cap) = self.max_steps
                    && cap < local_steps
                {
                    return Err(Error::invalid(
                        format!("{at}.max_steps"),
                        cap,
                        format!("must be at least U = {local_steps}"),
                    ));
                }
                AlgorithmSpec::Stsyn {
                    wait,
                    local_steps,
                    max_steps: self.max_steps,
                    drop_most_updates: self.drop_most_updates.unwrap_or(false),
                }
            }
            "pasgd" => AlgorithmSpec::Pasgd { local_steps: steps(None)? },
            "adacomm" => AlgorithmSpec::AdaComm {
                local_steps: steps(None)?,
                interval: self.probe_interval(&at, &kind)?,
                probe_batch: self.probe_batch(&at)?,
            },
            "adasync" => AlgorithmSpec::AdaSync {
                wait: need_k()?,
                interval: self.probe_interval(&at, &kind)?,
                probe_batch: self.probe_batch(&at)?,
            },
            "flanp" => {
                let s = self.participants.unwrap_or(workers.min(5));
                if s == 0 || s > workers {
                    return Err(Error::invalid(
                        format!("{at}.participants (S)"),
                        s,
                        format!("must be between 1 and M = {workers}"),
                    ));
                }
                let selection = match self.selection.as_deref().unwrap_or("fastest") {
                    "fastest" => Selection::Fastest,
                    "random" => Selection::Random,
                    other => {
                        return Err(Error::invalid(format!("{at}.selection"), other, "expected fastest or random"));
                    }
                };
                AlgorithmSpec::Flanp {
                    participants: s,
                    local_steps: steps(Some(10))?,
                    threshold: non_negative(&format!("{at}.threshold"), self.threshold.unwrap_or(0.2))?,
                    selection,
                }
            }
            "fednova" => {
                let (lo, hi) = (self.min_local_steps.unwrap_or(8), self.max_local_steps.unwrap_or(12));
                if lo == 0 || hi < lo {
                    return Err(Error::invalid(
                        format!("{at}.min_local_steps..max_local_steps"),
                        format!("{lo}..{hi}"),
                        "need 1 <= min <= max",
                    ));
                }
                let extra = u64::from(self.extra_step.unwrap_or(false));
                check_steps_per_round(&format!("{at}.max_local_steps"), u64::from(hi) + extra)?;
                let weight_by_samples = match self.weighting.as_deref().unwrap_or("samples") {
                    "samples" => true,
                    "uniform" => false,
                    other => {
                        return Err(Error::invalid(format!("{at}.weighting"), other, "expected samples or uniform"));
                    }
                };
                AlgorithmSpec::FedNova {
                    min_local_steps: lo,
                    max_local_steps: hi,
                    weight_by_samples,
                    extra_step: self.extra_step.unwrap_or(false),
                    redraw: self.redraw_local_steps.unwrap_or(false),
                }
            }
            "fedavg" => {
                let participants = match (self.participants, self.fraction) {
                    (Some(_), Some(_)) => {
                        return Err(Error::Config(format!("{at}: give participants (m) or fraction (C), not both")));
                    }
                    (Some(m), None) => m,
                    (None, fraction) => {
                        let c = fraction.unwrap_or(0.1);
                        if !(c > 0.0 && c <= 1.0) {
                            return Err(Error::invalid(format!("{at}.fraction (C)"), c, "must be in (0, 1]"));
                        }
                        ((c * workers as f64).floor() as usize).max(1)
                    }
                };
                if participants == 0 || participants > workers {
                    return Err(Error::invalid(
                        format!("{at}.participants (m)"),
                        participants,
                        format!("must be between 1 and M = {workers}"),
                    ));
                }
                let weight_by_samples = match self.weighting.as_deref().unwrap_or("samples") {
                    "samples" => true,
                    "uniform" => false,
                    other => {
                        return Err(Error::invalid(format!("{at}.weighting"), other, "expected samples or uniform"));
                    }
                };
                let deadline = self.deadline.map(|d| positive(&format!("{at}.deadline"), d)).transpose()?;
                AlgorithmSpec::FedAvg { participants, local_steps: steps(None)?, weight_by_samples, deadline }
            }
            "sync" => AlgorithmSpec::Sync { local_steps: steps(Some(1))? },
            "ksync" => AlgorithmSpec::KSync { wait: need_k()? },
            "kbatch-sync" => AlgorithmSpec::KBatchSync { wait: need_k()? },
            "kasync" => AlgorithmSpec::KAsync { wait: need_k()? },
            "kbatch-async" => AlgorithmSpec::KBatchAsync { wait: need_k()? },
            "async" => AlgorithmSpec::KBatchAsync { wait: 1 },
            "loscar" => AlgorithmSpec::Loscar(self.loscar_settings(&at)?),
            "local-sgd" => AlgorithmSpec::LocalSgd(self.local_sgd_settings(&at)?),
            "dbw" => AlgorithmSpec::Dbw(self.dbw_settings(&at)?),
            "asgd" | "rescaled-asgd" | "rennala" | "malenia" | "ringmaster" | "fedbuff" => {
                self.async_spec(&at, &kind, workers)?
            }
            _ => unreachable!("checked above"),
        };
        let lr = positive(&format!("{at}.lr"), self.lr.unwrap_or(exp.model.lr))?;
        let batch = self.batch.unwrap_or(exp.model.batch);
        if batch == 0 {
            return Err(Error::invalid(format!("{at}.batch"), 0, "must be at least 1"));
        }
        let rounds = self.rounds.unwrap_or(exp.rounds);
        if rounds == 0 {
            return Err(Error::invalid(format!("{at}.rounds"), 0, "must be at least 1"));
        }
        let eval_every = self.eval_every.unwrap_or(eval_every);
        if eval_every == 0 {
            return Err(Error::invalid(format!("{at}.eval_every"), 0, "must be at least 1"));
        }
        Ok(AlgorithmEntry { label, spec, lr, batch, rounds, eval_every })
    }
}

// ---- Overlap, sparsification and decentralized methods (issue 6) ----

impl RawProblem {
    /// `noisy_quadratic` and `piecewise_quadratic` (Spiridonoff et al.'s homogeneous problems).
    fn validate_homogeneous(&self, workers: usize) -> Result<Problem> {
        let noisy = self.kind == "noisy_quadratic";
        let at = |key: &str| format!("problem.{key}");
        let default_dim = if noisy { 3 } else { 1 };
        let dim = self
            .dim
            .or(self.curvatures.as_ref().map(Vec::len))
            .or(self.init.as_ref().map(Vec::len))
            .unwrap_or(default_dim);
        if dim == 0 {
            return Err(Error::invalid(at("dim"), 0, "must be at least 1"));
        }
        check_problem_memory("problem.dim", dim.to_string(), dim, 1, 8)?;
        if let Some(init) = &self.init
            && init.len() != dim
        {
            return Err(Error::invalid(
                at("init"),
                format!("{} values", init.len()),
                format!("must have dim = {dim} values"),
            ));
        }
        let problem = if noisy {
            Problem::NoisyQuadratic {
                workers,
                curvatures: self.curvatures.clone().unwrap_or_else(|| (1..=dim).map(|i| i as f64).collect()),
                multiplicative_noise: self.multiplicative_noise.unwrap_or(1.0),
                noise: self.noise.unwrap_or(0.5),
                init: self.init.clone().unwrap_or_else(|| vec![1.0; dim]),
            }
        } else {
            Problem::PiecewiseQuadratic {
                workers,
                mu: self.mu.unwrap_or(1.0),
                noise: self.noise.unwrap_or(8.0),
                init: self.init.clone().unwrap_or_else(|| vec![2.0; dim]),
            }
        };
        problem.homogeneous()?; // checks the values
        Ok(problem)
    }
}

impl Problem {
    /// The objective of a homogeneous synthetic problem, or None for other problems.
    pub fn homogeneous(&self) -> Result<Option<Box<dyn crate::learner::Objective>>> {
        use crate::learner::{NoisyQuadratic, PiecewiseQuadratic};
        Ok(match self {
            Problem::NoisyQuadratic { workers, curvatures, multiplicative_noise, noise, init } => Some(Box::new(
                NoisyQuadratic::new(*workers, curvatures.clone(), *multiplicative_noise, *noise, init.clone())?,
            )),
            Problem::PiecewiseQuadratic { workers, mu, noise, init } => {
                Some(Box::new(PiecewiseQuadratic::new(*workers, *mu, *noise, init.clone())?))
            }
            _ => None,
        })
    }
}

impl RawAlgorithm {
    fn loscar_settings(&self, at: &str) -> Result<loscar::Settings> {
        let local_steps = match (self.local_steps, self.compute_budget) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(format!("{at}: give local_steps (N) or compute_budget (T_loc), not both")));
            }
            (Some(0), None) => return Err(Error::invalid(format!("{at}.local_steps (N)"), 0, "must be at least 1")),
            (Some(n), None) => {
                check_steps_per_round(&format!("{at}.local_steps (N)"), n.into())?;
                loscar::LocalSteps::Fixed(n)
            }
            (None, Some(b)) => loscar::LocalSteps::Budget(positive(&format!("{at}.compute_budget"), b)?),
            (None, None) => {
                return Err(Error::Config(format!(
                    "{at}: loscar needs local_steps (N for every worker) or compute_budget (N_i = ⌊T_loc/E[τ_i]⌋)"
                )));
            }
        };
        let sparsity = self.sparsity.unwrap_or(DEFAULT_SPARSITY);
        if !(sparsity > 0.0 && sparsity <= 1.0) {
            return Err(Error::invalid(format!("{at}.sparsity (p = K/d)"), sparsity, "must be in (0, 1]"));
        }
        let overlap = match (self.overlap_mode.as_deref().unwrap_or(DEFAULT_OVERLAP_MODE), self.overlap_steps) {
            ("until_arrival", None) => loscar::OverlapMode::UntilArrival,
            ("until_arrival", Some(q)) => {
                return Err(Error::Config(format!(
                    "{at}: overlap_steps = {q} applies to overlap_mode = 'fixed_q', not 'until_arrival'"
                )));
            }
            ("fixed_q" | "fixed_Q", Some(q)) => {
                check_steps_per_round(&format!("{at}.overlap_steps (Q)"), q.into())?;
                loscar::OverlapMode::FixedQ(q)
            }
            ("fixed_q" | "fixed_Q", None) => {
                return Err(Error::Config(format!(
                    "{at}: overlap_mode = 'fixed_q' needs overlap_steps (Q; 0 = no overlap)"
                )));
            }
            (other, _) => {
                return Err(Error::invalid(format!("{at}.overlap_mode"), other, "expected until_arrival or fixed_q"));
            }
        };
        let merge = match self.merge.as_deref().unwrap_or(DEFAULT_MERGE) {
            "delay_corrected" => MergeRule::DelayCorrected,
            "naive" => MergeRule::Naive,
            other => return Err(Error::invalid(format!("{at}.merge"), other, "expected delay_corrected or naive")),
        };
        let server_mask = match self.mask.as_deref().unwrap_or(DEFAULT_MASK) {
            "shared_seed" => false,
            "server" => true,
            other => return Err(Error::invalid(format!("{at}.mask"), other, "expected shared_seed or server")),
        };
        Ok(loscar::Settings { local_steps, sparsity, overlap, merge, server_mask })
    }

    fn local_sgd_settings(&self, at: &str) -> Result<growing_intervals::Settings> {
        let total_steps = match self.total_steps {
            None => return Err(Error::Config(format!("{at}: local-sgd needs total_steps (T)"))),
            Some(0) => return Err(Error::invalid(format!("{at}.total_steps (T)"), 0, "must be at least 1")),
            Some(t) if t > u64::from(u32::MAX) => {
                return Err(Error::invalid(format!("{at}.total_steps (T)"), t, "must be at most 2^32 − 1"));
            }
            Some(t) => t,
        };
        Ok(growing_intervals::Settings {
            total_steps,
            schedule: growing_intervals::Schedule::parse(
                &format!("{at}.schedule"),
                self.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE),
            )?,
            step_size: growing_intervals::StepSize::parse(
                &format!("{at}.step_size"),
                self.step_size.as_deref().unwrap_or(DEFAULT_STEP_SIZE),
            )?,
        })
    }

    fn dbw_settings(&self, at: &str) -> Result<dbw::Settings> {
        let graph_text = self.graph.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "{at}: dbw needs graph (ring, torus, erdos_renyi(p=...), regular(d=...), complete or file(path))"
            ))
        })?;
        // Relative edge-list paths are resolved against the config's directory later.
        let graph = GraphSpec::parse(&format!("{at}.graph"), graph_text, Path::new(""))?;
        let backup = match (self.backup.as_deref(), self.backup_workers) {
            (None | Some("static"), Some(b)) => dbw::Backup::Static(b),
            (Some("static"), None) => {
                return Err(Error::Config(format!("{at}: backup = 'static' needs backup_workers (b)")));
            }
            (None | Some("dynamic"), None) => dbw::Backup::Dynamic,
            (Some("dynamic"), Some(b)) => {
                return Err(Error::Config(format!(
                    "{at}: backup_workers = {b} applies to backup = 'static', not 'dynamic'"
                )));
            }
            (Some(other), _) => {
                return Err(Error::invalid(format!("{at}.backup"), other, "expected static or dynamic"));
            }
        };
        let mixing = match self.mixing.as_deref().unwrap_or(DEFAULT_MIXING) {
            "uniform" => dbw::Mixing::Uniform,
            "metropolis" => dbw::Mixing::Metropolis,
            other => return Err(Error::invalid(format!("{at}.mixing"), other, "expected uniform or metropolis")),
        };
        let order = match self.order.as_deref().unwrap_or(DEFAULT_ORDER) {
            "combine_then_adapt" => dbw::Order::CombineThenAdapt,
            "adapt_then_combine" => dbw::Order::AdaptThenCombine,
            other => {
                return Err(Error::invalid(
                    format!("{at}.order"),
                    other,
                    "expected combine_then_adapt or adapt_then_combine",
                ));
            }
        };
        Ok(dbw::Settings { graph, backup, mixing, order })
    }
}

/// Checks what the issue-6 algorithms need from the rest of the experiment, before any output:
/// resolves edge-list paths against the config's directory and builds each graph (a
/// disconnected graph, a self-loop or an unknown node is an error naming it; a random graph is
/// drawn for every seed, and the error names the seed), and checks that a LOSCAR compute budget
/// has finite mean step times.
fn check_overlap_algorithms(
    algorithms: &mut [AlgorithmEntry],
    base: &Path,
    workers: usize,
    seeds: &[u64],
    compute: &ComputeTime,
) -> Result<()> {
    for entry in algorithms {
        match &mut entry.spec {
            AlgorithmSpec::Dbw(settings) => {
                if let GraphSpec::File { path } = &mut settings.graph {
                    *path = base.join(&*path);
                }
                let random = matches!(settings.graph, GraphSpec::ErdosRenyi { .. });
                for &seed in if random { seeds } else { &seeds[..1] } {
                    let graph = settings
                        .graph
                        .build(workers, &crate::rng::Seeds::new(seed))
                        .map_err(|e| if random { Error::Config(format!("seed {seed}: {e}")) } else { e })?;
                    // b is capped at d_i − 1 per worker; at or above every degree it means nothing
                    let max_degree = (0..workers).map(|i| graph.degree(i)).max().unwrap_or(0);
                    if let crate::algorithms::dbw::Backup::Static(b) = settings.backup
                        && b >= max_degree
                    {
                        return Err(Error::invalid(
                            format!("algorithms ('{}').backup_workers", entry.label),
                            b,
                            format!(
                                "must be below the graph's largest degree, {max_degree}{}: a worker waits for at least one neighbour",
                                if random { format!(" (seed {seed})") } else { String::new() }
                            ),
                        ));
                    }
                }
            }
            AlgorithmSpec::Loscar(settings) => {
                loscar::steps_per_worker(settings.local_steps, compute, workers)?;
            }
            _ => {}
        }
    }
    Ok(())
}

// Asynchronous methods (specs/baselines.md §5–8, §11).
impl RawAlgorithm {
    fn async_spec(&self, at: &str, kind: &str, workers: usize) -> Result<AlgorithmSpec> {
        use crate::algorithms::{fedbuff, rennala, rescaled_asgd, ringmaster};
        let stale = self.stale.as_deref().unwrap_or("cancel");
        let count = |key: &str, value: Option<u64>| -> Result<u64> {
            match value {
                None => Err(Error::Config(format!("{at}: {kind} needs {key}"))),
                Some(0) => Err(Error::invalid(format!("{at}.{key}"), 0, "must be at least 1")),
                Some(v) => Ok(v),
            }
        };
        // results or local steps collected in one round
        let per_round = |key: &str, value: Option<u64>| -> Result<u64> {
            let v = count(key, value)?;
            check_steps_per_round(&format!("{at}.{key}"), v)?;
            Ok(v)
        };
        Ok(match kind {
            "asgd" => AlgorithmSpec::Asgd {
                stepsize: if self.delay_adaptive.unwrap_or(false) {
                    AsgdStepsize::DelayAdaptive
                } else {
                    AsgdStepsize::Constant
                },
            },
            "rescaled-asgd" => AlgorithmSpec::Asgd {
                stepsize: AsgdStepsize::Rescaled {
                    reference: rescaled_asgd::Reference::parse(
                        &format!("{at}.reference"),
                        self.reference.as_deref().unwrap_or("max"),
                    )?,
                    step_times: rescaled_asgd::StepTimes::parse(
                        &format!("{at}.step_times"),
                        self.step_times.as_deref().unwrap_or("model"),
                    )?,
                },
            },
            "rennala" | "malenia" => {
                let batch = per_round("wait (the batch size S)", self.wait.map(|k| k as u64))?;
                AlgorithmSpec::Rennala {
                    rule: if kind == "rennala" {
                        rennala::Rule::Rennala { batch }
                    } else {
                        rennala::Rule::Malenia { batch }
                    },
                    leftover: rennala::Leftover::parse(&format!("{at}.stale"), stale)?,
                }
            }
            "ringmaster" => AlgorithmSpec::Ringmaster {
                delay_threshold: count("delay_threshold (R)", self.delay_threshold)?,
                rule: ringmaster::StaleRule::parse(&format!("{at}.stale"), stale)?,
            },
            "fedbuff" => {
                let buffer = per_round("wait (the buffer size K)", self.wait.map(|k| k as u64))? as usize;
                let local_steps = per_round("local_steps (Q)", self.local_steps.map(u64::from))? as u32;
                let concurrency = self.concurrency.unwrap_or(workers);
                if concurrency == 0 || concurrency > workers {
                    return Err(Error::invalid(
                        format!("{at}.concurrency (C)"),
                        concurrency,
                        format!("must be between 1 and M = {workers}"),
                    ));
                }
                AlgorithmSpec::FedBuff {
                    params: fedbuff::FedBuffParams {
                        buffer,
                        local_steps,
                        staleness_exponent: non_negative(
                            &format!("{at}.staleness_exponent"),
                            self.staleness_exponent.unwrap_or(0.5),
                        )?,
                        server_lr: positive(&format!("{at}.server_lr"), self.server_lr.unwrap_or(1.0))?,
                        concurrency,
                    },
                }
            }
            _ => unreachable!("called for the asynchronous methods only"),
        })
    }
}

/// Rescaled ASGD with model step times needs every worker's mean step time.
fn check_rescaled_step_times(algorithms: &[AlgorithmEntry], compute: &ComputeTime, workers: usize) -> Result<()> {
    use crate::algorithms::rescaled_asgd::StepTimes;
    for a in algorithms {
        if let AlgorithmSpec::Asgd { stepsize: AsgdStepsize::Rescaled { step_times: StepTimes::Model, .. } } = a.spec
            && let Some(w) = (0..workers).find(|&w| compute.mean(w).is_none_or(|t| !(t.is_finite() && t > 0.0)))
        {
            return Err(Error::invalid(
                format!("algorithm '{}' step_times", a.label),
                "model",
                format!(
                    "needs a finite mean step time for every worker, but compute_time '{}' has none for worker {w} (use step_times = \"observed\")",
                    compute.spec()
                ),
            ));
        }
    }
    Ok(())
}

/// A TOML error on one line: `line L, column C (`the line`): message` where the error has a
/// place in `source` (the text it was parsed from), else the message alone. (The error's own
/// display spans several lines, with a caret diagram.)
pub(crate) fn toml_error(e: &toml::de::Error, source: Option<&str>) -> String {
    let mut message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    // a key given twice may have been written once under its alias
    for (key, alias) in [("wait", "K"), ("local_steps", "U"), ("delay_threshold", "R")] {
        if message == format!("duplicate field `{key}`") {
            message += &format!(" (given twice, perhaps once as its alias `{alias}`)");
        }
    }
    let (Some(text), Some(span)) = (source, e.span()) else { return message };
    let Some(before) = text.get(..span.start) else { return message };
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let shown: String = text[line_start..].lines().next().unwrap_or("").trim().chars().take(80).collect();
    format!("line {line}, column {column} (`{shown}`): {message}")
}

/// Rejects a convex problem whose data cannot fit in memory: `rows` vectors of `dim` values (the
/// workers' centres in f64, or their samples in f32: `value_bytes`), and a few f64 vectors more
/// per thread. The error names the keys that set the size (`name`) and their values.
fn check_problem_memory(name: &str, value: String, dim: usize, rows: u128, value_bytes: u128) -> Result<()> {
    let work = 8 + 2 * rayon::current_num_threads() as u128;
    let bytes = dim as u128 * (value_bytes * rows + 8 * work);
    let why = format!("{rows} vectors of {dim} values, {value_bytes} bytes a value, and {work} working vectors of f64");
    check_memory(name, value, bytes, &why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(algorithms: &str) -> Result<Vec<RawAlgorithm>> {
        let text = format!(
            "rounds = 1\n[model]\nbatch = 1\nlr = 0.1\n[cluster]\nworkers = 4\ncompute_time = \"const(1)\"\n{algorithms}"
        );
        let mut raw: RawExperiment = toml::from_str(&text).expect("parses");
        raw.expand_grids()?;
        Ok(raw.algorithms)
    }

    #[test]
    fn a_grid_makes_one_entry_per_combination_with_the_last_key_fastest() {
        let grid = entries(
            "[[algorithms]]\nname = \"stsyn\"\nlabel = \"K={wait}, lr {lr}\"\nlocal_steps = 3\n\
             grid = { wait = [1, 4], lr = [0.1, 0.25] }\n[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\n",
        )
        .unwrap();
        // keys in the order written: wait, then lr (fastest)
        let want = [
            ("K=1, lr 0.1", Some(1), Some(0.1), Some(3)),
            ("K=1, lr 0.25", Some(1), Some(0.25), Some(3)),
            ("K=4, lr 0.1", Some(4), Some(0.1), Some(3)),
            ("K=4, lr 0.25", Some(4), Some(0.25), Some(3)),
            ("", None, None, Some(2)),
        ];
        assert_eq!(grid.len(), want.len());
        for (a, w) in grid.iter().zip(want) {
            assert_eq!((a.label.as_deref().unwrap_or(""), a.wait, a.lr, a.local_steps), w);
        }
        assert!(grid.iter().all(|a| a.grid.is_none()));
        // no placeholder: the values follow the label (or the name)
        let plain = entries(
            "[[algorithms]]\nname = \"fedavg\"\nlocal_steps = 2\ngrid = { weighting = [\"samples\", \"uniform\"] }\n",
        )
        .unwrap();
        let labels: Vec<_> = plain.iter().map(|a| a.label.clone().unwrap()).collect();
        assert_eq!(labels, ["fedavg weighting=samples", "fedavg weighting=uniform"]);
        assert_eq!(plain[1].weighting.as_deref(), Some("uniform"));
        // a misspelt placeholder is an error that names it; braces around anything but a name
        // are text
        let misspelt =
            "[[algorithms]]\nname = \"stsyn\"\nlocal_steps = 2\nlabel = \"K={waitt}\"\ngrid = { wait = [1, 2] }\n";
        let err = entries(misspelt).unwrap_err().to_string();
        assert!(err.contains("{waitt}") && err.contains("({wait})") && err.contains("algorithms[0].label"), "{err}");
        let braces =
            "[[algorithms]]\nname = \"stsyn\"\nlocal_steps = 2\nlabel = \"{1, 2} K={wait}\"\ngrid = { wait = [1] }\n";
        assert_eq!(entries(braces).unwrap()[0].label.as_deref(), Some("{1, 2} K=1"));
    }
}
