//! CPU cost of the camera's sender path, excluding the encoder, at 720p30 / 2.5 Mbit/s, next to
//! GStreamer doing the same job in the same run:
//!
//! - **ours**: [`Sender::submit`] + [`Sender::poll`] for every access unit of the file —
//!   packetize (RFC 6184), frame (RFC 4571), queue, write to TCP, RTCP — timed with the thread's
//!   CPU clock;
//! - **GStreamer**: `gst-launch-1.0 filesrc ! h264parse ! rtph264pay ! rtpstreampay !
//!   tcpclientsink` on the same Annex-B file, timed as the child process's CPU (user + system)
//!   minus the same pipeline's start-up cost on a one-frame file.
//!
//! Both send to the same loopback sink, which reads and discards. Figures are CPU time per
//! frame and that as a percentage of one core at 30 frames per second. Target: ours ≤ 1 % of a
//! core and below GStreamer's.
//!
//! ```text
//! cargo bench -p flowcloud-edge --bench sender            # a 900-frame clip sent 10 times, medians of 5
//! cargo bench -p flowcloud-edge --bench sender -- --test  # smoke test: 150 frames sent 4 times, one run each
//! ```
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark prints its results"
)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flowcloud_edge::capture::CaptureSource;
use flowcloud_edge::capture::pattern::PatternSource;
use flowcloud_edge::encode::openh264::OpenH264Encoder;
use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
use flowcloud_edge::sender::{Sender, SenderConfig, SenderHandler, Submitted};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const BITRATE: u32 = 2_500_000;
/// Ours must stay under this share of one core.
const TARGET_CORE_SHARE: f64 = 0.01;

struct Quiet;
impl SenderHandler for Quiet {}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    // The clip is sent `passes` times in a row (each pass starts with an IDR), so the work per
    // frame outweighs GStreamer's start-up, whose variation would otherwise swamp it.
    let (frames, passes, repeats) = if smoke { (150, 4, 1) } else { (900, 10, 5) };

    let access_units = encode_clip(frames)?;
    let bytes: usize = access_units.iter().map(Vec::len).sum();
    let dir = std::env::temp_dir().join(format!("flowcloud-sender-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clip = dir.join("clip.h264");
    let first = dir.join("first.h264");
    std::fs::write(&clip, access_units.concat().repeat(passes))?;
    std::fs::write(&first, &access_units[0])?;
    println!(
        "clip: {frames} frames {WIDTH}x{HEIGHT} at {FPS} fps, openh264 {} kbit/s target, {:.2} Mbit/s actual",
        BITRATE / 1000,
        bytes as f64 * 8.0 * f64::from(FPS) / frames as f64 / 1e6
    );

    let sent_frames = frames * passes;
    // Medians over `repeats` runs of each.
    let mut ours = (0..repeats)
        .map(|_| run_ours(&access_units, passes))
        .collect::<Result<Vec<_>>>()?;
    ours.sort_unstable();
    let ours = ours[ours.len() / 2];
    let gst = (0..repeats)
        .map(|_| run_gstreamer(&clip, &first, sent_frames))
        .collect::<Result<Vec<_>>>()
        .map(|mut runs| {
            runs.sort_unstable();
            runs[runs.len() / 2]
        });
    let _ = std::fs::remove_dir_all(&dir);

    let per_frame = |cpu: Duration| cpu.as_secs_f64() / sent_frames as f64;
    let share = |cpu: Duration| per_frame(cpu) * f64::from(FPS);
    println!(
        "ours      : {:7.1} µs CPU/frame = {:6.3} % of one core at 720p30",
        per_frame(ours) * 1e6,
        share(ours) * 100.0
    );
    match &gst {
        Ok(cpu) => {
            println!(
                "GStreamer : {:7.1} µs CPU/frame = {:6.3} % of one core at 720p30 (filesrc ! h264parse ! rtph264pay ! rtpstreampay ! tcpclientsink)",
                per_frame(*cpu) * 1e6,
                share(*cpu) * 100.0
            );
            println!(
                "ratio ours/GStreamer: {:.3}",
                ours.as_secs_f64() / cpu.as_secs_f64()
            );
        }
        Err(e) if smoke && std::env::var_os("CI").is_none() => {
            println!("GStreamer : skipped ({e:#})");
        }
        Err(e) => bail!("GStreamer baseline failed: {e:#}"),
    }
    let ok = share(ours) <= TARGET_CORE_SHARE;
    println!(
        "target ours ≤ {:.1} % of a core: {}",
        TARGET_CORE_SHARE * 100.0,
        if ok { "PASS" } else { "MISSED" }
    );
    Ok(())
}

fn encode_clip(frames: usize) -> Result<Vec<Vec<u8>>> {
    let mut source = PatternSource::new(WIDTH as usize, HEIGHT as usize, FPS)?.unpaced();
    let mut settings = EncoderSettings::new(WIDTH, HEIGHT, FPS);
    settings.bitrate_bps = BITRATE;
    settings.keyframe_interval = 2 * FPS;
    let mut encoder = OpenH264Encoder::new(settings)?;
    let mut out = Vec::with_capacity(8 << 20);
    let mut units = Vec::with_capacity(frames);
    for _ in 0..frames {
        let frame = source.next_frame()?;
        let encoded = encoder.encode(&frame, &mut out)?;
        units.push(out[..encoded.len].to_vec());
    }
    Ok(units)
}

/// A loopback sink that reads and discards; returns its address and the byte counter.
fn sink() -> Result<(SocketAddr, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    });
    Ok((addr, received))
}

