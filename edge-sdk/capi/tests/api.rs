//! The C ABI called as C would call it: every export with NULL and bogus handles, NULL and
//! malformed buffers, after stop and after free, from inside a callback; and a pushed stream
//! end to end against the stand-in worker, results checked field by field.

mod common;

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::worker::{
    CLASS_MAP_HEIGHT, CLASS_MAP_WIDTH, CLASSES, DECODE_US, StandInWorker, WorkerOptions,
    dominant_class,
};
use common::{Seen, config, new_sender, recording_config, stats, test_access_units, wait_for};
use flowcloud_edge::{
    fc_camera_config, fc_camera_config_default, fc_event, fc_event_kind, fc_frame_result,
    fc_result, fc_sender, fc_sender_config, fc_sender_config_default, fc_sender_free,
    fc_sender_new, fc_sender_push_au, fc_sender_start_camera, fc_sender_stats, fc_sender_stop,
    fc_sender_take_keyframe_request, fc_stats, fc_version,
};

fn start_worker(options: WorkerOptions) -> StandInWorker {
    let addr = "127.0.0.1:0".parse().expect("an address");
    StandInWorker::start(addr, options).expect("the stand-in worker starts")
}

fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn push(sender: *mut fc_sender, data: &[u8], capture_time_ns: u64, keyframe: bool) -> fc_result {
    // SAFETY: `data` is `data.len()` readable bytes.
    unsafe { fc_sender_push_au(sender, data.as_ptr(), data.len(), capture_time_ns, keyframe) }
}

fn take_keyframe_request(sender: *mut fc_sender) -> Result<bool, fc_result> {
    let mut requested = false;
    // SAFETY: `requested` is writable.
    match unsafe { fc_sender_take_keyframe_request(sender, &mut requested) } {
        fc_result::Ok => Ok(requested),
        e => Err(e),
    }
}

fn camera_config() -> fc_camera_config {
    let mut raw = MaybeUninit::<fc_camera_config>::uninit();
    // SAFETY: writable for one config.
    let result = unsafe { fc_camera_config_default(raw.as_mut_ptr()) };
    assert_eq!(result, fc_result::Ok);
    // SAFETY: initialized above.
    unsafe { raw.assume_init() }
}

#[test]
fn defaults_null_outputs_and_version() {
    // SAFETY: NULL outputs are the point; nothing is written.
    unsafe {
        assert_eq!(
            fc_sender_config_default(null_mut()),
            fc_result::NullArgument
        );
        assert_eq!(
            fc_camera_config_default(null_mut()),
            fc_result::NullArgument
        );
    }
    let c = config("127.0.0.1:5004").config;
    assert_eq!(c.max_access_unit_bytes, 1 << 20);
    assert_eq!(c.handoff_slots, 4);
    assert_eq!(c.payload_budget, 1400);
    assert!(c.on_result.is_none() && c.on_event.is_none() && c.userdata.is_null());
    let cam = camera_config();
    assert_eq!((cam.width, cam.height, cam.fps), (1280, 720, 30));
    // SAFETY: fc_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(fc_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn bad_configs_are_refused_and_out_is_cleared() {
    let try_new = |c: &fc_sender_config| {
        let mut sender = std::ptr::without_provenance_mut::<fc_sender>(0x40);
        // SAFETY: a config with valid (or NULL) strings; `sender` is writable.
        let result = unsafe { fc_sender_new(c, &mut sender) };
        assert!(sender.is_null(), "out is NULL after a failure ({result:?})");
        result
    };
    // SAFETY: NULL arguments are refused before anything is read or written.
    unsafe {
        let mut sender = null_mut();
        assert_eq!(fc_sender_new(null(), &mut sender), fc_result::NullArgument);
        let c = config("127.0.0.1:5004");
        assert_eq!(
            fc_sender_new(&c.config, null_mut()),
            fc_result::NullArgument
        );
    }
    let base = config("127.0.0.1:5004");
    type Change = fn(&mut fc_sender_config);
    let cases: [(&str, Change, fc_result); 10] = [
        (
            "NULL server",
            |c| c.server = null(),
            fc_result::NullArgument,
        ),
        ("NULL cname", |c| c.cname = null(), fc_result::NullArgument),
        (
            "empty cname",
            |c| c.cname = c"".as_ptr(),
            fc_result::InvalidConfig,
        ),
        (
            "no port",
            |c| c.server = c"127.0.0.1".as_ptr(),
            fc_result::AddressUnresolved,
        ),
        (
            "no slots",
            |c| c.handoff_slots = 0,
            fc_result::InvalidConfig,
        ),
        (
            "too many slots",
            |c| c.handoff_slots = 65,
            fc_result::InvalidConfig,
        ),
        (
            "AU limit above 8 MiB",
            |c| c.max_access_unit_bytes = (8 << 20) + 1,
            fc_result::InvalidConfig,
        ),
        (
            "payload budget 2",
            |c| c.payload_budget = 2,
            fc_result::InvalidConfig,
        ),
        (
            "payload type 200",
            |c| c.payload_type = 200,
            fc_result::InvalidConfig,
        ),
        (
            "queue of 10 bytes",
            |c| c.queue_bytes = 10,
            fc_result::InvalidConfig,
        ),
    ];
    for (name, change, expected) in cases {
        let mut c = base.config;
        change(&mut c);
        assert_eq!(try_new(&c), expected, "{name}");
    }
    // Not UTF-8.
    let mut c = base.config;
    c.cname = c"\xff\xfe".as_ptr();
    assert_eq!(try_new(&c), fc_result::InvalidConfig);
}

