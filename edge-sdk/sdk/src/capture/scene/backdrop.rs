//! The backdrop: everything that is not an object — sky, the ground (road, pavements, verges,
//! lawns, cross streets) and the vertical surfaces parallel or across the street (building
//! facades and side walls, hedges, tree lines, the back row).
//!
//! Each screen column's ray meets the vertical surfaces at one depth each, so a first pass
//! finds, per column, up to four surfaces with the rows they cover, and splits the column into
//! runs of rows: a row shows the nearest surface covering it, else the ground (below the
//! horizon) or the sky (above). Ground and sky are then drawn row by row (a row of ground is
//! at one depth), surfaces column by column (a surface is the same down a column). Every
//! pixel's label and colour come from that one decision.

use super::Scene;
use super::classes::SceneClass;
use super::layout::{BLOCK, CORNER, CROSSING_WIDTH, LEFT, LotKind, RIGHT, Street};
use super::light::{Look, Rgb, mix, scale, vary};
use super::noise::{NoiseTexture, Rng, floor, fract, pixel_hash, split};
use super::raster::Canvas;

/// Most vertical surfaces one column sees.
const SURFACES: usize = 4;
/// Resolution and reach of the cast-shadow table along the street.
const SHADOW_STEP: f32 = 0.5;
const SHADOW_BINS: usize = 640;
/// Depth at which haze reaches half strength, metres.
const HAZE_HALF: f32 = 420.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SurfaceKind {
    /// A building facade on the facade line.
    #[default]
    Facade,
    /// The side of a building, across the street's direction.
    SideWall,
    /// A hedge along the facade line of a park.
    Hedge,
    /// The line of trees at the back of a park.
    TreeLine,
    /// A building of the back row.
    BackBuilding,
    /// Trees of the back row.
    BackTrees,
}

impl SurfaceKind {
    const fn class(self) -> SceneClass {
        match self {
            Self::Facade | Self::SideWall | Self::BackBuilding => SceneClass::Building,
            Self::Hedge | Self::TreeLine | Self::BackTrees => SceneClass::Vegetation,
        }
    }
}

/// How a wall looks (or, for vegetation, just its base colour).
#[derive(Clone, Copy, Debug, Default)]
struct WallLook {
    base: Rgb,
    glass: Rgb,
    frame: Rgb,
    storey: f32,
    per_storey: f32,
    bay: f32,
    window: f32,
    sill: f32,
    window_height: f32,
    shop: bool,
    seed: u32,
}

impl WallLook {
    const PLASTER: [Rgb; 9] = [
        [0.80, 0.72, 0.58],
        [0.58, 0.32, 0.24],
        [0.56, 0.56, 0.55],
        [0.86, 0.85, 0.80],
        [0.86, 0.78, 0.52],
        [0.62, 0.66, 0.70],
        [0.48, 0.38, 0.30],
        [0.80, 0.62, 0.58],
        [0.70, 0.56, 0.42],
    ];

    fn building(style: u64, storey: f32) -> Self {
        let mut rng = Rng::new(&[style, 0x57414c4c]);
        let base = vary(rng.pick(&Self::PLASTER), &mut rng, 0.1);
        let bay = rng.range(2.4, 4.2);
        let window_height = rng.range(1.2, (storey - 0.9).max(1.3));
        Self {
            base,
            glass: vary(
                rng.pick(&[[0.14, 0.18, 0.24], [0.22, 0.26, 0.30], [0.10, 0.12, 0.14]]),
                &mut rng,
                0.1,
            ),
            frame: if rng.chance(0.5) {
                [0.88, 0.87, 0.84]
            } else {
                scale(base, 0.7)
            },
            storey,
            per_storey: 1.0 / storey,
            bay,
            window: rng.range(0.9, (bay - 0.8).min(2.0)),
            sill: rng.range(0.7, (storey - window_height - 0.15).max(0.75)),
            window_height,
            shop: rng.chance(0.5),
            seed: rng.next_u64() as u32,
        }
    }

    fn foliage(look: &Look, style: u64) -> Self {
        let mut rng = Rng::new(&[style, 0x4c454146]);
        Self {
            base: vary(look.foliage, &mut rng, 0.18),
            seed: rng.next_u64() as u32,
            ..Self::default()
        }
    }
}

