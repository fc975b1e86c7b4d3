//! The camera's connection to a worker: a non-blocking `mio` sender of RTP over TCP (RFC 4571)
//! that also receives the worker's RTCP — receiver reports (→ RTT), PLIs (→ keyframe requests)
//! and `FCSG` results (→ [`SenderHandler::on_result`] with the frame's latency split).
//!
//! One [`Sender`] drives one connection from the caller's thread: [`Sender::submit`] queues an
//! encoded access unit, [`Sender::poll`] moves bytes and runs timers. A program that hands
//! frames to the polling thread from another one (the C library does) ends that thread's wait
//! with a [`SenderWaker`]. Behaviour on a bad network:
//!
//! - **Bounded queue.** Frames wait in a queue of fixed size. When one does not fit, it is
//!   dropped, and so is every following frame until an IDR, and the encoder is asked for that
//!   IDR ([`Sender::take_keyframe_request`]); a P-frame whose reference was dropped is never
//!   sent. An IDR that finds the queue full first discards the frames still waiting (they are
//!   older than it and nothing after it refers to them).
//! - **Reconnect.** A failed or lost connection is retried after a jittered exponential backoff;
//!   the new connection starts with SR + SDES (CNAME) and then an IDR with SPS/PPS.
//! - **RTCP.** A sender report goes out at connection start and then periodically, written at a
//!   packet boundary the moment the socket takes it, so the RTT from the worker's receiver
//!   report is not inflated by queueing.
//!
//! Nothing here allocates after [`Sender::new`].

mod backoff;
mod queue;
mod timeline;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowcloud_core::framing::{Deframer, FRAME_HEADER_LEN};
use flowcloud_core::h264::{PacketizeError, Packetizer, PacketizerConfig, annexb};
use flowcloud_core::results::ResultView;
use flowcloud_core::rtcp::{
    self, CompoundWriter, NtpTimestamp, ReportBlocks, RtcpError, RtcpPacket, SenderReport,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use self::backoff::{Backoff, Rng};
use self::queue::{PushError, SendQueue};
use self::timeline::FrameTimeline;
pub use self::timeline::LatencySplit;

/// RTP clock rate for video (RFC 6184 §8.2.1).
pub const CLOCK_RATE: u32 = 90_000;
/// Largest CNAME an SDES item can carry.
const MAX_CNAME_LEN: usize = 255;
const CONNECTION: Token = Token(0);
/// The token of the [`SenderWaker`]; its events only end a wait.
const WAKER: Token = Token(1);
/// Bytes read from the socket per call.
const READ_CHUNK: usize = 16 * 1024;
/// Room for the handshake (SR + SDES with a 255-byte CNAME) or one SR.
const CONTROL_CAPACITY: usize = 512;

/// How the sender behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderConfig {
    /// The worker's ingest address.
    pub server: SocketAddr,
    /// The camera's identity (SDES CNAME, 1–255 bytes); the worker keys streams by it.
    pub cname: String,
    /// Most time a TCP connect may take.
    pub connect_timeout: Duration,
    /// Send queue size in bytes (framed RTP).
    pub queue_bytes: usize,
    /// Send queue size in frames.
    pub queue_frames: usize,
    /// Most RTP payload bytes per packet.
    pub payload_budget: usize,
    /// RTP payload type.
    pub payload_type: u8,
    /// Time between sender reports.
    pub report_interval: Duration,
    /// First reconnect delay step.
    pub reconnect_initial: Duration,
    /// Largest reconnect delay step.
    pub reconnect_max: Duration,
    /// Least time between two keyframe requests caused by PLIs (a worker may send several
    /// for one loss).
    pub keyframe_request_interval: Duration,
    /// Frames remembered for matching results to their capture time.
    pub timeline_frames: usize,
}

impl SenderConfig {
    /// Defaults for streaming to `server` as `cname`: 1 MiB / 60-frame queue, 1400-byte
    /// payloads, SR every second, reconnect 100 ms doubling to 5 s, 3 s connect timeout.
    #[must_use]
    pub fn new(server: SocketAddr, cname: &str) -> Self {
        Self {
            server,
            cname: cname.to_owned(),
            connect_timeout: Duration::from_secs(3),
            queue_bytes: 1 << 20,
            queue_frames: 60,
            payload_budget: 1400,
            payload_type: 96,
            report_interval: Duration::from_secs(1),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            keyframe_request_interval: Duration::from_millis(100),
            timeline_frames: 256,
        }
    }
}

