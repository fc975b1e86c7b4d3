//! Without the NVIDIA driver (CI, laptops) the GPU path says clearly what is missing; on a GPU
//! machine it opens.

use flowcloud_cuda::{Capabilities, CudaError, GpuContext};

#[test]
fn context_opens_or_says_what_is_missing() {
    let caps = Capabilities::probe();
    eprintln!("{caps}");
    match GpuContext::new(0) {
        Ok(gpu) => {
            eprintln!("GPU 0 opened; NVRTC {}", gpu.nvrtc().version());
            assert!(caps.kernels_unavailable(0).is_none(), "{caps}");
        }
        Err(CudaError::DriverNotFound { tried }) => {
            assert!(tried.iter().any(|t| t == "libcuda.so.1"), "{tried:?}");
            let shown = CudaError::DriverNotFound { tried }.to_string();
            assert!(shown.starts_with("CUDA is not available"), "{shown}");
            assert!(shown.contains("libcuda.so.1"), "{shown}");
            assert!(shown.contains("install the NVIDIA driver"), "{shown}");
            // The capability report agrees, and says the same thing.
            assert!(!caps.driver.is_available());
            assert!(caps.devices.is_empty());
            let why = caps
                .kernels_unavailable(0)
                .expect("kernels cannot be available");
            assert!(why.contains("libcuda.so.1"), "{why}");
            let why = caps
                .nvdec_unavailable(0)
                .expect("NVDEC cannot be available");
            assert!(why.contains("libcuda.so.1"), "{why}");
        }
        // A driver without a usable GPU, or without NVRTC: each names what is missing.
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.contains("not available") || shown.contains("compute capability"),
                "{shown}"
            );
            assert!(caps.kernels_unavailable(0).is_some(), "{caps}");
        }
    }
}

#[test]
fn the_capability_report_prints_every_backend() {
    let shown = Capabilities::probe().to_string();
    for line in [
        "CUDA driver: ",
        "NVRTC (CUDA kernels): ",
        "prebuilt PTX (CUDA kernels): ",
        "NVDEC: ",
    ] {
        assert!(shown.contains(line), "{shown}");
    }
}

#[test]
fn nvrtc_by_name_fails_cleanly_or_loads() {
    // Nothing puts an NVRTC on this process's loader path, so on a machine without a CUDA
    // install this is the "not available" error; with one, it loads.
    match flowcloud_cuda::Nvrtc::by_name() {
        Ok(nvrtc) => assert!(nvrtc.version().major >= 12),
        Err(e) => {
            assert!(matches!(e, CudaError::NvrtcNotFound { .. }), "{e:?}");
            let shown = e.to_string();
            assert!(shown.contains("libnvrtc.so.13"), "{shown}");
            assert!(shown.contains("FLOWCLOUD_NVRTC_LIB"), "{shown}");
        }
    }
}
