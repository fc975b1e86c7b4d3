//! Plain-Rust references of the kernels: the specification each kernel matches, per pixel,
//! written for clarity rather than speed.
//!
//! They follow the worker's CPU definitions operation for operation (binary32, round to
//! nearest even, no fused multiply-add; Rust never contracts):
//!
//! - [`preprocess_nv12`]: the module documentation of `cloud-worker/src/preprocess.rs` (there
//!   for I420; NV12 holds the same samples with U and V interleaved).
//! - [`upsample_argmax`]: `upsample_argmax` in `cloud-worker/src/post.rs`, evaluated at every
//!   pixel (the worker's four-corner shortcut gives the same bytes).
//! - [`colorize_rgba`], [`blend_nv12_rgba`]: `colorize` and `blend_over_i420` in
//!   `cloud-worker/src/post.rs`, with an alpha byte of 255.
//! - [`blend_nv12_to_nv12`]: the blended RGB bytes converted back to NV12 with the integer
//!   BT.601 coefficients of the edge SDK's `rgb_to_i420` (the inverse the worker assumes).
//! - [`argmax_blend_rgba`], [`argmax_blend_nv12`] (and their `_f16`): the fused kernels,
//!   defined as [`upsample_argmax`] followed by [`blend_nv12_rgba`] / [`blend_nv12_to_nv12`].
//!
//! `flowcloud-tests` checks them against the worker's I420 functions on the same pictures.

use crate::error::ShapeError;
use crate::shape::{
    LogitShape, Nv12Layout, Palette, PreprocessParams, check_alpha, check_fused, exact_len,
};

/// An NV12 picture in host memory.
#[derive(Debug, Clone, Copy)]
pub struct Nv12<'a> {
    /// The buffer holding both planes.
    pub data: &'a [u8],
    /// Where the planes lie in it.
    pub layout: Nv12Layout,
}

impl<'a> Nv12<'a> {
    /// Checks that `data` holds `layout`.
    ///
    /// # Errors
    ///
    /// As [`Nv12Layout::check`].
    pub fn new(data: &'a [u8], layout: Nv12Layout) -> Result<Self, ShapeError> {
        layout.check("NV12 frame", data.len())?;
        Ok(Self { data, layout })
    }

    /// The Y, U and V samples of pixel `(x, y)`: its luma sample and the chroma sample that
    /// covers it, `(x/2, y/2)` (no chroma interpolation).
    fn yuv(&self, x: usize, y: usize) -> (u8, u8, u8) {
        let pitch = self.layout.pitch as usize;
        let luma = self.data[y * pitch + x];
        let uv = self.layout.chroma_offset + (y / 2) * pitch + (x / 2) * 2;
        (luma, self.data[uv], self.data[uv + 1])
    }
}

/// BT.601 limited range → RGB, clamped to `[0, 255]`, not rounded:
///
/// ```text
/// c = f32(Y) − 16    d = f32(U) − 128    e = f32(V) − 128
/// R = 1.164·c + 1.596·e
/// G = (1.164·c − 0.392·d) − 0.813·e
/// B = 1.164·c + 2.017·d
/// ```
#[must_use]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [f32; 3] {
    let c = f32::from(y) - 16.0;
    let d = f32::from(u) - 128.0;
    let e = f32::from(v) - 128.0;
    let r = 1.164 * c + 1.596 * e;
    let g = 1.164 * c - 0.392 * d - 0.813 * e;
    let b = 1.164 * c + 2.017 * d;
    [r, g, b].map(|x| x.clamp(0.0, 255.0))
}

/// Source indices and weight of output index `o` along an axis (step 1 of the preprocessing
/// definition, in integers): `(i0, i1, frac)`.
fn preprocess_tap(o: u32, in_len: u32, out_len: u32) -> (usize, usize, f32) {
    let (n_in, n_out) = (i64::from(in_len), i64::from(out_len));
    let num = (2 * i64::from(o) + 1) * n_in - n_out;
    let den = 2 * n_out;
    let (i0, rest) = if num < 0 {
        (0, 0)
    } else if num / den >= n_in - 1 {
        (n_in - 1, 0)
    } else {
        (num / den, num % den)
    };
    // 0 ≤ i0 < in_len ≤ MAX_SIDE and rest < den ≤ 2·MAX_SIDE: exact in usize and f32.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i0 = i0 as usize;
    let i1 = (i0 + 1).min(in_len as usize - 1);
    #[allow(clippy::cast_precision_loss)]
    let frac = rest as f32 / den as f32;
    (i0, i1, frac)
}