/// One vertical surface as one column sees it.
#[derive(Clone, Copy, Debug, Default)]
struct Surface {
    kind: SurfaceKind,
    /// Depth along this column's ray.
    t: f32,
    /// Rows covered, `top..=bottom` (compared with row centres).
    top: f32,
    bottom: f32,
    /// Horizontal position on the surface, metres (`z` on surfaces along the street, the
    /// distance from the facade line on side walls).
    u: f32,
    /// Height of the surface's top, metres.
    height: f32,
    /// Light on the surface: 1 in sun, less in shade.
    light: f32,
    /// Below this height the surface lies in the shadow cast from across the street.
    shadow_below: f32,
    /// How far distance fades it to the haze colour.
    haze: f32,
    /// Walls: where this column is within its bay of windows, and a key of that bay.
    in_bay: f32,
    bay_key: u32,
    look: WallLook,
}

/// What a run of rows of one column shows: a surface (its index), the ground or the sky.
const GROUND: u8 = 0xfe;
const SKY: u8 = 0xff;
/// Most runs one column splits into: each surface can add two boundaries, the horizon one.
const BANDS: usize = 2 * SURFACES + 2;

/// The surfaces one column sees, nearest first, and the runs of rows they and the ground and
/// sky take.
#[derive(Clone, Copy, Debug, Default)]
struct Column {
    surfaces: [Surface; SURFACES],
    count: usize,
    /// `(end row, what)`, in row order; the last ends at the picture's height.
    bands: [(u16, u8); BANDS],
}

impl Column {
    fn push(&mut self, surface: Surface) {
        if self.count == SURFACES {
            return;
        }
        // Insertion keeps the list sorted by depth.
        let mut i = self.count;
        while i > 0 && self.surfaces[i - 1].t > surface.t {
            self.surfaces[i] = self.surfaces[i - 1];
            i -= 1;
        }
        self.surfaces[i] = surface;
        self.count += 1;
    }

    /// Splits the column's rows into runs: a row shows the nearest surface covering its centre,
    /// else the ground from `ground_start` down, else the sky.
    fn band(&mut self, ground_start: usize, height: usize) {
        // The rows `r0..r1` whose centres `r + 0.5` lie within each surface's `top..=bottom`.
        let rows = |s: &Surface| {
            let clamp = |v: f32| v.clamp(0.0, height as f32);
            let r0 = -floor(-(clamp(s.top) - 0.5));
            let r1 = floor(clamp(s.bottom) - 0.5) + 1.0;
            (r0 as usize, (r1.max(r0)) as usize)
        };
        let mut cuts = [0usize; BANDS + 1];
        let mut n = 0;
        for s in &self.surfaces[..self.count] {
            let (r0, r1) = rows(s);
            cuts[n] = r0;
            cuts[n + 1] = r1;
            n += 2;
        }
        cuts[n] = ground_start.min(height);
        cuts[n + 1] = height;
        n += 2;
        cuts[..n].sort_unstable();
        let mut bands = 0;
        let mut start = 0;
        for &end in &cuts[..n] {
            if end <= start {
                continue;
            }
            let what = self.surfaces[..self.count]
                .iter()
                .position(|s| {
                    let (r0, r1) = rows(s);
                    r0 <= start && start < r1
                })
                .map_or(if start >= ground_start { GROUND } else { SKY }, |i| {
                    i as u8
                });
            if bands > 0 && self.bands[bands - 1].1 == what {
                self.bands[bands - 1].0 = end as u16;
            } else {
                self.bands[bands] = (end as u16, what);
                bands += 1;
            }
            start = end;
        }
    }
}

/// Where along the street a ground point is: its block, how far into it, and whether this
/// block and the next start with a cross street.
#[derive(Clone, Copy, Debug)]
struct BlockAt {
    in_block: f32,
    crossing: bool,
    next_crossing: bool,
}

/// The block a whole row of ground lies in, when it lies in one (most rows do): then the
/// per-pixel lookup is a subtraction.
#[derive(Clone, Copy, Debug, Default)]
struct RowBlock {
    uniform: bool,
    start: f32,
    crossing: bool,
    next_crossing: bool,
    /// The cast shadow's reach, when the same along the whole row.
    shadow: Option<f32>,
}

