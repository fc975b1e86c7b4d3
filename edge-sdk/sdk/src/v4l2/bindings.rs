//! The parts of `<linux/videodev2.h>` and `<linux/v4l2-controls.h>` the SDK uses, transcribed by
//! hand with the kernel's names so the header can be searched for them.
//!
//! Layouts are those of the kernel UAPI on LP64 targets (x86_64, aarch64); the compile-time size
//! checks at the end of this file hold them to the header's `sizeof` values, and the ioctl request
//! codes nix computes from those sizes are checked against the header's in the unit tests.
#![allow(
    non_camel_case_types,
    reason = "C names, so that every item can be found in videodev2.h"
)]
#![allow(
    dead_code,
    reason = "a faithful transcription: not every field and constant is read"
)]

use core::ffi::{c_ulong, c_void};

use nix::libc::{timespec, timeval};

/// Planes a multi-planar buffer can have.
pub(crate) const VIDEO_MAX_PLANES: usize = 8;

// --- capabilities (struct v4l2_capability) ----------------------------------------------------

pub(crate) const V4L2_CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub(crate) const V4L2_CAP_VIDEO_OUTPUT: u32 = 0x0000_0002;
pub(crate) const V4L2_CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub(crate) const V4L2_CAP_VIDEO_OUTPUT_MPLANE: u32 = 0x0000_2000;
pub(crate) const V4L2_CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
pub(crate) const V4L2_CAP_VIDEO_M2M: u32 = 0x0000_8000;
pub(crate) const V4L2_CAP_READWRITE: u32 = 0x0100_0000;
pub(crate) const V4L2_CAP_STREAMING: u32 = 0x0400_0000;
pub(crate) const V4L2_CAP_DEVICE_CAPS: u32 = 0x8000_0000;

/// `struct v4l2_capability`: `VIDIOC_QUERYCAP`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_capability {
    pub(crate) driver: [u8; 16],
    pub(crate) card: [u8; 32],
    pub(crate) bus_info: [u8; 32],
    pub(crate) version: u32,
    pub(crate) capabilities: u32,
    pub(crate) device_caps: u32,
    pub(crate) reserved: [u32; 3],
}

// --- buffer types, memory, fields -------------------------------------------------------------

pub(crate) const V4L2_BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub(crate) const V4L2_BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub(crate) const V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub(crate) const V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;

pub(crate) const V4L2_MEMORY_MMAP: u32 = 1;
pub(crate) const V4L2_MEMORY_USERPTR: u32 = 2;
pub(crate) const V4L2_MEMORY_DMABUF: u32 = 4;

pub(crate) const V4L2_FIELD_ANY: u32 = 0;
pub(crate) const V4L2_FIELD_NONE: u32 = 1;

// --- formats ----------------------------------------------------------------------------------

/// `struct v4l2_pix_format`: single-planar image format.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_pix_format {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixelformat: u32,
    pub(crate) field: u32,
    pub(crate) bytesperline: u32,
    pub(crate) sizeimage: u32,
    pub(crate) colorspace: u32,
    pub(crate) priv_: u32,
    pub(crate) flags: u32,
    /// `ycbcr_enc` or `hsv_enc` (a union of two `__u32`).
    pub(crate) ycbcr_enc: u32,
    pub(crate) quantization: u32,
    pub(crate) xfer_func: u32,
}

/// `struct v4l2_plane_pix_format` (packed in the header).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_plane_pix_format {
    pub(crate) sizeimage: u32,
    pub(crate) bytesperline: u32,
    pub(crate) reserved: [u16; 6],
}

/// `struct v4l2_pix_format_mplane` (packed in the header): multi-planar image format.
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_pix_format_mplane {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixelformat: u32,
    pub(crate) field: u32,
    pub(crate) colorspace: u32,
    pub(crate) plane_fmt: [v4l2_plane_pix_format; VIDEO_MAX_PLANES],
    pub(crate) num_planes: u8,
    pub(crate) flags: u8,
    /// `ycbcr_enc` or `hsv_enc`.
    pub(crate) ycbcr_enc: u8,
    pub(crate) quantization: u8,
    pub(crate) xfer_func: u8,
    pub(crate) reserved: [u8; 7],
}

