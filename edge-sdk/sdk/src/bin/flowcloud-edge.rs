//! `flowcloud-edge`: stream a camera, a file, the test pattern or a synthetic street scene to a
//! FlowCloud worker and
//! print live statistics — frames per second, bitrate, round-trip time, capture→result latency
//! (p50/p99, split into encode / send queue / network / worker) and drops.
#![allow(clippy::print_stdout)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use flowcloud_edge::capture::file::{RawFileSource, Y4mSource};
use flowcloud_edge::capture::pattern::PatternSource;
use flowcloud_edge::capture::scene::{SceneConfig, SceneSource};
use flowcloud_edge::capture::{CaptureError, CaptureSource};
use flowcloud_edge::encode::nvenc::NvencEncoder;
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
use flowcloud_edge::picture::{PixelFormat, VideoFormat};
use flowcloud_edge::sender::{
    FrameResult, LatencySplit, Sender, SenderConfig, SenderEvent, SenderHandler, SenderStats,
};

/// Streams video to a FlowCloud worker as H.264 over RTP/TCP and prints a line of live
/// statistics per interval. Stops after `--frames` frames, at the end of a file, or on Ctrl-C,
/// then waits briefly for the last results.
#[derive(Debug, Parser)]
#[command(name = "flowcloud-edge", version)]
struct Args {
    /// The worker's ingest address (host:port).
    #[arg(long, env = "FLOWCLOUD_SERVER", default_value = "127.0.0.1:5004")]
    server: String,
    /// This camera's name (RTCP CNAME); the worker keys streams and stored results by it.
    #[arg(long, default_value = "flowcloud-edge")]
    cname: String,
    /// What to stream: `pattern` (moving test pattern), `scene` or `scene:SEED` (synthetic
    /// street scene with exact Cityscapes labels; seed 1 unless given), `raw:PATH` (NV12 or I420
    /// frames back to back, see --raw-format), `y4m:PATH`, or `v4l2:/dev/videoN`.
    #[arg(long, default_value = "pattern")]
    source: String,
    /// Pixel layout of a `raw:` file.
    #[arg(long, value_enum, default_value_t = RawFormat::I420)]
    raw_format: RawFormat,
    /// Start a file again at its end instead of stopping.
    #[arg(long = "loop")]
    looping: bool,
    /// Picture width (pattern, scene, raw files, V4L2 request).
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Picture height (pattern, scene, raw files, V4L2 request).
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Encoder: `openh264` (software), `v4l2:/dev/videoN` (V4L2 M2M hardware encoder), `jetson`
    /// (the Jetson's hardware encoder, found on its own; openh264 where there is none) or
    /// `nvenc`.
    #[arg(long, default_value = "openh264")]
    encoder: String,
    /// How `--encoder v4l2:/dev/videoN` opens its device: `kernel` (raw ioctls) or `libv4l2`
    /// (through libv4l2.so.0, as JetPack 5's encoder needs). `--encoder jetson` chooses on its
    /// own.
    #[arg(long, env = "FLOWCLOUD_V4L2_ACCESS", default_value = "kernel")]
    v4l2_access: String,
    /// Target bitrate, bits per second.
    #[arg(long, default_value_t = 2_500_000)]
    bitrate: u32,
    /// An IDR every this many frames (0: only at start and on request).
    #[arg(long, default_value_t = 60)]
    keyframe_interval: u32,
    /// Stop after this many frames (0: no limit).
    #[arg(long, default_value_t = 0)]
    frames: u64,
    /// Seconds between statistics lines.
    #[arg(long, default_value_t = 1.0)]
    stats_interval: f64,
    /// Send queue size in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    queue_bytes: usize,
    /// Largest reconnect delay step, milliseconds.
    #[arg(long, default_value_t = 5000)]
    reconnect_max_ms: u64,
    /// Most RTP payload bytes per packet.
    #[arg(long, default_value_t = 1400)]
    payload_budget: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RawFormat {
    I420,
    Nv12,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowcloud-edge: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(server: &str) -> Result<SocketAddr> {
    server
        .to_socket_addrs()
        .with_context(|| format!("resolving {server}"))?
        .next()
        .with_context(|| format!("{server} resolves to no address"))
}

fn open_source(args: &Args) -> Result<(Box<dyn CaptureSource>, bool)> {
    // The second value: whether the source paces itself (a camera) or this loop must.
    let (kind, rest) = args.source.split_once(':').unwrap_or((&args.source, ""));
    Ok(match kind {
        "pattern" => (
            Box::new(
                PatternSource::new(args.width as usize, args.height as usize, args.fps)?.unpaced(),
            ),
            false,
        ),
        "scene" => {
            let seed = if rest.is_empty() {
                1
            } else {
                rest.parse().with_context(|| {
                    format!("--source scene:{rest}: the seed must be a whole number")
                })?
            };
            let config = SceneConfig {
                fps: args.fps,
                ..SceneConfig::new(args.width as usize, args.height as usize, seed)
            };
            (Box::new(SceneSource::new(config)?.unpaced()), false)
        }
        "raw" | "y4m" | "v4l2" if rest.is_empty() => {
            bail!("--source {kind}: needs a path ({kind}:PATH)")
        }
        "raw" => {
            let pixel_format = match args.raw_format {
                RawFormat::I420 => PixelFormat::I420,
                RawFormat::Nv12 => PixelFormat::Nv12,
            };
            let format = VideoFormat {
                width: args.width,
                height: args.height,
                pixel_format,
                frame_rate: (args.fps, 1),
            };
            (
                Box::new(RawFileSource::open(rest, format)?.looping(args.looping)),
                false,
            )
        }
        "y4m" => (
            Box::new(Y4mSource::open(rest)?.looping(args.looping)),
            false,
        ),
        #[cfg(target_os = "linux")]
        "v4l2" => {
            use flowcloud_edge::capture::v4l2::{CaptureMemory, V4l2Capture, V4l2CaptureConfig};
            let mut config = V4l2CaptureConfig::new(args.width, args.height, PixelFormat::Nv12);
            config.frame_rate = (args.fps, 1);
            // A hardware encoder takes the camera's buffers without a copy.
            if args.encoder.starts_with("v4l2:") || args.encoder == "jetson" {
                config.memory = CaptureMemory::DmabufExport;
            }
            // Jetson's encoder takes NV12M: a DMABUF per plane from the camera goes in as is.
            config.multi_buffer = args.encoder == "jetson";
            (Box::new(V4l2Capture::open(rest, &config)?), true)
        }
        other => {
            bail!(
                "unknown --source {other:?}: use pattern, scene[:SEED], raw:PATH, y4m:PATH or v4l2:/dev/videoN"
            )
        }
    })
}

fn open_encoder(args: &Args, format: VideoFormat) -> Result<Box<dyn VideoEncoder>> {
    let (width, height, raw) = (format.width, format.height, format.pixel_format);
    let mut settings = EncoderSettings::new(width, height, args.fps);
    settings.bitrate_bps = args.bitrate;
    settings.keyframe_interval = args.keyframe_interval;
    let (kind, rest) = args.encoder.split_once(':').unwrap_or((&args.encoder, ""));
    Ok(match kind {
        "openh264" => Box::new(OpenH264Encoder::new(settings)?),
        "nvenc" => Box::new(NvencEncoder::new(settings)?),
        // Jetson: the hardware encoder where the module has one, openh264 where it does not.
        #[cfg(target_os = "linux")]
        "jetson" => {
            use flowcloud_edge::encode::jetson::{JetsonTuning, RealSystem, open_encoder};
            let selected = open_encoder(&RealSystem, settings, raw, &JetsonTuning::default())?;
            eprintln!("flowcloud-edge: {}", selected.log_line);
            selected.encoder
        }
        #[cfg(target_os = "linux")]
        "v4l2" if !rest.is_empty() => {
            use flowcloud_edge::encode::v4l2_m2m::{M2mOptions, V4l2M2mEncoder};
            use flowcloud_edge::v4l2::{AccessKind, FourCc};
            let Some(access) = AccessKind::parse(&args.v4l2_access) else {
                bail!(
                    "unknown --v4l2-access {:?}: use kernel or libv4l2",
                    args.v4l2_access
                )
            };
            let options = M2mOptions {
                access: access.resolve()?,
                ..M2mOptions::default()
            };
            Box::new(V4l2M2mEncoder::with_options(
                rest,
                settings,
                raw,
                FourCc::H264,
                &options,
            )?)
        }
        other => {
            bail!("unknown --encoder {other:?}: use openh264, v4l2:/dev/videoN, jetson or nvenc")
        }
    })
}

/// Per-interval figures, reset after each statistics line.
struct Live {
    latencies: Vec<LatencySplit>,
    results: u64,
    events: Vec<String>,
}

impl SenderHandler for Live {
    fn on_result(&mut self, result: &FrameResult<'_>) {
        self.results += 1;
        if let Some(split) = result.latency
            && self.latencies.len() < self.latencies.capacity()
        {
            self.latencies.push(split);
        }
    }

    fn on_event(&mut self, event: SenderEvent) {
        let line = match event {
            SenderEvent::Connected { peer } => format!("connected to {peer}"),
            SenderEvent::ConnectFailed { kind, retry_in } => {
                format!(
                    "connect failed ({kind}); retrying in {} ms",
                    retry_in.as_millis()
                )
            }
            SenderEvent::Disconnected {
                kind,
                frames_lost,
                retry_in,
            } => format!(
                "disconnected ({kind}), {frames_lost} queued frames lost; retrying in {} ms",
                retry_in.as_millis()
            ),
            SenderEvent::KeyframeRequested { cause } => format!("keyframe requested ({cause:?})"),
            SenderEvent::RoundTrip { .. } => return,
        };
        if self.events.len() < self.events.capacity() {
            self.events.push(line);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_stats(
    live: &mut Live,
    now: SenderStats,
    before: &SenderStats,
    elapsed: Duration,
    totals: &mut Vec<Duration>,
) {
    for line in live.events.drain(..) {
        println!("  {line}");
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let fps = (now.frames_sent - before.frames_sent) as f64 / secs;
    let mbps = (now.bytes_sent - before.bytes_sent) as f64 * 8.0 / secs / 1e6;
    let dropped = now.frames_dropped() - before.frames_dropped();
    totals.clear();
    totals.extend(live.latencies.iter().map(|l| l.total));
    totals.sort_unstable();
    let count = live.latencies.len().max(1) as u32;
    let mean =
        |f: fn(&LatencySplit) -> Duration| live.latencies.iter().map(f).sum::<Duration>() / count;
    let rtt = now
        .rtt
        .map_or_else(|| "-".to_owned(), |r| format!("{:.2} ms", ms(r)));
    println!(
        "{fps:5.1} fps {mbps:6.2} Mbit/s  rtt {rtt}  results {:4}  capture→result p50 {:6.1} ms p99 {:6.1} ms (encode {:.1} / queue {:.1} / network {:.1} / worker {:.1})  dropped {dropped}  queue {} KiB",
        live.results,
        ms(percentile(totals, 0.5)),
        ms(percentile(totals, 0.99)),
        ms(mean(|l| l.encode)),
        ms(mean(|l| l.send_queue)),
        ms(mean(|l| l.network)),
        ms(mean(|l| l.worker)),
        now.queue_bytes / 1024,
    );
    live.latencies.clear();
    live.results = 0;
}

fn run(args: &Args) -> Result<()> {
    if !(args.stats_interval > 0.0 && args.stats_interval.is_finite()) {
        bail!("--stats-interval must be a positive number of seconds");
    }
    if args.fps == 0 {
        bail!("--fps must be at least 1");
    }
    let server = resolve(&args.server)?;
    let (mut source, self_paced) = open_source(args)?;
    let format = source.format();
    let mut encoder = open_encoder(args, format)?;
    let mut config = SenderConfig::new(server, &args.cname);
    config.queue_bytes = args.queue_bytes;
    config.reconnect_max = Duration::from_millis(args.reconnect_max_ms);
    config.payload_budget = args.payload_budget;
    let mut sender = Sender::new(config)?;
    println!(
        "flowcloud-edge: {} {}x{} {} at {} fps → {} (encoder {}, {} kbit/s)",
        args.source,
        format.width,
        format.height,
        format.pixel_format,
        args.fps,
        server,
        args.encoder,
        args.bitrate / 1000
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc_flag(stop)?;
    }
    // Reserved once: an access unit of up to 8 MiB, a second of latencies, a few event lines.
    let mut access_unit = Vec::with_capacity(8 << 20);
    let mut live = Live {
        latencies: Vec::with_capacity(args.fps as usize * 4 + 64),
        results: 0,
        events: Vec::with_capacity(64),
    };
    let mut totals = Vec::with_capacity(live.latencies.capacity());
    let interval = Duration::from_secs_f64(args.stats_interval);
    let frame_interval = Duration::from_secs(1) / args.fps;
    let mut next_frame = Instant::now();
    let mut next_stats = Instant::now() + interval;
    let mut last_stats = (Instant::now(), sender.stats());
    let mut frames = 0u64;
    while !stop.load(Ordering::Relaxed) && (args.frames == 0 || frames < args.frames) {
        // Between frames the sender keeps reading results and RTCP.
        loop {
            let now = Instant::now();
            if now >= next_stats {
                print_stats(
                    &mut live,
                    sender.stats(),
                    &last_stats.1,
                    now - last_stats.0,
                    &mut totals,
                );
                last_stats = (now, sender.stats());
                next_stats = now + interval;
            }
            if self_paced || now >= next_frame {
                break;
            }
            sender.poll(Some((next_frame - now).min(next_stats - now)), &mut live)?;
        }
        next_frame = next_frame.max(Instant::now() - frame_interval) + frame_interval;
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(CaptureError::EndOfStream) => break,
            Err(e) => return Err(e).context("capturing"),
        };
        let captured_at = frame.captured_at;
        if sender.take_keyframe_request() {
            encoder.request_keyframe();
        }
        let encoded = encoder
            .encode(&frame, &mut access_unit)
            .context("encoding")?;
        if encoded.len > 0 {
            sender.submit_with(
                &access_unit[..encoded.len],
                captured_at,
                encoded.encode_time,
                &mut live,
            )?;
        }
        sender.poll(Some(Duration::ZERO), &mut live)?;
        frames += 1;
    }
    // The last frames' results are still on their way.
    let end = Instant::now() + Duration::from_secs(2);
    sender.flush(Duration::from_secs(2), &mut live)?;
    while Instant::now() < end
        && sender.stats().results + sender.stats().frames_dropped()
            < sender.stats().frames_submitted
    {
        sender.poll(Some(Duration::from_millis(20)), &mut live)?;
    }
    let now = Instant::now();
    print_stats(
        &mut live,
        sender.stats(),
        &last_stats.1,
        now - last_stats.0,
        &mut totals,
    );
    let s = sender.stats();
    println!(
        "flowcloud-edge: {frames} frames captured, {} sent, {} dropped, {} results, {} reconnects",
        s.frames_sent,
        s.frames_dropped(),
        s.results,
        s.connects.saturating_sub(1)
    );
    Ok(())
}

/// Sets `stop` on SIGINT/SIGTERM (the loop then finishes the current frame and drains).
fn ctrlc_flag(stop: Arc<AtomicBool>) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::{SigHandler, Signal, signal};
        STOP.set(stop).ok();
        extern "C" fn on_signal(_: nix::libc::c_int) {
            if let Some(stop) = STOP.get() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only performs an atomic store on an already-initialized
            // static, which is async-signal-safe.
            unsafe { signal(sig, SigHandler::Handler(on_signal)) }
                .context("installing the signal handler")?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stop;
    Ok(())
}

#[cfg(target_os = "linux")]
static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
