//! Compute-time and communication-time models: the random durations the engine draws.
//!
//! A [`ComputeTime`] says how long one local step of worker m takes. It is a base [`Dist`]
//! (written `exp(mean=1)`, `pareto(shape=2.5)`, ...), optionally scaled per worker by
//! [`Speeds`], optionally drawn once per worker per round and reused for every step of that round
//! (`per_round(...)`, the model of the STSyn authors' `Comparisons.py`), or replayed from a CSV
//! [`Trace`] (`trace(file.csv)`). Two models of the asynchronous-SGD literature have per-worker
//! parameters beyond a common scale: `jitter(shift=1, sd=...)`, a fixed time τ_i plus half-normal
//! jitter |N(0, s_i²)| with a per-worker s_i (the Ringmaster script's 1 + √i + |N(0, i + 1)|),
//! and the time-varying rates of the universal computation model, `sine(...)` and `square(...)`
//! ([`rates`]), whose durations depend on when a step starts. A [`CommTime`] gives uplink and
//! downlink message times as a latency distribution plus bytes / bandwidth; the default is zero,
//! as in the STSyn paper. Bandwidth is not shared: each message in flight gets its link's full
//! bandwidth (no queueing or contention).
//!
//! Randomness comes from per-worker [`WorkerClock`]s keyed by (worker, epoch), where the epoch
//! is the round number for algorithms that restart every worker each round. So round r of every
//! round-synchronous algorithm sees the same step durations for worker m (common random numbers).

pub mod dist;
pub mod peer;
pub mod rates;
pub mod spec;
pub mod speeds;
pub mod trace;

use std::path::Path;
use std::sync::Arc;

use rand_distr::Distribution;

pub use dist::Dist;
pub use peer::PeerLinks;
pub use rates::RateModel;
pub use speeds::Speeds;
pub use trace::Trace;

use crate::error::{Error, Result};
use crate::rng::{Purpose, Seeds, Stream, StreamKey};
use spec::{Bound, Spec, check_bound};

/// Where step durations come from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// Random draws from a distribution.
    Dist(Dist),
    /// Replay of a measured trace.
    Trace(Arc<Trace>),
    /// τ_i + s_i·|N(0, 1)| with per-worker τ_i and s_i.
    Jitter {
        /// τ_i.
        shifts: Vec<f64>,
        /// s_i.
        sds: Vec<f64>,
    },
    /// Time-varying rates (durations depend on the start time; no randomness).
    Rates(RateModel),
}

/// The duration model of one local step, for every worker.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeTime {
    source: Source,
    /// Per-worker multipliers (empty: all 1).
    scales: Vec<f64>,
    /// Draw once per worker per epoch and reuse for every step of that epoch.
    per_round: bool,
    /// The spec it was built from, for records.
    spec: String,
}

/// Per-worker random state for drawing step durations.
#[derive(Clone, Debug)]
pub struct WorkerClock {
    stream: Stream,
    /// The per-round constant duration (per-round mode only).
    fixed: f64,
    /// Steps drawn so far from a trace (carried across epochs).
    cursor: u64,
}

