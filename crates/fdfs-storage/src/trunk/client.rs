//! The member side of the trunk protocol: asks the trunk server for slots (27/28/29).
//!
//! Every call goes to wherever the trunk server is now: to ourselves
//! without the network when we hold the role, else over a pooled
//! connection to the storage the trackers named. Any failure becomes an
//! error for the client whose upload or delete needed it.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::Conn;
use fdfs_proto::stat::StorageBrief;
use fdfs_proto::trunk_msg::{AllocReq, SlotReq};
use fdfs_proto::{Status, StorageCmd, TrunkLocation};

use super::role::{self, client_status};
use crate::error::{OpError, OpResult};
use crate::state::Storage;

/// Where the trunk server is, for one call.
enum Target {
    Local,
    Remote(StorageBrief),
}

fn target(storage: &Storage) -> Option<Target> {
    let view = storage.trunk.view();
    if view.is_self {
        return Some(Target::Local);
    }
    storage.trunk.remote_server().map(Target::Remote)
}

/// A slot for `file_size` content bytes in store path `index`, from the
/// trunk server; `None` while the group has no trunk server (or we are
/// still switching into the role): the caller stores a plain file then.
pub async fn alloc(
    storage: &std::sync::Arc<Storage>,
    index: u8,
    file_size: u32,
) -> OpResult<Option<TrunkLocation>> {
    match target(storage) {
        None => Ok(None),
        Some(Target::Local) if !storage.trunk.serving() => Ok(None),
        Some(Target::Local) => role::alloc_local(storage, index, file_size).await.map(Some),
        Some(Target::Remote(server)) => {
            let mut body = BytesMut::new();
            AllocReq {
                group: storage.group.clone(),
                file_size,
                store_path_index: index,
            }
            .encode(&mut body);
            let answer = call(storage, &server, StorageCmd::TrunkAllocSpace, 0, &body).await?;
            let slot = TrunkLocation::from_info_buff(&answer)?;
            // The trunk server's answer decides where we write: it must be
            // the path we asked for and hold the header and the content.
            if slot.store_path_index != index
                || u64::from(slot.size)
                    < fdfs_proto::trunk::SLOT_HEADER_LEN as u64 + u64::from(file_size)
            {
                return Err(OpError::new(
                    Status::EIO,
                    format!("trunk server answered an unusable slot {slot:?}"),
                ));
            }
            Ok(Some(slot))
        }
    }
}

/// ALLOC_CONFIRM: `ok` is whether the slot now holds the file.
pub async fn confirm(storage: &Storage, slot: TrunkLocation, ok: bool) -> OpResult<()> {
    match target(storage) {
        None => Err(OpError::new(
            Status::EAGAIN,
            "no trunk server to confirm with",
        )),
        Some(Target::Local) => role::confirm_local(storage, slot, ok).await,
        Some(Target::Remote(server)) => {
            let status = if ok { 0 } else { Status::EIO.0 };
            let body = slot_body(storage, slot);
            call(
                storage,
                &server,
                StorageCmd::TrunkAllocConfirm,
                status,
                &body,
            )
            .await?;
            Ok(())
        }
    }
}

/// What became of one FREE_SPACE (29).
#[derive(Debug)]
pub enum FreeOutcome {
    Freed,
    /// Not sent: no trunk server known or reachable now. Safe to retry.
    NotSent(OpError),
    /// The trunk server answered with an error: it did not free the slot.
    Refused(OpError),
    /// Sent, but no answer came: it may have been applied. Never retried,
    /// since a second free of a slot reused meanwhile would free a live
    /// file; the slot may leak, which a scrub finds.
    Unknown(OpError),
}

/// FREE_SPACE: the file in `slot` was deleted here (and, for the freer's
/// guarantee, on every peer).
pub async fn free(storage: &Storage, slot: TrunkLocation) -> FreeOutcome {
    match target(storage) {
        None => FreeOutcome::NotSent(OpError::new(
            Status::EAGAIN,
            "no trunk server to free a slot with",
        )),
        Some(Target::Local) if !storage.trunk.serving() => FreeOutcome::NotSent(OpError::new(
            Status::EAGAIN,
            "still taking over the trunk server role",
        )),
        Some(Target::Local) => match role::free_local(storage, slot).await {
            Ok(()) => FreeOutcome::Freed,
            Err(e) => FreeOutcome::Refused(e),
        },
        Some(Target::Remote(server)) => {
            let addr = format!("{}:{}", server.ip_addr, server.port);
            let cmd = StorageCmd::TrunkFreeSpace;
            let conn = match pooled_conn(storage, &addr).await {
                Ok(c) => c,
                Err(e) => return FreeOutcome::NotSent(call_error(&addr, cmd, e)),
            };
            let body = slot_body(storage, slot);
            match exchange(storage, &addr, conn, cmd, 0, &body).await {
                Ok(_) => FreeOutcome::Freed,
                Err(e @ fdfs_client::ClientError::Status(_)) => {
                    FreeOutcome::Refused(call_error(&addr, cmd, e))
                }
                Err(e) => FreeOutcome::Unknown(call_error(&addr, cmd, e)),
            }
        }
    }
}

