//! Store paths and file placement: the `data/HH/HH` tree, store-path
//! choice under reserved space, round-robin directory rotation, random bits
//! and the final file name of an upload (§6.5, §7.2, §11.3).

use std::path::{Path, PathBuf};

use fdfs_config::ReservedSpace;
use fdfs_proto::fileid::{format_ext7, FileNameRecord};

use crate::disk::SpaceMb;

/// Directory under each store path's `data/` that holds uploads in
/// progress; the same file system as the final place, so a finished upload
/// is linked into place atomically and a crash leaves only files here.
pub const TMP_DIR_NAME: &str = ".tmp";

/// One configured store path (`store_pathN`).
#[derive(Debug, Clone)]
pub struct StorePath {
    pub root: PathBuf,
    pub readonly: bool,
}

impl StorePath {
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir().join(TMP_DIR_NAME)
    }
}

/// Left in `data/` while the directory tree is being created, so a start
/// after an interrupted build finishes it.
pub const TREE_BUILD_MARKER: &str = ".data_tree_building";

/// Prepares a store path for serving: creates `data/` and its temp
/// directory, and empties the latter of uploads that a crash interrupted.
/// Returns true when the `data/HH/HH` tree still has to be created (the
/// first or last directory is missing, as the original checks, or a build
/// was interrupted): [`build_tree`] does that, in the background, while
/// the write path creates any directory it needs first
/// ([`create_parent_dir`]).
pub fn init_tree(path: &StorePath, subdir_count: u32) -> std::io::Result<bool> {
    let data = path.data_dir();
    std::fs::create_dir_all(&data)?;
    let tmp = path.tmp_dir();
    if tmp.is_dir() {
        for entry in std::fs::read_dir(&tmp)? {
            let entry = entry?;
            let _ = std::fs::remove_file(entry.path());
        }
    } else {
        std::fs::create_dir_all(&tmp)?;
    }
    let last = subdir_count.saturating_sub(1);
    let first_dir = data.join("00").join("00");
    let last_dir = data.join(format!("{last:02X}")).join(format!("{last:02X}"));
    Ok(!first_dir.is_dir() || !last_dir.is_dir() || data.join(TREE_BUILD_MARKER).exists())
}

/// Creates `data/00/00 .. HH/HH` (the original's layout, so a C storage can
/// take the directory over), the last directory last. A marker file says a
/// build is under way until every directory exists.
pub fn build_tree(path: &StorePath, subdir_count: u32) -> std::io::Result<()> {
    let data = path.data_dir();
    let marker = data.join(TREE_BUILD_MARKER);
    std::fs::write(&marker, b"")?;
    for hi in 0..subdir_count {
        let hi_dir = data.join(format!("{hi:02X}"));
        for lo in 0..subdir_count {
            match std::fs::create_dir_all(hi_dir.join(format!("{lo:02X}"))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }
    std::fs::remove_file(&marker)
}

/// Creates the directory a file is about to be placed in, for a write that
/// failed with NotFound while [`build_tree`] has not reached it yet.
pub fn create_parent_dir(file: &Path) -> std::io::Result<()> {
    match file.parent() {
        Some(dir) => std::fs::create_dir_all(dir),
        None => Ok(()),
    }
}

/// Runs `place` (a link or rename into `to`); when it fails with NotFound,
/// creates `to`'s directory and runs it once more.
pub fn place_in_tree(
    to: &Path,
    mut place: impl FnMut() -> std::io::Result<()>,
) -> std::io::Result<()> {
    match place() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_parent_dir(to)?;
            place()
        }
        other => other,
    }
}

/// True when a path with `space` can take `incoming_mb` more megabytes and
/// stay above the reserve (§11.4: the per-path share of an absolute reserve,
/// or the ratio).
pub fn path_has_room(
    reserved: &ReservedSpace,
    space: SpaceMb,
    incoming_mb: u64,
    store_path_count: usize,
) -> bool {
    let free_after = space.free_mb.saturating_sub(incoming_mb);
    match reserved {
        ReservedSpace::Megabytes(mb) => free_after > mb / store_path_count.max(1) as u64,
        ReservedSpace::Ratio(ratio) => {
            space.total_mb > 0 && (free_after as f64 / space.total_mb as f64) > *ratio
        }
    }
}