/// The `fmt` union of `struct v4l2_format`. The header's union also holds `struct v4l2_window`,
/// whose pointers give the union pointer alignment; `_align` reproduces that.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union v4l2_format_fmt {
    pub(crate) pix: v4l2_pix_format,
    pub(crate) pix_mp: v4l2_pix_format_mplane,
    pub(crate) raw_data: [u8; 200],
    _align: [*mut c_void; 200 / size_of::<*mut c_void>()],
}

/// `struct v4l2_format`: `VIDIOC_G_FMT`, `VIDIOC_S_FMT`, `VIDIOC_TRY_FMT`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_format {
    pub(crate) type_: u32,
    pub(crate) fmt: v4l2_format_fmt,
}

pub(crate) const V4L2_FMT_FLAG_COMPRESSED: u32 = 0x0001;

/// `struct v4l2_fmtdesc`: `VIDIOC_ENUM_FMT`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_fmtdesc {
    pub(crate) index: u32,
    pub(crate) type_: u32,
    pub(crate) flags: u32,
    pub(crate) description: [u8; 32],
    pub(crate) pixelformat: u32,
    pub(crate) mbus_code: u32,
    pub(crate) reserved: [u32; 3],
}

// --- buffers ----------------------------------------------------------------------------------

/// `struct v4l2_requestbuffers`: `VIDIOC_REQBUFS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_requestbuffers {
    pub(crate) count: u32,
    pub(crate) type_: u32,
    pub(crate) memory: u32,
    pub(crate) capabilities: u32,
    pub(crate) flags: u8,
    pub(crate) reserved: [u8; 3],
}

pub(crate) const V4L2_BUF_CAP_SUPPORTS_MMAP: u32 = 1 << 0;
pub(crate) const V4L2_BUF_CAP_SUPPORTS_DMABUF: u32 = 1 << 2;

/// `struct v4l2_timecode`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_timecode {
    pub(crate) type_: u32,
    pub(crate) flags: u32,
    pub(crate) frames: u8,
    pub(crate) seconds: u8,
    pub(crate) minutes: u8,
    pub(crate) hours: u8,
    pub(crate) userbits: [u8; 4],
}

/// The `m` union of `struct v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union v4l2_plane_m {
    pub(crate) mem_offset: u32,
    pub(crate) userptr: c_ulong,
    pub(crate) fd: i32,
}

/// `struct v4l2_plane`: one plane of a multi-planar buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_plane {
    pub(crate) bytesused: u32,
    pub(crate) length: u32,
    pub(crate) m: v4l2_plane_m,
    pub(crate) data_offset: u32,
    pub(crate) reserved: [u32; 11],
}

/// The `m` union of `struct v4l2_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union v4l2_buffer_m {
    pub(crate) offset: u32,
    pub(crate) userptr: c_ulong,
    pub(crate) planes: *mut v4l2_plane,
    pub(crate) fd: i32,
}

/// `struct v4l2_buffer`: `VIDIOC_QUERYBUF`, `VIDIOC_QBUF`, `VIDIOC_DQBUF`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_buffer {
    pub(crate) index: u32,
    pub(crate) type_: u32,
    pub(crate) bytesused: u32,
    pub(crate) flags: u32,
    pub(crate) field: u32,
    pub(crate) timestamp: timeval,
    pub(crate) timecode: v4l2_timecode,
    pub(crate) sequence: u32,
    pub(crate) memory: u32,
    pub(crate) m: v4l2_buffer_m,
    pub(crate) length: u32,
    pub(crate) reserved2: u32,
    /// `request_fd` or `reserved` (a union of two 32-bit fields).
    pub(crate) request_fd: i32,
}

pub(crate) const V4L2_BUF_FLAG_MAPPED: u32 = 0x0000_0001;
pub(crate) const V4L2_BUF_FLAG_QUEUED: u32 = 0x0000_0002;
pub(crate) const V4L2_BUF_FLAG_DONE: u32 = 0x0000_0004;
pub(crate) const V4L2_BUF_FLAG_KEYFRAME: u32 = 0x0000_0008;
pub(crate) const V4L2_BUF_FLAG_PFRAME: u32 = 0x0000_0010;
pub(crate) const V4L2_BUF_FLAG_BFRAME: u32 = 0x0000_0020;
pub(crate) const V4L2_BUF_FLAG_ERROR: u32 = 0x0000_0040;
pub(crate) const V4L2_BUF_FLAG_TIMESTAMP_MASK: u32 = 0x0000_e000;
pub(crate) const V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;
pub(crate) const V4L2_BUF_FLAG_TIMESTAMP_COPY: u32 = 0x0000_4000;
pub(crate) const V4L2_BUF_FLAG_LAST: u32 = 0x0010_0000;

