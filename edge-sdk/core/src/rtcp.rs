//! RTCP (RFC 3550 §6) and the PSFB Picture Loss Indication (RFC 4585 §6.3.1): parse compound
//! packets into borrowed views, and write single packets into a caller's buffer.
//!
//! | packet | type | reading | writing |
//! |---|---|---|---|
//! | Sender Report | 200 | [`SenderReport`] | [`SenderReport::write`] |
//! | Receiver Report | 201 | [`ReceiverReport`] | [`ReceiverReport::write`] |
//! | Source Description | 202 | [`Sdes`] | [`write_sdes_cname`] |
//! | Goodbye | 203 | [`Bye`] | [`Bye::write`] |
//! | Application-defined | 204 | [`App`] | [`App::write`] |
//! | PSFB, FMT 1 | 206 | [`Pli`] | [`Pli::write`] |
//! | anything else | | [`RtcpPacket::Unknown`] | |
//!
//! Every length taken off the wire (the header's length field, padding count, report count,
//! SDES item lengths, BYE reason length) is checked against the bytes actually present before
//! it is used; a bad packet is a typed [`RtcpError`], never a panic.
//!
//! [`parse_compound`] walks a compound packet without judging its composition, because senders
//! in the wild do not all start with SR/RR (RFC 5506 reduced-size RTCP, for one, drops that
//! rule). [`validate_compound`] applies the stricter RFC 3550 §A.2 checks for callers that want
//! them.
//!
//! A compound packet is just packets back to back; [`CompoundWriter`] tracks the offset.
//!
//! Round-trip times come from report blocks with [`round_trip_time`] (RFC 3550 §6.4.1).
//!
//! On a stream that carries both RTP and RTCP (RTP/AVPF over one RFC 4571 TCP connection),
//! [`is_rtcp`] tells them apart (RFC 5761 §4).

use core::fmt;
use core::iter::FusedIterator;

/// The only RTP/RTCP version (RFC 3550 §6.4.1).
pub const VERSION: u8 = 2;
/// Size of the common RTCP header: V/P/count, packet type, length.
pub const HEADER_LEN: usize = 4;
/// Size of one report block on the wire (RFC 3550 §6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Most report blocks, SDES chunks or BYE SSRCs one packet can carry: the count is 5 bits.
pub const MAX_COUNT: usize = 31;
/// Largest RTCP packet the 16-bit length field can describe: (65535 + 1) words.
pub const MAX_PACKET_LEN: usize = (u16::MAX as usize + 1) * 4;

/// Packet type of a Sender Report (RFC 3550 §6.4.1).
pub const PT_SR: u8 = 200;
/// Packet type of a Receiver Report (RFC 3550 §6.4.2).
pub const PT_RR: u8 = 201;
/// Packet type of a Source Description (RFC 3550 §6.5).
pub const PT_SDES: u8 = 202;
/// Packet type of a Goodbye (RFC 3550 §6.6).
pub const PT_BYE: u8 = 203;
/// Packet type of an application-defined packet (RFC 3550 §6.7).
pub const PT_APP: u8 = 204;
/// Packet type of transport-layer feedback (RFC 4585 §6.2).
pub const PT_RTPFB: u8 = 205;
/// Packet type of payload-specific feedback (RFC 4585 §6.3).
pub const PT_PSFB: u8 = 206;
/// Feedback message type of a Picture Loss Indication within [`PT_PSFB`] (RFC 4585 §6.3.1).
pub const FMT_PLI: u8 = 1;

/// SDES item type that ends a chunk's item list (RFC 3550 §6.5).
pub const SDES_END: u8 = 0;
/// SDES item type of the canonical name (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

/// SR sender info: SSRC, NTP timestamp, RTP timestamp, packet count, octet count.
const SR_FIXED_LEN: usize = 24;
/// RR fixed part: the reporter's SSRC.
const RR_FIXED_LEN: usize = 4;
/// APP fixed part: SSRC and 4-byte name.
const APP_FIXED_LEN: usize = 8;
/// PLI body: sender SSRC and media SSRC, no FCI.
const PLI_BODY_LEN: usize = 8;

/// Why an RTCP packet could not be parsed or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer bytes than the header, or than the fixed part of the packet type.
    #[error("RTCP packet of {len} bytes is shorter than the {needed} bytes its type requires")]
    TooShort {
        /// Bytes required.
        needed: usize,
        /// Bytes present (padding excluded).
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {version} is not 2")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The header's length field describes more bytes than are present.
    #[error("RTCP length field declares {declared} bytes but only {available} are present")]
    LengthOverrun {
        /// Packet length from the header, in bytes.
        declared: usize,
        /// Bytes present from the start of the packet.
        available: usize,
    },
    /// The P bit is set but the padding count is zero or larger than the packet body.
    #[error("RTCP padding count {count} is invalid for a {available}-byte body")]
    BadPadding {
        /// Padding count from the last byte.
        count: u8,
        /// Bytes after the header.
        available: usize,
    },
    /// The report-block (SR/RR) or SSRC (BYE) count needs more bytes than the packet holds.
    #[error("RTCP count {count} does not fit a {len}-byte body")]
    BadCount {
        /// The count from the header.
        count: u8,
        /// Body length (padding excluded).
        len: usize,
    },
    /// An SDES chunk's SSRC or item-list terminator is missing.
    #[error("SDES chunk {chunk} runs past the end of the packet")]
    SdesChunkOverrun {
        /// Index of the chunk, from 0.
        chunk: u8,
    },
    /// An SDES item's length runs past the end of the packet.
    #[error("SDES item at offset {offset} runs past the end of the packet")]
    SdesItemOverrun {
        /// Offset of the item's type octet from the start of the packet.
        offset: usize,
    },
    /// A BYE reason's length runs past the end of the packet.
    #[error("BYE reason of {len} bytes does not fit the {available} bytes left")]
    ByeReasonOverrun {
        /// Reason length from the wire.
        len: u8,
        /// Bytes left after the length octet.
        available: usize,
    },
    /// The output buffer is too small for the packet being written.
    #[error("output buffer of {capacity} bytes is too small for a {needed}-byte RTCP packet")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// A value to write does not fit its wire field.
    #[error("RTCP field out of range: {field}")]
    FieldOutOfRange {
        /// Which field.
        field: &'static str,
    },
    /// [`validate_compound`]: the first packet is neither SR nor RR (RFC 3550 §6.1).
    #[error("compound RTCP packet starts with type {packet_type}, not SR or RR")]
    FirstNotReport {
        /// Type of the first packet.
        packet_type: u8,
    },
    /// [`validate_compound`]: a packet other than the last has the P bit set (RFC 3550 §6.4.1).
    #[error("padding on an RTCP packet that is not the last of its compound")]
    PaddingNotLast,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn check_capacity(needed: usize, out: &[u8]) -> Result<(), RtcpError> {
    if out.len() < needed {
        return Err(RtcpError::BufferTooSmall {
            needed,
            capacity: out.len(),
        });
    }
    Ok(())
}

/// Writes the common header for a `len`-byte packet (a multiple of 4, at most
/// [`MAX_PACKET_LEN`], and `out.len() >= len`, all checked by the caller).
fn put_header(out: &mut [u8], count: u8, packet_type: u8, len: usize) {
    out[0] = (VERSION << 6) | (count & 0x1f);
    out[1] = packet_type;
    // RFC 3550 §6.4.1: length in 32-bit words minus one, header included.
    let words = (len / 4).saturating_sub(1) as u16;
    out[2..4].copy_from_slice(&words.to_be_bytes());
}

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900-01-01 in the high 32 bits, the
/// fraction of a second in the low 32.
///
/// The core has no clock; callers build one from their own time source with
/// [`from_micros`](Self::from_micros) or [`from_nanos`](Self::from_nanos).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
    pub const UNIX_EPOCH_SECONDS: u64 = 2_208_988_800;

    /// Builds a timestamp from its seconds and fraction halves.
    #[must_use]
    pub const fn new(seconds: u32, fraction: u32) -> Self {
        Self(((seconds as u64) << 32) | fraction as u64)
    }

    /// Builds a timestamp from nanoseconds since the NTP epoch. Seconds wrap modulo 2^32, as
    /// NTP eras do (RFC 5905 §6); the fraction is truncated.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        let seconds = nanos / 1_000_000_000;
        // < 10^9 < 2^30, so shifting by 32 stays under 2^62.
        let fraction = ((nanos % 1_000_000_000) << 32) / 1_000_000_000;
        Self((seconds << 32) | fraction)
    }

    /// Builds a timestamp from microseconds since the NTP epoch. Seconds wrap modulo 2^32, as
    /// NTP eras do (RFC 5905 §6); the fraction is truncated.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        let seconds = micros / 1_000_000;
        let fraction = ((micros % 1_000_000) << 32) / 1_000_000;
        Self((seconds << 32) | fraction)
    }

    /// Microseconds since the start of this timestamp's NTP era, rounded to the nearest, so that
    /// `from_micros(t).to_micros() == t` within one era.
    #[must_use]
    pub const fn to_micros(self) -> u64 {
        let seconds = self.0 >> 32;
        let fraction = self.0 & 0xffff_ffff;
        seconds * 1_000_000 + ((fraction * 1_000_000 + (1 << 31)) >> 32)
    }

    /// Whole seconds (high 32 bits).
    #[must_use]
    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Fraction of a second in 1/2^32 units (low 32 bits).
    #[must_use]
    pub const fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// The middle 32 bits, in 1/65536 s units: the "compact" form used by a report block's LSR
    /// and for the arrival time in the RTT computation (RFC 3550 §6.4.1).
    #[must_use]
    pub const fn mid32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// Converts 1/65536-second units (DLSR, RTT) to microseconds, truncating.
