//! `flowcloud-gpu-check`: every kernel of `flowcloud-cuda` on GPU 0 against its plain-Rust
//! reference, and the fused argmax + overlay kernel's bandwidth against the device-to-device
//! copy measured in the same run. The method is in `cuda/GPU-NOTES.md`.
//!
//! ```text
//! flowcloud-gpu-check [--out results.json] [--quick]
//! ```
//!
//! Exit status: 0 when every check matches and the fused kernel reaches the target, 1 when a
//! check or the target fails (or a call errs), 2 when no GPU can run the kernels (no driver, no
//! GPU, no NVRTC): that prints "not available" and what is missing.

#![allow(clippy::print_stdout, reason = "a command-line tool prints its report")]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use cudarc::driver::sys::{
    CUdevice_attribute, CUevent_flags, CUgraphInstantiate_flags_enum, CUstreamCaptureMode,
};
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use flowcloud_cuda::reference::{self, Nv12};
use flowcloud_cuda::shape::palette_bytes;
use flowcloud_cuda::{
    Capabilities, ChannelOrder, GpuContext, KernelSource, LogitShape, Nv12Layout, Palette,
    PreprocessParams,
};
use serde_json::{Value, json};

/// The fused kernel's bandwidth must reach this share of the device-to-device copy's.
const TARGET_RATIO: f64 = 0.80;
/// Classes of the segmentation models (Pascal VOC's 21).
const CLASSES: u32 = 21;
/// Logits come at 1/8 of the frame's resolution (output stride 8).
const STRIDE: u32 = 8;
/// Floats must agree within this relative error (they are expected bit-equal).
const MAX_REL: f64 = 1e-5;
/// Two poison bytes: an output element the kernel does not write keeps one of them and cannot
/// equal the reference under both.
const POISONS: [u8; 2] = [0xAB, 0x54];
const ALPHA: f32 = 0.45;

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("flowcloud-gpu-check: {e:#}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let gpu = match GpuContext::new(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            let caps = Capabilities::probe();
            eprintln!("flowcloud-gpu-check: not available: {e}\n{caps}");
            let result = json!({
                "status": "not available",
                "reason": e.to_string(),
                "capabilities": caps.to_string(),
            });
            if let Some(out) = &args.out
                && let Err(e) = write_results(out, &result, &format!("not available: {e}\n"))
            {
                eprintln!("flowcloud-gpu-check: {e:#}");
                return ExitCode::from(1);
            }
            return ExitCode::from(2);
        }
    };
    match run(&gpu, &args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("flowcloud-gpu-check: {e:#}");
            ExitCode::from(1)
        }
    }
}

const USAGE: &str = "usage: flowcloud-gpu-check [--out results.json] [--quick]";

struct Args {
    out: Option<PathBuf>,
    quick: bool,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut args = Self {
            out: None,
            quick: false,
        };
        let mut it = std::env::args_os().skip(1);
        while let Some(arg) = it.next() {
            match arg.to_str() {
                Some("--out") => {
                    args.out = Some(it.next().context("--out needs a path")?.into());
                }
                Some("--quick") => args.quick = true,
                Some("--help" | "-h") => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                _ => bail!("unknown argument {arg:?}"),
            }
        }
        Ok(args)
    }
}

fn run(gpu: &GpuContext, args: &Args) -> Result<bool> {
    let ctx = gpu.context();
    let name = ctx.name().unwrap_or_default();
    let (major, minor) = ctx.compute_capability().unwrap_or_default();
    let nvrtc = gpu.nvrtc().map_or_else(
        || "not loaded".to_owned(),
        |n| {
            let at = n
                .path()
                .map_or_else(|| "found by name".to_owned(), |p| p.display().to_string());
            format!("{} ({at})", n.version())
        },
    );
    println!("GPU 0: {name} (compute {major}.{minor}), NVRTC {nvrtc}");
    // Which PTX each program runs: nvcc's from the build, or NVRTC's.
    let origins: Vec<(String, String)> = KernelSource::ALL
        .iter()
        .map(|&k| (k.file_name().to_owned(), gpu.ptx_origin(k)))
        .collect();
    for (file, origin) in &origins {
        println!("  {file}: {origin}");
    }
    // No buffer crosses streams: cudarc's per-buffer events (for cross-stream ordering) would
    // only add work to every launch and distort the timings.
    // SAFETY: every buffer of this program is used only on the stream that allocated it (the
    // checks' default stream, or the bandwidth measurement's own stream).
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.default_stream();
    gpu.warm_up().context("compiling the kernels")?;

    let mut rng = Rng(0x5eed_f10c_10d5_eed5);
    let checks = correctness(gpu, &stream, &mut rng)?;
    let all_match = checks.iter().all(|c| c.pass);

    // Measured whatever the checks found: one GPU run should give every figure it can.
    let bandwidth = bandwidth(gpu, &mut rng, args.quick);
    let target_met = match &bandwidth {
        Ok(b) => {
            print_bandwidth(b);
            b.fused.iter().all(|f| f.ratio >= TARGET_RATIO)
        }
        Err(e) => {
            println!("\nbandwidth: error: {e:#}");
            false
        }
    };

    println!(
        "\nsummary: kernels vs references: {} ({} of {} checks match); fused ≥ {:.0}% of copy: {}",
        if all_match { "PASS" } else { "FAIL" },
        checks.iter().filter(|c| c.pass).count(),
        checks.len(),
        TARGET_RATIO * 100.0,
        if target_met { "PASS" } else { "FAIL" },
    );
    if let Some(out) = &args.out {
        let result = json!({
            "status": if all_match && target_met { "pass" } else { "fail" },
            "gpu": name,
            "compute_capability": format!("{major}.{minor}"),
            "nvrtc": nvrtc,
            "ptx": origins.iter().map(|(f, o)| json!({ "program": f, "origin": o })).collect::<Vec<_>>(),
            "checks": checks.iter().map(Check::to_json).collect::<Vec<_>>(),
            "bandwidth": match &bandwidth {
                Ok(b) => b.to_json(),
                Err(e) => json!({ "error": format!("{e:#}") }),
            },
            "target_ratio": TARGET_RATIO,
            "all_match": all_match,
            "target_met": target_met,
        });
        write_results(out, &result, &markdown(&checks, bandwidth.as_ref().ok()))?;
    }
    Ok(all_match && target_met)
}

