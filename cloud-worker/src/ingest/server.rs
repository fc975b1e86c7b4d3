//! The TCP side: a listener with a global connection cap, and one task per camera that moves
//! bytes between its socket and its [`Session`]. A connection's failure ends that task only.
//!
//! Per connection: the handshake must complete within `handshake_timeout`, then any silence
//! longer than `idle_timeout` closes it. Memory per connection is bounded by the session (a
//! 64 KiB deframer and one access-unit buffer) and the bounded outbound queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowcloud_core::h264::{AccessUnit, DepacketizerConfig, Loss};
use flowcloud_core::results::{ClassMap, SegmentationResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument, debug, info, info_span, warn};

use super::session::{Session, SessionConfig, SessionError, SessionEvent};

/// Listener and per-connection limits.
#[derive(Clone, Copy, Debug)]
pub struct IngestConfig {
    /// Most simultaneous camera connections; more are closed at once.
    pub max_connections: usize,
    /// Time allowed for the SR + SDES CNAME handshake.
    pub handshake_timeout: Duration,
    /// Longest silence tolerated after the handshake.
    pub idle_timeout: Duration,
    /// How often a receiver report goes back to the camera.
    pub report_interval: Duration,
    /// Depacketizer limits.
    pub depacketizer: DepacketizerConfig,
    /// Results, PLIs and reports queued for one camera before new ones are dropped.
    pub outbound_queue: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_connections: 64,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            report_interval: Duration::from_secs(1),
            depacketizer: DepacketizerConfig::default(),
            outbound_queue: 64,
        }
    }
}

/// A result for one frame, owned, on its way back to a camera.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameResult {
    /// RTP timestamp of the frame.
    pub rtp_timestamp: u32,
    /// Decode time, µs.
    pub decode_us: u32,
    /// Inference time, µs.
    pub infer_us: u32,
    /// Post-processing time, µs.
    pub post_us: u32,
    /// Class-map width (the frame's).
    pub map_width: u16,
    /// Class-map height.
    pub map_height: u16,
    /// Pixels per class.
    pub histogram: Vec<u32>,
    /// Optional downscaled class map: width, height, row-major class ids.
    pub class_map: Option<(u16, u16, Vec<u8>)>,
}

/// What the pipeline sends back to a camera.
#[derive(Debug)]
pub enum Outbound {
    /// A frame's result (an `FCSG` packet).
    Result(FrameResult),
    /// A keyframe request (PLI).
    KeyframeRequest,
}

/// The pipeline's side of one camera stream, fed by its connection task.
pub trait StreamInput: Send {
    /// A complete access unit arrived.
    fn access_unit(&mut self, access_unit: &AccessUnit<'_>, received: Instant);
    /// An access unit was lost; the decoder needs a keyframe.
    fn loss(&mut self, loss: &Loss);
}

/// Where streams go once identified: the decode/inference pipeline.
pub trait Streams: Send + Sync + 'static {
    /// The per-stream handle.
    type Stream: StreamInput + 'static;
    /// A camera completed its handshake. `outbound` carries what goes back to it.
    fn open(&self, id: u64, cname: &str, outbound: mpsc::Sender<Outbound>) -> Self::Stream;
    /// The worker is shutting down: take no more input for this stream, but finish what
    /// was already given to it.
    fn stop_input(&self, stream: &mut Self::Stream);
    /// The camera's connection ended; release the stream. May block briefly (it waits for the
    /// stream's decoder to finish), so the server calls it on a blocking thread.
    fn close(&self, stream: Self::Stream);
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionEnd {
    /// The peer closed cleanly.
    #[error("closed by the camera")]
    Closed,
    /// The handshake did not arrive in time.
    #[error("no SR + SDES CNAME within {0:?}")]
    HandshakeTimeout(Duration),
    /// Nothing arrived for too long.
    #[error("idle for {0:?}")]
    IdleTimeout(Duration),
    /// A protocol violation.
    #[error(transparent)]
    Protocol(#[from] SessionError),
    /// A socket error.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The worker is shutting down.
    #[error("worker shutting down")]
    Shutdown,
}

/// Where a graceful shutdown stands, sent to every connection on a watch channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShutdownPhase {
    /// Normal operation.
    #[default]
    Running,
    /// Stop reading media; keep sending results for frames already in flight.
    Draining,
    /// Everything in flight is done: send what is queued and close.
    Done,
}

/// Connection counters for metrics and tests.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused because the cap was reached.
    pub rejected_cap: AtomicU64,
    /// Connections ended by a handshake problem or timeout (the next two together).
    pub handshake_failures: AtomicU64,
    /// Connections whose handshake did not arrive in time.
    pub handshake_timeouts: AtomicU64,
    /// Connections that opened with something other than a valid handshake.
    pub handshake_invalid: AtomicU64,
    /// Connections the camera closed.
    pub closed: AtomicU64,
    /// Connections that failed on a socket error.
    pub errors: AtomicU64,
    /// Connections ended by idleness.
    pub idle_timeouts: AtomicU64,
    /// Connections currently open.
    pub open: AtomicU64,
}

