//! `stsyn timing` and `stsyn theory`: simulate rounds without training (or print the closed
//! forms only) for STSyn and the Dutta et al. family. Both share the flags below. Lists in -M,
//! -K and -U sweep: every combination is set up (and checked) first, then run with the same seed,
//! and printed in order; `--summary-csv` tabulates the points.
//!
//! The simulated SEs are plain or batch means as `crate::algorithms::timing` explains; the
//! table says which when it is batch means, the JSON always (`se_method`, `se_batches`). Where
//! a closed form exists but is not computed, the table says why and the JSON has `theory_note`
//! next to a null `theory`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::algorithms::TimingAlgorithm;
use crate::algorithms::timing::{AsyncKnobs, EnginePath, SeMethod, TheoryValues, TimingOutcome, TimingSetup};
use crate::error::{Error, Result};
use crate::sim::RoundStat;
use crate::theory::fixed;
use crate::timing::{CommTime, ComputeTime, Link};
use crate::trace::csv::CsvSink;
use crate::trace::file::PendingFile;

/// Flags of `stsyn timing` and `stsyn theory`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// stsyn, sync (also pasgd: `stsyn run`'s periodic averaging has sync's timing), ksync,
    /// kbatch-sync, kasync, kbatch-async, async (also asgd: `stsyn run`'s name for vanilla ASGD,
    /// whose timing is async's), rennala, malenia, ringmaster, fedbuff or fedavg.
    #[arg(long, default_value = "stsyn")]
    algorithm: String,
    /// M: number of workers. A comma-separated list here, in -K or in -U (-K 1,5,10) sweeps:
    /// one simulation per combination, all with the same seed, so the points share their
    /// random draws.
    #[arg(short = 'M', long, required = true, value_delimiter = ',')]
    workers: Vec<usize>,
    /// K: number of workers (or gradients) the server waits for (rennala, malenia: the batch
    /// size S; fedbuff: the buffer size; fedavg: the clients sampled each round).
    #[arg(short = 'K', long, value_delimiter = ',')]
    wait: Vec<usize>,
    /// U: local updates per worker per round (stsyn, sync, fedavg; fedbuff: Q local steps per
    /// client).
    #[arg(short = 'U', long, value_delimiter = ',')]
    local_steps: Vec<u32>,
    /// R: Ringmaster's delay threshold.
    #[arg(short = 'R', long)]
    delay_threshold: Option<u64>,
    /// Ignore stale work instead of cancelling it (ringmaster: version 1; rennala, malenia:
    /// computations still running at the end of a round finish and are ignored).
    #[arg(long)]
    ignore_stale: bool,
    /// C: FedBuff's clients training at once (default M).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Duration of one local step, e.g. 'exp(mean=1)', 'pareto(shape=2.5)', 'const(1)',
    /// 'per_round(lomax_mix(low=1e4, high=2e4))', 'trace(file.csv)'.
    ///
    /// Every spec (the same in experiment files; keyed arguments in any order):
    ///   exp(mean=1) or exp(rate=1)
    ///   shifted_exp(shift=1, mean=1)
    ///   pareto(shape=2.5, scale=1), lomax(shape=3, scale=1)
    ///   lognormal(mu=0, sigma=0.5), uniform(low=1, high=2), const(1)
    ///   halfnormal(shift=1, sd=0.5)       shift + sd·|Z|
    ///   lomax_mix(low=1e4, high=2e4)      Lomax with a shape drawn uniformly from [low, high]
    ///   jitter(shift=1, sd=0.1, relative=false)
    ///                                     τ_i + s_i·|Z|, τ_i = shift × worker i's mean from
    ///                                     --speeds; sd may be a list: profile(...), means(...)
    ///   sine(mean=1, amplitude=0.5, period=10, phase=spread)
    ///   square(fast=1, slow=4, period=10, duty=0.5, phase=spread)
    ///                                     time-varying rates, not random: a step ends when
    ///                                     the rate's integral from its start reaches 1
    ///                                     (phase: spread or same)
    ///   per_round(<spec>)                 one draw per worker per round, for all its steps
    ///   trace(file.csv)                   header worker,duration: worker w's steps take its
    ///                                     rows in order, from the first again at the end
    /// --speeds scales every worker's durations (not with a trace).
    #[arg(long, default_value = "exp(mean=1.0)", verbatim_doc_comment)]
    compute_time: String,
    /// Per-worker speeds: 'same', 'means(...)', 'rates(...)', 'profile(a=0, b=1, p=0.5)'.
    ///
    /// means(1, 2, 3, ...): worker i's steps take mean_i times the compute time's (one value
    /// per worker); rates(...): the same with mean_i = 1/rate_i; profile(a=0, b=1, p=1,
    /// first=1): mean_i = a + b·(first + i)^p for i = 0..M−1 (τ_i = √i from 1: p=0.5).
    #[arg(long, default_value = "same")]
    speeds: String,
    /// STSyn only: stop a worker after this many steps in a round (Comparisons.py uses ⌈1.5U⌉).
    #[arg(long)]
    max_steps: Option<u32>,
    /// stsyn, sync, fedavg: the round also closes D after it starts, cutting the workers not done
    /// (fedavg: they are dropped); theory for i.i.d. exponential steps.
    #[arg(long, value_name = "D")]
    deadline: Option<f64>,
    /// `stsyn theory --algorithm async` in the fixed model: also the number of updates made by
    /// simulated time T, Σ_i ⌊T/τ_i⌋.
    #[arg(long, value_name = "T")]
    time: Option<f64>,
    /// Rounds to simulate (server updates for the asynchronous algorithms); `theory` uses it only
    /// for the fixed-model asynchronous oracles (the mean time per update over that many updates).
    #[arg(long, default_value_t = 1000)]
    rounds: u64,
    /// Master seed; `theory` ignores it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Uplink latency: 'none' or a distribution.
    #[arg(long, default_value = "none")]
    uplink: String,
    /// Downlink latency: 'none' or a distribution.
    #[arg(long, default_value = "none")]
    downlink: String,
    /// Uplink bandwidth in bytes per time unit (default: infinite).
    #[arg(long)]
    uplink_bandwidth: Option<f64>,
    /// Downlink bandwidth in bytes per time unit (default: infinite).
    #[arg(long)]
    downlink_bandwidth: Option<f64>,
    /// Per-worker link speeds: multipliers of the uplink and downlink times of each worker's
    /// messages ('same', 'means(...)', 'rates(...)', 'profile(...)', as for --speeds).
    #[arg(long, default_value = "same")]
    link_speeds: String,
    /// Bytes per model or gradient message.
    #[arg(long, default_value_t = 0)]
    model_bytes: u64,
    /// auto (per-round kernel where valid), heap or kernel (`timing` only; like --seed, --rounds
    /// and the CSV files it has no meaning for `theory`).
    #[arg(long, default_value = "auto")]
    engine: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// `timing` only: write one row per round to this CSV file.
    #[arg(long)]
    rounds_csv: Option<PathBuf>,
    /// `timing` only: write one row per engine event to this CSV file (uses the heap engine).
    #[arg(long)]
    events_csv: Option<PathBuf>,
    /// Write one row per (M, K, U) point to this CSV file: for each quantity, `timing` writes the
    /// simulated mean and SE, the theory and the deviation in SEs (0 where the table says exact,
    /// empty where undefined), `theory` the closed form alone; written when every point is done.
    #[arg(long)]
    summary_csv: Option<PathBuf>,
}

