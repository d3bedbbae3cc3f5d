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
                || u64::from(slot.size) < fdfs_proto::trunk::SLOT_HEADER_LEN as u64 + u64::from(file_size)
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
        None => Err(OpError::new(Status::EAGAIN, "no trunk server to confirm with")),
        Some(Target::Local) => role::confirm_local(storage, slot, ok).await,
        Some(Target::Remote(server)) => {
            let status = if ok { 0 } else { Status::EIO.0 };
            let body = slot_body(storage, slot);
            call(storage, &server, StorageCmd::TrunkAllocConfirm, status, &body).await?;
            Ok(())
        }
    }
}

/// FREE_SPACE: the file in `slot` was deleted here.
pub async fn free(storage: &Storage, slot: TrunkLocation) -> OpResult<()> {
    match target(storage) {
        None => Err(OpError::new(Status::EAGAIN, "no trunk server to free a slot with")),
        Some(Target::Local) => role::free_local(storage, slot).await,
        Some(Target::Remote(server)) => {
            let body = slot_body(storage, slot);
            call(storage, &server, StorageCmd::TrunkFreeSpace, 0, &body).await?;
            Ok(())
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

/// One exchange with the trunk server over a pooled connection; a
/// connection goes back to the pool only while it is in step.
async fn call(
    storage: &Storage,
    server: &StorageBrief,
    cmd: StorageCmd,
    status: u8,
    body: &[u8],
) -> OpResult<Vec<u8>> {
    let addr = format!("{}:{}", server.ip_addr, server.port);
    let fail = |e: fdfs_client::ClientError| {
        OpError::new(
            client_status(&e),
            format!("trunk server {addr}, {cmd:?}: {e}"),
        )
    };
    let pool = &storage.trunk.conns;
    let mut conn = match pool.take(&addr, Instant::now(), Conn::idle_looks_healthy) {
        Some(c) => c,
        None => connect(storage, &addr).await.map_err(fail)?,
    };
    let result = conn.call_with_status(cmd.into(), status, body).await;
    if conn.is_in_step() {
        pool.put(&addr, conn, Instant::now());
    }
    result.map_err(fail)
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
