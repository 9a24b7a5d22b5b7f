//! Training runs: aggregation against hand computations on a convex problem, STSyn ≡ PASGD when
//! K = M without extra steps, identical results for any thread count, bad configs.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use stsyn::algorithms::fednova::FedNova;
use stsyn::algorithms::round::RoundAlgorithm;
use stsyn::algorithms::stsyn::Stsyn;
use stsyn::config::RawExperiment;
use stsyn::learner::{Evaluation, Learner, LocalJob, Objective, Scratch};
use stsyn::rng::{Seeds, Stream};
use stsyn::sim::RoundPlan;
use stsyn::trace::RoundRecord;

use crate::cli::{assert_bad_input, stsyn};

/// f_m(x) = ½‖x − c_m‖² with exact gradients x − c_m (no noise), c_m = (m, 2m, ...).
struct Quadratic {
    workers: usize,
    dim: usize,
}

impl Quadratic {
    fn center(&self, m: usize, i: usize) -> f32 {
        (m * (i + 1)) as f32
    }
}

impl Objective for Quadratic {
    fn dim(&self) -> usize {
        self.dim
    }
    fn workers(&self) -> usize {
        self.workers
    }
    fn init(&self, _rng: &mut Stream) -> Vec<f32> {
        vec![1.0; self.dim]
    }
    fn scratch(&self) -> Scratch {
        Box::new(())
    }
    fn gradient(&self, m: usize, x: &[f32], _rng: &mut Stream, _s: &mut Scratch, grad: &mut [f32]) -> f32 {
        for i in 0..self.dim {
            grad[i] = x[i] - self.center(m, i);
        }
        0.5 * grad.iter().map(|g| g * g).sum::<f32>()
    }
    fn evaluate(&self, _x: &[f32]) -> Evaluation {
        Evaluation::default()
    }
    fn probe_loss(&self, _x: &[f32], _n: usize, _rng: &mut Stream) -> f64 {
        0.0
    }
}

#[test]
fn aggregation_matches_a_hand_computation_on_a_quadratic() {
    let q = Quadratic { workers: 3, dim: 2 };
    let mut learner = Learner::new(&q, Seeds::new(1), 0.5);
    // Worker 0: 1 step, worker 2: 2 steps, coefficients 0.25 and 0.75.
    // From x = 1 with η = 0.5, one step toward c is x ← (x + c)/2.
    //   worker 0, c = (0, 0): (0.5, 0.5).
    //   worker 2, c = (2, 4): (1.5, 2.5) then (1.75, 3.25).
    // New x = 1 + 0.25·((0.5, 0.5) − 1) + 0.75·((1.75, 3.25) − 1) = (1.4375, 2.5625).
    let jobs = [LocalJob { worker: 0, steps: 1, coef: 0.25 }, LocalJob { worker: 2, steps: 2, coef: 0.75 }];
    let r = learner.local_round(0, &jobs).unwrap();
    assert_eq!(learner.model(), &[1.4375, 2.5625]);
    assert!((r.delta_norm - (0.4375f64.powi(2) + 1.5625f64.powi(2)).sqrt()).abs() < 1e-12);
}

#[test]
fn gradient_jobs_apply_in_order_with_their_starting_model() {
    let q = Quadratic { workers: 3, dim: 1 };
    let mut learner = Learner::new(&q, Seeds::new(1), 0.5);
    // Two jobs start at x = 1; worker 2's (c = 2) is applied alone: x = 1 − 0.5·(1 − 2) = 1.5.
    let a = learner.start_job(0);
    let b = learner.start_job(2);
    learner.arrive(b, 1.0);
    learner.apply(0, 1.0).unwrap();
    assert_eq!(learner.model(), &[1.5]);
    // Worker 0's job is stale: its gradient is taken at x = 1 (c = 0: g = 1), not at 1.5.
    let c = learner.start_job(2); // starts at 1.5: g = 1.5 − 2 = −0.5
    learner.arrive(a, 1.0);
    learner.arrive(c, 1.0);
    learner.apply(1, 0.5).unwrap(); // x = 1.5 − 0.5·0.5·(1 − 0.5) = 1.375
    assert_eq!(learner.model(), &[1.375]);
}

