//! The loopback demo: a test-pattern stream sent through the protocol core end to end.
//!
//! 1. A moving test pattern is encoded to H.264 with openh264 (baseline, no B-frames, an IDR
//!    every `--keyframe-interval` frames).
//! 2. The sender packetizes each access unit (RFC 6184), frames it (RFC 4571) and writes it to
//!    a TCP connection on 127.0.0.1, paced to `--fps`.
//! 3. A receiver thread deframes and depacketizes what arrives and checks every access unit
//!    against what was sent; a decoder thread decodes each one with openh264.
//! 4. The run fails (non-zero exit) unless every access unit arrived byte-identical, with no
//!    loss, and decoded at the right size.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use flowcloud_core::framing::{Deframer, MAX_FRAME_LEN};
use flowcloud_core::h264::depacketizer::DepacketizerStats;
use flowcloud_core::h264::{
    Depacketizer, DepacketizerConfig, Event, MAX_ACCESS_UNIT_BYTES, NalHeader, NalType, Packetizer,
    PacketizerConfig, annexb,
};
use flowcloud_edge::capture::CapturedFrame;
use flowcloud_edge::capture::pattern::TestPattern;
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
use flowcloud_edge::picture::{Picture, PixelFormat};
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;

/// RTP payload type used on the connection.
const PAYLOAD_TYPE: u8 = 96;
/// RTP clock rate for video (RFC 6184 §8.2.1).
const CLOCK_HZ: u64 = 90_000;
/// RTP ticks between frames when `--fps 0` (as if 30 fps).
const TICKS_AS_FAST_AS_POSSIBLE: u64 = 3000;
/// Bytes per socket read on the receiver.
const READ_LEN: usize = 64 * 1024;

/// Sends a moving test pattern through the FlowCloud protocol core over loopback TCP:
/// openh264 encode, RFC 6184 packetize, RFC 4571 frame, TCP, deframe, depacketize, openh264
/// decode. Fails (non-zero exit) unless every access unit arrives byte-identical, without loss,
/// and decodes at the right size.
#[derive(Debug, Parser)]
#[command(name = "flowcloud-loopback", version)]
struct Args {
    /// Number of frames to encode and send.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    frames: u32,
    /// Picture width in pixels (even, at least 32).
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Picture height in pixels (even, at least 32).
    #[arg(long, default_value_t = 360)]
    height: u32,
    /// Frames per second the sender paces to; 0 sends as fast as possible (RTP timestamps then
    /// advance 3000 ticks per frame, as at 30 fps).
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Most RTP payload bytes per packet (RFC 6184 packetizer budget, 3..=65523).
    #[arg(long, default_value_t = 1400)]
    payload_budget: usize,
    /// Target bitrate of the openh264 encoder, in kbit/s.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    bitrate_kbps: u32,
    /// An IDR (keyframe, with SPS and PPS in front) every this many frames; frame 0 is one.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    keyframe_interval: u32,
    /// TCP port the receiver listens on at 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// One encoded access unit.
struct Encoded {
    rtp_timestamp: u32,
    data: Vec<u8>,
    keyframe: bool,
}

/// What the receiver thread saw.
#[derive(Default)]
struct Received {
    access_units: u64,
    au_bytes: u64,
    wire_bytes: u64,
    keyframes: u64,
    /// When each frame's access unit event came out, by frame index.
    arrival: Vec<Option<Instant>>,
    mismatched: Vec<String>,
    loss_events: Vec<String>,
    errors: Vec<String>,
    stats: DepacketizerStats,
    sps_size: Option<(u32, u32)>,
    cut_mid_frame: bool,
}

/// What the decoder thread saw.
#[derive(Default)]
struct Decoded {
    frames: u64,
    wrong_size: Vec<String>,
    errors: Vec<String>,
    busy: Duration,
}

/// Progress counters shared with the live report.
#[derive(Default)]
struct Progress {
    received: AtomicU64,
    decoded: AtomicU64,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowcloud-loopback: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let pattern = TestPattern::new(args.width as usize, args.height as usize)?;
    let ticks_per_frame = if args.fps == 0 {
        TICKS_AS_FAST_AS_POSSIBLE
    } else {
        CLOCK_HZ / u64::from(args.fps)
    };
    ensure!(
        ticks_per_frame > 0,
        "--fps {} is above the 90 kHz RTP clock",
        args.fps
    );
    let timestamp_of = |index: u64| -> Result<u32> {
        let ticks = if args.fps == 0 {
            index * TICKS_AS_FAST_AS_POSSIBLE
        } else {
            index * CLOCK_HZ / u64::from(args.fps)
        };
        u32::try_from(ticks).context("--frames too many: RTP timestamps would wrap")
    };

