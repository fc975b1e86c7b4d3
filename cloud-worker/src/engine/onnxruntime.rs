//! The ONNX Runtime backend: the CPU default.
//!
//! ONNX Runtime is loaded at run time (`ort` with `load-dynamic`), from the `libonnxruntime.so`
//! that ships inside the `onnxruntime` Python wheel. [`LibrarySearch`] finds it, in this order:
//!
//! 1. `ORT_DYLIB_PATH`, when set and not empty: the library file itself. When it is set, nothing
//!    else is tried (a wrong explicit path is an error, not a reason to load another library).
//! 2. The repository's Python environment, `.venv/` (made by `.ci/setup.sh`), looked for in the
//!    crate's source directory (fixed at compile time) and each of its parents, then in the
//!    executable's directory and its parents, then in the current directory and its parents:
//!    `.venv/lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so.<version>`.
//! 3. `python3 -c "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"` and the
//!    same `capi/` directory below the folder it prints.
//!
//! The library is loaded and the ONNX Runtime environment created once per process, on the first
//! [`OnnxRuntimeEngine::load`]; later loads reuse them (and a later change of `ORT_DYLIB_PATH`
//! has no effect). `ort` 2.0.0-rc.15 needs ONNX Runtime 1.17 or newer (C API 17); the setup
//! script pins the wheel version.

use std::{
    ffi::OsString,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, OnceLock},
};

use ort::{
    environment::Environment,
    session::{HasSelectedOutputs, OutputSelector, RunOptions, Session},
    value::{Outlet, TensorElementType, TensorRef, ValueType},
};

use super::{
    Engine, EngineError, InputBatch, LogitsShape, ModelManifest, Precision, check_batch,
    format_dims,
};

/// The environment variable naming the ONNX Runtime library file (as `ort` itself reads it).
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// Settings of an ONNX Runtime session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnnxRuntimeOptions {
    /// Threads one inference may use; `None`: as many as the machine has cores
    /// ([`std::thread::available_parallelism`]).
    pub intra_op_threads: Option<NonZeroUsize>,
    /// Whether idle intra-op threads spin before sleeping (ONNX Runtime's default: yes). Spinning
    /// lowers latency but burns CPU that decoding could use.
    pub intra_op_spinning: Option<bool>,
}

impl OnnxRuntimeOptions {
    /// The number of intra-op threads these options give on this machine.
    #[must_use]
    pub fn resolved_intra_op_threads(&self) -> usize {
        self.intra_op_threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }
}

/// Where to look for the ONNX Runtime library; see the [module documentation](self).
///
/// [`LibrarySearch::from_environment`] is what [`OnnxRuntimeEngine::load`] uses; building one by
/// hand lets the search be tested without touching the process environment or loading anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibrarySearch {
    /// The value of `ORT_DYLIB_PATH`, if set and not empty.
    pub dylib_path: Option<PathBuf>,
    /// Directories in which, and in whose parents, `.venv` is looked for, in order.
    pub venv_roots: Vec<PathBuf>,
    /// The Python interpreter asked last; `None` skips that step.
    pub python: Option<OsString>,
}

