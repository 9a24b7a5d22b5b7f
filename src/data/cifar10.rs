//! CIFAR-10 in its binary version (`cifar-10-binary.tar.gz`, unpacked): `data_batch_1.bin` ..
//! `data_batch_5.bin` for training and `test_batch.bin` for testing, each a sequence of records
//! of 1 label byte and 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, row-major 32×32).
//! Pixels are scaled to [0, 1] and normalised per channel with the mean and standard deviation
//! the paper's code uses (specs/stsyn.md §5.1). Files of any whole number of records are
//! accepted (the real ones have 10,000); a partial record or a label above 9 is reported with
//! the file, record and byte offset.

use std::path::{Path, PathBuf};

use super::{Dataset, Split, read_file};
use crate::{Error, Result};

/// Per-channel mean used to normalise CIFAR-10 (after scaling to [0, 1]).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation used to normalise CIFAR-10 (after scaling to [0, 1]).
pub const CIFAR10_STD: [f32; 3] = [0.2023, 0.1994, 0.2010];

const RECORD: usize = 1 + 3 * 32 * 32;
const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
const TEST_FILE: &str = "test_batch.bin";
pub(crate) const HINT: &str = "put the CIFAR-10 binary version's files data_batch_1.bin .. data_batch_5.bin \
                    and test_batch.bin (from cifar-10-binary.tar.gz) in that directory";

/// Loads CIFAR-10 from `dir` (or from `dir/cifar-10-batches-bin`, the folder the archive
/// unpacks to), normalised; 3×32×32 images, 10 classes.
pub fn cifar10(dir: &Path) -> Result<Split> {
    if !dir.is_dir() {
        return Err(Error::invalid("CIFAR-10 directory", dir.display(), format!("not a directory; {HINT}")));
    }
    let nested = dir.join("cifar-10-batches-bin");
    let dir: PathBuf = if !dir.join(TRAIN_FILES[0]).exists() && nested.join(TRAIN_FILES[0]).exists() {
        nested
    } else {
        dir.to_path_buf()
    };
    let mut train = empty();
    for name in TRAIN_FILES {
        read_batch(&dir.join(name), &mut train)?;
    }
    let mut test = empty();
    read_batch(&dir.join(TEST_FILE), &mut test)?;
    Ok(Split { train, test })
}

fn empty() -> Dataset {
    Dataset { images: Vec::new(), labels: Vec::new(), shape: [3, 32, 32], classes: 10 }
}

/// Appends the records of one batch file to `out`.
fn read_batch(path: &Path, out: &mut Dataset) -> Result<()> {
    let bytes = read_file(path, HINT)?;
    if bytes.is_empty() {
        return Err(Error::bad_file(path, "empty file: no CIFAR-10 records"));
    }
    if bytes.len() % RECORD != 0 {
        let record = bytes.len() / RECORD;
        return Err(Error::bad_file(
            path,
            format!(
                "truncated: record {record} at byte offset {} has {} of its {RECORD} bytes",
                record * RECORD,
                bytes.len() % RECORD
            ),
        ));
    }
    let scale: Vec<(f32, f32)> =
        (0..3).map(|c| (1.0 / (255.0 * CIFAR10_STD[c]), CIFAR10_MEAN[c] / CIFAR10_STD[c])).collect();
    out.images.reserve(bytes.len() / RECORD * (RECORD - 1));
    for (k, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let label = rec[0];
        if label > 9 {
            return Err(Error::bad_file(
                path,
                format!(
                    "record {k} at byte offset {}: label {label} is not in 0..=9 (not a CIFAR-10 binary file?)",
                    k * RECORD
                ),
            ));
        }
        out.labels.push(u32::from(label));
        for (c, plane) in rec[1..].chunks_exact(1024).enumerate() {
            let (a, b) = scale[c];
            out.images.extend(plane.iter().map(|&v| f32::from(v) * a - b));
        }
    }
    Ok(())
}