/// `struct v4l2_exportbuffer`: `VIDIOC_EXPBUF`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_exportbuffer {
    pub(crate) type_: u32,
    pub(crate) index: u32,
    pub(crate) plane: u32,
    pub(crate) flags: u32,
    pub(crate) fd: i32,
    pub(crate) reserved: [u32; 11],
}

// --- stream parameters ------------------------------------------------------------------------

/// `struct v4l2_fract`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_fract {
    pub(crate) numerator: u32,
    pub(crate) denominator: u32,
}

pub(crate) const V4L2_CAP_TIMEPERFRAME: u32 = 0x1000;

/// `struct v4l2_captureparm`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_captureparm {
    pub(crate) capability: u32,
    pub(crate) capturemode: u32,
    pub(crate) timeperframe: v4l2_fract,
    pub(crate) extendedmode: u32,
    pub(crate) readbuffers: u32,
    pub(crate) reserved: [u32; 4],
}

/// `struct v4l2_outputparm`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_outputparm {
    pub(crate) capability: u32,
    pub(crate) outputmode: u32,
    pub(crate) timeperframe: v4l2_fract,
    pub(crate) extendedmode: u32,
    pub(crate) writebuffers: u32,
    pub(crate) reserved: [u32; 4],
}

/// The `parm` union of `struct v4l2_streamparm`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union v4l2_streamparm_parm {
    pub(crate) capture: v4l2_captureparm,
    pub(crate) output: v4l2_outputparm,
    pub(crate) raw_data: [u8; 200],
}

/// `struct v4l2_streamparm`: `VIDIOC_G_PARM`, `VIDIOC_S_PARM`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_streamparm {
    pub(crate) type_: u32,
    pub(crate) parm: v4l2_streamparm_parm,
}

// --- controls ---------------------------------------------------------------------------------

/// `struct v4l2_control`: `VIDIOC_G_CTRL`, `VIDIOC_S_CTRL`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_control {
    pub(crate) id: u32,
    pub(crate) value: i32,
}

/// The value union of `struct v4l2_ext_control`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union v4l2_ext_control_value {
    pub(crate) value: i32,
    pub(crate) value64: i64,
    pub(crate) ptr: *mut c_void,
}

/// `struct v4l2_ext_control` (packed in the header).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_ext_control {
    pub(crate) id: u32,
    pub(crate) size: u32,
    pub(crate) reserved2: [u32; 1],
    pub(crate) value: v4l2_ext_control_value,
}

/// `struct v4l2_ext_controls`: `VIDIOC_S_EXT_CTRLS` and friends.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_ext_controls {
    /// `which` or `ctrl_class`.
    pub(crate) which: u32,
    pub(crate) count: u32,
    pub(crate) error_idx: u32,
    pub(crate) request_fd: i32,
    pub(crate) reserved: [u32; 1],
    pub(crate) controls: *mut v4l2_ext_control,
}

/// `struct v4l2_queryctrl`: `VIDIOC_QUERYCTRL`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_queryctrl {
    pub(crate) id: u32,
    pub(crate) type_: u32,
    pub(crate) name: [u8; 32],
    pub(crate) minimum: i32,
    pub(crate) maximum: i32,
    pub(crate) step: i32,
    pub(crate) default_value: i32,
    pub(crate) flags: u32,
    pub(crate) reserved: [u32; 2],
}

pub(crate) const V4L2_CTRL_FLAG_DISABLED: u32 = 0x0001;
pub(crate) const V4L2_CTRL_FLAG_READ_ONLY: u32 = 0x0004;
pub(crate) const V4L2_CTRL_FLAG_INACTIVE: u32 = 0x0010;
pub(crate) const V4L2_CTRL_FLAG_WRITE_ONLY: u32 = 0x0040;
/// Or-ed into `v4l2_queryctrl.id`: return the next control after this id.
pub(crate) const V4L2_CTRL_FLAG_NEXT_CTRL: u32 = 0x8000_0000;
/// Or-ed into `v4l2_queryctrl.id`: include compound (pointer) controls in the walk.
pub(crate) const V4L2_CTRL_FLAG_NEXT_COMPOUND: u32 = 0x4000_0000;
/// `V4L2_CTRL_ID2WHICH`: the control class bits of an id.
pub(crate) const V4L2_CTRL_CLASS_MASK: u32 = 0x0fff_0000;