/// Why a sender cannot be created or driven.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// A setting is out of range.
    #[error("invalid sender config: {0}")]
    InvalidConfig(String),
    /// The OS poller failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Why an access unit was refused outright (not a drop: a drop is a normal outcome).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The access unit is not valid Annex-B H.264 or too large.
    #[error(transparent)]
    Packetize(#[from] PacketizeError),
}

/// What happened to a submitted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// In the send queue.
    Queued,
    /// Not sent, and why.
    Dropped(DropReason),
}

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// No connection is up (connecting or waiting to reconnect).
    NotConnected,
    /// A reference before it was dropped (or the connection is new); waiting for an IDR.
    WaitingForKeyframe,
    /// The send queue is full.
    QueueFull,
}

/// Why the sender asked the encoder for a keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyframeCause {
    /// A new connection must start with an IDR.
    Connected,
    /// The worker sent a PLI.
    PictureLoss,
    /// A frame was dropped for lack of room.
    Congestion,
}

/// Something the caller may want to log or show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderEvent {
    /// The TCP connection is up; the handshake is being sent.
    Connected {
        /// The worker's address.
        peer: SocketAddr,
    },
    /// A connect attempt failed.
    ConnectFailed {
        /// Why.
        kind: io::ErrorKind,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// An established connection was lost.
    Disconnected {
        /// Why (`UnexpectedEof` when the worker closed it).
        kind: io::ErrorKind,
        /// Frames that were still queued and are gone.
        frames_lost: usize,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// A receiver report gave a new round-trip time.
    RoundTrip {
        /// The RTT.
        rtt: Duration,
    },
    /// The encoder should produce an IDR next.
    KeyframeRequested {
        /// Why.
        cause: KeyframeCause,
    },
}

/// A result the worker sent back for one frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameResult<'a> {
    /// The result as received.
    pub result: ResultView<'a>,
    /// The frame's capture time, if it is still in the timeline.
    pub captured_at: Option<Instant>,
    /// Where the time went, if the frame is still in the timeline.
    pub latency: Option<LatencySplit>,
}

/// Receives what the sender learns while polling. Every method has an empty default.
pub trait SenderHandler {
    /// A segmentation result arrived.
    fn on_result(&mut self, result: &FrameResult<'_>) {
        let _ = result;
    }

    /// Something happened on the connection.
    fn on_event(&mut self, event: SenderEvent) {
        let _ = event;
    }
}

/// Counters since the sender was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Access units submitted.
    pub frames_submitted: u64,
    /// Frames whose last byte was written to a socket.
    pub frames_sent: u64,
    /// Frames dropped because no connection was up.
    pub dropped_not_connected: u64,
    /// Frames dropped while waiting for an IDR.
    pub dropped_waiting_for_keyframe: u64,
    /// Frames dropped for lack of queue room (including queued frames an IDR displaced).
    pub dropped_queue_full: u64,
    /// Queued frames lost with a connection.
    pub dropped_disconnected: u64,
    /// Bytes written (media and RTCP).
    pub bytes_sent: u64,
    /// Results received.
    pub results: u64,
    /// Results whose frame was no longer (or never) in the timeline.
    pub unmatched_results: u64,
    /// PLIs received.
    pub plis: u64,
    /// Keyframe requests raised (all causes).
    pub keyframe_requests: u64,
    /// Connections established.
    pub connects: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Established connections lost.
    pub disconnects: u64,
    /// Packets from the worker that could not be parsed.
    pub bad_packets: u64,
    /// The latest round-trip time.
    pub rtt: Option<Duration>,
    /// Bytes in the send queue now.
    pub queue_bytes: usize,
    /// Frames in the send queue now.
    pub queue_frames: usize,
    /// Most bytes ever in the send queue.
    pub queue_high_water: usize,
}

