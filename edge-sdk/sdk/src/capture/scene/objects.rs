//! The objects of the street and how each is built from boxes and billboards: cars, people,
//! trees, street lights and traffic signs. Where they stand is decided in
//! [`placement`](super::placement).
//!
//! Every shape decides its class from geometry alone; colour is computed only when shading, so
//! a label-only render draws exactly the same pixels.

use super::Scene;
use super::classes::SceneClass;
use super::light::{Rgb, mix, scale, vary};
use super::noise::Rng;
use super::raster::{Aabb, BoxHit, Canvas, draw_billboard, draw_box};

/// The thinnest a pole is drawn, in pixels: thinner ones would vanish between pixel centres
/// and flicker from frame to frame.
const MIN_POLE_PIXELS: f32 = 1.2;

/// Width in metres that keeps a pole at `(x, z)` at least [`MIN_POLE_PIXELS`] wide.
fn pole_width(scene: &Scene<'_>, x: f32, z: f32, width: f32) -> f32 {
    let depth = scene.camera.depth(x, z).max(0.0);
    width.max(MIN_POLE_PIXELS * depth / scene.camera.focal)
}

/// Brightness of a box face by its orientation (light from above, a little from the side).
fn face_light(hit: &BoxHit) -> f32 {
    match (hit.axis, hit.positive) {
        (1, true) => 1.1,
        (1, false) => 0.5,
        (0, _) => 0.85,
        _ => 0.72,
    }
}

/// A car or van.
#[derive(Clone, Copy, Debug)]
pub(super) struct Car {
    x: f32,
    /// Rear-most `z` (the lower end along the street).
    z0: f32,
    length: f32,
    width: f32,
    /// Top of the body (the bonnet line), metres.
    body: f32,
    /// Height of the cabin above the body (0: a van, windows in the body).
    cabin: f32,
    /// +1 when it faces `+z`, -1 when it faces the camera's way back.
    heading: f32,
    paint: Rgb,
}

impl Car {
    const PAINTS: [Rgb; 12] = [
        [0.90, 0.90, 0.90],
        [0.88, 0.88, 0.86],
        [0.07, 0.07, 0.08],
        [0.10, 0.10, 0.12],
        [0.62, 0.63, 0.65],
        [0.40, 0.41, 0.43],
        [0.62, 0.07, 0.07],
        [0.10, 0.20, 0.52],
        [0.06, 0.10, 0.25],
        [0.16, 0.34, 0.22],
        [0.72, 0.66, 0.52],
        [0.85, 0.70, 0.12],
    ];

    /// A car centred at `(x, z)` facing `heading`, its model and paint drawn from `style`.
    pub(super) fn new(x: f32, z: f32, heading: f32, style: u64) -> Self {
        let mut rng = Rng::new(&[style, 0x434152]);
        let (length, width, body, cabin) = match rng.below(10) {
            0..=4 => (
                rng.range(4.1, 4.8),
                rng.range(1.72, 1.85),
                rng.range(0.9, 1.02),
                rng.range(0.46, 0.56),
            ),
            5 | 6 => (
                rng.range(4.4, 4.9),
                rng.range(1.8, 1.95),
                rng.range(1.08, 1.2),
                rng.range(0.55, 0.65),
            ),
            7 | 8 => (
                rng.range(3.5, 3.95),
                rng.range(1.62, 1.72),
                rng.range(0.92, 1.0),
                rng.range(0.55, 0.62),
            ),
            _ => (
                rng.range(4.8, 5.3),
                rng.range(1.9, 2.0),
                rng.range(1.85, 2.05),
                0.0,
            ),
        };
        Self {
            x,
            z0: z - length / 2.0,
            length,
            width,
            body,
            cabin,
            heading,
            paint: vary(rng.pick(&Self::PAINTS), &mut rng, 0.06),
        }
    }

