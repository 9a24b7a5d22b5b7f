//! Timing engine: the heap path against the per-round kernel (bit for bit), simulation against
//! closed forms, invariants, determinism.

use std::path::Path;

use stsyn::algorithms::TimingAlgorithm;
use stsyn::algorithms::timing::{EnginePath, TimingSetup};
use stsyn::rng::Seeds;
use stsyn::sim::{Actions, Algorithm, Engine, Message, Node};
use stsyn::timing::{CommTime, ComputeTime, Link};
use stsyn::trace::{MemorySink, NullSink};

fn setup(alg: TimingAlgorithm, m: usize, k: usize, u: u32, rounds: u64, compute: &str) -> TimingSetup {
    TimingSetup {
        algorithm: alg,
        workers: m,
        wait: k,
        local_steps: u,
        max_steps: None,
        deadline: None,
        rounds,
        seed: 11,
        model_bytes: 1000,
        compute: ComputeTime::parse(compute, "same", m, Path::new(".")).unwrap(),
        comm: CommTime::ZERO,
        asynchronous: Default::default(),
    }
}

fn rounds(s: &TimingSetup, path: EnginePath) -> Vec<stsyn::trace::RoundRecord> {
    let mut sink = MemorySink::default();
    s.simulate(path, &mut sink).unwrap();
    sink.rounds
}

#[test]
fn heap_and_kernel_agree_bit_for_bit() {
    let mut cases = vec![
        setup(TimingAlgorithm::Stsyn, 20, 5, 10, 300, "exp(mean=1)"),
        setup(TimingAlgorithm::Stsyn, 7, 7, 3, 300, "lognormal(mu=0, sigma=1)"),
        setup(TimingAlgorithm::Stsyn, 9, 2, 1, 300, "pareto(shape=1.5)"),
        setup(TimingAlgorithm::Stsyn, 10, 3, 4, 200, "const(1)"), // every step ties
        setup(TimingAlgorithm::Stsyn, 12, 4, 5, 200, "per_round(lomax_mix(low=1e4, high=2e4))"),
        setup(TimingAlgorithm::Sync, 8, 8, 4, 300, "shifted_exp(shift=1, mean=1)"),
        setup(TimingAlgorithm::KSync, 8, 3, 1, 300, "exp(mean=2)"),
    ];
    let mut capped = setup(TimingAlgorithm::Stsyn, 20, 5, 10, 200, "exp(mean=1)");
    capped.max_steps = Some(15);
    cases.push(capped);
    // FedAvg samples its clients each round, with and without a deadline, on unequal speeds
    let mut fedavg = setup(TimingAlgorithm::FedAvg, 20, 5, 10, 200, "exp(mean=1)");
    fedavg.compute =
        ComputeTime::parse("exp(mean=1)", "profile(a=1, b=1, p=0.5, first=0)", 20, Path::new(".")).unwrap();
    cases.push(fedavg.clone());
    fedavg.deadline = Some(20.0);
    cases.push(fedavg);
    let mut with_comm = setup(TimingAlgorithm::Stsyn, 10, 4, 5, 200, "exp(mean=1)");
    with_comm.comm = CommTime::new(
        Link::parse("uplink", "exp(mean=0.5)", "uplink_bandwidth", Some(2000.0)).unwrap(),
        Link::parse("downlink", "uniform(low=0, high=3)", "downlink_bandwidth", None).unwrap(),
    );
    let mut slow_links = with_comm.clone();
    slow_links.comm = slow_links.comm.with_link_speeds("link_speeds", "profile(a=1, b=1, p=1, first=0)", 10).unwrap();
    // more workers than one parallel chunk of the kernel (4096), with uploads that take time
    let mut many = setup(TimingAlgorithm::Stsyn, 9000, 3000, 3, 4, "exp(mean=1)");
    many.comm = with_comm.comm.clone();
    cases.push(with_comm);
    cases.push(slow_links);
    cases.push(many);
    for s in &cases {
        let heap = rounds(s, EnginePath::Heap);
        let kernel = rounds(s, EnginePath::Kernel);
        assert_eq!(heap.len(), s.rounds as usize);
        for (h, k) in heap.iter().zip(&kernel) {
            assert_eq!(h, k, "{:?} {} round {}", s.algorithm, s.compute.spec(), h.round);
            assert_eq!(h.end.to_bits(), k.end.to_bits());
        }
    }
}

