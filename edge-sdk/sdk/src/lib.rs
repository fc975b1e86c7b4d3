//! FlowCloud's edge SDK: everything a camera device runs to stream video to a FlowCloud worker
//! and receive a segmentation result per frame.
//!
//! - [`capture`]: frame sources behind [`capture::CaptureSource`]: V4L2 cameras (Linux), raw
//!   NV12/I420 and Y4M files, a moving test pattern, and a synthetic street scene with exact
//!   Cityscapes labels ([`capture::scene`]).
//! - [`encode`]: H.264 encoders behind [`encode::VideoEncoder`], all producing Annex-B access
//!   units: the V4L2 memory-to-memory stateful encoder (Linux; how a Jetson's hardware encoder is
//!   reached), NVENC (loaded at run time), and openh264 in software.
//! - [`sender`]: the `mio` sender: RTP over TCP (RFC 4571), RTCP sender reports and SDES, a
//!   bounded send queue that drops whole frames until the next IDR when the network cannot keep
//!   up, reconnects with jittered backoff, and hands each `FCSG` result back with its latency
//!   split on the device's own clock.
//!
//! ## Synthetic street scenes
//!
//! [`capture::scene::StreetScene`] renders a street (road, pavements, buildings, trees, poles,
//! signs, parked and moving cars, people) seen from a car driving along it, together with the
//! Cityscapes `labelId` of every pixel; the same seed and frame index always give the same
//! bytes. It serves three ways:
//!
//! - as a camera: [`capture::scene::SceneSource`], or `flowcloud-edge --source scene:SEED`;
//!   the ground truth of a streamed frame is `render_labels` of its sequence number;
//! - as a data set: `flowcloud-scenes --out DIR --split train --sequences N --seed S` writes
//!   `DIR/leftImg8bit/train/synth/*_leftImg8bit.png` and
//!   `DIR/gtFine/train/synth/*_gtFine_labelIds.png` in the Cityscapes layout (see `--help`);
//! - as a preview: `cargo run --release -p flowcloud-edge --example scene_preview -- OUT_DIR`
//!   writes a few frames with their colourised labels and times the renderer.
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
