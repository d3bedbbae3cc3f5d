//! Disk recovery (PROTOCOL.md §5.6): a store path that comes back empty on
//! a member that held data is rebuilt from an ACTIVE peer of the group
//! before the storage joins its trackers. Owns the detection at start-up
//! (`.known_store_paths` in `<base_path>/data`), the per-path state files
//! (`.recovery.flag`, `.binlog.recovery.N`, `.recovery.mark.N` in
//! `<store_path>/data`), the choice of peer and the binlog fetch; the
//! per-file restore is in [`restore`].

mod restore;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::{ClientError, Conn, TrackerClient};
use fdfs_proto::stat::{storage_status, StorageBrief};
use fdfs_proto::storage_msg::{recovery_phase, RecoveryProgress};
use fdfs_proto::{StorageCmd, TrackerCmd, GROUP_NAME_MAX_LEN};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::state::{write_atomic, Storage};
use crate::store::{StorePath, TREE_BUILD_MARKER};

/// In `<base_path>/data`: how many store paths have held data. A path
/// below this count whose tree is gone was wiped; one beyond it is new.
const KNOWN_PATHS_FILE: &str = ".known_store_paths";
/// In `<store_path>/data`: the rebuild of this path is under way.
pub const FLAG_FILE: &str = ".recovery.flag";
/// Wait between attempts when no tracker or no ACTIVE peer can be reached.
const RETRY_DELAY: Duration = Duration::from_secs(2);
/// Connect timeout towards trackers and the peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A progress line is logged this often while files are restored.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Store paths still to rebuild; while any is, the storage is recovering.
pub struct Pending {
    paths: Mutex<Vec<usize>>,
    active: AtomicBool,
    /// Figures of the rebuild under way (or the last one).
    pub progress: Progress,
}

/// Live figures of a rebuild, shared by its workers, the progress log and
/// RECOVERY_PROGRESS (`fdfs monitor sync`).
#[derive(Default)]
pub struct Progress {
    phase: AtomicU8,
    path: AtomicU8,
    records_done: AtomicU64,
    records_total: AtomicU64,
    files_restored: AtomicU64,
    bytes_restored: AtomicU64,
    /// When the restore of the current path began.
    started: Mutex<Option<Instant>>,
    /// Length of the last finished restore (milliseconds).
    finished_ms: AtomicU64,
}

