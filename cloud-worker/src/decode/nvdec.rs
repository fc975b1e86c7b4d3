//! The GPU decoder backend: NVIDIA's NVDEC through the Video Codec SDK's parser and decoder
//! (`libnvcuvid.so.1`), on the GPU's primary CUDA context (`libcuda.so.1`), both loaded at run
//! time (bindings in `flowcloud_sys::nvdec`).
//!
//! - [`NvdecLibrary`] loads the two libraries once per process; a machine without the NVIDIA
//!   driver gets [`NvdecError::LibraryNotFound`] naming the missing one, never a panic.
//! - [`NvdecDecoder`] is one stream's decoder: the SDK's H.264 parser calls back into it
//!   (sequence → create or reconfigure the decoder, decode → `cuvidDecodePicture`, display →
//!   queue the picture index) from inside `cuvidParseVideoData`. Display delay is 0, so the
//!   picture of an access unit is displayed by the call that parsed it, as [`Decoder`] requires.
//! - [`MappedFrame`] is a decoded NV12 surface mapped into CUDA memory, unmapped on drop: its
//!   device pointer, pitch and crop are what the CUDA preprocess kernel reads; it can also be
//!   copied to the host as an [`I420Frame`] for the CPU pipeline and for bit-exact comparison
//!   with openh264.
//! - With [`NvdecDecoder::with_device_output`], [`Decoder::decode_picture`] hands pictures on
//!   in CUDA memory ([`Picture::Device`]): the crop is copied device to device into a packed
//!   NV12 buffer from the stream's [`DeviceFramePool`] ([`MappedFrame::copy_to_device`]), on
//!   the pool's stream, which is synchronized before the surface is unmapped, so the surface
//!   goes back to NVDEC at once and the picture is complete when handed on. The pool must be
//!   on the decoder's GPU.
//!
//! Every decoder retains the GPU's *primary* context, the one cudarc (and so `flowcloud-cuda`)
//! uses: one CUDA context per GPU, shared by every stream's decoder and the kernels. Each call
//! into NVDEC pushes that context on the calling thread and pops it after, so a decoder may move
//! between threads ([`Send`]) but is used by one at a time.
//!
//! The decoder surfaces are never cropped or scaled by NVDEC (target size = coded size); the
//! SPS's cropping rectangle is applied when reading the surface ([`MappedFrame::crop`]), so
//! the pixels are the decoder's own, as openh264's are.
//!
//! Errors stay with their stream: a failing callback records its error, returns 0 (which makes
//! `cuvidParseVideoData` fail) and the error is returned by that [`Decoder::decode`] call;
//! nothing a stream does touches another stream's decoder. No callback can unwind into C: each
//! body runs under `catch_unwind`.

use std::collections::VecDeque;
use std::ffi::{CStr, c_int, c_uint, c_ulong, c_void};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::Arc;

use cudarc::driver::DevicePtrMut;
use flowcloud_cuda::Nv12Layout;
use flowcloud_sys::nvdec as sys;
use libloading::Library;

use super::{DecodeError, DecodeOutcome, Decoder, DecoderConfig, check_access_unit};
use crate::frame::{DeviceFramePool, DeviceNv12, I420Frame, Nv12Rows, Picture};

pub(crate) const BACKEND: &str = "nvdec";

/// The CUDA driver library.
pub const CUDA_LIBRARY: &str = "libcuda.so.1";
/// The NVDEC library (installed with the NVIDIA driver).
pub const NVCUVID_LIBRARY: &str = "libnvcuvid.so.1";

/// Most decode surfaces one stream may hold (NVDEC's own limit for `ulNumDecodeSurfaces`).
pub const MAX_DECODE_SURFACES: u32 = 32;
/// Decode surfaces when the parser gives no minimum: the H.264 DPB of 16 frames, the current
/// picture and headroom, as the SDK's samples use for H.264.
const H264_DEFAULT_DECODE_SURFACES: u32 = 20;
/// Output (post-processed) surfaces: one frame is mapped at a time ([`MappedFrame`] borrows the
/// decoder mutably), one more lets NVDEC post-process the next picture meanwhile.
const OUTPUT_SURFACES: u32 = 2;
/// Pictures the display queue holds at most; with display delay 0 there is one per access
/// unit, so more means the parser misbehaves and the oldest are dropped.
const MAX_QUEUED_PICTURES: usize = MAX_DECODE_SURFACES as usize;

/// NVDEC or the CUDA driver cannot be used: the worker then decodes on the CPU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NvdecError {
    /// A library could not be loaded (no NVIDIA driver on this machine).
    #[error(
        "NVDEC is not available: {library} cannot be loaded ({reason}); it comes with the NVIDIA \
         driver, install it or use the CPU decoder (openh264)"
    )]
    LibraryNotFound {
        /// The library file name.
        library: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// A library loaded but lacks an entry point (a driver too old for NVDEC API 11.1).
    #[error(
        "NVDEC is not available: {library} has no {symbol} ({reason}); update the NVIDIA driver"
    )]
    MissingSymbol {
        /// The library file name.
        library: &'static str,
        /// The entry point.
        symbol: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// The driver reports fewer GPUs than asked for.
    #[error(
        "NVDEC is not available: GPU {ordinal} was asked for, the driver reports {count} GPU(s)"
    )]
    NoDevice {
        /// The GPU index asked for.
        ordinal: usize,
        /// GPUs the driver sees.
        count: usize,
    },
    /// A CUDA driver or NVDEC call failed.
    #[error("{call} failed: {status}")]
    Call {
        /// The call.
        call: &'static str,
        /// The driver's status name (`CUDA_ERROR_...`) or number.
        status: String,
    },
}

impl From<NvdecError> for DecodeError {
    fn from(e: NvdecError) -> Self {
        Self::Backend {
            backend: BACKEND,
            reason: e.to_string(),
        }
    }
}

/// The function type inside bindgen's `Option<unsafe extern "C" fn(..)>` entry-point aliases.
trait EntryPoint: Copy {
    type Fn: Copy;
    fn get(self) -> Option<Self::Fn>;
}

impl<F: Copy> EntryPoint for Option<F> {
    type Fn = F;
    fn get(self) -> Option<F> {
        self
    }
}

type Entry<T> = <T as EntryPoint>::Fn;

// The two stream calls of the device-output copy. `flowcloud_sys::nvdec`'s generated driver
// types cover the host copy only, and cudarc loads its own entry points without exporting
// their types, so these follow `cuda.h`'s declarations, in bindgen's form.
#[allow(non_camel_case_types)]
type tcuMemcpy2DAsync_v2 = Option<
    unsafe extern "C" fn(pcopy: *const sys::CUDA_MEMCPY2D, stream: sys::CUstream) -> sys::CUresult,
>;
#[allow(non_camel_case_types)]
type tcuStreamSynchronize = Option<unsafe extern "C" fn(stream: sys::CUstream) -> sys::CUresult>;

/// Looks `symbol` up in `lib` as the entry-point type `T`.
///
/// # Safety
///
/// `T` must be the C signature of `symbol` in that library.
unsafe fn entry<T: EntryPoint>(
    lib: &Library,
    library: &'static str,
    symbol: &'static str,
) -> Result<T::Fn, NvdecError> {
    let missing = |reason: String| NvdecError::MissingSymbol {
        library,
        symbol,
        reason,
    };
    // SAFETY: the caller vouches for the signature; the value is a pointer-sized
    // `Option<fn>` (null is `None`).
    let found = unsafe { lib.get::<T>(symbol) }.map_err(|e| missing(e.to_string()))?;
    (*found)
        .get()
        .ok_or_else(|| missing("null address".to_owned()))
}

/// The CUDA driver calls the decoder needs.
#[derive(Clone, Copy)]
struct CudaApi {
    init: Entry<sys::tcuInit>,
    device_get_count: Entry<sys::tcuDeviceGetCount>,
    device_get: Entry<sys::tcuDeviceGet>,
    primary_ctx_retain: Entry<sys::tcuDevicePrimaryCtxRetain>,
    primary_ctx_release: Entry<sys::tcuDevicePrimaryCtxRelease>,
    ctx_push: Entry<sys::tcuCtxPushCurrent_v2>,
    ctx_pop: Entry<sys::tcuCtxPopCurrent_v2>,
    memcpy_2d: Entry<sys::tcuMemcpy2D_v2>,
    // In the table rather than called through `cudarc::driver::sys`, so that every call of the
    // decoder reaches the same library and reports its status the same way.
    memcpy_2d_async: Entry<tcuMemcpy2DAsync_v2>,
    stream_synchronize: Entry<tcuStreamSynchronize>,
    get_error_name: Entry<sys::tcuGetErrorName>,
}

/// The NVDEC calls the decoder needs.
#[derive(Clone, Copy)]
struct CuvidApi {
    create_video_parser: Entry<sys::tcuvidCreateVideoParser>,
    parse_video_data: Entry<sys::tcuvidParseVideoData>,
    destroy_video_parser: Entry<sys::tcuvidDestroyVideoParser>,
    create_decoder: Entry<sys::tcuvidCreateDecoder>,
    reconfigure_decoder: Entry<sys::tcuvidReconfigureDecoder>,
    destroy_decoder: Entry<sys::tcuvidDestroyDecoder>,
    decode_picture: Entry<sys::tcuvidDecodePicture>,
    map_video_frame: Entry<sys::tcuvidMapVideoFrame64>,
    unmap_video_frame: Entry<sys::tcuvidUnmapVideoFrame64>,
    ctx_lock_create: Entry<sys::tcuvidCtxLockCreate>,
    ctx_lock_destroy: Entry<sys::tcuvidCtxLockDestroy>,
}

