//! A deterministic, moving test pattern in I420 (planar Y, then U and V at half resolution).
//!
//! Each frame has three regions, top to bottom:
//! - the seven SMPTE-style colour bars (white, yellow, cyan, green, magenta, red, blue);
//! - a luma ramp with a white box that moves across it, one step per frame, bouncing at the
//!   edges (a new position every frame, so every P frame carries real motion);
//! - a frame counter: the frame index as 16 black/white blocks, most significant bit first.
//!
//! The bars and the middle region carry a little deterministic luma noise that changes every
//! frame, as a camera sensor's does, so the encoder produces realistically sized frames.
//!
//! The same `(width, height, index)` always gives the same bytes. [`PatternSource`] is the
//! capture source built on it, paced at its frame rate like a camera.

use std::time::{Duration, Instant};

use super::{CaptureError, CaptureSource, CapturedFrame};
use crate::picture::{Picture, PixelFormat, VideoFormat};

/// BT.601 limited-range (Y, U, V) of the 75 % colour bars.
const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128), // white
    (162, 44, 142),  // yellow
    (131, 156, 44),  // cyan
    (112, 72, 58),   // green
    (84, 184, 198),  // magenta
    (65, 100, 212),  // red
    (35, 212, 114),  // blue
];
/// Bits of the frame counter drawn at the bottom.
const COUNTER_BITS: u32 = 16;

/// Why a pattern cannot be made at the requested size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidSize {
    /// Requested width.
    pub width: usize,
    /// Requested height.
    pub height: usize,
}

impl core::fmt::Display for InvalidSize {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "test pattern size {}x{} is invalid: width and height must be even and at least 32",
            self.width, self.height
        )
    }
}

impl std::error::Error for InvalidSize {}

/// Generator of the test pattern at one size.
#[derive(Clone, Debug)]
pub struct TestPattern {
    width: usize,
    height: usize,
}

impl TestPattern {
    /// A pattern of `width` x `height` pixels; both must be even and at least 32.
    pub fn new(width: usize, height: usize) -> Result<Self, InvalidSize> {
        if width < 32 || height < 32 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(InvalidSize { width, height });
        }
        Ok(Self { width, height })
    }

    /// Width in pixels.
    #[must_use]
    pub const fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    #[must_use]
    pub const fn height(&self) -> usize {
        self.height
    }

    /// Bytes of one I420 frame: `width * height * 3 / 2`.
    #[must_use]
    pub const fn frame_len(&self) -> usize {
        self.width * self.height * 3 / 2
    }

    /// A new buffer holding frame `index`.
    #[must_use]
    pub fn frame(&self, index: u64) -> Vec<u8> {
        let mut out = vec![0; self.frame_len()];
        self.render(index, &mut out);
        out
    }

    /// Splits an I420 frame buffer of this size into its Y, U and V planes.
    ///
    /// # Panics
    ///
    /// If `frame` is not [`Self::frame_len`] bytes long.
    #[must_use]
    pub fn planes<'a>(&self, frame: &'a [u8]) -> (&'a [u8], &'a [u8], &'a [u8]) {
        assert_eq!(
            frame.len(),
            self.frame_len(),
            "frame buffer of the wrong size"
        );
        let (y, uv) = frame.split_at(self.width * self.height);
        let (u, v) = uv.split_at(uv.len() / 2);
        (y, u, v)
    }

    /// Draws frame `index` into `out` (I420, [`Self::frame_len`] bytes).
    ///
    /// # Panics
    ///
    /// If `out` is not [`Self::frame_len`] bytes long.
    pub fn render(&self, index: u64, out: &mut [u8]) {
        assert_eq!(
            out.len(),
            self.frame_len(),
            "frame buffer of the wrong size"
        );
        let (w, h) = (self.width, self.height);
        let (cw, ch) = (w / 2, h / 2);
        let (y_plane, uv) = out.split_at_mut(w * h);
        let (u_plane, v_plane) = uv.split_at_mut(cw * ch);

        // Region boundaries in luma rows, kept even so chroma rows line up.
        let bars_end = (h * 7 / 12) & !1;
        let counter_start = (h * 10 / 12) & !1;
        let box_size = (((counter_start - bars_end) * 3 / 4).max(2)) & !1;
        let box_y = bars_end + (((counter_start - bars_end - box_size) / 2) & !1);
        let travel = (w - box_size) as u64;
        let step = (w as u64 / 64).max(2);
        let pos = (index * step) % (2 * travel.max(1));
        let box_x = (if pos < travel { pos } else { 2 * travel - pos } as usize) & !1;
        let bit_w = w / COUNTER_BITS as usize;

        let pixel = |x: usize, y: usize| -> (u8, u8, u8) {
            if y < bars_end {
                BARS[(x * BARS.len() / w).min(BARS.len() - 1)]
            } else if y < counter_start {
                if (box_x..box_x + box_size).contains(&x) && (box_y..box_y + box_size).contains(&y)
                {
                    (235, 128, 128)
                } else {
                    // A horizontal ramp, so the box moves over texture rather than flat grey.
                    (16 + (x * 219 / w) as u8, 128, 128)
                }
            } else {
                let bit = x / bit_w.max(1);
                if bit >= COUNTER_BITS as usize {
                    (16, 128, 128)
                } else if (index >> (COUNTER_BITS as usize - 1 - bit)) & 1 == 1 {
                    (235, 128, 128)
                } else {
                    (16, 128, 128)
                }
            }
        };

        for y in 0..h {
            for x in 0..w {
                let luma = pixel(x, y).0;
                // Sensor-like noise above the counter, so frames cost what camera frames cost.
                y_plane[y * w + x] = if y < counter_start {
                    luma.saturating_add_signed(noise(x, y, index))
                } else {
                    luma
                };
            }
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let (_, u, v) = pixel(cx * 2, cy * 2);
                u_plane[cy * cw + cx] = u;
                v_plane[cy * cw + cx] = v;
            }
        }
    }
}