#[test]
fn null_and_bogus_handles_are_errors_everywhere() {
    let bogus = std::ptr::without_provenance_mut::<fc_sender>(0xdead_bee0);
    let au = &test_access_units()[0];
    let camera = camera_config();
    let mut out = fc_stats::default();
    let mut flag = false;
    for (handle, expected) in [
        (null_mut(), fc_result::NullArgument),
        (bogus, fc_result::InvalidHandle),
    ] {
        assert_eq!(push(handle, &au.data, 0, true), expected);
        // SAFETY: valid output pointers and config; the handle is what is under test.
        unsafe {
            assert_eq!(fc_sender_stats(handle, &mut out), expected);
            assert_eq!(fc_sender_take_keyframe_request(handle, &mut flag), expected);
            assert_eq!(fc_sender_start_camera(handle, &camera), expected);
        }
        assert_eq!(fc_sender_stop(handle), expected);
    }
    assert_eq!(
        fc_sender_free(null_mut()),
        fc_result::Ok,
        "free(NULL) is a no-op"
    );
    assert_eq!(fc_sender_free(bogus), fc_result::InvalidHandle);
}

#[test]
fn malformed_access_units_are_refused_before_they_are_taken() {
    let worker = start_worker(WorkerOptions::default());
    let mut c = config(&worker.addr.to_string());
    c.config.max_access_unit_bytes = 4096;
    let sender = new_sender(&c);
    let units = test_access_units();
    let (idr, p) = (&units[0].data, &units[1].data);
    // SAFETY: NULL buffers with any length are refused without reading.
    unsafe {
        assert_eq!(
            fc_sender_push_au(sender, null(), 0, 0, true),
            fc_result::NullArgument
        );
        assert_eq!(
            fc_sender_push_au(sender, null(), 100, 0, true),
            fc_result::NullArgument
        );
    }
    assert_eq!(push(sender, &idr[..0], 0, true), fc_result::EmptyAccessUnit);
    let oversized = [0u8; 4097];
    assert_eq!(
        push(sender, &oversized, 0, false),
        fc_result::AccessUnitTooLarge
    );
    assert_eq!(
        push(sender, b"not h264 at all", 0, false),
        fc_result::InvalidAccessUnit
    );
    assert_eq!(
        push(sender, &[0, 0, 0, 0], 0, false),
        fc_result::InvalidAccessUnit,
        "no NAL"
    );
    // A STAP-A (type 24) is an RTP structure, not something an encoder writes.
    assert_eq!(
        push(sender, &[0, 0, 1, 0x78, 1, 2], 0, false),
        fc_result::InvalidAccessUnit
    );
    // The forbidden bit.
    assert_eq!(
        push(sender, &[0, 0, 1, 0x81, 1, 2], 0, false),
        fc_result::InvalidAccessUnit
    );
    let too_many: Vec<u8> = (0..65).flat_map(|_| [0, 0, 1, 0x41, 0x9a]).collect();
    assert_eq!(
        push(sender, &too_many, 0, false),
        fc_result::InvalidAccessUnit
    );
    assert_eq!(push(sender, idr, 0, false), fc_result::KeyframeMismatch);
    assert_eq!(push(sender, p, 0, true), fc_result::KeyframeMismatch);
    let s = stats(sender);
    assert_eq!(s.frames_pushed, 0, "nothing refused was taken");
    assert_eq!(s.frames_rejected, 0);
    // SAFETY: NULL outputs are refused.
    unsafe {
        assert_eq!(fc_sender_stats(sender, null_mut()), fc_result::NullArgument);
        assert_eq!(
            fc_sender_take_keyframe_request(sender, null_mut()),
            fc_result::NullArgument
        );
        assert_eq!(
            fc_sender_start_camera(sender, null()),
            fc_result::NullArgument
        );
    }
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    assert!(worker.stop().errors.is_empty());
}

