//! The HTTP gateway of a FastDFS storage (replaces nginx +
//! fastdfs-nginx-module, PROTOCOL.md §9): `GET`/`HEAD` of
//! `/<group>/Mxx/HH/HH/<name>` from the local store paths with ranges,
//! conditional requests, mime types and the anti-steal token; files that
//! are not here are redirected to or proxied from a storage that has them.
//! `/healthz` answers `ok`, `/metrics` the Prometheus series of the
//! process ([`Pages`], [`metrics`]). With `http.tls.*` it speaks HTTPS
//! ([`tls`]).
//!
//! `run(listener, conf, shutdown)` serves until `shutdown` is cancelled.

pub mod body;
pub mod conf;
pub mod error;
mod fast;
pub mod httpdate;
mod io;
mod local;
pub mod metrics;
pub mod mime;
mod open_files;
pub mod plan;
mod remote;
pub mod request;
pub mod response;
pub mod tls;
pub mod token;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fdfs_config::http::ResponseMode;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use conf::{GatewayConf, TokenConf};
pub use error::{HttpError, Reject};

use crate::body::GatewayBody;
use crate::plan::Conditions;
use crate::request::{parse_path, Query};
use crate::response::Resp;
use crate::token::TokenCheck;

/// How long shutdown waits for responses in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The health check path.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Longest request head read from a client, on the fast path and in
/// hyper (which answers 431 past it). hyper's own default is about 400 KB,
/// so a few hundred unfinished heads held hundreds of MB; nginx's default
/// ceiling is 32 KB and a gateway path is under 511 bytes (§9.1).
pub(crate) const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// Shared state of a running gateway.
pub(crate) struct Gateway {
    /// Replaced on SIGHUP through [`LiveConf`].
    conf: Arc<LiveConf>,
    /// Canonical store roots, resolved at start (store paths may be
    /// symlinks themselves).
    roots: Vec<PathBuf>,
    /// Handles on the store paths' data directories.
    data_dirs: local::DataDirs,
    /// Files recently opened, kept open while unchanged.
    kept: open_files::OpenFiles,
    /// Our listening port: redirects keep it (§9.3).
    http_port: u16,
    /// Asks the trackers which storages hold a file that is not here.
    tracker_client: Option<fdfs_client::Client>,
    /// Set: every connection is HTTPS.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// /metrics and any other pages besides the files.
    pages: Pages,
    counters: Arc<metrics::GatewayCounters>,
}

/// What the gateway serves besides files: `/metrics` renders `hub` (which
/// the gateway adds its own series to), and `routes` answers other pages
/// (in `fdfs server`, the tracker's) before a path is read as a file.
#[derive(Clone)]
pub struct Pages {
    pub hub: Arc<fdfs_util::metrics::Hub>,
    pub routes: Option<Arc<dyn fdfs_util::metrics::Routes>>,
}

impl Default for Pages {
    fn default() -> Self {
        Pages {
            hub: fdfs_util::metrics::Hub::new(),
            routes: None,
        }
    }
}

/// The gateway settings of a running gateway, swappable whole: a request
/// reads one consistent version, a reload (SIGHUP) installs the next.
#[derive(Debug)]
pub struct LiveConf {
    current: std::sync::RwLock<Arc<GatewayConf>>,
    /// Bumped by every reload: a connection keeps its copy of the settings
    /// while this is unchanged, instead of taking the lock and a reference
    /// (atomic writes to lines every CPU shares) several times a request.
    generation: std::sync::atomic::AtomicU64,
}

