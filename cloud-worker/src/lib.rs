//! `flowcloud-worker`: accepts camera streams (RTP H.264 over RFC 4571 TCP), decodes them,
//! runs segmentation, and returns a result for every frame on the same connection.
//!
//! Every stage is a trait with a CPU backend and a GPU one behind it: decoding
//! ([`decode::Decoder`]: openh264, NVDEC), preprocessing and post-processing
//! ([`preprocess::Preprocess`], [`post::Post`]: Rust, CUDA kernels; chosen in [`stages`]) and
//! inference ([`engine::Engine`]).
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
pub mod stages;
pub mod storage;
