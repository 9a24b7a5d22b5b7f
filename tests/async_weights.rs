//! Exact per-result weights of two asynchronous rules, checked against hand computations
//! (specs/baselines.md §5, §11): FedBuff's staleness weight ω(s) = 1/(1 + s)^a with the server
//! update w ← w − η_g·(1/K)·Σ ω(s_j)Δ_j, and delay-adaptive ASGD's γ_k = γ·min(1, M/δ_k). Both run
//! on a 1-D quadratic without noise, f_m(x) = ½(x − c_m)² with c = (1, 2, 4) and x⁰ = 0, with
//! fixed step times τ = (1, 2.5, 4.75) and zero communication, so that every completion time,
//! every staleness and every model is known in advance. The times are sums of dyadic numbers, so
//! they are exact and have no ties in the updates checked.
//!
//! The learner works in f32: each model below is a handful of f32 operations on values of size
//! at most 4, so a few ulp (≈ 5e-7) of rounding at most (5e-8 observed), hence the tolerance 1e-6
//! against the f64 hand computation. A wrong weight moves a model far more: by 0.18 for ω(1) = 1
//! in FedBuff's update 2, by 0.8 for γ_k = γ in ASGD's update 6.

use std::path::Path;

use stsyn::algorithms::asgd::{Asgd, Stepsize};
use stsyn::algorithms::fedbuff::{FedBuff, FedBuffParams};
use stsyn::algorithms::hooks::ServerHooks;
use stsyn::learner::{Learner, Quadratic};
use stsyn::rng::{Purpose, Seeds};
use stsyn::sim::Engine;
use stsyn::timing::{CommTime, ComputeTime};
use stsyn::trace::{MemorySink, RoundRecord};

/// The learner as the server's hooks, recording what the strategy passes to it.
struct Record<'a> {
    learner: Learner<'a>,
    /// Per arrival: (δ as the learner counts it, the weight the strategy gave).
    arrivals: Vec<(u64, f64)>,
    /// Per server update: (scale, model after the update).
    updates: Vec<(f64, f32)>,
}

impl ServerHooks for Record<'_> {
    fn job_started(&mut self, worker: usize) -> u64 {
        self.learner.start_job(worker)
    }
    fn local_job_started(&mut self, worker: usize, steps: u32) -> u64 {
        self.learner.start_local_job(worker, steps)
    }
    fn arrived_weighted(&mut self, job: u64, weight: f64) {
        self.arrivals.push((self.learner.delay(job), weight));
        self.learner.arrive(job, weight);
    }
    fn update_scaled(&mut self, record: &RoundRecord, scale: f64) -> bool {
        self.learner.apply(record.round, scale).unwrap();
        self.updates.push((scale, self.learner.model()[0]));
        true
    }
}

const CENTRES: [f64; 3] = [1.0, 2.0, 4.0];

fn problem() -> Quadratic {
    Quadratic::new(CENTRES.iter().map(|&c| vec![c]).collect(), vec![1.0], 0.0, vec![0.0]).unwrap()
}

fn compute() -> ComputeTime {
    ComputeTime::parse("const(1)", "means(1, 2.5, 4.75)", 3, Path::new(".")).unwrap()
}

#[track_caller]
fn assert_models(got: &[(f64, f32)], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (k, (&(_, g), &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() < 1e-6, "model after update {}: simulated {g}, by hand {w}", k + 1);
    }
}

