//! The FlowCloud demo: several simulated cameras stream H.264 to a real `flowcloud-worker`
//! process and get a segmentation result back for every frame.
//!
//! 1. Each camera's clip (the moving test pattern, a different phase per camera) is encoded with
//!    openh264 up front: baseline, an IDR with SPS and PPS every 30 frames.
//! 2. `flowcloud-worker` is started as a child process on free loopback ports with the model
//!    (the tiny test model by default), its log going to a file; `/readyz` is polled until 200.
//! 3. One thread per camera connects over TCP, identifies itself (RTCP SR + SDES CNAME), then
//!    sends its clip as RTP (RFC 6184) in RFC 4571 framing, paced at `--fps`; a reader thread
//!    per camera takes the worker's replies apart (receiver reports, PLIs, `FCSG` results).
//! 4. `/metrics` is scraped before the cameras disconnect, then the worker gets SIGTERM and must
//!    exit 0 within 10 s.
//! 5. A table per camera: frames sent, results, result rate, capture→result latency, the
//!    worker's stage times, the dominant classes. The run fails (non-zero exit) unless every
//!    camera got a result for at least 95% of its frames and the worker shut down cleanly.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use flowcloud_core::framing::{Deframer, MAX_FRAME_LEN, frame_into};
use flowcloud_core::h264::{Packetizer, PacketizerConfig};
use flowcloud_core::results::ResultView;
use flowcloud_core::rtcp::{
    self, CompoundWriter, NtpTimestamp, ReportBlocks, RtcpError, RtcpPacket, SenderReport,
};
use flowcloud_edge::capture::pattern::TestPattern;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
};
use openh264::formats::YUVSlices;

/// RTP clock rate for video (RFC 6184 §8.2.1).
const CLOCK_HZ: u64 = 90_000;
/// An IDR every this many frames.
const KEYFRAME_INTERVAL: u64 = 30;
/// Frames between the phases of consecutive cameras' test patterns.
const PHASE_STEP: u64 = 41;
/// Width of the class map the worker puts in each result.
const CLASS_MAP_WIDTH: u16 = 32;
/// How long the worker may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the worker may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for outstanding results after the last frame was sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Share of its frames each camera must get a result for.
const MIN_RESULT_SHARE: f64 = 0.95;
/// Cityscapes train ids 0..=18, the tiny model's class set.
const CITYSCAPES: [&str; 19] = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
];

/// Streams simulated cameras (openh264-encoded test pattern, RTP over TCP) into a real
/// `flowcloud-worker` child process (openh264 decode, ONNX Runtime segmentation) and reports the
/// per-frame results it returns. Fails (non-zero exit) unless every camera gets a result for at
/// least 95% of its frames and the worker exits 0 on SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "flowcloud-demo", version)]
struct Args {
    /// Number of simulated cameras streaming at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    cameras: u32,
    /// Frames each camera sends.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    frames: u32,
    /// Frames per second each camera sends (RTP timestamps advance 90000 / fps per frame).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// Picture width in pixels (even, at least 32).
    #[arg(long, default_value_t = 320)]
    width: u32,
    /// Picture height in pixels (even, at least 32).
    #[arg(long, default_value_t = 240)]
    height: u32,
    /// The segmentation model (`.onnx` with its `.toml` manifest next to it) the worker loads.
    #[arg(long, default_value_os_t = default_model())]
    model: PathBuf,
    /// The `flowcloud-worker` binary; default: the one next to this executable.
    #[arg(long)]
    worker: Option<PathBuf>,
    /// Keep the worker's log file (its path is printed) instead of deleting it at the end.
    #[arg(long)]
    keep_worker_log: bool,
}

/// The repository root: the parent of this crate's folder.
fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

fn default_model() -> PathBuf {
    repo_root().join("engines/tiny/tiny-seg.onnx")
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowcloud-demo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One encoded frame of a camera's clip.
struct Frame {
    rtp_timestamp: u32,
    data: Vec<u8>,
}

/// One `FCSG` result as the camera saw it.
struct Reply {
    rtp_timestamp: u32,
    arrived: Instant,
    decode_us: u32,
    infer_us: u32,
    post_us: u32,
    histogram: Vec<u32>,
    class_map: Option<(u16, u16)>,
}

/// Everything a camera's reader thread collected.
#[derive(Default)]
struct Replies {
    results: Vec<Reply>,
    receiver_reports: u64,
    plis: u64,
    other_packets: u64,
    errors: Vec<String>,
}

/// Live counters of one camera.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    results: AtomicU64,
}

