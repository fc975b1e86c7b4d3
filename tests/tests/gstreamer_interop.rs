//! Interoperability with GStreamer 1.22 over RFC 4571 TCP, both ways, checked down to decoded
//! pixels:
//!
//! - **GStreamer sends, we receive:** `x264enc ! rtph264pay ! rtpstreampay ! tcpclientsink` into
//!   our listener; our deframer and depacketizer rebuild the access units, which GStreamer's
//!   `avdec_h264` must decode to exactly the frames it decodes from the encoder's own output
//!   (taken from a `tee` in the same pipeline).
//! - **We send, GStreamer receives:** an x264 stream split into access units here, sent by our
//!   packetizer into `tcpserversrc ! rtpstreamdepay ! rtph264depay ! avdec_h264`; every frame
//!   must come out, identical to decoding the original file.
//!
//! Without `gst-launch-1.0` the tests pass as skipped, unless `CI` is set (see
//! `flowcloud_tests::gstreamer::require`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flowcloud_core::framing::Deframer;
use flowcloud_core::h264::{
    Depacketizer, DepacketizerConfig, Event, Packetizer, PacketizerConfig, annexb,
};
use flowcloud_core::rtp::RtpPacket;
use flowcloud_tests::gstreamer::{self, Launch, Pipeline, ScratchDir, location};

/// Longest any one pipeline may run (they take well under a second each).
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(20);

const WIDTH: usize = 320;
const HEIGHT: usize = 240;
const FRAME_BYTES: usize = WIDTH * HEIGHT * 3 / 2;

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// What a `video/x-raw,format=I420` decode into a file needs, on either side.
const DECODE_ELEMENTS: &[&str] = &["filesrc", "h264parse", "avdec_h264", "filesink"];

fn nal_type(nal: &[u8]) -> u8 {
    nal[0] & 0x1f
}

/// Decodes an Annex-B file with GStreamer into raw I420 frames.
fn decode_with_gstreamer(dir: &ScratchDir, h264: &str, yuv: &str) -> Result<Vec<u8>> {
    Launch::new("filesrc")
        .arg(location(&dir.join(h264)))
        .then("! h264parse ! avdec_h264 ! video/x-raw,format=I420 ! filesink")
        .arg(location(&dir.join(yuv)))
        .run(PIPELINE_TIMEOUT)?;
    std::fs::read(dir.join(yuv)).with_context(|| format!("reading {yuv}"))
}

