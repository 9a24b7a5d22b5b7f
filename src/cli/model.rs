//! `stsyn model SPEC`: prints a network spec's layers, output shapes, parameter count and
//! forward FLOPs per sample; with `--bench`, also times one local SGD step (forward, backward,
//! update) on random data, the figure to compare with `shared/bench/torch_cnn_bench.py`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;

use crate::Error;
use crate::error::check_memory;
use crate::model::{Network, ParallelStep, Precision};
use crate::rng::{Purpose, Seeds};

/// Flags of `stsyn model`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Network spec (TOML), e.g. models/cifar10_cnn.toml.
    spec: PathBuf,
    /// Print JSON (keys `params`, `flops_per_sample`, `layers`, and `step_ms` with --bench).
    #[arg(long)]
    json: bool,
    /// Time one local SGD step (forward + backward + update) on random data.
    #[arg(long)]
    bench: bool,
    /// Minibatch size for --bench.
    #[arg(long, default_value_t = 100, requires = "bench")]
    batch: usize,
    /// Threads for --bench; above 1 the batch is split into this many chunks.
    #[arg(long, default_value_t = 1, requires = "bench")]
    threads: usize,
    /// Timed steps for --bench (after 3 warm-up steps).
    #[arg(long, default_value_t = 20, requires = "bench")]
    steps: usize,
    /// Learning rate of the timed SGD steps.
    #[arg(long, default_value_t = 0.1, requires = "bench")]
    lr: f64,
    /// Seed of the random parameters and data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Arithmetic of the matrix products: f32, or bf16 (bf16 factors, f32 accumulation; needs
    /// AMX-BF16).
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

/// Timing of `--bench`.
struct Bench {
    step_ms: f64,
    min_ms: f64,
}

/// Runs `stsyn model`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let net = Network::from_file(&args.spec)?.with_precision(args.precision)?;
    let bench = if args.bench {
        for (name, v) in [("--batch", args.batch), ("--threads", args.threads), ("--steps", args.steps)] {
            if v == 0 {
                return Err(Error::invalid(name, v, "must be at least 1").into());
            }
        }
        if args.threads > args.batch {
            let why = format!("exceeds --batch {}: every thread takes at least one sample", args.batch);
            return Err(Error::invalid("--threads", args.threads, why).into());
        }
        if !(args.lr.is_finite() && args.lr > 0.0 && args.lr <= f32::MAX as f64) {
            let why = "must be a finite number > 0 (and at most f32's largest, 3.4e38)";
            return Err(Error::invalid("--lr", crate::error::shown(args.lr), why).into());
        }
        let per_sample = net.workspace_bytes(1);
        check_memory(
            "--batch",
            args.batch,
            net.workspace_bytes(args.batch),
            &format!("{per_sample} bytes per sample"),
        )?;
        Some(bench(&net, &args)?)
    } else {
        None
    };
    let layers = net.layer_infos();
    if args.json {
        let mut out = json!({
            "name": net.name(),
            "input": net.input_shape(),
            "loss": net.loss_kind(),
            "params": net.num_params(),
            "flops_per_sample": net.flops_per_sample(),
            "layers": layers,
        });
        if let Some(b) = &bench {
            out["batch"] = json!(args.batch);
            out["threads"] = json!(args.threads);
            out["precision"] = json!(args.precision.name());
            out["products"] = json!(net.products_kernel());
            out["steps"] = json!(args.steps);
            out["step_ms"] = json!(b.step_ms);
            out["min_step_ms"] = json!(b.min_ms);
            out["images_per_s"] = json!(args.batch as f64 / b.step_ms * 1e3);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let [c, h, w] = net.input_shape();
    println!("{}: input {c}×{h}×{w}, loss {}", net.name(), net.loss_kind().name());
    println!("{:<4} {:<51} {:>14} {:>10} {:>14}", "#", "layer", "output", "params", "flops");
    for (i, l) in layers.iter().enumerate() {
        let [c, h, w] = l.output_shape;
        let shape = if h == 1 && w == 1 { format!("{c}") } else { format!("{c}×{h}×{w}") };
        println!("{i:<4} {:<51} {shape:>14} {:>10} {:>14}", l.description, l.params, l.flops);
    }
    println!("params {}  flops_per_sample {}", net.num_params(), net.flops_per_sample());
    if layers.iter().any(|l| l.description.ends_with(" dft") || l.description.ends_with(" winograd")) {
        let bf16 = if args.precision == Precision::Bf16 { "; with bf16 products they run im2col" } else { "" };
        println!("(flops count the direct convolution: the dft and winograd layers compute the same in fewer{bf16})");
    }
    if let Some(b) = bench {
        println!(
            "batch {} threads {} precision {} products {} steps {}: step_ms {:.3} (min {:.3}) images_per_s {:.0}",
            args.batch,
            args.threads,
            args.precision.name(),
            net.products_kernel(),
            args.steps,
            b.step_ms,
            b.min_ms,
            args.batch as f64 / b.step_ms * 1e3
        );
    }
    Ok(())
}

fn bench(net: &Network, args: &Args) -> anyhow::Result<Bench> {
    let seeds = Seeds::new(args.seed);
    let mut params = net.init_params(&mut seeds.stream(Purpose::Init, 0, 0));
    let mut rng = seeds.stream(Purpose::Synthetic, 0, 0);
    let x: Vec<f32> = (0..args.batch * net.input_len())
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        })
        .collect();
    let classes = net.num_classes().max(2) as u32;
    let labels: Vec<u32> =
        (0..args.batch).map(|_| rng.random_range(0..classes) % net.num_classes().max(1) as u32).collect();
    let mut grad = vec![0.0f32; net.num_params()];
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build().context("cannot start the thread pool")?;
    let mut ws = net.workspace(args.batch);
    let mut parallel = (args.threads > 1).then(|| ParallelStep::new(net, args.batch, args.threads));
    let mut step = |params: &mut Vec<f32>| {
        match parallel.as_mut() {
            Some(p) => pool.install(|| p.loss_and_grad(net, params, &x, &labels, &mut grad)),
            None => net.loss_and_grad(params, &x, &labels, &mut grad, &mut ws),
        };
        for (p, g) in params.iter_mut().zip(&grad) {
            *p -= args.lr as f32 * g;
        }
    };
    for _ in 0..3 {
        step(&mut params);
    }
    let mut min_ms = f64::INFINITY;
    let start = Instant::now();
    for _ in 0..args.steps {
        let t = Instant::now();
        step(&mut params);
        min_ms = min_ms.min(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = start.elapsed().as_secs_f64() * 1e3;
    Ok(Bench { step_ms: total / args.steps as f64, min_ms })
}