impl ComputeTime {
    /// Parses a compute-time spec and a speeds spec for `workers` workers. `base_dir` resolves
    /// a relative trace path (the config file's directory, or the working directory).
    pub fn parse(spec: &str, speeds: &str, workers: usize, base_dir: &Path) -> Result<ComputeTime> {
        let what = "compute time";
        let s = Spec::parse(what, spec)?;
        let speeds = Speeds::parse("speeds", speeds, workers)?;
        let (source, per_round) = match s.name.as_str() {
            "trace" => {
                s.check_keys(&["path"], 1)?;
                let rel = s.raw("path", Some(0)).ok_or_else(|| s.error("missing the trace file path"))?;
                if speeds != Speeds::Same {
                    return Err(s.error(
                        "speeds cannot be combined with a trace (the trace already gives each worker's durations)",
                    ));
                }
                let trace = Trace::read(&base_dir.join(rel), workers)?;
                (Source::Trace(Arc::new(trace)), false)
            }
            "jitter" => {
                let (shifts, sds) = jitter_parameters(&s, &speeds, workers)?;
                (Source::Jitter { shifts, sds }, false)
            }
            "sine" | "square" => (Source::Rates(RateModel::from_spec(&s, workers)?), false),
            "per_round" => {
                s.check_keys(&["dist"], 1)?;
                let inner = s
                    .raw("dist", Some(0))
                    .ok_or_else(|| s.error("per_round needs a distribution, e.g. per_round(exp(mean=1))"))?;
                (Source::Dist(Dist::parse(what, inner)?), true)
            }
            _ => {
                let dist = Dist::from_spec(&s).map_err(|e| match e {
                    // a compute time may also be one of the non-distribution models
                    Error::Parse { what, input, reason } if reason.starts_with("unknown distribution") => Error::Parse {
                        what,
                        input,
                        reason: format!(
                            "{reason}; or a step-time model: jitter, sine, square, per_round(<dist>), trace(file.csv)"
                        ),
                    },
                    e => e,
                })?;
                (Source::Dist(dist), false)
            }
        };
        let mut scales = Vec::new();
        if let Source::Dist(d) = &source {
            if !d.strictly_positive() {
                return Err(s.error("a step must take a positive time (zero-length steps would never end a round)"));
            }
            if let Speeds::Means(_) = speeds {
                let base =
                    d.mean().ok_or_else(|| s.error("per-worker speeds need a base distribution with a finite mean"))?;
                scales = speeds.scales(base).expect("means");
            }
        }
        if let Source::Rates(r) = &source {
            scales = speeds.scales(r.mean()).unwrap_or_default();
        }
        Ok(ComputeTime { source, scales, per_round, spec: spec.trim().to_string() })
    }

    /// I.i.d. workers with durations from `dist`, drawn per step.
    pub fn iid(dist: Dist) -> ComputeTime {
        let spec = dist.to_spec();
        ComputeTime { source: Source::Dist(dist), scales: Vec::new(), per_round: false, spec }
    }

    /// The spec string it was built from.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// True when each worker's duration is drawn once per round and reused.
    pub fn per_round(&self) -> bool {
        self.per_round
    }

    #[inline]
    fn scale(&self, worker: usize) -> f64 {
        if self.scales.is_empty() { 1.0 } else { self.scales[worker] }
    }

    /// Mean duration of one step of `worker` (None when infinite).
    pub fn mean(&self, worker: usize) -> Option<f64> {
        match &self.source {
            Source::Dist(d) => d.mean().map(|m| m * self.scale(worker)),
            Source::Trace(t) => Some(t.mean(worker)),
            Source::Jitter { shifts, sds } => Some(shifts[worker] + sds[worker] * (2.0 / std::f64::consts::PI).sqrt()),
            // The long-run mean: one over the average rate.
            Source::Rates(r) => Some(r.mean() * self.scale(worker)),
        }
    }

    /// The shortest finite mean step of the M `workers` (None when no worker's mean is finite).
    pub fn shortest_mean(&self, workers: usize) -> Option<f64> {
        (0..workers).filter_map(|w| self.mean(w)).filter(|m| m.is_finite()).reduce(f64::min)
    }

    /// The distribution of every step of every worker, when steps are i.i.d. across workers and
    /// steps (no per-worker speeds, no per-round draws, no trace).
    pub fn iid_dist(&self) -> Option<&Dist> {
        match &self.source {
            Source::Dist(d) if !self.per_round && self.scales.is_empty() => Some(d),
            _ => None,
        }
    }

    /// Per-worker exponential rates λ_m when every step is an independent exponential draw,
    /// i.e. when the closed forms of [`crate::theory`] apply.
    pub fn exponential_rates(&self, workers: usize) -> Option<Vec<f64>> {
        match &self.source {
            Source::Dist(d) if !self.per_round => {
                d.exponential_mean().map(|m| (0..workers).map(|w| 1.0 / (m * self.scale(w))).collect())
            }
            _ => None,
        }
    }