#[test]
fn calls_after_stop_and_after_free_return_their_documented_errors() {
    let worker = start_worker(WorkerOptions::default());
    let sender = new_sender(&config(&worker.addr.to_string()));
    let idr = &test_access_units()[0].data;
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.connected));
    assert_eq!(push(sender, idr, 0, true), fc_result::Ok);
    assert_eq!(fc_sender_stop(sender), fc_result::Ok);
    assert_eq!(fc_sender_stop(sender), fc_result::Stopped);
    assert_eq!(push(sender, idr, 0, true), fc_result::Stopped);
    assert_eq!(take_keyframe_request(sender), Err(fc_result::Stopped));
    // SAFETY: a valid camera config.
    let result = unsafe { fc_sender_start_camera(sender, &camera_config()) };
    assert_eq!(result, fc_result::Stopped);
    // Stats still answer, with the final figures: the frame was written out by the flush.
    let s = stats(sender);
    assert_eq!((s.frames_pushed, s.frames_sent), (1, 1));
    assert!(!s.connected);
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    // The handle is dead; it is never reused, so every call says so.
    assert_eq!(
        fc_sender_free(sender),
        fc_result::InvalidHandle,
        "double free"
    );
    assert_eq!(push(sender, idr, 0, true), fc_result::InvalidHandle);
    assert_eq!(fc_sender_stop(sender), fc_result::InvalidHandle);
    let mut out = fc_stats::default();
    // SAFETY: `out` is writable.
    let result = unsafe { fc_sender_stats(sender, &mut out) };
    assert_eq!(result, fc_result::InvalidHandle);
    // A new sender gets a new handle, so the old one stays invalid.
    let again = new_sender(&config(&worker.addr.to_string()));
    assert_ne!(again, sender);
    assert_eq!(push(sender, idr, 0, true), fc_result::InvalidHandle);
    assert_eq!(fc_sender_free(again), fc_result::Ok);
    // Free without stop stops too.
    let unstopped = new_sender(&config(&worker.addr.to_string()));
    assert_eq!(fc_sender_free(unstopped), fc_result::Ok);
    assert!(worker.stop().errors.is_empty());
}

/// Userdata for the callback that tries to stop its own sender.
struct Reentry {
    sender: AtomicPtr<fc_sender>,
    stop_result: AtomicU32,
    free_result: AtomicU32,
    push_result: AtomicU32,
    stats_result: AtomicU32,
}

unsafe extern "C" fn stop_from_callback(userdata: *mut c_void, _: *const fc_frame_result) {
    // SAFETY: the test passes a `Reentry` that outlives the sender.
    let r = unsafe { &*userdata.cast::<Reentry>() };
    let sender = r.sender.load(Ordering::Acquire);
    if r.push_result.load(Ordering::Acquire) != 0 {
        return;
    }
    r.stop_result
        .store(fc_sender_stop(sender) as u32, Ordering::Release);
    r.free_result
        .store(fc_sender_free(sender) as u32, Ordering::Release);
    let mut out = fc_stats::default();
    // SAFETY: `out` is writable.
    let stats_result = unsafe { fc_sender_stats(sender, &mut out) };
    r.stats_result.store(stats_result as u32, Ordering::Release);
    // Pushing from a callback is allowed.
    let idr = &test_access_units()[0].data;
    r.push_result
        .store(push(sender, idr, 0, true) as u32, Ordering::Release);
}

