//! Which storage of the group is the trunk server, as the trackers say, and the switch of this storage into and out of that role.
//!
//! The leader tracker names the trunk server in its heartbeat answers
//! (PROTOCOL.md §4.3, `ChangeNotice::trunk_server`, an all-zero brief for
//! "none"). When the name becomes ours, this storage opens its trunk space
//! and starts answering ALLOC_SPACE; when it names someone else, allocation
//! stops at once. A storage that takes the role over quarantines every free
//! slot it knows: its copy of the trunk binlog may lag the old server's, so
//! such a slot might already hold someone's file (issue 15 point 4).
//!
//! The one exception is a storage resuming its own tenure (a restart of a
//! lone trunk server): its binlog is complete when nobody served since.
//! Every tenure starts by raising the group's trunk file id on the leader
//! (72/73), so "nobody served since" is exactly: this storage left the
//! `data/trunk/last_server` marker (the id its tenure reserved) when it
//! served, and the id it reserves now is the one right after the highest of
//! that id and the ids its own binlog knows.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fdfs_client::{ClientError, Conn};
use fdfs_proto::stat::StorageBrief;
use fdfs_proto::{Status, TrackerCmd, TrunkLocation};
use tokio::sync::watch;

use crate::error::{OpError, OpResult};
use crate::ops::blocking;
use crate::state::{lock, Storage};

pub use super::space::Alloc;
use super::space::{Compressed, ScrubReport, TrunkSpace};

/// The trunk space as this module uses it: the contract of
/// `trunk::space::TrunkSpace` (blocking methods, interior locking).
pub trait SpaceApi: Send + Sync {
    fn alloc(&self, store_path_index: u8, file_size: u32) -> io::Result<Alloc>;
    fn add_trunk_file(&self, store_path_index: u8, trunk_file_id: u32)
        -> io::Result<TrunkLocation>;
    fn confirm(&self, slot: &TrunkLocation, ok: bool) -> io::Result<()>;
    /// Several allocations at once (see `TrunkSpace::alloc_batch`).
    fn alloc_batch(&self, wants: &[(u8, u32)]) -> io::Result<Vec<io::Result<Alloc>>> {
        Ok(wants.iter().map(|&(i, n)| self.alloc(i, n)).collect())
    }
    /// Several confirms at once (see `TrunkSpace::confirm_batch`).
    fn confirm_batch(&self, settled: &[(TrunkLocation, bool)]) -> Vec<io::Result<()>> {
        settled.iter().map(|(s, ok)| self.confirm(s, *ok)).collect()
    }
    fn free(&self, slot: &TrunkLocation) -> io::Result<()>;
    /// FREE_SPACE (29) of a deleted file's slot (see
    /// `TrunkSpace::free_deleted`).
    fn free_deleted(&self, slot: &TrunkLocation, _every_peer_deleted: bool) -> io::Result<()> {
        self.free(slot)
    }
    fn binlog_size(&self) -> u64;
    fn free_bytes(&self) -> u64;
    fn max_trunk_file_id(&self) -> u32;
    fn quarantine_all(&self);
    fn apply_pushed(&self, bytes: &[u8]) -> io::Result<()>;
    fn reset(&self) -> io::Result<()>;
    fn binlog_path(&self) -> PathBuf;
    fn free_stale_unconfirmed(&self, older_than: Duration) -> io::Result<usize>;
    fn save_snapshot(&self) -> io::Result<()>;
    // `fdfs trunk check` (trunk::scrub); a space without them refuses.
    fn scrub_local(&self) -> io::Result<ScrubReport> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn scrub_range(&self, _slot: &TrunkLocation) -> io::Result<Vec<TrunkLocation>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn quarantined(&self) -> Vec<TrunkLocation> {
        Vec::new()
    }
    fn release_quarantine(&self, _slot: &TrunkLocation) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn unconfirmed_ages(&self) -> Vec<(TrunkLocation, Duration)> {
        Vec::new()
    }
    fn free_leaked(&self, _slot: &TrunkLocation, _older_than: Duration) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    // `trunk_compress_binlog_*`; a space without it is never compressed.
    fn compress(&self) -> io::Result<Option<Compressed>> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Opens this storage's trunk space (blocking).
pub type SpaceOpener = dyn Fn(&Storage) -> io::Result<Arc<dyn SpaceApi>> + Send + Sync;

/// Opens `trunk::space::TrunkSpace` from the storage's paths and the
/// tracker's trunk parameters.
fn open_default_space(storage: &Storage) -> io::Result<Arc<dyn SpaceApi>> {
    let roots: Vec<PathBuf> = storage.paths.iter().map(|p| p.root.clone()).collect();
    let space = TrunkSpace::open(
        &storage.conf.base_path,
        &roots,
        storage.conf.subdir_count_per_path,
        &storage.params().trunk,
    )?;
    Ok(Arc::new(space))
}

impl SpaceApi for TrunkSpace {
    fn alloc(&self, store_path_index: u8, file_size: u32) -> io::Result<Alloc> {
        TrunkSpace::alloc(self, store_path_index, file_size)
    }
    fn add_trunk_file(
        &self,
        store_path_index: u8,
        trunk_file_id: u32,
    ) -> io::Result<TrunkLocation> {
        TrunkSpace::add_trunk_file(self, store_path_index, trunk_file_id)
    }
    fn confirm(&self, slot: &TrunkLocation, ok: bool) -> io::Result<()> {
        TrunkSpace::confirm(self, slot, ok)
    }
    fn alloc_batch(&self, wants: &[(u8, u32)]) -> io::Result<Vec<io::Result<Alloc>>> {
        TrunkSpace::alloc_batch(self, wants)
    }
    fn confirm_batch(&self, settled: &[(TrunkLocation, bool)]) -> Vec<io::Result<()>> {
        TrunkSpace::confirm_batch(self, settled)
    }
    fn free(&self, slot: &TrunkLocation) -> io::Result<()> {
        TrunkSpace::free(self, slot)
    }
    fn free_deleted(&self, slot: &TrunkLocation, every_peer_deleted: bool) -> io::Result<()> {
        TrunkSpace::free_deleted(self, slot, every_peer_deleted)
    }
    fn binlog_size(&self) -> u64 {
        TrunkSpace::binlog_size(self)
    }
    fn free_bytes(&self) -> u64 {
        TrunkSpace::free_bytes(self)
    }
    fn max_trunk_file_id(&self) -> u32 {
        TrunkSpace::max_trunk_file_id(self)
    }
    fn quarantine_all(&self) {
        TrunkSpace::quarantine_all(self)
    }
    fn apply_pushed(&self, bytes: &[u8]) -> io::Result<()> {
        TrunkSpace::apply_pushed(self, bytes)
    }
    fn reset(&self) -> io::Result<()> {
        TrunkSpace::reset(self)
    }
    fn binlog_path(&self) -> PathBuf {
        TrunkSpace::binlog_path(self)
    }
    fn free_stale_unconfirmed(&self, older_than: Duration) -> io::Result<usize> {
        TrunkSpace::free_stale_unconfirmed(self, older_than)
    }
    fn save_snapshot(&self) -> io::Result<()> {
        TrunkSpace::save_snapshot(self)
    }
    fn scrub_local(&self) -> io::Result<ScrubReport> {
        TrunkSpace::scrub_local(self)
    }
    fn scrub_range(&self, slot: &TrunkLocation) -> io::Result<Vec<TrunkLocation>> {
        TrunkSpace::scrub_range(self, slot)
    }
    fn quarantined(&self) -> Vec<TrunkLocation> {
        TrunkSpace::quarantined(self)
    }
    fn release_quarantine(&self, slot: &TrunkLocation) -> io::Result<()> {
        TrunkSpace::release_quarantine(self, slot)
    }
    fn unconfirmed_ages(&self) -> Vec<(TrunkLocation, Duration)> {
        TrunkSpace::unconfirmed_ages(self)
    }
    fn free_leaked(&self, slot: &TrunkLocation, older_than: Duration) -> io::Result<()> {
        TrunkSpace::free_leaked(self, slot, older_than)
    }
    fn compress(&self) -> io::Result<Option<Compressed>> {
        TrunkSpace::compress(self)
    }
}

/// What the trackers last said about the group's trunk server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Announced {
    /// Nothing heard since this process started.
    #[default]
    Unknown,
    /// The leader said the group has none.
    None,
    Server(StorageBrief),
}

