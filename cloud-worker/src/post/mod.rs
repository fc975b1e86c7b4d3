//! Post-processing on the CPU: logits → bilinear upsample → argmax → class map, histogram,
//! compact downscale, colorize, and alpha blend over the decoded frame.
//!
//! These functions are the specification for the fused CUDA kernel: the GPU path must produce
//! the same bytes. Every float computation is spelled out in the function docs as a sequence of
//! IEEE-754 binary32 operations, each rounded to nearest-even, **without fused multiply-add**
//! (Rust never contracts `a * b + c`; nvcc does by default, so the kernel must use
//! `__fmul_rn`/`__fadd_rn`/`__fsub_rn` or be built with `--fmad=false`).

use crate::classes::ClassTable;
use crate::frame::Picture;

pub mod cuda;

/// Largest number of classes a `u8` class map can hold.
pub const MAX_CLASSES: usize = 256;

/// Invalid arguments to a post-processing function. Nothing here panics on bad sizes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PostError {
    /// A width, height or class count was zero.
    #[error("{what} is zero")]
    Zero {
        /// Which argument.
        what: &'static str,
    },
    /// More classes than a `u8` class map can hold.
    #[error("{classes} classes, at most {MAX_CLASSES} fit in a u8 class map")]
    TooManyClasses {
        /// The class count given.
        classes: usize,
    },
    /// A buffer has the wrong length for the sizes given.
    #[error("{what} has {actual} elements, expected {expected}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Length implied by the sizes.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The sizes multiply past `usize` (or past `u32` where a count must fit one).
    #[error("sizes overflow")]
    Overflow,
    /// The blend factor was not a finite number in `[0, 1]`.
    #[error("alpha {0} is not in [0, 1]")]
    Alpha(f32),
    /// The CUDA backend failed (a launch, a copy, or a kernel that cannot be loaded).
    #[error("CUDA post-processing failed: {reason}")]
    Gpu {
        /// What failed.
        reason: String,
    },
}

/// One image's logits, as the engine wrote them: `classes × height × width`, row-major.
#[derive(Clone, Copy, Debug)]
pub struct ImageLogits<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Logit channels.
    pub classes: usize,
    /// Logits height.
    pub height: usize,
    /// Logits width.
    pub width: usize,
}

/// What post-processing gives for one picture; reused between frames, so that a stream of
/// same-sized pictures allocates nothing after the first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostOutput {
    /// The class map at the picture's size, `width × height`, row-major.
    pub class_map: Vec<u8>,
    /// Pixels per class, one entry per class.
    pub histogram: Vec<u32>,
}

/// Logits → class map at the picture's size → class histogram: the worker's post-processing
/// stage, with a CPU backend ([`CpuPost`]) and a CUDA one ([`cuda::CudaPost`]) that give the
/// same bytes ([`upsample_argmax`] defines them).
pub trait Post: Send {
    /// Upsamples `logits` to `picture`'s size, takes the argmax per pixel and counts the
    /// pixels per class into `out`.
    ///
    /// # Errors
    ///
    /// [`PostError`] for sizes that do not fit, or a GPU failure.
    fn run(
        &mut self,
        logits: ImageLogits<'_>,
        picture: &Picture,
        out: &mut PostOutput,
    ) -> Result<(), PostError>;

    /// A short name for logs: `"cpu"` or `"cuda"`.
    fn backend(&self) -> &'static str;
}

/// The CPU backend: [`upsample_argmax`], then [`histogram`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuPost;

impl Post for CpuPost {
    fn run(
        &mut self,
        logits: ImageLogits<'_>,
        picture: &Picture,
        out: &mut PostOutput,
    ) -> Result<(), PostError> {
        let (w, h) = (picture.width() as usize, picture.height() as usize);
        out.class_map.resize(product(&[w, h])?, 0);
        upsample_argmax(
            logits.data,
            logits.classes,
            logits.height,
            logits.width,
            h,
            w,
            &mut out.class_map,
        )?;
        out.histogram.resize(logits.classes, 0);
        histogram(&out.class_map, logits.classes, &mut out.histogram)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "cpu"
    }
}

fn nonzero(value: usize, what: &'static str) -> Result<(), PostError> {
    if value == 0 {
        Err(PostError::Zero { what })
    } else {
        Ok(())
    }
}

fn product(dims: &[usize]) -> Result<usize, PostError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(PostError::Overflow)
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), PostError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PostError::Length {
            what,
            expected,
            actual,
        })
    }
}

/// Source taps of one output coordinate along one axis.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

/// The bilinear taps for output coordinate `dst` when resizing an axis from `input` to
/// `output` samples (both non-zero), `align_corners=false`. See [`upsample_argmax`] for the
/// exact arithmetic.
fn tap(dst: usize, input: usize, output: usize) -> Tap {
    // Sizes are image dimensions, far below 2^24, so the conversions are exact.
    #[allow(clippy::cast_precision_loss)]
    let (dst_f, in_f, out_f) = (dst as f32, input as f32, output as f32);
    #[allow(clippy::cast_precision_loss)]
    let last = (input - 1) as f32;
    let scale = in_f / out_f;
    let src = ((dst_f + 0.5) * scale - 0.5).clamp(0.0, last);
    // src is in [0, input-1], so truncation is floor and the index is in range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i0 = (src as usize).min(input - 1);
    let i1 = (i0 + 1).min(input - 1);
    #[allow(clippy::cast_precision_loss)]
    let w1 = src - i0 as f32;
    Tap {
        i0,
        i1,
        w0: 1.0 - w1,
        w1,
    }
}

