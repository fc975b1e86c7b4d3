//! Standard GStreamer senders, unchanged, streaming into the real `flowcloud-worker`: RTP first
//! (no SR + SDES handshake), with and without `rtpbin`, to the worker (`tcpclientsink`) and
//! from a camera that serves its stream (`tcpserversink`, the worker connects out), at several
//! payload sizes and picture sizes, odd ones included (x264 takes only even sizes in 4:2:0;
//! 322×242 is neither a multiple of 16 nor of 4 in its chroma planes, 161×121).
//!
//! Every sender pipeline also decodes its own stream with `avdec_h264` (a `tee` after the
//! encoder); the worker logs the SHA-256 of every frame it segments (`--storage-frame-hashes`),
//! and the test requires the same frames, in order, with the same hashes: every frame sent
//! produced a result, and the worker's decoder agrees with GStreamer's bit for bit.
//!
//! GStreamer is required under `CI` and the tests are skipped without it elsewhere
//! ([`gstreamer::require`]).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::built_binary;
use flowcloud_tests::gstreamer::{self, Launch, Pipeline, ScratchDir, location};
use flowcloud_tests::worker_process::WorkerProcess;
use flowcloud_worker::frame::I420Frame;
use flowcloud_worker::storage::i420_sha256;

const FPS: u32 = 15;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A sender's run, frames at FPS plus start-up, with room for a loaded machine.
const SENDER_TIMEOUT: Duration = Duration::from_secs(60);
/// After a sender finished: time for the worker to segment its last frames.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One test at a time: each runs a worker and live pipelines, whose pace the tests rely on.
static SERIAL: Mutex<()> = Mutex::new(());

