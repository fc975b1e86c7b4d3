//! H.264 over RTP (RFC 6184, packetization-mode 1): Annex-B scanning, the packetizer, the
//! depacketizer, and the sequence parameter set reader the depacketizer uses to bound frame
//! dimensions before anything downstream allocates for them.

pub mod annexb;
mod bits;
pub mod depacketizer;
pub mod nal;
pub mod packetizer;
pub mod sps;

pub use depacketizer::{
    AccessUnit, DepacketizeError, Depacketizer, DepacketizerConfig, Event, Loss,
};
pub use nal::{NalHeader, NalType};
pub use packetizer::{PacketizeError, Packetizer, PacketizerConfig};
pub use sps::{Sps, SpsError};

/// Largest access unit either side accepts, in bytes of Annex-B output (DESIGN.md limits).
pub const MAX_ACCESS_UNIT_BYTES: usize = 8 << 20;
/// Most NAL units either side accepts in one access unit (DESIGN.md limits).
pub const MAX_NALS_PER_ACCESS_UNIT: usize = 64;