/// Bilinearly upsamples one image's logits and writes the per-pixel argmax.
///
/// `logits` is `classes × in_h × in_w` (NCHW with N = 1, row-major), `class_map` is
/// `out_h × out_w`. Any sizes are accepted (up- or downscaling, non-integer factors, equal
/// sizes); `classes` must be 1..=256.
///
/// # Exact arithmetic (binary32, round-to-nearest-even, no FMA)
///
/// For each axis with input size `n` and output size `m`, output coordinate `d`:
///
/// ```text
/// scale = f32(n) / f32(m)
/// src   = clamp((f32(d) + 0.5) * scale - 0.5, 0, f32(n - 1))   // evaluated left to right
/// i0    = floor(src)            i1 = min(i0 + 1, n - 1)
/// w1    = src - f32(i0)         w0 = 1 - w1
/// ```
///
/// This is PyTorch's `F.interpolate(mode="bilinear", align_corners=False)` index rule; PyTorch
/// does not clamp `src` above (it clamps the index and keeps `w1`), which differs from this only
/// by rounding at the last row/column. With `(iy0, iy1, wy0, wy1)` for the output row and
/// `(ix0, ix1, wx0, wx1)` for the output column, the logit of class `c` is
///
/// ```text
/// top = wx0 * L[c][iy0][ix0] + wx1 * L[c][iy0][ix1]
/// bot = wx0 * L[c][iy1][ix0] + wx1 * L[c][iy1][ix1]
/// v_c = wy0 * top + wy1 * bot
/// ```
///
/// (each line evaluated left to right: two products, then their sum). The class is the
/// smallest `c` such that no later class has a strictly greater `v`: start with `best = v_0`,
/// class 0, and for `c = 1, 2, …` take `c` when `v_c > best`. Ties therefore go to the lowest
/// index; a NaN never wins a comparison (and a NaN `v_0` keeps class 0).
///
/// # Shortcuts that give the same bytes
///
/// Every output pixel lies in a *cell*: the four logit pixels its taps read. Two facts about a
/// cell let the implementation skip work without changing a single output byte. Each rests on
/// the operations above being monotone in their inputs for the non-negative weights, and on
/// their rounding error being below about 16 units of `2⁻²⁴ · M` (`M` the largest |logit| of
/// the cell), far under a margin of `2⁻¹⁶ · M`. Both apply only when the cell's logits are
/// finite, at most 1e30 in magnitude, and the margins at least 1e-30.
///
/// 1. **Agreement.** If each of the four pixels has class `c` as its argmax with a margin
///    `m = L_c − max_{k≠c} L_k > 2⁻¹⁶ · M`, every output pixel of the cell is `c`.
/// 2. **Candidates.** Let `floor = max_c min(L_c over the four pixels)`. A class `k` with
///    `max(L_k over the four pixels) < floor − 2⁻¹⁶ · M` is below that class everywhere in the
///    cell, so it is never the argmax; only the other classes are mixed, in index order (the
///    first maximum among them is the first among all).
///
/// Both are tested against a per-pixel reference, with margins around the bound. A GPU kernel
/// may take them or not.
///
/// # Errors
///
/// [`PostError`] if a size is zero, `classes > 256`, a buffer length does not match, or the
/// sizes overflow.
pub fn upsample_argmax(
    logits: &[f32],
    classes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    class_map: &mut [u8],
) -> Result<(), PostError> {
    check_upsample_sizes(classes, in_h, in_w, out_h, out_w, logits.len())?;
    check_len("class_map", product(&[out_h, out_w])?, class_map.len())?;

    let xtaps: Vec<Tap> = (0..out_w).map(|x| tap(x, in_w, out_w)).collect();
    let (xw0, xw1): (Vec<f32>, Vec<f32>) = xtaps.iter().map(|t| (t.w0, t.w1)).unzip();
    // Runs of output columns with the same taps: the columns of one cell. Taps are monotone in
    // the column, so each cell is one run.
    let mut runs: Vec<(usize, usize, Tap)> = Vec::new();
    for (x, t) in xtaps.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end, last)) if (last.i0, last.i1) == (t.i0, t.i1) => *end = x + 1,
            _ => runs.push((x, x + 1, *t)),
        }
    }
    let plane = in_h * in_w;
    let cells = Cells {
        logits,
        classes,
        plane,
        winners: Winners::new(logits, classes, plane),
    };

    // What each run holds for the current pair of input rows: its agreed class, or the
    // candidate classes to mix (`candidates[run]`), recomputed when the pair changes.
    let mut agreed: Vec<Option<u8>> = vec![None; runs.len()];
    let mut candidates: Vec<Vec<u8>> = vec![Vec::with_capacity(classes); runs.len()];
    let mut current_rows = None;
    // Running max and argmax of one run; u32 lanes match the f32 ones.
    let mut best = vec![0f32; out_w];
    let mut arg = vec![0u32; out_w];
    for (y, out_row) in class_map.chunks_exact_mut(out_w).enumerate() {
        let ty = tap(y, in_h, out_h);
        if current_rows != Some((ty.i0, ty.i1)) {
            for ((&(_, _, tx), agreed), candidates) in
                runs.iter().zip(&mut agreed).zip(&mut candidates)
            {
                let pixels = [
                    ty.i0 * in_w + tx.i0,
                    ty.i0 * in_w + tx.i1,
                    ty.i1 * in_w + tx.i0,
                    ty.i1 * in_w + tx.i1,
                ];
                *agreed = cells.winners.agreed(pixels);
                if agreed.is_none() {
                    cells.candidates(pixels, candidates);
                }
            }
            current_rows = Some((ty.i0, ty.i1));
        }
        for ((&(start, end, tx), agreed), candidates) in runs.iter().zip(&agreed).zip(&candidates) {
            let out = &mut out_row[start..end];
            if let Some(c) = *agreed {
                out.fill(c);
                continue;
            }
            let (best, arg) = (&mut best[start..end], &mut arg[start..end]);
            let (w0, w1) = (&xw0[start..end], &xw1[start..end]);
            for (j, &k) in candidates.iter().enumerate() {
                let at = |row: usize, col: usize| logits[usize::from(k) * plane + row * in_w + col];
                let (a, b) = (at(ty.i0, tx.i0), at(ty.i0, tx.i1));
                let (c, d) = (at(ty.i1, tx.i0), at(ty.i1, tx.i1));
                let k = u32::from(k);
                // Branch-free selects on same-width lanes so the loops vectorize.
                for (((bv, av), &w0), &w1) in best.iter_mut().zip(arg.iter_mut()).zip(w0).zip(w1) {
                    let top = w0 * a + w1 * b;
                    let bot = w0 * c + w1 * d;
                    let v = ty.w0 * top + ty.w1 * bot;
                    let take = j == 0 || v > *bv;
                    *bv = if take { v } else { *bv };
                    *av = if take { k } else { *av };
                }
            }
            for (o, &a) in out.iter_mut().zip(arg.iter()) {
                // Class indices are < 256.
                #[allow(clippy::cast_possible_truncation)]
                {
                    *o = a as u8;
                }
            }
        }
    }
    Ok(())
}

