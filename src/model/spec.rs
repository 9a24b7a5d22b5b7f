//! Network specs: the TOML files in `models/` that say which layers a network has. A spec is
//! parsed with serde (unknown keys are errors) and then checked layer by layer while the shapes
//! are propagated from the input: every size must be at least 1, every kernel must fit, optional
//! `in_channels`/`in_features` must agree with what the previous layer produces, and the last
//! layer must produce what the loss needs. Errors name the spec and the layer (`layers[3]`).
//!
//! ```toml
//! name = "tiny"
//! input = [1, 8, 8]                # channels, height, width
//! loss = "softmax_cross_entropy"   # or "squared_error", "binary_logistic"
//! [[layers]]
//! type = "conv2d"                  # out_channels, kernel, stride = 1, padding = 0, in_channels,
//!                                  # method = "im2col" (or "dft", "winograd": see model::conv2d)
//! out_channels = 4
//! kernel = 3
//! [[layers]]
//! type = "relu"
//! [[layers]]
//! type = "maxpool2d"               # kernel, stride = kernel
//! kernel = 2
//! [[layers]]
//! type = "flatten"
//! [[layers]]
//! type = "linear"                  # out_features, in_features
//! out_features = 10
//! ```

use serde::Deserialize;

use super::conv2d::Conv2d;
use super::conv2d::{ConvMethod, Transform};
use super::conv2d_dft::Dft;
use super::conv2d_winograd::{MAX_POINTS, Winograd};
use super::flatten::Flatten;
use super::linear::Linear;
use super::maxpool2d::{MAX_KERNEL, MaxPool2d};
use super::relu::Relu;
use super::{Layer, Layout, Node};
use crate::config::toml_error;
use crate::{Error, Result};

/// Largest size accepted for any single dimension, so that products cannot overflow.
const MAX_DIM: usize = 1 << 20;
/// Largest number of floats in one sample's activation or in the parameter vector.
const MAX_ELEMENTS: usize = 1 << 31;

/// The loss the network is trained with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Softmax cross-entropy over `K ≥ 2` logits (classification).
    #[default]
    SoftmaxCrossEntropy,
    /// ½‖output − target‖², with one-hot targets for labels (least squares).
    SquaredError,
    /// Binary logistic loss on one output, labels 0 or 1.
    BinaryLogistic,
}

impl LossKind {
    /// The name a spec gives it.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::SoftmaxCrossEntropy => "softmax_cross_entropy",
            LossKind::SquaredError => "squared_error",
            LossKind::BinaryLogistic => "binary_logistic",
        }
    }
}

/// A network spec as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Short name (defaults to the file's name).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Shape of one input sample: channels, height, width.
    pub input: [usize; 3],
    /// The loss.
    #[serde(default)]
    pub loss: LossKind,
    /// The layers, in order; each is read into a [`LayerSpec`] on its own so that an error
    /// names the layer (`layers[i]`).
    pub layers: Vec<toml::Table>,
}

/// One layer as written in TOML, tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `type = "conv2d"`.
    Conv2d {
        /// Optional check of the input channels.
        in_channels: Option<usize>,
        /// Output channels.
        out_channels: usize,
        /// Square kernel size.
        kernel: usize,
        /// Step between kernel positions (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Zero padding on every side (default 0).
        #[serde(default)]
        padding: usize,
        /// How f32 products compute the layer: `"im2col"` (default, exact), `"dft"` or
        /// `"winograd"` (transform domains, equal up to rounding; see [`ConvMethod`]).
        #[serde(default)]
        method: ConvMethod,
    },
    /// `type = "maxpool2d"`.
    #[serde(rename = "maxpool2d", alias = "max_pool2d")]
    MaxPool2d {
        /// Square window size.
        kernel: usize,
        /// Step between windows (default: the kernel size).
        stride: Option<usize>,
    },
    /// `type = "relu"`.
    Relu {},
    /// `type = "flatten"`.
    Flatten {},
    /// `type = "linear"`.
    Linear {
        /// Optional check of the input features.
        in_features: Option<usize>,
        /// Output features.
        out_features: usize,
    },
}

fn one() -> usize {
    1
}

/// What [`build`] produces.
pub(crate) struct Built {
    pub name: String,
    pub input: [usize; 3],
    pub loss: LossKind,
    pub nodes: Vec<Node>,
    pub num_params: usize,
    /// The network starts (after ReLUs) with a convolution or pooling, which work on
    /// batch-minor activations: the input is transposed first.
    pub stage_input: bool,
}