    /// Draws the car: wheels, body and cabin.
    pub(super) fn draw<const SHADE: bool>(
        &self,
        scene: &Scene<'_>,
        canvas: &mut Canvas<'_, SHADE>,
    ) {
        let (x, z0, l, hw) = (self.x, self.z0, self.length, self.width / 2.0);
        let z1 = z0 + l;
        let tyre = |_: &BoxHit| [0.05, 0.05, 0.06];
        for axle in [z0 + 0.8, z1 - 0.85] {
            for (a, b) in [
                (x - hw + 0.03, x - hw + 0.26),
                (x + hw - 0.26, x + hw - 0.03),
            ] {
                let wheel = Aabb {
                    lo: [a, 0.0, axle - 0.32],
                    hi: [b, 0.5, axle + 0.32],
                };
                draw_box(scene, canvas, &wheel, SceneClass::Car, tyre);
            }
        }
        let body = Aabb {
            lo: [x - hw, 0.22, z0],
            hi: [x + hw, self.body, z1],
        };
        draw_box(scene, canvas, &body, SceneClass::Car, |hit| {
            self.body_colour(hit)
        });
        if self.cabin > 0.0 {
            let (c0, c1) = if self.heading > 0.0 {
                (z0 + 0.2 * l, z0 + 0.72 * l)
            } else {
                (z0 + 0.28 * l, z0 + 0.8 * l)
            };
            let cabin = Aabb {
                lo: [x - hw + 0.1, self.body, c0],
                hi: [x + hw - 0.1, self.body + self.cabin, c1],
            };
            draw_box(scene, canvas, &cabin, SceneClass::Car, |hit| {
                self.cabin_colour(hit, c0, c1)
            });
        }
    }

    fn glass(&self, v: f32) -> Rgb {
        // Sky reflected in the top of the glass.
        let t = ((v - self.body) / (self.cabin.max(0.5))).clamp(0.0, 1.0);
        mix([0.07, 0.08, 0.10], [0.30, 0.34, 0.40], t * 0.6)
    }

    fn body_colour(&self, hit: &BoxHit) -> Rgb {
        let [px, py, pz] = hit.point;
        let across = (px - self.x).abs();
        let hw = self.width / 2.0;
        let paint = scale(self.paint, face_light(hit) * (0.8 + 0.3 * (py / self.body)));
        let van_window = self.cabin == 0.0 && py > self.body - 0.85 && py < self.body - 0.1;
        match hit.axis {
            2 => {
                // An end: front if its normal points the way the car faces.
                let front = hit.positive == (self.heading > 0.0);
                if van_window && across < hw - 0.15 {
                    return self.glass(py);
                }
                let lamp_top = if self.cabin == 0.0 {
                    1.25
                } else {
                    self.body - 0.1
                };
                if across > hw - 0.38 && py > lamp_top - 0.2 && py < lamp_top {
                    return if front {
                        [0.95, 0.94, 0.85]
                    } else {
                        [0.75, 0.06, 0.05]
                    };
                }
                if across < 0.26 && py > 0.4 && py < 0.54 {
                    return [0.9, 0.9, 0.88];
                }
                if py < 0.4 {
                    return scale(paint, 0.5);
                }
                paint
            }
            0 => {
                let along = pz - self.z0;
                for axle in [0.8, self.length - 0.85] {
                    let (dz, dy) = (along - axle, py - 0.32);
                    let r2 = dz * dz + dy * dy;
                    if r2 < 0.12 {
                        return if r2 < 0.035 {
                            [0.55, 0.56, 0.58]
                        } else {
                            [0.05, 0.05, 0.06]
                        };
                    }
                    if r2 < 0.17 {
                        return scale(paint, 0.35);
                    }
                }
                if van_window && along > 0.5 && along < self.length - 0.6 {
                    return self.glass(py);
                }
                if py < 0.36 || (along - self.length * 0.5).abs() < 0.02 {
                    return scale(paint, 0.55);
                }
                paint
            }
            _ => paint,
        }
    }

    fn cabin_colour(&self, hit: &BoxHit, c0: f32, c1: f32) -> Rgb {
        let [px, py, pz] = hit.point;
        let pillar = match hit.axis {
            0 => pz - c0 < 0.12 || c1 - pz < 0.12 || (pz - (c0 + c1) / 2.0).abs() < 0.05,
            2 => (px - self.x).abs() > self.width / 2.0 - 0.2,
            _ => true,
        };
        if pillar || py > self.body + self.cabin - 0.06 {
            scale(self.paint, face_light(hit))
        } else {
            self.glass(py)
        }
    }
}