/// NV12 → bilinear resize → normalize → planar RGB or BGR `f32`, the reference of
/// `fc_nv12_to_planar_f32`. `out` holds exactly [`PreprocessParams::output_len`] values.
///
/// Per output pixel: the four source pixels of step 1 converted with [`yuv_to_rgb`], then per
/// channel `top = (1−fx)·p00 + fx·p01`, `bottom = (1−fx)·p10 + fx·p11`,
/// `c = (1−fy)·top + fy·bottom`, and `c·scale + bias` with [`PreprocessParams::scale`] and
/// [`PreprocessParams::bias`], into plane [`PreprocessParams::plane_of`].
///
/// # Errors
///
/// [`ShapeError`] for sizes out of range or a wrong output length; `out` is untouched then.
pub fn preprocess_nv12(
    frame: &Nv12<'_>,
    params: &PreprocessParams,
    out: &mut [f32],
) -> Result<(), ShapeError> {
    params.check(out.len())?;
    let (in_w, in_h) = (frame.layout.width, frame.layout.height);
    let (out_w, out_h) = (params.out_width, params.out_height);
    let (scale, bias) = (params.scale(), params.bias());
    let plane = out_w as usize * out_h as usize;
    for oy in 0..out_h {
        let (y0, y1, fy) = preprocess_tap(oy, in_h, out_h);
        for ox in 0..out_w {
            let (x0, x1, fx) = preprocess_tap(ox, in_w, out_w);
            let rgb = |x: usize, y: usize| {
                let (l, u, v) = frame.yuv(x, y);
                yuv_to_rgb(l, u, v)
            };
            let (p00, p01, p10, p11) = (rgb(x0, y0), rgb(x1, y0), rgb(x0, y1), rgb(x1, y1));
            let (gx, gy) = (1.0 - fx, 1.0 - fy);
            let at = oy as usize * out_w as usize + ox as usize;
            for c in 0..3 {
                let top = gx * p00[c] + fx * p01[c];
                let bottom = gx * p10[c] + fx * p11[c];
                let mixed = gy * top + fy * bottom;
                out[params.plane_of(c) * plane + at] = mixed * scale[c] + bias[c];
            }
        }
    }
    Ok(())
}

/// As [`preprocess_nv12`], each value rounded to IEEE binary16 with [`f32_to_f16_bits`]: the
/// reference of `fc_nv12_to_planar_f16`.
///
/// # Errors
///
/// As [`preprocess_nv12`].
pub fn preprocess_nv12_f16(
    frame: &Nv12<'_>,
    params: &PreprocessParams,
    out: &mut [u16],
) -> Result<(), ShapeError> {
    params.check(out.len())?;
    let mut wide = vec![0f32; out.len()];
    preprocess_nv12(frame, params, &mut wide)?;
    for (o, &v) in out.iter_mut().zip(&wide) {
        *o = f32_to_f16_bits(v);
    }
    Ok(())
}

/// `f32` → IEEE binary16 bits, rounding to nearest even (what PTX `cvt.rn.f16.f32` does):
/// overflow gives ±infinity, tiny values subnormals or ±0, NaN a quiet NaN.
#[must_use]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    // Each part is masked to its width first, so the narrowing casts below are exact.
    #[allow(clippy::cast_possible_truncation)]
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = i32::try_from((bits >> 23) & 0xff).unwrap_or(0);
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        return if man == 0 {
            sign | 0x7c00
        } else {
            sign | 0x7e00
        };
    }
    // The binary16 biased exponent.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (kept, dropped_bits, base) = if e <= 0 {
        if e < -10 {
            // Below half the smallest subnormal (2^-25): rounds to zero.
            return sign;
        }
        // Subnormal: the significand with its implicit bit, shifted to units of 2^-24.
        let shift = u32::try_from(14 - e).unwrap_or(24);
        ((man | 0x0080_0000) >> shift, shift, 0u32)
    } else {
        (man >> 13, 13, u32::try_from(e).unwrap_or(0) << 10)
    };
    let rest = (man | if e <= 0 { 0x0080_0000 } else { 0 }) & ((1 << dropped_bits) - 1);
    let half = 1u32 << (dropped_bits - 1);
    let mut value = base | kept;
    if rest > half || (rest == half && value & 1 == 1) {
        // A carry into the exponent is right, up to infinity.
        value += 1;
    }
    #[allow(clippy::cast_possible_truncation)]
    let value = value as u16;
    sign | value
}

