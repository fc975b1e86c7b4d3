//! One camera connection's protocol state, sans-IO: bytes in, events out; RTCP replies
//! written into caller buffers. The tokio task in [`super::server`] only moves bytes.
//!
//! The handshake (DESIGN.md "Device identity"): our edge opens with an RTCP compound holding a
//! sender report and an SDES CNAME for the same SSRC; media is then accepted from that SSRC only.
//!
//! Standard senders (a GStreamer `rtph264pay ! rtpstreampay` pipeline) send RTP first and RTCP
//! late or never. When [`SessionConfig::accept_rtp_first`] allows it, the first RTP packet locks
//! the session onto its SSRC ([`SessionEvent::MediaFirst`]) and a CNAME for that SSRC arriving
//! later is reported once ([`SessionEvent::CnameLearned`]). Otherwise a connection that opens
//! with anything but the handshake is rejected with a typed error.

use std::time::Instant;

use flowcloud_core::framing::{Deframer, FRAME_HEADER_LEN, FramingError, MAX_FRAME_LEN};
use flowcloud_core::h264::{
    AccessUnit, DepacketizeError, Depacketizer, DepacketizerConfig, Event, Loss,
};
use flowcloud_core::results::{ResultError, SegmentationResult};
use flowcloud_core::rtcp::{
    self, NtpTimestamp, Pli, ReceiverReport, ReportBlock, ReportBlocks, RtcpError, RtcpPacket,
};
use flowcloud_core::seq::{SeqExtender, SeqNum};

/// Longest CNAME accepted (the SDES item length is one byte).
const MAX_CNAME_LEN: usize = 255;

/// Session settings.
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    /// Our SSRC, used as the sender of RR, PLI and results.
    pub worker_ssrc: u32,
    /// Depacketizer limits (access unit size, SPS dimensions).
    pub depacketizer: DepacketizerConfig,
    /// Accept a stream whose RTP arrives before (or without) the SR + SDES CNAME handshake.
    pub accept_rtp_first: bool,
}

/// Why a connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The first packet was not an RTCP compound with SR and SDES CNAME.
    #[error("handshake: expected RTCP SR + SDES CNAME first, got {got}")]
    HandshakeExpected {
        /// What arrived instead.
        got: &'static str,
    },
    /// The handshake's SR and SDES name different sources, or the CNAME is unusable.
    #[error("handshake: {reason}")]
    HandshakeInvalid {
        /// What is wrong.
        reason: &'static str,
    },
    /// The handshake compound does not parse.
    #[error("handshake: malformed RTCP: {0}")]
    HandshakeRtcp(RtcpError),
    /// RTP arrived before the handshake from a sender that may not stream anonymously.
    #[error(
        "RTP arrived before RTCP SR + SDES CNAME, and anonymous senders are not accepted from \
         this peer (see [senders] anonymous)"
    )]
    AnonymousRefused,
    /// RFC 4571 framing failed (cannot happen with a 64 KiB deframer, kept for safety).
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
}

/// What a chunk of bytes produced, in order.
#[derive(Debug)]
pub enum SessionEvent<'a> {
    /// RTP arrived first and was accepted: the stream is anonymous (until a CNAME arrives)
    /// and media is accepted from this SSRC only.
    MediaFirst {
        /// The media SSRC.
        ssrc: u32,
    },
    /// An anonymous stream's SSRC was named by an SDES CNAME (reported once).
    CnameLearned {
        /// The CNAME (lossy UTF-8).
        cname: String,
    },
    /// The handshake completed: the camera's CNAME and SSRC.
    Identified {
        /// The CNAME (lossy UTF-8).
        cname: String,
        /// The media SSRC.
        ssrc: u32,
    },
    /// A complete access unit.
    AccessUnit(AccessUnit<'a>),
    /// A damaged access unit was dropped: the decoder needs a keyframe.
    Loss(Loss),
    /// A media packet was rejected (the stream goes on; the error is worth a log line).
    PacketRejected(DepacketizeError),
    /// An RTCP packet after the handshake was malformed and ignored.
    RtcpRejected(RtcpError),
    /// The camera said goodbye.
    Bye,
}

/// Counters of one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Bytes received.
    pub bytes: u64,
    /// RTP packets received.
    pub rtp_packets: u64,
    /// RTCP packets received.
    pub rtcp_packets: u64,
    /// RTP packets from an SSRC other than the camera's, dropped.
    pub foreign_packets: u64,
}