/// The test pattern as a camera: frames at `fps`, each stamped with the time it was drawn.
#[derive(Debug)]
pub struct PatternSource {
    pattern: TestPattern,
    buffer: Vec<u8>,
    index: u64,
    fps: u32,
    interval: Option<Duration>,
    next_due: Option<Instant>,
}

impl PatternSource {
    /// A source of `width × height` frames paced at `fps` frames per second.
    pub fn new(width: usize, height: usize, fps: u32) -> Result<Self, CaptureError> {
        let pattern = TestPattern::new(width, height)
            .map_err(|e| CaptureError::UnsupportedFormat(e.to_string()))?;
        if fps == 0 {
            return Err(CaptureError::UnsupportedFormat(
                "frame rate must be at least 1".into(),
            ));
        }
        Ok(Self {
            buffer: vec![0; pattern.frame_len()],
            pattern,
            index: 0,
            fps,
            interval: Some(Duration::from_secs(1) / fps),
            next_due: None,
        })
    }

    /// Produce frames as fast as they are asked for instead of at the frame rate (for tests
    /// and benchmarks).
    #[must_use]
    pub fn unpaced(mut self) -> Self {
        self.interval = None;
        self
    }

    /// Starts the sequence at frame `index` (cameras with different phases show different
    /// pictures).
    #[must_use]
    pub fn starting_at(mut self, index: u64) -> Self {
        self.index = index;
        self
    }
}

impl CaptureSource for PatternSource {
    fn format(&self) -> VideoFormat {
        VideoFormat {
            width: self.pattern.width() as u32,
            height: self.pattern.height() as u32,
            pixel_format: PixelFormat::I420,
            frame_rate: (self.fps, 1),
        }
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, CaptureError> {
        if let Some(interval) = self.interval {
            let now = Instant::now();
            let due = self.next_due.unwrap_or(now);
            if due > now {
                std::thread::sleep(due - now);
            }
            // Late frames do not accumulate a debt: the schedule restarts from now.
            self.next_due = Some(due.max(now) + interval);
        }
        self.pattern.render(self.index, &mut self.buffer);
        let sequence = self.index;
        self.index += 1;
        let picture = Picture::packed(
            PixelFormat::I420,
            self.pattern.width() as u32,
            self.pattern.height() as u32,
            &self.buffer,
        )?;
        Ok(CapturedFrame::new(picture, Instant::now(), sequence))
    }
}

/// Deterministic luma noise in -4..=4 for pixel `(x, y)` of frame `index`.
fn noise(x: usize, y: usize, index: u64) -> i8 {
    let mut z = (x as u64) ^ ((y as u64) << 20) ^ (index << 40);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % 9) as i8 - 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_moving() {
        let pattern = TestPattern::new(64, 48).unwrap();
        assert_eq!(pattern.frame(5), pattern.frame(5));
        assert_ne!(pattern.frame(5), pattern.frame(6));
        assert_eq!(pattern.frame(0).len(), 64 * 48 * 3 / 2);
    }

    #[test]
    fn source_hands_out_consecutive_frames() {
        let mut source = PatternSource::new(64, 48, 30).unwrap().unpaced();
        let first = source.next_frame().unwrap().picture.planes()[0]
            .data
            .to_vec();
        let second = source.next_frame().unwrap();
        assert_eq!(second.sequence, 1);
        assert_ne!(second.picture.planes()[0].data, &first[..]);
        assert_eq!(source.format().pixel_format, PixelFormat::I420);
    }

    #[test]
    fn rejects_odd_or_tiny_sizes() {
        assert!(TestPattern::new(63, 48).is_err());
        assert!(TestPattern::new(64, 47).is_err());
        assert!(TestPattern::new(16, 16).is_err());
        assert!(TestPattern::new(640, 360).is_ok());
    }
}
