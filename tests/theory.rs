//! Closed forms of `stsyn::theory` against exact oracles: the exact rationals and tables of
//! specs/stsyn.md §2.6–2.7, the oracle table of specs/baselines.md §14, identities that hold
//! exactly (U = 1, K = M, Σ_n P(N_m = n) = (M−K)/M, …), independent computations (brute force,
//! inclusion–exclusion, a separate Simpson rule at M = 10^4), and input validation.
//!
//! Tolerances: f64 quadrature is compared with exact rationals at 1e-11 relative (it reaches
//! about 1e-15); spec tables are compared to half a unit of their last printed digit.

use std::str::FromStr;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};
use stsyn::Error;
use stsyn::theory::dutta::{self, UpdateTime, Variant};
use stsyn::theory::stsyn::{
    exact, exact_prob_updates, exact_round_time_double_sum, exact_update_distribution, prob_updates, round_stats,
    round_stats_heterogeneous, update_distribution,
};
use stsyn::theory::{fixed, harmonic, harmonic_difference, spiridonoff};

// ---------------------------------------------------------------------------------------------
// Helpers

fn q(text: &str) -> BigRational {
    BigRational::from_str(text).expect("valid rational literal")
}

fn int(n: usize) -> BigRational {
    BigRational::from_integer(BigInt::from(n))
}

fn to_f64(r: &BigRational) -> f64 {
    r.to_f64().expect("finite rational")
}

#[track_caller]
fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    let err = (got - want).abs();
    assert!(
        err <= tol * want.abs(),
        "{what}: got {got:.17e}, want {want:.17e} (relative error {:.2e} > {tol:e})",
        err / want.abs()
    );
}

#[track_caller]
fn assert_abs(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: got {got:.12}, want {want} (tolerance {tol:e})");
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: stsyn::Result<T>, parameter: &str) {
    match result {
        Err(Error::InvalidParameter { name, .. }) => {
            assert!(name.starts_with(parameter), "error names {name:?}, expected {parameter:?}")
        }
        other => panic!("expected InvalidParameter naming {parameter}, got {other:?}"),
    }
}

/// SplitMix64: a tiny fixed generator so the random cases are the same on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// specs/stsyn.md §2.7, exact rationals, as (M, U, K, λE[T], E|𝓜|). Note the column order.
const REFERENCE: [(usize, u32, usize, &str, &str); 7] = [
    (2, 1, 2, "3/2", "2"),
    (4, 1, 2, "7/12", "2"),
    (3, 2, 2, "197/108", "47/18"),
    (4, 3, 1, "48039/32768", "6161/2048"),
    (4, 3, 3, "26341007/7962624", "214475/55296"),
    (4, 3, 4, "38948987/7962624", "4"),
    (5, 2, 3, "19135409/10800000", "380933/90000"),
];

// ---------------------------------------------------------------------------------------------
// STSyn: exact rationals

#[test]
fn exact_rationals_reproduce_the_reference_table() {
    for &(m, u, k, round_time, uploaders) in &REFERENCE {
        let got = exact(m, k, u).unwrap();
        assert_eq!(got.round_time, q(round_time), "λE[T] at (M,U,K) = ({m},{u},{k})");
        assert_eq!(got.uploaders, q(uploaders), "E|M| at (M,U,K) = ({m},{u},{k})");
    }
}

#[test]
fn exact_single_and_double_sums_agree() {
    for &(m, u, k, round_time, _) in &REFERENCE {
        assert_eq!(exact_round_time_double_sum(m, k, u).unwrap(), q(round_time));
    }
    let mut rng = SplitMix(7);
    for _ in 0..20 {
        let m = rng.range(1, 12) as usize;
        let k = rng.range(1, m as u64) as usize;
        let u = rng.range(1, 6) as u32;
        assert_eq!(
            exact_round_time_double_sum(m, k, u).unwrap(),
            exact(m, k, u).unwrap().round_time,
            "(M,U,K) = ({m},{u},{k})"
        );
    }
}

#[test]
fn exact_special_cases() {
    for m in 1..=9 {
        for k in 1..=m {
            // U = 1: E[T] = H_M − H_{M−K} and exactly K workers upload.
            let e = exact(m, k, 1).unwrap();
            let harmonic_gap = ((m - k + 1)..=m)
                .fold(BigRational::zero(), |acc, i| acc + BigRational::new(BigInt::from(1), BigInt::from(i)));
            assert_eq!(e.round_time, harmonic_gap, "U = 1, M = {m}, K = {k}");
            assert_eq!(e.uploaders, int(k), "U = 1, M = {m}, K = {k}");
            for u in [2, 3] {
                // Σ_{n<U} P(N_m = n) = (M−K)/M; K = M gives M uploaders.
                let sum =
                    exact_update_distribution(m, k, u).unwrap().into_iter().fold(BigRational::zero(), |acc, p| acc + p);
                assert_eq!(sum, BigRational::new(BigInt::from(m - k), BigInt::from(m)));
                if k == m {
                    assert_eq!(exact(m, k, u).unwrap().uploaders, int(m));
                }
                // E|𝓜| = M·(1 − P(N_m = 0)).
                let p0 = exact_prob_updates(m, k, u, 0).unwrap();
                assert_eq!(
                    exact(m, k, u).unwrap().uploaders,
                    int(m) * (BigRational::from_integer(BigInt::from(1)) - p0)
                );
            }
        }
    }
    // The hand check of §2.7: (3,2,2) = 15/4 − 52/27.
    assert_eq!(exact(3, 2, 2).unwrap().round_time, q("15/4") - q("52/27"));
}

