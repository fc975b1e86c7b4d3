//! The `fc_sender_*` exports: create, feed (push or camera), keyframe requests, statistics,
//! stop and free.

use core::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use edge::sender::{Sender, SenderError};
use flowcloud_core::h264::{MAX_NALS_PER_ACCESS_UNIT, NalHeader, annexb};

use crate::callbacks::{CHandler, Callbacks};
use crate::camera::{self, CameraSpec};
use crate::config::{SenderSettings, fc_camera_config, fc_sender_config};
use crate::handle::{self, fc_sender};
use crate::handoff::{Handoff, Ready};
use crate::result::{fc_result, guard, guard_try};
use crate::shared::Shared;
use crate::stats::{self, fc_stats};

/// Threads owned by a sender, and whether it was stopped.
#[derive(Debug, Default)]
struct Lifecycle {
    stopped: bool,
    io: Option<JoinHandle<()>>,
    camera: Option<JoinHandle<()>>,
}

/// Everything behind one `fc_sender` token.
#[derive(Debug)]
pub(crate) struct SenderState {
    shared: Arc<Shared>,
    /// Mirrors `lifecycle.stopped` for the calls that must not wait for the lock.
    stopped: AtomicBool,
    lifecycle: Mutex<Lifecycle>,
}

impl SenderState {
    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        // Thread handles and a flag: nothing a panic could leave half-written.
        self.lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn check_running(&self) -> Result<(), fc_result> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(fc_result::Stopped);
        }
        self.shared.check_io()
    }

    /// `fc_sender_stop` and `fc_sender_free` wait for the I/O thread: not from a callback.
    fn check_not_io_thread(&self) -> Result<(), fc_result> {
        if self.shared.on_io_thread() {
            Err(fc_result::WrongThread)
        } else {
            Ok(())
        }
    }

    fn stop(&self) -> Result<(), fc_result> {
        self.check_not_io_thread()?;
        let mut lifecycle = self.lifecycle();
        if lifecycle.stopped {
            return Err(fc_result::Stopped);
        }
        lifecycle.stopped = true;
        self.stopped.store(true, Ordering::Release);
        let shared = &self.shared;
        shared.handoff.close();
        shared.camera.stop.store(true, Ordering::Release);
        if let Some(camera) = lifecycle.camera.take() {
            camera.thread().unpark();
            let _ = camera.join();
        }
        shared.stop.store(true, Ordering::Release);
        let _ = shared.waker.wake();
        if let Some(io) = lifecycle.io.take() {
            // The thread catches its own panics; a failure is in `shared` for the stats.
            let _ = io.join();
        }
        Ok(())
    }
}

impl Drop for SenderState {
    fn drop(&mut self) {
        // Normally stopped by `fc_sender_free`; this covers a state dropped another way.
        let _ = self.stop();
    }
}

/// Creates a sender and starts its I/O thread, which connects to `config->server` at once
/// and reconnects with backoff whenever the connection is lost. Frames pushed before the
/// connection is up are dropped (counted in `dropped_not_connected`); wait for
/// `fc_stats.connected` (`fc_sender_stats`) or the `FC_EVENT_KIND_CONNECTED` event to avoid that.
///
/// Every buffer the sender needs is reserved here: `handoff_slots ×
/// max_access_unit_bytes`, the send queue, the class-map buffer. Nothing on the per-frame
/// path allocates afterwards.
///
/// On success writes the new handle to `*out`; on failure writes NULL (when `out` is not
/// NULL) and returns `FC_RESULT_NULL_ARGUMENT` (`config` or `out` NULL, or a NULL string in
/// it), `FC_RESULT_INVALID_CONFIG`, `FC_RESULT_ADDRESS_UNRESOLVED` or `FC_RESULT_IO`.
///
/// Callbacks run on the I/O thread (see `fc_result_cb`); `userdata` must be usable there.
///
/// Thread safety: any thread. May block on DNS when `server` is a host name.
///
/// # Safety
///
/// `config` is NULL or points to an initialized `fc_sender_config` whose strings are NULL or
/// NUL-terminated; `out` is NULL or writable. The callbacks, if set, have the documented
/// signatures and stay callable until `fc_sender_free` returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fc_sender_new(
    config: *const fc_sender_config,
    out: *mut *mut fc_sender,
) -> fc_result {
    guard_try(|| {
        if out.is_null() {
            return Err(fc_result::NullArgument);
        }
        // SAFETY: `out` is non-null and writable (caller's contract).
        unsafe { out.write(core::ptr::null_mut()) };
        // SAFETY: `config` is NULL or points to an initialized config (caller's contract).
        let Some(config) = (unsafe { config.as_ref() }) else {
            return Err(fc_result::NullArgument);
        };
        // SAFETY: the config's strings are NULL or NUL-terminated (caller's contract).
        let settings = unsafe { SenderSettings::from_c(config) }?;
        let callbacks = Callbacks {
            on_result: config.on_result,
            on_event: config.on_event,
            userdata: config.userdata,
        };
        let sender = Sender::new(settings.sender).map_err(|e| match e {
            SenderError::InvalidConfig(_) => fc_result::InvalidConfig,
            SenderError::Io { .. } => fc_result::Io,
        })?;
        let waker = sender.waker().map_err(|_| fc_result::Io)?;
        let handoff = Handoff::new(settings.handoff_slots, settings.max_access_unit_bytes);
        let shared = Arc::new(Shared::new(
            handoff,
            waker,
            settings.max_access_unit_bytes,
            sender.stats(),
        ));
        let handler = CHandler::new(callbacks, Arc::clone(&shared), settings.class_map_capacity);
        let io = {
            let shared = Arc::clone(&shared);
            let flush_timeout = settings.flush_timeout;
            thread::Builder::new()
                .name("fc-sender-io".into())
                .spawn(move || crate::io::run(sender, handler, &shared, flush_timeout))
                .map_err(|_| fc_result::Io)?
        };
        let state = Arc::new(SenderState {
            shared,
            stopped: AtomicBool::new(false),
            lifecycle: Mutex::new(Lifecycle {
                stopped: false,
                io: Some(io),
                camera: None,
            }),
        });
        // SAFETY: as above.
        unsafe { out.write(handle::insert(state)) };
        Ok(())
    })
}

