//! Memory stays flat under load: eight cameras stream 10 000 frames in all through the real
//! worker, and the process's resident set after 10 000 frames is within 10% of what it was
//! after 1 000 (drops under load are allowed; growth is not). Alone in its test binary so
//! nothing else moves the resident set.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::video::{RunningWorker, encode_clip};
use common::{MediaSender, ReplyReader, handshake};
use flowcloud_worker::ingest::server::IngestConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CAMERAS: u32 = 8;
const TOTAL_FRAMES: u64 = 10_000;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_is_flat_from_1000_to_10000_frames() {
    let worker = RunningWorker::start(IngestConfig::default()).await;
    let pipeline = Arc::clone(&worker.pipeline);
    let stop = Arc::new(AtomicBool::new(false));
    let cameras: Vec<_> = (0..CAMERAS)
        .map(|c| {
            let (addr, stop) = (worker.addr, Arc::clone(&stop));
            let clip = encode_clip(c, 24, 12);
            tokio::spawn(async move {
                let ssrc = 0x700 + c;
                let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
                wr.write_all(&handshake(ssrc, &format!("load-{c}")))
                    .await
                    .unwrap();
                // Results must be read, or the worker's outbound queue for us fills and drops.
                let reader = tokio::spawn(async move {
                    let mut replies = ReplyReader::new();
                    let mut buf = vec![0u8; 65536];
                    let mut results = 0;
                    while let Ok(n) = rd.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        replies.push(&buf[..n]);
                        // Count and forget: keeping them would grow this very process.
                        results += replies.replies.results.len();
                        replies.replies.results.clear();
                        replies.replies.class_maps.clear();
                    }
                    results
                });
                let mut sender = MediaSender::new(ssrc);
                let mut tick = tokio::time::interval(Duration::from_millis(8));
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let au = &clip[n as usize % clip.len()];
                    wr.write_all(&sender.frame(au, n.wrapping_mul(3000)))
                        .await
                        .unwrap();
                    n += 1;
                }
                drop(wr);
                (n, reader)
            })
        })
        .collect();

    let received =
        |p: &flowcloud_worker::pipeline::Pipeline| p.counters().received.load(Ordering::Relaxed);
    let wait_for = |target: u64| {
        let pipeline = Arc::clone(&pipeline);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while received(&pipeline) < target {
                assert!(
                    std::time::Instant::now() < deadline,
                    "stalled at {}",
                    received(&pipeline)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(1_000).await;
    let at_1000 = resident_bytes();
    wait_for(TOTAL_FRAMES).await;
    let at_10000 = resident_bytes();
    stop.store(true, Ordering::Relaxed);
    let mut returned_to_cameras = 0;
    for camera in cameras {
        let (_, reader) = camera.await.unwrap();
        worker_results(&mut returned_to_cameras, reader).await;
    }
    let c = pipeline.counters();
    eprintln!(
        "RSS {:.1} MiB at 1000 frames, {:.1} MiB at 10000; inferred {}, results read {returned_to_cameras}",
        at_1000 as f64 / 1048576.0,
        at_10000 as f64 / 1048576.0,
        c.inferred.load(Ordering::Relaxed),
    );
    worker.stop().await;
    assert!(
        c.inferred.load(Ordering::Relaxed) >= 5_000,
        "most frames went through inference"
    );
    assert!(
        at_10000 as f64 <= at_1000 as f64 * 1.10,
        "resident set grew from {at_1000} to {at_10000} bytes"
    );
}

async fn worker_results(total: &mut usize, reader: tokio::task::JoinHandle<usize>) {
    // The worker closes connections on shutdown; until then a reader may still be waiting.
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), reader).await {
        *total += n;
    }
}
