//! The connection server against simulated cameras and a fake pipeline that answers every
//! access unit with a result: clean streams get every result back; bad clients are rejected
//! with a typed reason and do not disturb the others; senders that skip the handshake are
//! accepted or refused by policy; configured sources are connected to and reconnected.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MediaSender, ReplyReader, framed, handshake, synthetic_au};
use flowcloud_core::h264::{AccessUnit, Loss};
use flowcloud_worker::ingest::identity::AnonymousSenders;
use flowcloud_worker::ingest::server::{
    FrameResult, IngestConfig, IngestCounters, Outbound, ShutdownPhase, StreamInput, Streams, serve,
};
use flowcloud_worker::ingest::sources::{Source, connect_sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

#[derive(Default)]
struct Echo {
    opened: Mutex<Vec<String>>,
    renamed: Mutex<Vec<String>>,
    closed: Mutex<usize>,
    /// Access units that reached a stream, across streams.
    access_units: Arc<std::sync::atomic::AtomicU64>,
    /// Results carry a class map this many pixels square that does not compress (0: none).
    map_side: u16,
}

struct EchoStream {
    outbound: mpsc::Sender<Outbound>,
    access_units: Arc<std::sync::atomic::AtomicU64>,
    map_side: u16,
    renamed: Vec<String>,
}

impl StreamInput for EchoStream {
    fn access_unit(&mut self, au: &AccessUnit<'_>, _received: Instant) {
        self.access_units.fetch_add(1, Ordering::Relaxed);
        let side = self.map_side;
        let class_map = (side > 0).then(|| {
            let classes = (0..u32::from(side) * u32::from(side))
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 19)
                .collect();
            (side, side, classes)
        });
        let result = FrameResult {
            rtp_timestamp: au.rtp_timestamp,
            map_width: 64.max(side),
            map_height: 64.max(side),
            histogram: if side > 0 {
                vec![1; 19]
            } else {
                vec![au.data.len() as u32, 1]
            },
            class_map,
            ..FrameResult::default()
        };
        let _ = self.outbound.try_send(Outbound::Result(result));
    }

    fn loss(&mut self, _loss: &Loss) {
        let _ = self.outbound.try_send(Outbound::KeyframeRequest);
    }

    fn rename(&mut self, name: &str) {
        self.renamed.push(name.to_owned());
    }
}

impl Streams for Echo {
    type Stream = EchoStream;

    fn open(&self, _id: u64, name: &str, outbound: mpsc::Sender<Outbound>) -> EchoStream {
        self.opened.lock().unwrap().push(name.to_owned());
        EchoStream {
            outbound,
            access_units: Arc::clone(&self.access_units),
            map_side: self.map_side,
            renamed: Vec::new(),
        }
    }

    fn stop_input(&self, _stream: &mut EchoStream) {}

