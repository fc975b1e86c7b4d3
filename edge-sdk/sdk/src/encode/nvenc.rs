//! NVENC, the hardware H.264 encoder of NVIDIA GPUs, through the Video Codec SDK's
//! `nvEncodeAPI` (API 11.1). `libnvidia-encode.so.1` and `libcuda.so.1`, both installed with the
//! NVIDIA driver, are loaded at run time: where they are missing, [`NvencEncoder::new`] returns
//! [`EncodeError::NotAvailable`] saying which library is missing and what provides it.
//!
//! The binding has three levels:
//! - [`loader`]: finds the entry points (in the driver's libraries, or from any other provider of
//!   the documented API), checks the driver's API version and fills the function list;
//! - [`result`]: every NVENC and CUDA call returns a `Result`; a failed NVENC status carries the
//!   driver's own explanation from `nvEncGetLastErrorString`;
//! - [`NvencEncoder`]: the safe encoder. The CUDA context, the session and its buffers are RAII
//!   types, and a locked buffer is a guard that unlocks it when dropped.
//!
//! The settings follow NVIDIA's low-latency recommendations: a preset from P1 to P4 with tuning
//! `ULTRA_LOW_LATENCY`, CBR with a one-frame VBV buffer, no B-frames (`frameIntervalP = 1`), one
//! reference frame, SPS and PPS repeated before every IDR, and a synchronous session, so every
//! picture in gives its access unit out at once. The profile is Constrained Baseline (CAVLC), which
//! every H.264 decoder on the other end accepts, as from the openh264 encoder. Pictures go through
//! an NV12 input buffer of the encoder's own; I420 and YUYV are converted into it, honouring its
//! pitch. After construction the Rust side allocates nothing per frame.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Instant;

use flowcloud_sys::nvenc as sys;

use super::{EncodeError, EncodedFrame, EncoderSettings, VideoEncoder, append_within_capacity};
use crate::capture::CapturedFrame;
use crate::picture::{Picture, PixelFormat, Plane};

pub use loader::{CudaEntryPoints, NvencEntryPoints, NvencLibrary};
pub use result::{CudaStatus, NvencError, NvencFailure, NvencStatus};

/// The encoder's name in errors.
const NAME: &str = "NVENC";

/// Largest picture NVENC encodes in H.264 (both dimensions).
const MAX_DIMENSION: u32 = 4096;

pub mod loader {
    //! Level one: the libraries, the entry points and the function list.

    use std::ffi::{c_int, c_uint};

    use super::{NAME, sys};
    use crate::encode::EncodeError;
    use crate::encode::nvenc::result::{NvencError, NvencStatus};

    /// The library with the NVENC API, part of the NVIDIA driver.
    pub const NVENC_LIBRARY: &str = "libnvidia-encode.so.1";
    /// The CUDA driver library, part of the NVIDIA driver; the NVENC session runs on a CUDA
    /// context.
    pub const CUDA_LIBRARY: &str = "libcuda.so.1";
    /// The NVENC API version this encoder is written against, encoded as
    /// `NvEncodeAPIGetMaxSupportedVersion` reports versions: `major << 4 | minor`.
    pub const API_VERSION: u32 = (sys::NVENCAPI_MAJOR_VERSION << 4) | sys::NVENCAPI_MINOR_VERSION;

    /// The two functions `libnvidia-encode.so.1` exports.
    #[derive(Clone, Copy, Debug)]
    pub struct NvencEntryPoints {
        /// `NvEncodeAPIGetMaxSupportedVersion`.
        pub get_max_supported_version: unsafe extern "C" fn(*mut u32) -> sys::NVENCSTATUS,
        /// `NvEncodeAPICreateInstance`.
        pub create_instance:
            unsafe extern "C" fn(*mut sys::NV_ENCODE_API_FUNCTION_LIST) -> sys::NVENCSTATUS,
    }

    /// The CUDA driver functions an NVENC session on a CUDA device needs.
    #[derive(Clone, Copy, Debug)]
    pub struct CudaEntryPoints {
        /// `cuInit`.
        pub init: unsafe extern "C" fn(c_uint) -> sys::CUresult,
        /// `cuDeviceGet`.
        pub device_get: unsafe extern "C" fn(*mut sys::CUdevice, c_int) -> sys::CUresult,
        /// `cuCtxCreate_v2`.
        pub ctx_create:
            unsafe extern "C" fn(*mut sys::CUcontext, c_uint, sys::CUdevice) -> sys::CUresult,
        /// `cuCtxDestroy_v2`.
        pub ctx_destroy: unsafe extern "C" fn(sys::CUcontext) -> sys::CUresult,
    }

    /// The NVENC API, ready to open sessions: the function list `NvEncodeAPICreateInstance`
    /// filled, the CUDA entry points, and the libraries they live in.
    ///
    /// Invariant: every function pointer held here implements the documented API and stays
    /// callable while this value lives.
    pub struct NvencLibrary {
        pub(super) functions: Box<sys::NV_ENCODE_API_FUNCTION_LIST>,
        pub(super) cuda: CudaEntryPoints,
        max_supported_version: u32,
        // Declared last so it is dropped last: the pointers above point into these libraries.
        _libraries: Vec<libloading::Library>,
    }

    impl core::fmt::Debug for NvencLibrary {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let (major, minor) = self.max_supported_version();
            f.debug_struct("NvencLibrary")
                .field("max_supported_version", &format_args!("{major}.{minor}"))
                .field("loaded_libraries", &self._libraries.len())
                .finish_non_exhaustive()
        }
    }

    impl NvencLibrary {
        /// Loads `libnvidia-encode.so.1` and `libcuda.so.1` and creates an NVENC API instance.
        ///
        /// [`EncodeError::NotAvailable`] when a library or one of its functions is missing or
        /// the driver is older than NVENC API 11.1.
        pub fn load() -> Result<Self, EncodeError> {
            let nvenc_library = open(
                NVENC_LIBRARY,
                "Debian: libnvidia-encode1; Ubuntu: libnvidia-encode-<driver version>",
            )?;
            let cuda_library = open(
                CUDA_LIBRARY,
                "Debian: libcuda1; Ubuntu: libnvidia-compute-<driver version>",
            )?;
            // The generated `t*` types are the declarations of nvEncodeAPI.h and cuda.h, so each
            // symbol is read as the type its header gives it; `ok_or` then checks at compile time
            // that the fields above have the same signatures.
            let get_max: sys::tNvEncodeAPIGetMaxSupportedVersion = symbol(
                &nvenc_library,
                NVENC_LIBRARY,
                "NvEncodeAPIGetMaxSupportedVersion",
            )?;
            let create: sys::tNvEncodeAPICreateInstance =
                symbol(&nvenc_library, NVENC_LIBRARY, "NvEncodeAPICreateInstance")?;
            let init: sys::tcuInit = symbol(&cuda_library, CUDA_LIBRARY, "cuInit")?;
            let device_get: sys::tcuDeviceGet = symbol(&cuda_library, CUDA_LIBRARY, "cuDeviceGet")?;
            let ctx_create: sys::tcuCtxCreate_v2 =
                symbol(&cuda_library, CUDA_LIBRARY, "cuCtxCreate_v2")?;
            let ctx_destroy: sys::tcuCtxDestroy_v2 =
                symbol(&cuda_library, CUDA_LIBRARY, "cuCtxDestroy_v2")?;
            let nvenc = NvencEntryPoints {
                get_max_supported_version: get_max.ok_or_else(|| null_symbol(NVENC_LIBRARY))?,
                create_instance: create.ok_or_else(|| null_symbol(NVENC_LIBRARY))?,
            };
            let cuda = CudaEntryPoints {
                init: init.ok_or_else(|| null_symbol(CUDA_LIBRARY))?,
                device_get: device_get.ok_or_else(|| null_symbol(CUDA_LIBRARY))?,
                ctx_create: ctx_create.ok_or_else(|| null_symbol(CUDA_LIBRARY))?,
                ctx_destroy: ctx_destroy.ok_or_else(|| null_symbol(CUDA_LIBRARY))?,
            };
            // SAFETY: these are the NVIDIA driver's own implementations of the API, looked up by
            // their documented names and types; the libraries are stored in the result, so the
            // pointers stay valid as long as it lives.
            let mut library = unsafe { Self::from_entry_points(nvenc, cuda) }?;
            library._libraries = vec![nvenc_library, cuda_library];
            Ok(library)
        }

        /// The API from entry points provided by the caller: checks the API version, then fills
        /// the function list with `create_instance`. [`Self::load`] does this with the driver's
        /// libraries; another provider (a shim, a test double) can stand in for them.
        ///
        /// # Safety
        ///
        /// Every function given, and every function `create_instance` puts in the function list,
        /// must behave as nvEncodeAPI.h (API 11.1) and the CUDA driver API document it, and must
        /// stay callable as long as the returned value lives.
        pub unsafe fn from_entry_points(
            nvenc: NvencEntryPoints,
            cuda: CudaEntryPoints,
        ) -> Result<Self, EncodeError> {
            let mut max_supported_version = 0;
            // SAFETY: the caller guarantees the function implements the documented API; the
            // argument is a valid pointer to a u32 it may write.
            let status = unsafe { (nvenc.get_max_supported_version)(&mut max_supported_version) };
            NvencStatus(status).result().map_err(|status| {
                NvencError::status("NvEncodeAPIGetMaxSupportedVersion", status, String::new())
            })?;
            if max_supported_version < API_VERSION {
                return Err(EncodeError::NotAvailable {
                    encoder: NAME,
                    reason: format!(
                        "the NVIDIA driver supports NVENC API up to {}.{}, this encoder needs \
                         {}.{} (driver R470 or newer)",
                        max_supported_version >> 4,
                        max_supported_version & 0xf,
                        sys::NVENCAPI_MAJOR_VERSION,
                        sys::NVENCAPI_MINOR_VERSION,
                    ),
                });
            }
            let mut functions = Box::<sys::NV_ENCODE_API_FUNCTION_LIST>::default();
            functions.version = sys::NV_ENCODE_API_FUNCTION_LIST_VER;
            // SAFETY: the caller guarantees the function implements the documented API; the
            // argument is a zeroed function list with its version set, as the API requires.
            let status = unsafe { (nvenc.create_instance)(&mut *functions) };
            NvencStatus(status).result().map_err(|status| {
                NvencError::status("NvEncodeAPICreateInstance", status, String::new())
            })?;
            Ok(Self {
                functions,
                cuda,
                max_supported_version,
                _libraries: Vec::new(),
            })
        }

        /// The newest NVENC API version the driver supports, `(major, minor)`.
        #[must_use]
        pub const fn max_supported_version(&self) -> (u32, u32) {
            (
                self.max_supported_version >> 4,
                self.max_supported_version & 0xf,
            )
        }
    }

    fn open(name: &str, packages: &str) -> Result<libloading::Library, EncodeError> {
        // SAFETY: loading a library runs its initialisers; the NVIDIA driver's libraries are
        // made to be loaded this way by applications (the Video Codec SDK's loader does the
        // same) and have no initialisation requirements on the caller.
        unsafe { libloading::Library::new(name) }.map_err(|error| EncodeError::NotAvailable {
            encoder: NAME,
            reason: format!(
                "cannot load {name} ({error}); it is installed with the NVIDIA driver \
                 ({packages}), and NVENC also needs an NVIDIA GPU with an NVENC engine"
            ),
        })
    }

    fn symbol<T: Copy>(
        library: &libloading::Library,
        library_name: &str,
        name: &str,
    ) -> Result<T, EncodeError> {
        // SAFETY: every caller names the generated type of this very symbol (the `t*` types of
        // flowcloud-sys), so the address is read as the function type its header declares.
        let symbol =
            unsafe { library.get::<T>(name) }.map_err(|error| EncodeError::NotAvailable {
                encoder: NAME,
                reason: format!(
                    "{library_name} has no {name} ({error}); the NVIDIA driver is incomplete or \
                     too old"
                ),
            })?;
        Ok(*symbol)
    }

    fn null_symbol(library_name: &str) -> EncodeError {
        EncodeError::NotAvailable {
            encoder: NAME,
            reason: format!("{library_name} exports a null entry point"),
        }
    }
}

