//! Helpers for driving the C ABI from Rust tests: configs, callbacks that record into
//! `userdata`, access units from a committed test stream, and the stand-in worker.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod worker;

use std::ffi::{CString, c_void};
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowcloud_core::h264::annexb;
use flowcloud_edge::{
    fc_event, fc_event_kind, fc_frame_result, fc_result, fc_sender, fc_sender_config,
    fc_sender_config_default, fc_sender_new, fc_sender_stats, fc_stats,
};

/// x264, constrained baseline, 320x240: an IDR (with SEI, SPS, PPS) and two P-frames.
pub const TEST_STREAM: &[u8] = include_bytes!("../../../core/testdata/x264-baseline-320x240.h264");

/// An access unit and whether it is an IDR.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// Splits an Annex-B stream into access units (H.264 §7.4.1.2.3): a new one starts at an
/// access unit delimiter, SPS, PPS or SEI after a slice, or at a slice whose
/// `first_mb_in_slice` is 0 after a slice.
pub fn split_access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let mut nals = annexb::nal_units(stream).unwrap();
    let mut starts = Vec::new();
    let mut ranges = Vec::new();
    // Start-code positions: each NAL range starts 3 bytes after its `00 00 01`.
    while let Some(range) = nals.next_range() {
        ranges.push(range);
    }
    let mut seen_slice = false;
    for range in &ranges {
        let nal_type = stream[range.start] & 0x1f;
        let is_slice = nal_type == 1 || nal_type == 5;
        let first_mb_zero = stream.get(range.start + 1).is_some_and(|b| b & 0x80 != 0);
        let new_au = match nal_type {
            6..=9 => seen_slice,
            1 | 5 => seen_slice && first_mb_zero,
            _ => false,
        };
        if starts.is_empty() || new_au {
            starts.push(range.start);
            seen_slice = false;
        }
        seen_slice |= is_slice;
    }
    // Each access unit runs from its first NAL's start code to the next one's.
    let start_code = |nal_start: usize| {
        let mut s = nal_start - 3;
        while s > 0 && stream[s - 1] == 0 {
            s -= 1;
        }
        s
    };
    let mut units = Vec::new();
    for (i, &nal_start) in starts.iter().enumerate() {
        let begin = start_code(nal_start);
        let end = starts
            .get(i + 1)
            .map_or(stream.len(), |&next| start_code(next));
        let data = stream[begin..end].to_vec();
        let mut scan = annexb::nal_units(&data).unwrap();
        let mut keyframe = false;
        while let Some(r) = scan.next_range() {
            keyframe |= data[r.start] & 0x1f == 5;
        }
        units.push(AccessUnit { data, keyframe });
    }
    units
}

/// The test stream's access units: IDR, P, P.
pub fn test_access_units() -> Vec<AccessUnit> {
    let units = split_access_units(TEST_STREAM);
    assert_eq!(units.len(), 3, "the test stream has three pictures");
    assert!(units[0].keyframe && !units[1].keyframe && !units[2].keyframe);
    units
}

/// One result as the callback saw it.
#[derive(Clone, Debug)]
pub struct SeenResult {
    pub rtp_timestamp: u32,
    pub matched: bool,
    pub capture_time_ns: u64,
    pub latency_us: u32,
    pub parts_us: u64,
    pub decode_us: u32,
    pub histogram: Vec<u32>,
    pub top_class: i32,
    pub class_map: Vec<u8>,
    pub class_map_size: (u16, u16),
}

/// Everything the callbacks saw; passed as `userdata`.
#[derive(Debug, Default)]
pub struct Seen {
    pub results: Mutex<Vec<SeenResult>>,
    pub events: Mutex<Vec<fc_event>>,
    pub keyframe_events: AtomicU64,
}

impl Seen {
    pub fn results(&self) -> Vec<SeenResult> {
        self.results.lock().unwrap().clone()
    }

    pub fn event_kinds(&self) -> Vec<fc_event_kind> {
        self.events.lock().unwrap().iter().map(|e| e.kind).collect()
    }
}

