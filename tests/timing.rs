//! Timing engine: the heap path against the per-round kernel (bit for bit), simulation against
//! closed forms, invariants, determinism.

use std::path::Path;

use stsyn::algorithms::TimingAlgorithm;
use stsyn::algorithms::timing::{EnginePath, TimingSetup};
use stsyn::timing::{CommTime, ComputeTime, Link};
use stsyn::trace::{MemorySink, NullSink};

fn setup(alg: TimingAlgorithm, m: usize, k: usize, u: u32, rounds: u64, compute: &str) -> TimingSetup {
    TimingSetup {
        algorithm: alg,
        workers: m,
        wait: k,
        local_steps: u,
        max_steps: None,
        rounds,
        seed: 11,
        model_bytes: 1000,
        compute: ComputeTime::parse(compute, "same", m, Path::new(".")).unwrap(),
        comm: CommTime::ZERO,
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
    let mut with_comm = setup(TimingAlgorithm::Stsyn, 10, 4, 5, 200, "exp(mean=1)");
    with_comm.comm = CommTime {
        uplink: Link::parse("uplink", "exp(mean=0.5)", Some(2000.0)).unwrap(),
        downlink: Link::parse("downlink", "uniform(low=0, high=3)", None).unwrap(),
    };
    cases.push(with_comm);
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
fn stsyn_matches_the_closed_form_table() {
    // specs/stsyn.md §2.7, M = 20, U = 10, K = 5: E[T] = 7.56773, E|M| = 19.98707.
    let s = setup(TimingAlgorithm::Stsyn, 20, 5, 10, 40_000, "exp(mean=1)");
    let out = s.simulate(EnginePath::Auto, &mut NullSink).unwrap();
    assert_eq!(out.engine, "kernel");
    assert!(out.round_time.deviation_in_se(7.56773).abs() < 4.0, "{:?}", out.round_time);
    assert!(out.updates_per_worker.deviation_in_se(7.56773).abs() < 4.0);
    assert!(out.uploaders.deviation_in_se(19.98707).abs() < 4.0);
}
