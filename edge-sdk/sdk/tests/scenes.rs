//! The `flowcloud-scenes` data set writer: file layout, and label maps that decode back to
//! exactly the renderer's labels.
// The helpers below are test code too; a failure should panic where it happens.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

#[path = "common/command.rs"]
mod command;

use flowcloud_edge::capture::scene::{SceneClass, SceneConfig, StreetScene};

/// A fresh folder under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("flowcloud-scenes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scenes(args: &[&str]) -> std::process::Output {
    command::binary(env!("CARGO_BIN_EXE_flowcloud-scenes"))
        .args(args)
        .output()
        .unwrap()
}

fn decode(path: &Path) -> (png::OutputInfo, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut data).unwrap();
    data.truncate(info.buffer_size());
    (info, data)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_a_cityscapes_layout_whose_labels_are_the_renderer_s() {
    let tmp = TempDir::new("layout");
    let out = tmp.0.to_str().unwrap();
    let output = scenes(&[
        "--out",
        out,
        "--split",
        "val",
        "--sequences",
        "3",
        "--first-sequence",
        "4",
        "--frames-per-sequence",
        "2",
        "--frame-step",
        "7",
        "--width",
        "96",
        "--height",
        "64",
        "--seed",
        "17",
        "--color",
        "--threads",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("flowcloud-scenes: wrote 6 frames (3 sequences × 2) of 96x64"),
        "{stdout}"
    );
    assert!(stdout.contains("road "), "{stdout}");

    let stems: Vec<String> = (4..7)
        .flat_map(|s| [0, 7].map(|f| format!("synth_{s:06}_{f:06}")))
        .collect();
    let images = tmp.0.join("leftImg8bit/val/synth");
    let labels = tmp.0.join("gtFine/val/synth");
    let mut want: Vec<String> = stems
        .iter()
        .map(|s| format!("{s}_leftImg8bit.png"))
        .collect();
    want.sort();
    assert_eq!(files(&images), want);
    let mut want: Vec<String> = stems
        .iter()
        .flat_map(|s| {
            [
                format!("{s}_gtFine_color.png"),
                format!("{s}_gtFine_labelIds.png"),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(files(&labels), want);

    // Frame 7 of sequence 5 is frame index 5 × (2 × 7) + 7 of the same world.
    let config = SceneConfig {
        frames_per_sequence: 14,
        ..SceneConfig::new(96, 64, 17)
    };
    let mut scene = StreetScene::new(config).unwrap();
    let mut rgb = vec![0; config.rgb_len()];
    let mut ids = vec![0; config.labels_len()];
    scene
        .render(config.frame_index(5, 7), &mut rgb, &mut ids)
        .unwrap();

    let (info, data) = decode(&labels.join("synth_000005_000007_gtFine_labelIds.png"));
    assert_eq!((info.width, info.height), (96, 64));
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Grayscale, png::BitDepth::Eight)
    );
    assert_eq!(data, ids);
    let mut only_labels = vec![0; config.labels_len()];
    scene
        .render_labels(config.frame_index(5, 7), &mut only_labels)
        .unwrap();
    assert_eq!(data, only_labels);

    let (info, data) = decode(&images.join("synth_000005_000007_leftImg8bit.png"));
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight)
    );
    assert_eq!(data, rgb);

    let (_, colours) = decode(&labels.join("synth_000005_000007_gtFine_color.png"));
    for (pixel, &id) in colours.chunks_exact(3).zip(&ids) {
        assert_eq!(pixel, SceneClass::from_label_id(id).unwrap().color());
    }
}

