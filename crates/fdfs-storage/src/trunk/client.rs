//! The member side of the trunk protocol: asks the trunk server for slots (27/28/29).
//!
//! Every call goes to wherever the trunk server is now: to ourselves
//! without the network when we hold the role, else over a pooled
//! connection to the storage the trackers named. Any failure becomes an
//! error for the client whose upload or delete needed it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::Conn;
use fdfs_proto::stat::StorageBrief;
use fdfs_proto::trunk_msg::{AllocReq, SlotReq};
use fdfs_proto::{Status, StorageCmd, TrunkLocation};

use super::role::{self, client_status};
use super::scrub::{clear_orphan_header, ORPHAN_CHECK_AFTER};
use super::slot::SlotWrite;
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

/// ALLOC_SPACE (27) to the trunk server `server`.
async fn alloc_remote(
    storage: &Storage,
    server: &StorageBrief,
    index: u8,
    file_size: u32,
) -> OpResult<TrunkLocation> {
    let mut body = BytesMut::new();
    AllocReq {
        group: storage.group.clone(),
        file_size,
        store_path_index: index,
    }
    .encode(&mut body);
    let answer = call(storage, server, StorageCmd::TrunkAllocSpace, 0, &body).await?;
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
    Ok(slot)
}

/// ALLOC_CONFIRM: `ok` is whether the slot now holds the file.
pub async fn confirm(storage: &Storage, slot: TrunkLocation, ok: bool) -> OpResult<()> {
    confirm_with(storage, slot, if ok { 0 } else { Status::EIO.0 }).await
}

/// ALLOC_CONFIRM of a slot found holding another file (EEXIST, rule 4):
/// used, as the original confirms it, so it leaves the pool instead of
/// being handed out (and refused) again. A scrub reports it.
pub async fn occupied(storage: &Storage, slot: TrunkLocation) {
    tracing::warn!(
        ?slot,
        "trunk slot holds another file; kept out of the free space"
    );
    if let Err(e) = confirm_with(storage, slot, Status::EEXIST.0).await {
        tracing::warn!(error = %e.reason, ?slot, "occupied trunk slot not confirmed");
    }
}

