//! The storage's shared state: configuration, store paths, identity
//! (`.data_init_flag`), counters and directory rotation
//! (`storage_stat.dat`), and what the tracker told us (parameters).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fdfs_config::storage::StorageConf;
use fdfs_config::{ReservedSpace, StorageIds};
use fdfs_proto::fileid::{FileNameRecord, FileSource};
use fdfs_proto::stat::StorageStats;

use crate::binlog::Binlog;
use crate::disk::SpaceMb;
use crate::error::StorageError;
use crate::store::{DirRotation, NameRng, StorePath};

pub use fdfs_util::fs::write_atomic;

/// Whole-file CRC32 scans allowed at once (see `Storage::scan_permits`).
pub const MAX_CONCURRENT_FILE_SCANS: usize = 4;

/// Locks a mutex, recovering from a panic in another holder: the data under
/// these locks stays consistent after any single statement.
pub use fdfs_util::sync::lock;

pub use fdfs_util::now_secs;

/// Creates the `data/HH/HH` trees of new store paths on a thread of their
/// own, one path after the other: 65,536 directories take 5-30 s on a busy
/// disk, and a fresh storage serves meanwhile (the write path creates a
/// directory it needs first).
fn build_trees_in_background(paths: Vec<StorePath>, subdir_count: u32) {
    if paths.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("data-tree".into())
        .spawn(move || {
            for p in paths {
                let started = std::time::Instant::now();
                match crate::store::build_tree(&p, subdir_count) {
                    Ok(()) => tracing::info!(
                        path = %p.root.display(),
                        secs = started.elapsed().as_secs_f64(),
                        "data directories created"
                    ),
                    Err(e) => tracing::error!(
                        path = %p.root.display(),
                        error = %e,
                        "cannot create the data directories; the next start tries again"
                    ),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the data directory builder");
    }
}

/// Cluster parameters learnt from the tracker (PARAMETER_REQ), with our
/// own conf as the fallback while no tracker has answered.
#[derive(Debug, Clone)]
pub struct TrackerParams {
    pub reserved_storage_space: ReservedSpace,
    /// 0 round robin, 2 most free space.
    pub store_path_mode: u8,
    /// IP field width of QUERY_FILE_INFO answers.
    pub response_ip_addr_size: usize,
    /// Storages are known by their storage_ids.conf id (`use_storage_id`).
    pub use_storage_id: bool,
    /// New file names carry our numeric id instead of our IPv4 address
    /// (`id_type_in_filename=id`, only with `use_storage_id`).
    pub id_in_filename: bool,
    /// The tracker accepts the id we report in JOIN, so a configured
    /// `server_id` may name us.
    pub trust_storage_server_id: bool,
    /// Trunk storage settings (§2.13); learnt, not acted upon yet.
    pub trunk: fdfs_config::TrunkParams,
}

/// Fewest small-upload writer threads: one disk stall must not hold every
/// small upload.
const MIN_WRITER_THREADS: usize = 4;

/// `disk_writer_threads` per store path, as the original's writer threads,
/// and at least [`MIN_WRITER_THREADS`].
fn writer_threads(conf: &StorageConf, paths: usize) -> usize {
    (conf.disk_writer_threads as usize)
        .saturating_mul(paths)
        .max(MIN_WRITER_THREADS)
}

/// A reading of the spaces under way; ends when dropped.
pub struct SpaceReading(Arc<Storage>);

impl Drop for SpaceReading {
    fn drop(&mut self) {
        self.0
            .spaces_reading
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

/// The value of `key` in the `key=value` lines of a state file.
pub fn ini_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
}

/// Identity and initial-sync state kept in `data/.data_init_flag`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataInitFlag {
    pub storage_join_time: i64,
    pub sync_old_done: bool,
    pub sync_src_server: String,
    pub sync_until_timestamp: i64,
    pub last_ip_addr: String,
    pub last_server_port: u16,
    /// The highest trunk file id this storage made or learnt (the
    /// original's `g_current_trunk_file_id`).
    pub current_trunk_file_id: i64,
    /// The original's trunk binlog compression state, kept as read: a
    /// storage handed back to the original resumes where it stopped.
    pub trunk_last_compress_time: i64,
    pub trunk_binlog_compress_stage: i64,
    /// Keys we do not model (the original's `store_path_markN`), in file
    /// order: dropping them makes the original refuse the store path
    /// ("maybe used by other storage server") when the data moves back.
    pub extra: Vec<(String, String)>,
}

/// The keys of `.data_init_flag` that [`DataInitFlag`] models.
const INIT_FLAG_KEYS: [&str; 9] = [
    "storage_join_time",
    "sync_old_done",
    "sync_src_server",
    "sync_until_timestamp",
    "last_ip_addr",
    "last_server_port",
    "current_trunk_file_id",
    "trunk_last_compress_time",
    "trunk_binlog_compress_stage",
];

impl DataInitFlag {
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "storage_join_time={}\nsync_old_done={}\nsync_src_server={}\nsync_until_timestamp={}\nlast_ip_addr={}\nlast_server_port={}\ncurrent_trunk_file_id={}\ntrunk_last_compress_time={}\ntrunk_binlog_compress_stage={}\n",
            self.storage_join_time,
            u8::from(self.sync_old_done),
            self.sync_src_server,
            self.sync_until_timestamp,
            self.last_ip_addr,
            self.last_server_port,
            self.current_trunk_file_id,
            self.trunk_last_compress_time,
            self.trunk_binlog_compress_stage,
        );
        for (k, v) in &self.extra {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        text
    }

    pub fn parse(text: &str) -> Option<Self> {
        let get = |key: &str| ini_value(text, key);
        let num = |key: &str| get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(DataInitFlag {
            storage_join_time: get("storage_join_time")?.parse().ok()?,
            sync_old_done: get("sync_old_done")? == "1",
            sync_src_server: get("sync_src_server")?,
            sync_until_timestamp: get("sync_until_timestamp")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            last_ip_addr: get("last_ip_addr").unwrap_or_default(),
            last_server_port: get("last_server_port")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            current_trunk_file_id: num("current_trunk_file_id"),
            trunk_last_compress_time: num("trunk_last_compress_time"),
            trunk_binlog_compress_stage: num("trunk_binlog_compress_stage"),
            extra: text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, _)| !k.is_empty() && !INIT_FLAG_KEYS.contains(k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }
}

pub struct Storage {
    pub conf: StorageConf,
    pub group: String,
    /// The port clients reach us on (the listener's).
    pub port: u16,
    pub paths: Vec<StorePath>,
    pub binlog: Binlog,
    /// Changes made to data files whose binlog record is not written yet.
    pub pending: crate::pending::Pending,
    /// Our address as clients should see it: the source IP in file names
    /// and the address trackers hand out.
    self_ip: RwLock<Ipv4Addr>,
    /// True when the address came from conf/env/flags, so trackers must not
    /// override it.
    pub self_ip_fixed: bool,
    pub params: RwLock<TrackerParams>,
    pub init_flag: Mutex<DataInitFlag>,
    pub rotation: Mutex<DirRotation>,
    pub rng: Mutex<NameRng>,
    pub stats: Mutex<StorageStats>,
    /// Bumped on every counter change, so reporters send stats only when
    /// something changed.
    pub stats_version: AtomicU64,
    pub spaces: Mutex<Vec<SpaceMb>>,
    /// When `spaces` was read; None: never, or known to be wrong (an
    /// ENOSPC), so the next upload reads it again.
    spaces_read_at: Mutex<Option<std::time::Instant>>,
    /// An upload is reading the spaces now (see [`Storage::begin_space_reading`]).
    spaces_reading: std::sync::atomic::AtomicBool,
    pub round_robin_path: Mutex<usize>,
    /// Out-of-turn disk reports the tracker reporters owe (a path filled
    /// up or got room back).
    pub disk_reports: crate::disk::DiskReportRequests,
    pub up_time: i64,
    /// `logs/storage_access.log` when `[access-log] enabled = true`.
    pub access_log: Option<crate::access_log::AccessLog>,
    /// The threads that write small uploads.
    pub writers: crate::writers::Writers,
    /// Client connections now open, and the most ever open at once (the
    /// connection counters of the statistics).
    pub connections_current: std::sync::atomic::AtomicI32,
    pub connections_max: std::sync::atomic::AtomicI32,
    /// What only /metrics reports.
    pub counters: crate::metrics::StorageCounters,
    /// Newest source timestamp received by replication, per peer id
    /// (reported to trackers with SYNC_REPORT).
    pub received_from: Mutex<std::collections::BTreeMap<String, i32>>,
    /// Bumped when `received_from` changes.
    pub received_version: AtomicU64,
    /// Other members of our group and their sync workers.
    pub peers: Mutex<crate::sync::Peers>,
    /// Serialises the initial-sync handshake (SYNC_DEST_REQ, SYNC_NOTIFY)
    /// across the per-tracker reporters, so every tracker hears the same
    /// sync source.
    pub init_sync_lock: tokio::sync::Mutex<()>,
    /// The address we had when we last ran (from `.data_init_flag`): when it
    /// differs from today's, trackers are told with REPORT_IP_CHANGED, so a
    /// container that comes back with a new IP stays the same member.
    pub previous_ip: Option<String>,
    /// Trackers (as configured, `host:port`) that answered a JOIN from
    /// this process.
    pub joined_trackers: Mutex<std::collections::BTreeSet<String>>,
    /// Whole-file scans (the CRC32 of QUERY_FILE_INFO and REGENERATE) that
    /// may run at once: each holds a blocking-pool thread for as long as
    /// the file takes to read, and uploads need that pool too.
    pub scan_permits: tokio::sync::Semaphore,
    /// Set when the server stops: long disk work gives up (EINTR) instead
    /// of holding shutdown until it is done.
    stopping: std::sync::atomic::AtomicBool,
    /// Binlog records the sync workers skipped because they could not be
    /// read or a peer refused them for good (EINVAL).
    sync_records_skipped: AtomicU64,
    /// Our storage id in id mode, learnt from the tracker's id table.
    server_id: RwLock<Option<String>>,
    /// The tracker's id table (FETCH_STORAGE_IDS) in id mode: maps the
    /// ids in file names and group lists to addresses.
    storage_ids: RwLock<Option<Arc<StorageIds>>>,
    /// Store paths to rebuild from a peer before serving (disk recovery).
    pub recovery: crate::recovery::Pending,
    /// The group's trunk server and this storage's part in trunk storage.
    pub trunk: crate::trunk::role::TrunkRole,
    data_dir: PathBuf,
}

fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.trim().parse().ok()
}

impl Storage {
    /// Prepares the base path and store paths (creating the data tree on
    /// first start) and loads persisted state.
    pub async fn open(conf: StorageConf, port: u16) -> Result<Arc<Storage>, StorageError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(conf, port))
            .await
            .map_err(|e| StorageError::Config(format!("start-up task failed: {e}")))?
    }

    fn open_blocking(conf: StorageConf, port: u16) -> Result<Arc<Storage>, StorageError> {
        if conf.disabled {
            return Err(StorageError::Config(
                "storage is disabled in its conf".into(),
            ));
        }
        let data_dir = conf.base_path.join("data");
        std::fs::create_dir_all(&data_dir)?;
        std::fs::create_dir_all(conf.base_path.join("logs"))?;
        let mut paths: Vec<StorePath> = conf
            .store_paths
            .iter()
            .enumerate()
            .map(|(i, root)| StorePath {
                root: root.clone(),
                readonly: conf.store_paths_readonly.get(i).copied().unwrap_or(false),
            })
            .collect();
        if paths.is_empty() {
            paths.push(StorePath {
                root: conf.base_path.clone(),
                readonly: false,
            });
        }
        let wiped = crate::recovery::wiped_paths(&data_dir, &paths)?;
        let mut unbuilt = Vec::new();
        for p in &paths {
            if !p.root.is_dir() {
                std::fs::create_dir_all(&p.root).map_err(|e| {
                    StorageError::Config(format!("store path {}: {e}", p.root.display()))
                })?;
            }
            if crate::store::init_tree(p, conf.subdir_count_per_path)? {
                unbuilt.push(p.clone());
            }
        }
        build_trees_in_background(unbuilt, conf.subdir_count_per_path);

        // A kill between writing a state file's temp and renaming it leaves
        // the temp behind; the state file itself is whole.
        for dir in [data_dir.clone(), data_dir.join("sync")] {
            fdfs_util::fs::remove_stale_temps(&dir)?;
        }
        let flag_path = data_dir.join(".data_init_flag");
        let mut init_flag = std::fs::read_to_string(&flag_path)
            .ok()
            .and_then(|t| DataInitFlag::parse(&t))
            .unwrap_or_else(|| DataInitFlag {
                storage_join_time: now_secs(),
                ..Default::default()
            });

        let configured_ip = conf
            .advertise_addr
            .as_deref()
            .and_then(parse_ipv4)
            .or_else(|| parse_ipv4(&conf.bind_addr).filter(|ip| !ip.is_unspecified()));
        let previous_ip = Some(init_flag.last_ip_addr.clone()).filter(|ip| !ip.is_empty());
        let self_ip = configured_ip
            .or_else(|| parse_ipv4(&init_flag.last_ip_addr))
            .unwrap_or(Ipv4Addr::LOCALHOST);
        init_flag.last_ip_addr = self_ip.to_string();
        init_flag.last_server_port = port;
        write_atomic(&flag_path, init_flag.to_text().as_bytes())?;

        let (stats, rotation) = load_stat_file(&data_dir.join("storage_stat.dat"));
        let binlog = Binlog::open(&data_dir.join("sync"))?;
        let pending = crate::pending::Pending::open(&data_dir)?;
        let undone = pending.recover(&binlog, |remote| {
            let name = fdfs_proto::fileid::RemoteName::parse(remote, paths.len()).ok()?;
            let root = &paths.get(usize::from(name.store_path_index))?.root;
            Some(crate::store::file_path(root, &name.relative_path()))
        })?;
        if undone > 0 {
            tracing::warn!(
                undone,
                "took back changes a crash left without binlog records"
            );
        }
        let spaces = paths
            .iter()
            .map(|p| crate::disk::space(&p.root).unwrap_or_default())
            .collect();
        let access_log = if conf.access_log_enabled {
            Some(crate::access_log::AccessLog::open(
                &conf.base_path.join("logs"),
                &conf.access_log_time_precision,
            )?)
        } else {
            None
        };
        let params = TrackerParams {
            reserved_storage_space: conf.reserved_storage_space,
            store_path_mode: 0,
            response_ip_addr_size: fdfs_proto::IPV4_ADDRESS_SIZE,
            use_storage_id: false,
            id_in_filename: false,
            trust_storage_server_id: true,
            trunk: fdfs_config::TrunkParams::default(),
        };
        let writers = crate::writers::Writers::new(writer_threads(&conf, paths.len()));
        // A storage started again in this process (tests, the all-in-one
        // server) may find its store paths replaced since.
        for p in &paths {
            crate::trunk::slot::forget_open_trunk_files_under(&p.root);
        }
        Ok(Arc::new(Storage {
            group: conf.group_name.clone(),
            port,
            paths,
            binlog,
            pending,
            self_ip: RwLock::new(self_ip),
            self_ip_fixed: configured_ip.is_some(),
            params: RwLock::new(params),
            init_flag: Mutex::new(init_flag),
            rotation: Mutex::new(rotation),
            rng: Mutex::new(NameRng::from_entropy()),
            stats: Mutex::new(stats),
            stats_version: AtomicU64::new(1),
            spaces: Mutex::new(spaces),
            spaces_read_at: Mutex::new(Some(std::time::Instant::now())),
            spaces_reading: std::sync::atomic::AtomicBool::new(false),
            round_robin_path: Mutex::new(0),
            disk_reports: Default::default(),
            up_time: now_secs(),
            access_log,
            writers,
            connections_current: std::sync::atomic::AtomicI32::new(0),
            connections_max: std::sync::atomic::AtomicI32::new(0),
            counters: crate::metrics::StorageCounters::default(),
            received_from: Mutex::new(std::collections::BTreeMap::new()),
            received_version: AtomicU64::new(0),
            peers: Mutex::new(crate::sync::Peers::default()),
            init_sync_lock: tokio::sync::Mutex::new(()),
            previous_ip,
            joined_trackers: Mutex::new(std::collections::BTreeSet::new()),
            scan_permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_FILE_SCANS),
            stopping: std::sync::atomic::AtomicBool::new(false),
            sync_records_skipped: AtomicU64::new(0),
            server_id: RwLock::new(None),
            storage_ids: RwLock::new(None),
            recovery: crate::recovery::Pending::new(wiped),
            trunk: Default::default(),
            data_dir,
            conf,
        }))
    }

    pub fn self_ip(&self) -> Ipv4Addr {
        *fdfs_util::sync::read(&self.self_ip)
    }

    /// Adopts the address a tracker sees us at, unless one was configured.
    pub fn learn_self_ip(&self, ip: Ipv4Addr) {
        if self.self_ip_fixed || ip.is_unspecified() {
            return;
        }
        let mut cur = fdfs_util::sync::write(&self.self_ip);
        if *cur != ip {
            tracing::info!(old = %cur, new = %ip, "storage address learnt from tracker");
            *cur = ip;
            lock(&self.init_flag).last_ip_addr = ip.to_string();
        }
    }

    pub fn params(&self) -> TrackerParams {
        fdfs_util::sync::read(&self.params).clone()
    }

    pub fn set_params(&self, params: TrackerParams) {
        *fdfs_util::sync::write(&self.params) = params;
    }

    /// Applies `f` to the counters and marks them changed.
    pub fn bump(&self, f: impl FnOnce(&mut StorageStats)) {
        f(&mut lock(&self.stats));
        self.stats_version.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that a change with source `timestamp` arrived from `peer`.
    pub fn note_received(&self, peer: &str, timestamp: i32) {
        let mut map = lock(&self.received_from);
        let entry = map.entry(peer.to_string()).or_insert(0);
        if timestamp > *entry {
            *entry = timestamp;
            self.received_version.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Source address for outgoing connections (`client_bind` with a
    /// specific `bind_addr`), so trackers and peers see our own address.
    pub fn client_bind_ip(&self) -> Option<std::net::IpAddr> {
        if !self.conf.client_bind {
            return None;
        }
        self.conf
            .bind_addr
            .parse::<std::net::IpAddr>()
            .ok()
            .filter(|ip| !ip.is_unspecified())
    }

    /// How trackers and peers know us: our storage id in id mode (once
    /// learnt), else our address. Names mark files on peers, the sync
    /// source and SYNC_REPORT entries.
    pub fn self_id(&self) -> String {
        self.server_id()
            .unwrap_or_else(|| self.self_ip().to_string())
    }

    /// Our storage id, set once the tracker's id table named us.
    pub fn server_id(&self) -> Option<String> {
        fdfs_util::sync::read(&self.server_id).clone()
    }

    pub fn set_server_id(&self, id: String) {
        let mut cur = fdfs_util::sync::write(&self.server_id);
        if cur.as_deref() != Some(id.as_str()) {
            tracing::info!(id = %id, "storage id");
            *cur = Some(id);
        }
    }

    pub fn storage_ids(&self) -> Option<Arc<StorageIds>> {
        fdfs_util::sync::read(&self.storage_ids).clone()
    }

    pub fn set_storage_ids(&self, ids: StorageIds) {
        *fdfs_util::sync::write(&self.storage_ids) = Some(Arc::new(ids));
    }

    /// Bytes 0..4 of new file names (§6.2.1): our numeric id in id mode
    /// with `id_type_in_filename=id`, else our IPv4 address.
    pub fn name_source(&self) -> [u8; 4] {
        let params = self.params();
        if params.use_storage_id && params.id_in_filename {
            if let Some(id) = self.server_id().and_then(|id| id.parse::<u32>().ok()) {
                return FileNameRecord::id_source(id);
            }
        }
        FileNameRecord::ip_source(self.self_ip())
    }

    /// The address text of a file name's source (QUERY_FILE_INFO, §3.7):
    /// the IPv4 address, or for an id the first address of that id in the
    /// tracker's table (empty when unknown or not in id mode).
    pub fn source_ip_of(&self, record: &FileNameRecord) -> String {
        match record.source() {
            FileSource::Ip(ip) => ip.to_string(),
            FileSource::ServerId(id) => {
                if !self.params().use_storage_id {
                    return String::new();
                }
                self.storage_ids()
                    .and_then(|ids| {
                        ids.find_by_id(&id.to_string())
                            .and_then(|e| e.hosts.first().cloned())
                    })
                    .unwrap_or_default()
            }
        }
    }

    /// Tells long disk work to stop: the server is shutting down.
    /// True while a store path is being rebuilt: data requests get EAGAIN.
    pub fn is_recovering(&self) -> bool {
        self.recovery.is_active()
    }

    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Counts a binlog record a sync worker skipped; returns the total.
    pub fn count_skipped_sync_record(&self) -> u64 {
        self.sync_records_skipped.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Binlog records the sync workers skipped since start.
    pub fn sync_records_skipped(&self) -> u64 {
        self.sync_records_skipped.load(Ordering::Relaxed)
    }

    /// Counts a client connection in (+1) or out (-1).
    pub fn count_connection(&self, delta: i32) {
        let now = self.connections_current.fetch_add(delta, Ordering::Relaxed) + delta;
        self.connections_max.fetch_max(now, Ordering::Relaxed);
        self.stats_version.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as reported to trackers, connection counts filled in.
    pub fn stats_snapshot(&self) -> StorageStats {
        let mut stats = lock(&self.stats).clone();
        let max = self.connections_max.load(Ordering::Relaxed);
        stats.connection_alloc_count = max;
        stats.connection_current_count = self.connections_current.load(Ordering::Relaxed);
        stats.connection_max_count = max;
        stats
    }

    /// Re-reads free space of every store path.
    pub fn refresh_spaces(&self) -> Vec<SpaceMb> {
        let spaces: Vec<SpaceMb> = self
            .paths
            .iter()
            .map(|p| crate::disk::space(&p.root).unwrap_or_default())
            .collect();
        *lock(&self.spaces) = spaces.clone();
        *lock(&self.spaces_read_at) = Some(std::time::Instant::now());
        spaces
    }

    /// The spaces of the last reading when it is younger than `max_age`:
    /// an upload need not statfs every store path (the disk watcher and
    /// the reporters re-read them every few seconds).
    pub fn recent_spaces(&self, max_age: std::time::Duration) -> Option<Vec<SpaceMb>> {
        let read_at = (*lock(&self.spaces_read_at))?;
        (read_at.elapsed() < max_age).then(|| lock(&self.spaces).clone())
    }

    /// Marks a reading of the spaces by an upload as under way; `None` when
    /// another one is (then the uploads that arrive meanwhile may go by a
    /// slightly older reading instead of each starting a blocking task).
    pub fn begin_space_reading(self: &Arc<Self>) -> Option<SpaceReading> {
        use std::sync::atomic::Ordering;
        self.spaces_reading
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| SpaceReading(self.clone()))
    }

    /// Whether an upload is reading the spaces now.
    pub fn space_reading_under_way(&self) -> bool {
        self.spaces_reading
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The last reading is wrong (a write hit ENOSPC): the next upload
    /// reads the spaces again.
    pub fn forget_spaces(&self) {
        *lock(&self.spaces_read_at) = None;
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Writes .data_init_flag (also on its own, right after a change the
    /// original saves at once, as a trunk binlog compression).
    pub fn save_init_flag(&self) -> std::io::Result<()> {
        let flag = lock(&self.init_flag).to_text();
        write_atomic(&self.data_dir.join(".data_init_flag"), flag.as_bytes())
    }

    /// Writes storage_stat.dat and .data_init_flag (periodically and at exit).
    pub fn persist_state(&self) {
        let stats = lock(&self.stats).clone();
        let rotation = lock(&self.rotation).clone();
        let text = stat_file_text(&stats, &rotation);
        if let Err(e) = write_atomic(&self.data_dir.join("storage_stat.dat"), text.as_bytes()) {
            tracing::warn!(error = %e, "cannot write storage_stat.dat");
        }
        if let Err(e) = self.save_init_flag() {
            tracing::warn!(error = %e, "cannot write .data_init_flag");
        }
        if let Some(log) = &self.access_log {
            log.flush();
        }
        if let Err(e) = self.binlog.sync() {
            tracing::warn!(error = %e, "cannot sync binlog");
        }
        self.trunk.save_snapshot();
    }
}

/// Key order of storage_stat.dat (§7.1).
const STAT_FILE_KEYS: [&str; 40] = [
    "total_upload_count",
    "success_upload_count",
    "total_append_count",
    "success_append_count",
    "total_modify_count",
    "success_modify_count",
    "total_truncate_count",
    "success_truncate_count",
    "total_download_count",
    "success_download_count",
    "last_source_update",
    "last_sync_update",
    "total_set_meta_count",
    "success_set_meta_count",
    "total_delete_count",
    "success_delete_count",
    "total_get_meta_count",
    "success_get_meta_count",
    "total_create_link_count",
    "success_create_link_count",
    "total_delete_link_count",
    "success_delete_link_count",
    "total_upload_bytes",
    "success_upload_bytes",
    "total_append_bytes",
    "success_append_bytes",
    "total_modify_bytes",
    "success_modify_bytes",
    "total_download_bytes",
    "success_download_bytes",
    "total_sync_in_bytes",
    "success_sync_in_bytes",
    "total_sync_out_bytes",
    "success_sync_out_bytes",
    "total_file_open_count",
    "success_file_open_count",
    "total_file_read_count",
    "success_file_read_count",
    "total_file_write_count",
    "success_file_write_count",
];

fn stat_file_text(stats: &StorageStats, rotation: &DirRotation) -> String {
    let counters = stats.counters();
    let mut out = String::new();
    for key in STAT_FILE_KEYS {
        let v = counters
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or(0);
        out.push_str(&format!("{key}={v}\n"));
    }
    out.push_str(&format!(
        "dist_path_index_high={}\ndist_path_index_low={}\ndist_write_file_count={}\n",
        rotation.high, rotation.low, rotation.count
    ));
    out
}

fn load_stat_file(path: &Path) -> (StorageStats, DirRotation) {
    let mut stats = StorageStats::default();
    let mut rotation = DirRotation::default();
    let Ok(text) = std::fs::read_to_string(path) else {
        return (stats, rotation);
    };
    for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
        let Ok(v) = v.trim().parse::<i64>() else {
            continue;
        };
        match k.trim() {
            "dist_path_index_high" => rotation.high = v.max(0) as u32,
            "dist_path_index_low" => rotation.low = v.max(0) as u32,
            "dist_write_file_count" => rotation.count = v.max(0) as u32,
            key => {
                stats.set_counter(key, v);
            }
        }
    }
    (stats, rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_flag_roundtrip() {
        let f = DataInitFlag {
            storage_join_time: 1_795_620_274,
            sync_old_done: true,
            sync_src_server: String::new(),
            sync_until_timestamp: 0,
            last_ip_addr: "127.0.0.1".into(),
            last_server_port: 23000,
            ..Default::default()
        };
        let text = f.to_text();
        assert!(
            text.starts_with("storage_join_time=1795620274\nsync_old_done=1\nsync_src_server=\n")
        );
        assert_eq!(DataInitFlag::parse(&text), Some(f));
    }

    /// The flag as the original 6.16.1 wrote it for a trunk storage: the
    /// trunk keys and the store path mark survive our rewrite, or the
    /// original refuses the store path when the data moves back.
    #[test]
    fn init_flag_keeps_the_originals_trunk_keys_and_store_path_marks() {
        let original = "storage_join_time=1796399683\nsync_old_done=1\nsync_src_server=\n\
            sync_until_timestamp=0\nlast_ip_addr=127.0.0.2\nlast_server_port=23423\n\
            current_trunk_file_id=1\ntrunk_last_compress_time=1796400720\n\
            trunk_binlog_compress_stage=9\n\
            store_path_mark0=MTI3LjAuMC4yAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAH9bAAAAAEPiEms\n";
        let f = DataInitFlag::parse(original).unwrap();
        assert_eq!(f.current_trunk_file_id, 1);
        assert_eq!(f.trunk_binlog_compress_stage, 9);
        assert_eq!(f.to_text(), original);
        let mut moved = f.clone();
        moved.last_server_port = 23000;
        moved.current_trunk_file_id = 4;
        let text = moved.to_text();
        assert!(text.contains("\ncurrent_trunk_file_id=4\n"));
        assert!(text.ends_with("\nstore_path_mark0=MTI3LjAuMC4yAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAH9bAAAAAEPiEms\n"));
    }

    #[test]
    fn stat_file_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let stats = StorageStats {
            total_upload_count: 5,
            success_download_bytes: 77,
            ..Default::default()
        };
        let rot = DirRotation {
            high: 2,
            low: 225,
            count: 5,
        };
        let path = dir.path().join("storage_stat.dat");
        write_atomic(&path, stat_file_text(&stats, &rot).as_bytes()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("total_upload_count=5\nsuccess_upload_count=0\n"));
        assert!(text.ends_with(
            "dist_path_index_high=2\ndist_path_index_low=225\ndist_write_file_count=5\n"
        ));
        let (s2, r2) = load_stat_file(&path);
        assert_eq!(s2.total_upload_count, 5);
        assert_eq!(s2.success_download_bytes, 77);
        assert_eq!(r2, rot);
    }
}
