//! H.264 depacketizer, RFC 6184 packetization-mode 1: RTP packets in, Annex-B access units
//! out, with loss detection and every input limit of the protocol enforced here, once, for
//! both the camera and the worker.
//!
//! Rules (DESIGN.md "limits that hold everywhere"):
//! - an access unit is at most 8 MiB of Annex-B output and at most 64 NAL units;
//! - a FU-A without its start, with a gap, or without its end damages the access unit, which
//!   is reported as [`Event::Loss`] and never emitted; reassembly resumes at the next one;
//! - STAP-A unit sizes are all checked against the packet before any byte is copied;
//! - STAP-B, MTAP16/24, FU-B and reserved types are rejected from the header byte alone;
//! - RTP padding, extension and CSRC lengths are checked by [`crate::rtp`];
//! - a sequence wrap is not loss (wrap-aware distance, [`crate::seq`]);
//! - an SPS is parsed as soon as it is complete and its dimensions bounded, before anything
//!   downstream could size a decoder or a GPU surface from it.
//!
//! Any sequence gap damages the access unit it falls in, and the next one when the gap lies
//! between two (the lost packets may have been its beginning). This errs towards reporting
//! loss: an emitted access unit is always one whose every packet arrived.
//!
//! The depacketizer writes into a buffer the caller provides (so it allocates nothing).
//! Size it with [`Depacketizer::buffer_len_for`].

use super::nal::{NalHeader, NalType};
use super::sps::{Sps, SpsError};
use super::{MAX_ACCESS_UNIT_BYTES, MAX_NALS_PER_ACCESS_UNIT};
use crate::h264::annexb::START_CODE;
use crate::rtp::{RtpError, RtpPacket};
use crate::seq::SeqNum;

/// RFC 3550 §A.1's MAX_MISORDER: a packet this far behind is a sender restart, not a late one.
const MAX_MISORDER: i32 = 100;
/// Room one packet can need after a completed access unit still waiting to be polled: the
/// largest RTP payload, plus the start codes that replace STAP-A's 2-byte sizes.
const PACKET_SLACK: usize = crate::framing::MAX_FRAME_LEN + 2 * MAX_NALS_PER_ACCESS_UNIT + 16;

/// Depacketizer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepacketizerConfig {
    /// Accept only this payload type; `None` accepts any.
    pub payload_type: Option<u8>,
    /// Widest picture an SPS may announce, in pixels.
    pub max_width: u32,
    /// Tallest picture an SPS may announce, in pixels.
    pub max_height: u32,
    /// Largest access unit, in bytes of Annex-B output (capped at 8 MiB).
    pub max_access_unit_bytes: usize,
    /// The sequence number the stream starts at, when the receiver knows it. With it, packets
    /// lost before the first one received are detected like any other gap. Without it, the
    /// first access unit is accepted only if its first NAL unit can begin an access unit.
    pub initial_sequence: Option<u16>,
}

impl Default for DepacketizerConfig {
    fn default() -> Self {
        Self {
            payload_type: None,
            max_width: 4096,
            max_height: 4096,
            max_access_unit_bytes: MAX_ACCESS_UNIT_BYTES,
            initial_sequence: None,
        }
    }
}

