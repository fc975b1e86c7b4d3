//! H.264 packetizer, RFC 6184 packetization-mode 1 (non-interleaved).
//!
//! One access unit (Annex-B) in, RTP packets out, written straight into the caller's buffer:
//! - consecutive NAL units that fit the payload budget together go in one STAP-A (§5.7.1),
//!   which is how SPS+PPS (and small slices) travel;
//! - a NAL unit that fits alone goes as a single NAL unit packet (§5.6);
//! - a larger one is split into FU-A fragments of near-equal size (§5.8), so the last
//!   fragment is never a runt.
//!
//! All packets of an access unit share its RTP timestamp; the marker bit is set on the last
//! (§5.1). Nothing is allocated: the NAL boundaries of an access unit are kept in a fixed
//! array of [`MAX_NALS_PER_ACCESS_UNIT`] entries.

use core::ops::Range;

use super::annexb::{self, AnnexBError};
use super::nal::NalHeader;
use super::{MAX_ACCESS_UNIT_BYTES, MAX_NALS_PER_ACCESS_UNIT};
use crate::framing::FRAME_HEADER_LEN;
use crate::rtp::{FIXED_HEADER_LEN, RtpHeader};
use crate::seq::SeqNum;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;
/// Smallest budget that still leaves room for a FU-A's two header bytes and one data byte.
const MIN_PAYLOAD_BUDGET: usize = 3;
/// Largest budget whose RTP packet still fits one RFC 4571 frame.
const MAX_PAYLOAD_BUDGET: usize = crate::framing::MAX_FRAME_LEN - FIXED_HEADER_LEN;

/// Packetizer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketizerConfig {
    /// Synchronization source of the stream (pick it at random per connection).
    pub ssrc: u32,
    /// Dynamic payload type, 96 by default.
    pub payload_type: u8,
    /// Most RTP payload bytes per packet (excluding the 12-byte RTP header). 1400 by default,
    /// so the stream can be relayed to UDP unchanged.
    pub payload_budget: usize,
    /// First sequence number (pick it at random per connection, RFC 3550 §5.1).
    pub initial_sequence: u16,
}

impl Default for PacketizerConfig {
    fn default() -> Self {
        Self {
            ssrc: 0,
            payload_type: 96,
            payload_budget: 1400,
            initial_sequence: 0,
        }
    }
}

