//! `flowcloud-gpu-check` on a machine where the kernels cannot run: it says "not available",
//! names what is missing, writes that to `--out` and exits with status 2 (the GPU bundle's
//! `run.sh` tells this apart from a failed check, status 1).

use std::path::PathBuf;
use std::process::Command;

use flowcloud_cuda::GpuContext;

const BIN: &str = env!("CARGO_BIN_EXE_flowcloud-gpu-check");

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("flowcloud-gpu-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn without_a_gpu_it_says_not_available_and_exits_2() {
    if GpuContext::new(0).is_ok() {
        eprintln!("SKIP: GPU 0 opens here; the GPU bundle runs the full check");
        return;
    }
    let dir = scratch("na");
    let json = dir.join("gpu-check.json");
    let out = Command::new(BIN).arg("--out").arg(&json).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not available"), "{stderr}");
    // The capability report follows, naming each missing part.
    for part in ["CUDA driver: ", "NVRTC (CUDA kernels): ", "NVDEC: "] {
        assert!(stderr.contains(part), "{stderr}");
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["status"], "not available");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.contains("not available"), "{reason}");
    let md = std::fs::read_to_string(json.with_extension("md")).unwrap();
    assert!(md.starts_with("not available: "), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_argument_is_refused_with_the_usage() {
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("usage: flowcloud-gpu-check"), "{stderr}");
    assert!(stderr.contains("--bogus"), "{stderr}");
}