/// Writes `result` as JSON to `out` and `md` next to it (`.md`).
fn write_results(out: &Path, result: &Value, md: &str) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(result)?;
    std::fs::write(out, text + "\n").with_context(|| format!("writing {}", out.display()))?;
    let md_path = out.with_extension("md");
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    Ok(())
}

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next().to_le_bytes()[7]).collect()
    }
    /// Uniform in `[-8, 8)`.
    #[allow(
        clippy::cast_precision_loss,
        reason = "24 random bits are exact in f32"
    )]
    fn logit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / 16_777_216.0).mul_add(16.0, -8.0)
    }
}

/// An NVDEC-like layout: pitch rounded up to 256 bytes, chroma after the luma rows rounded up
/// to 16 (the coded height), so padding the kernels must not read lies between the planes.
const fn pitched(width: u32, height: u32) -> Nv12Layout {
    let pitch = (width.div_ceil(2) * 2).div_ceil(256) * 256;
    Nv12Layout {
        width,
        height,
        pitch,
        chroma_offset: pitch as usize * (height.div_ceil(16) * 16) as usize,
    }
}

fn random_frame(rng: &mut Rng, layout: Nv12Layout) -> Vec<u8> {
    rng.bytes(layout.required_len())
}

fn random_palette(rng: &mut Rng) -> Palette {
    let mut palette = [[0u8; 3]; 256];
    for rgb in palette.iter_mut().take(CLASSES as usize) {
        let b = rng.bytes(3);
        *rgb = [b[0], b[1], b[2]];
    }
    palette
}

/// Class maps with the model's classes and some indices the palette does not name (black).
fn random_class_map(rng: &mut Rng, pixels: usize) -> Vec<u8> {
    rng.bytes(pixels)
        .into_iter()
        .map(|b| if b < 8 { 200 + b } else { b % 21 })
        .collect()
}

/// One kernel on one input against its reference.
struct Check {
    kernel: &'static str,
    case: String,
    elements: usize,
    bit_equal: usize,
    /// For float outputs: the largest absolute and relative errors.
    max_abs: f64,
    max_rel: f64,
    first_mismatch: Option<usize>,
    pass: bool,
}

impl Check {
    fn to_json(&self) -> Value {
        json!({
            "kernel": self.kernel,
            "case": self.case,
            "elements": self.elements,
            "bit_equal": self.bit_equal,
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "first_mismatch": self.first_mismatch,
            "pass": self.pass,
        })
    }
}

/// A check that could not run (a launch or a copy failed): a failing row naming the error, so
/// that the remaining checks still run.
fn record_error(checks: &mut Vec<Check>, kernel: &'static str, case: String, outcome: Result<()>) {
    if let Err(e) = outcome {
        let check = Check {
            kernel,
            case: format!("{case}: error: {e:#}"),
            elements: 0,
            bit_equal: 0,
            max_abs: f64::NAN,
            max_rel: f64::NAN,
            first_mismatch: None,
            pass: false,
        };
        println!("{}", check_line(&check));
        checks.push(check);
    }
}

/// Exact comparison of bytes (class maps, colours).
fn compare_bytes(kernel: &'static str, case: &str, got: &[u8], want: &[u8]) -> Check {
    let bit_equal = got.iter().zip(want).filter(|(g, w)| g == w).count();
    let first_mismatch = got.iter().zip(want).position(|(g, w)| g != w);
    Check {
        kernel,
        case: case.to_owned(),
        elements: want.len(),
        bit_equal,
        max_abs: 0.0,
        max_rel: 0.0,
        first_mismatch,
        pass: got.len() == want.len() && bit_equal == want.len(),
    }
}

/// Float comparison: within [`MAX_REL`] relative error each (`|g − w| / |w|`, 0 when equal).
fn compare_floats(kernel: &'static str, case: &str, got: &[f32], want: &[f32]) -> Check {
    let (mut max_abs, mut max_rel, mut bit_equal, mut first_mismatch) = (0f64, 0f64, 0, None);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.to_bits() == w.to_bits() {
            bit_equal += 1;
            continue;
        }
        let abs = (f64::from(g) - f64::from(w)).abs();
        let rel = if w == 0.0 {
            f64::INFINITY
        } else {
            abs / f64::from(w).abs()
        };
        // A NaN error (NaN on one side) counts as infinitely wrong.
        let rel = if rel.is_nan() { f64::INFINITY } else { rel };
        max_abs = max_abs.max(if abs.is_nan() { f64::INFINITY } else { abs });
        max_rel = max_rel.max(rel);
        if rel > MAX_REL && first_mismatch.is_none() {
            first_mismatch = Some(i);
        }
    }
    Check {
        kernel,
        case: case.to_owned(),
        elements: want.len(),
        bit_equal,
        max_abs,
        max_rel,
        first_mismatch,
        pass: got.len() == want.len() && first_mismatch.is_none(),
    }
}

/// A launch that writes `outputs` (device buffers it is handed, freshly poisoned).
type Launch<'a> = dyn FnMut(&Arc<CudaStream>, &mut [CudaSlice<u8>]) -> Result<()> + 'a;

