//! SET_METADATA (13) and GET_METADATA (15): the packed, name-sorted
//! `<file>-m` companion files, never larger than [`MAX_METADATA_BYTES`].

use std::io::Read;
use std::path::Path;

use fdfs_proto::metadata::{merge, normalize, pack, unpack, MetaOp, MAX_METADATA_BYTES};
use fdfs_proto::storage_msg::SetMetaReq;
use fdfs_proto::tracker_msg::GroupFileReq;
use fdfs_proto::Status;

use super::{blocking, check_group, log_change, meta_path, read_small_body, resolve_data};
use crate::binlog::op;
use crate::error::{OpError, OpResult};
use crate::session::{Reply, Session};
use crate::state::now_secs;
use crate::trunk::slot::check_data_exists;

/// The answer for metadata over the limit: it cannot fit the buffer a
/// request or response must fit in (errno table of PROTOCOL.md §1.4).
fn too_big(len: u64) -> OpError {
    OpError::new(
        Status::ENOSPC,
        format!("metadata of {len} bytes exceeds {MAX_METADATA_BYTES}"),
    )
}

/// Reads a metadata file (None when there is none) without ever holding
/// more than [`MAX_METADATA_BYTES`] of it: a `-m` file grown on disk, by a
/// peer or by hand, is refused instead of being loaded whole.
fn read_metadata(path: &Path) -> OpResult<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(OpError::new(
            Status::EISDIR,
            "metadata is not a regular file",
        ));
    }
    if meta.len() > MAX_METADATA_BYTES as u64 {
        return Err(too_big(meta.len()));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_METADATA_BYTES as u64 + 1)
        .read_to_end(&mut data)?;
    if data.len() > MAX_METADATA_BYTES {
        return Err(too_big(data.len() as u64));
    }
    Ok(Some(data))
}

pub async fn set(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = SetMetaReq::decode(&body)?;
    s.log_name = req.remote.clone();
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let op_kind = MetaOp::from_flag(req.op_flag)
        .ok_or_else(|| OpError::invalid(format!("metadata op flag {:#x}", req.op_flag)))?;
    let (name, path) = resolve_data(&storage, &req.remote)?;
    let meta_remote = format!("{}-m", req.remote);
    let logged = meta_remote.clone();
    // True when a metadata file was written (the access log names it then).
    let wrote = blocking(move || {
        // A trunk name's metadata is `<name>-m` beside its trunk file, as
        // for any name; the name itself must match its slot.
        check_data_exists(&storage, &name, &path)?;
        let meta_file = meta_path(&path);
        // Only a merge needs the old records; an overwrite replaces a file
        // of any size, so it also repairs one that is too big to read.
        let (existing, existed) = match op_kind {
            MetaOp::Merge if !req.meta.is_empty() => {
                let old = read_metadata(&meta_file)?;
                let existed = old.is_some();
                (old, existed)
            }
            _ => (None, std::fs::symlink_metadata(&meta_file).is_ok()),
        };
        let now = now_secs();
        let new_pairs = unpack(&req.meta);
        let packed = match op_kind {
            MetaOp::Overwrite if req.meta.is_empty() => {
                if existed {
                    std::fs::remove_file(&meta_file)?;
                    log_change(&storage, now, op::DELETE, &meta_remote, "");
                }
                return Ok(false);
            }
            MetaOp::Merge if req.meta.is_empty() => return Ok(false),
            MetaOp::Overwrite => pack(&normalize(new_pairs)),
            MetaOp::Merge => match &existing {
                Some(old) => pack(&merge(unpack(old), new_pairs)),
                None => pack(&normalize(new_pairs)),
            },
        };
        if packed.len() > MAX_METADATA_BYTES {
            return Err(too_big(packed.len() as u64));
        }
        // Unlike the original, only the packed records are stored, never
        // the leftover request bytes (PROTOCOL.md §1.6 quirk).
        fdfs_util::fs::replace_atomic(&meta_file, &packed)?;
        let letter = if existed { op::UPDATE } else { op::CREATE };
        log_change(&storage, now, letter, &meta_remote, "");
        Ok(true)
    })
    .await?;
    if wrote {
        s.log_name = logged;
    }
    Ok(Reply::Body(Vec::new()))
}

pub async fn get(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = GroupFileReq::decode(&body)?;
    s.log_name = req.remote.clone();
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let (name, path) = resolve_data(&storage, &req.remote)?;
    blocking(move || {
        check_data_exists(&storage, &name, &path)?;
        match read_metadata(&meta_path(&path))? {
            Some(data) => Ok(Reply::Body(data)),
            None => Err(OpError::not_found(format!("{}-m not found", req.remote))),
        }
    })
    .await
}
