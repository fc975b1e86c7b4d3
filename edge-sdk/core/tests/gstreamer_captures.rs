//! Interop against captured GStreamer output: RFC 4571 streams written by
//! `rtph264pay ! rtpstreampay` (GStreamer 1.22) are deframed and depacketized, and the access
//! units must carry exactly the NAL units of the Annex-B stream the payloader was fed.
//!
//! The captures and the command that made them are in `testdata/gstreamer/` (README.md there).
//! All come from one pipeline: 10 frames of 160x120 H.264 (two slices per picture, an access
//! unit delimiter per picture, IDR at frames 0 and 5), SSRC 0x12345678, first sequence number
//! 65530 and first RTP timestamp 2^32 - 15000, so both wrap inside the stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flowcloud_core::framing::Deframer;
use flowcloud_core::h264::annexb;
use flowcloud_core::h264::{Depacketizer, DepacketizerConfig, Event};

const ANNEX_B: &[u8] = include_bytes!("../testdata/gstreamer/ball-160x120.h264");
const MTU_200: &[u8] = include_bytes!("../testdata/gstreamer/ball-160x120-mtu200.rtp");
const MTU_1400_SPSPPS: &[u8] =
    include_bytes!("../testdata/gstreamer/ball-160x120-mtu1400-spspps.rtp");
const MTU_9000: &[u8] = include_bytes!("../testdata/gstreamer/ball-160x120-mtu9000.rtp");

const FRAMES: usize = 10;
const SSRC: u32 = 0x1234_5678;
const FIRST_SEQUENCE: u16 = 65530;
const FIRST_TIMESTAMP: u32 = u32::MAX - 15_000 + 1;
const KEYFRAMES: [usize; 2] = [0, 5];

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// One access unit as the depacketizer emitted it.
#[derive(Debug)]
struct ReceivedAu {
    rtp_timestamp: u32,
    ssrc: u32,
    keyframe: bool,
    nal_count: usize,
    first_sequence: u16,
    last_sequence: u16,
    data: Vec<u8>,
}

/// Everything a capture produced.
#[derive(Debug)]
struct Received {
    access_units: Vec<ReceivedAu>,
    losses: usize,
    errors: Vec<String>,
    packets: usize,
    /// First byte & 0x1f of every RTP payload, in order.
    payload_types: Vec<u8>,
    sps_dimensions: Option<(u32, u32)>,
    stats: flowcloud_core::h264::depacketizer::DepacketizerStats,
}

/// Deframes `capture` fed `chunk` bytes at a time and depacketizes every packet.
fn receive(capture: &[u8], chunk: usize) -> Received {
    let mut deframer = Deframer::<16384>::new();
    let mut depacketizer = Depacketizer::new(
        vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(1 << 20)],
        DepacketizerConfig {
            payload_type: Some(96),
            ..DepacketizerConfig::default()
        },
    );
    let mut out = Received {
        access_units: Vec::new(),
        losses: 0,
        errors: Vec::new(),
        packets: 0,
        payload_types: Vec::new(),
        sps_dimensions: None,
        stats: *depacketizer.stats(),
    };
    for piece in capture.chunks(chunk) {
        let mut input = piece;
        while !input.is_empty() {
            let (used, frame) = deframer.push(input);
            input = &input[used..];
            let packet = match frame {
                Ok(Some(packet)) => packet,
                Ok(None) => continue,
                Err(e) => {
                    out.errors.push(format!("deframe: {e}"));
                    continue;
                }
            };
            out.packets += 1;
            out.payload_types
                .push(packet.get(12).map_or(0, |b| b & 0x1f));
            if let Err(e) = depacketizer.push(packet) {
                out.errors.push(format!("packet {}: {e}", out.packets - 1));
            }
            while let Some(event) = depacketizer.poll_event() {
                match event {
                    Event::AccessUnit(au) => out.access_units.push(ReceivedAu {
                        rtp_timestamp: au.rtp_timestamp,
                        ssrc: au.ssrc,
                        keyframe: au.keyframe,
                        nal_count: au.nal_count,
                        first_sequence: au.first_sequence.0,
                        last_sequence: au.last_sequence.0,
                        data: au.data.to_vec(),
                    }),
                    Event::Loss(loss) => {
                        out.losses += 1;
                        out.errors.push(format!("loss: {loss:?}"));
                    }
                }
            }
        }
    }
    assert!(!deframer.is_mid_frame(), "capture ends inside a frame");
    // Every access unit ended with its marker: flushing must have nothing left to report.
    depacketizer.flush();
    while let Some(event) = depacketizer.poll_event() {
        out.errors.push(format!("after flush: {event:?}"));
    }
    out.sps_dimensions = depacketizer.sps().map(|sps| (sps.width, sps.height));
    out.stats = *depacketizer.stats();
    out
}

