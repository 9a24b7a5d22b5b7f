//! Networks: parameter counts, spec errors, finite-difference gradient checks of every layer and
//! of whole networks, determinism, the thread-count independence of the parallel step, the
//! least-squares closed form, and training the digits CNN to ≥ 95 % test accuracy.

use std::path::Path;
use std::time::Instant;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use stsyn::data;
use stsyn::model::convex::{LeastSquaresProblem, least_squares_optimum, one_hot};
use stsyn::model::{LossKind, Network, ParallelStep, Precision};
use stsyn::rng::{Purpose, Seeds, Stream};

fn models_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}

fn load(name: &str) -> Network {
    Network::from_file(&models_dir().join(name)).expect("model spec loads")
}

fn normal_vec(rng: &mut Stream, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f64 = StandardNormal.sample(rng);
            v as f32 * scale
        })
        .collect()
}

fn random_batch(net: &Network, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Seeds::new(seed).stream(Purpose::Synthetic, 0, 0);
    let x = normal_vec(&mut rng, n * net.input_len(), 1.0);
    let k = net.num_classes() as u32;
    let labels = (0..n).map(|_| if k == 1 { rng.random_range(0..2) } else { rng.random_range(0..k) }).collect();
    (x, labels)
}

/// Mean loss in f64 (the per-sample losses are summed in f64).
fn mean_loss(net: &Network, params: &[f32], x: &[f32], labels: &[u32]) -> f64 {
    let mut ws = net.workspace(labels.len());
    net.evaluate(params, x, labels, &mut ws).0 / labels.len() as f64
}

/// Central finite differences on `per_layer` coordinates of every layer's parameters (its first
/// weight, its last bias, and random ones), at steps h and 2h. Where the two differ, a ReLU or
/// max-pooling kink lies within the step (or rounding dominates) and the coordinate is
/// inconclusive; every conclusive coordinate must satisfy `|fd − g| ≤ ABS + REL·|g|`. Returns
/// (worst ratio `|fd − g| / (ABS + REL·|g|)` over conclusive coordinates, fraction inconclusive).
fn worst_coordinate_error(
    net: &Network,
    params: &[f32],
    grad: &[f32],
    x: &[f32],
    labels: &[u32],
    per_layer: usize,
) -> (f64, f64) {
    // f32 forward passes: at h = 2e-4 the rounding error of a central difference is a few 1e-4
    // (measured up to 3e-4 on these nets, 1.3e-3 at h = 1e-4 on the CIFAR CNN); ABS leaves a
    // margin over that. Wrong gradients are off by far more (see the test that plants one).
    const H: f32 = 2e-4;
    const ABS: f64 = 1e-3;
    const REL: f64 = 2e-2;
    let mut rng = Seeds::new(99).stream(Purpose::Eval, 0, 0);
    let mut worst: f64 = 0.0;
    let (mut checked, mut inconclusive) = (0usize, 0usize);
    let mut p = params.to_vec();
    let central = |p: &mut Vec<f32>, i: usize, h: f32| {
        let orig = p[i];
        p[i] = orig + h;
        let up = mean_loss(net, p, x, labels);
        p[i] = orig - h;
        let down = mean_loss(net, p, x, labels);
        p[i] = orig;
        (up - down) / (f64::from(orig + h) - f64::from(orig - h))
    };
    for range in net.param_ranges() {
        if range.is_empty() {
            continue;
        }
        let mut coords = vec![range.start, range.end - 1];
        coords.extend((0..per_layer).map(|_| rng.random_range(range.clone())));
        for i in coords {
            checked += 1;
            let fd = central(&mut p, i, H);
            let fd2 = central(&mut p, i, 2.0 * H);
            if (fd - fd2).abs() > ABS + REL * fd.abs() {
                inconclusive += 1;
                continue;
            }
            let g = f64::from(grad[i]);
            let ratio = (fd - g).abs() / (ABS + REL * g.abs());
            worst = worst.max(ratio);
            if ratio > 1.0 {
                eprintln!("param {i}: finite difference {fd:.6e} (2h: {fd2:.6e}), analytic {g:.6e}");
            }
        }
    }
    (worst, inconclusive as f64 / checked as f64)
}