/// The logits seen cell by cell, for [`upsample_argmax`]'s shortcuts.
struct Cells<'a> {
    logits: &'a [f32],
    classes: usize,
    plane: usize,
    winners: Winners,
}

impl Cells<'_> {
    /// The classes that can win somewhere in the cell of these four pixels, in index order
    /// (shortcut 2 of [`upsample_argmax`]); all of them when the shortcut does not apply.
    fn candidates(&self, pixels: [usize; 4], out: &mut Vec<u8>) {
        out.clear();
        let all = |out: &mut Vec<u8>| {
            // classes ≤ 256 was checked by the caller.
            #[allow(clippy::cast_possible_truncation)]
            out.extend((0..self.classes).map(|c| c as u8));
        };
        let Some(magnitude) = self.winners.finite_magnitude(pixels) else {
            all(out);
            return;
        };
        let corners = |c: usize| pixels.map(|p| self.logits[c * self.plane + p]);
        let floor = (0..self.classes)
            .map(|c| corners(c).into_iter().fold(f32::INFINITY, f32::min))
            .fold(f32::NEG_INFINITY, f32::max);
        let slack = Winners::RELATIVE_MARGIN * magnitude + Winners::MIN_MARGIN;
        for c in 0..self.classes {
            let high = corners(c).into_iter().fold(f32::NEG_INFINITY, f32::max);
            if high >= floor - slack {
                // c < 256.
                #[allow(clippy::cast_possible_truncation)]
                out.push(c as u8);
            }
        }
    }
}

/// Each input pixel's winning class, its margin over the runner-up and its largest |logit|:
/// what [`upsample_argmax`]'s shortcut needs.
struct Winners {
    class: Vec<u8>,
    margin: Vec<f32>,
    magnitude: Vec<f32>,
}

impl Winners {
    /// The margin must exceed this share of the largest |logit| (see [`upsample_argmax`]).
    const RELATIVE_MARGIN: f32 = 1.0 / 65536.0;
    /// ... and this, so that underflow's absolute errors cannot matter ...
    const MIN_MARGIN: f32 = 1e-30;
    /// ... and the logits must stay this far below overflow.
    const MAX_MAGNITUDE: f32 = 1e30;

    fn new(logits: &[f32], classes: usize, plane: usize) -> Self {
        let first = &logits[..plane];
        let mut best = first.to_vec();
        let mut second = vec![f32::NEG_INFINITY; plane];
        let mut class = vec![0u8; plane];
        let mut magnitude: Vec<f32> = first.iter().map(|v| v.abs()).collect();
        // NaN and ±inf rule a pixel out: they poison the margin arithmetic.
        let mut finite: Vec<bool> = first.iter().map(|v| v.is_finite()).collect();
        for c in 1..classes {
            let values = &logits[c * plane..][..plane];
            // c < 256 was checked by the caller.
            #[allow(clippy::cast_possible_truncation)]
            let cu = c as u8;
            for (i, &v) in values.iter().enumerate() {
                finite[i] &= v.is_finite();
                magnitude[i] = magnitude[i].max(v.abs());
                if v > best[i] {
                    second[i] = best[i];
                    best[i] = v;
                    class[i] = cu;
                } else if v > second[i] {
                    second[i] = v;
                }
            }
        }
        let margin = best
            .iter()
            .zip(&second)
            .zip(&finite)
            .map(|((b, s), &ok)| if ok { b - s } else { f32::NAN })
            .collect();
        Self {
            class,
            margin,
            magnitude,
        }
    }

    /// The class all four pixels agree on by a safe margin, if they do.
    fn agreed(&self, pixels: [usize; 4]) -> Option<u8> {
        let class = self.class[pixels[0]];
        let mut margin = f32::INFINITY;
        let mut magnitude = 0f32;
        for p in pixels {
            if self.class[p] != class {
                return None;
            }
            // NaN margins (non-finite logits) fail the comparisons below.
            margin = if self.margin[p] < margin {
                self.margin[p]
            } else if self.margin[p] >= margin {
                margin
            } else {
                f32::NAN
            };
            magnitude = magnitude.max(self.magnitude[p]);
        }
        let safe = margin > Self::RELATIVE_MARGIN * magnitude
            && margin >= Self::MIN_MARGIN
            && magnitude <= Self::MAX_MAGNITUDE;
        safe.then_some(class)
    }

