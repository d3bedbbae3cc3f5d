//! Trunk files whose delete reached this replica before the file did
//! (`data/trunk/tombstones`).
//!
//! Sync streams of different sources are not ordered with each other, so
//! the delete of a file from the member a client deleted it on can arrive
//! before its create from the member it was uploaded to. A late create
//! must not bring the file back: the slot would stay taken here while the
//! trunk server hands it to a new file. Deletes of files we do hold leave
//! a tombstone in the slot header instead (`slot::delete_slot`); these
//! have no slot of their own to mark, so they are kept here until their
//! create arrives. The file is a log of `+name` and `-name` lines,
//! compacted on load; names are checked remote names, so a line cannot be
//! forged by one.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fdfs_util::sync::lock;

pub struct Tombstones {
    path: PathBuf,
    names: Mutex<HashSet<String>>,
}

impl Tombstones {
    /// Loads `data/trunk/tombstones` under `data_dir` (none yet is empty).
    pub fn load(data_dir: &Path) -> io::Result<Tombstones> {
        let path = data_dir.join("trunk").join("tombstones");
        let mut names = HashSet::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some(n) = line.strip_prefix('+') {
                        names.insert(n.to_string());
                    } else if let Some(n) = line.strip_prefix('-') {
                        names.remove(n);
                    }
                }
                let mut compact = String::new();
                for n in &names {
                    compact.push('+');
                    compact.push_str(n);
                    compact.push('\n');
                }
                fdfs_util::fs::write_atomic(&path, compact.as_bytes())?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Tombstones {
            path,
            names: Mutex::new(names),
        })
    }

    fn append(&self, line: &str) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(line.as_bytes())?;
        // The delete is acknowledged after this: it must outlive a crash.
        f.sync_data()
    }

    /// Remembers that `remote` was deleted before it arrived.
    pub fn add(&self, remote: &str) -> io::Result<()> {
        let mut names = lock(&self.names);
        if names.insert(remote.to_string()) {
            self.append(&format!("+{remote}\n"))?;
        }
        Ok(())
    }

    /// Whether `remote` was deleted before it arrived; its tombstone goes,
    /// the late create having been refused.
    pub fn take(&self, remote: &str) -> io::Result<bool> {
        let mut names = lock(&self.names);
        if !names.remove(remote) {
            return Ok(false);
        }
        self.append(&format!("-{remote}\n"))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_survive_a_reload_until_taken() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tombstones::load(dir.path()).unwrap();
        t.add("M00/00/00/a").unwrap();
        t.add("M00/00/00/b").unwrap();
        assert!(t.take("M00/00/00/a").unwrap());
        assert!(!t.take("M00/00/00/a").unwrap());
        let t = Tombstones::load(dir.path()).unwrap();
        assert!(!t.take("M00/00/00/a").unwrap());
        assert!(t.take("M00/00/00/b").unwrap());
        let t = Tombstones::load(dir.path()).unwrap();
        assert!(!t.take("M00/00/00/b").unwrap());
    }
}
