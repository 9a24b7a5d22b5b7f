//! Communication schedules of synchronous local SGD with N workers and T total steps, from
//! Spiridonoff, Olshevsky & Paschalidis, "Communication-efficient SGD: From Local SGD to One-Shot
//! Averaging" (NeurIPS 2021), specs/baselines.md §9.2–9.3.
//!
//! A schedule is the set C = {τ_0 = 0 < τ_1 < … < τ_R = T} of step counts after which all
//! workers average their models; R = |C| − 1 is the number of communication rounds. Every
//! function returns C as a strictly increasing vector that starts at 0 and ends at T. All
//! arithmetic is exact integer arithmetic, so, e.g., τ_R = T exactly in [`increasing`].
//!
//! - [`increasing`]: τ_r = ⌊a·r(r+1)/2⌋ with a = 2T/(R(R+1)), so the intervals H_r ≈ a·r grow
//!   linearly (the paper's method, R = N).
//! - [`constant_interval`]: every H steps ([Stich'19] uses H = ⌊√(T/N)⌋, see
//!   [`stich_interval`]; [Haddadpour et al.'19] H = ⌊(T²/N)^{1/3}⌋, see
//!   [`haddadpour_interval`]).
//! - [`equal_rounds`]: R rounds of (nearly) equal length, τ_r = ⌊r·T/R⌋.
//! - [`one_shot`]: C = {0, T}. [`every_step`]: C = {0, 1, …, T} (fully synchronous SGD).
//! - [`budget_constant`] and [`budget_increasing`]: R = ⌈N^p⌉ rounds for p ∈ {1/4, 1/3, 1/2,
//!   3/4, 1} ([`Budget`]), with equal or increasing intervals; the paper's simulations show √N
//!   and N^{3/4} are not enough for linear speed-up while N is.

use crate::error::{Error, Result};

/// The paper's increasing intervals: τ_r = ⌊a·r(r+1)/2⌋ = ⌊T·r(r+1)/(R(R+1))⌋ for r = 0..R,
/// with T appended if missing (it never is, with exact arithmetic). When R is so large that
/// early τ_r coincide (R(R+1) > 2T), duplicates are dropped, so fewer than R rounds remain.
///
/// For T = 1000 and R = N = 20 this is [0, 4, 14, 28, 47, …, 814, 904, 1000] (§9.3).
pub fn increasing(total_steps: u64, rounds: u64) -> Result<Vec<u64>> {
    check("T (total steps)", total_steps)?;
    check("R (rounds)", rounds)?;
    let t = u128::from(total_steps);
    let r_max = u128::from(rounds);
    let denominator = r_max * (r_max + 1);
    let steps = (0..=r_max).map(|r| (t * r * (r + 1) / denominator) as u64);
    Ok(finish(steps, total_steps))
}

/// Averaging every H steps: {0, H, 2H, …} up to T, with T appended if H does not divide it.
pub fn constant_interval(total_steps: u64, interval: u64) -> Result<Vec<u64>> {
    check("T (total steps)", total_steps)?;
    check("H (steps between averagings)", interval)?;
    let steps = (0..=total_steps / interval).map(|i| i * interval);
    Ok(finish(steps, total_steps))
}

/// R rounds of equal length up to rounding: τ_r = ⌊r·T/R⌋ for r = 0..R (duplicates dropped when
/// R > T). This is how the authors' code builds the FedAC and "R = N^p" schedules; their
/// "H = T/N" baseline rounds up instead, which gives the same set whenever R divides T.
pub fn equal_rounds(total_steps: u64, rounds: u64) -> Result<Vec<u64>> {
    check("T (total steps)", total_steps)?;
    check("R (rounds)", rounds)?;
    let t = u128::from(total_steps);
    let r_max = u128::from(rounds);
    let steps = (0..=r_max).map(|r| (t * r / r_max) as u64);
    Ok(finish(steps, total_steps))
}

/// One-shot averaging: C = {0, T}.
pub fn one_shot(total_steps: u64) -> Result<Vec<u64>> {
    check("T (total steps)", total_steps)?;
    Ok(vec![0, total_steps])
}

/// Fully synchronous SGD: averaging after every step, C = {0, 1, …, T}.
pub fn every_step(total_steps: u64) -> Result<Vec<u64>> {
    check("T (total steps)", total_steps)?;
    Ok((0..=total_steps).collect())
}

