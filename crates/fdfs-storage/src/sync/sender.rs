//! The SYNC_* command of each binlog record (§5.4): what a worker sends a
//! peer for a create, update, delete, append, modify, truncate or rename,
//! and how it repairs a replica that answers that it differs.

use std::io::SeekFrom;
use std::path::PathBuf;

use bytes::BytesMut;
use fdfs_client::{ClientError, Conn};
use fdfs_proto::storage_msg::FileInfoResp;
use fdfs_proto::sync_msg::{SyncDeleteReq, SyncFileReq, SyncPairReq, SyncRangeReq};
use fdfs_proto::tracker_msg::GroupFileReq;
use fdfs_proto::{Status, StorageCmd};

use crate::binlog::Record;
use crate::state::Storage;
use crate::trunk::slot;
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::trunk::TrunkLocation;

/// A peer's answer that no retry can change: the record is malformed for
/// it (EINVAL; it also closes the connection, §1.1).
pub(super) fn refused_for_good(e: &ClientError) -> bool {
    status_of(e) == Some(Status::EINVAL)
}

/// Where a record's file is on our disk; None for a name that does not
/// resolve (it has nothing to send).
fn local_path(storage: &Storage, remote: &str) -> Option<PathBuf> {
    crate::ops::resolve(storage, remote).ok().map(|(_, p)| p)
}

/// The status a peer answered with, if it answered at all.
fn status_of(e: &ClientError) -> Option<Status> {
    match e {
        ClientError::Status(s) => Some(*s),
        _ => None,
    }
}

/// Sends a whole local file with SYNC_CREATE_FILE (16) or
/// SYNC_UPDATE_FILE (18). Content is the file as it is now.
async fn send_file(
    storage: &Storage,
    conn: &mut Conn,
    cmd: StorageCmd,
    remote: &str,
    timestamp: i64,
) -> Result<(), ClientError> {
    if let Some(name) = trunk_name(storage, remote) {
        return send_slot(storage, conn, cmd, remote, name, timestamp).await;
    }
    let Some(path) = local_path(storage, remote) else {
        return Ok(());
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        // Gone since: a later record deletes it anyway.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ClientError::Io(e)),
    };
    let meta = file.metadata().await.map_err(ClientError::Io)?;
    if !meta.is_file() {
        // Not a file we store (a directory in its place): nothing to send.
        return Ok(());
    }
    let size = meta.len();
    let mut head = BytesMut::new();
    SyncFileReq {
        remote: remote.to_string(),
        file_size: size,
        timestamp: timestamp as i32,
        group: storage.group.clone(),
    }
    .encode_head(&mut head);
    conn.send_head(cmd.into(), 0, &head, size).await?;
    conn.send_from(&mut file, size).await?;
    let r = conn.recv_ok_discarding_body().await;
    storage.bump(|st| {
        st.total_sync_out_bytes += size as i64;
        if r.is_ok() {
            st.success_sync_out_bytes += size as i64;
        }
    });
    r
}

/// The parsed name when `remote` is a trunk name of ours.
fn trunk_name(storage: &Storage, remote: &str) -> Option<RemoteName> {
    let name = RemoteName::parse(remote, storage.paths.len()).ok()?;
    TrunkLocation::from_remote(&name).map(|_| name)
}

/// Whether the slot of a trunk name still holds that file here.
async fn slot_holds(storage: &Storage, name: RemoteName) -> bool {
    let Ok(root) = slot::store_root(storage, &name) else {
        return false;
    };
    tokio::task::spawn_blocking(move || slot::open_slot(&root, &name).is_ok())
        .await
        .unwrap_or(false)
}

