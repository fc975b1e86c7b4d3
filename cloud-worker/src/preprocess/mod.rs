//! CPU preprocessing: a decoded I420 picture (or an RGB8 image, for evaluation) → the model's
//! normalized planar input.
//!
//! # Exact definition
//!
//! The GPU kernel must compute the same thing, so here it is step by step. Inputs: an I420
//! picture `in_w × in_h` (chroma `ceil(in_w/2) × ceil(in_h/2)`), the model size `out_w × out_h`,
//! `mean` and `std` per RGB channel in 0..1 units, and the channel order. All arithmetic is `f32`.
//!
//! 1. **Sampling positions** (bilinear, `align_corners = false`, as PyTorch's
//!    `interpolate(mode="bilinear", align_corners=False)` and OpenCV's `INTER_LINEAR`; no
//!    antialiasing when shrinking). For output column `ox` the source position is
//!    `sx = clamp((ox + 0.5) · in_w / out_w − 0.5, 0, in_w − 1)`, `x0 = floor(sx)`,
//!    `x1 = min(x0 + 1, in_w − 1)`, `fx = sx − x0`; rows likewise give `y0, y1, fy`.
//!    To be exact on every machine (a float `sx` near 1920 is off by ~1e-4 in `f32`), compute it
//!    in integers: `num = (2·ox + 1)·in_w − out_w`, `den = 2·out_w`; if `num < 0` then
//!    `x0 = 0, fx = 0`; else `x0 = num / den` (integer division) and `fx = (num mod den) as f32 /
//!    den as f32` (one correctly rounded `f32` division); then if `x0 ≥ in_w − 1`,
//!    `x0 = in_w − 1, fx = 0`.
//! 2. **Colour conversion at each of the four source pixels** `(x, y)` ∈ {x0, x1} × {y0, y1},
//!    at source resolution, *before* interpolating (RGB values are interpolated, never YUV):
//!    `Y = y[y·in_w + x]`, `U = u[(y/2)·cw + x/2]`, `V = v[(y/2)·cw + x/2]` (integer halving:
//!    the chroma sample that covers the pixel, no chroma interpolation), then BT.601 limited range
//!    ```text
//!    R = 1.164·(Y−16) + 1.596·(V−128)
//!    G = 1.164·(Y−16) − 0.392·(U−128) − 0.813·(V−128)
//!    B = 1.164·(Y−16) + 2.017·(U−128)
//!    ```
//!    each clamped to `[0, 255]` and kept as `f32` (not rounded to integers).
//! 3. **Interpolation**, horizontal then vertical, per channel:
//!    `top = (1−fx)·p(x0,y0) + fx·p(x1,y0)`, `bottom = (1−fx)·p(x0,y1) + fx·p(x1,y1)`,
//!    `c = (1−fy)·top + fy·bottom`.
//! 4. **Normalization**: `(c / 255 − mean[ch]) / std[ch]`, computed as
//!    `c · (1 / (255·std[ch])) + (−mean[ch] / std[ch])` with the two factors precomputed (equal to
//!    the plain formula within float rounding, ~1e-6).
//! 5. **Layout**: planar, one `out_h × out_w` plane per channel, row-major; planes R, G, B for
//!    [`ChannelOrder::Rgb`], B, G, R for [`ChannelOrder::Bgr`]. `mean`/`std` stay tied to the
//!    colour (R, G, B), whatever the order.
//!
//! **RGB8 input** ([`Preprocessor::run_rgb`], [`preprocess_rgb8`]) follows the same steps with
//! step 2 replaced by reading the source pixel's three bytes as `f32` (no conversion, no
//! clamping needed); the resampling and normalization code is shared.
//!
//! Each formula is evaluated as written, left to right, without fused multiply-adds (Rust never
//! contracts; CUDA does by default, so a kernel that must match bit for bit needs `--fmad=false`
//! or `__fmul_rn`/`__fadd_rn`; otherwise expect differences around 1e-6 of the normalized value).
//!
//! The implementation precomputes the column and row tables once per input size
//! ([`Preprocessor`] keeps them between frames), computes each horizontally interpolated source
//! row once (consecutive output rows often share source rows), converts with per-byte tables of
//! the products above (bit-identical to the formulas) and allocates nothing per pixel: about
//! 2.5 ms for 1920×1080 → 520×520 on one core of the development machine.

use crate::{
    engine::{ChannelOrder, ModelManifest},
    frame::{I420Frame, Picture},
};

pub mod cuda;

/// What the model wants: its input size, normalization and plane order.
#[derive(Clone, Copy, Debug, PartialEq)]
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
    /// The parameters a manifest asks for.
    #[must_use]
    pub const fn from_manifest(manifest: &ModelManifest) -> Self {
        Self {
            out_width: manifest.input_width,
            out_height: manifest.input_height,
            mean: manifest.mean,
            std: manifest.std,
            channel_order: manifest.channel_order,
        }
    }

    /// Number of `f32` values written per picture: `3 × out_height × out_width`.
    #[must_use]
    pub const fn output_len(&self) -> usize {
        3 * self.out_width as usize * self.out_height as usize
    }
}

