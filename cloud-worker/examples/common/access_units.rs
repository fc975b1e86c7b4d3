//! Annex-B `.h264` file → access units, for the examples that read stream files.
//!
//! The same rule as the worker's crate-private `decode::split_access_units` (which its tests
//! use): a new access unit starts at an AUD, or at an SPS, PPS, SEI or NAL unit of types 14–18
//! after a slice, or at a slice with `first_mb_in_slice == 0` after a slice.

use anyhow::{Context as _, Result};
use flowcloud_core::h264::{NalHeader, annexb};

/// The access units of an Annex-B stream, each re-framed with 4-byte start codes.
pub(crate) fn split(stream: &[u8]) -> Result<Vec<Vec<u8>>> {
    let nal_units = annexb::nal_units(stream)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("not an Annex-B H.264 stream")?;
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut previous_was_slice = false;
    for nal in nal_units {
        let Some(&first) = nal.first() else {
            continue;
        };
        let type_id = NalHeader(first).type_id();
        let is_slice = matches!(type_id, 1 | 5);
        let starts_au = if is_slice {
            previous_was_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0)
        } else {
            (matches!(type_id, 6..=9 | 14..=18) && previous_was_slice) || type_id == 9
        };
        if starts_au && !current.is_empty() {
            units.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(&annexb::START_CODE);
        current.extend_from_slice(nal);
        previous_was_slice = is_slice;
    }
    if !current.is_empty() {
        units.push(current);
    }
    Ok(units)
}

/// Reads and splits a `.h264` file.
pub(crate) fn read(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    split(&bytes).with_context(|| path.display().to_string())
}