/// [Stich'19]'s constant interval H = ⌊√(T/N)⌋ (the largest H with H²·N ≤ T), at least 1.
pub fn stich_interval(total_steps: u64, workers: u64) -> Result<u64> {
    check("T (total steps)", total_steps)?;
    check("N (workers)", workers)?;
    let (t, n) = (u128::from(total_steps), u128::from(workers));
    Ok(largest_root(2, |h| (h * h).checked_mul(n).is_some_and(|v| v <= t)).max(1) as u64)
}

/// [Haddadpour et al.'19]'s constant interval H = ⌊(T²/N)^{1/3}⌋ (the largest H with
/// H³·N ≤ T²), at least 1.
pub fn haddadpour_interval(total_steps: u64, workers: u64) -> Result<u64> {
    check("T (total steps)", total_steps)?;
    check("N (workers)", workers)?;
    let (t, n) = (u128::from(total_steps), u128::from(workers));
    Ok(largest_root(3, |h| {
        h.checked_mul(h).and_then(|h2| h2.checked_mul(h)).and_then(|h3| h3.checked_mul(n)).is_some_and(|v| v <= t * t)
    })
    .max(1) as u64)
}

/// A communication budget R = ⌈N^p⌉ as a function of the number of workers N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// R = ⌈N^{1/4}⌉.
    QuarterRoot,
    /// R = ⌈N^{1/3}⌉ (FedAC-II).
    CubeRoot,
    /// R = ⌈N^{1/2}⌉ (FedAC-I).
    SquareRoot,
    /// R = ⌈N^{3/4}⌉.
    ThreeQuarters,
    /// R = N (the paper's choice).
    Linear,
}

impl Budget {
    /// The exponent p as (numerator, denominator).
    fn exponent(self) -> (u32, u32) {
        match self {
            Budget::QuarterRoot => (1, 4),
            Budget::CubeRoot => (1, 3),
            Budget::SquareRoot => (1, 2),
            Budget::ThreeQuarters => (3, 4),
            Budget::Linear => (1, 1),
        }
    }

    /// R = ⌈N^p⌉ exactly: the smallest R with R^den ≥ N^num. Needs N ≤ 2^40 (so N³ fits in
    /// 128 bits), and N ≥ 1.
    pub fn rounds(self, workers: u64) -> Result<u64> {
        check("N (workers)", workers)?;
        if workers > 1 << 40 {
            return Err(Error::invalid("N (workers)", workers, "budgets are computed exactly only for N <= 2^40"));
        }
        let (num, den) = self.exponent();
        let target = u128::from(workers).pow(num);
        // R − 1 is the largest r with r^den < target.
        let below = largest_root(den, |r| r.pow(den) < target);
        Ok(below as u64 + 1)
    }
}

/// Equal rounds with the budget R = ⌈N^p⌉.
pub fn budget_constant(total_steps: u64, workers: u64, budget: Budget) -> Result<Vec<u64>> {
    equal_rounds(total_steps, budget.rounds(workers)?)
}

/// Increasing intervals with the budget R = ⌈N^p⌉.
pub fn budget_increasing(total_steps: u64, workers: u64, budget: Budget) -> Result<Vec<u64>> {
    increasing(total_steps, budget.rounds(workers)?)
}

/// The largest r ≥ 0 with `fits(r)`, for a predicate that holds at 0, is monotone, and fails
/// at 2^min(128/degree, 127) (so r^degree cannot overflow 128 bits while searching).
fn largest_root(degree: u32, fits: impl Fn(u128) -> bool) -> u128 {
    let (mut lo, mut hi) = (0u128, 1u128 << (128 / degree).min(127));
    // Invariant: fits(lo), !fits(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) { lo = mid } else { hi = mid }
    }
    lo
}

/// Sorts out a candidate schedule: drops duplicates (it is already non-decreasing) and makes
/// sure it ends at T.
fn finish(steps: impl Iterator<Item = u64>, total_steps: u64) -> Vec<u64> {
    let mut schedule: Vec<u64> = Vec::new();
    for step in steps {
        if schedule.last() != Some(&step) {
            schedule.push(step);
        }
    }
    if schedule.last() != Some(&total_steps) {
        schedule.push(total_steps);
    }
    schedule
}

fn check(name: &str, value: u64) -> Result<()> {
    if value == 0 {
        return Err(Error::invalid(name, value, "must be at least 1"));
    }
    Ok(())
}