/// Runs `launch` once per poison byte with outputs of `lens` bytes filled with it, and returns
/// the outputs of each run.
fn run_poisoned(
    stream: &Arc<CudaStream>,
    lens: &[usize],
    launch: &mut Launch<'_>,
) -> Result<Vec<[Vec<u8>; 2]>> {
    let mut runs: Vec<Vec<Vec<u8>>> = Vec::new();
    for poison in POISONS {
        let mut outputs = lens
            .iter()
            .map(|&len| stream.clone_htod(&vec![poison; len]))
            .collect::<Result<Vec<_>, _>>()?;
        launch(stream, &mut outputs)?;
        stream.synchronize()?;
        runs.push(
            outputs
                .iter()
                .map(|o| stream.clone_dtoh(o))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    let second = runs.pop().unwrap_or_default();
    let first = runs.pop().unwrap_or_default();
    Ok(first.into_iter().zip(second).map(|(a, b)| [a, b]).collect())
}

/// Compares each output of each run against the reference's (`want(poison)`, computed with
/// the outputs poisoned alike): one row per output, the failing run's if one fails.
fn check_outputs(
    checks: &mut Vec<Check>,
    kernel: &'static str,
    case: &str,
    got: &[[Vec<u8>; 2]],
    want: &dyn Fn(u8) -> Result<Vec<Vec<u8>>>,
    floats: Floats,
) -> Result<()> {
    let wants = [want(POISONS[0])?, want(POISONS[1])?];
    for (i, runs) in got.iter().enumerate() {
        let label = match (got.len(), i) {
            (1, _) => case.to_owned(),
            (_, 0) => format!("{case} [class map]"),
            _ => format!("{case} [overlay]"),
        };
        let mut row = None;
        for (got, wants) in runs.iter().zip(&wants) {
            let want = wants.get(i).context("the reference has fewer outputs")?;
            let check = match floats {
                Floats::None => compare_bytes(kernel, &label, got, want),
                Floats::F32 => compare_floats(kernel, &label, &as_f32(got), &as_f32(want)),
                Floats::F16 => compare_floats(kernel, &label, &f16_as_f32(got), &f16_as_f32(want)),
            };
            let failed = !check.pass;
            if row.is_none() || failed {
                row = Some(check);
            }
            if failed {
                break;
            }
        }
        if let Some(row) = row {
            // Printed as it comes: a later crash or time-out leaves the rows so far.
            println!("{}", check_line(&row));
            checks.push(row);
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Floats {
    None,
    F32,
    F16,
}

fn as_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn f16_as_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| reference::f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]])))
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u16_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Frame sizes of the checks: 720p and 1080p, the odd-sized 322×242 of the test vectors, and
/// an odd width and height.
const FRAMES: [(u32, u32); 4] = [(1280, 720), (1920, 1080), (322, 242), (321, 241)];

