//! Property tests over the whole send/receive path of the core: packetizer → RFC 4571 framing
//! → simulated TCP byte stream (reads of any size) → deframer → depacketizer.
//!
//! 1. Without faults, any sequence of access units (NAL units of 1 B to 2 MB, payload budgets
//!    200–64000) comes back byte for byte, in order, with nothing reported lost.
//! 2. With injected loss, duplication, reordering and stream cuts, no access unit is ever
//!    emitted that differs from the one sent with its timestamp: damage is reported as loss.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{PPS, SPS_64X64, annex_b, nal_unit};
use flowcloud_core::h264::{DepacketizerConfig, MAX_ACCESS_UNIT_BYTES, PacketizerConfig};
use flowcloud_core::harness::{LinkFaults, Pair, Received};
use proptest::prelude::*;

/// NAL unit sizes from 1 byte (header only) to 2 MB, weighted towards realistic ones.
fn nal_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 1usize..=64,
        4 => 65usize..=4_000,
        2 => 4_001usize..=200_000,
        1 => 200_001usize..=2_000_000,
    ]
}

/// H.264 NAL types an encoder emits (SPS is added separately, as a real one).
fn nal_type() -> impl Strategy<Value = u8> {
    prop_oneof![Just(1u8), Just(5), Just(6), Just(8), Just(9), 10u8..=23]
}

/// One access unit: optionally a real SPS+PPS, then 1–8 NAL units, kept under 8 MiB.
fn access_unit() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        prop::collection::vec((nal_type(), 0u8..4, nal_len(), any::<u64>()), 1..=8),
    )
        .prop_map(|(with_sps, specs)| {
            let mut nals = Vec::new();
            if with_sps {
                nals.push(SPS_64X64.to_vec());
                nals.push(PPS.to_vec());
            }
            let mut total = nals.iter().map(|n| n.len() + 4).sum::<usize>();
            for (nal_type, nri, len, seed) in specs {
                let nal = nal_unit(nal_type, nri, len, seed);
                // Escapes can grow a NAL unit by ~1/3 at most; stay under the 8 MiB limit.
                if total + nal.len() + 4 > MAX_ACCESS_UNIT_BYTES {
                    break;
                }
                total += nal.len() + 4;
                nals.push(nal);
            }
            if nals.is_empty() {
                nals.push(nal_unit(1, 2, 10, 0));
            }
            annex_b(&nals)
        })
}

fn read_size() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(1usize), 3 => 2usize..=1500, 3 => 1501usize..=70_000]
}

fn packetizer(budget: usize) -> PacketizerConfig {
    PacketizerConfig {
        ssrc: 0x00c0_ffee,
        payload_budget: budget,
        initial_sequence: 65000,
        ..Default::default()
    }
}

