//! RTCP: compound packets from arbitrary bytes, and a structured write → parse round trip from
//! the same input (read through `arbitrary`).
//!
//! Raw bytes, invariants:
//! - `parse_compound` yields exactly what walking `RtcpPacket::parse` by hand yields, stops
//!   after the first error, and never goes past the input; each packet's wire length is its
//!   header's `packet_len()`;
//! - `validate_compound` succeeds only if every packet parses, the first is SR/RR, only the last
//!   is padded and the lengths add up; it then counts the packets `parse_compound` yields;
//! - every SR, RR, PLI, APP (data a multiple of 4), BYE and SDES CNAME re-serializes with its
//!   writer, and the result parses back to the same values (byte-identical when the original
//!   had no padding and nothing after the known fields); an APP whose data is not a multiple
//!   of 4 is refused by `App::write`; SDES chunks and items iterate as counted;
//! - clock conversions: `from_micros(t).to_micros() == t` within an era, compact units survive
//!   a trip through microseconds within one unit;
//! - report-block fields survive (the 24-bit cumulative loss sign-extends and re-encodes);
//!   `round_trip_time` never panics and is never negative.
//!
//! Structured: a list of SR/RR/SDES/BYE/APP/PLI built from the input, written back to back with
//! `CompoundWriter`, parses back to the same packets (cumulative loss clamped to 24 bits), and
//! `validate_compound` accepts it exactly when it starts with SR/RR.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use flowcloud_core::rtcp::{
    self, App, Bye, CompoundWriter, HEADER_LEN, NtpTimestamp, PT_APP, PT_BYE, PT_PSFB, PT_RR,
    PT_SDES, PT_SR, Pli, REPORT_BLOCK_LEN, ReceiverReport, ReportBlock, ReportBlocks, RtcpError,
    RtcpHeader, RtcpPacket, SDES_CNAME, SenderReport, SsrcList, parse_compound, round_trip_time,
    validate_compound, write_sdes_cname,
};
use libfuzzer_sys::fuzz_target;

fn reparse(bytes: &[u8]) -> RtcpPacket<'_> {
    let (p, len) = RtcpPacket::parse(bytes).expect("written packet parses");
    assert_eq!(len, bytes.len(), "written packet length");
    assert_eq!(bytes.len() % 4, 0, "written packet not 32-bit aligned");
    p
}

fn check_blocks(blocks: &[ReportBlock], arrival: NtpTimestamp) {
    for b in blocks {
        assert!(
            (-(1 << 23)..(1 << 23)).contains(&b.cumulative_lost),
            "{b:?}"
        );
        if let Some(rtt) = round_trip_time(arrival, b) {
            assert!((rtt as i32) >= 0, "negative RTT {rtt} for {b:?}");
        }
    }
}

