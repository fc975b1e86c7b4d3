//! Writing pixels: the canvas (colour, label and depth buffers of one frame) and the two
//! primitives objects are made of — axis-aligned boxes, ray-cast per pixel, and flat shapes
//! facing the camera ("billboards"). Both test and write the depth buffer, so objects hide each
//! other and are hidden by the backdrop (a tree in a park behind a building) in any order.
//!
//! A pixel is covered when its centre is; there is no anti-aliasing, so the label written is
//! exactly the class of the colour written.

use super::Scene;
use super::classes::SceneClass;
use super::light::Rgb;
use super::noise::{pixel_hash, to_byte};

/// Nearest depth drawn, metres.
pub(super) const NEAR: f32 = 0.3;

/// The buffers of one frame. With `SHADE` false only labels (and depth) are written.
pub(super) struct Canvas<'a, const SHADE: bool> {
    pub(super) width: usize,
    pub(super) height: usize,
    rgb: &'a mut [u8],
    labels: &'a mut [u8],
    depth: &'a mut [f32],
    /// Per column, scratch for [`draw_box`].
    footprint: &'a mut [Footprint],
    /// The frame's light, times 255.
    gain: Rgb,
    /// Sensor noise amplitude, per step of the 8-bit noise value.
    grain: f32,
    /// Seeds this frame's sensor noise.
    frame_key: u32,
}

/// The buffers a frame is drawn into.
pub(super) struct Buffers<'a> {
    /// RGB, 3 bytes a pixel (ignored, and may be empty, when not shading).
    pub(super) rgb: &'a mut [u8],
    /// Label ids, a byte a pixel.
    pub(super) labels: &'a mut [u8],
    /// Depth, a float a pixel.
    pub(super) depth: &'a mut [f32],
    /// Scratch, a footprint a column.
    pub(super) footprint: &'a mut [Footprint],
}

/// How a frame is exposed.
pub(super) struct Exposure {
    /// The light, per channel (1: as shaded).
    pub(super) gain: Rgb,
    /// Sensor noise amplitude, in 8-bit steps.
    pub(super) grain: f32,
    /// Seeds the sensor noise.
    pub(super) frame: u32,
}

impl<'a, const SHADE: bool> Canvas<'a, SHADE> {
    /// A canvas of `width × height` pixels over `buffers`.
    pub(super) fn new(
        width: usize,
        height: usize,
        buffers: Buffers<'a>,
        exposure: &Exposure,
    ) -> Self {
        let Buffers {
            rgb,
            labels,
            depth,
            footprint,
        } = buffers;
        let gain = exposure.gain;
        Self {
            width,
            height,
            rgb,
            labels,
            depth,
            footprint,
            gain: [gain[0] * 255.0, gain[1] * 255.0, gain[2] * 255.0],
            grain: exposure.grain / 127.5,
            frame_key: pixel_hash(exposure.frame, 0, 0x5e45),
        }
    }

    /// Writes pixel `i` unconditionally.
    #[inline]
    pub(super) fn put(&mut self, i: usize, class: SceneClass, depth: f32, colour: Rgb) {
        self.labels[i] = class.label_id();
        self.depth[i] = depth;
        if SHADE {
            // A multiply-xorshift round: random enough for sensor noise, and cheap.
            let mut h = (i as u32 ^ self.frame_key).wrapping_mul(0x2c1b_3c6d);
            h ^= h >> 15;
            let noise = ((h >> 24) as f32 - 127.5) * self.grain;
            let [r, g, b] = colour;
            let [gr, gg, gb] = self.gain;
            let px = [
                to_byte(r * gr + noise),
                to_byte(g * gg + noise),
                to_byte(b * gb + noise),
            ];
            if let Some(out) = self.rgb.get_mut(i * 3..i * 3 + 3) {
                out.copy_from_slice(&px);
            }
        }
    }

    /// Writes pixel `i` if `depth` is not behind what it holds.
    #[inline]
    fn put_nearer(&mut self, i: usize, class: SceneClass, depth: f32, colour: Rgb) {
        if depth <= self.depth[i] {
            self.put(i, class, depth, colour);
        }
    }
}

