//! Target `binlog_line`: the storage binlog reader
//! (`fdfs_storage::binlog::parse_line`). An accepted line must be exactly
//! what the writer produces for its record (apart from leading zeros of
//! the timestamp, which the original's reader also accepts), and its names
//! must re-parse to themselves. The trunk binlog has its own target,
//! `trunk_binlog_line`.

use fdfs_storage::binlog::parse_line;

/// Store path count the names are checked against (any `Mxx`).
const ANY_STORE_PATH: usize = 256;

pub fn binlog_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Some(rec) = parse_line(line) else {
        return;
    };
    let body = line.strip_suffix('\n').unwrap_or(line);
    assert!(!body.contains('\n'), "a record spans lines: {line:?}");
    let (ts_col, rest) = body.split_once(' ').expect("accepted line has columns");
    assert_eq!(ts_col.parse::<i64>().ok(), Some(rec.timestamp));
    let written = if rec.extra.is_empty() {
        format!("{} {}", rec.op, rec.filename)
    } else {
        format!("{} {} {}", rec.op, rec.filename, rec.extra)
    };
    assert_eq!(
        rest, written,
        "accepted line differs from what the writer writes"
    );
    assert_eq!(
        parse_line(&format!("{} {written}\n", rec.timestamp)),
        Some(rec.clone())
    );
    crate::names::assert_name_reparses(&rec.filename, ANY_STORE_PATH);
    if matches!(rec.op.to_ascii_uppercase(), 'L' | 'R') {
        crate::names::assert_name_reparses(&rec.extra, ANY_STORE_PATH);
    }
}
