//! The sender against a scripted worker on loopback: reconnects, congestion, PLI, RTT and
//! results.

mod common;

use std::time::{Duration, Instant};

use common::{
    Camera, Command, DECODE_US, INFER_US, POST_US, Script, ScriptedReceiver, test_config,
};
use flowcloud_edge::sender::{DropReason, KeyframeCause, SenderEvent, Submitted};

const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;

#[test]
fn reconnects_after_the_worker_restarts_and_resumes_with_sps_pps_idr() {
    let first = ScriptedReceiver::start("127.0.0.1:0".parse().unwrap(), Script::default());
    let addr = first.addr;
    let mut camera = Camera::new(test_config(addr), 160, 120, 300_000);
    for _ in 0..40 {
        camera.step(Duration::from_millis(3));
    }
    assert!(camera.poll_until(Duration::from_secs(5), |_| first.units() >= 20));
    let before = first.kill();
    assert_eq!(before.len(), 1);
    assert!(before[0].errors.is_empty(), "{:?}", before[0].errors);

    // The worker is gone: the camera notices, keeps capturing and retries with backoff.
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(400) {
        camera.step(Duration::from_millis(5));
    }
    assert!(
        camera
            .events
            .events
            .iter()
            .any(|e| matches!(e, SenderEvent::Disconnected { .. })),
        "{:?}",
        camera.events.events
    );
    let failures = camera.sender.stats().connect_failures;
    assert!(
        failures >= 1,
        "retries while the worker is down: {failures}"
    );

    let second = ScriptedReceiver::start(addr, Script::default());
    let mut steps = 0;
    while second.units() < 15 && steps < 2000 {
        camera.step(Duration::from_millis(3));
        steps += 1;
    }
    let after = second.kill();
    let connection = &after[0];
    assert!(connection.errors.is_empty(), "{:?}", connection.errors);
    assert_eq!(connection.losses, 0);
    // SR then SDES with the CNAME, before any media.
    assert_eq!(connection.first_packet_types, [200, 202]);
    assert_eq!(connection.cname.as_deref(), Some("cam-test"));
    let first_unit = &connection.units[0];
    assert!(
        first_unit.keyframe,
        "first unit after reconnect: {first_unit:?}"
    );
    assert_eq!(&first_unit.nal_types[..3], &[SPS, PPS, IDR]);
    let stats = camera.sender.stats();
    assert_eq!(stats.connects, 2);
    assert!(stats.disconnects >= 1);
    assert!(stats.dropped_not_connected > 0);
}

