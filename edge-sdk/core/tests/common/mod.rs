//! Builders shared by the core's integration tests: valid NAL units of any size, Annex-B
//! access units, and hand-made RTP packets.
#![allow(dead_code, unreachable_pub)]

use flowcloud_core::rtp::RtpHeader;
use flowcloud_core::seq::SeqNum;

/// SPS of a 64x64 constrained-baseline stream, as x264 wrote it.
pub const SPS_64X64: &[u8] = &[
    0x67, 0x42, 0xc0, 0x15, 0xd9, 0x04, 0x26, 0xc0, 0x5a, 0x83, 0x03, 0x03, 0x52, 0x80, 0x00, 0x00,
    0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x47, 0x8b, 0x17, 0x24,
];
/// The PPS that goes with it.
pub const PPS: &[u8] = &[0x68, 0xcb, 0x8c, 0xb2];

/// A fast deterministic byte source (SplitMix64).
pub struct Bytes(pub u64);

impl Bytes {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A NAL unit of `nal_type` with about `len` bytes (at least 1) of pseudo-random content,
/// made valid the way an encoder would: emulation prevention applied (H.264 §7.4.1), and
/// never ending in a zero byte. Zeros are made common so the escape path is exercised.
pub fn nal_unit(nal_type: u8, nri: u8, len: usize, seed: u64) -> Vec<u8> {
    let mut raw = vec![0u8; len.saturating_sub(1)];
    Bytes(seed).fill(&mut raw);
    for b in raw.iter_mut() {
        // Bias towards zero bytes so "00 00 0x" sequences (and escapes) appear often.
        if *b < 48 {
            *b = 0;
        }
    }
    let mut nal = Vec::with_capacity(len + len / 64 + 2);
    nal.push(((nri & 3) << 5) | (nal_type & 0x1f));
    let mut zeros = 0;
    for &b in &raw {
        if zeros >= 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        nal.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    if nal.len() > 1 && nal.last() == Some(&0) {
        nal.push(3);
    }
    nal
}

/// Writes NAL units as an Annex-B access unit with 4-byte start codes.
pub fn annex_b(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// An RTP packet of payload type 96, SSRC 0x1234, around `payload`.
pub fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let header = RtpHeader {
        marker,
        payload_type: 96,
        sequence: SeqNum(seq),
        timestamp: ts,
        ssrc: 0x1234,
        csrcs: &[],
        extension: None,
    };
    let mut out = vec![0u8; header.len() + payload.len()];
    let n = header.write(&mut out).expect("header fits");
    out[n..].copy_from_slice(payload);
    out
}
