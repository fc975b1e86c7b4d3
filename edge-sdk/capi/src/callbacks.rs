//! What the I/O thread hands to C: one `fc_frame_result` per `FCSG` result and one `fc_event`
//! per connection event, each through a callback with the caller's `userdata` first.

use core::ffi::c_void;
use std::sync::Arc;

use edge::sender::{FrameResult, KeyframeCause, SenderEvent, SenderHandler};
use flowcloud_core::results::MAX_CLASSES;

use crate::clock::micros_u32;
use crate::result::fc_result;
use crate::shared::Shared;

/// Receives each segmentation result. Runs on the sender's I/O thread; `result` and the
/// arrays it points to are valid only during the call. Must return promptly (the I/O thread
/// sends nothing meanwhile), must not unwind (throw) or longjmp, and must not call
/// `fc_sender_stop` or `fc_sender_free` (they return `FC_RESULT_WRONG_THREAD`); other calls
/// on the sender are allowed.
pub type fc_result_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, result: *const fc_frame_result)>;

/// Receives connection events and keyframe requests, on the I/O thread, with the same rules
/// as `fc_result_cb`.
pub type fc_event_cb = Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const fc_event)>;

/// One segmentation result from the worker, matched to the frame it is for.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fc_frame_result {
    /// The frame's RTP timestamp (90 kHz) as sent; identifies the frame end to end.
    pub rtp_timestamp: u32,
    /// True when the frame was still in the sender's timeline: `capture_time_ns` and the
    /// latency fields are valid. False for a result whose frame is unknown (e.g. from before a
    /// reconnect); those fields are then 0.
    pub matched: bool,
    /// The frame's capture time, `CLOCK_MONOTONIC` nanoseconds (as pushed, or the camera's).
    pub capture_time_ns: u64,
    /// Capture → this result's arrival, µs, all on this device's clock.
    pub latency_us: u32,
    /// Encoding, µs: the encoder's own time in camera mode; capture → `fc_sender_push_au`
    /// for pushed frames.
    pub encode_us: u32,
    /// Time in the send queue until the frame's last byte was written, µs.
    pub send_queue_us: u32,
    /// Network both ways plus waiting inside the worker, µs.
    pub network_us: u32,
    /// The worker's decode + inference + post-processing, µs (capped so that the parts add
    /// up to `latency_us`).
    pub worker_us: u32,
    /// The worker's decode time, µs, as it reported it.
    pub decode_us: u32,
    /// The worker's inference time, µs.
    pub infer_us: u32,
    /// The worker's post-processing time, µs.
    pub post_us: u32,
    /// Width of the full-resolution class map the worker computed.
    pub map_width: u16,
    /// Height of that map.
    pub map_height: u16,
    /// Pixels of the full map per class id; `class_count` entries (NULL when 0).
    pub histogram: *const u32,
    /// Entries in `histogram` (the model's class count, at most 256).
    pub class_count: usize,
    /// The class with the most pixels (lowest id on a tie); -1 when `class_count` is 0.
    pub top_class: i32,
    /// Pixels of `top_class`.
    pub top_class_pixels: u32,
    /// The (downscaled) class map the worker sent, row-major class ids; NULL when none was
    /// sent, it did not decode, or it is larger than `class_map_capacity`.
    pub class_map: *const u8,
    /// Bytes in `class_map` (`class_map_width * class_map_height`).
    pub class_map_len: usize,
    /// Width of `class_map`.
    pub class_map_width: u16,
    /// Height of `class_map`.
    pub class_map_height: u16,
}

/// What an `fc_event` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum fc_event_kind {
    /// The TCP connection is up; the handshake (SR + SDES) goes out and the sender waits for
    /// an IDR.
    Connected = 1,
    /// A connect attempt failed; `retry_in_ms` says when the next starts.
    ConnectFailed = 2,
    /// An established connection was lost; `frames_lost` queued frames are gone.
    Disconnected = 3,
    /// A receiver report gave a new round-trip time, `rtt_us`.
    RoundTrip = 4,
    /// The encoder should make its next picture an IDR (`keyframe_cause` says why); also
    /// raised as the flag `fc_sender_take_keyframe_request` returns.
    KeyframeRequested = 5,
    /// The SDK's camera stopped: end of file (`camera_result` OK) or an error.
    CameraStopped = 6,
}

/// Why a keyframe was requested.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum fc_keyframe_cause {
    /// Not a keyframe request.
    None = 0,
    /// A new connection must start with an IDR.
    Connected = 1,
    /// The worker lost a picture (RTCP PLI).
    PictureLoss = 2,
    /// A frame was dropped for lack of room (send queue or hand-off).
    Congestion = 3,
}

/// A connection event. Fields that do not apply to `kind` are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fc_event {
    /// What happened.
    pub kind: fc_event_kind,
    /// `CONNECT_FAILED`, `DISCONNECTED`: ms until the next connect attempt.
    pub retry_in_ms: u32,
    /// `DISCONNECTED`: queued frames lost with the connection.
    pub frames_lost: u32,
    /// `ROUND_TRIP`: the round-trip time, µs.
    pub rtt_us: u32,
    /// `KEYFRAME_REQUESTED`: why.
    pub keyframe_cause: fc_keyframe_cause,
    /// `CAMERA_STOPPED`: `FC_RESULT_OK` at the end of a file, else the error.
    pub camera_result: fc_result,
}

impl fc_event {
    pub(crate) const fn new(kind: fc_event_kind) -> Self {
        Self {
            kind,
            retry_in_ms: 0,
            frames_lost: 0,
            rtt_us: 0,
            keyframe_cause: fc_keyframe_cause::None,
            camera_result: fc_result::Ok,
        }
    }
}

