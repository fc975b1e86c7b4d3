//! `flowcloud-worker eval` as a child process, against the official Cityscapes evaluation.
//!
//! A fixed set of 8 ground-truth and prediction label images (256×128, three cities) is written
//! in the Cityscapes layout. Their structure exercises every rule of the metrics: void ground
//! truth (`unlabeled`, `ego vehicle`, `static`, `parking`), void label ids predicted on valid
//! pixels, a class present but never predicted (`rider`), a class predicted but absent (`bus`),
//! a class predicted only on void pixels (`truck`, IoU NaN), classes neither present nor
//! predicted, and boundary errors from shifted predictions.
//!
//! - Parity: our per-class IoU, mIoU and confusion matrix equal those of `cityscapesScripts`'
//!   `evalPixelLevelSemanticLabeling` (the package `.ci/setup.sh` installs in `.venv`, run by
//!   `tests/cityscapes_official_eval.py`) exactly.
//! - The same predictions as train ids give the same metrics; a missing or broken prediction is
//!   an error naming the file.
//! - Model mode on `engines/tiny/tiny-seg.onnx`: the written predictions agree with an
//!   independent numpy + ONNX Runtime (Python) computation (`tests/model_reference.py`),
//!   re-evaluate to identical metrics in predictions mode, are found by `cityscapesScripts` with
//!   the same IoUs, and do not depend on the batch size.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use flowcloud_tests::temp_dir::TempDir;
use flowcloud_worker::classes::{LABELS, label_id_to_train_id};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowcloud-worker");
const TINY_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../engines/tiny/tiny-seg.onnx");
const OFFICIAL_EVAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/cityscapes_official_eval.py"
);
const MODEL_REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/model_reference.py");
const WIDTH: u32 = 256;
const HEIGHT: u32 = 128;
/// (city, sequence, frame) of the 8 images.
const FRAMES: [(&str, u32, u32); 8] = [
    ("aachen", 0, 19),
    ("aachen", 1, 19),
    ("aachen", 2, 7),
    ("bochum", 0, 1),
    ("bochum", 0, 2),
    ("bochum", 3, 100),
    ("cologne", 12, 19),
    ("cologne", 13, 19),
];

fn key(index: usize) -> String {
    let (city, seq, frame) = FRAMES[index];
    format!("{city}_{seq:06}_{frame:06}")
}

fn city(index: usize) -> &'static str {
    FRAMES[index].0
}

/// The ground truth of image `i`, Cityscapes label ids: sky, buildings with vegetation, a pole
/// and a traffic sign, sidewalk, road with a car, a person and a rider, the ego vehicle at the
/// bottom (void), and void patches (`unlabeled`, `static`, `parking`).
fn ground_truth(i: usize) -> Vec<u8> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut gt = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let inside = |x0: usize, x1: usize, y0: usize, y1: usize| {
                (x0..x1).contains(&x) && (y0..y1).contains(&y)
            };
            let mut id = match y {
                0..30 => 23,  // sky
                30..70 => 11, // building
                70..75 => 8,  // sidewalk
                75..118 => 7, // road
                _ => 1,       // ego vehicle (void)
            };
            if inside(20 * i, 20 * i + 40, 30, 70) {
                id = 21; // vegetation
            }
            if i < 4 && inside(200, 230, 40, 70) {
                id = 12; // wall
            }
            if inside(126, 128, 35, 75) {
                id = 17; // pole
            }
            if inside(120, 126, 35, 45) {
                id = 20; // traffic sign
            }
            if inside(40 + 8 * i, 90 + 8 * i, 80, 100) {
                id = 26; // car
            }
            if i.is_multiple_of(2) && inside(150, 158, 60, 100) {
                id = 24; // person
            }
            if i.is_multiple_of(3) && inside(170, 176, 65, 95) {
                id = 25; // rider
            }
            if inside(0, 10, 40, 60) {
                id = 0; // unlabeled
            }
            if inside(230, 240, 80, 90) {
                id = 4; // static
            }
            if inside(0, 30, 100, 110) {
                id = 9; // parking (void for the train classes)
            }
            gt[y * w + x] = id;
        }
    }
    gt
}

