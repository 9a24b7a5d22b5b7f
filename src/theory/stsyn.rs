//! STSyn round statistics under i.i.d. exponential update times (specs/stsyn.md §2).
//!
//! M workers each run local updates back to back, every update taking an independent Exp(λ)
//! time (mean μ = 1/λ); the round ends at T, the moment the K-th fastest worker completes U
//! updates; every worker with at least one completed update uploads. This module gives
//!
//! - E\[T\] (the round time), Ū = E\[N_m\] = λE\[T\] (updates per worker, §2.3) and E|𝓜| (expected
//!   uploaders, §2.4), via [`round_stats`];
//! - P(N_m = n) for n < U via [`prob_updates`] and [`update_distribution`];
//! - Ū when every worker stops at c ≥ U updates, via [`capped_updates_per_worker`];
//! - the same for rounds that also close at a deadline D ([`round_stats_until`]: the integrals
//!   below stop at λD), synchronous SGD's Ū then ([`sync_updates_until`]), and the Erlang(U)
//!   distribution function ([`prob_done_by`]);
//! - the same quantities as exact rationals at λ = 1 ([`exact()`], [`exact_prob_updates`],
//!   [`exact_update_distribution`], [`exact_round_time_double_sum`]) for tests;
//! - the generalisation to per-worker rates λ_m (§2.6): [`round_stats_heterogeneous`].
//!
//! The f64 functions never evaluate the alternating closed-form sums, which are unstable
//! (§2.5). They integrate positive integrands instead:
//!
//! - E\[T\] = ∫_0^∞ P(T > t) dt with P(T > t) = P(Bin(M, F_U(t)) ≤ K−1);
//! - E|𝓜| = M·λ∫_0^∞ e^{−λt} P(Bin(M−1, F_U(t)) ≤ K−1) dt for K < M (and M when K = M);
//! - P(N_m = n) = E\[e^{−λT'} (λT')^n/n!\] with T' the K-th completion among the other M−1
//!   workers, integrated against the density of T'.
//!
//! Here F_U = 1 − S_U is the Erlang(U) distribution function. The integration range is found by
//! bisection as the interval where P(T > t) lies between 1e-18 and 1 − 1e-18; composite
//! Gauss–Legendre panels are doubled until the integrals agree to 1e-13. The binomial tails are
//! summed outward from the mode, so the cost per evaluation is O(√M), and M = 10^4 takes
//! milliseconds.

mod exact;
mod heterogeneous;

pub use exact::{Exact, exact, exact_prob_updates, exact_round_time_double_sum, exact_update_distribution};
pub use heterogeneous::{HeteroStats, round_stats_heterogeneous};

use super::numeric::{
    Erlang, PoissonTerm, binomial_pmf, binomial_split, bisect, integrate, integrate_adaptive, ln_factorial,
};
use crate::error::{Error, Result, positive};

/// Expected statistics of one STSyn round (specs/stsyn.md §2.2–2.4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundStats {
    /// E\[T\], the expected wall-clock time of a round, in the units of the mean update time μ.
    pub round_time: f64,
    /// Ū = E\[N_m\] = λ·E\[T\], the expected number of completed updates per worker per round,
    /// averaged over all M workers (including those with none).
    pub updates_per_worker: f64,
    /// E|𝓜|, the expected number of workers that upload (complete at least one update).
    pub uploaders: f64,
}

/// Probability below which a tail of the round time is treated as empty when choosing the
/// integration range.
const TAIL: f64 = 1e-18;
/// Relative convergence target of the quadrature.
const REL_TOL: f64 = 1e-13;
/// Absolute floor of the convergence test (for probabilities that are themselves tiny).
const ABS_TOL: f64 = 1e-30;