fn nal_type(nal: &[u8]) -> u8 {
    nal[0] & 0x1f
}

fn nals(annex_b: &[u8]) -> Vec<&[u8]> {
    annexb::nal_units(annex_b).expect("Annex-B").collect()
}

/// The reference stream split into access units: a new one at every access unit delimiter
/// (x264 writes one at the start of every picture).
fn reference_access_units() -> Vec<Vec<&'static [u8]>> {
    let mut aus: Vec<Vec<&[u8]>> = Vec::new();
    for nal in nals(ANNEX_B) {
        if nal_type(nal) == NAL_AUD || aus.is_empty() {
            aus.push(Vec::new());
        }
        aus.last_mut().unwrap().push(nal);
    }
    aus
}

fn is_parameter_set(nal: &[u8]) -> bool {
    matches!(nal_type(nal), NAL_SPS | NAL_PPS)
}

/// Checks everything that does not depend on how the payloader packed the NAL units.
fn check_common(name: &str, rx: &Received, expected_packets: usize) {
    assert!(rx.errors.is_empty(), "{name}: errors: {:#?}", rx.errors);
    assert_eq!(rx.losses, 0, "{name}: losses");
    assert_eq!(
        rx.packets, expected_packets,
        "{name}: packets in the capture"
    );
    assert_eq!(rx.access_units.len(), FRAMES, "{name}: access units");
    assert_eq!(
        rx.sps_dimensions,
        Some((160, 120)),
        "{name}: SPS dimensions"
    );
    assert_eq!(
        rx.stats.access_units, FRAMES as u64,
        "{name}: stats.access_units"
    );
    assert_eq!(
        rx.stats.lost_access_units, 0,
        "{name}: stats.lost_access_units"
    );
    assert_eq!(rx.stats.lost_packets, 0, "{name}: stats.lost_packets");
    assert_eq!(rx.stats.rejected, 0, "{name}: stats.rejected");
    assert_eq!(rx.stats.duplicates, 0, "{name}: stats.duplicates");
    assert_eq!(rx.stats.late, 0, "{name}: stats.late");
    assert_eq!(
        rx.stats.packets, expected_packets as u64,
        "{name}: stats.packets"
    );

    assert!(
        rx.access_units[0].keyframe,
        "{name}: the first access unit is a keyframe"
    );
    let keyframes: Vec<usize> = rx
        .access_units
        .iter()
        .enumerate()
        .filter(|(_, au)| au.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keyframes, KEYFRAMES, "{name}: keyframe positions");

    // Sequence numbers run on without a gap across the wrap, access unit after access unit.
    assert_eq!(
        rx.access_units[0].first_sequence, FIRST_SEQUENCE,
        "{name}: first sequence"
    );
    for pair in rx.access_units.windows(2) {
        assert_eq!(
            pair[1].first_sequence,
            pair[0].last_sequence.wrapping_add(1),
            "{name}: sequence continuity between access units"
        );
    }
    let last = rx.access_units.last().unwrap().last_sequence;
    assert_eq!(
        usize::from(last.wrapping_sub(FIRST_SEQUENCE)) + 1,
        expected_packets,
        "{name}: last sequence number"
    );

    // Timestamps: 90 kHz at 30 fps from 2^32 - 15000, so they wrap after frame 5. GStreamer
    // rounds each frame's time down, so a step is 2999 or 3000 ticks.
    for (i, au) in rx.access_units.iter().enumerate() {
        assert_eq!(au.ssrc, SSRC, "{name}: SSRC of access unit {i}");
        let elapsed = au.rtp_timestamp.wrapping_sub(FIRST_TIMESTAMP);
        let nominal = 3000 * i as u32;
        assert!(
            elapsed == nominal || elapsed + 1 == nominal,
            "{name}: access unit {i} has timestamp {} ({elapsed} ticks in, expected about {nominal})",
            au.rtp_timestamp
        );
        assert!(
            au.data.starts_with(&annexb::START_CODE),
            "{name}: access unit {i} is Annex-B"
        );
        assert_eq!(
            nals(&au.data).len(),
            au.nal_count,
            "{name}: nal_count of access unit {i}"
        );
        assert_eq!(
            nal_type(nals(&au.data)[0]),
            NAL_AUD,
            "{name}: access unit {i} starts with its AUD"
        );
    }
}

/// Checks that the access units carry exactly the reference stream's NAL units, access unit by
/// access unit, and that concatenated they are the reference stream's NAL units.
fn check_exact_nals(name: &str, rx: &Received) {
    let reference = reference_access_units();
    assert_eq!(reference.len(), FRAMES, "reference access units");
    for (i, (au, expected)) in rx.access_units.iter().zip(&reference).enumerate() {
        assert_eq!(
            &nals(&au.data),
            expected,
            "{name}: NAL units of access unit {i}"
        );
    }
    let all: Vec<u8> = rx
        .access_units
        .iter()
        .flat_map(|au| au.data.iter().copied())
        .collect();
    assert_eq!(nals(&all), nals(ANNEX_B), "{name}: all NAL units");
}