/// Picks the store path for an upload. `requested` is the client's index
/// (None = storage chooses). `mode` is the tracker's `store_path`: 0 round
/// robin, 2 most free space. Returns None when no writable path has room.
pub fn choose_path(
    paths: &[StorePath],
    spaces: &[SpaceMb],
    reserved: &ReservedSpace,
    incoming_mb: u64,
    requested: Option<usize>,
    mode: u8,
    round_robin_next: &mut usize,
) -> Option<usize> {
    let n = paths.len();
    let usable = |i: usize| {
        !paths[i].readonly
            && spaces
                .get(i)
                .is_some_and(|s| path_has_room(reserved, *s, incoming_mb, n))
    };
    // The tracker's choice of path rests on a disk report up to
    // `stat_report_interval` old: a requested path that is full now sends
    // the upload to another, under round robin too (the original answers
    // ENOSPC there while another path has room).
    if let Some(i) = requested.filter(|&i| i < n && usable(i)) {
        return Some(i);
    }
    if mode == 2 {
        return (0..n)
            .filter(|&i| usable(i))
            .max_by_key(|&i| spaces.get(i).map(|s| s.free_mb).unwrap_or(0));
    }
    for step in 0..n {
        let i = (*round_robin_next + step) % n;
        if usable(i) {
            *round_robin_next = (i + 1) % n;
            return Some(i);
        }
    }
    None
}

/// Small, fast, non-cryptographic generator for the random parts of names
/// (the original uses rand(); these bits only need to differ).
#[derive(Debug, Clone)]
pub struct NameRng(u64);

impl NameRng {
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        NameRng(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    pub fn next_u32(&mut self) -> u32 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    pub fn digit(&mut self) -> u8 {
        (self.next_u32() % 10) as u8
    }
}

/// Round-robin directory placement (`file_distribute_path_mode = 0`),
/// persisted in storage_stat.dat as dist_path_index_high/low and
/// dist_write_file_count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirRotation {
    pub high: u32,
    pub low: u32,
    pub count: u32,
}

impl DirRotation {
    /// The directory for the next file, then advances the counters.
    pub fn next_dir(&mut self, rotate_count: u32, subdir_count: u32) -> (u8, u8) {
        let subdirs = subdir_count.max(1);
        self.high %= subdirs;
        self.low %= subdirs;
        let dir = (self.high as u8, self.low as u8);
        self.count += 1;
        if self.count >= rotate_count.max(1) {
            self.count = 0;
            self.low += 1;
            if self.low >= subdirs {
                self.low = 0;
                self.high = (self.high + 1) % subdirs;
            }
        }
        dir
    }
}

/// Directory for `file_distribute_path_mode = 1`: PJW hash of a name.
pub fn hashed_dir(seed_name: &str, subdir_count: u32) -> (u8, u8) {
    let n = fdfs_proto::fileid::pjw_hash(seed_name.as_bytes()) % 65536;
    let subdirs = subdir_count.max(1);
    (
        (((n >> 8) & 0xFF) % subdirs) as u8,
        ((n & 0xFF) % subdirs) as u8,
    )
}

/// `Mxx/HH/HH/<b64><ext7>` for a record.
pub fn remote_name(
    store_path_index: usize,
    dir: (u8, u8),
    record: &FileNameRecord,
    ext7: &str,
) -> String {
    format!(
        "M{:02X}/{:02X}/{:02X}/{}{}",
        store_path_index,
        dir.0,
        dir.1,
        record.encode(),
        ext7
    )
}

/// A fresh ext7 for `ext`.
pub fn new_ext7(ext: &str, rng: &mut NameRng) -> String {
    format_ext7(ext, || rng.digit())
}

/// Absolute path of a remote name's file below a store path.
/// `<store>/data/HH/HH`, the directory of files placed in `dir`.
pub fn dir_path(store_root: &Path, (high, low): (u8, u8)) -> PathBuf {
    store_root
        .join("data")
        .join(format!("{high:02X}"))
        .join(format!("{low:02X}"))
}

