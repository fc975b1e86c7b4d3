//! The worker's CPU path against DESIGN.md's "Performance targets", measured side by side in one
//! process on one machine:
//!
//! 1. **Inference**: [`OnnxRuntimeEngine`] against ONNX Runtime's own Python API
//!    (`engines/bench_onnxruntime.py`, run with the repository's `.venv`) on the same model,
//!    the same input and the same session settings; target ours/Python ≤ 1.1 (medians).
//! 2. **Whole frame**: a 1280×720 H.264 stream (the synthetic street scene, as a camera driving
//!    along it films it, encoded here with openh264) through decode → preprocess → inference →
//!    post (upsample + argmax to the frame size, histogram, 64-wide class map), as the inference
//!    thread of `pipeline.rs` does it; target: everything but inference ≤ 10 % of the frame
//!    time. For information it also times post-processing with the class map at the model's
//!    logit resolution.
//!
//! Models:
//! - `engines/tiny/tiny-seg.onnx` (128×128, the CI fixture) and `tiny-seg-520.onnx` (the same
//!   DeepLabV3-shaped network at 520×520);
//! - `engines/demo/street-demo.onnx` (640×320, the demo model: trained, so its class maps have
//!   the structure of real ones, which post-processing's speed depends on);
//! - DeepLabV3-ResNet50 (the deployed graph, seeded random weights: the same work per frame as
//!   trained ones) at 128×128 and 520×520, exported by `just bench-models` into
//!   `engines/build/bench/`.
//!
//! ```text
//! just bench-models                                           # once: export DeepLabV3-ResNet50
//! cargo bench -p flowcloud-worker --bench pipeline            # the real run (a few minutes)
//! cargo bench -p flowcloud-worker --bench pipeline -- --test  # smoke test: tiny counts, 128 only
//! ```
//!
//! Each model's run counts follow from its speed (about ten seconds per side and round), so the
//! 2-second DeepLabV3-ResNet50 at 520×520 gets a handful of runs and the tiny model a thousand.
//!
//! As with criterion, the binary run without `--bench` (which `cargo bench` passes), as
//! `cargo test --all-targets` runs it, does the smoke test too. With the smoke test and without
//! `.venv` (or without the exported DeepLabV3-ResNet50), the Python baseline (or that model) is
//! skipped, unless `CI` is set (then either missing fails the run). Results of a real run are in
//! `cloud-worker/BENCHMARKS.md`.
#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::{
    hint::black_box,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};
use flowcloud_edge::capture::{
    CaptureSource,
    scene::{SceneConfig, SceneSource},
};
use flowcloud_worker::{
    decode::{DecodeOutcome, Decoder, DecoderConfig, OpenH264Decoder},
    engine::{
        Engine, InputBatch, ModelManifest,
        onnxruntime::{OnnxRuntimeEngine, OnnxRuntimeOptions, loaded_library},
    },
    frame::I420Frame,
    post,
    preprocess::{PreprocessParams, Preprocessor},
};
use openh264::{
    OpenH264API,
    encoder::{
        BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, UsageType,
    },
    formats::YUVBuffer,
};

/// The frame size of the whole-frame measurement.
const FRAME_W: usize = 1280;
const FRAME_H: usize = 720;
/// The bit rate of the synthetic stream (a typical 720p30 camera setting).
const BITRATE_BPS: u32 = 4_000_000;
/// Width of the class map sent back with each result (`PipelineConfig::class_map_width`).
const CLASS_MAP_WIDTH: usize = 64;
/// DESIGN.md's targets.
const RATIO_TARGET: f64 = 1.1;
const OUTSIDE_TARGET: f64 = 0.10;

/// How much to measure.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Alternating rounds of (Python, ours); samples of all rounds are pooled.
    rounds: usize,
    /// Frames in the synthetic stream.
    frames: usize,
    /// Untimed passes over the stream, then timed ones.
    warm_passes: usize,
    timed_passes: usize,
    smoke: bool,
}

impl Plan {
    /// Time to spend per side and round on inference, and on a model's timed whole-frame
    /// passes, in ms.
    const INFER_BUDGET_MS: f64 = 10_000.0;
    const FRAME_BUDGET_MS: f64 = 30_000.0;

