//! Figures from a results directory: reads `DIR/evals.csv` (the format of
//! [`crate::experiment::monitor`]) and draws, as SVG and PNG next to it,
//!
//! - `accuracy_time`: test accuracy (%) against simulated wall-clock time, and
//! - `accuracy_comm`: test accuracy (%) against messages (downloads + uploads), and
//! - `loss_time`: test loss against simulated time (log scale when every plotted loss is positive);
//! - for problems without accuracy (regression), `loss_time` and `loss_comm` with the test loss
//!   instead (log scale when every plotted loss is positive), and, when the file has the distance
//!   to the optimum, `distance_time`: that distance against time (log scale when positive).
//!
//! One colour per algorithm, in the order of first appearance in the file; the legend sits in a
//! panel right of the plot so it never covers a curve, and names a curve drawn exactly under a
//! later one ("AdaComm, under PASGD"); the caption is the directory's name.
//! Non-finite values (a diverged run writes `NaN` or `inf`) and empty fields are left out of a
//! curve, so a diverged seed's curve stops where it diverged.
//!
//! **Several seeds.** Each seed's curve is drawn thin and light, the mean over seeds bold. The
//! mean is taken on the union of the seeds' own evaluation points that lie where *every* seed has
//! data (from the latest first point to the earliest last point): each seed is linearly
//! interpolated there, which is how its thin curve is drawn, so the bold line is exactly the
//! pointwise mean of the thin lines. It stops at the end of the shortest seed rather than
//! extrapolating a finished (or diverged) run. With one seed, that seed's curve is drawn bold.
//!
//! A sweep's `stsyn timing --summary-csv` file is plotted by [`sweep`] with the same drawing.
//!
//! Everything is read and rendered in memory first and each file is written through
//! [`PendingFile`], so a malformed `evals.csv` writes nothing and no figure is ever left half
//! written. Text uses DejaVu Sans, embedded in the binary (licence in `DejaVuSans-LICENSE.md`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::experiment::monitor::EVALS_HEADER;
use crate::trace::file::PendingFile;

/// Figure size in pixels (the SVG uses the same units).
const SIZE: (u32, u32) = (1100, 620);
/// Width of the legend panel right of the plot.
const LEGEND_WIDTH: u32 = 230;
/// The font family the embedded font is registered under (SVG viewers use their own sans-serif).
const FAMILY: &str = "sans-serif";
const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
/// Algorithm colours (Tableau 10), reused cyclically beyond ten algorithms.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

mod sweep;

pub use sweep::plot_summary;

/// Draws the figures of `dir` (see the module docs); returns the files written.
pub fn plot_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    if !std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?.is_dir() {
        return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory")));
    }
    let evals = read_evals(&dir.join("evals.csv"))?;
    let name = experiment_name(dir);
    write_figures(dir, &figures(&evals, &name))
}

/// Draws `figures` as SVG and PNG files in `dir`; returns the files written.
fn write_figures(dir: &Path, figures: &[Figure]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for fig in figures {
        files.push((dir.join(format!("{}.svg", fig.stem)), render_svg(fig)?));
        files.push((dir.join(format!("{}.png", fig.stem)), render_png(fig)?));
    }
    // every file is written aside first, so one bad target (say, a directory) leaves none
    let mut pending = Vec::new();
    for (path, bytes) in &files {
        let mut file = PendingFile::create(path)?;
        std::io::Write::write_all(file.writer(), bytes).map_err(|e| Error::io(path, e))?;
        pending.push(file);
    }
    pending.into_iter().map(PendingFile::finish).collect()
}

/// One row of `evals.csv`, the columns the figures use.
#[derive(Debug)]
struct Eval {
    algorithm: String,
    seed: u64,
    wall_clock: f64,
    comms: f64,
    test_loss: f64,
    test_accuracy: Option<f64>,
    distance: Option<f64>,
}

