//! The whole pipeline: Annex-B access unit -> `Packetizer` (`next_framed`) -> byte stream cut
//! in arbitrary chunks -> `Deframer` -> `Depacketizer` -> Annex-B access unit.
//!
//! The input is structured (`arbitrary`): 1..=64 NAL units of types 1..=23 (type 7 is always
//! a real 64x64 SPS), payloads made valid NAL content (emulation prevention applied, last byte
//! non-zero), 3- or 4-byte start codes with optional trailing zero bytes, a payload budget in
//! 3..=65523 (small budgets favoured, so FU-A gets exercised), timestamp, SSRC, first sequence
//! number (wraps included), the chunk pattern, and optionally a packet to drop.
//!
//! Invariants:
//! - packetizing a valid access unit succeeds, with the fewest FU-A fragments the budget
//!   allows; every packet is within `max_packet_len()`, its payload within the budget; the
//!   sequence numbers are consecutive, the timestamp/SSRC/PT are the configured ones, and only
//!   the last packet has the marker; the sender counters match what was written;
//! - the depacketizer, with `max_access_unit_bytes` set to exactly the access unit's size,
//!   emits exactly one access unit, byte-identical to the input with 4-byte start codes, with
//!   the right NAL count, keyframe flag, timestamp, SSRC, first/last sequence numbers and SPS;
//! - a preceding access unit is emitted intact; with one packet of the second dropped, that
//!   second access unit is never emitted, and exactly one `Loss` is reported for it.
#![no_main]

use arbitrary::Arbitrary;
use flowcloud_core::framing::Deframer;
use flowcloud_core::h264::{
    Depacketizer, DepacketizerConfig, Event, Packetizer, PacketizerConfig, Sps,
};
use flowcloud_core::rtp::RtpPacket;
use flowcloud_core::seq::SeqNum;
use libfuzzer_sys::fuzz_target;

/// 64x64 constrained baseline SPS from x264 (the crate documentation's example).
const SPS: [u8; 26] = [
    0x67, 0x42, 0xc0, 0x15, 0xd9, 0x04, 0x26, 0xc0, 0x5a, 0x83, 0x03, 0x03, 0x52, 0x80, 0x00, 0x00,
    0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x47, 0x8b, 0x17, 0x24,
];
/// Largest access unit built, to keep executions fast.
const MAX_AU: usize = 512 << 10;

#[derive(Arbitrary, Debug)]
struct Nal {
    kind: u8,
    nri: u8,
    body: Vec<u8>,
    /// Repeat the body this many times (mod 64, plus one) to make large NAL units cheaply.
    repeat: u8,
    three_byte_start_code: bool,
    trailing_zeros: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    nals: Vec<Nal>,
    budget: u16,
    timestamp: u32,
    ssrc: u32,
    initial_sequence: u16,
    leading_zeros: bool,
    /// Tell the depacketizer the first sequence number instead of sending a warm-up access
    /// unit before.
    known_initial_sequence: bool,
    chunks: Vec<u8>,
    drop: Option<u16>,
}

