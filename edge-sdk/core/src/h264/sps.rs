//! H.264 sequence parameter set (SPS) reader (ITU-T H.264 (2016+) §7.3.2.1.1, §7.4.2.1.1).
//!
//! [`Sps::parse`] reads one SPS NAL unit and reports the profile, level, chroma format, bit
//! depths and the picture size in luma samples, before and after frame cropping. It exists so
//! the depacketizer can bound frame dimensions before anything downstream allocates for them,
//! so it is strict: every field with a range in the standard is range-checked, the picture is
//! capped at [`MAX_DIMENSION_MBS`] macroblocks each way, VUI is walked (not kept) so the
//! `rbsp_trailing_bits` can be checked, and any malformed or truncated input is a typed
//! [`SpsError`], never a panic. It allocates nothing.

use super::bits::{BitReader, BitsError};

/// Largest picture width, and largest frame height, [`Sps::parse`] accepts, in macroblocks
/// (16 luma samples each): 1024 MBs is 16384 pixels.
pub const MAX_DIMENSION_MBS: u32 = 1024;

/// NAL unit type of a sequence parameter set (H.264 Table 7-1).
const NAL_TYPE_SPS: u8 = 7;

/// `profile_idc` values whose SPS carries `chroma_format_idc`, bit depths and scaling lists
/// (H.264 §7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// The parts of an H.264 sequence parameter set FlowCloud uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sps {
    /// `profile_idc` (66 baseline, 77 main, 100 high, 244 high 4:4:4 predictive, ...).
    pub profile_idc: u8,
    /// The byte after `profile_idc`: `constraint_set0_flag` in bit 7 through
    /// `constraint_set5_flag` in bit 2, then the two `reserved_zero_2bits`.
    pub constraint_flags: u8,
    /// `level_idc`: ten times the level number (31 is level 3.1); 9 is level 1b.
    pub level_idc: u8,
    /// `seq_parameter_set_id`, 0..=31.
    pub seq_parameter_set_id: u8,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. 1 when the profile does
    /// not carry it.
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag`: 4:4:4 coded as three monochrome planes. Always false
    /// unless `chroma_format_idc` is 3.
    pub separate_colour_plane: bool,
    /// Luma bit depth, 8..=14 (`bit_depth_luma_minus8 + 8`).
    pub bit_depth_luma: u8,
    /// Chroma bit depth, 8..=14 (`bit_depth_chroma_minus8 + 8`).
    pub bit_depth_chroma: u8,
    /// `max_num_ref_frames`, 0..=16.
    pub max_num_ref_frames: u8,
    /// `frame_mbs_only_flag`: false when the stream may contain field pictures or MBAFF frames.
    pub frame_mbs_only: bool,
    /// Displayed width in luma samples, after frame cropping.
    pub width: u32,
    /// Displayed frame height in luma samples, after frame cropping.
    pub height: u32,
    /// Coded width in luma samples before cropping (`PicWidthInMbs * 16`).
    pub coded_width: u32,
    /// Coded frame height in luma samples before cropping (`FrameHeightInMbs * 16`).
    pub coded_height: u32,
    /// `vui_parameters_present_flag`. The VUI is checked for well-formedness but not kept.
    pub vui_present: bool,
}

/// Why [`Sps::parse`] rejected a NAL unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SpsError {
    /// The NAL unit ended before the SPS did.
    #[error("SPS is truncated: the NAL unit ended before the last field")]
    Truncated,
    /// The NAL unit is not an SPS.
    #[error("NAL unit type {nal_type} is not a sequence parameter set (type 7)")]
    NotSps {
        /// The `nal_unit_type` found in the NAL header.
        nal_type: u8,
    },
    /// The NAL header's `forbidden_zero_bit` is set.
    #[error("NAL header has forbidden_zero_bit set")]
    ForbiddenZeroBit,
    /// An Exp-Golomb field has more than 31 leading zero bits, so it cannot be a valid value.
    #[error("Exp-Golomb code in SPS has more than 31 leading zero bits")]
    ExpGolombTooLong,
    /// A field is outside the range H.264 allows (or, for `cpb_cnt_minus1` and the like, the
    /// range this reader supports).
    #[error("SPS field {field} = {value} is out of range")]
    FieldOutOfRange {
        /// The syntax element's name as spelled in H.264 §7.3.2.1.1 / Annex E.
        field: &'static str,
        /// The value read (signed fields keep their sign).
        value: i64,
    },
    /// The picture is larger than [`MAX_DIMENSION_MBS`] macroblocks in width or frame height.
    #[error(
        "picture of {width_mbs}x{height_mbs} macroblocks exceeds the {MAX_DIMENSION_MBS}x{MAX_DIMENSION_MBS} limit"
    )]
    PictureTooLarge {
        /// `PicWidthInMbs`.
        width_mbs: u32,
        /// `FrameHeightInMbs` (saturated if it overflowed).
        height_mbs: u32,
    },
    /// The frame cropping offsets remove the whole picture (or more) in some direction.
    #[error("SPS frame cropping offsets leave no picture")]
    CropExceedsPicture,
    /// The SPS does not end with a stop bit followed by zero bits.
    #[error("SPS does not end with valid rbsp_trailing_bits")]
    InvalidTrailingBits,
}

impl From<BitsError> for SpsError {
    fn from(e: BitsError) -> Self {
        match e {
            BitsError::Truncated => Self::Truncated,
            BitsError::ExpGolombTooLong => Self::ExpGolombTooLong,
            // Only reachable through a bug in this module: every count here is a constant <= 32.
            BitsError::BitCountTooLarge { n } => Self::FieldOutOfRange { field: "bit count", value: i64::from(n) },
        }
    }
}

/// Reads `ue(v)` and checks it is at most `max`.
fn ue_max(r: &mut BitReader<'_>, field: &'static str, max: u32) -> Result<u32, SpsError> {
    let value = r.read_ue()?;
    if value > max {
        return Err(SpsError::FieldOutOfRange { field, value: i64::from(value) });
    }
    Ok(value)
}

/// Reads `ue(v)`, checks it is at most `max` (which must fit a `u8`), and narrows it.
fn ue_u8(r: &mut BitReader<'_>, field: &'static str, max: u8) -> Result<u8, SpsError> {
    let value = ue_max(r, field, u32::from(max))?;
    u8::try_from(value).map_err(|_| SpsError::FieldOutOfRange { field, value: i64::from(value) })
}

/// Reads an 8-bit fixed-length field.
fn u8_field(r: &mut BitReader<'_>) -> Result<u8, SpsError> {
    let value = r.read_bits(8)?;
    u8::try_from(value).map_err(|_| SpsError::FieldOutOfRange { field: "u(8)", value: i64::from(value) })
}

/// Skips one `scaling_list()` of `size` coefficients (H.264 §7.3.2.1.1.1), validating each
/// `delta_scale` (-128..=127, §7.4.2.1.1).
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::FieldOutOfRange { field: "delta_scale", value: i64::from(delta) });
            }
            // Both terms are small (|last_scale| <= 255, |delta| <= 128): no overflow.
            next_scale = (last_scale + delta + 256).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Skips `hrd_parameters()` (H.264 §E.1.2).
fn skip_hrd_parameters(r: &mut BitReader<'_>) -> Result<(), SpsError> {
    let cpb_cnt_minus1 = ue_max(r, "cpb_cnt_minus1", 31)?;
    r.skip_bits(4 + 4)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..=cpb_cnt_minus1 {
        r.read_ue()?; // bit_rate_value_minus1
        r.read_ue()?; // cpb_size_value_minus1
        r.skip_bits(1)?; // cbr_flag
    }
    // initial_cpb_removal_delay_length_minus1, cpb_removal_delay_length_minus1,
    // dpb_output_delay_length_minus1, time_offset_length
    r.skip_bits(5 + 5 + 5 + 5)?;
    Ok(())
}

/// Walks `vui_parameters()` (H.264 §E.1.1) without keeping anything, so the trailing bits
/// after it can be checked.
fn skip_vui_parameters(r: &mut BitReader<'_>) -> Result<(), SpsError> {
    if r.read_flag()? {
        // aspect_ratio_info_present_flag
        let aspect_ratio_idc = r.read_bits(8)?;
        if aspect_ratio_idc == 255 {
            r.skip_bits(16 + 16)?; // sar_width, sar_height (Extended_SAR)
        }
    }
    if r.read_flag()? {
        r.skip_bits(1)?; // overscan_info_present_flag -> overscan_appropriate_flag
    }
    if r.read_flag()? {
        // video_signal_type_present_flag: video_format, video_full_range_flag
        r.skip_bits(3 + 1)?;
        if r.read_flag()? {
            // colour_primaries, transfer_characteristics, matrix_coefficients
            r.skip_bits(8 + 8 + 8)?;
        }
    }
    if r.read_flag()? {
        // chroma_loc_info_present_flag
        ue_max(r, "chroma_sample_loc_type_top_field", 5)?;
        ue_max(r, "chroma_sample_loc_type_bottom_field", 5)?;
    }
    if r.read_flag()? {
        // timing_info_present_flag: num_units_in_tick, time_scale, fixed_frame_rate_flag
        r.skip_bits(32)?;
        r.skip_bits(32)?;
        r.skip_bits(1)?;
    }
    let nal_hrd = r.read_flag()?;
    if nal_hrd {
        skip_hrd_parameters(r)?;
    }
    let vcl_hrd = r.read_flag()?;
    if vcl_hrd {
        skip_hrd_parameters(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.skip_bits(1)?; // low_delay_hrd_flag
    }
    r.skip_bits(1)?; // pic_struct_present_flag
    if r.read_flag()? {
        // bitstream_restriction_flag
        r.skip_bits(1)?; // motion_vectors_over_pic_boundaries_flag
        ue_max(r, "max_bytes_per_pic_denom", 16)?;
        ue_max(r, "max_bits_per_mb_denom", 16)?;
        ue_max(r, "log2_max_mv_length_horizontal", 16)?;
        ue_max(r, "log2_max_mv_length_vertical", 16)?;
        r.read_ue()?; // max_num_reorder_frames
        r.read_ue()?; // max_dec_frame_buffering
    }
    Ok(())
}

impl Sps {
    /// Parses one SPS NAL unit: `nal` is the whole NAL unit including its 1-byte header, with
    /// emulation prevention bytes still in place (no Annex-B start code). Trailing `0x00`
    /// bytes after the SPS are tolerated.
    ///
    /// # Errors
    ///
    /// [`SpsError::NotSps`] if the NAL type is not 7, [`SpsError::Truncated`] if the data
    /// ends early, and the other [`SpsError`] variants for out-of-range fields, oversized
    /// pictures, impossible cropping, and bad trailing bits.
    pub fn parse(nal: &[u8]) -> Result<Self, SpsError> {
        let (&header, payload) = nal.split_first().ok_or(SpsError::Truncated)?;
        if header & 0x80 != 0 {
            return Err(SpsError::ForbiddenZeroBit);
        }
        let nal_type = header & 0x1f;
        if nal_type != NAL_TYPE_SPS {
            return Err(SpsError::NotSps { nal_type });
        }
        let mut r = BitReader::new(payload);

        let profile_idc = u8_field(&mut r)?;
        let constraint_flags = u8_field(&mut r)?;
        let level_idc = u8_field(&mut r)?;
        let seq_parameter_set_id = ue_u8(&mut r, "seq_parameter_set_id", 31)?;

        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8;
        let mut bit_depth_chroma = 8;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = ue_u8(&mut r, "chroma_format_idc", 3)?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.read_flag()?;
            }
            bit_depth_luma = 8 + ue_u8(&mut r, "bit_depth_luma_minus8", 6)?;
            bit_depth_chroma = 8 + ue_u8(&mut r, "bit_depth_chroma_minus8", 6)?;
            r.skip_bits(1)?; // qpprime_y_zero_transform_bypass_flag
            if r.read_flag()? {
                // seq_scaling_matrix_present_flag
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.read_flag()? {
                        // seq_scaling_list_present_flag[i]
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }

        ue_max(&mut r, "log2_max_frame_num_minus4", 12)?;
        let pic_order_cnt_type = r.read_ue()?;
        match pic_order_cnt_type {
            0 => {
                ue_max(&mut r, "log2_max_pic_order_cnt_lsb_minus4", 12)?;
            }
            1 => {
                r.skip_bits(1)?; // delta_pic_order_always_zero_flag
                r.read_se()?; // offset_for_non_ref_pic
                r.read_se()?; // offset_for_top_to_bottom_field
                let cycle = ue_max(&mut r, "num_ref_frames_in_pic_order_cnt_cycle", 255)?;
                for _ in 0..cycle {
                    r.read_se()?; // offset_for_ref_frame[i]
                }
            }
            2 => {}
            other => {
                return Err(SpsError::FieldOutOfRange { field: "pic_order_cnt_type", value: i64::from(other) });
            }
        }
        let max_num_ref_frames = ue_u8(&mut r, "max_num_ref_frames", 16)?;
        r.skip_bits(1)?; // gaps_in_frame_num_value_allowed_flag
        let pic_width_in_mbs_minus1 = r.read_ue()?;
        let pic_height_in_map_units_minus1 = r.read_ue()?;
        let frame_mbs_only = r.read_flag()?;
        if !frame_mbs_only {
            r.skip_bits(1)?; // mb_adaptive_frame_field_flag
        }
        r.skip_bits(1)?; // direct_8x8_inference_flag

        // PicWidthInMbs and FrameHeightInMbs = (2 - frame_mbs_only_flag) * PicHeightInMapUnits
        // (§7.4.2.1.1), bounded before anything is multiplied by 16.
        let field_factor: u32 = if frame_mbs_only { 1 } else { 2 };
        let width_mbs = pic_width_in_mbs_minus1.saturating_add(1);
        let height_mbs = pic_height_in_map_units_minus1.saturating_add(1).saturating_mul(field_factor);
        if width_mbs > MAX_DIMENSION_MBS || height_mbs > MAX_DIMENSION_MBS {
            return Err(SpsError::PictureTooLarge { width_mbs, height_mbs });
        }
        // Both are <= 1024 now, so * 16 cannot overflow; checked anyway.
        let too_large = SpsError::PictureTooLarge { width_mbs, height_mbs };
        let coded_width = width_mbs.checked_mul(16).ok_or(too_large)?;
        let coded_height = height_mbs.checked_mul(16).ok_or(too_large)?;

        let (mut width, mut height) = (coded_width, coded_height);
        if r.read_flag()? {
            // frame_cropping_flag
            let left = r.read_ue()?;
            let right = r.read_ue()?;
            let top = r.read_ue()?;
            let bottom = r.read_ue()?;
            // CropUnitX / CropUnitY (§7.4.2.1.1, Table 6-1). ChromaArrayType is 0 for
            // monochrome and for separately coded colour planes.
            let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
            let (sub_width_c, sub_height_c): (u32, u32) = match chroma_array_type {
                0 => (1, 1),
                1 => (2, 2),
                2 => (2, 1),
                _ => (1, 1),
            };
            let crop_unit_x = sub_width_c;
            let crop_unit_y = sub_height_c * field_factor;
            let crop_x = left
                .checked_add(right)
                .and_then(|c| c.checked_mul(crop_unit_x))
                .ok_or(SpsError::CropExceedsPicture)?;
            let crop_y = top
                .checked_add(bottom)
                .and_then(|c| c.checked_mul(crop_unit_y))
                .ok_or(SpsError::CropExceedsPicture)?;
            // At least one sample must remain (the ranges in §7.4.2.1.1 imply it).
            width = coded_width.checked_sub(crop_x).filter(|&w| w > 0).ok_or(SpsError::CropExceedsPicture)?;
            height = coded_height.checked_sub(crop_y).filter(|&h| h > 0).ok_or(SpsError::CropExceedsPicture)?;
        }

        let vui_present = r.read_flag()?;
        if vui_present {
            skip_vui_parameters(&mut r)?;
        }
        if !r.finish_rbsp()? {
            return Err(SpsError::InvalidTrailingBits);
        }

        Ok(Self {
            profile_idc,
            constraint_flags,
            level_idc,
            seq_parameter_set_id,
            chroma_format_idc,
            separate_colour_plane,
            bit_depth_luma,
            bit_depth_chroma,
            max_num_ref_frames,
            frame_mbs_only,
            width,
            height,
            coded_width,
            coded_height,
            vui_present,
        })
    }
}
