//! Local SGD on a communication schedule (Spiridonoff, Olshevsky & Paschalidis, NeurIPS 2021;
//! specs/baselines.md §9): N workers take T local steps in total, synchronously in steps, and
//! average their models after step τ_r for every τ_r in the schedule
//! C = {τ_0 = 0 < τ_1 < … < τ_R = T}. Round r (from 0) is H_{r+1} = τ_{r+1} − τ_r local steps
//! from the common average, waiting for every worker (round time H·τ_max + communication in the
//! fixed model, inferred), so the round driver and per-round kernel play it like PASGD with a
//! varying number of steps. The schedules are those of [`crate::theory::spiridonoff`]:
//!
//! - `increasing` (the paper's method): R = N rounds with intervals H_r ≈ a·r growing linearly,
//!   so the number of communications does not grow with T; `increasing(rounds=R)` for another R;
//! - `one_shot`: C = {0, T}, a single averaging at the end (one-shot averaging, OSA);
//! - `every_step`: fully synchronous SGD; `constant(interval=H)`, `stich` (H = ⌊√(T/N)⌋),
//!   `haddadpour` (H = ⌊(T²/N)^{1/3}⌋), `equal(rounds=R)`;
//! - `budget(power=1/2)`, `budget(power=3/4)`, …: R = ⌈N^p⌉ rounds for p ∈ {1/4, 1/3, 1/2, 3/4,
//!   1}, with `intervals=increasing` (default) or `intervals=equal` — the √N and N^{3/4} budgets
//!   the paper shows to be too few for linear speed-up.
//!
//! The step size of global step t (from 0) is the constant η of the config, or, as in the
//! authors' notebooks, `inverse(alpha=3, mu=1, beta=1)`: α_t = α/(μ(t + β)) (`quadratic.ipynb`),
//! or `inverse_capped(eta=2, smoothness=2)`: α_t = min(η/(t + 1), 1/L) (`speedup.ipynb`).

use super::round::{RoundAlgorithm, uniform_over_uploaders};
use crate::error::{Error, Result};
use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::theory::spiridonoff::{self, Budget};
use crate::timing::spec::Spec;
use crate::trace::RoundRecord;

/// Which communication schedule; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Increasing intervals with R rounds (None: R = N).
    Increasing {
        /// R.
        rounds: Option<u64>,
    },
    /// C = {0, T}.
    OneShot,
    /// Averaging after every step.
    EveryStep,
    /// Every H steps.
    Constant {
        /// H.
        interval: u64,
    },
    /// [Stich'19]: H = ⌊√(T/N)⌋.
    Stich,
    /// [Haddadpour et al.'19]: H = ⌊(T²/N)^{1/3}⌋.
    Haddadpour,
    /// R rounds of equal length.
    Equal {
        /// R.
        rounds: u64,
    },
    /// R = ⌈N^p⌉ rounds.
    Budget {
        /// p.
        budget: Budget,
        /// Increasing (true) or equal (false) intervals.
        increasing: bool,
    },
}

impl Schedule {
    /// Parses a schedule spec; `what` names the key for errors.
    pub fn parse(what: &str, text: &str) -> Result<Schedule> {
        let s = Spec::parse(what, text)?;
        let count = |key: &str| -> Result<Option<u64>> {
            match s.number(key, Some(0))? {
                None => Ok(None),
                Some(v) if v >= 1.0 && v.fract() == 0.0 && v < 1e15 => Ok(Some(v as u64)),
                Some(v) => {
                    Err(s.error(format!("{key} = {} must be a whole number >= 1, below 10^15", crate::error::shown(v))))
                }
            }
        };
        let required = |key: &str| -> Result<u64> { count(key)?.ok_or_else(|| s.error(format!("missing {key}"))) };
        Ok(match s.name.as_str() {
            "increasing" => {
                s.check_keys(&["rounds"], 1)?;
                Schedule::Increasing { rounds: count("rounds")? }
            }
            "one_shot" | "osa" => {
                s.check_keys(&[], 0)?;
                Schedule::OneShot
            }
            "every_step" | "synchronous" => {
                s.check_keys(&[], 0)?;
                Schedule::EveryStep
            }
            "constant" => {
                s.check_keys(&["interval"], 1)?;
                Schedule::Constant { interval: required("interval")? }
            }
            "stich" => {
                s.check_keys(&[], 0)?;
                Schedule::Stich
            }
            "haddadpour" => {
                s.check_keys(&[], 0)?;
                Schedule::Haddadpour
            }
            "equal" => {
                s.check_keys(&["rounds"], 1)?;
                Schedule::Equal { rounds: required("rounds")? }
            }
            "budget" => {
                s.check_keys(&["power", "intervals"], 1)?;
                let power =
                    s.raw("power", Some(0)).ok_or_else(|| s.error("missing power (1/4, 1/3, 1/2, 3/4 or 1)"))?;
                let budget = match power.replace(' ', "").as_str() {
                    "1/4" | "0.25" => Budget::QuarterRoot,
                    "1/3" => Budget::CubeRoot,
                    "1/2" | "0.5" => Budget::SquareRoot,
                    "3/4" | "0.75" => Budget::ThreeQuarters,
                    "1" => Budget::Linear,
                    other => return Err(s.error(format!("power = {other} must be 1/4, 1/3, 1/2, 3/4 or 1"))),
                };
                let increasing = match s.raw("intervals", None).unwrap_or("increasing").trim() {
                    "increasing" => true,
                    "equal" | "constant" => false,
                    other => return Err(s.error(format!("intervals = {other} must be increasing or equal"))),
                };
                Schedule::Budget { budget, increasing }
            }
            other => {
                return Err(s.error(format!(
                    "unknown schedule '{other}' (expected increasing, one_shot, every_step, constant(interval=H), stich, haddadpour, equal(rounds=R) or budget(power=1/2))"
                )));
            }
        })
    }