#[test]
fn a_worker_that_stops_reading_makes_the_sender_drop_to_the_next_idr() {
    let receiver = ScriptedReceiver::start(
        "127.0.0.1:0".parse().unwrap(),
        Script {
            results: false,
            receive_buffer: Some(16 * 1024),
            ..Script::default()
        },
    );
    let mut config = test_config(receiver.addr);
    config.queue_bytes = 256 * 1024;
    config.queue_frames = 30;
    // Big frames (noise-heavy pattern at a high bitrate) fill the socket buffers quickly.
    let mut camera = Camera::new(config, 640, 480, 40_000_000);
    assert!(camera.poll_until(Duration::from_secs(5), |c| c.sender.is_connected()));
    for _ in 0..10 {
        camera.step(Duration::from_millis(1));
    }
    assert!(camera.poll_until(Duration::from_secs(5), |_| receiver.units() >= 10));

    receiver.command(Command::Read(false));
    let mut steps = 0;
    while camera.sender.stats().dropped_queue_full < 5 && steps < 3000 {
        camera.step(Duration::ZERO);
        steps += 1;
    }
    let stats = camera.sender.stats();
    assert!(
        stats.dropped_queue_full >= 5,
        "no back-pressure after {steps} frames: {stats:?}"
    );
    assert!(stats.queue_high_water <= 256 * 1024, "{stats:?}");
    assert!(
        camera
            .events
            .events
            .contains(&SenderEvent::KeyframeRequested {
                cause: KeyframeCause::Congestion
            })
    );

    receiver.command(Command::Read(true));
    for _ in 0..60 {
        camera.step(Duration::from_millis(2));
    }
    assert!(
        camera
            .sender
            .flush(Duration::from_secs(10), &mut camera.events)
            .unwrap()
    );
    // Frames an IDR displaced from the queue were accepted but never sent: count what went out.
    let sent = camera.sender.stats().frames_sent as usize;
    assert_eq!(
        sent as u64 + camera.sender.stats().frames_dropped(),
        camera.sender.stats().frames_submitted
    );
    let all_arrived = camera.poll_until(Duration::from_secs(10), |_| receiver.units() >= sent);
    assert!(
        all_arrived,
        "{} of {sent} frames arrived; {:?}; {:?}",
        receiver.units(),
        camera.sender.stats(),
        receiver
            .log()
            .iter()
            .map(|c| (c.losses, c.errors.clone()))
            .collect::<Vec<_>>()
    );

    let log = receiver.kill();
    let connection = &log[0];
    assert!(connection.errors.is_empty(), "{:?}", connection.errors);
    assert_eq!(
        connection.losses, 0,
        "no sequence gaps: dropped frames were never sent"
    );
    let received: std::collections::HashSet<u32> =
        connection.units.iter().map(|u| u.rtp_timestamp).collect();
    assert_eq!(received.len(), sent);
    // No P-frame goes out after a frame it depends on was dropped.
    for pair in camera.submitted.windows(2) {
        let (previous, frame) = (pair[0], pair[1]);
        if received.contains(&frame.rtp_timestamp) && !frame.keyframe {
            assert!(
                received.contains(&previous.rtp_timestamp),
                "P-frame {} sent after dropped frame {}",
                frame.rtp_timestamp,
                previous.rtp_timestamp
            );
        }
    }
    // Drops happened, and streaming resumed with an IDR.
    let dropped = camera
        .submitted
        .iter()
        .position(|f| f.outcome == Submitted::Dropped(DropReason::QueueFull))
        .unwrap();
    let resumed = camera.submitted[dropped..]
        .iter()
        .find(|f| f.outcome == Submitted::Queued)
        .unwrap();
    assert!(resumed.keyframe);
    // A stream that resumed carries on: frames after the recovery arrived.
    assert!(received.contains(&camera.submitted.last().unwrap().rtp_timestamp));
}

#[test]
fn a_pli_produces_an_idr_on_the_next_frame_and_bursts_are_rate_limited() {
    let receiver = ScriptedReceiver::start("127.0.0.1:0".parse().unwrap(), Script::default());
    let mut config = test_config(receiver.addr);
    config.keyframe_request_interval = Duration::from_millis(500);
    let mut camera = Camera::new(config, 160, 120, 300_000);
    for _ in 0..20 {
        camera.step(Duration::from_millis(3));
    }
    assert!(camera.poll_until(Duration::from_secs(5), |_| receiver.units() >= 15));
    let keyframes_before = camera.submitted.iter().filter(|f| f.keyframe).count();
    let requests_before = camera.sender.stats().keyframe_requests;

    // Three PLIs for one loss, as a worker may send them.
    for _ in 0..3 {
        receiver.command(Command::Pli);
    }
    assert!(camera.poll_until(Duration::from_secs(5), |c| c.sender.stats().plis == 3));
    let frame = camera.step(Duration::ZERO);
    assert!(frame.keyframe, "the frame after a PLI is an IDR");
    for _ in 0..10 {
        assert!(!camera.step(Duration::from_millis(2)).keyframe);
    }
    assert_eq!(camera.sender.stats().keyframe_requests, requests_before + 1);
    assert_eq!(
        camera.submitted.iter().filter(|f| f.keyframe).count(),
        keyframes_before + 1
    );
    assert!(
        camera
            .events
            .events
            .contains(&SenderEvent::KeyframeRequested {
                cause: KeyframeCause::PictureLoss
            })
    );
}

