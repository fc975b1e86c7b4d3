//! libargus capture: a Jetson CSI camera through NVIDIA's Argus API, as NV12 frames in DMABUFs
//! that a hardware encoder can import without a copy ([`CapturedFrame::dmabuf`]).
//!
//! Argus is C++, so the SDK talks to a small shim with a C ABI (`argus/fc_argus.h`), in three
//! levels as elsewhere: the `ffi` module mirrors the header; [`ArgusSource`] is the safe type,
//! which owns the session (closed on drop) and lends one buffer per frame, given back at the
//! next [`CaptureSource::next_frame`] or on drop.
//!
//! Two builds of the shim: the `argus` feature compiles `argus/fc_argus_shim.cpp` against the
//! L4T Multimedia API (aarch64, `FLOWCLOUD_L4T_ROOT`, see `cross/README.md`); `argus-fake`
//! compiles `argus/fc_argus_fake.c`, which keeps the same contract with memfd buffers and a
//! generated pattern, so the frame flow, the errors and the teardown are tested anywhere. Only
//! the fake has run: the real shim has not been compiled or run here (no L4T headers, no
//! Jetson), and a memfd is not a DMABUF, so zero-copy import of Argus frames into NVIDIA's
//! encoder is untested. A frame is one DMABUF for both planes ([`FrameDmabuf::shared`]), which
//! the encoder passes in both planes of its `NV12M` input
//! ([`M2mOptions::planes_from_one_dmabuf`](crate::encode::v4l2_m2m::M2mOptions::planes_from_one_dmabuf),
//! unit-tested); DMABUF import itself is tested with vivid's DMABUFs in `just v4l2-vm`.

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::{CaptureError, CaptureSource, CapturedFrame, FrameDmabuf};
use crate::picture::{Picture, PixelFormat, Plane, VideoFormat};

/// The shim's C ABI (`argus/fc_argus.h`).
mod ffi {
    use core::ffi::{c_char, c_int};

    pub(super) const ABI_VERSION: u32 = 1;
    pub(super) const MAX_BUFFERS: u32 = 16;

    pub(super) const OK: c_int = 0;
    pub(super) const TIMEOUT: c_int = 1;
    pub(super) const NO_CAMERA: c_int = 2;
    pub(super) const INVALID: c_int = 3;
    pub(super) const BUSY: c_int = 4;
    pub(super) const FAILED: c_int = 5;

    /// `fc_argus_config`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Config {
        pub(super) abi_version: u32,
        pub(super) sensor_id: u32,
        pub(super) sensor_mode: u32,
        pub(super) width: u32,
        pub(super) height: u32,
        pub(super) fps: u32,
        pub(super) buffers: u32,
    }

    /// `fc_argus_frame`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Frame {
        pub(super) dmabuf_fd: i32,
        pub(super) index: u32,
        pub(super) width: u32,
        pub(super) height: u32,
        pub(super) pitch: [u32; 2],
        pub(super) offset: [u32; 2],
        pub(super) size: u64,
        pub(super) plane: [*const u8; 2],
        pub(super) sequence: u64,
        pub(super) timestamp_ns: u64,
    }

    impl Frame {
        pub(super) const EMPTY: Self = Self {
            dmabuf_fd: -1,
            index: 0,
            width: 0,
            height: 0,
            pitch: [0; 2],
            offset: [0; 2],
            size: 0,
            plane: [core::ptr::null(); 2],
            sequence: 0,
            timestamp_ns: 0,
        };
    }

    /// `fc_argus_session` (opaque).
    #[repr(C)]
    pub(super) struct Session {
        _private: [u8; 0],
    }

    // Layouts as the header's on LP64 (aarch64, x86_64).
    const _: () = assert!(size_of::<Config>() == 28);
    const _: () = assert!(size_of::<Frame>() == 72);

    unsafe extern "C" {
        pub(super) fn fc_argus_open(
            config: *const Config,
            out: *mut *mut Session,
            error: *mut c_char,
            error_len: usize,
        ) -> c_int;
        pub(super) fn fc_argus_acquire(
            session: *mut Session,
            timeout_ms: u32,
            out: *mut Frame,
        ) -> c_int;
        pub(super) fn fc_argus_release(session: *mut Session, index: u32) -> c_int;
        pub(super) fn fc_argus_error(session: *const Session) -> *const c_char;
        pub(super) fn fc_argus_close(session: *mut Session);
        #[cfg(feature = "argus-fake")]
        pub(super) fn fc_argus_fake_fail_after(session: *mut Session, frames: u32);
        #[cfg(feature = "argus-fake")]
        pub(super) fn fc_argus_fake_lent(session: *const Session) -> u32;
        #[cfg(feature = "argus-fake")]
        pub(super) fn fc_argus_fake_open_sessions() -> u32;
    }
}

