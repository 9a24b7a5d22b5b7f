//! Running means and standard errors (Welford's algorithm), for comparing simulated round
//! statistics with closed forms.
//!
//! [`Running`] gives the plain standard error s/√n, valid when the observations are
//! independent. [`RoundStat`] adds batch means for a stream whose successive values are
//! correlated (the update intervals of an asynchronous algorithm): the n values, in order, are
//! cut into B contiguous batches of ⌊n/B⌋ values, B = min(30, ⌊√n⌋), and the SE is
//! sd(batch means)/√B. Batches of ⌊n/B⌋ ≥ B values leave fewer than B values at the end; they
//! count in the mean but in no batch. The estimate is honest once a batch is much longer than
//! the correlation of the stream; (mean − true value)/SE then follows Student's t with B − 1
//! degrees of freedom (|t| > 4 with probability 4e-4 for B = 30, against 6e-5 for the normal).
//! With n < 4 there is only one batch and the SE is NaN.
//!
//! Values are accumulated divided by a power of two near the first non-zero one, which is exact
//! and leaves every mean and SE of ordinary magnitudes bit for bit as without it, but keeps the
//! squared deviations from underflowing to zero (step times like 1e-300) or overflowing to
//! infinity (1e300): the SE is then as accurate at any scale as at 1.

/// Running mean and variance of a stream of numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Running {
    n: u64,
    /// Mean and sum of squared deviations of the values divided by `scale`.
    mean: f64,
    m2: f64,
    /// A power of two set by the first non-zero value (0 until then, while all values are 0).
    scale: f64,
}

/// The power of two 2^e with e the binary exponent of `x`, clamped to the normal range (so a
/// subnormal `x` gives 2^−1022 and an infinite one 2^1023).
fn power_of_two_near(x: f64) -> f64 {
    let e = ((x.abs().to_bits() >> 52) as i64).clamp(1, 2046);
    f64::from_bits((e as u64) << 52)
}

impl Running {
    /// Adds one observation.
    #[inline]
    pub fn push(&mut self, x: f64) {
        if self.scale == 0.0 && x != 0.0 && !x.is_nan() {
            self.scale = power_of_two_near(x); // every earlier value was 0
        }
        let x = if self.scale == 0.0 { x } else { x / self.scale };
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn unscaled(&self, scaled: f64) -> f64 {
        if self.scale == 0.0 { scaled } else { scaled * self.scale }
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Sample mean (NaN when empty).
    pub fn mean(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.unscaled(self.mean) }
    }

    /// Sample variance with n − 1 in the denominator (NaN for fewer than two observations).
    pub fn variance(&self) -> f64 {
        self.unscaled(self.unscaled(self.scaled_variance()))
    }

    fn scaled_variance(&self) -> f64 {
        if self.n < 2 { f64::NAN } else { self.m2 / (self.n - 1) as f64 }
    }

    /// Standard error of the mean (NaN for fewer than two observations).
    pub fn se(&self) -> f64 {
        self.unscaled((self.scaled_variance() / self.n as f64).sqrt())
    }

    /// (mean − value) / se: how many standard errors the mean is from `value`.
    pub fn deviation_in_se(&self, value: f64) -> f64 {
        (self.mean() - value) / self.se()
    }
}

/// The batch count of the batch-means SE for a stream of n values: min(30, ⌊√n⌋).
pub fn batch_count(n: u64) -> u64 {
    n.isqrt().min(30)
}

/// Mean and SE of a per-round statistic: plain ([`RoundStat::plain`]) for independent rounds,
/// batch means ([`RoundStat::batched`]) for a stream of dependent ones.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RoundStat {
    values: Running,
    /// Values per batch (0: plain SE).
    batch: u64,
    current: Running,
    batch_means: Running,
}

impl RoundStat {
    /// Plain SE: the values are independent.
    pub fn plain() -> Self {
        RoundStat::default()
    }

    /// Batch-means SE for a stream of `n` values (more or fewer values are fine: every full
    /// batch of ⌊n/B⌋ counts).
    pub fn batched(n: u64) -> Self {
        let batch = (n / batch_count(n).max(1)).max(1);
        RoundStat { batch, ..RoundStat::default() }
    }

    /// Adds one value.
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.values.push(x);
        if self.batch > 0 {
            self.current.push(x);
            if self.current.count() == self.batch {
                self.batch_means.push(self.current.mean());
                self.current = Running::default();
            }
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.values.count()
    }

