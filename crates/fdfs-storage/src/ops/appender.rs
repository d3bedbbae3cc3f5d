//! APPEND_FILE (24), MODIFY_FILE (34) and TRUNCATE_FILE (36) on appender
//! files. No-op requests (0 bytes, same size) succeed with an empty body,
//! where the original echoes the request (a quirk its own client rejects).

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

use fdfs_proto::storage_msg::{AppendReq, ModifyReq, TruncateReq};
use fdfs_proto::wire::NamedHead;
use fdfs_proto::Status;

use super::{
    blocking, body_to_file, log_change, mtime_secs, read_small_body, resolve_data, stat_existing,
};
use crate::binlog::op;
use crate::error::{OpError, OpResult};
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
    let file = blocking(move || Ok(std::fs::OpenOptions::new().append(true).open(&path)?)).await?;
    let (file, _) = body_to_file(s, file, req.length, |_| {}).await?;
    let mtime = blocking(move || Ok(mtime_secs(&file.metadata()?))).await?;
    log_change(
        &storage,
        mtime,
        op::APPEND,
        &req.remote,
        &format!("{old_size} {}", req.length),
    );
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
    let file = blocking(move || {
        let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(file)
    })
    .await?;
    let (file, _) = body_to_file(s, file, req.length, |_| {}).await?;
    let mtime = blocking(move || Ok(mtime_secs(&file.metadata()?))).await?;
    log_change(
        &storage,
        mtime,
        op::MODIFY,
        &req.remote,
        &format!("{} {}", req.offset, req.length),
    );
    storage.bump(|st| {
        st.success_modify_bytes += req.length as i64;
        st.last_source_update = mtime;
    });
    Ok(Reply::Body(Vec::new()))
}

pub async fn truncate(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = TruncateReq::decode(&body)?;
    let (path, old_size) = open_appender(s, &req.remote).await?;
    let new_size = req.new_size as u64;
    if new_size == old_size {
        return Ok(Reply::Body(Vec::new()));
    }
    // Shrinking a big file frees its extents: blocking-pool work.
    let mtime = blocking(move || {
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.set_len(new_size)?;
        Ok(mtime_secs(&file.metadata()?))
    })
    .await?;
    let storage = s.storage.clone();
    log_change(
        &storage,
        mtime,
        op::TRUNCATE,
        &req.remote,
        &format!("{old_size} {new_size}"),
    );
    storage.bump(|st| st.last_source_update = mtime);
    Ok(Reply::Body(Vec::new()))
}