    /// The largest |logit| of the four pixels, if all their logits are finite and it is within
    /// the bound the shortcuts need.
    fn finite_magnitude(&self, pixels: [usize; 4]) -> Option<f32> {
        let mut magnitude = 0f32;
        for p in pixels {
            // A NaN margin marks a pixel with a non-finite logit.
            if self.margin[p].is_nan() {
                return None;
            }
            magnitude = magnitude.max(self.magnitude[p]);
        }
        (magnitude <= Self::MAX_MAGNITUDE).then_some(magnitude)
    }
}

/// The size checks of [`upsample_argmax`] (every backend's): no zero side, at most
/// [`MAX_CLASSES`], `logits_len = classes · in_h · in_w`. Returns `out_h · out_w`.
pub(crate) fn check_upsample_sizes(
    classes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    logits_len: usize,
) -> Result<usize, PostError> {
    nonzero(classes, "classes")?;
    nonzero(in_h, "in_h")?;
    nonzero(in_w, "in_w")?;
    nonzero(out_h, "out_h")?;
    nonzero(out_w, "out_w")?;
    if classes > MAX_CLASSES {
        return Err(PostError::TooManyClasses { classes });
    }
    check_len("logits", product(&[classes, in_h, in_w])?, logits_len)?;
    product(&[out_h, out_w])
}

/// Counts the pixels of each class: `out[c]` = number of pixels equal to `c`, for
/// `c < classes`. `out` must have exactly `classes` entries; it is overwritten. Returns the
/// number of pixels whose value is `>= classes` (counted nowhere else).
///
/// # Errors
///
/// [`PostError`] if `classes` is 0 or above 256, `out.len() != classes`, or the map has more
/// than `u32::MAX` pixels.
pub fn histogram(class_map: &[u8], classes: usize, out: &mut [u32]) -> Result<u32, PostError> {
    nonzero(classes, "classes")?;
    if classes > MAX_CLASSES {
        return Err(PostError::TooManyClasses { classes });
    }
    check_len("histogram", classes, out.len())?;
    let total = u32::try_from(class_map.len()).map_err(|_| PostError::Overflow)?;
    let mut counts = [0u32; MAX_CLASSES];
    for &c in class_map {
        counts[usize::from(c)] += 1;
    }
    out.copy_from_slice(&counts[..classes]);
    let counted: u32 = out.iter().sum();
    Ok(total - counted)
}

/// Nearest-neighbour resize of a class map (for the compact map sent back to the camera).
///
/// `class_map` is `h × w`, `out` is `out_h × out_w`. Output pixel `(x, y)` takes input pixel
/// `(sx, sy)` with `sx = floor((x + 0.5) · w / out_w)`, computed exactly in integers as
/// `(2x + 1) · w / (2 · out_w)` (integer division), likewise `sy`; this is always `< w`. Works
/// for any sizes, enlargement included.
///
/// # Errors
///
/// [`PostError`] if a size is zero, a buffer length does not match, or the sizes overflow.
pub fn downscale_nearest(
    class_map: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    out: &mut [u8],
) -> Result<(), PostError> {
    nonzero(w, "w")?;
    nonzero(h, "h")?;
    nonzero(out_w, "out_w")?;
    nonzero(out_h, "out_h")?;
    check_len("class_map", product(&[w, h])?, class_map.len())?;
    check_len("out", product(&[out_w, out_h])?, out.len())?;
    // (2·dst + 1)·in must not overflow: bound by 2·out·in.
    product(&[2, out_w, w])?;
    product(&[2, out_h, h])?;
    let src_index = |dst: usize, input: usize, output: usize| (2 * dst + 1) * input / (2 * output);
    let cols: Vec<usize> = (0..out_w).map(|x| src_index(x, w, out_w)).collect();
    for (y, row) in out.chunks_exact_mut(out_w).enumerate() {
        let src = &class_map[src_index(y, h, out_h) * w..][..w];
        for (o, &sx) in row.iter_mut().zip(&cols) {
            *o = src[sx];
        }
    }
    Ok(())
}

/// Paints a class map with the table's colours: `rgb_out` is packed RGB, 3 bytes per pixel,
/// `rgb_out[3i..3i+3] = table.color(class_map[i])`; classes the table does not have are black.
///
/// # Errors
///
/// [`PostError::Length`] if `rgb_out.len() != 3 · class_map.len()`.
pub fn colorize(class_map: &[u8], table: ClassTable, rgb_out: &mut [u8]) -> Result<(), PostError> {
    let expected = class_map.len().checked_mul(3).ok_or(PostError::Overflow)?;
    check_len("rgb_out", expected, rgb_out.len())?;
    let palette = table.palette();
    for (px, &c) in rgb_out.chunks_exact_mut(3).zip(class_map) {
        px.copy_from_slice(&palette[usize::from(c)]);
    }
    Ok(())
}

/// BT.601 limited-range YUV → RGB of one pixel, unrounded, clamped to `[0, 255]`.
///
/// ```text
/// c = f32(Y) - 16    d = f32(U) - 128    e = f32(V) - 128
/// R = 1.164*c + 1.596*e
/// G = 1.164*c - 0.392*d - 0.813*e          // ((1.164*c) - (0.392*d)) - (0.813*e)
/// B = 1.164*c + 2.017*d
/// each clamped with min(max(x, 0), 255)
/// ```
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [f32; 3] {
    let c = f32::from(y) - 16.0;
    let d = f32::from(u) - 128.0;
    let e = f32::from(v) - 128.0;
    let r = 1.164 * c + 1.596 * e;
    let g = 1.164 * c - 0.392 * d - 0.813 * e;
    let b = 1.164 * c + 2.017 * d;
    [r, g, b].map(|x| x.clamp(0.0, 255.0))
}