    /// Mean of all values.
    pub fn mean(&self) -> f64 {
        self.values.mean()
    }

    /// The SE of the mean: batch means where batched, else plain (NaN when it cannot be
    /// estimated).
    pub fn se(&self) -> f64 {
        if self.batch > 0 { self.batch_means.se() } else { self.values.se() }
    }

    /// The plain SE s/√n, whether or not the values are independent.
    pub fn plain_se(&self) -> f64 {
        self.values.se()
    }

    /// Full batches so far (None for the plain SE).
    pub fn batches(&self) -> Option<u64> {
        (self.batch > 0).then(|| self.batch_means.count())
    }

    /// Values per batch (None for the plain SE).
    pub fn batch_size(&self) -> Option<u64> {
        (self.batch > 0).then_some(self.batch)
    }

    /// (mean − value) / se.
    pub fn deviation_in_se(&self, value: f64) -> f64 {
        (self.mean() - value) / self.se()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_two_pass() {
        let xs = [1.0, 4.0, 2.5, 7.0, 3.25];
        let mut r = Running::default();
        xs.iter().for_each(|&x| r.push(x));
        let mean = xs.iter().sum::<f64>() / 5.0;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 4.0;
        assert!((r.mean() - mean).abs() < 1e-12);
        assert!((r.variance() - var).abs() < 1e-12);
        assert!((r.se() - (var / 5.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn tiny_and_huge_values_keep_their_se() {
        // the values 0, 1, 2, 3, 4 times 2^±1000: mean 2·s, SE √(2.5/5)·s at any scale s, where
        // plain Welford would square deviations into 0 or infinity
        for s in [2f64.powi(-1000), 1.0, 2f64.powi(1000)] {
            let mut r = Running::default();
            [0.0, 1.0, 2.0, 3.0, 4.0].iter().for_each(|&x| r.push(x * s));
            let want_se = (2.5f64 / 5.0).sqrt() * s; // variance 2.5 of 0..4, n = 5
            assert_eq!(r.mean(), 2.0 * s);
            assert!((r.se() / want_se - 1.0).abs() < 1e-15, "scale {s:e}: se {:e}", r.se());
        }
        // subnormal values: still a positive SE
        let mut r = Running::default();
        [1e-320, 2e-320, 3e-320].iter().for_each(|&x| r.push(x));
        assert!(r.se() > 0.0 && (r.mean() / 2e-320 - 1.0).abs() < 1e-3, "{:e} ± {:e}", r.mean(), r.se());
        // a leading zero, then values: the zero counts
        let mut r = Running::default();
        [0.0, 2.0].iter().for_each(|&x| r.push(x));
        assert_eq!((r.mean(), r.variance()), (1.0, 2.0));
    }

    #[test]
    fn batch_means_of_a_known_stream() {
        assert_eq!([0, 1, 3, 4, 8, 9, 100, 899, 900, 10_000].map(batch_count), [0, 1, 1, 2, 2, 3, 10, 29, 30, 30]);
        // n = 10: 3 batches of 3, the last value in no batch.
        let xs = [1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 4.0, 5.0, 6.0, 100.0];
        let mut s = RoundStat::batched(10);
        xs.iter().for_each(|&x| s.push(x));
        assert_eq!((s.count(), s.batches(), s.batch_size()), (10, Some(3), Some(3)));
        assert!((s.mean() - 15.4).abs() < 1e-12);
        // batch means 2, 11, 5 around 6: sd √21 = 4.5826, SE = sd/√3
        let sd = ((16.0 + 25.0 + 1.0) / 2.0f64).sqrt();
        assert!((s.se() - sd / 3f64.sqrt()).abs() < 1e-12, "{}", s.se());
        let mut plain = Running::default();
        xs.iter().for_each(|&x| plain.push(x));
        assert_eq!(s.plain_se(), plain.se());
        let mut p = RoundStat::plain();
        xs.iter().for_each(|&x| p.push(x));
        assert_eq!((p.se(), p.batches()), (plain.se(), None));
        // too short for two batches
        let mut short = RoundStat::batched(3);
        [1.0, 2.0, 3.0].iter().for_each(|&x| short.push(x));
        assert!(short.se().is_nan());
    }
}
