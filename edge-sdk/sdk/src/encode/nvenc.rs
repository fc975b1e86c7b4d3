//! NVENC (to be written).