/// What RTCP tells about the sender.
struct PeerState {
    camera_ssrc: Option<u32>,
    /// Whether the camera's CNAME is known (from the handshake or learned later).
    cname_known: bool,
    /// Middle 32 bits of the last SR's NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    accept_rtp_first: bool,
}

/// The per-connection protocol state.
pub struct Session {
    config: SessionConfig,
    deframer: Box<Deframer<MAX_FRAME_LEN>>,
    depacketizer: Depacketizer<Vec<u8>>,
    peer: PeerState,
    sequence: SeqExtender,
    /// Extended sequence number and loss count at the previous receiver report.
    previous_report: Option<(u64, u64)>,
    stats: SessionStats,
}

impl Session {
    /// A session awaiting its handshake.
    #[must_use]
    pub fn new(config: SessionConfig) -> Self {
        let len =
            Depacketizer::<Vec<u8>>::buffer_len_for(config.depacketizer.max_access_unit_bytes);
        Self {
            config,
            deframer: Box::new(Deframer::new()),
            depacketizer: Depacketizer::new(vec![0; len], config.depacketizer),
            peer: PeerState {
                camera_ssrc: None,
                cname_known: false,
                last_sr: None,
                accept_rtp_first: config.accept_rtp_first,
            },
            sequence: SeqExtender::new(),
            previous_report: None,
            stats: SessionStats::default(),
        }
    }

    /// Whether media is accepted: the handshake completed, or RTP came first and was accepted.
    #[must_use]
    pub const fn is_identified(&self) -> bool {
        self.peer.camera_ssrc.is_some()
    }

    /// Whether the camera's CNAME is known.
    #[must_use]
    pub const fn has_cname(&self) -> bool {
        self.peer.cname_known
    }

    /// Counters so far.
    #[must_use]
    pub const fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// The depacketizer's counters.
    #[must_use]
    pub fn depacketizer_stats(&self) -> flowcloud_core::h264::depacketizer::DepacketizerStats {
        *self.depacketizer.stats()
    }

    /// Whether the stream stopped inside a frame (for a log line when the peer disconnects).
    #[must_use]
    pub const fn is_mid_frame(&self) -> bool {
        self.deframer.is_mid_frame()
    }

    /// Feeds received bytes; `on_event` sees everything they complete, in order. An error
    /// means the connection must close (after the events before it were delivered).
    pub fn handle_bytes(
        &mut self,
        now: Instant,
        mut input: &[u8],
        mut on_event: impl FnMut(SessionEvent<'_>),
    ) -> Result<(), SessionError> {
        self.stats.bytes += input.len() as u64;
        while !input.is_empty() {
            let (used, frame) = self.deframer.push(input);
            input = &input[used..];
            let Some(packet) = frame? else { continue };
            if rtcp::is_rtcp(packet) {
                self.stats.rtcp_packets += 1;
                self.peer.handle_rtcp(now, packet, &mut on_event)?;
                continue;
            }
            self.stats.rtp_packets += 1;
            let ssrc = match self.peer.camera_ssrc {
                Some(ssrc) => ssrc,
                None if !self.config.accept_rtp_first => {
                    return Err(SessionError::AnonymousRefused);
                }
                None => {
                    // Lock onto a well-formed RTP packet's SSRC only, never onto noise.
                    let ssrc = match packet.get(..12) {
                        Some(header) if header[0] >> 6 == 2 => {
                            u32::from_be_bytes([header[8], header[9], header[10], header[11]])
                        }
                        _ => {
                            return Err(SessionError::HandshakeExpected {
                                got: "a packet that is neither RTP nor RTCP",
                            });
                        }
                    };
                    self.peer.camera_ssrc = Some(ssrc);
                    on_event(SessionEvent::MediaFirst { ssrc });
                    ssrc
                }
            };
            if packet.len() >= 12 && packet[8..12] != ssrc.to_be_bytes() {
                self.stats.foreign_packets += 1;
                continue;
            }
            if packet.len() >= 4 {
                self.sequence
                    .extend(SeqNum(u16::from_be_bytes([packet[2], packet[3]])));
            }
            if let Err(e) = self.depacketizer.push(packet) {
                on_event(SessionEvent::PacketRejected(e));
            }
            while let Some(event) = self.depacketizer.poll_event() {
                on_event(match event {
                    Event::AccessUnit(au) => SessionEvent::AccessUnit(au),
                    Event::Loss(loss) => SessionEvent::Loss(loss),
                });
            }
        }
        Ok(())
    }

    /// Writes a framed receiver report about the camera's stream (RFC 3550 §6.4.2), with
    /// LSR/DLSR so the camera can compute the round-trip time. `None` before the handshake.
    pub fn write_receiver_report(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let ssrc = self.peer.camera_ssrc?;
        let highest = self.sequence.highest().unwrap_or(0);
        let lost = self.depacketizer.stats().lost_packets;
        let (fraction_lost, previous) = match self.previous_report {
            Some((prev_highest, prev_lost)) if highest > prev_highest => {
                let expected = highest - prev_highest;
                let lost_now = lost.saturating_sub(prev_lost).min(expected);
                ((lost_now * 256 / expected).min(255) as u8, (highest, lost))
            }
            _ => (0, (highest, lost)),
        };
        self.previous_report = Some(previous);
        let (last_sr, delay) = match self.peer.last_sr {
            Some((mid, at)) => {
                let waited = now.saturating_duration_since(at).as_micros() as u64;
                (mid, rtcp::compact_from_micros(waited))
            }
            None => (0, 0),
        };
        let block = ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: lost.min(i32::MAX as u64) as i32,
            // The extender starts one cycle up; report cycles from zero.
            extended_highest_seq: highest.saturating_sub(1 << 16) as u32,
            jitter: 0,
            last_sr,
            delay_since_last_sr: delay,
        };
        let blocks = [block];
        let report = ReceiverReport {
            ssrc: self.config.worker_ssrc,
            reports: ReportBlocks::new(&blocks),
        };
        let body = out.get_mut(FRAME_HEADER_LEN..)?;
        let len = report.write(body).ok()?;
        finish_frame(out, len)
    }

