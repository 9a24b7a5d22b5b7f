//! Overlap, sparsification and decentralized methods: message arrival times, LOSCAR's merge,
//! the growing-interval schedule's communication count, one-shot averaging by hand, mean
//! preservation of decentralized averaging, the backup-worker rule, bad graphs, byte counts and
//! determinism across thread counts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stsyn::algorithms::dbw::{self, Backup, Dbw, DecentralizedHooks, Mixing, Order};
use stsyn::algorithms::loscar::{Loscar, OverlapMode};
use stsyn::learner::{Evaluation, MergeRule, Objective, Scratch, WorkerModels};
use stsyn::rng::{Seeds, Stream};
use stsyn::sim::{Actions, Algorithm, Engine, Graph, GraphSpec, Message, Node};
use stsyn::timing::{CommTime, ComputeTime, Dist, Link, PeerLinks};
use stsyn::trace::NullSink;

use crate::cli::assert_bad_input;

/// A constant gradient g_j = −`push` for every worker and coordinate: one SGD step with η = 1
/// adds `push` to every coordinate; `push` = 0 gives a flat objective.
struct Constant {
    workers: usize,
    dim: usize,
    push: f32,
}

impl Objective for Constant {
    fn dim(&self) -> usize {
        self.dim
    }
    fn workers(&self) -> usize {
        self.workers
    }
    fn init(&self, _rng: &mut Stream) -> Vec<f32> {
        vec![0.0; self.dim]
    }
    fn scratch(&self) -> Scratch {
        Box::new(())
    }
    fn gradient(&self, _m: usize, _x: &[f32], _rng: &mut Stream, _s: &mut Scratch, grad: &mut [f32]) -> f32 {
        grad.fill(-self.push);
        0.0
    }
    fn evaluate(&self, _x: &[f32]) -> Evaluation {
        Evaluation::default()
    }
    fn probe_loss(&self, _x: &[f32], _n: usize, _rng: &mut Stream) -> f64 {
        0.0
    }
}

fn compute(spec: &str, speeds: &str, m: usize) -> ComputeTime {
    ComputeTime::parse(spec, speeds, m, Path::new(".")).unwrap()
}

fn constant_link(latency: f64, bandwidth: f64) -> Link {
    Link { latency: Some(Dist::Constant { value: latency }), bandwidth: Some(bandwidth) }
}

/// Sends scripted messages at scripted times and records when each arrives.
struct Script {
    sends: Vec<(f64, Node, Node, u64)>,
    arrivals: Vec<(u64, f64)>,
    steps: Vec<(usize, f64)>,
}

impl Algorithm for Script {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        for (k, &(at, ..)) in self.sends.iter().enumerate() {
            act.timer(at, k as u64);
        }
        act.step(0); // worker 0 computes while messages travel
    }
    fn on_step(&mut self, worker: usize, now: f64, act: &mut Actions) {
        self.steps.push((worker, now));
        if self.steps.len() < 6 {
            act.step(worker);
        }
    }
    fn on_message(&mut self, msg: &Message, now: f64, _act: &mut Actions) {
        self.arrivals.push((msg.tag, now));
    }
    fn on_timer(&mut self, tag: u64, _now: f64, act: &mut Actions) {
        let (_, from, to, bytes) = self.sends[tag as usize];
        act.send(from, to, bytes, tag);
    }
}