/// `libcuda.so.1` and `libnvcuvid.so.1`, loaded, with the entry points the decoder uses.
/// Load once and share ([`Arc`]) between every stream's decoder.
pub struct NvdecLibrary {
    cuda: CudaApi,
    cuvid: CuvidApi,
    // The entry points above point into these: they must stay loaded.
    _cuda_lib: Library,
    _cuvid_lib: Library,
}

impl fmt::Debug for NvdecLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvdecLibrary")
            .field("cuda", &CUDA_LIBRARY)
            .field("nvcuvid", &NVCUVID_LIBRARY)
            .finish_non_exhaustive()
    }
}

impl NvdecLibrary {
    /// Loads [`CUDA_LIBRARY`] and [`NVCUVID_LIBRARY`] by name (the loader's search path) and
    /// looks up every entry point.
    ///
    /// # Errors
    ///
    /// [`NvdecError::LibraryNotFound`] naming the library that is missing (the driver first),
    /// [`NvdecError::MissingSymbol`] for a driver without an entry point.
    pub fn load() -> Result<Arc<Self>, NvdecError> {
        Self::load_named(CUDA_LIBRARY, NVCUVID_LIBRARY).map(Arc::new)
    }

    fn load_named(cuda: &'static str, nvcuvid: &'static str) -> Result<Self, NvdecError> {
        let open = |library: &'static str| {
            // SAFETY: loading runs the library's initializers, which have no preconditions
            // (the NVIDIA libraries are loaded the same way by cudarc and FFmpeg).
            unsafe { Library::new(library) }.map_err(|e| NvdecError::LibraryNotFound {
                library,
                reason: e.to_string(),
            })
        };
        let cuda_lib = open(cuda)?;
        let cuvid_lib = open(nvcuvid)?;
        // SAFETY: each type is bindgen's from the header declaring that entry point.
        let cuda_api = unsafe {
            CudaApi {
                init: entry::<sys::tcuInit>(&cuda_lib, cuda, "cuInit")?,
                device_get_count: entry::<sys::tcuDeviceGetCount>(
                    &cuda_lib,
                    cuda,
                    "cuDeviceGetCount",
                )?,
                device_get: entry::<sys::tcuDeviceGet>(&cuda_lib, cuda, "cuDeviceGet")?,
                primary_ctx_retain: entry::<sys::tcuDevicePrimaryCtxRetain>(
                    &cuda_lib,
                    cuda,
                    "cuDevicePrimaryCtxRetain",
                )?,
                primary_ctx_release: entry::<sys::tcuDevicePrimaryCtxRelease>(
                    &cuda_lib,
                    cuda,
                    "cuDevicePrimaryCtxRelease_v2",
                )?,
                ctx_push: entry::<sys::tcuCtxPushCurrent_v2>(
                    &cuda_lib,
                    cuda,
                    "cuCtxPushCurrent_v2",
                )?,
                ctx_pop: entry::<sys::tcuCtxPopCurrent_v2>(&cuda_lib, cuda, "cuCtxPopCurrent_v2")?,
                memcpy_2d: entry::<sys::tcuMemcpy2D_v2>(&cuda_lib, cuda, "cuMemcpy2D_v2")?,
                memcpy_2d_async: entry::<tcuMemcpy2DAsync_v2>(
                    &cuda_lib,
                    cuda,
                    "cuMemcpy2DAsync_v2",
                )?,
                stream_synchronize: entry::<tcuStreamSynchronize>(
                    &cuda_lib,
                    cuda,
                    "cuStreamSynchronize",
                )?,
                get_error_name: entry::<sys::tcuGetErrorName>(&cuda_lib, cuda, "cuGetErrorName")?,
            }
        };
        // SAFETY: as above.
        let cuvid_api = unsafe {
            CuvidApi {
                create_video_parser: entry::<sys::tcuvidCreateVideoParser>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidCreateVideoParser",
                )?,
                parse_video_data: entry::<sys::tcuvidParseVideoData>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidParseVideoData",
                )?,
                destroy_video_parser: entry::<sys::tcuvidDestroyVideoParser>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidDestroyVideoParser",
                )?,
                create_decoder: entry::<sys::tcuvidCreateDecoder>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidCreateDecoder",
                )?,
                reconfigure_decoder: entry::<sys::tcuvidReconfigureDecoder>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidReconfigureDecoder",
                )?,
                destroy_decoder: entry::<sys::tcuvidDestroyDecoder>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidDestroyDecoder",
                )?,
                decode_picture: entry::<sys::tcuvidDecodePicture>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidDecodePicture",
                )?,
                map_video_frame: entry::<sys::tcuvidMapVideoFrame64>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidMapVideoFrame64",
                )?,
                unmap_video_frame: entry::<sys::tcuvidUnmapVideoFrame64>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidUnmapVideoFrame64",
                )?,
                ctx_lock_create: entry::<sys::tcuvidCtxLockCreate>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidCtxLockCreate",
                )?,
                ctx_lock_destroy: entry::<sys::tcuvidCtxLockDestroy>(
                    &cuvid_lib,
                    nvcuvid,
                    "cuvidCtxLockDestroy",
                )?,
            }
        };
        Ok(Self {
            cuda: cuda_api,
            cuvid: cuvid_api,
            _cuda_lib: cuda_lib,
            _cuvid_lib: cuvid_lib,
        })
    }

    /// The driver's name for a status (`CUDA_ERROR_OUT_OF_MEMORY`), or its number.
    fn status_name(&self, status: sys::CUresult) -> String {
        let mut name: *const std::ffi::c_char = ptr::null();
        // SAFETY: cuGetErrorName writes a pointer to a static string or leaves it alone.
        let found = unsafe { (self.cuda.get_error_name)(status, &raw mut name) };
        if found == sys::CUDA_SUCCESS && !name.is_null() {
            // SAFETY: a non-null result is a NUL-terminated static string.
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        } else {
            format!("CUresult {status}")
        }
    }

    fn check(&self, call: &'static str, status: sys::CUresult) -> Result<(), NvdecError> {
        if status == sys::CUDA_SUCCESS {
            Ok(())
        } else {
            Err(NvdecError::Call {
                call,
                status: self.status_name(status),
            })
        }
    }
}

/// A retained reference to one GPU's primary context, released on drop.
struct PrimaryContext {
    lib: Arc<NvdecLibrary>,
    device: sys::CUdevice,
    ctx: sys::CUcontext,
}

impl PrimaryContext {
    fn retain(lib: Arc<NvdecLibrary>, ordinal: usize) -> Result<Self, NvdecError> {
        // SAFETY: cuInit has no preconditions and may be called repeatedly.
        lib.check("cuInit", unsafe { (lib.cuda.init)(0) })?;
        let mut count: c_int = 0;
        // SAFETY: `count` is a valid out-pointer.
        lib.check("cuDeviceGetCount", unsafe {
            (lib.cuda.device_get_count)(&raw mut count)
        })?;
        let count = usize::try_from(count).unwrap_or_default();
        let index = c_int::try_from(ordinal)
            .ok()
            .filter(|_| ordinal < count)
            .ok_or(NvdecError::NoDevice { ordinal, count })?;
        let mut device: sys::CUdevice = 0;
        // SAFETY: `device` is a valid out-pointer; `index` is below the device count.
        lib.check("cuDeviceGet", unsafe {
            (lib.cuda.device_get)(&raw mut device, index)
        })?;
        let mut ctx: sys::CUcontext = ptr::null_mut();
        // SAFETY: `ctx` is a valid out-pointer; `device` a handle the driver returned. Released
        // in Drop.
        lib.check("cuDevicePrimaryCtxRetain", unsafe {
            (lib.cuda.primary_ctx_retain)(&raw mut ctx, device)
        })?;
        Ok(Self { lib, device, ctx })
    }

    /// Makes the context current on this thread until the guard drops.
    fn push(&self) -> Result<CurrentContext<'_>, NvdecError> {
        // SAFETY: `ctx` is retained for as long as `self` lives, which the guard borrows.
        self.lib.check("cuCtxPushCurrent", unsafe {
            (self.lib.cuda.ctx_push)(self.ctx)
        })?;
        Ok(CurrentContext { lib: &self.lib })
    }
}

impl Drop for PrimaryContext {
    fn drop(&mut self) {
        // SAFETY: balances the retain in `PrimaryContext::retain`. A failure cannot be acted on.
        let _ = unsafe { (self.lib.cuda.primary_ctx_release)(self.device) };
    }
}

/// The primary context pushed on this thread; popped on drop.
struct CurrentContext<'a> {
    lib: &'a NvdecLibrary,
}

impl Drop for CurrentContext<'_> {
    fn drop(&mut self) {
        let mut popped: sys::CUcontext = ptr::null_mut();
        // SAFETY: balances the push that created the guard; the guard never leaves the call
        // that made it, so this runs on the same thread.
        let _ = unsafe { (self.lib.cuda.ctx_pop)(&raw mut popped) };
    }
}

