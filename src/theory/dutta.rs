//! Expected runtime per iteration of the K-sync, K-batch-sync, K-async, K-batch-async and
//! asynchronous SGD variants of Dutta et al. (AISTATS 2018), for P learners with i.i.d. gradient
//! times X (specs/baselines.md §4.2–4.3, oracle values in §14), and of fully synchronous rounds.
//!
//! Two time laws have closed forms: X ~ Exp with mean μ, and the shifted exponential
//! X = Δ + Exp(mean μ). With Exp times (memoryless) every variant is exact:
//! K-sync and K-async take E\[X_{K:P}\] = (H_P − H_{P−K})·μ, K-batch-sync and K-batch-async take
//! K·μ/P. With shifted times K-sync takes Δ + (H_P − H_{P−K})·μ and K-batch-async
//! K(Δ + μ)/P (a long-run average, by renewal–reward), while K-batch-sync and K-async have no
//! closed form except at the ends (K = 1 or K = P), so they return `None` there and must be
//! simulated. Asynchronous SGD is the K = 1 case: E\[X\]/P.
//!
//! Note that specs/baselines.md §4.3 writes the exponential by its rate ("Exp(μ)", mean 1/μ);
//! here every function takes the *mean*, like [`crate::timing`].

use super::numeric::{harmonic, harmonic_difference};
use super::stsyn;
use crate::error::{Error, Result, non_negative, positive};

/// The law of one gradient (or local update) time X.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateTime {
    /// X ~ Exp with the given mean μ.
    Exp {
        /// μ = E\[X\] > 0.
        mean: f64,
    },
    /// X = Δ + Exp(mean μ): a deterministic minimum plus an exponential tail.
    ShiftedExp {
        /// Δ ≥ 0.
        shift: f64,
        /// μ > 0, the mean of the exponential part (E\[X\] = Δ + μ).
        mean: f64,
    },
}

impl UpdateTime {
    /// (Δ, μ) after validation; Δ = 0 for [`UpdateTime::Exp`].
    fn checked(self) -> Result<(f64, f64)> {
        match self {
            UpdateTime::Exp { mean } => Ok((0.0, positive("mean", mean)?)),
            UpdateTime::ShiftedExp { shift, mean } => Ok((non_negative("shift", shift)?, positive("mean", mean)?)),
        }
    }
}

/// Which of Dutta et al.'s variants (specs/baselines.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Wait for K distinct learners on the current model, cancel the rest.
    KSync,
    /// Wait for K gradients from any learners on the current model, cancel the rest.
    KBatchSync,
    /// Wait for K distinct learners, gradients may be stale, nobody is cancelled.
    KAsync,
    /// Update after every K gradients from any learners, nobody waits or is cancelled.
    KBatchAsync,
    /// Update after every gradient (K = 1).
    Async,
}

/// Expected runtime per iteration (per model update) of `variant` with P = `learners` and the
/// given K, or `None` where no closed form exists (specs/baselines.md §4.3). For
/// [`Variant::Async`], `k` is ignored (it is K = 1 by definition).
pub fn runtime_per_iteration(variant: Variant, learners: usize, k: usize, time: UpdateTime) -> Result<Option<f64>> {
    match variant {
        Variant::KSync => k_sync_runtime(learners, k, time).map(Some),
        Variant::KBatchSync => k_batch_sync_runtime(learners, k, time),
        Variant::KAsync => k_async_runtime(learners, k, time),
        Variant::KBatchAsync => k_batch_async_runtime(learners, k, time).map(Some),
        Variant::Async => async_runtime(learners, time).map(Some),
    }
}

/// K-sync: E\[X_{K:P}\] = Δ + (H_P − H_{P−K})·μ, the K-th order statistic of P fresh draws.
pub fn k_sync_runtime(learners: usize, k: usize, time: UpdateTime) -> Result<f64> {
    check(learners, k)?;
    let (shift, mean) = time.checked()?;
    Ok(shift + harmonic_difference(learners as u64, k as u64) * mean)
}

