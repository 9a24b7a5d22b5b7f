//! `summary.json` and the closing table: per algorithm, over its seeds, the time, communication
//! and rounds to reach the target accuracy (mean over the seeds that reached it, with the
//! standard deviation and how many did), and the final test accuracy (mean over the runs that
//! did not diverge: a diverged model's accuracy says nothing). On convex problems with a
//! known optimum: the final distance to the optimum and, when the problem has one, to the
//! speed-weighted optimum Σ_m (1/τ_m) f_m / Σ_m (1/τ_m) that vanilla asynchronous SGD converges
//! to, and which of the two the algorithm ends near (within half the distance between them), if
//! either.

use serde::Serialize;

use super::monitor::{RunResult, Status};

/// Per-algorithm results over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct AlgorithmSummary {
    /// Label.
    pub name: String,
    /// Mean simulated time to the target over the seeds that reached it (null: none did).
    pub time_to_target: Option<f64>,
    /// Its standard deviation over those seeds (null for fewer than two).
    pub time_to_target_sd: Option<f64>,
    /// Mean messages to the target.
    pub comms_to_target: Option<f64>,
    /// Its standard deviation.
    pub comms_to_target_sd: Option<f64>,
    /// Mean bytes of those messages.
    pub bytes_to_target: Option<f64>,
    /// Its standard deviation over the seeds.
    pub bytes_to_target_sd: Option<f64>,
    /// Mean rounds to the target.
    pub rounds_to_target: Option<f64>,
    /// Its standard deviation.
    pub rounds_to_target_sd: Option<f64>,
    /// Seeds that reached the target.
    pub reached: usize,
    /// Seeds run.
    pub runs: usize,
    /// Mean final test accuracy over the runs that did not diverge.
    pub final_test_accuracy: Option<f64>,
    /// Its standard deviation.
    pub final_test_accuracy_sd: Option<f64>,
    /// Mean final distance to the optimum (convex problems).
    pub final_distance_to_optimum: Option<f64>,
    /// Its standard deviation over the seeds.
    pub final_distance_to_optimum_sd: Option<f64>,
    /// Mean final distance to the speed-weighted optimum (where the problem defines one).
    pub final_distance_to_weighted_optimum: Option<f64>,
    /// Its standard deviation over the seeds.
    pub final_distance_to_weighted_optimum_sd: Option<f64>,
    /// The optimum the final models are near on average: `optimum` (the true one of
    /// (1/M) Σ_m f_m) or `speed-weighted optimum` when within half the distance between the two
    /// of it, else `neither`.
    pub nearest_optimum: Option<String>,
    /// Runs that diverged.
    pub diverged: usize,
    /// Mean over the seeds of each run's mean delay δ of the applied results (asynchronous
    /// methods that track it; each run's full staleness record is under `runs`).
    pub mean_delay: Option<f64>,
    /// Largest δ applied in any seed.
    pub max_delay: Option<u64>,
}

/// Contents of `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Experiment name.
    pub experiment: String,
    /// Crate version.
    pub stsyn_version: String,
    /// The git commit stsyn was built from.
    pub stsyn_commit: String,
    /// `running`, `complete`, `interrupted`, `failed`, or `aborted` (a second interrupt).
    pub status: String,
    /// Why the run failed or was aborted.
    pub error: Option<String>,
    /// The target accuracy.
    pub target_accuracy: Option<f64>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Per algorithm.
    pub algorithms: Vec<AlgorithmSummary>,
    /// Every run.
    pub runs: Vec<RunResult>,
}

/// Mean and sample standard deviation.
fn mean_sd(xs: &[f64]) -> (Option<f64>, Option<f64>) {
    if xs.is_empty() {
        return (None, None);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.len() > 1).then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), sd)
}

