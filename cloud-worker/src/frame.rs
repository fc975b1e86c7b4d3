//! Pictures as they move through the worker's CPU path.

/// A decoded picture in I420 (planar YUV 4:2:0, BT.601 limited range as H.264 encoders in
/// this field emit it), in host memory, with tightly packed planes: `y` is `width × height`
/// bytes, `u` and `v` are `ceil(width/2) × ceil(height/2)` bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420Frame {
    /// Luma width in pixels.
    pub width: u32,
    /// Luma height in pixels.
    pub height: u32,
    /// Luma plane.
    pub y: Vec<u8>,
    /// Cb plane.
    pub u: Vec<u8>,
    /// Cr plane.
    pub v: Vec<u8>,
}

impl I420Frame {
    /// Width and height of each chroma plane.
    #[must_use]
    pub const fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// A frame of the given size with every plane set to `(y, u, v)`.
    #[must_use]
    pub fn filled(width: u32, height: u32, yuv: (u8, u8, u8)) -> Self {
        let (cw, ch) = Self::chroma_size(width, height);
        Self {
            width,
            height,
            y: vec![yuv.0; (width * height) as usize],
            u: vec![yuv.1; (cw * ch) as usize],
            v: vec![yuv.2; (cw * ch) as usize],
        }
    }
}
