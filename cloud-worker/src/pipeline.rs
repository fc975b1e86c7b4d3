//! The pipeline behind the ingest server: per-stream decode threads, the shared batcher,
//! and an inference thread (preprocess → engine → post) that sends each frame's result back to
//! its camera. Decoders hand on [`Picture`]s in host or CUDA memory; the preprocessing and
//! post-processing stages ([`Stages`]) run on the CPU or with CUDA kernels.
//!
//! ```text
//! connection task ──AU──► decode thread (keyframe gate, decoder) ──frame──► batcher
//!        ▲                         │ PLI                                       │
//!        └──── outbound queue ◄────┴──────── result ◄── inference thread ◄─────┘
//! ```
//!
//! Nothing upstream ever waits on inference: the decode queue and the batcher drop (and count)
//! when full, and a dropped access unit makes the stream wait for a keyframe, as a loss does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowcloud_core::h264::{AccessUnit, Loss};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::batching::{Batcher, BatcherConfig};
use crate::decode::Decoder;
use crate::decode::keyframe_gate::{Admit, KeyframeGate, KeyframeGateConfig};
use crate::engine::{Engine, InputBatch};
use crate::frame::{I420Frame, Picture};
use crate::ingest::server::{FrameResult, Outbound, StreamInput, Streams};
use crate::metrics::{DropReason, FrameStage, Metrics, QueueKind, Stage};
use crate::post::{self, ImageLogits, PostOutput};
use crate::preprocess::PreprocessParams;
use crate::stages::Stages;
use crate::storage::ResultStore;

/// Makes a decoder for each new stream.
pub type DecoderFactory = Arc<dyn Fn() -> Box<dyn Decoder> + Send + Sync>;

/// Pipeline settings.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// Access units queued per stream for its decoder before new ones are dropped.
    pub decode_queue: usize,
    /// Bytes of access units queued per stream for its decoder before new ones are dropped:
    /// the connection's byte budget (each access unit may be up to 8 MiB).
    pub decode_queue_bytes: usize,
    /// Batching across streams.
    pub batching: BatcherConfig,
    /// Width of the class map sent back with each result; 0 sends none. The height keeps the
    /// frame's aspect ratio.
    pub class_map_width: u16,
    /// Keyframe requests after loss.
    pub keyframes: KeyframeGateConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            decode_queue: 8,
            decode_queue_bytes: 32 << 20,
            batching: BatcherConfig::default(),
            class_map_width: 64,
            keyframes: KeyframeGateConfig::default(),
        }
    }
}

/// Optional parts of the pipeline.
#[derive(Default)]
pub struct PipelineExtras {
    /// Per-stream Prometheus metrics.
    pub metrics: Option<Arc<Metrics>>,
    /// Keep class maps (and overlays) of every result on disk.
    pub storage: Option<ResultStorage>,
    /// Preprocessing and post-processing backends; the CPU's when `None`.
    pub stages: Option<Stages>,
}

/// Result storage and how overlays are drawn.
pub struct ResultStorage {
    /// Where and what to store.
    pub store: ResultStore,
    /// Weight of the class colours over the frame in overlays, 0..=1.
    pub overlay_alpha: f32,
}

/// Counters across all streams.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Access units handed to decode queues.
    pub received: AtomicU64,
    /// Access units dropped because a decode queue was full.
    pub dropped_decode_queue: AtomicU64,
    /// Access units dropped while waiting for a keyframe.
    pub dropped_waiting_for_keyframe: AtomicU64,
    /// Decoder errors (each resets the decoder).
    pub decode_errors: AtomicU64,
    /// Frames decoded.
    pub decoded: AtomicU64,
    /// Decoded frames dropped because inference fell behind.
    pub dropped_batch_queue: AtomicU64,
    /// Frames through inference.
    pub inferred: AtomicU64,
    /// Results queued back to cameras.
    pub returned: AtomicU64,
    /// Results dropped because a camera's outbound queue was full or it was gone.
    pub dropped_results: AtomicU64,
    /// Keyframe requests sent.
    pub plis: AtomicU64,
    /// Batches that failed in the engine or in post-processing.
    pub failed_batches: AtomicU64,
}