    // Validate the packetizer settings before spending time on encoding.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let initial_sequence = seed as u16;
    let mut packetizer = Packetizer::new(PacketizerConfig {
        ssrc: seed.rotate_left(13) ^ 0x5eed_f10c,
        payload_type: PAYLOAD_TYPE,
        payload_budget: args.payload_budget,
        initial_sequence,
    })
    .with_context(|| format!("--payload-budget {}", args.payload_budget))?;

    println!(
        "flowcloud-loopback: {} frames of {}x{}, {} fps{}, {} kbit/s, keyframe every {}, payload budget {}",
        args.frames,
        args.width,
        args.height,
        args.fps,
        if args.fps == 0 {
            " (as fast as possible)"
        } else {
            ""
        },
        args.bitrate_kbps,
        args.keyframe_interval,
        args.payload_budget
    );

    // 1. Encode the whole stream first, so the streaming phase measures the transport alone.
    let (frames, encode_time) = encode(args, &pattern, timestamp_of)?;
    let by_timestamp: HashMap<u32, usize> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (f.rtp_timestamp, i))
        .collect();
    ensure!(
        by_timestamp.len() == frames.len(),
        "RTP timestamps are not unique"
    );
    let frames = Arc::new(frames);
    let by_timestamp = Arc::new(by_timestamp);