impl SenderStats {
    /// All dropped frames.
    #[must_use]
    pub const fn frames_dropped(&self) -> u64 {
        self.dropped_not_connected
            + self.dropped_waiting_for_keyframe
            + self.dropped_queue_full
            + self.dropped_disconnected
    }
}

/// An RTCP packet waiting for a packet boundary.
#[derive(Debug)]
struct Control {
    buf: Vec<u8>,
    len: usize,
    written: usize,
    /// A handshake or report is due but not yet written into `buf` (it is stamped when the
    /// socket can take it).
    report_due: bool,
    with_cname: bool,
}

#[derive(Debug)]
struct Link {
    stream: TcpStream,
    peer: SocketAddr,
    packetizer: Packetizer,
    /// Added to the media clock so each connection's RTP timestamps start at random (RFC 3550 §5.1).
    timestamp_offset: u32,
    next_report: Instant,
    writable: bool,
}

#[derive(Debug)]
enum State {
    Waiting {
        until: Instant,
    },
    Connecting {
        stream: TcpStream,
        deadline: Instant,
    },
    Connected(Link),
}

/// The non-blocking sender. See the [module docs](self).
pub struct Sender {
    config: SenderConfig,
    poll: Poll,
    events: Events,
    state: State,
    queue: SendQueue,
    control: Control,
    timeline: FrameTimeline,
    deframer: Box<Deframer<{ u16::MAX as usize }>>,
    read_buf: Vec<u8>,
    backoff: Backoff,
    rng: Rng,
    /// Media clock and NTP reference: wallclock at `epoch`, advanced by the monotonic clock so
    /// a wallclock step does not distort RTT.
    epoch: Instant,
    epoch_ntp_nanos: u64,
    waiting_for_keyframe: bool,
    keyframe_requested: bool,
    last_pli_request: Option<Instant>,
    stats: SenderStats,
}

impl core::fmt::Debug for Sender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender")
            .field("server", &self.config.server)
            .field("state", &self.state)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> SenderError {
    move |source| SenderError::Io { context, source }
}

/// Ends a [`Sender::poll`] that is waiting on another thread (or makes the next one return at
/// once), for a program that hands frames to the thread driving the sender: without it, the
/// frame would wait until the socket or a timer next wakes that thread. `Send` and `Sync`.
#[derive(Debug)]
pub struct SenderWaker(mio::Waker);

impl SenderWaker {
    /// Wakes the sender's poll. Does not allocate.
    pub fn wake(&self) -> Result<(), SenderError> {
        self.0.wake().map_err(io_error("waking the sender"))
    }
}

impl Sender {
    /// Validates `config`, reserves every buffer and starts connecting.
    pub fn new(config: SenderConfig) -> Result<Self, SenderError> {
        if config.cname.is_empty() || config.cname.len() > MAX_CNAME_LEN {
            return Err(SenderError::InvalidConfig(format!(
                "CNAME must be 1–{MAX_CNAME_LEN} bytes, is {}",
                config.cname.len()
            )));
        }
        if config.queue_frames == 0 || config.timeline_frames == 0 {
            return Err(SenderError::InvalidConfig(
                "queue_frames and timeline_frames must be at least 1".into(),
            ));
        }
        // Validates payload budget and type once, here.
        let probe = Packetizer::new(PacketizerConfig {
            payload_budget: config.payload_budget,
            payload_type: config.payload_type,
            ..PacketizerConfig::default()
        })
        .map_err(|e| SenderError::InvalidConfig(e.to_string()))?;
        if config.queue_bytes < probe.max_packet_len() + FRAME_HEADER_LEN {
            return Err(SenderError::InvalidConfig(format!(
                "queue of {} bytes cannot hold one packet",
                config.queue_bytes
            )));
        }
        let epoch = Instant::now();
        let epoch_ntp_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            + NtpTimestamp::UNIX_EPOCH_SECONDS * 1_000_000_000;
        let rng = Rng::from_entropy();
        let mut sender = Self {
            poll: Poll::new().map_err(io_error("creating the poller"))?,
            events: Events::with_capacity(8),
            state: State::Waiting { until: epoch },
            queue: SendQueue::new(
                config.queue_bytes,
                config.queue_frames,
                probe.max_packet_len(),
            ),
            control: Control {
                buf: vec![0; CONTROL_CAPACITY],
                len: 0,
                written: 0,
                report_due: false,
                with_cname: false,
            },
            timeline: FrameTimeline::new(config.timeline_frames),
            deframer: Box::new(Deframer::new()),
            read_buf: vec![0; READ_CHUNK],
            backoff: Backoff::new(
                config.reconnect_initial,
                config.reconnect_max,
                Rng::seeded(rng.clone().next_u64()),
            ),
            rng,
            epoch,
            epoch_ntp_nanos,
            waiting_for_keyframe: true,
            keyframe_requested: false,
            last_pli_request: None,
            stats: SenderStats::default(),
            config,
        };
        sender.rng.next_u64();
        Ok(sender)
    }

