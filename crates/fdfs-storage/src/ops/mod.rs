//! Request handlers, one module per command family; [`dispatch`], which
//! routes a request to its handler and keeps the per-command counters; and
//! the helpers the handlers share: bounded body reads, group and name
//! validation, durable writes.

pub mod appender;
pub mod binlog_fetch;
pub mod download;
pub mod file;
pub mod meta;
pub mod sync_recv;
pub mod upload;

use std::io::Write;
use std::path::{Path, PathBuf};

use fdfs_proto::fileid::RemoteName;
use fdfs_proto::stat::StorageStats;
use fdfs_proto::{Header, Status, StorageCmd, HEADER_LEN};

use std::sync::Arc;

use crate::error::{OpError, OpResult};
use crate::pending::{Change, Entry};
use crate::session::{Reply, Session};
use crate::state::{lock, Storage};

/// Largest chunk moved from the socket to a file at once: bounds memory per
/// request whatever the content size.
pub const BODY_CHUNK_BYTES: usize = 256 * 1024;

/// Routes one request to its handler. Commands with a counter pair in
/// FDFSStorageStatBuff (PROTOCOL.md §1.6) count a total for every request
/// that reaches their handler and a success for each that ends well,
/// whatever the handler did in between.
pub async fn dispatch(s: &mut Session, header: Header) -> OpResult<Reply> {
    let Ok(cmd) = StorageCmd::try_from(header.cmd) else {
        return Err(OpError::invalid(format!("unknown command {}", header.cmd)));
    };
    let answered_while_recovering = [StorageCmd::ActiveTest, StorageCmd::RecoveryProgress];
    if !answered_while_recovering.contains(&cmd) && s.storage.is_recovering() {
        // A store path is being rebuilt: nothing may be read from or
        // written to it until it is complete; the caller tries later.
        return Err(OpError::new(Status::EAGAIN, "disk recovery in progress"));
    }
    let result = route(s, cmd, header.status).await;
    if let Some(counted) = CountedCommand::of(cmd) {
        // Both counts at once: one lock of the shared counters per request.
        let ok = result.is_ok();
        s.storage.bump(|st| {
            let (total, success) = counted.counters(st);
            *total += 1;
            if ok {
                *success += 1;
            }
        });
    }
    result
}

/// The handler of each command; `header_status` carries the flags byte of
/// QUERY_FILE_INFO and the content flag of SYNC_CREATE/UPDATE_FILE.
async fn route(s: &mut Session, cmd: StorageCmd, header_status: u8) -> OpResult<Reply> {
    match cmd {
        StorageCmd::ActiveTest => {
            if s.body_left != 0 {
                return Err(OpError::invalid("ACTIVE_TEST with a body"));
            }
            Ok(Reply::Body(Vec::new()))
        }
        StorageCmd::UploadFile => upload::upload(s, false).await,
        StorageCmd::UploadAppenderFile => upload::upload(s, true).await,
        StorageCmd::UploadSlaveFile => upload::upload_slave(s).await,
        StorageCmd::DownloadFile => download::download(s).await,
        StorageCmd::DeleteFile => file::delete(s).await,
        StorageCmd::QueryFileInfo => file::query_info(s, header_status).await,
        StorageCmd::RegenerateAppenderFilename => file::regenerate(s).await,
        StorageCmd::SetMetadata => meta::set(s).await,
        StorageCmd::GetMetadata => meta::get(s).await,
        StorageCmd::AppendFile => appender::append(s).await,
        StorageCmd::ModifyFile => appender::modify(s).await,
        StorageCmd::TruncateFile => appender::truncate(s).await,
        StorageCmd::FetchOnePathBinlog => binlog_fetch::fetch_one_path_binlog(s).await,
        StorageCmd::ClusterChallenge => sync_recv::cluster_challenge(s).await,
        StorageCmd::ClusterProve => sync_recv::cluster_prove(s).await,
        StorageCmd::RecoveryProgress => {
            if s.body_left != 0 {
                return Err(OpError::invalid("RECOVERY_PROGRESS with a body"));
            }
            let mut body = bytes::BytesMut::new();
            s.storage.recovery.progress.snapshot().encode(&mut body);
            Ok(Reply::Body(body.to_vec()))
        }
        // From `fdfs trunk check`; its repairs ask for the cluster secret.
        StorageCmd::TrunkScrub => crate::trunk::scrub::trunk_scrub(s).await,
        // From the leader tracker, which proves no cluster secret.
        StorageCmd::TrunkGetBinlogSize => crate::trunk::server::get_binlog_size(s).await,
        StorageCmd::TrunkDeleteBinlogMarks => crate::trunk::server::delete_binlog_marks(s).await,
        StorageCmd::TrunkAllocSpace
        | StorageCmd::TrunkAllocConfirm
        | StorageCmd::TrunkFreeSpace
        | StorageCmd::TrunkSyncBinlog
        | StorageCmd::TrunkTruncateBinlogFile => {
            sync_recv::require_cluster_proof(s)?;
            route_trunk(s, cmd, header_status).await
        }
        StorageCmd::ReportServerId
        | StorageCmd::SyncCreateFile
        | StorageCmd::SyncUpdateFile
        | StorageCmd::SyncDeleteFile
        | StorageCmd::SyncAppendFile
        | StorageCmd::SyncModifyFile
        | StorageCmd::SyncTruncateFile
        | StorageCmd::SyncRenameFile
        | StorageCmd::SyncCreateLink => {
            sync_recv::require_cluster_proof(s)?;
            route_sync(s, cmd, header_status).await
        }
        other => Err(OpError::invalid(format!("unsupported command {other:?}"))),
    }
}