#[test]
fn message_arrival_times_are_latency_plus_bytes_over_bandwidth() {
    let m = 3;
    let comm = CommTime::new(constant_link(0.5, 100.0), constant_link(1.0, 50.0));
    let mut peer = PeerLinks::new(constant_link(0.25, 1000.0));
    peer.set_constant(1, 2, Some(3.0), Some(10.0));
    let steps = compute("const(1)", "same", m);
    let sends = vec![
        (0.0, Node::Worker(0), Node::Server, 200),    // 0.5 + 200/100 = 2.5
        (0.0, Node::Server, Node::Worker(1), 300),    // 1 + 300/50 = 7
        (1.0, Node::Worker(0), Node::Worker(2), 500), // 1 + 0.25 + 500/1000 = 1.75
        (2.0, Node::Worker(2), Node::Worker(1), 20),  // per-edge link: 2 + 3 + 20/10 = 7
        (2.0, Node::Worker(1), Node::Worker(2), 20),  // the other direction: same link, 7
    ];
    let expected = [2.5, 7.0, 1.75, 7.0, 7.0];
    let mut script = Script { sends, arrivals: Vec::new(), steps: Vec::new() };
    let stats =
        Engine::new(m, &steps, &comm, Seeds::new(4)).with_peer_links(&peer).run(&mut script, &mut NullSink).unwrap();
    assert_eq!(script.arrivals.len(), 5);
    for (tag, at) in &script.arrivals {
        assert_eq!(*at, expected[*tag as usize], "message {tag}");
    }
    // Worker 0 kept computing while its messages travelled: steps at 1, 2, ..., 6.
    assert_eq!(script.steps.iter().map(|s| s.1).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!((stats.bytes_up, stats.bytes_down, stats.bytes_peer), (200, 300, 540));
    assert_eq!((stats.messages_up, stats.messages_down, stats.messages_peer), (1, 1, 3));
    assert_eq!(stats.bytes_sent_by_worker, vec![700, 20, 20]);
}

#[test]
fn link_speeds_scale_each_workers_server_messages() {
    // s = (1, 4, 0.5): worker i's messages to and from the server take s_i × (latency +
    // bytes/bandwidth); a peer message without peer links rides the receiver's downlink.
    let m = 3;
    let comm = CommTime::new(constant_link(0.5, 100.0), constant_link(1.0, 50.0))
        .with_link_speeds("link_speeds", "means(1, 4, 0.5)", m)
        .unwrap();
    let steps = compute("const(1)", "same", m);
    let sends = vec![
        (0.0, Node::Worker(0), Node::Server, 200),    // 1 × (0.5 + 2) = 2.5
        (0.0, Node::Worker(1), Node::Server, 200),    // 4 × 2.5 = 10
        (0.0, Node::Server, Node::Worker(2), 300),    // 0.5 × (1 + 6) = 3.5
        (1.0, Node::Server, Node::Worker(1), 50),     // 1 + 4 × (1 + 1) = 9
        (2.0, Node::Worker(0), Node::Worker(2), 100), // 2 + 0.5 × (1 + 2) = 3.5
    ];
    let expected = [2.5, 10.0, 3.5, 9.0, 3.5];
    let mut script = Script { sends, arrivals: Vec::new(), steps: Vec::new() };
    Engine::new(m, &steps, &comm, Seeds::new(4)).run(&mut script, &mut NullSink).unwrap();
    assert_eq!(script.arrivals.len(), 5);
    for (tag, at) in &script.arrivals {
        assert_eq!(*at, expected[*tag as usize], "message {tag}");
    }
    for bad in ["means(1, 2)", "means(1, 0, 1)", "fast"] {
        let e = CommTime::ZERO.with_link_speeds("link_speeds", bad, m).unwrap_err().to_string();
        assert!(e.contains("link_speeds"), "{bad}: {e}");
    }
}

#[test]
fn random_latencies_add_the_transfer_time() {
    // Exponential latency with mean 1 plus 100 bytes at 100 bytes per time unit: mean delay 2.
    // 20,000 messages: SE = 1/√20000 ≈ 0.0071; tolerance 0.03 ≈ 4 SE.
    let n = 20_000;
    let comm =
        CommTime::new(Link::parse("uplink", "exp(mean=1)", "uplink_bandwidth", Some(100.0)).unwrap(), Link::ZERO);
    let steps = compute("const(1)", "same", 1);
    let sends = (0..n).map(|k| (k as f64, Node::Worker(0), Node::Server, 100)).collect();
    let mut script = Script { sends, arrivals: Vec::new(), steps: Vec::new() };
    Engine::new(1, &steps, &comm, Seeds::new(5)).run(&mut script, &mut NullSink).unwrap();
    let delays: Vec<f64> = script.arrivals.iter().map(|&(k, at)| at - k as f64).collect();
    assert!(delays.iter().all(|&d| d >= 1.0), "every delay includes the 1-unit transfer");
    let mean = delays.iter().sum::<f64>() / n as f64;
    assert!((mean - 2.0).abs() < 0.03, "mean delay {mean}");
}

#[test]
fn loscar_merge_reproduces_the_worked_example() {
    // specs/baselines.md §13/§14: d = 4, n = 2, S = {0, 2}; y_1 = 1, z_1 = 2 (one step of +1),
    // y_2 = 3, z_2 = 5 (two steps); m̄ = 2 on S.
    for (rule, x1, x2) in [
        (MergeRule::DelayCorrected, [3.0, 2.0, 3.0, 2.0], [4.0, 5.0, 4.0, 5.0]),
        (MergeRule::Naive, [2.0, 2.0, 2.0, 2.0], [2.0, 5.0, 2.0, 5.0]),
    ] {
        let objective = Constant { workers: 2, dim: 4, push: 1.0 };
        let mut models = WorkerModels::new(&objective, Seeds::new(1), 1.0);
        models.set_model(0, vec![1.0; 4]);
        models.set_model(1, vec![3.0; 4]);
        let mask = Arc::new(vec![0u32, 2]);
        for w in 0..2 {
            models.snapshot_masked(w, 7, Arc::clone(&mask));
        }
        models.steps(0, 1);
        models.steps(1, 2);
        let average = models.masked_average(7).unwrap();
        assert_eq!(*average, vec![2.0, 2.0]);
        for w in 0..2 {
            models.merge(w, 7, Arc::clone(&mask), Arc::clone(&average), rule);
        }
        assert_eq!(models.model(0).unwrap(), &x1, "{rule:?}");
        assert_eq!(models.model(1).unwrap(), &x2, "{rule:?}");
    }
}

/// Writes `text` to `dir/name` and returns its path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run_ok(config: &Path, out: &Path, threads: &str, extra: &[&str]) {
    let mut args = vec!["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--no-plot"];
    args.extend_from_slice(extra);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_stsyn"))
        .args(&args)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Rows of a CSV file as maps from column name to value.
fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(String::from)).collect()).collect()
}

fn number(row: &std::collections::HashMap<String, String>, key: &str) -> f64 {
    row[key].parse().unwrap_or_else(|_| panic!("{key} = '{}'", row[key]))
}