/// What to ask of the camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgusConfig {
    /// Which camera (Argus's device index).
    pub sensor_id: u32,
    /// Which of the sensor's modes.
    pub sensor_mode: u32,
    /// Output width (even).
    pub width: u32,
    /// Output height (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// NV12 DMABUFs in the ring (2 to 16): one is lent to the caller, the others are filled.
    pub buffers: u32,
    /// How long [`CaptureSource::next_frame`] waits for a frame.
    pub timeout: Duration,
}

impl ArgusConfig {
    /// Sensor 0, mode 0, `width × height` at `fps`, four buffers, a 2 s frame timeout.
    #[must_use]
    pub const fn new(width: u32, height: u32, fps: u32) -> Self {
        Self {
            sensor_id: 0,
            sensor_mode: 0,
            width,
            height,
            fps,
            buffers: 4,
            timeout: Duration::from_secs(2),
        }
    }
}

/// A libargus camera producing NV12 frames in DMABUFs.
#[derive(Debug)]
pub struct ArgusSource {
    session: NonNull<ffi::Session>,
    config: ArgusConfig,
    /// The buffer lent out with the last frame, given back at the next call.
    held: Option<u32>,
}

// SAFETY: the session is only used through `&mut self` (or `&self` for reading its error text
// in the same call), so from one thread at a time; neither the shim nor Argus ties a session to
// the thread that created it.
unsafe impl Send for ArgusSource {}

fn status_name(status: core::ffi::c_int) -> &'static str {
    match status {
        ffi::TIMEOUT => "FC_ARGUS_TIMEOUT",
        ffi::NO_CAMERA => "FC_ARGUS_NO_CAMERA",
        ffi::INVALID => "FC_ARGUS_INVALID",
        ffi::BUSY => "FC_ARGUS_BUSY",
        ffi::FAILED => "FC_ARGUS_FAILED",
        _ => "unknown status",
    }
}

impl ArgusSource {
    /// Starts capture from the camera `config` names.
    pub fn open(config: &ArgusConfig) -> Result<Self, CaptureError> {
        if config.width == 0
            || config.height == 0
            || !config.width.is_multiple_of(2)
            || !config.height.is_multiple_of(2)
            || config.fps == 0
            || !(2..=ffi::MAX_BUFFERS).contains(&config.buffers)
        {
            return Err(CaptureError::UnsupportedFormat(format!(
                "Argus capture of {}x{} at {} fps into {} buffers: sizes must be even and non-zero, the rate non-zero, buffers 2 to {}",
                config.width,
                config.height,
                config.fps,
                config.buffers,
                ffi::MAX_BUFFERS
            )));
        }
        let raw = ffi::Config {
            abi_version: ffi::ABI_VERSION,
            sensor_id: config.sensor_id,
            sensor_mode: config.sensor_mode,
            width: config.width,
            height: config.height,
            fps: config.fps,
            buffers: config.buffers,
        };
        let mut session = core::ptr::null_mut();
        let mut error = [0u8; 256];
        // SAFETY: `raw` is a valid config; `session` is a writable pointer; `error` is a
        // writable buffer of the length given, which the shim NUL-terminates.
        let status = unsafe {
            ffi::fc_argus_open(&raw, &mut session, error.as_mut_ptr().cast(), error.len())
        };
        let text = core::ffi::CStr::from_bytes_until_nul(&error).map_or_else(
            |_| String::from_utf8_lossy(&error).into_owned(),
            |c| c.to_string_lossy().into_owned(),
        );
        match (status, NonNull::new(session)) {
            (ffi::OK, Some(session)) => Ok(Self {
                session,
                config: *config,
                held: None,
            }),
            (ffi::OK, None) => Err(CaptureError::Camera(
                "fc_argus_open returned OK without a session".into(),
            )),
            (ffi::INVALID, _) => Err(CaptureError::UnsupportedFormat(format!(
                "Argus camera {}: {text}",
                config.sensor_id
            ))),
            (status, _) => Err(CaptureError::Camera(format!(
                "Argus camera {} ({}): {text}",
                config.sensor_id,
                status_name(status)
            ))),
        }
    }