    /// Per-worker fixed step times τ_m when durations are deterministic (the fixed model).
    pub fn fixed_times(&self, workers: usize) -> Option<Vec<f64>> {
        match &self.source {
            Source::Dist(Dist::Constant { value }) => Some((0..workers).map(|w| value * self.scale(w)).collect()),
            Source::Jitter { shifts, sds } if sds.iter().all(|&s| s == 0.0) => Some(shifts.clone()),
            _ => None,
        }
    }

    /// ∫_a^b p_i(s) ds, the gradients worker i completes in [a, b] under the universal model, for
    /// deterministic models (time-varying rates, and the fixed model with p_i ≡ 1/τ_i).
    pub fn work_done(&self, worker: usize, a: f64, b: f64) -> Option<f64> {
        match &self.source {
            Source::Rates(r) => Some(r.work(worker, a, b) / self.scale(worker)),
            _ => self.fixed_times(worker + 1).map(|t| (b - a) / t[worker]),
        }
    }

    /// True when a step's duration depends on when it starts (time-varying rates).
    pub fn depends_on_start(&self) -> bool {
        matches!(self.source, Source::Rates(_))
    }

    /// True when a round's step durations can depend on earlier rounds even if every worker
    /// restarts: a trace (its cursor carries over) or time-varying rates (durations depend on
    /// when a step starts).
    pub fn carries_across_rounds(&self) -> bool {
        matches!(self.source, Source::Trace(_) | Source::Rates(_))
    }

    /// A fresh clock for `worker` in `epoch`.
    pub fn clock(&self, seeds: &Seeds, worker: usize, epoch: u64) -> WorkerClock {
        let mut clock =
            WorkerClock { stream: seeds.stream(Purpose::ComputeTime, worker as u64, epoch), fixed: 0.0, cursor: 0 };
        self.start_epoch(&mut clock, worker);
        clock
    }

    /// Re-keys `clock` to `epoch`, keeping its trace position.
    pub fn rekey(&self, seeds: &Seeds, worker: usize, epoch: u64, clock: &mut WorkerClock) {
        self.rekey_with(seeds.key(Purpose::ComputeTime, worker as u64), worker, epoch, clock);
    }

    /// [`ComputeTime::rekey`] with the worker's stream key `seeds.key(Purpose::ComputeTime, w)`
    /// computed beforehand (the per-round kernel keeps them, saving most of the hashing).
    #[inline]
    pub fn rekey_with(&self, key: StreamKey, worker: usize, epoch: u64, clock: &mut WorkerClock) {
        clock.stream = key.stream(epoch);
        self.start_epoch(clock, worker);
    }

    #[inline]
    fn start_epoch(&self, clock: &mut WorkerClock, worker: usize) {
        if self.per_round
            && let Source::Dist(d) = &self.source
        {
            clock.fixed = d.sample(&mut clock.stream) * self.scale(worker);
        }
    }

    /// The duration of the next step of `worker`, which starts at time `start`.
    #[inline]
    pub fn next(&self, worker: usize, clock: &mut WorkerClock, start: f64) -> f64 {
        // the common case inlined into the engine's loop; the rest behind one call
        if let Source::Dist(Dist::Exp { mean }) = &self.source
            && !self.per_round
            && self.scales.is_empty()
        {
            return mean * <rand_distr::Exp1 as Distribution<f64>>::sample(&rand_distr::Exp1, &mut clock.stream);
        }
        self.next_other(worker, clock, start)
    }

    #[inline(never)]
    fn next_other(&self, worker: usize, clock: &mut WorkerClock, start: f64) -> f64 {
        match &self.source {
            Source::Dist(_) if self.per_round => clock.fixed,
            Source::Dist(d) if self.scales.is_empty() => d.sample(&mut clock.stream),
            Source::Dist(d) => d.sample(&mut clock.stream) * self.scales[worker],
            Source::Trace(t) => {
                clock.cursor += 1;
                t.get(worker, clock.cursor - 1)
            }
            Source::Jitter { shifts, sds } => {
                let z: f64 = rand_distr::StandardNormal.sample(&mut clock.stream);
                shifts[worker] + sds[worker] * z.abs()
            }
            Source::Rates(r) => r.duration(worker, self.scale(worker), start),
        }
    }

