//! After start-up, the camera's hot path — capture (test pattern), packetize, queue, send,
//! receive RTCP and results — does not touch the heap. The software encoder (openh264, a C
//! library that allocates internally, wrapped by a crate that may too) is the one documented
//! exemption: counting is paused around `encode`.
//!
//! Allocations are counted per thread, so the scripted worker's thread (which allocates
//! freely) does not count.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use common::{Script, ScriptedReceiver, test_config};
use flowcloud_edge::capture::CaptureSource;
use flowcloud_edge::capture::pattern::PatternSource;
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
use flowcloud_edge::sender::{FrameResult, Sender, SenderEvent, SenderHandler, Submitted};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator can run while thread-locals are being torn down.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only reads
// and writes const-initialized thread-locals, which never allocate.
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

fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A handler that only counts (a handler that allocated would be the caller's choice).
#[derive(Default)]
struct Tally {
    results: u64,
    with_latency: u64,
    class_pixels: u64,
    round_trips: u64,
    keyframe_requests: u64,
    disconnects: u64,
}

impl SenderHandler for Tally {
    fn on_result(&mut self, result: &FrameResult<'_>) {
        self.results += 1;
        self.with_latency += u64::from(result.latency.is_some());
        let mut map = [0u8; 8];
        if result.result.decode_class_map(&mut map).is_ok() {
            self.class_pixels += map.iter().filter(|&&c| c == 1).count() as u64;
        }
    }

    fn on_event(&mut self, event: SenderEvent) {
        match event {
            SenderEvent::RoundTrip { .. } => self.round_trips += 1,
            SenderEvent::KeyframeRequested { .. } => self.keyframe_requests += 1,
            SenderEvent::Disconnected { .. } => self.disconnects += 1,
            _ => {}
        }
    }
}

#[test]
fn capture_packetize_send_and_results_do_not_allocate_after_start_up() {
    const FRAMES: u64 = 1000;
    // The counter itself works: it sees an allocation on this thread.
    counting(true);
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(16));
    counting(false);
    drop(probe);
    assert_eq!(allocations(), 1, "the counting allocator sees allocations");
    let baseline = allocations();
    let receiver = ScriptedReceiver::start("127.0.0.1:0".parse().unwrap(), Script::default());
    let mut config = test_config(receiver.addr);
    config.report_interval = Duration::from_millis(50);
    let mut source = PatternSource::new(160, 120, 30).unwrap().unpaced();
    let mut settings = EncoderSettings::new(160, 120, 30);
    settings.keyframe_interval = 30;
    let mut encoder = OpenH264Encoder::new(settings).unwrap();
    let mut sender = Sender::new(config).unwrap();
    let mut access_unit = Vec::with_capacity(1 << 20);
    let mut tally = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sender.is_connected() && Instant::now() < deadline {
        sender
            .poll(Some(Duration::from_millis(5)), &mut tally)
            .unwrap();
    }
    assert!(sender.is_connected());

    let mut queued = 0u64;
    let mut exempt = 0u64;
    for n in 0..FRAMES + 50 {
        // The first 50 frames are start-up: the encoder's first IDR, the first reports.
        if n == 50 {
            counting(true);
        }
        sender
            .poll(Some(Duration::from_millis(1)), &mut tally)
            .unwrap();
        if sender.take_keyframe_request() {
            encoder.request_keyframe();
        }
        let frame = source.next_frame().unwrap();
        let captured_at = frame.captured_at;
        // The documented exemption: the software encoder.
        let before = allocations();
        let encoded = encoder.encode(&frame, &mut access_unit).unwrap();
        exempt += allocations() - before;
        let outcome = sender
            .submit_with(
                &access_unit[..encoded.len],
                captured_at,
                encoded.encode_time,
                &mut tally,
            )
            .unwrap();
        queued += u64::from(outcome == Submitted::Queued);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.results < queued && Instant::now() < deadline {
        sender
            .poll(Some(Duration::from_millis(5)), &mut tally)
            .unwrap();
    }
    counting(false);
    let hot_path = allocations() - baseline - exempt;
    eprintln!("encoder (exempt): {exempt} allocations over {FRAMES} frames; hot path: {hot_path}");

    assert_eq!(queued, FRAMES + 50, "every frame was queued");
    assert_eq!(tally.results, queued, "a result for every frame");
    assert_eq!(tally.with_latency, tally.results);
    assert_eq!(tally.class_pixels, 2 * tally.results);
    assert!(tally.round_trips >= 2, "RTCP went both ways while counting");
    assert_eq!(tally.disconnects, 0);
    assert_eq!(
        hot_path, 0,
        "{hot_path} heap allocations outside the encoder over {FRAMES} frames"
    );
    let log = receiver.kill();
    assert!(log[0].errors.is_empty(), "{:?}", log[0].errors);
}

#[test]
fn the_street_scene_renders_without_allocating() {
    use flowcloud_edge::capture::scene::{SceneConfig, SceneSource};
    let config = SceneConfig::new(320, 160, 3);
    let mut source = SceneSource::new(config).unwrap().unpaced();
    let mut labels = vec![0; config.labels_len()];
    counting(true);
    let probe = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert!(allocations() > probe, "the counter sees allocations");
    let before = allocations();
    // Frames across several sequences (a new street every 300), and labels of a past frame.
    for index in (0..1200).step_by(61) {
        source
            .scene_mut()
            .render_labels(index, &mut labels)
            .unwrap();
        let frame = source.next_frame().unwrap();
        assert_eq!(frame.picture.planes()[0].data.len(), 320 * 160);
    }
    let after = allocations();
    counting(false);
    assert_eq!(after - before, 0, "heap allocations while rendering");
}
