//! The CUDA preprocessing backend.