pub mod result {
    //! Level two: every call returns a `Result`.
    //!
    //! The functions here are thin: one API call each, its status checked, nothing kept. Those
    //! that take a handle are `unsafe` because the handle must be live; the RAII types of the
    //! encoder are what guarantees that.

    use std::ffi::{CStr, c_int, c_void};
    use std::ptr::{self, NonNull};

    use super::{NAME, sys};
    use crate::encode::EncodeError;
    use crate::encode::nvenc::loader::NvencLibrary;

    /// The status an NVENC call returned (`NVENCSTATUS`).
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct NvencStatus(pub sys::NVENCSTATUS);

    impl NvencStatus {
        /// `NV_ENC_SUCCESS`.
        pub const SUCCESS: Self = Self(sys::NV_ENC_SUCCESS);
        /// `NV_ENC_ERR_NEED_MORE_INPUT`: the encoder holds the picture back (only with B-frames
        /// or asynchronous output, neither of which this encoder uses).
        pub const NEED_MORE_INPUT: Self = Self(sys::NV_ENC_ERR_NEED_MORE_INPUT);

        /// `Ok` for `NV_ENC_SUCCESS`, the status itself otherwise.
        pub const fn result(self) -> Result<(), Self> {
            if self.0 == sys::NV_ENC_SUCCESS {
                Ok(())
            } else {
                Err(self)
            }
        }

