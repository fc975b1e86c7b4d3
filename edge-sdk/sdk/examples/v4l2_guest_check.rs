//! Checks the SDK's V4L2 paths against real kernel drivers: `vivid` (a virtual camera) through
//! `V4l2Capture`, and `vicodec` (a virtual stateful FWHT encoder, loaded with `multiplanar=1`)
//! through `V4l2M2mEncoder`, including the zero-copy DMABUF hand-over between the two. The
//! encoder checks run twice: with raw ioctls, and with the device opened through
//! `libv4l2.so.0` (checks named `libv4l2 …`), the path JetPack 5's encoder takes; the stock
//! libv4l2 passes the calls through to vicodec.
//!
//! `tests/v4l2-vm/run.sh` boots a kernel with both drivers in qemu and runs this there, with the
//! C libraries it and libv4l2 need; it needs those drivers, so it is not part of `cargo test`. Prints one `PASS`, `FAIL`
//! or `SKIP` line per check and ends with `v4l2_guest_check: PASS` (exit 0) or
//! `v4l2_guest_check: FAIL` (exit 1).
//!
//! ```text
//! v4l2_guest_check [frames]      # frames per check, at least 10 (default 12)
//! ```
#![allow(
    clippy::print_stdout,
    reason = "a test program: its verdict lines are its output"
)]

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    println!("v4l2_guest_check: SKIP (V4L2 is Linux only)");
    std::process::ExitCode::SUCCESS
}

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::Path;
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use flowcloud_edge::capture::DmabufPlane;
    use flowcloud_edge::capture::v4l2::{CaptureMemory, V4l2Capture, V4l2CaptureConfig};
    use flowcloud_edge::capture::{CaptureError, CaptureSource, CapturedFrame};
    use flowcloud_edge::encode::jetson::JetsonTuning;
    use flowcloud_edge::encode::v4l2_m2m::{
        ControlValue, InputMemory, M2mOptions, NamedControl, V4l2M2mEncoder,
    };
    use flowcloud_edge::encode::{EncoderSettings, VideoEncoder};
    use flowcloud_edge::picture::{Picture, PixelFormat};
    use flowcloud_edge::v4l2::{Access, Capability, Device, FourCc, Libv4l2, list_devices};

    const WIDTH: u32 = 640;
    const HEIGHT: u32 = 480;
    /// vicodec accepts GOP sizes 1 to 16; 5 puts several keyframes in a short run.
    const GOP: u32 = 5;
    const FWHT_MAGIC: [u8; 8] = [0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff];

    #[derive(Default)]
    struct Report {
        passed: u32,
        failed: u32,
        skipped: u32,
    }

    impl Report {
        fn pass(&mut self, check: &str, detail: impl AsRef<str>) {
            self.passed += 1;
            println!("PASS {check}: {}", detail.as_ref());
        }

        fn fail(&mut self, check: &str, detail: impl AsRef<str>) {
            self.failed += 1;
            println!("FAIL {check}: {}", detail.as_ref());
        }

        fn skip(&mut self, check: &str, reason: impl AsRef<str>) {
            self.skipped += 1;
            println!("SKIP {check}: {}", reason.as_ref());
        }

        fn check(&mut self, check: &str, ok: bool, detail: impl AsRef<str>) -> bool {
            if ok {
                self.pass(check, detail);
            } else {
                self.fail(check, detail);
            }
            ok
        }
    }

    pub(super) fn main() -> ExitCode {
        let frames = std::env::args()
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(12)
            .max(10);
        let started = Instant::now();
        let mut report = Report::default();

        let devices = match list_devices() {
            Ok(devices) => devices,
            Err(e) => {
                report.fail("list /dev/video*", e.to_string());
                Vec::new()
            }
        };
        for info in &devices {
            let c = &info.capability;
            println!(
                "  {}: driver {}, card \"{}\", caps {:#010x}",
                info.path.display(),
                c.driver,
                c.card,
                c.node_caps()
            );
        }
        // Two vivid instances: single-planar (most cameras) and multi-planar (NV12M).
        let vivid = |planar: u32| {
            devices
                .iter()
                .find(|info| {
                    let c = &info.capability;
                    c.driver == "vivid"
                        && c.is_video_capture()
                        && c.has_streaming()
                        && c.node_caps() & planar != 0
                })
                .map(|info| info.path.clone())
        };
        let Some(camera) = vivid(Capability::VIDEO_CAPTURE) else {
            report.fail(
                "find vivid",
                "no streaming single-planar vivid capture node (QUERYCAP)",
            );
            return finish(&report, started);
        };
        report.pass("find vivid", camera.display().to_string());
        let multi_planar_camera = vivid(Capability::VIDEO_CAPTURE_MPLANE);
        report.check(
            "find multi-planar vivid",
            multi_planar_camera.is_some(),
            format!("{multi_planar_camera:?}"),
        );

        for format in [PixelFormat::Nv12, PixelFormat::Yuyv] {
            for memory in [CaptureMemory::Mmap, CaptureMemory::DmabufExport] {
                capture_check(&mut report, &camera, format, memory, frames);
            }
        }

        match V4l2M2mEncoder::find_device(FourCc::FWHT, PixelFormat::Nv12) {
            Ok(Some(encoder)) => {
                report.pass("find vicodec encoder", encoder.display().to_string());
                encoder_check(&mut report, &camera, &encoder, frames, &Access::Kernel);
                named_controls_check(&mut report, &camera, &encoder);
                zero_copy_check(&mut report, &camera, &encoder, frames, &Access::Kernel);
                if let Some(multi_planar) = &multi_planar_camera {
                    dmabuf_per_plane_check(&mut report, multi_planar, &encoder, frames);
                }
                match Libv4l2::load() {
                    Ok(lib) => {
                        let mapped = std::fs::read_to_string("/proc/self/maps")
                            .is_ok_and(|maps| maps.contains("/libv4l2.so"));
                        report.check(
                            "load libv4l2",
                            mapped,
                            format!("{} loaded, in /proc/self/maps: {mapped}", lib.name()),
                        );
                        let access = Access::Libv4l2(Arc::new(lib));
                        encoder_check(&mut report, &camera, &encoder, frames, &access);
                        zero_copy_check(&mut report, &camera, &encoder, frames, &access);
                    }
                    Err(e) => report.fail("load libv4l2", e.to_string()),
                }
            }
            Ok(None) => report.fail(
                "find vicodec encoder",
                "no M2M multi-planar node producing FWHT from NV12",
            ),
            Err(e) => report.fail("find vicodec encoder", e.to_string()),
        }
        finish(&report, started)
    }

    fn finish(report: &Report, started: Instant) -> ExitCode {
        let verdict = if report.failed == 0 { "PASS" } else { "FAIL" };
        println!(
            "v4l2_guest_check: {verdict} ({} passed, {} failed, {} skipped, {:.1} s)",
            report.passed,
            report.failed,
            report.skipped,
            started.elapsed().as_secs_f64()
        );
        if report.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn capture_config(format: PixelFormat, memory: CaptureMemory) -> V4l2CaptureConfig {
        let mut config = V4l2CaptureConfig::new(WIDTH, HEIGHT, format);
        config.memory = memory;
        // Generous: under qemu's instruction emulation vivid renders far below real time.
        config.timeout = Duration::from_secs(10);
        config
    }

    /// FNV-1a over every plane's bytes.
    fn checksum(picture: &Picture<'_>) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        for plane in picture.planes() {
            for &byte in plane.data {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    /// Rows of each plane of a picture of this format.
    fn rows(format: PixelFormat, height: usize) -> [usize; 3] {
        match format {
            PixelFormat::Yuyv => [height, 0, 0],
            PixelFormat::Nv12 => [height, height / 2, 0],
            PixelFormat::I420 => [height, height / 2, height / 2],
        }
    }

    /// (a) `V4l2Capture` on vivid: negotiation, plane sizes against the negotiated format,
    /// changing frames, sequence numbers, timestamps, and the DMABUF for export mode.
    fn capture_check(
        report: &mut Report,
        camera: &Path,
        format: PixelFormat,
        memory: CaptureMemory,
        frames: usize,
    ) {
        let name = format!("capture {format}/{memory:?}");
        let mut capture = match V4l2Capture::open(camera, &capture_config(format, memory)) {
            Ok(capture) => capture,
            Err(CaptureError::Device(e))
                if memory == CaptureMemory::DmabufExport && e.call == "VIDIOC_EXPBUF" =>
            {
                report.skip(&name, format!("the driver cannot export DMABUFs: {e}"));
                return;
            }
            Err(e) => {
                report.fail(&name, format!("open: {e}"));
                return;
            }
        };
        let device_format = *capture.device_format();
        let video = capture.format();
        let planes_desc: Vec<String> = device_format
            .planes()
            .iter()
            .map(|p| format!("bytesperline {} sizeimage {}", p.bytesperline, p.sizeimage))
            .collect();
        println!(
            "  {name}: {} {}x{} ({}), {} buffers, {}/{} fps",
            device_format.fourcc,
            device_format.width,
            device_format.height,
            planes_desc.join("; "),
            capture.buffer_count(),
            video.frame_rate.0,
            video.frame_rate.1
        );
        if !report.check(
            &format!("{name} negotiation"),
            video.pixel_format == format && (video.width, video.height) == (WIDTH, HEIGHT),
            format!(
                "asked {format} {WIDTH}x{HEIGHT}, driver set {} {}x{}",
                device_format.fourcc, video.width, video.height
            ),
        ) {
            return;
        }

        let bytesperline = device_format.planes()[0].bytesperline as usize;
        let sizeimage = device_format.planes()[0].sizeimage as usize;
        let plane_rows = rows(format, HEIGHT as usize);
        let mut checksums = Vec::with_capacity(frames);
        let mut problems = Vec::new();
        let mut last_sequence = None;
        let mut last_time: Option<Instant> = None;
        let started = Instant::now();
        for n in 0..frames {
            let frame = match capture.next_frame() {
                Ok(frame) => frame,
                Err(e) => {
                    problems.push(format!("frame {n}: {e}"));
                    break;
                }
            };
            let picture = frame.picture;
            let mut total = 0;
            for (index, plane) in picture.planes().iter().enumerate() {
                // Contiguous NV12/YUYV/I420: luma (and NV12 chroma) rows at the driver's
                // bytesperline, I420 chroma at half of it.
                let stride = if format == PixelFormat::I420 && index > 0 {
                    bytesperline / 2
                } else {
                    bytesperline
                };
                let expected = stride * plane_rows[index];
                if plane.stride != stride || plane.data.len() != expected {
                    problems.push(format!(
                        "frame {n} plane {index}: stride {} len {}, expected stride {stride} len {expected}",
                        plane.stride,
                        plane.data.len()
                    ));
                }
                total += plane.data.len();
            }
            if total != sizeimage {
                problems.push(format!(
                    "frame {n}: planes hold {total} bytes, sizeimage is {sizeimage}"
                ));
            }
            if frame.dmabuf.is_some() != (memory == CaptureMemory::DmabufExport) {
                problems.push(format!(
                    "frame {n}: dmabuf is {:?} in {memory:?} mode",
                    frame.dmabuf
                ));
            }
            if let Some(dmabuf) = &frame.dmabuf {
                if let Err(e) = dmabuf_holds_planes(&frame.picture, dmabuf) {
                    problems.push(format!("frame {n}: {e}"));
                }
                if !dmabuf.is_shared() {
                    problems.push(format!(
                        "frame {n}: a one-buffer format in several DMABUFs: {dmabuf:?}"
                    ));
                }
            }
            if last_sequence.is_some_and(|last| frame.sequence <= last) {
                problems.push(format!(
                    "frame {n}: sequence {} after {last_sequence:?}",
                    frame.sequence
                ));
            }
            last_sequence = Some(frame.sequence);
            let now = Instant::now();
            if frame.captured_at > now
                || now.duration_since(frame.captured_at) > Duration::from_secs(5)
            {
                problems.push(format!(
                    "frame {n}: captured_at is {:?} from now",
                    now.checked_duration_since(frame.captured_at)
                ));
            }
            if last_time.is_some_and(|last| frame.captured_at <= last) {
                problems.push(format!("frame {n}: timestamp does not advance"));
            }
            last_time = Some(frame.captured_at);
            checksums.push(checksum(&picture));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let grabbed = checksums.len();
        let changing = checksums.windows(2).filter(|w| w[0] != w[1]).count();
        let ok = problems.is_empty() && grabbed == frames && changing == grabbed.saturating_sub(1);
        let detail = format!(
            "{grabbed} frames in {elapsed:.2} s, {changing}/{} consecutive checksums differ, last sequence {:?}{}",
            grabbed.saturating_sub(1),
            last_sequence,
            listed(&problems)
        );
        report.check(&name, ok, detail);
    }

    /// A check's name, marked for the libv4l2 run.
    fn named(access: &Access, check: &str) -> String {
        match access {
            Access::Kernel => check.to_owned(),
            Access::Libv4l2(_) => format!("libv4l2 {check}"),
        }
    }

    /// Opens vicodec through `access`.
    fn open_vicodec(
        encoder_path: &Path,
        format: PixelFormat,
        access: &Access,
    ) -> Result<V4l2M2mEncoder, String> {
        let options = M2mOptions {
            access: access.clone(),
            ..M2mOptions::default()
        };
        let encoder = V4l2M2mEncoder::with_options(
            encoder_path,
            encoder_settings(),
            format,
            FourCc::FWHT,
            &options,
        )
        .map_err(|e| e.to_string())?;
        // The device must really have been opened the way asked for.
        if encoder.access() == access.kind() {
            Ok(encoder)
        } else {
            Err(format!(
                "opened with {} access, not {}",
                encoder.access(),
                access.kind()
            ))
        }
    }

    fn encoder_settings() -> EncoderSettings {
        let mut settings = EncoderSettings::new(WIDTH, HEIGHT, 30);
        settings.keyframe_interval = GOP;
        settings
    }

    /// (d) Controls looked up by name, as the Jetson encoder's NVIDIA controls are: the walk of
    /// vicodec's control list, vicodec's own controls found by the names it reports and set,
    /// every NVIDIA control reported absent (not an error), `NV12M` asked for first and the
    /// fall back to `NV12` when the driver does not take it, and a frame encoded after all that.
    fn named_controls_check(report: &mut Report, camera: &Path, encoder_path: &Path) {
        let table = match Device::open(encoder_path).and_then(|device| device.controls()) {
            Ok(table) => table,
            Err(e) => {
                report.fail("control walk", e.to_string());
                return;
            }
        };
        for control in table.controls() {
            println!(
                "  control {:#010x} \"{}\" ({}) {:?} {}..={} default {}",
                control.id,
                control.name,
                control.short_name(),
                control.kind,
                control.minimum,
                control.maximum,
                control.default
            );
        }
        let gop = table.by_name("video_gop_size");
        report.check(
            "control walk",
            gop.is_some_and(|c| c.id == 0x0099_09cb),
            format!(
                "{} controls; \"video_gop_size\" is {:?}",
                table.controls().len(),
                gop.map(|c| format!("{:#010x} \"{}\"", c.id, c.name))
            ),
        );

        let settings = encoder_settings();
        let mut controls = vec![
            NamedControl {
                label: "vicodec GOP size (by name)",
                names: &["Video GOP Size"],
                id: None,
                value: ControlValue::Int(4),
            },
            NamedControl {
                label: "vicodec I-frame QP (by name)",
                names: &["fwht_i_frame_qp_value"],
                id: None,
                value: ControlValue::Int(20),
            },
        ];
        let nvidia = JetsonTuning {
            max_performance: true,
            slice_mb_rows: 2,
            intra_refresh_frames: 30,
        }
        .controls(&settings);
        controls.extend(nvidia.iter().cloned());
        let options = M2mOptions {
            controls,
            prefer_multi_buffer_input: true,
            ..M2mOptions::default()
        };
        let mut encoder = match V4l2M2mEncoder::with_options(
            encoder_path,
            settings,
            PixelFormat::Nv12,
            FourCc::FWHT,
            &options,
        ) {
            Ok(encoder) => encoder,
            Err(e) => {
                report.fail("named controls: encoder start", e.to_string());
                return;
            }
        };
        for applied in encoder.applied_controls() {
            println!(
                "  applied {} = {} as \"{}\" ({:#010x})",
                applied.label, applied.value, applied.driver_name, applied.id
            );
        }
        for skipped in encoder.skipped_controls() {
            println!(
                "  warning: {} = {} not set: {}",
                skipped.name, skipped.value, skipped.reason
            );
        }
        let applied: Vec<_> = encoder.applied_controls().iter().map(|a| a.label).collect();
        report.check(
            "named controls: present ones used",
            applied == ["vicodec GOP size (by name)", "vicodec I-frame QP (by name)"],
            format!("applied {applied:?}"),
        );
        let absent: Vec<_> = nvidia
            .iter()
            .filter(|wanted| {
                encoder.skipped_controls().iter().any(|s| {
                    s.name == wanted.label && s.reason.starts_with("not offered by the driver")
                })
            })
            .map(|c| c.label)
            .collect();
        report.check(
            "named controls: NVIDIA ones reported absent",
            absent.len() == nvidia.len(),
            format!("{} of {} reported: {absent:?}", absent.len(), nvidia.len()),
        );
        let input = encoder.input_format().fourcc;
        report.check(
            "named controls: NV12M first, NV12 taken",
            input == FourCc::NV12,
            format!("vicodec set the input to {input}"),
        );
        let frame = V4l2Capture::open(
            camera,
            &capture_config(PixelFormat::Nv12, CaptureMemory::Mmap),
        )
        .map_err(|e| e.to_string())
        .and_then(|mut capture| {
            let mut out = Vec::with_capacity(PixelFormat::Nv12.frame_len(640, 480) + 4096);
            let frame = capture.next_frame().map_err(|e| e.to_string())?;
            encoder
                .encode(&frame, &mut out)
                .map_err(|e| e.to_string())
                .map(|encoded| (encoded, fwht_problem(&out)))
        });
        match frame {
            Ok((encoded, None)) => report.pass(
                "named controls: encodes",
                format!("{} bytes, keyframe {}", encoded.len, encoded.keyframe),
            ),
            Ok((_, Some(problem))) => report.fail("named controls: encodes", problem),
            Err(e) => report.fail("named controls: encodes", e),
        }
    }

    /// What is wrong with a coded FWHT frame, if anything.
    fn fwht_problem(data: &[u8]) -> Option<String> {
        if data.get(..8) != Some(&FWHT_MAGIC[..]) {
            return Some(format!("no FWHT header magic in {} bytes", data.len()));
        }
        let word = |at: usize| {
            data.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match (word(12), word(16)) {
            (Some(WIDTH), Some(HEIGHT)) => None,
            (w, h) => Some(format!("FWHT header says {w:?}x{h:?}")),
        }
    }

    /// (b) `V4l2M2mEncoder` on vicodec with copied NV12 frames from vivid: start, steady state,
    /// keyframes, drain, restart.
    fn encoder_check(
        report: &mut Report,
        camera: &Path,
        encoder_path: &Path,
        frames: usize,
        access: &Access,
    ) {
        let mut encoder = match open_vicodec(encoder_path, PixelFormat::Nv12, access) {
            Ok(encoder) => encoder,
            Err(e) => {
                report.fail(&named(access, "encoder start"), e);
                return;
            }
        };
        let input = encoder.input_format();
        let coded = encoder.coded_format();
        report.pass(
            &named(access, "encoder start"),
            format!(
                "{} access, input {} {}x{}, coded {} with {}-byte buffers",
                encoder.access(),
                input.fourcc,
                input.width,
                input.height,
                coded.fourcc,
                coded.planes().first().map_or(0, |p| p.sizeimage)
            ),
        );
        for skipped in encoder.skipped_controls() {
            println!(
                "  note: skipped {} = {}: {}",
                skipped.name, skipped.value, skipped.reason
            );
        }
        let gop_taken = !encoder
            .skipped_controls()
            .iter()
            .any(|s| s.name == "V4L2_CID_MPEG_VIDEO_GOP_SIZE");
        report.check(
            &named(access, "encoder GOP control"),
            gop_taken,
            format!("V4L2_CID_MPEG_VIDEO_GOP_SIZE = {GOP} accepted: {gop_taken}"),
        );

        let mut capture = match V4l2Capture::open(
            camera,
            &capture_config(PixelFormat::Nv12, CaptureMemory::Mmap),
        ) {
            Ok(capture) => capture,
            Err(e) => {
                report.fail(&named(access, "encoder input (vivid NV12)"), e.to_string());
                return;
            }
        };
        let mut out = Vec::with_capacity(PixelFormat::Nv12.frame_len(640, 480) + 4096);
        let forced_at = GOP as usize + 2; // not a GOP boundary
        let forced = encoder.supports_forced_keyframes();
        let mut keyframes = Vec::new();
        let mut problems = Vec::new();
        let mut bytes = 0;
        let started = Instant::now();
        for n in 0..frames {
            if n == forced_at {
                encoder.request_keyframe();
            }
            let result = capture
                .next_frame()
                .map_err(|e| e.to_string())
                .and_then(|frame| encoder.encode(&frame, &mut out).map_err(|e| e.to_string()));
            match result {
                Ok(encoded) => {
                    println!(
                        "  frame {n:2}: {:6} bytes in {:5.1} ms{}",
                        encoded.len,
                        encoded.encode_time.as_secs_f64() * 1e3,
                        if encoded.keyframe { ", keyframe" } else { "" }
                    );
                    if encoded.len != out.len() || encoded.len == 0 {
                        problems.push(format!("frame {n}: len {} vs {}", encoded.len, out.len()));
                    }
                    if let Some(problem) = fwht_problem(&out) {
                        problems.push(format!("frame {n}: {problem}"));
                    }
                    bytes += encoded.len;
                    if encoded.keyframe {
                        keyframes.push(n);
                    }
                }
                Err(e) => {
                    problems.push(format!("frame {n}: {e}"));
                    break;
                }
            }
        }
        report.check(
            &named(access, "encoder steady state"),
            problems.is_empty(),
            format!(
                "{frames} NV12 frames -> {bytes} bytes of FWHT in {:.2} s{}",
                started.elapsed().as_secs_f64(),
                listed(&problems)
            ),
        );
        let gop_frames: Vec<usize> = (0..frames).step_by(GOP as usize).collect();
        report.check(
            &named(access, "encoder GOP keyframes"),
            gop_frames.iter().all(|n| keyframes.contains(n)),
            format!("keyframes at {keyframes:?}, GOP boundaries {gop_frames:?}"),
        );
        if forced {
            report.check(
                &named(access, "encoder forced keyframe"),
                keyframes.contains(&forced_at),
                format!("requested before frame {forced_at}, keyframes at {keyframes:?}"),
            );
        } else {
            report.skip(
                &named(access, "encoder forced keyframe"),
                "the driver has no V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME (vicodec does not), so \
                 request_keyframe cannot take effect; keyframes come from the GOP (checked above)",
            );
        }

        // Drain: ENC_CMD_STOP, buffers until the LAST one, then nothing more.
        let started = Instant::now();
        let mut pending = 0;
        let mut drained = false;
        let mut error = None;
        for _ in 0..16 {
            match encoder.drain(&mut out) {
                Ok(Some(_)) => pending += 1,
                Ok(None) => {
                    drained = true;
                    break;
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        report.check(
            &named(access, "encoder drain"),
            drained && encoder.is_drained() && error.is_none(),
            format!(
                "ENC_CMD_STOP -> {pending} pending frames, then the LAST buffer (seen: {}) in {:.1} ms{}",
                encoder.is_drained(),
                started.elapsed().as_secs_f64() * 1e3,
                error.map(|e| format!("; {e}")).unwrap_or_default()
            ),
        );
        let again = encoder.drain(&mut out);
        report.check(
            &named(access, "encoder drained queue is done"),
            matches!(again, Ok(None)) && out.is_empty(),
            format!("a second drain returns {again:?}"),
        );

        // A new stream after the drain (CAPTURE restarted).
        let mut problems = Vec::new();
        for n in 0..2 {
            let result = capture
                .next_frame()
                .map_err(|e| e.to_string())
                .and_then(|frame| encoder.encode(&frame, &mut out).map_err(|e| e.to_string()));
            match result {
                Ok(encoded) => {
                    if let Some(problem) = fwht_problem(&out[..encoded.len]) {
                        problems.push(format!("frame {n}: {problem}"));
                    }
                }
                Err(e) => problems.push(format!("frame {n}: {e}")),
            }
        }
        report.check(
            &named(access, "encoder restart after drain"),
            problems.is_empty() && !encoder.is_drained(),
            if problems.is_empty() {
                "2 more frames encoded".to_owned()
            } else {
                problems.join("; ")
            },
        );
    }

    /// Zero copy: vivid's exported DMABUFs imported by vicodec must encode to exactly the bytes
    /// that copying the same pictures gives.
    /// Checks that each picture plane's bytes are in its DMABUF where the frame says, read
    /// through a mapping of the DMABUF itself.
    fn dmabuf_holds_planes(
        picture: &Picture<'_>,
        dmabuf: &flowcloud_edge::capture::FrameDmabuf<'_>,
    ) -> Result<(), String> {
        if dmabuf.len() != picture.planes().len() {
            return Err(format!(
                "{} DMABUF planes for {} picture planes",
                dmabuf.len(),
                picture.planes().len()
            ));
        }
        for (index, (plane, at)) in picture.planes().iter().zip(dmabuf.planes()).enumerate() {
            let bytes =
                dmabuf_bytes(at, plane.data.len()).map_err(|e| format!("plane {index}: {e}"))?;
            if bytes != plane.data {
                return Err(format!(
                    "plane {index}: the DMABUF at byte {} differs from the picture",
                    at.offset
                ));
            }
        }
        Ok(())
    }

    /// `len` bytes of a DMABUF from the plane's offset, through a read-only mapping.
    fn dmabuf_bytes(plane: DmabufPlane<'_>, len: usize) -> Result<Vec<u8>, String> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
        let Some(size) = std::num::NonZeroUsize::new(plane.offset + len) else {
            return Ok(Vec::new());
        };
        // SAFETY: a fresh shared read-only mapping, read below and unmapped before returning.
        let map = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                plane.fd,
                0,
            )
        }
        .map_err(|errno| format!("mmap of the DMABUF: {errno}"))?;
        // SAFETY: the mapping is `size` bytes long and stays until munmap.
        let bytes = unsafe {
            std::slice::from_raw_parts(map.as_ptr().cast::<u8>().add(plane.offset), len).to_vec()
        };
        // SAFETY: unmaps exactly the mapping made above, which nothing else refers to.
        unsafe { munmap(map, size.get()) }.map_err(|errno| format!("munmap: {errno}"))?;
        Ok(bytes)
    }

    /// Both encoders of a comparison, or the failure reported.
    fn open_vicodec_pair(
        report: &mut Report,
        name: &str,
        encoder_path: &Path,
        format: PixelFormat,
        access: &Access,
    ) -> Option<(V4l2M2mEncoder, V4l2M2mEncoder)> {
        match (
            open_vicodec(encoder_path, format, access),
            open_vicodec(encoder_path, format, access),
        ) {
            (Ok(a), Ok(b)) => Some((a, b)),
            (Err(e), _) | (_, Err(e)) => {
                report.fail(name, format!("encoder: {e}"));
                None
            }
        }
    }

    /// Encodes `frames` frames from `capture` twice: as captured, DMABUFs offered, with
    /// `offered`, and as the same picture without them with `copying`, which has to copy.
    /// Returns how many encoded byte-identical and passed `check`, and what went wrong.
    fn encode_offered_and_copied(
        capture: &mut V4l2Capture,
        offered: &mut V4l2M2mEncoder,
        copying: &mut V4l2M2mEncoder,
        frames: usize,
        mut check: impl FnMut(&CapturedFrame<'_>) -> Result<(), String>,
    ) -> (usize, Vec<String>) {
        let capacity = capture.format().pixel_format.frame_len(640, 480) + 4096;
        let (mut out_a, mut out_b) = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
        let mut problems = Vec::new();
        let mut good = 0;
        for n in 0..frames {
            let frame = match capture.next_frame() {
                Ok(frame) => frame,
                Err(e) => {
                    problems.push(format!("frame {n}: {e}"));
                    break;
                }
            };
            let checked = check(&frame).map_err(|e| problems.push(format!("frame {n}: {e}")));
            let copy = CapturedFrame::new(frame.picture, frame.captured_at, frame.sequence);
            match (
                offered.encode(&frame, &mut out_a),
                copying.encode(&copy, &mut out_b),
            ) {
                (Ok(_), Ok(_)) if out_a == out_b => good += usize::from(checked.is_ok()),
                (Ok(a), Ok(b)) => problems.push(format!(
                    "frame {n}: {} bytes offered vs {} copied, contents differ",
                    a.len, b.len
                )),
                (Err(e), _) | (_, Err(e)) => {
                    problems.push(format!("frame {n}: {e}"));
                    break;
                }
            }
        }
        (good, problems)
    }

    /// "; " and the problems, or nothing.
    fn listed(problems: &[String]) -> String {
        if problems.is_empty() {
            String::new()
        } else {
            format!("; {}", problems.join("; "))
        }
    }

    /// (e) NV12M from the multi-planar vivid with a DMABUF per plane: each DMABUF holds its
    /// plane. vicodec takes NV12 in one buffer, so it must refuse to import them, say why, and
    /// encode copies byte-identical to an encoder never offered a DMABUF.
    fn dmabuf_per_plane_check(
        report: &mut Report,
        camera: &Path,
        encoder_path: &Path,
        frames: usize,
    ) {
        let name = "NV12M DMABUF per plane";
        let mut config = capture_config(PixelFormat::Nv12, CaptureMemory::DmabufExport);
        config.multi_buffer = true;
        let mut capture = match V4l2Capture::open(camera, &config) {
            Ok(capture) => capture,
            Err(e) => {
                report.fail(name, format!("vivid: {e}"));
                return;
            }
        };
        let fourcc = capture.device_format().fourcc;
        if fourcc != FourCc::NV12M {
            report.fail(name, format!("asked for NV12M first, vivid set {fourcc}"));
            return;
        }
        let Some((mut offered, mut copying)) = open_vicodec_pair(
            report,
            name,
            encoder_path,
            PixelFormat::Nv12,
            &Access::Kernel,
        ) else {
            return;
        };
        let (good, mut problems) =
            encode_offered_and_copied(&mut capture, &mut offered, &mut copying, frames, |frame| {
                match &frame.dmabuf {
                    Some(dmabuf) if dmabuf.len() == 2 && !dmabuf.is_shared() => {
                        dmabuf_holds_planes(&frame.picture, dmabuf)
                    }
                    other => Err(format!("expected two DMABUFs, got {other:?}")),
                }
            });
        let refused = offered.dmabuf_refused().unwrap_or("");
        if offered.input_memory() != Some(InputMemory::Copy)
            || !refused.contains("plane 1 is in a DMABUF of its own")
        {
            problems.push(format!(
                "vicodec took {:?}, refusal: {refused:?}",
                offered.input_memory()
            ));
        }
        report.check(
            name,
            problems.is_empty() && good == frames,
            format!(
                "{good}/{frames} NV12M frames: each plane read back from its own DMABUF, encoded as copies identical to never-offered ones; vicodec said \"{refused}\"{}",
                listed(&problems)
            ),
        );
    }

    fn zero_copy_check(
        report: &mut Report,
        camera: &Path,
        encoder_path: &Path,
        frames: usize,
        access: &Access,
    ) {
        let name = &named(access, "encoder DMABUF import");
        let format = PixelFormat::Yuyv;
        let mut capture =
            match V4l2Capture::open(camera, &capture_config(format, CaptureMemory::DmabufExport)) {
                Ok(capture) => capture,
                Err(CaptureError::Device(e)) if e.call == "VIDIOC_EXPBUF" => {
                    report.skip(name, format!("vivid cannot export DMABUFs: {e}"));
                    return;
                }
                Err(e) => {
                    report.fail(name, format!("vivid: {e}"));
                    return;
                }
            };
        let Some((mut zero_copy, mut copying)) =
            open_vicodec_pair(report, name, encoder_path, format, access)
        else {
            return;
        };
        let (identical, mut problems) =
            encode_offered_and_copied(&mut capture, &mut zero_copy, &mut copying, frames, |_| {
                Ok(())
            });
        let memories = (zero_copy.input_memory(), copying.input_memory());
        if memories.0 != Some(InputMemory::Dmabuf) {
            problems.push(format!(
                "input was {:?}, not imported: {}",
                memories.0,
                zero_copy.dmabuf_refused().unwrap_or("no reason given")
            ));
        }
        if memories.1 != Some(InputMemory::Copy) {
            problems.push(format!("the copying encoder used {:?}", memories.1));
        }
        report.check(
            name,
            problems.is_empty() && identical == frames,
            format!(
                "{identical}/{frames} YUYV frames encode byte-identical from vivid's DMABUFs ({:?}) and from copies ({:?}){}",
                memories.0,
                memories.1,
                listed(&problems)
            ),
        );
    }
}
