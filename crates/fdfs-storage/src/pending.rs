//! The undo journal (`data/pending/`): changes that reach a data file
//! before their binlog record (appends, modifies and truncates of appender
//! files; new uploads write their record first instead, see
//! [`crate::binlog::Binlog::append_placing`]). The binlog record is the
//! commit point: a change whose record was written stays, one without it
//! is taken back, so a kill never leaves a file that differs from what the
//! binlog (and so every replica) says, and a client never sees a change
//! it was not told succeeded.
//!
//! Before the data file is touched, one journal file per change records
//! the binlog position, the record to expect, the file's old length and
//! the bytes the change is about to overwrite. Undo writes those bytes
//! back and restores the length: idempotent, so a kill during recovery is
//! recovered at the next start. Journal files are not fsynced: they
//! outlive a killed process (the page cache stays), not a power loss,
//! like uploads with the default `fsync_after_written_bytes = 0`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::binlog::Binlog;

/// Directory under `<base_path>/data` holding the journal.
pub const PENDING_DIR_NAME: &str = "pending";
/// Ends a complete journal file: one without it was cut by a kill before
/// the data file was touched, and is only removed.
const TRAILER: &[u8] = b"END\n";
/// Journal file name suffix.
const SUFFIX: &str = ".undo";

/// The journal directory and a counter for unique entry names.
pub struct Pending {
    dir: PathBuf,
    next: AtomicU64,
}

/// What a change is, as its binlog record will say, and what undoing it
/// takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: char,
    pub remote: String,
    pub extra: String,
    /// Length of the data file before the change; None for a file the
    /// change creates (undo removes it).
    pub old_len: Option<u64>,
    /// Start of the bytes the change overwrites or cuts (saved first).
    pub save_from: u64,
    /// How many bytes from `save_from` to save (0 for appends and creates).
    pub save_len: u64,
}

/// One change in progress: [`Entry::commit`] after its binlog record is
/// written, [`Entry::undo`] when it failed part-way.
#[must_use = "an entry is committed or undone"]
pub struct Entry {
    journal: PathBuf,
    data_file: PathBuf,
    change: Change,
    /// Where the saved bytes start in the journal file.
    saved_at: u64,
}

/// Longest journal head line read back.
const HEAD_MAX_BYTES: usize = 512;

impl Pending {
    pub fn open(data_dir: &Path) -> std::io::Result<Pending> {
        let dir = data_dir.join(PENDING_DIR_NAME);
        std::fs::create_dir_all(&dir)?;
        Ok(Pending {
            dir,
            next: AtomicU64::new(0),
        })
    }

    /// Records `change` of `data_file` before it is made; the saved bytes
    /// are copied file to file, never held in memory whole. Blocking.
    pub fn begin(
        &self,
        binlog: &Binlog,
        data_file: &Path,
        change: Change,
    ) -> std::io::Result<Entry> {
        let (index, offset) = binlog.position();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let journal = self.dir.join(format!("{}-{n}{SUFFIX}", std::process::id()));
        let head = format!(
            "{} {} {} {} {} {} {index} {offset}\n",
            change.op,
            change.remote,
            change.extra.replace(' ', ","),
            change.old_len.map_or(-1, |l| l as i64),
            change.save_from,
            change.save_len,
        );
        let mut f = std::fs::File::create(&journal)?;
        f.write_all(head.as_bytes())?;
        if change.save_len > 0 {
            let mut src = std::fs::File::open(data_file)?;
            src.seek(SeekFrom::Start(change.save_from))?;
            let copied = std::io::copy(&mut src.take(change.save_len), &mut f)?;
            if copied != change.save_len {
                let _ = std::fs::remove_file(&journal);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shorter than the range to save",
                ));
            }
        }
        f.write_all(TRAILER)?;
        Ok(Entry {
            journal,
            data_file: data_file.to_path_buf(),
            change,
            saved_at: head.len() as u64,
        })
    }

    /// At start, before serving: takes back every change whose binlog
    /// record was not written, and clears the journal. `locate` maps a
    /// remote name to its data file (None: not ours, the entry is dropped).
    /// Returns how many changes were undone.
    pub fn recover(
        &self,
        binlog: &Binlog,
        locate: impl Fn(&str) -> Option<PathBuf>,
    ) -> std::io::Result<usize> {
        let mut undone = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let journal = entry?.path();
            let parsed = if journal.to_string_lossy().ends_with(SUFFIX) {
                read_head(&journal)?
            } else {
                None
            };
            if let Some(JournalHead {
                change,
                binlog_from,
                saved_at,
            }) = parsed
            {
                let committed = binlog.has_record_since(
                    binlog_from,
                    change.op,
                    &change.remote,
                    &change.extra,
                )?;
                if let (false, Some(data_file)) = (committed, locate(&change.remote)) {
                    tracing::warn!(
                        op = %change.op,
                        file = %change.remote,
                        "taking back a change a crash left without its binlog record"
                    );
                    let entry = Entry {
                        journal: journal.clone(),
                        data_file,
                        change,
                        saved_at,
                    };
                    entry.restore()?;
                    undone += 1;
                }
            }
            std::fs::remove_file(&journal)?;
        }
        Ok(undone)
    }
}

