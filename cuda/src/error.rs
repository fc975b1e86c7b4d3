//! What can go wrong: loading the CUDA libraries and compiling kernels ([`CudaError`]), sizes
//! that do not fit a kernel ([`ShapeError`]), and launching one ([`LaunchError`]).

use std::path::PathBuf;

/// The CUDA driver, a GPU, NVRTC or a kernel's PTX is not available. Every variant says what is
/// missing and what to do about it; the worker then runs on the CPU path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// No CUDA driver library could be loaded (a machine without the NVIDIA driver).
    #[error(
        "CUDA is not available: the NVIDIA driver library (libcuda.so.1) is not installed or not on \
         the loader's path (tried {}); install the NVIDIA driver, or use the CPU path",
        tried.join(", ")
    )]
    DriverNotFound {
        /// The library names that were tried.
        tried: Vec<String>,
    },
    /// The driver loaded, but a driver call failed (e.g. `cuInit` with no usable device).
    #[error("CUDA is not available: {call} failed: {status}")]
    Driver {
        /// The driver call.
        call: &'static str,
        /// The driver's status, as cudarc names it.
        status: String,
    },
    /// The driver works but reports fewer GPUs than asked for.
    #[error(
        "CUDA is not available: GPU {ordinal} was asked for, the driver reports {count} GPU(s)"
    )]
    NoDevice {
        /// The GPU index asked for.
        ordinal: usize,
        /// GPUs the driver sees.
        count: usize,
    },
    /// The GPU is older than the kernels' PTX can target.
    #[error(
        "GPU {ordinal} ({name}) has compute capability {}.{}; the kernels need {}.{} or newer",
        found.0, found.1, needed.0, needed.1
    )]
    ComputeCapability {
        /// The GPU index.
        ordinal: usize,
        /// Its name.
        name: String,
        /// Its compute capability.
        found: (i32, i32),
        /// The oldest supported.
        needed: (i32, i32),
    },
    /// No NVRTC library could be loaded by name.
    #[error(
        "NVRTC is not available: the runtime compiler library (libnvrtc.so.13) is not on the \
         loader's path (tried {}); install the CUDA 13.0 NVRTC (`pip install \
         nvidia-cuda-nvrtc==13.0.88`) and set FLOWCLOUD_NVRTC_LIB to its libnvrtc.so.13",
        tried.join(", ")
    )]
    NvrtcNotFound {
        /// The library names that were tried.
        tried: Vec<String>,
    },
    /// The NVRTC library at a given path could not be loaded.
    #[error("NVRTC is not available: cannot load {}: {reason}", path.display())]
    NvrtcLoad {
        /// The library file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// NVRTC was loaded from a path, but the library cudarc resolved by name is another one
    /// (a system libnvrtc found first).
    #[error(
        "NVRTC {requested} was loaded from {}, but the library found by name is NVRTC {resolved}; \
         remove the other NVRTC from the loader's path",
        path.display()
    )]
    NvrtcMismatch {
        /// The library file asked for.
        path: PathBuf,
        /// Its version.
        requested: NvrtcVersion,
        /// The version of the library that answers by name.
        resolved: NvrtcVersion,
    },
    /// Prebuilt PTX was asked for ([`crate::PtxSource::Prebuilt`]) but the build made none
    /// that this GPU can run.
    #[error(
        "no prebuilt PTX for compute capability {}.{} (built: {}); build with nvcc \
         (FLOWCLOUD_NVCC, FLOWCLOUD_CUDA_ARCHS) or let NVRTC compile the kernels",
        found.0, found.1, if built.is_empty() { "none".to_owned() } else { built.join(", ") }
    )]
    NoPrebuiltPtx {
        /// The GPU's compute capability.
        found: (i32, i32),
        /// The architectures the build made PTX for.
        built: Vec<String>,
    },
    /// NVRTC rejected a kernel's source; `log` is NVRTC's program log.
    #[error("NVRTC could not compile {kernel} ({status}, options {options:?}):\n{log}")]
    Compile {
        /// The kernel source file.
        kernel: String,
        /// NVRTC's status.
        status: String,
        /// The options it was compiled with.
        options: Vec<String>,
        /// NVRTC's program log.
        log: String,
    },
    /// NVRTC failed outside compilation proper (creating the program, reading the PTX), or its
    /// output is not PTX text.
    #[error("NVRTC failed on {kernel}: {reason}")]
    Nvrtc {
        /// The kernel source file.
        kernel: String,
        /// What failed.
        reason: String,
    },
}

/// Sizes or arguments that do not fit a kernel (or its reference): refused before any work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    /// A width, height or class count is zero or above the supported maximum.
    #[error("{what} is {value}; it must be in 1..={max}")]
    Dimension {
        /// Which size.
        what: &'static str,
        /// The value given.
        value: usize,
        /// The largest accepted.
        max: usize,
    },
    /// A buffer has the wrong length for the sizes given.
    #[error("{what} has {actual} elements, {expected} needed")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Elements needed.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// An NV12 layout is inconsistent (pitch narrower than a row, chroma overlapping luma).
    #[error("NV12 layout: {0}")]
    Layout(&'static str),
    /// The blend factor is not a finite number in `[0, 1]`.
    #[error("alpha {0} is not in [0, 1]")]
    Alpha(f32),
}

/// A kernel launch was refused (sizes that do not fit the buffers) or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LaunchError {
    /// The arguments do not fit the kernel.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The kernel's module could not be built or loaded.
    #[error(transparent)]
    Load(#[from] CudaError),
    /// The driver refused the launch.
    #[error("launching {kernel} failed: {status}")]
    Driver {
        /// The kernel's entry point.
        kernel: &'static str,
        /// The driver's status.
        status: String,
    },
}

/// An NVRTC version, as `nvrtcVersion` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NvrtcVersion {
    /// Major version (13 for CUDA 13.x).
    pub major: i32,
    /// Minor version.
    pub minor: i32,
}

impl std::fmt::Display for NvrtcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