/// A camera after sending: its connection (still open), its reader, and when each frame went out.
struct Streaming {
    stream: TcpStream,
    reader: JoinHandle<Replies>,
    sent_at: Vec<Instant>,
}

fn run(args: &Args) -> Result<()> {
    let pattern = TestPattern::new(args.width as usize, args.height as usize)?;
    let worker_bin = match &args.worker {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("flowcloud-worker"),
    };
    ensure!(
        worker_bin.is_file(),
        "no worker binary at {} (build it: cargo build --release -p flowcloud-worker, or pass --worker)",
        worker_bin.display()
    );
    ensure!(
        args.model.is_file(),
        "no model at {} (pass --model)",
        args.model.display()
    );
    let model = args.model.canonicalize()?;
    let cameras = args.cameras as usize;

    println!(
        "flowcloud-demo: {cameras} cameras × {} frames of {}x{} at {} fps → flowcloud-worker (openh264 decode, ONNX Runtime segmentation, FCSG results)",
        args.frames, args.width, args.height, args.fps
    );
    println!(
        "model: {}",
        model.strip_prefix(repo_root()).unwrap_or(&model).display()
    );
    if model.file_name().is_some_and(|n| n == "tiny-seg.onnx") {
        println!(
            "note: the tiny test model has random weights: its class maps are deterministic but meaningless"
        );
    }

    // 1. Encode every camera's clip.
    let started = Instant::now();
    let clips: Vec<Vec<Frame>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..cameras)
            .map(|camera| {
                let pattern = &pattern;
                scope.spawn(move || encode(args, pattern, camera as u64 * PHASE_STEP))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("an encoder thread panicked"))?
            })
            .collect::<Result<_>>()
    })?;
    let total_frames = cameras * args.frames as usize;
    let bytes: usize = clips.iter().flatten().map(|f| f.data.len()).sum();
    println!(
        "encoded {total_frames} frames (openh264, IDR every {KEYFRAME_INTERVAL}) in {:.2} s, {:.0} bytes per frame on average",
        started.elapsed().as_secs_f64(),
        bytes as f64 / total_frames as f64
    );

    // 2. The worker.
    let mut worker = Worker::start(&worker_bin, &model, args.keep_worker_log)?;
    println!(
        "worker pid {}: media {}, http {}, log {}",
        worker.child.id(),
        worker.media,
        worker.http,
        worker.log.display()
    );
    let started = Instant::now();
    worker.wait_ready()?;
    println!(
        "worker ready after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // 3. Stream.
    let progress: Vec<Arc<Progress>> = (0..cameras).map(|_| Arc::default()).collect();
    let start = Instant::now() + Duration::from_millis(100);
    let senders: Vec<JoinHandle<Result<Streaming>>> = clips
        .into_iter()
        .enumerate()
        .map(|(camera, clip)| {
            let progress = Arc::clone(&progress[camera]);
            let media = worker.media;
            // Spread the cameras' frames over the frame interval.
            let offset =
                Duration::from_secs_f64(camera as f64 / (cameras as f64 * f64::from(args.fps)));
            let fps = args.fps;
            thread::Builder::new()
                .name(format!("camera-{camera}"))
                .spawn(move || stream_camera(camera, media, &clip, fps, start + offset, &progress))
                .context("spawning a camera thread")
        })
        .collect::<Result<_>>()?;
    let print_live = |elapsed: Duration| {
        let sent: u64 = progress
            .iter()
            .map(|p| p.sent.load(Ordering::Relaxed))
            .sum();
        let results: u64 = progress
            .iter()
            .map(|p| p.results.load(Ordering::Relaxed))
            .sum();
        println!(
            "[{:5.1} s] sent {sent}/{total_frames} frames, results {results}",
            elapsed.as_secs_f64()
        );
    };
    let mut next_report = start + Duration::from_secs(1);
    while !senders.iter().all(JoinHandle::is_finished) {
        thread::sleep(Duration::from_millis(20));
        if Instant::now() >= next_report {
            print_live(next_report - start);
            next_report += Duration::from_secs(1);
        }
    }
    let mut streaming = Vec::with_capacity(cameras);
    for (camera, sender) in senders.into_iter().enumerate() {
        streaming.push(
            sender
                .join()
                .map_err(|_| anyhow!("camera {camera}'s thread panicked"))?
                .with_context(|| format!("camera {camera}"))?,
        );
    }
    // Wait for the results still in flight.
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    while progress
        .iter()
        .any(|p| p.results.load(Ordering::Relaxed) < u64::from(args.frames))
        && Instant::now() < drain_deadline
    {
        thread::sleep(Duration::from_millis(20));
        if Instant::now() >= next_report {
            print_live(next_report - start);
            next_report += Duration::from_secs(1);
        }
    }
    print_live(Instant::now() - start);

    // 4. Metrics while connected, then disconnect and shut the worker down.
    let metrics = worker.get("/metrics");
    for camera in &streaming {
        // The worker closes its side once it has seen ours close; the reader then sees EOF.
        let _ = camera.stream.shutdown(Shutdown::Write);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while !streaming.iter().all(|c| c.reader.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let mut cameras_out = Vec::with_capacity(cameras);
    for (camera, s) in streaming.into_iter().enumerate() {
        let _ = s.stream.shutdown(Shutdown::Both);
        let replies = s
            .reader
            .join()
            .map_err(|_| anyhow!("camera {camera}'s reader thread panicked"))?;
        cameras_out.push((s.sent_at, replies));
    }
    let shutdown = worker.terminate();

    // 5. Report.
    println!();
    println!("worker /metrics before the cameras disconnected (frames returned per camera):");
    match &metrics {
        Ok((200, body)) => {
            let mut lines: Vec<&str> = body
                .lines()
                .filter(|l| {
                    (l.starts_with("flowcloud_frames_total") && l.contains("stage=\"returned\""))
                        || l.starts_with("flowcloud_connections_open")
                })
                .collect();
            lines.sort_unstable();
            for line in lines {
                println!("  {line}");
            }
        }
        Ok((status, body)) => println!("  HTTP {status}: {}", body.trim()),
        Err(e) => println!("  cannot scrape: {e:#}"),
    }
    println!();

    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let mut all_latencies = Vec::new();
    let (mut all_hist, mut all_stages, mut all_results) = (vec![0u64; 0], [0u64; 3], 0u64);
    let (mut rrs, mut plis) = (0, 0);
    let mut first_arrival: Option<Instant> = None;
    let mut last_arrival: Option<Instant> = None;
    let mut map_sizes = Vec::new();
    for (camera, (sent_at, replies)) in cameras_out.iter().enumerate() {
        let name = cname(camera);
        let ticks_to_index: HashMap<u32, usize> = (0..sent_at.len())
            .map(|i| (rtp_timestamp(i as u64, args.fps), i))
            .collect();
        let mut latencies = Vec::with_capacity(replies.results.len());
        let mut hist = vec![0u64; 0];
        let mut stages = [0u64; 3];
        let mut seen = vec![false; sent_at.len()];
        for r in &replies.results {
            match ticks_to_index.get(&r.rtp_timestamp) {
                Some(&i) if !seen[i] => {
                    seen[i] = true;
                    latencies.push(r.arrived.saturating_duration_since(sent_at[i]));
                }
                Some(&i) => failures.push(format!("{name}: two results for frame {i}")),
                None => failures.push(format!(
                    "{name}: result for unknown RTP timestamp {}",
                    r.rtp_timestamp
                )),
            }
            add_histogram(&mut hist, &r.histogram);
            stages[0] += u64::from(r.decode_us);
            stages[1] += u64::from(r.infer_us);
            stages[2] += u64::from(r.post_us);
            if let Some(size) = r.class_map
                && !map_sizes.contains(&size)
            {
                map_sizes.push(size);
            }
        }
        add_histogram(&mut all_hist, &hist);
        for (all, s) in all_stages.iter_mut().zip(stages) {
            *all += s;
        }
        let results = latencies.len() as u64;
        all_results += results;
        rrs += replies.receiver_reports;
        plis += replies.plis;
        let arrivals = replies.results.iter().map(|r| r.arrived);
        let (first, last) = (arrivals.clone().min(), arrivals.max());
        first_arrival = [first_arrival, first].into_iter().flatten().min();
        last_arrival = [last_arrival, last].into_iter().flatten().max();
        latencies.sort_unstable();
        all_latencies.extend_from_slice(&latencies);
        let sent = sent_at.len() as u64;
        let share = results as f64 / sent as f64;
        if share < MIN_RESULT_SHARE {
            failures.push(format!(
                "{name}: results for {results} of {sent} frames ({:.1}%, need ≥ {:.0}%)",
                share * 100.0,
                MIN_RESULT_SHARE * 100.0
            ));
        }
        if !replies.errors.is_empty() {
            failures.push(format!(
                "{name}: bad replies from the worker: {}",
                replies.errors.join("; ")
            ));
        }
        rows.push(row(
            &name,
            sent,
            results,
            rate(results, first, last),
            &latencies,
            stages,
            &hist,
        ));
    }
    all_latencies.sort_unstable();
    let sent_total = total_frames as u64;
    rows.push(row(
        "total",
        sent_total,
        all_results,
        rate(all_results, first_arrival, last_arrival),
        &all_latencies,
        all_stages,
        &all_hist,
    ));

    println!(
        "{:<14} {:>6} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6}  top classes (pixel share)",
        "camera",
        "sent",
        "results",
        "%",
        "fps",
        "p50 ms",
        "p95 ms",
        "max ms",
        "dec µs",
        "inf µs",
        "post µs"
    );
    let last = rows.len() - 1;
    for (i, r) in rows.iter().enumerate() {
        if i == last {
            println!("{}", "-".repeat(r.chars().count().min(140)));
        }
        println!("{r}");
    }
    println!();
    println!(
        "latency: capture→result, from just before a frame is packetized and sent to its FCSG result read back (one clock)"
    );
    println!(
        "stage times: the worker's own decode / inference / post-processing µs per frame, from the results (means)"
    );
    println!(
        "class maps: {} in results; worker replies: {rrs} receiver reports, {plis} PLIs",
        if map_sizes.is_empty() {
            "none".to_owned()
        } else {
            map_sizes
                .iter()
                .map(|(w, h)| format!("{w}x{h}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if map_sizes.is_empty() {
        failures.push("no class maps in the results".into());
    }
    match &shutdown {
        Ok((status, took)) if status.success() => {
            println!("worker: SIGTERM → exited 0 in {:.2} s", took.as_secs_f64())
        }
        Ok((status, _)) => failures.push(format!("the worker exited with {status} after SIGTERM")),
        Err(e) => failures.push(format!("worker shutdown: {e:#}")),
    }

    println!();
    if !failures.is_empty() {
        for failure in &failures {
            println!("FAIL: {failure}");
        }
        worker.keep_log = true;
        println!("worker log kept at {}; last lines:", worker.log.display());
        print!("{}", worker.log_tail(20));
        bail!(
            "demo failed ({} problems): {}",
            failures.len(),
            failures.join("; ")
        );
    }
    println!(
        "PASS: {cameras}/{cameras} cameras got results for ≥ {:.0}% of their frames ({all_results}/{sent_total} results), worker shut down cleanly",
        MIN_RESULT_SHARE * 100.0
    );
    if args.keep_worker_log {
        println!("worker log: {}", worker.log.display());
    }
    Ok(())
}

fn cname(camera: usize) -> String {
    format!("demo-camera-{camera}")
}

fn rtp_timestamp(index: u64, fps: u32) -> u32 {
    // Wraps after 13 hours at 90 kHz; --frames is capped far below that.
    (index * CLOCK_HZ / u64::from(fps)) as u32
}

fn add_histogram(into: &mut Vec<u64>, from: &[impl Copy + Into<u64>]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, &b) in into.iter_mut().zip(from) {
        *a += b.into();
    }
}

/// Results per second between the first and the last result.
fn rate(results: u64, first: Option<Instant>, last: Option<Instant>) -> f64 {
    match (first, last) {
        (Some(first), Some(last)) if results > 1 && last > first => {
            (results - 1) as f64 / (last - first).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// One line of the final table.
fn row(
    name: &str,
    sent: u64,
    results: u64,
    fps: f64,
    latencies: &[Duration],
    stages: [u64; 3],
    hist: &[u64],
) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = |us: u64| us as f64 / results.max(1) as f64;
    let mut out = format!(
        "{name:<14} {sent:>6} {results:>7} {:>6.1} {fps:>6.1} {:>8.1} {:>8.1} {:>8.1} {:>7.0} {:>7.0} {:>7.0}  ",
        results as f64 * 100.0 / sent.max(1) as f64,
        ms(percentile(latencies, 50)),
        ms(percentile(latencies, 95)),
        ms(latencies.last().copied().unwrap_or_default()),
        mean(stages[0]),
        mean(stages[1]),
        mean(stages[2]),
    );
    let total: u64 = hist.iter().sum();
    let mut classes: Vec<(usize, u64)> = hist.iter().copied().enumerate().collect();
    classes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<String> = classes
        .iter()
        .take(3)
        .filter(|(_, n)| *n > 0)
        .map(|&(class, n)| {
            let name = CITYSCAPES
                .get(class)
                .map_or_else(|| format!("class {class}"), |s| (*s).to_owned());
            format!("{name} {:.0}%", n as f64 * 100.0 / total as f64)
        })
        .collect();
    out.push_str(&top.join(", "));
    out
}

/// The `p`-th percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Encodes `--frames` frames of the pattern starting at frame `phase`.
fn encode(args: &Args, pattern: &TestPattern, phase: u64) -> Result<Vec<Frame>> {
    let config = EncoderConfig::new()
        .profile(Profile::Baseline)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(1_000_000))
        .max_frame_rate(FrameRate::from_hz(args.fps as f32))
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .scene_change_detect(false)
        .num_threads(1);
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .context("creating the openh264 encoder")?;
    let mut picture = vec![0u8; pattern.frame_len()];
    let (w, h) = (pattern.width(), pattern.height());
    let mut frames = Vec::with_capacity(args.frames as usize);
    for index in 0..u64::from(args.frames) {
        pattern.render(phase + index, &mut picture);
        let yuv = YUVSlices::new(pattern.planes(&picture), (w, h), (w, w / 2, w / 2));
        if index % KEYFRAME_INTERVAL == 0 {
            encoder.force_intra_frame();
        }
        let bitstream = encoder
            .encode(&yuv)
            .with_context(|| format!("encoding frame {index}"))?;
        let mut data = Vec::new();
        bitstream.write_vec(&mut data);
        ensure!(
            !data.is_empty(),
            "the encoder produced nothing for frame {index}"
        );
        frames.push(Frame {
            rtp_timestamp: rtp_timestamp(index, args.fps),
            data,
        });
    }
    Ok(frames)
}

/// RTCP SR + SDES CNAME, framed: what a camera sends first.
fn handshake(ssrc: u32, cname: &str) -> Result<Vec<u8>> {
    // NTP time: seconds since 1900.
    let unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut buf = [0u8; 600];
    let mut c = CompoundWriter::new(&mut buf);
    c.push_with::<RtcpError>(|out| {
        SenderReport {
            ssrc,
            ntp: NtpTimestamp::from_micros(unix_us + 2_208_988_800_000_000),
            rtp_timestamp: 0,
            packet_count: 0,
            octet_count: 0,
            reports: ReportBlocks::EMPTY,
        }
        .write(out)
    })
    .map_err(|e| anyhow!("writing the sender report: {e}"))?;
    c.push_with::<RtcpError>(|out| rtcp::write_sdes_cname(ssrc, cname.as_bytes(), out))
        .map_err(|e| anyhow!("writing the SDES: {e}"))?;
    let packet = c.finish();
    let mut framed = vec![0; packet.len() + 2];
    let n = frame_into(packet, &mut framed).map_err(|e| anyhow!("framing the handshake: {e}"))?;
    framed.truncate(n);
    Ok(framed)
}

/// A camera: connects, identifies itself, starts its reader and sends its clip paced at `fps`
/// from `start`. Returns with the connection still open.
fn stream_camera(
    camera: usize,
    media: SocketAddr,
    clip: &[Frame],
    fps: u32,
    start: Instant,
    progress: &Arc<Progress>,
) -> Result<Streaming> {
    let mut stream = TcpStream::connect(media).context("connecting to the worker")?;
    stream.set_nodelay(true)?;
    let ssrc = 0x0de0_0000_u32.wrapping_add(camera as u32 * 0x1_0001) ^ 0x5eed_f10c;
    stream
        .write_all(&handshake(ssrc, &cname(camera))?)
        .context("sending the handshake")?;
    let reader = {
        let stream = stream.try_clone()?;
        let progress = Arc::clone(progress);
        thread::Builder::new()
            .name(format!("camera-{camera}-reader"))
            .spawn(move || read_replies(stream, &progress))?
    };
    let mut packetizer = Packetizer::new(PacketizerConfig {
        ssrc,
        ..Default::default()
    })
    .map_err(|e| anyhow!("creating the packetizer: {e}"))?;
    let mut packet = vec![0u8; packetizer.max_packet_len() + 2];
    let mut wire = Vec::with_capacity(64 * 1024);
    let mut sent_at = Vec::with_capacity(clip.len());
    for (index, frame) in clip.iter().enumerate() {
        let due = start + Duration::from_secs_f64(index as f64 / f64::from(fps));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        sent_at.push(Instant::now());
        wire.clear();
        let mut packets = packetizer
            .packetize(&frame.data, frame.rtp_timestamp)
            .map_err(|e| anyhow!("packetizing frame {index}: {e}"))?;
        while let Some(len) = packets
            .next_framed(&mut packet)
            .map_err(|e| anyhow!("packetizing frame {index}: {e}"))?
        {
            wire.extend_from_slice(&packet[..len]);
        }
        stream
            .write_all(&wire)
            .with_context(|| format!("sending frame {index} to the worker"))?;
        progress.sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Streaming {
        stream,
        reader,
        sent_at,
    })
}

/// A camera's reader thread: deframes and parses what the worker sends until the connection ends.
fn read_replies(mut stream: TcpStream, progress: &Progress) -> Replies {
    let mut deframer: Box<Deframer<MAX_FRAME_LEN>> = Box::new(Deframer::new());
    let mut out = Replies::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let arrived = Instant::now();
        let mut input = &buf[..n];
        while !input.is_empty() {
            let (used, frame) = deframer.push(input);
            input = &input[used..];
            let packet = match frame {
                Ok(Some(packet)) => packet,
                Ok(None) => continue,
                Err(e) => {
                    out.errors.push(format!("deframer: {e}"));
                    continue;
                }
            };
            for p in rtcp::parse_compound(packet) {
                match p {
                    Ok(RtcpPacket::App(app)) => match ResultView::from_app(&app) {
                        Ok(view) => {
                            out.results.push(Reply {
                                rtp_timestamp: view.rtp_timestamp,
                                arrived,
                                decode_us: view.decode_us,
                                infer_us: view.infer_us,
                                post_us: view.post_us,
                                histogram: view.histogram().collect(),
                                class_map: view.class_map_size(),
                            });
                            progress.results.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => out.errors.push(format!("FCSG result: {e}")),
                    },
                    Ok(RtcpPacket::ReceiverReport(_)) => out.receiver_reports += 1,
                    Ok(RtcpPacket::Pli(_)) => out.plis += 1,
                    Ok(_) => out.other_packets += 1,
                    Err(e) => out.errors.push(format!("RTCP: {e}")),
                }
            }
        }
    }
    out
}

/// The worker child process, killed on drop; its log is deleted on drop unless kept.
struct Worker {
    child: Child,
    http: SocketAddr,
    media: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    keep_log: bool,
}

impl Worker {
    fn start(binary: &Path, model: &Path, keep_log: bool) -> Result<Self> {
        let unique = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "flowcloud-demo-{}-{unique:08x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join("worker.log");
        let (media, http) = free_ports()?;
        let child = Command::new(binary)
            .arg("--model")
            .arg(model)
            .args(["--listen-media", &media.to_string()])
            .args(["--listen-http", &http.to_string()])
            .args(["--class-map-width", &CLASS_MAP_WIDTH.to_string()])
            .args(["--log-filter", "warn"])
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("creating {}", log.display()))?,
            )
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            http,
            media,
            dir,
            log,
            keep_log,
        })
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        let mut out = String::new();
        for line in &all[all.len().saturating_sub(lines)..] {
            let _ = writeln!(out, "  | {line}");
        }
        out
    }

    fn get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.http, path).with_context(|| format!("GET http://{}{path}", self.http))
    }

    /// Polls `/readyz` until it answers 200.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.keep_log = true;
                bail!(
                    "the worker exited ({status}) before it was ready; log {}:\n{}",
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            match self.get("/readyz") {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => last = format!("HTTP {status}: {}", body.trim()),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                self.keep_log = true;
                bail!(
                    "the worker was not ready within {READY_TIMEOUT:?}; /readyz: {last}; log {}:\n{}",
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM; the exit status and how long the worker took to exit.
    fn terminate(&mut self) -> Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        ensure!(sent.success(), "kill -TERM {} failed", self.child.id());
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() >= EXIT_TIMEOUT {
                bail!("the worker was still running {EXIT_TIMEOUT:?} after SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !self.keep_log {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Two distinct free ports on 127.0.0.1 (bound, then released).
fn free_ports() -> Result<(SocketAddr, SocketAddr)> {
    let a = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    let b = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok((a.local_addr()?, b.local_addr()?))
}

/// `GET path` over HTTP/1.1: the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed reply: {raw:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed status line: {head:?}"))?;
    Ok((status, body.to_owned()))
}
