//! Software H.264 with Cisco's openh264 (built from source by the `openh264` crate).
//!
//! Heap note: openh264 is a C library that allocates internally while encoding; it is the one
//! component of the SDK's hot path exempt from the no-allocation rule. The Rust side here only
//! converts NV12/YUYV into a buffer allocated once and copies NAL units into the caller's
//! pre-reserved output.

use std::time::Instant;

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;

use super::{EncodeError, EncodedFrame, EncoderSettings, VideoEncoder, append_within_capacity};
use crate::capture::CapturedFrame;
use crate::picture::{PixelFormat, Plane};

const NAME: &str = "openh264";

/// The openh264 software encoder: constrained baseline (no B-frames), one reference frame,
/// bitrate rate control without frame skipping, IDR on request.
pub struct OpenH264Encoder {
    settings: EncoderSettings,
    encoder: Encoder,
    /// I420 conversion target for NV12/YUYV input (allocated once).
    i420: Vec<u8>,
    frames: u64,
    keyframe_requested: bool,
}

impl core::fmt::Debug for OpenH264Encoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenH264Encoder")
            .field("settings", &self.settings)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl core::fmt::Display) -> EncodeError {
    EncodeError::Backend {
        encoder: NAME,
        message: e.to_string(),
    }
}

impl OpenH264Encoder {
    /// An encoder with these settings.
    pub fn new(settings: EncoderSettings) -> Result<Self, EncodeError> {
        // openh264's limit (level 5.2).
        settings.validate(3840, 2160)?;
        let (w, h) = (settings.width, settings.height);
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.fps as f32))
            // A dropped frame here would be a gap the receiver sees as loss; the sender's own
            // queue is the place that decides what to drop.
            .skip_frames(false)
            .scene_change_detect(false)
            // Keyframes come from our own counter and from requests, not openh264's schedule.
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1);
        let encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(backend)?;
        Ok(Self {
            settings,
            encoder,
            i420: vec![0; PixelFormat::I420.frame_len(w as usize, h as usize)],
            frames: 0,
            keyframe_requested: false,
        })
    }
}

impl VideoEncoder for OpenH264Encoder {
    fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn encode(
        &mut self,
        frame: &CapturedFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<EncodedFrame, EncodeError> {
        let started = Instant::now();
        out.clear();
        let picture = &frame.picture;
        self.settings.check_picture(picture, None)?;
        let (w, h) = (self.settings.width, self.settings.height);
        let (y, u, v) = if picture.format() == PixelFormat::I420 {
            let p = picture.planes();
            (p[0], p[1], p[2])
        } else {
            picture.write_i420(&mut self.i420);
            let (y, uv) = self.i420.split_at(w as usize * h as usize);
            let (u, v) = uv.split_at(uv.len() / 2);
            let (w, cw) = (w as usize, w as usize / 2);
            (
                Plane { data: y, stride: w },
                Plane {
                    data: u,
                    stride: cw,
                },
                Plane {
                    data: v,
                    stride: cw,
                },
            )
        };
        let interval = u64::from(self.settings.keyframe_interval);
        if self.keyframe_requested || (interval > 0 && self.frames.is_multiple_of(interval)) {
            self.encoder.force_intra_frame();
            self.keyframe_requested = false;
        }
        self.frames += 1;
        let yuv = YUVSlices::new(
            (y.data, u.data, v.data),
            (w as usize, h as usize),
            (y.stride, u.stride, v.stride),
        );
        let stream = self.encoder.encode(&yuv).map_err(backend)?;
        let keyframe = stream.frame_type() == FrameType::IDR;
        for index in 0..stream.num_layers() {
            let Some(layer) = stream.layer(index) else {
                break;
            };
            for n in 0..layer.nal_count() {
                if let Some(nal) = layer.nal_unit(n) {
                    append_within_capacity(out, nal)?;
                }
            }
        }
        Ok(EncodedFrame {
            len: out.len(),
            keyframe,
            encode_time: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureSource;
    use crate::capture::pattern::PatternSource;
    use flowcloud_core::h264::annexb;

    fn nal_types(au: &[u8]) -> Vec<u8> {
        let mut scan = annexb::nal_units(au).unwrap();
        let mut types = Vec::new();
        while let Some(range) = scan.next_range() {
            types.push(au[range.start] & 0x1f);
        }
        types
    }

    #[test]
    fn first_frame_and_requested_frames_are_idrs_with_parameter_sets() {
        let mut source = PatternSource::new(64, 48, 30).unwrap().unpaced();
        let mut settings = EncoderSettings::new(64, 48, 30);
        settings.keyframe_interval = 0;
        let mut encoder = OpenH264Encoder::new(settings).unwrap();
        let mut out = Vec::with_capacity(1 << 16);
        let mut keyframes = Vec::new();
        for n in 0..6 {
            if n == 4 {
                encoder.request_keyframe();
            }
            let frame = source.next_frame().unwrap();
            let encoded = encoder.encode(&frame, &mut out).unwrap();
            assert_eq!(encoded.len, out.len());
            let types = nal_types(&out);
            assert_eq!(encoded.keyframe, types.contains(&5), "frame {n}: {types:?}");
            if encoded.keyframe {
                assert_eq!(&types[..2], &[7, 8], "SPS and PPS lead an IDR");
                keyframes.push(n);
            }
        }
        assert_eq!(keyframes, [0, 4]);
    }

    #[test]
    fn a_full_output_buffer_is_an_error_not_a_reallocation() {
        let mut source = PatternSource::new(64, 48, 30).unwrap().unpaced();
        let mut encoder = OpenH264Encoder::new(EncoderSettings::new(64, 48, 30)).unwrap();
        let mut out = Vec::with_capacity(8);
        let frame = source.next_frame().unwrap();
        assert!(matches!(
            encoder.encode(&frame, &mut out),
            Err(EncodeError::OutputTooSmall { capacity: 8, .. })
        ));
        assert_eq!(out.capacity(), 8);
    }
}
