//! Distributions of one local-step duration or one message latency, before per-worker scaling.
//! A [`Dist`] is immutable, takes the RNG as an argument (`rand_distr::Distribution<f64>`), knows
//! its mean where it is finite, and is written on the command line and in TOML as a short spec
//! such as `exp(mean=1)`, `shifted_exp(shift=1, rate=2)`, `pareto(shape=2.5, scale=1)`,
//! `lomax(shape=3)`, `lognormal(mu=0, sigma=0.5)`, `uniform(low=1, high=2)`, `const(1)`,
//! `halfnormal(shift=1, sd=0.5)` or `lomax_mix(low=1e4, high=2e4)`.

use rand::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};

use super::spec::{Bound, Spec, check_bound};
use crate::error::Result;

/// One duration distribution. All variants produce values >= 0.
#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    /// Exponential with the given mean (rate 1/mean).
    Exp {
        /// Mean, > 0.
        mean: f64,
    },
    /// `shift + Exp(mean)`: a deterministic minimum plus an exponential tail (Dutta et al.).
    ShiftedExp {
        /// Deterministic part, >= 0.
        shift: f64,
        /// Mean of the exponential part, > 0.
        mean: f64,
    },
    /// Pareto type I: `scale · U^(-1/shape)`, support [scale, ∞); mean finite for shape > 1.
    Pareto {
        /// Tail index α > 0.
        shape: f64,
        /// Minimum value x_m > 0.
        scale: f64,
    },
    /// Lomax (Pareto type II, numpy's `pareto`): `scale · (U^(-1/shape) − 1)`, support [0, ∞).
    Lomax {
        /// Tail index α > 0.
        shape: f64,
        /// Scale > 0.
        scale: f64,
    },
    /// `exp(N(mu, sigma²))`.
    LogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm, >= 0.
        sigma: f64,
    },
    /// Uniform on [low, high).
    Uniform {
        /// Lower end, >= 0.
        low: f64,
        /// Upper end, > low.
        high: f64,
    },
    /// Always `value` (the fixed computation model).
    Constant {
        /// The value, >= 0.
        value: f64,
    },
    /// `shift + |N(0, sd²)|`: a fixed time plus half-normal jitter (Ringmaster's script, FLSim).
    HalfNormal {
        /// Deterministic part, >= 0.
        shift: f64,
        /// Standard deviation of the normal before folding, >= 0.
        sd: f64,
    },
    /// Lomax with scale 1 and a shape drawn afresh from Uniform(low, high) on every sample: the
    /// per-round draw of the STSyn authors' `Comparisons.py` (shape ~ U(1e4, 2e4)).
    LomaxMix {
        /// Smallest shape, > 0.
        low: f64,
        /// Largest shape, >= low.
        high: f64,
    },
}

impl Dist {
    /// Parses a spec string such as `exp(mean=1.0)`. `what` names the flag or key for errors.
    pub fn parse(what: &str, text: &str) -> Result<Dist> {
        Self::from_spec(&Spec::parse(what, text)?)
    }

    /// Builds from an already parsed spec and validates the parameters.
    pub fn from_spec(s: &Spec) -> Result<Dist> {
        let mean_or_rate = |s: &Spec| -> Result<f64> {
            match (s.number("mean", Some(0))?, s.number("rate", None)?) {
                (Some(_), Some(_)) => Err(s.error("give either mean or rate, not both")),
                (Some(m), None) => Ok(m),
                (None, Some(r)) => {
                    check(s, "rate", r, Bound::Positive)?;
                    Ok(1.0 / r)
                }
                (None, None) => Ok(1.0),
            }
        };
        let dist = match s.name.as_str() {
            "exp" | "exponential" => {
                s.check_keys(&["mean", "rate"], 1)?;
                Dist::Exp { mean: mean_or_rate(s)? }
            }
            "shifted_exp" | "shiftedexp" | "shifted_exponential" => {
                s.check_keys(&["shift", "mean", "rate"], 0)?;
                Dist::ShiftedExp { shift: s.required("shift", None)?, mean: mean_or_rate(s)? }
            }
            "pareto" => {
                s.check_keys(&["shape", "alpha", "scale"], 0)?;
                let shape =
                    s.number("shape", None)?.or(s.number("alpha", None)?).ok_or_else(|| s.error("missing shape"))?;
                Dist::Pareto { shape, scale: s.number("scale", None)?.unwrap_or(1.0) }
            }
            "lomax" => {
                s.check_keys(&["shape", "alpha", "scale"], 0)?;
                let shape =
                    s.number("shape", None)?.or(s.number("alpha", None)?).ok_or_else(|| s.error("missing shape"))?;
                Dist::Lomax { shape, scale: s.number("scale", None)?.unwrap_or(1.0) }
            }
            "lognormal" | "log_normal" => {
                s.check_keys(&["mu", "sigma"], 0)?;
                Dist::LogNormal { mu: s.number("mu", None)?.unwrap_or(0.0), sigma: s.required("sigma", None)? }
            }
            "uniform" => {
                s.check_keys(&["low", "high"], 2)?;
                Dist::Uniform { low: s.required("low", Some(0))?, high: s.required("high", Some(1))? }
            }
            "const" | "constant" | "fixed" => {
                s.check_keys(&["value"], 1)?;
                Dist::Constant { value: s.required("value", Some(0))? }
            }
            "halfnormal" | "half_normal" => {
                s.check_keys(&["shift", "sd"], 0)?;
                Dist::HalfNormal { shift: s.number("shift", None)?.unwrap_or(0.0), sd: s.required("sd", None)? }
            }
            "lomax_mix" => {
                s.check_keys(&["low", "high"], 0)?;
                Dist::LomaxMix { low: s.required("low", None)?, high: s.required("high", None)? }
            }
            other => {
                return Err(s.error(format!(
                    "unknown distribution '{other}' (expected exp, shifted_exp, pareto, lomax, lognormal, uniform, const, halfnormal, lomax_mix)"
                )));
            }
        };
        dist.validate(s)?;
        Ok(dist)
    }

