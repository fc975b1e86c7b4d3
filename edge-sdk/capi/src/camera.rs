//! `fc_sender_start_camera`: a thread that captures (test pattern, raw/Y4M file, V4L2 camera),
//! encodes (openh264, V4L2 M2M, NVENC) straight into a hand-off buffer, and queues the access
//! unit for the I/O thread — the same path `fc_sender_push_au` takes, without the copy.
//!
//! The source and encoder are opened on the camera thread itself (V4L2 buffers and encoder
//! contexts then never change threads); `fc_sender_start_camera` waits for that and returns
//! its result.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use edge::capture::file::{RawFileSource, Y4mSource};
use edge::capture::pattern::PatternSource;
use edge::capture::{CaptureError, CaptureSource};
use edge::encode::{EncodeError, EncoderSettings, VideoEncoder};
use edge::picture::{PixelFormat, VideoFormat};

use crate::config::{fc_camera_config, fc_raw_format, read_str};
use crate::handoff::Ready;
use crate::result::fc_result;
use crate::shared::Shared;

/// The owned, checked form of an [`fc_camera_config`].
#[derive(Clone, Debug)]
pub(crate) struct CameraSpec {
    source: String,
    encoder: String,
    raw_format: PixelFormat,
    looping: bool,
    width: u32,
    height: u32,
    fps: u32,
    bitrate_bps: u32,
    keyframe_interval: u32,
}

impl CameraSpec {
    /// Copies and checks `config`.
    ///
    /// # Safety
    ///
    /// The config's strings are NULL or NUL-terminated and valid during the call.
    pub(crate) unsafe fn from_c(config: &fc_camera_config) -> Result<Self, fc_result> {
        // SAFETY: the caller's contract covers both strings.
        let (source, encoder) = unsafe { (read_str(config.source)?, read_str(config.encoder)?) };
        if config.fps == 0 || config.bitrate_bps == 0 {
            return Err(fc_result::InvalidConfig);
        }
        Ok(Self {
            source: source.to_owned(),
            encoder: encoder.to_owned(),
            raw_format: match config.raw_format {
                x if x == fc_raw_format::I420 as u32 => PixelFormat::I420,
                x if x == fc_raw_format::Nv12 as u32 => PixelFormat::Nv12,
                _ => return Err(fc_result::InvalidConfig),
            },
            looping: config.looping,
            width: config.width,
            height: config.height,
            fps: config.fps,
            bitrate_bps: config.bitrate_bps,
            keyframe_interval: config.keyframe_interval,
        })
    }
}

/// Starts the camera thread; returns once the source and encoder are open (or failed).
pub(crate) fn start(spec: CameraSpec, shared: Arc<Shared>) -> Result<JoinHandle<()>, fc_result> {
    let (opened_tx, opened_rx) = mpsc::sync_channel(1);
    let thread = thread::Builder::new()
        .name("fc-camera".into())
        .spawn(move || camera_thread(&spec, &shared, &opened_tx))
        .map_err(|_| fc_result::Io)?;
    // A panic before the answer drops the channel's sender: `recv` fails.
    let opened = opened_rx.recv().unwrap_or(Err(fc_result::Panic));
    match opened {
        Ok(()) => Ok(thread),
        Err(e) => {
            let _ = thread.join();
            Err(e)
        }
    }
}

fn camera_thread(spec: &CameraSpec, shared: &Shared, opened: &SyncSender<Result<(), fc_result>>) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let (mut source, self_paced) = match open_source(spec) {
            Ok(s) => s,
            Err(e) => {
                let _ = opened.send(Err(e));
                return None;
            }
        };
        let mut encoder = match open_encoder(spec, source.format()) {
            Ok(e) => e,
            Err(e) => {
                let _ = opened.send(Err(e));
                return None;
            }
        };
        shared.camera.running.store(true, Ordering::Release);
        let _ = opened.send(Ok(()));
        let pacing = (!self_paced).then(|| Duration::from_secs(1) / spec.fps);
        Some(capture_loop(&mut *source, &mut *encoder, pacing, shared))
    }));
    let result = match outcome {
        Ok(None) => return,
        Ok(Some(result)) => result,
        Err(_) => fc_result::Panic,
    };
    let camera = &shared.camera;
    camera.set_result(result);
    camera.running.store(false, Ordering::Release);
    camera.ended_unreported.store(true, Ordering::Release);
    let _ = shared.waker.wake();
}

/// Captures, encodes and queues until the source ends, `fc_sender_stop`, or an error.
fn capture_loop(
    source: &mut dyn CaptureSource,
    encoder: &mut dyn VideoEncoder,
    pacing: Option<Duration>,
    shared: &Shared,
) -> fc_result {
    let stop = || shared.camera.stop.load(Ordering::Acquire);
    let mut next_frame = Instant::now();
    while !stop() {
        if let Some(interval) = pacing {
            // `fc_sender_stop` unparks this thread, so a long interval does not delay it.
            loop {
                let now = Instant::now();
                if now >= next_frame || stop() {
                    break;
                }
                thread::park_timeout(next_frame - now);
            }
            if stop() {
                break;
            }
            // A late frame does not make the next ones early.
            let floor = Instant::now().checked_sub(interval).unwrap_or(next_frame);
            next_frame = next_frame.max(floor) + interval;
        }
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(CaptureError::EndOfStream) => return drain(encoder, shared),
            Err(_) => return fc_result::Capture,
        };
        let captured_at = frame.captured_at;
        if shared.take_keyframe_request() {
            encoder.request_keyframe();
        }
        let mut buf = match shared.acquire(None) {
            Ok(buf) => buf,
            // The drop raised a keyframe request, taken before the next frame.
            Err(fc_result::Dropped) => continue,
            Err(_) => break,
        };
        match encoder.encode(&frame, &mut buf) {
            Ok(encoded) if encoded.len > 0 => {
                buf.truncate(encoded.len);
                let ready = Ready {
                    access_unit: buf,
                    captured_at,
                    encode_time: encoded.encode_time,
                };
                if shared.submit(ready, encoded.keyframe) == fc_result::Stopped {
                    break;
                }
            }
            Ok(_) => shared.handoff.release(buf),
            Err(_) => {
                shared.handoff.release(buf);
                return fc_result::Encoder;
            }
        }
        shared.camera.frames.fetch_add(1, Ordering::Relaxed);
    }
    fc_result::Ok
}

