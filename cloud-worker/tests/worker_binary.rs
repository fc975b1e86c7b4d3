//! The `flowcloud-worker` binary as a child process: its command line, the ready path (HTTP
//! endpoints, a camera streaming real H.264 and getting results back, a clean exit on SIGTERM),
//! and the not-ready path (a model that cannot be used leaves the worker up, explaining why on
//! `/readyz`).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::handshake;
use flowcloud_core::framing::Deframer;
use flowcloud_core::results::ResultView;
use flowcloud_core::rtcp::{self, RtcpPacket};
use flowcloud_tests::temp_dir::TempDir;
use flowcloud_tests::worker_process::http_get;
use flowcloud_worker::config::WorkerConfig;

const BIN: &str = env!("CARGO_BIN_EXE_flowcloud-worker");
const TINY_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../engines/tiny/tiny-seg.onnx");
const TINY_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../engines/tiny/tiny-seg.toml");
/// 10 frames of 160x120 H.264 as RFC 4571-framed RTP, one STAP-A per access unit, SSRC
/// 0x12345678 (edge-sdk/core/testdata/gstreamer/README.md).
const BALL_RTP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../edge-sdk/core/testdata/gstreamer/ball-160x120-mtu9000.rtp"
);
const BALL_SSRC: u32 = 0x1234_5678;
const BALL_PIXELS: u64 = 160 * 120;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary without any `FLOWCLOUD_*` variable from the environment the tests run in.
fn worker_command() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FLOWCLOUD_") {
            command.env_remove(name);
        }
    }
    command
}

