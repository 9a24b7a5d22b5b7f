//! STSyn round statistics when worker m's updates take Exp(λ_m) times with its own rate λ_m
//! (specs/stsyn.md §2.6).
//!
//! With B_m(t) ~ Bernoulli(F_U(λ_m t)) the indicator that worker m has completed U updates by t,
//! P(T > t) = P(Σ_m B_m(t) ≤ K−1), a Poisson-binomial probability computed by dynamic
//! programming over workers. Then E\[T\] = ∫ P(T > t) dt, E\[N_m\] = λ_m E\[T\] (optional stopping,
//! per worker), and for K ≤ M−1
//! P(m uploads) = λ_m ∫ e^{−λ_m t} P(T^{(−m)}_(K) > t) dt, where T^{(−m)}_(K) is the K-th
//! completion among the other M−1 workers (1 when K = M).
//!
//! The leave-one-out probabilities come from dividing worker m back out of a full DP. Division
//! is only stable when the removed worker's "success" probability is at most 1/2, so two DPs are
//! kept: one over completions (truncated to 0..K states) for workers with F_U(λ_m t) ≤ 1/2, and
//! one over non-completions (0..M−K states) for the others. Each quadrature node costs O(M²).
//! The range is integrated in pieces a factor 16 apart, so that workers whose speeds differ by
//! orders of magnitude are all resolved.

use super::super::numeric::{Erlang, bisect, integrate_pieces};
use super::{ABS_TOL, REL_TOL, TAIL, check_updates, check_workers_and_wait};
use crate::error::{Error, Result};

/// Expected statistics of one STSyn round with per-worker rates (specs/stsyn.md §2.6).
#[derive(Clone, Debug, PartialEq)]
pub struct HeteroStats {
    /// E\[T\], in the time units of the rates (a rate of 2 means a mean update time of 0.5).
    pub round_time: f64,
    /// E\[N_m\] = λ_m E\[T\], the expected completed updates of each worker.
    pub updates: Vec<f64>,
    /// P(worker m uploads) = P(N_m ≥ 1).
    pub upload_prob: Vec<f64>,
}

/// E\[T\], E\[N_m\] and P(m uploads) for workers with update rates λ_m = `rates\[m\]`, waiting for the
/// K-th to complete U updates (specs/stsyn.md §2.6). With equal rates it agrees with
/// [`super::round_stats`] to about 1e-12. Errors name the parameter unless every rate is finite
/// and > 0, 1 ≤ K ≤ M = `rates.len()` and U ≥ 1.
pub fn round_stats_heterogeneous(rates: &[f64], k: usize, u: u32) -> Result<HeteroStats> {
    if rates.is_empty() {
        return Err(Error::invalid("rates", "[]", "at least one worker rate is needed"));
    }
    for (i, &rate) in rates.iter().enumerate() {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::invalid(format!("rates[{i}]"), rate, "must be a finite number > 0"));
        }
    }
    let m = rates.len();
    check_workers_and_wait(m, k)?;
    check_updates(u)?;

    let mut dp = PoissonBinomial::new(rates, k, u);
    let (start, end) = dp.support();
    let leave_one_out = k < m;
    let outputs = if leave_one_out { 1 + m } else { 1 };
    let integrals = integrate_pieces(start, end, outputs, REL_TOL, ABS_TOL, |t, w, acc| {
        dp.evaluate(t);
        acc[0] += w * dp.survival();
        if leave_one_out {
            for (i, &rate) in rates.iter().enumerate() {
                acc[1 + i] += w * rate * (-rate * t).exp() * dp.survival_without(i);
            }
        }
    });
    let round_time = start + integrals[0];
    let upload_prob = if leave_one_out {
        rates.iter().enumerate().map(|(i, &rate)| (-(-rate * start).exp_m1() + integrals[1 + i]).min(1.0)).collect()
    } else {
        vec![1.0; m]
    };
    Ok(HeteroStats { round_time, updates: rates.iter().map(|&rate| rate * round_time).collect(), upload_prob })
}

/// Distribution of the number of workers that have completed U updates by time t, kept both
/// as completions (states 0..=K) and as non-completions (states 0..=M−K).
struct PoissonBinomial<'a> {
    rates: &'a [f64],
    k: usize,
    erlang: Erlang,
    /// F_U(λ_m t) for each worker.
    done: Vec<f64>,
    /// S_U(λ_m t) = 1 − F_U(λ_m t) for each worker, computed directly.
    not_done: Vec<f64>,
    /// completions\[j\] = P(j workers done), j = 0..=min(K, M).
    completions: Vec<f64>,
    /// non_completions\[j\] = P(j workers not done), j = 0..=M−K.
    non_completions: Vec<f64>,
}

