//! Neural networks written by hand on `f32` slices: layers with forward and backward passes
//! (one file each), a [`Network`] built at run time from a TOML spec in `models/`, and convex
//! models with a known optimum for theory-side experiments ([`convex`]).
//!
//! All parameters of a network live in ONE flat `f32` vector, layer after layer, each layer's
//! weight then bias in PyTorch's order (so the vector equals PyTorch's `parameters()`
//! concatenated). [`Network::loss_and_grad`] returns the gradient as one flat vector of the same
//! layout, so model averaging and SGD updates are plain vector arithmetic that never sees the
//! network's structure. A [`Network`] is immutable and `Send + Sync`; all scratch memory is in a
//! [`Workspace`] that the caller keeps per thread and reuses, so a training step allocates
//! nothing.
//!
//! Activations of convolutional layers are stored batch-minor (`C × H × W × n`, see [`Layout`]):
//! one matrix product covers a chunk of output positions for the whole batch, and unfolding,
//! pooling and their gradients move runs of `n` floats. A network that starts with convolutions
//! transposes its batch-major input (`n × C × H × W`, as datasets store it) once per step; the
//! fully connected part is batch-major (`n × F`). Everything is single-threaded
//! and deterministic; [`ParallelStep`] splits a batch into fixed chunks across rayon threads and
//! reduces them in a fixed order, so its result does not depend on the thread count.

pub mod conv2d;
pub mod conv2d_dft;
pub mod conv2d_winograd;
pub mod convex;
pub mod flatten;
mod gemm;
pub mod gemm_bf16;
#[cfg(target_arch = "x86_64")]
mod gemm_simd;
pub mod linear;
pub mod logistic;
pub mod maxpool2d;
pub mod relu;
pub mod softmax_xent;
pub mod spec;
pub mod squared_error;

use std::path::Path;

use rand::Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::{Error, Result};
use conv2d::Conv2d;
use flatten::Flatten;
pub use gemm_bf16::Precision;
use linear::Linear;
use logistic::BinaryLogistic;
use maxpool2d::MaxPool2d;
use relu::Relu;
use softmax_xent::SoftmaxCrossEntropy;
pub use spec::LossKind;
use squared_error::{SquaredError, Targets};

/// How a batch of `n` samples of shape `C × H × W` is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `n × C × H × W`: sample after sample (PyTorch's NCHW). Also `n × F` for flat features.
    BatchMajor,
    /// `C × H × W × n`: the sample index varies fastest, so each pixel of each channel holds a
    /// run of `n` floats, one per sample.
    BatchMinor,
}

/// One layer of a network.
#[derive(Clone, Debug)]
pub enum Layer {
    /// 2-D convolution.
    Conv2d(Conv2d),
    /// 2-D max pooling.
    MaxPool2d(MaxPool2d),
    /// Rectified linear unit.
    Relu(Relu),
    /// Flattening into a feature vector.
    Flatten(Flatten),
    /// Fully connected layer.
    Linear(Linear),
}

impl Layer {
    /// The spec's name of the layer type.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Conv2d(_) => "conv2d",
            Layer::MaxPool2d(_) => "maxpool2d",
            Layer::Relu(_) => "relu",
            Layer::Flatten(_) => "flatten",
            Layer::Linear(_) => "linear",
        }
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Layer::Conv2d(c) => c.num_params(),
            Layer::Linear(l) => l.num_params(),
            _ => 0,
        }
    }

    /// Fan-in of the default initialisation (0 for layers without parameters).
    fn fan_in(&self) -> usize {
        match self {
            Layer::Conv2d(c) => c.fan_in(),
            Layer::Linear(l) => l.in_features,
            _ => 0,
        }
    }

    /// Number of weights (the parameters before the biases).
    fn num_weights(&self) -> usize {
        match self {
            Layer::Conv2d(c) => c.out_shape[0] * c.patch_len(),
            Layer::Linear(l) => l.out_features * l.in_features,
            _ => 0,
        }
    }

    /// Forward FLOPs per sample: 2 per multiply-add of convolutions and linear layers;
    /// comparisons and element-wise operations are not counted.
    pub fn flops(&self) -> u64 {
        match self {
            Layer::Conv2d(c) => c.flops(),
            Layer::Linear(l) => l.flops(),
            _ => 0,
        }
    }

    /// One line describing the layer's settings.
    pub fn describe(&self) -> String {
        match self {
            Layer::Conv2d(c) => format!(
                "conv2d {}→{} kernel {} stride {} padding {}{}",
                c.in_shape[0],
                c.out_shape[0],
                c.kernel,
                c.stride,
                c.padding,
                c.transform.as_ref().map_or(String::new(), |t| format!(" {}", t.name()))
            ),
            Layer::MaxPool2d(p) => format!("maxpool2d kernel {} stride {}", p.kernel, p.stride),
            Layer::Relu(_) => "relu".to_string(),
            Layer::Flatten(_) => "flatten".to_string(),
            Layer::Linear(l) => format!("linear {}→{}", l.in_features, l.out_features),
        }
    }
}

