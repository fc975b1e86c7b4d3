//! H.264 encoders: every encoder implements [`VideoEncoder`] and writes Annex-B access units
//! (start codes, SPS and PPS before every IDR) that the sender packetizes unchanged.
//!
//! - [`openh264::OpenH264Encoder`]: software, everywhere (feature `openh264`);
//! - [`v4l2_m2m::V4l2M2mEncoder`] (Linux): the V4L2 memory-to-memory stateful encoder API, which
//!   is how a Jetson's hardware encoder (and other SoCs') is driven;
//! - [`nvenc::NvencEncoder`]: NVIDIA's NVENC through the Video Codec SDK, loaded at run time.
//!
//! Low-latency defaults everywhere: no B-frames, one reference frame, an IDR only when asked
//! (or every [`EncoderSettings::keyframe_interval`] frames), and one access unit out per picture
//! in.

use std::time::Duration;

use crate::capture::CapturedFrame;
use crate::picture::{Picture, PixelFormat};

#[cfg(target_os = "linux")]
pub mod jetson;
pub mod nvenc;
#[cfg(feature = "openh264")]
pub mod openh264;
#[cfg(target_os = "linux")]
pub mod v4l2_m2m;

/// Settings every encoder understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second (for rate control).
    pub fps: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// An IDR every this many frames; 0 means only on request (and at the start).
    pub keyframe_interval: u32,
}

impl EncoderSettings {
    /// Settings for `width × height` at `fps`, with a bitrate of 0.2 bit per pixel per frame
    /// (410 kbit/s at 640×320 and 10 fps, 5.5 Mbit/s at 720p30) and an IDR every two seconds.
    ///
    /// The stream is for a segmentation model, not a viewer: at 0.1 bit per pixel openh264's
    /// artefacts cost the demo model 0.05 mIoU against the uncompressed frames, at 0.2 less
    /// than 0.02 (`engines/demo/README.md`).
    #[must_use]
    pub const fn new(width: u32, height: u32, fps: u32) -> Self {
        let pixels_per_second = width as u64 * height as u64 * fps as u64;
        let bitrate = pixels_per_second / 5;
        Self {
            width,
            height,
            fps,
            bitrate_bps: if bitrate > u32::MAX as u64 {
                u32::MAX
            } else {
                bitrate as u32
            },
            keyframe_interval: fps.saturating_mul(2),
        }
    }
}

impl EncoderSettings {
    /// Checks what every encoder needs: an even, non-zero size of at most
    /// `max_width × max_height`, and a non-zero frame rate and bitrate.
    pub fn validate(&self, max_width: u32, max_height: u32) -> Result<(), EncodeError> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || !w.is_multiple_of(2) || !h.is_multiple_of(2) {
            return Err(EncodeError::InvalidSettings(format!(
                "{w}x{h}: width and height must be even and non-zero"
            )));
        }
        if w > max_width || h > max_height {
            return Err(EncodeError::InvalidSettings(format!(
                "{w}x{h}: this encoder takes at most {max_width}x{max_height}"
            )));
        }
        if self.fps == 0 || self.bitrate_bps == 0 {
            return Err(EncodeError::InvalidSettings(
                "frame rate and bitrate must be non-zero".into(),
            ));
        }
        Ok(())
    }

    /// Checks that `picture` has the configured size (and `format`, when the encoder takes
    /// only one).
    pub fn check_picture(
        &self,
        picture: &Picture<'_>,
        format: Option<PixelFormat>,
    ) -> Result<(), EncodeError> {
        let size_ok = picture.width() == self.width && picture.height() == self.height;
        if size_ok && format.is_none_or(|f| f == picture.format()) {
            return Ok(());
        }
        Err(EncodeError::PictureMismatch {
            width: picture.width(),
            height: picture.height(),
            format: picture.format(),
            expected_width: self.width,
            expected_height: self.height,
        })
    }
}

/// What one call to [`VideoEncoder::encode`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Bytes of the Annex-B access unit written to the output buffer; 0 when the encoder
    /// produced nothing for this picture (rate control skipped it).
    pub len: usize,
    /// The access unit is an IDR (and starts with SPS and PPS).
    pub keyframe: bool,
    /// How long encoding took on this device's clock.
    pub encode_time: Duration,
}

