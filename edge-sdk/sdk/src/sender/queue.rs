//! The bounded send queue: whole frames of RFC 4571-framed RTP packets waiting for the socket.
//!
//! Memory is reserved once; a frame that does not fit is refused whole (the packetizer is
//! rolled back, so the stream shows no sequence gap), never truncated. Bytes leave from the
//! front as the socket takes them; the queue knows where each packet and frame ends so RTCP can
//! be slipped in between packets and each frame's last byte can be timed.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use flowcloud_core::framing::FRAME_HEADER_LEN;
use flowcloud_core::h264::{PacketizeError, Packetizer};

/// A frame in the queue.
#[derive(Clone, Debug)]
pub(crate) struct QueuedFrame {
    /// Its framed bytes.
    pub(crate) len: usize,
    /// Its entry in the sender's frame timeline.
    pub(crate) record: u64,
    /// The packetizer as it was before this frame, to hand its sequence numbers out again if
    /// the frame is dropped before any of it is sent.
    packetizer_before: Packetizer,
}

/// Why a frame was not queued.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PushError {
    /// No room: the byte or frame limit would be exceeded.
    Full,
    /// The access unit cannot be packetized.
    Packetize(PacketizeError),
}

#[derive(Debug)]
pub(crate) struct SendQueue {
    bytes: VecDeque<u8>,
    byte_limit: usize,
    frames: VecDeque<QueuedFrame>,
    frame_limit: usize,
    /// Bytes of the front frame already written.
    front_written: usize,
    /// Bytes left of the packet being written; 0 at a packet boundary.
    packet_left: usize,
    /// One framed packet, written by the packetizer before it joins the queue.
    scratch: Vec<u8>,
    high_water: usize,
}

impl SendQueue {
    /// A queue of at most `byte_limit` bytes and `frame_limit` frames, for packets of at most
    /// `max_packet_len` bytes (before framing).
    pub(crate) fn new(byte_limit: usize, frame_limit: usize, max_packet_len: usize) -> Self {
        Self {
            bytes: VecDeque::with_capacity(byte_limit),
            byte_limit,
            frames: VecDeque::with_capacity(frame_limit),
            frame_limit,
            front_written: 0,
            packet_left: 0,
            scratch: vec![0; max_packet_len + FRAME_HEADER_LEN],
            high_water: 0,
        }
    }

