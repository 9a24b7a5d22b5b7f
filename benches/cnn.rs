//! Criterion benches of one local SGD step (forward, backward, update) on one thread: the
//! paper's CIFAR-10 CNN at batch 100 and the digits CNN at batch 32, the figures to compare with
//! `shared/bench/torch_cnn_bench.py` (`--model cifar --batch 100 --threads 1`,
//! `--model digits --batch 32 --threads 1`), in f32 and, where the CPU has AMX-BF16, with bf16
//! products (`--precision bf16`; compare with `benches/torch_bf16_step.py`). The CIFAR-10 CNN's
//! spec computes its second convolution through the DFT; `_im2col` is the same step with that
//! line of the spec removed. Run with `cargo bench --bench cnn`.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use stsyn::model::{Network, Precision};
use stsyn::rng::{Purpose, Seeds};

/// The spec `models/<spec>`, without its `method = "dft"` lines when `im2col`.
fn network(spec: &str, im2col: bool) -> Network {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(spec);
    let text = std::fs::read_to_string(&path).expect("model spec");
    let text: String =
        text.lines().filter(|l| !(im2col && l.starts_with("method = \"dft\""))).map(|l| l.to_string() + "\n").collect();
    Network::from_toml(&text, spec).expect("model spec")
}

fn sgd_step(c: &mut Criterion, spec: &str, im2col: bool, batch: usize, samples: usize, precision: Precision) {
    let net = network(spec, im2col).with_precision(precision).expect("precision");
    let seeds = Seeds::new(0);
    let mut params = net.init_params(&mut seeds.stream(Purpose::Init, 0, 0));
    let mut rng = seeds.stream(Purpose::Synthetic, 0, 0);
    let x: Vec<f32> = (0..batch * net.input_len())
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        })
        .collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..net.num_classes() as u32)).collect();
    let mut grad = vec![0.0f32; net.num_params()];
    let mut ws = net.workspace(batch);
    let mut group = c.benchmark_group(net.name().to_string());
    group.sample_size(samples);
    let suffix = if im2col { "_im2col" } else { "" };
    group.bench_function(format!("sgd_step_batch{batch}_{}{suffix}", precision.name()), |b| {
        b.iter(|| {
            let loss = net.loss_and_grad(&params, &x, &labels, &mut grad, &mut ws);
            for (p, g) in params.iter_mut().zip(&grad) {
                *p -= 0.01 * g;
            }
            black_box(loss)
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mut precisions = vec![Precision::F32];
    if stsyn::model::gemm_bf16::available() {
        precisions.push(Precision::Bf16);
    }
    for precision in precisions {
        sgd_step(c, "cifar10_cnn.toml", false, 100, 10, precision);
        sgd_step(c, "digits_cnn.toml", false, 32, 100, precision);
    }
    sgd_step(c, "cifar10_cnn.toml", true, 100, 10, Precision::F32);
}

criterion_group!(cnn, benches);
criterion_main!(cnn);
