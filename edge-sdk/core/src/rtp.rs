//! RTP fixed header (RFC 3550 §5.1): parse a packet into a borrowed view, and write a header
//! into a caller's buffer. Every length that comes off the wire (CSRC count, extension length,
//! padding count) is checked against the packet before it is used.

use crate::seq::SeqNum;

/// Size of the fixed RTP header, without CSRCs or extension.
pub const FIXED_HEADER_LEN: usize = 12;

/// Why an RTP packet could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet of {len} bytes is shorter than the 12-byte fixed header")]
    TooShort {
        /// Length of the packet.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {version} is not 2")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The CSRC list runs past the end of the packet.
    #[error("RTP CSRC count {count} does not fit a {len}-byte packet")]
    CsrcOverrun {
        /// CSRC count from the header.
        count: u8,
        /// Length of the packet.
        len: usize,
    },
    /// The header extension runs past the end of the packet.
    #[error("RTP header extension of {words} words does not fit a {len}-byte packet")]
    ExtensionOverrun {
        /// Extension length in 32-bit words.
        words: u16,
        /// Length of the packet.
        len: usize,
    },
    /// The padding count is zero or larger than the payload.
    #[error("RTP padding count {count} is invalid for a {available}-byte payload")]
    BadPadding {
        /// Padding count from the last byte.
        count: u8,
        /// Bytes available after the headers.
        available: usize,
    },
    /// The output buffer is too small for the header being written.
    #[error("output buffer of {capacity} bytes is too small for a {needed}-byte RTP header")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// More than 15 CSRCs, or an extension longer than 65535 words, were asked to be written.
    #[error("RTP header field out of range: {field}")]
    FieldOutOfRange {
        /// Which field.
        field: &'static str,
    },
}

/// A header extension (RFC 3550 §5.3.1): a 16-bit profile-defined value and the data words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The profile-defined 16 bits.
    pub profile: u16,
    /// The extension data (a multiple of 4 bytes).
    pub data: &'a [u8],
}

/// A parsed RTP packet, borrowing the bytes it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit: for H.264 (RFC 6184), set on the last packet of an access unit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: SeqNum,
    /// Media timestamp (90 kHz for video).
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    csrc_bytes: &'a [u8],
    /// Header extension, if the X bit was set.
    pub extension: Option<Extension<'a>>,
    /// Payload, with padding removed.
    pub payload: &'a [u8],
    /// Number of padding bytes that were removed.
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses `bytes` as one RTP packet.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RtpError> {
        let len = bytes.len();
        if len < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort { len });
        }
        let version = bytes[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion { version });
        }
        let has_padding = bytes[0] & 0x20 != 0;
        let has_extension = bytes[0] & 0x10 != 0;
        let csrc_count = bytes[0] & 0x0f;
        let mut offset = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if offset > len {
            return Err(RtpError::CsrcOverrun {
                count: csrc_count,
                len,
            });
        }
        let csrc_bytes = &bytes[FIXED_HEADER_LEN..offset];
        let extension = if has_extension {
            let Some(ext_header) = bytes.get(offset..offset + 4) else {
                return Err(RtpError::ExtensionOverrun { words: 0, len });
            };
            let profile = u16::from_be_bytes([ext_header[0], ext_header[1]]);
            let words = u16::from_be_bytes([ext_header[2], ext_header[3]]);
            let start = offset + 4;
            let end = start + 4 * usize::from(words);
            let Some(data) = bytes.get(start..end) else {
                return Err(RtpError::ExtensionOverrun { words, len });
            };
            offset = end;
            Some(Extension { profile, data })
        } else {
            None
        };
        let mut payload = &bytes[offset..];
        let mut padding = 0;
        if has_padding {
            // RFC 3550 §5.1: the last octet counts the padding, itself included.
            let count = payload.last().copied().unwrap_or(0);
            if count == 0 || usize::from(count) > payload.len() {
                return Err(RtpError::BadPadding {
                    count,
                    available: payload.len(),
                });
            }
            payload = &payload[..payload.len() - usize::from(count)];
            padding = count;
        }
        Ok(Self {
            marker: bytes[1] & 0x80 != 0,
            payload_type: bytes[1] & 0x7f,
            sequence: SeqNum(u16::from_be_bytes([bytes[2], bytes[3]])),
            timestamp: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            ssrc: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            csrc_bytes,
            extension,
            payload,
            padding,
        })
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.csrc_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// The fields of an RTP header to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RtpHeader<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: SeqNum,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrcs: &'a [u32],
    /// Header extension; its data length must be a multiple of 4.
    pub extension: Option<Extension<'a>>,
}

