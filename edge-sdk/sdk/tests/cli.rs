//! The `flowcloud-edge` binary streams to a (scripted) worker and reports what happened.

mod common;

use common::{Script, ScriptedReceiver, command};

#[test]
fn streams_the_pattern_and_prints_live_stats_and_a_summary() {
    let receiver = ScriptedReceiver::start("127.0.0.1:0".parse().unwrap(), Script::default());
    let output = command::binary(env!("CARGO_BIN_EXE_flowcloud-edge"))
        .args(["--server", &receiver.addr.to_string()])
        .args(["--cname", "cli-cam", "--width", "160", "--height", "120"])
        .args(["--fps", "30", "--frames", "45", "--stats-interval", "0.5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("connected to"), "{stdout}");
    let stats_lines = stdout
        .lines()
        .filter(|l| l.contains("capture→result p50"))
        .count();
    assert!(stats_lines >= 2, "{stdout}");
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("flowcloud-edge: 45 frames captured"),
        "{summary}"
    );
    let log = receiver.kill();
    assert_eq!(log[0].cname.as_deref(), Some("cli-cam"));
    // Every frame sent arrived and got a result (the first may precede the connection).
    let sent: usize = summary
        .split(", ")
        .find_map(|part| part.strip_suffix(" sent")?.parse().ok())
        .unwrap();
    assert!(sent >= 40, "{summary}");
    assert_eq!(log[0].units.len(), sent);
    assert!(summary.contains(&format!("{sent} results")), "{summary}");
}

#[test]
fn a_bad_source_is_a_clear_error() {
    let output = command::binary(env!("CARGO_BIN_EXE_flowcloud-edge"))
        .args(["--source", "webcam", "--frames", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown --source \"webcam\""), "{stderr}");
}

#[test]
fn streams_the_street_scene() {
    let receiver = ScriptedReceiver::start("127.0.0.1:0".parse().unwrap(), Script::default());
    let output = command::binary(env!("CARGO_BIN_EXE_flowcloud-edge"))
        .args(["--server", &receiver.addr.to_string()])
        .args(["--source", "scene:5", "--width", "160", "--height", "96"])
        .args(["--fps", "30", "--frames", "12"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("scene:5 160x96 I420"), "{stdout}");
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("flowcloud-edge: 12 frames captured"),
        "{summary}"
    );
    assert!(!receiver.kill()[0].units.is_empty());
}

#[test]
fn a_bad_scene_seed_is_a_clear_error() {
    let output = command::binary(env!("CARGO_BIN_EXE_flowcloud-edge"))
        .args(["--source", "scene:abc", "--frames", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the seed must be a whole number"),
        "{stderr}"
    );
}

#[test]
fn streams_a_y4m_file_to_its_end() {
    let receiver = ScriptedReceiver::start("127.0.0.1:0".parse().unwrap(), Script::default());
    let dir = std::env::temp_dir().join(format!("flowcloud-edge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clip.y4m");
    let (w, h) = (64usize, 48usize);
    let mut file = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for n in 0..12u8 {
        file.extend_from_slice(b"FRAME\n");
        file.extend((0..w * h * 3 / 2).map(|i| (i as u8).wrapping_mul(3).wrapping_add(n * 7)));
    }
    std::fs::write(&path, file).unwrap();
    let output = command::binary(env!("CARGO_BIN_EXE_flowcloud-edge"))
        .args(["--server", &receiver.addr.to_string()])
        .args(["--source", &format!("y4m:{}", path.display())])
        .args(["--fps", "30"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("64x48 I420"), "{stdout}");
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("flowcloud-edge: 12 frames captured"),
        "{summary}"
    );
    assert!(!receiver.kill()[0].units.is_empty());
}

#[test]
fn nvenc_without_the_driver_is_a_clear_error() {
    if std::path::Path::new("/usr/lib/x86_64-linux-gnu/libnvidia-encode.so.1").exists() {
        return;
    }
    let output = command::binary(env!("CARGO_BIN_EXE_flowcloud-edge"))
        .args([
            "--encoder",
            "nvenc",
            "--frames",
            "1",
            "--width",
            "64",
            "--height",
            "48",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NVENC not available"), "{stderr}");
    assert!(stderr.contains("libnvidia-encode.so.1"), "{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_v4l2_access_is_checked_and_reaches_the_encoder() {
    let run = |access: &str| {
        let output = command::binary(env!("CARGO_BIN_EXE_flowcloud-edge"))
            .args([
                "--encoder",
                "v4l2:/dev/flowcloud-no-such-encoder",
                "--frames",
                "1",
                "--width",
                "64",
                "--height",
                "48",
            ])
            .env("FLOWCLOUD_V4L2_ACCESS", access)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run("raw");
    assert!(
        stderr.contains("unknown --v4l2-access \"raw\": use kernel or libv4l2"),
        "{stderr}"
    );
    let stderr = run("kernel");
    assert!(
        stderr.contains("open on /dev/flowcloud-no-such-encoder: ENOENT"),
        "{stderr}"
    );
    // Through libv4l2: the same open error where the library is installed, else its name.
    let stderr = run("libv4l2");
    assert!(
        stderr.contains("open on /dev/flowcloud-no-such-encoder: ENOENT")
            || stderr.contains("libv4l2.so.0 could not be loaded"),
        "{stderr}"
    );
}
