//! The mio sender (being written).
