//! Deterministic randomness: integer hashing, a seeded generator for layout decisions, a tiling
//! fractal value-noise texture for surface detail, and a sine that gives the same bits on every
//! platform (the standard library's may differ between libm implementations, and labels must
//! not).

/// The splitmix64 finaliser: a bijective 64-bit mix.
#[inline]
pub(super) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a sequence of keys (order matters).
#[inline]
pub(super) fn hash(keys: &[u64]) -> u64 {
    keys.iter().fold(0x9e37_79b9_7f4a_7c15, |acc, &k| {
        mix64(acc ^ k.wrapping_mul(0x2545_f491_4f6c_dd1d))
    })
}

/// A fast 32-bit hash of a pixel position and a frame, for per-pixel grain.
#[inline]
pub(super) const fn pixel_hash(x: u32, y: u32, k: u32) -> u32 {
    let mut h =
        x.wrapping_mul(0x8da6_b343) ^ y.wrapping_mul(0xd816_3841) ^ k.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^ (h >> 16)
}

/// Seeded generator for layout decisions (splitmix64).
#[derive(Clone, Debug)]
pub(super) struct Rng(u64);

impl Rng {
    /// A generator seeded from `keys`.
    pub(super) fn new(keys: &[u64]) -> Self {
        Self(hash(keys))
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    pub(super) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub(super) fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// A uniformly chosen integer in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// A uniformly chosen element.
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u32) as usize]
    }
}

/// Side of the texture in texels (a power of two, so wrapping is a mask). 128² bytes stay in
/// the L1 cache, which matters: distant surfaces sample it at scattered places.
const SIZE: usize = 128;
const MASK: usize = SIZE - 1;

/// A tiling 128×128 fractal value-noise texture (five octaves), built once; sampling it costs
/// four loads, where hashing lattice points per pixel would cost far more.
#[derive(Debug)]
pub(super) struct NoiseTexture {
    // A fixed-size array: masked indices need no bounds checks.
    texels: Box<[u8; SIZE * SIZE]>,
}

impl NoiseTexture {
    /// Builds the texture (the same for every scene).
    pub(super) fn new() -> Self {
        let mut acc = vec![0f32; SIZE * SIZE];
        let mut amplitude = 1.0;
        for octave in 0..5u64 {
            let cells = 2usize << octave;
            let cell = SIZE / cells;
            let lattice = |i: usize, j: usize| {
                (hash(&[octave, (i % cells) as u64, (j % cells) as u64]) >> 40) as f32
                    / (1u64 << 24) as f32
            };
            for y in 0..SIZE {
                let (j, fy) = (y / cell, smooth((y % cell) as f32 / cell as f32));
                for x in 0..SIZE {
                    let (i, fx) = (x / cell, smooth((x % cell) as f32 / cell as f32));
                    let top = lerp(lattice(i, j), lattice(i + 1, j), fx);
                    let bottom = lerp(lattice(i, j + 1), lattice(i + 1, j + 1), fx);
                    acc[y * SIZE + x] += amplitude * lerp(top, bottom, fy);
                }
            }
            amplitude *= 0.5;
        }
        let (lo, hi) = acc
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let scale = 255.0 / (hi - lo).max(1e-6);
        let mut texels = Box::new([0u8; SIZE * SIZE]);
        for (t, &v) in texels.iter_mut().zip(&acc) {
            *t = ((v - lo) * scale + 0.5) as u8;
        }
        Self { texels }
    }

    /// Bilinearly filtered noise in `[0, 1]` at texel coordinates `(x, y)` (any real values;
    /// the texture repeats every 128 texels).
    #[inline(always)]
    pub(super) fn sample(&self, x: f32, y: f32) -> f32 {
        let (ix, tx) = split(x);
        let (iy, ty) = split(y);
        let mask = MASK as u32;
        let (x0, x1) = ((ix & mask) as usize, (ix.wrapping_add(1) & mask) as usize);
        let (y0, y1) = (
            ((iy & mask) as usize) * SIZE,
            ((iy.wrapping_add(1) & mask) as usize) * SIZE,
        );
        let at = |i: usize| f32::from(self.texels[i & (SIZE * SIZE - 1)]);
        let top = lerp(at(y0 + x0), at(y0 + x1), tx);
        let bottom = lerp(at(y1 + x0), at(y1 + x1), tx);
        lerp(top, bottom, ty) * (1.0 / 255.0)
    }

    /// Unfiltered noise in `[0, 1]` at texel `(x, y)`: one load, for fine grain.
    #[inline(always)]
    pub(super) fn texel(&self, x: f32, y: f32) -> f32 {
        let mask = MASK as u32;
        let i = ((split(y).0 & mask) as usize) * SIZE + (split(x).0 & mask) as usize;
        f32::from(self.texels[i & (SIZE * SIZE - 1)]) * (1.0 / 255.0)
    }
}

