//! A stand-in for `flowcloud-worker` on loopback, for the C ABI's tests and for
//! `examples/stand_in_worker.rs`: it accepts one camera connection at a time, takes the stream
//! apart with the protocol core (deframer, depacketizer, RTCP), answers every sender report
//! with a receiver report and every access unit with an `FCSG` result, can send a PLI, and
//! logs what it saw.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowcloud_core::framing::{Deframer, MAX_FRAME_LEN, frame_into};
use flowcloud_core::h264::{Depacketizer, DepacketizerConfig, Event, MAX_ACCESS_UNIT_BYTES};
use flowcloud_core::results::{ClassMap, SegmentationResult};
use flowcloud_core::rtcp::{self, Pli, ReceiverReport, ReportBlock, ReportBlocks, RtcpPacket};

/// The stand-in's SSRC.
pub const WORKER_SSRC: u32 = 0xfc00_0002;
/// Classes in every histogram (the Cityscapes train ids).
pub const CLASSES: usize = 19;
/// The full-resolution map size every result reports.
pub const MAP_WIDTH: u16 = 640;
/// See [`MAP_WIDTH`].
pub const MAP_HEIGHT: u16 = 360;
/// The class map sent with every result.
pub const CLASS_MAP_WIDTH: u16 = 8;
/// See [`CLASS_MAP_WIDTH`].
pub const CLASS_MAP_HEIGHT: u16 = 4;
/// Stage times every result reports, µs.
pub const DECODE_US: u32 = 1200;
/// See [`DECODE_US`].
pub const INFER_US: u32 = 3400;
/// See [`DECODE_US`].
pub const POST_US: u32 = 300;

/// How the stand-in behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerOptions {
    /// Send one PLI after this many access units on each connection.
    pub pli_after: Option<u64>,
    /// Runs first on the stand-in's thread (a test's allocation counter exempts it there).
    pub on_thread_start: Option<fn()>,
}

/// What the stand-in saw, over all connections.
#[derive(Clone, Debug, Default)]
pub struct WorkerLog {
    pub connections: u64,
    /// Connections that have ended (the camera closed them, or they failed).
    pub closed: u64,
    pub cnames: Vec<String>,
    pub sender_reports: u64,
    pub access_units: u64,
    /// RTP timestamps of the access units, in arrival order.
    pub timestamps: Vec<u32>,
    pub keyframes: u64,
    pub results: u64,
    pub plis: u64,
    pub errors: Vec<String>,
}

/// The stand-in worker: a listener thread serving one connection at a time.
pub struct StandInWorker {
    pub addr: SocketAddr,
    log: Arc<Mutex<WorkerLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The dominant class of the `n`-th access unit: it cycles, so results differ.
pub fn dominant_class(n: u64) -> u8 {
    (n % CLASSES as u64) as u8
}

impl StandInWorker {
    /// Listens on `addr` (port 0: any free port).
    pub fn start(addr: SocketAddr, options: WorkerOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let log = Arc::new(Mutex::new(WorkerLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("stand-in-worker".into())
                .spawn(move || {
                    if let Some(hook) = options.on_thread_start {
                        hook();
                    }
                    serve(&listener, options, &log, &stop);
                })?
        };
        Ok(Self {
            addr,
            log,
            stop,
            thread: Some(thread),
        })
    }

    /// A copy of the log so far.
    pub fn log(&self) -> WorkerLog {
        self.log.lock().unwrap().clone()
    }

    /// Stops the thread (closing any connection) and returns the log.
    pub fn stop(mut self) -> WorkerLog {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.log()
    }
}

impl Drop for StandInWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: &TcpListener,
    options: WorkerOptions,
    log: &Mutex<WorkerLog>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                log.lock().unwrap().connections += 1;
                let outcome = connection(stream, options, log, stop);
                let mut log = log.lock().unwrap();
                log.closed += 1;
                if let Err(e) = outcome {
                    log.errors.push(format!("connection: {e}"));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => {
                log.lock().unwrap().errors.push(format!("accept: {e}"));
                return;
            }
        }
    }
}

fn framed(write: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut packet = vec![0u8; MAX_FRAME_LEN];
    let len = write(&mut packet);
    let mut out = vec![0u8; len + 2];
    let n = frame_into(&packet[..len], &mut out).unwrap();
    out.truncate(n);
    out
}