/// Expected round time, updates per worker and uploaders for M workers, waiting for the K-th
/// fastest to complete U updates, with i.i.d. exponential update times of mean μ = `mean`
/// (specs/stsyn.md §2.2–2.4, computed as in §2.5).
///
/// Relative accuracy is better than 1e-13 (about 1e-15 against the exact rationals in the
/// tests); M = 10^4 takes a few milliseconds. Errors name the parameter unless 1 ≤ K ≤ M, U ≥ 1
/// and `mean` is finite and > 0.
pub fn round_stats(m: usize, k: usize, u: u32, mean: f64) -> Result<RoundStats> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    positive("mean", mean)?;
    let erlang = Erlang::new(u);
    let all = KthCompletion { workers: m, k, erlang };
    let lambda_round_time = all.mean();
    let uploaders = if k == m {
        m as f64
    } else {
        let others = KthCompletion { workers: m - 1, k, erlang };
        m as f64 * others.laplace_survival()
    };
    Ok(RoundStats { round_time: mean * lambda_round_time, updates_per_worker: lambda_round_time, uploaders })
}

/// [`round_stats`] when the round also closes at a deadline: at min(T, D), D in the units of
/// `mean` (a stopping time, so Ū = λ·E\[min(T, D)\] still). A worker uploads when its first
/// update precedes the close, so the integrals of [`round_stats`] simply stop at λD:
/// E\[min(T, D)\] = μ∫_0^{λD} P(T > t) dt and E|𝓜| = M∫_0^{λD} e^{−t} P(Bin(M−1, F_U(t)) ≤ K−1) dt
/// (λ = 1 inside the integrals; M(1 − e^{−λD}) when K = M).
pub fn round_stats_until(m: usize, k: usize, u: u32, mean: f64, deadline: f64) -> Result<RoundStats> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    positive("mean", mean)?;
    positive("deadline (D)", deadline)?;
    let d = deadline / mean;
    let erlang = Erlang::new(u);
    let lambda_round_time = KthCompletion { workers: m, k, erlang }.mean_until(d);
    let uploaders = if k == m {
        m as f64 * -(-d).exp_m1()
    } else {
        m as f64 * KthCompletion { workers: m - 1, k, erlang }.laplace_survival_until(d)
    };
    Ok(RoundStats { round_time: mean * lambda_round_time, updates_per_worker: lambda_round_time, uploaders })
}

/// E\[min(U, N(λD))\] for a Poisson count N of rate λ = 1/`mean`: the expected updates of a
/// worker that idles after U (synchronous SGD) in a round closed at min(T, D). When every
/// worker finishes by D all have U = min(U, N(D)), so the formula holds in both cases:
/// U − Σ_{n<U} (U − n)·e^{−λD}(λD)^n/n!.
pub fn sync_updates_until(u: u32, mean: f64, deadline: f64) -> Result<f64> {
    check_updates(u)?;
    positive("mean", mean)?;
    positive("deadline (D)", deadline)?;
    let d = deadline / mean;
    let short: f64 =
        (0..u).map(|n| f64::from(u - n) * (-d + f64::from(n) * d.ln() - ln_factorial(n.into())).exp()).sum();
    Ok(f64::from(u) - short)
}

/// P(S_U ≤ D): the probability that a worker completes U updates of i.i.d. exponential time
/// (mean `mean`) by D, the Erlang(U) distribution function.
pub fn prob_done_by(u: u32, mean: f64, deadline: f64) -> Result<f64> {
    check_updates(u)?;
    positive("mean", mean)?;
    positive("deadline (D)", deadline)?;
    Ok(Erlang::new(u).cdf_sf(deadline / mean).0)
}