#[test]
fn pipelined_kernel_matches_the_sequential_one() {
    // With two threads, `run_fixed` draws coming rounds on a second thread; with one it runs
    // round by round. Both must give the heap engine's records, across batch boundaries (327
    // rounds per batch at M = 20, U = 10) and with arrivals delayed by the downlink.
    let mut with_comm = setup(TimingAlgorithm::Stsyn, 20, 5, 10, 400, "exp(mean=1)");
    with_comm.comm = CommTime::new(
        Link::parse("uplink", "exp(mean=0.5)", "uplink_bandwidth", None).unwrap(),
        Link::parse("downlink", "uniform(low=0, high=3)", "downlink_bandwidth", None).unwrap(),
    );
    let cases = [
        with_comm,
        setup(TimingAlgorithm::Stsyn, 12, 4, 5, 400, "per_round(lomax_mix(low=1e4, high=2e4))"),
        setup(TimingAlgorithm::KBatchSync, 6, 3, 1, 50, "exp(mean=1)"), // not a kernel algorithm: heap both times
        setup(TimingAlgorithm::Sync, 3, 3, 2, 1, "exp(mean=1)"),
    ];
    for s in &cases {
        let path = if s.algorithm == TimingAlgorithm::KBatchSync { EnginePath::Auto } else { EnginePath::Kernel };
        let heap = rounds(s, EnginePath::Heap);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let kernel = pool.install(|| rounds(s, path));
            assert_eq!(kernel.len(), heap.len());
            for (h, k) in heap.iter().zip(&kernel) {
                assert_eq!(h, k, "{:?} {} threads {threads} round {}", s.algorithm, s.compute.spec(), h.round);
                assert_eq!(h.end.to_bits(), k.end.to_bits());
            }
        }
    }
}

#[test]
fn stsyn_matches_the_closed_form_table() {
    // specs/stsyn.md §2.7, M = 20, U = 10, K = 5: E[T] = 7.56773, E|M| = 19.98707.
    let s = setup(TimingAlgorithm::Stsyn, 20, 5, 10, 40_000, "exp(mean=1)");
    let out = s.simulate(EnginePath::Auto, &mut NullSink).unwrap();
    assert_eq!(out.engine, "kernel");
    assert!(out.round_time.deviation_in_se(7.56773).abs() < 4.0, "{:?}", out.round_time);
    assert!(out.updates_per_worker.deviation_in_se(7.56773).abs() < 4.0);
    assert!(out.uploaders.deviation_in_se(19.98707).abs() < 4.0);
}

#[test]
fn capped_stsyn_matches_its_closed_form() {
    // A cap c ≥ U changes neither T nor the uploaders, only Ū. M = 20, K = 10, U = 4, c = 5 (a
    // cap that binds often); 40,000 rounds, 4 SE, and the uncapped Ū must be far outside them.
    let mut s = setup(TimingAlgorithm::Stsyn, 20, 10, 4, 40_000, "exp(mean=1)");
    let uncapped = s.theory().unwrap();
    s.max_steps = Some(5);
    let theory = s.theory().unwrap();
    let capped = theory.updates_per_worker.unwrap();
    assert_eq!(theory.round_time, uncapped.round_time);
    assert_eq!(theory.uploaders, uncapped.uploaders);
    let out = s.simulate(EnginePath::Auto, &mut NullSink).unwrap();
    assert!(out.round_time.deviation_in_se(theory.round_time.unwrap()).abs() < 4.0, "{:?}", out.round_time);
    assert!(out.updates_per_worker.deviation_in_se(capped).abs() < 4.0, "{:?} vs {capped}", out.updates_per_worker);
    assert!(out.updates_per_worker.deviation_in_se(uncapped.updates_per_worker.unwrap()).abs() > 20.0);
    assert!(out.uploaders.deviation_in_se(theory.uploaders.unwrap()).abs() < 4.0);
    // exact ends: K = M with the cap at U gives exactly U; K = 1 never passes U, so no change;
    // a cap far above every worker's count changes nothing
    use stsyn::theory::stsyn::{capped_updates_per_worker, round_stats};
    assert!((capped_updates_per_worker(8, 8, 4, 4).unwrap() - 4.0).abs() < 1e-11);
    let uncapped = |m, k, u| round_stats(m, k, u, 1.0).unwrap().updates_per_worker;
    assert_eq!(capped_updates_per_worker(8, 1, 4, 4).unwrap(), uncapped(8, 1, 4));
    assert!((capped_updates_per_worker(20, 5, 10, 400).unwrap() - uncapped(20, 5, 10)).abs() < 1e-12);
    // by hand, M = K = 2, U = 1: N_1 ≥ n ≥ 2 iff X_1 + … (n stages) < X_2, probability 2^{−n},
    // so E[min(N_1, c)] = 1 + Σ_{n=2}^{c} 2^{−n} = 1.5 − 2^{−c}
    for c in [2, 3, 5] {
        let hand = 1.5 - 0.5f64.powi(c as i32);
        assert!((capped_updates_per_worker(2, 2, 1, c).unwrap() - hand).abs() < 1e-12, "c = {c}");
    }
    assert!(capped_updates_per_worker(20, 5, 10, 9).unwrap_err().to_string().contains("9"));
}

