//! Every kernel compiles to PTX with the pinned NVRTC 13.0 (the `nvidia-cuda-nvrtc` wheel that
//! `.ci/cuda-compilers.sh` installs), for the architecture of our GPU test machines (H100/H200:
//! sm_90), as PTX a CUDA 13.0 driver accepts. No GPU needed.
//!
//! Without the wheel the tests say SKIP and how to install it, except in CI (`CI` set), where
//! a missing wheel fails them.

use std::io::Write as _;
use std::path::PathBuf;

use flowcloud_cuda::nvrtc::{NVRTC_LIB_ENV, compile_options};
use flowcloud_cuda::{CudaError, KernelSource, Nvrtc, NvrtcVersion};

/// The NVRTC the tests pin: the CUDA 13.0 driver of the GPU test machines rejects PTX of a
/// newer ISA than its own, which a newer NVRTC emits.
const PINNED: NvrtcVersion = NvrtcVersion {
    major: 13,
    minor: 0,
};

/// The newest PTX ISA a CUDA 13.0 driver loads (PTX ISA 9.0 came with CUDA 13.0).
const MAX_PTX_ISA: (u32, u32) = (9, 0);

/// H100 and H200: compute capability 9.0.
const ARCHES: [&str; 2] = ["sm_90", "compute_90"];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The pinned NVRTC, or `None` (after saying SKIP) when it is not installed outside CI.
fn pinned_nvrtc() -> Option<Nvrtc> {
    let path = std::env::var_os(NVRTC_LIB_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../.venv/nvrtc-13.0/nvidia/cu13/lib/libnvrtc.so.13")
            },
            PathBuf::from,
        );
    if !path.is_file() {
        let msg = format!(
            "the pinned NVRTC is not at {} (set {NVRTC_LIB_ENV}, or install it: .ci/cuda-compilers.sh)",
            path.display()
        );
        assert!(!in_ci(), "{msg}");
        // Straight to stderr: libtest hides eprintln! output of passing tests.
        let _ = writeln!(std::io::stderr(), "SKIP: {msg}");
        return None;
    }
    match Nvrtc::from_path(&path) {
        Ok(nvrtc) => Some(nvrtc),
        Err(e) => panic!("loading {}: {e}", path.display()),
    }
}

/// `.version X.Y` of a PTX text.
fn ptx_isa(ptx: &str) -> (u32, u32) {
    let line = ptx
        .lines()
        .find_map(|l| l.trim().strip_prefix(".version "))
        .unwrap_or_else(|| panic!("no .version in PTX:\n{ptx}"));
    let number = |s: &str| {
        s.parse()
            .unwrap_or_else(|_| panic!("bad .version {line:?}"))
    };
    let (major, minor) = line
        .trim()
        .split_once('.')
        .unwrap_or_else(|| panic!("bad .version {line:?}"));
    (number(major), number(minor))
}

fn ptx_target(ptx: &str) -> &str {
    ptx.lines()
        .find_map(|l| l.trim().strip_prefix(".target "))
        .unwrap_or_else(|| panic!("no .target in PTX:\n{ptx}"))
        .trim()
}

#[test]
fn every_kernel_compiles_to_ptx_a_13_0_driver_accepts() {
    let Some(nvrtc) = pinned_nvrtc() else { return };
    assert_eq!(nvrtc.version(), PINNED, "the pinned NVRTC must be 13.0");
    for arch in ARCHES {
        for kernel in KernelSource::ALL {
            let ptx = nvrtc
                .ptx(kernel, arch)
                .unwrap_or_else(|e| panic!("{} for {arch}: {e}", kernel.file_name()));
            for entry in kernel.entry_points() {
                assert!(
                    ptx.contains(&format!(".visible .entry {entry}(")),
                    "{}: no entry {entry} in the PTX",
                    kernel.file_name()
                );
            }
            let isa = ptx_isa(&ptx);
            assert!(
                isa <= MAX_PTX_ISA,
                "{}: PTX ISA {isa:?} is newer than a 13.0 driver takes",
                kernel.file_name()
            );
            assert_eq!(
                ptx_target(&ptx),
                "sm_90",
                "{} for {arch}",
                kernel.file_name()
            );
            // --fmad=false: no fused multiply-add, so the arithmetic is the references'.
            assert!(
                !ptx.contains("fma."),
                "{}: fused multiply-add in the PTX",
                kernel.file_name()
            );
            eprintln!(
                "{} for {arch}: PTX .version {}.{}, .target {}, {} bytes (NVRTC {}, options {:?})",
                kernel.file_name(),
                isa.0,
                isa.1,
                ptx_target(&ptx),
                ptx.len(),
                nvrtc.version(),
                compile_options(arch),
            );
        }
    }
}

