//! Files of this storage: open the file a validated name maps to, make sure
//! the opened file (after any symlink) lies below a store path, and plan
//! the answer (reading the first chunk of the body when asked).
//!
//! Containment is cheap in the common case: the file is opened relative to
//! a handle on `<store path>/data` with openat2(2) `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, which cannot leave that directory, so no real
//! path needs resolving (`/proc/self/fd` readlink cost 12% of the
//! gateway's CPU, bench/HTTP.md). A path with a symlink (linked slave
//! files), or a kernel without openat2, takes the general way: open by
//! path, then check the real path of what was opened.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use fdfs_proto::fileid::{file_kind, FileKind};
use fdfs_proto::trunk::{
    link_target, SlotHeader, TrunkLocation, LINK_TARGET_MAX_LEN, SLOT_HEADER_LEN, SLOT_TYPE_LINK,
};

use crate::body::{read_window, FILE_CHUNK_BYTES};
use crate::error::Reject;
use crate::open_files::OpenFiles;
use crate::plan::{decide, Conditions, FileFacts, Plan};
use crate::request::FileRequest;

/// A local file, ready to answer.
pub struct Found {
    pub file: Arc<std::fs::File>,
    pub facts: FileFacts,
    pub plan: Plan,
    /// The first body chunk when a body is wanted and it was in the page
    /// cache (`None` otherwise: the body then reads all of it).
    pub first: Option<Bytes>,
    /// Offset of the file's first byte inside `file`: 0, or the content
    /// offset of a trunk name's slot. Every body offset adds it.
    pub base: u64,
}

/// The real path of an open file: `/proc/self/fd/N` names exactly what was
/// opened (no race with a rename); `canonicalize` when /proc is missing.
fn real_path(file: &std::fs::File, opened: &Path) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(opened))
}

/// Handles on the store paths' `data` directories, opened on first use
/// (the storage may create them after the gateway starts) and only when
/// the directory really lies below its store path.
pub struct DataDirs {
    dirs: Vec<OnceLock<std::fs::File>>,
    /// openat2 is missing or forbidden (old kernel, seccomp).
    no_openat2: AtomicBool,
}

impl DataDirs {
    pub fn new(store_paths: usize) -> DataDirs {
        DataDirs {
            dirs: (0..store_paths).map(|_| OnceLock::new()).collect(),
            no_openat2: AtomicBool::new(false),
        }
    }

    fn get(
        &self,
        store_paths: &[PathBuf],
        roots: &[PathBuf],
        index: usize,
    ) -> Option<&std::fs::File> {
        let cell = self.dirs.get(index)?;
        if let Some(d) = cell.get() {
            return Some(d);
        }
        let path = store_paths.get(index)?.join("data");
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOCTTY)
            .open(&path)
            .ok()?;
        let real = real_path(&dir, &path).ok()?;
        if !roots.iter().any(|r| real.starts_with(r)) {
            return None;
        }
        Some(cell.get_or_init(|| dir))
    }

    /// Opens `relative` below data directory `index` without following
    /// any symlink. With `may_block` false, only a walk the dentry cache
    /// answers whole runs ([`Beneath::NeedsDisk`] otherwise).
    fn open_beneath(
        &self,
        store_paths: &[PathBuf],
        roots: &[PathBuf],
        index: usize,
        relative: &str,
        may_block: bool,
    ) -> Beneath {
        if self.no_openat2.load(Ordering::Relaxed) {
            return Beneath::ByPath;
        }
        let Some(dir) = self.get(store_paths, roots, index) else {
            return Beneath::ByPath;
        };
        let Ok(name) = CString::new(relative) else {
            return Beneath::ByPath;
        };
        let opened = if may_block {
            fdfs_util::sys::openat2_beneath(dir, &name)
        } else {
            match fdfs_util::sys::openat2_beneath_if_cached(dir, &name) {
                Some(opened) => opened,
                None => return Beneath::NeedsDisk,
            }
        };
        match opened {
            Ok(f) => Beneath::Opened(f),
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                    self.no_openat2.store(true, Ordering::Relaxed);
                }
                Beneath::ByPath
            }
        }
    }
}

/// What an open beneath a data directory gave.
enum Beneath {
    Opened(std::fs::File),
    /// The walk needs the disk and the caller may not wait for it.
    NeedsDisk,
    /// Not done this way (no openat2, no data directory, a symlink, an
    /// error): open by path.
    ByPath,
}

/// Whether the first chunk of a `len`-byte window at `offset` is in the
/// page cache, so reading it here on the async worker takes no disk read;
/// otherwise the body reads it on the blocking pool with the rest.
fn first_chunk_cached(file: &std::fs::File, offset: u64, len: u64) -> bool {
    let want = len.min(FILE_CHUNK_BYTES as u64);
    fdfs_util::sys::cached_fully(file, offset, want) != Some(false)
}

