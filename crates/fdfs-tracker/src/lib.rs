//! The FastDFS tracker daemon as a library: `run(listener, conf, shutdown)`
//! serves the tracker protocol (PROTOCOL.md §2 and §4) on an already bound
//! listener until the token is cancelled.
//!
//! Trackers learn each other from the storages' JOIN bodies and elect a
//! leader (§4.8, `leader` and `relation`); only the leader tells storages
//! about membership changes. Storages are keyed by the IP address their
//! JOIN connection comes from (IP mode; an advertised address only when
//! `trusted_storage_addrs` permits it), or with `use_storage_id` by their
//! id from storage_ids.conf (`ids`). A record held by a live connection is
//! not taken over, moved or deleted from another address; peer text is
//! checked (`guard`) before it is stored, persisted or logged. With
//! `use_trunk_file` the leader also appoints each group's trunk server
//! (`trunk`).

mod admin;
mod cluster_stat;
mod conn;
mod guard;
mod handler;
pub mod http;
mod ids;
pub mod leader;
pub mod metrics;
mod persist;
mod query;
mod relation;
mod report;
mod select;
mod state;
pub mod status;
mod trunk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use fdfs_config::{StorageIds, TrackerConf};
use fdfs_proto::Status;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::select::SelectParams;
use crate::state::Cluster;

pub use relation::{PeerTracker, Relation};

/// How long shutdown waits for in-flight requests before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// `.tracker_status` is rewritten this often (also the running-time grain).
const STATUS_SAVE_INTERVAL_SECS: u64 = 300;

