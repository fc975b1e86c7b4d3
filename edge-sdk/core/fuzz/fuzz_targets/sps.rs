//! H.264 SPS reader: `Sps::parse` on arbitrary bytes, and on the same bytes behind an SPS NAL
//! header (0x67), so the fuzzer spends its time in the SPS body.
//!
//! Invariants when it parses:
//! - 0 < width <= coded_width <= 16384 and 0 < height <= coded_height <= 16384;
//! - coded sizes are whole macroblocks (multiples of 16; of 32 in height for field coding);
//! - the cropped-off amount is a multiple of the crop unit (Table 6-1);
//! - ranges: chroma_format_idc <= 3, bit depths 8..=14, sps id <= 31, max_num_ref_frames <= 16,
//!   separate colour planes only with 4:4:4, non-high profiles are 4:2:0 8-bit;
//! - profile / constraint / level are the first three payload bytes (when not escaped);
//! - trailing zero bytes do not change the result (documented), and parsing is deterministic.
#![no_main]

use flowcloud_core::h264::Sps;
use flowcloud_core::h264::sps::MAX_DIMENSION_MBS;
use libfuzzer_sys::fuzz_target;

const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

fn check(nal: &[u8]) {
    let result = Sps::parse(nal);
    assert_eq!(Sps::parse(nal), result, "parse is not deterministic");
    let Ok(sps) = result else {
        return;
    };
    let max = MAX_DIMENSION_MBS * 16;
    assert!(max == 16384);
    assert!(
        sps.width > 0 && sps.width <= sps.coded_width && sps.coded_width <= max,
        "{sps:?}"
    );
    assert!(
        sps.height > 0 && sps.height <= sps.coded_height && sps.coded_height <= max,
        "{sps:?}"
    );
    assert_eq!(sps.coded_width % 16, 0, "{sps:?}");
    assert_eq!(
        sps.coded_height % if sps.frame_mbs_only { 16 } else { 32 },
        0,
        "{sps:?}"
    );

    let chroma_array_type = if sps.separate_colour_plane {
        0
    } else {
        sps.chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_unit_y = sub_h * if sps.frame_mbs_only { 1 } else { 2 };
    assert_eq!((sps.coded_width - sps.width) % sub_w, 0, "{sps:?}");
    assert_eq!((sps.coded_height - sps.height) % crop_unit_y, 0, "{sps:?}");

    assert!(sps.chroma_format_idc <= 3, "{sps:?}");
    assert!(
        !sps.separate_colour_plane || sps.chroma_format_idc == 3,
        "{sps:?}"
    );
    assert!((8..=14).contains(&sps.bit_depth_luma), "{sps:?}");
    assert!((8..=14).contains(&sps.bit_depth_chroma), "{sps:?}");
    assert!(sps.seq_parameter_set_id <= 31, "{sps:?}");
    assert!(sps.max_num_ref_frames <= 16, "{sps:?}");
    assert_eq!(nal[0] & 0x9f, 0x07);
    // (Unless an emulation prevention byte sits among them.)
    if !nal[1..4].windows(2).any(|w| w == [0, 0]) {
        assert_eq!(
            (sps.profile_idc, sps.constraint_flags, sps.level_idc),
            (nal[1], nal[2], nal[3])
        );
    }
    if !HIGH_PROFILES.contains(&sps.profile_idc) {
        assert_eq!(
            (
                sps.chroma_format_idc,
                sps.bit_depth_luma,
                sps.bit_depth_chroma,
                sps.separate_colour_plane
            ),
            (1, 8, 8, false),
            "{sps:?}"
        );
    }

    // "Trailing 0x00 bytes after the SPS are tolerated."
    let mut padded = nal.to_vec();
    padded.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        Sps::parse(&padded),
        Ok(sps),
        "trailing zero bytes changed the result"
    );
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut with_header = Vec::with_capacity(data.len() + 1);
    with_header.push(0x67);
    with_header.extend_from_slice(data);
    check(&with_header);
});
