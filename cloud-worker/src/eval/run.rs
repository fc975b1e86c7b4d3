//! The two ways to evaluate: predictions already on disk, or a model run over the images.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use super::EvalError;
use super::confusion::{ConfusionMatrix, EvalClasses};
use super::dataset::{
    self, GroundTruthFile, IMAGE_SUFFIX, ImageLimits, LabelImage, ground_truth_files, index_files,
    read_label_png, read_rgb_png, split_dir,
};
use crate::engine::onnxruntime::{OnnxRuntimeEngine, OnnxRuntimeOptions};
use crate::engine::{Engine, InputBatch};
use crate::post;
use crate::preprocess::{PreprocessParams, Preprocessor};
use crate::storage::{LabelFormat, write_png_atomic};

/// Suffix of the prediction files [`Source::Model`] writes: `{key}_labelIds.png`, which
/// `cityscapesScripts` finds (it looks for `{key}*.png`) and [`Source::Predictions`] reads.
pub const PREDICTION_SUFFIX: &str = "_labelIds.png";

/// Most images in one inference batch.
pub const MAX_BATCH: usize = 256;

/// Where the predictions come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Label images already on disk: every file below `dir` whose name ends in `labelIds.png`
    /// (or `trainIds.png`), matched to the ground truth by its `{city}_{seq}_{frame}` key.
    Predictions {
        /// The folder searched (recursively).
        dir: PathBuf,
        /// What the files hold.
        format: LabelFormat,
    },
    /// A model run over `leftImg8bit` images.
    Model {
        /// The `.onnx` file; its manifest is the `.toml` next to it.
        model: PathBuf,
        /// The dataset root holding `leftImg8bit/{split}/` (or the folder of the images).
        images: PathBuf,
        /// Inference threads; `None`: all cores.
        threads: Option<NonZeroUsize>,
        /// Images per inference (1..=[`MAX_BATCH`]).
        batch: usize,
        /// Where to write the predictions as `{city}/{key}_labelIds.png`, if anywhere.
        write_predictions: Option<PathBuf>,
    },
}

/// What to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalOptions {
    /// The dataset root holding `gtFine/{split}/` (or the folder of the ground truth).
    pub ground_truth: PathBuf,
    /// The split: `val`, `train`, `test`, …
    pub split: String,
    /// The classes the metrics are over.
    pub classes: EvalClasses,
    /// Bounds on the files read.
    pub limits: ImageLimits,
    /// The predictions.
    pub source: Source,
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// Every pixel of every image.
    pub matrix: ConfusionMatrix,
    /// Images evaluated.
    pub images: usize,
    /// The folder the ground truth was found in.
    pub ground_truth_dir: PathBuf,
    /// The folder the predictions (or images) were found in.
    pub source_dir: PathBuf,
    /// Prediction files without ground truth, ignored (predictions mode).
    pub unmatched_predictions: usize,
    /// The model's manifest name (model mode).
    pub model_name: Option<String>,
}

/// Reported after each image.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Images done.
    pub done: usize,
    /// Images in all.
    pub total: usize,
    /// The key of the image just done.
    pub key: &'a str,
}

