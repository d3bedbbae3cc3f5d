//! Files of this storage: open the file a validated name maps to, make sure
//! the opened file (after any symlink) lies below a store path, and plan
//! the answer; all in one trip to the blocking pool, which also reads the
//! first chunk of the body.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fdfs_proto::fileid::FileKind;

use crate::body::{read_window, FILE_CHUNK_BYTES};
use crate::error::Reject;
use crate::plan::{decide, Conditions, FileFacts, Plan};
use crate::request::FileRequest;

/// A local file, ready to answer.
pub struct Found {
    pub file: Arc<std::fs::File>,
    pub facts: FileFacts,
    pub plan: Plan,
    /// The first body chunk when a body is wanted.
    pub first: Option<Bytes>,
}

/// The real path of an open file: `/proc/self/fd/N` names exactly what was
/// opened (no race with a rename); `canonicalize` when /proc is missing.
fn real_path(file: &std::fs::File, opened: &Path) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(opened))
}

/// Looks the request up below the store paths. `Ok(None)`: not here.
pub fn open(
    store_paths: &[PathBuf],
    roots: &[PathBuf],
    req: &FileRequest,
    cond: &Conditions,
    multi_range_enabled: bool,
    want_body: bool,
) -> Result<Option<Found>, Reject> {
    let root = store_paths
        .get(usize::from(req.name.store_path_index))
        .ok_or_else(|| Reject::bad_request("store path index out of range"))?;
    let path = root.join("data").join(req.name.relative_path());
    // O_NONBLOCK: a FIFO planted in the store must not block the open.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            return match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Ok(None),
                std::io::ErrorKind::PermissionDenied => Err(Reject::forbidden(format!(
                    "{}: permission denied",
                    path.display()
                ))),
                _ => Err(Reject::internal(format!("open {}: {e}", path.display()))),
            }
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| Reject::internal(format!("stat {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let real = real_path(&file, &path)
        .map_err(|e| Reject::internal(format!("resolve {}: {e}", path.display())))?;
    if !roots.iter().any(|r| real.starts_with(r)) {
        tracing::warn!(
            path = %path.display(),
            target = %real.display(),
            "refusing a file outside the store paths"
        );
        return Err(Reject::forbidden("file lies outside the store paths"));
    }
    let size = meta.len();
    let last_modified = match req.name.kind() {
        FileKind::Normal => i64::from(req.record.timestamp),
        FileKind::Appender | FileKind::Slave => meta.mtime(),
    };
    let facts = FileFacts {
        size,
        last_modified,
    };
    let plan = decide(&facts, cond, multi_range_enabled);
    let (offset, len) = plan.window(size);
    let first = if want_body && len > 0 {
        let want = len.min(FILE_CHUNK_BYTES as u64) as usize;
        let b = read_window(&file, offset, want)
            .map_err(|e| Reject::internal(format!("read {}: {e}", path.display())))?;
        if b.len() != want {
            return Err(Reject::internal(format!("{} shrank", path.display())));
        }
        Some(b)
    } else {
        None
    };
    Ok(Some(Found {
        file: Arc::new(file),
        facts,
        plan,
        first,
    }))
}
