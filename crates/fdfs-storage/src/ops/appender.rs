//! APPEND_FILE (24), MODIFY_FILE (34) and TRUNCATE_FILE (36) on appender
//! files. No-op requests (0 bytes, same size) succeed with an empty body,
//! where the original echoes the request (a quirk its own client rejects).
//! Each change runs under the undo journal ([`super::journaled`]): one the
//! client broke off mid-body, or that a kill caught before its binlog
//! record, is taken back.

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

use fdfs_proto::storage_msg::{AppendReq, ModifyReq, TruncateReq};
use fdfs_proto::wire::NamedHead;
use fdfs_proto::Status;

use super::{
    blocking, body_to_file, journaled, mtime_secs, read_small_body, resolve_data, stat_existing,
};
use crate::binlog::op;
use crate::error::{OpError, OpResult};
use crate::pending::Change;
use crate::session::{Reply, Session};

/// Resolves an appender file: ENOENT when missing or not a data file
/// (after draining what the client still sends), EINVAL when the whole
/// name is not an appender's (a normal file, or a slave of an appender).
async fn open_appender(s: &mut Session, remote: &str) -> OpResult<(PathBuf, u64)> {
    s.log_name = remote.to_string();
    let storage = s.storage.clone();
    let found = match resolve_data(&storage, remote) {
        Ok((name, path)) => {
            let probe = path.clone();
            blocking(move || stat_existing(&probe))
                .await
                .map(|meta| (name, path, meta))
        }
        Err(e) => Err(e),
    };
    let (name, path, meta) = match found {
        Ok(found) => found,
        Err(e) if e.status == Status::ENOENT => {
            s.drain_body().await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if !name.is_appender_file() {
        return Err(OpError::invalid(format!(
            "{remote} is not an appender file"
        )));
    }
    Ok((path, meta.len()))
}

pub async fn append(s: &mut Session) -> OpResult<Reply> {
    let body_len = s.body_left;
    let fixed = s.read_exact_body(AppendReq::FIXED_LEN).await?;
    let name_len = AppendReq::name_len(&fixed)?;
    let name = s.read_exact_body(name_len).await?;
    let req = AppendReq::decode_head(&[fixed, name].concat(), body_len)?;
    let (path, old_size) = open_appender(s, &req.remote).await?;
    if req.length == 0 {
        return Ok(Reply::Body(Vec::new()));
    }
    let storage = s.storage.clone();
    storage.bump(|st| st.total_append_bytes += req.length as i64);
    let change = Change {
        op: op::APPEND,
        remote: req.remote.clone(),
        extra: format!("{old_size} {}", req.length),
        old_len: Some(old_size),
        save_from: old_size,
        save_len: 0,
    };
    let target = path.clone();
    let mtime = journaled(&storage, path, change, async {
        let file =
            blocking(move || Ok(std::fs::OpenOptions::new().append(true).open(&target)?)).await?;
        let (file, _) = body_to_file(s, file, req.length, |_| {}).await?;
        blocking(move || Ok(mtime_secs(&file.metadata()?))).await
    })
    .await?;
    storage.bump(|st| {
        st.success_append_bytes += req.length as i64;
        st.last_source_update = mtime;
    });
    Ok(Reply::Body(Vec::new()))
}

pub async fn modify(s: &mut Session) -> OpResult<Reply> {
    let body_len = s.body_left;
    let fixed = s.read_exact_body(ModifyReq::FIXED_LEN).await?;
    let name_len = ModifyReq::name_len(&fixed)?;
    let name = s.read_exact_body(name_len).await?;
    let req = ModifyReq::decode_head(&[fixed, name].concat(), body_len)?;
    let (path, size) = open_appender(s, &req.remote).await?;
    if req.offset as u64 > size {
        return Err(OpError::invalid(format!(
            "offset {} > file size {size}",
            req.offset
        )));
    }
    if req.length == 0 {
        return Ok(Reply::Body(Vec::new()));
    }
    let storage = s.storage.clone();
    storage.bump(|st| st.total_modify_bytes += req.length as i64);
    let offset = req.offset as u64;
    let change = Change {
        op: op::MODIFY,
        remote: req.remote.clone(),
        extra: format!("{} {}", req.offset, req.length),
        old_len: Some(size),
        save_from: offset,
        save_len: offset.saturating_add(req.length).min(size) - offset,
    };
    let target = path.clone();
    let mtime = journaled(&storage, path, change, async {
        let file = blocking(move || {
            let mut file = std::fs::OpenOptions::new().write(true).open(&target)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await?;
        let (file, _) = body_to_file(s, file, req.length, |_| {}).await?;
        blocking(move || Ok(mtime_secs(&file.metadata()?))).await
    })
    .await?;
    storage.bump(|st| {
        st.success_modify_bytes += req.length as i64;
        st.last_source_update = mtime;
    });
    Ok(Reply::Body(Vec::new()))
}

/// Cuts an appender file back to `old_size` after a write that failed
/// part way (ENOSPC, a client gone): nothing half-appended stays readable
/// and the binlog never described it. Never grows the file.
pub(super) async fn cut_back(path: PathBuf, old_size: u64) {
    let result = blocking(move || {
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        if file.metadata()?.len() > old_size {
            file.set_len(old_size)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::error!(status = e.status.0, reason = ?e.reason, "could not cut a failed append back");
    }
}

pub async fn truncate(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = TruncateReq::decode(&body)?;
    let (path, old_size) = open_appender(s, &req.remote).await?;
    let new_size = req.new_size as u64;
    if new_size == old_size {
        return Ok(Reply::Body(Vec::new()));
    }
    let storage = s.storage.clone();
    let change = Change {
        op: op::TRUNCATE,
        remote: req.remote.clone(),
        extra: format!("{old_size} {new_size}"),
        old_len: Some(old_size),
        save_from: new_size.min(old_size),
        save_len: old_size.saturating_sub(new_size),
    };
    let target = path.clone();
    // Shrinking a big file frees its extents: blocking-pool work.
    let mtime = journaled(&storage, path, change, async move {
        blocking(move || {
            let file = std::fs::OpenOptions::new().write(true).open(&target)?;
            file.set_len(new_size)?;
            Ok(mtime_secs(&file.metadata()?))
        })
        .await
    })
    .await?;
    storage.bump(|st| st.last_source_update = mtime);
    Ok(Reply::Body(Vec::new()))
}
