//! Engine benchmarks: raw events per second of the heap engine (every completion restarts the
//! worker, M pending events), and whole STSyn rounds on the heap engine against the per-round
//! kernel. Run with `cargo bench --bench engine`; one core is used unless rayon finds more work.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stsyn::algorithms::TimingAlgorithm;
use stsyn::algorithms::timing::{EnginePath, TimingSetup};
use stsyn::rng::Seeds;
use stsyn::sim::{Actions, Algorithm, Engine};
use stsyn::timing::{CommTime, ComputeTime, Dist};
use stsyn::trace::NullSink;

/// Every worker computes forever; the run stops after `limit` completions.
struct Hold {
    workers: usize,
    limit: u64,
    done: u64,
}

impl Algorithm for Hold {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        (0..self.workers).for_each(|w| act.step(w));
    }
    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        self.done += 1;
        if self.done == self.limit {
            act.stop();
        } else {
            act.step(worker);
        }
    }
}

fn engine_events(c: &mut Criterion) {
    let compute = ComputeTime::iid(Dist::Exp { mean: 1.0 });
    let mut group = c.benchmark_group("engine_events");
    let limit = 1_000_000u64;
    group.throughput(Throughput::Elements(limit));
    group.sample_size(20);
    for m in [20usize, 100, 100_000] {
        group.bench_function(BenchmarkId::from_parameter(m), |b| {
            b.iter(|| {
                let mut engine = Engine::new(m, &compute, CommTime::none(), Seeds::new(1));
                let mut alg = Hold { workers: m, limit, done: 0 };
                engine.run(&mut alg, &mut NullSink).unwrap();
                assert_eq!(engine.stats.events, limit);
            })
        });
    }
    group.finish();
}

fn stsyn_rounds(c: &mut Criterion) {
    let mut group = c.benchmark_group("stsyn_rounds");
    group.sample_size(10);
    for (m, k, rounds) in [(20usize, 5usize, 20_000u64), (100_000, 50_000, 3)] {
        let setup = TimingSetup {
            algorithm: TimingAlgorithm::Stsyn,
            workers: m,
            wait: k,
            local_steps: 10,
            max_steps: None,
            deadline: None,
            rounds,
            seed: 1,
            model_bytes: 0,
            compute: ComputeTime::parse("exp(mean=1)", "same", m, Path::new(".")).unwrap(),
            comm: CommTime::ZERO,
            asynchronous: Default::default(),
        };
        let updates = setup.simulate(EnginePath::Kernel, &mut NullSink).unwrap().updates;
        group.throughput(Throughput::Elements(updates));
        for (name, path) in [("heap", EnginePath::Heap), ("kernel", EnginePath::Kernel)] {
            group
                .bench_function(BenchmarkId::new(name, m), |b| b.iter(|| setup.simulate(path, &mut NullSink).unwrap()));
        }
    }
    group.finish();
}

criterion_group!(benches, engine_events, stsyn_rounds);
criterion_main!(benches);