/// Directional derivative along directions v = ĝ + random unit vector (so that the derivative
/// is large compared with rounding): (L(p + hv) − L(p − hv)) / 2h against g·v, with a step of
/// norm 1e-4. Returns the worst relative error. On the CIFAR CNN the relative error shrinks
/// with the step (4 % at 1e-2, 1 % at 1e-3, 0.3 % at 1e-4) because the many ReLU and pooling
/// kinks crossed by the step bias the difference; rounding adds ~5e-4 at this step.
fn worst_directional_error(
    net: &Network,
    params: &[f32],
    grad: &[f32],
    x: &[f32],
    labels: &[u32],
    directions: usize,
) -> f64 {
    let mut rng = Seeds::new(7).stream(Purpose::Eval, 1, 0);
    let norm = |v: &[f32]| v.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>().sqrt();
    let gnorm = norm(grad).max(1e-12);
    let mut worst: f64 = 0.0;
    for _ in 0..directions {
        let r = normal_vec(&mut rng, params.len(), 1.0);
        let rnorm = norm(&r);
        let v: Vec<f32> =
            grad.iter().zip(&r).map(|(&g, &r)| (f64::from(g) / gnorm + f64::from(r) / rnorm) as f32).collect();
        let h = 1e-4 / norm(&v);
        let plus: Vec<f32> = params.iter().zip(&v).map(|(&p, &d)| p + (h * f64::from(d)) as f32).collect();
        let minus: Vec<f32> = params.iter().zip(&v).map(|(&p, &d)| p - (h * f64::from(d)) as f32).collect();
        let fd = (mean_loss(net, &plus, x, labels) - mean_loss(net, &minus, x, labels)) / (2.0 * h);
        let gv: f64 = grad.iter().zip(&v).map(|(&g, &d)| f64::from(g) * f64::from(d)).sum();
        worst = worst.max((fd - gv).abs() / gv.abs().max(1e-6));
    }
    worst
}

fn check_network(net: &Network, n: usize, per_layer: usize, seed: u64) {
    let params = net.init_params(&mut Seeds::new(seed).stream(Purpose::Init, 0, 0));
    let (x, labels) = random_batch(net, n, seed);
    let mut grad = vec![f32::NAN; net.num_params()];
    let mut ws = net.workspace(n);
    let loss = net.loss_and_grad(&params, &x, &labels, &mut grad, &mut ws);
    assert!((f64::from(loss) - mean_loss(net, &params, &x, &labels)).abs() < 1e-5);
    assert!(grad.iter().all(|g| g.is_finite()), "gradient fully written");
    let (worst, inconclusive) = worst_coordinate_error(net, &params, &grad, &x, &labels, per_layer);
    assert!(worst <= 1.0, "{}: coordinate gradient error ratio {worst}", net.name());
    assert!(inconclusive <= 0.25, "{}: {inconclusive} of the coordinates hit kinks", net.name());
    let dir = worst_directional_error(net, &params, &grad, &x, &labels, 3);
    assert!(dir < 1e-2, "{}: directional derivative relative error {dir}", net.name());
}