    /// Warm-up and timed inference runs per round for a model whose one run takes `run_ms`.
    fn infer_counts(&self, run_ms: f64) -> (usize, usize) {
        if self.smoke {
            return (2, 5);
        }
        let timed = clamp_count(Self::INFER_BUDGET_MS / run_ms, 5, 1000);
        (clamp_count(as_f64(timed) / 20.0, 2, 50), timed)
    }

    /// How many frames of the stream a model whose inference takes `run_ms` goes through.
    fn frames_for(&self, run_ms: f64) -> usize {
        if self.smoke {
            return self.frames;
        }
        let per_pass = Self::FRAME_BUDGET_MS / as_f64(self.timed_passes);
        clamp_count(per_pass / run_ms, 10, self.frames)
    }
}

/// `n` rounded to a count in `min..=max`.
fn clamp_count(n: f64, min: usize, max: usize) -> usize {
    if n.is_nan() || n < as_f64(min) {
        min
    } else if n > as_f64(max) {
        max
    } else {
        // In range: the cast is exact after rounding.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        {
            n.round() as usize
        }
    }
}

/// One model to measure.
struct Model {
    path: PathBuf,
    label: &'static str,
}

/// Where `just bench-models` writes DeepLabV3-ResNet50 at `side`×`side`.
fn deeplab_path(root: &Path, side: u32) -> PathBuf {
    root.join(format!(
        "engines/build/bench/deeplabv3-resnet50-{side}.onnx"
    ))
}

