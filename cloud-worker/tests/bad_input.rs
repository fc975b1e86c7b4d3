//! Bad input against the real worker: garbage, a client that never sends SDES, one that sends
//! a byte per second, one that disconnects inside an access unit, an SPS announcing
//! 16384×16384, and a stream with a FU-A gap. Each is rejected with a typed reason or recovers
//! at the next IDR, and the clean cameras streaming at the same time keep the frame rate they
//! have without them (within 5%).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::video::{RunningWorker, encode_clip};
use common::{MediaSender, ReplyReader, framed, handshake};
use flowcloud_core::h264::annexb;
use flowcloud_worker::ingest::identity::AnonymousSenders;
use flowcloud_worker::ingest::server::IngestConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GOOD: u32 = 4;
const FRAMES: u32 = 48;
const KEYFRAME_INTERVAL: u32 = 12;
const FRAME_INTERVAL: Duration = Duration::from_millis(40);

fn ingest() -> IngestConfig {
    IngestConfig {
        handshake_timeout: Duration::from_secs(1),
        // Every sender must identify itself here, so RTP first is a rejected client.
        anonymous: AnonymousSenders::Deny,
        ..IngestConfig::default()
    }
}

/// What a camera got back: the frames with results, when the first and last arrived, PLIs.
struct Outcome {
    frames: BTreeSet<u32>,
    span: Duration,
    plis: usize,
}

/// Streams `packets[n]` (framed RTP of frame n, each packet separate) at the frame interval
/// after a handshake, and collects results until `expect` of them arrived or none come for 3 s.
async fn stream(
    addr: std::net::SocketAddr,
    ssrc: u32,
    packets: Vec<Vec<Vec<u8>>>,
    expect: usize,
) -> Outcome {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(&handshake(ssrc, &format!("camera-{ssrc:x}")))
        .await
        .unwrap();
    let (mut rd, mut wr) = socket.into_split();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(FRAME_INTERVAL);
        for frame in packets {
            tick.tick().await;
            wr.write_all(&frame.concat()).await.unwrap();
        }
        wr
    });
    let mut reader = ReplyReader::new();
    let (mut first, mut last) = (None, None);
    let mut buf = vec![0u8; 65536];
    while reader.replies.results.len() < expect {
        match tokio::time::timeout(Duration::from_secs(3), rd.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                let before = reader.replies.results.len();
                reader.push(&buf[..n]);
                if reader.replies.results.len() > before {
                    first.get_or_insert_with(Instant::now);
                    last = Some(Instant::now());
                }
            }
            _ => break,
        }
    }
    drop(sender.await.unwrap());
    Outcome {
        frames: reader
            .replies
            .results
            .iter()
            .map(|(ts, _)| ts / 3000)
            .collect(),
        span: last.zip(first).map_or(Duration::ZERO, |(l, f)| l - f),
        plis: reader.replies.plis,
    }
}

fn packetized(clip: &[Vec<u8>], sender: &mut MediaSender) -> Vec<Vec<Vec<u8>>> {
    clip.iter()
        .enumerate()
        .map(|(n, au)| sender.packets(au, n as u32 * 3000))
        .collect()
}

