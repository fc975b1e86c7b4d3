//! The CUDA post-processing backend.
