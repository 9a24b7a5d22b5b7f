//! The algorithms, one file each. A round-synchronous algorithm (STSyn, PASGD, AdaComm, FLANP,
//! FedNova, K-sync: every worker restarts from the global model each round) implements
//! [`round::RoundAlgorithm`]: it plans each round as a [`RoundPlan`](crate::sim::RoundPlan), played
//! by the engine or by the per-round kernel, and derives the round's training jobs from its
//! outcome. The asynchronous family (K-batch-sync, K-async, K-batch-async, async SGD) are
//! event-driven strategies generic over [`hooks::ServerHooks`]. [`timing`] runs any of them
//! without training and collects round statistics.

pub mod adacomm;
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
}

impl TimingAlgorithm {
    /// Every algorithm with its name.
    pub const ALL: [(TimingAlgorithm, &'static str); 7] = [
        (TimingAlgorithm::Stsyn, "stsyn"),
        (TimingAlgorithm::Sync, "sync"),
        (TimingAlgorithm::KSync, "ksync"),
        (TimingAlgorithm::KBatchSync, "kbatch-sync"),
        (TimingAlgorithm::KAsync, "kasync"),
        (TimingAlgorithm::KBatchAsync, "kbatch-async"),
        (TimingAlgorithm::Async, "async"),
    ];

    /// Parses a name (`-` and `_` are interchangeable, case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL.iter().find(|(_, n)| *n == wanted).map(|(a, _)| *a).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
            Error::invalid("algorithm", name, format!("unknown (expected one of: {})", names.join(", ")))
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(a, _)| *a == self).map(|(_, n)| *n).expect("listed")
    }

    /// True when the algorithm has local steps U (the others compute one gradient per job).
    pub fn has_local_steps(self) -> bool {
        matches!(self, TimingAlgorithm::Stsyn | TimingAlgorithm::Sync)
    }

    /// True when the algorithm takes K (sync waits for all, async for one).
    pub fn has_wait(self) -> bool {
        !matches!(self, TimingAlgorithm::Sync | TimingAlgorithm::Async)
    }
}