fn slot_body(storage: &Storage, slot: TrunkLocation) -> BytesMut {
    let mut body = BytesMut::new();
    SlotReq {
        group: storage.group.clone(),
        slot,
    }
    .encode(&mut body);
    body
}

/// One trunk command to another member (the trunk server's pushes).
pub(crate) async fn call_member(
    storage: &Storage,
    member: &StorageBrief,
    cmd: StorageCmd,
    body: &[u8],
) -> OpResult<Vec<u8>> {
    call(storage, member, cmd, 0, body).await
}

/// One exchange with the trunk server over a pooled connection.
async fn call(
    storage: &Storage,
    server: &StorageBrief,
    cmd: StorageCmd,
    status: u8,
    body: &[u8],
) -> OpResult<Vec<u8>> {
    let addr = format!("{}:{}", server.ip_addr, server.port);
    let conn = pooled_conn(storage, &addr)
        .await
        .map_err(|e| call_error(&addr, cmd, e))?;
    exchange(storage, &addr, conn, cmd, status, body)
        .await
        .map_err(|e| call_error(&addr, cmd, e))
}

fn call_error(addr: &str, cmd: StorageCmd, e: fdfs_client::ClientError) -> OpError {
    OpError::new(
        client_status(&e),
        format!("trunk server {addr}, {cmd:?}: {e}"),
    )
}

/// A pooled connection to the trunk server, or a new one.
async fn pooled_conn(storage: &Storage, addr: &str) -> Result<Conn, fdfs_client::ClientError> {
    match storage
        .trunk
        .conns
        .take(addr, Instant::now(), Conn::idle_looks_healthy)
    {
        Some(c) => Ok(c),
        None => connect(storage, addr).await,
    }
}

/// One request and its answer; the connection goes back to the pool only
/// while it is in step.
async fn exchange(
    storage: &Storage,
    addr: &str,
    mut conn: Conn,
    cmd: StorageCmd,
    status: u8,
    body: &[u8],
) -> Result<Vec<u8>, fdfs_client::ClientError> {
    let result = conn.call_with_status(cmd.into(), status, body).await;
    if conn.is_in_step() {
        storage.trunk.conns.put(addr, conn, Instant::now());
    }
    result
}

async fn connect(storage: &Storage, addr: &str) -> Result<Conn, fdfs_client::ClientError> {
    let mut conn = Conn::connect_from(
        addr,
        storage.client_bind_ip(),
        Duration::from_secs(storage.conf.connect_timeout_secs.max(1)),
        Duration::from_secs(storage.conf.network_timeout_secs.max(1)),
    )
    .await?;
    if let Some(secret) = &storage.conf.cluster_secret {
        conn.prove_cluster_secret(secret, fdfs_util::cluster_secret::Purpose::StorageSync)
            .await?;
    }
    Ok(conn)
}

/// Whether an upload of `file_size` bytes goes into a trunk slot (§11.5:
/// `24 + size ≤ slot_max_size`, trunk files on).
pub fn fits_trunk(trunk: &fdfs_config::TrunkParams, file_size: u64) -> bool {
    trunk.use_trunk_file
        && fdfs_proto::trunk::SLOT_HEADER_LEN as u64 + file_size <= trunk.slot_max_size_bytes
        && u32::try_from(file_size).is_ok()
}

