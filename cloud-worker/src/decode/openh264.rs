//! The CPU decoder backend: Cisco's openh264 through the `openh264` crate (built from its
//! bundled source, so nothing is loaded at run time).
//!
//! openh264 decodes constrained baseline, main and high profile 4:2:0 8-bit progressive
//! streams (CAVLC and CABAC, 8x8 transforms, scaling matrices). Everything else is refused
//! with [`DecodeError::Unsupported`] by the SPS check in front of it, before openh264 sees it.
//!
//! Behaviours worth knowing (see the tests):
//!
//! - Display delay 0: frames are decoded with `DecodeFrameNoDelay` *and* the crate's "flush
//!   after decode" is on. `DecodeFrameNoDelay` alone still holds the first picture of a main
//!   or high profile stream back (observed with the x264 `tune=zerolatency` main and high
//!   test vectors: their IDR came out only with the next access unit; presumably openh264
//!   cannot rule out picture reordering outside baseline); the flush hands it out
//!   at once. A picture therefore comes out of the call that fed its access unit. The price:
//!   a stream *with* B-frames (picture reordering) is output in decoding order, not display
//!   order — FlowCloud's low-latency encoders never produce B-frames.
//! - Error concealment is off: a slice with a missing reference or damaged data is an error,
//!   not a silently smeared picture, so the keyframe gate can ask for an IDR.
//! - openh264 crops to the SPS's frame cropping rectangle itself; the planes it returns are
//!   strided views into its own buffers, valid until the next call, so they are copied row by
//!   row into the caller's [`I420Frame`].

use ::openh264::OpenH264API;
use ::openh264::decoder::{Decoder as Oh264, DecoderConfig as Oh264Config, Flush};
use ::openh264::formats::YUVSource;

use super::{DecodeError, DecodeOutcome, Decoder, DecoderConfig, check_access_unit};
use crate::frame::I420Frame;

pub(crate) const BACKEND: &str = "openh264";

/// openh264's `DECODING_STATE` bits (`codec_def.h`), for error messages and classification.
const DECODING_STATES: [(i64, &str); 11] = [
    (0x1, "frame pending"),
    (0x2, "reference picture lost"),
    (0x4, "bitstream error"),
    (0x8, "dependent layer lost"),
    (0x10, "no parameter sets (SPS/PPS) for the slice"),
    (0x20, "data error concealed"),
    (0x40, "reference list null pointers"),
    (0x1000, "invalid argument"),
    (0x2000, "decoder not initialised"),
    (0x4000, "out of memory"),
    (0x8000, "destination buffer needs expansion"),
];
/// States that mean openh264 itself failed, not the bitstream.
const BACKEND_FAILURE_STATES: i64 = 0x1000 | 0x2000 | 0x4000 | 0x8000;

/// An H.264 decoder running openh264 on the CPU. One per stream.
pub struct OpenH264Decoder {
    config: DecoderConfig,
    /// `None` until the first access unit after creation or [`Decoder::reset`]: the library
    /// decoder is created lazily so that `reset` cannot fail.
    inner: Option<Oh264>,
}

impl std::fmt::Debug for OpenH264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenH264Decoder")
            .field("config", &self.config)
            .field("initialised", &self.inner.is_some())
            .finish()
    }
}

impl OpenH264Decoder {
    /// A decoder bounded by `config`. The openh264 instance is created on the first
    /// [`Decoder::decode`] call, so this cannot fail.
    #[must_use]
    pub const fn new(config: DecoderConfig) -> Self {
        Self {
            config,
            inner: None,
        }
    }

    fn inner(&mut self) -> Result<&mut Oh264, DecodeError> {
        if self.inner.is_none() {
            let config = Oh264Config::new().flush_after_decode(Flush::Flush);
            let decoder = Oh264::with_api_config(OpenH264API::from_source(), config)
                .map_err(|e| backend_error(&e))?;
            self.inner = Some(decoder);
        }
        self.inner.as_mut().ok_or_else(|| DecodeError::Backend {
            backend: BACKEND,
            reason: "decoder instance missing after creation".to_owned(),
        })
    }
}