    /// The shim's text for the last failure.
    fn last_error(&self) -> String {
        // SAFETY: the session is open; the shim returns a NUL-terminated string that lives until
        // the next call on the session, and it is copied out at once.
        let text = unsafe { core::ffi::CStr::from_ptr(ffi::fc_argus_error(self.session.as_ptr())) };
        text.to_string_lossy().into_owned()
    }

    fn release_held(&mut self) -> Result<(), CaptureError> {
        if let Some(index) = self.held.take() {
            // SAFETY: the session is open and `index` was lent by it and not given back yet.
            let status = unsafe { ffi::fc_argus_release(self.session.as_ptr(), index) };
            if status != ffi::OK {
                return Err(CaptureError::Camera(format!(
                    "fc_argus_release({index}) ({}): {}",
                    status_name(status),
                    self.last_error()
                )));
            }
        }
        Ok(())
    }

    /// Makes the fake shim fail every acquire after `frames` more frames (tests of the error
    /// path).
    #[cfg(feature = "argus-fake")]
    pub fn fake_fail_after(&mut self, frames: u32) {
        // SAFETY: the session is open.
        unsafe { ffi::fc_argus_fake_fail_after(self.session.as_ptr(), frames) }
    }

    /// Buffers the fake shim has lent out right now.
    #[cfg(feature = "argus-fake")]
    #[must_use]
    pub fn fake_lent(&self) -> u32 {
        // SAFETY: the session is open.
        unsafe { ffi::fc_argus_fake_lent(self.session.as_ptr()) }
    }

    /// Sessions of the fake shim open in this process.
    #[cfg(feature = "argus-fake")]
    #[must_use]
    pub fn fake_open_sessions() -> u32 {
        // SAFETY: no arguments; reads a counter.
        unsafe { ffi::fc_argus_fake_open_sessions() }
    }
}

/// Checks the shim's frame against the session's size and builds the picture's two planes.
///
/// # Safety
///
/// `frame.plane[p]` must point at memory readable for `frame.size - frame.offset[p]` bytes for
/// the lifetime `'a`.
unsafe fn planes<'a>(frame: &ffi::Frame, config: &ArgusConfig) -> Result<[Plane<'a>; 2], String> {
    if (frame.width, frame.height) != (config.width, config.height) {
        return Err(format!(
            "the shim delivered {}x{}, {}x{} was asked for",
            frame.width, frame.height, config.width, config.height
        ));
    }
    let rows = [frame.height as usize, frame.height as usize / 2];
    let mut out = [Plane {
        data: &[],
        stride: 0,
    }; 2];
    for (p, plane) in out.iter_mut().enumerate() {
        let pitch = frame.pitch[p] as usize;
        let len = (rows[p] - 1) * pitch + frame.width as usize;
        let end = u64::from(frame.offset[p]) + len as u64;
        if pitch < frame.width as usize || end > frame.size || frame.plane[p].is_null() {
            return Err(format!(
                "plane {p} (pitch {pitch}, offset {}) does not fit the {}-byte buffer",
                frame.offset[p], frame.size
            ));
        }
        // SAFETY: non-null, and within the mapped buffer as just checked; readable for 'a by
        // the caller's contract.
        let data = unsafe { std::slice::from_raw_parts(frame.plane[p], len) };
        *plane = Plane {
            data,
            stride: pitch,
        };
    }
    Ok(out)
}

/// A `CLOCK_MONOTONIC` time in nanoseconds as an `Instant` (its age subtracted from now).
fn monotonic_ns_to_instant(timestamp_ns: u64) -> Instant {
    let now = Instant::now();
    let mut mono = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through a valid, exclusive pointer.
    if unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut mono) } != 0 {
        return now;
    }
    let now_ns = i128::from(mono.tv_sec) * 1_000_000_000 + i128::from(mono.tv_nsec);
    match u64::try_from(now_ns - i128::from(timestamp_ns)) {
        Ok(age) if age <= 60_000_000_000 => {
            now.checked_sub(Duration::from_nanos(age)).unwrap_or(now)
        }
        _ => now,
    }
}