/// 1.5 · 2²³: adding it to a float below 2²² in magnitude rounds it to a whole number and puts
/// that number in the low mantissa bits. Cheaper per pixel than `floor` and `as i32` (which on
/// baseline x86-64 are a library call and a saturating conversion), and just as deterministic.
const MAGIC: f32 = 12_582_912.0;

/// `floor(x)` as wrapping integer bits and the fractional part `x - floor(x)`; see [`floor`].
#[inline(always)]
pub(super) fn split(x: f32) -> (u32, f32) {
    let f = floor(x);
    ((f + MAGIC).to_bits(), x - f)
}

/// The largest whole number not above `x` for `|x| < 2²²`, except that an odd whole number
/// gives the one below it (`x - 0.5` rounds half to even). No branch and no conversion, which
/// matters per pixel; the exception is harmless where this is used: texture cells and stripes,
/// where it only moves a boundary by nothing (`fract` then gives 1 instead of 0).
#[inline(always)]
pub(super) fn floor(x: f32) -> f32 {
    ((x - 0.5) + MAGIC) - MAGIC
}

/// `x - floor(x)`, in `[0, 1]` for `|x| < 2²²` (1 only at odd whole numbers; see [`floor`]).
#[inline(always)]
pub(super) fn fract(x: f32) -> f32 {
    x - floor(x)
}

/// `x` rounded to the nearest whole number and clamped to `0..=255`, without float branches
/// or a saturating conversion (the clamp is on integers, which compiles to conditional moves).
/// Exact for `|x| < 2²²`; NaN gives a fixed byte.
#[inline(always)]
pub(super) fn to_byte(x: f32) -> u8 {
    let rounded = (x + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32;
    rounded.clamp(0, 255) as u8
}

#[inline]
pub(super) fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

#[inline]
fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// `sin(x)` from basic arithmetic only, so it rounds identically everywhere; absolute error
/// below 1e-3, plenty for animation.
pub(super) fn sin(x: f32) -> f32 {
    use core::f32::consts::{PI, TAU};
    // Reduce to [-π, π].
    let r = x - TAU * floor(x / TAU + 0.5);
    let r = if r >= PI { r - TAU } else { r };
    // Bhaskara-style parabola with one refinement step (max error ≈ 0.001).
    let y = (4.0 / PI) * r - (4.0 / (PI * PI)) * r * r.abs();
    0.225 * (y * y.abs() - y) + y
}

/// `cos(x)`, as [`sin`].
pub(super) fn cos(x: f32) -> f32 {
    sin(x + core::f32::consts::FRAC_PI_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_is_close_to_the_real_one() {
        for i in -2000..2000 {
            let x = i as f32 * 0.01;
            assert!((sin(x) - x.sin()).abs() < 2e-3, "{x}");
            assert!((cos(x) - x.cos()).abs() < 2e-3, "{x}");
        }
    }

    #[test]
    fn noise_spans_the_unit_range_and_tiles() {
        let noise = NoiseTexture::new();
        let (mut lo, mut hi) = (1f32, 0f32);
        for i in 0..1000 {
            let v = noise.sample(i as f32 * 0.37, i as f32 * 0.11);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        assert!(lo < 0.3 && hi > 0.7, "{lo}..{hi}");
        assert_eq!(
            noise.sample(3.5, 7.25),
            noise.sample(3.5 + 128.0, 7.25 - 256.0)
        );
    }

    #[test]
    fn floor_and_fract_match_the_library() {
        for i in -5000..5000 {
            let x = i as f32 * 0.173 + 0.001;
            if x == x.round() {
                // Whole numbers are checked below.
                continue;
            }
            assert_eq!(floor(x), x.floor(), "{x}");
            assert_eq!(split(x).0 as u16 as i16, x.floor() as i16, "{x}");
            assert!((0.0..1.0).contains(&fract(x)), "{x}");
        }
        // Whole numbers: even ones exactly, odd ones one below.
        assert_eq!(floor(4.0), 4.0);
        assert_eq!(floor(3.0), 2.0);
        assert_eq!(fract(3.0), 1.0);
        assert_eq!(floor(-0.5), -1.0);
        assert_eq!(to_byte(254.6), 255);
        assert_eq!(to_byte(0.4), 0);
        assert_eq!(to_byte(1e6), 255);
        assert_eq!(to_byte(-3.0), 0);
        assert_eq!(to_byte(127.5), 128);
    }

    #[test]
    fn generator_ranges() {
        let mut rng = Rng::new(&[1, 2]);
        for _ in 0..1000 {
            let v = rng.range(2.0, 3.0);
            assert!((2.0..3.0).contains(&v));
            assert!(rng.below(7) < 7);
        }
        assert_ne!(Rng::new(&[1, 2]).next_u64(), Rng::new(&[2, 1]).next_u64());
    }
}