/// An axis-aligned box in world metres.
#[derive(Clone, Copy, Debug)]
pub(super) struct Aabb {
    pub(super) lo: [f32; 3],
    pub(super) hi: [f32; 3],
}

/// Where one column's ray crosses a box's footprint (its x and z extent).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Footprint {
    enter: f32,
    exit: f32,
    /// Whether it enters through an x face (else a z face).
    through_x: bool,
}

/// Where a ray entered a box.
#[derive(Clone, Copy, Debug)]
pub(super) struct BoxHit {
    /// The axis the entered face is perpendicular to (0 = x, 1 = y, 2 = z).
    pub(super) axis: usize,
    /// Whether the face's outward normal points along `+axis`.
    pub(super) positive: bool,
    /// The world point hit.
    pub(super) point: [f32; 3],
}

/// Ray-casts `aabb` over the pixels it can cover; `shade` gives the colour of a hit (only
/// called when shading).
pub(super) fn draw_box<const SHADE: bool>(
    scene: &Scene<'_>,
    canvas: &mut Canvas<'_, SHADE>,
    aabb: &Aabb,
    class: SceneClass,
    shade: impl Fn(&BoxHit) -> Rgb,
) {
    let camera = scene.camera;
    let rays = scene.rays;
    // Bound only the part in front of the near plane (depth is linear in x and z).
    let mut z_lo = aabb.lo[2];
    for x in [aabb.lo[0], aabb.hi[0]] {
        let z_near = camera.z + (NEAR - (x - camera.x) * camera.sin_yaw) / camera.cos_yaw;
        z_lo = z_lo.max(z_near);
    }
    if z_lo >= aabb.hi[2] {
        return;
    }
    let (mut left, mut right, mut top, mut bottom) = (
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
    );
    let (mut nearest, mut farthest) = (f32::INFINITY, 0f32);
    for x in [aabb.lo[0], aabb.hi[0]] {
        for z in [z_lo, aabb.hi[2]] {
            let depth = camera.depth(x, z).max(NEAR);
            nearest = nearest.min(depth);
            farthest = farthest.max(depth);
            let column = camera.column(x, z, depth);
            left = left.min(column);
            right = right.max(column);
            top = top.min(camera.row(aabb.hi[1], depth));
            bottom = bottom.max(camera.row(aabb.lo[1], depth));
        }
    }
    let Some((x0, x1, y0, y1)) = pixel_bounds(canvas, left, right, top, bottom) else {
        return;
    };
    let origin = [camera.x, camera.y, camera.z];
    // Where each column's ray enters and leaves the box's footprint (the x and z slabs) is the
    // same on every row: find it once. The columns that meet the footprint are one run.
    let (mut first, mut last) = (x1, x0);
    for x in x0..x1 {
        let (tx0, tx1) = slab(
            aabb.lo[0] - origin[0],
            aabb.hi[0] - origin[0],
            rays.inv_dx[x],
        );
        let (tz0, tz1) = slab(
            aabb.lo[2] - origin[2],
            aabb.hi[2] - origin[2],
            rays.inv_dz[x],
        );
        let enter = max(tx0, tz0);
        let exit = min(tx1, tz1);
        canvas.footprint[x] = Footprint {
            enter,
            exit,
            through_x: tx0 >= tz0,
        };
        if enter <= exit && exit > NEAR {
            first = first.min(x);
            last = x + 1;
        }
    }
    for y in y0..y1 {
        let dy = rays.dy[y];
        let (ty0, ty1) = slab(aabb.lo[1] - origin[1], aabb.hi[1] - origin[1], 1.0 / dy);
        // Rows whose rays are at the box's heights only nearer or farther than the box are
        // skipped whole (a box beside the camera has a tall bounding rectangle).
        if ty0 > ty1 || ty1 <= 0.0 || ty1 < nearest || ty0 > farthest {
            continue;
        }
        for x in first..last {
            let f = canvas.footprint[x];
            let enter = max(f.enter, ty0);
            let exit = min(f.exit, ty1);
            if enter > exit || enter <= NEAR {
                continue;
            }
            let i = y * canvas.width + x;
            if enter > canvas.depth[i] {
                continue;
            }
            let colour = if SHADE {
                let dir = [rays.dx[x], dy, rays.dz[x]];
                let axis = if ty0 >= f.enter {
                    1
                } else if f.through_x {
                    0
                } else {
                    2
                };
                let point = [
                    origin[0] + enter * dir[0],
                    origin[1] + enter * dir[1],
                    origin[2] + enter * dir[2],
                ];
                shade(&BoxHit {
                    axis,
                    positive: dir[axis] < 0.0,
                    point,
                })
            } else {
                [0.0; 3]
            };
            canvas.put(i, class, enter, colour);
        }
    }
}

