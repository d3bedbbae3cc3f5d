//! Async FastDFS client library, plus the connection framing that the
//! tracker and storage daemons share with it.
//!
//! Layers: [`conn`] (framing, timeouts, streaming), [`tracker`] and
//! [`storage`] (one command family each over a borrowed connection),
//! [`pool`] (idle connections), and [`Client`] (tracker failover, routing
//! and pooling on top).

pub mod client;
pub mod conn;
pub mod error;
pub mod fileinfo;
pub mod localtime;
pub mod pool;
pub mod serve;
pub mod storage;
pub mod tracker;
pub mod zerocopy;

pub use client::{Client, ClientOptions, UploadOptions};
pub use conn::Conn;
pub use error::ClientError;
pub use fileinfo::{decode_remote_name, FileInfo};
pub use storage::{StorageClient, UploadKind, FINFO_FLAG_KEEP_SILENCE, FINFO_FLAG_NO_CRC32};
pub use tracker::TrackerClient;

/// Current unix time in seconds (0 before 1970, saturating far after).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// CRC32 (as in file ids) of a local file, read in fixed-size chunks: used
/// by the tools (`fdfs_crc32`) and by the storage for appender and slave
/// files.
pub fn crc32_of_file(path: &std::path::Path) -> std::io::Result<u32> {
    crc32_of_file_while(path, || true)
}

/// [`crc32_of_file`] that asks `keep_going` before each chunk and stops
/// with `ErrorKind::Interrupted` when it says no: a scan of a huge file
/// must not hold up a server's shutdown.
pub fn crc32_of_file_while(
    path: &std::path::Path,
    mut keep_going: impl FnMut() -> bool,
) -> std::io::Result<u32> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if !keep_going() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "file scan stopped",
            ));
        }
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

/// Removes the temporary file unless the write completed.
struct TmpGuard {
    path: std::path::PathBuf,
    armed: bool,
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes a state file durably: tmp + write + fsync + rename + fsync of
/// the directory, so a crash leaves the old or the new content, never a
/// mix. Shared by the tracker's and the storage's data files.
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let mut guard = TmpGuard {
        path: std::path::PathBuf::from(tmp_name),
        armed: true,
    };
    {
        let mut f = std::fs::File::create(&guard.path)?;
        std::io::Write::write_all(&mut f, data)?;
        f.sync_all()?;
    }
    std::fs::rename(&guard.path, path)?;
    guard.armed = false;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