impl RtpHeader<'_> {
    /// Bytes this header occupies on the wire.
    #[must_use]
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.extension.map_or(0, |e| 4 + e.data.len())
    }

    /// Always false: a header has at least its 12 fixed bytes. Present for clippy's sake.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header (no padding) at the start of `out`, returning its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::FieldOutOfRange {
                field: "csrc count",
            });
        }
        if let Some(ext) = self.extension
            && (ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpError::FieldOutOfRange {
                field: "extension length",
            });
        }
        if self.payload_type > 0x7f {
            return Err(RtpError::FieldOutOfRange {
                field: "payload type",
            });
        }
        let needed = self.len();
        if out.len() < needed {
            return Err(RtpError::BufferTooSmall {
                needed,
                capacity: out.len(),
            });
        }
        out[0] = 0x80 | (u8::from(self.extension.is_some()) << 4) | self.csrcs.len() as u8;
        out[1] = (u8::from(self.marker) << 7) | self.payload_type;
        out[2..4].copy_from_slice(&self.sequence.0.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut offset = FIXED_HEADER_LEN;
        for csrc in self.csrcs {
            out[offset..offset + 4].copy_from_slice(&csrc.to_be_bytes());
            offset += 4;
        }
        if let Some(ext) = self.extension {
            out[offset..offset + 2].copy_from_slice(&ext.profile.to_be_bytes());
            out[offset + 2..offset + 4]
                .copy_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out[offset + 4..offset + 4 + ext.data.len()].copy_from_slice(ext.data);
            offset += 4 + ext.data.len();
        }
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_csrc_extension_and_padding() {
        let ext_data = [1, 2, 3, 4, 5, 6, 7, 8];
        let header = RtpHeader {
            marker: true,
            payload_type: 96,
            sequence: SeqNum(65535),
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
            csrcs: &[7, 8],
            extension: Some(Extension {
                profile: 0xbede,
                data: &ext_data,
            }),
        };
        let mut buf = [0u8; 64];
        let n = header.write(&mut buf).unwrap();
        assert_eq!(n, 12 + 8 + 4 + 8);
        buf[n..n + 3].copy_from_slice(b"abc");
        // Add 3 bytes of padding by hand: P bit plus count in the last byte.
        buf[0] |= 0x20;
        buf[n + 3..n + 6].copy_from_slice(&[0, 0, 3]);
        let pkt = RtpPacket::parse(&buf[..n + 6]).unwrap();
        assert!(pkt.marker);
        assert_eq!(pkt.payload_type, 96);
        assert_eq!(pkt.sequence, SeqNum(65535));
        assert_eq!(pkt.timestamp, 0xdead_beef);
        assert_eq!(pkt.ssrc, 0x1234_5678);
        assert_eq!(pkt.csrcs().collect::<heapless::Vec<u32, 15>>(), [7u32, 8]);
        assert_eq!(
            pkt.extension,
            Some(Extension {
                profile: 0xbede,
                data: &ext_data
            })
        );
        assert_eq!(pkt.payload, b"abc");
        assert_eq!(pkt.padding, 3);
    }

    #[test]
    fn rejects_lengths_that_overrun() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::TooShort { len: 11 })
        );
        let mut pkt = [0u8; 16];
        pkt[0] = 0x40;
        assert_eq!(
            RtpPacket::parse(&pkt),
            Err(RtpError::BadVersion { version: 1 })
        );
        pkt[0] = 0x82; // two CSRCs need 20 bytes
        assert_eq!(
            RtpPacket::parse(&pkt),
            Err(RtpError::CsrcOverrun { count: 2, len: 16 })
        );
        pkt[0] = 0x90; // extension header claims 0xffff words
        pkt[12..16].copy_from_slice(&[0, 0, 0xff, 0xff]);
        assert_eq!(
            RtpPacket::parse(&pkt),
            Err(RtpError::ExtensionOverrun {
                words: 0xffff,
                len: 16
            })
        );
        pkt[0] = 0xa0; // padding count larger than payload
        pkt[15] = 5;
        assert_eq!(
            RtpPacket::parse(&pkt),
            Err(RtpError::BadPadding {
                count: 5,
                available: 4
            })
        );
        pkt[15] = 0;
        assert_eq!(
            RtpPacket::parse(&pkt),
            Err(RtpError::BadPadding {
                count: 0,
                available: 4
            })
        );
    }

    #[test]
    fn write_checks_buffer_and_fields() {
        let header = RtpHeader {
            payload_type: 96,
            ..Default::default()
        };
        assert_eq!(
            header.write(&mut [0u8; 11]),
            Err(RtpError::BufferTooSmall {
                needed: 12,
                capacity: 11
            })
        );
        let bad = RtpHeader {
            payload_type: 128,
            ..Default::default()
        };
        assert!(matches!(
            bad.write(&mut [0u8; 12]),
            Err(RtpError::FieldOutOfRange { .. })
        ));
    }
}