/// A prediction of image `i`: the ground truth shifted sideways by −1, 0 or 1 pixels, riders
/// taken for persons, a bus where there is none, a truck only on the (void) ego vehicle, and
/// about 5 % of the pixels replaced by a random label id (void ones included; not rider, truck,
/// bus or train).
fn prediction(i: usize, gt: &[u8]) -> Vec<u8> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut state = 0x9e37_79b9_u32 ^ (i as u32).wrapping_mul(0x85eb_ca6b);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let dx = i as isize % 3 - 1;
    let mut pred = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let sx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
            let mut id = gt[y * w + sx];
            if id == 25 {
                id = 24; // rider → person
            }
            if (100..130).contains(&x) && (100..110).contains(&y) {
                id = 28; // bus, absent from the ground truth
            }
            if x < 50 && y >= 118 {
                id = 27; // truck, only on void ground truth
            }
            if next() % 20 == 0 {
                // Any label id but those whose cases above must stay clean.
                id = match (next() % 34) as u8 {
                    25 | 27 | 28 | 31 => 0,
                    other => other,
                };
            }
            pred[y * w + x] = id;
        }
    }
    pred
}

/// A camera image for image `i`: each class's Cityscapes colour with a gradient and noise.
fn camera_image(i: usize, gt: &[u8]) -> Vec<u8> {
    let mut state = 0x1234_5678_u32 + i as u32;
    let mut rgb = Vec::with_capacity(gt.len() * 3);
    for (p, &id) in gt.iter().enumerate() {
        let x = (p % WIDTH as usize) as u32;
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 32) as u8;
        for c in LABELS[usize::from(id)].color {
            rgb.push(c.saturating_add(noise).saturating_sub((x / 16) as u8));
        }
    }
    rgb
}

fn write_png(path: &Path, color: png::ColorType, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
}

/// The dataset: `root/gtFine/val/…`, `root/leftImg8bit/val/…`, and the predictions as label
/// ids under `labels/` and as train ids under `train/` (each with one extra file that matches
/// no ground truth).
struct Dataset {
    dir: TempDir,
}

