//! A seeded synthetic image dataset of any shape and number of classes, for tests and scale
//! runs. Each class has a prototype image with standard normal pixels; a sample is
//! `SIGNAL × prototype + standard normal noise`, with a uniformly drawn label. The classes are
//! therefore learnable (a linear classifier separates them well once images have more than a
//! few dozen pixels) but not trivially so for tiny images. The same arguments always give the
//! same data.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{Dataset, Split};
use crate::rng::{Purpose, Seeds, Stream};

/// Scale of the class prototype relative to the unit noise.
const SIGNAL: f32 = 0.5;

/// `n_train` training and `n_test` test images of `shape` in `classes` classes from `seed`.
///
/// # Panics
///
/// If `classes` is 0 or `shape` has a zero entry.
pub fn synthetic(shape: [usize; 3], classes: usize, n_train: usize, n_test: usize, seed: u64) -> Split {
    assert!(classes > 0 && shape.iter().all(|&s| s > 0), "synthetic data needs classes and a shape ≥ 1");
    let seeds = Seeds::new(seed);
    let d: usize = shape.iter().product();
    let mut rng = seeds.stream(Purpose::Synthetic, 0, 0);
    let prototypes: Vec<f32> = (0..classes * d).map(|_| normal(&mut rng)).collect();
    let make = |n: usize, stream: u64| {
        let mut rng = seeds.stream(Purpose::Synthetic, stream, 0);
        let mut images = Vec::with_capacity(n * d);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let label = rng.random_range(0..classes);
            labels.push(label as u32);
            let proto = &prototypes[label * d..(label + 1) * d];
            images.extend(proto.iter().map(|&p| SIGNAL * p + normal(&mut rng)));
        }
        Dataset { images, labels, shape, classes }
    };
    Split { train: make(n_train, 1), test: make(n_test, 2) }
}

fn normal(rng: &mut Stream) -> f32 {
    let v: f64 = StandardNormal.sample(rng);
    v as f32
}
