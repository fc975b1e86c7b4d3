//! The versioned `FCSG` segmentation result: one RTCP APP packet (RFC 3550 §6.7, name `FCSG`,
//! subtype 0) per processed frame, sent by the worker back to the camera on the RTCP side of
//! the stream.
//!
//! # Layout of the APP data (version 1)
//!
//! All multi-byte fields are big-endian (network order, as everywhere in RTCP). Offsets are from
//! the start of the APP `data` field, i.e. 12 bytes into the RTCP packet. `N` is `class_count`,
//! `L` is `rle_len`.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 1 | `version` | 1; any other value is [`ResultError::UnsupportedVersion`] |
//! | 1 | 1 | `flags` | bit 0: class map present; other bits must be 0 in v1 |
//! | 2 | 4 | `rtp_timestamp` | RTP timestamp of the frame this result is for |
//! | 6 | 4 | `decode_us` | time spent decoding the frame, µs |
//! | 10 | 4 | `infer_us` | time spent in inference, µs |
//! | 14 | 4 | `post_us` | time spent post-processing, µs |
//! | 18 | 2 | `map_width` | width of the full-resolution class map |
//! | 20 | 2 | `map_height` | height of the full-resolution class map |
//! | 22 | 2 | `class_count` | `N`, at most 256 |
//! | 24 | 4·N | histogram | `N` × u32: pixels of the full map per class id |
//! | 24+4N | 2 | `rle_width` | *only if flag bit 0:* width of the (downscaled) class map sent |
//! | 26+4N | 2 | `rle_height` | height of that map |
//! | 28+4N | 4 | `rle_len` | `L`: bytes of run data that follow |
//! | 32+4N | L | runs | `(class: u8, length: unsigned LEB128, ≥ 1)` pairs, row-major, covering exactly `rle_width × rle_height` pixels |
//! | … | 0–3 | padding | zero bytes up to a 4-byte boundary (APP data is 32-bit aligned) |
//!
//! Without the class map the data ends after the histogram (already aligned). Run lengths are
//! LEB128 varints of at most 5 bytes whose value fits a u32 (non-minimal encodings such as
//! `0x81 0x00` are accepted; the writer always emits minimal ones); runs may cross row boundaries. When
//! `class_count > 0`, every class id in the runs is below it.
//!
//! Writing: [`SegmentationResult::write_app`]. Reading: [`ResultView::from_app`] on a packet from
//! [`rtcp::parse_compound`], or [`ResultView::parse`] on the APP data.

use crate::rtcp::{self, App, RtcpError};
use core::iter::FusedIterator;

/// APP name of a segmentation result.
pub const FCSG_NAME: [u8; 4] = *b"FCSG";
/// APP subtype of a segmentation result.
pub const FCSG_SUBTYPE: u8 = 0;
/// The message version this module writes and reads.
pub const FCSG_VERSION: u8 = 1;
/// `flags` bit: a run-length-coded class map follows the histogram.
pub const FLAG_CLASS_MAP: u8 = 0x01;
/// Most classes a histogram may have (class ids are a u8).
pub const MAX_CLASSES: usize = 256;
/// Largest result packet: it must fit one RFC 4571 frame, whose length prefix is 16 bits.
pub const MAX_RESULT_PACKET_LEN: usize = 65535;

/// Fixed part of the data, up to and including `class_count`.
const FIXED_LEN: usize = 24;
/// `rle_width`, `rle_height`, `rle_len`.
const RLE_HEADER_LEN: usize = 8;
/// RTCP header, SSRC and name in front of the APP data.
const APP_HEADER_LEN: usize = 12;
/// A u32 needs at most 5 LEB128 bytes.
const MAX_VARINT_LEN: usize = 5;