impl Args {
    /// The cluster in words: compute time, and speeds and links where they are not the default.
    fn cluster_text(&self) -> String {
        let mut text = format!("compute time {}", self.compute_time);
        if self.speeds != "same" {
            text += &format!(", speeds {}", self.speeds);
        }
        for (name, latency, bandwidth) in
            [("uplink", &self.uplink, self.uplink_bandwidth), ("downlink", &self.downlink, self.downlink_bandwidth)]
        {
            if latency != "none" || bandwidth.is_some() {
                text += &format!(", {name} {latency}");
                if let Some(b) = bandwidth {
                    text += &format!(" + {} bytes at {b}/time unit", self.model_bytes);
                }
            }
        }
        if self.link_speeds != "same" {
            text += &format!(", link speeds {}", self.link_speeds);
        }
        text
    }

    /// Validates the flags into one [`TimingSetup`] per point of the sweep: every M, every K,
    /// every U, in that order (one point without lists).
    fn setups(&self) -> Result<Vec<TimingSetup>> {
        fn each<T: Copy>(values: &[T]) -> Vec<Option<T>> {
            if values.is_empty() { vec![None] } else { values.iter().copied().map(Some).collect() }
        }
        let mut setups = Vec::new();
        for &m in &self.workers {
            for &k in &each(&self.wait) {
                for &u in &each(&self.local_steps) {
                    // the warnings are about flags every point shares: said once
                    setups.push(self.setup(m, k, u, setups.is_empty())?);
                }
            }
        }
        Ok(setups)
    }