/// The smaller of two numbers (a comparison that compiles to `minss`; no NaN care needed here).
#[inline(always)]
fn min(a: f32, b: f32) -> f32 {
    if a < b { a } else { b }
}

/// The larger of two numbers.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// Entry and exit parameters of a ray through the slab `lo..hi` (relative to the origin),
/// given the reciprocal of the ray's direction along the slab's axis. A ray parallel to the
/// slab gives infinities (or NaN on a face), which the comparisons treat consistently.
#[inline(always)]
fn slab(lo: f32, hi: f32, inv: f32) -> (f32, f32) {
    let (a, b) = (lo * inv, hi * inv);
    if a < b { (a, b) } else { (b, a) }
}

/// A flat shape standing upright at `(x, z)`, facing the camera, from height `bottom` to `top`.
/// `reach(v)` bounds how far the shape reaches either side of its axis at height `v` (metres;
/// pixels beyond are not looked at). `shape(u, v)` says what is at `u` metres right of the axis
/// and `v` metres above the ground (`None`: nothing); it must decide the class the same way
/// whether shading or not, and may skip the colour when not.
pub(super) fn draw_billboard<const SHADE: bool>(
    scene: &Scene<'_>,
    canvas: &mut Canvas<'_, SHADE>,
    (x, z): (f32, f32),
    (bottom, top): (f32, f32),
    reach: impl Fn(f32) -> f32,
    shape: impl Fn(f32, f32) -> Option<(SceneClass, Rgb)>,
) {
    let camera = scene.camera;
    let depth = camera.depth(x, z);
    if depth < NEAR {
        return;
    }
    let centre = camera.column(x, z, depth);
    let scale = camera.focal / depth;
    let Some((_, _, y0, y1)) = pixel_bounds(
        canvas,
        centre,
        centre,
        camera.row(top, depth),
        camera.row(bottom, depth),
    ) else {
        return;
    };
    for y in y0..y1 {
        let v = camera.y + scene.rays.dy[y] * depth;
        let half = reach(v) * scale;
        let Some((x0, x1, _, _)) = pixel_bounds(canvas, centre - half, centre + half, 0.0, 0.0)
        else {
            continue;
        };
        for px in x0..x1 {
            let i = y * canvas.width + px;
            if depth > canvas.depth[i] {
                continue;
            }
            let u = (px as f32 + 0.5 - centre) / scale;
            if let Some((class, colour)) = shape(u, v) {
                canvas.put_nearer(i, class, depth, colour);
            }
        }
    }
}

/// The pixel rectangle `x0..x1, y0..y1` whose centres may fall in the given real bounds,
/// clipped to the canvas; `None` when empty.
fn pixel_bounds<const SHADE: bool>(
    canvas: &Canvas<'_, SHADE>,
    left: f32,
    right: f32,
    top: f32,
    bottom: f32,
) -> Option<(usize, usize, usize, usize)> {
    let clip = |v: f32, max: usize| (v.max(0.0) as usize).min(max);
    let x0 = clip(left - 0.5, canvas.width);
    let x1 = clip(right + 1.5, canvas.width);
    let y0 = clip(top - 0.5, canvas.height);
    let y1 = clip(bottom + 1.5, canvas.height);
    (x0 < x1 && y0 < y1 && left.is_finite() && right.is_finite()).then_some((x0, x1, y0, y1))
}