/// Parses and checks a spec. `origin` names the file (or other source) in errors.
pub(crate) fn build(text: &str, origin: &str) -> Result<Built> {
    let spec: NetworkSpec = toml::from_str(text)
        .map_err(|e| Error::bad_file(origin, format!("invalid network spec: {}", toml_error(&e, Some(text)))))?;
    let bad = |at: String, reason: String| Error::bad_file(origin, format!("{at}: {reason}"));
    for (name, v) in ["channels", "height", "width"].iter().zip(spec.input) {
        if v == 0 || v > MAX_DIM {
            return Err(bad(format!("input {name}"), format!("{v} must be in 1..={MAX_DIM}")));
        }
    }
    if spec.input.iter().map(|&v| v as u128).product::<u128>() > MAX_ELEMENTS as u128 {
        return Err(bad("input".into(), format!("{:?} has more than {MAX_ELEMENTS} values per sample", spec.input)));
    }
    if spec.layers.is_empty() {
        return Err(bad("layers".into(), "a network needs at least one layer".into()));
    }
    let layers = spec
        .layers
        .iter()
        .enumerate()
        .map(|(i, table)| {
            LayerSpec::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
                let kind = table.get("type").and_then(|t| t.as_str()).unwrap_or("no type");
                bad(format!("layers[{i}] ({kind})"), toml_error(&e, None))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let stage_input = matches!(
        layers.iter().find(|l| !matches!(l, LayerSpec::Relu {})),
        Some(LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d { .. })
    );
    let mut shape = spec.input;
    let mut layout = if stage_input { Layout::BatchMinor } else { Layout::BatchMajor };
    let mut nodes = Vec::with_capacity(layers.len());
    let mut offset = 0usize;
    for (i, layer) in layers.iter().enumerate() {
        let at = |kind: &str| format!("layers[{i}] ({kind})");
        let positive = |kind: &str, field: &str, v: usize| -> Result<usize> {
            if v == 0 || v > MAX_DIM {
                Err(bad(at(kind), format!("{field} = {v} must be in 1..={MAX_DIM}")))
            } else {
                Ok(v)
            }
        };
        let (built, out_shape, out_layout) = match *layer {
            LayerSpec::Conv2d { in_channels, out_channels, kernel, stride, padding, method } => {
                let kind = "conv2d";
                positive(kind, "out_channels", out_channels)?;
                positive(kind, "kernel", kernel)?;
                positive(kind, "stride", stride)?;
                if padding > MAX_DIM {
                    return Err(bad(at(kind), format!("padding = {padding} is too large")));
                }
                if nodes.iter().any(|n: &Node| matches!(n.layer, Layer::Flatten(_) | Layer::Linear(_))) {
                    return Err(bad(at(kind), "a convolution cannot follow flatten or linear".into()));
                }
                if let Some(c) = in_channels
                    && c != shape[0]
                {
                    return Err(bad(at(kind), format!("in_channels = {c} but its input has {} channels", shape[0])));
                }
                let (h, w) = (shape[1] + 2 * padding, shape[2] + 2 * padding);
                if kernel > h || kernel > w {
                    return Err(bad(
                        at(kind),
                        format!(
                            "kernel {kernel} with padding {padding} does not fit the {}×{} input",
                            shape[1], shape[2]
                        ),
                    ));
                }
                if padding >= kernel {
                    return Err(bad(at(kind), format!("padding = {padding} must be smaller than kernel = {kernel}")));
                }
                let out = [out_channels, (h - kernel) / stride + 1, (w - kernel) / stride + 1];
                let [ci, hi, wi] = shape;
                let transform = match method {
                    ConvMethod::Im2col => None,
                    ConvMethod::Dft | ConvMethod::Winograd if stride != 1 => {
                        let name = if method == ConvMethod::Dft { "dft" } else { "winograd" };
                        return Err(bad(at(kind), format!("method = \"{name}\" needs stride = 1, not {stride}")));
                    }
                    ConvMethod::Winograd if h > MAX_POINTS || w > MAX_POINTS => {
                        return Err(bad(
                            at(kind),
                            format!(
                                "method = \"winograd\" needs a padded input of at most {MAX_POINTS}×{MAX_POINTS}, not {h}×{w}"
                            ),
                        ));
                    }
                    ConvMethod::Winograd => {
                        Some(Box::new(Transform::Winograd(Winograd::new(ci, out_channels, hi, wi, kernel, padding))))
                    }
                    ConvMethod::Dft => {
                        // its tables and weight spectra: 5 values per frequency and (tap or channel
                        // pair), the three H × H tables along the height and the two 2F × W along
                        // the width
                        let wide = |v: usize| v as u128;
                        let f = wide(w / 2 + 1);
                        let values = 5 * wide(h) * f * (wide(kernel) * wide(kernel) + wide(ci) * wide(out_channels))
                            + 3 * wide(h) * wide(h)
                            + 4 * f * wide(w);
                        if values > wide(MAX_ELEMENTS) {
                            return Err(bad(
                                at(kind),
                                format!(
                                    "method = \"dft\" needs {values} values of tables here (at most {MAX_ELEMENTS})"
                                ),
                            ));
                        }
                        Some(Box::new(Transform::Dft(Dft::new(ci, out_channels, hi, wi, kernel, padding))))
                    }
                };
                let conv = Conv2d { in_shape: shape, out_shape: out, kernel, stride, padding, transform };
                (Layer::Conv2d(conv), out, Layout::BatchMinor)
            }
            LayerSpec::MaxPool2d { kernel, stride } => {
                let kind = "maxpool2d";
                positive(kind, "kernel", kernel)?;
                if kernel > MAX_KERNEL {
                    return Err(bad(at(kind), format!("kernel = {kernel} is larger than the supported {MAX_KERNEL}")));
                }
                if layout != Layout::BatchMinor {
                    return Err(bad(at(kind), "max pooling cannot follow flatten or linear".into()));
                }
                let stride = positive(kind, "stride", stride.unwrap_or(kernel))?;
                if kernel > shape[1] || kernel > shape[2] {
                    return Err(bad(
                        at(kind),
                        format!("kernel {kernel} does not fit the {}×{} input", shape[1], shape[2]),
                    ));
                }
                let out = [shape[0], (shape[1] - kernel) / stride + 1, (shape[2] - kernel) / stride + 1];
                let pool = MaxPool2d { in_shape: shape, out_shape: out, kernel, stride, relu_first: false };
                (Layer::MaxPool2d(pool), out, layout)
            }
            LayerSpec::Relu {} => (Layer::Relu(Relu { shape }), shape, layout),
            LayerSpec::Flatten {} => {
                let flatten = Flatten { in_shape: shape, in_layout: layout };
                let f = flatten.features();
                (Layer::Flatten(flatten), [f, 1, 1], Layout::BatchMajor)
            }
            LayerSpec::Linear { in_features, out_features } => {
                let kind = "linear";
                positive(kind, "out_features", out_features)?;
                let features: usize = shape.iter().product();
                if layout == Layout::BatchMinor {
                    return Err(bad(
                        at(kind),
                        "its input is a convolution's feature maps: add a flatten layer before it".into(),
                    ));
                }
                if let Some(f) = in_features
                    && f != features
                {
                    return Err(bad(
                        at(kind),
                        format!(
                            "in_features = {f} but its input has {features} features ({}×{}×{})",
                            shape[0], shape[1], shape[2]
                        ),
                    ));
                }
                let linear = Linear { in_features: features, out_features };
                (Layer::Linear(linear), [out_features, 1, 1], Layout::BatchMajor)
            }
        };
        let elements = out_shape[0].checked_mul(out_shape[1]).and_then(|v| v.checked_mul(out_shape[2]));
        if elements.is_none_or(|e| e > MAX_ELEMENTS) {
            return Err(bad(at(built.kind()), "output is too large".into()));
        }
        // counted in u128 so that absurd sizes are reported instead of overflowing
        let wide = |v: usize| v as u128;
        let params = match &built {
            Layer::Conv2d(c) => wide(c.out_shape[0]) * (wide(c.in_shape[0]) * wide(c.kernel) * wide(c.kernel) + 1),
            Layer::Linear(l) => wide(l.out_features) * (wide(l.in_features) + 1),
            _ => 0,
        };
        if params + wide(offset) > wide(MAX_ELEMENTS) {
            return Err(bad(
                at(built.kind()),
                format!("too many parameters ({params}; at most {MAX_ELEMENTS} in all)"),
            ));
        }
        if let Layer::Conv2d(c) = &built {
            // the unfold index has k² entries per output position (and the column matrix as many
            // floats per sample): bounded like an activation
            let unfold = wide(c.kernel) * wide(c.kernel) * wide(out_shape[1]) * wide(out_shape[2]);
            if unfold * wide(c.in_shape[0]) > wide(MAX_ELEMENTS) {
                return Err(bad(
                    at(built.kind()),
                    format!(
                        "a {k}×{k} kernel over {h}×{w} outputs unfolds into {unfold} × {ci} values per sample (at most {MAX_ELEMENTS})",
                        k = c.kernel,
                        h = out_shape[1],
                        w = out_shape[2],
                        ci = c.in_shape[0]
                    ),
                ));
            }
        }
        let params = built.num_params();
        let gather_index = match &built {
            Layer::Conv2d(c) => c.gather_index(),
            _ => Vec::new(),
        };
        nodes.push(Node {
            gather_index,
            layer: built,
            in_shape: shape,
            out_shape,
            param_offset: offset,
            num_params: params,
        });
        offset += params;
        shape = out_shape;
        layout = out_layout;
    }
    if layout != Layout::BatchMajor || shape[1] != 1 || shape[2] != 1 {
        return Err(bad(
            "layers".into(),
            format!(
                "the last layer gives {}×{}×{} feature maps; end with flatten or linear",
                shape[0], shape[1], shape[2]
            ),
        ));
    }
    let outputs = shape[0];
    match spec.loss {
        LossKind::SoftmaxCrossEntropy if outputs < 2 => {
            return Err(bad(
                "loss".into(),
                format!("softmax_cross_entropy needs at least 2 outputs, the network gives {outputs}"),
            ));
        }
        LossKind::BinaryLogistic if outputs != 1 => {
            return Err(bad(
                "loss".into(),
                format!("binary_logistic needs exactly 1 output, the network gives {outputs}"),
            ));
        }
        _ => {}
    }
    let name = spec.name.clone().unwrap_or_else(|| {
        std::path::Path::new(origin)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| origin.to_string())
    });
    Ok(Built { name, input: spec.input, loss: spec.loss, nodes, num_params: offset, stage_input })
}