/// Frame-by-frame comparison of two raw I420 streams, naming the first difference.
fn assert_same_frames(what: &str, expected: &[u8], got: &[u8], frames: usize) -> Result<()> {
    ensure!(
        expected.len() == frames * FRAME_BYTES,
        "{what}: reference decode has {} bytes, expected {frames} frames of {FRAME_BYTES}",
        expected.len()
    );
    ensure!(
        got.len() == expected.len(),
        "{what}: decoded {} bytes ({} frames), expected {} ({frames} frames)",
        got.len(),
        got.len() as f64 / FRAME_BYTES as f64,
        expected.len()
    );
    for (i, (e, g)) in expected
        .chunks(FRAME_BYTES)
        .zip(got.chunks(FRAME_BYTES))
        .enumerate()
    {
        if let Some(at) = e.iter().zip(g).position(|(a, b)| a != b) {
            bail!(
                "{what}: frame {i} differs first at byte {at} (expected {}, got {})",
                e[at],
                g[at]
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// GStreamer sends, we receive.
// ---------------------------------------------------------------------------------------------

/// One RTP packet as it arrived, by payload structure.
#[derive(Debug)]
struct PacketSeen {
    len: usize,
    /// `payload[0] & 0x1f`: a NAL unit type, 24 (STAP-A) or 28 (FU-A).
    payload_type: u8,
    /// For a STAP-A, the types of the aggregated NAL units.
    stap_a_types: Vec<u8>,
}

/// One access unit the depacketizer emitted.
#[derive(Debug)]
struct AccessUnitSeen {
    rtp_timestamp: u32,
    keyframe: bool,
    nal_count: usize,
}

#[derive(Debug, Default)]
struct Received {
    packets: Vec<PacketSeen>,
    access_units: Vec<AccessUnitSeen>,
    /// Every access unit's Annex-B bytes, one after the other.
    annex_b: Vec<u8>,
    /// Losses and errors, which must stay empty.
    problems: Vec<String>,
    sps_dimensions: Option<(u32, u32)>,
}

fn inspect(packet: &[u8]) -> Result<PacketSeen> {
    let rtp = RtpPacket::parse(packet)
        .map_err(|e| anyhow::anyhow!("GStreamer sent a bad RTP packet: {e:?}"))?;
    let payload = rtp.payload;
    let payload_type = payload.first().map_or(0, |b| b & 0x1f);
    let mut stap_a_types = Vec::new();
    if payload_type == STAP_A {
        let mut at = 1;
        while at + 2 < payload.len() {
            let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
            stap_a_types.push(payload[at + 2] & 0x1f);
            at += 2 + size;
        }
    }
    Ok(PacketSeen {
        len: packet.len(),
        payload_type,
        stap_a_types,
    })
}

/// Reads the RFC 4571 stream to its end (the sender closes it at EOS) through our deframer and
/// depacketizer.
fn receive(stream: &mut TcpStream, deadline: Instant) -> Result<Received> {
    let mut deframer = Deframer::<65536>::new();
    let mut depacketizer = Depacketizer::new(
        vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(4 << 20)],
        DepacketizerConfig {
            payload_type: Some(96),
            ..DepacketizerConfig::default()
        },
    );
    let mut rx = Received::default();
    let mut buf = vec![0u8; 64 * 1024];
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                ensure!(
                    Instant::now() < deadline,
                    "GStreamer did not close the connection in time"
                );
                continue;
            }
            Err(e) => return Err(e).context("reading from GStreamer"),
        };
        let mut input = &buf[..n];
        while !input.is_empty() {
            let (used, frame) = deframer.push(input);
            input = &input[used..];
            let packet = match frame {
                Ok(Some(packet)) => packet,
                Ok(None) => continue,
                Err(e) => {
                    rx.problems.push(format!("deframer: {e}"));
                    continue;
                }
            };
            rx.packets.push(inspect(packet)?);
            if let Err(e) = depacketizer.push(packet) {
                rx.problems
                    .push(format!("packet {}: {e}", rx.packets.len() - 1));
            }
            while let Some(event) = depacketizer.poll_event() {
                match event {
                    Event::AccessUnit(au) => {
                        rx.annex_b.extend_from_slice(au.data);
                        rx.access_units.push(AccessUnitSeen {
                            rtp_timestamp: au.rtp_timestamp,
                            keyframe: au.keyframe,
                            nal_count: au.nal_count,
                        });
                    }
                    Event::Loss(loss) => rx.problems.push(format!("loss: {loss:?}")),
                }
            }
        }
    }
    if deframer.is_mid_frame() {
        rx.problems
            .push("the stream ended inside an RFC 4571 frame".into());
    }
    depacketizer.flush();
    while let Some(event) = depacketizer.poll_event() {
        rx.problems
            .push(format!("after the last marker: {event:?}"));
    }
    rx.sps_dimensions = depacketizer.sps().map(|sps| (sps.width, sps.height));
    Ok(rx)
}

/// Accepts the pipeline's connection, failing early if the pipeline exits instead.
fn accept(listener: &TcpListener, pipeline: &mut Pipeline, deadline: Instant) -> Result<TcpStream> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                pipeline.ensure_running()?;
                ensure!(
                    Instant::now() < deadline,
                    "GStreamer did not connect: {}",
                    pipeline.output_tail()
                );
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).context("accepting GStreamer's connection"),
        }
    }
}

/// How GStreamer encodes and payloads the stream it sends us.
#[derive(Clone, Copy, Debug)]
struct GstSender {
    /// `rtph264pay mtu`: the largest RTP packet, header included.
    mtu: usize,
    /// `rtph264pay config-interval`: -1 sends SPS+PPS before every IDR slice.
    config_interval: i32,
    /// `x264enc sliced-threads`: two slices per picture instead of one.
    sliced_threads: bool,
}

