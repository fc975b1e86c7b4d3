//! Frames on their way from the producer (`fc_sender_push_au`'s caller, or the SDK's camera
//! thread) to the I/O thread that owns the [`Sender`](edge::sender::Sender).
//!
//! A fixed set of buffers, each reserved at start-up with room for the largest access unit,
//! moves between a free list and a ready queue, so handing a frame over never allocates: the
//! producer takes a free buffer, fills it (a copy, or the encoder's output written in place),
//! and queues it; the I/O thread submits it to the sender and returns the buffer.
//!
//! When no buffer is free the frame is dropped, and so is every following frame until a
//! keyframe — the sender's own rule, applied one step earlier, so no P-frame whose reference
//! was dropped reaches the wire.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A filled buffer waiting for the I/O thread.
#[derive(Debug)]
pub(crate) struct Ready {
    /// The Annex-B access unit (the buffer's whole length).
    pub(crate) access_unit: Vec<u8>,
    pub(crate) captured_at: Instant,
    pub(crate) encode_time: Duration,
}

/// Why a frame was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Dropped; `request_keyframe`: this drop starts (or extends for lack of room) a run of
    /// drops, so the encoder should make an IDR.
    Dropped { request_keyframe: bool },
    /// The sender is shutting down.
    Closed,
}

#[derive(Debug)]
struct Slots {
    free: Vec<Vec<u8>>,
    ready: VecDeque<Ready>,
    waiting_for_keyframe: bool,
    dropped: u64,
    closed: bool,
}

/// The hand-off between one producer and the I/O thread.
#[derive(Debug)]
pub(crate) struct Handoff {
    slots: Mutex<Slots>,
}

impl Handoff {
    /// `slots` buffers of `capacity` bytes each, reserved now.
    pub(crate) fn new(slots: usize, capacity: usize) -> Self {
        Self {
            slots: Mutex::new(Slots {
                free: (0..slots).map(|_| Vec::with_capacity(capacity)).collect(),
                ready: VecDeque::with_capacity(slots),
                waiting_for_keyframe: false,
                dropped: 0,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic elsewhere cannot leave `Slots` inconsistent (every update is one statement
        // on plain data), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty buffer for the next frame. `keyframe` is known for a pushed access unit
    /// (a non-keyframe is refused at once while waiting for a keyframe) and unknown (`None`)
    /// before the camera encodes.
    pub(crate) fn acquire(&self, keyframe: Option<bool>) -> Result<Vec<u8>, Refused> {
        let mut slots = self.lock();
        if slots.closed {
            return Err(Refused::Closed);
        }
        if slots.waiting_for_keyframe && keyframe == Some(false) {
            slots.dropped += 1;
            return Err(Refused::Dropped {
                request_keyframe: false,
            });
        }
        match slots.free.pop() {
            Some(mut buf) => {
                buf.clear();
                Ok(buf)
            }
            None => {
                slots.dropped += 1;
                slots.waiting_for_keyframe = true;
                Err(Refused::Dropped {
                    request_keyframe: true,
                })
            }
        }
    }

    /// Queues a filled buffer for the I/O thread. A non-keyframe while waiting for a keyframe
    /// is dropped (its buffer goes back to the free list), and so is anything after `close`.
    pub(crate) fn publish(&self, ready: Ready, keyframe: bool) -> Result<(), Refused> {
        let mut slots = self.lock();
        if slots.closed {
            slots.free.push(ready.access_unit);
            return Err(Refused::Closed);
        }
        if slots.waiting_for_keyframe && !keyframe {
            slots.dropped += 1;
            slots.free.push(ready.access_unit);
            return Err(Refused::Dropped {
                request_keyframe: false,
            });
        }
        slots.waiting_for_keyframe = false;
        // Cannot grow: there are as many buffers as the queue has room for.
        slots.ready.push_back(ready);
        Ok(())
    }

    /// Returns an unused or submitted buffer to the free list.
    pub(crate) fn release(&self, buf: Vec<u8>) {
        self.lock().free.push(buf);
    }

    /// The oldest queued frame, for the I/O thread.
    pub(crate) fn take(&self) -> Option<Ready> {
        self.lock().ready.pop_front()
    }

    /// Refuses every later frame; frames already queued can still be taken.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// Frames dropped here.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(buf: Vec<u8>) -> Ready {
        Ready {
            access_unit: buf,
            captured_at: Instant::now(),
            encode_time: Duration::ZERO,
        }
    }

    #[test]
    fn full_hand_off_drops_until_a_keyframe() {
        let handoff = Handoff::new(2, 16);
        let a = handoff.acquire(Some(true)).unwrap();
        assert_eq!(a.capacity(), 16);
        handoff.publish(ready(a), true).unwrap();
        let b = handoff.acquire(Some(false)).unwrap();
        handoff.publish(ready(b), false).unwrap();
        // Both buffers are queued: the next frame is dropped and a keyframe requested.
        assert_eq!(
            handoff.acquire(Some(false)),
            Err(Refused::Dropped {
                request_keyframe: true
            })
        );
        let first = handoff.take().unwrap();
        handoff.release(first.access_unit);
        // Room again, but a P-frame would refer to the dropped one.
        assert_eq!(
            handoff.acquire(Some(false)),
            Err(Refused::Dropped {
                request_keyframe: false
            })
        );
        // The camera learns the frame type only after encoding into the buffer.
        let c = handoff.acquire(None).unwrap();
        assert!(handoff.publish(ready(c), false).is_err());
        let d = handoff.acquire(Some(true)).unwrap();
        handoff.publish(ready(d), true).unwrap();
        let b = handoff.take().unwrap();
        handoff.release(b.access_unit);
        let e = handoff.acquire(Some(false)).unwrap();
        handoff.release(e);
        assert_eq!(handoff.dropped(), 3);
        handoff.close();
        assert_eq!(handoff.acquire(Some(true)), Err(Refused::Closed));
        assert!(handoff.take().is_some(), "queued frames survive close");
    }
}
