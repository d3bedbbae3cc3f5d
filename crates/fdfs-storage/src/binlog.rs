//! The replication binlog (`data/sync/binlog.NNN`, §5.1): one text line per
//! change, `<timestamp> <op> <filename>[ <extra>]`, upper-case ops for
//! changes that originated here.
//!
//! Lines are written with one `write` each to an append-only file, so a
//! line is in the page cache as soon as the request is acknowledged; the
//! original buffers up to `sync_binlog_buff_interval` seconds first.
//!
//! Names are written as they are: only names that passed
//! [`RemoteName::parse`] get here, and those are single tokens without
//! space or control characters. Reading applies the same check, so a torn
//! or forged line is rejected, not replicated.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fdfs_proto::fileid::RemoteName;

/// A new binlog file is started when the current one reaches this size.
pub const BINLOG_MAX_BYTES: u64 = 1 << 30;
/// Lines longer than this are unreadable for the original.
pub const BINLOG_MAX_LINE_BYTES: usize = 255;
/// Store path indexes are two hex digits: a name read back from a binlog
/// is checked against the largest possible count, the reader maps it to a
/// store path later.
const STORE_PATH_INDEX_LIMIT: usize = 256;

/// Binlog operation letters (source forms; replicas use lower case).
pub mod op {
    pub const CREATE: char = 'C';
    pub const DELETE: char = 'D';
    pub const UPDATE: char = 'U';
    pub const APPEND: char = 'A';
    pub const MODIFY: char = 'M';
    pub const TRUNCATE: char = 'T';
    pub const LINK: char = 'L';
    pub const RENAME: char = 'R';
}

struct Current {
    index: u32,
    file: std::fs::File,
    size: u64,
}

pub struct Binlog {
    dir: PathBuf,
    current: Mutex<Current>,
}

fn binlog_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("binlog.{index:03}"))
}

fn read_index(dir: &Path) -> u32 {
    let Ok(text) = std::fs::read_to_string(dir.join("binlog_index.dat")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("current_write="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn write_index(dir: &Path, index: u32) -> std::io::Result<()> {
    crate::state::write_atomic(
        &dir.join("binlog_index.dat"),
        format!("current_write={index}\ncurrent_compress=0\n").as_bytes(),
    )
}

fn open_append(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let size = cut_torn_tail(&file)?;
    Ok((file, size))
}

/// Longest tail read back when looking for the last complete line: a line
/// is never longer than [`BINLOG_MAX_LINE_BYTES`], so one without its
/// newline within this many bytes is garbage as a whole.
const TORN_TAIL_SCAN_BYTES: u64 = 64 * 1024;

/// Cuts an unterminated last line (a write torn by a crash) so the next
/// record starts on a line of its own instead of being glued to the torn
/// one and read back as garbage. Returns the size after the cut.
fn cut_torn_tail(file: &std::fs::File) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(0);
    }
    let start = size.saturating_sub(TORN_TAIL_SCAN_BYTES);
    let mut tail = vec![0u8; (size - start) as usize];
    file.read_exact_at(&mut tail, start)?;
    if tail.last() == Some(&b'\n') {
        return Ok(size);
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None => start,
    };
    tracing::warn!(
        cut_bytes = size - keep,
        "binlog ends with a torn line; cutting it"
    );
    file.set_len(keep)?;
    Ok(keep)
}

/// One record's line. Callers pass validated names; this keeps one record
/// per line even if one did not.
fn record_line(timestamp: i64, op: char, filename: &str, extra: &str) -> std::io::Result<String> {
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic());
    if !token(filename) || !(extra.is_empty() || extra.split(' ').all(token)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "refusing binlog record for {}",
                fdfs_proto::fileid::escape_for_log(filename)
            ),
        ));
    }
    Ok(if extra.is_empty() {
        format!("{timestamp} {op} {filename}\n")
    } else {
        format!("{timestamp} {op} {filename} {extra}\n")
    })
}