#[test]
fn stop_and_free_from_a_callback_are_refused_not_deadlocked() {
    let worker = start_worker(WorkerOptions::default());
    let reentry = Reentry {
        sender: AtomicPtr::new(null_mut()),
        stop_result: AtomicU32::new(0),
        free_result: AtomicU32::new(0),
        push_result: AtomicU32::new(0),
        stats_result: AtomicU32::new(0),
    };
    let mut c = config(&worker.addr.to_string());
    c.config.on_result = Some(stop_from_callback);
    c.config.userdata = std::ptr::from_ref(&reentry).cast_mut().cast();
    let sender = new_sender(&c);
    reentry.sender.store(sender, Ordering::Release);
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.connected));
    assert_eq!(
        push(sender, &test_access_units()[0].data, 0, true),
        fc_result::Ok
    );
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.results >= 2));
    let code = |a: &AtomicU32| a.load(Ordering::Acquire);
    assert_eq!(code(&reentry.stop_result), fc_result::WrongThread as u32);
    assert_eq!(code(&reentry.free_result), fc_result::WrongThread as u32);
    assert_eq!(code(&reentry.stats_result), fc_result::Ok as u32);
    assert_eq!(code(&reentry.push_result), fc_result::Ok as u32);
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    assert!(worker.stop().errors.is_empty());
}

/// Userdata for the callback that holds the I/O thread until the test lets it go.
struct Gate {
    inside: AtomicBool,
    release: AtomicBool,
}

unsafe extern "C" fn hold_io_thread(userdata: *mut c_void, event: *const fc_event) {
    // SAFETY: the test passes a `Gate` that outlives the sender; `event` is valid.
    let (gate, event) = unsafe { (&*userdata.cast::<Gate>(), &*event) };
    if event.kind != fc_event_kind::Connected {
        return;
    }
    gate.inside.store(true, Ordering::Release);
    while !gate.release.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_full_hand_off_drops_until_the_next_keyframe_and_asks_for_one() {
    let worker = start_worker(WorkerOptions::default());
    let gate = Gate {
        inside: AtomicBool::new(false),
        release: AtomicBool::new(false),
    };
    let mut c = config(&worker.addr.to_string());
    c.config.handoff_slots = 2;
    c.config.on_event = Some(hold_io_thread);
    c.config.userdata = std::ptr::from_ref(&gate).cast_mut().cast();
    let sender = new_sender(&c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gate.inside.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(gate.inside.load(Ordering::Acquire), "connected");
    // The I/O thread is busy in the callback: two frames fill the hand-off.
    let units = test_access_units();
    let (idr, p) = (&units[0].data, &units[1].data);
    assert_eq!(push(sender, idr, 0, true), fc_result::Ok);
    assert_eq!(push(sender, p, 0, false), fc_result::Ok);
    assert_eq!(
        push(sender, p, 0, false),
        fc_result::Dropped,
        "no free slot"
    );
    assert_eq!(
        take_keyframe_request(sender),
        Ok(true),
        "the drop asks for an IDR"
    );
    assert_eq!(take_keyframe_request(sender), Ok(false), "once");
    gate.release.store(true, Ordering::Release);
    assert!(wait_for(sender, Duration::from_secs(5), |s| s
        .frames_submitted
        == 2));
    assert_eq!(
        push(sender, p, 0, false),
        fc_result::Dropped,
        "its reference was dropped"
    );
    assert_eq!(push(sender, idr, 0, true), fc_result::Ok);
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.results == 3));
    let s = stats(sender);
    assert_eq!(
        (s.frames_pushed, s.dropped_handoff, s.frames_dropped),
        (3, 2, 2)
    );
    assert_eq!(s.frames_sent, 3);
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    let log = worker.stop();
    assert_eq!(log.access_units, 3);
    assert!(log.errors.is_empty(), "{:?}", log.errors);
}

