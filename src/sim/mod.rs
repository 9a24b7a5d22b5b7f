//! Simulated time: the event queue, the discrete-event engine, the round-synchronous driver and
//! its heap-free per-round kernel, the communication graphs of decentralized runs, and running
//! statistics.

pub mod engine;
pub mod graph;
pub mod kernel;
pub mod queue;
pub mod round;
pub mod stats;

pub use engine::{Actions, Algorithm, Command, Engine, EngineStats, Message, Node};
pub use graph::{Graph, GraphSpec};
pub use kernel::RoundKernel;
pub use round::{FixedRounds, MAX_STEPS_PER_ROUND, RoundPlan, RoundPolicy, RoundSync, check_steps_per_round};
pub use stats::{RoundStat, Running};