fn spec(input: &str, loss: &str, layers: &str) -> Network {
    let text = format!("input = {input}\nloss = \"{loss}\"\n{layers}");
    Network::from_toml(&text, "test spec").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn cifar10_cnn_has_the_papers_797962_parameters() {
    let net = load("cifar10_cnn.toml");
    assert_eq!(net.num_params(), 797_962);
    assert_eq!(net.input_shape(), [3, 32, 32]);
    assert_eq!(net.num_classes(), 10);
    let counts: Vec<usize> = net.layer_infos().iter().map(|l| l.params).filter(|&p| p > 0).collect();
    assert_eq!(counts, [4_864, 102_464, 614_784, 73_920, 1_930]);
    let shapes: Vec<[usize; 3]> = net.layer_infos().iter().map(|l| l.output_shape).collect();
    assert_eq!(shapes[2], [64, 14, 14]);
    assert_eq!(shapes[5], [64, 5, 5]);
    assert_eq!(shapes[6], [1600, 1, 1]);
    // 2 × multiply-adds: 64·28²·75 + 64·10²·1600 + 1600·384 + 384·192 + 192·10
    assert_eq!(net.flops_per_sample(), 2 * (3_763_200 + 10_240_000 + 614_400 + 73_728 + 1_920));
}

#[test]
fn transform_scratch_stops_growing_after_one_chunk_of_samples() {
    // the transform methods keep spectra for at most 128 samples: past that, each sample costs
    // what it costs on im2col
    let spec = |method: &str| {
        let text = format!(
            "input = [8, 12, 12]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 8\nkernel = 3\nmethod = \"{method}\"\n\
             [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 2\n"
        );
        Network::from_toml(&text, "test.toml").unwrap()
    };
    let per_sample = |net: &Network, batch: usize| net.workspace_bytes(batch + 1) - net.workspace_bytes(batch);
    let (im2col, dft) = (spec("im2col"), spec("dft"));
    assert!(per_sample(&dft, 100) > per_sample(&im2col, 100));
    assert_eq!(per_sample(&dft, 128), per_sample(&im2col, 128));
    assert_eq!(per_sample(&dft, 1000), per_sample(&im2col, 1000));
}

#[test]
fn other_model_specs_build() {
    assert_eq!(load("digits_cnn.toml").num_params(), 13_706); // as torch_cnn_bench.py's digits net
    assert_eq!(load("digits_cnn_winograd.toml").num_params(), 13_706);
    assert_eq!(load("mlp.toml").num_params(), 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
    assert_eq!(load("logreg.toml").num_params(), 650);
    let ls = load("least_squares.toml");
    assert_eq!((ls.num_params(), ls.loss_kind()), (650, LossKind::SquaredError));
}

#[test]
fn init_matches_pytorch_default_bounds_and_is_seeded() {
    let net = load("digits_cnn.toml");
    let a = net.init_params(&mut Seeds::new(5).stream(Purpose::Init, 0, 0));
    let b = net.init_params(&mut Seeds::new(5).stream(Purpose::Init, 0, 0));
    let c = net.init_params(&mut Seeds::new(6).stream(Purpose::Init, 0, 0));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let fan_ins = [9usize, 144, 128, 64];
    for (range, fan_in) in net.param_ranges().into_iter().filter(|r| !r.is_empty()).zip(fan_ins) {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let slice = &a[range];
        let max = slice.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max <= bound, "within U(-1/sqrt(fan_in), 1/sqrt(fan_in))");
        if slice.len() > 100 {
            assert!(max > 0.9 * bound, "spread over the whole interval");
            let mean = slice.iter().sum::<f32>() / slice.len() as f32;
            assert!(mean.abs() < 0.1 * bound);
        }
    }
}

#[test]
fn gradient_check_catches_a_wrong_gradient() {
    let net = load("logreg.toml");
    let params = net.init_params(&mut Seeds::new(1).stream(Purpose::Init, 0, 0));
    let (x, labels) = random_batch(&net, 4, 1);
    let mut grad = vec![0.0; net.num_params()];
    net.loss_and_grad(&params, &x, &labels, &mut grad, &mut net.workspace(4));
    assert!(worst_coordinate_error(&net, &params, &grad, &x, &labels, 20).0 <= 1.0);
    assert!(worst_directional_error(&net, &params, &grad, &x, &labels, 2) < 1e-2);
    let scaled: Vec<f32> = grad.iter().map(|g| g * 1.05).collect();
    assert!(worst_directional_error(&net, &params, &scaled, &x, &labels, 2) > 0.02);
    let mut bumped = grad.clone();
    bumped[649] += 0.01; // last bias
    assert!(worst_coordinate_error(&net, &params, &bumped, &x, &labels, 0).0 > 1.0);
}

#[test]
fn gradient_linear_and_softmax_cross_entropy() {
    let net = spec(
        "[2, 3, 3]",
        "softmax_cross_entropy",
        "[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 5\n",
    );
    check_network(&net, 6, 20, 11);
}

#[test]
fn gradient_relu_between_linear_layers() {
    let net = spec(
        "[7, 1, 1]",
        "softmax_cross_entropy",
        "[[layers]]\ntype = \"linear\"\nout_features = 9\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"linear\"\nout_features = 4\n",
    );
    check_network(&net, 5, 20, 12);
}

#[test]
fn gradient_conv2d_with_stride_and_padding_into_a_second_conv() {
    // the second convolution's input gradient runs through col2im with stride 2 and padding 1
    let net = spec(
        "[2, 7, 6]",
        "softmax_cross_entropy",
        "[[layers]]\ntype = \"conv2d\"\nout_channels = 3\nkernel = 3\nstride = 2\npadding = 1\n\
         [[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 2\npadding = 1\n\
         [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 3\n",
    );
    check_network(&net, 3, 20, 13);
}

#[test]
fn gradient_conv2d_through_the_dft_odd_and_even_widths() {
    // 2×7×9 → 3×5×7 (even, then odd transform widths) → padded 2×6×8, both in the transform domain
    let net = spec(
        "[2, 7, 9]",
        "softmax_cross_entropy",
        "[[layers]]\ntype = \"conv2d\"\nout_channels = 3\nkernel = 3\nmethod = \"dft\"\n\
         [[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"conv2d\"\nout_channels = 2\nkernel = 2\npadding = 1\nmethod = \"dft\"\n\
         [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 4\n",
    );
    check_network(&net, 3, 20, 21);
}

#[test]
fn gradient_conv2d_by_winograd_padded_and_not() {
    // 2×4×3 → padded 6×5 points → 3×4×3 → 4×3 points → 2×2×1, both by Winograd
    let net = spec(
        "[2, 4, 3]",
        "softmax_cross_entropy",
        "[[layers]]\ntype = \"conv2d\"\nout_channels = 3\nkernel = 3\npadding = 1\nmethod = \"winograd\"\n\
         [[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"conv2d\"\nout_channels = 2\nkernel = 3\nmethod = \"winograd\"\n\
         [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 4\n",
    );
    check_network(&net, 3, 20, 22);
}

#[test]
fn gradient_maxpool2d_overlapping_windows_plain_and_fused_with_relu() {
    let net = spec(
        "[1, 9, 9]",
        "softmax_cross_entropy",
        "[[layers]]\ntype = \"conv2d\"\nout_channels = 3\nkernel = 2\n\
         [[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"maxpool2d\"\nkernel = 3\nstride = 2\n\
         [[layers]]\ntype = \"conv2d\"\nout_channels = 2\nkernel = 2\n\
         [[layers]]\ntype = \"maxpool2d\"\nkernel = 2\n\
         [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 3\n",
    );
    check_network(&net, 4, 20, 14);
}

#[test]
fn gradient_squared_error_and_binary_logistic_heads() {
    let ls = spec("[6, 1, 1]", "squared_error", "[[layers]]\ntype = \"linear\"\nout_features = 3\n");
    check_network(&ls, 5, 20, 15);
    let bl = spec("[6, 1, 1]", "binary_logistic", "[[layers]]\ntype = \"linear\"\nout_features = 1\n");
    check_network(&bl, 5, 20, 16);
}

#[test]
fn gradient_whole_digits_cnn_and_mlp() {
    check_network(&load("digits_cnn.toml"), 8, 15, 17);
    check_network(&load("mlp.toml"), 8, 15, 18);
}

/// The bf16 products change the loss and gradient only by bf16 rounding. Each factor is
/// rounded with relative error at most 2⁻⁹ ≈ 0.2 %, so a product's error is at most ~0.4 % of the
/// sum of |terms|. A weight gradient sums terms over the batch (and the positions of a
/// convolution) that largely cancel at a random initialisation with random labels, so relative
/// to the gradient itself the error grows, layer by layer from the output: measured 0.3 % for
/// the last layer and 3–11 % for the first (5–8 % in the whole gradient) on these nets. The
/// bounds (0.25 per layer, 0.15 in all, 1 % in the loss) leave a margin of over 2× while a
/// wrong kernel (a misplaced tile, a lost pair, a transposed gradient) gives errors of order 1.
/// The kernel itself is checked exactly against the rounded factors in `model::gemm_bf16`.
#[test]
fn bf16_products_change_loss_and_gradient_only_by_rounding() {
    if !stsyn::model::gemm_bf16::available() {
        eprintln!("skipped: no AMX-BF16 on this machine");
        return;
    }
    let norm = |v: &[f32]| v.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
    let relative = |a: &[f32], b: &[f32]| {
        let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        norm(&diff) / norm(a)
    };
    for (name, batch) in [("digits_cnn.toml", 32), ("cifar10_cnn.toml", 8), ("mlp.toml", 16)] {
        let net = load(name);
        let half = load(name).with_precision(stsyn::model::Precision::Bf16).unwrap();
        let params = net.init_params(&mut Seeds::new(5).stream(Purpose::Init, 0, 0));
        let (x, labels) = random_batch(&net, batch, 5);
        let run = |net: &Network| {
            let mut ws = net.workspace(batch);
            let mut grad = vec![0.0; net.num_params()];
            let loss = net.loss_and_grad(&params, &x, &labels, &mut grad, &mut ws);
            (loss, grad)
        };
        let ((loss, grad), (loss_bf16, grad_bf16)) = (run(&net), run(&half));
        for r in net.param_ranges().into_iter().filter(|r| !r.is_empty()) {
            let e = relative(&grad[r.clone()], &grad_bf16[r.clone()]);
            assert!(e < 0.25, "{name}, parameters {r:?}: gradient differs by {e:.4} relative");
        }
        let e = relative(&grad, &grad_bf16);
        assert!(e < 0.15, "{name}: gradient differs by {e:.4} relative");
        assert!(e > 0.0, "{name}: bf16 gave the f32 gradient exactly; are the products bf16?");
        assert!(((loss - loss_bf16) / loss).abs() < 0.01, "{name}: loss {loss} vs {loss_bf16}");
        assert_eq!(run(&half).1, grad_bf16, "{name}: bf16 gradient is deterministic");
    }
}

#[test]
fn gradient_whole_cifar10_cnn() {
    check_network(&load("cifar10_cnn.toml"), 2, 6, 19);
}

#[test]
fn conv_and_flatten_match_a_direct_convolution_in_pytorch_order() {
    // conv 2→3, kernel 3, stride 2, padding 1 on 2×5×4, then flatten: compare the logits of an
    // identity-like linear layer with a direct cross-correlation.
    let net = spec(
        "[2, 5, 4]",
        "squared_error",
        "[[layers]]\ntype = \"conv2d\"\nout_channels = 3\nkernel = 3\nstride = 2\npadding = 1\n[[layers]]\ntype = \"flatten\"\n",
    );
    let params = net.init_params(&mut Seeds::new(3).stream(Purpose::Init, 0, 0));
    let (x, _) = random_batch(&net, 2, 3);
    let mut ws = net.workspace(2);
    let out = net.predict(&params, &x, &mut ws).to_vec();
    let (ho, wo) = (3, 2);
    for b in 0..2 {
        for co in 0..3 {
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut v = params[3 * 18 + co];
                    for ci in 0..2 {
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let ih = (oh * 2 + kh) as isize - 1;
                                let iw = (ow * 2 + kw) as isize - 1;
                                if (0..5).contains(&ih) && (0..4).contains(&iw) {
                                    let xv = x[((b * 2 + ci) * 5 + ih as usize) * 4 + iw as usize];
                                    v += params[((co * 2 + ci) * 3 + kh) * 3 + kw] * xv;
                                }
                            }
                        }
                    }
                    let got = out[b * 18 + (co * ho + oh) * wo + ow];
                    assert!((got - v).abs() < 1e-5, "b{b} c{co} ({oh},{ow}): {got} vs {v}");
                }
            }
        }
    }
}