#[test]
fn fedbuff_weights_stale_deltas_by_omega_and_divides_by_k() {
    // M = C = 3 clients, Q = 2 local steps with η_ℓ = 0.5, K = 2, a = 0.5, η_g = 0.8. A client
    // uploads every Q·τ_m: client 0 at 2, 4, 6, 8, …; client 1 at 5, 10; client 2 at 9.5. It
    // restarts at once on the current model, so the buffers are
    //   update 1 at t = 4:   client 0 (read w⁰, s = 0), client 0 (read w⁰, s = 0);
    //   update 2 at t = 6:   client 1 (read w⁰, s = 1), client 0 (read w¹, s = 0);
    //   update 3 at t = 9.5: client 0 (read w², s = 0), client 2 (read w⁰, s = 2).
    // Two local steps from w on ½(x − c)² give y − c = (1 − 0.5)²(w − c), so Δ = ¾(w − c).
    let params = FedBuffParams { buffer: 2, local_steps: 2, staleness_exponent: 0.5, server_lr: 0.8, concurrency: 3 };
    let q = problem();
    let hooks = Record { learner: Learner::new(&q, Seeds::new(1), 0.5), arrivals: Vec::new(), updates: Vec::new() };
    let rng = Seeds::new(1).stream(Purpose::Algorithm, 0, 1); // unused: C = M draws nothing
    let mut s = FedBuff::new(3, params, 3, 0, hooks, rng);
    let mut sink = MemorySink::default();
    Engine::new(3, &compute(), CommTime::none(), Seeds::new(1)).run(&mut s, &mut sink).unwrap();
    let ends: Vec<f64> = sink.rounds.iter().map(|r| r.end).collect();
    assert_eq!(ends, [4.0, 6.0, 9.5]);
    assert_eq!(s.delays().max, 2);
    let hooks = s.into_hooks();

    let delta = |w: f64, c: f64| 0.75 * (w - c);
    let omega = |s: f64| 1.0 / (1.0 + s).sqrt();
    let scale = 0.8 / 2.0; // η_g/K
    let w1 = 0.0 - scale * (omega(0.0) * delta(0.0, 1.0) + omega(0.0) * delta(0.0, 1.0)); // 0.6
    let w2 = w1 - scale * (omega(1.0) * delta(0.0, 2.0) + omega(0.0) * delta(w1, 1.0)); // ≈ 1.144264
    let w3 = w2 - scale * (omega(0.0) * delta(w2, 1.0) + omega(2.0) * delta(0.0, 4.0)); // ≈ 1.793805
    assert!((w1 - 0.6).abs() < 1e-15);

    let staleness: Vec<u64> = hooks.arrivals.iter().map(|a| a.0).collect();
    assert_eq!(staleness, [0, 0, 1, 0, 0, 2]);
    for &(s, weight) in &hooks.arrivals {
        assert!((weight - omega(s as f64)).abs() < 1e-15, "ω({s}) = {weight}");
    }
    assert!(hooks.updates.iter().all(|&(sc, _)| sc == scale), "{:?}", hooks.updates);
    assert_models(&hooks.updates, &[w1, w2, w3]);
}

#[test]
fn delay_adaptive_asgd_scales_gradients_older_than_m_updates() {
    // M = 3 workers, γ = 0.5. Gradients arrive at 1 (worker 0), 2 (0), 2.5 (1), 3 (0), 4 (0) and
    // 4.75 (2); each worker then reads the new model. Worker 2 read x⁰ and arrives after five
    // updates: δ = 5 > M, so its stepsize is γ·3/5. The other delays (0, 0, 2, 1, 0) are ≤ M and
    // keep γ. Each row: (worker, version read, δ, γ_k/γ).
    let schedule = [(0, 0, 0, 1.0), (0, 1, 0, 1.0), (1, 0, 2, 1.0), (0, 2, 1, 1.0), (0, 4, 0, 1.0), (2, 0, 5, 0.6)];
    let q = problem();
    let hooks = Record { learner: Learner::new(&q, Seeds::new(1), 0.5), arrivals: Vec::new(), updates: Vec::new() };
    let mut s = Asgd::new(3, 6, 0, Stepsize::DelayAdaptive, hooks);
    let mut sink = MemorySink::default();
    Engine::new(3, &compute(), CommTime::none(), Seeds::new(1)).run(&mut s, &mut sink).unwrap();
    let ends: Vec<f64> = sink.rounds.iter().map(|r| r.end).collect();
    assert_eq!(ends, [1.0, 2.0, 2.5, 3.0, 4.0, 4.75]);
    let hooks = s.into_hooks();

    // x^{k+1} = x^k − γ·(γ_k/γ)·(x^{read} − c_i): 0.5, 0.75, 1.75, 1.875, 1.4375, then
    // 1.4375 − 0.5·0.6·(0 − 4) = 2.6375 (1.4375 + 2 = 3.4375 without the adaptation).
    let mut x = vec![0.0f64];
    for &(worker, read, _, factor) in &schedule {
        let next = x[x.len() - 1] - 0.5 * factor * (x[read] - CENTRES[worker]);
        x.push(next);
    }
    assert!((x[6] - 2.6375).abs() < 1e-12, "{x:?}");

    let want: Vec<(u64, f64)> = schedule.iter().map(|&(_, _, d, f)| (d, f)).collect();
    assert_eq!(hooks.arrivals, want);
    assert!(hooks.updates.iter().all(|&(sc, _)| sc == 1.0));
    assert_models(&hooks.updates, &x[1..]);
}
