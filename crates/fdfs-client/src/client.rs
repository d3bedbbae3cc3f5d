//! The high-level client: picks trackers (rotating, with failover), asks
//! them where a file lives, then talks to that storage, reusing pooled
//! connections when `use_connection_pool` is on.
//!
//! Routing follows the C client library (PROTOCOL §3.0): uploads ask 101
//! (104 with a group); downloads and file info ask 102; delete, metadata,
//! append, modify, truncate, regenerate and slave uploads ask 103.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdfs_config::{ClientConf, StorageIds, TrackerAddr};
use fdfs_proto::fileid::{ext_from_local_name, FileKind};
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::stat::{storage_status, GroupStat, StorageStat};
use fdfs_proto::storage_msg::FileInfoResp;
use fdfs_proto::tracker_msg::{ServerAddr, StoreTarget, StoreTargets};
use fdfs_proto::{FileId, Status};
use fdfs_util::net::host_port;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::conn::Conn;
use crate::error::ClientError;
use crate::fileinfo::{decode_remote_name, FileInfo};
use crate::pool::Pool;
use crate::storage::{StorageClient, UploadKind};
use crate::tracker::TrackerClient;

/// C client default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// C client default `network_timeout`.
pub const DEFAULT_NETWORK_TIMEOUT: Duration = Duration::from_secs(30);
/// C client default `connection_pool_max_idle_time`.
pub const DEFAULT_POOL_MAX_IDLE: Duration = Duration::from_secs(3600);

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `tracker_server` entries; each may name two hosts (dual IP).
    pub trackers: Vec<TrackerAddr>,
    pub connect_timeout: Duration,
    pub network_timeout: Duration,
    /// Keep idle connections for reuse instead of QUIT after each operation.
    pub use_connection_pool: bool,
    /// Idle pooled connections older than this are closed.
    pub pool_max_idle: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            trackers: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            network_timeout: DEFAULT_NETWORK_TIMEOUT,
            use_connection_pool: false,
            pool_max_idle: DEFAULT_POOL_MAX_IDLE,
        }
    }
}

impl ClientOptions {
    pub fn from_conf(conf: &ClientConf) -> Self {
        ClientOptions {
            trackers: conf.tracker_servers.clone(),
            connect_timeout: Duration::from_secs(conf.connect_timeout_secs),
            network_timeout: Duration::from_secs(conf.network_timeout_secs),
            use_connection_pool: conf.use_connection_pool,
            pool_max_idle: Duration::from_secs(conf.connection_pool_max_idle_time_secs),
        }
    }
}

/// Options for uploads.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Upload into this group (tracker cmd 104 instead of 101).
    pub group: Option<String>,
    pub kind: UploadKind,
    /// Extension without dot. `None`: derived from the local file name for
    /// path uploads, empty for buffers.
    pub ext: Option<String>,
    /// Set (overwrite) after the upload; the file is deleted if that fails.
    pub metadata: Vec<MetaPair>,
    /// Upload straight to this storage, skipping the tracker.
    pub storage: Option<ServerAddr>,
    /// Store path index with `storage`; `None` lets the storage choose (-1).
    pub store_path_index: Option<i8>,
}

/// Async FastDFS client. Cheap to share behind an `Arc`; every method
/// takes `&self`.
pub struct Client {
    opts: ClientOptions,
    /// Rotating start index for tracker selection.
    next_tracker: AtomicUsize,
    pool: Option<Pool<Conn>>,
    /// The tracker's storage id table, fetched the first time a file name
    /// carrying a storage id must be mapped to an address.
    storage_ids: tokio::sync::OnceCell<Arc<StorageIds>>,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, ClientError> {
        if opts.trackers.is_empty() {
            return Err(ClientError::Invalid("no tracker server configured".into()));
        }
        let pool = opts
            .use_connection_pool
            .then(|| Pool::new(opts.pool_max_idle));
        Ok(Client {
            opts,
            next_tracker: AtomicUsize::new(0),
            pool,
            storage_ids: tokio::sync::OnceCell::new(),
        })
    }