/// A layer with its place in the network.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub layer: Layer,
    pub in_shape: [usize; 3],
    pub out_shape: [usize; 3],
    pub param_offset: usize,
    pub num_params: usize,
    /// Convolutions' [`Conv2d::gather_index`]; empty for other layers.
    pub gather_index: Vec<u32>,
}

impl Node {
    fn gather(&self) -> &[u32] {
        &self.gather_index
    }

    fn out_len(&self) -> usize {
        self.out_shape.iter().product()
    }
}

/// Description of one layer, for printing (`stsyn model`).
#[derive(Clone, Debug, Serialize)]
pub struct LayerInfo {
    /// Layer type as in the spec.
    pub kind: &'static str,
    /// Settings in one line.
    pub description: String,
    /// Output shape of one sample, `[C, H, W]` (`[F, 1, 1]` for flat features).
    pub output_shape: [usize; 3],
    /// Number of parameters.
    pub params: usize,
    /// Forward FLOPs per sample.
    pub flops: u64,
}

/// A network built from a spec: layers, shapes, parameter layout and loss. Immutable.
#[derive(Clone, Debug)]
pub struct Network {
    name: String,
    input: [usize; 3],
    loss: LossKind,
    /// The layers as executed: like the spec, except that a ReLU directly followed by max
    /// pooling is fused into the pooling.
    nodes: Vec<Node>,
    /// The layers as the spec lists them.
    infos: Vec<LayerInfo>,
    /// Whether the input is transposed to batch-minor before the first layer.
    stage_input: bool,
    /// Each spec layer's parameter range.
    ranges: Vec<std::ops::Range<usize>>,
    num_params: usize,
    /// Arithmetic of the convolutions' and linear layers' matrix products.
    precision: Precision,
}

/// Scratch memory for one thread's forward and backward passes: activations, gradients flowing
/// backwards, column matrices and pooling winners. Sized for a batch on creation and grown
/// (never shrunk) when a larger batch comes, so a training loop allocates nothing per step.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    batch: usize,
    activations: Vec<Vec<f32>>,
    grad_front: Vec<f32>,
    grad_back: Vec<f32>,
    input: Vec<f32>,
    cols: Vec<Vec<f32>>,
    winners: Vec<Vec<u32>>,
}

impl Workspace {
    /// The largest batch the workspace currently holds without growing.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

impl Network {
    /// Reads and builds the spec in `path`.
    pub fn from_file(path: &Path) -> Result<Network> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Network::from_toml(&text, &path.display().to_string())
    }