/// Reads `evals.csv`; columns are found by name, so extra columns are ignored.
fn read_evals(path: &Path) -> Result<Vec<Eval>> {
    let (mut reader, header) = open_csv(path)?;
    let column = |name: &str| find_column(path, &header, name, &format!("expected {EVALS_HEADER}"));
    let [algorithm, seed, wall_clock, comms, test_loss, test_accuracy, distance] =
        ["algorithm", "seed", "wall_clock", "comm_transmissions", "test_loss", "test_accuracy", "distance_to_optimum"]
            .map(column);
    let (algorithm, seed, wall_clock, comms) = (algorithm?, seed?, wall_clock?, comms?);
    let (test_loss, test_accuracy, distance) = (test_loss?, test_accuracy?, distance?);
    let mut evals = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let text = |i: usize| record.get(i).unwrap_or("").trim();
        let bad = |i: usize, what: &str| {
            Error::bad_file(
                path,
                format!("line {line}: {} = '{}' is not {what}", header.get(i).unwrap_or("?"), text(i)),
            )
        };
        let number = |i: usize| text(i).parse::<f64>().map_err(|_| bad(i, "a number"));
        let optional = |i: usize| if text(i).is_empty() { Ok(None) } else { number(i).map(Some) };
        let count = |i: usize| match number(i) {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(bad(i, "a finite number >= 0")),
        };
        evals.push(Eval {
            algorithm: text(algorithm).to_string(),
            seed: text(seed).parse().map_err(|_| bad(seed, "a seed (integer >= 0)"))?,
            wall_clock: count(wall_clock)?,
            comms: count(comms)?,
            test_loss: number(test_loss)?,
            test_accuracy: match optional(test_accuracy)? {
                Some(a) if !a.is_nan() && !(0.0..=1.0).contains(&a) => {
                    return Err(bad(test_accuracy, "a fraction in [0, 1]"));
                }
                a => a,
            },
            distance: optional(distance)?,
        });
    }
    if evals.is_empty() {
        return Err(Error::bad_file(path, "has a header but no evaluations"));
    }
    Ok(evals)
}

/// A CSV reader on `path` and the file's header.
fn open_csv(path: &Path) -> Result<(csv::Reader<BufReader<File>>, csv::StringRecord)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::Reader::from_reader(BufReader::new(file));
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    Ok((reader, header))
}

/// The position of column `name` in `header`, or an error naming the file, the column and (in
/// parentheses) `expected`.
fn find_column(path: &Path, header: &csv::StringRecord, name: &str, expected: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| Error::bad_file(path, format!("line 1: the header lacks the column '{name}' ({expected})")))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(String::new(), |p| format!("line {}: ", p.line()));
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            Error::bad_file(path, format!("{line}{len} fields, but the header has {expected_len}"))
        }
        csv::ErrorKind::Utf8 { err, .. } => Error::bad_file(path, format!("{line}invalid UTF-8 ({err})")),
        other => Error::bad_file(path, format!("{line}{other:?}")),
    }
}

/// The experiment's name from `summary.json`, or else the directory's name.
fn experiment_name(dir: &Path) -> String {
    let recorded = std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["experiment"].as_str().map(str::to_string));
    if let Some(name) = recorded {
        return name;
    }
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// One algorithm's curves in a figure.
#[derive(Debug)]
struct Series {
    label: String,
    /// One curve per seed, sorted by x; non-finite points left out.
    seeds: Vec<Vec<(f64, f64)>>,
    /// Measured points (a sweep's simulated means): drawn as dots, not joined, over the lines.
    dots: bool,
    /// Error bars (x, low, high), drawn thin.
    bars: Vec<(f64, f64, f64)>,
    /// Index into [`COLOURS`] (cyclic).
    colour: usize,
}

/// A figure, ready to draw.
#[derive(Debug)]
struct Figure {
    stem: String,
    caption: String,
    x_desc: &'static str,
    y_desc: &'static str,
    log_y: bool,
    series: Vec<Series>,
}

type Field = fn(&Eval) -> Option<f64>;

/// Every figure name `stsyn plot` can write (each as `.svg` and `.png`).
pub const FIGURE_STEMS: [&str; 5] = ["accuracy_time", "accuracy_comm", "loss_time", "loss_comm", "distance_time"];

