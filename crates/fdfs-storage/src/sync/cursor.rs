//! The sync worker's reader over our `binlog.NNN` files: from a mark
//! position, line by line, bounded in memory, moving on to the next
//! binlog once one is finished, and telling whole lines from torn ones.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

use fdfs_client::ClientError;

use crate::binlog::{parse_line, Record};

/// Longest binlog line the reader takes in: our longest record (a rename,
/// two names of at most 152 bytes) is far shorter, so a longer line is
/// garbage and is skipped whole without being held in memory.
const MAX_BINLOG_LINE_BYTES: usize = 1024;
/// Binlog lines read per trip to the blocking pool.
const LINES_PER_READ: usize = 256;

/// Sequential reader over `binlog.NNN` files from a mark position. It is
/// driven from the blocking pool ([`read_batch`]).
pub(super) struct Cursor {
    dir: PathBuf,
    pub(super) index: u32,
    /// Start of the next line to read in binlog `index`.
    pub(super) offset: u64,
    reader: Option<BufReader<std::fs::File>>,
}

/// One line read from a binlog.
pub(super) struct Line {
    /// The line (lossy UTF-8), cut at [`MAX_BINLOG_LINE_BYTES`].
    pub(super) text: String,
    /// False for a line too long, or cut off at the end of a finished
    /// binlog (a crash mid-write): garbage either way.
    pub(super) whole: bool,
    /// Binlog of the line, and where the line after it starts: the mark
    /// position once the line is dealt with.
    pub(super) index: u32,
    pub(super) next_offset: u64,
}

impl Line {
    pub(super) fn record(&self) -> Option<Record> {
        self.whole.then(|| parse_line(&self.text)).flatten()
    }
}

/// Reads through the next `\n` (or to the end of the data), keeping at most
/// `max` bytes. Returns the kept bytes, the bytes consumed and whether a
/// `\n` ended the line.
fn read_bounded_line(
    reader: &mut impl BufRead,
    max: usize,
) -> std::io::Result<(Vec<u8>, u64, bool)> {
    let mut kept = Vec::new();
    let mut consumed = 0u64;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((kept, consumed, false));
        }
        let (take, ended) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take);
        consumed += take as u64;
        if ended {
            return Ok((kept, consumed, true));
        }
    }
}

impl Cursor {
    /// A reader of the binlogs in `dir` from binlog `index`, byte `offset`.
    pub(super) fn at(dir: PathBuf, index: u32, offset: u64) -> Self {
        Cursor {
            dir,
            index,
            offset,
            reader: None,
        }
    }

    fn open(&mut self) -> std::io::Result<()> {
        let mut f = std::fs::File::open(self.dir.join(format!("binlog.{:03}", self.index)))?;
        f.seek(SeekFrom::Start(self.offset))?;
        self.reader = Some(BufReader::new(f));
        Ok(())
    }

    /// Up to `max` lines from the read position; empty at the end for now.
    /// `written` is [`crate::binlog::Binlog::position`]: the binlog being
    /// written is read up to there only, past it a record's file may not be
    /// in place yet.
    fn read_lines(&mut self, written: (u32, u64), max: usize) -> std::io::Result<Vec<Line>> {
        let current_write_index = written.0;
        let mut out = Vec::new();
        while out.len() < max {
            if self.index == written.0 && self.offset >= written.1 {
                // What follows may be cut off again: never keep it buffered.
                self.reader = None;
                break;
            }
            if self.reader.is_none() {
                match self.open() {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e),
                }
            }
            let Some(reader) = self.reader.as_mut() else {
                break;
            };
            let (bytes, consumed, ended) = read_bounded_line(reader, MAX_BINLOG_LINE_BYTES)?;
            // Nothing is written to a binlog once a newer one exists, so an
            // unterminated last line there is torn for good.
            let finished = self.index < current_write_index;
            if consumed > 0 && (ended || finished) {
                self.offset += consumed;
                out.push(Line {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    whole: ended && consumed as usize <= MAX_BINLOG_LINE_BYTES,
                    index: self.index,
                    next_offset: self.offset,
                });
                continue;
            }
            // The end of the file, or a line still being written: come back
            // later from the same offset.
            self.reader = None;
            if consumed == 0 && finished {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            break;
        }
        Ok(out)
    }
}