impl From<&ModelManifest> for PreprocessParams {
    fn from(manifest: &ModelManifest) -> Self {
        Self::from_manifest(manifest)
    }
}

/// Inputs that cannot be preprocessed, or a GPU that failed at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    /// The CUDA backend failed (a launch, a copy, or a kernel that cannot be loaded).
    #[error("CUDA preprocessing failed: {reason}")]
    Gpu {
        /// What failed.
        reason: String,
    },
    /// The picture or the model size has a zero side.
    #[error("cannot preprocess a {what} of {width}×{height} pixels")]
    EmptySize {
        /// "picture" or "model input".
        what: &'static str,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A plane's length does not match the picture size (tightly packed I420).
    #[error("{plane} plane has {got} bytes; a {width}×{height} I420 picture needs {expected}")]
    PlaneSize {
        /// "Y", "U" or "V".
        plane: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        got: usize,
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
    },
    /// An RGB8 picture's length does not match its size (tightly packed, 3 bytes per pixel).
    #[error("RGB picture has {got} bytes; a {width}×{height} RGB8 picture needs {expected}")]
    RgbSize {
        /// Bytes needed: `3 × width × height`.
        expected: usize,
        /// Bytes given.
        got: usize,
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
    },
    /// The output slice does not hold exactly one preprocessed picture.
    #[error("output has room for {got} values; the model input needs {expected}")]
    OutputSize {
        /// `3 × out_height × out_width`.
        expected: usize,
        /// Given.
        got: usize,
    },
}

/// One axis of the resampling: for each output index, the two source indices and the weight of
/// the second.
#[derive(Clone, Debug, Default)]
struct Axis {
    i0: Vec<u32>,
    i1: Vec<u32>,
    frac: Vec<f32>,
}

impl Axis {
    /// Step 1 of the module documentation.
    fn new(in_len: u32, out_len: u32) -> Self {
        let mut axis = Self {
            i0: Vec::with_capacity(out_len as usize),
            i1: Vec::with_capacity(out_len as usize),
            frac: Vec::with_capacity(out_len as usize),
        };
        let (n_in, n_out) = (i64::from(in_len), i64::from(out_len));
        let den = 2 * n_out;
        for o in 0..n_out {
            let num = (2 * o + 1) * n_in - n_out;
            let (i0, frac) = if num < 0 {
                (0, 0)
            } else if num / den >= n_in - 1 {
                (n_in - 1, 0)
            } else {
                (num / den, num % den)
            };
            // 0 ≤ i0 < in_len and frac < den ≤ 2 · MAX side: both fit (and are exact in f32).
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i0 = i0 as u32;
            axis.i0.push(i0);
            axis.i1.push((i0 + 1).min(in_len - 1));
            #[allow(clippy::cast_precision_loss)]
            axis.frac.push(frac as f32 / den as f32);
        }
        axis
    }
}

/// The products of step 2 for every byte value, so that a conversion is table look-ups and
/// additions; the results are bit for bit those of the formulas.
#[derive(Clone, Debug)]
struct YuvTables {
    /// `1.164·(Y−16)`.
    y: [f32; 256],
    /// `1.596·(V−128)`, for R.
    v_r: [f32; 256],
    /// `0.392·(U−128)`, for G.
    u_g: [f32; 256],
    /// `0.813·(V−128)`, for G.
    v_g: [f32; 256],
    /// `2.017·(U−128)`, for B.
    u_b: [f32; 256],
}

impl YuvTables {
    fn new() -> Self {
        let table = |f: fn(f32) -> f32| -> [f32; 256] {
            std::array::from_fn(|i| f(f32::from(u8::try_from(i).unwrap_or(u8::MAX))))
        };
        Self {
            y: table(|y| 1.164 * (y - 16.0)),
            v_r: table(|v| 1.596 * (v - 128.0)),
            u_g: table(|u| 0.392 * (u - 128.0)),
            v_g: table(|v| 0.813 * (v - 128.0)),
            u_b: table(|u| 2.017 * (u - 128.0)),
        }
    }

    /// BT.601 limited range → RGB, clamped to 0..255 (step 2 of the module documentation).
    #[inline]
    #[allow(
        clippy::manual_clamp,
        reason = "f32::clamp branches; max+min is branch-free and equal for non-NaN values (2× faster)"
    )]
    fn rgb(&self, y: u8, u: u8, v: u8) -> [f32; 3] {
        let (y, u, v) = (usize::from(y), usize::from(u), usize::from(v));
        let c = self.y[y];
        // `max` then `min` rather than `clamp`: the same for these (never NaN) values, and
        // branch-free (`clamp` branches, and on real pictures clipping is unpredictable).
        [
            (c + self.v_r[v]).max(0.0).min(255.0),
            (c - self.u_g[u] - self.v_g[v]).max(0.0).min(255.0),
            (c + self.u_b[u]).max(0.0).min(255.0),
        ]
    }
}

/// One source row of a picture, read as RGB (step 2 of the module documentation).
trait SourceRow {
    /// The RGB value of column `x`, each channel in `[0, 255]`.
    fn rgb(&self, x: usize) -> [f32; 3];
}

