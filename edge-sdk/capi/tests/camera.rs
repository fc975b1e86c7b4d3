//! `fc_sender_start_camera`: the SDK captures (test pattern, Y4M file) and encodes (openh264)
//! on its own thread; results come back, PLIs reach the encoder, the push calls are refused
//! while it runs, and bad camera configs are refused with their documented codes.

mod common;

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::worker::{StandInWorker, WorkerOptions};
use common::{Seen, config, new_sender, recording_config, stats, test_access_units, wait_for};
use flowcloud_edge::{
    fc_camera_config, fc_camera_config_default, fc_event_kind, fc_result, fc_sender,
    fc_sender_free, fc_sender_push_au, fc_sender_start_camera, fc_sender_stop,
    fc_sender_take_keyframe_request,
};

fn camera_config(source: &CString, width: u32, height: u32, fps: u32) -> fc_camera_config {
    let mut raw = MaybeUninit::<fc_camera_config>::uninit();
    // SAFETY: writable for one config.
    let result = unsafe { fc_camera_config_default(raw.as_mut_ptr()) };
    assert_eq!(result, fc_result::Ok);
    // SAFETY: initialized above.
    let mut c = unsafe { raw.assume_init() };
    c.source = source.as_ptr();
    (c.width, c.height, c.fps) = (width, height, fps);
    c.bitrate_bps = 300_000;
    c.keyframe_interval = 0;
    c
}

fn start(sender: *mut fc_sender, config: &fc_camera_config) -> fc_result {
    // SAFETY: a valid config whose strings outlive the call.
    unsafe { fc_sender_start_camera(sender, config) }
}

#[test]
fn the_sdk_camera_streams_the_test_pattern_and_answers_plis_with_an_idr() {
    let worker = StandInWorker::start(
        "127.0.0.1:0".parse().unwrap(),
        WorkerOptions {
            pli_after: Some(15),
            ..WorkerOptions::default()
        },
    )
    .unwrap();
    let seen = Seen::default();
    let sender = new_sender(&recording_config(&worker.addr.to_string(), &seen));
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.connected));
    let pattern = CString::new("pattern").unwrap();
    let camera = camera_config(&pattern, 160, 120, 60);
    assert_eq!(start(sender, &camera), fc_result::Ok);
    assert!(stats(sender).camera_running);
    // The camera owns the encoder: pushing and taking keyframe requests are refused.
    let idr = &test_access_units()[0].data;
    // SAFETY: `idr` is readable.
    let pushed = unsafe { fc_sender_push_au(sender, idr.as_ptr(), idr.len(), 0, true) };
    assert_eq!(pushed, fc_result::CameraRunning);
    let mut flag = false;
    // SAFETY: `flag` is writable.
    let taken = unsafe { fc_sender_take_keyframe_request(sender, &mut flag) };
    assert_eq!(taken, fc_result::CameraRunning);
    assert_eq!(start(sender, &camera), fc_result::CameraRunning);

    assert!(wait_for(sender, Duration::from_secs(10), |s| s.results >= 40));
    assert_eq!(fc_sender_stop(sender), fc_result::Ok);
    let s = stats(sender);
    assert!(!s.camera_running && s.camera_result == fc_result::Ok);
    assert!(s.camera_frames >= 40 && s.frames_pushed >= 40);
    assert_eq!(s.frames_dropped, 0);
    assert_eq!(s.plis, 1);
    assert_eq!(fc_sender_free(sender), fc_result::Ok);

    let log = worker.stop();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    // The first frame, and the one after the PLI (keyframe_interval 0: no others).
    assert_eq!(log.keyframes, 2, "IDRs: at the start and after the PLI");
    let results = seen.results();
    assert!(results.len() >= 40 && results.iter().all(|r| r.matched));
    assert!(seen.keyframe_events.load(Ordering::Relaxed) >= 2);
}

