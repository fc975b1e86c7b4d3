//! The control exchange over one RFC 4571 connection, on a virtual clock: the camera opens
//! with SR+SDES(CNAME), then media; the worker demultiplexes RTP from RTCP (RFC 5761 §4),
//! answers with RR (LSR/DLSR) and an `FCSG` result; the camera computes the round-trip time
//! from the RR (RFC 3550 §6.4.1), which must equal the link's two one-way delays.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PPS, SPS_64X64, annex_b, nal_unit};
use flowcloud_core::framing::{Deframer, MAX_FRAME_LEN, frame_into};
use flowcloud_core::h264::{Depacketizer, DepacketizerConfig, Event, Packetizer, PacketizerConfig};
use flowcloud_core::results::{ResultView, SegmentationResult};
use flowcloud_core::rtcp::{
    self, CompoundWriter, NtpTimestamp, ReceiverReport, ReportBlock, ReportBlocks, RtcpError,
    RtcpPacket, SenderReport,
};

const CAMERA_SSRC: u32 = 0x0cab_cafe;
const WORKER_SSRC: u32 = 0x0000_beef;
/// 2026-11-21 in NTP time (seconds since 1900), as microseconds: a realistic wall clock.
const START_US: u64 = (3_972_672_000 + 20 * 3600) * 1_000_000;

/// Frames each packet of a compound (or a single RTP packet) onto the wire.
fn put_framed(wire: &mut Vec<u8>, packet: &[u8]) {
    let mut buf = vec![0u8; packet.len() + 2];
    let n = frame_into(packet, &mut buf).unwrap();
    wire.extend_from_slice(&buf[..n]);
}

fn camera_opening(now_us: u64, cname: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut compound = CompoundWriter::new(&mut buf);
    compound
        .push_with::<RtcpError>(|out| {
            SenderReport {
                ssrc: CAMERA_SSRC,
                ntp: NtpTimestamp::from_micros(now_us),
                rtp_timestamp: 0,
                packet_count: 0,
                octet_count: 0,
                reports: ReportBlocks::EMPTY,
            }
            .write(out)
        })
        .unwrap();
    compound
        .push_with::<RtcpError>(|out| rtcp::write_sdes_cname(CAMERA_SSRC, cname, out))
        .unwrap();
    compound.finish().to_vec()
}

#[test]
fn round_trip_time_equals_the_link_delays() {
    for (one_way_us, worker_hold_us) in [(1_000u64, 0u64), (37_000, 12_345), (250_000, 999_999)] {
        // Camera → worker: SR+SDES, then one access unit, all on one framed stream.
        let t_sr = START_US + 5_000_000;
        let mut wire = Vec::new();
        put_framed(&mut wire, &camera_opening(t_sr, b"camera-7@site-3"));
        let au = annex_b(&[SPS_64X64.to_vec(), PPS.to_vec(), nal_unit(5, 3, 5_000, 1)]);
        let mut packetizer = Packetizer::new(PacketizerConfig {
            ssrc: CAMERA_SSRC,
            ..Default::default()
        })
        .unwrap();
        let mut packets = packetizer.packetize(&au, 90_000).unwrap();
        let mut pbuf = vec![0u8; packetizer_buf_len()];
        while let Some(n) = packets.next_framed(&mut pbuf).unwrap() {
            wire.extend_from_slice(&pbuf[..n]);
        }

        // Worker: demultiplex, depacketize, remember the SR's arrival.
        let t_arrival = t_sr + one_way_us;
        let mut deframer = Box::new(Deframer::<MAX_FRAME_LEN>::new());
        let config = DepacketizerConfig::default();
        let buf = vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(config.max_access_unit_bytes)];
        let mut depacketizer = Depacketizer::new(buf, config);
        let (mut cname, mut last_sr, mut access_units) = (None, None, 0);
        let mut input = &wire[..];
        while !input.is_empty() {
            let (used, frame) = deframer.push(input);
            input = &input[used..];
            let Some(packet) = frame.unwrap() else {
                continue;
            };
            if rtcp::is_rtcp(packet) {
                for p in rtcp::parse_compound(packet) {
                    match p.unwrap() {
                        RtcpPacket::SenderReport(sr) => last_sr = Some(sr.ntp.mid32()),
                        RtcpPacket::Sdes(sdes) => cname = sdes.cname().map(<[u8]>::to_vec),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            } else {
                depacketizer.push(packet).unwrap();
                while let Some(event) = depacketizer.poll_event() {
                    match event {
                        Event::AccessUnit(out) => {
                            assert_eq!(out.data, &au[..]);
                            access_units += 1;
                        }
                        Event::Loss(loss) => panic!("{loss:?}"),
                    }
                }
            }
        }
        assert_eq!(cname.as_deref(), Some(&b"camera-7@site-3"[..]));
        assert_eq!(access_units, 1);

        // Worker → camera, `worker_hold_us` later: RR about the camera's stream + a result.
        let block = ReportBlock {
            ssrc: CAMERA_SSRC,
            extended_highest_seq: u32::from(packetizer.next_sequence().0.wrapping_sub(1)),
            last_sr: last_sr.unwrap(),
            delay_since_last_sr: rtcp::compact_from_micros(worker_hold_us),
            ..Default::default()
        };
        let blocks = [block];
        let histogram = [10u32, 20, 30];
        let mut back = [0u8; 1024];
        let mut compound = CompoundWriter::new(&mut back);
        compound
            .push_with::<RtcpError>(|out| {
                ReceiverReport {
                    ssrc: WORKER_SSRC,
                    reports: ReportBlocks::new(&blocks),
                }
                .write(out)
            })
            .unwrap();
        compound
            .push_with(|out| {
                SegmentationResult {
                    rtp_timestamp: 90_000,
                    decode_us: 800,
                    infer_us: 4_000,
                    post_us: 300,
                    map_width: 64,
                    map_height: 64,
                    histogram: &histogram,
                    class_map: None,
                }
                .write_app(WORKER_SSRC, out)
            })
            .unwrap();
        let mut back_wire = Vec::new();
        put_framed(&mut back_wire, compound.finish());

        // Camera: parse the reply arriving one more delay later; compute the RTT.
        let t_back = t_arrival + worker_hold_us + one_way_us;
        let mut camera_deframer = Deframer::<2048>::new();
        let (used, frame) = camera_deframer.push(&back_wire);
        assert_eq!(used, back_wire.len());
        let packet = frame.unwrap().unwrap();
        let (mut rtt_us, mut result_ts) = (None, None);
        for p in rtcp::parse_compound(packet) {
            match p.unwrap() {
                RtcpPacket::ReceiverReport(rr) => {
                    let block = rr.reports.get(0).unwrap();
                    let rtt = rtcp::round_trip_time(NtpTimestamp::from_micros(t_back), &block);
                    rtt_us = rtt.map(rtcp::compact_to_micros);
                }
                RtcpPacket::App(app) => {
                    result_ts = Some(ResultView::from_app(&app).unwrap().rtp_timestamp);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let rtt_us = rtt_us.expect("RTT from the receiver report");
        // Two truncations to 1/65536 s (about 15 µs each) bound the error.
        assert!(
            rtt_us.abs_diff(2 * one_way_us) <= 31,
            "RTT {rtt_us} µs for a {one_way_us} µs one-way delay"
        );
        assert_eq!(result_ts, Some(90_000));
    }
}

fn packetizer_buf_len() -> usize {
    PacketizerConfig::default().payload_budget + 12 + 2
}
