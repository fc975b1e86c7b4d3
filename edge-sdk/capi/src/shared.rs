//! State shared by the threads of one sender: the caller's threads (push, stats, stop), the
//! I/O thread, and the camera thread when there is one. Everything here is either atomic or
//! behind a short, allocation-free lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use edge::sender::{SenderStats, SenderWaker};

use crate::clock::MonotonicClock;
use crate::handoff::{Handoff, Ready, Refused};
use crate::result::fc_result;

/// Latencies kept for the percentiles of `fc_sender_stats`.
pub(crate) const LATENCY_WINDOW: usize = 1024;

/// What the I/O thread last published.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) stats: SenderStats,
    pub(crate) connected: bool,
    /// Access units the sender refused on the I/O thread (cannot happen for pushed ones,
    /// which are checked before they are taken; an encoder could write one).
    pub(crate) rejected: u64,
    /// Capture → result of the latest matched results, µs, a ring.
    latencies: [u32; LATENCY_WINDOW],
    latency_count: usize,
    latency_next: usize,
}

impl Published {
    /// The latency window, oldest order not kept.
    pub(crate) fn latencies(&self) -> &[u32] {
        &self.latencies[..self.latency_count]
    }
}

/// Status of the SDK's camera thread, when one was started.
#[derive(Debug, Default)]
pub(crate) struct CameraStatus {
    pub(crate) running: AtomicBool,
    pub(crate) frames: AtomicU64,
    /// The `fc_result` the camera ended with (`Ok` while running or at end of file).
    result: AtomicU32,
    /// The camera ended and the I/O thread has not reported it yet.
    pub(crate) ended_unreported: AtomicBool,
    /// Set by `fc_sender_stop`.
    pub(crate) stop: AtomicBool,
}

impl CameraStatus {
    pub(crate) fn result(&self) -> fc_result {
        code_to_result(self.result.load(Ordering::Acquire)).unwrap_or(fc_result::Ok)
    }

    pub(crate) fn set_result(&self, result: fc_result) {
        self.result.store(result as u32, Ordering::Release);
    }
}

fn pthread_self() -> usize {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    let id = unsafe { libc::pthread_self() };
    id as usize
}

fn code_to_result(code: u32) -> Option<fc_result> {
    fc_result::ALL.iter().copied().find(|r| *r as u32 == code)
}

/// The state of one sender that more than one thread touches.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: MonotonicClock,
    pub(crate) handoff: Handoff,
    pub(crate) waker: SenderWaker,
    /// The largest access unit a hand-off buffer holds.
    pub(crate) max_access_unit_bytes: usize,
    /// `fc_sender_take_keyframe_request`'s flag (the camera thread consumes it in camera mode).
    keyframe_request: AtomicBool,
    /// The hand-off dropped a frame and asked for a keyframe; the I/O thread reports it.
    handoff_keyframe_unreported: AtomicBool,
    handoff_keyframe_requests: AtomicU64,
    /// Tells the I/O thread to flush and end.
    pub(crate) stop: AtomicBool,
    /// Why the I/O thread ended early (0: it has not).
    io_failure: AtomicU32,
    /// The I/O thread's `pthread_self()` (0 until it runs). Compared instead of a
    /// `std::thread::ThreadId` because `thread::current()` allocates a handle, once, on each
    /// C thread that asks — a leak report at exit under valgrind.
    io_thread: AtomicUsize,
    /// Frames taken by `fc_sender_push_au` or produced by the camera.
    pub(crate) frames_pushed: AtomicU64,
    pub(crate) camera: CameraStatus,
    published: Mutex<Published>,
}