/// Looks the request up below the store paths. `Ok(None)`: not here.
/// With `may_block` false (on an async worker), a path walk the dentry
/// cache cannot answer is [`Reject::needs_disk`].
#[allow(clippy::too_many_arguments)]
pub fn open(
    store_paths: &[PathBuf],
    roots: &[PathBuf],
    dirs: &DataDirs,
    kept: &OpenFiles,
    req: &FileRequest,
    cond: &Conditions,
    multi_range_enabled: bool,
    want_body: bool,
    may_block: bool,
) -> Result<Option<Found>, Reject> {
    let index = usize::from(req.name.store_path_index);
    let root = store_paths
        .get(index)
        .ok_or_else(|| Reject::bad_request("store path index out of range"))?;
    if let Some(loc) = TrunkLocation::from_remote(&req.name) {
        return open_trunk(
            store_paths,
            roots,
            dirs,
            kept,
            req,
            &loc,
            cond,
            multi_range_enabled,
            want_body,
            may_block,
            true,
        );
    }
    let relative = req.name.relative_path();
    // Built only when needed: a kept handle answers most requests.
    let path = || root.join("data").join(&relative);
    let (file, meta, contained) = match kept.get(index, &relative) {
        // Kept handles were opened beneath the data directory.
        Some((file, meta)) => (file, meta, true),
        None => {
            let path = path();
            let Some((file, contained)) =
                open_by_name(dirs, store_paths, roots, index, &relative, &path, may_block)?
            else {
                return Ok(None);
            };
            let meta = file
                .metadata()
                .map_err(|e| Reject::internal(format!("stat {}: {e}", path.display())))?;
            let file = Arc::new(file);
            if contained && meta.is_file() {
                kept.put(index, &relative, &file, &meta);
            }
            (file, meta, contained)
        }
    };
    if !meta.is_file() {
        return Ok(None);
    }
    if !contained {
        let path = path();
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
    }
    let size = meta.len();
    let last_modified = match file_kind(req.name.remote_len(), req.record.size_field) {
        FileKind::Normal => i64::from(req.record.timestamp),
        FileKind::Appender | FileKind::Slave => meta.mtime(),
    };
    let facts = FileFacts {
        size,
        last_modified,
    };
    let plan = decide(&facts, cond, multi_range_enabled);
    let (offset, len) = plan.window(size);
    let first = if want_body && len > 0 && first_chunk_cached(&file, offset, len) {
        let want = len.min(FILE_CHUNK_BYTES as u64) as usize;
        let b = read_window(&file, offset, want)
            .map_err(|e| Reject::internal(format!("read {}: {e}", path().display())))?;
        if b.len() != want {
            return Err(Reject::internal(format!("{} shrank", path().display())));
        }
        Some(b)
    } else {
        None
    };
    Ok(Some(Found {
        file,
        facts,
        plan,
        first,
        base: 0,
    }))
}

/// A trunk name (PROTOCOL.md §11.5): its trunk file `data/HH/HH/NNNNNN`
/// (kept open like any file), the slot header checked byte for byte
/// against the name, the file's bytes after it. A header that differs (a
/// deleted or reused slot) is no file here: `Ok(None)`, as a missing file.
/// An `L` slot serves the file its content names when `follow_link`
/// (one level, as the storage's download).
#[allow(clippy::too_many_arguments)]
fn open_trunk(
    store_paths: &[PathBuf],
    roots: &[PathBuf],
    dirs: &DataDirs,
    kept: &OpenFiles,
    req: &FileRequest,
    loc: &TrunkLocation,
    cond: &Conditions,
    multi_range_enabled: bool,
    want_body: bool,
    may_block: bool,
    follow_link: bool,
) -> Result<Option<Found>, Reject> {
    let index = usize::from(loc.store_path_index);
    let root = store_paths
        .get(index)
        .ok_or_else(|| Reject::bad_request("store path index out of range"))?;
    let rel_path = loc.trunk_file_relative_path();
    let relative = rel_path.strip_prefix("data/").unwrap_or(&rel_path);
    let path = root.join(&rel_path);
    let (file, meta) = match kept.get(index, relative) {
        Some((file, meta)) => (file, meta),
        None => {
            // A trunk file is never a link: only one opened beneath the
            // data directory, or one whose real path is in a store, serves.
            let Some((file, contained)) =
                open_by_name(dirs, store_paths, roots, index, relative, &path, may_block)?
            else {
                return Ok(None);
            };
            let meta = file
                .metadata()
                .map_err(|e| Reject::internal(format!("stat {}: {e}", path.display())))?;
            if !contained {
                let real = real_path(&file, &path)
                    .map_err(|e| Reject::internal(format!("resolve {}: {e}", path.display())))?;
                if !roots.iter().any(|r| real.starts_with(r)) {
                    return Err(Reject::forbidden("file lies outside the store paths"));
                }
            }
            let file = Arc::new(file);
            if contained && meta.is_file() {
                kept.put(index, relative, &file, &meta);
            }
            (file, meta)
        }
    };
    if !meta.is_file() {
        return Ok(None);
    }
    let raw = read_window(&file, u64::from(loc.offset), SLOT_HEADER_LEN)
        .map_err(|e| Reject::internal(format!("read {}: {e}", path.display())))?;
    let Ok(raw) = <[u8; SLOT_HEADER_LEN]>::try_from(&raw[..]) else {
        return Ok(None);
    };
    if !SlotHeader::matches_name(&raw, &req.name) {
        return Ok(None);
    }
    let header = SlotHeader::decode(&raw);
    let (base, size) = (loc.content_offset(), u64::from(header.file_size));
    if SLOT_HEADER_LEN as u64 + size > u64::from(loc.size) || meta.len() < base + size {
        return Ok(None);
    }
    if header.file_type == SLOT_TYPE_LINK {
        if !follow_link || size > LINK_TARGET_MAX_LEN as u64 {
            return Ok(None);
        }
        let content = read_window(&file, base, size as usize)
            .map_err(|e| Reject::internal(format!("read {}: {e}", path.display())))?;
        let Some(target) = link_target(&content, store_paths.len()) else {
            return Ok(None);
        };
        let Some(record) = target.record() else {
            return Ok(None);
        };
        let target_req = FileRequest {
            remote: target.to_string(),
            name: target,
            record,
            ..req.clone()
        };
        return match TrunkLocation::from_remote(&target_req.name) {
            Some(target_loc) => open_trunk(
                store_paths,
                roots,
                dirs,
                kept,
                &target_req,
                &target_loc,
                cond,
                multi_range_enabled,
                want_body,
                may_block,
                false,
            ),
            None => open(
                store_paths,
                roots,
                dirs,
                kept,
                &target_req,
                cond,
                multi_range_enabled,
                want_body,
                may_block,
            ),
        };
    }
    let facts = FileFacts {
        size,
        last_modified: i64::from(header.mtime),
    };
    let plan = decide(&facts, cond, multi_range_enabled);
    let (offset, len) = plan.window(size);
    let first = if want_body && len > 0 && first_chunk_cached(&file, base + offset, len) {
        let want = len.min(FILE_CHUNK_BYTES as u64) as usize;
        let b = read_window(&file, base + offset, want)
            .map_err(|e| Reject::internal(format!("read {}: {e}", path.display())))?;
        if b.len() != want {
            return Err(Reject::internal(format!("{} shrank", path.display())));
        }
        Some(b)
    } else {
        None
    };
    Ok(Some(Found {
        file,
        facts,
        plan,
        first,
        base,
    }))
}