#[test]
fn records_count_every_message_sent() {
    // Σ (models sent + uploads received) over the records equals the messages the engine sent,
    // the initial broadcast to all M included (zero latency: no upload is in flight at the stop).
    for (alg, k) in [
        (TimingAlgorithm::Async, 1),
        (TimingAlgorithm::KAsync, 2),
        (TimingAlgorithm::KBatchAsync, 2),
        (TimingAlgorithm::KBatchAsync, 1), // the training driver's async
        (TimingAlgorithm::KSync, 2),
        (TimingAlgorithm::KBatchSync, 2),
        (TimingAlgorithm::Ringmaster, 1),
        (TimingAlgorithm::Rennala, 6),
    ] {
        let mut s = setup(alg, 4, k, 1, 10, "exp(mean=1)");
        if alg == TimingAlgorithm::Ringmaster {
            s.asynchronous.delay_threshold = Some(2);
        }
        let mut sink = MemorySink { keep_events: true, ..Default::default() };
        s.simulate(EnginePath::Heap, &mut sink).unwrap();
        let recorded: u64 = sink.rounds.iter().map(|r| r.participants as u64 + r.uploads as u64).sum();
        // (a reply that carries no model, to a worker holding the current one, is not a model)
        let sends = sink.events.iter().filter(|e| e.kind == stsyn::trace::EventKind::Send);
        let sent = sends.clone().filter(|e| e.step > 0).count() as u64;
        assert_eq!(recorded, sent, "{alg:?}");
        let replies = sends.filter(|e| e.step == 0).count();
        let asks = (alg == TimingAlgorithm::KBatchAsync && k > 1) || alg == TimingAlgorithm::Rennala;
        assert_eq!(replies > 0, asks, "{alg:?} K = {k}: {replies}");
    }
}

#[test]
fn k_async_and_k_batch_async_report_their_delays() {
    // M = 2, K = 2, steps of 1, zero communication. K-batch-async: both results arrive at t = 1
    // (δ = 0, 0: update 1); the first to arrive fetched before the update and computes on w⁰,
    // the second on w¹, so at t = 2 their δ are 1 and 0 — and so on: δ = 0, 0, then 1, 0 in
    // every update. K-async: both pushers wait for the update and read the new model: δ = 0.
    for (alg, sum, max) in [(TimingAlgorithm::KBatchAsync, 4, 1), (TimingAlgorithm::KAsync, 0, 0)] {
        let mut s = setup(alg, 2, 2, 1, 5, "const(1)");
        s.model_bytes = 0;
        let delays = s.simulate(EnginePath::Heap, &mut NullSink).unwrap().delays.expect("delays");
        assert_eq!((delays.applied, delays.sum, delays.max), (10, sum, max), "{alg:?}");
    }
}

#[test]
fn rennala_asks_a_worker_holding_the_point_for_another_gradient_without_a_model() {
    // M = 2, S = 4, steps of 1, a model download of 1 (1000 bytes at 1000 bytes per time unit),
    // instant uplink. A round: the model (1), then two steps on each worker, each asked for
    // with a message of no bytes: 3 time units and 2 models sent, not 4 and 4 (a model per
    // gradient).
    let mut s = setup(TimingAlgorithm::Rennala, 2, 4, 1, 5, "const(1)");
    s.comm = CommTime::new(Link::ZERO, Link::parse("downlink", "none", "bandwidth", Some(1000.0)).unwrap());
    let records = rounds(&s, EnginePath::Heap);
    assert_eq!(records.len(), 5);
    for r in &records {
        assert_eq!((r.end - r.start, r.participants, r.uploads, r.updates), (3.0, 2, 4, 4), "{r:?}");
    }
}

/// |simulated − theory| within 4 standard errors (a correct simulator fails one such check with
/// probability about 6e-5 under the plain SE, and about 4e-4 under the batch-means SE of the
/// asynchronous algorithms, whose deviation follows Student's t with 29 degrees of freedom; with
/// a fixed seed the outcome is deterministic). Where the simulated
/// quantity showed no spread at all (e.g. all M upload in every round while theory says
/// 19.9999977), the deviation must be below 1e-4 relative: a rare event that did not happen.
fn assert_close(what: &str, sim: &stsyn::sim::RoundStat, theory: f64) {
    if sim.se() == 0.0 || !sim.se().is_finite() {
        assert!(
            (sim.mean() - theory).abs() <= 1e-4 * theory.abs().max(1.0),
            "{what}: {} (no spread) vs {theory}",
            sim.mean()
        );
    } else {
        let dev = sim.deviation_in_se(theory);
        assert!(dev.abs() < 4.0, "{what}: {} ± {} vs {theory} ({dev:+.2} SE)", sim.mean(), sim.se());
    }
}

#[test]
fn stsyn_grid_matches_closed_forms_within_4_se() {
    // The (M, U, K) grid of specs/stsyn.md §2.7.
    let grid: [(usize, u32, usize); 16] = [
        (4, 3, 3),
        (4, 3, 4),
        (4, 3, 1),
        (4, 1, 2),
        (4, 1, 4),
        (3, 2, 2),
        (5, 2, 3),
        (20, 10, 1),
        (20, 10, 5),
        (20, 10, 10),
        (20, 10, 15),
        (20, 10, 20),
        (20, 1, 5),
        (20, 5, 5),
        (20, 15, 5),
        (20, 20, 5),
    ];
    for (m, u, k) in grid {
        let s = setup(TimingAlgorithm::Stsyn, m, k, u, 30_000, "exp(mean=2.5)");
        let t = s.theory().unwrap();
        let out = s.simulate(EnginePath::Auto, &mut NullSink).unwrap();
        let name = format!("(M,U,K) = ({m},{u},{k})");
        assert_close(&format!("{name} round time"), &out.round_time, t.round_time.unwrap());
        assert_close(&format!("{name} updates"), &out.updates_per_worker, t.updates_per_worker.unwrap());
        assert_close(&format!("{name} uploaders"), &out.uploaders, t.uploaders.unwrap());
    }
    // The reference value itself, independent of the theory module: (20,10,5) E[T] = 7.56773 (λ = 1).
    let s = setup(TimingAlgorithm::Stsyn, 20, 5, 10, 10, "exp(mean=1)");
    assert!((s.theory().unwrap().round_time.unwrap() - 7.56773).abs() < 5e-6);
}

