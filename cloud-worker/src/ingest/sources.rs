//! Configured sources: cameras that serve their stream (GStreamer's `tcpserversink`, RFC 4571
//! framing) and that the worker connects to, rather than waiting for them to connect. One task
//! per source keeps a connection up, reconnecting with exponential back-off, until shutdown.
//! A connection to a source is handled exactly like an accepted one, except that the stream is
//! named by the configuration and may send RTP first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use super::identity::Origin;
use super::server::{
    IngestConfig, IngestCounters, ShutdownPhase, Streams, handle_connection, next_connection_id,
};

/// One source to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The stream's name (as a CNAME would name it).
    pub name: Arc<str>,
    /// `host:port`, resolved at every attempt (a camera's address may change).
    pub address: String,
    /// Wait after a failed attempt or a connection that delivered media, doubling per failure.
    pub reconnect: Duration,
    /// The longest wait between attempts.
    pub max_reconnect: Duration,
    /// Longest wait for one connection attempt.
    pub connect_timeout: Duration,
}

/// Starts one task per source; each ends once `shutdown` leaves [`ShutdownPhase::Running`] and
/// its connection, if any, has ended.
pub fn connect_sources<S: Streams>(
    sources: &[Source],
    config: IngestConfig,
    streams: &Arc<S>,
    counters: &Arc<IngestCounters>,
    shutdown: &watch::Receiver<ShutdownPhase>,
) -> Vec<JoinHandle<()>> {
    sources
        .iter()
        .map(|source| {
            let span = info_span!("source", name = %source.name, address = %source.address);
            tokio::spawn(
                run_source(
                    source.clone(),
                    config,
                    Arc::clone(streams),
                    Arc::clone(counters),
                    shutdown.clone(),
                )
                .instrument(span),
            )
        })
        .collect()
}

async fn run_source<S: Streams>(
    source: Source,
    config: IngestConfig,
    streams: Arc<S>,
    counters: Arc<IngestCounters>,
    mut shutdown: watch::Receiver<ShutdownPhase>,
) {
    let mut delay = source.reconnect;
    while *shutdown.borrow() == ShutdownPhase::Running {
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(source.connect_timeout, TcpStream::connect(&source.address)) => attempt,
            _ = shutdown.changed() => continue,
        };
        match attempt {
            Ok(Ok(socket)) => {
                counters.source_connects.fetch_add(1, Ordering::Relaxed);
                let peer = match socket.peer_addr() {
                    Ok(peer) => peer,
                    Err(e) => {
                        warn!(error = %e, "connected, but the peer is already gone");
                        continue;
                    }
                };
                let id = next_connection_id();
                info!(%peer, "connected to the source");
                let origin = Origin::Source {
                    name: Arc::clone(&source.name),
                    peer,
                };
                let span = info_span!("camera", id, %peer);
                let summary = handle_connection(
                    socket,
                    id,
                    origin,
                    config,
                    Arc::clone(&streams),
                    &counters,
                    shutdown.clone(),
                )
                .instrument(span)
                .await;
                if summary.access_units > 0 {
                    delay = source.reconnect;
                }
            }
            Ok(Err(e)) => {
                counters
                    .source_connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, retry_in = ?delay, "cannot connect to the source");
            }
            Err(_) => {
                counters
                    .source_connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                warn!(timeout = ?source.connect_timeout, retry_in = ?delay, "connecting to the source timed out");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
        delay = (delay * 2).min(source.max_reconnect);
    }
}
