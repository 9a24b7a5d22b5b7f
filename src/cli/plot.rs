//! `stsyn plot DIR`: draw the figures of a results directory from its `evals.csv` (see
//! [`crate::plot`]), or of a sweep's `stsyn timing --summary-csv` file, and print the files
//! written.

use std::path::PathBuf;

/// Flags of `stsyn plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The results directory holding evals.csv, e.g. results/comparison; or a file written by
    /// `stsyn timing --summary-csv` (figures of the sweep next to it).
    dir: PathBuf,
}

/// Runs `stsyn plot`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.dir.is_file() {
        for path in crate::plot::plot_summary(&args.dir)? {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    // a run that stopped early leaves valid files; say so, since the curves end where it stopped
    let summary_path = args.dir.join("summary.json");
    let summary = std::fs::read_to_string(&summary_path).ok().and_then(|text| {
        serde_json::from_str::<serde_json::Value>(&text)
            .inspect_err(|e| {
                eprintln!("warning: {}: not valid JSON ({e}); plotting evals.csv without it", summary_path.display())
            })
            .ok()
    });
    let status = summary.and_then(|v| {
        let error = v["error"].as_str().map(str::to_string);
        v["status"].as_str().map(|s| (s.to_string(), error))
    });
    if let Some((status, error)) = status
        && status != "complete"
    {
        let why = error.map(|e| format!(" ({e})")).unwrap_or_default();
        eprintln!("note: summary.json marks the run {status}{why}; plotting the evaluations written before it stopped");
    }
    for path in crate::plot::plot_dir(&args.dir)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