/// The cropping rectangle of a picture inside its decode surface, in luma samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    /// First column.
    pub left: u32,
    /// First row.
    pub top: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

/// What a sequence header asks of the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    coded_width: u32,
    coded_height: u32,
    crop: Crop,
    surfaces: u32,
}

/// The decoder NVDEC currently has for a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DecoderShape {
    coded_width: u32,
    coded_height: u32,
    surfaces: u32,
    /// The size the decoder was created for: `cuvidReconfigureDecoder` can go up to it.
    max_width: u32,
    max_height: u32,
}

/// What a sequence header needs done to the stream's decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reconfiguration {
    /// Nothing: same coded size, enough surfaces (a repeated SPS, or a crop change only).
    Keep,
    /// `cuvidReconfigureDecoder`: a coded size and surface count within what the decoder was
    /// created for; cheaper than a new decoder and keeps its memory.
    Reconfigure,
    /// Destroy and create: no decoder yet, or a larger picture or more surfaces than it has.
    Recreate,
}

/// Decode surfaces for a stream whose parser asks for at least `min_surfaces`
/// (`CUVIDEOFORMAT::min_num_decode_surfaces`, 0 when it does not say): that many, bounded by
/// [`MAX_DECODE_SURFACES`]. Display delay is 0, so no extra surfaces wait for display.
fn decode_surface_count(min_surfaces: u8) -> u32 {
    match u32::from(min_surfaces) {
        0 => H264_DEFAULT_DECODE_SURFACES,
        n => n.min(MAX_DECODE_SURFACES),
    }
}

/// Checks a sequence header from the parser against what this backend decodes and `config`,
/// and works out the decoder's size and the picture's crop.
fn geometry(format: &sys::CUVIDEOFORMAT, config: DecoderConfig) -> Result<Geometry, DecodeError> {
    if format.codec != sys::cudaVideoCodec_H264 {
        return Err(DecodeError::Backend {
            backend: BACKEND,
            reason: format!("parser reported codec {} for an H.264 stream", format.codec),
        });
    }
    let unsupported = |reason: String| DecodeError::Unsupported { reason };
    if format.chroma_format != sys::cudaVideoChromaFormat_420 {
        return Err(unsupported(format!(
            "chroma format {} (cudaVideoChromaFormat); only 4:2:0 is decoded",
            format.chroma_format
        )));
    }
    if format.bit_depth_luma_minus8 != 0 || format.bit_depth_chroma_minus8 != 0 {
        return Err(unsupported(format!(
            "{}-bit luma / {}-bit chroma; only 8-bit is decoded",
            u32::from(format.bit_depth_luma_minus8) + 8,
            u32::from(format.bit_depth_chroma_minus8) + 8
        )));
    }
    if format.progressive_sequence == 0 {
        return Err(unsupported("interlaced coding".to_owned()));
    }
    let (coded_width, coded_height) = (format.coded_width, format.coded_height);
    if u64::from(coded_width) > u64::from(config.max_width).next_multiple_of(16)
        || u64::from(coded_height) > u64::from(config.max_height).next_multiple_of(16)
    {
        return Err(DecodeError::TooLarge {
            width: coded_width,
            height: coded_height,
        });
    }
    let area = format.display_area;
    let corrupt = || DecodeError::Corrupt {
        reason: format!(
            "display area ({}, {})–({}, {}) does not fit the coded {coded_width}x{coded_height} \
             picture with even offsets",
            area.left, area.top, area.right, area.bottom
        ),
    };
    let to_u32 = |v: c_int| u32::try_from(v).map_err(|_| corrupt());
    let (left, top, right, bottom) = (
        to_u32(area.left)?,
        to_u32(area.top)?,
        to_u32(area.right)?,
        to_u32(area.bottom)?,
    );
    // 4:2:0 crops in units of 2 (H.264 §7.4.2.1.1, CropUnitX/Y), so chroma starts at left/2.
    if left >= right
        || top >= bottom
        || right > coded_width
        || bottom > coded_height
        || left % 2 != 0
        || top % 2 != 0
    {
        return Err(corrupt());
    }
    let crop = Crop {
        left,
        top,
        width: right - left,
        height: bottom - top,
    };
    if crop.width > config.max_width || crop.height > config.max_height {
        return Err(DecodeError::TooLarge {
            width: crop.width,
            height: crop.height,
        });
    }
    Ok(Geometry {
        coded_width,
        coded_height,
        crop,
        surfaces: decode_surface_count(format.min_num_decode_surfaces),
    })
}

/// Whether the stream's decoder (`current`) can take the sequence `next` as it is, after a
/// reconfiguration, or must be created anew.
fn reconfiguration(current: Option<&DecoderShape>, next: &Geometry) -> Reconfiguration {
    let Some(current) = current else {
        return Reconfiguration::Recreate;
    };
    if next.surfaces > current.surfaces
        || next.coded_width > current.max_width
        || next.coded_height > current.max_height
    {
        Reconfiguration::Recreate
    } else if next.coded_width == current.coded_width && next.coded_height == current.coded_height {
        Reconfiguration::Keep
    } else {
        Reconfiguration::Reconfigure
    }
}

fn short(v: u32) -> Result<i16, DecodeError> {
    i16::try_from(v).map_err(|_| DecodeError::TooLarge {
        width: v,
        height: v,
    })
}

/// The `cuvidCreateDecoder` parameters for `geometry`: an NV12 surface of the coded size (no
/// scaling, no crop: see the module docs), `vid_lock` serialising the context.
fn create_info(
    geometry: &Geometry,
    vid_lock: sys::CUvideoctxlock,
) -> Result<sys::CUVIDDECODECREATEINFO, DecodeError> {
    let (w, h) = (geometry.coded_width, geometry.coded_height);
    let mut info = sys::CUVIDDECODECREATEINFO {
        ulWidth: c_ulong::from(w),
        ulHeight: c_ulong::from(h),
        ulNumDecodeSurfaces: c_ulong::from(geometry.surfaces),
        CodecType: sys::cudaVideoCodec_H264,
        ChromaFormat: sys::cudaVideoChromaFormat_420,
        ulCreationFlags: c_ulong::from(sys::cudaVideoCreate_PreferCUVID),
        bitDepthMinus8: 0,
        ulIntraDecodeOnly: 0,
        ulMaxWidth: c_ulong::from(w),
        ulMaxHeight: c_ulong::from(h),
        OutputFormat: sys::cudaVideoSurfaceFormat_NV12,
        // Progressive only (checked): weave is a plain copy.
        DeinterlaceMode: sys::cudaVideoDeinterlaceMode_Weave,
        ulTargetWidth: c_ulong::from(w),
        ulTargetHeight: c_ulong::from(h),
        ulNumOutputSurfaces: c_ulong::from(OUTPUT_SURFACES),
        vidLock: vid_lock,
        ..Default::default()
    };
    info.display_area.right = short(w)?;
    info.display_area.bottom = short(h)?;
    info.target_rect.right = short(w)?;
    info.target_rect.bottom = short(h)?;
    Ok(info)
}

/// The `cuvidReconfigureDecoder` parameters for `geometry` (same conventions as
/// [`create_info`]).
fn reconfigure_info(geometry: &Geometry) -> Result<sys::CUVIDRECONFIGUREDECODERINFO, DecodeError> {
    let (w, h) = (geometry.coded_width, geometry.coded_height);
    let mut info = sys::CUVIDRECONFIGUREDECODERINFO {
        ulWidth: w,
        ulHeight: h,
        ulTargetWidth: w,
        ulTargetHeight: h,
        ulNumDecodeSurfaces: geometry.surfaces,
        ..Default::default()
    };
    info.display_area.right = short(w)?;
    info.display_area.bottom = short(h)?;
    info.target_rect.right = short(w)?;
    info.target_rect.bottom = short(h)?;
    Ok(info)
}

/// Where the planes of a mapped NV12 surface lie, relative to its device pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nv12Surface {
    /// Bytes from one row to the next, in both planes.
    pub pitch: usize,
    /// Luma rows (the decoder's target height, the coded height here).
    pub height: u32,
}

impl Nv12Surface {
    /// Byte offset of the interleaved CbCr plane: after the luma rows, rounded up to an even
    /// count as NVDEC lays it out.
    #[must_use]
    pub const fn chroma_offset(&self) -> usize {
        self.pitch * (self.height as usize).next_multiple_of(2)
    }

    /// Bytes the surface spans: the luma plane and ⌈height/2⌉ chroma rows.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.chroma_offset() + self.pitch * (self.height as usize).div_ceil(2)
    }

    /// Whether the surface has no bytes.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One strided 2-D copy out of a surface: `rows` rows of `width` bytes, the first at
/// `src_offset`, `src_pitch` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlaneCopy {
    src_offset: usize,
    src_pitch: usize,
    width: usize,
    rows: usize,
}

