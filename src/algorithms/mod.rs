//! The algorithms, one file each. A round-synchronous algorithm (STSyn, PASGD, AdaComm, FLANP,
//! FedNova, FedAvg, K-sync, AdaSync: every worker restarts from the global model each round) implements
//! [`round::RoundAlgorithm`]: it plans each round as a [`RoundPlan`](crate::sim::RoundPlan), played
//! by the engine or by the per-round kernel, and derives the round's training jobs from its
//! outcome. The asynchronous family (K-batch-sync, K-async, K-batch-async) are event-driven
//! strategies generic over [`hooks::ServerHooks`]. [`timing`] runs any of them without training
//! and collects round statistics.
//!
//! The asynchronous methods of the time-complexity literature are event-driven strategies too,
//! each with its staleness and cancellation rule: [`asgd`] (vanilla and delay-adaptive ASGD),
//! [`rescaled_asgd`] (its stepsize rule), [`rennala`] (Rennala and Malenia SGD), [`ringmaster`]
//! and [`fedbuff`]; [`delays`] keeps their staleness statistics, and [`server`] the server's
//! version, update budget and records (for all of them and K-async and K-batch-async; Rennala
//! and Malenia keep rounds of their own). The methods of the related papers with per-worker
//! models: [`loscar`] (LOSCAR-SGD), [`growing_intervals`] (local SGD on a communication
//! schedule, one-shot averaging) and [`dbw`] (decentralized SGD with backup workers).

pub mod adacomm;
pub mod adasync;
pub mod fedavg;
pub mod fednova;
pub mod flanp;
pub mod hooks;
pub mod kasync;
pub mod kbatch_async;
pub mod kbatch_sync;
pub mod ksync;
pub mod local_sgd;
pub mod round;
pub mod stsyn;
pub mod timing;

// Overlap, sparsification and decentralized methods (issue 6).
pub mod dbw;
pub mod growing_intervals;
pub mod loscar;
pub mod traffic;
// Asynchronous methods (specs/baselines.md §5–8, §11).
pub mod asgd;
pub mod delays;
pub mod fedbuff;
pub mod rennala;
pub mod rescaled_asgd;
pub mod ringmaster;
pub mod server;

use crate::error::{Error, Result};

/// The algorithms `stsyn timing` simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingAlgorithm {
    /// STSyn: wait for the K-th fastest to finish U, everyone computes until then.
    Stsyn,
    /// Fully synchronous local SGD (U = 1: minibatch SGD): wait for all M to finish U.
    Sync,
    /// K-sync SGD: first K gradients, cancel the rest.
    KSync,
    /// K-batch-sync SGD: first K gradients from any workers, cancel the rest.
    KBatchSync,
    /// K-async SGD: K distinct pushers per update, no cancellation.
    KAsync,
    /// K-batch-async SGD: an update every K gradients, no cancellation.
    KBatchAsync,
    /// Asynchronous SGD: an update per gradient.
    Async,
    /// Rennala SGD: rounds of S = K gradients at one point (specs/baselines.md §6).
    Rennala,
    /// Malenia SGD: rounds until the harmonic mean of the per-worker counts reaches S/M = K/M.
    Malenia,
    /// Ringmaster ASGD: asynchronous SGD with delay threshold R (specs/baselines.md §7).
    Ringmaster,
    /// FedBuff: clients run U local steps, the server updates every K uploads (§11).
    FedBuff,
    /// FedAvg: K of the M clients sampled each round run U steps; the server waits for them
    /// (or for a deadline) and averages the finished ones (§3).
    FedAvg,
}

impl TimingAlgorithm {
    /// Every algorithm with its name.
    pub const ALL: [(TimingAlgorithm, &'static str); 12] = [
        (TimingAlgorithm::Stsyn, "stsyn"),
        (TimingAlgorithm::Sync, "sync"),
        (TimingAlgorithm::KSync, "ksync"),
        (TimingAlgorithm::KBatchSync, "kbatch-sync"),
        (TimingAlgorithm::KAsync, "kasync"),
        (TimingAlgorithm::KBatchAsync, "kbatch-async"),
        (TimingAlgorithm::Async, "async"),
        (TimingAlgorithm::Rennala, "rennala"),
        (TimingAlgorithm::Malenia, "malenia"),
        (TimingAlgorithm::Ringmaster, "ringmaster"),
        (TimingAlgorithm::FedBuff, "fedbuff"),
        (TimingAlgorithm::FedAvg, "fedavg"),
    ];

    /// Parses a name (`-` and `_` are interchangeable, case-insensitive; `asgd` is `async` and
    /// `pasgd` is `sync`: `stsyn run`'s names for the same timings).
    pub fn parse(name: &str) -> Result<Self> {
        let mut wanted = name.trim().to_ascii_lowercase().replace('_', "-");
        match wanted.as_str() {
            "asgd" => wanted = "async".into(),
            "pasgd" => wanted = "sync".into(),
            _ => {}
        }
        Self::ALL.iter().find(|(_, n)| *n == wanted).map(|(a, _)| *a).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
            Error::invalid(
                "algorithm",
                name,
                format!("unknown (expected one of: {}, or asgd for async, pasgd for sync)", names.join(", ")),
            )
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(a, _)| *a == self).map(|(_, n)| *n).expect("listed")
    }

    /// True when the algorithm has local steps U (the others compute one gradient per job).
    pub fn has_local_steps(self) -> bool {
        matches!(
            self,
            TimingAlgorithm::Stsyn | TimingAlgorithm::Sync | TimingAlgorithm::FedBuff | TimingAlgorithm::FedAvg
        )
    }

    /// True when the algorithm takes K (sync waits for all, async for one; Rennala and Malenia
    /// read it as the batch size S, FedBuff as its buffer size, FedAvg as the clients sampled per
    /// round; Ringmaster takes R instead).
    pub fn has_wait(self) -> bool {
        !matches!(self, TimingAlgorithm::Sync | TimingAlgorithm::Async | TimingAlgorithm::Ringmaster)
    }

    /// True when the algorithm takes the delay threshold R.
    pub fn has_delay_threshold(self) -> bool {
        self == TimingAlgorithm::Ringmaster
    }

    /// True when stale work can be cancelled or ignored (Rennala, Malenia, Ringmaster).
    pub fn has_stale_rule(self) -> bool {
        matches!(self, TimingAlgorithm::Rennala | TimingAlgorithm::Malenia | TimingAlgorithm::Ringmaster)
    }
}