    /// Writes a framed PLI asking the camera for a keyframe. `None` before the handshake.
    pub fn write_pli(&self, out: &mut [u8]) -> Option<usize> {
        let pli = Pli {
            sender_ssrc: self.config.worker_ssrc,
            media_ssrc: self.peer.camera_ssrc?,
        };
        let len = pli.write(out.get_mut(FRAME_HEADER_LEN..)?).ok()?;
        finish_frame(out, len)
    }

    /// Writes a framed `FCSG` result packet.
    pub fn write_result(
        &self,
        result: &SegmentationResult<'_>,
        out: &mut [u8],
    ) -> Result<usize, ResultError> {
        let body = out.get_mut(FRAME_HEADER_LEN..).unwrap_or_default();
        let len = result.write_app(self.config.worker_ssrc, body)?;
        // write_app caps packets at 65535 bytes, so the length fits the prefix.
        out[..FRAME_HEADER_LEN].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(FRAME_HEADER_LEN + len)
    }
}

impl PeerState {
    fn handle_rtcp(
        &mut self,
        now: Instant,
        packet: &[u8],
        on_event: &mut impl FnMut(SessionEvent<'_>),
    ) -> Result<(), SessionError> {
        let camera = self.camera_ssrc;
        let (mut sr, mut cname) = (None, None);
        for parsed in rtcp::parse_compound(packet) {
            let p = match parsed {
                Ok(p) => p,
                Err(e) if camera.is_none() => return Err(SessionError::HandshakeRtcp(e)),
                Err(e) => {
                    on_event(SessionEvent::RtcpRejected(e));
                    break;
                }
            };
            match p {
                RtcpPacket::SenderReport(report) if camera.is_none_or(|s| s == report.ssrc) => {
                    sr = Some((report.ssrc, report.ntp));
                }
                RtcpPacket::Sdes(sdes) => {
                    // Before the handshake the first chunk names the sender; after it, only a
                    // chunk about the camera's SSRC counts.
                    let chunk = sdes
                        .chunks()
                        .find(|chunk| camera.is_none_or(|s| s == chunk.ssrc));
                    if let Some(chunk) = chunk {
                        cname = chunk.cname().map(|c| (chunk.ssrc, c));
                    }
                }
                RtcpPacket::Bye(_) if camera.is_some() => on_event(SessionEvent::Bye),
                _ => {}
            }
        }
        if let Some((_, ntp)) = sr {
            self.last_sr = Some((NtpTimestamp::mid32(ntp), now));
        }
        if camera.is_some() {
            if let Some((_, name)) = cname
                && !self.cname_known
                && usable_cname(name)
            {
                self.cname_known = true;
                on_event(SessionEvent::CnameLearned {
                    cname: String::from_utf8_lossy(name).into_owned(),
                });
            }
            return Ok(());
        }
        let (Some((sr_ssrc, _)), Some((cname_ssrc, name))) = (sr, cname) else {
            if self.accept_rtp_first {
                // A standard sender may send RTCP of its own kind first; wait for media.
                return Ok(());
            }
            return Err(SessionError::HandshakeExpected {
                got: "RTCP without both SR and SDES CNAME",
            });
        };
        if sr_ssrc != cname_ssrc {
            return Err(SessionError::HandshakeInvalid {
                reason: "SR and SDES CNAME name different SSRCs",
            });
        }
        if !usable_cname(name) {
            return Err(SessionError::HandshakeInvalid {
                reason: "empty CNAME",
            });
        }
        self.camera_ssrc = Some(sr_ssrc);
        self.cname_known = true;
        on_event(SessionEvent::Identified {
            cname: String::from_utf8_lossy(name).into_owned(),
            ssrc: sr_ssrc,
        });
        Ok(())
    }
}

fn usable_cname(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_CNAME_LEN
}

fn finish_frame(out: &mut [u8], len: usize) -> Option<usize> {
    let prefix = u16::try_from(len).ok()?.to_be_bytes();
    out.get_mut(..FRAME_HEADER_LEN)?.copy_from_slice(&prefix);
    Some(FRAME_HEADER_LEN + len)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flowcloud_core::framing::frame_into;
    use flowcloud_core::h264::{Packetizer, PacketizerConfig};
    use flowcloud_core::rtcp::{CompoundWriter, SenderReport};

    use super::*;

    const CAMERA: u32 = 0xca11;
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x15, 0xd9, 0x04, 0x26, 0xc0, 0x5a, 0x83, 0x03, 0x03, 0x52, 0x80, 0x00,
        0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x47, 0x8b, 0x17, 0x24,
    ];

