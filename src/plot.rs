//! Figures from a results directory (placeholder until the plotting issue lands: writes nothing).

use std::path::{Path, PathBuf};

use crate::error::Result;

/// Draws the figures of `dir`; returns the files written.
pub fn plot_dir(_dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(Vec::new())
}