fn main() -> Result<()> {
    // As criterion does: `cargo bench` passes `--bench` and gets the real run; `--test`, or no
    // `--bench` (`cargo test --benches` / `--all-targets` runs the binary without it), gets the
    // smoke test. Anything else (filters, criterion flags) is ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let plan = if smoke {
        Plan {
            rounds: 1,
            frames: 4,
            warm_passes: 0,
            timed_passes: 1,
            smoke,
        }
    } else {
        Plan {
            rounds: 3,
            frames: 90,
            warm_passes: 1,
            timed_passes: 2,
            smoke,
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the crate has no parent directory")?
        .to_path_buf();
    let tiny = root.join("engines/tiny");
    let mut models = vec![Model {
        path: tiny.join("tiny-seg.onnx"),
        label: "tiny-seg",
    }];
    if !smoke {
        models.push(Model {
            path: tiny.join("tiny-seg-520.onnx"),
            label: "tiny-seg-520",
        });
        models.push(Model {
            path: root.join("engines/demo/street-demo.onnx"),
            label: "street-demo",
        });
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    for (side, label) in [(128, "deeplabv3-r50-128"), (520, "deeplabv3-r50-520")] {
        if smoke && side > 128 {
            continue;
        }
        let path = deeplab_path(&root, side);
        if !path.exists() {
            if smoke && !ci {
                println!(
                    "note: {} not found, DeepLabV3-ResNet50 is skipped (run `just bench-models`)",
                    path.display()
                );
                continue;
            }
            bail!(
                "{} not found: run `just bench-models` to export DeepLabV3-ResNet50{}",
                path.display(),
                if ci {
                    " (CI is set, so it is required)"
                } else {
                    ""
                }
            );
        }
        models.push(Model { path, label });
    }

    let python = python_baseline(&root, smoke)?;
    let options = OnnxRuntimeOptions::default();
    let threads = options.resolved_intra_op_threads();
    let spinning = match options.intra_op_spinning {
        None => "default",
        Some(true) => "on",
        Some(false) => "off",
    };
    let load_before = load_average();

    println!(
        "FlowCloud worker CPU path{}",
        if smoke {
            " (smoke test: counts too small to judge the targets)"
        } else {
            ""
        }
    );
    println!(
        "machine: {} CPUs available, load average {load_before} at start",
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    );

    let stream = encode_stream(plan.frames).context("encoding the street scene")?;
    let stream_bytes: usize = stream.iter().map(Vec::len).sum();

    let mut infer_rows = Vec::new();
    let mut frame_rows = Vec::new();
    for model in &models {
        let mut engine = OnnxRuntimeEngine::load(&model.path, &options)
            .with_context(|| format!("loading {}", model.path.display()))?;
        let manifest = engine.manifest().clone();
        if infer_rows.is_empty() {
            println!(
                "onnxruntime: {} (Python onnxruntime {}); session: {threads} intra-op threads, \
                 spinning {spinning}, ORT_ENABLE_ALL, sequential, CPU EP, batch 1",
                loaded_library().map_or_else(|| "?".to_owned(), |p| p.display().to_string()),
                python
                    .as_ref()
                    .map_or("skipped", |p| p.version.as_deref().unwrap_or("?")),
            );
        }
        let row = compare_inference(
            &mut engine,
            model,
            python.as_ref(),
            threads,
            spinning,
            &plan,
        )?;
        check(smoke, &format!("pipeline/{}/infer", model.label));
        let frames = plan.frames_for(row.ours.median);
        infer_rows.push(row);
        let row = whole_frame(&mut engine, &manifest, &stream[..frames], &plan)?;
        check(smoke, &format!("pipeline/{}/frame", model.label));
        frame_rows.push((model.label, manifest, frames, row));
    }

    println!();
    let counts: Vec<String> = infer_rows
        .iter()
        .map(|r| format!("{}+{} at {}", r.warmup, r.iterations, r.input))
        .collect();
    println!(
        "Inference, batch 1, ms ({} round(s) alternating Python/ours; runs per round and side, \
         warm-up+timed: {})",
        plan.rounds,
        counts.join(", ")
    );
    println!(
        "{:<17} {:>8} | {:>24} | {:>24} | {:>7}  target ≤ {RATIO_TARGET:.2}",
        "model", "input", "Python median/p90/min", "ours median/p90/min", "ours/Py"
    );
    for r in &infer_rows {
        let py = r
            .python
            .as_ref()
            .map_or_else(|| "skipped".to_owned(), Stats::triple);
        let (ratio, verdict) = match &r.python {
            Some(p) => {
                let ratio = r.ours.median / p.median;
                (format!("{ratio:.3}"), verdict(smoke, ratio <= RATIO_TARGET))
            }
            None => ("-".to_owned(), "n/a"),
        };
        println!(
            "{:<17} {:>8} | {py:>24} | {:>24} | {ratio:>7}  {verdict}",
            r.label,
            r.input,
            r.ours.triple()
        );
    }

    println!();
    println!(
        "Whole frame, {FRAME_W}×{FRAME_H} H.264 (street scene, {} frames, {:.0} kB/frame, \
         openh264 encoder at {} Mbit/s), ms per frame, mean over {} timed pass(es) of the \
         first 'frames' frames",
        plan.frames,
        as_f64(stream_bytes) / as_f64(plan.frames) / 1e3,
        BITRATE_BPS / 1_000_000,
        plan.timed_passes
    );
    println!(
        "post = upsample+argmax to {FRAME_W}×{FRAME_H} / histogram / {CLASS_MAP_WIDTH}-wide map; \
         'outside' = (frame − infer) / frame, target ≤ {:.0} %",
        OUTSIDE_TARGET * 100.0
    );
    println!(
        "{:<17} {:>6} {:>7} {:>8} {:>9} {:>23} {:>9} | {:>8}",
        "model",
        "frames",
        "decode",
        "preproc",
        "infer",
        "post (up+argmax/hist/map)",
        "frame",
        "outside"
    );
    for (label, _, frames, f) in &frame_rows {
        let post_total = f.upsample.mean + f.histogram.mean + f.small_map.mean;
        let frame = f.decode.mean + f.preprocess.mean + f.infer.mean + post_total;
        let outside = (frame - f.infer.mean) / frame;
        println!(
            "{label:<17} {frames:>6} {:>7.3} {:>8.3} {:>9.3} {:>7.3} ({:.2}/{:.2}/{:.3}) {frame:>9.2} | {:>6.2} %  {}",
            f.decode.mean,
            f.preprocess.mean,
            f.infer.mean,
            post_total,
            f.upsample.mean,
            f.histogram.mean,
            f.small_map.mean,
            outside * 100.0,
            verdict(smoke, outside <= OUTSIDE_TARGET)
        );
    }
    println!(
        "information: the class map at the model's logit resolution (argmax without upsampling):"
    );
    for (label, manifest, _, f) in &frame_rows {
        let (lw, lh) = manifest.logits_size();
        let frame = f.decode.mean + f.preprocess.mean + f.infer.mean + f.post_model_res.mean;
        let outside = (frame - f.infer.mean) / frame;
        println!(
            "{label:<17} post at {lw}×{lh}: {:.3} ms, frame {frame:.2} ms, outside {:.1} %",
            f.post_model_res.mean,
            outside * 100.0
        );
    }
    println!("information: inference time for which the rest would be 10 % (9 × the rest):");
    for (label, _, _, f) in &frame_rows {
        let rest_full = f.decode.mean
            + f.preprocess.mean
            + f.upsample.mean
            + f.histogram.mean
            + f.small_map.mean;
        let rest_model = f.decode.mean + f.preprocess.mean + f.post_model_res.mean;
        println!(
            "{label:<17} {:.0} ms with the full-size class map, {:.0} ms with the logit-size one",
            9.0 * rest_full,
            9.0 * rest_model
        );
    }
    println!("load average {} at end", load_average());
    Ok(())
}

/// "Testing …/Success" lines, as criterion's `--test` prints them.
fn check(smoke: bool, name: &str) {
    if smoke {
        println!("Testing {name}\nSuccess");
    }
}

const fn verdict(smoke: bool, pass: bool) -> &'static str {
    match (smoke, pass) {
        (true, _) => "n/a (smoke)",
        (false, true) => "PASS",
        (false, false) => "MISS",
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    p90: f64,
    min: f64,
    mean: f64,
}

impl Stats {
    /// Quantiles by linear interpolation between order statistics, as numpy and
    /// `bench_onnxruntime.py` compute them.
    fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            if sorted.is_empty() {
                return f64::NAN;
            }
            let pos = q * as_f64(sorted.len() - 1);
            let lo = pos.floor();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = lo as usize;
            let j = (i + 1).min(sorted.len() - 1);
            sorted[i] + (sorted[j] - sorted[i]) * (pos - lo)
        };
        Self {
            median: quantile(0.5),
            p90: quantile(0.9),
            min: sorted.first().copied().unwrap_or(f64::NAN),
            mean: samples.iter().sum::<f64>() / as_f64(samples.len()),
        }
    }

    fn triple(&self) -> String {
        format!("{:.3}/{:.3}/{:.3}", self.median, self.p90, self.min)
    }
}

