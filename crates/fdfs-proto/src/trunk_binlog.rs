//! Trunk binlog lines (`data/trunk/binlog`, PROTOCOL.md §11.5), sans IO:
//! one line per change of a group's free trunk space, also what
//! TRUNK_SYNC_BINLOG (30) pushes. Slots are [`TrunkLocation`]s of
//! [`crate::trunk`], which also reads `storage_trunk.dat`.
//!
//! ```text
//! <timestamp> <A|D> <store_path_index> <sub_path_high> <sub_path_low> <trunk_id> <offset> <size>\n
//! ```
//!
//! `A` (ADD_SPACE) puts a slot into the free pool (a delete, a new trunk
//! file), `D` (DEL_SPACE) takes one out (an allocation). Every column is a
//! plain decimal number. The reader accepts exactly what the writer
//! writes (no sign, no leading zero, single spaces), so a torn or garbled
//! line is refused whole instead of freeing or taking a wrong slot.

use crate::trunk::TrunkLocation;

/// Most store paths a storage has (`store_path_count`, two hex digits).
pub const STORE_PATH_INDEX_LIMIT: u32 = 256;
/// Sub-directory numbers are below `subdir_count_per_path` (at most 256).
pub const SUBDIR_LIMIT: u32 = 256;
/// Longest line the writer produces: eight columns, the widest numbers.
pub const MAX_LINE_BYTES: usize = 19 + 1 + 3 * 3 + 10 * 3 + 7 + 1;

/// What a trunk binlog line does to the free pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrunkOp {
    /// `A`: the slot is free.
    AddSpace,
    /// `D`: the slot is in use.
    DelSpace,
}

impl TrunkOp {
    pub fn letter(self) -> char {
        match self {
            TrunkOp::AddSpace => 'A',
            TrunkOp::DelSpace => 'D',
        }
    }

    fn from_letter(col: &str) -> Option<TrunkOp> {
        match col {
            "A" => Some(TrunkOp::AddSpace),
            "D" => Some(TrunkOp::DelSpace),
            _ => None,
        }
    }
}

/// First byte after a slot.
pub fn slot_end(slot: &TrunkLocation) -> u64 {
    u64::from(slot.offset) + u64::from(slot.size)
}

/// One trunk binlog record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrunkRecord {
    pub timestamp: i64,
    pub op: TrunkOp,
    /// The slot; its size (header included) is never 0.
    pub slot: TrunkLocation,
}

/// A plain decimal number below `limit`: digits only, no sign, no leading
/// zero (what the writer writes).
fn number(col: &str, limit: u64) -> Option<u64> {
    let canonical = !col.is_empty()
        && col.len() <= 19
        && col.bytes().all(|b| b.is_ascii_digit())
        && (col == "0" || !col.starts_with('0'));
    let value: u64 = canonical.then(|| col.parse().ok()).flatten()?;
    (value < limit).then_some(value)
}

/// Appends `n` in decimal, as `{}` would.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // One append, not one per digit.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// Largest value of the original's 32-bit signed columns, plus one.
const INT32_LIMIT: u64 = 1 << 31;

impl TrunkRecord {
    /// The line the writer writes, `\n` included.
    pub fn to_line(&self) -> String {
        let mut line = String::with_capacity(MAX_LINE_BYTES);
        self.write_line(&mut line);
        line
    }

    /// Appends [`Self::to_line`]'s text to `out`. Every trunk upload writes
    /// two or three of these lines, where `fmt` machinery and a `String`
    /// per line cost 3% of the storage's CPU.
    pub fn write_line(&self, out: &mut String) {
        let s = &self.slot;
        if self.timestamp < 0 {
            out.push('-');
        }
        push_decimal(out, self.timestamp.unsigned_abs());
        out.push(' ');
        out.push(self.op.letter());
        for n in [
            u64::from(s.store_path_index),
            u64::from(s.sub_path_high),
            u64::from(s.sub_path_low),
            u64::from(s.trunk_file_id),
            u64::from(s.offset),
            u64::from(s.size),
        ] {
            out.push(' ');
            push_decimal(out, n);
        }
        out.push('\n');
    }

    /// Parses one line, with or without its `\n`. None for anything the
    /// writer would not have written: a wrong column count, an unknown
    /// op, a number out of its range or not in canonical form, a slot of
    /// size 0 or one that ends past the 32-bit offset range.
    pub fn parse(line: &str) -> Option<TrunkRecord> {
        let body = line.strip_suffix('\n').unwrap_or(line);
        let cols: Vec<&str> = body.split(' ').collect();
        let [ts, op, path, high, low, id, offset, size] = cols[..] else {
            return None;
        };
        let slot = TrunkLocation {
            store_path_index: number(path, u64::from(STORE_PATH_INDEX_LIMIT))? as u8,
            sub_path_high: number(high, u64::from(SUBDIR_LIMIT))? as u8,
            sub_path_low: number(low, u64::from(SUBDIR_LIMIT))? as u8,
            trunk_file_id: number(id, INT32_LIMIT)? as u32,
            offset: number(offset, INT32_LIMIT)? as u32,
            size: number(size, INT32_LIMIT)? as u32,
        };
        if slot.size == 0 || slot_end(&slot) > INT32_LIMIT {
            return None;
        }
        Some(TrunkRecord {
            timestamp: number(ts, 1 << 63)? as i64,
            op: TrunkOp::from_letter(op)?,
            slot,
        })
    }
}