    /// A waker for this sender's [`poll`](Self::poll). The OS poller serves one waker: create
    /// it once and share it (it is `Sync`).
    pub fn waker(&self) -> Result<SenderWaker, SenderError> {
        mio::Waker::new(self.poll.registry(), WAKER)
            .map(SenderWaker)
            .map_err(io_error("creating the waker"))
    }

    /// The settings in use.
    #[must_use]
    pub const fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> SenderStats {
        SenderStats {
            queue_bytes: self.queue.len(),
            queue_frames: self.queue.frames(),
            queue_high_water: self.queue.high_water(),
            ..self.stats
        }
    }

    /// True while a connection is established.
    #[must_use]
    pub const fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// The worker's address while connected.
    #[must_use]
    pub const fn peer(&self) -> Option<SocketAddr> {
        match &self.state {
            State::Connected(link) => Some(link.peer),
            _ => None,
        }
    }

    /// True when nothing is waiting to be written.
    #[must_use]
    pub fn is_flushed(&self) -> bool {
        self.queue.is_empty()
            && self.control.len == self.control.written
            && !self.control.report_due
    }

    /// True (once) when the encoder should make its next picture an IDR.
    pub fn take_keyframe_request(&mut self) -> bool {
        core::mem::take(&mut self.keyframe_requested)
    }

    /// The RTP timestamp a frame captured at `captured_at` gets on the current connection.
    #[must_use]
    pub fn rtp_timestamp(&self, captured_at: Instant) -> u32 {
        let offset = match &self.state {
            State::Connected(link) => link.timestamp_offset,
            _ => 0,
        };
        offset.wrapping_add(self.media_clock(captured_at))
    }

    fn media_clock(&self, at: Instant) -> u32 {
        let ticks = |d: Duration| (d.as_nanos() * u128::from(CLOCK_RATE) / 1_000_000_000) as u32;
        match at.checked_duration_since(self.epoch) {
            Some(since) => ticks(since),
            // Captured before the sender was created (a frame already in the encoder while it
            // started): count back from the epoch, wrapping as RTP timestamps do, so such
            // frames keep distinct timestamps.
            None => ticks(self.epoch.duration_since(at)).wrapping_neg(),
        }
    }

    fn ntp_at(&self, at: Instant) -> NtpTimestamp {
        let since = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        NtpTimestamp::from_nanos(self.epoch_ntp_nanos + since)
    }

    fn request_keyframe(&mut self, cause: KeyframeCause, handler: &mut impl SenderHandler) {
        if !self.keyframe_requested {
            self.keyframe_requested = true;
            self.stats.keyframe_requests += 1;
            handler.on_event(SenderEvent::KeyframeRequested { cause });
        }
    }

    /// Queues one Annex-B access unit captured at `captured_at`, which took `encode_time` to
    /// encode. A frame is dropped (not an error) when there is no connection, when the queue
    /// is full, and after a drop until the next IDR; the encoder is then asked for an IDR
    /// ([`take_keyframe_request`](Self::take_keyframe_request)).
    pub fn submit(
        &mut self,
        access_unit: &[u8],
        captured_at: Instant,
        encode_time: Duration,
    ) -> Result<Submitted, SubmitError> {
        self.submit_with(access_unit, captured_at, encode_time, &mut NoHandler)
    }