    fn session() -> Session {
        Session::new(SessionConfig {
            worker_ssrc: 7,
            depacketizer: DepacketizerConfig::default(),
            accept_rtp_first: false,
        })
    }

    fn rtp_first_session() -> Session {
        Session::new(SessionConfig {
            accept_rtp_first: true,
            ..session().config
        })
    }

    fn framed(packet: &[u8]) -> Vec<u8> {
        let mut out = vec![0; packet.len() + 2];
        let n = frame_into(packet, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn handshake(sr_ssrc: u32, sdes_ssrc: u32, cname: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 600];
        let mut c = CompoundWriter::new(&mut buf);
        c.push_with::<RtcpError>(|out| {
            SenderReport {
                ssrc: sr_ssrc,
                ntp: NtpTimestamp::from_micros(3_900_000_000_000_000),
                rtp_timestamp: 0,
                packet_count: 0,
                octet_count: 0,
                reports: ReportBlocks::EMPTY,
            }
            .write(out)
        })
        .unwrap();
        c.push_with::<RtcpError>(|out| rtcp::write_sdes_cname(sdes_ssrc, cname, out))
            .unwrap();
        framed(c.finish())
    }

    /// `frames` access units from one packetizer, framed, one byte string per access unit.
    fn media_aus(ssrc: u32, frames: u32) -> Vec<Vec<u8>> {
        let wire = media(ssrc, frames);
        let mut aus = Vec::new();
        let mut rest = &wire[..];
        let mut current = Vec::new();
        while rest.len() >= 2 {
            let len = 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            current.extend_from_slice(&rest[..len]);
            if rest[3] & 0x80 != 0 {
                aus.push(std::mem::take(&mut current));
            }
            rest = &rest[len..];
        }
        aus
    }

    fn media(ssrc: u32, frames: u32) -> Vec<u8> {
        let mut p = Packetizer::new(PacketizerConfig {
            ssrc,
            ..Default::default()
        })
        .unwrap();
        let mut wire = Vec::new();
        let mut buf = vec![0u8; 2000];
        for i in 0..frames {
            let mut au = vec![0, 0, 0, 1];
            au.extend_from_slice(SPS);
            au.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, i as u8 + 1]);
            let mut packets = p.packetize(&au, i * 3000).unwrap();
            while let Some(n) = packets.next_framed(&mut buf).unwrap() {
                wire.extend_from_slice(&buf[..n]);
            }
        }
        wire
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        MediaFirst(u32),
        Cname(String),
        Identified(String, u32),
        Au(u32),
        Loss,
        Rejected,
        Bye,
    }

    fn feed(s: &mut Session, bytes: &[u8]) -> (Vec<Seen>, Result<(), SessionError>) {
        let mut seen = Vec::new();
        let result = s.handle_bytes(Instant::now(), bytes, |e| {
            seen.push(match e {
                SessionEvent::MediaFirst { ssrc } => Seen::MediaFirst(ssrc),
                SessionEvent::CnameLearned { cname } => Seen::Cname(cname),
                SessionEvent::Identified { cname, ssrc } => Seen::Identified(cname, ssrc),
                SessionEvent::AccessUnit(au) => Seen::Au(au.rtp_timestamp),
                SessionEvent::Loss(_) => Seen::Loss,
                SessionEvent::PacketRejected(_) | SessionEvent::RtcpRejected(_) => Seen::Rejected,
                SessionEvent::Bye => Seen::Bye,
            });
        });
        (seen, result)
    }

    #[test]
    fn handshake_then_media() {
        let mut s = session();
        let mut bytes = handshake(CAMERA, CAMERA, b"cam-1");
        bytes.extend(media(CAMERA, 3));
        // One byte at a time: the framing must not care.
        let mut seen = Vec::new();
        for b in &bytes {
            let (mut events, result) = feed(&mut s, std::slice::from_ref(b));
            result.unwrap();
            seen.append(&mut events);
        }
        assert_eq!(
            seen,
            [
                Seen::Identified("cam-1".into(), CAMERA),
                Seen::Au(0),
                Seen::Au(3000),
                Seen::Au(6000)
            ]
        );
        assert!(s.is_identified());
    }

    #[test]
    fn media_before_the_handshake_is_rejected() {
        let mut s = session();
        let (_, result) = feed(&mut s, &media(CAMERA, 1));
        assert!(
            matches!(result, Err(SessionError::AnonymousRefused)),
            "{result:?}"
        );
    }

    #[test]
    fn rtp_first_is_accepted_when_allowed_and_a_later_cname_is_learned_once() {
        let mut s = rtp_first_session();
        let aus = media_aus(CAMERA, 3);
        let mut bytes = [aus[0].clone(), aus[1].clone()].concat();
        // rtpbin's first compound: SR + SDES for the media SSRC, seconds into the stream.
        bytes.extend(handshake(CAMERA, CAMERA, b"gst-cam"));
        bytes.extend(&aus[2]);
        bytes.extend(handshake(CAMERA, CAMERA, b"renamed"));
        let (seen, result) = feed(&mut s, &bytes);
        result.unwrap();
        assert_eq!(
            seen,
            [
                Seen::MediaFirst(CAMERA),
                Seen::Au(0),
                Seen::Au(3000),
                Seen::Cname("gst-cam".into()),
                Seen::Au(6000),
            ]
        );
        assert!(s.is_identified() && s.has_cname());
        let mut out = [0u8; 200];
        let n = s.write_receiver_report(Instant::now(), &mut out).unwrap();
        let (packet, _) = RtcpPacket::parse(&out[2..n]).unwrap();
        let RtcpPacket::ReceiverReport(rr) = packet else {
            panic!("{packet:?}")
        };
        assert_eq!(
            rr.reports.get(0).unwrap().ssrc,
            CAMERA,
            "reports go to the locked SSRC"
        );
    }

    #[test]
    fn an_anonymous_stream_keeps_its_first_ssrc() {
        let mut s = rtp_first_session();
        let aus = media_aus(CAMERA, 2);
        let mut bytes = aus[0].clone();
        bytes.extend(media(0xbad, 2));
        // A CNAME for another SSRC names nobody here.
        bytes.extend(handshake(0xbad, 0xbad, b"intruder"));
        bytes.extend(&aus[1]);
        let (seen, result) = feed(&mut s, &bytes);
        result.unwrap();
        assert_eq!(
            seen,
            [Seen::MediaFirst(CAMERA), Seen::Au(0), Seen::Au(3000)]
        );
        assert_eq!(s.stats().foreign_packets, 2);
        assert!(!s.has_cname());
    }

    #[test]
    fn rtp_first_sessions_still_take_the_handshake_and_ignore_other_rtcp_before_media() {
        let mut s = rtp_first_session();
        let mut buf = [0u8; 100];
        let n = Pli {
            sender_ssrc: 1,
            media_ssrc: 2,
        }
        .write(&mut buf)
        .unwrap();
        let mut bytes = framed(&buf[..n]);
        bytes.extend(handshake(CAMERA, CAMERA, b"edge"));
        bytes.extend(media(CAMERA, 1));
        let (seen, result) = feed(&mut s, &bytes);
        result.unwrap();
        assert_eq!(seen, [Seen::Identified("edge".into(), CAMERA), Seen::Au(0)]);
    }

    #[test]
    fn rtp_first_sessions_reject_a_first_packet_that_is_not_rtp() {
        let mut s = rtp_first_session();
        // Version 1, not RTP; and too short to hold an RTP header.
        for packet in [
            &[0x40u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x65][..],
            &[0x80, 96, 0, 1],
        ] {
            let (seen, result) = feed(&mut s, &framed(packet));
            assert!(seen.is_empty());
            assert!(
                matches!(result, Err(SessionError::HandshakeExpected { .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn handshake_without_cname_is_rejected() {
        let mut s = session();
        let mut buf = [0u8; 100];
        let n = Pli {
            sender_ssrc: 1,
            media_ssrc: 2,
        }
        .write(&mut buf)
        .unwrap();
        let (_, result) = feed(&mut s, &framed(&buf[..n]));
        assert!(
            matches!(result, Err(SessionError::HandshakeExpected { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn handshake_with_mismatched_ssrcs_is_rejected() {
        let mut s = session();
        let (_, result) = feed(&mut s, &handshake(1, 2, b"cam"));
        assert!(
            matches!(result, Err(SessionError::HandshakeInvalid { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn garbage_is_a_malformed_handshake() {
        let mut s = session();
        // A frame whose body looks like RTCP (second byte 200) but is cut short.
        let (_, result) = feed(&mut s, &framed(&[0x80, 200, 0x00, 0x10, 1, 2]));
        assert!(
            matches!(result, Err(SessionError::HandshakeRtcp(_))),
            "{result:?}"
        );
    }

    #[test]
    fn packets_from_another_ssrc_are_dropped() {
        let mut s = session();
        let mut bytes = handshake(CAMERA, CAMERA, b"cam");
        bytes.extend(media(0xbad, 2));
        bytes.extend(media(CAMERA, 1));
        let (seen, result) = feed(&mut s, &bytes);
        result.unwrap();
        assert_eq!(seen, [Seen::Identified("cam".into(), CAMERA), Seen::Au(0)]);
        assert_eq!(s.stats().foreign_packets, 2);
    }

    #[test]
    fn receiver_report_carries_lsr_and_dlsr() {
        let mut s = session();
        let t0 = Instant::now();
        s.handle_bytes(t0, &handshake(CAMERA, CAMERA, b"cam"), |_| {})
            .unwrap();
        s.handle_bytes(t0, &media(CAMERA, 2), |_| {}).unwrap();
        let mut out = [0u8; 200];
        let n = s
            .write_receiver_report(t0 + Duration::from_millis(250), &mut out)
            .unwrap();
        assert_eq!(usize::from(u16::from_be_bytes([out[0], out[1]])), n - 2);
        let (packet, _) = RtcpPacket::parse(&out[2..n]).unwrap();
        let RtcpPacket::ReceiverReport(rr) = packet else {
            panic!("{packet:?}")
        };
        assert_eq!(rr.ssrc, 7);
        let block = rr.reports.get(0).unwrap();
        assert_eq!(block.ssrc, CAMERA);
        assert_eq!(
            block.last_sr,
            NtpTimestamp::from_micros(3_900_000_000_000_000).mid32()
        );
        assert!(rtcp::compact_to_micros(block.delay_since_last_sr).abs_diff(250_000) <= 16);
        assert_eq!(block.cumulative_lost, 0);
        assert_eq!(block.extended_highest_seq, 1, "two packets from sequence 0");
    }

    #[test]
    fn pli_names_the_camera() {
        let mut s = session();
        let mut out = [0u8; 64];
        assert_eq!(s.write_pli(&mut out), None, "no PLI before the handshake");
        s.handle_bytes(Instant::now(), &handshake(CAMERA, CAMERA, b"cam"), |_| {})
            .unwrap();
        let n = s.write_pli(&mut out).unwrap();
        let (packet, _) = RtcpPacket::parse(&out[2..n]).unwrap();
        assert_eq!(
            packet,
            RtcpPacket::Pli(Pli {
                sender_ssrc: 7,
                media_ssrc: CAMERA
            })
        );
    }
}