#[test]
fn fednova_and_stsyn_coefficients() {
    // specs/baselines.md §12: τ = (2, 8), p = (½, ½): τ_eff = 5, coefficients 1.25 and 0.3125.
    let mut fednova = FedNova::with_steps(vec![2, 8], false);
    let mut plan = RoundPlan { targets: vec![0; 2], ..Default::default() };
    fednova.plan(0, &mut plan);
    assert_eq!(plan.targets, vec![2, 8]);
    let record = RoundRecord { counts: vec![2, 8], ..Default::default() };
    let mut jobs = Vec::new();
    fednova.jobs(&record, &mut jobs);
    assert_eq!(
        jobs,
        vec![LocalJob { worker: 0, steps: 2, coef: 1.25 }, LocalJob { worker: 1, steps: 8, coef: 0.3125 }]
    );
    // p = n_m/n = (¼, ¾) from shards of 10 and 30 samples: τ_eff = ½ + 6 = 6.5, coefficients
    // ¼·6.5/2 = 0.8125 and ¾·6.5/8 = 0.609375 (exact in binary); equal shards keep 1/M.
    let mut weighted = FedNova::with_steps(vec![2, 8], false).weighted_by(&[10, 30]);
    weighted.jobs(&record, &mut jobs);
    assert_eq!(jobs.iter().map(|j| j.coef).collect::<Vec<_>>(), vec![0.8125, 0.609375]);
    FedNova::with_steps(vec![2, 8], false).weighted_by(&[7, 7]).jobs(&record, &mut jobs);
    assert_eq!(jobs.iter().map(|j| j.coef).collect::<Vec<_>>(), vec![1.25, 0.3125]);
    // STSyn: uniform over workers with N_m ≥ 1; Comparisons.py drops the first argmax.
    let record = RoundRecord { counts: vec![3, 0, 7, 7, 1], ..Default::default() };
    let mut stsyn = Stsyn { wait: 2, local_steps: 3, max_steps: None, drop_most_updates: false };
    stsyn.jobs(&record, &mut jobs);
    assert_eq!(jobs.iter().map(|j| (j.worker, j.steps)).collect::<Vec<_>>(), vec![(0, 3), (2, 7), (3, 7), (4, 1)]);
    assert!(jobs.iter().all(|j| j.coef == 0.25));
    stsyn.drop_most_updates = true;
    stsyn.jobs(&record, &mut jobs);
    assert_eq!(jobs.iter().map(|j| j.worker).collect::<Vec<_>>(), vec![0, 3, 4]);
    assert!(jobs.iter().all(|j| j.coef == 1.0 / 3.0));
}

const SMALL: &str = r#"
name = "small"
seeds = [3]
rounds = 12
eval_every = 4
target_accuracy = 0.3

[data]
dataset = "digits"
partition = "iid"

[model]
spec = "MODEL"
batch = 16
lr = 0.1

[cluster]
workers = 6
compute_time = "exp(mean=1)"
"#;

fn write_config(dir: &Path, algorithms: &str) -> std::path::PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits_cnn.toml");
    let text = SMALL.replace("MODEL", model.to_str().unwrap()) + algorithms;
    let path = dir.join("exp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn rows_without_label(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().skip(1).map(|l| l.split(',').skip(1).map(str::to_string).collect()).collect()
}

/// Runs `config` into `dir/out` (quiet, no plots) and returns the results directory.
fn run_quietly(dir: &Path, config: &Path) -> std::path::PathBuf {
    let out = dir.join("out");
    let o = stsyn(&["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--no-plot"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// The two algorithms of a results directory wrote the same rows, label aside, in both CSV files.
fn assert_two_runs_agree(out: &Path, what: &str) {
    for file in ["evals.csv", "rounds.csv"] {
        let rows = rows_without_label(&out.join(file));
        let (a, b) = rows.split_at(rows.len() / 2);
        assert_eq!(a, b, "{file}: {what} differ");
        assert!(a.len() >= 4);
    }
}

#[test]
fn stsyn_with_k_equal_m_and_no_extra_steps_is_pasgd_step_for_step() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[[algorithms]]
name = "stsyn"
wait = 6
local_steps = 4
max_steps = 4

[[algorithms]]
name = "pasgd"
local_steps = 4
"#,
    );
    assert_two_runs_agree(&run_quietly(dir.path(), &config), "STSyn (K = M, max_steps = U) and PASGD");
}

#[test]
fn fedavg_with_every_client_and_equal_weights_is_pasgd_step_for_step() {
    // fraction = 1 takes all 6 clients every round, in the same ascending order as PASGD, and
    // `uniform` gives PASGD's 1/M (the SMALL setup's shards differ by a sample, so `samples`
    // weights would not)
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[[algorithms]]
name = "fedavg"
fraction = 1.0
local_steps = 4
weighting = "uniform"

[[algorithms]]
name = "pasgd"
local_steps = 4
"#,
    );
    assert_two_runs_agree(&run_quietly(dir.path(), &config), "FedAvg (C = 1) and PASGD");
}