impl LibrarySearch {
    /// The search the engine uses: `ORT_DYLIB_PATH`, `.venv` from the crate's source directory,
    /// the executable's directory and the current directory, then `python3`.
    #[must_use]
    pub fn from_environment() -> Self {
        let dylib_path = std::env::var_os(ORT_DYLIB_PATH)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let mut venv_roots = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            venv_roots.push(dir);
        }
        if let Ok(dir) = std::env::current_dir() {
            venv_roots.push(dir);
        }
        Self {
            dylib_path,
            venv_roots,
            python: Some("python3".into()),
        }
    }

    /// Finds the library without loading it.
    ///
    /// # Errors
    ///
    /// [`EngineError::LibraryNotFound`], listing every place looked at.
    pub fn locate(&self) -> Result<PathBuf, EngineError> {
        if let Some(path) = &self.dylib_path {
            return if path.is_file() {
                Ok(path.clone())
            } else {
                Err(EngineError::LibraryNotFound {
                    searched: format!(
                        "{ORT_DYLIB_PATH}={} (no such file; unset it to search .venv and python3)",
                        path.display()
                    ),
                })
            };
        }
        let mut searched = Vec::new();
        let mut seen = Vec::new();
        for root in &self.venv_roots {
            for dir in root.ancestors() {
                let venv = dir.join(".venv");
                if seen.contains(&venv) {
                    continue;
                }
                if let Some(lib) = library_in_venv(&venv) {
                    return Ok(lib);
                }
                seen.push(venv);
            }
        }
        if !seen.is_empty() {
            searched.push(format!(
                "`.venv` in {} and their parents",
                self.venv_roots
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(python) = &self.python {
            match python_package_dir(python) {
                Ok(dir) => {
                    let capi = dir.join("capi");
                    if let Some(lib) = library_in_capi(&capi) {
                        return Ok(lib);
                    }
                    searched.push(format!("{} (no libonnxruntime.so* there)", capi.display()));
                }
                Err(why) => searched.push(format!(
                    "the onnxruntime package of `{}` ({why})",
                    python.to_string_lossy()
                )),
            }
        }
        Err(EngineError::LibraryNotFound {
            searched: searched.join("; "),
        })
    }
}

/// `venv/lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so*`, if there is one.
fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons
        .iter()
        .rev()
        .find_map(|p| library_in_capi(&p.join("site-packages/onnxruntime/capi")))
}

/// The ONNX Runtime library in an `onnxruntime/capi` directory: `libonnxruntime.so.<version>`
/// (the highest version if there are several) or `libonnxruntime.so`.
fn library_in_capi(capi: &Path) -> Option<PathBuf> {
    std::fs::read_dir(capi)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("libonnxruntime.so")?;
            let key: Vec<u32> = match version.strip_prefix('.') {
                Some(v) => v
                    .split('.')
                    .map(|p| p.parse().ok())
                    .collect::<Option<_>>()?,
                None if version.is_empty() => Vec::new(),
                None => return None,
            };
            e.path().is_file().then(|| (key, e.path()))
        })
        .max()
        .map(|(_, path)| path)
}

/// Asks `python` where its `onnxruntime` package is.
fn python_package_dir(python: &std::ffi::OsStr) -> Result<PathBuf, String> {
    let output = Command::new(python)
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        return Err(format!("import onnxruntime failed: {last}"));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if dir.is_empty() {
        return Err("it printed nothing".to_owned());
    }
    Ok(PathBuf::from(dir))
}

/// The process-wide ONNX Runtime: the loaded library and the one environment.
struct Runtime {
    environment: Environment,
    library: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static RUNTIME_INIT: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime and creates its environment on first use; returns the same afterwards.
/// A failed attempt leaves nothing behind that stops a later one.
fn runtime() -> Result<&'static Runtime, EngineError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let _guard = RUNTIME_INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let library = LibrarySearch::from_environment().locate()?;
    let load_error = |reason: String| EngineError::LibraryLoad {
        path: library.clone(),
        reason,
    };
    let environment = ort::init_from(&library)
        .map_err(|e| load_error(e.to_string()))?
        .with_name("flowcloud-worker")
        .with_telemetry(false)
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    Ok(RUNTIME.get_or_init(|| Runtime {
        environment,
        library,
    }))
}

/// The ONNX Runtime library this process loaded, once an engine has been loaded.
#[must_use]
pub fn loaded_library() -> Option<&'static Path> {
    RUNTIME.get().map(|r| r.library.as_path())
}

/// A model run by ONNX Runtime on the CPU.
///
/// Models with a dynamic batch dimension get a whole batch in one run; models with batch 1 get
/// one run per image. The input must be `float32`, `N×3×H×W` with `H×W` the manifest's size (or
/// dynamic); the output `float32`, `N×classes×h×w` with `h×w` the input size over the manifest's
/// output stride (or dynamic, then checked on every run).
pub struct OnnxRuntimeEngine {
    session: Session,
    run_options: RunOptions<HasSelectedOutputs>,
    manifest: ModelManifest,
    model_path: PathBuf,
    dynamic_batch: bool,
}