    /// The setup of one point: M = `m`, K = `wait`, U = `local_steps` (None: not given);
    /// `warn` prints the warnings about ineffective flags.
    fn setup(&self, m: usize, wait: Option<usize>, local_steps: Option<u32>, warn: bool) -> Result<TimingSetup> {
        let algorithm = TimingAlgorithm::parse(&self.algorithm)?;
        if m == 0 {
            return Err(Error::invalid("--workers (M)", m, "must be at least 1"));
        }
        let name = algorithm.name();
        let wait = match (algorithm, wait) {
            (TimingAlgorithm::Sync, Some(k)) if k != m => {
                return Err(Error::invalid("--wait (K)", k, "sync waits for all M workers; omit -K"));
            }
            (TimingAlgorithm::Async, Some(k)) if k != 1 => {
                return Err(Error::invalid("--wait (K)", k, "async updates on every gradient; omit -K"));
            }
            (TimingAlgorithm::Ringmaster, Some(k)) => {
                return Err(Error::invalid("--wait (K)", k, "ringmaster updates on every gradient; give -R, not -K"));
            }
            (TimingAlgorithm::Sync, _) => m,
            (TimingAlgorithm::Async | TimingAlgorithm::Ringmaster, _) => 1,
            (_, Some(k)) => k,
            (_, None) => {
                return Err(Error::invalid("--wait (K)", "(missing)", format!("{name} needs -K")));
            }
        };
        let local_steps = match (algorithm.has_local_steps(), local_steps) {
            (true, Some(u)) => u,
            (true, None) => {
                return Err(Error::invalid("--local-steps (U)", "(missing)", format!("{name} needs -U")));
            }
            (false, Some(u)) if u != 1 => {
                return Err(Error::invalid(
                    "--local-steps (U)",
                    u,
                    format!("{name} computes one gradient per job; omit -U"),
                ));
            }
            (false, _) => 1,
        };
        let mut comm = CommTime::new(
            Link::parse("--uplink", &self.uplink, "--uplink-bandwidth", self.uplink_bandwidth)?,
            Link::parse("--downlink", &self.downlink, "--downlink-bandwidth", self.downlink_bandwidth)?,
        )
        .with_link_speeds("--link-speeds", &self.link_speeds, m)?;
        if self.model_bytes == 0 {
            // messages of 0 bytes take no transfer time: a bandwidth alone leaves the links
            // instantaneous (and the closed forms valid)
            for (flag, up) in [("--uplink-bandwidth", true), ("--downlink-bandwidth", false)] {
                let link = if up { &mut comm.uplink } else { &mut comm.downlink };
                if link.bandwidth.take().is_some() && warn {
                    eprintln!("warning: {flag} has no effect with --model-bytes 0 (messages of 0 bytes)");
                }
            }
        }
        if warn && self.model_bytes > 0 && self.uplink_bandwidth.is_none() && self.downlink_bandwidth.is_none() {
            eprintln!("warning: --model-bytes has no effect without --uplink-bandwidth or --downlink-bandwidth");
        }
        if warn && self.link_speeds != "same" && comm.is_zero() {
            eprintln!("warning: --link-speeds has no effect: every message is instantaneous (no --uplink/--downlink)");
        }
        let setup = TimingSetup {
            algorithm,
            workers: m,
            wait,
            local_steps,
            max_steps: self.max_steps,
            deadline: self.deadline,
            rounds: self.rounds,
            seed: self.seed,
            model_bytes: self.model_bytes,
            compute: ComputeTime::parse(&self.compute_time, &self.speeds, m, Path::new("."))?,
            comm,
            asynchronous: AsyncKnobs {
                delay_threshold: self.delay_threshold,
                ignore_stale: self.ignore_stale,
                concurrency: self.concurrency,
            },
        };
        setup.check()?;
        Ok(setup)
    }
}

