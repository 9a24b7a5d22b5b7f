//! Exact rational values of the STSyn closed forms at λ = 1 (specs/stsyn.md §2.2–2.4), for tests
//! and for checking the f64 quadrature of [`super`].
//!
//! With P_U(x) = Σ_{k<U} x^k/k! and P_U(x)^n = Σ_p a_{n,p} x^p, the basic integral is
//! Φ_q(n, c) = λ∫_0^∞ e^{−cλt} (λt)^q/q! · S_U(t)^n dt = Σ_p a_{n,p} (p+q)! / (q! (n+c)^{p+q+1}).
//! The coefficients are kept as integers: b_{n,p} = ((U−1)!)^n · a_{n,p} are the coefficients of
//! (Σ_k (U−1)!/k! · x^k)^n, so each Φ is one big-integer numerator (by Horner's rule in n+c) over
//! one big-integer denominator. The alternating sums over j are exact, so nothing cancels
//! badly. Costs grow quickly with M·U (numbers of about M·U·log(M·U) digits); meant for M ≲ 100.

use std::collections::HashMap;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

use super::{check_update_index, check_updates, check_workers_and_wait};
use crate::error::Result;

/// E\[T\] and E|𝓜| of one STSyn round as exact rationals, at rate λ = 1 (multiply `round_time` by
/// the mean update time μ for other rates; `round_time` also equals Ū = E\[N_m\]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exact {
    /// λ·E\[T\] = Ū = E\[N_m\] (specs/stsyn.md §2.2–2.3).
    pub round_time: BigRational,
    /// E|𝓜|, the expected number of workers with at least one completed update (§2.4).
    pub uploaders: BigRational,
}

/// Exact λ·E\[T\] and E|𝓜| for M workers, waiting for K, U updates per round (specs/stsyn.md
/// §2.2, §2.4). Errors name the bad parameter unless 1 ≤ K ≤ M and U ≥ 1.
pub fn exact(m: usize, k: usize, u: u32) -> Result<Exact> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    let mut phi = PhiTable::new(u);
    Ok(Exact { round_time: round_time_single_sum(&mut phi, m, k), uploaders: uploaders(&mut phi, m, k) })
}

/// Exact λ·E\[T\] by the double sum of specs/stsyn.md §2.2,
/// Σ_{i=0}^{K−1} C(M,i) Σ_{l=0}^{i} (−1)^l C(i,l) Φ(M−i+l, 0): an independent route to the same
/// rational as [`exact`], for cross-checking.
pub fn exact_round_time_double_sum(m: usize, k: usize, u: u32) -> Result<BigRational> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    let mut phi = PhiTable::new(u);
    let mut total = BigRational::zero();
    for i in 0..k {
        let mut inner = BigRational::zero();
        for l in 0..=i {
            let term = BigRational::from_integer(binomial(i, l)) * phi.get(m - i + l, 0, 0);
            if l.is_multiple_of(2) {
                inner += term;
            } else {
                inner -= term;
            }
        }
        total += BigRational::from_integer(binomial(m, i)) * inner;
    }
    Ok(total)
}

/// Exact P(N_m = n) for 0 ≤ n < U (specs/stsyn.md §2.3): the probability that a given worker
/// completes exactly n updates in a round. Independent of λ. It is 0 when K = M.
pub fn exact_prob_updates(m: usize, k: usize, u: u32, n: u32) -> Result<BigRational> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    check_update_index(u, n)?;
    Ok(prob_updates(&mut PhiTable::new(u), m, k, n))
}

/// Exact [P(N_m = 0), …, P(N_m = U−1)], sharing one table of Φ values (cheaper than U calls of
/// [`exact_prob_updates`]).
pub fn exact_update_distribution(m: usize, k: usize, u: u32) -> Result<Vec<BigRational>> {
    check_workers_and_wait(m, k)?;
    check_updates(u)?;
    let mut phi = PhiTable::new(u);
    Ok((0..u).map(|n| prob_updates(&mut phi, m, k, n)).collect())
}

/// §2.3: 1[n=0] + Σ_j c_j (1[n≥1] Φ_{n−1}(j,1) − Φ_n(j,1)) for K < M, and 0 for K = M.
fn prob_updates(phi: &mut PhiTable, m: usize, k: usize, n: u32) -> BigRational {
    if k == m {
        return BigRational::zero();
    }
    let q = n as usize;
    let mut total = if n == 0 { BigRational::one() } else { BigRational::zero() };
    for (j, coefficient) in others_coefficients(m, k) {
        let mut bracket = -phi.get(j, 1, q);
        if n >= 1 {
            bracket += phi.get(j, 1, q - 1);
        }
        total += coefficient * bracket;
    }
    total
}

/// Single-sum form of §2.2: Σ_{j=M−K+1}^{M} (−1)^{j−M+K−1} C(j−1, M−K) C(M, j) Φ(j, 0).
fn round_time_single_sum(phi: &mut PhiTable, m: usize, k: usize) -> BigRational {
    let mut total = BigRational::zero();
    for j in (m - k + 1)..=m {
        let magnitude = BigRational::from_integer(binomial(j - 1, m - k) * binomial(m, j));
        let term = magnitude * phi.get(j, 0, 0);
        if (j + k - m - 1).is_multiple_of(2) {
            total += term;
        } else {
            total -= term;
        }
    }
    total
}