#[test]
fn fedavg_uploads_m_models_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[[algorithms]]\nname = \"fedavg\"\nparticipants = 2\nlocal_steps = 3\n");
    let out = run_quietly(dir.path(), &config);
    let counts = final_counts(&out.join("evals.csv"));
    let [messages, uploads, updates] = counts["fedavg"];
    let text = std::fs::read_to_string(out.join("rounds.csv")).unwrap();
    let rounds = text.lines().count() as u64 - 1;
    // each round: 2 uploads of 3 steps each, and a download to each of the 2 clients
    assert_eq!((uploads, updates, messages), (2 * rounds, 6 * rounds, 4 * rounds), "{counts:?}");
}

#[test]
fn fedavg_with_a_deadline_drops_the_clients_not_done_by_then() {
    // constant step times 1, 2, ..., 6 (speeds profile τ_i = 1 + i): with H = 2 steps, clients
    // 0..=2 finish by 2·3 = 6 ≤ D = 6.5, clients 3..=5 (8, 10, 12) are dropped; every round
    // closes at the deadline with 3 uploads of 2 steps
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[algorithms]]\nname = \"fedavg\"\nfraction = 1.0\nlocal_steps = 2\ndeadline = 6.5\n",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "compute_time = \"exp(mean=1)\"",
        "compute_time = \"const(1)\"\nspeeds = \"profile(a=1, b=1, p=1, first=0)\"",
    );
    std::fs::write(&config, text).unwrap();
    let rounds = run_quietly(dir.path(), &config).join("rounds.csv");
    let durations: Vec<f64> = column(&rounds, "duration");
    assert!(!durations.is_empty() && durations.iter().all(|&d| d == 6.5), "{durations:?}");
    assert!(column::<u32>(&rounds, "uploaders").iter().all(|&u| u == 3));
    assert!(column::<u64>(&rounds, "updates").iter().all(|&u| u == 6));
}

/// The values of column `name` of a CSV file.
fn column<T: std::str::FromStr>(path: &Path, name: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    let text = std::fs::read_to_string(path).unwrap();
    let at = text.lines().next().unwrap().split(',').position(|h| h == name).unwrap();
    text.lines().skip(1).map(|l| l.split(',').nth(at).unwrap().parse().unwrap()).collect()
}

#[test]
fn adasync_raises_k_as_the_loss_falls() {
    // K-sync gradients per round = uploaders in rounds.csv: they start at K_0 = 2, never fall,
    // and grow once the loss probe has fallen (48 rounds of exp(1) steps, a change allowed every
    // 2 time units)
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[algorithms]]\nname = \"adasync\"\nwait = 2\ninterval = 2.0\nprobe_batch = 100\nrounds = 48\n",
    );
    let k: Vec<u32> = column(&run_quietly(dir.path(), &config).join("rounds.csv"), "uploaders");
    assert_eq!(k.len(), 48);
    assert_eq!(k[0], 2);
    assert!(k.windows(2).all(|w| w[0] <= w[1]), "{k:?}");
    assert!(k[47] > 2 && k[47] <= 6, "{k:?}");
}

/// The last `evals.csv` row of each label: (comm_transmissions, uploads, local_updates).
fn final_counts(path: &Path) -> std::collections::BTreeMap<String, [u64; 3]> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut last = std::collections::BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        last.insert(f[0].to_string(), [f[4], f[5], f[6]].map(|v| v.parse().unwrap()));
    }
    last
}

