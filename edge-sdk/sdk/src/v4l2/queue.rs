//! A V4L2 buffer queue with RAII: `mmap`ed planes are unmapped, exported DMABUFs closed, and the
//! queue stopped and its buffers freed when it is dropped.
//!
//! Ownership of a buffer alternates between the driver (queued) and us (dequeued). The CPU only
//! ever sees a buffer's memory while we own it: [`Queue::plane`] and [`Queue::plane_mut`] refuse
//! queued buffers, so the device never writes bytes a slice borrows.

use core::ffi::c_void;
use core::num::NonZeroUsize;
use core::ptr::NonNull;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::libc::timeval;

use super::access::Access;
use super::bindings::{self as b, VIDEO_MAX_PLANES};
use super::{BufType, Device, V4l2Error};

/// At most this many buffers per queue: memory stays bounded whatever a driver grants.
pub(crate) const MAX_BUFFERS: u32 = 32;

/// How a queue's buffers are backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Memory {
    /// Allocated by the driver and mapped into our address space.
    Mmap,
    /// DMABUFs from elsewhere (another device's exported buffers), imported at each `QBUF`.
    Dmabuf,
}

impl Memory {
    const fn raw(self) -> u32 {
        match self {
            Self::Mmap => b::V4L2_MEMORY_MMAP,
            Self::Dmabuf => b::V4L2_MEMORY_DMABUF,
        }
    }
}

/// One `mmap` of a buffer plane; unmapped on drop, through the same [`Access`] that mapped it.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<c_void>,
    len: usize,
    access: Access,
}

// SAFETY: the mapping is plain shared memory owned by this value alone; nothing about it is tied
// to the thread that created it (libv4l2 guards its per-device state with its own mutex).
unsafe impl Send for Mapping {}

// SAFETY: shared access only hands out `&[u8]`; mutation needs `&mut self`.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(device: &Device, offset: u32, len: u32) -> Result<Self, V4l2Error> {
        let length = NonZeroUsize::new(len as usize).ok_or_else(|| {
            device.error("mmap (driver reported a zero-length plane)", Errno::EINVAL)
        })?;
        // A plane the driver just described with this offset and length.
        let ptr = device.map(length, offset)?;
        Ok(Self {
            ptr,
            len: len as usize,
            access: device.access().clone(),
        })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes until `self` drops; the queue
        // hands this out only while the driver does not own the buffer (see the module docs).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` of this access returned and was asked
        // for, and no slice into the mapping outlives `self` (they all borrow it).
        let _ = unsafe { self.access.munmap(self.ptr, self.len) };
    }
}

#[derive(Debug)]
struct Buffer {
    /// One mapping per plane (MMAP queues).
    mappings: Vec<Mapping>,
    /// One DMABUF per plane, when exported.
    exported: Vec<OwnedFd>,
    /// The driver owns the buffer.
    queued: bool,
}

/// What to queue for one plane.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueuePlane<'fd> {
    /// Bytes of payload (output queues; ignored on capture queues).
    pub(crate) bytesused: u32,
    /// The DMABUF to import (DMABUF queues).
    pub(crate) dmabuf: Option<BorrowedFd<'fd>>,
    /// The DMABUF's size (DMABUF queues): the kernel checks `bytesused` against it.
    pub(crate) length: u32,
}

impl QueuePlane<'_> {
    /// A plane of a capture buffer, or of an MMAP buffer, with nothing else to say.
    pub(crate) const EMPTY: Self = Self {
        bytesused: 0,
        dmabuf: None,
        length: 0,
    };
}

/// A buffer the driver handed back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dequeued {
    /// Which buffer.
    pub(crate) index: usize,
    /// `V4L2_BUF_FLAG_*`.
    pub(crate) flags: u32,
    /// The driver's frame counter.
    pub(crate) sequence: u32,
    /// Capture time (capture queues) or the timestamp copied from the output buffer (M2M).
    pub(crate) timestamp: timeval,
    /// Per plane: (`data_offset`, `bytesused`); the payload is `data_offset..bytesused`.
    pub(crate) payload: [(u32, u32); VIDEO_MAX_PLANES],
}

/// The buffers of one queue of a device.
#[derive(Debug)]
pub(crate) struct Queue {
    device: Arc<Device>,
    buf_type: BufType,
    memory: Memory,
    planes: usize,
    buffers: Vec<Buffer>,
    streaming: bool,
}

