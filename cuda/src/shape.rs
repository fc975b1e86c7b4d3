//! The shapes kernels and references take, and the checks both apply before touching memory.

use crate::error::ShapeError;

/// Largest width or height (of a frame, a model input or a class map) the kernels accept: keeps
/// every index product far inside `u32`/`usize` and every coordinate exact in `f32`.
pub const MAX_SIDE: u32 = 16_384;

/// Largest number of classes a `u8` class map can hold.
pub const MAX_CLASSES: usize = 256;

/// A palette: the RGB colour of each class index (classes a table does not name are black).
pub type Palette = [[u8; 3]; MAX_CLASSES];

/// Bytes of a [`Palette`] as the kernels read it: 256 packed RGB triples.
pub const PALETTE_BYTES: usize = 3 * MAX_CLASSES;

/// Flattens a palette into the 768 bytes the kernels read.
#[must_use]
pub fn palette_bytes(palette: &Palette) -> [u8; PALETTE_BYTES] {
    let mut out = [0u8; PALETTE_BYTES];
    for (dst, rgb) in out.chunks_exact_mut(3).zip(palette) {
        dst.copy_from_slice(rgb);
    }
    out
}

fn side(what: &'static str, value: u32) -> Result<(), ShapeError> {
    if value == 0 || value > MAX_SIDE {
        return Err(ShapeError::Dimension {
            what,
            value: value as usize,
            max: MAX_SIDE as usize,
        });
    }
    Ok(())
}

pub(crate) fn exact_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), ShapeError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ShapeError::Length {
            what,
            expected,
            actual,
        })
    }
}

/// Where the planes of an NV12 picture lie in one buffer: the luma plane (`height` rows of
/// `pitch` bytes, `width` used) at offset 0, then at `chroma_offset` the interleaved U,V plane
/// (`ceil(height/2)` rows of `pitch` bytes, `2·ceil(width/2)` used). NVDEC's surfaces have this
/// shape, with a pitch and chroma offset of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nv12Layout {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Bytes from one row to the next, in both planes.
    pub pitch: u32,
    /// Offset of the U,V plane in bytes.
    pub chroma_offset: usize,
}

impl Nv12Layout {
    /// The tightest layout: pitch `2·ceil(width/2)` (a chroma row's bytes), chroma right after
    /// the luma rows.
    #[must_use]
    pub const fn packed(width: u32, height: u32) -> Self {
        let pitch = width.div_ceil(2) * 2;
        Self {
            width,
            height,
            pitch,
            chroma_offset: pitch as usize * height as usize,
        }
    }

    /// Chroma plane size in samples per row/column: `(ceil(width/2), ceil(height/2))`.
    #[must_use]
    pub const fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// Bytes a buffer needs to hold this layout: the chroma plane's end.
    #[must_use]
    pub const fn required_len(&self) -> usize {
        self.chroma_offset + self.pitch as usize * self.chroma_size().1 as usize
    }

    /// Checks the layout and that a buffer of `len` bytes holds it.
    ///
    /// # Errors
    ///
    /// [`ShapeError`] for a side out of range, a pitch narrower than a row, a chroma plane
    /// overlapping the luma plane, or a buffer too short.
    pub fn check(&self, what: &'static str, len: usize) -> Result<(), ShapeError> {
        side("NV12 width", self.width)?;
        side("NV12 height", self.height)?;
        if self.pitch < self.chroma_size().0 * 2 || self.pitch > 4 * MAX_SIDE {
            return Err(ShapeError::Layout(
                "pitch must cover a chroma row (2·ceil(width/2) bytes) and be at most 4·MAX_SIDE",
            ));
        }
        if self.chroma_offset < self.pitch as usize * self.height as usize {
            return Err(ShapeError::Layout("chroma plane overlaps the luma plane"));
        }
        if len < self.required_len() {
            return Err(ShapeError::Length {
                what,
                expected: self.required_len(),
                actual: len,
            });
        }
        Ok(())
    }

    /// Number of pixels, `width · height`.
    #[must_use]
    pub const fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }
}

/// Order of the planes the model wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelOrder {
    /// Planes R, G, B.
    #[default]
    Rgb,
    /// Planes B, G, R.
    Bgr,
}