/// Why a result could not be written, parsed or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// The data ends before a field it must contain.
    #[error("FCSG data of {len} bytes is truncated: {needed} bytes needed")]
    Truncated {
        /// Bytes needed to reach the end of the field.
        needed: usize,
        /// Bytes present.
        len: usize,
    },
    /// The version byte is not one this code understands.
    #[error("FCSG version {version} is not supported (expected 1)")]
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// Flag bits undefined in version 1 are set.
    #[error("FCSG flags {flags:#04x} set bits undefined in version 1")]
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
    /// More than 256 classes.
    #[error("FCSG class count {count} exceeds 256")]
    TooManyClasses {
        /// The class count.
        count: usize,
    },
    /// `rle_len` runs past the end of the data.
    #[error("FCSG rle_len {rle_len} exceeds the {available} bytes left")]
    RleOverrun {
        /// `rle_len` from the wire.
        rle_len: u32,
        /// Bytes after the RLE header.
        available: usize,
    },
    /// More than 3 bytes, or non-zero bytes, after the last field.
    #[error("FCSG data has {len} unexpected trailing bytes")]
    TrailingData {
        /// Bytes after the last field.
        len: usize,
    },
    /// The APP packet is not an `FCSG` result.
    #[error("APP packet {name:?}/{subtype} is not FCSG/0")]
    NotFcsg {
        /// The APP name.
        name: [u8; 4],
        /// The APP subtype.
        subtype: u8,
    },
    /// [`ResultView::decode_class_map`] on a result without a class map.
    #[error("FCSG result carries no class map")]
    NoClassMap,
    /// The run data ends inside a run.
    #[error("FCSG run data ends inside the run at offset {offset}")]
    RleTruncated {
        /// Offset of the run within the run data.
        offset: usize,
    },
    /// A run length is longer than 5 bytes or exceeds u32.
    #[error("FCSG run length at offset {offset} overflows 32 bits")]
    VarintOverflow {
        /// Offset of the varint within the run data.
        offset: usize,
    },
    /// A run of length zero.
    #[error("FCSG run at offset {offset} has length zero")]
    ZeroRun {
        /// Offset of the run within the run data.
        offset: usize,
    },
    /// The runs cover more or fewer pixels than the map has.
    #[error("FCSG runs cover {actual} pixels, the map has {expected}")]
    RunsMismatch {
        /// Pixels in the map (`rle_width × rle_height`).
        expected: u64,
        /// Pixels covered when the mismatch was found (all runs, or up to the overflowing one).
        actual: u64,
    },
    /// A class id not below `class_count`.
    #[error("FCSG class id {class} is not below the class count {class_count}")]
    ClassOutOfRange {
        /// The class id.
        class: u8,
        /// The class count.
        class_count: u16,
    },
    /// [`ClassMap::classes`] does not hold `width × height` entries.
    #[error("class map has {len} entries, width × height is {expected}")]
    ClassMapSize {
        /// `width × height`.
        expected: usize,
        /// Entries present.
        len: usize,
    },
    /// The caller's buffer is too small.
    #[error("buffer of {capacity} bytes is too small: {needed} bytes needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// The packet would exceed [`MAX_RESULT_PACKET_LEN`].
    #[error("FCSG packet of {len} bytes exceeds the 65535-byte frame limit")]
    TooLarge {
        /// Length the packet would have.
        len: usize,
    },
    /// The surrounding RTCP packet is malformed.
    #[error(transparent)]
    Rtcp(#[from] RtcpError),
}

/// A class map to send: raw class ids, row-major, run-length-coded on write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassMap<'a> {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// `width × height` class ids, row by row.
    pub classes: &'a [u8],
}

/// A per-frame segmentation result to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentationResult<'a> {
    /// RTP timestamp of the frame.
    pub rtp_timestamp: u32,
    /// Decode time, µs.
    pub decode_us: u32,
    /// Inference time, µs.
    pub infer_us: u32,
    /// Post-processing time, µs.
    pub post_us: u32,
    /// Width of the full-resolution class map.
    pub map_width: u16,
    /// Height of the full-resolution class map.
    pub map_height: u16,
    /// Pixels per class id (at most 256 classes).
    pub histogram: &'a [u32],
    /// Optional (typically downscaled) class map.
    pub class_map: Option<ClassMap<'a>>,
}

/// Runs of equal bytes in `classes`: (class, length), lengths capped at u32::MAX.
fn runs(classes: &[u8]) -> impl Iterator<Item = (u8, u32)> + '_ {
    let mut rest = classes;
    core::iter::from_fn(move || {
        let (&class, _) = rest.split_first()?;
        let len = rest
            .iter()
            .take(u32::MAX as usize)
            .take_while(|&&c| c == class)
            .count();
        rest = &rest[len..];
        Some((class, len as u32))
    })
}

const fn varint_len(mut v: u32) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Writes `v` as LEB128 into `out` (long enough, checked by the caller); returns bytes written.
fn put_varint(mut v: u32, out: &mut [u8]) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

fn rle_len(classes: &[u8]) -> usize {
    runs(classes).map(|(_, len)| 1 + varint_len(len)).sum()
}