pub fn file_path(store_root: &Path, relative: &str) -> PathBuf {
    store_root.join("data").join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh store path serves before its tree exists: a file placed in
    /// a directory the build has not reached creates that directory; the
    /// build then completes the tree, and an interrupted build is redone.
    #[test]
    fn the_tree_is_built_later_and_directories_made_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath {
            root: dir.path().to_path_buf(),
            readonly: false,
        };
        assert!(init_tree(&path, 64).unwrap(), "a fresh path needs its tree");
        assert!(path.tmp_dir().is_dir());
        let src = path.tmp_dir().join("upload");
        std::fs::write(&src, b"x").unwrap();
        let linked = path.data_dir().join("20/20/linked");
        place_in_tree(&linked, || std::fs::hard_link(&src, &linked)).unwrap();
        let renamed = path.data_dir().join("3F/3F/renamed");
        place_in_tree(&renamed, || std::fs::rename(&src, &renamed)).unwrap();
        assert_eq!(std::fs::read(&linked).unwrap(), b"x");
        assert_eq!(std::fs::read(&renamed).unwrap(), b"x");
        // The last directory exists now, but the tree is not complete: a
        // start before the build ran builds it still (its marker is gone
        // only after a complete build).
        std::fs::write(path.data_dir().join(TREE_BUILD_MARKER), b"").unwrap();
        assert!(init_tree(&path, 64).unwrap());
        build_tree(&path, 64).unwrap();
        assert!(!path.data_dir().join(TREE_BUILD_MARKER).exists());
        assert!(path.data_dir().join("3E/01").is_dir());
        assert_eq!(
            std::fs::read_dir(path.data_dir().join("30"))
                .unwrap()
                .count(),
            64
        );
        assert!(!init_tree(&path, 64).unwrap(), "complete");
        // A missing source is still an error, not a retry loop.
        let gone = path.data_dir().join("01/01/gone");
        let err = place_in_tree(&gone, || {
            std::fs::hard_link(path.tmp_dir().join("none"), &gone)
        });
        assert_eq!(err.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn rotation_moves_after_rotate_count() {
        let mut r = DirRotation::default();
        for _ in 0..100 {
            assert_eq!(r.next_dir(100, 256), (0, 0));
        }
        assert_eq!(r.next_dir(100, 256), (0, 1));
        let mut wrap = DirRotation {
            high: 0,
            low: 255,
            count: 99,
        };
        assert_eq!(wrap.next_dir(100, 256), (0, 255));
        assert_eq!(wrap.next_dir(100, 256), (1, 0));
    }

    #[test]
    fn reserved_space_rules() {
        let s = SpaceMb {
            total_mb: 1000,
            free_mb: 300,
        };
        assert!(path_has_room(&ReservedSpace::Megabytes(200), s, 50, 1));
        assert!(!path_has_room(&ReservedSpace::Megabytes(200), s, 100, 1));
        assert!(path_has_room(&ReservedSpace::Megabytes(400), s, 0, 2));
        assert!(path_has_room(&ReservedSpace::Ratio(0.2), s, 0, 1));
        assert!(!path_has_room(&ReservedSpace::Ratio(0.3), s, 0, 1));
        assert!(!path_has_room(
            &ReservedSpace::Ratio(0.1),
            SpaceMb::default(),
            0,
            1
        ));
    }

    #[test]
    fn choose_path_skips_full_and_balances() {
        let paths = vec![
            StorePath {
                root: "/a".into(),
                readonly: false,
            },
            StorePath {
                root: "/b".into(),
                readonly: false,
            },
        ];
        let spaces = [
            SpaceMb {
                total_mb: 100,
                free_mb: 1,
            },
            SpaceMb {
                total_mb: 100,
                free_mb: 90,
            },
        ];
        let reserved = ReservedSpace::Ratio(0.1);
        let mut rr = 0;
        assert_eq!(
            choose_path(&paths, &spaces, &reserved, 0, None, 0, &mut rr),
            Some(1)
        );
        // A full requested path sends the upload to the other, whatever
        // the mode.
        assert_eq!(
            choose_path(&paths, &spaces, &reserved, 0, Some(0), 0, &mut rr),
            Some(1)
        );
        assert_eq!(
            choose_path(&paths, &spaces, &reserved, 0, Some(0), 2, &mut rr),
            Some(1)
        );
        assert_eq!(
            choose_path(&paths, &spaces, &reserved, 0, None, 2, &mut rr),
            Some(1)
        );
        let full = [SpaceMb {
            total_mb: 100,
            free_mb: 1,
        }; 2];
        assert_eq!(
            choose_path(&paths, &full, &reserved, 0, None, 2, &mut rr),
            None
        );
        assert_eq!(
            choose_path(&paths, &full, &reserved, 0, Some(1), 0, &mut rr),
            None
        );
        // Room for small files only: a big one is refused up front.
        assert_eq!(
            choose_path(&paths, &spaces, &reserved, 85, None, 0, &mut rr),
            None
        );
        // With room on both, round robin alternates and most-free picks
        // the emptier path.
        let both = [
            SpaceMb {
                total_mb: 100,
                free_mb: 50,
            },
            SpaceMb {
                total_mb: 100,
                free_mb: 80,
            },
        ];
        let picks: Vec<_> = (0..4)
            .map(|_| choose_path(&paths, &both, &reserved, 0, None, 0, &mut rr))
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == Some(0)).count(), 2);
        assert_eq!(picks.iter().filter(|p| **p == Some(1)).count(), 2);
        assert_ne!(picks[0], picks[1]);
        assert_eq!(
            choose_path(&paths, &both, &reserved, 0, None, 2, &mut rr),
            Some(1)
        );
        // A read-only path is never written.
        let mut ro = paths.clone();
        ro[1].readonly = true;
        assert_eq!(
            choose_path(&ro, &both, &reserved, 0, Some(1), 2, &mut rr),
            Some(0)
        );
    }

    #[test]
    fn rng_digits_in_range() {
        let mut r = NameRng::from_entropy();
        assert!((0..1000).all(|_| r.digit() < 10));
    }
}