impl Queue {
    /// Requests `count` buffers of `planes` memory planes each (capped at [`MAX_BUFFERS`]; the
    /// driver may grant more or fewer) and maps them when `memory` is MMAP.
    pub(crate) fn allocate(
        device: Arc<Device>,
        buf_type: BufType,
        memory: Memory,
        count: u32,
        planes: usize,
    ) -> Result<Self, V4l2Error> {
        let planes = if buf_type.is_multiplanar() {
            planes.clamp(1, VIDEO_MAX_PLANES)
        } else {
            1
        };
        let (granted, _caps) =
            device.request_buffers(buf_type, memory.raw(), count.clamp(1, MAX_BUFFERS))?;
        // From here on, `Drop` frees what the driver allocated, whatever fails below.
        let mut queue = Self {
            device,
            buf_type,
            memory,
            planes,
            buffers: Vec::new(),
            streaming: false,
        };
        if granted == 0 {
            return Err(queue
                .device
                .error("VIDIOC_REQBUFS (no buffers granted)", Errno::ENOMEM));
        }
        for index in 0..granted.min(MAX_BUFFERS) {
            let mut buffer = Buffer {
                mappings: Vec::new(),
                exported: Vec::new(),
                queued: false,
            };
            if memory == Memory::Mmap {
                let (mut raw, mut raw_planes) = queue.raw_buffer(index);
                queue
                    .device
                    .query_buffer(buf_type, &mut raw, &mut raw_planes)?;
                for p in raw_planes.iter().take(planes) {
                    let (offset, length) = if buf_type.is_multiplanar() {
                        // SAFETY: reading the `u32` member is valid for any bytes, and for an
                        // MMAP plane it is the one the kernel set.
                        (unsafe { p.m.mem_offset }, p.length)
                    } else {
                        // SAFETY: reading the `u32` member is valid for any bytes, and for an
                        // MMAP buffer it is the one the kernel set.
                        (unsafe { raw.m.offset }, raw.length)
                    };
                    buffer
                        .mappings
                        .push(Mapping::new(&queue.device, offset, length)?);
                }
            }
            queue.buffers.push(buffer);
        }
        Ok(queue)
    }

    /// Exports every plane of every buffer as a DMABUF (`VIDIOC_EXPBUF`; MMAP queues only).
    pub(crate) fn export_all(&mut self) -> Result<(), V4l2Error> {
        for (index, buffer) in self.buffers.iter_mut().enumerate() {
            buffer.exported.clear();
            for plane in 0..self.planes {
                let fd = self
                    .device
                    .export_buffer(self.buf_type, index as u32, plane as u32)?;
                buffer.exported.push(fd);
            }
        }
        Ok(())
    }

    /// Buffers in the queue.
    pub(crate) fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Memory planes per buffer.
    pub(crate) fn planes(&self) -> usize {
        self.planes
    }

    /// How the buffers are backed.
    pub(crate) fn memory(&self) -> Memory {
        self.memory
    }

    /// The mapped bytes of a plane of a buffer we own (`None` while the driver owns it, or for
    /// DMABUF queues).
    pub(crate) fn plane(&self, index: usize, plane: usize) -> Option<&[u8]> {
        let buffer = self.buffers.get(index)?;
        if buffer.queued {
            return None;
        }
        buffer.mappings.get(plane).map(Mapping::as_slice)
    }

    /// As [`Self::plane`], writable.
    pub(crate) fn plane_mut(&mut self, index: usize, plane: usize) -> Option<&mut [u8]> {
        let buffer = self.buffers.get_mut(index)?;
        if buffer.queued {
            return None;
        }
        buffer.mappings.get_mut(plane).map(Mapping::as_mut_slice)
    }

