//! The demo model's accuracy, directly and after the whole path: fresh synthetic street frames
//! (a world no training or validation scene came from) are evaluated
//!
//! - directly: `flowcloud-worker eval` runs the model over the rendered RGB frames;
//! - end to end: `flowcloud-demo` streams the same frames through openh264 at the edge SDK's
//!   default bitrate, RTP over TCP, the worker's openh264 decoder and ONNX Runtime, and scores
//!   the full-resolution class maps that come back.
//!
//! The end-to-end figure must be within 0.03 of the direct one: a colour-conversion, resize or
//! packet-loss bug shows up as lost mIoU. Both must reach the target, 0.75 over the classes
//! present. The committed demo model gives 0.794 directly and 0.770 end to end on this sample
//! (and 0.824 directly on 200 single-frame streets; `engines/demo/README.md`).

use std::path::Path;
use std::process::Command;

mod common;

/// A world the demo model never saw (training used 101, validation 202).
const WORLD: &str = "7";
/// Twenty streets of three frames: many streets, so that rare classes are not one street's luck.
const STREETS: &str = "20";
const FRAMES_PER_STREET: &str = "3";
const FRAMES: &str = "60";
const FPS: &str = "10";
/// The target, over the classes present.
const MIN_MIOU: f64 = 0.75;
const MAX_GAP: f64 = 0.03;

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn demo_model_is_accurate_directly_and_after_encode_network_decode() {
    let scenes = common::built_binary("flowcloud-edge", "flowcloud-scenes");
    let worker = common::built_binary("flowcloud-worker", "flowcloud-worker");
    let model = repo_root().join("engines/demo/street-demo.onnx");
    let dir = common::TempDir::new("demo-accuracy");
    let data = dir.path().join("data");

    // The frames camera 0 of the demo films: world WORLD, STREETS streets of FRAMES_PER_STREET
    // consecutive frames at FPS.
    run(Command::new(&scenes)
        .arg("--out")
        .arg(&data)
        .args(["--split", "val", "--seed", WORLD, "--sequences", STREETS])
        .args(["--frames-per-sequence", FRAMES_PER_STREET])
        .args(["--frame-step", "1", "--fps", FPS]));
    let direct_json = dir.path().join("direct.json");
    run(Command::new(&worker)
        .arg("eval")
        .arg("--model")
        .arg(&model)
        .arg("--gt")
        .arg(&data)
        .arg("--json")
        .arg(&direct_json)
        .arg("-q"));
    let direct = json(&direct_json);
    assert_eq!(direct["images"], 60, "{direct}");
    let direct_miou = direct["miou_present"].as_f64().expect("miou_present");

    let e2e_json = dir.path().join("e2e.json");
    let stdout = run(Command::new(env!("CARGO_BIN_EXE_flowcloud-demo"))
        .args(["--cameras", "1", "--frames", FRAMES, "--fps", FPS])
        .args([
            "--scene-seed",
            WORLD,
            "--frames-per-street",
            FRAMES_PER_STREET,
        ])
        .arg("--model")
        .arg(&model)
        .arg("--worker")
        .arg(&worker)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--json")
        .arg(&e2e_json));
    let e2e = json(&e2e_json);
    let results = e2e["results"].as_u64().expect("results");
    assert!(results >= 57, "only {results} of 60 results\n{stdout}");
    let e2e_miou = e2e["accuracy"]["miou_present"]
        .as_f64()
        .expect("accuracy.miou_present");

    println!("direct mIoU {direct_miou:.4}, end-to-end mIoU {e2e_miou:.4} ({results} frames)");
    assert!(
        direct_miou >= MIN_MIOU,
        "direct mIoU {direct_miou:.4} < {MIN_MIOU}"
    );
    assert!(
        e2e_miou >= MIN_MIOU,
        "end-to-end mIoU {e2e_miou:.4} < {MIN_MIOU}\n{stdout}"
    );
    assert!(
        (direct_miou - e2e_miou).abs() <= MAX_GAP,
        "end-to-end mIoU {e2e_miou:.4} is not within {MAX_GAP} of the direct {direct_miou:.4}\n{stdout}"
    );
}