/// The figures that `evals` has data for (see the module docs).
fn figures(evals: &[Eval], name: &str) -> Vec<Figure> {
    let time: Field = |e| Some(e.wall_clock);
    let comms: Field = |e| Some(e.comms);
    let accuracy: Field = |e| e.test_accuracy.map(|a| 100.0 * a);
    let loss: Field = |e| Some(e.test_loss);
    let distance: Field = |e| e.distance;
    let (time_desc, comm_desc) = ("simulated time", "messages (downloads + uploads)");
    let figure = |stem, x: Field, x_desc, y: Field, y_desc, log| build(evals, name, stem, x, x_desc, y, y_desc, log);
    let mut out = Vec::new();
    if evals.iter().any(|e| e.test_accuracy.is_some()) {
        out.push(figure("accuracy_time", time, time_desc, accuracy, "test accuracy (%)", false));
        out.push(figure("accuracy_comm", comms, comm_desc, accuracy, "test accuracy (%)", false));
        out.push(figure("loss_time", time, time_desc, loss, "test loss", true));
    } else {
        out.push(figure("loss_time", time, time_desc, loss, "test loss", true));
        out.push(figure("loss_comm", comms, comm_desc, loss, "test loss", true));
    }
    if evals.iter().any(|e| e.distance.is_some()) {
        out.push(figure("distance_time", time, time_desc, distance, "distance to the optimum", true));
    }
    debug_assert!(out.iter().all(|f| FIGURE_STEMS.contains(&f.stem.as_str())), "FIGURE_STEMS lists every figure");
    out
}

/// Groups `evals` by algorithm and seed (first appearance order); `log` asks for a log y axis,
/// granted when every plotted value is positive.
fn build(
    evals: &[Eval],
    name: &str,
    stem: &'static str,
    x: Field,
    x_desc: &'static str,
    y: Field,
    y_desc: &'static str,
    log: bool,
) -> Figure {
    let mut series: Vec<(Series, Vec<u64>)> = Vec::new();
    for e in evals {
        let i = match series.iter().position(|(s, _)| s.label == e.algorithm) {
            Some(i) => i,
            None => {
                let colour = series.len();
                let s = Series { label: e.algorithm.clone(), seeds: Vec::new(), dots: false, bars: Vec::new(), colour };
                series.push((s, Vec::new()));
                series.len() - 1
            }
        };
        let (s, seeds) = &mut series[i];
        let j = match seeds.iter().position(|&seed| seed == e.seed) {
            Some(j) => j,
            None => {
                seeds.push(e.seed);
                s.seeds.push(Vec::new());
                seeds.len() - 1
            }
        };
        if let (Some(x), Some(y)) = (x(e), y(e))
            && y.is_finite()
        {
            s.seeds[j].push((x, y));
        }
    }
    let series: Vec<Series> = series
        .into_iter()
        .map(|(mut s, _)| {
            s.seeds.retain(|c| !c.is_empty());
            for c in &mut s.seeds {
                c.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            s
        })
        .collect();
    let mut ys = series.iter().flat_map(|s| s.seeds.iter().flatten().map(|p| p.1)).peekable();
    let log_y = log && ys.peek().is_some() && ys.all(|y| y > 0.0);
    Figure { stem: stem.to_string(), caption: name.to_string(), x_desc, y_desc, log_y, series }
}

/// The pointwise mean of piecewise-linear curves, on the union of their x values where all of
/// them are defined (see the module docs). Empty when the curves do not overlap.
fn mean_curve(curves: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    let start = curves.iter().map(|c| c[0].0).fold(f64::NEG_INFINITY, f64::max);
    let end = curves.iter().map(|c| c[c.len() - 1].0).fold(f64::INFINITY, f64::min);
    let mut grid: Vec<f64> = curves.iter().flatten().map(|p| p.0).filter(|&x| x >= start && x <= end).collect();
    grid.sort_by(f64::total_cmp);
    grid.dedup();
    grid.into_iter().map(|x| (x, curves.iter().map(|c| interpolate(c, x)).sum::<f64>() / curves.len() as f64)).collect()
}

/// Linear interpolation of a curve sorted by x, at `x` inside its range (the last of equal x wins).
fn interpolate(curve: &[(f64, f64)], x: f64) -> f64 {
    let j = curve.partition_point(|p| p.0 <= x);
    if j == 0 {
        return curve[0].1;
    }
    let (x0, y0) = curve[j - 1];
    match curve.get(j) {
        Some(&(x1, y1)) => y0 + (y1 - y0) * (x - x0) / (x1 - x0),
        None => y0,
    }
}

fn render_svg(fig: &Figure) -> Result<Vec<u8>> {
    let target = format!("{}.svg", fig.stem);
    register_font(&target)?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw(&root, fig).and_then(|_| root.present()).map_err(|e| draw_error(&target, e))?;
    }
    Ok(text.into_bytes())
}

