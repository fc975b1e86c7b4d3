//! H.264 streams for the GPU checks (NVDEC throughput and bit-exactness), made on a machine
//! without a GPU and carried to one.
//!
//! ```text
//! cargo run --release -p flowcloud-worker --example h264_streams -- generate DIR
//! cargo run --release -p flowcloud-worker --example h264_streams -- verify DIR
//! ```
//!
//! `generate` encodes the synthetic street scene (what the demo cameras film) with the edge
//! SDK's openh264 encoder at several sizes into `DIR/openh264-WxH-Nf.h264`; the GPU bundle adds
//! x264 streams from GStreamer. `verify` decodes every `*.h264` in `DIR` with the worker's
//! openh264 decoder and prints frames and size per file; it fails if a file does not decode or
//! gives no picture, since the bit-exact check compares NVDEC against exactly this decoder.

#![allow(clippy::print_stdout, reason = "a command-line tool prints its report")]

#[path = "common/access_units.rs"]
mod access_units;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail, ensure};
use flowcloud_edge::capture::CaptureSource as _;
use flowcloud_edge::capture::scene::{SceneConfig, SceneSource};
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder as _};
use flowcloud_worker::decode::{DecodeOutcome, Decoder as _, DecoderConfig, OpenH264Decoder};
use flowcloud_worker::frame::I420Frame;

/// Width, height, frames. 720p is the throughput stream (10 s at 30 fps); 322×242 and 642×362
/// are not multiples of 16 (the SPS crops the coded picture).
const STREAMS: [(u32, u32, u32); 4] = [
    (1280, 720, 300),
    (1920, 1080, 60),
    (322, 242, 60),
    (642, 362, 60),
];
const FPS: u32 = 30;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, dir] if cmd == "generate" => generate(Path::new(dir)),
        [cmd, dir] if cmd == "verify" => verify(Path::new(dir)),
        _ => bail!("usage: h264_streams generate DIR | verify DIR"),
    }
}

fn generate(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (width, height, frames) in STREAMS {
        let path = dir.join(format!("openh264-{width}x{height}-{frames}f.h264"));
        let mut settings = EncoderSettings::new(width, height, FPS);
        // About 2 Mbit/s at 720p, by area; an IDR every 2 s.
        settings.bitrate_bps =
            u32::try_from(u64::from(width) * u64::from(height) * 2_000_000 / 921_600)?;
        settings.keyframe_interval = 2 * FPS;
        let mut encoder = OpenH264Encoder::new(settings)?;
        // Seeded by the size: each stream films its own street, the same one every time.
        let seed = (u64::from(width) << 16) | u64::from(height);
        let mut camera =
            SceneSource::new(SceneConfig::new(width as usize, height as usize, seed))?.unpaced();
        let mut stream = Vec::new();
        // The encoder writes into the capacity it is given: a raw picture is more than enough.
        let mut au = Vec::with_capacity(width as usize * height as usize * 3 / 2);
        for t in 0..frames {
            let frame = camera.next_frame()?;
            let encoded = encoder.encode(&frame, &mut au)?;
            ensure!(
                encoded.len > 0,
                "{}: the encoder skipped frame {t}",
                path.display()
            );
            stream.extend_from_slice(&au);
        }
        std::fs::write(&path, &stream).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{}: {frames} frames, {} bytes",
            path.display(),
            stream.len()
        );
    }
    Ok(())
}

fn verify(dir: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "h264"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no .h264 files in {}", dir.display());
    for path in files {
        let units = access_units::read(&path)?;
        let mut decoder = OpenH264Decoder::new(DecoderConfig::default());
        let mut frame = I420Frame::filled(0, 0, (0, 0, 0));
        let mut pictures = 0;
        let mut sizes: Vec<(u32, u32)> = Vec::new();
        for (i, unit) in units.iter().enumerate() {
            let outcome = decoder
                .decode(unit, &mut frame)
                .with_context(|| format!("{}: access unit {i}", path.display()))?;
            if outcome == DecodeOutcome::Frame {
                pictures += 1;
                if sizes.last() != Some(&(frame.width, frame.height)) {
                    sizes.push((frame.width, frame.height));
                }
            }
        }
        ensure!(pictures > 0, "{}: no picture decoded", path.display());
        let sizes: Vec<String> = sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
        println!(
            "{}: {} access units, {pictures} pictures, {} (openh264)",
            path.display(),
            units.len(),
            sizes.join(" → ")
        );
    }
    Ok(())
}