/// The role as other tasks see it (watch channel).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleView {
    pub announced: Announced,
    /// The announced server is this storage.
    pub is_self: bool,
    /// This storage allocates now: it is the announced server and its
    /// trunk space is open.
    pub serving: bool,
}

struct RoleState {
    view: RoleView,
    /// The leader tracker as its last brief named it (`port` = tracker port).
    leader: Option<StorageBrief>,
    /// Bumped on every change of the announced server, so a slow switch
    /// into the role that was overtaken by a newer announcement gives up.
    epoch: u64,
}

pub struct TrunkRole {
    state: Mutex<RoleState>,
    changes: watch::Sender<RoleView>,
    space: Mutex<Option<Arc<dyn SpaceApi>>>,
    /// Held while the space is being opened (blocking callers only).
    opening: Mutex<()>,
    opener: Box<SpaceOpener>,
    /// One new trunk file at a time: concurrent allocations that all found
    /// no room wait for the one file being made.
    creating: tokio::sync::Mutex<()>,
    /// Trunk files made by this process, so waiters on `creating` see
    /// that a file appeared while they waited.
    files_made: AtomicU64,
    /// Held while the trunk binlog is pushed to a member or compressed:
    /// a push reads it at its member's mark, which a compression resets.
    binlog_io: tokio::sync::Mutex<()>,
    /// Wakes the pusher early after a free: a member that may take the
    /// role over should learn of each free (and mark its tombstone, see
    /// `space::newly_freed`) before this server can die.
    push_soon: tokio::sync::Notify,
    /// Trunk file ids wanted from the leader tracker.
    id_requests: Mutex<std::collections::VecDeque<IdRequest>>,
    id_wanted: tokio::sync::Notify,
    /// Idle connections to the trunk server (member side).
    pub(crate) conns: fdfs_client::pool::Pool<Conn>,
    /// Loaded on first use, from the data directory.
    tombstones: std::sync::OnceLock<super::tombstones::Tombstones>,
    /// The trunk server's own small uploads waiting for their batch.
    pub(crate) batches: super::batch::Batches,
}

impl Default for TrunkRole {
    fn default() -> Self {
        Self::with_opener(Box::new(open_default_space))
    }
}

/// True for the all-zero brief that means "no trunk server".
fn is_empty_brief(b: &StorageBrief) -> bool {
    b.port == 0 && b.id.is_empty() && b.ip_addr.is_empty()
}

/// How long an idle connection to the trunk server is kept.
const TRUNK_CONN_MAX_IDLE: Duration = Duration::from_secs(60);

impl TrunkRole {
    pub fn with_opener(opener: Box<SpaceOpener>) -> Self {
        let (changes, _) = watch::channel(RoleView::default());
        TrunkRole {
            state: Mutex::new(RoleState {
                view: RoleView::default(),
                leader: None,
                epoch: 0,
            }),
            changes,
            space: Mutex::new(None),
            opening: Mutex::new(()),
            opener,
            creating: tokio::sync::Mutex::new(()),
            files_made: AtomicU64::new(0),
            binlog_io: tokio::sync::Mutex::new(()),
            push_soon: tokio::sync::Notify::new(),
            id_requests: Mutex::new(Default::default()),
            id_wanted: tokio::sync::Notify::new(),
            conns: fdfs_client::pool::Pool::new(TRUNK_CONN_MAX_IDLE),
            tombstones: std::sync::OnceLock::new(),
            batches: Default::default(),
        }
    }

    /// Trunk files deleted here before they arrived (blocking on first use).
    pub fn tombstones(&self, data_dir: &Path) -> OpResult<&super::tombstones::Tombstones> {
        if let Some(t) = self.tombstones.get() {
            return Ok(t);
        }
        let loaded = super::tombstones::Tombstones::load(data_dir)?;
        Ok(self.tombstones.get_or_init(|| loaded))
    }

    pub fn view(&self) -> RoleView {
        lock(&self.state).view.clone()
    }

    /// Changes of the role, for tasks that act on them.
    pub fn subscribe(&self) -> watch::Receiver<RoleView> {
        self.changes.subscribe()
    }

    /// True while this storage hands out trunk space.
    pub fn serving(&self) -> bool {
        lock(&self.state).view.serving
    }

    /// The trunk server to ask, when one is known and it is not us.
    pub fn remote_server(&self) -> Option<StorageBrief> {
        let st = lock(&self.state);
        match &st.view.announced {
            Announced::Server(b) if !st.view.is_self => Some(b.clone()),
            _ => None,
        }
    }

    pub fn leader(&self) -> Option<StorageBrief> {
        lock(&self.state).leader.clone()
    }

    /// Remembers the leader tracker a heartbeat answer named.
    pub fn set_leader(&self, brief: StorageBrief) {
        lock(&self.state).leader = (!is_empty_brief(&brief)).then_some(brief);
    }

    /// The trunk space when it is open.
    pub fn space(&self) -> Option<Arc<dyn SpaceApi>> {
        lock(&self.space).clone()
    }

    /// The trunk space, opened on first use (blocking). Members need it
    /// too: they keep the trunk server's binlog (cmd 30) and so can take
    /// the role over.
    pub fn open_space(&self, storage: &Storage) -> io::Result<Arc<dyn SpaceApi>> {
        // Opening replays the binlog and may take long: async callers of
        // `space()` must not wait for it, so it runs under a lock of its own.
        let _one_opener = lock(&self.opening);
        if let Some(s) = self.space() {
            return Ok(s);
        }
        let opened = (self.opener)(storage)?;
        *lock(&self.space) = Some(opened.clone());
        Ok(opened)
    }

