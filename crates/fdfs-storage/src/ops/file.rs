//! DELETE_FILE (12), QUERY_FILE_INFO (22) and
//! REGENERATE_APPENDER_FILENAME (38).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fdfs_proto::fileid::{normal_size_field, FileKind, FileNameRecord};
use fdfs_proto::storage_msg::{decode_regenerate, FileIdResp, FileInfoResp};
use fdfs_proto::tracker_msg::GroupFileReq;
use fdfs_proto::Status;

use super::{
    blocking, check_group, log_change, meta_path, mtime_secs, random_u32, read_small_body, resolve,
    resolve_data, stat_existing,
};
use crate::binlog::op;
use crate::error::{OpError, OpResult};
use crate::session::{Reply, Session};
use crate::state::{now_secs, Storage};
use crate::trunk::slot;
use fdfs_proto::trunk::{TrunkLocation, SLOT_TYPE_LINK};

/// QUERY_FILE_INFO flag: do not compute CRC32 for appender and slave files.
const INFO_FLAG_NO_CRC: u8 = 1;
/// Names of this length or more are rejected by QUERY_FILE_INFO.
const INFO_MAX_NAME_LEN: usize = 132;
/// Found files with names shorter than this are rejected.
const INFO_MIN_NAME_LEN: usize = 37;

pub async fn delete(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = GroupFileReq::decode(&body)?;
    s.log_name = req.remote.clone();
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let (name, path) = resolve_data(&storage, &req.remote)?;
    if TrunkLocation::from_remote(&name).is_some() {
        return delete_trunk(storage, name, path, req.remote).await;
    }
    // Unlinking a big file frees all its extents: blocking-pool work.
    blocking(move || {
        let link_meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpError::not_found(format!("{} not found", req.remote)))
            }
            Err(e) => return Err(e.into()),
        };
        if link_meta.is_dir() {
            return Err(OpError::invalid(format!("{} is not a file", req.remote)));
        }
        let now = now_secs();
        if link_meta.file_type().is_symlink() {
            // A slave stored as a link: its target goes too, as in the original.
            if let Ok(target) = std::fs::read_link(&path) {
                if std::fs::remove_file(&target).is_ok() {
                    let data_dir = storage.paths[usize::from(name.store_path_index)].data_dir();
                    if let Ok(rel) = target.strip_prefix(&data_dir) {
                        let remote = format!("M{:02X}/{}", name.store_path_index, rel.display());
                        log_change(&storage, now, op::DELETE, &remote, "");
                    }
                }
            }
        }
        std::fs::remove_file(&path)?;
        log_change(&storage, now, op::DELETE, &req.remote, "");
        let meta = meta_path(&path);
        if std::fs::remove_file(&meta).is_ok() {
            log_change(&storage, now, op::DELETE, &format!("{}-m", req.remote), "");
        }
        Ok(Reply::Body(Vec::new()))
    })
    .await
}

/// DELETE_FILE of a trunk name: the slot must hold the named file
/// (ENOENT otherwise), it is cleared; the `-m` file beside the trunk file
/// goes as for any name. The slot goes back to the trunk server once every
/// peer has the delete too (`sync::freer`), not now.
async fn delete_trunk(
    storage: Arc<Storage>,
    name: fdfs_proto::fileid::RemoteName,
    path: PathBuf,
    remote: String,
) -> OpResult<Reply> {
    blocking(move || {
        let root = slot::store_root(&storage, &name)?;
        let tombstone = slot::tombstones_fit(storage.params().trunk.slot_min_size_bytes);
        slot::delete_slot(&root, &name, tombstone)?;
        let now = now_secs();
        log_change(&storage, now, op::DELETE, &remote, "");
        if std::fs::remove_file(meta_path(&path)).is_ok() {
            log_change(&storage, now, op::DELETE, &format!("{remote}-m"), "");
        }
        Ok(Reply::Body(Vec::new()))
    })
    .await
}

/// QUERY_FILE_INFO of a trunk name: size and mtime from the slot header
/// (the size of an `L` slot's target), the CRC32 from the name (§3.7).
async fn query_trunk_info(
    storage: &Arc<Storage>,
    name: fdfs_proto::fileid::RemoteName,
    remote: String,
) -> OpResult<Reply> {
    let disk_storage = storage.clone();
    let found = blocking(move || {
        let root = slot::store_root(&disk_storage, &name)?;
        let slot = slot::open_slot(&root, &name)?;
        if remote.len() < INFO_MIN_NAME_LEN {
            return Err(OpError::invalid("filename too short"));
        }
        // A link slot reports its target's size and its own mtime, as
        // the original's file info does.
        let file_size = if slot.header.file_type == SLOT_TYPE_LINK {
            slot::open_link_target(&disk_storage, &name, &slot)?.size
        } else {
            slot.size()
        };
        Ok((file_size, slot.header.mtime, name))
    })
    .await;
    let (file_size, mtime, name) = found?;
    let record = name
        .record()
        .ok_or_else(|| OpError::invalid("filename carries no file record"))?;
    let resp = FileInfoResp {
        file_size: file_size as i64,
        create_timestamp: i64::from(mtime),
        crc32: record.crc32,
        source_ip: storage.source_ip_of(&record),
    };
    let mut out = bytes::BytesMut::new();
    resp.encode(&mut out, storage.params().response_ip_addr_size);
    Ok(Reply::Body(out.to_vec()))
}

