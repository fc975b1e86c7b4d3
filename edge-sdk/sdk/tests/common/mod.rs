//! A scripted worker for sender tests: a real TCP listener on loopback that takes a camera's
//! stream apart with the protocol core (deframer, depacketizer, RTCP), logs what it saw, and
//! answers as a worker would — receiver reports, `FCSG` results, PLIs on command — or stops
//! reading, or drops the connection, when the test says so.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod command;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowcloud_core::framing::{Deframer, MAX_FRAME_LEN, frame_into};
use flowcloud_core::h264::{
    Depacketizer, DepacketizerConfig, Event, MAX_ACCESS_UNIT_BYTES, annexb,
};
use flowcloud_core::results::{ClassMap, SegmentationResult};
use flowcloud_core::rtcp::{self, Pli, ReceiverReport, ReportBlock, ReportBlocks, RtcpPacket};
use flowcloud_edge::capture::CaptureSource;
use flowcloud_edge::capture::pattern::PatternSource;
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
use flowcloud_edge::sender::{
    FrameResult, LatencySplit, Sender, SenderConfig, SenderEvent, SenderHandler, Submitted,
};

/// The scripted worker's SSRC.
pub const WORKER_SSRC: u32 = 0xfc00_0001;
/// Stage times every scripted result reports.
pub const DECODE_US: u32 = 1000;
pub const INFER_US: u32 = 2000;
pub const POST_US: u32 = 500;

/// One access unit as received.
#[derive(Clone, Debug)]
pub struct ReceivedUnit {
    pub rtp_timestamp: u32,
    pub nal_types: Vec<u8>,
    pub keyframe: bool,
    pub arrived: Instant,
}

/// What one connection carried.
#[derive(Clone, Debug, Default)]
pub struct ConnectionLog {
    /// RTCP packet types of the first frame on the connection, in order.
    pub first_packet_types: Vec<u8>,
    pub cname: Option<String>,
    pub camera_ssrc: Option<u32>,
    pub sender_reports: u32,
    pub units: Vec<ReceivedUnit>,
    pub losses: u32,
    pub errors: Vec<String>,
    pub bytes: u64,
}

/// Commands to the receiver thread.
#[derive(Clone, Copy, Debug)]
pub enum Command {
    /// Send a PLI for the camera's SSRC now.
    Pli,
    /// Stop (false) or resume (true) reading the socket.
    Read(bool),
}

/// How the scripted worker answers.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    /// Send an `FCSG` result for every access unit.
    pub results: bool,
    /// Answer each SR with an RR, after holding it this long (the RR's DLSR says so).
    pub report_delay: Option<Duration>,
    /// Socket receive buffer, to reach back-pressure quickly.
    pub receive_buffer: Option<usize>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            results: true,
            report_delay: Some(Duration::ZERO),
            receive_buffer: None,
        }
    }
}

/// The receiver: a listener thread serving one connection at a time.
pub struct ScriptedReceiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<ConnectionLog>>>,
    commands: mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedReceiver {
    /// Listens on `addr` (port 0 for any).
    pub fn start(addr: SocketAddr, script: Script) -> Self {
        let listener = TcpListener::bind(addr).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        if let Some(size) = script.receive_buffer {
            nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::RcvBuf, &size)
                .expect("SO_RCVBUF");
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (commands, rx) = mpsc::channel();
        let thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || serve(&listener, script, &log, &stop, &rx))
        };
        Self {
            addr,
            log,
            commands,
            stop,
            thread: Some(thread),
        }
    }

    pub fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// A copy of everything seen so far, one entry per connection.
    pub fn log(&self) -> Vec<ConnectionLog> {
        self.log.lock().unwrap().clone()
    }

    /// Access units received over all connections.
    pub fn units(&self) -> usize {
        self.log.lock().unwrap().iter().map(|c| c.units.len()).sum()
    }

    /// Closes the listener and any connection (the worker dies).
    pub fn kill(mut self) -> Vec<ConnectionLog> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.log()
    }
}

impl Drop for ScriptedReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    listener: &TcpListener,
    script: Script,
    log: &Mutex<Vec<ConnectionLog>>,
    stop: &AtomicBool,
    commands: &mpsc::Receiver<Command>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(ConnectionLog::default());
                    log.len() - 1
                };
                connection(stream, script, log, index, stop, commands);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Accept promptly: a handshake left waiting in the backlog would count as
                // network time in the first RTT.
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

struct PendingReport {
    due: Instant,
    last_sr: u32,
    received: Instant,
}