/// A picture the resampler reads, one source row at a time.
trait SourcePicture {
    /// One row of it.
    type Row<'r>: SourceRow
    where
        Self: 'r;

    /// Row `y` (`y < height`, checked by the caller).
    fn row(&self, y: usize) -> Self::Row<'_>;
}

/// A tightly packed I420 picture whose sizes have been checked.
struct I420Picture<'a> {
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
    width: usize,
    chroma_width: usize,
    tables: &'a YuvTables,
}

/// One row of an [`I420Picture`]: its luma row and the chroma rows that cover it.
struct I420Row<'a> {
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
    tables: &'a YuvTables,
}

impl SourceRow for I420Row<'_> {
    #[inline]
    fn rgb(&self, x: usize) -> [f32; 3] {
        self.tables.rgb(self.y[x], self.u[x / 2], self.v[x / 2])
    }
}

impl SourcePicture for I420Picture<'_> {
    type Row<'r>
        = I420Row<'r>
    where
        Self: 'r;

    fn row(&self, y: usize) -> I420Row<'_> {
        let c_start = (y / 2) * self.chroma_width;
        I420Row {
            y: &self.y[y * self.width..(y + 1) * self.width],
            u: &self.u[c_start..c_start + self.chroma_width],
            v: &self.v[c_start..c_start + self.chroma_width],
            tables: self.tables,
        }
    }
}

/// A tightly packed RGB8 picture (3 bytes per pixel, R, G, B) whose size has been checked.
struct RgbPicture<'a> {
    rgb: &'a [u8],
    width: usize,
}

/// One row of an [`RgbPicture`].
struct RgbRow<'a>(&'a [u8]);

impl SourceRow for RgbRow<'_> {
    #[inline]
    fn rgb(&self, x: usize) -> [f32; 3] {
        let p = &self.0[3 * x..3 * x + 3];
        [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
    }
}

impl SourcePicture for RgbPicture<'_> {
    type Row<'r>
        = RgbRow<'r>
    where
        Self: 'r;

    fn row(&self, y: usize) -> RgbRow<'_> {
        let len = 3 * self.width;
        RgbRow(&self.rgb[y * len..(y + 1) * len])
    }
}

/// Steps 1, 3, 4 and 5 of the module documentation, whatever the source format: the sampling
/// tables of the last input size and two horizontally interpolated source rows.
#[derive(Clone, Debug)]
struct Resampler {
    params: PreprocessParams,
    /// Input size the tables are for.
    table_size: Option<(u32, u32)>,
    cols: Axis,
    rows: Axis,
    /// Two horizontally interpolated source rows, planar R, G, B of `out_w` values each, and the
    /// source row each holds.
    row_buf: [Vec<f32>; 2],
    row_of: [Option<u32>; 2],
}

impl Resampler {
    fn new(params: PreprocessParams) -> Self {
        Self {
            params,
            table_size: None,
            cols: Axis::default(),
            rows: Axis::default(),
            row_buf: [Vec::new(), Vec::new()],
            row_of: [None, None],
        }
    }