#[test]
fn exact_update_probabilities_match_the_reference_table() {
    let table: [(usize, u32, usize, &[f64]); 4] = [
        (4, 3, 3, &[0.03033, 0.08518, 0.13448]),
        (4, 3, 1, &[0.24792, 0.28812, 0.21396]),
        (6, 4, 2, &[0.07729, 0.17481, 0.21768, 0.19689]),
        (20, 10, 5, &[0.00065, 0.00454, 0.01616, 0.03879, 0.07066, 0.10417, 0.12942, 0.13935, 0.13271, 0.11355]),
    ];
    for (m, u, k, expected) in table {
        let exact_values = exact_update_distribution(m, k, u).unwrap();
        let f64_values = update_distribution(m, k, u).unwrap();
        for (n, &want) in expected.iter().enumerate() {
            let what = format!("P(N = {n}) at (M,U,K) = ({m},{u},{k})");
            assert_abs(to_f64(&exact_values[n]), want, 5e-6, &what);
            assert_abs(f64_values[n], want, 5e-6, &what);
            assert_eq!(exact_prob_updates(m, k, u, n as u32).unwrap(), exact_values[n]);
        }
    }
    assert_eq!(
        exact_update_distribution(4, 3, 3).unwrap().into_iter().fold(BigRational::zero(), |a, b| a + b),
        q("1/4")
    );
}

// ---------------------------------------------------------------------------------------------
// STSyn: f64 quadrature against the exact values

#[test]
fn quadrature_matches_exact_rationals_on_the_reference_table() {
    for &(m, u, k, round_time, uploaders) in &REFERENCE {
        let stats = round_stats(m, k, u, 1.0).unwrap();
        let what = format!("(M,U,K) = ({m},{u},{k})");
        assert_rel(stats.round_time, to_f64(&q(round_time)), 1e-12, &what);
        assert_rel(stats.updates_per_worker, to_f64(&q(round_time)), 1e-12, &what);
        assert_rel(stats.uploaders, to_f64(&q(uploaders)), 1e-12, &what);
    }
}

#[test]
fn quadrature_matches_exact_rationals_on_random_cases() {
    let mut rng = SplitMix(2024);
    let mut worst: f64 = 0.0;
    // Big-integer arithmetic is ~10x slower without optimisations; keep debug runs short.
    let cases = if cfg!(debug_assertions) { 7 } else { 24 };
    for case in 0..cases {
        // Mostly small, plus a few at the top of the range (M = 40, U = 12).
        let (m, u) = if case % 6 == 0 { (40, 12) } else { (rng.range(1, 40) as usize, rng.range(1, 12) as u32) };
        let k = rng.range(1, m as u64) as usize;
        let what = format!("(M,U,K) = ({m},{u},{k})");
        let e = exact(m, k, u).unwrap();
        let s = round_stats(m, k, u, 1.0).unwrap();
        for (got, want) in [(s.round_time, &e.round_time), (s.uploaders, &e.uploaders)] {
            let want = to_f64(want);
            worst = worst.max((got - want).abs() / want);
            assert_rel(got, want, 1e-11, &what);
        }
        let exact_probs = exact_update_distribution(m, k, u).unwrap();
        let probs = update_distribution(m, k, u).unwrap();
        for (n, (got, want)) in probs.iter().zip(&exact_probs).enumerate() {
            let want = to_f64(want);
            assert!((got - want).abs() <= 1e-11 * want + 1e-300, "P(N = {n}) at {what}: {got:e} vs {want:e}");
        }
    }
    eprintln!("worst relative error of E[T], E|M| over random cases: {worst:.1e}");
}

#[test]
fn quadrature_reproduces_the_m20_table() {
    // specs/stsyn.md §2.7, "Exact formula vs Monte Carlo", exact columns: (M, U, K, λE[T], E|𝓜|).
    let table = [
        (4, 1, 4, 2.08333, 4.0),
        (20, 10, 1, 5.04913, 19.79392),
        (20, 10, 5, 7.56773, 19.98707),
        (20, 10, 10, 9.50322, 19.99822),
        (20, 10, 15, 11.64683, 19.99980),
        (20, 10, 20, 16.77605, 20.0),
        (20, 1, 5, 0.27951, 5.0),
        (20, 5, 5, 3.27627, 19.19144),
        (20, 15, 5, 12.03012, 19.99982),
        (20, 20, 5, 16.57889, 19.99999772),
    ];
    for (m, u, k, round_time, uploaders) in table {
        let s = round_stats(m, k, u, 1.0).unwrap();
        let what = format!("(M,U,K) = ({m},{u},{k})");
        assert_abs(s.round_time, round_time, 5e-6, &what);
        let digits = if uploaders == 19.99999772 { 5e-9 } else { 5e-6 };
        assert_abs(s.uploaders, uploaders, digits, &what);
    }
    // Ū per uploader = M·λE[T]/E|𝓜|.
    let per_uploader = |k: usize, u: u32| {
        let s = round_stats(20, k, u, 1.0).unwrap();
        20.0 * s.updates_per_worker / s.uploaders
    };
    for (k, want) in [1, 5, 10, 15, 20].into_iter().zip([5.1017, 7.5726, 9.5041, 11.6470, 16.7761]) {
        assert_abs(per_uploader(k, 10), want, 5e-5, &format!("per uploader, K = {k}"));
    }
    for (u, want) in [1, 5, 10, 15, 20].into_iter().zip([1.1180, 3.4143, 7.5726, 12.0302, 16.5789]) {
        assert_abs(per_uploader(5, u), want, 5e-5, &format!("per uploader, U = {u}"));
    }
    // The code's time scale μ = 1e-4 (§2.7, last table), to four significant digits.
    for (k, u, want) in [
        (1, 10, 5.049e-4),
        (5, 10, 7.568e-4),
        (10, 10, 9.503e-4),
        (15, 10, 1.1647e-3),
        (20, 10, 1.6776e-3),
        (5, 1, 2.795e-5),
        (5, 5, 3.276e-4),
        (5, 15, 1.2030e-3),
        (5, 20, 1.6579e-3),
    ] {
        let got = round_stats(20, k, u, 1e-4).unwrap().round_time;
        assert_rel(got, want, 1e-4, &format!("μ = 1e-4, K = {k}, U = {u}"));
    }
}