const ELEMENTS: &[&str] = &[
    "videotestsrc",
    "x264enc",
    "h264parse",
    "tee",
    "queue",
    "avdec_h264",
    "filesink",
    "rtph264pay",
    "rtpstreampay",
    "tcpclientsink",
    "tcpserversink",
    "rtpbin",
    "funnel",
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// How the sender's RTP leaves the pipeline.
#[derive(Clone, Debug)]
enum Transport {
    /// `rtpstreampay ! tcpclientsink`: no RTCP at all.
    Client { port: u16 },
    /// Through `rtpbin` (SR + SDES with `cname`, seconds in), RTP and RTCP funnelled into one
    /// `rtpstreampay ! tcpclientsink`.
    ClientRtpbin { port: u16, cname: &'static str },
    /// `rtpstreampay ! tcpserversink`: the worker connects; a new client starts at a keyframe.
    Server { port: u16 },
}

/// One GStreamer sender.
#[derive(Clone, Debug)]
struct Sender {
    width: u32,
    height: u32,
    frames: u32,
    mtu: u32,
    ssrc: u32,
    /// x264enc input format: I420 (4:2:0), or Y444 for a stream the worker cannot decode.
    format: &'static str,
    transport: Transport,
}

impl Sender {
    fn new(width: u32, height: u32, frames: u32, mtu: u32, transport: Transport) -> Self {
        Self {
            width,
            height,
            frames,
            mtu,
            ssrc: 0x0600_0000 | (width << 12) | height,
            format: "I420",
            transport,
        }
    }

    /// The stream's name in the worker when it arrives anonymously.
    fn anonymous_name(&self) -> String {
        format!("anon-127.0.0.1-{:08x}", self.ssrc)
    }

    /// Starts the pipeline; GStreamer's own decode of the stream goes to `reference`.
    fn spawn(&self, reference: &Path) -> Result<Pipeline> {
        let Self {
            width,
            height,
            frames,
            mtu,
            ssrc,
            format,
            ..
        } = self;
        // SMPTE bars with their corner of noise: every frame differs, pictures of a few KB.
        let mut launch = Launch::new(&format!(
            "videotestsrc is-live=true num-buffers={frames} pattern=smpte \
             ! video/x-raw,format={format},width={width},height={height},framerate={FPS}/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bframes=0 threads=1 \
             ! h264parse ! tee name=t \
             t. ! queue ! avdec_h264 ! filesink sync=false"
        ))
        .arg(location(reference))
        .then(&format!(
            "t. ! queue ! rtph264pay config-interval=-1 pt=96 mtu={mtu} ssrc={ssrc}"
        ));
        launch = match &self.transport {
            Transport::Client { port } => launch.then(&format!(
                "! rtpstreampay ! tcpclientsink host=127.0.0.1 port={port} sync=false"
            )),
            Transport::ClientRtpbin { port, cname } => launch
                .then("! rtpbin.send_rtp_sink_0 rtpbin name=rtpbin")
                .arg(format!(
                    "sdes=application/x-rtp-source-sdes,cname=(string){cname}"
                ))
                .then(&format!(
                    "rtpbin.send_rtp_src_0 ! funnel name=f ! rtpstreampay \
                     ! tcpclientsink host=127.0.0.1 port={port} sync=false \
                     rtpbin.send_rtcp_src_0 ! f."
                )),
            Transport::Server { port } => launch.then(&format!(
                "! rtpstreampay ! tcpserversink host=127.0.0.1 port={port} sync=false \
                 sync-method=next-keyframe"
            )),
        };
        Ok(launch.spawn()?)
    }
}

/// SHA-256 of every frame in a raw I420 file as GStreamer lays it out: luma rows padded to 4
/// bytes, chroma rows to 4 bytes, the luma plane's height rounded up to even.
fn reference_hashes(path: &Path, width: u32, height: u32) -> Result<Vec<String>> {
    let round_up = |v: u32, to: u32| v.div_ceil(to) * to;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let y_stride = round_up(width, 4) as usize;
    let c_stride = round_up(round_up(width, 2) / 2, 4) as usize;
    let u_offset = y_stride * round_up(height, 2) as usize;
    let v_offset = u_offset + c_stride * ch;
    let frame_len = v_offset + c_stride * ch;
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        data.len() % frame_len == 0,
        "{}: {} bytes is not a whole number of {width}x{height} I420 frames ({frame_len} bytes)",
        path.display(),
        data.len()
    );
    let plane = |frame: &[u8], offset: usize, stride: usize, pw: usize, ph: usize| {
        (0..ph)
            .flat_map(|row| &frame[offset + row * stride..offset + row * stride + pw])
            .copied()
            .collect::<Vec<u8>>()
    };
    Ok(data
        .chunks_exact(frame_len)
        .map(|frame| {
            i420_sha256(&I420Frame {
                width,
                height,
                y: plane(frame, 0, y_stride, w, h),
                u: plane(frame, u_offset, c_stride, cw, ch),
                v: plane(frame, v_offset, c_stride, cw, ch),
            })
        })
        .collect())
}

/// One line of a stream's `frames.tsv`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Segmented {
    index: u64,
    rtp_timestamp: u32,
    width: u32,
    height: u32,
    sha256: String,
}

/// Every stream's segmented frames, by stream folder name, in frame order.
fn segmented(storage: &Path) -> Result<BTreeMap<String, Vec<Segmented>>> {
    let mut streams = BTreeMap::new();
    let Ok(dirs) = std::fs::read_dir(storage) else {
        return Ok(streams);
    };
    for dir in dirs {
        let dir = dir?;
        let mut lines = Vec::new();
        for file in ["frames.tsv.1", "frames.tsv"] {
            let Ok(text) = std::fs::read_to_string(dir.path().join(file)) else {
                continue;
            };
            for line in text.lines() {
                let f: Vec<&str> = line.split('\t').collect();
                ensure!(f.len() == 5, "bad frames.tsv line {line:?}");
                lines.push(Segmented {
                    index: f[0].parse()?,
                    rtp_timestamp: f[1].parse()?,
                    width: f[2].parse()?,
                    height: f[3].parse()?,
                    sha256: f[4].to_owned(),
                });
            }
        }
        lines.sort_by_key(|s| s.index);
        streams.insert(dir.file_name().to_string_lossy().into_owned(), lines);
    }
    Ok(streams)
}