    /// Resamples and normalizes `picture` (`width × height`, sizes already checked) into `out`
    /// (exactly [`PreprocessParams::output_len`] values).
    fn run<P: SourcePicture>(&mut self, picture: &P, width: u32, height: u32, out: &mut [f32]) {
        let p = self.params;
        if self.table_size != Some((width, height)) {
            self.cols = Axis::new(width, p.out_width);
            self.rows = Axis::new(height, p.out_height);
            self.table_size = Some((width, height));
        }
        let out_w = p.out_width as usize;
        for buf in &mut self.row_buf {
            buf.resize(out_w * 3, 0.0);
        }
        self.row_of = [None, None];

        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * p.std[c]));
        let bias: [f32; 3] = std::array::from_fn(|c| -p.mean[c] / p.std[c]);
        let sources = p.channel_order.plane_sources();
        let plane_len = out_w * p.out_height as usize;
        let (plane0, rest) = out.split_at_mut(plane_len);
        let (plane1, plane2) = rest.split_at_mut(plane_len);
        let planes = [plane0, plane1, plane2];
        let planes_by_channel: [usize; 3] =
            std::array::from_fn(|c| sources.iter().position(|&s| s == c).unwrap_or(c));

        for oy in 0..p.out_height as usize {
            let (sy0, sy1, fy) = (self.rows.i0[oy], self.rows.i1[oy], self.rows.frac[oy]);
            let slot0 = self.ensure_row(sy0, picture);
            let slot1 = self.ensure_row_avoiding(sy1, slot0, picture);
            let (top, bottom) = (&self.row_buf[slot0], &self.row_buf[slot1]);
            let gy = 1.0 - fy;
            let row_start = oy * out_w;
            for c in 0..3 {
                let plane = &mut planes[planes_by_channel[c]][row_start..row_start + out_w];
                let top = &top[c * out_w..(c + 1) * out_w];
                let bottom = &bottom[c * out_w..(c + 1) * out_w];
                let (s, b) = (scale[c], bias[c]);
                for ((o, &t), &bt) in plane.iter_mut().zip(top).zip(bottom) {
                    *o = (gy * t + fy * bt) * s + b;
                }
            }
        }
    }

    /// Makes sure source row `sy`, horizontally interpolated, is in one of the two buffers;
    /// returns which.
    fn ensure_row<P: SourcePicture>(&mut self, sy: u32, picture: &P) -> usize {
        if let Some(slot) = self.row_of.iter().position(|&r| r == Some(sy)) {
            return slot;
        }
        // Replace the buffer holding the lower row (rows only move down).
        let slot = match self.row_of {
            [None, _] => 0,
            [_, None] => 1,
            [Some(a), Some(b)] => usize::from(b < a),
        };
        self.fill_row(slot, sy, picture);
        slot
    }

    /// As [`Self::ensure_row`], but never evicts `keep`.
    fn ensure_row_avoiding<P: SourcePicture>(
        &mut self,
        sy: u32,
        keep: usize,
        picture: &P,
    ) -> usize {
        if self.row_of[keep] == Some(sy) {
            return keep;
        }
        let other = 1 - keep;
        if self.row_of[other] != Some(sy) {
            self.fill_row(other, sy, picture);
        }
        other
    }

    /// Step 2 and the horizontal half of step 3 for source row `sy` into buffer `slot`.
    fn fill_row<P: SourcePicture>(&mut self, slot: usize, sy: u32, picture: &P) {
        let row = picture.row(sy as usize);
        let out_w = self.cols.frac.len();
        let (r_buf, gb) = self.row_buf[slot].split_at_mut(out_w);
        let (g_buf, b_buf) = gb.split_at_mut(out_w);
        for (ox, ((&x0, &x1), &fx)) in self
            .cols
            .i0
            .iter()
            .zip(&self.cols.i1)
            .zip(&self.cols.frac)
            .enumerate()
        {
            let a = row.rgb(x0 as usize);
            let b = row.rgb(x1 as usize);
            let gx = 1.0 - fx;
            r_buf[ox] = gx * a[0] + fx * b[0];
            g_buf[ox] = gx * a[1] + fx * b[1];
            b_buf[ox] = gx * a[2] + fx * b[2];
        }
        self.row_of[slot] = Some(sy);
    }
}

/// Turns decoded pictures into the model's input, one image at a time: the worker's
/// preprocessing stage, with a CPU backend ([`Preprocessor`]) and a CUDA one
/// ([`cuda::CudaPreprocessor`]) that compute the same thing (the module documentation).
pub trait Preprocess: Send {
    /// The model input's parameters.
    fn params(&self) -> &PreprocessParams;

    /// Writes `picture`'s model input into `out` (exactly [`PreprocessParams::output_len`]
    /// values, planar, in host memory, where the engine reads its batch).
    ///
    /// # Errors
    ///
    /// [`PreprocessError`] for sizes that cannot be preprocessed, or a GPU failure; `out` is
    /// then unspecified.
    fn run(&mut self, picture: &Picture, out: &mut [f32]) -> Result<(), PreprocessError>;

    /// A short name for logs: `"cpu"` or `"cuda"`.
    fn backend(&self) -> &'static str;
}

/// Preprocesses pictures of any size for one model, from I420 ([`Preprocessor::run`]) or RGB8
/// ([`Preprocessor::run_rgb`]); keeps its tables and row buffers between calls, so a stream of
/// same-sized pictures allocates nothing after the first.
#[derive(Clone, Debug)]
pub struct Preprocessor {
    resampler: Resampler,
    yuv: Box<YuvTables>,
}

impl Preprocessor {
    /// A preprocessor for a model's input.
    #[must_use]
    pub fn new(params: PreprocessParams) -> Self {
        Self {
            resampler: Resampler::new(params),
            yuv: Box::new(YuvTables::new()),
        }
    }

    /// The parameters.
    #[must_use]
    pub const fn params(&self) -> &PreprocessParams {
        &self.resampler.params
    }

    /// Preprocesses a frame into `out` (exactly [`PreprocessParams::output_len`] values).
    ///
    /// # Errors
    ///
    /// As [`Preprocessor::run`].
    pub fn run_frame(&mut self, frame: &I420Frame, out: &mut [f32]) -> Result<(), PreprocessError> {
        self.run(&frame.y, &frame.u, &frame.v, frame.width, frame.height, out)
    }

    /// Preprocesses tightly packed I420 planes of a `width × height` picture into `out`
    /// (exactly [`PreprocessParams::output_len`] values), as the module documentation defines.
    ///
    /// # Errors
    ///
    /// [`PreprocessError::EmptySize`], [`PreprocessError::PlaneSize`] or
    /// [`PreprocessError::OutputSize`]; `out` is untouched then.
    pub fn run(
        &mut self,
        y: &[u8],
        u: &[u8],
        v: &[u8],
        width: u32,
        height: u32,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        let p = &self.resampler.params;
        check_empty(width, height, p)?;
        let luma = width as usize * height as usize;
        let (cw, ch) = I420Frame::chroma_size(width, height);
        let chroma = cw as usize * ch as usize;
        for (plane, got, expected) in [
            ("Y", y.len(), luma),
            ("U", u.len(), chroma),
            ("V", v.len(), chroma),
        ] {
            if got != expected {
                return Err(PreprocessError::PlaneSize {
                    plane,
                    expected,
                    got,
                    width,
                    height,
                });
            }
        }
        check_output(p, out)?;
        let picture = I420Picture {
            y,
            u,
            v,
            width: width as usize,
            chroma_width: cw as usize,
            tables: &self.yuv,
        };
        self.resampler.run(&picture, width, height, out);
        Ok(())
    }