    pub fn from_conf(conf: &ClientConf) -> Result<Client, ClientError> {
        Client::new(ClientOptions::from_conf(conf))
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    pub fn trackers(&self) -> &[TrackerAddr] {
        &self.opts.trackers
    }

    // ---- connections -------------------------------------------------

    /// A connection to `addr`: a healthy pooled one, or a new one.
    pub async fn connect(&self, addr: &str) -> Result<Conn, ClientError> {
        if let Some(pool) = &self.pool {
            if let Some(c) = pool.take(addr, Instant::now(), Conn::idle_looks_healthy) {
                return Ok(c);
            }
        }
        Conn::connect(addr, self.opts.connect_timeout, self.opts.network_timeout).await
    }

    /// Hands a connection back after use. With pooling, a connection whose
    /// operation succeeded goes back to the pool; without, it is closed with
    /// QUIT. A connection that saw an error is never pooled.
    pub async fn release(&self, conn: Conn, ok: bool) {
        if !conn.is_in_step() {
            return;
        }
        match &self.pool {
            Some(pool) if ok => {
                let addr = conn.addr.clone();
                pool.put(&addr, conn, Instant::now());
            }
            _ => conn.quit().await,
        }
    }

    /// Connects to tracker number `index` (trying each of its hosts).
    pub async fn connect_tracker(&self, index: usize) -> Result<Conn, ClientError> {
        let t = self
            .opts
            .trackers
            .get(index)
            .ok_or_else(|| ClientError::Invalid(format!("no tracker #{index}")))?;
        let mut last = None;
        for host in &t.hosts {
            match self.connect(&host_port(host, t.port)).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid(format!("tracker {t} has no host"))))
    }

