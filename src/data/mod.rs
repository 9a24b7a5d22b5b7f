//! Placeholder while the model compiles.
