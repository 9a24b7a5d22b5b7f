//! Running means and standard errors (Welford's algorithm), for comparing simulated round
//! statistics with closed forms.

/// Running mean and variance of a stream of numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Running {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Running {
    /// Adds one observation.
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Sample mean (NaN when empty).
    pub fn mean(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.mean }
    }

    /// Sample variance with n − 1 in the denominator (NaN for fewer than two observations).
    pub fn variance(&self) -> f64 {
        if self.n < 2 { f64::NAN } else { self.m2 / (self.n - 1) as f64 }
    }

    /// Standard error of the mean (NaN for fewer than two observations).
    pub fn se(&self) -> f64 {
        (self.variance() / self.n as f64).sqrt()
    }

    /// (mean − value) / se: how many standard errors the mean is from `value`.
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
}