#[test]
fn messages_and_updates_count_what_each_algorithm_aggregates() {
    // M = 6, 12 rounds. FLANP with S = 2 that never doubles trains 2 workers × τ = 3 steps per
    // round in either selection mode: 12·(6 + 2) messages, 24 uploads, 72 local steps, however
    // many other workers completed a step. STSyn with `drop_most_updates` sends one upload
    // fewer per round than STSyn on the same timing (M + |𝓜| − 1, as Comparisons.py counts);
    // FedNova with `extra_step` runs τ_m + 1 = 3 steps on each of the 6 workers.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[[algorithms]]
name = "flanp"
label = "fastest"
participants = 2
local_steps = 3
threshold = 0.0

[[algorithms]]
name = "flanp"
label = "random"
participants = 2
local_steps = 3
threshold = 0.0
selection = "random"

[[algorithms]]
name = "stsyn"
label = "plain"
wait = 2
local_steps = 3

[[algorithms]]
name = "stsyn"
label = "drop"
wait = 2
local_steps = 3
drop_most_updates = true

[[algorithms]]
name = "fednova"
min_local_steps = 2
max_local_steps = 2
extra_step = true
"#,
    );
    let out = dir.path().join("out");
    let o = stsyn(&["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--no-plot"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let counts = final_counts(&out.join("evals.csv"));
    assert_eq!(counts["fastest"], [12 * 8, 24, 72]);
    assert_eq!(counts["random"], [12 * 8, 24, 72]);
    assert_eq!(counts["fednova"], [12 * 12, 72, 12 * 18]);
    let (plain, drop) = (counts["plain"], counts["drop"]);
    assert_eq!(drop[1], plain[1] - 12, "one upload fewer per round");
    assert_eq!(drop[0], 12 * 6 + drop[1]);
    assert!(drop[2] < plain[2], "the dropped worker's steps do not enter the aggregate");
    // rounds.csv says the same: FLANP's uploaders are S in every round
    let rounds = std::fs::read_to_string(out.join("rounds.csv")).unwrap();
    let flanp: Vec<&str> = rounds.lines().filter(|l| l.starts_with("fastest,") || l.starts_with("random,")).collect();
    assert_eq!(flanp.len(), 24);
    assert!(flanp.iter().all(|l| l.split(',').nth(8) == Some("2")), "{flanp:?}");
    // with tied step times all six workers finish τ steps at the closing instant; still S train
    let tied = dir.path().join("tied");
    let o = stsyn(&[
        "run",
        config.to_str().unwrap(),
        "--out",
        tied.to_str().unwrap(),
        "--compute-time",
        "const(1)",
        "--quiet",
        "--no-plot",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let counts = final_counts(&tied.join("evals.csv"));
    assert_eq!(counts["fastest"], [12 * 8, 24, 72]);
    assert_eq!(counts["random"], [12 * 8, 24, 72]);
}

#[test]
fn results_are_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[[algorithms]]
name = "stsyn"
wait = 2
local_steps = 3

[[algorithms]]
name = "fednova"
min_local_steps = 2
max_local_steps = 4

[[algorithms]]
name = "flanp"
participants = 2
local_steps = 3
selection = "random"

[[algorithms]]
name = "kbatch-sync"
wait = 3

[[algorithms]]
name = "kasync"
wait = 2

[[algorithms]]
name = "async"
rounds = 40
"#,
    );
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("out{threads}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_stsyn"))
            .args(["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--no-plot", "--events"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outputs.push(out);
    }
    for file in ["evals.csv", "rounds.csv", "events.csv", "summary.json", "config.toml"] {
        let a = std::fs::read(outputs[0].join(file)).unwrap();
        let b = std::fs::read(outputs[1].join(file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 2 threads");
    }
    // real-valued columns are written the same way in evals.csv as in rounds.csv: 0.0, not 0
    let evals = std::fs::read_to_string(outputs[0].join("evals.csv")).unwrap();
    let first = evals.lines().nth(1).unwrap();
    assert!(first.split(',').nth(3) == Some("0.0"), "wall_clock of the first evaluation: {first}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outputs[0].join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["algorithms"].as_array().unwrap().len(), 6);
    for a in summary["algorithms"].as_array().unwrap() {
        for key in ["name", "time_to_target", "comms_to_target", "rounds_to_target", "final_test_accuracy"] {
            assert!(a.get(key).is_some(), "summary lacks {key}: {a}");
        }
    }
    let config: RawExperiment =
        toml::from_str(&std::fs::read_to_string(outputs[0].join("config.toml")).unwrap()).unwrap();
    assert_eq!(config.seeds, Some(vec![3]));
    assert_eq!(config.stsyn_version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert!(config.stsyn_commit.as_deref().is_some_and(|c| !c.is_empty()), "the commit is recorded");
}

#[test]
fn bad_configs_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("[[algorithms]]\nname = \"fastsgd\"\n", &["fastsgd", "unknown algorithm"]),
        ("[[algorithms]]\nname = \"stsyn\"\nwait = 7\nlocal_steps = 2\n", &["wait (K)", "7", "M = 6"]),
        (
            "[[algorithms]]\nname = \"stsyn\"\nwait = 2\nlocal_steps = 2\nspeed = 3\n",
            &["unknown field", "column 1 (`speed = 3`)"],
        ),
        ("[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\nwait = 3\n", &["wait", "does not apply to pasgd"]),
        ("[[algorithms]]\nname = \"stsyn\"\nlocal_steps = 2\n", &["needs wait"]),
        ("[[algorithms]]\nname = \"fednova\"\nweighting = \"size\"\n", &["weighting", "size", "samples or uniform"]),
        ("[[algorithms]]\nname = \"fedavg\"\nfraction = 0\nlocal_steps = 2\n", &["fraction (C)", "0", "(0, 1]"]),
        ("[[algorithms]]\nname = \"fedavg\"\nfraction = nan\nlocal_steps = 2\n", &["fraction (C)", "NaN"]),
        ("[[algorithms]]\nname = \"fedavg\"\nparticipants = 7\nlocal_steps = 2\n", &["participants (m)", "7", "M = 6"]),
        ("[[algorithms]]\nname = \"fedavg\"\nlocal_steps = 2\ndeadline = -1\n", &["deadline", "-1", "> 0"]),
        ("[[algorithms]]\nname = \"adasync\"\nwait = 2\n", &["adasync needs interval"]),
        ("[[algorithms]]\nname = \"adasync\"\nwait = 9\ninterval = 1\n", &["wait (K)", "9", "M = 6"]),
        (
            "[[algorithms]]\nname = \"fedavg\"\nparticipants = 2\nfraction = 0.5\nlocal_steps = 2\n",
            &["participants (m) or fraction (C), not both"],
        ),
        ("[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 268435457\n", &["local_steps (U)", "268435457", "2^28"]),
        // grids: every mistake named with its entry and key
        (
            "[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\ngrid = { local_steps = [1, 2] }\n",
            &["grid.local_steps", "in one place"],
        ),
        (
            "[[algorithms]]\nname = \"pasgd\"\ngrid = { local_steps = 2 }\n",
            &["grid.local_steps = 2", "a list of values"],
        ),
        ("[[algorithms]]\nname = \"pasgd\"\ngrid = { local_steps = [] }\n", &["grid.local_steps = []", "no value"]),
        ("[[algorithms]]\nname = \"pasgd\"\ngrid = { name = [\"stsyn\"] }\n", &["grid.name", "cannot be swept"]),
        ("[[algorithms]]\nname = \"pasgd\"\ngrid = { speed = [1] }\n", &["('pasgd speed=1')", "unknown field `speed`"]),
        (
            "[[algorithms]]\nname = \"pasgd\"\nlabel = \"U={local_step}\"\ngrid = { local_steps = [2, 3] }\n",
            &["algorithms[0].label = 'U={local_step}'", "{local_steps}"],
        ),
        (
            "[[algorithms]]\nname = \"pasgd\"\ngrid = { local_steps = [2, -1] }\n",
            &["('pasgd local_steps=-1')", "local_steps"],
        ),
        ("[[algorithms]]\nname = \"stsyn\"\nwait = 2\ngrid = { local_steps = [2, 0] }\n", &["local_steps (U)", "0"]),
        (
            "[[algorithms]]\nname = \"pasgd\"\nlabel = \"same\"\ngrid = { local_steps = [1, 2], lr = [0.1] }\nlocal_steps = 1\n",
            &["grid.local_steps", "in one place"],
        ),
        (
            "[[algorithms]]\nname = \"pasgd\"\ngrid = { local_steps = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], lr = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], batch = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], rounds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] }\n",
            &["11000 combinations", "at most 10000"],
        ),
    ];
    for (i, (algorithms, needles)) in cases.iter().enumerate() {
        let sub = dir.path().join(format!("c{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let config = write_config(&sub, algorithms);
        let out = sub.join("out");
        assert_bad_input(&["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"], needles);
        assert!(!out.exists(), "a bad config created {}", out.display());
    }
    // A small PASGD config in its own directory, with one edit of its text, must be rejected.
    let edited = |name: &str, from: &str, to: &str, needles: &[&str]| {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let config = write_config(&sub, "[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\n");
        let text = std::fs::read_to_string(&config).unwrap().replace(from, to);
        std::fs::write(&config, text).unwrap();
        assert_bad_input(&["run", config.to_str().unwrap(), "-q", "--out", sub.join("out").to_str().unwrap()], needles);
        config
    };
    // A missing data directory says which files to put where.
    edited("cifar", "dataset = \"digits\"", "dataset = \"cifar10\"\ndir = \"no-such-dir\"", &["no-such-dir"]);
    // A built-in dataset reads no directory, from the file or from --data.
    let digits =
        edited("digits", "dataset = \"digits\"", "dataset = \"digits\"\ndir = \"d\"", &["data.dir = d", "built in"]);
    let text = std::fs::read_to_string(&digits).unwrap().replace("dir = \"d\"\n", "");
    std::fs::write(&digits, text).unwrap();
    let out = dir.path().join("digits").join("out");
    assert_bad_input(
        &["run", digits.to_str().unwrap(), "-q", "--data", "d", "--out", out.to_str().unwrap()],
        &["--data = d", "built in"],
    );
    assert!(!out.exists());
    // A results directory that holds the experiment file would overwrite it.
    let sub = dir.path().join("inplace");
    std::fs::create_dir_all(&sub).unwrap();
    let config = write_config(&sub, "[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\n");
    let inplace = sub.join("config.toml");
    std::fs::rename(&config, &inplace).unwrap();
    assert_bad_input(
        &["run", inplace.to_str().unwrap(), "-q", "--out", sub.to_str().unwrap()],
        &["--out", "experiment file"],
    );
    assert!(std::fs::read_to_string(&inplace).unwrap().contains("pasgd"));
    // Per-worker link speeds must give one value per worker.
    let config = edited(
        "links",
        "workers = 6\n",
        "workers = 6\nuplink = \"const(1)\"\nlink_speeds = \"means(1, 2)\"\n",
        &["cluster.link_speeds", "M = 6"],
    );
    // The name is the directory under results/: no paths. A label must name something.
    edited("name", "name = \"small\"", "name = \"../escape\"", &["name", "../escape", "plain file name"]);
    edited("label", "local_steps = 2\n", "local_steps = 2\nlabel = \"\"\n", &["label", "non-empty"]);
    edited("huge", "workers = 6", "workers = 1000000000", &["workers (M)", "1000000000"]);
    edited("batch", "batch = 16", "batch = 1000000000", &["pasgd.batch", "1000000000", "memory"]);
    edited("precision", "batch = 16", "batch = 16\nprecision = \"fp16\"", &["fp16", "f32", "bf16"]);
    edited(
        "synthetic",
        "dataset = \"digits\"",
        "dataset = \"synthetic\"\nshape = [1, 8, 8]\ntrain_samples = 100000000000",
        &["data.train_samples", "100000000000", "memory"],
    );
    assert_bad_input(&["run", dir.path().join("missing.toml").to_str().unwrap()], &["missing.toml"]);
    assert_bad_input(&["run", config.to_str().unwrap(), "--seeds", "4,5,4", "-q"], &["seeds", "4", "twice"]);
    assert_bad_input(&["run", config.to_str().unwrap(), "--precision", "f16", "-q"], &["f16", "--precision"]);
}

/// bf16 products are deterministic too: 1 and 2 threads give identical files (on a machine
/// without AMX-BF16 the run must instead be refused with exit code 2).
#[test]
fn bf16_results_are_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[[algorithms]]\nname = \"stsyn\"\nwait = 2\nlocal_steps = 3\n");
    if !stsyn::model::gemm_bf16::available() {
        assert_bad_input(&["run", config.to_str().unwrap(), "-q", "--precision", "bf16"], &["bf16", "AMX"]);
        return;
    }
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("out{threads}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_stsyn"))
            .args(["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--no-plot"])
            .args(["--precision", "bf16"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outputs.push(out);
    }
    for file in ["evals.csv", "rounds.csv", "summary.json"] {
        let a = std::fs::read(outputs[0].join(file)).unwrap();
        assert!(a == std::fs::read(outputs[1].join(file)).unwrap(), "{file} differs between 1 and 2 threads");
    }
    let recorded = std::fs::read_to_string(outputs[0].join("config.toml")).unwrap();
    assert!(recorded.contains("precision = \"bf16\""), "{recorded}");
}

#[test]
fn a_command_line_trace_is_found_from_the_working_directory() {
    // the config lives in one directory, the trace in the working directory of the command
    let dir = tempfile::tempdir().unwrap();
    let (conf_dir, work) = (dir.path().join("conf"), dir.path().join("work"));
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let config = write_config(&conf_dir, "[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\nrounds = 2\n");
    let trace: String = (0..6).map(|w| format!("{w},0.5\n{w},1.5\n")).collect();
    std::fs::write(work.join("t.csv"), format!("worker,duration\n{trace}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stsyn"))
        .args(["run", config.to_str().unwrap(), "-q", "--no-plot", "--out", "res", "--compute-time", "trace(t.csv)"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let recorded = std::fs::read_to_string(work.join("res/config.toml")).unwrap();
    assert!(recorded.contains(&work.join("t.csv").display().to_string()), "{recorded}");
}

#[test]
fn a_run_that_fails_midway_says_so_in_its_summary() {
    // lognormal(mu = 1000) durations overflow f64 in the first round: exit 2, and the results
    // directory's summary says "failed" with the reason instead of "running"
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\n");
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    assert_bad_input(
        &["run", config.to_str().unwrap(), "--out", o, "-q", "--compute-time", "lognormal(mu=1000, sigma=1)"],
        &["too heavy"],
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "failed");
    assert!(summary["error"].as_str().unwrap().contains("too heavy"), "{summary}");
    // plotting what it wrote works, and says that the run failed
    let plot = stsyn(&["plot", o]);
    assert_eq!(plot.status.code(), Some(0));
    let err = String::from_utf8_lossy(&plot.stderr);
    assert!(err.contains("summary.json marks the run failed") && err.contains("too heavy"), "{err}");
}

#[test]
fn a_diverged_run_is_named_and_left_out_of_the_means() {
    // lr = 1e30 overflows the digits CNN in the first round: the learner's NaN check stops
    // STSyn; K-batch-async applies its update before the evaluation that sees the NaN loss
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[[algorithms]]
name = "pasgd"
local_steps = 2

[[algorithms]]
name = "stsyn"
label = "wild"
wait = 2
local_steps = 2
lr = 1e30
eval_every = 5

[[algorithms]]
name = "kbatch-async"
label = "wild-async"
wait = 2
lr = 1e30
eval_every = 1
"#,
    );
    let out = dir.path().join("out");
    let o = stsyn(&["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--no-plot"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for label in ["wild", "wild-async"] {
        assert!(err.contains(&format!("warning: {label} (seed 3) diverged")), "{err}");
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["algorithms"][0]["final_test_accuracy"].as_f64().is_some());
    for wild in [&summary["algorithms"][1], &summary["algorithms"][2]] {
        assert_eq!((wild["diverged"].as_u64(), wild["final_test_accuracy"].is_null()), (Some(1), true), "{wild}");
    }
    // evals.csv: a model with a non-finite loss, if one was evaluated, has no accuracy
    let evals = std::fs::read_to_string(out.join("evals.csv")).unwrap();
    let bad: Vec<&str> = evals.lines().filter(|l| l.contains("NaN") || l.contains("inf")).collect();
    assert!(bad.iter().all(|l| l.split(',').nth(9) == Some("")), "{bad:?}");
    // STSyn's round 1 has its row although it was not due for evaluation by then, with NaN
    // losses whatever the broken model happens to output; its final evaluation is that row
    assert!(evals.lines().any(|l| l.starts_with("wild,3,1,") && l.split(',').nth(8) == Some("NaN")), "{evals}");
    let runs = summary["runs"].as_array().unwrap();
    let wild = runs.iter().find(|r| r["name"] == "wild").unwrap();
    assert_eq!((wild["status"].as_str(), wild["final_eval"]["test_loss"].is_null()), (Some("diverged"), true));
}

#[test]
fn interrupt_flag_stops_after_the_current_round_with_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[[algorithms]]\nname = \"stsyn\"\nwait = 2\nlocal_steps = 2\n");
    let raw = RawExperiment::read(&config).unwrap();
    let exp = raw.validate(dir.path(), "small").unwrap();
    let interrupted = AtomicBool::new(true);
    let out = dir.path().join("out");
    let summary = stsyn::experiment::run(
        &exp,
        &stsyn::experiment::RunOptions { out: out.clone(), events: false, progress: false, interrupted: &interrupted },
    )
    .unwrap();
    assert_eq!(summary.status, "interrupted");
    let evals = std::fs::read_to_string(out.join("evals.csv")).unwrap();
    assert!(evals.lines().count() >= 2 && evals.ends_with('\n'));
    assert!(out.join("rounds.csv").exists() && out.join("summary.json").exists());
}

#[test]
fn every_shipped_experiment_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let mut raw = RawExperiment::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if raw.data.as_ref().is_some_and(|d| d.dataset != "digits" && d.dataset != "synthetic") {
            raw.apply(&stsyn::config::Overrides { data_dir: Some(dir.clone()), ..Default::default() }).unwrap();
        }
        let exp = raw.validate(&dir, "x").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(exp.warnings.is_empty(), "{}: {:?}", path.display(), exp.warnings);
        if let stsyn::config::Problem::Network { spec, .. } = &exp.problem {
            assert!(spec.exists(), "{}: {} missing", path.display(), spec.display());
        }
        // the config.toml a results directory records means the same experiment, from anywhere
        let recorded: RawExperiment = toml::from_str(&toml::to_string(&exp.resolved).unwrap()).unwrap();
        assert!(recorded.config_dir.is_some());
        let again =
            recorded.validate(Path::new("/nonexistent"), "y").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(again.algorithms, exp.algorithms, "{}", path.display());
        assert_eq!((again.name, again.seeds, again.workers), (exp.name.clone(), exp.seeds.clone(), exp.workers));
        assert_eq!(again.problem, exp.problem, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} experiment files");
}

#[test]
fn dft_convolutions_train_identically_with_one_and_two_threads() {
    // a network with a convolution in the transform domain, evaluated on 300 samples (three of
    // its chunks of 128)
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("net.toml"),
        "input = [3, 12, 12]\nloss = \"softmax_cross_entropy\"\n\
         [[layers]]\ntype = \"conv2d\"\nout_channels = 8\nkernel = 5\nmethod = \"dft\"\n\
         [[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"maxpool2d\"\nkernel = 2\n\
         [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 10\n",
    )
    .unwrap();
    let config = dir.path().join("exp.toml");
    std::fs::write(
        &config,
        "rounds = 6\neval_every = 2\ntarget_accuracy = 0.5\n\
         [data]\ndataset = \"synthetic\"\nshape = [3, 12, 12]\nclasses = 10\ntrain_samples = 400\ntest_samples = 300\n\
         [model]\nspec = \"net.toml\"\nbatch = 16\nlr = 0.05\n\
         [cluster]\nworkers = 4\ncompute_time = \"exp(mean=1)\"\n\
         [[algorithms]]\nname = \"stsyn\"\nwait = 2\nlocal_steps = 3\n",
    )
    .unwrap();
    let mut evals = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("out{threads}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_stsyn"))
            .args(["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--no-plot"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        evals.push(std::fs::read_to_string(out.join("evals.csv")).unwrap());
    }
    assert!(evals[0] == evals[1], "evals.csv differs between 1 and 2 threads");
    assert_eq!(evals[0].lines().count(), 1 + 4, "rounds 0, 2, 4, 6");
}

#[test]
fn cluster_overrides_on_the_command_line_set_speeds_and_links() {
    // PASGD waits for every worker: a round is the slowest worker's downlink, U = 2 steps and
    // uplink. Worker 5 is three times slower and its links twice: 0.25·2 + 2·3 + 0.5·2 = 7.5.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[[algorithms]]\nname = \"pasgd\"\nlocal_steps = 2\n");
    let out = dir.path().join("out");
    let o = stsyn(&[
        "run",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--no-plot",
        "--compute-time",
        "const(1)",
        "--speeds",
        "means(1, 1, 1, 1, 1, 3)",
        "--uplink",
        "const(0.5)",
        "--downlink",
        "const(0.25)",
        "--link-speeds",
        "means(1, 1, 1, 1, 1, 2)",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let evals = std::fs::read_to_string(out.join("evals.csv")).unwrap();
    let last: Vec<&str> = evals.lines().last().unwrap().split(',').collect();
    assert_eq!((last[2], last[3]), ("12", "90.0"), "{evals}");
    let recorded = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(recorded.contains("speeds = \"means(1, 1, 1, 1, 1, 3)\"") && recorded.contains("uplink = \"const(0.5)\""));
    // a bad value is named as the file's key would be
    assert_bad_input(
        &["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--speeds", "means(1, 2)"],
        &["cluster.speeds", "means(1, 2)"],
    );
}
