//! RFC 4571 framing: RTP and RTCP packets over a connection-oriented transport, each preceded
//! by its length as a 16-bit big-endian integer. This is what GStreamer's `rtpstreampay` and
//! `rtpstreamdepay` speak, so a GStreamer pipeline can stand at either end.

/// Bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 2;
/// Largest packet a frame can carry (the length field is 16 bits, RFC 4571 §2).
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Why a packet could not be framed, or a frame could not be taken off the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The packet is larger than the 16-bit length field can describe.
    #[error("packet of {len} bytes exceeds the RFC 4571 limit of 65535")]
    PacketTooLarge {
        /// Packet length.
        len: usize,
    },
    /// The output buffer cannot hold the framed packet.
    #[error("output buffer of {capacity} bytes cannot hold a {needed}-byte frame")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// An incoming frame is larger than this deframer's capacity; its body is skipped.
    #[error("incoming frame of {len} bytes exceeds the deframer capacity of {capacity}")]
    FrameTooLarge {
        /// Length announced by the frame header.
        len: usize,
        /// The deframer's capacity.
        capacity: usize,
    },
}

/// Writes the length prefix for a `len`-byte packet.
pub fn frame_header(len: usize) -> Result<[u8; FRAME_HEADER_LEN], FramingError> {
    let len16 = u16::try_from(len).map_err(|_| FramingError::PacketTooLarge { len })?;
    Ok(len16.to_be_bytes())
}

/// Writes `packet` with its length prefix at the start of `out`; returns the bytes written.
pub fn frame_into(packet: &[u8], out: &mut [u8]) -> Result<usize, FramingError> {
    let header = frame_header(packet.len())?;
    let needed = FRAME_HEADER_LEN + packet.len();
    let Some(dst) = out.get_mut(..needed) else {
        return Err(FramingError::BufferTooSmall {
            needed,
            capacity: out.len(),
        });
    };
    dst[..FRAME_HEADER_LEN].copy_from_slice(&header);
    dst[FRAME_HEADER_LEN..].copy_from_slice(packet);
    Ok(needed)
}

/// Incremental RFC 4571 deframer with a fixed capacity of `N` bytes per frame.
///
/// Bytes may arrive in any split, down to one at a time. A frame that lies whole in the input
/// is returned without a copy; one split across reads is assembled in the internal buffer.
/// A frame longer than `N` is reported once and its body skipped, so the stream goes on. A
/// zero-length frame carries no packet and is skipped (counted in [`Deframer::empty_frames`]).
#[derive(Clone, Debug)]
pub struct Deframer<const N: usize> {
    buf: [u8; N],
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Length of the frame being assembled (valid once the header is complete).
    frame_len: usize,
    filled: usize,
    /// Bytes of an oversized frame still to skip.
    skipping: usize,
    empty_frames: u64,
}