fn result_packet(rtp_timestamp: u32, n: u64) -> Vec<u8> {
    let dominant = dominant_class(n);
    let pixels = u32::from(MAP_WIDTH) * u32::from(MAP_HEIGHT);
    // Half the picture is the dominant class; the rest is shared out evenly.
    let mut histogram = [0u32; CLASSES];
    let share = pixels / 2 / (CLASSES as u32 - 1);
    for (class, count) in histogram.iter_mut().enumerate() {
        *count = if class == usize::from(dominant) {
            0
        } else {
            share
        };
    }
    histogram[usize::from(dominant)] = pixels - share * (CLASSES as u32 - 1);
    let mut classes = [dominant; CLASS_MAP_WIDTH as usize * CLASS_MAP_HEIGHT as usize];
    classes[0] = (dominant + 1) % CLASSES as u8;
    let result = SegmentationResult {
        rtp_timestamp,
        decode_us: DECODE_US,
        infer_us: INFER_US,
        post_us: POST_US,
        map_width: MAP_WIDTH,
        map_height: MAP_HEIGHT,
        histogram: &histogram,
        class_map: Some(ClassMap {
            width: CLASS_MAP_WIDTH,
            height: CLASS_MAP_HEIGHT,
            classes: &classes,
        }),
    };
    framed(|out| result.write_app(WORKER_SSRC, out).unwrap())
}

fn connection(
    mut stream: TcpStream,
    options: WorkerOptions,
    log: &Mutex<WorkerLog>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut deframer: Box<Deframer<MAX_FRAME_LEN>> = Box::new(Deframer::new());
    let buffer = vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(MAX_ACCESS_UNIT_BYTES)];
    let mut depacketizer = Depacketizer::new(buffer, DepacketizerConfig::default());
    let mut read_buf = vec![0u8; 64 * 1024];
    let mut camera_ssrc = None;
    let mut units = 0u64;
    let mut pli_sent = false;
    while !stop.load(Ordering::SeqCst) {
        let n = match stream.read(&mut read_buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        };
        let arrived = Instant::now();
        let mut outbox = Vec::new();
        let mut entry = log.lock().unwrap();
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
                    match item {
                        Ok(RtcpPacket::SenderReport(sr)) => {
                            entry.sender_reports += 1;
                            camera_ssrc = Some(sr.ssrc);
                            // Answered at once: the delay since the SR is the time spent here.
                            let delay = arrived.elapsed().as_micros() as u64;
                            let blocks = [ReportBlock {
                                ssrc: sr.ssrc,
                                last_sr: sr.ntp.mid32(),
                                delay_since_last_sr: rtcp::compact_from_micros(delay),
                                ..ReportBlock::default()
                            }];
                            let rr = ReceiverReport {
                                ssrc: WORKER_SSRC,
                                reports: ReportBlocks::new(&blocks),
                            };
                            outbox.extend(framed(|out| rr.write(out).unwrap()));
                        }
                        Ok(RtcpPacket::Sdes(sdes)) => {
                            if let Some(cname) = sdes.cname() {
                                entry
                                    .cnames
                                    .push(String::from_utf8_lossy(cname).into_owned());
                            }
                        }
                        Ok(other) => entry.errors.push(format!("unexpected RTCP {other:?}")),
                        Err(e) => {
                            entry.errors.push(format!("rtcp: {e}"));
                            break;
                        }
                    }
                }
                continue;
            }
            if let Err(e) = depacketizer.push(packet) {
                entry.errors.push(format!("depacketizer: {e}"));
            }
            while let Some(event) = depacketizer.poll_event() {
                match event {
                    Event::AccessUnit(au) => {
                        entry.access_units += 1;
                        entry.timestamps.push(au.rtp_timestamp);
                        entry.keyframes += u64::from(au.keyframe);
                        outbox.extend(result_packet(au.rtp_timestamp, units));
                        entry.results += 1;
                        units += 1;
                    }
                    Event::Loss(loss) => entry.errors.push(format!("loss: {loss:?}")),
                }
            }
            if let (Some(after), Some(ssrc)) = (options.pli_after, camera_ssrc)
                && units >= after
                && !pli_sent
            {
                let pli = Pli {
                    sender_ssrc: WORKER_SSRC,
                    media_ssrc: ssrc,
                };
                outbox.extend(framed(|out| pli.write(out).unwrap()));
                entry.plis += 1;
                pli_sent = true;
            }
        }
        drop(entry);
        if !outbox.is_empty() {
            match stream.write_all(&outbox) {
                Ok(()) => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
