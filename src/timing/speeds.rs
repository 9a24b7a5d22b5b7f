//! Per-worker heterogeneity: how much slower or faster each worker is than the base
//! distribution. Written as a spec: `same` (default: i.i.d. workers), `means(m_1, ..., m_M)`,
//! `rates(r_1, ..., r_M)` (mean = 1/rate), or `profile(a=0, b=1, p=0.5, first=1)` for
//! mean_i = a + b·i^p with i = first, first+1, ... (τ_i = √i is `profile(b=1, p=0.5)`; the
//! Ringmaster script's τ_i = 1 + √i, i = 0..M−1, is `profile(a=1, b=1, p=0.5, first=0)`).
//!
//! Worker i's duration is the base sample times `mean_i / base_mean`, so its mean is mean_i and
//! the shape of its distribution is the base's (a constant base gives the fixed model τ_i).

use super::spec::{Bound, Spec, check_bound};
use crate::error::Result;

/// Per-worker mean durations, or `None` for identical workers.
#[derive(Clone, Debug, PartialEq)]
pub enum Speeds {
    /// Every worker follows the base distribution.
    Same,
    /// Worker i has mean duration `means[i]`.
    Means(Vec<f64>),
}

impl Speeds {
    /// Parses a speeds spec for `workers` workers; `what` names the flag for errors.
    pub fn parse(what: &str, text: &str, workers: usize) -> Result<Speeds> {
        let s = Spec::parse(what, text)?;
        let means = match s.name.as_str() {
            "same" | "iid" | "homogeneous" => {
                s.check_keys(&[], 0)?;
                return Ok(Speeds::Same);
            }
            "means" => s.numbers()?,
            "rates" => {
                let rates = s.numbers()?;
                for (i, r) in rates.iter().enumerate() {
                    check_bound(*r, Bound::Positive).map_err(|why| s.error(format!("rate of worker {i} = {why}")))?;
                }
                rates.iter().map(|r| 1.0 / r).collect()
            }
            "profile" => {
                s.check_keys(&["a", "b", "p", "first"], 0)?;
                let a = s.number("a", None)?.unwrap_or(0.0);
                let b = s.number("b", None)?.unwrap_or(1.0);
                let p = s.number("p", None)?.unwrap_or(1.0);
                let first = s.number("first", None)?.unwrap_or(1.0);
                if !(first >= 0.0 && first.fract() == 0.0 && first < 1e15) {
                    return Err(s.error(format!("first = {first} must be a whole number >= 0")));
                }
                for (key, v) in [("a", a), ("b", b), ("p", p)] {
                    check_bound(v, Bound::Finite).map_err(|why| s.error(format!("{key} = {why}")))?;
                }
                // the means and the scales derived from them, before allocating either
                let bytes = 16 * workers as u128;
                crate::error::check_memory(what, format!("profile for M = {workers}"), bytes, "16 bytes per worker")?;
                (0..workers).map(|i| a + b * (first + i as f64).powf(p)).collect()
            }
            other => {
                return Err(s.error(format!("unknown speeds '{other}' (expected same, means, rates, profile)")));
            }
        };
        if means.len() != workers {
            return Err(s.error(format!("gives {} workers but M = {workers}", means.len())));
        }
        for (i, m) in means.iter().enumerate() {
            check_bound(*m, Bound::Positive).map_err(|why| s.error(format!("mean of worker {i} = {why}")))?;
        }
        Ok(Speeds::Means(means))
    }

    /// The mean of worker `w` relative to `base_mean`, i.e. its duration multiplier.
    pub fn scales(&self, base_mean: f64) -> Option<Vec<f64>> {
        match self {
            Speeds::Same => None,
            Speeds::Means(m) => Some(m.iter().map(|x| x / base_mean).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_lists() {
        let Speeds::Means(m) = Speeds::parse("s", "profile(b=1, p=0.5)", 4).unwrap() else { panic!() };
        assert_eq!(m, vec![1.0, 2f64.sqrt(), 3f64.sqrt(), 2.0]);
        let Speeds::Means(m) = Speeds::parse("s", "profile(a=1, p=0.5, first=0)", 3).unwrap() else { panic!() };
        assert_eq!(m, vec![1.0, 2.0, 1.0 + 2f64.sqrt()]);
        let Speeds::Means(m) = Speeds::parse("s", "rates(1, 2, 4)", 3).unwrap() else { panic!() };
        assert_eq!(m, vec![1.0, 0.5, 0.25]);
        assert!(Speeds::parse("s", "means(1, 2)", 3).unwrap_err().to_string().contains("M = 3"));
        assert!(Speeds::parse("s", "means(1, -2, 3)", 3).unwrap_err().to_string().contains("worker 1 = -2"));
        assert!(Speeds::parse("s", "rates(1, 0)", 2).unwrap_err().to_string().contains("worker 1 = 0"));
        assert!(Speeds::parse("s", "profile(a=-1, b=1)", 2).unwrap_err().to_string().contains("worker 0 = 0"));
        let e = Speeds::parse("s", "means(1, 1e-320)", 2).unwrap_err().to_string();
        assert!(e.contains("worker 1 = 1e-320 must be of normal size"), "{e}");
        let e = Speeds::parse("s", "profile(b=1e-310)", 2).unwrap_err().to_string();
        assert!(e.contains("worker 0 = 1e-310 must be of normal size"), "{e}");
    }
}
