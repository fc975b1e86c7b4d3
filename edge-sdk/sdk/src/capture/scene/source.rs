//! The street scene as a capture source: I420 frames (BT.601 limited range, chroma averaged
//! over 2×2 pixels), paced at the frame rate like a camera.

use std::time::{Duration, Instant};

use super::{SceneConfig, SceneError, StreetScene, check};
use crate::capture::{CaptureError, CaptureSource, CapturedFrame};
use crate::picture::{Picture, PixelFormat, VideoFormat};

/// Converts an RGB picture (8 bits per channel, row-major) of even size to I420 with BT.601
/// limited-range coefficients (Y in 16..=235, U and V in 16..=240), each chroma sample from the
/// average of its 2×2 pixels. This is the inverse of what the worker applies to decoded frames.
pub fn rgb_to_i420(
    rgb: &[u8],
    width: usize,
    height: usize,
    i420: &mut [u8],
) -> Result<(), SceneError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(SceneError::InvalidSize { width, height });
    }
    check("rgb", width * height * 3, rgb.len())?;
    check("i420", width * height * 3 / 2, i420.len())?;
    let (y_plane, chroma) = i420.split_at_mut(width * height);
    let (u_plane, v_plane) = chroma.split_at_mut(width * height / 4);
    for (y_out, row) in y_plane
        .chunks_exact_mut(width)
        .zip(rgb.chunks_exact(width * 3))
    {
        for (y, px) in y_out.iter_mut().zip(row.chunks_exact(3)) {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            *y = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
    }
    let cw = width / 2;
    for cy in 0..height / 2 {
        let top = &rgb[2 * cy * width * 3..(2 * cy + 1) * width * 3];
        let bottom = &rgb[(2 * cy + 1) * width * 3..(2 * cy + 2) * width * 3];
        for cx in 0..cw {
            let mut sum = [0i32; 3];
            for row in [top, bottom] {
                for px in row[cx * 6..cx * 6 + 6].chunks_exact(3) {
                    for c in 0..3 {
                        sum[c] += i32::from(px[c]);
                    }
                }
            }
            let [r, g, b] = sum;
            // Sums of four pixels: the shift grows by 2 bits and the rounding term by 4×.
            u_plane[cy * cw + cx] = (((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128) as u8;
            v_plane[cy * cw + cx] = (((112 * r - 94 * g - 18 * b + 512) >> 10) + 128) as u8;
        }
    }
    Ok(())
}

/// The street scene as a camera: I420 frames at the configured frame rate, each stamped with
/// the time it was drawn. A frame's [`CapturedFrame::sequence`] is its frame index, so its
/// ground truth is [`StreetScene::render_labels`] of that index (or [`Self::labels`] right
/// after it was taken).
#[derive(Debug)]
pub struct SceneSource {
    scene: StreetScene,
    rgb: Vec<u8>,
    labels: Vec<u8>,
    frame: Vec<u8>,
    index: u64,
    interval: Option<Duration>,
    next_due: Option<Instant>,
}

impl SceneSource {
    /// A source rendering `config`, paced at `config.fps`.
    pub fn new(config: SceneConfig) -> Result<Self, SceneError> {
        let scene = StreetScene::new(config)?;
        Ok(Self {
            scene,
            rgb: vec![0; config.rgb_len()],
            labels: vec![0; config.labels_len()],
            frame: vec![0; config.width * config.height * 3 / 2],
            index: 0,
            interval: Some(Duration::from_secs(1) / config.fps),
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

    /// Starts at frame `index` (cameras with different phases show different streets).
    #[must_use]
    pub fn starting_at(mut self, index: u64) -> Self {
        self.index = index;
        self
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &SceneConfig {
        self.scene.config()
    }

    /// The renderer, to compute the labels (or colours) of any frame index.
    pub fn scene_mut(&mut self) -> &mut StreetScene {
        &mut self.scene
    }

    /// The labels of the frame last handed out (all zero before the first).
    #[must_use]
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The RGB picture of the frame last handed out, before conversion to I420.
    #[must_use]
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }
}

impl CaptureSource for SceneSource {
    fn format(&self) -> VideoFormat {
        let config = self.scene.config();
        VideoFormat {
            width: config.width as u32,
            height: config.height as u32,
            pixel_format: PixelFormat::I420,
            frame_rate: (config.fps, 1),
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
        let SceneConfig { width, height, .. } = *self.scene.config();
        let to_capture_error = |e: SceneError| CaptureError::UnsupportedFormat(e.to_string());
        self.scene
            .render(self.index, &mut self.rgb, &mut self.labels)
            .map_err(to_capture_error)?;
        rgb_to_i420(&self.rgb, width, height, &mut self.frame).map_err(to_capture_error)?;
        let sequence = self.index;
        self.index = self.index.wrapping_add(1);
        let picture = Picture::packed(PixelFormat::I420, width as u32, height as u32, &self.frame)?;
        Ok(CapturedFrame::new(picture, Instant::now(), sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 limited range in floating point, the reference the integer code approximates.
    fn reference(r: f64, g: f64, b: f64) -> [f64; 3] {
        [
            16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0,
            128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0,
            128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0,
        ]
    }

    #[test]
    fn uniform_colours_convert_to_their_bt601_values() {
        let (w, h) = (8, 4);
        for [r, g, b] in [
            [255u8, 255, 255],
            [0, 0, 0],
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [128, 64, 128],
            [70, 130, 180],
        ] {
            let rgb: Vec<u8> = [r, g, b].repeat(w * h);
            let mut i420 = vec![0; w * h * 3 / 2];
            rgb_to_i420(&rgb, w, h, &mut i420).unwrap();
            let (y, chroma) = i420.split_at(w * h);
            let (u, v) = chroma.split_at(w * h / 4);
            let want = reference(f64::from(r), f64::from(g), f64::from(b));
            for (plane, want) in [(y, want[0]), (u, want[1]), (v, want[2])] {
                assert!(
                    plane.iter().all(|&p| p == plane[0]),
                    "{r},{g},{b}: not uniform"
                );
                assert!(
                    (f64::from(plane[0]) - want).abs() <= 1.0,
                    "{r},{g},{b}: {} vs {want}",
                    plane[0]
                );
            }
        }
        // The exact corners of the range.
        let mut i420 = vec![0; 6];
        rgb_to_i420(&[255; 12], 2, 2, &mut i420).unwrap();
        assert_eq!(i420, [235, 235, 235, 235, 128, 128]);
        rgb_to_i420(&[0; 12], 2, 2, &mut i420).unwrap();
        assert_eq!(i420, [16, 16, 16, 16, 128, 128]);
        rgb_to_i420(&[255, 0, 0].repeat(4), 2, 2, &mut i420).unwrap();
        assert_eq!(i420, [82, 82, 82, 82, 90, 240]);
    }

    #[test]
    fn chroma_is_the_average_of_each_2x2_block() {
        // Left block: red and blue pixels; right block: all grey.
        let (w, h) = (4, 2);
        let red = [255u8, 0, 0];
        let blue = [0u8, 0, 255];
        let grey = [128u8, 128, 128];
        let rgb: Vec<u8> = [red, blue, grey, grey, blue, red, grey, grey].concat();
        let mut i420 = vec![0; w * h * 3 / 2];
        rgb_to_i420(&rgb, w, h, &mut i420).unwrap();
        let want = reference(127.5, 0.0, 127.5);
        assert!((f64::from(i420[8]) - want[1]).abs() <= 1.0, "{}", i420[8]);
        assert!((f64::from(i420[10]) - want[2]).abs() <= 1.0, "{}", i420[10]);
        assert_eq!((i420[9], i420[11]), (128, 128));
    }

    #[test]
    fn conversion_rejects_bad_sizes() {
        let mut out = vec![0; 6];
        assert_eq!(
            rgb_to_i420(&[0; 9], 3, 1, &mut out),
            Err(SceneError::InvalidSize {
                width: 3,
                height: 1
            })
        );
        assert!(matches!(
            rgb_to_i420(&[0; 11], 2, 2, &mut out),
            Err(SceneError::BufferSize { buffer: "rgb", .. })
        ));
        assert!(matches!(
            rgb_to_i420(&[0; 12], 2, 2, &mut out[..5]),
            Err(SceneError::BufferSize { buffer: "i420", .. })
        ));
    }

    #[test]
    fn source_frames_are_the_scene_in_i420_with_their_labels() {
        let config = SceneConfig::new(96, 64, 9);
        let mut source = SceneSource::new(config).unwrap().unpaced().starting_at(40);
        let format = source.format();
        assert_eq!(
            (
                format.width,
                format.height,
                format.pixel_format,
                format.frame_rate
            ),
            (96, 64, PixelFormat::I420, (30, 1))
        );
        let mut scene = StreetScene::new(config).unwrap();
        let mut rgb = vec![0; config.rgb_len()];
        let mut labels = vec![0; config.labels_len()];
        let mut i420 = vec![0; 96 * 64 * 3 / 2];
        for index in [40, 41] {
            let frame = source.next_frame().unwrap();
            assert_eq!(frame.sequence, index);
            assert_eq!(frame.picture.format(), PixelFormat::I420);
            let planes = frame.picture.planes();
            scene.render(index, &mut rgb, &mut labels).unwrap();
            rgb_to_i420(&rgb, 96, 64, &mut i420).unwrap();
            assert_eq!(planes[0].data, &i420[..96 * 64]);
            assert_eq!(planes[1].data, &i420[96 * 64..96 * 64 * 5 / 4]);
            assert_eq!(planes[2].data, &i420[96 * 64 * 5 / 4..]);
            assert_eq!(source.labels(), &labels[..]);
            assert_eq!(source.rgb(), &rgb[..]);
            // A consumer recomputes the ground truth of frame N from the index alone.
            let mut again = vec![0; config.labels_len()];
            source.scene_mut().render_labels(index, &mut again).unwrap();
            assert_eq!(again, labels);
        }
    }

    #[test]
    fn source_is_paced_at_its_frame_rate() {
        let config = SceneConfig {
            fps: 50,
            ..SceneConfig::new(64, 32, 1)
        };
        let mut source = SceneSource::new(config).unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            source.next_frame().unwrap();
        }
        // Five intervals of 20 ms after the first frame.
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
    }
}