/// Reads a whole trunk binlog (or a chunk of one): the records of its whole
/// lines, and how many lines were refused. An unterminated last line is
/// not a record yet (a write in progress or torn by a crash) and is left
/// out; the byte count returned is where the next read starts.
pub fn parse_lines(text: &[u8]) -> (Vec<TrunkRecord>, usize, usize) {
    let mut records = Vec::new();
    let mut refused = 0;
    let mut consumed = 0;
    for line in text.split_inclusive(|b| *b == b'\n') {
        if line.last() != Some(&b'\n') {
            break;
        }
        consumed += line.len();
        match std::str::from_utf8(line).ok().and_then(TrunkRecord::parse) {
            Some(r) => records.push(r),
            None => refused += 1,
        }
    }
    (records, refused, consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format line of PROTOCOL.md §11.5 filled in: a slot of 1 MiB at
    /// offset 0 of trunk file `data/00/00/000001` of store path 0 entering
    /// the free pool (a new trunk file), then 512 bytes of it allocated.
    #[test]
    fn reads_and_writes_the_documented_format() {
        let add = "1700000000 A 0 0 0 1 0 1048576\n";
        let r = TrunkRecord::parse(add).unwrap();
        assert_eq!(
            r,
            TrunkRecord {
                timestamp: 1_700_000_000,
                op: TrunkOp::AddSpace,
                slot: TrunkLocation {
                    store_path_index: 0,
                    sub_path_high: 0,
                    sub_path_low: 0,
                    trunk_file_id: 1,
                    offset: 0,
                    size: 1_048_576,
                },
            }
        );
        assert_eq!(r.to_line(), add);
        assert_eq!(r.slot.trunk_file_relative_path(), "data/00/00/000001");
        let del = "1700000001 D 1 255 10 2 4096 512";
        let d = TrunkRecord::parse(del).unwrap();
        assert_eq!(d.op, TrunkOp::DelSpace);
        assert_eq!(d.slot.trunk_file_relative_path(), "data/FF/0A/000002");
        assert_eq!(slot_end(&d.slot), 4608);
        assert_eq!(d.to_line(), format!("{del}\n"));
    }

    /// The hand-rolled writer prints what `format!` would, at every width.
    #[test]
    fn the_line_writer_prints_each_column_as_format_would() {
        for (timestamp, n) in [
            (0i64, 0u32),
            (9, 9),
            (10, 10),
            (-1, 99),
            (1_700_000_000, 4_294_967_295),
            (i64::MIN, 1_000_000),
            (i64::MAX, 123_456_789),
        ] {
            let r = TrunkRecord {
                timestamp,
                op: TrunkOp::AddSpace,
                slot: TrunkLocation {
                    store_path_index: (n % 256) as u8,
                    sub_path_high: 255,
                    sub_path_low: 0,
                    trunk_file_id: n,
                    offset: n / 3,
                    size: n,
                },
            };
            let s = &r.slot;
            let expected = format!(
                "{timestamp} A {} 255 0 {n} {} {n}\n",
                s.store_path_index, s.offset
            );
            assert_eq!(r.to_line(), expected);
        }
    }

    #[test]
    fn anything_the_writer_would_not_write_is_refused() {
        for bad in [
            "",
            "\n",
            "1700000000 A 0 0 0 1 0",
            "1700000000 A 0 0 0 1 0 512 9",
            "1700000000 X 0 0 0 1 0 512",
            "1700000000 a 0 0 0 1 0 512",
            "1700000000 AD 0 0 0 1 0 512",
            "1700000000  A 0 0 0 1 0 512",
            "1700000000 A 0 0 0 1 0 512 ",
            "1700000000 A 0 0 0 1 0 512\r",
            "1700000000 A 0 0 0 1 0 512\n\n",
            "-1 A 0 0 0 1 0 512",
            "+5 A 0 0 0 1 0 512",
            "1700000000 A 256 0 0 1 0 512",
            "1700000000 A 0 256 0 1 0 512",
            "1700000000 A 0 0 256 1 0 512",
            "1700000000 A 0 0 0 -1 0 512",
            "1700000000 A 0 0 0 1 0 0",
            "1700000000 A 0 0 0 01 0 512",
            "1700000000 A 0 0 0 1 2147483648 512",
            "1700000000 A 0 0 0 1 2147483647 2",
            "1700000000 A 0 0 0 1 0 1e3",
            "1700000000 A 0 0 0 1 0 ５１２",
            "99999999999999999999 A 0 0 0 1 0 512",
        ] {
            assert_eq!(TrunkRecord::parse(bad), None, "{bad:?}");
        }
        // The widest line the writer makes fits its bound.
        let widest = TrunkRecord {
            timestamp: i64::MAX,
            op: TrunkOp::DelSpace,
            slot: TrunkLocation {
                store_path_index: 255,
                sub_path_high: 255,
                sub_path_low: 255,
                trunk_file_id: i32::MAX as u32,
                offset: 0,
                size: i32::MAX as u32,
            },
        };
        assert!(widest.to_line().len() <= MAX_LINE_BYTES);
        assert_eq!(TrunkRecord::parse(&widest.to_line()), Some(widest));
    }

    #[test]
    fn a_binlog_reads_whole_lines_and_counts_refused_ones() {
        let text = b"1 A 0 0 0 1 0 1048576\ngarbage\n2 D 0 0 0 1 0 512\n3 A 0 0 0 1 0 51";
        let (records, refused, consumed) = parse_lines(text);
        assert_eq!(records.len(), 2);
        assert_eq!(refused, 1);
        assert_eq!(consumed, text.len() - "3 A 0 0 0 1 0 51".len());
        assert_eq!(records[1].slot.size, 512);
    }
}