impl RowBlock {
    fn new(street: &Street, shadows: &Shadows, z_first: f32, z_last: f32) -> Self {
        let block = Street::block_of(z_first);
        let reach = shadows.reach(z_first);
        Self {
            uniform: block == Street::block_of(z_last),
            start: block as f32 * BLOCK,
            crossing: street.has_crossing(block),
            next_crossing: street.has_crossing(block + 1),
            shadow: (reach == shadows.reach(z_last)).then_some(reach),
        }
    }

    #[inline]
    fn at(self, street: &Street, z: f32) -> BlockAt {
        if self.uniform {
            return BlockAt {
                in_block: z - self.start,
                crossing: self.crossing,
                next_crossing: self.next_crossing,
            };
        }
        let block = Street::block_of(z);
        BlockAt {
            in_block: z - block as f32 * BLOCK,
            crossing: street.has_crossing(block),
            next_crossing: street.has_crossing(block + 1),
        }
    }
}

/// Where the row pass is in one column: the current band, what it shows, and where it ends.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    end: u16,
    what: u8,
    band: u8,
}

/// The backdrop pass with its per-frame tables, allocated once.
#[derive(Debug)]
pub(super) struct Backdrop {
    columns: Vec<Column>,
    /// Per column, the band the row pass is in (kept apart from the columns, so the row pass
    /// reads four bytes per pixel).
    cursors: Vec<Cursor>,
    shadows: Shadows,
}

/// Per `SHADOW_STEP` along the street from `z0`: how far the sun-side buildings' shadow
/// reaches from their facade line.
#[derive(Debug)]
struct Shadows {
    reach: Vec<f32>,
    z0: f32,
}

impl Backdrop {
    /// Tables for pictures `width` columns wide.
    pub(super) fn new(width: usize) -> Self {
        Self {
            columns: vec![Column::default(); width],
            cursors: vec![Cursor::default(); width],
            shadows: Shadows {
                reach: vec![0.0; SHADOW_BINS],
                z0: 0.0,
            },
        }
    }

    /// Draws the backdrop of one frame into every pixel of `canvas`.
    pub(super) fn draw<const SHADE: bool>(
        &mut self,
        scene: &Scene<'_>,
        canvas: &mut Canvas<'_, SHADE>,
    ) {
        if SHADE {
            self.shadows.cast(scene);
        }
        let Self {
            columns,
            cursors,
            shadows,
        } = self;
        for (x, column) in columns.iter_mut().enumerate() {
            *column = surfaces::<SHADE>(scene, shadows, x);
        }
        let Scene { camera, rays, .. } = *scene;
        let width = columns.len();
        let height = rays.dy.len();
        let ground_start = rays.dy.iter().position(|&dy| dy < 0.0).unwrap_or(height);
        for (column, cursor) in columns.iter_mut().zip(cursors.iter_mut()) {
            column.band(ground_start, height);
            let (end, what) = column.bands[0];
            *cursor = Cursor { end, what, band: 0 };
        }
        let (dxs, dzs) = (&rays.dx[..width], &rays.dz[..width]);
        for (y, &dy) in rays.dy.iter().enumerate() {
            // Depth of the ground seen by this row (infinite at and above the horizon).
            let ground_t = if y >= ground_start {
                camera.y / -dy
            } else {
                f32::INFINITY
            };
            let sky_row = SHADE.then(|| SkyRow::new(scene, dy));
            let ground_haze = ground_t / (ground_t + HAZE_HALF);
            let row_block = if ground_t.is_finite() {
                RowBlock::new(
                    scene.street,
                    shadows,
                    camera.z + ground_t * rays.dz[0],
                    camera.z + ground_t * rays.dz[width - 1],
                )
            } else {
                RowBlock::default()
            };
            let row = y * width;
            let pixels = columns
                .iter()
                .zip(cursors.iter_mut())
                .zip(dxs.iter().zip(dzs));
            for (x, ((column, cursor), (&dx, &dz))) in pixels.enumerate() {
                while usize::from(cursor.end) <= y {
                    cursor.band += 1;
                    let (end, what) = column.bands[usize::from(cursor.band) % BANDS];
                    cursor.end = end;
                    cursor.what = what;
                }
                let i = row + x;
                match cursor.what {
                    GROUND => {
                        let gx = camera.x + ground_t * dx;
                        let gz = camera.z + ground_t * dz;
                        let (class, colour) =
                            ground::<SHADE>(scene, shadows, gx, gz, ground_haze, row_block);
                        canvas.put(i, class, ground_t, colour);
                    }
                    SKY => {
                        let colour = match &sky_row {
                            Some(row) => sky(scene, row, dx, dz),
                            None => [0.0; 3],
                        };
                        canvas.put(i, SceneClass::Sky, f32::INFINITY, colour);
                    }
                    // Surfaces are drawn column by column below.
                    _ => {}
                }
            }
        }
        // Column by column, so that each surface's data is read once per run of rows rather
        // than once per pixel (a row of columns' surfaces does not stay in cache).
        for (x, column) in columns.iter().enumerate() {
            let mut start = 0;
            for &(end, what) in &column.bands {
                let end = usize::from(end);
                if usize::from(what) < column.count {
                    let s = &column.surfaces[usize::from(what)];
                    let class = s.kind.class();
                    for (y, &dy) in rays.dy.iter().enumerate().take(end).skip(start) {
                        let colour = if SHADE {
                            shade_surface(scene, s, camera.y + dy * s.t)
                        } else {
                            [0.0; 3]
                        };
                        canvas.put(y * width + x, class, s.t, colour);
                    }
                }
                if end >= height {
                    break;
                }
                start = end;
            }
        }
    }
}