/// What the model wants from preprocessing: its input size, normalization and plane order (the
/// worker's `PreprocessParams`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreprocessParams {
    /// Model input width.
    pub out_width: u32,
    /// Model input height.
    pub out_height: u32,
    /// Per-channel mean in 0..1 units, R, G, B.
    pub mean: [f32; 3],
    /// Per-channel standard deviation in 0..1 units, R, G, B.
    pub std: [f32; 3],
    /// Order of the output planes.
    pub channel_order: ChannelOrder,
}

impl PreprocessParams {
    /// Values written per picture: `3 · out_height · out_width`.
    #[must_use]
    pub const fn output_len(&self) -> usize {
        3 * self.out_width as usize * self.out_height as usize
    }

    /// `1 / (255 · std[c])` per colour channel, in `f32` (step 4 of the definition).
    #[must_use]
    pub fn scale(&self) -> [f32; 3] {
        self.std.map(|s| 1.0 / (255.0 * s))
    }

    /// `−mean[c] / std[c]` per colour channel, in `f32` (step 4 of the definition).
    #[must_use]
    pub fn bias(&self) -> [f32; 3] {
        [0, 1, 2].map(|c| -self.mean[c] / self.std[c])
    }

    /// The output plane that colour channel `c` (0 = R, 1 = G, 2 = B) goes to.
    #[must_use]
    pub const fn plane_of(&self, c: usize) -> usize {
        match self.channel_order {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => 2 - c,
        }
    }

    /// Checks the output size and that `out_len` values hold one picture.
    ///
    /// # Errors
    ///
    /// [`ShapeError`] for a side out of range or a wrong output length.
    pub fn check(&self, out_len: usize) -> Result<(), ShapeError> {
        side("model input width", self.out_width)?;
        side("model input height", self.out_height)?;
        exact_len("preprocess output", self.output_len(), out_len)
    }
}

/// Sizes of one image's logits and of the class map made from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogitShape {
    /// Number of classes, 1..=256.
    pub classes: u32,
    /// Logit rows.
    pub in_height: u32,
    /// Logit columns.
    pub in_width: u32,
    /// Class map rows.
    pub out_height: u32,
    /// Class map columns.
    pub out_width: u32,
}

impl LogitShape {
    /// Logit values: `classes · in_height · in_width`.
    #[must_use]
    pub const fn logits_len(&self) -> usize {
        self.classes as usize * self.in_height as usize * self.in_width as usize
    }

    /// Class map bytes: `out_height · out_width`.
    #[must_use]
    pub const fn class_map_len(&self) -> usize {
        self.out_height as usize * self.out_width as usize
    }

    /// Checks the sizes and the two buffers' lengths.
    ///
    /// # Errors
    ///
    /// [`ShapeError`] for a size out of range or a wrong length.
    pub fn check(&self, logits_len: usize, class_map_len: usize) -> Result<(), ShapeError> {
        if self.classes == 0 || self.classes as usize > MAX_CLASSES {
            return Err(ShapeError::Dimension {
                what: "classes",
                value: self.classes as usize,
                max: MAX_CLASSES,
            });
        }
        side("logit height", self.in_height)?;
        side("logit width", self.in_width)?;
        side("class map height", self.out_height)?;
        side("class map width", self.out_width)?;
        exact_len("logits", self.logits_len(), logits_len)?;
        exact_len("class map", self.class_map_len(), class_map_len)
    }
}

/// Checks a blend factor: a finite number in `[0, 1]`.
///
/// # Errors
///
/// [`ShapeError::Alpha`] otherwise.
pub fn check_alpha(alpha: f32) -> Result<(), ShapeError> {
    if (0.0..=1.0).contains(&alpha) {
        Ok(())
    } else {
        Err(ShapeError::Alpha(alpha))
    }
}

/// Checks the sizes of a fused argmax + overlay: the logits and class map as
/// [`LogitShape::check`], a class map of the frame's size, and `alpha`.
///
/// # Errors
///
/// [`ShapeError`] for any mismatch.
pub(crate) fn check_fused(
    shape: &LogitShape,
    logits_len: usize,
    frame: Nv12Layout,
    class_map_len: usize,
    alpha: f32,
) -> Result<(), ShapeError> {
    check_alpha(alpha)?;
    shape.check(logits_len, class_map_len)?;
    if (shape.out_width, shape.out_height) != (frame.width, frame.height) {
        return Err(ShapeError::Layout(
            "class map size differs from the frame's",
        ));
    }
    Ok(())
}
