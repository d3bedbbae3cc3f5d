//! The accept loop every daemon shares (tracker, storage, HTTP gateway):
//! bounded connections, an allow list checked at accept, one task per
//! connection, graceful shutdown. When every slot is taken, the tracker and
//! storage close the connection that has been idle longest between
//! requests, so idle or slow-header clients cannot lock real ones out.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// [`Self::allow`] at the current time.
    pub fn allow_now(&self) -> Option<u64> {
        self.allow(crate::now_secs())
    }
}

/// Interval of the warnings a peer can trigger with a bad request (one
/// line per second at most, with the count held back): a flood of bad
/// requests must not fill the log.
pub const BAD_REQUEST_WARN_INTERVAL_SECS: i64 = 1;

/// The peers a listener serves (`allow_hosts`), and the count of the ones
/// it refused.
#[derive(Debug)]
pub struct Admission {
    /// Swapped whole on SIGHUP; readers clone the Arc and never wait on a
    /// reload's name resolution.
    hosts: std::sync::RwLock<Arc<HostList>>,
    /// The conf key that holds the list, named in the log line.
    key: &'static str,
    refused: AtomicU64,
    warnings: WarnLimiter,
}

impl Admission {
    pub fn new(hosts: HostList, key: &'static str) -> Self {
        Admission {
            hosts: std::sync::RwLock::new(Arc::new(hosts)),
            key,
            refused: AtomicU64::new(0),
            warnings: WarnLimiter::new(REFUSED_LOG_INTERVAL_SECS),
        }
    }

    /// The allow list of a conf key's entries (`allow_hosts`), names
    /// resolved now; names that do not resolve are logged and skipped, as
    /// the original does. Err: an entry that cannot be read.
    pub fn from_conf(entries: &[String], key: &'static str) -> Result<Self, String> {
        Ok(Admission::new(load_hosts(entries, key)?, key))
    }

    /// Replaces the allow list with a conf key's new entries (SIGHUP);
    /// on Err the old list stays.
    pub fn reload(&self, entries: &[String]) -> Result<(), String> {
        self.replace(load_hosts(entries, self.key)?);
        Ok(())
    }