/// Evaluates every ground-truth image of the split against its prediction; `progress` is
/// called after each.
///
/// # Errors
///
/// [`EvalError`], naming the file at fault: no ground truth, a missing prediction or image, a
/// file that cannot be read or is not a valid label image, sizes that differ, a model that
/// cannot be loaded or run, a prediction that cannot be written.
pub fn evaluate(
    options: &EvalOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Evaluation, EvalError> {
    let ground_truth_dir = split_dir(&options.ground_truth, "gtFine", &options.split);
    let samples = ground_truth_files(&ground_truth_dir)?;
    match &options.source {
        Source::Predictions { dir, format } => {
            evaluate_predictions(options, ground_truth_dir, &samples, dir, *format, progress)
        }
        Source::Model {
            model,
            images,
            threads,
            batch,
            write_predictions,
        } => {
            let model = ModelRun {
                model,
                images_dir: split_dir(images, "leftImg8bit", &options.split),
                threads: *threads,
                batch: *batch,
                write_predictions: write_predictions.as_deref(),
            };
            model.evaluate(options, ground_truth_dir, &samples, progress)
        }
    }
}

fn evaluate_predictions(
    options: &EvalOptions,
    ground_truth_dir: PathBuf,
    samples: &[GroundTruthFile],
    dir: &Path,
    format: LabelFormat,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Evaluation, EvalError> {
    let suffix = match format {
        LabelFormat::LabelIds => "labelIds.png",
        LabelFormat::TrainIds => "trainIds.png",
    };
    let mut predictions = index_files(dir, suffix, "prediction")?;
    // Every prediction is looked up before any is read, so a missing one fails at once.
    let mut pairs = Vec::with_capacity(samples.len());
    for sample in samples {
        let prediction =
            predictions
                .remove(&sample.key)
                .ok_or_else(|| EvalError::MissingPrediction {
                    ground_truth: sample.path.clone(),
                    key: sample.key.clone(),
                    dir: dir.to_owned(),
                    suffix,
                })?;
        pairs.push((sample, prediction));
    }
    let mut matrix = ConfusionMatrix::new(options.classes);
    for (done, (sample, prediction_path)) in pairs.iter().enumerate() {
        let gt = read_label_png(&sample.path, options.limits)?;
        let prediction = read_label_png(prediction_path, options.limits)?;
        check_same_size(prediction_path, &prediction, &sample.path, &gt)?;
        matrix
            .add_image(&gt.pixels, &prediction.pixels, format)
            .map_err(|source| pixel_error(prediction_path, &sample.path, source))?;
        progress(Progress {
            done: done + 1,
            total: pairs.len(),
            key: &sample.key,
        });
    }
    Ok(Evaluation {
        matrix,
        images: pairs.len(),
        ground_truth_dir,
        source_dir: dir.to_owned(),
        unmatched_predictions: predictions.len(),
        model_name: None,
    })
}

/// A value error names the ground truth when it is at fault, else the prediction.
fn pixel_error(
    prediction: &Path,
    ground_truth: &Path,
    source: super::confusion::PixelError,
) -> EvalError {
    let path = match source {
        super::confusion::PixelError::GroundTruthValue { .. } => ground_truth,
        _ => prediction,
    };
    EvalError::Pixels {
        path: path.to_owned(),
        source,
    }
}

fn check_same_size(
    path: &Path,
    image: &LabelImage,
    ground_truth: &Path,
    gt: &LabelImage,
) -> Result<(), EvalError> {
    if (image.width, image.height) == (gt.width, gt.height) {
        return Ok(());
    }
    Err(EvalError::SizeMismatch {
        path: path.to_owned(),
        width: image.width,
        height: image.height,
        ground_truth: ground_truth.to_owned(),
        gt_width: gt.width,
        gt_height: gt.height,
    })
}

/// The model-mode settings.
struct ModelRun<'a> {
    model: &'a Path,
    images_dir: PathBuf,
    threads: Option<NonZeroUsize>,
    batch: usize,
    write_predictions: Option<&'a Path>,
}

/// One image of a batch waiting for its logits.
struct Pending<'a> {
    sample: &'a GroundTruthFile,
    image_path: PathBuf,
    gt: LabelImage,
}