#[must_use]
pub const fn compact_to_micros(units: u32) -> u64 {
    (units as u64 * 1_000_000) >> 16
}

/// Converts microseconds to 1/65536-second units (for DLSR), truncating and saturating at
/// `u32::MAX` (about 18 hours).
#[must_use]
pub const fn compact_from_micros(micros: u64) -> u32 {
    let units = (micros as u128 * 65_536) / 1_000_000;
    if units > u32::MAX as u128 {
        u32::MAX
    } else {
        units as u32
    }
}

/// Round-trip time to the reporter of `block`, in 1/65536-second units, given the NTP time
/// `arrival` at which the report carrying the block was received (RFC 3550 §6.4.1:
/// RTT = A − LSR − DLSR, on the middle 32 bits, modulo 2^32).
///
/// `None` when the block's LSR is zero (the reporter has not yet heard a Sender Report) or when
/// the difference, read as a signed 32-bit number, is negative (clock skew, or a stale block).
#[must_use]
pub fn round_trip_time(arrival: NtpTimestamp, block: &ReportBlock) -> Option<u32> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = arrival
        .mid32()
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    // Wrapping arithmetic keeps the answer right across the 2^16-second wrap of the compact
    // form; only a genuinely negative interval lands in the upper half.
    if (rtt as i32) < 0 { None } else { Some(rtt) }
}

/// Says whether a packet on a stream shared by RTP and RTCP is RTCP (RFC 5761 §4): its second
/// octet is in 192..=223, where RTCP packet types live and where no RTP marker/payload-type
/// combination with a dynamic payload type falls. Only the first two bytes are examined;
/// fewer than two bytes is `false`.
#[must_use]
pub fn is_rtcp(packet: &[u8]) -> bool {
    matches!(packet.get(1), Some(192..=223))
}

/// The common RTCP header (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpHeader {
    /// P bit: the packet ends with padding whose last octet is the padding count.
    pub padding: bool,
    /// The 5-bit count field: report count, source count, subtype or feedback FMT, by type.
    pub count: u8,
    /// Packet type.
    pub packet_type: u8,
    /// Length field: packet length in 32-bit words minus one.
    pub length: u16,
}

impl RtcpHeader {
    /// Parses the 4-byte header at the start of `bytes`, checking only the version.
    pub fn parse(bytes: &[u8]) -> Result<Self, RtcpError> {
        let [b0, b1, l0, l1, ..] = *bytes else {
            return Err(RtcpError::TooShort {
                needed: HEADER_LEN,
                len: bytes.len(),
            });
        };
        let version = b0 >> 6;
        if version != VERSION {
            return Err(RtcpError::BadVersion { version });
        }
        Ok(Self {
            padding: b0 & 0x20 != 0,
            count: b0 & 0x1f,
            packet_type: b1,
            length: u16::from_be_bytes([l0, l1]),
        })
    }

    /// Length of the whole packet in bytes, header and padding included.
    #[must_use]
    pub const fn packet_len(&self) -> usize {
        (self.length as usize + 1) * 4
    }
}

/// Splits the first packet off `bytes`: its header, its body (after the header, padding
/// removed) and its length on the wire.
fn split_packet(bytes: &[u8]) -> Result<(RtcpHeader, &[u8], usize), RtcpError> {
    let header = RtcpHeader::parse(bytes)?;
    let len = header.packet_len();
    let Some(packet) = bytes.get(..len) else {
        return Err(RtcpError::LengthOverrun {
            declared: len,
            available: bytes.len(),
        });
    };
    let mut body = &packet[HEADER_LEN..];
    if header.padding {
        // RFC 3550 §6.4.1: the last octet counts the padding, itself included, and padding
        // never eats into the header.
        let count = body.last().copied().unwrap_or(0);
        if count == 0 || usize::from(count) > body.len() {
            return Err(RtcpError::BadPadding {
                count,
                available: body.len(),
            });
        }
        body = &body[..body.len() - usize::from(count)];
    }
    Ok((header, body, len))
}

fn too_short(needed_body: usize, body: &[u8]) -> RtcpError {
    RtcpError::TooShort {
        needed: HEADER_LEN + needed_body,
        len: HEADER_LEN + body.len(),
    }
}