#[test]
fn loss_and_grad_is_deterministic_and_reuses_workspaces_across_batch_sizes() {
    let net = load("digits_cnn.toml");
    let params = net.init_params(&mut Seeds::new(2).stream(Purpose::Init, 0, 0));
    let (x, labels) = random_batch(&net, 16, 2);
    let mut ws = net.workspace(4); // grows on demand
    let mut g1 = vec![0.0; net.num_params()];
    let mut g2 = vec![1.0; net.num_params()];
    let l1 = net.loss_and_grad(&params, &x, &labels, &mut g1, &mut ws);
    let _ = net.loss_and_grad(&params, &x[..3 * 64], &labels[..3], &mut g2, &mut ws);
    let l2 = net.loss_and_grad(&params, &x, &labels, &mut g2, &mut ws);
    assert_eq!(l1.to_bits(), l2.to_bits());
    assert_eq!(g1, g2);
    let mut fresh = net.workspace(16);
    let (sum, correct) = net.evaluate(&params, &x, &labels, &mut fresh);
    assert!(((sum / 16.0) as f32 - l1).abs() < 1e-6);
    assert!(correct <= 16);
}

#[test]
fn batch_gradient_is_the_mean_of_per_sample_gradients_across_conv_chunks() {
    // batch 8 makes the CIFAR CNN's second convolution run in several column-matrix chunks
    let net = load("cifar10_cnn.toml");
    let params = net.init_params(&mut Seeds::new(21).stream(Purpose::Init, 0, 0));
    let (x, labels) = random_batch(&net, 8, 21);
    let mut ws = net.workspace(8);
    let mut batch = vec![0.0; net.num_params()];
    let loss = net.loss_and_grad(&params, &x, &labels, &mut batch, &mut ws);
    let mut mean = vec![0.0f64; net.num_params()];
    let mut mean_loss = 0.0;
    let mut one = vec![0.0; net.num_params()];
    for i in 0..8 {
        let d = net.input_len();
        mean_loss +=
            f64::from(net.loss_and_grad(&params, &x[i * d..(i + 1) * d], &labels[i..i + 1], &mut one, &mut ws)) / 8.0;
        mean.iter_mut().zip(&one).for_each(|(m, &g)| *m += f64::from(g) / 8.0);
    }
    assert!((f64::from(loss) - mean_loss).abs() < 1e-5);
    let scale = mean.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (a, b) in batch.iter().zip(&mean) {
        assert!((f64::from(*a) - b).abs() < 1e-4 * scale, "{a} vs {b}");
    }
}

