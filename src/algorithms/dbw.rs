//! Decentralized SGD with backup workers (Xiong, Yan, Singh & Li, "Straggler-resilient
//! distributed machine learning with dynamic backup workers", arXiv 2102.06280;
//! specs/baselines.md §10). There is no server: worker i keeps its own estimate x_i, talks only
//! to its neighbours N_i on a [`Graph`], and at iteration k averages its estimate with those of
//! its *fastest* neighbours only; the others, b_i(k) of them, are its backup workers for that
//! iteration and their messages are dropped.
//!
//! Only the paper's abstract could be read, so the spec marks everything below it as inferred
//! \[I\]; every choice is an option ([`Settings`]):
//!
//! - **Order** ([`Order`]). `combine_then_adapt` (the spec's §10.2 steps 1–3, the abstract's
//!   "averaging, then correcting"): at the start of iteration k worker i sends x_i(k) to every
//!   neighbour (tag k) and computes g_i = ∇f_i(x_i(k); ξ); when the gradient is done and enough
//!   tag-k messages have arrived, x_i(k+1) = Σ_{j∈S∪{i}} P_ij x_j(k) − α g_i. Messages travel
//!   while the worker computes. `adapt_then_combine`: worker i first computes g_i, sends the
//!   half step v_i(k) = x_i(k) − α g_i, and x_i(k+1) = Σ_{j∈S∪{i}} P_ij v_j(k). This is the order
//!   under which the spec's timing oracle holds (with zero communication on the complete graph
//!   and static b, iteration 1 of worker i ends at max(X_i, (n−1−b)-th smallest X_j)); under
//!   `combine_then_adapt` the models are sent before computing, so that oracle does not apply.
//! - **Which neighbours** ([`Backup`]). S_i(k) is the first d_i − b_i(k) tag-k arrivals.
//!   `static` b: b_i(k) = min(b, d_i − 1) for every k (the cap keeps at least one neighbour, so
//!   consensus always progresses). `dynamic` (the spec's DBW-D stand-in for the paper's rule):
//!   b_i(k) = the number of neighbours whose tag-k message has not arrived when worker i's own
//!   gradient is done, capped so that |S_i(k)| ≥ 1 — a worker never waits for neighbours beyond
//!   its own computation unless none has arrived yet. It is fully distributed (each worker uses
//!   only what it has received) and adapts per worker and per iteration. b_i(k) is logged.
//! - **Weights** ([`Mixing`]): `uniform` P_ij = 1/(|S|+1), or `metropolis`
//!   P_ij = 1/(1 + max(d_i, d_j)) with P_ii = 1 − Σ_{j∈N_i} P_ij, renormalised over S ∪ {i}
//!   (with S = N_i, i.e. b = 0, the matrix is symmetric and doubly stochastic).
//! - Messages with a tag below k_i are dropped on arrival (a backup's late message); messages
//!   with a higher tag are kept for later, because fast neighbours run ahead.
//! - A message is the whole model: 4·d bytes over the edge's link (latency + bytes/bandwidth,
//!   per directed edge); a broadcast is one message per neighbour.
//!
//! A "round" of the run (a row of rounds.csv, the unit of `rounds` and `eval_every`) is M worker
//! iterations network-wide — one per worker on average; its `uploads` are the messages sent
//! between workers and `participants` is 0 (there is no server).

use super::traffic::Traffic;
use crate::sim::{Actions, Algorithm, Graph, GraphSpec, Message, Node};
use crate::trace::RoundRecord;

/// Backup-worker rule; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backup {
    /// b_i(k) = min(b, d_i − 1).
    Static(usize),
    /// b_i(k) = neighbours not yet heard from when the own gradient is done (|S| ≥ 1).
    Dynamic,
}

/// Mixing weights; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mixing {
    /// 1/(|S|+1).
    Uniform,
    /// Metropolis–Hastings, renormalised over S ∪ {i}.
    Metropolis,
}

/// Order of averaging and the local step; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Send x_i(k) at the start of the iteration; mix, then step.
    CombineThenAdapt,
    /// Step, send the half step, mix.
    AdaptThenCombine,
}

/// Checked settings of `dbw` in an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The graph.
    pub graph: GraphSpec,
    /// b_i(k).
    pub backup: Backup,
    /// P_ij.
    pub mixing: Mixing,
    /// Order.
    pub order: Order,
}

