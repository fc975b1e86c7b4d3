//! A simulated camera driven by the protocol core: handshake, media, and result reading.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod video;

use flowcloud_core::framing::{Deframer, frame_into};
use flowcloud_core::h264::{Packetizer, PacketizerConfig};
use flowcloud_core::results::ResultView;
use flowcloud_core::rtcp::{
    self, CompoundWriter, NtpTimestamp, ReportBlocks, RtcpError, RtcpPacket, SenderReport,
};

/// SPS of a 64x64 baseline stream (x264).
pub const SPS_64X64: &[u8] = &[
    0x67, 0x42, 0xc0, 0x15, 0xd9, 0x04, 0x26, 0xc0, 0x5a, 0x83, 0x03, 0x03, 0x52, 0x80, 0x00, 0x00,
    0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x47, 0x8b, 0x17, 0x24,
];

pub fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0; packet.len() + 2];
    let n = frame_into(packet, &mut out).unwrap();
    out.truncate(n);
    out
}

/// SR + SDES(CNAME) as our edge opens a connection.
pub fn handshake(ssrc: u32, cname: &str) -> Vec<u8> {
    let mut buf = [0u8; 600];
    let mut c = CompoundWriter::new(&mut buf);
    c.push_with::<RtcpError>(|out| {
        SenderReport {
            ssrc,
            ntp: NtpTimestamp::from_micros(3_900_000_000_000_000),
            rtp_timestamp: 0,
            packet_count: 0,
            octet_count: 0,
            reports: ReportBlocks::EMPTY,
        }
        .write(out)
    })
    .unwrap();
    c.push_with::<RtcpError>(|out| rtcp::write_sdes_cname(ssrc, cname.as_bytes(), out))
        .unwrap();
    framed(c.finish())
}

/// Packetizes Annex-B access units into framed RTP.
pub struct MediaSender {
    packetizer: Packetizer,
    buf: Vec<u8>,
}

impl MediaSender {
    pub fn new(ssrc: u32) -> Self {
        let packetizer = Packetizer::new(PacketizerConfig {
            ssrc,
            ..Default::default()
        })
        .unwrap();
        Self {
            buf: vec![0; packetizer.max_packet_len() + 2],
            packetizer,
        }
    }

    pub fn with_budget(ssrc: u32, payload_budget: usize) -> Self {
        let config = PacketizerConfig {
            ssrc,
            payload_budget,
            ..Default::default()
        };
        let packetizer = Packetizer::new(config).unwrap();
        Self {
            buf: vec![0; packetizer.max_packet_len() + 2],
            packetizer,
        }
    }

    /// The access unit's packets, each framed, separately (to drop or cut one).
    pub fn packets(&mut self, au: &[u8], rtp_timestamp: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut packets = self.packetizer.packetize(au, rtp_timestamp).unwrap();
        while let Some(n) = packets.next_framed(&mut self.buf).unwrap() {
            out.push(self.buf[..n].to_vec());
        }
        out
    }

    pub fn frame(&mut self, au: &[u8], rtp_timestamp: u32) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut packets = self.packetizer.packetize(au, rtp_timestamp).unwrap();
        while let Some(n) = packets.next_framed(&mut self.buf).unwrap() {
            wire.extend_from_slice(&self.buf[..n]);
        }
        wire
    }
}

/// A synthetic IDR access unit (64x64 SPS, PPS, a slice) distinct per `n`.
pub fn synthetic_au(n: u32) -> Vec<u8> {
    let mut au = vec![0, 0, 0, 1];
    au.extend_from_slice(SPS_64X64);
    au.extend_from_slice(&[
        0, 0, 0, 1, 0x68, 0xcb, 0x8c, 0xb2, 0, 0, 0, 1, 0x65, 0x88, 0x84,
    ]);
    au.extend_from_slice(&(n | 0x0101_0101).to_be_bytes());
    au
}

/// What the camera reads back from the worker.
#[derive(Debug, Default)]
pub struct Replies {
    pub results: Vec<(u32, Vec<u32>)>,
    /// Class maps carried by results: timestamp, width, height, class ids.
    pub class_maps: Vec<(u32, u16, u16, Vec<u8>)>,
    pub receiver_reports: usize,
    pub plis: usize,
}

/// Reads framed RTCP from the worker.
pub struct ReplyReader {
    deframer: Box<Deframer<65535>>,
    pub replies: Replies,
}

impl ReplyReader {
    pub fn new() -> Self {
        Self {
            deframer: Box::new(Deframer::new()),
            replies: Replies::default(),
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (used, frame) = self.deframer.push(bytes);
            bytes = &bytes[used..];
            let Some(packet) = frame.unwrap() else {
                continue;
            };
            for p in rtcp::parse_compound(packet) {
                match p.unwrap() {
                    RtcpPacket::App(app) => {
                        let view = ResultView::from_app(&app).unwrap();
                        self.replies
                            .results
                            .push((view.rtp_timestamp, view.histogram().collect()));
                        if let Some((w, h)) = view.class_map_size() {
                            let mut map = vec![0u8; usize::from(w) * usize::from(h)];
                            view.decode_class_map(&mut map).unwrap();
                            self.replies
                                .class_maps
                                .push((view.rtp_timestamp, w, h, map));
                        }
                    }
                    RtcpPacket::ReceiverReport(_) => self.replies.receiver_reports += 1,
                    RtcpPacket::Pli(_) => self.replies.plis += 1,
                    other => panic!("unexpected packet from the worker: {other:?}"),
                }
            }
        }
    }
}