/// Frames of the streams whose folder name is in `names`, merged in frame order (a stream that
/// was renamed mid-way has two folders).
fn frames_of(all: &BTreeMap<String, Vec<Segmented>>, names: &[&str]) -> Vec<Segmented> {
    let mut frames: Vec<Segmented> = names
        .iter()
        .filter_map(|n| all.get(*n))
        .flatten()
        .cloned()
        .collect();
    frames.sort_by_key(|s| s.index);
    frames
}

/// A worker with frame hashes on, storing under `dir/stored`.
fn start_worker(dir: &ScratchDir, extra: &[String]) -> Result<WorkerProcess> {
    let binary = built_binary("flowcloud-worker", "flowcloud-worker");
    let model = repo_root().join("engines/demo/street-demo.onnx");
    let mut args: Vec<String> = vec![
        "--model".into(),
        model.display().to_string(),
        "--storage-dir".into(),
        dir.join("stored").display().to_string(),
        "--storage-class-maps".into(),
        "off".into(),
        "--storage-frame-hashes".into(),
        "--max-files-per-stream".into(),
        "100000".into(),
        "--log-filter".into(),
        "info".into(),
        // Deep queues: these tests are about every frame arriving bit-exact, not about keeping
        // up in real time on a loaded machine (where the worker rightly drops the oldest).
        "--decode-queue".into(),
        "256".into(),
        "--queue-per-stream".into(),
        "256".into(),
    ];
    args.extend_from_slice(extra);
    let mut worker = WorkerProcess::start(&binary, &dir.join("worker.log"), &args)?;
    worker
        .wait_ready(READY_TIMEOUT)
        .map_err(anyhow::Error::msg)?;
    Ok(worker)
}

