//! Capture times cross the C boundary as nanoseconds of `CLOCK_MONOTONIC`, the clock V4L2,
//! libargus and NVENC timestamps use; inside, the SDK uses [`Instant`], which on Linux reads
//! the same clock. A pair of readings taken once maps one onto the other exactly.

use std::time::{Duration, Instant};

/// `CLOCK_MONOTONIC` now, in nanoseconds.
#[must_use]
pub(crate) fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so
    // the call cannot fail (and on failure `ts` stays zero, which is still a valid answer).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Converts between `CLOCK_MONOTONIC` nanoseconds and [`Instant`]s.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MonotonicClock {
    instant: Instant,
    nanos: u64,
}

impl MonotonicClock {
    /// Reads both clocks once.
    pub(crate) fn new() -> Self {
        Self {
            instant: Instant::now(),
            nanos: monotonic_nanos(),
        }
    }

    /// The instant `nanos` stands for.
    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        if nanos >= self.nanos {
            self.instant + Duration::from_nanos(nanos - self.nanos)
        } else {
            let before = Duration::from_nanos(self.nanos - nanos);
            self.instant.checked_sub(before).unwrap_or(self.instant)
        }
    }

    /// `CLOCK_MONOTONIC` nanoseconds at `at`.
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.nanos.saturating_add(duration_nanos(after)),
            None => self
                .nanos
                .saturating_sub(duration_nanos(self.instant.duration_since(at))),
        }
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Microseconds, saturating at `u32::MAX` (71 minutes).
pub(crate) fn micros_u32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_and_instants_map_both_ways() {
        let clock = MonotonicClock::new();
        let now = monotonic_nanos();
        for nanos in [now, now - 5_000_000, now + 7_000_123] {
            assert_eq!(clock.nanos_at(clock.instant_at(nanos)), nanos);
        }
        // Instant::now() and CLOCK_MONOTONIC agree to within scheduling noise.
        let skew = clock.nanos_at(Instant::now()).abs_diff(monotonic_nanos());
        assert!(skew < 50_000_000, "{skew} ns apart");
    }
}