/// Every kernel the crate launches, by name: the PTX test above checks the entry points
/// `KernelSource::ALL` lists, so each must be listed there, under exactly one source.
#[test]
fn every_entry_point_is_in_a_checked_source() {
    use flowcloud_cuda::kernels::entry;
    let all = [
        entry::NV12_TO_PLANAR_F32,
        entry::NV12_TO_PLANAR_F16,
        entry::UPSAMPLE_ARGMAX_F32,
        entry::UPSAMPLE_ARGMAX_F16,
        entry::COLORIZE_RGBA,
        entry::BLEND_NV12_RGBA,
        entry::BLEND_NV12_NV12,
        entry::ARGMAX_BLEND_RGBA_F32,
        entry::ARGMAX_BLEND_RGBA_F16,
        entry::ARGMAX_BLEND_NV12_F32,
        entry::ARGMAX_BLEND_NV12_F16,
    ];
    for name in all {
        let sources: Vec<_> = KernelSource::ALL
            .iter()
            .filter(|s| s.entry_points().contains(&name))
            .collect();
        assert_eq!(sources.len(), 1, "{name} is listed under {sources:?}");
    }
    let listed: usize = KernelSource::ALL
        .iter()
        .map(|s| s.entry_points().len())
        .sum();
    assert_eq!(
        listed,
        all.len(),
        "an entry point is missing from this list"
    );
    assert_eq!(
        KernelSource::Fused.entry_points(),
        [
            entry::ARGMAX_BLEND_RGBA_F32,
            entry::ARGMAX_BLEND_RGBA_F16,
            entry::ARGMAX_BLEND_NV12_F32,
            entry::ARGMAX_BLEND_NV12_F16,
        ]
    );
}

/// The fused kernels are compiled from the two steps' sources and its own, in one program.
#[test]
fn the_fused_source_holds_both_steps() {
    let source = KernelSource::Fused.source();
    for part in [
        KernelSource::UpsampleArgmax.source(),
        KernelSource::Overlay.source(),
        include_str!("../kernels/fused_overlay.cu"),
    ] {
        assert!(source.contains(part));
    }
    let Some(nvrtc) = pinned_nvrtc() else { return };
    let ptx = nvrtc.ptx(KernelSource::Fused, "sm_90").unwrap();
    for name in KernelSource::Fused.entry_points() {
        let body = ptx
            .split(".visible .entry ")
            .find(|body| body.starts_with(&format!("{name}(")))
            .unwrap_or_else(|| panic!("no entry {name}"));
        // Each entry reads the logits, the frame and the palette and writes both outputs: no
        // stub. At least: a class-map byte store and the overlay stores.
        assert!(
            body.matches("st.global.u8").count() >= 2,
            "{name}: too few stores"
        );
        assert!(!body.contains("fma."), "{name}: fused multiply-add");
    }
}

#[test]
fn ptx_is_cached_per_kernel_and_arch() {
    let Some(nvrtc) = pinned_nvrtc() else { return };
    let first = nvrtc.ptx(KernelSource::UpsampleArgmax, "sm_90").unwrap();
    let again = nvrtc.ptx(KernelSource::UpsampleArgmax, "sm_90").unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "the second request compiled again"
    );
    let other = nvrtc
        .ptx(KernelSource::UpsampleArgmax, "compute_90")
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &other));
}

