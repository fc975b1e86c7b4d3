//! A `flowcloud-worker` child process for the tests that run the real binary: started on free
//! loopback ports with its log in a file, polled until `/readyz` answers 200, asked for its
//! metrics, stopped with SIGTERM, and killed when dropped.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A running worker.
pub struct WorkerProcess {
    child: Child,
    /// Where cameras connect.
    pub media: SocketAddr,
    /// `/livez`, `/readyz`, `/metrics`.
    pub http: SocketAddr,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts `binary` with `args` (plus `--listen-media`/`--listen-http` on free loopback
    /// ports), its standard error going to `log`.
    ///
    /// # Errors
    ///
    /// When no port is free or the process cannot be started.
    pub fn start<I, S>(binary: &Path, log: &Path, args: I) -> io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let media = free_port()?;
        let http = free_port()?;
        let child = Command::new(binary)
            .args(["--listen-media", &media.to_string()])
            .args(["--listen-http", &http.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        Ok(Self {
            child,
            media,
            http,
            log: log.to_owned(),
        })
    }

    /// Polls `/readyz` until it answers 200.
    ///
    /// # Errors
    ///
    /// The last answer and the log when the worker exits or is not ready within `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("worker exited ({status}):\n{}", self.log()));
            }
            let last = match http_get(self.http, "/readyz") {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => format!("HTTP {status}: {}", body.trim()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready within {timeout:?} ({last}):\n{}",
                    self.log()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The Prometheus text of `/metrics`.
    ///
    /// # Errors
    ///
    /// When the request fails.
    pub fn metrics(&self) -> io::Result<String> {
        match http_get(self.http, "/metrics")? {
            (200, body) => Ok(body),
            (status, body) => Err(io::Error::other(format!("HTTP {status}: {body}"))),
        }
    }

    /// The sum of every sample of metric `name` whose labels contain each of `labels`
    /// (`key="value"`); 0 when there is none.
    ///
    /// # Errors
    ///
    /// When the request fails.
    pub fn metric(&self, name: &str, labels: &[&str]) -> io::Result<f64> {
        Ok(self
            .metrics()?
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
                (metric == name && labels.iter().all(|l| rest.contains(l)))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum())
    }

    /// The log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent or the worker does not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err(io::Error::other("kill -TERM failed"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "still running {timeout:?} after SIGTERM"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> io::Result<SocketAddr> {
    Ok(SocketAddr::from((
        [127, 0, 0, 1],
        crate::gstreamer::free_port()?,
    )))
}

/// `GET path` over HTTP/1.1: the status and the body.
///
/// # Errors
///
/// When the connection fails or the reply is not HTTP.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let bad = || io::Error::other(format!("malformed reply: {raw:?}"));
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}