#[test]
fn quadrature_special_cases_and_identities() {
    for (m, k, u) in [(1, 1, 4), (2, 1, 1), (7, 3, 1), (30, 30, 6), (25, 10, 8), (50, 49, 3)] {
        let s = round_stats(m, k, u, 1.0).unwrap();
        let what = format!("(M,U,K) = ({m},{u},{k})");
        if u == 1 {
            assert_rel(s.uploaders, k as f64, 1e-12, &what);
            assert_rel(s.round_time, harmonic_difference(m as u64, k as u64), 1e-12, &what);
        }
        let distribution = update_distribution(m, k, u).unwrap();
        if k == m {
            assert_eq!(s.uploaders, m as f64, "{what}");
            assert!(distribution.iter().all(|&p| p == 0.0), "{what}");
        } else {
            let sum: f64 = distribution.iter().sum();
            assert_rel(sum, (m - k) as f64 / m as f64, 1e-12, &what);
            assert_rel(s.uploaders, m as f64 * (1.0 - distribution[0]), 1e-12, &what);
        }
        for (n, &p) in distribution.iter().enumerate() {
            assert_eq!(prob_updates(m, k, u, n as u32).unwrap(), p, "{what}");
        }
    }
    // One worker: T is Erlang(U), the worker always uploads.
    let single = round_stats(1, 1, 5, 2.0).unwrap();
    assert_rel(single.round_time, 10.0, 1e-13, "M = 1");
    assert_eq!(single.uploaders, 1.0);
}

#[test]
fn round_time_scales_with_the_mean_update_time() {
    let base = round_stats(12, 5, 4, 1.0).unwrap();
    let scaled = round_stats(12, 5, 4, 0.25).unwrap();
    assert_rel(scaled.round_time, 0.25 * base.round_time, 1e-15, "E[T] ∝ μ");
    assert_eq!(scaled.updates_per_worker, base.updates_per_worker);
    assert_eq!(scaled.uploaders, base.uploaders);
}

#[test]
fn round_time_increases_with_k_and_u() {
    let m = 50;
    for u in [1, 3, 10] {
        let mut previous = 0.0;
        for k in 1..=m {
            let t = round_stats(m, k, u, 1.0).unwrap().round_time;
            assert!(t > previous, "E[T] not increasing in K at K = {k}, U = {u}");
            previous = t;
        }
    }
    for k in [1, 25, 50] {
        let mut previous = 0.0;
        let mut previous_uploaders = 0.0;
        for u in 1..=15 {
            let s = round_stats(m, k, u, 1.0).unwrap();
            assert!(s.round_time > previous, "E[T] not increasing in U at U = {u}");
            assert!(s.uploaders >= previous_uploaders, "E|M| not non-decreasing in U");
            previous = s.round_time;
            previous_uploaders = s.uploaders;
        }
    }
}

