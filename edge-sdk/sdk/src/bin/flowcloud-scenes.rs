//! `flowcloud-scenes`: writes synthetic street scenes as a Cityscapes-format data set, for
//! training and evaluating segmentation models.
#![allow(clippy::print_stdout)]

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use flowcloud_edge::capture::scene::{SceneClass, SceneConfig, StreetScene};

/// Writes synthetic street scenes as a Cityscapes-format data set: for every frame an RGB
/// picture `OUT/leftImg8bit/SPLIT/synth/synth_SSSSSS_FFFFFF_leftImg8bit.png` and its exact labels
/// `OUT/gtFine/SPLIT/synth/synth_SSSSSS_FFFFFF_gtFine_labelIds.png` (8-bit grey, Cityscapes
/// labelIds), where SSSSSS is the sequence and FFFFFF the frame number within it. Each sequence
/// is a different street; its frames are --frame-step frames apart as the camera drives along.
/// The same arguments always write the same bytes; use a different --seed for each split so
/// that no street appears in two of them.
#[derive(Debug, Parser)]
#[command(name = "flowcloud-scenes", version)]
struct Args {
    /// Root folder of the data set (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Which split the frames belong to (the folder they go in).
    #[arg(long, value_enum, default_value_t = Split::Train)]
    split: Split,
    /// How many sequences (streets) to write.
    #[arg(long, default_value_t = 20)]
    sequences: u64,
    /// Number of the first sequence written (to add sequences to an existing data set).
    #[arg(long, default_value_t = 0)]
    first_sequence: u64,
    /// Frames written per sequence.
    #[arg(long, default_value_t = 30)]
    frames_per_sequence: u64,
    /// Frames of scene time between two written frames (consecutive frames look alike; a
    /// larger step gives more variety per sequence).
    #[arg(long, default_value_t = 10)]
    frame_step: u64,
    /// Picture width in pixels (even, 32 to 8192).
    #[arg(long, default_value_t = 640)]
    width: usize,
    /// Picture height in pixels (even, 32 to 8192).
    #[arg(long, default_value_t = 320)]
    height: usize,
    /// Seed of the world: different seeds give different streets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Frames per second of scene time (how far things move per frame).
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Also write `*_gtFine_color.png`, the labels in the Cityscapes palette.
    #[arg(long)]
    color: bool,
    /// Write every picture as the worker receives it from a camera rather than as rendered:
    /// each sequence is encoded by the SDK's openh264 encoder at its default settings (0.2 bit
    /// per pixel per frame, an IDR every two seconds of --fps), decoded again and converted back
    /// to RGB as the worker does (BT.601 limited range). All frames of a sequence up to the last
    /// one written go through the encoder, so each written frame has the history it would have
    /// in a live stream, and each worker thread's sequences follow one another in one stream (a
    /// camera filming street after street; so here --threads changes the bytes written). Labels
    /// are unchanged.
    #[arg(long)]
    through_camera_codec: bool,
    /// The "city" part of the file names and folder (lets rendered and codec frames of the same
    /// streets sit side by side in one data set).
    #[arg(long, default_value = "synth", value_parser = parse_city)]
    city: String,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// A city name that keeps Cityscapes file names parseable: letters and digits only.
fn parse_city(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?}: 1 to 32 ASCII letters and digits"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    const fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowcloud-scenes: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Pixels per class over everything written, indexed by labelId.
type Histogram = [u64; 256];

fn run(args: &Args) -> Result<()> {
    if args.frames_per_sequence == 0 || args.frame_step == 0 {
        bail!("--frames-per-sequence and --frame-step must be at least 1");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let config = SceneConfig {
        fps: args.fps,
        frames_per_sequence: args
            .frames_per_sequence
            .checked_mul(args.frame_step)
            .context("--frames-per-sequence × --frame-step is too large")?,
        ..SceneConfig::new(args.width, args.height, args.seed)
    };
    config.validate()?;
    // Every frame index written must exist without wrapping.
    args.first_sequence
        .checked_add(args.sequences)
        .and_then(|end| end.checked_mul(config.frames_per_sequence))
        .context("--first-sequence + --sequences is too large")?;
    let split = args.split.name();
    #[cfg(not(feature = "openh264"))]
    if args.through_camera_codec {
        bail!("--through-camera-codec needs the openh264 feature, which this build lacks");
    }
    let images = args.out.join("leftImg8bit").join(split).join(&args.city);
    let labels = args.out.join("gtFine").join(split).join(&args.city);
    for dir in [&images, &labels] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    let started = Instant::now();
    let threads = args.threads.min(args.sequences.max(1) as usize);
    let results: Vec<Result<Histogram>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let (images, labels) = (&images, &labels);
                scope.spawn(move || write_sequences(args, config, worker, threads, images, labels))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")))
            })
            .collect()
    });
    let mut histogram = [0u64; 256];
    for result in results {
        for (total, n) in histogram.iter_mut().zip(result?) {
            *total += n;
        }
    }
    let pixels: u64 = histogram.iter().sum();
    let shares: Vec<String> = SceneClass::ALL
        .iter()
        .map(|c| {
            let share = histogram[usize::from(c.label_id())] as f64 / pixels.max(1) as f64;
            format!("{} {:.1}%", c.name(), share * 100.0)
        })
        .collect();
    println!(
        "flowcloud-scenes: wrote {} frames ({} sequences × {}) of {}x{}{} to {} ({split}, seed {}) in {:.1} s; pixels: {}",
        args.sequences.saturating_mul(args.frames_per_sequence),
        args.sequences,
        args.frames_per_sequence,
        args.width,
        args.height,
        if args.through_camera_codec {
            " through the camera codec"
        } else {
            ""
        },
        args.out.display(),
        args.seed,
        started.elapsed().as_secs_f64(),
        shares.join(", ")
    );
    Ok(())
}