impl Progress {
    /// A new path's rebuild begins: its list of files is fetched first.
    fn begin_path(&self, index: usize) {
        self.phase
            .store(recovery_phase::FETCHING_BINLOG, Ordering::Relaxed);
        self.path.store(index as u8, Ordering::Relaxed);
        for c in [
            &self.records_done,
            &self.records_total,
            &self.files_restored,
            &self.bytes_restored,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        *fdfs_util::sync::lock(&self.started) = None;
    }

    /// The files are being restored: `done` of `total` records were dealt
    /// with by an earlier, killed run.
    fn begin_restore(&self, done: u64, total: u64) {
        self.records_done.store(done, Ordering::Relaxed);
        self.records_total.store(total, Ordering::Relaxed);
        *fdfs_util::sync::lock(&self.started) = Some(Instant::now());
        self.phase
            .store(recovery_phase::RESTORING, Ordering::Relaxed);
    }

    /// One record dealt with; `restored` bytes when its file was copied.
    pub(crate) fn record_done(&self, restored: Option<u64>) {
        if let Some(bytes) = restored {
            self.files_restored.fetch_add(1, Ordering::Relaxed);
            self.bytes_restored.fetch_add(bytes, Ordering::Relaxed);
        }
        self.records_done.fetch_add(1, Ordering::Relaxed);
    }

    fn finish(&self) {
        let ms = self.elapsed().as_millis() as u64;
        self.finished_ms.store(ms, Ordering::Relaxed);
        self.phase.store(recovery_phase::DONE, Ordering::Relaxed);
    }

    fn elapsed(&self) -> Duration {
        fdfs_util::sync::lock(&self.started).map_or(Duration::ZERO, |t| t.elapsed())
    }

    pub fn snapshot(&self) -> RecoveryProgress {
        let phase = self.phase.load(Ordering::Relaxed);
        let elapsed_ms = if phase == recovery_phase::DONE {
            self.finished_ms.load(Ordering::Relaxed)
        } else {
            self.elapsed().as_millis() as u64
        };
        RecoveryProgress {
            phase,
            store_path_index: self.path.load(Ordering::Relaxed),
            records_done: self.records_done.load(Ordering::Relaxed),
            records_total: self.records_total.load(Ordering::Relaxed),
            files_restored: self.files_restored.load(Ordering::Relaxed),
            bytes_restored: self.bytes_restored.load(Ordering::Relaxed),
            elapsed_ms,
        }
    }

    /// One log line: done and total, files, bytes and rates so far.
    fn log(&self) {
        let p = self.snapshot();
        let secs = (p.elapsed_ms as f64 / 1000.0).max(1e-3);
        tracing::info!(
            path = p.store_path_index,
            records_done = p.records_done,
            records_total = p.records_total,
            files_restored = p.files_restored,
            bytes_restored = p.bytes_restored,
            files_per_sec = format!("{:.0}", p.files_restored as f64 / secs),
            mb_per_sec = format!("{:.2}", p.bytes_restored as f64 / secs / 1e6),
            "disk recovery progress"
        );
    }
}

impl Pending {
    pub fn new(paths: Vec<usize>) -> Self {
        Pending {
            active: AtomicBool::new(!paths.is_empty()),
            paths: Mutex::new(paths),
            progress: Progress::default(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    fn paths(&self) -> Vec<usize> {
        fdfs_util::sync::lock(&self.paths).clone()
    }

    fn finish(&self) {
        fdfs_util::sync::lock(&self.paths).clear();
        self.active.store(false, Ordering::Release);
    }
}

fn read_known_count(data_dir: &Path) -> Option<usize> {
    std::fs::read_to_string(data_dir.join(KNOWN_PATHS_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Finds the store paths to rebuild, before their trees are (re)created:
/// those with a rebuild under way, and those that held data (index below
/// the known count) whose `data/00/00` is gone with no tree build in
/// progress. Records the current path count as known for the next start.
pub fn wiped_paths(data_dir: &Path, paths: &[StorePath]) -> std::io::Result<Vec<usize>> {
    let known = read_known_count(data_dir);
    let mut wiped = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let data = p.data_dir();
        let resuming = data.join(FLAG_FILE).exists();
        let tree_gone =
            !data.join("00").join("00").is_dir() && !data.join(TREE_BUILD_MARKER).exists();
        if resuming || (known.is_some_and(|n| i < n) && tree_gone) {
            wiped.push(i);
        }
    }
    write_atomic(
        &data_dir.join(KNOWN_PATHS_FILE),
        format!("{}\n", paths.len()).as_bytes(),
    )?;
    Ok(wiped)
}

/// `.recovery.flag`: the original's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub saved_storage_status: u8,
    pub fetch_binlog_done: bool,
    pub recovery_threads: usize,
}

impl Flag {
    pub fn to_text(&self) -> String {
        format!(
            "saved_storage_status={}\nfetch_binlog_done={}\nrecovery_threads={}\n",
            self.saved_storage_status,
            u8::from(self.fetch_binlog_done),
            self.recovery_threads
        )
    }

    pub fn parse(text: &str) -> Option<Flag> {
        let get = |key: &str| crate::state::ini_value(text, key);
        Some(Flag {
            saved_storage_status: get("saved_storage_status")?.parse().ok()?,
            fetch_binlog_done: get("fetch_binlog_done")? == "1",
            recovery_threads: get("recovery_threads")?.parse().ok()?,
        })
    }
}

/// `.binlog.recovery.N` of a path's worker `n`.
pub fn part_binlog_path(data: &Path, n: usize) -> PathBuf {
    data.join(format!(".binlog.recovery.{n}"))
}

/// `.recovery.mark.N` of a path's worker `n`.
pub fn part_mark_path(data: &Path, n: usize) -> PathBuf {
    data.join(format!(".recovery.mark.{n}"))
}

/// What the tracker says about rebuilding.
enum Source {
    /// Rebuild from this ACTIVE peer (`ip:port`).
    Peer(String),
    /// Nothing to rebuild from (the tracker does not know us, or the group
    /// has no other member): start with the path empty.
    None,
}

/// Rebuilds every pending path; returns true when the storage may join
/// its trackers (false on shutdown).
pub async fn run(storage: &Arc<Storage>, shutdown: &CancellationToken) -> bool {
    let paths = storage.recovery.paths();
    tracing::warn!(?paths, "store path(s) came back empty: disk recovery");
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let result = tokio::select! {
            _ = shutdown.cancelled() => return false,
            r = attempt(storage, &paths) => r,
        };
        match result {
            Ok(()) => {
                storage.recovery.finish();
                return true;
            }
            Err(e) => tracing::warn!(error = %e, "disk recovery: will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }
}

async fn attempt(storage: &Arc<Storage>, paths: &[usize]) -> Result<(), String> {
    let peer = match choose_source(storage).await? {
        Source::Peer(p) => p,
        Source::None => {
            tracing::warn!(
                "disk recovery: no peer to rebuild from, starting with the path(s) empty"
            );
            for &i in paths {
                clear_state(&storage.paths[i].data_dir());
            }
            return Ok(());
        }
    };
    for &i in paths {
        recover_path(storage, i, &peer).await?;
    }
    Ok(())
}

async fn tracker_conn(storage: &Storage, addr: &str) -> Result<Conn, ClientError> {
    Conn::connect_from(
        addr,
        storage.client_bind_ip(),
        CONNECT_TIMEOUT,
        Duration::from_secs(storage.conf.network_timeout_secs.max(1)),
    )
    .await
}

/// Asks the first tracker that answers for the group's members.
async fn choose_source(storage: &Storage) -> Result<Source, String> {
    let mut last = "no tracker configured".to_string();
    for t in &storage.conf.tracker_servers {
        let mut conn = match tracker_conn(storage, &t.to_string()).await {
            Ok(c) => c,
            Err(e) => {
                last = format!("tracker {t}: {e}");
                continue;
            }
        };
        let listed = TrackerClient::new(&mut conn)
            .list_storages(&storage.group, None)
            .await;
        conn.quit().await;
        let members = match listed {
            Ok(m) => m,
            Err(ClientError::Status(s)) if s == fdfs_proto::Status::ENOENT => {
                return Ok(Source::None)
            }
            Err(e) => {
                last = format!("tracker {t}: {e}");
                continue;
            }
        };
        let me = (storage.self_id(), storage.self_ip().to_string());
        let is_me = |s: &fdfs_proto::stat::StorageStat| s.id == me.0 || s.ip_addr == me.1;
        if !members.iter().any(is_me) || members.iter().all(is_me) {
            return Ok(Source::None);
        }
        // Known, with peers: trackers list us RECOVERY while we wait for
        // and then copy from an ACTIVE peer.
        report_recovery_status(storage).await;
        // The address is the tracker's text: only a real address is used
        // (and so reaches the log).
        let active = members.iter().find_map(|s| {
            let ip = s.ip_addr.parse::<std::net::IpAddr>().ok()?;
            let port = u16::try_from(s.storage_port).ok()?;
            (!is_me(s) && s.status == storage_status::ACTIVE)
                .then(|| std::net::SocketAddr::new(ip, port).to_string())
        });
        return match active {
            Some(addr) => Ok(Source::Peer(addr)),
            None => Err("no ACTIVE peer in the group yet".into()),
        };
    }
    Err(last)
}

/// REPORT_STATUS (76) RECOVERY to every tracker, as the original does;
/// best effort (the storage is not joined, so trackers list it OFFLINE
/// otherwise, which keeps clients away all the same).
async fn report_recovery_status(storage: &Storage) {
    let mut body = BytesMut::new();
    fdfs_proto::wire::put_fixed(&mut body, storage.group.as_bytes(), GROUP_NAME_MAX_LEN);
    StorageBrief {
        status: storage_status::RECOVERY,
        port: i32::from(storage.port),
        id: storage.self_id(),
        ip_addr: storage.self_ip().to_string(),
    }
    .encode(&mut body);
    for t in &storage.conf.tracker_servers {
        if let Ok(mut conn) = tracker_conn(storage, &t.to_string()).await {
            if let Err(e) = conn
                .call(TrackerCmd::StorageReportStatus.into(), &body)
                .await
            {
                tracing::debug!(tracker = %t, error = %e, "REPORT_STATUS RECOVERY refused");
            }
            conn.quit().await;
        }
    }
}

/// Removes a path's recovery state files: the rebuild is over.
fn clear_state(data: &Path) {
    let Ok(entries) = std::fs::read_dir(data) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".binlog.recovery.") || name.starts_with(".recovery.mark.") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_file(data.join(FLAG_FILE));
}

async fn recover_path(storage: &Arc<Storage>, index: usize, peer: &str) -> Result<(), String> {
    let data = storage.paths[index].data_dir();
    let flag_path = data.join(FLAG_FILE);
    let mut flag = std::fs::read_to_string(&flag_path)
        .ok()
        .and_then(|t| Flag::parse(&t))
        .unwrap_or(Flag {
            saved_storage_status: storage_status::ACTIVE,
            fetch_binlog_done: false,
            recovery_threads: storage.conf.disk_recovery_threads.max(1) as usize,
        });
    let io = |e: std::io::Error| format!("{}: {e}", data.display());
    let progress = &storage.recovery.progress;
    progress.begin_path(index);
    if !flag.fetch_binlog_done {
        write_atomic(&flag_path, flag.to_text().as_bytes()).map_err(io)?;
        let text = fetch_binlog(storage, index as u8, peer).await?;
        split_binlog(&data, &text, flag.recovery_threads).map_err(io)?;
        flag.fetch_binlog_done = true;
        write_atomic(&flag_path, flag.to_text().as_bytes()).map_err(io)?;
        tracing::info!(
            path = index,
            %peer,
            bytes = text.len(),
            "disk recovery: binlog fetched"
        );
    }
    let (done, total) = records_done_and_total(&data, flag.recovery_threads);
    progress.begin_restore(done, total);
    tracing::info!(
        path = index,
        records_done = done,
        records_total = total,
        "disk recovery: restoring files (progress every {} s)",
        PROGRESS_LOG_INTERVAL.as_secs()
    );
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..flag.recovery_threads {
        let (storage, peer) = (storage.clone(), peer.to_string());
        workers.spawn(async move { restore::restore_part(&storage, index, n, &peer).await });
    }
    let mut total = restore::Tally::default();
    let mut failed = None;
    let mut log_tick = tokio::time::interval(PROGRESS_LOG_INTERVAL);
    log_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    log_tick.tick().await;
    loop {
        let joined = tokio::select! {
            joined = workers.join_next() => joined,
            _ = log_tick.tick() => {
                progress.log();
                continue;
            }
        };
        let Some(joined) = joined else { break };
        match joined {
            Ok(Ok(t)) => total.add(&t),
            Ok(Err(e)) => failed = Some(e),
            Err(e) => failed = Some(format!("recovery worker failed: {e}")),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    tracing::info!(
        path = index,
        threads = flag.recovery_threads,
        restored = total.restored,
        bytes = total.bytes,
        gone = total.gone,
        mismatched = total.mismatched,
        secs,
        files_per_sec = total.restored as f64 / secs,
        mb_per_sec = total.bytes as f64 / secs / 1e6,
        "disk recovery: store path rebuilt"
    );
    clear_state(&data);
    Ok(())
}

/// Records of a path's parts that earlier runs dealt with (before each
/// part's mark), and all of them.
fn records_done_and_total(data: &Path, threads: usize) -> (u64, u64) {
    let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count() as u64;
    let (mut done, mut total) = (0, 0);
    for n in 0..threads.max(1) {
        let text = std::fs::read(part_binlog_path(data, n)).unwrap_or_default();
        let mark = restore::read_mark(&part_mark_path(data, n)).min(text.len());
        done += lines(&text[..mark]);
        total += lines(&text);
    }
    (done, total)
}

/// FETCH_ONE_PATH_BINLOG (26) from the peer: the text lines, checked
/// against the byte count that ends the stream.
async fn fetch_binlog(storage: &Storage, index: u8, peer: &str) -> Result<Vec<u8>, String> {
    let timeout = Duration::from_secs(storage.conf.network_timeout_secs.max(1));
    let mut conn = Conn::connect_from(peer, storage.client_bind_ip(), CONNECT_TIMEOUT, timeout)
        .await
        .map_err(|e| format!("peer {peer}: {e}"))?;
    let mut body = BytesMut::new();
    fdfs_proto::wire::put_fixed(&mut body, storage.group.as_bytes(), GROUP_NAME_MAX_LEN);
    body.extend_from_slice(&[index]);
    conn.send(StorageCmd::FetchOnePathBinlog.into(), 0, &body)
        .await
        .map_err(|e| format!("peer {peer}: {e}"))?;
    conn.recv_header()
        .await
        .map_err(|e| format!("peer {peer}: {e}"))?;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(timeout, conn.stream.read(&mut buf))
            .await
            .map_err(|_| format!("peer {peer}: binlog stream timed out"))?
            .map_err(|e| format!("peer {peer}: {e}"))?;
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    split_trailer(all).ok_or_else(|| format!("peer {peer}: binlog stream cut short"))
}

/// The text before the 8-byte count, when the count matches.
pub fn split_trailer(mut all: Vec<u8>) -> Option<Vec<u8>> {
    let text_len = all.len().checked_sub(8)?;
    let count = u64::from_be_bytes(all[text_len..].try_into().ok()?);
    if count != text_len as u64 {
        return None;
    }
    all.truncate(text_len);
    Some(all)
}

/// Deals the lines out to `threads` files, line k to worker k mod threads.
fn split_binlog(data: &Path, text: &[u8], threads: usize) -> std::io::Result<()> {
    let count = threads.max(1);
    let mut parts = vec![Vec::new(); count];
    for (k, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        parts[k % count].extend_from_slice(line);
    }
    for (n, part) in parts.iter().enumerate() {
        write_atomic(&part_binlog_path(data, n), part)?;
        let _ = std::fs::remove_file(part_mark_path(data, n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_reads_back_what_it_wrote() {
        let f = Flag {
            saved_storage_status: 7,
            fetch_binlog_done: true,
            recovery_threads: 4,
        };
        assert_eq!(Flag::parse(&f.to_text()), Some(f));
    }

    #[test]
    fn a_stream_is_accepted_only_with_its_matching_count() {
        let mut ok = b"1 C x\n".to_vec();
        ok.extend_from_slice(&6u64.to_be_bytes());
        assert_eq!(split_trailer(ok), Some(b"1 C x\n".to_vec()));
        let mut short = b"1 C x\n".to_vec();
        short.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(split_trailer(short), None);
        assert_eq!(split_trailer(vec![0; 3]), None);
    }

    #[test]
    fn a_store_path_added_to_a_member_is_not_recovered_a_wiped_known_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let base_data = dir.path().join("data");
        std::fs::create_dir_all(&base_data).unwrap();
        let paths: Vec<StorePath> = (0..2)
            .map(|i| StorePath {
                root: dir.path().join(format!("p{i}")),
                readonly: false,
            })
            .collect();
        // First start: nothing is known, nothing is recovered.
        assert_eq!(
            wiped_paths(&base_data, &paths[..1]).unwrap(),
            Vec::<usize>::new()
        );
        std::fs::create_dir_all(paths[0].data_dir().join("00/00")).unwrap();
        // A second path is added: it is new, not wiped.
        assert_eq!(
            wiped_paths(&base_data, &paths).unwrap(),
            Vec::<usize>::new()
        );
        std::fs::create_dir_all(paths[1].data_dir().join("00/00")).unwrap();
        std::fs::remove_dir_all(&paths[0].root).unwrap();
        assert_eq!(wiped_paths(&base_data, &paths).unwrap(), vec![0]);
    }
}
