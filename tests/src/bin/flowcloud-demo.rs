//! The FlowCloud demo: several simulated cameras stream synthetic street scenes as H.264 to a
//! real `flowcloud-worker` process, which segments every frame with the demo model and sends
//! the class map back; the cameras score it against the scene's exact ground truth.
//!
//! 1. `flowcloud-worker` is started as a child process on free loopback ports with the model
//!    (`engines/demo/street-demo.onnx` by default), storing colour overlays and class maps
//!    under `--out`, its log going to a file; `/readyz` is polled until 200.
//! 2. One thread per camera runs the edge SDK as a camera does: the synthetic street scene (a
//!    different world per camera; or the moving test pattern) → openh264 (an IDR with SPS and
//!    PPS every 30 frames and on request) → the `mio` sender (RTCP SR + SDES CNAME first, then
//!    RTP in RFC 4571 framing), paced at `--fps`; the sender hands back each `FCSG` result with
//!    its latency split and the full-resolution class map, which the camera compares with the
//!    scene's labels for that frame (a running confusion matrix, mIoU over the classes present).
//! 3. Every camera drains its results.
//! 4. `/metrics` is scraped before the cameras disconnect, then the worker gets SIGTERM and must
//!    exit 0 within 10 s.
//! 5. A table per camera: frames sent, results, result rate, capture→result latency, the
//!    worker's stage times, mIoU, the dominant classes; then IoU per class. The run fails
//!    (non-zero exit) unless every camera got a result for at least 95% of its frames, the
//!    worker shut down cleanly and (with `--min-miou`) the mIoU is high enough.
#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use flowcloud_edge::capture::CaptureSource;
use flowcloud_edge::capture::pattern::PatternSource;
use flowcloud_edge::capture::scene::{SceneConfig, SceneSource, StreetScene};
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
use flowcloud_edge::sender::{
    FrameResult, LatencySplit, Sender, SenderConfig, SenderEvent, SenderHandler, SenderStats,
};
use flowcloud_worker::eval::{ConfusionMatrix, EvalClasses, Metrics};
use flowcloud_worker::storage::LabelFormat;

/// An IDR every this many frames.
const KEYFRAME_INTERVAL: u32 = 30;
/// How long a camera may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames between the phases of consecutive cameras' test patterns.
const PHASE_STEP: u64 = 41;
/// Width of the class map the worker puts in each result of a test-pattern camera (a scene
/// camera asks for the full width, to be scored).
const CLASS_MAP_WIDTH: u16 = 32;
/// How long the worker may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the worker may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for outstanding results after the last frame was sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Share of its frames each camera must get a result for.
const MIN_RESULT_SHARE: f64 = 0.95;
/// Frames a camera remembers (capture time → scene frame) to score late results.
const REMEMBERED_FRAMES: usize = 256;
/// Frames kept per camera under `--out` (class map and overlay count as one).
const STORED_FRAMES_PER_CAMERA: u32 = 300;
/// Cityscapes train ids 0..=18, the models' class set.
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
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    cameras: u32,
    /// Frames each camera sends.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    frames: u32,
    /// Frames per second each camera sends (RTP timestamps advance 90000 / fps per frame).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// Picture width in pixels (even, at least 32).
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Picture height in pixels (even, at least 32).
    #[arg(long, default_value_t = 320)]
    height: u32,
    /// What the cameras film: `scene` (synthetic street scenes with exact labels, scored) or
    /// `pattern` (the moving test pattern, not scored).
    #[arg(long, value_enum, default_value_t = DemoSource::Scene)]
    source: DemoSource,
    /// World seed of camera 0's streets; camera `c` films world `scene-seed + c`.
    #[arg(long, default_value_t = 7)]
    scene_seed: u64,
    /// Frames of one street before the scene moves on to another.
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    frames_per_street: u64,
    /// Where the worker stores colour overlays and class maps, a folder per camera (the last
    /// 300 frames of each).
    #[arg(long, default_value_os_t = repo_root().join("out/demo"))]
    out: PathBuf,
    /// Also write the summary (results, latency, stage times, mIoU, IoU per class) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Encoder bitrate in bits per second; default: the edge SDK's (0.2 bit per pixel and
    /// frame, 410 kbit/s at 640x320 and 10 fps).
    #[arg(long)]
    bitrate: Option<u32>,
    /// Fail unless the mIoU over the classes present, over all cameras, reaches this.
    #[arg(long)]
    min_miou: Option<f64>,
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
    repo_root().join("engines/demo/street-demo.onnx")
}

