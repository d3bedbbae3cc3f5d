//! Request handlers, one module per command family, plus the helpers they
//! share: bounded body reads, group and name validation, durable writes.

pub mod appender;
pub mod download;
pub mod file;
pub mod meta;
pub mod sync_recv;
pub mod upload;

use std::io::Write;
use std::path::{Path, PathBuf};

use fdfs_proto::fileid::RemoteName;
use fdfs_proto::{Status, HEADER_LEN};

use crate::conn::Session;
use crate::error::{OpError, OpResult};
use crate::state::{lock, Storage};

/// Largest chunk moved from the socket to a file at once: bounds memory per
/// request whatever the content size.
pub const BODY_CHUNK_BYTES: usize = 256 * 1024;

/// Reads the whole body of a request that must fit the network buffer
/// (everything but uploads, append and modify). Like the original, the whole
/// request including its header must be smaller than `buff_size`.
pub async fn read_small_body(s: &mut Session) -> OpResult<Vec<u8>> {
    let limit = s.storage.conf.buff_size_bytes.max(64 * 1024);
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
    mut file: std::fs::File,
    length: u64,
    mut inspect: impl FnMut(&[u8]),
) -> OpResult<(std::fs::File, i64)> {
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
        (file, buf) = blocking(move || {
            file.write_all(&buf[..n])?;
            Ok((file, buf))
        })
        .await?;
        writes += 1;
        done += n as u64;
    }
    Ok((file, writes))
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
    let file = std::fs::File::open(path).map_err(|e| {
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

/// Bumps a total counter now and the success counter when `result` is Ok.
pub fn count<T>(
    storage: &Storage,
    result: &OpResult<T>,
    success: impl FnOnce(&mut fdfs_proto::stat::StorageStats),
) {
    if result.is_ok() {
        storage.bump(success);
    }
}

/// Random 32 bits for names.
pub fn random_u32(storage: &Storage) -> u32 {
    lock(&storage.rng).next_u32()
}