impl Shadows {
    /// Fills the shadow table for this frame's stretch of street.
    fn cast(&mut self, scene: &Scene<'_>) {
        self.z0 = scene.camera.z - 8.0;
        let Some(sun) = scene.look.sun else {
            self.reach.fill(0.0);
            return;
        };
        let mut lot = scene.street.lot_at(sun.side, self.z0);
        for (i, reach) in self.reach.iter_mut().enumerate() {
            let z = self.z0 + i as f32 * SHADOW_STEP;
            if z >= lot.z1 {
                lot = scene.street.lot_at(sun.side, z);
            }
            *reach = if lot.kind == LotKind::Building {
                lot.height * sun.reach
            } else {
                0.0
            };
        }
    }

    /// How far the cast shadow reaches from the sun-side facade line at `z`.
    #[inline]
    fn reach(&self, z: f32) -> f32 {
        let bin = (z - self.z0) * (1.0 / SHADOW_STEP);
        if bin >= 0.0 && bin < SHADOW_BINS as f32 {
            self.reach[(split(bin).0 as usize) % SHADOW_BINS]
        } else {
            0.0
        }
    }
}

/// The class and colour of the ground at `(x, z)`; `haze` is how far distance fades it.
#[inline]
fn ground<const SHADE: bool>(
    scene: &Scene<'_>,
    shadows: &Shadows,
    x: f32,
    z: f32,
    haze: f32,
    row_block: RowBlock,
) -> (SceneClass, Rgb) {
    let street = scene.street;
    let look = scene.look;
    let side = if x < 0.0 { LEFT } else { RIGHT };
    let ax = x.abs();
    let kerb = street.kerb[side];
    let at = row_block.at(street, z);
    let in_block = at.in_block;
    let class;
    let mut colour = [0.0; 3];
    if in_block < CROSSING_WIDTH && at.crossing {
        let corner = !(CORNER..=CROSSING_WIDTH - CORNER).contains(&in_block);
        class = if ax < kerb || !corner {
            SceneClass::Road
        } else {
            SceneClass::Sidewalk
        };
        if SHADE {
            colour = if class == SceneClass::Road {
                // The cross street's own centre line.
                let centre = (CROSSING_WIDTH * 0.5 - in_block).abs() < 0.08 && ax > kerb + 1.0;
                asphalt(scene, x, z, centre && fract(ax * 0.25) < 0.5)
            } else {
                paving(scene, x, z)
            };
        }
    } else if ax < kerb {
        class = SceneClass::Road;
        if SHADE {
            colour = asphalt(scene, x, z, road_marking(street, look, x, at));
        }
    } else if ax < kerb + 0.2 {
        class = SceneClass::Sidewalk;
        if SHADE {
            colour = scale(
                look.kerbstone,
                0.9 + 0.2 * scene.noise.texel(x * 8.0, z * 8.0),
            );
        }
    } else if ax < kerb + 0.2 + street.verge[side] {
        class = SceneClass::Terrain;
        if SHADE {
            colour = grass(scene, x, z);
        }
    } else if ax < street.facade[side] {
        class = SceneClass::Sidewalk;
        if SHADE {
            colour = paving(scene, x, z);
        }
    } else {
        // Behind the facade line: only visible through gaps between buildings.
        let lot = street.lot_at(side, z);
        class = if lot.kind == LotKind::Park {
            SceneClass::Terrain
        } else {
            SceneClass::Sidewalk
        };
        if SHADE {
            colour = if class == SceneClass::Terrain {
                grass(scene, x, z)
            } else {
                paving(scene, x, z)
            };
        }
    }
    if SHADE {
        if let Some(sun) = look.sun {
            let from_facade = street.facade[sun.side] + if sun.side == LEFT { x } else { -x };
            if from_facade < row_block.shadow.unwrap_or_else(|| shadows.reach(z)) {
                colour = shadowed(colour, sun.shade);
            }
        }
        colour = mix(colour, look.haze, haze);
    }
    (class, colour)
}

