//! The sending side of replication (§5.2–§5.5): one long-lived worker per
//! peer of our group reads our binlog from the position in its mark file
//! (`data/sync/<peer ip>_<our port>.mark`, `<peer id>.mark` with storage
//! ids) and pushes each record with the
//! matching SYNC_* command. A worker started for a new member that the
//! tracker made us the source of first copies our whole history (full
//! sync), reporting the member SYNCING and then OFFLINE so it can turn
//! ACTIVE.
//!
//! This module keeps the membership: which peers there are and which of
//! them have a worker. `worker` is what one worker does, `mark` its mark
//! file, `cursor` its reader over our binlog, `sender` the SYNC_* command
//! of each record.

mod cursor;
mod freer;
mod mark;
mod sender;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use fdfs_proto::stat::{storage_status, StorageBrief};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::{lock, Storage};

pub use mark::Mark;

/// What we know about the other members of our group, from the tracker's
/// group lists, and the workers already running.
#[derive(Default)]
pub struct Peers {
    pub members: BTreeMap<String, StorageBrief>,
    /// Our own status in the last group list a tracker sent (§4.2: the
    /// status byte of later JOINs).
    pub self_status: Option<u8>,
    runner: Option<(TaskTracker, CancellationToken)>,
    /// Running workers, each with a token that stops only that worker.
    workers: BTreeMap<String, CancellationToken>,
    /// How far into our binlog each peer has acknowledged every record
    /// (its worker's mark): what [`freer`] waits for.
    acked: BTreeMap<String, (u32, u64)>,
    /// Whether a tracker's group list has been adopted since start: until
    /// then the peers are unknown, and nothing counts as replicated.
    listed: bool,
    /// Where in our binlog the freer's first delete not yet given back to
    /// the trunk server is (at or after); None before it starts.
    frees_unsent_from: Option<(u32, u64)>,
}

/// Called once at start-up: where workers run and what stops them.
pub fn enable(storage: &Arc<Storage>, tasks: &TaskTracker, shutdown: CancellationToken) {
    lock(&storage.peers).runner = Some((tasks.clone(), shutdown.clone()));
    tasks.spawn(freer::run(storage.clone(), shutdown));
}

/// Adopts a group list from the tracker and starts a worker for every peer
/// that has none yet.
pub fn update_members(storage: &Arc<Storage>, members: Vec<StorageBrief>) {
    let self_id = storage.self_id();
    let mut peers = lock(&storage.peers);
    peers.listed = true;
    for m in members {
        if m.id == self_id {
            peers.self_status = Some(m.status);
            continue;
        }
        let id = m.id.clone();
        peers.members.insert(id.clone(), m);
        if peers.workers.contains_key(&id) {
            continue;
        }
        if let Some((tasks, shutdown)) = peers.runner.clone() {
            let token = shutdown.child_token();
            peers.workers.insert(id.clone(), token.clone());
            tasks.spawn(worker::run(storage.clone(), id, shutdown, token));
        }
    }
}

/// A peer was deleted from the group (tracker changelog): stop its worker
/// and forget its mark, so that if it joins again as a new member it gets a
/// fresh full sync.
pub fn forget_peer(storage: &Arc<Storage>, id: &str) {
    let mut peers = lock(&storage.peers);
    if let Some(token) = peers.workers.remove(id) {
        token.cancel();
    }
    peers.acked.remove(id);
    if let Some(p) = peers.members.remove(id) {
        let _ = std::fs::remove_file(mark::mark_path(storage, &p));
        tracing::info!(peer = %id, "peer deleted from the group, mark removed");
    }
}

/// A peer came back under a new address (REPORT_IP_CHANGED): its mark file
/// moves to the new name, so the worker the next group list starts for the
/// new address resumes where the old one stopped.
pub fn rename_peer(storage: &Arc<Storage>, old: &str, new: &str) {
    let mut peers = lock(&storage.peers);
    let dir = storage.data_dir().join("sync");
    let from = dir.join(format!("{old}_{}.mark", storage.port));
    let to = dir.join(format!("{new}_{}.mark", storage.port));
    if from.exists() && !to.exists() {
        if let Err(e) = std::fs::rename(&from, &to) {
            tracing::warn!(error = %e, %old, %new, "cannot rename mark file");
        }
    }
    if let Some(token) = peers.workers.remove(old) {
        token.cancel();
    }
    peers.members.remove(old);
    peers.acked.remove(old);
    tracing::info!(%old, %new, "peer changed address");
}

/// Applies tracker changelog lines `<time> <group> <id> <status> <new id>`.
pub fn apply_changelog(storage: &Arc<Storage>, text: &str) {
    for line in text.lines() {
        let cols: Vec<&str> = line.split(' ').collect();
        if cols.len() < 4 || cols[1] != storage.group {
            continue;
        }
        match cols[3].parse::<u8>() {
            Ok(storage_status::DELETED) => forget_peer(storage, cols[2]),
            Ok(storage_status::IP_CHANGED) => {
                if let Some(new) = cols.get(4).filter(|n| !n.is_empty()) {
                    rename_peer(storage, cols[2], new);
                }
            }
            _ => {}
        }
    }
}

/// The group list's entry of peer `id`.
fn peer(storage: &Storage, id: &str) -> Option<StorageBrief> {
    lock(&storage.peers).members.get(id).cloned()
}

/// Records that `peer_id` has acknowledged our binlog up to `mark`.
fn publish_acked(storage: &Storage, peer_id: &str, mark: &Mark) {
    lock(&storage.peers)
        .acked
        .insert(peer_id.to_string(), (mark.binlog_index, mark.binlog_offset));
}

/// How far into our binlog every peer of the group has acknowledged each
/// record: the least of their marks, or `None` while that is unknown (no
/// group list yet, or a listed peer whose worker has not read its mark).
/// A group without peers has everything: `Some((u32::MAX, u64::MAX))`.
fn acked_by_all(storage: &Storage) -> Option<(u32, u64)> {
    let peers = lock(&storage.peers);
    if !peers.listed {
        return None;
    }
    let mut least = (u32::MAX, u64::MAX);
    for (id, m) in &peers.members {
        if matches!(
            m.status,
            storage_status::DELETED | storage_status::IP_CHANGED | storage_status::NONE
        ) {
            continue;
        }
        least = least.min(*peers.acked.get(id)?);
    }
    Some(least)
}

/// Where in our binlog the first delete whose trunk slot the freer has not
/// given back yet may be: every `D` record from there on still holds its
/// slot. The start of the binlog until the freer has started.
pub(crate) fn frees_unsent_from(storage: &Storage) -> (u32, u64) {
    lock(&storage.peers).frees_unsent_from.unwrap_or((0, 0))
}

fn publish_frees_unsent_from(storage: &Storage, at: (u32, u64)) {
    lock(&storage.peers).frees_unsent_from = Some(at);
}