#[test]
fn growing_intervals_communicate_r_times_whatever_t() {
    // R = N rounds for every T: τ_r = ⌊T·r(r+1)/(N(N+1))⌋, so the number of averagings is N
    // (and 2·N per averaging messages: a download and an upload per worker), independent of T.
    let dir = tempfile::tempdir().unwrap();
    let n = 6u64;
    for t in [100u64, 1_000, 20_000] {
        let config = write(
            dir.path(),
            "grow.toml",
            &format!(
                r#"
seeds = [2]
rounds = 100000
eval_every = 100000
[model]
batch = 1
lr = 0.01
[problem]
kind = "noisy_quadratic"
[cluster]
workers = {n}
compute_time = "exp(mean=1)"
[[algorithms]]
name = "local-sgd"
total_steps = {t}
schedule = "increasing"
"#
            ),
        );
        let out = dir.path().join(format!("out{t}"));
        run_ok(&config, &out, "2", &[]);
        let expected = stsyn::theory::spiridonoff::increasing(t, n).unwrap();
        let rounds = csv_rows(&out.join("rounds.csv"));
        assert_eq!(rounds.len() as u64, n, "T = {t}");
        assert_eq!(expected.len() as u64 - 1, n);
        for (r, row) in rounds.iter().enumerate() {
            let h = expected[r + 1] - expected[r];
            assert_eq!(number(row, "updates") as u64, n * h, "T = {t}, round {r}");
        }
        let last = csv_rows(&out.join("evals.csv")).pop().unwrap();
        assert_eq!(number(&last, "comm_transmissions") as u64, 2 * n * n);
        assert_eq!(number(&last, "local_updates") as u64, n * t);
        let bytes = csv_rows(&out.join("metrics.csv")).pop().unwrap();
        assert_eq!(number(&bytes, "bytes_sent") as u64, 2 * n * n * 4 * 3, "3 coordinates of 4 bytes");
    }
}

#[test]
fn one_shot_averaging_matches_a_hand_computation() {
    // f_m(x) = ½(x − c_m)², c = (0, 2), no noise, x⁰ = 5, T = 3, one averaging at the end.
    // η = 0.5: worker 0 halves its distance to 0 each step, 5 → 2.5 → 1.25 → 0.625; worker 1
    // halves its distance to 2, 5 → 3.5 → 2.75 → 2.375; x̄ = 1.5, x* = 1: distance 0.5,
    // F(x̄) − F* = ¼(1.5² + 0.5²) − ¼(1 + 1) = 0.125.
    // α_t = 1/(t + 2): worker 0: 5 → 2.5 → 5/3 → 1.25; worker 1: 5 → 3.5 → 3 → 2.75; x̄ = 2.
    let dir = tempfile::tempdir().unwrap();
    for (step_size, distance, gap) in [("constant", 0.5, 0.125), ("inverse(alpha=1, mu=1, beta=2)", 1.0, 0.5)] {
        let config = write(
            dir.path(),
            "osa.toml",
            &format!(
                r#"
seeds = [1]
rounds = 10
[model]
batch = 1
lr = 0.5
[problem]
kind = "quadratic"
centers = [[0.0], [2.0]]
init = [5.0]
[cluster]
workers = 2
compute_time = "exp(mean=1)"
[[algorithms]]
name = "local-sgd"
total_steps = 3
schedule = "one_shot"
step_size = "{step_size}"
"#
            ),
        );
        let out = dir.path().join("out");
        run_ok(&config, &out, "2", &[]);
        let evals = csv_rows(&out.join("evals.csv"));
        assert_eq!(evals.len(), 2, "the start and the single averaging");
        let last = &evals[1];
        assert_eq!(number(last, "local_updates"), 6.0);
        assert_eq!(number(last, "comm_transmissions"), 4.0);
        assert!((number(last, "distance_to_optimum") - distance).abs() < 1e-6, "{step_size}: {last:?}");
        assert!((number(last, "train_loss") - gap).abs() < 1e-6, "{step_size}: {last:?}");
    }
}

/// Decentralized averaging with a flat objective: every iteration only mixes. Keeps every
/// worker's model after each iteration.
struct MixOnly<'a> {
    models: WorkerModels<'a>,
    payloads: std::collections::HashMap<u64, Arc<Vec<f32>>>,
    next: u64,
    /// x_i(k+1) by k and worker.
    after: std::collections::BTreeMap<u64, Vec<Option<Arc<Vec<f32>>>>>,
    chosen: Vec<(usize, u64, usize)>,
}

impl<'a> MixOnly<'a> {
    fn new(models: WorkerModels<'a>) -> Self {
        MixOnly { models, payloads: Default::default(), next: 0, after: Default::default(), chosen: Vec::new() }
    }

    /// (mean, consensus distance) of x(k+1) for every k that all workers completed.
    fn complete_iterations(&self) -> Vec<(Vec<f64>, f64)> {
        let mut out = Vec::new();
        for models in self.after.values() {
            let Some(models) = models.iter().cloned().collect::<Option<Vec<_>>>() else { break };
            let m = models.len() as f64;
            let d = models[0].len();
            let mean: Vec<f64> = (0..d).map(|c| models.iter().map(|x| x[c] as f64).sum::<f64>() / m).collect();
            let spread = models
                .iter()
                .map(|x| x.iter().zip(&mean).map(|(&a, b)| (a as f64 - b).powi(2)).sum::<f64>())
                .sum::<f64>();
            out.push((mean, (spread / m).sqrt()));
        }
        out
    }
}

impl DecentralizedHooks for MixOnly<'_> {
    fn broadcast(&mut self, worker: usize, _k: u64, _receivers: usize) -> u64 {
        self.next += 1;
        self.payloads.insert(self.next, self.models.snapshot(worker));
        self.next
    }
    fn mix(&mut self, worker: usize, k: u64, own: f64, neighbours: &[(u64, f64)]) {
        let list = neighbours.iter().map(|&(p, w)| (w, Arc::clone(&self.payloads[&p]))).collect();
        self.models.mix(worker, own, list, false);
        self.chosen.push((worker, k, neighbours.len()));
        let m = self.models.workers();
        self.after.entry(k).or_insert_with(|| vec![None; m])[worker] = Some(self.models.snapshot(worker));
    }
}

