//! Worker-to-worker links of decentralized runs (specs/baselines.md §1.3, §10.2): every directed
//! edge i → j is its own link — a latency distribution plus bytes / bandwidth — drawn from its own
//! random stream (PeerCommTime, i·2³² + j, epoch), so the two directions of an undirected edge are
//! independent and one edge's draws never depend on traffic elsewhere. A broadcast is one send
//! per neighbour. Every edge uses the default link unless the graph's edge list gives it its own
//! latency or bandwidth ([`PeerLinks::set`]).

use std::collections::HashMap;

use super::{Dist, Link};
use crate::rng::{Purpose, Seeds, Stream};

/// The links between workers; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerLinks {
    /// The link of every edge without an override.
    pub default: Link,
    /// Per-edge overrides, keyed by the undirected edge (smaller index first).
    overrides: HashMap<(usize, usize), Link>,
}

impl Default for PeerLinks {
    /// Instantaneous links, as in the time-complexity literature.
    fn default() -> Self {
        PeerLinks::new(Link::ZERO)
    }
}

impl PeerLinks {
    /// Every edge uses `default`.
    pub fn new(default: Link) -> Self {
        PeerLinks { default, overrides: HashMap::new() }
    }

    /// Gives the undirected edge {a, b} its own link (both directions, independent draws).
    pub fn set(&mut self, a: usize, b: usize, link: Link) {
        self.overrides.insert((a.min(b), a.max(b)), link);
    }

    /// Overrides the default link's constant latency and/or bandwidth on edge {a, b}: the
    /// per-edge values of an edge-list file.
    pub fn set_constant(&mut self, a: usize, b: usize, latency: Option<f64>, bandwidth: Option<f64>) {
        let mut link = self.default.clone();
        if let Some(l) = latency {
            link.latency = if l == 0.0 { None } else { Some(Dist::Constant { value: l }) };
        }
        if bandwidth.is_some() {
            link.bandwidth = bandwidth;
        }
        self.set(a, b, link);
    }

    /// The link from `from` to `to`.
    pub fn link(&self, from: usize, to: usize) -> &Link {
        self.overrides.get(&(from.min(to), from.max(to))).unwrap_or(&self.default)
    }

    /// True when every message between workers is instantaneous.
    pub fn is_zero(&self) -> bool {
        self.default.is_zero() && self.overrides.values().all(Link::is_zero)
    }

    /// The stream of the directed edge `from` → `to` during `epoch`.
    pub fn stream(seeds: &Seeds, from: usize, to: usize, epoch: u64) -> Stream {
        seeds.stream(Purpose::PeerCommTime, ((from as u64) << 32) | to as u64, epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_undirected_and_keep_the_default_elsewhere() {
        let mut links = PeerLinks::new(Link { latency: Some(Dist::Constant { value: 1.0 }), bandwidth: Some(10.0) });
        links.set_constant(3, 1, Some(0.5), None);
        assert_eq!(links.link(1, 3), links.link(3, 1));
        assert_eq!(links.link(1, 3).latency, Some(Dist::Constant { value: 0.5 }));
        assert_eq!(links.link(1, 3).bandwidth, Some(10.0));
        assert_eq!(links.link(0, 1), &links.default);
        assert!(!links.is_zero());
        assert!(PeerLinks::default().is_zero());
    }
}