/// Accepts camera connections until `shutdown` resolves; each runs in its own task.
pub async fn serve<S: Streams>(
    listener: TcpListener,
    config: IngestConfig,
    streams: Arc<S>,
    counters: Arc<IngestCounters>,
    shutdown: tokio::sync::watch::Receiver<ShutdownPhase>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let next_id = AtomicU64::new(1);
    let mut stop = shutdown.clone();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    continue;
                }
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() != ShutdownPhase::Running {
                    break;
                }
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            counters.rejected_cap.fetch_add(1, Ordering::Relaxed);
            warn!(%peer, limit = config.max_connections, "connection refused: at the connection cap");
            drop(socket);
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let (streams, counters, shutdown) = (
            Arc::clone(&streams),
            Arc::clone(&counters),
            shutdown.clone(),
        );
        let span = info_span!("camera", id, %peer);
        tokio::spawn(
            async move {
                counters.open.fetch_add(1, Ordering::Relaxed);
                let (end, stream) = run_connection(socket, id, config, &*streams, shutdown).await;
                if let Some(stream) = stream {
                    // Closing waits for the stream's decoder: keep that off the async workers.
                    let streams = Arc::clone(&streams);
                    if let Err(e) = tokio::task::spawn_blocking(move || streams.close(stream)).await
                    {
                        warn!(error = %e, "closing the stream failed");
                    }
                }
                let count = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
                match &end {
                    ConnectionEnd::Closed => {
                        count(&counters.closed);
                        info!(reason = %end, "connection ended");
                    }
                    ConnectionEnd::Shutdown => info!(reason = %end, "connection ended"),
                    ConnectionEnd::HandshakeTimeout(_) | ConnectionEnd::Protocol(_) => {
                        count(&counters.handshake_failures);
                        let detail = if matches!(end, ConnectionEnd::HandshakeTimeout(_)) {
                            &counters.handshake_timeouts
                        } else {
                            &counters.handshake_invalid
                        };
                        count(detail);
                        warn!(reason = %end, "connection rejected");
                    }
                    ConnectionEnd::IdleTimeout(_) => {
                        count(&counters.idle_timeouts);
                        warn!(reason = %end, "connection closed");
                    }
                    ConnectionEnd::Io(_) => {
                        count(&counters.errors);
                        warn!(reason = %end, "connection failed");
                    }
                }
                // After the outcome is counted, so `open == 0` means every outcome is in.
                counters.open.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Runs one camera connection to its end; returns why it ended and the stream to close, if the
/// camera got as far as opening one.
pub async fn run_connection<S: Streams>(
    socket: TcpStream,
    id: u64,
    config: IngestConfig,
    streams: &S,
    mut shutdown: tokio::sync::watch::Receiver<ShutdownPhase>,
) -> (ConnectionEnd, Option<S::Stream>) {
    let _ = socket.set_nodelay(true);
    let (mut reader, mut writer) = socket.into_split();
    let mut session = Session::new(SessionConfig {
        worker_ssrc: 0x4643_0000 | (id as u32 & 0xffff),
        depacketizer: config.depacketizer,
    });
    let (tx, mut rx) = mpsc::channel::<Outbound>(config.outbound_queue.max(1));
    let mut stream: Option<S::Stream> = None;
    let mut read_buf = vec![0u8; 64 * 1024];
    let mut write_buf = vec![0u8; 70 * 1024];
    let mut report = tokio::time::interval(config.report_interval);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline_start = Instant::now();
    let mut last_input = Instant::now();
    let mut draining = false;

    let end = loop {
        let timeout = if session.is_identified() {
            config.idle_timeout.saturating_sub(last_input.elapsed())
        } else {
            config
                .handshake_timeout
                .saturating_sub(deadline_start.elapsed())
        };
        tokio::select! {
            read = tokio::time::timeout(timeout, reader.read(&mut read_buf)), if !draining => {
                let n = match read {
                    Err(_) if session.is_identified() => break ConnectionEnd::IdleTimeout(config.idle_timeout),
                    Err(_) => break ConnectionEnd::HandshakeTimeout(config.handshake_timeout),
                    Ok(Err(e)) => break ConnectionEnd::Io(e),
                    Ok(Ok(0)) => {
                        if session.is_mid_frame() {
                            debug!("camera disconnected inside a frame");
                        }
                        break ConnectionEnd::Closed;
                    }
                    Ok(Ok(n)) => n,
                };
                last_input = Instant::now();
                let now = Instant::now();
                let result = session.handle_bytes(now, &read_buf[..n], |event| match event {
                    SessionEvent::Identified { cname, ssrc } => {
                        info!(%cname, ssrc = format_args!("{ssrc:#010x}"), "camera identified");
                        stream = Some(streams.open(id, &cname, tx.clone()));
                    }
                    SessionEvent::AccessUnit(au) => {
                        if let Some(s) = stream.as_mut() {
                            s.access_unit(&au, now);
                        }
                    }
                    SessionEvent::Loss(loss) => {
                        debug!(?loss, "access unit lost");
                        if let Some(s) = stream.as_mut() {
                            s.loss(&loss);
                        }
                    }
                    SessionEvent::PacketRejected(e) => debug!(error = %e, "media packet rejected"),
                    SessionEvent::RtcpRejected(e) => debug!(error = %e, "RTCP packet rejected"),
                    SessionEvent::Bye => debug!("camera sent BYE"),
                });
                if let Err(e) = result {
                    break ConnectionEnd::Protocol(e);
                }
            }
            Some(message) = rx.recv() => {
                if let Some(n) = encode_outbound(&mut session, &message, &mut write_buf)
                    && let Err(e) = writer.write_all(&write_buf[..n]).await
                {
                    break ConnectionEnd::Io(e);
                }
            }
            _ = report.tick(), if session.is_identified() => {
                if let Some(n) = session.write_receiver_report(Instant::now(), &mut write_buf)
                    && let Err(e) = writer.write_all(&write_buf[..n]).await
                {
                    break ConnectionEnd::Io(e);
                }
            }
            changed = shutdown.changed() => {
                let phase = if changed.is_err() { ShutdownPhase::Done } else { *shutdown.borrow() };
                if phase >= ShutdownPhase::Draining && !draining {
                    draining = true;
                    if let Some(s) = stream.as_mut() {
                        streams.stop_input(s);
                    }
                }
                if phase == ShutdownPhase::Done {
                    // Everything in flight has been queued: send it, then close.
                    while let Ok(message) = rx.try_recv() {
                        if let Some(n) = encode_outbound(&mut session, &message, &mut write_buf)
                            && writer.write_all(&write_buf[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                    break ConnectionEnd::Shutdown;
                }
            }
        }
    };
    (end, stream.take())
}

/// Writes a framed PLI or `FCSG` result for `message`; `None` when it cannot be sent.
fn encode_outbound(session: &mut Session, message: &Outbound, out: &mut [u8]) -> Option<usize> {
    match message {
        Outbound::KeyframeRequest => session.write_pli(out),
        Outbound::Result(r) => {
            let result = SegmentationResult {
                rtp_timestamp: r.rtp_timestamp,
                decode_us: r.decode_us,
                infer_us: r.infer_us,
                post_us: r.post_us,
                map_width: r.map_width,
                map_height: r.map_height,
                histogram: &r.histogram,
                class_map: r
                    .class_map
                    .as_ref()
                    .map(|(width, height, classes)| ClassMap {
                        width: *width,
                        height: *height,
                        classes,
                    }),
            };
            match session.write_result(&result, out) {
                Ok(n) => Some(n),
                Err(e) => {
                    warn!(error = %e, "result not sent");
                    None
                }
            }
        }
    }
}
