//! MNIST in its IDX files: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or gzipped (`.gz` appended).
//! An IDX file is a 4-byte magic (two zero bytes, the type code 0x08 for unsigned bytes, the
//! number of dimensions), one big-endian `u32` per dimension, then the data. Pixels are scaled
//! to [0, 1] and normalised with MNIST's usual mean 0.1307 and standard deviation 0.3081.
//! Headers, sizes, label ranges and image/label counts are checked; errors name the file and
//! the byte offset.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{Dataset, Split, read_file};
use crate::{Error, Result};

/// Mean used to normalise MNIST (after scaling to [0, 1]).
pub const MNIST_MEAN: f32 = 0.1307;
/// Standard deviation used to normalise MNIST (after scaling to [0, 1]).
pub const MNIST_STD: f32 = 0.3081;

pub(crate) const HINT: &str = "put MNIST's train-images-idx3-ubyte, train-labels-idx1-ubyte, \
                    t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz) in that directory";

/// Loads MNIST from `dir`, normalised; images of shape 1×rows×cols (1×28×28 for the real files),
/// 10 classes.
pub fn mnist(dir: &Path) -> Result<Split> {
    if !dir.is_dir() {
        return Err(Error::invalid("MNIST directory", dir.display(), format!("not a directory; {HINT}")));
    }
    let (train, test) = (load_pair(dir, "train")?, load_pair(dir, "t10k")?);
    if test.shape != train.shape {
        return Err(Error::bad_file(
            dir.join("t10k-images-idx3-ubyte"),
            format!(
                "images are {:?} in the header at byte offset 8, the training images {:?}",
                test.shape, train.shape
            ),
        ));
    }
    Ok(Split { train, test })
}

fn load_pair(dir: &Path, prefix: &str) -> Result<Dataset> {
    let (img_path, img) = read_idx(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let (lab_path, lab) = read_idx(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (dims, pixels) = parse_idx(&img_path, &img, 3)?;
    let (ldims, labels) = parse_idx(&lab_path, &lab, 1)?;
    if ldims[0] != dims[0] {
        return Err(Error::bad_file(
            &lab_path,
            format!("{} labels but {} has {} images", ldims[0], img_path.display(), dims[0]),
        ));
    }
    if let Some(k) = labels.iter().position(|&l| l > 9) {
        return Err(Error::bad_file(
            &lab_path,
            format!("label {k} at byte offset {} is {}, not in 0..=9", 8 + k, labels[k]),
        ));
    }
    let scale = 1.0 / (255.0 * MNIST_STD);
    let shift = MNIST_MEAN / MNIST_STD;
    Ok(Dataset {
        images: pixels.iter().map(|&v| f32::from(v) * scale - shift).collect(),
        labels: labels.iter().map(|&l| u32::from(l)).collect(),
        shape: [1, dims[1], dims[2]],
        classes: 10,
    })
}

/// Reads `dir/name`, or `dir/name.gz` decompressed.
fn read_idx(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let raw = dir.join(name);
    if raw.exists() {
        return Ok((raw.clone(), read_file(&raw, HINT)?));
    }
    let gz = dir.join(format!("{name}.gz"));
    if !gz.exists() {
        return Err(Error::invalid(
            "dataset file",
            raw.display(),
            format!("not found (nor {name}.gz); {HINT} (stsyn never downloads data)"),
        ));
    }
    let packed = read_file(&gz, HINT)?;
    let mut bytes = Vec::new();
    GzDecoder::new(&packed[..]).read_to_end(&mut bytes).map_err(|e| {
        Error::bad_file(&gz, format!("corrupt gzip data after {} decompressed bytes: {e}", bytes.len()))
    })?;
    Ok((gz, bytes))
}

/// Checks an IDX header with `ndims` dimensions of unsigned bytes; returns the dimensions and
/// the data.
fn parse_idx<'a>(path: &Path, bytes: &'a [u8], ndims: usize) -> Result<(Vec<usize>, &'a [u8])> {
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(Error::bad_file(
            path,
            format!("truncated: {} bytes, shorter than the {header}-byte IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != ndims {
        return Err(Error::bad_file(
            path,
            format!(
                "bad IDX magic {:02x} {:02x} {:02x} {:02x} at byte offset 0: expected 00 00 08 {ndims:02x} \
                 (unsigned bytes, {ndims} dimensions)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    if dims[0] == 0 {
        return Err(Error::bad_file(path, "the IDX header at byte offset 4 says 0 items: the file holds no data"));
    }
    if dims.iter().skip(1).any(|&d| d == 0) {
        return Err(Error::bad_file(path, format!("zero image size {dims:?} in the IDX header")));
    }
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::bad_file(path, format!("IDX dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() < len {
        let item: usize = dims[1..].iter().product();
        let index = data.len() / item.max(1);
        return Err(Error::bad_file(
            path,
            format!(
                "truncated: the header promises {} items ({len} data bytes) but only {} follow; \
                 item {index} at byte offset {} is incomplete",
                dims[0],
                data.len(),
                header + index * item
            ),
        ));
    }
    if data.len() > len {
        return Err(Error::bad_file(
            path,
            format!("{} unexpected bytes after the data, at byte offset {}", data.len() - len, header + len),
        ));
    }
    Ok((dims, data))
}