    /// Fills `out` with the durations of the next `out.len()` steps of `worker`, back to back
    /// from `start`: the same values as calling [`ComputeTime::next`] that many times with start
    /// times `start`, `start + out[0]`, `(start + out[0]) + out[1]`, ...
    pub fn fill(&self, worker: usize, clock: &mut WorkerClock, start: f64, out: &mut [f64]) {
        match &self.source {
            Source::Dist(_) if self.per_round => out.fill(clock.fixed),
            Source::Dist(d) => {
                // a local copy keeps the generator state in registers (the same draws)
                let mut stream = clock.stream.clone();
                d.fill(&mut stream, out);
                clock.stream = stream;
                if !self.scales.is_empty() {
                    let scale = self.scales[worker];
                    out.iter_mut().for_each(|x| *x *= scale);
                }
            }
            _ => {
                let mut t = start;
                for x in out.iter_mut() {
                    *x = self.next(worker, clock, t);
                    t += *x;
                }
            }
        }
    }

    /// Steps that `worker` completes back to back from `start` by `deadline` (a step ending
    /// exactly at `deadline` counts), at most `limit`, drawing one duration past the last
    /// completed step unless `limit` is reached; also returns when the last completed step
    /// ended (`start` when none did).
    pub fn steps_until(
        &self,
        worker: usize,
        clock: &mut WorkerClock,
        start: f64,
        deadline: f64,
        limit: u32,
    ) -> (u32, f64) {
        let (mut last, mut count) = (start, 0);
        while count < limit {
            let t = last + self.next(worker, clock, last);
            if t > deadline {
                break;
            }
            (last, count) = (t, count + 1);
        }
        (count, last)
    }

    /// Undoes the draw of a step that was cancelled the instant it started, so that it does not
    /// use up a trace row (random streams are re-keyed every round, so for them a wasted draw
    /// changes nothing in the round-synchronous algorithms).
    pub fn give_back(&self, clock: &mut WorkerClock) {
        if let Source::Trace(_) = &self.source {
            clock.cursor -= 1;
        }
    }

    /// Sets a clock's trace position (used by the per-round kernel, which replays rounds).
    pub fn set_cursor(&self, clock: &mut WorkerClock, cursor: u64) {
        clock.cursor = cursor;
    }

    /// A warning when a run that ended at simulated time `end` went past the point where the
    /// f64 clock resolves a millionth ([`CLOCK_RESOLUTION`]) of the shortest mean step of the M
    /// `workers`: from there on every step's end time is rounded by more than that, and past
    /// 2^53 mean steps a step no longer advances the clock at all. None when the clock kept its
    /// resolution, or no worker has a finite mean step.
    pub fn clock_resolution_warning(&self, end: f64, workers: usize) -> Option<String> {
        let shortest = self.shortest_mean(workers)?;
        let spacing = if end.is_finite() { f64::from_bits(end.abs().to_bits() + 1) - end.abs() } else { f64::INFINITY };
        (spacing > CLOCK_RESOLUTION * shortest).then(|| {
            format!(
                "the simulated clock reached t = {}, where f64 values are {} apart, {} times the shortest mean step ({}): step end times lost precision (a run spans about {:.1e} shortest steps before its rounding exceeds {CLOCK_RESOLUTION:e} of a step)",
                crate::error::shown(end),
                crate::error::shown(spacing),
                crate::error::shown(spacing / shortest),
                crate::error::shown(shortest),
                CLOCK_RESOLUTION / f64::EPSILON
            )
        })
    }
}

/// The clock resolution, relative to the shortest mean step, that
/// [`ComputeTime::clock_resolution_warning`] asks for.
pub const CLOCK_RESOLUTION: f64 = 1e-6;