pub async fn query_info(s: &mut Session, flags: u8) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = GroupFileReq::decode(&body)?;
    s.log_name = req.remote.clone();
    if req.remote.len() >= INFO_MAX_NAME_LEN {
        return Err(OpError::invalid("filename too long"));
    }
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    let (name, path) = resolve_data(&storage, &req.remote)?;
    if TrunkLocation::from_remote(&name).is_some() {
        return query_trunk_info(&storage, name, req.remote).await;
    }
    let stat_path = path.clone();
    let (link_meta, meta) = blocking(move || {
        let link_meta = match std::fs::symlink_metadata(&stat_path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpError::not_found(format!("{} not found", req.remote)))
            }
            Err(e) => return Err(e.into()),
        };
        // Checked only once the file is known to exist, like the original.
        if req.remote.len() < INFO_MIN_NAME_LEN {
            return Err(OpError::invalid("filename too short"));
        }
        Ok((link_meta, stat_existing(&stat_path)?))
    })
    .await?;
    let record = name
        .record()
        .ok_or_else(|| OpError::invalid("filename carries no file record"))?;
    let crc32 = match name.kind() {
        FileKind::Normal => record.crc32,
        _ if flags & INFO_FLAG_NO_CRC != 0 => 0,
        _ => crc32_of_file(&storage, path).await?,
    };
    let resp = FileInfoResp {
        file_size: meta.len() as i64,
        create_timestamp: mtime_secs(&link_meta),
        crc32,
        source_ip: storage.source_ip_of(&record),
    };
    let mut out = bytes::BytesMut::new();
    resp.encode(&mut out, storage.params().response_ip_addr_size);
    Ok(Reply::Body(out.to_vec()))
}

/// CRC32 of a whole file (appender and slave files carry no usable one).
/// The scan runs on the blocking pool, at most
/// [`crate::state::MAX_CONCURRENT_FILE_SCANS`] at once, and gives up with
/// EINTR when the server stops: a many-GiB sparse appender takes seconds.
pub async fn crc32_of_file(storage: &Arc<Storage>, path: PathBuf) -> OpResult<u32> {
    let _permit = storage
        .scan_permits
        .acquire()
        .await
        .map_err(|_| OpError::new(Status::EINTR, "server stopping"))?;
    let storage = storage.clone();
    blocking(move || scan_crc32(&storage, &path)).await
}

fn scan_crc32(storage: &Storage, path: &Path) -> OpResult<u32> {
    match fdfs_util::fs::crc32_of_file_while(path, || !storage.is_stopping()) {
        Ok(crc) => Ok(crc),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            Err(OpError::new(Status::EINTR, "server stopping"))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn regenerate(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let remote = decode_regenerate(&body)?;
    s.log_name = remote.clone();
    let storage = s.storage.clone();
    let (name, path) = resolve_data(&storage, &remote)?;
    let stat_path = path.clone();
    let meta = blocking(move || stat_existing(&stat_path)).await?;
    let ext7 = match name.ext7() {
        Some(ext7) if name.is_appender_file() => ext7.to_string(),
        _ => {
            return Err(OpError::invalid(format!(
                "{remote} is not an appender file"
            )))
        }
    };
    let crc32 = crc32_of_file(&storage, path.clone()).await?;
    let now = now_secs();
    let (disk_storage, old_remote) = (storage.clone(), remote.clone());
    let new_remote = blocking(move || {
        let (storage, remote) = (disk_storage, old_remote);
        for _ in 0..10 {
            let new_record = FileNameRecord {
                source: storage.name_source(),
                timestamp: now as u32,
                size_field: normal_size_field(meta.len(), random_u32(&storage)),
                crc32,
            };
            let new_remote = format!(
                "M{:02X}/{:02X}/{:02X}/{}{}",
                name.store_path_index,
                name.dir1,
                name.dir2,
                new_record.encode(),
                ext7
            );
            let (_, new_path) = resolve(&storage, &new_remote)?;
            match super::upload::link_no_clobber(&path, &new_path) {
                Ok(()) => {
                    std::fs::remove_file(&path)?;
                    // Unlike the original, the metadata follows the file
                    // instead of being orphaned under the old name.
                    let old_meta = meta_path(&path);
                    if old_meta.exists() {
                        let _ = std::fs::rename(&old_meta, meta_path(&new_path));
                    }
                    log_change(&storage, now, op::RENAME, &new_remote, &remote);
                    return Ok(new_remote);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpError::new(Status::EBUSY, "no unique file name"))
    })
    .await?;
    s.log_name = format!("{remote}=>{new_remote}");
    let mut out = bytes::BytesMut::new();
    FileIdResp {
        group: storage.group.clone(),
        remote: new_remote,
    }
    .encode(&mut out);
    Ok(Reply::Body(out.to_vec()))
}
