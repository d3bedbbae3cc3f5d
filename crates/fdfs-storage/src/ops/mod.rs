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

/// Validates a remote name and maps it to its file on disk.
pub(crate) fn resolve(storage: &Storage, remote: &str) -> OpResult<(RemoteName, PathBuf)> {
    let name = RemoteName::parse(remote, storage.paths.len())?;
    let root = &storage.paths[usize::from(name.store_path_index)].root;
    let path = crate::store::file_path(root, &name.relative_path());
    Ok((name, path))
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

/// Writes a small file atomically next to its final place (metadata files).
pub fn write_small_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
