//! Throughput of asynchronous training on the event engine: vanilla ASGD (one server update per
//! gradient) with M = 1000 workers on L2-regularised logistic regression of dimension d = 100,
//! i.i.d. exponential step times, zero communication. Every update pops a completion from the
//! heap, delivers the gradient, applies it to the model (after computing it: pending gradients
//! are computed when the model is about to change) and restarts the worker. The figure is applied
//! updates per second of wall-clock time. Run with `cargo bench --bench async_engine`.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stsyn::algorithms::asgd::{Asgd, Stepsize};
use stsyn::algorithms::hooks::ServerHooks;
use stsyn::learner::{Learner, Logistic, LogisticData};
use stsyn::rng::Seeds;
use stsyn::sim::Engine;
use stsyn::timing::{CommTime, ComputeTime, Dist};
use stsyn::trace::{NullSink, RoundRecord};

/// The learner as the server's hooks (no monitor, no evaluations).
struct Apply<'a> {
    learner: Learner<'a>,
}

impl ServerHooks for Apply<'_> {
    fn job_started(&mut self, worker: usize) -> u64 {
        self.learner.start_job(worker)
    }
    fn arrived_weighted(&mut self, job: u64, weight: f64) {
        self.learner.arrive(job, weight);
    }
    fn discard(&mut self, job: u64) {
        self.learner.discard(job);
    }
    fn update_scaled(&mut self, record: &RoundRecord, scale: f64) -> bool {
        self.learner.apply(record.round, scale).is_ok()
    }
}

fn asgd_logistic(c: &mut Criterion) {
    let (workers, dim, updates) = (1000usize, 100usize, 200_000u64);
    let compute = ComputeTime::iid(Dist::Exp { mean: 1.0 });
    let mut group = c.benchmark_group("asgd_logistic_d100_m1000");
    group.throughput(Throughput::Elements(updates));
    group.sample_size(10);
    // n samples per worker: 4 (1.6 MB of features, fits in a core's L2), 64 (25.6 MB: every
    // sample read is a cache miss).
    for (samples, batch) in [(4usize, 1usize), (4, 4), (64, 1), (64, 4)] {
        let data = LogisticData::generate(workers, dim, samples, 1e-3, 1.0, &Seeds::new(1)).unwrap();
        let objective = Logistic { data: &data, batch };
        group.bench_function(BenchmarkId::new(format!("n{samples}_batch"), batch), |b| {
            b.iter(|| {
                let learner = Learner::new(&objective, Seeds::new(1), 0.05);
                let mut s = Asgd::new(workers, updates, 400, Stepsize::Constant, Apply { learner });
                let stats =
                    Engine::new(workers, &compute, CommTime::none(), Seeds::new(1)).run(&mut s, &mut NullSink).unwrap();
                assert_eq!(stats.steps, updates);
                s.into_hooks().learner.version()
            })
        });
    }
    // The timing alone (no learner), for comparison.
    group.bench_function("timing_only", |b| {
        b.iter(|| {
            let mut s = Asgd::new(workers, updates, 400, Stepsize::Constant, ());
            Engine::new(workers, &compute, CommTime::none(), Seeds::new(1)).run(&mut s, &mut NullSink).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, asgd_logistic);
criterion_main!(benches);