impl ModelRun<'_> {
    fn evaluate(
        &self,
        options: &EvalOptions,
        ground_truth_dir: PathBuf,
        samples: &[GroundTruthFile],
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Evaluation, EvalError> {
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(EvalError::Options(format!(
                "batch size {} is not in 1..={MAX_BATCH}",
                self.batch
            )));
        }
        let images = index_files(&self.images_dir, IMAGE_SUFFIX, "image")?;
        let mut pairs = Vec::with_capacity(samples.len());
        for sample in samples {
            let image = images
                .get(&sample.key)
                .ok_or_else(|| EvalError::MissingImage {
                    ground_truth: sample.path.clone(),
                    key: sample.key.clone(),
                    dir: self.images_dir.clone(),
                })?;
            pairs.push((sample, image.clone()));
        }

        let mut engine = OnnxRuntimeEngine::load(
            self.model,
            &OnnxRuntimeOptions {
                intra_op_threads: self.threads,
                intra_op_spinning: None,
            },
        )?;
        let manifest = engine.manifest().clone();
        // Class index → label id: what the written predictions hold and what is counted.
        let table = manifest.classes.table();
        let to_label_id: [u8; 256] =
            std::array::from_fn(|c| table.to_label_id(u8::try_from(c).unwrap_or(u8::MAX)));
        let mut preprocessor = Preprocessor::new(PreprocessParams::from(&manifest));
        let image_len = manifest.input_len();
        let mut input = vec![0.0f32; image_len * self.batch];
        let mut logits = Vec::new();
        let mut class_map = Vec::new();
        let mut matrix = ConfusionMatrix::new(options.classes);
        let mut done = 0;

        for chunk in pairs.chunks(self.batch) {
            let mut pending = Vec::with_capacity(chunk.len());
            for ((sample, image_path), slot) in chunk.iter().zip(input.chunks_exact_mut(image_len))
            {
                let gt = read_label_png(&sample.path, options.limits)?;
                let image = read_rgb_png(image_path, options.limits)?;
                if (image.width, image.height) != (gt.width, gt.height) {
                    return Err(EvalError::SizeMismatch {
                        path: image_path.clone(),
                        width: image.width,
                        height: image.height,
                        ground_truth: sample.path.clone(),
                        gt_width: gt.width,
                        gt_height: gt.height,
                    });
                }
                preprocessor
                    .run_rgb(&image.rgb, image.width, image.height, slot)
                    .map_err(|source| EvalError::Preprocess {
                        path: image_path.clone(),
                        source,
                    })?;
                pending.push(Pending {
                    sample,
                    image_path: image_path.clone(),
                    gt,
                });
            }
            let n = pending.len();
            let shape = engine.infer(
                &InputBatch::for_manifest(&manifest, n, &input[..n * image_len]),
                &mut logits,
            )?;
            for (i, item) in pending.iter().enumerate() {
                let (w, h) = (item.gt.width as usize, item.gt.height as usize);
                class_map.resize(w * h, 0);
                let image_logits = &logits[i * shape.image_len()..(i + 1) * shape.image_len()];
                post::upsample_argmax(
                    image_logits,
                    shape.classes,
                    shape.height,
                    shape.width,
                    h,
                    w,
                    &mut class_map,
                )
                .map_err(|source| EvalError::Post {
                    path: item.image_path.clone(),
                    source,
                })?;
                for c in &mut class_map {
                    *c = to_label_id[usize::from(*c)];
                }
                matrix
                    .add_image(&item.gt.pixels, &class_map, LabelFormat::LabelIds)
                    .map_err(|source| EvalError::Pixels {
                        path: item.sample.path.clone(),
                        source,
                    })?;
                if let Some(dir) = self.write_predictions {
                    let key = &item.sample.key;
                    let path = dir
                        .join(dataset::city_of(key))
                        .join(format!("{key}{PREDICTION_SUFFIX}"));
                    write_prediction(&path, item.gt.width, item.gt.height, &class_map)?;
                }
                done += 1;
                progress(Progress {
                    done,
                    total: pairs.len(),
                    key: &item.sample.key,
                });
            }
        }
        Ok(Evaluation {
            matrix,
            images: pairs.len(),
            ground_truth_dir,
            source_dir: self.images_dir.clone(),
            unmatched_predictions: 0,
            model_name: Some(manifest.name),
        })
    }
}

fn write_prediction(path: &Path, width: u32, height: u32, ids: &[u8]) -> Result<(), EvalError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| EvalError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    write_png_atomic(path, width, height, png::ColorType::Grayscale, ids)?;
    Ok(())
}
