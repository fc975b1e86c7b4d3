//! An open V4L2 device node and the thin `Result` layer over its ioctls.

use core::ffi::{CStr, c_int};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::access::{Access, c_path};
use super::bindings as b;
use super::bindings::ioctl::{self, Request};
use super::controls::{ControlInfo, ControlTable};
use super::{BufType, Capability, Format, FourCc, V4l2Error};

/// The longest single wait in [`Device::poll`] on a device opened through libv4l2.
const LIBV4L2_POLL_SLICE: Duration = Duration::from_millis(2);

/// An open V4L2 device node; closed on drop.
///
/// Opened non-blocking: `VIDIOC_DQBUF` never sleeps in the kernel, waiting is done with
/// `poll` and a timeout so a stalled driver cannot hang the camera.
///
/// Every system call on it (ioctls, close, the buffer `mmap`s of its queues) goes through its
/// [`Access`]: raw system calls, or libv4l2 for nodes that are only reachable that way.
#[derive(Debug)]
pub struct Device {
    /// Owned: closed by `Drop` through `access` (libv4l2 must see the close of an fd it opened).
    fd: c_int,
    access: Access,
    path: String,
}

impl Device {
    /// Opens `path` read-write, non-blocking, close-on-exec, with raw system calls.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, V4l2Error> {
        Self::open_with(path, Access::Kernel)
    }

    /// Opens `path` read-write, non-blocking, close-on-exec, through `access`.
    pub fn open_with(path: impl AsRef<Path>, access: Access) -> Result<Self, V4l2Error> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let c_path = c_path(path).map_err(|errno| V4l2Error::new(name.clone(), "open", errno))?;
        let flags = libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let fd = loop {
            match access.open(&c_path, flags) {
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(V4l2Error::new(name, "open", errno)),
                Ok(fd) => break fd,
            }
        };
        Ok(Self {
            fd,
            access,
            path: name,
        })
    }

    /// The path it was opened with.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How this device reaches its driver.
    #[must_use]
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// An error of `call` on this device.
    pub(crate) fn error(&self, call: &'static str, errno: Errno) -> V4l2Error {
        V4l2Error::new(self.path.clone(), call, errno)
    }

    /// Runs a read/write ioctl through the device's [`Access`], retrying when a signal
    /// interrupts it.
    ///
    /// # Safety
    ///
    /// Every pointer inside `*arg` must be valid for what the driver reads and writes through
    /// it for this request (the request's type fixes `T`, so the argument itself is the right
    /// size).
    unsafe fn call<T>(
        &self,
        name: &'static str,
        request: Request<T>,
        arg: &mut T,
    ) -> Result<c_int, V4l2Error> {
        loop {
            // SAFETY: the fd is open for the lifetime of `self`; `arg` is an exclusive borrow
            // of the type the request is declared with (size-checked against the UAPI), and the
            // caller vouches for pointers inside it.
            match unsafe { self.access.ioctl(self.fd, request, arg) } {
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(self.error(name, errno)),
                Ok(value) => return Ok(value),
            }
        }
    }

    /// Maps `len` bytes of a buffer plane at `offset` through the device's [`Access`].
    pub(crate) fn map(
        &self,
        len: core::num::NonZeroUsize,
        offset: u32,
    ) -> Result<core::ptr::NonNull<core::ffi::c_void>, V4l2Error> {
        // SAFETY: the fd is open; the mapping is fresh (no address hint) and aliases no Rust
        // memory; the caller releases it with `Access::munmap` of `self.access()`.
        unsafe { self.access.mmap(self.fd, len, offset) }.map_err(|errno| self.error("mmap", errno))
    }

    /// `VIDIOC_QUERYCAP`.
    pub fn capability(&self) -> Result<Capability, V4l2Error> {
        let mut raw = empty_capability();
        // SAFETY: `v4l2_capability` holds no pointers and is the request's argument type.
        unsafe { self.call("VIDIOC_QUERYCAP", ioctl::VIDIOC_QUERYCAP, &mut raw) }?;
        Ok(Capability {
            driver: c_string(&raw.driver),
            card: c_string(&raw.card),
            bus_info: c_string(&raw.bus_info),
            version: raw.version,
            capabilities: raw.capabilities,
            device_caps: raw.device_caps,
        })
    }

    /// The formats a queue offers (`VIDIOC_ENUM_FMT`), in the driver's order of preference.
    pub fn formats(&self, buf_type: BufType) -> Result<Vec<FourCc>, V4l2Error> {
        let mut formats = Vec::new();
        // Bounded: a driver lists a few dozen formats at most.
        for index in 0..256 {
            let mut desc = b::v4l2_fmtdesc {
                index,
                type_: buf_type.raw(),
                flags: 0,
                description: [0; 32],
                pixelformat: 0,
                mbus_code: 0,
                reserved: [0; 3],
            };
            // SAFETY: `v4l2_fmtdesc` holds no pointers and is the request's argument type.
            match unsafe { self.call("VIDIOC_ENUM_FMT", ioctl::VIDIOC_ENUM_FMT, &mut desc) } {
                Ok(_) => formats.push(FourCc(desc.pixelformat)),
                // EINVAL past the last index ends the list.
                Err(e) if e.errno == Errno::EINVAL => break,
                Err(e) => return Err(e),
            }
        }
        Ok(formats)
    }

    /// The current format of a queue (`VIDIOC_G_FMT`).
    pub fn format(&self, buf_type: BufType) -> Result<Format, V4l2Error> {
        let mut raw = empty_format(buf_type);
        // SAFETY: `v4l2_format` holds no pointers (the `win` member with pointers is not
        // used for video types) and is the request's argument type.
        unsafe { self.call("VIDIOC_G_FMT", ioctl::VIDIOC_G_FMT, &mut raw) }?;
        Ok(Format::from_raw(buf_type, &raw))
    }

    /// Asks for a format (`VIDIOC_S_FMT`) and returns what the driver made of it: it may change
    /// the size, the strides and even the pixel format.
    pub(crate) fn set_format(
        &self,
        buf_type: BufType,
        fourcc: FourCc,
        width: u32,
        height: u32,
        sizeimage: u32,
    ) -> Result<Format, V4l2Error> {
        let mut raw = empty_format(buf_type);
        if buf_type.is_multiplanar() {
            let mut plane_fmt = [b::v4l2_plane_pix_format {
                sizeimage: 0,
                bytesperline: 0,
                reserved: [0; 6],
            }; b::VIDEO_MAX_PLANES];
            // A coded format's buffer size is the application's call (the kernel only raises it).
            plane_fmt[0].sizeimage = sizeimage;
            raw.fmt.pix_mp = b::v4l2_pix_format_mplane {
                width,
                height,
                pixelformat: fourcc.0,
                field: b::V4L2_FIELD_NONE,
                colorspace: 0,
                plane_fmt,
                num_planes: 0,
                flags: 0,
                ycbcr_enc: 0,
                quantization: 0,
                xfer_func: 0,
                reserved: [0; 7],
            };
        } else {
            raw.fmt.pix = b::v4l2_pix_format {
                width,
                height,
                pixelformat: fourcc.0,
                field: b::V4L2_FIELD_NONE,
                bytesperline: 0,
                sizeimage,
                colorspace: 0,
                priv_: 0,
                flags: 0,
                ycbcr_enc: 0,
                quantization: 0,
                xfer_func: 0,
            };
        }
        // SAFETY: as in `format`.
        unsafe { self.call("VIDIOC_S_FMT", ioctl::VIDIOC_S_FMT, &mut raw) }?;
        Ok(Format::from_raw(buf_type, &raw))
    }

    /// `VIDIOC_REQBUFS`: allocates `count` buffers (0 frees them); returns how many the driver
    /// allocated and its `V4L2_BUF_CAP_*` flags.
    pub(crate) fn request_buffers(
        &self,
        buf_type: BufType,
        memory: u32,
        count: u32,
    ) -> Result<(u32, u32), V4l2Error> {
        let mut req = b::v4l2_requestbuffers {
            count,
            type_: buf_type.raw(),
            memory,
            capabilities: 0,
            flags: 0,
            reserved: [0; 3],
        };
        // SAFETY: `v4l2_requestbuffers` holds no pointers and is the request's argument type.
        unsafe { self.call("VIDIOC_REQBUFS", ioctl::VIDIOC_REQBUFS, &mut req) }?;
        Ok((req.count, req.capabilities))
    }

    /// Runs `VIDIOC_QUERYBUF`, `VIDIOC_QBUF` or `VIDIOC_DQBUF` on `buf`; for multi-planar types
    /// `planes` is attached as the plane array (and filled by the kernel where it writes back).
    fn buffer_call(
        &self,
        name: &'static str,
        request: Request<b::v4l2_buffer>,
        buf_type: BufType,
        buf: &mut b::v4l2_buffer,
        planes: &mut [b::v4l2_plane; b::VIDEO_MAX_PLANES],
    ) -> Result<(), V4l2Error> {
        buf.type_ = buf_type.raw();
        if buf_type.is_multiplanar() {
            buf.m.planes = planes.as_mut_ptr();
            // The array's capacity; the kernel uses as many entries as the buffer has planes.
            buf.length = b::VIDEO_MAX_PLANES as u32;
        }
        // SAFETY: `v4l2_buffer` is the request's argument type. Its only pointer, `m.planes`, is
        // set just above for multi-planar types to `planes`, an exclusively borrowed array of
        // `length` entries that outlives the call; single-planar types use `m` as an integer.
        unsafe { self.call(name, request, buf) }?;
        Ok(())
    }

    /// `VIDIOC_QUERYBUF`.
    pub(crate) fn query_buffer(
        &self,
        buf_type: BufType,
        buf: &mut b::v4l2_buffer,
        planes: &mut [b::v4l2_plane; b::VIDEO_MAX_PLANES],
    ) -> Result<(), V4l2Error> {
        self.buffer_call(
            "VIDIOC_QUERYBUF",
            ioctl::VIDIOC_QUERYBUF,
            buf_type,
            buf,
            planes,
        )
    }

    /// `VIDIOC_QBUF`.
    pub(crate) fn queue_buffer(
        &self,
        buf_type: BufType,
        buf: &mut b::v4l2_buffer,
        planes: &mut [b::v4l2_plane; b::VIDEO_MAX_PLANES],
    ) -> Result<(), V4l2Error> {
        self.buffer_call("VIDIOC_QBUF", ioctl::VIDIOC_QBUF, buf_type, buf, planes)
    }

    /// `VIDIOC_DQBUF` (non-blocking: `EAGAIN` when no buffer is ready).
    pub(crate) fn dequeue_buffer(
        &self,
        buf_type: BufType,
        buf: &mut b::v4l2_buffer,
        planes: &mut [b::v4l2_plane; b::VIDEO_MAX_PLANES],
    ) -> Result<(), V4l2Error> {
        self.buffer_call("VIDIOC_DQBUF", ioctl::VIDIOC_DQBUF, buf_type, buf, planes)
    }

    /// `VIDIOC_EXPBUF`: a DMABUF fd for one plane of an MMAP buffer.
    pub(crate) fn export_buffer(
        &self,
        buf_type: BufType,
        index: u32,
        plane: u32,
    ) -> Result<OwnedFd, V4l2Error> {
        let mut exp = b::v4l2_exportbuffer {
            type_: buf_type.raw(),
            index,
            plane,
            flags: (libc::O_CLOEXEC | libc::O_RDWR) as u32,
            fd: -1,
            reserved: [0; 11],
        };
        // SAFETY: `v4l2_exportbuffer` holds no pointers and is the request's argument type.
        unsafe { self.call("VIDIOC_EXPBUF", ioctl::VIDIOC_EXPBUF, &mut exp) }?;
        if exp.fd < 0 {
            return Err(self.error("VIDIOC_EXPBUF", Errno::EBADF));
        }
        // SAFETY: on success the kernel installed a new fd in our table and handed it to us;
        // nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(exp.fd) })
    }

    fn stream(
        &self,
        name: &'static str,
        request: Request<c_int>,
        buf_type: BufType,
    ) -> Result<(), V4l2Error> {
        let mut arg = buf_type.raw() as c_int;
        // SAFETY: STREAMON/STREAMOFF read one `int`, which `arg` is; it holds no pointers.
        unsafe { self.call(name, request, &mut arg) }?;
        Ok(())
    }

    /// `VIDIOC_STREAMON`.
    pub(crate) fn stream_on(&self, buf_type: BufType) -> Result<(), V4l2Error> {
        self.stream("VIDIOC_STREAMON", ioctl::VIDIOC_STREAMON, buf_type)
    }

    /// `VIDIOC_STREAMOFF`: stops the queue and takes every buffer back from the driver.
    pub(crate) fn stream_off(&self, buf_type: BufType) -> Result<(), V4l2Error> {
        self.stream("VIDIOC_STREAMOFF", ioctl::VIDIOC_STREAMOFF, buf_type)
    }

    /// Sets the frame interval of a queue (`VIDIOC_S_PARM`) to `1 / fps` and returns the rate
    /// the driver chose as (numerator, denominator) frames per second, or `None` when the
    /// driver does not support frame intervals on this queue.
    pub(crate) fn set_frame_rate(
        &self,
        buf_type: BufType,
        fps: (u32, u32),
    ) -> Result<Option<(u32, u32)>, V4l2Error> {
        let mut parm = b::v4l2_streamparm {
            type_: buf_type.raw(),
            parm: b::v4l2_streamparm_parm { raw_data: [0; 200] },
        };
        // SAFETY: `v4l2_streamparm` holds no pointers and is the request's argument type.
        match unsafe { self.call("VIDIOC_G_PARM", ioctl::VIDIOC_G_PARM, &mut parm) } {
            Ok(_) => {}
            Err(e) if matches!(e.errno, Errno::ENOTTY | Errno::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        }
        // Capture and output parameters share their layout up to `timeperframe`.
        // SAFETY: both union members are plain integers, so any bytes are valid.
        let capability = unsafe { parm.parm.capture.capability };
        if capability & b::V4L2_CAP_TIMEPERFRAME == 0 {
            return Ok(None);
        }
        let interval = b::v4l2_fract {
            numerator: fps.1,
            denominator: fps.0,
        };
        // Writing a union member is safe; the capture and output members differ after it.
        if buf_type == BufType::VideoCapture || buf_type == BufType::VideoCaptureMplane {
            parm.parm.capture.timeperframe = interval;
        } else {
            parm.parm.output.timeperframe = interval;
        }
        // SAFETY: as for G_PARM.
        unsafe { self.call("VIDIOC_S_PARM", ioctl::VIDIOC_S_PARM, &mut parm) }?;
        // SAFETY: plain integers, see above.
        let chosen = unsafe { parm.parm.capture.timeperframe };
        Ok((chosen.numerator != 0 && chosen.denominator != 0)
            .then_some((chosen.denominator, chosen.numerator)))
    }

    /// `VIDIOC_QUERYCTRL`: `None` when the driver has no such control (or it is disabled or
    /// read-only); otherwise its (minimum, maximum).
    pub(crate) fn query_control(&self, id: u32) -> Result<Option<(i32, i32)>, V4l2Error> {
        let mut query = empty_queryctrl(id);
        // SAFETY: `v4l2_queryctrl` holds no pointers and is the request's argument type.
        match unsafe { self.call("VIDIOC_QUERYCTRL", ioctl::VIDIOC_QUERYCTRL, &mut query) } {
            Ok(_) => {}
            Err(e) if e.errno == Errno::EINVAL => return Ok(None),
            Err(e) => return Err(e),
        }
        let unusable = b::V4L2_CTRL_FLAG_DISABLED | b::V4L2_CTRL_FLAG_READ_ONLY;
        Ok((query.flags & unusable == 0).then_some((query.minimum, query.maximum)))
    }

    /// Every control the driver offers, walked with `VIDIOC_QUERYCTRL` and
    /// `V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND` (control class headings left
    /// out). A driver that does not support the walk gives an empty table.
    pub fn controls(&self) -> Result<ControlTable, V4l2Error> {
        let next = b::V4L2_CTRL_FLAG_NEXT_CTRL | b::V4L2_CTRL_FLAG_NEXT_COMPOUND;
        let mut found = Vec::new();
        let mut id = 0u32;
        // Bounded: drivers have tens of controls, a few hundred at most.
        for _ in 0..4096 {
            let mut query = empty_queryctrl(id | next);
            // SAFETY: `v4l2_queryctrl` holds no pointers and is the request's argument type.
            match unsafe { self.call("VIDIOC_QUERYCTRL", ioctl::VIDIOC_QUERYCTRL, &mut query) } {
                Ok(_) => {}
                // EINVAL after the last control ends the walk.
                Err(e) if e.errno == Errno::EINVAL => break,
                Err(e) => return Err(e),
            }
            let reported = query.id & !next;
            // A driver that does not move forward would loop for ever.
            if reported <= id && id != 0 {
                break;
            }
            id = reported;
            if query.type_ != b::V4L2_CTRL_TYPE_CTRL_CLASS {
                found.push(ControlInfo::from_raw(&query));
            }
        }
        Ok(ControlTable::new(found))
    }

    /// `VIDIOC_S_EXT_CTRLS` with one integer control, in the control's own class (what older
    /// vendor drivers expect, rather than `V4L2_CTRL_WHICH_CUR_VAL`).
    pub(crate) fn set_ext_control(&self, id: u32, value: i32) -> Result<(), V4l2Error> {
        let mut control = b::v4l2_ext_control {
            id,
            size: 0,
            reserved2: [0],
            value: b::v4l2_ext_control_value { value },
        };
        self.ext_controls(id, &mut control)
    }

    /// `VIDIOC_S_EXT_CTRLS` with one compound control: `payload` is the structure the control
    /// takes, laid out as the driver's header declares it.
    pub(crate) fn set_compound_control(
        &self,
        id: u32,
        payload: &mut [u8],
    ) -> Result<(), V4l2Error> {
        let size = u32::try_from(payload.len())
            .map_err(|_| self.error("VIDIOC_S_EXT_CTRLS", Errno::E2BIG))?;
        let mut control = b::v4l2_ext_control {
            id,
            size,
            reserved2: [0],
            value: b::v4l2_ext_control_value {
                ptr: payload.as_mut_ptr().cast(),
            },
        };
        self.ext_controls(id, &mut control)
    }

    fn ext_controls(&self, id: u32, control: &mut b::v4l2_ext_control) -> Result<(), V4l2Error> {
        let mut controls = b::v4l2_ext_controls {
            which: id & b::V4L2_CTRL_CLASS_MASK,
            count: 1,
            error_idx: 0,
            request_fd: 0,
            reserved: [0],
            controls: control,
        };
        // SAFETY: `v4l2_ext_controls` is the request's argument type; `controls` points at one
        // exclusively borrowed `v4l2_ext_control` (count 1) that outlives the call, and a
        // compound control's `ptr` points at `size` writable bytes its caller lent for the call.
        unsafe {
            self.call(
                "VIDIOC_S_EXT_CTRLS",
                ioctl::VIDIOC_S_EXT_CTRLS,
                &mut controls,
            )
        }?;
        Ok(())
    }

    /// `VIDIOC_S_CTRL`; returns the value the driver stored (it may clamp).
    pub(crate) fn set_control(&self, id: u32, value: i32) -> Result<i32, V4l2Error> {
        let mut control = b::v4l2_control { id, value };
        // SAFETY: `v4l2_control` holds no pointers and is the request's argument type.
        unsafe { self.call("VIDIOC_S_CTRL", ioctl::VIDIOC_S_CTRL, &mut control) }?;
        Ok(control.value)
    }

    /// `VIDIOC_ENCODER_CMD` (`V4L2_ENC_CMD_START`, `V4L2_ENC_CMD_STOP`, …).
    pub(crate) fn encoder_command(&self, cmd: u32) -> Result<(), V4l2Error> {
        let mut command = b::v4l2_encoder_cmd {
            cmd,
            flags: 0,
            data: [0; 8],
        };
        // SAFETY: `v4l2_encoder_cmd` holds no pointers and is the request's argument type.
        unsafe {
            self.call(
                "VIDIOC_ENCODER_CMD",
                ioctl::VIDIOC_ENCODER_CMD,
                &mut command,
            )
        }?;
        Ok(())
    }

    /// Waits up to `timeout` for any of `events`; returns the events that occurred (empty on
    /// timeout). `POLLIN` means a capture-type buffer is ready to dequeue, `POLLOUT` an
    /// output-type one, `POLLERR` that the queue is not streaming or the device failed.
    ///
    /// Through libv4l2 it waits at most [`LIBV4L2_POLL_SLICE`] and may return empty early: a
    /// vendor plugin may hand back an fd that never signals, and the callers, which loop to
    /// their own deadline retrying `VIDIOC_DQBUF`, then still see buffers come back.
    pub(crate) fn poll(
        &self,
        events: PollFlags,
        timeout: Duration,
    ) -> Result<PollFlags, V4l2Error> {
        let timeout = match self.access {
            Access::Kernel => timeout,
            Access::Libv4l2(_) => timeout.min(LIBV4L2_POLL_SLICE),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Round up so a sub-millisecond remainder is not a busy loop.
            let millis = left.as_micros().div_ceil(1000);
            let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.as_fd(), events)];
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) => return Ok(PollFlags::empty()),
                Ok(_) => return Ok(fds[0].revents().unwrap_or(PollFlags::empty())),
                Err(Errno::EINTR) if !left.is_zero() => {}
                Err(errno) => return Err(self.error("poll", errno)),
            }
        }
    }
}

