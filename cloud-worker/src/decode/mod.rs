//! H.264 decoding: one Annex-B access unit in, one I420 picture out.
//!
//! - [`Decoder`] is the backend-neutral interface the worker drives, one instance per stream.
//! - [`OpenH264Decoder`] is the CPU backend (Cisco's openh264, built from bundled source).
//! - [`NvdecDecoder`] is the GPU backend (NVIDIA's NVDEC, loaded at run time; decodes into CUDA
//!   memory, [`nvdec::MappedFrame`]).
//! - [`DecoderSelection`] picks the backend at start from the configuration and the capability
//!   probe, and makes each stream's decoder, falling back to openh264 ([`WithFallback`]).
//! - [`KeyframeGate`] is the per-stream recovery policy: it drops access units that cannot be
//!   decoded (after stream start, a loss or a decoder error) until the next IDR, and says when
//!   to send an RTCP PLI (DESIGN.md, "Wire protocol": keyframe request).
//!
//! Every backend bounds the picture size from the SPS *before* handing data to the decoder
//! library, with FlowCloud's own SPS reader ([`flowcloud_core::h264::Sps`]), so an SPS
//! announcing a huge picture never reaches the library's allocator ([`DecoderConfig`]).

pub mod keyframe_gate;
pub mod nvdec;
pub mod openh264;
pub mod selection;

use flowcloud_core::h264::annexb;
use flowcloud_core::h264::{NalHeader, NalType, Sps, SpsError};

use crate::frame::{I420Frame, Picture};

pub use self::keyframe_gate::{Admit, KeyframeGate, KeyframeGateConfig, KeyframeGateStats};
pub use self::nvdec::{NvdecDecoder, NvdecError, NvdecLibrary};
pub use self::openh264::OpenH264Decoder;
pub use self::selection::{DecoderBackend, DecoderSelection, NvdecRequired, WithFallback};

/// What [`Decoder::decode`] produced for one access unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeOutcome {
    /// A picture was written into the output frame.
    Frame,
    /// The access unit was consumed but produced no picture (parameter sets only, SEI only, or
    /// a picture the decoder could not complete). The output frame is untouched.
    NoPicture,
}

/// Why an access unit could not be decoded.
///
/// After any error the stream's decoder state is suspect: the caller should [`Decoder::reset`]
/// it and wait for the next IDR ([`KeyframeGate::on_decode_error`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bitstream is malformed (bad Annex-B framing, bad SPS, slice data the decoder
    /// rejected, a slice referring to parameter sets or reference pictures it does not have).
    #[error("corrupt H.264 access unit: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
    /// The bitstream is valid H.264 but uses a feature this backend does not decode
    /// (4:2:2/4:4:4/monochrome chroma, more than 8 bits per sample, interlaced coding,
    /// SVC/MVC NAL units).
    #[error("unsupported H.264 stream: {reason}")]
    Unsupported {
        /// Which feature.
        reason: String,
    },
    /// An SPS announces a picture larger than [`DecoderConfig`] allows; it was not passed to
    /// the decoder.
    #[error(
        "H.264 picture of {width}x{height} exceeds the decoder's configured maximum size (DecoderConfig)"
    )]
    TooLarge {
        /// Announced width in luma samples (coded width if the coded size is what exceeds).
        width: u32,
        /// Announced height in luma samples (coded height if the coded size is what exceeds).
        height: u32,
    },
    /// The decoder library failed for a reason unrelated to the input (initialisation failed,
    /// out of memory, an output buffer inconsistent with its own dimensions).
    #[error("{backend} decoder failed: {reason}")]
    Backend {
        /// [`Decoder::backend`] of the failing decoder.
        backend: &'static str,
        /// What failed.
        reason: String,
    },
}

/// Limits every decoder backend enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest accepted picture width in luma samples (after cropping). The coded width may
    /// exceed it only by the macroblock rounding (up to the next multiple of 16).
    pub max_width: u32,
    /// Largest accepted picture height in luma samples (after cropping), with the same
    /// allowance for the coded height.
    pub max_height: u32,
}

impl Default for DecoderConfig {
    /// 4096×4096: above every camera stream FlowCloud expects (4K UHD is 3840×2160).
    fn default() -> Self {
        Self {
            max_width: 4096,
            max_height: 4096,
        }
    }
}

/// An H.264 decoder for one stream.
pub trait Decoder: Send {
    /// Decodes one access unit: Annex-B (start codes before each NAL unit; 4-byte ones as the
    /// depacketizer writes them, 3-byte ones are accepted too), holding one picture and
    /// optionally the SPS/PPS/SEI/AUD NAL units that go with it.
    ///
    /// On [`DecodeOutcome::Frame`], `out` holds the picture, cropped to the SPS's display
    /// size. Its planes are resized only when the picture size differs from `out`'s current
    /// one, so a caller that reuses one frame per stream allocates once. On
    /// [`DecodeOutcome::NoPicture`] or an error `out` is left as it was.
    ///
    /// Display delay is 0: a picture comes out of the call that decoded it.
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: corrupt or unsupported bitstreams, pictures over the configured size,
    /// and backend failures. The decoder should then be [`reset`](Decoder::reset).
    fn decode(
        &mut self,
        access_unit: &[u8],
        out: &mut I420Frame,
    ) -> Result<DecodeOutcome, DecodeError>;