/// Learning side of decentralized SGD. Every call comes in simulated-time order.
pub trait DecentralizedHooks {
    /// Worker `worker` starts iteration `k`: it computes a stochastic gradient at x_i(k).
    fn iteration_started(&mut self, _worker: usize, _k: u64) {}
    /// Worker `worker` sends its iteration-`k` message to `receivers` neighbours (x_i(k), or the
    /// half step after its gradient under adapt-then-combine); returns the payload id the
    /// messages carry.
    fn broadcast(&mut self, _worker: usize, _k: u64, _receivers: usize) -> u64 {
        0
    }
    /// Worker `worker` ends iteration `k`: x_i ← `self_weight`·(own) + Σ weight·(payload), then
    /// the gradient step under combine-then-adapt. Each listed payload is used once.
    fn mix(&mut self, _worker: usize, _k: u64, _self_weight: f64, _neighbours: &[(u64, f64)]) {}
    /// A received payload that will not be used (a backup's message).
    fn discard(&mut self, _payload: u64) {}
    /// A round (M iterations network-wide) ended; returns false to end the run.
    fn round_done(&mut self, _record: &RoundRecord, _traffic: &Traffic) -> bool {
        true
    }
}

impl DecentralizedHooks for () {}

/// A received message waiting to be used.
#[derive(Clone, Copy, Debug)]
struct Pending {
    tag: u64,
    from: usize,
    payload: u64,
}

#[derive(Clone, Debug, Default)]
struct WorkerIteration {
    k: u64,
    gradient_done: bool,
    /// Tag-k arrivals needed to finish (set when the gradient is done).
    needed: usize,
    /// Received messages with tag >= k, in arrival order.
    inbox: Vec<Pending>,
}

/// The event-driven strategy; see the module docs.
pub struct Dbw<H = ()> {
    graph: Graph,
    backup: Backup,
    mixing: Mixing,
    order: Order,
    model_bytes: u64,
    rounds: u64,
    hooks: H,
    workers: Vec<WorkerIteration>,
    iterations: u64,
    last_close: f64,
    since_close: Vec<u32>,
    messages_since_close: u32,
    /// Messages dropped because their iteration had passed.
    pub late_messages: u64,
    /// What was sent and computed so far.
    pub traffic: Traffic,
}

impl<H: DecentralizedHooks> Dbw<H> {
    /// Decentralized SGD on `graph` with models of `model_bytes` bytes, for at most `rounds`
    /// rounds of M iterations.
    pub fn new(graph: Graph, settings: &Settings, model_bytes: u64, rounds: u64, hooks: H) -> Self {
        let m = graph.workers();
        Dbw {
            graph,
            backup: settings.backup,
            mixing: settings.mixing,
            order: settings.order,
            model_bytes,
            rounds,
            hooks,
            workers: vec![WorkerIteration::default(); m],
            iterations: 0,
            last_close: 0.0,
            since_close: vec![0; m],
            messages_since_close: 0,
            late_messages: 0,
            traffic: Traffic::new(m),
        }
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    /// The hooks.
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// max_i k_i − min_i k_i: how far the fastest worker is ahead of the slowest.
    pub fn iteration_spread(&self) -> u64 {
        let ks = self.workers.iter().map(|w| w.k);
        ks.clone().max().unwrap_or(0) - ks.min().unwrap_or(0)
    }

    /// Mixing weights of worker i with the neighbours `chosen`: (P_ii, P_ij for each).
    pub fn weights(graph: &Graph, mixing: Mixing, i: usize, chosen: &[usize]) -> (f64, Vec<f64>) {
        match mixing {
            Mixing::Uniform => {
                let w = 1.0 / (chosen.len() + 1) as f64;
                (w, vec![w; chosen.len()])
            }
            Mixing::Metropolis => {
                let own = 1.0 - graph.neighbors(i).iter().map(|&j| graph.metropolis_weight(i, j)).sum::<f64>();
                let others: Vec<f64> = chosen.iter().map(|&j| graph.metropolis_weight(i, j)).collect();
                let total = own + others.iter().sum::<f64>();
                (own / total, others.into_iter().map(|w| w / total).collect())
            }
        }
    }

    fn broadcast(&mut self, i: usize, act: &mut Actions) {
        let k = self.workers[i].k;
        let receivers = self.graph.degree(i);
        let payload = self.hooks.broadcast(i, k, receivers);
        for &j in self.graph.neighbors(i) {
            self.traffic.worker_sent(i, self.model_bytes);
            self.messages_since_close += 1;
            act.send_data(Node::Worker(i), Node::Worker(j), self.model_bytes, k, payload);
        }
    }

    fn begin_iteration(&mut self, i: usize, act: &mut Actions) {
        let w = &mut self.workers[i];
        w.gradient_done = false;
        w.needed = 0;
        let k = w.k;
        if self.order == Order::CombineThenAdapt {
            self.broadcast(i, act);
        }
        self.hooks.iteration_started(i, k);
        act.step(i);
    }

    /// Ends worker i's iteration if its gradient is done and enough tag-k messages are in.
    fn try_finish(&mut self, i: usize, now: f64, act: &mut Actions) {
        let w = &self.workers[i];
        if !w.gradient_done {
            return;
        }
        let k = w.k;
        let arrived = w.inbox.iter().filter(|p| p.tag == k).count();
        if arrived < w.needed {
            return;
        }
        let degree = self.graph.degree(i);
        let needed = w.needed;
        let mut chosen = Vec::with_capacity(needed);
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.workers[i].inbox) {
            if p.tag > k {
                keep.push(p);
            } else if chosen.len() < needed {
                chosen.push(p);
            } else {
                self.hooks.discard(p.payload); // a backup whose message came in anyway
            }
        }
        let from: Vec<usize> = chosen.iter().map(|p| p.from).collect();
        let (own, weights) = Self::weights(&self.graph, self.mixing, i, &from);
        let neighbours: Vec<(u64, f64)> = chosen.iter().zip(weights).map(|(p, w)| (p.payload, w)).collect();
        self.hooks.mix(i, k, own, &neighbours);
        self.traffic.iterations[i] += 1;
        self.traffic.backup_workers[i] += (degree - needed) as u64;
        let w = &mut self.workers[i];
        w.inbox = keep;
        w.k += 1;
        self.since_close[i] += 1;
        self.iterations += 1;
        let m = self.workers.len() as u64;
        if self.iterations.is_multiple_of(m) {
            let record = RoundRecord {
                round: self.iterations / m - 1,
                start: self.last_close,
                compute_end: now,
                end: now,
                participants: 0,
                uploaders: self.since_close.iter().filter(|&&c| c > 0).count() as u32,
                uploads: std::mem::take(&mut self.messages_since_close),
                updates: m,
                cancelled: 0,
                counts: std::mem::replace(&mut self.since_close, vec![0; m as usize]),
            };
            self.last_close = now;
            let go_on = self.hooks.round_done(&record, &self.traffic);
            let last = record.round + 1 >= self.rounds;
            act.round(record);
            if !go_on || last {
                act.stop();
                return;
            }
        }
        self.begin_iteration(i, act);
        // Messages of the new iteration may all be in already; the gradient is not.
    }
}

