//! Runs the main demo end to end: two simulated cameras stream openh264-encoded video into a
//! real `flowcloud-worker` child process (tiny model) and must get results back for ≥ 95% of
//! their frames; the worker must exit 0 on SIGTERM.

use std::path::PathBuf;
use std::process::Command;

/// The `flowcloud-worker` binary, built here: cargo builds only this crate's binaries for its
/// tests, and this crate must not depend on the worker.
fn worker_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "flowcloud-worker",
            "--bin",
            "flowcloud-worker",
        ])
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building flowcloud-worker failed: {status}"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let binary = target.join("debug/flowcloud-worker");
    assert!(binary.is_file(), "no worker binary at {}", binary.display());
    binary
}

#[test]
fn demo_streams_two_cameras_through_the_worker() {
    let worker = worker_binary();
    let output = Command::new(env!("CARGO_BIN_EXE_flowcloud-demo"))
        .args([
            "--cameras",
            "2",
            "--frames",
            "30",
            "--fps",
            "30",
            "--worker",
        ])
        .arg(&worker)
        .output()
        .expect("the demo binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // One table row per camera: name, frames sent, results, ...
    let rows: Vec<(u64, u64)> = stdout
        .lines()
        .filter(|line| line.starts_with("demo-camera-"))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let number = |i: usize| -> u64 {
                fields[i]
                    .parse()
                    .unwrap_or_else(|_| panic!("bad row {line:?}"))
            };
            (number(1), number(2))
        })
        .collect();
    assert_eq!(rows.len(), 2, "stdout:\n{stdout}");
    for (sent, results) in rows {
        assert_eq!(sent, 30, "stdout:\n{stdout}");
        assert!(results * 100 >= sent * 95, "stdout:\n{stdout}");
    }
    assert!(
        stdout.contains("PASS: 2/2 cameras got results for ≥ 95%"),
        "stdout:\n{stdout}"
    );
    assert!(stdout.contains("exited 0"), "stdout:\n{stdout}");
}
