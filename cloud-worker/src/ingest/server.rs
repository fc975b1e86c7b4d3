//! The TCP side: a listener with a global connection cap, and one task per camera that moves
//! bytes between its socket and its [`Session`]. A connection's failure ends that task only.
//!
//! Per connection: the handshake (or, from a sender allowed to skip it, the first RTP packet)
//! must arrive within `handshake_timeout`, then any silence longer than `idle_timeout` closes
//! it. Memory per connection is bounded by the session (a 64 KiB deframer and one access-unit
//! buffer) and the bounded outbound queues.
//!
//! Reading never waits for writing: what goes back to the camera is written by a task of its
//! own, through a bounded queue that drops when full. A standard GStreamer sender never reads
//! what the worker sends; once its socket buffer is full the writes stall, and only the results
//! and reports for it are dropped, never its media.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowcloud_core::h264::{AccessUnit, DepacketizerConfig, Loss};
use flowcloud_core::results::{ClassMap, SegmentationResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument, debug, info, info_span, warn};

use super::identity::{AnonymousSenders, Origin};
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
    /// Which connecting peers may send RTP before (or without) the SR + SDES CNAME handshake.
    pub anonymous: AnonymousSenders,
    /// Whether anonymous senders get results, reports and keyframe requests (a GStreamer
    /// sender never reads them, and resets the connection when it closes with them unread).
    pub reply_to_anonymous: bool,
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
            anonymous: AnonymousSenders::default(),
            reply_to_anonymous: true,
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
    /// The stream has a new name (an anonymous sender's CNAME arrived); what comes from now on
    /// is filed under it.
    fn rename(&mut self, name: &str);
}

