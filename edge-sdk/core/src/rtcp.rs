//! RTCP (in progress).