fn run(aus: &[Vec<u8>], budget: usize, faults: LinkFaults, seed: u64) -> Pair {
    let mut pair = Pair::new(
        packetizer(budget),
        DepacketizerConfig::default(),
        faults,
        seed,
    )
    .expect("valid packetizer config");
    for (i, au) in aus.iter().enumerate() {
        pair.send(au, (i as u32).wrapping_mul(3000))
            .expect("valid access unit");
        pair.advance(33_333);
    }
    pair.finish();
    pair
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn access_units_round_trip_byte_for_byte(
        aus in prop::collection::vec(access_unit(), 1..=4),
        budget in 200usize..=64_000,
        max_read in read_size(),
        seed in any::<u64>(),
    ) {
        // Byte-at-a-time reads of many megabytes only slow the test; cap them.
        let total: usize = aus.iter().map(Vec::len).sum();
        let max_read = if total > 1_000_000 { max_read.max(1500) } else { max_read };
        let faults = LinkFaults { max_read, ..LinkFaults::default() };
        let pair = run(&aus, budget, faults, seed);
        let expected: Vec<(u32, &[u8])> =
            aus.iter().enumerate().map(|(i, au)| ((i as u32) * 3000, &au[..])).collect();
        let got: Vec<(u32, &[u8])> = pair
            .received()
            .iter()
            .map(|r| match r {
                Received::AccessUnit { rtp_timestamp, data, .. } => (*rtp_timestamp, &data[..]),
                other => panic!("unexpected {other:?} on a clean link"),
            })
            .collect();
        prop_assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            prop_assert_eq!(g.0, e.0);
            prop_assert!(g.1 == e.1, "access unit at {} differs ({} vs {} bytes)", e.0, g.1.len(), e.1.len());
        }
        prop_assert_eq!(pair.depacketizer().stats().lost_packets, 0);
    }

    #[test]
    fn faults_never_yield_a_corrupted_access_unit(
        aus in prop::collection::vec(access_unit(), 2..=6),
        budget in 200usize..=64_000,
        loss in 0.0f64..0.2,
        duplicate in 0.0f64..0.2,
        reorder in 0.0f64..0.2,
        truncate in 0.0f64..0.2,
        max_read in read_size(),
        seed in any::<u64>(),
    ) {
        let total: usize = aus.iter().map(Vec::len).sum();
        let max_read = if total > 1_000_000 { max_read.max(1500) } else { max_read };
        let faults = LinkFaults { loss, duplicate, reorder, truncate, max_read, delay_us: 5_000 };
        let pair = run(&aus, budget, faults, seed);
        let sent: HashMap<u32, &[u8]> =
            aus.iter().enumerate().map(|(i, au)| ((i as u32) * 3000, &au[..])).collect();
        let mut seen = HashMap::new();
        for r in pair.received() {
            if let Received::AccessUnit { rtp_timestamp, data, .. } = r {
                let original = sent.get(rtp_timestamp);
                prop_assert!(original.is_some(), "unknown timestamp {}", rtp_timestamp);
                prop_assert!(
                    original == Some(&&data[..]),
                    "corrupted access unit at {} ({} bytes, sent {})",
                    rtp_timestamp, data.len(), original.map_or(0, |o| o.len())
                );
                prop_assert!(seen.insert(*rtp_timestamp, ()).is_none(), "emitted twice: {}", rtp_timestamp);
            }
        }
        // Without any damaging fault injected, duplicates alone must lose nothing.
        let injected = pair.injected();
        if injected.lost + injected.reordered + injected.truncated == 0 {
            prop_assert_eq!(seen.len(), aus.len());
        }
    }
}

/// A long clean stream through the harness with small reads: counters add up exactly.
#[test]
fn long_stream_counts_add_up() {
    let aus: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            let mut nals = vec![];
            if i % 30 == 0 {
                nals.extend([SPS_64X64.to_vec(), PPS.to_vec(), nal_unit(5, 3, 30_000, i)]);
            } else {
                nals.push(nal_unit(1, 2, 3_000 + (i as usize * 37) % 5_000, i));
            }
            annex_b(&nals)
        })
        .collect();
    let pair = run(
        &aus,
        1400,
        LinkFaults {
            max_read: 700,
            ..LinkFaults::default()
        },
        1,
    );
    let stats = pair.depacketizer().stats();
    assert_eq!(stats.access_units, 300);
    assert_eq!(stats.lost_access_units, 0);
    assert_eq!(stats.packets, pair.injected().packets);
    let keyframes = pair
        .received()
        .iter()
        .filter(|r| matches!(r, Received::AccessUnit { keyframe: true, .. }))
        .count();
    assert_eq!(keyframes, 10);
}

/// With 5% loss the receiver reports losses and keeps emitting intact access units.
#[test]
fn lossy_stream_keeps_going() {
    let aus: Vec<Vec<u8>> = (0..200)
        .map(|i| annex_b(&[nal_unit(1, 2, 2_000 + (i * 131) % 3_000, i as u64)]))
        .collect();
    let faults = LinkFaults {
        loss: 0.05,
        max_read: 1500,
        ..LinkFaults::default()
    };
    let pair = run(&aus, 1400, faults, 42);
    let stats = pair.depacketizer().stats();
    assert!(pair.injected().lost > 0);
    assert_eq!(
        stats.lost_packets,
        pair.injected().lost,
        "every dropped packet is counted"
    );
    assert!(stats.lost_access_units > 0);
    assert!(
        stats.access_units > 100,
        "intact access units still flow: {stats:?}"
    );
    assert_eq!(
        stats.access_units + stats.lost_access_units,
        200 - lost_entirely(&pair)
    );
}

/// Access units whose every packet was dropped leave no trace at the receiver; count them
/// from what it did report.
fn lost_entirely(pair: &Pair) -> u64 {
    let reported: std::collections::HashSet<u32> = pair
        .received()
        .iter()
        .filter_map(|r| match r {
            Received::AccessUnit { rtp_timestamp, .. } => Some(*rtp_timestamp),
            Received::Loss(loss) => Some(loss.rtp_timestamp),
            Received::Rejected(_) => None,
        })
        .collect();
    200 - reported.len() as u64
}