    /// C = {0, τ_1, …, T} for T total steps and N workers.
    pub fn steps(&self, total_steps: u64, workers: u64) -> Result<Vec<u64>> {
        let (t, n) = (total_steps, workers);
        // a schedule averages at most once per step: more rounds, or a longer interval, than T
        // steps is a mistake, not something to round away
        let given = match *self {
            Schedule::Increasing { rounds: Some(r) } | Schedule::Equal { rounds: r } => Some(("rounds", r)),
            Schedule::Constant { interval } => Some(("interval", interval)),
            _ => None,
        };
        if let Some((key, value)) = given
            && value > t
        {
            return Err(Error::invalid(
                format!("schedule {key}"),
                value,
                format!("must be at most total_steps (T) = {t}"),
            ));
        }
        match *self {
            Schedule::Increasing { rounds } => spiridonoff::increasing(t, rounds.unwrap_or(n)),
            Schedule::OneShot => spiridonoff::one_shot(t),
            Schedule::EveryStep => spiridonoff::every_step(t),
            Schedule::Constant { interval } => spiridonoff::constant_interval(t, interval),
            Schedule::Stich => spiridonoff::constant_interval(t, spiridonoff::stich_interval(t, n)?),
            Schedule::Haddadpour => spiridonoff::constant_interval(t, spiridonoff::haddadpour_interval(t, n)?),
            Schedule::Equal { rounds } => spiridonoff::equal_rounds(t, rounds),
            Schedule::Budget { budget, increasing: true } => spiridonoff::budget_increasing(t, n, budget),
            Schedule::Budget { budget, increasing: false } => spiridonoff::budget_constant(t, n, budget),
        }
    }
}

/// The step size of global step t; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepSize {
    /// The config's η.
    Constant,
    /// α/(μ(t + β)).
    Inverse {
        /// α.
        alpha: f64,
        /// μ.
        mu: f64,
        /// β.
        beta: f64,
    },
    /// min(η/(t + 1), 1/L).
    InverseCapped {
        /// η.
        eta: f64,
        /// L.
        smoothness: f64,
    },
}

impl StepSize {
    /// Parses a step-size spec; `what` names the key for errors.
    pub fn parse(what: &str, text: &str) -> Result<StepSize> {
        let s = Spec::parse(what, text)?;
        let positive = |key: &str, default: Option<f64>| -> Result<f64> {
            let v = match (s.number(key, None)?, default) {
                (Some(v), _) | (None, Some(v)) => v,
                (None, None) => return Err(s.error(format!("missing {key}"))),
            };
            if !(v.is_finite() && v > 0.0) {
                return Err(s.error(format!("{key} = {v} must be a finite number > 0")));
            }
            Ok(v)
        };
        Ok(match s.name.as_str() {
            "constant" => {
                s.check_keys(&[], 0)?;
                StepSize::Constant
            }
            "inverse" => {
                s.check_keys(&["alpha", "mu", "beta"], 0)?;
                StepSize::Inverse {
                    alpha: positive("alpha", Some(3.0))?,
                    mu: positive("mu", Some(1.0))?,
                    beta: positive("beta", Some(1.0))?,
                }
            }
            "inverse_capped" => {
                s.check_keys(&["eta", "smoothness", "l"], 0)?;
                let smoothness = match s.raw("l", None) {
                    Some(_) => positive("l", None)?,
                    None => positive("smoothness", None)?,
                };
                StepSize::InverseCapped { eta: positive("eta", None)?, smoothness }
            }
            other => {
                return Err(s.error(format!(
                    "unknown step size '{other}' (expected constant, inverse(alpha, mu, beta) or inverse_capped(eta, smoothness))"
                )));
            }
        })
    }