struct Decoded {
    rtp_timestamp: u32,
    picture: Picture,
    decode_us: u32,
    /// When its access unit came off the network.
    received: Instant,
}

struct StreamEntry {
    name: StreamName,
    outbound: mpsc::Sender<Outbound>,
    /// Frames handed to the batcher and not yet through inference, post-processing and
    /// storage (or dropped): a closing stream waits for them.
    pending: Arc<AtomicUsize>,
}

/// Longest wait, when a stream closes, for its decoded frames to get through inference (they
/// are still segmented and stored; only their results cannot go back).
const CLOSE_FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts a frame of a stream as finished when dropped.
struct PendingFrame(Option<Arc<AtomicUsize>>);

impl Drop for PendingFrame {
    fn drop(&mut self) {
        if let Some(pending) = &self.0 {
            pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Shared {
    fn pending_frame(&self, stream: u64) -> PendingFrame {
        PendingFrame(
            self.streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&stream)
                .map(|entry| Arc::clone(&entry.pending)),
        )
    }
}

/// A stream's current name, shared by its connection, its decode thread and the inference
/// thread: an anonymous sender is renamed when its CNAME arrives.
#[derive(Clone)]
struct StreamName(Arc<Mutex<Arc<str>>>);

impl StreamName {
    fn new(name: &str) -> Self {
        Self(Arc::new(Mutex::new(name.into())))
    }

    fn get(&self) -> Arc<str> {
        Arc::clone(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sets a new name; returns the old one.
    fn set(&self, name: &str) -> Arc<str> {
        std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            name.into(),
        )
    }
}

struct Shared {
    config: PipelineConfig,
    batcher: Batcher<u64, Decoded>,
    streams: Mutex<HashMap<u64, StreamEntry>>,
    /// Decode threads by stream, joined on close or shutdown.
    decode_threads: Mutex<HashMap<u64, JoinHandle<()>>>,
    counters: PipelineCounters,
    decoders: DecoderFactory,
    metrics: Option<Arc<Metrics>>,
}

/// The decode → batch → infer → post pipeline; implements [`Streams`] for the ingest server.
pub struct Pipeline {
    shared: Arc<Shared>,
    inference: Mutex<Option<JoinHandle<()>>>,
}

impl Pipeline {
    /// Starts the inference thread with `engine`. Streams are added by the ingest server.
    pub fn start(
        config: PipelineConfig,
        engine: Box<dyn Engine>,
        decoders: DecoderFactory,
    ) -> Self {
        Self::start_with(config, engine, decoders, PipelineExtras::default())
    }

    /// Like [`Pipeline::start`], with metrics and result storage.
    pub fn start_with(
        config: PipelineConfig,
        engine: Box<dyn Engine>,
        decoders: DecoderFactory,
        extras: PipelineExtras,
    ) -> Self {
        let PipelineExtras {
            metrics,
            storage,
            stages,
        } = extras;
        let stages =
            stages.unwrap_or_else(|| Stages::cpu(PreprocessParams::from(engine.manifest())));
        let shared = Arc::new(Shared {
            config,
            batcher: Batcher::new(config.batching),
            streams: Mutex::new(HashMap::new()),
            decode_threads: Mutex::new(HashMap::new()),
            counters: PipelineCounters::default(),
            decoders,
            metrics,
        });
        let inference = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("inference".into())
                .spawn(move || run_inference(&shared, engine, stages, storage))
                .ok()
        };
        Self {
            shared,
            inference: Mutex::new(inference),
        }
    }

    /// Counters across all streams.
    #[must_use]
    pub fn counters(&self) -> &PipelineCounters {
        &self.shared.counters
    }

    /// Finishes in-flight work and stops: waits for every decode thread to decode what its
    /// stream queued (streams must have had [`Streams::stop_input`] or been closed), then lets
    /// the inference thread run every queued frame (results still go out), and joins it.
    /// Blocks; call it from a blocking context.
    pub fn shutdown(&self) {
        let decoders: Vec<JoinHandle<()>> = self
            .shared
            .decode_threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, handle)| handle)
            .collect();
        for handle in decoders {
            if handle.join().is_err() {
                warn!("decode thread panicked");
            }
        }
        self.shared.batcher.close();
        let handle = self
            .inference
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            warn!("inference thread panicked");
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One stream's handle, held by its connection task.
pub struct PipelineStream {
    id: u64,
    jobs: Option<SyncSender<Job>>,
    /// A job could not be queued: tell the decoder before the next access unit.
    pending_loss: bool,
    /// Bytes queued for the decode thread, which subtracts what it takes.
    queued_bytes: Arc<AtomicUsize>,
    name: StreamName,
    shared: Arc<Shared>,
}

impl Job {
    fn bytes(&self) -> usize {
        match self {
            Self::AccessUnit { data, .. } => data.len(),
            Self::Loss => 0,
        }
    }
}

enum Job {
    AccessUnit {
        data: Vec<u8>,
        rtp_timestamp: u32,
        keyframe: bool,
        received: Instant,
    },
    Loss,
}

impl PipelineStream {
    fn send(&mut self, job: Job) -> bool {
        let Some(jobs) = &self.jobs else { return false };
        let bytes = job.bytes();
        let budget = self.shared.config.decode_queue_bytes;
        if bytes > 0 && self.queued_bytes.load(Ordering::Relaxed) + bytes > budget {
            return false;
        }
        match jobs.try_send(job) {
            Ok(()) => {
                self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

impl StreamInput for PipelineStream {
    fn access_unit(&mut self, access_unit: &AccessUnit<'_>, received: Instant) {
        self.shared
            .counters
            .received
            .fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.shared.metrics {
            m.frame(&self.name.get(), FrameStage::Received);
        }
        if self.pending_loss && self.send(Job::Loss) {
            self.pending_loss = false;
        }
        let job = Job::AccessUnit {
            data: access_unit.data.to_vec(),
            rtp_timestamp: access_unit.rtp_timestamp,
            keyframe: access_unit.keyframe,
            received,
        };
        if !self.send(job) {
            // The decoder is behind: this access unit is gone, so the ones that refer to it
            // cannot be decoded either. Treat it as a loss.
            self.shared
                .counters
                .dropped_decode_queue
                .fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &self.shared.metrics {
                m.dropped(&self.name.get(), DropReason::DecodeQueueFull);
            }
            self.pending_loss = true;
        }
    }

    fn loss(&mut self, _loss: &Loss) {
        if let Some(m) = &self.shared.metrics {
            m.dropped(&self.name.get(), DropReason::Lost);
        }
        if !self.send(Job::Loss) {
            self.pending_loss = true;
        }
    }

    fn rename(&mut self, name: &str) {
        let old = self.name.set(name);
        // The old name's series end here; the stream's counts go on under the new one.
        if let Some(m) = &self.shared.metrics {
            m.remove_stream(&old);
        }
    }
}

impl Streams for Pipeline {
    type Stream = PipelineStream;

    fn open(&self, id: u64, name: &str, outbound: mpsc::Sender<Outbound>) -> PipelineStream {
        let shared = &self.shared;
        let name = StreamName::new(name);
        shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                StreamEntry {
                    name: name.clone(),
                    outbound: outbound.clone(),
                    pending: Arc::new(AtomicUsize::new(0)),
                },
            );
        let (tx, rx) = sync_channel(shared.config.decode_queue.max(1));
        let decoder = (shared.decoders)();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let thread = {
            let shared = Arc::clone(shared);
            let queued_bytes = Arc::clone(&queued_bytes);
            std::thread::Builder::new()
                .name(format!("decode-{id}"))
                .spawn(move || run_decoder(&shared, id, &rx, &queued_bytes, decoder, &outbound))
        };
        match thread {
            Ok(handle) => {
                shared
                    .decode_threads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, handle);
            }
            // Without its thread the stream's queue has no reader: sends fail and are counted.
            Err(e) => warn!(stream = id, error = %e, "cannot start a decode thread"),
        }
        PipelineStream {
            id,
            jobs: Some(tx),
            pending_loss: false,
            queued_bytes,
            name,
            shared: Arc::clone(shared),
        }
    }

    fn stop_input(&self, stream: &mut PipelineStream) {
        // Closing the queue ends the decode thread once it has decoded what was queued.
        stream.jobs = None;
    }

    fn close(&self, mut stream: PipelineStream) {
        stream.jobs = None;
        let handle = self
            .shared
            .decode_threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&stream.id);
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            warn!(stream = stream.id, "decode thread panicked");
        }
        // Frames already decoded are still segmented and stored.
        let pending = self
            .shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&stream.id)
            .map(|entry| Arc::clone(&entry.pending));
        if let Some(pending) = pending {
            let started = Instant::now();
            while pending.load(Ordering::Relaxed) > 0 && started.elapsed() < CLOSE_FINISH_TIMEOUT {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let dropped = self.shared.batcher.remove_stream(&stream.id).len() as u64;
        self.shared
            .counters
            .dropped_batch_queue
            .fetch_add(dropped, Ordering::Relaxed);
        self.shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&stream.id);
        if let Some(m) = &self.shared.metrics {
            m.remove_stream(&stream.name.get());
        }
    }
}

fn run_decoder(
    shared: &Shared,
    id: u64,
    jobs: &Receiver<Job>,
    queued_bytes: &AtomicUsize,
    mut decoder: Box<dyn Decoder>,
    outbound: &mpsc::Sender<Outbound>,
) {
    let counters = &shared.counters;
    let metrics = shared.metrics.as_deref();
    let (stream_name, pending) = shared
        .streams
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .map_or_else(
            || (StreamName::new(""), Arc::new(AtomicUsize::new(0))),
            |s| (s.name.clone(), Arc::clone(&s.pending)),
        );
    let mut gate = KeyframeGate::new(shared.config.keyframes, Instant::now());
    let mut scratch = I420Frame::filled(0, 0, (0, 0, 0));
    loop {
        let wait = gate.next_pli_at().map_or(Duration::from_secs(1), |at| {
            at.saturating_duration_since(Instant::now())
        });
        let job = match jobs.recv_timeout(wait) {
            Ok(job) => {
                queued_bytes.fetch_sub(job.bytes(), Ordering::Relaxed);
                Some(job)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let now = Instant::now();
        let name = stream_name.get();
        match job {
            Some(Job::Loss) => gate.on_loss(now),
            Some(Job::AccessUnit {
                data,
                rtp_timestamp,
                keyframe,
                received,
            }) => {
                if gate.admit(&data, keyframe, now) == Admit::Drop {
                    counters
                        .dropped_waiting_for_keyframe
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = metrics {
                        m.dropped(&name, DropReason::WaitingForKeyframe);
                    }
                } else {
                    let started = Instant::now();
                    match decoder.decode_picture(&data, &mut scratch) {
                        Ok(Some(picture)) => {
                            counters.decoded.fetch_add(1, Ordering::Relaxed);
                            let decode_time = started.elapsed();
                            let decoded = Decoded {
                                rtp_timestamp,
                                picture,
                                decode_us: micros(decode_time),
                                received,
                            };
                            pending.fetch_add(1, Ordering::Relaxed);
                            let dropped = shared.batcher.push(id, decoded).is_some();
                            if dropped {
                                pending.fetch_sub(1, Ordering::Relaxed);
                            }
                            if dropped {
                                counters.dropped_batch_queue.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Some(m) = metrics {
                                m.frame(&name, FrameStage::Decoded);
                                m.observe_stage(Stage::Decode, decode_time);
                                m.set_queue_depth(
                                    QueueKind::Batch,
                                    &name,
                                    shared.batcher.queued(&id),
                                );
                                if dropped {
                                    m.dropped(&name, DropReason::BatchQueueFull);
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            warn!(stream = %name, id, error = %e, "decode failed; waiting for a keyframe");
                            counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                            if let Some(m) = metrics {
                                m.dropped(&name, DropReason::DecodeError);
                                m.decoder_reset(&name);
                            }
                            decoder.reset();
                            gate.on_decode_error(now);
                        }
                    }
                }
            }
            None => {}
        }
        if gate.poll_pli(Instant::now()) {
            counters.plis.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = metrics {
                m.pli(&name);
            }
            debug!(stream = id, "asking for a keyframe");
            let _ = outbound.try_send(Outbound::KeyframeRequest);
        }
    }
}

fn run_inference(
    shared: &Shared,
    mut engine: Box<dyn Engine>,
    stages: Stages,
    mut storage: Option<ResultStorage>,
) {
    let Stages {
        mut preprocess,
        mut post,
    } = stages;
    let manifest = engine.manifest().clone();
    let table = manifest.classes.table();
    let per_image = preprocess.params().output_len();
    let (mut batch, mut input, mut logits) = (Vec::new(), Vec::new(), Vec::new());
    let mut post_output = PostOutput::default();
    let mut small_map = Vec::new();
    // Host copies of pictures in CUDA memory, for storage only.
    let mut downloaded = I420Frame::filled(0, 0, (0, 0, 0));
    let (mut colors, mut overlay) = (Vec::new(), Vec::new());
    // Per stream: frames stored so far, and results since the last fps update.
    let mut stored_frames: HashMap<u64, u64> = HashMap::new();
    let mut rates: HashMap<u64, (Instant, u32)> = HashMap::new();
    let counters = &shared.counters;
    let metrics = shared.metrics.as_deref();
    while shared.batcher.next_batch(&mut batch) {
        let started = Instant::now();
        input.resize(batch.len() * per_image, 0.0);
        let mut ok = true;
        for (i, (_, decoded)) in batch.iter().enumerate() {
            let out = &mut input[i * per_image..(i + 1) * per_image];
            if let Err(e) = preprocess.run(&decoded.picture, out) {
                warn!(error = %e, backend = preprocess.backend(), "preprocess failed");
                ok = false;
            }
        }
        let preprocess_time = started.elapsed();
        let infer_started = Instant::now();
        let batch_input = InputBatch::for_manifest(&manifest, batch.len(), &input);
        let shape = match engine.infer(&batch_input, &mut logits) {
            Ok(shape) if ok && shape.n == batch.len() => shape,
            failed => {
                if let Err(e) = failed {
                    warn!(error = %e, frames = batch.len(), "inference failed");
                }
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                for (stream, _) in batch.drain(..) {
                    drop(shared.pending_frame(stream));
                }
                continue;
            }
        };
        let infer_time = infer_started.elapsed();
        // A frame's inference time is its batch's (with preprocessing): what it waited for.
        let infer_us = micros(infer_time + preprocess_time);
        counters
            .inferred
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(m) = metrics {
            m.observe_batch_size(batch.len());
            m.observe_stage(Stage::Preprocess, preprocess_time);
            m.observe_stage(Stage::Infer, infer_time);
        }
        let per_logits = shape.classes * shape.height * shape.width;
        for (i, (stream, decoded)) in batch.drain(..).enumerate() {
            // Finished when this iteration ends, however it ends.
            let _pending = shared.pending_frame(stream);
            let post_started = Instant::now();
            let picture = &decoded.picture;
            let (w, h) = (picture.width() as usize, picture.height() as usize);
            let image_logits = ImageLogits {
                data: &logits[i * per_logits..(i + 1) * per_logits],
                classes: shape.classes,
                height: shape.height,
                width: shape.width,
            };
            let result = post
                .run(image_logits, picture, &mut post_output)
                .and_then(|()| {
                    small_class_map(
                        &post_output.class_map,
                        w,
                        h,
                        shared.config.class_map_width,
                        &mut small_map,
                    )
                });
            let small = match result {
                Ok(small) => small,
                Err(e) => {
                    warn!(error = %e, backend = post.backend(), "post-processing failed");
                    counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let class_map = &post_output.class_map;
            let post_time = post_started.elapsed();
            let frame_result = FrameResult {
                rtp_timestamp: decoded.rtp_timestamp,
                decode_us: decoded.decode_us,
                infer_us,
                post_us: micros(post_time),
                map_width: u16::try_from(w).unwrap_or(u16::MAX),
                map_height: u16::try_from(h).unwrap_or(u16::MAX),
                histogram: post_output.histogram.clone(),
                class_map: small.map(|(sw, sh)| (sw, sh, small_map.clone())),
            };
            let (sent, name) = {
                let streams = shared
                    .streams
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match streams.get(&stream) {
                    Some(entry) => (
                        entry
                            .outbound
                            .try_send(Outbound::Result(frame_result))
                            .is_ok(),
                        Some(entry.name.get()),
                    ),
                    None => (false, None),
                }
            };
            let counter = if sent {
                &counters.returned
            } else {
                &counters.dropped_results
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let (Some(m), Some(name)) = (metrics, &name) {
                m.frame(name, FrameStage::Inferred);
                m.observe_stage(Stage::Post, post_time);
                if sent {
                    m.frame(name, FrameStage::Returned);
                    m.observe_stage(Stage::Total, decoded.received.elapsed());
                }
                let (since, count) = rates.entry(stream).or_insert((Instant::now(), 0));
                *count += 1;
                let elapsed = since.elapsed();
                if elapsed >= Duration::from_secs(1) {
                    m.set_stream_fps(name, f64::from(*count) / elapsed.as_secs_f64());
                    (*since, *count) = (Instant::now(), 0);
                }
            }
            if let (Some(storage), Some(name)) = (storage.as_mut(), &name) {
                let index = stored_frames.entry(stream).or_insert(0);
                // Storage reads the picture on the host: a picture in CUDA memory is copied.
                let frame = match picture.to_host(&mut downloaded) {
                    Ok(frame) => Some(frame),
                    Err(e) => {
                        warn!(stream = %name, error = %e, "picture not downloaded for storage");
                        None
                    }
                };
                let overlay_rgb = match frame {
                    Some(f) if storage.store.config().overlays => {
                        colors.resize(w * h * 3, 0);
                        overlay.resize(w * h * 3, 0);
                        post::colorize(class_map, table, &mut colors)
                            .and_then(|()| {
                                post::blend_over_i420(
                                    &f.y,
                                    &f.u,
                                    &f.v,
                                    w,
                                    h,
                                    &colors,
                                    storage.overlay_alpha,
                                    &mut overlay,
                                )
                            })
                            .map_err(|e| warn!(error = %e, "overlay not drawn"))
                            .ok()
                            .map(|()| overlay.as_slice())
                    }
                    _ => None,
                };
                let stored = storage.store.store(
                    name,
                    decoded.rtp_timestamp,
                    *index,
                    class_map,
                    w as u32,
                    h as u32,
                    table,
                    overlay_rgb,
                );
                if let Err(e) = stored {
                    warn!(stream = %name, error = %e, "result not stored");
                }
                if let Some(frame) = frame {
                    let logged =
                        storage
                            .store
                            .log_frame_hash(name, *index, decoded.rtp_timestamp, frame);
                    if let Err(e) = logged {
                        warn!(stream = %name, error = %e, "frame hash not logged");
                    }
                }
                *index += 1;
            }
        }
        // Forget closed streams, so these maps stay as small as the set of open ones.
        if rates.len() + stored_frames.len() > 2 * batch_streams_open(shared) {
            let open = shared
                .streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            rates.retain(|id, _| open.contains_key(id));
            stored_frames.retain(|id, _| open.contains_key(id));
        }
    }
}

fn batch_streams_open(shared: &Shared) -> usize {
    shared
        .streams
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len()
}

/// The downscaled class map for a result: `class_map_width` wide (never wider than the frame),
/// aspect ratio kept. `None` when results carry no map.
fn small_class_map(
    class_map: &[u8],
    w: usize,
    h: usize,
    width: u16,
    out: &mut Vec<u8>,
) -> Result<Option<(u16, u16)>, post::PostError> {
    if width == 0 {
        return Ok(None);
    }
    let sw = usize::from(width).min(w).max(1);
    let sh = (h * sw).div_ceil(w).max(1);
    out.resize(sw * sh, 0);
    post::downscale_nearest(class_map, w, h, sw, sh, out)?;
    Ok(Some((sw as u16, sh as u16)))
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Pipeline {
    /// The camera name of an open stream.
    #[must_use]
    pub fn stream_name(&self, id: u64) -> Option<String> {
        let streams = self
            .shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        streams.get(&id).map(|s| s.name.get().to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use flowcloud_core::seq::SeqNum;

    use super::*;
    use crate::decode::{DecodeError, DecodeOutcome};
    use crate::engine::{EngineError, LogitsShape, ModelManifest};
    use crate::post::{CpuPost, Post, PostError};
    use crate::preprocess::{CpuPreprocess, Preprocess, PreprocessError};

    /// Answers every batch with all-zero logits of the manifest's shape.
    struct ZeroEngine(ModelManifest);

    impl Engine for ZeroEngine {
        fn manifest(&self) -> &ModelManifest {
            &self.0
        }

        fn infer(
            &mut self,
            batch: &InputBatch<'_>,
            logits: &mut Vec<f32>,
        ) -> Result<LogitsShape, EngineError> {
            let shape = LogitsShape {
                n: batch.n,
                classes: 19,
                height: 2,
                width: 2,
            };
            logits.clear();
            logits.resize(shape.n * 19 * 4, 0.0);
            Ok(shape)
        }
    }

    /// Takes `delay` per access unit and yields a 16x16 frame.
    struct SlowDecoder(Duration);

    impl Decoder for SlowDecoder {
        fn decode(
            &mut self,
            _au: &[u8],
            out: &mut I420Frame,
        ) -> Result<DecodeOutcome, DecodeError> {
            std::thread::sleep(self.0);
            *out = I420Frame::filled(16, 16, (16, 128, 128));
            Ok(DecodeOutcome::Frame)
        }
        fn reset(&mut self) {}
        fn backend(&self) -> &'static str {
            "slow"
        }
    }

    fn manifest() -> ModelManifest {
        let text = "name = \"t\"\ninput_name = \"input\"\noutput_name = \"logits\"\ninput_width = 16\n\
                    input_height = 16\nchannel_order = \"rgb\"\nmean = [0.5, 0.5, 0.5]\n\
                    std = [0.25, 0.25, 0.25]\nclasses = \"cityscapes-train\"\noutput_stride = 8\n\
                    precision = \"fp32\"\n";
        ModelManifest::from_toml_str(text, Path::new("t.toml")).unwrap()
    }

    /// A stage backend that counts its calls and the picture sizes it saw.
    struct Counting<T> {
        inner: T,
        seen: Arc<Mutex<Vec<(u32, u32)>>>,
    }

    impl Preprocess for Counting<CpuPreprocess> {
        fn params(&self) -> &PreprocessParams {
            self.inner.params()
        }

        fn run(&mut self, picture: &Picture, out: &mut [f32]) -> Result<(), PreprocessError> {
            self.seen
                .lock()
                .unwrap()
                .push((picture.width(), picture.height()));
            self.inner.run(picture, out)
        }

        fn backend(&self) -> &'static str {
            "counting"
        }
    }

    impl Post for Counting<CpuPost> {
        fn run(
            &mut self,
            logits: ImageLogits<'_>,
            picture: &Picture,
            out: &mut PostOutput,
        ) -> Result<(), PostError> {
            self.seen
                .lock()
                .unwrap()
                .push((picture.width(), picture.height()));
            self.inner.run(logits, picture, out)
        }

        fn backend(&self) -> &'static str {
            "counting"
        }
    }

    fn access_unit(data: &[u8], n: u32) -> AccessUnit<'_> {
        AccessUnit {
            rtp_timestamp: n * 3000,
            ssrc: 1,
            data,
            nal_count: 1,
            keyframe: true,
            first_sequence: SeqNum(0),
            last_sequence: SeqNum(0),
        }
    }

    #[test]
    fn every_frame_goes_through_the_configured_stage_backends() {
        let decoders: DecoderFactory =
            Arc::new(|| Box::new(SlowDecoder(Duration::ZERO)) as Box<dyn Decoder>);
        let preprocessed = Arc::new(Mutex::new(Vec::new()));
        let posted = Arc::new(Mutex::new(Vec::new()));
        let stages = Stages {
            preprocess: Box::new(Counting {
                inner: CpuPreprocess::new(PreprocessParams::from(&manifest())),
                seen: Arc::clone(&preprocessed),
            }),
            post: Box::new(Counting {
                inner: CpuPost,
                seen: Arc::clone(&posted),
            }),
        };
        let extras = PipelineExtras {
            stages: Some(stages),
            ..PipelineExtras::default()
        };
        let pipeline = Pipeline::start_with(
            PipelineConfig::default(),
            Box::new(ZeroEngine(manifest())),
            decoders,
            extras,
        );
        let (tx, mut rx) = mpsc::channel(100);
        let mut stream = pipeline.open(1, "cam", tx);
        let data = [0u8; 16];
        for n in 0..5u32 {
            stream.access_unit(&access_unit(&data, n), Instant::now());
            // One at a time, so that no frame is dropped for a full queue.
            let started = Instant::now();
            while pipeline.counters().returned.load(Ordering::Relaxed) < u64::from(n + 1) {
                assert!(started.elapsed() < Duration::from_secs(10), "no result");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        pipeline.close(stream);
        let mut results = Vec::new();
        while let Ok(Outbound::Result(result)) = rx.try_recv() {
            results.push(result);
        }
        assert_eq!(results.len(), 5);
        // All-zero logits: every pixel is class 0, counted over the 16×16 picture.
        for result in &results {
            assert_eq!(result.histogram[0], 256);
            assert_eq!(result.histogram.iter().sum::<u32>(), 256);
        }
        assert_eq!(*preprocessed.lock().unwrap(), vec![(16, 16); 5]);
        assert_eq!(*posted.lock().unwrap(), vec![(16, 16); 5]);
    }

    #[test]
    fn the_byte_budget_bounds_what_a_stream_queues_for_its_decoder() {
        let config = PipelineConfig {
            decode_queue: 1000,
            decode_queue_bytes: 3 * 10_000,
            ..PipelineConfig::default()
        };
        let decoders: DecoderFactory =
            Arc::new(|| Box::new(SlowDecoder(Duration::from_millis(50))) as Box<dyn Decoder>);
        let pipeline = Pipeline::start(config, Box::new(ZeroEngine(manifest())), decoders);
        let (tx, _rx) = mpsc::channel(1000);
        let mut stream = pipeline.open(1, "cam", tx);
        let data = vec![0u8; 10_000];
        for n in 0..20u32 {
            let au = AccessUnit {
                rtp_timestamp: n * 3000,
                ssrc: 1,
                data: &data,
                nal_count: 1,
                keyframe: true,
                first_sequence: SeqNum(0),
                last_sequence: SeqNum(0),
            };
            stream.access_unit(&au, Instant::now());
        }
        let counters = pipeline.counters();
        let dropped = counters.dropped_decode_queue.load(Ordering::Relaxed);
        // 20 sent within the decoder's first 50 ms: at most 3 queued plus 1 being decoded.
        assert!(
            dropped >= 16,
            "only {dropped} dropped: the budget did not bind"
        );
        assert!(stream.queued_bytes.load(Ordering::Relaxed) <= 30_000);
        pipeline.close(stream);
        assert_eq!(counters.received.load(Ordering::Relaxed), 20);
    }
}
