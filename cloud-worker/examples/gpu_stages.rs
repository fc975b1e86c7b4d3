//! Per-frame time of the worker's GPU path (NVDEC handing pictures on in CUDA memory, the CUDA
//! preprocessing and post-processing stages) against its CPU path (openh264, the Rust stages),
//! on the same stream, one frame at a time, in one run.
//!
//! ```text
//! cargo run --release -p flowcloud-worker --example gpu_stages -- \
//!     --stream openh264-1280x720-300f.h264 [--frames 300] [--out result.json]
//! ```
//!
//! The model side is DeepLabV3's: a 520×520 input normalized with ImageNet's mean and std, and
//! 21-class logits at 1/8 of it (65×65; fixed pseudo-random values, the engine is not part of
//! this) upsampled to the frame. Each stage is timed per frame (its call, which returns with
//! the result in host memory); reported per path: median and p99 per stage and per frame, and
//! CPU / GPU for each. Both paths' class maps are compared (they must be identical).
//!
//! Exit status 2 with "not available" when NVDEC or the CUDA kernels cannot be used.
//! `--cpu-only` measures the CPU path alone (the baseline's figures, on any machine).

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

#[path = "common/access_units.rs"]
mod access_units;
#[path = "common/not_available.rs"]
mod not_available;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};
use flowcloud_cuda::{Capabilities, GpuContext};
use flowcloud_worker::decode::{
    Decoder, DecoderConfig, NvdecDecoder, NvdecLibrary, OpenH264Decoder,
};
use flowcloud_worker::engine::ChannelOrder;
use flowcloud_worker::frame::{DeviceFramePool, I420Frame};
use flowcloud_worker::post::{ImageLogits, PostOutput};
use flowcloud_worker::preprocess::PreprocessParams;
use flowcloud_worker::stages::Stages;
use serde_json::json;

const USAGE: &str =
    "usage: gpu_stages --stream FILE.h264 [--frames 300] [--cpu-only] [--out result.json]";
const CLASSES: usize = 21;
const MODEL_SIDE: u32 = 520;
const LOGITS_SIDE: usize = 65;
const STAGES: [&str; 4] = ["decode", "preprocess", "post", "frame"];

