//! The I/O thread: it owns the [`Sender`], submits what the hand-off brings, polls the socket
//! and timers, runs the callbacks, and publishes statistics. It sleeps in the poller until the
//! socket, a timer or the [`SenderWaker`](edge::sender::SenderWaker) wakes it, so a pushed
//! frame goes out at once and an idle sender costs nothing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edge::sender::Sender;

use crate::callbacks::{CHandler, fc_event, fc_event_kind, fc_keyframe_cause};
use crate::result::fc_result;
use crate::shared::Shared;

/// Runs the I/O loop until `shared.stop`, then writes out what is queued (at most
/// `flush_timeout`). A panic or a poller failure ends the loop early and is recorded in
/// `shared`, so later calls report it.
pub(crate) fn run(
    mut sender: Sender,
    mut handler: CHandler,
    shared: &Arc<Shared>,
    flush_timeout: Duration,
) {
    shared.set_io_thread();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut io = IoLoop {
            sender: &mut sender,
            handler: &mut handler,
            shared,
            rejected: 0,
        };
        let result = io.run(flush_timeout);
        // The connection closes when the sender is dropped, right after this.
        io.publish(false);
        result
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(result)) => shared.set_io_failure(result),
        Err(_) => shared.set_io_failure(fc_result::Panic),
    }
}

struct IoLoop<'a> {
    sender: &'a mut Sender,
    handler: &'a mut CHandler,
    shared: &'a Shared,
    rejected: u64,
}

impl IoLoop<'_> {
    fn run(&mut self, flush_timeout: Duration) -> Result<(), fc_result> {
        loop {
            // Read before draining: whatever was queued before the stop is still sent.
            let stopping = self.shared.stop.load(Ordering::Acquire);
            self.submit_queued();
            self.report();
            if stopping {
                break;
            }
            // No timeout: the sender always has a timer due (reconnect, connect deadline or
            // the next report), and the waker ends the wait for new frames and for stop.
            self.sender
                .poll(None, &mut *self.handler)
                .map_err(|_| fc_result::Io)?;
        }
        if self.sender.is_connected() {
            self.sender
                .flush(flush_timeout, &mut *self.handler)
                .map_err(|_| fc_result::Io)?;
        }
        Ok(())
    }

    fn submit_queued(&mut self) {
        while let Some(ready) = self.shared.handoff.take() {
            let submitted = self.sender.submit_with(
                &ready.access_unit,
                ready.captured_at,
                ready.encode_time,
                &mut *self.handler,
            );
            if submitted.is_err() {
                self.rejected += 1;
            }
            self.shared.handoff.release(ready.access_unit);
        }
    }

    /// Hands on keyframe requests and camera endings, and publishes the counters.
    fn report(&mut self) {
        // The sender raises its flag once until taken; the handler already told C.
        let _ = self.sender.take_keyframe_request();
        if self.shared.take_handoff_keyframe_event() {
            let event = fc_event {
                keyframe_cause: fc_keyframe_cause::Congestion,
                ..fc_event::new(fc_event_kind::KeyframeRequested)
            };
            self.handler.callbacks().event(&event);
        }
        let camera = &self.shared.camera;
        if camera.ended_unreported.swap(false, Ordering::AcqRel) {
            let event = fc_event {
                camera_result: camera.result(),
                ..fc_event::new(fc_event_kind::CameraStopped)
            };
            self.handler.callbacks().event(&event);
        }
        self.publish(self.sender.is_connected());
    }

    fn publish(&self, connected: bool) {
        self.shared
            .publish(self.sender.stats(), connected, self.rejected);
    }
}