    /// [`submit`](Self::submit), reporting keyframe requests to `handler`.
    pub fn submit_with(
        &mut self,
        access_unit: &[u8],
        captured_at: Instant,
        encode_time: Duration,
        handler: &mut impl SenderHandler,
    ) -> Result<Submitted, SubmitError> {
        self.stats.frames_submitted += 1;
        let keyframe = is_idr(access_unit)?;
        if !self.is_connected() {
            self.stats.dropped_not_connected += 1;
            return Ok(Submitted::Dropped(DropReason::NotConnected));
        }
        if self.waiting_for_keyframe && !keyframe {
            self.stats.dropped_waiting_for_keyframe += 1;
            return Ok(Submitted::Dropped(DropReason::WaitingForKeyframe));
        }
        let now = Instant::now();
        let rtp_timestamp = self.rtp_timestamp(captured_at);
        let record = self
            .timeline
            .push(rtp_timestamp, captured_at, encode_time, now);
        let State::Connected(link) = &mut self.state else {
            return Ok(Submitted::Dropped(DropReason::NotConnected));
        };
        let mut outcome =
            self.queue
                .push_frame(&mut link.packetizer, access_unit, rtp_timestamp, record);
        if keyframe && matches!(outcome, Err(PushError::Full)) {
            // Everything still waiting is older than this IDR and nothing will refer to it.
            self.stats.dropped_queue_full += self.queue.drop_unstarted(&mut link.packetizer) as u64;
            outcome =
                self.queue
                    .push_frame(&mut link.packetizer, access_unit, rtp_timestamp, record);
        }
        match outcome {
            Ok(()) => {
                if keyframe {
                    self.waiting_for_keyframe = false;
                }
                self.try_write(now, handler);
                Ok(Submitted::Queued)
            }
            Err(PushError::Full) => {
                self.timeline.forget(record);
                self.stats.dropped_queue_full += 1;
                self.waiting_for_keyframe = true;
                self.request_keyframe(KeyframeCause::Congestion, handler);
                Ok(Submitted::Dropped(DropReason::QueueFull))
            }
            Err(PushError::Packetize(e)) => {
                self.timeline.forget(record);
                Err(e.into())
            }
        }
    }

