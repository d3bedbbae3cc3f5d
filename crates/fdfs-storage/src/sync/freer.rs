//! Gives the slots of our deleted trunk files back to the trunk server,
//! but only once every peer has acknowledged the delete.
//!
//! The original frees a slot the moment the file is deleted at its
//! source. The trunk server may then hand the slot to a new file while
//! the delete is still on its way to a replica, whose sync streams from
//! different sources are not ordered with each other: a replica can get
//! the new file before the old one's delete (the slot looks taken) or the
//! old file after the new one (from a member that has not deleted it yet),
//! and overwrite it. Freeing only what every peer has deleted makes every
//! earlier occupant of a slot gone everywhere before it is reused.
//!
//! This task reads our binlog like a sync worker, up to the least
//! position every peer's worker has acknowledged, and frees the slot of
//! each `D` record of a trunk name. Its position is saved in
//! `data/trunk/free.mark` before the frees of a batch are sent: a crash
//! leaks those slots (a scrub frees them), never frees a slot twice.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fdfs_proto::fileid::RemoteName;
use fdfs_proto::TrunkLocation;
use tokio_util::sync::CancellationToken;

use super::cursor::{read_batch, Cursor};
use super::mark::{save_mark, Mark};
use super::{acked_by_all, publish_frees_unsent_from};
use crate::state::Storage;
use crate::trunk::client::{self, FreeOutcome};

/// How often the freer looks for newly acknowledged deletes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the freer's place is saved while the binlog it reads holds no
/// deletes of trunk files (each save is an fsync).
const MARK_SAVE_INTERVAL: Duration = Duration::from_secs(5);
/// Pause after a free that could not be sent.
const RETRY_DELAY: Duration = Duration::from_millis(500);

fn mark_path(storage: &Storage) -> PathBuf {
    storage
        .data_dir()
        .join("trunk")
        .join(crate::trunk::space::FREER_MARK_NAME)
}

/// The trunk file a binlog record deletes, with its slot: a source delete
/// (`D`) of a trunk name of ours.
fn freed_slot(storage: &Storage, op: char, remote: &str) -> Option<(RemoteName, TrunkLocation)> {
    if op != crate::binlog::op::DELETE {
        return None;
    }
    let name = RemoteName::parse(remote, storage.paths.len()).ok()?;
    TrunkLocation::from_remote(&name).map(|loc| (name, loc))
}

/// Whether our disk still shows `name` deleted in its slot (see
/// `slot::still_deleted_here`); a slot in use again is not freed.
async fn still_deleted(storage: &Arc<Storage>, name: RemoteName) -> bool {
    let Ok(root) = crate::trunk::slot::store_root(storage, &name) else {
        return false;
    };
    tokio::task::spawn_blocking(move || crate::trunk::slot::still_deleted_here(&root, &name))
        .await
        .unwrap_or(false)
}

async fn load_mark(storage: &Storage, path: &Path) -> Mark {
    let saved = tokio::fs::read_to_string(path)
        .await
        .ok()
        .and_then(|t| Mark::parse(&t));
    match saved {
        Some(m) => m,
        None => {
            // First start with this task (a new data directory, or one
            // whose deletes were freed at once by an older version): from
            // the end of what is written now.
            let (binlog_index, binlog_offset) = storage.binlog.position();
            let mark = Mark {
                binlog_index,
                binlog_offset,
                ..Mark::default()
            };
            save_mark(path, &mark).await;
            mark
        }
    }
}

pub(super) async fn run(storage: Arc<Storage>, shutdown: CancellationToken) {
    let path = mark_path(&storage);
    if let Some(dir) = path.parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    let mut mark = load_mark(&storage, &path).await;
    let mut cursor = Cursor::at(
        storage.data_dir().join("sync"),
        mark.binlog_index,
        mark.binlog_offset,
    );
    publish_frees_unsent_from(&storage, (mark.binlog_index, mark.binlog_offset));
    let mut pending: VecDeque<(RemoteName, TrunkLocation)> = VecDeque::new();
    let mut saved_at = std::time::Instant::now();
    loop {
        let mut read_some = false;
        // Without trunk files there is nothing to free: the binlog is not
        // even read (the trackers' parameters may turn them on later).
        if pending.is_empty() && storage.params().trunk.use_trunk_file {
            if let Some(acked) = acked_by_all(&storage) {
                let limit = acked.min(storage.binlog.position());
                match read_batch(cursor, limit).await {
                    Ok((c, lines)) => {
                        cursor = c;
                        if let Some(last) = lines.last() {
                            read_some = true;
                            pending.extend(lines.iter().filter_map(|l| {
                                // Most lines are not deletes: skip them
                                // before the full parse.
                                if crate::binlog::op_letter(&l.text)
                                    != Some(crate::binlog::op::DELETE)
                                {
                                    return None;
                                }
                                let rec = l.record()?;
                                freed_slot(&storage, rec.op, &rec.filename)
                            }));
                            mark.binlog_index = last.index;
                            mark.binlog_offset = last.next_offset;
                            mark.scan_row_count += lines.len() as u64;
                            // Saved before frees are sent (a crash then
                            // leaks them, never sends them twice); a stretch
                            // without deletes only costs a rescan at start.
                            if !pending.is_empty() || saved_at.elapsed() >= MARK_SAVE_INTERVAL {
                                save_mark(&path, &mark).await;
                                saved_at = std::time::Instant::now();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "trunk freer cannot read the binlog");
                        cursor = Cursor::at(
                            storage.data_dir().join("sync"),
                            mark.binlog_index,
                            mark.binlog_offset,
                        );
                    }
                }
            }
        }
        while let Some((name, slot)) = pending.front().cloned() {
            if !still_deleted(&storage, name).await {
                tracing::warn!(
                    ?slot,
                    "deleted trunk slot holds something else already (deleted on another member too?): not freed again"
                );
                pending.pop_front();
                continue;
            }
            match client::free(&storage, slot).await {
                FreeOutcome::Freed => {
                    mark.sync_row_count += 1;
                }
                FreeOutcome::NotSent(e) => {
                    tracing::debug!(error = %e.reason, ?slot, "trunk slot free waits for the trunk server");
                    break;
                }
                FreeOutcome::Refused(e) if e.status == fdfs_proto::Status::EEXIST => {
                    tracing::info!(
                        ?slot,
                        "deleted trunk slot freed already (deleted on another member too)"
                    );
                }
                FreeOutcome::Refused(e) | FreeOutcome::Unknown(e) => {
                    tracing::error!(error = %e.reason, ?slot, "deleted trunk slot not freed; a scrub frees it");
                }
            }
            pending.pop_front();
        }
        if pending.is_empty() {
            publish_frees_unsent_from(&storage, (mark.binlog_index, mark.binlog_offset));
        }
        let pause = if !pending.is_empty() {
            RETRY_DELAY
        } else if read_some {
            continue;
        } else {
            POLL_INTERVAL
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