    /// The exported DMABUF of a plane, if [`Self::export_all`] ran.
    pub(crate) fn exported(&self, index: usize, plane: usize) -> Option<BorrowedFd<'_>> {
        self.buffers
            .get(index)?
            .exported
            .get(plane)
            .map(AsFd::as_fd)
    }

    /// A buffer we own, if any.
    pub(crate) fn free_buffer(&self) -> Option<usize> {
        self.buffers.iter().position(|buffer| !buffer.queued)
    }

    /// Whether the driver owns buffer `index`.
    pub(crate) fn is_queued(&self, index: usize) -> bool {
        self.buffers.get(index).is_some_and(|buffer| buffer.queued)
    }

    /// Whether any buffer is with the driver.
    pub(crate) fn any_queued(&self) -> bool {
        self.buffers.iter().any(|buffer| buffer.queued)
    }

    /// Whether the queue is streaming.
    pub(crate) fn is_streaming(&self) -> bool {
        self.streaming
    }

    fn raw_buffer(&self, index: u32) -> (b::v4l2_buffer, [b::v4l2_plane; VIDEO_MAX_PLANES]) {
        let buffer = b::v4l2_buffer {
            index,
            type_: self.buf_type.raw(),
            bytesused: 0,
            flags: 0,
            field: b::V4L2_FIELD_NONE,
            timestamp: timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            timecode: b::v4l2_timecode {
                type_: 0,
                flags: 0,
                frames: 0,
                seconds: 0,
                minutes: 0,
                hours: 0,
                userbits: [0; 4],
            },
            sequence: 0,
            memory: self.memory.raw(),
            m: b::v4l2_buffer_m { userptr: 0 },
            length: 0,
            reserved2: 0,
            request_fd: 0,
        };
        let plane = b::v4l2_plane {
            bytesused: 0,
            length: 0,
            m: b::v4l2_plane_m { userptr: 0 },
            data_offset: 0,
            reserved: [0; 11],
        };
        (buffer, [plane; VIDEO_MAX_PLANES])
    }

    /// Hands buffer `index` to the driver (`VIDIOC_QBUF`) with one entry of `planes` per memory
    /// plane, and `timestamp` (output queues: M2M drivers copy it to the resulting buffer).
    pub(crate) fn queue(
        &mut self,
        index: usize,
        planes: &[QueuePlane<'_>],
        timestamp: timeval,
    ) -> Result<(), V4l2Error> {
        let Some(buffer) = self.buffers.get(index) else {
            return Err(self
                .device
                .error("VIDIOC_QBUF (no such buffer)", Errno::EINVAL));
        };
        if buffer.queued {
            return Err(self
                .device
                .error("VIDIOC_QBUF (buffer already queued)", Errno::EBUSY));
        }
        let planes = planes.get(..self.planes).unwrap_or(&[]);
        if self.memory == Memory::Dmabuf
            && (planes.is_empty() || planes.iter().any(|p| p.dmabuf.is_none()))
        {
            return Err(self
                .device
                .error("VIDIOC_QBUF (a DMABUF per plane is needed)", Errno::EINVAL));
        }
        let (mut raw, mut raw_planes) = self.raw_buffer(index as u32);
        raw.timestamp = timestamp;
        for (plane, what) in planes.iter().enumerate() {
            let fd = what.dmabuf.map_or(-1, |fd| fd.as_raw_fd());
            if self.buf_type.is_multiplanar() {
                raw_planes[plane].bytesused = what.bytesused;
                if self.memory == Memory::Dmabuf {
                    raw_planes[plane].m = b::v4l2_plane_m { fd };
                    raw_planes[plane].length = what.length;
                }
            } else {
                raw.bytesused = what.bytesused;
                if self.memory == Memory::Dmabuf {
                    raw.m = b::v4l2_buffer_m { fd };
                    raw.length = what.length;
                }
            }
        }
        self.device
            .queue_buffer(self.buf_type, &mut raw, &mut raw_planes)?;
        if let Some(buffer) = self.buffers.get_mut(index) {
            buffer.queued = true;
        }
        Ok(())
    }

    /// Takes back a buffer the driver is done with (`VIDIOC_DQBUF`); `Ok(None)` when none is
    /// ready. `EPIPE` (after the last buffer of a drained M2M stream) is returned as an error.
    pub(crate) fn dequeue(&mut self) -> Result<Option<Dequeued>, V4l2Error> {
        let (mut raw, mut raw_planes) = self.raw_buffer(0);
        match self
            .device
            .dequeue_buffer(self.buf_type, &mut raw, &mut raw_planes)
        {
            Ok(()) => {}
            Err(e) if e.errno == Errno::EAGAIN => return Ok(None),
            Err(e) => return Err(e),
        }
        let index = raw.index as usize;
        let Some(buffer) = self.buffers.get_mut(index) else {
            return Err(self
                .device
                .error("VIDIOC_DQBUF (unknown buffer index)", Errno::EINVAL));
        };
        buffer.queued = false;
        let mut payload = [(0, 0); VIDEO_MAX_PLANES];
        if self.buf_type.is_multiplanar() {
            for (out, plane) in payload.iter_mut().zip(&raw_planes).take(self.planes) {
                *out = (plane.data_offset, plane.bytesused);
            }
        } else {
            payload[0] = (0, raw.bytesused);
        }
        Ok(Some(Dequeued {
            index,
            flags: raw.flags,
            sequence: raw.sequence,
            timestamp: raw.timestamp,
            payload,
        }))
    }

    /// `VIDIOC_STREAMON`.
    pub(crate) fn stream_on(&mut self) -> Result<(), V4l2Error> {
        self.device.stream_on(self.buf_type)?;
        self.streaming = true;
        Ok(())
    }

    /// `VIDIOC_STREAMOFF`: the driver gives every buffer back.
    pub(crate) fn stream_off(&mut self) -> Result<(), V4l2Error> {
        self.device.stream_off(self.buf_type)?;
        self.streaming = false;
        for buffer in &mut self.buffers {
            buffer.queued = false;
        }
        Ok(())
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Errors are ignored: this is teardown, and the fd closing releases everything anyway.
        if self.streaming {
            let _ = self.stream_off();
        }
        // Unmap and close before freeing: drivers refuse REQBUFS(0) while buffers are mapped
        // (or, on newer kernels, orphan them until unmapped).
        self.buffers.clear();
        let _ = self
            .device
            .request_buffers(self.buf_type, self.memory.raw(), 0);
    }
}