    fn close(&self, stream: EchoStream) {
        self.renamed.lock().unwrap().extend(stream.renamed);
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
    start_with(config, Echo::default()).await
}

async fn start_with(config: IngestConfig, echo: Echo) -> Worker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = Arc::new(echo);
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
async fn rtp_before_the_handshake_is_rejected_where_anonymous_senders_are_denied() {
    let worker = start(IngestConfig {
        anonymous: AnonymousSenders::Deny,
        ..quick()
    })
    .await;
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
    // The server closes the stream first and counts the connection after: wait for both.
    let deadline = Instant::now() + Duration::from_secs(3);
    while (*worker.echo.closed.lock().unwrap() == 0
        || worker.counters.open.load(Ordering::Relaxed) != 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*worker.echo.closed.lock().unwrap(), 1);
    assert_eq!(worker.counters.open.load(Ordering::Relaxed), 0);
    assert_eq!(
        worker.counters.stopped_mid_stream.load(Ordering::Relaxed),
        1
    );
    assert_eq!(worker.counters.closed.load(Ordering::Relaxed), 0);
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

/// Reads replies until `results` results arrived (or 10 s passed).
async fn read_results(socket: &mut TcpStream, results: usize) -> ReplyReader {
    let mut reader = ReplyReader::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.replies.results.len() < results && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed with results missing");
        reader.push(&buf[..n]);
    }
    reader
}

#[tokio::test]
async fn an_rtp_first_sender_streams_anonymously_and_a_late_cname_renames_it() {
    let worker = start(quick()).await;
    let good = tokio::spawn(clean_camera(worker.addr, "good", 1, 30));
    let mut gst = TcpStream::connect(worker.addr).await.unwrap();
    let mut sender = MediaSender::new(0x5eed);
    for n in 0..10 {
        gst.write_all(&sender.frame(&synthetic_au(n), n * 3000))
            .await
            .unwrap();
    }
    // rtpbin's first RTCP: SR + SDES for the media SSRC, seconds in.
    gst.write_all(&handshake(0x5eed, "gst-camera"))
        .await
        .unwrap();
    for n in 10..20 {
        gst.write_all(&sender.frame(&synthetic_au(n), n * 3000))
            .await
            .unwrap();
    }
    let reader = read_results(&mut gst, 20).await;
    assert_eq!(reader.replies.results.len(), 20, "a result for every frame");
    drop(gst);
    assert_eq!(good.await.unwrap().replies.results.len(), 30);
    settle(&worker).await;
    let mut opened = worker.echo.opened.lock().unwrap().clone();
    opened.sort();
    assert_eq!(opened, ["anon-127.0.0.1-00005eed", "good"]);
    assert_eq!(*worker.echo.renamed.lock().unwrap(), ["gst-camera"]);
    assert_eq!(worker.counters.anonymous_streams.load(Ordering::Relaxed), 1);
    assert_eq!(
        worker.counters.handshake_failures.load(Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn loopback_policy_accepts_rtp_first_from_loopback() {
    let worker = start(IngestConfig {
        anonymous: AnonymousSenders::Loopback,
        ..quick()
    })
    .await;
    let mut gst = TcpStream::connect(worker.addr).await.unwrap();
    let mut sender = MediaSender::new(7);
    for n in 0..5 {
        gst.write_all(&sender.frame(&synthetic_au(n), n * 3000))
            .await
            .unwrap();
    }
    assert_eq!(read_results(&mut gst, 5).await.replies.results.len(), 5);
}

#[tokio::test]
async fn a_sender_that_never_reads_keeps_streaming_and_only_its_replies_are_dropped() {
    // Results with a 100×100 class map that hardly compresses: over 10 kB each, so the replies
    // overflow every socket buffer long before the media ends.
    let worker = start_with(
        quick(),
        Echo {
            map_side: 100,
            ..Echo::default()
        },
    )
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut gst = socket.connect(worker.addr).await.unwrap();
    let mut sender = MediaSender::new(0x9);
    const FRAMES: u32 = 2000;
    let sent = tokio::time::timeout(Duration::from_secs(20), async {
        for n in 0..FRAMES {
            gst.write_all(&sender.frame(&synthetic_au(n), n * 3000))
                .await
                .unwrap();
            if n % 10 == 9 {
                // Camera pacing: the worker gets to send (or try to send) every result.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    })
    .await;
    assert!(sent.is_ok(), "the worker stopped reading media");
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker.echo.access_units.load(Ordering::Relaxed) < u64::from(FRAMES)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        worker.echo.access_units.load(Ordering::Relaxed),
        u64::from(FRAMES)
    );
    assert!(
        worker.counters.outbound_dropped.load(Ordering::Relaxed) > 0,
        "{:?}",
        worker.counters
    );
    // The worker is still there for others.
    let good = clean_camera(worker.addr, "good", 2, 10).await;
    assert_eq!(good.replies.results.len(), 10);
}

#[tokio::test]
async fn a_configured_source_is_connected_to_and_reconnected_after_it_closes() {
    let echo = Arc::new(Echo::default());
    let counters = Arc::new(IngestCounters::default());
    let (shutdown, phase) = tokio::sync::watch::channel(ShutdownPhase::Running);
    // A camera that serves its stream, like tcpserversink; nothing listens there at first.
    let reserved = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = reserved.local_addr().unwrap();
    drop(reserved);
    let sources = [Source {
        name: "gate".into(),
        address: address.to_string(),
        reconnect: Duration::from_millis(50),
        max_reconnect: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(1),
    }];
    let tasks = connect_sources(&sources, quick(), &echo, &counters, &phase);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(counters.source_connect_failures.load(Ordering::Relaxed) >= 1);
    let server = TcpListener::bind(address).await.unwrap();
    for round in 0..2u32 {
        let (mut camera, _) = tokio::time::timeout(Duration::from_secs(5), server.accept())
            .await
            .unwrap()
            .unwrap();
        let mut sender = MediaSender::new(0x77 + round);
        for n in 0..8 {
            camera
                .write_all(&sender.frame(&synthetic_au(n), n * 3000))
                .await
                .unwrap();
        }
        let reader = read_results(&mut camera, 8).await;
        assert_eq!(reader.replies.results.len(), 8, "round {round}");
    }
    assert_eq!(counters.source_connects.load(Ordering::Relaxed), 2);
    shutdown.send(ShutdownPhase::Done).unwrap();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(*echo.opened.lock().unwrap(), ["gate", "gate"]);
    assert_eq!(counters.anonymous_streams.load(Ordering::Relaxed), 0);
}