/// Runs `stsyn timing`.
pub fn run_timing(args: &Args) -> anyhow::Result<()> {
    let setups = args.setups()?;
    let path = EnginePath::parse(&args.engine)?;
    let files =
        [("--rounds-csv", &args.rounds_csv), ("--events-csv", &args.events_csv), ("--summary-csv", &args.summary_csv)];
    for (i, (flag, file)) in files.iter().enumerate() {
        if let Some(file) = file
            && let Some((other, _)) =
                files[..i].iter().find(|(_, f)| f.as_ref().is_some_and(|f| same_output_file(f, file)))
        {
            return Err(Error::invalid(*flag, file.display(), format!("is also the {other} file")).into());
        }
    }
    if setups.len() > 1
        && let Some((flag, file)) = files[..2].iter().find_map(|(flag, f)| f.as_ref().map(|f| (flag, f)))
    {
        return Err(
            Error::invalid(*flag, file.display(), "traces one run: give one value each of -M, -K and -U").into()
        );
    }
    if let Some(t) = args.time {
        return Err(Error::invalid("--time", t, "is an oracle of stsyn theory; stsyn timing runs --rounds").into());
    }
    let theories = setups.iter().map(TimingSetup::theory).collect::<Result<Vec<_>>>()?;
    let mut summary = args.summary_csv.as_deref().map(PendingFile::create).transpose()?;
    let mut sink = CsvSink::create(args.rounds_csv.as_deref(), args.events_csv.as_deref(), None)?;
    let mut partials = sink.partial_paths();
    partials.extend(summary.iter().filter_map(|f| f.partial_path().map(Path::to_path_buf)));
    remove_on_interrupt(partials)?;
    let mut outcomes = Vec::with_capacity(setups.len());
    for setup in &setups {
        let outcome = setup.simulate(path, &mut sink)?;
        if let Some(w) = setup.compute.clock_resolution_warning(outcome.sim_time, setup.workers) {
            eprintln!(
                "warning: {}{w}",
                if setups.len() > 1 { format!("{}: ", headline(setup)) } else { String::new() }
            );
        }
        outcomes.push(outcome);
    }
    sink.finish()?;
    if let Some(mut file) = summary.take() {
        write_summary(file.writer(), &setups, &outcomes, &theories).map_err(|e| Error::io(file.path(), e))?;
        file.finish()?;
    }
    let points = setups.iter().zip(&outcomes).zip(&theories);
    if args.json {
        let values: Vec<Value> = points.map(|((s, o), t)| timing_json(s, args, o, t)).collect();
        println!("{}", serde_json::to_string_pretty(&one_or_array(values))?);
    } else {
        for (i, ((s, o), t)) in points.enumerate() {
            if i > 0 {
                println!();
            }
            print_table(s, args, o, t);
        }
    }
    Ok(())
}

/// The JSON of a run: the point's object, or an array of them for a sweep.
fn one_or_array(mut values: Vec<Value>) -> Value {
    if values.len() == 1 { values.remove(0) } else { Value::Array(values) }
}

/// The rows of `--summary-csv`: one per point.
fn write_summary(
    out: &mut impl std::io::Write,
    setups: &[TimingSetup],
    outcomes: &[TimingOutcome],
    theories: &[TheoryValues],
) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let mut header = point_columns();
    header.extend(["rounds", "seed", "engine"].map(String::from));
    for q in SUMMARY_QUANTITIES {
        header.extend(["mean", "se", "theory", "deviation_se"].map(|c| format!("{q}_{c}")));
    }
    csv.write_record(&header)?;
    for ((s, o), t) in setups.iter().zip(outcomes).zip(theories) {
        let mut row = point_row(s);
        row.extend([s.rounds.to_string(), s.seed.to_string(), o.engine.to_string()]);
        for (sim, theory) in
            [(&o.round_time, t.round_time), (&o.updates_per_worker, t.updates_per_worker), (&o.uploaders, t.uploaders)]
        {
            row.extend([number(sim.mean()), number(sim.se())]);
            row.push(theory.map_or(String::new(), number));
            let deviation = |v| if exact(sim, v) { 0.0 } else { sim.deviation_in_se(v) };
            row.push(theory.map_or(String::new(), |v| number(deviation(v))));
        }
        csv.write_record(&row)?;
    }
    csv.flush()
}

/// The quantities of a `--summary-csv` row, the prefixes of their columns.
const SUMMARY_QUANTITIES: [&str; 3] = ["round_time", "updates_per_worker", "uploaders"];