/// UPLOAD_FILE into a trunk slot, in the order of the trunk design: slot
/// from the trunk server, content then header into our copy of the trunk
/// file, ALLOC_CONFIRM, CREATE record, then the answer. `None` when the
/// group has no trunk server now (the caller stores a plain file). Any
/// failure after the allocation clears the slot here and gives it back.
pub async fn upload(
    s: &mut crate::session::Session,
    index: usize,
    ext: &str,
    file_size: u64,
) -> OpResult<Option<crate::session::Reply>> {
    use fdfs_proto::fileid::FileNameRecord;
    use fdfs_proto::storage_msg::FileIdResp;
    use fdfs_proto::trunk::{trunk_size_field, SlotHeader, SLOT_TYPE_REGULAR};

    use super::slot::{body_to_slot, SlotWrite};
    use crate::ops::{blocking, random_u32};
    use crate::state::{lock, now_secs};

    let storage = s.storage.clone();
    let size = u32::try_from(file_size)
        .map_err(|_| OpError::invalid(format!("{file_size} bytes do not fit a trunk slot")))?;
    let path_index = u8::try_from(index).map_err(|_| OpError::invalid("store path index"))?;
    let Some(slot) = alloc(&storage, path_index, size).await? else {
        return Ok(None);
    };
    storage.bump(|st| st.total_upload_bytes += i64::from(size));
    let root = storage.paths[index].root.clone();
    let trunk_file_size = storage.params().trunk.trunk_file_size_bytes;
    let begun = {
        let root = root.clone();
        blocking(move || SlotWrite::begin(&root, slot, size, trunk_file_size, None)).await
    };
    let writer = match begun {
        Ok((w, _prior)) => w,
        Err(e) => {
            // The slot is not ours to clear: rule 4 may just have found
            // another file in it. It goes back to the pool unconfirmed.
            give_back(&storage, slot, None).await;
            return Err(e);
        }
    };
    let (writer, writes) = match body_to_slot(s, writer, file_size).await {
        Ok(done) => done,
        Err(e) => {
            give_back(&storage, slot, None).await;
            return Err(e);
        }
    };
    storage.bump(|st| {
        st.total_file_write_count += writes;
        st.success_file_write_count += writes;
    });
    let mtime = now_secs();
    let ext7 = crate::store::new_ext7(ext, &mut lock(&storage.rng));
    let mut ext7_bytes = [0u8; fdfs_proto::fileid::EXT7_LEN];
    ext7_bytes.copy_from_slice(ext7.as_bytes());
    let crc32 = writer.crc32();
    let record = FileNameRecord {
        source: storage.name_source(),
        timestamp: mtime as u32,
        size_field: trunk_size_field(size, random_u32(&storage)),
        crc32,
    };
    let remote = match slot.remote_name(&record, &ext7) {
        Ok(r) => r.to_string(),
        Err(e) => {
            give_back(&storage, slot, None).await;
            return Err(e.into());
        }
    };
    let header = SlotHeader {
        file_type: SLOT_TYPE_REGULAR,
        alloc_size: slot.size,
        file_size: size,
        crc32,
        mtime: mtime as u32,
        ext7: ext7_bytes,
    };
    let threshold = storage.conf.fsync_after_written_bytes;
    let fsync = threshold > 0 && file_size >= threshold;
    // Until the header is written the slot on disk is as it was: nothing
    // of ours to clear (and after EEXIST, someone else's file to keep).
    if let Err(e) = blocking(move || writer.finish(&header, fsync)).await {
        give_back(&storage, slot, None).await;
        return Err(e);
    }
    if let Err(e) = confirm(&storage, slot, true).await {
        tracing::error!(error = %e.reason, remote, "trunk slot not confirmed; upload refused");
        give_back(&storage, slot, Some(root)).await;
        return Err(e);
    }
    let logged = {
        let (storage, remote) = (storage.clone(), remote.clone());
        blocking(move || {
            storage
                .binlog
                .append(mtime, crate::binlog::op::CREATE, &remote, "")
                .map_err(|e| OpError::new(Status::EIO, format!("binlog write failed: {e}")))
        })
        .await
    };
    if let Err(e) = logged {
        tracing::error!(error = %e.reason, remote, "binlog write failed; trunk upload refused");
        let clear_root = root.clone();
        let _ = blocking(move || Ok(super::slot::clear_slot(&clear_root, &slot)?)).await;
        // Never logged, so never replicated: no peer can hold it.
        if !matches!(free(&storage, slot).await, FreeOutcome::Freed) {
            tracing::error!(?slot, "trunk slot leaked; a scrub frees it");
        }
        return Err(e);
    }
    storage.bump(|st| {
        st.success_upload_bytes += i64::from(size);
        st.last_source_update = mtime;
    });
    s.log_name = remote.clone();
    let mut body = BytesMut::new();
    FileIdResp {
        group: storage.group.clone(),
        remote,
    }
    .encode(&mut body);
    Ok(Some(crate::session::Reply::Body(body.to_vec())))
}

/// An allocation that will not be used: the slot is cleared in our copy
/// when `clear_in` names its store path (only once our header is in it),
/// then the trunk server takes the slot back
/// (confirm with a failure status). A failure leaks the slot until the
/// trunk server frees stale allocations or a scrub does.
async fn give_back(
    storage: &std::sync::Arc<Storage>,
    slot: TrunkLocation,
    clear_in: Option<std::path::PathBuf>,
) {
    if let Some(root) = clear_in {
        let cleared =
            crate::ops::blocking(move || Ok(super::slot::clear_slot(&root, &slot)?)).await;
        if let Err(e) = cleared {
            tracing::warn!(error = %e.reason, ?slot, "cannot clear an unused trunk slot");
        }
    }
    if let Err(e) = confirm(storage, slot, false).await {
        tracing::warn!(error = %e.reason, ?slot, "unused trunk slot not given back");
    }
}