#[test]
fn parallel_step_is_independent_of_the_thread_count() {
    let net = load("digits_cnn.toml");
    let params = net.init_params(&mut Seeds::new(4).stream(Purpose::Init, 0, 0));
    let (x, labels) = random_batch(&net, 30, 4);
    let mut serial = vec![0.0; net.num_params()];
    let serial_loss = net.loss_and_grad(&params, &x, &labels, &mut serial, &mut net.workspace(30));
    let mut results = Vec::new();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut step = ParallelStep::new(&net, 30, 4);
        let mut grad = vec![0.0; net.num_params()];
        let loss = pool.install(|| step.loss_and_grad(&net, &params, &x, &labels, &mut grad));
        results.push((loss.to_bits(), grad));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "bit-identical for 1, 2, 3 threads");
    let (loss, grad) = &results[0];
    assert!((f32::from_bits(*loss) - serial_loss).abs() < 1e-5);
    for (a, b) in grad.iter().zip(&serial) {
        assert!((a - b).abs() < 1e-5 + 1e-4 * b.abs());
    }
}

#[test]
fn spec_errors_name_the_file_and_the_layer() {
    let cases = [
        ("input = [1, 8, 8]\n[[layers]]\ntype = \"conv3d\"\n", "layers[0] (conv3d): unknown variant `conv3d`"),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 10\nbias = true\n",
            "layers[1] (linear): unknown field `bias`",
        ),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\n",
            "layers[0] (conv2d): missing field `kernel`",
        ),
        ("input = [1, 8, 8]\n[[layers]]\nkernel = 3\n", "layers[0] (no type): missing field `type`"),
        (
            "input = [1, 1000, 1000]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 1\nkernel = 500\n[[layers]]\ntype = \"flatten\"\n",
            "unfolds into",
        ),
        ("input = [1, 8, 8]\ncolour = 1\n[[layers]]\ntype = \"flatten\"\n", "colour"),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 0\n",
            "layers[1] (linear): out_features = 0",
        ),
        ("input = [1, 0, 8]\n[[layers]]\ntype = \"flatten\"\n", "input height"),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nin_features = 60\nout_features = 10\n",
            "in_features = 60 but its input has 64",
        ),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nin_channels = 3\nout_channels = 4\nkernel = 3\n",
            "in_channels = 3",
        ),
        ("input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 9\n", "does not fit"),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 3\nstride = 2\nmethod = \"dft\"\n",
            "layers[0] (conv2d): method = \"dft\" needs stride = 1, not 2",
        ),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 3\nmethod = \"fft\"\n",
            "layers[0] (conv2d): unknown variant `fft`, expected one of `im2col`, `dft`, `winograd`",
        ),
        (
            "input = [512, 512, 512]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 512\nkernel = 3\nmethod = \"dft\"\n",
            "values of tables here",
        ),
        // one frequency per row but H × H tables along the height, 2F × W along the width
        (
            "input = [1, 1048576, 1]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 1\nkernel = 1\nmethod = \"dft\"\n",
            "values of tables here",
        ),
        (
            "input = [1, 1, 1048576]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 1\nkernel = 1\nmethod = \"dft\"\n",
            "values of tables here",
        ),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 3\npadding = 1\nmethod = \"winograd\"\n",
            "layers[0] (conv2d): method = \"winograd\" needs a padded input of at most 6×6, not 10×10",
        ),
        (
            "input = [1, 5, 4]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 3\npadding = 1\nmethod = \"winograd\"\n",
            "at most 6×6, not 7×6",
        ),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 3\nstride = 2\nmethod = \"winograd\"\n",
            "layers[0] (conv2d): method = \"winograd\" needs stride = 1, not 2",
        ),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 3\n[[layers]]\ntype = \"linear\"\nout_features = 10\n",
            "add a flatten",
        ),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"conv2d\"\nout_channels = 4\nkernel = 3\n",
            "end with flatten or linear",
        ),
        (
            "input = [1, 8, 8]\nloss = \"binary_logistic\"\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 3\n",
            "exactly 1 output",
        ),
        ("input = [1, 8, 8]\nlayers = []\n", "at least one layer"),
        ("input = [1, 8]\n[[layers]]\ntype = \"flatten\"\n", "input"),
        ("input = [1, 8, 8]\n[[layers]]\ntype = \"relu\"\nslope = 0.1\n", "slope"),
        (
            "input = [10000, 1000, 1000]\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 1000000\n",
            "values per sample",
        ),
        (
            "input = [1000, 100, 10]\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout_features = 1000000\n",
            "too many parameters",
        ),
        ("input = [2000000, 1, 1]\n[[layers]]\ntype = \"flatten\"\n", "input channels"),
        (
            "input = [1, 8, 8]\n[[layers]]\ntype = \"maxpool2d\"\nkernel = 2\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"maxpool2d\"\nkernel = 1\n[[layers]]\ntype = \"linear\"\nout_features = 2\n",
            "cannot follow flatten",
        ),
    ];
    for (text, needle) in cases {
        let err = Network::from_toml(text, "models/bad.toml").expect_err(text).to_string();
        assert!(err.starts_with("models/bad.toml: "), "{err}");
        assert!(err.contains(needle), "'{err}' should mention '{needle}'");
    }
    let missing = Network::from_file(Path::new("models/does-not-exist.toml")).unwrap_err();
    assert!(missing.to_string().contains("does-not-exist.toml"));
}