#[test]
fn heterogeneous_rates_match_the_poisson_binomial_closed_form() {
    // specs/stsyn.md §2.6: λ = (1, 1.5, 2, 3), U = 3, K = 3.
    let mut s = setup(TimingAlgorithm::Stsyn, 4, 3, 3, 100_000, "exp(mean=1)");
    s.compute = ComputeTime::parse("exp(mean=1)", "rates(1, 1.5, 2, 3)", 4, Path::new(".")).unwrap();
    let rates = [1.0, 1.5, 2.0, 3.0];
    let h = stsyn::theory::stsyn::round_stats_heterogeneous(&rates, 3, 3).unwrap();
    assert!((h.round_time - 2.00641).abs() < 5e-6, "{}", h.round_time);
    let records = rounds(&s, EnginePath::Kernel);
    let mut time = stsyn::sim::RoundStat::plain();
    let mut updates = [stsyn::sim::RoundStat::plain(); 4];
    let mut uploads = [stsyn::sim::RoundStat::plain(); 4];
    for r in &records {
        time.push(r.duration());
        for m in 0..4 {
            updates[m].push(r.counts[m] as f64);
            uploads[m].push((r.counts[m] >= 1) as u8 as f64);
        }
    }
    assert_close("E[T]", &time, h.round_time);
    for m in 0..4 {
        assert_close(&format!("E[N_{m}]"), &updates[m], h.updates[m]);
        assert_close(&format!("P(worker {m} uploads)"), &uploads[m], h.upload_prob[m]);
    }
}

#[test]
fn update_count_distribution_below_u_matches_the_closed_form() {
    for (m, u, k) in [(20usize, 10u32, 5usize), (6, 4, 2), (4, 3, 3)] {
        let s = setup(TimingAlgorithm::Stsyn, m, k, u, 40_000, "exp(mean=1)");
        let p = s.updates_distribution().unwrap().unwrap();
        let records = rounds(&s, EnginePath::Kernel);
        let samples = (records.len() * m) as f64;
        let mut freq = vec![0.0; u as usize];
        for r in &records {
            for &c in &r.counts {
                if c < u {
                    freq[c as usize] += 1.0 / samples;
                }
            }
        }
        for n in 0..u as usize {
            // Counts of one round are dependent across workers; the binomial SE over all worker
            // draws understates the spread, so inflate it by √M (a bound: it treats the M
            // workers of a round as perfectly correlated).
            let se = (p[n] * (1.0 - p[n]) / samples).sqrt() * (m as f64).sqrt();
            assert!(
                (freq[n] - p[n]).abs() < 4.0 * se.max(1e-12),
                "(M,U,K)=({m},{u},{k}) P(N={n}): {} vs {}",
                freq[n],
                p[n]
            );
        }
        let below: f64 = p.iter().sum();
        assert!((below - (m - k) as f64 / m as f64).abs() < 1e-12);
    }
}

#[test]
fn invariants_hold_in_every_round() {
    // U = 1: exactly K workers have completed anything, so exactly K upload.
    for r in rounds(&setup(TimingAlgorithm::Stsyn, 12, 4, 1, 2000, "exp(mean=1)"), EnginePath::Heap) {
        assert_eq!(r.uploaders, 4);
    }
    // K = M: everybody reaches U, so all M upload.
    for r in rounds(&setup(TimingAlgorithm::Stsyn, 9, 9, 4, 2000, "lognormal(mu=0, sigma=1)"), EnginePath::Heap) {
        assert_eq!(r.uploaders, 9);
        assert!(r.counts.iter().all(|&c| c >= 4));
    }
    // In every round at least K workers reach U (exactly K with continuous times), and no
    // worker below U counts a step after the round closed.
    for r in rounds(&setup(TimingAlgorithm::Stsyn, 20, 5, 10, 2000, "exp(mean=1)"), EnginePath::Heap) {
        assert_eq!(r.counts.iter().filter(|&&c| c >= 10).count(), 5);
        assert_eq!(r.updates, r.counts.iter().map(|&c| c as u64).sum::<u64>());
        assert_eq!(r.cancelled, 19, "every worker but the one that closed the round has a step in progress at T");
    }
}