impl CaptureSource for ArgusSource {
    fn format(&self) -> VideoFormat {
        VideoFormat {
            width: self.config.width,
            height: self.config.height,
            pixel_format: PixelFormat::Nv12,
            frame_rate: (self.config.fps, 1),
        }
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, CaptureError> {
        self.release_held()?;
        let timeout_ms = u32::try_from(self.config.timeout.as_millis()).unwrap_or(u32::MAX);
        let mut frame = ffi::Frame::EMPTY;
        // SAFETY: the session is open; `frame` is a writable `fc_argus_frame`.
        let status =
            unsafe { ffi::fc_argus_acquire(self.session.as_ptr(), timeout_ms, &mut frame) };
        if status != ffi::OK {
            return Err(CaptureError::Camera(format!(
                "Argus camera {} ({}): {}",
                self.config.sensor_id,
                status_name(status),
                self.last_error()
            )));
        }
        // Lent from here on: given back at the next call or on drop, whatever happens below.
        self.held = Some(frame.index);
        // SAFETY: the shim keeps a lent buffer mapped until it is released, which needs `&mut
        // self`; the planes borrow `self` through the returned frame, so they cannot outlive it.
        let planes = unsafe { planes(&frame, &self.config) }.map_err(CaptureError::Camera)?;
        let picture = Picture::new(
            PixelFormat::Nv12,
            self.config.width,
            self.config.height,
            &planes,
        )?;
        let mut captured = CapturedFrame::new(
            picture,
            monotonic_ns_to_instant(frame.timestamp_ns),
            frame.sequence,
        );
        if frame.dmabuf_fd >= 0 {
            // SAFETY: the fd belongs to the session and stays open while the buffer is lent,
            // that is for as long as the returned frame borrows `self` (see above).
            let fd = unsafe { BorrowedFd::borrow_raw(frame.dmabuf_fd) };
            // One NvBufSurface holds both planes, at the offsets the shim read from it.
            let offsets = frame.offset.map(|offset| offset as usize);
            captured.dmabuf = Some(FrameDmabuf::shared(fd, &offsets));
        }
        Ok(captured)
    }
}

impl Drop for ArgusSource {
    fn drop(&mut self) {
        // Errors here have nowhere to go; the close below takes every buffer back anyway.
        let _ = self.release_held();
        // SAFETY: the session is open and is not used after this.
        unsafe { ffi::fc_argus_close(self.session.as_ptr()) }
    }
}

#[cfg(all(test, feature = "argus-fake"))]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    use std::sync::Mutex;

    use super::*;

    /// One test at a time: the teardown test counts the fake's open sessions.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[test]
    fn frames_flow_with_their_dmabuf_sequence_and_layout() {
        let _serial = serial();
        let config = ArgusConfig::new(320, 240, 120);
        let mut source = ArgusSource::open(&config).unwrap();
        assert_eq!(source.format().pixel_format, PixelFormat::Nv12);
        let mut fds = Vec::new();
        for n in 0..6u64 {
            let frame = source.next_frame().unwrap();
            assert_eq!(frame.sequence, n);
            let planes = frame.picture.planes();
            // The fake paints the frame number into the first luma byte.
            assert_eq!(planes[0].data[0], n as u8);
            // Pitch-linear with 256-byte rows, as NvBufSurface lays NV12 out.
            assert_eq!((planes[0].stride, planes[1].stride), (512, 512));
            let dmabuf = frame.dmabuf.expect("Argus frames carry their DMABUF");
            assert!(dmabuf.is_shared() && dmabuf.len() == 2, "{dmabuf:?}");
            let (y, cbcr) = (dmabuf.plane(0).unwrap(), dmabuf.plane(1).unwrap());
            assert_eq!((y.offset, cbcr.offset), (0, 512 * 240));
            // Each plane's bytes are in the DMABUF at the offset the frame gives.
            let file = std::fs::File::from(y.fd.try_clone_to_owned().unwrap());
            for (plane, at) in planes.iter().zip([y.offset, cbcr.offset]) {
                let mut bytes = vec![0; plane.data.len()];
                file.read_exact_at(&mut bytes, at as u64).unwrap();
                assert!(bytes == plane.data, "frame {n}: plane at {at} differs");
            }
            fds.push(y.fd.as_raw_fd());
            assert!(frame.captured_at <= Instant::now());
        }
        // Four buffers go round; one is lent at a time.
        fds.sort_unstable();
        fds.dedup();
        assert_eq!(fds.len(), 4, "{fds:?}");
        assert_eq!(source.fake_lent(), 1);
    }

