//! The high-level client: picks trackers (rotating, with failover), asks
//! them where a file lives, then talks to that storage, reusing pooled
//! connections when `use_connection_pool` is on.
//!
//! Routing follows the C client library (PROTOCOL §3.0): uploads ask 101
//! (104 with a group); downloads and file info ask 102; delete, metadata,
//! append, modify, truncate, regenerate and slave uploads ask 103.
//!
//! This module owns the [`Client`] type, its connections and the tracker
//! failover; the operations live in one submodule per job.

mod admin;
mod appender;
mod download;
mod file_ops;
mod queries;
mod upload;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdfs_config::{ClientConf, StorageIds, TrackerAddr};
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::FileId;
use fdfs_util::net::host_port;

use crate::conn::Conn;
use crate::error::ClientError;
use crate::pool::Pool;
use crate::storage::StorageClient;
use crate::tracker::TrackerClient;

pub use upload::UploadOptions;

/// C client default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// C client default `network_timeout`.
pub const DEFAULT_NETWORK_TIMEOUT: Duration = Duration::from_secs(30);
/// C client default `connection_pool_max_idle_time`.
pub const DEFAULT_POOL_MAX_IDLE: Duration = Duration::from_secs(3600);

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `tracker_server` entries; each may name two hosts (dual IP).
    pub trackers: Vec<TrackerAddr>,
    pub connect_timeout: Duration,
    pub network_timeout: Duration,
    /// Keep idle connections for reuse instead of QUIT after each operation.
    pub use_connection_pool: bool,
    /// Idle pooled connections older than this are closed.
    pub pool_max_idle: Duration,
    /// Read and write local files (`upload_file`, `download_to_file`, ...)
    /// with plain system calls on the calling task instead of tokio's
    /// blocking pool: for single-threaded command-line tools, where the
    /// pool's thread costs more than the I/O (see [`crate::localfile`]).
    pub inline_file_io: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            trackers: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            network_timeout: DEFAULT_NETWORK_TIMEOUT,
            use_connection_pool: false,
            pool_max_idle: DEFAULT_POOL_MAX_IDLE,
            inline_file_io: false,
        }
    }
}

impl ClientOptions {
    pub fn from_conf(conf: &ClientConf) -> Self {
        ClientOptions {
            trackers: conf.tracker_servers.clone(),
            connect_timeout: Duration::from_secs(conf.connect_timeout_secs),
            network_timeout: Duration::from_secs(conf.network_timeout_secs),
            use_connection_pool: conf.use_connection_pool,
            pool_max_idle: Duration::from_secs(conf.connection_pool_max_idle_time_secs),
            inline_file_io: false,
        }
    }
}

/// One try of a tracker request, as [`Client::with_tracker`] runs it.
/// Boxed and `Send` so that the client's tracker methods can be awaited in
/// spawned tasks: the future of an `async` closure cannot be required to
/// be `Send` for every lifetime it borrows.
pub type TrackerFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, ClientError>> + Send + 't>>;

/// Which storage of a file's group the tracker is asked for (PROTOCOL
/// §3.0).
#[derive(Debug, Clone, Copy)]
enum Route {
    /// Any storage that has the file (102): downloads, file info.
    Fetch,
    /// The file's source storage (103): every change, and slave uploads.
    Update,
}

/// Async FastDFS client. Cheap to share behind an `Arc`; every method
/// takes `&self`.
pub struct Client {
    opts: ClientOptions,
    /// Rotating start index for tracker selection.
    next_tracker: AtomicUsize,
    pool: Option<Pool<Conn>>,
    /// The tracker's storage id table, fetched the first time a file name
    /// carrying a storage id must be mapped to an address.
    storage_ids: tokio::sync::OnceCell<Arc<StorageIds>>,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, ClientError> {
        if opts.trackers.is_empty() {
            return Err(ClientError::Invalid("no tracker server configured".into()));
        }
        let pool = opts
            .use_connection_pool
            .then(|| Pool::new(opts.pool_max_idle));
        Ok(Client {
            opts,
            next_tracker: AtomicUsize::new(0),
            pool,
            storage_ids: tokio::sync::OnceCell::new(),
        })
    }