/// IEEE binary16 bits → `f32` (exact).
#[must_use]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x03ff);
    match exp {
        0 => {
            // man · 2^-24, exact in f32.
            let magnitude = f32::from(u16::try_from(man).unwrap_or(0)) * (1.0 / 16_777_216.0);
            if sign == 0 { magnitude } else { -magnitude }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// The bilinear taps of output coordinate `d` for an axis of `n` inputs and `m` outputs, as
/// `upsample_argmax` in `cloud-worker/src/post.rs` documents: `(i0, i1, w0, w1)`.
///
/// ```text
/// scale = f32(n) / f32(m)
/// src   = clamp((f32(d) + 0.5) · scale − 0.5, 0, f32(n − 1))
/// i0 = floor(src)   i1 = min(i0 + 1, n − 1)   w1 = src − f32(i0)   w0 = 1 − w1
/// ```
#[allow(clippy::cast_precision_loss)]
fn logit_tap(d: u32, n: u32, m: u32) -> (usize, usize, f32, f32) {
    // Sides are at most MAX_SIDE: exact in f32.
    let scale = n as f32 / m as f32;
    let last = (n - 1) as f32;
    let src = ((d as f32 + 0.5) * scale - 0.5).clamp(0.0, last);
    // src ∈ [0, n−1]: truncation is floor and fits.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i0 = (src as usize).min(n as usize - 1);
    let i1 = (i0 + 1).min(n as usize - 1);
    let w1 = src - i0 as f32;
    (i0, i1, 1.0 - w1, w1)
}

/// Fused bilinear upsample + argmax of `f32` logits (`classes × in_height × in_width`) into a
/// class map (`out_height × out_width`): the reference of `fc_upsample_argmax_f32`.
///
/// Per pixel and class: `top = wx0·L[y0][x0] + wx1·L[y0][x1]`,
/// `bot = wx0·L[y1][x0] + wx1·L[y1][x1]`, `v = wy0·top + wy1·bot`; the class is the first
/// whose `v` no later class strictly exceeds (ties to the lowest class; a NaN never wins, and
/// a NaN class 0 keeps class 0).
///
/// # Errors
///
/// [`ShapeError`] for sizes out of range or wrong buffer lengths.
pub fn upsample_argmax(
    logits: &[f32],
    shape: &LogitShape,
    class_map: &mut [u8],
) -> Result<(), ShapeError> {
    upsample_argmax_with(logits, shape, class_map, |v| v)
}

/// As [`upsample_argmax`] for logits given as IEEE binary16 bits (widened exactly to `f32`):
/// the reference of `fc_upsample_argmax_f16`.
///
/// # Errors
///
/// As [`upsample_argmax`].
pub fn upsample_argmax_f16(
    logits: &[u16],
    shape: &LogitShape,
    class_map: &mut [u8],
) -> Result<(), ShapeError> {
    upsample_argmax_with(logits, shape, class_map, f16_bits_to_f32)
}

fn upsample_argmax_with<T: Copy>(
    logits: &[T],
    shape: &LogitShape,
    class_map: &mut [u8],
    widen: impl Fn(T) -> f32,
) -> Result<(), ShapeError> {
    shape.check(logits.len(), class_map.len())?;
    let (in_w, in_h) = (shape.in_width as usize, shape.in_height as usize);
    let plane = in_w * in_h;
    let at = |c: usize, y: usize, x: usize| widen(logits[c * plane + y * in_w + x]);
    for y in 0..shape.out_height {
        let (y0, y1, wy0, wy1) = logit_tap(y, shape.in_height, shape.out_height);
        for x in 0..shape.out_width {
            let (x0, x1, wx0, wx1) = logit_tap(x, shape.in_width, shape.out_width);
            let mut best = f32::NAN;
            let mut best_class = 0u8;
            for (c, class) in (0..shape.classes as usize).zip(0..=u8::MAX) {
                let top = wx0 * at(c, y0, x0) + wx1 * at(c, y0, x1);
                let bot = wx0 * at(c, y1, x0) + wx1 * at(c, y1, x1);
                let v = wy0 * top + wy1 * bot;
                if c == 0 || v > best {
                    best = v;
                    best_class = class;
                }
            }
            class_map[y as usize * shape.out_width as usize + x as usize] = best_class;
        }
    }
    Ok(())
}

/// Class map → RGBA (alpha byte 255) of each class's palette colour: the reference of
/// `fc_colorize_rgba`. `rgba` holds `4 · class_map.len()` bytes.
///
/// # Errors
///
/// [`ShapeError::Length`] if `rgba` has the wrong length.
pub fn colorize_rgba(
    class_map: &[u8],
    palette: &Palette,
    rgba: &mut [u8],
) -> Result<(), ShapeError> {
    exact_len("rgba", 4 * class_map.len(), rgba.len())?;
    for (px, &c) in rgba.chunks_exact_mut(4).zip(class_map) {
        let [r, g, b] = palette[usize::from(c)];
        px.copy_from_slice(&[r, g, b, 255]);
    }
    Ok(())
}

/// One blended pixel: `round((1 − alpha)·F + alpha·f32(O))` per channel, `F` the frame pixel
/// by [`yuv_to_rgb`], `O` the class's colour, round half away from zero.
fn blend_pixel(
    frame: &Nv12<'_>,
    x: usize,
    y: usize,
    colour: [u8; 3],
    keep: f32,
    alpha: f32,
) -> [u8; 3] {
    let (l, u, v) = frame.yuv(x, y);
    let f = yuv_to_rgb(l, u, v);
    [0, 1, 2].map(|c| {
        let v = (keep * f[c] + alpha * f32::from(colour[c])).round();
        // A convex combination of values in [0, 255]; the clamp only guards rounding.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let byte = v.clamp(0.0, 255.0) as u8;
        byte
    })
}

fn check_blend(frame: &Nv12<'_>, class_map: &[u8], alpha: f32) -> Result<(), ShapeError> {
    check_alpha(alpha)?;
    exact_len("class map", frame.layout.pixels(), class_map.len())
}

/// The class map's colours alpha-blended over an NV12 frame of the same size, as tightly
/// packed RGBA (alpha byte 255): the reference of `fc_blend_nv12_rgba`, and
/// `blend_over_i420` of `cloud-worker/src/post.rs` for NV12 input.
///
/// # Errors
///
/// [`ShapeError`] if `alpha` is not in `[0, 1]` or a length does not match the frame.
pub fn blend_nv12_rgba(
    frame: &Nv12<'_>,
    class_map: &[u8],
    palette: &Palette,
    alpha: f32,
    rgba: &mut [u8],
) -> Result<(), ShapeError> {
    check_blend(frame, class_map, alpha)?;
    exact_len("rgba", 4 * frame.layout.pixels(), rgba.len())?;
    let keep = 1.0 - alpha;
    let width = frame.layout.width as usize;
    for (i, px) in rgba.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i % width, i / width);
        let [r, g, b] = blend_pixel(frame, x, y, palette[usize::from(class_map[i])], keep, alpha);
        px.copy_from_slice(&[r, g, b, 255]);
    }
    Ok(())
}