impl Decoder for OpenH264Decoder {
    fn decode(
        &mut self,
        access_unit: &[u8],
        out: &mut I420Frame,
    ) -> Result<DecodeOutcome, DecodeError> {
        check_access_unit(access_unit, self.config)?;
        let decoder = self.inner()?;
        let picture = match decoder.decode(access_unit) {
            Ok(Some(picture)) => picture,
            Ok(None) => return Ok(DecodeOutcome::NoPicture),
            Err(e) => return Err(decode_error(&e)),
        };
        copy_picture(&picture, out)?;
        Ok(DecodeOutcome::Frame)
    }

    fn reset(&mut self) {
        // Dropping the instance uninitialises it; the next decode creates a fresh one.
        self.inner = None;
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}

/// Names the `DECODING_STATE` bits set in an openh264 return code.
fn describe_state(code: i64) -> String {
    let names: Vec<&str> = DECODING_STATES
        .iter()
        .filter(|(bit, _)| code & bit != 0)
        .map(|&(_, name)| name)
        .collect();
    if names.is_empty() {
        format!("openh264 returned {code:#x}")
    } else {
        format!("openh264 returned {code:#x} ({})", names.join(", "))
    }
}

fn backend_error(e: &::openh264::Error) -> DecodeError {
    let reason = match e.native_code() {
        0 => e.to_string(),
        code => describe_state(code),
    };
    DecodeError::Backend {
        backend: BACKEND,
        reason,
    }
}

fn decode_error(e: &::openh264::Error) -> DecodeError {
    match e.native_code() {
        // A message from the Rust wrapper, not a decoding state (a failed flush).
        0 => backend_error(e),
        code if code & BACKEND_FAILURE_STATES != 0 => backend_error(e),
        code => DecodeError::Corrupt {
            reason: describe_state(code),
        },
    }
}

/// Copies a strided openh264 picture into `out`, resizing `out`'s planes only if its size (or
/// a plane's length) does not match.
fn copy_picture(picture: &impl YUVSource, out: &mut I420Frame) -> Result<(), DecodeError> {
    let (width, height) = picture.dimensions();
    let (y_stride, u_stride, v_stride) = picture.strides();
    let (w, h) = (
        u32::try_from(width).map_err(|_| bad_output("width overflows u32"))?,
        u32::try_from(height).map_err(|_| bad_output("height overflows u32"))?,
    );
    if w == 0 || h == 0 {
        return Err(bad_output("empty picture"));
    }
    let (cw, ch) = I420Frame::chroma_size(w, h);
    let (cw, ch) = (cw as usize, ch as usize);
    check_plane(picture.y(), width, height, y_stride, "Y")?;
    check_plane(picture.u(), cw, ch, u_stride, "U")?;
    check_plane(picture.v(), cw, ch, v_stride, "V")?;

    out.width = w;
    out.height = h;
    out.y.resize(width * height, 0);
    out.u.resize(cw * ch, 0);
    out.v.resize(cw * ch, 0);
    copy_plane(picture.y(), y_stride, &mut out.y, width);
    copy_plane(picture.u(), u_stride, &mut out.u, cw);
    copy_plane(picture.v(), v_stride, &mut out.v, cw);
    Ok(())
}

fn bad_output(what: &str) -> DecodeError {
    DecodeError::Backend {
        backend: BACKEND,
        reason: format!("inconsistent output picture: {what}"),
    }
}

/// Checks that a `width`×`rows` plane with `stride` fits in `plane`.
fn check_plane(
    plane: &[u8],
    width: usize,
    rows: usize,
    stride: usize,
    name: &str,
) -> Result<(), DecodeError> {
    let needed = rows
        .checked_sub(1)
        .and_then(|r| r.checked_mul(stride))
        .and_then(|n| n.checked_add(width));
    match needed {
        Some(needed) if stride >= width && plane.len() >= needed => Ok(()),
        _ => Err(bad_output(&format!(
            "{name} plane of {} bytes cannot hold {width}x{rows} with stride {stride}",
            plane.len()
        ))),
    }
}

/// Row-by-row copy of a checked plane into a tightly packed one.
fn copy_plane(src: &[u8], stride: usize, dst: &mut [u8], width: usize) {
    for (dst_row, src_row) in dst.chunks_exact_mut(width).zip(src.chunks(stride)) {
        dst_row.copy_from_slice(&src_row[..width]);
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use flowcloud_core::h264::{NalHeader, NalType, Sps, annexb};

    use super::*;
    use crate::decode::split_access_units;

    /// The edge SDK core's H.264 test vectors (testdata/README.md there).
    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../edge-sdk/core/testdata")
    }

    fn access_units(name: &str) -> Vec<Vec<u8>> {
        let data = std::fs::read(testdata().join(name)).unwrap();
        split_access_units(&data).unwrap()
    }

    fn empty_frame() -> I420Frame {
        I420Frame::filled(0, 0, (0, 0, 0))
    }

    fn decoder() -> OpenH264Decoder {
        OpenH264Decoder::new(DecoderConfig::default())
    }

    /// Decodes every access unit, expecting a picture from each.
    fn decode_all(d: &mut OpenH264Decoder, aus: &[Vec<u8>]) -> Vec<I420Frame> {
        let mut out = empty_frame();
        aus.iter()
            .enumerate()
            .map(|(i, au)| {
                assert_eq!(d.decode(au, &mut out), Ok(DecodeOutcome::Frame), "AU {i}");
                out.clone()
            })
            .collect()
    }

    fn first_sps(aus: &[Vec<u8>]) -> Sps {
        aus.iter()
            .flat_map(|au| annexb::nal_units(au).unwrap())
            .find(|n| NalHeader(n[0]).nal_type() == NalType::Sps)
            .map(|n| Sps::parse(n).unwrap())
            .unwrap()
    }

    enum Expect {
        /// Every access unit decodes; (pictures, width, height).
        Frames(usize, u32, u32),
        /// openh264 cannot decode it: the first access unit is `Unsupported`, the rest errors.
        Unsupported(usize),
    }

    /// Every test vector, with what the README says it holds.
    const VECTORS: [(&str, Expect); 9] = [
        ("x264-baseline-320x240.h264", Expect::Frames(3, 320, 240)),
        ("x264-high-322x242.h264", Expect::Frames(3, 322, 242)),
        ("x264-main-1280x720.h264", Expect::Frames(2, 1280, 720)),
        ("x264-high-interlaced-320x240.h264", Expect::Unsupported(3)),
        ("x264-high422-162x98.h264", Expect::Unsupported(3)),
        ("x264-high444-176x144.h264", Expect::Unsupported(3)),
        ("openh264-322x242.h264", Expect::Frames(3, 322, 242)),
        ("openh264-640x480.h264", Expect::Frames(2, 640, 480)),
        ("gstreamer/ball-160x120.h264", Expect::Frames(10, 160, 120)),
    ];

    #[test]
    fn every_test_vector_is_listed() {
        let mut found = Vec::new();
        for sub in ["", "gstreamer"] {
            for entry in std::fs::read_dir(testdata().join(sub)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".h264") {
                    found.push(if sub.is_empty() {
                        name
                    } else {
                        format!("{sub}/{name}")
                    });
                }
            }
        }
        found.sort();
        let mut listed: Vec<String> = VECTORS.iter().map(|(n, _)| (*n).to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed, "add new test vectors to VECTORS");
    }

