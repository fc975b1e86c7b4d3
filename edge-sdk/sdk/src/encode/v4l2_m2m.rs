//! V4L2 M2M stateful encoder (to be written).
