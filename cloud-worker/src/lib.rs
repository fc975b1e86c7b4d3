//! `flowcloud-worker`: accepts camera streams (RTP H.264 over RFC 4571 TCP), decodes them,
//! runs segmentation, and returns a result for every frame on the same connection.
//!
//! The CPU path (openh264 + ONNX Runtime) lives here; the GPU backends plug into the same
//! traits ([`decode::Decoder`], [`engine::Engine`]).
// `deny`, not `forbid`: clap's derive allows `clippy::restriction` on what it generates.
#![deny(clippy::print_stdout)]

pub mod batching;
pub mod classes;
pub mod config;
pub mod decode;
pub mod engine;
pub mod eval;
pub mod frame;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod post;
pub mod preprocess;
pub mod storage;