/// §2.4: M when K = M, else M·Σ_j c_j Φ(j, 1) with the coefficients of [`others_coefficients`].
fn uploaders(phi: &mut PhiTable, m: usize, k: usize) -> BigRational {
    if k == m {
        return BigRational::from_integer(BigInt::from(m));
    }
    let mut total = BigRational::zero();
    for (j, coefficient) in others_coefficients(m, k) {
        total += coefficient * phi.get(j, 1, 0);
    }
    total * BigRational::from_integer(BigInt::from(m))
}

/// The pairs (j, c_j), c_j = (−1)^{j−M+K} C(j−1, M−K−1) C(M−1, j) for j = M−K..M−1, so that
/// P(T'_(K) > t) = Σ_j c_j S_U(t)^j for the K-th completion among the other M−1 workers
/// (K ≤ M−1).
fn others_coefficients(m: usize, k: usize) -> Vec<(usize, BigRational)> {
    ((m - k)..m)
        .map(|j| {
            let magnitude = binomial(j - 1, m - k - 1) * binomial(m - 1, j);
            let signed = if (j + k - m).is_multiple_of(2) { magnitude } else { -magnitude };
            (j, BigRational::from_integer(signed))
        })
        .collect()
}

/// C(n, k) as a big integer (0 when k > n).
fn binomial(n: usize, k: usize) -> BigInt {
    if k > n {
        return BigInt::zero();
    }
    let k = k.min(n - k);
    let mut c = BigInt::one();
    for i in 0..k {
        c = c * BigInt::from(n - i) / BigInt::from(i + 1);
    }
    c
}

/// Lazily built integer coefficients b_{n,p} and memoised Φ_q(n, c) values.
struct PhiTable {
    u: usize,
    /// ((U−1)!/k!) for k = 0..U−1: the integer polynomial (U−1)!·P_U(x).
    base: Vec<BigInt>,
    /// powers\[n\] = coefficients of ((U−1)!·P_U(x))^n.
    powers: Vec<Vec<BigInt>>,
    /// factorials\[i\] = i!
    factorials: Vec<BigInt>,
    /// (U−1)!
    scale: BigInt,
    memo: HashMap<(usize, usize, usize), BigRational>,
}

impl PhiTable {
    fn new(u: u32) -> Self {
        let u = u as usize;
        let mut factorials = vec![BigInt::one()];
        for i in 1..u {
            let next = &factorials[i - 1] * BigInt::from(i);
            factorials.push(next);
        }
        let scale = factorials[u - 1].clone();
        let base = (0..u).map(|k| &scale / &factorials[k]).collect();
        PhiTable { u, base, powers: vec![vec![BigInt::one()]], factorials, scale, memo: HashMap::new() }
    }

    fn factorial(&mut self, i: usize) -> &BigInt {
        while self.factorials.len() <= i {
            let len = self.factorials.len();
            let next = &self.factorials[len - 1] * BigInt::from(len);
            self.factorials.push(next);
        }
        &self.factorials[i]
    }

    fn power(&mut self, n: usize) -> &[BigInt] {
        while self.powers.len() <= n {
            let previous = self.powers.last().expect("powers starts with n = 0");
            let mut next = vec![BigInt::zero(); previous.len() + self.u - 1];
            for (p, a) in previous.iter().enumerate() {
                for (k, b) in self.base.iter().enumerate() {
                    next[p + k] += a * b;
                }
            }
            self.powers.push(next);
        }
        &self.powers[n]
    }

    /// Φ_q(n, c) = Σ_p a_{n,p} (p+q)!/(q! (n+c)^{p+q+1}) for n + c ≥ 1.
    fn get(&mut self, n: usize, c: usize, q: usize) -> BigRational {
        if let Some(v) = self.memo.get(&(n, c, q)) {
            return v.clone();
        }
        let degree = n * (self.u - 1);
        self.factorial(degree + q);
        let coefficients = self.power(n).to_vec();
        let r = BigInt::from(n + c);
        let q_factorial = self.factorials[q].clone();
        // Horner: Σ_p b_p·(p+q)!/q!·r^{D−p}.
        let mut numerator = BigInt::zero();
        for (p, b) in coefficients.iter().enumerate() {
            numerator = numerator * &r + b * (&self.factorials[p + q] / &q_factorial);
        }
        let denominator = num_traits::pow(self.scale.clone(), n) * num_traits::pow(r, degree + q + 1);
        let value = BigRational::new(numerator, denominator);
        self.memo.insert((n, c, q), value.clone());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(n: i64, d: i64) -> BigRational {
        BigRational::new(BigInt::from(n), BigInt::from(d))
    }

    #[test]
    fn phi_matches_hand_integrals() {
        // U = 2: S = e^{−t}(1+t). ∫S² = 5/4 and ∫S³ = 26/27 (specs/stsyn.md §2.7 hand check).
        let mut phi = PhiTable::new(2);
        assert_eq!(phi.get(2, 0, 0), ratio(5, 4));
        assert_eq!(phi.get(3, 0, 0), ratio(26, 27));
        // U = 1: Φ_q(n, c) = 1/(n+c)^{q+1}.
        let mut phi1 = PhiTable::new(1);
        assert_eq!(phi1.get(2, 1, 2), ratio(1, 27));
    }

    #[test]
    fn polynomial_power_example() {
        // (1 + x + x²/2)² = 1 + 2x + 2x² + x³ + x⁴/4, scaled by (2!)² = 4.
        let mut phi = PhiTable::new(3);
        let expected: Vec<BigInt> = [4, 8, 8, 4, 1].iter().map(|&v| BigInt::from(v)).collect();
        assert_eq!(phi.power(2), expected.as_slice());
    }
}