    /// Queued bytes.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Queued frames (including one partly written).
    pub(crate) fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Most bytes ever queued at once.
    pub(crate) const fn high_water(&self) -> usize {
        self.high_water
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// True between packets, where another packet (RTCP) may be written.
    pub(crate) const fn at_packet_boundary(&self) -> bool {
        self.packet_left == 0
    }

    /// Packetizes `access_unit` and queues all of its packets, or none of them.
    pub(crate) fn push_frame(
        &mut self,
        packetizer: &mut Packetizer,
        access_unit: &[u8],
        rtp_timestamp: u32,
        record: u64,
    ) -> Result<(), PushError> {
        if self.frames.len() >= self.frame_limit {
            return Err(PushError::Full);
        }
        let start = self.bytes.len();
        let saved = packetizer.clone();
        let outcome = self.append_packets(packetizer, access_unit, rtp_timestamp);
        if let Err(e) = outcome {
            self.bytes.truncate(start);
            // The refused frame's sequence numbers are handed out again, so the receiver sees
            // no gap.
            *packetizer = saved;
            return Err(e);
        }
        self.frames.push_back(QueuedFrame {
            len: self.bytes.len() - start,
            record,
            packetizer_before: saved,
        });
        self.high_water = self.high_water.max(self.bytes.len());
        Ok(())
    }

    fn append_packets(
        &mut self,
        packetizer: &mut Packetizer,
        access_unit: &[u8],
        rtp_timestamp: u32,
    ) -> Result<(), PushError> {
        let mut packets = packetizer
            .packetize(access_unit, rtp_timestamp)
            .map_err(PushError::Packetize)?;
        while let Some(n) = packets
            .next_framed(&mut self.scratch)
            .map_err(PushError::Packetize)?
        {
            if self.bytes.len() + n > self.byte_limit {
                return Err(PushError::Full);
            }
            self.bytes.extend(&self.scratch[..n]);
        }
        Ok(())
    }

    /// Drops every frame not yet started (all but a partly written front frame) and rewinds
    /// `packetizer` to before the first of them, so the stream shows no sequence gap; returns
    /// how many were dropped.
    pub(crate) fn drop_unstarted(&mut self, packetizer: &mut Packetizer) -> usize {
        let keep = usize::from(self.front_written > 0 || self.packet_left > 0);
        let mut dropped = 0;
        while self.frames.len() > keep {
            if let Some(frame) = self.frames.pop_back() {
                self.bytes.truncate(self.bytes.len() - frame.len);
                *packetizer = frame.packetizer_before;
                dropped += 1;
            }
        }
        dropped
    }

    /// Empties the queue (the connection is gone); returns how many frames were dropped.
    pub(crate) fn clear(&mut self) -> usize {
        let dropped = self.frames.len();
        self.bytes.clear();
        self.frames.clear();
        self.front_written = 0;
        self.packet_left = 0;
        dropped
    }

    /// Writes queued bytes to `sink` until it would block or the queue is empty — or, with
    /// `finish_packet_only`, until the packet being written is complete. Calls `sent` for each
    /// frame whose last byte went out. Returns the bytes written; `WouldBlock` is not an error.
    pub(crate) fn write_to(
        &mut self,
        sink: &mut impl Write,
        finish_packet_only: bool,
        mut sent: impl FnMut(QueuedFrame),
    ) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let mut limit = self.bytes.len();
            if finish_packet_only {
                limit = limit.min(self.packet_left);
            }
            if limit == 0 {
                return Ok(total);
            }
            let (a, b) = self.bytes.as_slices();
            let a = &a[..a.len().min(limit)];
            let b = &b[..b.len().min(limit - a.len())];
            let written = match sink.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written, &mut sent);
            total += written;
        }
    }

    /// Accounts for `n` bytes written from the front.
    fn consume(&mut self, n: usize, sent: &mut impl FnMut(QueuedFrame)) {
        let mut offset = 0;
        while offset < n {
            if self.packet_left == 0 {
                let len = u16::from_be_bytes([self.bytes[offset], self.bytes[offset + 1]]);
                self.packet_left = FRAME_HEADER_LEN + usize::from(len);
            }
            let take = self.packet_left.min(n - offset);
            self.packet_left -= take;
            offset += take;
        }
        self.bytes.drain(..n);
        self.front_written += n;
        while let Some(frame) = self.frames.front() {
            if self.front_written < frame.len {
                break;
            }
            self.front_written -= frame.len;
            if let Some(frame) = self.frames.pop_front() {
                sent(frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowcloud_core::framing::Deframer;
    use flowcloud_core::h264::PacketizerConfig;
    use flowcloud_core::rtp::RtpPacket;

    /// A sink that takes at most `chunk` bytes per write and refuses after `capacity`.
    struct Throttled {
        out: Vec<u8>,
        chunk: usize,
        capacity: usize,
    }

    impl Write for Throttled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.capacity - self.out.len();
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.chunk).min(room);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn au(len: usize) -> Vec<u8> {
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend((0..len).map(|i| (i % 200 + 1) as u8));
        au
    }

    fn packetizer() -> Packetizer {
        Packetizer::new(PacketizerConfig {
            payload_budget: 100,
            initial_sequence: 65530,
            ..PacketizerConfig::default()
        })
        .unwrap()
    }

    fn sequences(bytes: &[u8]) -> Vec<u16> {
        let mut deframer = Deframer::<2048>::new();
        let mut rest = bytes;
        let mut seqs = Vec::new();
        while !rest.is_empty() {
            let (used, packet) = deframer.push(rest);
            if let Some(p) = packet.unwrap() {
                seqs.push(RtpPacket::parse(p).unwrap().sequence.0);
            }
            rest = &rest[used..];
        }
        seqs
    }

    #[test]
    fn a_frame_that_does_not_fit_is_refused_whole_without_a_sequence_gap() {
        let mut queue = SendQueue::new(1000, 8, 112);
        let mut p = packetizer();
        queue.push_frame(&mut p, &au(500), 0, 0).unwrap();
        let before = queue.len();
        assert!(matches!(
            queue.push_frame(&mut p, &au(600), 1, 1),
            Err(PushError::Full)
        ));
        assert_eq!(queue.len(), before);
        queue.push_frame(&mut p, &au(300), 2, 2).unwrap();
        let mut sink = Throttled {
            out: Vec::new(),
            chunk: 7,
            capacity: usize::MAX,
        };
        let mut done = Vec::new();
        queue
            .write_to(&mut sink, false, |f| done.push(f.record))
            .unwrap();
        assert_eq!(done, [0, 2]);
        let seqs = sequences(&sink.out);
        let expected: Vec<u16> = (0..seqs.len() as u16)
            .map(|i| 65530u16.wrapping_add(i))
            .collect();
        assert_eq!(seqs, expected);
        assert!(queue.is_empty());
    }

    #[test]
    fn frame_limit_and_byte_limit_bound_the_queue() {
        let mut queue = SendQueue::new(10_000, 2, 112);
        let mut p = packetizer();
        queue.push_frame(&mut p, &au(50), 0, 0).unwrap();
        queue.push_frame(&mut p, &au(50), 1, 1).unwrap();
        assert!(matches!(
            queue.push_frame(&mut p, &au(50), 2, 2),
            Err(PushError::Full)
        ));
        assert!(queue.high_water() <= 10_000);
        assert_eq!(queue.bytes.capacity(), queue.bytes.capacity().max(10_000));
    }

    #[test]
    fn finishing_a_packet_stops_at_the_boundary() {
        let mut queue = SendQueue::new(10_000, 8, 112);
        let mut p = packetizer();
        queue.push_frame(&mut p, &au(500), 0, 0).unwrap();
        let mut sink = Throttled {
            out: Vec::new(),
            chunk: 30,
            capacity: 30,
        };
        queue.write_to(&mut sink, false, |_| {}).unwrap();
        assert!(!queue.at_packet_boundary());
        sink.capacity = usize::MAX;
        queue.write_to(&mut sink, true, |_| {}).unwrap();
        assert!(queue.at_packet_boundary());
        // Exactly one whole framed packet went out.
        let len = usize::from(u16::from_be_bytes([sink.out[0], sink.out[1]]));
        assert_eq!(sink.out.len(), 2 + len);
    }

    #[test]
    fn dropping_unstarted_frames_keeps_the_one_in_flight() {
        let mut queue = SendQueue::new(10_000, 8, 112);
        let mut p = packetizer();
        for n in 0..4 {
            queue.push_frame(&mut p, &au(300), n, u64::from(n)).unwrap();
        }
        let mut sink = Throttled {
            out: Vec::new(),
            chunk: 50,
            capacity: 50,
        };
        queue.write_to(&mut sink, false, |_| {}).unwrap();
        assert_eq!(queue.drop_unstarted(&mut p), 3);
        // The next frame takes the sequence numbers the dropped ones had: no gap.
        queue.push_frame(&mut p, &au(300), 9, 9).unwrap();
        sink.capacity = usize::MAX;
        let mut done = Vec::new();
        queue
            .write_to(&mut sink, false, |f| done.push(f.record))
            .unwrap();
        assert_eq!(done, [0, 9]);
        assert!(queue.is_empty());
        assert_eq!(queue.drop_unstarted(&mut p), 0);
        let seqs = sequences(&sink.out);
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "{seqs:?}"
        );
    }
}
