//! Running GStreamer (`gst-launch-1.0`) pipelines as child processes, for the interop tests.
//!
//! A [`Pipeline`] is a running `gst-launch-1.0 -e …`: its stdout and stderr are captured (for
//! error messages and for values printed by `-v`), it is killed when dropped, and every wait
//! has a deadline, so a test that fails half-way never leaves a process behind or hangs.
//!
//! Whether GStreamer must be present is decided by [`require`]: a machine without
//! `gst-launch-1.0` skips the interop tests, unless the `CI` environment variable is set, where
//! a missing GStreamer is a failure (`.ci/setup.sh` installs it).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The GStreamer command-line launcher.
pub const GST_LAUNCH: &str = "gst-launch-1.0";
/// The GStreamer element inspector (used to check that elements exist).
pub const GST_INSPECT: &str = "gst-inspect-1.0";

/// How often waits poll a child process.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Most bytes of captured output quoted in an error message (the end is kept).
const OUTPUT_TAIL: usize = 4000;

/// Why a GStreamer pipeline could not be run, or did not do what was expected.
#[derive(Debug)]
pub enum GstError {
    /// `gst-launch-1.0` is not installed (only an error under CI; see [`require`]).
    NotInstalled,
    /// GStreamer is installed but lacks elements the test needs.
    MissingElements {
        /// The elements `gst-inspect-1.0` does not know.
        elements: Vec<String>,
    },
    /// The process could not be started or talked to.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The pipeline exited unsuccessfully.
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its stdout and stderr.
        output: String,
    },
    /// The pipeline did not finish (or print what was waited for) in time; it was killed.
    TimedOut {
        /// The command line.
        command: String,
        /// What was being waited for.
        waiting_for: String,
        /// How long it was given.
        after: Duration,
        /// The end of its stdout and stderr.
        output: String,
    },
}

impl fmt::Display for GstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInstalled => write!(
                f,
                "{GST_LAUNCH} not found, and CI is set so the GStreamer interop tests may not be \
                 skipped (install gstreamer1.0-tools and the plugins: .ci/setup.sh)"
            ),
            Self::MissingElements { elements } => write!(
                f,
                "GStreamer elements missing: {} (install gstreamer1.0-plugins-base/-good/-bad/-ugly \
                 and gstreamer1.0-libav: .ci/setup.sh)",
                elements.join(", ")
            ),
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::Failed {
                command,
                status,
                output,
            } => {
                write!(
                    f,
                    "`{command}` failed ({status}); its output ends with:\n{output}"
                )
            }
            Self::TimedOut {
                command,
                waiting_for,
                after,
                output,
            } => write!(
                f,
                "`{command}` was killed after {after:?} waiting for {waiting_for}; its output ends with:\n{output}"
            ),
        }
    }
}

impl std::error::Error for GstError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> GstError {
    let context = context.into();
    move |source| GstError::Io { context, source }
}