        /// The status's name in nvEncodeAPI.h.
        #[must_use]
        pub const fn name(self) -> &'static str {
            match self.0 {
                sys::NV_ENC_SUCCESS => "NV_ENC_SUCCESS",
                sys::NV_ENC_ERR_NO_ENCODE_DEVICE => "NV_ENC_ERR_NO_ENCODE_DEVICE",
                sys::NV_ENC_ERR_UNSUPPORTED_DEVICE => "NV_ENC_ERR_UNSUPPORTED_DEVICE",
                sys::NV_ENC_ERR_INVALID_ENCODERDEVICE => "NV_ENC_ERR_INVALID_ENCODERDEVICE",
                sys::NV_ENC_ERR_INVALID_DEVICE => "NV_ENC_ERR_INVALID_DEVICE",
                sys::NV_ENC_ERR_DEVICE_NOT_EXIST => "NV_ENC_ERR_DEVICE_NOT_EXIST",
                sys::NV_ENC_ERR_INVALID_PTR => "NV_ENC_ERR_INVALID_PTR",
                sys::NV_ENC_ERR_INVALID_EVENT => "NV_ENC_ERR_INVALID_EVENT",
                sys::NV_ENC_ERR_INVALID_PARAM => "NV_ENC_ERR_INVALID_PARAM",
                sys::NV_ENC_ERR_INVALID_CALL => "NV_ENC_ERR_INVALID_CALL",
                sys::NV_ENC_ERR_OUT_OF_MEMORY => "NV_ENC_ERR_OUT_OF_MEMORY",
                sys::NV_ENC_ERR_ENCODER_NOT_INITIALIZED => "NV_ENC_ERR_ENCODER_NOT_INITIALIZED",
                sys::NV_ENC_ERR_UNSUPPORTED_PARAM => "NV_ENC_ERR_UNSUPPORTED_PARAM",
                sys::NV_ENC_ERR_LOCK_BUSY => "NV_ENC_ERR_LOCK_BUSY",
                sys::NV_ENC_ERR_NOT_ENOUGH_BUFFER => "NV_ENC_ERR_NOT_ENOUGH_BUFFER",
                sys::NV_ENC_ERR_INVALID_VERSION => "NV_ENC_ERR_INVALID_VERSION",
                sys::NV_ENC_ERR_MAP_FAILED => "NV_ENC_ERR_MAP_FAILED",
                sys::NV_ENC_ERR_NEED_MORE_INPUT => "NV_ENC_ERR_NEED_MORE_INPUT",
                sys::NV_ENC_ERR_ENCODER_BUSY => "NV_ENC_ERR_ENCODER_BUSY",
                sys::NV_ENC_ERR_EVENT_NOT_REGISTERD => "NV_ENC_ERR_EVENT_NOT_REGISTERD",
                sys::NV_ENC_ERR_GENERIC => "NV_ENC_ERR_GENERIC",
                sys::NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY => "NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY",
                sys::NV_ENC_ERR_UNIMPLEMENTED => "NV_ENC_ERR_UNIMPLEMENTED",
                sys::NV_ENC_ERR_RESOURCE_REGISTER_FAILED => "NV_ENC_ERR_RESOURCE_REGISTER_FAILED",
                sys::NV_ENC_ERR_RESOURCE_NOT_REGISTERED => "NV_ENC_ERR_RESOURCE_NOT_REGISTERED",
                sys::NV_ENC_ERR_RESOURCE_NOT_MAPPED => "NV_ENC_ERR_RESOURCE_NOT_MAPPED",
                _ => "unknown NVENCSTATUS",
            }
        }
    }

    impl core::fmt::Display for NvencStatus {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "{} ({})", self.name(), self.0)
        }
    }

    impl core::fmt::Debug for NvencStatus {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            core::fmt::Display::fmt(self, f)
        }
    }

    /// The status a CUDA driver call returned (`CUresult`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct CudaStatus(pub sys::CUresult);

    impl CudaStatus {
        /// `Ok` for `CUDA_SUCCESS`, the status itself otherwise.
        pub const fn result(self) -> Result<(), Self> {
            if self.0 == sys::CUDA_SUCCESS {
                Ok(())
            } else {
                Err(self)
            }
        }
    }

    impl core::fmt::Display for CudaStatus {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            // 100 is CUDA_ERROR_NO_DEVICE, 35 CUDA_ERROR_INSUFFICIENT_DRIVER (cuda.h).
            write!(f, "CUresult {}", self.0)
        }
    }

    /// What went wrong in a failed call.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum NvencFailure {
        /// NVENC returned this status.
        Nvenc(NvencStatus),
        /// The CUDA driver returned this status.
        Cuda(CudaStatus),
        /// The driver's function list has no such function.
        MissingFunction,
        /// The call succeeded but what it handed back cannot be used (a null handle or pointer,
        /// a pitch below the width).
        InvalidOutput,
    }

    /// A failed NVENC or CUDA call.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct NvencError {
        /// The API function.
        pub call: &'static str,
        /// What went wrong.
        pub failure: NvencFailure,
        /// The driver's explanation (`nvEncGetLastErrorString`); empty when it gave none.
        pub detail: String,
    }

    impl NvencError {
        pub(super) const fn status(
            call: &'static str,
            status: NvencStatus,
            detail: String,
        ) -> Self {
            Self {
                call,
                failure: NvencFailure::Nvenc(status),
                detail,
            }
        }

        const fn other(call: &'static str, failure: NvencFailure) -> Self {
            Self {
                call,
                failure,
                detail: String::new(),
            }
        }

        /// The NVENC status, when NVENC returned one.
        #[must_use]
        pub const fn nvenc_status(&self) -> Option<NvencStatus> {
            match self.failure {
                NvencFailure::Nvenc(status) => Some(status),
                _ => None,
            }
        }
    }

    impl core::fmt::Display for NvencError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "{} failed: ", self.call)?;
            match self.failure {
                NvencFailure::Nvenc(status) => write!(f, "{status}")?,
                NvencFailure::Cuda(status) => write!(f, "{status}")?,
                NvencFailure::MissingFunction => {
                    f.write_str("not in the driver's function list")?
                }
                NvencFailure::InvalidOutput => f.write_str("returned an unusable result")?,
            }
            if !self.detail.is_empty() {
                write!(f, ": {}", self.detail)?;
            }
            Ok(())
        }
    }

    impl std::error::Error for NvencError {}

    impl From<NvencError> for EncodeError {
        fn from(error: NvencError) -> Self {
            Self::Backend {
                encoder: NAME,
                message: error.to_string(),
            }
        }
    }

    fn entry<F>(function: Option<F>, call: &'static str) -> Result<F, NvencError> {
        function.ok_or(NvencError::other(call, NvencFailure::MissingFunction))
    }

    fn cuda(call: &'static str, status: sys::CUresult) -> Result<(), NvencError> {
        CudaStatus(status)
            .result()
            .map_err(|status| NvencError::other(call, NvencFailure::Cuda(status)))
    }

    impl NvencLibrary {
        /// Turns a status into a `Result`, with the session's last error text on failure.
        ///
        /// # Safety
        ///
        /// `encoder` is null or a live session of this library.
        unsafe fn check(
            &self,
            call: &'static str,
            encoder: *mut c_void,
            status: sys::NVENCSTATUS,
        ) -> Result<(), NvencError> {
            NvencStatus(status).result().map_err(|status| {
                // SAFETY: forwarded from this function's contract.
                let detail = unsafe { self.last_error(encoder) };
                NvencError::status(call, status, detail)
            })
        }

        /// The driver's text for the last error of `encoder` (`nvEncGetLastErrorString`), or
        /// an empty string.
        ///
        /// # Safety
        ///
        /// `encoder` is null or a live session of this library.
        unsafe fn last_error(&self, encoder: *mut c_void) -> String {
            let Some(function) = self.functions.nvEncGetLastErrorString else {
                return String::new();
            };
            if encoder.is_null() {
                return String::new();
            }
            // SAFETY: `encoder` is a live session (this function's contract).
            let text = unsafe { function(encoder) };
            if text.is_null() {
                return String::new();
            }
            // SAFETY: the driver returns a NUL-terminated string that stays valid until the
            // next call on this session; it is copied before returning.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        }

        /// `cuInit(0)`.
        pub(super) fn cu_init(&self) -> Result<(), NvencError> {
            // SAFETY: the entry point is valid (the library's invariant); cuInit takes no
            // pointers and may be called any number of times.
            cuda("cuInit", unsafe { (self.cuda.init)(0) })
        }

        /// `cuDeviceGet`: the device with this ordinal.
        pub(super) fn cu_device_get(&self, ordinal: c_int) -> Result<sys::CUdevice, NvencError> {
            let mut device = 0;
            // SAFETY: the entry point is valid (the library's invariant); `device` is a valid
            // out pointer.
            cuda("cuDeviceGet", unsafe {
                (self.cuda.device_get)(&mut device, ordinal)
            })?;
            Ok(device)
        }

        /// `cuCtxCreate_v2`: a new context on `device`, current on the calling thread.
        pub(super) fn cu_ctx_create(
            &self,
            device: sys::CUdevice,
        ) -> Result<NonNull<sys::CUctx_st>, NvencError> {
            let mut context = ptr::null_mut();
            // SAFETY: the entry point is valid (the library's invariant); `context` is a valid
            // out pointer; flags 0 is the default scheduling policy.
            cuda("cuCtxCreate_v2", unsafe {
                (self.cuda.ctx_create)(&mut context, 0, device)
            })?;
            NonNull::new(context).ok_or(NvencError::other(
                "cuCtxCreate_v2",
                NvencFailure::InvalidOutput,
            ))
        }

        /// `cuCtxDestroy_v2`.
        ///
        /// # Safety
        ///
        /// `context` was created by this library and is not used again.
        pub(super) unsafe fn cu_ctx_destroy(
            &self,
            context: NonNull<sys::CUctx_st>,
        ) -> Result<(), NvencError> {
            // SAFETY: the entry point is valid; `context` is live (this function's contract).
            cuda("cuCtxDestroy_v2", unsafe {
                (self.cuda.ctx_destroy)(context.as_ptr())
            })
        }

        /// `nvEncOpenEncodeSessionEx`. A session handle the driver returns with a failure is
        /// destroyed here, as the API asks.
        ///
        /// # Safety
        ///
        /// `params.device` is a live device of `params.deviceType` that outlives the session.
        pub(super) unsafe fn open_encode_session_ex(
            &self,
            params: &mut sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS,
        ) -> Result<NonNull<c_void>, NvencError> {
            const CALL: &str = "nvEncOpenEncodeSessionEx";
            let function = entry(self.functions.nvEncOpenEncodeSessionEx, CALL)?;
            let mut encoder = ptr::null_mut();
            // SAFETY: the entry point is valid; `params` is a valid, versioned parameter struct
            // whose device is live (this function's contract); `encoder` is a valid out pointer.
            let status = unsafe { function(params, &mut encoder) };
            // SAFETY: `encoder` is null or the session the driver just returned.
            if let Err(error) = unsafe { self.check(CALL, encoder, status) } {
                if !encoder.is_null() {
                    // SAFETY: a session returned with a failure must still be destroyed, and
                    // nothing else holds it.
                    let _ = unsafe { self.destroy_encoder(encoder) };
                }
                return Err(error);
            }
            NonNull::new(encoder).ok_or(NvencError::other(CALL, NvencFailure::InvalidOutput))
        }

        /// `nvEncGetEncodePresetConfigEx`.
        ///
        /// # Safety
        ///
        /// `encoder` is a live session of this library.
        pub(super) unsafe fn get_encode_preset_config_ex(
            &self,
            encoder: NonNull<c_void>,
            codec: sys::GUID,
            preset: sys::GUID,
            tuning: sys::NV_ENC_TUNING_INFO,
            config: &mut sys::NV_ENC_PRESET_CONFIG,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncGetEncodePresetConfigEx";
            let function = entry(self.functions.nvEncGetEncodePresetConfigEx, CALL)?;
            // SAFETY: the entry point is valid; the session is live (this function's contract);
            // `config` is a valid, versioned preset config.
            let status = unsafe { function(encoder.as_ptr(), codec, preset, tuning, config) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncInitializeEncoder`.
        ///
        /// # Safety
        ///
        /// `encoder` is a live session of this library; `params.encodeConfig` is null or
        /// points to a valid config for the duration of the call.
        pub(super) unsafe fn initialize_encoder(
            &self,
            encoder: NonNull<c_void>,
            params: &mut sys::NV_ENC_INITIALIZE_PARAMS,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncInitializeEncoder";
            let function = entry(self.functions.nvEncInitializeEncoder, CALL)?;
            // SAFETY: the entry point is valid; session and config pointers are valid (this
            // function's contract).
            let status = unsafe { function(encoder.as_ptr(), params) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncCreateInputBuffer`: the new buffer's handle.
        ///
        /// # Safety
        ///
        /// `encoder` is a live, initialised session of this library.
        pub(super) unsafe fn create_input_buffer(
            &self,
            encoder: NonNull<c_void>,
            params: &mut sys::NV_ENC_CREATE_INPUT_BUFFER,
        ) -> Result<NonNull<c_void>, NvencError> {
            const CALL: &str = "nvEncCreateInputBuffer";
            let function = entry(self.functions.nvEncCreateInputBuffer, CALL)?;
            // SAFETY: the entry point is valid; the session is live; `params` is valid.
            let status = unsafe { function(encoder.as_ptr(), params) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }?;
            NonNull::new(params.inputBuffer)
                .ok_or(NvencError::other(CALL, NvencFailure::InvalidOutput))
        }

        /// `nvEncDestroyInputBuffer`.
        ///
        /// # Safety
        ///
        /// `buffer` is an input buffer of the live session `encoder`, unlocked and not used
        /// again.
        pub(super) unsafe fn destroy_input_buffer(
            &self,
            encoder: NonNull<c_void>,
            buffer: NonNull<c_void>,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncDestroyInputBuffer";
            let function = entry(self.functions.nvEncDestroyInputBuffer, CALL)?;
            // SAFETY: the entry point is valid; session and buffer are live (contract).
            let status = unsafe { function(encoder.as_ptr(), buffer.as_ptr()) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncCreateBitstreamBuffer`: the new buffer's handle.
        ///
        /// # Safety
        ///
        /// `encoder` is a live, initialised session of this library.
        pub(super) unsafe fn create_bitstream_buffer(
            &self,
            encoder: NonNull<c_void>,
            params: &mut sys::NV_ENC_CREATE_BITSTREAM_BUFFER,
        ) -> Result<NonNull<c_void>, NvencError> {
            const CALL: &str = "nvEncCreateBitstreamBuffer";
            let function = entry(self.functions.nvEncCreateBitstreamBuffer, CALL)?;
            // SAFETY: the entry point is valid; the session is live; `params` is valid.
            let status = unsafe { function(encoder.as_ptr(), params) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }?;
            NonNull::new(params.bitstreamBuffer)
                .ok_or(NvencError::other(CALL, NvencFailure::InvalidOutput))
        }

        /// `nvEncDestroyBitstreamBuffer`.
        ///
        /// # Safety
        ///
        /// `buffer` is a bitstream buffer of the live session `encoder`, unlocked and not used
        /// again.
        pub(super) unsafe fn destroy_bitstream_buffer(
            &self,
            encoder: NonNull<c_void>,
            buffer: NonNull<c_void>,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncDestroyBitstreamBuffer";
            let function = entry(self.functions.nvEncDestroyBitstreamBuffer, CALL)?;
            // SAFETY: the entry point is valid; session and buffer are live (contract).
            let status = unsafe { function(encoder.as_ptr(), buffer.as_ptr()) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncLockInputBuffer`: fills `params.bufferDataPtr` and `params.pitch`.
        ///
        /// # Safety
        ///
        /// `params.inputBuffer` is an unlocked input buffer of the live session `encoder`.
        pub(super) unsafe fn lock_input_buffer(
            &self,
            encoder: NonNull<c_void>,
            params: &mut sys::NV_ENC_LOCK_INPUT_BUFFER,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncLockInputBuffer";
            let function = entry(self.functions.nvEncLockInputBuffer, CALL)?;
            // SAFETY: the entry point is valid; session and buffer are live (contract).
            let status = unsafe { function(encoder.as_ptr(), params) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncUnlockInputBuffer`.
        ///
        /// # Safety
        ///
        /// `buffer` is a locked input buffer of the live session `encoder`, and nothing uses
        /// the locked memory any more.
        pub(super) unsafe fn unlock_input_buffer(
            &self,
            encoder: NonNull<c_void>,
            buffer: NonNull<c_void>,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncUnlockInputBuffer";
            let function = entry(self.functions.nvEncUnlockInputBuffer, CALL)?;
            // SAFETY: the entry point is valid; session and buffer are live (contract).
            let status = unsafe { function(encoder.as_ptr(), buffer.as_ptr()) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncEncodePicture`. `NV_ENC_ERR_NEED_MORE_INPUT` comes back as an error for the
        /// caller to tell apart.
        ///
        /// # Safety
        ///
        /// `encoder` is a live, initialised session; the buffers in `params` are its own (null
        /// for an end-of-stream picture), the input unlocked.
        pub(super) unsafe fn encode_picture(
            &self,
            encoder: NonNull<c_void>,
            params: &mut sys::NV_ENC_PIC_PARAMS,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncEncodePicture";
            let function = entry(self.functions.nvEncEncodePicture, CALL)?;
            // SAFETY: the entry point is valid; session and buffers are live (contract).
            let status = unsafe { function(encoder.as_ptr(), params) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncLockBitstream` (blocking): fills the pointer, size and picture type.
        ///
        /// # Safety
        ///
        /// `params.outputBitstream` is an unlocked bitstream buffer of the live session
        /// `encoder`.
        pub(super) unsafe fn lock_bitstream(
            &self,
            encoder: NonNull<c_void>,
            params: &mut sys::NV_ENC_LOCK_BITSTREAM,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncLockBitstream";
            let function = entry(self.functions.nvEncLockBitstream, CALL)?;
            // SAFETY: the entry point is valid; session and buffer are live (contract).
            let status = unsafe { function(encoder.as_ptr(), params) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncUnlockBitstream`.
        ///
        /// # Safety
        ///
        /// `buffer` is a locked bitstream buffer of the live session `encoder`, and nothing
        /// reads the locked memory any more.
        pub(super) unsafe fn unlock_bitstream(
            &self,
            encoder: NonNull<c_void>,
            buffer: NonNull<c_void>,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncUnlockBitstream";
            let function = entry(self.functions.nvEncUnlockBitstream, CALL)?;
            // SAFETY: the entry point is valid; session and buffer are live (contract).
            let status = unsafe { function(encoder.as_ptr(), buffer.as_ptr()) };
            // SAFETY: the session is live.
            unsafe { self.check(CALL, encoder.as_ptr(), status) }
        }

        /// `nvEncDestroyEncoder`.
        ///
        /// # Safety
        ///
        /// `encoder` is a session of this library whose buffers are destroyed, and it is not
        /// used again.
        pub(super) unsafe fn destroy_encoder(
            &self,
            encoder: *mut c_void,
        ) -> Result<(), NvencError> {
            const CALL: &str = "nvEncDestroyEncoder";
            let function = entry(self.functions.nvEncDestroyEncoder, CALL)?;
            // SAFETY: the entry point is valid; the session is live and unused (contract).
            let status = unsafe { function(encoder) };
            // No last-error text: the session is gone.
            NvencStatus(status)
                .result()
                .map_err(|status| NvencError::status(CALL, status, String::new()))
        }
    }
}

/// The NVENC presets suited to low latency, fastest first (NVIDIA recommends P1–P4 with
/// ultra-low-latency tuning for real-time streaming).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NvencPreset {
    /// Fastest, lowest quality.
    P1,
    /// Faster.
    P2,
    /// The default: a balance of speed and quality.
    #[default]
    P3,
    /// Slower, better quality.
    P4,
}

impl NvencPreset {
    const fn guid(self) -> sys::GUID {
        match self {
            Self::P1 => sys::NV_ENC_PRESET_P1_GUID,
            Self::P2 => sys::NV_ENC_PRESET_P2_GUID,
            Self::P3 => sys::NV_ENC_PRESET_P3_GUID,
            Self::P4 => sys::NV_ENC_PRESET_P4_GUID,
        }
    }
}

/// NVENC-specific choices beyond [`EncoderSettings`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NvencOptions {
    /// The preset.
    pub preset: NvencPreset,
    /// The CUDA device ordinal of the GPU to encode on.
    pub cuda_device: i32,
}

/// The CUDA context the session runs on.
struct CudaContext {
    library: Rc<NvencLibrary>,
    context: NonNull<sys::CUctx_st>,
}

impl CudaContext {
    fn create(library: Rc<NvencLibrary>, ordinal: i32) -> Result<Self, NvencError> {
        library.cu_init()?;
        let device = library.cu_device_get(ordinal)?;
        let context = library.cu_ctx_create(device)?;
        Ok(Self { library, context })
    }
}

impl Drop for CudaContext {
    fn drop(&mut self) {
        // SAFETY: the context was created by this library, and the session that used it has
        // been destroyed (the session owns this value and drops it last).
        // Nothing can be done about a failure while releasing.
        let _ = unsafe { self.library.cu_ctx_destroy(self.context) };
    }
}

/// An NVENC encode session; destroys itself, then its CUDA context.
struct Session {
    encoder: NonNull<c_void>,
    library: Rc<NvencLibrary>,
    // Dropped after `Session::drop` destroyed the encoder that used it.
    _context: CudaContext,
}

impl Session {
    fn open(context: CudaContext) -> Result<Self, NvencError> {
        let library = Rc::clone(&context.library);
        let mut params = sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS {
            version: sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER,
            deviceType: sys::NV_ENC_DEVICE_TYPE_CUDA,
            device: context.context.as_ptr().cast(),
            apiVersion: sys::NVENCAPI_VERSION,
            ..Default::default()
        };
        // SAFETY: the device is a live CUDA context that the session keeps until it is gone.
        let encoder = unsafe { library.open_encode_session_ex(&mut params) }?;
        Ok(Self {
            encoder,
            library,
            _context: context,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the buffers hold the session through an `Rc`, so they are all destroyed by
        // now, and nothing uses the session after this.
        let _ = unsafe { self.library.destroy_encoder(self.encoder.as_ptr()) };
    }
}

/// A host-memory NV12 input buffer of a session.
struct InputBuffer {
    handle: NonNull<c_void>,
    height: usize,
    width: usize,
    session: Rc<Session>,
}

impl InputBuffer {
    fn create(session: &Rc<Session>, width: u32, height: u32) -> Result<Self, NvencError> {
        let mut params = sys::NV_ENC_CREATE_INPUT_BUFFER {
            version: sys::NV_ENC_CREATE_INPUT_BUFFER_VER,
            width,
            height,
            bufferFmt: sys::NV_ENC_BUFFER_FORMAT_NV12,
            ..Default::default()
        };
        // SAFETY: the session is live and initialised (it is created before its buffers).
        let handle = unsafe {
            session
                .library
                .create_input_buffer(session.encoder, &mut params)
        }?;
        Ok(Self {
            handle,
            width: width as usize,
            height: height as usize,
            session: Rc::clone(session),
        })
    }

    /// Locks the buffer for writing; the guard unlocks it.
    fn lock(&mut self) -> Result<InputLock<'_>, NvencError> {
        const CALL: &str = "nvEncLockInputBuffer";
        let mut params = sys::NV_ENC_LOCK_INPUT_BUFFER {
            version: sys::NV_ENC_LOCK_INPUT_BUFFER_VER,
            inputBuffer: self.handle.as_ptr(),
            ..Default::default()
        };
        let session = &self.session;
        // SAFETY: the buffer belongs to this live session, and it is unlocked: the only lock is
        // the guard below, which borrows `self` mutably until it unlocks.
        unsafe {
            session
                .library
                .lock_input_buffer(session.encoder, &mut params)
        }?;
        let mut guard = InputLock {
            buffer: self,
            data: NonNull::dangling(),
            pitch: params.pitch as usize,
            len: 0,
            locked: true,
        };
        // From here on the guard unlocks on every return.
        let pitch = guard.pitch;
        let Some(data) = NonNull::new(params.bufferDataPtr.cast::<u8>()) else {
            return Err(invalid(CALL, "returned a null buffer".into()));
        };
        if pitch < guard.buffer.width {
            return Err(invalid(
                CALL,
                format!("pitch {pitch} below the width {}", guard.buffer.width),
            ));
        }
        // NV12 in an NVENC buffer: `height` luma rows, then `height / 2` interleaved chroma rows,
        // all `pitch` bytes apart.
        let rows = guard.buffer.height + guard.buffer.height / 2;
        let Some(len) = pitch.checked_mul(rows) else {
            return Err(invalid(CALL, format!("pitch {pitch} is implausible")));
        };
        guard.data = data;
        guard.len = len;
        Ok(guard)
    }
}

impl Drop for InputBuffer {
    fn drop(&mut self) {
        // SAFETY: the buffer belongs to this live session (held through the `Rc`); no lock
        // guard is alive, since a guard borrows the buffer.
        let _ = unsafe {
            self.session
                .library
                .destroy_input_buffer(self.session.encoder, self.handle)
        };
    }
}

/// A locked input buffer: `len` writable bytes with rows `pitch` apart.
struct InputLock<'a> {
    buffer: &'a mut InputBuffer,
    data: NonNull<u8>,
    pitch: usize,
    len: usize,
    locked: bool,
}

impl InputLock<'_> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: while the buffer is locked, the driver lends `pitch × height × 3/2` bytes of
        // NV12 at `data` to the caller; the slice borrows the guard, which unlocks only when
        // dropped or consumed.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }

    /// Unlocks, reporting a failure (dropping the guard unlocks too, but silently).
    fn unlock(mut self) -> Result<(), NvencError> {
        self.locked = false;
        let session = &self.buffer.session;
        // SAFETY: the buffer is locked by this guard, which is consumed, so its memory is no
        // longer borrowed.
        unsafe {
            session
                .library
                .unlock_input_buffer(session.encoder, self.buffer.handle)
        }
    }
}

impl Drop for InputLock<'_> {
    fn drop(&mut self) {
        if self.locked {
            let session = &self.buffer.session;
            // SAFETY: the buffer is locked by this guard, which is going away.
            let _ = unsafe {
                session
                    .library
                    .unlock_input_buffer(session.encoder, self.buffer.handle)
            };
        }
    }
}

/// A bitstream (output) buffer of a session.
struct BitstreamBuffer {
    handle: NonNull<c_void>,
    session: Rc<Session>,
}

impl BitstreamBuffer {
    fn create(session: &Rc<Session>) -> Result<Self, NvencError> {
        let mut params = sys::NV_ENC_CREATE_BITSTREAM_BUFFER {
            version: sys::NV_ENC_CREATE_BITSTREAM_BUFFER_VER,
            ..Default::default()
        };
        // SAFETY: the session is live and initialised.
        let handle = unsafe {
            session
                .library
                .create_bitstream_buffer(session.encoder, &mut params)
        }?;
        Ok(Self {
            handle,
            session: Rc::clone(session),
        })
    }

    /// Waits for the encoded picture and locks it for reading; the guard unlocks it.
    fn lock(&mut self) -> Result<BitstreamLock<'_>, NvencError> {
        let mut params = sys::NV_ENC_LOCK_BITSTREAM {
            version: sys::NV_ENC_LOCK_BITSTREAM_VER,
            outputBitstream: self.handle.as_ptr(),
            ..Default::default()
        };
        let session = &self.session;
        // SAFETY: the buffer belongs to this live session and is unlocked: a lock guard
        // borrows `self` mutably until it unlocks.
        unsafe { session.library.lock_bitstream(session.encoder, &mut params) }?;
        let mut guard = BitstreamLock {
            buffer: self,
            data: NonNull::dangling(),
            len: 0,
            picture_type: params.pictureType,
            locked: true,
        };
        let len = params.bitstreamSizeInBytes as usize;
        if len > 0 {
            let Some(data) = NonNull::new(params.bitstreamBufferPtr.cast::<u8>()) else {
                return Err(invalid(
                    "nvEncLockBitstream",
                    format!("returned a null pointer for {len} bytes"),
                ));
            };
            guard.data = data;
            guard.len = len;
        }
        Ok(guard)
    }
}

impl Drop for BitstreamBuffer {
    fn drop(&mut self) {
        // SAFETY: the buffer belongs to this live session; no lock guard is alive.
        let _ = unsafe {
            self.session
                .library
                .destroy_bitstream_buffer(self.session.encoder, self.handle)
        };
    }
}

/// A locked bitstream buffer: the encoded access unit.
struct BitstreamLock<'a> {
    buffer: &'a mut BitstreamBuffer,
    data: NonNull<u8>,
    len: usize,
    picture_type: sys::NV_ENC_PIC_TYPE,
    locked: bool,
}

impl BitstreamLock<'_> {
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: while the bitstream is locked the driver guarantees `bitstreamSizeInBytes`
        // readable bytes at `bitstreamBufferPtr`; the slice borrows the guard, which unlocks
        // only when dropped or consumed.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    /// Unlocks, reporting a failure (dropping the guard unlocks too, but silently).
    fn unlock(mut self) -> Result<(), NvencError> {
        self.locked = false;
        let session = &self.buffer.session;
        // SAFETY: the buffer is locked by this guard, which is consumed, so its bytes are no
        // longer borrowed.
        unsafe {
            session
                .library
                .unlock_bitstream(session.encoder, self.buffer.handle)
        }
    }
}

impl Drop for BitstreamLock<'_> {
    fn drop(&mut self) {
        if self.locked {
            let session = &self.buffer.session;
            // SAFETY: the buffer is locked by this guard, which is going away.
            let _ = unsafe {
                session
                    .library
                    .unlock_bitstream(session.encoder, self.buffer.handle)
            };
        }
    }
}

