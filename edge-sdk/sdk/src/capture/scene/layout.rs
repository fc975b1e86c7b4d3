//! The street of one sequence: its cross-section (lanes, parking, kerbs, verges, pavements) and,
//! along it, the lots on either side (buildings, parks, plazas, cross streets) and a back row of
//! taller buildings or trees.
//!
//! World coordinates are metres: `x` across the street (0 is the centre line, positive to the
//! right of the driving direction), `y` up from the road, `z` along the street in the driving
//! direction. Everything along the street is cut into [`BLOCK`]-long blocks whose contents are a
//! pure function of `(sequence key, side, block)`, so any place can be looked up without storing
//! the street.

use super::noise::{Rng, hash};

/// The left side of the street (`x < 0`).
pub(super) const LEFT: usize = 0;
/// The right side of the street (`x > 0`).
pub(super) const RIGHT: usize = 1;
/// Length of a block along the street, metres.
pub(super) const BLOCK: f32 = 48.0;
/// Width of a cross street, kerb to kerb plus its two pavements, metres.
pub(super) const CROSSING_WIDTH: f32 = 16.0;
/// Pavement on either side of a cross street, metres.
pub(super) const CORNER: f32 = 3.5;

const SALT_LOTS: u64 = 1;
const SALT_BACK: u64 = 2;
const SALT_CROSSING: u64 = 3;

/// What occupies a lot along the facade line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LotKind {
    /// A building whose facade stands on the facade line.
    Building,
    /// A lawn, maybe behind a hedge, maybe with a line of trees at its back.
    Park,
    /// A paved open space.
    Plaza,
    /// A cross street.
    Crossing,
}

/// One lot along one side of the street, `z0..z1`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lot {
    pub(super) z0: f32,
    pub(super) z1: f32,
    pub(super) kind: LotKind,
    /// Building height to the top of the parapet, metres (0 if not a building).
    pub(super) height: f32,
    /// Storey height of a building, metres.
    pub(super) storey: f32,
    /// How far a building reaches back from the facade line, metres.
    pub(super) depth: f32,
    /// Height of the hedge along the facade line of a park (0: none).
    pub(super) hedge: f32,
    /// Height of the line of trees at the back of a park (0: none).
    pub(super) tree_line: f32,
    /// Seed of everything decorative (colours, windows).
    pub(super) style: u64,
}

/// What stands on the back row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BackKind {
    /// A tall building.
    Building,
    /// A mass of trees.
    Trees,
    /// Nothing (the line of sight down a cross street).
    Open,
}

/// One lot of the back row.
#[derive(Clone, Copy, Debug)]
pub(super) struct BackLot {
    pub(super) kind: BackKind,
    pub(super) height: f32,
    pub(super) style: u64,
}

/// One sequence's street.
#[derive(Clone, Debug)]
pub(super) struct Street {
    /// Hash of `(seed, sequence)`: the root of every decision.
    pub(super) key: u64,
    /// Lanes per direction.
    pub(super) lanes: u32,
    pub(super) lane_width: f32,
    /// Whether each side has a parking lane (part of the road, next to the kerb).
    pub(super) parking: [bool; 2],
    /// Distance from the centre line to each kerb.
    pub(super) kerb: [f32; 2],
    /// Width of the grass verge between kerb and pavement (0: none).
    pub(super) verge: [f32; 2],
    /// Distance from the centre line to each facade line.
    pub(super) facade: [f32; 2],
    /// Distance from the facade line back to the back row.
    pub(super) back_offset: [f32; 2],
    /// Distance from the facade line back to a park's tree line.
    pub(super) park_depth: [f32; 2],
    /// Share of lots that are buildings; of the rest, share that are parks.
    pub(super) building_share: f32,
    pub(super) park_share: f32,
    /// Storeys of the front row, inclusive range.
    pub(super) storeys: (u32, u32),
    /// Chance that a block starts with a cross street.
    pub(super) crossing_chance: f32,
    /// Share of the back row that is trees.
    pub(super) back_trees: f32,
    /// Chance that a street-side slot holds a tree.
    pub(super) street_trees: [f32; 2],
    /// Whether street lights stand on each side.
    pub(super) lights: [bool; 2],
    /// Chance that a block side has a traffic sign.
    pub(super) sign_chance: f32,
    /// Share of parking spaces taken.
    pub(super) parked_share: f32,
    /// Share of moving-traffic slots with a car.
    pub(super) traffic: f32,
    /// Share of pedestrian slots with a person.
    pub(super) pedestrians: f32,
    /// Which of the 128 blocks from `crossings.0` start with a cross street (a cache: the
    /// ground asks for every pixel).
    crossings: (i64, u128),
}

