//! Compiles the kernels to PTX with nvcc when one is found, so the worker loads the kernels
//! without NVRTC and without compiling at start; without nvcc the crate builds all the same and
//! NVRTC compiles them at first use.
//!
//! Which nvcc: `FLOWCLOUD_NVCC` (a path; set and unusable is a build error), else
//! `$CUDA_PATH/bin/nvcc`, `/usr/local/cuda/bin/nvcc`, then `nvcc` on `PATH` (found this way,
//! a failing nvcc is a warning and the build goes on without PTX). Architectures:
//! `FLOWCLOUD_CUDA_ARCHS`, space-separated compute capabilities without the dot (default
//! `75 90`: the oldest GPU the kernels support, and H100/H200); at run time a GPU takes the
//! newest PTX not newer than itself, which its driver compiles for it.
//!
//! The programs are `KernelSource::ALL` of `src/kernels.rs`, included here, so nvcc compiles
//! exactly the text NVRTC would (a program may be several `.cu` files, in order). Writes
//! `$OUT_DIR/prebuilt_ptx.rs`: nvcc's release line, its options, and one entry per program and
//! architecture with the PTX embedded.

#![allow(clippy::print_stdout)] // cargo reads build-script instructions from standard output

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

// `include_str!` paths resolve from `src/kernels.rs` itself, so the sources are the crate's.
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "src/kernels.rs"]
mod kernels;

use kernels::KernelSource;

/// Must equal `nvrtc::compile_options` without the architecture (a test checks it).
const OPTIONS: [&str; 1] = ["--fmad=false"];
const DEFAULT_ARCHS: &str = "75 90";

struct Nvcc {
    path: PathBuf,
    /// Chosen explicitly (`FLOWCLOUD_NVCC`): a failure is then the build's failure.
    explicit: bool,
}

fn main() {
    // Not PATH: it differs between shells and tools (a venv, cargo's own bin folder), and
    // tracking it would rebuild this crate and the worker on every such change. A new nvcc on
    // PATH is picked up by a clean build, or at once through FLOWCLOUD_NVCC / CUDA_PATH.
    for var in ["FLOWCLOUD_NVCC", "FLOWCLOUD_CUDA_ARCHS", "CUDA_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=src/kernels.rs");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let generated = find_nvcc()
        .and_then(|nvcc| match compile_all(&nvcc, &out_dir) {
            Ok(generated) => Some(generated),
            Err(e) if nvcc.explicit => panic!("FLOWCLOUD_NVCC={}: {e}", nvcc.path.display()),
            Err(e) => {
                println!(
                    "cargo:warning=no prebuilt PTX ({e}); NVRTC will compile the kernels at run time"
                );
                None
            }
        })
        .unwrap_or_else(|| {
            "/// No nvcc at build time.\npub const NVCC_VERSION: Option<&str> = None;\n\
             /// No nvcc at build time.\npub const NVCC_OPTIONS: &[&str] = &[];\n\
             /// No nvcc at build time.\npub const PREBUILT: &[Prebuilt] = &[];\n"
                .to_owned()
        });
    std::fs::write(out_dir.join("prebuilt_ptx.rs"), generated).expect("OUT_DIR is writable");
}

fn find_nvcc() -> Option<Nvcc> {
    if let Some(path) = std::env::var_os("FLOWCLOUD_NVCC").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "FLOWCLOUD_NVCC={} is not a file (unset it to build without prebuilt PTX)",
            path.display()
        );
        return Some(Nvcc {
            path,
            explicit: true,
        });
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(cuda) = std::env::var_os("CUDA_PATH") {
        candidates.push(PathBuf::from(cuda).join("bin/nvcc"));
    }
    candidates.push(PathBuf::from("/usr/local/cuda/bin/nvcc"));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("nvcc")));
    }
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .map(|path| Nvcc {
            path,
            explicit: false,
        })
}

fn archs() -> Result<Vec<u32>, String> {
    let text = std::env::var("FLOWCLOUD_CUDA_ARCHS").unwrap_or_else(|_| DEFAULT_ARCHS.to_owned());
    let archs = text
        .split_whitespace()
        .map(|a| {
            a.parse::<u32>()
                .ok()
                .filter(|n| (75..=1000).contains(n))
                .ok_or_else(|| {
                    format!("FLOWCLOUD_CUDA_ARCHS: {a:?} is not a compute capability like 75 or 90")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if archs.is_empty() {
        return Err("FLOWCLOUD_CUDA_ARCHS names no architecture".to_owned());
    }
    Ok(archs)
}

fn compile_all(nvcc: &Nvcc, out_dir: &Path) -> Result<String, String> {
    let archs = archs()?;
    let version = nvcc_version(&nvcc.path)?;
    let src_dir = out_dir.join("src");
    let ptx_dir = out_dir.join("ptx");
    for dir in [&src_dir, &ptx_dir] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut entries = String::new();
    for kernel in KernelSource::ALL {
        let file = kernel.file_name();
        let source = src_dir.join(file);
        std::fs::write(&source, kernel.source())
            .map_err(|e| format!("{}: {e}", source.display()))?;
        let stem = file.trim_end_matches(".cu");
        for &arch in &archs {
            let ptx = ptx_dir.join(format!("{stem}.compute_{arch}.ptx"));
            let output = Command::new(&nvcc.path)
                .arg("-ptx")
                .args(OPTIONS)
                .arg(format!("-arch=compute_{arch}"))
                .arg("-o")
                .arg(&ptx)
                .arg(&source)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", nvcc.path.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "nvcc failed on {file} for compute_{arch} ({}):\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            let (major, minor) = (arch / 10, arch % 10);
            writeln!(
                entries,
                "    Prebuilt {{ file: {file:?}, compute_capability: ({major}, {minor}), ptx: include_str!({:?}) }},",
                ptx.display().to_string()
            )
            .expect("writing to a String");
        }
    }
    let options = OPTIONS.map(|o| format!("{o:?}")).join(", ");
    Ok(format!(
        "/// `nvcc --version`'s release line, of the nvcc that made [`PREBUILT`].\n\
         pub const NVCC_VERSION: Option<&str> = Some({version:?});\n\
         /// The options every program was compiled with, besides `-ptx -arch=compute_XY`.\n\
         pub const NVCC_OPTIONS: &[&str] = &[{options}];\n\
         /// One per program and architecture.\n\
         pub const PREBUILT: &[Prebuilt] = &[\n{entries}];\n"
    ))
}

fn nvcc_version(nvcc: &Path) -> Result<String, String> {
    let output = Command::new(nvcc)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", nvcc.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} --version failed ({})",
            nvcc.display(),
            output.status
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.contains("release"))
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| format!("{} --version printed no release line", nvcc.display()))
}