/// Re-serializes one parsed packet where a writer exists and checks it reads back the same.
/// `wire` is the packet's bytes as received, `header` its header.
fn reserialize(packet: &RtcpPacket<'_>, wire: &[u8], header: &RtcpHeader, arrival: NtpTimestamp) {
    let mut out = vec![0u8; rtcp::MAX_PACKET_LEN];
    // Bytes the packet's known fields occupy: exactly the wire bytes when nothing (padding,
    // profile extensions, stray bytes) follows them.
    let same_bytes = |written: &[u8], known_len: usize| {
        if !header.padding && known_len == wire.len() {
            assert_eq!(
                written, wire,
                "re-serialized packet differs from the original"
            );
        }
    };
    match packet {
        RtcpPacket::SenderReport(sr) => {
            let blocks: Vec<ReportBlock> = sr.reports.iter().collect();
            assert_eq!(blocks.len(), usize::from(header.count));
            check_blocks(&blocks, arrival);
            let again = SenderReport {
                reports: ReportBlocks::new(&blocks),
                ..*sr
            };
            assert_eq!(
                again.encoded_len(),
                HEADER_LEN + 24 + blocks.len() * REPORT_BLOCK_LEN
            );
            let n = again.write(&mut out).expect("parsed SR writes");
            assert_eq!(reparse(&out[..n]), RtcpPacket::SenderReport(*sr));
            same_bytes(&out[..n], n);
        }
        RtcpPacket::ReceiverReport(rr) => {
            let blocks: Vec<ReportBlock> = rr.reports.iter().collect();
            assert_eq!(blocks.len(), usize::from(header.count));
            check_blocks(&blocks, arrival);
            let again = ReceiverReport {
                reports: ReportBlocks::new(&blocks),
                ..*rr
            };
            let n = again.write(&mut out).expect("parsed RR writes");
            assert_eq!(reparse(&out[..n]), RtcpPacket::ReceiverReport(*rr));
            same_bytes(&out[..n], n);
        }
        RtcpPacket::Pli(pli) => {
            assert_eq!((header.packet_type, header.count), (PT_PSFB, 1));
            let n = pli.write(&mut out).expect("PLI writes");
            assert_eq!(n, Pli::LEN);
            assert_eq!(reparse(&out[..n]), RtcpPacket::Pli(*pli));
            same_bytes(&out[..n], n);
        }
        RtcpPacket::App(app) => {
            assert_eq!(app.subtype, header.count);
            match app.write(&mut out) {
                Ok(n) => {
                    assert_eq!(app.data.len() % 4, 0);
                    assert_eq!(reparse(&out[..n]), RtcpPacket::App(*app));
                    same_bytes(&out[..n], n);
                }
                Err(RtcpError::FieldOutOfRange { .. }) => {
                    assert_ne!(app.data.len() % 4, 0, "{app:?}")
                }
                Err(e) => panic!("App::write: {e:?}"),
            }
        }
        RtcpPacket::Bye(bye) => {
            let ssrcs: Vec<u32> = bye.ssrcs.iter().collect();
            assert_eq!(ssrcs.len(), usize::from(header.count));
            let again = Bye {
                ssrcs: SsrcList::new(&ssrcs),
                reason: bye.reason,
            };
            let n = again.write(&mut out).expect("parsed BYE writes");
            assert_eq!(n, again.encoded_len());
            assert_eq!(reparse(&out[..n]), RtcpPacket::Bye(*bye));
        }
        RtcpPacket::Sdes(sdes) => {
            assert_eq!(sdes.chunk_count(), header.count);
            let chunks: Vec<_> = sdes.chunks().collect();
            assert_eq!(
                chunks.len(),
                usize::from(header.count),
                "SDES chunks yielded vs counted"
            );
            for chunk in &chunks {
                for item in chunk.items() {
                    assert_ne!(item.item_type, 0, "terminator yielded as an item");
                }
            }
            if let (Some(first), Some(cname)) = (chunks.first(), sdes.cname()) {
                assert_eq!(first.cname(), Some(cname));
                let n = write_sdes_cname(first.ssrc, cname, &mut out)
                    .expect("CNAME of <= 255 bytes writes");
                let RtcpPacket::Sdes(again) = reparse(&out[..n]) else {
                    panic!("SDES written, something else parsed");
                };
                assert_eq!(again.chunk_count(), 1);
                let chunk = again.chunks().next().expect("one chunk");
                assert_eq!(chunk.ssrc, first.ssrc);
                assert_eq!(again.cname(), Some(cname));
                let items: Vec<_> = chunk.items().collect();
                assert_eq!(items.len(), 1);
                assert_eq!((items[0].item_type, items[0].value), (SDES_CNAME, cname));
            }
        }
        RtcpPacket::Unknown {
            packet_type,
            count,
            body,
        } => {
            assert_eq!((*packet_type, *count), (header.packet_type, header.count));
            assert!(
                ![PT_SR, PT_RR, PT_SDES, PT_BYE, PT_APP].contains(packet_type)
                    && !(*packet_type == PT_PSFB && *count == 1),
                "known type {packet_type}/{count} parsed as Unknown"
            );
            assert!(body.len() <= wire.len() - HEADER_LEN);
        }
    }
}

/// Clock conversions, on the first 8 bytes read as a number.
fn conversions(x: u64) {
    // "from_micros(t).to_micros() == t within one era"
    let t = x % ((1u64 << 32) * 1_000_000);
    assert_eq!(
        NtpTimestamp::from_micros(t).to_micros(),
        t,
        "NTP micros round trip"
    );
    let ntp = NtpTimestamp(x);
    assert_eq!(NtpTimestamp::new(ntp.seconds(), ntp.fraction()), ntp);
    assert_eq!(
        ntp.mid32(),
        ((ntp.seconds() as u64) << 16 | (ntp.fraction() >> 16) as u64) as u32
    );
    let _ = NtpTimestamp::from_nanos(x);
    // Compact (1/65536 s) form: microseconds and back loses at most one unit.
    let units = x as u32;
    let back = rtcp::compact_from_micros(rtcp::compact_to_micros(units));
    assert!(
        back == units || back + 1 == units,
        "compact {units} -> {back}"
    );
    assert!(rtcp::compact_from_micros(x) as u64 <= x.saturating_mul(65_536) / 1_000_000 + 1);
}