/// ∫_0^b g by Simpson's rule with n (even) intervals.
fn simpson(b: f64, n: usize, g: impl Fn(f64) -> f64) -> f64 {
    let h = b / n as f64;
    let mut sum = g(0.0) + g(b);
    for i in 1..n {
        sum += g(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}

/// ∫_0^2000 g by Simpson's rule on the segments [0, 1e-3], [1e-3, 1e-2], …, [1000, 2000], each
/// with 4000 intervals, so that both fast (t ~ 0.01) and slow (t ~ 100) features are resolved.
fn simpson_log_segments(g: impl Fn(f64) -> f64) -> f64 {
    let edges = [0.0, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0, 2000.0];
    edges.windows(2).map(|w| simpson(w[1] - w[0], 4000, |x| g(w[0] + x))).sum()
}

/// S_U(t) = e^{−t} Σ_{k<U} t^k/k!, summed naively (fine for U = 10, t ≤ 100), capped at 1
/// (rounding can push it a hair above near t = 0).
fn erlang_survival(u: u32, t: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..u {
        term *= t / k as f64;
        sum += term;
    }
    ((-t).exp() * sum).min(1.0)
}

#[test]
fn stable_at_ten_thousand_workers() {
    let m = 10_000;
    let mean = 0.5;
    // U = 1: E[T] = (H_M − H_{M−K})·μ and E|𝓜| = K.
    for k in [1, 2, 100, 5_000, 9_999, 10_000] {
        let s = round_stats(m, k, 1, mean).unwrap();
        let what = format!("M = 10^4, U = 1, K = {k}");
        assert_rel(s.round_time, harmonic_difference(m as u64, k as u64) * mean, 1e-11, &what);
        assert_rel(s.uploaders, k as f64, 1e-10, &what);
    }
    // K = M: the mean of the maximum of M Erlang(10) times, by an independent Simpson rule.
    let u = 10;
    let erlang_max = simpson(100.0, 200_000, |t| -(m as f64 * (-erlang_survival(u, t)).ln_1p()).exp_m1());
    let sync = round_stats(m, m, u, 1.0).unwrap();
    assert_rel(sync.round_time, erlang_max, 1e-10, "K = M = 10^4, U = 10");
    assert_eq!(sync.uploaders, m as f64);
    assert_eq!(dutta::sync_local_sgd_round_time(m, u, 1.0).unwrap(), sync.round_time);
    // K = 1: E[T] = ∫ S_U(t)^M dt.
    let first = simpson(10.0, 200_000, |t| (m as f64 * erlang_survival(u, t).ln()).exp());
    let fastest = round_stats(m, 1, u, 1.0).unwrap();
    assert_rel(fastest.round_time, first, 1e-10, "K = 1, M = 10^4, U = 10");
    // In between: ordered, and the identities that tie the three integrals together.
    for k in [10, 5_000, 9_999] {
        let s = round_stats(m, k, u, 1.0).unwrap();
        let what = format!("M = 10^4, U = 10, K = {k}");
        assert!(s.round_time.is_finite() && s.uploaders.is_finite(), "{what}");
        assert!(fastest.round_time < s.round_time && s.round_time < sync.round_time);
        assert!(k as f64 <= s.uploaders && s.uploaders <= m as f64, "{what}");
        let distribution = update_distribution(m, k, u).unwrap();
        let sum: f64 = distribution.iter().sum();
        assert_rel(sum, (m - k) as f64 / m as f64, 1e-11, &what);
        assert_rel(s.uploaders, m as f64 * (1.0 - distribution[0]), 1e-11, &what);
    }
}

#[test]
fn stsyn_inputs_are_validated() {
    assert_invalid(round_stats(0, 1, 1, 1.0), "M");
    assert_invalid(round_stats(4, 0, 1, 1.0), "K");
    assert_invalid(round_stats(4, 5, 1, 1.0), "K");
    assert_invalid(round_stats(4, 2, 0, 1.0), "U");
    assert_invalid(round_stats(4, 2, 3, 0.0), "mean");
    assert_invalid(round_stats(4, 2, 3, -1.0), "mean");
    assert_invalid(round_stats(4, 2, 3, f64::NAN), "mean");
    assert_invalid(round_stats(4, 2, 3, f64::INFINITY), "mean");
    assert_invalid(prob_updates(4, 2, 3, 3), "n");
    assert_invalid(prob_updates(4, 5, 3, 0), "K");
    assert_invalid(update_distribution(4, 2, 0), "U");
    assert_invalid(exact(3, 4, 1), "K");
    assert_invalid(exact(3, 2, 0), "U");
    assert_invalid(exact_prob_updates(3, 2, 2, 2), "n");
    assert_invalid(exact_round_time_double_sum(0, 0, 1), "M");
    assert_invalid(round_stats_heterogeneous(&[], 1, 1), "rates");
    assert_invalid(round_stats_heterogeneous(&[1.0, -2.0], 1, 1), "rates[1]");
    assert_invalid(round_stats_heterogeneous(&[1.0, f64::NAN], 1, 1), "rates[1]");
    assert_invalid(round_stats_heterogeneous(&[1.0, 2.0], 3, 1), "K");
    assert_invalid(round_stats_heterogeneous(&[1.0, 2.0], 1, 0), "U");
}

// ---------------------------------------------------------------------------------------------
// STSyn with heterogeneous rates

#[test]
fn heterogeneous_rates_reproduce_the_spec_table() {
    // specs/stsyn.md §2.6: λ = (1, 1.5, 2, 3), U = 3, K = 3.
    let rates = [1.0, 1.5, 2.0, 3.0];
    let h = round_stats_heterogeneous(&rates, 3, 3).unwrap();
    assert_abs(h.round_time, 2.00641, 5e-6, "E[T]");
    for (got, want) in h.updates.iter().zip([2.006, 3.010, 4.013, 6.019]) {
        assert_abs(*got, want, 5e-4, "E[N_m]");
    }
    for (got, want) in h.upload_prob.iter().zip([0.8646, 0.9648, 0.9882, 0.9980]) {
        assert_abs(*got, want, 5e-5, "P(upload)");
    }
    for (i, &rate) in rates.iter().enumerate() {
        assert_eq!(h.updates[i], rate * h.round_time);
    }
}

#[test]
fn heterogeneous_rates_agree_with_the_homogeneous_formulas() {
    for (m, k, u) in [(4, 3, 3), (5, 2, 3), (20, 5, 10), (30, 30, 4), (40, 1, 12), (60, 45, 6)] {
        let rate = 2.0;
        let h = round_stats_heterogeneous(&vec![rate; m], k, u).unwrap();
        let s = round_stats(m, k, u, 1.0 / rate).unwrap();
        let what = format!("(M,U,K) = ({m},{u},{k})");
        assert_rel(h.round_time, s.round_time, 1e-11, &what);
        for p in &h.upload_prob {
            assert_rel(*p * m as f64, s.uploaders, 1e-11, &what);
        }
    }
}

#[test]
fn heterogeneous_rates_match_exponential_race_formulas() {
    // U = 1 is a race of independent exponentials.
    let rates = [0.5, 1.0, 1.7, 3.0, 4.5];
    let total: f64 = rates.iter().sum();
    // K = 1: E[T] = 1/Σλ, and only the winner uploads: P(m uploads) = λ_m/Σλ.
    let first = round_stats_heterogeneous(&rates, 1, 1).unwrap();
    assert_rel(first.round_time, 1.0 / total, 1e-12, "E[min]");
    for (p, rate) in first.upload_prob.iter().zip(rates) {
        assert_rel(*p, rate / total, 1e-11, "P(winner)");
    }
    // K = M: E[max] by inclusion–exclusion over subsets.
    let mut expected_max = 0.0;
    for mask in 1u32..(1 << rates.len()) {
        let subset_rate: f64 = (0..rates.len()).filter(|i| mask & (1 << i) != 0).map(|i| rates[i]).sum();
        let sign = if mask.count_ones() % 2 == 1 { 1.0 } else { -1.0 };
        expected_max += sign / subset_rate;
    }
    let all = round_stats_heterogeneous(&rates, rates.len(), 1).unwrap();
    assert_rel(all.round_time, expected_max, 1e-12, "E[max]");
    assert!(all.upload_prob.iter().all(|&p| p == 1.0));
    // Any K with U = 1: exactly the first K upload, so Σ P(upload) = K.
    for k in 1..=rates.len() {
        let h = round_stats_heterogeneous(&rates, k, 1).unwrap();
        assert_rel(h.upload_prob.iter().sum(), k as f64, 1e-11, &format!("K = {k}"));
    }
}

#[test]
fn heterogeneous_rates_a_million_apart() {
    // Speeds 10^6 apart put the fast workers' whole decay far below the slow ones' time scale
    // (a single set of panels over the range missed it: E[T] came out as 1e-18). U = 1, K = 1
    // is a race: E[T] = 1/Σλ, P(m uploads) = λ_m/Σλ.
    for rates in [[1.0, 1e-6], [1e-6, 1.0]] {
        let h = round_stats_heterogeneous(&rates, 1, 1).unwrap();
        assert_rel(h.round_time, 1.0 / (1.0 + 1e-6), 1e-12, "E[min]");
        assert_rel(h.upload_prob.iter().sum(), 1.0, 1e-11, "one uploader");
    }
    // Two fast workers and one 10^6 times slower, K = 2, U = 10: the round is the later of the
    // two fast ones (the slow one completes 10 updates first with probability ~1e-50), and the
    // slow one uploads when its first update beats it: P ≈ 1e-6·E[T].
    let h = round_stats_heterogeneous(&[1.0, 1.0, 1e-6], 2, 10).unwrap();
    let fast = round_stats(2, 2, 10, 1.0).unwrap();
    assert_rel(h.round_time, fast.round_time, 1e-11, "E[T]");
    assert_rel(h.upload_prob[0] + h.upload_prob[1], 2.0, 1e-11, "fast uploaders");
    assert_rel(h.upload_prob[2], 1e-6 * fast.round_time, 1e-5, "slow uploader");
}

#[test]
fn heterogeneous_leave_one_out_matches_a_direct_computation() {
    // Rates spanning 400x, so some workers are almost surely done while others are not: the
    // leave-one-out probabilities (computed by dividing a worker out of a DP) are checked
    // against a DP over the other workers built from scratch, integrated by Simpson's rule on
    // graded segments (accurate to about 1e-12 here, hence the 1e-11 tolerance).
    let rates = [0.05, 0.3, 1.0, 1.0, 2.5, 7.0, 20.0, 0.7];
    let u = 5;
    for k in [1, 3, 6, 7] {
        let h = round_stats_heterogeneous(&rates, k, u).unwrap();
        let survival_without = |skip: usize, t: f64| {
            // P(at most K−1 of the others have completed U updates by t).
            let mut dist = vec![0.0; k];
            dist[0] = 1.0;
            for (i, &rate) in rates.iter().enumerate() {
                if i == skip {
                    continue;
                }
                let not_done = erlang_survival(u, rate * t);
                let done = 1.0 - not_done;
                for j in (1..k).rev() {
                    dist[j] = dist[j] * not_done + dist[j - 1] * done;
                }
                dist[0] *= not_done;
            }
            dist.iter().sum::<f64>()
        };
        for (m, &rate) in rates.iter().enumerate() {
            let want = simpson_log_segments(|t| rate * (-rate * t).exp() * survival_without(m, t));
            assert_rel(h.upload_prob[m], want, 1e-11, &format!("P(worker {m} uploads), K = {k}"));
        }
        // E[T] = ∫ P(fewer than K done) dt, by the same direct DP over everyone.
        let survival_all = |t: f64| {
            let mut dist = vec![0.0; k];
            dist[0] = 1.0;
            for &rate in &rates {
                let not_done = erlang_survival(u, rate * t);
                for j in (1..k).rev() {
                    dist[j] = dist[j] * not_done + dist[j - 1] * (1.0 - not_done);
                }
                dist[0] *= not_done;
            }
            dist.iter().sum::<f64>()
        };
        let want = simpson_log_segments(survival_all);
        assert_rel(h.round_time, want, 1e-11, &format!("E[T], K = {k}"));
    }
}

#[test]
fn heterogeneous_rates_are_equivariant() {
    let mut rng = SplitMix(99);
    let rates: Vec<f64> = (0..9).map(|_| 0.3 + 3.0 * rng.unit()).collect();
    let h = round_stats_heterogeneous(&rates, 4, 5).unwrap();
    // Permuting the workers permutes the outputs.
    let reversed: Vec<f64> = rates.iter().rev().copied().collect();
    let r = round_stats_heterogeneous(&reversed, 4, 5).unwrap();
    assert_rel(r.round_time, h.round_time, 1e-12, "permuted E[T]");
    for (a, b) in h.upload_prob.iter().zip(r.upload_prob.iter().rev()) {
        assert_rel(*a, *b, 1e-12, "permuted P(upload)");
    }
    // Doubling every rate halves the time and leaves the probabilities alone.
    let doubled: Vec<f64> = rates.iter().map(|r| 2.0 * r).collect();
    let d = round_stats_heterogeneous(&doubled, 4, 5).unwrap();
    assert_rel(d.round_time, 0.5 * h.round_time, 1e-12, "scaled E[T]");
    for (a, b) in h.upload_prob.iter().zip(&d.upload_prob) {
        assert_rel(*a, *b, 1e-12, "scaled P(upload)");
    }
    // A faster worker uploads more often.
    let mut order: Vec<usize> = (0..rates.len()).collect();
    order.sort_by(|&a, &b| rates[a].total_cmp(&rates[b]));
    for pair in order.windows(2) {
        assert!(h.upload_prob[pair[0]] <= h.upload_prob[pair[1]]);
    }
}

// ---------------------------------------------------------------------------------------------
// Dutta et al. runtimes (specs/baselines.md §4.3, §14)

#[test]
fn dutta_runtimes_reproduce_the_oracle_table() {
    let exp = UpdateTime::Exp { mean: 1.0 };
    let shifted = UpdateTime::ShiftedExp { shift: 1.0, mean: 1.0 };
    let run = |variant, time| dutta::runtime_per_iteration(variant, 8, 4, time).unwrap();
    assert_abs(run(Variant::KSync, exp).unwrap(), 0.634524, 5e-7, "K-sync");
    assert_abs(run(Variant::KBatchSync, exp).unwrap(), 0.5, 1e-15, "K-batch-sync");
    assert_abs(run(Variant::KAsync, exp).unwrap(), 0.634524, 5e-7, "K-async");
    assert_abs(run(Variant::KBatchAsync, exp).unwrap(), 0.5, 1e-15, "K-batch-async");
    assert_abs(run(Variant::KSync, shifted).unwrap(), 1.634524, 5e-7, "shifted K-sync");
    assert_abs(run(Variant::KBatchAsync, shifted).unwrap(), 1.0, 1e-15, "shifted K-batch-async");
    assert_eq!(run(Variant::KBatchSync, shifted), None);
    assert_eq!(run(Variant::KAsync, shifted), None);
    assert_abs(run(Variant::Async, exp).unwrap(), 0.125, 1e-15, "async");
    assert_abs(run(Variant::Async, shifted).unwrap(), 0.25, 1e-15, "shifted async");
}

#[test]
fn dutta_runtimes_at_the_ends() {
    let shifted = UpdateTime::ShiftedExp { shift: 0.5, mean: 2.0 };
    let p = 6;
    // K = P: K-sync and K-async are both fully synchronous, Δ + H_P·μ.
    let full = 0.5 + harmonic(6) * 2.0;
    assert_rel(dutta::k_sync_runtime(p, p, shifted).unwrap(), full, 1e-15, "K-sync, K = P");
    assert_rel(dutta::k_async_runtime(p, p, shifted).unwrap().unwrap(), full, 1e-15, "K-async, K = P");
    // K = 1: K-async is async SGD, K-batch-sync is the fastest of P fresh draws.
    assert_eq!(dutta::k_async_runtime(p, 1, shifted).unwrap(), Some(dutta::async_runtime(p, shifted).unwrap()));
    assert_rel(
        dutta::k_batch_sync_runtime(p, 1, shifted).unwrap().unwrap(),
        0.5 + 2.0 / 6.0,
        1e-15,
        "K-batch-sync, K = 1",
    );
    // A zero shift is the exponential case.
    let zero_shift = UpdateTime::ShiftedExp { shift: 0.0, mean: 2.0 };
    assert_eq!(
        dutta::k_async_runtime(p, 3, zero_shift).unwrap(),
        dutta::k_async_runtime(p, 3, UpdateTime::Exp { mean: 2.0 }).unwrap()
    );
    // Fully synchronous SGD: E[X_{M:M}] = H_M·μ, and local SGD with U = 1 is the same.
    assert_rel(dutta::expected_max_exp(8, 1.0).unwrap(), 761.0 / 280.0, 1e-15, "H_8");
    assert_rel(dutta::sync_local_sgd_round_time(8, 1, 1.0).unwrap(), 761.0 / 280.0, 1e-12, "sync local SGD, U = 1");
    // Local SGD rounds of U updates: E[max of M Erlang(U)] is the exact K = M value.
    assert_rel(
        dutta::sync_local_sgd_round_time(4, 3, 1.0).unwrap(),
        to_f64(&q("38948987/7962624")),
        1e-12,
        "sync local SGD, M = 4, U = 3",
    );
}

#[test]
fn dutta_inputs_are_validated() {
    let exp = UpdateTime::Exp { mean: 1.0 };
    assert_invalid(dutta::k_sync_runtime(0, 1, exp), "M (workers)");
    assert_invalid(dutta::k_sync_runtime(4, 0, exp), "K");
    assert!(dutta::k_sync_runtime(4, 5, exp).unwrap_err().to_string().contains("K <= M = 4"));
    assert_invalid(dutta::k_batch_async_runtime(4, 0, exp), "K");
    // the batch variants count gradients, not workers: K > P is a valid batch
    assert_eq!(dutta::k_batch_async_runtime(4, 5, exp).unwrap(), 1.25);
    assert_eq!(dutta::k_batch_sync_runtime(4, 6, exp).unwrap(), Some(1.5));
    assert_invalid(dutta::k_sync_runtime(4, 2, UpdateTime::Exp { mean: 0.0 }), "mean");
    let bad_shift = UpdateTime::ShiftedExp { shift: -1.0, mean: 1.0 };
    assert_invalid(dutta::k_async_runtime(4, 2, bad_shift), "shift");
    assert_invalid(dutta::expected_max_exp(0, 1.0), "M (workers)");
    assert_invalid(dutta::sync_local_sgd_round_time(4, 0, 1.0), "U");
}

// ---------------------------------------------------------------------------------------------
// Fixed computation model (specs/baselines.md §5, §6.3, §7.3, §14)

fn sqrt_taus() -> Vec<f64> {
    (1..=10).map(|i| f64::sqrt(i as f64)).collect()
}

#[test]
fn fixed_model_reproduces_the_oracle_table() {
    let taus = sqrt_taus();
    assert_abs(fixed::sync_round_time(&taus).unwrap(), 3.162278, 5e-7, "sync");
    assert_eq!(fixed::asgd_updates_by(&taus, 10.0).unwrap(), 47);
    for (s, want) in [1, 5, 10, 20, 50].into_iter().zip([1.0, 2.0, 2.828427, 5.0, 11.0]) {
        assert_abs(fixed::rennala_round_time(&taus, s).unwrap(), want, 5e-7, &format!("Rennala, S = {s}"));
    }
    for (s, want) in [1, 5, 10, 20, 50].into_iter().zip([1.750963, 2.973851, 3.983272, 5.974908, 11.949816]) {
        assert_abs(fixed::rennala_round_time_bound(&taus, s).unwrap(), want, 5e-7, &format!("Rennala bound, S = {s}"));
    }
    for (r, want) in [1, 2, 5, 10].into_iter().zip([3.501926, 4.309637, 5.947701, 7.966544]) {
        assert_abs(fixed::ringmaster_window_time(&taus, r).unwrap(), want, 5e-7, &format!("Ringmaster, R = {r}"));
    }
}

#[test]
fn rennala_round_time_is_the_s_th_completion() {
    let mut rng = SplitMix(5);
    for _ in 0..30 {
        let n = rng.range(1, 8) as usize;
        let taus: Vec<f64> = (0..n).map(|_| 0.1 + 2.0 * rng.unit()).collect();
        let s = rng.range(1, 200);
        // Brute force: all completion times k·τ_i, sorted; the S-th one.
        let mut times: Vec<f64> = taus.iter().flat_map(|&tau| (1..=s).map(move |k| k as f64 * tau)).collect();
        times.sort_by(f64::total_cmp);
        let want = times[s as usize - 1];
        let got = fixed::rennala_round_time(&taus, s).unwrap();
        assert_rel(got, want, 1e-12, &format!("S = {s}, τ = {taus:?}"));
        assert!(fixed::asgd_updates_by(&taus, got).unwrap() >= s);
        assert!(fixed::asgd_updates_by(&taus, got * (1.0 - 1e-6)).unwrap() < s);
        assert!(got <= fixed::rennala_round_time_bound(&taus, s).unwrap() * (1.0 + 1e-12));
        assert_eq!(
            fixed::ringmaster_window_time(&taus, s).unwrap(),
            2.0 * fixed::rennala_round_time_bound(&taus, s).unwrap()
        );
    }
}

#[test]
fn tolerant_floor_counts_products_that_round_down() {
    // 0.1·3 = 0.30000000000000004 and 0.3/0.1 = 2.9999999999999996 in f64.
    assert_eq!((0.3f64 / 0.1).floor(), 2.0);
    assert_eq!(fixed::tolerant_floor(0.3 / 0.1), 3.0);
    assert_eq!(fixed::tolerant_floor(2.5), 2.0);
    assert_eq!(fixed::tolerant_floor(-0.5), -1.0);
    assert_eq!(fixed::asgd_updates_by(&[0.1], 0.3).unwrap(), 3);
    assert_eq!(fixed::rennala_round_time(&[0.1], 3).unwrap(), 0.1 * 3.0);
}

#[test]
fn fixed_model_inputs_are_validated() {
    assert_invalid(fixed::sync_round_time(&[]), "tau");
    assert_invalid(fixed::asgd_updates_by(&[1.0, 0.0], 1.0), "tau[1]");
    assert_invalid(fixed::asgd_updates_by(&[1.0, f64::NAN], 1.0), "tau[1]");
    assert_invalid(fixed::asgd_updates_by(&[1.0], -1.0), "t");
    assert_invalid(fixed::rennala_round_time(&[1.0], 0), "S");
    assert_invalid(fixed::rennala_round_time_bound(&[1.0], 0), "S");
    assert_invalid(fixed::ringmaster_window_time(&[1.0], 0), "R");
}

// ---------------------------------------------------------------------------------------------
// Spiridonoff et al. communication schedules (specs/baselines.md §9.2–9.3)

#[test]
fn increasing_schedule_reproduces_the_oracle() {
    let expected = [0, 4, 14, 28, 47, 71, 100, 133, 171, 214, 261, 314, 371, 433, 500, 571, 647, 728, 814, 904, 1000];
    assert_eq!(spiridonoff::increasing(1000, 20).unwrap(), expected);
    assert_eq!(spiridonoff::budget_increasing(1000, 20, spiridonoff::Budget::Linear).unwrap(), expected);
    // The intervals grow (by a ≈ 4.76 per round, up to rounding).
    let gaps: Vec<u64> = expected.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]));
}