/// Applies emulation prevention so the bytes are valid NAL content after `header`.
fn sanitize(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    let mut zeros = 0;
    for &b in body {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    if out.last() == Some(&0) {
        // A NAL unit never ends in a zero byte; "00 00 80" is fine content.
        out.push(0x80);
    }
    out
}

fn budget_of(raw: u16) -> usize {
    let raw = usize::from(raw);
    match raw & 3 {
        0 => 3 + (raw >> 2) % 16,
        1 => 3 + (raw >> 2) % 300,
        2 => 1000 + (raw >> 2) % 1000,
        _ => 3 + raw % 65_521, // 3..=65523
    }
}

fn chunk_size(b: u8) -> usize {
    if b & 0x80 == 0 {
        usize::from(b) + 1
    } else {
        usize::from(b & 0x7f) * 521 + 1
    }
}

/// One packetized access unit: the framed packets (length prefix included).
fn packetize(p: &mut Packetizer, au: &[u8], ts: u32) -> Vec<Vec<u8>> {
    let budget = p.config().payload_budget;
    let max = p.max_packet_len();
    let first_seq = p.next_sequence();
    let (count0, octets0) = (p.packet_count(), p.octet_count());
    let mut out = Vec::new();
    let mut octets = 0u32;
    let mut buf = vec![0u8; max + 2];
    let mut packets = p.packetize(au, ts).expect("valid access unit packetizes");
    while let Some(len) = packets
        .next_framed(&mut buf)
        .expect("buffer of max_packet_len + 2")
    {
        assert!(len <= max + 2, "framed packet of {len} bytes > {}", max + 2);
        assert_eq!(usize::from(u16::from_be_bytes([buf[0], buf[1]])), len - 2);
        out.push(buf[..len].to_vec());
    }
    // Exhausted iterators stay exhausted.
    assert_eq!(packets.next_packet(&mut buf), Ok(None));
    let n = out.len();
    for (i, framed) in out.iter().enumerate() {
        let pkt = RtpPacket::parse(&framed[2..]).expect("packetizer output parses");
        assert!(
            pkt.payload.len() <= budget,
            "payload {} > budget {budget}",
            pkt.payload.len()
        );
        assert_eq!(pkt.sequence, SeqNum(first_seq.0.wrapping_add(i as u16)));
        assert_eq!(pkt.timestamp, ts);
        assert_eq!(pkt.ssrc, p.config().ssrc);
        assert_eq!(pkt.payload_type, p.config().payload_type);
        assert_eq!(pkt.marker, i + 1 == n, "marker on packet {i} of {n}");
        assert_eq!(pkt.padding, 0);
        assert!(pkt.extension.is_none() && pkt.csrcs().len() == 0);
        octets = octets.wrapping_add(pkt.payload.len() as u32);
    }
    assert_eq!(p.packet_count(), count0.wrapping_add(n as u32));
    assert_eq!(p.octet_count(), octets0.wrapping_add(octets));
    assert_eq!(
        p.next_sequence(),
        SeqNum(first_seq.0.wrapping_add(n as u16))
    );
    out
}

/// Checks the FU-A fragments of each fragmented NAL unit: the fewest the budget allows, and
/// (optionally) near-equal sizes.
fn check_fragments(packets: &[Vec<u8>], nals: &[Vec<u8>], budget: usize) {
    let mut fragments: Vec<Vec<usize>> = Vec::new();
    for framed in packets {
        let pkt = RtpPacket::parse(&framed[2..]).expect("parses");
        if pkt.payload[0] & 0x1f == 28 {
            if pkt.payload[1] & 0x80 != 0 {
                fragments.push(Vec::new());
            }
            fragments
                .last_mut()
                .expect("FU-A start first")
                .push(pkt.payload.len() - 2);
        }
    }
    let big: Vec<&Vec<u8>> = nals.iter().filter(|n| n.len() > budget).collect();
    assert_eq!(fragments.len(), big.len(), "fragmented NAL units");
    for (sizes, nal) in fragments.iter().zip(big) {
        let data_len = nal.len() - 1;
        assert_eq!(sizes.iter().sum::<usize>(), data_len);
        assert_eq!(
            sizes.len(),
            data_len.div_ceil(budget - 2),
            "fragment count for {data_len} bytes, budget {budget}: {sizes:?}"
        );
        // The FU-A fragments of one NAL unit differ in size by at most one byte.
        {
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(
                max - min <= 1,
                "unbalanced fragments {sizes:?} for {data_len} bytes, budget {budget}"
            );
        }
    }
}

/// Deframes `wire` in chunks and depacketizes; returns (events, depacketizer).
fn receive(
    wire: &[u8],
    pattern: &[u8],
    max_au: usize,
    initial_sequence: Option<u16>,
) -> (
    Vec<(u32, Result<(Vec<u8>, usize, bool, SeqNum, SeqNum, u32), ()>)>,
    Option<Sps>,
) {
    let buf = vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(max_au)];
    let cfg = DepacketizerConfig {
        max_access_unit_bytes: max_au,
        initial_sequence,
        ..DepacketizerConfig::default()
    };
    let mut d = Depacketizer::new(buf, cfg);
    assert_eq!(d.max_access_unit_bytes(), max_au);
    let mut deframer = Box::new(Deframer::<65535>::new());
    let mut events = Vec::new();
    let drain = |d: &mut Depacketizer<Vec<u8>>, events: &mut Vec<_>| {
        while let Some(e) = d.poll_event() {
            events.push(match e {
                Event::AccessUnit(au) => (
                    au.rtp_timestamp,
                    Ok((
                        au.data.to_vec(),
                        au.nal_count,
                        au.keyframe,
                        au.first_sequence,
                        au.last_sequence,
                        au.ssrc,
                    )),
                ),
                Event::Loss(l) => (l.rtp_timestamp, Err(())),
            });
        }
    };
    let mut rest = wire;
    let mut i = 0;
    while !rest.is_empty() {
        let size = pattern
            .get(i % pattern.len().max(1))
            .map_or(rest.len(), |&b| chunk_size(b))
            .min(rest.len());
        i += 1;
        let mut chunk = &rest[..size];
        rest = &rest[size..];
        while !chunk.is_empty() {
            let (used, frame) = deframer.push(chunk);
            assert!(used > 0);
            if let Some(packet) = frame.expect("packetizer frames fit 65535") {
                d.push(packet).expect("packetizer output depacketizes");
                drain(&mut d, &mut events);
            }
            chunk = &chunk[used..];
        }
    }
    assert!(!deframer.is_mid_frame());
    d.flush();
    drain(&mut d, &mut events);
    (events, d.sps().copied())
}

