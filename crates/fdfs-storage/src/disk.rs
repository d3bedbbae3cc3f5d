//! Free and total space of a file system, for reserved-space checks and
//! REPORT_DISK_USAGE.

use std::path::Path;

/// Total and free (available to unprivileged users) megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceMb {
    pub total_mb: u64,
    pub free_mb: u64,
}

const BYTES_PER_MB: u64 = 1024 * 1024;

/// The space of the file system that holds `path`.
pub fn space(path: &Path) -> std::io::Result<SpaceMb> {
    let (total, free) = fdfs_util::sys::fs_space_bytes(path)?;
    Ok(SpaceMb {
        total_mb: total / BYTES_PER_MB,
        free_mb: free / BYTES_PER_MB,
    })
}
