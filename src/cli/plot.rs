//! `stsyn plot DIR`: draw the figures of a results directory from its `evals.csv` (see
//! [`crate::plot`]) and print the files written.

use std::path::PathBuf;

/// Flags of `stsyn plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The results directory holding evals.csv, e.g. results/comparison.
    dir: PathBuf,
}

/// Runs `stsyn plot`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    for path in crate::plot::plot_dir(&args.dir)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
