//! Datasets (filled below).