#[test]
fn decentralized_averaging_preserves_the_mean_on_a_doubly_stochastic_matrix() {
    let m = 8;
    let seeds = Seeds::new(3);
    for (graph_text, mixing) in [("ring", Mixing::Uniform), ("erdos_renyi(p=0.4)", Mixing::Metropolis)] {
        let spec = GraphSpec::parse("graph", graph_text, Path::new(".")).unwrap();
        let graph = spec.build(m, &seeds).unwrap();
        // With every neighbour (b = 0) the weights form a symmetric, doubly stochastic matrix.
        let mut p = vec![vec![0.0; m]; m];
        for i in 0..m {
            let (own, w) = Dbw::<()>::weights(&graph, mixing, i, graph.neighbors(i));
            p[i][i] = own;
            for (&j, w) in graph.neighbors(i).iter().zip(w) {
                p[i][j] = w;
            }
        }
        for i in 0..m {
            let row: f64 = p[i].iter().sum();
            let col: f64 = (0..m).map(|j| p[j][i]).sum();
            assert!((row - 1.0).abs() < 1e-12 && (col - 1.0).abs() < 1e-12, "{graph_text}: row {row}, col {col}");
        }
        // Run the algorithm with b = 0 from distinct models: the mean stays, consensus improves.
        let objective = Constant { workers: m, dim: 3, push: 0.0 };
        let mut models = WorkerModels::new(&objective, seeds, 0.1);
        for i in 0..m {
            models.set_model(i, vec![i as f32, (i * i) as f32, -(i as f32)]);
        }
        let start_mean = models.average().unwrap();
        let start_consensus = models.consensus_distance().unwrap();
        let hooks = MixOnly::new(models);
        let settings = dbw::Settings { graph: spec, backup: Backup::Static(0), mixing, order: Order::CombineThenAdapt };
        let mut alg = Dbw::new(graph, &settings, 12, 20, hooks);
        let steps = compute("exp(mean=1)", "same", m);
        Engine::new(m, &steps, CommTime::none(), seeds).run(&mut alg, &mut NullSink).unwrap();
        // Workers drift apart by a few iterations; compare x(k) once every worker has done k.
        let complete = alg.into_hooks().complete_iterations();
        assert!(complete.len() >= 15, "{graph_text}: {} complete iterations", complete.len());
        for (k, (mean, _)) in complete.iter().enumerate() {
            for (a, &b) in mean.iter().zip(&start_mean) {
                assert!((a - b as f64).abs() < 1e-4, "{graph_text}, k = {k}: mean moved from {b} to {a}");
            }
        }
        let last = complete.last().unwrap().1;
        assert!(last < 0.05 * start_consensus, "{graph_text}: consensus {start_consensus} → {last}");
    }
}

#[test]
fn dynamic_backup_waits_only_for_neighbours_already_heard_from() {
    // Complete graph on 3, fixed times X = (1, 2, 10), zero communication, adapt then combine.
    // Worker 0 is done at 1 with nothing received: it waits for the first neighbour (worker 1
    // at 2): b = 1. Worker 1 is done at 2 and has worker 0's message: b = 1. Worker 2 is done at
    // 10 with both messages in: b = 0. Static b = 0 makes everybody wait for everybody.
    let m = 3;
    let steps = compute("const(1)", "means(1, 2, 10)", m);
    for (backup, expected) in [(Backup::Dynamic, [1usize, 1, 2]), (Backup::Static(0), [2, 2, 2])] {
        let objective = Constant { workers: m, dim: 1, push: 0.0 };
        let hooks = MixOnly::new(WorkerModels::new(&objective, Seeds::new(1), 0.1));
        let settings = dbw::Settings {
            graph: GraphSpec::Complete,
            backup,
            mixing: Mixing::Uniform,
            order: Order::AdaptThenCombine,
        };
        let graph = GraphSpec::Complete.build(m, &Seeds::new(1)).unwrap();
        let mut alg = Dbw::new(graph, &settings, 4, 3, hooks);
        Engine::new(m, &steps, CommTime::none(), Seeds::new(1)).run(&mut alg, &mut NullSink).unwrap();
        let chosen = &alg.hooks_mut().chosen;
        for w in 0..m {
            let first = chosen.iter().find(|c| c.0 == w && c.1 == 0).expect("first iteration");
            assert_eq!(first.2, expected[w], "{backup:?}, worker {w}");
        }
    }
}