/// The first columns of a `--summary-csv` row: the algorithm and the point.
fn point_columns() -> Vec<String> {
    ["algorithm", "workers", "wait", "local_steps"].map(String::from).to_vec()
}

fn point_row(s: &TimingSetup) -> Vec<String> {
    vec![s.algorithm.name().to_string(), s.workers.to_string(), s.wait.to_string(), s.local_steps.to_string()]
}

/// A finite number as written in `--summary-csv` files; empty otherwise.
fn number(x: f64) -> String {
    if x.is_finite() { x.to_string() } else { String::new() }
}

/// The rows of `stsyn theory --summary-csv`: per point, the closed forms (empty where none).
fn write_theory_summary(out: &mut impl std::io::Write, points: &[(&TimingSetup, TheoryValues)]) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let mut header = point_columns();
    header.extend(SUMMARY_QUANTITIES.map(|q| format!("{q}_theory")));
    csv.write_record(&header)?;
    for (s, t) in points {
        let mut row = point_row(s);
        row.extend([t.round_time, t.updates_per_worker, t.uploaders].map(|v| v.map_or(String::new(), number)));
        csv.write_record(&row)?;
    }
    csv.flush()
}

/// True when two output paths name one regular file (or one file not yet written): through
/// `..`, a symbolic link, or a directory still to be created. Streams such as /dev/stdout and
/// /dev/stderr may share a terminal and are written directly, so they never clash.
fn same_output_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    if std::path::absolute(a).ok() == std::path::absolute(b).ok() {
        return true;
    }
    let stream = |p: &std::path::Path| p.exists() && !p.is_file();
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y && !stream(&x),
        _ => false,
    }
}

/// The file a path names, with `..` and symbolic links resolved as far as the path exists (a
/// link to a file not yet written is followed; missing directories are appended as written).
fn resolved(path: &std::path::Path) -> Option<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..8 {
        let Ok(target) = std::fs::read_link(&path) else { break };
        path = path.parent().map_or(target.clone(), |dir| dir.join(&target));
    }
    let absolute = std::path::absolute(&path).ok()?;
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            for part in missing.iter().rev() {
                match part {
                    std::path::Component::ParentDir => _ = real.pop(),
                    std::path::Component::CurDir => {}
                    other => real.push(other),
                }
            }
            return Some(real);
        }
        missing.push(existing.components().next_back()?);
        existing = existing.parent()?;
    }
}

/// On Ctrl-C (or SIGTERM, SIGHUP) the unfinished trace files are removed before the process
/// exits with code 130, so an interrupted run leaves nothing behind.
fn remove_on_interrupt(partials: Vec<PathBuf>) -> Result<(), Error> {
    if partials.is_empty() {
        return Ok(());
    }
    ctrlc::set_handler(move || {
        for p in &partials {
            let _ = std::fs::remove_file(p);
        }
        eprintln!("interrupted: no trace written");
        std::process::exit(130);
    })
    .map_err(|e| Error::Config(format!("cannot install the Ctrl-C handler: {e}")))
}

/// `--time T` needs a positive finite T, asynchronous SGD and the fixed model (constant
/// per-worker step times, no communication time).
fn check_time(s: &TimingSetup, time: Option<f64>) -> Result<(), Error> {
    let Some(t) = time else { return Ok(()) };
    if !(t.is_finite() && t > 0.0) {
        return Err(Error::invalid("--time", t, "must be a positive number"));
    }
    if s.algorithm != TimingAlgorithm::Async || s.compute.fixed_times(s.workers).is_none() || !s.comm.is_zero() {
        return Err(Error::invalid(
            "--time",
            t,
            "counts ASGD updates in the fixed model: --algorithm async with constant step times and no communication time",
        ));
    }
    Ok(())
}