    fn validate(&self, s: &Spec) -> Result<()> {
        use Bound::*;
        match *self {
            Dist::Exp { mean } => check(s, "mean", mean, Positive),
            Dist::ShiftedExp { shift, mean } => {
                check(s, "shift", shift, NonNegative)?;
                check(s, "mean", mean, Positive)
            }
            Dist::Pareto { shape, scale } | Dist::Lomax { shape, scale } => {
                check(s, "shape", shape, Positive)?;
                check(s, "scale", scale, Positive)
            }
            Dist::LogNormal { mu, sigma } => {
                check(s, "mu", mu, Finite)?;
                check(s, "sigma", sigma, NonNegative)
            }
            Dist::Uniform { low, high } => {
                check(s, "low", low, NonNegative)?;
                check(s, "high", high, Positive)?;
                if high <= low {
                    return Err(s.error(format!("high = {high} must be greater than low = {low}")));
                }
                Ok(())
            }
            Dist::Constant { value } => check(s, "value", value, NonNegative),
            Dist::HalfNormal { shift, sd } => {
                check(s, "shift", shift, NonNegative)?;
                check(s, "sd", sd, NonNegative)
            }
            Dist::LomaxMix { low, high } => {
                check(s, "low", low, Positive)?;
                check(s, "high", high, Positive)?;
                if high < low {
                    return Err(s.error(format!("high = {high} must be at least low = {low}")));
                }
                Ok(())
            }
        }
    }

    /// The mean, or `None` where it is infinite (Pareto/Lomax with shape <= 1).
    pub fn mean(&self) -> Option<f64> {
        match *self {
            Dist::Exp { mean } => Some(mean),
            Dist::ShiftedExp { shift, mean } => Some(shift + mean),
            Dist::Pareto { shape, scale } => (shape > 1.0).then(|| shape * scale / (shape - 1.0)),
            Dist::Lomax { shape, scale } => (shape > 1.0).then(|| scale / (shape - 1.0)),
            Dist::LogNormal { mu, sigma } => Some((mu + 0.5 * sigma * sigma).exp()),
            Dist::Uniform { low, high } => Some(0.5 * (low + high)),
            Dist::Constant { value } => Some(value),
            Dist::HalfNormal { shift, sd } => Some(shift + sd * (2.0 / std::f64::consts::PI).sqrt()),
            // E[1/(a-1)] for a ~ U(lo, hi): (ln(hi-1) - ln(lo-1)) / (hi - lo), or 1/(a-1) if lo == hi.
            Dist::LomaxMix { low, high } => {
                if low <= 1.0 {
                    None
                } else if high == low {
                    Some(1.0 / (low - 1.0))
                } else {
                    Some(((high - 1.0).ln() - (low - 1.0).ln()) / (high - low))
                }
            }
        }
    }

    /// True when the distribution is exponential (with shift 0): the closed forms of
    /// `theory::stsyn` apply.
    pub fn exponential_mean(&self) -> Option<f64> {
        match *self {
            Dist::Exp { mean } => Some(mean),
            Dist::ShiftedExp { shift: 0.0, mean } => Some(mean),
            _ => None,
        }
    }

    /// False when every sample is 0: a step of zero duration would let a worker do infinitely
    /// many steps at one instant.
    pub fn strictly_positive(&self) -> bool {
        // The continuous distributions put probability 0 on exactly 0 (a rounding to 0 is
        // harmless: the worker simply draws again), so only a point mass at 0 is a problem:
        // const(0), halfnormal(shift=0, sd=0), or a lognormal with σ = 0 and e^μ = 0 in f64 —
        // the non-negative distributions whose mean is 0.
        self.mean() != Some(0.0)
    }

