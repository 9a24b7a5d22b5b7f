//! `stsyn bench-round`: the wall-clock cost of whole STSyn training rounds (timing, M workers'
//! local SGD steps, aggregation) on synthetic data shaped for the network — the figure to
//! compare with `shared/bench/torch_stsyn_round.py`, which trains the workers one after another
//! in PyTorch. Same defaults as that script: M = 20, K = 5, U = 10, batch 100, 3 rounds, shards
//! of 2,500 samples (CIFAR-shaped) or 90 (digits-shaped), i.i.d. Exp(1) step times.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::algorithms::round::RoundAlgorithm;
use crate::algorithms::stsyn::Stsyn;
use crate::data;
use crate::error::{Error, check_memory};
use crate::learner::{Classification, Learner, LocalJob, Shards};
use crate::model::{Network, Precision};
use crate::rng::Seeds;
use crate::sim::{RoundKernel, RoundPlan};
use crate::timing::{CommTime, ComputeTime, Dist};

/// Flags of `stsyn bench-round`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Network spec (TOML); `cifar` and `digits` stand for models/cifar10_cnn.toml and
    /// models/digits_cnn.toml.
    #[arg(long, default_value = "cifar")]
    model: String,
    /// M.
    #[arg(long, short = 'M', default_value_t = 20)]
    workers: usize,
    /// K.
    #[arg(long, short = 'K', default_value_t = 5)]
    wait: usize,
    /// U.
    #[arg(long, short = 'U', default_value_t = 10)]
    local_steps: u32,
    /// Timed rounds (after one warm-up round).
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Minibatch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Samples per worker (default: 2,500 for 32×32 inputs, 90 otherwise, as in the peer).
    #[arg(long)]
    shard: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Arithmetic of the matrix products: f32, or bf16 (bf16 factors, f32 accumulation; needs
    /// AMX-BF16).
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

/// Runs `stsyn bench-round`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    for (name, v) in [
        ("--shard", args.shard.unwrap_or(1)),
        ("--workers", args.workers),
        ("--batch", args.batch),
        ("--rounds", args.rounds as usize),
        ("--local-steps", args.local_steps as usize),
    ] {
        if v == 0 {
            return Err(Error::invalid(name, v, "must be at least 1").into());
        }
    }
    crate::sim::check_steps_per_round("--local-steps (U)", args.local_steps.into())?;
    if args.wait == 0 || args.wait > args.workers {
        return Err(
            Error::invalid("--wait (K)", args.wait, format!("must be between 1 and M = {}", args.workers)).into()
        );
    }
    // the two built-in names use the specs compiled into the binary, so they work from any
    // directory; anything else is a spec file
    let (net, model) = match args.model.as_str() {
        "cifar" => (
            Network::from_toml(include_str!("../../models/cifar10_cnn.toml"), "cifar10_cnn.toml")?,
            "models/cifar10_cnn.toml",
        ),
        "digits" => (
            Network::from_toml(include_str!("../../models/digits_cnn.toml"), "digits_cnn.toml")?,
            "models/digits_cnn.toml",
        ),
        other => (Network::from_file(&PathBuf::from(other))?, other),
    };
    let net = net.with_precision(args.precision)?;
    let shape = net.input_shape();
    let shard = args.shard.unwrap_or(if shape[1] >= 32 { 2500 } else { 90 });
    // the synthetic shards (a float per input value and a label per sample), a workspace per
    // thread, and the kernel's scratch per worker
    let sample_bytes = 4 * (net.input_len() as u128 + 1);
    let data_bytes = sample_bytes * shard as u128 * args.workers as u128;
    let why = format!("{shard} samples of {sample_bytes} bytes for each of M = {} workers", args.workers);
    check_memory(
        if args.shard.is_some() { "--shard" } else { "--workers (M)" },
        if args.shard.is_some() { shard } else { args.workers },
        data_bytes,
        &why,
    )?;
    let threads = rayon::current_num_threads() as u128;
    let bytes = data_bytes
        + threads * net.workspace_bytes(args.batch)
        + args.workers as u128 * crate::algorithms::timing::BYTES_PER_WORKER as u128;
    check_memory("--batch", args.batch, bytes, &format!("with --shard {shard} and M = {}", args.workers))?;
    let split = data::synthetic(shape, net.num_classes(), shard * args.workers, 10, args.seed);
    let shards = Shards::PerWorker(
        (0..args.workers).map(|m| ((m * shard) as u32..((m + 1) * shard) as u32).collect()).collect(),
    );
    let objective = Classification {
        net: &net,
        train: &split.train,
        test: &split.test,
        shards: &shards,
        workers: args.workers,
        train_eval: &[],
        batch: args.batch,
    };
    let seeds = Seeds::new(args.seed);
    let compute = ComputeTime::iid(Dist::Exp { mean: 1.0 });
    let mut kernel = RoundKernel::new(args.workers, &compute, CommTime::none(), seeds, 0);
    let mut learner = Learner::new(&objective, seeds, 0.1);
    let mut stsyn = Stsyn { wait: args.wait, local_steps: args.local_steps, max_steps: None, drop_most_updates: false };
    let mut plan = RoundPlan { targets: vec![0; args.workers], ..Default::default() };
    let (mut start, mut counts, mut jobs, mut steps) = (0.0, Vec::new(), Vec::<LocalJob>::new(), 0u64);
    let mut clock = Instant::now();
    for round in 0..=args.rounds {
        if round == 1 {
            clock = Instant::now(); // round 0 warms up caches and buffers
            steps = 0;
        }
        stsyn.plan(round, &mut plan);
        let record = kernel.round(&plan, round, start, counts)?;
        stsyn.jobs(&record, &mut jobs);
        learner.local_round(round, &jobs)?;
        steps += jobs.iter().map(|j| j.steps as u64).sum::<u64>();
        start = record.end;
        counts = record.counts;
    }
    let seconds = clock.elapsed().as_secs_f64();
    let per_round = seconds / args.rounds as f64;
    let threads = rayon::current_num_threads();
    if args.json {
        println!(
            "{}",
            json!({ "model": model, "workers": args.workers, "wait": args.wait, "local_steps": args.local_steps, "rounds": args.rounds, "batch": args.batch, "precision": args.precision.name(), "products": net.products_kernel(), "threads": threads, "local_steps_total": steps, "seconds_per_round": per_round, "local_steps_per_s": steps as f64 / seconds })
        );
    } else {
        println!(
            // the peer script's format: local_steps is the total over all workers and rounds
            "model={model} M={} K={} U={} rounds={} threads={threads} local_steps={steps} seconds_per_round={per_round:.3} local_steps_per_s={:.2} products={}",
            args.workers,
            args.wait,
            args.local_steps,
            args.rounds,
            steps as f64 / seconds,
            net.products_kernel()
        );
    }
    Ok(())
}