/// One reception report block (RFC 3550 §6.4.1), as carried in SR and RR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost: a 24-bit signed field on the wire (duplicates make it negative).
    /// Writing clamps to −2^23..=2^23−1, as RFC 3550 §6.4.1 prescribes.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub extended_highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// LSR: middle 32 bits of the last SR's NTP timestamp from this source, 0 if none yet.
    pub last_sr: u32,
    /// DLSR: delay since that SR was received, in 1/65536 s units.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    const MIN_LOST: i32 = -(1 << 23);
    const MAX_LOST: i32 = (1 << 23) - 1;

    /// Reads a block from exactly [`REPORT_BLOCK_LEN`] bytes; `None` for any other length.
    fn from_wire(b: &[u8]) -> Option<Self> {
        if b.len() != REPORT_BLOCK_LEN {
            return None;
        }
        let lost = (u32::from(b[5]) << 16) | (u32::from(b[6]) << 8) | u32::from(b[7]);
        Some(Self {
            ssrc: u32_at(b, 0)?,
            fraction_lost: b[4],
            // Shift the 24-bit field to the top and back to sign-extend it.
            cumulative_lost: ((lost << 8) as i32) >> 8,
            extended_highest_seq: u32_at(b, 8)?,
            jitter: u32_at(b, 12)?,
            last_sr: u32_at(b, 16)?,
            delay_since_last_sr: u32_at(b, 20)?,
        })
    }

    /// Writes the block into exactly [`REPORT_BLOCK_LEN`] bytes (checked by the caller).
    fn put(&self, b: &mut [u8]) {
        let lost = self.cumulative_lost.clamp(Self::MIN_LOST, Self::MAX_LOST) as u32 & 0x00ff_ffff;
        b[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        b[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        b[8..12].copy_from_slice(&self.extended_highest_seq.to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        b[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        b[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

#[derive(Clone, Copy)]
enum BlocksRepr<'a> {
    /// `n * REPORT_BLOCK_LEN` bytes from a parsed packet.
    Wire(&'a [u8]),
    /// Blocks supplied by a writer.
    Blocks(&'a [ReportBlock]),
}

/// The report blocks of an SR or RR: a view over the parsed packet's bytes (nothing copied), or
/// over a caller's slice when writing ([`ReportBlocks::new`]).
#[derive(Clone, Copy)]
pub struct ReportBlocks<'a>(BlocksRepr<'a>);

impl<'a> ReportBlocks<'a> {
    /// No report blocks.
    pub const EMPTY: Self = Self(BlocksRepr::Blocks(&[]));

    /// Blocks to write; at most [`MAX_COUNT`] (checked on write).
    #[must_use]
    pub const fn new(blocks: &'a [ReportBlock]) -> Self {
        Self(BlocksRepr::Blocks(blocks))
    }

    /// Number of blocks.
    #[must_use]
    pub const fn len(&self) -> usize {
        match self.0 {
            BlocksRepr::Wire(b) => b.len() / REPORT_BLOCK_LEN,
            BlocksRepr::Blocks(b) => b.len(),
        }
    }

    /// True when there are no blocks.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block at `index`, if any.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<ReportBlock> {
        match self.0 {
            BlocksRepr::Wire(b) => {
                let start = index.checked_mul(REPORT_BLOCK_LEN)?;
                ReportBlock::from_wire(b.get(start..start.checked_add(REPORT_BLOCK_LEN)?)?)
            }
            BlocksRepr::Blocks(b) => b.get(index).copied(),
        }
    }

    /// Iterates the blocks in order.
    #[must_use]
    pub const fn iter(&self) -> ReportBlockIter<'a> {
        ReportBlockIter {
            blocks: *self,
            next: 0,
        }
    }
}

impl Default for ReportBlocks<'_> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<'a> From<&'a [ReportBlock]> for ReportBlocks<'a> {
    fn from(blocks: &'a [ReportBlock]) -> Self {
        Self::new(blocks)
    }
}

impl PartialEq for ReportBlocks<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for ReportBlocks<'_> {}

impl fmt::Debug for ReportBlocks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for ReportBlocks<'a> {
    type Item = ReportBlock;
    type IntoIter = ReportBlockIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &ReportBlocks<'a> {
    type Item = ReportBlock;
    type IntoIter = ReportBlockIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`ReportBlocks`].
#[derive(Clone, Debug)]
pub struct ReportBlockIter<'a> {
    blocks: ReportBlocks<'a>,
    next: usize,
}

impl Iterator for ReportBlockIter<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let block = self.blocks.get(self.next)?;
        self.next += 1;
        Some(block)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.blocks.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for ReportBlockIter<'_> {}
impl FusedIterator for ReportBlockIter<'_> {}

/// Takes `count` report blocks off the front of `body`; profile-specific extensions after them
/// (RFC 3550 §6.4.1) are ignored.
fn report_blocks(count: u8, body: &[u8]) -> Result<ReportBlocks<'_>, RtcpError> {
    let len = usize::from(count) * REPORT_BLOCK_LEN;
    let Some(wire) = body.get(..len) else {
        return Err(RtcpError::BadCount {
            count,
            len: HEADER_LEN + body.len(),
        });
    };
    Ok(ReportBlocks(BlocksRepr::Wire(wire)))
}

fn blocks_count(reports: &ReportBlocks<'_>) -> Result<u8, RtcpError> {
    if reports.len() > MAX_COUNT {
        return Err(RtcpError::FieldOutOfRange {
            field: "report block count (max 31)",
        });
    }
    Ok(reports.len() as u8)
}

fn put_blocks(out: &mut [u8], reports: &ReportBlocks<'_>) {
    for (chunk, block) in out.chunks_exact_mut(REPORT_BLOCK_LEN).zip(reports.iter()) {
        block.put(chunk);
    }
}

/// A Sender Report (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport<'a> {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Wallclock time when this report was sent.
    pub ntp: NtpTimestamp,
    /// The same instant in the RTP media clock.
    pub rtp_timestamp: u32,
    /// RTP data packets sent since starting transmission.
    pub packet_count: u32,
    /// RTP payload octets sent since starting transmission.
    pub octet_count: u32,
    /// Reception report blocks (at most 31).
    pub reports: ReportBlocks<'a>,
}

impl<'a> SenderReport<'a> {
    fn parse_body(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        if body.len() < SR_FIXED_LEN {
            return Err(too_short(SR_FIXED_LEN, body));
        }
        let field = |at| u32_at(body, at).unwrap_or(0);
        Ok(Self {
            ssrc: field(0),
            ntp: NtpTimestamp::new(field(4), field(8)),
            rtp_timestamp: field(12),
            packet_count: field(16),
            octet_count: field(20),
            reports: report_blocks(count, &body[SR_FIXED_LEN..]).map_err(|_| {
                RtcpError::BadCount {
                    count,
                    len: HEADER_LEN + body.len(),
                }
            })?,
        })
    }

    /// Bytes this packet occupies on the wire.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + SR_FIXED_LEN + self.reports.len() * REPORT_BLOCK_LEN
    }

    /// Writes this packet at the start of `out`, returning its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        let count = blocks_count(&self.reports)?;
        let len = self.encoded_len();
        check_capacity(len, out)?;
        put_header(out, count, PT_SR, len);
        out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        out[8..16].copy_from_slice(&self.ntp.0.to_be_bytes());
        out[16..20].copy_from_slice(&self.rtp_timestamp.to_be_bytes());
        out[20..24].copy_from_slice(&self.packet_count.to_be_bytes());
        out[24..28].copy_from_slice(&self.octet_count.to_be_bytes());
        put_blocks(&mut out[HEADER_LEN + SR_FIXED_LEN..len], &self.reports);
        Ok(len)
    }
}

/// A Receiver Report (RFC 3550 §6.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    /// SSRC of the reporter.
    pub ssrc: u32,
    /// Reception report blocks (at most 31).
    pub reports: ReportBlocks<'a>,
}

impl<'a> ReceiverReport<'a> {
    fn parse_body(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let Some(ssrc) = u32_at(body, 0) else {
            return Err(too_short(RR_FIXED_LEN, body));
        };
        Ok(Self {
            ssrc,
            reports: report_blocks(count, &body[RR_FIXED_LEN..]).map_err(|_| {
                RtcpError::BadCount {
                    count,
                    len: HEADER_LEN + body.len(),
                }
            })?,
        })
    }

    /// Bytes this packet occupies on the wire.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + RR_FIXED_LEN + self.reports.len() * REPORT_BLOCK_LEN
    }

    /// Writes this packet at the start of `out`, returning its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        let count = blocks_count(&self.reports)?;
        let len = self.encoded_len();
        check_capacity(len, out)?;
        put_header(out, count, PT_RR, len);
        out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        put_blocks(&mut out[HEADER_LEN + RR_FIXED_LEN..len], &self.reports);
        Ok(len)
    }
}

