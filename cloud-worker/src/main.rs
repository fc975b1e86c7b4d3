//! `flowcloud-worker`: the FlowCloud cloud worker.
//!
//! Serves `/livez`, `/readyz` and `/metrics` over HTTP from the start; loads the segmentation
//! model (ONNX Runtime) and checks it with a warm-up inference; then accepts camera streams
//! (RTP H.264 over RFC 4571 TCP), decodes them (openh264), segments every frame and sends the
//! result back on the same connection. A model that cannot be loaded leaves the worker up and
//! not ready, with the reason on `/readyz`. SIGTERM or SIGINT drains in-flight frames and exits.
//!
//! `flowcloud-worker eval …` evaluates segmentation on Cityscapes-format data instead
//! ([`flowcloud_worker::eval`]).
//!
//! See `cloud-worker/README.md` and `flowcloud-worker --help`.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use flowcloud_core::h264::DepacketizerConfig;
use flowcloud_cuda::{Capabilities, Probe};
use flowcloud_worker::batching::BatcherConfig;
use flowcloud_worker::config::{ClassMapFormat, Cli, Command, WorkerConfig};
use flowcloud_worker::decode::{DecoderConfig, DecoderSelection, KeyframeGateConfig};
use flowcloud_worker::engine::onnxruntime::{
    OnnxRuntimeEngine, OnnxRuntimeOptions, loaded_library,
};
use flowcloud_worker::engine::{Engine, InputBatch, LogitsShape};
use flowcloud_worker::eval::{self, command::EvalArgs};
use flowcloud_worker::http::{self, Health};
use flowcloud_worker::ingest::server::{self, IngestConfig, IngestCounters, ShutdownPhase};
use flowcloud_worker::ingest::sources::{Source, connect_sources};
use flowcloud_worker::logging;
use flowcloud_worker::metrics::{ConnectionOutcome, IngestEvent, Metrics};
use flowcloud_worker::pipeline::{
    DecoderFactory, Pipeline, PipelineConfig, PipelineExtras, ResultStorage,
};
use flowcloud_worker::preprocess::PreprocessParams;
use flowcloud_worker::stages::StageSelection;
use flowcloud_worker::storage::{self, LabelFormat, ResultStore};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How often the ingest server's connection counters are copied into the metrics.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait, once results are flushed, for the camera connections to close.
const CONNECTIONS_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the pipeline to drain (decoders, then inference) on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the HTTP server to finish its requests in progress on shutdown.
const HTTP_STOP_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Eval(args)) => eval(&args),
        None => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(serve(cli)),
            Err(e) => {
                eprintln!("flowcloud-worker: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `flowcloud-worker eval`: evaluates, prints the table (and the confusion matrix if asked),
/// writes the JSON report if asked. Exit status 0, or 1 with the reason on standard error.
fn eval(args: &EvalArgs) -> ExitCode {
    match run_eval(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowcloud-worker eval: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    let options = args.to_options();
    let quiet = args.quiet;
    let mut progress = |p: eval::Progress<'_>| {
        if !quiet && (p.done == p.total || p.done.is_multiple_of(50)) {
            eprintln!("evaluated {}/{} images ({})", p.done, p.total, p.key);
        }
    };
    // The error's message already says what its source says.
    let evaluation = eval::evaluate(&options, &mut progress).map_err(|e| anyhow::anyhow!("{e}"))?;
    let metrics = evaluation.matrix.metrics();
    if let Some(path) = &args.json {
        let text = eval::report::json(&evaluation, &metrics, &options.split)
            .context("cannot write the report as JSON")?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut text = eval::report::table(&evaluation, &metrics);
    if args.print_confusion {
        text.push('\n');
        text.push_str(&eval::report::confusion_table(&evaluation.matrix));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    Ok(())
}

/// Plain `flowcloud-worker [flags]`: the worker.
async fn serve(cli: Cli) -> ExitCode {
    let print_config = cli.print_config;
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("flowcloud-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if print_config {
        return match config.to_toml_string() {
            Ok(text) => {
                let mut stdout = std::io::stdout().lock();
                if stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("flowcloud-worker: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(e) = logging::init(config.log.format, &config.log.filter) {
        eprintln!("flowcloud-worker: {e}");
        return ExitCode::from(2);
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and names it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The HTTP server task and the means to stop it.
struct HttpServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    async fn start(
        config: &WorkerConfig,
        health: Health,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen.http)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.listen.http))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, health, metrics, async move {
            let _ = stopped.await;
        }));
        Ok(Self { stop, task })
    }

    /// Stops accepting, lets requests in progress finish (for a while), and returns.
    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(HTTP_STOP_TIMEOUT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server failed"),
            Ok(Err(e)) => warn!(error = %e, "HTTP server task failed"),
            Err(_) => warn!("HTTP server did not stop in time"),
        }
    }
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let health = Health::new();
    health.set_ready(Err(format!(
        "loading model {}",
        config.model.path.display()
    )));
    let metrics = Arc::new(Metrics::new());
    let http = HttpServer::start(&config, health.clone(), Arc::clone(&metrics)).await?;
    info!(http = %config.listen.http, model = %config.model.path.display(), "loading the model");

    let options = OnnxRuntimeOptions {
        intra_op_threads: NonZeroUsize::new(config.model.threads),
        intra_op_spinning: None,
    };
    let path = config.model.path.clone();
    let load = tokio::task::spawn_blocking(move || load_engine(&path, &options));
    let loaded = tokio::select! {
        loaded = load => loaded.unwrap_or_else(|e| Err(format!("model loading panicked: {e}"))),
        name = signals.recv() => {
            info!(signal = name, "stopping while the model loads");
            http.stop().await;
            // The load cannot be interrupted; do not wait for it.
            std::process::exit(0);
        }
    };
    let engine = match loaded {
        Ok(engine) => engine,
        Err(reason) => return serve_not_ready(reason, &health, http, signals).await,
    };
    let manifest = engine.manifest().clone();

    let storage = match result_storage(&config) {
        Ok(storage) => storage,
        Err(reason) => return serve_not_ready(reason, &health, http, signals).await,
    };
    let decoders = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || choose_decoder(&config))
            .await
            .unwrap_or_else(|e| Err(format!("choosing the decoder panicked: {e}")))
    };
    let decoders = match decoders {
        Ok(selection) => selection.with_metrics(Arc::clone(&metrics)),
        Err(reason) => return serve_not_ready(reason, &health, http, signals).await,
    };
    let stages = {
        let config = config.clone();
        let params = PreprocessParams::from(&manifest);
        tokio::task::spawn_blocking(move || choose_stages(&config, params))
            .await
            .unwrap_or_else(|e| Err(format!("choosing the kernels panicked: {e}")))
    };
    let kernels_backend;
    let (stages, decoders) = match stages {
        Ok(chosen) => {
            kernels_backend = chosen.backend();
            let decoders = match &chosen.gpu {
                Some(gpu) => decoders.with_device_output(gpu.context()),
                None => decoders,
            };
            (chosen.stages, decoders)
        }
        Err(reason) => return serve_not_ready(reason, &health, http, signals).await,
    };
    let media = match TcpListener::bind(config.listen.media).await {
        Ok(listener) => listener,
        Err(e) => {
            let reason = format!(
                "cannot listen for camera streams on {}: {e}",
                config.listen.media
            );
            return serve_not_ready(reason, &health, http, signals).await;
        }
    };

    let pipeline = Arc::new(Pipeline::start_with(
        pipeline_config(&config),
        Box::new(engine),
        decoder_factory(decoders.clone()),
        PipelineExtras {
            metrics: Some(Arc::clone(&metrics)),
            storage,
            stages: Some(stages),
        },
    ));
    let counters = Arc::new(IngestCounters::default());
    let (phase, phase_rx) = watch::channel(ShutdownPhase::Running);
    let source_tasks = connect_sources(
        &sources(&config),
        ingest_config(&config),
        &pipeline,
        &counters,
        &phase_rx,
    );
    let ingest = tokio::spawn(server::serve(
        media,
        ingest_config(&config),
        Arc::clone(&pipeline),
        Arc::clone(&counters),
        phase_rx,
    ));
    let (metrics_stop, metrics_stopped) = oneshot::channel::<()>();
    let metrics_task = tokio::spawn(update_metrics(
        Arc::clone(&metrics),
        Arc::clone(&counters),
        metrics_stopped,
    ));

    health.set_ready(Ok(()));
    info!(
        media = %config.listen.media,
        http = %config.listen.http,
        model = %manifest.name,
        model_path = %config.model.path.display(),
        input = format_args!("{}x{}", manifest.input_width, manifest.input_height),
        classes = manifest.classes.as_str(),
        decoder = decoders.backend(),
        kernels = kernels_backend,
        onnxruntime = %loaded_library().map_or_else(|| "?".into(), |p| p.display().to_string()),
        storage = ?config.storage.enabled().then_some(config.storage.dir.as_ref()).flatten(),
        anonymous_senders = config.senders.anonymous.as_str(),
        sources = config.sources.len(),
        "worker ready"
    );

    let name = signals.recv().await;
    info!(
        signal = name,
        "draining: no new connections, finishing frames in flight"
    );
    health.set_ready(Err("shutting down".to_owned()));
    // A second signal does not wait for the drain.
    tokio::spawn(async move {
        let name = signals.recv().await;
        warn!(
            signal = name,
            "second signal: exiting without finishing the drain"
        );
        std::process::exit(1);
    });

    let _ = phase.send(ShutdownPhase::Draining);
    let drain = {
        let pipeline = Arc::clone(&pipeline);
        tokio::task::spawn_blocking(move || pipeline.shutdown())
    };
    let drained = match tokio::time::timeout(DRAIN_TIMEOUT, drain).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            error!(error = %e, "pipeline shutdown failed");
            true
        }
        Err(_) => {
            error!(timeout = ?DRAIN_TIMEOUT, "the pipeline did not drain in time");
            false
        }
    };
    let _ = phase.send(ShutdownPhase::Done);
    if let Err(e) = ingest.await {
        warn!(error = %e, "ingest server task failed");
    }
    for task in source_tasks {
        if let Err(e) = task.await {
            warn!(error = %e, "source task failed");
        }
    }
    let started = Instant::now();
    while counters.open.load(Ordering::Relaxed) > 0 && started.elapsed() < CONNECTIONS_CLOSE_TIMEOUT
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open = counters.open.load(Ordering::Relaxed);
    if open > 0 {
        warn!(
            open,
            "camera connections still open after {CONNECTIONS_CLOSE_TIMEOUT:?}"
        );
    }
    let _ = metrics_stop.send(());
    let _ = metrics_task.await;
    http.stop().await;
    let c = pipeline.counters();
    info!(
        received = c.received.load(Ordering::Relaxed),
        decoded = c.decoded.load(Ordering::Relaxed),
        inferred = c.inferred.load(Ordering::Relaxed),
        returned = c.returned.load(Ordering::Relaxed),
        "stopped"
    );
    if !drained {
        // The drain thread is stuck; the runtime would wait for it forever.
        std::process::exit(1);
    }
    Ok(())
}