impl SegmentationResult<'_> {
    /// Length of the APP data: fixed part, histogram, class map, padding.
    fn data_len(&self) -> usize {
        let mut len = FIXED_LEN.saturating_add(self.histogram.len().saturating_mul(4));
        if let Some(map) = &self.class_map {
            len = len
                .saturating_add(RLE_HEADER_LEN)
                .saturating_add(rle_len(map.classes));
        }
        len.saturating_add(3) / 4 * 4
    }

    /// Bytes [`write_app`](Self::write_app) will write: the whole RTCP APP packet. Costs one
    /// pass over the class map.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        APP_HEADER_LEN.saturating_add(self.data_len())
    }

    fn validate(&self) -> Result<(), ResultError> {
        let count = self.histogram.len();
        if count > MAX_CLASSES {
            return Err(ResultError::TooManyClasses { count });
        }
        if let Some(map) = &self.class_map {
            let expected = usize::from(map.width) * usize::from(map.height);
            if map.classes.len() != expected {
                return Err(ResultError::ClassMapSize {
                    expected,
                    len: map.classes.len(),
                });
            }
            // Enforce on write what the reader checks, so a bad map fails here, not remotely.
            if count > 0
                && let Some(&class) = map.classes.iter().find(|&&c| usize::from(c) >= count)
            {
                return Err(ResultError::ClassOutOfRange {
                    class,
                    class_count: count as u16,
                });
            }
        }
        Ok(())
    }

    /// Writes the complete RTCP APP packet (name `FCSG`, subtype 0, from `ssrc`) at the start of
    /// `out`, returning its length. Fails rather than truncates when the packet does not fit
    /// `out` or exceeds [`MAX_RESULT_PACKET_LEN`]; callers that need the room downscale the
    /// class map further, or send without it.
    pub fn write_app(&self, ssrc: u32, out: &mut [u8]) -> Result<usize, ResultError> {
        self.validate()?;
        let len = self.encoded_len();
        if len > MAX_RESULT_PACKET_LEN {
            return Err(ResultError::TooLarge { len });
        }
        if out.len() < len {
            return Err(ResultError::BufferTooSmall {
                needed: len,
                capacity: out.len(),
            });
        }
        let data_len = len - APP_HEADER_LEN;
        rtcp::write_app_header(FCSG_SUBTYPE, ssrc, FCSG_NAME, data_len, out)?;
        let d = &mut out[APP_HEADER_LEN..len];
        d[0] = FCSG_VERSION;
        d[1] = if self.class_map.is_some() {
            FLAG_CLASS_MAP
        } else {
            0
        };
        d[2..6].copy_from_slice(&self.rtp_timestamp.to_be_bytes());
        d[6..10].copy_from_slice(&self.decode_us.to_be_bytes());
        d[10..14].copy_from_slice(&self.infer_us.to_be_bytes());
        d[14..18].copy_from_slice(&self.post_us.to_be_bytes());
        d[18..20].copy_from_slice(&self.map_width.to_be_bytes());
        d[20..22].copy_from_slice(&self.map_height.to_be_bytes());
        // At most 256, checked in validate().
        d[22..24].copy_from_slice(&(self.histogram.len() as u16).to_be_bytes());
        let mut at = FIXED_LEN;
        for count in self.histogram {
            d[at..at + 4].copy_from_slice(&count.to_be_bytes());
            at += 4;
        }
        if let Some(map) = &self.class_map {
            let run_bytes = rle_len(map.classes);
            d[at..at + 2].copy_from_slice(&map.width.to_be_bytes());
            d[at + 2..at + 4].copy_from_slice(&map.height.to_be_bytes());
            // Below MAX_RESULT_PACKET_LEN, checked above.
            d[at + 4..at + 8].copy_from_slice(&(run_bytes as u32).to_be_bytes());
            at += RLE_HEADER_LEN;
            for (class, run) in runs(map.classes) {
                d[at] = class;
                at += 1 + put_varint(run, &mut d[at + 1..]);
            }
        }
        d[at..].fill(0);
        Ok(len)
    }
}

/// A parsed `FCSG` result, borrowing the APP data. The header, histogram and framing of the
/// class map are checked by [`parse`](Self::parse); the runs themselves by
/// [`decode_class_map`](Self::decode_class_map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultView<'a> {
    /// RTP timestamp of the frame.
    pub rtp_timestamp: u32,
    /// Decode time, µs.
    pub decode_us: u32,
    /// Inference time, µs.
    pub infer_us: u32,
    /// Post-processing time, µs.
    pub post_us: u32,
    /// Width of the full-resolution class map.
    pub map_width: u16,
    /// Height of the full-resolution class map.
    pub map_height: u16,
    histogram: &'a [u8],
    rle: Option<RleMap<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RleMap<'a> {
    width: u16,
    height: u16,
    runs: &'a [u8],
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

