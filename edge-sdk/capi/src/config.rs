//! The configuration structs C fills in, their defaults, and their checks.

use core::ffi::{CStr, c_char, c_void};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use edge::sender::SenderConfig;
use flowcloud_core::h264::MAX_ACCESS_UNIT_BYTES;

use crate::callbacks::{fc_event_cb, fc_result_cb};
use crate::result::{fc_result, guard};

/// How a sender connects and behaves. Get the defaults with `fc_sender_config_default`, then
/// change what you need; zero-initializing this struct yourself gives invalid values.
///
/// The strings are read during `fc_sender_new` only (the sender keeps copies).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fc_sender_config {
    /// The worker's ingest address, `"host:port"` (NUL-terminated). A host name is resolved
    /// once, in `fc_sender_new` (which then blocks on DNS); firmware usually passes a numeric
    /// address. Default `"127.0.0.1:5004"`.
    pub server: *const c_char,
    /// This camera's identity (RTCP SDES CNAME), 1–255 bytes of UTF-8, NUL-terminated; the
    /// worker keys streams and stored results by it. Default `"flowcloud-edge"`.
    pub cname: *const c_char,
    /// Most time one TCP connect may take, ms. Default 3000.
    pub connect_timeout_ms: u32,
    /// Send queue size in bytes of framed RTP. Default 1 MiB.
    pub queue_bytes: usize,
    /// Send queue size in frames. Default 60.
    pub queue_frames: u32,
    /// Most RTP payload bytes per packet, 3–65523. Default 1400 (fits a UDP relay).
    pub payload_budget: u32,
    /// RTP payload type, 0–127. Default 96.
    pub payload_type: u8,
    /// Time between RTCP sender reports, ms. Default 1000.
    pub report_interval_ms: u32,
    /// First reconnect delay step, ms (jittered, doubling). Default 100.
    pub reconnect_initial_ms: u32,
    /// Largest reconnect delay step, ms. Default 5000.
    pub reconnect_max_ms: u32,
    /// Least time between two keyframe requests caused by the worker's PLIs, ms. Default 100.
    pub keyframe_request_interval_ms: u32,
    /// Largest access unit `fc_sender_push_au` takes (and the camera's encoder may write),
    /// bytes, at most 8 MiB. Each hand-off slot reserves this much at `fc_sender_new`.
    /// Default 1 MiB.
    pub max_access_unit_bytes: usize,
    /// Frames that can wait between `fc_sender_push_au` and the I/O thread, 1–64. Default 4.
    pub handoff_slots: u32,
    /// Largest class map (width × height bytes) passed to `on_result`; a larger map is
    /// skipped (`class_map` NULL). Reserved once. Default 65536.
    pub class_map_capacity: usize,
    /// How long `fc_sender_stop` may spend writing out queued frames, ms. Default 1000.
    pub flush_timeout_ms: u32,
    /// Called on the I/O thread for every result from the worker; NULL for none.
    pub on_result: fc_result_cb,
    /// Called on the I/O thread for connection events and keyframe requests; NULL for none.
    pub on_event: fc_event_cb,
    /// Passed as the first argument of both callbacks; the library never dereferences it.
    pub userdata: *mut c_void,
}

/// What `fc_sender_start_camera` captures and how it encodes.
///
/// The strings are read during `fc_sender_start_camera` only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fc_camera_config {
    /// What to capture, as the `flowcloud-edge` CLI's `--source`: `"pattern"` (moving test
    /// pattern), `"raw:PATH"` (NV12 or I420 frames back to back, see `raw_format`),
    /// `"y4m:PATH"`, or `"v4l2:/dev/videoN"`. Default `"pattern"`.
    pub source: *const c_char,
    /// The encoder, as the CLI's `--encoder`: `"openh264"` (software), `"v4l2:/dev/videoN"`
    /// (the V4L2 memory-to-memory encoder, e.g. a Jetson's) or `"nvenc"`. Default
    /// `"openh264"`.
    pub encoder: *const c_char,
    /// Pixel layout of a `raw:` file, an `fc_raw_format` value (an integer here, so that a
    /// value C made up is an `FC_RESULT_INVALID_CONFIG`, not undefined behaviour). Default
    /// `FC_RAW_FORMAT_I420`.
    pub raw_format: u32,
    /// Start a file again at its end instead of stopping. Default false.
    pub looping: bool,
    /// Picture width (pattern, raw files, the V4L2 request). Default 1280.
    pub width: u32,
    /// Picture height. Default 720.
    pub height: u32,
    /// Frames per second; files and the pattern are paced to it. Default 30.
    pub fps: u32,
    /// Target bitrate, bits per second. Default 2500000.
    pub bitrate_bps: u32,
    /// An IDR every this many frames; 0: only at the start and on request. Default 60.
    pub keyframe_interval: u32,
}

/// Pixel layout of a raw file source.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum fc_raw_format {
    /// Planar Y, U, V (4:2:0).
    I420 = 1,
    /// Y plane, then interleaved UV (4:2:0).
    Nv12 = 2,
}