fn connection(
    mut stream: TcpStream,
    script: Script,
    log: &Mutex<Vec<ConnectionLog>>,
    index: usize,
    stop: &AtomicBool,
    commands: &mpsc::Receiver<Command>,
) {
    stream.set_nonblocking(true).unwrap();
    let mut deframer: Box<Deframer<MAX_FRAME_LEN>> = Box::new(Deframer::new());
    let buffer = vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(MAX_ACCESS_UNIT_BYTES)];
    let mut depacketizer = Depacketizer::new(buffer, DepacketizerConfig::default());
    let mut reading = true;
    let mut pending: Vec<PendingReport> = Vec::new();
    let mut outbox: Vec<u8> = Vec::new();
    // Results wait as long as the stage times they report, as a worker's would.
    let mut results: Vec<(Instant, Vec<u8>)> = Vec::new();
    let processing = Duration::from_micros(u64::from(DECODE_US + INFER_US + POST_US));
    let mut read_buf = vec![0u8; 64 * 1024];
    let mut first_frame = true;
    while !stop.load(Ordering::SeqCst) {
        let camera_ssrc = log.lock().unwrap()[index].camera_ssrc;
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Read(on) => reading = on,
                Command::Pli => {
                    if let Some(ssrc) = camera_ssrc {
                        let pli = Pli {
                            sender_ssrc: WORKER_SSRC,
                            media_ssrc: ssrc,
                        };
                        push_packet(&mut outbox, |out| pli.write(out).unwrap());
                    }
                }
            }
        }
        let now = Instant::now();
        if let Some(ssrc) = camera_ssrc {
            pending.retain(|p| {
                if p.due > now {
                    return true;
                }
                let delay = now.duration_since(p.received).as_micros() as u64;
                let block = ReportBlock {
                    ssrc,
                    last_sr: p.last_sr,
                    delay_since_last_sr: rtcp::compact_from_micros(delay),
                    ..ReportBlock::default()
                };
                let blocks = [block];
                let rr = ReceiverReport {
                    ssrc: WORKER_SSRC,
                    reports: ReportBlocks::new(&blocks),
                };
                push_packet(&mut outbox, |out| rr.write(out).unwrap());
                false
            });
        }
        results.retain(|(due, packet)| {
            if *due > now {
                return true;
            }
            outbox.extend_from_slice(packet);
            false
        });
        if !outbox.is_empty() {
            match stream.write(&outbox) {
                Ok(n) => {
                    outbox.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        if !reading {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        // Block in read (woken at once by data) but not past the next RR or result due.
        let next_due = pending
            .iter()
            .map(|p| p.due)
            .chain(results.iter().map(|(due, _)| *due))
            .min();
        let wait = next_due
            .map_or(Duration::from_millis(5), |due| {
                due.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(100), Duration::from_millis(5));
        let blocking = outbox.is_empty();
        stream.set_nonblocking(!blocking).unwrap();
        if blocking {
            stream.set_read_timeout(Some(wait)).unwrap();
        }
        let n = match stream.read(&mut read_buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        let arrived = Instant::now();
        let mut log_guard = log.lock().unwrap();
        let entry = &mut log_guard[index];
        entry.bytes += n as u64;
        let mut input = &read_buf[..n];
        while !input.is_empty() {
            let (used, packet) = deframer.push(input);
            input = &input[used..];
            let packet = match packet {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    entry.errors.push(format!("framing: {e}"));
                    continue;
                }
            };
            if rtcp::is_rtcp(packet) {
                for item in rtcp::parse_compound(packet) {
                    let item = match item {
                        Ok(item) => item,
                        Err(e) => {
                            entry.errors.push(format!("rtcp: {e}"));
                            break;
                        }
                    };
                    match item {
                        RtcpPacket::SenderReport(sr) => {
                            if first_frame {
                                entry.first_packet_types.push(200);
                            }
                            entry.sender_reports += 1;
                            entry.camera_ssrc = Some(sr.ssrc);
                            if let Some(delay) = script.report_delay {
                                pending.push(PendingReport {
                                    due: arrived + delay,
                                    last_sr: sr.ntp.mid32(),
                                    received: arrived,
                                });
                            }
                        }
                        RtcpPacket::Sdes(sdes) => {
                            if first_frame {
                                entry.first_packet_types.push(202);
                            }
                            if let Some(cname) = sdes.cname() {
                                entry.cname = Some(String::from_utf8_lossy(cname).into_owned());
                            }
                        }
                        other => entry.errors.push(format!("unexpected RTCP {other:?}")),
                    }
                }
            } else {
                if first_frame {
                    entry.first_packet_types.push(0);
                }
                if let Err(e) = depacketizer.push(packet) {
                    entry.errors.push(format!("depacketizer: {e}"));
                }
                while let Some(event) = depacketizer.poll_event() {
                    match event {
                        Event::AccessUnit(au) => {
                            entry.units.push(ReceivedUnit {
                                rtp_timestamp: au.rtp_timestamp,
                                nal_types: nal_types(au.data),
                                keyframe: au.keyframe,
                                arrived,
                            });
                            if script.results {
                                let histogram = [6u32, 2];
                                let classes = [0u8, 0, 1, 0, 0, 0, 1, 0];
                                let result = SegmentationResult {
                                    rtp_timestamp: au.rtp_timestamp,
                                    decode_us: DECODE_US,
                                    infer_us: INFER_US,
                                    post_us: POST_US,
                                    map_width: 4,
                                    map_height: 2,
                                    histogram: &histogram,
                                    class_map: Some(ClassMap {
                                        width: 4,
                                        height: 2,
                                        classes: &classes,
                                    }),
                                };
                                let mut packet = Vec::new();
                                push_packet(&mut packet, |out| {
                                    result.write_app(WORKER_SSRC, out).unwrap()
                                });
                                results.push((arrived + processing, packet));
                            }
                        }
                        Event::Loss(loss) => {
                            entry.losses += 1;
                            entry.errors.push(format!("loss: {loss:?}"));
                        }
                    }
                }
            }
            first_frame = false;
        }
    }
}

fn push_packet(outbox: &mut Vec<u8>, write: impl FnOnce(&mut [u8]) -> usize) {
    let mut packet = vec![0u8; 65535];
    let len = write(&mut packet);
    let mut framed = vec![0u8; len + 2];
    let n = frame_into(&packet[..len], &mut framed).unwrap();
    outbox.extend_from_slice(&framed[..n]);
}

pub fn nal_types(au: &[u8]) -> Vec<u8> {
    let mut scan = annexb::nal_units(au).unwrap();
    let mut types = Vec::new();
    while let Some(range) = scan.next_range() {
        types.push(au[range.start] & 0x1f);
    }
    types
}

/// A camera for tests: the test pattern, openh264 and a [`Sender`], stepped by hand.
pub struct Camera {
    pub source: PatternSource,
    pub encoder: OpenH264Encoder,
    pub sender: Sender,
    pub events: Recorder,
    pub submitted: Vec<SubmittedFrame>,
    access_unit: Vec<u8>,
}

/// A frame the camera submitted.
#[derive(Clone, Copy, Debug)]
pub struct SubmittedFrame {
    pub rtp_timestamp: u32,
    pub keyframe: bool,
    pub outcome: Submitted,
    pub connected: bool,
}

/// What the sender reported.
#[derive(Default)]
pub struct Recorder {
    pub events: Vec<SenderEvent>,
    pub results: Vec<(u32, Option<Instant>, Option<LatencySplit>)>,
}

impl SenderHandler for Recorder {
    fn on_result(&mut self, result: &FrameResult<'_>) {
        self.results.push((
            result.result.rtp_timestamp,
            result.captured_at,
            result.latency,
        ));
    }

    fn on_event(&mut self, event: SenderEvent) {
        self.events.push(event);
    }
}

impl Camera {
    pub fn new(config: SenderConfig, width: u32, height: u32, bitrate_bps: u32) -> Self {
        let mut settings = EncoderSettings::new(width, height, 30);
        settings.bitrate_bps = bitrate_bps;
        settings.keyframe_interval = 0;
        Self {
            source: PatternSource::new(width as usize, height as usize, 30)
                .unwrap()
                .unpaced(),
            encoder: OpenH264Encoder::new(settings).unwrap(),
            sender: Sender::new(config).unwrap(),
            events: Recorder::default(),
            submitted: Vec::new(),
            access_unit: Vec::with_capacity(4 << 20),
        }
    }

    /// Polls for up to `wait`, then captures, encodes and submits one frame.
    pub fn step(&mut self, wait: Duration) -> SubmittedFrame {
        self.sender.poll(Some(wait), &mut self.events).unwrap();
        if self.sender.take_keyframe_request() {
            self.encoder.request_keyframe();
        }
        let frame = self.source.next_frame().unwrap();
        let captured_at = frame.captured_at;
        let encoded = self.encoder.encode(&frame, &mut self.access_unit).unwrap();
        let connected = self.sender.is_connected();
        let rtp_timestamp = self.sender.rtp_timestamp(captured_at);
        let outcome = self
            .sender
            .submit_with(
                &self.access_unit[..encoded.len],
                captured_at,
                encoded.encode_time,
                &mut self.events,
            )
            .unwrap();
        let submitted = SubmittedFrame {
            rtp_timestamp,
            keyframe: encoded.keyframe,
            outcome,
            connected,
        };
        self.submitted.push(submitted);
        submitted
    }

    /// Polls until `done` or `timeout`; true when done.
    pub fn poll_until(&mut self, timeout: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(self) {
                return true;
            }
            self.sender
                .poll(Some(Duration::from_millis(2)), &mut self.events)
                .unwrap();
        }
        done(self)
    }
}

/// A sender config for loopback tests: quick reconnects and reports.
pub fn test_config(server: SocketAddr) -> SenderConfig {
    let mut config = SenderConfig::new(server, "cam-test");
    config.reconnect_initial = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(200);
    config.report_interval = Duration::from_millis(100);
    config
}