/// Validates the helper itself, so a broken reference cannot make the other tests vacuous.
#[test]
fn reference_stream_is_what_the_readme_says() {
    let aus = reference_access_units();
    assert_eq!(aus.len(), FRAMES);
    for (i, au) in aus.iter().enumerate() {
        let types: Vec<u8> = au.iter().map(|nal| nal_type(nal)).collect();
        let expected: &[u8] = match i {
            0 => &[NAL_AUD, NAL_SPS, NAL_PPS, 6, NAL_IDR, NAL_IDR],
            5 => &[NAL_AUD, NAL_SPS, NAL_PPS, NAL_IDR, NAL_IDR],
            _ => &[NAL_AUD, NAL_SLICE, NAL_SLICE],
        };
        assert_eq!(types, expected, "access unit {i}");
    }
}

#[test]
fn mtu_200_fu_a() {
    for chunk in [usize::MAX, 97, 1] {
        let rx = receive(MTU_200, chunk);
        check_common("mtu200", &rx, 46);
        check_exact_nals("mtu200", &rx);
        // The payloader fragmented every slice and the SEI, and aggregated the rest.
        let fu_a = rx.payload_types.iter().filter(|&&t| t == FU_A).count();
        let stap_a = rx.payload_types.iter().filter(|&&t| t == STAP_A).count();
        assert_eq!((fu_a, stap_a), (35, 6), "mtu200: FU-A and STAP-A packets");
    }
}

#[test]
fn mtu_1400_in_band_parameter_sets() {
    for chunk in [usize::MAX, 97, 1] {
        let rx = receive(MTU_1400_SPSPPS, chunk);
        check_common("mtu1400-spspps", &rx, 11);
        assert_eq!(
            rx.payload_types.iter().filter(|&&t| t == STAP_A).count(),
            10
        );
        assert_eq!(rx.payload_types[1], NAL_IDR, "a single NAL unit packet");

        // config-interval=-1 makes rtph264pay put SPS+PPS before every IDR slice, on top of
        // those already in the stream: without the parameter sets, the NAL units are the
        // reference ones; every parameter set is the reference one; every IDR slice follows
        // an SPS and a PPS.
        let reference = reference_access_units();
        let sps_pps: Vec<&[u8]> = nals(ANNEX_B)
            .into_iter()
            .filter(|n| is_parameter_set(n))
            .collect();
        for (i, (au, expected)) in rx.access_units.iter().zip(&reference).enumerate() {
            let got = nals(&au.data);
            let without = |v: &[&[u8]]| -> Vec<Vec<u8>> {
                v.iter()
                    .filter(|n| !is_parameter_set(n))
                    .map(|n| n.to_vec())
                    .collect()
            };
            assert_eq!(
                without(&got),
                without(expected),
                "mtu1400-spspps: access unit {i} without SPS/PPS"
            );
            for (j, nal) in got.iter().enumerate() {
                if is_parameter_set(nal) {
                    assert!(
                        sps_pps.contains(nal),
                        "mtu1400-spspps: access unit {i} NAL {j} is a reference SPS/PPS"
                    );
                }
                if nal_type(nal) == NAL_IDR {
                    assert!(
                        j >= 2
                            && nal_type(got[j - 2]) == NAL_SPS
                            && nal_type(got[j - 1]) == NAL_PPS,
                        "mtu1400-spspps: access unit {i} IDR slice {j} follows SPS+PPS"
                    );
                }
            }
        }
        let parameter_sets = rx
            .access_units
            .iter()
            .map(|au| {
                nals(&au.data)
                    .into_iter()
                    .filter(|n| is_parameter_set(n))
                    .count()
            })
            .sum::<usize>();
        assert_eq!(
            parameter_sets,
            2 * 3 + 2 * 3,
            "mtu1400-spspps: SPS and PPS count"
        );
    }
}

#[test]
fn mtu_9000_one_stap_a_per_access_unit() {
    for chunk in [usize::MAX, 97, 1] {
        let rx = receive(MTU_9000, chunk);
        check_common("mtu9000", &rx, FRAMES);
        check_exact_nals("mtu9000", &rx);
        assert!(
            rx.payload_types.iter().all(|&t| t == STAP_A),
            "mtu9000: all STAP-A"
        );
        for (i, au) in rx.access_units.iter().enumerate() {
            assert_eq!(
                au.first_sequence, au.last_sequence,
                "mtu9000: access unit {i} is one packet"
            );
        }
    }
}