    /// Runs `f` against a tracker, starting at a rotating index and moving
    /// to the next tracker on connect or network errors. A status answer
    /// from a tracker is final.
    pub async fn with_tracker<T>(
        &self,
        mut f: impl AsyncFnMut(&mut TrackerClient<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let n = self.opts.trackers.len();
        let start = self.next_tracker.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let mut conn = match self.connect_tracker(i).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(tracker = %self.opts.trackers[i], error = %e, "tracker unreachable");
                    last = Some(e);
                    continue;
                }
            };
            let res = f(&mut TrackerClient::new(&mut conn)).await;
            self.release(conn, res.is_ok()).await;
            match res {
                Err(e) if e.is_network() => {
                    tracing::debug!(tracker = %self.opts.trackers[i], error = %e, "tracker failed, trying next");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid("no tracker server configured".into())))
    }

    /// Runs `f` against the storage at `addr`.
    pub async fn with_storage<T>(
        &self,
        addr: &ServerAddr,
        f: impl AsyncFnOnce(&mut StorageClient<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut conn = self.connect(&addr.to_string()).await?;
        let res = f(&mut StorageClient::new(&mut conn)).await;
        self.release(conn, res.is_ok()).await;
        res
    }

    // ---- tracker queries ---------------------------------------------

    pub async fn query_store(&self, group: Option<&str>) -> Result<StoreTarget, ClientError> {
        self.with_tracker(async |t| t.query_store(group).await)
            .await
    }

    pub async fn query_store_all(&self, group: Option<&str>) -> Result<StoreTargets, ClientError> {
        self.with_tracker(async |t| t.query_store_all(group).await)
            .await
    }

    pub async fn query_fetch(&self, id: &FileId) -> Result<ServerAddr, ClientError> {
        self.with_tracker(async |t| t.query_fetch(&id.group, &id.remote).await)
            .await
    }

    pub async fn query_update(&self, id: &FileId) -> Result<ServerAddr, ClientError> {
        self.with_tracker(async |t| t.query_update(&id.group, &id.remote).await)
            .await
    }

    pub async fn query_fetch_all(&self, id: &FileId) -> Result<Vec<ServerAddr>, ClientError> {
        self.with_tracker(async |t| t.query_fetch_all(&id.group, &id.remote).await)
            .await
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupStat>, ClientError> {
        self.with_tracker(async |t| t.list_groups().await).await
    }

    pub async fn list_group(&self, group: &str) -> Result<GroupStat, ClientError> {
        self.with_tracker(async |t| t.list_one_group(group).await)
            .await
    }

    pub async fn list_storages(
        &self,
        group: &str,
        storage_id: Option<&str>,
    ) -> Result<Vec<StorageStat>, ClientError> {
        self.with_tracker(async |t| t.list_storages(group, storage_id).await)
            .await
    }

    pub async fn active_test_tracker(&self) -> Result<(), ClientError> {
        self.with_tracker(async |t| t.active_test().await).await
    }

    /// Runs `f` on every tracker in order, collecting each result.
    async fn on_every_tracker<T>(
        &self,
        mut f: impl AsyncFnMut(&mut TrackerClient<'_>) -> Result<T, ClientError>,
    ) -> Vec<Result<T, ClientError>> {
        let mut out = Vec::with_capacity(self.opts.trackers.len());
        for i in 0..self.opts.trackers.len() {
            let res = match self.connect_tracker(i).await {
                Ok(mut conn) => {
                    let res = f(&mut TrackerClient::new(&mut conn)).await;
                    self.release(conn, res.is_ok()).await;
                    res
                }
                Err(e) => Err(e),
            };
            out.push(res);
        }
        out
    }

    /// Deletes a storage from a group on every tracker (93). Refused with
    /// EBUSY while any tracker sees it ONLINE/ACTIVE; ENOENT only when no
    /// tracker knows it; EALREADY (already deleted) counts as success.
    pub async fn delete_storage(&self, group: &str, storage_id: &str) -> Result<(), ClientError> {
        let listings = self
            .on_every_tracker(async |t| t.list_storages(group, Some(storage_id)).await)
            .await;
        for stats in listings.iter().flatten() {
            if stats.iter().any(|s| {
                matches!(
                    s.status,
                    storage_status::ONLINE | storage_status::ACTIVE | storage_status::RECOVERY
                )
            }) {
                return Err(ClientError::Status(Status::EBUSY));
            }
        }
        let results = self
            .on_every_tracker(async |t| t.delete_storage(group, storage_id).await)
            .await;
        fold_all_trackers(results)
    }

    /// Deletes an empty group on every tracker (108).
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let results = self
            .on_every_tracker(async |t| t.delete_group(group).await)
            .await;
        fold_all_trackers(results)
    }

    /// Sets the trunk server of a group; only the leader accepts, so each
    /// tracker is tried until one does. Returns the new trunk server id.
    pub async fn set_trunk_server(
        &self,
        group: &str,
        storage_id: &str,
    ) -> Result<String, ClientError> {
        let mut last = None;
        for i in 0..self.opts.trackers.len() {
            let res = match self.connect_tracker(i).await {
                Ok(mut conn) => {
                    let res = TrackerClient::new(&mut conn)
                        .set_trunk_server(group, storage_id)
                        .await;
                    self.release(conn, res.is_ok()).await;
                    res
                }
                Err(e) => Err(e),
            };
            match res {
                Ok(id) => return Ok(id),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid("no tracker server configured".into())))
    }

    // ---- uploads -------------------------------------------------------

    async fn upload_target(&self, opts: &UploadOptions) -> Result<(ServerAddr, i8), ClientError> {
        match &opts.storage {
            Some(addr) => Ok((addr.clone(), opts.store_path_index.unwrap_or(-1))),
            None => {
                let t = self.query_store(opts.group.as_deref()).await?;
                // The index travels as a signed byte; 255 means "-1".
                Ok((t.addr, t.store_path_index as i8))
            }
        }
    }

    /// Uploads `size` bytes read from `src`.
    pub async fn upload_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        src: &mut R,
        size: u64,
        opts: &UploadOptions,
    ) -> Result<FileId, ClientError> {
        let (addr, index) = self.upload_target(opts).await?;
        let ext = opts.ext.as_deref().unwrap_or("");
        self.with_storage(&addr, async |s| {
            let id = s.upload(opts.kind, index, ext, src, size).await?;
            attach_metadata(s, &id, &opts.metadata).await?;
            Ok(id)
        })
        .await
    }

    pub async fn upload_buffer(
        &self,
        data: &[u8],
        opts: &UploadOptions,
    ) -> Result<FileId, ClientError> {
        let mut src = data;
        self.upload_reader(&mut src, data.len() as u64, opts).await
    }

    /// Uploads a local file, streaming it; the extension defaults to the
    /// one of the local name (`a.tar.gz` → `tar.gz`).
    pub async fn upload_file(
        &self,
        path: &Path,
        opts: &UploadOptions,
    ) -> Result<FileId, ClientError> {
        let (mut file, size) = open_for_upload(path).await?;
        let mut opts = opts.clone();
        if opts.ext.is_none() {
            opts.ext = Some(ext_from_local_name(&path.to_string_lossy()));
        }
        self.upload_reader(&mut file, size, &opts).await
    }

    /// Uploads a slave file of `master` (tracker 103 with the master name).
    pub async fn upload_slave_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        master: &FileId,
        prefix: &str,
        ext: &str,
        src: &mut R,
        size: u64,
        metadata: &[MetaPair],
    ) -> Result<FileId, ClientError> {
        let addr = self.query_update(master).await?;
        self.with_storage(&addr, async |s| {
            let id = s
                .upload_slave(&master.remote, prefix, ext, src, size)
                .await?;
            attach_metadata(s, &id, metadata).await?;
            Ok(id)
        })
        .await
    }

    pub async fn upload_slave_buffer(
        &self,
        master: &FileId,
        prefix: &str,
        ext: &str,
        data: &[u8],
        metadata: &[MetaPair],
    ) -> Result<FileId, ClientError> {
        let mut src = data;
        self.upload_slave_reader(master, prefix, ext, &mut src, data.len() as u64, metadata)
            .await
    }

    /// Uploads a local file as a slave; `ext` `None` takes the local
    /// file's extension.
    pub async fn upload_slave_file(
        &self,
        master: &FileId,
        prefix: &str,
        ext: Option<&str>,
        path: &Path,
        metadata: &[MetaPair],
    ) -> Result<FileId, ClientError> {
        let (mut file, size) = open_for_upload(path).await?;
        let ext = match ext {
            Some(e) => e.to_string(),
            None => ext_from_local_name(&path.to_string_lossy()),
        };
        self.upload_slave_reader(master, prefix, &ext, &mut file, size, metadata)
            .await
    }

    // ---- downloads -----------------------------------------------------

    /// Streams `[offset, offset+length)` (length 0: to the end) into `dst`.
    pub async fn download_to_writer<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        id: &FileId,
        offset: u64,
        length: u64,
        dst: &mut W,
    ) -> Result<u64, ClientError> {
        let addr = self.query_fetch(id).await?;
        self.with_storage(&addr, async |s| {
            s.download(&id.group, &id.remote, offset, length, dst).await
        })
        .await
    }

    pub async fn download_to_vec(
        &self,
        id: &FileId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.download_to_writer(id, offset, length, &mut out)
            .await?;
        Ok(out)
    }

    /// Downloads into a local file, created (truncated) only once the
    /// storage has accepted the request; a partial file is removed.
    pub async fn download_to_file(
        &self,
        id: &FileId,
        path: &Path,
        offset: u64,
        length: u64,
    ) -> Result<u64, ClientError> {
        let addr = self.query_fetch(id).await?;
        self.with_storage(&addr, async |s| {
            let len = s
                .download_start(&id.group, &id.remote, offset, length)
                .await?;
            let mut file = match tokio::fs::File::create(path).await {
                Ok(f) => f,
                Err(e) => {
                    // The announced body is still on the wire.
                    s.download_body(&mut tokio::io::sink(), len).await?;
                    return Err(ClientError::Io(e));
                }
            };
            let res = async {
                s.download_body(&mut file, len).await?;
                file.flush().await?;
                Ok::<_, ClientError>(())
            }
            .await;
            if let Err(e) = res {
                drop(file);
                let _ = tokio::fs::remove_file(path).await;
                return Err(e);
            }
            Ok(len)
        })
        .await
    }

    // ---- file operations -------------------------------------------------

    pub async fn delete_file(&self, id: &FileId) -> Result<(), ClientError> {
        let addr = self.query_update(id).await?;
        self.with_storage(&addr, async |s| s.delete(&id.group, &id.remote).await)
            .await
    }

    pub async fn set_metadata(
        &self,
        id: &FileId,
        meta: &[MetaPair],
        op: MetaOp,
    ) -> Result<(), ClientError> {
        let addr = self.query_update(id).await?;
        self.with_storage(&addr, async |s| {
            s.set_metadata(&id.group, &id.remote, meta, op).await
        })
        .await
    }

    pub async fn get_metadata(&self, id: &FileId) -> Result<Vec<MetaPair>, ClientError> {
        let addr = self.query_update(id).await?;
        self.with_storage(&addr, async |s| s.get_metadata(&id.group, &id.remote).await)
            .await
    }

    /// QUERY_FILE_INFO (22) on a storage chosen by tracker cmd 102.
    pub async fn query_file_info(
        &self,
        id: &FileId,
        flags: u8,
    ) -> Result<FileInfoResp, ClientError> {
        let addr = self.query_fetch(id).await?;
        self.with_storage(&addr, async |s| {
            s.query_file_info(&id.group, &id.remote, flags).await
        })
        .await
    }

    /// The tracker's storage id table (FETCH_STORAGE_IDS, 69), fetched
    /// once; empty when the trackers run in IP mode.
    pub async fn storage_ids(&self) -> Result<Arc<StorageIds>, ClientError> {
        self.storage_ids
            .get_or_try_init(|| async {
                self.with_tracker(async |t| t.fetch_storage_ids().await)
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The first address of storage id `id` (file names in id mode carry
    /// the id instead of an IP); empty when no tracker knows it, so callers
    /// ask the storage instead, as the C client does.
    pub async fn storage_address(&self, id: u32) -> String {
        match self.storage_ids().await {
            Ok(ids) => ids
                .find_by_id(&id.to_string())
                .and_then(|e| e.hosts.first().cloned())
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot fetch the storage id table");
                String::new()
            }
        }
    }

    /// File facts as `fdfs_file_info` reports them: decoded from the name
    /// for normal files; appender and slave files (and names whose source
    /// IP is unknown) are asked from the storage when `get_from_server`.
    pub async fn file_info(
        &self,
        id: &FileId,
        get_from_server: bool,
        flags: u8,
    ) -> Result<FileInfo, ClientError> {
        let mut info = decode_remote_name(&id.remote)?;
        if info.source_id != 0 {
            info.source_ip = self.storage_address(info.source_id).await;
        }
        let special = matches!(info.file_type, FileKind::Appender | FileKind::Slave);
        if special || (info.source_ip.is_empty() && get_from_server) {
            if get_from_server {
                let r = self.query_file_info(id, flags).await?;
                info.file_size = r.file_size;
                info.create_timestamp = r.create_timestamp;
                info.crc32 = r.crc32;
                info.source_ip = r.source_ip;
                info.get_from_server = true;
            } else {
                info.file_size = -1;
            }
        }
        Ok(info)
    }

    pub async fn append_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        id: &FileId,
        src: &mut R,
        size: u64,
    ) -> Result<(), ClientError> {
        let addr = self.query_update(id).await?;
        self.with_storage(&addr, async |s| s.append(&id.remote, src, size).await)
            .await
    }

    pub async fn append_buffer(&self, id: &FileId, data: &[u8]) -> Result<(), ClientError> {
        let mut src = data;
        self.append_reader(id, &mut src, data.len() as u64).await
    }

    pub async fn append_file(&self, id: &FileId, path: &Path) -> Result<(), ClientError> {
        let (mut file, size) = open_for_upload(path).await?;
        self.append_reader(id, &mut file, size).await
    }

    pub async fn modify_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        id: &FileId,
        offset: u64,
        src: &mut R,
        size: u64,
    ) -> Result<(), ClientError> {
        let addr = self.query_update(id).await?;
        self.with_storage(&addr, async |s| {
            s.modify(&id.remote, offset, src, size).await
        })
        .await
    }

    pub async fn modify_buffer(
        &self,
        id: &FileId,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let mut src = data;
        self.modify_reader(id, offset, &mut src, data.len() as u64)
            .await
    }

    pub async fn modify_file(
        &self,
        id: &FileId,
        offset: u64,
        path: &Path,
    ) -> Result<(), ClientError> {
        let (mut file, size) = open_for_upload(path).await?;
        self.modify_reader(id, offset, &mut file, size).await
    }

    pub async fn truncate(&self, id: &FileId, new_size: u64) -> Result<(), ClientError> {
        let addr = self.query_update(id).await?;
        self.with_storage(&addr, async |s| s.truncate(&id.remote, new_size).await)
            .await
    }

    /// Turns an appender file into a normal file; returns its new id.
    pub async fn regenerate_appender_name(&self, id: &FileId) -> Result<FileId, ClientError> {
        let addr = self.query_update(id).await?;
        self.with_storage(&addr, async |s| {
            s.regenerate_appender_name(&id.remote).await
        })
        .await
    }
}

