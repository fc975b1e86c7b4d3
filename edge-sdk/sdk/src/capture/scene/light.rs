//! The look of a sequence and its lighting over time: sky colours and clouds, the sun (which
//! side of the street it shines from, how long the shadows are), global brightness and colour
//! temperature that drift frame by frame, and the material tones of the street.
//!
//! Nothing here changes a label: light only scales colours.

use super::layout::{LEFT, RIGHT, Street};
use super::noise::{Rng, sin};

/// An RGB colour, components nominally in `0..=1`.
pub(super) type Rgb = [f32; 3];

/// Scales a colour.
#[inline]
pub(super) fn scale(c: Rgb, k: f32) -> Rgb {
    [c[0] * k, c[1] * k, c[2] * k]
}

/// Blends two colours.
#[inline]
pub(super) fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Varies a colour's brightness and hue by up to `amount` (relative), drawing from `rng`.
pub(super) fn vary(c: Rgb, rng: &mut Rng, amount: f32) -> Rgb {
    let k = 1.0 + rng.range(-amount, amount);
    [
        c[0] * k * (1.0 + rng.range(-amount, amount) * 0.5),
        c[1] * k * (1.0 + rng.range(-amount, amount) * 0.5),
        c[2] * k * (1.0 + rng.range(-amount, amount) * 0.5),
    ]
}

/// Where the sun is.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sun {
    /// The side of the street the sun shines from: that side's buildings cast their shadow
    /// across the street, and their own facades are in shade.
    pub(super) side: usize,
    /// Shadow length per metre of height (the cotangent of the sun's elevation).
    pub(super) reach: f32,
    /// Brightness kept in shadow.
    pub(super) shade: f32,
}

/// A sequence's look.
#[derive(Clone, Debug)]
pub(super) struct Look {
    pub(super) zenith: Rgb,
    pub(super) horizon: Rgb,
    pub(super) cloud: Rgb,
    /// Noise level above which the sky is cloud.
    pub(super) cloud_cover: f32,
    /// Colour that distance fades to.
    pub(super) haze: Rgb,
    pub(super) sun: Option<Sun>,
    pub(super) asphalt: Rgb,
    pub(super) pavement: Rgb,
    pub(super) kerbstone: Rgb,
    pub(super) grass: Rgb,
    pub(super) foliage: Rgb,
    /// Paving tile size, metres.
    pub(super) tile: f32,
    /// Whether the centre line is a double solid line (otherwise dashed).
    pub(super) solid_centre: bool,
    brightness: f32,
    warmth: f32,
    drift: (f32, f32, f32, f32),
    /// Per-pixel sensor noise amplitude, in 8-bit steps.
    pub(super) grain: f32,
}

impl Look {
    /// The look of `street`'s sequence.
    pub(super) fn new(street: &Street) -> Self {
        let mut rng = Rng::new(&[street.key, 0x4c4f_4f4b]);
        let weather = rng.unit();
        let (zenith, horizon, cloud, cover, sunny) = if weather < 0.55 {
            // Clear to fair.
            (
                vary([0.22, 0.42, 0.78], &mut rng, 0.08),
                vary([0.68, 0.80, 0.92], &mut rng, 0.05),
                [0.95, 0.95, 0.97],
                rng.range(0.55, 0.8),
                true,
            )
        } else if weather < 0.8 {
            // Overcast.
            (
                vary([0.52, 0.58, 0.68], &mut rng, 0.06),
                vary([0.80, 0.83, 0.87], &mut rng, 0.04),
                [0.90, 0.90, 0.92],
                rng.range(0.3, 0.5),
                false,
            )
        } else {
            // Low sun, warm horizon.
            (
                vary([0.30, 0.42, 0.70], &mut rng, 0.08),
                vary([0.95, 0.80, 0.62], &mut rng, 0.05),
                [0.98, 0.88, 0.80],
                rng.range(0.5, 0.75),
                true,
            )
        };
        let sun = (sunny && rng.chance(0.85)).then(|| Sun {
            side: if rng.chance(0.5) { LEFT } else { RIGHT },
            reach: rng.range(0.25, 0.9),
            shade: rng.range(0.45, 0.65),
        });
        let haze = horizon;
        Self {
            zenith,
            horizon,
            cloud,
            cloud_cover: cover,
            haze,
            sun,
            asphalt: vary([0.30, 0.31, 0.33], &mut rng, 0.12),
            pavement: vary(
                rng.pick(&[[0.66, 0.64, 0.60], [0.62, 0.62, 0.63], [0.70, 0.62, 0.55]]),
                &mut rng,
                0.08,
            ),
            kerbstone: vary([0.74, 0.74, 0.72], &mut rng, 0.05),
            grass: vary([0.40, 0.52, 0.20], &mut rng, 0.1),
            foliage: vary([0.16, 0.34, 0.12], &mut rng, 0.15),
            tile: rng.range(0.4, 1.0),
            solid_centre: rng.chance(0.4),
            brightness: rng.range(0.82, 1.08),
            warmth: rng.range(-0.06, 0.08),
            drift: (
                rng.range(0.03, 0.12),
                rng.range(0.2, 0.9),
                rng.range(0.01, 0.05),
                rng.range(0.1, 0.5),
            ),
            grain: rng.range(1.5, 4.0),
        }
    }

    /// The per-channel gain `time` seconds into the sequence: brightness and colour
    /// temperature drift slowly, as a camera's auto exposure and white balance do.
    pub(super) fn gain(&self, time: f32) -> Rgb {
        let (amp, rate, warm_amp, warm_rate) = self.drift;
        let b = self.brightness * (1.0 + amp * sin(rate * time));
        let w = self.warmth + warm_amp * sin(warm_rate * time + 1.3);
        [b * (1.0 + w), b, b * (1.0 - w)]
    }
}