impl Entry {
    /// The change as its binlog record will say.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// The binlog record is written: the change stays.
    pub fn commit(self) {
        let _ = std::fs::remove_file(&self.journal);
    }

    /// The change was never made (its name was taken): forget it.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.journal);
    }

    /// Takes the change back (the request failed part-way). Blocking.
    pub fn undo(self) -> std::io::Result<()> {
        self.restore()?;
        std::fs::remove_file(&self.journal)
    }

    /// Puts the data file back as it was before the change.
    fn restore(&self) -> std::io::Result<()> {
        let change = &self.change;
        let Some(old_len) = change.old_len else {
            return match std::fs::remove_file(&self.data_file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        };
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .open(&self.data_file)
        {
            Ok(f) => f,
            // Deleted since (a later, committed delete): nothing to restore.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if change.save_len > 0 {
            let mut saved = std::fs::File::open(&self.journal)?;
            saved.seek(SeekFrom::Start(self.saved_at))?;
            f.seek(SeekFrom::Start(change.save_from))?;
            let copied = std::io::copy(&mut saved.take(change.save_len), &mut f)?;
            if copied != change.save_len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "undo journal shorter than its saved range",
                ));
            }
        }
        f.set_len(old_len)
    }
}

/// What a complete journal file says.
struct JournalHead {
    change: Change,
    /// Binlog position when the change began: its record comes after.
    binlog_from: (u32, u64),
    /// Where the saved bytes start in the file.
    saved_at: u64,
}

/// The head of a complete journal file; None for a file a kill cut short
/// (or garbage).
fn read_head(journal: &Path) -> std::io::Result<Option<JournalHead>> {
    let f = std::fs::File::open(journal)?;
    let len = f.metadata()?.len();
    let mut trailer = [0u8; TRAILER.len()];
    if len < TRAILER.len() as u64 {
        return Ok(None);
    }
    f.read_exact_at(&mut trailer, len - TRAILER.len() as u64)?;
    if trailer != TRAILER {
        return Ok(None);
    }
    let mut head = vec![0u8; HEAD_MAX_BYTES.min(len as usize)];
    f.read_exact_at(&mut head, 0)?;
    let Some(eol) = head.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let parsed = std::str::from_utf8(&head[..eol]).ok().and_then(parse_head);
    Ok(parsed.and_then(|(change, from)| {
        let saved_at = eol as u64 + 1;
        (saved_at + change.save_len + TRAILER.len() as u64 == len).then_some(JournalHead {
            change,
            binlog_from: from,
            saved_at,
        })
    }))
}