/// The trunk commands between members of a group (§11.5).
async fn route_trunk(s: &mut Session, cmd: StorageCmd, header_status: u8) -> OpResult<Reply> {
    use crate::trunk::server;
    match cmd {
        StorageCmd::TrunkAllocSpace => server::alloc_space(s).await,
        StorageCmd::TrunkAllocConfirm => server::alloc_confirm(s, header_status).await,
        StorageCmd::TrunkFreeSpace => server::free_space(s, header_status).await,
        StorageCmd::TrunkSyncBinlog => server::sync_binlog(s).await,
        StorageCmd::TrunkTruncateBinlogFile => server::truncate_binlog_file(s).await,
        other => Err(OpError::invalid(format!("unsupported command {other:?}"))),
    }
}

/// The commands a peer storage replicates with.
async fn route_sync(s: &mut Session, cmd: StorageCmd, header_status: u8) -> OpResult<Reply> {
    match cmd {
        StorageCmd::ReportServerId => sync_recv::report_server_id(s).await,
        StorageCmd::SyncCreateFile => sync_recv::create_or_update(s, false, header_status).await,
        StorageCmd::SyncUpdateFile => sync_recv::create_or_update(s, true, header_status).await,
        StorageCmd::SyncDeleteFile => sync_recv::delete(s).await,
        StorageCmd::SyncAppendFile => sync_recv::append_or_modify(s, false).await,
        StorageCmd::SyncModifyFile => sync_recv::append_or_modify(s, true).await,
        StorageCmd::SyncTruncateFile => sync_recv::truncate(s).await,
        StorageCmd::SyncRenameFile => sync_recv::rename(s).await,
        StorageCmd::SyncCreateLink => sync_recv::create_link(s).await,
        other => Err(OpError::invalid(format!("unsupported command {other:?}"))),
    }
}

/// A command family with a `total_*_count` / `success_*_count` pair. The
/// three uploads share one pair; the other commands have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountedCommand {
    Upload,
    Download,
    Delete,
    SetMetadata,
    GetMetadata,
    Append,
    Modify,
    Truncate,
}

impl CountedCommand {
    fn of(cmd: StorageCmd) -> Option<Self> {
        Some(match cmd {
            StorageCmd::UploadFile
            | StorageCmd::UploadAppenderFile
            | StorageCmd::UploadSlaveFile => Self::Upload,
            StorageCmd::DownloadFile => Self::Download,
            StorageCmd::DeleteFile => Self::Delete,
            StorageCmd::SetMetadata => Self::SetMetadata,
            StorageCmd::GetMetadata => Self::GetMetadata,
            StorageCmd::AppendFile => Self::Append,
            StorageCmd::ModifyFile => Self::Modify,
            StorageCmd::TruncateFile => Self::Truncate,
            _ => return None,
        })
    }

    /// The (total, success) counters of this family.
    fn counters(self, st: &mut StorageStats) -> (&mut i64, &mut i64) {
        match self {
            Self::Upload => (&mut st.total_upload_count, &mut st.success_upload_count),
            Self::Download => (&mut st.total_download_count, &mut st.success_download_count),
            Self::Delete => (&mut st.total_delete_count, &mut st.success_delete_count),
            Self::SetMetadata => (&mut st.total_set_meta_count, &mut st.success_set_meta_count),
            Self::GetMetadata => (&mut st.total_get_meta_count, &mut st.success_get_meta_count),
            Self::Append => (&mut st.total_append_count, &mut st.success_append_count),
            Self::Modify => (&mut st.total_modify_count, &mut st.success_modify_count),
            Self::Truncate => (&mut st.total_truncate_count, &mut st.success_truncate_count),
        }
    }
}

