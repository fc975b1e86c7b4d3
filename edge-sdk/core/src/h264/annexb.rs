//! Annex-B byte streams (H.264 Annex B): NAL units separated by 3- or 4-byte start codes.
//!
//! The scanner only finds boundaries; it never removes emulation prevention bytes, because
//! RTP carries NAL units exactly as the encoder wrote them (RFC 6184 §1.3).

use memchr::memmem;

/// The 4-byte start code this crate writes before every NAL unit it outputs.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Why a buffer is not a usable Annex-B stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnexBError {
    /// Non-zero bytes come before the first start code.
    #[error("Annex-B data has {offset} bytes of non-zero data before the first start code")]
    GarbageBeforeStartCode {
        /// Offset of the first start code, or the buffer length if there is none.
        offset: usize,
    },
}

/// Iterator over the NAL units of an Annex-B buffer, yielding each NAL unit without its
/// start code and without trailing zero bytes (H.264 §B.2: zeros before a start code belong to
/// the byte stream, and a NAL unit never ends in a zero byte, §7.4.1).
#[derive(Clone, Debug)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
}

/// Scans `data` as an Annex-B stream. Leading zero bytes are allowed; anything else before the
/// first start code is an error.
pub fn nal_units(data: &[u8]) -> Result<NalUnits<'_>, AnnexBError> {
    let Some(first) = memmem::find(data, &[0, 0, 1]) else {
        if data.iter().all(|&b| b == 0) {
            return Ok(NalUnits {
                data,
                pos: data.len(),
            });
        }
        return Err(AnnexBError::GarbageBeforeStartCode { offset: data.len() });
    };
    if data[..first].iter().any(|&b| b != 0) {
        return Err(AnnexBError::GarbageBeforeStartCode { offset: first });
    }
    Ok(NalUnits {
        data,
        pos: first + 3,
    })
}

impl<'a> NalUnits<'a> {
    /// Byte range of the next NAL unit within the scanned buffer, skipping empty ones.
    pub fn next_range(&mut self) -> Option<core::ops::Range<usize>> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let rest = &self.data[start..];
            let (mut end, next) = match memmem::find(rest, &[0, 0, 1]) {
                Some(i) => (start + i, start + i + 3),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            while end > start && self.data[end - 1] == 0 {
                end -= 1;
            }
            if end > start {
                return Some(start..end);
            }
        }
        None
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let data = self.data;
        self.next_range().map(|r| &data[r])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &[u8]) -> heapless::Vec<&[u8], 16> {
        nal_units(data).unwrap().collect()
    }

    #[test]
    fn three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        assert_eq!(
            collect(&data),
            [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]
        );
    }

    #[test]
    fn emulation_prevention_is_untouched() {
        // 00 00 03 inside a NAL unit is not a start code and must come out as written.
        let data = [0, 0, 1, 0x65, 0, 0, 3, 1, 0, 0, 3, 0];
        assert_eq!(collect(&data), [&[0x65, 0, 0, 3, 1, 0, 0, 3][..]]);
    }

    #[test]
    fn trailing_and_leading_zeros_and_empty_units() {
        let data = [
            0, 0, 0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 0, 1, 0, 0, 1, 0x41, 0x9a, 0, 0,
        ];
        assert_eq!(collect(&data), [&[0x09, 0xf0][..], &[0x41, 0x9a]]);
    }

    #[test]
    fn garbage_before_first_start_code() {
        assert_eq!(
            nal_units(&[1, 0, 0, 1, 0x65]).err(),
            Some(AnnexBError::GarbageBeforeStartCode { offset: 1 })
        );
        assert_eq!(
            nal_units(&[0x65, 0x88]).err(),
            Some(AnnexBError::GarbageBeforeStartCode { offset: 2 })
        );
        assert_eq!(nal_units(&[]).unwrap().count(), 0);
    }
}
