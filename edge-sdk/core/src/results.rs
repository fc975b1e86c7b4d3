//! Results (in progress).