    /// Preprocesses a tightly packed RGB8 picture (`3 × width × height` bytes, R, G, B per
    /// pixel, row-major) into `out` (exactly [`PreprocessParams::output_len`] values): the module
    /// documentation's steps with step 2 replaced by reading the bytes as they are.
    ///
    /// # Errors
    ///
    /// [`PreprocessError::EmptySize`], [`PreprocessError::RgbSize`] or
    /// [`PreprocessError::OutputSize`]; `out` is untouched then.
    pub fn run_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        let p = &self.resampler.params;
        check_empty(width, height, p)?;
        let expected = 3 * width as usize * height as usize;
        if rgb.len() != expected {
            return Err(PreprocessError::RgbSize {
                expected,
                got: rgb.len(),
                width,
                height,
            });
        }
        check_output(p, out)?;
        let picture = RgbPicture {
            rgb,
            width: width as usize,
        };
        self.resampler.run(&picture, width, height, out);
        Ok(())
    }
}

fn check_empty(width: u32, height: u32, p: &PreprocessParams) -> Result<(), PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptySize {
            what: "picture",
            width,
            height,
        });
    }
    if p.out_width == 0 || p.out_height == 0 {
        return Err(PreprocessError::EmptySize {
            what: "model input",
            width: p.out_width,
            height: p.out_height,
        });
    }
    Ok(())
}

fn check_output(p: &PreprocessParams, out: &[f32]) -> Result<(), PreprocessError> {
    if out.len() != p.output_len() {
        return Err(PreprocessError::OutputSize {
            expected: p.output_len(),
            got: out.len(),
        });
    }
    Ok(())
}

/// Preprocesses one I420 picture (tightly packed planes, `width × height`) into `out`
/// (exactly `3 × out_height × out_width` values), as the module documentation defines.
/// A [`Preprocessor`] does the same and keeps its tables between pictures.
///
/// # Errors
///
/// [`PreprocessError`] when a size is zero or a slice has the wrong length.
pub fn preprocess_i420(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    width: u32,
    height: u32,
    params: &PreprocessParams,
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    Preprocessor::new(*params).run(y, u, v, width, height, out)
}

/// Preprocesses one RGB8 picture (`3 × width × height` bytes) into `out` (exactly
/// `3 × out_height × out_width` values), as [`Preprocessor::run_rgb`] does.
///
/// # Errors
///
/// [`PreprocessError`] when a size is zero or a slice has the wrong length.
pub fn preprocess_rgb8(
    rgb: &[u8],
    width: u32,
    height: u32,
    params: &PreprocessParams,
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    Preprocessor::new(*params).run_rgb(rgb, width, height, out)
}

/// The CPU backend. A picture in CUDA memory is downloaded first (into a buffer kept between
/// calls); the GPU path never sends one here unless its CUDA backend is unavailable.
#[derive(Debug)]
pub struct CpuPreprocess {
    preprocessor: Preprocessor,
    downloaded: I420Frame,
}

impl CpuPreprocess {
    /// A CPU preprocessing stage for a model's input.
    #[must_use]
    pub fn new(params: PreprocessParams) -> Self {
        Self {
            preprocessor: Preprocessor::new(params),
            downloaded: I420Frame::filled(0, 0, (0, 0, 0)),
        }
    }
}

impl Preprocess for CpuPreprocess {
    fn params(&self) -> &PreprocessParams {
        self.preprocessor.params()
    }

    fn run(&mut self, picture: &Picture, out: &mut [f32]) -> Result<(), PreprocessError> {
        let frame = picture
            .to_host(&mut self.downloaded)
            .map_err(|e| PreprocessError::Gpu {
                reason: e.to_string(),
            })?;
        self.preprocessor.run_frame(frame, out)
    }

    fn backend(&self) -> &'static str {
        "cpu"
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The module documentation, written out as plainly as possible (in f64).
    fn reference(frame: &I420Frame, p: &PreprocessParams) -> Vec<f32> {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let cw = w.div_ceil(2);
        let rgb = |x: usize, y: usize| -> [f64; 3] {
            let yy = f64::from(frame.y[y * w + x]);
            let uu = f64::from(frame.u[(y / 2) * cw + x / 2]);
            let vv = f64::from(frame.v[(y / 2) * cw + x / 2]);
            [
                (1.164 * (yy - 16.0) + 1.596 * (vv - 128.0)).clamp(0.0, 255.0),
                (1.164 * (yy - 16.0) - 0.392 * (uu - 128.0) - 0.813 * (vv - 128.0))
                    .clamp(0.0, 255.0),
                (1.164 * (yy - 16.0) + 2.017 * (uu - 128.0)).clamp(0.0, 255.0),
            ]
        };
        reference_resample(w, h, rgb, p)
    }