/// Runs `stsyn theory`.
pub fn run_theory(args: &Args) -> anyhow::Result<()> {
    let setups = args.setups()?;
    EnginePath::parse(&args.engine)?;
    if let Some((flag, path)) = [("--rounds-csv", &args.rounds_csv), ("--events-csv", &args.events_csv)]
        .into_iter()
        .find_map(|(flag, p)| p.as_ref().map(|p| (flag, p)))
    {
        return Err(Error::invalid(flag, path.display(), "stsyn theory simulates nothing; use stsyn timing").into());
    }
    if args.engine != "auto" {
        return Err(Error::invalid("--engine", &args.engine, "stsyn theory simulates nothing; use stsyn timing").into());
    }
    // everything computed before anything is printed, so that a bad value fails with no
    // partial output
    let mut points = Vec::with_capacity(setups.len());
    for setup in &setups {
        check_time(setup, args.time)?;
        let theory = setup.theory()?;
        let fixed_model = fixed_model_json(setup, args.time)?;
        points.push((setup, theory, fixed_model, setup.updates_distribution()?));
    }
    if let Some(path) = &args.summary_csv {
        let mut file = PendingFile::create(path)?;
        let values: Vec<_> = points.iter().map(|(setup, theory, ..)| (*setup, *theory)).collect();
        write_theory_summary(file.writer(), &values).map_err(|e| Error::io(file.path(), e))?;
        file.finish()?;
    }
    if args.json {
        let values = points.iter().map(|(setup, theory, fixed_model, distribution)| {
            // theory draws nothing, and counts rounds only in the fixed-model oracles
            let mut setup_value = setup_json(setup, args);
            if let Some(fields) = setup_value.as_object_mut() {
                fields.remove("seed");
                if fixed_model.is_null() {
                    fields.remove("rounds");
                }
            }
            json!({
                "setup": setup_value,
                "theory": theory_json(theory),
                "theory_note": setup.theory_note(),
                "updates_distribution": distribution,
                "fixed_model": fixed_model,
            })
        });
        println!("{}", serde_json::to_string_pretty(&one_or_array(values.collect()))?);
        return Ok(());
    }
    for (i, (setup, theory, _, distribution)) in points.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}, {}", headline(setup), args.cluster_text());
        let note = setup.theory_note();
        if let Some(note) = &note {
            println!("  theory: {note}");
        }
        let none = if note.is_some() { "not computed" } else { "no closed form" };
        for (name, v) in [
            ("round time", theory.round_time),
            ("updates per worker", theory.updates_per_worker),
            ("uploaders", theory.uploaders),
        ] {
            println!("  {name:<20} {}", v.map_or(none.to_string(), |v| digits(v, 8)));
        }
        if let Some(p) = distribution {
            println!("  P(N_m = n), n < U:   {}", p.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(", "));
        }
        print_fixed_model_oracles(setup, args.time)?;
    }
    Ok(())
}

fn headline(s: &TimingSetup) -> String {
    let mut h = format!("{}: M = {}", s.algorithm.name(), s.workers);
    if s.algorithm.has_wait() {
        h += &format!(", K = {}", s.wait);
    }
    if s.algorithm.has_local_steps() {
        h += &format!(", U = {}", s.local_steps);
    }
    if let Some(cap) = s.max_steps {
        h += &format!(", at most {cap} steps");
    }
    if let Some(d) = s.deadline {
        h += &format!(", deadline {d}");
    }
    if let Some(r) = s.asynchronous.delay_threshold {
        h += &format!(", R = {r}");
    }
    if s.asynchronous.ignore_stale {
        h += ", stale work ignored";
    }
    if let Some(c) = s.asynchronous.concurrency {
        h += &format!(", C = {c}");
    }
    h
}

fn print_table(s: &TimingSetup, a: &Args, o: &TimingOutcome, t: &TheoryValues) {
    println!("{}, {}, {} rounds, seed {} ({} engine)", headline(s), a.cluster_text(), s.rounds, s.seed, o.engine);
    println!("  {:<20} {:>26} {:>14} {:>12}", "quantity", "simulated (mean ± SE)", "theory", "deviation");
    for (name, sim, theory) in [
        ("round time", &o.round_time, t.round_time),
        ("updates per worker", &o.updates_per_worker, t.updates_per_worker),
        ("uploaders", &o.uploaders, t.uploaders),
    ] {
        let (theory_text, dev) = match theory {
            Some(v) => (num(v), deviation(sim, v)),
            None => ("-".to_string(), "-".to_string()),
        };
        // one round (or one batch) has no standard error
        let se = if sim.se().is_finite() { num(sim.se()) } else { "n/a".to_string() };
        println!("  {name:<20} {:>26} {theory_text:>14} {dev:>12}", format!("{} ± {se}", num(sim.mean())));
    }
    if o.se_method == SeMethod::BatchMeans {
        let (b, size) = (o.round_time.batches().unwrap_or(0), o.round_time.batch_size().unwrap_or(0));
        println!("  SE by batch means over {b} batches of {size} rounds (successive rounds are dependent)");
    }
    if let Some(note) = s.theory_note() {
        println!("  theory: {note}");
    }
    if let Some(d) = &o.delays {
        println!(
            "  delays of applied results: mean {:.3}, max {}; ignored {}, cancelled {}",
            d.mean(),
            d.max,
            d.ignored,
            d.cancelled
        );
    }
    if let Some(w) = o.max_window {
        let bound = s.window_bound().ok().flatten();
        let r = s.asynchronous.delay_threshold.unwrap_or(0);
        match bound {
            Some(b) => println!(
                "  longest span of R = {r} updates: {w:.6} (bound t(R) = {b:.6}, {})",
                if w <= b { "within" } else { "EXCEEDED" }
            ),
            None => println!("  longest span of R = {r} updates: {w:.6}"),
        }
    }
    println!(
        "  simulated {} local updates in {:.3} s: {:.4e} updates/s",
        o.updates,
        o.wall_seconds,
        updates_per_second(o)
    );
}

