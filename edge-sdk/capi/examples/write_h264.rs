//! Writes an Annex-B H.264 file of the SDK's moving test pattern, encoded with openh264, for
//! the C example (`firmware.c`) to stream: what a camera's own encoder would have produced.
//!
//! ```text
//! cargo run -p flowcloud-edge-capi --example write_h264 -- OUT.h264 [--frames 150]
//!     [--size 640x360] [--fps 30] [--keyframe-interval 30] [--bitrate 1000000]
//! ```
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::io::Write;

use edge::capture::CaptureSource;
use edge::capture::pattern::PatternSource;
use edge::encode::openh264::OpenH264Encoder;
use edge::encode::{EncoderSettings, VideoEncoder};

struct Args {
    out: String,
    frames: u32,
    width: u32,
    height: u32,
    fps: u32,
    keyframe_interval: u32,
    bitrate: u32,
}

fn parse() -> Result<Args, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        out: String::new(),
        frames: 150,
        width: 640,
        height: 360,
        fps: 30,
        keyframe_interval: 30,
        bitrate: 1_000_000,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--frames" => parsed.frames = value()?.parse()?,
            "--fps" => parsed.fps = value()?.parse()?,
            "--keyframe-interval" => parsed.keyframe_interval = value()?.parse()?,
            "--bitrate" => parsed.bitrate = value()?.parse()?,
            "--size" => {
                let size = value()?;
                let (w, h) = size.split_once('x').ok_or("--size is WIDTHxHEIGHT")?;
                (parsed.width, parsed.height) = (w.parse()?, h.parse()?);
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => parsed.out = arg,
        }
    }
    if parsed.out.is_empty() {
        return Err("usage: write_h264 OUT.h264 [--frames N] [--size WxH] [--fps F] [--keyframe-interval K] [--bitrate BPS]".into());
    }
    Ok(parsed)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse()?;
    let mut source =
        PatternSource::new(args.width as usize, args.height as usize, args.fps)?.unpaced();
    let mut settings = EncoderSettings::new(args.width, args.height, args.fps);
    settings.keyframe_interval = args.keyframe_interval;
    settings.bitrate_bps = args.bitrate;
    let mut encoder = OpenH264Encoder::new(settings)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    let mut access_unit = Vec::with_capacity(4 << 20);
    let (mut bytes, mut keyframes) = (0usize, 0u32);
    for _ in 0..args.frames {
        let frame = source.next_frame()?;
        let encoded = encoder.encode(&frame, &mut access_unit)?;
        file.write_all(&access_unit[..encoded.len])?;
        bytes += encoded.len;
        keyframes += u32::from(encoded.keyframe);
    }
    file.flush()?;
    println!(
        "write_h264: {} frames ({keyframes} IDR) of {}x{} at {} fps, {bytes} bytes → {}",
        args.frames, args.width, args.height, args.fps, args.out
    );
    Ok(())
}