/// What the cameras film.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DemoSource {
    /// Synthetic street scenes, scored against their labels.
    Scene,
    /// The moving test pattern.
    Pattern,
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

/// One `FCSG` result as the camera saw it.
struct Reply {
    rtp_timestamp: u32,
    arrived: Instant,
    /// Capture → result, split; `None` for a result the sender could not match to a frame.
    latency: Option<LatencySplit>,
    decode_us: u32,
    infer_us: u32,
    post_us: u32,
    histogram: Vec<u32>,
    class_map: Option<(u16, u16)>,
}

/// Everything a camera's sender reported.
#[derive(Default)]
struct Replies {
    results: Vec<Reply>,
    round_trips: u64,
    events: Vec<String>,
    progress: Arc<Progress>,
    /// Scoring against the scene's labels (scene cameras only).
    truth: Option<GroundTruth>,
}

/// A scene camera's scorekeeper: which scene frame each capture time was, the scene (to
/// render that frame's labels again), and the confusion matrices.
struct GroundTruth {
    scene: StreetScene,
    /// (capture time, scene frame index) of the last frames submitted.
    frames: std::collections::VecDeque<(Instant, u64)>,
    labels: Vec<u8>,
    prediction: Vec<u8>,
    /// This camera's results.
    camera: ConfusionMatrix,
    /// Every camera's results, for the live line.
    all: Arc<std::sync::Mutex<ConfusionMatrix>>,
    /// Results scored.
    scored: u64,
    /// Results that could not be scored, and the first reason.
    unscored: u64,
    first_problem: Option<String>,
}

impl GroundTruth {
    fn new(config: SceneConfig, all: Arc<std::sync::Mutex<ConfusionMatrix>>) -> Result<Self> {
        Ok(Self {
            scene: StreetScene::new(config)?,
            frames: std::collections::VecDeque::with_capacity(REMEMBERED_FRAMES),
            labels: vec![0; config.labels_len()],
            prediction: vec![0; config.labels_len()],
            camera: ConfusionMatrix::new(EvalClasses::Train),
            all,
            scored: 0,
            unscored: 0,
            first_problem: None,
        })
    }

    fn remember(&mut self, captured_at: Instant, index: u64) {
        if self.frames.len() == REMEMBERED_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back((captured_at, index));
    }

    fn score(&mut self, result: &FrameResult<'_>) {
        if let Err(problem) = self.try_score(result) {
            self.unscored += 1;
            self.first_problem.get_or_insert(problem);
        }
    }

    fn try_score(&mut self, result: &FrameResult<'_>) -> Result<(), String> {
        let rtp = result.result.rtp_timestamp;
        let captured_at = result
            .captured_at
            .ok_or_else(|| format!("result {rtp}: no capture time"))?;
        let &(_, index) = self
            .frames
            .iter()
            .find(|(t, _)| *t == captured_at)
            .ok_or_else(|| format!("result {rtp}: not a remembered frame"))?;
        let config = *self.scene.config();
        let (w, h) = result
            .result
            .decode_class_map(&mut self.prediction)
            .map_err(|e| format!("result {rtp}: class map: {e}"))?;
        if (usize::from(w), usize::from(h)) != (config.width, config.height) {
            return Err(format!(
                "result {rtp}: class map {w}x{h}, frames {}x{}",
                config.width, config.height
            ));
        }
        self.scene
            .render_labels(index, &mut self.labels)
            .map_err(|e| format!("frame {index}: {e}"))?;
        let mut frame = ConfusionMatrix::new(EvalClasses::Train);
        frame
            .add_image(&self.labels, &self.prediction, LabelFormat::TrainIds)
            .map_err(|e| format!("result {rtp}: {e}"))?;
        self.camera.merge(&frame);
        if let Ok(mut all) = self.all.lock() {
            all.merge(&frame);
        }
        self.scored += 1;
        Ok(())
    }
}