/// [`Cursor::read_lines`] on the blocking pool.
pub(super) async fn read_batch(
    mut cursor: Cursor,
    written: (u32, u64),
) -> Result<(Cursor, Vec<Line>), ClientError> {
    tokio::task::spawn_blocking(move || {
        let lines = cursor.read_lines(written, LINES_PER_READ);
        lines.map(|l| (cursor, l))
    })
    .await
    .map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))?
    .map_err(ClientError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_passes_junk_on_as_lines_and_moves_past_torn_binlogs() {
        const GOOD: &str = "1700000000 C M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt\n";
        let dir = tempfile::tempdir().unwrap();
        let old = [
            GOOD.as_bytes(),
            b"garbage\n",
            b"1700000001 C \xff\xfe\n",
            &[b'A'; MAX_BINLOG_LINE_BYTES + 1],
            b"\n",
            // A crash cut this one; binlog.001 was started since.
            b"1700000002 C M00/00/00/torn",
        ]
        .concat();
        std::fs::write(dir.path().join("binlog.000"), &old).unwrap();
        let new = format!("{GOOD}1700000003 C M00/00/00/still-being-wr");
        std::fs::write(dir.path().join("binlog.001"), &new).unwrap();
        let mut cursor = Cursor {
            dir: dir.path().to_path_buf(),
            index: 0,
            offset: 0,
            reader: None,
        };
        let lines = cursor.read_lines((1, u64::MAX), 100).unwrap();
        let seen: Vec<(bool, bool, u32, u64)> = lines
            .iter()
            .map(|l| (l.record().is_some(), l.whole, l.index, l.next_offset))
            .collect();
        let g = GOOD.len() as u64;
        let long = g + 8 + 16 + MAX_BINLOG_LINE_BYTES as u64 + 2;
        assert_eq!(
            seen,
            [
                (true, true, 0, g),
                (false, true, 0, g + 8),
                (false, true, 0, g + 8 + 16),
                (false, false, 0, long),
                (false, false, 0, old.len() as u64),
                (true, true, 1, g),
            ]
        );
        assert!(lines[3].text.len() <= MAX_BINLOG_LINE_BYTES);
        // The unfinished line of the binlog being written waits for its end.
        assert_eq!((cursor.index, cursor.offset), (1, g));
        assert!(cursor.read_lines((1, u64::MAX), 100).unwrap().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("binlog.001"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"ite\n").unwrap();
        let rest = cursor.read_lines((1, u64::MAX), 100).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].text, "1700000003 C M00/00/00/still-being-write\n");
        assert!(rest[0].whole);
    }

    /// A record past the binlog's written position (its file not linked
    /// yet, or about to be cut off again) is not read until the position
    /// moves past it, and nothing of it stays buffered.
    #[test]
    fn the_binlog_being_written_is_read_up_to_its_written_position_only() {
        const ONE: &str = "1700000000 C M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt\n";
        const CUT: &str = "1700000001 C M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8124.txt\n";
        const TWO: &str = "1700000002 C M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8125.txt\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binlog.000");
        std::fs::write(&path, format!("{ONE}{CUT}")).unwrap();
        let mut cursor = Cursor::at(dir.path().to_path_buf(), 0, 0);
        let one = ONE.len() as u64;
        let lines = cursor.read_lines((0, one), 100).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, ONE);
        assert!(cursor.read_lines((0, one), 100).unwrap().is_empty());
        // The placing failed: the record is cut off and another takes its
        // place.
        std::fs::write(&path, format!("{ONE}{TWO}")).unwrap();
        let end = (ONE.len() + TWO.len()) as u64;
        let lines = cursor.read_lines((0, end), 100).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, TWO);
        assert_eq!((cursor.index, cursor.offset), (0, end));
    }
}