/// The two copies that read `crop` out of `surface` into a packed NV12 buffer (luma
/// `width × height`, then ⌈height/2⌉ rows of ⌈width/2⌉ CbCr pairs): luma, then chroma.
fn crop_copies(surface: Nv12Surface, crop: Crop) -> Result<[PlaneCopy; 2], DecodeError> {
    let bad = || DecodeError::Backend {
        backend: BACKEND,
        reason: format!("crop {crop:?} does not fit the mapped surface {surface:?}"),
    };
    let (left, top) = (crop.left as usize, crop.top as usize);
    let (width, height) = (crop.width as usize, crop.height as usize);
    let (cw, ch) = I420Frame::chroma_size(crop.width, crop.height);
    let luma = PlaneCopy {
        src_offset: top * surface.pitch + left,
        src_pitch: surface.pitch,
        width,
        rows: height,
    };
    let chroma = PlaneCopy {
        src_offset: surface.chroma_offset() + (top / 2) * surface.pitch + (left / 2) * 2,
        src_pitch: surface.pitch,
        width: 2 * cw as usize,
        rows: ch as usize,
    };
    let fits = |c: &PlaneCopy, plane_end: usize| {
        c.width > 0
            && c.rows > 0
            && (c.src_offset % surface.pitch) + c.width <= surface.pitch
            && c.src_offset + (c.rows - 1) * c.src_pitch + c.width <= plane_end
    };
    if left % 2 != 0
        || top % 2 != 0
        || surface.pitch == 0
        || !fits(&luma, surface.chroma_offset())
        || !fits(&chroma, surface.len())
    {
        return Err(bad());
    }
    Ok([luma, chroma])
}

/// One plane's device-to-device copy: the source as in [`crop_copies`], the destination rows
/// `dst_pitch` apart from `dst_offset` in a [`DeviceNv12`] buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DeviceCopy {
    src: PlaneCopy,
    dst_offset: usize,
    dst_pitch: usize,
}

/// The two copies (luma, then chroma) that write `crop` of `surface` into a buffer laid out as
/// `layout`: luma rows from offset 0, CbCr rows from `layout.chroma_offset`, both
/// `layout.pitch` apart. `layout` must have the crop's size, rows as wide as a CbCr row and a
/// chroma plane after the luma rows.
fn device_copies(
    surface: Nv12Surface,
    crop: Crop,
    layout: Nv12Layout,
) -> Result<[DeviceCopy; 2], DecodeError> {
    let [luma, chroma] = crop_copies(surface, crop)?;
    let pitch = layout.pitch as usize;
    // `crop_copies` checked that both copies have rows; the CbCr row is the wider one.
    if (layout.width, layout.height) != (crop.width, crop.height)
        || pitch < chroma.width
        || layout.chroma_offset < pitch * luma.rows
    {
        return Err(DecodeError::Backend {
            backend: BACKEND,
            reason: format!("device picture {layout:?} does not fit the crop {crop:?}"),
        });
    }
    Ok([
        DeviceCopy {
            src: luma,
            dst_offset: 0,
            dst_pitch: pitch,
        },
        DeviceCopy {
            src: chroma,
            dst_offset: layout.chroma_offset,
            dst_pitch: pitch,
        },
    ])
}

/// The stream's decoder session: NVDEC's handle and its shape.
struct Session {
    decoder: sys::CUvideodecoder,
    shape: DecoderShape,
}

/// What the parser callbacks share with the decoder, at a fixed address (boxed, handed to the
/// parser as user data). Only touched by the callbacks while `cuvidParseVideoData` runs and by
/// the decoder otherwise, never both at once.
struct ParserState {
    lib: Arc<NvdecLibrary>,
    vid_lock: sys::CUvideoctxlock,
    config: DecoderConfig,
    session: Option<Session>,
    crop: Option<Crop>,
    /// The first error a callback hit during the current parse.
    error: Option<DecodeError>,
    /// Picture indices the parser displayed, oldest first.
    displayed: VecDeque<c_int>,
}

impl ParserState {
    fn record(&mut self, e: DecodeError) {
        self.error.get_or_insert(e);
    }

    /// Destroys the NVDEC decoder, if any. The context must be current.
    fn destroy_session(&mut self) {
        if let Some(session) = self.session.take() {
            // SAFETY: the handle came from cuvidCreateDecoder and is destroyed once (taken).
            let _ = unsafe { (self.lib.cuvid.destroy_decoder)(session.decoder) };
        }
    }

    fn on_sequence(&mut self, format: &sys::CUVIDEOFORMAT) -> Result<c_int, DecodeError> {
        let next = geometry(format, self.config)?;
        let current = self.session.as_ref().map(|s| s.shape);
        match reconfiguration(current.as_ref(), &next) {
            Reconfiguration::Keep => {}
            Reconfiguration::Reconfigure => {
                let mut info = reconfigure_info(&next)?;
                let session = self.session.as_mut().ok_or_else(|| DecodeError::Backend {
                    backend: BACKEND,
                    reason: "reconfiguration without a decoder".to_owned(),
                })?;
                // SAFETY: a live decoder handle and a filled parameter struct; the context is
                // current (we are inside cuvidParseVideoData, called with it pushed).
                let status =
                    unsafe { (self.lib.cuvid.reconfigure_decoder)(session.decoder, &raw mut info) };
                self.lib.check("cuvidReconfigureDecoder", status)?;
                session.shape.coded_width = next.coded_width;
                session.shape.coded_height = next.coded_height;
            }
            Reconfiguration::Recreate => {
                self.destroy_session();
                let mut info = create_info(&next, self.vid_lock)?;
                let mut decoder: sys::CUvideodecoder = ptr::null_mut();
                // SAFETY: valid out-pointer and parameters; the context is current.
                let status =
                    unsafe { (self.lib.cuvid.create_decoder)(&raw mut decoder, &raw mut info) };
                self.lib.check("cuvidCreateDecoder", status)?;
                self.session = Some(Session {
                    decoder,
                    shape: DecoderShape {
                        coded_width: next.coded_width,
                        coded_height: next.coded_height,
                        surfaces: next.surfaces,
                        max_width: next.coded_width,
                        max_height: next.coded_height,
                    },
                });
            }
        }
        self.crop = Some(next.crop);
        // Above 1, the return value sets the parser's decode-surface count (nvcuvid.h,
        // PFNVIDSEQUENCECALLBACK): it must match the decoder's.
        let surfaces = self
            .session
            .as_ref()
            .map_or(next.surfaces, |s| s.shape.surfaces);
        Ok(c_int::try_from(surfaces).unwrap_or(1))
    }

    fn on_decode(&mut self, picture: *mut sys::CUVIDPICPARAMS) -> Result<c_int, DecodeError> {
        let session = self.session.as_ref().ok_or_else(|| DecodeError::Corrupt {
            reason: "picture before any sequence parameter set".to_owned(),
        })?;
        // SAFETY: the parser's picture parameters for this decoder, valid during the callback;
        // the context is current.
        let status = unsafe { (self.lib.cuvid.decode_picture)(session.decoder, picture) };
        self.lib.check("cuvidDecodePicture", status)?;
        Ok(1)
    }

    fn on_display(&mut self, info: Option<&sys::CUVIDPARSERDISPINFO>) -> c_int {
        // No info marks the end of the stream; nothing to display.
        if let Some(info) = info {
            if self.displayed.len() >= MAX_QUEUED_PICTURES {
                self.displayed.pop_front();
            }
            self.displayed.push_back(info.picture_index);
        }
        1
    }
}

/// Runs a callback body on the state behind `user` with no unwinding into C: a panic or an
/// error is recorded for the decode call and 0 (failure) returned to the parser.
///
/// # Safety
///
/// `user` must be the parser's user data: a live `ParserState` that nothing else borrows while
/// the parser runs.
unsafe fn guarded(
    user: *mut c_void,
    body: impl FnOnce(&mut ParserState) -> Result<c_int, DecodeError>,
) -> c_int {
    // SAFETY: per the contract; the decoder holds no reference to the state during a parse.
    let Some(state) = (unsafe { user.cast::<ParserState>().as_mut() }) else {
        return 0;
    };
    match catch_unwind(AssertUnwindSafe(|| body(&mut *state))) {
        Ok(Ok(ret)) => ret,
        Ok(Err(e)) => {
            state.record(e);
            0
        }
        Err(_) => {
            state.record(DecodeError::Backend {
                backend: BACKEND,
                reason: "panic in an NVDEC parser callback".to_owned(),
            });
            0
        }
    }
}

unsafe extern "C" fn on_sequence(user: *mut c_void, format: *mut sys::CUVIDEOFORMAT) -> c_int {
    // SAFETY: the parser passes the user data it was created with, and a format valid for the
    // callback's duration (or null).
    unsafe {
        guarded(user, |state| {
            let format = format.as_ref().ok_or_else(|| DecodeError::Backend {
                backend: BACKEND,
                reason: "sequence callback without a format".to_owned(),
            })?;
            state.on_sequence(format)
        })
    }
}

unsafe extern "C" fn on_decode(user: *mut c_void, picture: *mut sys::CUVIDPICPARAMS) -> c_int {
    // SAFETY: as for `on_sequence`.
    unsafe { guarded(user, |state| state.on_decode(picture)) }
}

unsafe extern "C" fn on_display(user: *mut c_void, info: *mut sys::CUVIDPARSERDISPINFO) -> c_int {
    // SAFETY: as for `on_sequence`; `info` is null at the end of the stream.
    unsafe { guarded(user, |state| Ok(state.on_display(info.as_ref()))) }
}

/// An H.264 decoder on NVDEC for one stream.
pub struct NvdecDecoder {
    // Field order matters for Drop: see `impl Drop`.
    parser: sys::CUvideoparser,
    /// Owned (from `Box::into_raw`), freed in Drop after the parser is gone.
    state: *mut ParserState,
    /// The packed NV12 crop of the last picture copied to the host.
    staging: Vec<u8>,
    /// Where [`Decoder::decode_picture`] puts pictures, when they stay in CUDA memory.
    device_output: Option<Arc<DeviceFramePool>>,
    context: PrimaryContext,
}

