//! Staleness bookkeeping of the asynchronous strategies (specs/baselines.md §1.4): the delay δ of
//! every applied result (server updates between the moment its worker read the model and the
//! moment it is applied), and how many results were ignored on arrival or cancelled in flight.

use serde::Serialize;

/// Buckets of the delay histogram: bucket 0 holds δ = 0, bucket b ≥ 1 holds 2^(b−1) ≤ δ < 2^b.
pub const DELAY_BUCKETS: usize = 65;

/// Delays of applied results, and results thrown away.
#[derive(Clone, Debug, PartialEq)]
pub struct DelayStats {
    /// Results applied.
    pub applied: u64,
    /// Σ δ over the applied results.
    pub sum: u64,
    /// Largest δ applied.
    pub max: u64,
    /// Results that arrived and were ignored (too stale, or of an earlier round).
    pub ignored: u64,
    /// Jobs cancelled while being computed.
    pub cancelled: u64,
    /// Applied results per power-of-two delay bucket (see [`DELAY_BUCKETS`]).
    pub histogram: [u64; DELAY_BUCKETS],
}

impl Default for DelayStats {
    fn default() -> Self {
        DelayStats { applied: 0, sum: 0, max: 0, ignored: 0, cancelled: 0, histogram: [0; DELAY_BUCKETS] }
    }
}

impl DelayStats {
    /// Records an applied result with delay `delay`.
    #[inline]
    pub fn applied(&mut self, delay: u64) {
        self.applied += 1;
        self.sum = self.sum.saturating_add(delay);
        self.max = self.max.max(delay);
        self.histogram[(u64::BITS - delay.leading_zeros()) as usize] += 1;
    }

    /// Mean delay of the applied results (NaN when none).
    pub fn mean(&self) -> f64 {
        self.sum as f64 / self.applied as f64
    }

    /// The bucket bounds `[low, high]` of histogram bucket `b`.
    pub fn bucket_range(b: usize) -> (u64, u64) {
        match b {
            0 => (0, 0),
            64 => (1 << 63, u64::MAX),
            _ => (1 << (b - 1), (1 << b) - 1),
        }
    }
}

/// What `summary.json` reports of a run's [`DelayStats`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StalenessReport {
    /// Results applied.
    pub applied: u64,
    /// Mean δ of the applied results (null when none).
    pub mean_delay: Option<f64>,
    /// Largest δ applied.
    pub max_delay: u64,
    /// Results ignored on arrival.
    pub ignored: u64,
    /// Jobs cancelled in flight.
    pub cancelled: u64,
    /// `[low, high, count]` of every non-empty power-of-two delay bucket.
    pub delay_histogram: Vec<[u64; 3]>,
}

impl From<&DelayStats> for StalenessReport {
    fn from(s: &DelayStats) -> Self {
        StalenessReport {
            applied: s.applied,
            mean_delay: (s.applied > 0).then(|| s.mean()),
            max_delay: s.max,
            ignored: s.ignored,
            cancelled: s.cancelled,
            delay_histogram: (0..DELAY_BUCKETS)
                .filter(|&b| s.histogram[b] > 0)
                .map(|b| {
                    let (low, high) = DelayStats::bucket_range(b);
                    [low, high, s.histogram[b]]
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        let mut s = DelayStats::default();
        for d in [0, 1, 2, 3, 4, 7, 8, u64::MAX] {
            s.applied(d);
        }
        assert_eq!(&s.histogram[..5], &[1, 1, 2, 2, 1]);
        assert_eq!(s.histogram[64], 1);
        assert_eq!(DelayStats::bucket_range(3), (4, 7));
        assert_eq!(s.max, u64::MAX);
        let r = StalenessReport::from(&s);
        assert_eq!(r.delay_histogram[..3], [[0, 0, 1], [1, 1, 1], [2, 3, 2]]);
        assert_eq!((r.applied, r.max_delay), (8, u64::MAX));
    }
}
