//! The single integration-test binary: one module per area.

mod async_weights;
mod asynchronous;
mod cli;
mod data;
mod model;
mod overlap;
mod plot;
mod theory;
mod timing;
mod training;
