//! Frame sources: every camera, file and generator the SDK reads pictures from implements
//! [`CaptureSource`].
//!
//! - [`pattern::PatternSource`]: the moving test pattern (I420), paced at its frame rate;
//! - [`scene::SceneSource`]: a synthetic street scene (I420) with exact Cityscapes labels for
//!   every frame ([`scene::StreetScene`]), paced at its frame rate;
//! - [`file`](mod@file): raw NV12/I420 files and Y4M files;
//! - [`v4l2::V4l2Capture`] (Linux): a V4L2 camera with MMAP or DMABUF buffers;
//! - `argus::ArgusSource` (features `argus`/`argus-fake`): a Jetson CSI camera through libargus,
//!   NV12 in DMABUFs.
//!
//! A source hands out one frame at a time, borrowed until the next call, so sources can lend
//! their own buffers (a V4L2 MMAP buffer goes back to the driver when the next frame is taken).

use std::time::Instant;

use crate::picture::{Picture, PictureError, VideoFormat};

#[cfg(all(target_os = "linux", any(feature = "argus", feature = "argus-fake")))]
pub mod argus;
pub mod file;
pub mod pattern;
pub mod scene;
#[cfg(target_os = "linux")]
pub mod v4l2;

/// One captured frame, borrowed from its source until the next [`CaptureSource::next_frame`].
#[derive(Debug)]
pub struct CapturedFrame<'a> {
    /// The picture.
    pub picture: Picture<'a>,
    /// When the frame was captured, on this device's monotonic clock (for a V4L2 camera: the
    /// driver's buffer timestamp; for a generated or file frame: when it was produced).
    pub captured_at: Instant,
    /// Frame counter of the source, starting at 0; a gap means the source dropped frames.
    pub sequence: u64,
    /// The DMABUF behind this frame when the source exports one, so a hardware encoder can
    /// import it without a CPU copy.
    #[cfg(unix)]
    pub dmabuf: Option<std::os::fd::BorrowedFd<'a>>,
}

impl<'a> CapturedFrame<'a> {
    /// A frame with no DMABUF.
    #[must_use]
    pub const fn new(picture: Picture<'a>, captured_at: Instant, sequence: u64) -> Self {
        Self {
            picture,
            captured_at,
            sequence,
            #[cfg(unix)]
            dmabuf: None,
        }
    }
}

/// Why a source could not produce a frame.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A file source reached its end (and does not loop).
    #[error("end of stream")]
    EndOfStream,
    /// Reading or opening failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file's contents are not what its format promises.
    #[error("{path}: {reason}")]
    InvalidFile {
        /// The file.
        path: String,
        /// What is wrong, with the byte offset where it helps.
        reason: String,
    },
    /// The requested format cannot be produced.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// The frame bytes do not form a picture of the negotiated format.
    #[error(transparent)]
    Picture(#[from] PictureError),
    /// A camera behind a vendor API (libargus) failed: no such camera, a timeout, a sensor
    /// error; the text says which, with the API's status.
    #[error("{0}")]
    Camera(String),
    /// A V4L2 call failed.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Device(#[from] crate::v4l2::V4l2Error),
}

/// A source of uncompressed frames.
pub trait CaptureSource {
    /// What the source produces.
    fn format(&self) -> VideoFormat;

    /// Waits for and returns the next frame. The frame borrows the source until the next call.
    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, CaptureError>;
}
