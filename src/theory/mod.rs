//! Closed forms: pure functions of the model parameters, with no RNG and no engine. They are the
//! oracles the simulator is checked against (`stsyn timing` must reproduce them) and the
//! quick answers the CLI can print.
//!
//! - [`stsyn`]: STSyn's round time E\[T\], updates per worker Ū and uploaders E|𝓜| under
//!   exponential update times, exactly (big rationals) and in f64 for M up to 10^4 and beyond,
//!   plus per-worker rates (specs/stsyn.md §2).
//! - [`dutta`]: expected runtime per iteration of K-sync, K-batch-sync, K-async, K-batch-async
//!   and asynchronous SGD (specs/baselines.md §4.3), and fully synchronous rounds.
//! - [`fixed`]: the fixed computation model (worker i always takes τ_i): ASGD update counts,
//!   Rennala and Malenia round times, Rennala's bound, Ringmaster's t(R) (specs/baselines.md §5, §6.3, §7.3).
//! - [`universal`]: the universal computation model (time-varying rates): Ringmaster's
//!   window bound t(R; T_0) (specs/baselines.md §7.3, Lemma 5.1).
//! - [`spiridonoff`]: communication schedules of local SGD with constant, increasing and one-shot
//!   averaging (specs/baselines.md §9.2).
//!
//! Notation follows the STSyn paper: M workers, K waited for, U local updates per round, λ the
//! update rate and μ = 1/λ the mean update time.

pub mod dutta;
pub mod fixed;
mod numeric;
pub mod spiridonoff;
pub mod stsyn;
pub mod universal;

pub use numeric::{harmonic, harmonic_difference};