/// τ_i and s_i of `jitter(shift=1, sd=..., relative=false)`: τ_i = shift·mean_i (mean_i from the
/// speeds, 1 with `same`); s_i = the `sd` value, or the i-th value of a nested `profile(...)`,
/// `means(...)` or `rates(...)` list, times τ_i when `relative=true` (s_i = 0.05·τ_i in
/// Ringmaster-LMO).
fn jitter_parameters(s: &Spec, speeds: &Speeds, workers: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    s.check_keys(&["shift", "sd", "relative"], 0)?;
    let shift = s.number("shift", None)?.unwrap_or(1.0);
    check_bound(shift, Bound::Positive).map_err(|why| s.error(format!("shift = {why}")))?;
    // τ_i and s_i, and the profile an `sd` list may be parsed from
    crate::error::check_memory("jitter workers (M)", workers, 32 * workers as u128, "32 bytes per worker")?;
    let shifts: Vec<f64> = match speeds {
        Speeds::Same => vec![shift; workers],
        Speeds::Means(means) => means.iter().map(|m| shift * m).collect(),
    };
    let sd_text = s.raw("sd", None).ok_or_else(|| s.error("missing sd (a number or a profile(...))"))?;
    let mut sds = match spec::parse_number(sd_text) {
        Some(v) => {
            check_bound(v, Bound::NonNegative).map_err(|why| s.error(format!("sd = {why}")))?;
            vec![v; workers]
        }
        None => match Speeds::parse("jitter sd", sd_text, workers)? {
            Speeds::Means(list) => list,
            Speeds::Same => return Err(s.error("sd = same is not a standard deviation")),
        },
    };
    match s.raw("relative", None).map(str::trim) {
        None | Some("false") => {}
        Some("true") => sds.iter_mut().zip(&shifts).for_each(|(sd, tau)| *sd *= tau),
        Some(other) => return Err(s.error(format!("relative = '{other}' must be true or false"))),
    }
    Ok((shifts, sds))
}

/// One direction of communication: latency plus bytes / bandwidth.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// Latency distribution (None: zero).
    pub latency: Option<Dist>,
    /// Bytes per unit of simulated time (None: infinite).
    pub bandwidth: Option<f64>,
}

impl Link {
    /// A link that takes no time.
    pub const ZERO: Link = Link { latency: None, bandwidth: None };

    /// Parses a latency spec (`none`, `0` or a distribution, any case) and an optional
    /// bandwidth; the keys name them in errors.
    pub fn parse(what: &str, latency: &str, bandwidth_key: &str, bandwidth: Option<f64>) -> Result<Link> {
        let text = latency.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Err(Error::parse(what, latency, "empty spec (none for a link that takes no time)"));
        }
        let latency = if text == "none" || text == "0" || text == "zero" {
            None
        } else {
            let d = Dist::parse(what, latency)?;
            if d == (Dist::Constant { value: 0.0 }) { None } else { Some(d) }
        };
        if let Some(b) = bandwidth
            && let Err(why) = check_bound(b, Bound::Positive)
        {
            return Err(Error::Config(format!("{bandwidth_key} (bytes per time unit) = {why}")));
        }
        Ok(Link { latency, bandwidth })
    }

    /// True when every message takes zero time.
    pub fn is_zero(&self) -> bool {
        self.latency.is_none() && self.bandwidth.is_none()
    }

    /// Time for a message of `bytes` bytes.
    #[inline]
    pub fn sample(&self, bytes: u64, rng: &mut Stream) -> f64 {
        let latency = self.latency.as_ref().map_or(0.0, |d| d.sample(rng));
        latency + self.bandwidth.map_or(0.0, |b| bytes as f64 / b)
    }
}

/// Uplink (worker → server) and downlink (server → worker) message times: one base link per
/// direction, and optionally per-worker link speeds (`link_speeds`): worker i's messages to and
/// from the server take `s_i` times the base link's time — its latency draw and its
/// bytes/bandwidth alike — so a slow client's link is slow in both directions while every worker
/// keeps its own random draws (the same draws, scaled, as without link speeds).
#[derive(Clone, Debug, PartialEq)]
pub struct CommTime {
    /// Worker → server.
    pub uplink: Link,
    /// Server → worker (and worker → worker in decentralized runs without peer links).
    pub downlink: Link,
    /// s_i per worker (empty: all 1).
    scales: Vec<f64>,
}

impl CommTime {
    /// No communication time, as in the STSyn paper.
    pub const ZERO: CommTime = CommTime { uplink: Link::ZERO, downlink: Link::ZERO, scales: Vec::new() };