#[test]
fn least_squares_optimum_is_a_stationary_point_and_beats_the_planted_model() {
    let problem = LeastSquaresProblem::generate(200, 5, 2, 0.3, 8);
    let opt = problem.optimum().unwrap();
    let net = problem.network().unwrap();
    let mut grad = vec![0.0; net.num_params()];
    let mut ws = net.workspace(200);
    let loss = net.loss_and_grad_targets(&opt, &problem.x, &problem.targets, &mut grad, &mut ws).unwrap();
    let gnorm = grad.iter().map(|g| g * g).sum::<f32>().sqrt();
    assert!(gnorm < 1e-4, "gradient at the optimum {gnorm}");
    assert!((f64::from(loss) - problem.loss(&opt)).abs() < 1e-4);
    assert!(problem.loss(&opt) <= problem.loss(&problem.planted));
    for (a, b) in opt.iter().zip(&problem.planted) {
        assert!((a - b).abs() < 0.15, "close to the planted parameters with 200 samples");
    }
    // plain gradient descent converges to it
    let mut p = vec![0.0f32; net.num_params()];
    for _ in 0..300 {
        net.loss_and_grad_targets(&p, &problem.x, &problem.targets, &mut grad, &mut ws).unwrap();
        p.iter_mut().zip(&grad).for_each(|(p, g)| *p -= 0.5 * g);
    }
    assert!(problem.loss(&p) - problem.loss(&opt) < 1e-6);
    // the classification version on the digits: one-hot targets, ridge-free closed form
    let digits = data::digits();
    let targets = one_hot(&digits.train.labels, 10);
    let opt = least_squares_optimum(&digits.train.images, &targets, 64, 10, 1e-3).unwrap();
    let ls = Network::from_file(&models_dir().join("least_squares.toml")).unwrap();
    let (_, correct) = ls.evaluate(&opt, &digits.test.images, &digits.test.labels, &mut ls.workspace(360));
    assert!(correct as f64 / 360.0 > 0.9, "least-squares classifier on digits: {correct}/360");
    assert!(net.loss_and_grad_targets(&opt[..12], &problem.x, &problem.targets[..3], &mut grad, &mut ws).is_err());
}