/// A trace file in a fresh temporary directory (kept alive by the returned handle).
fn trace_file(rows: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    std::fs::write(&path, format!("worker,duration\n{rows}")).unwrap();
    (dir, path)
}

#[test]
fn a_replayed_trace_gives_every_step_its_row() {
    // A worker that completes a step at the instant the round closes starts no step that
    // instant, so no trace row is used up by a step that never runs (hand computation).
    let with_trace = |alg, m, k, u, count: u64, rows: &str| -> Vec<stsyn::trace::RoundRecord> {
        let (_dir, path) = trace_file(rows);
        let mut s = setup(alg, m, k, u, count, "exp(mean=1)");
        s.compute = ComputeTime::parse(&format!("trace({})", path.display()), "same", m, Path::new(".")).unwrap();
        let (heap, kernel) = (rounds(&s, EnginePath::Heap), rounds(&s, EnginePath::Kernel));
        assert_eq!(heap, kernel, "heap and kernel on trace {rows:?}");
        heap
    };
    let durations = |records: &[stsyn::trace::RoundRecord]| records.iter().map(|r| r.end - r.start).collect::<Vec<_>>();
    // M = K = U = 1: STSyn is synchronous SGD, and the rows come one per round.
    let one = "0,1\n0,2\n0,3\n0,4\n";
    let stsyn = with_trace(TimingAlgorithm::Stsyn, 1, 1, 1, 4, one);
    assert_eq!(durations(&stsyn), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(durations(&with_trace(TimingAlgorithm::Sync, 1, 1, 1, 4, one)), [1.0, 2.0, 3.0, 4.0]);
    assert!(stsyn.iter().all(|r| r.cancelled == 0));
    // M = K = 2, U = 1: worker 0 (steps of 1) ties with worker 1 at t = 2 and t = 7; worker 1's
    // rows 2 and 5 alternate, and worker 0 does 1 + 1 and then 5 steps.
    let two = with_trace(TimingAlgorithm::Stsyn, 2, 2, 1, 4, "0,1\n1,2\n1,5\n");
    assert_eq!(durations(&two), [2.0, 5.0, 2.0, 5.0]);
    assert_eq!(two.iter().map(|r| r.counts.clone()).collect::<Vec<_>>(), [[2, 1], [5, 1], [2, 1], [5, 1]]);
    assert!(two.iter().all(|r| r.cancelled == 0));
    // K < M: the slowest worker's step in progress is cancelled (and its row used); ties with
    // the closing step do not start new ones.
    let three = with_trace(TimingAlgorithm::Stsyn, 3, 2, 2, 3, "0,1\n1,1\n2,3\n2,7\n");
    assert_eq!(durations(&three), [2.0, 2.0, 2.0]);
    assert_eq!(three.iter().map(|r| r.cancelled).collect::<Vec<_>>(), [1, 1, 1]);
}

#[test]
fn dutta_runtimes_match_simulation() {
    // specs/baselines.md §14: P = 8, K = 4, μ = 1. K-async, K-batch-async and async report
    // batch-means SEs (30 batches of 3333 or 6666 updates, far longer than the correlation of
    // about M/K updates), so the 4-SE check is honest for them too.
    let cases = [
        (TimingAlgorithm::KSync, "exp(mean=1)", 0.634524),
        (TimingAlgorithm::KBatchSync, "exp(mean=1)", 0.5),
        (TimingAlgorithm::KAsync, "exp(mean=1)", 0.634524),
        (TimingAlgorithm::KBatchAsync, "exp(mean=1)", 0.5),
        (TimingAlgorithm::KSync, "shifted_exp(shift=1, mean=1)", 1.634524),
        (TimingAlgorithm::KBatchAsync, "shifted_exp(shift=1, mean=1)", 1.0),
    ];
    for (alg, compute, oracle) in cases {
        let s = setup(alg, 8, 4, 1, 100_000, compute);
        let t = s.theory().unwrap().round_time.unwrap();
        assert!((t - oracle).abs() < 1e-6, "{alg:?} {compute}: theory {t} vs table {oracle}");
        let out = s.simulate(EnginePath::Heap, &mut NullSink).unwrap();
        assert_close(&format!("{alg:?} {compute}"), &out.round_time, oracle);
    }
    // Rennala (cancelling) with a batch S larger than M is K-batch-sync beyond K = P: S·μ/M.
    let s = setup(TimingAlgorithm::Rennala, 5, 10, 1, 20_000, "exp(mean=1)");
    assert_eq!(s.theory().unwrap().round_time, Some(2.0));
    let out = s.simulate(EnginePath::Heap, &mut NullSink).unwrap();
    assert_close("rennala S = 10 > M = 5", &out.round_time, 2.0);
    // Asynchronous SGD: one update per E[X]/M.
    let s = setup(TimingAlgorithm::Async, 8, 1, 1, 200_000, "exp(mean=2)");
    let out = s.simulate(EnginePath::Heap, &mut NullSink).unwrap();
    assert_close("async", &out.round_time, 0.25);
}

#[test]
fn fixed_model_sync_round_is_the_slowest_worker() {
    // τ_i = √i, i = 1..10: every synchronous round takes exactly √10 (specs/baselines.md §14).
    let mut s = setup(TimingAlgorithm::Sync, 10, 10, 1, 50, "const(1)");
    s.compute = ComputeTime::parse("const(1)", "profile(b=1, p=0.5)", 10, Path::new(".")).unwrap();
    let taus = s.compute.fixed_times(10).unwrap();
    let oracle = stsyn::theory::fixed::sync_round_time(&taus).unwrap();
    assert!((oracle - 10f64.sqrt()).abs() < 1e-12);
    for r in rounds(&s, EnginePath::Heap) {
        // start + √10 − start: exact up to the rounding of the absolute times
        assert!((r.duration() - oracle).abs() <= 1e-12 * r.end, "{} vs {oracle}", r.duration());
    }
}

/// Mean and sd over seeds 0..30 of the mean round time, and the mean reported and plain SEs.
fn spread_over_seeds(alg: TimingAlgorithm, m: usize, k: usize, compute: &str) -> (f64, f64, f64) {
    let (mut means, mut se, mut plain) = (Vec::new(), 0.0, 0.0);
    for seed in 0..30 {
        let mut s = setup(alg, m, k, 1, 20_000, compute);
        s.seed = seed;
        let out = s.simulate(EnginePath::Heap, &mut NullSink).unwrap();
        means.push(out.round_time.mean());
        se += out.round_time.se() / 30.0;
        plain += out.round_time.plain_se() / 30.0;
    }
    let mean = means.iter().sum::<f64>() / 30.0;
    let sd = (means.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 29.0).sqrt();
    (sd, se, plain)
}

#[test]
fn batch_means_se_matches_the_spread_over_seeds() {
    // Asynchronous SGD, M = 8: a worker's step spans about 8 updates, so successive update
    // intervals are correlated and the plain SE s/√n is wrong. The sd of the mean over 30 seeds
    // must be within [0.6, 1.6] of the mean batch-means SE (30 batches of 666 updates).
    // Lognormal steps (σ = 1.5, far more variable than exponential): the plain SE is about half
    // the spread and would fail the same check.
    let (sd, se, plain) = spread_over_seeds(TimingAlgorithm::Async, 8, 1, "lognormal(mu=0, sigma=1.5)");
    assert!((0.6..1.6).contains(&(sd / se)), "sd {sd} vs batch-means SE {se}");
    assert!(se > 1.5 * plain && sd / plain > 1.6, "sd {sd}, batch-means SE {se}, plain SE {plain}");
    // Shifted exponential steps (more regular than exponential): the plain SE is too large.
    let (sd, se, plain) = spread_over_seeds(TimingAlgorithm::KBatchAsync, 8, 4, "shifted_exp(shift=1, mean=1)");
    assert!((0.6..1.6).contains(&(sd / se)), "sd {sd} vs batch-means SE {se}");
    assert!(se < 0.85 * plain, "sd {sd}, batch-means SE {se}, plain SE {plain}");
}

#[test]
fn se_method_follows_round_independence() {
    use stsyn::algorithms::timing::SeMethod;
    let method = |alg, k, ignore: bool, compute: &str| {
        let mut s = setup(alg, 6, k, 1, 100, compute);
        s.asynchronous.ignore_stale = ignore;
        let out = s.simulate(EnginePath::Heap, &mut NullSink).unwrap();
        assert_eq!(out.se_method, s.se_method());
        assert_eq!(out.round_time.batches(), (out.se_method == SeMethod::BatchMeans).then_some(10));
        out.se_method
    };
    let e = "exp(mean=1)";
    for (alg, k) in [(TimingAlgorithm::Stsyn, 3), (TimingAlgorithm::KSync, 3), (TimingAlgorithm::KBatchSync, 3)] {
        assert_eq!(method(alg, k, false, e), SeMethod::Plain, "{alg:?}");
    }
    assert_eq!(method(TimingAlgorithm::Rennala, 3, false, e), SeMethod::Plain);
    assert_eq!(method(TimingAlgorithm::Rennala, 3, true, e), SeMethod::BatchMeans);
    for alg in [TimingAlgorithm::KAsync, TimingAlgorithm::KBatchAsync, TimingAlgorithm::FedBuff] {
        assert_eq!(method(alg, 3, false, e), SeMethod::BatchMeans, "{alg:?}");
    }
    assert_eq!(method(TimingAlgorithm::Async, 1, false, e), SeMethod::BatchMeans);
    // Time-varying rates carry over from round to round even when every worker restarts.
    assert_eq!(method(TimingAlgorithm::Stsyn, 3, false, "sine(mean=1, amplitude=0.5, period=7)"), SeMethod::BatchMeans);
}

/// Workers, completions and the cancellation periods of [`Restarter`].
const RESTART_WORKERS: usize = 50;
const RESTART_LIMIT: u64 = 20_000;
const CANCEL_NEXT_EVERY: u64 = 7;
const CANCEL_ALL_EVERY: u64 = 97;

/// Restarts every finished worker, either directly from `on_step` or through a zero-latency
/// message to the server that restarts it from `on_message`; every 7th completion also cancels
/// and restarts the next worker, every 97th cancels and restarts all of them. Records every
/// completion as (time bits, worker).
struct Restarter {
    relay: bool,
    done: u64,
    seen: Vec<(u64, usize)>,
}

impl Restarter {
    fn restart(&mut self, w: usize, act: &mut Actions) {
        act.step(w);
        if self.done.is_multiple_of(CANCEL_ALL_EVERY) {
            act.cancel_all();
            (0..RESTART_WORKERS).for_each(|v| act.step(v));
        } else if self.done.is_multiple_of(CANCEL_NEXT_EVERY) {
            let next = (w + 1) % RESTART_WORKERS;
            act.cancel(next);
            act.step(next);
        }
        if self.done == RESTART_LIMIT {
            act.stop();
        }
    }
}

impl Algorithm for Restarter {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        (0..RESTART_WORKERS).for_each(|w| act.step(w));
    }
    fn on_step(&mut self, w: usize, now: f64, act: &mut Actions) {
        self.done += 1;
        self.seen.push((now.to_bits(), w));
        if self.relay {
            act.send(Node::Worker(w), Node::Server, 8, w as u64);
        } else {
            self.restart(w, act);
        }
    }
    fn on_message(&mut self, msg: &Message, _now: f64, act: &mut Actions) {
        self.restart(msg.tag as usize, act);
    }
}