/// K-batch-sync (any K >= 1, also K > P): K·μ/P for Exp times (gradients arrive as a Poisson process of rate P/μ and
/// every restart is memoryless). With a shift Δ > 0 only K = 1 has a closed form,
/// E\[X_{1:P}\] = Δ + μ/P; otherwise `None`.
pub fn k_batch_sync_runtime(learners: usize, k: usize, time: UpdateTime) -> Result<Option<f64>> {
    check_batch(learners, k)?;
    let (shift, mean) = time.checked()?;
    let p = learners as f64;
    Ok(if shift == 0.0 {
        Some(k as f64 * mean / p)
    } else if k == 1 {
        Some(shift + mean / p)
    } else {
        None
    })
}

/// K-async: (H_P − H_{P−K})·μ for Exp times (equality in Dutta et al.'s bound for
/// new-better-than-used times). With a shift Δ > 0 the ends are exact: K = 1 never idles and is
/// asynchronous SGD, (Δ + μ)/P in the long run; K = P is fully synchronous, Δ + H_P·μ.
/// Otherwise `None` (it is strictly below the K-sync value; simulate it).
pub fn k_async_runtime(learners: usize, k: usize, time: UpdateTime) -> Result<Option<f64>> {
    check(learners, k)?;
    let (shift, mean) = time.checked()?;
    let p = learners as f64;
    Ok(if shift == 0.0 {
        Some(harmonic_difference(learners as u64, k as u64) * mean)
    } else if k == 1 {
        Some((shift + mean) / p)
    } else if k == learners {
        Some(shift + harmonic(learners as u64) * mean)
    } else {
        None
    })
}

/// K-batch-async: K·E\[X\]/P = K(Δ + μ)/P, the long-run time per update (renewal–reward: each
/// learner delivers one gradient per E\[X\]).
pub fn k_batch_async_runtime(learners: usize, k: usize, time: UpdateTime) -> Result<f64> {
    check_batch(learners, k)?;
    let (shift, mean) = time.checked()?;
    Ok(k as f64 * (shift + mean) / learners as f64)
}

/// Fully asynchronous SGD (K = 1): E\[X\]/P = (Δ + μ)/P in the long run.
pub fn async_runtime(learners: usize, time: UpdateTime) -> Result<f64> {
    k_batch_async_runtime(learners, 1, time)
}

/// E\[X_{M:M}\] = H_M·μ, the expected maximum of M i.i.d. Exp(mean μ) times: one round of fully
/// synchronous SGD with one gradient per worker.
pub fn expected_max_exp(m: usize, mean: f64) -> Result<f64> {
    check(m, m)?;
    positive("mean", mean)?;
    Ok(harmonic(m as u64) * mean)
}

/// E\[max of M Erlang(U, mean μ per stage)\]: one round of fully synchronous local SGD with U
/// local updates per worker, i.e. STSyn with K = M (specs/stsyn.md §2.2).
pub fn sync_local_sgd_round_time(m: usize, u: u32, mean: f64) -> Result<f64> {
    Ok(stsyn::round_stats(m, m, u, mean)?.round_time)
}

fn check(learners: usize, k: usize) -> Result<()> {
    check_batch(learners, k)?;
    if k > learners {
        return Err(Error::invalid(
            "K",
            k,
            format!("must satisfy 1 <= K <= M = {learners} (the workers, P in Dutta et al.)"),
        ));
    }
    Ok(())
}

/// For the batch variants, whose K gradients may come from fewer than K workers: 1 <= K only.
fn check_batch(learners: usize, k: usize) -> Result<()> {
    if learners == 0 {
        return Err(Error::invalid("M (workers)", learners, "there must be at least one worker"));
    }
    if k == 0 {
        return Err(Error::invalid("K", k, "must be at least 1"));
    }
    Ok(())
}