    #[test]
    fn errors_are_typed_and_name_the_camera() {
        let _serial = serial();
        let mut config = ArgusConfig::new(320, 240, 30);
        config.sensor_id = 3;
        match ArgusSource::open(&config) {
            Err(CaptureError::Camera(text)) => {
                assert!(text.contains("camera 3 (FC_ARGUS_NO_CAMERA)"), "{text}");
                assert!(text.contains("no camera device 3"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            ArgusConfig::new(321, 240, 30),
            ArgusConfig::new(320, 240, 0),
            ArgusConfig {
                buffers: 1,
                ..ArgusConfig::new(320, 240, 30)
            },
        ] {
            assert!(
                matches!(
                    ArgusSource::open(&bad),
                    Err(CaptureError::UnsupportedFormat(_))
                ),
                "{bad:?}"
            );
        }
        // A sensor that stops mid-stream: the error says so, and the source can be dropped.
        let mut source = ArgusSource::open(&ArgusConfig::new(64, 48, 240)).unwrap();
        source.fake_fail_after(2);
        assert!(source.next_frame().is_ok());
        assert!(source.next_frame().is_ok());
        match source.next_frame() {
            Err(CaptureError::Camera(text)) => {
                assert!(
                    text.contains("FC_ARGUS_FAILED") && text.contains("stopped streaming"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The frame held before the failure was given back first.
        assert_eq!(source.fake_lent(), 0);
    }

    #[test]
    fn a_timeout_is_an_error_and_capture_goes_on() {
        let _serial = serial();
        let mut config = ArgusConfig::new(64, 48, 2);
        config.timeout = Duration::from_millis(10);
        let mut source = ArgusSource::open(&config).unwrap();
        assert!(
            source.next_frame().is_ok(),
            "the first frame is due at once"
        );
        match source.next_frame() {
            Err(CaptureError::Camera(text)) => assert!(text.contains("FC_ARGUS_TIMEOUT"), "{text}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(source.fake_lent(), 0);
    }

    #[cfg(feature = "openh264")]
    #[test]
    fn frames_go_through_the_capture_trait_into_an_encoder() {
        use crate::encode::openh264::OpenH264Encoder;
        use crate::encode::{EncoderSettings, VideoEncoder};
        let _serial = serial();
        let mut source: Box<dyn CaptureSource> =
            Box::new(ArgusSource::open(&ArgusConfig::new(160, 120, 240)).unwrap());
        let format = source.format();
        let settings = EncoderSettings::new(format.width, format.height, 30);
        let mut encoder = OpenH264Encoder::new(settings).unwrap();
        let mut out = Vec::with_capacity(256 * 1024);
        let mut keyframes = 0;
        for _ in 0..5 {
            let frame = source.next_frame().unwrap();
            let encoded = encoder.encode(&frame, &mut out).unwrap();
            assert!(encoded.len > 0);
            keyframes += usize::from(encoded.keyframe);
        }
        assert_eq!(keyframes, 1, "one IDR, then P-frames");
    }

    #[test]
    fn teardown_gives_everything_back() {
        let _serial = serial();
        let before = ArgusSource::fake_open_sessions();
        {
            let mut source = ArgusSource::open(&ArgusConfig::new(64, 48, 240)).unwrap();
            let _ = source.next_frame().unwrap();
            assert_eq!(source.fake_lent(), 1);
            assert_eq!(ArgusSource::fake_open_sessions(), before + 1);
            // Dropped while a frame is lent.
        }
        assert_eq!(ArgusSource::fake_open_sessions(), before);
        // And after a failed open nothing is left open either.
        let mut bad = ArgusConfig::new(64, 48, 30);
        bad.sensor_id = 1;
        assert!(ArgusSource::open(&bad).is_err());
        assert_eq!(ArgusSource::fake_open_sessions(), before);
    }
}