/// A step started by an instantly delivered message takes the handled event's place at the top
/// of the heap; the completions must be exactly those of restarting the worker directly, with
/// cancellations (single and of everyone) in between.
#[test]
fn restarts_through_instant_messages_match_direct_restarts() {
    let compute = ComputeTime::parse("exp(mean=1)", "same", RESTART_WORKERS, Path::new(".")).unwrap();
    let run = |relay: bool| {
        let mut alg = Restarter { relay, done: 0, seen: Vec::new() };
        let stats = Engine::new(RESTART_WORKERS, &compute, CommTime::none(), Seeds::new(3))
            .run(&mut alg, &mut NullSink)
            .unwrap();
        (alg.seen, stats.steps, stats.cancelled)
    };
    let (direct, relayed) = (run(false), run(true));
    assert_eq!(direct.0.len() as u64, RESTART_LIMIT);
    assert!(direct.2 > 1000, "cancellations exercised: {}", direct.2);
    assert_eq!(direct, relayed);
}

#[test]
fn a_deadline_closes_rounds_the_same_on_the_heap_and_in_the_kernel() {
    use stsyn::sim::{FixedRounds, RoundKernel, RoundPlan, RoundSync};
    let play = |m: usize, compute: &str, comm: &CommTime, plan: RoundPlan, path: EnginePath| {
        let compute = ComputeTime::parse(compute, "same", m, Path::new(".")).unwrap();
        let mut policy = FixedRounds { plan, rounds: 100 };
        let mut sink = MemorySink::default();
        let seeds = Seeds::new(5);
        match path {
            EnginePath::Heap => {
                let mut driver = RoundSync::new(policy, m, 1000);
                Engine::new(m, &compute, comm, seeds).run(&mut driver, &mut sink).unwrap();
            }
            _ => {
                RoundKernel::new(m, &compute, comm, seeds, 1000).run(&mut policy, &mut sink).unwrap();
            }
        }
        sink.rounds
    };
    let with_comm = CommTime::new(
        Link::parse("uplink", "exp(mean=0.5)", "uplink_bandwidth", None).unwrap(),
        Link::parse("downlink", "uniform(low=0, high=3)", "downlink_bandwidth", None).unwrap(),
    );
    let plan = |m: usize, wait: usize, target: u32, upload_after: u32, deadline: f64| RoundPlan {
        upload_after,
        deadline: Some(deadline),
        ..RoundPlan::uniform(m, wait, target, None)
    };
    let cases = [
        // FedAvg-like: wait for all, drop who is not done by D = 8 (E[Gamma(10)] = 10)
        (10, "exp(mean=1)", CommTime::ZERO, plan(10, 10, 10, 10, 8.0)),
        // STSyn-like with a deadline that sometimes comes before the K-th, with messages in flight
        (12, "exp(mean=1)", with_comm.clone(), plan(12, 4, 5, 1, 6.0)),
        // every step ends exactly at the deadline: those steps count on both paths
        (6, "const(1)", CommTime::ZERO, plan(6, 6, 5, 3, 3.0)),
        // nobody finishes: no uploads, the round ends at the deadline
        (5, "const(1)", CommTime::ZERO, plan(5, 5, 4, 4, 2.5)),
    ];
    for (m, compute, comm, plan) in cases {
        let heap = play(m, compute, &comm, plan.clone(), EnginePath::Heap);
        let kernel = play(m, compute, &comm, plan.clone(), EnginePath::Kernel);
        assert_eq!(heap.len(), 100);
        for (h, k) in heap.iter().zip(&kernel) {
            assert_eq!(h, k, "{compute} round {}", h.round);
            assert_eq!(h.end.to_bits(), k.end.to_bits());
            assert!(h.compute_end - h.start <= plan.deadline.unwrap() * (1.0 + 1e-12));
        }
    }
    // the hand-checkable cases: const(1) steps, D = 3: every worker has 3 steps by the close and
    // uploads; D = 2.5: every worker has 2 < 4 steps, nobody uploads, each round lasts 2.5
    let tied = play(6, "const(1)", &CommTime::ZERO, plan(6, 6, 5, 3, 3.0), EnginePath::Kernel);
    assert!(tied.iter().all(|r| r.counts == vec![3; 6] && r.uploaders == 6 && r.end - r.start == 3.0), "{:?}", tied[0]);
    let none = play(5, "const(1)", &CommTime::ZERO, plan(5, 5, 4, 4, 2.5), EnginePath::Kernel);
    assert!(none.iter().all(|r| r.uploaders == 0 && r.counts == vec![2; 5]), "{:?}", none[0]);
    assert_eq!(none.last().unwrap().end, 250.0);
}