    /// Builds the spec in `text`; `origin` names its source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Network> {
        let built = spec::build(text, origin)?;
        let infos = built
            .nodes
            .iter()
            .map(|n| LayerInfo {
                kind: n.layer.kind(),
                description: n.layer.describe(),
                output_shape: n.out_shape,
                params: n.num_params,
                flops: n.layer.flops(),
            })
            .collect();
        let ranges = built.nodes.iter().map(|n| n.param_offset..n.param_offset + n.num_params).collect();
        let mut nodes: Vec<Node> = Vec::with_capacity(built.nodes.len());
        for node in built.nodes {
            if let (Layer::MaxPool2d(pool), Some(prev)) = (&node.layer, nodes.last())
                && matches!(prev.layer, Layer::Relu(_))
            {
                let relu = nodes.pop().expect("just matched");
                let mut pool = pool.clone();
                pool.relu_first = true;
                nodes.push(Node { layer: Layer::MaxPool2d(pool), in_shape: relu.in_shape, ..node });
            } else {
                nodes.push(node);
            }
        }
        Ok(Network {
            name: built.name,
            input: built.input,
            loss: built.loss,
            stage_input: built.stage_input,
            nodes,
            infos,
            ranges,
            num_params: built.num_params,
            precision: Precision::F32,
        })
    }

    /// The same network with its matrix products in `precision`; bf16 needs a CPU with
    /// AMX-BF16 ([`gemm_bf16::available`]).
    pub fn with_precision(mut self, precision: Precision) -> Result<Network> {
        if precision == Precision::Bf16 && !gemm_bf16::available() {
            return Err(Error::Config(
                "precision = \"bf16\" needs a CPU with AMX-BF16 (and Linux 5.16 or later); this one has none: use \"f32\"".into(),
            ));
        }
        self.precision = precision;
        Ok(self)
    }

    /// The arithmetic of the matrix products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Which kernel runs most of the matrix products on this CPU: `"amx-bf16"` for bf16, else
    /// `"avx512"` or `"avx2"` (`gemm_simd`, where it applies) or `"matrixmultiply"`. The
    /// results do not depend on it in f32; benchmark reports name it.
    pub fn products_kernel(&self) -> &'static str {
        match self.precision {
            Precision::Bf16 => "amx-bf16",
            Precision::F32 => gemm::f32_kernel(),
        }
    }

    /// The spec's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of the flat parameter (and gradient) vector.
    pub fn num_params(&self) -> usize {
        self.num_params
    }

    /// Shape `[C, H, W]` of one input sample.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// Floats per input sample.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Number of outputs of the last layer (classes for classification).
    pub fn num_classes(&self) -> usize {
        self.nodes.last().map_or(0, |n| n.out_shape[0])
    }

    /// The loss the network is trained with.
    pub fn loss_kind(&self) -> LossKind {
        self.loss
    }

    /// Forward FLOPs per sample (2 per multiply-add of convolutions and linear layers).
    pub fn flops_per_sample(&self) -> u64 {
        self.nodes.iter().map(|n| n.layer.flops()).sum()
    }

    /// The layers as executed (a ReLU directly followed by max pooling is fused into the
    /// pooling layer, see [`maxpool2d`]).
    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.nodes.iter().map(|n| &n.layer)
    }

    /// Descriptions of the layers as the spec lists them.
    pub fn layer_infos(&self) -> Vec<LayerInfo> {
        self.infos.clone()
    }

    /// Each spec layer's range in the flat parameter vector (empty for layers without
    /// parameters).
    pub fn param_ranges(&self) -> Vec<std::ops::Range<usize>> {
        self.ranges.clone()
    }

    /// PyTorch's default initialisation: every weight and bias of a layer with fan-in `f` drawn
    /// from U(−1/√f, 1/√f) (Kaiming-uniform with a = √5 for the weights), layer after layer,
    /// weights before biases, from `rng`.
    pub fn init_params(&self, rng: &mut impl Rng) -> Vec<f32> {
        let mut params = vec![0.0f32; self.num_params];
        for node in &self.nodes {
            let fan_in = node.layer.fan_in();
            if node.num_params == 0 {
                continue;
            }
            let bound = 1.0 / (fan_in as f32).sqrt();
            let slice = &mut params[node.param_offset..node.param_offset + node.num_params];
            debug_assert!(node.layer.num_weights() <= slice.len());
            for v in slice {
                *v = rng.random_range(-bound..bound);
            }
        }
        params
    }

    /// A workspace for batches of up to `batch` samples.
    pub fn workspace(&self, batch: usize) -> Workspace {
        let mut ws = Workspace::default();
        self.ensure(&mut ws, batch);
        ws
    }

    /// Bytes of the batch-sized buffers of a [`Network::workspace`] for `batch` samples, with
    /// the batch's inputs and labels and the scratch of `method = "dft"` and `"winograd"`
    /// convolutions (which grows with the batch up to one chunk of 128 samples; im2col's column
    /// matrices are left out: they are chunked to a fixed budget), for rejecting a batch that
    /// cannot fit in memory up front.
    pub fn workspace_bytes(&self, batch: usize) -> u128 {
        let per_sample: usize = self.nodes.iter().map(|n| n.out_len()).sum::<usize>() * 2 // activations, winners
            + 3 * self.nodes.iter().map(|n| n.out_len()).chain([self.input_len()]).max().unwrap_or(0) // gradients, input
            + self.input_len()
            + 1;
        let spectra: u128 = self
            .nodes
            .iter()
            .filter_map(|n| match &n.layer {
                Layer::Conv2d(Conv2d { transform: Some(t), .. }) if self.precision == Precision::F32 => {
                    // the spectra are sized for at most one chunk of samples, so no batch overflows it
                    Some(t.scratch_len(batch) as u128)
                }
                _ => None,
            })
            .sum();
        4 * (per_sample as u128 * batch as u128 + spectra)
    }

    fn ensure(&self, ws: &mut Workspace, batch: usize) {
        if ws.activations.len() == self.nodes.len() && ws.batch >= batch {
            return;
        }
        let batch = batch.max(ws.batch).max(1);
        let max_len = self.nodes.iter().map(|n| n.out_len()).chain([self.input_len()]).max().unwrap_or(0) * batch;
        ws.activations = self.nodes.iter().map(|n| vec![0.0; n.out_len() * batch]).collect();
        ws.grad_front = vec![0.0; max_len];
        ws.grad_back = vec![0.0; max_len];
        ws.cols = self
            .nodes
            .iter()
            .map(|n| match &n.layer {
                Layer::Conv2d(c) => vec![0.0; c.cols_len(batch, self.precision)],
                _ => Vec::new(),
            })
            .collect();
        ws.input = if self.stage_input { vec![0.0; self.input_len() * batch] } else { Vec::new() };
        ws.winners = self
            .nodes
            .iter()
            .map(|n| match &n.layer {
                Layer::MaxPool2d(_) => vec![0; n.out_len() * batch],
                _ => Vec::new(),
            })
            .collect();
        ws.batch = batch;
    }

    fn check_sizes(&self, params: &[f32], x: &[f32], n: usize) {
        assert_eq!(
            params.len(),
            self.num_params,
            "parameter vector has {} floats, network '{}' has {}",
            params.len(),
            self.name,
            self.num_params
        );
        assert_eq!(
            x.len(),
            n * self.input_len(),
            "input has {} floats, expected {} samples × {}",
            x.len(),
            n,
            self.input_len()
        );
    }

    /// Runs every layer forward on a batch of `n`; the outputs end in the last activation.
    fn forward(&self, params: &[f32], x: &[f32], n: usize, ws: &mut Workspace) {
        if self.stage_input {
            let d = self.input_len();
            flatten::transpose(x, n, d, &mut ws.input[..n * d]);
        }
        let x = if self.stage_input { &ws.input[..] } else { x };
        for (i, node) in self.nodes.iter().enumerate() {
            let (before, after) = ws.activations.split_at_mut(i);
            let input: &[f32] = if i == 0 { x } else { &before[i - 1] };
            let output = &mut after[0][..n * node.out_len()];
            let p = &params[node.param_offset..node.param_offset + node.num_params];
            match &node.layer {
                Layer::Conv2d(c) => c.forward(p, input, output, n, node.gather(), &mut ws.cols[i], self.precision),
                Layer::MaxPool2d(m) => m.forward(input, output, n, &mut ws.winners[i]),
                Layer::Relu(r) => r.forward(input, output, n * node.out_len()),
                Layer::Flatten(f) => f.forward(input, output, n),
                Layer::Linear(l) => l.forward(p, input, output, n, self.precision),
            }
        }
    }

    /// Runs every layer backward from the output gradient in `ws.grad_front`.
    fn backward(&self, params: &[f32], x: &[f32], n: usize, grad: &mut [f32], ws: &mut Workspace) {
        let x = if self.stage_input { &ws.input[..] } else { x };
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let input: &[f32] = if i == 0 { x } else { &ws.activations[i - 1] };
            let output = &ws.activations[i];
            let d_out = &ws.grad_front[..n * node.out_len()];
            let in_len = n * node.in_shape.iter().product::<usize>();
            let d_in = if i == 0 { None } else { Some(&mut ws.grad_back[..in_len]) };
            let range = node.param_offset..node.param_offset + node.num_params;
            let (p, g) = (&params[range.clone()], &mut grad[range]);
            match &node.layer {
                Layer::Conv2d(c) => {
                    c.backward(p, input, d_out, d_in, g, n, node.gather(), &mut ws.cols[i], self.precision)
                }
                Layer::Linear(l) => l.backward(p, input, d_out, d_in, g, n, self.precision),
                Layer::MaxPool2d(m) => {
                    if let Some(d) = d_in {
                        m.backward(output, d_out, d, n, &ws.winners[i]);
                    }
                }
                Layer::Relu(r) => {
                    if let Some(d) = d_in {
                        r.backward(output, d_out, d, n * node.out_len());
                    }
                }
                Layer::Flatten(f) => {
                    if let Some(d) = d_in {
                        f.backward(d_out, d, n);
                    }
                }
            }
            std::mem::swap(&mut ws.grad_front, &mut ws.grad_back);
        }
    }

    /// Applies the loss to the last activation; writes the output gradient into
    /// `ws.grad_front` when `with_grad`. Returns (sum of losses, number correct).
    fn head(&self, targets: Targets<'_>, n: usize, ws: &mut Workspace, with_grad: bool) -> (f64, usize) {
        let k = self.num_classes();
        let out = &ws.activations[self.nodes.len() - 1][..n * k];
        let d = with_grad.then(|| &mut ws.grad_front[..n * k]);
        match (self.loss, targets) {
            (LossKind::SoftmaxCrossEntropy, Targets::Labels(l)) => {
                SoftmaxCrossEntropy { classes: k }.evaluate(out, l, d)
            }
            (LossKind::BinaryLogistic, Targets::Labels(l)) => BinaryLogistic.evaluate(out, l, d),
            (LossKind::SquaredError, t) => SquaredError { outputs: k }.evaluate(out, t, n, d),
            (kind, Targets::Values(_)) => {
                panic!("real-valued targets need the squared_error loss, network has {kind:?}")
            }
        }
    }

    /// Mean loss over the batch; writes the flat gradient of the mean loss into `grad`
    /// (overwriting it). `x` holds `labels.len()` samples, batch-major. Single-threaded and
    /// deterministic; allocates only if the batch is larger than the workspace's.
    ///
    /// # Panics
    ///
    /// If `params`, `grad` or `x` have the wrong length or a label is out of range: these are
    /// programming errors, checked when an experiment is validated.
    pub fn loss_and_grad(
        &self,
        params: &[f32],
        x: &[f32],
        labels: &[u32],
        grad: &mut [f32],
        ws: &mut Workspace,
    ) -> f32 {
        self.loss_and_grad_for(params, x, Targets::Labels(labels), labels.len(), grad, ws)
    }

    /// Like [`Network::loss_and_grad`] with real-valued targets (`n × num_classes()`, row-major)
    /// for a network with the `squared_error` loss (regression).
    pub fn loss_and_grad_targets(
        &self,
        params: &[f32],
        x: &[f32],
        targets: &[f32],
        grad: &mut [f32],
        ws: &mut Workspace,
    ) -> Result<f32> {
        let n = self.regression_batch(x, targets)?;
        Ok(self.loss_and_grad_for(params, x, Targets::Values(targets), n, grad, ws))
    }

    fn regression_batch(&self, x: &[f32], targets: &[f32]) -> Result<usize> {
        if self.loss != LossKind::SquaredError {
            return Err(Error::Config(format!(
                "network '{}' uses the {:?} loss; real-valued targets need squared_error",
                self.name, self.loss
            )));
        }
        let n = x.len() / self.input_len();
        if targets.len() != n * self.num_classes() {
            return Err(Error::invalid(
                "targets",
                targets.len(),
                format!("need {} samples × {} outputs", n, self.num_classes()),
            ));
        }
        Ok(n)
    }

    fn loss_and_grad_for(
        &self,
        params: &[f32],
        x: &[f32],
        targets: Targets<'_>,
        n: usize,
        grad: &mut [f32],
        ws: &mut Workspace,
    ) -> f32 {
        self.check_sizes(params, x, n);
        assert_eq!(grad.len(), self.num_params, "gradient vector has the wrong length");
        if n == 0 {
            grad.fill(0.0);
            return 0.0;
        }
        self.ensure(ws, n);
        self.forward(params, x, n, ws);
        let (total, _) = self.head(targets, n, ws, true);
        self.backward(params, x, n, grad, ws);
        (total / n as f64) as f32
    }

    /// Forward only: (sum of the per-sample losses, number classified correctly) over the batch.
    pub fn evaluate(&self, params: &[f32], x: &[f32], labels: &[u32], ws: &mut Workspace) -> (f64, usize) {
        let n = labels.len();
        self.check_sizes(params, x, n);
        if n == 0 {
            return (0.0, 0);
        }
        self.ensure(ws, n);
        self.forward(params, x, n, ws);
        self.head(Targets::Labels(labels), n, ws, false)
    }

    /// Forward only with real-valued targets (squared_error loss): the sum of the per-sample
    /// losses.
    pub fn evaluate_targets(&self, params: &[f32], x: &[f32], targets: &[f32], ws: &mut Workspace) -> Result<f64> {
        let n = self.regression_batch(x, targets)?;
        self.check_sizes(params, x, n);
        if n == 0 {
            return Ok(0.0);
        }
        self.ensure(ws, n);
        self.forward(params, x, n, ws);
        Ok(self.head(Targets::Values(targets), n, ws, false).0)
    }

    /// The network's outputs (logits) for a batch, `n × num_classes()`, borrowed from `ws`.
    pub fn predict<'w>(&self, params: &[f32], x: &[f32], ws: &'w mut Workspace) -> &'w [f32] {
        let n = x.len() / self.input_len();
        self.check_sizes(params, x, n);
        self.ensure(ws, n.max(1));
        if n > 0 {
            self.forward(params, x, n, ws);
        }
        &ws.activations[self.nodes.len() - 1][..n * self.num_classes()]
    }
}