    /// Writes `storage_trunk.dat` when the trunk space is open, so a
    /// restart replays only the binlog written since (blocking; with the
    /// other state files, and at stop).
    pub fn save_snapshot(&self) {
        let Some(space) = self.space() else {
            return;
        };
        if let Err(e) = space.save_snapshot() {
            tracing::warn!(error = %e, "cannot write storage_trunk.dat");
        }
    }

    /// Installs an already open space (tests, and a space opened by
    /// another path first).
    #[cfg(test)]
    pub(crate) fn install_space(&self, space: Arc<dyn SpaceApi>) {
        *lock(&self.space) = Some(space);
    }

    fn publish(&self, st: &RoleState) {
        self.changes.send_replace(st.view.clone());
    }

    /// Applies the trunk brief of a heartbeat answer.
    pub fn announce(&self, storage: &Arc<Storage>, brief: StorageBrief) {
        let announced = if is_empty_brief(&brief) {
            Announced::None
        } else {
            Announced::Server(brief)
        };
        let is_self = match &announced {
            Announced::Server(b) => is_this_storage(storage, b),
            _ => false,
        };
        let mut st = lock(&self.state);
        if same_server(&st.view.announced, &announced) && st.view.is_self == is_self {
            // Only the status byte may differ: the same server, no switch
            // (a second switch would quarantine our free space again).
            st.view.announced = announced;
            return;
        }
        tracing::info!(trunk_server = ?announced, is_self, "trunk server announced");
        st.epoch += 1;
        st.view.announced = announced;
        st.view.is_self = is_self;
        if !is_self && st.view.serving {
            tracing::warn!("no longer the trunk server: allocation stops");
            st.view.serving = false;
        }
        if !is_self && matches!(st.view.announced, Announced::Server(_)) {
            // Another storage serves now: our binlog stops being the
            // group's record (its tenure also raised the trunk file id,
            // which the resume check sees even if this unlink is late).
            let marker = last_server_marker(storage);
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_file(marker);
            });
        }
        let epoch = st.epoch;
        self.publish(&st);
        drop(st);
        if is_self {
            let storage = storage.clone();
            tokio::spawn(async move { become_server(storage, epoch).await });
        }
    }

    /// Whether the switch started at `epoch` still stands; if so, this
    /// storage starts allocating.
    fn start_serving(&self, epoch: u64) -> bool {
        let mut st = lock(&self.state);
        if st.epoch != epoch || !st.view.is_self {
            return false;
        }
        st.view.serving = true;
        self.publish(&st);
        true
    }

    /// Whether the switch of `epoch` is still the current one and serving.
    fn still_serving(&self, epoch: u64) -> bool {
        let st = lock(&self.state);
        st.epoch == epoch && st.view.serving
    }

    /// The space to allocate from, or EINVAL (as the original answers a
    /// storage that is not the trunk server).
    pub(crate) fn serving_space(&self) -> OpResult<Arc<dyn SpaceApi>> {
        if !self.serving() {
            return Err(OpError::invalid("this storage is not the trunk server"));
        }
        self.space()
            .ok_or_else(|| OpError::invalid("trunk space not open"))
    }
}

/// Both name the same server (or both none / unknown), whatever its status.
fn same_server(a: &Announced, b: &Announced) -> bool {
    match (a, b) {
        (Announced::Server(x), Announced::Server(y)) => {
            x.id == y.id && x.ip_addr == y.ip_addr && x.port == y.port
        }
        _ => a == b,
    }
}

/// The brief names this storage: its port and its id or address.
fn is_this_storage(storage: &Storage, b: &StorageBrief) -> bool {
    b.port == i32::from(storage.port)
        && (b.id == storage.self_id() || b.ip_addr == storage.self_ip().to_string())
}

/// Opens the trunk space and starts allocating, unless another
/// announcement came in meanwhile.
async fn become_server(storage: Arc<Storage>, epoch: u64) {
    if !storage.params().trunk.use_trunk_file {
        tracing::warn!("named trunk server, but use_trunk_file is off here");
        return;
    }
    let st = storage.clone();
    let opened = blocking(move || {
        let space = st.trunk.open_space(&st)?;
        let last_tenure_id = std::fs::read_to_string(last_server_marker(&st))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        Ok((space, last_tenure_id))
    })
    .await;
    let (space, last_tenure_id) = match opened {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e.reason, "cannot open the trunk space; not serving as trunk server");
            return;
        }
    };
    let (resumed, tenure_id) = start_tenure(&storage, &space, last_tenure_id).await;
    let st = storage.clone();
    let kept = space.clone();
    let ready = blocking(move || {
        if !resumed {
            kept.quarantine_all();
        }
        match tenure_id {
            Some(id) => write_last_server_marker(&st, id)?,
            // A marker of an older tenure would vouch for a binlog that
            // may have missed another server's tenure since.
            None => match std::fs::remove_file(last_server_marker(&st)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_op(e)),
                _ => {}
            },
        }
        Ok(kept.free_bytes())
    })
    .await;
    let free_bytes = match ready {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e.reason, "cannot mark the trunk tenure; not serving as trunk server");
            return;
        }
    };
    if !storage.trunk.start_serving(epoch) {
        return;
    }
    tracing::info!(
        quarantined = !resumed,
        free_bytes,
        "serving as the group's trunk server"
    );
    tokio::spawn(push_loop(storage.clone(), epoch));
    tokio::spawn(maintenance_loop(storage.clone(), epoch));
    // Allocations a crash left unconfirmed: the member that asked gives up
    // after network_timeout, so only then is the slot surely abandoned.
    let wait = Duration::from_secs(storage.conf.network_timeout_secs.max(1));
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let freed =
            blocking(move || Ok(free_abandoned_allocations(&storage, &*space, wait)?)).await;
        match freed {
            Ok(0) => {}
            Ok(n) => tracing::warn!(slots = n, "freed trunk slots left unconfirmed"),
            Err(e) => tracing::error!(error = %e.reason, "cannot free unconfirmed trunk slots"),
        }
    });
}

