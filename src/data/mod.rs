//! Datasets and how they are split over workers. A [`Dataset`] is images as one flat `f32`
//! vector (`n × C × H × W`, row-major, ready for [`Network`](crate::model::Network)) with `u32`
//! labels. Sources: the embedded 8×8 digits ([`digits()`], the default, always available), the
//! CIFAR-10 binary files ([`cifar10()`]) and MNIST IDX files ([`mnist()`]) from a directory the user
//! names (never downloaded), and a seeded synthetic generator ([`synthetic()`]). Loaders check every
//! size and label and report a truncated or corrupt file as [`Error::BadFile`](crate::Error)
//! naming the file and the offset or record.
//!
//! [`partition()`] splits a training set over M workers (i.i.d., the paper's sorted non-i.i.d.
//! split, or Dirichlet label skew), and [`sample_batch`] draws a minibatch with replacement from
//! one worker's shard, as the paper's `RandomSampler(replacement=True)` does.

mod cifar10;
mod digits;
mod mnist;
mod partition;
mod synthetic;

pub use cifar10::{CIFAR10_MEAN, CIFAR10_STD, cifar10};
pub use digits::{DIGITS_SPLIT_SEED, DIGITS_TEST, digits};
pub use mnist::{MNIST_MEAN, MNIST_STD, mnist};
pub use partition::{Partition, partition, sample_batch};
pub use synthetic::synthetic;

/// Which files a CIFAR-10 or MNIST directory must hold, for error messages.
pub(crate) use cifar10::HINT as CIFAR10_FILES;
pub(crate) use mnist::HINT as MNIST_FILES;

/// Labelled images.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Pixels, `n × C × H × W` row-major.
    pub images: Vec<f32>,
    /// Labels in `0..classes`, one per image.
    pub labels: Vec<u32>,
    /// Shape `[C, H, W]` of one image.
    pub shape: [usize; 3],
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Floats per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let d = self.image_len();
        &self.images[i * d..(i + 1) * d]
    }

    /// Per-channel mean and standard deviation over all images.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        for img in self.images.chunks_exact(c * plane) {
            for ch in 0..c {
                for &v in &img[ch * plane..(ch + 1) * plane] {
                    sum[ch] += f64::from(v);
                    sq[ch] += f64::from(v) * f64::from(v);
                }
            }
        }
        let count = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq.iter().zip(&mean).map(|(s, m)| ((s / count - m * m).max(0.0).sqrt()) as f32).collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// Replaces every pixel `v` of channel `c` with `(v − mean[c]) / std[c]`.
    ///
    /// # Panics
    ///
    /// If `mean` or `std` does not have one entry per channel.
    pub fn normalise(&mut self, mean: &[f32], std: &[f32]) {
        let [c, h, w] = self.shape;
        assert!(mean.len() == c && std.len() == c, "need one mean and std per channel");
        let plane = h * w;
        for img in self.images.chunks_exact_mut(c * plane) {
            for ch in 0..c {
                let inv = if std[ch] > 0.0 { 1.0 / std[ch] } else { 1.0 };
                for v in &mut img[ch * plane..(ch + 1) * plane] {
                    *v = (*v - mean[ch]) * inv;
                }
            }
        }
    }

    /// The images with indices `idx`, in that order.
    pub fn subset(&self, idx: &[u32]) -> Dataset {
        let d = self.image_len();
        let mut images = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            images.extend_from_slice(self.image(i as usize));
        }
        Dataset {
            images,
            labels: idx.iter().map(|&i| self.labels[i as usize]).collect(),
            shape: self.shape,
            classes: self.classes,
        }
    }
}

/// A training set and a test set of the same shape and classes.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training images.
    pub train: Dataset,
    /// Test images.
    pub test: Dataset,
}

impl Split {
    /// Standardises both sets per channel with the training set's mean and standard deviation.
    pub fn standardise(&mut self) {
        let (mean, std) = self.train.channel_stats();
        self.train.normalise(&mean, &std);
        self.test.normalise(&mean, &std);
    }
}

/// Reads a whole file the user named; a missing file is reported with `hint` (which files to
/// put where).
pub(crate) fn read_file(path: &std::path::Path, hint: &str) -> crate::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(crate::Error::invalid(
            "dataset file",
            path.display(),
            format!("not found; {hint} (stsyn never downloads data)"),
        )),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}