#[allow(clippy::too_many_lines, reason = "one block per kernel family")]
fn correctness(gpu: &GpuContext, stream: &Arc<CudaStream>, rng: &mut Rng) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    println!(
        "\nkernels against their references (outputs poisoned 0xAB, then 0x54):\n{CHECK_HEADER}"
    );
    let palette = random_palette(rng);
    let palette_dev = stream.clone_htod(&palette_bytes(&palette))?;

    // Preprocessing: frame → model input.
    for ((w, h), (ow, oh), order) in [
        ((1280, 720), (520, 520), ChannelOrder::Rgb),
        ((1920, 1080), (520, 520), ChannelOrder::Bgr),
        ((322, 242), (160, 120), ChannelOrder::Rgb),
        ((321, 241), (97, 55), ChannelOrder::Bgr),
    ] {
        let outcome = (|| -> Result<()> {
            let layout = pitched(w, h);
            let frame = random_frame(rng, layout);
            let frame_dev = stream.clone_htod(&frame)?;
            let params = PreprocessParams {
                out_width: ow,
                out_height: oh,
                mean: [0.485, 0.456, 0.406],
                std: [0.229, 0.224, 0.225],
                channel_order: order,
            };
            let case = format!("{w}x{h} → {ow}x{oh} {order:?}");
            let n = params.output_len();
            let nv12 = Nv12::new(&frame, layout)?;
            let got = run_poisoned(stream, &[4 * n], &mut |s, out| {
                // SAFETY: f32 has no invalid bit patterns, and 4·n bytes hold n of them at the
                // allocation's alignment.
                let mut view = unsafe { out[0].transmute_mut::<f32>(n) }.context("f32 view")?;
                Ok(gpu.nv12_to_planar_f32(s, &frame_dev.as_view(), layout, &params, &mut view)?)
            })?;
            check_outputs(
                &mut checks,
                "nv12_to_planar_f32",
                &case,
                &got,
                &|_| {
                    let mut out = vec![0f32; n];
                    reference::preprocess_nv12(&nv12, &params, &mut out)?;
                    Ok(vec![f32_bytes(&out)])
                },
                Floats::F32,
            )?;
            let got = run_poisoned(stream, &[2 * n], &mut |s, out| {
                // SAFETY: as above, for u16.
                let mut view = unsafe { out[0].transmute_mut::<u16>(n) }.context("u16 view")?;
                Ok(gpu.nv12_to_planar_f16(s, &frame_dev.as_view(), layout, &params, &mut view)?)
            })?;
            check_outputs(
                &mut checks,
                "nv12_to_planar_f16",
                &case,
                &got,
                &|_| {
                    let mut out = vec![0u16; n];
                    reference::preprocess_nv12_f16(&nv12, &params, &mut out)?;
                    Ok(vec![u16_bytes(&out)])
                },
                Floats::F16,
            )?;
            Ok(())
        })();
        record_error(
            &mut checks,
            "nv12_to_planar",
            format!("{w}x{h} → {ow}x{oh}"),
            outcome,
        );
    }

    // Upsample + argmax: model output → class map.
    for (in_w, in_h, out_w, out_h) in [
        (65, 65, 520, 520),
        (160, 90, 1280, 720),
        (240, 135, 1920, 1080),
        (41, 31, 321, 241),
    ] {
        let outcome = (|| -> Result<()> {
            let shape = LogitShape {
                classes: CLASSES,
                in_height: in_h,
                in_width: in_w,
                out_height: out_h,
                out_width: out_w,
            };
            let case = format!("{CLASSES}x{in_h}x{in_w} → {out_w}x{out_h}");
            let logits: Vec<f32> = (0..shape.logits_len()).map(|_| rng.logit()).collect();
            let half: Vec<u16> = logits
                .iter()
                .map(|&v| reference::f32_to_f16_bits(v))
                .collect();
            let logits_dev = stream.clone_htod(&logits)?;
            let half_dev = stream.clone_htod(&half)?;
            let n = shape.class_map_len();
            let got = run_poisoned(stream, &[n], &mut |s, out| {
                let l = logits_dev.as_view();
                Ok(gpu.upsample_argmax_f32(s, &l, &shape, &mut out[0].as_view_mut())?)
            })?;
            check_outputs(
                &mut checks,
                "upsample_argmax_f32",
                &case,
                &got,
                &|_| {
                    let mut map = vec![0u8; n];
                    reference::upsample_argmax(&logits, &shape, &mut map)?;
                    Ok(vec![map])
                },
                Floats::None,
            )?;
            let got = run_poisoned(stream, &[n], &mut |s, out| {
                let l = half_dev.as_view();
                Ok(gpu.upsample_argmax_f16(s, &l, &shape, &mut out[0].as_view_mut())?)
            })?;
            check_outputs(
                &mut checks,
                "upsample_argmax_f16",
                &case,
                &got,
                &|_| {
                    let mut map = vec![0u8; n];
                    reference::upsample_argmax_f16(&half, &shape, &mut map)?;
                    Ok(vec![map])
                },
                Floats::None,
            )?;
            Ok(())
        })();
        record_error(
            &mut checks,
            "upsample_argmax",
            format!("{in_w}x{in_h} → {out_w}x{out_h}"),
            outcome,
        );
    }

    // Colorize and blend: class map (+ frame) → overlay.
    for (w, h) in FRAMES {
        let outcome = (|| -> Result<()> {
            let layout = pitched(w, h);
            let out_layout = pitched(w, h);
            let frame = random_frame(rng, layout);
            let frame_dev = stream.clone_htod(&frame)?;
            let nv12 = Nv12::new(&frame, layout)?;
            let map = random_class_map(rng, layout.pixels());
            let map_dev = stream.clone_htod(&map)?;
            let case = format!("{w}x{h}");
            let px = layout.pixels();
            let got = run_poisoned(stream, &[4 * px], &mut |s, out| {
                let pal = palette_dev.as_view();
                let m = map_dev.as_view();
                Ok(gpu.colorize_rgba(s, &m, (w, h), &pal, &mut out[0].as_view_mut())?)
            })?;
            check_outputs(
                &mut checks,
                "colorize_rgba",
                &case,
                &got,
                &|_| {
                    let mut rgba = vec![0u8; 4 * px];
                    reference::colorize_rgba(&map, &palette, &mut rgba)?;
                    Ok(vec![rgba])
                },
                Floats::None,
            )?;
            let got = run_poisoned(stream, &[4 * px], &mut |s, out| {
                let (f, m, p) = (
                    frame_dev.as_view(),
                    map_dev.as_view(),
                    palette_dev.as_view(),
                );
                Ok(gpu.blend_nv12_rgba(s, &f, layout, &m, &p, ALPHA, &mut out[0].as_view_mut())?)
            })?;
            check_outputs(
                &mut checks,
                "blend_nv12_rgba",
                &case,
                &got,
                &|_| {
                    let mut rgba = vec![0u8; 4 * px];
                    reference::blend_nv12_rgba(&nv12, &map, &palette, ALPHA, &mut rgba)?;
                    Ok(vec![rgba])
                },
                Floats::None,
            )?;
            let got = run_poisoned(stream, &[out_layout.required_len()], &mut |s, out| {
                let (f, m, p) = (
                    frame_dev.as_view(),
                    map_dev.as_view(),
                    palette_dev.as_view(),
                );
                let mut o = out[0].as_view_mut();
                Ok(gpu.blend_nv12_nv12(s, &f, layout, &m, &p, ALPHA, &mut o, out_layout)?)
            })?;
            check_outputs(
                &mut checks,
                "blend_nv12_nv12",
                &case,
                &got,
                &|poison| {
                    // Bytes outside the planes (pitch padding) keep the poison, in both.
                    let mut out = vec![poison; out_layout.required_len()];
                    reference::blend_nv12_to_nv12(
                        &nv12, &map, &palette, ALPHA, &mut out, out_layout,
                    )?;
                    Ok(vec![out])
                },
                Floats::None,
            )?;

            // Fused: logits at 1/8 + frame → class map and overlay.
            let shape = LogitShape {
                classes: CLASSES,
                in_height: h.div_ceil(STRIDE),
                in_width: w.div_ceil(STRIDE),
                out_height: h,
                out_width: w,
            };
            let logits: Vec<f32> = (0..shape.logits_len()).map(|_| rng.logit()).collect();
            let half: Vec<u16> = logits
                .iter()
                .map(|&v| reference::f32_to_f16_bits(v))
                .collect();
            let logits_dev = stream.clone_htod(&logits)?;
            let half_dev = stream.clone_htod(&half)?;
            let case = format!("{CLASSES}x{}x{} + {w}x{h}", shape.in_height, shape.in_width);
            for half_logits in [false, true] {
                let got = run_poisoned(stream, &[px, 4 * px], &mut |s, out| {
                    let (f, p) = (frame_dev.as_view(), palette_dev.as_view());
                    let [map_out, rgba] = out else {
                        bail!("two outputs were asked for")
                    };
                    let (mut m, mut o) = (map_out.as_view_mut(), rgba.as_view_mut());
                    if half_logits {
                        let l = half_dev.as_view();
                        gpu.argmax_blend_rgba_f16(
                            s, &l, &shape, &f, layout, &p, ALPHA, &mut m, &mut o,
                        )?;
                    } else {
                        let l = logits_dev.as_view();
                        gpu.argmax_blend_rgba_f32(
                            s, &l, &shape, &f, layout, &p, ALPHA, &mut m, &mut o,
                        )?;
                    }
                    Ok(())
                })?;
                let kernel = if half_logits {
                    "argmax_blend_rgba_f16"
                } else {
                    "argmax_blend_rgba_f32"
                };
                check_outputs(
                    &mut checks,
                    kernel,
                    &case,
                    &got,
                    &|_| {
                        let (mut map, mut rgba) = (vec![0u8; px], vec![0u8; 4 * px]);
                        if half_logits {
                            reference::argmax_blend_rgba_f16(
                                &half, &shape, &nv12, &palette, ALPHA, &mut map, &mut rgba,
                            )?;
                        } else {
                            reference::argmax_blend_rgba(
                                &logits, &shape, &nv12, &palette, ALPHA, &mut map, &mut rgba,
                            )?;
                        }
                        Ok(vec![map, rgba])
                    },
                    Floats::None,
                )?;
                let got = run_poisoned(stream, &[px, out_layout.required_len()], &mut |s, out| {
                    let (f, p) = (frame_dev.as_view(), palette_dev.as_view());
                    let [map_out, nv12_out] = out else {
                        bail!("two outputs were asked for")
                    };
                    let (mut m, mut o) = (map_out.as_view_mut(), nv12_out.as_view_mut());
                    if half_logits {
                        let l = half_dev.as_view();
                        gpu.argmax_blend_nv12_f16(
                            s, &l, &shape, &f, layout, &p, ALPHA, &mut m, &mut o, out_layout,
                        )?;
                    } else {
                        let l = logits_dev.as_view();
                        gpu.argmax_blend_nv12_f32(
                            s, &l, &shape, &f, layout, &p, ALPHA, &mut m, &mut o, out_layout,
                        )?;
                    }
                    Ok(())
                })?;
                let kernel = if half_logits {
                    "argmax_blend_nv12_f16"
                } else {
                    "argmax_blend_nv12_f32"
                };
                check_outputs(
                    &mut checks,
                    kernel,
                    &case,
                    &got,
                    &|poison| {
                        let mut map = vec![0u8; px];
                        let mut out = vec![poison; out_layout.required_len()];
                        if half_logits {
                            reference::argmax_blend_nv12_f16(
                                &half, &shape, &nv12, &palette, ALPHA, &mut map, &mut out,
                                out_layout,
                            )?;
                        } else {
                            reference::argmax_blend_nv12(
                                &logits, &shape, &nv12, &palette, ALPHA, &mut map, &mut out,
                                out_layout,
                            )?;
                        }
                        Ok(vec![map, out])
                    },
                    Floats::None,
                )?;
            }
            Ok(())
        })();
        record_error(
            &mut checks,
            "colorize / blend / argmax_blend",
            format!("{w}x{h}"),
            outcome,
        );
    }
    Ok(checks)
}

