//! Per-stream recovery policy: drop what cannot be decoded, ask for a keyframe, resume at it.
//!
//! A stream's decoder can only start, or restart, at an IDR picture: after stream start, after
//! an access unit was lost (later P-frames reference it), and after a decoder error (the
//! decoder is reset and has no reference pictures or parameter sets). [`KeyframeGate`] tracks
//! that state, drops access units while waiting, and tells the caller when to send an RTCP PLI
//! (DESIGN.md, "Wire protocol": keyframe request). It is sans-IO: time comes in as `now`.
//!
//! ```text
//!             on_loss / on_decode_error
//!   Running ─────────────────────────────► Waiting ── admit(non-IDR) → Drop
//!      ▲                                     │  └──── poll_pli → true at once, then every
//!      └──────── admit(IDR) → Decode ◄───────┘        pli_interval while still waiting
//! ```
//!
//! A new gate starts in Waiting (stream start).

use std::time::{Duration, Instant};

use super::contains_idr;

/// Settings of a [`KeyframeGate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyframeGateConfig {
    /// Least time between two PLIs while the gate keeps waiting for an IDR (the first PLI of
    /// each wait is sent at once).
    pub pli_interval: Duration,
}

impl Default for KeyframeGateConfig {
    /// `pli_interval` 500 ms.
    fn default() -> Self {
        Self {
            pli_interval: Duration::from_millis(500),
        }
    }
}

/// What to do with an access unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Hand it to the decoder.
    Decode,
    /// Drop it: the gate is waiting for an IDR and this is not one.
    Drop,
}

/// Counters since the gate was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyframeGateStats {
    /// Access units dropped while waiting for an IDR.
    pub dropped_while_waiting: u64,
    /// PLIs [`KeyframeGate::poll_pli`] asked for.
    pub plis_requested: u64,
    /// Decoder errors reported ([`KeyframeGate::on_decode_error`]), each one a decoder reset.
    pub resets: u64,
    /// Losses reported ([`KeyframeGate::on_loss`]).
    pub losses: u64,
}

/// The keyframe gate of one stream. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct KeyframeGate {
    config: KeyframeGateConfig,
    /// When the current wait began; `None` while running.
    waiting_since: Option<Instant>,
    /// When the last PLI of the current wait was requested; `None` if none yet.
    last_pli: Option<Instant>,
    /// How long the last completed wait lasted (first need to admitted IDR).
    last_wait: Option<Duration>,
    stats: KeyframeGateStats,
}

impl KeyframeGate {
    /// A gate for a stream that starts now: it waits for the first IDR and wants a PLI at
    /// once (a sender that already opens with an IDR makes that PLI harmless).
    #[must_use]
    pub const fn new(config: KeyframeGateConfig, now: Instant) -> Self {
        Self {
            config,
            waiting_since: Some(now),
            last_pli: None,
            last_wait: None,
            stats: KeyframeGateStats {
                dropped_while_waiting: 0,
                plis_requested: 0,
                resets: 0,
                losses: 0,
            },
        }
    }

    /// An access unit was lost (the depacketizer reported a loss or a sequence gap): the
    /// references of what follows may be missing, so wait for an IDR.
    pub fn on_loss(&mut self, now: Instant) {
        self.stats.losses += 1;
        self.start_waiting(now);
    }

    /// The decoder failed on an access unit. The caller resets its decoder
    /// ([`Decoder::reset`](super::Decoder::reset)); the gate waits for an IDR.
    pub fn on_decode_error(&mut self, now: Instant) {
        self.stats.resets += 1;
        self.start_waiting(now);
    }