/// BT.601 limited-range luma of an RGB byte triple, in integers (the edge SDK's `rgb_to_i420`).
#[must_use]
pub fn rgb_to_luma([r, g, b]: [u8; 3]) -> u8 {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    // At most ((220·255 + 128) >> 8) + 16 = 235.
    u8::try_from(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).unwrap_or(u8::MAX)
}

/// BT.601 limited-range U and V from the sums of four pixels' R, G and B (the edge SDK's
/// `rgb_to_i420`); `>>` rounds towards −∞.
#[must_use]
pub fn rgb_sum_to_chroma([r, g, b]: [i32; 3]) -> (u8, u8) {
    // Sums of four bytes: the results lie in 16..=240.
    let u = ((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 512) >> 10) + 128;
    (
        u8::try_from(u).unwrap_or(u8::MAX),
        u8::try_from(v).unwrap_or(u8::MAX),
    )
}

/// The blended frame of [`blend_nv12_rgba`] converted back to NV12 into `out` (laid out as
/// `out_layout`, same size as the frame): the reference of `fc_blend_nv12_nv12`. Each luma
/// sample is [`rgb_to_luma`] of its blended pixel; chroma sample `(cx, cy)` is
/// [`rgb_sum_to_chroma`] of the sum over pixels `(min(2cx+dx, w−1), min(2cy+dy, h−1))`,
/// `dx, dy ∈ {0, 1}` (at odd sizes the last column/row counts twice). Bytes of `out` outside
/// the two planes' used parts are left as they are.
///
/// # Errors
///
/// [`ShapeError`] if `alpha` is not in `[0, 1]`, a length does not match, or `out_layout`
/// has another size than the frame or does not fit `out`.
pub fn blend_nv12_to_nv12(
    frame: &Nv12<'_>,
    class_map: &[u8],
    palette: &Palette,
    alpha: f32,
    out: &mut [u8],
    out_layout: Nv12Layout,
) -> Result<(), ShapeError> {
    check_blend(frame, class_map, alpha)?;
    out_layout.check("NV12 output", out.len())?;
    if (out_layout.width, out_layout.height) != (frame.layout.width, frame.layout.height) {
        return Err(ShapeError::Layout("output size differs from the frame's"));
    }
    let keep = 1.0 - alpha;
    let (w, h) = (frame.layout.width as usize, frame.layout.height as usize);
    let pitch = out_layout.pitch as usize;
    let pixel = |x: usize, y: usize| {
        blend_pixel(
            frame,
            x,
            y,
            palette[usize::from(class_map[y * w + x])],
            keep,
            alpha,
        )
    };
    for y in 0..h {
        for x in 0..w {
            out[y * pitch + x] = rgb_to_luma(pixel(x, y));
        }
    }
    let (cw, ch) = out_layout.chroma_size();
    for cy in 0..ch as usize {
        for cx in 0..cw as usize {
            let mut sum = [0i32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = pixel((2 * cx + dx).min(w - 1), (2 * cy + dy).min(h - 1));
                for c in 0..3 {
                    sum[c] += i32::from(p[c]);
                }
            }
            let (u, v) = rgb_sum_to_chroma(sum);
            let at = out_layout.chroma_offset + cy * pitch + 2 * cx;
            out[at] = u;
            out[at + 1] = v;
        }
    }
    Ok(())
}

/// Fused argmax + RGBA overlay of `f32` logits: [`upsample_argmax`] into `class_map` (the
/// logits upsampled to the frame's size), then [`blend_nv12_rgba`] of that class map over
/// `frame` into `rgba`. The reference of `fc_argmax_blend_rgba_f32`.
///
/// # Errors
///
/// [`ShapeError`] for sizes that do not fit (a class map of another size than the frame
/// included) or a bad `alpha`; nothing is written then.
pub fn argmax_blend_rgba(
    logits: &[f32],
    shape: &LogitShape,
    frame: &Nv12<'_>,
    palette: &Palette,
    alpha: f32,
    class_map: &mut [u8],
    rgba: &mut [u8],
) -> Result<(), ShapeError> {
    check_fused(shape, logits.len(), frame.layout, class_map.len(), alpha)?;
    exact_len("rgba", 4 * frame.layout.pixels(), rgba.len())?;
    upsample_argmax(logits, shape, class_map)?;
    blend_nv12_rgba(frame, class_map, palette, alpha, rgba)
}