/// Why a packet was rejected. The packet is dropped; where it belonged to an access unit,
/// that access unit is damaged and will be reported as [`Event::Loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DepacketizeError {
    /// The RTP header is malformed.
    #[error("malformed RTP packet: {0}")]
    Rtp(#[from] RtpError),
    /// Events from the previous push were not polled; the packet was not taken.
    #[error("poll_event() must drain all events before the next push")]
    EventsPending,
    /// A packet from another synchronization source.
    #[error("packet from SSRC {got:#010x} on a stream of SSRC {expected:#010x}")]
    SsrcMismatch {
        /// SSRC of the stream.
        expected: u32,
        /// SSRC of the packet.
        got: u32,
    },
    /// A payload type other than the configured one.
    #[error("payload type {got} where {expected} was expected")]
    UnexpectedPayloadType {
        /// Configured payload type.
        expected: u8,
        /// Payload type of the packet.
        got: u8,
    },
    /// An RTP packet without payload.
    #[error("RTP packet without payload")]
    EmptyPayload,
    /// A NAL unit (or payload header) with the forbidden_zero_bit set (RFC 6184 §5.3).
    #[error("NAL header {header:#04x} has the forbidden bit set")]
    ForbiddenBitSet {
        /// The header byte.
        header: u8,
    },
    /// STAP-B, MTAP16, MTAP24, FU-B (interleaved mode only) or a reserved type.
    #[error("NAL type {nal_type} is not allowed in packetization-mode 1")]
    UnsupportedNalType {
        /// The type.
        nal_type: u8,
    },
    /// A STAP-A without any aggregation unit.
    #[error("STAP-A carries no NAL unit")]
    StapAEmpty,
    /// A STAP-A unit whose size field, or the unit itself, runs past the packet.
    #[error("STAP-A unit at offset {offset} declares {declared} bytes, {available} remain")]
    StapATruncated {
        /// Offset of the size field in the payload.
        offset: usize,
        /// Size declared (0 when the size field itself is cut).
        declared: usize,
        /// Bytes left after the size field.
        available: usize,
    },
    /// A STAP-A unit of size zero.
    #[error("STAP-A unit at offset {offset} has size zero")]
    StapAZeroSize {
        /// Offset of the size field in the payload.
        offset: usize,
    },
    /// A STAP-A unit that is itself an aggregation or fragment, or reserved.
    #[error("STAP-A unit of type {nal_type} cannot be aggregated")]
    StapANestedType {
        /// The inner type.
        nal_type: u8,
    },
    /// A FU-A with no data after its two header bytes.
    #[error("FU-A of {len} bytes has no fragment data")]
    FuATooShort {
        /// Payload length.
        len: usize,
    },
    /// A FU-A with both start and end bits (RFC 6184 §5.8 forbids it).
    #[error("FU-A has both start and end bits set")]
    FuAStartAndEnd,
    /// A FU-A whose fragmented type is itself an aggregation, fragment or reserved type.
    #[error("FU-A fragments a NAL of type {nal_type}")]
    FuAInvalidType {
        /// The fragmented type.
        nal_type: u8,
    },
    /// A FU-A continuation without the start fragment.
    #[error("FU-A continuation without a start fragment")]
    FuAWithoutStart,
    /// A new NAL unit (or the end of the access unit) before the FU-A end fragment.
    #[error("FU-A interrupted before its end fragment")]
    FuAMissingEnd,
    /// A FU-A continuation whose type differs from the start fragment's.
    #[error("FU-A continuation of type {got} inside a NAL of type {expected}")]
    FuATypeChanged {
        /// Type from the start fragment.
        expected: u8,
        /// Type in this fragment.
        got: u8,
    },
    /// The access unit grew beyond the byte limit.
    #[error("access unit exceeds {limit} bytes")]
    AccessUnitTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The access unit has more NAL units than the limit.
    #[error("access unit exceeds {limit} NAL units")]
    TooManyNals {
        /// The limit.
        limit: usize,
    },
    /// An SPS that cannot be parsed.
    #[error("invalid SPS: {0}")]
    Sps(#[from] SpsError),
    /// An SPS announcing a picture larger than allowed.
    #[error("SPS announces {width}x{height}, above the limit {max_width}x{max_height}")]
    SpsDimensionsTooLarge {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
        /// Configured maximum width.
        max_width: u32,
        /// Configured maximum height.
        max_height: u32,
    },
}

/// Why an access unit was not emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// Packets are missing: this many sequence numbers were skipped.
    SequenceGap {
        /// Packets missing in the gap.
        missing: u16,
    },
    /// The sender jumped its sequence numbers far back (a restart); reassembly resynced.
    SequenceRestart,
    /// A packet of the access unit was rejected.
    Malformed(DepacketizeError),
    /// The access unit ended inside a FU-A (its end fragment never came), or the stream
    /// ended before the access unit's marker.
    Incomplete,
    /// The stream's first packet does not begin an access unit, so its start may be missing.
    JoinedMidAccessUnit,
}

/// An access unit that was damaged and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    /// RTP timestamp of the damaged access unit.
    pub rtp_timestamp: u32,
    /// The first thing that went wrong with it.
    pub reason: LossReason,
}

/// A complete access unit in Annex-B form (4-byte start codes), borrowing the depacketizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessUnit<'a> {
    /// RTP timestamp shared by its packets.
    pub rtp_timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Annex-B bytes.
    pub data: &'a [u8],
    /// NAL units in `data`.
    pub nal_count: usize,
    /// Contains an IDR slice.
    pub keyframe: bool,
    /// Sequence number of its first packet.
    pub first_sequence: SeqNum,
    /// Sequence number of its last packet.
    pub last_sequence: SeqNum,
}

