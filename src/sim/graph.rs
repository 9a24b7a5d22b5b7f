//! Communication graphs of decentralized training (specs/baselines.md §10.2): undirected,
//! connected, without self-loops, on the M workers 0..M−1. A [`GraphSpec`] is written as a short
//! spec string in the config:
//!
//! - `ring` — worker i talks to i ± 1 (mod M);
//! - `torus` or `torus(rows=R, cols=C)` — a 2-D torus (grid with wrap-around) with R·C = M; by
//!   default R is the largest divisor of M not above √M. Neighbours that coincide (a side of
//!   length 1 or 2) are counted once;
//! - `erdos_renyi(p=0.3)` — G(M, p), redrawn until connected (draw a from stream (Graph, 0, a),
//!   at most 1,000 draws), so it is fixed by the run's seed;
//! - `regular(d=3)` — a random d-regular graph (every worker has d neighbours), drawn uniformly
//!   enough for simulation by pairing the workers' d "half-edges" at random while skipping pairs
//!   that would make a self-loop or a repeated edge (Steger and Wormald's algorithm), started
//!   again when it gets stuck and redrawn until connected (from stream (Graph, 1, a), at most
//!   1,000 draws); M·d must be even and d < M;
//! - `complete` — every pair;
//! - `file(edges.txt)` — an edge list: one edge `i j` per line (0-based worker indices,
//!   separated by spaces, tabs or a comma), optionally followed by that edge's own constant
//!   latency and bandwidth (bytes per time unit); `#` starts a comment. The path is relative to
//!   the config file.
//!
//! Every graph is checked: a self-loop, a node that is not a worker, a repeated edge or a
//! disconnected graph is an error naming it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::error::{Error, Result};
use crate::rng::{Purpose, Seeds};
use crate::timing::spec::{Spec, parse_number};

/// Draws of a random graph (G(M, p) or d-regular) before giving up on a connected one.
pub const ERDOS_RENYI_ATTEMPTS: u64 = 1000;

/// How the graph is made; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphSpec {
    /// i ± 1 mod M.
    Ring,
    /// A 2-D torus of R rows and C columns, R·C = M (a missing side is M / the other; both
    /// missing: the most square factorisation).
    Torus {
        /// R.
        rows: Option<usize>,
        /// C.
        cols: Option<usize>,
    },
    /// G(M, p), redrawn until connected.
    ErdosRenyi {
        /// Edge probability.
        p: f64,
    },
    /// A random d-regular graph, redrawn until connected.
    Regular {
        /// d, every worker's degree.
        degree: usize,
    },
    /// Every pair of workers.
    Complete,
    /// An edge-list file.
    File {
        /// Its path (already resolved against the config's directory).
        path: PathBuf,
    },
}

/// One edge of an edge-list file with its own link parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdgeLink {
    /// One end.
    pub a: usize,
    /// The other end.
    pub b: usize,
    /// Constant latency of this edge, if given.
    pub latency: Option<f64>,
    /// Bandwidth of this edge (bytes per time unit), if given.
    pub bandwidth: Option<f64>,
}

/// A checked undirected graph on the workers.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Sorted neighbour lists N_i.
    neighbors: Vec<Vec<usize>>,
    /// Per-edge link parameters from an edge-list file.
    pub edge_links: Vec<EdgeLink>,
}