    #[test]
    fn decodes_every_test_vector_at_its_sps_size() {
        for (name, expect) in VECTORS {
            let aus = access_units(name);
            let sps = first_sps(&aus);
            let mut d = decoder();
            match expect {
                Expect::Frames(count, width, height) => {
                    assert_eq!(aus.len(), count, "{name}: access units");
                    assert_eq!((sps.width, sps.height), (width, height), "{name}: SPS");
                    let frames = decode_all(&mut d, &aus);
                    let (cw, ch) = I420Frame::chroma_size(width, height);
                    for f in &frames {
                        assert_eq!((f.width, f.height), (width, height), "{name}");
                        assert_eq!(f.y.len(), (width * height) as usize, "{name}");
                        assert_eq!(f.u.len(), (cw * ch) as usize, "{name}");
                        assert_eq!(f.v.len(), (cw * ch) as usize, "{name}");
                    }
                }
                Expect::Unsupported(count) => {
                    assert_eq!(aus.len(), count, "{name}: access units");
                    let mut out = empty_frame();
                    let first = d.decode(&aus[0], &mut out);
                    assert!(
                        matches!(first, Err(DecodeError::Unsupported { .. })),
                        "{name}: {first:?}"
                    );
                    for au in &aus[1..] {
                        // The SPS never reached openh264, so its slices have no parameter sets.
                        let r = d.decode(au, &mut out);
                        assert!(
                            matches!(r, Err(DecodeError::Corrupt { .. })),
                            "{name}: {r:?}"
                        );
                    }
                    assert_eq!(out, empty_frame(), "{name}: output untouched");
                }
            }
        }
    }