impl Summary {
    /// Builds the summary of `runs` for the algorithms in `labels` (in that order).
    pub fn new(
        experiment: &str,
        status: &str,
        target: Option<f64>,
        seeds: &[u64],
        labels: &[String],
        runs: &[RunResult],
    ) -> Self {
        let algorithms = labels
            .iter()
            .map(|name| {
                let mine: Vec<&RunResult> = runs.iter().filter(|r| &r.name == name).collect();
                let reached: Vec<_> = mine.iter().filter_map(|r| r.reached).collect();
                let pick =
                    |f: &dyn Fn(&super::monitor::Reached) -> f64| mean_sd(&reached.iter().map(f).collect::<Vec<_>>());
                let (time, time_sd) = pick(&|r| r.time);
                let (comms, comms_sd) = pick(&|r| r.comms as f64);
                let (bytes, bytes_sd) = pick(&|r| r.bytes as f64);
                let (rounds, rounds_sd) = pick(&|r| r.rounds as f64);
                let finals: Vec<_> =
                    mine.iter().filter(|r| r.status != Status::Diverged).filter_map(|r| r.final_eval).collect();
                let (acc, acc_sd) = mean_sd(&finals.iter().filter_map(|e| e.test_accuracy).collect::<Vec<_>>());
                let dists: Vec<f64> = finals.iter().filter_map(|e| e.distance_to_optimum).collect();
                let weighted: Vec<f64> = finals.iter().filter_map(|e| e.distance_to_weighted_optimum).collect();
                let (dist, dist_sd) = mean_sd(&dists);
                let (wdist, wdist_sd) = mean_sd(&weighted);
                let (gap, _) = mean_sd(&finals.iter().filter_map(|e| e.optimum_gap).collect::<Vec<_>>());
                let staleness: Vec<_> = mine.iter().filter_map(|r| r.staleness.as_ref()).collect();
                let nearest = nearest_optimum(dist, wdist, gap).map(str::to_string);
                AlgorithmSummary {
                    name: name.clone(),
                    time_to_target: time,
                    time_to_target_sd: time_sd,
                    comms_to_target: comms,
                    comms_to_target_sd: comms_sd,
                    bytes_to_target: bytes,
                    bytes_to_target_sd: bytes_sd,
                    rounds_to_target: rounds,
                    rounds_to_target_sd: rounds_sd,
                    reached: reached.len(),
                    runs: mine.len(),
                    final_test_accuracy: acc,
                    final_test_accuracy_sd: acc_sd,
                    final_distance_to_optimum: dist,
                    final_distance_to_optimum_sd: dist_sd,
                    final_distance_to_weighted_optimum: wdist,
                    final_distance_to_weighted_optimum_sd: wdist_sd,
                    nearest_optimum: nearest,
                    diverged: mine.iter().filter(|r| r.status == Status::Diverged).count(),
                    mean_delay: mean_sd(&staleness.iter().filter_map(|s| s.mean_delay).collect::<Vec<_>>()).0,
                    max_delay: staleness.iter().map(|s| s.max_delay).max(),
                }
            })
            .collect();
        Summary {
            experiment: experiment.to_string(),
            stsyn_version: env!("CARGO_PKG_VERSION").to_string(),
            stsyn_commit: env!("STSYN_COMMIT").to_string(),
            status: status.to_string(),
            error: None,
            target_accuracy: target,
            seeds: seeds.to_vec(),
            algorithms,
            runs: runs.to_vec(),
        }
    }