#[test]
fn a_compile_error_carries_nvrtcs_log() {
    let Some(nvrtc) = pinned_nvrtc() else { return };
    let broken = "extern \"C\" __global__ void fc_broken(float *out) { out[0] = undeclared_name; }";
    match nvrtc.compile("broken.cu", broken, "sm_90") {
        Err(CudaError::Compile {
            kernel,
            status,
            options,
            log,
        }) => {
            assert_eq!(kernel, "broken.cu");
            assert!(status.contains("COMPILATION"), "{status}");
            assert!(options.iter().any(|o| o == "--fmad=false"), "{options:?}");
            assert!(
                log.contains("undeclared_name"),
                "the log does not name the error: {log}"
            );
            assert!(
                log.contains("broken.cu"),
                "the log does not name the file: {log}"
            );
            let shown = CudaError::Compile {
                kernel,
                status,
                options,
                log: log.clone(),
            }
            .to_string();
            assert!(shown.contains(&log), "{shown}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn a_malformed_arch_is_refused_before_nvrtc() {
    let Some(nvrtc) = pinned_nvrtc() else { return };
    let err = nvrtc.ptx(KernelSource::Overlay, "sm_90 --bad").unwrap_err();
    assert!(matches!(err, CudaError::Nvrtc { .. }), "{err:?}");
}

/// PTX lines without `//` comments (where the compilers name themselves).
fn ptx_code(ptx: &str) -> Vec<&str> {
    ptx.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect()
}

#[test]
fn nvcc_at_build_time_makes_the_same_ptx_as_nvrtc() {
    use flowcloud_cuda::prebuilt::{NVCC_OPTIONS, NVCC_VERSION, PREBUILT};

    if PREBUILT.is_empty() {
        let msg = "no prebuilt PTX: nvcc was not found at build time (the justfile points \
                   FLOWCLOUD_NVCC at the pinned one, which .ci/cuda-compilers.sh installs)";
        assert!(!in_ci(), "{msg}");
        let _ = writeln!(std::io::stderr(), "SKIP: {msg}");
        return;
    }
    let version = NVCC_VERSION.unwrap_or_default();
    assert!(
        version.contains("release 13.0"),
        "nvcc {version:?}, pin 13.0"
    );
    // The options NVRTC gets, but for the architecture.
    let nvrtc_options = compile_options("compute_90");
    assert_eq!(
        NVCC_OPTIONS,
        nvrtc_options
            .iter()
            .filter(|o| !o.starts_with("--gpu-architecture="))
            .collect::<Vec<_>>(),
    );
    for kernel in KernelSource::ALL {
        let built: Vec<_> = PREBUILT
            .iter()
            .filter(|p| p.file == kernel.file_name())
            .collect();
        assert!(
            built.iter().any(|p| p.compute_capability == (9, 0)),
            "{}: no PTX for H100/H200",
            kernel.file_name()
        );
        for prebuilt in built {
            let (major, minor) = prebuilt.compute_capability;
            let ptx = prebuilt.ptx;
            for entry in kernel.entry_points() {
                assert!(
                    ptx.contains(&format!(".visible .entry {entry}(")),
                    "{}: no entry {entry}",
                    kernel.file_name()
                );
            }
            assert!(ptx_isa(ptx) <= MAX_PTX_ISA, "{}", kernel.file_name());
            assert_eq!(ptx_target(ptx), format!("sm_{major}{minor}"));
            assert!(
                !ptx.contains("fma."),
                "{}: fused multiply-add",
                kernel.file_name()
            );
            // The same compiler inside: NVRTC's PTX for that architecture is the same code.
            let Some(nvrtc) = pinned_nvrtc() else {
                continue;
            };
            let arch = format!("compute_{major}{minor}");
            let from_nvrtc = nvrtc.ptx(kernel, &arch).unwrap();
            assert!(
                ptx_code(ptx) == ptx_code(&from_nvrtc),
                "{} for {arch}: nvcc's PTX differs from NVRTC's",
                kernel.file_name()
            );
            eprintln!(
                "{} for {arch}: nvcc ({version}) PTX equals NVRTC {}'s, {} bytes",
                kernel.file_name(),
                nvrtc.version(),
                ptx.len()
            );
        }
    }
}