#[test]
fn schedules_are_increasing_from_zero_to_t() {
    let mut rng = SplitMix(11);
    for _ in 0..200 {
        let t = rng.range(1, 5000);
        let r = rng.range(1, 300);
        let h = rng.range(1, 400);
        for schedule in [
            spiridonoff::increasing(t, r).unwrap(),
            spiridonoff::equal_rounds(t, r).unwrap(),
            spiridonoff::constant_interval(t, h).unwrap(),
        ] {
            assert_eq!(schedule.first(), Some(&0));
            assert_eq!(schedule.last(), Some(&t));
            assert!(schedule.windows(2).all(|w| w[0] < w[1]), "{schedule:?}");
            assert!(schedule.len() as u64 - 1 <= r.max(t / h + 1));
        }
        if r * (r + 1) <= 2 * t {
            assert_eq!(spiridonoff::increasing(t, r).unwrap().len() as u64, r + 1);
        }
        if r <= t {
            assert_eq!(spiridonoff::equal_rounds(t, r).unwrap().len() as u64, r + 1);
        }
    }
}

#[test]
fn constant_and_budget_schedules() {
    use spiridonoff::Budget;
    assert_eq!(spiridonoff::one_shot(1000).unwrap(), [0, 1000]);
    assert_eq!(spiridonoff::every_step(3).unwrap(), [0, 1, 2, 3]);
    let tenths: Vec<u64> = (0..=20).map(|r| 50 * r).collect();
    assert_eq!(spiridonoff::equal_rounds(1000, 20).unwrap(), tenths);
    assert_eq!(spiridonoff::constant_interval(1000, 50).unwrap(), tenths);
    let sevens = spiridonoff::constant_interval(1000, 7).unwrap();
    assert_eq!(sevens.len(), 144);
    assert_eq!(&sevens[141..], [987, 994, 1000]);
    assert_eq!(spiridonoff::equal_rounds(10, 3).unwrap(), [0, 3, 6, 10]);
    // [Stich'19] H = ⌊√(T/N)⌋ and [Haddadpour et al.'19] H = ⌊(T²/N)^{1/3}⌋.
    assert_eq!(spiridonoff::stich_interval(1000, 20).unwrap(), 7);
    assert_eq!(spiridonoff::stich_interval(1000, 10).unwrap(), 10);
    assert_eq!(spiridonoff::stich_interval(10, 20).unwrap(), 1);
    assert_eq!(spiridonoff::haddadpour_interval(1000, 20).unwrap(), 36);
    assert_eq!(spiridonoff::haddadpour_interval(1000, 1000).unwrap(), 10);
    // R = ⌈N^p⌉, exactly at perfect powers.
    let rounds = |b: Budget, n| b.rounds(n).unwrap();
    assert_eq!(rounds(Budget::SquareRoot, 20), 5);
    assert_eq!(rounds(Budget::SquareRoot, 16), 4);
    assert_eq!(rounds(Budget::SquareRoot, 17), 5);
    assert_eq!(rounds(Budget::CubeRoot, 20), 3);
    assert_eq!(rounds(Budget::CubeRoot, 27), 3);
    assert_eq!(rounds(Budget::QuarterRoot, 20), 3);
    assert_eq!(rounds(Budget::QuarterRoot, 16), 2);
    assert_eq!(rounds(Budget::ThreeQuarters, 20), 10);
    assert_eq!(rounds(Budget::ThreeQuarters, 16), 8);
    assert_eq!(rounds(Budget::Linear, 20), 20);
    assert_eq!(rounds(Budget::SquareRoot, 1), 1);
    assert_eq!(spiridonoff::budget_constant(1000, 20, Budget::SquareRoot).unwrap(), [0, 200, 400, 600, 800, 1000]);
    assert_eq!(spiridonoff::budget_increasing(1000, 20, Budget::SquareRoot).unwrap(), [0, 66, 200, 400, 666, 1000]);
}

