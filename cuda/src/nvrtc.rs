//! NVRTC: the kernels' CUDA C → PTX at run time, cached in memory.
//!
//! NVRTC is loaded at run time through cudarc's dynamic loading, which looks the library up by
//! name (`libnvrtc.so`, …, `libnvrtc.so.13`). To use one particular file (the pinned 13.0 wheel
//! in CI, or `FLOWCLOUD_NVRTC_LIB`), [`Nvrtc::from_path`] loads that file first: the dynamic
//! loader then answers a lookup of its soname (`libnvrtc.so.13`) with the library already
//! loaded. It checks that the library cudarc resolves is that one (same version), since a
//! `libnvrtc.so` elsewhere on the loader's path would be found first.

use std::collections::HashMap;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::nvrtc::{CompileError, CompileOptions};

use crate::error::{CudaError, NvrtcVersion};
use crate::kernels::KernelSource;

/// Environment variable naming the NVRTC library file to use (e.g.
/// `.venv/nvrtc-13.0/nvidia/cu13/lib/libnvrtc.so.13`); unset, NVRTC is looked up by name.
pub const NVRTC_LIB_ENV: &str = "FLOWCLOUD_NVRTC_LIB";

/// The options every kernel is compiled with, for GPU architecture `arch` (`sm_90`,
/// `compute_90`): no fused multiply-add, so that the float arithmetic is exactly the
/// references' (the kernels also spell every operation with `__f*_rn` intrinsics).
#[must_use]
pub fn compile_options(arch: &str) -> Vec<String> {
    vec![
        "--fmad=false".to_owned(),
        format!("--gpu-architecture={arch}"),
    ]
}

/// A loaded NVRTC, with the PTX it has made so far.
#[derive(Debug)]
pub struct Nvrtc {
    version: NvrtcVersion,
    path: Option<PathBuf>,
    /// Keeps the library loaded from [`Nvrtc::from_path`] (and its builtins) mapped.
    _libraries: Vec<libloading::Library>,
    cache: Mutex<HashMap<(KernelSource, String), Arc<str>>>,
}

/// `nvrtcVersion` as exported by the library.
type NvrtcVersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;

impl Nvrtc {
    /// Loads NVRTC: the file [`NVRTC_LIB_ENV`] names when it is set, otherwise by name from the
    /// loader's path.
    ///
    /// # Errors
    ///
    /// [`CudaError::NvrtcNotFound`], [`CudaError::NvrtcLoad`] or [`CudaError::NvrtcMismatch`].
    pub fn load() -> Result<Self, CudaError> {
        match std::env::var_os(NVRTC_LIB_ENV) {
            Some(path) if !path.is_empty() => Self::from_path(Path::new(&path)),
            _ => Self::by_name(),
        }
    }

    /// Loads NVRTC by name from the loader's path, as cudarc finds it.
    ///
    /// # Errors
    ///
    /// [`CudaError::NvrtcNotFound`] when no candidate name loads.
    pub fn by_name() -> Result<Self, CudaError> {
        let version = resolved_version()?;
        Ok(Self {
            version,
            path: None,
            _libraries: Vec::new(),
            cache: Mutex::default(),
        })
    }

    /// Loads the NVRTC library file at `path` (a `libnvrtc.so.13`), after the
    /// `libnvrtc-builtins` library next to it, which NVRTC needs at compile time.
    ///
    /// # Errors
    ///
    /// [`CudaError::NvrtcLoad`] if the file cannot be loaded or is not NVRTC,
    /// [`CudaError::NvrtcMismatch`] if the NVRTC found by name is another version.
    pub fn from_path(path: &Path) -> Result<Self, CudaError> {
        let load_error = |reason: String| CudaError::NvrtcLoad {
            path: path.to_owned(),
            reason,
        };
        if !path.is_file() {
            return Err(load_error("no such file".to_owned()));
        }
        let mut libraries = Vec::new();
        // NVRTC dlopens its builtins library by soname; loading it from the same folder first
        // makes that lookup succeed whatever the loader's path is.
        if let Some(builtins) = builtins_next_to(path) {
            // SAFETY: loading a shared library runs its initializers; NVRTC's builtins library
            // has no requirements on them (it is a plain data/code library of NVRTC's).
            let lib = unsafe { libloading::Library::new(&builtins) }
                .map_err(|e| load_error(format!("{}: {e}", builtins.display())))?;
            libraries.push(lib);
        }
        // SAFETY: as above; NVRTC's initializers have no preconditions.
        let lib =
            unsafe { libloading::Library::new(path) }.map_err(|e| load_error(e.to_string()))?;
        let requested = {
            // SAFETY: `nvrtcVersion` has this signature in every NVRTC (nvrtc.h).
            let version_fn = unsafe { lib.get::<NvrtcVersionFn>(b"nvrtcVersion\0") }
                .map_err(|e| load_error(format!("not an NVRTC library: {e}")))?;
            let (mut major, mut minor) = (0, 0);
            // SAFETY: both pointers are valid for writes of a c_int.
            let status = unsafe { version_fn(&raw mut major, &raw mut minor) };
            if status != 0 {
                return Err(load_error(format!(
                    "nvrtcVersion failed with status {status}"
                )));
            }
            NvrtcVersion { major, minor }
        };
        libraries.push(lib);
        let resolved = resolved_version()?;
        if resolved != requested {
            return Err(CudaError::NvrtcMismatch {
                path: path.to_owned(),
                requested,
                resolved,
            });
        }
        Ok(Self {
            version: requested,
            path: Some(path.to_owned()),
            _libraries: libraries,
            cache: Mutex::default(),
        })
    }