    // 2. Receiver and decoder threads.
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let address = listener.local_addr()?;
    println!("receiver listening on {address}");
    let progress = Arc::new(Progress::default());
    let (to_decoder, decoder_input) = mpsc::channel::<(usize, Vec<u8>)>();
    let decoder = {
        let progress = Arc::clone(&progress);
        let size = (args.width as usize, args.height as usize);
        thread::Builder::new()
            .name("decoder".into())
            .spawn(move || decode(&decoder_input, size, &progress))?
    };
    let receiver = {
        let (frames, by_timestamp, progress) = (
            Arc::clone(&frames),
            Arc::clone(&by_timestamp),
            Arc::clone(&progress),
        );
        let config = DepacketizerConfig {
            payload_type: Some(PAYLOAD_TYPE),
            max_width: args.width,
            max_height: args.height,
            max_access_unit_bytes: MAX_ACCESS_UNIT_BYTES,
            // The receiver knows where the stream starts, so even a loss before the first
            // packet would be reported.
            initial_sequence: Some(initial_sequence),
        };
        thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                receive(
                    &listener,
                    config,
                    &frames,
                    &by_timestamp,
                    &progress,
                    &to_decoder,
                )
            })?
    };

    // 3. Send, paced to --fps.
    let mut stream = TcpStream::connect(address).context("cannot connect to the receiver")?;
    stream.set_nodelay(true)?;
    let mut packet = vec![0u8; packetizer.max_packet_len() + 2];
    let mut wire = Vec::with_capacity(1 << 20);
    let mut sent_at = Vec::with_capacity(frames.len());
    let (mut wire_bytes, mut packets) = (0u64, 0u64);
    let start = Instant::now();
    let mut last_report = start;
    for (index, frame) in frames.iter().enumerate() {
        if args.fps > 0 {
            let due = start + Duration::from_secs_f64(index as f64 / f64::from(args.fps));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
        sent_at.push(Instant::now());
        wire.clear();
        let mut au_packets = packetizer
            .packetize(&frame.data, frame.rtp_timestamp)
            .with_context(|| format!("packetizing frame {index}"))?;
        while let Some(len) = au_packets.next_framed(&mut packet)? {
            wire.extend_from_slice(&packet[..len]);
            packets += 1;
        }
        stream.write_all(&wire).context("sending to the receiver")?;
        wire_bytes += wire.len() as u64;
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            report_progress(start, index as u64 + 1, frames.len(), &progress);
        }
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    drop(stream);
    while !(receiver.is_finished() && decoder.is_finished()) {
        thread::sleep(Duration::from_millis(20));
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            report_progress(start, frames.len() as u64, frames.len(), &progress);
        }
    }
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
    let stream_time = start.elapsed();
    let decoded = decoder
        .join()
        .map_err(|_| anyhow::anyhow!("the decoder thread panicked"))?;

    // 4. Report and check.
    let latencies = {
        let mut l: Vec<Duration> = sent_at
            .iter()
            .zip(&received.arrival)
            .filter_map(|(sent, arrived)| arrived.map(|a| a.saturating_duration_since(*sent)))
            .collect();
        l.sort_unstable();
        l
    };
    let sizes: Vec<usize> = frames.iter().map(|f| f.data.len()).collect();
    let au_bytes: u64 = sizes.iter().map(|&s| s as u64).sum();
    let keyframes_sent = frames.iter().filter(|f| f.keyframe).count() as u64;
    let receive_window = received
        .arrival
        .iter()
        .flatten()
        .max()
        .map_or(stream_time, |last| last.saturating_duration_since(start));

    let rows: Vec<(&str, String)> = vec![
        ("frames sent", format!("{}", frames.len())),
        ("frames received", format!("{}", received.access_units)),
        (
            "frames decoded",
            format!("{} ({}x{})", decoded.frames, args.width, args.height),
        ),
        (
            "keyframes",
            format!("{keyframes_sent} sent, {} received", received.keyframes),
        ),
        (
            "access unit bytes",
            format!("{au_bytes} sent, {} received", received.au_bytes),
        ),
        (
            "access unit size",
            format!(
                "mean {:.0}, min {}, max {}",
                au_bytes as f64 / sizes.len().max(1) as f64,
                sizes.iter().min().unwrap_or(&0),
                sizes.iter().max().unwrap_or(&0)
            ),
        ),
        (
            "wire bytes",
            format!(
                "{wire_bytes} sent, {} received ({:.1}% RTP + framing overhead)",
                received.wire_bytes,
                (wire_bytes as f64 / au_bytes.max(1) as f64 - 1.0) * 100.0
            ),
        ),
        (
            "RTP packets",
            format!("{packets} sent, {} received", received.stats.packets),
        ),
        (
            "latency send→receive",
            format!(
                "p50 {}, p99 {}, max {} (before packetize → access unit event)",
                fmt_duration(percentile(&latencies, 50)),
                fmt_duration(percentile(&latencies, 99)),
                fmt_duration(latencies.last().copied().unwrap_or_default())
            ),
        ),
        (
            "wire throughput",
            format!(
                "{:.2} MB/s ({} bytes in {:.3} s)",
                wire_bytes as f64 / receive_window.as_secs_f64().max(1e-9) / 1e6,
                wire_bytes,
                receive_window.as_secs_f64()
            ),
        ),
        (
            "depacketizer",
            format!(
                "lost packets {}, duplicates {}, late {}, rejected {}, lost AUs {}",
                received.stats.lost_packets,
                received.stats.duplicates,
                received.stats.late,
                received.stats.rejected,
                received.stats.lost_access_units
            ),
        ),
        (
            "encode",
            format!(
                "{:.1} fps (openh264, {:.3} s for {} frames)",
                frames.len() as f64 / encode_time.as_secs_f64().max(1e-9),
                encode_time.as_secs_f64(),
                frames.len()
            ),
        ),
        (
            "decode",
            format!(
                "{:.1} fps (openh264, {:.3} s for {} frames)",
                decoded.frames as f64 / decoded.busy.as_secs_f64().max(1e-9),
                decoded.busy.as_secs_f64(),
                decoded.frames
            ),
        ),
    ];
    println!();
    for (name, value) in &rows {
        println!("{name:<22} {value}");
    }

    let expected = frames.len() as u64;
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    check(
        received.access_units == expected,
        format!(
            "received {} of {expected} access units",
            received.access_units
        ),
    );
    check(
        received.mismatched.is_empty(),
        format!(
            "access units differ from what was sent: {}",
            summarize(&received.mismatched)
        ),
    );
    check(
        received.loss_events.is_empty(),
        format!("loss events: {}", summarize(&received.loss_events)),
    );
    check(
        received.errors.is_empty(),
        format!("receive errors: {}", summarize(&received.errors)),
    );
    check(
        received.stats.lost_packets == 0
            && received.stats.duplicates == 0
            && received.stats.late == 0
            && received.stats.rejected == 0
            && received.stats.lost_access_units == 0,
        format!("depacketizer counted trouble: {:?}", received.stats),
    );
    check(
        !received.cut_mid_frame,
        "the stream ended in the middle of a frame".into(),
    );
    check(
        packets == received.stats.packets,
        format!(
            "sent {packets} packets, received {}",
            received.stats.packets
        ),
    );
    check(
        wire_bytes == received.wire_bytes,
        format!("sent {wire_bytes} bytes, received {}", received.wire_bytes),
    );
    check(
        keyframes_sent == received.keyframes,
        format!(
            "sent {keyframes_sent} keyframes, received {}",
            received.keyframes
        ),
    );
    check(
        received.sps_size == Some((args.width, args.height)),
        format!(
            "SPS announces {:?}, expected {}x{}",
            received.sps_size, args.width, args.height
        ),
    );
    check(
        decoded.frames == expected,
        format!("decoded {} of {expected} frames", decoded.frames),
    );
    check(
        decoded.wrong_size.is_empty(),
        format!(
            "frames decoded at the wrong size: {}",
            summarize(&decoded.wrong_size)
        ),
    );
    check(
        decoded.errors.is_empty(),
        format!("decode errors: {}", summarize(&decoded.errors)),
    );

    println!();
    if !failures.is_empty() {
        for failure in &failures {
            println!("FAIL: {failure}");
        }
        bail!(
            "loopback check failed ({} problems): {}",
            failures.len(),
            failures.join("; ")
        );
    }
    println!(
        "PASS: {expected}/{expected} access units arrived byte-identical, no loss, all decoded at {}x{}",
        args.width, args.height
    );
    Ok(())
}

