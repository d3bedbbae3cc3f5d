//! The accept loop every daemon shares (tracker, storage, HTTP gateway):
//! bounded connections, an allow list checked at accept, one task per
//! connection, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fdfs_config::HostList;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// At most one "refused" log line per this interval: a scan from a
/// refused network must not flood the log.
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The peers a listener serves (`allow_hosts`), and the count of the ones
/// it refused.
#[derive(Debug)]
pub struct Admission {
    hosts: HostList,
    /// The conf key that holds the list, named in the log line.
    key: &'static str,
    refused: AtomicU64,
    /// When the last line was logged, and the refusals counted at that time.
    last_log: Mutex<(Option<Instant>, u64)>,
}

impl Admission {
    pub fn new(hosts: HostList, key: &'static str) -> Self {
        Admission {
            hosts,
            key,
            refused: AtomicU64::new(0),
            last_log: Mutex::new((None, 0)),
        }
    }

    /// The allow list of a conf key's entries (`allow_hosts`), names
    /// resolved now; names that do not resolve are logged and skipped, as
    /// the original does. Err: an entry that cannot be read.
    pub fn from_conf(entries: &[String], key: &'static str) -> Result<Self, String> {
        let (hosts, warnings) = HostList::load(entries).map_err(|e| e.0)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        if !hosts.allows_any() {
            tracing::info!(key, entries = ?entries, "connections only from the listed hosts");
        }
        Ok(Admission::new(hosts, key))
    }

    /// Everyone is served.
    pub fn everyone() -> Self {
        Admission::new(HostList::any(), "allow_hosts")
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// True when `peer` may connect; a refusal is counted and logged, at
    /// most once per [`REFUSED_LOG_INTERVAL`] with the count since the last
    /// line.
    pub fn admit(&self, peer: SocketAddr) -> bool {
        if self.hosts.allows(peer.ip()) {
            return true;
        }
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.0.is_none_or(|t| t.elapsed() >= REFUSED_LOG_INTERVAL);
        if due {
            let since = total - last.1;
            *last = (Some(Instant::now()), total);
            drop(last);
            tracing::warn!(
                peer = %peer.ip(),
                key = self.key,
                refused_since_last_line = since,
                "connection refused: the address is not in {}",
                self.key
            );
        }
        false
    }
}

/// Accepts connections until `shutdown` is cancelled and runs `handle` for
/// each on `tasks`, with at most `max_connections` at once. A permit is
/// taken before `accept`, so a flood waits in the kernel backlog instead of
/// costing memory here. A peer that `admission` refuses is closed at once.
/// Returns when shutdown starts; the listener is dropped then, so the port
/// is free at once.
pub async fn accept_until_shutdown<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    admission: &Admission,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                if !admission.admit(peer) {
                    drop(stream);
                    continue;
                }
                let conn = handle(stream, peer);
                tasks.spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
}

/// Closes `tasks` and waits for them up to `grace`; false if they did not
/// all finish in time.
pub async fn drain(tasks: &TaskTracker, grace: Duration) -> bool {
    tasks.close();
    tokio::time::timeout(grace, tasks.wait()).await.is_ok()
}