/// The surfaces column `x` sees.
fn surfaces<const SHADE: bool>(scene: &Scene<'_>, shadows: &Shadows, x: usize) -> Column {
    let Scene {
        street,
        camera,
        rays,
        look,
        noise,
        ..
    } = *scene;
    let mut out = Column::default();
    let (dx, dz) = (rays.dx[x], rays.dz[x]);
    if dz <= 0.0 || dx.abs() < 1e-6 {
        return out;
    }
    let (side, sign) = if dx > 0.0 { (RIGHT, 1.0) } else { (LEFT, -1.0) };
    let outward = dx * sign;
    let camera_across = camera.x * sign;
    let facade = street.facade[side];
    let rows = |t: f32, height: f32| {
        (
            camera.row(height, t),
            camera.horizon + camera.focal * camera.y / t,
        )
    };
    // Light on surfaces along the street: the sun side's own facades face away from the sun.
    let (facing, opposite) = match look.sun {
        Some(sun) if sun.side == side => (sun.shade + 0.1, false),
        Some(_) => (1.0, true),
        None => (0.9, false),
    };
    // Walls are the same along a column but for the storey: find the bay once.
    let with_bay = |mut s: Surface| {
        if SHADE && s.kind.class() == SceneClass::Building {
            let bay = floor(s.u / s.look.bay);
            s.in_bay = s.u - bay * s.look.bay;
            s.bay_key = pixel_hash(bay.to_bits(), 0, s.look.seed);
        }
        s
    };
    let shadow_below = |z: f32| {
        if !SHADE || !opposite {
            return 0.0;
        }
        let Some(sun) = look.sun else { return 0.0 };
        // Shadow from across the street climbs the facade where it reaches past the street.
        (shadows.reach(z) - street.facade[LEFT] - street.facade[RIGHT]) / sun.reach
    };

    // The facade line.
    let t = (facade - camera_across) / outward;
    let z = camera.z + t * dz;
    let lot = street.lot_at(side, z);
    let surface = |kind, t: f32, u: f32, height: f32, look: WallLook, light: f32| {
        let (top, bottom) = rows(t, height);
        Surface {
            kind,
            t,
            top,
            bottom,
            u,
            height,
            light,
            shadow_below: 0.0,
            haze: t / (t + HAZE_HALF),
            in_bay: 0.0,
            bay_key: 0,
            look,
        }
    };
    match lot.kind {
        LotKind::Building => {
            let mut s = surface(
                SurfaceKind::Facade,
                t,
                z,
                lot.height,
                if SHADE {
                    WallLook::building(lot.style, lot.storey)
                } else {
                    WallLook::default()
                },
                facing,
            );
            s.shadow_below = shadow_below(z);
            out.push(with_bay(s));
        }
        LotKind::Park if lot.hedge > 0.0 => {
            // Trimmed, but not perfectly.
            let height = lot.hedge + 0.12 * (noise.sample(z * 3.0, 17.0) - 0.5);
            out.push(surface(
                SurfaceKind::Hedge,
                t,
                z,
                height,
                if SHADE {
                    WallLook::foliage(look, lot.style)
                } else {
                    WallLook::default()
                },
                facing,
            ));
        }
        _ => {}
    }

    // The side wall of the next building, where the ray passes behind the facade line first.
    let next = street.lot_at(side, lot.z1);
    if next.kind == LotKind::Building {
        let t_side = (lot.z1 - camera.z) / dz;
        let across = (camera.x + t_side * dx) * sign - facade;
        if across > 0.0 && across < next.depth {
            out.push(with_bay(surface(
                SurfaceKind::SideWall,
                t_side,
                across,
                next.height,
                if SHADE {
                    WallLook::building(next.style, next.storey)
                } else {
                    WallLook::default()
                },
                0.8,
            )));
        }
    }

    // The tree line at the back of a park.
    if lot.kind == LotKind::Park && lot.tree_line > 0.0 {
        let t_trees = (facade + street.park_depth[side] - camera_across) / outward;
        let z_trees = camera.z + t_trees * dz;
        if z_trees < lot.z1 {
            let height = lot.tree_line + 2.5 * (noise.sample(z_trees * 0.9, 41.0) - 0.5) * 2.0;
            out.push(surface(
                SurfaceKind::TreeLine,
                t_trees,
                z_trees,
                height,
                if SHADE {
                    WallLook::foliage(look, lot.style ^ 1)
                } else {
                    WallLook::default()
                },
                facing,
            ));
        }
    }

    // The back row.
    let t_back = (facade + street.back_offset[side] - camera_across) / outward;
    let z_back = camera.z + t_back * dz;
    let back = street.back_at(side, z_back);
    match back.kind {
        super::layout::BackKind::Building => out.push(with_bay(surface(
            SurfaceKind::BackBuilding,
            t_back,
            z_back,
            back.height,
            if SHADE {
                WallLook::building(back.style, 3.3)
            } else {
                WallLook::default()
            },
            facing,
        ))),
        super::layout::BackKind::Trees => {
            let height = back.height + 3.0 * (noise.sample(z_back * 0.5, 93.0) - 0.5) * 2.0;
            out.push(surface(
                SurfaceKind::BackTrees,
                t_back,
                z_back,
                height,
                if SHADE {
                    WallLook::foliage(look, back.style)
                } else {
                    WallLook::default()
                },
                facing,
            ));
        }
        super::layout::BackKind::Open => {}
    }
    out
}