fn render_png(fig: &Figure) -> Result<Vec<u8>> {
    let target = format!("{}.png", fig.stem);
    register_font(&target)?;
    let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        draw(&root, fig).and_then(|_| root.present()).map_err(|e| draw_error(&target, e))?;
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels).and_then(|_| w.finish()))
        .map_err(|e| draw_error(&target, e))?;
    Ok(bytes)
}

fn draw_error(target: &str, e: impl std::fmt::Display) -> Error {
    Error::io(target, std::io::Error::other(format!("cannot draw the figure: {e}")))
}

/// Registers the embedded font with plotters (once per process).
fn register_font(target: &str) -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(draw_error(target, "the embedded font is invalid")) }
}

type DrawResult<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure) -> DrawResult<DB::ErrorType> {
    root.fill(&WHITE)?;
    let root = root.titled(&fig.caption, (FAMILY, 26))?;
    let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let points = || fig.series.iter().flat_map(|s| s.seeds.iter().flatten().copied());
    let bar_ends = || fig.series.iter().flat_map(|s| s.bars.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]));
    let (x_lo, x_hi) = bounds(points().map(|p| p.0));
    let (y_lo, y_hi) = bounds(points().chain(bar_ends()).map(|p| p.1));
    let x_range = x_lo.min(0.0)..if x_hi > x_lo.min(0.0) { x_hi } else { x_lo.min(0.0) + 1.0 };
    let mut builder = ChartBuilder::on(&plot);
    builder.margin(16).x_label_area_size(56).y_label_area_size(80);
    // Axes of at most 10^300 (log) or ±10^307 (linear): plotters' tick search does not end on a
    // range whose width overflows f64; curves beyond are clipped.
    if fig.log_y {
        let (lo, hi) = if y_hi > y_lo { (y_lo / 1.25, y_hi * 1.25) } else { (y_lo / 2.0, y_hi * 2.0) };
        let hi = hi.min(f64::MAX / 2.0);
        let lo = lo.max(hi * 1e-300);
        draw_curves(builder.build_cartesian_2d(x_range, (lo..hi).log_scale())?, fig)?;
    } else {
        let (y_lo, y_hi) = (y_lo.max(-1e307), y_hi.min(1e307));
        let pad = if y_hi > y_lo { 0.05 * (y_hi - y_lo) } else { 1.0 };
        draw_curves(builder.build_cartesian_2d(x_range, y_lo - pad..y_hi + pad)?, fig)?;
    }
    draw_legend(&legend, fig)
}

/// The smallest and largest of `values`, or (0, 1) when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo <= hi { (lo, hi) } else { (0.0, 1.0) }
}

fn draw_curves<DB: DrawingBackend, Y>(
    mut chart: ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    fig: &Figure,
) -> DrawResult<DB::ErrorType>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(fig.x_desc)
        .y_desc(fig.y_desc)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .x_label_formatter(&|v| number_label(*v))
        .y_label_formatter(&|v| number_label(*v))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    for s in &fig.series {
        if s.seeds.len() > 1 {
            let light = colour(s.colour).mix(0.3).stroke_width(1);
            for c in &s.seeds {
                chart.draw_series(LineSeries::new(c.iter().copied(), light))?;
            }
        }
    }
    for s in fig.series.iter().filter(|s| !s.dots) {
        draw_bold(&mut chart, &s.bold(), colour(s.colour))?;
    }
    for s in &fig.series {
        let c = colour(s.colour);
        chart.draw_series(
            s.bars.iter().map(|&(x, lo, hi)| PathElement::new(vec![(x, lo), (x, hi)], c.stroke_width(1))),
        )?;
        if s.dots {
            chart.draw_series(s.bold().into_iter().map(|p| Circle::new(p, 4, c.filled())))?;
        }
    }
    Ok(())
}

impl Series {
    /// The bold curve: the mean over seeds, or the one seed's curve.
    fn bold(&self) -> Vec<(f64, f64)> {
        if self.seeds.len() > 1 { mean_curve(&self.seeds) } else { self.seeds.first().cloned().unwrap_or_default() }
    }
}

/// For each series, the later series it is drawn exactly under (its bold curve is identical,
/// so it cannot be seen), which the legend names: "under PASGD".
fn hidden_under(series: &[Series]) -> Vec<Option<usize>> {
    let bold: Vec<_> = series.iter().map(Series::bold).collect();
    // dots are drawn over every line, so only a line under a later line disappears
    let line = |i: usize| !series[i].dots && !bold[i].is_empty();
    (0..series.len()).map(|i| (i + 1..series.len()).rev().find(|&j| line(i) && line(j) && bold[j] == bold[i])).collect()
}