/// A Source Description packet (RFC 3550 §6.5), validated on parse so that iterating its chunks
/// and items cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sdes<'a> {
    count: u8,
    body: &'a [u8],
}

/// One chunk of an SDES packet: a source and its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The source (SSRC or CSRC) described.
    pub ssrc: u32,
    items: &'a [u8],
}

/// One SDES item (RFC 3550 §6.5): type and value (at most 255 bytes, UTF-8 by the RFC, not
/// checked here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// Item type: [`SDES_CNAME`], NAME = 2, ... PRIV = 8.
    pub item_type: u8,
    /// The value.
    pub value: &'a [u8],
}

/// Walks the chunk starting at `pos` in an SDES body: returns its SSRC, its item bytes (the
/// terminator excluded) and where the next chunk starts.
fn sdes_chunk(body: &[u8], pos: usize, index: u8) -> Result<(u32, &[u8], usize), RtcpError> {
    let overrun = RtcpError::SdesChunkOverrun { chunk: index };
    let ssrc = u32_at(body, pos).ok_or(overrun)?;
    let items_start = pos + 4;
    let mut at = items_start;
    loop {
        match body.get(at) {
            // RFC 3550 §6.5: the item list ends with at least one null octet.
            None => return Err(overrun),
            Some(&SDES_END) => break,
            Some(_) => {
                let item_overrun = RtcpError::SdesItemOverrun {
                    offset: HEADER_LEN + at,
                };
                let len = *body.get(at + 1).ok_or(item_overrun)?;
                let end = at + 2 + usize::from(len);
                if end > body.len() {
                    return Err(item_overrun);
                }
                at = end;
            }
        }
    }
    let items = &body[items_start..at];
    // The terminator and padding run to the next 32-bit boundary; the body starts aligned.
    // Tolerate a packet that ends before that boundary (after RTCP padding removal).
    let next = ((at + 1).div_ceil(4) * 4).min(body.len());
    Ok((ssrc, items, next))
}

impl<'a> Sdes<'a> {
    fn parse_body(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let mut pos = 0;
        for index in 0..count {
            pos = sdes_chunk(body, pos, index)?.2;
        }
        // Bytes after the counted chunks are ignored, like SR/RR profile extensions.
        Ok(Self { count, body })
    }

    /// Number of chunks (the header's source count).
    #[must_use]
    pub const fn chunk_count(&self) -> u8 {
        self.count
    }

    /// Iterates the chunks.
    #[must_use]
    pub const fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            body: self.body,
            pos: 0,
            index: 0,
            count: self.count,
        }
    }

    /// The first chunk's CNAME (item type 1), if it has one.
    #[must_use]
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.chunks().next()?.cname()
    }
}

impl<'a> SdesChunk<'a> {
    /// Iterates this chunk's items (the terminating null item is not yielded).
    #[must_use]
    pub const fn items(&self) -> SdesItems<'a> {
        SdesItems { rest: self.items }
    }

    /// The first CNAME item's value, if any.
    #[must_use]
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items()
            .find(|i| i.item_type == SDES_CNAME)
            .map(|i| i.value)
    }
}

/// Iterator over the chunks of an [`Sdes`].
#[derive(Clone, Debug)]
pub struct SdesChunks<'a> {
    body: &'a [u8],
    pos: usize,
    index: u8,
    count: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;
    fn next(&mut self) -> Option<SdesChunk<'a>> {
        if self.index >= self.count {
            return None;
        }
        // Validated on parse; a failure here just ends the iteration.
        let (ssrc, items, next) = sdes_chunk(self.body, self.pos, self.index).ok()?;
        self.pos = next;
        self.index += 1;
        Some(SdesChunk { ssrc, items })
    }
}

impl FusedIterator for SdesChunks<'_> {}

/// Iterator over the items of an [`SdesChunk`].
#[derive(Clone, Debug)]
pub struct SdesItems<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;
    fn next(&mut self) -> Option<SdesItem<'a>> {
        let [item_type, len, ref tail @ ..] = *self.rest else {
            return None;
        };
        let value = tail.get(..usize::from(len))?;
        self.rest = &tail[usize::from(len)..];
        Some(SdesItem { item_type, value })
    }
}

impl FusedIterator for SdesItems<'_> {}

/// Writes an SDES packet with one chunk holding one CNAME item (RFC 3550 §6.5.1) at the start
/// of `out`, returning its length. `cname` is at most 255 bytes.
pub fn write_sdes_cname(ssrc: u32, cname: &[u8], out: &mut [u8]) -> Result<usize, RtcpError> {
    let Ok(cname_len) = u8::try_from(cname.len()) else {
        return Err(RtcpError::FieldOutOfRange {
            field: "CNAME length (max 255)",
        });
    };
    // SSRC, type, length, value, then at least one null octet, padded to 32 bits.
    let chunk_len = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let len = HEADER_LEN + chunk_len;
    check_capacity(len, out)?;
    put_header(out, 1, PT_SDES, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8] = SDES_CNAME;
    out[9] = cname_len;
    out[10..10 + cname.len()].copy_from_slice(cname);
    out[10 + cname.len()..len].fill(0);
    Ok(len)
}

#[derive(Clone, Copy)]
enum SsrcRepr<'a> {
    Wire(&'a [u8]),
    Slice(&'a [u32]),
}

/// A list of SSRCs: a view over a parsed packet's bytes, or over a caller's slice when writing.
#[derive(Clone, Copy)]
pub struct SsrcList<'a>(SsrcRepr<'a>);

impl<'a> SsrcList<'a> {
    /// SSRCs to write; at most [`MAX_COUNT`] (checked on write).
    #[must_use]
    pub const fn new(ssrcs: &'a [u32]) -> Self {
        Self(SsrcRepr::Slice(ssrcs))
    }

    /// Number of SSRCs.
    #[must_use]
    pub const fn len(&self) -> usize {
        match self.0 {
            SsrcRepr::Wire(b) => b.len() / 4,
            SsrcRepr::Slice(s) => s.len(),
        }
    }

    /// True when the list is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SSRC at `index`, if any.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<u32> {
        match self.0 {
            SsrcRepr::Wire(b) => u32_at(b, index.checked_mul(4)?),
            SsrcRepr::Slice(s) => s.get(index).copied(),
        }
    }

    /// Iterates the SSRCs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        let list = *self;
        (0..list.len()).map(move |i| list.get(i).unwrap_or(0))
    }
}

impl PartialEq for SsrcList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for SsrcList<'_> {}

impl fmt::Debug for SsrcList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A Goodbye packet (RFC 3550 §6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bye<'a> {
    /// The sources leaving (at most 31).
    pub ssrcs: SsrcList<'a>,
    /// Optional reason for leaving (at most 255 bytes).
    pub reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    fn parse_body(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let Some((ssrcs, rest)) = body.split_at_checked(usize::from(count) * 4) else {
            return Err(RtcpError::BadCount {
                count,
                len: HEADER_LEN + body.len(),
            });
        };
        let reason = match *rest {
            [] => None,
            [len, ref text @ ..] => {
                let Some(reason) = text.get(..usize::from(len)) else {
                    return Err(RtcpError::ByeReasonOverrun {
                        len,
                        available: text.len(),
                    });
                };
                Some(reason)
            }
        };
        Ok(Self {
            ssrcs: SsrcList(SsrcRepr::Wire(ssrcs)),
            reason,
        })
    }

    /// Bytes this packet occupies on the wire.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let reason = self.reason.map_or(0, |r| (1 + r.len()).div_ceil(4) * 4);
        HEADER_LEN + self.ssrcs.len() * 4 + reason
    }

    /// Writes this packet at the start of `out`, returning its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        if self.ssrcs.len() > MAX_COUNT {
            return Err(RtcpError::FieldOutOfRange {
                field: "BYE source count (max 31)",
            });
        }
        let reason_len = match self.reason.map(|r| u8::try_from(r.len())) {
            Some(Err(_)) => {
                return Err(RtcpError::FieldOutOfRange {
                    field: "BYE reason length (max 255)",
                });
            }
            Some(Ok(n)) => Some(n),
            None => None,
        };
        let len = self.encoded_len();
        check_capacity(len, out)?;
        put_header(out, self.ssrcs.len() as u8, PT_BYE, len);
        let mut at = HEADER_LEN;
        for ssrc in self.ssrcs.iter() {
            out[at..at + 4].copy_from_slice(&ssrc.to_be_bytes());
            at += 4;
        }
        if let (Some(n), Some(reason)) = (reason_len, self.reason) {
            out[at] = n;
            out[at + 1..at + 1 + reason.len()].copy_from_slice(reason);
            out[at + 1 + reason.len()..len].fill(0);
        }
        Ok(len)
    }
}

