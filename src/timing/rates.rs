//! Time-varying compute rates: the universal computation model (Tyurin 2024; specs/baselines.md
//! §1.2). Worker i works at rate p_i(t) ≥ 0 gradients per time unit and completes a gradient
//! started at time a when ∫_a^{a+d} p_i(s) ds reaches 1; the step's duration is that d. So a
//! duration depends on when the step starts, and nothing is random: the fixed model is
//! p_i ≡ 1/τ_i.
//!
//! Two periodic rate shapes, written as compute-time specs:
//!
//! - `sine(mean=1, amplitude=0.5, period=10, phase=spread)`:
//!   p(t) = (1/mean)·(1 + A·sin(2π(t/P + φ_i))) with 0 ≤ A < 1, so the rate stays between
//!   (1 − A)/mean and (1 + A)/mean and a step takes about `mean` on average.
//! - `square(fast=1, slow=4, period=10, duty=0.5, phase=spread)`: a step takes `fast` time
//!   units during the first `duty` fraction of every period and `slow` during the rest (rates
//!   1/fast and 1/slow), e.g. a machine shared with a periodic batch job.
//!
//! The phase φ_i is `spread` (default: φ_i = i/M, so the workers' slow spells are staggered) or
//! `same` (φ_i = 0). Per-worker speeds multiply every duration of worker i by s_i = mean_i/mean
//! (rate p/s_i), exactly as for the random models. Durations are found by inverting the integral:
//! in closed form for `square`, by safeguarded Newton iterations to full double precision for
//! `sine`. They are pure functions of (worker, start), so the engine and the per-round kernel,
//! which call them with the same start times, agree bit for bit.

use super::spec::{Bound, Spec, check_bound};
use crate::error::Result;

/// Newton iterations before giving up on improving a sine duration (it converges in a handful).
const MAX_NEWTON: usize = 100;

/// The shape of p(t); see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// p(t) = (1/mean)(1 + A sin(2π(t/P + φ))).
    Sine {
        /// Step time at the average rate.
        mean: f64,
        /// A in [0, 1).
        amplitude: f64,
        /// P > 0.
        period: f64,
    },
    /// Step time `fast` for the first `duty`·P of each period, `slow` for the rest.
    Square {
        /// Step time in the first part of the period.
        fast: f64,
        /// Step time in the second part.
        slow: f64,
        /// P > 0.
        period: f64,
        /// Fraction of the period at the `fast` rate, in (0, 1].
        duty: f64,
    },
}

/// A time-varying rate for every worker; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct RateModel {
    /// The shape of p(t).
    pub shape: Shape,
    /// φ_i = i/M (true) or 0 (false).
    pub spread_phase: bool,
    /// M (for the phases).
    pub workers: usize,
}

impl RateModel {
    /// Parses `sine(...)` or `square(...)` (already split into a [`Spec`]) for M workers.
    pub fn from_spec(s: &Spec, workers: usize) -> Result<RateModel> {
        let positive = |key: &str, v: f64| -> Result<f64> {
            check_bound(v, Bound::Positive).map(|()| v).map_err(|why| s.error(format!("{key} = {why}")))
        };
        let shape = match s.name.as_str() {
            "sine" => {
                s.check_keys(&["mean", "amplitude", "period", "phase"], 0)?;
                let amplitude = s.number("amplitude", None)?.unwrap_or(0.5);
                if !(0.0..1.0).contains(&amplitude) {
                    return Err(
                        s.error(format!("amplitude = {amplitude} must be in [0, 1) (the rate must stay positive)"))
                    );
                }
                Shape::Sine {
                    mean: positive("mean", s.number("mean", None)?.unwrap_or(1.0))?,
                    amplitude,
                    period: positive("period", s.number("period", None)?.unwrap_or(10.0))?,
                }
            }
            "square" => {
                s.check_keys(&["fast", "slow", "period", "duty", "phase"], 0)?;
                let duty = s.number("duty", None)?.unwrap_or(0.5);
                if !(duty > 0.0 && duty <= 1.0) {
                    return Err(s.error(format!("duty = {duty} must be in (0, 1]")));
                }
                Shape::Square {
                    fast: positive("fast", s.number("fast", None)?.unwrap_or(1.0))?,
                    slow: positive("slow", s.number("slow", None)?.unwrap_or(4.0))?,
                    period: positive("period", s.number("period", None)?.unwrap_or(10.0))?,
                    duty,
                }
            }
            other => return Err(s.error(format!("'{other}' is not a rate model (expected sine or square)"))),
        };
        // A step must not span more periods than f64 can count: the work done in one period,
        // duty·P/fast + (1 − duty)·P/slow steps, must be a normal number well above 0.
        if let Shape::Square { fast, slow, period, duty } = shape {
            let per_period = duty * period / fast + (1.0 - duty) * period / slow;
            if per_period < 1e-300 {
                return Err(s.error(format!(
                    "period = {} is too short for steps of {} and {} time units (a period holds {:e} of a step)",
                    crate::error::shown(period),
                    crate::error::shown(fast),
                    crate::error::shown(slow),
                    per_period
                )));
            }
        }
        let spread_phase = match s.raw("phase", None).map(str::trim) {
            None | Some("spread") => true,
            Some("same") => false,
            Some(other) => return Err(s.error(format!("phase = '{other}' must be spread or same"))),
        };
        Ok(RateModel { shape, spread_phase, workers })
    }