// SAFETY: every NVDEC and driver call pushes the decoder's context on the calling thread first,
// so its handles are not tied to a thread; the state is owned exclusively. Not Sync: one thread
// at a time.
unsafe impl Send for NvdecDecoder {}

impl fmt::Debug for NvdecDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvdecDecoder")
            .field("device", &self.context.device)
            .field("parser", &!self.parser.is_null())
            .finish_non_exhaustive()
    }
}

impl NvdecDecoder {
    /// A decoder on GPU `ordinal`, bounded by `config`. The parser and the NVDEC decoder are
    /// created by the first access unit (the decoder's size comes from its SPS).
    ///
    /// # Errors
    ///
    /// [`NvdecError::NoDevice`] without that GPU, [`NvdecError::Call`] when the driver cannot
    /// initialise it or create the context lock.
    pub fn new(
        lib: &Arc<NvdecLibrary>,
        ordinal: usize,
        config: DecoderConfig,
    ) -> Result<Self, NvdecError> {
        let context = PrimaryContext::retain(Arc::clone(lib), ordinal)?;
        let mut vid_lock: sys::CUvideoctxlock = ptr::null_mut();
        // SAFETY: valid out-pointer; the context is retained. Destroyed in Drop.
        lib.check("cuvidCtxLockCreate", unsafe {
            (lib.cuvid.ctx_lock_create)(&raw mut vid_lock, context.ctx)
        })?;
        let state = Box::into_raw(Box::new(ParserState {
            lib: Arc::clone(lib),
            vid_lock,
            config,
            session: None,
            crop: None,
            error: None,
            displayed: VecDeque::new(),
        }));
        Ok(Self {
            parser: ptr::null_mut(),
            state,
            staging: Vec::new(),
            device_output: None,
            context,
        })
    }

    /// Makes [`Decoder::decode_picture`] return [`Picture::Device`]: each picture is copied
    /// from the NVDEC surface into a buffer of `pool` (on the decoder's GPU), never to the
    /// host. [`Decoder::decode`] is unchanged.
    #[must_use]
    pub fn with_device_output(mut self, pool: Arc<DeviceFramePool>) -> Self {
        self.device_output = Some(pool);
        self
    }

    fn lib(&self) -> &NvdecLibrary {
        &self.context.lib
    }

    fn create_parser(&self) -> Result<sys::CUvideoparser, DecodeError> {
        let mut params = sys::CUVIDPARSERPARAMS {
            CodecType: sys::cudaVideoCodec_H264,
            // The sequence callback's return value sets the real count.
            ulMaxNumDecodeSurfaces: 1,
            // Pictures with errors are not decoded (no concealment, as with openh264).
            ulErrorThreshold: 0,
            // A picture is displayed by the parse call that decoded it.
            ulMaxDisplayDelay: 0,
            pUserData: self.state.cast(),
            pfnSequenceCallback: Some(on_sequence),
            pfnDecodePicture: Some(on_decode),
            pfnDisplayPicture: Some(on_display),
            ..Default::default()
        };
        let mut parser: sys::CUvideoparser = ptr::null_mut();
        // SAFETY: valid out-pointer and parameters; the user data outlives the parser (Drop).
        let status =
            unsafe { (self.lib().cuvid.create_video_parser)(&raw mut parser, &raw mut params) };
        self.lib().check("cuvidCreateVideoParser", status)?;
        Ok(parser)
    }

    /// Destroys the parser and the NVDEC decoder and forgets every queued picture.
    fn teardown(&mut self) {
        // Without the context the destroy calls may fail; they are made regardless.
        let current = self.context.push().ok();
        if !self.parser.is_null() {
            // SAFETY: a parser handle from cuvidCreateVideoParser, destroyed once (nulled).
            let _ = unsafe { (self.context.lib.cuvid.destroy_video_parser)(self.parser) };
            self.parser = ptr::null_mut();
        }
        // SAFETY: the state is live until Drop, and no parse is running.
        if let Some(state) = unsafe { self.state.as_mut() } {
            state.destroy_session();
            state.crop = None;
            state.error = None;
            state.displayed.clear();
        }
        drop(current);
    }

    /// Decodes one access unit into an NVDEC surface and maps it: the GPU path's entry point
    /// (the [`Decoder`] implementation copies the mapped frame to the host).
    ///
    /// # Errors
    ///
    /// As [`Decoder::decode`].
    pub fn decode_mapped(
        &mut self,
        access_unit: &[u8],
    ) -> Result<Option<MappedFrame<'_>>, DecodeError> {
        // SAFETY: the state is live and not borrowed elsewhere outside a parse.
        let config = unsafe { &*self.state }.config;
        check_access_unit(access_unit, config)?;
        let current = self.context.push()?;
        if self.parser.is_null() {
            self.parser = self.create_parser()?;
        }
        let mut packet = sys::CUVIDSOURCEDATAPACKET {
            flags: c_ulong::from(sys::CUVID_PKT_ENDOFPICTURE),
            payload_size: c_ulong::try_from(access_unit.len()).map_err(|_| {
                DecodeError::Corrupt {
                    reason: "access unit too large".to_owned(),
                }
            })?,
            payload: access_unit.as_ptr(),
            timestamp: 0,
        };
        // SAFETY: a live parser and a packet pointing at `access_unit`, which outlives the call;
        // the callbacks get the state, which nothing else borrows meanwhile.
        let status = unsafe { (self.lib().cuvid.parse_video_data)(self.parser, &raw mut packet) };
        // SAFETY: the parse is over; nothing else borrows the state.
        let state = unsafe { &mut *self.state };
        if let Some(e) = state.error.take() {
            state.displayed.clear();
            return Err(e);
        }
        self.lib().check("cuvidParseVideoData", status)?;
        // Display delay 0: the one picture of this access unit, if any.
        let Some(index) = state.displayed.pop_back() else {
            return Ok(None);
        };
        state.displayed.clear();
        let (Some(session), Some(crop)) = (state.session.as_ref(), state.crop) else {
            return Err(DecodeError::Backend {
                backend: BACKEND,
                reason: "picture displayed without a decoder".to_owned(),
            });
        };
        let decoder = session.decoder;
        let height = session.shape.coded_height;
        let mut device_ptr: u64 = 0;
        let mut pitch: c_uint = 0;
        let mut proc = sys::CUVIDPROCPARAMS {
            progressive_frame: 1,
            ..Default::default()
        };
        // SAFETY: a live decoder, a picture index the parser handed out, valid out-pointers;
        // unmapped by the guard.
        let status = unsafe {
            (self.lib().cuvid.map_video_frame)(
                decoder,
                index,
                &raw mut device_ptr,
                &raw mut pitch,
                &raw mut proc,
            )
        };
        self.lib().check("cuvidMapVideoFrame64", status)?;
        drop(current);
        Ok(Some(MappedFrame {
            context: &self.context,
            staging: &mut self.staging,
            decoder,
            device_ptr,
            surface: Nv12Surface {
                pitch: pitch as usize,
                height,
            },
            crop,
        }))
    }
}

impl Drop for NvdecDecoder {
    fn drop(&mut self) {
        self.teardown();
        // SAFETY: from Box::into_raw in `new`, freed once; the parser that used it is gone.
        let state = unsafe { Box::from_raw(self.state) };
        // SAFETY: the lock from cuvidCtxLockCreate; no decoder uses it any more.
        let _ = unsafe { (self.context.lib.cuvid.ctx_lock_destroy)(state.vid_lock) };
        // `context` drops after this, releasing the primary context.
    }
}

impl Decoder for NvdecDecoder {
    fn decode(
        &mut self,
        access_unit: &[u8],
        out: &mut I420Frame,
    ) -> Result<DecodeOutcome, DecodeError> {
        match self.decode_mapped(access_unit)? {
            Some(mut frame) => {
                frame.copy_to_i420(out)?;
                Ok(DecodeOutcome::Frame)
            }
            None => Ok(DecodeOutcome::NoPicture),
        }
    }

    fn decode_picture(
        &mut self,
        access_unit: &[u8],
        scratch: &mut I420Frame,
    ) -> Result<Option<Picture>, DecodeError> {
        let Some(pool) = self.device_output.clone() else {
            // The trait's default, which an override cannot call.
            return Ok(match self.decode(access_unit, scratch)? {
                DecodeOutcome::Frame => Some(Picture::Host(scratch.clone())),
                DecodeOutcome::NoPicture => None,
            });
        };
        let Some(mut frame) = self.decode_mapped(access_unit)? else {
            return Ok(None);
        };
        let crop = frame.crop();
        let mut picture = pool
            .take(Nv12Layout::packed(crop.width, crop.height))
            .map_err(|e| DecodeError::Backend {
                backend: BACKEND,
                reason: format!(
                    "DeviceFramePool::take ({}x{}) failed: {e}",
                    crop.width, crop.height
                ),
            })?;
        frame.copy_to_device(&mut picture)?;
        Ok(Some(Picture::Device(picture)))
    }