/// Reads a LEB128 u32 at the start of `bytes`: (value, bytes used). `offset` is for errors.
fn read_varint(bytes: &[u8], offset: usize) -> Result<(u32, usize), ResultError> {
    let mut value: u32 = 0;
    for i in 0..MAX_VARINT_LEN {
        let Some(&b) = bytes.get(i) else {
            return Err(ResultError::RleTruncated { offset });
        };
        // The fifth byte may only carry the top 4 bits of a u32.
        if i == MAX_VARINT_LEN - 1 && b > 0x0f {
            return Err(ResultError::VarintOverflow { offset });
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(ResultError::VarintOverflow { offset })
}

impl<'a> ResultView<'a> {
    /// Parses the data of an `FCSG` APP packet.
    pub fn parse(data: &'a [u8]) -> Result<Self, ResultError> {
        let len = data.len();
        let Some(&version) = data.first() else {
            return Err(ResultError::Truncated { needed: 1, len });
        };
        // The version comes first so that a future, differently shaped version is reported as
        // such rather than as truncated.
        if version != FCSG_VERSION {
            return Err(ResultError::UnsupportedVersion { version });
        }
        if len < FIXED_LEN {
            return Err(ResultError::Truncated {
                needed: FIXED_LEN,
                len,
            });
        }
        let flags = data[1];
        if flags & !FLAG_CLASS_MAP != 0 {
            return Err(ResultError::UnknownFlags { flags });
        }
        let class_count = be_u16(data, 22);
        if usize::from(class_count) > MAX_CLASSES {
            return Err(ResultError::TooManyClasses {
                count: usize::from(class_count),
            });
        }
        let mut end = FIXED_LEN + 4 * usize::from(class_count);
        let Some(histogram) = data.get(FIXED_LEN..end) else {
            return Err(ResultError::Truncated { needed: end, len });
        };
        let rle = if flags & FLAG_CLASS_MAP != 0 {
            let header_end = end + RLE_HEADER_LEN;
            if len < header_end {
                return Err(ResultError::Truncated {
                    needed: header_end,
                    len,
                });
            }
            let rle_len = be_u32(data, end + 4);
            let available = len - header_end;
            let runs = usize::try_from(rle_len)
                .ok()
                .and_then(|n| data.get(header_end..header_end.checked_add(n)?))
                .ok_or(ResultError::RleOverrun { rle_len, available })?;
            let map = RleMap {
                width: be_u16(data, end),
                height: be_u16(data, end + 2),
                runs,
            };
            end = header_end + runs.len();
            Some(map)
        } else {
            None
        };
        // Only the zero padding to the next 32-bit boundary may follow.
        let tail = &data[end..];
        if tail.len() > 3 || tail.iter().any(|&b| b != 0) {
            return Err(ResultError::TrailingData { len: tail.len() });
        }
        Ok(Self {
            rtp_timestamp: be_u32(data, 2),
            decode_us: be_u32(data, 6),
            infer_us: be_u32(data, 10),
            post_us: be_u32(data, 14),
            map_width: be_u16(data, 18),
            map_height: be_u16(data, 20),
            histogram,
            rle,
        })
    }

    /// Parses an APP packet, checking that it is `FCSG`, subtype 0.
    pub fn from_app(app: &App<'a>) -> Result<Self, ResultError> {
        if app.name != FCSG_NAME || app.subtype != FCSG_SUBTYPE {
            return Err(ResultError::NotFcsg {
                name: app.name,
                subtype: app.subtype,
            });
        }
        Self::parse(app.data)
    }

    /// Number of classes in the histogram.
    #[must_use]
    pub fn class_count(&self) -> u16 {
        (self.histogram.len() / 4) as u16
    }

    /// Pixels per class id, in class order.
    #[must_use]
    pub fn histogram(&self) -> Histogram<'a> {
        Histogram {
            bytes: self.histogram,
        }
    }

    /// `(width, height)` of the class map, if one was sent.
    #[must_use]
    pub fn class_map_size(&self) -> Option<(u16, u16)> {
        self.rle.map(|m| (m.width, m.height))
    }

    /// Decodes the run-length-coded class map into `out` (row-major class ids), returning its
    /// `(width, height)`; `out` needs at least `width × height` bytes, and only those are
    /// written. Checks every run: non-zero length, varint of at most 5 bytes within u32, class
    /// id below the class count (when there is a histogram), and a total of exactly
    /// `width × height` pixels.
    pub fn decode_class_map(&self, out: &mut [u8]) -> Result<(u16, u16), ResultError> {
        let map = self.rle.ok_or(ResultError::NoClassMap)?;
        let expected = u64::from(map.width) * u64::from(map.height);
        let needed = usize::try_from(expected).unwrap_or(usize::MAX);
        let Some(out) = out.get_mut(..needed) else {
            return Err(ResultError::BufferTooSmall {
                needed,
                capacity: out.len(),
            });
        };
        let class_count = self.class_count();
        let mut filled: usize = 0;
        let mut pos = 0;
        while let Some(&class) = map.runs.get(pos) {
            let offset = pos;
            let (run, used) = read_varint(&map.runs[pos + 1..], offset)?;
            pos += 1 + used;
            if run == 0 {
                return Err(ResultError::ZeroRun { offset });
            }
            if class_count > 0 && u16::from(class) >= class_count {
                return Err(ResultError::ClassOutOfRange { class, class_count });
            }
            let end = usize::try_from(run)
                .ok()
                .and_then(|r| filled.checked_add(r));
            let Some(dst) = end.and_then(|end| out.get_mut(filled..end)) else {
                let actual = filled as u64 + u64::from(run);
                return Err(ResultError::RunsMismatch { expected, actual });
            };
            dst.fill(class);
            filled += dst.len();
        }
        if filled != needed {
            return Err(ResultError::RunsMismatch {
                expected,
                actual: filled as u64,
            });
        }
        Ok((map.width, map.height))
    }
}

/// Iterator over a result's histogram: pixels per class id.
#[derive(Clone, Debug)]
pub struct Histogram<'a> {
    bytes: &'a [u8],
}