// enum v4l2_ctrl_type (the ones the SDK tells apart)
pub(crate) const V4L2_CTRL_TYPE_INTEGER: u32 = 1;
pub(crate) const V4L2_CTRL_TYPE_BOOLEAN: u32 = 2;
pub(crate) const V4L2_CTRL_TYPE_MENU: u32 = 3;
pub(crate) const V4L2_CTRL_TYPE_BUTTON: u32 = 4;
pub(crate) const V4L2_CTRL_TYPE_INTEGER64: u32 = 5;
pub(crate) const V4L2_CTRL_TYPE_CTRL_CLASS: u32 = 6;
pub(crate) const V4L2_CTRL_TYPE_STRING: u32 = 7;
pub(crate) const V4L2_CTRL_TYPE_BITMASK: u32 = 8;
pub(crate) const V4L2_CTRL_TYPE_INTEGER_MENU: u32 = 9;
/// Types from here on are compound: set through a pointer and a size.
pub(crate) const V4L2_CTRL_COMPOUND_TYPES: u32 = 0x0100;

/// `V4L2_CID_CODEC_BASE` (`V4L2_CTRL_CLASS_CODEC | 0x900`): the stateful codec controls.
const V4L2_CID_CODEC_BASE: u32 = 0x0099_0900;
pub(crate) const V4L2_CID_MIN_BUFFERS_FOR_OUTPUT: u32 = 0x0098_0900 + 40;
pub(crate) const V4L2_CID_MPEG_VIDEO_B_FRAMES: u32 = V4L2_CID_CODEC_BASE + 202;
pub(crate) const V4L2_CID_MPEG_VIDEO_GOP_SIZE: u32 = V4L2_CID_CODEC_BASE + 203;
pub(crate) const V4L2_CID_MPEG_VIDEO_BITRATE_MODE: u32 = V4L2_CID_CODEC_BASE + 206;
pub(crate) const V4L2_CID_MPEG_VIDEO_BITRATE: u32 = V4L2_CID_CODEC_BASE + 207;
pub(crate) const V4L2_CID_MPEG_VIDEO_HEADER_MODE: u32 = V4L2_CID_CODEC_BASE + 216;
pub(crate) const V4L2_CID_MPEG_VIDEO_MAX_REF_PIC: u32 = V4L2_CID_CODEC_BASE + 217;
pub(crate) const V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER: u32 = V4L2_CID_CODEC_BASE + 226;
pub(crate) const V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME: u32 = V4L2_CID_CODEC_BASE + 229;
pub(crate) const V4L2_CID_MPEG_VIDEO_H264_I_PERIOD: u32 = V4L2_CID_CODEC_BASE + 358;
pub(crate) const V4L2_CID_MPEG_VIDEO_H264_LEVEL: u32 = V4L2_CID_CODEC_BASE + 359;
pub(crate) const V4L2_CID_MPEG_VIDEO_H264_PROFILE: u32 = V4L2_CID_CODEC_BASE + 363;
pub(crate) const V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR: u32 = V4L2_CID_CODEC_BASE + 644;

pub(crate) const V4L2_MPEG_VIDEO_BITRATE_MODE_CBR: i32 = 1;
pub(crate) const V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME: i32 = 1;
pub(crate) const V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE: i32 = 0;
pub(crate) const V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE: i32 = 1;
/// `V4L2_MPEG_VIDEO_H264_LEVEL_1_0`; the levels follow in the order 1.0, 1b, 1.1, 1.2, 1.3,
/// 2.0, 2.1, 2.2, 3.0, 3.1, 3.2, 4.0, 4.1, 4.2, 5.0, 5.1, 5.2.
pub(crate) const V4L2_MPEG_VIDEO_H264_LEVEL_1_0: i32 = 0;

// --- encoder commands -------------------------------------------------------------------------

pub(crate) const V4L2_ENC_CMD_START: u32 = 0;
pub(crate) const V4L2_ENC_CMD_STOP: u32 = 1;