/// What the depacketizer has for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete access unit.
    AccessUnit(AccessUnit<'a>),
    /// An access unit that was damaged and dropped.
    Loss(Loss),
}

/// Counters since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// RTP packets accepted into reassembly (not counting duplicates and late packets).
    pub packets: u64,
    /// Packets missing according to sequence numbers.
    pub lost_packets: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// Packets that arrived after a later one and were dropped.
    pub late: u64,
    /// Packets rejected with an error.
    pub rejected: u64,
    /// Access units emitted.
    pub access_units: u64,
    /// Access units reported lost.
    pub lost_access_units: u64,
}

#[derive(Clone, Copy, Debug)]
struct Fragment {
    /// Offset (in the buffer) of the NAL header being rebuilt.
    nal_start: usize,
    nal_type: u8,
}

#[derive(Clone, Copy, Debug)]
struct Assembly {
    rtp_timestamp: u32,
    ssrc: u32,
    /// Buffer offset where this access unit starts.
    start: usize,
    /// Bytes written so far.
    len: usize,
    nal_count: usize,
    keyframe: bool,
    first_sequence: SeqNum,
    last_sequence: SeqNum,
    fragment: Option<Fragment>,
    damage: Option<LossReason>,
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    AccessUnit {
        start: usize,
        len: usize,
        info: Assembly,
    },
    Loss(Loss),
}