/// Writes every `threads`-th sequence starting at the `worker`-th, and counts their labels.
fn write_sequences(
    args: &Args,
    config: SceneConfig,
    worker: usize,
    threads: usize,
    images: &Path,
    labels_dir: &Path,
) -> Result<Histogram> {
    let mut scene = StreetScene::new(config)?;
    let mut rgb = vec![0; config.rgb_len()];
    let mut labels = vec![0; config.labels_len()];
    let mut colours = if args.color {
        vec![0; config.rgb_len()]
    } else {
        Vec::new()
    };
    let mut histogram = [0u64; 256];
    let (w, h) = (config.width as u32, config.height as u32);
    #[cfg(feature = "openh264")]
    let mut decoded = if args.through_camera_codec {
        vec![0; config.rgb_len()]
    } else {
        Vec::new()
    };
    // One stream per thread, through all of its sequences: a camera filming one street after
    // another, as the demo's camera does, so a street's first frame follows a cut.
    #[cfg(feature = "openh264")]
    let mut codec = if args.through_camera_codec {
        Some(camera_codec::RoundTrip::new(
            config.width,
            config.height,
            config.fps,
        )?)
    } else {
        None
    };
    for i in (worker as u64..args.sequences).step_by(threads) {
        let sequence = args.first_sequence + i;
        let last = (args.frames_per_sequence - 1) * args.frame_step;
        for frame in 0..=last {
            let written = frame.is_multiple_of(args.frame_step);
            #[cfg(feature = "openh264")]
            let through_codec = codec.is_some();
            #[cfg(not(feature = "openh264"))]
            let through_codec = false;
            if !written && !through_codec {
                continue;
            }
            scene.render(config.frame_index(sequence, frame), &mut rgb, &mut labels)?;
            #[cfg(feature = "openh264")]
            let picture = match codec.as_mut() {
                Some(codec) => {
                    codec
                        .run(&rgb, &mut decoded)
                        .with_context(|| format!("sequence {sequence}, frame {frame}"))?;
                    &decoded
                }
                None => &rgb,
            };
            #[cfg(not(feature = "openh264"))]
            let picture = &rgb;
            if !written {
                continue;
            }
            let stem = format!("{}_{sequence:06}_{frame:06}", args.city);
            write_png(
                &images.join(format!("{stem}_leftImg8bit.png")),
                w,
                h,
                png::ColorType::Rgb,
                picture,
            )?;
            write_png(
                &labels_dir.join(format!("{stem}_gtFine_labelIds.png")),
                w,
                h,
                png::ColorType::Grayscale,
                &labels,
            )?;
            for &id in &labels {
                histogram[usize::from(id)] += 1;
            }
            if args.color {
                for (out, &id) in colours.chunks_exact_mut(3).zip(&labels) {
                    out.copy_from_slice(
                        &SceneClass::from_label_id(id).map_or([0; 3], SceneClass::color),
                    );
                }
                write_png(
                    &labels_dir.join(format!("{stem}_gtFine_color.png")),
                    w,
                    h,
                    png::ColorType::Rgb,
                    &colours,
                )?;
            }
        }
    }
    Ok(histogram)
}

fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    data: &[u8],
) -> Result<()> {
    let write = || -> Result<()> {
        let file = fs::File::create(path)?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(data)?;
        writer.finish()?;
        Ok(())
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// The camera's codec and the worker's decoder as one step: RGB in, RGB as the worker sees it out.
#[cfg(feature = "openh264")]
mod camera_codec {
    use std::time::Instant;

    use anyhow::{Context, Result, bail};
    use flowcloud_edge::capture::CapturedFrame;
    use flowcloud_edge::capture::scene::rgb_to_i420;
    use flowcloud_edge::encode::openh264::OpenH264Encoder;
    use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
    use flowcloud_edge::picture::{Picture, PixelFormat};
    use openh264::OpenH264API;
    use openh264::decoder::{Decoder, DecoderConfig, Flush};
    use openh264::formats::YUVSource;

    pub(super) struct RoundTrip {
        width: usize,
        height: usize,
        encoder: OpenH264Encoder,
        decoder: Decoder,
        i420: Vec<u8>,
        bitstream: Vec<u8>,
        frames: u64,
    }

    impl RoundTrip {
        pub(super) fn new(width: usize, height: usize, fps: u32) -> Result<Self> {
            let settings = EncoderSettings::new(width as u32, height as u32, fps);
            let decoder = Decoder::with_api_config(
                OpenH264API::from_source(),
                DecoderConfig::new().flush_after_decode(Flush::Flush),
            )
            .context("creating the openh264 decoder")?;
            Ok(Self {
                width,
                height,
                encoder: OpenH264Encoder::new(settings).context("creating the encoder")?,
                decoder,
                i420: vec![0; width * height * 3 / 2],
                bitstream: Vec::with_capacity(width * height * 2),
                frames: 0,
            })
        }

        /// Encodes `rgb` as the next frame of the stream, decodes it and writes the decoded
        /// picture to `out` as RGB.
        pub(super) fn run(&mut self, rgb: &[u8], out: &mut [u8]) -> Result<()> {
            let (w, h) = (self.width, self.height);
            rgb_to_i420(rgb, w, h, &mut self.i420)?;
            let picture = Picture::packed(PixelFormat::I420, w as u32, h as u32, &self.i420)?;
            let frame = CapturedFrame::new(picture, Instant::now(), self.frames);
            self.frames += 1;
            self.encoder.encode(&frame, &mut self.bitstream)?;
            let decoded = self
                .decoder
                .decode(&self.bitstream)
                .context("decoding")?
                .context("the decoder returned no picture for a whole access unit")?;
            if decoded.dimensions() != (w, h) {
                bail!("decoded {:?}, expected {w}x{h}", decoded.dimensions());
            }
            let (ys, us, vs) = decoded.strides();
            i420_to_rgb(
                (decoded.y(), ys),
                (decoded.u(), us),
                (decoded.v(), vs),
                w,
                h,
                out,
            );
            Ok(())
        }
    }

    /// BT.601 limited range → RGB with the coefficients of the worker's preprocessing (each
    /// pixel takes the chroma sample that covers it), rounded to the nearest integer.
    fn i420_to_rgb(
        (y, ys): (&[u8], usize),
        (u, us): (&[u8], usize),
        (v, vs): (&[u8], usize),
        width: usize,
        height: usize,
        out: &mut [u8],
    ) {
        let to_u8 = |c: f32| c.clamp(0.0, 255.0).round() as u8;
        for (row, out_row) in out.chunks_exact_mut(width * 3).take(height).enumerate() {
            for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
                let l = 1.164 * (f32::from(y[row * ys + x]) - 16.0);
                let cu = f32::from(u[row / 2 * us + x / 2]) - 128.0;
                let cv = f32::from(v[row / 2 * vs + x / 2]) - 128.0;
                px[0] = to_u8(l + 1.596 * cv);
                px[1] = to_u8(l - 0.392 * cu - 0.813 * cv);
                px[2] = to_u8(l + 2.017 * cu);
            }
        }
    }
}
