//! What the sender remembers about recent frames, so a result coming back can be tied to its
//! frame and the time since capture split into its parts — all on this device's clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Where the time between capture and a result's arrival went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySplit {
    /// Capture → result arrival.
    pub total: Duration,
    /// Encoding, as the encoder measured it.
    pub encode: Duration,
    /// Submitted → last byte written to the socket (time in the send queue).
    pub send_queue: Duration,
    /// Decode + inference + post-processing, as the worker reported it (capped at the time
    /// since the frame's last byte left, so the parts never exceed the whole).
    pub worker: Duration,
    /// The rest of the time after the last byte left: the network both ways plus any waiting
    /// inside the worker (batching, queues).
    pub network: Duration,
}

#[derive(Clone, Copy, Debug)]
struct FrameRecord {
    id: u64,
    rtp_timestamp: u32,
    captured_at: Instant,
    encode_time: Duration,
    submitted_at: Instant,
    sent_at: Option<Instant>,
}

/// The last `capacity` frames queued for sending.
#[derive(Debug)]
pub(crate) struct FrameTimeline {
    records: VecDeque<FrameRecord>,
    capacity: usize,
    next_id: u64,
}

impl FrameTimeline {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            records: VecDeque::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
            next_id: 0,
        }
    }

    /// Records a frame as it enters the send queue; returns its id.
    pub(crate) fn push(
        &mut self,
        rtp_timestamp: u32,
        captured_at: Instant,
        encode_time: Duration,
        submitted_at: Instant,
    ) -> u64 {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.records.push_back(FrameRecord {
            id,
            rtp_timestamp,
            captured_at,
            encode_time,
            submitted_at,
            sent_at: None,
        });
        id
    }

    /// Takes back the newest record (the frame was not queued after all).
    pub(crate) fn forget(&mut self, id: u64) {
        if self.records.back().is_some_and(|r| r.id == id) {
            self.records.pop_back();
            self.next_id = id;
        }
    }

    /// The frame's last byte was written at `at`.
    pub(crate) fn mark_sent(&mut self, id: u64, at: Instant) {
        let Some(front) = self.records.front() else {
            return;
        };
        let Some(index) = id.checked_sub(front.id) else {
            return;
        };
        if let Some(record) = self.records.get_mut(index as usize) {
            record.sent_at = Some(at);
        }
    }

    /// The capture time and latency split of the newest sent frame with this RTP timestamp,
    /// for a result that arrived at `now` reporting `worker` processing time.
    pub(crate) fn result_arrived(
        &self,
        rtp_timestamp: u32,
        now: Instant,
        worker: Duration,
    ) -> Option<(Instant, LatencySplit)> {
        let record = self
            .records
            .iter()
            .rev()
            .find(|r| r.rtp_timestamp == rtp_timestamp && r.sent_at.is_some())?;
        let sent_at = record.sent_at?;
        let after_send = now.saturating_duration_since(sent_at);
        let worker = worker.min(after_send);
        Some((
            record.captured_at,
            LatencySplit {
                total: now.saturating_duration_since(record.captured_at),
                encode: record.encode_time,
                send_queue: sent_at.saturating_duration_since(record.submitted_at),
                worker,
                network: after_send.saturating_sub(worker),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_split_on_the_local_clock() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut timeline = FrameTimeline::new(4);
        let id = timeline.push(9000, t0, ms(5), t0 + ms(6));
        assert!(
            timeline.result_arrived(9000, t0 + ms(50), ms(10)).is_none(),
            "not sent yet"
        );
        timeline.mark_sent(id, t0 + ms(8));
        let (captured, split) = timeline.result_arrived(9000, t0 + ms(50), ms(10)).unwrap();
        assert_eq!(captured, t0);
        assert_eq!(
            split,
            LatencySplit {
                total: ms(50),
                encode: ms(5),
                send_queue: ms(2),
                worker: ms(10),
                network: ms(32),
            }
        );
        assert!(timeline.result_arrived(1234, t0 + ms(50), ms(1)).is_none());
    }

    #[test]
    fn only_the_last_frames_are_remembered() {
        let t0 = Instant::now();
        let mut timeline = FrameTimeline::new(2);
        for ts in 0..3u32 {
            let id = timeline.push(ts, t0, Duration::ZERO, t0);
            timeline.mark_sent(id, t0);
        }
        assert!(timeline.result_arrived(0, t0, Duration::ZERO).is_none());
        assert!(timeline.result_arrived(2, t0, Duration::ZERO).is_some());
        assert_eq!(
            timeline.records.capacity(),
            timeline.records.capacity().max(2)
        );
    }
}
