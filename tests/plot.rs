//! Figures from hand-written results directories: which files are written and that they are valid
//! SVG/PNG naming the algorithms; malformed `evals.csv` files give an error naming the file and
//! the line and write nothing; `stsyn plot` on a missing directory exits with code 2.

use std::path::{Path, PathBuf};

use stsyn::plot::plot_dir;

use crate::cli::{assert_bad_input, stsyn};

const HEADER: &str = "algorithm,seed,round,wall_clock,comm_transmissions,uploads,local_updates,train_loss,test_loss,test_accuracy,distance_to_optimum";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Two algorithms × two seeds with different time axes; the label with a comma is quoted.
fn classification_csv() -> String {
    let mut text = format!("{HEADER}\n");
    for (label, speed) in [("STSyn", 1.0), ("\"K-sync, K=4\"", 1.7)] {
        for seed in [1u64, 2] {
            for round in 0..=6u64 {
                let time = speed * round as f64 * (1.0 + 0.1 * seed as f64);
                let acc = 0.1 + 0.8 * (1.0 - (-(round as f64) / (2.0 * speed)).exp());
                let loss = 2.3 * (1.0 - acc);
                text += &format!(
                    "{label},{seed},{round},{time},{},{},{},{loss},{loss},{acc},\n",
                    8 * round,
                    4 * round,
                    40 * round
                );
            }
        }
    }
    text
}

/// A regression-style file: no accuracy, a distance to the optimum; a diverged last row (NaN).
fn regression_csv() -> String {
    let mut text = format!("{HEADER}\n");
    for label in ["LocalSGD", "STSyn"] {
        for round in 0..=5u64 {
            let loss = 10f64.powi(-(round as i32));
            text += &format!(
                "{label},7,{round},{round}.5,{},{},{},{loss},{loss},,{}\n",
                2 * round,
                round,
                round,
                loss.sqrt()
            );
        }
    }
    text + "LocalSGD,7,6,6.5,12,6,6,NaN,NaN,,inf\n"
}

fn results_dir(evals: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("evals.csv"), evals).unwrap();
    dir
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

fn check_figures(dir: &Path, written: &[PathBuf], labels: &[&str]) {
    for path in written {
        assert_eq!(path.parent().unwrap(), dir);
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() > 1000, "{} has {} bytes", path.display(), bytes.len());
        if path.extension().unwrap() == "png" {
            assert_eq!(&bytes[..8], PNG_SIGNATURE, "{}", path.display());
        } else {
            let svg = String::from_utf8(bytes).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", path.display());
            for label in labels {
                assert!(svg.contains(label), "{} lacks the label {label}", path.display());
            }
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().ends_with(".partial")), "{left:?}");
}

#[test]
fn accuracy_figures_for_two_algorithms_and_two_seeds() {
    let dir = results_dir(&classification_csv());
    let written = plot_dir(dir.path()).unwrap();
    assert_eq!(
        names(&written),
        [
            "accuracy_time.svg",
            "accuracy_time.png",
            "accuracy_comm.svg",
            "accuracy_comm.png",
            "loss_time.svg",
            "loss_time.png"
        ]
    );
    check_figures(dir.path(), &written, &["STSyn", "K-sync, K=4", "mean of 2 seeds"]);
    let svg = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    for (name, x, y) in [
        ("accuracy_time.svg", "simulated time", "test accuracy (%)"),
        ("accuracy_comm.svg", "messages (downloads + uploads)", "test accuracy (%)"),
        ("loss_time.svg", "simulated time", "test loss"),
    ] {
        assert!(svg(name).contains(x) && svg(name).contains(y), "{name} lacks {x} or {y}");
    }
    // Drawing again replaces the files.
    assert_eq!(plot_dir(dir.path()).unwrap(), written);
}

#[test]
fn regression_files_plot_the_loss_and_the_distance() {
    let dir = results_dir(&regression_csv());
    let written = plot_dir(dir.path()).unwrap();
    assert_eq!(
        names(&written),
        ["loss_time.svg", "loss_time.png", "loss_comm.svg", "loss_comm.png", "distance_time.svg", "distance_time.png"]
    );
    check_figures(dir.path(), &written, &["LocalSGD", "STSyn"]);
    assert!(std::fs::read_to_string(dir.path().join("loss_time.svg")).unwrap().contains("test loss"));
    assert!(std::fs::read_to_string(dir.path().join("distance_time.svg")).unwrap().contains("distance to the optimum"));
}

#[test]
fn losses_spanning_more_than_f64_can_divide_still_plot() {
    // 1e200 down to 1e-200 (log axis) and ±1e308 (linear): the axis ranges are clipped
    // instead of sending plotters' tick search into an endless loop.
    for (a, b) in [("1e200", "1e-200"), ("1e308", "-1e308")] {
        let evals = format!("{HEADER}\nx,1,0,0,0,0,0,{a},{a},,\nx,1,1,1,1,0,0,{b},{b},,\n");
        let dir = results_dir(&evals);
        let written = plot_dir(dir.path()).unwrap();
        check_figures(dir.path(), &written, &["x"]);
    }
}

