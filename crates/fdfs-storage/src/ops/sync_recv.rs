//! The receiving side of replication (§5.4): REPORT_SERVER_ID (9) and the
//! SYNC_* commands a peer of our group sends for each record of its binlog.
//! Changes are applied idempotently, files get the source's timestamp as
//! mtime, and each applied change is appended to our binlog in lower case.
//! With a cluster secret, the peer must prove it first (CLUSTER_CHALLENGE /
//! CLUSTER_PROVE, fastdfs-rs extensions) or every one of these is EPERM.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use fdfs_proto::sync_msg::{SyncDeleteReq, SyncFileReq, SyncPairReq, SyncRangeReq};
use fdfs_proto::wire::NamedHead;
use fdfs_proto::Status;

use super::{blocking, body_to_file, check_group, log_change, meta_path, read_small_body, resolve};
use crate::error::{OpError, OpResult};
use crate::session::{Reply, Session};
use crate::state::Storage;
use crate::trunk::scrub::{clear_orphan_header, ORPHAN_CHECK_AFTER};
use crate::trunk::slot::{self, Prior, SlotWrite};
use fdfs_proto::trunk::{SlotHeader, TrunkLocation, SLOT_TYPE_REGULAR};

/// Replica binlog letters.
const REPLICA_CREATE: char = 'c';
const REPLICA_UPDATE: char = 'u';
const REPLICA_DELETE: char = 'd';
const REPLICA_APPEND: char = 'a';
const REPLICA_MODIFY: char = 'm';
const REPLICA_TRUNCATE: char = 't';
const REPLICA_RENAME: char = 'r';
const REPLICA_LINK: char = 'l';

/// CLUSTER_CHALLENGE: a fresh nonce for the peer to prove the cluster
/// secret against; EOPNOTSUPP when we have no secret.
pub async fn cluster_challenge(s: &mut Session) -> OpResult<Reply> {
    if s.body_left != 0 {
        return Err(OpError::invalid("CLUSTER_CHALLENGE with a body"));
    }
    if s.storage.conf.cluster_secret.is_none() {
        return Err(OpError::new(
            Status::EOPNOTSUPP,
            "no cluster secret configured",
        ));
    }
    let nonce = s.cluster.issue()?;
    Ok(Reply::Body(nonce.to_vec()))
}

/// CLUSTER_PROVE: the answer to the last challenge; EPERM when wrong or
/// when no challenge is pending.
pub async fn cluster_prove(s: &mut Session) -> OpResult<Reply> {
    use fdfs_util::cluster_secret::Purpose;
    let body = read_small_body(s).await?;
    let Some(secret) = s.storage.conf.cluster_secret.clone() else {
        return Err(OpError::new(
            Status::EOPNOTSUPP,
            "no cluster secret configured",
        ));
    };
    if s.cluster.answer(&secret, Purpose::StorageSync, &body) {
        return Ok(Reply::Body(Vec::new()));
    }
    Err(OpError::new(Status::EPERM, "wrong cluster secret proof"))
}

/// EPERM unless we have no cluster secret or the peer proved it on this
/// connection: guards REPORT_SERVER_ID and every SYNC_* command, so nobody
/// who lacks the secret can push files into the group. The body is left
/// unread; the connection closes after the answer.
pub fn require_cluster_proof(s: &Session) -> OpResult<()> {
    if s.storage.conf.cluster_secret.is_none() || s.cluster.proven() {
        return Ok(());
    }
    Err(OpError::new(
        Status::EPERM,
        "sync command from a peer that did not prove the cluster secret",
    ))
}

/// REPORT_SERVER_ID (9): the peer names itself; later records count for it.
pub async fn report_server_id(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let id = fdfs_proto::wire::fixed_str(&body);
    // An IP address or a storage id: one printable token, as it ends up in
    // SYNC_REPORT and in logs.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OpError::invalid(format!(
            "storage id {}",
            fdfs_proto::fileid::escape_for_log(&id)
        )));
    }
    s.sync_source = Some(id);
    Ok(Reply::Body(Vec::new()))
}

fn set_mtime(path: &std::path::Path, timestamp: i32) -> std::io::Result<()> {
    let when = UNIX_EPOCH + Duration::from_secs(timestamp.max(0) as u64);
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(when)
}

