//! Recently opened store files, kept open so that a hot file is answered
//! without a path walk (openat2 + close were 15% of the gateway's CPU in a
//! profile, bench/HTTP.md).
//!
//! A kept handle is only used while it still is the file its name names:
//! every hit is checked against the fstat the answer needs anyway. A link
//! count of zero (deleted) or a changed ctime (renamed, linked, appended
//! to, truncated, modified: every such change sets the inode's ctime) drops
//! the handle and the name is opened afresh, so answers are the ones a
//! fresh open gives. In-place changes (append, modify, truncate) are seen
//! through the handle itself, deletes and replacements through the link
//! count; only a rename away from the name relies on ctime, whose
//! granularity is the kernel's timestamp tick, so a rename in the same
//! tick as the open is seen when the handle ages out. The age limit
//! otherwise only bounds how long an unused handle (and the space of a file
//! deleted meanwhile) is held.
//!
//! The shelf holds what the descriptor limit leaves after a reserve for
//! connections and stored files ([`capacity_for`]). When the process
//! runs out of descriptors anyway (`fdfs_util::sys::descriptor_shortages`:
//! an accept or an open failed with EMFILE), every kept handle is let go
//! at the next look, so connections and uploads get their descriptors.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a handle is kept after it was opened.
pub const OPEN_FILE_MAX_AGE: Duration = Duration::from_secs(10);
/// Most handles kept, whatever the descriptor limit allows: enough for a
/// working set of 65,536 hot files, about 10 MB of kernel and shelf memory.
pub const OPEN_FILES_MAX: usize = 65536;

/// What identifies one state of a file: a change of any kind moves ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ctime_secs: i64,
    ctime_nanos: i64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            ctime_secs: meta.ctime(),
            ctime_nanos: meta.ctime_nsec(),
        }
    }
}

struct Kept {
    file: Arc<File>,
    stamp: Stamp,
    opened: Instant,
}

struct Shelf {
    /// One map per store path, by path relative to its `data` directory.
    by_store: Vec<HashMap<String, Kept>>,
    len: usize,
    /// Names in the order they were kept, with when: the oldest leave
    /// first. An entry whose name was dropped or kept again since is
    /// stale and only skipped.
    order: VecDeque<(usize, String, Instant)>,
    /// [`fdfs_util::sys::descriptor_shortages`] when last looked at.
    shortages_seen: u64,
}

impl Shelf {
    /// Takes the oldest entry off `order`, dropping its handle when it is
    /// still the one kept under that name. False when `order` is empty.
    fn drop_oldest(&mut self) -> bool {
        let Some((index, name, opened)) = self.order.pop_front() else {
            return false;
        };
        if let Some(m) = self.by_store.get_mut(index) {
            if let Entry::Occupied(e) = m.entry(name) {
                if e.get().opened == opened {
                    e.remove();
                    self.len -= 1;
                }
            }
        }
        true
    }

    /// Drops every handle older than the age limit (amortised O(1): only
    /// the front of `order` is looked at), or every handle after the
    /// process ran out of descriptors.
    fn expire(&mut self, now: Instant, shortages: u64) {
        if shortages != self.shortages_seen {
            self.shortages_seen = shortages;
            for m in &mut self.by_store {
                m.clear();
            }
            self.order.clear();
            self.len = 0;
            return;
        }
        while self
            .order
            .front()
            .is_some_and(|(_, _, opened)| now.duration_since(*opened) >= OPEN_FILE_MAX_AGE)
        {
            self.drop_oldest();
        }
    }
}

/// Descriptors always left to connections and stored files, once the
/// limit is high enough to afford them.
const RESERVED_DESCRIPTORS: u64 = 4096;

/// How many handles a process allowed `nofile` descriptors keeps: all but
/// a reserve for connections and stored files, the reserve being half of
/// the limit up to [`RESERVED_DESCRIPTORS`], then that many or a quarter,
/// whichever is more; at most [`OPEN_FILES_MAX`]. A read set larger than
/// the shelf is answered from it in proportion to their sizes (a full
/// shelf keeps what it has until it ages out), so every handle counts:
/// 15,000 instead of 10,000 kept of 20,000 files read turn half of the
/// misses into hits (2.5% less CPU per GET on average, within the noise of
/// bench/RESULTS.md, 2026-12-05 fifth session).
fn capacity_for(nofile: u64) -> usize {
    let reserve = (nofile / 4).max(RESERVED_DESCRIPTORS.min(nofile - nofile / 2));
    usize::try_from(nofile - reserve)
        .unwrap_or(OPEN_FILES_MAX)
        .min(OPEN_FILES_MAX)
}

/// The process's soft limit on open descriptors (1024 when unknown).
fn nofile_soft_limit() -> u64 {
    fdfs_util::sys::nofile_limits().map_or(1024, |(soft, _)| soft)
}

/// The kept handles of one gateway.
pub struct OpenFiles {
    shelf: Mutex<Shelf>,
    capacity: usize,
    /// Where descriptor shortages are counted (the process's counter; a
    /// test's own).
    shortages: fn() -> u64,
}

impl OpenFiles {
    /// Keeps up to `capacity` handles over `store_paths` store paths.
    pub fn new(store_paths: usize, capacity: usize) -> OpenFiles {
        Self::watching(store_paths, capacity, fdfs_util::sys::descriptor_shortages)
    }

    fn watching(store_paths: usize, capacity: usize, shortages: fn() -> u64) -> OpenFiles {
        OpenFiles {
            shelf: Mutex::new(Shelf {
                by_store: (0..store_paths).map(|_| HashMap::new()).collect(),
                len: 0,
                order: VecDeque::new(),
                shortages_seen: shortages(),
            }),
            capacity,
            shortages,
        }
    }