/// The bandwidth measurements of one run.
struct Bandwidth {
    l2_bytes: usize,
    copy: Timed,
    fused: Vec<Timed>,
    separate: Vec<Timed>,
    /// The fused f32 kernels launched on one buffer set only (inputs L2-resident): near the
    /// DRAM row, the kernel's own work, not memory, sets its pace.
    resident: Vec<Timed>,
}

/// One timed operation: bytes it must move, median time, effective bandwidth.
struct Timed {
    what: String,
    bytes: usize,
    /// Buffer sets launches rotate over (so that inputs do not sit in L2), and launches per
    /// timed sample.
    sets: usize,
    per_sample: usize,
    samples: usize,
    median_us: f64,
    gb_per_s: f64,
    /// Effective bandwidth over the copy's (fused and separate rows).
    ratio: f64,
    /// Whether a sample's launches ran as one CUDA graph (else issued one by one).
    graph: bool,
}

impl Timed {
    fn to_json(&self) -> Value {
        json!({
            "what": self.what,
            "bytes": self.bytes,
            "buffer_sets": self.sets,
            "launches_per_sample": self.per_sample,
            "samples": self.samples,
            "median_us": self.median_us,
            "gb_per_s": self.gb_per_s,
            "ratio_to_copy": self.ratio,
            "cuda_graph": self.graph,
        })
    }
}

