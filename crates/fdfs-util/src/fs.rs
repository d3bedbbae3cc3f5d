//! Files the daemons and tools write and read whole: durable atomic
//! replacement of state files, and the CRC32 of a file as file IDs carry it.

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

/// A temporary file that is removed on drop unless [`TempPath::keep`] was
/// called: every error path of a write cleans up after itself.
#[derive(Debug)]
pub struct TempPath {
    pub path: std::path::PathBuf,
    armed: bool,
}

impl TempPath {
    pub fn new(path: std::path::PathBuf) -> Self {
        TempPath { path, armed: true }
    }

    /// The write completed (the file was renamed or linked into place, or
    /// is to stay): do not remove it.
    pub fn keep(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `<path>.tmp`, next to the file it replaces (same directory, same file
/// system, so the rename is atomic).
fn sibling_tmp(path: &std::path::Path) -> TempPath {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    TempPath::new(std::path::PathBuf::from(name))
}

/// Replaces `path` with `data` atomically: a reader sees the old or the new
/// content, never a mix. Not synced: it lasts as long as the page cache,
/// like an upload with the default `fsync_after_written_bytes = 0` (the
/// storage's metadata files).
pub fn replace_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = sibling_tmp(path);
    std::fs::write(&tmp.path, data)?;
    std::fs::rename(&tmp.path, path)?;
    tmp.keep();
    Ok(())
}

/// Writes a state file durably: tmp + write + fsync + rename + fsync of
/// the directory, so a crash leaves the old or the new content, never a
/// mix. Shared by the tracker's and the storage's data files.
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = sibling_tmp(path);
    {
        let mut f = std::fs::File::create(&tmp.path)?;
        std::io::Write::write_all(&mut f, data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp.path, path)?;
    tmp.keep();
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Removes the `<name>.tmp` files that [`write_atomic`] and
/// [`replace_atomic`] leave in `dir` when the process is killed between
/// writing and renaming them. Run at start, before anything writes there;
/// only regular files directly in `dir` are touched. Returns how many went.
pub fn remove_stale_temps(dir: &std::path::Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let is_temp = entry.path().extension().is_some_and(|ext| ext == "tmp");
        if is_temp && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_files_and_cleaned_temps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.dat");
        write_atomic(&p, b"one").unwrap();
        replace_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no .tmp left"
        );
        // A failed write leaves no temp file behind.
        let into_missing_dir = dir.path().join("missing/state.dat");
        assert!(replace_atomic(&into_missing_dir, b"x").is_err());
        let temp = dir.path().join("upload.tmp");
        std::fs::write(&temp, b"partial").unwrap();
        drop(TempPath::new(temp.clone()));
        assert!(!temp.exists());
        let mut kept = TempPath::new(temp.clone());
        std::fs::write(&temp, b"done").unwrap();
        kept.keep();
        drop(kept);
        assert!(temp.exists());
        assert_eq!(crc32_of_file(&temp).unwrap(), crc32fast::hash(b"done"));
    }

    #[test]
    fn stale_temps_of_a_killed_writer_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("storage_stat.dat"), b"kept").unwrap();
        std::fs::write(p.join("storage_stat.dat.tmp"), b"half").unwrap();
        std::fs::write(p.join("binlog_index.dat.tmp"), b"").unwrap();
        std::fs::create_dir(p.join("sync.tmp")).unwrap();
        assert_eq!(remove_stale_temps(p).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["storage_stat.dat", "sync.tmp"]);
        assert_eq!(remove_stale_temps(&p.join("missing")).unwrap(), 0);
    }
}