#[test]
fn engine_byte_counts_match_the_algorithms_traffic() {
    let m = 6;
    let steps = compute("exp(mean=1)", "profile(b=1, p=0.5)", m);
    let comm = CommTime::new(constant_link(0.5, 1e4), constant_link(0.5, 1e4));
    let mut alg = Loscar::new(vec![3, 2, 2, 1, 1, 1], OverlapMode::UntilArrival, 400, 25, ());
    let stats = Engine::new(m, &steps, &comm, Seeds::new(2)).run(&mut alg, &mut NullSink).unwrap();
    assert_eq!(stats.bytes_sent_by_worker, alg.traffic.bytes_sent);
    assert_eq!(stats.bytes_down, alg.traffic.server_bytes_sent);
    assert_eq!(stats.bytes_up, 25 * 6 * 400);
    assert_eq!(stats.steps, alg.traffic.local_steps.iter().sum::<u64>());
    assert!(alg.traffic.total_overlap_steps() > 0);

    let graph = GraphSpec::parse("g", "torus(rows=2)", Path::new(".")).unwrap().build(m, &Seeds::new(2)).unwrap();
    let settings = dbw::Settings {
        graph: GraphSpec::Ring,
        backup: Backup::Dynamic,
        mixing: Mixing::Metropolis,
        order: Order::CombineThenAdapt,
    };
    let peer = PeerLinks::new(constant_link(0.1, 1e5));
    let mut alg = Dbw::new(graph, &settings, 1000, 30, ());
    let stats = Engine::new(m, &steps, CommTime::none(), Seeds::new(2))
        .with_peer_links(&peer)
        .run(&mut alg, &mut NullSink)
        .unwrap();
    assert_eq!(stats.bytes_sent_by_worker, alg.traffic.bytes_sent);
    assert_eq!(stats.bytes_peer, alg.traffic.total_bytes());
    assert_eq!((stats.bytes_up, stats.bytes_down), (0, 0));
    assert_eq!(alg.traffic.iterations.iter().sum::<u64>(), 30 * m as u64);
}

const DIGITS_HEAD: &str = r#"
seeds = [5]
rounds = 6
eval_every = 2
[data]
dataset = "digits"
[model]
spec = "MODEL"
batch = 16
lr = 0.1
[cluster]
workers = 6
compute_time = "exp(mean=1)"
speeds = "profile(b=1, p=0.5)"
uplink = "const(1)"
downlink = "exp(mean=1)"
uplink_bandwidth = 20000
peer_latency = "exp(mean=0.2)"
peer_bandwidth = 50000
"#;

fn digits_config(dir: &Path, algorithms: &str) -> PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits_cnn.toml");
    let text = DIGITS_HEAD.replace("MODEL", model.to_str().unwrap()) + algorithms;
    write(dir, "digits.toml", &text)
}

#[test]
fn overlap_runs_are_identical_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let config = digits_config(
        dir.path(),
        r#"
[[algorithms]]
name = "loscar"
compute_budget = 4
sparsity = 0.05
[[algorithms]]
name = "loscar"
label = "loscar-naive-q2"
local_steps = 3
overlap_mode = "fixed_q"
overlap_steps = 2
merge = "naive"
[[algorithms]]
name = "dbw"
graph = "torus(rows=2)"
mixing = "metropolis"
[[algorithms]]
name = "dbw"
label = "dbw-static-atc"
graph = "erdos_renyi(p=0.5)"
backup_workers = 1
order = "adapt_then_combine"
[[algorithms]]
name = "local-sgd"
total_steps = 30
schedule = "increasing"
step_size = "inverse_capped(eta=2, smoothness=20)"
"#,
    );
    let mut outs = Vec::new();
    for threads in ["1", "3"] {
        let out = dir.path().join(format!("out{threads}"));
        run_ok(&config, &out, threads, &["--events"]);
        outs.push(out);
    }
    for file in ["evals.csv", "rounds.csv", "events.csv", "metrics.csv", "workers.csv", "summary.json"] {
        let a = std::fs::read(outs[0].join(file)).unwrap();
        let b = std::fs::read(outs[1].join(file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 3 threads");
    }
    // Every algorithm wrote its rows; sparse LOSCAR sends 5 % of the dense bytes.
    let metrics = csv_rows(&outs[0].join("metrics.csv"));
    for label in ["loscar", "loscar-naive-q2", "dbw", "dbw-static-atc", "local-sgd"] {
        assert!(metrics.iter().any(|r| r["algorithm"] == label), "no metrics for {label}");
    }
    let workers = csv_rows(&outs[0].join("workers.csv"));
    assert_eq!(workers.len(), 5 * 6);
    let sparse: f64 = workers.iter().filter(|r| r["algorithm"] == "loscar").map(|r| number(r, "bytes_sent")).sum();
    let d = 13_706.0;
    assert_eq!(sparse, 6.0 * 6.0 * 4.0 * (0.05f64 * d).round(), "6 rounds × 6 workers × 4·K bytes");
    // events.csv names the sender of every worker-to-worker message (dbw), and none for
    // messages to or from the server (loscar).
    let events = csv_rows(&outs[0].join("events.csv"));
    let arrivals =
        |label: &'static str| events.iter().filter(move |r| r["algorithm"] == label && r["kind"] == "arrive");
    assert!(arrivals("dbw").count() > 0);
    assert!(arrivals("dbw").all(|r| !r["peer"].is_empty() && r["peer"] != r["worker"]));
    assert!(arrivals("loscar").count() > 0 && arrivals("loscar").all(|r| r["peer"].is_empty()));
    // evals.csv's comm_bytes is the drivers' own byte count (sparse LOSCAR messages included).
    let evals = csv_rows(&outs[0].join("evals.csv"));
    for label in ["loscar", "dbw"] {
        let (e, m) =
            (evals.iter().rfind(|r| r["algorithm"] == label), metrics.iter().rfind(|r| r["algorithm"] == label));
        let (e, m) = (e.unwrap(), m.unwrap());
        assert_eq!(
            (e["round"].as_str(), number(e, "comm_bytes")),
            (m["round"].as_str(), number(m, "bytes_sent")),
            "{label}"
        );
    }
    let last = metrics.iter().rfind(|r| r["algorithm"] == "dbw").unwrap();
    assert!(number(last, "consensus_distance") > 0.0);
    assert!(number(last, "mean_backup_workers") >= 0.0);
}

#[test]
fn loscar_dense_without_overlap_is_local_sgd() {
    // p = 1, Q = 0 and the same N for everybody: every round averages the N-step models from a
    // common start, with the data PASGD draws in that round. The models agree up to the order
    // of the float sums.
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "q.toml",
        r#"
seeds = [4]
rounds = 15
eval_every = 15
[model]
batch = 1
lr = 0.05
[problem]
kind = "quadratic"
dim = 5
noise = 0.5
init = [3.0, -2.0, 1.0, 0.5, 4.0]
[cluster]
workers = 4
compute_time = "exp(mean=1)"
[[algorithms]]
name = "loscar"
local_steps = 5
overlap_mode = "fixed_q"
overlap_steps = 0
[[algorithms]]
name = "pasgd"
local_steps = 5
"#,
    );
    let out = dir.path().join("out");
    run_ok(&config, &out, "2", &[]);
    let evals = csv_rows(&out.join("evals.csv"));
    let last = |label: &str| number(evals.iter().rfind(|r| r["algorithm"] == label).unwrap(), "distance_to_optimum");
    let (a, b) = (last("loscar"), last("pasgd"));
    assert!((a - b).abs() < 1e-5 * b.max(1.0), "loscar {a} vs pasgd {b}");
}