/// The fixed-model oracles of specs/baselines.md §14 that go beyond the three statistics.
fn print_fixed_model_oracles(s: &TimingSetup, time: Option<f64>) -> Result<()> {
    let Some(taus) = s.compute.fixed_times(s.workers) else { return Ok(()) };
    if !s.comm.is_zero() {
        return Ok(());
    }
    println!("  fixed model, τ = {}", summarise_taus(&taus));
    match s.algorithm {
        TimingAlgorithm::Rennala | TimingAlgorithm::Malenia => {
            let k = s.wait as u64;
            println!("  Rennala round time T(S = {k}):        {}", digits(fixed::rennala_round_time(&taus, k)?, 8));
            println!(
                "  Rennala bound min_m (S+m)/Σ 1/τ_i:   {}",
                digits(fixed::rennala_round_time_bound(&taus, k)?, 8)
            );
            if s.algorithm == TimingAlgorithm::Malenia {
                println!("  Malenia round time:                  {}", digits(fixed::malenia_round_time(&taus, k)?, 8));
            }
        }
        TimingAlgorithm::Ringmaster => {
            if let Some(b) = s.window_bound()? {
                println!("  any R consecutive updates within t(R) = {b:.8}");
            }
            if taus.len() <= 4096 {
                println!("  largest possible ASGD delay:          {}", fixed::asgd_max_delay(&taus)?);
            }
        }
        TimingAlgorithm::Async => {
            let t = fixed::nth_completion_time(&taus, s.rounds, "--rounds")?;
            println!(
                "  update {} at time {t:.8}; updates by then Σ_i ⌊t/τ_i⌋ = {}",
                s.rounds,
                fixed::asgd_updates_by(&taus, t)?
            );
            if let Some(t) = time {
                println!("  updates by time {t}: Σ_i ⌊T/τ_i⌋ = {}", fixed::asgd_updates_by(&taus, t)?);
            }
        }
        _ => {}
    }
    Ok(())
}

fn summarise_taus(taus: &[f64]) -> String {
    if taus.len() <= 6 {
        return format!("({})", taus.iter().map(|t| format!("{t:.4}")).collect::<Vec<_>>().join(", "));
    }
    let max = taus.iter().copied().fold(0.0, f64::max);
    let min = taus.iter().copied().fold(f64::INFINITY, f64::min);
    format!("{} workers from {min:.4} to {max:.4}", taus.len())
}

fn fixed_model_json(s: &TimingSetup, time: Option<f64>) -> Result<Value> {
    let Some(taus) = s.compute.fixed_times(s.workers) else { return Ok(Value::Null) };
    if !s.comm.is_zero() {
        return Ok(Value::Null);
    }
    let k = s.wait as u64;
    Ok(match s.algorithm {
        TimingAlgorithm::Rennala | TimingAlgorithm::Malenia => json!({
            "rennala_round_time": fixed::rennala_round_time(&taus, k)?,
            "rennala_round_time_bound": fixed::rennala_round_time_bound(&taus, k)?,
            "malenia_round_time": fixed::malenia_round_time(&taus, k)?,
        }),
        TimingAlgorithm::Ringmaster => json!({
            "window_bound": s.window_bound()?,
            "asgd_max_delay": if taus.len() <= 4096 { Some(fixed::asgd_max_delay(&taus)?) } else { None },
        }),
        TimingAlgorithm::Async => {
            let t = fixed::nth_completion_time(&taus, s.rounds, "--rounds")?;
            let by_time = time.map(|t| fixed::asgd_updates_by(&taus, t)).transpose()?;
            json!({
                "last_update_time": t,
                "updates_by_then": fixed::asgd_updates_by(&taus, t)?,
                "time": time,
                "updates_by_time": by_time,
            })
        }
        _ => Value::Null,
    })
}