impl Street {
    /// The street of `sequence` in the world of `seed`.
    pub(super) fn new(seed: u64, sequence: u64) -> Self {
        let key = hash(&[seed, sequence, 0x5354_5245_4554]);
        let mut rng = Rng::new(&[key]);
        let lanes = if rng.chance(0.45) { 2 } else { 1 };
        let lane_width = rng.range(3.0, 3.6);
        let parking = [rng.chance(0.6), rng.chance(0.7)];
        let mut kerb = [0.0; 2];
        let mut verge = [0.0; 2];
        let mut facade = [0.0; 2];
        let mut back_offset = [0.0; 2];
        let mut park_depth = [0.0; 2];
        let has_verges = rng.chance(0.45);
        for side in [LEFT, RIGHT] {
            kerb[side] = lanes as f32 * lane_width + if parking[side] { 2.3 } else { 0.3 };
            verge[side] = if has_verges && rng.chance(0.8) {
                rng.range(1.2, 3.0)
            } else {
                0.0
            };
            facade[side] = kerb[side] + verge[side] + rng.range(2.6, 5.5);
            back_offset[side] = rng.range(22.0, 40.0);
            park_depth[side] = rng.range(9.0, back_offset[side] - 4.0);
        }
        let downtown = rng.unit();
        let min_storeys = 2 + (downtown * 3.0) as u32;
        let storeys = (
            min_storeys,
            min_storeys + 1 + rng.below(3 + (downtown * 4.0) as u32),
        );
        let building_share = 0.5 + 0.45 * downtown;
        let trees = rng.range(0.2, 1.0);
        Self {
            key,
            lanes,
            lane_width,
            parking,
            kerb,
            verge,
            facade,
            back_offset,
            park_depth,
            building_share,
            park_share: rng.range(0.5, 0.9),
            storeys,
            crossing_chance: rng.range(0.15, 0.5),
            back_trees: rng.range(0.1, 0.6) * (1.2 - downtown),
            street_trees: [trees * rng.range(0.4, 1.0), trees * rng.range(0.4, 1.0)],
            lights: [rng.chance(0.8), rng.chance(0.9)],
            sign_chance: rng.range(0.4, 0.9),
            parked_share: rng.range(0.4, 0.95),
            traffic: rng.range(0.3, 0.9),
            pedestrians: rng.range(0.3, 1.0),
            crossings: (i64::MIN, 0),
        }
    }

    /// Caches the cross streets of the blocks around `z` (where the camera is).
    pub(super) fn focus(&mut self, z: f32) {
        let first = Self::block_of(z) - 8;
        self.crossings = (i64::MIN, 0);
        let mut bits = 0u128;
        for i in 0..128 {
            if self.has_crossing(first + i) {
                bits |= 1 << i;
            }
        }
        self.crossings = (first, bits);
    }

    /// The block holding `z`.
    #[inline]
    pub(super) fn block_of(z: f32) -> i64 {
        let q = z / BLOCK;
        let t = q as i64;
        if t as f32 > q { t - 1 } else { t }
    }

    /// Whether `block` starts with a cross street.
    #[inline]
    pub(super) fn has_crossing(&self, block: i64) -> bool {
        let (first, bits) = self.crossings;
        if let Some(i) = block.checked_sub(first)
            && (0..128).contains(&i)
        {
            return bits >> i & 1 == 1;
        }
        let roll = hash(&[self.key, block as u64, SALT_CROSSING]) >> 40;
        (roll as f32) < self.crossing_chance * (1u64 << 24) as f32
    }

    /// The cross street `z0..z1` covering `z`, if any.
    #[inline]
    pub(super) fn crossing_at(&self, z: f32) -> Option<(f32, f32)> {
        let block = Self::block_of(z);
        let z0 = block as f32 * BLOCK;
        (z - z0 < CROSSING_WIDTH && self.has_crossing(block)).then_some((z0, z0 + CROSSING_WIDTH))
    }

