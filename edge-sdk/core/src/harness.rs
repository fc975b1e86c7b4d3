//! A deterministic in-memory harness that joins a [`Packetizer`] to a [`Depacketizer`]
//! through a simulated RFC 4571 byte stream, with a virtual clock and injected faults.
//!
//! Nothing here touches a socket or the real clock, so protocol tests run without sleeps and
//! replay exactly from a seed. Faults are decided per packet:
//! - **loss**: the packet never arrives;
//! - **duplication**: it arrives twice;
//! - **reordering**: it swaps places with the packet after it;
//! - **truncation**: the stream is cut part-way through its frame and the receiver's framing
//!   starts over, as after a reconnect (the rest of that packet is lost).
//!
//! Delivered bytes reach the deframer in reads of random size up to `max_read`, so a frame
//! split at any byte boundary is exercised too.

use std::collections::VecDeque;
use std::vec::Vec;

use crate::framing::{Deframer, MAX_FRAME_LEN};
use crate::h264::{
    DepacketizeError, Depacketizer, DepacketizerConfig, Event, Loss, PacketizeError, Packetizer,
    PacketizerConfig,
};

/// Fault probabilities (0.0–1.0 per packet) and link behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Probability a packet swaps places with the next one.
    pub reorder: f64,
    /// Probability the stream is cut inside a packet's frame.
    pub truncate: f64,
    /// One-way delay in microseconds of virtual time.
    pub delay_us: u64,
    /// Largest read the receiver makes, in bytes (1 delivers byte by byte).
    pub max_read: usize,
}

impl Default for LinkFaults {
    fn default() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            truncate: 0.0,
            delay_us: 0,
            max_read: 65536,
        }
    }
}

/// What came out of the receiving side, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A complete access unit.
    AccessUnit {
        /// Its RTP timestamp.
        rtp_timestamp: u32,
        /// Its Annex-B bytes.
        data: Vec<u8>,
        /// Whether it holds an IDR slice.
        keyframe: bool,
        /// Virtual time at which it was complete, in microseconds.
        at_us: u64,
    },
    /// An access unit reported as lost.
    Loss(Loss),
    /// A packet the depacketizer rejected.
    Rejected(DepacketizeError),
}

/// Counters of the faults actually injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Packets sent by the packetizer.
    pub packets: u64,
    /// Packets dropped.
    pub lost: u64,
    /// Packets duplicated.
    pub duplicated: u64,
    /// Packets reordered.
    pub reordered: u64,
    /// Frames cut.
    pub truncated: u64,
}

struct InFlight {
    deliver_at_us: u64,
    /// Framed bytes (length prefix included).
    bytes: Vec<u8>,
    /// Deliver only this many bytes, then restart framing.
    cut_at: Option<usize>,
}

/// A packetizer and a depacketizer joined by a simulated link.
pub struct Pair {
    packetizer: Packetizer,
    depacketizer: Depacketizer<Vec<u8>>,
    deframer: Box<Deframer<MAX_FRAME_LEN>>,
    faults: LinkFaults,
    rng: SplitMix64,
    now_us: u64,
    link: VecDeque<InFlight>,
    packet_buf: Vec<u8>,
    received: Vec<Received>,
    injected: InjectedFaults,
}

impl Pair {
    /// Joins a new packetizer and depacketizer. `seed` makes every fault decision repeatable.
    pub fn new(
        packetizer: PacketizerConfig,
        depacketizer: DepacketizerConfig,
        faults: LinkFaults,
        seed: u64,
    ) -> Result<Self, PacketizeError> {
        let packetizer = Packetizer::new(packetizer)?;
        // A TCP receiver sees the first packet of a connection whatever happens later, so it
        // knows where the stream starts; the harness tells it, since its link can drop that one.
        let depacketizer = DepacketizerConfig {
            initial_sequence: depacketizer
                .initial_sequence
                .or(Some(packetizer.next_sequence().0)),
            ..depacketizer
        };
        let buf_len = Depacketizer::<Vec<u8>>::buffer_len_for(depacketizer.max_access_unit_bytes);
        let packet_buf = vec![0; packetizer.max_packet_len() + 2];
        Ok(Self {
            packetizer,
            depacketizer: Depacketizer::new(vec![0; buf_len], depacketizer),
            deframer: Box::new(Deframer::new()),
            faults,
            rng: SplitMix64(seed),
            now_us: 0,
            link: VecDeque::new(),
            packet_buf,
            received: Vec::new(),
            injected: InjectedFaults::default(),
        })
    }

