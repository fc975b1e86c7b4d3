//! Prometheus metrics of the worker, exposed as OpenMetrics text on `/metrics`.
//!
//! Per-stream series carry the label `stream` = the camera's RTCP SDES CNAME. Call
//! [`Metrics::remove_stream`] when a camera disconnects so its series do not pile up.
//!
//! Families (names as exposed; counters get the `_total` suffix from OpenMetrics):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `flowcloud_connections_open` | gauge | — |
//! | `flowcloud_connections_total` | counter | `outcome` |
//! | `flowcloud_ingest_events_total` | counter | `event` |
//! | `flowcloud_frames_total` | counter | `stream`, `stage` |
//! | `flowcloud_frames_dropped_total` | counter | `stream`, `reason` |
//! | `flowcloud_decoder_resets_total` | counter | `stream` |
//! | `flowcloud_decoders_total` | counter | `backend` |
//! | `flowcloud_decoder_fallbacks_total` | counter | `reason` |
//! | `flowcloud_plis_total` | counter | `stream` |
//! | `flowcloud_stage_seconds` | histogram | `stage` |
//! | `flowcloud_queue_depth` | gauge | `queue`, `stream` |
//! | `flowcloud_batch_size` | histogram | — |
//! | `flowcloud_stream_fps` | gauge | `stream` |
//!
//! The open-connections gauge is `flowcloud_connections_open`, not `flowcloud_connections`:
//! in OpenMetrics the counter `flowcloud_connections_total` is the family
//! `flowcloud_connections`, and two families may not share a name.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Defines a label-value enum: its variants, `as_str`, `ALL`, and its label encoding.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &[Self] = &[$(Self::$variant,)+];

            /// The label value.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// How a camera connection ended up (`outcome` label of `flowcloud_connections_total`).
    ConnectionOutcome {
        /// Accepted (counted when it is accepted; it ends with one of the others).
        Accepted = "accepted",
        /// Refused at once: `limits.max_connections` reached.
        RejectedCap = "rejected_cap",
        /// No SR + SDES CNAME within `limits.handshake_timeout_ms`.
        HandshakeTimeout = "handshake_timeout",
        /// The handshake packets were malformed or missing the CNAME.
        HandshakeInvalid = "handshake_invalid",
        /// No data within `limits.idle_timeout_ms`.
        IdleTimeout = "idle_timeout",
        /// The camera closed the connection (or sent BYE).
        Closed = "closed",
        /// The sender closed or reset the connection inside a packet: it stopped mid-stream.
        StoppedMidStream = "stopped_mid_stream",
        /// An I/O or protocol error ended it.
        Error = "error",
    }
}

label_enum! {
    /// Where a frame got to (`stage` label of `flowcloud_frames_total`).
    FrameStage {
        /// A complete access unit was reassembled.
        Received = "received",
        /// Decoded into a picture.
        Decoded = "decoded",
        /// Segmented.
        Inferred = "inferred",
        /// Its result was sent back to the camera.
        Returned = "returned",
    }
}

label_enum! {
    /// Why a frame was dropped (`reason` label of `flowcloud_frames_dropped_total`).
    DropReason {
        /// Lost in transit or incomplete (missing RTP packets).
        Lost = "lost",
        /// The stream's decode queue was full.
        DecodeQueueFull = "decode_queue_full",
        /// The stream's batch queue was full (inference fell behind).
        BatchQueueFull = "batch_queue_full",
        /// The decoder refused it.
        DecodeError = "decode_error",
        /// Discarded while the decoder waits for a key frame.
        WaitingForKeyframe = "waiting_for_keyframe",
    }
}

label_enum! {
    /// A timed processing stage (`stage` label of `flowcloud_stage_seconds`).
    Stage {
        /// H.264 decoding of one frame.
        Decode = "decode",
        /// Resize and normalize.
        Preprocess = "preprocess",
        /// Inference of one batch.
        Infer = "infer",
        /// Argmax, class map, colorize.
        Post = "post",
        /// Access unit complete to result sent.
        Total = "total",
    }
}

label_enum! {
    /// Ingest events other than connection outcomes (`event` label of
    /// `flowcloud_ingest_events_total`).
    IngestEvent {
        /// A sender streamed RTP before any SR + SDES CNAME and was accepted (`[senders]`).
        AnonymousStream = "anonymous_stream",
        /// A media packet was rejected by the depacketizer (malformed, or not H.264).
        PacketRejected = "packet_rejected",
        /// A result, report or keyframe request was dropped: the peer does not read them.
        OutboundDropped = "outbound_dropped",
        /// The worker connected to a configured source (`[[sources]]`).
        SourceConnected = "source_connected",
        /// A connection attempt to a configured source failed or timed out.
        SourceConnectFailed = "source_connect_failed",
    }
}

