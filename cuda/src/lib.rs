//! FlowCloud's CUDA kernels and their plain-Rust references.
//!
//! - [`kernels`]: the `.cu` sources (NV12 → normalized planar RGB with resize, fused logit
//!   upsample + argmax, colorize / alpha blend), embedded in the crate.
//! - [`prebuilt`]: the PTX nvcc made at build time, when an nvcc was there (`build.rs`).
//! - [`nvrtc`]: CUDA C → PTX at run time with NVRTC, loaded dynamically, cached in memory,
//!   for kernels without prebuilt PTX.
//! - [`GpuContext`]: a context on one GPU, and a typed, size-checked launch wrapper per kernel.
//! - [`Capabilities`]: which GPU backends this machine can use, and why not, as data.
//! - [`reference`]: the definition of each kernel, in Rust, per pixel.
//!
//! Nothing here needs a CUDA install or a GPU to build: the driver (`libcuda.so.1`) and NVRTC
//! are loaded at run time, and their absence is a [`CudaError`], never a panic.
//!
//! ```
//! use flowcloud_cuda::{Capabilities, GpuContext};
//!
//! match GpuContext::new(0) {
//!     Ok(gpu) => println!("kernels on the GPU, {}", gpu.ptx_origin(flowcloud_cuda::KernelSource::Overlay)),
//!     // On a machine without the NVIDIA driver: "CUDA is not available: ... libcuda.so.1 ..."
//!     Err(e) => println!("CPU path: {e}\n{}", Capabilities::probe()),
//! }
//! ```

#![forbid(clippy::print_stdout)]

pub mod capability;
mod context;
pub mod error;
pub mod kernels;
pub mod nvrtc;
pub mod prebuilt;
pub mod reference;
pub mod shape;

pub use capability::{Capabilities, GpuDevice, Probe};
pub use context::{GpuContext, PtxSource};
pub use error::{CudaError, LaunchError, NvrtcVersion, ShapeError};
pub use kernels::KernelSource;
pub use nvrtc::Nvrtc;
pub use shape::{ChannelOrder, LogitShape, Nv12Layout, Palette, PreprocessParams};