impl<const N: usize> Default for Deframer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deframer<N> {
    /// A deframer at a frame boundary.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            frame_len: 0,
            filled: 0,
            skipping: 0,
            empty_frames: 0,
        }
    }

    /// Consumes bytes from `input` and returns how many were used, with at most one complete
    /// frame (a borrowed packet). Call again with the rest of the input until it is used up.
    ///
    /// An oversized frame yields [`FramingError::FrameTooLarge`] once, as soon as its header is
    /// read; the consumed count is still valid and the deframer skips that frame's body.
    pub fn push<'s>(
        &'s mut self,
        input: &'s [u8],
    ) -> (usize, Result<Option<&'s [u8]>, FramingError>) {
        let mut used = 0;
        if self.skipping > 0 {
            let n = self.skipping.min(input.len());
            self.skipping -= n;
            used += n;
        }
        loop {
            let rest = &input[used..];
            if self.header_len == 0 {
                // Fast path: a whole frame lies in the input; hand it out in place.
                if rest.len() >= FRAME_HEADER_LEN {
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    if len == 0 {
                        self.empty_frames += 1;
                        used += FRAME_HEADER_LEN;
                        continue;
                    }
                    if len <= N && rest.len() >= FRAME_HEADER_LEN + len {
                        let frame = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
                        return (used + FRAME_HEADER_LEN + len, Ok(Some(frame)));
                    }
                }
            }
            if rest.is_empty() {
                return (used, Ok(None));
            }
            if self.header_len < FRAME_HEADER_LEN {
                let n = (FRAME_HEADER_LEN - self.header_len).min(rest.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&rest[..n]);
                self.header_len += n;
                used += n;
                if self.header_len < FRAME_HEADER_LEN {
                    return (used, Ok(None));
                }
                let len = usize::from(u16::from_be_bytes(self.header));
                if len == 0 {
                    self.empty_frames += 1;
                    self.header_len = 0;
                    continue;
                }
                if len > N {
                    self.header_len = 0;
                    let rest = &input[used..];
                    let n = len.min(rest.len());
                    self.skipping = len - n;
                    used += n;
                    return (used, Err(FramingError::FrameTooLarge { len, capacity: N }));
                }
                self.frame_len = len;
                self.filled = 0;
                continue;
            }
            let n = (self.frame_len - self.filled).min(rest.len());
            self.buf[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            used += n;
            if self.filled == self.frame_len {
                self.header_len = 0;
                return (used, Ok(Some(&self.buf[..self.frame_len])));
            }
            return (used, Ok(None));
        }
    }

    /// Whether the deframer is in the middle of a frame (a stream that ends now was cut).
    #[must_use]
    pub const fn is_mid_frame(&self) -> bool {
        self.header_len != 0 || self.skipping != 0
    }

    /// Drops any partial frame, as after a reconnect.
    pub fn reset(&mut self) {
        self.header_len = 0;
        self.filled = 0;
        self.frame_len = 0;
        self.skipping = 0;
    }

    /// Zero-length frames skipped so far.
    #[must_use]
    pub const fn empty_frames(&self) -> u64 {
        self.empty_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of<const N: usize>(
        deframer: &mut Deframer<N>,
        mut input: &[u8],
        out: &mut std::vec::Vec<Result<std::vec::Vec<u8>, FramingError>>,
    ) {
        while !input.is_empty() {
            let (used, frame) = deframer.push(input);
            match frame {
                Ok(Some(f)) => out.push(Ok(f.to_vec())),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
            assert!(used > 0 || input.is_empty(), "no progress");
            input = &input[used..];
        }
    }

    fn wire(packets: &[&[u8]]) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        for p in packets {
            let mut buf = [0u8; 300];
            let n = frame_into(p, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn whole_input_and_one_byte_at_a_time_agree() {
        let packets: [&[u8]; 3] = [b"hello", &[7u8; 200], b"x"];
        let bytes = wire(&packets);
        let mut whole = std::vec::Vec::new();
        frames_of(&mut Deframer::<256>::new(), &bytes, &mut whole);
        let mut single = std::vec::Vec::new();
        let mut d = Deframer::<256>::new();
        for b in &bytes {
            frames_of(&mut d, core::slice::from_ref(b), &mut single);
        }
        let expected: std::vec::Vec<_> = packets.iter().map(|p| Ok(p.to_vec())).collect();
        assert_eq!(whole, expected);
        assert_eq!(single, expected);
        assert!(!d.is_mid_frame());
    }

    #[test]
    fn oversized_frame_is_reported_and_skipped() {
        let bytes = wire(&[&[1u8; 100], b"ok"]);
        for split in [1, 3, 50, bytes.len()] {
            let mut d = Deframer::<64>::new();
            let mut out = std::vec::Vec::new();
            for chunk in bytes.chunks(split) {
                frames_of(&mut d, chunk, &mut out);
            }
            assert_eq!(
                out,
                [
                    Err(FramingError::FrameTooLarge {
                        len: 100,
                        capacity: 64
                    }),
                    Ok(b"ok".to_vec())
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn empty_frames_are_skipped_and_counted() {
        let mut bytes = std::vec![0, 0];
        bytes.extend(wire(&[b"abc"]));
        bytes.extend([0, 0]);
        let mut d = Deframer::<16>::new();
        let mut out = std::vec::Vec::new();
        frames_of(&mut d, &bytes, &mut out);
        assert_eq!(out, [Ok(b"abc".to_vec())]);
        assert_eq!(d.empty_frames(), 2);
    }

    #[test]
    fn mid_frame_is_visible_and_reset_recovers() {
        let bytes = wire(&[b"abcdef", b"gh"]);
        let mut d = Deframer::<16>::new();
        let mut out = std::vec::Vec::new();
        frames_of(&mut d, &bytes[..4], &mut out);
        assert!(d.is_mid_frame());
        d.reset();
        frames_of(&mut d, &bytes[8..], &mut out);
        assert_eq!(out, [Ok(b"gh".to_vec())]);
    }

    #[test]
    fn framing_limits() {
        assert_eq!(
            frame_header(65536),
            Err(FramingError::PacketTooLarge { len: 65536 })
        );
        assert_eq!(frame_header(65535), Ok([0xff, 0xff]));
        assert_eq!(
            frame_into(b"abc", &mut [0u8; 4]),
            Err(FramingError::BufferTooSmall {
                needed: 5,
                capacity: 4
            })
        );
    }
}
