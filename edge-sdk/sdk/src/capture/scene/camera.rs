//! The camera: a pinhole on a car driving along the street with a little lateral sway, yaw and
//! road bounce, and the per-frame ray table every pass shares.
//!
//! The image plane is vertical (no pitch); bounce moves the horizon row instead, which is what a
//! small pitch looks like. Rays are scaled so that their component along the viewing direction
//! is 1: the ray parameter `t` is then the camera-space depth, the value the depth buffer holds.

use super::layout::{RIGHT, Street};
use super::noise::{Rng, cos, sin};

/// How the camera moves through one sequence.
#[derive(Clone, Debug)]
pub(super) struct Drive {
    /// Where the camera starts along the street.
    start: f32,
    speed: f32,
    lane_x: f32,
    pub(super) height: f32,
    focal_ratio: f32,
    horizon_ratio: f32,
    sway: (f32, f32),
    yaw: (f32, f32, f32),
    bounce: (f32, f32),
    surge: (f32, f32),
}

impl Drive {
    /// The drive of the street keyed `key`.
    pub(super) fn new(street: &Street) -> Self {
        let mut rng = Rng::new(&[street.key, 0x0044_5249_5645]);
        let lane = if street.lanes > 1 && rng.chance(0.4) {
            1
        } else {
            0
        };
        Self {
            start: rng.range(14.0, 40.0),
            speed: if rng.chance(0.15) {
                rng.range(1.5, 5.0)
            } else {
                rng.range(5.0, 13.0)
            },
            lane_x: street.lane_centre(RIGHT, lane) + rng.range(-0.3, 0.3),
            height: rng.range(1.25, 1.7),
            focal_ratio: rng.range(0.55, 0.8),
            horizon_ratio: rng.range(0.4, 0.5),
            sway: (rng.range(0.05, 0.3), rng.range(0.3, 1.2)),
            yaw: (
                rng.range(0.005, 0.035),
                rng.range(0.2, 0.8),
                rng.range(0.0, 6.3),
            ),
            bounce: (rng.range(0.0005, 0.003), rng.range(6.0, 12.0)),
            surge: (rng.range(0.0, 0.2), rng.range(0.1, 0.4)),
        }
    }
}

/// The camera at one instant, for one picture size.
#[derive(Clone, Copy, Debug)]
pub(super) struct Camera {
    /// Position of the optical centre (world metres); `y` is its height above the road.
    pub(super) x: f32,
    pub(super) y: f32,
    pub(super) z: f32,
    /// Yaw (positive: turned towards `+x`), as sine and cosine.
    pub(super) sin_yaw: f32,
    pub(super) cos_yaw: f32,
    /// Focal length in pixels.
    pub(super) focal: f32,
    /// Principal point column.
    pub(super) cx: f32,
    /// Row of the horizon (a real number: rows are compared at their centres, `y + 0.5`).
    pub(super) horizon: f32,
}

impl Camera {
    /// Where `drive` has the camera `time` seconds into its sequence.
    pub(super) fn at(drive: &Drive, width: usize, height: usize, time: f32) -> Self {
        let (surge, surge_rate) = drive.surge;
        // Position is the integral of a speed that varies by ±surge around its mean.
        let z = drive.start
            + drive.speed * time
            + drive.speed * surge / surge_rate * (1.0 - cos(surge_rate * time));
        let (sway, sway_rate) = drive.sway;
        let (yaw_amp, yaw_rate, yaw_phase) = drive.yaw;
        let yaw = yaw_amp * sin(yaw_rate * time + yaw_phase);
        // Normalised so that rays and projection agree exactly (the sine is approximate).
        let (s, c) = (sin(yaw), cos(yaw));
        let norm = (s * s + c * c).sqrt();
        let (bounce, bounce_rate) = drive.bounce;
        let shake = sin(bounce_rate * time) * 0.7 + sin(bounce_rate * 1.7 * time + 1.0) * 0.3;
        Self {
            x: drive.lane_x + sway * sin(sway_rate * time),
            y: drive.height,
            z,
            sin_yaw: s / norm,
            cos_yaw: c / norm,
            focal: drive.focal_ratio * width as f32,
            cx: width as f32 / 2.0,
            horizon: drive.horizon_ratio * height as f32 + bounce * height as f32 * shake,
        }
    }

    /// Camera-space depth of the world point `(x, ·, z)`.
    #[inline]
    pub(super) fn depth(&self, x: f32, z: f32) -> f32 {
        (x - self.x) * self.sin_yaw + (z - self.z) * self.cos_yaw
    }

    /// Screen column of the world point `(x, ·, z)`, given its depth.
    #[inline]
    pub(super) fn column(&self, x: f32, z: f32, depth: f32) -> f32 {
        let across = (x - self.x) * self.cos_yaw - (z - self.z) * self.sin_yaw;
        self.cx + self.focal * across / depth
    }

    /// Screen row of height `y` at `depth`.
    #[inline]
    pub(super) fn row(&self, y: f32, depth: f32) -> f32 {
        self.horizon - self.focal * (y - self.y) / depth
    }
}

/// The world direction of every column's and every row's ray for one frame.
#[derive(Debug, Default)]
pub(super) struct Rays {
    /// Per column: world `x` and `z` change per unit depth.
    pub(super) dx: Vec<f32>,
    pub(super) dz: Vec<f32>,
    /// Their reciprocals, for ray-box tests.
    pub(super) inv_dx: Vec<f32>,
    pub(super) inv_dz: Vec<f32>,
    /// Per row: world `y` change per unit depth (positive above the horizon).
    pub(super) dy: Vec<f32>,
}

impl Rays {
    /// Tables for a `width × height` picture, allocated once.
    pub(super) fn new(width: usize, height: usize) -> Self {
        Self {
            dx: vec![0.0; width],
            dz: vec![0.0; width],
            inv_dx: vec![0.0; width],
            inv_dz: vec![0.0; width],
            dy: vec![0.0; height],
        }
    }

    /// Fills the tables for `camera` (pixel centres).
    pub(super) fn aim(&mut self, camera: &Camera) {
        for (x, (dx, dz)) in self.dx.iter_mut().zip(self.dz.iter_mut()).enumerate() {
            let u = (x as f32 + 0.5 - camera.cx) / camera.focal;
            *dx = camera.sin_yaw + u * camera.cos_yaw;
            *dz = camera.cos_yaw - u * camera.sin_yaw;
        }
        for (inv, d) in self.inv_dx.iter_mut().zip(&self.dx) {
            *inv = 1.0 / d;
        }
        for (inv, d) in self.inv_dz.iter_mut().zip(&self.dz) {
            *inv = 1.0 / d;
        }
        for (y, dy) in self.dy.iter_mut().enumerate() {
            *dy = (camera.horizon - (y as f32 + 0.5)) / camera.focal;
        }
    }
}
