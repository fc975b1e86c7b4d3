//! Inference engines: a segmentation model behind the [`Engine`] trait.
//!
//! An engine takes a batch of preprocessed images (see [`crate::preprocess`]) and returns the
//! model's logits. Each model comes with a [`ModelManifest`] (`model.onnx` + `model.toml`) that
//! says how to feed it and what its output means; the engine checks the model against it when
//! loading, so a mismatch is found at start-up, not on the first frame.
//!
//! Backends: [`onnxruntime::OnnxRuntimeEngine`] (the CPU default). TensorRT comes later.

pub mod manifest;
pub mod onnxruntime;

use std::path::PathBuf;

pub use self::manifest::{ChannelOrder, ClassSet, ManifestError, ModelManifest, Precision};

/// A batch of preprocessed images: `n × channels × height × width` `f32`, planar (NCHW),
/// normalized, planes in the manifest's channel order.
#[derive(Clone, Copy, Debug)]
pub struct InputBatch<'a> {
    /// Number of images.
    pub n: usize,
    /// Planes per image; always 3.
    pub channels: usize,
    /// Image height; must be the manifest's `input_height`.
    pub height: usize,
    /// Image width; must be the manifest's `input_width`.
    pub width: usize,
    /// `n × channels × height × width` values, image after image.
    pub data: &'a [f32],
}

impl<'a> InputBatch<'a> {
    /// A batch of `n` three-channel images of the manifest's input size; `data` must hold
    /// `n × manifest.input_len()` values (checked by [`Engine::infer`]).
    #[must_use]
    pub fn for_manifest(manifest: &ModelManifest, n: usize, data: &'a [f32]) -> Self {
        Self {
            n,
            channels: 3,
            height: manifest.input_height as usize,
            width: manifest.input_width as usize,
            data,
        }
    }

    /// The shape as `[n, channels, height, width]`.
    #[must_use]
    pub const fn dims(&self) -> [usize; 4] {
        [self.n, self.channels, self.height, self.width]
    }
}

/// Shape of the logits an engine wrote: `n × classes × height × width` `f32`, NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogitsShape {
    /// Number of images.
    pub n: usize,
    /// Logit channels (the manifest's number of classes).
    pub classes: usize,
    /// Logits height (the input height over the output stride, rounded up).
    pub height: usize,
    /// Logits width.
    pub width: usize,
}

impl LogitsShape {
    /// Number of values: `n × classes × height × width`.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.n * self.classes * self.height * self.width
    }

    /// Whether there are no values.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of values of one image: `classes × height × width`.
    #[must_use]
    pub const fn image_len(&self) -> usize {
        self.classes * self.height * self.width
    }
}

/// A loaded model that turns preprocessed images into logits.
///
/// Backends must be [`Send`] (the trait requires it): the worker loads an engine on one thread
/// and moves it to the inference thread that owns it. They need not be `Sync`; `infer` takes
/// `&mut self`, and one engine serves one thread at a time.
pub trait Engine: Send {
    /// The manifest of the loaded model.
    fn manifest(&self) -> &ModelManifest;

    /// Runs the model on `batch` and writes the logits into `logits` (cleared first, resized to
    /// exactly [`LogitsShape::len`]); returns their shape. Reusing the same `logits` vector
    /// across calls avoids an allocation per batch. A batch of zero images gives empty logits.
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] when the batch is not `n × 3 × H × W` of the manifest's
    /// size or `data` has the wrong length, or when the model's output has an unexpected shape;
    /// [`EngineError::Backend`] when the runtime fails.
    fn infer(
        &mut self,
        batch: &InputBatch<'_>,
        logits: &mut Vec<f32>,
    ) -> Result<LogitsShape, EngineError>;
}