/// As [`argmax_blend_rgba`] for binary16 logits ([`upsample_argmax_f16`]): the reference of
/// `fc_argmax_blend_rgba_f16`.
///
/// # Errors
///
/// As [`argmax_blend_rgba`].
pub fn argmax_blend_rgba_f16(
    logits: &[u16],
    shape: &LogitShape,
    frame: &Nv12<'_>,
    palette: &Palette,
    alpha: f32,
    class_map: &mut [u8],
    rgba: &mut [u8],
) -> Result<(), ShapeError> {
    check_fused(shape, logits.len(), frame.layout, class_map.len(), alpha)?;
    exact_len("rgba", 4 * frame.layout.pixels(), rgba.len())?;
    upsample_argmax_f16(logits, shape, class_map)?;
    blend_nv12_rgba(frame, class_map, palette, alpha, rgba)
}

/// Fused argmax + NV12 overlay of `f32` logits: [`upsample_argmax`] into `class_map`, then
/// [`blend_nv12_to_nv12`] into `out` (laid out as `out_layout`). The reference of
/// `fc_argmax_blend_nv12_f32`.
///
/// # Errors
///
/// As [`argmax_blend_rgba`], and as [`blend_nv12_to_nv12`] for `out_layout`.
#[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
pub fn argmax_blend_nv12(
    logits: &[f32],
    shape: &LogitShape,
    frame: &Nv12<'_>,
    palette: &Palette,
    alpha: f32,
    class_map: &mut [u8],
    out: &mut [u8],
    out_layout: Nv12Layout,
) -> Result<(), ShapeError> {
    check_fused_nv12(
        shape,
        logits.len(),
        frame,
        class_map.len(),
        alpha,
        out.len(),
        out_layout,
    )?;
    upsample_argmax(logits, shape, class_map)?;
    blend_nv12_to_nv12(frame, class_map, palette, alpha, out, out_layout)
}

/// As [`argmax_blend_nv12`] for binary16 logits ([`upsample_argmax_f16`]): the reference of
/// `fc_argmax_blend_nv12_f16`.
///
/// # Errors
///
/// As [`argmax_blend_nv12`].
#[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
pub fn argmax_blend_nv12_f16(
    logits: &[u16],
    shape: &LogitShape,
    frame: &Nv12<'_>,
    palette: &Palette,
    alpha: f32,
    class_map: &mut [u8],
    out: &mut [u8],
    out_layout: Nv12Layout,
) -> Result<(), ShapeError> {
    check_fused_nv12(
        shape,
        logits.len(),
        frame,
        class_map.len(),
        alpha,
        out.len(),
        out_layout,
    )?;
    upsample_argmax_f16(logits, shape, class_map)?;
    blend_nv12_to_nv12(frame, class_map, palette, alpha, out, out_layout)
}