fuzz_target!(|input: Input| {
    if input.nals.is_empty() {
        return;
    }
    // Build the access unit as the encoder would hand it over, and as it must come back.
    let mut au = Vec::new();
    let mut expected = Vec::new();
    let mut nals = Vec::new();
    if input.leading_zeros {
        au.extend_from_slice(&[0, 0]);
    }
    let mut has_sps = false;
    let mut keyframe = false;
    for nal in input.nals.iter().take(64) {
        let kind = 1 + nal.kind % 23;
        let nri = (nal.nri & 3) << 5;
        let bytes = if kind == 7 {
            has_sps = true;
            let mut s = SPS.to_vec();
            s[0] = nri | 7;
            s
        } else {
            let mut body = Vec::new();
            for _ in 0..=(nal.repeat % 64) {
                body.extend_from_slice(&nal.body);
            }
            sanitize(nri | kind, &body)
        };
        keyframe |= kind == 5;
        au.extend_from_slice(if nal.three_byte_start_code {
            &[0, 0, 1]
        } else {
            &[0, 0, 0, 1]
        });
        au.extend_from_slice(&bytes);
        au.extend(std::iter::repeat_n(
            0u8,
            usize::from(nal.trailing_zeros % 3),
        ));
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(&bytes);
        nals.push(bytes);
        if au.len() > MAX_AU {
            return;
        }
    }

    let budget = budget_of(input.budget);
    let cfg = PacketizerConfig {
        ssrc: input.ssrc,
        payload_type: 96,
        payload_budget: budget,
        initial_sequence: input.initial_sequence,
    };
    let mut p = Packetizer::new(cfg).expect("budget in 3..=65523");
    assert_eq!(p.max_packet_len(), 12 + budget);

    // Either a small access unit first (an AUD, which may begin a stream), so the
    // depacketizer knows the sequence numbers when one of the second access unit's packets
    // goes missing, or the depacketizer is told the first sequence number.
    let warmup_au = [0, 0, 0, 1, 0x09, 0xf0];
    let warmup_ts = input.timestamp.wrapping_sub(3000);
    let warmup = if input.known_initial_sequence {
        Vec::new()
    } else {
        packetize(&mut p, &warmup_au, warmup_ts)
    };
    let first_seq = p.next_sequence();
    let initial_sequence = input.known_initial_sequence.then_some(first_seq.0);
    let packets = packetize(&mut p, &au, input.timestamp);
    check_fragments(&packets, &nals, budget);
    let last_seq = SeqNum(p.next_sequence().0.wrapping_sub(1));

    let mut wire: Vec<u8> = warmup.concat();
    wire.extend(packets.concat());
    let max_au = expected.len().max(warmup_au.len());
    let (events, sps) = receive(&wire, &input.chunks, max_au, initial_sequence);
    let mut expected_events = Vec::new();
    if !warmup.is_empty() {
        let first = SeqNum(first_seq.0.wrapping_sub(warmup.len() as u16));
        let last = SeqNum(first_seq.0.wrapping_sub(1));
        expected_events.push((
            warmup_ts,
            Ok((warmup_au.to_vec(), 1, false, first, last, input.ssrc)),
        ));
    }
    let warmup_events = expected_events.clone();
    expected_events.push((
        input.timestamp,
        Ok((
            expected.clone(),
            nals.len(),
            keyframe,
            first_seq,
            last_seq,
            input.ssrc,
        )),
    ));
    if events != expected_events {
        panic!(
            "round trip differs\n  sent     {:02x?}\n  (nal_count, keyframe, first, last, ssrc) = {:?}\n  expected {} events, received {:02x?}",
            expected,
            (nals.len(), keyframe, first_seq, last_seq, input.ssrc),
            expected_events.len(),
            events,
        );
    }
    if has_sps {
        assert_eq!(sps.map(|s| (s.width, s.height)), Some((64, 64)));
    } else {
        assert_eq!(sps, None);
    }

    // Drop one packet of the second access unit: it must be reported lost, never emitted.
    if let Some(drop) = input.drop {
        let drop = usize::from(drop) % packets.len();
        let mut wire: Vec<u8> = warmup.concat();
        for (i, pkt) in packets.iter().enumerate() {
            if i != drop {
                wire.extend_from_slice(pkt);
            }
        }
        let (events, _) = receive(&wire, &input.chunks, max_au, initial_sequence);
        assert_eq!(events[..warmup_events.len()], warmup_events[..]);
        let main = &events[warmup_events.len()..];
        assert!(
            main.iter().all(|e| e.0 == input.timestamp && e.1.is_err()),
            "packet {drop} of {} dropped, yet: {main:02x?}",
            packets.len()
        );
        // With its only packet gone, nothing of the access unit ever arrived.
        let losses = usize::from(packets.len() > 1);
        assert_eq!(
            main.len(),
            losses,
            "packet {drop} of {} dropped: {main:?}",
            packets.len()
        );
    }
});