/// Why an access unit could not be packetized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// The payload budget is outside 3..=65523 or the payload type above 127.
    #[error("packetizer config invalid: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The access unit is not Annex-B.
    #[error(transparent)]
    AnnexB(#[from] AnnexBError),
    /// The access unit has no NAL units.
    #[error("access unit contains no NAL units")]
    EmptyAccessUnit,
    /// The access unit is larger than the 8 MiB limit.
    #[error("access unit of {len} bytes exceeds the limit of {limit}")]
    AccessUnitTooLarge {
        /// Access unit length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The access unit has more NAL units than the limit.
    #[error("access unit has more than {limit} NAL units")]
    TooManyNals {
        /// The limit.
        limit: usize,
    },
    /// A NAL unit has the forbidden bit set or a type that is not an H.264 NAL unit
    /// (an RTP aggregation/fragmentation type or a reserved one).
    #[error("NAL unit {index} with header {header:#04x} cannot be sent")]
    InvalidNal {
        /// Index of the NAL unit in the access unit.
        index: usize,
        /// Its header byte.
        header: u8,
    },
    /// The caller's output buffer cannot hold the next packet.
    #[error("output buffer of {capacity} bytes cannot hold the next {needed}-byte packet")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
}

/// Turns access units into RTP packets. Keeps the sequence number and the sender counters
/// that an RTCP sender report needs.
#[derive(Clone, Debug)]
pub struct Packetizer {
    config: PacketizerConfig,
    next_sequence: SeqNum,
    packet_count: u32,
    octet_count: u32,
}

impl Packetizer {
    /// A packetizer with the given settings.
    pub fn new(config: PacketizerConfig) -> Result<Self, PacketizeError> {
        if !(MIN_PAYLOAD_BUDGET..=MAX_PAYLOAD_BUDGET).contains(&config.payload_budget) {
            return Err(PacketizeError::InvalidConfig {
                reason: "payload budget outside 3..=65523",
            });
        }
        if config.payload_type > 0x7f {
            return Err(PacketizeError::InvalidConfig {
                reason: "payload type above 127",
            });
        }
        Ok(Self {
            config,
            next_sequence: SeqNum(config.initial_sequence),
            packet_count: 0,
            octet_count: 0,
        })
    }

    /// The settings in use.
    #[must_use]
    pub const fn config(&self) -> &PacketizerConfig {
        &self.config
    }

    /// The sequence number the next packet will carry.
    #[must_use]
    pub const fn next_sequence(&self) -> SeqNum {
        self.next_sequence
    }

    /// Packets sent so far (the RTCP SR sender's packet count, wrapping).
    #[must_use]
    pub const fn packet_count(&self) -> u32 {
        self.packet_count
    }

    /// Payload octets sent so far (the RTCP SR sender's octet count, wrapping).
    #[must_use]
    pub const fn octet_count(&self) -> u32 {
        self.octet_count
    }

    /// Largest RTP packet this packetizer writes: size output buffers with it.
    #[must_use]
    pub const fn max_packet_len(&self) -> usize {
        FIXED_HEADER_LEN + self.config.payload_budget
    }

    /// Starts packetizing one Annex-B access unit. The returned iterator writes the packets;
    /// the access unit is validated whole before the first packet, so a bad one sends nothing.
    pub fn packetize<'p, 'a>(
        &'p mut self,
        access_unit: &'a [u8],
        rtp_timestamp: u32,
    ) -> Result<AccessUnitPackets<'p, 'a>, PacketizeError> {
        if access_unit.len() > MAX_ACCESS_UNIT_BYTES {
            return Err(PacketizeError::AccessUnitTooLarge {
                len: access_unit.len(),
                limit: MAX_ACCESS_UNIT_BYTES,
            });
        }
        let mut nals = heapless::Vec::<Range<u32>, MAX_NALS_PER_ACCESS_UNIT>::new();
        let mut scan = annexb::nal_units(access_unit)?;
        while let Some(range) = scan.next_range() {
            let header = NalHeader(access_unit[range.start]);
            if header.forbidden_bit() || !header.nal_type().is_h264_nal() {
                return Err(PacketizeError::InvalidNal {
                    index: nals.len(),
                    header: header.0,
                });
            }
            // The access unit is at most 8 MiB, so offsets fit u32.
            let range = range.start as u32..range.end as u32;
            if nals.push(range).is_err() {
                return Err(PacketizeError::TooManyNals {
                    limit: MAX_NALS_PER_ACCESS_UNIT,
                });
            }
        }
        if nals.is_empty() {
            return Err(PacketizeError::EmptyAccessUnit);
        }
        Ok(AccessUnitPackets {
            packetizer: self,
            data: access_unit,
            nals,
            next_nal: 0,
            fragment: None,
            rtp_timestamp,
        })
    }
}

/// A NAL unit being sent as FU-A fragments.
#[derive(Clone, Copy, Debug)]
struct Fragmenting {
    /// Offset of the next unsent byte (after the NAL header) in the access unit.
    offset: usize,
    end: usize,
    /// Fragments still to send; each takes an equal share of what is left, so sizes differ
    /// by at most one byte.
    fragments_left: usize,
    header: NalHeader,
}

/// The packets of one access unit, written one at a time into the caller's buffer.
#[derive(Debug)]
pub struct AccessUnitPackets<'p, 'a> {
    packetizer: &'p mut Packetizer,
    data: &'a [u8],
    nals: heapless::Vec<Range<u32>, MAX_NALS_PER_ACCESS_UNIT>,
    next_nal: usize,
    fragment: Option<Fragmenting>,
    rtp_timestamp: u32,
}

impl AccessUnitPackets<'_, '_> {
    fn nal(&self, index: usize) -> &[u8] {
        let r = &self.nals[index];
        &self.data[r.start as usize..r.end as usize]
    }

    /// Writes the next RTP packet at the start of `out` and returns its length, or `None`
    /// when the access unit is done. `out` needs [`Packetizer::max_packet_len`] bytes.
    pub fn next_packet(&mut self, out: &mut [u8]) -> Result<Option<usize>, PacketizeError> {
        let budget = self.packetizer.config.payload_budget;
        let Some(payload_out) = out.get_mut(FIXED_HEADER_LEN..) else {
            return Err(PacketizeError::BufferTooSmall {
                needed: FIXED_HEADER_LEN + 1,
                capacity: out.len(),
            });
        };
        let (payload_len, last) = if let Some(frag) = self.fragment {
            self.write_fragment(frag, payload_out)?
        } else if self.next_nal < self.nals.len() {
            let first = self.nal(self.next_nal);
            if first.len() > budget {
                let data_len = first.len() - 1;
                let fragments = data_len.div_ceil(budget - 2);
                let frag = Fragmenting {
                    offset: self.nals[self.next_nal].start as usize + 1,
                    end: self.nals[self.next_nal].end as usize,
                    fragments_left: fragments,
                    header: NalHeader(first[0]),
                };
                self.write_fragment(frag, payload_out)?
            } else {
                self.write_single_or_stap_a(payload_out, budget)?
            }
        } else {
            return Ok(None);
        };
        let header = RtpHeader {
            marker: last,
            payload_type: self.packetizer.config.payload_type,
            sequence: self.packetizer.next_sequence,
            timestamp: self.rtp_timestamp,
            ssrc: self.packetizer.config.ssrc,
            csrcs: &[],
            extension: None,
        };
        // Cannot fail: the fields were validated at construction and `out` holds 12 bytes.
        let header_len = header
            .write(out)
            .map_err(|_| PacketizeError::BufferTooSmall {
                needed: FIXED_HEADER_LEN,
                capacity: out.len(),
            })?;
        let p = &mut self.packetizer;
        p.next_sequence = p.next_sequence.next();
        p.packet_count = p.packet_count.wrapping_add(1);
        p.octet_count = p.octet_count.wrapping_add(payload_len as u32);
        Ok(Some(header_len + payload_len))
    }

    /// Like [`Self::next_packet`], but writes the RFC 4571 length prefix first, so the
    /// result can go straight onto a TCP stream. `out` needs `max_packet_len() + 2` bytes.
    pub fn next_framed(&mut self, out: &mut [u8]) -> Result<Option<usize>, PacketizeError> {
        let capacity = out.len();
        let Some(body) = out.get_mut(FRAME_HEADER_LEN..) else {
            return Err(PacketizeError::BufferTooSmall {
                needed: FRAME_HEADER_LEN,
                capacity,
            });
        };
        let Some(len) = self.next_packet(body)? else {
            return Ok(None);
        };
        // RTP packets here are at most 65535 bytes: the budget was capped at construction.
        out[..FRAME_HEADER_LEN].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(Some(FRAME_HEADER_LEN + len))
    }

    fn write_fragment(
        &mut self,
        mut frag: Fragmenting,
        out: &mut [u8],
    ) -> Result<(usize, bool), PacketizeError> {
        let start = frag.offset == self.nals[self.next_nal].start as usize + 1;
        let n = (frag.end - frag.offset).div_ceil(frag.fragments_left.max(1));
        let end = frag.offset + n == frag.end;
        let needed = 2 + n;
        let Some(dst) = out.get_mut(..needed) else {
            return Err(PacketizeError::BufferTooSmall {
                needed: FIXED_HEADER_LEN + needed,
                capacity: FIXED_HEADER_LEN + out.len(),
            });
        };
        // FU indicator carries F and NRI of the original header; FU header carries S, E, type.
        dst[0] = (frag.header.0 & 0xe0) | FU_A;
        dst[1] = (u8::from(start) << 7) | (u8::from(end) << 6) | frag.header.type_id();
        dst[2..].copy_from_slice(&self.data[frag.offset..frag.offset + n]);
        frag.offset += n;
        frag.fragments_left = frag.fragments_left.saturating_sub(1);
        if end {
            self.fragment = None;
            self.next_nal += 1;
        } else {
            self.fragment = Some(frag);
        }
        Ok((needed, end && self.next_nal == self.nals.len()))
    }

    fn write_single_or_stap_a(
        &mut self,
        out: &mut [u8],
        budget: usize,
    ) -> Result<(usize, bool), PacketizeError> {
        // Greedily take following NAL units while the STAP-A (1 header byte, then a 2-byte
        // size before each unit) stays within the budget.
        let mut stap_len = 1 + 2 + self.nal(self.next_nal).len();
        let mut count = 1;
        while self.next_nal + count < self.nals.len() {
            let candidate = stap_len + 2 + self.nal(self.next_nal + count).len();
            if candidate > budget {
                break;
            }
            stap_len = candidate;
            count += 1;
        }
        let first = self.next_nal;
        if count == 1 {
            let data = self.data;
            let r = self.nals[first].clone();
            let nal = &data[r.start as usize..r.end as usize];
            let Some(dst) = out.get_mut(..nal.len()) else {
                return Err(PacketizeError::BufferTooSmall {
                    needed: FIXED_HEADER_LEN + nal.len(),
                    capacity: FIXED_HEADER_LEN + out.len(),
                });
            };
            dst.copy_from_slice(nal);
            self.next_nal += 1;
            return Ok((nal.len(), self.next_nal == self.nals.len()));
        }
        if out.len() < stap_len {
            return Err(PacketizeError::BufferTooSmall {
                needed: FIXED_HEADER_LEN + stap_len,
                capacity: FIXED_HEADER_LEN + out.len(),
            });
        }
        // §5.7.1: F is the OR of the units' F bits (always 0 here), NRI their maximum.
        let nri = (first..first + count)
            .map(|i| self.nal(i)[0] & 0x60)
            .max()
            .unwrap_or(0);
        out[0] = nri | STAP_A;
        let mut pos = 1;
        for i in first..first + count {
            let r = self.nals[i].clone();
            let len = (r.end - r.start) as usize;
            out[pos..pos + 2].copy_from_slice(&(len as u16).to_be_bytes());
            out[pos + 2..pos + 2 + len]
                .copy_from_slice(&self.data[r.start as usize..r.end as usize]);
            pos += 2 + len;
        }
        self.next_nal += count;
        Ok((pos, self.next_nal == self.nals.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;

    fn packets(au: &[u8], budget: usize) -> std::vec::Vec<std::vec::Vec<u8>> {
        let config = PacketizerConfig {
            payload_budget: budget,
            ..Default::default()
        };
        let mut packetizer = Packetizer::new(config).unwrap();
        let mut out = std::vec::Vec::new();
        let mut it = packetizer.packetize(au, 1).unwrap();
        let mut buf = [0u8; 2048];
        while let Some(n) = it.next_packet(&mut buf).unwrap() {
            out.push(buf[..n].to_vec());
        }
        out
    }

    #[test]
    fn fu_a_fragments_differ_by_at_most_one_byte() {
        // 183 data bytes over 13-byte fragments: 15 fragments, none a runt.
        let mut au = std::vec![0, 0, 0, 1, 0x65];
        au.extend((0..183u32).map(|i| (i % 200 + 1) as u8));
        let pkts = packets(&au, 15);
        assert_eq!(pkts.len(), 15);
        let sizes: std::vec::Vec<usize> = pkts.iter().map(|p| p.len() - 12 - 2).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 183);
        let markers: std::vec::Vec<bool> = pkts
            .iter()
            .map(|p| RtpPacket::parse(p).unwrap().marker)
            .collect();
        assert_eq!(markers.iter().filter(|&&m| m).count(), 1);
        assert!(markers[14]);
    }

    #[test]
    fn small_units_share_a_stap_a_and_large_ones_go_alone() {
        let mut au = std::vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3];
        au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        au.extend(core::iter::repeat_n(7u8, 500));
        let pkts = packets(&au, 400);
        let types: std::vec::Vec<u8> = pkts
            .iter()
            .map(|p| RtpPacket::parse(p).unwrap().payload[0] & 0x1f)
            .collect();
        // SPS+PPS aggregate; the 501-byte slice cannot join them and is fragmented.
        assert_eq!(types, [24, 28, 28]);
        let stap = RtpPacket::parse(&pkts[0]).unwrap().payload;
        assert_eq!(stap, &[0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3]);
    }
}
