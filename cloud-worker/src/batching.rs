//! Dynamic batching across streams, fair per stream, never blocking the producers.
//!
//! Each stream has a bounded queue of decoded frames. Pushing into a full queue drops that
//! stream's *oldest* frame (inference fell behind: the freshest picture is the useful one),
//! so ingest and decoding never wait on inference. The inference side takes a batch of up to
//! `max_batch` frames, waiting at most `max_wait` after the first frame is available for more
//! to arrive; it takes frames round-robin across streams, one per stream per round, starting
//! from a different stream each batch, so a busy camera cannot starve a quiet one.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Batching limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Most frames in one inference batch.
    pub max_batch: usize,
    /// Longest wait, after the first frame of a batch is available, for the batch to fill.
    pub max_wait: Duration,
    /// Frames kept per stream while waiting for inference; beyond this the oldest is dropped.
    pub queue_per_stream: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            max_batch: 4,
            max_wait: Duration::from_millis(5),
            queue_per_stream: 2,
        }
    }
}

/// Counters of one batcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatcherStats {
    /// Frames accepted.
    pub pushed: u64,
    /// Frames dropped because their stream's queue was full.
    pub dropped: u64,
    /// Batches handed out.
    pub batches: u64,
    /// Frames handed out in batches.
    pub batched: u64,
}

struct State<K, T> {
    queues: HashMap<K, VecDeque<T>>,
    /// Streams in round-robin order; rotated by one after every batch.
    order: VecDeque<K>,
    closed: bool,
    stats: BatcherStats,
}

/// A multi-producer batcher keyed by stream. Producers call [`Batcher::push`]; one or more
/// inference threads call [`Batcher::next_batch`].
pub struct Batcher<K, T> {
    config: BatcherConfig,
    state: Mutex<State<K, T>>,
    available: Condvar,
}