impl Bandwidth {
    fn to_json(&self) -> Value {
        json!({
            "l2_bytes": self.l2_bytes,
            "copy": self.copy.to_json(),
            "fused": self.fused.iter().map(Timed::to_json).collect::<Vec<_>>(),
            "two_kernels": self.separate.iter().map(Timed::to_json).collect::<Vec<_>>(),
            "l2_resident": self.resident.iter().map(Timed::to_json).collect::<Vec<_>>(),
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
fn gb_per_s(bytes: usize, us: f64) -> f64 {
    bytes as f64 / us / 1e3
}

/// Times `samples` runs of `batch` (after two untimed ones) with CUDA events on `stream`: the
/// milliseconds of each.
fn time_samples(
    gpu: &GpuContext,
    stream: &Arc<CudaStream>,
    samples: usize,
    batch: &mut dyn FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    let ctx = gpu.context();
    let start = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
    let end = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
    for _ in 0..2 {
        batch()?;
    }
    stream.synchronize()?;
    let mut ms = Vec::with_capacity(samples);
    for _ in 0..samples {
        start.record(stream)?;
        batch()?;
        end.record(stream)?;
        ms.push(f64::from(start.elapsed_ms(&end)?));
    }
    Ok(ms)
}

/// The least traffic of one fused launch: each input read once (logits, the NV12 frame's used
/// bytes), each output written once (class map, overlay); the palette is left out.
fn minimal_bytes(shape: &LogitShape, layout: Nv12Layout, variant: Variant) -> usize {
    let px = layout.pixels();
    let (cw, ch) = layout.chroma_size();
    let nv12 = px + 2 * cw as usize * ch as usize;
    let logits = shape.logits_len() * if variant.half { 2 } else { 4 };
    let overlay = if variant.nv12 { nv12 } else { 4 * px };
    logits + nv12 + px + overlay
}

/// As [`time_samples`] for a sample of kernel launches, captured once into a CUDA graph and
/// replayed, so that the CPU's cost per launch does not set the pace of short kernels; if the
/// capture fails, the launches are issued one by one instead. Returns whether a graph ran.
fn time_launches(
    gpu: &GpuContext,
    stream: &Arc<CudaStream>,
    samples: usize,
    launches: &mut dyn FnMut() -> Result<()>,
) -> Result<(Vec<f64>, bool)> {
    let captured = stream
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            // The capture is ended whether or not every launch was recorded.
            let issued = launches();
            let graph = stream.end_capture(CUgraphInstantiate_flags_enum(0));
            issued?;
            Ok(graph?)
        });
    match captured {
        Ok(Some(graph)) => {
            let ms = time_samples(gpu, stream, samples, &mut || Ok(graph.launch()?))?;
            Ok((ms, true))
        }
        other => {
            let why = other
                .err()
                .map_or_else(|| "empty graph".to_owned(), |e| format!("{e:#}"));
            println!("CUDA graph capture failed ({why}); launching one by one");
            Ok((time_samples(gpu, stream, samples, launches)?, false))
        }
    }
}

/// The buffers of one fused launch.
struct FusedSet<T> {
    logits: CudaSlice<T>,
    frame: CudaSlice<u8>,
    map: CudaSlice<u8>,
    out: CudaSlice<u8>,
}

/// Which fused kernel.
#[derive(Clone, Copy)]
struct Variant {
    half: bool,
    nv12: bool,
}

impl Variant {
    fn name(self) -> &'static str {
        match (self.nv12, self.half) {
            (false, false) => "argmax_blend_rgba_f32",
            (false, true) => "argmax_blend_rgba_f16",
            (true, false) => "argmax_blend_nv12_f32",
            (true, true) => "argmax_blend_nv12_f16",
        }
    }
}

#[allow(clippy::too_many_lines, reason = "the copy, then the fused kernels")]
fn bandwidth(gpu: &GpuContext, rng: &mut Rng, quick: bool) -> Result<Bandwidth> {
    let ctx = gpu.context();
    // A stream of its own: CUDA graphs cannot be captured on the legacy default stream.
    let stream = &ctx.new_stream()?;
    let samples = if quick { 5 } else { 30 };
    let l2_bytes =
        usize::try_from(ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?)
            .unwrap_or(0);

    // Device-to-device copy of a buffer far larger than L2: bytes read + bytes written.
    let (free, _) = ctx.mem_get_info()?;
    let copy_len = (512usize << 20).min(free / 4);
    let src = stream.alloc_zeros::<u8>(copy_len)?;
    let mut dst = stream.alloc_zeros::<u8>(copy_len)?;
    let ms = time_samples(gpu, stream, samples, &mut || {
        Ok(stream.memcpy_dtod(&src, &mut dst)?)
    })?;
    drop((src, dst));
    let copy_us = median(ms) * 1e3;
    let copy_bytes = 2 * copy_len;
    let copy_gbps = gb_per_s(copy_bytes, copy_us);
    let copy = Timed {
        what: format!("cuMemcpyDtoD {} MiB (read + write)", copy_len >> 20),
        bytes: copy_bytes,
        sets: 1,
        per_sample: 1,
        samples,
        median_us: copy_us,
        gb_per_s: copy_gbps,
        ratio: 1.0,
        graph: false,
    };

    let palette = stream.clone_htod(&palette_bytes(&random_palette(rng)))?;
    let mut fused = Vec::new();
    let mut separate = Vec::new();
    let mut resident = Vec::new();
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let layout = pitched(w, h);
        let out_layout = pitched(w, h);
        let shape = LogitShape {
            classes: CLASSES,
            in_height: h.div_ceil(STRIDE),
            in_width: w.div_ceil(STRIDE),
            out_height: h,
            out_width: w,
        };
        let px = layout.pixels();
        for variant in [
            Variant {
                half: false,
                nv12: false,
            },
            Variant {
                half: true,
                nv12: false,
            },
            Variant {
                half: false,
                nv12: true,
            },
            Variant {
                half: true,
                nv12: true,
            },
        ] {
            let bytes = minimal_bytes(&shape, layout, variant);
            let out_len = if variant.nv12 {
                out_layout.required_len()
            } else {
                4 * px
            };
            // Enough sets that one round over them is 4× L2: every launch reads from DRAM.
            let sets = (4 * l2_bytes).div_ceil(bytes).max(2);
            let frames: Vec<CudaSlice<u8>> = (0..sets)
                .map(|_| stream.clone_htod(&random_frame(rng, layout)))
                .collect::<Result<_, _>>()?;
            let per_sample = sets * if quick { 1 } else { 4 };
            let what = format!(
                "{} {w}x{h}, logits {CLASSES}x{}x{}",
                variant.name(),
                shape.in_height,
                shape.in_width
            );
            let (median_us, graph) = if variant.half {
                let mut bufs = fused_sets::<u16>(stream, rng, &shape, frames, out_len, |r| {
                    reference::f32_to_f16_bits(r.logit())
                })?;
                let (ms, graph) = time_launches(gpu, stream, samples, &mut || {
                    for _ in 0..per_sample / sets {
                        for set in &mut bufs {
                            launch_fused_f16(
                                gpu, stream, set, &shape, layout, &palette, variant, out_layout,
                            )?;
                        }
                    }
                    Ok(())
                })?;
                (median(ms) * 1e3, graph)
            } else {
                let mut bufs = fused_sets::<f32>(stream, rng, &shape, frames, out_len, Rng::logit)?;
                let (ms, graph) = time_launches(gpu, stream, samples, &mut || {
                    for _ in 0..per_sample / sets {
                        for set in &mut bufs {
                            launch_fused_f32(
                                gpu, stream, set, &shape, layout, &palette, variant, out_layout,
                            )?;
                        }
                    }
                    Ok(())
                })?;
                // The same work as two kernels (the class map written, then read again), for
                // comparison: f32 logits only.
                let (ms_two, graph_two) = time_launches(gpu, stream, samples, &mut || {
                    for _ in 0..per_sample / sets {
                        for set in &mut bufs {
                            let FusedSet {
                                logits,
                                frame,
                                map,
                                out,
                            } = set;
                            gpu.upsample_argmax_f32(
                                stream,
                                &logits.as_view(),
                                &shape,
                                &mut map.as_view_mut(),
                            )?;
                            let (f, m, p) = (frame.as_view(), map.as_view(), palette.as_view());
                            let mut o = out.as_view_mut();
                            if variant.nv12 {
                                gpu.blend_nv12_nv12(
                                    stream, &f, layout, &m, &p, ALPHA, &mut o, out_layout,
                                )?;
                            } else {
                                gpu.blend_nv12_rgba(stream, &f, layout, &m, &p, ALPHA, &mut o)?;
                            }
                        }
                    }
                    Ok(())
                })?;
                #[allow(clippy::cast_precision_loss, reason = "small counts")]
                let two_us = median(ms_two) * 1e3 / per_sample as f64;
                let two_gbps = gb_per_s(bytes, two_us);
                separate.push(Timed {
                    what: format!(
                        "upsample_argmax_f32 + blend_nv12_{} {w}x{h}",
                        if variant.nv12 { "nv12" } else { "rgba" }
                    ),
                    bytes,
                    sets,
                    per_sample,
                    samples,
                    median_us: two_us,
                    gb_per_s: two_gbps,
                    ratio: two_gbps / copy_gbps,
                    graph: graph_two,
                });
                let (ms_one, graph_one) = time_launches(gpu, stream, samples, &mut || {
                    for _ in 0..per_sample {
                        if let Some(set) = bufs.first_mut() {
                            launch_fused_f32(
                                gpu, stream, set, &shape, layout, &palette, variant, out_layout,
                            )?;
                        }
                    }
                    Ok(())
                })?;
                #[allow(clippy::cast_precision_loss, reason = "small counts")]
                let one_us = median(ms_one) * 1e3 / per_sample as f64;
                let one_gbps = gb_per_s(bytes, one_us);
                resident.push(Timed {
                    what: format!("{} {w}x{h}, one buffer set (L2-resident)", variant.name()),
                    bytes,
                    sets: 1,
                    per_sample,
                    samples,
                    median_us: one_us,
                    gb_per_s: one_gbps,
                    ratio: one_gbps / copy_gbps,
                    graph: graph_one,
                });
                (median(ms) * 1e3, graph)
            };
            #[allow(clippy::cast_precision_loss, reason = "small counts")]
            let per_launch = median_us / per_sample as f64;
            let gbps = gb_per_s(bytes, per_launch);
            fused.push(Timed {
                what,
                bytes,
                sets,
                per_sample,
                samples,
                median_us: per_launch,
                gb_per_s: gbps,
                ratio: gbps / copy_gbps,
                graph,
            });
        }
    }
    Ok(Bandwidth {
        l2_bytes,
        copy,
        fused,
        separate,
        resident,
    })
}

