//! Where the objects are at a given time: street furniture (lights, trees, signs) in slots
//! along each kerb, trees in parks, parked cars in the parking lanes, moving traffic in the
//! lanes (with the traffic coming the other way), and people walking or standing on the
//! pavements.
//!
//! Moving things are periodic streams: in a stream with spacing `S` and speed `v`, member `k`
//! is at `offset + k·S + jitter(k) + v·t`, so the members in view are found from the view's
//! range directly and never overlap (the jitter is less than the gap between them).

use super::Scene;
use super::layout::{BLOCK, CROSSING_WIDTH, LEFT, LotKind, RIGHT, Street};
use super::noise::{Rng, hash};
use super::objects::{Car, Person, Sign, StreetLight, Tree};
use super::raster::Canvas;

/// Objects farther than this are not drawn (a car there is about one pixel).
const FAR: f32 = 240.0;
/// Objects this far behind the camera can still reach into the picture.
const BEHIND: f32 = 12.0;
/// Street furniture slots per block side.
const SLOTS: usize = 6;
/// Parking spaces per block side, and their length.
const SPACES: usize = 7;
const SPACE: f32 = 6.4;

/// Draws every object in view.
pub(super) fn draw_objects<const SHADE: bool>(scene: &Scene<'_>, canvas: &mut Canvas<'_, SHADE>) {
    let near = scene.camera.z - BEHIND;
    let far = scene.camera.z + FAR;
    for block in Street::block_of(near)..=Street::block_of(far) {
        for side in [LEFT, RIGHT] {
            street_furniture(scene, canvas, side, block);
            parked_cars(scene, canvas, side, block);
            lots(scene, canvas, side, block);
        }
    }
    traffic(scene, canvas, near, far);
    pedestrians(scene, canvas, near, far);
}

/// `+1` on the right, `-1` on the left.
fn sign_of(side: usize) -> f32 {
    if side == LEFT { -1.0 } else { 1.0 }
}

/// Where lights, signs and street trees stand: on the verge, or just inside the kerb.
fn furniture_x(street: &Street, side: usize) -> f32 {
    let verge = street.verge[side];
    let offset = if verge > 0.0 { 0.2 + verge / 2.0 } else { 0.6 };
    sign_of(side) * (street.kerb[side] + offset)
}

/// Whether `z` is on (or just around) a cross street.
fn near_crossing(street: &Street, z: f32, margin: f32) -> bool {
    let block = Street::block_of(z);
    let within = z - block as f32 * BLOCK;
    (within < CROSSING_WIDTH + margin && street.has_crossing(block))
        || (within > BLOCK - margin && street.has_crossing(block + 1))
}

fn street_furniture<const SHADE: bool>(
    scene: &Scene<'_>,
    canvas: &mut Canvas<'_, SHADE>,
    side: usize,
    block: i64,
) {
    let street = scene.street;
    let mut rng = Rng::new(&[street.key, side as u64, block as u64, 0x4655_524e]);
    let x = furniture_x(street, side);
    let start = block as f32 * BLOCK;
    let sign_slot = rng
        .chance(street.sign_chance)
        .then(|| rng.pick(&[0usize, 2, 3, 5]));
    for slot in 0..SLOTS {
        let style = rng.next_u64();
        let z = start + 4.0 + 8.0 * slot as f32 + rng.range(-1.5, 1.5);
        let tree_roll = rng.unit();
        let arm = rng.range(1.2, 2.4);
        if near_crossing(street, z, 1.5) {
            continue;
        }
        if street.lights[side] && slot % 3 == 1 {
            StreetLight::new(x, z, -sign_of(side) * arm, style).draw(scene, canvas);
        } else if tree_roll < street.street_trees[side] {
            Tree::new(x, z, 1.0, scene.look.foliage, style).draw(scene, canvas);
        }
        if sign_slot == Some(slot) {
            // Beside the tree, not in it; signs face the traffic on their own side.
            Sign::new(x, z + 2.6, side == RIGHT, style ^ 0x51).draw(scene, canvas);
        }
    }
    // A sign at the corner after a cross street.
    if street.has_crossing(block) && rng.chance(0.6) {
        let z = start + CROSSING_WIDTH + 0.8;
        let x = sign_of(side) * (street.kerb[side] + 0.5);
        Sign::new(x, z, side == RIGHT, rng.next_u64()).draw(scene, canvas);
    }
}

fn parked_cars<const SHADE: bool>(
    scene: &Scene<'_>,
    canvas: &mut Canvas<'_, SHADE>,
    side: usize,
    block: i64,
) {
    let street = scene.street;
    if !street.parking[side] {
        return;
    }
    let mut rng = Rng::new(&[street.key, side as u64, block as u64, 0x5041_524b]);
    let start = block as f32 * BLOCK;
    let x = sign_of(side) * (street.kerb[side] - 1.15);
    for space in 0..SPACES {
        let taken = rng.chance(street.parked_share);
        let style = rng.next_u64();
        let (dx, dz) = (rng.range(-0.15, 0.15), rng.range(-0.3, 0.3));
        let z = start + SPACE * (space as f32 + 0.5) + dz;
        if !taken || near_crossing(street, z, 5.5) {
            continue;
        }
        // Parked the way the traffic on that side drives.
        Car::new(x + dx, z, sign_of(side), style).draw(scene, canvas);
    }
}

