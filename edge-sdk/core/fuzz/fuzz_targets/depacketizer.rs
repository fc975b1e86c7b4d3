//! H.264 depacketizer: an arbitrary sequence of RTP packets into one `Depacketizer`.
//!
//! Input layout: `data[0]` picks the configuration (see [`config`]: access unit limit,
//! buffer size, payload type filter, SPS dimension limit, known initial sequence number);
//! then records of
//! `ctl: u8, len: u16 BE, bytes[len]` (a short last record takes what is left):
//! - `ctl & 0x80 != 0`: `bytes` is a whole RTP packet, pushed as is (seeds are real packets);
//! - otherwise `bytes` is an RTP payload and the header is synthesized from `ctl`: the
//!   sequence number steps by +1 / 0 (duplicate) / -1 (late) / +2 (gap) / -30000 (restart)
//!   from the last synthesized one, bit 3 advances the timestamp, bit 4 sets the marker,
//!   bit 5 uses another payload type, bit 6 another SSRC.
//!
//! After every push, `poll_event()` is drained. Invariants:
//! - a push after draining never returns `EventsPending`;
//! - at most two events per push (the previous access unit and the current one);
//! - every access unit starts with 00 00 00 01, is at most `max_access_unit_bytes()`, has
//!   1..=64 NAL units, at least as many start codes as `nal_count`, and (when no NAL unit
//!   contains a stray start code) exactly `nal_count` NAL units, with `keyframe` matching an
//!   IDR slice among them; a keyframe flag always has an IDR NAL unit behind it;
//! - every sequence number from `first_sequence` to `last_sequence` was pushed (an access unit
//!   with a hole is never emitted);
//! - the SSRC of every access unit is the stream's;
//! - the statistics never decrease, and `access_units` / `lost_access_units` equal the
//!   numbers of events seen (no event is ever dropped);
//! - after `flush()`, nothing is in progress: a second flush yields nothing.
#![no_main]

use std::collections::HashSet;

use flowcloud_core::h264::annexb::nal_units;
use flowcloud_core::h264::depacketizer::DepacketizerStats;
use flowcloud_core::h264::{
    DepacketizeError, Depacketizer, DepacketizerConfig, Event, MAX_NALS_PER_ACCESS_UNIT,
};
use flowcloud_core::rtp::RtpPacket;
use libfuzzer_sys::fuzz_target;

const SSRC: u32 = 0x1234_5678;
const PT: u8 = 96;
const FIRST_SEQ: u16 = 65_501;

fn config(b: u8) -> (usize, DepacketizerConfig) {
    let max_au = if b & 0x01 == 0 { 64 << 10 } else { 4 << 10 };
    // Sometimes a buffer much smaller than `buffer_len_for` asks, so the "half the buffer"
    // fallback and the buffer-end check are exercised.
    let buf_len = if b & 0x02 == 0 {
        Depacketizer::<Vec<u8>>::buffer_len_for(max_au)
    } else {
        usize::from(b >> 5) * 1024 + 64
    };
    let cfg = DepacketizerConfig {
        payload_type: if b & 0x04 == 0 { None } else { Some(PT) },
        max_width: if b & 0x08 == 0 { 4096 } else { 320 },
        max_height: if b & 0x08 == 0 { 4096 } else { 240 },
        max_access_unit_bytes: max_au,
        // The first synthesized sequence number.
        initial_sequence: if b & 0x10 == 0 { None } else { Some(FIRST_SEQ) },
    };
    (buf_len, cfg)
}

fn stats_monotonic(before: &DepacketizerStats, after: &DepacketizerStats) {
    let b = [
        before.packets,
        before.lost_packets,
        before.duplicates,
        before.late,
        before.rejected,
        before.access_units,
        before.lost_access_units,
    ];
    let a = [
        after.packets,
        after.lost_packets,
        after.duplicates,
        after.late,
        after.rejected,
        after.access_units,
        after.lost_access_units,
    ];
    for (i, (x, y)) in b.iter().zip(a.iter()).enumerate() {
        assert!(y >= x, "stats field {i} went down: {before:?} -> {after:?}");
    }
}

struct Checker {
    /// Sequence numbers of every packet pushed that parsed as RTP.
    pushed: HashSet<u16>,
    stream_ssrc: Option<u32>,
    access_units: u64,
    losses: u64,
}