/// Waits until the streams named `names` have segmented `count` frames together.
fn wait_segmented(
    worker: &WorkerProcess,
    dir: &ScratchDir,
    names: &[&str],
    count: usize,
) -> Result<Vec<Segmented>> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let frames = frames_of(&segmented(&dir.join("stored"))?, names);
        if frames.len() >= count {
            return Ok(frames);
        }
        if Instant::now() >= deadline {
            bail!(
                "{names:?}: {} of {count} frames segmented after {SETTLE_TIMEOUT:?}; worker log:\n{}",
                frames.len(),
                worker.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The worker's frames must be the reference's `skip..`, in order, bit-exact, at the sender's
/// size, with RTP timestamps one frame apart.
fn assert_same_frames(
    what: &str,
    frames: &[Segmented],
    reference: &[String],
    sender: &Sender,
    skip: usize,
) -> Result<()> {
    ensure!(
        frames.len() == reference.len() - skip,
        "{what}: the worker segmented {} frames, GStreamer decoded {} (skipping {skip})",
        frames.len(),
        reference.len()
    );
    for (i, (got, want)) in frames.iter().zip(&reference[skip..]).enumerate() {
        ensure!(
            (got.width, got.height) == (sender.width, sender.height),
            "{what}: frame {i} is {}x{}, sent {}x{}",
            got.width,
            got.height,
            sender.width,
            sender.height
        );
        ensure!(
            got.sha256 == *want,
            "{what}: frame {} differs from avdec_h264's",
            i + skip
        );
    }
    for pair in frames.windows(2) {
        let step = pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp);
        ensure!(
            step == 90_000 / FPS,
            "{what}: RTP timestamps {pair:?} are not one frame apart"
        );
    }
    Ok(())
}

/// One sender to the worker's media port, RTP first: every frame it sent is segmented, equal
/// to GStreamer's own decode.
///
/// With `replies` the worker sends results back as it does by default. `tcpclientsink` never
/// reads them, so when it closes, its kernel resets the connection and discards what it had
/// not sent yet: the stream's last frame can be lost on the sender's side (Nagle holds the last
/// short packet). That run accepts the last frame missing and nothing else; without replies
/// (`--reply-to-anonymous=false`) every frame must arrive.
fn client_sender(width: u32, height: u32, frames: u32, mtu: u32, replies: bool) -> Result<()> {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !gstreamer::require(ELEMENTS)? {
        return Ok(());
    }
    let dir = ScratchDir::new(&format!("gst-client-{width}x{height}-{mtu}"))?;
    let worker = start_worker(&dir, &[format!("--reply-to-anonymous={replies}")])?;
    let sender = Sender::new(
        width,
        height,
        frames,
        mtu,
        Transport::Client {
            port: worker.media.port(),
        },
    );
    let reference = dir.join("reference.yuv");
    sender.spawn(&reference)?.wait_success(SENDER_TIMEOUT)?;
    let name = sender.anonymous_name();
    let expected = if replies { frames - 1 } else { frames } as usize;
    let got = wait_segmented(&worker, &dir, &[&name], expected)?;
    let mut reference = reference_hashes(&reference, width, height)?;
    ensure!(
        reference.len() == frames as usize,
        "GStreamer decoded {} of {frames} frames",
        reference.len()
    );
    if replies {
        reference.truncate(got.len().max(expected));
        // Per-stream series end with the stream; the end-to-end stage histogram counts every
        // result that went back.
        let returned = worker.metric("flowcloud_stage_seconds_count", &["stage=\"total\""])?;
        ensure!(returned >= 1.0, "no result went back to the sender");
    }
    assert_same_frames(&name, &got, &reference, &sender, 0)?;
    ensure!(
        worker.metric(
            "flowcloud_ingest_events_total",
            &["event=\"anonymous_stream\""]
        )? >= 1.0
    );
    Ok(())
}

#[test]
fn tcpclientsink_without_rtcp_mtu_1400_320x240() -> Result<()> {
    client_sender(320, 240, 45, 1400, true)
}

#[test]
fn tcpclientsink_without_rtcp_mtu_400_odd_size_322x242() -> Result<()> {
    client_sender(322, 242, 45, 400, false)
}

#[test]
fn tcpclientsink_without_rtcp_mtu_9000_640x360() -> Result<()> {
    client_sender(640, 360, 30, 9000, false)
}

#[test]
fn rtpbin_sender_is_renamed_by_its_late_cname() -> Result<()> {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !gstreamer::require(ELEMENTS)? {
        return Ok(());
    }
    let dir = ScratchDir::new("gst-rtpbin")?;
    let worker = start_worker(&dir, &["--reply-to-anonymous=false".into()])?;
    // rtpbin's first RTCP comes 1.25 to 3.75 s in (RFC 3550's randomised first interval over a
    // 5 s minimum): 6 s of video brings it mid-stream.
    const FRAMES: u32 = 6 * FPS;
    let sender = Sender::new(
        352,
        288,
        FRAMES,
        1200,
        Transport::ClientRtpbin {
            port: worker.media.port(),
            cname: "gst-camera",
        },
    );
    let reference = dir.join("reference.yuv");
    let pipeline = sender.spawn(&reference)?;
    let anonymous = sender.anonymous_name();
    let got = wait_segmented(&worker, &dir, &[&anonymous, "gst-camera"], FRAMES as usize)?;
    // The funnel never passes EOS (rtpbin's RTCP pad does not end), so this pipeline does not
    // exit by itself: once its decode branch has written every frame, it is stopped.
    wait_for_file_len(&reference, FRAMES as usize * 352 * 288 * 3 / 2)?;
    drop(pipeline);
    let reference = reference_hashes(&reference, 352, 288)?;
    assert_same_frames("rtpbin sender", &got, &reference, &sender, 0)?;
    let all = segmented(&dir.join("stored"))?;
    let (before, after) = (
        all.get(&anonymous).map_or(0, Vec::len),
        all.get("gst-camera").map_or(0, Vec::len),
    );
    ensure!(
        before > 0 && after > 0,
        "expected frames before and after the CNAME: {before} anonymous, {after} as gst-camera"
    );
    ensure!(
        worker.log().contains("stream renamed"),
        "no rename logged:\n{}",
        worker.log()
    );
    Ok(())
}

#[test]
fn worker_connects_to_a_tcpserversink() -> Result<()> {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !gstreamer::require(ELEMENTS)? {
        return Ok(());
    }
    let dir = ScratchDir::new("gst-server")?;
    let port = gstreamer::free_port()?;
    let config = dir.join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"gst-server\"\nconnect = \"127.0.0.1:{port}\"\n\
             reconnect_ms = 20\nmax_reconnect_ms = 50\n"
        ),
    )?;
    let worker = start_worker(&dir, &["--config".into(), config.display().to_string()])?;
    const FRAMES: u32 = 60;
    let sender = Sender::new(320, 240, FRAMES, 1400, Transport::Server { port });
    let reference = dir.join("reference.yuv");
    sender.spawn(&reference)?.wait_success(SENDER_TIMEOUT)?;
    let reference = reference_hashes(&reference, 320, 240)?;
    // The worker connects within a few tens of ms of the server socket opening, and
    // tcpserversink starts a new client at a keyframe: at most the first group of pictures
    // (15 frames) can pass before it. Every frame from there on must be segmented.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let got = loop {
        let got = frames_of(&segmented(&dir.join("stored"))?, &["gst-server"]);
        let done = got
            .last()
            .is_some_and(|last| reference.last() == Some(&last.sha256));
        if done || Instant::now() >= deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let first = got
        .first()
        .context(format!("nothing segmented; log:\n{}", worker.log()))?;
    let skip = reference
        .iter()
        .position(|h| *h == first.sha256)
        .context("the first frame segmented is not one GStreamer decoded")?;
    ensure!(
        skip % 15 == 0 && skip <= 15,
        "the stream was joined at frame {skip}, not at one of the first two keyframes"
    );
    assert_same_frames("tcpserversink", &got, &reference, &sender, skip)?;
    ensure!(
        worker.metric(
            "flowcloud_ingest_events_total",
            &["event=\"source_connected\""]
        )? >= 1.0
    );
    ensure!(
        worker.metric(
            "flowcloud_ingest_events_total",
            &["event=\"anonymous_stream\""]
        )? == 0.0
    );
    Ok(())
}