label_enum! {
    /// A per-stream queue (`queue` label of `flowcloud_queue_depth`).
    QueueKind {
        /// Access units waiting for the decoder.
        Decode = "decode",
        /// Decoded frames waiting for a batch.
        Batch = "batch",
    }
}

label_enum! {
    /// A stream decoder's backend (`backend` label of `flowcloud_decoders_total`).
    DecoderKind {
        /// openh264 on the CPU.
        Openh264 = "openh264",
        /// NVDEC on the GPU.
        Nvdec = "nvdec",
    }
}

label_enum! {
    /// Why a stream that should have decoded on NVDEC decodes on the CPU (`reason` label of
    /// `flowcloud_decoder_fallbacks_total`).
    FallbackReason {
        /// No NVDEC decoder could be created for the new stream.
        Create = "create",
        /// The stream's NVDEC decoder failed repeatedly (driver errors, not bad input).
        DecodeFailures = "decode_failures",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecoderLabels {
    backend: DecoderKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    reason: FallbackReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: ConnectionOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: IngestEvent,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrameLabels {
    stream: String,
    stage: FrameStage,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    stream: String,
    reason: DropReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: Stage,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: QueueKind,
    stream: String,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn stage_histogram() -> Histogram {
    // 0.5 ms, 1 ms, 2 ms, … 1.024 s, 2.048 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 13))
}

/// The worker's metrics. Cheap to update from any thread; share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    connections: Family<OutcomeLabels, Counter>,
    ingest_events: Family<EventLabels, Counter>,
    frames: Family<FrameLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    decoder_resets: Family<StreamLabels, Counter>,
    decoders: Family<DecoderLabels, Counter>,
    decoder_fallbacks: Family<FallbackLabels, Counter>,
    plis: Family<StreamLabels, Counter>,
    stage_seconds: HistogramFamily<StageLabels>,
    queue_depth: Family<QueueLabels, Gauge>,
    batch_size: Histogram,
    stream_fps: Family<StreamLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All families registered, no series yet.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let connections_open = Gauge::default();
        registry.register(
            "flowcloud_connections_open",
            "Camera connections open now",
            connections_open.clone(),
        );
        let connections = Family::default();
        registry.register(
            "flowcloud_connections",
            "Camera connections by outcome (accepted, then how each ended or why it was refused)",
            connections.clone(),
        );
        let ingest_events = Family::default();
        registry.register(
            "flowcloud_ingest_events",
            "Ingest events: anonymous streams, replies dropped for peers that do not read, \
             connections to configured sources and failed attempts",
            ingest_events.clone(),
        );
        let frames = Family::default();
        registry.register(
            "flowcloud_frames",
            "Frames that reached each stage",
            frames.clone(),
        );
        let dropped = Family::default();
        registry.register(
            "flowcloud_frames_dropped",
            "Frames dropped, by reason",
            dropped.clone(),
        );
        let decoder_resets = Family::default();
        registry.register(
            "flowcloud_decoder_resets",
            "Decoder resets (errors, resolution changes)",
            decoder_resets.clone(),
        );
        let decoders = Family::default();
        registry.register(
            "flowcloud_decoders",
            "Stream decoders created, by backend",
            decoders.clone(),
        );
        let decoder_fallbacks = Family::default();
        registry.register(
            "flowcloud_decoder_fallbacks",
            "Streams moved from NVDEC to openh264, by reason",
            decoder_fallbacks.clone(),
        );
        let plis = Family::default();
        registry.register(
            "flowcloud_plis",
            "Key frames requested (RTCP PLI sent)",
            plis.clone(),
        );
        let stage_seconds: HistogramFamily<StageLabels> =
            Family::new_with_constructor(stage_histogram);
        registry.register_with_unit(
            "flowcloud_stage",
            "Time spent per processing stage",
            Unit::Seconds,
            stage_seconds.clone(),
        );
        let queue_depth = Family::default();
        registry.register(
            "flowcloud_queue_depth",
            "Items waiting in a stream's queue",
            queue_depth.clone(),
        );
        let batch_size = Histogram::new(linear_buckets(1.0, 1.0, 16));
        registry.register(
            "flowcloud_batch_size",
            "Frames per inference batch",
            batch_size.clone(),
        );
        let stream_fps = Family::default();
        registry.register(
            "flowcloud_stream_fps",
            "Frames per second returned to each camera",
            stream_fps.clone(),
        );
        Self {
            registry,
            connections_open,
            connections,
            ingest_events,
            frames,
            dropped,
            decoder_resets,
            decoders,
            decoder_fallbacks,
            plis,
            stage_seconds,
            queue_depth,
            batch_size,
            stream_fps,
        }
    }

    /// Sets the number of open camera connections.
    pub fn set_connections_open(&self, open: i64) {
        self.connections_open.set(open);
    }

    /// One more open connection (pair with [`Self::connection_closed`]).
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// One fewer open connection.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// Counts a connection outcome.
    pub fn connection_outcome(&self, outcome: ConnectionOutcome) {
        self.connections
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts `n` ingest events of one kind.
    pub fn ingest_events(&self, event: IngestEvent, n: u64) {
        self.ingest_events
            .get_or_create(&EventLabels { event })
            .inc_by(n);
    }

    /// Counts one frame of `stream` reaching `stage`.
    pub fn frame(&self, stream: &str, stage: FrameStage) {
        self.frames_n(stream, stage, 1);
    }

    /// Counts `n` frames of `stream` reaching `stage`.
    pub fn frames_n(&self, stream: &str, stage: FrameStage, n: u64) {
        self.frames
            .get_or_create(&FrameLabels {
                stream: stream.to_owned(),
                stage,
            })
            .inc_by(n);
    }

    /// Counts one dropped frame of `stream`.
    pub fn dropped(&self, stream: &str, reason: DropReason) {
        self.dropped_n(stream, reason, 1);
    }

    /// Counts `n` dropped frames of `stream`.
    pub fn dropped_n(&self, stream: &str, reason: DropReason, n: u64) {
        self.dropped
            .get_or_create(&DropLabels {
                stream: stream.to_owned(),
                reason,
            })
            .inc_by(n);
    }

    /// Counts a decoder reset of `stream`.
    pub fn decoder_reset(&self, stream: &str) {
        self.decoder_resets
            .get_or_create(&StreamLabels {
                stream: stream.to_owned(),
            })
            .inc();
    }

    /// Counts a stream decoder created on `backend`.
    pub fn decoder_created(&self, backend: DecoderKind) {
        self.decoders
            .get_or_create(&DecoderLabels { backend })
            .inc();
    }

    /// Counts a stream moved from NVDEC to openh264.
    pub fn decoder_fallback(&self, reason: FallbackReason) {
        self.decoder_fallbacks
            .get_or_create(&FallbackLabels { reason })
            .inc();
    }

    /// Counts a PLI sent to `stream`.
    pub fn pli(&self, stream: &str) {
        self.plis
            .get_or_create(&StreamLabels {
                stream: stream.to_owned(),
            })
            .inc();
    }

    /// Records the time one `stage` took.
    pub fn observe_stage(&self, stage: Stage, elapsed: Duration) {
        self.stage_seconds
            .get_or_create(&StageLabels { stage })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the depth of one of `stream`'s queues.
    pub fn set_queue_depth(&self, queue: QueueKind, stream: &str, depth: usize) {
        let depth = i64::try_from(depth).unwrap_or(i64::MAX);
        self.queue_depth
            .get_or_create(&QueueLabels {
                queue,
                stream: stream.to_owned(),
            })
            .set(depth);
    }

    /// Records the size of one inference batch.
    pub fn observe_batch_size(&self, frames: usize) {
        // Exact for any realistic batch size.
        #[allow(clippy::cast_precision_loss)]
        self.batch_size.observe(frames as f64);
    }

    /// Sets `stream`'s frame rate (the caller measures it).
    pub fn set_stream_fps(&self, stream: &str, fps: f64) {
        self.stream_fps
            .get_or_create(&StreamLabels {
                stream: stream.to_owned(),
            })
            .set(fps);
    }

    /// Drops every series labelled with `stream` (call when the camera disconnects).
    pub fn remove_stream(&self, stream: &str) {
        let stream = stream.to_owned();
        for &stage in FrameStage::ALL {
            self.frames.remove(&FrameLabels {
                stream: stream.clone(),
                stage,
            });
        }
        for &reason in DropReason::ALL {
            self.dropped.remove(&DropLabels {
                stream: stream.clone(),
                reason,
            });
        }
        for &queue in QueueKind::ALL {
            self.queue_depth.remove(&QueueLabels {
                queue,
                stream: stream.clone(),
            });
        }
        let labels = StreamLabels { stream };
        self.decoder_resets.remove(&labels);
        self.plis.remove(&labels);
        self.stream_fps.remove(&labels);
    }

    /// The registry, to register more metrics into a copy or inspect it.
    #[must_use]
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric as OpenMetrics text (content type [`CONTENT_TYPE`]), ending in `# EOF`.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, and neither can our label encoders.
        if let Err(std::fmt::Error) =
            prometheus_client::encoding::text::encode(&mut text, &self.registry)
        {
            tracing::error!("encoding metrics failed");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_present() {
        // Label-less metrics show from the start; labelled families once they have a series.
        let text = Metrics::new().encode();
        assert!(text.contains("flowcloud_connections_open 0"), "{text}");
        assert!(text.contains("flowcloud_batch_size_count 0"), "{text}");
        assert!(!text.contains("flowcloud_frames"), "{text}");
        let m = Metrics::new();
        m.connection_outcome(ConnectionOutcome::Closed);
        m.frame("c", FrameStage::Received);
        m.dropped("c", DropReason::Lost);
        m.decoder_reset("c");
        m.decoder_created(DecoderKind::Openh264);
        m.decoder_fallback(FallbackReason::Create);
        m.pli("c");
        m.observe_stage(Stage::Post, Duration::ZERO);
        m.set_queue_depth(QueueKind::Batch, "c", 0);
        m.set_stream_fps("c", 0.0);
        let text = m.encode();
        for name in [
            "# TYPE flowcloud_connections_open gauge",
            "# TYPE flowcloud_connections counter",
            "# TYPE flowcloud_frames counter",
            "# TYPE flowcloud_frames_dropped counter",
            "# TYPE flowcloud_decoder_resets counter",
            "# TYPE flowcloud_decoders counter",
            "# TYPE flowcloud_decoder_fallbacks counter",
            "# TYPE flowcloud_plis counter",
            "# TYPE flowcloud_stage_seconds histogram",
            "# UNIT flowcloud_stage_seconds seconds",
            "# TYPE flowcloud_queue_depth gauge",
            "# TYPE flowcloud_batch_size histogram",
            "# TYPE flowcloud_stream_fps gauge",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Each family is declared once.
        let types = text
            .lines()
            .filter(|l| l.starts_with("# TYPE "))
            .collect::<Vec<_>>();
        let mut names = types
            .iter()
            .map(|l| l.split(' ').nth(2))
            .collect::<Vec<_>>();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), types.len(), "{text}");
    }

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn encode_after_updates() {
        let m = Metrics::new();
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.connection_outcome(ConnectionOutcome::Accepted);
        m.connection_outcome(ConnectionOutcome::Accepted);
        m.connection_outcome(ConnectionOutcome::RejectedCap);
        m.connection_outcome(ConnectionOutcome::HandshakeTimeout);
        m.frame("cam-1", FrameStage::Received);
        m.frames_n("cam-1", FrameStage::Decoded, 3);
        m.frame("cam-2", FrameStage::Returned);
        m.dropped("cam-1", DropReason::WaitingForKeyframe);
        m.dropped_n("cam-1", DropReason::BatchQueueFull, 2);
        m.decoder_reset("cam-1");
        m.decoder_created(DecoderKind::Nvdec);
        m.decoder_created(DecoderKind::Nvdec);
        m.decoder_created(DecoderKind::Openh264);
        m.decoder_fallback(FallbackReason::DecodeFailures);
        m.pli("cam-1");
        m.pli("cam-1");
        m.observe_stage(Stage::Infer, Duration::from_millis(30));
        m.observe_stage(Stage::Decode, Duration::from_micros(200));
        m.set_queue_depth(QueueKind::Decode, "cam-1", 5);
        m.set_queue_depth(QueueKind::Batch, "cam-1", 1);
        m.observe_batch_size(3);
        m.set_stream_fps("cam-1", 29.97);
        let text = m.encode();

        let checks: &[(&str, f64)] = &[
            ("flowcloud_connections_open", 1.0),
            (r#"flowcloud_connections_total{outcome="accepted"}"#, 2.0),
            (
                r#"flowcloud_connections_total{outcome="rejected_cap"}"#,
                1.0,
            ),
            (
                r#"flowcloud_connections_total{outcome="handshake_timeout"}"#,
                1.0,
            ),
            (
                r#"flowcloud_frames_total{stream="cam-1",stage="received"}"#,
                1.0,
            ),
            (
                r#"flowcloud_frames_total{stream="cam-1",stage="decoded"}"#,
                3.0,
            ),
            (
                r#"flowcloud_frames_total{stream="cam-2",stage="returned"}"#,
                1.0,
            ),
            (
                r#"flowcloud_frames_dropped_total{stream="cam-1",reason="waiting_for_keyframe"}"#,
                1.0,
            ),
            (
                r#"flowcloud_frames_dropped_total{stream="cam-1",reason="batch_queue_full"}"#,
                2.0,
            ),
            (r#"flowcloud_decoder_resets_total{stream="cam-1"}"#, 1.0),
            (r#"flowcloud_decoders_total{backend="nvdec"}"#, 2.0),
            (r#"flowcloud_decoders_total{backend="openh264"}"#, 1.0),
            (
                r#"flowcloud_decoder_fallbacks_total{reason="decode_failures"}"#,
                1.0,
            ),
            (r#"flowcloud_plis_total{stream="cam-1"}"#, 2.0),
            (r#"flowcloud_stage_seconds_count{stage="infer"}"#, 1.0),
            (r#"flowcloud_stage_seconds_sum{stage="infer"}"#, 0.03),
            (
                r#"flowcloud_stage_seconds_bucket{le="0.0005",stage="decode"}"#,
                1.0,
            ),
            (
                r#"flowcloud_stage_seconds_bucket{le="+Inf",stage="decode"}"#,
                1.0,
            ),
            (
                r#"flowcloud_queue_depth{queue="decode",stream="cam-1"}"#,
                5.0,
            ),
            (
                r#"flowcloud_queue_depth{queue="batch",stream="cam-1"}"#,
                1.0,
            ),
            ("flowcloud_batch_size_count", 1.0),
            (r#"flowcloud_batch_size_bucket{le="2.0"}"#, 0.0),
            (r#"flowcloud_batch_size_bucket{le="3.0"}"#, 1.0),
            (r#"flowcloud_batch_size_bucket{le="16.0"}"#, 1.0),
            (r#"flowcloud_stream_fps{stream="cam-1"}"#, 29.97),
        ];
        for &(prefix, want) in checks {
            let got = sample(&text, prefix);
            assert_eq!(got, Some(want), "{prefix}:\n{text}");
        }
        // Stage buckets span 0.5 ms to 2 s, doubling.
        let decode_buckets = text
            .lines()
            .filter(|l| l.starts_with("flowcloud_stage_seconds_bucket") && l.contains("decode"))
            .count();
        assert_eq!(decode_buckets, 14, "{text}"); // 13 + "+Inf"
        for le in ["0.001", "0.002", "0.004", "0.512", "1.024", "2.048"] {
            let bucket = format!(r#"flowcloud_stage_seconds_bucket{{le="{le}",stage="decode"}} 1"#);
            assert!(text.contains(&bucket), "{bucket}:\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.frame("cam \"a\"\\b\nc", FrameStage::Received);
        let text = m.encode();
        assert!(text.contains(r#"stream="cam \"a\"\\b\nc""#), "{text}");
    }

    #[test]
    fn remove_stream_removes_series() {
        let m = Metrics::new();
        for cam in ["cam-1", "cam-2"] {
            for &stage in FrameStage::ALL {
                m.frame(cam, stage);
            }
            for &reason in DropReason::ALL {
                m.dropped(cam, reason);
            }
            for &queue in QueueKind::ALL {
                m.set_queue_depth(queue, cam, 1);
            }
            m.decoder_reset(cam);
            m.pli(cam);
            m.set_stream_fps(cam, 10.0);
        }
        m.observe_stage(Stage::Total, Duration::from_millis(1));
        assert!(m.encode().contains(r#"stream="cam-1""#));
        m.remove_stream("cam-1");
        let text = m.encode();
        assert!(!text.contains("cam-1"), "{text}");
        // cam-2 and the stream-less series stay: 4 + 5 + 2 + 1 + 1 + 1 = 14 lines.
        assert_eq!(
            text.lines()
                .filter(|l| l.contains(r#"stream="cam-2""#))
                .count(),
            14,
            "{text}"
        );
        assert!(
            text.contains(r#"flowcloud_stage_seconds_count{stage="total"} 1"#),
            "{text}"
        );
        // Removing an unknown stream is harmless; the stream can come back.
        m.remove_stream("cam-9");
        m.frame("cam-1", FrameStage::Received);
        assert!(
            m.encode()
                .contains(r#"flowcloud_frames_total{stream="cam-1",stage="received"} 1"#)
        );
    }

    #[test]
    fn shared_across_threads() {
        let m = std::sync::Arc::new(Metrics::new());
        let handles = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        m.frame("cam", FrameStage::Received);
                    }
                })
            })
            .collect::<Vec<_>>();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            sample(
                &m.encode(),
                r#"flowcloud_frames_total{stream="cam",stage="received"}"#
            ),
            Some(4000.0)
        );
    }
}
