//! Rescaled asynchronous SGD (Mahran, Maranjyan, Richtárik 2026; specs/baselines.md §8): the
//! asynchronous SGD template ([`super::asgd`]) with a worker-specific stepsize proportional to the
//! worker's computation time, γ_i = γ·τ_i/τ_ref. Under the fixed computation model worker i
//! applies about T/τ_i gradients in a window of length T, each with stepsize γτ_i/τ_ref, so every
//! worker contributes the same aggregate stepsize γT/τ_ref: the iterates follow the uniform
//! objective (1/M)Σ_i f_i instead of vanilla ASGD's speed-weighted Σ_i (1/τ_i) f_i / Σ_j (1/τ_j).
//!
//! Two choices are not recoverable from the paper's abstract and are options here
//! (specs/baselines.md §8, \[I\]):
//!
//! - **Normalisation τ_ref** ([`Reference`]): `max` (default) — the slowest worker gets γ and
//!   every worker's aggregate step per cycle of length τ_max is γ, so γ keeps its meaning as the
//!   largest stepsize; `mean` — τ_ref = (1/M)Σ_i τ_i, so the stepsizes average to γ.
//! - **Where τ_i comes from** ([`StepTimes`]): `model` (default) — the mean step time of worker i
//!   under the configured compute-time model (exactly τ_i in the fixed model); `observed` — the
//!   running mean of worker i's step durations seen so far (the paper's theory assumes known fixed
//!   τ_i; this is the practical substitute). With `observed`, τ_ref is taken over the workers
//!   observed so far, so early stepsizes of fast workers are relative to the slowest worker seen
//!   yet; τ_ref = max is then recomputed in O(M) per update.

use crate::error::{Error, Result};

/// How τ_ref is chosen; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// τ_ref = max_i τ_i (default).
    Max,
    /// τ_ref = (1/M) Σ_i τ_i.
    Mean,
}

impl Reference {
    /// Parses `max` or `mean`.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        match text.trim() {
            "max" => Ok(Reference::Max),
            "mean" => Ok(Reference::Mean),
            other => Err(Error::invalid(what, other, "expected max or mean")),
        }
    }
}

/// Where the τ_i come from; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepTimes {
    /// The compute-time model's per-worker mean (default).
    Model,
    /// The running mean of observed step durations.
    Observed,
}

impl StepTimes {
    /// Parses `model` or `observed`.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        match text.trim() {
            "model" => Ok(StepTimes::Model),
            "observed" => Ok(StepTimes::Observed),
            other => Err(Error::invalid(what, other, "expected model or observed")),
        }
    }
}

/// The stepsize factors τ_i/τ_ref of Rescaled ASGD.
#[derive(Clone, Debug, PartialEq)]
pub struct Rescaling {
    reference: Reference,
    source: StepTimes,
    /// Current τ_i estimates (model: fixed; observed: running means, 0 until the first one).
    taus: Vec<f64>,
    /// Observed durations per worker (observed mode).
    sums: Vec<f64>,
    counts: Vec<u64>,
    /// τ_ref for the current estimates.
    tau_ref: f64,
}

impl Rescaling {
    /// Factors from known per-worker mean step times τ_i (the compute-time model's means).
    pub fn from_model(taus: Vec<f64>, reference: Reference) -> Result<Self> {
        if taus.is_empty() {
            return Err(Error::invalid("rescaled ASGD step times", "[]", "needs one τ_i per worker"));
        }
        if let Some((i, t)) = taus.iter().enumerate().find(|(_, t)| !(t.is_finite() && **t > 0.0)) {
            return Err(Error::invalid(
                format!("rescaled ASGD step time τ_{i}"),
                t,
                "must be a finite mean > 0 (use step_times = \"observed\" for heavy-tailed times)",
            ));
        }
        let workers = taus.len();
        let mut r =
            Rescaling { reference, source: StepTimes::Model, taus, sums: Vec::new(), counts: Vec::new(), tau_ref: 0.0 };
        r.tau_ref = r.reference_time(workers);
        Ok(r)
    }

    /// Factors from running means of the step durations observed during the run.
    pub fn observed(workers: usize, reference: Reference) -> Self {
        Rescaling {
            reference,
            source: StepTimes::Observed,
            taus: vec![0.0; workers],
            sums: vec![0.0; workers],
            counts: vec![0; workers],
            tau_ref: 0.0,
        }
    }

    /// Where the τ_i come from.
    pub fn source(&self) -> StepTimes {
        self.source
    }

    /// The current τ_i estimates (0 for a worker not observed yet).
    pub fn taus(&self) -> &[f64] {
        &self.taus
    }

    /// The current τ_ref.
    pub fn tau_ref(&self) -> f64 {
        self.tau_ref
    }

    fn reference_time(&self, observed: usize) -> f64 {
        match self.reference {
            Reference::Max => self.taus.iter().copied().fold(0.0, f64::max),
            Reference::Mean => self.taus.iter().sum::<f64>() / observed.max(1) as f64,
        }
    }

    /// Worker `worker` took `duration` for one step (observed mode; ignored with model times).
    pub fn observe(&mut self, worker: usize, duration: f64) {
        if self.source != StepTimes::Observed {
            return;
        }
        self.sums[worker] += duration;
        self.counts[worker] += 1;
        self.taus[worker] = self.sums[worker] / self.counts[worker] as f64;
        let observed = self.counts.iter().filter(|&&c| c > 0).count();
        self.tau_ref = self.reference_time(observed);
    }

    /// γ_i/γ = τ_i/τ_ref.
    #[inline]
    pub fn factor(&self, worker: usize) -> f64 {
        self.taus[worker] / self.tau_ref
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_follow_the_normalisation() {
        let r = Rescaling::from_model(vec![1.0, 2.0, 4.0], Reference::Max).unwrap();
        assert_eq!((0..3).map(|i| r.factor(i)).collect::<Vec<_>>(), vec![0.25, 0.5, 1.0]);
        let r = Rescaling::from_model(vec![1.0, 2.0, 3.0], Reference::Mean).unwrap();
        assert_eq!((0..3).map(|i| r.factor(i)).collect::<Vec<_>>(), vec![0.5, 1.0, 1.5]);
        let mut o = Rescaling::observed(2, Reference::Max);
        o.observe(0, 1.0);
        assert_eq!(o.factor(0), 1.0);
        o.observe(1, 3.0);
        o.observe(0, 2.0);
        assert_eq!((o.factor(0), o.factor(1)), (0.5, 1.0));
        assert!(
            Rescaling::from_model(vec![1.0, f64::INFINITY], Reference::Max).unwrap_err().to_string().contains("τ_1")
        );
    }
}