fn raw(data: &[u8]) {
    let first8 = u64::from_be_bytes(core::array::from_fn(|i| data.get(i).copied().unwrap_or(0)));
    conversions(first8);
    let arrival = NtpTimestamp(first8);
    let mut by_hand = Vec::new();
    let mut rest = data;
    let mut lens = Vec::new();
    while !rest.is_empty() {
        match RtcpPacket::parse(rest) {
            Ok((packet, len)) => {
                assert!(
                    len >= HEADER_LEN && len <= rest.len() && len % 4 == 0,
                    "length {len} of {}",
                    rest.len()
                );
                let header = RtcpHeader::parse(rest).expect("parsed packet has a header");
                assert_eq!(header.packet_len(), len);
                reserialize(&packet, &rest[..len], &header, arrival);
                by_hand.push(Ok(packet));
                lens.push((len, header));
                rest = &rest[len..];
            }
            Err(e) => {
                by_hand.push(Err(e));
                break;
            }
        }
    }
    let iterated: Vec<_> = parse_compound(data).collect();
    assert_eq!(iterated, by_hand, "parse_compound vs RtcpPacket::parse");

    match validate_compound(data) {
        Ok(n) => {
            assert!(by_hand.iter().all(Result::is_ok) && !by_hand.is_empty());
            assert_eq!(n, by_hand.len());
            assert!(matches!(lens[0].1.packet_type, PT_SR | PT_RR));
            assert!(lens[..lens.len() - 1].iter().all(|(_, h)| !h.padding));
        }
        Err(_) => {
            let ok = !by_hand.is_empty()
                && by_hand.iter().all(Result::is_ok)
                && matches!(lens[0].1.packet_type, PT_SR | PT_RR)
                && lens[..lens.len() - 1].iter().all(|(_, h)| !h.padding);
            assert!(!ok, "validate_compound rejected a valid compound");
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Block {
    ssrc: u32,
    fraction_lost: u8,
    cumulative_lost: i32,
    extended_highest_seq: u32,
    jitter: u32,
    last_sr: u32,
    delay_since_last_sr: u32,
}

#[derive(Arbitrary, Debug)]
enum Spec {
    Sr {
        ssrc: u32,
        ntp: u64,
        rtp: u32,
        packets: u32,
        octets: u32,
        blocks: Vec<Block>,
    },
    Rr {
        ssrc: u32,
        blocks: Vec<Block>,
    },
    Cname {
        ssrc: u32,
        cname: Vec<u8>,
    },
    Bye {
        ssrcs: Vec<u32>,
        reason: Option<Vec<u8>>,
    },
    App {
        subtype: u8,
        ssrc: u32,
        name: [u8; 4],
        data: Vec<u8>,
    },
    Pli {
        sender: u32,
        media: u32,
    },
}

fn block(b: &Block) -> ReportBlock {
    ReportBlock {
        ssrc: b.ssrc,
        fraction_lost: b.fraction_lost,
        cumulative_lost: b.cumulative_lost,
        extended_highest_seq: b.extended_highest_seq,
        jitter: b.jitter,
        last_sr: b.last_sr,
        delay_since_last_sr: b.delay_since_last_sr,
    }
}

fn structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(specs) = Vec::<Spec>::arbitrary(&mut u) else {
        return;
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut w = CompoundWriter::new(&mut buf);
    // (packet type, index in `specs`) of each packet written.
    let mut written: Vec<(u8, usize)> = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let before = w.len();
        let res: Result<usize, RtcpError> = match spec {
            Spec::Sr {
                ssrc,
                ntp,
                rtp,
                packets,
                octets,
                blocks,
            } => {
                let blocks: Vec<_> = blocks.iter().map(block).collect();
                let sr = SenderReport {
                    ssrc: *ssrc,
                    ntp: NtpTimestamp(*ntp),
                    rtp_timestamp: *rtp,
                    packet_count: *packets,
                    octet_count: *octets,
                    reports: ReportBlocks::new(&blocks),
                };
                let r = w.push_with(|out| sr.write(out));
                if blocks.len() > 31 {
                    assert!(matches!(r, Err(RtcpError::FieldOutOfRange { .. })), "{r:?}");
                }
                r
            }
            Spec::Rr { ssrc, blocks } => {
                let blocks: Vec<_> = blocks.iter().map(block).collect();
                let rr = ReceiverReport {
                    ssrc: *ssrc,
                    reports: ReportBlocks::new(&blocks),
                };
                let r = w.push_with(|out| rr.write(out));
                if blocks.len() > 31 {
                    assert!(matches!(r, Err(RtcpError::FieldOutOfRange { .. })), "{r:?}");
                }
                r
            }
            Spec::Cname { ssrc, cname } => {
                let r = w.push_with(|out| write_sdes_cname(*ssrc, cname, out));
                if cname.len() > 255 {
                    assert!(matches!(r, Err(RtcpError::FieldOutOfRange { .. })), "{r:?}");
                }
                r
            }
            Spec::Bye { ssrcs, reason } => {
                let bye = Bye {
                    ssrcs: SsrcList::new(ssrcs),
                    reason: reason.as_deref(),
                };
                let r = w.push_with(|out| bye.write(out));
                if ssrcs.len() > 31 || reason.as_ref().is_some_and(|r| r.len() > 255) {
                    assert!(matches!(r, Err(RtcpError::FieldOutOfRange { .. })), "{r:?}");
                }
                r
            }
            Spec::App {
                subtype,
                ssrc,
                name,
                data,
            } => {
                let app = App {
                    subtype: *subtype,
                    ssrc: *ssrc,
                    name: *name,
                    data,
                };
                let r = w.push_with(|out| app.write(out));
                if *subtype > 31 || data.len() % 4 != 0 {
                    assert!(matches!(r, Err(RtcpError::FieldOutOfRange { .. })), "{r:?}");
                }
                r
            }
            Spec::Pli { sender, media } => w.push_with(|out| {
                Pli {
                    sender_ssrc: *sender,
                    media_ssrc: *media,
                }
                .write(out)
            }),
        };
        match res {
            Ok(total) => {
                assert!(total > before && (total - before) % 4 == 0);
                let kind = match spec {
                    Spec::Sr { .. } => PT_SR,
                    Spec::Rr { .. } => PT_RR,
                    Spec::Cname { .. } => PT_SDES,
                    Spec::Bye { .. } => PT_BYE,
                    Spec::App { .. } => PT_APP,
                    Spec::Pli { .. } => PT_PSFB,
                };
                written.push((kind, index));
            }
            Err(RtcpError::BufferTooSmall { .. }) => break,
            Err(RtcpError::FieldOutOfRange { .. }) => {
                assert_eq!(w.len(), before, "a failed write appended bytes")
            }
            Err(e) => panic!("unexpected write error {e:?}"),
        }
    }
    let compound = w.finish();
    let parsed: Vec<_> = parse_compound(compound).collect();
    assert_eq!(parsed.len(), written.len(), "packets written vs parsed");
    for (p, (kind, index)) in parsed.iter().zip(&written) {
        let p = p.as_ref().expect("written compound parses");
        let spec = &specs[*index];
        match (p, spec) {
            (
                RtcpPacket::SenderReport(sr),
                Spec::Sr {
                    ssrc,
                    ntp,
                    rtp,
                    packets,
                    octets,
                    blocks,
                },
            ) => {
                assert_eq!(
                    (
                        sr.ssrc,
                        sr.ntp.0,
                        sr.rtp_timestamp,
                        sr.packet_count,
                        sr.octet_count
                    ),
                    (*ssrc, *ntp, *rtp, *packets, *octets)
                );
                same_blocks(&sr.reports, blocks);
            }
            (RtcpPacket::ReceiverReport(rr), Spec::Rr { ssrc, blocks }) => {
                assert_eq!(rr.ssrc, *ssrc);
                same_blocks(&rr.reports, blocks);
            }
            (RtcpPacket::Sdes(sdes), Spec::Cname { ssrc, cname }) => {
                assert_eq!(sdes.chunk_count(), 1);
                assert_eq!(sdes.chunks().next().map(|c| c.ssrc), Some(*ssrc));
                assert_eq!(sdes.cname(), Some(&cname[..]));
            }
            (RtcpPacket::Bye(bye), Spec::Bye { ssrcs, reason }) => {
                assert_eq!(bye.ssrcs.iter().collect::<Vec<_>>(), *ssrcs);
                assert_eq!(bye.reason, reason.as_deref());
            }
            (
                RtcpPacket::App(app),
                Spec::App {
                    subtype,
                    ssrc,
                    name,
                    data,
                },
            ) => {
                assert_eq!(
                    (app.subtype, app.ssrc, app.name, app.data),
                    (*subtype, *ssrc, *name, &data[..])
                );
            }
            (RtcpPacket::Pli(pli), Spec::Pli { sender, media }) => {
                assert_eq!((pli.sender_ssrc, pli.media_ssrc), (*sender, *media));
            }
            (p, s) => panic!("wrote {s:?} (type {kind}), parsed {p:?}"),
        }
    }
    let first_is_report = written
        .first()
        .is_some_and(|(k, _)| matches!(*k, PT_SR | PT_RR));
    match validate_compound(compound) {
        Ok(n) => assert!(first_is_report && n == written.len()),
        Err(e) => assert!(
            !first_is_report || compound.is_empty(),
            "validate_compound: {e:?} on a writer's compound"
        ),
    }
}

fn same_blocks(got: &ReportBlocks<'_>, sent: &[Block]) {
    assert_eq!(got.len(), sent.len());
    for (g, s) in got.iter().zip(sent) {
        let mut s = block(s);
        s.cumulative_lost = s.cumulative_lost.clamp(-(1 << 23), (1 << 23) - 1);
        assert_eq!(g, s);
    }
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    structured(data);
});
