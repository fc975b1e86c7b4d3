//! Runs the loopback demo binary end to end (encode, packetize, TCP, depacketize, decode).

use std::process::Command;

/// The number on the demo's result line that starts with `label`.
fn count(stdout: &str, label: &str) -> Option<u64> {
    let line = stdout.lines().find(|line| line.starts_with(label))?;
    line[label.len()..].split_whitespace().next()?.parse().ok()
}

#[test]
fn loopback_demo_sends_receives_and_decodes_30_frames() {
    let output = Command::new(env!("CARGO_BIN_EXE_flowcloud-loopback"))
        .args([
            "--frames", "30", "--fps", "0", "--width", "320", "--height", "240",
        ])
        .output()
        .expect("the demo binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert_eq!(count(&stdout, "frames sent"), Some(30), "stdout:\n{stdout}");
    assert_eq!(
        count(&stdout, "frames received"),
        Some(30),
        "stdout:\n{stdout}"
    );
    assert_eq!(
        count(&stdout, "frames decoded"),
        Some(30),
        "stdout:\n{stdout}"
    );
    assert!(stdout.contains("PASS: 30/30"), "stdout:\n{stdout}");
    assert!(stdout.contains("(320x240)"), "stdout:\n{stdout}");
}