async fn good_cameras(addr: std::net::SocketAddr, clips: &[Vec<Vec<u8>>]) -> Vec<Outcome> {
    let tasks: Vec<_> = clips
        .iter()
        .enumerate()
        .map(|(i, clip)| {
            let ssrc = 0x100 + i as u32;
            let packets = packetized(clip, &mut MediaSender::new(ssrc));
            tokio::spawn(stream(addr, ssrc, packets, FRAMES as usize))
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Connects, sends `bytes` (optionally one per `pace`), and returns how long until the
/// worker closed the connection.
async fn bad_client(
    addr: std::net::SocketAddr,
    bytes: Vec<u8>,
    pace: Option<Duration>,
) -> Duration {
    let start = Instant::now();
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        match pace {
            None => {
                let _ = wr.write_all(&bytes).await;
            }
            Some(pace) => {
                for b in bytes {
                    if wr.write_all(&[b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(pace).await;
                }
            }
        }
        wr
    });
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the worker kept a bad connection open"),
        }
    };
    writer.abort();
    closed
}

/// Exp-Golomb and bit writing for a hand-made SPS.
struct Bits(Vec<u8>, u32);

impl Bits {
    fn bit(&mut self, b: bool) {
        if self.1.is_multiple_of(8) {
            self.0.push(0);
        }
        if b {
            *self.0.last_mut().unwrap() |= 0x80 >> (self.1 % 8);
        }
        self.1 += 1;
    }
    fn bits(&mut self, v: u32, n: u32) {
        (0..n).rev().for_each(|i| self.bit(v >> i & 1 == 1));
    }
    fn ue(&mut self, v: u32) {
        let n = 32 - (v + 1).leading_zeros();
        self.bits(0, n - 1);
        self.bits(v + 1, n);
    }
}

/// A baseline SPS announcing 16384×16384 (1024×1024 macroblocks), emulation-prevented.
fn huge_sps() -> Vec<u8> {
    let mut b = Bits(vec![], 0);
    b.bits(66, 8);
    b.bits(0xc0, 8);
    b.bits(51, 8);
    b.ue(0); // seq_parameter_set_id
    b.ue(0); // log2_max_frame_num_minus4
    b.ue(2); // pic_order_cnt_type
    b.ue(1); // max_num_ref_frames
    b.bit(false); // gaps
    b.ue(1023); // pic_width_in_mbs_minus1
    b.ue(1023); // pic_height_in_map_units_minus1
    b.bit(true); // frame_mbs_only
    b.bit(true); // direct_8x8_inference
    b.bit(false); // cropping
    b.bit(false); // vui
    b.bit(true); // rbsp stop bit
    let mut nal = vec![0x67];
    let mut zeros = 0;
    for byte in b.0 {
        if zeros >= 2 && byte <= 3 {
            nal.push(3);
            zeros = 0;
        }
        nal.push(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    nal
}

/// The access unit with its SPS replaced.
fn with_sps(au: &[u8], sps: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in annexb::nal_units(au).unwrap() {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(if nal[0] & 0x1f == 7 { sps } else { nal });
    }
    out
}

fn range(r: std::ops::Range<u32>) -> BTreeSet<u32> {
    r.collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_are_rejected_or_recover_and_do_not_slow_the_others() {
    let clips: Vec<Vec<Vec<u8>>> = (0..GOOD)
        .map(|c| encode_clip(c, FRAMES, KEYFRAME_INTERVAL))
        .collect();

    // Clean run: the good cameras alone.
    let worker = RunningWorker::start(ingest()).await;
    let clean = good_cameras(worker.addr, &clips).await;
    worker.stop().await;

    // The same cameras with every kind of bad client alongside.
    let worker = RunningWorker::start(ingest()).await;
    let addr = worker.addr;
    let garbage = tokio::spawn(bad_client(
        addr,
        framed(b"\x80\xc8 definitely not RTCP"),
        None,
    ));
    let no_sdes = {
        let rtp = MediaSender::new(0xbad).frame(&clips[0][0], 0);
        tokio::spawn(bad_client(addr, rtp, None))
    };
    let trickle = tokio::spawn(bad_client(
        addr,
        handshake(0x51, "trickle"),
        Some(Duration::from_millis(1000)),
    ));
    let cut = {
        let mut bytes = handshake(0x52, "cut");
        let au = MediaSender::new(0x52).frame(&clips[0][0], 0);
        bytes.extend_from_slice(&au[..au.len() / 2]);
        tokio::spawn(async move {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            socket.write_all(&bytes).await.unwrap();
            // Disconnects here, inside the access unit.
        })
    };
    // An SPS announcing 16384×16384 in place of the IDR's at frame 12: lost until frame 24.
    let huge = {
        let mut clip = encode_clip(9, FRAMES, KEYFRAME_INTERVAL);
        clip[12] = with_sps(&clip[12], &huge_sps());
        let packets = packetized(&clip, &mut MediaSender::new(0x53));
        tokio::spawn(stream(addr, 0x53, packets, (FRAMES - 12) as usize))
    };
    // A FU-A gap inside frame 6 (payload budget 300 fragments every frame): lost until 12.
    let gap = {
        let clip = encode_clip(10, FRAMES, KEYFRAME_INTERVAL);
        let mut packets = packetized(&clip, &mut MediaSender::with_budget(0x54, 300));
        assert!(packets[6].len() >= 3, "frame 6 must be fragmented");
        packets[6].remove(1);
        tokio::spawn(stream(addr, 0x54, packets, (FRAMES - 6) as usize))
    };
    let busy = good_cameras(addr, &clips).await;

    let garbage = garbage.await.unwrap();
    let no_sdes = no_sdes.await.unwrap();
    let trickle = trickle.await.unwrap();
    cut.await.unwrap();
    let (huge, gap) = (huge.await.unwrap(), gap.await.unwrap());
    let handshake_failures = worker.counters.handshake_failures.load(Ordering::Relaxed);
    let pipeline = Arc::clone(&worker.pipeline);
    worker.stop().await;

    // Rejected quickly, and the trickling client at the handshake deadline.
    assert!(garbage < Duration::from_secs(1), "{garbage:?}");
    assert!(no_sdes < Duration::from_secs(1), "{no_sdes:?}");
    assert!(
        trickle >= Duration::from_millis(900) && trickle < Duration::from_secs(3),
        "{trickle:?}"
    );
    assert_eq!(handshake_failures, 3, "garbage, no SDES, trickle");

    // Recovered at the next IDR, after asking for one.
    assert_eq!(
        huge.frames,
        &range(0..12) | &range(24..FRAMES),
        "huge SPS camera"
    );
    assert!(huge.plis >= 1);
    assert_eq!(
        gap.frames,
        &range(0..6) | &range(12..FRAMES),
        "FU-A gap camera"
    );
    assert!(gap.plis >= 1);
    assert!(
        pipeline
            .counters()
            .dropped_waiting_for_keyframe
            .load(Ordering::Relaxed)
            >= 6
    );

    // The good cameras lost nothing and kept their rate.
    for (i, (c, b)) in clean.iter().zip(&busy).enumerate() {
        assert_eq!(c.frames, range(0..FRAMES), "camera {i}, clean run");
        assert_eq!(b.frames, range(0..FRAMES), "camera {i}, with bad clients");
        let (c_fps, b_fps) = (
            f64::from(FRAMES - 1) / c.span.as_secs_f64(),
            f64::from(FRAMES - 1) / b.span.as_secs_f64(),
        );
        eprintln!("camera {i}: {c_fps:.2} fps clean, {b_fps:.2} fps with bad clients");
        assert!(
            (b_fps - c_fps).abs() <= 0.05 * c_fps,
            "camera {i}: {b_fps:.2} vs {c_fps:.2} fps"
        );
    }
}