    /// The canonical spec string (round-trips through [`Dist::parse`]).
    pub fn to_spec(&self) -> String {
        match *self {
            Dist::Exp { mean } => format!("exp(mean={mean})"),
            Dist::ShiftedExp { shift, mean } => format!("shifted_exp(shift={shift}, mean={mean})"),
            Dist::Pareto { shape, scale } => format!("pareto(shape={shape}, scale={scale})"),
            Dist::Lomax { shape, scale } => format!("lomax(shape={shape}, scale={scale})"),
            Dist::LogNormal { mu, sigma } => format!("lognormal(mu={mu}, sigma={sigma})"),
            Dist::Uniform { low, high } => format!("uniform(low={low}, high={high})"),
            Dist::Constant { value } => format!("const({value})"),
            Dist::HalfNormal { shift, sd } => format!("halfnormal(shift={shift}, sd={sd})"),
            Dist::LomaxMix { low, high } => format!("lomax_mix(low={low}, high={high})"),
        }
    }
}

impl Dist {
    /// Fills `out` with independent samples: the same values, in the same order, as calling
    /// `sample` once per element, but with one dispatch on the variant for the whole slice.
    pub fn fill<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        match *self {
            Dist::Exp { mean } => {
                out.iter_mut().for_each(|x| *x = mean * <Exp1 as Distribution<f64>>::sample(&Exp1, rng))
            }
            Dist::Constant { value } => out.fill(value),
            _ => out.iter_mut().for_each(|x| *x = self.sample(rng)),
        }
    }
}

impl Distribution<f64> for Dist {
    #[inline]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Dist::Exp { mean } => mean * <Exp1 as Distribution<f64>>::sample(&Exp1, rng),
            Dist::ShiftedExp { shift, mean } => shift + mean * <Exp1 as Distribution<f64>>::sample(&Exp1, rng),
            Dist::Pareto { shape, scale } => {
                let e: f64 = Exp1.sample(rng);
                scale * (e / shape).exp()
            }
            Dist::Lomax { shape, scale } => {
                let e: f64 = Exp1.sample(rng);
                scale * (e / shape).exp_m1()
            }
            Dist::LogNormal { mu, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                (mu + sigma * z).exp()
            }
            Dist::Uniform { low, high } => low + (high - low) * rng.random::<f64>(),
            Dist::Constant { value } => value,
            Dist::HalfNormal { shift, sd } => {
                let z: f64 = StandardNormal.sample(rng);
                shift + sd * z.abs()
            }
            Dist::LomaxMix { low, high } => {
                let shape = low + (high - low) * rng.random::<f64>();
                let e: f64 = Exp1.sample(rng);
                (e / shape).exp_m1()
            }
        }
    }
}

fn check(s: &Spec, key: &str, value: f64, bound: Bound) -> Result<()> {
    check_bound(value, bound).map_err(|reason| s.error(format!("{key} = {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, Seeds};

    fn sample_mean(d: &Dist, n: usize) -> (f64, f64) {
        let mut rng = Seeds::new(7).stream(Purpose::ComputeTime, 0, 0);
        let xs: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
        (m, (v / n as f64).sqrt())
    }

    #[test]
    fn sample_means_match_mean_within_4_se() {
        // 4 standard errors: a correct sampler fails this with probability ~6e-5 per case.
        for spec in [
            "exp(mean=2)",
            "exp(rate=4)",
            "shifted_exp(shift=1, mean=0.5)",
            "pareto(shape=4.5, scale=2)",
            "lomax(shape=5, scale=3)",
            "lognormal(mu=0.1, sigma=0.4)",
            "uniform(low=1, high=3)",
            "halfnormal(shift=1, sd=2)",
            "lomax_mix(low=10, high=20)",
        ] {
            let d = Dist::parse("t", spec).unwrap();
            let (m, se) = sample_mean(&d, 200_000);
            let want = d.mean().unwrap();
            assert!((m - want).abs() < 4.0 * se, "{spec}: sample mean {m} vs {want} (se {se})");
            assert_eq!(Dist::parse("t", &d.to_spec()).unwrap(), d);
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        for (spec, needle) in [
            ("exp(mean=-1)", "mean = -1"),
            ("exp(mean=0)", "mean = 0"),
            ("exp(mean=nan)", "mean = NaN"),
            ("exp(mean=inf)", "mean = inf"),
            ("exp(mean=1e-320)", "mean = 1e-320 must be of normal size"),
            ("constant(value=1e-320)", "must be 0 or of normal size"),
            ("constant(value=-1e-320)", "value = -1e-320 must be a finite number >= 0"),
            ("halfnormal(shift=0, sd=4e-310)", "sd = 4e-310 must be 0 or of normal size"),
            ("uniform(low=2, high=1)", "high = 1"),
            ("gamma(shape=2)", "unknown distribution 'gamma'"),
            ("exp(mean=1, rate=2)", "either mean or rate"),
            ("exp(scale=1)", "unknown key 'scale'"),
            ("pareto(scale=1)", "missing shape"),
        ] {
            let e = Dist::parse("--compute-time", spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(e.contains("--compute-time"), "{e}");
        }
    }
}
