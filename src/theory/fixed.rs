//! Timing oracles of the fixed computation model (Tyurin & Richtárik 2023): worker i needs exactly
//! τ_i seconds per stochastic gradient, always, and communication is free
//! (specs/baselines.md §5, §6.3, §7.3; oracle values in §14).
//!
//! - Vanilla ASGD applies every gradient, so by time t the server has made Σ_i ⌊t/τ_i⌋ updates.
//! - A Rennala round with batch size S (in-flight work cancelled at the end of each round) takes
//!   T_round(S) = min{t : Σ_i ⌊t/τ_i⌋ ≥ S}, which is bounded by
//!   min_m (S + m)/Σ_{i≤m} 1/τ_i with τ sorted ascending.
//! - Any R consecutive Ringmaster updates finish within t(R) = 2·min_m (R + m)/Σ_{i≤m} 1/τ_i.
//! - A synchronous round (everyone computes one gradient) takes max_i τ_i.
//! - A Malenia round (every worker at least once, harmonic mean of the counts at least S/M) ends
//!   at the first completion time where that holds.
//!
//! Floors of t/τ_i use [`tolerant_floor`]: when t is itself a product k·τ_i computed in floating
//! point, t/τ_i can land one ulp below k, and a plain floor would miss that completion.

use std::cmp::Ordering;

use crate::error::{Error, Result, non_negative, shown};

/// Relative tolerance of [`tolerant_floor`]: x within 1e-9·max(1, |x|) of an integer counts as
/// that integer.
pub const FLOOR_TOLERANCE: f64 = 1e-9;

/// ⌊x⌋, except that x within [`FLOOR_TOLERANCE`]·max(1, |x|) of an integer n gives n. Use it to
/// count completions k·τ_i ≤ t when both are floating-point numbers.
pub fn tolerant_floor(x: f64) -> f64 {
    let nearest = x.round();
    if (x - nearest).abs() <= FLOOR_TOLERANCE * nearest.abs().max(1.0) { nearest } else { x.floor() }
}

/// Σ_i ⌊t/τ_i⌋: the number of gradients vanilla ASGD has applied by time t (specs/baselines.md
/// §5), with the ε-tolerant floor.
pub fn asgd_updates_by(taus: &[f64], t: f64) -> Result<u64> {
    check_taus(taus)?;
    non_negative("t", t)?;
    let count = completions_by(taus, t);
    if count > 1 << 53 {
        // t/τ_i is no longer an exact count in f64 there
        return Err(Error::invalid("--time", shown(t), "gives more than 2^53 updates, beyond exact counting in f64"));
    }
    Ok(count)
}

/// max_i τ_i: one round in which every worker computes one gradient.
pub fn sync_round_time(taus: &[f64]) -> Result<f64> {
    check_taus(taus)?;
    Ok(taus.iter().copied().fold(0.0, f64::max))
}

/// The exact Rennala round time with batch size S and cancellation (specs/baselines.md §6.3):
/// T_round(S) = min{t ≥ 0 : Σ_i ⌊t/τ_i⌋ ≥ S}, the S-th smallest of the completion times
/// {k·τ_i : k ≥ 1}. Found by bisection on the count, then by stepping from completion to
/// completion, so it costs O(M·log) rather than O(S).
pub fn rennala_round_time(taus: &[f64], batch: u64) -> Result<f64> {
    nth_completion_time(taus, batch, "S (batch size)")
}

/// The `n`-th smallest completion time k·τ_i (the time of vanilla ASGD's n-th update, Rennala's
/// round with S = n); `count_name` names n in errors.
pub fn nth_completion_time(taus: &[f64], batch: u64, count_name: &str) -> Result<f64> {
    check_taus(taus)?;
    check_searched_count(count_name, batch)?;
    let fastest = taus.iter().copied().fold(f64::INFINITY, f64::min);
    // At t = S·τ_min the fastest worker alone has done S gradients.
    Ok(first_completion_after(taus, 0.0, batch as f64 * fastest, |t| completions_by(taus, t) >= batch))
}

/// The first completion time k·τ_i after `lo` at which `holds` is true, for a condition that
/// turns from false to true once as t grows, is false at `lo` and true at `hi`: bisection down to
/// a relative width of 1e-12, then stepping from completion to completion.
fn first_completion_after(taus: &[f64], mut lo: f64, mut hi: f64, holds: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..200 {
        if hi - lo <= 1e-12 * hi {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    loop {
        let next = taus
            .iter()
            .map(|&tau| (tolerant_floor(lo / tau) + 1.0) * tau)
            .min_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal))
            .expect("taus is not empty");
        if holds(next) {
            return next;
        }
        lo = next;
    }
}