fn wait_for_file_len(path: &Path, len: usize) -> Result<()> {
    let deadline = Instant::now() + SENDER_TIMEOUT;
    loop {
        let now = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
        if now >= len {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{}: {now} of {len} bytes after {SENDER_TIMEOUT:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to the sender timeout) until the worker's log satisfies `done`.
fn wait_for_log(worker: &WorkerProcess, done: impl Fn(&str) -> bool) -> Result<()> {
    let deadline = Instant::now() + SENDER_TIMEOUT;
    loop {
        let log = worker.log();
        if done(&log) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the worker's log never showed it:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pipeline: &Pipeline, name: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pipeline.id().to_string()])
        .status()?;
    ensure!(status.success(), "kill -{name} failed");
    Ok(())
}

#[test]
fn failing_senders_are_logged_and_counted_and_others_are_untouched() -> Result<()> {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !gstreamer::require(ELEMENTS)? {
        return Ok(());
    }
    let dir = ScratchDir::new("gst-failing")?;
    let worker = start_worker(
        &dir,
        &[
            "--idle-timeout-ms".into(),
            "1500".into(),
            "--reply-to-anonymous=false".into(),
        ],
    )?;
    let port = worker.media.port();
    const FRAMES: u32 = 75;
    let good = Sender::new(320, 240, FRAMES, 1400, Transport::Client { port });
    // High 4:4:4 Predictive: valid H.264 the worker's decoder does not take.
    let undecodable = Sender {
        format: "Y444",
        ..Sender::new(322, 240, 45, 1400, Transport::Client { port })
    };
    let killed = Sender::new(324, 240, 10 * FPS, 1400, Transport::Client { port });
    let stalled = Sender::new(326, 240, 10 * FPS, 1400, Transport::Client { port });

    let good_reference = dir.join("good.yuv");
    let good_pipeline = good.spawn(&good_reference)?;
    let undecodable_pipeline = undecodable.spawn(&dir.join("undecodable.yuv"))?;
    let mut killed_pipeline = killed.spawn(&dir.join("killed.yuv"))?;
    let stalled_pipeline = stalled.spawn(&dir.join("stalled.yuv"))?;
    // Per-stream series live as long as the stream: read the 4:4:4 stream's while it lasts.
    let resets_of_undecodable = || {
        worker.metric(
            "flowcloud_decoder_resets_total",
            &[&format!("stream=\"{}\"", undecodable.anonymous_name())],
        )
    };
    let deadline = Instant::now() + SENDER_TIMEOUT;
    while resets_of_undecodable()? < 1.0 {
        ensure!(
            Instant::now() < deadline,
            "no decoder reset counted for the 4:4:4 stream"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both the stalled and the killed sender are streaming before they fail.
    for sender in [&stalled, &killed] {
        let name = sender.anonymous_name();
        wait_for_log(&worker, |log| log.contains(&format!("stream={name}")))?;
    }
    signal(&stalled_pipeline, "STOP")?;
    killed_pipeline.kill();
    let killed_name = killed.anonymous_name();
    wait_for_log(&worker, |log| {
        log.lines().any(|l| {
            l.contains(&killed_name)
                && (l.contains("connection ended") || l.contains("sender stopped mid-stream"))
        })
    })?;
    undecodable_pipeline.wait_success(SENDER_TIMEOUT)?;
    good_pipeline.wait_success(SENDER_TIMEOUT)?;

    let name = good.anonymous_name();
    let got = wait_segmented(&worker, &dir, &[&name], FRAMES as usize)?;
    let reference = reference_hashes(&good_reference, 320, 240)?;
    assert_same_frames("the good sender", &got, &reference, &good, 0)?;

    // The stalled one hits the idle timeout; the killed one's connection ends; the 4:4:4 one's
    // frames fail to decode. Each is in the log, by stream name, and in the metrics.
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker.metric("flowcloud_connections_total", &["outcome=\"idle_timeout\""])? < 1.0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&stalled_pipeline, "CONT")?;
    drop(stalled_pipeline);
    let log = worker.log();
    let line_with = |needle: &str, stream: &str| {
        log.lines()
            .any(|l| l.contains(needle) && l.contains(stream))
    };
    ensure!(
        line_with("sender went silent", &stalled.anonymous_name()),
        "no idle-timeout line for the stalled sender:\n{log}"
    );
    ensure!(
        line_with("connection ended", &killed.anonymous_name())
            || line_with("sender stopped mid-stream", &killed.anonymous_name()),
        "no line for the killed sender:\n{log}"
    );
    ensure!(
        line_with("decode failed", &undecodable.anonymous_name()) && line_with("4:4:4", ""),
        "no decode failure logged for the 4:4:4 sender:\n{log}"
    );
    ensure!(worker.metric("flowcloud_connections_total", &["outcome=\"idle_timeout\""])? >= 1.0);
    ensure!(
        worker.metric("flowcloud_connections_total", &["outcome=\"closed\""])?
            + worker.metric(
                "flowcloud_connections_total",
                &["outcome=\"stopped_mid_stream\""]
            )?
            >= 1.0
    );
    let all = segmented(&dir.join("stored"))?;
    ensure!(
        all.get(&undecodable.anonymous_name())
            .is_none_or(Vec::is_empty),
        "the 4:4:4 stream produced frames"
    );
    Ok(())
}