/// Sends a trunk-backed file from its slot with SYNC_CREATE_FILE: the
/// content only, as the original; the peer writes it into its own copy of
/// the trunk file at the same slot. A slot that no longer holds the file
/// (deleted since, or reused) has nothing to send.
async fn send_slot(
    storage: &Storage,
    conn: &mut Conn,
    cmd: StorageCmd,
    remote: &str,
    name: RemoteName,
    timestamp: i64,
) -> Result<(), ClientError> {
    let Ok(root) = slot::store_root(storage, &name) else {
        return Ok(());
    };
    let Ok(loc) = slot::location_of(&name) else {
        return Ok(());
    };
    // Held until the peer has answered: a delete of this file here waits
    // for it (see `slot::SendGuard`).
    let _sending = slot::SendGuard::register(&root, &loc);
    let opened = tokio::task::spawn_blocking(move || slot::open_slot(&root, &name))
        .await
        .map_err(|e| ClientError::Io(std::io::Error::other(e)))?;
    let Ok(found) = opened else {
        return Ok(());
    };
    let (size, base) = (found.size(), found.content_offset());
    let mut file = tokio::fs::File::from_std(found.file);
    use tokio::io::AsyncSeekExt;
    file.seek(SeekFrom::Start(base))
        .await
        .map_err(ClientError::Io)?;
    let mut head = BytesMut::new();
    SyncFileReq {
        remote: remote.to_string(),
        file_size: size,
        timestamp: timestamp as i32,
        group: storage.group.clone(),
    }
    .encode_head(&mut head);
    conn.send_head(cmd.into(), 0, &head, size).await?;
    conn.send_from(&mut file, size).await?;
    let r = match conn.recv_ok_discarding_body().await {
        // Trunk files never change: the peer has this file, or its slot
        // holds another one, which it logged and must not lose to ours
        // (trunk design rule 4); `fdfs trunk check` reports it.
        Err(e) if status_of(&e) == Some(Status::EEXIST) => Ok(()),
        other => other,
    };
    storage.bump(|st| {
        st.total_sync_out_bytes += size as i64;
        if r.is_ok() {
            st.success_sync_out_bytes += size as i64;
        }
    });
    r
}

/// The size of a file on the peer (QUERY_FILE_INFO without CRC).
async fn remote_size(storage: &Storage, conn: &mut Conn, remote: &str) -> Result<i64, ClientError> {
    let mut b = BytesMut::new();
    GroupFileReq {
        group: storage.group.clone(),
        remote: remote.to_string(),
    }
    .encode(&mut b);
    let body = conn
        .call_with_status(StorageCmd::QueryFileInfo.into(), 1, &b)
        .await?;
    Ok(FileInfoResp::decode(&body)?.file_size)
}

