//! Bit-level reader for H.264 RBSP data that is still wrapped in its NAL unit payload.
//!
//! The reader removes emulation prevention bytes on the fly (H.264 §7.4.1): inside a NAL unit,
//! a `0x03` byte that follows two `0x00` bytes is an `emulation_prevention_three_byte` and is
//! not part of the RBSP, so it is skipped. Nothing is copied and nothing is allocated.
//!
//! Every read is bounds-checked and returns a typed [`BitsError`] instead of panicking.

/// Why a [`BitReader`] read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitsError {
    /// The read needs more bits than the slice has left.
    Truncated,
    /// An Exp-Golomb code has 32 or more leading zero bits, so its value would not fit in a
    /// `u32` (H.264 §9.1 limits `leadingZeroBits` to 31 for the syntax elements we read).
    ExpGolombTooLong,
    /// `read_bits` was asked for more than 32 bits.
    BitCountTooLarge {
        /// The count that was asked for.
        n: u32,
    },
}

/// MSB-first bit reader over the payload of one NAL unit (the bytes after the NAL header),
/// skipping emulation prevention bytes as it goes.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    /// The escaped (on-the-wire) NAL payload.
    data: &'a [u8],
    /// Index in `data` of the next byte to load.
    next: usize,
    /// The RBSP byte currently being consumed.
    cur: u8,
    /// Bits of `cur` not yet consumed (0..=8); 0 means the next read loads a byte.
    left: u32,
    /// Consecutive `0x00` bytes just loaded, saturating at 2.
    zeros: u8,
}

