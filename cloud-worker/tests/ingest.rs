//! The connection server against simulated cameras and a fake pipeline that answers every
//! access unit with a result: clean streams get every result back; bad clients are rejected
//! with a typed reason and do not disturb the others.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MediaSender, ReplyReader, framed, handshake, synthetic_au};
use flowcloud_core::h264::{AccessUnit, Loss};
use flowcloud_worker::ingest::server::{
    FrameResult, IngestConfig, IngestCounters, Outbound, ShutdownPhase, StreamInput, Streams, serve,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Default)]
struct Echo {
    opened: Mutex<Vec<String>>,
    closed: Mutex<usize>,
}

struct EchoStream {
    outbound: mpsc::Sender<Outbound>,
}

impl StreamInput for EchoStream {
    fn access_unit(&mut self, au: &AccessUnit<'_>, _received: Instant) {
        let result = FrameResult {
            rtp_timestamp: au.rtp_timestamp,
            map_width: 64,
            map_height: 64,
            histogram: vec![au.data.len() as u32, 1],
            ..FrameResult::default()
        };
        let _ = self.outbound.try_send(Outbound::Result(result));
    }

    fn loss(&mut self, _loss: &Loss) {
        let _ = self.outbound.try_send(Outbound::KeyframeRequest);
    }
}

impl Streams for Echo {
    type Stream = EchoStream;

    fn open(&self, _id: u64, cname: &str, outbound: mpsc::Sender<Outbound>) -> EchoStream {
        self.opened.lock().unwrap().push(cname.to_owned());
        EchoStream { outbound }
    }

    fn stop_input(&self, _stream: &mut EchoStream) {}

    fn close(&self, _stream: EchoStream) {
        *self.closed.lock().unwrap() += 1;
    }
}

struct Worker {
    addr: std::net::SocketAddr,
    echo: Arc<Echo>,
    counters: Arc<IngestCounters>,
    _shutdown: tokio::sync::watch::Sender<ShutdownPhase>,
}

async fn start(config: IngestConfig) -> Worker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = Arc::new(Echo::default());
    let counters = Arc::new(IngestCounters::default());
    let (tx, rx) = tokio::sync::watch::channel(ShutdownPhase::Running);
    tokio::spawn(serve(
        listener,
        config,
        Arc::clone(&echo),
        Arc::clone(&counters),
        rx,
    ));
    Worker {
        addr,
        echo,
        counters,
        _shutdown: tx,
    }
}

fn quick() -> IngestConfig {
    IngestConfig {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        report_interval: Duration::from_millis(100),
        ..IngestConfig::default()
    }
}

/// A clean camera: handshake, `frames` access units, then read until every result is back.
async fn clean_camera(
    addr: std::net::SocketAddr,
    name: &str,
    ssrc: u32,
    frames: u32,
) -> ReplyReader {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(&handshake(ssrc, name)).await.unwrap();
    let mut sender = MediaSender::new(ssrc);
    for n in 0..frames {
        socket
            .write_all(&sender.frame(&synthetic_au(n), n * 3000))
            .await
            .unwrap();
    }
    let mut reader = ReplyReader::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.replies.results.len() < frames as usize && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "worker closed a clean connection");
        reader.push(&buf[..n]);
    }
    reader
}

/// Waits until the server has finished with every connection: outcomes counted, streams
/// released (`open` reaches 0 only after both).
async fn settle(worker: &Worker) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker.counters.open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_closed(socket: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the worker did not close the connection"),
        }
    }
}