/// Plain SGD on the embedded digits, in f32 and (where the CPU has AMX-BF16) with bf16 products.
#[test]
fn digits_cnn_trained_with_sgd_reaches_95_percent() {
    let start = Instant::now();
    let mut precisions = vec![Precision::F32];
    if stsyn::model::gemm_bf16::available() {
        precisions.push(Precision::Bf16);
    }
    for precision in precisions {
        let net = load("digits_cnn.toml").with_precision(precision).unwrap();
        let mut split = data::digits();
        split.standardise();
        let seeds = Seeds::new(2024);
        let mut params = net.init_params(&mut seeds.stream(Purpose::Init, 0, 0));
        let all: Vec<u32> = (0..split.train.len() as u32).collect();
        let mut rng = seeds.stream(Purpose::Data, 0, 0);
        let (batch, lr) = (32, 0.1f32);
        let mut ws = net.workspace(batch);
        let mut grad = vec![0.0; net.num_params()];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..1500 {
            data::sample_batch(&split.train, &all, batch, &mut rng, &mut x, &mut y);
            net.loss_and_grad(&params, &x, &y, &mut grad, &mut ws);
            params.iter_mut().zip(&grad).for_each(|(p, g)| *p -= lr * g);
        }
        let (loss, correct) = net.evaluate(&params, &split.test.images, &split.test.labels, &mut net.workspace(360));
        let accuracy = correct as f64 / split.test.len() as f64;
        let p = precision.name();
        eprintln!("digits CNN, {p}: test accuracy {accuracy:.4}, mean loss {:.4}, {:?}", loss / 360.0, start.elapsed());
        assert!(accuracy >= 0.95, "{p}: test accuracy {accuracy}");
    }
    assert!(start.elapsed().as_secs_f64() < 30.0);
}

