//! NVDEC decode throughput with N concurrent streams (one thread and one decoder each), against
//! the worker's openh264 CPU decoder on the same stream with the same N threads, in one run.
//!
//! ```text
//! cargo run --release -p flowcloud-worker --example nvdec_throughput -- \
//!     --stream openh264-1280x720-300f.h264 [--streams 8,32] [--seconds 8] [--out result.json]
//! ```
//!
//! Each thread decodes the stream's access units in a loop (starting over at its first IDR)
//! for `--seconds`; all start together. NVDEC decodes with `NvdecDecoder::decode_mapped`, the
//! GPU path's entry point (the picture stays on the GPU, mapped for the kernels, then
//! unmapped); openh264 decodes into a host I420 frame, as the CPU path does. Per-frame latency
//! is the duration of the decode call that returned the picture. Reported per backend and N:
//! total frames/s, per-stream frames/s (mean and slowest), latency p50/p99, and the ratio of
//! NVDEC's total frames/s to openh264's.
//!
//! Exit status 2 with "not available" when NVDEC cannot be loaded (no NVIDIA driver).

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

#[path = "common/access_units.rs"]
mod access_units;
#[path = "common/not_available.rs"]
mod not_available;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use flowcloud_worker::decode::{
    DecodeOutcome, Decoder as _, DecoderConfig, NvdecDecoder, NvdecLibrary, OpenH264Decoder,
};
use flowcloud_worker::frame::I420Frame;
use serde_json::{Value, json};

struct Args {
    stream: PathBuf,
    streams: Vec<usize>,
    seconds: f64,
    out: Option<PathBuf>,
}