/// Checks an access unit as the packetizer will: Annex-B, 1–64 NAL units, each with a clear
/// forbidden bit and an H.264 type (not an RTP aggregation/fragmentation or reserved one).
/// Returns whether it holds an IDR slice.
fn check_access_unit(access_unit: &[u8]) -> Result<bool, fc_result> {
    let invalid = |_| fc_result::InvalidAccessUnit;
    let mut nals = annexb::nal_units(access_unit).map_err(invalid)?;
    let (mut count, mut idr) = (0, false);
    while let Some(range) = nals.next_range() {
        let header = NalHeader(access_unit[range.start]);
        if header.forbidden_bit() || !header.nal_type().is_h264_nal() {
            return Err(fc_result::InvalidAccessUnit);
        }
        count += 1;
        idr |= header.type_id() == 5;
    }
    if count == 0 || count > MAX_NALS_PER_ACCESS_UNIT {
        return Err(fc_result::InvalidAccessUnit);
    }
    Ok(idr)
}

/// Hands one encoded access unit to the sender, for firmware that runs its own encoder
/// (NVENC, libargus + the Jetson encoder, a V4L2 M2M device). The bytes are copied into a
/// reserved hand-off slot, so the buffer can be reused as soon as this returns; the I/O
/// thread packetizes and sends it. Never blocks on the network and never allocates.
///
/// - `annexb`, `len`: one access unit in Annex-B form (start codes), SPS and PPS in front of
///   every IDR, at most `max_access_unit_bytes`.
/// - `capture_time_ns`: when the picture was captured, `CLOCK_MONOTONIC` nanoseconds (the
///   clock of V4L2/libargus buffer timestamps); it sets the RTP timestamp and the start of
///   the latency measurement. 0 means "now".
/// - `keyframe`: whether this is an IDR; it must agree with the NAL unit types.
///
/// Returns `FC_RESULT_OK` (taken: sent when connected; a drop on the I/O thread because the
/// connection is down or the send queue is full is counted in the stats), `FC_RESULT_DROPPED`
/// (not taken: all hand-off slots busy, or waiting for a keyframe after such a drop), or an
/// error, checked in this order: `FC_RESULT_NULL_ARGUMENT` (`sender` NULL),
/// `FC_RESULT_INVALID_HANDLE`, `FC_RESULT_STOPPED`, `FC_RESULT_IO`/`FC_RESULT_PANIC` (the I/O
/// thread died), `FC_RESULT_CAMERA_RUNNING`, `FC_RESULT_NULL_ARGUMENT` (`annexb` NULL),
/// `FC_RESULT_EMPTY_ACCESS_UNIT`, `FC_RESULT_ACCESS_UNIT_TOO_LARGE`,
/// `FC_RESULT_INVALID_ACCESS_UNIT`, `FC_RESULT_KEYFRAME_MISMATCH`.
///
/// Check `fc_sender_take_keyframe_request` before encoding each picture.
///
/// Thread safety: any thread, but from one thread at a time (frames are sent in the order of
/// the calls); may be called from a callback.
///
/// # Safety
///
/// `annexb` is NULL or points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fc_sender_push_au(
    sender: *mut fc_sender,
    annexb: *const u8,
    len: usize,
    capture_time_ns: u64,
    keyframe: bool,
) -> fc_result {
    guard(|| {
        let state = match handle::get(sender) {
            Ok(state) => state,
            Err(e) => return e,
        };
        if let Err(e) = state.check_running() {
            return e;
        }
        let shared = &state.shared;
        if shared.camera.running.load(Ordering::Acquire) {
            return fc_result::CameraRunning;
        }
        if annexb.is_null() {
            return fc_result::NullArgument;
        }
        if len == 0 {
            return fc_result::EmptyAccessUnit;
        }
        if len > shared.max_access_unit_bytes {
            return fc_result::AccessUnitTooLarge;
        }
        // SAFETY: non-null and `len` readable bytes (caller's contract).
        let access_unit = unsafe { core::slice::from_raw_parts(annexb, len) };
        match check_access_unit(access_unit) {
            Ok(idr) if idr == keyframe => {}
            Ok(_) => return fc_result::KeyframeMismatch,
            Err(e) => return e,
        }
        let pushed_at = Instant::now();
        let captured_at = if capture_time_ns == 0 {
            pushed_at
        } else {
            shared.clock.instant_at(capture_time_ns)
        };
        let mut buf = match shared.acquire(Some(keyframe)) {
            Ok(buf) => buf,
            Err(e) => return e,
        };
        // Within the reserved capacity (`len` was checked against it): no allocation.
        buf.extend_from_slice(access_unit);
        let ready = Ready {
            access_unit: buf,
            captured_at,
            encode_time: pushed_at.saturating_duration_since(captured_at),
        };
        shared.submit(ready, keyframe)
    })
}