/// The simulated mean's distance from theory in standard errors; "exact" when they agree to
/// rounding, relative to their size (a fixed time model has SE ≈ 0, and float noise would read
/// as many SEs).
/// True when the simulated mean equals the theory up to rounding (U = 1 gives exactly K
/// uploaders, with an SE of 0).
fn exact(sim: &RoundStat, theory: f64) -> bool {
    (sim.mean() - theory).abs() <= 1e-12 * theory.abs().max(sim.mean().abs())
}

fn deviation(sim: &RoundStat, theory: f64) -> String {
    let d = sim.deviation_in_se(theory);
    if exact(sim, theory) {
        "exact".to_string()
    } else if d.is_finite() {
        format!("{d:+.2} SE")
    } else {
        "-".to_string()
    }
}

/// Six decimals, or six significant digits in scientific notation for very large or small
/// values.
fn num(x: f64) -> String {
    digits(x, 6)
}

/// `d` decimals, or `d` significant digits in scientific notation for very large or small values.
fn digits(x: f64, d: usize) -> String {
    if x != 0.0 && x.is_finite() && !(1e-3..1e9).contains(&x.abs()) {
        format!("{x:.*e}", d - 1)
    } else {
        format!("{x:.d$}")
    }
}

fn updates_per_second(o: &TimingOutcome) -> f64 {
    o.updates as f64 / o.wall_seconds.max(1e-9)
}

fn stat_json(r: &RoundStat) -> Value {
    let finite = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
    json!({ "mean": finite(r.mean()), "se": finite(r.se()) })
}

fn theory_json(t: &TheoryValues) -> Value {
    if t.round_time.is_none() && t.updates_per_worker.is_none() && t.uploaders.is_none() {
        return Value::Null;
    }
    json!({ "round_time": t.round_time, "updates_per_worker": t.updates_per_worker, "uploaders": t.uploaders })
}

fn setup_json(s: &TimingSetup, a: &Args) -> Value {
    json!({
        "speeds": a.speeds,
        "uplink": a.uplink,
        "downlink": a.downlink,
        "uplink_bandwidth": a.uplink_bandwidth,
        "downlink_bandwidth": a.downlink_bandwidth,
        "link_speeds": a.link_speeds,
        "algorithm": s.algorithm.name(),
        "workers": s.workers,
        "wait": s.wait,
        "local_steps": s.local_steps,
        "max_steps": s.max_steps,
        "deadline": s.deadline,
        "rounds": s.rounds,
        "seed": s.seed,
        "compute_time": s.compute.spec(),
        "model_bytes": s.model_bytes,
        "delay_threshold": s.asynchronous.delay_threshold,
        "ignore_stale": s.asynchronous.ignore_stale,
        "concurrency": s.asynchronous.concurrency,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn timing_json(s: &TimingSetup, a: &Args, o: &TimingOutcome, t: &TheoryValues) -> Value {
    json!({
        "setup": setup_json(s, a),
        "engine": o.engine,
        "simulated": {
            "round_time": stat_json(&o.round_time),
            "updates_per_worker": stat_json(&o.updates_per_worker),
            "uploaders": stat_json(&o.uploaders),
        },
        "se_method": o.se_method.name(),
        "se_batches": o.round_time.batches(),
        "theory": theory_json(t),
        "theory_note": s.theory_note(),
        "delays": o.delays.as_ref().map(|d| json!({
            "applied": d.applied, "mean": if d.applied > 0 { json!(d.mean()) } else { Value::Null }, "max": d.max,
            "ignored": d.ignored, "cancelled": d.cancelled,
        })),
        "max_window": o.max_window,
        "window_bound": s.window_bound().ok().flatten(),
        "updates": o.updates,
        "events": o.events,
        "simulated_time": o.sim_time,
        "wall_seconds": o.wall_seconds,
        "updates_per_second": updates_per_second(o),
    })
}