/// Why an engine could not be loaded or could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The ONNX Runtime shared library was not found.
    #[error(
        "ONNX Runtime library (libonnxruntime.so) not found; searched: {searched}. \
         Run `.ci/setup.sh` (it installs the onnxruntime wheel into <repo>/.venv, where the worker \
         finds it) or set ORT_DYLIB_PATH to the path of libonnxruntime.so"
    )]
    LibraryNotFound {
        /// Every place looked at, and why each did not serve.
        searched: String,
    },
    /// The ONNX Runtime library was found but could not be loaded or initialized.
    #[error(
        "cannot load the ONNX Runtime library {}: {reason} \
         (ONNX Runtime 1.17 or newer is needed; `.ci/setup.sh` installs a suitable one)",
        path.display()
    )]
    LibraryLoad {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model file does not exist.
    #[error("model file {} not found", path.display())]
    ModelMissing {
        /// The model file.
        path: PathBuf,
    },
    /// The model's manifest is missing or wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The model file cannot be loaded (truncated, not ONNX, unsupported operators) or does not
    /// fit its manifest (names, element types, ranks, precision).
    #[error("model {} is not usable: {reason}", path.display())]
    ModelInvalid {
        /// The model file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A shape differs from what the manifest (or the batch) says.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which tensor (model input, model output, input batch, …).
        what: String,
        /// The shape expected.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// The runtime failed while running the model.
    #[error("inference backend error: {0}")]
    Backend(String),
}

/// Checks a batch against a manifest: `n × 3 × H × W` and `data` of matching length.
///
/// # Errors
///
/// [`EngineError::ShapeMismatch`].
pub fn check_batch(manifest: &ModelManifest, batch: &InputBatch<'_>) -> Result<(), EngineError> {
    let expected = [
        batch.n,
        3,
        manifest.input_height as usize,
        manifest.input_width as usize,
    ];
    if batch.dims() != expected {
        return Err(EngineError::ShapeMismatch {
            what: "input batch".to_owned(),
            expected: format_dims(&expected),
            got: format_dims(&batch.dims()),
        });
    }
    let len = batch.n.saturating_mul(manifest.input_len());
    if batch.data.len() != len {
        return Err(EngineError::ShapeMismatch {
            what: "input batch data".to_owned(),
            expected: format!("{len} values ({})", format_dims(&expected)),
            got: format!("{} values", batch.data.len()),
        });
    }
    Ok(())
}

/// `[1, 3, 128, 128]` as `1×3×128×128`.
pub(crate) fn format_dims<T: std::fmt::Display>(dims: &[T]) -> String {
    dims.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// Helpers for the engine tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::{
        path::{Path, PathBuf},
        sync::atomic::{AtomicUsize, Ordering},
    };

    /// A fresh directory under the system's temporary directory, removed when dropped.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "flowcloud-engine-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ModelManifest {
        ModelManifest {
            name: "m".into(),
            input_name: "input".into(),
            output_name: "logits".into(),
            input_width: 8,
            input_height: 4,
            channel_order: ChannelOrder::Rgb,
            mean: [0.5; 3],
            std: [0.25; 3],
            classes: ClassSet::CityscapesTrain,
            output_stride: 8,
            precision: Precision::Fp32,
            source: None,
        }
    }

    #[test]
    fn check_batch_accepts_the_manifest_size() {
        let m = manifest();
        let data = vec![0.0; 2 * 3 * 4 * 8];
        check_batch(&m, &InputBatch::for_manifest(&m, 2, &data)).unwrap();
    }

    #[test]
    fn check_batch_rejects_wrong_size_and_length() {
        let m = manifest();
        let data = vec![0.0; 3 * 4 * 8];
        let wrong_size = InputBatch {
            n: 1,
            channels: 3,
            height: 8,
            width: 4,
            data: &data,
        };
        let err = check_batch(&m, &wrong_size).unwrap_err();
        assert!(
            err.to_string().contains("expected 1×3×4×8, got 1×3×8×4"),
            "{err}"
        );
        let short = InputBatch::for_manifest(&m, 2, &data);
        assert!(matches!(
            check_batch(&m, &short),
            Err(EngineError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn library_not_found_message_says_what_to_do() {
        let err = EngineError::LibraryNotFound {
            searched: "nowhere".into(),
        };
        let text = err.to_string();
        assert!(
            text.contains(".ci/setup.sh") && text.contains("ORT_DYLIB_PATH"),
            "{text}"
        );
    }
}
