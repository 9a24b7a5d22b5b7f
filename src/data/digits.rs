//! The embedded default dataset: 1,797 handwritten digits, 8×8 pixels with values 0..16 (the UCI
//! "Optical Recognition of Handwritten Digits" test set as shipped with scikit-learn, CC BY 4.0,
//! see `digits-LICENSE.md` next to this file). The gzipped CSV is compiled into the binary, so
//! this dataset is always available. Pixels are scaled to [0, 1] by dividing by 16; the split
//! into 1,437 training and 360 test images is a fixed seeded shuffle that never changes.

use flate2::read::GzDecoder;
use rand::seq::SliceRandom;
use std::io::Read;

use super::{Dataset, Split};
use crate::rng::{Purpose, Seeds};

const DIGITS_CSV_GZ: &[u8] = include_bytes!("digits.csv.gz");

/// Seed of the fixed train/test shuffle of the digits. Never change it: results would move.
pub const DIGITS_SPLIT_SEED: u64 = 0x5EED_D161_7500_0001;

/// Number of test images of the digits split (the rest, 1,437, are for training).
pub const DIGITS_TEST: usize = 360;

/// The embedded digits: 1,437 training and 360 test images of shape 1×8×8, pixels in [0, 1],
/// 10 classes. Call [`Split::standardise`] for zero mean and unit variance.
pub fn digits() -> Split {
    let mut text = String::new();
    GzDecoder::new(DIGITS_CSV_GZ).read_to_string(&mut text).expect("the embedded digits decompress");
    let mut images = Vec::with_capacity(1797 * 64);
    let mut labels = Vec::with_capacity(1797);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let values: Vec<u32> =
            line.split(',').map(|v| v.trim().parse().expect("the embedded digits are integers")).collect();
        assert_eq!(values.len(), 65, "the embedded digits have 64 pixels and a label");
        images.extend(values[..64].iter().map(|&v| v as f32 / 16.0));
        labels.push(values[64]);
    }
    let all = Dataset { images, labels, shape: [1, 8, 8], classes: 10 };
    let mut order: Vec<u32> = (0..all.len() as u32).collect();
    order.shuffle(&mut Seeds::new(DIGITS_SPLIT_SEED).stream(Purpose::Partition, 0, 0));
    let (test, train) = order.split_at(DIGITS_TEST);
    Split { train: all.subset(train), test: all.subset(test) }
}