    /// Replaces the allow list with one loaded already.
    pub fn replace(&self, hosts: HostList) {
        *crate::sync::write(&self.hosts) = Arc::new(hosts);
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
        let hosts = crate::sync::read(&self.hosts).clone();
        if hosts.allows(peer.ip()) {
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

/// The allow list of `entries`, names resolved now (those that do not
/// resolve are logged and skipped, as the original does).
fn load_hosts(entries: &[String], key: &'static str) -> Result<HostList, String> {
    let (hosts, warnings) = HostList::load(entries).map_err(|e| e.0)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    if !hosts.allows_any() {
        tracing::info!(key, entries = ?entries, "connections only from the listed hosts");
    }
    Ok(hosts)
}

/// What the accept loop does when all `max_connections` slots are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// The new client waits for a slot (the HTTP gateway, whose responses
    /// stream after the request and whose idle clients time out fast).
    Wait,
    /// An idle connection is closed for it, as nginx reuses idle keep-alive
    /// connections: one that never completed a request first (idle or
    /// slow-header clients), then the one idle longest. A connection inside
    /// a request, or one its handler keeps ([`ConnSlot::keep`]: a storage's
    /// heartbeat connection, a peer's sync connection), is never closed.
    ReclaimIdle,
}

/// A connection's place in the accept loop. Its handler waits on
/// [`ConnSlot::stopped`] only between requests (shutdown, or the loop
/// reclaiming the slot), and brackets every request with
/// [`ConnSlot::request_started`] / [`ConnSlot::request_finished`].
#[derive(Debug, Clone)]
pub struct ConnSlot {
    state: Arc<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    stop: CancellationToken,
    busy: AtomicBool,
    /// A request has started on this connection at least once.
    served: AtomicBool,
    /// Never reclaimed (cluster-internal connections).
    kept: AtomicBool,
    /// Since when the connection waits for a request (accept, or the end
    /// of its last request), in ms after `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
}

impl ConnSlot {
    fn new(stop: CancellationToken, epoch: Instant) -> Self {
        let state = SlotState {
            stop,
            busy: AtomicBool::new(false),
            served: AtomicBool::new(false),
            kept: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            epoch,
        };
        let slot = ConnSlot {
            state: Arc::new(state),
        };
        slot.request_finished();
        slot
    }

    /// Cancelled at shutdown, or when the loop reclaims this idle slot.
    pub fn stopped(&self) -> &CancellationToken {
        &self.state.stop
    }

    /// A request header has arrived: not reclaimable until it is answered.
    pub fn request_started(&self) {
        self.state.busy.store(true, Ordering::Relaxed);
        self.state.served.store(true, Ordering::Relaxed);
    }

    /// Never reclaim this connection: the cluster needs it (a joined
    /// storage's heartbeats, a follower tracker, a peer's sync).
    pub fn keep(&self) {
        self.state.kept.store(true, Ordering::Relaxed);
    }

    /// The answer is out: idle again from now.
    pub fn request_finished(&self) {
        let ms = self.state.epoch.elapsed().as_millis();
        self.state
            .idle_since_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.state.busy.store(false, Ordering::Relaxed);
    }
}

/// The open connections of one listener.
type Slots = Arc<Mutex<HashMap<u64, Arc<SlotState>>>>;

/// Stops an idle connection (never served first, then idle longest);
/// false when every one is busy or kept.
fn reclaim_longest_idle(slots: &Slots) -> bool {
    let slots = crate::sync::lock(slots);
    let victim = slots
        .values()
        .filter(|s| {
            !s.busy.load(Ordering::Relaxed)
                && !s.kept.load(Ordering::Relaxed)
                && !s.stop.is_cancelled()
        })
        .min_by_key(|s| {
            (
                s.served.load(Ordering::Relaxed),
                s.idle_since_ms.load(Ordering::Relaxed),
            )
        });
    match victim {
        Some(s) => {
            s.stop.cancel();
            true
        }
        None => false,
    }
}

/// Accepts connections until `shutdown` is cancelled and runs `handle` for
/// each on `tasks`, with at most `max_connections` at once. A peer that
/// `admission` refuses is closed at once. When every slot is taken, the
/// loop holds the one new connection it accepted and does `when_full`
/// (further clients wait in the kernel backlog, costing no memory here).
/// Returns when shutdown starts; the listener is dropped then, so the port
/// is free at once.
pub async fn accept_until_shutdown<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    admission: &Admission,
    when_full: WhenFull,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr, ConnSlot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let slots: Slots = Arc::default();
    let epoch = Instant::now();
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                crate::sys::note_if_out_of_descriptors(&e);
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        if !admission.admit(peer) {
            drop(stream);
            continue;
        }
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if when_full == WhenFull::ReclaimIdle && reclaim_longest_idle(&slots) {
                    tracing::debug!(%peer, max_connections, "all slots taken: closing the connection idle longest");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        next_id += 1;
        let id = next_id;
        let slot = ConnSlot::new(shutdown.child_token(), epoch);
        crate::sync::lock(&slots).insert(id, slot.state.clone());
        let conn = handle(stream, peer, slot);
        let slots = slots.clone();
        tasks.spawn(async move {
            conn.await;
            crate::sync::lock(&slots).remove(&id);
            drop(permit);
        });
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
    use crate::sync::lock;

    #[test]
    fn a_reloaded_allow_list_applies_and_a_bad_one_keeps_the_old() {
        let peer = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 1);
        let a = Admission::from_conf(&["127.0.0.1".to_string()], "allow_hosts").unwrap();
        assert!(a.admit(peer("127.0.0.1")) && !a.admit(peer("127.0.0.2")));
        a.reload(&["127.0.0.2".to_string()]).unwrap();
        assert!(!a.admit(peer("127.0.0.1")) && a.admit(peer("127.0.0.2")));
        assert!(a.reload(&["10.0.0.0/99".to_string()]).is_err());
        assert!(a.admit(peer("127.0.0.2")));
        assert_eq!(a.refused(), 2);
    }

    #[test]
    fn reclaim_picks_never_served_then_oldest_idle_and_spares_busy_and_kept() {
        let epoch = Instant::now() - Duration::from_secs(100);
        let slots: Slots = Arc::default();
        let add = |id: u64| {
            let slot = ConnSlot::new(CancellationToken::new(), epoch);
            lock(&slots).insert(id, slot.state.clone());
            slot
        };
        let served_old = add(1);
        served_old.request_started();
        served_old.request_finished();
        served_old
            .state
            .idle_since_ms
            .store(1_000, Ordering::Relaxed);
        let served_new = add(2);
        served_new.request_started();
        served_new.request_finished();
        let busy = add(3);
        busy.request_started();
        let kept = add(4);
        kept.keep();
        let silent = add(5);

        assert!(reclaim_longest_idle(&slots));
        assert!(silent.stopped().is_cancelled(), "never served goes first");
        assert!(reclaim_longest_idle(&slots));
        assert!(
            served_old.stopped().is_cancelled(),
            "then the one idle longest"
        );
        assert!(reclaim_longest_idle(&slots));
        assert!(served_new.stopped().is_cancelled());
        assert!(!reclaim_longest_idle(&slots), "busy and kept ones stay");
        assert!(!busy.stopped().is_cancelled() && !kept.stopped().is_cancelled());
    }

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
