//! V4L2 camera capture (to be written).