/// `x264enc ! rtph264pay aggregate-mode=zero-latency` into our receiver, with GStreamer's own
/// decode of the encoder output (through a tee) as the reference. Returns the packets seen,
/// having checked everything that holds for any configuration.
fn gstreamer_sends_we_receive(sender: GstSender) -> Result<Option<Vec<PacketSeen>>> {
    const FRAMES: usize = 30;
    let GstSender {
        mtu,
        config_interval,
        sliced_threads,
    } = sender;
    // x264 codes one slice per sliced thread, and picks the thread count from the CPUs: pin it.
    let threads = if sliced_threads { 2 } else { 1 };
    let mut elements = vec![
        "videotestsrc",
        "x264enc",
        "tee",
        "queue",
        "rtph264pay",
        "rtpstreampay",
        "tcpclientsink",
    ];
    elements.extend_from_slice(DECODE_ELEMENTS);
    if !gstreamer::require(&elements)? {
        return Ok(None);
    }
    let dir = ScratchDir::new(&format!("gst-to-us-{mtu}"))?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let deadline = Instant::now() + PIPELINE_TIMEOUT;

    // The SMPTE pattern (its corner of noise) makes 4.5-7 KB pictures, so MTU 400 and 1400
    // need FU-A and 9000 does not; `ball` would give ~450-byte pictures that fit any of them.
    let mut pipeline = Launch::new(&format!(
        "videotestsrc num-buffers={FRAMES} pattern=smpte \
         ! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=15 bframes=0 sliced-threads={sliced_threads} threads={threads} \
         ! h264parse ! tee name=t \
         t. ! queue ! rtph264pay config-interval={config_interval} aggregate-mode=zero-latency \
         mtu={mtu} pt=96 ! rtpstreampay ! tcpclientsink host=127.0.0.1 port={port} sync=false \
         t. ! queue ! avdec_h264 ! video/x-raw,format=I420 ! filesink sync=false"
    ))
    .arg(location(&dir.join("reference.yuv")))
    .spawn()?;

    let mut stream = accept(&listener, &mut pipeline, deadline)?;
    let rx = receive(&mut stream, deadline)?;
    drop(stream);
    pipeline.wait_success(PIPELINE_TIMEOUT)?;

    let what = format!("{sender:?}");
    ensure!(
        rx.problems.is_empty(),
        "{what}: losses or errors: {:#?}",
        rx.problems
    );
    ensure!(
        rx.access_units.len() == FRAMES,
        "{what}: {} access units, expected {FRAMES}",
        rx.access_units.len()
    );
    ensure!(
        rx.access_units[0].keyframe,
        "{what}: the first access unit is not a keyframe"
    );
    let keyframes: Vec<usize> = rx
        .access_units
        .iter()
        .enumerate()
        .filter(|(_, au)| au.keyframe)
        .map(|(i, _)| i)
        .collect();
    ensure!(
        keyframes == [0, 15],
        "{what}: keyframes at {keyframes:?}, expected [0, 15] (key-int-max=15)"
    );
    ensure!(
        rx.sps_dimensions == Some((WIDTH as u32, HEIGHT as u32)),
        "{what}: SPS says {:?}",
        rx.sps_dimensions
    );
    for (i, pair) in rx.access_units.windows(2).enumerate() {
        let step = pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp);
        ensure!(
            (2999..=3001).contains(&step),
            "{what}: timestamp step {step} after access unit {i}"
        );
    }
    let nals: usize = rx.access_units.iter().map(|au| au.nal_count).sum();
    ensure!(
        annexb::nal_units(&rx.annex_b)?.count() == nals,
        "{what}: the access units' nal_count does not match their data"
    );
    for p in &rx.packets {
        ensure!(
            p.len <= mtu,
            "{what}: GStreamer sent a {}-byte packet over MTU {mtu}",
            p.len
        );
    }
    // With zero-latency aggregation, the SPS+PPS before each IDR travel in a STAP-A.
    ensure!(
        rx.packets.iter().any(|p| p.payload_type == STAP_A
            && p.stap_a_types.windows(2).any(|w| w == [NAL_SPS, NAL_PPS])),
        "{what}: no STAP-A carrying SPS+PPS: {:?}",
        rx.packets
            .iter()
            .map(|p| p.payload_type)
            .collect::<Vec<_>>()
    );

    // The access units we rebuilt decode to exactly the frames GStreamer decodes itself.
    std::fs::write(dir.join("ours.h264"), &rx.annex_b)?;
    let ours = decode_with_gstreamer(&dir, "ours.h264", "ours.yuv")?;
    let reference = std::fs::read(dir.join("reference.yuv"))?;
    assert_same_frames(&what, &reference, &ours, FRAMES)?;
    Ok(Some(rx.packets))
}