fn invalid(call: &'static str, detail: String) -> NvencError {
    NvencError {
        call,
        failure: NvencFailure::InvalidOutput,
        detail,
    }
}

/// NVENC's H.264 encoder on a CUDA device. See the [module documentation](self) for the
/// settings it uses.
pub struct NvencEncoder {
    settings: EncoderSettings,
    options: NvencOptions,
    // Field order is drop order: the buffers go before the session they belong to (each also
    // holds the session, so this is belt and braces).
    input: InputBuffer,
    bitstream: BitstreamBuffer,
    session: Rc<Session>,
    /// I420 conversion target for YUYV input (allocated once).
    i420: Vec<u8>,
    frames: u64,
    keyframe_requested: bool,
    finished: bool,
}

impl core::fmt::Debug for NvencEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NvencEncoder")
            .field("settings", &self.settings)
            .field("options", &self.options)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl NvencEncoder {
    /// An encoder with these settings and the default [`NvencOptions`], on the NVIDIA driver's
    /// libraries. [`EncodeError::NotAvailable`] on a machine without them.
    pub fn new(settings: EncoderSettings) -> Result<Self, EncodeError> {
        Self::with_library(NvencLibrary::load()?, settings, NvencOptions::default())
    }

    /// An encoder on an already loaded API, with explicit options.
    pub fn with_library(
        library: NvencLibrary,
        settings: EncoderSettings,
        options: NvencOptions,
    ) -> Result<Self, EncodeError> {
        settings.validate(MAX_DIMENSION, MAX_DIMENSION)?;
        let (w, h) = (settings.width, settings.height);
        let library = Rc::new(library);
        let context = CudaContext::create(Rc::clone(&library), options.cuda_device)?;
        let session = Rc::new(Session::open(context)?);
        Self::initialize(&session, &settings, options.preset)?;
        let input = InputBuffer::create(&session, w, h)?;
        let bitstream = BitstreamBuffer::create(&session)?;
        Ok(Self {
            settings,
            options,
            input,
            bitstream,
            session,
            i420: vec![0; PixelFormat::I420.frame_len(w as usize, h as usize)],
            frames: 0,
            keyframe_requested: false,
            finished: false,
        })
    }

    /// Reads the preset's configuration, applies the low-latency settings and initialises the
    /// session with it.
    fn initialize(
        session: &Session,
        settings: &EncoderSettings,
        preset: NvencPreset,
    ) -> Result<(), NvencError> {
        let library = &session.library;
        let tuning = sys::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY;
        let mut preset_config = sys::NV_ENC_PRESET_CONFIG {
            version: sys::NV_ENC_PRESET_CONFIG_VER,
            presetCfg: sys::NV_ENC_CONFIG {
                version: sys::NV_ENC_CONFIG_VER,
                ..Default::default()
            },
            ..Default::default()
        };
        // SAFETY: the session is live.
        unsafe {
            library.get_encode_preset_config_ex(
                session.encoder,
                sys::NV_ENC_CODEC_H264_GUID,
                preset.guid(),
                tuning,
                &mut preset_config,
            )
        }?;
        let mut config = preset_config.presetCfg;
        config.version = sys::NV_ENC_CONFIG_VER;
        apply_low_latency(&mut config, settings);
        let mut params = sys::NV_ENC_INITIALIZE_PARAMS {
            version: sys::NV_ENC_INITIALIZE_PARAMS_VER,
            encodeGUID: sys::NV_ENC_CODEC_H264_GUID,
            presetGUID: preset.guid(),
            encodeWidth: settings.width,
            encodeHeight: settings.height,
            darWidth: settings.width,
            darHeight: settings.height,
            frameRateNum: settings.fps,
            frameRateDen: 1,
            // Synchronous: asynchronous mode is Windows-only, and one picture in gives one
            // access unit out.
            enableEncodeAsync: 0,
            // The encoder decides picture types; we only force IDRs.
            enablePTD: 1,
            encodeConfig: &mut config,
            maxEncodeWidth: settings.width,
            maxEncodeHeight: settings.height,
            tuningInfo: tuning,
            ..Default::default()
        };
        // SAFETY: the session is live; `params.encodeConfig` points to `config`, alive for the
        // call.
        unsafe { library.initialize_encoder(session.encoder, &mut params) }
    }
}