#[test]
fn malformed_evals_name_the_file_and_line_and_write_nothing() {
    let good = classification_csv();
    let mut lines: Vec<&str> = good.lines().collect();
    let non_numeric = {
        let mut fields: Vec<&str> = lines[3].split(',').collect();
        fields[3] = "soon";
        fields.join(",")
    };
    lines[3] = &non_numeric;
    let cases = [
        (format!("{}\n", lines.join("\n")), vec!["line 4", "wall_clock", "soon"]),
        ("algo,seed,time\nSTSyn,1,0\n".to_string(), vec!["line 1", "header", "comm_transmissions"]),
        (format!("{HEADER}\nSTSyn,1,0,0,0,0,0,1,1,0.5,\nSTSyn,x,1,1,8,4,40,1,1,0.6,\n"), vec!["line 3", "seed", "'x'"]),
        (format!("{HEADER}\nSTSyn,1,0,0,0,0,0,1,1,0.5,\nSTSyn,1,1,1\n"), vec!["line 3", "4 fields"]),
        (format!("{HEADER}\nSTSyn,1,0,0,0,0,0,1,1,high,\n"), vec!["line 2", "test_accuracy", "'high'"]),
        (format!("{HEADER}\nSTSyn,1,0,-1,0,0,0,1,1,0.5,\n"), vec!["line 2", "wall_clock"]),
        (format!("{HEADER}\nSTSyn,1,0,0,0,0,0,1,1,7,\n"), vec!["line 2", "test_accuracy", "'7'", "[0, 1]"]),
        (format!("{HEADER}\n"), vec!["no evaluations"]),
        (String::new(), vec!["line 1", "header"]),
    ];
    for (text, needles) in cases {
        let dir = results_dir(&text);
        let err = plot_dir(dir.path()).unwrap_err();
        assert!(matches!(err, stsyn::Error::BadFile { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("evals.csv"), "{message}");
        for needle in needles {
            assert!(message.contains(needle), "'{message}' lacks '{needle}'");
        }
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["evals.csv"], "{message}");
    }
}

#[test]
fn the_plot_command_prints_the_files_and_rejects_missing_directories() {
    let dir = results_dir(&classification_csv());
    let out = stsyn(&["plot", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    assert!(stdout.contains("accuracy_time.png") && stdout.contains("accuracy_comm.svg"), "{stdout}");
    // a damaged summary.json is reported, and the figures still come from evals.csv
    std::fs::write(dir.path().join("summary.json"), "{\"status\": ").unwrap();
    let out = stsyn(&["plot", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("summary.json: not valid JSON"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);

    let missing = dir.path().join("no-such-results");
    assert_bad_input(&["plot", missing.to_str().unwrap()], &["no-such-results"]);
    let empty = tempfile::tempdir().unwrap();
    assert_bad_input(&["plot", empty.path().to_str().unwrap()], &["evals.csv"]);
    assert_bad_input(&["plot", dir.path().join("evals.csv").to_str().unwrap()], &["evals.csv"]);
}

#[test]
fn a_sweep_summary_plots_the_simulated_points_beside_the_theory() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sweep.csv");
    let csv_arg = csv.to_str().unwrap();
    let timing = ["timing", "-M", "8", "-K", "1,4,8", "-U", "1,3", "--rounds", "200", "--summary-csv", csv_arg];
    assert!(stsyn(&timing).status.success());
    let out = stsyn(&["plot", csv_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let written: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| PathBuf::from(l.strip_prefix("wrote ").expect("a 'wrote' line")))
        .collect();
    let stems = ["sweep_round_time", "sweep_updates_per_worker", "sweep_uploaders"];
    let expected: Vec<String> = stems.iter().flat_map(|s| [format!("{s}.svg"), format!("{s}.png")]).collect();
    assert_eq!(names(&written), expected);
    // K varies first, so it is the x axis; U tells the series apart
    check_figures(
        dir.path(),
        &written,
        &["U=1 simulated", "U=3 simulated", "U=1 theory", "K (workers waited for)", "2 SE"],
    );
    assert!(std::fs::read_to_string(dir.path().join("sweep_uploaders.svg")).unwrap().contains("uploaders"));
    // a summary without a column, or with a bad number, names the file and what is wrong
    let text = std::fs::read_to_string(&csv).unwrap();
    let bad = dir.path().join("bad.csv");
    for (content, needles) in [
        (text.replace("uploaders_theory", "uploaders_guess"), vec!["bad.csv", "line 1", "'uploaders_theory'"]),
        (text.replacen("stsyn,8,1,1,", "stsyn,8,one,1,", 1), vec!["bad.csv", "line 2", "wait = 'one'"]),
        (text.lines().next().unwrap().to_string() + "\n", vec!["bad.csv", "no points"]),
    ] {
        std::fs::write(&bad, content).unwrap();
        let err = assert_bad_input(&["plot", bad.to_str().unwrap()], &needles);
        assert!(err.stdout.is_empty());
    }
    assert!(!dir.path().join("bad_round_time.svg").exists());
    // a theory summary: the closed forms alone, as lines
    let theory = dir.path().join("closed.csv");
    let args = ["theory", "-M", "8", "-K", "1,4,8", "-U", "3", "--summary-csv", theory.to_str().unwrap()];
    assert!(stsyn(&args).status.success());
    let out = stsyn(&["plot", theory.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("closed_round_time.svg")).unwrap();
    assert!(svg.contains("theory") && !svg.contains("simulated") && !svg.contains("2 SE"));
}