impl Checker {
    fn drain(&mut self, d: &mut Depacketizer<Vec<u8>>) -> usize {
        let max_au = d.max_access_unit_bytes();
        let mut events = 0;
        while let Some(event) = d.poll_event() {
            events += 1;
            match event {
                Event::AccessUnit(au) => {
                    self.access_units += 1;
                    let data = au.data;
                    assert!(
                        data.starts_with(&[0, 0, 0, 1]),
                        "access unit without leading start code"
                    );
                    assert!(
                        data.len() <= max_au,
                        "access unit of {} bytes > {max_au}",
                        data.len()
                    );
                    assert!(
                        (1..=MAX_NALS_PER_ACCESS_UNIT).contains(&au.nal_count),
                        "nal_count {}",
                        au.nal_count
                    );
                    assert_eq!(Some(au.ssrc), self.stream_ssrc, "access unit SSRC");
                    // Every real start code is found by the scanner (00 00 01 cannot overlap
                    // itself) and real NAL headers are never zero, so the scan sees at least
                    // nal_count units, and a superset of the real NAL headers.
                    let nals: Vec<&[u8]> =
                        nal_units(data).expect("starts with a start code").collect();
                    assert!(
                        nals.len() >= au.nal_count,
                        "{} NAL units scanned, nal_count {}",
                        nals.len(),
                        au.nal_count
                    );
                    let any_idr = nals.iter().any(|n| n[0] & 0x1f == 5);
                    if au.keyframe {
                        assert!(any_idr, "keyframe without an IDR slice");
                    }
                    let start_codes = data.windows(3).filter(|w| *w == [0, 0, 1]).count();
                    if start_codes == au.nal_count {
                        assert_eq!(nals.len(), au.nal_count);
                        assert_eq!(au.keyframe, any_idr, "keyframe flag vs NAL types");
                        for nal in &nals {
                            assert!(nal[0] & 0x80 == 0, "NAL with forbidden bit emitted");
                            let t = nal[0] & 0x1f;
                            assert!((1..=23).contains(&t), "NAL type {t} emitted");
                        }
                    }
                    // No hole: every sequence number of the access unit arrived.
                    let span = au.last_sequence.distance_from(au.first_sequence);
                    assert!(span >= 0, "last_sequence before first_sequence: {au:?}");
                    for i in 0..=span {
                        let s = au.first_sequence.0.wrapping_add(i as u16);
                        assert!(
                            self.pushed.contains(&s),
                            "access unit {:?}..{:?} emitted without packet {s}",
                            au.first_sequence,
                            au.last_sequence
                        );
                    }
                }
                Event::Loss(_) => self.losses += 1,
            }
        }
        let stats = d.stats();
        assert_eq!(
            stats.access_units, self.access_units,
            "access units counted vs emitted"
        );
        assert_eq!(
            stats.lost_access_units, self.losses,
            "losses counted vs emitted"
        );
        events
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg_byte, mut rest)) = data.split_first() else {
        return;
    };
    let (buf_len, cfg) = config(cfg_byte);
    let mut d = Depacketizer::new(vec![0u8; buf_len], cfg);
    assert!(d.max_access_unit_bytes() <= cfg.max_access_unit_bytes);
    let mut checker = Checker {
        pushed: HashSet::new(),
        stream_ssrc: None,
        access_units: 0,
        losses: 0,
    };

    let mut seq: u16 = FIRST_SEQ.wrapping_sub(1);
    let mut ts: u32 = 0xffff_f000;
    let mut packet = Vec::new();
    let mut prev_stats = *d.stats();
    while let Some((&ctl, r)) = rest.split_first() {
        let (len, r) = match r {
            [a, b, r @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), r),
            _ => (r.len(), &[][..]),
        };
        let len = len.min(r.len());
        let (bytes, r) = r.split_at(len);
        rest = r;

        packet.clear();
        if ctl & 0x80 != 0 {
            packet.extend_from_slice(bytes);
        } else {
            seq = match ctl & 0x07 {
                0..=3 => seq.wrapping_add(1),
                4 => seq,
                5 => seq.wrapping_sub(1),
                6 => seq.wrapping_add(2),
                _ => seq.wrapping_sub(30_000),
            };
            if ctl & 0x08 != 0 {
                ts = ts.wrapping_add(3000);
            }
            let marker = ctl & 0x10 != 0;
            let pt = if ctl & 0x20 != 0 { 97 } else { PT };
            let ssrc = if ctl & 0x40 != 0 { SSRC ^ 1 } else { SSRC };
            packet.push(0x80);
            packet.push((u8::from(marker) << 7) | pt);
            packet.extend_from_slice(&seq.to_be_bytes());
            packet.extend_from_slice(&ts.to_be_bytes());
            packet.extend_from_slice(&ssrc.to_be_bytes());
            packet.extend_from_slice(bytes);
        }

        // What the depacketizer will accept as the stream's packet, as far as the header goes.
        if let Ok(p) = RtpPacket::parse(&packet) {
            let pt_ok = cfg.payload_type.is_none_or(|pt| pt == p.payload_type);
            let ssrc_ok = checker.stream_ssrc.is_none_or(|s| s == p.ssrc);
            if pt_ok && ssrc_ok {
                checker.stream_ssrc = Some(p.ssrc);
                checker.pushed.insert(p.sequence.0);
            }
        }

        let result = d.push(&packet);
        assert_ne!(
            result,
            Err(DepacketizeError::EventsPending),
            "EventsPending after draining"
        );
        let stats = *d.stats();
        stats_monotonic(&prev_stats, &stats);
        prev_stats = stats;
        let events = checker.drain(&mut d);
        assert!(events <= 2, "{events} events from one push");
    }

    d.flush();
    let events = checker.drain(&mut d);
    assert!(events <= 1, "{events} events from flush");
    d.flush();
    assert_eq!(checker.drain(&mut d), 0, "second flush produced events");
    stats_monotonic(&prev_stats, d.stats());
});