    /// Waits up to `timeout` (`None`: until something happens) for the socket or a timer, then
    /// does all the work due: connects, writes, reads RTCP and results, sends reports.
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut impl SenderHandler,
    ) -> Result<(), SenderError> {
        let now = Instant::now();
        self.run_timers(now, handler)?;
        self.try_write(now, handler);
        let mut wait = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(now));
        if let Some(t) = timeout {
            wait = Some(wait.map_or(t, |w| w.min(t)));
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("waiting for the socket")(e)),
        }
        let (mut readable, mut writable) = (false, false);
        for event in &self.events {
            if event.token() == CONNECTION {
                readable |= event.is_readable() || event.is_read_closed() || event.is_error();
                writable |= event.is_writable() || event.is_error();
            }
        }
        let now = Instant::now();
        if writable {
            match &mut self.state {
                State::Connecting { .. } => self.finish_connect(now, handler)?,
                State::Connected(link) => link.writable = true,
                State::Waiting { .. } => {}
            }
        }
        if readable {
            self.read(now, handler);
        }
        self.try_write(now, handler);
        self.run_timers(Instant::now(), handler)
    }

    /// Polls until the queue is written out or `timeout` passes; true when flushed.
    pub fn flush(
        &mut self,
        timeout: Duration,
        handler: &mut impl SenderHandler,
    ) -> Result<bool, SenderError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if self.is_flushed() && self.is_connected() {
                return Ok(true);
            }
            if now >= deadline {
                return Ok(false);
            }
            self.poll(Some(deadline - now), handler)?;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Waiting { until } => Some(*until),
            State::Connecting { deadline, .. } => Some(*deadline),
            State::Connected(link) => Some(link.next_report),
        }
    }

    fn run_timers(
        &mut self,
        now: Instant,
        handler: &mut impl SenderHandler,
    ) -> Result<(), SenderError> {
        match &mut self.state {
            State::Waiting { until } if now >= *until => self.start_connect(now, handler)?,
            State::Connecting { deadline, .. } if now >= *deadline => {
                self.connect_failed(io::ErrorKind::TimedOut, now, handler);
            }
            State::Connected(link) if now >= link.next_report => {
                link.next_report = now + self.config.report_interval;
                if self.control.len == self.control.written {
                    self.control.report_due = true;
                }
                self.try_write(now, handler);
            }
            _ => {}
        }
        Ok(())
    }

    fn start_connect(
        &mut self,
        now: Instant,
        handler: &mut impl SenderHandler,
    ) -> Result<(), SenderError> {
        match TcpStream::connect(self.config.server) {
            Ok(mut stream) => {
                self.poll
                    .registry()
                    .register(
                        &mut stream,
                        CONNECTION,
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map_err(io_error("registering the socket"))?;
                self.state = State::Connecting {
                    stream,
                    deadline: now + self.config.connect_timeout,
                };
            }
            Err(e) => self.connect_failed(e.kind(), now, handler),
        }
        Ok(())
    }

    fn connect_failed(
        &mut self,
        kind: io::ErrorKind,
        now: Instant,
        handler: &mut impl SenderHandler,
    ) {
        self.drop_connection();
        let retry_in = self.backoff.next_delay();
        self.state = State::Waiting {
            until: now + retry_in,
        };
        self.stats.connect_failures += 1;
        handler.on_event(SenderEvent::ConnectFailed { kind, retry_in });
    }

    fn drop_connection(&mut self) {
        let old = core::mem::replace(
            &mut self.state,
            State::Waiting {
                until: Instant::now(),
            },
        );
        let stream = match old {
            State::Connecting { stream, .. } => Some(stream),
            State::Connected(link) => Some(link.stream),
            State::Waiting { .. } => None,
        };
        if let Some(mut stream) = stream {
            // Closing the socket removes it from the poller anyway; this is tidiness.
            let _ = self.poll.registry().deregister(&mut stream);
        }
    }

    fn finish_connect(
        &mut self,
        now: Instant,
        handler: &mut impl SenderHandler,
    ) -> Result<(), SenderError> {
        let State::Connecting { stream, .. } = &self.state else {
            return Ok(());
        };
        let peer = match stream.take_error() {
            Ok(Some(e)) | Err(e) => {
                self.connect_failed(e.kind(), now, handler);
                return Ok(());
            }
            Ok(None) => match stream.peer_addr() {
                Ok(peer) => peer,
                // Not connected yet: a spurious wake-up.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => {
                    self.connect_failed(e.kind(), now, handler);
                    return Ok(());
                }
            },
        };
        let State::Connecting { stream, .. } =
            core::mem::replace(&mut self.state, State::Waiting { until: now })
        else {
            return Ok(());
        };
        // Latency over throughput: packets go out as soon as they are queued.
        let _ = stream.set_nodelay(true);
        let packetizer = Packetizer::new(PacketizerConfig {
            ssrc: self.rng.next_u32(),
            payload_type: self.config.payload_type,
            payload_budget: self.config.payload_budget,
            initial_sequence: self.rng.next_u32() as u16,
        })
        .map_err(|e| SenderError::InvalidConfig(e.to_string()))?;
        self.state = State::Connected(Link {
            stream,
            peer,
            packetizer,
            timestamp_offset: self.rng.next_u32(),
            next_report: now + self.config.report_interval,
            writable: true,
        });
        self.deframer.reset();
        self.control.len = 0;
        self.control.written = 0;
        self.control.report_due = true;
        self.control.with_cname = true;
        self.waiting_for_keyframe = true;
        self.stats.connects += 1;
        handler.on_event(SenderEvent::Connected { peer });
        self.request_keyframe(KeyframeCause::Connected, handler);
        self.try_write(now, handler);
        Ok(())
    }

    fn disconnect(&mut self, kind: io::ErrorKind, now: Instant, handler: &mut impl SenderHandler) {
        let frames_lost = self.queue.clear();
        self.stats.dropped_disconnected += frames_lost as u64;
        self.control.len = 0;
        self.control.written = 0;
        self.control.report_due = false;
        self.waiting_for_keyframe = true;
        self.drop_connection();
        let retry_in = self.backoff.next_delay();
        self.state = State::Waiting {
            until: now + retry_in,
        };
        self.stats.disconnects += 1;
        handler.on_event(SenderEvent::Disconnected {
            kind,
            frames_lost,
            retry_in,
        });
    }

    /// Writes the SR (and on a new connection the SDES CNAME) into the control buffer, stamped
    /// with the current time.
    fn stamp_report(&mut self, now: Instant) {
        let State::Connected(link) = &self.state else {
            return;
        };
        let ssrc = link.packetizer.config().ssrc;
        let report = SenderReport {
            ssrc,
            ntp: self.ntp_at(now),
            rtp_timestamp: link.timestamp_offset.wrapping_add(self.media_clock(now)),
            packet_count: link.packetizer.packet_count(),
            octet_count: link.packetizer.octet_count(),
            reports: ReportBlocks::new(&[]),
        };
        let with_cname = self.control.with_cname;
        let cname = self.config.cname.as_bytes();
        let body = &mut self.control.buf[FRAME_HEADER_LEN..];
        let mut compound = CompoundWriter::new(body);
        let written: Result<usize, RtcpError> =
            compound.push_with(|out| report.write(out)).and_then(|len| {
                if with_cname {
                    compound.push_with(|out| rtcp::write_sdes_cname(ssrc, cname, out))
                } else {
                    Ok(len)
                }
            });
        // Cannot fail: the buffer holds an SR and a 255-byte CNAME.
        let len = written.unwrap_or(0);
        self.control.buf[..FRAME_HEADER_LEN].copy_from_slice(&(len as u16).to_be_bytes());
        self.control.len = if len == 0 { 0 } else { FRAME_HEADER_LEN + len };
        self.control.written = 0;
        self.control.report_due = false;
        self.control.with_cname = false;
    }

    /// Writes what the socket takes: a pending RTCP packet at the first packet boundary, then
    /// queued media.
    fn try_write(&mut self, now: Instant, handler: &mut impl SenderHandler) {
        let mut failure = None;
        loop {
            let State::Connected(link) = &mut self.state else {
                return;
            };
            if !link.writable {
                break;
            }
            let control_pending =
                self.control.report_due || self.control.written < self.control.len;
            if control_pending && self.queue.at_packet_boundary() {
                if self.control.report_due {
                    self.stamp_report(now);
                }
                let State::Connected(link) = &mut self.state else {
                    return;
                };
                let control = &mut self.control;
                match link
                    .stream
                    .write(&control.buf[control.written..control.len])
                {
                    Ok(0) => {
                        failure = Some(io::ErrorKind::WriteZero);
                        break;
                    }
                    Ok(n) => {
                        control.written += n;
                        self.stats.bytes_sent += n as u64;
                        if control.written < control.len {
                            continue;
                        }
                        control.len = 0;
                        control.written = 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        link.writable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        failure = Some(e.kind());
                        break;
                    }
                }
                continue;
            }
            if self.queue.is_empty() {
                break;
            }
            let timeline = &mut self.timeline;
            let stats = &mut self.stats;
            let result = self
                .queue
                .write_to(&mut link.stream, control_pending, |frame| {
                    timeline.mark_sent(frame.record, now);
                    stats.frames_sent += 1;
                });
            match result {
                Ok(n) => {
                    self.stats.bytes_sent += n as u64;
                    let done_packet = control_pending && self.queue.at_packet_boundary();
                    if !done_packet {
                        // Either everything went or the socket is full.
                        if !self.queue.is_empty() {
                            link.writable = false;
                        }
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e.kind());
                    break;
                }
            }
        }
        if let Some(kind) = failure {
            self.disconnect(kind, now, handler);
        }
    }

    fn read(&mut self, now: Instant, handler: &mut impl SenderHandler) {
        let mut failure = None;
        loop {
            let State::Connected(link) = &mut self.state else {
                return;
            };
            let n = match link.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    failure = Some(io::ErrorKind::UnexpectedEof);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(e.kind());
                    break;
                }
            };
            let ssrc = link.packetizer.config().ssrc;
            let mut input = &self.read_buf[..n];
            let mut pli = false;
            while !input.is_empty() {
                let (used, packet) = self.deframer.push(input);
                input = &input[used..];
                match packet {
                    Ok(Some(packet)) => {
                        let mut inbound = Inbound {
                            ssrc,
                            now,
                            arrival: NtpTimestamp::from_nanos(
                                self.epoch_ntp_nanos
                                    + now.saturating_duration_since(self.epoch).as_nanos() as u64,
                            ),
                            timeline: &self.timeline,
                            stats: &mut self.stats,
                            backoff: &mut self.backoff,
                            pli: false,
                        };
                        inbound.handle(packet, handler);
                        pli |= inbound.pli;
                    }
                    Ok(None) => {}
                    Err(_) => self.stats.bad_packets += 1,
                }
            }
            if pli {
                self.pli_received(now, handler);
            }
        }
        if let Some(kind) = failure {
            self.disconnect(kind, now, handler);
        }
    }

    fn pli_received(&mut self, now: Instant, handler: &mut impl SenderHandler) {
        let recent = self.last_pli_request.is_some_and(|at| {
            now.saturating_duration_since(at) < self.config.keyframe_request_interval
        });
        if !recent {
            self.last_pli_request = Some(now);
            self.request_keyframe(KeyframeCause::PictureLoss, handler);
        }
    }
}