/// Serves HTTP only, with `reason` on `/readyz`, until SIGTERM or SIGINT.
async fn serve_not_ready(
    reason: String,
    health: &Health,
    http: HttpServer,
    mut signals: Signals,
) -> anyhow::Result<()> {
    let reason = format!("not ready: {reason}");
    error!(%reason, "the worker cannot process streams; serving HTTP only");
    health.set_ready(Err(reason));
    let name = signals.recv().await;
    info!(signal = name, "stopping");
    http.stop().await;
    Ok(())
}

/// The result store of `[storage]`, when it is enabled; the error is the reason for `/readyz`.
fn result_storage(config: &WorkerConfig) -> Result<Option<ResultStorage>, String> {
    let storage = &config.storage;
    let Some(dir) = storage.dir.as_ref().filter(|_| storage.enabled()) else {
        return Ok(None);
    };
    let class_maps = match storage.class_maps {
        ClassMapFormat::Off => None,
        ClassMapFormat::LabelIds => Some(LabelFormat::LabelIds),
        ClassMapFormat::TrainIds => Some(LabelFormat::TrainIds),
    };
    let store = ResultStore::new(
        dir.clone(),
        storage::StorageConfig {
            class_maps,
            overlays: storage.overlays,
            max_files_per_stream: storage.max_files_per_stream,
            frame_hashes: storage.frame_hashes,
        },
    )
    .map_err(|e| format!("cannot store results in {}: {e}", dir.display()))?;
    Ok(Some(ResultStorage {
        store,
        overlay_alpha: storage.overlay_alpha,
    }))
}

