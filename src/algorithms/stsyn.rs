//! STSyn (Zhu, Zhang, Wang, IEEE TSP 2024): M workers each aim for U local updates per round; the
//! server waits until the K-th fastest worker has finished U, no worker stops computing until
//! then (the fastest K−1 usually do more than U), the update in progress at that moment is
//! cancelled, and every worker with at least one completed update uploads; the server takes the
//! uniform average of the uploaded models (specs/stsyn.md §1.3).
//!
//! Option `max_steps` caps the extra updates, as the authors' `Comparisons.py` does with
//! ⌊1.5·U⌋ (§1.4); the default (None) is the paper's uncapped algorithm.

use crate::error::{Error, Result};
use crate::sim::RoundPlan;

/// The round plan of STSyn with M workers, waiting for K, U local updates, optional cap.
pub fn plan(workers: usize, wait: usize, local_steps: u32, max_steps: Option<u32>) -> Result<RoundPlan> {
    let cap = max_steps.unwrap_or(u32::MAX);
    if cap < local_steps {
        return Err(Error::invalid("max steps", cap, format!("must be at least U = {local_steps}")));
    }
    Ok(RoundPlan::uniform(workers, wait, local_steps, Some(cap)))
}

/// The cap of the authors' `Comparisons.py`: ⌊1.5·U⌋.
pub fn comparisons_cap(local_steps: u32) -> u32 {
    local_steps + local_steps / 2
}