/// Records a result into the `Seen` behind `userdata`.
///
/// # Safety
///
/// `userdata` is a `*const Seen` that outlives the sender; `result` is valid for the call.
pub unsafe extern "C" fn record_result(userdata: *mut c_void, result: *const fc_frame_result) {
    // SAFETY: as documented: the test passes a `Seen` that outlives the sender.
    let seen = unsafe { &*userdata.cast::<Seen>() };
    // SAFETY: valid for the duration of the callback.
    let r = unsafe { &*result };
    let histogram = if r.histogram.is_null() {
        Vec::new()
    } else {
        // SAFETY: `class_count` entries, valid during the callback.
        unsafe { std::slice::from_raw_parts(r.histogram, r.class_count) }.to_vec()
    };
    let class_map = if r.class_map.is_null() {
        Vec::new()
    } else {
        // SAFETY: `class_map_len` bytes, valid during the callback.
        unsafe { std::slice::from_raw_parts(r.class_map, r.class_map_len) }.to_vec()
    };
    seen.results.lock().unwrap().push(SeenResult {
        rtp_timestamp: r.rtp_timestamp,
        matched: r.matched,
        capture_time_ns: r.capture_time_ns,
        latency_us: r.latency_us,
        parts_us: u64::from(r.encode_us)
            + u64::from(r.send_queue_us)
            + u64::from(r.network_us)
            + u64::from(r.worker_us),
        decode_us: r.decode_us,
        histogram,
        top_class: r.top_class,
        class_map,
        class_map_size: (r.class_map_width, r.class_map_height),
    });
}

/// Records an event into the `Seen` behind `userdata`.
///
/// # Safety
///
/// As [`record_result`].
pub unsafe extern "C" fn record_event(userdata: *mut c_void, event: *const fc_event) {
    // SAFETY: as documented.
    let seen = unsafe { &*userdata.cast::<Seen>() };
    // SAFETY: valid for the duration of the callback.
    let event = unsafe { *event };
    if event.kind == fc_event_kind::KeyframeRequested {
        seen.keyframe_events.fetch_add(1, Ordering::Relaxed);
    }
    seen.events.lock().unwrap().push(event);
}

/// A config's strings, kept alive next to it.
pub struct Config {
    pub config: fc_sender_config,
    _server: CString,
    _cname: CString,
}

/// The defaults, pointed at `server`, with quick reconnects.
pub fn config(server: &str) -> Config {
    let mut raw = MaybeUninit::<fc_sender_config>::uninit();
    // SAFETY: `raw` is writable for one config.
    let result = unsafe { fc_sender_config_default(raw.as_mut_ptr()) };
    assert_eq!(result, fc_result::Ok);
    // SAFETY: initialized by the call above.
    let mut config = unsafe { raw.assume_init() };
    let server = CString::new(server).unwrap();
    let cname = CString::new("cam-capi-test").unwrap();
    config.server = server.as_ptr();
    config.cname = cname.as_ptr();
    config.reconnect_initial_ms = 20;
    config.reconnect_max_ms = 200;
    config.report_interval_ms = 100;
    Config {
        config,
        _server: server,
        _cname: cname,
    }
}

/// `config` with callbacks recording into `seen`.
pub fn recording_config(server: &str, seen: &Seen) -> Config {
    let mut c = config(server);
    c.config.on_result = Some(record_result);
    c.config.on_event = Some(record_event);
    c.config.userdata = std::ptr::from_ref(seen).cast_mut().cast();
    c
}

/// Creates a sender, asserting success.
pub fn new_sender(config: &Config) -> *mut fc_sender {
    let mut sender = std::ptr::null_mut();
    // SAFETY: a valid config whose strings live in `config`; `sender` is writable.
    let result = unsafe { fc_sender_new(&config.config, &mut sender) };
    assert_eq!(result, fc_result::Ok);
    assert!(!sender.is_null());
    sender
}

/// The sender's stats, asserting success.
pub fn stats(sender: *const fc_sender) -> fc_stats {
    let mut out = fc_stats::default();
    // SAFETY: `out` is writable.
    assert_eq!(unsafe { fc_sender_stats(sender, &mut out) }, fc_result::Ok);
    out
}

/// Waits until `done(stats)` or `timeout`; true when done.
pub fn wait_for(
    sender: *const fc_sender,
    timeout: Duration,
    done: impl Fn(&fc_stats) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done(&stats(sender)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