fn fu_a_packets(packets: &[PacketSeen]) -> usize {
    packets.iter().filter(|p| p.payload_type == FU_A).count()
}

// config-interval=-1 runs with one slice per picture: rtph264pay puts SPS+PPS before *every*
// IDR slice, so with two slices they land between the slices of one picture. Our depacketizer
// still rebuilds the picture whole (it goes by marker and timestamp, as rtph264depay does),
// but written to an Annex-B file that is not a conformant access unit (H.264 §7.4.1.2.3: an
// SPS after a slice starts a new access unit), and `filesrc ! h264parse` splits the picture
// in two. The two-slice case is covered with config-interval=0 below, and NAL by NAL against
// captures in edge-sdk/core/tests/gstreamer_captures.rs.

#[test]
fn gstreamer_sends_mtu_400_fu_a_and_stap_a() -> Result<()> {
    let sender = GstSender {
        mtu: 400,
        config_interval: -1,
        sliced_threads: false,
    };
    let Some(packets) = gstreamer_sends_we_receive(sender)? else {
        return Ok(());
    };
    ensure!(
        fu_a_packets(&packets) > 0,
        "MTU 400 must fragment the pictures"
    );
    Ok(())
}

#[test]
fn gstreamer_sends_mtu_1400_fu_a_and_stap_a() -> Result<()> {
    let sender = GstSender {
        mtu: 1400,
        config_interval: -1,
        sliced_threads: false,
    };
    let Some(packets) = gstreamer_sends_we_receive(sender)? else {
        return Ok(());
    };
    ensure!(
        fu_a_packets(&packets) > 0,
        "MTU 1400 must fragment the pictures"
    );
    Ok(())
}

#[test]
fn gstreamer_sends_mtu_9000_no_fragments() -> Result<()> {
    let sender = GstSender {
        mtu: 9000,
        config_interval: -1,
        sliced_threads: false,
    };
    let Some(packets) = gstreamer_sends_we_receive(sender)? else {
        return Ok(());
    };
    ensure!(
        fu_a_packets(&packets) == 0,
        "MTU 9000 fits every picture: no FU-A expected"
    );
    Ok(())
}