fn lots<const SHADE: bool>(
    scene: &Scene<'_>,
    canvas: &mut Canvas<'_, SHADE>,
    side: usize,
    block: i64,
) {
    let street = scene.street;
    let s = sign_of(side);
    for lot in street.block_lots(side, block) {
        let mut rng = Rng::new(&[lot.style, 0x004c_4f54]);
        match lot.kind {
            LotKind::Park => {
                let trees = 1 + rng.below(4);
                for _ in 0..trees {
                    let x =
                        s * (street.facade[side] + rng.range(1.5, street.park_depth[side] - 1.0));
                    let z = rng.range(lot.z0 + 1.5, lot.z1 - 1.5);
                    let size = rng.range(0.9, 1.5);
                    Tree::new(x, z, size, scene.look.foliage, rng.next_u64()).draw(scene, canvas);
                }
            }
            LotKind::Plaza => {
                for _ in 0..rng.below(3) {
                    let x = s * (street.facade[side] + rng.range(0.5, 6.0));
                    let z = rng.range(lot.z0 + 1.0, lot.z1 - 1.0);
                    Person::new(x, z, 0.0, 0.0, rng.next_u64()).draw(scene, canvas);
                }
            }
            LotKind::Building if rng.chance(0.3 * street.pedestrians) => {
                // Someone standing at the door.
                let x = s * (street.facade[side] - 0.5);
                let z = rng.range(lot.z0 + 1.0, lot.z1 - 1.0);
                Person::new(x, z, 0.0, 0.0, rng.next_u64()).draw(scene, canvas);
            }
            _ => {}
        }
    }
}

/// One periodic stream of movers: calls `each(k, z)` for every member `k` whose position `z`
/// is within `near..far` at `time`.
fn stream(
    key: u64,
    spacing: f32,
    speed: f32,
    time: f32,
    (near, far): (f32, f32),
    max_jitter: f32,
    mut each: impl FnMut(u64, f32),
) {
    let offset = (hash(&[key]) >> 40) as f32 / (1u64 << 24) as f32 * spacing;
    let travelled = speed * time + offset;
    let first = super::noise::floor((near - max_jitter - travelled) / spacing) as i64;
    let last = ((far + max_jitter - travelled) / spacing).ceil() as i64;
    for k in first..=last {
        let jitter =
            ((hash(&[key, k as u64]) >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * max_jitter;
        let z = k as f32 * spacing + jitter + travelled;
        if z >= near && z <= far {
            each(k as u64, z);
        }
    }
}

fn traffic<const SHADE: bool>(
    scene: &Scene<'_>,
    canvas: &mut Canvas<'_, SHADE>,
    near: f32,
    far: f32,
) {
    let street = scene.street;
    let time = scene.time;
    let camera_lane =
        if (scene.camera.x - street.lane_centre(RIGHT, 0)).abs() < street.lane_width / 2.0 {
            0
        } else {
            1
        };
    for side in [LEFT, RIGHT] {
        for lane in 0..street.lanes {
            let key = hash(&[street.key, side as u64, u64::from(lane), 0x5452_4146]);
            let mut rng = Rng::new(&[key]);
            let spacing = rng.range(18.0, 45.0);
            let heading = sign_of(side);
            let x = street.lane_centre(side, lane);
            if side == RIGHT && lane == camera_lane {
                // The camera's own lane: at most a car ahead, keeping a varying distance.
                if rng.chance(0.6) {
                    let gap = rng.range(12.0, 25.0)
                        + 5.0 * super::noise::sin(0.15 * time + rng.range(0.0, 6.0));
                    Car::new(
                        x + rng.range(-0.2, 0.2),
                        scene.camera.z + gap,
                        heading,
                        rng.next_u64(),
                    )
                    .draw(scene, canvas);
                }
                continue;
            }
            let speed = heading * rng.range(6.0, 14.0);
            let max_jitter = (spacing - 11.0) / 2.0;
            let density = street.traffic;
            stream(
                key,
                spacing,
                speed,
                time,
                (near, far),
                max_jitter,
                |k, z| {
                    let style = hash(&[key, k]);
                    if ((style >> 40) as f32) < density * (1u64 << 24) as f32 {
                        let drift = ((style & 0xff) as f32 / 255.0 - 0.5) * 0.4;
                        Car::new(x + drift, z, heading, style).draw(scene, canvas);
                    }
                },
            );
        }
    }
}

fn pedestrians<const SHADE: bool>(
    scene: &Scene<'_>,
    canvas: &mut Canvas<'_, SHADE>,
    near: f32,
    far: f32,
) {
    let street = scene.street;
    for side in [LEFT, RIGHT] {
        let inner = street.kerb[side] + 0.2 + street.verge[side];
        let width = street.facade[side] - inner;
        for (lane, heading) in [(0.45f32, 1.0f32), (0.75, -1.0)] {
            let key = hash(&[street.key, side as u64, lane.to_bits() as u64, 0x0050_4544]);
            let mut rng = Rng::new(&[key]);
            let spacing = rng.range(5.0, 16.0) / street.pedestrians;
            let speed = heading * rng.range(1.0, 1.7);
            let centre = inner + width * lane;
            stream(
                key,
                spacing,
                speed,
                scene.time,
                (near, far),
                (spacing - 1.5) / 2.0,
                |k, z| {
                    let style = hash(&[key, k]);
                    if style >> 62 == 0 {
                        // A gap in the stream: not everyone walks in step.
                        return;
                    }
                    let across = ((style & 0xffff) as f32 / 65535.0 - 0.5) * 0.6;
                    let x = sign_of(side) * (centre + across);
                    let stride = z - k as f32 * spacing;
                    Person::new(x, z, heading, stride, style).draw(scene, canvas);
                },
            );
        }
    }
}