impl Shared {
    pub(crate) fn new(
        handoff: Handoff,
        waker: SenderWaker,
        max_access_unit_bytes: usize,
        initial: SenderStats,
    ) -> Self {
        Self {
            clock: MonotonicClock::new(),
            handoff,
            waker,
            max_access_unit_bytes,
            keyframe_request: AtomicBool::new(false),
            handoff_keyframe_unreported: AtomicBool::new(false),
            handoff_keyframe_requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            io_failure: AtomicU32::new(0),
            io_thread: AtomicUsize::new(0),
            frames_pushed: AtomicU64::new(0),
            camera: CameraStatus::default(),
            published: Mutex::new(Published {
                stats: initial,
                connected: false,
                rejected: 0,
                latencies: [0; LATENCY_WINDOW],
                latency_count: 0,
                latency_next: 0,
            }),
        }
    }

    pub(crate) fn published(&self) -> MutexGuard<'_, Published> {
        // Plain counters: a panic while holding the lock cannot leave them inconsistent.
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn publish(&self, stats: SenderStats, connected: bool, rejected: u64) {
        let mut published = self.published();
        published.stats = stats;
        published.connected = connected;
        published.rejected = rejected;
    }

    pub(crate) fn record_latency(&self, micros: u32) {
        let mut p = self.published();
        let next = p.latency_next;
        p.latencies[next] = micros;
        p.latency_next = (next + 1) % LATENCY_WINDOW;
        p.latency_count = (p.latency_count + 1).min(LATENCY_WINDOW);
    }

    pub(crate) fn raise_keyframe_request(&self) {
        self.keyframe_request.store(true, Ordering::Release);
    }

    /// Takes the keyframe request flag.
    pub(crate) fn take_keyframe_request(&self) -> bool {
        self.keyframe_request.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn handoff_keyframe_requests(&self) -> u64 {
        self.handoff_keyframe_requests.load(Ordering::Relaxed)
    }

    /// True once after the hand-off asked for a keyframe.
    pub(crate) fn take_handoff_keyframe_event(&self) -> bool {
        self.handoff_keyframe_unreported
            .swap(false, Ordering::AcqRel)
    }

    /// Called first on the I/O thread.
    pub(crate) fn set_io_thread(&self) {
        self.io_thread.store(pthread_self(), Ordering::Release);
    }

    /// True on the I/O thread, i.e. inside a callback.
    pub(crate) fn on_io_thread(&self) -> bool {
        self.io_thread.load(Ordering::Acquire) == pthread_self()
    }

    /// The I/O thread ended with `result`; later work is refused with it.
    pub(crate) fn set_io_failure(&self, result: fc_result) {
        self.io_failure.store(result as u32, Ordering::Release);
    }

    /// `Err` with the reason when the I/O thread has died.
    pub(crate) fn check_io(&self) -> Result<(), fc_result> {
        match code_to_result(self.io_failure.load(Ordering::Acquire)) {
            Some(result) => Err(result),
            None => Ok(()),
        }
    }

    fn refused(&self, refused: Refused) -> fc_result {
        match refused {
            Refused::Closed => fc_result::Stopped,
            Refused::Dropped { request_keyframe } => {
                if request_keyframe {
                    self.raise_keyframe_request();
                    self.handoff_keyframe_requests
                        .fetch_add(1, Ordering::Relaxed);
                    self.handoff_keyframe_unreported
                        .store(true, Ordering::Release);
                    // The I/O thread reports the request.
                    let _ = self.waker.wake();
                }
                fc_result::Dropped
            }
        }
    }

    /// An empty hand-off buffer (see [`Handoff::acquire`]); `Dropped` or `Stopped` otherwise.
    pub(crate) fn acquire(&self, keyframe: Option<bool>) -> Result<Vec<u8>, fc_result> {
        self.handoff.acquire(keyframe).map_err(|r| self.refused(r))
    }

    /// Queues a filled buffer and wakes the I/O thread.
    pub(crate) fn submit(&self, ready: Ready, keyframe: bool) -> fc_result {
        match self.handoff.publish(ready, keyframe) {
            Ok(()) => {
                self.frames_pushed.fetch_add(1, Ordering::Relaxed);
                // Should waking fail, the frame is still queued: the I/O thread finds it at
                // its next wake-up (the report timer at the latest).
                let _ = self.waker.wake();
                fc_result::Ok
            }
            Err(refused) => self.refused(refused),
        }
    }
}