    fn reset(&mut self) {
        self.teardown();
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}

/// A decoded picture: an NVDEC NV12 surface mapped into CUDA memory, unmapped when dropped.
/// Read it with a kernel ([`device_ptr`](Self::device_ptr), [`surface`](Self::surface),
/// [`crop`](Self::crop)) or copy it to the host ([`copy_to_i420`](Self::copy_to_i420)).
pub struct MappedFrame<'a> {
    context: &'a PrimaryContext,
    staging: &'a mut Vec<u8>,
    decoder: sys::CUvideodecoder,
    device_ptr: u64,
    surface: Nv12Surface,
    crop: Crop,
}

impl fmt::Debug for MappedFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedFrame")
            .field("device_ptr", &format_args!("{:#x}", self.device_ptr))
            .field("surface", &self.surface)
            .field("crop", &self.crop)
            .finish_non_exhaustive()
    }
}

impl MappedFrame<'_> {
    /// The surface's CUDA device address (luma plane first), valid while `self` lives, in the
    /// GPU's primary context.
    #[must_use]
    pub const fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// The surface's pitch and height, from which the chroma plane's offset follows.
    #[must_use]
    pub const fn surface(&self) -> Nv12Surface {
        self.surface
    }

    /// The picture inside the surface (the SPS's cropping rectangle).
    #[must_use]
    pub const fn crop(&self) -> Crop {
        self.crop
    }

    /// Copies the cropped picture to the host as I420 (`cuMemcpy2D` of both planes, then the
    /// CbCr pairs split on the CPU). `out`'s planes are resized only when the size changes.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Backend`] if a copy fails; `out` is then untouched.
    pub fn copy_to_i420(&mut self, out: &mut I420Frame) -> Result<(), DecodeError> {
        let [luma, chroma] = crop_copies(self.surface, self.crop)?;
        let luma_len = luma.width * luma.rows;
        self.staging
            .resize(luma_len + chroma.width * chroma.rows, 0);
        let lib = &*self.context.lib;
        let current = self.context.push()?;
        let mut dst_offset = 0;
        for (call, copy) in [("cuMemcpy2D (luma)", luma), ("cuMemcpy2D (chroma)", chroma)] {
            let params = sys::CUDA_MEMCPY2D {
                srcMemoryType: sys::CU_MEMORYTYPE_DEVICE,
                srcDevice: self.device_ptr + copy.src_offset as u64,
                srcPitch: copy.src_pitch,
                dstMemoryType: sys::CU_MEMORYTYPE_HOST,
                dstHost: self.staging[dst_offset..].as_mut_ptr().cast(),
                dstPitch: copy.width,
                WidthInBytes: copy.width,
                Height: copy.rows,
                ..Default::default()
            };
            // SAFETY: the source lies inside the mapped surface (checked by `crop_copies`), the
            // destination inside `staging` (sized above); the context is current.
            lib.check(call, unsafe { (lib.cuda.memcpy_2d)(&raw const params) })?;
            dst_offset += copy.width * copy.rows;
        }
        drop(current);
        // Staged as `crop_copies` packs it: luma rows `width` bytes, then CbCr rows.
        let rows = Nv12Rows {
            luma_pitch: luma.width,
            chroma_offset: luma_len,
            chroma_pitch: chroma.width,
        };
        out.copy_from_nv12(self.staging, self.crop.width, self.crop.height, rows)
            .map_err(|e| DecodeError::Backend {
                backend: BACKEND,
                reason: e.to_string(),
            })
    }

    /// Copies the cropped picture into `out` as NV12 laid out as `out.layout()` (the crop's
    /// size), device to device on `out`'s stream (`cuMemcpy2DAsync` of both planes), and
    /// synchronizes that stream: the surface is unmapped when `self` drops, so the copies must
    /// be done by then (the synchronous `cuMemcpy2D` does not synchronize the host for
    /// device-to-device copies).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Backend`] naming the call if a copy or the synchronization fails, or if
    /// `out` does not fit the crop; `out`'s contents are then undefined.
    pub fn copy_to_device(&mut self, out: &mut DeviceNv12) -> Result<(), DecodeError> {
        let layout = out.layout();
        let [luma, chroma] = device_copies(self.surface, self.crop, layout)?;
        let stream = Arc::clone(out.stream());
        let buffer = out.buffer_mut();
        if buffer.len() < layout.required_len() {
            return Err(DecodeError::Backend {
                backend: BACKEND,
                reason: format!(
                    "device picture buffer of {} bytes is shorter than {layout:?}",
                    buffer.len()
                ),
            });
        }
        // Taken before pushing the decoder's context: cudarc may bind its own (the same
        // primary context) to order the stream after earlier uses of the buffer. The guard
        // records the write when it drops.
        let (dst, written) = buffer.device_ptr_mut(&stream);
        let cu_stream: sys::CUstream = stream.cu_stream().cast();
        let lib = &*self.context.lib;
        let current = self.context.push()?;
        let copied = [
            ("cuMemcpy2DAsync (luma)", luma),
            ("cuMemcpy2DAsync (chroma)", chroma),
        ]
        .into_iter()
        .try_for_each(|(call, copy)| {
            let params = sys::CUDA_MEMCPY2D {
                srcMemoryType: sys::CU_MEMORYTYPE_DEVICE,
                srcDevice: self.device_ptr + copy.src.src_offset as u64,
                srcPitch: copy.src.src_pitch,
                dstMemoryType: sys::CU_MEMORYTYPE_DEVICE,
                dstDevice: dst + copy.dst_offset as u64,
                dstPitch: copy.dst_pitch,
                WidthInBytes: copy.src.width,
                Height: copy.src.rows,
                ..Default::default()
            };
            // SAFETY: the source lies inside the mapped surface (`crop_copies`), the
            // destination inside the buffer (`device_copies`, length checked above), which
            // the guard keeps for this stream; the context is current.
            lib.check(call, unsafe {
                (lib.cuda.memcpy_2d_async)(&raw const params, cu_stream)
            })
        });
        // Even after a failed copy: an earlier one may still be reading the surface.
        // SAFETY: a live stream of the pool's context, the current one.
        let synced = lib.check("cuStreamSynchronize", unsafe {
            (lib.cuda.stream_synchronize)(cu_stream)
        });
        drop(current);
        drop(written);
        copied.and(synced).map_err(DecodeError::from)
    }
}

