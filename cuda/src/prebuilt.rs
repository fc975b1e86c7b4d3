//! PTX that nvcc made at build time (`cuda/build.rs`), when an nvcc was there: the kernels
//! then load without NVRTC and without compiling at start. Empty otherwise.
//!
//! nvcc and NVRTC of one CUDA release emit the same PTX for the same source, options and
//! architecture (checked by `tests/prebuilt.rs`), so which path made a kernel does not change
//! a single output bit.

use crate::kernels::KernelSource;

/// One source file's PTX for one virtual architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prebuilt {
    /// The file under `cuda/kernels/`.
    pub file: &'static str,
    /// The architecture it targets (`compute_XY`).
    pub compute_capability: (i32, i32),
    /// The PTX text.
    pub ptx: &'static str,
}

mod generated {
    use super::Prebuilt;
    include!(concat!(env!("OUT_DIR"), "/prebuilt_ptx.rs"));
}

pub use generated::{NVCC_OPTIONS, NVCC_VERSION, PREBUILT};

/// The PTX for `kernel` on a GPU of compute capability `gpu`: the newest prebuilt one not newer
/// than the GPU (a driver compiles PTX of an older virtual architecture for a newer GPU, never
/// the other way round), or `None`.
#[must_use]
pub fn for_gpu(kernel: KernelSource, gpu: (i32, i32)) -> Option<&'static Prebuilt> {
    PREBUILT
        .iter()
        .filter(|p| p.file == kernel.file_name() && p.compute_capability <= gpu)
        .max_by_key(|p| p.compute_capability)
}

/// The architectures prebuilt PTX exists for, oldest first: `["compute_75", "compute_90"]`.
#[must_use]
pub fn architectures() -> Vec<String> {
    let mut archs: Vec<(i32, i32)> = PREBUILT.iter().map(|p| p.compute_capability).collect();
    archs.sort_unstable();
    archs.dedup();
    archs
        .into_iter()
        .map(|(major, minor)| format!("compute_{major}{minor}"))
        .collect()
}

/// Whether every kernel has prebuilt PTX for a GPU of compute capability `gpu`, so that NVRTC
/// is not needed there.
#[must_use]
pub fn covers(gpu: (i32, i32)) -> bool {
    KernelSource::ALL
        .iter()
        .all(|&kernel| for_gpu(kernel, gpu).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_ptx_not_newer_than_the_gpu_is_chosen() {
        if PREBUILT.is_empty() {
            assert!(!covers((9, 0)));
            assert_eq!(for_gpu(KernelSource::Overlay, (9, 0)), None);
            return;
        }
        let oldest = PREBUILT
            .iter()
            .map(|p| p.compute_capability)
            .min()
            .unwrap_or_default();
        for kernel in KernelSource::ALL {
            // Older than every prebuilt architecture: nothing fits.
            assert_eq!(for_gpu(kernel, (oldest.0, oldest.1 - 1)), None);
            for gpu in [(7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)] {
                let Some(chosen) = for_gpu(kernel, gpu) else {
                    assert!(gpu < oldest, "{gpu:?}");
                    continue;
                };
                assert_eq!(chosen.file, kernel.file_name());
                assert!(chosen.compute_capability <= gpu);
                // No other prebuilt one for this file is newer and still fits.
                assert!(!PREBUILT.iter().any(|p| p.file == kernel.file_name()
                    && p.compute_capability > chosen.compute_capability
                    && p.compute_capability <= gpu));
            }
        }
    }
}
