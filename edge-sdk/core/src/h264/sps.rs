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
            BitsError::BitCountTooLarge { n } => Self::FieldOutOfRange {
                field: "bit count",
                value: i64::from(n),
            },
        }
    }
}

/// Reads `ue(v)` and checks it is at most `max`.
fn ue_max(r: &mut BitReader<'_>, field: &'static str, max: u32) -> Result<u32, SpsError> {
    let value = r.read_ue()?;
    if value > max {
        return Err(SpsError::FieldOutOfRange {
            field,
            value: i64::from(value),
        });
    }
    Ok(value)
}

/// Reads `ue(v)`, checks it is at most `max` (which must fit a `u8`), and narrows it.
fn ue_u8(r: &mut BitReader<'_>, field: &'static str, max: u8) -> Result<u8, SpsError> {
    let value = ue_max(r, field, u32::from(max))?;
    u8::try_from(value).map_err(|_| SpsError::FieldOutOfRange {
        field,
        value: i64::from(value),
    })
}

/// Reads an 8-bit fixed-length field.
fn u8_field(r: &mut BitReader<'_>) -> Result<u8, SpsError> {
    let value = r.read_bits(8)?;
    u8::try_from(value).map_err(|_| SpsError::FieldOutOfRange {
        field: "u(8)",
        value: i64::from(value),
    })
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
                return Err(SpsError::FieldOutOfRange {
                    field: "delta_scale",
                    value: i64::from(delta),
                });
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
                return Err(SpsError::FieldOutOfRange {
                    field: "pic_order_cnt_type",
                    value: i64::from(other),
                });
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
        let height_mbs = pic_height_in_map_units_minus1
            .saturating_add(1)
            .saturating_mul(field_factor);
        if width_mbs > MAX_DIMENSION_MBS || height_mbs > MAX_DIMENSION_MBS {
            return Err(SpsError::PictureTooLarge {
                width_mbs,
                height_mbs,
            });
        }
        // Both are <= 1024 now, so * 16 cannot overflow; checked anyway.
        let too_large = SpsError::PictureTooLarge {
            width_mbs,
            height_mbs,
        };
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
            let chroma_array_type = if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            };
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
            width = coded_width
                .checked_sub(crop_x)
                .filter(|&w| w > 0)
                .ok_or(SpsError::CropExceedsPicture)?;
            height = coded_height
                .checked_sub(crop_y)
                .filter(|&h| h > 0)
                .ok_or(SpsError::CropExceedsPicture)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{MAX_DIMENSION_MBS, Sps, SpsError};
    use proptest::prelude::*;

    // ---- helpers ---------------------------------------------------------------------------

    /// The first SPS NAL unit (header included, no start code, trailing zeros of a 4-byte
    /// start code stripped) in an Annex-B byte stream.
    fn find_sps(stream: &[u8]) -> &[u8] {
        let starts: Vec<usize> = stream
            .windows(3)
            .enumerate()
            .filter(|(_, w)| *w == [0, 0, 1])
            .map(|(i, _)| i + 3)
            .collect();
        for (k, &start) in starts.iter().enumerate() {
            let mut end = starts.get(k + 1).map_or(stream.len(), |&next| next - 3);
            while end > start && stream[end - 1] == 0 {
                end -= 1;
            }
            let nal = &stream[start..end];
            if nal.first().is_some_and(|h| h & 0x1f == 7) {
                return nal;
            }
        }
        panic!("no SPS in stream");
    }

    /// MSB-first bit writer that escapes the result into a NAL unit payload.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn u(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }
        fn flag(&mut self, b: bool) -> &mut Self {
            self.u(1, u64::from(b))
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            self.u(len - 1, 0).u(len, x)
        }
        fn se(&mut self, v: i32) -> &mut Self {
            let k = if v > 0 {
                2 * i64::from(v) - 1
            } else {
                -2 * i64::from(v)
            };
            self.ue(u32::try_from(k).unwrap())
        }
        /// RBSP bytes: trailing bits appended.
        fn rbsp(&self) -> Vec<u8> {
            let mut bits = self.bits.clone();
            bits.push(true);
            while !bits.len().is_multiple_of(8) {
                bits.push(false);
            }
            bits.chunks(8)
                .map(|c| c.iter().fold(0u8, |acc, &b| (acc << 1) | u8::from(b)))
                .collect()
        }
        /// Raw bytes with no trailing bits (bit count must be a multiple of 8).
        fn raw(&self) -> Vec<u8> {
            assert!(self.bits.len().is_multiple_of(8));
            self.bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |acc, &b| (acc << 1) | u8::from(b)))
                .collect()
        }
    }

    /// Inserts emulation prevention bytes and prepends an SPS NAL header.
    fn nal(rbsp: &[u8]) -> Vec<u8> {
        let mut out = vec![0x67];
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    /// Field values for a hand-built SPS.
    #[derive(Clone)]
    struct Fields {
        profile_idc: u8,
        constraint_flags: u8,
        level_idc: u8,
        sps_id: u32,
        chroma_format_idc: u32,
        separate_colour_plane: bool,
        bit_depth_luma_minus8: u32,
        bit_depth_chroma_minus8: u32,
        /// Per list: `None` = not present, `Some(deltas)` = delta_scale values written.
        scaling_lists: Option<Vec<Option<Vec<i32>>>>,
        log2_max_frame_num_minus4: u32,
        poc_type: u32,
        log2_max_poc_lsb_minus4: u32,
        poc_cycle: Vec<i32>,
        /// Overrides `poc_cycle.len()` when writing num_ref_frames_in_pic_order_cnt_cycle.
        poc_cycle_len: Option<u32>,
        max_num_ref_frames: u32,
        width_mbs_minus1: u32,
        height_map_units_minus1: u32,
        frame_mbs_only: bool,
        crop: Option<[u32; 4]>,
        vui: Option<Vui>,
    }

    #[derive(Clone, Copy)]
    struct Vui {
        extended_sar: bool,
        hrd_cpb_cnt_minus1: Option<u32>,
        bitstream_restriction: bool,
    }

    impl Default for Fields {
        fn default() -> Self {
            Self {
                profile_idc: 66,
                constraint_flags: 0xc0,
                level_idc: 30,
                sps_id: 0,
                chroma_format_idc: 1,
                separate_colour_plane: false,
                bit_depth_luma_minus8: 0,
                bit_depth_chroma_minus8: 0,
                scaling_lists: None,
                log2_max_frame_num_minus4: 0,
                poc_type: 2,
                log2_max_poc_lsb_minus4: 0,
                poc_cycle: Vec::new(),
                poc_cycle_len: None,
                max_num_ref_frames: 1,
                width_mbs_minus1: 19,
                height_map_units_minus1: 14,
                frame_mbs_only: true,
                crop: None,
                vui: None,
            }
        }
    }

    impl Fields {
        fn high(mut self, chroma_format_idc: u32) -> Self {
            self.profile_idc = if chroma_format_idc == 3 { 244 } else { 100 };
            self.constraint_flags = 0;
            self.chroma_format_idc = chroma_format_idc;
            self
        }

        fn writer(&self) -> BitWriter {
            let mut w = BitWriter::default();
            w.u(8, self.profile_idc.into())
                .u(8, self.constraint_flags.into())
                .u(8, self.level_idc.into());
            w.ue(self.sps_id);
            if super::HIGH_PROFILES.contains(&self.profile_idc) {
                w.ue(self.chroma_format_idc);
                if self.chroma_format_idc == 3 {
                    w.flag(self.separate_colour_plane);
                }
                w.ue(self.bit_depth_luma_minus8)
                    .ue(self.bit_depth_chroma_minus8)
                    .flag(false);
                w.flag(self.scaling_lists.is_some());
                for list in self.scaling_lists.iter().flatten() {
                    w.flag(list.is_some());
                    for &d in list.iter().flatten() {
                        w.se(d);
                    }
                }
            }
            w.ue(self.log2_max_frame_num_minus4).ue(self.poc_type);
            match self.poc_type {
                0 => {
                    w.ue(self.log2_max_poc_lsb_minus4);
                }
                1 => {
                    w.flag(false).se(-1).se(2);
                    w.ue(self
                        .poc_cycle_len
                        .unwrap_or(u32::try_from(self.poc_cycle.len()).unwrap()));
                    for &o in &self.poc_cycle {
                        w.se(o);
                    }
                }
                _ => {}
            }
            w.ue(self.max_num_ref_frames).flag(false);
            w.ue(self.width_mbs_minus1)
                .ue(self.height_map_units_minus1)
                .flag(self.frame_mbs_only);
            if !self.frame_mbs_only {
                w.flag(true);
            }
            w.flag(true); // direct_8x8_inference_flag
            w.flag(self.crop.is_some());
            for &c in self.crop.iter().flatten() {
                w.ue(c);
            }
            w.flag(self.vui.is_some());
            if let Some(vui) = self.vui {
                w.flag(true).u(8, if vui.extended_sar { 255 } else { 1 });
                if vui.extended_sar {
                    w.u(16, 4).u(16, 3);
                }
                w.flag(true).flag(false); // overscan
                w.flag(true)
                    .u(3, 5)
                    .flag(false)
                    .flag(true)
                    .u(24, 0x01_01_01); // video signal
                w.flag(true).ue(0).ue(0); // chroma loc
                w.flag(true).u(32, 1).u(32, 60).flag(true); // timing
                if let Some(cpb_cnt_minus1) = vui.hrd_cpb_cnt_minus1 {
                    for _ in 0..2 {
                        w.flag(true).ue(cpb_cnt_minus1).u(4, 0).u(4, 0);
                        for _ in 0..=cpb_cnt_minus1.min(40) {
                            w.ue(1000).ue(2000).flag(false);
                        }
                        w.u(20, 0xfffff);
                    }
                    w.flag(false); // low_delay_hrd_flag
                } else {
                    w.flag(false).flag(false);
                }
                w.flag(false); // pic_struct_present_flag
                w.flag(vui.bitstream_restriction);
                if vui.bitstream_restriction {
                    w.flag(true).ue(2).ue(1).ue(16).ue(16).ue(0).ue(1);
                }
            }
            w
        }

        fn build(&self) -> Vec<u8> {
            nal(&self.writer().rbsp())
        }
    }

    fn out_of_range(field: &'static str, value: i64) -> SpsError {
        SpsError::FieldOutOfRange { field, value }
    }

    // ---- real encoder output ---------------------------------------------------------------

    struct Expect {
        profile_idc: u8,
        constraint_flags: u8,
        level_idc: u8,
        chroma_format_idc: u8,
        frame_mbs_only: bool,
        width: u32,
        height: u32,
        coded_width: u32,
        coded_height: u32,
        vui_present: bool,
    }

    fn check_vector(stream: &[u8], e: &Expect) {
        let nal = find_sps(stream);
        let sps = Sps::parse(nal).unwrap();
        assert_eq!(sps.profile_idc, e.profile_idc, "profile_idc");
        assert_eq!(sps.constraint_flags, e.constraint_flags, "constraint_flags");
        assert_eq!(sps.level_idc, e.level_idc, "level_idc");
        assert_eq!(sps.seq_parameter_set_id, 0);
        assert_eq!(
            sps.chroma_format_idc, e.chroma_format_idc,
            "chroma_format_idc"
        );
        assert!(!sps.separate_colour_plane);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (8, 8));
        assert_eq!(sps.frame_mbs_only, e.frame_mbs_only, "frame_mbs_only");
        assert_eq!((sps.width, sps.height), (e.width, e.height), "cropped size");
        assert_eq!(
            (sps.coded_width, sps.coded_height),
            (e.coded_width, e.coded_height),
            "coded size"
        );
        assert_eq!(sps.vui_present, e.vui_present, "vui_present");
        assert!(sps.max_num_ref_frames >= 1);

        // Every strict prefix is an error, never a panic or a silent success.
        for len in 0..nal.len() {
            assert!(
                Sps::parse(&nal[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
        // A trailing zero byte (left by a 4-byte start code) is tolerated.
        let mut padded = nal.to_vec();
        padded.push(0);
        assert_eq!(Sps::parse(&padded), Ok(sps));
    }

    #[test]
    fn x264_baseline_320x240() {
        check_vector(
            include_bytes!("../../testdata/x264-baseline-320x240.h264"),
            &Expect {
                profile_idc: 66,
                constraint_flags: 0xc0,
                level_idc: 13,
                chroma_format_idc: 1,
                frame_mbs_only: true,
                width: 320,
                height: 240,
                coded_width: 320,
                coded_height: 240,
                vui_present: true,
            },
        );
    }

    #[test]
    fn x264_high_322x242_cropped() {
        check_vector(
            include_bytes!("../../testdata/x264-high-322x242.h264"),
            &Expect {
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 13,
                chroma_format_idc: 1,
                frame_mbs_only: true,
                width: 322,
                height: 242,
                coded_width: 336,
                coded_height: 256,
                vui_present: true,
            },
        );
    }

    #[test]
    fn x264_main_1280x720_cropped() {
        check_vector(
            include_bytes!("../../testdata/x264-main-1280x720.h264"),
            &Expect {
                profile_idc: 77,
                constraint_flags: 0x40,
                level_idc: 31,
                chroma_format_idc: 1,
                frame_mbs_only: true,
                width: 1280,
                height: 720,
                coded_width: 1280,
                coded_height: 720,
                vui_present: true,
            },
        );
    }

    #[test]
    fn x264_high_interlaced_320x240() {
        check_vector(
            include_bytes!("../../testdata/x264-high-interlaced-320x240.h264"),
            &Expect {
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 21,
                chroma_format_idc: 1,
                frame_mbs_only: false,
                width: 320,
                height: 240,
                coded_width: 320,
                coded_height: 256,
                vui_present: true,
            },
        );
    }

    #[test]
    fn x264_high422_162x98_cropped() {
        check_vector(
            include_bytes!("../../testdata/x264-high422-162x98.h264"),
            &Expect {
                profile_idc: 122,
                constraint_flags: 0,
                level_idc: 11,
                chroma_format_idc: 2,
                frame_mbs_only: true,
                width: 162,
                height: 98,
                coded_width: 176,
                coded_height: 112,
                vui_present: true,
            },
        );
    }

    #[test]
    fn x264_high444_176x144() {
        check_vector(
            include_bytes!("../../testdata/x264-high444-176x144.h264"),
            &Expect {
                profile_idc: 244,
                constraint_flags: 0,
                level_idc: 11,
                chroma_format_idc: 3,
                frame_mbs_only: true,
                width: 176,
                height: 144,
                coded_width: 176,
                coded_height: 144,
                vui_present: true,
            },
        );
    }

    #[test]
    fn openh264_322x242_cropped() {
        check_vector(
            include_bytes!("../../testdata/openh264-322x242.h264"),
            &Expect {
                profile_idc: 66,
                constraint_flags: 0xc0,
                level_idc: 13,
                chroma_format_idc: 1,
                frame_mbs_only: true,
                width: 322,
                height: 242,
                coded_width: 336,
                coded_height: 256,
                vui_present: true,
            },
        );
    }

    #[test]
    fn openh264_640x480() {
        check_vector(
            include_bytes!("../../testdata/openh264-640x480.h264"),
            &Expect {
                profile_idc: 66,
                constraint_flags: 0xc0,
                level_idc: 30,
                chroma_format_idc: 1,
                frame_mbs_only: true,
                width: 640,
                height: 480,
                coded_width: 640,
                coded_height: 480,
                vui_present: true,
            },
        );
    }

    #[test]
    fn real_vui_contains_emulation_prevention() {
        // x264's VUI timing info (num_units_in_tick = 1, ...) is escaped on the wire; the
        // parse above only succeeds if the reader removes the 0x03 bytes.
        let nal = find_sps(include_bytes!("../../testdata/x264-main-1280x720.h264"));
        assert!(nal.windows(3).any(|w| w == [0, 0, 3]));
    }

    // ---- hand-built SPSes ------------------------------------------------------------------

    #[test]
    fn builder_round_trip_baseline() {
        let sps = Sps::parse(&Fields::default().build()).unwrap();
        assert_eq!(
            sps,
            Sps {
                profile_idc: 66,
                constraint_flags: 0xc0,
                level_idc: 30,
                seq_parameter_set_id: 0,
                chroma_format_idc: 1,
                separate_colour_plane: false,
                bit_depth_luma: 8,
                bit_depth_chroma: 8,
                max_num_ref_frames: 1,
                frame_mbs_only: true,
                width: 320,
                height: 240,
                coded_width: 320,
                coded_height: 240,
                vui_present: false,
            }
        );
    }

    #[test]
    fn minimal_64x64_baseline() {
        // profile 66, level 3.0, id 0, log2_max_frame_num 4, POC type 2, 1 ref frame,
        // 4x4 MBs, frame_mbs_only, direct_8x8_inference, no cropping, no VUI.
        let sps = Sps::parse(&[0x67, 0x42, 0x00, 0x1e, 0xda, 0x10, 0x99]).unwrap();
        assert_eq!((sps.profile_idc, sps.level_idc), (66, 30));
        assert_eq!((sps.width, sps.height), (64, 64));
        assert!(!sps.vui_present);
        assert_eq!(
            Sps::parse(
                &Fields {
                    constraint_flags: 0,
                    width_mbs_minus1: 3,
                    height_map_units_minus1: 3,
                    ..Fields::default()
                }
                .build()
            ),
            Ok(sps)
        );
    }

    #[test]
    fn high_profile_fields() {
        let f = Fields {
            sps_id: 31,
            bit_depth_luma_minus8: 6,
            bit_depth_chroma_minus8: 2,
            max_num_ref_frames: 16,
            log2_max_frame_num_minus4: 12,
            poc_type: 0,
            log2_max_poc_lsb_minus4: 12,
            ..Fields::default().high(2)
        };
        let sps = Sps::parse(&f.build()).unwrap();
        assert_eq!(sps.seq_parameter_set_id, 31);
        assert_eq!(sps.chroma_format_idc, 2);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (14, 10));
        assert_eq!(sps.max_num_ref_frames, 16);
    }

    #[test]
    fn crop_units_per_chroma_format() {
        // 20x15 MBs = 320x240 coded; crop offsets (left, right, top, bottom) = (1, 2, 3, 4).
        let crop = Some([1, 2, 3, 4]);
        let cases = [
            // (chroma_format_idc, separate_colour_plane, frame_mbs_only, width, height)
            (0, false, true, 320 - 3, 240 - 7), // monochrome: 1, 1
            (1, false, true, 320 - 6, 240 - 14), // 4:2:0: 2, 2
            (2, false, true, 320 - 6, 240 - 7), // 4:2:2: 2, 1
            (3, false, true, 320 - 3, 240 - 7), // 4:4:4: 1, 1
            (3, true, true, 320 - 3, 240 - 7),  // separate planes: ChromaArrayType 0
            (0, false, false, 320 - 3, 480 - 14), // monochrome fields: 1, 2
            (1, false, false, 320 - 6, 480 - 28), // 4:2:0 fields: 2, 4
            (2, false, false, 320 - 6, 480 - 14), // 4:2:2 fields: 2, 2
            (3, true, false, 320 - 3, 480 - 14), // separate planes, fields: 1, 2
        ];
        for (chroma, separate, frame_mbs_only, width, height) in cases {
            let f = Fields {
                separate_colour_plane: separate,
                frame_mbs_only,
                crop,
                ..Fields::default().high(chroma)
            };
            let sps = Sps::parse(&f.build()).unwrap();
            let coded_height = if frame_mbs_only { 240 } else { 480 };
            assert_eq!(sps.chroma_format_idc, u8::try_from(chroma).unwrap());
            assert_eq!(sps.separate_colour_plane, separate);
            assert_eq!((sps.coded_width, sps.coded_height), (320, coded_height));
            assert_eq!(
                (sps.width, sps.height),
                (width, height),
                "chroma {chroma} sep {separate} fmo {frame_mbs_only}"
            );
        }
    }

    #[test]
    fn scaling_matrices_are_skipped() {
        // Explicit lists, a list that switches to the default matrix (delta -8 -> nextScale 0,
        // after which no more deltas are coded), absent lists, and the extreme deltas.
        let list16: Vec<i32> = (0..16).map(|j| if j % 2 == 0 { 3 } else { -2 }).collect();
        let list64: Vec<i32> = (0..64).map(|j| [127, -128, 5, 0][j % 4]).collect();
        let use_default = vec![-8];
        let lists = |n: usize| -> Vec<Option<Vec<i32>>> {
            (0..n)
                .map(|i| match (i % 3, i < 6) {
                    (0, true) => Some(list16.clone()),
                    (0, false) => Some(list64.clone()),
                    (1, _) => Some(use_default.clone()),
                    _ => None,
                })
                .collect()
        };
        for (chroma, n) in [(1, 8), (2, 8), (0, 8), (3, 12)] {
            let f = Fields {
                scaling_lists: Some(lists(n)),
                poc_type: 0,
                crop: Some([0, 5, 0, 3]),
                vui: Some(Vui {
                    extended_sar: true,
                    hrd_cpb_cnt_minus1: None,
                    bitstream_restriction: true,
                }),
                ..Fields::default().high(chroma)
            };
            let sps = Sps::parse(&f.build()).unwrap();
            assert_eq!(sps.chroma_format_idc, u8::try_from(chroma).unwrap());
            assert!(sps.vui_present);
            assert!(sps.width < 320 && sps.height < 240);
            // A scaling-list SPS truncated anywhere is an error.
            let nal = f.build();
            for len in 0..nal.len() {
                assert!(Sps::parse(&nal[..len]).is_err());
            }
        }
        // A 4:4:4 SPS written with only 8 lists mis-parses and must not be accepted as-is.
        let f = Fields {
            scaling_lists: Some(lists(8)),
            ..Fields::default().high(3)
        };
        assert!(Sps::parse(&f.build()).is_err());
    }

    #[test]
    fn delta_scale_out_of_range() {
        let mut lists = vec![None; 8];
        lists[2] = Some(vec![128]);
        let f = Fields {
            scaling_lists: Some(lists.clone()),
            ..Fields::default().high(1)
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(out_of_range("delta_scale", 128))
        );
        lists[2] = Some(vec![-129]);
        let f = Fields {
            scaling_lists: Some(lists),
            ..Fields::default().high(1)
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(out_of_range("delta_scale", -129))
        );
    }

    #[test]
    fn poc_type_1_cycle() {
        let f = Fields {
            poc_type: 1,
            poc_cycle: (0..255).map(|i| i - 100).collect(),
            ..Fields::default()
        };
        let nal = f.build();
        assert_eq!(
            Sps::parse(&nal).map(|s| (s.width, s.height)),
            Ok((320, 240))
        );
        for len in 0..nal.len() {
            assert!(Sps::parse(&nal[..len]).is_err());
        }
        let f = Fields {
            poc_type: 1,
            poc_cycle: vec![1; 256],
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(out_of_range("num_ref_frames_in_pic_order_cnt_cycle", 256))
        );
        let f = Fields {
            poc_type: 1,
            poc_cycle: vec![],
            poc_cycle_len: Some(u32::MAX - 1),
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(out_of_range(
                "num_ref_frames_in_pic_order_cnt_cycle",
                i64::from(u32::MAX - 1)
            ))
        );
    }

    #[test]
    fn poc_type_3_rejected() {
        let f = Fields {
            poc_type: 3,
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(out_of_range("pic_order_cnt_type", 3))
        );
    }

    #[test]
    fn exp_golomb_with_32_leading_zeros() {
        // seq_parameter_set_id coded with 32 leading zeros (escaped as 00 00 03 00 00 ...).
        let mut w = BitWriter::default();
        w.u(8, 66).u(8, 0).u(8, 30).u(32, 0).u(1, 1).u(32, 0);
        let sps = nal(&w.rbsp());
        assert!(sps.windows(3).any(|x| x == [0, 0, 3]));
        assert_eq!(Sps::parse(&sps), Err(SpsError::ExpGolombTooLong));
        // The same bits without escaping read the same.
        let mut raw = vec![0x67];
        raw.extend(w.rbsp());
        assert_eq!(Sps::parse(&raw), Err(SpsError::ExpGolombTooLong));
        // 31 leading zeros is a valid code, just an out-of-range id.
        let mut w = BitWriter::default();
        w.u(8, 66).u(8, 0).u(8, 30).ue(u32::MAX - 1);
        assert_eq!(
            Sps::parse(&nal(&w.rbsp())),
            Err(out_of_range(
                "seq_parameter_set_id",
                i64::from(u32::MAX - 1)
            ))
        );
    }

    #[test]
    fn crop_exceeding_picture() {
        // 320 px wide in 4:2:0: 160 crop units remove everything.
        for crop in [
            [160, 0, 0, 0],
            [80, 80, 0, 0],
            [0, 0, 120, 0],
            [0, 0, 60, 60],
            [1000, 0, 0, 0],
        ] {
            let f = Fields {
                crop: Some(crop),
                ..Fields::default()
            };
            assert_eq!(
                Sps::parse(&f.build()),
                Err(SpsError::CropExceedsPicture),
                "{crop:?}"
            );
        }
        // One unit less leaves a 2x2 picture.
        let f = Fields {
            crop: Some([79, 80, 59, 60]),
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()).map(|s| (s.width, s.height)),
            Ok((2, 2))
        );
        // Offsets whose sum or product overflows u32.
        for crop in [
            [u32::MAX - 1, u32::MAX - 1, 0, 0],
            [0, 0, 0x8000_0000, 0],
            [0x7fff_ffff, 0, 0, 0],
        ] {
            let f = Fields {
                crop: Some(crop),
                ..Fields::default()
            };
            assert_eq!(
                Sps::parse(&f.build()),
                Err(SpsError::CropExceedsPicture),
                "{crop:?}"
            );
        }
    }

    #[test]
    fn picture_size_limits() {
        let max = MAX_DIMENSION_MBS - 1;
        let f = Fields {
            width_mbs_minus1: max,
            height_map_units_minus1: max,
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()).map(|s| (s.width, s.height)),
            Ok((16384, 16384))
        );
        let f = Fields {
            width_mbs_minus1: max + 1,
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(SpsError::PictureTooLarge {
                width_mbs: 1025,
                height_mbs: 15
            })
        );
        let f = Fields {
            height_map_units_minus1: max + 1,
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(SpsError::PictureTooLarge {
                width_mbs: 20,
                height_mbs: 1025
            })
        );
        // Field coding doubles the frame height in MBs.
        let f = Fields {
            height_map_units_minus1: 511,
            frame_mbs_only: false,
            ..Fields::default()
        };
        assert_eq!(Sps::parse(&f.build()).map(|s| s.coded_height), Ok(16384));
        let f = Fields {
            height_map_units_minus1: 512,
            frame_mbs_only: false,
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(SpsError::PictureTooLarge {
                width_mbs: 20,
                height_mbs: 1026
            })
        );
        // The largest codes saturate rather than overflow.
        let f = Fields {
            width_mbs_minus1: u32::MAX - 1,
            height_map_units_minus1: u32::MAX - 1,
            frame_mbs_only: false,
            ..Fields::default()
        };
        assert_eq!(
            Sps::parse(&f.build()),
            Err(SpsError::PictureTooLarge {
                width_mbs: u32::MAX,
                height_mbs: u32::MAX
            })
        );
    }

    #[test]
    fn field_ranges() {
        let cases: [(Fields, &str, i64); 8] = [
            (
                Fields {
                    sps_id: 32,
                    ..Fields::default()
                },
                "seq_parameter_set_id",
                32,
            ),
            (
                Fields {
                    chroma_format_idc: 4,
                    ..Fields::default().high(1)
                },
                "chroma_format_idc",
                4,
            ),
            (
                Fields {
                    bit_depth_luma_minus8: 7,
                    ..Fields::default().high(1)
                },
                "bit_depth_luma_minus8",
                7,
            ),
            (
                Fields {
                    bit_depth_chroma_minus8: 7,
                    ..Fields::default().high(1)
                },
                "bit_depth_chroma_minus8",
                7,
            ),
            (
                Fields {
                    log2_max_frame_num_minus4: 13,
                    ..Fields::default()
                },
                "log2_max_frame_num_minus4",
                13,
            ),
            (
                Fields {
                    poc_type: 0,
                    log2_max_poc_lsb_minus4: 13,
                    ..Fields::default()
                },
                "log2_max_pic_order_cnt_lsb_minus4",
                13,
            ),
            (
                Fields {
                    max_num_ref_frames: 17,
                    ..Fields::default()
                },
                "max_num_ref_frames",
                17,
            ),
            (
                Fields {
                    vui: Some(Vui {
                        extended_sar: false,
                        hrd_cpb_cnt_minus1: Some(32),
                        bitstream_restriction: false,
                    }),
                    ..Fields::default()
                },
                "cpb_cnt_minus1",
                32,
            ),
        ];
        for (f, field, value) in cases {
            assert_eq!(Sps::parse(&f.build()), Err(out_of_range(field, value)));
        }
    }

    #[test]
    fn vui_with_hrd() {
        let f = Fields {
            vui: Some(Vui {
                extended_sar: true,
                hrd_cpb_cnt_minus1: Some(31),
                bitstream_restriction: true,
            }),
            ..Fields::default()
        };
        let nal = f.build();
        assert_eq!(Sps::parse(&nal).map(|s| s.vui_present), Ok(true));
        for len in 0..nal.len() {
            assert!(Sps::parse(&nal[..len]).is_err());
        }
    }

    #[test]
    fn trailing_bits() {
        let w = Fields::default().writer();
        // No stop bit: pad with zeros to a byte boundary.
        let mut bare = BitWriter {
            bits: w.bits.clone(),
        };
        while !bare.bits.len().is_multiple_of(8) {
            bare.bits.push(false);
        }
        bare.u(8, 0);
        assert_eq!(
            Sps::parse(&nal(&bare.raw())),
            Err(SpsError::InvalidTrailingBits)
        );
        // Extra data after the stop bit.
        let mut extra = w.rbsp();
        extra.push(0x80);
        assert_eq!(Sps::parse(&nal(&extra)), Err(SpsError::InvalidTrailingBits));
        // Trailing zero bytes are fine.
        let mut zeros = w.rbsp();
        zeros.extend([0, 0, 0]);
        assert!(Sps::parse(&nal(&zeros)).is_ok());
    }

    #[test]
    fn nal_header_checks() {
        assert_eq!(Sps::parse(&[]), Err(SpsError::Truncated));
        assert_eq!(Sps::parse(&[0x67]), Err(SpsError::Truncated));
        assert_eq!(
            Sps::parse(&[0x68, 0xce, 0x3c, 0x80]),
            Err(SpsError::NotSps { nal_type: 8 })
        );
        assert_eq!(
            Sps::parse(&[0x65, 0x88]),
            Err(SpsError::NotSps { nal_type: 5 })
        );
        let mut sps = Fields::default().build();
        sps[0] |= 0x80;
        assert_eq!(Sps::parse(&sps), Err(SpsError::ForbiddenZeroBit));
        // nal_ref_idc does not matter.
        sps[0] = 0x27;
        assert!(Sps::parse(&sps).is_ok());
    }

    #[test]
    fn error_messages() {
        let errors = [
            SpsError::Truncated,
            SpsError::NotSps { nal_type: 8 },
            SpsError::ForbiddenZeroBit,
            SpsError::ExpGolombTooLong,
            out_of_range("pic_order_cnt_type", 3),
            SpsError::PictureTooLarge {
                width_mbs: 2000,
                height_mbs: 10,
            },
            SpsError::CropExceedsPicture,
            SpsError::InvalidTrailingBits,
        ];
        for e in errors {
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            out_of_range("pic_order_cnt_type", 3).to_string(),
            "SPS field pic_order_cnt_type = 3 is out of range"
        );
        assert_eq!(
            SpsError::NotSps { nal_type: 8 }.to_string(),
            "NAL unit type 8 is not a sequence parameter set (type 7)"
        );
        assert!(
            SpsError::PictureTooLarge {
                width_mbs: 2000,
                height_mbs: 10
            }
            .to_string()
            .contains("1024x1024")
        );
    }

    // ---- properties ------------------------------------------------------------------------

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = Sps::parse(&bytes);
        }

        #[test]
        fn arbitrary_sps_payload_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let mut nal = vec![0x67];
            nal.extend(bytes);
            let _ = Sps::parse(&nal);
        }

        #[test]
        fn corrupted_real_sps_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..6),
        ) {
            let mut nal = find_sps(include_bytes!("../../testdata/x264-high-322x242.h264")).to_vec();
            for (i, bit) in flips {
                let i = i.index(nal.len() - 1) + 1; // keep the NAL header
                nal[i] ^= 1 << bit;
            }
            let _ = Sps::parse(&nal);
        }

        #[test]
        fn built_sps_dimensions(
            chroma in 0u32..4,
            separate in any::<bool>(),
            frame_mbs_only in any::<bool>(),
            w_mbs in 1u32..=64,
            h_units in 1u32..=32,
            crop in proptest::option::of([0u32..40, 0u32..40, 0u32..40, 0u32..40]),
            poc_type in 0u32..3,
            vui in any::<bool>(),
        ) {
            let separate = separate && chroma == 3;
            let f = Fields {
                separate_colour_plane: separate,
                frame_mbs_only,
                width_mbs_minus1: w_mbs - 1,
                height_map_units_minus1: h_units - 1,
                crop,
                poc_type,
                poc_cycle: vec![3, -3],
                vui: vui.then_some(Vui { extended_sar: false, hrd_cpb_cnt_minus1: Some(0), bitstream_restriction: true }),
                ..Fields::default().high(chroma)
            };
            let coded_w = w_mbs * 16;
            let coded_h = h_units * 16 * if frame_mbs_only { 1 } else { 2 };
            let cat = if separate { 0 } else { chroma };
            let (sw, sh) = match cat { 1 => (2, 2), 2 => (2, 1), _ => (1, 1) };
            let uy = sh * if frame_mbs_only { 1 } else { 2 };
            let [l, r, t, b] = crop.unwrap_or([0; 4]);
            let cw = i64::from(coded_w) - i64::from((l + r) * sw);
            let ch = i64::from(coded_h) - i64::from((t + b) * uy);
            let got = Sps::parse(&f.build());
            if cw > 0 && ch > 0 {
                let sps = got.unwrap();
                prop_assert_eq!((sps.coded_width, sps.coded_height), (coded_w, coded_h));
                prop_assert_eq!((i64::from(sps.width), i64::from(sps.height)), (cw, ch));
                prop_assert_eq!(sps.vui_present, vui);
            } else {
                prop_assert_eq!(got, Err(SpsError::CropExceedsPicture));
            }
        }
    }
}
