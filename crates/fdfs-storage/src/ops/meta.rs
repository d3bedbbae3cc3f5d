//! SET_METADATA (13) and GET_METADATA (15): the packed, name-sorted
//! `<file>-m` companion files.

use fdfs_proto::metadata::{merge, normalize, pack, unpack, MetaOp};
use fdfs_proto::storage_msg::SetMetaReq;
use fdfs_proto::tracker_msg::GroupFileReq;

use super::{
    check_group, count, log_change, meta_path, read_small_body, resolve, stat_existing,
    write_small_atomic,
};
use crate::binlog::op;
use crate::conn::{Reply, Session};
use crate::error::{OpError, OpResult};
use crate::state::now_secs;

pub async fn set(s: &mut Session) -> OpResult<Reply> {
    s.storage.bump(|st| st.total_set_meta_count += 1);
    let result = set_inner(s).await;
    count(&s.storage, &result, |st| st.success_set_meta_count += 1);
    result
}

async fn set_inner(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SetMetaReq::decode(&body)?;
    s.log_name = req.remote.clone();
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let op_kind = MetaOp::from_flag(req.op_flag)
        .ok_or_else(|| OpError::invalid(format!("metadata op flag {:#x}", req.op_flag)))?;
    let (_, path) = resolve(&storage, &req.remote)?;
    stat_existing(&path)?;
    let meta_file = meta_path(&path);
    let meta_remote = format!("{}-m", req.remote);
    let existing = match std::fs::read(&meta_file) {
        Ok(data) => Some(data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let now = now_secs();
    let new_pairs = unpack(&req.meta);
    let packed = match op_kind {
        MetaOp::Overwrite if req.meta.is_empty() => {
            if existing.is_some() {
                std::fs::remove_file(&meta_file)?;
                log_change(&storage, now, op::DELETE, &meta_remote, "");
            }
            return Ok(Reply::Body(Vec::new()));
        }
        MetaOp::Merge if req.meta.is_empty() => return Ok(Reply::Body(Vec::new())),
        MetaOp::Overwrite => pack(&normalize(new_pairs)),
        MetaOp::Merge => match &existing {
            Some(old) => pack(&merge(unpack(old), new_pairs)),
            None => pack(&normalize(new_pairs)),
        },
    };
    // Unlike the original, only the packed records are stored, never the
    // leftover request bytes (PROTOCOL.md §1.6 quirk).
    write_small_atomic(&meta_file, &packed)?;
    let letter = if existing.is_some() {
        op::UPDATE
    } else {
        op::CREATE
    };
    log_change(&storage, now, letter, &meta_remote, "");
    s.log_name = meta_remote;
    Ok(Reply::Body(Vec::new()))
}

pub async fn get(s: &mut Session) -> OpResult<Reply> {
    s.storage.bump(|st| st.total_get_meta_count += 1);
    let result = get_inner(s).await;
    count(&s.storage, &result, |st| st.success_get_meta_count += 1);
    result
}

async fn get_inner(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = GroupFileReq::decode(&body)?;
    s.log_name = req.remote.clone();
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let (_, path) = resolve(&storage, &req.remote)?;
    stat_existing(&path)?;
    match std::fs::read(meta_path(&path)) {
        Ok(data) => Ok(Reply::Body(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(OpError::not_found(format!("{}-m not found", req.remote)))
        }
        Err(e) => Err(e.into()),
    }
}