/// Encodes `--frames` frames of the pattern; returns them and the time spent in the encoder.
fn encode(
    args: &Args,
    pattern: &TestPattern,
    timestamp_of: impl Fn(u64) -> Result<u32>,
) -> Result<(Vec<Encoded>, Duration)> {
    let fps = if args.fps == 0 { 30 } else { args.fps };
    let mut settings = EncoderSettings::new(pattern.width() as u32, pattern.height() as u32, fps);
    settings.bitrate_bps = args.bitrate_kbps * 1000;
    // Keyframes are forced below, exactly every --keyframe-interval frames.
    settings.keyframe_interval = 0;
    let mut encoder = OpenH264Encoder::new(settings).context("creating the openh264 encoder")?;
    let mut picture = vec![0u8; pattern.frame_len()];
    let (w, h) = (pattern.width() as u32, pattern.height() as u32);
    let mut frames = Vec::with_capacity(args.frames as usize);
    let mut busy = Duration::ZERO;
    let mut last_report = Instant::now();
    let mut data = Vec::with_capacity(8 << 20);
    for index in 0..u64::from(args.frames) {
        pattern.render(index, &mut picture);
        let frame = CapturedFrame::new(
            Picture::packed(PixelFormat::I420, w, h, &picture)?,
            Instant::now(),
            index,
        );
        let keyframe = index % u64::from(args.keyframe_interval) == 0;
        if keyframe {
            encoder.request_keyframe();
        }
        let encoded = encoder
            .encode(&frame, &mut data)
            .with_context(|| format!("encoding frame {index}"))?;
        busy += encoded.encode_time;
        let data = data[..encoded.len].to_vec();
        ensure!(
            !data.is_empty(),
            "the encoder produced nothing for frame {index}"
        );
        let types: Vec<NalType> = annexb::nal_units(&data)
            .context("encoder output is not Annex-B")?
            .map(|nal| NalHeader(nal[0]).nal_type())
            .collect();
        let has_idr = types.contains(&NalType::IdrSlice);
        ensure!(
            !has_idr || (types.contains(&NalType::Sps) && types.contains(&NalType::Pps)),
            "frame {index}: IDR without SPS and PPS in front ({types:?})"
        );
        ensure!(
            has_idr == keyframe && encoded.keyframe == keyframe,
            "frame {index}: expected {}, the encoder produced {types:?}",
            if keyframe { "an IDR" } else { "a P frame" }
        );
        frames.push(Encoded {
            rtp_timestamp: timestamp_of(index)?,
            data,
            keyframe,
        });
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            println!("encoding: {}/{} frames", index + 1, args.frames);
        }
    }
    Ok((frames, busy))
}

/// The receiver thread: accepts one connection and runs it through the deframer and the
/// depacketizer, checking each access unit against what was sent.
fn receive(
    listener: &TcpListener,
    config: DepacketizerConfig,
    frames: &[Encoded],
    by_timestamp: &HashMap<u32, usize>,
    progress: &Progress,
    to_decoder: &mpsc::Sender<(usize, Vec<u8>)>,
) -> Result<Received> {
    let (mut stream, _) = listener
        .accept()
        .context("accepting the sender's connection")?;
    let mut deframer: Box<Deframer<MAX_FRAME_LEN>> = Box::new(Deframer::new());
    let buffer = vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(MAX_ACCESS_UNIT_BYTES)];
    let mut depacketizer = Depacketizer::new(buffer, config);
    let mut out = Received {
        arrival: vec![None; frames.len()],
        ..Received::default()
    };
    let mut read_buf = vec![0u8; READ_LEN];
    loop {
        let n = match stream.read(&mut read_buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading from the sender"),
        };
        out.wire_bytes += n as u64;
        let mut input = &read_buf[..n];
        while !input.is_empty() {
            let (used, frame) = deframer.push(input);
            match frame {
                Ok(Some(packet)) => {
                    if let Err(e) = depacketizer.push(packet) {
                        out.errors.push(format!("depacketizer: {e}"));
                    }
                    drain(
                        &mut depacketizer,
                        frames,
                        by_timestamp,
                        progress,
                        to_decoder,
                        &mut out,
                    );
                }
                Ok(None) => {}
                Err(e) => out.errors.push(format!("deframer: {e}")),
            }
            input = &input[used..];
        }
    }
    out.cut_mid_frame = deframer.is_mid_frame();
    depacketizer.flush();
    drain(
        &mut depacketizer,
        frames,
        by_timestamp,
        progress,
        to_decoder,
        &mut out,
    );
    out.stats = *depacketizer.stats();
    out.sps_size = depacketizer.sps().map(|sps| (sps.width, sps.height));
    Ok(out)
}

