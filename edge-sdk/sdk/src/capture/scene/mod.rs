//! A procedural street scene with exact Cityscapes labels: a camera drives along a street of
//! buildings, parks and cross streets, past trees, street lights, signs, parked and moving cars
//! and people on the pavements, under a drifting light. Every frame comes with the Cityscapes
//! `labelId` of every pixel ([`SceneClass`]), decided by the same rasterisation that colours it
//! (no anti-aliasing), so the labels are exact.
//!
//! - [`StreetScene`] renders frame `index` of a [`SceneConfig`] into RGB and labels
//!   ([`StreetScene::render`]), or labels only, faster ([`StreetScene::render_labels`]). The
//!   same `(config, index)` always gives the same bytes: everything is derived from hashes of
//!   the seed, and the floating-point arithmetic uses no platform math library.
//! - [`SceneSource`] is the scene as a camera: I420 frames paced at the frame rate, like
//!   [`PatternSource`](super::pattern::PatternSource); the ground truth of a frame it handed
//!   out is [`StreetScene::render_labels`] of the frame's `sequence` number.
//!
//! Frame indices run through sequences: every [`SceneConfig::frames_per_sequence`] frames the
//! street changes (a new layout, camera, weather and traffic); within a sequence the camera
//! moves forward continuously. Many sequences make many different scenes, which the
//! `flowcloud-scenes` tool writes out as a Cityscapes-format data set.
//!
//! How a frame is made: a pinhole camera over a ground plane; a first pass finds, per screen
//! column, where its ray meets the vertical surfaces (facades, side walls, hedges, tree lines,
//! a back row of buildings), then each pixel takes the nearest surface covering it, else the
//! ground (classified by its world position: road, pavement, verge, lawn) or the sky. Objects
//! (cars as boxes, people, trees and sign plates as flat shapes facing the camera, poles as
//! boxes) are then drawn with a depth buffer. Textures come from one tiling value-noise
//! texture sampled in world coordinates.

mod backdrop;
mod camera;
mod classes;
mod layout;
mod light;
mod noise;
mod objects;
mod placement;
mod raster;
mod source;

pub use classes::SceneClass;
pub use source::{SceneSource, rgb_to_i420};

use backdrop::Backdrop;
use camera::{Camera, Drive, Rays};
use layout::Street;
use light::Look;
use noise::NoiseTexture;
use raster::{Buffers, Canvas, Exposure};

/// Smallest and largest picture side accepted.
const MIN_SIDE: usize = 32;
const MAX_SIDE: usize = 8192;
/// Longest sequence accepted, in frames (positions stay precise in `f32` well past it).
const MAX_SEQUENCE: u64 = 100_000;

/// Why a scene cannot be made or drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SceneError {
    /// Width or height is odd, or outside `32..=8192`.
    #[error(
        "scene size {width}x{height} is invalid: width and height must be even and within 32..=8192"
    )]
    InvalidSize {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
    },
    /// The frame rate is zero.
    #[error("scene frame rate must be at least 1")]
    InvalidFrameRate,
    /// The sequence length is zero or above 100 000 frames.
    #[error("frames per sequence {0} is invalid: must be within 1..=100000")]
    InvalidSequenceLength(u64),
    /// A buffer handed in has the wrong length.
    #[error("{buffer} buffer holds {actual} bytes, needs {expected}")]
    BufferSize {
        /// Which buffer (`"rgb"`, `"labels"`, `"i420"`).
        buffer: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}

/// What to render: picture size, the world's seed and the timing of the sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SceneConfig {
    /// Width in pixels (even, 32..=8192).
    pub width: usize,
    /// Height in pixels (even, 32..=8192).
    pub height: usize,
    /// Seed of the world: different seeds give different streets.
    pub seed: u64,
    /// Frames per second of scene time (how far things move from one frame to the next).
    pub fps: u32,
    /// Frames per sequence: frame `index` belongs to sequence `index / frames_per_sequence`,
    /// each sequence a different street.
    pub frames_per_sequence: u64,
}

impl SceneConfig {
    /// A `width × height` scene of world `seed` at 30 frames per second, with a new street
    /// every 300 frames (10 seconds).
    #[must_use]
    pub const fn new(width: usize, height: usize, seed: u64) -> Self {
        Self {
            width,
            height,
            seed,
            fps: 30,
            frames_per_sequence: 300,
        }
    }