#[test]
fn a_y4m_file_is_streamed_to_its_end_and_the_camera_reports_it() {
    let worker =
        StandInWorker::start("127.0.0.1:0".parse().unwrap(), WorkerOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("fc-capi-camera-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clip.y4m");
    let (w, h, frames) = (64usize, 48usize, 12u8);
    let mut y4m = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for n in 0..frames {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend(std::iter::repeat_n(n * 20, w * h));
        y4m.extend(std::iter::repeat_n(128, w * h / 2));
    }
    std::fs::write(&path, y4m).unwrap();
    let seen = Seen::default();
    let sender = new_sender(&recording_config(&worker.addr.to_string(), &seen));
    assert!(wait_for(sender, Duration::from_secs(5), |s| s.connected));
    let source = CString::new(format!("y4m:{}", path.display())).unwrap();
    assert_eq!(
        start(sender, &camera_config(&source, 0, 0, 100)),
        fc_result::Ok
    );
    // Generous: under qemu-user on a loaded machine a frame can take a second. The camera
    // paces the file at 100 fps and, like a live camera, drops a frame when every handoff slot
    // is still taken (seen once under qemu on a busy machine): each frame must be sent and
    // answered, or counted as dropped at the handoff.
    assert!(
        wait_for(sender, Duration::from_secs(30), |s| !s.camera_running
            && s.frames_sent + s.dropped_handoff == u64::from(frames)
            && s.results == s.frames_sent),
        "{:?}",
        stats(sender)
    );
    let s = stats(sender);
    assert_eq!(
        s.camera_frames + s.dropped_handoff,
        u64::from(frames),
        "{s:?}"
    );
    assert_eq!(s.frames_dropped, s.dropped_handoff, "{s:?}");
    assert!(s.frames_sent >= 1, "{s:?}");
    assert_eq!(s.camera_result, fc_result::Ok);
    // The camera thread clears `camera_running` itself; the I/O thread delivers the event on
    // its next turn, so the event may follow the statistics by a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !seen.event_kinds().contains(&fc_event_kind::CameraStopped) {
        assert!(
            std::time::Instant::now() < deadline,
            "no CameraStopped event: {:?}",
            seen.event_kinds()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // A camera that ended can be followed by another.
    assert_eq!(
        start(sender, &camera_config(&source, 0, 0, 100)),
        fc_result::Ok
    );
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(worker.stop().errors.is_empty());
}

#[test]
fn bad_camera_configs_are_refused_with_their_codes() {
    let worker =
        StandInWorker::start("127.0.0.1:0".parse().unwrap(), WorkerOptions::default()).unwrap();
    let sender = new_sender(&config(&worker.addr.to_string()));
    let cs = |s: &str| CString::new(s).unwrap();
    let (pattern, bogus) = (cs("pattern"), cs("bogus"));
    let (missing, no_path) = (cs("y4m:/nonexistent/clip.y4m"), cs("raw"));
    let cases: [(&str, fc_camera_config, fc_result); 8] = [
        (
            "unknown source",
            camera_config(&bogus, 160, 120, 30),
            fc_result::Unsupported,
        ),
        (
            "missing file",
            camera_config(&missing, 160, 120, 30),
            fc_result::Capture,
        ),
        (
            "raw without a path",
            camera_config(&no_path, 160, 120, 30),
            fc_result::InvalidConfig,
        ),
        (
            "odd width",
            camera_config(&pattern, 161, 120, 30),
            fc_result::InvalidConfig,
        ),
        (
            "zero fps",
            camera_config(&pattern, 160, 120, 0),
            fc_result::InvalidConfig,
        ),
        (
            "unknown encoder",
            fc_camera_config {
                encoder: bogus.as_ptr(),
                ..camera_config(&pattern, 160, 120, 30)
            },
            fc_result::Unsupported,
        ),
        (
            "raw format 7",
            fc_camera_config {
                raw_format: 7,
                ..camera_config(&pattern, 160, 120, 30)
            },
            fc_result::InvalidConfig,
        ),
        (
            "NULL encoder",
            fc_camera_config {
                encoder: std::ptr::null(),
                ..camera_config(&pattern, 160, 120, 30)
            },
            fc_result::NullArgument,
        ),
    ];
    for (name, camera, expected) in cases {
        assert_eq!(start(sender, &camera), expected, "{name}");
        assert!(!stats(sender).camera_running, "{name}");
    }
    assert_eq!(fc_sender_free(sender), fc_result::Ok);
    drop(worker);
}