/// SET_METADATA (overwrite) after an upload; deletes the new file if that
/// fails, as the C client does.
async fn attach_metadata(
    s: &mut StorageClient<'_>,
    id: &FileId,
    metadata: &[MetaPair],
) -> Result<(), ClientError> {
    if metadata.is_empty() {
        return Ok(());
    }
    if let Err(e) = s
        .set_metadata(&id.group, &id.remote, metadata, MetaOp::Overwrite)
        .await
    {
        let _ = s.delete(&id.group, &id.remote).await;
        return Err(e);
    }
    Ok(())
}

/// Opens a regular local file for streaming and returns its size.
async fn open_for_upload(path: &Path) -> Result<(tokio::fs::File, u64), ClientError> {
    let file = tokio::fs::File::open(path).await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(ClientError::Io(std::io::Error::from_raw_os_error(
            i32::from(Status::EINVAL.0),
        )));
    }
    Ok((file, meta.len()))
}

/// Combines per-tracker results of an admin command sent to all trackers:
/// ENOENT only if every tracker said so; EALREADY is success; any other
/// error is returned.
fn fold_all_trackers(results: Vec<Result<(), ClientError>>) -> Result<(), ClientError> {
    let total = results.len();
    let mut enoent = 0;
    for r in results {
        match r {
            Ok(()) => {}
            Err(ClientError::Status(Status::ENOENT)) => enoent += 1,
            Err(ClientError::Status(Status::EALREADY)) => {}
            Err(e) => return Err(e),
        }
    }
    if total > 0 && enoent == total {
        return Err(ClientError::Status(Status::ENOENT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_results_fold_like_the_c_library() {
        let st = |s: Status| Err(ClientError::Status(s));
        assert!(fold_all_trackers(vec![Ok(()), st(Status::ENOENT)]).is_ok());
        assert_eq!(
            fold_all_trackers(vec![st(Status::ENOENT), st(Status::ENOENT)])
                .unwrap_err()
                .errno(),
            2
        );
        assert!(fold_all_trackers(vec![st(Status::EALREADY), Ok(())]).is_ok());
        assert_eq!(
            fold_all_trackers(vec![Ok(()), st(Status::EBUSY)])
                .unwrap_err()
                .errno(),
            16
        );
    }

    #[test]
    fn tracker_hosts_format() {
        assert_eq!(host_port("127.0.0.1", 22122), "127.0.0.1:22122");
        assert_eq!(host_port("::1", 22122), "[::1]:22122");
    }

    #[test]
    fn client_needs_a_tracker() {
        assert!(Client::new(ClientOptions::default()).is_err());
        let opts = ClientOptions {
            trackers: vec!["127.0.0.1:22122".parse().unwrap()],
            ..Default::default()
        };
        assert!(Client::new(opts).is_ok());
    }

    #[tokio::test]
    async fn failover_skips_dead_trackers_and_status_is_final() {
        // Tracker 0: nothing listens (refused). Tracker 1: answers ENOENT
        // to everything. The status must come back, not a connect error.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = live.accept().await {
                tokio::spawn(async move {
                    while let Ok(h) = fdfs_util::framing::read_header(&mut s).await {
                        let n = h.body_len().unwrap_or(0) as usize;
                        if fdfs_util::framing::read_body(&mut s, n).await.is_err() || h.cmd == 82 {
                            break;
                        }
                        if fdfs_util::framing::write_packet(&mut s, 100, 2, &[])
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        let opts = ClientOptions {
            trackers: vec![
                dead_addr.to_string().parse().unwrap(),
                live_addr.to_string().parse().unwrap(),
            ],
            connect_timeout: Duration::from_secs(2),
            network_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let client = Client::new(opts).unwrap();
        for _ in 0..3 {
            let e = client.query_store(None).await.unwrap_err();
            assert_eq!(e.errno(), 2, "{e}");
        }
    }
}
