//! After start-up, pushing an access unit through the C ABI — `fc_sender_push_au`, the
//! hand-off, the I/O thread's packetize/queue/send, the worker's RTCP and `FCSG` result coming
//! back, the result callback, `fc_sender_take_keyframe_request` and `fc_sender_stats` — does
//! not touch the heap, on any thread of the library.
//!
//! Allocations are counted on every thread except the stand-in worker's (which allocates
//! freely, as a real worker would on another machine). So that no test harness thread is
//! counted, this test has its own `main` (`harness = false`).
// Without libtest, printing and panicking are how this binary reports.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::worker::{StandInWorker, WorkerOptions};
use common::{config, new_sender, stats, test_access_units, wait_for};
use flowcloud_edge::{
    fc_frame_result, fc_result, fc_sender_free, fc_sender_push_au, fc_sender_stats,
    fc_sender_take_keyframe_request, fc_stats,
};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static EXEMPT: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    // `try_with`: the allocator can run while thread-locals are being torn down.
    let exempt = EXEMPT.try_with(Cell::get).unwrap_or(false);
    if COUNTING.load(Ordering::Relaxed) && !exempt {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only touches
// atomics and a const-initialized thread-local, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn exempt_this_thread() {
    EXEMPT.with(|e| e.set(true));
}

/// Counts results and reads their arrays, as firmware would, without allocating.
static RESULTS: AtomicU64 = AtomicU64::new(0);
static CLASS_PIXELS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn count_result(_: *mut c_void, result: *const fc_frame_result) {
    // SAFETY: valid for the duration of the callback.
    let r = unsafe { &*result };
    if r.matched && !r.histogram.is_null() && !r.class_map.is_null() {
        // SAFETY: `class_count` entries, valid during the callback.
        let histogram = unsafe { std::slice::from_raw_parts(r.histogram, r.class_count) };
        let pixels: u64 = histogram.iter().map(|&p| u64::from(p)).sum();
        CLASS_PIXELS.fetch_add(pixels, Ordering::Relaxed);
        RESULTS.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    // `cargo test -- --list` and filters: this binary holds exactly one test.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("pushing_access_units_does_not_allocate_after_start_up: test");
        return;
    }
    pushing_access_units_does_not_allocate_after_start_up();
    println!("no_heap: 1 passed, 0 failed");
}

fn pushing_access_units_does_not_allocate_after_start_up() {
    const WARM_UP: usize = 50;
    const FRAMES: usize = 1000;
    // The counter works: it sees an allocation on this thread.
    COUNTING.store(true, Ordering::SeqCst);
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(16));
    COUNTING.store(false, Ordering::SeqCst);
    drop(probe);
    assert_eq!(
        ALLOCATIONS.swap(0, Ordering::SeqCst),
        1,
        "the counter sees allocations"
    );

    let worker = StandInWorker::start(
        "127.0.0.1:0".parse().unwrap(),
        WorkerOptions {
            pli_after: Some(WARM_UP as u64 + 100),
            on_thread_start: Some(exempt_this_thread),
        },
    )
    .unwrap();
    let mut c = config(&worker.addr.to_string());
    c.config.on_result = Some(count_result);
    c.config.report_interval_ms = 50;
    c.config.handoff_slots = 16;
    let sender = new_sender(&c);
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.connected));
    let units = test_access_units();
    let mut stats_out = fc_stats::default();
    let mut pushed = 0u64;
    let mut keyframe_requests = 0;
    let started = Instant::now();
    for n in 0..WARM_UP + FRAMES {
        // Start-up: the first frames, the first reports and round trips.
        if n == WARM_UP {
            COUNTING.store(true, Ordering::SeqCst);
        }
        let mut requested = false;
        // SAFETY: `requested` is writable.
        let taken = unsafe { fc_sender_take_keyframe_request(sender, &mut requested) };
        assert_eq!(taken, fc_result::Ok);
        keyframe_requests += u32::from(requested && n >= WARM_UP);
        let unit = if requested {
            &units[0]
        } else {
            &units[n % units.len()]
        };
        // SAFETY: `unit.data` is readable.
        let result = unsafe {
            fc_sender_push_au(
                sender,
                unit.data.as_ptr(),
                unit.data.len(),
                0,
                unit.keyframe,
            )
        };
        assert_eq!(result, fc_result::Ok, "frame {n}");
        pushed += 1;
        // SAFETY: `stats_out` is writable.
        let result = unsafe { fc_sender_stats(sender, &mut stats_out) };
        assert_eq!(result, fc_result::Ok);
        std::thread::sleep(Duration::from_micros(500));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while RESULTS.load(Ordering::Relaxed) < pushed && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    eprintln!(
        "{FRAMES} access units in {:?}: {allocations} heap allocations on the library's threads",
        started.elapsed()
    );

    let s = stats(sender);
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    let log = worker.stop();
    assert_eq!(
        RESULTS.load(Ordering::Relaxed),
        pushed,
        "a result for every frame"
    );
    assert_eq!(s.frames_sent, pushed);
    assert_eq!(s.frames_dropped, 0);
    assert!(CLASS_PIXELS.load(Ordering::Relaxed) > 0);
    assert_eq!(keyframe_requests, 1, "the PLI while counting");
    assert!(s.rtt_valid, "RTCP went both ways");
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert_eq!(
        allocations, 0,
        "{allocations} heap allocations over {FRAMES} pushed access units"
    );
}