    /// Steps 1 and 3–5 in f64 over any source of RGB values in 0..255.
    fn reference_resample(
        w: usize,
        h: usize,
        rgb: impl Fn(usize, usize) -> [f64; 3],
        p: &PreprocessParams,
    ) -> Vec<f32> {
        let (ow, oh) = (p.out_width as usize, p.out_height as usize);
        let src = |o: usize, n_in: usize, n_out: usize| -> (usize, usize, f64) {
            let s =
                ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i0 = s.floor() as usize;
            (i0, (i0 + 1).min(n_in - 1), s - i0 as f64)
        };
        let mut out = vec![0.0_f32; 3 * ow * oh];
        for oy in 0..oh {
            let (y0, y1, fy) = src(oy, h, oh);
            for ox in 0..ow {
                let (x0, x1, fx) = src(ox, w, ow);
                let (p00, p10, p01, p11) = (rgb(x0, y0), rgb(x1, y0), rgb(x0, y1), rgb(x1, y1));
                for c in 0..3 {
                    let top = (1.0 - fx) * p00[c] + fx * p10[c];
                    let bottom = (1.0 - fx) * p01[c] + fx * p11[c];
                    let value = (1.0 - fy) * top + fy * bottom;
                    let norm = (value / 255.0 - f64::from(p.mean[c])) / f64::from(p.std[c]);
                    let plane = match p.channel_order {
                        ChannelOrder::Rgb => c,
                        ChannelOrder::Bgr => 2 - c,
                    };
                    out[plane * ow * oh + oy * ow + ox] = norm as f32;
                }
            }
        }
        out
    }

    fn imagenet(out_width: u32, out_height: u32, channel_order: ChannelOrder) -> PreprocessParams {
        PreprocessParams {
            out_width,
            out_height,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            channel_order,
        }
    }