/// Why an encoder failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoder's library is not on this machine (NVENC without an NVIDIA driver).
    #[error("{encoder} not available: {reason}")]
    NotAvailable {
        /// Which encoder.
        encoder: &'static str,
        /// What is missing.
        reason: String,
    },
    /// The settings are outside what this encoder supports.
    #[error("invalid encoder settings: {0}")]
    InvalidSettings(String),
    /// The picture does not match the configured size or a supported pixel format.
    #[error(
        "picture {width}x{height} {format} does not match the encoder's {expected_width}x{expected_height}"
    )]
    PictureMismatch {
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
        /// Picture format.
        format: PixelFormat,
        /// Configured width.
        expected_width: u32,
        /// Configured height.
        expected_height: u32,
    },
    /// The access unit does not fit the output buffer's reserved capacity (the buffer is never
    /// grown on the hot path).
    #[error("access unit of {len} bytes exceeds the output buffer's capacity of {capacity}")]
    OutputTooSmall {
        /// Access unit length.
        len: usize,
        /// Reserved capacity.
        capacity: usize,
    },
    /// The encoder library or device reported an error.
    #[error("{encoder}: {message}")]
    Backend {
        /// Which encoder.
        encoder: &'static str,
        /// The library's message or status.
        message: String,
    },
    /// A V4L2 call failed.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Device(#[from] crate::v4l2::V4l2Error),
    /// The device is to be opened through libv4l2, which could not be loaded.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Libv4l2(#[from] crate::v4l2::Libv4l2Error),
}

/// An H.264 encoder producing one Annex-B access unit per picture.
pub trait VideoEncoder {
    /// The settings in use.
    fn settings(&self) -> &EncoderSettings;

    /// Makes the next encoded picture an IDR preceded by SPS and PPS.
    fn request_keyframe(&mut self);

    /// Encodes one frame. `out` is cleared and receives the access unit; it must have enough
    /// capacity reserved (encoders never grow it, so the hot path does not allocate) —
    /// [`EncodeError::OutputTooSmall`] otherwise.
    fn encode(
        &mut self,
        frame: &CapturedFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<EncodedFrame, EncodeError>;

    /// Finishes the stream: returns access units still inside the encoder, one per call, then
    /// `Ok(None)`. Encoders that never hold pictures back return `Ok(None)` at once.
    fn drain(&mut self, out: &mut Vec<u8>) -> Result<Option<EncodedFrame>, EncodeError> {
        out.clear();
        Ok(None)
    }
}

/// Appends `data` to `out` without growing it.
pub(crate) fn append_within_capacity(out: &mut Vec<u8>, data: &[u8]) -> Result<(), EncodeError> {
    let len = out.len() + data.len();
    if len > out.capacity() {
        return Err(EncodeError::OutputTooSmall {
            len,
            capacity: out.capacity(),
        });
    }
    out.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_pictures_are_checked_the_same_way_for_every_encoder() {
        assert!(
            EncoderSettings::new(640, 360, 30)
                .validate(3840, 2160)
                .is_ok()
        );
        for bad in [
            EncoderSettings::new(641, 360, 30),
            EncoderSettings::new(0, 360, 30),
            EncoderSettings::new(4096, 2160, 30),
            EncoderSettings::new(640, 360, 0),
        ] {
            assert!(
                matches!(
                    bad.validate(3840, 2160),
                    Err(EncodeError::InvalidSettings(_))
                ),
                "{bad:?}"
            );
        }
        let settings = EncoderSettings::new(4, 2, 30);
        let data = [0u8; 16];
        let i420 = Picture::packed(PixelFormat::I420, 4, 2, &data).unwrap();
        let nv12 = Picture::packed(PixelFormat::Nv12, 4, 2, &data).unwrap();
        let small = Picture::packed(PixelFormat::I420, 2, 2, &data).unwrap();
        assert!(settings.check_picture(&i420, None).is_ok());
        assert!(settings.check_picture(&nv12, None).is_ok());
        assert!(
            settings
                .check_picture(&nv12, Some(PixelFormat::I420))
                .is_err()
        );
        assert!(matches!(
            settings.check_picture(&small, None),
            Err(EncodeError::PictureMismatch {
                width: 2,
                expected_width: 4,
                ..
            })
        ));
    }
}