impl Binlog {
    /// Opens (or starts) the binlog in `<base_path>/data/sync`.
    pub fn open(sync_dir: &Path) -> std::io::Result<Binlog> {
        std::fs::create_dir_all(sync_dir)?;
        let index = read_index(sync_dir);
        if !sync_dir.join("binlog_index.dat").exists() {
            write_index(sync_dir, index)?;
        }
        let (file, size) = open_append(&binlog_path(sync_dir, index))?;
        Ok(Binlog {
            dir: sync_dir.to_path_buf(),
            current: Mutex::new(Current { index, file, size }),
        })
    }

    /// Appends one record. `extra` holds the op-specific fields.
    pub fn append(
        &self,
        timestamp: i64,
        op: char,
        filename: &str,
        extra: &str,
    ) -> std::io::Result<()> {
        self.append_placing(timestamp, op, filename, extra, || Ok(()))
            .map_err(Placing::into_io)
    }

    /// Appends one record, then runs `place` (which links the record's new
    /// file under its name) before any other record is written. The record
    /// reaches the kernel first, so a kill leaves a record without its file
    /// (which readers skip), never a file without its record. When `place`
    /// fails the record is cut off again: no record ever names a file that
    /// `place` did not put there (its name was taken by another file).
    /// Readers see a record only once its file is placed: they read up to
    /// [`Binlog::position`], which moves after `place`. Blocking.
    pub fn append_placing(
        &self,
        timestamp: i64,
        op: char,
        filename: &str,
        extra: &str,
        place: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<(), Placing> {
        let line = record_line(timestamp, op, filename, extra).map_err(Placing::Binlog)?;
        let mut cur = fdfs_util::sync::lock(&self.current);
        self.rotate_if_full(&mut cur, line.len())
            .map_err(Placing::Binlog)?;
        // Where this line starts: the file's length, not our count, so a
        // cut-back never takes anything but this line, whoever else wrote.
        let start = cur.file.metadata().map_or(cur.size, |m| m.len());
        if let Err(e) = cur.file.write_all(line.as_bytes()) {
            // A part-written line (a full disk) must not stay as the start
            // of the next record.
            let _ = cur.file.set_len(start);
            return Err(Placing::Binlog(e));
        }
        if let Err(e) = place() {
            if let Err(cut) = cur.file.set_len(start) {
                tracing::error!(error = %cut, filename, "could not cut back the record of a file not placed");
            }
            return Err(Placing::Place(e));
        }
        cur.size = start + line.len() as u64;
        Ok(())
    }

    /// Appends several records with one write (a batch of trunk uploads),
    /// all or none: a failed write is cut off again. Blocking.
    pub fn append_many(&self, records: &[(i64, char, &str)]) -> std::io::Result<()> {
        let mut text = String::new();
        for &(timestamp, op, filename) in records {
            text.push_str(&record_line(timestamp, op, filename, "")?);
        }
        if text.is_empty() {
            return Ok(());
        }
        let mut cur = fdfs_util::sync::lock(&self.current);
        self.rotate_if_full(&mut cur, text.len())?;
        let start = cur.file.metadata().map_or(cur.size, |m| m.len());
        if let Err(e) = cur.file.write_all(text.as_bytes()) {
            let _ = cur.file.set_len(start);
            return Err(e);
        }
        cur.size = start + text.len() as u64;
        Ok(())
    }

    /// Starts the next binlog file when `more` bytes would take the current
    /// one past [`BINLOG_MAX_BYTES`].
    fn rotate_if_full(&self, cur: &mut Current, more: usize) -> std::io::Result<()> {
        if cur.size + more as u64 > BINLOG_MAX_BYTES {
            let next = cur.index + 1;
            let (file, size) = open_append(&binlog_path(&self.dir, next))?;
            write_index(&self.dir, next)?;
            *cur = Current {
                index: next,
                file,
                size,
            };
        }
        Ok(())
    }

    /// Where the next record will start: a record appended after this call
    /// is found by [`Binlog::has_record_since`] from here. Everything before
    /// it is whole and its file placed: readers of the binlog being written
    /// stop here.
    pub fn position(&self) -> (u32, u64) {
        let cur = fdfs_util::sync::lock(&self.current);
        (cur.index, cur.size)
    }

    /// True when a record `op filename extra` (any timestamp) was written
    /// at or after `from`, a [`Binlog::position`]: the commit test of the
    /// undo journal at start.
    pub fn has_record_since(
        &self,
        from: (u32, u64),
        op: char,
        filename: &str,
        extra: &str,
    ) -> std::io::Result<bool> {
        use std::io::{BufRead, Seek};
        let last = self.current_index();
        for index in from.0..=last {
            let file = match std::fs::File::open(binlog_path(&self.dir, index)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut reader = std::io::BufReader::new(file);
            if index == from.0 {
                reader.seek(std::io::SeekFrom::Start(from.1))?;
            }
            for line in reader.split(b'\n') {
                let line = line?;
                if parse_line(&String::from_utf8_lossy(&line))
                    .is_some_and(|r| r.op == op && r.filename == filename && r.extra == extra)
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Index of the binlog file being written.
    pub fn current_index(&self) -> u32 {
        fdfs_util::sync::lock(&self.current).index
    }

    /// Flushes the binlog to disk (shutdown).
    pub fn sync(&self) -> std::io::Result<()> {
        let cur = fdfs_util::sync::lock(&self.current);
        cur.file.sync_data()
    }

    /// Path of the file being written (tests, monitor).
    pub fn current_path(&self) -> PathBuf {
        let cur = fdfs_util::sync::lock(&self.current);
        binlog_path(&self.dir, cur.index)
    }
}

/// Why [`Binlog::append_placing`] failed.
#[derive(Debug)]
pub enum Placing {
    /// The record could not be written; `place` did not run.
    Binlog(std::io::Error),
    /// `place` failed; its record was cut off again.
    Place(std::io::Error),
}

impl Placing {
    fn into_io(self) -> std::io::Error {
        match self {
            Placing::Binlog(e) | Placing::Place(e) => e,
        }
    }
}

/// One parsed binlog line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub timestamp: i64,
    pub op: char,
    pub filename: String,
    pub extra: String,
}

/// True for a name a record may carry: what [`RemoteName::parse`] accepts.
fn is_record_name(name: &str) -> bool {
    RemoteName::parse(name, STORE_PATH_INDEX_LIMIT).is_ok()
}

/// The op letter of a line (its second column), without parsing the rest:
/// a reader that wants one op skips the other lines cheaply.
pub fn op_letter(line: &str) -> Option<char> {
    let (_, rest) = line.split_once(' ')?;
    match rest.as_bytes() {
        [letter, b' ', ..] => Some(char::from(*letter)),
        _ => None,
    }
}

/// Parses a line as the original reader does: three columns split on
/// spaces, the rest kept whole. Only well-formed records pass: a known op
/// letter, names that [`RemoteName::parse`] accepts, and the extra fields
/// the op has (two numbers for `A/M/T`, a second name for `L/R`, nothing
/// otherwise). Torn, garbage or forged lines, and the original's broken
/// `L` records with an empty name, give None.
pub fn parse_line(line: &str) -> Option<Record> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut cols = line.splitn(3, ' ');
    let ts_col = cols.next()?;
    if ts_col.is_empty() || !ts_col.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let timestamp = ts_col.parse().ok()?;
    let op = match cols.next()?.as_bytes() {
        [letter] if b"CDUAMTLRcduamtlr".contains(letter) => char::from(*letter),
        _ => return None,
    };
    let rest = cols.next()?;
    let (filename, extra) = match rest.split_once(' ') {
        // The writer never ends a record with a space: such a line is
        // not one it wrote.
        Some((_, "")) => return None,
        Some((f, e)) => (f, e),
        None => (rest, ""),
    };
    if !is_record_name(filename) {
        return None;
    }
    let number = |t: &str| {
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && t.parse::<u64>().is_ok()
    };
    let extra_ok = match op.to_ascii_uppercase() {
        'A' | 'M' | 'T' => extra
            .split_once(' ')
            .is_some_and(|(a, b)| number(a) && number(b)),
        'L' | 'R' => is_record_name(extra),
        _ => extra.is_empty(),
    };
    if !extra_ok {
        return None;
    }
    Some(Record {
        timestamp,
        op,
        filename: filename.to_string(),
        extra: extra.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAME: &str = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
    const OTHER: &str = "M00/00/3A/fwAAAWVT8QCELb7vAAAAADf5ba8456.log";

    #[test]
    fn forged_torn_and_garbage_lines_are_rejected() {
        assert!(parse_line(&format!("1700000000 C {NAME}\n")).is_some());
        assert!(parse_line(&format!("1700000000 C {NAME}-m\n")).is_some());
        assert!(parse_line(&format!("1700000000 A {OTHER} 10 5\n")).is_some());
        assert!(parse_line(&format!("1700000000 r {NAME} {OTHER}\n")).is_some());
        for bad in [
            // The record SYNC_DELETE "x" of the issue-#10 injection.
            "1700000001 D x".to_string(),
            format!("1700000000 C {}", &NAME[..30]),
            format!("1700000000 C {NAME} trailing"),
            // Fuzz finding (fuzz/regressions/binlog_line/trailing_space).
            format!("1700000000 C {NAME} "),
            format!("1700000000 D {NAME} \n"),
            format!("1700000000 C {NAME}\r"),
            format!("1700000000 X {NAME}"),
            format!("1700000000 CC {NAME}"),
            format!("-5 C {NAME}"),
            format!("+5 C {NAME}"),
            format!(" C {NAME}"),
            format!("1700000000 A {OTHER} 10"),
            format!("1700000000 A {OTHER} 10 -5"),
            format!("1700000000 T {OTHER} 10 5 7"),
            format!("1700000000 R {NAME}"),
            format!("1700000000 R {NAME} x"),
            format!("1700000000 C M00/00/00/{}", "\u{e9}".repeat(20)),
            "\u{0}\u{0}\u{0}".to_string(),
        ] {
            assert_eq!(parse_line(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refuses_to_write_a_second_line() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        assert!(b
            .append(1, op::CREATE, &format!("{NAME}\n1700000001 D x"), "")
            .is_err());
        assert!(b.append(1, op::APPEND, NAME, "1\n2 3").is_err());
        assert!(b.append(1, op::CREATE, "", "").is_err());
        assert_eq!(std::fs::read(dir.path().join("binlog.000")).unwrap(), b"");
    }

    #[test]
    fn appends_lines_in_original_format() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        b.append(1_700_000_000, op::CREATE, "M00/00/00/x.txt", "")
            .unwrap();
        b.append(1_700_000_100, op::APPEND, "M00/00/3A/y.log", "1024 512")
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("binlog.000")).unwrap();
        assert_eq!(
            text,
            "1700000000 C M00/00/00/x.txt\n1700000100 A M00/00/3A/y.log 1024 512\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("binlog_index.dat")).unwrap(),
            "current_write=0\ncurrent_compress=0\n"
        );
        let r = parse_line(&format!("1700000300 R {NAME} {OTHER}")).unwrap();
        assert_eq!(
            (r.op, r.filename.as_str(), r.extra.as_str()),
            ('R', NAME, OTHER)
        );
        assert!(parse_line("1795624008 L  M00/00/00/real.jpg").is_none());
        assert!(parse_line("1795624008 l ").is_none());
        assert_eq!(op_letter(&format!("1700000000 D {NAME}\n")), Some('D'));
        assert_eq!(op_letter(&format!("1700000000 C {NAME}")), Some('C'));
        assert_eq!(op_letter("1700000000 DD x"), None);
        assert_eq!(op_letter("1700000000"), None);
    }

    /// A crash in the middle of a record leaves a line without its newline:
    /// the next start cuts it, and the next record is a line of its own.
    #[test]
    fn a_torn_last_line_is_cut_on_open_and_never_glued_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binlog.000");
        let whole = format!("1700000000 C {NAME}\n");
        std::fs::write(&path, format!("{whole}1700000001 C {}", &OTHER[..20])).unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        b.append(1_700_000_002, op::CREATE, OTHER, "").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{whole}1700000002 C {OTHER}\n"));
        assert!(text.lines().all(|l| parse_line(l).is_some()), "{text}");
        drop(b);
        // Only garbage, no newline at all: all of it goes.
        std::fs::write(&path, "17000").unwrap();
        Binlog::open(dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    /// A record whose file could not be placed (its name was taken) is cut
    /// off again; readers bounded by the position never see it, and the
    /// next record starts where it did.
    #[test]
    fn a_record_whose_file_is_not_placed_is_cut_off_again() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        b.append_placing(1, op::CREATE, NAME, "", || Ok(()))
            .unwrap();
        let after_one = b.position();
        let mut seen_during = None;
        let taken = b.append_placing(2, op::CREATE, OTHER, "", || {
            // The record is with the kernel before the file is linked.
            seen_during = Some(std::fs::read_to_string(dir.path().join("binlog.000")).unwrap());
            Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
        });
        assert!(
            matches!(taken, Err(Placing::Place(e)) if e.kind() == std::io::ErrorKind::AlreadyExists)
        );
        assert!(seen_during.unwrap().ends_with(&format!("2 C {OTHER}\n")));
        assert_eq!(b.position(), after_one);
        b.append(3, op::DELETE, NAME, "").unwrap();
        let text = std::fs::read_to_string(dir.path().join("binlog.000")).unwrap();
        assert_eq!(text, format!("1 C {NAME}\n3 D {NAME}\n"));
        // A record refused before writing never runs `place`.
        let mut ran = false;
        let refused = b.append_placing(4, op::CREATE, "two words", "", || {
            ran = true;
            Ok(())
        });
        assert!(matches!(refused, Err(Placing::Binlog(_))) && !ran);
    }

    /// A batch of records is one write: all of them, or none when one is
    /// refused.
    #[test]
    fn a_batch_of_records_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        b.append_many(&[(1, op::CREATE, NAME), (2, op::CREATE, OTHER)])
            .unwrap();
        let before = b.position();
        assert!(b
            .append_many(&[(3, op::CREATE, NAME), (4, op::CREATE, "two words")])
            .is_err());
        assert_eq!(b.position(), before);
        b.append_many(&[]).unwrap();
        let text = std::fs::read_to_string(dir.path().join("binlog.000")).unwrap();
        assert_eq!(text, format!("1 C {NAME}\n2 C {OTHER}\n"));
        assert_eq!(b.position(), (0, text.len() as u64));
    }

    /// Lines another writer appended (a test, an operator) are neither cut
    /// off with a failed record nor left past the written position.
    #[test]
    fn lines_appended_by_another_writer_stay_and_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binlog.000");
        let b = Binlog::open(dir.path()).unwrap();
        b.append(1, op::CREATE, NAME, "").unwrap();
        let other = format!("2 D {NAME}\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(other.as_bytes()).unwrap();
        let taken = b.append_placing(3, op::CREATE, OTHER, "", || {
            Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
        });
        assert!(taken.is_err());
        let kept = format!("1 C {NAME}\n{other}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), kept);
        b.append(4, op::CREATE, OTHER, "").unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(b.position(), (0, len));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = parse_line(&s);
        }

        #[test]
        fn parse_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(r) = parse_line(&String::from_utf8_lossy(&b)) {
                prop_assert!(is_record_name(&r.filename));
            }
        }

        #[test]
        fn roundtrip(ts in 0i64..4_000_000_000, name in "M[0-9A-F]{2}/[0-9A-F]{2}/[0-9A-F]{2}/[A-Za-z0-9_-]{27}[0-9]{3}\\.[a-z]{3}", extra in "([0-9]{1,5} [0-9]{1,5})?") {
            let op = if extra.is_empty() { 'C' } else { 'A' };
            let line = if extra.is_empty() { format!("{ts} C {name}\n") } else { format!("{ts} A {name} {extra}\n") };
            let r = parse_line(&line).unwrap();
            prop_assert_eq!(r, Record { timestamp: ts, op, filename: name, extra });
        }
    }
}