/// ALLOC_CONFIRM with the original's status: 0 used, EEXIST occupied by
/// another file (also used), anything else back to the pool.
async fn confirm_with(storage: &Storage, slot: TrunkLocation, status: u8) -> OpResult<()> {
    match target(storage) {
        None => Err(OpError::new(
            Status::EAGAIN,
            "no trunk server to confirm with",
        )),
        Some(Target::Local) => {
            let used = fdfs_proto::trunk_msg::confirm_keeps_slot(status);
            role::confirm_local(storage, slot, used).await
        }
        Some(Target::Remote(server)) => {
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

/// FREE_SPACE: the file in `slot` was deleted here and on every peer (the
/// freer's guarantee), or it never left this storage. Sent with
/// `FREE_STATUS_EVERY_PEER_DELETED`, so that a trunk server of ours checks
/// its own copy of the slot (`TrunkSpace::free_deleted`).
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
        Some(Target::Local) => match role::free_local(storage, slot, true).await {
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
            let status = fdfs_proto::trunk_msg::FREE_STATUS_EVERY_PEER_DELETED;
            match exchange(storage, &addr, conn, cmd, status, &body).await {
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
///
/// A body of one chunk is read first and the disk work done in as few
/// thread hops as the order allows: on the trunk server itself, one job on
/// the writer threads from allocation to CREATE record (each hop costs two
/// thread wake-ups, more than the write itself); on a member, one job for
/// the slot and one for the record, around the confirm.
pub async fn upload(
    s: &mut crate::session::Session,
    index: usize,
    ext: &str,
    file_size: u64,
) -> OpResult<Option<crate::session::Reply>> {
    let storage = s.storage.clone();
    let size = u32::try_from(file_size)
        .map_err(|_| OpError::invalid(format!("{file_size} bytes do not fit a trunk slot")))?;
    let path_index = u8::try_from(index).map_err(|_| OpError::invalid("store path index"))?;
    let route = match target(&storage) {
        None => return Ok(None),
        Some(Target::Local) if !storage.trunk.serving() => return Ok(None),
        Some(route) => route,
    };
    let job = SlotJob {
        storage: storage.clone(),
        root: storage.paths[index].root.clone(),
        trunk_file_size: storage.params().trunk.trunk_file_size_bytes,
        ext: ext.to_string(),
        fsync: crate::ops::upload::syncs(&storage, file_size),
    };
    let in_memory = file_size <= crate::ops::BODY_CHUNK_BYTES as u64;
    let body = if in_memory {
        let body = bytes::Bytes::from(s.read_exact_body(size as usize).await?);
        storage.bump(|st| st.total_upload_bytes += i64::from(size));
        Some(body)
    } else {
        None
    };
    let (remote, mtime) = match (route, body) {
        (Target::Local, Some(body)) => store_at_server(job, path_index, body).await?,
        (route, body) => {
            let slot = alloc_for(&storage, &route, path_index, size).await?;
            let written = match body {
                Some(body) => {
                    // The body comes back for a second try.
                    let work = job.clone();
                    match run_disk(&job, move || Ok((work.fill(slot, &body), body))).await {
                        Ok((Err(e), body))
                            if e.status == Status::EEXIST && orphan_cleared(&job, slot).await =>
                        {
                            let work = job.clone();
                            run_disk(&job, move || work.fill(slot, &body)).await
                        }
                        Ok((written, _)) => written,
                        Err(e) => Err(e),
                    }
                }
                None => {
                    storage.bump(|st| st.total_upload_bytes += i64::from(size));
                    stream_into_slot(s, &job, slot, size).await
                }
            };
            let (remote, mtime) = match written {
                Ok(done) => done,
                Err(e) if e.status == Status::EEXIST => {
                    // Someone else's file: kept, and so is its space.
                    occupied(&storage, slot).await;
                    return Err(e);
                }
                Err(e) => {
                    // No header of ours in the slot: nothing to clear.
                    give_back(&storage, slot, None).await;
                    return Err(e);
                }
            };
            settle(&job, slot, remote, mtime).await?
        }
    };
    storage.bump(|st| {
        st.success_upload_bytes += i64::from(size);
        st.last_source_update = mtime;
    });
    s.log_name = remote.clone();
    let mut body = BytesMut::new();
    fdfs_proto::storage_msg::FileIdResp {
        group: storage.group.clone(),
        remote,
    }
    .encode(&mut body);
    Ok(Some(crate::session::Reply::Body(Vec::from(body))))
}

/// A slot for `size` content bytes in store path `index` from the trunk
/// server of `route`.
async fn alloc_for(
    storage: &Arc<Storage>,
    route: &Target,
    index: u8,
    size: u32,
) -> OpResult<TrunkLocation> {
    match route {
        Target::Local => role::alloc_local(storage, index, size).await,
        Target::Remote(server) => alloc_remote(storage, server, index, size).await,
    }
}

/// What the disk work of one trunk upload needs.
#[derive(Clone)]
pub(super) struct SlotJob {
    pub storage: Arc<Storage>,
    pub root: PathBuf,
    pub trunk_file_size: u64,
    pub ext: String,
    pub fsync: bool,
}

/// Runs the disk work of a trunk upload: on the writer threads, or on the
/// blocking pool when it syncs (a synced write can take long: it must not
/// hold a writer thread that other small uploads wait for).
async fn run_disk<T, F>(job: &SlotJob, work: F) -> OpResult<T>
where
    F: FnOnce() -> OpResult<T> + Send + 'static,
    T: Send + 'static,
{
    if job.fsync {
        crate::ops::blocking(work).await
    } else {
        job.storage.writers.run(work).await
    }
}

/// An upload's content staged in its slot, with the header and the name
/// that describe it; nothing of it is on disk yet.
pub(super) struct StagedUpload {
    pub writer: SlotWrite,
    pub header: fdfs_proto::trunk::SlotHeader,
    pub remote: String,
    pub mtime: i64,
}

impl SlotJob {
    /// The content and header of an upload into `slot` (blocking): one
    /// write when not synced ([`SlotWrite::stage`]).
    /// Returns the file's name, made from the header written, and its mtime.
    pub(super) fn fill(&self, slot: TrunkLocation, body: &bytes::Bytes) -> OpResult<(String, i64)> {
        let staged = self.stage(slot, body)?;
        self.storage.bump(|st| st.total_file_write_count += 1);
        staged.writer.finish(&staged.header, self.fsync)?;
        self.storage.bump(|st| st.success_file_write_count += 1);
        Ok((staged.remote, staged.mtime))
    }

    /// Claims `slot` for `body`, keeps the body for one write
    /// ([`SlotWrite::stage`]) and names it (blocking). Until the header is
    /// written the slot on disk is as it was: a failure leaves nothing of
    /// ours to clear.
    pub(super) fn stage(&self, slot: TrunkLocation, body: &bytes::Bytes) -> OpResult<StagedUpload> {
        let size = u32::try_from(body.len()).map_err(|_| OpError::invalid("body too long"))?;
        let (mut writer, _) = SlotWrite::begin(&self.root, slot, size, self.trunk_file_size, None)?;
        writer.stage(body.clone())?;
        self.named(writer)
    }

    /// Names the content written to `writer` and writes its header
    /// (blocking). Returns the file's name and mtime.
    fn finish(&self, writer: SlotWrite) -> OpResult<(String, i64)> {
        let named = self.named(writer)?;
        named.writer.finish(&named.header, self.fsync)?;
        Ok((named.remote, named.mtime))
    }

    /// The header and name of the content written (or staged) to `writer`.
    fn named(&self, writer: SlotWrite) -> OpResult<StagedUpload> {
        use fdfs_proto::fileid::{FileNameRecord, EXT7_LEN};
        let storage = &self.storage;
        let mtime = crate::state::now_secs();
        let ext7 = crate::store::new_ext7(&self.ext, &mut crate::state::lock(&storage.rng));
        let mut ext7_bytes = [0u8; EXT7_LEN];
        ext7_bytes.copy_from_slice(ext7.as_bytes());
        let header = writer.upload_header(mtime as u32, ext7_bytes);
        let record = FileNameRecord {
            source: storage.name_source(),
            timestamp: mtime as u32,
            size_field: fdfs_proto::trunk::trunk_size_field(
                header.file_size,
                crate::ops::random_u32(storage),
            ),
            crc32: header.crc32,
        };
        let remote = writer.location().remote_name(&record, &ext7)?.to_string();
        Ok(StagedUpload {
            writer,
            header,
            remote,
            mtime,
        })
    }

    /// The CREATE record of a confirmed upload (blocking).
    fn log_create(&self, remote: &str, mtime: i64) -> OpResult<()> {
        self.storage
            .binlog
            .append(mtime, crate::binlog::op::CREATE, remote, "")
            .map_err(|e| {
                tracing::error!(error = %e, remote, "binlog write failed; trunk upload refused");
                OpError::new(Status::EIO, format!("binlog write failed: {e}"))
            })
    }
}

/// The whole upload of an in-memory body on the trunk server itself, with
/// the next batch (`trunk::batch`): allocation (its `D` line written before
/// the slot is used), content, header, confirm, CREATE record. An attempt
/// that finds no room makes a trunk file (which needs the leader tracker,
/// so it is done here) and tries again.
async fn store_at_server(job: SlotJob, index: u8, body: bytes::Bytes) -> OpResult<(String, i64)> {
    // Three rounds, as `role::alloc_local`: a new trunk file always fits,
    // unless a burst of others used it up first.
    for _ in 0..3 {
        let upload = super::batch::Upload {
            job: job.clone(),
            index,
            body: body.clone(),
        };
        let storage = job.storage.clone();
        let stored = if job.fsync {
            crate::ops::blocking(move || super::batch::store_one(&storage, upload)).await?
        } else {
            storage.trunk.batches.store(&storage, upload).await?
        };
        match stored {
            Some(done) => return Ok(done),
            None => role::create_trunk_file(&job.storage, index).await?,
        }
    }
    Err(OpError::new(
        Status::ENOSPC,
        "no trunk slot after new trunk files",
    ))
}

/// Streams a body bigger than one chunk into `slot`, then writes its
/// header. Returns the file's name and mtime.
async fn stream_into_slot(
    s: &mut crate::session::Session,
    job: &SlotJob,
    slot: TrunkLocation,
    size: u32,
) -> OpResult<(String, i64)> {
    let begin = || {
        let job = job.clone();
        crate::ops::blocking(move || {
            SlotWrite::begin(&job.root, slot, size, job.trunk_file_size, None).map(|(w, _)| w)
        })
    };
    let begun = match begin().await {
        Err(e) if e.status == Status::EEXIST && orphan_cleared(job, slot).await => begin().await?,
        begun => begun?,
    };
    let (writer, writes) = super::slot::body_to_slot(s, begun, u64::from(size)).await?;
    job.storage.bump(|st| {
        st.total_file_write_count += writes;
        st.success_file_write_count += writes;
    });
    let job = job.clone();
    crate::ops::blocking(move || job.finish(writer)).await
}

/// After an upload here found `slot` (handed to it by the trunk server)
/// holding a file header: whether that header was one no file name has,
/// now cleared, so the upload can go on into the slot. Such a header is
/// what an upload of this storage left when a crash cut it between its
/// slot write and its confirm, its slot freed since (at the trunk server's
/// next start). Without this the upload would fail and the slot stay out
/// of the pool. The check waits [`ORPHAN_CHECK_AFTER`] first, as for a
/// replica refused into such a slot: a file being written there meanwhile
/// has its binlog line by then. Rare (only after a crash), so the wait
/// costs one upload a few seconds, not a failure.
async fn orphan_cleared(job: &SlotJob, slot: TrunkLocation) -> bool {
    tokio::time::sleep(ORPHAN_CHECK_AFTER).await;
    let (storage, root) = (job.storage.clone(), job.root.clone());
    match crate::ops::blocking(move || Ok(clear_orphan_header(&storage, &root, &slot)?)).await {
        Ok(cleared) => cleared,
        Err(e) => {
            tracing::warn!(error = %e.reason, ?slot, "cannot check a trunk slot for a header no name has");
            false
        }
    }
}

/// After the header is written on a member (or a streamed upload):
/// ALLOC_CONFIRM, then the CREATE record. A failure clears the slot here
/// and gives it back.
async fn settle(
    job: &SlotJob,
    slot: TrunkLocation,
    remote: String,
    mtime: i64,
) -> OpResult<(String, i64)> {
    let storage = &job.storage;
    if let Err(e) = confirm(storage, slot, true).await {
        tracing::error!(error = %e.reason, remote, "trunk slot not confirmed; upload refused");
        give_back(storage, slot, Some(job.root.clone())).await;
        return Err(e);
    }
    let logged = {
        let (job2, remote) = (job.clone(), remote.clone());
        run_disk(job, move || job2.log_create(&remote, mtime)).await
    };
    if let Err(e) = logged {
        let clear_root = job.root.clone();
        let _ =
            crate::ops::blocking(move || Ok(super::slot::clear_slot(&clear_root, &slot)?)).await;
        // Never logged, so never replicated: no peer can hold it.
        if !matches!(free(storage, slot).await, FreeOutcome::Freed) {
            tracing::error!(?slot, "trunk slot leaked; a scrub frees it");
        }
        return Err(e);
    }
    Ok((remote, mtime))
}

/// An allocation that will not be used: the slot is cleared in our copy
/// when `clear_in` names its store path (only once our header is in it),
/// then the trunk server takes the slot back
/// (confirm with a failure status). A failure leaks the slot until the
/// trunk server frees stale allocations or a scrub does.
async fn give_back(
    storage: &Arc<Storage>,
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