/// Writes the default sender configuration to `out`.
///
/// Returns `FC_RESULT_NULL_ARGUMENT` when `out` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for one `fc_sender_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fc_sender_config_default(out: *mut fc_sender_config) -> fc_result {
    guard(|| {
        if out.is_null() {
            return fc_result::NullArgument;
        }
        let defaults = SenderConfig::new(SocketAddr::from(([127, 0, 0, 1], 5004)), "");
        let config = fc_sender_config {
            server: c"127.0.0.1:5004".as_ptr(),
            cname: c"flowcloud-edge".as_ptr(),
            connect_timeout_ms: millis(defaults.connect_timeout),
            queue_bytes: defaults.queue_bytes,
            queue_frames: u32::try_from(defaults.queue_frames).unwrap_or(u32::MAX),
            payload_budget: u32::try_from(defaults.payload_budget).unwrap_or(u32::MAX),
            payload_type: defaults.payload_type,
            report_interval_ms: millis(defaults.report_interval),
            reconnect_initial_ms: millis(defaults.reconnect_initial),
            reconnect_max_ms: millis(defaults.reconnect_max),
            keyframe_request_interval_ms: millis(defaults.keyframe_request_interval),
            max_access_unit_bytes: 1 << 20,
            handoff_slots: 4,
            class_map_capacity: 1 << 16,
            flush_timeout_ms: 1000,
            on_result: None,
            on_event: None,
            userdata: core::ptr::null_mut(),
        };
        // SAFETY: `out` is non-null and, by the caller's contract, writable for one config;
        // `write` does not read the (possibly uninitialized) old value.
        unsafe { out.write(config) };
        fc_result::Ok
    })
}

/// Writes the default camera configuration to `out`.
///
/// Returns `FC_RESULT_NULL_ARGUMENT` when `out` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for one `fc_camera_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fc_camera_config_default(out: *mut fc_camera_config) -> fc_result {
    guard(|| {
        if out.is_null() {
            return fc_result::NullArgument;
        }
        let config = fc_camera_config {
            source: c"pattern".as_ptr(),
            encoder: c"openh264".as_ptr(),
            raw_format: fc_raw_format::I420 as u32,
            looping: false,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 2_500_000,
            keyframe_interval: 60,
        };
        // SAFETY: `out` is non-null and writable for one config (caller's contract).
        unsafe { out.write(config) };
        fc_result::Ok
    })
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn ms(value: u32) -> Duration {
    Duration::from_millis(u64::from(value))
}

/// The owned, checked form of an [`fc_sender_config`].
#[derive(Clone, Debug)]
pub(crate) struct SenderSettings {
    pub(crate) sender: SenderConfig,
    pub(crate) max_access_unit_bytes: usize,
    pub(crate) handoff_slots: usize,
    pub(crate) class_map_capacity: usize,
    pub(crate) flush_timeout: Duration,
}

/// Most hand-off slots.
const MAX_HANDOFF_SLOTS: u32 = 64;
/// Least `max_access_unit_bytes`: an SPS, a PPS and a tiny slice.
const MIN_ACCESS_UNIT_BYTES: usize = 64;
/// Largest class map accepted as `class_map_capacity` (4096 × 4096).
const MAX_CLASS_MAP_CAPACITY: usize = 1 << 24;

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `s` is NULL or points to a NUL-terminated string that stays valid during the call.
pub(crate) unsafe fn read_str<'a>(s: *const c_char) -> Result<&'a str, fc_result> {
    if s.is_null() {
        return Err(fc_result::NullArgument);
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str().map_err(|_| fc_result::InvalidConfig)
}

impl SenderSettings {
    /// Checks every field and resolves the server address.
    ///
    /// # Safety
    ///
    /// The config's strings are NULL or NUL-terminated and valid during the call.
    pub(crate) unsafe fn from_c(config: &fc_sender_config) -> Result<Self, fc_result> {
        // SAFETY: the caller's contract covers both strings.
        let (server, cname) = unsafe { (read_str(config.server)?, read_str(config.cname)?) };
        if cname.is_empty() || cname.len() > 255 {
            return Err(fc_result::InvalidConfig);
        }
        let max_au = config.max_access_unit_bytes;
        let checks = [
            (MIN_ACCESS_UNIT_BYTES..=MAX_ACCESS_UNIT_BYTES).contains(&max_au),
            (1..=MAX_HANDOFF_SLOTS).contains(&config.handoff_slots),
            config.class_map_capacity <= MAX_CLASS_MAP_CAPACITY,
            config.queue_frames > 0,
            config.report_interval_ms > 0,
            config.connect_timeout_ms > 0,
            config.reconnect_initial_ms > 0,
            config.reconnect_max_ms >= config.reconnect_initial_ms,
        ];
        if checks.contains(&false) {
            return Err(fc_result::InvalidConfig);
        }
        let server = server
            .to_socket_addrs()
            .map_err(|_| fc_result::AddressUnresolved)?
            .next()
            .ok_or(fc_result::AddressUnresolved)?;
        let mut sender = SenderConfig::new(server, cname);
        sender.connect_timeout = ms(config.connect_timeout_ms);
        sender.queue_bytes = config.queue_bytes;
        sender.queue_frames = config.queue_frames as usize;
        sender.payload_budget = config.payload_budget as usize;
        sender.payload_type = config.payload_type;
        sender.report_interval = ms(config.report_interval_ms);
        sender.reconnect_initial = ms(config.reconnect_initial_ms);
        sender.reconnect_max = ms(config.reconnect_max_ms);
        sender.keyframe_request_interval = ms(config.keyframe_request_interval_ms);
        Ok(Self {
            sender,
            max_access_unit_bytes: max_au,
            handoff_slots: config.handoff_slots as usize,
            class_map_capacity: config.class_map_capacity,
            flush_timeout: ms(config.flush_timeout_ms),
        })
    }
}