impl GraphSpec {
    /// Parses a graph spec; `base` resolves a relative edge-list path. `what` names the key.
    pub fn parse(what: &str, text: &str, base: &Path) -> Result<GraphSpec> {
        let s = Spec::parse(what, text)?;
        Ok(match s.name.as_str() {
            "ring" => {
                s.check_keys(&[], 0)?;
                GraphSpec::Ring
            }
            "torus" => {
                s.check_keys(&["rows", "cols"], 0)?;
                let count = |key: &str| -> Result<Option<usize>> {
                    match s.number(key, None)? {
                        None => Ok(None),
                        Some(v) if v >= 1.0 && v.fract() == 0.0 && v <= 1e9 => Ok(Some(v as usize)),
                        Some(v) => Err(s.error(format!(
                            "{key} = {} must be a whole number from 1 to 10^9",
                            crate::error::shown(v)
                        ))),
                    }
                };
                GraphSpec::Torus { rows: count("rows")?, cols: count("cols")? }
            }
            "erdos_renyi" | "er" | "gnp" => {
                s.check_keys(&["p"], 1)?;
                let p = s.required("p", Some(0))?;
                if !(p > 0.0 && p <= 1.0) {
                    return Err(s.error(format!("p = {p} must be in (0, 1]")));
                }
                GraphSpec::ErdosRenyi { p }
            }
            "regular" => {
                s.check_keys(&["d"], 1)?;
                let d = s.required("d", Some(0))?;
                if !(d >= 1.0 && d.fract() == 0.0 && d <= 1e9) {
                    return Err(s.error(format!("d = {d} must be a whole number >= 1")));
                }
                GraphSpec::Regular { degree: d as usize }
            }
            "complete" => {
                s.check_keys(&[], 0)?;
                GraphSpec::Complete
            }
            "file" | "edges" => {
                s.check_keys(&["path"], 1)?;
                let rel = s.raw("path", Some(0)).ok_or_else(|| s.error("missing the edge-list path"))?;
                GraphSpec::File { path: base.join(rel.trim()) }
            }
            other => {
                return Err(s.error(format!(
                    "unknown graph '{other}' (expected ring, torus, erdos_renyi(p=...), regular(d=...), complete or file(path))"
                )));
            }
        })
    }

    /// Builds the graph on `workers` workers (random graphs from `seeds`).
    pub fn build(&self, workers: usize, seeds: &Seeds) -> Result<Graph> {
        if workers < 2 {
            return Err(Error::invalid(
                "cluster.workers (M)",
                workers,
                "decentralized training needs at least 2 workers",
            ));
        }
        let graph = match self {
            GraphSpec::Ring => Graph::from_pairs(workers, (0..workers).map(|i| (i, (i + 1) % workers))),
            GraphSpec::Torus { rows, cols } => {
                let (rows, cols) = match (*rows, *cols) {
                    (Some(r), Some(c)) => (r, c),
                    (Some(r), None) => (r, workers / r),
                    (None, Some(c)) => (workers / c, c),
                    (None, None) => {
                        let r = most_square_rows(workers);
                        (r, workers / r)
                    }
                };
                if rows * cols != workers {
                    return Err(Error::invalid(
                        "graph",
                        self.describe(),
                        format!("a torus needs rows × cols = M = {workers} (got {rows} × {cols})"),
                    ));
                }
                torus(rows, cols)
            }
            GraphSpec::ErdosRenyi { p } => erdos_renyi(workers, *p, seeds)?,
            GraphSpec::Regular { degree } => regular(workers, *degree, seeds, &self.describe())?,
            GraphSpec::Complete => {
                Graph::from_pairs(workers, (0..workers).flat_map(|i| (i + 1..workers).map(move |j| (i, j))))
            }
            GraphSpec::File { path } => return Graph::read(path, workers),
        };
        graph.check_connected(&self.describe())?;
        Ok(graph)
    }

    /// The spec as text, for messages.
    pub fn describe(&self) -> String {
        match self {
            GraphSpec::Ring => "ring".into(),
            GraphSpec::Torus { rows, cols } => {
                let args: Vec<String> = [("rows", rows), ("cols", cols)]
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
                    .collect();
                if args.is_empty() { "torus".into() } else { format!("torus({})", args.join(", ")) }
            }
            GraphSpec::ErdosRenyi { p } => format!("erdos_renyi(p={p})"),
            GraphSpec::Regular { degree } => format!("regular(d={degree})"),
            GraphSpec::Complete => "complete".into(),
            GraphSpec::File { path } => format!("file({})", path.display()),
        }
    }
}

impl Graph {
    /// The graph with the given undirected edges (duplicates and self-loops must already be
    /// excluded by the caller, or are dropped for generated graphs).
    fn from_pairs(workers: usize, pairs: impl Iterator<Item = (usize, usize)>) -> Graph {
        let mut sets = vec![BTreeSet::new(); workers];
        for (a, b) in pairs {
            if a != b {
                sets[a].insert(b);
                sets[b].insert(a);
            }
        }
        Graph { neighbors: sets.into_iter().map(|s| s.into_iter().collect()).collect(), edge_links: Vec::new() }
    }