impl<'a> PoissonBinomial<'a> {
    fn new(rates: &'a [f64], k: usize, u: u32) -> Self {
        let m = rates.len();
        PoissonBinomial {
            rates,
            k,
            erlang: Erlang::new(u),
            done: vec![0.0; m],
            not_done: vec![1.0; m],
            completions: vec![0.0; k.min(m) + 1],
            non_completions: vec![0.0; m - k + 1],
        }
    }

    fn evaluate(&mut self, t: f64) {
        for (i, &rate) in self.rates.iter().enumerate() {
            let (cdf, sf) = self.erlang.cdf_sf(rate * t);
            self.done[i] = cdf;
            self.not_done[i] = sf;
        }
        truncated_dp(&self.done, &self.not_done, &mut self.completions);
        truncated_dp(&self.not_done, &self.done, &mut self.non_completions);
    }

    /// P(T > t) = P(fewer than K done).
    fn survival(&self) -> f64 {
        self.completions[..self.k].iter().sum()
    }

    /// P(T ≤ t) = P(at most M−K not done), summed on its own so it is accurate when tiny.
    fn distribution(&self) -> f64 {
        self.non_completions.iter().sum()
    }

    /// P(T_(K+1) > t) = P(at most K done); the same as P(T > t) when K = M.
    fn survival_next(&self) -> f64 {
        if self.k == self.rates.len() { self.survival() } else { self.completions.iter().sum::<f64>().min(1.0) }
    }

    /// P(T^{(−i)}_(K) > t): at most K−1 of the other workers done (K ≤ M−1).
    fn survival_without(&self, i: usize) -> f64 {
        let (p, q) = (self.done[i], self.not_done[i]);
        if p <= 0.5 {
            // completions = others ⊛ Bernoulli(p): others[j] = (completions[j] − p·others[j−1])/q.
            let mut previous = 0.0;
            let mut sum = 0.0;
            for &c in &self.completions[..self.k] {
                let current = ((c - p * previous) / q).max(0.0);
                sum += current;
                previous = current;
            }
            sum.min(1.0)
        } else {
            // Same division on the non-completion count, whose removed probability q < 1/2:
            // P(others done ≤ K−1) = 1 − P(others not done ≤ M−K−1).
            let mut previous = 0.0;
            let mut sum = 0.0;
            let len = self.non_completions.len() - 1;
            for &c in &self.non_completions[..len] {
                let current = ((c - q * previous) / p).max(0.0);
                sum += current;
                previous = current;
            }
            (1.0 - sum).clamp(0.0, 1.0)
        }
    }

    /// [a, b] with P(T ≤ a) ≤ 1e-18 and P(T_(K+1) > b) ≤ 1e-18 (P(T > b) when K = M), so that
    /// every leave-one-out survival is ≈ 1 before a and ≈ 0 after b.
    fn support(&mut self) -> (f64, f64) {
        let u = f64::from(self.erlang.stages());
        let slowest = self.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = (u + 40.0 * u.sqrt() + 40.0) / slowest;
        for _ in 0..64 {
            self.evaluate(hi);
            if self.survival_next() <= TAIL {
                break;
            }
            hi *= 2.0;
        }
        let (_, end) = bisect(0.0, hi, |t| {
            self.evaluate(t);
            self.survival_next() > TAIL
        });
        let (start, _) = bisect(0.0, end, |t| {
            self.evaluate(t);
            self.distribution() <= TAIL
        });
        (start, end)
    }
}

/// dist\[j\] = P(j successes) for j < dist.len() (higher counts dropped, which is exact for the
/// kept states because counts only grow), with success probabilities `p` and failure
/// probabilities `q` given separately.
fn truncated_dp(p: &[f64], q: &[f64], dist: &mut [f64]) {
    dist.fill(0.0);
    dist[0] = 1.0;
    let mut top = 0;
    for (&pi, &qi) in p.iter().zip(q) {
        top = (top + 1).min(dist.len() - 1);
        for j in (1..=top).rev() {
            dist[j] = dist[j] * qi + dist[j - 1] * pi;
        }
        dist[0] *= qi;
    }
}