#[test]
fn one_thread_writes_the_same_bytes_as_two() {
    let (a, b) = (TempDir::new("one"), TempDir::new("two"));
    for (dir, threads) in [(&a, "1"), (&b, "2")] {
        let output = scenes(&[
            "--out",
            dir.0.to_str().unwrap(),
            "--sequences",
            "2",
            "--frames-per-sequence",
            "1",
            "--width",
            "64",
            "--height",
            "32",
            "--threads",
            threads,
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for sub in ["leftImg8bit/train/synth", "gtFine/train/synth"] {
        let names = files(&a.0.join(sub));
        assert_eq!(names.len(), 2);
        assert_eq!(names, files(&b.0.join(sub)));
        for name in names {
            assert_eq!(
                std::fs::read(a.0.join(sub).join(&name)).unwrap(),
                std::fs::read(b.0.join(sub).join(&name)).unwrap()
            );
        }
    }
}

/// Peak signal-to-noise ratio of two 8-bit pictures, dB.
#[cfg(feature = "openh264")]
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    10.0 * (255.0f64.powi(2) / (se / a.len() as f64)).log10()
}

#[cfg(feature = "openh264")]
#[test]
fn camera_codec_frames_are_the_same_streets_through_openh264() {
    let tmp = TempDir::new("codec");
    let out = tmp.0.to_str().unwrap();
    let common = [
        "--out",
        out,
        "--sequences",
        "2",
        "--frames-per-sequence",
        "3",
        "--frame-step",
        "2",
        "--width",
        "160",
        "--height",
        "96",
        "--fps",
        "10",
        "--threads",
        "1",
    ];
    let run = |extra: &[&str]| {
        let output = scenes(&[&common[..], extra].concat());
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    run(&[]);
    let stdout = run(&["--through-camera-codec", "--city", "h264"]);
    assert!(stdout.contains("through the camera codec"), "{stdout}");

    let stems: Vec<String> = (0..2)
        .flat_map(|s| [0, 2, 4].map(|f| format!("{s:06}_{f:06}")))
        .collect();
    let mut want: Vec<String> = stems
        .iter()
        .map(|s| format!("h264_{s}_leftImg8bit.png"))
        .collect();
    want.sort();
    assert_eq!(files(&tmp.0.join("leftImg8bit/train/h264")), want);
    for stem in &stems {
        let path = |tree: &str, city: &str, kind: &str| {
            tmp.0
                .join(format!("{tree}/train/{city}/{city}_{stem}_{kind}.png"))
        };
        // Labels are the renderer's, untouched.
        assert_eq!(
            std::fs::read(path("gtFine", "h264", "gtFine_labelIds")).unwrap(),
            std::fs::read(path("gtFine", "synth", "gtFine_labelIds")).unwrap(),
            "{stem}"
        );
        // The picture went through 4:2:0 and a lossy encoder: close to the rendered one,
        // not equal to it.
        let (info, codec) = decode(&path("leftImg8bit", "h264", "leftImg8bit"));
        assert_eq!((info.width, info.height), (160, 96));
        let (_, rendered) = decode(&path("leftImg8bit", "synth", "leftImg8bit"));
        let db = psnr(&codec, &rendered);
        assert!(codec != rendered, "{stem}: unchanged by the codec");
        assert!((20.0..50.0).contains(&db), "{stem}: PSNR {db:.1} dB");
    }

    // The same arguments write the same bytes.
    let again = TempDir::new("codec-again");
    let mut args = common.to_vec();
    args[1] = again.0.to_str().unwrap();
    args.extend(["--through-camera-codec", "--city", "h264"]);
    assert!(scenes(&args).status.success());
    for name in files(&tmp.0.join("leftImg8bit/train/h264")) {
        assert_eq!(
            std::fs::read(tmp.0.join("leftImg8bit/train/h264").join(&name)).unwrap(),
            std::fs::read(again.0.join("leftImg8bit/train/h264").join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let tmp = TempDir::new("bad");
    let out = tmp.0.to_str().unwrap();
    let output = scenes(&["--out", out, "--width", "33"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scene size 33x320 is invalid"), "{stderr}");
    let output = scenes(&["--out", out, "--frame-step", "0"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--frame-step"));
    let output = scenes(&["--out", out, "--split", "holdout"]);
    assert!(!output.status.success());
    let output = scenes(&["--out", out, "--city", "a_b"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("letters and digits"));
}

#[test]
fn help_documents_every_flag() {
    let output = scenes(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--out",
        "--split",
        "--sequences",
        "--first-sequence",
        "--frames-per-sequence",
        "--frame-step",
        "--width",
        "--height",
        "--seed",
        "--fps",
        "--color",
        "--through-camera-codec",
        "--city",
        "--threads",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        help.contains("leftImg8bit") && help.contains("gtFine_labelIds"),
        "{help}"
    );
}