/// The colour of a vertical surface at height `v`.
fn shade_surface(scene: &Scene<'_>, s: &Surface, v: f32) -> Rgb {
    let noise = scene.noise;
    let colour = match s.kind {
        SurfaceKind::Facade | SurfaceKind::SideWall | SurfaceKind::BackBuilding => {
            wall(noise, s, v)
        }
        SurfaceKind::Hedge | SurfaceKind::TreeLine | SurfaceKind::BackTrees => {
            let seed = (s.look.seed & 0xff) as f32;
            let clumps = noise.sample(s.u * 2.5 + seed, v * 2.5);
            let leaves = noise.texel(s.u * 13.0, v * 13.0 + seed);
            // Darker towards the bottom, where the crown shades itself.
            let depth_shade = 0.7 + 0.3 * (v / s.height.max(0.5)).min(1.0);
            scale(
                s.look.base,
                (0.45 + 0.9 * clumps * leaves + 0.3 * leaves) * depth_shade,
            )
        }
    };
    let mut colour = scale(colour, s.light);
    if v < s.shadow_below
        && let Some(sun) = scene.look.sun
    {
        colour = shadowed(colour, sun.shade);
    }
    mix(colour, scene.look.haze, s.haze)
}

/// A wall at height `v`: plaster with storeys of windows, a cornice, maybe shop windows.
#[inline]
fn wall(noise: &NoiseTexture, s: &Surface, v: f32) -> Rgb {
    let w = &s.look;
    let side_wall = s.kind == SurfaceKind::SideWall;
    let seed = (w.seed & 0xff) as f32;
    let texture = 0.9 + 0.2 * noise.sample(s.u * 3.0 + seed, v * 3.0);
    if v > s.height - 0.45 {
        // Cornice.
        return scale(w.base, 1.12 * texture);
    }
    let storey = floor(v * w.per_storey);
    let in_storey = v - storey * w.storey;
    let in_bay = s.in_bay;
    let mut bay_hash = (s.bay_key ^ storey.to_bits()).wrapping_mul(0x2c1b_3c6d);
    bay_hash ^= bay_hash >> 15;
    if storey < 1.0 && w.shop && !side_wall {
        // Shop front: large dark windows, a door every few bays.
        let door = s.bay_key.is_multiple_of(4);
        let glass_top = if door { 2.3 } else { 2.7 };
        let (left, right) = if door {
            (w.bay * 0.35, w.bay * 0.65)
        } else {
            (0.2, w.bay - 0.2)
        };
        if in_bay > left && in_bay < right && in_storey < glass_top && (door || in_storey > 0.5) {
            let shine = 0.8 + 0.5 * (in_storey / glass_top);
            return scale(if door { scale(w.frame, 0.5) } else { w.glass }, shine);
        }
        return scale(w.base, 0.8 * texture);
    }
    let margin = (w.bay - w.window) * 0.5;
    // Side walls have fewer windows.
    let window_here = !side_wall || s.bay_key.is_multiple_of(3);
    if window_here
        && in_bay > margin
        && in_bay < margin + w.window
        && in_storey > w.sill
        && in_storey < w.sill + w.window_height
    {
        let (wx, wy) = (in_bay - margin, in_storey - w.sill);
        let frame = 0.07;
        if wx < frame || wx > w.window - frame || wy < frame || wy > w.window_height - frame {
            return w.frame;
        }
        // Sky reflected in the upper panes; some windows lit or curtained.
        let pane = 0.75 + 0.6 * (wy / w.window_height) + ((bay_hash >> 8) % 5) as f32 * 0.08;
        return scale(w.glass, pane);
    }
    if in_storey < 0.15 {
        // The band between storeys.
        return scale(w.base, 0.92 * texture);
    }
    scale(w.base, if side_wall { 0.92 * texture } else { texture })
}

