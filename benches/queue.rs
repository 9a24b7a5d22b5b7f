//! Event-queue benchmark (the "hold model"): n pending events; each operation pops the earliest
//! and schedules its successor at now + Exp(1). Compares the engine's queue (the winner tree,
//! [`TournamentQueue`]) with std's `BinaryHeap` (replace-top via `peek_mut`, and pop + push) and
//! the `priority-queue` crate.
//! Throughput is in events per second.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;
use rand_distr::{Distribution, Exp1};
use stsyn::rng::{Purpose, Seeds};
use stsyn::sim::queue::{EventQueue, IndexedQueue, TournamentQueue};

const OPS: u64 = 100_000;

fn hold(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_hold");
    group.throughput(Throughput::Elements(OPS));
    for n in [20usize, 100, 10_000, 100_000] {
        let mut rng = Seeds::new(1).stream(Purpose::ComputeTime, 0, 0);
        let mut exp = move || -> f64 { Exp1.sample(&mut rng) };
        let mut heap = EventQueue::with_capacity(n);
        for w in 0..n {
            heap.push(exp(), w as u32);
        }
        group.bench_function(BenchmarkId::new("binary_heap_replace_top", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    let top = heap.peek().unwrap();
                    heap.replace_top(top.time + exp(), top.id);
                }
            })
        });
        let mut tree = TournamentQueue::with_capacity(n);
        for w in 0..n {
            tree.schedule(exp(), w as u32);
        }
        group.bench_function(BenchmarkId::new("winner_tree", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    let top = tree.peek().unwrap();
                    tree.schedule(top.time + exp(), top.id);
                }
            })
        });
        let mut heap = EventQueue::with_capacity(n);
        for w in 0..n {
            heap.push(exp(), w as u32);
        }
        group.bench_function(BenchmarkId::new("binary_heap_pop_push", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    let top = heap.pop().unwrap();
                    heap.push(top.time + exp(), top.id);
                }
            })
        });
        let mut pq = IndexedQueue::with_capacity(n);
        for w in 0..n {
            pq.push(exp(), w as u32);
        }
        group.bench_function(BenchmarkId::new("priority_queue_crate", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    let (key, time) = pq.pop().unwrap();
                    pq.push(time + exp(), key);
                }
            })
        });
    }
    group.finish();
}

/// Cancellation: every step a random pending event is cancelled and rescheduled — lazy
/// invalidation in the binary heap (stale entries skipped when popped) against real removal.
fn cancel(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_cancel");
    group.throughput(Throughput::Elements(OPS));
    for n in [100usize, 100_000] {
        let mut rng = Seeds::new(2).stream(Purpose::ComputeTime, 0, 0);
        let mut heap = EventQueue::with_capacity(2 * n);
        // the sequence number of each worker's live event; older ones are stale
        let mut pending: Vec<u64> =
            (0..n).map(|w| heap.push(<Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), w as u32)).collect();
        group.bench_function(BenchmarkId::new("binary_heap_lazy", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    let top = loop {
                        let top = heap.pop().unwrap();
                        if top.seq == pending[top.id as usize] {
                            break top;
                        }
                    };
                    pending[top.id as usize] =
                        heap.push(top.time + <Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), top.id);
                    let victim = rng.random_range(0..n);
                    pending[victim] =
                        heap.push(top.time + <Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), victim as u32);
                }
            })
        });
        let mut tree = TournamentQueue::with_capacity(n);
        for w in 0..n {
            tree.schedule(<Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), w as u32);
        }
        group.bench_function(BenchmarkId::new("winner_tree_remove", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    let top = tree.peek().unwrap();
                    tree.schedule(top.time + <Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), top.id);
                    let victim = rng.random_range(0..n) as u32;
                    tree.remove(victim);
                    tree.schedule(top.time + <Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), victim);
                }
            })
        });
        let mut pq = IndexedQueue::with_capacity(n);
        for w in 0..n {
            pq.push(<Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), w as u32);
        }
        group.bench_function(BenchmarkId::new("priority_queue_remove", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    let (key, time) = pq.pop().unwrap();
                    pq.push(time + <Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), key);
                    let victim = rng.random_range(0..n) as u32;
                    pq.remove(victim);
                    pq.push(time + <Exp1 as Distribution<f64>>::sample(&Exp1, &mut rng), victim);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hold, cancel);
criterion_main!(benches);