/// Every check of the NV12 fused reference before anything is written.
fn check_fused_nv12(
    shape: &LogitShape,
    logits_len: usize,
    frame: &Nv12<'_>,
    class_map_len: usize,
    alpha: f32,
    out_len: usize,
    out_layout: Nv12Layout,
) -> Result<(), ShapeError> {
    check_fused(shape, logits_len, frame.layout, class_map_len, alpha)?;
    out_layout.check("NV12 output", out_len)?;
    if (out_layout.width, out_layout.height) != (frame.layout.width, frame.layout.height) {
        return Err(ShapeError::Layout("output size differs from the frame's"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::ChannelOrder;

    /// A packed NV12 buffer from its planes: `y` is `height` rows of `width` bytes, `uv` the
    /// chroma samples row by row.
    fn nv12(width: u32, height: u32, y: &[u8], uv: &[(u8, u8)]) -> (Vec<u8>, Nv12Layout) {
        let layout = Nv12Layout::packed(width, height);
        // Luma rows padded to the pitch (odd widths).
        let mut data: Vec<u8> = y
            .chunks_exact(width as usize)
            .flat_map(|row| {
                let mut row = row.to_vec();
                row.resize(layout.pitch as usize, 0);
                row
            })
            .collect();
        data.extend(uv.iter().flat_map(|&(u, v)| [u, v]));
        assert_eq!(data.len(), layout.required_len());
        (data, layout)
    }

    fn params(out_width: u32, out_height: u32, order: ChannelOrder) -> PreprocessParams {
        PreprocessParams {
            out_width,
            out_height,
            mean: [0.0; 3],
            std: [1.0; 3],
            channel_order: order,
        }
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!((f64::from(g) - w).abs() < 1e-6, "value {i}: {g} != {w}");
        }
    }

    #[test]
    fn preprocess_converts_the_interleaved_chroma() {
        // BT.601 red: Y=81, U=90, V=240. By hand: c = 1.164·65 = 75.66,
        // R = 75.66 + 1.596·112 = 254.412, G = 75.66 + 0.392·38 − 0.813·112 = −0.5 → 0,
        // B = 75.66 − 2.017·38 = −0.986 → 0; normalized with mean 0, std 1: R/255.
        let (data, layout) = nv12(2, 2, &[81; 4], &[(90, 240)]);
        let frame = Nv12::new(&data, layout).unwrap();
        let mut out = vec![9.0; 12];
        preprocess_nv12(&frame, &params(2, 2, ChannelOrder::Rgb), &mut out).unwrap();
        let r = 254.412 / 255.0;
        close(&out, &[r, r, r, r, 0., 0., 0., 0., 0., 0., 0., 0.]);
        // BGR: the same values, planes swapped.
        preprocess_nv12(&frame, &params(2, 2, ChannelOrder::Bgr), &mut out).unwrap();
        close(&out, &[0., 0., 0., 0., 0., 0., 0., 0., r, r, r, r]);
    }

    #[test]
    fn preprocess_interpolates_rgb_between_integer_positions() {
        // Row of black (Y=16 → 0) and over-white (Y=255 → 1.164·239 = 278.2, clamped to 255),
        // 2×1 → 4×1. Positions (ox + 0.5)·2/4 − 0.5 = −0.25, 0.25, 0.75, 1.25 → clamped:
        // weights of the right pixel 0, 0.25, 0.75 and the right pixel itself.
        // Mean 0.5, std 0.5: (c/255 − 0.5)/0.5 → −1, −0.5, 0.5, 1.
        let (data, layout) = nv12(2, 1, &[16, 255], &[(128, 128)]);
        let frame = Nv12::new(&data, layout).unwrap();
        let p = PreprocessParams {
            out_width: 4,
            out_height: 1,
            mean: [0.5; 3],
            std: [0.5; 3],
            channel_order: ChannelOrder::Rgb,
        };
        let mut out = vec![0.0; 12];
        preprocess_nv12(&frame, &p, &mut out).unwrap();
        close(
            &out,
            &[-1., -0.5, 0.5, 1., -1., -0.5, 0.5, 1., -1., -0.5, 0.5, 1.],
        );
    }

    #[test]
    fn preprocess_reads_a_pitched_layout() {
        // Pitch 8 and a gap before the chroma plane: padding bytes (200) must not be read.
        let layout = Nv12Layout {
            width: 2,
            height: 2,
            pitch: 8,
            chroma_offset: 24,
        };
        let mut data = vec![200u8; layout.required_len()];
        data[..2].copy_from_slice(&[16, 16]);
        data[8..10].copy_from_slice(&[16, 16]);
        data[24..26].copy_from_slice(&[128, 128]);
        let frame = Nv12::new(&data, layout).unwrap();
        let mut out = vec![9.0; 3];
        preprocess_nv12(&frame, &params(1, 1, ChannelOrder::Rgb), &mut out).unwrap();
        assert_eq!(out, [0.0; 3]);
    }

    #[test]
    fn preprocess_refuses_bad_sizes() {
        let (data, layout) = nv12(2, 2, &[16; 4], &[(128, 128)]);
        assert!(matches!(
            Nv12::new(&data[..5], layout),
            Err(ShapeError::Length { .. })
        ));
        let narrow = Nv12Layout { pitch: 1, ..layout };
        assert!(matches!(
            Nv12::new(&data, narrow),
            Err(ShapeError::Layout(_))
        ));
        let frame = Nv12::new(&data, layout).unwrap();
        let mut out = vec![0.0; 11];
        assert!(matches!(
            preprocess_nv12(&frame, &params(2, 2, ChannelOrder::Rgb), &mut out),
            Err(ShapeError::Length { expected: 12, .. })
        ));
        assert!(matches!(
            preprocess_nv12(&frame, &params(0, 2, ChannelOrder::Rgb), &mut []),
            Err(ShapeError::Dimension { .. })
        ));
    }

    #[test]
    fn f16_conversion_rounds_to_nearest_even() {
        for (x, bits) in [
            (1.0f32, 0x3c00u16),
            (-2.0, 0xc000),
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (65504.0, 0x7bff),            // largest finite
            (65520.0, 0x7c00),            // half way to 65536: ties to even, which is infinity
            (1.0 + 1.0 / 2048.0, 0x3c00), // tie: stays even
            (1.0 + 3.0 / 2048.0, 0x3c02), // tie: rounds up to even
            (2f32.powi(-24), 0x0001),     // smallest subnormal
            (2f32.powi(-25), 0x0000),     // half of it: ties to even (zero)
            (0.75 * 2f32.powi(-24), 0x0001),
            (2f32.powi(-14), 0x0400), // smallest normal
            (f32::INFINITY, 0x7c00),
        ] {
            assert_eq!(f32_to_f16_bits(x), bits, "{x}");
        }
        assert_eq!(f32_to_f16_bits(f32::NAN) & 0x7e00, 0x7e00);
        // Every finite binary16 value converts back exactly.
        for h in (0..=u16::MAX).filter(|h| h & 0x7c00 != 0x7c00) {
            assert_eq!(f32_to_f16_bits(f16_bits_to_f32(h)), h, "{h:#06x}");
        }
    }

    fn shape(classes: u32, in_width: u32, out_width: u32) -> LogitShape {
        LogitShape {
            classes,
            in_height: 1,
            in_width,
            out_height: 1,
            out_width,
        }
    }

    #[test]
    fn upsample_puts_the_boundary_half_way() {
        // 1×2 → 1×8, class 0 = [1, 0], class 1 = [0, 1]. src = (d + 0.5)·0.25 − 0.5 clamped:
        // 0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1; v0 = 1 − src, v1 = src: class 1 from d = 4.
        let logits = [1.0, 0.0, 0.0, 1.0];
        let mut map = [9u8; 8];
        upsample_argmax(&logits, &shape(2, 2, 8), &mut map).unwrap();
        assert_eq!(map, [0, 0, 0, 0, 1, 1, 1, 1]);
        // The same logits as binary16.
        let half = logits.map(f32_to_f16_bits);
        upsample_argmax_f16(&half, &shape(2, 2, 8), &mut map).unwrap();
        assert_eq!(map, [0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn upsample_ties_go_to_the_lowest_class() {
        // 1×2 → 1×1: src = 0.5·2 − 0.5 = 0.5, weights ½ and ½. v0 = 0, v1 = v2 = 0.5.
        let logits = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let mut map = [9u8; 1];
        upsample_argmax(&logits, &shape(3, 2, 1), &mut map).unwrap();
        assert_eq!(map, [1]);
    }

    #[test]
    fn upsample_nan_never_wins() {
        let mut map = [9u8; 1];
        // A NaN class 1 loses to class 2.
        upsample_argmax(&[1.0, f32::NAN, 2.0], &shape(3, 1, 1), &mut map).unwrap();
        assert_eq!(map, [2]);
        // A NaN class 0 keeps class 0: nothing compares greater than NaN.
        upsample_argmax(&[f32::NAN, 5.0], &shape(2, 1, 1), &mut map).unwrap();
        assert_eq!(map, [0]);
    }

    #[test]
    fn upsample_refuses_bad_shapes() {
        let mut map = [0u8; 2];
        assert!(matches!(
            upsample_argmax(&[0.0; 2], &shape(0, 2, 2), &mut map),
            Err(ShapeError::Dimension {
                what: "classes",
                ..
            })
        ));
        assert!(matches!(
            upsample_argmax(&[0.0; 3], &shape(2, 2, 2), &mut map),
            Err(ShapeError::Length { what: "logits", .. })
        ));
        assert!(matches!(
            upsample_argmax(&[0.0; 257], &shape(257, 1, 2), &mut map),
            Err(ShapeError::Dimension { .. })
        ));
    }

    fn palette() -> Palette {
        let mut p = [[0u8; 3]; 256];
        p[3] = [200, 100, 0];
        p[7] = [1, 2, 3];
        p
    }

    #[test]
    fn colorize_paints_the_palette() {
        let mut rgba = [0u8; 12];
        colorize_rgba(&[3, 7, 200], &palette(), &mut rgba).unwrap();
        assert_eq!(rgba, [200, 100, 0, 255, 1, 2, 3, 255, 0, 0, 0, 255]);
        assert!(colorize_rgba(&[3], &palette(), &mut rgba).is_err());
    }

    #[test]
    fn blend_one_pixel_by_hand() {
        // Frame Y=126, U=V=128: F = 1.164·110 = 128.04 in each channel. Class 3 = (200, 100, 0),
        // alpha ½: round(64.02 + 100) = 164, round(64.02 + 50) = 114, round(64.02 + 0) = 64.
        let (data, layout) = nv12(1, 1, &[126], &[(128, 128)]);
        let frame = Nv12::new(&data, layout).unwrap();
        let mut rgba = [0u8; 4];
        blend_nv12_rgba(&frame, &[3], &palette(), 0.5, &mut rgba).unwrap();
        assert_eq!(rgba, [164, 114, 64, 255]);
        // Alpha 0: the frame rounded (128.04 → 128); alpha 1: the palette colour.
        blend_nv12_rgba(&frame, &[3], &palette(), 0.0, &mut rgba).unwrap();
        assert_eq!(rgba, [128, 128, 128, 255]);
        blend_nv12_rgba(&frame, &[3], &palette(), 1.0, &mut rgba).unwrap();
        assert_eq!(rgba, [200, 100, 0, 255]);

        // Back to NV12: Y = ((66·164 + 129·114 + 25·64 + 128) >> 8) + 16 = (27258 >> 8) + 16 =
        // 122. The one chroma sample sums the pixel four times (656, 456, 256):
        // U = ((−38·656 − 74·456 + 112·256 + 512) >> 10) + 128 = (−29488 >> 10) + 128 = 99,
        // V = ((112·656 − 94·456 − 18·256 + 512) >> 10) + 128 = (26512 >> 10) + 128 = 153.
        let out_layout = Nv12Layout::packed(1, 1);
        let mut out = vec![0u8; out_layout.required_len()];
        blend_nv12_to_nv12(&frame, &[3], &palette(), 0.5, &mut out, out_layout).unwrap();
        assert_eq!(out, [122, 0, 99, 153]);
    }

    #[test]
    fn fused_argmax_blend_by_hand() {
        // Logits 2 classes × 1×2 → 1×8 (as in upsample_puts_the_boundary_half_way): classes
        // 0, 0, 0, 0, 1, 1, 1, 1. Frame 8×1, Y=126, U=V=128: F = 128.04. Class 0 is black,
        // class 1 = (200, 100, 0), alpha ½: class 0 → round(64.02) = 64 per channel, class 1 →
        // (164, 114, 64) (blend_one_pixel_by_hand).
        let logits = [1.0, 0.0, 0.0, 1.0];
        let shape = LogitShape {
            classes: 2,
            in_height: 1,
            in_width: 2,
            out_height: 1,
            out_width: 8,
        };
        let (data, layout) = nv12(8, 1, &[126; 8], &[(128, 128); 4]);
        let frame = Nv12::new(&data, layout).unwrap();
        let mut pal = [[0u8; 3]; 256];
        pal[1] = [200, 100, 0];
        let (mut map, mut rgba) = ([9u8; 8], [9u8; 32]);
        argmax_blend_rgba(&logits, &shape, &frame, &pal, 0.5, &mut map, &mut rgba).unwrap();
        assert_eq!(map, [0, 0, 0, 0, 1, 1, 1, 1]);
        let dark = [64, 64, 64, 255];
        let lit = [164, 114, 64, 255];
        let want: Vec<u8> = [dark; 4]
            .iter()
            .chain(&[lit; 4])
            .flatten()
            .copied()
            .collect();
        assert_eq!(rgba.as_slice(), want.as_slice());
        // The same from binary16 logits.
        let (mut map, mut rgba16) = ([9u8; 8], [9u8; 32]);
        let half = logits.map(f32_to_f16_bits);
        argmax_blend_rgba_f16(&half, &shape, &frame, &pal, 0.5, &mut map, &mut rgba16).unwrap();
        assert_eq!((map, rgba16), ([0, 0, 0, 0, 1, 1, 1, 1], rgba));

        // NV12: Y of class 0 = ((220·64 + 128) >> 8) + 16 = 55 + 16 = 71, of class 1 = 122.
        // Chroma pairs (0,1), (2,3) sum four class-0 pixels (256, 256, 256): U = V =
        // (512 >> 10) + 128 = 128; pairs (4,5), (6,7) four class-1 pixels: U = 99, V = 153.
        let out_layout = Nv12Layout::packed(8, 1);
        let mut out = vec![0u8; out_layout.required_len()];
        let mut map = [9u8; 8];
        argmax_blend_nv12(
            &logits, &shape, &frame, &pal, 0.5, &mut map, &mut out, out_layout,
        )
        .unwrap();
        assert_eq!(map, [0, 0, 0, 0, 1, 1, 1, 1]);
        let want = [
            71, 71, 71, 71, 122, 122, 122, 122, 128, 128, 128, 128, 99, 153, 99, 153,
        ];
        assert_eq!(out, want);
        let mut out16 = vec![0u8; out_layout.required_len()];
        argmax_blend_nv12_f16(
            &half, &shape, &frame, &pal, 0.5, &mut map, &mut out16, out_layout,
        )
        .unwrap();
        assert_eq!(out16, want);
    }

    #[test]
    fn fused_refuses_a_class_map_of_another_size_and_writes_nothing() {
        let logits = [1.0, 0.0, 0.0, 1.0];
        let shape = LogitShape {
            classes: 2,
            in_height: 1,
            in_width: 2,
            out_height: 1,
            out_width: 4,
        };
        let (data, layout) = nv12(8, 1, &[126; 8], &[(128, 128); 4]);
        let frame = Nv12::new(&data, layout).unwrap();
        let (mut map, mut rgba) = ([9u8; 4], [9u8; 32]);
        assert!(matches!(
            argmax_blend_rgba(
                &logits,
                &shape,
                &frame,
                &palette(),
                0.5,
                &mut map,
                &mut rgba
            ),
            Err(ShapeError::Layout(_))
        ));
        assert_eq!((map, rgba), ([9; 4], [9; 32]));
        let shape = LogitShape {
            out_width: 8,
            ..shape
        };
        let mut map = [9u8; 8];
        let mut out = [9u8; 6];
        let small = Nv12Layout::packed(2, 2);
        assert!(matches!(
            argmax_blend_nv12(
                &logits,
                &shape,
                &frame,
                &palette(),
                0.5,
                &mut map,
                &mut out,
                small
            ),
            Err(ShapeError::Layout(_))
        ));
        assert!(matches!(
            argmax_blend_rgba(
                &logits,
                &shape,
                &frame,
                &palette(),
                2.0,
                &mut map,
                &mut [0; 32]
            ),
            Err(ShapeError::Alpha(_))
        ));
        assert_eq!((map, out), ([9; 8], [9; 6]));
    }

    #[test]
    fn blend_refuses_bad_alpha_and_sizes() {
        let (data, layout) = nv12(1, 1, &[126], &[(128, 128)]);
        let frame = Nv12::new(&data, layout).unwrap();
        let mut rgba = [0u8; 4];
        for alpha in [-0.1, 1.5, f32::NAN] {
            assert!(matches!(
                blend_nv12_rgba(&frame, &[3], &palette(), alpha, &mut rgba),
                Err(ShapeError::Alpha(_))
            ));
        }
        assert!(blend_nv12_rgba(&frame, &[3, 3], &palette(), 0.5, &mut rgba).is_err());
        let mut out = [0u8; 16];
        let other = Nv12Layout::packed(2, 2);
        assert!(matches!(
            blend_nv12_to_nv12(&frame, &[3], &palette(), 0.5, &mut out[..6], other),
            Err(ShapeError::Layout(_))
        ));
    }
}