/// The low-latency configuration on top of a preset's: H.264 Constrained Baseline, no B-frames,
/// one reference, the GOP from the settings, CBR with a one-frame VBV, SPS/PPS with every IDR.
fn apply_low_latency(config: &mut sys::NV_ENC_CONFIG, settings: &EncoderSettings) {
    let gop = match settings.keyframe_interval {
        0 => sys::NVENC_INFINITE_GOPLENGTH,
        n => n,
    };
    config.profileGUID = sys::NV_ENC_H264_PROFILE_BASELINE_GUID;
    config.gopLength = gop;
    config.frameIntervalP = 1;
    let rc = &mut config.rcParams;
    rc.rateControlMode = sys::NV_ENC_PARAMS_RC_CBR;
    rc.averageBitRate = settings.bitrate_bps;
    rc.maxBitRate = settings.bitrate_bps;
    // A VBV buffer of one frame's bits keeps every frame near its share, so no frame waits in
    // the network for a large one before it (NVIDIA's low-latency recipe).
    let frame_bits = (settings.bitrate_bps / settings.fps.max(1)).max(1);
    rc.vbvBufferSize = frame_bits;
    rc.vbvInitialDelay = frame_bits;
    rc.set_zeroReorderDelay(1);
    let h264 = &mut config.encodeCodecConfig;
    // SAFETY: the union holds plain integers and pointers, valid in any bit pattern, and the
    // preset filled its H.264 member (the codec GUID was H.264).
    let h264 = unsafe { &mut h264.h264Config };
    h264.idrPeriod = gop;
    h264.maxNumRefFrames = 1;
    h264.entropyCodingMode = sys::NV_ENC_H264_ENTROPY_CODING_MODE_CAVLC;
    h264.set_repeatSPSPPS(1);
}

impl VideoEncoder for NvencEncoder {
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
        if self.finished {
            return Err(EncodeError::Backend {
                encoder: NAME,
                message: "the stream was already finished by drain()".into(),
            });
        }
        let pitch = {
            let mut lock = self.input.lock()?;
            let pitch = lock.pitch;
            write_nv12(picture, lock.bytes_mut(), pitch, &mut self.i420);
            lock.unlock()?;
            pitch
        };
        let flags = if self.keyframe_requested {
            sys::NV_ENC_PIC_FLAG_FORCEIDR | sys::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS
        } else {
            0
        };
        let mut params = sys::NV_ENC_PIC_PARAMS {
            version: sys::NV_ENC_PIC_PARAMS_VER,
            inputWidth: w,
            inputHeight: h,
            // The pitch came from the driver as a u32, so this never saturates.
            inputPitch: u32::try_from(pitch).unwrap_or(u32::MAX),
            encodePicFlags: flags,
            inputTimeStamp: self.frames,
            inputBuffer: self.input.handle.as_ptr(),
            outputBitstream: self.bitstream.handle.as_ptr(),
            bufferFmt: sys::NV_ENC_BUFFER_FORMAT_NV12,
            pictureStruct: sys::NV_ENC_PIC_STRUCT_FRAME,
            ..Default::default()
        };
        // SAFETY: the session is live and initialised; both buffers are its own and the input
        // was unlocked above.
        let encoded = unsafe {
            self.session
                .library
                .encode_picture(self.session.encoder, &mut params)
        };
        self.frames += 1;
        match encoded {
            Ok(()) => self.keyframe_requested = false,
            // Not expected without B-frames; the picture's access unit comes with a later one.
            Err(error) if error.nvenc_status() == Some(NvencStatus::NEED_MORE_INPUT) => {
                self.keyframe_requested = false;
                return Ok(EncodedFrame {
                    len: 0,
                    keyframe: false,
                    encode_time: started.elapsed(),
                });
            }
            Err(error) => return Err(error.into()),
        }
        let lock = self.bitstream.lock()?;
        // On an error here the guard's drop unlocks the bitstream.
        append_within_capacity(out, lock.bytes())?;
        let keyframe = lock.picture_type == sys::NV_ENC_PIC_TYPE_IDR;
        lock.unlock()?;
        Ok(EncodedFrame {
            len: out.len(),
            keyframe,
            encode_time: started.elapsed(),
        })
    }

    /// Sends the end-of-stream picture. Nothing is held back (no B-frames, synchronous
    /// output), so there is never an access unit to return.
    fn drain(&mut self, out: &mut Vec<u8>) -> Result<Option<EncodedFrame>, EncodeError> {
        out.clear();
        if !self.finished {
            self.finished = true;
            let mut params = sys::NV_ENC_PIC_PARAMS {
                version: sys::NV_ENC_PIC_PARAMS_VER,
                encodePicFlags: sys::NV_ENC_PIC_FLAG_EOS,
                ..Default::default()
            };
            // SAFETY: the session is live; an end-of-stream picture carries no buffers.
            unsafe {
                self.session
                    .library
                    .encode_picture(self.session.encoder, &mut params)
            }?;
        }
        Ok(None)
    }
}

/// Copies `picture` into an NV12 buffer whose rows are `pitch` bytes apart (`height` luma rows,
/// then `height / 2` interleaved chroma rows). I420 chroma is interleaved on the way; YUYV goes
/// through `i420` first. Bytes past each row's width are left alone.
fn write_nv12(picture: &Picture<'_>, dst: &mut [u8], pitch: usize, i420: &mut [u8]) {
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    let (luma, chroma) = dst.split_at_mut(pitch * h);
    let planes = picture.planes();
    match picture.format() {
        PixelFormat::Nv12 => {
            copy_rows(planes[0], w, h, luma, pitch);
            copy_rows(planes[1], w, h / 2, chroma, pitch);
        }
        PixelFormat::I420 => {
            copy_rows(planes[0], w, h, luma, pitch);
            interleave_rows(planes[1], planes[2], w / 2, h / 2, chroma, pitch);
        }
        PixelFormat::Yuyv => {
            picture.write_i420(i420);
            let (y, uv) = i420.split_at(w * h);
            let (u, v) = uv.split_at(uv.len() / 2);
            let (cw, ch) = (w / 2, h / 2);
            let y = Plane { data: y, stride: w };
            let (u, v) = (
                Plane {
                    data: u,
                    stride: cw,
                },
                Plane {
                    data: v,
                    stride: cw,
                },
            );
            copy_rows(y, w, h, luma, pitch);
            interleave_rows(u, v, cw, ch, chroma, pitch);
        }
    }
}

fn copy_rows(src: Plane<'_>, row_len: usize, rows: usize, dst: &mut [u8], pitch: usize) {
    for (row, out) in dst.chunks_mut(pitch).take(rows).enumerate() {
        out[..row_len].copy_from_slice(&src.data[row * src.stride..][..row_len]);
    }
}

