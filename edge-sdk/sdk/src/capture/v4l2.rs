//! V4L2 camera capture: NV12, YUYV or I420 frames from a video capture node, in driver-allocated
//! buffers that are either only mapped (MMAP) or also exported as DMABUFs, so a hardware encoder
//! can take them without a CPU copy.
//!
//! Buffers go round: all are queued at start; [`V4l2Capture::next_frame`] gives the previous
//! frame's buffer back to the driver and lends the next one until the following call. With the
//! default four buffers, the driver always has three to fill while the caller holds one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::PollFlags;

use super::{CaptureError, CaptureSource, CapturedFrame, DmabufPlane, FrameDmabuf};
use crate::picture::{Picture, PixelFormat, Plane, VideoFormat};
use crate::v4l2::bindings as b;
use crate::v4l2::layout::{PlaneLayout, plane_layout};
use crate::v4l2::queue::{Memory, Queue, QueuePlane};
use crate::v4l2::{BufType, Device, Format, FourCc, V4l2Error};

/// How captured frames are backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureMemory {
    /// Driver buffers mapped into this process (`V4L2_MEMORY_MMAP`).
    Mmap,
    /// Driver buffers mapped and also exported as DMABUFs (`VIDIOC_EXPBUF`): each frame's
    /// [`CapturedFrame::dmabuf`] is set, for zero-copy hand-over to an encoder.
    DmabufExport,
}

/// What to ask of the camera. The driver may adjust size and rate; [`V4l2Capture::format`]
/// says what it chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V4l2CaptureConfig {
    /// Requested width.
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Requested pixel format (the driver may offer another of NV12, YUYV, I420 instead).
    pub pixel_format: PixelFormat,
    /// Requested frames per second as (numerator, denominator).
    pub frame_rate: (u32, u32),
    /// Buffers to request (2 to 32; the driver may grant more).
    pub buffers: u32,
    /// MMAP or exported DMABUF.
    pub memory: CaptureMemory,
    /// On a multi-planar device, ask for the one-buffer-per-plane variant (`NV12M`) before
    /// the contiguous format: with [`CaptureMemory::DmabufExport`] each plane is then its own
    /// DMABUF, as an encoder taking `NV12M` (Jetson's) imports them.
    pub multi_buffer: bool,
    /// How long [`CaptureSource::next_frame`] waits for the driver before failing.
    pub timeout: Duration,
}

impl V4l2CaptureConfig {
    /// `width × height` in `pixel_format` at 30 fps, four MMAP buffers, a 2 s frame timeout.
    #[must_use]
    pub const fn new(width: u32, height: u32, pixel_format: PixelFormat) -> Self {
        Self {
            width,
            height,
            pixel_format,
            frame_rate: (30, 1),
            buffers: 4,
            memory: CaptureMemory::Mmap,
            multi_buffer: false,
            timeout: Duration::from_secs(2),
        }
    }
}

/// A V4L2 capture device streaming into driver buffers.
#[derive(Debug)]
pub struct V4l2Capture {
    // Dropped first: STREAMOFF, munmap, close DMABUFs, REQBUFS(0); the device closes after.
    queue: Queue,
    device: Arc<Device>,
    format: Format,
    video: VideoFormat,
    layout: [PlaneLayout; 3],
    memory: CaptureMemory,
    timeout: Duration,
    /// The buffer lent out with the last frame, re-queued at the next call.
    held: Option<usize>,
    first_sequence: Option<u32>,
}

fn unsupported(message: String) -> CaptureError {
    CaptureError::UnsupportedFormat(message)
}