    /// The canonical spec string.
    pub fn to_spec(&self) -> String {
        let phase = if self.spread_phase { "spread" } else { "same" };
        match self.shape {
            Shape::Sine { mean, amplitude, period } => {
                format!("sine(mean={mean}, amplitude={amplitude}, period={period}, phase={phase})")
            }
            Shape::Square { fast, slow, period, duty } => {
                format!("square(fast={fast}, slow={slow}, period={period}, duty={duty}, phase={phase})")
            }
        }
    }

    /// The long-run mean step time at scale 1: 1 / (average rate).
    pub fn mean(&self) -> f64 {
        match self.shape {
            Shape::Sine { mean, .. } => mean,
            Shape::Square { fast, slow, duty, .. } => 1.0 / (duty / fast + (1.0 - duty) / slow),
        }
    }

    fn period(&self) -> f64 {
        match self.shape {
            Shape::Sine { period, .. } | Shape::Square { period, .. } => period,
        }
    }

    /// Worker i's phase shift in time units (φ_i·P).
    #[inline]
    fn offset(&self, worker: usize) -> f64 {
        if self.spread_phase { self.period() * worker as f64 / self.workers as f64 } else { 0.0 }
    }

    /// ∫_a^b p(s) ds at scale 1 for worker `worker`.
    pub fn work(&self, worker: usize, a: f64, b: f64) -> f64 {
        let shift = self.offset(worker);
        match self.shape {
            Shape::Sine { .. } => self.sine_primitive(b + shift) - self.sine_primitive(a + shift),
            Shape::Square { .. } => self.square_primitive(b + shift) - self.square_primitive(a + shift),
        }
    }