/// A pedestrian.
#[derive(Clone, Copy, Debug)]
pub(super) struct Person {
    x: f32,
    z: f32,
    height: f32,
    /// Walking cycle, radians (legs and arms move with it).
    phase: f32,
    walking: bool,
    /// Whether the camera sees the face (walking towards it) or the back.
    facing_camera: bool,
    skin: Rgb,
    hair: Rgb,
    top: Rgb,
    legs: Rgb,
    skirt: bool,
    bag: Option<Rgb>,
}

impl Person {
    const SKIN: [Rgb; 5] = [
        [0.95, 0.78, 0.64],
        [0.86, 0.66, 0.50],
        [0.70, 0.50, 0.36],
        [0.50, 0.34, 0.23],
        [0.34, 0.23, 0.16],
    ];
    const HAIR: [Rgb; 5] = [
        [0.08, 0.06, 0.05],
        [0.25, 0.16, 0.08],
        [0.45, 0.30, 0.15],
        [0.70, 0.60, 0.38],
        [0.62, 0.62, 0.62],
    ];
    const CLOTHES: [Rgb; 12] = [
        [0.10, 0.10, 0.12],
        [0.85, 0.85, 0.85],
        [0.60, 0.10, 0.12],
        [0.12, 0.22, 0.50],
        [0.20, 0.40, 0.25],
        [0.80, 0.55, 0.15],
        [0.45, 0.45, 0.48],
        [0.55, 0.35, 0.55],
        [0.85, 0.75, 0.55],
        [0.25, 0.50, 0.65],
        [0.90, 0.40, 0.45],
        [0.35, 0.25, 0.18],
    ];
    const TROUSERS: [Rgb; 5] = [
        [0.14, 0.18, 0.32],
        [0.08, 0.08, 0.09],
        [0.32, 0.32, 0.34],
        [0.62, 0.55, 0.42],
        [0.22, 0.28, 0.45],
    ];

    /// A person at `(x, z)`; `stride` is the distance walked so far (metres) and `heading`
    /// their direction along the street (0 when standing), looks drawn from `style`.
    pub(super) fn new(x: f32, z: f32, heading: f32, stride: f32, style: u64) -> Self {
        let mut rng = Rng::new(&[style, 0x5045_5253]);
        let height = rng.range(1.55, 1.95);
        let skirt = rng.chance(0.15);
        Self {
            x,
            z,
            height,
            // One step per ~0.75 m: a full cycle is two steps.
            phase: stride / (0.75 * height / 1.75) * core::f32::consts::PI,
            walking: heading != 0.0,
            facing_camera: if heading == 0.0 {
                rng.chance(0.5)
            } else {
                heading < 0.0
            },
            skin: rng.pick(&Self::SKIN),
            hair: rng.pick(&Self::HAIR),
            top: vary(rng.pick(&Self::CLOTHES), &mut rng, 0.1),
            legs: if skirt {
                vary(rng.pick(&Self::CLOTHES), &mut rng, 0.1)
            } else {
                vary(rng.pick(&Self::TROUSERS), &mut rng, 0.1)
            },
            skirt,
            bag: rng.chance(0.3).then(|| {
                vary(
                    rng.pick(&[[0.2, 0.12, 0.08], [0.08, 0.08, 0.08], [0.5, 0.3, 0.2]]),
                    &mut rng,
                    0.1,
                )
            }),
        }
    }