#[test]
fn loscar_averages_one_mask_per_round_shared_by_every_worker() {
    // Two workers, f_i(x) = ½‖x − c_i‖² with c_0 = 0 and c_1 = (1, 2, 3, 4, 5), no noise,
    // x⁰ = 0, η = 0.5, one local step, no overlap, naive merge, p = 0.4 (K = 2 of d = 5). Each
    // round both workers step, the masked average m̄ overwrites the K coordinates of S_r, and the
    // rest stay local, so the consensus distance of round r is that of the hand computation
    // below with S_r drawn from stream (Algorithm, LOSCAR_MASK_STREAM, r) of the run's seed: one
    // fresh mask per round, the same for both workers.
    use stsyn::experiment::overlap::LOSCAR_MASK_STREAM;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "mask.toml",
        r#"
seeds = [7]
rounds = 3
eval_every = 1
[model]
batch = 1
lr = 0.5
[problem]
kind = "quadratic"
dim = 5
noise = 0
centers = [[0, 0, 0, 0, 0], [1, 2, 3, 4, 5]]
[cluster]
workers = 2
compute_time = "exp(mean=1)"
[[algorithms]]
name = "loscar"
local_steps = 1
sparsity = 0.4
overlap_mode = "fixed_q"
overlap_steps = 0
merge = "naive"
"#,
    );
    let out = dir.path().join("out");
    run_ok(&config, &out, "2", &[]);
    let metrics = csv_rows(&out.join("metrics.csv"));
    let centres = [[0.0; 5], [1.0, 2.0, 3.0, 4.0, 5.0]];
    let mut x = [[0.0f64; 5]; 2];
    let seeds = Seeds::new(7);
    let mut masks = Vec::new();
    for round in 0..3u64 {
        for (xi, ci) in x.iter_mut().zip(&centres) {
            for j in 0..5 {
                xi[j] -= 0.5 * (xi[j] - ci[j]);
            }
        }
        // Round r is recorded when the server has formed m̄^r, before the workers merge it.
        let consensus = ((0..5).map(|j| (0.5 * (x[0][j] - x[1][j])).powi(2)).sum::<f64>()).sqrt();
        let row = metrics.iter().find(|r| r["round"] == (round + 1).to_string()).unwrap();
        let got = number(row, "consensus_distance");
        assert!((got - consensus).abs() < 1e-5, "round {}: consensus {got}, hand computation {consensus}", round + 1);
        let mut rng = seeds.stream(stsyn::rng::Purpose::Algorithm, LOSCAR_MASK_STREAM, round);
        let mask: Vec<usize> = rand::seq::index::sample(&mut rng, 5, 2).into_iter().collect();
        for &j in &mask {
            let mean = 0.5 * (x[0][j] + x[1][j]);
            x[0][j] = mean;
            x[1][j] = mean;
        }
        masks.push(mask);
    }
    // The seed gives different masks in different rounds, so the check above tells them apart.
    let mut sorted: Vec<Vec<usize>> = masks
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.sort();
            m
        })
        .collect();
    sorted.dedup();
    assert!(sorted.len() > 1, "masks {masks:?}");
}