/// An application-defined packet (RFC 3550 §6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct App<'a> {
    /// Subtype (5 bits), interpreted per `name`.
    pub subtype: u8,
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Four ASCII characters naming the application.
    pub name: [u8; 4],
    /// Application data. RFC 3550 §6.7 requires a multiple of 4 bytes; [`App::write`] does not
    /// pad, so the caller must (it rejects other lengths).
    pub data: &'a [u8],
}

/// Writes the 12-byte APP header for `data_len` bytes of data that the caller has already
/// placed (or will place) at `out[12..]`. Returns the packet length.
pub(crate) fn write_app_header(
    subtype: u8,
    ssrc: u32,
    name: [u8; 4],
    data_len: usize,
    out: &mut [u8],
) -> Result<usize, RtcpError> {
    if subtype > 0x1f {
        return Err(RtcpError::FieldOutOfRange {
            field: "APP subtype (5 bits)",
        });
    }
    if !data_len.is_multiple_of(4) {
        return Err(RtcpError::FieldOutOfRange {
            field: "APP data length (multiple of 4)",
        });
    }
    let len = HEADER_LEN + APP_FIXED_LEN + data_len;
    if len > MAX_PACKET_LEN {
        return Err(RtcpError::FieldOutOfRange {
            field: "RTCP packet length",
        });
    }
    check_capacity(len, out)?;
    put_header(out, subtype, PT_APP, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8..12].copy_from_slice(&name);
    Ok(len)
}

impl<'a> App<'a> {
    fn parse_body(subtype: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let Some(ssrc) = u32_at(body, 0) else {
            return Err(too_short(APP_FIXED_LEN, body));
        };
        let Some(&[n0, n1, n2, n3]) = body.get(4..8) else {
            return Err(too_short(APP_FIXED_LEN, body));
        };
        Ok(Self {
            subtype,
            ssrc,
            name: [n0, n1, n2, n3],
            data: &body[APP_FIXED_LEN..],
        })
    }

    /// Bytes this packet occupies on the wire.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + APP_FIXED_LEN + self.data.len()
    }

    /// Writes this packet at the start of `out`, returning its length. Fails with
    /// [`RtcpError::FieldOutOfRange`] if the subtype exceeds 31, or if `data` is not a multiple
    /// of 4 bytes or too long for the length field.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        let len = write_app_header(self.subtype, self.ssrc, self.name, self.data.len(), out)?;
        out[HEADER_LEN + APP_FIXED_LEN..len].copy_from_slice(self.data);
        Ok(len)
    }
}

/// A Picture Loss Indication (RFC 4585 §6.3.1): payload-specific feedback, FMT 1, no FCI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pli {
    /// SSRC of the packet's sender (the decoder asking for a key frame).
    pub sender_ssrc: u32,
    /// SSRC of the media source that should send one.
    pub media_ssrc: u32,
}

impl Pli {
    /// Bytes a PLI occupies on the wire (length field 2).
    pub const LEN: usize = HEADER_LEN + PLI_BODY_LEN;

    fn parse_body(body: &[u8]) -> Result<Self, RtcpError> {
        // RFC 4585 §6.3.1 defines no FCI; anything after the two SSRCs is ignored.
        match (u32_at(body, 0), u32_at(body, 4)) {
            (Some(sender_ssrc), Some(media_ssrc)) => Ok(Self {
                sender_ssrc,
                media_ssrc,
            }),
            _ => Err(too_short(PLI_BODY_LEN, body)),
        }
    }

    /// Writes this packet at the start of `out`, returning its length ([`Pli::LEN`]).
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        check_capacity(Self::LEN, out)?;
        put_header(out, FMT_PLI, PT_PSFB, Self::LEN);
        out[4..8].copy_from_slice(&self.sender_ssrc.to_be_bytes());
        out[8..12].copy_from_slice(&self.media_ssrc.to_be_bytes());
        Ok(Self::LEN)
    }
}