    /// Draws the person as a silhouette facing the camera.
    pub(super) fn draw<const SHADE: bool>(
        &self,
        scene: &Scene<'_>,
        canvas: &mut Canvas<'_, SHADE>,
    ) {
        let s = self.height / 1.75;
        let swing = if self.walking {
            super::noise::sin(self.phase)
        } else {
            0.0
        };
        let shoulder = self.height - 0.25 * s;
        let hip = 0.53 * self.height;
        let reach = |v: f32| {
            if v > shoulder {
                0.12 * s
            } else if self.bag.is_some() && v > hip - 0.12 * s && v < hip + 0.14 * s {
                0.42 * s
            } else {
                0.3 * s
            }
        };
        draw_billboard(
            scene,
            canvas,
            (self.x, self.z),
            (0.0, self.height),
            reach,
            |u, v| {
                let part = self.part(u, v, s, swing)?;
                let colour = if SHADE {
                    // Rounded: darker towards the silhouette's sides.
                    let k = u / (0.3 * s);
                    let round = 1.0 - 0.35 * (k * k).min(1.0);
                    scale(part, round)
                } else {
                    [0.0; 3]
                };
                Some((SceneClass::Person, colour))
            },
        );
    }

    /// The colour of the body part at `(u, v)`, or `None` outside the silhouette.
    fn part(&self, u: f32, v: f32, s: f32, swing: f32) -> Option<Rgb> {
        let h = self.height;
        let au = u.abs();
        let head_y = h - 0.115 * s;
        let head_r = 0.105 * s;
        let (du, dv) = (u, v - head_y);
        if du * du + dv * dv <= head_r * head_r {
            let hair = !self.facing_camera || dv > 0.045 * s || (dv > -0.02 * s && au > 0.08 * s);
            return Some(if hair { self.hair } else { self.skin });
        }
        let shoulder = h - 0.25 * s;
        if v > shoulder && v < h - 0.2 * s && au < 0.05 * s {
            return Some(self.skin);
        }
        let hip = 0.53 * h;
        let waist_hw = 0.16 * s;
        let shoulder_hw = 0.2 * s;
        if v >= hip && v <= shoulder {
            let t = (v - hip) / (shoulder - hip);
            let mut hw = waist_hw + (shoulder_hw - waist_hw) * t;
            let round = shoulder - 0.06 * s;
            if v > round {
                hw -= (v - round) * 1.3;
            }
            if au <= hw {
                return Some(self.top);
            }
            // Arms hang beside the torso and swing (seen end-on, a swing shortens them).
            let arm_lo = hip - 0.08 * s + 0.05 * s * swing * u.signum();
            if au > hw && au < hw + 0.075 * s && v > arm_lo && v < shoulder - 0.03 * s {
                return Some(if v < arm_lo + 0.08 * s {
                    self.skin
                } else {
                    self.top
                });
            }
            if let Some(bag) = self.bag
                && u > shoulder_hw + 0.02 * s
                && u < shoulder_hw + 0.2 * s
                && v > hip - 0.1 * s
                && v < hip + 0.12 * s
            {
                return Some(bag);
            }
        }
        if v < hip {
            if let Some(bag) = self.bag
                && u > shoulder_hw + 0.02 * s
                && u < shoulder_hw + 0.2 * s
                && v > hip - 0.1 * s
            {
                return Some(bag);
            }
            if self.skirt && v > 0.36 * h {
                let hw = waist_hw + (hip - v) * 0.25;
                return (au <= hw).then_some(self.legs);
            }
            for (centre, lift) in [(-0.075 * s, swing), (0.075 * s, -swing)] {
                let lift = 0.08 * s * lift.max(0.0);
                let spread = 0.015 * s * swing * centre.signum();
                if (u - centre - spread).abs() < 0.068 * s && v >= lift {
                    return Some(if v < lift + 0.07 * s {
                        [0.06, 0.05, 0.05]
                    } else if self.skirt {
                        self.skin
                    } else {
                        self.legs
                    });
                }
            }
        }
        None
    }
}

/// A tree: a trunk and a crown of a few overlapping lumpy blobs (or a conifer's cone).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tree {
    x: f32,
    z: f32,
    crown_base: f32,
    /// Blobs of the crown: centre across and up, radii across and up (metres).
    blobs: [(f32, f32, f32, f32); 3],
    /// Top of the crown.
    top: f32,
    trunk: f32,
    conifer: bool,
    foliage: Rgb,
    seed: f32,
}

/// Squared normalised radius below which a crown blob is surely leaves, and the most its
/// lumpy edge reaches.
const CROWN_CORE: f32 = 0.7;
const CROWN_EDGE: f32 = 1.3;

