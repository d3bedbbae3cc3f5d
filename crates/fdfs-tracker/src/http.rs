//! The tracker's HTTP port (`http.server_port`, PROTOCOL.md §5: the
//! original's key, unused there since v5): small read-only pages from a
//! route table ([`TrackerPages`]). `/metrics` serves the [`Hub`]'s series.
//!
//! To add a page, add a match arm to [`TrackerPages::answer`]; the same
//! table is what `fdfs server` hands its gateway, so a page added here
//! shows on both ports.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fdfs_util::metrics::{Answer, Hub, Routes, METRICS_PATH};
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::TrackerMetrics;
use crate::Tracker;

/// A request head must arrive within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request head read (the pages take no input beyond the path).
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// At most this many HTTP connections at once; more wait in the backlog.
const MAX_HTTP_CONNECTIONS: usize = 64;

/// The tracker's route table.
pub struct TrackerPages {
    pub tracker: Arc<Tracker>,
    /// What /metrics renders: the tracker's series, and in `fdfs server`
    /// the storage's and the gateway's too.
    pub hub: Arc<Hub>,
}

impl TrackerPages {
    /// The pages of `tracker`, with a hub holding only its series.
    pub fn new(tracker: Arc<Tracker>) -> TrackerPages {
        let hub = Hub::new();
        hub.add(Arc::new(TrackerMetrics(tracker.clone())));
        TrackerPages { tracker, hub }
    }
}

impl Routes for TrackerPages {
    fn answer(&self, path: &str, _query: Option<&str>) -> Option<Answer> {
        match path {
            METRICS_PATH => Some(Answer::metrics(&self.hub)),
            _ => crate::status::route(&self.tracker, path)
                .map(|r| Answer::ok(r.content_type, r.body)),
        }
    }
}

/// Serves `tracker`'s pages on `listener` until `shutdown` is cancelled.
pub async fn run(listener: TcpListener, tracker: Arc<Tracker>, shutdown: CancellationToken) {
    serve_routes(listener, Arc::new(TrackerPages::new(tracker)), shutdown).await
}

/// Serves a route table over HTTP/1 on `listener` (GET and HEAD; 404 for
/// other paths, 405 for other methods) until `shutdown` is cancelled.
pub async fn serve_routes(
    listener: TcpListener,
    routes: Arc<dyn Routes>,
    shutdown: CancellationToken,
) {
    tracing::info!(addr = ?listener.local_addr().ok(), "tracker http listening");
    let conns = TaskTracker::new();
    fdfs_util::serve::accept_until_shutdown(
        listener,
        MAX_HTTP_CONNECTIONS,
        &fdfs_util::serve::Admission::everyone(),
        fdfs_util::serve::WhenFull::Wait,
        &conns,
        &shutdown,
        |stream, peer, _| {
            let routes = routes.clone();
            let shutdown = shutdown.clone();
            async move {
                let svc = service_fn(move |req| {
                    let routes = routes.clone();
                    async move { Ok::<_, Infallible>(respond(routes.as_ref(), &req)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                let res = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        tokio::time::timeout(crate::SHUTDOWN_GRACE, conn.as_mut())
                            .await
                            .unwrap_or(Ok(()))
                    }
                };
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "http connection ended with an error");
                }
            }
        },
    )
    .await;
    if !fdfs_util::serve::drain(&conns, crate::SHUTDOWN_GRACE).await {
        tracing::warn!("tracker http: connections still open after the grace period");
    }
}

fn respond<B>(routes: &dyn Routes, req: &Request<B>) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = method_not_allowed();
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let a = routes
        .answer(req.uri().path(), req.uri().query())
        .unwrap_or_else(Answer::not_found);
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let len = a.body.len();
    let body = if head {
        Full::new(Bytes::new())
    } else {
        Full::new(Bytes::from(a.body))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn method_not_allowed() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"Method Not Allowed\n")));
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
