//! Annex-B `.h264` file → access units, for the examples that read stream files.

use anyhow::{Context as _, Result};
use flowcloud_worker::decode::split_access_units;

/// Reads a `.h264` file and splits it into access units, each with 4-byte start codes.
pub(crate) fn read(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    split_access_units(&bytes).with_context(|| path.display().to_string())
}
