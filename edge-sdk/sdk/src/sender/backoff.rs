//! Reconnect delays: exponential with "equal jitter" (half the step fixed, half random), so a
//! fleet of cameras that lost the same worker does not come back in lock step.

use std::time::Duration;

/// A small non-cryptographic generator (xorshift64*), enough to spread reconnects and pick
/// SSRCs and initial sequence numbers.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from the clock, the process id and a stack address, so two cameras started in
    /// the same instant still differ.
    pub(crate) fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let address = core::ptr::from_ref(&local) as u64;
        Self::seeded(nanos ^ u64::from(std::process::id()).rotate_left(32) ^ address)
    }

    pub(crate) fn seeded(seed: u64) -> Self {
        // splitmix64 spreads nearby seeds apart; zero is xorshift's fixed point.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, rng: Rng) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt: a step of `initial × 2^attempt` capped at `max`,
    /// of which a random half.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self
            .initial
            .checked_mul(1u32 << self.attempt.min(20))
            .unwrap_or(self.max)
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let jitter_ns = half.as_nanos() as u64;
        let random = if jitter_ns == 0 {
            0
        } else {
            self.rng.next_u64() % (jitter_ns + 1)
        };
        half + Duration::from_nanos(random)
    }

    /// The connection worked: start again from the initial delay.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_within_their_jitter_band() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1000), Rng::seeded(7));
        let steps = [100, 200, 400, 800, 1000, 1000, 1000];
        for step in steps {
            let d = backoff.next_delay();
            assert!(d >= ms(step / 2) && d <= ms(step), "{d:?} for step {step}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= ms(100));
    }

    #[test]
    fn jitter_spreads_cameras_apart() {
        let ms = Duration::from_millis;
        let delays: Vec<Duration> = (0..16)
            .map(|seed| Backoff::new(ms(1000), ms(1000), Rng::seeded(seed)).next_delay())
            .collect();
        let distinct = delays
            .iter()
            .filter(|d| delays.iter().filter(|e| e == d).count() == 1)
            .count();
        assert!(distinct >= 14, "{delays:?}");
    }
}