#[test]
fn bad_graphs_and_settings_exit_2_naming_the_value() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "split.txt", "0 1\n1 2\n3 4\n4 5\n");
    write(dir.path(), "loop.txt", "0 1\n1 2\n2 2\n");
    write(dir.path(), "unknown.txt", "0 1\n1 2\n2 3\n3 4\n4 5\n5 17\n");
    write(dir.path(), "twice.txt", "0 1\n1 2\n2 3\n3 4\n4 5\n1 0\n");
    write(dir.path(), "garbage.txt", "0 one\n");
    let cases: &[(&str, &[&str])] = &[
        ("name = \"dbw\"\ngraph = \"file(split.txt)\"", &["disconnected", "3, 4, 5"]),
        ("name = \"dbw\"\ngraph = \"file(loop.txt)\"", &["loop.txt", "line 3", "self-loop 2–2"]),
        ("name = \"dbw\"\ngraph = \"file(unknown.txt)\"", &["unknown.txt", "line 6", "node 17", "M = 6"]),
        ("name = \"dbw\"\ngraph = \"file(twice.txt)\"", &["line 6", "edge 0–1 repeats line 1"]),
        ("name = \"dbw\"\ngraph = \"file(garbage.txt)\"", &["line 1", "'one'"]),
        ("name = \"dbw\"\ngraph = \"file(missing.txt)\"", &["missing.txt"]),
        ("name = \"dbw\"\ngraph = \"torus(rows=4)\"", &["torus(rows=4)", "rows × cols"]),
        ("name = \"dbw\"\ngraph = \"erdos_renyi(p=0)\"", &["p = 0"]),
        ("name = \"dbw\"\ngraph = \"hypercube\"", &["hypercube"]),
        ("name = \"dbw\"\ngraph = \"ring\"\nbackup = \"greedy\"", &["backup", "greedy"]),
        ("name = \"dbw\"\ngraph = \"ring\"\nbackup = \"dynamic\"\nbackup_workers = 1", &["backup_workers = 1"]),
        ("name = \"dbw\"", &["needs graph"]),
        ("name = \"loscar\"\nlocal_steps = 2\nsparsity = 0", &["sparsity", "0"]),
        ("name = \"loscar\"\nlocal_steps = 2\nsparsity = 1.5", &["sparsity", "1.5"]),
        ("name = \"loscar\"\nlocal_steps = 2\noverlap_steps = 3", &["overlap_steps = 3", "fixed_q"]),
        ("name = \"loscar\"\nlocal_steps = 2\noverlap_mode = \"sometimes\"", &["overlap_mode", "sometimes"]),
        ("name = \"loscar\"\nlocal_steps = 2\nmerge = \"average\"", &["merge", "average"]),
        ("name = \"loscar\"\nlocal_steps = 2\nmask = \"random\"", &["mask", "random", "shared_seed or server"]),
        ("name = \"loscar\"\nlocal_steps = 2\ncompute_budget = 3", &["not both"]),
        ("name = \"loscar\"\ncompute_budget = -1", &["compute_budget", "-1"]),
        ("name = \"loscar\"\ncompute_budget = 1e12", &["compute_budget", "1000000000000", "2^28"]),
        ("name = \"local-sgd\"\ntotal_steps = 100\nschedule = \"budget(power=2/3)\"", &["2/3"]),
        ("name = \"local-sgd\"\nschedule = \"one_shot\"", &["needs total_steps"]),
        (
            "name = \"local-sgd\"\ntotal_steps = 268435456\nschedule = \"one_shot\"",
            &["total_steps", "interval of 268435456"],
        ),
        ("name = \"local-sgd\"\ntotal_steps = 18446744073709551615", &["total_steps", "18446744073709551615"]),
        (
            "name = \"loscar\"\nlocal_steps = 2\noverlap_mode = \"fixed_q\"\noverlap_steps = 4294967295",
            &["overlap_steps (Q)", "4294967295", "2^28"],
        ),
        ("name = \"local-sgd\"\ntotal_steps = 100\nstep_size = \"inverse(mu=-1)\"", &["mu = -1"]),
        ("name = \"pasgd\"\nlocal_steps = 2\ngraph = \"ring\"", &["graph", "does not apply to pasgd"]),
        // settings that would be rounded or capped into something else
        ("name = \"dbw\"\ngraph = \"ring\"\nbackup_workers = 2", &["backup_workers = 2", "largest degree, 2"]),
        (
            "name = \"local-sgd\"\ntotal_steps = 20\nschedule = \"equal(rounds=100)\"",
            &["schedule rounds = 100", "T) = 20"],
        ),
        ("name = \"local-sgd\"\ntotal_steps = 20\nschedule = \"constant(interval=21)\"", &["schedule interval = 21"]),
        ("name = \"loscar\"\ncompute_budget = 1e-30", &["compute_budget = 1e-30", "below every worker"]),
        (
            "name = \"adacomm\"\nlocal_steps = 2\ninterval = 1\nprobe_batch = 1000000000",
            &["probe_batch = 1000000000", "at most 100000"],
        ),
    ];
    for (i, (algorithm, needles)) in cases.iter().enumerate() {
        let config = digits_config(dir.path(), &format!("[[algorithms]]\n{algorithm}\n"));
        let renamed = dir.path().join(format!("case{i}.toml"));
        std::fs::rename(&config, &renamed).unwrap();
        let out = dir.path().join(format!("out{i}"));
        assert_bad_input(&["run", renamed.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"], needles);
        assert!(!out.exists(), "case {i} created {}", out.display());
    }
    // Bad problem settings of the new kinds.
    let config = write(
        dir.path(),
        "p.toml",
        "rounds = 2\n[model]\nbatch = 1\nlr = 0.1\n[problem]\nkind = \"piecewise_quadratic\"\nmu = -2\n[cluster]\nworkers = 2\ncompute_time = \"const(1)\"\n[[algorithms]]\nname = \"local-sgd\"\ntotal_steps = 4\n",
    );
    assert_bad_input(
        &["run", config.to_str().unwrap(), "-q", "--out", dir.path().join("po").to_str().unwrap()],
        &["problem.mu", "-2"],
    );
    // AdaComm's probe on a [problem] is the exact objective: a probe_batch there is warned about.
    let text = std::fs::read_to_string(&config).unwrap().replace("mu = -2", "mu = 2").replace(
        "name = \"local-sgd\"\ntotal_steps = 4",
        "name = \"adacomm\"\nlocal_steps = 2\ninterval = 1\nprobe_batch = 5",
    );
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("probe");
    let o = crate::cli::stsyn(&["run", config.to_str().unwrap(), "-q", "--no-plot", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("probe_batch not used"), "{err}");
    let graph = Graph::from_neighbors(vec![vec![1], vec![0], vec![]]);
    assert!(graph.unwrap_err().to_string().contains("disconnected"));
}

#[test]
fn settings_that_do_not_act_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("name = \"loscar\"\nlocal_steps = 2", "warning: cluster.peer_latency, cluster.peer_bandwidth not used"),
        (
            "name = \"dbw\"\ngraph = \"ring\"",
            "warning: cluster.uplink, cluster.downlink, cluster.uplink_bandwidth not used",
        ),
        (
            "name = \"local-sgd\"\ntotal_steps = 100\nschedule = \"constant(interval=5)\"",
            "stops after rounds = 1 of its schedule's 20 averagings, before T = 100",
        ),
    ];
    for (i, (algorithm, needle)) in cases.iter().enumerate() {
        let config = digits_config(dir.path(), &format!("[[algorithms]]\n{algorithm}\n"));
        let out = dir.path().join(format!("out{i}"));
        let args =
            ["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--no-plot", "--rounds", "1"];
        let o = crate::cli::stsyn(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.contains(needle), "case {i}: {err}");
    }
    // A random graph is drawn for every seed before anything runs; the error names the seed.
    let config = digits_config(dir.path(), "[[algorithms]]\nname = \"dbw\"\ngraph = \"erdos_renyi(p=0.035)\"\n");
    let seeds = (1..=20).map(|s| s.to_string()).collect::<Vec<_>>().join(",");
    let out = dir.path().join("er");
    let args = ["run", config.to_str().unwrap(), "--workers", "60", "--seeds", &seeds, "--out", out.to_str().unwrap()];
    assert_bad_input(&args, &["seed 2:", "erdos_renyi(p=0.035)", "raise p"]);
    assert!(!out.exists());
}