    /// Checks the configuration.
    pub const fn validate(&self) -> Result<(), SceneError> {
        let (w, h) = (self.width, self.height);
        if w < MIN_SIDE || h < MIN_SIDE || w > MAX_SIDE || h > MAX_SIDE || w % 2 != 0 || h % 2 != 0
        {
            return Err(SceneError::InvalidSize {
                width: w,
                height: h,
            });
        }
        if self.fps == 0 {
            return Err(SceneError::InvalidFrameRate);
        }
        if self.frames_per_sequence == 0 || self.frames_per_sequence > MAX_SEQUENCE {
            return Err(SceneError::InvalidSequenceLength(self.frames_per_sequence));
        }
        Ok(())
    }

    /// The frame index of frame `frame` (counted from 0 within its sequence) of `sequence`
    /// (wrapping past `u64::MAX`).
    #[must_use]
    pub const fn frame_index(&self, sequence: u64, frame: u64) -> u64 {
        sequence
            .wrapping_mul(self.frames_per_sequence)
            .wrapping_add(frame)
    }

    /// The sequence of frame `index`, and the frame's number within it.
    #[must_use]
    pub const fn locate(&self, index: u64) -> (u64, u64) {
        (
            index / self.frames_per_sequence,
            index % self.frames_per_sequence,
        )
    }

    /// Bytes of an RGB frame: `width * height * 3`.
    #[must_use]
    pub const fn rgb_len(&self) -> usize {
        self.width * self.height * 3
    }

    /// Bytes of a label map: `width * height`.
    #[must_use]
    pub const fn labels_len(&self) -> usize {
        self.width * self.height
    }
}

/// The street scene renderer. Holds its working buffers, so rendering does not allocate.
#[derive(Debug)]
pub struct StreetScene {
    config: SceneConfig,
    noise: NoiseTexture,
    rays: Rays,
    backdrop: Backdrop,
    depth: Vec<f32>,
    footprint: Vec<raster::Footprint>,
}

/// What one frame's passes read: the street, its look, the camera and its rays.
struct Scene<'a> {
    street: &'a Street,
    look: &'a Look,
    camera: &'a Camera,
    rays: &'a Rays,
    noise: &'a NoiseTexture,
    /// Seconds since the start of the sequence.
    time: f32,
}