    /// α_t for global step t, given the config's constant η.
    pub fn at(&self, t: u64, lr: f64) -> f64 {
        match *self {
            StepSize::Constant => lr,
            StepSize::Inverse { alpha, mu, beta } => alpha / (mu * (t as f64 + beta)),
            StepSize::InverseCapped { eta, smoothness } => (eta / (t as f64 + 1.0)).min(1.0 / smoothness),
        }
    }
}

/// Checked settings of `local-sgd` in an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// T.
    pub total_steps: u64,
    /// The schedule C.
    pub schedule: Schedule,
    /// α_t.
    pub step_size: StepSize,
}

/// Local SGD on a fixed schedule, for training; see the module docs.
#[derive(Clone, Debug)]
pub struct ScheduledLocalSgd {
    /// C = {τ_0 = 0, …, τ_R = T}.
    pub schedule: Vec<u64>,
}

impl ScheduledLocalSgd {
    /// The algorithm for `workers` workers.
    pub fn new(settings: &Settings, workers: usize) -> Result<Self> {
        let schedule = settings.schedule.steps(settings.total_steps, workers as u64)?;
        if let Some(w) = schedule.windows(2).find(|w| w[1] - w[0] >= u64::from(crate::sim::MAX_STEPS_PER_ROUND)) {
            let why = format!("its schedule has an interval of {} local steps; below 2^28 are simulated", w[1] - w[0]);
            return Err(Error::invalid("total_steps (T)", settings.total_steps, why));
        }
        Ok(ScheduledLocalSgd { schedule })
    }

    /// R, the number of communication rounds.
    pub fn rounds(&self) -> u64 {
        self.schedule.len() as u64 - 1
    }

    /// τ_r: global steps taken before round r.
    pub fn first_step(&self, round: u64) -> u64 {
        self.schedule[round as usize]
    }

    /// H_{r+1} = τ_{r+1} − τ_r, or None after the last round.
    pub fn local_steps(&self, round: u64) -> Option<u32> {
        let r = round as usize;
        (r + 1 < self.schedule.len()).then(|| (self.schedule[r + 1] - self.schedule[r]) as u32)
    }
}

impl RoundAlgorithm for ScheduledLocalSgd {
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) {
        plan.targets.fill(self.local_steps(round).unwrap_or(0));
        plan.wait = plan.targets.len();
        plan.cap = None;
    }

    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        uniform_over_uploaders(record, jobs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_and_step_sizes_parse() {
        let n = 20;
        let s = Schedule::parse("schedule", "increasing").unwrap().steps(1000, n).unwrap();
        assert_eq!(s.len(), 21);
        assert_eq!(&s[..5], &[0, 4, 14, 28, 47]);
        assert_eq!(Schedule::parse("s", "one_shot").unwrap().steps(1000, n).unwrap(), vec![0, 1000]);
        let sqrt = Schedule::parse("s", "budget(power=1/2)").unwrap().steps(1000, n).unwrap();
        assert_eq!(sqrt.len() - 1, 5); // ⌈√20⌉ = 5
        let equal = Schedule::parse("s", "budget(1/2, intervals=equal)").unwrap().steps(1000, n).unwrap();
        assert_eq!(equal, vec![0, 200, 400, 600, 800, 1000]);
        assert_eq!(
            Schedule::parse("s", "constant(interval=300)").unwrap().steps(1000, n).unwrap(),
            vec![0, 300, 600, 900, 1000]
        );
        assert!(Schedule::parse("s", "budget(power=2/3)").is_err());
        assert!(Schedule::parse("s", "fibonacci").unwrap_err().to_string().contains("fibonacci"));
        assert!(Schedule::parse("s", "constant(interval=0)").is_err());
        let a = StepSize::parse("lr", "inverse(alpha=3, mu=1, beta=1)").unwrap();
        assert_eq!(a.at(0, 0.1), 3.0);
        assert_eq!(a.at(2, 0.1), 1.0);
        let b = StepSize::parse("lr", "inverse_capped(eta=2, smoothness=2)").unwrap();
        assert_eq!((b.at(0, 0.1), b.at(7, 0.1)), (0.5, 0.25));
        assert_eq!(StepSize::parse("lr", "constant").unwrap().at(5, 0.1), 0.1);
        assert!(StepSize::parse("lr", "inverse(mu=0)").is_err());
    }
}
