//! Without the NVIDIA driver (CI, laptops) the GPU path says clearly what is missing; on a GPU
//! machine it opens.

use flowcloud_cuda::{Capabilities, CudaError, GpuContext};

#[test]
fn context_opens_or_says_what_is_missing() {
    let caps = Capabilities::probe();
    eprintln!("{caps}");
    match GpuContext::new(0) {
        Ok(gpu) => {
            for kernel in flowcloud_cuda::KernelSource::ALL {
                eprintln!(
                    "GPU 0 opened; {}: {}",
                    kernel.file_name(),
                    gpu.ptx_origin(kernel)
                );
            }
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

#[test]
fn every_ptx_source_says_what_is_missing() {
    use flowcloud_cuda::PtxSource;

    let caps = Capabilities::probe();
    for ptx in [PtxSource::Auto, PtxSource::Prebuilt, PtxSource::Nvrtc] {
        match GpuContext::with_ptx(0, ptx) {
            Ok(gpu) => {
                for kernel in flowcloud_cuda::KernelSource::ALL {
                    let origin = gpu.ptx_origin(kernel);
                    let expected = if ptx == PtxSource::Nvrtc { "NVRTC" } else { "" };
                    assert!(origin.starts_with(expected), "{ptx:?}: {origin}");
                    assert_ne!(origin, "none", "{ptx:?}");
                }
            }
            Err(CudaError::DriverNotFound { .. }) => assert!(!caps.driver.is_available()),
            Err(e @ CudaError::NoPrebuiltPtx { .. }) => {
                assert_eq!(ptx, PtxSource::Prebuilt);
                let shown = e.to_string();
                assert!(shown.contains("FLOWCLOUD_NVCC"), "{shown}");
            }
            Err(e) => assert!(caps.kernels_unavailable(0).is_some(), "{ptx:?}: {e}"),
        }
    }
    let shown = CudaError::NoPrebuiltPtx {
        found: (9, 0),
        built: vec![],
    }
    .to_string();
    assert_eq!(
        shown,
        "no prebuilt PTX for compute capability 9.0 (built: none); build with nvcc \
         (FLOWCLOUD_NVCC, FLOWCLOUD_CUDA_ARCHS) or let NVRTC compile the kernels"
    );
}