/// The caller's callbacks and userdata. The pointer is only handed back to the callbacks,
/// which the caller promised may run on the I/O thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Callbacks {
    pub(crate) on_result: fc_result_cb,
    pub(crate) on_event: fc_event_cb,
    pub(crate) userdata: *mut c_void,
}

// SAFETY: the library never dereferences `userdata`; it only passes it to the caller's own
// callbacks, on the I/O thread, as `fc_sender_new` documents.
unsafe impl Send for Callbacks {}

impl Callbacks {
    pub(crate) fn event(&self, event: &fc_event) {
        if let Some(cb) = self.on_event {
            // SAFETY: the callback and userdata come from the caller's config, which promised
            // a function of this signature; `event` is valid for the call.
            unsafe { cb(self.userdata, event) };
        }
    }
}

/// The I/O thread's [`SenderHandler`]: turns results and events into C structs, in buffers
/// reserved once, and keeps the latency window for `fc_sender_stats`.
pub(crate) struct CHandler {
    callbacks: Callbacks,
    shared: Arc<Shared>,
    histogram: Box<[u32; MAX_CLASSES]>,
    class_map: Vec<u8>,
}

impl CHandler {
    pub(crate) fn new(
        callbacks: Callbacks,
        shared: Arc<Shared>,
        class_map_capacity: usize,
    ) -> Self {
        Self {
            callbacks,
            shared,
            histogram: Box::new([0; MAX_CLASSES]),
            class_map: vec![0; class_map_capacity],
        }
    }

    pub(crate) const fn callbacks(&self) -> &Callbacks {
        &self.callbacks
    }
}

impl SenderHandler for CHandler {
    fn on_result(&mut self, result: &FrameResult<'_>) {
        if let Some(split) = result.latency {
            self.shared.record_latency(micros_u32(split.total));
        }
        let Some(cb) = self.callbacks.on_result else {
            return;
        };
        let view = &result.result;
        let mut class_count = 0;
        let (mut top_class, mut top_class_pixels) = (-1i32, 0u32);
        for (slot, pixels) in self.histogram.iter_mut().zip(view.histogram()) {
            *slot = pixels;
            if top_class < 0 || pixels > top_class_pixels {
                top_class = class_count as i32;
                top_class_pixels = pixels;
            }
            class_count += 1;
        }
        let (mut class_map, mut class_map_len, mut map_w, mut map_h) = (core::ptr::null(), 0, 0, 0);
        if let Some((w, h)) = view.class_map_size() {
            let len = usize::from(w) * usize::from(h);
            if len <= self.class_map.len() && view.decode_class_map(&mut self.class_map).is_ok() {
                (class_map, class_map_len, map_w, map_h) = (self.class_map.as_ptr(), len, w, h);
            }
        }
        let split = result.latency;
        let part = |f: fn(&edge::sender::LatencySplit) -> core::time::Duration| {
            split.as_ref().map_or(0, |s| micros_u32(f(s)))
        };
        let out = fc_frame_result {
            rtp_timestamp: view.rtp_timestamp,
            matched: split.is_some(),
            capture_time_ns: result
                .captured_at
                .map_or(0, |at| self.shared.clock.nanos_at(at)),
            latency_us: part(|s| s.total),
            encode_us: part(|s| s.encode),
            send_queue_us: part(|s| s.send_queue),
            network_us: part(|s| s.network),
            worker_us: part(|s| s.worker),
            decode_us: view.decode_us,
            infer_us: view.infer_us,
            post_us: view.post_us,
            map_width: view.map_width,
            map_height: view.map_height,
            histogram: if class_count == 0 {
                core::ptr::null()
            } else {
                self.histogram.as_ptr()
            },
            class_count,
            top_class,
            top_class_pixels,
            class_map,
            class_map_len,
            class_map_width: map_w,
            class_map_height: map_h,
        };
        // SAFETY: the callback comes from the caller's config with this signature; `out` and
        // the buffers it points to live until the call returns.
        unsafe { cb(self.callbacks.userdata, &out) };
    }

    fn on_event(&mut self, event: SenderEvent) {
        let out = match event {
            SenderEvent::Connected { .. } => fc_event::new(fc_event_kind::Connected),
            SenderEvent::ConnectFailed { retry_in, .. } => fc_event {
                retry_in_ms: micros_u32(retry_in) / 1000,
                ..fc_event::new(fc_event_kind::ConnectFailed)
            },
            SenderEvent::Disconnected {
                frames_lost,
                retry_in,
                ..
            } => fc_event {
                retry_in_ms: micros_u32(retry_in) / 1000,
                frames_lost: u32::try_from(frames_lost).unwrap_or(u32::MAX),
                ..fc_event::new(fc_event_kind::Disconnected)
            },
            SenderEvent::RoundTrip { rtt } => fc_event {
                rtt_us: micros_u32(rtt),
                ..fc_event::new(fc_event_kind::RoundTrip)
            },
            SenderEvent::KeyframeRequested { cause } => {
                // Raised before the callback runs, so the callback may take it.
                self.shared.raise_keyframe_request();
                fc_event {
                    keyframe_cause: match cause {
                        KeyframeCause::Connected => fc_keyframe_cause::Connected,
                        KeyframeCause::PictureLoss => fc_keyframe_cause::PictureLoss,
                        KeyframeCause::Congestion => fc_keyframe_cause::Congestion,
                    },
                    ..fc_event::new(fc_event_kind::KeyframeRequested)
                }
            }
        };
        self.callbacks.event(&out);
    }
}
