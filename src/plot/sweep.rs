//! Figures from a sweep's `stsyn timing --summary-csv` file: for the round time, the updates per
//! worker and the uploaders, the simulated mean (dots, with bars of ±2 SE) against the swept
//! parameter (K, else U, else M: the first with more than one value), and the closed form (a line
//! in the same colour) where the file has one. A `stsyn theory --summary-csv` file has the closed
//! forms alone, and gives the lines alone; a quantity with nothing to draw gets no figure. Points that differ in another swept parameter (or
//! the algorithm) are separate series, labelled with it. The figures go next to the file, named after it:
//! `sweep.csv` gives `sweep_round_time.svg` and `.png`, and so on.

use std::path::{Path, PathBuf};

use super::{Figure, Series, csv_error, find_column, open_csv, write_figures};
use crate::error::{Error, Result};

/// The quantities of a summary row: column prefix and axis title.
const QUANTITIES: [(&str, &str); 3] =
    [("round_time", "round time"), ("updates_per_worker", "updates per worker"), ("uploaders", "uploaders")];

/// The parameters a sweep can vary, in the order the x axis is chosen: column, symbol, axis title.
const PARAMETERS: [(&str, &str, &str); 3] = [
    ("wait", "K", "K (workers waited for)"),
    ("local_steps", "U", "U (local updates per round)"),
    ("workers", "M", "M (workers)"),
];

/// One row of the file.
struct Point {
    algorithm: String,
    /// K, U, M (in the order of [`PARAMETERS`]).
    parameters: [f64; 3],
    /// Per quantity: mean (None in a theory file), SE (NaN when empty), theory.
    values: [(Option<f64>, f64, Option<f64>); 3],
}

/// Draws the figures of the summary file `path`; returns the files written.
pub fn plot_summary(path: &Path) -> Result<Vec<PathBuf>> {
    let points = read_summary(path)?;
    let varies = |p: usize| points.iter().any(|q| q.parameters[p] != points[0].parameters[p]);
    let x = (0..3).find(|&p| varies(p)).unwrap_or(0);
    // a series per algorithm and value of the other varying parameters, in order of appearance
    let others: Vec<usize> = (0..3).filter(|&p| p != x && varies(p)).collect();
    let algorithms = points.iter().any(|q| q.algorithm != points[0].algorithm);
    let group = |q: &Point| {
        let mut parts = Vec::new();
        if algorithms {
            parts.push(q.algorithm.clone());
        }
        parts.extend(others.iter().map(|&p| format!("{}={}", PARAMETERS[p].1, q.parameters[p])));
        parts.join(", ")
    };
    let mut groups: Vec<String> = Vec::new();
    for q in &points {
        let g = group(q);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let stem = path.file_stem().map_or("summary".into(), |s| s.to_string_lossy().into_owned());
    let figures: Vec<Figure> = QUANTITIES
        .iter()
        .enumerate()
        .map(|(k, &(column, title))| {
            let mut series = Vec::new();
            for (colour, g) in groups.iter().enumerate() {
                let mut members: Vec<&Point> = points.iter().filter(|q| group(q) == *g).collect();
                members.sort_by(|a, b| a.parameters[x].total_cmp(&b.parameters[x]));
                let simulated: Vec<(f64, f64)> =
                    members.iter().filter_map(|q| q.values[k].0.map(|m| (q.parameters[x], m))).collect();
                let bars = members
                    .iter()
                    .filter_map(|q| match q.values[k] {
                        (Some(m), se, _) if se.is_finite() => Some((q.parameters[x], m - 2.0 * se, m + 2.0 * se)),
                        _ => None,
                    })
                    .collect();
                let label = |what: &str| if g.is_empty() { what.to_string() } else { format!("{g} {what}") };
                if !simulated.is_empty() {
                    series.push(Series { label: label("simulated"), seeds: vec![simulated], dots: true, bars, colour });
                }
                let theory: Vec<(f64, f64)> =
                    members.iter().filter_map(|q| q.values[k].2.map(|t| (q.parameters[x], t))).collect();
                if !theory.is_empty() {
                    let (dots, bars) = (false, Vec::new());
                    series.push(Series { label: label("theory"), seeds: vec![theory], dots, bars, colour });
                }
            }
            Figure {
                stem: format!("{stem}_{column}"),
                caption: stem.clone(),
                x_desc: PARAMETERS[x].2,
                y_desc: title,
                log_y: false,
                series,
            }
        })
        .filter(|f| !f.series.is_empty())
        .collect();
    if figures.is_empty() {
        return Err(Error::bad_file(path, "has no simulated value and no closed form to plot"));
    }
    write_figures(path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")), &figures)
}

/// Reads a summary file; columns are found by name.
fn read_summary(path: &Path) -> Result<Vec<Point>> {
    let (mut reader, header) = open_csv(path)?;
    let column = |name: &str| find_column(path, &header, name, "a stsyn timing or theory --summary-csv file");
    let algorithm = column("algorithm")?;
    let parameters = [column(PARAMETERS[0].0)?, column(PARAMETERS[1].0)?, column(PARAMETERS[2].0)?];
    // a timing file has the simulated means and SEs; a theory file has neither
    let simulated = header.iter().any(|h| h == "round_time_mean");
    let mut quantities = Vec::new();
    for (q, _) in QUANTITIES {
        let mean_se = if simulated { Some((column(&format!("{q}_mean"))?, column(&format!("{q}_se"))?)) } else { None };
        quantities.push((mean_se, column(&format!("{q}_theory"))?));
    }
    let mut points = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let text = |i: usize| record.get(i).unwrap_or("").trim();
        let number = |i: usize| {
            text(i).parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                let name = header.get(i).unwrap_or("?");
                Error::bad_file(path, format!("line {line}: {name} = '{}' is not a finite number", text(i)))
            })
        };
        let optional = |i: usize| if text(i).is_empty() { Ok(None) } else { number(i).map(Some) };
        let value = |(mean_se, theory): (Option<(usize, usize)>, usize)| -> Result<(Option<f64>, f64, Option<f64>)> {
            let (mean, se) = match mean_se {
                Some((mean, se)) => (Some(number(mean)?), optional(se)?.unwrap_or(f64::NAN)),
                None => (None, f64::NAN),
            };
            Ok((mean, se, optional(theory)?))
        };
        points.push(Point {
            algorithm: text(algorithm).to_string(),
            parameters: [number(parameters[0])?, number(parameters[1])?, number(parameters[2])?],
            values: [value(quantities[0])?, value(quantities[1])?, value(quantities[2])?],
        });
    }
    if points.is_empty() {
        return Err(Error::bad_file(path, "has a header but no points"));
    }
    Ok(points)
}