/// Frees the allocations left unconfirmed for `older_than` (at start: those
/// of the last run). An upload of this storage's own that a crash cut
/// between its slot write and its confirm left a header there that no file
/// name has (names are handed out after the confirm, and the binlog line
/// is written before the answer). Freed as it is, the slot would refuse
/// every later upload and replica as "holding another file" (rule 4): a
/// replica refused for good is a copy lost. So such a header is cleared
/// first. A header that a live name of this storage's binlog does name is
/// an acknowledged file whose confirm was lost: its slot is confirmed, not
/// freed. Blocking.
fn free_abandoned_allocations(
    storage: &Storage,
    space: &dyn SpaceApi,
    older_than: Duration,
) -> io::Result<usize> {
    let mut live = None;
    for (slot, age) in space.unconfirmed_ages() {
        if age < older_than {
            continue;
        }
        let Some(path) = storage.paths.get(usize::from(slot.store_path_index)) else {
            continue;
        };
        let headers = space.scrub_range(&slot)?;
        if headers.is_empty() {
            continue;
        }
        let live = match &live {
            Some(l) => l,
            None => live.insert(super::scrub::live_trunk_names(storage)?),
        };
        if live.overlapping(&slot) > 0 {
            tracing::warn!(slot = ?slot, "an unconfirmed trunk slot holds a file the binlog names; kept");
            space.confirm(&slot, true)?;
            continue;
        }
        for at in headers {
            tracing::warn!(slot = ?at, "clearing the header an upload cut short by a crash left in an unconfirmed trunk slot");
            super::slot::clear_slot(&path.root, &at)?;
        }
    }
    space.free_stale_unconfirmed(older_than)
}

/// How often the trunk server looks for binlog lines to push.
const PUSH_INTERVAL: Duration = Duration::from_millis(500);
/// After a free woke the pusher, how long it waits for more lines to send
/// along: frees come in bursts, and each push rereads the member's mark.
const PUSH_AFTER_FREE: Duration = Duration::from_millis(20);
/// Most trunk binlog bytes pushed in one SYNC_BINLOG (30), well under the
/// members' network buffer.
const PUSH_CHUNK_BYTES: usize = 32 * 1024;

/// While this storage serves as trunk server (the switch of `epoch`):
/// pushes its trunk binlog to every other member with SYNC_BINLOG (30),
/// from the member's mark `data/trunk/<id>.mark` (`binlog_offset=`). A
/// member without a mark, or with a mark past our binlog's end, first gets
/// TRUNCATE_BINLOG_FILE (33) and then everything.
/// `data/trunk/last_server`: present while this storage's trunk binlog is
/// the one it wrote as the group's trunk server; it holds the trunk file id
/// reserved when that tenure began (ours, not the original's).
fn last_server_marker(storage: &Storage) -> PathBuf {
    storage
        .conf
        .base_path
        .join("data")
        .join("trunk")
        .join("last_server")
}

fn write_last_server_marker(storage: &Storage, tenure_id: u32) -> OpResult<()> {
    let marker = last_server_marker(storage);
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).map_err(io_op)?;
    }
    std::fs::write(&marker, format!("{tenure_id}\n")).map_err(io_op)
}

/// Raises the group's trunk file id for this tenure and tells whether the
/// tenure may keep the free space it knows: only when this storage served
/// last (`last_tenure_id`, from its marker) and no id was taken since the
/// highest it knows, so no other server handed out space meanwhile.
/// Returns the verdict and the reserved id. Without a leader to ask, the
/// answer is no: quarantine is always safe.
async fn start_tenure(
    storage: &Arc<Storage>,
    space: &Arc<dyn SpaceApi>,
    last_tenure_id: Option<u32>,
) -> (bool, Option<u32>) {
    let seen = space.clone();
    let Ok(binlog_max) = blocking(move || Ok(seen.max_trunk_file_id())).await else {
        return (false, None);
    };
    let known_max = binlog_max.max(last_tenure_id.unwrap_or(0));
    match reserve_trunk_file_id(storage, known_max).await {
        Ok(id) => {
            let resumed = last_tenure_id.is_some() && Some(id) == known_max.checked_add(1);
            tracing::info!(
                reserved_trunk_file_id = id,
                known_max,
                resumed,
                "trunk tenure starts"
            );
            (resumed, Some(id))
        }
        Err(e) => {
            tracing::warn!(error = %e.reason, "no trunk file id for the new tenure: known free space quarantined");
            (false, None)
        }
    }
}

async fn push_loop(storage: Arc<Storage>, epoch: u64) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PUSH_INTERVAL) => {}
            _ = storage.trunk.push_soon.notified() => {
                tokio::time::sleep(PUSH_AFTER_FREE).await;
            }
        }
        if storage.is_stopping() || !storage.trunk.still_serving(epoch) {
            return;
        }
        let Some(space) = storage.trunk.space() else {
            return;
        };
        let members: Vec<StorageBrief> = lock(&storage.peers)
            .members
            .values()
            .filter(|m| !is_this_storage(&storage, m))
            .filter(|m| {
                use fdfs_proto::stat::storage_status::{ACTIVE, ONLINE, SYNCING, WAIT_SYNC};
                [ACTIVE, ONLINE, SYNCING, WAIT_SYNC].contains(&m.status)
            })
            .cloned()
            .collect();
        for m in members {
            if let Err(e) = push_to(&storage, &space, &m).await {
                tracing::debug!(member = %m.id, error = %e.reason, "trunk binlog push failed; retried");
            }
        }
    }
}

fn mark_path(storage: &Storage, member_id: &str) -> PathBuf {
    super::server::trunk_dir(storage).join(format!("{member_id}.mark"))
}

/// Pushes what member `m` has not got yet, one chunk of whole lines per
/// call, until it is level with our binlog.
async fn push_to(
    storage: &Arc<Storage>,
    space: &Arc<dyn SpaceApi>,
    m: &StorageBrief,
) -> OpResult<()> {
    let _no_compression = storage.trunk.binlog_io.lock().await;
    let mark = mark_path(storage, &m.id);
    let (read_mark, binlog) = (mark.clone(), space.binlog_path());
    let (mut offset, size) = blocking(move || {
        let offset = std::fs::read_to_string(&read_mark)
            .ok()
            .and_then(|t| crate::state::ini_value(&t, "binlog_offset"))
            .and_then(|v| v.parse::<u64>().ok());
        let size = match std::fs::metadata(&binlog) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok((offset, size))
    })
    .await?;
    if offset.is_none_or(|o| o > size) {
        super::client::call_member(
            storage,
            m,
            fdfs_proto::StorageCmd::TrunkTruncateBinlogFile,
            &[],
        )
        .await?;
        offset = Some(0);
        write_mark(storage, &mark, 0).await?;
    }
    let mut offset = offset.unwrap_or(0);
    while offset < size {
        let binlog = space.binlog_path();
        let chunk = blocking(move || {
            use std::os::unix::fs::FileExt;
            let file = std::fs::File::open(&binlog)?;
            let want = usize::try_from(size - offset)
                .unwrap_or(PUSH_CHUNK_BYTES)
                .min(PUSH_CHUNK_BYTES);
            let mut buf = vec![0u8; want];
            let n = file.read_at(&mut buf, offset)?;
            buf.truncate(n);
            // Whole lines only: the last one may still be being written.
            let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            buf.truncate(end);
            Ok(buf)
        })
        .await?;
        if chunk.is_empty() {
            // One line longer than a chunk cannot be a trunk binlog line.
            return Ok(());
        }
        super::client::call_member(storage, m, fdfs_proto::StorageCmd::TrunkSyncBinlog, &chunk)
            .await?;
        offset += chunk.len() as u64;
        write_mark(storage, &mark, offset).await?;
    }
    Ok(())
}