/// Reads the whole body of a request that must fit the network buffer
/// (everything but uploads, append and modify). Like the original, the whole
/// request including its header must be smaller than `buff_size`.
pub async fn read_small_body(s: &mut Session) -> OpResult<Vec<u8>> {
    let limit = s.storage.conf.net.buff_size_bytes.max(64 * 1024);
    if s.body_left + HEADER_LEN as u64 >= limit {
        return Err(OpError::invalid(format!(
            "request of {} bytes exceeds the {limit}-byte buffer",
            s.body_left
        )));
    }
    let n = s.body_left as usize;
    s.read_exact_body(n).await
}

/// Every request that names a group must name ours.
pub fn check_group(storage: &Storage, group: &str) -> OpResult<()> {
    if group != storage.group {
        return Err(OpError::invalid(format!(
            "group {group:?} is not this storage's group {:?}",
            storage.group
        )));
    }
    Ok(())
}

/// Streams the next `length` body bytes into `file` at its position, one
/// chunk at a time, each write on the blocking pool (a write can wait long
/// for a busy disk). `inspect` sees every chunk first. Returns the file and
/// the number of writes.
pub async fn body_to_file(
    s: &mut Session,
    file: std::fs::File,
    length: u64,
    inspect: impl FnMut(&[u8]),
) -> OpResult<(std::fs::File, i64)> {
    body_into(s, file, length, inspect, |f, chunk| f.write_all(chunk)).await
}

/// Streams the next `length` body bytes into any `sink` with `write`, one
/// chunk of at most [`BODY_CHUNK_BYTES`] at a time, each write on the
/// blocking pool. `inspect` sees every chunk first. Returns the sink and
/// the number of writes.
pub async fn body_into<W: Send + 'static>(
    s: &mut Session,
    mut sink: W,
    length: u64,
    mut inspect: impl FnMut(&[u8]),
    write: fn(&mut W, &[u8]) -> std::io::Result<()>,
) -> OpResult<(W, i64)> {
    let chunk = usize::try_from(length)
        .unwrap_or(BODY_CHUNK_BYTES)
        .clamp(1, BODY_CHUNK_BYTES);
    let mut buf = vec![0u8; chunk];
    let mut done = 0u64;
    let mut writes = 0i64;
    while done < length {
        let want = (length - done).min(buf.len() as u64) as usize;
        let n = s.read_body_chunk(&mut buf[..want]).await?;
        if n == 0 {
            return Err(OpError::new(Status::EIO, "body ended early"));
        }
        inspect(&buf[..n]);
        (sink, buf) = blocking(move || {
            write(&mut sink, &buf[..n])?;
            Ok((sink, buf))
        })
        .await?;
        writes += 1;
        done += n as u64;
    }
    Ok((sink, writes))
}

/// Validates a remote name (the one check every name from a peer goes
/// through: [`RemoteName::parse`]) and maps it to its file on disk. Data
/// and `-m` metadata names pass: replication moves both.
pub(crate) fn resolve(storage: &Storage, remote: &str) -> OpResult<(RemoteName, PathBuf)> {
    let name = RemoteName::parse(remote, storage.paths.len())?;
    let root = storage
        .paths
        .get(usize::from(name.store_path_index))
        .ok_or_else(|| OpError::invalid("store path index out of range"))?
        .root
        .clone();
    let path = crate::store::file_path(&root, &name.relative_path());
    Ok((name, path))
}

/// [`resolve`] for the name a client addresses: only data files. Anything
/// else (a `<name>-m` metadata file) does not exist for clients: ENOENT.
pub(crate) fn resolve_data(storage: &Storage, remote: &str) -> OpResult<(RemoteName, PathBuf)> {
    let (name, path) = resolve(storage, remote)?;
    if !name.is_data_file() {
        // `remote` passed validation, so it is safe to quote.
        return Err(OpError::not_found(format!("{remote} is not a data file")));
    }
    Ok((name, path))
}

/// Runs disk work on the blocking pool: a slow disk or a big file must
/// never hold one of the few async workers that every connection, and in
/// `fdfs server` the tracker too, depends on.
pub async fn blocking<T, F>(work: F) -> OpResult<T>
where
    F: FnOnce() -> OpResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| OpError::new(Status::EIO, format!("disk task failed: {e}")))?
}

/// Path of a file's metadata companion (`<name>-m`).
pub fn meta_path(file: &Path) -> PathBuf {
    let mut os = file.as_os_str().to_os_string();
    os.push("-m");
    PathBuf::from(os)
}

/// Unix mtime of a file's metadata (seconds).
pub fn mtime_secs(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
}