/// Loads the model and runs one warm-up inference; the error is the reason shown on `/readyz`.
fn load_engine(
    path: &std::path::Path,
    options: &OnnxRuntimeOptions,
) -> Result<OnnxRuntimeEngine, String> {
    let started = Instant::now();
    let mut engine = OnnxRuntimeEngine::load(path, options)
        .map_err(|e| format!("cannot load model {}: {e}", path.display()))?;
    let loaded = started.elapsed();
    warm_up(&mut engine)
        .map_err(|e| format!("model {} failed its warm-up inference: {e}", path.display()))?;
    info!(
        load_ms = loaded.as_millis(),
        warm_up_ms = (started.elapsed() - loaded).as_millis(),
        dynamic_batch = engine.dynamic_batch(),
        "model loaded"
    );
    Ok(engine)
}

/// One inference of a zero-filled batch of 1 at the manifest's size; checks the logits.
fn warm_up(engine: &mut OnnxRuntimeEngine) -> Result<(), String> {
    let manifest = engine.manifest().clone();
    let input = vec![0.0f32; manifest.input_len()];
    let mut logits = Vec::new();
    let shape = engine
        .infer(&InputBatch::for_manifest(&manifest, 1, &input), &mut logits)
        .map_err(|e| e.to_string())?;
    let (width, height) = manifest.logits_size();
    let expected = LogitsShape {
        n: 1,
        classes: manifest.num_classes(),
        height: height as usize,
        width: width as usize,
    };
    if shape != expected || logits.len() != expected.len() {
        return Err(format!(
            "logits shape {}x{}x{}x{} ({} values), expected {}x{}x{}x{}",
            shape.n,
            shape.classes,
            shape.height,
            shape.width,
            logits.len(),
            expected.n,
            expected.classes,
            expected.height,
            expected.width
        ));
    }
    if let Some(bad) = logits.iter().find(|v| !v.is_finite()) {
        return Err(format!("the logits contain {bad}"));
    }
    Ok(())
}