const USAGE: &str =
    "usage: nvdec_throughput --stream FILE.h264 [--streams 8,32] [--seconds 8] [--out result.json]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        stream: PathBuf::new(),
        streams: vec![8, 32],
        seconds: 8.0,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--stream" => args.stream = value()?.into(),
            "--streams" => {
                args.streams = value()?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<usize>()
                            .context("--streams: a list like 8,32")
                    })
                    .collect::<Result<_>>()?;
            }
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--out" => args.out = Some(value()?.into()),
            _ => bail!("unknown argument {arg:?}"),
        }
    }
    ensure!(!args.stream.as_os_str().is_empty(), "--stream is required");
    ensure!(
        args.streams.iter().all(|&n| n > 0),
        "--streams: counts above 0"
    );
    ensure!(args.seconds > 0.0, "--seconds must be positive");
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("nvdec_throughput: {e:#}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let lib = match NvdecLibrary::load() {
        Ok(lib) => lib,
        Err(e) => {
            return not_available::report("nvdec_throughput", &e.to_string(), args.out.as_deref());
        }
    };
    match run(&lib, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvdec_throughput: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One backend's run with N streams.
struct Row {
    backend: &'static str,
    streams: usize,
    frames: usize,
    wall_s: f64,
    fps_total: f64,
    fps_stream_mean: f64,
    fps_stream_min: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Row {
    fn to_json(&self) -> Value {
        json!({
            "backend": self.backend,
            "streams": self.streams,
            "frames": self.frames,
            "wall_s": self.wall_s,
            "fps_total": self.fps_total,
            "fps_per_stream_mean": self.fps_stream_mean,
            "fps_per_stream_min": self.fps_stream_min,
            "latency_p50_ms": self.p50_ms,
            "latency_p99_ms": self.p99_ms,
        })
    }
}

fn run(lib: &Arc<NvdecLibrary>, args: &Args) -> Result<()> {
    let units = Arc::new(access_units::read(&args.stream)?);
    // Loops restart at the first IDR, so every pass decodes from a clean reference.
    let first_idr = units
        .iter()
        .position(|u| contains_idr(u))
        .context("the stream has no IDR picture")?;
    println!(
        "{}: {} access units (loop from {first_idr}); {} s per run",
        args.stream.display(),
        units.len(),
        args.seconds
    );
    let limit = Duration::from_secs_f64(args.seconds);
    let mut rows = Vec::new();
    for &n in &args.streams {
        let nvdec = measure("nvdec", n, limit, &units, first_idr, &|| {
            let decoder = NvdecDecoder::new(lib, 0, DecoderConfig::default())?;
            Ok(Box::new(NvdecStream(decoder)) as Box<dyn Stream>)
        })?;
        print_row(&nvdec);
        let cpu = measure("openh264", n, limit, &units, first_idr, &|| {
            let decoder = OpenH264Decoder::new(DecoderConfig::default());
            Ok(Box::new(CpuStream(decoder, I420Frame::filled(0, 0, (0, 0, 0)))) as Box<dyn Stream>)
        })?;
        print_row(&cpu);
        rows.push((nvdec, cpu));
    }
    println!(
        "\n| streams | NVDEC fps (total) | openh264 fps (total) | NVDEC / openh264 | NVDEC fps per stream (mean, min) | NVDEC latency p50 / p99 ms | openh264 latency p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (g, c) in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.1}, {:.1} | {:.2} / {:.2} | {:.2} / {:.2} |",
            g.streams,
            g.fps_total,
            c.fps_total,
            g.fps_total / c.fps_total,
            g.fps_stream_mean,
            g.fps_stream_min,
            g.p50_ms,
            g.p99_ms,
            c.p50_ms,
            c.p99_ms
        );
    }
    if let Some(out) = &args.out {
        let result = json!({
            "status": "measured",
            "stream": args.stream.display().to_string(),
            "access_units": units.len(),
            "seconds_per_run": args.seconds,
            "runs": rows.iter().map(|(g, c)| json!({
                "streams": g.streams,
                "nvdec": g.to_json(),
                "openh264": c.to_json(),
                "nvdec_over_openh264": g.fps_total / c.fps_total,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(out, serde_json::to_string_pretty(&result)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn print_row(r: &Row) {
    println!(
        "{:>8} × {:>2}: {:>6} frames in {:.2} s = {:.0} fps total, per stream {:.1} mean / {:.1} min, latency p50 {:.2} ms p99 {:.2} ms",
        r.backend,
        r.streams,
        r.frames,
        r.wall_s,
        r.fps_total,
        r.fps_stream_mean,
        r.fps_stream_min,
        r.p50_ms,
        r.p99_ms
    );
}

fn contains_idr(unit: &[u8]) -> bool {
    flowcloud_core::h264::annexb::nal_units(unit)
        .is_ok_and(|mut nals| nals.any(|nal| nal.first().is_some_and(|&b| b & 0x1f == 5)))
}

/// One stream's decoder: decodes an access unit, true when it gave a picture.
trait Stream: Send {
    fn decode(&mut self, unit: &[u8]) -> Result<bool>;
}

struct NvdecStream(NvdecDecoder);

impl Stream for NvdecStream {
    fn decode(&mut self, unit: &[u8]) -> Result<bool> {
        // The mapped picture is dropped (unmapped) at once: the kernels would read it here.
        Ok(self.0.decode_mapped(unit)?.is_some())
    }
}

struct CpuStream(OpenH264Decoder, I420Frame);

impl Stream for CpuStream {
    fn decode(&mut self, unit: &[u8]) -> Result<bool> {
        Ok(self.0.decode(unit, &mut self.1)? == DecodeOutcome::Frame)
    }
}

/// `n` threads, each with a decoder from `make`, decoding `units` in a loop for `limit`.
fn measure(
    backend: &'static str,
    n: usize,
    limit: Duration,
    units: &Arc<Vec<Vec<u8>>>,
    first_idr: usize,
    make: &(dyn Fn() -> Result<Box<dyn Stream>> + Sync),
) -> Result<Row> {
    // Decoders are made before the clock starts (NVDEC's is created by the first SPS).
    let decoders = (0..n).map(|_| make()).collect::<Result<Vec<_>>>()?;
    let barrier = Arc::new(Barrier::new(n + 1));
    let threads: Vec<_> = decoders
        .into_iter()
        .map(|mut decoder| {
            let (units, barrier) = (Arc::clone(units), Arc::clone(&barrier));
            std::thread::spawn(move || -> Result<(Vec<f64>, f64)> {
                let mut latencies_ms = Vec::new();
                barrier.wait();
                let start = Instant::now();
                let mut i = 0;
                while start.elapsed() < limit {
                    let t = Instant::now();
                    let picture = decoder
                        .decode(&units[i])
                        .with_context(|| format!("access unit {i}"))?;
                    if picture {
                        latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    i += 1;
                    if i == units.len() {
                        i = first_idr;
                    }
                }
                Ok((latencies_ms, start.elapsed().as_secs_f64()))
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut per_stream = Vec::new();
    let mut all = Vec::new();
    for t in threads {
        let (latencies, seconds) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a {backend} thread panicked"))??;
        #[allow(clippy::cast_precision_loss, reason = "frame counts far below 2^52")]
        per_stream.push(latencies.len() as f64 / seconds);
        all.extend(latencies);
    }
    let wall_s = start.elapsed().as_secs_f64();
    ensure!(!all.is_empty(), "{backend}: no picture decoded");
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into the sorted samples"
        )]
        let i = ((all.len() - 1) as f64 * p).round() as usize;
        all[i]
    };
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let row = Row {
        backend,
        streams: n,
        frames: all.len(),
        wall_s,
        fps_total: all.len() as f64 / wall_s,
        fps_stream_mean: per_stream.iter().sum::<f64>() / n as f64,
        fps_stream_min: per_stream.iter().copied().fold(f64::INFINITY, f64::min),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    };
    Ok(row)
}