impl<'a> BitReader<'a> {
    /// A reader positioned at the first bit of `data`, which must be a NAL unit payload with
    /// the NAL header already stripped (emulation prevention bytes still in place).
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            next: 0,
            cur: 0,
            left: 0,
            zeros: 0,
        }
    }

    /// Loads the next RBSP byte into `cur`, skipping an emulation prevention byte if one is
    /// next. Returns `None` at the end of the data.
    fn next_rbsp_byte(&mut self) -> Option<u8> {
        let mut byte = *self.data.get(self.next)?;
        // `next < data.len() <= isize::MAX` here, so the increment cannot overflow.
        self.next += 1;
        if self.zeros >= 2 && byte == 0x03 {
            self.zeros = 0;
            byte = *self.data.get(self.next)?;
            self.next += 1;
        }
        self.zeros = if byte == 0 {
            self.zeros.saturating_add(1).min(2)
        } else {
            0
        };
        Some(byte)
    }

    /// Makes sure `cur` has at least one unread bit.
    fn refill(&mut self) -> Result<(), BitsError> {
        if self.left == 0 {
            self.cur = self.next_rbsp_byte().ok_or(BitsError::Truncated)?;
            self.left = 8;
        }
        Ok(())
    }

    /// Reads one bit.
    pub(crate) fn read_bit(&mut self) -> Result<bool, BitsError> {
        self.refill()?;
        self.left -= 1; // refill guarantees left >= 1
        Ok((self.cur >> self.left) & 1 == 1)
    }

    /// Reads one bit as a flag (`u(1)`); same as [`Self::read_bit`].
    pub(crate) fn read_flag(&mut self) -> Result<bool, BitsError> {
        self.read_bit()
    }

    /// Reads `n` bits (`u(n)`, MSB first) into the low bits of a `u32`; `n` may be 0..=32.
    pub(crate) fn read_bits(&mut self, n: u32) -> Result<u32, BitsError> {
        if n > 32 {
            return Err(BitsError::BitCountTooLarge { n });
        }
        let mut value: u64 = 0;
        let mut need = n;
        while need > 0 {
            self.refill()?;
            let take = need.min(self.left);
            // 1 <= take <= left <= 8, so both shifts are in range.
            let chunk = (u32::from(self.cur) >> (self.left - take)) & ((1u32 << take) - 1);
            value = (value << take) | u64::from(chunk);
            self.left -= take;
            need -= take;
        }
        // `value` holds at most 32 significant bits.
        u32::try_from(value).map_err(|_| BitsError::BitCountTooLarge { n })
    }

    /// Skips `n` bits.
    pub(crate) fn skip_bits(&mut self, n: u32) -> Result<(), BitsError> {
        let mut need = n;
        while need > 0 {
            self.refill()?;
            let take = need.min(self.left);
            self.left -= take;
            need -= take;
        }
        Ok(())
    }

    /// Reads an unsigned Exp-Golomb code (`ue(v)`, H.264 §9.1). Codes with 32 or more leading
    /// zero bits are rejected with [`BitsError::ExpGolombTooLong`].
    pub(crate) fn read_ue(&mut self) -> Result<u32, BitsError> {
        let mut leading_zeros: u32 = 0;
        while !self.read_bit()? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(BitsError::ExpGolombTooLong);
            }
        }
        // leading_zeros <= 31: (2^lz - 1) + suffix <= 2^32 - 2, which fits.
        let suffix = self.read_bits(leading_zeros)?;
        let prefix = (1u32 << leading_zeros) - 1;
        prefix
            .checked_add(suffix)
            .ok_or(BitsError::ExpGolombTooLong)
    }

    /// Reads a signed Exp-Golomb code (`se(v)`, H.264 §9.1.1): 0, 1, -1, 2, -2, ...
    pub(crate) fn read_se(&mut self) -> Result<i32, BitsError> {
        let k = self.read_ue()?;
        let magnitude = i32::try_from(k / 2).map_err(|_| BitsError::ExpGolombTooLong)?;
        if k % 2 == 1 {
            // k <= 2^32 - 3 when odd, so k / 2 + 1 <= 2^31 - 1.
            magnitude.checked_add(1).ok_or(BitsError::ExpGolombTooLong)
        } else {
            Ok(-magnitude)
        }
    }

    /// Consumes `rbsp_trailing_bits()` (H.264 §7.3.2.11): a `1` stop bit, then only zero bits
    /// to the end of the data. Trailing `0x00` bytes beyond the byte holding the stop bit are
    /// tolerated (an Annex-B splitter may leave a 4-byte start code's leading zero behind).
    /// Fails if the stop bit is missing or any later bit is set.
    pub(crate) fn finish_rbsp(&mut self) -> Result<bool, BitsError> {
        if !self.read_bit()? {
            return Ok(false);
        }
        // Remaining bits of the current byte, then whole bytes.
        if self.left > 0 {
            let mask = (1u32 << self.left) - 1;
            if u32::from(self.cur) & mask != 0 {
                return Ok(false);
            }
            self.left = 0;
        }
        while let Some(byte) = self.next_rbsp_byte() {
            if byte != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{BitReader, BitsError};

    #[test]
    fn reads_bits_msb_first() {
        let mut r = BitReader::new(&[0b1010_1100, 0xff, 0x01]);
        assert_eq!(r.read_bit(), Ok(true));
        assert_eq!(r.read_bit(), Ok(false));
        assert_eq!(r.read_bits(3), Ok(0b101));
        assert_eq!(r.read_bits(0), Ok(0));
        assert_eq!(r.read_bits(11), Ok(0b100_1111_1111));
        assert_eq!(r.read_bits(8), Ok(0x01));
        assert_eq!(r.read_bit(), Err(BitsError::Truncated));
    }

    #[test]
    fn reads_32_bits_and_rejects_33() {
        let mut r = BitReader::new(&[0xde, 0xad, 0xbe, 0xef, 0x80]);
        assert_eq!(r.read_bits(33), Err(BitsError::BitCountTooLarge { n: 33 }));
        assert_eq!(r.read_bits(32), Ok(0xdead_beef));
        assert_eq!(r.read_bits(2), Ok(0b10));
        assert_eq!(r.read_bits(7), Err(BitsError::Truncated));
    }

    #[test]
    fn unaligned_32_bit_read() {
        let mut r = BitReader::new(&[0x0f, 0xff, 0xff, 0xff, 0xf0]);
        r.skip_bits(4).unwrap();
        assert_eq!(r.read_bits(32), Ok(u32::MAX));
        assert_eq!(r.read_bits(4), Ok(0));
    }

    #[test]
    fn emulation_prevention_byte_is_removed() {
        // RBSP 00 00 01 is escaped as 00 00 03 01.
        let mut r = BitReader::new(&[0x00, 0x00, 0x03, 0x01]);
        assert_eq!(r.read_bits(24), Ok(0x00_0001));
        assert_eq!(r.read_bit(), Err(BitsError::Truncated));

        // Two escapes back to back: RBSP 00 00 00 00 00 -> 00 00 03 00 00 03 00.
        let mut r = BitReader::new(&[0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00]);
        assert_eq!(r.read_bits(32), Ok(0));
        assert_eq!(r.read_bits(8), Ok(0));
        assert_eq!(r.read_bit(), Err(BitsError::Truncated));

        // The escape is removed even when the read straddles it mid-byte.
        let mut r = BitReader::new(&[0xf0, 0x00, 0x00, 0x03, 0x03, 0xff]);
        r.skip_bits(4).unwrap();
        assert_eq!(r.read_bits(28), Ok(0x000_0003)); // 0000 00000000 00000000 00000011
        assert_eq!(r.read_bits(8), Ok(0xff));
    }

    #[test]
    fn non_escape_03_bytes_are_kept() {
        // 03 after a single zero, after a non-zero, and a second 03 after an escape are data.
        let mut r = BitReader::new(&[0x00, 0x03, 0x03, 0x00, 0x00, 0x03, 0x03]);
        assert_eq!(r.read_bits(24), Ok(0x00_0303));
        assert_eq!(r.read_bits(16), Ok(0x0000));
        assert_eq!(r.read_bits(8), Ok(0x03));
        assert_eq!(r.read_bit(), Err(BitsError::Truncated));

        // A zero byte after a non-zero byte restarts the zero count.
        let mut r = BitReader::new(&[0x00, 0x01, 0x00, 0x03]);
        assert_eq!(r.read_bits(32), Ok(0x0001_0003));
    }

    #[test]
    fn escape_at_end_of_data_is_truncation() {
        let mut r = BitReader::new(&[0x00, 0x00, 0x03]);
        assert_eq!(r.read_bits(16), Ok(0));
        assert_eq!(r.read_bit(), Err(BitsError::Truncated));
    }

    #[test]
    fn exp_golomb_unsigned() {
        // 1 | 010 | 011 | 00100 | 00111 | 0001000  -> 0, 1, 2, 3, 6, 7
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0011, 0b1000_1000]);
        for expected in [0, 1, 2, 3, 6, 7] {
            assert_eq!(r.read_ue(), Ok(expected));
        }
    }

    #[test]
    fn exp_golomb_signed() {
        // ue 0..=4 -> se 0, 1, -1, 2, -2: 1 010 011 00100 00101
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0010, 0b1000_0000]);
        for expected in [0, 1, -1, 2, -2] {
            assert_eq!(r.read_se(), Ok(expected));
        }
    }

    #[test]
    fn exp_golomb_extremes() {
        // 31 leading zeros, then 1, then 31 ones: the largest accepted value, 2^32 - 2.
        let bytes = [0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xfe];
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read_ue(), Ok(u32::MAX - 1));
        // The same code as se: even k = 2^32 - 2 -> -(2^31 - 1).
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read_se(), Ok(-i32::MAX));
        // 31 leading zeros with suffix 2^31 - 2 -> k = 2^32 - 3 (odd) -> 2^31 - 1.
        let mut r = BitReader::new(&[0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xfc]);
        assert_eq!(r.read_se(), Ok(i32::MAX));
        // 32 leading zeros: rejected (note 00 00 00 would be escaped, so use 00 00 03 00).
        let mut r = BitReader::new(&[0x00, 0x00, 0x03, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(r.read_ue(), Err(BitsError::ExpGolombTooLong));
        // Zeros that run out of data are truncation, not an over-long code.
        let mut r = BitReader::new(&[0x00, 0x00]);
        assert_eq!(r.read_ue(), Err(BitsError::Truncated));
        // Prefix complete but suffix missing.
        let mut r = BitReader::new(&[0x01]);
        assert_eq!(r.read_ue(), Err(BitsError::Truncated));
    }

    #[test]
    fn skip_bits_past_end() {
        let mut r = BitReader::new(&[0xff, 0xff]);
        assert_eq!(r.skip_bits(16), Ok(()));
        assert_eq!(r.skip_bits(1), Err(BitsError::Truncated));
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.skip_bits(u32::MAX), Err(BitsError::Truncated));
    }

    #[test]
    fn trailing_bits() {
        // 1 data bit, stop bit, zero padding.
        let mut r = BitReader::new(&[0b1100_0000]);
        assert_eq!(r.read_bit(), Ok(true));
        assert_eq!(r.finish_rbsp(), Ok(true));
        // Trailing zero bytes after the stop bit are tolerated.
        let mut r = BitReader::new(&[0x80, 0x00, 0x00]);
        assert_eq!(r.finish_rbsp(), Ok(true));
        // Missing stop bit, or a set bit after it, is reported.
        assert_eq!(BitReader::new(&[0x40]).finish_rbsp(), Ok(false));
        assert_eq!(BitReader::new(&[0x81]).finish_rbsp(), Ok(false));
        assert_eq!(BitReader::new(&[0x80, 0x01]).finish_rbsp(), Ok(false));
        assert_eq!(BitReader::new(&[]).finish_rbsp(), Err(BitsError::Truncated));
    }
}