    pub fn from_conf(conf: &ClientConf) -> Result<Client, ClientError> {
        Client::new(ClientOptions::from_conf(conf))
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    pub fn trackers(&self) -> &[TrackerAddr] {
        &self.opts.trackers
    }

    // ---- connections -------------------------------------------------

    /// A connection to `addr`: a healthy pooled one, or a new one.
    pub async fn connect(&self, addr: &str) -> Result<Conn, ClientError> {
        if let Some(pool) = &self.pool {
            if let Some(c) = pool.take(addr, Instant::now(), Conn::idle_looks_healthy) {
                return Ok(c);
            }
        }
        Conn::connect(addr, self.opts.connect_timeout, self.opts.network_timeout).await
    }

    /// Hands a connection back after use. With pooling, a connection whose
    /// operation succeeded goes back to the pool; without, it is closed with
    /// QUIT. A connection that saw an error is never pooled.
    pub async fn release(&self, conn: Conn, ok: bool) {
        if !conn.is_in_step() {
            return;
        }
        match &self.pool {
            Some(pool) if ok => {
                let addr = conn.addr.clone();
                pool.put(&addr, conn, Instant::now());
            }
            _ => conn.quit().await,
        }
    }

    /// Connects to tracker number `index` (trying each of its hosts).
    pub async fn connect_tracker(&self, index: usize) -> Result<Conn, ClientError> {
        let t = self
            .opts
            .trackers
            .get(index)
            .ok_or_else(|| ClientError::Invalid(format!("no tracker #{index}")))?;
        let mut last = None;
        for host in &t.hosts {
            match self.connect(&host_port(host, t.port)).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid(format!("tracker {t} has no host"))))
    }

    /// Runs `f` against a tracker, starting at a rotating index and moving
    /// to the next tracker on connect or network errors. A status answer
    /// from a tracker is final.
    ///
    /// `args` is lent to every try: the boxed future may borrow from it,
    /// which it could not from the closure's own captures.
    pub async fn with_tracker<A, T, F>(&self, args: A, mut f: F) -> Result<T, ClientError>
    where
        F: for<'t, 'c> FnMut(&'t mut TrackerClient<'c>, &'t A) -> TrackerFuture<'t, T>,
    {
        let n = self.opts.trackers.len();
        let start = self.next_tracker.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let mut conn = match self.connect_tracker(i).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(tracker = %self.opts.trackers[i], error = %e, "tracker unreachable");
                    last = Some(e);
                    continue;
                }
            };
            let res = f(&mut TrackerClient::new(&mut conn), &args).await;
            self.release(conn, res.is_ok()).await;
            match res {
                Err(e) if e.is_network() => {
                    tracing::debug!(tracker = %self.opts.trackers[i], error = %e, "tracker failed, trying next");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid("no tracker server configured".into())))
    }

    /// Runs `f` against the storage at `addr`.
    pub async fn with_storage<T>(
        &self,
        addr: &ServerAddr,
        f: impl AsyncFnOnce(&mut StorageClient<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut conn = self.connect(&addr.to_string()).await?;
        let res = f(&mut StorageClient::new(&mut conn)).await;
        self.release(conn, res.is_ok()).await;
        res
    }

    /// Runs `f` against the storage the tracker names for `id` on `route`.
    async fn with_file_storage<T>(
        &self,
        route: Route,
        id: &FileId,
        f: impl AsyncFnOnce(&mut StorageClient<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let addr = match route {
            Route::Fetch => self.query_fetch(id).await?,
            Route::Update => self.query_update(id).await?,
        };
        self.with_storage(&addr, f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_hosts_format() {
        assert_eq!(host_port("127.0.0.1", 22122), "127.0.0.1:22122");
        assert_eq!(host_port("::1", 22122), "[::1]:22122");
    }

    #[test]
    fn client_needs_a_tracker() {
        assert!(Client::new(ClientOptions::default()).is_err());
        let opts = ClientOptions {
            trackers: vec!["127.0.0.1:22122".parse().unwrap()],
            ..Default::default()
        };
        assert!(Client::new(opts).is_ok());
    }

    #[tokio::test]
    async fn tracker_requests_run_in_spawned_tasks() {
        // The gateway asks trackers from its connection tasks: the
        // client's futures must be Send. Nothing listens on the port.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let client = Arc::new(
            Client::new(ClientOptions {
                trackers: vec![dead_addr.to_string().parse().unwrap()],
                connect_timeout: Duration::from_secs(2),
                ..Default::default()
            })
            .unwrap(),
        );
        let id = fdfs_proto::FileId::new("group1", "M00/00/00/x.txt");
        let task = tokio::spawn(async move { client.query_fetch_all(&id).await });
        assert!(task.await.unwrap().unwrap_err().is_network());
    }

    #[tokio::test]
    async fn failover_skips_dead_trackers_and_status_is_final() {
        // Tracker 0: nothing listens (refused). Tracker 1: answers ENOENT
        // to everything. The status must come back, not a connect error.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = live.accept().await {
                tokio::spawn(async move {
                    while let Ok(h) = fdfs_util::framing::read_header(&mut s).await {
                        let n = h.body_len().unwrap_or(0) as usize;
                        if fdfs_util::framing::read_body(&mut s, n).await.is_err() || h.cmd == 82 {
                            break;
                        }
                        if fdfs_util::framing::write_packet(&mut s, 100, 2, &[])
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        let opts = ClientOptions {
            trackers: vec![
                dead_addr.to_string().parse().unwrap(),
                live_addr.to_string().parse().unwrap(),
            ],
            connect_timeout: Duration::from_secs(2),
            network_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let client = Client::new(opts).unwrap();
        for _ in 0..3 {
            let e = client.query_store(None).await.unwrap_err();
            assert_eq!(e.errno(), 2, "{e}");
        }
    }
}