/// Writes parameters, a batch, the loss and the gradient of the CIFAR and digits CNNs as JSON
/// into `$STSYN_CROSS_CHECK_DIR`, for `benches/torch_cross_check.py` to compare with PyTorch
/// (which CI does not have): `STSYN_CROSS_CHECK_DIR=/tmp/xc cargo test --release -- --ignored
/// dump_for_pytorch_cross_check`.
#[test]
#[ignore = "needs PyTorch on the other side; run by hand"]
fn dump_for_pytorch_cross_check() {
    let dir = std::env::var("STSYN_CROSS_CHECK_DIR").expect("set STSYN_CROSS_CHECK_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    for (spec, n) in [("cifar10_cnn.toml", 5), ("digits_cnn.toml", 7)] {
        let net = load(spec);
        let params = net.init_params(&mut Seeds::new(31).stream(Purpose::Init, 0, 0));
        let (x, labels) = random_batch(&net, n, 31);
        let mut grad = vec![0.0; net.num_params()];
        let loss = net.loss_and_grad(&params, &x, &labels, &mut grad, &mut net.workspace(n));
        let logits = net.predict(&params, &x, &mut net.workspace(n)).to_vec();
        let out = serde_json::json!({
            "model": net.name(), "input": net.input_shape(), "params": params, "x": x,
            "labels": labels, "loss": loss, "grad": grad, "logits": logits,
        });
        std::fs::write(Path::new(&dir).join(format!("{}.json", net.name())), out.to_string()).unwrap();
    }
}

#[test]
fn a_workspace_serves_every_smaller_batch() {
    // A workspace sized for a batch of N is reused for the last, smaller chunk of an evaluation
    // and for any smaller batch; every such n must give what a fresh workspace gives.
    for (name, big, sizes) in
        [("digits_cnn.toml", 64usize, (1..=64).collect::<Vec<_>>()), ("cifar10_cnn.toml", 100, vec![1, 7, 33, 99, 100])]
    {
        let net = load(name);
        let params = net.init_params(&mut Seeds::new(4).stream(Purpose::Init, 0, 0));
        let mut shared = net.workspace(big);
        let (x, labels) = random_batch(&net, big, 5);
        let d = net.input_len();
        for n in sizes {
            let got = net.evaluate(&params, &x[..n * d], &labels[..n], &mut shared);
            let want = net.evaluate(&params, &x[..n * d], &labels[..n], &mut net.workspace(n));
            assert_eq!(got, want, "{name}, batch {n} in a workspace for {big}");
        }
    }
}