impl V4l2Capture {
    /// Opens a capture node, negotiates the format, allocates buffers and starts streaming.
    ///
    /// Errors clearly when the node is not a streaming video capture device, or when the
    /// driver turns the request into a format this SDK cannot read (say MJPEG, or interlaced).
    pub fn open(path: impl AsRef<Path>, config: &V4l2CaptureConfig) -> Result<Self, CaptureError> {
        let device = Arc::new(Device::open(path)?);
        let capability = device.capability()?;
        let caps = capability.node_caps();
        if !capability.is_video_capture() || !capability.has_streaming() {
            return Err(unsupported(format!(
                "{} ({}, driver {}) is not a streaming video capture device (caps {caps:#010x})",
                device.path(),
                capability.card,
                capability.driver
            )));
        }
        // Single-planar where offered: it is what most cameras speak, and contiguous formats work
        // the same on both APIs.
        let buf_type = if caps & b::V4L2_CAP_VIDEO_CAPTURE != 0 {
            BufType::VideoCapture
        } else {
            BufType::VideoCaptureMplane
        };
        if config.width == 0
            || config.height == 0
            || !config.width.is_multiple_of(2)
            || !config.height.is_multiple_of(2)
        {
            return Err(unsupported(format!(
                "requested size {}x{}: both must be even and non-zero",
                config.width, config.height
            )));
        }

        // Multi-planar devices may only offer the one-buffer-per-plane variant (NV12M), or be
        // asked for it first.
        let contiguous = FourCc::from(config.pixel_format);
        let variant =
            FourCc::multi_buffer_variant(config.pixel_format).filter(|_| buf_type.is_multiplanar());
        let (first, second) = match variant {
            Some(variant) if config.multi_buffer => (variant, Some(contiguous)),
            variant => (contiguous, variant),
        };
        let mut format = device.set_format(buf_type, first, config.width, config.height, 0)?;
        if format.fourcc != first
            && let Some(second) = second
        {
            let other = device.set_format(buf_type, second, config.width, config.height, 0)?;
            // The driver holds the last format set: go back to the first answer if only it
            // is readable.
            format = if other.fourcc.pixel_format().is_some()
                || format.fourcc.pixel_format().is_none()
            {
                other
            } else {
                device.set_format(buf_type, format.fourcc, config.width, config.height, 0)?
            };
        }
        let Some(pixel_format) = format.fourcc.pixel_format() else {
            return Err(unsupported(format!(
                "{} answered a request for {} with {}, which this SDK does not read (NV12, YUYV or I420 only)",
                device.path(),
                config.pixel_format,
                format.fourcc
            )));
        };
        let layout = plane_layout(&format, pixel_format)
            .map_err(|reason| unsupported(format!("{}: {reason}", device.path())))?;

        let frame_rate = device
            .set_frame_rate(buf_type, config.frame_rate)?
            .unwrap_or(config.frame_rate);

        let mut queue = Queue::allocate(
            Arc::clone(&device),
            buf_type,
            Memory::Mmap,
            config.buffers.max(2),
            format.planes().len(),
        )?;
        if config.memory == CaptureMemory::DmabufExport {
            queue.export_all()?;
        }
        let planes = [QueuePlane::EMPTY; b::VIDEO_MAX_PLANES];
        for index in 0..queue.len() {
            queue.queue(index, &planes[..queue.planes()], zero_time())?;
        }
        queue.stream_on()?;

        Ok(Self {
            queue,
            device,
            video: VideoFormat {
                width: format.width,
                height: format.height,
                pixel_format,
                frame_rate,
            },
            format,
            layout,
            memory: config.memory,
            timeout: config.timeout,
            held: None,
            first_sequence: None,
        })
    }

    /// The format as the driver set it, with its strides and buffer sizes.
    #[must_use]
    pub fn device_format(&self) -> &Format {
        &self.format
    }

    /// The device path.
    #[must_use]
    pub fn path(&self) -> &str {
        self.device.path()
    }

    /// How frames are backed.
    #[must_use]
    pub fn memory(&self) -> CaptureMemory {
        self.memory
    }

    /// Buffers the driver granted.
    #[must_use]
    pub fn buffer_count(&self) -> usize {
        self.queue.len()
    }

    /// Gives the held buffer back to the driver.
    fn requeue_held(&mut self) -> Result<(), V4l2Error> {
        if let Some(index) = self.held.take() {
            self.requeue(index)?;
        }
        Ok(())
    }

    fn requeue(&mut self, index: usize) -> Result<(), V4l2Error> {
        let planes = [QueuePlane::EMPTY; b::VIDEO_MAX_PLANES];
        let count = self.queue.planes();
        self.queue.queue(index, &planes[..count], zero_time())
    }
}