/// The part of the sender that handles one packet from the worker.
struct Inbound<'s> {
    ssrc: u32,
    now: Instant,
    arrival: NtpTimestamp,
    timeline: &'s FrameTimeline,
    stats: &'s mut SenderStats,
    backoff: &'s mut Backoff,
    pli: bool,
}

impl Inbound<'_> {
    fn handle(&mut self, packet: &[u8], handler: &mut impl SenderHandler) {
        if !rtcp::is_rtcp(packet) {
            // The worker sends nothing but RTCP; anything else is ignored.
            self.stats.bad_packets += 1;
            return;
        }
        for item in rtcp::parse_compound(packet) {
            let Ok(item) = item else {
                self.stats.bad_packets += 1;
                return;
            };
            // Any valid RTCP proves the worker accepted the connection.
            self.backoff.reset();
            match item {
                RtcpPacket::ReceiverReport(rr) => {
                    for block in rr.reports.iter().filter(|b| b.ssrc == self.ssrc) {
                        if let Some(units) = rtcp::round_trip_time(self.arrival, &block) {
                            let rtt = Duration::from_micros(rtcp::compact_to_micros(units));
                            self.stats.rtt = Some(rtt);
                            handler.on_event(SenderEvent::RoundTrip { rtt });
                        }
                    }
                }
                RtcpPacket::Pli(pli) if pli.media_ssrc == self.ssrc => {
                    self.stats.plis += 1;
                    self.pli = true;
                }
                RtcpPacket::App(app) => match ResultView::from_app(&app) {
                    Ok(result) => self.result(result, handler),
                    Err(_) => self.stats.bad_packets += 1,
                },
                _ => {}
            }
        }
    }

    fn result(&mut self, result: ResultView<'_>, handler: &mut impl SenderHandler) {
        self.stats.results += 1;
        let worker_us =
            u64::from(result.decode_us) + u64::from(result.infer_us) + u64::from(result.post_us);
        let matched = self.timeline.result_arrived(
            result.rtp_timestamp,
            self.now,
            Duration::from_micros(worker_us),
        );
        if matched.is_none() {
            self.stats.unmatched_results += 1;
        }
        handler.on_result(&FrameResult {
            result,
            captured_at: matched.map(|(at, _)| at),
            latency: matched.map(|(_, split)| split),
        });
    }
}

/// A handler that ignores everything.
struct NoHandler;

impl SenderHandler for NoHandler {}

/// True when the access unit contains an IDR slice; errors if it is not Annex-B.
fn is_idr(access_unit: &[u8]) -> Result<bool, PacketizeError> {
    let mut nals = annexb::nal_units(access_unit)?;
    let mut any = false;
    while let Some(range) = nals.next_range() {
        any = true;
        if access_unit.get(range.start).is_some_and(|h| h & 0x1f == 5) {
            return Ok(true);
        }
    }
    if any {
        Ok(false)
    } else {
        Err(PacketizeError::EmptyAccessUnit)
    }
}