fn interleave_rows(
    u: Plane<'_>,
    v: Plane<'_>,
    chroma_width: usize,
    rows: usize,
    dst: &mut [u8],
    pitch: usize,
) {
    for (row, out) in dst.chunks_mut(pitch).take(rows).enumerate() {
        let u_row = &u.data[row * u.stride..][..chroma_width];
        let v_row = &v.data[row * v.stride..][..chroma_width];
        for ((pair, &u), &v) in out[..2 * chroma_width]
            .chunks_exact_mut(2)
            .zip(u_row)
            .zip(v_row)
        {
            pair[0] = u;
            pair[1] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    //! A fake NVENC: plain `extern "C"` Rust functions in the driver's place, filling the
    //! function list as `NvEncodeAPICreateInstance` does. They check every struct they receive
    //! against nvEncodeAPI.h (versions, sizes, handles, the H.264 configuration) and return a
    //! small canned Annex-B bitstream, so the encoder runs its real code path end to end.
    //!
    //! A check that fails is recorded, not panicked on (a panic cannot unwind out of an
    //! `extern "C"` function), and each test asserts that none was recorded. The fake's state is
    //! thread-local: every test runs on its own thread.

    use std::cell::RefCell;
    use std::ffi::{CStr, c_char, c_int, c_uint};
    use std::ptr;

    use super::*;
    use crate::capture::CaptureSource;
    use crate::capture::pattern::PatternSource;
    use flowcloud_core::h264::annexb;

    const ENCODER: *mut c_void = ptr::without_provenance_mut(0x5E55_0001);
    const INPUT: *mut c_void = ptr::without_provenance_mut(0x1_0001);
    const BITSTREAM: *mut c_void = ptr::without_provenance_mut(0xB175_0001);
    const CONTEXT: sys::CUcontext = ptr::without_provenance_mut(0xC0DA_0001);
    /// Pitch of the fake's input buffer, wider than the test pictures so the padding shows.
    const PITCH: usize = 128;
    const PADDING: u8 = 0xEE;
    /// SPS, PPS and an IDR slice.
    static IDR: [u8; 27] = [
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, //
        0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, //
        0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21,
    ];
    /// A P slice.
    static P: [u8; 8] = [0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x04];
    static LAST_ERROR: &CStr = c"fake NVENC: failure requested by the test";

    /// What `nvEncInitializeEncoder` received.
    #[derive(Clone, Copy, Debug)]
    struct Init {
        preset: u32,
        tuning: sys::NV_ENC_TUNING_INFO,
        width: u32,
        height: u32,
        gop_length: u32,
        idr_period: u32,
        frame_interval_p: i32,
        max_num_ref_frames: u32,
        repeat_sps_pps: u32,
        rate_control: sys::NV_ENC_PARAMS_RC_MODE,
        average_bitrate: u32,
        max_bitrate: u32,
        cavlc: bool,
    }

    /// What `nvEncEncodePicture` received for one picture.
    #[derive(Clone, Debug)]
    struct Encoded {
        flags: u32,
        timestamp: u64,
        /// The whole input buffer, padding included.
        buffer: Vec<u8>,
    }

    struct Fake {
        max_version: u32,
        fail: Option<(&'static str, sys::NVENCSTATUS)>,
        violations: Vec<String>,
        /// Calls that release something, in order.
        releases: Vec<&'static str>,
        context_alive: bool,
        session_alive: bool,
        init: Option<Init>,
        input: Vec<u8>,
        input_alive: bool,
        input_locked: bool,
        bitstream_alive: bool,
        bitstream_locked: bool,
        pending: Option<bool>,
        pictures: Vec<Encoded>,
        end_of_stream: usize,
        bitstream_locks: usize,
        bitstream_unlocks: usize,
    }

    impl Fake {
        fn new(max_version: u32) -> Self {
            Self {
                max_version,
                fail: None,
                violations: Vec::new(),
                releases: Vec::new(),
                context_alive: false,
                session_alive: false,
                init: None,
                input: Vec::new(),
                input_alive: false,
                input_locked: false,
                bitstream_alive: false,
                bitstream_locked: false,
                pending: None,
                pictures: Vec::new(),
                end_of_stream: 0,
                bitstream_locks: 0,
                bitstream_unlocks: 0,
            }
        }

        fn expect(&mut self, ok: bool, what: &str) -> bool {
            if !ok {
                self.violations.push(what.to_owned());
            }
            ok
        }

        /// The status for `call`: the failure a test asked for, or success.
        fn status(&self, call: &str) -> sys::NVENCSTATUS {
            match self.fail {
                Some((failing, status)) if failing == call => status,
                _ => sys::NV_ENC_SUCCESS,
            }
        }
    }

    thread_local! {
        static FAKE: RefCell<Fake> = RefCell::new(Fake::new(loader::API_VERSION));
    }

    fn with<R>(f: impl FnOnce(&mut Fake) -> R) -> R {
        FAKE.with(|fake| f(&mut fake.borrow_mut()))
    }

    fn reset(max_version: u32, fail: Option<(&'static str, sys::NVENCSTATUS)>) {
        with(|fake| {
            *fake = Fake::new(max_version);
            fake.fail = fail;
        });
    }

    fn same_guid(a: sys::GUID, b: sys::GUID) -> bool {
        (a.Data1, a.Data2, a.Data3, a.Data4) == (b.Data1, b.Data2, b.Data3, b.Data4)
    }

    // --- the entry points -------------------------------------------------------------------

    unsafe extern "C" fn max_supported_version(version: *mut u32) -> sys::NVENCSTATUS {
        with(|fake| {
            if fake.expect(!version.is_null(), "GetMaxSupportedVersion: null pointer") {
                // SAFETY: checked non-null; the caller passes a pointer to a u32.
                unsafe { *version = fake.max_version };
            }
        });
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn create_instance(
        list: *mut sys::NV_ENCODE_API_FUNCTION_LIST,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid function list or null.
        let Some(list) = (unsafe { list.as_mut() }) else {
            with(|fake| fake.expect(false, "CreateInstance: null list"));
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        let ok = with(|fake| {
            fake.expect(
                list.version == sys::NV_ENCODE_API_FUNCTION_LIST_VER,
                "CreateInstance: function list version",
            )
        });
        if !ok {
            return sys::NV_ENC_ERR_INVALID_VERSION;
        }
        list.nvEncOpenEncodeSessionEx = Some(open_session);
        list.nvEncGetEncodePresetConfigEx = Some(preset_config);
        list.nvEncInitializeEncoder = Some(initialize);
        list.nvEncCreateInputBuffer = Some(create_input);
        list.nvEncDestroyInputBuffer = Some(destroy_input);
        list.nvEncCreateBitstreamBuffer = Some(create_bitstream);
        list.nvEncDestroyBitstreamBuffer = Some(destroy_bitstream);
        list.nvEncLockInputBuffer = Some(lock_input);
        list.nvEncUnlockInputBuffer = Some(unlock_input);
        list.nvEncEncodePicture = Some(encode_picture);
        list.nvEncLockBitstream = Some(lock_bitstream);
        list.nvEncUnlockBitstream = Some(unlock_bitstream);
        list.nvEncDestroyEncoder = Some(destroy_encoder);
        list.nvEncGetLastErrorString = Some(last_error);
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn cu_init(flags: c_uint) -> sys::CUresult {
        with(|fake| fake.expect(flags == 0, "cuInit: flags must be 0"));
        sys::CUDA_SUCCESS
    }

    unsafe extern "C" fn cu_device_get(
        device: *mut sys::CUdevice,
        ordinal: c_int,
    ) -> sys::CUresult {
        with(|fake| {
            if fake.expect(!device.is_null(), "cuDeviceGet: null pointer") {
                // SAFETY: checked non-null; the caller passes a pointer to a CUdevice.
                unsafe { *device = ordinal };
            }
        });
        sys::CUDA_SUCCESS
    }

    unsafe extern "C" fn cu_ctx_create(
        context: *mut sys::CUcontext,
        _flags: c_uint,
        _device: sys::CUdevice,
    ) -> sys::CUresult {
        with(|fake| {
            if fake.expect(!context.is_null(), "cuCtxCreate: null pointer") {
                // SAFETY: checked non-null; the caller passes a pointer to a CUcontext.
                unsafe { *context = CONTEXT };
                fake.context_alive = true;
            }
        });
        sys::CUDA_SUCCESS
    }

    unsafe extern "C" fn cu_ctx_destroy(context: sys::CUcontext) -> sys::CUresult {
        with(|fake| {
            fake.expect(context == CONTEXT, "cuCtxDestroy: unknown context");
            fake.expect(!fake.session_alive, "cuCtxDestroy: session still open");
            fake.context_alive = false;
            fake.releases.push("cuCtxDestroy");
        });
        sys::CUDA_SUCCESS
    }

    // --- the function list ------------------------------------------------------------------

    unsafe extern "C" fn open_session(
        params: *mut sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS,
        encoder: *mut *mut c_void,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid parameter struct or null.
        let Some(params) = (unsafe { params.as_ref() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        with(|fake| {
            fake.expect(
                params.version == sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER,
                "OpenEncodeSessionEx: version",
            );
            fake.expect(
                params.deviceType == sys::NV_ENC_DEVICE_TYPE_CUDA,
                "OpenEncodeSessionEx: device type",
            );
            fake.expect(
                params.device == CONTEXT.cast() && fake.context_alive,
                "OpenEncodeSessionEx: device is not the live CUDA context",
            );
            fake.expect(
                params.apiVersion == sys::NVENCAPI_VERSION,
                "OpenEncodeSessionEx: API version",
            );
            if !fake.expect(!encoder.is_null(), "OpenEncodeSessionEx: null out pointer") {
                return sys::NV_ENC_ERR_INVALID_PTR;
            }
            // As the driver does, a failed open still hands out a session to destroy.
            // SAFETY: checked non-null; the caller passes a pointer to a handle.
            unsafe { *encoder = ENCODER };
            fake.session_alive = true;
            fake.status("nvEncOpenEncodeSessionEx")
        })
    }

    unsafe extern "C" fn preset_config(
        encoder: *mut c_void,
        codec: sys::GUID,
        preset: sys::GUID,
        tuning: sys::NV_ENC_TUNING_INFO,
        config: *mut sys::NV_ENC_PRESET_CONFIG,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid preset config or null.
        let Some(config) = (unsafe { config.as_mut() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        with(|fake| {
            fake.expect(encoder == ENCODER, "GetEncodePresetConfigEx: encoder");
            fake.expect(
                same_guid(codec, sys::NV_ENC_CODEC_H264_GUID),
                "GetEncodePresetConfigEx: codec is not H.264",
            );
            fake.expect(
                [
                    sys::NV_ENC_PRESET_P1_GUID,
                    sys::NV_ENC_PRESET_P2_GUID,
                    sys::NV_ENC_PRESET_P3_GUID,
                    sys::NV_ENC_PRESET_P4_GUID,
                ]
                .into_iter()
                .any(|p| same_guid(p, preset)),
                "GetEncodePresetConfigEx: preset is not P1-P4",
            );
            fake.expect(
                tuning == sys::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY,
                "GetEncodePresetConfigEx: tuning",
            );
            fake.expect(
                config.version == sys::NV_ENC_PRESET_CONFIG_VER,
                "GetEncodePresetConfigEx: preset config version",
            );
            fake.expect(
                config.presetCfg.version == sys::NV_ENC_CONFIG_VER,
                "GetEncodePresetConfigEx: config version",
            );
        });
        // A preset as a driver fills it, with what the encoder must override: B-frames, several
        // references, a 250-frame GOP, VBR.
        let cfg = &mut config.presetCfg;
        cfg.gopLength = 250;
        cfg.frameIntervalP = 3;
        cfg.rcParams.rateControlMode = sys::NV_ENC_PARAMS_RC_VBR;
        cfg.rcParams.averageBitRate = 5_000_000;
        // SAFETY: the union's H.264 member is plain data.
        let h264 = unsafe { &mut cfg.encodeCodecConfig.h264Config };
        h264.idrPeriod = 250;
        h264.maxNumRefFrames = 4;
        h264.entropyCodingMode = sys::NV_ENC_H264_ENTROPY_CODING_MODE_CABAC;
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn initialize(
        encoder: *mut c_void,
        params: *mut sys::NV_ENC_INITIALIZE_PARAMS,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid parameter struct or null.
        let Some(params) = (unsafe { params.as_ref() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        // SAFETY: a non-null encodeConfig points to a valid config for the call.
        let config = unsafe { params.encodeConfig.as_ref() };
        with(|fake| {
            fake.expect(encoder == ENCODER, "InitializeEncoder: encoder");
            fake.expect(
                params.version == sys::NV_ENC_INITIALIZE_PARAMS_VER,
                "InitializeEncoder: version",
            );
            fake.expect(
                same_guid(params.encodeGUID, sys::NV_ENC_CODEC_H264_GUID),
                "InitializeEncoder: codec",
            );
            fake.expect(params.enablePTD == 1, "InitializeEncoder: enablePTD");
            fake.expect(params.enableEncodeAsync == 0, "InitializeEncoder: async");
            fake.expect(
                params.frameRateNum > 0 && params.frameRateDen > 0,
                "InitializeEncoder: frame rate",
            );
            let Some(config) = config else {
                fake.expect(false, "InitializeEncoder: no encodeConfig");
                return sys::NV_ENC_ERR_INVALID_PTR;
            };
            fake.expect(
                config.version == sys::NV_ENC_CONFIG_VER,
                "InitializeEncoder: config version",
            );
            // SAFETY: the union's H.264 member is plain data.
            let h264 = unsafe { &config.encodeCodecConfig.h264Config };
            fake.init = Some(Init {
                preset: params.presetGUID.Data1,
                tuning: params.tuningInfo,
                width: params.encodeWidth,
                height: params.encodeHeight,
                gop_length: config.gopLength,
                idr_period: h264.idrPeriod,
                frame_interval_p: config.frameIntervalP,
                max_num_ref_frames: h264.maxNumRefFrames,
                repeat_sps_pps: h264.repeatSPSPPS(),
                rate_control: config.rcParams.rateControlMode,
                average_bitrate: config.rcParams.averageBitRate,
                max_bitrate: config.rcParams.maxBitRate,
                cavlc: h264.entropyCodingMode == sys::NV_ENC_H264_ENTROPY_CODING_MODE_CAVLC,
            });
            fake.status("nvEncInitializeEncoder")
        })
    }

    unsafe extern "C" fn create_input(
        encoder: *mut c_void,
        params: *mut sys::NV_ENC_CREATE_INPUT_BUFFER,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid parameter struct or null.
        let Some(params) = (unsafe { params.as_mut() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        with(|fake| {
            fake.expect(encoder == ENCODER, "CreateInputBuffer: encoder");
            fake.expect(
                fake.init.is_some(),
                "CreateInputBuffer: before initialising",
            );
            fake.expect(
                params.version == sys::NV_ENC_CREATE_INPUT_BUFFER_VER,
                "CreateInputBuffer: version",
            );
            fake.expect(
                params.bufferFmt == sys::NV_ENC_BUFFER_FORMAT_NV12,
                "CreateInputBuffer: format is not NV12",
            );
            let (w, h) = (params.width as usize, params.height as usize);
            fake.expect(
                w <= PITCH,
                "CreateInputBuffer: test pictures must fit the pitch",
            );
            fake.input = vec![PADDING; PITCH * (h + h / 2)];
            fake.input_alive = true;
            params.inputBuffer = INPUT;
            fake.status("nvEncCreateInputBuffer")
        })
    }

    unsafe extern "C" fn destroy_input(
        encoder: *mut c_void,
        buffer: *mut c_void,
    ) -> sys::NVENCSTATUS {
        with(|fake| {
            fake.expect(
                encoder == ENCODER && fake.session_alive,
                "DestroyInputBuffer: encoder",
            );
            fake.expect(
                buffer == INPUT && fake.input_alive,
                "DestroyInputBuffer: buffer",
            );
            fake.expect(!fake.input_locked, "DestroyInputBuffer: still locked");
            fake.input_alive = false;
            fake.releases.push("nvEncDestroyInputBuffer");
        });
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn create_bitstream(
        encoder: *mut c_void,
        params: *mut sys::NV_ENC_CREATE_BITSTREAM_BUFFER,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid parameter struct or null.
        let Some(params) = (unsafe { params.as_mut() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        with(|fake| {
            fake.expect(encoder == ENCODER, "CreateBitstreamBuffer: encoder");
            fake.expect(
                params.version == sys::NV_ENC_CREATE_BITSTREAM_BUFFER_VER,
                "CreateBitstreamBuffer: version",
            );
            let status = fake.status("nvEncCreateBitstreamBuffer");
            if status == sys::NV_ENC_SUCCESS {
                params.bitstreamBuffer = BITSTREAM;
                fake.bitstream_alive = true;
            }
            status
        })
    }

    unsafe extern "C" fn destroy_bitstream(
        encoder: *mut c_void,
        buffer: *mut c_void,
    ) -> sys::NVENCSTATUS {
        with(|fake| {
            fake.expect(
                encoder == ENCODER && fake.session_alive,
                "DestroyBitstreamBuffer: encoder",
            );
            fake.expect(
                buffer == BITSTREAM && fake.bitstream_alive,
                "DestroyBitstreamBuffer: buffer",
            );
            fake.expect(
                !fake.bitstream_locked,
                "DestroyBitstreamBuffer: still locked",
            );
            fake.bitstream_alive = false;
            fake.releases.push("nvEncDestroyBitstreamBuffer");
        });
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn lock_input(
        encoder: *mut c_void,
        params: *mut sys::NV_ENC_LOCK_INPUT_BUFFER,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid parameter struct or null.
        let Some(params) = (unsafe { params.as_mut() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        with(|fake| {
            fake.expect(encoder == ENCODER, "LockInputBuffer: encoder");
            fake.expect(
                params.version == sys::NV_ENC_LOCK_INPUT_BUFFER_VER,
                "LockInputBuffer: version",
            );
            fake.expect(
                params.inputBuffer == INPUT && fake.input_alive,
                "LockInputBuffer: buffer",
            );
            fake.expect(!fake.input_locked, "LockInputBuffer: already locked");
            fake.input_locked = true;
            params.bufferDataPtr = fake.input.as_mut_ptr().cast();
            params.pitch = PITCH as u32;
        });
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn unlock_input(
        encoder: *mut c_void,
        buffer: *mut c_void,
    ) -> sys::NVENCSTATUS {
        with(|fake| {
            fake.expect(encoder == ENCODER, "UnlockInputBuffer: encoder");
            fake.expect(buffer == INPUT, "UnlockInputBuffer: buffer");
            fake.expect(fake.input_locked, "UnlockInputBuffer: not locked");
            fake.input_locked = false;
        });
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn encode_picture(
        encoder: *mut c_void,
        params: *mut sys::NV_ENC_PIC_PARAMS,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid parameter struct or null.
        let Some(params) = (unsafe { params.as_ref() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        with(|fake| {
            fake.expect(encoder == ENCODER, "EncodePicture: encoder");
            fake.expect(
                params.version == sys::NV_ENC_PIC_PARAMS_VER,
                "EncodePicture: version",
            );
            if params.encodePicFlags & sys::NV_ENC_PIC_FLAG_EOS != 0 {
                fake.expect(
                    params.inputBuffer.is_null() && params.outputBitstream.is_null(),
                    "EncodePicture: end of stream carries buffers",
                );
                fake.end_of_stream += 1;
                return sys::NV_ENC_SUCCESS;
            }
            let status = fake.status("nvEncEncodePicture");
            if status != sys::NV_ENC_SUCCESS {
                return status;
            }
            let init = fake
                .init
                .unwrap_or_else(|| panic!("encoding before initialising"));
            fake.expect(params.inputBuffer == INPUT, "EncodePicture: input buffer");
            fake.expect(
                params.outputBitstream == BITSTREAM,
                "EncodePicture: bitstream buffer",
            );
            fake.expect(!fake.input_locked, "EncodePicture: input still locked");
            fake.expect(
                !fake.bitstream_locked,
                "EncodePicture: bitstream still locked",
            );
            fake.expect(params.inputPitch == PITCH as u32, "EncodePicture: pitch");
            fake.expect(
                params.inputWidth == init.width && params.inputHeight == init.height,
                "EncodePicture: size",
            );
            fake.expect(
                params.bufferFmt == sys::NV_ENC_BUFFER_FORMAT_NV12,
                "EncodePicture: format",
            );
            fake.expect(
                params.pictureStruct == sys::NV_ENC_PIC_STRUCT_FRAME,
                "EncodePicture: picture structure",
            );
            let forced = params.encodePicFlags & sys::NV_ENC_PIC_FLAG_FORCEIDR != 0;
            if forced {
                fake.expect(
                    params.encodePicFlags & sys::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS != 0,
                    "EncodePicture: forced IDR without OUTPUT_SPSPPS",
                );
            }
            let index = fake.pictures.len() as u64;
            let gop = u64::from(init.gop_length);
            let idr =
                forced || index == 0 || (gop != u64::from(u32::MAX) && index.is_multiple_of(gop));
            fake.pictures.push(Encoded {
                flags: params.encodePicFlags,
                timestamp: params.inputTimeStamp,
                buffer: fake.input.clone(),
            });
            fake.pending = Some(idr);
            sys::NV_ENC_SUCCESS
        })
    }

    unsafe extern "C" fn lock_bitstream(
        encoder: *mut c_void,
        params: *mut sys::NV_ENC_LOCK_BITSTREAM,
    ) -> sys::NVENCSTATUS {
        // SAFETY: the caller passes a valid parameter struct or null.
        let Some(params) = (unsafe { params.as_mut() }) else {
            return sys::NV_ENC_ERR_INVALID_PTR;
        };
        with(|fake| {
            fake.expect(encoder == ENCODER, "LockBitstream: encoder");
            fake.expect(
                params.version == sys::NV_ENC_LOCK_BITSTREAM_VER,
                "LockBitstream: version",
            );
            fake.expect(params.outputBitstream == BITSTREAM, "LockBitstream: buffer");
            fake.expect(!fake.bitstream_locked, "LockBitstream: already locked");
            let Some(idr) = fake.pending.take() else {
                fake.expect(false, "LockBitstream: nothing encoded");
                return sys::NV_ENC_ERR_INVALID_CALL;
            };
            let data: &'static [u8] = if idr { &IDR } else { &P };
            params.bitstreamBufferPtr = data.as_ptr().cast_mut().cast();
            params.bitstreamSizeInBytes = data.len() as u32;
            params.pictureType = if idr {
                sys::NV_ENC_PIC_TYPE_IDR
            } else {
                sys::NV_ENC_PIC_TYPE_P
            };
            fake.bitstream_locked = true;
            fake.bitstream_locks += 1;
            sys::NV_ENC_SUCCESS
        })
    }

    unsafe extern "C" fn unlock_bitstream(
        encoder: *mut c_void,
        buffer: *mut c_void,
    ) -> sys::NVENCSTATUS {
        with(|fake| {
            fake.expect(encoder == ENCODER, "UnlockBitstream: encoder");
            fake.expect(buffer == BITSTREAM, "UnlockBitstream: buffer");
            fake.expect(fake.bitstream_locked, "UnlockBitstream: not locked");
            fake.bitstream_locked = false;
            fake.bitstream_unlocks += 1;
        });
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn destroy_encoder(encoder: *mut c_void) -> sys::NVENCSTATUS {
        with(|fake| {
            fake.expect(
                encoder == ENCODER && fake.session_alive,
                "DestroyEncoder: encoder",
            );
            fake.expect(
                !fake.input_alive && !fake.bitstream_alive,
                "DestroyEncoder: buffers still alive",
            );
            fake.session_alive = false;
            fake.releases.push("nvEncDestroyEncoder");
        });
        sys::NV_ENC_SUCCESS
    }

    unsafe extern "C" fn last_error(encoder: *mut c_void) -> *const c_char {
        with(|fake| fake.expect(encoder == ENCODER, "GetLastErrorString: encoder"));
        LAST_ERROR.as_ptr()
    }

    // --- tests ------------------------------------------------------------------------------

    const NVENC: NvencEntryPoints = NvencEntryPoints {
        get_max_supported_version: max_supported_version,
        create_instance,
    };
    const CUDA: CudaEntryPoints = CudaEntryPoints {
        init: cu_init,
        device_get: cu_device_get,
        ctx_create: cu_ctx_create,
        ctx_destroy: cu_ctx_destroy,
    };

    fn fake_library() -> Result<NvencLibrary, EncodeError> {
        // SAFETY: the fake implements every call the encoder makes as nvEncodeAPI.h documents
        // it, and its functions are plain functions of this program.
        unsafe { NvencLibrary::from_entry_points(NVENC, CUDA) }
    }

    fn fake_encoder(settings: EncoderSettings, options: NvencOptions) -> NvencEncoder {
        NvencEncoder::with_library(fake_library().unwrap(), settings, options).unwrap()
    }

    fn assert_no_violations() {
        let violations = with(|fake| fake.violations.clone());
        assert!(violations.is_empty(), "the fake NVENC saw: {violations:#?}");
    }

    fn nal_types(au: &[u8]) -> Vec<u8> {
        let mut scan = annexb::nal_units(au).unwrap();
        let mut types = Vec::new();
        while let Some(range) = scan.next_range() {
            types.push(au[range.start] & 0x1f);
        }
        types
    }

    /// The NV12 buffer NVENC should see for a tightly packed I420 picture: pitched rows,
    /// interleaved chroma, padding untouched.
    fn expected_nv12(i420: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut out = vec![PADDING; PITCH * (h + h / 2)];
        let (y, uv) = i420.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        for row in 0..h {
            out[row * PITCH..][..w].copy_from_slice(&y[row * w..][..w]);
        }
        for row in 0..h / 2 {
            for col in 0..w / 2 {
                out[(h + row) * PITCH + 2 * col] = u[row * w / 2 + col];
                out[(h + row) * PITCH + 2 * col + 1] = v[row * w / 2 + col];
            }
        }
        out
    }

    fn settings(keyframe_interval: u32) -> EncoderSettings {
        let mut settings = EncoderSettings::new(64, 48, 30);
        settings.keyframe_interval = keyframe_interval;
        settings
    }

    #[test]
    fn without_the_driver_new_reports_which_library_is_missing() {
        // SAFETY: probing only; the NVIDIA library has no initialisation requirements.
        if unsafe { libloading::Library::new(loader::NVENC_LIBRARY) }.is_ok() {
            // A machine with the driver: `new` goes on to the GPU, which other tests cannot
            // predict.
            return;
        }
        let error = NvencEncoder::new(settings(0)).unwrap_err();
        let EncodeError::NotAvailable { encoder, reason } = &error else {
            panic!("expected NotAvailable, got {error:?}");
        };
        assert_eq!(*encoder, "NVENC");
        assert!(reason.contains("libnvidia-encode.so.1"), "{reason}");
        assert!(reason.contains("NVIDIA driver"), "{reason}");
        assert!(
            error.to_string().starts_with("NVENC not available: "),
            "{error}"
        );
    }

    #[test]
    fn encodes_i420_through_the_documented_api() {
        reset(loader::API_VERSION, None);
        let (w, h) = (64usize, 48usize);
        let mut encoder = fake_encoder(settings(0), NvencOptions::default());
        let init = with(|fake| fake.init).unwrap();
        assert_eq!(init.frame_interval_p, 1, "no B-frames");
        assert_eq!(init.max_num_ref_frames, 1);
        assert_eq!(
            init.gop_length,
            sys::NVENC_INFINITE_GOPLENGTH,
            "IDR only on request"
        );
        assert_eq!(init.idr_period, init.gop_length);
        assert_eq!(init.repeat_sps_pps, 1);
        assert_eq!(init.rate_control, sys::NV_ENC_PARAMS_RC_CBR);
        let bitrate = encoder.settings().bitrate_bps;
        assert_eq!((init.average_bitrate, init.max_bitrate), (bitrate, bitrate));
        assert!(init.cavlc, "Constrained Baseline entropy coding");
        assert_eq!(init.tuning, sys::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY);
        assert_eq!(init.preset, sys::NV_ENC_PRESET_P3_GUID.Data1);
        assert_eq!((init.width, init.height), (64, 48));

        let mut source = PatternSource::new(w, h, 30).unwrap().unpaced();
        let mut out = Vec::with_capacity(4096);
        let mut keyframes = Vec::new();
        for n in 0..6 {
            if n == 3 {
                encoder.request_keyframe();
            }
            let frame = source.next_frame().unwrap();
            let i420 = {
                let mut packed = vec![0; PixelFormat::I420.frame_len(w, h)];
                frame.picture.write_i420(&mut packed);
                packed
            };
            let encoded = encoder.encode(&frame, &mut out).unwrap();
            assert_eq!(encoded.len, out.len());
            let types = nal_types(&out);
            if encoded.keyframe {
                assert_eq!(out, IDR);
                assert_eq!(types, [7, 8, 5], "SPS and PPS lead the IDR");
                keyframes.push(n);
            } else {
                assert_eq!(out, P);
                assert_eq!(types, [1]);
            }
            let picture = with(|fake| fake.pictures[n].clone());
            assert_eq!(picture.timestamp, n as u64);
            assert_eq!(picture.buffer, expected_nv12(&i420, w, h), "frame {n}");
        }
        assert_eq!(keyframes, [0, 3]);
        let flags: Vec<u32> = with(|fake| fake.pictures.iter().map(|p| p.flags).collect());
        let forced = sys::NV_ENC_PIC_FLAG_FORCEIDR | sys::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS;
        assert_eq!(flags, [0, 0, 0, forced, 0, 0]);
        assert_eq!(
            with(|fake| (fake.bitstream_locks, fake.bitstream_unlocks)),
            (6, 6)
        );
        assert_no_violations();
    }

    #[test]
    fn gop_length_and_preset_come_from_settings_and_options() {
        reset(loader::API_VERSION, None);
        let options = NvencOptions {
            preset: NvencPreset::P1,
            cuda_device: 0,
        };
        let mut encoder = fake_encoder(settings(4), options);
        let init = with(|fake| fake.init).unwrap();
        assert_eq!((init.gop_length, init.idr_period), (4, 4));
        assert_eq!(init.preset, sys::NV_ENC_PRESET_P1_GUID.Data1);
        let mut source = PatternSource::new(64, 48, 30).unwrap().unpaced();
        let mut out = Vec::with_capacity(4096);
        let keyframes: Vec<bool> = (0..9)
            .map(|_| {
                let frame = source.next_frame().unwrap();
                encoder.encode(&frame, &mut out).unwrap().keyframe
            })
            .collect();
        assert_eq!(
            keyframes,
            [true, false, false, false, true, false, false, false, true]
        );
        assert_no_violations();
    }

    #[test]
    fn nv12_and_yuyv_pictures_are_written_into_the_pitched_buffer() {
        reset(loader::API_VERSION, None);
        let (w, h) = (64usize, 48usize);
        let mut encoder = fake_encoder(settings(0), NvencOptions::default());
        let i420: Vec<u8> = (0..PixelFormat::I420.frame_len(w, h))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let (y, uv) = i420.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        let mut nv12 = y.to_vec();
        for (&u, &v) in u.iter().zip(v) {
            nv12.extend_from_slice(&[u, v]);
        }
        // YUYV with the same chroma on both rows of a pair, so 4:2:2 → 4:2:0 is exact.
        let mut yuyv = Vec::new();
        for row in 0..h {
            for pair in 0..w / 2 {
                let c = (row / 2) * w / 2 + pair;
                yuyv.extend_from_slice(&[
                    y[row * w + 2 * pair],
                    u[c],
                    y[row * w + 2 * pair + 1],
                    v[c],
                ]);
            }
        }
        let mut out = Vec::with_capacity(4096);
        for (format, data) in [(PixelFormat::Nv12, &nv12), (PixelFormat::Yuyv, &yuyv)] {
            let picture = Picture::packed(format, w as u32, h as u32, data).unwrap();
            let frame = CapturedFrame::new(picture, Instant::now(), 0);
            encoder.encode(&frame, &mut out).unwrap();
            let seen = with(|fake| fake.pictures.last().unwrap().buffer.clone());
            assert_eq!(seen, expected_nv12(&i420, w, h), "{format}");
        }
        assert_no_violations();
    }

    #[test]
    fn a_full_output_buffer_is_an_error_and_the_bitstream_is_unlocked() {
        reset(loader::API_VERSION, None);
        let mut encoder = fake_encoder(settings(0), NvencOptions::default());
        let mut source = PatternSource::new(64, 48, 30).unwrap().unpaced();
        let mut out = Vec::with_capacity(8);
        let frame = source.next_frame().unwrap();
        assert!(matches!(
            encoder.encode(&frame, &mut out),
            Err(EncodeError::OutputTooSmall { capacity: 8, .. })
        ));
        assert_eq!(out.capacity(), 8);
        assert_eq!(
            with(|fake| (fake.bitstream_locks, fake.bitstream_unlocks)),
            (1, 1)
        );
        assert!(!with(|fake| fake.bitstream_locked));
        assert_no_violations();
    }

    #[test]
    fn a_failed_call_names_the_status_and_the_drivers_message() {
        reset(
            loader::API_VERSION,
            Some(("nvEncEncodePicture", sys::NV_ENC_ERR_INVALID_PARAM)),
        );
        let mut encoder = fake_encoder(settings(0), NvencOptions::default());
        let mut source = PatternSource::new(64, 48, 30).unwrap().unpaced();
        let mut out = Vec::with_capacity(4096);
        encoder.request_keyframe();
        let frame = source.next_frame().unwrap();
        let error = encoder.encode(&frame, &mut out).unwrap_err();
        let EncodeError::Backend {
            encoder: name,
            message,
        } = &error
        else {
            panic!("expected a backend error, got {error:?}");
        };
        assert_eq!(*name, "NVENC");
        assert!(message.contains("nvEncEncodePicture"), "{message}");
        assert!(
            message.contains("NV_ENC_ERR_INVALID_PARAM (8)"),
            "{message}"
        );
        assert!(message.contains(LAST_ERROR.to_str().unwrap()), "{message}");
        // The request is kept for the next picture that does get encoded.
        with(|fake| fake.fail = None);
        encoder.encode(&frame, &mut out).unwrap();
        let flags = with(|fake| fake.pictures.last().unwrap().flags);
        assert_ne!(flags & sys::NV_ENC_PIC_FLAG_FORCEIDR, 0);
        assert!(!with(|fake| fake.input_locked));
        assert_no_violations();
    }

    #[test]
    fn drop_releases_buffers_then_the_session_then_the_context() {
        reset(loader::API_VERSION, None);
        drop(fake_encoder(settings(0), NvencOptions::default()));
        assert_eq!(
            with(|fake| fake.releases.clone()),
            [
                "nvEncDestroyInputBuffer",
                "nvEncDestroyBitstreamBuffer",
                "nvEncDestroyEncoder",
                "cuCtxDestroy"
            ]
        );
        assert_no_violations();
    }

    #[test]
    fn a_failure_while_setting_up_releases_what_was_made() {
        reset(
            loader::API_VERSION,
            Some(("nvEncCreateBitstreamBuffer", sys::NV_ENC_ERR_OUT_OF_MEMORY)),
        );
        let error = NvencEncoder::with_library(
            fake_library().unwrap(),
            settings(0),
            NvencOptions::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("NV_ENC_ERR_OUT_OF_MEMORY"),
            "{error}"
        );
        assert_eq!(
            with(|fake| fake.releases.clone()),
            [
                "nvEncDestroyInputBuffer",
                "nvEncDestroyEncoder",
                "cuCtxDestroy"
            ]
        );

        // A session the driver hands back with a failed open is destroyed too.
        reset(
            loader::API_VERSION,
            Some(("nvEncOpenEncodeSessionEx", sys::NV_ENC_ERR_NO_ENCODE_DEVICE)),
        );
        let error = NvencEncoder::with_library(
            fake_library().unwrap(),
            settings(0),
            NvencOptions::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("NV_ENC_ERR_NO_ENCODE_DEVICE"),
            "{error}"
        );
        assert_eq!(
            with(|fake| fake.releases.clone()),
            ["nvEncDestroyEncoder", "cuCtxDestroy"]
        );
        assert_no_violations();
    }

    #[test]
    fn a_driver_older_than_the_header_is_not_available() {
        reset(0x90, None);
        let error = fake_library().unwrap_err();
        let EncodeError::NotAvailable { reason, .. } = &error else {
            panic!("expected NotAvailable, got {error:?}");
        };
        assert!(
            reason.contains("up to 9.0") && reason.contains("needs 11.1"),
            "{reason}"
        );
        assert_no_violations();
    }

    #[test]
    fn drain_sends_end_of_stream_once() {
        reset(loader::API_VERSION, None);
        let mut encoder = fake_encoder(settings(0), NvencOptions::default());
        let mut source = PatternSource::new(64, 48, 30).unwrap().unpaced();
        let mut out = Vec::with_capacity(4096);
        let frame = source.next_frame().unwrap();
        encoder.encode(&frame, &mut out).unwrap();
        assert!(encoder.drain(&mut out).unwrap().is_none());
        assert!(out.is_empty());
        assert!(encoder.drain(&mut out).unwrap().is_none());
        assert_eq!(with(|fake| fake.end_of_stream), 1);
        let frame = source.next_frame().unwrap();
        assert!(matches!(
            encoder.encode(&frame, &mut out),
            Err(EncodeError::Backend { .. })
        ));
        assert_no_violations();
    }

    #[test]
    fn pictures_of_another_size_and_bad_settings_are_rejected() {
        reset(loader::API_VERSION, None);
        let mut encoder = fake_encoder(settings(0), NvencOptions::default());
        let mut source = PatternSource::new(96, 48, 30).unwrap().unpaced();
        let mut out = Vec::with_capacity(4096);
        let frame = source.next_frame().unwrap();
        assert!(matches!(
            encoder.encode(&frame, &mut out),
            Err(EncodeError::PictureMismatch { width: 96, .. })
        ));
        assert!(with(|fake| fake.pictures.is_empty()));
        for (w, h, fps) in [(63, 48, 30), (64, 48, 0), (8192, 48, 30)] {
            let settings = EncoderSettings::new(w, h, fps);
            assert!(matches!(
                NvencEncoder::with_library(
                    fake_library().unwrap(),
                    settings,
                    NvencOptions::default()
                ),
                Err(EncodeError::InvalidSettings(_))
            ));
        }
        assert_no_violations();
    }
}
