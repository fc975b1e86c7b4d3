//! Real H.264 clips and a worker running the real pipeline, for end-to-end tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flowcloud_edge::capture::CaptureSource;
use flowcloud_edge::capture::pattern::PatternSource;
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
use flowcloud_worker::batching::BatcherConfig;
use flowcloud_worker::decode::openh264::OpenH264Decoder;
use flowcloud_worker::decode::{Decoder, DecoderConfig};
use flowcloud_worker::engine::onnxruntime::{OnnxRuntimeEngine, OnnxRuntimeOptions};
use flowcloud_worker::ingest::server::{IngestConfig, IngestCounters, ShutdownPhase, serve};
use flowcloud_worker::pipeline::{Pipeline, PipelineConfig, PipelineExtras};
use tokio::net::TcpListener;

pub const WIDTH: usize = 160;
pub const HEIGHT: usize = 120;
pub const CLASS_MAP_WIDTH: u16 = 40;

/// The batch-1 test model: batched or not, each image runs alone, so results compare bit for
/// bit with a single offline run.
pub fn model() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engines/tiny/tiny-seg-b1.onnx"
    ))
}

pub fn engine_options() -> OnnxRuntimeOptions {
    OnnxRuntimeOptions {
        intra_op_threads: std::num::NonZeroUsize::new(1),
        ..Default::default()
    }
}

/// `frames` access units of a moving pattern (shifted by `seed`), encoded by the edge SDK's
/// openh264 encoder, an IDR every `keyframe_interval`.
pub fn encode_clip(seed: u32, frames: u32, keyframe_interval: u32) -> Vec<Vec<u8>> {
    let mut source = PatternSource::new(WIDTH, HEIGHT, 30)
        .unwrap()
        .unpaced()
        .starting_at(u64::from(13 * seed));
    let mut settings = EncoderSettings::new(WIDTH as u32, HEIGHT as u32, 30);
    settings.keyframe_interval = keyframe_interval;
    // Frames of a few KiB, so tests can rely on FU-A fragmentation at small payload budgets.
    settings.bitrate_bps = 1_000_000;
    let mut encoder = OpenH264Encoder::new(settings).unwrap();
    let mut out = Vec::with_capacity(1 << 20);
    (0..frames)
        .map(|_| {
            let frame = source.next_frame().unwrap();
            let encoded = encoder.encode(&frame, &mut out).unwrap();
            out[..encoded.len].to_vec()
        })
        .collect()
}

/// A worker (ingest server + real pipeline) on 127.0.0.1.
pub struct RunningWorker {
    pub addr: std::net::SocketAddr,
    pub pipeline: Arc<Pipeline>,
    pub counters: Arc<IngestCounters>,
    shutdown: tokio::sync::watch::Sender<ShutdownPhase>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    pub async fn start(ingest: IngestConfig) -> Self {
        Self::start_with(ingest, PipelineExtras::default()).await
    }

    pub async fn start_with(ingest: IngestConfig, extras: PipelineExtras) -> Self {
        let engine = OnnxRuntimeEngine::load(&model(), &engine_options()).unwrap();
        let config = PipelineConfig {
            class_map_width: CLASS_MAP_WIDTH,
            batching: BatcherConfig {
                max_batch: 4,
                max_wait: Duration::from_millis(5),
                queue_per_stream: 4,
            },
            decode_queue: 16,
            ..PipelineConfig::default()
        };
        let decoders = Arc::new(|| {
            Box::new(OpenH264Decoder::new(DecoderConfig::default())) as Box<dyn Decoder>
        });
        let pipeline = Arc::new(Pipeline::start_with(
            config,
            Box::new(engine),
            decoders,
            extras,
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(IngestCounters::default());
        let (shutdown, rx) = tokio::sync::watch::channel(ShutdownPhase::Running);
        let server = tokio::spawn(serve(
            listener,
            ingest,
            Arc::clone(&pipeline),
            Arc::clone(&counters),
            rx,
        ));
        Self {
            addr,
            pipeline,
            counters,
            shutdown,
            server,
        }
    }

    /// The worker's graceful shutdown: stop reading, finish every frame in flight (results
    /// still go out and are stored), then close the connections.
    pub async fn stop(self) {
        let _ = self.shutdown.send(ShutdownPhase::Draining);
        let pipeline = Arc::clone(&self.pipeline);
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .unwrap();
        let _ = self.shutdown.send(ShutdownPhase::Done);
        let _ = self.server.await;
    }
}