#[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
const fn as_f64(n: usize) -> f64 {
    n as f64
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// Inference: ours against Python

/// The Python interpreter of the repository's `.venv` and the script, when they can be used.
struct PythonBaseline {
    python: PathBuf,
    script: PathBuf,
    /// The onnxruntime version the script reported (filled in by the first run).
    version: Option<String>,
}

/// Finds `.venv/bin/python`; without it, a smoke test outside CI goes on without the baseline,
/// anything else fails.
fn python_baseline(root: &Path, smoke: bool) -> Result<Option<PythonBaseline>> {
    let python = root.join(".venv/bin/python");
    let script = root.join("engines/bench_onnxruntime.py");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    if !python.exists() {
        if smoke && !ci {
            println!(
                "note: {} not found, the Python baseline is skipped (run .ci/setup.sh to make it)",
                python.display()
            );
            return Ok(None);
        }
        bail!(
            "{} not found: the Python ONNX Runtime baseline needs the repository's Python \
             environment (run .ci/setup.sh or .ci/python-env.sh){}",
            python.display(),
            if ci {
                "; CI is set, so it is required"
            } else {
                ""
            }
        );
    }
    let mut baseline = PythonBaseline {
        python,
        script,
        version: None,
    };
    // Ask for the version up front, so the header can show it.
    let probe = Command::new(&baseline.python)
        .args(["-c", "import onnxruntime; print(onnxruntime.__version__)"])
        .output()
        .context("running .venv/bin/python")?;
    ensure!(
        probe.status.success(),
        "`import onnxruntime` fails in .venv: {}",
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    baseline.version = Some(String::from_utf8_lossy(&probe.stdout).trim().to_owned());
    Ok(Some(baseline))
}

impl PythonBaseline {
    /// Runs the script once; returns its timed samples in ms.
    fn run(
        &self,
        model: &Path,
        warmup: usize,
        iterations: usize,
        threads: usize,
        spinning: &str,
    ) -> Result<Vec<f64>> {
        let output = Command::new(&self.python)
            .arg(&self.script)
            .arg("--model")
            .arg(model)
            .args([
                "--iterations",
                &iterations.to_string(),
                "--warmup",
                &warmup.to_string(),
                "--threads",
                &threads.to_string(),
                "--spinning",
                spinning,
            ])
            .output()
            .context("running engines/bench_onnxruntime.py")?;
        ensure!(
            output.status.success(),
            "engines/bench_onnxruntime.py failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let samples = json_number_array(&text, "samples_ms")
            .with_context(|| format!("no samples_ms in the script's output: {text}"))?;
        ensure!(
            samples.len() == iterations,
            "the script reported {} samples, asked for {iterations}",
            samples.len()
        );
        Ok(samples)
    }
}

/// The numbers of `"key": [1.0, 2.5, …]` in the flat JSON object `bench_onnxruntime.py` prints.
fn json_number_array(json: &str, key: &str) -> Option<Vec<f64>> {
    let start = json.find(&format!("\"{key}\""))?;
    let rest = &json[start..];
    let open = rest.find('[')?;
    let close = rest.find(']')?;
    rest.get(open + 1..close)?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}

struct InferRow {
    label: &'static str,
    input: String,
    warmup: usize,
    iterations: usize,
    python: Option<Stats>,
    ours: Stats,
}

/// engines/tiny's formula input for one image: `x[c, h, w] = ((h·w + 3c + 5h) mod 23) / 11 − 1`.
fn formula_input(height: usize, width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * height * width);
    for c in 0..3 {
        for h in 0..height {
            for w in 0..width {
                let v = (h * w + 3 * c + 5 * h) % 23;
                // v < 23: exact.
                #[allow(clippy::cast_precision_loss)]
                out.push(v as f32 / 11.0 - 1.0);
            }
        }
    }
    out
}

fn compare_inference(
    engine: &mut OnnxRuntimeEngine,
    model: &Model,
    python: Option<&PythonBaseline>,
    threads: usize,
    spinning: &str,
    plan: &Plan,
) -> Result<InferRow> {
    let manifest = engine.manifest().clone();
    let (h, w) = (
        manifest.input_height as usize,
        manifest.input_width as usize,
    );
    let input = formula_input(h, w);
    let mut logits = Vec::new();
    // One run to warm up, one to see how long a run takes.
    let batch = InputBatch::for_manifest(&manifest, 1, &input);
    engine.infer(&batch, &mut logits)?;
    let start = Instant::now();
    engine.infer(&batch, &mut logits)?;
    let (warmup, iterations) = plan.infer_counts(ms_since(start));
    let (mut py_samples, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        if let Some(python) = python {
            py_samples.extend(python.run(&model.path, warmup, iterations, threads, spinning)?);
        }
        let batch = InputBatch::for_manifest(&manifest, 1, &input);
        for _ in 0..warmup {
            engine.infer(&batch, &mut logits)?;
        }
        for _ in 0..iterations {
            let start = Instant::now();
            engine.infer(black_box(&batch), &mut logits)?;
            ours.push(ms_since(start));
            black_box(&logits);
        }
    }
    Ok(InferRow {
        label: model.label,
        input: format!("{w}×{h}"),
        warmup,
        iterations,
        python: python.map(|_| Stats::of(&py_samples)),
        ours: Stats::of(&ours),
    })
}

// ---------------------------------------------------------------------------------------------
// Whole frame

/// The synthetic street scene (world 1) at 720p30 as a camera driving along one street films
/// it, encoded with openh264 at [`BITRATE_BPS`] with an IDR every 60 frames. One access unit per
/// frame (SPS/PPS with the IDRs).
fn encode_stream(frames: usize) -> Result<Vec<Vec<u8>>> {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(BITRATE_BPS))
        .max_frame_rate(FrameRate::from_hz(30.0))
        .rate_control_mode(RateControlMode::Bitrate)
        .usage_type(UsageType::CameraVideoRealTime)
        .intra_frame_period(IntraFramePeriod::from_num_frames(60))
        .skip_frames(true)
        .num_threads(1);
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
    let mut camera = SceneSource::new(SceneConfig::new(FRAME_W, FRAME_H, 1))?.unpaced();
    let mut yuv = Vec::with_capacity(FRAME_W * FRAME_H * 3 / 2);
    let mut stream = Vec::with_capacity(frames);
    for t in 0..frames {
        let frame = camera.next_frame()?;
        yuv.clear();
        for plane in frame.picture.planes() {
            yuv.extend_from_slice(plane.data);
        }
        ensure!(
            yuv.len() == FRAME_W * FRAME_H * 3 / 2,
            "the scene gave {} bytes of I420, expected {}",
            yuv.len(),
            FRAME_W * FRAME_H * 3 / 2
        );
        let source = YUVBuffer::from_vec(yuv.clone(), FRAME_W, FRAME_H);
        let au = encoder.encode(&source)?.to_vec();
        ensure!(
            !au.is_empty(),
            "the encoder skipped frame {t} (rate control)"
        );
        stream.push(au);
    }
    Ok(stream)
}

/// Per-stage times of the whole-frame measurement, ms.
struct FrameRow {
    decode: Stats,
    preprocess: Stats,
    infer: Stats,
    upsample: Stats,
    histogram: Stats,
    small_map: Stats,
    post_model_res: Stats,
}

fn whole_frame(
    engine: &mut OnnxRuntimeEngine,
    manifest: &ModelManifest,
    stream: &[Vec<u8>],
    plan: &Plan,
) -> Result<FrameRow> {
    let classes = manifest.classes.num_classes();
    let (lw, lh) = manifest.logits_size();
    let (lw, lh) = (lw as usize, lh as usize);
    let params = PreprocessParams::from_manifest(manifest);
    let mut preprocessor = Preprocessor::new(params);
    let mut input = vec![0.0f32; params.output_len()];
    let mut logits = Vec::new();
    let mut decoder = OpenH264Decoder::new(DecoderConfig::default());
    let mut frame = I420Frame::filled(2, 2, (16, 128, 128));
    let mut class_map = Vec::new();
    let mut model_map = vec![0u8; lw * lh];
    let mut histogram = vec![0u32; classes];
    let mut small = Vec::new();
    let mut samples: [Vec<f64>; 7] = Default::default();

    for pass in 0..plan.warm_passes + plan.timed_passes {
        decoder.reset();
        let timed = pass >= plan.warm_passes;
        for au in stream {
            let mut times = [0.0f64; 7];
            let start = Instant::now();
            let outcome = decoder.decode(au, &mut frame)?;
            times[0] = ms_since(start);
            ensure!(
                outcome == DecodeOutcome::Frame,
                "an access unit gave no picture"
            );

            let start = Instant::now();
            preprocessor.run_frame(&frame, &mut input)?;
            times[1] = ms_since(start);

            let start = Instant::now();
            let shape =
                engine.infer(&InputBatch::for_manifest(manifest, 1, &input), &mut logits)?;
            times[2] = ms_since(start);

            // As the inference thread does it (pipeline.rs): upsample + argmax to the frame size,
            // histogram, the downscaled map.
            let (w, h) = (frame.width as usize, frame.height as usize);
            class_map.resize(w * h, 0);
            let start = Instant::now();
            post::upsample_argmax(
                &logits,
                shape.classes,
                shape.height,
                shape.width,
                h,
                w,
                &mut class_map,
            )?;
            times[3] = ms_since(start);
            let start = Instant::now();
            post::histogram(&class_map, classes, &mut histogram)?;
            times[4] = ms_since(start);
            let start = Instant::now();
            small_map(&class_map, w, h, &mut small)?;
            times[5] = ms_since(start);

            // Information: the same with the class map at the logits' resolution.
            let start = Instant::now();
            post::upsample_argmax(
                &logits,
                shape.classes,
                shape.height,
                shape.width,
                lh,
                lw,
                &mut model_map,
            )?;
            post::histogram(&model_map, classes, &mut histogram)?;
            small_map(&model_map, lw, lh, &mut small)?;
            times[6] = ms_since(start);
            black_box((&histogram, &small));

            if timed {
                for (s, t) in samples.iter_mut().zip(times) {
                    s.push(t);
                }
            }
        }
    }
    let [
        decode,
        preprocess,
        infer,
        upsample,
        histogram,
        small_map,
        post_model_res,
    ] = samples.map(|s| Stats::of(&s));
    Ok(FrameRow {
        decode,
        preprocess,
        infer,
        upsample,
        histogram,
        small_map,
        post_model_res,
    })
}

/// The result's class map: `CLASS_MAP_WIDTH` wide, aspect kept (`small_class_map` of pipeline.rs).
fn small_map(class_map: &[u8], w: usize, h: usize, out: &mut Vec<u8>) -> Result<()> {
    let sw = CLASS_MAP_WIDTH.min(w).max(1);
    let sh = (h * sw).div_ceil(w).max(1);
    out.resize(sw * sh, 0);
    post::downscale_nearest(class_map, w, h, sw, sh, out)?;
    Ok(())
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}