impl<K: Clone + Eq + Hash, T> Batcher<K, T> {
    /// A batcher with the given limits (`max_batch` and `queue_per_stream` at least 1).
    #[must_use]
    pub fn new(config: BatcherConfig) -> Self {
        let config = BatcherConfig {
            max_batch: config.max_batch.max(1),
            queue_per_stream: config.queue_per_stream.max(1),
            ..config
        };
        Self {
            config,
            state: Mutex::new(State {
                queues: HashMap::new(),
                order: VecDeque::new(),
                closed: false,
                stats: BatcherStats::default(),
            }),
            available: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K, T>> {
        // A panic while holding the lock leaves plain queues behind, still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame for `stream`. Returns the frame that was dropped to make room, if any
    /// (the stream's oldest), so the caller can count it. After [`Batcher::close`], the frame
    /// itself is handed back.
    pub fn push(&self, stream: K, item: T) -> Option<T> {
        let mut state = self.lock();
        if state.closed {
            return Some(item);
        }
        let limit = self.config.queue_per_stream;
        let mut dropped = None;
        if !state.queues.contains_key(&stream) {
            state.order.push_back(stream.clone());
        }
        let queue = state.queues.entry(stream).or_default();
        if queue.len() >= limit {
            dropped = queue.pop_front();
        }
        queue.push_back(item);
        state.stats.pushed += 1;
        if dropped.is_some() {
            state.stats.dropped += 1;
        }
        drop(state);
        self.available.notify_one();
        dropped
    }

    /// Forgets a stream and returns the frames it still had queued.
    pub fn remove_stream(&self, stream: &K) -> Vec<T> {
        let mut state = self.lock();
        state.order.retain(|k| k != stream);
        state
            .queues
            .remove(stream)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// Frames queued for `stream`.
    pub fn queued(&self, stream: &K) -> usize {
        self.lock().queues.get(stream).map_or(0, VecDeque::len)
    }

    /// Counters so far.
    pub fn stats(&self) -> BatcherStats {
        self.lock().stats
    }

    /// Stops accepting frames and wakes every waiting consumer. Frames already queued are
    /// still handed out, so in-flight work can finish.
    pub fn close(&self) {
        self.lock().closed = true;
        self.available.notify_all();
    }

    /// Fills `batch` (cleared first) with up to `max_batch` `(stream, frame)` pairs. Blocks
    /// until a frame is available; then waits at most `max_wait` for the batch to fill.
    /// Returns `false`, with `batch` empty, once the batcher is closed and drained.
    pub fn next_batch(&self, batch: &mut Vec<(K, T)>) -> bool {
        batch.clear();
        let mut state = self.lock();
        loop {
            let queued = total(&state);
            if queued > 0 {
                break;
            }
            if state.closed {
                return false;
            }
            state = self
                .available
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + self.config.max_wait;
        while total(&state) < self.config.max_batch && !state.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .available
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        take_round_robin(&mut state, self.config.max_batch, batch);
        state.stats.batches += 1;
        state.stats.batched += batch.len() as u64;
        true
    }
}

fn total<K, T>(state: &State<K, T>) -> usize {
    state.queues.values().map(VecDeque::len).sum()
}

fn take_round_robin<K: Clone + Eq + Hash, T>(
    state: &mut State<K, T>,
    max_batch: usize,
    batch: &mut Vec<(K, T)>,
) {
    while batch.len() < max_batch {
        let before = batch.len();
        for stream in &state.order {
            if batch.len() >= max_batch {
                break;
            }
            if let Some(item) = state.queues.get_mut(stream).and_then(VecDeque::pop_front) {
                batch.push((stream.clone(), item));
            }
        }
        if batch.len() == before {
            break;
        }
    }
    // The next batch starts with the stream after this one's first.
    state
        .order
        .rotate_left(usize::from(!state.order.is_empty()));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    fn batcher(max_batch: usize, queue: usize, wait_ms: u64) -> Batcher<&'static str, u32> {
        Batcher::new(BatcherConfig {
            max_batch,
            max_wait: Duration::from_millis(wait_ms),
            queue_per_stream: queue,
        })
    }

    #[test]
    fn full_queue_drops_the_oldest_frame() {
        let b = batcher(8, 2, 0);
        assert_eq!(b.push("a", 1), None);
        assert_eq!(b.push("a", 2), None);
        assert_eq!(b.push("a", 3), Some(1));
        let mut batch = Vec::new();
        assert!(b.next_batch(&mut batch));
        assert_eq!(batch, [("a", 2), ("a", 3)]);
        assert_eq!(b.stats().dropped, 1);
    }

    #[test]
    fn batches_take_one_frame_per_stream_per_round_and_rotate() {
        let b = batcher(3, 4, 0);
        for i in 0..4 {
            b.push("busy", i);
        }
        b.push("quiet", 100);
        let mut batch = Vec::new();
        assert!(b.next_batch(&mut batch));
        // Round one takes one of each; round two only "busy" has more.
        assert_eq!(batch, [("busy", 0), ("quiet", 100), ("busy", 1)]);
        b.push("quiet", 101);
        assert!(b.next_batch(&mut batch));
        // Rotated: "quiet" goes first this time.
        assert_eq!(batch, [("quiet", 101), ("busy", 2), ("busy", 3)]);
    }

    #[test]
    fn a_partial_batch_waits_at_most_max_wait() {
        let b = batcher(4, 4, 30);
        b.push("a", 1);
        let start = Instant::now();
        let mut batch = Vec::new();
        assert!(b.next_batch(&mut batch));
        let waited = start.elapsed();
        assert_eq!(batch, [("a", 1)]);
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn a_full_batch_returns_without_waiting() {
        let b = batcher(2, 4, 10_000);
        b.push("a", 1);
        b.push("b", 2);
        let start = Instant::now();
        let mut batch = Vec::new();
        assert!(b.next_batch(&mut batch));
        assert_eq!(batch.len(), 2);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn consumers_block_until_a_frame_and_stop_after_close_and_drain() {
        let b = Arc::new(batcher(4, 4, 0));
        let consumer = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut batch = Vec::new();
                while b.next_batch(&mut batch) {
                    seen.extend(batch.iter().map(|(_, v)| *v));
                }
                seen
            })
        };
        thread::sleep(Duration::from_millis(20));
        b.push("a", 7);
        b.push("b", 8);
        b.close();
        assert_eq!(b.push("a", 9), Some(9), "closed batchers hand frames back");
        let mut seen = consumer.join().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, [7, 8]);
    }

    #[test]
    fn removing_a_stream_returns_its_frames() {
        let b = batcher(4, 4, 0);
        b.push("a", 1);
        b.push("b", 2);
        assert_eq!(b.remove_stream(&"a"), [1]);
        let mut batch = Vec::new();
        assert!(b.next_batch(&mut batch));
        assert_eq!(batch, [("b", 2)]);
    }
}