async fn write_mark(storage: &Arc<Storage>, mark: &std::path::Path, offset: u64) -> OpResult<()> {
    let (dir, mark) = (super::server::trunk_dir(storage), mark.to_path_buf());
    blocking(move || {
        std::fs::create_dir_all(&dir)?;
        crate::state::write_atomic(&mark, format!("binlog_offset={offset}\n").as_bytes())?;
        Ok(())
    })
    .await
}

fn io_op(e: io::Error) -> OpError {
    e.into()
}

/// Allocation on the trunk server itself: a slot for `file_size` content
/// bytes in store path `index`, making a new trunk file when none fits.
pub async fn alloc_local(
    storage: &Arc<Storage>,
    index: u8,
    file_size: u32,
) -> OpResult<TrunkLocation> {
    // Two rounds: a new trunk file always fits a file that may be trunked
    // (slot_max_size is below trunk_file_size), unless a burst of others
    // used it up first.
    for _ in 0..3 {
        let space = storage.trunk.serving_space()?;
        match blocking(move || space.alloc(index, file_size).map_err(io_op)).await? {
            Alloc::Slot(slot) => return Ok(slot),
            Alloc::NeedTrunkFile => create_trunk_file(storage, index).await?,
        }
    }
    Err(OpError::new(
        Status::ENOSPC,
        "no trunk slot after new trunk files",
    ))
}

/// Makes one new trunk file in store path `index` (unless another task
/// made room meanwhile).
pub(crate) async fn create_trunk_file(storage: &Arc<Storage>, index: u8) -> OpResult<()> {
    let made_before = storage.trunk.files_made.load(Ordering::Acquire);
    let _one_at_a_time = storage.trunk.creating.lock().await;
    if storage.trunk.files_made.load(Ordering::Acquire) != made_before {
        // Another allocation made a file while we waited: try that first.
        return Ok(());
    }
    make_trunk_file(storage, index).await
}

/// Makes one new trunk file in store path `index` (the caller holds
/// `creating`): id from the trackers first (72, then 73 to the leader), so
/// no two trunk servers ever create the same file.
async fn make_trunk_file(storage: &Arc<Storage>, index: u8) -> OpResult<()> {
    let space = storage.trunk.serving_space()?;
    let seen = space.clone();
    let seen_max = blocking(move || Ok(seen.max_trunk_file_id())).await?;
    // The flag's id counts too: the original's compressed trunk binlog
    // no longer names a trunk file that has no free space left.
    let flag_max = u32::try_from(lock(&storage.init_flag).current_trunk_file_id).unwrap_or(0);
    let id = reserve_trunk_file_id(storage, seen_max.max(flag_max)).await?;
    let made = space.clone();
    let slot = blocking(move || made.add_trunk_file(index, id).map_err(io_op)).await?;
    storage.trunk.files_made.fetch_add(1, Ordering::Release);
    {
        // Written with the other state files; the original reads it back.
        let mut flag = lock(&storage.init_flag);
        flag.current_trunk_file_id = flag.current_trunk_file_id.max(i64::from(id));
    }
    tracing::info!(
        trunk_file_id = id,
        path = %slot.trunk_file_relative_path(),
        store_path_index = index,
        "trunk file created"
    );
    Ok(())
}

/// One round of `trunk_create_file_advance`: as the original, as many
/// whole trunk files as fit between the free trunk space and
/// `trunk_create_file_space_threshold`, each in the store path an upload
/// of that size would take (none when every path would fall below its
/// reserve) and each with its id reserved on the leader tracker first,
/// exactly as a file made on demand. Returns how many were made.
pub async fn create_files_ahead(storage: &Arc<Storage>) -> OpResult<usize> {
    let params = storage.params();
    let (threshold, file_size) = (
        params.trunk.trunk_create_file_space_threshold_bytes,
        params.trunk.trunk_file_size_bytes.max(1),
    );
    let space = storage.trunk.serving_space()?;
    let free = space.free_bytes();
    let count = threshold.saturating_sub(free) / file_size;
    let mut made = 0usize;
    for _ in 0..count {
        let st = storage.clone();
        let spaces = blocking(move || Ok(st.refresh_spaces())).await?;
        let index = {
            let mut rr = lock(&storage.round_robin_path);
            crate::store::choose_path(
                &storage.paths,
                &spaces,
                &params.reserved_storage_space,
                file_size / (1024 * 1024),
                None,
                params.store_path_mode,
                &mut rr,
            )
        };
        let Some(index) = index.and_then(|i| u8::try_from(i).ok()) else {
            tracing::warn!(
                made,
                wanted = count,
                "no store path has room for another trunk file ahead of need"
            );
            break;
        };
        let _one_at_a_time = storage.trunk.creating.lock().await;
        make_trunk_file(storage, index).await?;
        made += 1;
    }
    if made > 0 {
        tracing::info!(
            made,
            free_bytes = space.free_bytes(),
            threshold,
            "trunk files created ahead of need"
        );
    }
    Ok(made)
}

/// Compresses the trunk binlog now (between pushes to members, which
/// then start over from a TRUNCATE_BINLOG_FILE, 33, as the original's
/// do); None when nothing changed since the last compression.
pub async fn compress_binlog(storage: &Arc<Storage>) -> OpResult<Option<Compressed>> {
    let space = storage.trunk.serving_space()?;
    let _no_push = storage.trunk.binlog_io.lock().await;
    let st = storage.clone();
    let done = blocking(move || {
        let done = space.compress()?;
        if done.is_some() {
            lock(&st.init_flag).trunk_last_compress_time = crate::state::now_secs();
            st.save_init_flag()?;
        }
        Ok(done)
    })
    .await?;
    if let Some(c) = done {
        tracing::info!(
            before_bytes = c.before_bytes,
            after_bytes = c.after_bytes,
            "trunk binlog compressed"
        );
    }
    Ok(done)
}

/// How often the trunk server looks at its schedules.
const MAINTENANCE_TICK: Duration = Duration::from_secs(1);