#[test]
fn results_come_back_with_their_capture_time_and_latency_split() {
    let receiver = ScriptedReceiver::start("127.0.0.1:0".parse().unwrap(), Script::default());
    let mut camera = Camera::new(test_config(receiver.addr), 160, 120, 300_000);
    assert!(camera.poll_until(Duration::from_secs(5), |c| c.sender.is_connected()));
    for _ in 0..30 {
        camera.step(Duration::from_millis(3));
    }
    let queued = camera
        .submitted
        .iter()
        .filter(|f| f.outcome == Submitted::Queued)
        .count();
    assert!(camera.poll_until(Duration::from_secs(5), |c| c.events.results.len() >= queued));
    assert_eq!(camera.sender.stats().unmatched_results, 0);
    let worker = Duration::from_micros(u64::from(DECODE_US + INFER_US + POST_US));
    for (rtp_timestamp, captured_at, latency) in &camera.events.results {
        assert!(
            camera
                .submitted
                .iter()
                .any(|f| f.rtp_timestamp == *rtp_timestamp && f.outcome == Submitted::Queued)
        );
        let captured_at = captured_at.expect("frame still in the timeline");
        let split = latency.expect("latency split");
        assert_eq!(split.worker, worker);
        assert!(split.total <= captured_at.elapsed());
        // The parts never add up to more than the whole (the rest is capture→submit time).
        assert!(split.send_queue + split.worker + split.network <= split.total);
        assert!(split.encode <= split.total);
    }
}

#[test]
fn a_worker_that_is_not_there_is_retried_with_growing_delays() {
    // Bind and drop a listener to get a port with nothing behind it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut camera = Camera::new(test_config(addr), 160, 120, 300_000);
    assert!(camera.poll_until(
        Duration::from_secs(3),
        |c| c.sender.stats().connect_failures >= 4
    ));
    let delays: Vec<Duration> = camera
        .events
        .events
        .iter()
        .filter_map(|e| match e {
            SenderEvent::ConnectFailed { retry_in, .. } => Some(*retry_in),
            _ => None,
        })
        .collect();
    // Steps of 20, 40, 80, 160 ms, each delay in the upper half of its step.
    for (delay, step) in delays.iter().zip([20u64, 40, 80, 160]) {
        assert!(
            *delay >= Duration::from_millis(step / 2) && *delay <= Duration::from_millis(step),
            "{delays:?}"
        );
    }
    assert_eq!(
        camera.step(Duration::ZERO).outcome,
        Submitted::Dropped(DropReason::NotConnected)
    );
}

#[test]
fn frames_captured_before_the_sender_existed_keep_distinct_timestamps() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let first = Instant::now();
    std::thread::sleep(Duration::from_millis(5));
    let second = Instant::now();
    std::thread::sleep(Duration::from_millis(5));
    let sender = flowcloud_edge::sender::Sender::new(test_config(addr)).unwrap();
    let after = Instant::now() + Duration::from_millis(5);
    let ts = |at| sender.rtp_timestamp(at);
    // 90 kHz: the gaps between the instants, give or take a tick of rounding.
    let gap = |a: u32, b: u32, d: Duration| {
        let expected = (d.as_secs_f64() * 90_000.0) as i64;
        (i64::from(b.wrapping_sub(a)) - expected).abs() <= 1
    };
    assert!(gap(ts(first), ts(second), second - first));
    assert!(gap(ts(second), ts(after), after - second));
}

#[test]
fn a_waker_ends_a_poll_waiting_on_another_thread() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = test_config(addr);
    config.reconnect_initial = Duration::from_secs(10);
    config.reconnect_max = Duration::from_secs(10);
    config.report_interval = Duration::from_secs(10);
    let mut sender = flowcloud_edge::sender::Sender::new(config).unwrap();
    // The first connect fails at once; then the sender waits at least 5 s to retry.
    let mut events = common::Recorder::default();
    while sender.stats().connect_failures == 0 {
        sender
            .poll(Some(Duration::from_millis(10)), &mut events)
            .unwrap();
    }
    let waker = sender.waker().unwrap();
    let polling = std::thread::spawn(move || {
        let started = Instant::now();
        sender.poll(None, &mut common::Recorder::default()).unwrap();
        started.elapsed()
    });
    std::thread::sleep(Duration::from_millis(50));
    waker.wake().unwrap();
    let waited = polling.join().unwrap();
    assert!(waited < Duration::from_secs(2), "woken after {waited:?}");
}