/// Takes every pending event off the depacketizer.
fn drain(
    depacketizer: &mut Depacketizer<Vec<u8>>,
    frames: &[Encoded],
    by_timestamp: &HashMap<u32, usize>,
    progress: &Progress,
    to_decoder: &mpsc::Sender<(usize, Vec<u8>)>,
    out: &mut Received,
) {
    while let Some(event) = depacketizer.poll_event() {
        match event {
            Event::AccessUnit(au) => {
                let now = Instant::now();
                out.access_units += 1;
                out.au_bytes += au.data.len() as u64;
                out.keyframes += u64::from(au.keyframe);
                progress.received.fetch_add(1, Ordering::Relaxed);
                let Some(&index) = by_timestamp.get(&au.rtp_timestamp) else {
                    out.mismatched
                        .push(format!("unknown RTP timestamp {}", au.rtp_timestamp));
                    continue;
                };
                if out.arrival[index].replace(now).is_some() {
                    out.mismatched.push(format!("frame {index} arrived twice"));
                }
                let sent = &frames[index];
                if au.data != sent.data.as_slice() {
                    out.mismatched.push(format!(
                        "frame {index}: {} bytes received, {} sent, contents differ",
                        au.data.len(),
                        sent.data.len()
                    ));
                }
                if au.keyframe != sent.keyframe {
                    out.mismatched
                        .push(format!("frame {index}: keyframe flag {}", au.keyframe));
                }
                // The decoder thread outlives the receiver; a send error means it died, which
                // the decoded count reports.
                let _ = to_decoder.send((index, au.data.to_vec()));
            }
            Event::Loss(loss) => out.loss_events.push(format!("{loss:?}")),
        }
    }
}

/// The decoder thread: decodes every access unit the receiver passes on, in order.
fn decode(
    input: &mpsc::Receiver<(usize, Vec<u8>)>,
    size: (usize, usize),
    progress: &Progress,
) -> Decoded {
    let mut out = Decoded::default();
    let mut decoder =
        match Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new()) {
            Ok(d) => d,
            Err(e) => {
                out.errors
                    .push(format!("creating the openh264 decoder: {e}"));
                return out;
            }
        };
    let check = |out: &mut Decoded, index: usize, dims: (usize, usize)| {
        out.frames += 1;
        progress.decoded.fetch_add(1, Ordering::Relaxed);
        if dims != size {
            out.wrong_size
                .push(format!("frame {index}: {}x{}", dims.0, dims.1));
        }
    };
    for (index, au) in input {
        let started = Instant::now();
        let result = decoder
            .decode(&au)
            .map(|picture| picture.map(|p| p.dimensions()));
        out.busy += started.elapsed();
        match result {
            Ok(Some(dims)) => check(&mut out, index, dims),
            Ok(None) => out
                .errors
                .push(format!("frame {index}: no picture out of the decoder")),
            Err(e) => out.errors.push(format!("frame {index}: {e}")),
        }
    }
    let started = Instant::now();
    match decoder.flush_remaining() {
        Ok(rest) => {
            let dims: Vec<_> = rest.iter().map(YUVSource::dimensions).collect();
            out.busy += started.elapsed();
            for d in dims {
                check(&mut out, usize::MAX, d);
            }
        }
        Err(e) => out.errors.push(format!("flushing the decoder: {e}")),
    }
    out
}

fn report_progress(start: Instant, sent: u64, total: usize, progress: &Progress) {
    println!(
        "[{:5.1} s] sent {sent}/{total}, received {}, decoded {}",
        start.elapsed().as_secs_f64(),
        progress.received.load(Ordering::Relaxed),
        progress.decoded.load(Ordering::Relaxed)
    );
}

/// The `p`-th percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The first few items of a list of problems, and how many there were.
fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" … ({} in all)", items.len()));
    }
    s
}
