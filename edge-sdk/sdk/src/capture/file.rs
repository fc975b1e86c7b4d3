//! Raw NV12/I420 and Y4M file sources (to be written).