/// A bold polyline, drawn segment by segment with a dot on every joint: plotters 0.3.7 fills a
/// thick polyline as one polygon, which in the bitmap backend loses whole stretches of the line
/// next to very short or sharply turning segments.
fn draw_bold<DB: DrawingBackend, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    curve: &[(f64, f64)],
    colour: RGBColor,
) -> DrawResult<DB::ErrorType>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let style = colour.stroke_width(3);
    let segments = curve.windows(2).filter(|w| w[0] != w[1]);
    chart.draw_series(segments.map(|w| PathElement::new(vec![w[0], w[1]], style)))?;
    chart.draw_series(curve.iter().map(|&p| Circle::new(p, 1, colour.filled())))?;
    Ok(())
}

/// The legend panel: a swatch and the label per algorithm, and a note on thin and bold lines.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, fig: &Figure) -> DrawResult<DB::ErrorType> {
    let label = TextStyle::from((FAMILY, 17).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let grey = BLACK.mix(0.6);
    let note = label.clone().color(&grey);
    let mut y = 40;
    for (s, under) in fig.series.iter().zip(hidden_under(&fig.series)) {
        if s.dots {
            area.draw(&Circle::new((25, y), 4, colour(s.colour).filled()))?;
        } else {
            area.draw(&PathElement::new(vec![(8, y), (42, y)], colour(s.colour).stroke_width(3)))?;
        }
        area.draw(&Text::new(s.label.clone(), (50, y), label.clone()))?;
        if let Some(j) = under {
            y += 22;
            area.draw(&Text::new(format!("under {}", fig.series[j].label), (50, y), note.clone()))?;
        }
        y += 30;
    }
    if fig.series.iter().any(|s| !s.bars.is_empty()) {
        area.draw(&Text::new("bars: ± 2 SE".to_string(), (8, y + 10), note.clone()))?;
        y += 24;
    }
    let max_seeds = fig.series.iter().map(|s| s.seeds.len()).max().unwrap_or(0);
    if max_seeds > 1 {
        y += 10;
        let same = fig.series.iter().all(|s| s.seeds.len() == max_seeds);
        let mean = if same { format!("bold: mean of {max_seeds} seeds") } else { "bold: mean over seeds".to_string() };
        area.draw(&Text::new("thin: single seeds".to_string(), (8, y), note.clone()))?;
        area.draw(&Text::new(mean, (8, y + 24), note))?;
    }
    Ok(())
}

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// Tick label: up to four significant digits, scientific notation for very small or large values.
fn number_label(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e6).contains(&a) {
        let s = format!("{v:.3e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{exponent}", mantissa.trim_end_matches('0').trim_end_matches('.'))
    } else {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_seeds_is_pointwise_on_the_common_range() {
        let a = vec![(0.0, 0.0), (2.0, 2.0), (4.0, 4.0)];
        let b = vec![(0.0, 1.0), (3.0, 4.0)];
        let m = mean_curve(&[a, b]);
        assert_eq!(m, vec![(0.0, 0.5), (2.0, 2.5), (3.0, 3.5)]);
    }

    #[test]
    fn a_curve_hidden_under_a_later_identical_one_is_named_in_the_legend() {
        let series = |label: &str, curve: &[(f64, f64)]| Series {
            label: label.into(),
            seeds: vec![curve.to_vec()],
            dots: false,
            bars: Vec::new(),
            colour: 0,
        };
        let (a, b) = ([(0.0, 1.0), (1.0, 2.0)], [(0.0, 1.0), (1.0, 3.0)]);
        let all = [series("AdaComm", &a), series("STSyn", &b), series("PASGD", &a), series("X", &[]), series("Y", &[])];
        assert_eq!(hidden_under(&all), [Some(2), None, None, None, None]);
        // dots are drawn over the lines: neither hides the other
        let dots = Series { dots: true, ..series("simulated", &a) };
        assert_eq!(hidden_under(&[dots, series("theory", &a)]), [None, None]);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(number_label(0.0), "0");
        assert_eq!(number_label(12.5), "12.5");
        assert_eq!(number_label(1500.0), "1500");
        assert_eq!(number_label(0.25), "0.25");
        assert_eq!(number_label(1e-5), "1e-5");
        assert_eq!(number_label(1.25e6), "1.25e6");
    }
}