fn parse_head(head: &str) -> Option<(Change, (u32, u64))> {
    let cols: Vec<&str> = head.split(' ').collect();
    let [op, remote, extra, old_len, save_from, save_len, index, offset] = cols[..] else {
        return None;
    };
    let mut op_chars = op.chars();
    let (Some(op), None) = (op_chars.next(), op_chars.next()) else {
        return None;
    };
    let old_len: i64 = old_len.parse().ok()?;
    let change = Change {
        op,
        remote: remote.to_string(),
        extra: extra.replace(',', " "),
        old_len: u64::try_from(old_len).ok(),
        save_from: save_from.parse().ok()?,
        save_len: save_len.parse().ok()?,
    };
    Some((change, (index.parse().ok()?, offset.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::op;

    const NAME: &str = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";

    fn setup() -> (tempfile::TempDir, Binlog, Pending, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let binlog = Binlog::open(&dir.path().join("sync")).unwrap();
        let pending = Pending::open(dir.path()).unwrap();
        let file = dir.path().join("data-file");
        (dir, binlog, pending, file)
    }

    /// A kill after the data changed but before the binlog record: the
    /// next start takes the change back. A change whose record was
    /// written stays, even if its journal file was not removed yet.
    #[test]
    fn uncommitted_changes_are_taken_back_at_start_and_committed_ones_stay() {
        let (_dir, binlog, pending, file) = setup();
        std::fs::write(&file, b"0123456789").unwrap();
        // Modify 4..8 (and grow to 12), not logged: undone.
        let modify = Change {
            op: op::MODIFY,
            remote: NAME.into(),
            extra: "4 8".into(),
            old_len: Some(10),
            save_from: 4,
            save_len: 6,
        };
        let entry = pending.begin(&binlog, &file, modify).unwrap();
        std::fs::write(&file, b"0123XXXXXXXX").unwrap();
        std::mem::forget(entry);
        assert_eq!(pending.recover(&binlog, |_| Some(file.clone())).unwrap(), 1);
        assert_eq!(std::fs::read(&file).unwrap(), b"0123456789");

        // Truncate to 3, logged, journal left behind: stays.
        let truncate = Change {
            op: op::TRUNCATE,
            remote: NAME.into(),
            extra: "10 3".into(),
            old_len: Some(10),
            save_from: 3,
            save_len: 7,
        };
        let entry = pending.begin(&binlog, &file, truncate.clone()).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(3)
            .unwrap();
        binlog.append(1, op::TRUNCATE, NAME, "10 3").unwrap();
        std::mem::forget(entry);
        assert_eq!(pending.recover(&binlog, |_| Some(file.clone())).unwrap(), 0);
        assert_eq!(std::fs::read(&file).unwrap(), b"012");

        // The same record again later is not taken for this one's commit:
        // only records after the entry's position count.
        let entry = pending
            .begin(
                &binlog,
                &file,
                Change {
                    old_len: Some(3),
                    save_from: 0,
                    save_len: 3,
                    ..truncate
                },
            )
            .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(0)
            .unwrap();
        std::mem::forget(entry);
        assert_eq!(pending.recover(&binlog, |_| Some(file.clone())).unwrap(), 1);
        assert_eq!(std::fs::read(&file).unwrap(), b"012");

        // An upload placed under its name but not logged: removed.
        let create = Change {
            op: op::CREATE,
            remote: NAME.into(),
            extra: String::new(),
            old_len: None,
            save_from: 0,
            save_len: 0,
        };
        let entry = pending.begin(&binlog, &file, create).unwrap();
        std::mem::forget(entry);
        assert_eq!(pending.recover(&binlog, |_| Some(file.clone())).unwrap(), 1);
        assert!(!file.exists());
        assert_eq!(std::fs::read_dir(&pending.dir).unwrap().count(), 0);
    }

    /// A journal file cut by a kill (no trailer) was written before the
    /// data file was touched: it is dropped, the data left as it is.
    #[test]
    fn a_cut_journal_file_is_dropped() {
        let (_dir, binlog, pending, file) = setup();
        std::fs::write(&file, b"abc").unwrap();
        let append = Change {
            op: op::APPEND,
            remote: NAME.into(),
            extra: "3 4".into(),
            old_len: Some(3),
            save_from: 3,
            save_len: 0,
        };
        let entry = pending.begin(&binlog, &file, append).unwrap();
        let journal = entry.journal.clone();
        std::mem::forget(entry);
        let bytes = std::fs::read(&journal).unwrap();
        std::fs::write(&journal, &bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(pending.recover(&binlog, |_| Some(file.clone())).unwrap(), 0);
        assert_eq!(std::fs::read(&file).unwrap(), b"abc");
        assert!(!journal.exists());
    }
}