#[tokio::test]
async fn eight_cameras_get_every_result_back() {
    let worker = start(quick()).await;
    let cameras = (0..8u32).map(|i| {
        let addr = worker.addr;
        tokio::spawn(async move { clean_camera(addr, &format!("cam-{i}"), 0x1000 + i, 50).await })
    });
    for (i, camera) in cameras.enumerate() {
        let reader = camera.await.unwrap();
        let timestamps: Vec<u32> = reader.replies.results.iter().map(|r| r.0).collect();
        assert_eq!(
            timestamps,
            (0..50).map(|n| n * 3000).collect::<Vec<_>>(),
            "camera {i}"
        );
        let expected_len = synthetic_au(0).len() as u32;
        assert!(
            reader
                .replies
                .results
                .iter()
                .all(|r| r.1 == [expected_len, 1])
        );
    }
    let mut names = worker.echo.opened.lock().unwrap().clone();
    names.sort();
    assert_eq!(
        names,
        (0..8).map(|i| format!("cam-{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn rtp_before_the_handshake_is_rejected_and_others_are_untouched() {
    let worker = start(quick()).await;
    let good = tokio::spawn(clean_camera(worker.addr, "good", 1, 30));
    let mut bad = TcpStream::connect(worker.addr).await.unwrap();
    bad.write_all(&MediaSender::new(2).frame(&synthetic_au(0), 0))
        .await
        .unwrap();
    wait_closed(&mut bad).await;
    settle(&worker).await;
    assert_eq!(good.await.unwrap().replies.results.len(), 30);
    assert_eq!(
        worker.counters.handshake_failures.load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn garbage_bytes_are_rejected() {
    let worker = start(quick()).await;
    let mut bad = TcpStream::connect(worker.addr).await.unwrap();
    bad.write_all(&framed(b"\x80\xc8garbage that is not RTCP"))
        .await
        .unwrap();
    wait_closed(&mut bad).await;
    settle(&worker).await;
    assert_eq!(
        worker.counters.handshake_failures.load(Ordering::Relaxed),
        1
    );
    assert!(worker.echo.opened.lock().unwrap().is_empty());
    assert_eq!(worker.counters.handshake_invalid.load(Ordering::Relaxed), 1);
    assert_eq!(
        worker.counters.handshake_timeouts.load(Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_silent_client_hits_the_handshake_deadline() {
    let worker = start(quick()).await;
    let mut silent = TcpStream::connect(worker.addr).await.unwrap();
    let waited = wait_closed(&mut silent).await;
    settle(&worker).await;
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        worker.counters.handshake_failures.load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        worker.counters.handshake_timeouts.load(Ordering::Relaxed),
        1
    );
    assert_eq!(worker.counters.handshake_invalid.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_one_byte_per_tick_client_cannot_hold_the_handshake_open() {
    let worker = start(quick()).await;
    let mut slow = TcpStream::connect(worker.addr).await.unwrap();
    let bytes = handshake(5, "slow");
    let start = Instant::now();
    for b in &bytes {
        if slow.write_all(std::slice::from_ref(b)).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if start.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    wait_closed(&mut slow).await;
    settle(&worker).await;
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(
        worker.counters.handshake_failures.load(Ordering::Relaxed),
        1
    );
    assert!(worker.echo.opened.lock().unwrap().is_empty());
}

#[tokio::test]
async fn idle_cameras_are_closed_and_their_stream_released() {
    let worker = start(quick()).await;
    let mut camera = TcpStream::connect(worker.addr).await.unwrap();
    camera.write_all(&handshake(9, "idle")).await.unwrap();
    let waited = wait_closed(&mut camera).await;
    settle(&worker).await;
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(worker.counters.idle_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(*worker.echo.closed.lock().unwrap(), 1);
}

#[tokio::test]
async fn disconnecting_mid_access_unit_releases_the_stream() {
    let worker = start(quick()).await;
    let mut camera = TcpStream::connect(worker.addr).await.unwrap();
    camera.write_all(&handshake(9, "cut")).await.unwrap();
    let media = MediaSender::new(9).frame(&synthetic_au(0), 0);
    camera.write_all(&media[..media.len() / 2]).await.unwrap();
    drop(camera);
    let deadline = Instant::now() + Duration::from_secs(3);
    while *worker.echo.closed.lock().unwrap() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*worker.echo.closed.lock().unwrap(), 1);
    assert_eq!(worker.counters.open.load(Ordering::Relaxed), 0);
    assert_eq!(worker.counters.closed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused() {
    let worker = start(IngestConfig {
        max_connections: 2,
        ..quick()
    })
    .await;
    let mut a = TcpStream::connect(worker.addr).await.unwrap();
    a.write_all(&handshake(1, "a")).await.unwrap();
    let mut b = TcpStream::connect(worker.addr).await.unwrap();
    b.write_all(&handshake(2, "b")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = TcpStream::connect(worker.addr).await.unwrap();
    let waited = wait_closed(&mut c).await;
    assert!(
        waited < Duration::from_millis(250),
        "refused at once, not by timeout: {waited:?}"
    );
    assert_eq!(worker.counters.rejected_cap.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn receiver_reports_flow_back() {
    let worker = start(quick()).await;
    let mut socket = TcpStream::connect(worker.addr).await.unwrap();
    socket.write_all(&handshake(3, "rr")).await.unwrap();
    let mut reader = ReplyReader::new();
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(450);
    while Instant::now() < deadline {
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(50), socket.read(&mut buf)).await
        {
            reader.push(&buf[..n]);
        }
    }
    assert!(reader.replies.receiver_reports >= 2, "{:?}", reader.replies);
}