#[test]
fn gstreamer_sends_two_slices_per_picture() -> Result<()> {
    let sender = GstSender {
        mtu: 1400,
        config_interval: 0,
        sliced_threads: true,
    };
    let Some(packets) = gstreamer_sends_we_receive(sender)? else {
        return Ok(());
    };
    ensure!(
        fu_a_packets(&packets) > 0,
        "MTU 1400 must fragment the big slice"
    );
    // The small top slice of a P picture rides in a STAP-A with the AUD.
    ensure!(
        packets.iter().any(|p| p.stap_a_types.contains(&NAL_SLICE)),
        "no STAP-A carrying a slice"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// We send, GStreamer receives.
// ---------------------------------------------------------------------------------------------

/// The stream we send: x264's Annex-B output and GStreamer's decode of it.
struct Source {
    annex_b: Vec<u8>,
    reference_yuv: Vec<u8>,
}

const SEND_FRAMES: usize = 60;

/// Encodes the source once for all the sending tests (they run in parallel in one process).
fn source() -> Result<&'static Source> {
    static SOURCE: OnceLock<Result<Source, String>> = OnceLock::new();
    SOURCE
        .get_or_init(|| encode_source().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("encoding the source stream: {e}"))
}

fn encode_source() -> Result<Source> {
    let dir = ScratchDir::new("gst-source")?;
    // pinwheel moves every frame, so slices range from ~100 bytes to ~6 KB; two sliced
    // threads give two slices per picture; x264enc writes an access unit delimiter at the
    // start of every picture (aud=true).
    Launch::new(&format!(
        "videotestsrc num-buffers={SEND_FRAMES} pattern=pinwheel \
         ! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate=30/1 \
         ! x264enc tune=zerolatency threads=2 key-int-max=30 bframes=0 aud=true \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! filesink"
    ))
    .arg(location(&dir.join("source.h264")))
    .run(PIPELINE_TIMEOUT)?;
    let annex_b = std::fs::read(dir.join("source.h264"))?;
    let reference_yuv = decode_with_gstreamer(&dir, "source.h264", "reference.yuv")?;
    Ok(Source {
        annex_b,
        reference_yuv,
    })
}

/// Splits an Annex-B stream into access units (H.264 §7.4.1.2.3): a new one starts at an
/// access unit delimiter, or at an SPS, PPS or SEI, or at a slice with first_mb_in_slice == 0,
/// once the current one holds a slice. Returns each access unit rebuilt with 4-byte start
/// codes.
fn split_access_units(stream: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut has_slice = false;
    for nal in annexb::nal_units(stream)? {
        let t = nal_type(nal);
        let is_slice = matches!(t, NAL_SLICE | NAL_IDR);
        // first_mb_in_slice is ue(v): the value 0 is the single bit 1.
        let first_slice = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = t == NAL_AUD
            || (has_slice && (matches!(t, NAL_SPS | NAL_PPS | NAL_SEI) || first_slice));
        if starts_new || units.is_empty() {
            units.push(Vec::new());
            has_slice = false;
        }
        let unit = units.last_mut().expect("pushed above");
        unit.extend_from_slice(&annexb::START_CODE);
        unit.extend_from_slice(nal);
        has_slice |= is_slice;
    }
    Ok(units)
}

/// Connects to GStreamer's `tcpserversrc`, failing early if the pipeline exits instead.
fn connect(port: u16, pipeline: &mut Pipeline, deadline: Instant) -> Result<TcpStream> {
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                pipeline.ensure_running()?;
                ensure!(
                    Instant::now() < deadline,
                    "cannot connect to GStreamer on port {port}: {e}"
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Our packetizer at `payload_budget` into `tcpserversrc ! rtpstreamdepay ! rtph264depay`.
/// Returns the RTP payload types (first byte & 0x1f) we sent, per access unit.
fn we_send_gstreamer_receives(payload_budget: usize) -> Result<Option<Vec<Vec<u8>>>> {
    let mut elements = vec![
        "videotestsrc",
        "x264enc",
        "tcpserversrc",
        "rtpstreamdepay",
        "rtph264depay",
    ];
    elements.extend_from_slice(DECODE_ELEMENTS);
    if !gstreamer::require(&elements)? {
        return Ok(None);
    }
    let source = source()?;
    let access_units = split_access_units(&source.annex_b)?;
    ensure!(
        access_units.len() == SEND_FRAMES,
        "split {} access units, expected {SEND_FRAMES}",
        access_units.len()
    );

    let dir = ScratchDir::new(&format!("us-to-gst-{payload_budget}"))?;
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    // port=0: the kernel picks a free port and `-v` prints it (no race with other tests).
    let mut pipeline = Launch::new(
        "tcpserversrc host=127.0.0.1 port=0 \
         ! application/x-rtp-stream,media=video,clock-rate=90000,encoding-name=H264,payload=96 \
         ! rtpstreamdepay ! rtph264depay ! h264parse ! avdec_h264 ! video/x-raw,format=I420 \
         ! filesink sync=false",
    )
    .arg(location(&dir.join("out.yuv")))
    .verbose()
    .spawn()?;
    let port: u16 = pipeline
        .wait_for_stdout("current-port = ", PIPELINE_TIMEOUT)?
        .parse()
        .context("parsing tcpserversrc's current-port")?;
    let mut stream = connect(port, &mut pipeline, deadline)?;
    // A pipeline that stops reading must fail the test, not hang it.
    stream.set_write_timeout(Some(PIPELINE_TIMEOUT))?;

    // Sequence numbers and timestamps start just before their wrap, so both wrap mid-stream.
    let mut packetizer = Packetizer::new(PacketizerConfig {
        ssrc: 0x2bad_f00d,
        payload_type: 96,
        payload_budget,
        initial_sequence: 65_500,
    })?;
    let first_timestamp = u32::MAX - 3000 * 20;
    let mut framed = vec![0u8; packetizer.max_packet_len() + 2];
    let mut wire = Vec::new();
    let mut sent_types = Vec::new();
    for (i, au) in access_units.iter().enumerate() {
        let timestamp = first_timestamp.wrapping_add(3000 * i as u32);
        let mut packets = packetizer.packetize(au, timestamp)?;
        let mut types = Vec::new();
        while let Some(len) = packets.next_framed(&mut framed)? {
            // 2-byte length, 12-byte RTP header, then the payload header.
            types.push(framed[14] & 0x1f);
            wire.extend_from_slice(&framed[..len]);
        }
        sent_types.push(types);
    }
    stream.write_all(&wire).context("sending to GStreamer")?;
    // Closing our side is the end of stream for tcpserversrc: the pipeline drains and exits.
    stream.shutdown(Shutdown::Write)?;
    pipeline.wait_success(PIPELINE_TIMEOUT)?;
    drop(stream);

    let out = std::fs::read(dir.join("out.yuv"))?;
    assert_same_frames(
        &format!("payload budget {payload_budget}"),
        &source.reference_yuv,
        &out,
        SEND_FRAMES,
    )?;
    Ok(Some(sent_types))
}

#[test]
fn we_send_budget_200_fu_a() -> Result<()> {
    let Some(sent) = we_send_gstreamer_receives(200)? else {
        return Ok(());
    };
    ensure!(
        sent.iter().flatten().any(|&t| t == FU_A),
        "budget 200 must send FU-A"
    );
    Ok(())
}

#[test]
fn we_send_budget_1400_mixed() -> Result<()> {
    let Some(sent) = we_send_gstreamer_receives(1400)? else {
        return Ok(());
    };
    ensure!(
        sent.iter().flatten().any(|&t| t == FU_A),
        "budget 1400 must fragment the I slices"
    );
    ensure!(
        sent.iter().flatten().any(|&t| t == STAP_A),
        "budget 1400 must aggregate"
    );
    Ok(())
}

#[test]
fn we_send_budget_64000_one_stap_a_per_access_unit() -> Result<()> {
    let Some(sent) = we_send_gstreamer_receives(64_000)? else {
        return Ok(());
    };
    ensure!(
        sent.iter().all(|types| types == &[STAP_A]),
        "budget 64000 must send each access unit as one STAP-A: {sent:?}"
    );
    Ok(())
}

#[test]
fn access_unit_splitter() -> Result<()> {
    // Two pictures without delimiters: SPS, PPS, IDR (first_mb 0), IDR (first_mb 5), then a P
    // slice with first_mb 0 starts the second.
    let stream = [
        0, 0, 0, 1, 0x67, 0x42, //
        0, 0, 0, 1, 0x68, 0xce, //
        0, 0, 1, 0x65, 0x88, 0x80, //
        0, 0, 1, 0x65, 0x30, 0x80, //
        0, 0, 0, 1, 0x41, 0x9a, 0x20,
    ];
    let units = split_access_units(&stream)?;
    let types: Vec<Vec<u8>> = units
        .iter()
        .map(|u| annexb::nal_units(u).map(|nals| nals.map(nal_type).collect()))
        .collect::<Result<_, _>>()?;
    ensure!(types == [vec![7, 8, 5, 5], vec![1]], "split as {types:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The helpers themselves: a pipeline that fails or hangs must fail the test, never hang it or
// leave a process behind.
// ---------------------------------------------------------------------------------------------

#[test]
fn helper_reports_a_failing_pipeline() -> Result<()> {
    if !gstreamer::require(&["videotestsrc", "fakesink"])? {
        return Ok(());
    }
    let err = Launch::new("videotestsrc num-buffers=1 ! no-such-element-here ! fakesink")
        .run(PIPELINE_TIMEOUT)
        .expect_err("a pipeline with an unknown element must fail");
    ensure!(
        matches!(err, gstreamer::GstError::Failed { .. }),
        "unexpected error: {err}"
    );
    ensure!(
        err.to_string().contains("no-such-element-here"),
        "the message quotes GStreamer: {err}"
    );
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn helper_kills_a_pipeline_that_overruns_or_is_dropped() -> Result<()> {
    if !gstreamer::require(&["videotestsrc", "fakesink"])? {
        return Ok(());
    }
    let gone = |pid: u32| !std::path::Path::new(&format!("/proc/{pid}")).exists();

    let endless = Launch::new("videotestsrc is-live=true ! fakesink").spawn()?;
    let pid = endless.id();
    let err = endless
        .wait_success(Duration::from_millis(500))
        .expect_err("it never ends");
    ensure!(
        matches!(err, gstreamer::GstError::TimedOut { .. }),
        "unexpected error: {err}"
    );
    ensure!(gone(pid), "process {pid} still exists after the timeout");

    let endless = Launch::new("videotestsrc is-live=true ! fakesink").spawn()?;
    let pid = endless.id();
    drop(endless);
    ensure!(gone(pid), "process {pid} still exists after drop");
    Ok(())
}