/// Appends, modifies, truncates and renames apply to data files only; the
/// `-m` files travel whole (create, update, delete).
fn resolve_data_file(storage: &Storage, remote: &str) -> OpResult<PathBuf> {
    let (name, path) = resolve(storage, remote)?;
    if !name.is_data_file() {
        return Err(OpError::invalid(format!("{remote} is not a data file")));
    }
    Ok(path)
}

/// Credits a received record to the announcing peer (SYNC_REPORT).
fn credit(s: &Session, timestamp: i32) {
    if let Some(src) = &s.sync_source {
        s.storage.note_received(src, timestamp);
    }
}

/// SYNC_CREATE_FILE (16) and SYNC_UPDATE_FILE (18).
pub async fn create_or_update(s: &mut Session, update: bool, header_status: u8) -> OpResult<Reply> {
    let fixed = s.read_exact_body(SyncFileReq::FIXED_LEN).await?;
    let n = SyncFileReq::name_len(&fixed)?;
    let name = s.read_exact_body(n).await?;
    let req = SyncFileReq::decode_head(&[fixed, name].concat())?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let (remote, path) = resolve(&storage, &req.remote)?;
    let has_content = header_status == 0;
    if has_content && s.body_left != req.file_size {
        return Err(OpError::invalid(
            "sync content length differs from file size",
        ));
    }
    let letter = if update {
        REPLICA_UPDATE
    } else {
        REPLICA_CREATE
    };
    if let Some(loc) = TrunkLocation::from_remote(&remote) {
        return create_in_slot(s, remote, loc, req, has_content, letter).await;
    }
    if !update {
        let (probe, size) = (path.clone(), req.file_size);
        let same = blocking(move || {
            Ok(std::fs::symlink_metadata(&probe)
                .map(|m| m.is_file() && m.len() == size)
                .unwrap_or(false))
        })
        .await?;
        if same || !has_content {
            s.drain_body().await?;
            log_change(&storage, i64::from(req.timestamp), letter, &req.remote, "");
            credit(s, req.timestamp);
            return Err(OpError::new(
                Status::EEXIST,
                format!("{} exists", req.remote),
            ));
        }
    } else if !has_content {
        return Err(OpError::invalid("update without content"));
    }
    let index = usize::from(remote.store_path_index);
    let temp = super::upload::receive_to_temp(s, index, req.file_size).await?;
    let timestamp = req.timestamp;
    blocking(move || {
        set_mtime(temp.path(), timestamp)?;
        crate::store::place_in_tree(&path, || std::fs::rename(temp.path(), &path))?;
        Ok(())
    })
    .await?;
    log_change(&storage, i64::from(req.timestamp), letter, &req.remote, "");
    storage.bump(|st| {
        st.total_sync_in_bytes += req.file_size as i64;
        st.success_sync_in_bytes += req.file_size as i64;
        st.last_sync_update = crate::state::now_secs();
    });
    credit(s, req.timestamp);
    Ok(Reply::Body(Vec::new()))
}