    #[test]
    fn unsupported_streams_are_also_refused_by_openh264_itself() {
        // Without the SPS check openh264 silently ignores these SPSes and fails every slice
        // with "no parameter sets"; the check turns that into a precise Unsupported.
        for name in [
            "x264-high-interlaced-320x240.h264",
            "x264-high422-162x98.h264",
            "x264-high444-176x144.h264",
        ] {
            let mut raw = Oh264::with_api_config(
                OpenH264API::from_source(),
                Oh264Config::new().flush_after_decode(Flush::Flush),
            )
            .unwrap();
            for au in access_units(name) {
                let e = raw.decode(&au).err().map(|e| decode_error(&e));
                assert!(
                    matches!(e, Some(DecodeError::Corrupt { .. })),
                    "{name}: {e:?}"
                );
            }
        }
    }

    /// Reads GStreamer's raw I420 output (`GstVideoInfo` default layout: each plane's rows
    /// padded to 4 bytes, plane heights rounded to 2) as tightly packed frames.
    fn read_gst_i420(raw: &[u8], width: u32, height: u32) -> Vec<I420Frame> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (ys, cs) = (w.next_multiple_of(4), cw.next_multiple_of(4));
        let (y_size, c_size) = (ys * h.next_multiple_of(2), cs * h.next_multiple_of(2) / 2);
        let frame_size = y_size + 2 * c_size;
        assert_eq!(raw.len() % frame_size, 0, "reference size");
        let pack = |plane: &[u8], stride, width, rows| -> Vec<u8> {
            plane
                .chunks(stride)
                .take(rows)
                .flat_map(|row| &row[..width])
                .copied()
                .collect()
        };
        raw.chunks_exact(frame_size)
            .map(|f| I420Frame {
                width,
                height,
                y: pack(&f[..y_size], ys, w, h),
                u: pack(&f[y_size..y_size + c_size], cs, cw, ch),
                v: pack(&f[y_size + c_size..], cs, cw, ch),
            })
            .collect()
    }

    /// Runs a gst-launch-1.0 pipeline (paths must not contain spaces); `None` if
    /// gst-launch-1.0 is not installed and CI is unset (under CI its absence fails the test).
    fn gst_launch(pipeline: &str) -> Option<std::process::ExitStatus> {
        match Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .status()
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
                assert!(!ci, "gst-launch-1.0 is required under CI");
                eprintln!("skipping: gst-launch-1.0 not found");
                None
            }
            s => Some(s.unwrap()),
        }
    }

    /// Decodes `path` with GStreamer's libav decoder; `None` if gst-launch-1.0 is missing.
    fn gstreamer_reference(path: &Path, width: u32, height: u32) -> Option<Vec<I420Frame>> {
        let out = std::env::temp_dir().join(format!(
            "flowcloud-decode-ref-{}-{}.yuv",
            std::process::id(),
            path.file_stem().unwrap().to_string_lossy()
        ));
        let status = gst_launch(&format!(
            "filesrc location={} ! h264parse ! avdec_h264 ! video/x-raw,format=I420 \
             ! filesink location={}",
            path.display(),
            out.display()
        ))?;
        assert!(
            status.success(),
            "gst-launch-1.0 failed on {}",
            path.display()
        );
        let raw = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        Some(read_gst_i420(&raw, width, height))
    }

    #[test]
    fn output_is_bit_exact_with_gstreamer_avdec_h264() {
        // x264-baseline-320x240 is the one the brief names; the others add cropping
        // (322x242), CABAC (main), 8x8 transforms and PPS scaling matrices (high, cqm=jvt),
        // two slices per picture and a second IDR (ball).
        for (name, expect) in VECTORS {
            let Expect::Frames(count, width, height) = expect else {
                continue;
            };
            let path = testdata().join(name);
            let Some(reference) = gstreamer_reference(&path, width, height) else {
                return;
            };
            assert_eq!(reference.len(), count, "{name}: GStreamer frames");
            let ours = decode_all(&mut decoder(), &access_units(name));
            for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
                assert!(a == b, "{name}: frame {i} differs from GStreamer's");
            }
        }
    }

    /// A minimal MSB-first bit writer for hand-built SPSes.
    #[derive(Default)]
    struct Bits {
        bytes: Vec<u8>,
        n: usize,
    }

    impl Bits {
        fn bit(&mut self, b: bool) {
            if self.n.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if b {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.n % 8);
            }
            self.n += 1;
        }
        fn u(&mut self, bits: u32, v: u32) {
            for i in (0..bits).rev() {
                self.bit(v >> i & 1 != 0);
            }
        }
        fn ue(&mut self, v: u32) {
            let len = 32 - (v + 1).leading_zeros();
            self.u(len - 1, 0);
            self.u(len, v + 1);
        }
        /// rbsp_trailing_bits, then emulation prevention: the NAL unit payload.
        fn finish(mut self) -> Vec<u8> {
            self.bit(true);
            while !self.n.is_multiple_of(8) {
                self.bit(false);
            }
            let mut out = Vec::new();
            let mut zeros = 0;
            for b in self.bytes {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    /// An Annex-B baseline SPS NAL unit (with start code) for a `w_mbs`×`h_mbs` picture.
    fn sps_au(w_mbs: u32, h_mbs: u32) -> Vec<u8> {
        let mut b = Bits::default();
        b.u(8, 66); // profile_idc
        b.u(8, 0xc0); // constraint flags
        b.u(8, 52); // level_idc
        b.ue(0); // seq_parameter_set_id
        b.ue(0); // log2_max_frame_num_minus4
        b.ue(2); // pic_order_cnt_type
        b.ue(1); // max_num_ref_frames
        b.bit(false); // gaps_in_frame_num_value_allowed_flag
        b.ue(w_mbs - 1);
        b.ue(h_mbs - 1);
        b.bit(true); // frame_mbs_only_flag
        b.bit(true); // direct_8x8_inference_flag
        b.bit(false); // frame_cropping_flag
        b.bit(false); // vui_parameters_present_flag
        let mut au = vec![0, 0, 0, 1, 0x67];
        au.extend(b.finish());
        au
    }

    #[test]
    fn hand_built_sps_parses_as_intended() {
        let sps = Sps::parse(&sps_au(20, 15)[4..]).unwrap();
        assert_eq!((sps.width, sps.height), (320, 240));
        let sps = Sps::parse(&sps_au(1024, 1024)[4..]).unwrap();
        assert_eq!((sps.width, sps.height), (16384, 16384));
    }

    #[test]
    fn huge_sps_is_refused_before_openh264_and_decoder_recovers() {
        let mut d = decoder();
        let mut out = empty_frame();
        let aus = access_units("x264-baseline-320x240.h264");
        // Mid-stream, as a new SPS would come.
        assert_eq!(d.decode(&aus[0], &mut out), Ok(DecodeOutcome::Frame));
        let mut huge = sps_au(1024, 1024);
        huge.extend_from_slice(&aus[1]);
        assert_eq!(
            d.decode(&huge, &mut out),
            Err(DecodeError::TooLarge {
                width: 16384,
                height: 16384
            })
        );
        // Larger than the SPS reader's own cap: still a typed TooLarge.
        assert!(matches!(
            d.decode(&sps_au(2048, 16), &mut out),
            Err(DecodeError::TooLarge { width: 32768, .. })
        ));
        // Nothing reached openh264: the stream goes on undisturbed (the refused access unit's
        // P-frame was refused with it, so it is sent again).
        assert_eq!(d.decode(&aus[1], &mut out), Ok(DecodeOutcome::Frame));
        assert_eq!(d.decode(&aus[2], &mut out), Ok(DecodeOutcome::Frame));
        d.reset();
        assert_eq!(decode_all(&mut d, &aus), decode_all(&mut decoder(), &aus));
    }

    #[test]
    fn size_limit_uses_display_size_and_allows_macroblock_rounding() {
        let small = DecoderConfig {
            max_width: 322,
            max_height: 242,
        };
        // 322x242 is coded as 336x256: within 322x242 rounded up to macroblocks.
        let aus = access_units("openh264-322x242.h264");
        decode_all(&mut OpenH264Decoder::new(small), &aus);
        let mut out = empty_frame();
        let r =
            OpenH264Decoder::new(small).decode(&access_units("openh264-640x480.h264")[0], &mut out);
        assert_eq!(
            r,
            Err(DecodeError::TooLarge {
                width: 640,
                height: 480
            })
        );
        // A 16x16 display window cropped out of a 2048x2048 coded picture is still too large.
        let mut b = Bits::default();
        b.u(8, 66);
        b.u(8, 0xc0);
        b.u(8, 52);
        for v in [0, 0, 2, 1] {
            b.ue(v);
        }
        b.bit(false);
        b.ue(127);
        b.ue(127);
        b.bit(true);
        b.bit(true);
        b.bit(true); // frame_cropping_flag: crop units are 2 luma samples
        b.ue(0);
        b.ue(1016);
        b.ue(0);
        b.ue(1016);
        b.bit(false);
        let mut cropped = vec![0, 0, 0, 1, 0x67];
        cropped.extend(b.finish());
        let sps = Sps::parse(&cropped[4..]).unwrap();
        assert_eq!((sps.width, sps.height, sps.coded_width), (16, 16, 2048));
        let r = OpenH264Decoder::new(small).decode(&cropped, &mut out);
        assert!(
            matches!(
                r,
                Err(DecodeError::TooLarge {
                    width: 2048,
                    height: 2048,
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn truncated_access_units_never_panic_and_reset_recovers() {
        let aus = access_units("x264-baseline-320x240.h264");
        let clean = decode_all(&mut decoder(), &aus);
        let mut d = decoder();
        let mut out = empty_frame();
        for cut in [5, 20, 40, aus[0].len() / 2, aus[0].len() - 1] {
            let r = d.decode(&aus[0][..cut], &mut out);
            assert!(
                matches!(r, Err(_) | Ok(DecodeOutcome::NoPicture)),
                "cut at {cut}: {r:?}"
            );
            d.reset();
        }
        // A truncated P-frame after a good IDR.
        assert_eq!(d.decode(&aus[0], &mut out), Ok(DecodeOutcome::Frame));
        let r = d.decode(&aus[1][..aus[1].len() / 2], &mut out);
        assert!(matches!(r, Err(_) | Ok(DecodeOutcome::NoPicture)), "{r:?}");
        d.reset();
        assert_eq!(decode_all(&mut d, &aus), clean);
    }

    /// xorshift64: deterministic noise without a dependency.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn random_slice_data_after_valid_parameter_sets_is_an_error_not_a_panic() {
        let aus = access_units("x264-baseline-320x240.h264");
        let clean = decode_all(&mut decoder(), &aus);
        // SPS and PPS of the stream, as the IDR access unit carries them.
        let params: Vec<u8> = annexb::nal_units(&aus[0])
            .unwrap()
            .filter(|n| matches!(NalHeader(n[0]).nal_type(), NalType::Sps | NalType::Pps))
            .flat_map(|n| annexb::START_CODE.iter().chain(n).copied())
            .collect();
        let mut d = decoder();
        let mut out = empty_frame();
        let mut outcomes = [0usize; 3];
        for seed in 0..200u64 {
            let mut au = params.clone();
            au.extend_from_slice(&annexb::START_CODE);
            au.push(if seed % 2 == 0 { 0x65 } else { 0x41 });
            let len = 1 + (seed as usize * 37) % 3000;
            au.extend(noise(seed, len).into_iter().map(|b| b.max(4))); // no start codes
            match d.decode(&au, &mut out) {
                Ok(DecodeOutcome::Frame) => outcomes[0] += 1,
                Ok(DecodeOutcome::NoPicture) => outcomes[1] += 1,
                Err(DecodeError::Corrupt { .. }) => outcomes[2] += 1,
                Err(e) => panic!("seed {seed}: {e:?}"),
            }
            d.reset();
        }
        // With error concealment off, openh264 has refused every one of these (all Corrupt).
        assert_eq!(outcomes[0], 0, "noise decoded into a picture: {outcomes:?}");
        // Pure noise, framed or not, without parameter sets.
        for seed in 0..100u64 {
            let r = d.decode(&noise(seed, 500), &mut out);
            assert!(matches!(r, Err(_) | Ok(DecodeOutcome::NoPicture)), "{r:?}");
        }
        d.reset();
        assert_eq!(decode_all(&mut d, &aus), clean);
    }

    #[test]
    fn slices_before_any_idr_are_corrupt() {
        let aus = access_units("x264-baseline-320x240.h264");
        let mut out = empty_frame();
        let r = decoder().decode(&aus[1], &mut out);
        assert!(
            matches!(&r, Err(DecodeError::Corrupt { reason }) if reason.contains("no parameter sets")),
            "{r:?}"
        );
    }

    #[test]
    fn parameter_sets_alone_give_no_picture() {
        let aus = access_units("x264-baseline-320x240.h264");
        let params: Vec<u8> = annexb::nal_units(&aus[0])
            .unwrap()
            .filter(|n| !matches!(NalHeader(n[0]).nal_type(), NalType::IdrSlice))
            .flat_map(|n| annexb::START_CODE.iter().chain(n).copied())
            .collect();
        let slices: Vec<u8> = annexb::nal_units(&aus[0])
            .unwrap()
            .filter(|n| NalHeader(n[0]).nal_type() == NalType::IdrSlice)
            .flat_map(|n| annexb::START_CODE.iter().chain(n).copied())
            .collect();
        let mut d = decoder();
        let mut out = I420Frame::filled(2, 2, (1, 2, 3));
        assert_eq!(d.decode(&params, &mut out), Ok(DecodeOutcome::NoPicture));
        assert_eq!(d.decode(&[], &mut out), Ok(DecodeOutcome::NoPicture));
        assert_eq!(out, I420Frame::filled(2, 2, (1, 2, 3)));
        // The parameter sets stick: the IDR's slices alone now decode.
        assert_eq!(d.decode(&slices, &mut out), Ok(DecodeOutcome::Frame));
        assert_eq!(out, decode_all(&mut decoder(), &aus)[0]);
    }

    #[test]
    fn output_frame_is_reused_and_resized_only_on_size_change() {
        let mut d = decoder();
        let mut out = empty_frame();
        let aus = access_units("gstreamer/ball-160x120.h264");
        assert_eq!(d.decode(&aus[0], &mut out), Ok(DecodeOutcome::Frame));
        let ptrs = (out.y.as_ptr(), out.u.as_ptr(), out.v.as_ptr());
        for au in &aus[1..] {
            assert_eq!(d.decode(au, &mut out), Ok(DecodeOutcome::Frame));
            assert_eq!((out.y.as_ptr(), out.u.as_ptr(), out.v.as_ptr()), ptrs);
        }
        // A new stream size on the same decoder (the sender restarted its encoder).
        let big = access_units("openh264-640x480.h264");
        assert_eq!(d.decode(&big[0], &mut out), Ok(DecodeOutcome::Frame));
        assert_eq!(
            (out.width, out.height, out.y.len(), out.u.len()),
            (640, 480, 640 * 480, 320 * 240)
        );
        // And a frame handed in with inconsistent plane lengths is repaired.
        let mut odd = I420Frame::filled(640, 480, (0, 0, 0));
        odd.v.truncate(7);
        assert_eq!(d.decode(&big[1], &mut odd), Ok(DecodeOutcome::Frame));
        assert_eq!(odd.v.len(), 320 * 240);
    }

    #[test]
    fn loss_then_gate_then_idr_recovers_bit_exactly() {
        use crate::decode::{Admit, KeyframeGate, KeyframeGateConfig};
        use std::time::{Duration, Instant};

        // ball: IDR at 0 and 5, P elsewhere. AU 2 is lost.
        let aus = access_units("gstreamer/ball-160x120.h264");
        let clean = decode_all(&mut decoder(), &aus);
        let t0 = Instant::now();
        let at = |i: usize| t0 + Duration::from_millis(33 * i as u64);
        let mut gate = KeyframeGate::new(KeyframeGateConfig::default(), at(0));
        let mut d = decoder();
        let mut out = empty_frame();
        let mut decoded = Vec::new();
        assert!(gate.poll_pli(at(0)));
        for (i, au) in aus.iter().enumerate() {
            if i == 2 {
                gate.on_loss(at(i));
                assert!(gate.poll_pli(at(i)));
                continue;
            }
            assert!(
                !gate.poll_pli(at(i)),
                "AU {i}: one PLI per wait within 500 ms"
            );
            let keyframe = i % 5 == 0;
            if gate.admit(au, keyframe, at(i)) == Admit::Drop {
                continue;
            }
            match d.decode(au, &mut out) {
                Ok(DecodeOutcome::Frame) => decoded.push((i, out.clone())),
                Ok(DecodeOutcome::NoPicture) => {}
                Err(_) => {
                    d.reset();
                    gate.on_decode_error(at(i));
                }
            }
        }
        let indices: Vec<usize> = decoded.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, [0, 1, 5, 6, 7, 8, 9]);
        for (i, f) in &decoded {
            assert!(*f == clean[*i], "frame {i}");
        }
        let s = gate.stats();
        assert_eq!(
            (
                s.dropped_while_waiting,
                s.losses,
                s.resets,
                s.plis_requested
            ),
            (2, 1, 0, 2)
        );
    }

    #[test]
    fn openh264_without_the_gate_fails_on_the_frame_after_a_loss() {
        // Documents openh264's behaviour with error concealment off: a P-frame whose
        // reference was lost is refused (frame_num gap), not decoded from a stale reference.
        let aus = access_units("gstreamer/ball-160x120.h264");
        let mut d = decoder();
        let mut out = empty_frame();
        assert_eq!(d.decode(&aus[0], &mut out), Ok(DecodeOutcome::Frame));
        assert_eq!(d.decode(&aus[1], &mut out), Ok(DecodeOutcome::Frame));
        let r = d.decode(&aus[3], &mut out);
        assert!(matches!(r, Err(DecodeError::Corrupt { .. })), "{r:?}");
    }

    #[test]
    fn bframe_streams_come_out_in_decoding_order() {
        // Display delay 0 has a price on streams with B-frames (which FlowCloud's encoders
        // never make): every picture comes out as soon as it is decoded, in decoding order.
        let path =
            std::env::temp_dir().join(format!("flowcloud-bframes-{}.h264", std::process::id()));
        let Some(status) = gst_launch(&format!(
            "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,format=I420,width=160,height=120 \
             ! x264enc bframes=2 b-adapt=false key-int-max=30 threads=1 \
             ! video/x-h264,profile=main,stream-format=byte-stream ! filesink location={}",
            path.display()
        )) else {
            return;
        };
        assert!(status.success(), "gst-launch-1.0 could not encode");
        let aus = split_access_units(&std::fs::read(&path).unwrap()).unwrap();
        let reference = gstreamer_reference(&path, 160, 120).unwrap();
        std::fs::remove_file(&path).unwrap();
        let order: Vec<Option<usize>> = decode_all(&mut decoder(), &aus)
            .iter()
            .map(|f| reference.iter().position(|r| r == f))
            .collect();
        // I0 P3 B1 B2 P6 B4 B5 P9 B7 B8: each picture bit-exact, in the order it was coded.
        assert_eq!(order, [0, 3, 1, 2, 6, 4, 5, 9, 7, 8].map(Some));
    }

    #[test]
    fn decoder_is_send_and_object_safe() {
        fn assert_send<T: Send>(_: &T) {}
        let d: Box<dyn Decoder> = Box::new(decoder());
        assert_send(&d);
        assert_eq!(d.backend(), "openh264");
    }

    #[test]
    fn error_reasons_name_the_decoding_state() {
        assert_eq!(
            describe_state(0x14),
            "openh264 returned 0x14 (bitstream error, no parameter sets (SPS/PPS) for the slice)"
        );
        assert_eq!(describe_state(0x10000), "openh264 returned 0x10000");
    }
}