/// Appends a binlog record; a failure is logged, not returned, because the
/// client's change already happened and must be acknowledged.
pub fn log_change(storage: &Storage, timestamp: i64, op: char, filename: &str, extra: &str) {
    if let Err(e) = storage.binlog.append(timestamp, op, filename, extra) {
        tracing::error!(error = %e, filename, "binlog write failed");
    }
}

/// Makes a change to `data_file` under the undo journal: `change` is
/// recorded first, then `work` runs and returns the record's timestamp;
/// the binlog record is the commit point. When `work` fails part-way (the
/// client went away mid-body) or the record cannot be written, the change
/// is taken back and the request fails.
pub async fn journaled(
    storage: &Arc<Storage>,
    data_file: PathBuf,
    change: Change,
    work: impl std::future::Future<Output = OpResult<i64>>,
) -> OpResult<i64> {
    let st = storage.clone();
    let entry = blocking(move || Ok(st.pending.begin(&st.binlog, &data_file, change)?)).await?;
    let outcome = work.await;
    let st = storage.clone();
    blocking(move || match outcome {
        Ok(timestamp) => commit_entry(&st, entry, timestamp).map(|()| timestamp),
        Err(e) => {
            if let Err(undo) = entry.undo() {
                tracing::error!(error = %undo, "could not take back a failed change");
            }
            Err(e)
        }
    })
    .await
}

/// Writes the binlog record of a journaled change, which commits it; when
/// the record cannot be written the change is taken back (EIO). Blocking.
pub fn commit_entry(storage: &Storage, entry: Entry, timestamp: i64) -> OpResult<()> {
    let c = entry.change();
    match storage.binlog.append(timestamp, c.op, &c.remote, &c.extra) {
        Ok(()) => {
            entry.commit();
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, filename = %c.remote, "binlog write failed; change taken back");
            if let Err(undo) = entry.undo() {
                tracing::error!(error = %undo, "could not take back a change");
            }
            Err(OpError::new(
                Status::EIO,
                format!("binlog write failed: {e}"),
            ))
        }
    }
}

/// Existing regular file (following links) or the status the original gives.
pub fn stat_existing(path: &Path) -> OpResult<std::fs::Metadata> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(OpError::new(Status::EISDIR, "is a directory")),
        Ok(m) => Ok(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(OpError::not_found(format!("{} not found", path.display())))
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens an existing regular file (following links) for reading, with its
/// metadata from the open handle: one path walk where stat-then-open takes
/// two. Missing files and directories get the statuses of
/// [`stat_existing`].
pub fn open_existing(path: &Path) -> OpResult<(std::fs::File, std::fs::Metadata)> {
    checked_open(std::fs::File::open(path), path)
}

/// [`open_existing`]'s checks on the outcome of an open of `path`.
pub fn checked_open(
    opened: std::io::Result<std::fs::File>,
    path: &Path,
) -> OpResult<(std::fs::File, std::fs::Metadata)> {
    let file = opened.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            OpError::not_found(format!("{} not found", path.display()))
        } else {
            e.into()
        }
    })?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(OpError::new(Status::EISDIR, "is a directory"));
    }
    Ok((file, meta))
}

/// Random 32 bits for names.
pub fn random_u32(storage: &Storage) -> u32 {
    lock(&storage.rng).next_u32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counted_command_bumps_its_own_named_pair() {
        let families = [
            (StorageCmd::UploadFile, "upload"),
            (StorageCmd::UploadAppenderFile, "upload"),
            (StorageCmd::UploadSlaveFile, "upload"),
            (StorageCmd::DownloadFile, "download"),
            (StorageCmd::DeleteFile, "delete"),
            (StorageCmd::SetMetadata, "set_meta"),
            (StorageCmd::GetMetadata, "get_meta"),
            (StorageCmd::AppendFile, "append"),
            (StorageCmd::ModifyFile, "modify"),
            (StorageCmd::TruncateFile, "truncate"),
        ];
        for (cmd, family) in families {
            let mut st = StorageStats::default();
            let (total, success) = CountedCommand::of(cmd).unwrap().counters(&mut st);
            *total += 1;
            *success += 2;
            let bumped: Vec<(&str, i64)> =
                st.counters().into_iter().filter(|(_, v)| *v != 0).collect();
            let (total_name, success_name) = (
                format!("total_{family}_count"),
                format!("success_{family}_count"),
            );
            assert_eq!(
                bumped,
                [(total_name.as_str(), 1), (success_name.as_str(), 2)],
                "{cmd:?}"
            );
        }
        for cmd in [
            StorageCmd::ActiveTest,
            StorageCmd::QueryFileInfo,
            StorageCmd::RegenerateAppenderFilename,
            StorageCmd::SyncCreateFile,
            StorageCmd::ReportServerId,
        ] {
            assert_eq!(CountedCommand::of(cmd), None, "{cmd:?}");
        }
    }
}
