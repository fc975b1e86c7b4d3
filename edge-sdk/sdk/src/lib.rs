//! FlowCloud's edge SDK: everything a camera device runs to stream video to a FlowCloud worker
//! and receive a segmentation result per frame.
//!
//! - [`capture`]: frame sources behind [`capture::CaptureSource`]: V4L2 cameras (Linux), raw
//!   NV12/I420 and Y4M files, and a moving test pattern.
//! - [`encode`]: H.264 encoders behind [`encode::VideoEncoder`], all producing Annex-B access
//!   units: the V4L2 memory-to-memory stateful encoder (Linux; how a Jetson's hardware encoder is
//!   reached), NVENC (loaded at run time), and openh264 in software.
//! - [`sender`]: the `mio` sender: RTP over TCP (RFC 4571), RTCP sender reports and SDES, a
//!   bounded send queue that drops whole frames until the next IDR when the network cannot keep
//!   up, reconnects with jittered backoff, and hands each `FCSG` result back with its latency
//!   split on the device's own clock.
//!
//! The wire protocol itself lives in the allocation-free [`flowcloud_core`]. After start-up the
//! hot path (capture → packetize → send → receive results) does not allocate; only the software
//! encoder (a C library) is exempt.
//!
//! ```no_run
//! use std::time::Duration;
//! use flowcloud_edge::capture::{CaptureSource, pattern::PatternSource};
//! use flowcloud_edge::encode::{EncoderSettings, VideoEncoder, openh264::OpenH264Encoder};
//! use flowcloud_edge::sender::{Sender, SenderConfig, SenderHandler};
//!
//! struct Print;
//! impl SenderHandler for Print {}
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut camera = PatternSource::new(640, 360, 30)?;
//! let mut encoder = OpenH264Encoder::new(EncoderSettings::new(640, 360, 30))?;
//! let mut sender = Sender::new(SenderConfig::new("127.0.0.1:5004".parse()?, "cam-1"))?;
//! let mut access_unit = Vec::with_capacity(1 << 20);
//! loop {
//!     let frame = camera.next_frame()?;
//!     let captured_at = frame.captured_at;
//!     if sender.take_keyframe_request() {
//!         encoder.request_keyframe();
//!     }
//!     let encoded = encoder.encode(&frame, &mut access_unit)?;
//!     sender.submit(&access_unit[..encoded.len], captured_at, encoded.encode_time)?;
//!     sender.poll(Some(Duration::ZERO), &mut Print)?;
//! }
//! # }
//! ```
#![forbid(clippy::print_stdout)]

pub mod capture;
pub mod encode;
pub mod picture;
pub mod sender;
#[cfg(target_os = "linux")]
pub mod v4l2;
