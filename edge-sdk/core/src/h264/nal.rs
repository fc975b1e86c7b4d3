//! The one-byte NAL unit header (H.264 §7.3.1) and the NAL unit types that matter on RTP
//! (RFC 6184 §5.2, Table 1 of §5.4).

/// A NAL unit header byte: forbidden_zero_bit, nal_ref_idc (NRI), nal_unit_type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NalHeader(pub u8);

impl NalHeader {
    /// The forbidden_zero_bit; set means the NAL unit is known to be damaged (RFC 6184 §5.3).
    #[must_use]
    pub const fn forbidden_bit(self) -> bool {
        self.0 & 0x80 != 0
    }

    /// nal_ref_idc, 0..=3 (the NRI field).
    #[must_use]
    pub const fn nri(self) -> u8 {
        (self.0 >> 5) & 0x03
    }

    /// nal_unit_type, 0..=31.
    #[must_use]
    pub const fn type_id(self) -> u8 {
        self.0 & 0x1f
    }

    /// nal_unit_type, classified.
    #[must_use]
    pub const fn nal_type(self) -> NalType {
        NalType::from_id(self.type_id())
    }
}

/// NAL unit types as RTP sees them: the ones H.264 itself defines (1–23) and the RTP payload
/// structures of RFC 6184 (24–29).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NalType {
    /// Coded slice of a non-IDR picture (1).
    NonIdrSlice,
    /// Coded slice data partition A, B or C (2–4).
    SlicePartition(u8),
    /// Coded slice of an IDR picture (5): a keyframe.
    IdrSlice,
    /// Supplemental enhancement information (6).
    Sei,
    /// Sequence parameter set (7).
    Sps,
    /// Picture parameter set (8).
    Pps,
    /// Access unit delimiter (9).
    AccessUnitDelimiter,
    /// Any other type H.264 defines or reserves in 10–23 (end of sequence, filler, SPS
    /// extension, prefix NAL, subset SPS, auxiliary slice, ...); carried opaquely.
    OtherH264(u8),
    /// Single-time aggregation packet A (24): the one aggregation type mode 1 uses.
    StapA,
    /// Single-time aggregation packet B (25): interleaved mode only.
    StapB,
    /// Multi-time aggregation packet with 16-bit offsets (26): interleaved mode only.
    Mtap16,
    /// Multi-time aggregation packet with 24-bit offsets (27): interleaved mode only.
    Mtap24,
    /// Fragmentation unit A (28).
    FuA,
    /// Fragmentation unit B (29): interleaved mode only.
    FuB,
    /// Types 0, 30 and 31: unspecified by H.264 and reserved by RFC 6184.
    Reserved(u8),
}

impl NalType {
    /// Classifies a 5-bit nal_unit_type.
    #[must_use]
    pub const fn from_id(id: u8) -> Self {
        match id & 0x1f {
            1 => Self::NonIdrSlice,
            t @ 2..=4 => Self::SlicePartition(t),
            5 => Self::IdrSlice,
            6 => Self::Sei,
            7 => Self::Sps,
            8 => Self::Pps,
            9 => Self::AccessUnitDelimiter,
            t @ 10..=23 => Self::OtherH264(t),
            24 => Self::StapA,
            25 => Self::StapB,
            26 => Self::Mtap16,
            27 => Self::Mtap24,
            28 => Self::FuA,
            29 => Self::FuB,
            t => Self::Reserved(t),
        }
    }

    /// Whether this is a type an encoder produces (1–23), as opposed to an RTP payload
    /// structure or a reserved value.
    #[must_use]
    pub const fn is_h264_nal(self) -> bool {
        !matches!(
            self,
            Self::StapA
                | Self::StapB
                | Self::Mtap16
                | Self::Mtap24
                | Self::FuA
                | Self::FuB
                | Self::Reserved(_)
        )
    }
}