impl Tree {
    /// A tree at `(x, z)` of the given overall size (1 is a typical street tree).
    pub(super) fn new(x: f32, z: f32, size: f32, foliage: Rgb, style: u64) -> Self {
        let mut rng = Rng::new(&[style, 0x5452_4545]);
        let crown_base = rng.range(1.8, 3.2) * size;
        let rx = rng.range(1.4, 2.6) * size;
        let ry = rx * rng.range(0.9, 1.4);
        let main = (0.0, crown_base + ry, rx, ry);
        // Two smaller blobs on the shoulders make the crown irregular.
        let mut side = |sign: f32| {
            let r = rx * rng.range(0.5, 0.8);
            (
                sign * rx * rng.range(0.4, 0.8),
                crown_base + ry * rng.range(0.5, 1.3),
                r,
                r * rng.range(0.8, 1.2),
            )
        };
        let blobs = [main, side(-1.0), side(1.0)];
        let top = blobs
            .iter()
            .map(|&(_, cy, _, ry)| cy + ry * CROWN_EDGE.sqrt())
            .fold(0.0, f32::max);
        Self {
            x,
            z,
            crown_base,
            blobs,
            top,
            trunk: rng.range(0.22, 0.4) * size,
            conifer: rng.chance(0.15),
            foliage: vary(
                rng.pick(&[
                    foliage,
                    [0.22, 0.38, 0.12],
                    [0.14, 0.30, 0.16],
                    [0.26, 0.36, 0.10],
                ]),
                &mut rng,
                0.15,
            ),
            seed: rng.range(0.0, 128.0),
        }
    }

    /// Draws the tree.
    pub(super) fn draw<const SHADE: bool>(
        &self,
        scene: &Scene<'_>,
        canvas: &mut Canvas<'_, SHADE>,
    ) {
        let (_, _, rx, _) = self.blobs[0];
        let top = self.top;
        let cone_base = self.crown_base * 0.5;
        let noise = scene.noise;
        let trunk_reach = self.trunk * 0.7;
        let reach = |v: f32| {
            let crown = if self.conifer {
                let t = ((v - cone_base) / (top - cone_base)).clamp(0.0, 1.0);
                rx * 0.9 * (1.0 - t) + 0.2
            } else {
                self.blobs
                    .iter()
                    .map(|&(cx, cy, bx, by)| {
                        let dv = (v - cy) / by;
                        cx.abs() + bx * (CROWN_EDGE - dv * dv).max(0.0).sqrt()
                    })
                    .fold(0.0, f32::max)
            };
            crown.max(trunk_reach)
        };
        draw_billboard(
            scene,
            canvas,
            (self.x, self.z),
            (0.0, top),
            reach,
            |u, v| {
                let trunk = self.trunk * (1.0 + 0.3 * (1.0 - v / self.crown_base).max(0.0));
                let in_trunk = u.abs() < trunk / 2.0 && v < self.crown_base + rx;
                // The nearest blob, in normalised squared radius.
                let r2 = self
                    .blobs
                    .iter()
                    .fold(f32::INFINITY, |r2, &(cx, cy, bx, by)| {
                        let (du, dv) = ((u - cx) / bx, (v - cy) / by);
                        r2.min(du * du + dv * dv)
                    });
                // Outside the crown's largest extent the noise need not be looked at.
                if !self.conifer && !in_trunk && r2 >= CROWN_EDGE {
                    return None;
                }
                // The lumpy edge needs the noise; the core of a blob is leaves whatever it says.
                let crown = if self.conifer {
                    let t = (v - cone_base) / (top - cone_base);
                    let n = noise.sample(u * 1.6 + self.seed, v * 1.6);
                    (0.0..1.0).contains(&t) && u.abs() < rx * 0.8 * (1.0 - t) * (0.85 + 0.25 * n)
                } else {
                    r2 < CROWN_CORE
                        || r2
                            < CROWN_CORE
                                + (CROWN_EDGE - CROWN_CORE)
                                    * noise.sample(u * 1.6 + self.seed, v * 1.6)
                };
                if crown {
                    let colour = if SHADE {
                        let clumps = noise.texel(u * 2.0 + self.seed, v * 2.0);
                        let leaves = noise.texel(u * 7.0, v * 7.0 + self.seed);
                        // Lit from above and a little from the left; darker inside the crown.
                        let height =
                            ((v - self.crown_base) / (top - self.crown_base)).clamp(0.0, 1.0);
                        let lit = 0.6 + 0.45 * height - 0.08 * (u / rx).clamp(-1.0, 1.0);
                        scale(
                            self.foliage,
                            (0.45 + 0.6 * clumps * leaves + 0.45 * leaves) * lit,
                        )
                    } else {
                        [0.0; 3]
                    };
                    return Some((SceneClass::Vegetation, colour));
                }
                if in_trunk {
                    let colour = if SHADE {
                        let bark = noise.texel(u * 20.0, v * 4.0);
                        scale(
                            [0.30, 0.25, 0.20],
                            (0.7 + 0.5 * bark) * (1.0 - 0.4 * (u / trunk).abs()),
                        )
                    } else {
                        [0.0; 3]
                    };
                    return Some((SceneClass::Vegetation, colour));
                }
                None
            },
        );
    }
}