/// Whether this run is under CI: the `CI` environment variable is set to anything but empty,
/// `0` or `false`.
#[must_use]
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Whether `program` can be run (it is on `PATH` and starts).
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks that GStreamer and `elements` are available.
///
/// - `Ok(true)`: everything is there; run the test.
/// - `Ok(false)`: `gst-launch-1.0` is missing and `CI` is unset; skip the test (a note is
///   printed on stderr).
/// - `Err`: `gst-launch-1.0` is missing under CI, or any element is missing (that is a broken
///   installation, never a reason to skip).
pub fn require(elements: &[&str]) -> Result<bool, GstError> {
    if !runs(GST_LAUNCH) {
        if under_ci() {
            return Err(GstError::NotInstalled);
        }
        eprintln!("skipped: {GST_LAUNCH} not found (and CI is unset)");
        return Ok(false);
    }
    if !runs(GST_INSPECT) {
        return Err(GstError::MissingElements {
            elements: vec![format!("({GST_INSPECT} itself)")],
        });
    }
    let mut missing = Vec::new();
    for element in elements {
        let status = Command::new(GST_INSPECT)
            .args(["--exists", element])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(io_error(format!(
                "running {GST_INSPECT} --exists {element}"
            )))?;
        if !status.success() {
            missing.push((*element).to_owned());
        }
    }
    if missing.is_empty() {
        Ok(true)
    } else {
        Err(GstError::MissingElements { elements: missing })
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Another process may take it before it
/// is used; where the other side can report the port it bound (`tcpserversrc port=0` under
/// `-v`, see [`Pipeline::wait_for_stdout`]) or connect to a listener of ours, prefer that.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `location=PATH` as one `gst-launch-1.0` argument: each argument is escaped whole by
/// `gst_parse_launchv`, so a path with spaces survives.
#[must_use]
pub fn location(path: &Path) -> OsString {
    let mut arg = OsString::from("location=");
    arg.push(path.as_os_str());
    arg
}

/// A `gst-launch-1.0 -e` command line being built.
///
/// ```no_run
/// use flowcloud_tests::gstreamer::{Launch, location};
/// # use std::time::Duration;
/// # fn main() -> Result<(), flowcloud_tests::gstreamer::GstError> {
/// let out = std::env::temp_dir().join("frames.yuv");
/// Launch::new("videotestsrc num-buffers=3 ! video/x-raw,format=I420 ! filesink")
///     .arg(location(&out))
///     .run(Duration::from_secs(10))?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Launch {
    args: Vec<OsString>,
}

impl Launch {
    /// A pipeline description, split at whitespace into arguments (use [`Self::arg`] for an
    /// argument that contains spaces, such as a file path).
    #[must_use]
    pub fn new(description: &str) -> Self {
        Self {
            args: vec!["-e".into()],
        }
        .then(description)
    }

    /// Prints property changes and negotiated caps on stdout (`-v`), e.g. `current-port` of a
    /// `tcpserversrc` with `port=0`.
    #[must_use]
    pub fn verbose(mut self) -> Self {
        self.args.insert(0, "-v".into());
        self
    }

    /// Appends more of the description, split at whitespace.
    #[must_use]
    pub fn then(mut self, description: &str) -> Self {
        self.args
            .extend(description.split_whitespace().map(OsString::from));
        self
    }

    /// Appends one argument as it is.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// The command line, for messages.
    #[must_use]
    pub fn command_line(&self) -> String {
        let mut line = String::from(GST_LAUNCH);
        for arg in &self.args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }

    /// Starts the pipeline.
    pub fn spawn(self) -> Result<Pipeline, GstError> {
        let command = self.command_line();
        let mut child = Command::new(GST_LAUNCH)
            .args(&self.args)
            .env("GST_DEBUG_NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error(format!("starting `{command}`")))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let output = Arc::clone(&output);
            readers.push(thread::spawn(move || {
                read_stdout(stdout, &output, &lines_tx)
            }));
        }
        if let Some(mut stderr) = child.stderr.take() {
            let output = Arc::clone(&output);
            readers.push(thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buf) {
                    append(&output, &String::from_utf8_lossy(&buf[..n]));
                }
            }));
        }
        Ok(Pipeline {
            child,
            command,
            output,
            lines,
            readers,
            status: None,
        })
    }

    /// Runs the pipeline to the end and returns its output (stdout and stderr); an error if it
    /// fails or takes longer than `timeout`.
    pub fn run(self, timeout: Duration) -> Result<String, GstError> {
        self.spawn()?.wait_success(timeout)
    }
}

fn append(output: &Mutex<String>, text: &str) {
    // A poisoned lock only means a reader thread panicked; the text is still worth having.
    let mut out = output
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.push_str(text);
}