    /// Virtual time now, in microseconds.
    #[must_use]
    pub const fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Packetizes one access unit at the current virtual time and puts its packets on the link.
    pub fn send(&mut self, access_unit: &[u8], rtp_timestamp: u32) -> Result<(), PacketizeError> {
        let deliver_at_us = self.now_us + self.faults.delay_us;
        let mut packets = self.packetizer.packetize(access_unit, rtp_timestamp)?;
        while let Some(len) = packets.next_framed(&mut self.packet_buf)? {
            self.injected.packets += 1;
            let bytes = self.packet_buf[..len].to_vec();
            if self.rng.chance(self.faults.loss) {
                self.injected.lost += 1;
                continue;
            }
            let cut_at = if self.rng.chance(self.faults.truncate) {
                self.injected.truncated += 1;
                Some(self.rng.below(len as u64) as usize)
            } else {
                None
            };
            if self.rng.chance(self.faults.duplicate) {
                self.injected.duplicated += 1;
                self.link.push_back(InFlight {
                    deliver_at_us,
                    bytes: bytes.clone(),
                    cut_at: None,
                });
            }
            self.link.push_back(InFlight {
                deliver_at_us,
                bytes,
                cut_at,
            });
            if self.link.len() >= 2 && self.rng.chance(self.faults.reorder) {
                self.injected.reordered += 1;
                let n = self.link.len();
                self.link.swap(n - 1, n - 2);
            }
        }
        Ok(())
    }

    /// Moves virtual time forward and delivers everything due by then.
    pub fn advance(&mut self, micros: u64) {
        self.now_us += micros;
        while self
            .link
            .front()
            .is_some_and(|p| p.deliver_at_us <= self.now_us)
        {
            if let Some(packet) = self.link.pop_front() {
                self.deliver(&packet);
            }
        }
    }

    /// Delivers everything still on the link and ends the stream.
    pub fn finish(&mut self) {
        let last = self.link.back().map_or(self.now_us, |p| p.deliver_at_us);
        self.advance(last.saturating_sub(self.now_us));
        self.depacketizer.flush();
        self.drain();
    }

    /// Everything received so far, in order.
    #[must_use]
    pub fn received(&self) -> &[Received] {
        &self.received
    }

    /// Faults injected so far.
    #[must_use]
    pub const fn injected(&self) -> &InjectedFaults {
        &self.injected
    }

    /// The receiving depacketizer (for its counters and last SPS).
    #[must_use]
    pub const fn depacketizer(&self) -> &Depacketizer<Vec<u8>> {
        &self.depacketizer
    }

    fn deliver(&mut self, packet: &InFlight) {
        let bytes = match packet.cut_at {
            Some(cut) => &packet.bytes[..cut],
            None => &packet.bytes[..],
        };
        let mut offset = 0;
        while offset < bytes.len() {
            let read = 1 + self.rng.below(self.faults.max_read.max(1) as u64) as usize;
            let mut input = &bytes[offset..(offset + read).min(bytes.len())];
            offset += input.len();
            while !input.is_empty() {
                let (used, frame) = self.deframer.push(input);
                input = &input[used..];
                if let Ok(Some(rtp)) = frame {
                    let result = self.depacketizer.push(rtp);
                    if let Err(e) = result {
                        self.received.push(Received::Rejected(e));
                    }
                    self.drain();
                }
            }
        }
        if packet.cut_at.is_some() {
            self.deframer.reset();
        }
    }

    fn drain(&mut self) {
        while let Some(event) = self.depacketizer.poll_event() {
            self.received.push(match event {
                Event::AccessUnit(au) => Received::AccessUnit {
                    rtp_timestamp: au.rtp_timestamp,
                    data: au.data.to_vec(),
                    keyframe: au.keyframe,
                    at_us: self.now_us,
                },
                Event::Loss(loss) => Received::Loss(loss),
            });
        }
    }
}

/// SplitMix64: a small, fast, seedable generator; statistical quality is ample for faults.
#[derive(Clone, Copy, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}