/// Whether the worker or the sender asked for a keyframe since the last call; clears the
/// flag. Call it before encoding each picture and, when `*out_requested` is true, make that
/// picture an IDR (with SPS/PPS). Requests come from a new connection, a PLI from the worker
/// (rate-limited by `keyframe_request_interval_ms`) and dropped frames. The same requests
/// also arrive as `FC_EVENT_KIND_KEYFRAME_REQUESTED` events.
///
/// Returns `FC_RESULT_NULL_ARGUMENT`, `FC_RESULT_INVALID_HANDLE`, `FC_RESULT_STOPPED`, or
/// `FC_RESULT_CAMERA_RUNNING` (the SDK's camera takes the requests itself).
///
/// Thread safety: any thread, including callbacks.
///
/// # Safety
///
/// `out_requested` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fc_sender_take_keyframe_request(
    sender: *mut fc_sender,
    out_requested: *mut bool,
) -> fc_result {
    guard_try(|| {
        let state = handle::get(sender)?;
        state.check_running()?;
        if out_requested.is_null() {
            return Err(fc_result::NullArgument);
        }
        if state.shared.camera.running.load(Ordering::Acquire) {
            return Err(fc_result::CameraRunning);
        }
        let requested = state.shared.take_keyframe_request();
        // SAFETY: non-null and writable (caller's contract).
        unsafe { out_requested.write(requested) };
        Ok(())
    })
}