impl LiveConf {
    pub fn new(conf: Arc<GatewayConf>) -> Arc<LiveConf> {
        Arc::new(LiveConf {
            current: std::sync::RwLock::new(conf),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn get(&self) -> Arc<GatewayConf> {
        fdfs_util::sync::read(&self.current).clone()
    }

    /// Takes what can change without a restart from `new` (the anti-steal
    /// token settings and the mime types); the rest stays as started.
    pub fn reload(&self, new: &GatewayConf) {
        let mut next = (*self.get()).clone();
        next.token = new.token.clone();
        next.mime = new.mime.clone();
        next.default_content_type = new.default_content_type.clone();
        *fdfs_util::sync::write(&self.current) = Arc::new(next);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

/// One connection's copy of the live settings, renewed after a reload.
pub(crate) struct ConfView {
    generation: u64,
    conf: Arc<GatewayConf>,
}

impl ConfView {
    pub(crate) fn new(live: &LiveConf) -> ConfView {
        let generation = live.generation.load(std::sync::atomic::Ordering::Acquire);
        ConfView {
            generation,
            conf: live.get(),
        }
    }

    /// The settings as of now.
    pub(crate) fn current(&mut self, live: &LiveConf) -> &Arc<GatewayConf> {
        if live.generation.load(std::sync::atomic::Ordering::Acquire) != self.generation {
            *self = ConfView::new(live);
        }
        &self.conf
    }
}

impl Gateway {
    fn conf(&self) -> Arc<GatewayConf> {
        self.conf.get()
    }

    fn new(live: Arc<LiveConf>, http_port: u16, pages: Pages) -> Result<Gateway, HttpError> {
        let conf = live.get();
        let roots = conf
            .store_paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let tls = match &conf.tls {
            Some(files) => Some(tls::server_config(
                &files.certificate,
                &files.certificate_key,
            )?),
            None => None,
        };
        let counters = Arc::new(metrics::GatewayCounters::new());
        pages.hub.add(Arc::new(metrics::GatewayMetrics {
            counters: counters.clone(),
            group: conf.group.clone(),
        }));
        Ok(Gateway {
            pages,
            counters,
            tls,
            tracker_client: remote::tracker_client(&conf),
            data_dirs: local::DataDirs::new(conf.store_paths.len()),
            kept: open_files::OpenFiles::new(
                conf.store_paths.len(),
                open_files::OpenFiles::default_capacity(),
            ),
            conf: live,
            roots,
            http_port,
        })
    }
}

/// Serves HTTP on `listener` until `shutdown` is cancelled, then lets
/// responses in flight finish (up to [`SHUTDOWN_GRACE`]).
pub async fn run(
    listener: TcpListener,
    conf: Arc<GatewayConf>,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    run_live(listener, LiveConf::new(conf), Pages::default(), shutdown).await
}

/// [`run`] with settings the caller can reload while it serves, and the
/// process's metrics hub and extra pages.
pub async fn run_live(
    listener: TcpListener,
    conf: Arc<LiveConf>,
    pages: Pages,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    let local = listener.local_addr()?;
    let gw = Arc::new(Gateway::new(conf, local.port(), pages)?);
    let tasks = TaskTracker::new();
    tracing::info!(addr = %local, group = %gw.conf().group, "http gateway listening");
    fdfs_util::serve::accept_until_shutdown(
        listener,
        gw.conf().max_connections,
        // Public downloads are the gateway's purpose: the storage's
        // allow_hosts does not cover it.
        &fdfs_util::serve::Admission::everyone(),
        fdfs_util::serve::WhenFull::Wait,
        &tasks,
        &shutdown,
        // Each connection waits on a child token of its own: a token shared
        // by every connection is one lock and one cache line that all
        // workers contend for on every request.
        |stream, peer, slot| serve_connection(gw.clone(), stream, peer, slot.stopped().clone()),
    )
    .await;
    if !fdfs_util::serve::drain(&tasks, SHUTDOWN_GRACE).await {
        tracing::warn!("http shutdown: responses in flight did not finish in time");
    }
    tracing::info!("http gateway stopped");
    Ok(())
}

async fn serve_connection(
    gw: Arc<Gateway>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    if let Some(config) = gw.tls.clone() {
        // The fast path sends files with sendfile, which TLS rules out.
        if let Some(tls) = tls::accept(stream, config, gw.conf().header_read_timeout).await {
            serve_hyper(gw, tls, peer, shutdown).await;
        }
        return;
    }
    fast::serve(gw, stream, peer, shutdown).await;
}

/// Serves a connection with hyper's HTTP/1 service (everything the fast
/// path leaves to it).
pub(crate) async fn serve_hyper<T>(
    gw: Arc<Gateway>,
    stream: T,
    peer: SocketAddr,
    shutdown: CancellationToken,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io::IdleTimeout::new(stream, gw.conf().idle_timeout));
    let header_timeout = gw.conf().header_read_timeout;
    let svc = service_fn(move |req| {
        let gw = gw.clone();
        async move { Ok::<_, Infallible>(gw.handle(req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .keep_alive(true)
        // A client may end its side after the request (`nc -N`, scripts):
        // answer it, as nginx and the fast path do, instead of hanging up.
        .half_close(true)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(peer = %peer, error = %e, "http connection ended with an error");
    }
}

/// Header lookup by (case-insensitive) name, the first value of a name:
/// hyper's [`HeaderMap`] and the fast path's parsed headers answer alike.
pub(crate) trait Headers {
    fn get_bytes(&self, name: &str) -> Option<&[u8]>;
}

impl Headers for HeaderMap {
    fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }
}

/// A header's value as text when it is visible ASCII (as
/// `HeaderValue::to_str` has it).
fn header_text<H: Headers + ?Sized>(h: &H, name: &str) -> Option<String> {
    let v = h.get_bytes(name)?;
    if v.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        std::str::from_utf8(v).ok().map(str::to_string)
    } else {
        None
    }
}

use fdfs_util::now_secs;

/// What a GET/HEAD comes to before any file is opened.
pub(crate) enum Front {
    /// Answered without a file (/healthz, the token-check-fail file).
    Answer(Resp),
    /// A file to look for.
    File(FileTarget),
}

/// A validated file request with its query and conditional headers.
pub(crate) struct FileTarget {
    pub file: request::FileRequest,
    pub query: Query,
    pub cond: Conditions,
}

impl FileTarget {
    fn download_name(&self) -> Option<&str> {
        self.query.get("filename").filter(|n| !n.is_empty())
    }
}

impl Gateway {
    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Resp {
        let resp = self.handle_uncounted(req).await;
        self.counters.statuses.count(resp.status().as_u16());
        resp
    }

    async fn handle_uncounted(self: &Arc<Self>, req: Request<Incoming>) -> Resp {
        let head = req.method() == Method::HEAD;
        match self.route(&req, head).await {
            Ok(r) => r,
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::warn!(uri = %req.uri(), status = %e.status, reason = %e.reason, "http request failed");
                } else {
                    tracing::debug!(uri = %req.uri(), status = %e.status, reason = %e.reason, "http request refused");
                }
                response::reject(&e, head)
            }
        }
    }

    /// The part of a GET/HEAD shared by hyper's service and the fast path:
    /// /healthz, the path and query, the anti-steal token, the conditional
    /// headers.
    pub(crate) fn front<H: Headers + ?Sized>(
        &self,
        conf: &GatewayConf,
        path: &str,
        query: Option<&str>,
        headers: &H,
        head: bool,
    ) -> Result<Front, Reject> {
        if path == HEALTHZ_PATH {
            let mut r = response::status_page(StatusCode::OK, head);
            *r.body_mut() = if head {
                GatewayBody::empty()
            } else {
                GatewayBody::full("ok\n")
            };
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, header::HeaderValue::from(3u64));
            return Ok(Front::Answer(r));
        }
        let file = parse_path(
            path,
            &conf.group,
            conf.url_have_group_name,
            conf.store_paths.len(),
        )?;
        let query = Query::parse(query)?;
        if let Some(tok) = &conf.token {
            let bypass = tok.bypass_header.as_ref().is_some_and(|(name, value)| {
                headers
                    .get_bytes(name.as_str())
                    .is_some_and(|v| v == value.as_bytes())
            });
            if !bypass {
                match token::check(
                    &file.remote,
                    &tok.secret_key,
                    tok.ttl_secs,
                    query.get("token"),
                    query.get("ts"),
                    now_secs(),
                ) {
                    TokenCheck::Valid => {}
                    TokenCheck::Missing => {
                        return Err(Reject::bad_request("token or ts missing"));
                    }
                    TokenCheck::Invalid => {
                        return match &tok.check_fail {
                            Some(f) => Ok(Front::Answer(response::check_fail(f, head))),
                            None => Err(Reject::bad_request("invalid or expired token")),
                        };
                    }
                }
            }
        }
        let cond = Conditions {
            if_none_match: header_text(headers, "if-none-match"),
            if_modified_since: header_text(headers, "if-modified-since"),
            if_range: header_text(headers, "if-range"),
            range: header_text(headers, "range"),
        };
        Ok(Front::File(FileTarget { file, query, cond }))
    }

    /// Opens a file of our group from the store paths (`Ok(None)`: not
    /// here). Open, stat and the first chunk (`want_body`, which covers a
    /// whole small file) run right here: on a warm page cache they take
    /// microseconds, far less than a round trip to the blocking pool,
    /// which measured at half the throughput for 8-128 KB files. A path
    /// walk that would read the disk is [`Reject::needs_disk`] instead
    /// (the first chunk is only read when cached, see `local`).
    pub(crate) fn open_local(
        &self,
        conf: &GatewayConf,
        t: &FileTarget,
        want_body: bool,
    ) -> Result<Option<local::Found>, Reject> {
        self.open_request(conf, &t.file, &t.cond, want_body, false)
    }

    pub(crate) fn open_request(
        &self,
        conf: &GatewayConf,
        file: &request::FileRequest,
        cond: &plan::Conditions,
        want_body: bool,
        may_block: bool,
    ) -> Result<Option<local::Found>, Reject> {
        local::open(
            &conf.store_paths,
            &self.roots,
            &self.data_dirs,
            &self.kept,
            file,
            cond,
            conf.multi_range_enabled,
            want_body,
            may_block,
        )
    }

    /// [`Gateway::open_local`], moved to the blocking pool when the path
    /// walk needs the disk: a cold directory must not stall the other
    /// connections of this worker.
    async fn open_local_or_wait(
        self: &Arc<Self>,
        conf: &Arc<GatewayConf>,
        t: &FileTarget,
        want_body: bool,
    ) -> Result<Option<local::Found>, Reject> {
        match self.open_local(conf, t, want_body) {
            Err(e) if e.is_needs_disk() => {
                let (gw, conf) = (self.clone(), conf.clone());
                let (file, cond) = (t.file.clone(), t.cond.clone());
                tokio::task::spawn_blocking(move || {
                    gw.open_request(&conf, &file, &cond, want_body, true)
                })
                .await
                .map_err(|e| Reject::internal(format!("open task failed: {e}")))?
            }
            other => other,
        }
    }

    /// The answer for a local file, with `body` carrying its planned window.
    fn local_response(
        conf: &GatewayConf,
        t: &FileTarget,
        f: &local::Found,
        body: GatewayBody,
    ) -> Resp {
        response::file(
            conf,
            &t.file.name.name,
            t.download_name(),
            &f.facts,
            f.plan,
            body,
        )
    }

    /// /metrics, or a page of the extra routes. The fast path never sees
    /// these: their paths are no file paths, so it hands them to hyper.
    fn page(&self, path: &str, query: Option<&str>) -> Option<fdfs_util::metrics::Answer> {
        if path == fdfs_util::metrics::METRICS_PATH {
            return Some(fdfs_util::metrics::Answer::metrics(&self.pages.hub));
        }
        self.pages.routes.as_ref()?.answer(path, query)
    }

    async fn route(self: &Arc<Self>, req: &Request<Incoming>, head: bool) -> Result<Resp, Reject> {
        if req.method() != Method::GET && !head {
            return Ok(response::method_not_allowed());
        }
        let uri = req.uri();
        if let Some(page) = self.page(uri.path(), uri.query()) {
            return Ok(response::page(page, head));
        }
        let h = req.headers();
        let conf = self.conf();
        let t = match self.front(&conf, uri.path(), uri.query(), h, head)? {
            Front::Answer(r) => return Ok(r),
            Front::File(t) => t,
        };
        if t.file.local_group {
            if let Some(f) = self.open_local_or_wait(&conf, &t, !head).await? {
                let (offset, len) = f.plan.window(f.facts.size);
                let offset = f.base + offset;
                let body = match &f.first {
                    Some(first) if !head => {
                        let after = len - first.len() as u64;
                        let next = offset + first.len() as u64;
                        GatewayBody::File(body::FileBody::new(
                            f.file.clone(),
                            next,
                            after,
                            Some(first.clone()),
                        ))
                    }
                    // Not read ahead (not in the page cache): the body
                    // reads all of it on the blocking pool.
                    None if !head && len > 0 => {
                        GatewayBody::File(body::FileBody::new(f.file.clone(), offset, len, None))
                    }
                    _ => GatewayBody::empty(),
                };
                self.counters.hit();
                return Ok(Self::local_response(&conf, &t, &f, body));
            }
        }
        self.counters.miss();
        let (file, query, cond) = (&t.file, &t.query, &t.cond);
        let download_name = t.download_name();
        if query.has("redirect") {
            return Err(Reject::not_found(format!(
                "{}/{}: not here, and the request was already redirected",
                file.group, file.remote
            )));
        }
        match conf.response_mode {
            ResponseMode::Redirect => self.redirect(file, uri, h.get(header::RANGE)).await,
            ResponseMode::Proxy => self.proxy(file, cond, download_name, head).await,
        }
    }
}
