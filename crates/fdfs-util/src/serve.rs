//! The accept loop every daemon shares (tracker, storage, HTTP gateway):
//! bounded connections, an allow list checked at accept, one task per
//! connection, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::hosts::HostList;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// At most one "refused" log line per this many seconds: a scan from a
/// refused network must not flood the log.
const REFUSED_LOG_INTERVAL_SECS: i64 = 1;

/// Lets a warning about refused peers through at most once per interval
/// and counts the ones it held back, so a peer that repeats a refused
/// request cannot flood the log.
#[derive(Debug)]
pub struct WarnLimiter {
    interval_secs: i64,
    last_secs: AtomicI64,
    held_back: AtomicU64,
}

impl WarnLimiter {
    pub const fn new(interval_secs: i64) -> Self {
        WarnLimiter {
            interval_secs,
            last_secs: AtomicI64::new(i64::MIN),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being the number
    /// held back since the last one.
    pub fn allow(&self, now_secs: i64) -> Option<u64> {
        let last = self.last_secs.load(Ordering::Relaxed);
        let due = now_secs.saturating_sub(last) >= self.interval_secs;
        if !due
            || self
                .last_secs
                .compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

/// The peers a listener serves (`allow_hosts`), and the count of the ones
/// it refused.
#[derive(Debug)]
pub struct Admission {
    hosts: HostList,
    /// The conf key that holds the list, named in the log line.
    key: &'static str,
    refused: AtomicU64,
    warnings: WarnLimiter,
}

impl Admission {
    pub fn new(hosts: HostList, key: &'static str) -> Self {
        Admission {
            hosts,
            key,
            refused: AtomicU64::new(0),
            warnings: WarnLimiter::new(REFUSED_LOG_INTERVAL_SECS),
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
    /// most once per [`REFUSED_LOG_INTERVAL_SECS`] with the number of
    /// refusals not logged since the last line.
    pub fn admit(&self, peer: SocketAddr) -> bool {
        if self.hosts.allows(peer.ip()) {
            return true;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(held_back) = self.warnings.allow(crate::now_secs()) {
            tracing::warn!(
                peer = %peer.ip(),
                key = self.key,
                held_back,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_rate_limited() {
        let l = WarnLimiter::new(10);
        assert_eq!(l.allow(1000), Some(0));
        assert_eq!(l.allow(1001), None);
        assert_eq!(l.allow(1009), None);
        assert_eq!(l.allow(1010), Some(2));
        assert_eq!(l.allow(1010), None);
    }
}
