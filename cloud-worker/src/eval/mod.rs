//! Semantic-segmentation evaluation on Cityscapes-format data (`flowcloud-worker eval`).
//!
//! Ground truth is `gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png`. The
//! predictions either are label images on disk, matched to the ground truth by their
//! `{city}_{seq}_{frame}` key as `cityscapesScripts` matches them ([`Source::Predictions`]), or
//! come from running a model with the ONNX Runtime engine over
//! `leftImg8bit/{split}/{city}/*_leftImg8bit.png` ([`Source::Model`]): the same preprocessing
//! (from RGB), inference and upsample + argmax as the worker.
//!
//! Every pixel goes into one [`ConfusionMatrix`]; [`ConfusionMatrix::metrics`] computes pixel
//! accuracy, mean accuracy, per-class IoU and three mIoU figures, defined exactly in
//! [`confusion`]. [`report`] renders them as a table and as JSON. The per-class IoU and mIoU
//! equal those of `cityscapesScripts`' `evalPixelLevelSemanticLabeling` (checked by
//! `tests/eval.rs` against the installed package).

pub mod command;
pub mod confusion;
pub mod dataset;
pub mod report;
pub mod run;

use std::path::PathBuf;

pub use self::confusion::{ConfusionMatrix, EvalClasses, Metrics, PixelError};
pub use self::dataset::ImageLimits;
pub use self::run::{EvalOptions, Evaluation, Progress, Source, evaluate};
use crate::engine::EngineError;
use crate::post::PostError;
use crate::preprocess::PreprocessError;
use crate::storage::StorageError;

/// Why an evaluation failed; every variant about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or folder could not be read or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No ground-truth file was found.
    #[error("no ground truth: no *_gtFine_labelIds.png below {}", dir.display())]
    NoGroundTruth {
        /// The folder searched.
        dir: PathBuf,
    },
    /// A file name has no `{city}_{seq}_{frame}` key.
    #[error("{}: not a Cityscapes file name ({{city}}_{{seq}}_{{frame}}_…)", path.display())]
    FileName {
        /// The file.
        path: PathBuf,
    },
    /// Two files of one kind have the same key.
    #[error("two {what} files for {key}: {} and {}", first.display(), second.display())]
    Duplicate {
        /// "ground-truth", "prediction" or "image".
        what: &'static str,
        /// The key.
        key: String,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A ground-truth file has no prediction.
    #[error(
        "no prediction for {}: no file {key}*{suffix} below {}",
        ground_truth.display(),
        dir.display()
    )]
    MissingPrediction {
        /// The ground-truth file.
        ground_truth: PathBuf,
        /// Its key.
        key: String,
        /// The prediction folder.
        dir: PathBuf,
        /// The suffix looked for.
        suffix: &'static str,
    },
    /// A ground-truth file has no camera image.
    #[error(
        "no image for {}: no file {key}_leftImg8bit.png below {}",
        ground_truth.display(),
        dir.display()
    )]
    MissingImage {
        /// The ground-truth file.
        ground_truth: PathBuf,
        /// Its key.
        key: String,
        /// The image folder.
        dir: PathBuf,
    },
    /// A file is not a PNG that can be decoded.
    #[error("{}: {source}", path.display())]
    Png {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: png::DecodingError,
    },
    /// An image is larger than the limit.
    #[error("{}: {width}×{height} pixels, larger than the limit of {max} a side", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The limit.
        max: u32,
    },
    /// A file is larger than the limit.
    #[error("{}: {bytes} bytes, larger than the limit of {max}", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// A PNG of the wrong kind.
    #[error("{}: a {found} PNG; expected {expected}", path.display())]
    PngFormat {
        /// The file.
        path: PathBuf,
        /// What it is.
        found: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A prediction or image differs in size from its ground truth.
    #[error(
        "{} is {width}×{height}, its ground truth {} is {gt_width}×{gt_height}",
        path.display(),
        ground_truth.display()
    )]
    SizeMismatch {
        /// The prediction or image.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The ground truth.
        ground_truth: PathBuf,
        /// Its width.
        gt_width: u32,
        /// Its height.
        gt_height: u32,
    },
    /// A label image holds a value it cannot hold.
    #[error("{}: {source}", path.display())]
    Pixels {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: PixelError,
    },
    /// The model cannot be loaded or run.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// An image cannot be preprocessed.
    #[error("{}: {source}", path.display())]
    Preprocess {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: PreprocessError,
    },
    /// The logits of an image cannot be turned into a class map.
    #[error("{}: {source}", path.display())]
    Post {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: PostError,
    },
    /// A prediction cannot be written.
    #[error("cannot write a prediction: {0}")]
    Write(#[from] StorageError),
    /// The options are inconsistent.
    #[error("{0}")]
    Options(String),
}