fn thread_cpu_time() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

fn run_ours(access_units: &[Vec<u8>], passes: usize) -> Result<Duration> {
    let (addr, received) = sink()?;
    let mut sender = Sender::new(SenderConfig::new(addr, "bench"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sender.is_connected() {
        ensure!(Instant::now() < deadline, "could not connect to the sink");
        sender.poll(Some(Duration::from_millis(5)), &mut Quiet)?;
    }
    let started = thread_cpu_time();
    let mut queued = 0;
    for au in access_units
        .iter()
        .cycle()
        .take(access_units.len() * passes)
    {
        let now = Instant::now();
        if sender.submit(au, now, Duration::ZERO)? == Submitted::Queued {
            queued += 1;
        }
        sender.poll(Some(Duration::ZERO), &mut Quiet)?;
        // Drain so the queue never decides for us (the file is sent whole, as GStreamer does).
        while !sender.is_flushed() {
            sender.poll(Some(Duration::from_millis(1)), &mut Quiet)?;
        }
    }
    let cpu = thread_cpu_time() - started;
    ensure!(
        queued == access_units.len() * passes,
        "ours dropped frames: {queued} of {} queued",
        access_units.len() * passes
    );
    let stats = sender.stats();
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < stats.bytes_sent {
        ensure!(
            Instant::now() < deadline,
            "the sink did not receive everything"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(cpu)
}

/// CPU (user + system) of one `gst-launch-1.0` run sending `file` to a fresh sink.
fn gst_cpu(file: &Path) -> Result<(Duration, u64)> {
    let (addr, received) = sink()?;
    let pipeline = format!(
        "filesrc location={} ! h264parse ! rtph264pay config-interval=-1 mtu=1412 ! rtpstreampay ! tcpclientsink host={} port={}",
        file.display(),
        addr.ip(),
        addr.port()
    );
    let child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split(' '))
        .spawn()
        .context("starting gst-launch-1.0 (install GStreamer: .ci/setup.sh)")?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (status, usage) = wait_with_usage(pid)?;
    ensure!(status == 0, "gst-launch-1.0 exited with {status}");
    // The sink may still be reading the last bytes.
    std::thread::sleep(Duration::from_millis(50));
    Ok((usage, received.load(Ordering::Relaxed)))
}

/// Waits for `pid` and returns its exit code and CPU time, via wait4(2).
fn wait_with_usage(pid: nix::unistd::Pid) -> Result<(i32, Duration)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: nix::libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: both out-pointers are valid for writes for the duration of the call.
    let r = unsafe { nix::libc::wait4(pid.as_raw(), &raw mut status, 0, &raw mut usage) };
    ensure!(
        r == pid.as_raw(),
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    let tv = |t: nix::libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = if nix::libc::WIFEXITED(status) {
        nix::libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, tv(usage.ru_utime) + tv(usage.ru_stime)))
}

fn run_gstreamer(clip: &Path, first: &Path, frames: usize) -> Result<Duration> {
    // Start-up (plugin loading, caps negotiation) is paid once per process; take it out.
    let (startup, _) = gst_cpu(first)?;
    let (total, received) = gst_cpu(clip)?;
    ensure!(received > 0, "GStreamer sent nothing ({frames} frames)");
    Ok(total.saturating_sub(startup))
}