/// Asphalt at `(x, z)`, painted white where `marked`: uneven wear and repaired patches.
#[inline]
fn asphalt(scene: &Scene<'_>, x: f32, z: f32, marked: bool) -> Rgb {
    let noise = scene.noise;
    // Low-frequency patches; the fine grain is the sensor noise added to every pixel.
    let patches = noise.sample(x * 0.5, z * 0.5);
    let repair = if patches > 0.78 { 0.88 } else { 1.0 };
    let colour = scale(scene.look.asphalt, (0.75 + 0.45 * patches) * repair);
    if marked {
        mix(colour, [0.86, 0.86, 0.82], 0.5 + 0.5 * patches)
    } else {
        colour
    }
}

/// Whether the road at `x` across, at `at` along the street, is painted: centre line,
/// lane lines, parking lines, stop lines and zebra crossings before and after cross streets.
#[inline]
fn road_marking(street: &Street, look: &Look, x: f32, at: BlockAt) -> bool {
    let ax = x.abs();
    let in_block = at.in_block;
    let before = at.next_crossing && in_block > BLOCK - 6.2;
    let after = at.crossing && in_block < CROSSING_WIDTH + 5.0;
    if before || after {
        // Zebra before the next cross street and after this block's one.
        if (before && in_block > BLOCK - 5.0 && in_block < BLOCK - 1.0)
            || (after && in_block > CROSSING_WIDTH + 1.0)
        {
            let side = if x < 0.0 { LEFT } else { RIGHT };
            return fract((x + 100.0) * 0.9) < 0.5 && ax < street.kerb[side] - 0.4;
        }
        if before && x > 0.0 && in_block < BLOCK - 5.6 {
            // Stop line across this direction's lanes.
            return x < street.lanes as f32 * street.lane_width;
        }
    }
    // Lines along the street, looked at only near where they run.
    let outer = street.lanes as f32 * street.lane_width;
    if ax < 0.2 {
        if look.solid_centre {
            ax > 0.08
        } else {
            ax < 0.07 && fract(in_block * 0.125) < 0.35
        }
    } else if (ax - street.lane_width).abs() < 0.07 {
        street.lanes > 1 && fract(in_block * 0.125) < 0.35
    } else if (ax - outer).abs() < 0.07 {
        street.parking[if x < 0.0 { LEFT } else { RIGHT }] && fract(in_block / 6.0) < 0.8
    } else {
        false
    }
}