/// Starts the SDK's own capture and encoding on a new thread: frames from `config->source`
/// are encoded by `config->encoder` straight into a hand-off slot and sent, with keyframe
/// requests going to that encoder. Returns once the source and encoder are open.
///
/// While the camera runs, `fc_sender_push_au` and `fc_sender_take_keyframe_request` return
/// `FC_RESULT_CAMERA_RUNNING`. The camera stops at the end of a (non-looping) file, on an
/// error (an `FC_EVENT_KIND_CAMERA_STOPPED` event and `fc_stats.camera_result` say
/// which), or at `fc_sender_stop`. After it has stopped, another camera may be started.
///
/// The software encoder (openh264) allocates internally while encoding; it is the one
/// exemption from "no allocation per frame".
///
/// Returns `FC_RESULT_NULL_ARGUMENT`, `FC_RESULT_INVALID_HANDLE`, `FC_RESULT_WRONG_THREAD`
/// (from a callback), `FC_RESULT_STOPPED`, `FC_RESULT_CAMERA_RUNNING`,
/// `FC_RESULT_INVALID_CONFIG`, `FC_RESULT_UNSUPPORTED` (unknown kind, or not in this build),
/// `FC_RESULT_CAPTURE` (the source cannot be opened), `FC_RESULT_ENCODER` or `FC_RESULT_IO`.
///
/// Thread safety: any thread except the callbacks'.
///
/// # Safety
///
/// `config` is NULL or points to an initialized `fc_camera_config` whose strings are NULL or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fc_sender_start_camera(
    sender: *mut fc_sender,
    config: *const fc_camera_config,
) -> fc_result {
    guard_try(|| {
        let state = handle::get(sender)?;
        state.check_not_io_thread()?;
        state.check_running()?;
        // SAFETY: NULL or an initialized config (caller's contract).
        let Some(config) = (unsafe { config.as_ref() }) else {
            return Err(fc_result::NullArgument);
        };
        // SAFETY: the strings are NULL or NUL-terminated (caller's contract).
        let spec = unsafe { CameraSpec::from_c(config) }?;
        let mut lifecycle = state.lifecycle();
        if lifecycle.stopped {
            return Err(fc_result::Stopped);
        }
        let shared = &state.shared;
        if let Some(previous) = lifecycle.camera.take() {
            if shared.camera.running.load(Ordering::Acquire) {
                lifecycle.camera = Some(previous);
                return Err(fc_result::CameraRunning);
            }
            let _ = previous.join();
        }
        shared.camera.set_result(fc_result::Ok);
        lifecycle.camera = Some(camera::start(spec, Arc::clone(shared))?);
        Ok(())
    })
}

/// Writes the sender's counters to `*out`: frames, drops by cause, bytes, results, RTT,
/// capture→result latency percentiles over the last 1024 matched results, reconnects, the
/// queue, and the camera's state. Copies and sorts on the caller's stack; never allocates.
///
/// Works after `fc_sender_stop` too (the final figures). Returns `FC_RESULT_NULL_ARGUMENT`
/// or `FC_RESULT_INVALID_HANDLE`.
///
/// Thread safety: any thread, including callbacks.
///
/// # Safety
///
/// `out` is NULL or writable for one `fc_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fc_sender_stats(
    sender: *const fc_sender,
    out: *mut fc_stats,
) -> fc_result {
    guard_try(|| {
        let state = handle::get(sender)?;
        if out.is_null() {
            return Err(fc_result::NullArgument);
        }
        let stats = stats::collect(&state.shared);
        // SAFETY: non-null and writable (caller's contract).
        unsafe { out.write(stats) };
        Ok(())
    })
}

/// Stops the sender: stops the camera thread if one runs, writes out what is queued (for at
/// most `flush_timeout_ms` while connected), closes the connection and joins the I/O thread.
/// No callback runs after it returns. Afterwards every call but `fc_sender_stats` and
/// `fc_sender_free` returns `FC_RESULT_STOPPED`; so does a second `fc_sender_stop`.
///
/// Returns `FC_RESULT_NULL_ARGUMENT`, `FC_RESULT_INVALID_HANDLE`, `FC_RESULT_WRONG_THREAD`
/// (called from a callback, where it would wait for itself) or `FC_RESULT_STOPPED`.
///
/// Thread safety: any thread except the callbacks'; blocks up to `flush_timeout_ms` plus a
/// frame interval of the camera.
#[unsafe(no_mangle)]
pub extern "C" fn fc_sender_stop(sender: *mut fc_sender) -> fc_result {
    guard_try(|| handle::get(sender)?.stop())
}

/// Stops the sender if it is still running (see `fc_sender_stop`) and releases it; the
/// handle is invalid afterwards. `fc_sender_free(NULL)` does nothing and returns
/// `FC_RESULT_OK`.
///
/// Handles are never reused, so freeing one twice, or using one after it was freed, returns
/// `FC_RESULT_INVALID_HANDLE` rather than corrupting memory. A call running on another thread
/// while the sender is freed finishes safely (it may see `FC_RESULT_STOPPED`).
///
/// Returns `FC_RESULT_OK`, `FC_RESULT_INVALID_HANDLE` or `FC_RESULT_WRONG_THREAD` (from a
/// callback; the sender is then left as it was).
///
/// Thread safety: any thread except the callbacks'.
#[unsafe(no_mangle)]
pub extern "C" fn fc_sender_free(sender: *mut fc_sender) -> fc_result {
    guard_try(|| {
        if sender.is_null() {
            return Ok(());
        }
        handle::get(sender)?.check_not_io_thread()?;
        let state = handle::remove(sender)?;
        match state.stop() {
            Ok(()) | Err(fc_result::Stopped) => Ok(()),
            Err(e) => Err(e),
        }
    })
}

/// The library's version, e.g. `"0.1.0"`: static, NUL-terminated, never NULL.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn fc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