/// Rebuilds access units from RTP packets. `B` is the caller's buffer (a `Vec<u8>`,
/// `Box<[u8]>`, or `&mut [u8]` from static memory).
#[derive(Debug)]
pub struct Depacketizer<B> {
    buf: B,
    config: DepacketizerConfig,
    max_au: usize,
    ssrc: Option<u32>,
    last_sequence: Option<SeqNum>,
    assembly: Option<Assembly>,
    /// A gap or restart seen before the next access unit started.
    damage_next: Option<LossReason>,
    pending: heapless::Deque<Pending, 4>,
    sps: Option<Sps>,
    stats: DepacketizerStats,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Depacketizer<B> {
    /// Buffer length needed for access units of up to `max_access_unit_bytes`.
    #[must_use]
    pub const fn buffer_len_for(max_access_unit_bytes: usize) -> usize {
        max_access_unit_bytes + PACKET_SLACK
    }

    /// A depacketizer writing into `buffer`. The largest access unit it accepts is the
    /// smaller of `config.max_access_unit_bytes` (capped at 8 MiB) and what the buffer
    /// allows (see [`Self::buffer_len_for`]).
    pub fn new(buffer: B, config: DepacketizerConfig) -> Self {
        let room = buffer.as_ref().len().saturating_sub(PACKET_SLACK);
        let max_au = config
            .max_access_unit_bytes
            .min(MAX_ACCESS_UNIT_BYTES)
            .min(room.max(
                // A small buffer still works for small access units when events are drained.
                buffer.as_ref().len() / 2,
            ));
        Self {
            buf: buffer,
            config,
            max_au,
            ssrc: None,
            // Start one before the first expected number, so a loss there is a gap.
            last_sequence: config.initial_sequence.map(|s| SeqNum(s.wrapping_sub(1))),
            assembly: None,
            damage_next: None,
            pending: heapless::Deque::new(),
            sps: None,
            stats: DepacketizerStats::default(),
        }
    }

    /// Largest access unit accepted, in bytes.
    #[must_use]
    pub const fn max_access_unit_bytes(&self) -> usize {
        self.max_au
    }

    /// The most recent valid SPS seen on the stream.
    #[must_use]
    pub const fn sps(&self) -> Option<&Sps> {
        self.sps.as_ref()
    }

    /// Counters since creation.
    #[must_use]
    pub const fn stats(&self) -> &DepacketizerStats {
        &self.stats
    }

    /// Takes one RTP packet. Afterwards — whether it returned `Ok` or `Err` — drain
    /// [`Self::poll_event`] before the next push: an error damages the current access unit,
    /// and the marker bit may still end it.
    pub fn push(&mut self, packet: &[u8]) -> Result<(), DepacketizeError> {
        if !self.pending.is_empty() {
            return Err(DepacketizeError::EventsPending);
        }
        self.compact();
        let pkt = match RtpPacket::parse(packet) {
            Ok(p) => p,
            Err(e) => {
                // Unparseable bytes on a framed stream are a packet we lost.
                self.stats.rejected += 1;
                let reason = LossReason::Malformed(e.into());
                match &mut self.assembly {
                    Some(a) => {
                        a.damage.get_or_insert(reason);
                    }
                    None => {
                        self.damage_next.get_or_insert(reason);
                    }
                }
                return Err(e.into());
            }
        };
        if let Some(expected) = self.config.payload_type
            && pkt.payload_type != expected
        {
            self.stats.rejected += 1;
            return Err(DepacketizeError::UnexpectedPayloadType {
                expected,
                got: pkt.payload_type,
            });
        }
        match self.ssrc {
            Some(expected) if expected != pkt.ssrc => {
                self.stats.rejected += 1;
                return Err(DepacketizeError::SsrcMismatch {
                    expected,
                    got: pkt.ssrc,
                });
            }
            _ => self.ssrc = Some(pkt.ssrc),
        }

        let joined_mid_access_unit =
            self.last_sequence.is_none() && !begins_access_unit(pkt.payload);
        if let Some(last) = self.last_sequence {
            let distance = pkt.sequence.distance_from(last);
            if distance == 0 {
                self.stats.duplicates += 1;
                return Ok(());
            }
            if (-MAX_MISORDER..0).contains(&distance) {
                self.stats.late += 1;
                return Ok(());
            }
            let reason = if distance < 0 {
                Some(LossReason::SequenceRestart)
            } else if distance > 1 {
                self.stats.lost_packets += (distance - 1) as u64;
                Some(LossReason::SequenceGap {
                    missing: (distance - 1) as u16,
                })
            } else {
                None
            };
            if let Some(reason) = reason {
                // The gap damages the access unit in progress if this packet continues it,
                // and otherwise the one this packet starts.
                match &mut self.assembly {
                    Some(a) if a.rtp_timestamp == pkt.timestamp => {
                        a.damage.get_or_insert(reason);
                    }
                    Some(a) => {
                        a.damage.get_or_insert(reason);
                        self.damage_next = Some(reason);
                    }
                    None => self.damage_next = Some(reason),
                }
            }
        }
        self.last_sequence = Some(pkt.sequence);
        self.stats.packets += 1;

        // A new timestamp ends the access unit in progress even if its marker was lost or
        // never sent (RFC 6184 §5.1 makes the marker a hint).
        if let Some(a) = self.assembly
            && a.rtp_timestamp != pkt.timestamp
        {
            self.finish();
        }
        let start = match self.pending.back() {
            Some(Pending::AccessUnit { start, len, .. }) => start + len,
            _ => 0,
        };
        let assembly = self.assembly.get_or_insert(Assembly {
            rtp_timestamp: pkt.timestamp,
            ssrc: pkt.ssrc,
            start,
            len: 0,
            nal_count: 0,
            keyframe: false,
            first_sequence: pkt.sequence,
            last_sequence: pkt.sequence,
            fragment: None,
            damage: self.damage_next.take(),
        });
        assembly.last_sequence = pkt.sequence;

        let result = if assembly.damage.is_some() {
            Ok(())
        } else {
            self.take_payload(pkt.payload)
        };
        if let Some(a) = &mut self.assembly {
            // A malformed packet is reported as such; a valid one that cannot begin an access
            // unit, at the very start of a stream, means that unit's beginning is missing.
            match result {
                Err(e) => {
                    self.stats.rejected += 1;
                    a.damage.get_or_insert(LossReason::Malformed(e));
                }
                Ok(()) if joined_mid_access_unit => {
                    a.damage.get_or_insert(LossReason::JoinedMidAccessUnit);
                }
                Ok(()) => {}
            }
        }
        if pkt.marker {
            self.finish();
        }
        result
    }

    /// Ends the stream: an access unit still in progress (its marker never came) is reported
    /// as lost, since nothing shows it was complete.
    pub fn flush(&mut self) {
        if let Some(a) = &mut self.assembly {
            a.damage.get_or_insert(LossReason::Incomplete);
        }
        self.finish();
    }

    /// The next event, oldest first. The access unit it borrows is valid until the next call.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        match self.pending.pop_front()? {
            Pending::Loss(loss) => Some(Event::Loss(loss)),
            Pending::AccessUnit { start, len, info } => Some(Event::AccessUnit(AccessUnit {
                rtp_timestamp: info.rtp_timestamp,
                ssrc: info.ssrc,
                data: &self.buf.as_ref()[start..start + len],
                nal_count: info.nal_count,
                keyframe: info.keyframe,
                first_sequence: info.first_sequence,
                last_sequence: info.last_sequence,
            })),
        }
    }

    /// Moves an access unit in progress to the front of the buffer once everything before it
    /// has been polled. Only happens after a missing marker, and then moves one packet's worth.
    fn compact(&mut self) {
        if let Some(a) = &mut self.assembly
            && a.start != 0
        {
            let (start, len) = (a.start, a.len);
            self.buf.as_mut().copy_within(start..start + len, 0);
            if let Some(f) = &mut a.fragment {
                f.nal_start -= start;
            }
            a.start = 0;
        }
    }

    fn finish(&mut self) {
        let Some(mut a) = self.assembly.take() else {
            return;
        };
        if a.fragment.is_some() {
            a.damage.get_or_insert(LossReason::Incomplete);
        }
        if a.damage.is_none() && a.nal_count == 0 {
            a.damage = Some(LossReason::Incomplete);
        }
        // The queue holds at most two events per push (the previous access unit and this
        // one), and pushes require it empty, so it cannot be full here.
        let event = match a.damage {
            Some(reason) => {
                self.stats.lost_access_units += 1;
                Pending::Loss(Loss {
                    rtp_timestamp: a.rtp_timestamp,
                    reason,
                })
            }
            None => {
                self.stats.access_units += 1;
                Pending::AccessUnit {
                    start: a.start,
                    len: a.len,
                    info: a,
                }
            }
        };
        let _ = self.pending.push_back(event);
    }

    fn take_payload(&mut self, payload: &[u8]) -> Result<(), DepacketizeError> {
        let Some(&first) = payload.first() else {
            return Err(DepacketizeError::EmptyPayload);
        };
        let header = NalHeader(first);
        if header.forbidden_bit() {
            return Err(DepacketizeError::ForbiddenBitSet { header: first });
        }
        let in_fragment = self.assembly.is_some_and(|a| a.fragment.is_some());
        match header.nal_type() {
            NalType::FuA => self.take_fu_a(payload),
            _ if in_fragment => Err(DepacketizeError::FuAMissingEnd),
            NalType::StapA => self.take_stap_a(payload),
            NalType::StapB
            | NalType::Mtap16
            | NalType::Mtap24
            | NalType::FuB
            | NalType::Reserved(_) => Err(DepacketizeError::UnsupportedNalType {
                nal_type: header.type_id(),
            }),
            _ => {
                let nal_start = self.begin_nal()?;
                self.append(payload)?;
                self.end_nal(header, nal_start)
            }
        }
    }

    fn take_stap_a(&mut self, payload: &[u8]) -> Result<(), DepacketizeError> {
        // RFC 6184 §5.7.1. Walk every size first, so a bad packet writes nothing.
        let mut offset = 1;
        let mut units = 0usize;
        while offset < payload.len() {
            let Some(size_bytes) = payload.get(offset..offset + 2) else {
                return Err(DepacketizeError::StapATruncated {
                    offset,
                    declared: 0,
                    available: payload.len() - offset,
                });
            };
            let size = usize::from(u16::from_be_bytes([size_bytes[0], size_bytes[1]]));
            let available = payload.len() - offset - 2;
            if size == 0 {
                return Err(DepacketizeError::StapAZeroSize { offset });
            }
            if size > available {
                return Err(DepacketizeError::StapATruncated {
                    offset,
                    declared: size,
                    available,
                });
            }
            let inner = NalHeader(payload[offset + 2]);
            if inner.forbidden_bit() {
                return Err(DepacketizeError::ForbiddenBitSet { header: inner.0 });
            }
            if !inner.nal_type().is_h264_nal() {
                return Err(DepacketizeError::StapANestedType {
                    nal_type: inner.type_id(),
                });
            }
            units += 1;
            offset += 2 + size;
        }
        if units == 0 {
            return Err(DepacketizeError::StapAEmpty);
        }
        let mut offset = 1;
        while offset < payload.len() {
            let size = usize::from(u16::from_be_bytes([payload[offset], payload[offset + 1]]));
            let nal = &payload[offset + 2..offset + 2 + size];
            let nal_start = self.begin_nal()?;
            self.append(nal)?;
            self.end_nal(NalHeader(nal[0]), nal_start)?;
            offset += 2 + size;
        }
        Ok(())
    }

    fn take_fu_a(&mut self, payload: &[u8]) -> Result<(), DepacketizeError> {
        // RFC 6184 §5.8.
        if payload.len() < 3 {
            return Err(DepacketizeError::FuATooShort { len: payload.len() });
        }
        let (indicator, fu_header) = (payload[0], payload[1]);
        let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
        let nal_type = fu_header & 0x1f;
        if start && end {
            return Err(DepacketizeError::FuAStartAndEnd);
        }
        if !NalType::from_id(nal_type).is_h264_nal() {
            return Err(DepacketizeError::FuAInvalidType { nal_type });
        }
        let fragment = self.assembly.and_then(|a| a.fragment);
        if start {
            if fragment.is_some() {
                return Err(DepacketizeError::FuAMissingEnd);
            }
            let nal_start = self.begin_nal()?;
            // The original NAL header: F and NRI from the indicator, type from the FU header.
            self.append(&[(indicator & 0xe0) | nal_type])?;
            if let Some(a) = &mut self.assembly {
                a.fragment = Some(Fragment {
                    nal_start,
                    nal_type,
                });
            }
        } else {
            let Some(f) = fragment else {
                return Err(DepacketizeError::FuAWithoutStart);
            };
            if f.nal_type != nal_type {
                return Err(DepacketizeError::FuATypeChanged {
                    expected: f.nal_type,
                    got: nal_type,
                });
            }
        }
        self.append(&payload[2..])?;
        if end {
            let Some(f) = self.assembly.and_then(|a| a.fragment) else {
                return Err(DepacketizeError::FuAWithoutStart);
            };
            if let Some(a) = &mut self.assembly {
                a.fragment = None;
            }
            let header = NalHeader(self.buf.as_ref()[f.nal_start]);
            self.end_nal(header, f.nal_start)?;
        }
        Ok(())
    }

    /// Writes a start code; returns the buffer offset where the NAL unit itself begins.
    fn begin_nal(&mut self) -> Result<usize, DepacketizeError> {
        let Some(a) = &mut self.assembly else {
            return Err(DepacketizeError::FuAWithoutStart);
        };
        if a.nal_count >= MAX_NALS_PER_ACCESS_UNIT {
            return Err(DepacketizeError::TooManyNals {
                limit: MAX_NALS_PER_ACCESS_UNIT,
            });
        }
        a.nal_count += 1;
        self.append(&START_CODE)?;
        Ok(self.assembly.map_or(0, |a| a.start + a.len))
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), DepacketizeError> {
        let Some(a) = &mut self.assembly else {
            return Err(DepacketizeError::FuAWithoutStart);
        };
        let limit = self.max_au;
        let end = a.start + a.len + bytes.len();
        if a.len + bytes.len() > limit || end > self.buf.as_ref().len() {
            return Err(DepacketizeError::AccessUnitTooLarge { limit });
        }
        self.buf.as_mut()[a.start + a.len..end].copy_from_slice(bytes);
        a.len += bytes.len();
        Ok(())
    }

    /// Bookkeeping once a NAL unit is whole: keyframe flag, SPS bound.
    fn end_nal(&mut self, header: NalHeader, nal_start: usize) -> Result<(), DepacketizeError> {
        let Some(a) = &mut self.assembly else {
            return Ok(());
        };
        match header.nal_type() {
            NalType::IdrSlice => a.keyframe = true,
            NalType::Sps => {
                let end = a.start + a.len;
                let sps = Sps::parse(&self.buf.as_ref()[nal_start..end])?;
                if sps.width > self.config.max_width || sps.height > self.config.max_height {
                    return Err(DepacketizeError::SpsDimensionsTooLarge {
                        width: sps.width,
                        height: sps.height,
                        max_width: self.config.max_width,
                        max_height: self.config.max_height,
                    });
                }
                self.sps = Some(sps);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether an RTP payload starts with a NAL unit that can be the first of an access unit:
/// an AUD, SEI, SPS, PPS or types 14–18 (H.264 §7.4.1.2.3), or the first slice of a picture
/// (`first_mb_in_slice` = 0, whose ue(v) code is a single 1 bit).
fn begins_access_unit(payload: &[u8]) -> bool {
    let first_nal = |nal_type: u8, rest: &[u8]| match nal_type {
        6..=9 | 14..=18 => true,
        1..=5 => rest.first().is_some_and(|b| b & 0x80 != 0),
        _ => false,
    };
    match payload {
        [header, rest @ ..] if header & 0x1f == 24 => match rest {
            [_, _, inner, inner_rest @ ..] => first_nal(inner & 0x1f, inner_rest),
            _ => false,
        },
        [header, fu_header, rest @ ..] if header & 0x1f == 28 => {
            fu_header & 0x80 != 0 && first_nal(fu_header & 0x1f, rest)
        }
        [header, rest @ ..] => first_nal(header & 0x1f, rest),
        [] => false,
    }
}