fn fused_sets<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    rng: &mut Rng,
    shape: &LogitShape,
    frames: Vec<CudaSlice<u8>>,
    out_len: usize,
    logit: impl Fn(&mut Rng) -> T,
) -> Result<Vec<FusedSet<T>>> {
    frames
        .into_iter()
        .map(|frame| {
            let logits: Vec<T> = (0..shape.logits_len()).map(|_| logit(rng)).collect();
            Ok(FusedSet {
                logits: stream.clone_htod(&logits)?,
                frame,
                map: stream.alloc_zeros::<u8>(shape.class_map_len())?,
                out: stream.alloc_zeros::<u8>(out_len)?,
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
fn launch_fused_f32(
    gpu: &GpuContext,
    stream: &Arc<CudaStream>,
    set: &mut FusedSet<f32>,
    shape: &LogitShape,
    layout: Nv12Layout,
    palette: &CudaSlice<u8>,
    variant: Variant,
    out_layout: Nv12Layout,
) -> Result<()> {
    let (l, f, p) = (set.logits.as_view(), set.frame.as_view(), palette.as_view());
    let (mut m, mut o) = (set.map.as_view_mut(), set.out.as_view_mut());
    if variant.nv12 {
        gpu.argmax_blend_nv12_f32(
            stream, &l, shape, &f, layout, &p, ALPHA, &mut m, &mut o, out_layout,
        )?;
    } else {
        gpu.argmax_blend_rgba_f32(stream, &l, shape, &f, layout, &p, ALPHA, &mut m, &mut o)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
fn launch_fused_f16(
    gpu: &GpuContext,
    stream: &Arc<CudaStream>,
    set: &mut FusedSet<u16>,
    shape: &LogitShape,
    layout: Nv12Layout,
    palette: &CudaSlice<u8>,
    variant: Variant,
    out_layout: Nv12Layout,
) -> Result<()> {
    let (l, f, p) = (set.logits.as_view(), set.frame.as_view(), palette.as_view());
    let (mut m, mut o) = (set.map.as_view_mut(), set.out.as_view_mut());
    if variant.nv12 {
        gpu.argmax_blend_nv12_f16(
            stream, &l, shape, &f, layout, &p, ALPHA, &mut m, &mut o, out_layout,
        )?;
    } else {
        gpu.argmax_blend_rgba_f16(stream, &l, shape, &f, layout, &p, ALPHA, &mut m, &mut o)?;
    }
    Ok(())
}

fn check_line(c: &Check) -> String {
    format!(
        "| {} | {} | {} | {} | {:.3e} | {:.3e} | {} |",
        c.kernel,
        c.case,
        c.elements,
        c.bit_equal,
        c.max_abs,
        c.max_rel,
        if c.pass {
            "PASS".to_owned()
        } else {
            format!("FAIL (first at {})", c.first_mismatch.unwrap_or_default())
        }
    )
}

const CHECK_HEADER: &str = "| kernel | case | elements | bit-equal | max abs err | max rel err | result |\n|---|---|---|---|---|---|---|";
const TIMED_HEADER: &str = "| what | bytes | median µs | GB/s | / copy | sets × rounds, samples, timing |\n|---|---|---|---|---|---|";

fn timed_line(t: &Timed, target: bool) -> String {
    let verdict = if !target {
        String::new()
    } else if t.ratio >= TARGET_RATIO {
        " PASS".to_owned()
    } else {
        " FAIL".to_owned()
    };
    format!(
        "| {} | {} | {:.2} | {:.1} | {:.3}{verdict} | {} × {}, {}, {} |",
        t.what,
        t.bytes,
        t.median_us,
        t.gb_per_s,
        t.ratio,
        t.sets,
        t.per_sample / t.sets.max(1),
        t.samples,
        if t.graph { "CUDA graph" } else { "stream" }
    )
}

fn print_bandwidth(b: &Bandwidth) {
    println!(
        "\nbandwidth (CUDA events, medians; L2 {} MiB; target fused ≥ {:.2} × copy):\n{TIMED_HEADER}",
        b.l2_bytes >> 20,
        TARGET_RATIO
    );
    println!("{}", timed_line(&b.copy, false));
    for t in &b.fused {
        println!("{}", timed_line(t, true));
    }
    for t in b.separate.iter().chain(&b.resident) {
        println!("{}", timed_line(t, false));
    }
}

fn markdown(checks: &[Check], bandwidth: Option<&Bandwidth>) -> String {
    let mut md = format!("## Kernels against their references\n\n{CHECK_HEADER}\n");
    for c in checks {
        md.push_str(&check_line(c));
        md.push('\n');
    }
    let Some(b) = bandwidth else {
        md.push_str("\n## Bandwidth\n\nnot measured: an error stopped it (see the log)\n");
        return md;
    };
    md.push_str(&format!(
        "\n## Bandwidth (L2 {} MiB; target fused ≥ {:.2} × copy)\n\n{TIMED_HEADER}\n",
        b.l2_bytes >> 20,
        TARGET_RATIO
    ));
    md.push_str(&timed_line(&b.copy, false));
    md.push('\n');
    for t in &b.fused {
        md.push_str(&timed_line(t, true));
        md.push('\n');
    }
    for t in b.separate.iter().chain(&b.resident) {
        md.push_str(&timed_line(t, false));
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_must_agree_within_the_relative_bound() {
        let want = [1.0f32, -2.0, 0.0, 3.0];
        assert!(compare_floats("k", "c", &want, &want).pass);
        let close = [1.0f32, -2.0 * (1.0 + 4e-6), 0.0, 3.0];
        let c = compare_floats("k", "c", &close, &want);
        assert!(c.pass);
        assert_eq!(c.bit_equal, 3);
        assert!(c.max_rel > 0.0 && c.max_rel < MAX_REL);
        let far = [1.0f32, -2.0 * (1.0 + 3e-5), 0.0, 3.0];
        let c = compare_floats("k", "c", &far, &want);
        assert!(!c.pass);
        assert_eq!(c.first_mismatch, Some(1));
        // Anything but zero where zero is wanted, and NaN, fail.
        assert!(!compare_floats("k", "c", &[1.0, -2.0, 1e-30, 3.0], &want).pass);
        assert!(!compare_floats("k", "c", &[1.0, -2.0, 0.0, f32::NAN], &want).pass);
    }

    #[test]
    fn an_element_the_kernel_does_not_write_is_caught_by_the_two_poisons() {
        // The kernel's outputs of the two runs: the last byte kept the poison each time.
        let [a, b] = POISONS;
        let missed = [[vec![7, 7, a], vec![7, 7, b]]];
        let want = |_| Ok(vec![vec![7u8, 7, a]]);
        let mut checks = Vec::new();
        check_outputs(&mut checks, "k", "c", &missed, &want, Floats::None).unwrap();
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].pass, "the second run must fail");
        assert_eq!(checks[0].first_mismatch, Some(2));
        // Padding the reference leaves alone keeps the poison in both: that matches.
        let padding = |poison| Ok(vec![vec![7u8, 7, poison]]);
        checks.clear();
        check_outputs(&mut checks, "k", "c", &missed, &padding, Floats::None).unwrap();
        assert!(checks[0].pass);
        // Two outputs give two rows, named.
        let two = [[vec![1], vec![1]], [vec![2], vec![2]]];
        checks.clear();
        let want_two = |_| Ok(vec![vec![1u8], vec![3u8]]);
        check_outputs(&mut checks, "k", "c", &two, &want_two, Floats::None).unwrap();
        assert_eq!(checks.len(), 2);
        assert!(checks[0].pass && checks[0].case.ends_with("[class map]"));
        assert!(!checks[1].pass && checks[1].case.ends_with("[overlay]"));
    }

    #[test]
    fn minimal_bytes_count_each_input_and_output_once() {
        let shape = LogitShape {
            classes: CLASSES,
            in_height: 90,
            in_width: 160,
            out_height: 720,
            out_width: 1280,
        };
        let layout = pitched(1280, 720);
        // GPU-NOTES.md: 1,209,600 + 1,382,400 + 921,600 + 3,686,400.
        let rgba_f32 = Variant {
            half: false,
            nv12: false,
        };
        assert_eq!(minimal_bytes(&shape, layout, rgba_f32), 7_200_000);
        // f16 logits: half the logit bytes; NV12 overlay: 1,382,400 instead of 3,686,400.
        let nv12_f16 = Variant {
            half: true,
            nv12: true,
        };
        assert_eq!(
            minimal_bytes(&shape, layout, nv12_f16),
            604_800 + 1_382_400 + 921_600 + 1_382_400
        );
        // Odd sizes: chroma rounds up, pitch padding is not counted.
        let odd = pitched(321, 241);
        let shape = LogitShape {
            in_height: 31,
            in_width: 41,
            out_height: 241,
            out_width: 321,
            ..shape
        };
        let px = 321 * 241;
        assert_eq!(
            minimal_bytes(&shape, odd, rgba_f32),
            21 * 31 * 41 * 4 + (px + 2 * 161 * 121) + px + 4 * px
        );
    }

    #[test]
    fn pitched_layouts_leave_padding_between_the_planes() {
        let l = pitched(321, 241);
        assert_eq!(l.pitch, 512);
        assert_eq!(l.chroma_offset, 512 * 256);
        l.check("frame", l.required_len()).unwrap();
        assert_eq!(pitched(1280, 720).pitch, 1280);
    }
}