/// A street light: a tall pole with an arm over the road and a lamp head.
#[derive(Clone, Copy, Debug)]
pub(super) struct StreetLight {
    x: f32,
    z: f32,
    height: f32,
    /// Arm length towards the road (signed along `x`).
    arm: f32,
    metal: Rgb,
}

impl StreetLight {
    /// A light at `(x, z)` whose arm reaches `arm` metres along `x`.
    pub(super) fn new(x: f32, z: f32, arm: f32, style: u64) -> Self {
        let mut rng = Rng::new(&[style, 0x4c41_4d50]);
        Self {
            x,
            z,
            height: rng.range(6.0, 9.0),
            arm,
            metal: rng.pick(&[[0.28, 0.29, 0.30], [0.16, 0.24, 0.20], [0.55, 0.56, 0.57]]),
        }
    }

    /// Draws the light.
    pub(super) fn draw<const SHADE: bool>(
        &self,
        scene: &Scene<'_>,
        canvas: &mut Canvas<'_, SHADE>,
    ) {
        let w = pole_width(scene, self.x, self.z, 0.2) / 2.0;
        let (x, z, h) = (self.x, self.z, self.height);
        let shade = |hit: &BoxHit| {
            scale(
                self.metal,
                face_light(hit) * (0.85 + 0.15 * (hit.point[1] / h)),
            )
        };
        let pole = Aabb {
            lo: [x - w, 0.0, z - w],
            hi: [x + w, h, z + w],
        };
        draw_box(scene, canvas, &pole, SceneClass::Pole, shade);
        let end = x + self.arm;
        let arm_w = pole_width(scene, end, z, 0.12) / 2.0;
        let arm = Aabb {
            lo: [x.min(end), h - 0.14, z - arm_w],
            hi: [x.max(end), h, z + arm_w],
        };
        draw_box(scene, canvas, &arm, SceneClass::Pole, shade);
        let lamp = Aabb {
            lo: [end - 0.35, h - 0.3, z - 0.16],
            hi: [end + 0.35, h - 0.05, z + 0.16],
        };
        draw_box(scene, canvas, &lamp, SceneClass::Pole, |hit| {
            if hit.axis == 1 && !hit.positive {
                [0.95, 0.93, 0.8]
            } else {
                shade(hit)
            }
        });
    }
}

/// The plate of a traffic sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plate {
    /// Round: prohibitions (red ring) and mandatory directions (blue disc).
    Round,
    /// Triangle point up: warnings, red border.
    Triangle,
    /// Square: information, blue.
    Square,
    /// Diamond: priority road, yellow with a white border.
    Diamond,
    /// A wide rectangle: street names and directions.
    Board,
}

/// A traffic sign: a post and one plate (the post is a pole, the plate a traffic sign).
#[derive(Clone, Copy, Debug)]
pub(super) struct Sign {
    x: f32,
    z: f32,
    /// Height of the plate's centre.
    height: f32,
    plate: Plate,
    size: f32,
    /// Whether the camera sees the face (signs face the traffic on their side).
    front: bool,
    colours: (Rgb, Rgb),
}