/// `struct v4l2_encoder_cmd`: `VIDIOC_ENCODER_CMD`, `VIDIOC_TRY_ENCODER_CMD`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_encoder_cmd {
    pub(crate) cmd: u32,
    pub(crate) flags: u32,
    /// The `raw.data` union member, the only one.
    pub(crate) data: [u32; 8],
}

// --- events -----------------------------------------------------------------------------------

pub(crate) const V4L2_EVENT_EOS: u32 = 2;
pub(crate) const V4L2_EVENT_SOURCE_CHANGE: u32 = 5;
pub(crate) const V4L2_EVENT_SRC_CH_RESOLUTION: u32 = 1 << 0;

/// `struct v4l2_event_subscription`: `VIDIOC_SUBSCRIBE_EVENT`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_event_subscription {
    pub(crate) type_: u32,
    pub(crate) id: u32,
    pub(crate) flags: u32,
    pub(crate) reserved: [u32; 5],
}

/// `struct v4l2_event_src_change`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_event_src_change {
    pub(crate) changes: u32,
}

/// The `u` union of `struct v4l2_event`. The header's union holds `struct v4l2_event_ctrl`
/// with a `__s64`, which sets its alignment; `_align` reproduces that.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union v4l2_event_u {
    pub(crate) src_change: v4l2_event_src_change,
    pub(crate) data: [u8; 64],
    _align: [i64; 8],
}

/// `struct v4l2_event`: `VIDIOC_DQEVENT`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct v4l2_event {
    pub(crate) type_: u32,
    pub(crate) u: v4l2_event_u,
    pub(crate) pending: u32,
    pub(crate) sequence: u32,
    pub(crate) timestamp: timespec,
    pub(crate) id: u32,
    pub(crate) reserved: [u32; 8],
}

// --- layout checks ----------------------------------------------------------------------------

// `sizeof` of each struct in the kernel UAPI on LP64 (x86_64 and aarch64 agree). A mismatch here
// would also change the ioctl request codes, which encode the argument size.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const _: () = {
    assert!(size_of::<v4l2_capability>() == 104);
    assert!(size_of::<v4l2_pix_format>() == 48);
    assert!(size_of::<v4l2_plane_pix_format>() == 20);
    assert!(size_of::<v4l2_pix_format_mplane>() == 192);
    assert!(size_of::<v4l2_format>() == 208);
    assert!(core::mem::offset_of!(v4l2_format, fmt) == 8);
    assert!(size_of::<v4l2_fmtdesc>() == 64);
    assert!(size_of::<v4l2_requestbuffers>() == 20);
    assert!(size_of::<v4l2_timecode>() == 16);
    assert!(size_of::<v4l2_plane>() == 64);
    assert!(core::mem::offset_of!(v4l2_plane, data_offset) == 16);
    assert!(size_of::<v4l2_buffer>() == 88);
    assert!(core::mem::offset_of!(v4l2_buffer, timestamp) == 24);
    assert!(core::mem::offset_of!(v4l2_buffer, sequence) == 56);
    assert!(core::mem::offset_of!(v4l2_buffer, m) == 64);
    assert!(core::mem::offset_of!(v4l2_buffer, length) == 72);
    assert!(core::mem::offset_of!(v4l2_buffer, request_fd) == 80);
    assert!(size_of::<v4l2_exportbuffer>() == 64);
    assert!(size_of::<v4l2_captureparm>() == 40);
    assert!(size_of::<v4l2_outputparm>() == 40);
    assert!(size_of::<v4l2_streamparm>() == 204);
    assert!(size_of::<v4l2_control>() == 8);
    assert!(size_of::<v4l2_ext_control>() == 20);
    assert!(size_of::<v4l2_ext_controls>() == 32);
    assert!(core::mem::offset_of!(v4l2_ext_controls, controls) == 24);
    assert!(size_of::<v4l2_queryctrl>() == 68);
    assert!(size_of::<v4l2_encoder_cmd>() == 40);
    assert!(size_of::<v4l2_event_subscription>() == 32);
    assert!(size_of::<v4l2_event>() == 136);
    assert!(core::mem::offset_of!(v4l2_event, timestamp) == 80);
    assert!(core::mem::offset_of!(v4l2_event, id) == 96);
};