/// Where streams go once identified: the decode/inference pipeline.
pub trait Streams: Send + Sync + 'static {
    /// The per-stream handle.
    type Stream: StreamInput + 'static;
    /// A camera completed its handshake, or its RTP came first and was accepted; `name` is its
    /// CNAME, its configured source name or its anonymous name. `outbound` carries what goes
    /// back to it.
    fn open(&self, id: u64, name: &str, outbound: mpsc::Sender<Outbound>) -> Self::Stream;
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
    /// The peer closed or reset the connection inside a packet: it stopped mid-stream.
    #[error("the sender stopped inside a packet ({0})")]
    StoppedMidStream(&'static str),
    /// Neither the handshake nor (where allowed) media arrived in time.
    #[error("no SR + SDES CNAME (or RTP, where allowed) within {0:?}")]
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
    /// Connections that ended inside a packet (the sender stopped mid-stream).
    pub stopped_mid_stream: AtomicU64,
    /// Streams accepted without the handshake (RTP first).
    pub anonymous_streams: AtomicU64,
    /// Results, reports and keyframe requests dropped because a peer does not read them.
    pub outbound_dropped: AtomicU64,
    /// Media packets rejected by the depacketizer (malformed, or not H.264 as we take it).
    pub packets_rejected: AtomicU64,
    /// Connections made to configured sources.
    pub source_connects: AtomicU64,
    /// Attempts to connect to a configured source that failed or timed out.
    pub source_connect_failures: AtomicU64,
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
        let id = next_connection_id();
        let origin = Origin::Accepted {
            peer,
            anonymous_allowed: config.anonymous.allows(peer.ip()),
        };
        let (streams, counters, shutdown) = (
            Arc::clone(&streams),
            Arc::clone(&counters),
            shutdown.clone(),
        );
        let span = info_span!("camera", id, %peer);
        tokio::spawn(
            async move {
                handle_connection(socket, id, origin, config, streams, &counters, shutdown).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// A connection id, unique in the process (accepted connections and configured sources).
pub(crate) fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs one connection to its end, closes its stream, and counts and logs how it ended.
pub(crate) async fn handle_connection<S: Streams>(
    socket: TcpStream,
    id: u64,
    origin: Origin,
    config: IngestConfig,
    streams: Arc<S>,
    counters: &IngestCounters,
    shutdown: tokio::sync::watch::Receiver<ShutdownPhase>,
) -> ConnectionSummary {
    counters.open.fetch_add(1, Ordering::Relaxed);
    let (end, stream, summary) =
        run_connection(socket, id, origin, config, &*streams, counters, shutdown).await;
    if let Some(stream) = stream {
        // Closing waits for the stream's decoder: keep that off the async workers.
        let streams = Arc::clone(&streams);
        if let Err(e) = tokio::task::spawn_blocking(move || streams.close(stream)).await {
            warn!(error = %e, "closing the stream failed");
        }
    }
    let count = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
    let stream = summary.name.as_deref().unwrap_or("-");
    let frames = summary.access_units;
    match &end {
        ConnectionEnd::Closed => {
            count(&counters.closed);
            info!(reason = %end, stream, frames, "connection ended");
        }
        ConnectionEnd::Shutdown => info!(reason = %end, stream, frames, "connection ended"),
        ConnectionEnd::StoppedMidStream(_) => {
            count(&counters.stopped_mid_stream);
            warn!(reason = %end, stream, frames, "sender stopped mid-stream");
        }
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
            warn!(reason = %end, stream, frames, "sender went silent; connection closed");
        }
        ConnectionEnd::Io(_) => {
            count(&counters.errors);
            warn!(reason = %end, stream, frames, "connection failed");
        }
    }
    // After the outcome is counted, so `open == 0` means every outcome is in.
    counters.open.fetch_sub(1, Ordering::Relaxed);
    summary
}

/// What a finished connection delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// The stream's name, if it got as far as opening one.
    pub name: Option<String>,
    /// Complete access units received.
    pub access_units: u64,
    /// Media packets the depacketizer rejected.
    pub packets_rejected: u64,
}

/// Adds one to a global counter and to this connection's; returns the connection's count.
fn counted(global: &AtomicU64, local: &mut u64) -> u64 {
    global.fetch_add(1, Ordering::Relaxed);
    *local += 1;
    *local
}

/// Runs one camera connection to its end; returns why it ended, the stream to close (if the
/// camera got as far as opening one) and what it delivered.
pub async fn run_connection<S: Streams>(
    socket: TcpStream,
    id: u64,
    origin: Origin,
    config: IngestConfig,
    streams: &S,
    counters: &IngestCounters,
    mut shutdown: tokio::sync::watch::Receiver<ShutdownPhase>,
) -> (ConnectionEnd, Option<S::Stream>, ConnectionSummary) {
    let _ = socket.set_nodelay(true);
    let (mut reader, writer) = socket.into_split();
    let mut session = Session::new(SessionConfig {
        worker_ssrc: 0x4643_0000 | (id as u32 & 0xffff),
        depacketizer: config.depacketizer,
        accept_rtp_first: origin.accepts_rtp_first(),
    });
    let (tx, mut rx) = mpsc::channel::<Outbound>(config.outbound_queue.max(1));
    let (outgoing, mut writer_task) = start_writer(writer, config.outbound_queue.max(1));
    let mut writer_done = false;
    // Whether anything goes back to the peer (not to an anonymous sender, if so configured).
    let mut replies = true;
    let mut stream: Option<S::Stream> = None;
    let mut summary = ConnectionSummary::default();
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
                    Ok(Err(e)) if session.is_mid_frame() && is_disconnect(&e) => {
                        break ConnectionEnd::StoppedMidStream("connection reset");
                    }
                    Ok(Err(e)) if is_disconnect(&e) => {
                        // A sender that never reads what it is sent resets the connection as it
                        // closes (its unread data is discarded): at a packet boundary that is
                        // its way of closing.
                        debug!(error = %e, "reset at a packet boundary");
                        break ConnectionEnd::Closed;
                    }
                    Ok(Err(e)) => break ConnectionEnd::Io(e),
                    Ok(Ok(0)) if session.is_mid_frame() => {
                        break ConnectionEnd::StoppedMidStream("closed");
                    }
                    Ok(Ok(0)) => break ConnectionEnd::Closed,
                    Ok(Ok(n)) => n,
                };
                last_input = Instant::now();
                let now = Instant::now();
                let result = session.handle_bytes(now, &read_buf[..n], |event| match event {
                    SessionEvent::Identified { cname, ssrc } => {
                        let name = origin.name_for_cname(&cname);
                        info!(%cname, stream = %name, ssrc = format_args!("{ssrc:#010x}"), "camera identified");
                        stream = Some(streams.open(id, &name, tx.clone()));
                        summary.name = Some(name);
                    }
                    SessionEvent::MediaFirst { ssrc } => {
                        let name = origin.name_for_rtp_first(ssrc);
                        if matches!(origin, Origin::Accepted { .. }) {
                            counters.anonymous_streams.fetch_add(1, Ordering::Relaxed);
                            replies = config.reply_to_anonymous;
                        }
                        info!(
                            stream = %name,
                            ssrc = format_args!("{ssrc:#010x}"),
                            "RTP before any SR + SDES CNAME: streaming without the handshake"
                        );
                        stream = Some(streams.open(id, &name, tx.clone()));
                        summary.name = Some(name);
                    }
                    SessionEvent::CnameLearned { cname } => {
                        if origin.takes_late_cname() {
                            info!(%cname, previous = summary.name.as_deref().unwrap_or("-"), "sender named itself; stream renamed");
                            if let Some(s) = stream.as_mut() {
                                s.rename(&cname);
                            }
                            summary.name = Some(cname);
                        } else {
                            info!(%cname, "sender named itself; keeping the configured source name");
                        }
                    }
                    SessionEvent::AccessUnit(au) => {
                        summary.access_units += 1;
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
                    SessionEvent::PacketRejected(e) => {
                        // The first says what is wrong with this sender's media; the rest are
                        // counted.
                        if counted(&counters.packets_rejected, &mut summary.packets_rejected) == 1 {
                            warn!(error = %e, stream = summary.name.as_deref().unwrap_or("-"), "media packet rejected (more are counted, not logged)");
                        } else {
                            debug!(error = %e, "media packet rejected");
                        }
                    }
                    SessionEvent::RtcpRejected(e) => debug!(error = %e, "RTCP packet rejected"),
                    SessionEvent::Bye => debug!("camera sent BYE"),
                });
                if let Err(e) = result {
                    break ConnectionEnd::Protocol(e);
                }
            }
            Some(message) = rx.recv() => {
                if !replies {
                    continue;
                }
                if let Some(n) = encode_outbound(&mut session, &message, &mut write_buf) {
                    queue_outgoing(&outgoing, &write_buf[..n], counters);
                }
            }
            _ = report.tick(), if session.is_identified() && replies => {
                if let Some(n) = session.write_receiver_report(Instant::now(), &mut write_buf) {
                    queue_outgoing(&outgoing, &write_buf[..n], counters);
                }
            }
            outcome = &mut writer_task, if !writer_done => {
                writer_done = true;
                break ConnectionEnd::Io(writer_error(outcome));
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
                        if !replies {
                            continue;
                        }
                        if let Some(n) = encode_outbound(&mut session, &message, &mut write_buf) {
                            queue_outgoing(&outgoing, &write_buf[..n], counters);
                        }
                    }
                    break ConnectionEnd::Shutdown;
                }
            }
        }
    };
    // Let the writer send what is queued (a peer that does not read gets no more than
    // FLUSH_TIMEOUT), then close the write side.
    drop(outgoing);
    if !writer_done
        && tokio::time::timeout(FLUSH_TIMEOUT, &mut writer_task)
            .await
            .is_err()
    {
        writer_task.abort();
    }
    (end, stream.take(), summary)
}

/// Longest wait, as a connection ends, for what is queued to it to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a read error means the peer went away.
fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Starts the task that writes what goes back to the peer, so reading never waits for it:
/// framed bytes in through a bounded queue; it ends when the queue closes or a write fails.
fn start_writer(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    capacity: usize,
) -> (
    mpsc::Sender<Vec<u8>>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (queue, mut rx) = mpsc::channel::<Vec<u8>>(capacity);
    let task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            writer.write_all(&bytes).await?;
        }
        writer.shutdown().await
    });
    (queue, task)
}

/// Queues framed bytes for the writer; drops them (counted) when the peer is not reading.
fn queue_outgoing(queue: &mpsc::Sender<Vec<u8>>, bytes: &[u8], counters: &IngestCounters) {
    if queue.try_send(bytes.to_vec()).is_err() {
        counters.outbound_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn writer_error(outcome: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Error {
    match outcome {
        Ok(Err(e)) => e,
        Ok(Ok(())) => std::io::Error::other("writer stopped"),
        Err(e) => std::io::Error::other(e),
    }
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