struct Args {
    stream: PathBuf,
    frames: usize,
    cpu_only: bool,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        stream: PathBuf::new(),
        frames: 300,
        cpu_only: false,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--stream" => args.stream = value()?.into(),
            "--frames" => args.frames = value()?.parse().context("--frames")?,
            "--out" => args.out = Some(value()?.into()),
            "--cpu-only" => args.cpu_only = true,
            _ => bail!("unknown argument {arg:?}"),
        }
    }
    ensure!(!args.stream.as_os_str().is_empty(), "--stream is required");
    ensure!(args.frames > 0, "--frames must be above 0");
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("gpu_stages: {e:#}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let capabilities = Capabilities::probe();
    let why_not = capabilities
        .nvdec_unavailable(0)
        .or_else(|| capabilities.kernels_unavailable(0));
    if let (Some(why), false) = (why_not, args.cpu_only) {
        return not_available::report("gpu_stages", &why, args.out.as_deref());
    }
    let result = if args.cpu_only {
        run_cpu_only(&args)
    } else {
        run(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpu_stages: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn params() -> PreprocessParams {
    PreprocessParams {
        out_width: MODEL_SIDE,
        out_height: MODEL_SIDE,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        channel_order: ChannelOrder::Rgb,
    }
}

/// Fixed pseudo-random logits (xorshift), the same for both paths.
fn logits() -> Vec<f32> {
    let mut state = 0x2545_f491_u32;
    (0..CLASSES * LOGITS_SIDE * LOGITS_SIDE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            #[allow(clippy::cast_precision_loss, reason = "a 16-bit value")]
            let unit = (state >> 16) as f32 / 65536.0;
            unit.mul_add(16.0, -8.0)
        })
        .collect()
}

/// One path's per-frame times in ms, by stage, and its class maps' hash per frame.
#[derive(Default)]
struct Timings {
    ms: [Vec<f64>; 4],
    maps: Vec<u64>,
}

fn run_path(
    units: &[Vec<u8>],
    frames: usize,
    decoder: &mut dyn Decoder,
    stages: &mut Stages,
    logits: &[f32],
) -> Result<Timings> {
    let mut scratch = I420Frame::filled(0, 0, (0, 0, 0));
    let mut input = vec![0.0; params().output_len()];
    let mut output = PostOutput::default();
    let mut timings = Timings::default();
    for (i, unit) in units.iter().enumerate() {
        if timings.maps.len() == frames {
            break;
        }
        let started = Instant::now();
        let Some(picture) = decoder
            .decode_picture(unit, &mut scratch)
            .with_context(|| format!("access unit {i}"))?
        else {
            continue;
        };
        let decoded = Instant::now();
        stages.preprocess.run(&picture, &mut input)?;
        let preprocessed = Instant::now();
        let image = ImageLogits {
            data: logits,
            classes: CLASSES,
            height: LOGITS_SIDE,
            width: LOGITS_SIDE,
        };
        stages.post.run(image, &picture, &mut output)?;
        let done = Instant::now();
        for (series, (from, to)) in timings.ms.iter_mut().zip([
            (started, decoded),
            (decoded, preprocessed),
            (preprocessed, done),
            (started, done),
        ]) {
            series.push(to.duration_since(from).as_secs_f64() * 1e3);
        }
        timings.maps.push(fnv1a(&output.class_map));
    }
    ensure!(!timings.maps.is_empty(), "no picture decoded");
    Ok(timings)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into the sorted samples"
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn run_cpu_only(args: &Args) -> Result<()> {
    let units = access_units::read(&args.stream)?;
    let logits = logits();
    let mut openh264 = OpenH264Decoder::new(DecoderConfig::default());
    let mut cpu_stages = Stages::cpu(params());
    run_path(&units, 2, &mut openh264, &mut cpu_stages, &logits)?;
    openh264.reset();
    let times = run_path(&units, args.frames, &mut openh264, &mut cpu_stages, &logits)?;
    println!(
        "{}: {} frames through the CPU path; model {MODEL_SIDE}x{MODEL_SIDE}, {CLASSES} classes at {LOGITS_SIDE}x{LOGITS_SIDE}",
        args.stream.display(),
        times.maps.len()
    );
    println!("\n| stage | CPU p50 ms | CPU p99 ms |");
    println!("|---|---|---|");
    for (k, stage) in STAGES.iter().enumerate() {
        println!(
            "| {stage} | {:.3} | {:.3} |",
            percentile(&times.ms[k], 0.5),
            percentile(&times.ms[k], 0.99)
        );
    }
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    let units = access_units::read(&args.stream)?;
    let logits = logits();
    let gpu = Arc::new(GpuContext::new(0)?);
    let library = NvdecLibrary::load()?;
    let pool = DeviceFramePool::new(gpu.context().new_stream()?, 4);
    let mut nvdec =
        NvdecDecoder::new(&library, 0, DecoderConfig::default())?.with_device_output(pool);
    let mut gpu_stages = Stages::cuda(&gpu, params()).map_err(anyhow::Error::msg)?;
    let mut openh264 = OpenH264Decoder::new(DecoderConfig::default());
    let mut cpu_stages = Stages::cpu(params());
    // One untimed pass each: NVDEC's session, the kernels' modules, buffers.
    run_path(&units, 2, &mut nvdec, &mut gpu_stages, &logits)?;
    run_path(&units, 2, &mut openh264, &mut cpu_stages, &logits)?;
    nvdec.reset();
    openh264.reset();
    let gpu_times = run_path(&units, args.frames, &mut nvdec, &mut gpu_stages, &logits)?;
    let cpu_times = run_path(&units, args.frames, &mut openh264, &mut cpu_stages, &logits)?;
    ensure!(
        gpu_times.maps == cpu_times.maps,
        "the GPU path's class maps differ from the CPU path's (first at frame {:?})",
        gpu_times
            .maps
            .iter()
            .zip(&cpu_times.maps)
            .position(|(g, c)| g != c)
    );
    println!(
        "{}: {} frames through each path; model {MODEL_SIDE}x{MODEL_SIDE}, {CLASSES} classes at {LOGITS_SIDE}x{LOGITS_SIDE}; class maps identical",
        args.stream.display(),
        gpu_times.maps.len()
    );
    println!("\n| stage | GPU p50 ms | GPU p99 ms | CPU p50 ms | CPU p99 ms | CPU / GPU (p50) |");
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (k, stage) in STAGES.iter().enumerate() {
        let (g50, g99) = (
            percentile(&gpu_times.ms[k], 0.5),
            percentile(&gpu_times.ms[k], 0.99),
        );
        let (c50, c99) = (
            percentile(&cpu_times.ms[k], 0.5),
            percentile(&cpu_times.ms[k], 0.99),
        );
        println!(
            "| {stage} | {g50:.3} | {g99:.3} | {c50:.3} | {c99:.3} | {:.1} |",
            c50 / g50
        );
        rows.push(json!({
            "stage": stage,
            "gpu_p50_ms": g50, "gpu_p99_ms": g99,
            "cpu_p50_ms": c50, "cpu_p99_ms": c99,
            "cpu_over_gpu_p50": c50 / g50,
        }));
    }
    if let Some(out) = &args.out {
        let result = json!({
            "status": "measured",
            "stream": args.stream.display().to_string(),
            "frames": gpu_times.maps.len(),
            "stages": rows,
        });
        std::fs::write(out, serde_json::to_string_pretty(&result)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