/// The exact Malenia round time with batch size S and cancellation (specs/baselines.md §6.1):
/// the first completion time t at which every worker has finished at least one gradient and the
/// per-worker counts B_i = ⌊t/τ_i⌋ satisfy Σ_i 1/B_i ≤ M²/S (harmonic mean of the B_i at least
/// S/M). The condition only gets easier as t grows, so it is found from t = τ_max on as Rennala's
/// is, in O(M·log) rather than O(S·M).
pub fn malenia_round_time(taus: &[f64], batch: u64) -> Result<f64> {
    check_taus(taus)?;
    check_searched_count("S (batch size)", batch)?;
    let m = taus.len() as f64;
    let limit = m * m / batch as f64 * (1.0 + 1e-12);
    let holds = |t: f64| taus.iter().map(|&tau| 1.0 / tolerant_floor(t / tau)).sum::<f64>() <= limit;
    let slowest = taus.iter().copied().fold(0.0, f64::max);
    if holds(slowest) {
        return Ok(slowest);
    }
    // By t = S·τ_max every B_i is at least S, so Σ 1/B_i ≤ M/S ≤ M²/S holds there.
    Ok(first_completion_after(taus, slowest, batch as f64 * slowest, holds))
}

/// max_i Σ_{j≠i} ⌈τ_i/τ_j⌉: the largest delay any gradient can have in vanilla ASGD under the
/// fixed model (other workers finish at most ⌈τ_i/τ_j⌉ gradients while worker i computes one).
/// Ringmaster with R above it never discards anything and is vanilla ASGD event for event
/// (specs/baselines.md §7.3). O(M²).
pub fn asgd_max_delay(taus: &[f64]) -> Result<u64> {
    check_taus(taus)?;
    Ok((0..taus.len())
        .map(|i| {
            (0..taus.len())
                .filter(|&j| j != i)
                .map(|j| {
                    let ratio = taus[i] / taus[j];
                    let nearest = ratio.round();
                    // ⌈x⌉ with the ε-tolerance of `tolerant_floor` for exact multiples.
                    if (ratio - nearest).abs() <= FLOOR_TOLERANCE * nearest.max(1.0) { nearest } else { ratio.ceil() }
                })
                .sum::<f64>() as u64
        })
        .max()
        .unwrap_or(0))
}

/// The upper bound min_m (S + m)/Σ_{i≤m} 1/τ_i on the Rennala round time, τ sorted ascending
/// (specs/baselines.md §6.3).
pub fn rennala_round_time_bound(taus: &[f64], batch: u64) -> Result<f64> {
    check_taus(taus)?;
    check_count("S (batch size)", batch)?;
    Ok(best_prefix(taus, batch))
}

/// Ringmaster's t(R) = 2·min_m (R + m)/Σ_{i≤m} 1/τ_i (τ sorted ascending): any R consecutive
/// updates finish within this time (specs/baselines.md §7.3, Lemma 4.1).
pub fn ringmaster_window_time(taus: &[f64], r: u64) -> Result<f64> {
    check_taus(taus)?;
    check_count("R (delay threshold)", r)?;
    Ok(2.0 * best_prefix(taus, r))
}

/// min over m of (count + m)/Σ_{i≤m} 1/τ_i over the m fastest workers.
fn best_prefix(taus: &[f64], count: u64) -> f64 {
    let mut sorted = taus.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut rate = 0.0;
    let mut best = f64::INFINITY;
    for (i, tau) in sorted.iter().enumerate() {
        rate += 1.0 / tau;
        best = best.min((count as f64 + (i + 1) as f64) / rate);
    }
    best
}

/// Σ_i ⌊t/τ_i⌋, saturating at u64::MAX.
fn completions_by(taus: &[f64], t: f64) -> u64 {
    taus.iter().fold(0u64, |n, &tau| n.saturating_add(tolerant_floor(t / tau) as u64))
}

fn check_taus(taus: &[f64]) -> Result<()> {
    if taus.is_empty() {
        return Err(Error::invalid("tau", "[]", "at least one worker time is needed"));
    }
    for (i, &tau) in taus.iter().enumerate() {
        if !(tau.is_finite() && tau > 0.0) {
            return Err(Error::invalid(format!("tau[{i}]"), tau, "must be a finite number > 0"));
        }
    }
    Ok(())
}

fn check_count(name: &str, value: u64) -> Result<()> {
    if value == 0 {
        return Err(Error::invalid(name, value, "must be at least 1"));
    }
    Ok(())
}

/// The counts that the searches for a completion time take (S, the update number) are also
/// below 2^28, as in the simulator: they count completions in f64 with the tolerance of
/// [`tolerant_floor`], and would step through ever more completions beyond.
fn check_searched_count(name: &str, value: u64) -> Result<()> {
    check_count(name, value)?;
    if value >= MAX_COUNT {
        return Err(Error::invalid(name, value, "must be below 2^28 (268435456), as in the simulator"));
    }
    Ok(())
}

/// Largest count + 1 that the oracles take: [`crate::sim::MAX_STEPS_PER_ROUND`].
pub const MAX_COUNT: u64 = crate::sim::MAX_STEPS_PER_ROUND as u64;
