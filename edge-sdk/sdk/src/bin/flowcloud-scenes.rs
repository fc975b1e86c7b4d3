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
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
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
    let images = args.out.join("leftImg8bit").join(split).join("synth");
    let labels = args.out.join("gtFine").join(split).join("synth");
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
        "flowcloud-scenes: wrote {} frames ({} sequences × {}) of {}x{} to {} ({split}, seed {}) in {:.1} s; pixels: {}",
        args.sequences.saturating_mul(args.frames_per_sequence),
        args.sequences,
        args.frames_per_sequence,
        args.width,
        args.height,
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
    for i in (worker as u64..args.sequences).step_by(threads) {
        let sequence = args.first_sequence + i;
        for j in 0..args.frames_per_sequence {
            let frame = j * args.frame_step;
            scene.render(config.frame_index(sequence, frame), &mut rgb, &mut labels)?;
            let stem = format!("synth_{sequence:06}_{frame:06}");
            write_png(
                &images.join(format!("{stem}_leftImg8bit.png")),
                w,
                h,
                png::ColorType::Rgb,
                &rgb,
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
