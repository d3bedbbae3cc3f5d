//! APPEND_FILE (24), MODIFY_FILE (34) and TRUNCATE_FILE (36) on appender
//! files. No-op requests (0 bytes, same size) succeed with an empty body,
//! where the original echoes the request (a quirk its own client rejects).

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use fdfs_proto::storage_msg::{AppendReq, ModifyReq, TruncateReq};
use fdfs_proto::Status;

use super::{count, log_change, mtime_secs, read_small_body, resolve, stat_existing};
use crate::binlog::op;
use crate::conn::{Reply, Session};
use crate::error::{OpError, OpResult};

/// Largest chunk moved from the socket to the file at once.
const APPEND_CHUNK_BYTES: usize = 256 * 1024;

/// Resolves an appender file: ENOENT when missing (after draining what the
/// client still sends), EINVAL when the name is not an appender's.
async fn open_appender(s: &mut Session, remote: &str) -> OpResult<(PathBuf, u64)> {
    s.log_name = remote.to_string();
    let storage = s.storage.clone();
    let (name, path) = resolve(&storage, remote)?;
    let meta = match stat_existing(&path) {
        Ok(m) => m,
        Err(e) if e.status == Status::ENOENT => {
            s.drain_body().await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if !name.record().is_some_and(|r| r.is_appender()) {
        return Err(OpError::invalid(format!(
            "{remote} is not an appender file"
        )));
    }
    Ok((path, meta.len()))
}

/// Copies `length` body bytes into `file` at its current position.
async fn copy_body(s: &mut Session, file: &mut std::fs::File, length: u64) -> OpResult<()> {
    let mut buf = vec![0u8; (length as usize).clamp(1, APPEND_CHUNK_BYTES)];
    let mut done = 0u64;
    while done < length {
        let n = s.read_body_chunk(&mut buf).await?;
        if n == 0 {
            return Err(OpError::new(Status::EIO, "body ended early"));
        }
        file.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

pub async fn append(s: &mut Session) -> OpResult<Reply> {
    s.storage.bump(|st| st.total_append_count += 1);
    let result = append_inner(s).await;
    count(&s.storage, &result, |st| st.success_append_count += 1);
    result
}

async fn append_inner(s: &mut Session) -> OpResult<Reply> {
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
    let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
    copy_body(s, &mut file, req.length).await?;
    let mtime = mtime_secs(&file.metadata()?);
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
    s.storage.bump(|st| st.total_modify_count += 1);
    let result = modify_inner(s).await;
    count(&s.storage, &result, |st| st.success_modify_count += 1);
    result
}

async fn modify_inner(s: &mut Session) -> OpResult<Reply> {
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
    let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
    file.seek(SeekFrom::Start(req.offset as u64))?;
    copy_body(s, &mut file, req.length).await?;
    let mtime = mtime_secs(&file.metadata()?);
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
    s.storage.bump(|st| st.total_truncate_count += 1);
    let result = truncate_inner(s).await;
    count(&s.storage, &result, |st| st.success_truncate_count += 1);
    result
}

async fn truncate_inner(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = TruncateReq::decode(&body)?;
    let (path, old_size) = open_appender(s, &req.remote).await?;
    let new_size = req.new_size as u64;
    if new_size == old_size {
        return Ok(Reply::Body(Vec::new()));
    }
    let file = std::fs::OpenOptions::new().write(true).open(&path)?;
    file.set_len(new_size)?;
    let mtime = mtime_secs(&file.metadata()?);
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