    /// [`CommTime::ZERO`] as a `'static` reference, for an engine or kernel without
    /// communication.
    pub fn none() -> &'static CommTime {
        static NONE: CommTime = CommTime::ZERO;
        &NONE
    }

    /// The same links for every worker.
    pub fn new(uplink: Link, downlink: Link) -> Self {
        CommTime { uplink, downlink, scales: Vec::new() }
    }

    /// Sets per-worker link speeds from a speeds spec (`same`, `means(s_1, ..., s_M)`,
    /// `rates(...)` for s_i = 1/rate_i, `profile(a, b, p)`), read as multipliers of the base
    /// links' times; `what` names the setting in errors.
    pub fn with_link_speeds(mut self, what: &str, text: &str, workers: usize) -> Result<Self> {
        self.scales = Speeds::parse(what, text, workers)?.scales(1.0).unwrap_or_default();
        Ok(self)
    }

    /// True when all messages are instantaneous.
    pub fn is_zero(&self) -> bool {
        self.uplink.is_zero() && self.downlink.is_zero()
    }

    /// The base link of one direction.
    pub fn link(&self, up: bool) -> &Link {
        if up { &self.uplink } else { &self.downlink }
    }

    /// Time for a message of `bytes` bytes between `worker` and the server (`up`: to it).
    #[inline]
    pub fn message_time(&self, worker: usize, up: bool, bytes: u64, rng: &mut Stream) -> f64 {
        let base = self.link(up).sample(bytes, rng);
        if self.scales.is_empty() { base } else { base * self.scales[worker] }
    }

    /// The stream for messages of `worker` in direction `up` during `epoch`.
    pub fn stream(seeds: &Seeds, worker: usize, up: bool, epoch: u64) -> Stream {
        seeds.stream(Purpose::CommTime, 2 * worker as u64 + up as u64, epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_resolution_warning_starts_where_f64_spacing_passes_a_millionth_of_a_step() {
        // steps of mean 1 and 2 (shortest 1); f64 values in [2^32, 2^33) are 2^-20 ≈ 9.5e-7
        // apart, those in [2^33, 2^34) 2^-19 ≈ 1.9e-6
        let c = ComputeTime::parse("exp(mean=1)", "means(2, 1)", 2, Path::new(".")).unwrap();
        let two = |p: i32| 2f64.powi(p);
        assert_eq!(c.clock_resolution_warning(two(33) - two(-20), 2), None);
        let w = c.clock_resolution_warning(two(33), 2).expect("past the resolution");
        assert!(w.contains("t = 8589934592,") && w.contains("0.0000019073486328125 apart"), "{w}");
        assert!(c.clock_resolution_warning(f64::MAX, 1).is_some());
        let no_mean = ComputeTime::parse("pareto(shape=1)", "same", 2, Path::new(".")).unwrap();
        assert_eq!(no_mean.clock_resolution_warning(1e300, 2), None);
    }

    #[test]
    fn heterogeneous_exponential_rates() {
        let c = ComputeTime::parse("exp(mean=2)", "rates(1, 0.5)", 2, Path::new(".")).unwrap();
        assert_eq!(c.exponential_rates(2).unwrap(), vec![1.0, 0.5]);
        assert_eq!(c.mean(1), Some(2.0));
        let fixed = ComputeTime::parse("const(1)", "profile(b=1, p=0.5)", 3, Path::new(".")).unwrap();
        assert_eq!(fixed.fixed_times(3).unwrap(), vec![1.0, 2f64.sqrt(), 3f64.sqrt()]);
    }

    #[test]
    fn per_round_reuses_one_draw() {
        let c = ComputeTime::parse("per_round(exp(mean=1))", "same", 1, Path::new(".")).unwrap();
        let seeds = Seeds::new(3);
        let mut k = c.clock(&seeds, 0, 5);
        let a = c.next(0, &mut k, 0.0);
        assert_eq!(a, c.next(0, &mut k, 0.0));
        c.rekey(&seeds, 0, 6, &mut k);
        assert_ne!(a, c.next(0, &mut k, 0.0));
    }

    #[test]
    fn zero_time_steps_are_rejected() {
        let e = ComputeTime::parse("const(0)", "same", 2, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("positive time"), "{e}");
    }
}