    /// The closing table, one line per algorithm.
    pub fn table(&self) -> String {
        let pm = |m: Option<f64>, sd: Option<f64>, digits: usize| match (m, sd) {
            (Some(m), Some(sd)) => format!("{m:.digits$} ± {sd:.digits$}"),
            (Some(m), None) => format!("{m:.digits$}"),
            _ => "-".to_string(),
        };
        // simulated times come in any unit: three significant digits of the mean
        let time = |m: Option<f64>, sd: Option<f64>| match m {
            Some(m) if m != 0.0 && !(1e-3..1e6).contains(&m.abs()) => match sd {
                Some(sd) => format!("{m:.2e} ± {sd:.1e}"),
                None => format!("{m:.2e}"),
            },
            Some(m) => {
                let digits = if m == 0.0 { 0 } else { (2 - m.abs().log10().floor() as i32).clamp(0, 5) as usize };
                pm(Some(m), sd, digits)
            }
            None => pm(None, None, 0),
        };
        let target = self.target_accuracy.map_or("target".to_string(), |t| format!("{:.0} %", 100.0 * t));
        let w = self.algorithms.iter().map(|a| a.name.chars().count()).max().unwrap_or(0).max(16);
        // problems without a test accuracy (the quadratics) get only the distance table; when
        // every run diverged there is neither, and the accuracy table says so
        let has_distance = self.algorithms.iter().any(|a| a.final_distance_to_optimum.is_some());
        let has_accuracy =
            self.algorithms.iter().any(|a| a.final_test_accuracy.is_some() || a.reached > 0) || !has_distance;
        let mut out = String::new();
        if has_accuracy && self.target_accuracy.is_none() {
            // no target: nothing to reach
            out += &format!("{:<w$} {:>20}\n", "algorithm", "final accuracy");
            for a in &self.algorithms {
                let acc = pm(a.final_test_accuracy.map(|x| 100.0 * x), a.final_test_accuracy_sd.map(|x| 100.0 * x), 1);
                out += &format!("{:<w$} {:>18} %{}\n", a.name, acc, diverged_note(a.diverged));
            }
        } else if has_accuracy {
            out += &format!(
                "{:<w$} {:>9} {:>22} {:>16} {:>12} {:>20}\n",
                "algorithm",
                "reached",
                format!("time to {target}"),
                "comms to target",
                "rounds",
                "final accuracy"
            );
            for a in &self.algorithms {
                let acc = pm(a.final_test_accuracy.map(|x| 100.0 * x), a.final_test_accuracy_sd.map(|x| 100.0 * x), 1);
                out += &format!(
                    "{:<w$} {:>9} {:>22} {:>16} {:>12} {:>18} %{}\n",
                    a.name,
                    format!("{}/{}", a.reached, a.runs),
                    time(a.time_to_target, a.time_to_target_sd),
                    pm(a.comms_to_target, a.comms_to_target_sd, 0),
                    pm(a.rounds_to_target, a.rounds_to_target_sd, 1),
                    acc,
                    diverged_note(a.diverged),
                );
            }
        }
        if has_distance {
            out += &format!(
                "{:<w$} {:>26} {:>30} {:>24}\n",
                "algorithm", "distance to optimum", "to speed-weighted optimum", "near"
            );
            for a in &self.algorithms {
                out += &format!(
                    "{:<w$} {:>26} {:>30} {:>24}\n",
                    a.name,
                    pm(a.final_distance_to_optimum, a.final_distance_to_optimum_sd, 5),
                    pm(a.final_distance_to_weighted_optimum, a.final_distance_to_weighted_optimum_sd, 5),
                    a.nearest_optimum.as_deref().unwrap_or("-"),
                );
            }
        }
        out
    }
}

/// " (n diverged)" after a row whose means leave out n diverged runs.
fn diverged_note(diverged: usize) -> String {
    if diverged > 0 { format!(" ({diverged} diverged)") } else { String::new() }
}

/// `optimum` or `speed-weighted optimum` when the mean final distance to it is below half the
/// (mean) distance between the two optima, `neither` when the models are that far from both;
/// `both (the optima coincide)` when the two optima are one point (equal speeds), up to a
/// millionth of the distances.
fn nearest_optimum(dist: Option<f64>, weighted: Option<f64>, gap: Option<f64>) -> Option<&'static str> {
    let (d, w, gap) = (dist?, weighted?, gap?);
    Some(if gap <= 1e-6 * d.max(w) {
        "both (the optima coincide)"
    } else if d < gap / 2.0 && d <= w {
        "optimum"
    } else if w < gap / 2.0 {
        "speed-weighted optimum"
    } else {
        "neither"
    })
}

#[cfg(test)]
mod tests {
    use super::nearest_optimum;

    #[test]
    fn near_one_optimum_or_neither() {
        // Optima 0.4 apart: within 0.2 of one of them, or near neither.
        assert_eq!(nearest_optimum(Some(0.05), Some(0.38), Some(0.4)), Some("optimum"));
        assert_eq!(nearest_optimum(Some(0.41), Some(0.06), Some(0.4)), Some("speed-weighted optimum"));
        assert_eq!(nearest_optimum(Some(0.80), Some(0.42), Some(0.4)), Some("neither"));
        assert_eq!(nearest_optimum(Some(0.80), Some(0.42), None), None);
        // equal speeds: one optimum
        assert_eq!(nearest_optimum(Some(0.0985), Some(0.0985), Some(0.0)), Some("both (the optima coincide)"));
        assert_eq!(nearest_optimum(Some(0.0), Some(0.0), Some(0.0)), Some("both (the optima coincide)"));
    }
}