impl std::fmt::Debug for OnnxRuntimeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRuntimeEngine")
            .field("model_path", &self.model_path)
            .field("manifest", &self.manifest)
            .field("dynamic_batch", &self.dynamic_batch)
            .finish_non_exhaustive()
    }
}

impl OnnxRuntimeEngine {
    /// Loads `onnx_path` with the manifest next to it (`model.onnx` → `model.toml`), loading ONNX
    /// Runtime first if this is the first engine of the process.
    ///
    /// # Errors
    ///
    /// [`EngineError::ModelMissing`], [`EngineError::Manifest`], then
    /// [`EngineError::LibraryNotFound`] or [`EngineError::LibraryLoad`], then
    /// [`EngineError::ModelInvalid`] (not loadable, wrong names or types) or
    /// [`EngineError::ShapeMismatch`] (the model's shapes disagree with the manifest).
    pub fn load(onnx_path: &Path, options: &OnnxRuntimeOptions) -> Result<Self, EngineError> {
        check_model_file(onnx_path)?;
        let manifest = ModelManifest::load(onnx_path)?;
        Self::load_with_manifest(onnx_path, manifest, options)
    }

    /// Loads `onnx_path` with the given manifest instead of the file next to it.
    ///
    /// # Errors
    ///
    /// As [`OnnxRuntimeEngine::load`]; a manifest that fails [`ModelManifest::validate`] gives
    /// [`EngineError::ModelInvalid`].
    pub fn load_with_manifest(
        onnx_path: &Path,
        manifest: ModelManifest,
        options: &OnnxRuntimeOptions,
    ) -> Result<Self, EngineError> {
        check_model_file(onnx_path)?;
        let invalid = |reason: String| EngineError::ModelInvalid {
            path: onnx_path.to_owned(),
            reason,
        };
        manifest
            .validate()
            .map_err(|e| invalid(format!("its manifest: {e}")))?;
        if manifest.precision != Precision::Fp32 {
            return Err(invalid(format!(
                "its manifest says precision \"{}\"; the ONNX Runtime backend runs fp32 models only",
                manifest.precision.as_str()
            )));
        }

        let runtime = runtime()?;
        let builder_error = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            EngineError::Backend(format!("cannot configure an ONNX Runtime session: {e}"))
        };
        let mut builder = Session::builder(&runtime.environment)
            .map_err(|e| EngineError::Backend(format!("cannot create a session builder: {e}")))?
            .with_intra_threads(options.resolved_intra_op_threads())
            .map_err(builder_error)?;
        if let Some(spinning) = options.intra_op_spinning {
            builder = builder
                .with_intra_op_spinning(spinning)
                .map_err(builder_error)?;
        }
        let session = builder
            .commit_from_file(onnx_path)
            .map_err(|e| invalid(format!("ONNX Runtime cannot load it: {e}")))?;

        let dynamic_batch = check_model_io(&session, &manifest, onnx_path)?;
        let run_options = RunOptions::new()
            .map_err(|e| EngineError::Backend(format!("cannot create run options: {e}")))?
            .with_outputs(OutputSelector::no_default().with(manifest.output_name.clone()));
        Ok(Self {
            session,
            run_options,
            manifest,
            model_path: onnx_path.to_owned(),
            dynamic_batch,
        })
    }

    /// Whether the model takes a whole batch in one run (a dynamic batch dimension).
    #[must_use]
    pub const fn dynamic_batch(&self) -> bool {
        self.dynamic_batch
    }

    /// The model file.
    #[must_use]
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// Runs `n` images (`data` is `n × 3 × H × W`) in one session run and appends the logits.
    fn run(&mut self, data: &[f32], n: usize, logits: &mut Vec<f32>) -> Result<(), EngineError> {
        let manifest = &self.manifest;
        let dims = [
            n,
            3,
            manifest.input_height as usize,
            manifest.input_width as usize,
        ];
        let input = TensorRef::from_array_view((dims, data))
            .map_err(|e| EngineError::Backend(format!("cannot wrap the input batch: {e}")))?;
        let outputs = self
            .session
            .run_with_options(ort::inputs![input], &self.run_options)
            .map_err(|e| EngineError::Backend(format!("inference failed: {e}")))?;
        let output = outputs.get(&manifest.output_name).ok_or_else(|| {
            EngineError::Backend(format!(
                "the run returned no output `{}`",
                manifest.output_name
            ))
        })?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(|e| {
            EngineError::Backend(format!(
                "output `{}` is not a float32 tensor: {e}",
                manifest.output_name
            ))
        })?;
        let (lw, lh) = manifest.logits_size();
        let expected = [n, manifest.num_classes(), lh as usize, lw as usize];
        let matches = shape.len() == 4
            && shape
                .iter()
                .zip(expected)
                .all(|(&got, want)| usize::try_from(got).is_ok_and(|g| g == want));
        if !matches {
            return Err(EngineError::ShapeMismatch {
                what: format!("model output `{}`", manifest.output_name),
                expected: format_dims(&expected),
                got: format_dims(shape),
            });
        }
        logits.extend_from_slice(values);
        Ok(())
    }
}