impl Drop for MappedFrame<'_> {
    fn drop(&mut self) {
        let current = self.context.push().ok();
        // SAFETY: the address cuvidMapVideoFrame64 returned for this decoder, unmapped once.
        let _ =
            unsafe { (self.context.lib.cuvid.unmap_video_frame)(self.decoder, self.device_ptr) };
        drop(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_without_the_driver_names_the_missing_library() {
        // On a machine with the NVIDIA driver this test has nothing to check.
        // SAFETY: as in `load_named`.
        if unsafe { Library::new(CUDA_LIBRARY) }.is_ok() {
            eprintln!("SKIP: {CUDA_LIBRARY} is installed");
            return;
        }
        let e = NvdecLibrary::load().unwrap_err();
        assert!(
            matches!(
                e,
                NvdecError::LibraryNotFound {
                    library: CUDA_LIBRARY,
                    ..
                }
            ),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(message.contains("libcuda.so.1"), "{message}");
        assert!(message.contains("NVIDIA driver"), "{message}");
        assert!(matches!(
            DecodeError::from(e),
            DecodeError::Backend {
                backend: "nvdec",
                ..
            }
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_missing_nvcuvid_is_named_and_a_library_without_entry_points_is_refused() {
        // libc stands in for a driver library that loads.
        // SAFETY: as in `load_named`.
        if unsafe { Library::new(NVCUVID_LIBRARY) }.is_err() {
            let e = NvdecLibrary::load_named("libc.so.6", NVCUVID_LIBRARY).unwrap_err();
            assert!(
                matches!(
                    e,
                    NvdecError::LibraryNotFound {
                        library: NVCUVID_LIBRARY,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(e.to_string().contains("libnvcuvid.so.1"), "{e}");
        }
        let e = NvdecLibrary::load_named("libc.so.6", "libc.so.6").unwrap_err();
        assert!(
            matches!(
                e,
                NvdecError::MissingSymbol {
                    library: "libc.so.6",
                    symbol: "cuInit",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    fn format(coded: (u32, u32), area: (i32, i32, i32, i32)) -> sys::CUVIDEOFORMAT {
        let mut f = sys::CUVIDEOFORMAT {
            codec: sys::cudaVideoCodec_H264,
            progressive_sequence: 1,
            min_num_decode_surfaces: 5,
            coded_width: coded.0,
            coded_height: coded.1,
            chroma_format: sys::cudaVideoChromaFormat_420,
            ..Default::default()
        };
        f.display_area.left = area.0;
        f.display_area.top = area.1;
        f.display_area.right = area.2;
        f.display_area.bottom = area.3;
        f
    }

    /// Needs a GPU: NVDEC's output against openh264's, bit for bit, on the edge SDK's test
    /// vectors from openh264 and x264 (odd sizes included) and on two of them back to back
    /// (a mid-stream resolution change). Skips without the driver.
    ///
    /// With `FLOWCLOUD_NVDEC_STREAMS` set to a folder, every `*.h264` file in it is a case
    /// instead (the GPU bundle's streams, made by `examples/h264_streams.rs`, with their own
    /// resolution-change file): for a test binary run away from this checkout.
    #[test]
    fn bit_exact_against_openh264_on_a_gpu() {
        use crate::decode::OpenH264Decoder;
        let lib = match NvdecLibrary::load() {
            Ok(lib) => lib,
            Err(e) => {
                eprintln!("SKIP: {e}");
                return;
            }
        };
        for (name, units) in gpu_test_streams() {
            let mut gpu = NvdecDecoder::new(&lib, 0, DecoderConfig::default()).unwrap();
            let mut cpu = OpenH264Decoder::new(DecoderConfig::default());
            let (mut gpu_out, mut cpu_out) = (
                I420Frame::filled(0, 0, (0, 0, 0)),
                I420Frame::filled(0, 0, (0, 0, 0)),
            );
            for (i, unit) in units.iter().enumerate() {
                let expected = cpu.decode(unit, &mut cpu_out).unwrap();
                assert_eq!(
                    gpu.decode(unit, &mut gpu_out),
                    Ok(expected),
                    "{name} AU {i}"
                );
                assert!(gpu_out == cpu_out, "{name} AU {i}: pictures differ");
            }
            eprintln!("{name}: {} access units bit-exact", units.len());
        }
    }

    /// Needs a GPU: every picture of [`gpu_test_streams`] decoded into CUDA memory
    /// ([`NvdecDecoder::with_device_output`]) and downloaded equals the host path's, and each
    /// picture's buffer goes back to the pool when dropped. Skips without the driver.
    #[test]
    fn device_output_matches_host_output_on_a_gpu() {
        let lib = match NvdecLibrary::load() {
            Ok(lib) => lib,
            Err(e) => {
                eprintln!("SKIP: {e}");
                return;
            }
        };
        let stream = cudarc::driver::CudaContext::new(0)
            .and_then(|ctx| ctx.new_stream())
            .expect("a CUDA stream on GPU 0");
        for (name, units) in gpu_test_streams() {
            let pool = DeviceFramePool::new(Arc::clone(&stream), 2);
            let mut host = NvdecDecoder::new(&lib, 0, DecoderConfig::default()).unwrap();
            let mut device = NvdecDecoder::new(&lib, 0, DecoderConfig::default())
                .unwrap()
                .with_device_output(Arc::clone(&pool));
            let mut host_scratch = I420Frame::filled(0, 0, (0, 0, 0));
            let mut device_scratch = I420Frame::filled(0, 0, (0, 0, 0));
            let mut downloaded = I420Frame::filled(0, 0, (0, 0, 0));
            let mut pictures = 0;
            for (i, unit) in units.iter().enumerate() {
                let expected = host.decode_picture(unit, &mut host_scratch).unwrap();
                let got = device.decode_picture(unit, &mut device_scratch).unwrap();
                match (expected, got) {
                    (None, None) => {}
                    (Some(Picture::Host(expected)), Some(Picture::Device(got))) => {
                        assert_eq!(
                            got.layout(),
                            Nv12Layout::packed(expected.width, expected.height),
                            "{name} AU {i}"
                        );
                        got.copy_to_i420(&mut downloaded).unwrap();
                        assert!(downloaded == expected, "{name} AU {i}: pictures differ");
                        drop(got);
                        // One buffer, reused for every picture (freed and replaced on a
                        // resolution change).
                        assert_eq!(pool.free_buffers(), 1, "{name} AU {i}");
                        pictures += 1;
                    }
                    (expected, got) => panic!(
                        "{name} AU {i}: host path gave {:?}, device path {:?}",
                        expected.as_ref().map(Picture::memory),
                        got.as_ref().map(Picture::memory)
                    ),
                }
            }
            assert!(pictures > 0, "{name}: no pictures");
            // The device path never touches the host scratch frame.
            assert_eq!((device_scratch.width, device_scratch.height), (0, 0));
            // Two pictures out at once come back as two free buffers.
            let layout = Nv12Layout::packed(downloaded.width, downloaded.height);
            let (a, b) = (pool.take(layout).unwrap(), pool.take(layout).unwrap());
            drop((a, b));
            assert_eq!(pool.free_buffers(), 2, "{name}");
            eprintln!(
                "{name}: {pictures} pictures of {} access units, device output identical",
                units.len()
            );
        }
    }

    /// The GPU tests' streams: the edge SDK's test vectors from openh264 and x264 (odd sizes
    /// included) and three of them back to back (mid-stream resolution changes), or with
    /// `FLOWCLOUD_NVDEC_STREAMS` set, every `*.h264` file in that folder.
    fn gpu_test_streams() -> Vec<(String, Vec<Vec<u8>>)> {
        use crate::decode::split_access_units;
        let split = |path: &std::path::Path| {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            split_access_units(&bytes).unwrap()
        };
        match std::env::var_os("FLOWCLOUD_NVDEC_STREAMS") {
            Some(dir) => {
                let mut files: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("FLOWCLOUD_NVDEC_STREAMS={dir:?}: {e}"))
                    .map(|entry| entry.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "h264"))
                    .collect();
                files.sort();
                assert!(!files.is_empty(), "no .h264 files in {dir:?}");
                files
                    .iter()
                    .map(|p| (p.display().to_string(), split(p)))
                    .collect()
            }
            None => {
                let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../edge-sdk/core/testdata");
                let read = |name: &str| split(&testdata.join(name));
                let mut cases: Vec<(String, Vec<Vec<u8>>)> = [
                    "openh264-322x242.h264",
                    "openh264-640x480.h264",
                    "x264-baseline-320x240.h264",
                    "x264-high-322x242.h264",
                    "x264-main-1280x720.h264",
                ]
                .iter()
                .map(|name| ((*name).to_owned(), read(name)))
                .collect();
                let mut switch = read("openh264-322x242.h264");
                switch.extend(read("x264-main-1280x720.h264"));
                switch.extend(read("openh264-640x480.h264"));
                cases.push(("322x242 → 1280x720 → 640x480".to_owned(), switch));
                cases
            }
        }
    }

    #[test]
    fn surface_count_follows_the_parser_within_bounds() {
        assert_eq!(decode_surface_count(0), H264_DEFAULT_DECODE_SURFACES);
        assert_eq!(decode_surface_count(1), 1);
        assert_eq!(decode_surface_count(5), 5);
        assert_eq!(decode_surface_count(32), 32);
        assert_eq!(decode_surface_count(200), MAX_DECODE_SURFACES);
    }

    #[test]
    fn geometry_crops_to_the_display_area() {
        let config = DecoderConfig::default();
        // 1080p: coded 1920x1088, the SPS crops 8 rows at the bottom.
        let g = geometry(&format((1920, 1088), (0, 0, 1920, 1080)), config).unwrap();
        assert_eq!(
            g,
            Geometry {
                coded_width: 1920,
                coded_height: 1088,
                crop: Crop {
                    left: 0,
                    top: 0,
                    width: 1920,
                    height: 1080
                },
                surfaces: 5,
            }
        );
        // 322x242 (the openh264 test vector): coded 336x256.
        let g = geometry(&format((336, 256), (0, 0, 322, 242)), config).unwrap();
        assert_eq!((g.crop.width, g.crop.height), (322, 242));
        // A crop with an offset.
        let g = geometry(&format((336, 256), (2, 4, 322, 246)), config).unwrap();
        assert_eq!(
            g.crop,
            Crop {
                left: 2,
                top: 4,
                width: 320,
                height: 242
            }
        );
    }

    #[test]
    fn geometry_refuses_what_the_cpu_path_refuses() {
        let config = DecoderConfig {
            max_width: 640,
            max_height: 480,
        };
        let ok = format((640, 480), (0, 0, 640, 480));
        geometry(&ok, config).unwrap();
        let with = |change: fn(&mut sys::CUVIDEOFORMAT)| {
            let mut f = ok;
            change(&mut f);
            geometry(&f, config)
        };
        assert!(matches!(
            with(|f| f.chroma_format = sys::cudaVideoChromaFormat_444),
            Err(DecodeError::Unsupported { .. })
        ));
        assert!(matches!(
            with(|f| f.bit_depth_luma_minus8 = 2),
            Err(DecodeError::Unsupported { .. })
        ));
        assert!(matches!(
            with(|f| f.progressive_sequence = 0),
            Err(DecodeError::Unsupported { .. })
        ));
        assert!(matches!(
            with(|f| f.codec = sys::cudaVideoCodec_HEVC),
            Err(DecodeError::Backend { .. })
        ));
        assert_eq!(
            with(|f| f.coded_width = 672),
            Err(DecodeError::TooLarge {
                width: 672,
                height: 480
            })
        );
        // Coded up to the next multiple of 16 is fine; the display size is what is bounded.
        let narrow = DecoderConfig {
            max_width: 630,
            max_height: 480,
        };
        assert_eq!(
            geometry(&format((640, 480), (0, 0, 632, 480)), narrow),
            Err(DecodeError::TooLarge {
                width: 632,
                height: 480
            })
        );
        geometry(&format((640, 480), (0, 0, 630, 480)), narrow).unwrap();
        for area in [
            (0, 0, 641, 480),
            (0, 0, 640, 481),
            (10, 0, 10, 480),
            (0, -2, 640, 480),
            (1, 0, 640, 480),
            (0, 3, 640, 480),
        ] {
            assert!(
                matches!(
                    with_area(ok, area, config),
                    Err(DecodeError::Corrupt { .. })
                ),
                "{area:?}"
            );
        }
    }

    fn with_area(
        mut f: sys::CUVIDEOFORMAT,
        area: (i32, i32, i32, i32),
        config: DecoderConfig,
    ) -> Result<Geometry, DecodeError> {
        f.display_area.left = area.0;
        f.display_area.top = area.1;
        f.display_area.right = area.2;
        f.display_area.bottom = area.3;
        geometry(&f, config)
    }

    fn geometry_of(w: u32, h: u32, surfaces: u32) -> Geometry {
        Geometry {
            coded_width: w,
            coded_height: h,
            crop: Crop {
                left: 0,
                top: 0,
                width: w,
                height: h,
            },
            surfaces,
        }
    }

    #[test]
    fn reconfigure_only_within_what_the_decoder_was_created_for() {
        let shape = DecoderShape {
            coded_width: 1280,
            coded_height: 720,
            surfaces: 8,
            max_width: 1280,
            max_height: 720,
        };
        let plan = |g: Geometry| reconfiguration(Some(&shape), &g);
        assert_eq!(
            reconfiguration(None, &geometry_of(640, 480, 4)),
            Reconfiguration::Recreate
        );
        assert_eq!(plan(geometry_of(1280, 720, 8)), Reconfiguration::Keep);
        assert_eq!(plan(geometry_of(1280, 720, 4)), Reconfiguration::Keep);
        assert_eq!(plan(geometry_of(640, 480, 8)), Reconfiguration::Reconfigure);
        assert_eq!(plan(geometry_of(640, 480, 9)), Reconfiguration::Recreate);
        assert_eq!(plan(geometry_of(1920, 720, 8)), Reconfiguration::Recreate);
        assert_eq!(plan(geometry_of(1280, 736, 8)), Reconfiguration::Recreate);
    }

    #[test]
    fn create_info_asks_for_an_unscaled_nv12_surface() {
        let info = create_info(&geometry_of(1920, 1088, 6), ptr::null_mut()).unwrap();
        assert_eq!((info.ulWidth, info.ulHeight), (1920, 1088));
        assert_eq!((info.ulTargetWidth, info.ulTargetHeight), (1920, 1088));
        assert_eq!((info.ulMaxWidth, info.ulMaxHeight), (1920, 1088));
        assert_eq!(info.ulNumDecodeSurfaces, 6);
        assert_eq!(info.ulNumOutputSurfaces, c_ulong::from(OUTPUT_SURFACES));
        assert_eq!(info.CodecType, sys::cudaVideoCodec_H264);
        assert_eq!(info.ChromaFormat, sys::cudaVideoChromaFormat_420);
        assert_eq!(info.OutputFormat, sys::cudaVideoSurfaceFormat_NV12);
        assert_eq!(info.DeinterlaceMode, sys::cudaVideoDeinterlaceMode_Weave);
        assert_eq!(info.bitDepthMinus8, 0);
        let area = info.display_area;
        assert_eq!(
            (area.left, area.top, area.right, area.bottom),
            (0, 0, 1920, 1088)
        );
        let rect = info.target_rect;
        assert_eq!(
            (rect.left, rect.top, rect.right, rect.bottom),
            (0, 0, 1920, 1088)
        );
        let re = reconfigure_info(&geometry_of(640, 480, 6)).unwrap();
        assert_eq!(
            (re.ulWidth, re.ulHeight, re.ulNumDecodeSurfaces),
            (640, 480, 6)
        );
        assert_eq!((re.ulTargetWidth, re.ulTargetHeight), (640, 480));
        assert_eq!(re.display_area.right, 640);
        assert!(create_info(&geometry_of(40_000, 16, 1), ptr::null_mut()).is_err());
    }

    #[test]
    fn nv12_surface_planes() {
        let s = Nv12Surface {
            pitch: 2048,
            height: 1088,
        };
        assert_eq!(s.chroma_offset(), 2048 * 1088);
        assert_eq!(s.len(), 2048 * (1088 + 544));
        // An odd height rounds the luma rows up before the chroma plane.
        let s = Nv12Surface {
            pitch: 512,
            height: 243,
        };
        assert_eq!(s.chroma_offset(), 512 * 244);
        assert_eq!(s.len(), 512 * (244 + 122));
    }

    #[test]
    fn crop_copies_address_both_planes() {
        let surface = Nv12Surface {
            pitch: 512,
            height: 256,
        };
        let crop = Crop {
            left: 2,
            top: 4,
            width: 321,
            height: 241,
        };
        let [luma, chroma] = crop_copies(surface, crop).unwrap();
        assert_eq!(
            luma,
            PlaneCopy {
                src_offset: 4 * 512 + 2,
                src_pitch: 512,
                width: 321,
                rows: 241
            }
        );
        assert_eq!(
            chroma,
            PlaneCopy {
                src_offset: 512 * 256 + 2 * 512 + 2,
                src_pitch: 512,
                width: 2 * 161,
                rows: 121
            }
        );
        // The whole surface is fine; one column or row more is not.
        let full = Crop {
            left: 0,
            top: 0,
            width: 512,
            height: 256,
        };
        crop_copies(surface, full).unwrap();
        for bad in [
            Crop { width: 513, ..full },
            Crop {
                height: 257,
                ..full
            },
            Crop { left: 2, ..full },
            Crop { width: 0, ..full },
            Crop {
                left: 1,
                width: 8,
                ..full
            },
        ] {
            assert!(crop_copies(surface, bad).is_err(), "{bad:?}");
        }
        assert!(
            crop_copies(
                Nv12Surface {
                    pitch: 0,
                    height: 4
                },
                full
            )
            .is_err()
        );
    }

    #[test]
    fn device_copies_land_in_the_packed_layout() {
        let surface = Nv12Surface {
            pitch: 512,
            height: 256,
        };
        // Odd size with a top/left offset: luma 321 bytes a row, chroma 161 CbCr pairs
        // (322 bytes) a row, so the packed pitch is 322 and chroma starts after 241 rows.
        let crop = Crop {
            left: 2,
            top: 4,
            width: 321,
            height: 241,
        };
        let layout = Nv12Layout::packed(321, 241);
        assert_eq!((layout.pitch, layout.chroma_offset), (322, 77_602));
        assert_eq!(layout.required_len(), 77_602 + 322 * 121);
        let [luma, chroma] = device_copies(surface, crop, layout).unwrap();
        assert_eq!(
            luma,
            DeviceCopy {
                src: PlaneCopy {
                    src_offset: 4 * 512 + 2,
                    src_pitch: 512,
                    width: 321,
                    rows: 241
                },
                dst_offset: 0,
                dst_pitch: 322
            }
        );
        assert_eq!(
            chroma,
            DeviceCopy {
                src: PlaneCopy {
                    src_offset: 512 * 256 + 2 * 512 + 2,
                    src_pitch: 512,
                    width: 322,
                    rows: 121
                },
                dst_offset: 77_602,
                dst_pitch: 322
            }
        );
        // The last chroma row ends exactly at the buffer's end.
        assert_eq!(
            chroma.dst_offset + (chroma.src.rows - 1) * chroma.dst_pitch + chroma.src.width,
            layout.required_len()
        );
        // 1080p out of a 2048-pitch 1920x1088 surface.
        let surface = Nv12Surface {
            pitch: 2048,
            height: 1088,
        };
        let crop = Crop {
            left: 0,
            top: 0,
            width: 1920,
            height: 1080,
        };
        let [luma, chroma] = device_copies(surface, crop, Nv12Layout::packed(1920, 1080)).unwrap();
        assert_eq!(
            (luma.dst_offset, luma.dst_pitch, luma.src.rows),
            (0, 1920, 1080)
        );
        assert_eq!(chroma.src.src_offset, 2048 * 1088);
        assert_eq!(
            (chroma.dst_offset, chroma.dst_pitch, chroma.src.rows),
            (1920 * 1080, 1920, 540)
        );
        // A padded layout is followed as it is.
        let padded = Nv12Layout {
            width: 1920,
            height: 1080,
            pitch: 2048,
            chroma_offset: 2048 * 1088,
        };
        let [luma, chroma] = device_copies(surface, crop, padded).unwrap();
        assert_eq!((luma.dst_pitch, chroma.dst_offset), (2048, 2048 * 1088));
    }

    #[test]
    fn device_copies_refuse_a_layout_that_does_not_fit() {
        let surface = Nv12Surface {
            pitch: 512,
            height: 256,
        };
        let crop = Crop {
            left: 2,
            top: 4,
            width: 321,
            height: 241,
        };
        let packed = Nv12Layout::packed(321, 241);
        for bad in [
            // Another size.
            Nv12Layout::packed(320, 241),
            Nv12Layout::packed(321, 242),
            // Rows narrower than a CbCr row (2·161 bytes).
            Nv12Layout {
                pitch: 321,
                ..packed
            },
            // Chroma over the last luma row.
            Nv12Layout {
                chroma_offset: 322 * 240,
                ..packed
            },
        ] {
            assert!(
                matches!(
                    device_copies(surface, crop, bad),
                    Err(DecodeError::Backend {
                        backend: "nvdec",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        // A crop outside the surface is refused as by `crop_copies`.
        let outside = Crop { width: 511, ..crop };
        assert!(device_copies(surface, outside, Nv12Layout::packed(511, 241)).is_err());
    }
}