// --- ioctls -----------------------------------------------------------------------------------

/// The `VIDIOC_*` ioctls as typed request numbers: nix computes each number from the direction,
/// the `'V'` type, the number and the argument type's size, exactly as `_IOR`/`_IOW`/`_IOWR` in
/// the header, and the [`Request`] carries the argument type so a call cannot pass another one.
/// [`super::access::Access::ioctl`] issues them, through the kernel or libv4l2.
pub(crate) mod ioctl {
    use core::marker::PhantomData;

    use nix::sys::ioctl::ioctl_num_type;

    use super::*;

    const V: u8 = b'V';

    /// An ioctl request number and the type of the argument it reads and writes.
    pub(crate) struct Request<T> {
        code: ioctl_num_type,
        arg: PhantomData<fn(*mut T)>,
    }

    // Not derived: a derive would require `T: Copy`.
    impl<T> Clone for Request<T> {
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<T> Copy for Request<T> {}

    impl<T> Request<T> {
        const fn new(code: ioctl_num_type) -> Self {
            Self {
                code,
                arg: PhantomData,
            }
        }

        /// The request number.
        pub(crate) const fn code(self) -> ioctl_num_type {
            self.code
        }
    }

    macro_rules! request {
        ($doc:literal, $name:ident, read, $nr:literal, $ty:ty) => {
            #[doc = $doc]
            pub(crate) const $name: Request<$ty> =
                Request::new(nix::request_code_read!(V, $nr, size_of::<$ty>()));
        };
        ($doc:literal, $name:ident, write, $nr:literal, $ty:ty) => {
            #[doc = $doc]
            pub(crate) const $name: Request<$ty> =
                Request::new(nix::request_code_write!(V, $nr, size_of::<$ty>()));
        };
        ($doc:literal, $name:ident, readwrite, $nr:literal, $ty:ty) => {
            #[doc = $doc]
            pub(crate) const $name: Request<$ty> =
                Request::new(nix::request_code_readwrite!(V, $nr, size_of::<$ty>()));
        };
    }