/// A running worker, killed on drop; its log goes to a file in its temp dir.
struct Worker {
    child: Child,
    http: SocketAddr,
    media: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Worker {
    /// Starts the worker on free ports with `model` and `args`, in `dir`, with `env` set.
    fn start(dir: TempDir, model: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let (http, media) = (free_port(), free_port());
        let log = dir.path().join("worker.log");
        let mut command = worker_command();
        command
            .arg("--listen-http")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--listen-media")
            .arg(format!("127.0.0.1:{media}"))
            .arg("--model")
            .arg(model)
            .args(["--model-threads", "1", "--max-wait-ms", "0"])
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (name, value) in env {
            command.env(name, value);
        }
        Self {
            child: command.spawn().unwrap(),
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            media: SocketAddr::from(([127, 0, 0, 1], media)),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    /// Polls `path` until `done` accepts the reply, or panics after `timeout`.
    fn poll(
        &mut self,
        path: &str,
        timeout: Duration,
        done: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "worker exited ({status}) while polling {path}\n{}",
                    self.log()
                );
            }
            if let Ok((status, body)) = http_get(self.http, path) {
                if done(status, &body) {
                    return (status, body);
                }
                last = Some((status, body));
            }
            assert!(
                Instant::now() < deadline,
                "GET {path}: no expected reply within {timeout:?}; last {last:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and returns the exit status, or panics after [`EXIT_TIMEOUT`].
    fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker still running {EXIT_TIMEOUT:?} after SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a camera got back from the worker.
#[derive(Debug, Default)]
struct Replies {
    /// Per result: RTP timestamp, full map size, histogram total.
    results: Vec<(u32, u16, u16, u64)>,
    receiver_reports: usize,
    plis: usize,
    closed: bool,
}

/// Reads from `socket` until `done` or `timeout`; the socket's read timeout must be short.
fn read_replies(
    socket: &mut TcpStream,
    replies: &mut Replies,
    timeout: Duration,
    done: impl Fn(&Replies) -> bool,
) {
    let mut deframer = Box::new(Deframer::<65535>::new());
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + timeout;
    while !done(replies) && !replies.closed && Instant::now() < deadline {
        let n = match socket.read(&mut buf) {
            Ok(0) => {
                replies.closed = true;
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("reading from the worker: {e}"),
        };
        let mut bytes = &buf[..n];
        while !bytes.is_empty() {
            let (used, frame) = deframer.push(bytes);
            bytes = &bytes[used..];
            let Some(packet) = frame.unwrap() else {
                continue;
            };
            for p in rtcp::parse_compound(packet) {
                match p.unwrap() {
                    RtcpPacket::App(app) => {
                        let view = ResultView::from_app(&app).unwrap();
                        let total = view.histogram().map(u64::from).sum();
                        replies.results.push((
                            view.rtp_timestamp,
                            view.map_width,
                            view.map_height,
                            total,
                        ));
                    }
                    RtcpPacket::ReceiverReport(_) => replies.receiver_reports += 1,
                    RtcpPacket::Pli(_) => replies.plis += 1,
                    _ => {}
                }
            }
        }
    }
}

/// The value of the sample line starting with `name` followed by a space.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn help_lists_the_flags() {
    let out = worker_command().arg("--help").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--model",
        "--max-connections",
        "--handshake-timeout-ms",
        "--listen-media",
        "--listen-http",
        "--print-config",
        "--config",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
}

#[test]
fn print_config_round_trips() {
    let out = worker_command()
        .args([
            "--print-config",
            "--max-connections",
            "7",
            "--model",
            "/models/x.onnx",
            "--listen-media",
            "127.0.0.1:7004",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let config = WorkerConfig::from_toml_str(&text).unwrap();
    assert_eq!(config.limits.max_connections, 7, "{text}");
    assert_eq!(config.model.path, Path::new("/models/x.onnx"));
    assert_eq!(config.listen.media, "127.0.0.1:7004".parse().unwrap());
    let mut expected = WorkerConfig::default();
    expected.limits.max_connections = 7;
    expected.model.path = "/models/x.onnx".into();
    expected.listen.media = config.listen.media;
    assert_eq!(config, expected);

    // A file, overridden by a flag.
    let dir = TempDir::new("worker-binary-print-config");
    let file = dir.path().join("worker.toml");
    std::fs::write(&file, text.replace("max_batch = 4", "max_batch = 3")).unwrap();
    let out = worker_command()
        .arg("--config")
        .arg(&file)
        .args(["--print-config", "--max-connections", "9"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = WorkerConfig::from_toml_str(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    assert_eq!(config.batching.max_batch, 3);
    assert_eq!(config.limits.max_connections, 9);
}

#[test]
fn invalid_config_is_refused() {
    let out = worker_command()
        .args(["--print-config", "--max-batch", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batching.max_batch"), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn ready_streams_and_exits_on_sigterm() {
    let dir = TempDir::new("worker-binary-ready");
    let results = dir.path().join("results");
    let mut worker = Worker::start(
        dir,
        Path::new(TINY_MODEL),
        &["--storage-dir", results.to_str().unwrap()],
        &[],
    );
    let (_, body) = worker.poll("/readyz", READY_TIMEOUT, |status, _| status == 200);
    assert_eq!(body, "ready");
    assert_eq!(worker.get("/livez"), (200, "ok".to_owned()));
    let (status, text) = worker.get("/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("flowcloud_connections_open 0"), "{text}");

    // A camera: handshake, then ten frames of real H.264.
    let mut camera = TcpStream::connect(worker.media).unwrap();
    camera
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    camera.write_all(&handshake(BALL_SSRC, "cam-ball")).unwrap();
    camera.write_all(&std::fs::read(BALL_RTP).unwrap()).unwrap();
    let mut replies = Replies::default();
    read_replies(&mut camera, &mut replies, Duration::from_secs(15), |r| {
        r.receiver_reports >= 1 && !r.results.is_empty()
    });
    assert!(
        replies.receiver_reports >= 1 && !replies.results.is_empty(),
        "{replies:?}\n{}",
        worker.log()
    );
    for &(_, width, height, total) in &replies.results {
        assert_eq!((width, height), (160, 120), "{replies:?}");
        assert_eq!(total, BALL_PIXELS, "{replies:?}");
    }

    // The metrics follow (connection counts are copied every second).
    let (_, text) = worker.poll("/metrics", Duration::from_secs(10), |_, text| {
        metric(text, "flowcloud_connections_open") == Some(1.0)
            && metric(
                text,
                r#"flowcloud_frames_total{stream="cam-ball",stage="returned"}"#,
            )
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(
        metric(&text, r#"flowcloud_connections_total{outcome="accepted"}"#),
        Some(1.0),
        "{text}"
    );

    // SIGTERM with the camera connected: the connection is closed, the worker exits 0.
    let status = worker.terminate();
    assert!(status.success(), "{status}\n{}", worker.log());
    read_replies(&mut camera, &mut replies, Duration::from_secs(5), |_| false);
    assert!(replies.closed, "camera connection not closed");
    let log = worker.log();
    assert!(log.contains("worker ready"), "{log}");
    assert!(log.contains("tiny-seg") && log.contains("128x128"), "{log}");
    // The GPU backends were probed and reported, and the decoder chosen from them.
    assert!(log.contains("GPU backends"), "{log}");
    let decoder = if nvdec_usable() { "nvdec" } else { "openh264" };
    assert!(log.contains(&format!("decoder=\"{decoder}\"")), "{log}");
    if decoder == "openh264" {
        assert!(
            log.contains("decoding on the CPU: NVDEC is not usable"),
            "{log}"
        );
    }
    // And where preprocessing and post-processing run.
    let kernels = if kernels_usable() { "cuda" } else { "cpu" };
    assert!(log.contains(&format!("kernels=\"{kernels}\"")), "{log}");
    if kernels == "cpu" {
        assert!(
            log.contains(
                "preprocessing and post-processing on the CPU: the CUDA kernels are not usable"
            ),
            "{log}"
        );
    }
    assert!(
        metric(
            &text,
            &format!("flowcloud_decoders_total{{backend=\"{decoder}\"}}")
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Storage is on: the returned frames' class maps are on disk, in the camera's folder.
    let stored = std::fs::read_dir(results.join("cam-ball"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with("_gtFine_labelIds.png"))
        .count();
    assert!(stored >= 1, "no class maps stored\n{log}");
}

/// Starts a worker on `model`, waits for `/readyz` to give a reason other than loading, checks
/// the worker stays up, then stops it; returns the reason.
fn not_ready_reason(dir: TempDir, model: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut worker = Worker::start(dir, model, args, env);
    let (_, reason) = worker.poll("/readyz", READY_TIMEOUT, |status, body| {
        assert_ne!(status, 200, "ready with a bad model: {body}");
        status == 503 && !body.starts_with("loading model")
    });
    assert!(reason.starts_with("not ready: "), "{reason}");
    assert_eq!(worker.get("/livez"), (200, "ok".to_owned()));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "worker exited\n{}",
        worker.log()
    );
    let (status, reason_again) = worker.get("/readyz");
    assert_eq!((status, reason_again.as_str()), (503, reason.as_str()));
    let (status, text) = worker.get("/metrics");
    assert!(status == 200 && text.contains("flowcloud_"), "{text}");
    // No camera port while not ready.
    assert!(TcpStream::connect(worker.media).is_err());
    assert!(worker.log().contains("ERROR"), "{}", worker.log());
    let status = worker.terminate();
    assert!(status.success(), "{status}\n{}", worker.log());
    reason
}

#[test]
fn not_ready_missing_model() {
    let dir = TempDir::new("worker-binary-missing");
    let model = dir.path().join("nope.onnx");
    let reason = not_ready_reason(dir, &model, &[], &[]);
    assert!(
        reason.contains("not found") && reason.contains("nope.onnx"),
        "{reason}"
    );
}

#[test]
fn not_ready_truncated_model() {
    let dir = TempDir::new("worker-binary-truncated");
    let model = dir.path().join("tiny-seg.onnx");
    let bytes = std::fs::read(TINY_MODEL).unwrap();
    std::fs::write(&model, &bytes[..100]).unwrap();
    std::fs::copy(TINY_MANIFEST, dir.path().join("tiny-seg.toml")).unwrap();
    let reason = not_ready_reason(dir, &model, &[], &[]);
    assert!(
        reason.contains("not usable") && reason.contains("tiny-seg.onnx"),
        "{reason}"
    );
}

#[test]
fn not_ready_wrong_input_shape() {
    let dir = TempDir::new("worker-binary-shape");
    let model = dir.path().join("tiny-seg.onnx");
    std::fs::copy(TINY_MODEL, &model).unwrap();
    let manifest = std::fs::read_to_string(TINY_MANIFEST).unwrap();
    let manifest = manifest
        .replace("input_width = 128", "input_width = 256")
        .replace("input_height = 128", "input_height = 256");
    assert!(manifest.contains("input_width = 256") && manifest.contains("input_height = 256"));
    std::fs::write(dir.path().join("tiny-seg.toml"), manifest).unwrap();
    let reason = not_ready_reason(dir, &model, &[], &[]);
    assert!(
        reason.contains("shape") && reason.contains("256"),
        "{reason}"
    );
}

#[test]
fn not_ready_without_onnx_runtime() {
    let dir = TempDir::new("worker-binary-no-ort");
    let missing = dir.path().join("libonnxruntime.so");
    let missing = missing.to_str().unwrap().to_owned();
    let reason = not_ready_reason(
        dir,
        Path::new(TINY_MODEL),
        &[],
        &[("ORT_DYLIB_PATH", missing.as_str())],
    );
    assert!(
        reason.contains("ONNX Runtime") && reason.contains("not found"),
        "{reason}"
    );
}

fn nvdec_usable() -> bool {
    flowcloud_cuda::Capabilities::probe()
        .nvdec_unavailable(0)
        .is_none()
}

#[test]
fn not_ready_when_nvdec_is_required_but_unusable() {
    if nvdec_usable() {
        eprintln!("SKIP: NVDEC is usable on this machine");
        return;
    }
    let dir = TempDir::new("worker-binary-nvdec");
    let reason = not_ready_reason(dir, Path::new(TINY_MODEL), &["--decoder", "nvdec"], &[]);
    assert!(
        reason.contains("decode.backend is \"nvdec\", but NVDEC cannot be used on GPU 0"),
        "{reason}"
    );
    // Without the driver, the reason names it.
    if !flowcloud_cuda::Capabilities::probe().driver.is_available() {
        assert!(reason.contains("libcuda.so.1"), "{reason}");
    }
}

fn kernels_usable() -> bool {
    flowcloud_cuda::Capabilities::probe()
        .kernels_unavailable(0)
        .is_none()
}

#[test]
fn not_ready_when_the_cuda_kernels_are_required_but_unusable() {
    if kernels_usable() {
        eprintln!("SKIP: the CUDA kernels are usable on this machine");
        return;
    }
    let dir = TempDir::new("worker-binary-kernels");
    let reason = not_ready_reason(dir, Path::new(TINY_MODEL), &["--kernels", "cuda"], &[]);
    assert!(
        reason
            .contains("kernels.backend is \"cuda\", but the CUDA kernels cannot be used on GPU 0"),
        "{reason}"
    );
    if !flowcloud_cuda::Capabilities::probe().driver.is_available() {
        assert!(reason.contains("libcuda.so.1"), "{reason}");
    }
}

#[test]
fn not_ready_unusable_storage_dir() {
    let dir = TempDir::new("worker-binary-storage");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let results = blocker.join("results");
    let reason = not_ready_reason(
        dir,
        Path::new(TINY_MODEL),
        &["--storage-dir", results.to_str().unwrap()],
        &[],
    );
    assert!(
        reason.contains("cannot store results") && reason.contains("a-file"),
        "{reason}"
    );
}
