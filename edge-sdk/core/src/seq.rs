//! RTP sequence-number arithmetic. Sequence numbers are 16 bits and wrap; "newer" is decided
//! by the signed distance, as RFC 3550 §A.1 does, so a wrap from 65535 to 0 is not loss.

/// An RTP sequence number, compared with wrap-around.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u16);

impl SeqNum {
    /// The next sequence number (wrapping).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }

    /// Signed distance from `earlier` to `self`: positive when `self` is newer.
    /// Distances of exactly 32768 are reported as negative (older), which keeps the
    /// ordering antisymmetric.
    #[must_use]
    pub const fn distance_from(self, earlier: Self) -> i32 {
        self.0.wrapping_sub(earlier.0) as i16 as i32
    }

    /// Whether `self` comes strictly after `other` in wrap-around order.
    #[must_use]
    pub const fn is_newer_than(self, other: Self) -> bool {
        self.distance_from(other) > 0
    }
}

/// Extends 16-bit sequence numbers to a monotonic 64-bit count by tracking wrap-arounds
/// (the "cycles" of RFC 3550 §A.1). Used for the extended highest sequence number in
/// receiver reports and for loss counting.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqExtender {
    highest: Option<u64>,
}

impl SeqExtender {
    /// A new extender that has seen no packet.
    #[must_use]
    pub const fn new() -> Self {
        Self { highest: None }
    }

    /// Extends `seq` relative to the highest number seen so far, and records it if newer.
    pub fn extend(&mut self, seq: SeqNum) -> u64 {
        let Some(highest) = self.highest else {
            // Start one full cycle up so that slightly older packets can still be extended.
            let first = (1u64 << 16) | u64::from(seq.0);
            self.highest = Some(first);
            return first;
        };
        let distance = seq.distance_from(SeqNum(highest as u16));
        let extended = highest.wrapping_add_signed(i64::from(distance));
        if distance > 0 {
            self.highest = Some(extended);
        }
        extended
    }

    /// The highest extended sequence number seen, if any.
    #[must_use]
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_is_newer_not_older() {
        assert!(SeqNum(0).is_newer_than(SeqNum(65535)));
        assert!(!SeqNum(65535).is_newer_than(SeqNum(0)));
        assert_eq!(SeqNum(2).distance_from(SeqNum(65534)), 4);
        assert_eq!(SeqNum(65534).distance_from(SeqNum(2)), -4);
        assert_eq!(SeqNum(65535).next(), SeqNum(0));
    }

    #[test]
    fn extender_counts_cycles() {
        let mut ext = SeqExtender::new();
        let base = ext.extend(SeqNum(65534));
        assert_eq!(ext.extend(SeqNum(65535)), base + 1);
        assert_eq!(ext.extend(SeqNum(0)), base + 2);
        assert_eq!(ext.extend(SeqNum(1)), base + 3);
        // A late packet from before the wrap extends backwards and does not move `highest`.
        assert_eq!(ext.extend(SeqNum(65535)), base + 1);
        assert_eq!(ext.highest(), Some(base + 3));
    }
}
