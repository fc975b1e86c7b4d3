//! The hot path allocates nothing: packetizing, framing, deframing and depacketizing 10 000
//! frames in steady state performs zero heap allocations, counted by a global allocator.
//! This file holds a single test so no other test thread allocates while it counts.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{PPS, SPS_64X64, annex_b, nal_unit};
use flowcloud_core::framing::{Deframer, MAX_FRAME_LEN};
use flowcloud_core::h264::{Depacketizer, DepacketizerConfig, Event, Packetizer, PacketizerConfig};
use flowcloud_core::results::{ClassMap, ResultView, SegmentationResult};
use flowcloud_core::rtcp::{self, RtcpPacket};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_packetize_and_depacketize_allocate_nothing() {
    // Everything is made up front: a GOP of 30 frames, buffers, and the protocol objects.
    let gop: Vec<Vec<u8>> = (0..30u64)
        .map(|i| {
            if i == 0 {
                annex_b(&[SPS_64X64.to_vec(), PPS.to_vec(), nal_unit(5, 3, 60_000, i)])
            } else {
                annex_b(&[nal_unit(1, 2, 2_000 + (i as usize * 997) % 9_000, i)])
            }
        })
        .collect();
    let mut packetizer = Packetizer::new(PacketizerConfig::default()).unwrap();
    let config = DepacketizerConfig::default();
    let buf = vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(config.max_access_unit_bytes)];
    let mut depacketizer = Depacketizer::new(buf, config);
    let mut deframer = Box::new(Deframer::<MAX_FRAME_LEN>::new());
    let mut wire = vec![0u8; 200_000];
    let histogram = [7u32; 19];
    let classes = vec![3u8; 64 * 32];
    let mut result_buf = vec![0u8; 65_536];
    let mut decoded_map = vec![0u8; 64 * 32];

    let mut frame = |n: usize| -> usize {
        let au = &gop[n % gop.len()];
        let ts = (n as u32).wrapping_mul(3000);
        // Edge: packetize and frame into the wire buffer.
        let mut len = 0;
        let mut packets = packetizer.packetize(au, ts).unwrap();
        while let Some(n) = packets.next_framed(&mut wire[len..]).unwrap() {
            len += n;
        }
        // Worker: deframe in 1400-byte reads, depacketize, check the access unit.
        let mut received = 0;
        for mut read in wire[..len].chunks(1400) {
            while !read.is_empty() {
                let (used, frame) = deframer.push(read);
                if let Some(packet) = frame.unwrap() {
                    depacketizer.push(packet).unwrap();
                    while let Some(event) = depacketizer.poll_event() {
                        match event {
                            Event::AccessUnit(out) => {
                                assert_eq!(out.data.len(), au.len());
                                received += 1;
                            }
                            Event::Loss(loss) => panic!("loss on a clean stream: {loss:?}"),
                        }
                    }
                }
                read = &read[used..];
            }
        }
        // Worker → edge: the per-frame result message, written and read back.
        let result = SegmentationResult {
            rtp_timestamp: ts,
            decode_us: 1,
            infer_us: 2,
            post_us: 3,
            map_width: 512,
            map_height: 256,
            histogram: &histogram,
            class_map: Some(ClassMap {
                width: 64,
                height: 32,
                classes: &classes,
            }),
        };
        let n = result.write_app(0x1234, &mut result_buf).unwrap();
        for packet in rtcp::parse_compound(&result_buf[..n]) {
            if let RtcpPacket::App(app) = packet.unwrap() {
                let view = ResultView::from_app(&app).unwrap();
                assert_eq!(view.rtp_timestamp, ts);
                view.decode_class_map(&mut decoded_map).unwrap();
            }
        }
        received
    };

    // Warm up one full GOP (first use of every path), then count.
    for n in 0..30 {
        assert_eq!(frame(n), 1);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        before > 30,
        "the counting allocator must have seen the set-up allocations"
    );
    let mut received = 0;
    for n in 30..10_030 {
        received += frame(n);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(received, 10_000);
    assert_eq!(
        allocations, 0,
        "the hot path allocated {allocations} times in 10 000 frames"
    );
}