/// One RTCP packet from a compound packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// PT 200.
    SenderReport(SenderReport<'a>),
    /// PT 201.
    ReceiverReport(ReceiverReport<'a>),
    /// PT 202.
    Sdes(Sdes<'a>),
    /// PT 203.
    Bye(Bye<'a>),
    /// PT 204.
    App(App<'a>),
    /// PT 206, FMT 1.
    Pli(Pli),
    /// Any other packet type (or PSFB with another FMT), kept so that parsing a compound packet
    /// can go on past it (RFC 3550 §6.1: unknown types are ignored).
    Unknown {
        /// Packet type.
        packet_type: u8,
        /// The header's 5-bit count/FMT field.
        count: u8,
        /// Bytes after the header, padding removed.
        body: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    /// Parses the first packet in `bytes`, returning it and its length on the wire (the offset
    /// of the next packet in a compound).
    pub fn parse(bytes: &'a [u8]) -> Result<(Self, usize), RtcpError> {
        let (header, body, len) = split_packet(bytes)?;
        let count = header.count;
        let packet = match header.packet_type {
            PT_SR => Self::SenderReport(SenderReport::parse_body(count, body)?),
            PT_RR => Self::ReceiverReport(ReceiverReport::parse_body(count, body)?),
            PT_SDES => Self::Sdes(Sdes::parse_body(count, body)?),
            PT_BYE => Self::Bye(Bye::parse_body(count, body)?),
            PT_APP => Self::App(App::parse_body(count, body)?),
            PT_PSFB if count == FMT_PLI => Self::Pli(Pli::parse_body(body)?),
            packet_type => Self::Unknown {
                packet_type,
                count,
                body,
            },
        };
        Ok((packet, len))
    }
}

/// Iterator over the packets of a compound RTCP packet; see [`parse_compound`].
#[derive(Clone, Debug)]
pub struct CompoundIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for CompoundIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RtcpPacket::parse(self.rest) {
            Ok((packet, len)) => {
                self.rest = self.rest.get(len..).unwrap_or(&[]);
                Some(Ok(packet))
            }
            Err(e) => {
                // Lengths after a bad packet cannot be trusted: stop.
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for CompoundIter<'_> {}

/// Iterates the packets of a compound RTCP packet (RFC 3550 §6.1). Yields the first error and
/// then ends. The composition rules of RFC 3550 §6.1 (SR/RR first, CNAME present) are not
/// enforced here; see [`validate_compound`].
#[must_use]
pub fn parse_compound(bytes: &[u8]) -> CompoundIter<'_> {
    CompoundIter { rest: bytes }
}

/// Checks a compound RTCP packet per RFC 3550 §A.2: every packet parses, version 2, the first
/// packet is SR or RR, only the last packet may carry padding, and the lengths add up to the
/// whole. Returns the number of packets.
///
/// Reduced-size RTCP (RFC 5506) is legitimately rejected by this check; use [`parse_compound`]
/// for lenient reading.
pub fn validate_compound(bytes: &[u8]) -> Result<usize, RtcpError> {
    let mut rest = bytes;
    let mut packets = 0;
    loop {
        let header = RtcpHeader::parse(rest)?;
        if packets == 0 && header.packet_type != PT_SR && header.packet_type != PT_RR {
            return Err(RtcpError::FirstNotReport {
                packet_type: header.packet_type,
            });
        }
        let (_, len) = RtcpPacket::parse(rest)?;
        rest = rest.get(len..).unwrap_or(&[]);
        packets += 1;
        if rest.is_empty() {
            return Ok(packets);
        }
        if header.padding {
            return Err(RtcpError::PaddingNotLast);
        }
    }
}

/// Builds a compound packet in a caller's buffer by writing packets back to back.
///
/// ```
/// # use flowcloud_core::rtcp::{CompoundWriter, ReceiverReport, ReportBlocks, Pli, RtcpError};
/// let mut buf = [0u8; 64];
/// let mut compound = CompoundWriter::new(&mut buf);
/// let rr = ReceiverReport { ssrc: 1, reports: ReportBlocks::EMPTY };
/// compound.push_with(|out| rr.write(out))?;
/// let total = compound.push_with(|out| Pli { sender_ssrc: 1, media_ssrc: 2 }.write(out))?;
/// assert_eq!(total, 8 + 12);
/// assert_eq!(compound.written().len(), total);
/// # Ok::<(), RtcpError>(())
/// ```
#[derive(Debug)]
pub struct CompoundWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> CompoundWriter<'a> {
    /// Starts an empty compound packet at the start of `buf`.
    #[must_use]
    pub const fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Calls `write` with the unused rest of the buffer and appends what it wrote; returns the
    /// compound's total length so far. On error nothing is appended. A closure claiming more
    /// bytes than it was given is a [`RtcpError::BufferTooSmall`].
    pub fn push_with<E: From<RtcpError>>(
        &mut self,
        write: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let rest = self.buf.get_mut(self.len..).unwrap_or_default();
        let capacity = rest.len();
        let n = write(rest)?;
        if n > capacity {
            return Err(RtcpError::BufferTooSmall {
                needed: n,
                capacity,
            }
            .into());
        }
        self.len += n;
        Ok(self.len)
    }

    /// Bytes written so far.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The compound packet written so far.
    #[must_use]
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Ends writing, returning the compound packet.
    #[must_use]
    pub fn finish(self) -> &'a [u8] {
        let len = self.len;
        let buf: &'a [u8] = self.buf;
        buf.get(..len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn block(i: u32) -> ReportBlock {
        ReportBlock {
            ssrc: 0x1000 + i,
            fraction_lost: i as u8,
            cumulative_lost: if i.is_multiple_of(2) {
                i as i32 * 1000
            } else {
                -(i as i32)
            },
            extended_highest_seq: 0x0001_0000 + i,
            jitter: 7 * i,
            last_sr: 0xb705_2000 + i,
            delay_since_last_sr: 0x0005_4000 + i,
        }
    }

    fn parse_one(bytes: &[u8]) -> RtcpPacket<'_> {
        let (packet, len) = RtcpPacket::parse(bytes).unwrap();
        assert_eq!(len, bytes.len());
        packet
    }

    #[test]
    fn sender_report_round_trip_without_blocks() {
        let sr = SenderReport {
            ssrc: 0xdead_beef,
            ntp: NtpTimestamp::new(0xe000_0000, 0x8000_0000),
            rtp_timestamp: 90_000,
            packet_count: 10,
            octet_count: 12_345,
            reports: ReportBlocks::EMPTY,
        };
        let mut buf = [0u8; 28];
        assert_eq!(sr.write(&mut buf).unwrap(), 28);
        assert_eq!(&buf[..4], &[0x80, 200, 0, 6]);
        assert_eq!(parse_one(&buf), RtcpPacket::SenderReport(sr));
    }

    #[test]
    fn sender_report_round_trip_with_31_blocks() {
        let blocks: [ReportBlock; 31] = core::array::from_fn(|i| block(i as u32));
        let sr = SenderReport {
            ssrc: 1,
            ntp: NtpTimestamp(0x0123_4567_89ab_cdef),
            rtp_timestamp: 2,
            packet_count: 3,
            octet_count: 4,
            reports: ReportBlocks::new(&blocks),
        };
        let mut buf = [0u8; 4 + 24 + 31 * 24];
        assert_eq!(sr.write(&mut buf).unwrap(), buf.len());
        let RtcpPacket::SenderReport(parsed) = parse_one(&buf) else {
            panic!()
        };
        assert_eq!(parsed, sr);
        assert_eq!(parsed.reports.len(), 31);
        assert!(parsed.reports.iter().eq(blocks.iter().copied()));
        assert_eq!(parsed.reports.get(30), Some(blocks[30]));
        assert_eq!(parsed.reports.get(31), None);
    }

    #[test]
    fn too_many_blocks_or_small_buffer_is_an_error() {
        let blocks = [ReportBlock::default(); 32];
        let rr = ReceiverReport {
            ssrc: 1,
            reports: ReportBlocks::new(&blocks),
        };
        assert!(matches!(
            rr.write(&mut [0u8; 2048]),
            Err(RtcpError::FieldOutOfRange { .. })
        ));
        let rr = ReceiverReport {
            ssrc: 1,
            reports: ReportBlocks::new(&blocks[..1]),
        };
        assert_eq!(
            rr.write(&mut [0u8; 31]),
            Err(RtcpError::BufferTooSmall {
                needed: 32,
                capacity: 31
            })
        );
    }

    #[test]
    fn receiver_report_round_trip_and_cumulative_lost_sign() {
        let mut b = block(3);
        b.cumulative_lost = -5;
        let blocks = [b, block(4)];
        let rr = ReceiverReport {
            ssrc: 9,
            reports: ReportBlocks::new(&blocks),
        };
        let mut buf = [0u8; 64];
        let n = rr.write(&mut buf).unwrap();
        assert_eq!(n, 4 + 4 + 48);
        assert_eq!(&buf[12..16], &[3, 0xff, 0xff, 0xfb]);
        assert_eq!(parse_one(&buf[..n]), RtcpPacket::ReceiverReport(rr));
    }

    #[test]
    fn cumulative_lost_is_clamped_to_24_bits() {
        let mut b = ReportBlock {
            cumulative_lost: i32::MAX,
            ..ReportBlock::default()
        };
        let mut wire = [0u8; 24];
        b.put(&mut wire);
        assert_eq!(
            ReportBlock::from_wire(&wire).unwrap().cumulative_lost,
            0x7f_ffff
        );
        b.cumulative_lost = i32::MIN;
        b.put(&mut wire);
        assert_eq!(
            ReportBlock::from_wire(&wire).unwrap().cumulative_lost,
            -0x80_0000
        );
    }

    #[test]
    fn sdes_cname_round_trip() {
        for len in [0usize, 1, 2, 5, 6, 255] {
            let cname = [b'c'; 255];
            let mut buf = [0u8; 300];
            let n = write_sdes_cname(42, &cname[..len], &mut buf).unwrap();
            assert_eq!(n % 4, 0);
            let RtcpPacket::Sdes(sdes) = parse_one(&buf[..n]) else {
                panic!()
            };
            assert_eq!(sdes.chunk_count(), 1);
            assert_eq!(sdes.cname(), Some(&cname[..len]));
            let chunk = sdes.chunks().next().unwrap();
            assert_eq!(chunk.ssrc, 42);
            assert_eq!(chunk.items().count(), 1);
        }
        assert!(matches!(
            write_sdes_cname(1, &[0; 256], &mut [0; 300]),
            Err(RtcpError::FieldOutOfRange { .. })
        ));
    }

    #[test]
    fn sdes_with_several_chunks_and_items() {
        #[rustfmt::skip]
        let buf = [
            0x82, 202, 0, 6,
            0, 0, 0, 1, 2, 1, b'n', 1, 2, b'a', b'b', 0,   // NAME "n", CNAME "ab", end
            0, 0, 0, 2, 1, 3, b'x', b'y', b'z', 0, 0, 0,   // CNAME "xyz", end, pad
        ];
        let RtcpPacket::Sdes(sdes) = parse_one(&buf) else {
            panic!()
        };
        assert_eq!(sdes.cname(), Some(&b"ab"[..]));
        let mut chunks = sdes.chunks();
        let first = chunks.next().unwrap();
        let items: Vec<_> = first.items().collect();
        assert_eq!(
            items,
            [
                SdesItem {
                    item_type: 2,
                    value: b"n"
                },
                SdesItem {
                    item_type: 1,
                    value: b"ab"
                }
            ]
        );
        let second = chunks.next().unwrap();
        assert_eq!((second.ssrc, second.cname()), (2, Some(&b"xyz"[..])));
        assert!(chunks.next().is_none());
    }

    #[test]
    fn bye_round_trip() {
        let ssrcs = [1, 2, 3];
        for reason in [None, Some(&b""[..]), Some(&b"camera shutting down"[..])] {
            let bye = Bye {
                ssrcs: SsrcList::new(&ssrcs),
                reason,
            };
            let mut buf = [0u8; 64];
            let n = bye.write(&mut buf).unwrap();
            assert_eq!(n, bye.encoded_len());
            assert_eq!(n % 4, 0);
            assert_eq!(parse_one(&buf[..n]), RtcpPacket::Bye(bye));
        }
    }

    #[test]
    fn app_round_trip_and_alignment() {
        let app = App {
            subtype: 31,
            ssrc: 7,
            name: *b"TEST",
            data: &[1, 2, 3, 4, 5, 6, 7, 8],
        };
        let mut buf = [0u8; 32];
        let n = app.write(&mut buf).unwrap();
        assert_eq!(n, 20);
        assert_eq!(parse_one(&buf[..n]), RtcpPacket::App(app));
        let odd = App {
            data: &[1, 2, 3],
            ..app
        };
        assert!(matches!(
            odd.write(&mut buf),
            Err(RtcpError::FieldOutOfRange { .. })
        ));
        let bad_subtype = App { subtype: 32, ..app };
        assert!(matches!(
            bad_subtype.write(&mut buf),
            Err(RtcpError::FieldOutOfRange { .. })
        ));
    }

    #[test]
    fn pli_round_trip() {
        let pli = Pli {
            sender_ssrc: 0x0102_0304,
            media_ssrc: 0x0506_0708,
        };
        let mut buf = [0u8; 12];
        assert_eq!(pli.write(&mut buf).unwrap(), 12);
        assert_eq!(buf, [0x81, 206, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(parse_one(&buf), RtcpPacket::Pli(pli));
        assert!(is_rtcp(&buf));
    }

    #[test]
    fn unknown_types_are_kept_and_skipped() {
        // Generic NACK (RTPFB FMT 1), then a PLI.
        let mut buf = [0u8; 16 + 12];
        buf[..16].copy_from_slice(&[0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 5, 0, 0]);
        Pli {
            sender_ssrc: 1,
            media_ssrc: 2,
        }
        .write(&mut buf[16..])
        .unwrap();
        let mut it = parse_compound(&buf);
        assert_eq!(
            it.next().unwrap().unwrap(),
            RtcpPacket::Unknown {
                packet_type: 205,
                count: 1,
                body: &buf[4..16]
            }
        );
        assert!(matches!(it.next(), Some(Ok(RtcpPacket::Pli(_)))));
        assert!(it.next().is_none());
    }

    #[test]
    fn compound_sr_sdes_via_writer() {
        let blocks = [block(1)];
        let sr = SenderReport {
            ssrc: 5,
            ntp: NtpTimestamp::from_micros(3_900_000_000_000_000),
            rtp_timestamp: 1,
            packet_count: 2,
            octet_count: 3,
            reports: ReportBlocks::new(&blocks),
        };
        let mut buf = [0u8; 128];
        let mut compound = CompoundWriter::new(&mut buf);
        compound.push_with(|out| sr.write(out)).unwrap();
        let total = compound
            .push_with(|out| write_sdes_cname(5, b"cam-1@site", out))
            .unwrap();
        assert_eq!(total, 52 + 24);
        let bytes = compound.finish();
        assert_eq!(bytes.len(), total);
        assert_eq!(validate_compound(bytes), Ok(2));
        let packets: Vec<_> = parse_compound(bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0], RtcpPacket::SenderReport(sr));
        let RtcpPacket::Sdes(sdes) = packets[1] else {
            panic!()
        };
        assert_eq!(sdes.cname(), Some(&b"cam-1@site"[..]));
    }

    #[test]
    fn compound_writer_full_buffer_appends_nothing() {
        let mut buf = [0u8; 20];
        let mut compound = CompoundWriter::new(&mut buf);
        let pli = Pli::default();
        assert_eq!(compound.push_with(|out| pli.write(out)), Ok(12));
        assert_eq!(
            compound.push_with(|out| pli.write(out)),
            Err(RtcpError::BufferTooSmall {
                needed: 12,
                capacity: 8
            })
        );
        assert_eq!(compound.len(), 12);
        // A closure that claims more than it was given is refused.
        assert_eq!(
            compound.push_with(|_| Ok::<_, RtcpError>(9)),
            Err(RtcpError::BufferTooSmall {
                needed: 9,
                capacity: 8
            })
        );
    }

    #[test]
    fn validate_compound_rules() {
        let mut buf = [0u8; 24];
        Pli::default().write(&mut buf).unwrap();
        assert_eq!(
            validate_compound(&buf[..12]),
            Err(RtcpError::FirstNotReport { packet_type: 206 })
        );
        let rr = ReceiverReport {
            ssrc: 1,
            reports: ReportBlocks::EMPTY,
        };
        rr.write(&mut buf).unwrap();
        // RR padded by 4 (P bit, length 2 words+1), then a PLI: padding not last.
        buf[0] |= 0x20;
        buf[3] = 2;
        buf[8..12].copy_from_slice(&[0, 0, 0, 4]);
        Pli::default().write(&mut buf[12..]).unwrap();
        assert_eq!(validate_compound(&buf), Err(RtcpError::PaddingNotLast));
        assert_eq!(validate_compound(&buf[..12]), Ok(1));
        assert!(matches!(
            validate_compound(&[]),
            Err(RtcpError::TooShort { .. })
        ));
    }

    #[test]
    fn padding_is_removed() {
        // APP with 4 bytes of data and 4 bytes of RTCP padding.
        let buf = [
            0xa0, 204, 0, 4, 0, 0, 0, 1, b'A', b'B', b'C', b'D', 9, 9, 9, 9, 0, 0, 0, 4,
        ];
        let RtcpPacket::App(app) = parse_one(&buf) else {
            panic!()
        };
        assert_eq!(app.data, &[9, 9, 9, 9]);
    }

    #[test]
    fn error_truncated_header() {
        assert_eq!(
            RtcpPacket::parse(&[0x80, 200, 0]),
            Err(RtcpError::TooShort { needed: 4, len: 3 })
        );
        // A body too short for its type is also TooShort.
        assert_eq!(
            RtcpPacket::parse(&[0x80, 200, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::TooShort { needed: 28, len: 8 })
        );
    }

    #[test]
    fn error_length_overrun() {
        assert_eq!(
            RtcpPacket::parse(&[0x80, 201, 0, 2, 0, 0, 0, 1]),
            Err(RtcpError::LengthOverrun {
                declared: 12,
                available: 8
            })
        );
    }

    #[test]
    fn error_bad_version() {
        assert_eq!(
            RtcpPacket::parse(&[0x40, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::BadVersion { version: 1 })
        );
    }

    #[test]
    fn error_bad_padding() {
        assert_eq!(
            RtcpPacket::parse(&[0xa0, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::BadPadding {
                count: 0,
                available: 4
            })
        );
        assert_eq!(
            RtcpPacket::parse(&[0xa0, 201, 0, 1, 0, 0, 0, 5]),
            Err(RtcpError::BadPadding {
                count: 5,
                available: 4
            })
        );
    }

    #[test]
    fn error_report_count_exceeds_length() {
        // RR claiming 2 blocks with room for one.
        let mut buf = [0u8; 32];
        buf[..4].copy_from_slice(&[0x82, 201, 0, 7]);
        assert_eq!(
            RtcpPacket::parse(&buf),
            Err(RtcpError::BadCount { count: 2, len: 32 })
        );
        // SR claiming 1 block with none.
        let mut buf = [0u8; 28];
        buf[..4].copy_from_slice(&[0x81, 200, 0, 6]);
        assert_eq!(
            RtcpPacket::parse(&buf),
            Err(RtcpError::BadCount { count: 1, len: 28 })
        );
        // BYE claiming 3 SSRCs with room for one.
        assert_eq!(
            RtcpPacket::parse(&[0x83, 203, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::BadCount { count: 3, len: 8 })
        );
    }

    #[test]
    fn error_sdes_item_overrun() {
        // CNAME claims 9 bytes, 2 remain.
        let buf = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b'];
        assert_eq!(
            RtcpPacket::parse(&buf),
            Err(RtcpError::SdesItemOverrun { offset: 8 })
        );
    }

    #[test]
    fn error_sdes_chunk_overrun() {
        // Item list with no terminator.
        let buf = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b'];
        assert_eq!(
            RtcpPacket::parse(&buf),
            Err(RtcpError::SdesChunkOverrun { chunk: 0 })
        );
        // Source count 2, one chunk.
        let buf = [0x82, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            RtcpPacket::parse(&buf),
            Err(RtcpError::SdesChunkOverrun { chunk: 1 })
        );
    }

    #[test]
    fn error_bye_reason_overrun() {
        let buf = [0x81, 203, 0, 2, 0, 0, 0, 1, 8, b'a', b'b', b'c'];
        assert_eq!(
            RtcpPacket::parse(&buf),
            Err(RtcpError::ByeReasonOverrun {
                len: 8,
                available: 3
            })
        );
    }

    #[test]
    fn compound_stops_after_first_error() {
        let mut buf = [0u8; 12 + 4 + 12];
        Pli::default().write(&mut buf).unwrap();
        buf[12..16].copy_from_slice(&[0x40, 201, 0, 0]);
        Pli::default().write(&mut buf[16..]).unwrap();
        let mut it = parse_compound(&buf);
        assert!(matches!(it.next(), Some(Ok(RtcpPacket::Pli(_)))));
        assert_eq!(it.next(), Some(Err(RtcpError::BadVersion { version: 1 })));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn rtt_rfc3550_example() {
        // RFC 3550 §6.4.1, figure 2: A = 46864.500 s, LSR = 46853.125 s, DLSR = 5.250 s.
        let arrival = NtpTimestamp(0xb710_8000 << 16);
        assert_eq!(arrival.mid32(), 0xb710_8000);
        let b = ReportBlock {
            last_sr: 0xb705_2000,
            delay_since_last_sr: 0x0005_4000,
            ..block(0)
        };
        let rtt = round_trip_time(arrival, &b).unwrap();
        assert_eq!(rtt, 0x0006_2000);
        assert_eq!(compact_to_micros(rtt), 6_125_000);
    }

    #[test]
    fn rtt_wraps_and_rejects_negative_or_missing_lsr() {
        // LSR just before the 2^16 s wrap of the compact form, arrival just after.
        let b = ReportBlock {
            last_sr: 0xffff_0000,
            delay_since_last_sr: 0x0000_8000,
            ..block(0)
        };
        let arrival = NtpTimestamp::new(0x0001_0000, 0); // mid32 = 0x0000_0000 (wrapped)
        assert_eq!(arrival.mid32(), 0);
        assert_eq!(round_trip_time(arrival, &b), Some(0x8000)); // 0.5 s
        // DLSR longer than A − LSR: negative.
        let late = ReportBlock {
            delay_since_last_sr: 0x0002_0000,
            ..b
        };
        assert_eq!(round_trip_time(arrival, &late), None);
        let none = ReportBlock { last_sr: 0, ..b };
        assert_eq!(round_trip_time(arrival, &none), None);
    }

    #[test]
    fn ntp_conversions() {
        let t = NtpTimestamp::from_micros(1_500_000);
        assert_eq!((t.seconds(), t.fraction()), (1, 0x8000_0000));
        assert_eq!(NtpTimestamp::from_nanos(1_500_000_000), t);
        assert_eq!(t.mid32(), 0x0001_8000);
        for us in [0, 1, 999_999, 123_456_789, 3_913_056_000_123_457] {
            assert_eq!(NtpTimestamp::from_micros(us).to_micros(), us);
        }
        assert_eq!(compact_from_micros(5_250_000), 0x0005_4000);
        assert_eq!(compact_from_micros(u64::MAX), u32::MAX);
    }

    #[test]
    fn rtp_rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 96])); // RTP, PT 96, no marker
        assert!(!is_rtcp(&[0x80, 0x80 | 96])); // RTP, PT 96, marker: 224
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for packet in parse_compound(&bytes) {
                match packet {
                    Ok(RtcpPacket::SenderReport(sr)) => { let _ = sr.reports.iter().count(); }
                    Ok(RtcpPacket::ReceiverReport(rr)) => { let _ = rr.reports.iter().count(); }
                    Ok(RtcpPacket::Sdes(sdes)) => {
                        for chunk in sdes.chunks() { let _ = chunk.items().count(); }
                        let _ = sdes.cname();
                    }
                    Ok(RtcpPacket::Bye(bye)) => { let _ = bye.ssrcs.iter().count(); }
                    _ => {}
                }
            }
            let _ = validate_compound(&bytes);
        }

        #[test]
        fn sdes_headers_fuzzed(count in 0u8..32, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Well-formed header with arbitrary SDES body: parse, then walk everything.
            let mut buf = vec![0u8; 4 + body.len().div_ceil(4) * 4];
            buf[4..4 + body.len()].copy_from_slice(&body);
            buf[0] = 0x80 | count;
            buf[1] = PT_SDES;
            let words = (buf.len() / 4 - 1) as u16;
            buf[2..4].copy_from_slice(&words.to_be_bytes());
            if let Ok((RtcpPacket::Sdes(sdes), _)) = RtcpPacket::parse(&buf) {
                prop_assert_eq!(sdes.chunks().count(), usize::from(count));
            }
        }
    }
}