    /// The capacity for the process's soft descriptor limit, see
    /// [`capacity_for`]. Kept handles cost one descriptor each and save a
    /// path walk per hit (about 5% of a GET's CPU, bench/RESULTS.md).
    pub fn default_capacity() -> usize {
        capacity_for(nofile_soft_limit())
    }

    fn shelf(&self) -> MutexGuard<'_, Shelf> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters: every entry is checked on use.
        fdfs_util::sync::lock(&self.shelf)
    }

    /// The kept handle of `relative` below store path `index`, with its
    /// metadata, when it is still that name's file.
    pub fn get(&self, index: usize, relative: &str) -> Option<(Arc<File>, Metadata)> {
        if self.capacity == 0 {
            return None;
        }
        let (file, stamp) = {
            let mut shelf = self.shelf();
            shelf.expire(Instant::now(), (self.shortages)());
            let k = shelf.by_store.get(index)?.get(relative)?;
            (k.file.clone(), k.stamp)
        };
        match file.metadata() {
            Ok(meta) if meta.nlink() > 0 && Stamp::of(&meta) == stamp => Some((file, meta)),
            _ => {
                self.forget(index, relative);
                None
            }
        }
    }

    /// Keeps a handle just opened by name, `meta` being its fstat.
    pub fn put(&self, index: usize, relative: &str, file: &Arc<File>, meta: &Metadata) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut shelf = self.shelf();
        shelf.expire(now, (self.shortages)());
        if shelf.len >= self.capacity {
            // Full: handles leave by age only. Evicting here would cost
            // every miss of a set larger than the shelf (uniform random
            // reads of 20,000 files measured 3% more CPU per request)
            // and gain nothing; a hot file is kept again once room frees.
            return;
        }
        // `order` may also hold stale entries; keep it within bounds.
        while shelf.order.len() >= 2 * self.capacity && shelf.drop_oldest() {}
        let kept = Kept {
            file: file.clone(),
            stamp: Stamp::of(meta),
            opened: now,
        };
        let Some(m) = shelf.by_store.get_mut(index) else {
            return;
        };
        if m.insert(relative.to_owned(), kept).is_none() {
            shelf.len += 1;
        }
        shelf.order.push_back((index, relative.to_owned(), now));
    }

    fn forget(&self, index: usize, relative: &str) {
        let mut shelf = self.shelf();
        if let Some(m) = shelf.by_store.get_mut(index) {
            if m.remove(relative).is_some() {
                shelf.len -= 1;
            }
        }
    }

    /// Handles kept right now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shelf().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn open(path: &std::path::Path) -> (Arc<File>, Metadata) {
        let f = File::open(path).unwrap();
        let m = f.metadata().unwrap();
        (Arc::new(f), m)
    }

    #[test]
    fn a_kept_handle_serves_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let cache = OpenFiles::new(1, 16);
        let (f, m) = open(&path);
        cache.put(0, "f", &f, &m);
        assert_eq!(cache.get(0, "f").unwrap().1.len(), 3);
        assert!(cache.get(1, "f").is_none(), "another store path");
        assert!(cache.get(0, "g").is_none());

        // Appending changes ctime: the handle is dropped, not served.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b" two")
            .unwrap();
        assert!(cache.get(0, "f").is_none());
        assert_eq!(cache.len(), 0);

        // Renamed away: the old name no longer answers with it.
        let (f, m) = open(&path);
        cache.put(0, "f", &f, &m);
        std::fs::rename(&path, dir.path().join("renamed")).unwrap();
        assert!(cache.get(0, "f").is_none());

        // Deleted.
        let path = dir.path().join("d");
        std::fs::write(&path, b"x").unwrap();
        let (f, m) = open(&path);
        cache.put(0, "d", &f, &m);
        std::fs::remove_file(&path).unwrap();
        assert!(cache.get(0, "d").is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_capacity_leaves_a_reserve_of_descriptors() {
        assert_eq!(capacity_for(1024), 512);
        assert_eq!(capacity_for(8192), 4096);
        assert_eq!(capacity_for(20000), 15000);
        assert_eq!(capacity_for(65536), 49152);
        assert_eq!(capacity_for(1 << 20), OPEN_FILES_MAX);
        assert_eq!(capacity_for(0), 0);
        assert_eq!(capacity_for(1), 0);
    }

    #[test]
    fn the_shelf_never_holds_more_than_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let cache = OpenFiles::new(2, 3);
        for i in 0..10 {
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, b"x").unwrap();
            let (f, m) = open(&path);
            cache.put(i % 2, &i.to_string(), &f, &m);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(0, "0").is_some(), "kept until it ages out");
        assert!(cache.get(1, "1").is_some());
        assert!(cache.get(0, "2").is_some());
        assert!(cache.get(1, "9").is_none(), "no room: not kept");
        let none = OpenFiles::new(1, 0);
        let (f, m) = open(&dir.path().join("0"));
        none.put(0, "0", &f, &m);
        assert!(none.get(0, "0").is_none());
    }

    #[test]
    fn running_out_of_descriptors_lets_every_handle_go() {
        static SHORTAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        fn shortages() -> u64 {
            SHORTAGES.load(std::sync::atomic::Ordering::Relaxed)
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = OpenFiles::watching(1, 16, shortages);
        for name in ["a", "b"] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            let (f, m) = open(&path);
            cache.put(0, name, &f, &m);
        }
        assert!(cache.get(0, "a").is_some());
        SHORTAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(cache.get(0, "a").is_none());
        assert_eq!(cache.len(), 0);
        // Later opens are kept again.
        let (f, m) = open(&dir.path().join("a"));
        cache.put(0, "a", &f, &m);
        assert!(cache.get(0, "a").is_some());
    }
}