    fn start_waiting(&mut self, now: Instant) {
        // Already waiting: keep the wait's start and its PLI timer, so a burst of losses
        // neither restarts the clock nor sends a burst of PLIs.
        if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
            self.last_pli = None;
        }
    }

    /// Decides about one access unit (Annex-B). While waiting, only an IDR access unit (one
    /// with a NAL unit of type 5, or `keyframe` set by the depacketizer, which found one)
    /// passes, and it ends the wait; everything else is dropped and counted. While running,
    /// everything passes.
    pub fn admit(&mut self, access_unit: &[u8], keyframe: bool, now: Instant) -> Admit {
        let Some(since) = self.waiting_since else {
            return Admit::Decode;
        };
        if keyframe || contains_idr(access_unit) {
            self.waiting_since = None;
            self.last_pli = None;
            self.last_wait = Some(now.saturating_duration_since(since));
            Admit::Decode
        } else {
            self.stats.dropped_while_waiting += 1;
            Admit::Drop
        }
    }

    /// Whether a PLI should be sent now: true at once when a wait begins, then at most once
    /// per [`KeyframeGateConfig::pli_interval`] while still waiting, never while running.
    /// Each `true` is counted as requested.
    pub fn poll_pli(&mut self, now: Instant) -> bool {
        match self.next_pli_at() {
            Some(due) if now >= due => {
                self.last_pli = Some(now);
                self.stats.plis_requested += 1;
                true
            }
            _ => false,
        }
    }

    /// When [`poll_pli`](Self::poll_pli) will next return true (possibly in the past, meaning
    /// now), for the caller's timer; `None` while running.
    #[must_use]
    pub fn next_pli_at(&self) -> Option<Instant> {
        let since = self.waiting_since?;
        Some(match self.last_pli {
            None => since,
            Some(last) => last.checked_add(self.config.pli_interval).unwrap_or(last),
        })
    }

    /// Whether the gate is waiting for an IDR.
    #[must_use]
    pub const fn is_waiting(&self) -> bool {
        self.waiting_since.is_some()
    }

    /// When the current wait began, if waiting.
    #[must_use]
    pub const fn waiting_since(&self) -> Option<Instant> {
        self.waiting_since
    }

    /// How long the last completed wait lasted, from the need to the admitted IDR.
    #[must_use]
    pub const fn last_wait(&self) -> Option<Duration> {
        self.last_wait
    }

    /// Counters since creation.
    #[must_use]
    pub const fn stats(&self) -> KeyframeGateStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const IDR_AU: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
    ];
    const P_AU: &[u8] = &[0, 0, 0, 1, 0x41, 0x9a];

    /// A virtual clock: `t(ms)` is `ms` milliseconds after an arbitrary origin.
    struct Clock(Instant);
    impl Clock {
        fn t(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn gate() -> (KeyframeGate, Clock) {
        let clock = Clock(Instant::now());
        (
            KeyframeGate::new(KeyframeGateConfig::default(), clock.t(0)),
            clock,
        )
    }

    #[test]
    fn starts_waiting_and_asks_for_a_keyframe_at_once() {
        let (mut g, c) = gate();
        assert!(g.is_waiting());
        assert_eq!(g.waiting_since(), Some(c.t(0)));
        assert_eq!(g.next_pli_at(), Some(c.t(0)));
        assert!(g.poll_pli(c.t(0)));
        assert!(!g.poll_pli(c.t(0)), "once per interval");
        assert_eq!(g.stats().plis_requested, 1);
    }

    #[test]
    fn drops_until_idr_then_decodes_everything() {
        let (mut g, c) = gate();
        assert_eq!(g.admit(P_AU, false, c.t(10)), Admit::Drop);
        assert_eq!(g.admit(P_AU, false, c.t(20)), Admit::Drop);
        assert_eq!(g.stats().dropped_while_waiting, 2);
        assert_eq!(g.admit(IDR_AU, false, c.t(30)), Admit::Decode);
        assert!(!g.is_waiting());
        assert_eq!(g.last_wait(), Some(30 * MS));
        assert_eq!(g.admit(P_AU, false, c.t(40)), Admit::Decode);
        assert_eq!(g.stats().dropped_while_waiting, 2);
        assert!(!g.poll_pli(c.t(10_000)), "never while running");
        assert_eq!(g.next_pli_at(), None);
    }

    #[test]
    fn keyframe_flag_alone_ends_the_wait() {
        let (mut g, c) = gate();
        assert_eq!(g.admit(P_AU, true, c.t(5)), Admit::Decode);
        assert!(!g.is_waiting());
    }

    #[test]
    fn malformed_access_unit_is_not_an_idr() {
        let (mut g, c) = gate();
        assert_eq!(g.admit(&[0x65, 0x88], false, c.t(5)), Admit::Drop);
        assert_eq!(g.admit(&[], false, c.t(6)), Admit::Drop);
        assert!(g.is_waiting());
    }

    #[test]
    fn pli_repeats_at_the_interval_while_waiting() {
        let (mut g, c) = gate();
        assert!(g.poll_pli(c.t(0)));
        assert!(!g.poll_pli(c.t(1)));
        assert!(!g.poll_pli(c.t(499)));
        assert_eq!(g.next_pli_at(), Some(c.t(500)));
        assert!(g.poll_pli(c.t(500)));
        // A late poll counts the interval from when the PLI was actually requested.
        assert!(g.poll_pli(c.t(1_200)));
        assert!(!g.poll_pli(c.t(1_699)));
        assert!(g.poll_pli(c.t(1_700)));
        assert_eq!(g.stats().plis_requested, 4);
        g.admit(IDR_AU, true, c.t(1_750));
        assert!(!g.poll_pli(c.t(2_200)));
        assert_eq!(g.stats().plis_requested, 4);
    }

    #[test]
    fn loss_starts_a_new_wait_with_an_immediate_pli() {
        let (mut g, c) = gate();
        assert!(g.poll_pli(c.t(0)));
        g.admit(IDR_AU, true, c.t(100));
        g.on_loss(c.t(200));
        assert!(g.is_waiting());
        assert_eq!(g.waiting_since(), Some(c.t(200)));
        assert_eq!(g.stats().losses, 1);
        // Less than pli_interval after the previous PLI, but a new need: at once.
        assert!(g.poll_pli(c.t(200)));
        assert_eq!(g.admit(P_AU, false, c.t(233)), Admit::Drop);
        assert_eq!(g.admit(IDR_AU, false, c.t(300)), Admit::Decode);
        assert_eq!(g.last_wait(), Some(100 * MS));
        assert_eq!(g.stats().plis_requested, 2);
        assert_eq!(g.stats().resets, 0);
    }

    #[test]
    fn more_losses_while_waiting_neither_restart_the_wait_nor_the_pli_timer() {
        let (mut g, c) = gate();
        g.admit(IDR_AU, true, c.t(0));
        g.on_loss(c.t(100));
        assert!(g.poll_pli(c.t(100)));
        g.on_loss(c.t(150));
        g.on_decode_error(c.t(160));
        assert_eq!(g.waiting_since(), Some(c.t(100)));
        assert!(!g.poll_pli(c.t(150)));
        assert!(!g.poll_pli(c.t(599)));
        assert!(g.poll_pli(c.t(600)));
        let s = g.stats();
        assert_eq!((s.losses, s.resets, s.plis_requested), (2, 1, 2));
    }

    #[test]
    fn decode_error_counts_a_reset_and_waits() {
        let (mut g, c) = gate();
        assert_eq!(g.admit(IDR_AU, false, c.t(0)), Admit::Decode);
        // The IDR itself failed to decode (e.g. it lacked parameter sets after a reset).
        g.on_decode_error(c.t(1));
        assert!(g.is_waiting());
        assert_eq!(g.stats().resets, 1);
        assert!(g.poll_pli(c.t(1)));
        assert_eq!(g.admit(P_AU, false, c.t(34)), Admit::Drop);
        assert!(!g.poll_pli(c.t(34)));
        assert_eq!(g.admit(IDR_AU, false, c.t(67)), Admit::Decode);
        assert_eq!(g.stats().dropped_while_waiting, 1);
    }

    #[test]
    fn custom_interval_and_clock_going_backwards() {
        let c = Clock(Instant::now());
        let config = KeyframeGateConfig {
            pli_interval: 100 * MS,
        };
        let mut g = KeyframeGate::new(config, c.t(1_000));
        // A `now` before the wait began (callers mixing clocks) must not panic or fire early.
        assert!(!g.poll_pli(c.t(999)));
        assert!(g.poll_pli(c.t(1_000)));
        assert!(!g.poll_pli(c.t(1_099)));
        assert!(g.poll_pli(c.t(1_100)));
        assert_eq!(g.admit(IDR_AU, false, c.t(900)), Admit::Decode);
        assert_eq!(g.last_wait(), Some(Duration::ZERO));
    }
}