/// One minibatch gradient split across threads: the batch is cut into a fixed number of chunks
/// (`chunks`, chosen by the caller, not by the thread count), each chunk's mean-loss gradient is
/// computed on the current rayon pool, and the chunk gradients are combined in chunk order
/// weighted by chunk size. The result depends on `chunks` but not on how many threads run it.
#[derive(Debug)]
pub struct ParallelStep {
    chunks: usize,
    workspaces: Vec<Workspace>,
    grads: Vec<Vec<f32>>,
    losses: Vec<f32>,
}

impl ParallelStep {
    /// Scratch for batches of up to `batch` samples in `chunks` chunks.
    pub fn new(net: &Network, batch: usize, chunks: usize) -> ParallelStep {
        let chunks = chunks.max(1);
        let per = batch.div_ceil(chunks);
        ParallelStep {
            chunks,
            workspaces: (0..chunks).map(|_| net.workspace(per)).collect(),
            grads: (0..chunks).map(|_| vec![0.0; net.num_params()]).collect(),
            losses: vec![0.0; chunks],
        }
    }

    /// Mean loss over the batch and its gradient in `grad`, like [`Network::loss_and_grad`].
    pub fn loss_and_grad(&mut self, net: &Network, params: &[f32], x: &[f32], labels: &[u32], grad: &mut [f32]) -> f32 {
        let n = labels.len();
        let per = n.div_ceil(self.chunks).max(1);
        let d = net.input_len();
        self.workspaces
            .par_iter_mut()
            .zip(self.grads.par_iter_mut())
            .zip(self.losses.par_iter_mut())
            .enumerate()
            .for_each(|(c, ((ws, g), loss))| {
                let lo = (c * per).min(n);
                let hi = ((c + 1) * per).min(n);
                *loss = net.loss_and_grad(params, &x[lo * d..hi * d], &labels[lo..hi], g, ws);
            });
        let weights: Vec<f32> =
            (0..self.chunks).map(|c| (((c + 1) * per).min(n) - (c * per).min(n)) as f32 / n.max(1) as f32).collect();
        let total = weights.iter().zip(&self.losses).map(|(w, l)| w * l).sum();
        // every element sums the chunks in chunk order, whichever thread does it
        const SPAN: usize = 1 << 14;
        let grads = &self.grads;
        grad.par_chunks_mut(SPAN).enumerate().for_each(|(i, out)| {
            let (at, len) = (i * SPAN, out.len());
            out.fill(0.0);
            for (g, &w) in grads.iter().zip(&weights) {
                if w > 0.0 {
                    for (a, b) in out.iter_mut().zip(&g[at..at + len]) {
                        *a += w * b;
                    }
                }
            }
        });
        total
    }
}
