//! Splitting a training set over M workers, and drawing minibatches from one worker's shard.
//!
//! - [`Partition::Iid`]: a seeded random permutation cut into M contiguous shards of equal size
//!   (`torch.randperm` in the paper's `impact_K.py`).
//! - [`Partition::Sorted`]: the paper's non-i.i.d. split (`Comparisons.py`): indices stably sorted
//!   by label, cut into M contiguous shards. With M = 20 on CIFAR-10 (balanced classes) every
//!   worker holds one class and every class is on two workers; on the embedded digits, whose
//!   classes are not exactly balanced, half of the shards straddle a class boundary (at least
//!   80 % of every shard is one class, tested).
//! - [`Partition::Dirichlet`]: label skew; for each class, proportions over the workers are drawn
//!   from a symmetric Dirichlet(α) and the class's shuffled indices are cut accordingly. Small α
//!   gives few classes per worker, large α approaches i.i.d.
//!
//! When M does not divide the number of samples, the first `n mod M` shards of the equal-size
//! partitions get one sample more, so no sample is dropped.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Gamma};

use super::Dataset;
use crate::{Error, Result};

/// How samples are assigned to workers.
#[derive(Clone, Debug, PartialEq)]
pub enum Partition {
    /// Random equal shards.
    Iid,
    /// The paper's non-i.i.d. split: sorted by label, contiguous equal shards.
    Sorted,
    /// Dirichlet(α) label skew.
    Dirichlet {
        /// Concentration α > 0.
        alpha: f64,
    },
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Iid => write!(f, "iid"),
            Partition::Sorted => write!(f, "sorted"),
            Partition::Dirichlet { alpha } => write!(f, "dirichlet(alpha={alpha})"),
        }
    }
}

impl FromStr for Partition {
    type Err = Error;

    /// Parses `iid`, `sorted` (also `noniid`, `non-iid`), `dirichlet(alpha=0.5)` or
    /// `dirichlet(0.5)`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        let fail = |reason: &str| Error::parse("partition", s, reason);
        match t.as_str() {
            "iid" | "i.i.d." => return Ok(Partition::Iid),
            "sorted" | "noniid" | "non-iid" => return Ok(Partition::Sorted),
            _ => {}
        }
        let Some(inner) = t.strip_prefix("dirichlet(").and_then(|r| r.strip_suffix(')')) else {
            return Err(fail("expected iid, sorted (noniid) or dirichlet(alpha=A)"));
        };
        let value = inner.trim();
        let value = match value.split_once('=') {
            Some((key, v)) if key.trim() == "alpha" => v.trim(),
            Some((key, _)) => {
                return Err(fail(&format!("unknown key '{}', expected alpha", key.trim())));
            }
            None => value,
        };
        let alpha: f64 = value.parse().map_err(|_| fail(&format!("alpha '{value}' is not a number")))?;
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(fail("alpha must be a finite number > 0"));
        }
        Ok(Partition::Dirichlet { alpha })
    }
}

/// Splits the samples with `labels` (in `0..classes`) over `workers` workers; returns each
/// worker's sample indices. Fails if a worker would get no sample.
pub fn partition(
    labels: &[u32],
    classes: usize,
    workers: usize,
    how: &Partition,
    rng: &mut impl Rng,
) -> Result<Vec<Vec<u32>>> {
    let n = labels.len();
    if workers == 0 {
        return Err(Error::invalid("workers", workers, "must be at least 1"));
    }
    if n < workers {
        return Err(Error::invalid(
            "workers",
            workers,
            format!("more workers than the {n} training samples: some would have no data"),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::invalid("label", l, format!("must be below the {classes} classes")));
    }
    match how {
        Partition::Iid => {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.shuffle(rng);
            Ok(equal_shards(&order, workers))
        }
        Partition::Sorted => {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by_key(|&i| labels[i as usize]); // stable
            Ok(equal_shards(&order, workers))
        }
        Partition::Dirichlet { alpha } => dirichlet(labels, classes, workers, *alpha, rng),
    }
}

fn equal_shards(order: &[u32], workers: usize) -> Vec<Vec<u32>> {
    let (base, extra) = (order.len() / workers, order.len() % workers);
    let mut shards = Vec::with_capacity(workers);
    let mut start = 0;
    for w in 0..workers {
        let len = base + usize::from(w < extra);
        shards.push(order[start..start + len].to_vec());
        start += len;
    }
    shards
}

/// Attempts before giving up on a Dirichlet draw that leaves some worker empty.
const DIRICHLET_ATTEMPTS: usize = 100;

fn dirichlet(labels: &[u32], classes: usize, workers: usize, alpha: f64, rng: &mut impl Rng) -> Result<Vec<Vec<u32>>> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::invalid("dirichlet alpha", alpha, "must be a finite number > 0"));
    }
    let gamma = Gamma::new(alpha, 1.0).map_err(|e| Error::invalid("dirichlet alpha", alpha, e.to_string()))?;
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i as u32);
    }
    for _ in 0..DIRICHLET_ATTEMPTS {
        let mut shards: Vec<Vec<u32>> = vec![Vec::new(); workers];
        for members in &by_class {
            let mut members = members.clone();
            members.shuffle(rng);
            let mut weights: Vec<f64> = (0..workers).map(|_| gamma.sample(rng)).collect();
            let total: f64 = weights.iter().sum();
            if total > 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            } else {
                weights.fill(1.0 / workers as f64);
            }
            let m = members.len();
            let mut cumulative = 0.0;
            let mut start = 0;
            for (w, &p) in weights.iter().enumerate() {
                cumulative += p;
                let end = if w + 1 == workers { m } else { ((cumulative * m as f64).round() as usize).clamp(start, m) };
                shards[w].extend_from_slice(&members[start..end]);
                start = end;
            }
        }
        if shards.iter().all(|s| !s.is_empty()) {
            return Ok(shards);
        }
    }
    Err(Error::invalid(
        "dirichlet alpha",
        alpha,
        format!(
            "{DIRICHLET_ATTEMPTS} draws all left some of the {workers} workers without data; use a larger alpha or fewer workers"
        ),
    ))
}

/// Draws `batch` samples uniformly with replacement from `shard` (indices into `data`), writing
/// their pixels into `x` and labels into `y` (both cleared first; their capacity is reused).
///
/// # Panics
///
/// If `shard` is empty and `batch > 0`.
pub fn sample_batch(
    data: &Dataset,
    shard: &[u32],
    batch: usize,
    rng: &mut impl Rng,
    x: &mut Vec<f32>,
    y: &mut Vec<u32>,
) {
    x.clear();
    y.clear();
    assert!(batch == 0 || !shard.is_empty(), "cannot sample from an empty shard");
    for _ in 0..batch {
        let i = shard[rng.random_range(0..shard.len())] as usize;
        x.extend_from_slice(data.image(i));
        y.push(data.labels[i]);
    }
}