impl AsFd for Device {
    /// The fd the driver's node is open on; with libv4l2 too, which opens the real node and
    /// hands its fd back, so `poll` works on it.
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` stays open until `self` drops, which the borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Errors are ignored: nothing can be done about a failed close.
        // SAFETY: `fd` came from `self.access.open` and is not used after this.
        let _ = unsafe { self.access.close(self.fd) };
    }
}

/// A zeroed `VIDIOC_QUERYCAP` argument; also what the [`Access`] tests ask with.
pub(super) fn empty_capability() -> b::v4l2_capability {
    b::v4l2_capability {
        driver: [0; 16],
        card: [0; 32],
        bus_info: [0; 32],
        version: 0,
        capabilities: 0,
        device_caps: 0,
        reserved: [0; 3],
    }
}

fn empty_queryctrl(id: u32) -> b::v4l2_queryctrl {
    b::v4l2_queryctrl {
        id,
        type_: 0,
        name: [0; 32],
        minimum: 0,
        maximum: 0,
        step: 0,
        default_value: 0,
        flags: 0,
        reserved: [0; 2],
    }
}

fn empty_format(buf_type: BufType) -> b::v4l2_format {
    b::v4l2_format {
        type_: buf_type.raw(),
        fmt: b::v4l2_format_fmt { raw_data: [0; 200] },
    }
}

/// A NUL-terminated (or full-length) C string field as text.
pub(crate) fn c_string(bytes: &[u8]) -> String {
    match CStr::from_bytes_until_nul(bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_strings_stop_at_the_first_nul_or_the_field_end() {
        assert_eq!(c_string(b"vivid\0\0\0garbage"), "vivid");
        assert_eq!(c_string(b"full"), "full");
    }
}
