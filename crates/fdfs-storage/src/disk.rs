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

/// statvfs(3) on `path`. std has no safe wrapper, so this is the one place
/// that calls into libc directly.
#[allow(unsafe_code)]
pub fn space(path: &Path) -> std::io::Result<SpaceMb> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: c_path is a valid NUL-terminated string and st points to
    // writable memory of the right type; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize;
    Ok(SpaceMb {
        total_mb: st.f_blocks.saturating_mul(frsize) / BYTES_PER_MB,
        free_mb: st.f_bavail.saturating_mul(frsize) / BYTES_PER_MB,
    })
}
