//! A stand-in for `flowcloud-worker` on loopback, for the C example's test harness
//! (`tests/capi.sh`): it answers every access unit with an `FCSG` result (19 classes, a
//! dominant class that cycles, an 8×4 class map) and every sender report with a receiver
//! report, optionally sends one PLI, and prints what it saw when the camera disconnects.
//!
//! ```text
//! stand_in_worker [--listen 127.0.0.1:0] [--port-file PATH] [--pli-after N]
//!     [--connections 1] [--timeout 60]
//! ```
//!
//! Exits 0 when the connections ended without a protocol error, 1 otherwise.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/worker.rs"]
mod worker;

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use worker::{StandInWorker, WorkerOptions};

fn main() -> Result<ExitCode, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_owned();
    let (mut port_file, mut pli_after) = (None, None);
    let (mut connections, mut timeout) = (1u64, 60u64);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--port-file" => port_file = Some(value()?),
            "--pli-after" => pli_after = Some(value()?.parse()?),
            "--connections" => connections = value()?.parse()?,
            "--timeout" => timeout = value()?.parse()?,
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let worker = StandInWorker::start(
        listen.parse()?,
        WorkerOptions {
            pli_after,
            on_thread_start: None,
        },
    )?;
    // Written whole under a temporary name, so a reader never sees half a port number.
    if let Some(path) = &port_file {
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, format!("{}\n", worker.addr.port()))?;
        std::fs::rename(&tmp, path)?;
    }
    println!("stand-in worker: listening on {}", worker.addr);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    while worker.log().closed < connections && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let timed_out = worker.log().closed < connections;
    let log = worker.stop();
    println!(
        "stand-in worker: {} connections ({:?}), {} sender reports, {} access units ({} keyframes), {} results, {} PLIs, {} errors",
        log.connections,
        log.cnames,
        log.sender_reports,
        log.access_units,
        log.keyframes,
        log.results,
        log.plis,
        log.errors.len()
    );
    for error in log.errors.iter().take(10) {
        println!("stand-in worker: error: {error}");
    }
    if timed_out {
        println!(
            "stand-in worker: timed out after {timeout} s waiting for {connections} connections to end"
        );
    }
    Ok(if log.errors.is_empty() && !timed_out {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