/// Paving tiles at `(x, z)`.
#[inline]
fn paving(scene: &Scene<'_>, x: f32, z: f32) -> Rgb {
    let tile = scene.look.tile;
    let (tx, tz) = (x / tile, z / tile);
    let (fx, fz) = (fract(tx), fract(tz));
    let grout = fx < 0.06 || fz < 0.06;
    let tint = (pixel_hash(floor(tx).to_bits(), floor(tz).to_bits(), 7) & 0xff) as f32 / 255.0;
    let stain = scene.noise.sample(x * 1.1 + 90.0, z * 1.1);
    let k = if grout { 0.78 } else { 0.93 + 0.1 * tint } * (0.88 + 0.24 * stain);
    scale(scene.look.pavement, k)
}

/// Grass at `(x, z)`: green with yellower and darker patches.
#[inline]
fn grass(scene: &Scene<'_>, x: f32, z: f32) -> Rgb {
    let noise = scene.noise;
    let patches = noise.sample(x * 0.9 + 30.0, z * 0.9);
    let blades = noise.texel(x * 14.0, z * 14.0 + 70.0);
    let dry = [0.55, 0.52, 0.30];
    scale(
        mix(scene.look.grass, dry, (patches - 0.35).clamp(0.0, 0.5)),
        0.75 + 0.5 * blades,
    )
}

/// A colour in shadow: darker and bluer (lit by the sky only).
#[inline]
fn shadowed(c: Rgb, shade: f32) -> Rgb {
    [
        c[0] * shade * 0.92,
        c[1] * shade * 0.98,
        c[2] * shade * 1.12,
    ]
}

/// What the sky pass needs per row.
struct SkyRow {
    /// The clear-sky colour.
    base: Rgb,
    /// Distance to the cloud layer per unit of horizontal ray direction (in texels).
    reach: f32,
    /// Texture offset: camera position and wind.
    offset: [f32; 2],
    /// Cloud visibility: none at the horizon, where the layer would alias into noise.
    fade: f32,
}

impl SkyRow {
    fn new(scene: &Scene<'_>, dy: f32) -> Self {
        let (camera, time) = (scene.camera, scene.time);
        Self {
            base: sky_gradient(scene.look, dy),
            reach: if dy >= 0.01 { 12.0 / dy } else { 0.0 },
            offset: [camera.x * 0.01 + time * 0.4, camera.z * 0.01],
            fade: if dy >= 0.01 {
                (dy * 25.0).min(1.0)
            } else {
                0.0
            },
        }
    }
}

/// The clear-sky colour of a row whose ray climbs `dy` per unit depth.
fn sky_gradient(look: &Look, dy: f32) -> Rgb {
    let g = (dy * 2.2).clamp(0.0, 1.0);
    mix(look.horizon, look.zenith, g * (2.0 - g))
}

/// The sky with clouds, for the ray `(dx, dy, dz)`.
#[inline]
fn sky(scene: &Scene<'_>, row: &SkyRow, dx: f32, dz: f32) -> Rgb {
    let look = scene.look;
    if row.fade <= 0.0 {
        return row.base;
    }
    // Clouds are a layer high above: the ray meets it `row.reach` away per unit of `dx`, `dz`.
    let px = dx * row.reach + row.offset[0];
    let pz = dz * row.reach + row.offset[1];
    let n = scene.noise.sample(px, pz);
    let cover = ((n - look.cloud_cover) * 4.0).clamp(0.0, 1.0) * row.fade;
    if cover <= 0.0 {
        return row.base;
    }
    let base = row.base;
    let puff = scene.noise.texel(px * 3.0 + 11.0, pz * 3.0);
    mix(base, scale(look.cloud, 0.82 + 0.2 * puff), cover)
}
