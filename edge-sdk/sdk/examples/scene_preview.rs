//! Renders street-scene frames to PNG (the picture and its colourised labels) and times the
//! renderer.
//!
//! ```text
//! cargo run --release -p flowcloud-edge --example scene_preview -- OUT_DIR [WIDTH HEIGHT SEED FRAME...]
//! ```
//!
//! Writes `OUT_DIR/frame_{index}.png` and `OUT_DIR/frame_{index}_labels.png` for each frame
//! index given (default: the first frame of sequences 0 to 3), then prints the time per frame of
//! `render` and `render_labels` (this thread's CPU time, the best of several rounds).
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use flowcloud_edge::capture::scene::{SceneClass, SceneConfig, StreetScene};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = Path::new(
        args.first()
            .context("usage: scene_preview OUT_DIR [WIDTH HEIGHT SEED FRAME...]")?,
    );
    let number = |i: usize, default: u64| -> Result<u64> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse().with_context(|| format!("argument {s:?}"))
        })
    };
    let (width, height, seed) = (
        number(1, 640)? as usize,
        number(2, 320)? as usize,
        number(3, 1)?,
    );
    let config = SceneConfig::new(width, height, seed);
    let mut frames: Vec<u64> = args
        .iter()
        .skip(4)
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if frames.is_empty() {
        frames = (0..4).map(|s| config.frame_index(s, 0)).collect();
    }
    std::fs::create_dir_all(out)?;
    let mut scene = StreetScene::new(config)?;
    let mut rgb = vec![0; config.rgb_len()];
    let mut labels = vec![0; config.labels_len()];
    for &index in &frames {
        scene.render(index, &mut rgb, &mut labels)?;
        write_png(&out.join(format!("frame_{index}.png")), width, height, &rgb)?;
        let colours: Vec<u8> = labels
            .iter()
            .flat_map(|&id| SceneClass::from_label_id(id).map_or([0; 3], SceneClass::color))
            .collect();
        write_png(
            &out.join(format!("frame_{index}_labels.png")),
            width,
            height,
            &colours,
        )?;
    }

    // The best of several rounds of this thread's CPU time, so that other load on the machine
    // counts as little as it can.
    const ROUNDS: u32 = 7;
    const FRAMES: u64 = 60;
    let mut render = Duration::MAX;
    let mut labels_only = Duration::MAX;
    for _ in 0..ROUNDS {
        let start = cpu_time();
        for i in 0..FRAMES {
            // Spread over sequences and times, as a data set would be.
            scene.render(i * 97, &mut rgb, &mut labels)?;
        }
        render = render.min((cpu_time() - start) / FRAMES as u32);
        let start = cpu_time();
        for i in 0..FRAMES {
            scene.render_labels(i * 97, &mut labels)?;
        }
        labels_only = labels_only.min((cpu_time() - start) / FRAMES as u32);
    }
    println!(
        "{width}x{height}: render {:.2} ms/frame, render_labels {:.2} ms/frame (one thread's CPU time, best of {ROUNDS} rounds of {FRAMES} frames)",
        render.as_secs_f64() * 1e3,
        labels_only.as_secs_f64() * 1e3
    );
    Ok(())
}

/// CPU time of this thread (wall time where there is no per-thread clock).
#[cfg(target_os = "linux")]
fn cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, |t| {
            Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
        })
}

#[cfg(not(target_os = "linux"))]
fn cpu_time() -> Duration {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn write_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(rgb)?;
    Ok(())
}