    request!(
        "`VIDIOC_QUERYCAP`",
        VIDIOC_QUERYCAP,
        read,
        0,
        v4l2_capability
    );
    request!(
        "`VIDIOC_ENUM_FMT`",
        VIDIOC_ENUM_FMT,
        readwrite,
        2,
        v4l2_fmtdesc
    );
    request!("`VIDIOC_G_FMT`", VIDIOC_G_FMT, readwrite, 4, v4l2_format);
    request!("`VIDIOC_S_FMT`", VIDIOC_S_FMT, readwrite, 5, v4l2_format);
    request!(
        "`VIDIOC_REQBUFS`",
        VIDIOC_REQBUFS,
        readwrite,
        8,
        v4l2_requestbuffers
    );
    request!(
        "`VIDIOC_QUERYBUF`",
        VIDIOC_QUERYBUF,
        readwrite,
        9,
        v4l2_buffer
    );
    request!("`VIDIOC_QBUF`", VIDIOC_QBUF, readwrite, 15, v4l2_buffer);
    request!(
        "`VIDIOC_EXPBUF`",
        VIDIOC_EXPBUF,
        readwrite,
        16,
        v4l2_exportbuffer
    );
    request!("`VIDIOC_DQBUF`", VIDIOC_DQBUF, readwrite, 17, v4l2_buffer);
    request!(
        "`VIDIOC_STREAMON` (the argument is the buffer type)",
        VIDIOC_STREAMON,
        write,
        18,
        core::ffi::c_int
    );
    request!(
        "`VIDIOC_STREAMOFF` (the argument is the buffer type)",
        VIDIOC_STREAMOFF,
        write,
        19,
        core::ffi::c_int
    );
    request!(
        "`VIDIOC_G_PARM`",
        VIDIOC_G_PARM,
        readwrite,
        21,
        v4l2_streamparm
    );
    request!(
        "`VIDIOC_S_PARM`",
        VIDIOC_S_PARM,
        readwrite,
        22,
        v4l2_streamparm
    );
    request!(
        "`VIDIOC_G_CTRL`",
        VIDIOC_G_CTRL,
        readwrite,
        27,
        v4l2_control
    );
    request!(
        "`VIDIOC_S_CTRL`",
        VIDIOC_S_CTRL,
        readwrite,
        28,
        v4l2_control
    );
    request!(
        "`VIDIOC_QUERYCTRL`",
        VIDIOC_QUERYCTRL,
        readwrite,
        36,
        v4l2_queryctrl
    );
    request!(
        "`VIDIOC_TRY_FMT`",
        VIDIOC_TRY_FMT,
        readwrite,
        64,
        v4l2_format
    );
    request!(
        "`VIDIOC_S_EXT_CTRLS`",
        VIDIOC_S_EXT_CTRLS,
        readwrite,
        72,
        v4l2_ext_controls
    );
    request!(
        "`VIDIOC_ENCODER_CMD`",
        VIDIOC_ENCODER_CMD,
        readwrite,
        77,
        v4l2_encoder_cmd
    );
    request!(
        "`VIDIOC_TRY_ENCODER_CMD`",
        VIDIOC_TRY_ENCODER_CMD,
        readwrite,
        78,
        v4l2_encoder_cmd
    );
    request!("`VIDIOC_DQEVENT`", VIDIOC_DQEVENT, read, 89, v4l2_event);
    request!(
        "`VIDIOC_SUBSCRIBE_EVENT`",
        VIDIOC_SUBSCRIBE_EVENT,
        write,
        90,
        v4l2_event_subscription
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request numbers nix derives from our struct sizes equal the header's `VIDIOC_*` values
    /// (printed from `<linux/videodev2.h>` on x86_64).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn request_codes_match_the_kernel_header() {
        let codes: [(&str, nix::sys::ioctl::ioctl_num_type, _); 12] = [
            ("QUERYCAP", ioctl::VIDIOC_QUERYCAP.code(), 0x8068_5600),
            ("ENUM_FMT", ioctl::VIDIOC_ENUM_FMT.code(), 0xc040_5602),
            ("S_FMT", ioctl::VIDIOC_S_FMT.code(), 0xc0d0_5605),
            ("REQBUFS", ioctl::VIDIOC_REQBUFS.code(), 0xc014_5608),
            ("QBUF", ioctl::VIDIOC_QBUF.code(), 0xc058_560f),
            ("EXPBUF", ioctl::VIDIOC_EXPBUF.code(), 0xc040_5610),
            ("STREAMON", ioctl::VIDIOC_STREAMON.code(), 0x4004_5612),
            ("S_PARM", ioctl::VIDIOC_S_PARM.code(), 0xc0cc_5616),
            ("QUERYCTRL", ioctl::VIDIOC_QUERYCTRL.code(), 0xc044_5624),
            ("S_EXT_CTRLS", ioctl::VIDIOC_S_EXT_CTRLS.code(), 0xc020_5648),
            ("ENCODER_CMD", ioctl::VIDIOC_ENCODER_CMD.code(), 0xc028_564d),
            ("DQEVENT", ioctl::VIDIOC_DQEVENT.code(), 0x8088_5659),
        ];
        for (name, ours, header) in codes {
            assert_eq!(ours, header, "VIDIOC_{name}: {ours:#x} != {header:#x}");
        }
    }

    #[test]
    fn control_ids_match_the_kernel_header() {
        // Values printed from <linux/v4l2-controls.h>.
        assert_eq!(V4L2_CID_MPEG_VIDEO_BITRATE_MODE, 10_029_518);
        assert_eq!(V4L2_CID_MPEG_VIDEO_B_FRAMES, 10_029_514);
        assert_eq!(V4L2_CID_MPEG_VIDEO_GOP_SIZE, 10_029_515);
        assert_eq!(V4L2_CID_MPEG_VIDEO_BITRATE, 10_029_519);
        assert_eq!(V4L2_CID_MPEG_VIDEO_HEADER_MODE, 10_029_528);
        assert_eq!(V4L2_CID_MPEG_VIDEO_MAX_REF_PIC, 10_029_529);
        assert_eq!(V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 10_029_538);
        assert_eq!(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 10_029_541);
        assert_eq!(V4L2_CID_MPEG_VIDEO_H264_I_PERIOD, 10_029_670);
        assert_eq!(V4L2_CID_MPEG_VIDEO_H264_LEVEL, 10_029_671);
        assert_eq!(V4L2_CID_MPEG_VIDEO_H264_PROFILE, 10_029_675);
        assert_eq!(V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR, 10_029_956);
    }
}
