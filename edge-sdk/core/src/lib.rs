//! FlowCloud's wire protocol core, shared by the camera (edge) and the cloud worker.
//!
//! Everything here is **sans-IO** and **allocation-free**: callers hand in bytes (and, where
//! time matters, a `now`), and get back packets to send or events. Capacities are fixed at
//! construction (const generics or caller-provided buffers); a full buffer is a typed error,
//! never a panic or a silent drop. The crate is `no_std`; the `std` feature only adds the
//! in-memory test [`harness`].
//!
//! | module | what it is |
//! |---|---|
//! | [`seq`] | RTP sequence-number arithmetic with wrap (RFC 3550 §A.1) |
//! | [`rtp`] | RTP fixed header read/write: CSRC, extension, padding (RFC 3550 §5.1) |
//! | [`framing`] | RFC 4571 framer and incremental deframer for RTP/RTCP over TCP |
//! | [`h264`] | Annex-B scanning, RFC 6184 packetizer and depacketizer, SPS parser |
//! | [`rtcp`] | SR, RR (+RTT), SDES CNAME, PSFB PLI, APP, compound packets (RFC 3550, 4585) |
//! | [`results`] | the versioned `FCSG` segmentation result carried in RTCP APP |
//!
//! # Example
//!
//! Packetize one access unit, frame it for TCP, and get it back on the other side:
//!
//! ```
//! use flowcloud_core::framing::Deframer;
//! use flowcloud_core::h264::{Depacketizer, DepacketizerConfig, Event, Packetizer, PacketizerConfig};
//!
//! // SPS (64x64 baseline, from x264), PPS and the start of an IDR slice.
//! let au = [
//!     0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x15, 0xd9, 0x04, 0x26, 0xc0, 0x5a, 0x83, 0x03, 0x03, 0x52,
//!     0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x47, 0x8b, 0x17, 0x24,
//!     0, 0, 0, 1, 0x68, 0xcb, 0x8c, 0xb2,
//!     0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21,
//! ];
//! let mut packetizer = Packetizer::new(PacketizerConfig::default()).unwrap();
//! let mut depacketizer = Depacketizer::new(vec![0u8; 1 << 20], DepacketizerConfig::default());
//! let mut deframer = Deframer::<2048>::new();
//!
//! let mut wire = Vec::new();
//! let mut packets = packetizer.packetize(&au, 90_000).unwrap();
//! let mut buf = [0u8; 2048];
//! while let Some(len) = packets.next_framed(&mut buf).unwrap() {
//!     wire.extend_from_slice(&buf[..len]);
//! }
//!
//! let mut input = &wire[..];
//! while !input.is_empty() {
//!     let (used, frame) = deframer.push(input);
//!     if let Some(packet) = frame.unwrap() {
//!         depacketizer.push(packet).unwrap();
//!     }
//!     input = &input[used..];
//! }
//! match depacketizer.poll_event() {
//!     Some(Event::AccessUnit(out)) => {
//!         assert_eq!(out.data, &au[..]);
//!         assert!(out.keyframe);
//!     }
//!     other => panic!("expected an access unit, got {other:?}"),
//! }
//! assert_eq!(depacketizer.sps().map(|sps| (sps.width, sps.height)), Some((64, 64)));
//! ```
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(clippy::print_stdout)]
#![deny(missing_docs)]

pub mod framing;
pub mod h264;
#[cfg(feature = "std")]
pub mod harness;
pub mod results;
pub mod rtcp;
pub mod rtp;
pub mod seq;