impl Dataset {
    fn new() -> Self {
        let dir = TempDir::new("eval-data");
        let root = dir.path();
        for i in 0..FRAMES.len() {
            let (key, city) = (key(i), city(i));
            let gt = ground_truth(i);
            let pred = prediction(i, &gt);
            write_png(
                &root.join(format!("gtFine/val/{city}/{key}_gtFine_labelIds.png")),
                png::ColorType::Grayscale,
                &gt,
            );
            write_png(
                &root.join(format!("leftImg8bit/val/{city}/{key}_leftImg8bit.png")),
                png::ColorType::Rgb,
                &camera_image(i, &gt),
            );
            write_png(
                &root.join(format!("labels/{city}/{key}_labelIds.png")),
                png::ColorType::Grayscale,
                &pred,
            );
            let train: Vec<u8> = pred.iter().map(|&id| label_id_to_train_id(id)).collect();
            write_png(
                &root.join(format!("train/{key}_trainIds.png")),
                png::ColorType::Grayscale,
                &train,
            );
        }
        let extra = vec![7u8; (WIDTH * HEIGHT) as usize];
        for name in [
            "labels/other/other_000000_000001_labelIds.png",
            "train/other_000000_000001_trainIds.png",
        ] {
            write_png(&root.join(name), png::ColorType::Grayscale, &extra);
        }
        Self { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Runs `flowcloud-worker eval` with `args` and `--json`; returns the JSON and standard output.
fn eval(args: &[&str], json_dir: &Path) -> (Value, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let json = json_dir.join(format!(
        "report-{}.json",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut all: Vec<&std::ffi::OsStr> = vec!["eval".as_ref()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    all.extend(["--json".as_ref(), json.as_os_str(), "--quiet".as_ref()]);
    let out = run(&all);
    assert!(
        out.status.success(),
        "flowcloud-worker eval {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (value, String::from_utf8(out.stdout).unwrap())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's Python with `cityscapesscripts`; a clear failure without them.
fn python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} not found: the evaluation parity tests need the Python environment with \
         cityscapesscripts; run .ci/setup.sh (or .ci/python-env.sh) first",
        python.display()
    );
    let check = Command::new(&python)
        .args(["-c", "import cityscapesscripts, onnxruntime, PIL"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{} cannot import cityscapesscripts/onnxruntime: run .ci/setup.sh (or .ci/python-env.sh) \
         to install the pinned packages:\n{}",
        python.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

/// `cityscapesScripts`' evaluation of the predictions below `results` (its `result` object).
fn official(dataset: &Path, results: &Path) -> Value {
    let out = Command::new(python())
        .arg(OFFICIAL_EVAL)
        .arg("val")
        .env("CITYSCAPES_DATASET", dataset)
        .env("CITYSCAPES_RESULTS", results)
        .env_remove("CITYSCAPES_EXPORT_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the official evaluation failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["images"], FRAMES.len());
    value["result"].clone()
}

/// A number of a report, NaN for `null`.
fn number(v: &Value) -> f64 {
    if v.is_null() {
        f64::NAN
    } else {
        v.as_f64().unwrap()
    }
}

/// Equal, NaN included (bit for bit: both are the same f64 divisions and sums).
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Asserts our report equals the official result: every class's IoU, the mIoU, and the
/// confusion matrix (theirs is over the 34 label ids; collapsed to train ids and void).
fn assert_parity(ours: &Value, theirs: &Value) {
    let scores = &theirs["classScores"];
    let per_class = ours["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 19);
    for class in per_class {
        let name = class["name"].as_str().unwrap();
        let (a, b) = (number(&class["iou"]), number(&scores[name]));
        assert!(same(a, b), "IoU of {name}: ours {a}, cityscapesScripts {b}");
    }
    // The label ids without a train id have no score in either.
    for label in LABELS.iter().filter(|l| l.train_id == 255) {
        assert!(scores[label.name].is_null(), "{}", label.name);
    }
    let (a, b) = (
        number(&ours["miou"]),
        number(&theirs["averageScoreClasses"]),
    );
    assert!(same(a, b), "mIoU: ours {a}, cityscapesScripts {b}");

    let mut collapsed = vec![vec![0u64; 20]; 20];
    let train = |id: usize| {
        let t = label_id_to_train_id(u8::try_from(id).unwrap());
        if t == 255 { 19 } else { usize::from(t) }
    };
    for (g, row) in theirs["confMatrix"].as_array().unwrap().iter().enumerate() {
        for (p, count) in row.as_array().unwrap().iter().enumerate() {
            collapsed[train(g)][train(p)] += count.as_u64().unwrap();
        }
    }
    let ours_matrix: Vec<Vec<u64>> = ours["confusion_matrix"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(ours_matrix, collapsed, "confusion matrices differ");
}

#[test]
fn predictions_match_the_official_cityscapes_evaluation() {
    let data = Dataset::new();
    let root = data.root();
    let labels = root.join("labels");
    let (ours, table) = eval(
        &[
            "--gt",
            root.to_str().unwrap(),
            "--predictions",
            labels.to_str().unwrap(),
        ],
        root,
    );
    let theirs = official(root, &labels);
    assert_parity(&ours, &theirs);

    // The data set does what it is meant to: the cases the metrics must handle all occur.
    let class = |name: &str| {
        ours["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        number(&class("rider")["iou"]),
        0.0,
        "present, never predicted"
    );
    assert_eq!(number(&class("bus")["iou"]), 0.0, "predicted, absent");
    assert!(class("truck")["iou"].is_null(), "predicted on void only");
    assert!(class("truck")["predicted_pixels"] == 0);
    assert!(class("train")["iou"].is_null(), "neither");
    assert!(number(&class("road")["iou"]) > 0.8);
    assert_eq!(ours["images"], 8);
    assert_eq!(ours["unmatched_predictions"], 1);
    assert_eq!(ours["total_pixels"], 8 * WIDTH * HEIGHT);
    let void = ours["void_pixels"].as_u64().unwrap();
    assert!(void > 0 && ours["background"]["true_positives"].as_u64().unwrap() > 0);
    assert!(ours["miou_classes"].as_u64().unwrap() < 19);
    assert!(number(&ours["miou_present"]) > number(&ours["miou"]));
    assert!(table.contains("mIoU (Cityscapes)"), "{table}");
    assert!(table.contains("rider"), "{table}");

    // The same predictions as train ids: the same numbers.
    let (as_train_ids, _) = eval(
        &[
            "--gt",
            root.to_str().unwrap(),
            "--predictions",
            root.join("train").to_str().unwrap(),
            "--prediction-format",
            "trainIds",
        ],
        root,
    );
    for field in ["per_class", "miou", "confusion_matrix", "pixel_accuracy"] {
        assert_eq!(as_train_ids[field], ours[field], "{field}");
    }

    // Over the 34 label ids: every pixel is counted, nothing is void.
    let (label_ids, _) = eval(
        &[
            "--gt",
            root.to_str().unwrap(),
            "--predictions",
            labels.to_str().unwrap(),
            "--classes",
            "labels",
        ],
        root,
    );
    assert_eq!(label_ids["per_class"].as_array().unwrap().len(), 34);
    assert_eq!(label_ids["void_pixels"], 0);
    assert_eq!(label_ids["evaluated_pixels"], ours["total_pixels"]);
}

#[test]
fn missing_or_broken_predictions_name_the_file() {
    let data = Dataset::new();
    let root = data.root();
    let labels = root.join("labels");
    let gt_dir = root.join("gtFine/val/bochum");
    let missing = labels.join("bochum/bochum_000000_000002_labelIds.png");
    std::fs::remove_file(&missing).unwrap();
    let args: Vec<&std::ffi::OsStr> = vec![
        "eval".as_ref(),
        "--gt".as_ref(),
        root.as_os_str(),
        "--predictions".as_ref(),
        labels.as_os_str(),
    ];
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let gt = gt_dir.join("bochum_000000_000002_gtFine_labelIds.png");
    assert!(
        stderr.contains(&format!("no prediction for {}", gt.display())),
        "{stderr}"
    );

    std::fs::write(&missing, b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");

    // A prediction of another size.
    png_of_size(&missing, 8, 8);
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is 8×8, its ground truth"), "{stderr}");
}

fn png_of_size(path: &Path, width: u32, height: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    let mut writer = encoder.write_header().unwrap();
    writer
        .write_image_data(&vec![7; (width * height) as usize])
        .unwrap();
    writer.finish().unwrap();
}

#[test]
fn model_predictions_are_right_and_re_evaluate_identically() {
    let data = Dataset::new();
    let root = data.root();
    let written = root.join("written");
    let written_b1 = root.join("written-b1");
    let (model, _) = eval(
        &[
            "--gt",
            root.to_str().unwrap(),
            "--model",
            TINY_MODEL,
            "--write-predictions",
            written.to_str().unwrap(),
            "--batch-size",
            "3",
            "--model-threads",
            "1",
        ],
        root,
    );
    assert_eq!(model["mode"], "model");
    assert_eq!(model["model"], "tiny-seg");
    assert_eq!(model["images"], 8);

    // An independent computation (numpy and ONNX Runtime's Python API) of the class maps.
    let out = Command::new(python())
        .args([MODEL_REFERENCE, TINY_MODEL])
        .arg(root.join("leftImg8bit/val"))
        .arg(&written)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "model_reference.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reference["images"], 8);
    let pixels = reference["pixels"].as_u64().unwrap();
    let agreeing = reference["agreeing"].as_u64().unwrap();
    assert_eq!(pixels, 8 * u64::from(WIDTH * HEIGHT));
    // Only near-ties of two logits may differ (float32 in Rust, float64 in numpy).
    assert!(
        agreeing * 1000 >= pixels * 999,
        "only {agreeing} of {pixels} pixels agree with the numpy reference"
    );

    // The written predictions, evaluated from disk: the very same numbers.
    let (again, _) = eval(
        &[
            "--gt",
            root.to_str().unwrap(),
            "--predictions",
            written.to_str().unwrap(),
        ],
        root,
    );
    for field in [
        "per_class",
        "background",
        "confusion_matrix",
        "miou",
        "miou_with_background",
        "miou_present",
        "pixel_accuracy",
        "mean_accuracy",
        "total_pixels",
    ] {
        assert_eq!(again[field], model[field], "{field}");
    }
    // cityscapesScripts finds the written files by their names and agrees.
    assert_parity(&model, &official(root, &written));

    // One image per inference writes the same files.
    eval(
        &[
            "--gt",
            root.to_str().unwrap(),
            "--model",
            TINY_MODEL,
            "--write-predictions",
            written_b1.to_str().unwrap(),
            "--model-threads",
            "1",
        ],
        root,
    );
    for i in 0..FRAMES.len() {
        let name = format!("{}/{}_labelIds.png", city(i), key(i));
        assert_eq!(
            std::fs::read(written.join(&name)).unwrap(),
            std::fs::read(written_b1.join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn eval_is_a_subcommand_that_conflicts_with_worker_flags() {
    let out = run(&["eval".as_ref(), "--help".as_ref()]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in [
        "--gt",
        "--split",
        "--predictions",
        "--prediction-format",
        "--model",
        "--images",
        "--write-predictions",
        "--batch-size",
        "--model-threads",
        "--classes",
        "--json",
        "--print-confusion",
        "--max-image-side",
        "--quiet",
    ] {
        assert!(
            help.contains(flag),
            "{flag} missing from eval --help:\n{help}"
        );
    }
    let out = run(&["--help".as_ref()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("eval"));
    for bad in [
        &[
            "--max-batch",
            "2",
            "eval",
            "--gt",
            "/x",
            "--predictions",
            "/y",
        ][..],
        &["eval", "--gt", "/x"],
        &["eval", "--gt", "/x", "--predictions", "/y", "--model", "/m"],
        &[
            "eval",
            "--gt",
            "/x",
            "--predictions",
            "/y",
            "--batch-size",
            "2",
        ],
        &["eval", "--gt", "/x", "--model", "/m", "--batch-size", "0"],
    ] {
        let args: Vec<&std::ffi::OsStr> = bad.iter().map(std::ffi::OsStr::new).collect();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