impl Sign {
    /// A sign at `(x, z)`, seen from the front when `front`.
    pub(super) fn new(x: f32, z: f32, front: bool, style: u64) -> Self {
        let mut rng = Rng::new(&[style, 0x5349_474e]);
        let plate = rng.pick(&[
            Plate::Round,
            Plate::Round,
            Plate::Triangle,
            Plate::Square,
            Plate::Diamond,
            Plate::Board,
        ]);
        let (size, colours) = match plate {
            Plate::Round if rng.chance(0.5) => (0.6, ([0.80, 0.08, 0.10], [0.95, 0.95, 0.95])),
            Plate::Round => (0.6, ([0.90, 0.90, 0.90], [0.10, 0.30, 0.75])),
            Plate::Triangle => (0.8, ([0.80, 0.08, 0.10], [0.95, 0.95, 0.92])),
            Plate::Square => (0.6, ([0.95, 0.95, 0.95], [0.10, 0.35, 0.75])),
            Plate::Diamond => (0.55, ([0.95, 0.95, 0.95], [0.95, 0.78, 0.10])),
            Plate::Board => (
                0.9,
                (
                    [0.95, 0.95, 0.95],
                    rng.pick(&[[0.10, 0.35, 0.70], [0.10, 0.45, 0.25], [0.92, 0.92, 0.90]]),
                ),
            ),
        };
        Self {
            x,
            z,
            height: rng.range(2.2, 2.8),
            plate,
            size,
            front,
            colours,
        }
    }

    /// Draws post and plate.
    pub(super) fn draw<const SHADE: bool>(
        &self,
        scene: &Scene<'_>,
        canvas: &mut Canvas<'_, SHADE>,
    ) {
        let w = pole_width(scene, self.x, self.z, 0.08) / 2.0;
        let post = Aabb {
            lo: [self.x - w, 0.0, self.z - w],
            hi: [self.x + w, self.height + 0.1, self.z + w],
        };
        draw_box(scene, canvas, &post, SceneClass::Pole, |hit| {
            scale([0.55, 0.56, 0.58], face_light(hit))
        });
        let r = self.size / 2.0;
        let (edge, fill) = self.colours;
        // The plate stands just in front of the post (towards the camera).
        let at = (self.x, self.z - w - 0.02);
        draw_billboard(
            scene,
            canvas,
            at,
            (self.height - r, self.height + r),
            |_| r,
            |u, v| {
                let (pu, pv) = (u / r, (v - self.height) / r);
                let (inside, border) = match self.plate {
                    Plate::Round => {
                        let d = pu * pu + pv * pv;
                        (d <= 1.0, d > 0.62)
                    }
                    Plate::Triangle => {
                        // Point up; |u| shrinks linearly with height.
                        let limit = (1.0 - (pv + 0.8) / 1.8) * 1.0;
                        let inside = pv >= -0.8 && pu.abs() <= limit;
                        (inside, pv < -0.62 || pu.abs() > limit - 0.3)
                    }
                    Plate::Square => (
                        pu.abs() <= 0.9 && pv.abs() <= 0.9,
                        pu.abs() > 0.78 || pv.abs() > 0.78,
                    ),
                    Plate::Diamond => {
                        let d = pu.abs() + pv.abs();
                        (d <= 1.0, d > 0.72)
                    }
                    Plate::Board => (
                        pu.abs() <= 1.0 && pv.abs() <= 0.42,
                        pu.abs() > 0.92 || pv.abs() > 0.34,
                    ),
                };
                if !inside {
                    return None;
                }
                let colour = if !SHADE {
                    [0.0; 3]
                } else if !self.front {
                    [0.45, 0.46, 0.48]
                } else if border {
                    edge
                } else if self.plate == Plate::Board && pv.abs() < 0.12 && pu.abs() < 0.7 {
                    // Lettering.
                    scale(edge, 0.9)
                } else {
                    fill
                };
                Some((SceneClass::TrafficSign, colour))
            },
        );
    }
}
