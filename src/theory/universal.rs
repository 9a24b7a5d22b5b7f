//! The universal computation model (Tyurin 2024; specs/baselines.md §1.2, §7.3): worker i works
//! at a time-varying rate p_i(t) ≥ 0 and completes ⌊∫_{T1}^{T2} p_i(s) ds⌋ gradients in
//! [T1, T2]. The fixed model is p_i ≡ 1/τ_i.
//!
//! [`ringmaster_window_time`] is Lemma 5.1 of the Ringmaster paper: starting at T_0, any R
//! consecutive Ringmaster updates finish within
//! t(R; T_0) = min{t ≥ 0 : Σ_i ⌊(1/4)∫_{T_0}^{T_0+t} p_i(s) ds⌋ ≥ R}.
//! The rates are given through their integrals, `work(i, a, b)` = ∫_a^b p_i(s) ds.

use crate::error::{Error, Result, non_negative};

/// Relative precision of the bisection for the smallest t.
const PRECISION: f64 = 1e-12;

/// Lemma 5.1's t(R; T_0) for M workers whose work is `work(i, a, b)` = ∫_a^b p_i. The count is a
/// step function of t; the result is its first jump to R or more, to a relative precision of
/// 1e-12. Fails when the workers cannot complete R quarter-gradients within 2^60 time units.
pub fn ringmaster_window_time(workers: usize, work: &dyn Fn(usize, f64, f64) -> f64, t0: f64, r: u64) -> Result<f64> {
    if workers == 0 {
        return Err(Error::invalid("workers (M)", 0, "must be at least 1"));
    }
    if r == 0 {
        return Err(Error::invalid("R (delay threshold)", 0, "must be at least 1"));
    }
    non_negative("T_0", t0)?;
    let count = |t: f64| -> u64 { (0..workers).map(|i| (0.25 * work(i, t0, t0 + t)).floor() as u64).sum() };
    let mut hi = 1.0;
    while count(hi) < r {
        hi *= 2.0;
        if hi > 2f64.powi(60) {
            return Err(Error::invalid("rates", "p_i", format!("do not complete R = {r} gradients in finite time")));
        }
    }
    let mut lo = 0.0;
    while hi - lo > PRECISION * hi {
        let mid = 0.5 * (lo + hi);
        if count(mid) >= r {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rates_give_a_closed_form() {
        // p ≡ 1/τ with τ = (1, 2): ⌊t/4⌋ + ⌊t/8⌋ ≥ 3 first at t = 8.
        let taus = [1.0, 2.0];
        let work = |i: usize, a: f64, b: f64| (b - a) / taus[i];
        let t = ringmaster_window_time(2, &work, 5.0, 3).unwrap();
        assert!((t - 8.0).abs() < 1e-9, "{t}");
        assert!(ringmaster_window_time(2, &|_, _, _| 0.0, 0.0, 1).is_err());
    }
}