/// E\[min(N_m, c)\], the expected completed updates per worker per round when every worker stops
/// at c ≥ U updates (`max_steps`, the cap of the authors' `Comparisons.py`, specs/stsyn.md §1.4).
/// It does not depend on λ; the round time and the uploaders of [`round_stats`] do not depend on
/// the cap.
///
/// Worker m completes n > U updates exactly when its n-th completion S_n precedes T'_(K−1), the
/// (K−1)-th U-th completion among the other M−1 workers (m is then among the first K−1, so T is
/// that order statistic). Hence, with λ = 1,
/// E\[(N_m − c)⁺\] = Σ_{n>c} P(S_n ≤ T'_(K−1)) = ∫_0^∞ F_c(t) P(T'_(K−1) > t) dt, and
/// E\[min(N_m, c)\] = E\[T\] − E\[(N_m − c)⁺\]. With K = 1 no worker passes U.
pub fn capped_updates_per_worker(m: usize, k: usize, u: u32, cap: u32) -> Result<f64> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    if cap < u {
        return Err(Error::invalid("max steps (c)", cap, format!("must be at least U = {u}")));
    }
    let erlang = Erlang::new(u);
    let uncapped = KthCompletion { workers: m, k, erlang }.mean();
    if k == 1 {
        return Ok(uncapped);
    }
    let others = KthCompletion { workers: m - 1, k: k - 1, erlang };
    let (start, end) = others.support();
    let capped = Erlang::new(cap);
    let integrand = |t: f64, w: f64, acc: &mut [f64]| acc[0] += w * capped.cdf_sf(t).0 * others.tails(t).0;
    let excess = integrate(0.0, start, 1, REL_TOL, ABS_TOL, integrand)[0]
        + integrate(start, end, 1, REL_TOL, ABS_TOL, integrand)[0];
    Ok(uncapped - excess)
}

/// P(N_m = n), the probability that a given worker completes exactly n < U updates in a round
/// (specs/stsyn.md §2.3). It does not depend on λ. It is 0 when K = M, and
/// Σ_{n<U} P(N_m = n) = (M−K)/M.
pub fn prob_updates(m: usize, k: usize, u: u32, n: u32) -> Result<f64> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    check_update_index(u, n)?;
    Ok(update_probabilities(m, k, u, &[n])[0])
}

/// [P(N_m = 0), …, P(N_m = U−1)] in one quadrature (see [`prob_updates`]).
pub fn update_distribution(m: usize, k: usize, u: u32) -> Result<Vec<f64>> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    let all: Vec<u32> = (0..u).collect();
    Ok(update_probabilities(m, k, u, &all))
}

/// P(N_m = n) = E\[e^{−T'} T'^n/n!\] for each n in `ns` (λ = 1), T' the K-th completion among the
/// other M−1 workers, with density f_{T'}(t) = (M−1)·f_U(t)·P(Bin(M−2, F_U(t)) = K−1).
fn update_probabilities(m: usize, k: usize, u: u32, ns: &[u32]) -> Vec<f64> {
    if k == m {
        return vec![0.0; ns.len()];
    }
    let erlang = Erlang::new(u);
    let others = KthCompletion { workers: m - 1, k, erlang };
    let (start, end) = others.support();
    let poisson: Vec<PoissonTerm> = ns.iter().map(|&n| PoissonTerm::new(u64::from(n))).collect();
    let integrand = |t: f64, w: f64, acc: &mut [f64]| {
        let (cdf, sf) = erlang.cdf_sf(t);
        let density_factor = (m - 1) as f64 * binomial_pmf(m - 2, cdf, sf, k - 1);
        if density_factor == 0.0 {
            return;
        }
        let ln_density = erlang.ln_density(t);
        for (slot, term) in acc.iter_mut().zip(&poisson) {
            *slot += w * density_factor * (ln_density + term.ln_at(t)).exp();
        }
    };
    let bulk = integrate(start, end, ns.len(), REL_TOL, ABS_TOL, integrand);
    // [0, start] holds at most 1e-18 of T'’s mass, but e^{−t} favours it, so for tiny
    // probabilities it can matter (even dominate). Its integrand rises steeply towards `start`,
    // hence adaptive panels, to the accuracy of the total.
    let rough = integrate(0.0, start, ns.len(), 1.0, f64::INFINITY, integrand);
    let tol: Vec<f64> = bulk.iter().zip(&rough).map(|(b, r)| REL_TOL * (b + r.abs()) + 1e-300).collect();
    let left = integrate_adaptive(0.0, start, &tol, integrand);
    left.iter().zip(&bulk).map(|(a, b)| a + b).collect()
}

