//! Target `trunk_binlog_line`: the trunk binlog reader
//! (`fdfs_proto::trunk_binlog`). An accepted line must be exactly what the
//! writer writes for its record, the record must survive write-then-read,
//! its slot must lie within the 32-bit offset range, and reading the input
//! as a whole binlog must consume only whole lines and account for each.

use fdfs_proto::trunk_binlog::{parse_lines, slot_end, TrunkRecord, MAX_LINE_BYTES};

pub fn trunk_binlog_line(data: &[u8]) {
    if let Some(rec) = std::str::from_utf8(data).ok().and_then(TrunkRecord::parse) {
        let written = rec.to_line();
        let body = std::str::from_utf8(data).expect("checked above");
        assert_eq!(
            body.strip_suffix('\n').unwrap_or(body),
            written.trim_end_matches('\n'),
            "accepted line differs from what the writer writes"
        );
        assert!(written.len() <= MAX_LINE_BYTES, "{written:?}");
        assert_eq!(TrunkRecord::parse(&written), Some(rec));
        assert!(
            rec.slot.size > 0 && slot_end(&rec.slot) <= 1 << 31,
            "{rec:?}"
        );
    }
    let (records, refused, consumed) = parse_lines(data);
    assert!(consumed <= data.len());
    assert!(consumed == 0 || data[consumed - 1] == b'\n');
    assert!(!data[consumed..].contains(&b'\n'), "a whole line was left");
    let lines = data[..consumed].iter().filter(|b| **b == b'\n').count();
    assert_eq!(records.len() + refused, lines);
    let rewritten: String = records.iter().map(TrunkRecord::to_line).collect();
    assert_eq!(
        parse_lines(rewritten.as_bytes()),
        (records, 0, rewritten.len())
    );
}