    /// The NVRTC version.
    #[must_use]
    pub const fn version(&self) -> NvrtcVersion {
        self.version
    }

    /// The library file, when loaded from a path.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The PTX of `kernel` for GPU architecture `arch` (`sm_90`, `compute_90`, …): compiled on
    /// first use, then from the in-memory cache.
    ///
    /// # Errors
    ///
    /// [`CudaError::Compile`] with NVRTC's log, or [`CudaError::Nvrtc`].
    pub fn ptx(&self, kernel: KernelSource, arch: &str) -> Result<Arc<str>, CudaError> {
        let key = (kernel, arch.to_owned());
        if let Some(ptx) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Arc::clone(ptx));
        }
        // Compiled outside the lock; two threads asking at once both compile, one result stays.
        let ptx: Arc<str> = self
            .compile(kernel.file_name(), kernel.source(), arch)?
            .into();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(cache.entry(key).or_insert(ptx)))
    }

    /// Compiles CUDA C `source` (named `name` in NVRTC's messages) to PTX for `arch`, with
    /// [`compile_options`]; not cached.
    ///
    /// # Errors
    ///
    /// [`CudaError::Compile`] with NVRTC's log when the source does not compile,
    /// [`CudaError::Nvrtc`] for a malformed `arch` or `source` or another NVRTC failure.
    pub fn compile(&self, name: &str, source: &str, arch: &str) -> Result<String, CudaError> {
        let nvrtc_error = |reason: String| CudaError::Nvrtc {
            kernel: name.to_owned(),
            reason,
        };
        // cudarc turns these into C strings and panics on an interior NUL.
        if arch.is_empty() || !arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(nvrtc_error(format!(
                "{arch:?} is not a GPU architecture name"
            )));
        }
        if source.contains('\0') || name.contains('\0') {
            return Err(nvrtc_error("source or name contains a NUL byte".to_owned()));
        }
        let opts = CompileOptions {
            options: compile_options(arch),
            name: Some(name.to_owned()),
            ..CompileOptions::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(source, opts).map_err(|e| match e {
            CompileError::CompileError {
                nvrtc,
                options,
                log,
            } => CudaError::Compile {
                kernel: name.to_owned(),
                status: format!("{:?}", nvrtc.0),
                options,
                log: log.to_string_lossy().trim_end().to_owned(),
            },
            other => nvrtc_error(format!("{other:?}")),
        })?;
        let bytes = ptx
            .as_bytes()
            .ok_or_else(|| nvrtc_error("NVRTC returned no PTX image".to_owned()))?;
        let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8(text.to_vec())
            .map_err(|_| nvrtc_error("PTX is not UTF-8 text".to_owned()))
    }
}

/// The `libnvrtc-builtins.so.*` next to an NVRTC library file, if there is one (not the `.alt`
/// variant).
fn builtins_next_to(path: &Path) -> Option<PathBuf> {
    let dir = path.parent()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so."))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The version of the NVRTC that cudarc resolves by name.
fn resolved_version() -> Result<NvrtcVersion, CudaError> {
    // SAFETY: probing loads candidate libraries by name and unloads them; no other effect.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaError::NvrtcNotFound {
            tried: cudarc::get_lib_name_candidates("nvrtc"),
        });
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above, so cudarc's loader does not panic), and
    // both pointers are valid for writes of a c_int.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&raw mut major, &raw mut minor) };
    status.result().map_err(|e| CudaError::Nvrtc {
        kernel: String::new(),
        reason: format!("nvrtcVersion failed: {e:?}"),
    })?;
    Ok(NvrtcVersion { major, minor })
}