#[test]
fn pushed_frames_come_back_as_results_with_their_capture_time() {
    const FRAMES: usize = 60;
    let worker = start_worker(WorkerOptions {
        pli_after: Some(20),
        ..WorkerOptions::default()
    });
    let seen = Seen::default();
    let mut c = recording_config(&worker.addr.to_string(), &seen);
    c.config.handoff_slots = 64;
    let sender = new_sender(&c);
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.connected));
    assert_eq!(
        take_keyframe_request(sender),
        Ok(true),
        "a new connection wants an IDR"
    );
    let units = test_access_units();
    let mut capture_times = Vec::new();
    let mut keyframe_requests = 0;
    for n in 0..FRAMES {
        let mut unit = &units[n % units.len()];
        if take_keyframe_request(sender) == Ok(true) {
            keyframe_requests += 1;
            unit = &units[0];
        }
        // Captured a little before it is pushed, as an encoder would.
        let captured = monotonic_nanos() - 3_000_000;
        capture_times.push(captured);
        assert_eq!(
            push(sender, &unit.data, captured, unit.keyframe),
            fc_result::Ok,
            "frame {n}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(wait_for(sender, Duration::from_secs(10), |s| s.results
        == FRAMES as u64));
    assert_eq!(
        keyframe_requests, 1,
        "the worker's PLI reached the firmware"
    );
    let s = stats(sender);
    assert_eq!(fc_sender_free(sender), fc_result::Ok);

    assert_eq!(s.frames_pushed, FRAMES as u64);
    assert_eq!(s.frames_submitted, FRAMES as u64);
    assert_eq!(s.frames_sent, FRAMES as u64);
    assert_eq!(s.frames_dropped, 0);
    assert_eq!(s.unmatched_results, 0);
    assert_eq!((s.plis, s.connects, s.reconnects), (1, 1, 0));
    assert!(
        s.keyframe_requests >= 2,
        "connect + PLI: {}",
        s.keyframe_requests
    );
    assert!(s.rtt_valid && s.rtt_us > 0);
    assert_eq!(s.latency_samples, FRAMES as u32);
    assert!(s.latency_p50_us >= 3000 && s.latency_p50_us <= s.latency_p99_us);
    assert!(s.latency_p99_us <= s.latency_max_us);
    assert!(s.bytes_sent > 0 && s.io_result == fc_result::Ok);

    let results = seen.results();
    assert_eq!(results.len(), FRAMES);
    for (n, r) in results.iter().enumerate() {
        assert!(r.matched);
        assert_eq!(
            r.capture_time_ns, capture_times[n],
            "result {n} is frame {n}"
        );
        assert!(r.latency_us >= 3000, "capture was 3 ms before the push");
        assert!(
            r.parts_us <= u64::from(r.latency_us) + 4,
            "parts within the whole"
        );
        assert_eq!(r.decode_us, DECODE_US);
        assert_eq!(r.histogram.len(), CLASSES);
        assert_eq!(r.top_class, i32::from(dominant_class(n as u64)));
        assert_eq!(r.class_map_size, (CLASS_MAP_WIDTH, CLASS_MAP_HEIGHT));
        assert_eq!(r.class_map.len(), 32);
        assert_eq!(r.class_map[1], dominant_class(n as u64));
    }
    let timestamps: Vec<u32> = results.iter().map(|r| r.rtp_timestamp).collect();
    assert!(
        timestamps
            .windows(2)
            .all(|w| w[1].wrapping_sub(w[0]) > 90 && w[1].wrapping_sub(w[0]) < 90_000),
        "90 kHz timestamps 2 ms or more apart"
    );
    let kinds = seen.event_kinds();
    assert_eq!(kinds.first(), Some(&fc_event_kind::Connected));
    assert!(kinds.contains(&fc_event_kind::RoundTrip));
    assert!(seen.keyframe_events.load(Ordering::Relaxed) >= 2);
    let log = worker.stop();
    assert_eq!(log.cnames, ["cam-capi-test"]);
    assert_eq!(log.access_units, FRAMES as u64);
    assert!(log.errors.is_empty(), "{:?}", log.errors);
}

#[test]
fn a_sender_without_a_worker_keeps_trying_and_counts_its_drops() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let seen = Seen::default();
    let sender = new_sender(&recording_config(&format!("127.0.0.1:{port}"), &seen));
    let idr = &test_access_units()[0].data;
    for _ in 0..5 {
        assert_eq!(push(sender, idr, 0, true), fc_result::Ok);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(wait_for(sender, Duration::from_secs(5), |s| s
        .frames_submitted
        == 5
        && s.connect_failures >= 2));
    let s = stats(sender);
    assert_eq!(s.dropped_not_connected, 5);
    assert_eq!(s.frames_dropped, 5);
    assert!(!s.connected && s.connects == 0);
    assert!(seen.event_kinds().contains(&fc_event_kind::ConnectFailed));
    // Stop does not wait for a flush that cannot happen.
    let started = Instant::now();
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    assert!(started.elapsed() < Duration::from_millis(500));
}