fn pipeline_config(config: &WorkerConfig) -> PipelineConfig {
    PipelineConfig {
        decode_queue: config.limits.decode_queue,
        decode_queue_bytes: config.limits.decode_queue_bytes,
        batching: BatcherConfig {
            max_batch: config.batching.max_batch,
            max_wait: config.batching.max_wait(),
            queue_per_stream: config.batching.queue_per_stream,
        },
        class_map_width: config.results.class_map_width,
        keyframes: KeyframeGateConfig {
            pli_interval: config.keyframes.pli_interval(),
        },
    }
}

/// Probes the GPU backends, logs what is usable and why not, and chooses the decoder backend
/// (`decode.backend`); the error is the not-ready reason when NVDEC is required and unusable.
fn choose_decoder(config: &WorkerConfig) -> Result<DecoderSelection, String> {
    let capabilities = Capabilities::probe();
    let gpu = config.decode.gpu;
    let usable = |why: Option<String>| {
        why.map_or_else(|| "usable".to_owned(), |why| format!("not usable: {why}"))
    };
    match &capabilities.driver {
        Probe::Unavailable(why) => info!(cuda_driver = %why, "GPU backends: none (no CUDA driver)"),
        Probe::Available(_) => info!(
            gpus = %gpu_list(&capabilities),
            cuda_kernels = usable(capabilities.kernels_unavailable(gpu)),
            nvdec = usable(capabilities.nvdec_unavailable(gpu)),
            "GPU backends on GPU {gpu}"
        ),
    }
    let decoder = DecoderConfig {
        max_width: config.limits.max_width,
        max_height: config.limits.max_height,
    };
    let selection = DecoderSelection::choose(config.decode.backend, gpu, decoder, &capabilities)
        .map_err(|e| e.to_string())?;
    match selection.nvdec_unavailable() {
        Some(why) => info!(
            asked = config.decode.backend.as_str(),
            decoder = selection.backend(),
            nvdec = why,
            "decoding on the CPU: NVDEC is not usable"
        ),
        None => info!(
            asked = config.decode.backend.as_str(),
            decoder = selection.backend(),
            gpu,
            "decoder backend chosen"
        ),
    }
    Ok(selection)
}

/// Chooses where preprocessing and post-processing run (`kernels.backend`) and logs it; the
/// error is the not-ready reason when the CUDA kernels are required and unusable.
fn choose_stages(
    config: &WorkerConfig,
    params: PreprocessParams,
) -> Result<StageSelection, String> {
    let asked = config.kernels.backend;
    let chosen = StageSelection::choose(asked, config.decode.gpu, params, &Capabilities::probe())
        .map_err(|e| e.to_string())?;
    match &chosen.cuda_unavailable {
        Some(why) => info!(
            asked = asked.as_str(),
            kernels = chosen.backend(),
            cuda = %why,
            "preprocessing and post-processing on the CPU: the CUDA kernels are not usable"
        ),
        None => info!(
            asked = asked.as_str(),
            kernels = chosen.backend(),
            gpu = config.decode.gpu,
            "preprocessing and post-processing backend chosen"
        ),
    }
    Ok(chosen)
}