    /// The lots of one block side, in order along the street.
    pub(super) fn block_lots(&self, side: usize, block: i64) -> BlockLots<'_> {
        let z = block as f32 * BLOCK;
        BlockLots {
            street: self,
            rng: Rng::new(&[self.key, side as u64, block as u64, SALT_LOTS]),
            z,
            end: z + BLOCK,
            crossing: self.has_crossing(block),
        }
    }

    /// The lot covering `z` on `side`.
    pub(super) fn lot_at(&self, side: usize, z: f32) -> Lot {
        let mut found = None;
        for lot in self.block_lots(side, Self::block_of(z)) {
            found = Some(lot);
            if z < lot.z1 {
                break;
            }
        }
        // A block always has a lot; its last one also takes a `z` rounded onto the block's end.
        found.unwrap_or(Lot {
            z0: z,
            z1: z,
            kind: LotKind::Plaza,
            height: 0.0,
            storey: 3.2,
            depth: 0.0,
            hedge: 0.0,
            tree_line: 0.0,
            style: 0,
        })
    }

    /// The back-row lot covering `z` on `side`.
    pub(super) fn back_at(&self, side: usize, z: f32) -> BackLot {
        if self.crossing_at(z).is_some() {
            return BackLot {
                kind: BackKind::Open,
                height: 0.0,
                style: 0,
            };
        }
        let block = Self::block_of(z);
        let mut rng = Rng::new(&[self.key, side as u64, block as u64, SALT_BACK]);
        let mut start = block as f32 * BLOCK;
        loop {
            let len = rng.range(10.0, 30.0);
            let style = rng.next_u64();
            let trees = rng.chance(self.back_trees);
            let height = if trees {
                rng.range(9.0, 16.0)
            } else {
                rng.range(
                    4.0 * self.storeys.0 as f32,
                    4.5 * self.storeys.1 as f32 + 14.0,
                )
            };
            if z < start + len || start + len >= (block + 1) as f32 * BLOCK {
                return BackLot {
                    kind: if trees {
                        BackKind::Trees
                    } else {
                        BackKind::Building
                    },
                    height,
                    style,
                };
            }
            start += len;
        }
    }

    /// Centre of the lane `index` (0 nearest the centre line) on `side`.
    pub(super) fn lane_centre(&self, side: usize, index: u32) -> f32 {
        let x = (index as f32 + 0.5) * self.lane_width;
        if side == LEFT { -x } else { x }
    }
}

/// The lots of one block side; see [`Street::block_lots`].
pub(super) struct BlockLots<'a> {
    street: &'a Street,
    rng: Rng,
    z: f32,
    end: f32,
    crossing: bool,
}

impl Iterator for BlockLots<'_> {
    type Item = Lot;

    fn next(&mut self) -> Option<Lot> {
        if self.z >= self.end {
            return None;
        }
        let street = self.street;
        let rng = &mut self.rng;
        let z0 = self.z;
        let mut lot = Lot {
            z0,
            z1: z0,
            kind: LotKind::Crossing,
            height: 0.0,
            storey: 3.2,
            depth: 0.0,
            hedge: 0.0,
            tree_line: 0.0,
            style: rng.next_u64(),
        };
        if std::mem::take(&mut self.crossing) {
            lot.z1 = z0 + CROSSING_WIDTH;
        } else {
            let mut len = rng.range(8.0, 24.0);
            // No sliver lots at the end of a block.
            if self.end - (z0 + len) < 7.0 {
                len = self.end - z0;
            }
            lot.z1 = z0 + len;
            if rng.chance(street.building_share) {
                let (lo, hi) = street.storeys;
                let storeys = lo + rng.below(hi - lo + 1);
                lot.kind = LotKind::Building;
                lot.storey = rng.range(3.0, 3.7);
                lot.height = storeys as f32 * lot.storey + rng.range(0.4, 1.4);
                lot.depth = rng.range(9.0, 18.0);
            } else if rng.chance(street.park_share) {
                lot.kind = LotKind::Park;
                lot.hedge = if rng.chance(0.6) {
                    rng.range(0.9, 1.8)
                } else {
                    0.0
                };
                lot.tree_line = if rng.chance(0.75) {
                    rng.range(6.0, 13.0)
                } else {
                    0.0
                };
            } else {
                lot.kind = LotKind::Plaza;
            }
        }
        self.z = lot.z1;
        Some(lot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lots_tile_each_block_without_gaps() {
        for sequence in 0..20 {
            let street = Street::new(7, sequence);
            for block in -2..6 {
                for side in [LEFT, RIGHT] {
                    let mut z = block as f32 * BLOCK;
                    for lot in street.block_lots(side, block) {
                        assert_eq!(lot.z0, z);
                        assert!(lot.z1 > lot.z0);
                        z = lot.z1;
                    }
                    assert!((z - (block + 1) as f32 * BLOCK).abs() < 1e-3);
                }
            }
        }
    }

    #[test]
    fn lot_lookup_agrees_with_the_block_listing() {
        let street = Street::new(3, 1);
        for lot in street.block_lots(RIGHT, 2) {
            let mid = street.lot_at(RIGHT, (lot.z0 + lot.z1) / 2.0);
            assert_eq!((mid.z0, mid.z1, mid.kind), (lot.z0, lot.z1, lot.kind));
        }
    }

    #[test]
    fn cross_section_is_ordered() {
        for sequence in 0..50 {
            let street = Street::new(1, sequence);
            for side in [LEFT, RIGHT] {
                assert!(street.kerb[side] >= street.lanes as f32 * street.lane_width);
                assert!(street.facade[side] > street.kerb[side] + street.verge[side] + 2.0);
                assert!(street.park_depth[side] < street.back_offset[side]);
            }
        }
    }
}