impl Iterator for Histogram<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let (&[a, b, c, d], rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(u32::from_be_bytes([a, b, c, d]))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bytes.len() / 4;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Histogram<'_> {}
impl FusedIterator for Histogram<'_> {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rtcp::{
        CompoundWriter, ReceiverReport, ReportBlock, ReportBlocks, RtcpPacket, parse_compound,
    };
    use proptest::prelude::*;

    const HIST: [u32; 3] = [10, 20, 30];
    const CLASSES: [u8; 12] = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 0, 0];

    fn sample() -> SegmentationResult<'static> {
        SegmentationResult {
            rtp_timestamp: 0x1234_5678,
            decode_us: 1_500,
            infer_us: 8_000,
            post_us: 300,
            map_width: 1280,
            map_height: 720,
            histogram: &HIST,
            class_map: Some(ClassMap {
                width: 4,
                height: 3,
                classes: &CLASSES,
            }),
        }
    }

    /// Writes `result`, then returns the APP data slice of `buf`.
    fn data_of<'b>(result: &SegmentationResult<'_>, buf: &'b mut [u8]) -> &'b [u8] {
        let n = result.write_app(1, buf).unwrap();
        &buf[12..n]
    }

    #[test]
    fn layout_is_as_documented() {
        let mut buf = [0u8; 128];
        let n = sample().write_app(0xaabb_ccdd, &mut buf).unwrap();
        assert_eq!(n, sample().encoded_len());
        // RLE: (0,3) (1,2) (2,5) (0,2) = 8 bytes; data = 24 + 12 + 8 + 8 = 52.
        assert_eq!(n, 12 + 52);
        assert_eq!(
            &buf[..12],
            &[
                0x80, 204, 0, 15, 0xaa, 0xbb, 0xcc, 0xdd, b'F', b'C', b'S', b'G'
            ]
        );
        #[rustfmt::skip]
        let data = [
            1, 1,
            0x12, 0x34, 0x56, 0x78, 0, 0, 0x05, 0xdc, 0, 0, 0x1f, 0x40, 0, 0, 0x01, 0x2c,
            0x05, 0x00, 0x02, 0xd0, 0, 3,
            0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30,
            0, 4, 0, 3, 0, 0, 0, 8,
            0, 3, 1, 2, 2, 5, 0, 2,
        ];
        assert_eq!(&buf[12..n], &data);
    }

    #[test]
    fn round_trip_with_class_map() {
        let mut buf = [0u8; 128];
        let data = data_of(&sample(), &mut buf);
        let view = ResultView::parse(data).unwrap();
        assert_eq!(view.rtp_timestamp, 0x1234_5678);
        assert_eq!(
            (view.decode_us, view.infer_us, view.post_us),
            (1_500, 8_000, 300)
        );
        assert_eq!((view.map_width, view.map_height), (1280, 720));
        assert_eq!(view.class_count(), 3);
        assert!(view.histogram().eq(HIST));
        assert_eq!(view.class_map_size(), Some((4, 3)));
        let mut out = [0xffu8; 16];
        assert_eq!(view.decode_class_map(&mut out), Ok((4, 3)));
        assert_eq!(&out[..12], &CLASSES);
        assert_eq!(&out[12..], &[0xff; 4]);
    }

    #[test]
    fn round_trip_without_class_map_and_padding() {
        let result = SegmentationResult {
            class_map: None,
            histogram: &[],
            ..sample()
        };
        let mut buf = [0u8; 64];
        let data = data_of(&result, &mut buf);
        assert_eq!(data.len(), 24);
        let view = ResultView::parse(data).unwrap();
        assert_eq!(view.class_count(), 0);
        assert_eq!(view.decode_class_map(&mut []), Err(ResultError::NoClassMap));
        // A single-pixel map: 1 + 1 run bytes, padded by 2.
        let result = SegmentationResult {
            class_map: Some(ClassMap {
                width: 1,
                height: 1,
                classes: &[7],
            }),
            ..result
        };
        let data = data_of(&result, &mut buf);
        assert_eq!(data.len(), 24 + 8 + 4);
        let mut out = [0u8; 1];
        assert_eq!(
            ResultView::parse(data).unwrap().decode_class_map(&mut out),
            Ok((1, 1))
        );
        assert_eq!(out, [7]);
    }

    #[test]
    fn compound_rr_app_round_trip() {
        let blocks = [ReportBlock {
            ssrc: 7,
            last_sr: 1,
            ..ReportBlock::default()
        }];
        let rr = ReceiverReport {
            ssrc: 9,
            reports: ReportBlocks::new(&blocks),
        };
        let mut buf = [0u8; 256];
        let mut compound = CompoundWriter::new(&mut buf);
        compound.push_with(|out| rr.write(out)).unwrap();
        compound
            .push_with(|out| sample().write_app(9, out))
            .unwrap();
        let bytes = compound.finish();
        let mut packets = parse_compound(bytes);
        assert_eq!(packets.next(), Some(Ok(RtcpPacket::ReceiverReport(rr))));
        let Some(Ok(RtcpPacket::App(app))) = packets.next() else {
            panic!()
        };
        assert_eq!((app.ssrc, app.name, app.subtype), (9, FCSG_NAME, 0));
        let view = ResultView::from_app(&app).unwrap();
        let mut out = [0u8; 12];
        view.decode_class_map(&mut out).unwrap();
        assert_eq!(out, CLASSES);
        assert!(packets.next().is_none());
        let other = App {
            name: *b"XXXX",
            ..app
        };
        assert_eq!(
            ResultView::from_app(&other),
            Err(ResultError::NotFcsg {
                name: *b"XXXX",
                subtype: 0
            })
        );
    }

    #[test]
    fn long_runs_use_multibyte_varints() {
        let classes = [3u8; 300 * 200];
        let result = SegmentationResult {
            histogram: &[],
            class_map: Some(ClassMap {
                width: 300,
                height: 200,
                classes: &classes,
            }),
            ..sample()
        };
        let mut buf = [0u8; 64];
        let data = data_of(&result, &mut buf);
        // 60000 = 0b11_1010100_1100000 -> 3 LEB128 bytes.
        assert_eq!(&data[32..36], &[3, 0xe0, 0xd4, 0x03]);
        let mut out = vec![0u8; 60_000];
        assert_eq!(
            ResultView::parse(data).unwrap().decode_class_map(&mut out),
            Ok((300, 200))
        );
        assert!(out.iter().all(|&c| c == 3));
    }

    #[test]
    fn write_errors() {
        let mut buf = [0u8; 128];
        let needed = sample().encoded_len();
        assert_eq!(
            sample().write_app(1, &mut buf[..needed - 1]),
            Err(ResultError::BufferTooSmall {
                needed,
                capacity: needed - 1
            })
        );
        let bad_size = SegmentationResult {
            class_map: Some(ClassMap {
                width: 5,
                height: 3,
                classes: &CLASSES,
            }),
            ..sample()
        };
        assert_eq!(
            bad_size.write_app(1, &mut buf),
            Err(ResultError::ClassMapSize {
                expected: 15,
                len: 12
            })
        );
        let bad_class = SegmentationResult {
            histogram: &HIST[..2],
            ..sample()
        };
        assert_eq!(
            bad_class.write_app(1, &mut buf),
            Err(ResultError::ClassOutOfRange {
                class: 2,
                class_count: 2
            })
        );
        let hist = [0u32; 257];
        let too_many = SegmentationResult {
            histogram: &hist,
            class_map: None,
            ..sample()
        };
        assert_eq!(
            too_many.write_app(1, &mut buf),
            Err(ResultError::TooManyClasses { count: 257 })
        );
    }

    #[test]
    fn write_refuses_over_the_frame_limit() {
        // Alternating classes: 2 bytes per pixel, 200×200 → 80 000 bytes of runs.
        let classes: Vec<u8> = (0..40_000).map(|i| (i % 2) as u8).collect();
        let result = SegmentationResult {
            class_map: Some(ClassMap {
                width: 200,
                height: 200,
                classes: &classes,
            }),
            ..sample()
        };
        let len = result.encoded_len();
        assert!(len > MAX_RESULT_PACKET_LEN);
        let mut buf = vec![0u8; 100_000];
        assert_eq!(
            result.write_app(1, &mut buf),
            Err(ResultError::TooLarge { len })
        );
    }

    #[test]
    fn error_bad_version() {
        let mut buf = [0u8; 128];
        let mut data = data_of(&sample(), &mut buf).to_vec();
        data[0] = 2;
        assert_eq!(
            ResultView::parse(&data),
            Err(ResultError::UnsupportedVersion { version: 2 })
        );
        assert_eq!(
            ResultView::parse(&[0]),
            Err(ResultError::UnsupportedVersion { version: 0 })
        );
    }

    #[test]
    fn error_unknown_flags() {
        let mut buf = [0u8; 128];
        let mut data = data_of(&sample(), &mut buf).to_vec();
        data[1] = 0x03;
        assert_eq!(
            ResultView::parse(&data),
            Err(ResultError::UnknownFlags { flags: 0x03 })
        );
    }

    #[test]
    fn error_truncated() {
        let mut buf = [0u8; 128];
        let data = data_of(&sample(), &mut buf);
        assert_eq!(
            ResultView::parse(&[]),
            Err(ResultError::Truncated { needed: 1, len: 0 })
        );
        assert_eq!(
            ResultView::parse(&data[..23]),
            Err(ResultError::Truncated {
                needed: 24,
                len: 23
            })
        );
        assert_eq!(
            ResultView::parse(&data[..32]),
            Err(ResultError::Truncated {
                needed: 36,
                len: 32
            })
        );
        assert_eq!(
            ResultView::parse(&data[..40]),
            Err(ResultError::Truncated {
                needed: 44,
                len: 40
            })
        );
    }

    #[test]
    fn error_too_many_classes() {
        let mut data = [0u8; 24];
        data[0] = 1;
        data[22..24].copy_from_slice(&257u16.to_be_bytes());
        assert_eq!(
            ResultView::parse(&data),
            Err(ResultError::TooManyClasses { count: 257 })
        );
    }

    #[test]
    fn error_rle_len_overrun() {
        let mut buf = [0u8; 128];
        let mut data = data_of(&sample(), &mut buf).to_vec();
        data[40..44].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            ResultView::parse(&data),
            Err(ResultError::RleOverrun {
                rle_len: 9,
                available: 8
            })
        );
        data[40..44].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            ResultView::parse(&data),
            Err(ResultError::RleOverrun {
                rle_len: u32::MAX,
                available: 8
            })
        );
    }

    #[test]
    fn error_trailing_data() {
        let mut buf = [0u8; 128];
        let mut data = data_of(&sample(), &mut buf).to_vec();
        data.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            ResultView::parse(&data),
            Err(ResultError::TrailingData { len: 4 })
        );
        // Shorten rle_len by one: the last run byte becomes non-zero "padding".
        data.truncate(52);
        data[40..44].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            ResultView::parse(&data),
            Err(ResultError::TrailingData { len: 1 })
        );
    }

    /// APP data with a 4×3 map, 3 classes, and the given run bytes (padded).
    fn with_runs(runs: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 128];
        let mut data = data_of(&sample(), &mut buf)[..44].to_vec();
        data[40..44].copy_from_slice(&(runs.len() as u32).to_be_bytes());
        data.extend_from_slice(runs);
        data.resize(data.len().div_ceil(4) * 4, 0);
        data
    }

    fn decode(data: &[u8]) -> Result<(u16, u16), ResultError> {
        ResultView::parse(data)
            .unwrap()
            .decode_class_map(&mut [0u8; 12])
    }

    #[test]
    fn error_runs_not_summing_to_map_size() {
        assert_eq!(
            decode(&with_runs(&[0, 3, 1, 2, 2, 5, 0, 1])),
            Err(ResultError::RunsMismatch {
                expected: 12,
                actual: 11
            })
        );
        assert_eq!(
            decode(&with_runs(&[0, 3, 1, 2, 2, 5, 0, 3])),
            Err(ResultError::RunsMismatch {
                expected: 12,
                actual: 13
            })
        );
    }

    #[test]
    fn error_varint_overflow() {
        // Six bytes, continuation throughout.
        assert_eq!(
            decode(&with_runs(&[0, 0x8c, 0x80, 0x80, 0x80, 0x80, 0x00])),
            Err(ResultError::VarintOverflow { offset: 0 })
        );
        // Five bytes but the value exceeds u32 (fifth byte > 0x0f).
        assert_eq!(
            decode(&with_runs(&[0, 12, 1, 0xff, 0xff, 0xff, 0xff, 0x1f])),
            Err(ResultError::VarintOverflow { offset: 2 })
        );
    }

    #[test]
    fn error_run_data_shape() {
        assert_eq!(
            decode(&with_runs(&[0, 0, 1, 12])),
            Err(ResultError::ZeroRun { offset: 0 })
        );
        assert_eq!(
            decode(&with_runs(&[0, 0x8c])),
            Err(ResultError::RleTruncated { offset: 0 })
        );
        assert_eq!(
            decode(&with_runs(&[0, 11, 3])),
            Err(ResultError::RleTruncated { offset: 2 })
        );
        assert_eq!(
            decode(&with_runs(&[3, 12])),
            Err(ResultError::ClassOutOfRange {
                class: 3,
                class_count: 3
            })
        );
        let data = with_runs(&[0, 12]);
        let view = ResultView::parse(&data).unwrap();
        assert_eq!(
            view.decode_class_map(&mut [0u8; 11]),
            Err(ResultError::BufferTooSmall {
                needed: 12,
                capacity: 11
            })
        );
    }

    fn arb_result() -> impl Strategy<Value = (Vec<u32>, u16, u16, Vec<u8>, bool)> {
        (0usize..6, 0u16..=128, 0u16..=128, any::<bool>()).prop_flat_map(|(n, w, h, map)| {
            let classes = (n.max(1)) as u8;
            (
                proptest::collection::vec(any::<u32>(), n),
                Just(w),
                Just(h),
                // Mostly long runs: a run-length sequence of few classes, cut to w×h.
                proptest::collection::vec((0..classes, 1usize..200), 0..400).prop_map(
                    move |runs| {
                        let len = usize::from(w) * usize::from(h);
                        let mut v: Vec<u8> = runs
                            .into_iter()
                            .flat_map(|(c, r)| core::iter::repeat_n(c, r))
                            .take(len)
                            .collect();
                        v.resize(len, 0);
                        v
                    },
                ),
                Just(map),
            )
        })
    }

    proptest! {
        #[test]
        fn round_trip((hist, w, h, classes, map) in arb_result(), ts in any::<u32>()) {
            let result = SegmentationResult {
                rtp_timestamp: ts,
                decode_us: ts ^ 1,
                infer_us: ts ^ 2,
                post_us: ts ^ 3,
                map_width: w.wrapping_mul(8),
                map_height: h.wrapping_mul(8),
                histogram: &hist,
                class_map: map.then_some(ClassMap { width: w, height: h, classes: &classes }),
            };
            let mut buf = vec![0u8; MAX_RESULT_PACKET_LEN];
            let n = match result.write_app(0x5eed, &mut buf) {
                Ok(n) => n,
                Err(ResultError::TooLarge { len }) => {
                    prop_assert!(len > MAX_RESULT_PACKET_LEN);
                    return Ok(());
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            };
            prop_assert_eq!(n, result.encoded_len());
            let mut packets = parse_compound(&buf[..n]);
            let Some(Ok(RtcpPacket::App(app))) = packets.next() else {
                return Err(TestCaseError::fail("no APP"));
            };
            prop_assert!(packets.next().is_none());
            let view = ResultView::from_app(&app).unwrap();
            prop_assert_eq!(view.rtp_timestamp, ts);
            prop_assert_eq!((view.decode_us, view.infer_us, view.post_us), (ts ^ 1, ts ^ 2, ts ^ 3));
            prop_assert_eq!((view.map_width, view.map_height), (result.map_width, result.map_height));
            prop_assert!(view.histogram().eq(hist.iter().copied()));
            if map {
                let mut out = vec![0u8; classes.len()];
                prop_assert_eq!(view.decode_class_map(&mut out), Ok((w, h)));
                prop_assert_eq!(out, classes);
            } else {
                prop_assert_eq!(view.class_map_size(), None);
            }
        }

        #[test]
        fn arbitrary_data_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..200),
                                       flags in 0u8..2, classes in 0u16..4) {
            // Steer half the cases past the version/flags/class-count checks.
            if data.len() >= 24 && flags == 1 {
                data[0] = 1;
                data[1] &= 1;
                data[22..24].copy_from_slice(&classes.to_be_bytes());
            }
            if let Ok(view) = ResultView::parse(&data) {
                let _ = view.histogram().count();
                let _ = view.decode_class_map(&mut [0u8; 4096]);
                let _ = view.decode_class_map(&mut [0u8; 3]);
            }
        }

        #[test]
        fn arbitrary_app_packets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut buf = vec![0u8; 12 + data.len().div_ceil(4) * 4];
            let packet = App { subtype: 0, ssrc: 1, name: FCSG_NAME, data: &[] };
            let words = (buf.len() - 12) / 4;
            buf[12..12 + data.len()].copy_from_slice(&data);
            packet.write(&mut buf[..12]).unwrap();
            buf[2..4].copy_from_slice(&((words + 2) as u16).to_be_bytes());
            for p in parse_compound(&buf) {
                if let Ok(RtcpPacket::App(app)) = p
                    && let Ok(view) = ResultView::from_app(&app)
                {
                    let _ = view.decode_class_map(&mut [0u8; 256]);
                }
            }
        }
    }
}