/// SYNC_CREATE_FILE / SYNC_UPDATE_FILE of a trunk name: the content goes
/// into our copy of the trunk file at the name's slot (§5.4), the trunk
/// file created sparse when missing. A slot that already holds this file
/// is answered EEXIST as an existing file is (and `c` still recorded); a
/// slot that holds another file is never overwritten: EEXIST, logged,
/// nothing recorded (trunk design rule 4).
async fn create_in_slot(
    s: &mut Session,
    name: fdfs_proto::fileid::RemoteName,
    loc: TrunkLocation,
    req: SyncFileReq,
    has_content: bool,
    letter: char,
) -> OpResult<Reply> {
    let storage = s.storage.clone();
    let expect = SlotHeader::expected_for(&name, SLOT_TYPE_REGULAR)
        .ok_or_else(|| OpError::invalid(format!("{} is not a trunk name", req.remote)))?;
    if req.file_size != u64::from(expect.file_size) {
        return Err(OpError::invalid(format!(
            "{}: {} bytes sent for a file of {}",
            req.remote, req.file_size, expect.file_size
        )));
    }
    let already = |s: &mut Session| {
        log_change(&storage, i64::from(req.timestamp), letter, &req.remote, "");
        credit(s, req.timestamp);
        OpError::new(Status::EEXIST, format!("{} exists", req.remote))
    };
    if !has_content {
        s.drain_body().await?;
        return Err(already(s));
    }
    let root = slot::store_root(&storage, &name)?;
    let trunk_file_size = storage.params().trunk.trunk_file_size_bytes;
    let st = storage.clone();
    let remote = req.remote.clone();
    let begun = blocking(move || {
        if st.trunk.tombstones(st.data_dir())?.take(&remote)? {
            return Ok(None);
        }
        SlotWrite::begin(&root, loc, expect.file_size, trunk_file_size, Some(&expect)).map(Some)
    })
    .await;
    let writer = match begun {
        Ok(None) | Ok(Some((_, Prior::Deleted))) => {
            // Deleted here already (its delete came first from another
            // source's stream): a late copy must not bring it back.
            s.drain_body().await?;
            credit(s, req.timestamp);
            return Err(OpError::new(
                Status::EEXIST,
                format!("{} was deleted here", req.remote),
            ));
        }
        Ok(Some((_, Prior::Same))) => {
            s.drain_body().await?;
            return Err(already(s));
        }
        Ok(Some((w, Prior::Free))) => w,
        Err(e) if e.status == Status::EEXIST && !refused_long_enough(&storage, &req.remote) => {
            // A slot is reused only once every member has deleted what it
            // held (`sync::freer`), so with our peers this is a slot still
            // held by a file whose delete from a storage that frees at
            // once (the original) has not reached us yet. The sender
            // retries until it has. Or the header is one that an upload
            // here cut short by a crash left: then it is cleared, once.
            s.drain_body().await?;
            if take_orphan_check(&storage, &req.remote) {
                let st = storage.clone();
                let root = slot::store_root(&storage, &name)?;
                blocking(move || Ok(clear_orphan_header(&st, &root, &loc)?)).await?;
            }
            return Err(OpError::new(
                Status::EBUSY,
                format!("{}: its slot still holds another file", req.remote),
            ));
        }
        Err(e) => {
            s.drain_body().await?;
            credit(s, req.timestamp);
            return Err(e);
        }
    };
    forget_refusal(&storage, &req.remote);
    let (writer, _) = slot::body_to_slot(s, writer, req.file_size).await?;
    let threshold = storage.conf.fsync_after_written_bytes;
    let fsync = threshold > 0 && req.file_size >= threshold;
    blocking(move || writer.finish(&expect, fsync)).await?;
    log_change(&storage, i64::from(req.timestamp), letter, &req.remote, "");
    storage.bump(|st| {
        st.total_sync_in_bytes += req.file_size as i64;
        st.success_sync_in_bytes += req.file_size as i64;
        st.last_sync_update = crate::state::now_secs();
    });
    credit(s, req.timestamp);
    Ok(Reply::Body(Vec::new()))
}

/// How long a trunk file whose slot holds another file is refused with
/// EBUSY (the sender retries) before it is refused for good (EEXIST, the
/// sender moves on; rule 4 never overwrites). The delete that frees the
/// slot here may come from a source whose stream is far behind, after a
/// member was down for a while.
const SLOT_WAIT: Duration = Duration::from_secs(600);

/// When each refused file was first answered EBUSY, and whether its slot
/// was checked for an orphan header.
type Refusals = std::sync::Mutex<HashMap<(PathBuf, String), (std::time::Instant, bool)>>;

/// First EBUSY answer per (base path, remote name): a process may run
/// several storages (tests).
fn refusals() -> &'static Refusals {
    static R: std::sync::OnceLock<Refusals> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

/// Whether `remote` has been refused for [`SLOT_WAIT`] already (the
/// first refusal starts the clock).
fn refused_long_enough(storage: &Storage, remote: &str) -> bool {
    let mut r = crate::state::lock(refusals());
    let (first, _) = *r
        .entry((storage.conf.base_path.clone(), remote.to_string()))
        .or_insert_with(|| (std::time::Instant::now(), false));
    let done = first.elapsed() >= SLOT_WAIT;
    if done {
        r.remove(&(storage.conf.base_path.clone(), remote.to_string()));
    }
    done
}