/// Errors of the tracker daemon. Request-level failures travel as a wire
/// [`Status`]; the rest stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("network error: {0}")]
    Net(#[from] std::io::Error),
    #[error("request failed with status {}: {}", .0.0, .0.message())]
    Status(Status),
    #[error("tracker is disabled in its configuration")]
    Disabled,
    #[error("storage ids: {0}")]
    StorageIds(#[from] fdfs_config::ConfigError),
    #[error("{0}")]
    Config(String),
}

impl TrackerError {
    /// The errno a client would see for this error.
    pub fn status(&self) -> Status {
        match self {
            TrackerError::Status(s) => *s,
            TrackerError::Io { source, .. } | TrackerError::Net(source) => source
                .raw_os_error()
                .and_then(|c| u8::try_from(c).ok())
                .map(Status)
                .unwrap_or(Status::EIO),
            TrackerError::Disabled | TrackerError::StorageIds(_) | TrackerError::Config(_) => {
                Status::EINVAL
            }
        }
    }
}

impl From<Status> for TrackerError {
    fn from(s: Status) -> Self {
        TrackerError::Status(s)
    }
}

pub use fdfs_util::now_secs;

/// State shared by every connection of one tracker.
pub struct Tracker {
    pub(crate) conf: TrackerConf,
    /// storage_ids.conf, loaded when `use_storage_id` is on.
    pub(crate) storage_ids: Option<StorageIds>,
    /// Swapped whole when a reload changes reserved_storage_space.
    params: std::sync::RwLock<Arc<SelectParams>>,
    /// The cluster; a std mutex, never held across an await.
    state: Mutex<Cluster>,
    /// `<base_path>/data`.
    pub(crate) data_dir: PathBuf,
    /// Process start (unix seconds), reported by TRACKER_GET_STATUS.
    pub(crate) start_time: i64,
    /// `up_time − last_check_time` of the previous run, rounded to 300 s.
    pub(crate) restart_interval_secs: i64,
    next_conn_gen: AtomicU64,
    /// Wakes the persister after a membership or status change.
    dirty: Notify,
    /// Peers and leadership (§4.8); a std mutex, never held across an await.
    relation: Mutex<Relation>,
    /// Wakes the relationship task: the list grew or the leader changed.
    pub(crate) relation_wake: Notify,
    /// Wakes the list task: a JOIN listed trackers.
    pub(crate) list_wake: Notify,
    /// Rate limit of the warnings about refused peers.
    pub(crate) refusals: fdfs_util::serve::WarnLimiter,
    /// The address we listen on, set when serving starts.
    pub(crate) listen_addr: OnceLock<SocketAddr>,
    /// The connection holding the data-file copy lock (§4.9), if any.
    sys_files_owner: Mutex<Option<u64>>,
    /// Random per process: TRACKER_INSTANCE_ID (241) answers it, so the
    /// relationship task can tell a list entry that leads back to us.
    pub(crate) instance_id: u64,
    /// Set once the first JOIN checked whether to copy a peer's data files.
    pub(crate) sys_files_checked: tokio::sync::Mutex<bool>,
    /// Open connections now, and the most seen at once (cmd 96, 65).
    conns_current: AtomicI32,
    conns_max: AtomicI32,
    /// What only /metrics reports.
    pub(crate) counters: metrics::TrackerCounters,
    /// Numbers the snapshots of the data files (taken under the cluster
    /// lock) ...
    save_seq: AtomicU64,
    /// ... and the newest one written, which also serializes the writers:
    /// a snapshot is never overwritten by an older one.
    saved_seq: Arc<Mutex<u64>>,
}

impl Tracker {
    /// Creates `data/` and `logs/` under base_path and loads the data files
    /// and, with `use_storage_id`, storage_ids.conf from
    /// `storage_ids_filename` (the daemon resolves it against the
    /// tracker.conf directory, see [`TrackerConf::storage_ids_path`]).
    /// The selection rules' settings now in force.
    pub(crate) fn params(&self) -> Arc<SelectParams> {
        fdfs_util::sync::read(&self.params).clone()
    }

    /// Applies a reloaded `reserved_storage_space` to store selection,
    /// the statistics and the parameters storages fetch.
    pub fn set_reserved_storage_space(&self, reserved: fdfs_config::ReservedSpace) {
        let mut params = fdfs_util::sync::write(&self.params);
        let mut next = (**params).clone();
        next.reserved = reserved;
        *params = Arc::new(next);
    }

    pub fn open(mut conf: TrackerConf) -> Result<Arc<Tracker>, TrackerError> {
        let storage_ids = if conf.use_storage_id {
            let ids = StorageIds::load(std::path::Path::new(&conf.storage_ids_filename))?;
            if ids.is_empty() {
                tracing::warn!(file = %conf.storage_ids_filename, "storage_ids.conf has no entries: every JOIN is refused");
            }
            // `auto` widens the IP fields when any storage has an IPv6 address (§2.0).
            if ids.has_ipv6() {
                conf.response_ip_addr_size = fdfs_proto::IP_ADDRESS_SIZE as u8;
            }
            Some(ids)
        } else {
            None
        };
        let data_dir = conf.base_path.join("data");
        for dir in [data_dir.clone(), conf.base_path.join("logs")] {
            std::fs::create_dir_all(&dir).map_err(|e| TrackerError::Io {
                path: dir.clone(),
                source: e,
            })?;
        }
        // Temps of data files a kill interrupted before their rename.
        fdfs_util::fs::remove_stale_temps(&data_dir).map_err(|e| TrackerError::Io {
            path: data_dir.clone(),
            source: e,
        })?;
        let mut cluster =
            persist::load(&data_dir, conf.use_storage_id).map_err(|e| TrackerError::Io {
                path: data_dir.clone(),
                source: e,
            })?;
        cluster.offline_after_load();
        let changelog = data_dir.join(persist::CHANGELOG_FILE);
        if !changelog.exists() {
            std::fs::write(&changelog, b"").map_err(|e| TrackerError::Io {
                path: changelog.clone(),
                source: e,
            })?;
        }
        let start_time = now_secs();
        let restart_interval_secs = persist::load_last_check_time(&data_dir)
            .map(|last| round_down_300(start_time - last))
            .unwrap_or(0);
        if let Some(ids) = &storage_ids {
            cluster.apply_storage_ids(ids);
        }
        Ok(Arc::new(Tracker {
            params: std::sync::RwLock::new(Arc::new(SelectParams::from_conf(&conf))),
            conf,
            storage_ids,
            state: Mutex::new(cluster),
            data_dir,
            start_time,
            restart_interval_secs,
            next_conn_gen: AtomicU64::new(1),
            dirty: Notify::new(),
            relation: Mutex::new(Relation::default()),
            relation_wake: Notify::new(),
            list_wake: Notify::new(),
            refusals: fdfs_util::serve::WarnLimiter::new(guard::REFUSAL_WARN_INTERVAL_SECS),
            listen_addr: OnceLock::new(),
            sys_files_owner: Mutex::new(None),
            sys_files_checked: tokio::sync::Mutex::new(false),
            instance_id: random_instance_id(),
            conns_current: AtomicI32::new(0),
            conns_max: AtomicI32::new(0),
            counters: metrics::TrackerCounters::default(),
            save_seq: AtomicU64::new(0),
            saved_seq: Arc::new(Mutex::new(0)),
        }))
    }

    /// Locks the cluster state (a poisoned lock is still usable: every
    /// mutation leaves the state consistent).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Cluster> {
        fdfs_util::sync::lock(&self.state)
    }

    /// Locks the relationship state.
    pub fn relation(&self) -> MutexGuard<'_, Relation> {
        fdfs_util::sync::lock(&self.relation)
    }

    /// Takes the data-file copy lock for connection `conn_id`.
    pub(crate) fn try_lock_sys_files(&self, conn_id: u64) -> bool {
        let mut owner = fdfs_util::sync::lock(&self.sys_files_owner);
        match *owner {
            Some(o) if o != conn_id => false,
            _ => {
                *owner = Some(conn_id);
                true
            }
        }
    }

    pub(crate) fn unlock_sys_files(&self, conn_id: u64) {
        let mut owner = fdfs_util::sync::lock(&self.sys_files_owner);
        if *owner == Some(conn_id) {
            *owner = None;
        }
    }

    /// Asks the persister to write the data files soon.
    pub(crate) fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Counts a connection in (+1) or out (-1).
    pub(crate) fn count_connection(&self, delta: i32) {
        let now = self.conns_current.fetch_add(delta, Ordering::Relaxed) + delta;
        self.conns_max.fetch_max(now, Ordering::Relaxed);
    }

    /// Our connection counts as TRACKER_CLUSTER_STAT and PING_LEADER report
    /// them. The original's `alloc` counts task buffers it allocated, which
    /// we do not have: like our storage, we report the peak there.
    pub(crate) fn conn_counts(&self) -> fdfs_proto::cluster_stat::ConnCounts {
        let max = self.conns_max.load(Ordering::Relaxed);
        fdfs_proto::cluster_stat::ConnCounts {
            alloc: max,
            current: self.conns_current.load(Ordering::Relaxed),
            max,
        }
    }

    pub(crate) fn next_conn_gen(&self) -> u64 {
        self.next_conn_gen.fetch_add(1, Ordering::Relaxed)
    }

    /// Renders the data files under the lock and writes them.
    pub(crate) fn save_now(&self) -> std::io::Result<()> {
        let (seq, snap) = self.snapshot();
        write_snapshot(&self.saved_seq, seq, &snap, &self.data_dir)
    }

    /// [`Tracker::save_now`] off the async workers, for answers that must
    /// wait until the change is on disk.
    pub(crate) async fn save_async(&self) -> std::io::Result<()> {
        let (seq, snap) = self.snapshot();
        let saved = self.saved_seq.clone();
        let dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || write_snapshot(&saved, seq, &snap, &dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    fn snapshot(&self) -> (u64, persist::Snapshot) {
        let c = self.lock();
        let seq = self.save_seq.fetch_add(1, Ordering::Relaxed) + 1;
        (seq, persist::Snapshot::of(&c, self.conf.use_storage_id))
    }

    fn save_status_file(&self) -> std::io::Result<()> {
        persist::write_atomic(
            &self.data_dir.join(persist::TRACKER_STATUS_FILE),
            persist::render_tracker_status(self.start_time, now_secs()).as_bytes(),
        )
    }

    fn max_pkg_size_bytes(&self) -> u64 {
        self.conf.max_pkg_size_bytes()
    }

    fn network_timeout(&self) -> Duration {
        let secs = if self.conf.network_timeout_secs == 0 {
            60
        } else {
            self.conf.network_timeout_secs
        };
        Duration::from_secs(secs)
    }
}

/// Writes snapshot `seq` unless a newer one is on disk already.
fn write_snapshot(
    saved: &Mutex<u64>,
    seq: u64,
    snap: &persist::Snapshot,
    data_dir: &std::path::Path,
) -> std::io::Result<()> {
    let mut newest = fdfs_util::sync::lock(saved);
    if *newest >= seq {
        return Ok(());
    }
    snap.write(data_dir)?;
    *newest = seq;
    Ok(())
}

/// A random u64 from the standard library's randomly seeded hasher.
fn random_instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_i64(now_secs());
    h.finish()
}