impl Engine for OnnxRuntimeEngine {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    fn infer(
        &mut self,
        batch: &InputBatch<'_>,
        logits: &mut Vec<f32>,
    ) -> Result<LogitsShape, EngineError> {
        check_batch(&self.manifest, batch)?;
        let (lw, lh) = self.manifest.logits_size();
        let shape = LogitsShape {
            n: batch.n,
            classes: self.manifest.num_classes(),
            height: lh as usize,
            width: lw as usize,
        };
        logits.clear();
        if batch.n == 0 {
            return Ok(shape);
        }
        logits.reserve(shape.len());
        let result = if self.dynamic_batch {
            self.run(batch.data, batch.n, logits)
        } else {
            let image_len = self.manifest.input_len();
            batch
                .data
                .chunks_exact(image_len)
                .try_for_each(|image| self.run(image, 1, logits))
        };
        if let Err(e) = result {
            logits.clear();
            return Err(e);
        }
        debug_assert_eq!(logits.len(), shape.len());
        Ok(shape)
    }
}

fn check_model_file(path: &Path) -> Result<(), EngineError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(EngineError::ModelInvalid {
            path: path.to_owned(),
            reason: "it is not a file".to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EngineError::ModelMissing {
            path: path.to_owned(),
        }),
        Err(e) => Err(EngineError::ModelInvalid {
            path: path.to_owned(),
            reason: format!("cannot read it: {e}"),
        }),
    }
}

/// One dimension of a model's declared shape: a size or a named/unnamed dynamic one.
fn dim_text(size: i64, symbol: Option<&String>) -> String {
    if size >= 0 {
        size.to_string()
    } else {
        match symbol {
            Some(s) if !s.is_empty() => s.clone(),
            _ => "?".to_owned(),
        }
    }
}

/// The declared float32 4-D shape of a model input or output.
fn declared_shape(
    outlet: &Outlet,
    role: &str,
    path: &Path,
) -> Result<(Vec<i64>, String), EngineError> {
    let ValueType::Tensor {
        ty,
        shape,
        dimension_symbols,
    } = outlet.dtype()
    else {
        return Err(EngineError::ModelInvalid {
            path: path.to_owned(),
            reason: format!(
                "{role} `{}` is {}, not a tensor",
                outlet.name(),
                outlet.dtype()
            ),
        });
    };
    if *ty != TensorElementType::Float32 {
        return Err(EngineError::ModelInvalid {
            path: path.to_owned(),
            reason: format!(
                "{role} `{}` holds {ty:?}; the ONNX Runtime backend needs float32",
                outlet.name()
            ),
        });
    }
    let dims: Vec<i64> = shape.iter().copied().collect();
    let text = format_dims(
        &dims
            .iter()
            .enumerate()
            .map(|(i, &d)| dim_text(d, dimension_symbols.get(i)))
            .collect::<Vec<_>>(),
    );
    Ok((dims, text))
}

/// Whether declared `dims` fit `expected` (a negative declared size is dynamic and fits anything;
/// `None` in `expected` accepts anything).
fn dims_fit(dims: &[i64], expected: &[Option<usize>]) -> bool {
    dims.len() == expected.len()
        && dims.iter().zip(expected).all(|(&d, e)| match e {
            None => true,
            Some(e) => d < 0 || usize::try_from(d).is_ok_and(|d| d == *e),
        })
}

