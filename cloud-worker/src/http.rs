//! The worker's HTTP endpoints: `/livez`, `/readyz`, `/metrics`.
//!
//! - `GET /livez`: 200 `ok` while the process serves HTTP at all.
//! - `GET /readyz`: 200 `ready` once [`Health::set_ready`] was given `Ok(())` (the engine loaded
//!   and a warm-up inference passed), else 503 with the reason as plain text.
//! - `GET /metrics`: 200, OpenMetrics text of [`Metrics`].
//!
//! `HEAD` works on each; other methods get 405, other paths 404.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{CONTENT_TYPE, Metrics};

/// Readiness shown on `/readyz`. Cheap to clone; all clones share one state.
#[derive(Clone, Debug)]
pub struct Health {
    ready: Arc<RwLock<Result<(), String>>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Not ready, with the reason "starting".
    #[must_use]
    pub fn new() -> Self {
        Self {
            ready: Arc::new(RwLock::new(Err("starting".to_owned()))),
        }
    }

    /// Sets readiness: `Ok(())` = ready; `Err(why)` = not ready, `why` is served on `/readyz`
    /// (e.g. "model file /x/y.onnx not found").
    pub fn set_ready(&self, ready: Result<(), String>) {
        *self.ready.write().unwrap_or_else(PoisonError::into_inner) = ready;
    }

    /// Whether the worker is ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.status().is_ok()
    }

    /// The current readiness.
    ///
    /// # Errors
    ///
    /// The reason, when not ready.
    pub fn status(&self) -> Result<(), String> {
        self.ready
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: Arc<Metrics>,
}

/// The routes, to serve directly or merge into a larger router (e.g. a dashboard).
pub fn router(health: Health, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(AppState { health, metrics })
}

/// Serves [`router`] on `listener` until `shutdown` completes, then stops accepting and waits
/// for requests in progress to finish.
///
/// # Errors
///
/// An I/O error from the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.health.status() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    struct Reply {
        status: u16,
        headers: String,
        body: String,
    }

    async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Reply {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    async fn start() -> (
        SocketAddr,
        Health,
        Arc<Metrics>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Health::new();
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            health.clone(),
            metrics.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        (addr, health, metrics, tx, server)
    }

    #[tokio::test]
    async fn endpoints() {
        let (addr, health, metrics, stop, server) = start().await;

        let reply = request(addr, "GET", "/livez").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));

        let reply = request(addr, "GET", "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (503, "starting"));
        assert!(!health.is_ready());
        health.set_ready(Err("model file /x/y.onnx not found".to_owned()));
        let reply = request(addr, "GET", "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "model file /x/y.onnx not found")
        );
        health.set_ready(Ok(()));
        assert!(health.is_ready());
        let reply = request(addr, "GET", "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready"));
        // And back (e.g. the engine failed).
        health.set_ready(Err("engine failed".to_owned()));
        assert_eq!(request(addr, "GET", "/readyz").await.status, 503);

        metrics.pli("cam-7");
        let reply = request(addr, "GET", "/metrics").await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.headers.contains(
                "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"
            ),
            "{}",
            reply.headers
        );
        assert!(
            reply
                .body
                .contains(r#"flowcloud_plis_total{stream="cam-7"} 1"#),
            "{}",
            reply.body
        );
        assert!(reply.body.ends_with("# EOF\n"));

        let reply = request(addr, "HEAD", "/livez").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, ""));
        assert_eq!(request(addr, "GET", "/nope").await.status, 404);
        assert_eq!(request(addr, "GET", "/").await.status, 404);
        assert_eq!(request(addr, "POST", "/livez").await.status, 405);

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    }

    #[tokio::test]
    async fn shutdown_waits_for_request_in_progress() {
        let (addr, _health, _metrics, stop, server) = start().await;
        // A connection that has sent half a request when shutdown starts.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!server.is_finished());
        slow.write_all(b"Connection: close\r\n\r\n").await.unwrap();
        let mut raw = String::new();
        slow.read_to_string(&mut raw).await.unwrap();
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn health_clones_share_state() {
        let a = Health::default();
        let b = a.clone();
        assert_eq!(a.status(), Err("starting".to_owned()));
        b.set_ready(Ok(()));
        assert!(a.is_ready());
    }
}