#[test]
fn rounds_with_a_deadline_match_the_truncated_closed_forms() {
    // E[min(T, D)], Ū and E|𝓜| of theory::stsyn::round_stats_until (and sync's capped Poisson
    // mean; FedAvg's K-client rounds) against 40,000 simulated rounds each, within 4 SE; D around
    // the typical round time, so that it binds in some rounds and not in others
    let with = |alg, m, k, u, compute: &str, d: f64| {
        let mut s = setup(alg, m, k, u, 40_000, compute);
        s.deadline = Some(d);
        s
    };
    let cases = [
        with(TimingAlgorithm::Stsyn, 20, 5, 10, "exp(mean=1)", 7.5),
        with(TimingAlgorithm::Stsyn, 6, 6, 3, "exp(mean=1)", 3.0),
        with(TimingAlgorithm::Stsyn, 12, 3, 4, "exp(mean=2)", 6.0),
        with(TimingAlgorithm::Sync, 8, 8, 4, "exp(mean=1)", 6.0),
        with(TimingAlgorithm::FedAvg, 20, 5, 10, "exp(mean=1)", 12.0),
        setup(TimingAlgorithm::FedAvg, 20, 5, 10, 40_000, "exp(mean=1)"),
    ];
    for s in &cases {
        let out = s.simulate(EnginePath::Auto, &mut NullSink).unwrap();
        let theory = s.theory().unwrap();
        for (name, sim, want) in [
            ("round time", &out.round_time, theory.round_time),
            ("updates per worker", &out.updates_per_worker, theory.updates_per_worker),
            ("uploaders", &out.uploaders, theory.uploaders),
        ] {
            let want = want.unwrap_or_else(|| panic!("{:?}: no theory for {name}", s.algorithm));
            // a statistic that is the same every round (FedAvg's K uploads) must equal it exactly
            let dev = if sim.se() == 0.0 { (sim.mean() - want) / (1e-12 * want) } else { sim.deviation_in_se(want) };
            assert!(
                dev.abs() < 4.0,
                "{:?} M={} D={:?} {name}: {sim:?} against {want} ({dev:.2} SE)",
                s.algorithm,
                s.workers,
                s.deadline
            );
        }
    }
    // a deadline that never binds gives the closed forms without one
    let far = with(TimingAlgorithm::Stsyn, 20, 5, 10, "exp(mean=1)", 1e6).theory().unwrap();
    let none = setup(TimingAlgorithm::Stsyn, 20, 5, 10, 1, "exp(mean=1)").theory().unwrap();
    for (a, b) in [
        (far.round_time, none.round_time),
        (far.updates_per_worker, none.updates_per_worker),
        (far.uploaders, none.uploaders),
    ] {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!((a - b).abs() <= 1e-12 * b, "{a} against {b}");
    }
    let sync_far = with(TimingAlgorithm::Sync, 8, 8, 4, "exp(mean=1)", 1e6).theory().unwrap();
    assert!(
        (sync_far.updates_per_worker.unwrap() - 4.0).abs() < 1e-12 && (sync_far.uploaders.unwrap() - 8.0).abs() < 1e-12
    );
}

#[test]
fn fedavg_timing_samples_the_clients_that_training_samples() {
    use stsyn::algorithms::fedavg::FedAvg;
    use stsyn::algorithms::round::RoundAlgorithm;
    use stsyn::sim::RoundPlan;
    // without a deadline the sampled clients are exactly those that complete U = 3 steps
    let s = setup(TimingAlgorithm::FedAvg, 12, 4, 3, 50, "exp(mean=1)");
    let mut training = FedAvg::new(4, 3, Seeds::new(s.seed));
    let mut plan = RoundPlan::uniform(12, 1, 1, None);
    for record in rounds(&s, EnginePath::Kernel) {
        training.plan(record.round, &mut plan);
        let done: Vec<usize> = (0..12).filter(|&w| record.counts[w] == 3).collect();
        assert_eq!(done, training.chosen(), "round {}", record.round);
        assert_eq!((record.participants, record.uploaders), (4, 4));
    }
}