#[test]
fn sparse_loscar_with_overlap_beats_no_overlap_in_wall_clock_on_a_quadratic() {
    // A sanity check of the mechanism (the experiments quantify it): with a slow link, LOSCAR
    // that keeps computing does more local steps in the same simulated time than the variant
    // that idles while its message travels, and gets closer to the optimum by then.
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "ov.toml",
        r#"
seeds = [7]
rounds = 1000
max_time = 400
eval_every = 1000
[model]
batch = 1
lr = 0.02
[problem]
kind = "quadratic"
dim = 20
center_spread = 0
noise = 0.2
init = [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
[cluster]
workers = 4
compute_time = "exp(mean=1)"
speeds = "profile(b=1, p=0.5)"
uplink = "const(10)"
downlink = "const(10)"
[[algorithms]]
name = "loscar"
label = "overlap"
compute_budget = 5
sparsity = 0.5
[[algorithms]]
name = "loscar"
label = "idle"
compute_budget = 5
sparsity = 0.5
overlap_mode = "fixed_q"
overlap_steps = 0
"#,
    );
    let out = dir.path().join("out");
    run_ok(&config, &out, "2", &[]);
    let evals = csv_rows(&out.join("evals.csv"));
    let last = |label: &str| evals.iter().rfind(|r| r["algorithm"] == label).unwrap().clone();
    let (overlap, idle) = (last("overlap"), last("idle"));
    assert!(number(&overlap, "local_updates") > 2.0 * number(&idle, "local_updates"));
    assert!(number(&overlap, "distance_to_optimum") < number(&idle, "distance_to_optimum"));
}

#[test]
fn a_time_budget_between_rounds_labels_the_final_evaluation_with_the_work_it_includes() {
    // Per-worker models change with every local step. When `max_time` stops a LOSCAR or
    // decentralized run between two rounds, the final evaluation sees the steps taken after the
    // last round, so its row must carry the time of the last step and count those steps
    // (otherwise a target reached by them would be credited to the last round's end).
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tail.toml",
        r#"
seeds = [3]
rounds = 1000
max_time = 37.5
eval_every = 1000
[model]
batch = 1
lr = 0.02
[problem]
kind = "quadratic"
dim = 6
noise = 0.2
[cluster]
workers = 4
compute_time = "exp(mean=1)"
uplink = "const(2)"
downlink = "const(2)"
[[algorithms]]
name = "loscar"
compute_budget = 5
[[algorithms]]
name = "dbw"
graph = "ring"
"#,
    );
    let out = dir.path().join("out");
    run_ok(&config, &out, "1", &[]);
    let (evals, rounds, workers) =
        (csv_rows(&out.join("evals.csv")), csv_rows(&out.join("rounds.csv")), csv_rows(&out.join("workers.csv")));
    for (label, work) in [("loscar", "local_steps"), ("dbw", "iterations")] {
        let last = evals.iter().rfind(|r| r["algorithm"] == label).unwrap();
        let last_round_end =
            rounds.iter().filter(|r| r["algorithm"] == label).map(|r| number(r, "end")).fold(0.0, f64::max);
        let total: f64 = workers.iter().filter(|r| r["algorithm"] == label).map(|r| number(r, work)).sum();
        let time = number(last, "wall_clock");
        assert!(
            time > last_round_end && time <= 37.5,
            "{label}: final row at {time}, last round ended {last_round_end}"
        );
        assert_eq!(number(last, "local_updates"), total, "{label}");
    }
}