    /// Builds a graph from explicit neighbour lists (tests and callers that already have one);
    /// checks symmetry, self-loops, indices and connectivity.
    pub fn from_neighbors(neighbors: Vec<Vec<usize>>) -> Result<Graph> {
        let m = neighbors.len();
        for (i, list) in neighbors.iter().enumerate() {
            for &j in list {
                if j >= m {
                    return Err(Error::invalid(
                        "graph",
                        format!("edge {i}–{j}"),
                        format!("node {j} is not a worker (M = {m})"),
                    ));
                }
                if j == i {
                    return Err(Error::invalid("graph", format!("edge {i}–{i}"), "self-loops are not allowed"));
                }
                if !neighbors[j].contains(&i) {
                    return Err(Error::invalid("graph", format!("edge {i}–{j}"), "the graph must be undirected"));
                }
            }
        }
        let g = Graph::from_pairs(m, neighbors.iter().enumerate().flat_map(|(i, l)| l.iter().map(move |&j| (i, j))));
        g.check_connected("graph")?;
        Ok(g)
    }

    /// Reads an edge-list file (see the module docs).
    pub fn read(path: &Path, workers: usize) -> Result<Graph> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |line: usize, reason: String| Error::bad_file(path, format!("line {line}: {reason}"));
        let mut seen: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
        let mut edge_links = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> =
                content.split(|c: char| c == ',' || c.is_whitespace()).filter(|f| !f.is_empty()).collect();
            if !(2..=4).contains(&fields.len()) {
                return Err(bad(line_no, format!("'{content}': expected 'i j [latency [bandwidth]]'")));
            }
            let node = |f: &str| -> Result<usize> {
                let v: usize = f.parse().map_err(|_| bad(line_no, format!("node '{f}' is not a worker index")))?;
                if v >= workers {
                    return Err(bad(
                        line_no,
                        format!("node {v} is not a worker (M = {workers}: nodes are 0..{})", workers - 1),
                    ));
                }
                Ok(v)
            };
            let (a, b) = (node(fields[0])?, node(fields[1])?);
            if a == b {
                return Err(bad(line_no, format!("self-loop {a}–{b}")));
            }
            let key = (a.min(b), a.max(b));
            if let Some(first) = seen.insert(key, line_no) {
                return Err(bad(line_no, format!("edge {}–{} repeats line {first}", key.0, key.1)));
            }
            let number = |f: &str, what: &str, allow_zero: bool| -> Result<f64> {
                match parse_number(f) {
                    Some(v) if v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) => Ok(v),
                    _ => Err(bad(
                        line_no,
                        format!("{what} '{f}' must be a finite number {}", if allow_zero { ">= 0" } else { "> 0" }),
                    )),
                }
            };
            let latency = fields.get(2).map(|f| number(f, "latency", true)).transpose()?;
            let bandwidth = fields.get(3).map(|f| number(f, "bandwidth", false)).transpose()?;
            if latency.is_some() || bandwidth.is_some() {
                edge_links.push(EdgeLink { a, b, latency, bandwidth });
            }
        }
        let mut graph = Graph::from_pairs(workers, seen.keys().copied());
        graph.edge_links = edge_links;
        graph.check_connected(&format!("file({})", path.display()))?;
        Ok(graph)
    }

    /// M.
    pub fn workers(&self) -> usize {
        self.neighbors.len()
    }

    /// N_i, sorted.
    pub fn neighbors(&self, i: usize) -> &[usize] {
        &self.neighbors[i]
    }

    /// d_i = |N_i|.
    pub fn degree(&self, i: usize) -> usize {
        self.neighbors[i].len()
    }

    /// Number of undirected edges.
    pub fn edges(&self) -> usize {
        self.neighbors.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// Fails unless every worker can reach worker 0.
    fn check_connected(&self, what: &str) -> Result<()> {
        let m = self.workers();
        let mut seen = vec![false; m];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for &j in &self.neighbors[i] {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        let cut: Vec<usize> = (0..m).filter(|&i| !seen[i]).collect();
        if cut.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = cut.iter().take(8).map(usize::to_string).collect();
        let more = if cut.len() > 8 { format!(" and {} more", cut.len() - 8) } else { String::new() };
        Err(Error::invalid(
            "graph",
            what,
            format!("is disconnected: worker(s) {}{more} cannot reach worker 0", shown.join(", ")),
        ))
    }

    /// Metropolis–Hastings weight of edge i–j: 1 / (1 + max(d_i, d_j)).
    pub fn metropolis_weight(&self, i: usize, j: usize) -> f64 {
        1.0 / (1.0 + self.degree(i).max(self.degree(j)) as f64)
    }
}

/// The largest divisor of M not above √M.
fn most_square_rows(workers: usize) -> usize {
    (1..=workers).take_while(|r| r * r <= workers).filter(|r| workers.is_multiple_of(*r)).last().unwrap_or(1)
}

/// The R × C torus: worker r·C + c talks to (r ± 1, c) and (r, c ± 1), wrapping around.
fn torus(rows: usize, cols: usize) -> Graph {
    let id = |r: usize, c: usize| (r % rows) * cols + (c % cols);
    let pairs =
        (0..rows).flat_map(|r| (0..cols).flat_map(move |c| [(id(r, c), id(r + 1, c)), (id(r, c), id(r, c + 1))]));
    Graph::from_pairs(rows * cols, pairs)
}

/// G(M, p), redrawn until connected.
fn erdos_renyi(workers: usize, p: f64, seeds: &Seeds) -> Result<Graph> {
    for attempt in 0..ERDOS_RENYI_ATTEMPTS {
        let mut rng = seeds.stream(Purpose::Graph, 0, attempt);
        let mut pairs = Vec::new();
        for i in 0..workers {
            for j in i + 1..workers {
                if rng.random::<f64>() < p {
                    pairs.push((i, j));
                }
            }
        }
        let graph = Graph::from_pairs(workers, pairs.into_iter());
        if graph.check_connected("").is_ok() {
            return Ok(graph);
        }
    }
    Err(Error::invalid(
        "graph",
        format!("erdos_renyi(p={p})"),
        format!("gave no connected graph on M = {workers} workers in {ERDOS_RENYI_ATTEMPTS} draws: raise p"),
    ))
}

/// A random d-regular graph on `workers` workers, redrawn until connected.
fn regular(workers: usize, degree: usize, seeds: &Seeds, what: &str) -> Result<Graph> {
    if degree >= workers {
        return Err(Error::invalid("graph", what, format!("d must be below M = {workers}")));
    }
    if workers * degree % 2 == 1 {
        return Err(Error::invalid("graph", what, format!("M·d = {workers}·{degree} must be even")));
    }
    if degree == 1 && workers > 2 {
        return Err(Error::invalid("graph", what, "a 1-regular graph on more than 2 workers is disconnected"));
    }
    for attempt in 0..ERDOS_RENYI_ATTEMPTS {
        let mut rng = seeds.stream(Purpose::Graph, 1, attempt);
        if let Some(graph) = pair_half_edges(workers, degree, &mut rng)
            && graph.check_connected("").is_ok()
        {
            return Ok(graph);
        }
    }
    Err(Error::invalid(
        "graph",
        what,
        format!("gave no connected graph on M = {workers} workers in {ERDOS_RENYI_ATTEMPTS} draws: raise d"),
    ))
}

/// One try of Steger and Wormald's pairing: `degree` half-edges per worker, two unpaired ones
/// drawn at a time and joined unless that makes a self-loop or a repeated edge. None when no
/// allowed pair is left before every half-edge is paired.
fn pair_half_edges(workers: usize, degree: usize, rng: &mut impl Rng) -> Option<Graph> {
    let mut open: Vec<usize> = (0..workers).flat_map(|i| std::iter::repeat_n(i, degree)).collect();
    let mut sets = vec![BTreeSet::new(); workers];
    let allowed = |sets: &[BTreeSet<usize>], a: usize, b: usize| a != b && !sets[a].contains(&b);
    while !open.is_empty() {
        let mut failures = 0usize;
        loop {
            let (x, y) = (rng.random_range(0..open.len()), rng.random_range(0..open.len()));
            let (a, b) = (open[x], open[y]);
            if x != y && allowed(&sets, a, b) {
                sets[a].insert(b);
                sets[b].insert(a);
                // remove the larger index first so that the smaller stays valid
                open.swap_remove(x.max(y));
                open.swap_remove(x.min(y));
                break;
            }
            failures += 1;
            if failures > 64 * open.len() {
                // rare: look for any allowed pair at all; none left means start again
                let stuck = !open.iter().enumerate().any(|(i, &a)| open[i + 1..].iter().any(|&b| allowed(&sets, a, b)));
                if stuck {
                    return None;
                }
                failures = 0;
            }
        }
    }
    Some(Graph { neighbors: sets.into_iter().map(|s| s.into_iter().collect()).collect(), edge_links: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str, m: usize) -> Result<Graph> {
        GraphSpec::parse("graph", text, Path::new("."))?.build(m, &Seeds::new(1))
    }

    #[test]
    fn generated_graphs_have_the_expected_degrees() {
        let ring = build("ring", 6).unwrap();
        assert_eq!(ring.neighbors(0), &[1, 5]);
        assert_eq!(ring.edges(), 6);
        assert_eq!(build("ring", 2).unwrap().neighbors(0), &[1]);
        let torus = build("torus", 16).unwrap();
        assert!((0..16).all(|i| torus.degree(i) == 4));
        assert_eq!(torus.neighbors(0), &[1, 3, 4, 12]);
        let thin = build("torus(rows=2)", 6).unwrap();
        assert_eq!(thin.neighbors(0), &[1, 2, 3]); // up and down coincide
        let complete = build("complete", 5).unwrap();
        assert_eq!(complete.edges(), 10);
        let er = build("erdos_renyi(p=0.3)", 20).unwrap();
        assert_eq!(er, build("erdos_renyi(p=0.3)", 20).unwrap(), "fixed by the seed");
        assert!((0..20).all(|i| er.degree(i) >= 1));
        for (m, d) in [(10, 3), (50, 4), (7, 6), (2, 1), (200, 8)] {
            let g = build(&format!("regular(d={d})"), m).unwrap();
            assert!((0..m).all(|i| g.degree(i) == d), "M = {m}, d = {d}: every worker has d neighbours");
            assert!((0..m).all(|i| !g.neighbors(i).contains(&i)), "no self-loops");
            assert_eq!(g.edges(), m * d / 2);
        }
        let g = build("regular(d=3)", 20).unwrap();
        assert_eq!(g, build("regular(d=3)", 20).unwrap(), "fixed by the seed");
        let other =
            GraphSpec::parse("graph", "regular(d=3)", Path::new(".")).unwrap().build(20, &Seeds::new(2)).unwrap();
        assert_ne!(g, other, "another seed, another graph");
    }

    #[test]
    fn bad_specs_are_rejected() {
        assert!(build("torus(rows=3)", 16).unwrap_err().to_string().contains("rows × cols"));
        assert!(build("erdos_renyi(p=0)", 4).unwrap_err().to_string().contains("p = 0"));
        assert!(build("erdos_renyi(p=0.001)", 30).unwrap_err().to_string().contains("no connected graph"));
        assert!(build("star", 4).unwrap_err().to_string().contains("unknown graph 'star'"));
        assert!(build("complete(3)", 4).unwrap_err().to_string().contains("takes no arguments"));
        assert!(build("regular(d=3)", 5).unwrap_err().to_string().contains("must be even"));
        assert!(build("regular(d=5)", 5).unwrap_err().to_string().contains("below M = 5"));
        assert!(build("regular(d=1)", 6).unwrap_err().to_string().contains("disconnected"));
        assert!(build("regular(d=2.5)", 6).unwrap_err().to_string().contains("whole number"));
        assert!(build("regular", 6).unwrap_err().to_string().contains("d"));
        assert!(build("ring", 1).unwrap_err().to_string().contains("at least 2 workers"));
        assert!(
            Graph::from_neighbors(vec![vec![1], vec![0], vec![]]).unwrap_err().to_string().contains("disconnected")
        );
    }
}