/// T_(K): the K-th smallest of `workers` i.i.d. Erlang(U, 1) completion times (λ = 1).
struct KthCompletion {
    workers: usize,
    k: usize,
    erlang: Erlang,
}

impl KthCompletion {
    /// (P(T_(K) > t), P(T_(K) ≤ t)), each accurate in its own tail.
    fn tails(&self, t: f64) -> (f64, f64) {
        let (cdf, sf) = self.erlang.cdf_sf(t);
        let split = binomial_split(self.workers, cdf, sf, self.k);
        (split.below, split.at_or_above)
    }

    /// [a, b] with P(T_(K) ≤ a) ≤ 1e-18 and P(T_(K) > b) ≤ 1e-18, found by bisection.
    fn support(&self) -> (f64, f64) {
        let u = f64::from(self.erlang.stages());
        let mut hi = u + 40.0 * u.sqrt() + 40.0;
        for _ in 0..64 {
            if self.tails(hi).0 <= TAIL {
                break;
            }
            hi *= 2.0;
        }
        let (_, end) = bisect(0.0, hi, |t| self.tails(t).0 > TAIL);
        let (start, _) = bisect(0.0, end, |t| self.tails(t).1 <= TAIL);
        (start, end)
    }

    /// E\[T_(K)\] = ∫_0^∞ P(T_(K) > t) dt = a + ∫_a^b P(T_(K) > t) dt.
    fn mean(&self) -> f64 {
        self.mean_until(f64::INFINITY)
    }

    /// E\[min(T_(K), d)\] = ∫_0^d P(T_(K) > t) dt.
    fn mean_until(&self, d: f64) -> f64 {
        let (start, end) = self.support();
        if d <= start {
            return d;
        }
        let bulk = integrate(start, end.min(d), 1, REL_TOL, ABS_TOL, |t, w, acc| {
            acc[0] += w * self.tails(t).0;
        });
        start + bulk[0]
    }

    /// ∫_0^∞ e^{−t} P(T_(K) > t) dt = (1 − e^{−a}) + ∫_a^b e^{−t} P(T_(K) > t) dt: the
    /// probability that a tagged worker outside this group completes at least one update before
    /// T_(K) (specs/stsyn.md §2.4).
    fn laplace_survival(&self) -> f64 {
        self.laplace_survival_until(f64::INFINITY)
    }

    /// ∫_0^d e^{−t} P(T_(K) > t) dt: the same before min(T_(K), d).
    fn laplace_survival_until(&self, d: f64) -> f64 {
        let (start, end) = self.support();
        if d <= start {
            return -(-d).exp_m1();
        }
        let bulk = integrate(start, end.min(d), 1, REL_TOL, ABS_TOL, |t, w, acc| {
            acc[0] += w * (-t).exp() * self.tails(t).0;
        });
        -(-start).exp_m1() + bulk[0]
    }
}

/// Checks M ≥ 1 and 1 ≤ K ≤ M.
pub(crate) fn check_workers_and_wait(m: usize, k: usize) -> Result<()> {
    if m == 0 {
        return Err(Error::invalid("M (workers)", m, "there must be at least one worker"));
    }
    if k == 0 || k > m {
        return Err(Error::invalid("K (workers waited for)", k, format!("must satisfy 1 <= K <= M = {m}")));
    }
    Ok(())
}

/// Checks U ≥ 1.
pub(crate) fn check_updates(u: u32) -> Result<()> {
    if u == 0 {
        return Err(Error::invalid("U (local updates per round)", u, "must be at least 1"));
    }
    Ok(())
}

/// Checks n < U for P(N_m = n).
pub(crate) fn check_update_index(u: u32, n: u32) -> Result<()> {
    if n >= u {
        return Err(Error::invalid(
            "n (updates completed)",
            n,
            format!("P(N_m = n) has a closed form only for n < U = {u}"),
        ));
    }
    Ok(())
}
