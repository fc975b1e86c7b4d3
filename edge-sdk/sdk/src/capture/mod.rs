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
    /// The DMABUFs behind this frame's planes when the source exports them, so a hardware
    /// encoder can import them without a CPU copy.
    #[cfg(unix)]
    pub dmabuf: Option<FrameDmabuf<'a>>,
}

/// Where one picture plane lies in a DMABUF.
#[cfg(unix)]
#[derive(Clone, Copy, Debug)]
pub struct DmabufPlane<'a> {
    /// The DMABUF.
    pub fd: std::os::fd::BorrowedFd<'a>,
    /// Where the plane's first row starts in it; rows are the picture plane's stride apart.
    pub offset: usize,
}

/// The DMABUFs behind a frame, one entry per picture plane: either one DMABUF holding every
/// plane (a contiguous `NV12` V4L2 buffer, a Jetson NvBufSurface), or one DMABUF per plane (a
/// multi-planar `NV12M` V4L2 buffer).
#[cfg(unix)]
#[derive(Clone, Copy, Debug)]
pub struct FrameDmabuf<'a> {
    planes: [Option<DmabufPlane<'a>>; 3],
}

#[cfg(unix)]
impl<'a> FrameDmabuf<'a> {
    /// One entry per picture plane (at most 3); `None` when any is missing.
    #[must_use]
    pub fn new(planes: &[Option<DmabufPlane<'a>>]) -> Option<Self> {
        if planes.is_empty() || planes.len() > 3 || planes.iter().any(Option::is_none) {
            return None;
        }
        let mut all = [None; 3];
        all[..planes.len()].copy_from_slice(planes);
        Some(Self { planes: all })
    }

    /// Every plane in the one DMABUF `fd`, plane `i` starting at `offsets[i]` (at most 3).
    #[must_use]
    pub fn shared(fd: std::os::fd::BorrowedFd<'a>, offsets: &[usize]) -> Self {
        let mut planes = [None; 3];
        for (plane, &offset) in planes.iter_mut().zip(offsets) {
            *plane = Some(DmabufPlane { fd, offset });
        }
        Self { planes }
    }

    /// Plane `i` from the first byte of its own DMABUF `fds[i]` (at most 3).
    #[must_use]
    pub fn per_plane(fds: &[std::os::fd::BorrowedFd<'a>]) -> Self {
        let mut planes = [None; 3];
        for (plane, &fd) in planes.iter_mut().zip(fds) {
            *plane = Some(DmabufPlane { fd, offset: 0 });
        }
        Self { planes }
    }

    /// One entry per picture plane.
    pub fn planes(&self) -> impl Iterator<Item = DmabufPlane<'a>> + '_ {
        self.planes.iter().map_while(|plane| *plane)
    }

    /// Plane `index`, if the frame has that many.
    #[must_use]
    pub fn plane(&self, index: usize) -> Option<DmabufPlane<'a>> {
        self.planes.get(index).copied().flatten()
    }

    /// Planes described.
    #[must_use]
    pub fn len(&self) -> usize {
        self.planes().count()
    }

    /// True when no plane is described.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.planes[0].is_none()
    }

    /// True when every plane lies in the same DMABUF. Different fds for one buffer (a `dup`, a
    /// second export) count as the same: fds are compared by the buffer `fstat` names (device
    /// and inode), not by number. An fd that `fstat` fails on shares nothing.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        let mut planes = self.planes();
        let Some(first) = planes.next() else {
            return true;
        };
        planes.all(|plane| same_buffer(first.fd, plane.fd))
    }
}

/// Whether two fds refer to one buffer: the same fd, or fds whose `fstat` gives the same
/// (device, inode); every dma-buf (and every memfd) has its own inode.
#[cfg(target_os = "linux")]
pub(crate) fn same_buffer(a: std::os::fd::BorrowedFd<'_>, b: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::sys::stat::fstat;
    use std::os::fd::AsRawFd;
    if a.as_raw_fd() == b.as_raw_fd() {
        return true;
    }
    match (fstat(a), fstat(b)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// Whether two fds refer to one buffer; outside Linux there are no DMABUFs to export twice, so
/// the fd number decides.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn same_buffer(a: std::os::fd::BorrowedFd<'_>, b: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    a.as_raw_fd() == b.as_raw_fd()
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

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};

    use nix::sys::memfd::{MFdFlags, memfd_create};

    use super::*;

    /// A memfd standing in for a DMABUF: like one, it has an inode of its own.
    fn buffer() -> OwnedFd {
        memfd_create(c"fake-dmabuf", MFdFlags::MFD_CLOEXEC).unwrap()
    }

    #[test]
    fn one_fd_for_both_planes_is_shared() {
        let fd = buffer();
        let frame = FrameDmabuf::shared(fd.as_fd(), &[0, 2048]);
        assert!(frame.is_shared());
        let frame = FrameDmabuf::per_plane(&[fd.as_fd(), fd.as_fd()]);
        assert!(frame.is_shared());
    }

    #[test]
    fn a_dup_of_the_buffer_is_shared() {
        let fd = buffer();
        let dup = nix::unistd::dup(&fd).unwrap();
        let frame = FrameDmabuf::per_plane(&[fd.as_fd(), dup.as_fd()]);
        assert!(frame.is_shared(), "two fds, one buffer");
    }

    #[test]
    fn two_buffers_are_not_shared() {
        let (luma, chroma) = (buffer(), buffer());
        let frame = FrameDmabuf::per_plane(&[luma.as_fd(), chroma.as_fd()]);
        assert!(!frame.is_shared());
        // A third plane in another buffer spoils an otherwise shared frame.
        let frame = FrameDmabuf::per_plane(&[luma.as_fd(), luma.as_fd(), chroma.as_fd()]);
        assert!(!frame.is_shared());
    }
}