impl CaptureSource for V4l2Capture {
    fn format(&self) -> VideoFormat {
        self.video
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, CaptureError> {
        self.requeue_held()?;
        let deadline = Instant::now() + self.timeout;
        let mut poll_error = false;
        let done = loop {
            if let Some(done) = self.queue.dequeue()? {
                if done.flags & b::V4L2_BUF_FLAG_ERROR != 0 {
                    // A corrupted frame (the driver says so): give it back and wait for the next.
                    self.requeue(done.index)?;
                    continue;
                }
                break done;
            }
            if poll_error {
                // POLLERR and still no buffer (DQBUF would have reported a device error).
                return Err(self.device.error("poll (POLLERR)", Errno::EIO).into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self
                    .device
                    .error(
                        "VIDIOC_DQBUF (no frame before the timeout)",
                        Errno::ETIMEDOUT,
                    )
                    .into());
            }
            poll_error = self
                .device
                .poll(PollFlags::POLLIN, left)?
                .contains(PollFlags::POLLERR);
        };
        self.held = Some(done.index);
        let captured_at = monotonic_to_instant(done.flags, done.timestamp);
        let first = *self.first_sequence.get_or_insert(done.sequence);
        let sequence = u64::from(done.sequence.wrapping_sub(first));

        let format = self.video.pixel_format;
        let mut planes = [Plane {
            data: &[],
            stride: 0,
        }; 3];
        for (out, layout) in planes
            .iter_mut()
            .zip(&self.layout)
            .take(format.plane_count())
        {
            let memory = self
                .queue
                .plane(done.index, layout.memory_plane)
                .unwrap_or(&[]);
            let (offset, used) = done.payload[layout.memory_plane];
            // Some drivers leave `bytesused` at 0 for full frames; the picture check below then
            // stands guard.
            let end = if used == 0 {
                memory.len()
            } else {
                (used as usize).min(memory.len())
            };
            let payload = memory.get(offset as usize..end).unwrap_or(&[]);
            let start = layout.offset.min(payload.len());
            let len = layout.len().min(payload.len() - start);
            *out = Plane {
                data: &payload[start..start + len],
                stride: layout.stride,
            };
        }
        let picture = Picture::new(
            format,
            self.video.width,
            self.video.height,
            &planes[..format.plane_count()],
        )?;
        let mut frame = CapturedFrame::new(picture, captured_at, sequence);
        if self.memory == CaptureMemory::DmabufExport {
            // Each picture plane lies in the DMABUF of its memory plane, after the driver's
            // data offset: one DMABUF for NV12, one per plane for NV12M.
            let mut dmabufs = [None; 3];
            for (dmabuf, layout) in dmabufs
                .iter_mut()
                .zip(&self.layout)
                .take(format.plane_count())
            {
                let (data_offset, _) = done.payload[layout.memory_plane];
                *dmabuf = self
                    .queue
                    .exported(done.index, layout.memory_plane)
                    .map(|fd| DmabufPlane {
                        fd,
                        offset: data_offset as usize + layout.offset,
                    });
            }
            frame.dmabuf = FrameDmabuf::new(&dmabufs[..format.plane_count()]);
        }
        Ok(frame)
    }
}

fn zero_time() -> libc::timeval {
    libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    }
}

/// The driver's buffer timestamp as an `Instant`.
///
/// V4L2 stamps buffers on `CLOCK_MONOTONIC` (flag `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`), but
/// `Instant` has no public constructor from a clock value. So the frame's age is measured on
/// `CLOCK_MONOTONIC` and subtracted from `Instant::now()`, both read back to back: the error is
/// the few nanoseconds between the two reads, whichever clock `Instant` uses. Buffers with another
/// clock, or an age that is negative or over a minute (a driver bug), get the dequeue time.
fn monotonic_to_instant(flags: u32, timestamp: libc::timeval) -> Instant {
    let now = Instant::now();
    if flags & b::V4L2_BUF_FLAG_TIMESTAMP_MASK != b::V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC {
        return now;
    }
    let mut mono = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through a valid, exclusive pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) } != 0 {
        return now;
    }
    let now_ns = i128::from(mono.tv_sec) * 1_000_000_000 + i128::from(mono.tv_nsec);
    let frame_ns =
        i128::from(timestamp.tv_sec) * 1_000_000_000 + i128::from(timestamp.tv_usec) * 1_000;
    match u64::try_from(now_ns - frame_ns) {
        Ok(age) if age <= 60_000_000_000 => {
            now.checked_sub(Duration::from_nanos(age)).unwrap_or(now)
        }
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_timestamps_become_instants_in_the_past() {
        let mut mono = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one `timespec` through a valid pointer.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) };
        assert_eq!(status, 0);
        // A frame stamped 50 ms ago.
        let ns = i128::from(mono.tv_sec) * 1_000_000_000 + i128::from(mono.tv_nsec) - 50_000_000;
        let stamp = libc::timeval {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_usec: ((ns % 1_000_000_000) / 1_000) as libc::suseconds_t,
        };
        let before = Instant::now();
        let at = monotonic_to_instant(b::V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC, stamp);
        let age = before.saturating_duration_since(at);
        assert!(
            age >= Duration::from_millis(45) && age <= Duration::from_millis(60),
            "{age:?}"
        );
        // Timestamps of another clock are not trusted.
        let copied = monotonic_to_instant(b::V4L2_BUF_FLAG_TIMESTAMP_COPY, stamp);
        assert!(copied >= before);
    }

    #[test]
    fn opening_a_missing_node_is_a_device_error() {
        let config = V4l2CaptureConfig::new(640, 480, PixelFormat::Nv12);
        match V4l2Capture::open("/dev/flowcloud-no-such-camera", &config) {
            Err(CaptureError::Device(e)) => {
                assert_eq!((e.call, e.errno), ("open", Errno::ENOENT));
            }
            other => panic!("expected a device error, got {other:?}"),
        }
    }
}
