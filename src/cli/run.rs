//! `stsyn run CONFIG`: run an experiment file into a results directory, print the table of time
//! and communication to the target accuracy, and draw the plots. Common knobs can be overridden
//! on the command line without editing the file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Overrides, RawExperiment};
use crate::error::{Error, Result};
use crate::experiment::{self, RunOptions};
use crate::model::Precision;

/// Flags of `stsyn run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (TOML), e.g. experiments/comparison.toml.
    config: PathBuf,
    /// Results directory (default: results/NAME, where NAME is the experiment name).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run with this seed only (replaces the file's seeds).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run with these seeds, comma-separated (replaces the file's seeds).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Maximum rounds of every algorithm.
    #[arg(long)]
    rounds: Option<u64>,
    /// Number of workers M.
    #[arg(long)]
    workers: Option<usize>,
    /// Directory of the CIFAR-10 or MNIST files.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Step-duration model of every worker, e.g. 'exp(mean=1)' (every spec: `stsyn timing --help`).
    #[arg(long)]
    compute_time: Option<String>,
    /// Per-worker speeds: 'same', 'means(...)', 'rates(...)', 'profile(a=0, b=1, p=0.5)'.
    #[arg(long)]
    speeds: Option<String>,
    /// Uplink latency: 'none' or a distribution.
    #[arg(long)]
    uplink: Option<String>,
    /// Downlink latency: 'none' or a distribution.
    #[arg(long)]
    downlink: Option<String>,
    /// Per-worker multipliers of the link times ('same', 'means(...)', ... as for --speeds).
    #[arg(long)]
    link_speeds: Option<String>,
    /// Arithmetic of the network's matrix products: f32, or bf16 (bf16 factors, f32
    /// accumulation; needs AMX-BF16).
    #[arg(long)]
    precision: Option<Precision>,
    /// Also write events.csv (one row per engine event; large).
    #[arg(long)]
    events: bool,
    /// No progress bar and no table.
    #[arg(long, short)]
    quiet: bool,
    /// Do not draw the plots.
    #[arg(long)]
    no_plot: bool,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `stsyn run`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut raw = RawExperiment::read(&args.config)?;
    let overrides = Overrides {
        seeds: args.seeds.clone().or(args.seed.map(|s| vec![s])),
        rounds: args.rounds,
        workers: args.workers,
        data_dir: args.data.clone(),
        compute_time: args.compute_time.clone(),
        precision: args.precision,
        speeds: args.speeds.clone(),
        uplink: args.uplink.clone(),
        downlink: args.downlink.clone(),
        link_speeds: args.link_speeds.clone(),
    };
    raw.apply(&overrides)?;
    let base = args
        .config
        .parent()
        .map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() })
        .unwrap_or_else(|| PathBuf::from("."));
    let stem = args.config.file_stem().map_or("experiment".into(), |s| s.to_string_lossy().into_owned());
    let exp = raw.validate(&base, &stem)?;
    for w in &exp.warnings {
        eprintln!("warning: {}", super::tidy(w));
    }
    let out = args.out.clone().unwrap_or_else(|| experiment::default_out_dir(&exp));
    // the results directory gets its own config.toml (and evals.csv, ...): never over the input
    let same_file = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same_file(&out.join("config.toml"), &args.config) {
        return Err(Error::invalid(
            "--out",
            out.display(),
            "holds the experiment file itself, which the results' config.toml would replace",
        )
        .into());
    }
    install_interrupt_handler(out.join("summary.json"))?;
    let summary = experiment::run(
        &exp,
        &RunOptions { out: out.clone(), events: args.events, progress: !args.quiet, interrupted: &INTERRUPTED },
    )?;
    // the figures first: a closed stdout (`| head`) ends the process at the first print
    let written = if args.no_plot { Vec::new() } else { crate::plot::plot_dir(&out)? };
    if !args.quiet {
        print!("{}", summary.table());
        for p in written {
            println!("wrote {}", p.display());
        }
    }
    if !args.quiet {
        println!("results in {} ({})", out.display(), summary.status);
    }
    if summary.status == "interrupted" {
        return Err(Error::Interrupted(format!(
            "interrupted: {} holds the complete rows written so far",
            out.display()
        ))
        .into());
    }
    Ok(())
}

/// The first interrupt lets the current round finish; the second marks `summary` as aborted
/// and exits at once with code 130.
fn install_interrupt_handler(summary: PathBuf) -> Result<()> {
    ctrlc::set_handler(move || {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            mark_aborted(&summary);
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current round, then writing the results (interrupt again to abort)");
    })
    .map_err(|e| Error::Config(format!("cannot install the Ctrl-C handler: {e}")))
}

/// Rewrites the summary of a run stopped by a second interrupt with status `aborted`, so that it
/// does not claim to be running; best effort, as the process exits right after. A file of its
/// own is renamed over the summary: the experiment thread may be writing `summary.json.partial`.
fn mark_aborted(summary: &Path) {
    let Some(mut json) =
        std::fs::read_to_string(summary).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return;
    };
    json["status"] = "aborted".into();
    json["error"] = "aborted by a second interrupt: the runs listed are complete; evals.csv may also hold \
                     rows of the run that was cut short, and rounds.csv was left as rounds.csv.partial"
        .into();
    let aborting = summary.with_extension("json.aborting");
    let text = serde_json::to_string_pretty(&json).expect("a parsed summary serialises");
    if std::fs::write(&aborting, text).is_ok() {
        let _ = std::fs::rename(&aborting, summary);
    }
}