impl SenderHandler for Replies {
    fn on_result(&mut self, result: &FrameResult<'_>) {
        if let Some(truth) = &mut self.truth {
            truth.score(result);
        }
        let view = &result.result;
        self.results.push(Reply {
            rtp_timestamp: view.rtp_timestamp,
            arrived: Instant::now(),
            latency: result.latency,
            decode_us: view.decode_us,
            infer_us: view.infer_us,
            post_us: view.post_us,
            histogram: view.histogram().collect(),
            class_map: view.class_map_size(),
        });
        self.progress.results.fetch_add(1, Ordering::Relaxed);
    }

    fn on_event(&mut self, event: SenderEvent) {
        match event {
            SenderEvent::RoundTrip { .. } => self.round_trips += 1,
            SenderEvent::Connected { .. } | SenderEvent::KeyframeRequested { .. } => {}
            other => self.events.push(format!("{other:?}")),
        }
    }
}

/// Live counters of one camera.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    results: AtomicU64,
    /// All frames were sent and their results are in (or the drain timed out).
    drained: AtomicBool,
}

fn run(args: &Args) -> Result<()> {
    // Checks the size before the worker starts.
    match args.source {
        DemoSource::Pattern => drop(PatternSource::new(
            args.width as usize,
            args.height as usize,
            args.fps,
        )?),
        DemoSource::Scene => scene_config(args, 0).validate()?,
    }
    let scored = args.source == DemoSource::Scene;
    let confusion = Arc::new(std::sync::Mutex::new(ConfusionMatrix::new(
        EvalClasses::Train,
    )));
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
        "flowcloud-demo: {cameras} cameras × {} frames of {}x{} at {} fps ({}) → flowcloud-worker (openh264 decode, ONNX Runtime segmentation, FCSG results)",
        args.frames,
        args.width,
        args.height,
        args.fps,
        match args.source {
            DemoSource::Scene => format!(
                "synthetic streets, worlds {}..={}, a new street every {} frames",
                args.scene_seed,
                args.scene_seed + args.cameras as u64 - 1,
                args.frames_per_street
            ),
            DemoSource::Pattern => "test pattern".to_owned(),
        }
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

    let total_frames = cameras * args.frames as usize;

    // 1. The worker.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let class_map_width = if scored {
        u16::try_from(args.width).context("--width")?
    } else {
        CLASS_MAP_WIDTH
    };
    let mut worker = Worker::start(
        &worker_bin,
        &model,
        &args.out,
        class_map_width,
        args.keep_worker_log,
    )?;
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

    // 2. Stream: one edge-SDK camera per thread.
    let progress: Vec<Arc<Progress>> = (0..cameras).map(|_| Arc::default()).collect();
    let disconnect = Arc::new(AtomicBool::new(false));
    let start = Instant::now() + Duration::from_millis(300);
    let threads: Vec<JoinHandle<Result<CameraRun>>> = (0..cameras)
        .map(|camera| {
            let progress = Arc::clone(&progress[camera]);
            let disconnect = Arc::clone(&disconnect);
            let media = worker.media;
            // Spread the cameras' frames over the frame interval.
            let offset =
                Duration::from_secs_f64(camera as f64 / (cameras as f64 * f64::from(args.fps)));
            let (width, height, fps, frames) = (args.width, args.height, args.fps, args.frames);
            let bitrate_bps = args.bitrate;
            let scene = scored.then(|| (scene_config(args, camera), Arc::clone(&confusion)));
            thread::Builder::new()
                .name(format!("camera-{camera}"))
                .spawn(move || {
                    let plan = CameraPlan {
                        camera,
                        media,
                        width,
                        height,
                        fps,
                        frames,
                        bitrate_bps,
                        start: start + offset,
                    };
                    run_camera(&plan, scene, progress, &disconnect)
                })
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
        let miou = if scored {
            confusion.lock().map_or_else(
                |_| String::new(),
                |m| {
                    let miou = m.metrics().miou_present;
                    if miou.is_nan() {
                        String::new()
                    } else {
                        format!(", running mIoU {miou:.3}")
                    }
                },
            )
        } else {
            String::new()
        };
        println!(
            "[{:5.1} s] sent {sent}/{total_frames} frames, results {results}{miou}",
            elapsed.as_secs_f64()
        );
    };
    let mut next_report = start + Duration::from_secs(1);
    while !progress.iter().all(|p| p.drained.load(Ordering::Relaxed))
        && !threads.iter().any(JoinHandle::is_finished)
    {
        thread::sleep(Duration::from_millis(20));
        if Instant::now() >= next_report {
            print_live(next_report.saturating_duration_since(start));
            next_report += Duration::from_secs(1);
        }
    }
    print_live(Instant::now().saturating_duration_since(start));

    // 3. Metrics while connected, then disconnect and shut the worker down.
    let metrics = worker.get("/metrics");
    disconnect.store(true, Ordering::Relaxed);
    let mut cameras_out = Vec::with_capacity(cameras);
    for (camera, thread) in threads.into_iter().enumerate() {
        cameras_out.push(
            thread
                .join()
                .map_err(|_| anyhow!("camera {camera}'s thread panicked"))?
                .with_context(|| format!("camera {camera}"))?,
        );
    }
    let shutdown = worker.terminate();

    // 4. Report.
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
    let (mut dropped_total, mut reconnects) = (0u64, 0u64);
    for (camera, run) in cameras_out.iter().enumerate() {
        let name = cname(camera);
        let replies = &run.replies;
        let mut seen = std::collections::HashSet::new();
        let mut latencies = Vec::with_capacity(replies.results.len());
        let mut hist = vec![0u64; 0];
        let mut stages = [0u64; 3];
        for r in &replies.results {
            match r.latency {
                Some(split) if seen.insert(r.rtp_timestamp) => latencies.push(split.total),
                Some(_) => failures.push(format!(
                    "{name}: two results for RTP timestamp {}",
                    r.rtp_timestamp
                )),
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
        rrs += replies.round_trips;
        plis += run.stats.plis;
        dropped_total += run.stats.frames_dropped();
        reconnects += run.stats.connects.saturating_sub(1);
        let arrivals = replies.results.iter().map(|r| r.arrived);
        let (first, last) = (arrivals.clone().min(), arrivals.max());
        first_arrival = [first_arrival, first].into_iter().flatten().min();
        last_arrival = [last_arrival, last].into_iter().flatten().max();
        latencies.sort_unstable();
        all_latencies.extend_from_slice(&latencies);
        // Every captured frame counts: a frame the sender dropped has no result either.
        let sent = u64::from(args.frames);
        let share = results as f64 / sent as f64;
        if share < MIN_RESULT_SHARE {
            failures.push(format!(
                "{name}: results for {results} of {sent} frames ({:.1}%, need ≥ {:.0}%)",
                share * 100.0,
                MIN_RESULT_SHARE * 100.0
            ));
        }
        if run.stats.bad_packets > 0 {
            failures.push(format!(
                "{name}: {} unreadable packets from the worker",
                run.stats.bad_packets
            ));
        }
        if !replies.events.is_empty() {
            failures.push(format!(
                "{name}: connection trouble: {}",
                replies.events.join("; ")
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
        "frames",
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
        "latency: capture→result, from the frame's capture to its FCSG result read back by the camera's sender (one clock)"
    );
    println!(
        "stage times: the worker's own decode / inference / post-processing µs per frame, from the results (means)"
    );
    println!(
        "class maps: {} in results; worker replies: {rrs} receiver reports with an RTT, {plis} PLIs; cameras: {dropped_total} frames dropped, {reconnects} reconnects",
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
    let accuracy = if scored {
        let metrics = confusion
            .lock()
            .map_err(|_| anyhow!("a camera thread panicked while scoring"))?
            .metrics();
        println!();
        println!(
            "accuracy: each result's full-resolution class map against the scene's labels for that frame"
        );
        for (camera, run) in cameras_out.iter().enumerate() {
            let Some(truth) = &run.replies.truth else {
                continue;
            };
            let m = truth.camera.metrics();
            println!(
                "  {:<14} mIoU {:.3} over the {} classes present, pixel accuracy {:.3}, {} results scored",
                cname(camera),
                m.miou_present,
                m.present_classes,
                m.pixel_accuracy,
                truth.scored
            );
            if truth.unscored > 0 {
                failures.push(format!(
                    "{}: {} results could not be scored (first: {})",
                    cname(camera),
                    truth.unscored,
                    truth.first_problem.as_deref().unwrap_or("?")
                ));
            }
        }
        print_class_table(&metrics);
        println!(
            "  all cameras    mIoU {:.3} over the {} classes present (Cityscapes mIoU {:.3}), pixel accuracy {:.3}",
            metrics.miou_present, metrics.present_classes, metrics.miou, metrics.pixel_accuracy
        );
        if let Some(min) = args.min_miou
            && (metrics.miou_present.is_nan() || metrics.miou_present < min)
        {
            failures.push(format!(
                "mIoU {:.4} is below --min-miou {min}",
                metrics.miou_present
            ));
        }
        Some(metrics)
    } else {
        None
    };
    println!(
        "overlays and class maps (last {STORED_FRAMES_PER_CAMERA} frames per camera): {}/<camera>/",
        args.out.display()
    );
    match &shutdown {
        Ok((status, took)) if status.success() => {
            println!("worker: SIGTERM → exited 0 in {:.2} s", took.as_secs_f64())
        }
        Ok((status, _)) => failures.push(format!("the worker exited with {status} after SIGTERM")),
        Err(e) => failures.push(format!("worker shutdown: {e:#}")),
    }

    if let Some(path) = &args.json {
        let summary = serde_json::json!({
            "cameras": cameras,
            "frames_per_camera": args.frames,
            "fps": args.fps,
            "bitrate_bps": args.bitrate,
            "width": args.width,
            "height": args.height,
            "source": format!("{:?}", args.source).to_lowercase(),
            "scene_seed": args.scene_seed,
            "frames_per_street": args.frames_per_street,
            "model": model,
            "results": all_results,
            "frames": sent_total,
            "latency_ms": {
                "p50": percentile(&all_latencies, 50).as_secs_f64() * 1e3,
                "p95": percentile(&all_latencies, 95).as_secs_f64() * 1e3,
                "max": all_latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            },
            "worker_stage_us_mean": {
                "decode": all_stages[0] as f64 / all_results.max(1) as f64,
                "infer": all_stages[1] as f64 / all_results.max(1) as f64,
                "post": all_stages[2] as f64 / all_results.max(1) as f64,
            },
            "accuracy": accuracy,
            "failures": failures,
        });
        std::fs::write(path, format!("{summary:#}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
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

/// IoU per class present (or predicted), with its share of the ground-truth pixels.
fn print_class_table(metrics: &Metrics) {
    let total = metrics.evaluated_pixels.max(1) as f64;
    let classes: Vec<_> = metrics
        .per_class
        .iter()
        .filter(|c| c.gt_pixels > 0 || c.predicted_pixels > 0)
        .collect();
    let names: Vec<String> = classes
        .iter()
        .map(|c| format!("{:>9}", trim(c.name, 9)))
        .collect();
    println!("  {:<14} {}", "class", names.join(" "));
    let ious: Vec<String> = classes.iter().map(|c| format!("{:>9.3}", c.iou)).collect();
    println!("  {:<14} {}", "IoU", ious.join(" "));
    let shares: Vec<String> = classes
        .iter()
        .map(|c| format!("{:>8.1}%", c.gt_pixels as f64 * 100.0 / total))
        .collect();
    println!("  {:<14} {}", "pixels", shares.join(" "));
}

/// `name` cut to `width` characters.
fn trim(name: &str, width: usize) -> &str {
    name.char_indices()
        .nth(width)
        .map_or(name, |(i, _)| &name[..i])
}

/// The scene camera `camera` films: world `scene-seed + camera`, paced by the demo.
fn scene_config(args: &Args, camera: usize) -> SceneConfig {
    SceneConfig {
        fps: args.fps,
        frames_per_sequence: args.frames_per_street,
        ..SceneConfig::new(
            args.width as usize,
            args.height as usize,
            args.scene_seed + camera as u64,
        )
    }
}

fn cname(camera: usize) -> String {
    format!("demo-camera-{camera}")
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

/// What one camera thread streams.
struct CameraPlan {
    camera: usize,
    media: SocketAddr,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
    bitrate_bps: Option<u32>,
    start: Instant,
}

/// What one camera thread brings back.
struct CameraRun {
    replies: Replies,
    stats: SenderStats,
}

/// One camera, as the edge SDK runs it: pattern → openh264 → sender, paced at `fps` from
/// `start`; then it drains its results and keeps the connection until `disconnect`.
fn run_camera(
    plan: &CameraPlan,
    scene: Option<(SceneConfig, Arc<std::sync::Mutex<ConfusionMatrix>>)>,
    progress: Arc<Progress>,
    disconnect: &AtomicBool,
) -> Result<CameraRun> {
    let (mut source, truth): (Box<dyn CaptureSource>, _) = match scene {
        Some((config, all)) => (
            Box::new(SceneSource::new(config)?.unpaced()),
            Some(GroundTruth::new(config, all)?),
        ),
        None => (
            Box::new(
                PatternSource::new(plan.width as usize, plan.height as usize, plan.fps)?
                    .unpaced()
                    .starting_at(plan.camera as u64 * PHASE_STEP),
            ),
            None,
        ),
    };
    let mut settings = EncoderSettings::new(plan.width, plan.height, plan.fps);
    if let Some(bitrate) = plan.bitrate_bps {
        settings.bitrate_bps = bitrate;
    }
    settings.keyframe_interval = KEYFRAME_INTERVAL;
    let mut encoder = OpenH264Encoder::new(settings).context("creating the encoder")?;
    let mut sender = Sender::new(SenderConfig::new(plan.media, &cname(plan.camera)))?;
    let mut replies = Replies {
        progress: Arc::clone(&progress),
        truth,
        ..Replies::default()
    };
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while !sender.is_connected() {
        ensure!(
            Instant::now() < deadline,
            "could not connect to the worker at {}",
            plan.media
        );
        sender.poll(Some(Duration::from_millis(10)), &mut replies)?;
    }
    let mut access_unit = Vec::with_capacity(4 << 20);
    for index in 0..plan.frames {
        let due = plan.start + Duration::from_secs(1) * index / plan.fps;
        // Between frames the sender reads results and RTCP.
        while let Some(wait) = due.checked_duration_since(Instant::now()) {
            sender.poll(Some(wait), &mut replies)?;
        }
        if sender.take_keyframe_request() {
            encoder.request_keyframe();
        }
        let frame = source.next_frame()?;
        let captured_at = frame.captured_at;
        if let Some(truth) = &mut replies.truth {
            truth.remember(captured_at, frame.sequence);
        }
        let encoded = encoder
            .encode(&frame, &mut access_unit)
            .with_context(|| format!("encoding frame {index}"))?;
        sender.submit_with(
            &access_unit[..encoded.len],
            captured_at,
            encoded.encode_time,
            &mut replies,
        )?;
        sender.poll(Some(Duration::ZERO), &mut replies)?;
        progress
            .sent
            .store(sender.stats().frames_sent, Ordering::Relaxed);
    }
    sender.flush(DRAIN_TIMEOUT, &mut replies)?;
    progress
        .sent
        .store(sender.stats().frames_sent, Ordering::Relaxed);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while sender.stats().results < sender.stats().frames_sent && Instant::now() < deadline {
        sender.poll(Some(Duration::from_millis(10)), &mut replies)?;
    }
    progress.drained.store(true, Ordering::Relaxed);
    while !disconnect.load(Ordering::Relaxed) {
        sender.poll(Some(Duration::from_millis(10)), &mut replies)?;
    }
    Ok(CameraRun {
        stats: sender.stats(),
        replies,
    })
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
    fn start(
        binary: &Path,
        model: &Path,
        out: &Path,
        class_map_width: u16,
        keep_log: bool,
    ) -> Result<Self> {
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
            .args(["--class-map-width", &class_map_width.to_string()])
            .arg("--storage-dir")
            .arg(out)
            .args(["--storage-overlays", "--storage-class-maps", "labelIds"])
            .args([
                "--max-files-per-stream",
                &STORED_FRAMES_PER_CAMERA.to_string(),
            ])
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
        flowcloud_tests::worker_process::http_get(self.http, path)
            .with_context(|| format!("GET http://{}{path}", self.http))
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
