//! # stsyn — a discrete-event simulator of distributed SGD under stragglers
//!
//! `stsyn` answers two questions exactly and cheaply: *how long does training take on a cluster
//! whose workers run at random speeds*, and *what model does each algorithm end up with*. The
//! headline algorithm is STSyn (Zhu, Zhang, Wang, IEEE TSP 2024): M workers each aim for U local
//! updates per round, the server waits for the K-th fastest to finish U, nobody stops computing
//! until then, and every worker with at least one completed update uploads.
//!
//! Time and learning are separate. The [`sim`] engine decides from random compute and
//! communication times ([`timing`]) *when* every local step finishes, which work is cancelled and
//! who uploads; an [`algorithms`] strategy reacts to those events. The learner then computes the
//! gradients those decisions ask for, on [`model`]s and [`data`].
//!
//! ## Determinism
//!
//! One master seed ([`rng::Seeds`]) is expanded by hashing into named streams per purpose and per
//! worker (and per round where the algorithm has rounds), so every algorithm sees the same worker
//! speeds and data draws where it can. Events are ordered by (time, sequence number), so ties are
//! broken first-in first-out. Parallel work reduces fixed-size chunks in a fixed order, so output
//! files are identical for any thread count.

pub mod algorithms;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod experiment;
pub mod learner;
pub mod memory;
pub mod model;
pub mod plot;
pub mod rng;
pub mod sim;
pub mod theory;
pub mod timing;
pub mod trace;

pub use error::{Error, Result};