fn read_stdout(stdout: ChildStdout, output: &Mutex<String>, lines: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    while let Ok(n @ 1..) = reader.read_until(b'\n', &mut line) {
        let text = String::from_utf8_lossy(&line[..n]).into_owned();
        append(output, &text);
        // The receiver may be gone (nobody waits for stdout lines); that is fine.
        let _ = lines.send(text);
        line.clear();
    }
}

/// A running `gst-launch-1.0`. Dropping it kills the process (if it still runs) and reaps it.
#[derive(Debug)]
pub struct Pipeline {
    child: Child,
    command: String,
    output: Arc<Mutex<String>>,
    lines: Receiver<String>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Pipeline {
    /// The command line.
    #[must_use]
    pub fn command_line(&self) -> &str {
        &self.command
    }

    /// The process id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The end of what the process wrote to stdout and stderr so far.
    #[must_use]
    pub fn output_tail(&self) -> String {
        let out = self
            .output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut start = out.len().saturating_sub(OUTPUT_TAIL);
        while !out.is_char_boundary(start) {
            start += 1;
        }
        out[start..].to_owned()
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, GstError> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(io_error(format!("waiting for `{}`", self.command)))?;
        }
        Ok(self.status)
    }

    /// Fails with the process's output if it has already exited (successfully or not): for
    /// loops that wait on something the pipeline should do while it runs.
    pub fn ensure_running(&mut self) -> Result<(), GstError> {
        match self.try_status()? {
            None => Ok(()),
            Some(status) => {
                self.join_readers();
                Err(GstError::Failed {
                    command: self.command.clone(),
                    status,
                    output: format!("(exited early)\n{}", self.output_tail()),
                })
            }
        }
    }

    /// Waits for a stdout line containing `marker` and returns what follows it on that line,
    /// trimmed (for `-v` output such as `…: current-port = 41234`).
    pub fn wait_for_stdout(&mut self, marker: &str, timeout: Duration) -> Result<String, GstError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => {
                    if let Some(at) = line.find(marker) {
                        return Ok(line[at + marker.len()..].trim().to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is ending; report how it ended.
                    let status =
                        self.wait_status(deadline.saturating_duration_since(Instant::now()))?;
                    self.join_readers();
                    return Err(GstError::Failed {
                        command: self.command.clone(),
                        status,
                        output: format!(
                            "(exited before printing `{marker}`)\n{}",
                            self.output_tail()
                        ),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(self.kill_for_timeout(format!("`{marker}` on stdout"), timeout));
            }
        }
    }

    /// Waits up to `timeout` for the process to exit, killing it on timeout.
    fn wait_status(&mut self, timeout: Duration) -> Result<ExitStatus, GstError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.kill_for_timeout("the process to exit".into(), timeout));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits up to `timeout` for the pipeline to exit successfully and returns its output;
    /// kills it on timeout.
    pub fn wait_success(mut self, timeout: Duration) -> Result<String, GstError> {
        let status = self.wait_status(timeout)?;
        self.join_readers();
        if status.success() {
            let out = self
                .output
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Ok(out.clone())
        } else {
            Err(GstError::Failed {
                command: self.command.clone(),
                status,
                output: self.output_tail(),
            })
        }
    }

    fn kill_for_timeout(&mut self, waiting_for: String, after: Duration) -> GstError {
        self.kill();
        GstError::TimedOut {
            command: self.command.clone(),
            waiting_for,
            after,
            output: self.output_tail(),
        }
    }

    /// Kills the process if it still runs, and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            // Either call fails only if the process is already gone, which is what we want.
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        self.join_readers();
    }

    /// Waits for the output readers (they end when the process's pipes close).
    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch directory under [`std::env::temp_dir`] with a unique name, removed on drop
/// (kept, and its path printed, when `FLOWCLOUD_KEEP_SCRATCH` is set, for debugging).
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<temp>/flowcloud-<name>-<pid>-<counter>-<nanos>`.
    pub fn new(name: &str) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "flowcloud-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os("FLOWCLOUD_KEEP_SCRATCH").is_some() {
            eprintln!("kept scratch directory {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