/// At the end of a file: the access units an encoder still holds (V4L2 M2M may hold some).
fn drain(encoder: &mut dyn VideoEncoder, shared: &Shared) -> fc_result {
    loop {
        let Ok(mut buf) = shared.acquire(None) else {
            return fc_result::Ok;
        };
        match encoder.drain(&mut buf) {
            Ok(Some(encoded)) if encoded.len > 0 => {
                buf.truncate(encoded.len);
                let ready = Ready {
                    access_unit: buf,
                    captured_at: Instant::now(),
                    encode_time: encoded.encode_time,
                };
                let _ = shared.submit(ready, encoded.keyframe);
            }
            Ok(Some(_)) => shared.handoff.release(buf),
            Ok(None) => {
                shared.handoff.release(buf);
                return fc_result::Ok;
            }
            Err(_) => {
                shared.handoff.release(buf);
                return fc_result::Encoder;
            }
        }
    }
}

/// The source named by `spec.source`, and whether it paces itself (a camera does; files and
/// the pattern are paced by the loop).
fn open_source(spec: &CameraSpec) -> Result<(Box<dyn CaptureSource>, bool), fc_result> {
    let (kind, path) = spec
        .source
        .split_once(':')
        .unwrap_or((spec.source.as_str(), ""));
    let capture = |_: CaptureError| fc_result::Capture;
    Ok(match kind {
        "pattern" => {
            let (w, h) = (spec.width as usize, spec.height as usize);
            let source =
                PatternSource::new(w, h, spec.fps).map_err(|_| fc_result::InvalidConfig)?;
            (Box::new(source.unpaced()), false)
        }
        "raw" | "y4m" | "v4l2" if path.is_empty() => return Err(fc_result::InvalidConfig),
        "raw" => {
            let format = VideoFormat {
                width: spec.width,
                height: spec.height,
                pixel_format: spec.raw_format,
                frame_rate: (spec.fps, 1),
            };
            let source = RawFileSource::open(path, format).map_err(capture)?;
            (Box::new(source.looping(spec.looping)), false)
        }
        "y4m" => {
            let source = Y4mSource::open(path).map_err(capture)?;
            (Box::new(source.looping(spec.looping)), false)
        }
        #[cfg(target_os = "linux")]
        "v4l2" => {
            use edge::capture::v4l2::{CaptureMemory, V4l2Capture, V4l2CaptureConfig};
            let mut config = V4l2CaptureConfig::new(spec.width, spec.height, PixelFormat::Nv12);
            config.frame_rate = (spec.fps, 1);
            // A hardware encoder takes the camera's buffers without a copy.
            if spec.encoder.starts_with("v4l2:") {
                config.memory = CaptureMemory::DmabufExport;
            }
            (
                Box::new(V4l2Capture::open(path, &config).map_err(capture)?),
                true,
            )
        }
        _ => return Err(fc_result::Unsupported),
    })
}

fn encoder_error(e: EncodeError) -> fc_result {
    match e {
        EncodeError::NotAvailable { .. } => fc_result::Unsupported,
        #[cfg(target_os = "linux")]
        EncodeError::Libv4l2(_) => fc_result::Unsupported,
        EncodeError::InvalidSettings(_) => fc_result::InvalidConfig,
        _ => fc_result::Encoder,
    }
}

/// The encoder named by `spec.encoder`, for the source's format.
fn open_encoder(
    spec: &CameraSpec,
    format: VideoFormat,
) -> Result<Box<dyn VideoEncoder>, fc_result> {
    let mut settings = EncoderSettings::new(format.width, format.height, spec.fps);
    settings.bitrate_bps = spec.bitrate_bps;
    settings.keyframe_interval = spec.keyframe_interval;
    let (kind, path) = spec
        .encoder
        .split_once(':')
        .unwrap_or((spec.encoder.as_str(), ""));
    Ok(match kind {
        #[cfg(feature = "openh264")]
        "openh264" => {
            Box::new(edge::encode::openh264::OpenH264Encoder::new(settings).map_err(encoder_error)?)
        }
        "nvenc" => {
            Box::new(edge::encode::nvenc::NvencEncoder::new(settings).map_err(encoder_error)?)
        }
        #[cfg(target_os = "linux")]
        "v4l2" if !path.is_empty() => {
            use edge::encode::v4l2_m2m::V4l2M2mEncoder;
            use edge::v4l2::FourCc;
            let encoder = V4l2M2mEncoder::new(path, settings, format.pixel_format, FourCc::H264)
                .map_err(encoder_error)?;
            Box::new(encoder)
        }
        _ => return Err(fc_result::Unsupported),
    })
}