    /// Decodes one access unit into a picture the caller keeps and hands on (to the batcher),
    /// `None` where [`decode`](Decoder::decode) gives [`DecodeOutcome::NoPicture`].
    ///
    /// The default decodes into `scratch` (reused between calls) and copies it into a new host
    /// picture. A backend that decodes into CUDA memory may return [`Picture::Device`] instead
    /// (NVDEC with [`NvdecDecoder::with_device_output`]), so that the picture never crosses to
    /// the host.
    ///
    /// # Errors
    ///
    /// As [`decode`](Decoder::decode).
    fn decode_picture(
        &mut self,
        access_unit: &[u8],
        scratch: &mut I420Frame,
    ) -> Result<Option<Picture>, DecodeError> {
        Ok(match self.decode(access_unit, scratch)? {
            DecodeOutcome::Frame => Some(Picture::Host(scratch.clone())),
            DecodeOutcome::NoPicture => None,
        })
    }

    /// Forgets all decoding state (parameter sets, reference pictures): the next access unit
    /// must be an IDR with its SPS and PPS.
    fn reset(&mut self);

    /// A short name for logs and metrics (`"openh264"`, `"nvdec"`).
    fn backend(&self) -> &'static str;
}

/// Checks an access unit before it reaches a decoder library: Annex-B framing, NAL headers,
/// and every SPS against the backend's capabilities and `config`'s size bound.
///
/// Rejects, in order of the NAL units: garbage before the first start code, a NAL unit with
/// the forbidden bit set, SVC/MVC NAL units (types 14, 15 and 20: their subset SPS carries
/// a picture size this check cannot bound), RTP-only types (24–31 never appear in Annex-B), an
/// SPS that fails to parse, a picture over the limit, and — for a 4:2:0, 8-bit,
/// progressive-only backend, the only kind there is today — any SPS that is not that.
pub(crate) fn check_access_unit(
    access_unit: &[u8],
    config: DecoderConfig,
) -> Result<(), DecodeError> {
    let nal_units = annexb::nal_units(access_unit).map_err(|e| DecodeError::Corrupt {
        reason: e.to_string(),
    })?;
    for nal in nal_units {
        let Some(&first) = nal.first() else {
            continue;
        };
        let header = NalHeader(first);
        if header.forbidden_bit() {
            return Err(DecodeError::Corrupt {
                reason: format!(
                    "NAL unit of type {} has forbidden_zero_bit set",
                    header.type_id()
                ),
            });
        }
        match header.nal_type() {
            NalType::Sps => check_sps(nal, config)?,
            NalType::OtherH264(t @ (14 | 15 | 20)) => {
                return Err(DecodeError::Unsupported {
                    reason: format!("SVC/MVC NAL unit of type {t}"),
                });
            }
            t if !t.is_h264_nal() => {
                return Err(DecodeError::Corrupt {
                    reason: format!(
                        "NAL unit type {} is not allowed in an Annex-B stream",
                        header.type_id()
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_sps(nal: &[u8], config: DecoderConfig) -> Result<(), DecodeError> {
    let sps = Sps::parse(nal).map_err(|e| match e {
        SpsError::PictureTooLarge {
            width_mbs,
            height_mbs,
        } => DecodeError::TooLarge {
            width: width_mbs.saturating_mul(16),
            height: height_mbs.saturating_mul(16),
        },
        e => DecodeError::Corrupt {
            reason: format!("invalid SPS: {e}"),
        },
    })?;
    let too_large = |width, height| DecodeError::TooLarge { width, height };
    if sps.width > config.max_width || sps.height > config.max_height {
        return Err(too_large(sps.width, sps.height));
    }
    // Cropping could hide a huge coded picture behind a small display size.
    if u64::from(sps.coded_width) > u64::from(config.max_width).next_multiple_of(16)
        || u64::from(sps.coded_height) > u64::from(config.max_height).next_multiple_of(16)
    {
        return Err(too_large(sps.coded_width, sps.coded_height));
    }
    if sps.chroma_format_idc != 1 {
        let format = match sps.chroma_format_idc {
            0 => "monochrome (4:0:0)",
            2 => "4:2:2",
            _ => "4:4:4",
        };
        return Err(DecodeError::Unsupported {
            reason: format!(
                "chroma format {format} (profile_idc {}); only 4:2:0 is decoded",
                sps.profile_idc
            ),
        });
    }
    if sps.bit_depth_luma != 8 || sps.bit_depth_chroma != 8 {
        return Err(DecodeError::Unsupported {
            reason: format!(
                "{}-bit luma / {}-bit chroma; only 8-bit is decoded",
                sps.bit_depth_luma, sps.bit_depth_chroma
            ),
        });
    }
    if !sps.frame_mbs_only {
        return Err(DecodeError::Unsupported {
            reason: "interlaced coding (frame_mbs_only_flag = 0)".to_owned(),
        });
    }
    Ok(())
}

/// Whether an Annex-B access unit contains a slice of an IDR picture (NAL type 5).
/// Malformed framing counts as no IDR.
#[must_use]
pub(crate) fn contains_idr(access_unit: &[u8]) -> bool {
    annexb::nal_units(access_unit).is_ok_and(|mut nals| {
        nals.any(|nal| {
            nal.first()
                .is_some_and(|&b| NalHeader(b).nal_type() == NalType::IdrSlice)
        })
    })
}

/// Splits an Annex-B elementary stream (a `.h264` file) into access units, each re-framed
/// with 4-byte start codes as the depacketizer delivers them.
///
/// A new access unit starts at an access unit delimiter (9), an SPS (7), a PPS (8), an SEI (6)
/// or a NAL unit of types 14–18 when the previous NAL unit was a slice, and at a slice (1 or 5)
/// with `first_mb_in_slice == 0` (the first bit after the NAL header is 1) when the previous
/// NAL unit was a slice (H.264 §7.4.1.2.3, simplified: one picture per access unit, which
/// holds for streams with `first_mb_in_slice` 0 in every picture's first slice, i.e. without
/// arbitrary slice order).
///
/// # Errors
///
/// [`DecodeError::Corrupt`] if there is garbage before the first start code.
/// For stream files (tests, tools); the live path gets access units from the depacketizer.
pub fn split_access_units(stream: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let nal_units = annexb::nal_units(stream).map_err(|e| DecodeError::Corrupt {
        reason: e.to_string(),
    })?;
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut previous_was_slice = false;
    for nal in nal_units {
        let Some(&first) = nal.first() else {
            continue;
        };
        let type_id = NalHeader(first).type_id();
        let is_slice = matches!(type_id, 1 | 5);
        let starts_au = if is_slice {
            let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
            previous_was_slice && first_mb_zero
        } else {
            (matches!(type_id, 6..=9 | 14..=18) && previous_was_slice) || type_id == 9
        };
        if starts_au && !current.is_empty() {
            units.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(&annexb::START_CODE);
        current.extend_from_slice(nal);
        previous_was_slice = is_slice;
    }
    if !current.is_empty() {
        units.push(current);
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| annexb::START_CODE.iter().chain(n.iter()).copied())
            .collect()
    }

    #[test]
    fn splitter_starts_units_at_aud_sps_and_first_slices() {
        let aud: &[u8] = &[0x09, 0xf0];
        let sps: &[u8] = &[0x67, 0x42];
        let pps: &[u8] = &[0x68, 0xce];
        let idr0: &[u8] = &[0x65, 0x88]; // first_mb_in_slice = 0
        let idr1: &[u8] = &[0x65, 0x40]; // first_mb_in_slice != 0: same picture
        let p0: &[u8] = &[0x41, 0x9a];
        let p1: &[u8] = &[0x41, 0x20];
        let stream = au(&[sps, pps, idr0, idr1, p0, p1, aud, p0, sps, pps, idr0]);
        let units = split_access_units(&stream).unwrap();
        assert_eq!(
            units,
            vec![
                au(&[sps, pps, idr0, idr1]),
                au(&[p0, p1]),
                au(&[aud, p0]),
                au(&[sps, pps, idr0]),
            ]
        );
        // 3-byte start codes come out as 4-byte ones.
        assert_eq!(
            split_access_units(&[0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9a]).unwrap(),
            vec![au(&[idr0]), au(&[p0])]
        );
        assert!(matches!(
            split_access_units(&[7, 0, 0, 1, 0x65]),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(split_access_units(&[]).unwrap().is_empty());
    }

    #[test]
    fn contains_idr_looks_at_every_nal_unit() {
        assert!(contains_idr(&au(&[
            &[0x67, 0x42],
            &[0x68, 0xce],
            &[0x65, 0x88]
        ])));
        assert!(!contains_idr(&au(&[&[0x41, 0x9a]])));
        assert!(!contains_idr(&[0x65, 0x88]));
        assert!(!contains_idr(&[]));
    }

    #[test]
    fn check_rejects_bad_framing_and_nal_types() {
        let config = DecoderConfig::default();
        assert!(matches!(
            check_access_unit(&[0x65, 0, 0, 1, 0x65], config),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            check_access_unit(&au(&[&[0xe5, 0x88]]), config),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            check_access_unit(&au(&[&[0x7c, 0x85]]), config), // FU-A
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            check_access_unit(&au(&[&[0x6f, 0x42]]), config), // subset SPS
            Err(DecodeError::Unsupported { .. })
        ));
        assert!(matches!(
            check_access_unit(&au(&[&[0x67]]), config), // truncated SPS
            Err(DecodeError::Corrupt { .. })
        ));
        check_access_unit(&au(&[&[0x41, 0x9a]]), config).unwrap();
        check_access_unit(&[], config).unwrap();
    }

    #[test]
    fn error_messages_are_readable() {
        let e = DecodeError::TooLarge {
            width: 16384,
            height: 16384,
        };
        assert_eq!(
            e.to_string(),
            "H.264 picture of 16384x16384 exceeds the decoder's configured maximum size (DecoderConfig)"
        );
    }
}
