//! `fc_sender_stats`: the sender's counters as the I/O thread last published them, plus the
//! hand-off's and the camera's, and latency percentiles computed on the caller's stack.

use std::sync::atomic::Ordering;

use crate::clock::micros_u32;
use crate::result::fc_result;
use crate::shared::{LATENCY_WINDOW, Shared};

/// A sender's counters since `fc_sender_new`. Filled by `fc_sender_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fc_stats {
    /// Frames taken by `fc_sender_push_au` (returned `FC_RESULT_OK`) or produced by the
    /// camera.
    pub frames_pushed: u64,
    /// Frames that reached the sender on the I/O thread.
    pub frames_submitted: u64,
    /// Frames whose last byte was written to the socket.
    pub frames_sent: u64,
    /// Every dropped frame: the sum of the `dropped_*` counters.
    pub frames_dropped: u64,
    /// Not taken by the hand-off (`FC_RESULT_DROPPED`, or the camera found no free slot).
    pub dropped_handoff: u64,
    /// Dropped because no connection was up.
    pub dropped_not_connected: u64,
    /// Dropped while waiting for an IDR after a loss or on a new connection.
    pub dropped_waiting_for_keyframe: u64,
    /// Dropped because the send queue was full (the network cannot keep up).
    pub dropped_queue_full: u64,
    /// Queued frames lost with a connection.
    pub dropped_disconnected: u64,
    /// Frames the sender refused as malformed on the I/O thread (pushed frames are checked
    /// before they are taken, so only an encoder can cause this).
    pub frames_rejected: u64,
    /// Bytes written to the socket (media and RTCP).
    pub bytes_sent: u64,
    /// Results received from the worker.
    pub results: u64,
    /// Results for frames no longer (or never) in the timeline.
    pub unmatched_results: u64,
    /// PLIs received.
    pub plis: u64,
    /// Keyframe requests raised, all causes.
    pub keyframe_requests: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Established connections lost.
    pub disconnects: u64,
    /// Packets from the worker that could not be parsed.
    pub bad_packets: u64,
    /// Frames the camera captured and encoded (camera mode); a frame dropped because every
    /// handoff slot was taken is counted in `dropped_handoff` instead.
    pub camera_frames: u64,
    /// Bytes in the send queue now.
    pub queue_bytes: usize,
    /// Frames in the send queue now.
    pub queue_frames: usize,
    /// Most bytes ever in the send queue.
    pub queue_high_water: usize,
    /// The latest round-trip time from the worker's receiver reports, µs (0 until
    /// `rtt_valid`).
    pub rtt_us: u32,
    /// Matched results in the latency window (at most 1024, the latest).
    pub latency_samples: u32,
    /// Median capture → result latency over the window, µs (0 without samples).
    pub latency_p50_us: u32,
    /// 99th percentile of the same, µs.
    pub latency_p99_us: u32,
    /// Largest in the window, µs.
    pub latency_max_us: u32,
    /// `FC_RESULT_OK`, or the error the camera stopped with.
    pub camera_result: fc_result,
    /// `FC_RESULT_OK`, or why the I/O thread ended early (`FC_RESULT_IO`, `FC_RESULT_PANIC`).
    pub io_result: fc_result,
    /// A connection is up now.
    pub connected: bool,
    /// `rtt_us` holds a measurement.
    pub rtt_valid: bool,
    /// The SDK's camera is running.
    pub camera_running: bool,
}

/// The `p`-quantile of sorted samples (nearest rank on `(n - 1) · p`, as the CLI reports).
fn percentile(sorted: &[u32], p: f64) -> u32 {
    match sorted.len() {
        0 => 0,
        n => sorted[(((n - 1) as f64 * p).round() as usize).min(n - 1)],
    }
}

/// Gathers the stats. Does not allocate: the window is sorted in a stack copy.
pub(crate) fn collect(shared: &Shared) -> fc_stats {
    let mut window = [0u32; LATENCY_WINDOW];
    let (s, connected, rejected, samples) = {
        let published = shared.published();
        let latencies = published.latencies();
        window[..latencies.len()].copy_from_slice(latencies);
        (
            published.stats,
            published.connected,
            published.rejected,
            latencies.len(),
        )
    };
    let sorted = &mut window[..samples];
    sorted.sort_unstable();
    let dropped_handoff = shared.handoff.dropped();
    let camera = &shared.camera;
    fc_stats {
        frames_pushed: shared.frames_pushed.load(Ordering::Relaxed),
        frames_submitted: s.frames_submitted,
        frames_sent: s.frames_sent,
        frames_dropped: s.frames_dropped() + dropped_handoff,
        dropped_handoff,
        dropped_not_connected: s.dropped_not_connected,
        dropped_waiting_for_keyframe: s.dropped_waiting_for_keyframe,
        dropped_queue_full: s.dropped_queue_full,
        dropped_disconnected: s.dropped_disconnected,
        frames_rejected: rejected,
        bytes_sent: s.bytes_sent,
        results: s.results,
        unmatched_results: s.unmatched_results,
        plis: s.plis,
        keyframe_requests: s.keyframe_requests + shared.handoff_keyframe_requests(),
        connects: s.connects,
        reconnects: s.connects.saturating_sub(1),
        connect_failures: s.connect_failures,
        disconnects: s.disconnects,
        bad_packets: s.bad_packets,
        camera_frames: camera.frames.load(Ordering::Relaxed),
        queue_bytes: s.queue_bytes,
        queue_frames: s.queue_frames,
        queue_high_water: s.queue_high_water,
        rtt_us: s.rtt.map_or(0, micros_u32),
        latency_samples: samples as u32,
        latency_p50_us: percentile(sorted, 0.5),
        latency_p99_us: percentile(sorted, 0.99),
        latency_max_us: sorted.last().copied().unwrap_or(0),
        camera_result: camera.result(),
        io_result: shared.check_io().err().unwrap_or(fc_result::Ok),
        connected,
        rtt_valid: s.rtt.is_some(),
        camera_running: camera.running.load(Ordering::Acquire),
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.99), 7);
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.5), 51);
        assert_eq!(percentile(&samples, 0.99), 99);
    }
}