/// Whether `remote`, refused for [`ORPHAN_CHECK_AFTER`] now, has its slot
/// checked for an orphan header ([`clear_orphan_header`]): once per
/// refused file.
fn take_orphan_check(storage: &Storage, remote: &str) -> bool {
    let mut r = crate::state::lock(refusals());
    match r.get_mut(&(storage.conf.base_path.clone(), remote.to_string())) {
        Some((first, checked)) if !*checked && first.elapsed() >= ORPHAN_CHECK_AFTER => {
            *checked = true;
            true
        }
        _ => false,
    }
}

fn forget_refusal(storage: &Storage, remote: &str) {
    let mut r = crate::state::lock(refusals());
    if !r.is_empty() {
        r.remove(&(storage.conf.base_path.clone(), remote.to_string()));
    }
}

/// SYNC_DELETE_FILE (17).
pub async fn delete(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SyncDeleteReq::decode(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let (name, path) = resolve(&storage, &req.remote)?;
    credit(s, req.timestamp);
    let remote = req.remote.clone();
    let disk_storage = storage.clone();
    blocking(move || {
        if TrunkLocation::from_remote(&name).is_some() {
            // Only the slot's header is cleared (to a tombstone): the
            // space goes back to the trunk server from the source, once
            // every member has the delete.
            let root = slot::store_root(&disk_storage, &name)?;
            let tombstone = slot::tombstones_fit(disk_storage.params().trunk.slot_min_size_bytes);
            return match slot::delete_replica_slot(&root, &name, tombstone) {
                Err(e) if e.status == Status::ENOENT && !slot::deleted_here(&root, &name) => {
                    // The file has not reached us yet: remember that it is
                    // deleted, for when it does.
                    disk_storage
                        .trunk
                        .tombstones(disk_storage.data_dir())?
                        .add(&remote)?;
                    Err(e)
                }
                other => other.map(|_| ()),
            };
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(OpError::not_found(format!("{remote} not found")))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    log_change(
        &storage,
        i64::from(req.timestamp),
        REPLICA_DELETE,
        &req.remote,
        "",
    );
    Ok(Reply::Body(Vec::new()))
}

/// SYNC_APPEND_FILE (25) and SYNC_MODIFY_FILE (35).
pub async fn append_or_modify(s: &mut Session, modify: bool) -> OpResult<Reply> {
    let fixed = s.read_exact_body(SyncRangeReq::FIXED_LEN).await?;
    let n = SyncRangeReq::name_len(&fixed)?;
    let name = s.read_exact_body(n).await?;
    let req = SyncRangeReq::decode_head(&[fixed, name].concat())?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let path = resolve_data_file(&storage, &req.remote)?;
    let (offset, length) = (req.a, req.b);
    if s.body_left != length {
        return Err(OpError::invalid("sync data length differs"));
    }
    let probe = path.clone();
    let size = blocking(move || Ok(std::fs::metadata(&probe).map(|m| m.len()).ok())).await?;
    let applicable = match size {
        None => false,
        Some(sz) if modify => sz >= offset,
        Some(sz) => sz == offset,
    };
    if !applicable {
        s.drain_body().await?;
        // Already applied, or the replica diverged: the sender re-sends the
        // whole file when it sees ENOENT.
        let already = size.is_some_and(|sz| !modify && sz >= offset + length);
        credit(s, req.timestamp);
        return Err(if already {
            OpError::new(Status::EEXIST, "already applied")
        } else {
            OpError::not_found("replica differs, resync needed")
        });
    }
    let target = path.clone();
    let file = blocking(move || {
        let mut file = std::fs::OpenOptions::new().write(true).open(&target)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(file)
    })
    .await?;
    let (file, _) = match body_to_file(s, file, length, |_| {}).await {
        Ok(done) => done,
        Err(e) => {
            // As for a client's append: nothing half-written stays, and the
            // sender's retry finds the replica as it was.
            if let Some(old_size) = size {
                super::appender::cut_back(path, old_size).await;
            }
            return Err(e);
        }
    };
    let timestamp = req.timestamp;
    blocking(move || {
        drop(file);
        Ok(set_mtime(&path, timestamp)?)
    })
    .await?;
    let letter = if modify {
        REPLICA_MODIFY
    } else {
        REPLICA_APPEND
    };
    log_change(
        &storage,
        i64::from(req.timestamp),
        letter,
        &req.remote,
        &format!("{offset} {length}"),
    );
    storage.bump(|st| {
        st.total_sync_in_bytes += length as i64;
        st.success_sync_in_bytes += length as i64;
    });
    credit(s, req.timestamp);
    Ok(Reply::Body(Vec::new()))
}

/// SYNC_TRUNCATE_FILE (37).
pub async fn truncate(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SyncRangeReq::decode_head(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let path = resolve_data_file(&storage, &req.remote)?;
    credit(s, req.timestamp);
    let (remote, old_size, new_size, timestamp) = (req.remote.clone(), req.a, req.b, req.timestamp);
    blocking(move || {
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpError::not_found(format!("{remote} not found")))
            }
            Err(e) => return Err(e.into()),
        };
        if size != old_size {
            return Err(OpError::new(
                Status::EEXIST,
                "size differs from the record's old size",
            ));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)?
            .set_len(new_size)?;
        Ok(set_mtime(&path, timestamp)?)
    })
    .await?;
    log_change(
        &storage,
        i64::from(req.timestamp),
        REPLICA_TRUNCATE,
        &req.remote,
        &format!("{} {}", req.a, req.b),
    );
    Ok(Reply::Body(Vec::new()))
}

/// SYNC_RENAME_FILE (40): answered with an empty body (the original echoes
/// the request, which its own sender rejects).
pub async fn rename(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SyncPairReq::decode(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let dest = resolve_data_file(&storage, &req.dest)?;
    let src = resolve_data_file(&storage, &req.src)?;
    credit(s, req.timestamp);
    let (dest_name, src_name) = (req.dest.clone(), req.src.clone());
    blocking(move || {
        if dest.exists() {
            return Err(OpError::new(Status::EEXIST, format!("{dest_name} exists")));
        }
        if !src.exists() {
            return Err(OpError::not_found(format!("{src_name} not found")));
        }
        std::fs::rename(&src, &dest)?;
        let old_meta = meta_path(&src);
        if old_meta.exists() {
            let _ = std::fs::rename(&old_meta, meta_path(&dest));
        }
        Ok(())
    })
    .await?;
    log_change(
        &storage,
        i64::from(req.timestamp),
        REPLICA_RENAME,
        &req.dest,
        &req.src,
    );
    Ok(Reply::Body(Vec::new()))
}

/// SYNC_CREATE_LINK (19): a slave stored as a link (`store_slave_file_use_link`):
/// `dest` becomes a symlink to the absolute path of `src` here. An existing
/// `dest` is answered 0 as the original does (nothing recorded again); a
/// missing `src` is ENOENT. Binlog `l <dest> <src>`, the names the
/// original leaves out (§5.1). A trunk name `dest` becomes an `L` slot
/// whose content is `src`, as the original's storage writes for a link
/// (§11.5, [`slot::write_link_slot`]).
pub async fn create_link(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SyncPairReq::decode(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let (dest_name, dest) = resolve(&storage, &req.dest)?;
    if !dest_name.is_data_file() {
        return Err(OpError::invalid(format!("{} is not a data file", req.dest)));
    }
    let created = if TrunkLocation::from_remote(&dest_name).is_some() {
        credit(s, req.timestamp);
        let (st, src) = (storage.clone(), req.src.clone());
        blocking(move || slot::write_link_slot(&st, &dest_name, &src, true)).await?
    } else {
        symlink_replica(s, &req, dest).await?
    };
    if created {
        log_change(
            &storage,
            i64::from(req.timestamp),
            REPLICA_LINK,
            &req.dest,
            &req.src,
        );
    }
    Ok(Reply::Body(Vec::new()))
}

/// The symlink `dest` of SYNC_CREATE_LINK to `src`'s absolute path; true
/// when made.
async fn symlink_replica(s: &Session, req: &SyncPairReq, dest: PathBuf) -> OpResult<bool> {
    let src = resolve_data_file(&s.storage, &req.src)?;
    credit(s, req.timestamp);
    let (dest_name, src_name) = (req.dest.clone(), req.src.clone());
    blocking(move || {
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Ok(false);
        }
        if std::fs::metadata(&src).is_err() {
            return Err(OpError::not_found(format!("{src_name} not found")));
        }
        match crate::store::place_in_tree(&dest, || std::os::unix::fs::symlink(&src, &dest)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => {
                tracing::warn!(dest = %dest_name, error = %e, "SYNC_CREATE_LINK failed");
                Err(e.into())
            }
        }
    })
    .await
}