pub(crate) fn round_down_300(secs: i64) -> i64 {
    let step = STATUS_SAVE_INTERVAL_SECS as i64;
    if secs <= 0 {
        0
    } else {
        secs - secs % step
    }
}

/// Serves the tracker protocol on `listener` until `shutdown` is cancelled,
/// then stops accepting, lets in-flight requests finish (at most
/// [`SHUTDOWN_GRACE`]), saves the data files and returns.
pub async fn run(
    listener: TcpListener,
    conf: TrackerConf,
    shutdown: CancellationToken,
) -> Result<(), TrackerError> {
    if conf.disabled {
        return Err(TrackerError::Disabled);
    }
    let tracker = Tracker::open(conf)?;
    serve(listener, tracker, shutdown).await
}

/// Like [`run`] with an already opened [`Tracker`] (lets callers inspect it).
pub async fn serve(
    listener: TcpListener,
    tracker: Arc<Tracker>,
    shutdown: CancellationToken,
) -> Result<(), TrackerError> {
    let admission =
        fdfs_util::serve::Admission::from_conf(&tracker.conf.allow_hosts, "allow_hosts")
            .map_err(TrackerError::Config)?;
    serve_admitting(listener, tracker, Arc::new(admission), shutdown).await
}

/// Like [`serve`] with an allow list the caller keeps (to reload it).
pub async fn serve_admitting(
    listener: TcpListener,
    tracker: Arc<Tracker>,
    admission: Arc<fdfs_util::serve::Admission>,
    shutdown: CancellationToken,
) -> Result<(), TrackerError> {
    if let Err(e) = tracker.save_now().and_then(|_| tracker.save_status_file()) {
        tracing::warn!(error = %e, "cannot write tracker data files");
    }
    let _ = tracker.counters.admission.set(admission.clone());
    tracing::info!(addr = ?listener.local_addr().ok(), "tracker listening");
    if let Ok(addr) = listener.local_addr() {
        let _ = tracker.listen_addr.set(addr);
    }
    let tasks = TaskTracker::new();
    let workers = shutdown.child_token();
    tasks.spawn(persister(tracker.clone(), workers.clone()));
    tasks.spawn(checker(tracker.clone(), workers.clone()));
    tasks.spawn(relation::run(tracker.clone(), workers.clone()));
    tasks.spawn(relation::watch_list(tracker.clone(), workers.clone()));
    tasks.spawn(trunk::run(tracker.clone(), workers.clone()));
    let conns = TaskTracker::new();
    let max_connections = tracker.conf.net.max_connections as usize;
    fdfs_util::serve::accept_until_shutdown(
        listener,
        max_connections,
        &admission,
        fdfs_util::serve::WhenFull::ReclaimIdle,
        &conns,
        &shutdown,
        |stream, _, slot| conn::serve_connection(tracker.clone(), stream, slot),
    )
    .await;
    if !fdfs_util::serve::drain(&conns, SHUTDOWN_GRACE).await {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    tasks.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await;
    let data_dir = tracker.data_dir.clone();
    let t = tracker.clone();
    let saved =
        tokio::task::spawn_blocking(move || t.save_now().and_then(|_| t.save_status_file()))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    saved.map_err(|e| TrackerError::Io {
        path: data_dir,
        source: e,
    })?;
    tracing::info!("tracker stopped");
    Ok(())
}

/// Writes the data files whenever something marked the state dirty.
async fn persister(tracker: Arc<Tracker>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tracker.dirty.notified() => {}
        }
        let t = tracker.clone();
        let res = tokio::task::spawn_blocking(move || t.save_now()).await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "saving tracker data files failed"),
            Err(e) => tracing::error!(error = %e, "persister task failed"),
        }
    }
}

/// Periodic jobs: the ACTIVE → OFFLINE heartbeat check and `.tracker_status`.
async fn checker(tracker: Arc<Tracker>, cancel: CancellationToken) {
    let check_secs = tracker.conf.check_active_interval_secs.max(1);
    let mut check = tokio::time::interval(Duration::from_secs(check_secs));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status = tokio::time::interval(Duration::from_secs(STATUS_SAVE_INTERVAL_SECS));
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Both intervals fire at once on the first tick; skip that one.
    check.tick().await;
    status.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = check.tick() => {
                let changed = tracker
                    .lock()
                    .check_active(now_secs(), i64::try_from(check_secs).unwrap_or(i64::MAX));
                if changed {
                    tracing::info!("storages without heartbeat set OFFLINE");
                    tracker.mark_dirty();
                }
            }
            _ = status.tick() => {
                let t = tracker.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || t.save_status_file()).await {
                    tracing::warn!(error = %e, "cannot write .tracker_status");
                }
            }
        }
    }
}
