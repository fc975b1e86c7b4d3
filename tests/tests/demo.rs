//! Runs the main demo end to end: two simulated cameras stream openh264-encoded street scenes
//! into a real `flowcloud-worker` child process (the demo model) and must get results back for
//! ≥ 95% of their frames; the worker must exit 0 on SIGTERM.

use std::process::Command;

mod common;

#[test]
fn demo_streams_two_cameras_through_the_worker() {
    let worker = common::built_binary("flowcloud-worker", "flowcloud-worker");
    let out = common::TempDir::new("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_flowcloud-demo"))
        .args([
            "--cameras",
            "2",
            "--frames",
            "30",
            // 5 fps: the test checks that every camera gets its results, not the capacity of a
            // loaded 2-core CI machine (at 10 fps the demo model's ~37 ms inference fills most
            // of both cores, and a busy moment drops frames as the worker's queue policy says).
            "--fps",
            "5",
            "--worker",
        ])
        .arg(&worker)
        .arg("--out")
        .arg(out.path())
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
    // The worker stored an overlay per frame for each camera.
    for camera in ["demo-camera-0", "demo-camera-1"] {
        let overlays = std::fs::read_dir(out.path().join(camera))
            .unwrap_or_else(|e| panic!("{camera}: no stored results: {e}"))
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with("_overlay.png"))
            })
            .count();
        assert!(overlays >= 28, "{camera}: {overlays} overlays");
    }
}