/// While this storage serves as trunk server (the switch of `epoch`):
/// trunk files made ahead of need (`trunk_create_file_advance`, at
/// `trunk_create_file_time_base` then every `trunk_create_file_interval`)
/// and the trunk binlog compressed (at `trunk_compress_binlog_time_base`
/// then every `trunk_compress_binlog_interval`, and whenever
/// `trunk_compress_binlog_min_interval` has passed since the last
/// compression). The parameters are read at every tick: a tracker that
/// changes them changes the schedule.
async fn maintenance_loop(storage: Arc<Storage>, epoch: u64) {
    let mut create = Schedule::default();
    let mut compress = Schedule::default();
    // When the binlog was last found unchanged: the minimum interval
    // counts from then too.
    let mut unchanged_at = 0i64;
    loop {
        tokio::time::sleep(MAINTENANCE_TICK).await;
        if storage.is_stopping() || !storage.trunk.still_serving(epoch) {
            return;
        }
        let p = storage.params().trunk;
        let now = crate::state::now_secs();
        let create_interval = if p.trunk_create_file_advance {
            p.trunk_create_file_interval_secs
        } else {
            0
        };
        if create.due(now, p.trunk_create_file_time_base, create_interval) {
            if let Err(e) = create_files_ahead(&storage).await {
                tracing::warn!(error = %e.reason, "trunk files not created ahead of need");
            }
        }
        let scheduled = compress.due(
            now,
            p.trunk_compress_binlog_time_base,
            p.trunk_compress_binlog_interval_secs,
        );
        let last = lock(&storage.init_flag)
            .trunk_last_compress_time
            .max(unchanged_at);
        let min = i64::try_from(p.trunk_compress_binlog_min_interval_secs).unwrap_or(i64::MAX);
        if scheduled || (min > 0 && now.saturating_sub(last) >= min) {
            match compress_binlog(&storage).await {
                Ok(None) => unchanged_at = now,
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(error = %e.reason, "trunk binlog not compressed"),
            }
        }
    }
}

/// A job run at a local time of day and then every `interval` seconds
/// (the original's scheduler with a time base): its runs fall on the grid
/// of that time plus whole intervals.
#[derive(Debug, Default)]
struct Schedule {
    /// `(time base, interval)` the next run was planned with.
    planned: Option<((u8, u8), u64)>,
    next: i64,
}

impl Schedule {
    /// Whether a run is due at `now`; an interval of 0 never runs. A
    /// changed time base or interval plans afresh.
    fn due(&mut self, now: i64, base: (u8, u8), interval_secs: u64) -> bool {
        let Ok(interval) = i64::try_from(interval_secs) else {
            return false;
        };
        if interval == 0 {
            self.planned = None;
            return false;
        }
        if self.planned != Some((base, interval_secs)) {
            self.planned = Some((base, interval_secs));
            self.next = now + secs_to_grid(now, base, interval);
        }
        if now < self.next {
            return false;
        }
        // Runs missed (a stall, a clock step) are not made up for.
        self.next += ((now - self.next) / interval + 1) * interval;
        true
    }
}

/// Seconds from `now` to the next point of the grid `base` (local time of
/// day) + k × `interval` (0 when `now` is on it).
fn secs_to_grid(now: i64, base: (u8, u8), interval: i64) -> i64 {
    let of_day = fdfs_util::localtime::local_tm(now).map_or(now.rem_euclid(86_400), |t| {
        i64::from(t.hour * 3600 + t.minute * 60 + t.second)
    });
    let base_of_day = i64::from(base.0) * 3600 + i64::from(base.1) * 60;
    (base_of_day - of_day).rem_euclid(interval)
}

/// A request for a new trunk file id, served by the reporter session
/// that is joined to the leader tracker: the tracker answers 72 and 73
/// only on a joined connection (EACCES otherwise).
pub struct IdRequest {
    /// The highest trunk file id this storage has seen.
    pub seen_max: u32,
    pub reply: tokio::sync::oneshot::Sender<OpResult<u32>>,
}

/// How long a trunk file id may take: the reporter joined to the leader
/// may be reconnecting.
const RESERVE_ID_TIMEOUT: Duration = Duration::from_secs(10);

/// The next trunk file id, raised on the leader tracker before any file
/// carries it (see [`exchange_trunk_fid`]), through the reporter joined to
/// the leader.
pub async fn reserve_trunk_file_id(storage: &Storage, seen_max: u32) -> OpResult<u32> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    lock(&storage.trunk.id_requests).push_back(IdRequest { seen_max, reply });
    storage.trunk.id_wanted.notify_one();
    match tokio::time::timeout(RESERVE_ID_TIMEOUT, answer).await {
        Ok(Ok(result)) => result,
        _ => Err(OpError::new(
            Status::EAGAIN,
            "no joined leader tracker reserved a trunk file id",
        )),
    }
}

impl TrunkRole {
    /// Waits until a trunk file id is wanted (reporter sessions to the
    /// leader select on this).
    pub async fn id_wanted(&self) {
        self.id_wanted.notified().await
    }

    /// The id requests waiting now.
    pub fn take_id_requests(&self) -> Vec<IdRequest> {
        lock(&self.id_requests).drain(..).collect()
    }
}

/// On a connection joined to the leader: FETCH_TRUNK_FID (72), then
/// REPORT_TRUNK_FID (73) with max(tracker's, highest we saw) + 1, so no
/// two trunk servers ever create the same trunk file.
pub async fn exchange_trunk_fid(conn: &mut Conn, seen_max: u32) -> Result<u32, ClientError> {
    let current = conn
        .call(TrackerCmd::StorageFetchTrunkFid.into(), &[])
        .await?;
    let current = fdfs_proto::trunk_msg::decode_i32(&current)?;
    let base = u32::try_from(current).unwrap_or(0).max(seen_max);
    let id = base
        .checked_add(1)
        .filter(|id| i32::try_from(*id).is_ok())
        .ok_or_else(|| ClientError::Invalid("trunk file ids exhausted".into()))?;
    let body = fdfs_proto::trunk_msg::encode_i32(id as i32);
    conn.call(TrackerCmd::StorageReportTrunkFid.into(), &body)
        .await?;
    Ok(id)
}

/// The status to answer for a failed exchange with another server.
pub fn client_status(e: &ClientError) -> Status {
    match e {
        ClientError::Status(s) => *s,
        ClientError::Timeout => Status::ETIMEDOUT,
        _ => Status::EIO,
    }
}

/// ALLOC_CONFIRM on the trunk server itself.
pub async fn confirm_local(storage: &Storage, slot: TrunkLocation, ok: bool) -> OpResult<()> {
    let space = storage.trunk.serving_space()?;
    blocking(move || space.confirm(&slot, ok).map_err(io_op)).await
}

/// FREE_SPACE on the trunk server itself; `every_peer_deleted` as in
/// `TrunkSpace::free_deleted`.
pub async fn free_local(
    storage: &Storage,
    slot: TrunkLocation,
    every_peer_deleted: bool,
) -> OpResult<()> {
    let space = storage.trunk.serving_space()?;
    blocking(move || space.free_deleted(&slot, every_peer_deleted).map_err(io_op)).await?;
    storage.trunk.push_soon.notify_one();
    Ok(())
}