/// The GPUs the driver sees, for the log: "0: NVIDIA H100 (9.0), 1: …" or "none".
fn gpu_list(capabilities: &Capabilities) -> String {
    if capabilities.devices.is_empty() {
        return "none".to_owned();
    }
    capabilities
        .devices
        .iter()
        .map(|d| {
            let (major, minor) = d.compute_capability;
            format!("{}: {} ({major}.{minor})", d.ordinal, d.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn decoder_factory(selection: DecoderSelection) -> DecoderFactory {
    Arc::new(move || selection.make())
}

fn ingest_config(config: &WorkerConfig) -> IngestConfig {
    IngestConfig {
        max_connections: config.limits.max_connections,
        handshake_timeout: config.limits.handshake_timeout(),
        idle_timeout: config.limits.idle_timeout(),
        depacketizer: DepacketizerConfig {
            max_width: config.limits.max_width,
            max_height: config.limits.max_height,
            max_access_unit_bytes: config.limits.max_access_unit_bytes,
            ..DepacketizerConfig::default()
        },
        anonymous: config.senders.anonymous,
        reply_to_anonymous: config.senders.reply_to_anonymous,
        ..IngestConfig::default()
    }
}

fn sources(config: &WorkerConfig) -> Vec<Source> {
    config
        .sources
        .iter()
        .map(|source| Source {
            name: source.name.as_str().into(),
            address: source.connect.clone(),
            reconnect: Duration::from_millis(source.reconnect_ms),
            max_reconnect: Duration::from_millis(source.max_reconnect_ms),
            connect_timeout: Duration::from_millis(source.connect_timeout_ms),
        })
        .collect()
}

/// The connection counters last copied into the metrics, to add only what changed since.
#[derive(Default)]
struct Copied {
    accepted: u64,
    rejected_cap: u64,
    handshake_timeouts: u64,
    handshake_invalid: u64,
    idle_timeouts: u64,
    closed: u64,
    stopped_mid_stream: u64,
    errors: u64,
    anonymous_streams: u64,
    packets_rejected: u64,
    outbound_dropped: u64,
    source_connects: u64,
    source_connect_failures: u64,
}

/// What `now` adds to `last`, remembering `now`.
fn delta(last: &mut u64, now: &AtomicU64) -> u64 {
    let now = now.load(Ordering::Relaxed);
    let d = now.saturating_sub(*last);
    *last = now;
    d
}

impl Copied {
    fn copy(&mut self, metrics: &Metrics, ingest: &IngestCounters) {
        metrics.set_connections_open(
            i64::try_from(ingest.open.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        );
        for (last, now, outcome) in [
            (
                &mut self.accepted,
                &ingest.accepted,
                ConnectionOutcome::Accepted,
            ),
            (
                &mut self.rejected_cap,
                &ingest.rejected_cap,
                ConnectionOutcome::RejectedCap,
            ),
            (
                &mut self.handshake_timeouts,
                &ingest.handshake_timeouts,
                ConnectionOutcome::HandshakeTimeout,
            ),
            (
                &mut self.handshake_invalid,
                &ingest.handshake_invalid,
                ConnectionOutcome::HandshakeInvalid,
            ),
            (
                &mut self.idle_timeouts,
                &ingest.idle_timeouts,
                ConnectionOutcome::IdleTimeout,
            ),
            (&mut self.closed, &ingest.closed, ConnectionOutcome::Closed),
            (
                &mut self.stopped_mid_stream,
                &ingest.stopped_mid_stream,
                ConnectionOutcome::StoppedMidStream,
            ),
            (&mut self.errors, &ingest.errors, ConnectionOutcome::Error),
        ] {
            for _ in 0..delta(last, now) {
                metrics.connection_outcome(outcome);
            }
        }
        for (last, now, event) in [
            (
                &mut self.anonymous_streams,
                &ingest.anonymous_streams,
                IngestEvent::AnonymousStream,
            ),
            (
                &mut self.packets_rejected,
                &ingest.packets_rejected,
                IngestEvent::PacketRejected,
            ),
            (
                &mut self.outbound_dropped,
                &ingest.outbound_dropped,
                IngestEvent::OutboundDropped,
            ),
            (
                &mut self.source_connects,
                &ingest.source_connects,
                IngestEvent::SourceConnected,
            ),
            (
                &mut self.source_connect_failures,
                &ingest.source_connect_failures,
                IngestEvent::SourceConnectFailed,
            ),
        ] {
            let n = delta(last, now);
            if n > 0 {
                metrics.ingest_events(event, n);
            }
        }
    }
}

/// Copies the ingest server's connection counters into `metrics` every [`METRICS_INTERVAL`],
/// and once more when stopped. (The pipeline updates the per-stream metrics itself.)
async fn update_metrics(
    metrics: Arc<Metrics>,
    ingest: Arc<IngestCounters>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut copied = Copied::default();
    let mut tick = tokio::time::interval(METRICS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        copied.copy(&metrics, &ingest);
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
    }
    copied.copy(&metrics, &ingest);
}