/// Sends one record with the matching SYNC_* command. Records whose file
/// is gone since are skipped: a later record carries the result. A range
/// the file no longer holds sends the whole file.
pub(super) async fn send_record(
    storage: &Storage,
    conn: &mut Conn,
    rec: &Record,
) -> Result<(), ClientError> {
    let ts = rec.timestamp;
    match rec.op {
        'C' | 'c' | 'r' => {
            let name = &rec.filename;
            match send_file(storage, conn, StorageCmd::SyncCreateFile, name, ts).await {
                Err(e) if status_of(&e) == Some(Status::EEXIST) => {
                    // The peer has a file of the same size or a different
                    // one; make sure it ends up with ours.
                    let local = match local_path(storage, name) {
                        Some(p) => tokio::fs::metadata(p).await.ok().map(|m| m.len() as i64),
                        None => None,
                    };
                    let theirs = remote_size(storage, conn, name).await.ok();
                    if local.is_some() && local != theirs {
                        send_file(storage, conn, StorageCmd::SyncUpdateFile, name, ts).await?;
                    }
                    Ok(())
                }
                other => other,
            }
        }
        'U' | 'u' => send_file(storage, conn, StorageCmd::SyncUpdateFile, &rec.filename, ts).await,
        'D' | 'd' => {
            if let Some(name) = trunk_name(storage, &rec.filename) {
                if slot_holds(storage, name).await {
                    return Ok(());
                }
            } else if let Some(p) = local_path(storage, &rec.filename) {
                if tokio::fs::try_exists(p).await.unwrap_or(false) {
                    return Ok(());
                }
            }
            let mut b = BytesMut::new();
            SyncDeleteReq {
                timestamp: ts as i32,
                group: storage.group.clone(),
                remote: rec.filename.clone(),
            }
            .encode(&mut b);
            match conn.call(StorageCmd::SyncDeleteFile.into(), &b).await {
                Err(e) if status_of(&e) == Some(Status::ENOENT) => Ok(()),
                other => other.map(|_| ()),
            }
        }
        'A' | 'M' => {
            let mut parts = rec.extra.split(' ');
            let (Some(Ok(offset)), Some(Ok(length))) = (
                parts.next().map(str::parse::<u64>),
                parts.next().map(str::parse::<u64>),
            ) else {
                return Ok(());
            };
            let Some(path) = local_path(storage, &rec.filename) else {
                return Ok(());
            };
            let Ok(mut file) = tokio::fs::File::open(&path).await else {
                return Ok(());
            };
            let size = file.metadata().await.map_err(ClientError::Io)?.len();
            if offset.checked_add(length).is_none_or(|end| size < end) {
                // A later truncate cut this range away. Skipping it left the
                // peer's old bytes below the cut once the truncate came; the
                // whole file as it is now is right whatever follows.
                return send_file(storage, conn, StorageCmd::SyncUpdateFile, &rec.filename, ts)
                    .await;
            }
            use tokio::io::AsyncSeekExt;
            file.seek(SeekFrom::Start(offset))
                .await
                .map_err(ClientError::Io)?;
            let cmd = if rec.op == 'A' {
                StorageCmd::SyncAppendFile
            } else {
                StorageCmd::SyncModifyFile
            };
            let mut head = BytesMut::new();
            SyncRangeReq {
                remote: rec.filename.clone(),
                a: offset,
                b: length,
                timestamp: ts as i32,
                group: storage.group.clone(),
            }
            .encode_head(&mut head);
            conn.send_head(cmd.into(), 0, &head, length).await?;
            conn.send_from(&mut file, length).await?;
            match conn.recv_ok_discarding_body().await {
                Err(e) if status_of(&e) == Some(Status::EEXIST) => Ok(()),
                // The replica differs: send the whole file instead.
                Err(e) if status_of(&e) == Some(Status::ENOENT) => {
                    send_file(storage, conn, StorageCmd::SyncUpdateFile, &rec.filename, ts).await
                }
                other => other,
            }
        }
        'T' => {
            let mut parts = rec.extra.split(' ');
            let (Some(Ok(old)), Some(Ok(new))) = (
                parts.next().map(str::parse::<u64>),
                parts.next().map(str::parse::<u64>),
            ) else {
                return Ok(());
            };
            let mut b = BytesMut::new();
            SyncRangeReq {
                remote: rec.filename.clone(),
                a: old,
                b: new,
                timestamp: ts as i32,
                group: storage.group.clone(),
            }
            .encode_head(&mut b);
            match conn.call(StorageCmd::SyncTruncateFile.into(), &b).await {
                Ok(_) => Ok(()),
                // The replica's size differs from the record's old size:
                // unlike the original (which counts this as done and can
                // leave replicas different), send the whole current file.
                Err(e) if matches!(status_of(&e), Some(Status::EEXIST) | Some(Status::ENOENT)) => {
                    send_file(storage, conn, StorageCmd::SyncUpdateFile, &rec.filename, ts).await
                }
                Err(e) => Err(e),
            }
        }
        'R' => {
            let mut b = BytesMut::new();
            SyncPairReq {
                dest: rec.filename.clone(),
                src: rec.extra.clone(),
                timestamp: ts as i32,
                group: storage.group.clone(),
            }
            .encode(&mut b);
            conn.send(StorageCmd::SyncRenameFile.into(), 0, &b).await?;
            match conn.recv_ok_discarding_body().await {
                Err(e) if status_of(&e) == Some(Status::EEXIST) => Ok(()),
                Err(e) if status_of(&e) == Some(Status::ENOENT) => {
                    send_file(storage, conn, StorageCmd::SyncCreateFile, &rec.filename, ts).await
                }
                other => other,
            }
        }
        'L' | 'l' => {
            // The link as it is now: gone since, a later delete follows.
            // A trunk name's link is an `L` slot, any other a symlink.
            if let Some(name) = trunk_name(storage, &rec.filename) {
                if !slot_holds(storage, name).await {
                    return Ok(());
                }
            } else {
                let Some(p) = local_path(storage, &rec.filename) else {
                    return Ok(());
                };
                if tokio::fs::symlink_metadata(p).await.is_err() {
                    return Ok(());
                }
            }
            let mut b = BytesMut::new();
            SyncPairReq {
                dest: rec.filename.clone(),
                src: rec.extra.clone(),
                timestamp: ts as i32,
                group: storage.group.clone(),
            }
            .encode(&mut b);
            conn.send(StorageCmd::SyncCreateLink.into(), 0, &b).await?;
            match conn.recv_ok_discarding_body().await {
                // As the original: a target the peer lacks is not retried.
                Err(e) if status_of(&e) == Some(Status::ENOENT) => Ok(()),
                other => other,
            }
        }
        _ => Ok(()),
    }
}