/// Free trunk space in MB for REPORT_TRUNK_FREE (74), while serving.
pub fn free_mb(storage: &Storage) -> Option<i64> {
    if !storage.trunk.serving() {
        return None;
    }
    let space = storage.trunk.space()?;
    Some(i64::try_from(space.free_bytes() / (1024 * 1024)).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A space that records calls: hands out consecutive 256-byte slots of
    /// one trunk file once a trunk file was added.
    #[derive(Default)]
    pub struct FakeSpace {
        pub calls: Mutex<Vec<String>>,
        pub next: Mutex<u32>,
        pub files: Mutex<Vec<u32>>,
    }

    impl SpaceApi for FakeSpace {
        fn alloc(&self, i: u8, size: u32) -> io::Result<Alloc> {
            lock(&self.calls).push(format!("alloc {i} {size}"));
            let Some(&id) = lock(&self.files).last() else {
                return Ok(Alloc::NeedTrunkFile);
            };
            let mut next = lock(&self.next);
            let slot = TrunkLocation {
                store_path_index: i,
                sub_path_high: 0,
                sub_path_low: 0,
                trunk_file_id: id,
                offset: *next,
                size: 256,
            };
            *next += 256;
            Ok(Alloc::Slot(slot))
        }
        fn add_trunk_file(&self, i: u8, id: u32) -> io::Result<TrunkLocation> {
            lock(&self.calls).push(format!("add {i} {id}"));
            lock(&self.files).push(id);
            Ok(TrunkLocation {
                store_path_index: i,
                sub_path_high: 0,
                sub_path_low: 0,
                trunk_file_id: id,
                offset: 0,
                size: 1 << 20,
            })
        }
        fn confirm(&self, s: &TrunkLocation, ok: bool) -> io::Result<()> {
            lock(&self.calls).push(format!("confirm {} {ok}", s.offset));
            Ok(())
        }
        fn free(&self, s: &TrunkLocation) -> io::Result<()> {
            lock(&self.calls).push(format!("free {}", s.offset));
            Ok(())
        }
        fn binlog_size(&self) -> u64 {
            0
        }
        fn free_bytes(&self) -> u64 {
            3 << 20
        }
        fn max_trunk_file_id(&self) -> u32 {
            0
        }
        fn quarantine_all(&self) {
            lock(&self.calls).push("quarantine".into());
        }
        fn apply_pushed(&self, b: &[u8]) -> io::Result<()> {
            lock(&self.calls).push(format!("pushed {}", b.len()));
            Ok(())
        }
        fn reset(&self) -> io::Result<()> {
            lock(&self.calls).push("reset".into());
            Ok(())
        }
        fn binlog_path(&self) -> PathBuf {
            PathBuf::from("/nonexistent")
        }
        fn free_stale_unconfirmed(&self, _: Duration) -> io::Result<usize> {
            Ok(0)
        }
        fn save_snapshot(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn brief(id: &str, port: i32) -> StorageBrief {
        StorageBrief {
            status: 7,
            port,
            id: id.into(),
            ip_addr: id.into(),
        }
    }

    /// A storage on a temp dir with trunk files on, its space `fake`.
    async fn storage_with(dir: &std::path::Path, fake: Arc<FakeSpace>) -> Arc<Storage> {
        let conf = fdfs_config::storage::StorageConf {
            base_path: dir.to_path_buf(),
            store_paths: vec![dir.to_path_buf()],
            subdir_count_per_path: 2,
            bind_addr: "127.0.0.1".into(),
            ..Default::default()
        };
        let storage = Storage::open(conf, 23999).await.unwrap();
        let mut params = storage.params();
        params.trunk.use_trunk_file = true;
        storage.set_params(params);
        storage.trunk.install_space(fake);
        storage
    }

    fn me() -> StorageBrief {
        brief("127.0.0.1", 23999)
    }

    async fn wait_serving(storage: &Storage, want: bool) {
        let mut rx = storage.trunk.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| v.serving == want))
            .await
            .expect("role switch")
            .unwrap();
    }

    /// A tracker that answers FETCH_TRUNK_FID (72) with `current`, or the
    /// last id REPORT_TRUNK_FID (73) raised it to, and records those ids.
    async fn fake_tracker(current: i32) -> (std::net::SocketAddr, Arc<Mutex<Vec<i32>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reported = Arc::new(Mutex::new(Vec::new()));
        let seen = reported.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    loop {
                        let mut head = [0u8; fdfs_proto::HEADER_LEN];
                        if sock.read_exact(&mut head).await.is_err() {
                            return;
                        }
                        let len = u64::from_be_bytes(head[..8].try_into().unwrap()) as usize;
                        let mut body = vec![0u8; len];
                        sock.read_exact(&mut body).await.unwrap();
                        let answer: Vec<u8> = match head[8] {
                            72 => {
                                // Raised by every 73, as the real tracker does.
                                let now = lock(&seen).last().copied().unwrap_or(current);
                                now.to_be_bytes().to_vec()
                            }
                            73 => {
                                let id = i32::from_be_bytes(body[..4].try_into().unwrap());
                                lock(&seen).push(id);
                                Vec::new()
                            }
                            _ => return,
                        };
                        let mut out = fdfs_proto::Header::response(0, answer.len())
                            .to_bytes()
                            .to_vec();
                        out.extend_from_slice(&answer);
                        sock.write_all(&out).await.unwrap();
                    }
                });
            }
        });
        (addr, reported)
    }

    /// The reporter joined to the leader: serves the storage's id requests
    /// over one connection to `tracker`.
    fn serve_ids(storage: &Arc<Storage>, tracker: std::net::SocketAddr) {
        let reporter = storage.clone();
        tokio::spawn(async move {
            let mut conn = Conn::connect(
                &tracker.to_string(),
                Duration::from_secs(5),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            loop {
                reporter.trunk.id_wanted().await;
                for req in reporter.trunk.take_id_requests() {
                    let id = exchange_trunk_fid(&mut conn, req.seen_max).await;
                    let _ = req
                        .reply
                        .send(id.map_err(|e| OpError::new(client_status(&e), e.to_string())));
                }
            }
        });
    }

    #[tokio::test]
    async fn named_trunk_server_quarantines_then_allocates_from_a_reserved_trunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeSpace::default());
        let (tracker, reported) = fake_tracker(41).await;
        let storage = storage_with(dir.path(), fake.clone()).await;
        serve_ids(&storage, tracker);
        // Not the server yet: EINVAL, as the original.
        let e = alloc_local(&storage, 0, 100).await.unwrap_err();
        assert_eq!(e.status, Status::EINVAL);

        storage.trunk.announce(&storage, me());
        wait_serving(&storage, true).await;
        let slot = alloc_local(&storage, 0, 100).await.unwrap();
        assert_eq!(slot.trunk_file_id, 43, "id above the tenure's 42");
        assert_eq!(
            *lock(&reported),
            vec![42, 43],
            "tenure id, then 73 before the file"
        );
        assert_eq!(
            lock(&fake.calls).clone(),
            ["quarantine", "alloc 0 100", "add 0 43", "alloc 0 100"],
            "no tenure of ours before: everything known free is quarantined first"
        );
        assert_eq!(
            std::fs::read_to_string(last_server_marker(&storage)).unwrap(),
            "42\n"
        );
        confirm_local(&storage, slot, true).await.unwrap();
        free_local(&storage, slot, true).await.unwrap();
        assert_eq!(free_mb(&storage), Some(3));

        // Someone else named: allocation stops at once.
        storage.trunk.announce(&storage, brief("127.0.0.9", 23999));
        assert!(!storage.trunk.serving());
        assert_eq!(free_mb(&storage), None);
        let e = alloc_local(&storage, 0, 100).await.unwrap_err();
        assert_eq!(e.status, Status::EINVAL);
        assert_eq!(
            storage.trunk.remote_server(),
            Some(brief("127.0.0.9", 23999))
        );
    }

    #[tokio::test]
    async fn a_first_tenure_quarantines_even_after_an_explicit_none() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeSpace::default());
        let (tracker, _) = fake_tracker(3).await;
        let storage = storage_with(dir.path(), fake.clone()).await;
        serve_ids(&storage, tracker);
        let none = StorageBrief {
            status: 0,
            port: 0,
            id: String::new(),
            ip_addr: String::new(),
        };
        storage.trunk.announce(&storage, none);
        assert_eq!(storage.trunk.view().announced, Announced::None);
        storage.trunk.announce(&storage, me());
        wait_serving(&storage, true).await;
        // A member's copy of the binlog may lag the last server's, whatever
        // the leader said in between.
        assert!(lock(&fake.calls).contains(&"quarantine".to_string()));
    }

    /// A restarted lone trunk server: its marker holds the id its tenure
    /// reserved; when the tracker's id has not moved past it, nobody served
    /// since and the free space stays usable. When it moved, it does not.
    #[tokio::test]
    async fn a_resumed_tenure_keeps_its_space_unless_someone_served_since() {
        for (tracker_id, want_quarantine) in [(41, false), (45, true)] {
            let dir = tempfile::tempdir().unwrap();
            let fake = Arc::new(FakeSpace::default());
            let (tracker, reported) = fake_tracker(tracker_id).await;
            let storage = storage_with(dir.path(), fake.clone()).await;
            write_last_server_marker(&storage, 41).unwrap();
            serve_ids(&storage, tracker);
            storage.trunk.announce(&storage, me());
            wait_serving(&storage, true).await;
            let quarantined = lock(&fake.calls).contains(&"quarantine".to_string());
            assert_eq!(quarantined, want_quarantine, "tracker at {tracker_id}");
            let reserved = lock(&reported)[0];
            assert_eq!(reserved, tracker_id + 1);
            assert_eq!(
                std::fs::read_to_string(last_server_marker(&storage)).unwrap(),
                format!("{reserved}\n")
            );
        }
    }

    /// Without a leader to reserve the tenure's id, the space is
    /// quarantined and an older tenure's marker no longer vouches for it.
    #[tokio::test]
    async fn without_a_tenure_id_the_space_is_quarantined_and_the_marker_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeSpace::default());
        let storage = storage_with(dir.path(), fake.clone()).await;
        write_last_server_marker(&storage, 7).unwrap();
        storage.trunk.announce(&storage, me());
        let mut rx = storage.trunk.subscribe();
        rx.wait_for(|v| v.serving).await.unwrap();
        assert!(lock(&fake.calls).contains(&"quarantine".to_string()));
        assert!(!last_server_marker(&storage).exists());
    }

    #[tokio::test]
    async fn a_status_change_of_the_same_server_is_no_new_switch() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeSpace::default());
        let (tracker, _) = fake_tracker(0).await;
        let storage = storage_with(dir.path(), fake.clone()).await;
        serve_ids(&storage, tracker);
        storage.trunk.announce(&storage, me());
        wait_serving(&storage, true).await;
        let mut other_status = me();
        other_status.status = 6;
        storage.trunk.announce(&storage, other_status);
        storage.trunk.announce(&storage, me());
        assert!(storage.trunk.serving());
        let quarantines = lock(&fake.calls)
            .iter()
            .filter(|c| *c == "quarantine")
            .count();
        assert_eq!(quarantines, 1);
    }

    #[test]
    fn schedules_run_on_the_grid_of_their_time_base() {
        let now = 1_796_400_000i64;
        let t = fdfs_util::localtime::local_tm(now).unwrap();
        let of_day = i64::from(t.hour * 3600 + t.minute * 60 + t.second);
        // A time base 10 minutes (and the seconds) ahead, every hour.
        let ahead = of_day - of_day % 60 + 600;
        let base = (((ahead / 3600) % 24) as u8, ((ahead / 60) % 60) as u8);
        let wait = 600 - of_day % 60;
        let mut s = Schedule::default();
        assert!(!s.due(now, base, 3600));
        assert!(!s.due(now + wait - 1, base, 3600));
        assert!(s.due(now + wait, base, 3600));
        assert!(!s.due(now + wait + 1, base, 3600), "once per point");
        assert!(s.due(now + wait + 3600, base, 3600));
        // A stall past several points runs once, then keeps the grid.
        assert!(s.due(now + wait + 5 * 3600 + 7, base, 3600));
        assert!(!s.due(now + wait + 6 * 3600 - 1, base, 3600));
        assert!(s.due(now + wait + 6 * 3600, base, 3600));
        // Interval 0: never; a new interval plans afresh.
        assert!(!s.due(now + wait + 7 * 3600, base, 0));
        assert!(s.due(now, base, 1));
        assert!(!s.due(now, base, 1));
        assert!(s.due(now + 1, base, 1));
        // The grid also reaches back: a base later in the day than now
        // with a short interval runs within one interval.
        let later = now + wait + 17;
        let mut s = Schedule::default();
        assert!(!s.due(later, base, 300));
        assert!(!s.due(later + 282, base, 300));
        assert!(s.due(later + 283, base, 300));
    }

    #[test]
    fn the_all_zero_brief_means_none() {
        assert!(is_empty_brief(&StorageBrief {
            status: 0,
            port: 0,
            id: String::new(),
            ip_addr: String::new()
        }));
        assert!(!is_empty_brief(&brief("127.0.0.1", 23000)));
    }

    #[test]
    fn a_remote_server_is_known_only_when_it_is_not_us() {
        let role = TrunkRole::default();
        assert_eq!(role.remote_server(), None);
        let mut st = lock(&role.state);
        st.view.announced = Announced::Server(brief("10.0.0.2", 23000));
        drop(st);
        assert_eq!(role.remote_server(), Some(brief("10.0.0.2", 23000)));
        lock(&role.state).view.is_self = true;
        assert_eq!(role.remote_server(), None);
    }

    #[test]
    fn serving_needs_the_epoch_of_the_switch() {
        let role = TrunkRole::default();
        {
            let mut st = lock(&role.state);
            st.view.is_self = true;
            st.epoch = 2;
        }
        assert!(!role.start_serving(1));
        assert!(!role.serving());
        assert!(role.start_serving(2));
        assert!(role.serving());
        assert!(role.subscribe().borrow().serving);
    }
}