#[test]
fn schedule_inputs_are_validated() {
    assert_invalid(spiridonoff::increasing(0, 5), "T");
    assert_invalid(spiridonoff::increasing(10, 0), "R");
    assert_invalid(spiridonoff::constant_interval(10, 0), "H");
    assert_invalid(spiridonoff::equal_rounds(10, 0), "R");
    assert_invalid(spiridonoff::one_shot(0), "T");
    assert_invalid(spiridonoff::stich_interval(10, 0), "N");
    assert_invalid(spiridonoff::Budget::Linear.rounds(0), "N");
}

#[test]
fn malenia_round_time_bisected_equals_stepping_through_every_completion() {
    // the reference: from τ_max, every completion in time order until Σ 1/B_i ≤ M²/S
    let stepped = |taus: &[f64], s: u64| {
        let m = taus.len() as f64;
        let limit = m * m / s as f64 * (1.0 + 1e-12);
        let holds = |t: f64| taus.iter().map(|&tau| 1.0 / fixed::tolerant_floor(t / tau)).sum::<f64>() <= limit;
        let mut t = taus.iter().copied().fold(0.0, f64::max);
        while !holds(t) {
            t = taus.iter().map(|&tau| (fixed::tolerant_floor(t / tau) + 1.0) * tau).fold(f64::INFINITY, f64::min);
        }
        t
    };
    let profiles: [Vec<f64>; 3] = [
        (1..=10).map(|i| (i as f64).sqrt()).collect(),
        (1..=7).map(|i| 1.0 + (i as f64).sqrt()).collect(),
        vec![0.3, 0.3, 1.7, 2.9, 5.0],
    ];
    for taus in &profiles {
        for s in (1..=60).chain([97, 250, 1000, 4321]) {
            assert_eq!(fixed::malenia_round_time(taus, s).unwrap(), stepped(taus, s), "τ = {taus:?}, S = {s}");
        }
    }
    // a batch far beyond what stepping could reach: equal τ, Σ 1/B_i = M·τ/t ≤ M²/S at t = S·τ/M;
    // from 2^28 on (as in the simulator) the search is refused
    assert_eq!(fixed::malenia_round_time(&[2.0; 4], 268_435_452).unwrap(), 134_217_726.0);
    let refused = fixed::malenia_round_time(&[2.0; 4], 1 << 28).unwrap_err().to_string();
    assert!(refused.contains("S (batch size) = 268435456") && refused.contains("2^28"), "{refused}");
}