impl<H: DecentralizedHooks> Algorithm for Dbw<H> {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if self.rounds == 0 {
            act.stop();
            return;
        }
        for i in 0..self.workers.len() {
            self.begin_iteration(i, act);
        }
    }

    fn on_step(&mut self, i: usize, now: f64, act: &mut Actions) {
        self.traffic.local_steps[i] += 1;
        if self.order == Order::AdaptThenCombine {
            self.broadcast(i, act);
        }
        let degree = self.graph.degree(i);
        let w = &mut self.workers[i];
        w.gradient_done = true;
        let arrived = w.inbox.iter().filter(|p| p.tag == w.k).count();
        w.needed = match self.backup {
            Backup::Static(b) => degree - b.min(degree - 1),
            Backup::Dynamic => arrived.clamp(1, degree),
        };
        self.try_finish(i, now, act);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        let (Node::Worker(from), Node::Worker(i)) = (msg.from, msg.to) else {
            return;
        };
        let w = &mut self.workers[i];
        if msg.tag < w.k {
            self.late_messages += 1;
            self.hooks.discard(msg.data);
            return;
        }
        w.inbox.push(Pending { tag: msg.tag, from, payload: msg.data });
        if msg.tag == w.k {
            self.try_finish(i, now, act);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seeds;
    use crate::sim::Engine;
    use crate::timing::{CommTime, ComputeTime};
    use crate::trace::MemorySink;

    #[test]
    fn first_iteration_on_the_complete_graph_matches_the_oracle() {
        // specs/baselines.md §10.2: zero communication, static b, complete graph, adapt then
        // combine: worker i's first iteration ends at max(X_i, (n−1−b)-th smallest X_j, j ≠ i).
        // Fixed times X = (1, 2, 3, 4, 5).
        let n = 5;
        let compute = ComputeTime::parse("const(1)", "means(1, 2, 3, 4, 5)", n, std::path::Path::new(".")).unwrap();
        let graph = GraphSpec::Complete.build(n, &Seeds::new(1)).unwrap();
        for b in 0..3 {
            let settings = Settings {
                graph: GraphSpec::Complete,
                backup: Backup::Static(b),
                mixing: Mixing::Uniform,
                order: Order::AdaptThenCombine,
            };
            let mut alg = Dbw::new(graph.clone(), &settings, 8, 4, ());
            let mut sink = MemorySink { keep_events: true, ..Default::default() };
            Engine::new(n, &compute, CommTime::none(), Seeds::new(1)).run(&mut alg, &mut sink).unwrap();
            let x = [1.0, 2.0, 3.0, 4.0, 5.0f64];
            for i in 0..n {
                let mut others: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| x[j]).collect();
                others.sort_by(f64::total_cmp);
                let oracle = x[i].max(others[n - 2 - b]);
                // Iteration 1 starts when iteration 0 ends: its step completes X_i later.
                let second = sink
                    .events
                    .iter()
                    .find(|e| e.worker == i && e.kind == crate::trace::EventKind::Step && e.step == 2)
                    .expect("a second step");
                assert_eq!(second.time - x[i], oracle, "worker {i}, b = {b}");
            }
        }
    }
}