impl StreetScene {
    /// A renderer for `config`; allocates everything it will need.
    pub fn new(config: SceneConfig) -> Result<Self, SceneError> {
        config.validate()?;
        Ok(Self {
            config,
            noise: NoiseTexture::new(),
            rays: Rays::new(config.width, config.height),
            backdrop: Backdrop::new(config.width),
            depth: vec![0.0; config.labels_len()],
            footprint: vec![raster::Footprint::default(); config.width],
        })
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &SceneConfig {
        &self.config
    }

    /// Renders frame `index`: RGB (8 bits per channel, row-major, `width * height * 3` bytes)
    /// into `rgb` and the Cityscapes `labelId` of every pixel (`width * height` bytes) into
    /// `labels`.
    pub fn render(
        &mut self,
        index: u64,
        rgb: &mut [u8],
        labels: &mut [u8],
    ) -> Result<(), SceneError> {
        check("rgb", self.config.rgb_len(), rgb.len())?;
        check("labels", self.config.labels_len(), labels.len())?;
        self.draw::<true>(index, rgb, labels);
        Ok(())
    }

    /// Renders only the labels of frame `index`: exactly those [`Self::render`] gives, at a
    /// fraction of the cost (no colours, textures or light).
    pub fn render_labels(&mut self, index: u64, labels: &mut [u8]) -> Result<(), SceneError> {
        check("labels", self.config.labels_len(), labels.len())?;
        self.draw::<false>(index, &mut [], labels);
        Ok(())
    }

    fn draw<const SHADE: bool>(&mut self, index: u64, rgb: &mut [u8], labels: &mut [u8]) {
        let SceneConfig {
            width,
            height,
            seed,
            fps,
            ..
        } = self.config;
        let (sequence, frame) = self.config.locate(index);
        let mut street = Street::new(seed, sequence);
        let drive = Drive::new(&street);
        let look = Look::new(&street);
        let time = frame as f32 / fps as f32;
        let camera = Camera::at(&drive, width, height, time);
        self.rays.aim(&camera);
        street.focus(camera.z);
        let scene = Scene {
            street: &street,
            look: &look,
            camera: &camera,
            rays: &self.rays,
            noise: &self.noise,
            time,
        };
        let buffers = Buffers {
            rgb,
            labels,
            depth: &mut self.depth,
            footprint: &mut self.footprint,
        };
        let exposure = Exposure {
            gain: look.gain(time),
            grain: look.grain,
            frame: index as u32,
        };
        let mut canvas = Canvas::<SHADE>::new(width, height, buffers, &exposure);
        self.backdrop.draw(&scene, &mut canvas);
        placement::draw_objects(&scene, &mut canvas);
    }
}

fn check(buffer: &'static str, expected: usize, actual: usize) -> Result<(), SceneError> {
    if expected == actual {
        Ok(())
    } else {
        Err(SceneError::BufferSize {
            buffer,
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(width: usize, height: usize, seed: u64) -> StreetScene {
        StreetScene::new(SceneConfig::new(width, height, seed)).unwrap()
    }

    fn render(scene: &mut StreetScene, index: u64) -> (Vec<u8>, Vec<u8>) {
        let config = *scene.config();
        let mut rgb = vec![0; config.rgb_len()];
        let mut labels = vec![0; config.labels_len()];
        scene.render(index, &mut rgb, &mut labels).unwrap();
        (rgb, labels)
    }

    fn labels_of(scene: &mut StreetScene, index: u64) -> Vec<u8> {
        let mut labels = vec![0; scene.config().labels_len()];
        scene.render_labels(index, &mut labels).unwrap();
        labels
    }

    #[test]
    fn same_seed_and_index_give_the_same_bytes() {
        let mut a = scene(160, 96, 11);
        let mut b = scene(160, 96, 11);
        let first = render(&mut a, 1234);
        // Rendering other frames in between leaves no trace.
        render(&mut a, 5);
        labels_of(&mut a, 99_999);
        assert_eq!(render(&mut a, 1234), first);
        assert_eq!(render(&mut b, 1234), first);
    }

    #[test]
    fn different_seeds_and_frames_differ() {
        let (rgb_a, labels_a) = render(&mut scene(160, 96, 1), 40);
        let (rgb_b, labels_b) = render(&mut scene(160, 96, 2), 40);
        assert_ne!(rgb_a, rgb_b);
        assert_ne!(labels_a, labels_b);
        let (rgb_next, _) = render(&mut scene(160, 96, 1), 41);
        assert_ne!(rgb_a, rgb_next);
    }

    #[test]
    fn consecutive_frames_are_one_moving_shot_and_sequences_are_different_streets() {
        let mut scene = scene(320, 160, 3);
        let config = *scene.config();
        let same = |a: &[u8], b: &[u8]| {
            a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
        };
        let frame = labels_of(&mut scene, config.frame_index(2, 100));
        let next = labels_of(&mut scene, config.frame_index(2, 101));
        let other = labels_of(&mut scene, config.frame_index(3, 100));
        assert!(same(&frame, &next) > 0.85, "{}", same(&frame, &next));
        assert!(same(&frame, &other) < same(&frame, &next));
    }

    #[test]
    fn every_pixel_has_one_of_the_scene_classes() {
        let mut scene = scene(320, 160, 5);
        for index in [0, 77, 301, 4567, 99_999] {
            let (_, labels) = render(&mut scene, index);
            for &id in &labels {
                assert!(
                    SceneClass::from_label_id(id).is_some(),
                    "label {id} in frame {index}"
                );
            }
        }
    }

    #[test]
    fn every_class_appears_within_twenty_sequences() {
        let mut scene = scene(640, 320, 21);
        let config = *scene.config();
        let mut pixels = [0u64; 256];
        for sequence in 0..20 {
            for frame in [0, 150] {
                for &id in &labels_of(&mut scene, config.frame_index(sequence, frame)) {
                    pixels[usize::from(id)] += 1;
                }
            }
        }
        for class in SceneClass::ALL {
            assert!(
                pixels[usize::from(class.label_id())] > 0,
                "{} never drawn",
                class.name()
            );
        }
        // And the big classes are big.
        let total: u64 = pixels.iter().sum();
        for class in [SceneClass::Road, SceneClass::Building, SceneClass::Sky] {
            let share = pixels[usize::from(class.label_id())] as f64 / total as f64;
            assert!(share > 0.05, "{}: {share}", class.name());
        }
    }

    #[test]
    fn render_labels_gives_the_labels_of_render() {
        let mut scene = scene(320, 160, 8);
        let config = *scene.config();
        for sequence in 0..12 {
            for frame in [0, 123, 299] {
                let index = config.frame_index(sequence, frame);
                let (_, labels) = render(&mut scene, index);
                assert!(labels == labels_of(&mut scene, index), "frame {index}");
            }
        }
    }

    #[test]
    fn sky_is_only_above_road_in_every_column() {
        let mut scene = scene(320, 160, 13);
        let config = *scene.config();
        for sequence in 0..10 {
            let labels = labels_of(&mut scene, config.frame_index(sequence, 200));
            for x in 0..config.width {
                let labels = &labels;
                let rows = |class: SceneClass| {
                    (0..config.height)
                        .filter(move |&y| labels[y * config.width + x] == class.label_id())
                };
                if let (Some(lowest_sky), Some(highest_road)) =
                    (rows(SceneClass::Sky).max(), rows(SceneClass::Road).min())
                {
                    assert!(lowest_sky < highest_road, "sequence {sequence}, column {x}");
                }
            }
        }
    }

    #[test]
    fn people_and_poles_have_sensible_sizes() {
        // Over many frames at 640×320, someone walks near the camera (tens of pixels tall) and
        // a pole stands near enough to be a few pixels wide.
        let mut scene = scene(640, 320, 4);
        let config = *scene.config();
        let (mut tallest_person, mut widest_pole) = (0, 0);
        for sequence in 0..10 {
            for frame in [0, 100, 200] {
                let labels = labels_of(&mut scene, config.frame_index(sequence, frame));
                let at = |x: usize, y: usize| labels[y * config.width + x];
                for x in 0..config.width {
                    let run = longest_run(
                        (0..config.height).map(|y| at(x, y) == SceneClass::Person.label_id()),
                    );
                    tallest_person = tallest_person.max(run);
                }
                for y in 0..config.height {
                    let run = longest_run(
                        (0..config.width).map(|x| at(x, y) == SceneClass::Pole.label_id()),
                    );
                    widest_pole = widest_pole.max(run);
                }
            }
        }
        assert!((30..200).contains(&tallest_person), "{tallest_person}");
        assert!(widest_pole >= 3, "{widest_pole}");
    }

    fn longest_run(cells: impl Iterator<Item = bool>) -> usize {
        let (mut best, mut run) = (0, 0);
        for on in cells {
            run = if on { run + 1 } else { 0 };
            best = best.max(run);
        }
        best
    }

    #[test]
    fn bad_configurations_and_buffers_are_typed_errors() {
        let bad_size = |w, h| StreetScene::new(SceneConfig::new(w, h, 0)).unwrap_err();
        assert_eq!(
            bad_size(63, 32),
            SceneError::InvalidSize {
                width: 63,
                height: 32
            }
        );
        assert_eq!(
            bad_size(64, 31),
            SceneError::InvalidSize {
                width: 64,
                height: 31
            }
        );
        assert_eq!(
            bad_size(16, 16),
            SceneError::InvalidSize {
                width: 16,
                height: 16
            }
        );
        assert_eq!(
            bad_size(0, 0),
            SceneError::InvalidSize {
                width: 0,
                height: 0
            }
        );
        assert_eq!(
            bad_size(10_000, 64),
            SceneError::InvalidSize {
                width: 10_000,
                height: 64
            }
        );
        let config = SceneConfig {
            fps: 0,
            ..SceneConfig::new(64, 32, 0)
        };
        assert_eq!(
            StreetScene::new(config).unwrap_err(),
            SceneError::InvalidFrameRate
        );
        let config = SceneConfig {
            frames_per_sequence: 0,
            ..SceneConfig::new(64, 32, 0)
        };
        assert_eq!(
            StreetScene::new(config).unwrap_err(),
            SceneError::InvalidSequenceLength(0)
        );

        let mut scene = scene(64, 32, 0);
        let mut rgb = vec![0; 64 * 32 * 3];
        let mut labels = vec![0; 64 * 32];
        assert_eq!(
            scene.render(0, &mut rgb[1..], &mut labels),
            Err(SceneError::BufferSize {
                buffer: "rgb",
                expected: 64 * 32 * 3,
                actual: 64 * 32 * 3 - 1
            })
        );
        assert_eq!(
            scene.render_labels(0, &mut labels[..10]),
            Err(SceneError::BufferSize {
                buffer: "labels",
                expected: 64 * 32,
                actual: 10
            })
        );
        assert!(scene.render(u64::MAX, &mut rgb, &mut labels).is_ok());
    }

    #[test]
    fn frame_indices_map_to_sequences() {
        let config = SceneConfig::new(64, 32, 0);
        assert_eq!(config.frame_index(3, 7), 907);
        assert_eq!(config.locate(907), (3, 7));
        assert_eq!(config.locate(299), (0, 299));
    }
}