    /// The duration of a step of worker `worker` at scale `scale` (its durations are `scale`
    /// times longer) that starts at `start`: the d with ∫_start^{start+d} p = scale.
    pub fn duration(&self, worker: usize, scale: f64, start: f64) -> f64 {
        let t = start + self.offset(worker);
        match self.shape {
            Shape::Sine { mean, amplitude, period } => {
                let (lo, hi) = (scale * mean / (1.0 + amplitude), scale * mean / (1.0 - amplitude));
                if amplitude == 0.0 {
                    return scale * mean;
                }
                let base = self.sine_primitive(t);
                let rate = |x: f64| (1.0 + amplitude * (std::f64::consts::TAU * x / period).sin()) / mean;
                let (mut lo, mut hi, mut d) = (lo, hi, scale * mean);
                for _ in 0..MAX_NEWTON {
                    let f = self.sine_primitive(t + d) - base - scale;
                    if f == 0.0 {
                        return d;
                    }
                    if f > 0.0 {
                        hi = d;
                    } else {
                        lo = d;
                    }
                    let next = d - f / rate(t + d);
                    let next = if next > lo && next < hi { next } else { 0.5 * (lo + hi) };
                    if next == d || hi - lo <= 4.0 * f64::EPSILON * hi {
                        return next;
                    }
                    d = next;
                }
                d
            }
            Shape::Square { fast, slow, period, duty } => {
                // Walk from t through the fast and slow parts of the periods until `scale` units
                // of work are done.
                let boundary = duty * period;
                let per_period = boundary / fast + (period - boundary) / slow;
                let mut need = scale;
                let k = (t / period).floor();
                let mut x = (t - k * period).clamp(0.0, period); // position within the period
                if x >= period {
                    x = 0.0;
                }
                let mut d = 0.0;
                loop {
                    let (end, step) = if x < boundary { (boundary, fast) } else { (period, slow) };
                    let available = (end - x) / step;
                    if available >= need {
                        return d + need * step;
                    }
                    need -= available;
                    d += end - x;
                    x = if end >= period { 0.0 } else { end };
                    if x == 0.0 && need > per_period {
                        let whole = (need / per_period).floor();
                        need -= whole * per_period;
                        d += whole * period;
                    }
                }
            }
        }
    }

    /// F(t) = ∫_0^t p for the sine shape (scale 1, no phase).
    fn sine_primitive(&self, t: f64) -> f64 {
        let Shape::Sine { mean, amplitude, period } = self.shape else { unreachable!("sine only") };
        (t - amplitude * period / std::f64::consts::TAU * ((std::f64::consts::TAU * t / period).cos() - 1.0)) / mean
    }

    /// F(t) = ∫_0^t p for the square shape (scale 1, no phase).
    fn square_primitive(&self, t: f64) -> f64 {
        let Shape::Square { fast, slow, period, duty } = self.shape else { unreachable!("square only") };
        let boundary = duty * period;
        let per_period = boundary / fast + (period - boundary) / slow;
        let k = (t / period).floor();
        let x = t - k * period;
        k * per_period + if x < boundary { x / fast } else { boundary / fast + (x - boundary) / slow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(text: &str, workers: usize) -> RateModel {
        RateModel::from_spec(&Spec::parse("t", text).unwrap(), workers).unwrap()
    }

    #[test]
    fn durations_invert_the_work_integral() {
        for text in [
            "sine(mean=2, amplitude=0.7, period=5)",
            "sine(mean=1, amplitude=0, period=3)",
            "square(fast=1, slow=3, period=4, duty=0.25)",
            "square(fast=0.1, slow=5, period=2, duty=0.9, phase=same)",
        ] {
            let m = model(text, 4);
            for w in 0..4 {
                for start in [0.0, 0.3, 7.77, 1234.5] {
                    for scale in [0.5, 1.0, 3.0, 40.0] {
                        let d = m.duration(w, scale, start);
                        let done = m.work(w, start, start + d);
                        assert!(
                            (done - scale).abs() < 1e-9 * scale.max(1.0),
                            "{text} w{w} start {start}: {done} vs {scale}"
                        );
                    }
                }
            }
            assert_eq!(model(&m.to_spec(), 4), m);
        }
    }

    #[test]
    fn square_walks_through_spells() {
        // fast = 1 on [0, 1), slow = 3 on [1, 4): from 0.5, half a step fast, then 1.5 time
        // units of the slow rate finish the other half.
        let m = model("square(fast=1, slow=3, period=4, duty=0.25, phase=same)", 1);
        assert!((m.duration(0, 1.0, 0.5) - 2.0).abs() < 1e-12);
        assert!((m.mean() - 1.0 / (0.25 + 0.75 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (text, needle) in [
            ("sine(amplitude=1)", "amplitude = 1"),
            ("sine(mean=0)", "mean = 0"),
            ("square(duty=0)", "duty = 0"),
            ("square(slow=-1)", "slow = -1"),
            ("sine(phase=random)", "phase = 'random'"),
            ("sine(speed=1)", "unknown key 'speed'"),
        ] {
            let e = RateModel::from_spec(&Spec::parse("compute time", text).unwrap(), 2).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
