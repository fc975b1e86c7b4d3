//! Shared helpers for the workspace-level tests and the loopback demo.

pub mod gstreamer;
pub mod temp_dir;
pub mod worker_process;
