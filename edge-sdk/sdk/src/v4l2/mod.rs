//! Hand-written V4L2 bindings (with compile-time size checks) and the thin `Result` layer over
//! the ioctls that [`crate::capture::v4l2`] and [`crate::encode::v4l2_m2m`] use.

/// A V4L2 call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{call} on {device}: {errno}")]
pub struct V4l2Error {
    /// The device path.
    pub device: String,
    /// The ioctl or operation (`VIDIOC_S_FMT`, `mmap`, …).
    pub call: &'static str,
    /// The errno it returned.
    pub errno: nix::errno::Errno,
}