/// Checks the model's input and output against the manifest; returns whether the batch
/// dimension is dynamic.
fn check_model_io(
    session: &Session,
    manifest: &ModelManifest,
    path: &Path,
) -> Result<bool, EngineError> {
    let invalid = |reason: String| EngineError::ModelInvalid {
        path: path.to_owned(),
        reason,
    };
    let names = |outlets: &[Outlet]| {
        outlets
            .iter()
            .map(|o| format!("`{}`", o.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let manifest_name = ModelManifest::path_for(path);
    let manifest_name = manifest_name
        .file_name()
        .map_or_else(|| "the manifest".into(), |n| n.to_string_lossy());

    // Input.
    let inputs = session.inputs();
    let Some(input) = inputs.iter().find(|i| i.name() == manifest.input_name) else {
        return Err(invalid(format!(
            "it has no input named `{}` (the manifest's input_name); its inputs: {}",
            manifest.input_name,
            names(inputs)
        )));
    };
    if inputs.len() != 1 {
        return Err(invalid(format!(
            "it has {} inputs ({}); only models with a single image input are supported",
            inputs.len(),
            names(inputs)
        )));
    }
    let (dims, text) = declared_shape(input, "input", path)?;
    let (h, w) = (
        manifest.input_height as usize,
        manifest.input_width as usize,
    );
    if !dims_fit(&dims, &[None, Some(3), Some(h), Some(w)]) {
        return Err(EngineError::ShapeMismatch {
            what: format!(
                "model input `{}` (the input size comes from {manifest_name})",
                input.name()
            ),
            expected: format!("N×3×{h}×{w}"),
            got: text,
        });
    }
    let dynamic_batch = match dims[0] {
        d if d < 0 => true,
        1 => false,
        b => {
            return Err(invalid(format!(
                "input `{}` has a fixed batch size of {b}; export the model with batch 1 or a \
                 dynamic batch dimension",
                input.name()
            )));
        }
    };

    // Output.
    let outputs = session.outputs();
    let Some(output) = outputs.iter().find(|o| o.name() == manifest.output_name) else {
        return Err(invalid(format!(
            "it has no output named `{}` (the manifest's output_name); its outputs: {}",
            manifest.output_name,
            names(outputs)
        )));
    };
    let (dims, text) = declared_shape(output, "output", path)?;
    let classes = manifest.num_classes();
    let (lw, lh) = manifest.logits_size();
    let (lw, lh) = (lw as usize, lh as usize);
    if !dims_fit(&dims, &[None, Some(classes), Some(lh), Some(lw)]) {
        return Err(EngineError::ShapeMismatch {
            what: format!(
                "model output `{}` ({manifest_name} says classes = \"{}\" ({classes} classes), \
                 output_stride = {} for a {w}×{h} input)",
                output.name(),
                manifest.classes.as_str(),
                manifest.output_stride,
            ),
            expected: format!("N×{classes}×{lh}×{lw}"),
            got: text,
        });
    }
    Ok(dynamic_batch)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::engine::ClassSet;
    use crate::engine::testing::TempDir;

    const SIZE: usize = 128;
    const CLASSES: usize = 19;
    const OUT: usize = 16;

    fn tiny_model() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engines/tiny/tiny-seg.onnx")
    }

    /// The input `make_tiny_model.py` computed its expected logits for:
    /// `x[b, c, h, w] = ((h·w + 3c + 11b + 5h) mod 23) / 11 − 1`.
    fn formula_input(n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * 3 * SIZE * SIZE);
        for b in 0..n {
            for c in 0..3 {
                for h in 0..SIZE {
                    for w in 0..SIZE {
                        let k = (h * w + 3 * c + 11 * b + 5 * h) % 23;
                        out.push(k as f32 / 11.0 - 1.0);
                    }
                }
            }
        }
        out
    }

    fn expected_logits() -> Vec<f32> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../engines/tiny/tiny-seg.expected.bin");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * CLASSES * OUT * OUT * 4);
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// Loads the tiny model once for the tests that only run it (loading is the slow part).
    fn engine() -> std::sync::MutexGuard<'static, OnnxRuntimeEngine> {
        static ENGINE: OnceLock<Mutex<OnnxRuntimeEngine>> = OnceLock::new();
        ENGINE
            .get_or_init(|| {
                let options = OnnxRuntimeOptions {
                    intra_op_threads: NonZeroUsize::new(1),
                    ..OnnxRuntimeOptions::default()
                };
                Mutex::new(OnnxRuntimeEngine::load(&tiny_model(), &options).unwrap())
            })
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn engine_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<OnnxRuntimeEngine>();
        assert_send::<Box<dyn Engine>>();
    }

    #[test]
    fn tiny_model_loads_with_its_manifest() {
        let engine = engine();
        assert!(engine.dynamic_batch());
        let m = engine.manifest();
        assert_eq!(m.name, "tiny-seg");
        assert_eq!(m.classes, ClassSet::CityscapesTrain);
        assert_eq!(m.logits_size(), (OUT as u32, OUT as u32));
        assert!(loaded_library().is_some_and(|p| p.is_file()));
    }

    #[test]
    fn batch_of_one_matches_python_onnxruntime() {
        let mut engine = engine();
        let input = formula_input(1);
        let mut logits = Vec::new();
        let batch = InputBatch::for_manifest(engine.manifest(), 1, &input);
        let shape = engine.infer(&batch, &mut logits).unwrap();
        assert_eq!(
            shape,
            LogitsShape {
                n: 1,
                classes: CLASSES,
                height: OUT,
                width: OUT
            }
        );
        assert_eq!(logits.len(), shape.len());
        let expected = expected_logits();
        let diff = max_abs_diff(&logits, &expected[..shape.image_len()]);
        assert!(diff < 1e-4, "max |Δ| = {diff}");
    }

    #[test]
    fn batch_of_two_matches_python_onnxruntime_and_is_deterministic() {
        let mut engine = engine();
        let input = formula_input(2);
        let batch = InputBatch::for_manifest(engine.manifest(), 2, &input);
        let mut logits = vec![123.0; 7]; // cleared by infer
        let shape = engine.infer(&batch, &mut logits).unwrap();
        assert_eq!(
            (shape.n, shape.classes, shape.height, shape.width),
            (2, 19, 16, 16)
        );
        let diff = max_abs_diff(&logits, &expected_logits());
        assert!(diff < 1e-4, "max |Δ| = {diff}");
        // The two images differ, so the check above covers both halves.
        assert!(max_abs_diff(&logits[..shape.image_len()], &logits[shape.image_len()..]) > 1e-2);

        let mut again = Vec::new();
        engine.infer(&batch, &mut again).unwrap();
        assert_eq!(logits, again, "same input, same logits");
    }

    #[test]
    fn static_batch_model_runs_a_batch_one_image_at_a_time() {
        let path = tiny_model().with_file_name("tiny-seg-b1.onnx");
        let mut engine = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap();
        assert!(!engine.dynamic_batch());
        let input = formula_input(2);
        let batch = InputBatch::for_manifest(engine.manifest(), 2, &input);
        let mut logits = Vec::new();
        let shape = engine.infer(&batch, &mut logits).unwrap();
        assert_eq!(
            (shape.n, shape.classes, shape.height, shape.width),
            (2, 19, 16, 16)
        );
        let diff = max_abs_diff(&logits, &expected_logits());
        assert!(diff < 1e-4, "max |Δ| = {diff}");
    }

    #[test]
    fn empty_batch_gives_empty_logits() {
        let mut engine = engine();
        let mut logits = vec![1.0; 3];
        let batch = InputBatch::for_manifest(engine.manifest(), 0, &[]);
        let shape = engine.infer(&batch, &mut logits).unwrap();
        assert!(shape.is_empty() && logits.is_empty());
    }

    #[test]
    fn wrong_batch_size_is_a_shape_mismatch() {
        let mut engine = engine();
        let input = vec![0.0; 3 * 64 * 64];
        let batch = InputBatch {
            n: 1,
            channels: 3,
            height: 64,
            width: 64,
            data: &input,
        };
        let err = engine.infer(&batch, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err}");
    }

    /// A temporary directory holding a copy of the tiny model's manifest and the given model
    /// bytes, as `net.onnx` + `net.toml`.
    fn temp_model(model: &[u8], manifest: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new();
        let path = dir.path().join("net.onnx");
        std::fs::write(&path, model).unwrap();
        std::fs::write(dir.path().join("net.toml"), manifest).unwrap();
        (dir, path)
    }

    fn tiny_manifest_text() -> String {
        std::fs::read_to_string(tiny_model().with_extension("toml")).unwrap()
    }

    #[test]
    fn missing_model_is_a_typed_error() {
        let dir = TempDir::new();
        let path = dir.path().join("absent.onnx");
        let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
        match &err {
            EngineError::ModelMissing { path: p } => assert_eq!(p, &path),
            other => panic!("expected ModelMissing, got {other:?}"),
        }
    }

    #[test]
    fn missing_manifest_is_a_typed_error() {
        let dir = TempDir::new();
        let path = dir.path().join("net.onnx");
        std::fs::copy(tiny_model(), &path).unwrap();
        let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::Manifest(crate::engine::ManifestError::Missing { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn truncated_model_is_a_typed_error() {
        let bytes = std::fs::read(tiny_model()).unwrap();
        let (_dir, path) = temp_model(&bytes[..100], &tiny_manifest_text());
        let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::ModelInvalid { .. }), "{err}");
        assert!(err.to_string().contains("net.onnx"), "{err}");
    }

    #[test]
    fn garbage_and_empty_models_are_typed_errors() {
        for bytes in [&b""[..], b"this is not an onnx model at all"] {
            let (_dir, path) = temp_model(bytes, &tiny_manifest_text());
            let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
            assert!(matches!(err, EngineError::ModelInvalid { .. }), "{err}");
        }
    }

    #[test]
    fn input_size_other_than_the_manifest_is_a_shape_mismatch() {
        let bytes = std::fs::read(tiny_model()).unwrap();
        let manifest = tiny_manifest_text()
            .replace("input_width = 128", "input_width = 256")
            .replace("input_height = 128", "input_height = 256");
        let (_dir, path) = temp_model(&bytes, &manifest);
        let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
        let EngineError::ShapeMismatch {
            what,
            expected,
            got,
        } = &err
        else {
            panic!("expected ShapeMismatch, got {err:?}");
        };
        assert!(
            what.contains("input `input`") && what.contains("net.toml"),
            "{err}"
        );
        assert_eq!(expected, "N×3×256×256");
        assert_eq!(got, "N×3×128×128");
    }

    #[test]
    fn class_count_other_than_the_manifest_is_a_shape_mismatch() {
        let bytes = std::fs::read(tiny_model()).unwrap();
        let manifest = tiny_manifest_text().replace("cityscapes-train", "cityscapes-labels");
        let (_dir, path) = temp_model(&bytes, &manifest);
        let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
        let EngineError::ShapeMismatch { expected, got, .. } = &err else {
            panic!("expected ShapeMismatch, got {err:?}");
        };
        assert_eq!(
            (expected.as_str(), got.as_str()),
            ("N×34×16×16", "N×19×16×16")
        );
    }

    #[test]
    fn output_stride_other_than_the_model_is_a_shape_mismatch() {
        let bytes = std::fs::read(tiny_model()).unwrap();
        let manifest = tiny_manifest_text().replace("output_stride = 8", "output_stride = 1");
        let (_dir, path) = temp_model(&bytes, &manifest);
        let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err}");
    }

    #[test]
    fn wrong_tensor_names_are_model_invalid() {
        let bytes = std::fs::read(tiny_model()).unwrap();
        for (from, to, needle) in [
            (
                r#"input_name = "input""#,
                r#"input_name = "image""#,
                "no input named `image`",
            ),
            (
                r#"output_name = "logits""#,
                r#"output_name = "out""#,
                "no output named `out`",
            ),
        ] {
            let (_dir, path) = temp_model(&bytes, &tiny_manifest_text().replace(from, to));
            let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
            assert!(matches!(err, EngineError::ModelInvalid { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn non_fp32_manifest_is_model_invalid() {
        let bytes = std::fs::read(tiny_model()).unwrap();
        let manifest = tiny_manifest_text().replace(r#""fp32""#, r#""fp16""#);
        let (_dir, path) = temp_model(&bytes, &manifest);
        let err = OnnxRuntimeEngine::load(&path, &OnnxRuntimeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("fp32 models only"), "{err}");
    }

    #[test]
    fn explicit_library_path_that_does_not_exist_is_library_not_found() {
        let search = LibrarySearch {
            dylib_path: Some("/nonexistent/libonnxruntime.so.1.31.1".into()),
            // Places that would find one, to show they are not tried.
            venv_roots: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))],
            python: Some("python3".into()),
        };
        let err = search.locate().unwrap_err();
        assert!(matches!(err, EngineError::LibraryNotFound { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so.1.31.1"),
            "{text}"
        );
        assert!(text.contains(".ci/setup.sh"), "{text}");
    }

    /// Set in the child process of `missing_ort_dylib_path_fails_load_in_a_fresh_process`.
    const CHILD_MARKER: &str = "FLOWCLOUD_ENGINE_TEST_CHILD";

    #[test]
    fn missing_ort_dylib_path_fails_load_in_a_fresh_process() {
        // ONNX Runtime is loaded once per process, so this runs the test below in a child
        // process with ORT_DYLIB_PATH set, where nothing has been loaded yet.
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("{module}::child_load_with_missing_ort_dylib_path"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ORT_DYLIB_PATH, "/nonexistent/libonnxruntime.so.1.31.1")
            .env(CHILD_MARKER, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child failed:\n{stdout}\n{stderr}"
        );
    }

    #[test]
    #[ignore = "run in a child process by missing_ort_dylib_path_fails_load_in_a_fresh_process"]
    fn child_load_with_missing_ort_dylib_path() {
        if std::env::var_os(CHILD_MARKER).is_none() {
            return;
        }
        let err =
            OnnxRuntimeEngine::load(&tiny_model(), &OnnxRuntimeOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::LibraryNotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("ORT_DYLIB_PATH=/nonexistent/"),
            "{err}"
        );
        assert!(loaded_library().is_none());
    }

    #[test]
    fn nothing_to_find_is_library_not_found_listing_the_places() {
        let dir = TempDir::new();
        let search = LibrarySearch {
            dylib_path: None,
            venv_roots: vec![dir.path().to_owned()],
            python: Some("/nonexistent/python3".into()),
        };
        let err = search.locate().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("`.venv` in {}", dir.path().display())),
            "{text}"
        );
        assert!(text.contains("/nonexistent/python3"), "{text}");
    }

    #[test]
    fn venv_layout_is_found_from_a_subdirectory() {
        let dir = TempDir::new();
        let capi = dir
            .path()
            .join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for name in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(capi.join(name), b"").unwrap();
        }
        let sub = dir.path().join("cloud-worker/target/debug");
        std::fs::create_dir_all(&sub).unwrap();
        let search = LibrarySearch {
            dylib_path: None,
            venv_roots: vec![sub],
            python: None,
        };
        assert_eq!(
            search.locate().unwrap(),
            capi.join("libonnxruntime.so.1.31.1")
        );
    }

    #[test]
    fn explicit_library_path_is_used_as_is() {
        let dir = TempDir::new();
        let lib = dir.path().join("libonnxruntime.so");
        std::fs::write(&lib, b"").unwrap();
        let search = LibrarySearch {
            dylib_path: Some(lib.clone()),
            ..LibrarySearch::default()
        };
        assert_eq!(search.locate().unwrap(), lib);
    }

    #[test]
    fn the_repository_venv_is_found() {
        // What `.ci/setup.sh` makes; the engine tests above need it too.
        let search = LibrarySearch {
            dylib_path: None,
            venv_roots: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))],
            python: None,
        };
        let lib = search.locate().unwrap();
        assert!(
            lib.to_string_lossy().contains("libonnxruntime.so"),
            "{}",
            lib.display()
        );
    }
}
