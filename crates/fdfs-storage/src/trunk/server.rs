//! Trunk commands a storage answers: ALLOC_SPACE 27, ALLOC_CONFIRM 28, FREE_SPACE 29, SYNC_BINLOG 30, GET_BINLOG_SIZE 31, DELETE_BINLOG_MARKS 32, TRUNCATE_BINLOG_FILE 33.
//!
//! 27-29 are answered by the trunk server only (EINVAL elsewhere, as the
//! original); 30 and 33 come from the trunk server to the other members;
//! 31 and 32 come from the leader tracker while it picks a trunk server.

use std::path::PathBuf;

use fdfs_proto::trunk::SLOT_HEADER_LEN;
use fdfs_proto::trunk_msg::{encode_i64, AllocReq, SlotReq};
use fdfs_proto::TrunkLocation;

use crate::error::{OpError, OpResult};
use crate::ops::{blocking, check_group, read_small_body};
use crate::session::{Reply, Session};
use crate::state::Storage;

/// `data/trunk`, where the trunk binlog and the members' marks live.
pub fn trunk_dir(storage: &Storage) -> PathBuf {
    storage.data_dir().join("trunk")
}

fn require_trunk(storage: &Storage) -> OpResult<()> {
    if storage.params().trunk.use_trunk_file {
        Ok(())
    } else {
        Err(OpError::invalid("trunk files are disabled"))
    }
}

fn require_empty(s: &Session, what: &str) -> OpResult<()> {
    if s.body_left != 0 {
        return Err(OpError::invalid(format!("{what} with a body")));
    }
    Ok(())
}

/// A slot named by a peer must be one of our store paths and at least
/// hold a header.
fn check_slot(storage: &Storage, slot: &TrunkLocation) -> OpResult<()> {
    if usize::from(slot.store_path_index) >= storage.paths.len() {
        return Err(OpError::invalid(format!(
            "store path index {} out of range",
            slot.store_path_index
        )));
    }
    if (slot.size as usize) < SLOT_HEADER_LEN {
        return Err(OpError::invalid(format!(
            "trunk slot of {} bytes",
            slot.size
        )));
    }
    Ok(())
}

/// ALLOC_SPACE (27): a slot for a member's upload.
pub async fn alloc_space(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = AllocReq::decode(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    require_trunk(&storage)?;
    if usize::from(req.store_path_index) >= storage.paths.len() {
        return Err(OpError::invalid(format!(
            "store path index {} out of range",
            req.store_path_index
        )));
    }
    let max = storage.params().trunk.slot_max_size_bytes;
    if SLOT_HEADER_LEN as u64 + u64::from(req.file_size) > max {
        return Err(OpError::invalid(format!(
            "{} bytes do not fit a trunk slot of at most {max}",
            req.file_size
        )));
    }
    let slot = super::role::alloc_local(&storage, req.store_path_index, req.file_size).await?;
    Ok(Reply::Body(slot.to_info_buff().to_vec()))
}

/// ALLOC_CONFIRM (28): the header status is the member's write result.
pub async fn alloc_confirm(s: &mut Session, header_status: u8) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SlotReq::decode(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    require_trunk(&storage)?;
    check_slot(&storage, &req.slot)?;
    // EEXIST: the member found another file in the slot. That space is in
    // use: back in the pool it would be handed out (and refused) again.
    let used = fdfs_proto::trunk_msg::confirm_keeps_slot(header_status);
    super::role::confirm_local(&storage, req.slot, used).await?;
    Ok(Reply::Body(Vec::new()))
}

/// FREE_SPACE (29): a member deleted the file in this slot. Our members
/// send it with the header status
/// [`fdfs_proto::trunk_msg::FREE_STATUS_EVERY_PEER_DELETED`].
pub async fn free_space(s: &mut Session, header_status: u8) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SlotReq::decode(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    require_trunk(&storage)?;
    check_slot(&storage, &req.slot)?;
    let every_peer_deleted = header_status == fdfs_proto::trunk_msg::FREE_STATUS_EVERY_PEER_DELETED;
    super::role::free_local(&storage, req.slot, every_peer_deleted).await?;
    Ok(Reply::Body(Vec::new()))
}

/// SYNC_BINLOG (30): trunk binlog lines from the trunk server, appended
/// and applied to our copy.
pub async fn sync_binlog(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let storage = s.storage.clone();
    require_trunk(&storage)?;
    if storage.trunk.view().is_self {
        return Err(OpError::invalid(
            "the trunk server does not take pushed lines",
        ));
    }
    blocking(move || {
        let space = storage.trunk.open_space(&storage)?;
        space.apply_pushed(&body)?;
        Ok(())
    })
    .await?;
    Ok(Reply::Body(Vec::new()))
}

/// GET_BINLOG_SIZE (31): the leader picks the member with the longest
/// trunk binlog as trunk server.
pub async fn get_binlog_size(s: &mut Session) -> OpResult<Reply> {
    require_empty(s, "TRUNK_GET_BINLOG_SIZE")?;
    let storage = s.storage.clone();
    require_trunk(&storage)?;
    let size = blocking(move || {
        if let Some(space) = storage.trunk.space() {
            return Ok(space.binlog_size());
        }
        match std::fs::metadata(trunk_dir(&storage).join("binlog")) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    Ok(Reply::Body(encode_i64(size).to_vec()))
}

/// DELETE_BINLOG_MARKS (32): forget `storage_trunk.dat` and the push
/// marks, so the next trunk server pushes its whole binlog. Refused on the
/// trunk server itself.
pub async fn delete_binlog_marks(s: &mut Session) -> OpResult<Reply> {
    require_empty(s, "TRUNK_DELETE_BINLOG_MARKS")?;
    let storage = s.storage.clone();
    require_trunk(&storage)?;
    if storage.trunk.view().is_self {
        return Err(OpError::invalid("the trunk server keeps its trunk data"));
    }
    blocking(move || {
        remove_if_present(
            &storage
                .data_dir()
                .join(fdfs_proto::trunk::TRUNK_DATA_FILE_NAME),
        )?;
        let dir = trunk_dir(&storage);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let path = entry?.path();
            // Push marks only: the freer's position stays (a member that
            // lost it would leak the slots of deletes not given back yet).
            if path.extension().is_some_and(|e| e == "mark")
                && path
                    .file_name()
                    .is_some_and(|n| n != super::space::FREER_MARK_NAME)
            {
                remove_if_present(&path)?;
            }
        }
        Ok(())
    })
    .await?;
    Ok(Reply::Body(Vec::new()))
}

fn remove_if_present(path: &std::path::Path) -> OpResult<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// TRUNCATE_BINLOG_FILE (33): the trunk server is about to push its whole
/// binlog; ours starts empty.
pub async fn truncate_binlog_file(s: &mut Session) -> OpResult<Reply> {
    require_empty(s, "TRUNK_TRUNCATE_BINLOG_FILE")?;
    let storage = s.storage.clone();
    require_trunk(&storage)?;
    if storage.trunk.view().is_self {
        return Err(OpError::invalid("the trunk server keeps its trunk binlog"));
    }
    blocking(move || {
        let space = storage.trunk.open_space(&storage)?;
        space.reset()?;
        Ok(())
    })
    .await?;
    Ok(Reply::Body(Vec::new()))
}