/// Converts an I420 frame to RGB and alpha-blends an RGB overlay over it.
///
/// Planes are tightly packed: `frame_y` is `width × height`, `frame_u` and `frame_v` are
/// `ceil(width/2) × ceil(height/2)`; `overlay_rgb` and `out_rgb` are packed RGB,
/// `3 · width · height` bytes. Pixel `(x, y)` uses chroma sample `(x/2, y/2)` (integer
/// division, i.e. nearest 4:2:0 sample, no chroma interpolation).
///
/// # Exact arithmetic (binary32, round-to-nearest-even, no FMA)
///
/// `F` = the frame pixel converted by the BT.601 limited-range formulas
///
/// ```text
/// c = f32(Y) - 16    d = f32(U) - 128    e = f32(V) - 128
/// R = 1.164*c + 1.596*e
/// G = 1.164*c - 0.392*d - 0.813*e      // ((1.164*c) - (0.392*d)) - (0.813*e)
/// B = 1.164*c + 2.017*d
/// ```
///
/// each clamped to `[0, 255]` but **not** rounded; then per channel with overlay value `O`
///
/// ```text
/// out = round((1 - alpha) * F + alpha * f32(O))   // 1 - alpha computed once, in f32
/// ```
///
/// where `round` is round-half-away-from-zero (`f32::round`, CUDA `roundf`); the result is in
/// `[0, 255]` because it is a convex combination of values in that range. With `alpha = 0` this
/// is plain YUV → RGB conversion rounded to bytes; with `alpha = 1` it is the overlay.
///
/// # Errors
///
/// [`PostError`] if a size is zero, a plane length does not match, or `alpha` is not a finite
/// number in `[0, 1]`.
#[allow(clippy::too_many_arguments)]
pub fn blend_over_i420(
    frame_y: &[u8],
    frame_u: &[u8],
    frame_v: &[u8],
    width: usize,
    height: usize,
    overlay_rgb: &[u8],
    alpha: f32,
    out_rgb: &mut [u8],
) -> Result<(), PostError> {
    nonzero(width, "width")?;
    nonzero(height, "height")?;
    if !(0.0..=1.0).contains(&alpha) {
        return Err(PostError::Alpha(alpha));
    }
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let pixels = product(&[width, height])?;
    let rgb_len = product(&[pixels, 3])?;
    check_len("frame_y", pixels, frame_y.len())?;
    check_len("frame_u", product(&[cw, ch])?, frame_u.len())?;
    check_len("frame_v", cw * ch, frame_v.len())?;
    check_len("overlay_rgb", rgb_len, overlay_rgb.len())?;
    check_len("out_rgb", rgb_len, out_rgb.len())?;

    let keep = 1.0 - alpha;
    let rows = frame_y
        .chunks_exact(width)
        .zip(overlay_rgb.chunks_exact(3 * width))
        .zip(out_rgb.chunks_exact_mut(3 * width));
    for (y, ((luma, over), out)) in rows.enumerate() {
        let u_row = &frame_u[(y / 2) * cw..][..cw];
        let v_row = &frame_v[(y / 2) * cw..][..cw];
        for (x, ((&l, o), px)) in luma
            .iter()
            .zip(over.chunks_exact(3))
            .zip(out.chunks_exact_mut(3))
            .enumerate()
        {
            let f = yuv_to_rgb(l, u_row[x / 2], v_row[x / 2]);
            for ((dst, &fc), &oc) in px.iter_mut().zip(&f).zip(o) {
                let v = (keep * fc + alpha * f32::from(oc)).round();
                // A convex combination of values in [0, 255]; the clamp only guards rounding.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                {
                    *dst = v.clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Per-pixel, per-class evaluation straight from the documented formulas, with taps
    /// computed independently of `tap` (f64 floor, explicit clamps).
    fn reference_upsample_argmax(
        logits: &[f32],
        classes: usize,
        in_h: usize,
        in_w: usize,
        out_h: usize,
        out_w: usize,
    ) -> Vec<u8> {
        fn taps(d: usize, n: usize, m: usize) -> (usize, usize, f32, f32) {
            let scale = n as f32 / m as f32;
            let mut src = (d as f32 + 0.5) * scale - 0.5;
            if src < 0.0 {
                src = 0.0;
            }
            if src > (n - 1) as f32 {
                src = (n - 1) as f32;
            }
            let i0 = f64::from(src).floor() as usize;
            let i1 = if i0 + 1 < n { i0 + 1 } else { n - 1 };
            let w1 = src - i0 as f32;
            (i0, i1, 1.0 - w1, w1)
        }
        let at = |c: usize, y: usize, x: usize| logits[(c * in_h + y) * in_w + x];
        let mut out = vec![0u8; out_h * out_w];
        for y in 0..out_h {
            let (y0, y1, wy0, wy1) = taps(y, in_h, out_h);
            for x in 0..out_w {
                let (x0, x1, wx0, wx1) = taps(x, in_w, out_w);
                let mut best_c = 0;
                let mut best_v = f32::NAN;
                for c in 0..classes {
                    let top = wx0 * at(c, y0, x0) + wx1 * at(c, y0, x1);
                    let bot = wx0 * at(c, y1, x0) + wx1 * at(c, y1, x1);
                    let v = wy0 * top + wy1 * bot;
                    if c == 0 || v > best_v {
                        best_v = v;
                        best_c = c;
                    }
                }
                out[y * out_w + x] = best_c as u8;
            }
        }
        out
    }

    fn case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, Vec<f32>)> {
        (1usize..6, 1usize..9, 1usize..9, 1usize..40, 1usize..40).prop_flat_map(
            |(classes, in_h, in_w, out_h, out_w)| {
                // Small integer-valued logits make ties common, exercising the tie rule.
                let values = prop_oneof![(-3i8..3).prop_map(f32::from), -100.0f32..100.0,];
                (
                    Just(classes),
                    Just(in_h),
                    Just(in_w),
                    Just(out_h),
                    Just(out_w),
                    proptest::collection::vec(values, classes * in_h * in_w),
                )
            },
        )
    }

    proptest! {
        #[test]
        fn upsample_matches_reference((classes, in_h, in_w, out_h, out_w, logits) in case()) {
            let mut got = vec![0u8; out_h * out_w];
            upsample_argmax(&logits, classes, in_h, in_w, out_h, out_w, &mut got).unwrap();
            let want = reference_upsample_argmax(&logits, classes, in_h, in_w, out_h, out_w);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn same_size_is_plain_argmax(
            (classes, h, w, logits) in (1usize..5, 1usize..10, 1usize..10).prop_flat_map(
                |(c, h, w)| (Just(c), Just(h), Just(w),
                    proptest::collection::vec(-50.0f32..50.0, c * h * w)))
        ) {
            let mut got = vec![0u8; h * w];
            upsample_argmax(&logits, classes, h, w, h, w, &mut got).unwrap();
            for i in 0..h * w {
                let mut best = 0;
                for c in 1..classes {
                    if logits[c * h * w + i] > logits[best * h * w + i] {
                        best = c;
                    }
                }
                prop_assert_eq!(usize::from(got[i]), best);
            }
        }

        #[test]
        fn nearest_matches_formula(
            (w, h, ow, oh, map) in (1usize..20, 1usize..20, 1usize..30, 1usize..30)
                .prop_flat_map(|(w, h, ow, oh)| (Just(w), Just(h), Just(ow), Just(oh),
                    proptest::collection::vec(any::<u8>(), w * h)))
        ) {
            let mut out = vec![0u8; ow * oh];
            downscale_nearest(&map, w, h, ow, oh, &mut out).unwrap();
            for y in 0..oh {
                for x in 0..ow {
                    let sx = ((x as f64 + 0.5) * w as f64 / ow as f64).floor() as usize;
                    let sy = ((y as f64 + 0.5) * h as f64 / oh as f64).floor() as usize;
                    prop_assert_eq!(out[y * ow + x], map[sy * w + sx]);
                }
            }
        }
    }

    /// Logits whose per-pixel winners lead by margins around the shortcut's bound (and some
    /// far below it, ties, and non-finite values), at magnitudes from 1e-3 to 1e6. Half the
    /// cases share one winner and margin over the whole image, so that whole cells sit at the
    /// bound.
    fn near_bound_case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, Vec<f32>)> {
        let margin = || {
            prop_oneof![
                Just(Winners::RELATIVE_MARGIN),
                Just(Winners::RELATIVE_MARGIN * 1.001),
                Just(Winners::RELATIVE_MARGIN * 0.999),
                Just(1e-7f32),
                Just(3e-7f32),
                Just(0.0f32),
                Just(0.5f32),
                Just(f32::NAN),
                Just(f32::INFINITY),
            ]
        };
        let shared = (any::<bool>(), 0usize..8, margin());
        (
            2usize..5,
            1usize..6,
            1usize..6,
            1usize..24,
            1usize..24,
            shared,
        )
            .prop_flat_map(move |(classes, in_h, in_w, out_h, out_w, shared)| {
                let plane = in_h * in_w;
                let pixel = (
                    0..classes,
                    prop_oneof![Just(1e-3f32), Just(1.0f32), Just(37.5f32), Just(1e6f32)],
                    margin(),
                    proptest::collection::vec(-1.0f32..1.0, classes),
                );
                (
                    Just(classes),
                    Just(in_h),
                    Just(in_w),
                    Just(out_h),
                    Just(out_w),
                    proptest::collection::vec(pixel, plane),
                )
                    .prop_map(
                        move |(classes, in_h, in_w, out_h, out_w, pixels)| {
                            let mut logits = vec![0f32; classes * plane];
                            for (i, (mut winner, scale, mut margin, noise)) in
                                pixels.into_iter().enumerate()
                            {
                                if shared.0 {
                                    // The last class against class 0 is the case rounding can
                                    // break: a tie there goes to class 0.
                                    winner = if shared.1 < 4 {
                                        classes - 1
                                    } else {
                                        shared.1 % classes
                                    };
                                    margin = shared.2;
                                }
                                // Half of the shared cases have the same two leading logits at
                                // every pixel, so that cells sit at the candidate bound too.
                                let flat = shared.0 && shared.1 % 2 == 0;
                                let (scale, spread) = if flat {
                                    (1.0, 0.0)
                                } else {
                                    (scale, 0.1 * noise[0])
                                };
                                // Runner-up at `scale`, the others below it, the winner `margin`
                                // (relative to `scale`) above it.
                                let runner_up = scale * (0.5 + spread);
                                for c in 0..classes {
                                    logits[c * plane + i] =
                                        runner_up - scale * (1.0 + noise[c].abs());
                                }
                                logits[((winner + 1) % classes) * plane + i] = runner_up;
                                logits[winner * plane + i] = if margin.is_finite() {
                                    runner_up + margin * runner_up.abs()
                                } else {
                                    margin
                                };
                            }
                            (classes, in_h, in_w, out_h, out_w, logits)
                        },
                    )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn shortcut_near_its_bound_matches_reference(
            (classes, in_h, in_w, out_h, out_w, logits) in near_bound_case()
        ) {
            let mut got = vec![0u8; out_h * out_w];
            upsample_argmax(&logits, classes, in_h, in_w, out_h, out_w, &mut got).unwrap();
            let want = reference_upsample_argmax(&logits, classes, in_h, in_w, out_h, out_w);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn one_ulp_leads_are_mixed_not_pruned() {
        // Class 1 leads class 0 by one ulp at every logit pixel. Mixed, the two often round to
        // the same value, and a tie goes to class 0: neither shortcut may decide these cells.
        let mut collapsed = 0;
        for r in [0.3f32, 0.5, 0.7, 1.1, 3.7, 17.0, 123.4] {
            let next = f32::from_bits(r.to_bits() + 1);
            let logits = [r, r, r, r, next, next, next, next];
            for (out_h, out_w) in [(7, 9), (16, 16), (45, 80)] {
                let want = reference_upsample_argmax(&logits, 2, 2, 2, out_h, out_w);
                let mut got = vec![9u8; out_h * out_w];
                upsample_argmax(&logits, 2, 2, 2, out_h, out_w, &mut got).unwrap();
                assert_eq!(got, want, "r {r}, {out_w}x{out_h}");
                collapsed += want.iter().filter(|&&c| c == 0).count();
            }
        }
        // The case is only a test if rounding does collapse some pixels.
        assert!(collapsed > 0);
    }

    #[test]
    fn shortcut_needs_four_confident_agreeing_pixels() {
        // Four pixels, two classes: class-1 logits minus class-0 logits give the margins.
        let winners = |class1: [f32; 4]| {
            let mut logits = vec![1.0f32; 4];
            logits.extend_from_slice(&class1);
            Winners::new(&logits, 2, 4)
        };
        let all = [0, 1, 2, 3];
        assert_eq!(winners([3.0; 4]).agreed(all), Some(1));
        assert_eq!(winners([-3.0; 4]).agreed(all), Some(0));
        // One pixel disagrees.
        assert_eq!(winners([3.0, 3.0, 3.0, -3.0]).agreed(all), None);
        // A tie (goes to class 0 at that pixel, with no margin).
        assert_eq!(winners([3.0, 3.0, 1.0, 3.0]).agreed([2, 2, 2, 2]), None);
        // A margin under 2^-16 of the magnitude.
        assert_eq!(winners([1.00001; 4]).agreed(all), None);
        assert_eq!(winners([1.0001; 4]).agreed(all), Some(1));
        // Non-finite logits.
        assert_eq!(winners([f32::INFINITY; 4]).agreed(all), None);
        assert_eq!(winners([3.0, 3.0, f32::NAN, 3.0]).agreed(all), None);
        assert_eq!(
            winners([3.0, 3.0, f32::NAN, 3.0]).agreed([0, 1, 3, 0]),
            Some(1)
        );
        // Beyond the magnitude bound.
        assert_eq!(winners([1e31; 4]).agreed(all), None);
    }

    #[test]
    fn taps_match_pytorch_for_2x() {
        // F.interpolate(size=4) of [a, b]: src = -0.25, 0.25, 0.75, 1.25 → clamped.
        let got: Vec<_> = (0..4).map(|d| tap(d, 2, 4)).collect();
        assert_eq!((got[0].i0, got[0].i1, got[0].w1), (0, 1, 0.0));
        assert_eq!((got[1].i0, got[1].i1, got[1].w1), (0, 1, 0.25));
        assert_eq!((got[2].i0, got[2].i1, got[2].w1), (0, 1, 0.75));
        assert_eq!((got[3].i0, got[3].i1, got[3].w1), (1, 1, 0.0));
    }

    #[test]
    fn upsample_follows_a_moving_boundary() {
        // Two classes on a 1×2 input: class 1 wins on the right; the 8× upsampled boundary sits
        // in the middle.
        let logits = [1.0, 0.0, 0.0, 1.0];
        let mut map = vec![9u8; 16];
        upsample_argmax(&logits, 2, 1, 2, 1, 16, &mut map).unwrap();
        assert_eq!(map, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn ties_go_to_the_lowest_class() {
        let logits = [5.0f32; 3 * 4];
        let mut map = vec![9u8; 9];
        upsample_argmax(&logits, 3, 2, 2, 3, 3, &mut map).unwrap();
        assert!(map.iter().all(|&c| c == 0));
    }

    #[test]
    fn all_256_classes_are_reachable() {
        let mut logits = vec![0f32; 256];
        logits[255] = 1.0;
        let mut map = [0u8; 4];
        upsample_argmax(&logits, 256, 1, 1, 2, 2, &mut map).unwrap();
        assert_eq!(map, [255; 4]);
    }

    #[test]
    fn upsample_rejects_bad_sizes() {
        let mut map = [0u8; 4];
        let logits = [0f32; 8];
        assert_eq!(
            upsample_argmax(&logits, 0, 2, 2, 2, 2, &mut map),
            Err(PostError::Zero { what: "classes" })
        );
        assert_eq!(
            upsample_argmax(&logits, 257, 1, 1, 2, 2, &mut map),
            Err(PostError::TooManyClasses { classes: 257 })
        );
        assert!(matches!(
            upsample_argmax(&logits, 3, 2, 2, 2, 2, &mut map),
            Err(PostError::Length { what: "logits", .. })
        ));
        assert!(matches!(
            upsample_argmax(&logits, 2, 2, 2, 3, 2, &mut map),
            Err(PostError::Length {
                what: "class_map",
                ..
            })
        ));
        assert_eq!(
            upsample_argmax(&logits, 2, usize::MAX, 2, 2, 2, &mut map),
            Err(PostError::Overflow)
        );
        assert_eq!(
            upsample_argmax(&logits, 2, 2, 2, 0, 2, &mut map),
            Err(PostError::Zero { what: "out_h" })
        );
    }

    #[test]
    fn histogram_counts_and_reports_out_of_range() {
        let map = [0u8, 1, 1, 2, 2, 2, 7, 200];
        let mut out = [0u32; 3];
        assert_eq!(histogram(&map, 3, &mut out), Ok(2));
        assert_eq!(out, [1, 2, 3]);
        let mut all = [0u32; 256];
        assert_eq!(histogram(&map, 256, &mut all), Ok(0));
        assert_eq!(all[200], 1);
        assert!(histogram(&map, 3, &mut [0u32; 2]).is_err());
        assert!(histogram(&map, 0, &mut []).is_err());
    }

    #[test]
    fn downscale_picks_centres() {
        // 4→2: sources 1 and 3 (centres of each 2-pixel block, right of middle).
        let map: Vec<u8> = (0..16).collect();
        let mut out = [0u8; 4];
        downscale_nearest(&map, 4, 4, 2, 2, &mut out).unwrap();
        assert_eq!(out, [5, 7, 13, 15]);
        assert!(downscale_nearest(&map, 4, 4, 0, 2, &mut out).is_err());
        assert!(downscale_nearest(&map, 4, 3, 2, 2, &mut out).is_err());
    }

    #[test]
    fn colorize_uses_table_and_black_for_unknown() {
        let map = [0u8, 13, 19];
        let mut rgb = [1u8; 9];
        colorize(&map, ClassTable::CityscapesTrain, &mut rgb).unwrap();
        assert_eq!(rgb, [128, 64, 128, 0, 0, 142, 0, 0, 0]);
        colorize(&map, ClassTable::CityscapesLabels, &mut rgb).unwrap();
        assert_eq!(&rgb[3..6], &[190, 153, 153]); // label id 13 is fence
        assert!(colorize(&map, ClassTable::CityscapesTrain, &mut [0u8; 8]).is_err());
    }

    #[test]
    fn yuv_conversion_known_values() {
        let round = |p: [f32; 3]| p.map(|v| v.round() as u8);
        assert_eq!(round(yuv_to_rgb(16, 128, 128)), [0, 0, 0]);
        assert_eq!(round(yuv_to_rgb(235, 128, 128)), [255, 255, 255]);
        assert_eq!(round(yuv_to_rgb(126, 128, 128)), [128, 128, 128]);
        // BT.601 red (Y=81, U=90, V=240) comes out close to pure red.
        let [r, g, b] = round(yuv_to_rgb(81, 90, 240));
        assert!(r >= 250 && g <= 3 && b <= 3, "{r} {g} {b}");
    }

    #[test]
    fn blend_endpoints_and_chroma_siting() {
        // 3×3 frame: chroma is 2×2; pixel (2, 2) uses chroma (1, 1).
        let (w, h) = (3, 3);
        let y = vec![126u8; 9];
        let u = vec![128u8, 128, 128, 90];
        let v = vec![128u8, 128, 128, 240];
        let overlay: Vec<u8> = (0..27).map(|i| (i * 9) as u8).collect();
        let mut out = vec![0u8; 27];

        blend_over_i420(&y, &u, &v, w, h, &overlay, 1.0, &mut out).unwrap();
        assert_eq!(out, overlay);

        blend_over_i420(&y, &u, &v, w, h, &overlay, 0.0, &mut out).unwrap();
        assert_eq!(&out[..3], &[128, 128, 128]);
        let expect = yuv_to_rgb(126, 90, 240).map(|c| c.round() as u8);
        assert_eq!(&out[24..27], &expect); // (2, 2) → chroma (1, 1)
        assert_eq!(&out[15..18], &[128, 128, 128]); // (2, 1) → chroma (1, 0)
        assert_eq!(&out[18..21], &[128, 128, 128]); // (0, 2) → chroma (0, 1)
    }

    #[test]
    fn blend_half_rounds_away_from_zero() {
        let y = [16u8]; // frame exactly black, so out = round(0.5 * overlay)
        let (u, v) = ([128u8], [128u8]);
        let mut out = [0u8; 3];
        blend_over_i420(&y, &u, &v, 1, 1, &[1, 3, 5], 0.5, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3]); // 0.5, 1.5, 2.5 round away from zero
    }

    #[test]
    fn blend_rejects_bad_input() {
        let mut out = [0u8; 12];
        let ok =
            |a: f32, out: &mut [u8]| blend_over_i420(&[0; 4], &[0], &[0], 2, 2, &[0; 12], a, out);
        assert!(ok(0.3, &mut out).is_ok());
        assert_eq!(ok(1.5, &mut out), Err(PostError::Alpha(1.5)));
        assert!(matches!(ok(f32::NAN, &mut out), Err(PostError::Alpha(_))));
        assert!(ok(-0.1, &mut out).is_err());
        assert!(ok(0.3, &mut out[..11]).is_err());
        assert!(blend_over_i420(&[0; 4], &[0, 0], &[0], 2, 2, &[0; 12], 0.5, &mut out).is_err());
    }
}