    fn run(frame: &I420Frame, p: &PreprocessParams) -> Vec<f32> {
        let mut out = vec![f32::NAN; p.output_len()];
        preprocess_i420(
            &frame.y,
            &frame.u,
            &frame.v,
            frame.width,
            frame.height,
            p,
            &mut out,
        )
        .unwrap();
        out
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn arb_frame(max_side: u32) -> impl Strategy<Value = I420Frame> {
        (1..=max_side, 1..=max_side).prop_flat_map(|(w, h)| {
            let (cw, ch) = I420Frame::chroma_size(w, h);
            let luma = (w * h) as usize;
            let chroma = (cw * ch) as usize;
            (
                proptest::collection::vec(any::<u8>(), luma),
                proptest::collection::vec(any::<u8>(), chroma),
                proptest::collection::vec(any::<u8>(), chroma),
            )
                .prop_map(move |(y, u, v)| I420Frame {
                    width: w,
                    height: h,
                    y,
                    u,
                    v,
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn matches_the_reference(
            frame in arb_frame(23),
            out_w in 1u32..=29,
            out_h in 1u32..=29,
            bgr in any::<bool>(),
        ) {
            let order = if bgr { ChannelOrder::Bgr } else { ChannelOrder::Rgb };
            let p = imagenet(out_w, out_h, order);
            let got = run(&frame, &p);
            let want = reference(&frame, &p);
            let diff = max_abs_diff(&got, &want);
            prop_assert!(diff < 1e-4, "max |Δ| = {}", diff);
        }

        #[test]
        fn reused_preprocessor_matches_a_fresh_one(
            a in arb_frame(17),
            b in arb_frame(17),
        ) {
            let p = imagenet(11, 7, ChannelOrder::Rgb);
            let mut pre = Preprocessor::new(p);
            let mut out = vec![0.0; p.output_len()];
            for frame in [&a, &b, &a] {
                pre.run_frame(frame, &mut out).unwrap();
                prop_assert_eq!(&out, &run(frame, &p));
            }
        }
    }

    fn arb_rgb(max_side: u32) -> impl Strategy<Value = (u32, u32, Vec<u8>)> {
        (1..=max_side, 1..=max_side).prop_flat_map(|(w, h)| {
            (
                Just(w),
                Just(h),
                proptest::collection::vec(any::<u8>(), (3 * w * h) as usize),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn rgb_matches_the_reference(
            (w, h, rgb) in arb_rgb(23),
            out_w in 1u32..=29,
            out_h in 1u32..=29,
            bgr in any::<bool>(),
        ) {
            let order = if bgr { ChannelOrder::Bgr } else { ChannelOrder::Rgb };
            let p = imagenet(out_w, out_h, order);
            let mut got = vec![f32::NAN; p.output_len()];
            preprocess_rgb8(&rgb, w, h, &p, &mut got).unwrap();
            let (wu, hu) = (w as usize, h as usize);
            let want = reference_resample(
                wu,
                hu,
                |x, y| std::array::from_fn(|c| f64::from(rgb[3 * (y * wu + x) + c])),
                &p,
            );
            let diff = max_abs_diff(&got, &want);
            prop_assert!(diff < 1e-4, "max |Δ| = {}", diff);
        }

        #[test]
        fn one_preprocessor_alternates_yuv_and_rgb(
            frame in arb_frame(13),
            (w, h, rgb) in arb_rgb(13),
        ) {
            let p = imagenet(9, 6, ChannelOrder::Bgr);
            let mut pre = Preprocessor::new(p);
            let mut out = vec![0.0; p.output_len()];
            let mut want = vec![0.0; p.output_len()];
            for _ in 0..2 {
                pre.run_frame(&frame, &mut out).unwrap();
                prop_assert_eq!(&out, &run(&frame, &p));
                pre.run_rgb(&rgb, w, h, &mut out).unwrap();
                preprocess_rgb8(&rgb, w, h, &p, &mut want).unwrap();
                prop_assert_eq!(&out, &want);
            }
        }
    }

    #[test]
    fn rgb_of_a_grey_yuv_picture_matches_the_yuv_path() {
        // A grey I420 picture (U = V = 128) converts to R = G = B = clamp(1.164·(Y − 16)); the
        // same values as RGB bytes give the same output where that value is a whole number.
        let mut frame = I420Frame::filled(4, 2, (16, 128, 128));
        frame.y = vec![16, 16, 16, 16, 16, 16, 16, 16];
        let p = imagenet(3, 5, ChannelOrder::Rgb);
        let mut out = vec![0.0; p.output_len()];
        preprocess_rgb8(&[0; 3 * 8], 4, 2, &p, &mut out).unwrap();
        assert_eq!(out, run(&frame, &p));
    }

    #[test]
    fn rgb_wrong_sizes_are_errors_and_leave_out_untouched() {
        let p = imagenet(4, 4, ChannelOrder::Rgb);
        let mut out = vec![7.0; p.output_len()];
        let err = preprocess_rgb8(&[0; 3 * 15 - 1], 5, 3, &p, &mut out);
        assert!(matches!(
            err,
            Err(PreprocessError::RgbSize {
                expected: 45,
                got: 44,
                width: 5,
                height: 3
            })
        ));
        assert!(err.unwrap_err().to_string().contains("5×3 RGB8"));
        let err = preprocess_rgb8(&[0; 45], 5, 3, &p, &mut out[1..]);
        assert!(matches!(err, Err(PreprocessError::OutputSize { .. })));
        let err = preprocess_rgb8(&[], 0, 3, &p, &mut out);
        assert!(matches!(err, Err(PreprocessError::EmptySize { .. })));
        assert!(out.iter().all(|&x| x == 7.0));
    }

    #[test]
    fn large_downscale_and_upscale_match_the_reference() {
        // A deterministic pseudo-random 1280×720 picture to 520×520, and 37×21 to 128×96.
        let mut state = 0x1234_5678_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        };
        for (w, h, ow, oh) in [(1280, 720, 520, 520), (37, 21, 128, 96)] {
            let mut frame = I420Frame::filled(w, h, (0, 0, 0));
            frame.y.iter_mut().for_each(|b| *b = next());
            frame.u.iter_mut().for_each(|b| *b = next());
            frame.v.iter_mut().for_each(|b| *b = next());
            let p = imagenet(ow, oh, ChannelOrder::Rgb);
            let diff = max_abs_diff(&run(&frame, &p), &reference(&frame, &p));
            assert!(diff < 1e-4, "{w}×{h} → {ow}×{oh}: max |Δ| = {diff}");
        }
    }

    #[test]
    fn conversion_tables_equal_the_formulas_bit_for_bit() {
        let tables = YuvTables::new();
        for y in 0..=255u8 {
            for u in (0..=255u8).step_by(3) {
                for v in (0..=255u8).step_by(5) {
                    let (c, d, e) = (
                        1.164 * (f32::from(y) - 16.0),
                        f32::from(u) - 128.0,
                        f32::from(v) - 128.0,
                    );
                    let want = [
                        (c + 1.596 * e).clamp(0.0, 255.0),
                        (c - 0.392 * d - 0.813 * e).clamp(0.0, 255.0),
                        (c + 2.017 * d).clamp(0.0, 255.0),
                    ];
                    assert_eq!(
                        tables.rgb(y, u, v).map(f32::to_bits),
                        want.map(f32::to_bits)
                    );
                }
            }
        }
    }

    #[test]
    fn sampling_tables_match_the_float_formula() {
        for (n_in, n_out) in [
            (4, 2),
            (2, 4),
            (1920, 520),
            (1080, 520),
            (7, 29),
            (1, 5),
            (5, 1),
        ] {
            let axis = Axis::new(n_in, n_out);
            for o in 0..n_out as usize {
                let s = ((o as f64 + 0.5) * f64::from(n_in) / f64::from(n_out) - 0.5)
                    .clamp(0.0, f64::from(n_in - 1));
                assert_eq!(axis.i0[o], s.floor() as u32, "{n_in}→{n_out} @ {o}");
                assert_eq!(axis.i1[o], (axis.i0[o] + 1).min(n_in - 1));
                let frac = s - s.floor();
                assert!(
                    (f64::from(axis.frac[o]) - frac).abs() < 1e-7,
                    "{n_in}→{n_out} @ {o}"
                );
            }
        }
        // PyTorch, 4 → 2: positions 0.5 and 2.5.
        let axis = Axis::new(4, 2);
        assert_eq!((axis.i0, axis.frac), (vec![0, 2], vec![0.5, 0.5]));
    }

    #[test]
    fn flat_colours_give_known_values() {
        // Y=235, U=V=128 is limited-range white: 1.164 · 219 = 254.916 (not quite 255).
        let p = PreprocessParams {
            out_width: 4,
            out_height: 3,
            mean: [0.0; 3],
            std: [1.0; 3],
            channel_order: ChannelOrder::Rgb,
        };
        let white = run(&I420Frame::filled(6, 5, (235, 128, 128)), &p);
        assert!(
            white.iter().all(|&x| (x - 254.916 / 255.0).abs() < 1e-6),
            "{white:?}"
        );
        let above = run(&I420Frame::filled(6, 5, (255, 128, 128)), &p);
        assert!(above.iter().all(|&x| x == 1.0), "clamped to 255: {above:?}");
        let black = run(&I420Frame::filled(6, 5, (16, 128, 128)), &p);
        assert!(black.iter().all(|&x| x == 0.0), "{black:?}");
        // Pure limited-range red (Y=81, U=90, V=240): R high, B low; BGR swaps the planes.
        let red = run(&I420Frame::filled(2, 2, (81, 90, 240)), &p);
        let n = 12;
        assert!(red[..n].iter().all(|&r| r > 0.99), "{red:?}");
        assert!(red[2 * n..].iter().all(|&b| b < 0.01), "{red:?}");
        let bgr = run(
            &I420Frame::filled(2, 2, (81, 90, 240)),
            &PreprocessParams {
                channel_order: ChannelOrder::Bgr,
                ..p
            },
        );
        assert_eq!(&bgr[..n], &red[2 * n..]);
        assert_eq!(&bgr[2 * n..], &red[..n]);
    }

    #[test]
    fn same_size_is_the_identity_resample() {
        let mut frame = I420Frame::filled(4, 2, (16, 128, 128));
        frame.y = vec![16, 50, 100, 235, 60, 70, 80, 90];
        let p = PreprocessParams {
            out_width: 4,
            out_height: 2,
            mean: [0.0; 3],
            std: [1.0; 3],
            channel_order: ChannelOrder::Rgb,
        };
        let out = run(&frame, &p);
        for (i, &yv) in frame.y.iter().enumerate() {
            let want = (1.164 * (f32::from(yv) - 16.0)).clamp(0.0, 255.0) / 255.0;
            assert!((out[i] - want).abs() < 1e-6, "{i}: {} vs {want}", out[i]);
        }
    }

    #[test]
    fn wrong_sizes_are_errors_and_leave_out_untouched() {
        let frame = I420Frame::filled(5, 3, (100, 100, 100));
        let p = imagenet(4, 4, ChannelOrder::Rgb);
        let mut out = vec![7.0; p.output_len()];
        let err = preprocess_i420(&frame.y[1..], &frame.u, &frame.v, 5, 3, &p, &mut out);
        assert!(matches!(
            err,
            Err(PreprocessError::PlaneSize {
                plane: "Y",
                expected: 15,
                got: 14,
                ..
            })
        ));
        // Chroma of a 5×3 picture is 3×2.
        let err = preprocess_i420(&frame.y, &frame.u, &frame.v[..5], 5, 3, &p, &mut out);
        assert!(matches!(
            err,
            Err(PreprocessError::PlaneSize {
                plane: "V",
                expected: 6,
                ..
            })
        ));
        let err = preprocess_i420(&frame.y, &frame.u, &frame.v, 5, 3, &p, &mut out[1..]);
        assert!(matches!(err, Err(PreprocessError::OutputSize { .. })));
        let err = preprocess_i420(&[], &[], &[], 0, 3, &p, &mut out);
        assert!(matches!(
            err,
            Err(PreprocessError::EmptySize {
                what: "picture",
                ..
            })
        ));
        assert!(out.iter().all(|&x| x == 7.0));
    }

    #[test]
    fn params_come_from_the_manifest() {
        let m = ModelManifest {
            name: "m".into(),
            input_name: "i".into(),
            output_name: "o".into(),
            input_width: 520,
            input_height: 260,
            channel_order: ChannelOrder::Bgr,
            mean: [0.1, 0.2, 0.3],
            std: [0.4, 0.5, 0.6],
            classes: crate::engine::ClassSet::CityscapesTrain,
            output_stride: 8,
            precision: crate::engine::Precision::Fp32,
            source: None,
        };
        let p = PreprocessParams::from(&m);
        assert_eq!((p.out_width, p.out_height), (520, 260));
        assert_eq!(p.mean, m.mean);
        assert_eq!(p.std, m.std);
        assert_eq!(p.channel_order, ChannelOrder::Bgr);
        assert_eq!(p.output_len(), m.input_len());
    }
}