/// Opens a name: beneath the data directory when possible (then the second
/// value is true: the file is known to lie in the store), else by path.
/// `Ok(None)`: no such file.
fn open_by_name(
    dirs: &DataDirs,
    store_paths: &[PathBuf],
    roots: &[PathBuf],
    index: usize,
    relative: &str,
    path: &Path,
    may_block: bool,
) -> Result<Option<(std::fs::File, bool)>, Reject> {
    match dirs.open_beneath(store_paths, roots, index, relative, may_block) {
        Beneath::Opened(f) => return Ok(Some((f, true))),
        Beneath::NeedsDisk => return Err(Reject::needs_disk()),
        Beneath::ByPath => {}
    }
    // O_NONBLOCK: a FIFO planted in the store must not block the open.
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => Ok(Some((f, false))),
        Err(e) => match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Ok(None),
            std::io::ErrorKind::PermissionDenied => Err(Reject::forbidden(format!(
                "{}: permission denied",
                path.display()
            ))),
            _ => {
                fdfs_util::sys::note_if_out_of_descriptors(&e);
                Err(Reject::internal(format!("open {}: {e}", path.display())))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root: it drops the kernel's dentry cache (CI runs as root).
    #[test]
    fn a_walk_out_of_the_dentry_cache_needs_the_disk_and_opens_where_it_may_block() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().to_path_buf();
        let leaf = "fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
        std::fs::create_dir_all(store.join("data/00/00")).unwrap();
        std::fs::write(store.join("data/00/00").join(leaf), b"cold").unwrap();
        let req =
            crate::request::parse_path(&format!("/group1/M00/00/00/{leaf}"), "group1", true, 1)
                .unwrap();
        let (paths, roots) = (vec![store.clone()], vec![store.canonicalize().unwrap()]);
        let (dirs, kept, cond) = (
            DataDirs::new(1),
            OpenFiles::new(1, 0),
            Conditions::default(),
        );
        let open_now = |may_block| {
            open(
                &paths, &roots, &dirs, &kept, &req, &cond, false, true, may_block,
            )
        };
        let warm = open_now(false)
            .unwrap()
            .expect("served from the dentry cache");
        assert_eq!(warm.facts.size, 4);
        drop(warm);

        fdfs_testkit::drop_dentry_cache();
        match open_now(false) {
            Err(e) if e.is_needs_disk() => {}
            Err(e) => panic!("a cold walk answered {e}"),
            Ok(f) => panic!("a cold walk ran on the async worker: {:?}", f.is_some()),
        }
        let cold = open_now(true).unwrap().expect("opened where it may block");
        assert_eq!(cold.facts.size, 4);
        // Now cached again: inline.
        assert!(open_now(false).unwrap().is_some());
    }
}
