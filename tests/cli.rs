//! The binary as a user meets it: exit codes, one-line errors that name the bad value, no output
//! file left behind by a failed run, identical files for identical seeds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn stsyn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stsyn")).args(args).env("RAYON_NUM_THREADS", "2").output().expect("run stsyn")
}

/// Asserts exit code 2, a one-line message on stderr (warnings aside) containing every needle,
/// and no panic.
pub fn assert_bad_input(args: &[&str], needles: &[&str]) -> std::process::Output {
    let out = stsyn(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("warning: ")).collect();
    assert!(lines.len() == 1 && lines[0].starts_with("error"), "args {args:?}: not one error line: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "args {args:?}: '{}' lacks '{n}'", lines[0]);
    }
    out
}

#[test]
fn bad_timing_input_exits_2_with_the_value_named() {
    assert_bad_input(
        &["timing", "-M", "4", "-K", "2", "-U", "2", "--rounds", "3", "--rounds-csv", "Cargo.toml/r.csv"],
        &["Cargo.toml is not a directory"],
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rounds.csv");
    let csv = csv.to_str().unwrap();
    let base = ["timing", "--rounds-csv", csv];
    let cases: &[(&[&str], &[&str])] = &[
        (&["-M", "4", "-K", "5", "-U", "2"], &["K", "5", "M = 4"]),
        (&["-M", "4", "-K", "0", "-U", "2"], &["K", "0"]),
        (&["-M", "4", "-K", "2", "-U", "0"], &["U", "0"]),
        // the engine stops a worker at 2^28 steps, so U = 2^28 is refused up front
        (&["-M", "1", "-K", "1", "-U", "268435456"], &["U", "268435456", "fewer than"]),
        (&["-M", "0", "-K", "1", "-U", "1"], &["M", "0"]),
        (&["-M", "-3", "-K", "1", "-U", "1"], &["-3"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "exp(mean=-1)"], &["mean = -1"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "exp(mean=0)"], &["mean = 0"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "exp(mean=nan)"], &["mean = NaN"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "exp(mean=inf)"], &["mean = inf"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "weibull(k=2)"], &["unknown distribution 'weibull'"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "exp(mean=1"], &["exp(mean=1", "missing closing ')'"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "exp(mean=1)x"], &["exp(mean=1)x", "after the closing"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--uplink", ""], &["--uplink ''", "empty spec"]),
        // point masses at 0 under another name than const(0)
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "halfnormal(shift=0, sd=0)"], &["positive time"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "lognormal(mu=-1e10, sigma=0)"], &["positive time"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--speeds", "means(1,2,3)"], &["M = 4"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--uplink-bandwidth", "nan"], &["bandwidth", "NaN"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--link-speeds", "means(1,2)"], &["--link-speeds", "M = 4"]),
        (&["-M", "4000000000", "-K", "1", "-U", "1"], &["4000000000", "GB of memory"]),
        (&["-M", "4000000000", "-K", "1", "-U", "1", "--speeds", "profile()"], &["4000000000", "GB of memory"]),
        (
            &["-M", "4000000000", "-K", "1", "-U", "1", "--compute-time", "jitter(shift=1, sd=profile())"],
            &["4000000000", "GB of memory"],
        ),
        (&["-M", "4", "-K", "2", "-U", "2", "--link-speeds", "rates(1,0,1,1)"], &["--link-speeds", "worker 1 = 0"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--rounds", "0"], &["rounds", "0"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--algorithm", "fastsgd"], &["fastsgd"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--max-steps", "1"], &["max steps", "1"]),
        (&["-M", "4", "-U", "2"], &["K"]),
        // clap's own errors: one line, naming the flag
        (&["-M", "4", "-K", "-1", "-U", "2"], &["'-1'", "--wait"]),
        (&["-M", "-3", "-K", "1", "-U", "2"], &["'-3'", "--workers"]),
        (&["-M", "4", "-K", "1", "-U", "2", "--bogus"], &["--bogus"]),
        (&["-K", "1", "-U", "2"], &["required", "--workers"]),
        // durations beyond f64 end the run with an error, in both engines
        (
            &["-M", "20", "-K", "20", "-U", "10", "--compute-time", "pareto(shape=0.01)"],
            &["pareto(shape=0.01)", "too heavy"],
        ),
        (
            &["-M", "20", "-K", "20", "-U", "10", "--compute-time", "pareto(shape=0.01)", "--engine", "heap"],
            &["pareto(shape=0.01)", "too heavy"],
        ),
        (&["-M", "4", "-K", "2", "-U", "2", "--events-csv", csv], &["--events-csv", "also the --rounds-csv"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "exp(mean=1, mean=-5)"], &["key 'mean' given twice"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--speeds", "profile(a=1, b=1, b=-100)"], &["key 'b' given twice"]),
        (&["-M", "4", "-K", "2", "-U", "2", "--compute-time", "const(1, value=2)"], &["by name and by position"]),
        // communication that overflows the clock is named as such
        (
            &["-M", "5", "-K", "2", "-U", "2", "--uplink-bandwidth", "1e-300", "--model-bytes", "1000000000"],
            &["compute and message times", "inf"],
        ),
        // a worker whose steps no longer advance the clock (or are far too short) stops the run
        // at 2^28 steps in a round instead of spinning or silently capping its count
        (
            &["-M", "3", "-K", "2", "-U", "2", "--rounds", "1", "--speeds", "means(1,1,1e-300)"],
            &["worker 2 completed 268435456 steps in round 0"],
        ),
        // the event queue names at most 2^24 workers
        (&["-M", "16777217", "-K", "1", "-U", "1", "--engine", "heap"], &["16777217", "at most 16777216 workers"]),
    ];
    for (args, needles) in cases {
        let mut all: Vec<&str> = base.to_vec();
        all.extend_from_slice(args);
        if !args.contains(&"--rounds") {
            all.extend_from_slice(&["--rounds", "10"]);
        }
        assert_bad_input(&all, needles);
        assert!(!Path::new(csv).exists(), "{args:?} left {csv}");
        assert!(!Path::new(&format!("{csv}.partial")).exists());
    }
    // one file under two names (`..`, a link to a file not yet written) is refused up front
    let events = dir.path().join("e.csv");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let dotted = dir.path().join("sub/../e.csv");
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&events, &link).unwrap();
    for rounds in [&dotted, &link] {
        let (r, e) = (rounds.to_str().unwrap(), events.to_str().unwrap());
        assert_bad_input(
            &["timing", "-M", "4", "-K", "2", "-U", "2", "--rounds-csv", r, "--events-csv", e],
            &["--events-csv", "is also the --rounds-csv file"],
        );
        assert!(!events.exists(), "{} left behind", events.display());
    }
    std::fs::remove_file(&link).unwrap();
    // two files in a directory still to be created, and two streams, are fine
    let new = dir.path().join("new");
    let (r, e) = (new.join("r.csv"), new.join("e.csv"));
    for (r, e) in [(r.to_str().unwrap(), e.to_str().unwrap()), ("/dev/stdout", "/dev/stderr")] {
        let out =
            stsyn(&["timing", "-M", "4", "-K", "2", "-U", "2", "--rounds", "3", "--rounds-csv", r, "--events-csv", e]);
        assert_eq!(out.status.code(), Some(0), "{r} {e}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(new.join("r.csv").is_file() && new.join("e.csv").is_file());
    // an output path that is a directory fails before the run and leaves nothing
    let csv_dir = dir.path().join("adir");
    std::fs::create_dir(&csv_dir).unwrap();
    assert_bad_input(
        &["timing", "-M", "4", "-K", "2", "-U", "2", "--rounds-csv", csv_dir.to_str().unwrap()],
        &["adir", "is a directory"],
    );
    assert!(!dir.path().join("adir.partial").exists());
    assert_bad_input(
        &["theory", "-M", "4", "-K", "2", "-U", "2", "--rounds-csv", csv],
        &["--rounds-csv", "stsyn timing"],
    );
}

#[test]
fn closed_forms_beyond_their_range_say_so_at_once() {
    let out = stsyn(&["theory", "-M", "4000000000", "-K", "2000000000", "-U", "10"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not computed for M > 100000000"), "{text}");
}

#[test]
fn bad_bench_flags_exit_2() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/models/digits_cnn.toml");
    assert_bad_input(&["model", spec, "--bench", "--lr", "nan"], &["--lr", "NaN"]);
    assert_bad_input(&["model", spec, "--bench", "--lr", "-5"], &["--lr", "-5"]);
    assert_bad_input(&["model", spec, "--bench", "--batch", "4", "--threads", "8"], &["--threads", "8", "--batch 4"]);
    assert_bad_input(&["bench-round", "--model", "digits", "--shard", "0"], &["--shard", "0"]);
    assert_bad_input(&["bench-round", "--model", "digits", "-U", "4294967295"], &["--local-steps (U)", "2^28"]);
    // sizes that cannot fit in memory are refused up front, not by an allocation failure
    assert_bad_input(&["model", spec, "--bench", "--batch", "18446744073709551615"], &["--batch", "GB of memory"]);
    let huge = ["bench-round", "--model", "digits", "-M", "2", "-K", "1", "--shard", "18446744073709551615"];
    assert_bad_input(&huge, &["--shard", "GB of memory"]);
    assert_bad_input(
        &["bench-round", "--model", "digits", "-M", "1000000000", "-K", "1"],
        &["--workers", "1000000000"],
    );
}

#[test]
fn malformed_trace_files_are_rejected_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("worker,duration\n0,1.0\n1,abc\n", "line 3"),
        ("worker,duration\n0,1.0\n\n\n1,abc\n", "line 5"), // blank lines count
        ("worker,duration\n0,1.0\n7,1.0\n", "worker 7"),
        ("worker,duration\n0,1.0\n1,-2\n", "-2"),
        ("w,d\n0,1\n", "header"),
        ("worker,duration\n0,1.0\n", "worker 1 has no rows"),
        ("worker,duration,worker\n0,1.0,1\n1,1.0,0\n", "'worker' more than once"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("t{i}.csv"));
        std::fs::write(&path, text).unwrap();
        let spec = format!("trace({})", path.display());
        assert_bad_input(
            &["timing", "-M", "2", "-K", "1", "-U", "2", "--compute-time", &spec],
            &[needle, &format!("t{i}.csv")],
        );
    }
    assert_bad_input(
        &["timing", "-M", "2", "-K", "1", "-U", "2", "--compute-time", "trace(/no/such/file.csv)"],
        &["/no/such/file.csv"],
    );
    // no line breaks: refused after 1 MiB instead of filling the memory
    let endless = dir.path().join("endless.csv");
    std::fs::write(&endless, format!("worker,duration\n0,{}", "1".repeat(2 << 20))).unwrap();
    let spec = format!("trace({})", endless.display());
    assert_bad_input(
        &["timing", "-M", "1", "-K", "1", "-U", "2", "--compute-time", &spec],
        &["endless.csv", "longer than 1048576 bytes"],
    );
    assert_bad_input(
        &["timing", "-M", "1", "-K", "1", "-U", "2", "--compute-time", "trace(/dev/zero)"],
        &["/dev/zero", "longer than 1048576 bytes"],
    );
}

#[test]
fn same_seed_gives_identical_csv_files_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, threads: &str, extra: &[&str]| {
        let rounds = dir.path().join(format!("{name}-rounds.csv"));
        let events = dir.path().join(format!("{name}-events.csv"));
        let mut args = vec!["timing", "-M", "6000", "-K", "3000", "-U", "3", "--rounds", "4", "--seed", "9"];
        args.extend_from_slice(extra);
        let (r, e) = (rounds.to_str().unwrap().to_string(), events.to_str().unwrap().to_string());
        args.extend_from_slice(&["--rounds-csv", &r]);
        let with_events = extra.is_empty();
        if with_events {
            args.extend_from_slice(&["--events-csv", &e]);
        }
        let out =
            Command::new(env!("CARGO_BIN_EXE_stsyn")).args(&args).env("RAYON_NUM_THREADS", threads).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (std::fs::read(&rounds).unwrap(), with_events.then(|| std::fs::read(&events).unwrap()))
    };
    let heap = run("heap", "1", &[]);
    let heap2 = run("heap2", "2", &[]);
    assert_eq!(heap, heap2);
    let k1 = run("kernel1", "1", &["--engine", "kernel"]);
    let k2 = run("kernel2", "2", &["--engine", "kernel"]);
    assert_eq!(k1.0, k2.0);
    assert_eq!(heap.0, k1.0, "heap and kernel rounds.csv differ");
    let events = String::from_utf8(heap.1.unwrap()).unwrap();
    assert_eq!(events.lines().next().unwrap(), "time,worker,round,kind,step,peer");
    assert!(events.lines().count() > 6000 * 4 * 3);
}

#[test]
fn a_sweep_runs_every_combination_as_its_own_run_would() {
    let dir = tempfile::tempdir().unwrap();
    let summary = |threads: &str| {
        let csv = dir.path().join(format!("summary-{threads}.csv"));
        let args = ["timing", "-M", "6", "-K", "1,3", "-U", "2,4", "--rounds", "300", "--json", "--summary-csv"];
        let out = Command::new(env!("CARGO_BIN_EXE_stsyn"))
            .args(args)
            .arg(&csv)
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), std::fs::read_to_string(&csv).unwrap())
    };
    let (sweep, csv) = summary("2");
    assert_eq!(csv, summary("1").1, "the summary depends on the thread count");
    // points in the order M, K, U; each the same run as on its own (same seed, same draws)
    let points = sweep.as_array().expect("an array for a sweep");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!((points.len(), rows.len()), (4, 4));
    let one = dir.path().join("one.csv");
    for (i, (k, u)) in [("1", "2"), ("1", "4"), ("3", "2"), ("3", "4")].into_iter().enumerate() {
        let args = ["timing", "-M", "6", "-K", k, "-U", u, "--rounds", "300", "--json", "--summary-csv"];
        let single = stsyn(&[&args[..], &[one.to_str().unwrap()]].concat());
        let single: serde_json::Value = serde_json::from_slice(&single.stdout).unwrap();
        assert_eq!(points[i]["simulated"], single["simulated"], "K = {k}, U = {u}");
        assert_eq!(points[i]["theory"], single["theory"]);
        assert_eq!(rows[i], std::fs::read_to_string(&one).unwrap().lines().nth(1).unwrap());
        assert!(rows[i].starts_with(&format!("stsyn,6,{k},{u},300,1,kernel,")), "{}", rows[i]);
    }
    assert!(csv.starts_with("algorithm,workers,wait,local_steps,rounds,seed,engine,round_time_mean,round_time_se,"));
    // U = 1 gives exactly K uploaders: SE 0, and a deviation of 0 where the table says exact;
    // without a closed form the theory and deviation fields are empty
    let args = ["timing", "-M", "6", "-K", "2", "-U", "1", "--rounds", "20", "--summary-csv"];
    assert!(stsyn(&[&args[..], &[one.to_str().unwrap()]].concat()).status.success());
    let text = std::fs::read_to_string(&one).unwrap();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((row[15], row[16], row[18]), ("2", "0", "0"), "{text}");
    let pareto = [&args[..], &[one.to_str().unwrap(), "--compute-time", "pareto(shape=3)"]].concat();
    assert!(stsyn(&pareto).status.success());
    let text = std::fs::read_to_string(&one).unwrap();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((row[9], row[10], row.len()), ("", "", 19), "{text}");
    let theory = stsyn(&["theory", "-M", "6,8", "-K", "2", "-U", "1,3", "--json"]);
    let theory: serde_json::Value = serde_json::from_slice(&theory.stdout).unwrap();
    assert_eq!(theory.as_array().map(Vec::len), Some(4));
    assert_eq!(theory[3]["setup"]["workers"], 8);
    assert_eq!(theory[3]["setup"]["local_steps"], 3);
    // a bad value anywhere in a list fails before anything is simulated or written
    let file = dir.path().join("bad.csv");
    let f = file.to_str().unwrap();
    assert_bad_input(&["timing", "-M", "6", "-K", "3,7", "-U", "2", "--summary-csv", f], &["K", "7", "M = 6"]);
    assert_bad_input(&["timing", "-M", "6,0", "-K", "3", "-U", "2", "--summary-csv", f], &["M", "0"]);
    assert_bad_input(&["timing", "-M", "6", "-K", "3,", "-U", "2"], &["--wait", "''"]);
    assert_bad_input(&["timing", "-M", "6", "-K", "1,3", "-U", "2", "--rounds-csv", f], &["--rounds-csv", "one run"]);
    assert_bad_input(&["theory", "-M", "6", "-K", "1", "-U", "2", "--rounds-csv", f], &["--rounds-csv", "timing"]);
    assert!(!file.exists() && !dir.path().join("bad.csv.partial").exists());
    // theory's summary: the closed forms of the same points, the same numbers as the JSON
    let args = ["theory", "-M", "6,8", "-K", "2", "-U", "1,3", "--summary-csv", one.to_str().unwrap()];
    assert!(stsyn(&args).status.success());
    let text = std::fs::read_to_string(&one).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "algorithm,workers,wait,local_steps,round_time_theory,updates_per_worker_theory,uploaders_theory"
    );
    assert_eq!(lines.len(), 5);
    for (i, line) in lines[1..].iter().enumerate() {
        let row: Vec<&str> = line.split(',').collect();
        let t = &theory[i]["theory"];
        let want = [&t["round_time"], &t["updates_per_worker"], &t["uploaders"]].map(|v| v.as_f64().unwrap());
        // (serde_json's float parsing may be off by an ulp)
        for (x, w) in row[4..].iter().map(|x| x.parse::<f64>().unwrap()).zip(want) {
            assert!((x - w).abs() <= 4.0 * f64::EPSILON * w.abs(), "{line}: {x} vs {w}");
        }
    }
}

#[test]
fn a_clock_past_the_f64_resolution_of_the_steps_is_warned_about() {
    // a downlink of 1e12 time units before steps of mean 1e-3: f64 values near 1e12 are
    // 1.2e-4 apart, a tenth of a step
    let far = ["timing", "-M", "4", "-K", "2", "-U", "2", "--rounds", "3", "--downlink", "const(1e12)"];
    let out = stsyn(&[&far[..], &["--compute-time", "exp(mean=1e-3)"]].concat());
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: the simulated clock reached t = ") && err.contains("lost precision"), "{err}");
    // a downlink of 1e6 before steps of mean 1: values 1.2e-10 apart, no warning
    let near = ["timing", "-M", "4", "-K", "2", "-U", "2", "--rounds", "3", "--downlink", "const(1e6)"];
    let out = stsyn(&near);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn json_output_has_the_documented_keys() {
    let out = stsyn(&["timing", "-M", "20", "-K", "5", "-U", "10", "--rounds", "2000", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for q in ["round_time", "updates_per_worker", "uploaders"] {
        assert!(v["simulated"][q]["mean"].is_f64(), "{v}");
        assert!(v["simulated"][q]["se"].is_f64());
        assert!(v["theory"][q].is_f64(), "{v}");
    }
    assert!(v["updates_per_second"].as_f64().unwrap() > 0.0);
    // No closed form for a Pareto model: theory is null.
    let out = stsyn(&[
        "timing",
        "-M",
        "20",
        "-K",
        "5",
        "-U",
        "10",
        "--rounds",
        "100",
        "--json",
        "--compute-time",
        "pareto(shape=3)",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["theory"].is_null(), "{v}");
}

#[test]
fn tiny_and_huge_step_times_keep_a_true_se() {
    // the same seed at mean 1 and at means 2^±900: the rounds are the same up to the exact
    // power-of-two scale, so mean/scale, SE/scale and the deviation in SEs must agree
    let run = |mean: &str| {
        let spec = format!("exp(mean={mean})");
        let out =
            stsyn(&["timing", "-M", "20", "-K", "5", "-U", "10", "--rounds", "500", "--json", "--compute-time", &spec]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let f = |x: &serde_json::Value| x.as_f64().unwrap();
        (
            f(&v["simulated"]["round_time"]["mean"]),
            f(&v["simulated"]["round_time"]["se"]),
            f(&v["theory"]["round_time"]),
        )
    };
    let (m1, se1, t1) = run("1");
    for (mean, scale) in [("3.7330544740128755e-301", 2f64.powi(-998)), ("4.226356249085322e270", 2f64.powi(899))] {
        assert_eq!(mean.parse::<f64>().unwrap(), scale, "the mean is the power of two");
        let (m, se, t) = run(mean);
        assert!(se > 0.0 && se.is_finite(), "mean {mean}: SE {se:e}");
        for (got, want) in [(m / scale, m1), (se / scale, se1), (t / scale, t1)] {
            assert!((got / want - 1.0).abs() < 1e-12, "mean {mean}: {got} against {want}");
        }
    }
    // and the table does not call a deviation of ~1 SE at a tiny scale "exact"
    let args = ["timing", "-M", "20", "-K", "5", "-U", "10", "--rounds", "10", "--compute-time", "exp(mean=1e-100)"];
    let table = String::from_utf8(stsyn(&args).stdout).unwrap();
    assert!(!table.contains("exact") && table.contains(" SE"), "{table}");
}

#[test]
fn json_and_table_name_the_se_method() {
    let out = stsyn(&["timing", "-M", "20", "-K", "5", "-U", "10", "--rounds", "100", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["se_method"], "plain", "{v}");
    assert!(v["se_batches"].is_null());
    let args = ["timing", "--algorithm", "kasync", "-M", "8", "-K", "4", "--rounds", "1000"];
    let out = stsyn(&[&args[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["se_method"].as_str(), v["se_batches"].as_u64()), (Some("batch_means"), Some(30)), "{v}");
    let table = String::from_utf8(stsyn(&args).stdout).unwrap();
    assert!(table.contains("SE by batch means over 30 batches of 33 rounds"), "{table}");
}

#[test]
fn skipped_heterogeneous_closed_form_is_reported() {
    // STSyn on heterogeneous exponential rates: the closed form is computed up to M = 1000.
    let run = |m: &str, json: bool| {
        let mut args =
            vec!["timing", "-M", m, "-K", "100", "-U", "2", "--rounds", "5", "--speeds", "profile(b=1, p=0.5)"];
        if json {
            args.push("--json");
        }
        let out = stsyn(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&run("1001", true)).unwrap();
    assert!(v["theory"].is_null(), "{v}");
    assert_eq!(v["theory_note"], "not computed for M > 1000 (heterogeneous closed form, O(M²) per point)");
    let table = run("1001", false);
    assert!(table.contains("theory: not computed for M > 1000 (heterogeneous closed form"), "{table}");
    let v: serde_json::Value = serde_json::from_str(&run("1000", true)).unwrap();
    assert!(v["theory"]["round_time"].is_f64() && v["theory_note"].is_null(), "{v}");
    assert!(!run("1000", false).contains("not computed"));
    // `stsyn theory` says the same.
    let out = stsyn(&["theory", "-M", "1001", "-K", "100", "-U", "2", "--speeds", "profile(b=1, p=0.5)"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("theory: not computed for M > 1000") && !text.contains("no closed form"), "{text}");
}

#[test]
fn an_interrupted_timing_run_leaves_no_trace_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rounds.csv");
    let partial = dir.path().join("rounds.csv.partial");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stsyn"))
        .args(["timing", "-M", "1000", "-K", "10", "-U", "10", "--rounds", "100000000", "--rounds-csv"])
        .arg(&csv)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !partial.exists() {
        assert!(start.elapsed().as_secs() < 60, "no partial file appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!csv.exists() && !partial.exists(), "a trace file was left behind");
}

#[test]
fn a_trace_to_stdout_keeps_what_else_went_there() {
    // `--rounds-csv /dev/stdout` with stdout redirected to a regular file: the file keeps the
    // shell's earlier line, the rows, the table and the later line
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let script = format!(
        "(echo before; '{}' timing -M 4 -K 2 -U 2 --rounds 2 --rounds-csv /dev/stdout; echo after) > '{}'",
        env!("CARGO_BIN_EXE_stsyn"),
        log.display()
    );
    assert!(Command::new("sh").arg("-c").arg(&script).status().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "before", "{text}");
    assert!(lines[1].starts_with("round,start,end"), "{text}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("1,")).count(), 1, "{text}");
    assert!(text.contains("round time"), "{text}");
    assert_eq!(lines.last(), Some(&"after"), "{text}");
}

#[test]
fn an_asgd_update_count_beyond_exact_f64_is_refused() {
    let base = ["theory", "--algorithm", "async", "-M", "3", "--compute-time", "const(1)", "--time"];
    assert_bad_input(&[&base[..], &["1e19"]].concat(), &["--time", "1e19", "2^53"]);
    assert_bad_input(&[&base[..], &["1e300"]].concat(), &["--time", "1e300"]);
}

#[test]
fn a_deadline_is_refused_where_it_does_not_apply_or_is_not_positive() {
    let base = ["timing", "-M", "4", "-K", "2", "-U", "2", "--deadline"];
    assert_bad_input(&[&base[..], &["0"]].concat(), &["deadline (D)", "0", "> 0"]);
    assert_bad_input(&[&base[..], &["-1"]].concat(), &["deadline (D)", "-1"]);
    assert_bad_input(&[&base[..], &["NaN"]].concat(), &["deadline (D)", "NaN"]);
    assert_bad_input(
        &["timing", "--algorithm", "ksync", "-M", "4", "-K", "2", "--deadline", "3"],
        &["deadline (D)", "3", "only to stsyn, sync and fedavg"],
    );
}

/// A long `stsyn run` (1,000 workers: a round takes ~10,000 local steps, most of a second),
/// interrupted once with SIGINT after it has written its summary; returns the child, once it
/// printed that it finishes the current round, with its stderr so far, and the summary's path.
fn interrupted_run(
    out: &Path,
) -> (std::process::Child, std::io::BufReader<std::process::ChildStderr>, String, PathBuf) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/impact_k.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stsyn"))
        .arg("run")
        .arg(&config)
        .args(["--workers", "1000", "--rounds", "1000", "--seed", "1", "--quiet", "--no-plot", "--out"])
        .arg(out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let summary = out.join("summary.json");
    let start = std::time::Instant::now();
    while !summary.exists() {
        assert!(start.elapsed().as_secs() < 60, "no summary appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt(&child);
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    while !text.contains("interrupt: finishing the current round") {
        use std::io::BufRead;
        assert!(stderr.read_line(&mut text).unwrap() > 0, "the run ended after one interrupt: {text}");
    }
    (child, stderr, text, summary)
}

fn interrupt(child: &std::process::Child) {
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn an_interrupt_finishes_the_round_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let (mut child, mut stderr, mut text, summary) = interrupted_run(&out);
    let status = child.wait().unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted:") && text.contains("complete rows"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(v["status"], "interrupted", "{v}");
    assert!(out.join("evals.csv").exists() && out.join("rounds.csv").exists());
}

#[test]
fn a_second_interrupt_aborts_at_once_and_the_summary_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    // The second interrupt follows as soon as the first one's message is read, so the round in
    // progress would have to end within those few milliseconds for the run to stop before it
    // arrives (with a fixed 100 ms between the two, that happened in about one full test run in
    // ten)
    let (mut child, mut stderr, mut text, summary) = interrupted_run(&out);
    interrupt(&child);
    let status = child.wait().unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(v["status"], "aborted", "{v}");
    assert!(v["error"].as_str().unwrap().contains("second interrupt"), "{v}");
    assert!(!out.join("summary.json.aborting").exists());
}
