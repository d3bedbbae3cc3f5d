//! FETCH_ONE_PATH_BINLOG (26, PROTOCOL.md §5.6): a peer rebuilding a store
//! path asks for the records that name files on it. The answer streams
//! (header `pkg_len` 2^58, "until close") the create, link and rename
//! records of that path from every binlog file, renames rewritten as
//! creates of the new name, then an 8-byte count of the text bytes sent,
//! then the connection closes.

use std::io::BufRead;
use std::path::PathBuf;

use fdfs_proto::{Header, GROUP_NAME_MAX_LEN};

use super::{blocking, check_group, read_small_body};
use crate::binlog::{parse_line, Record};
use crate::error::{OpError, OpResult};
use crate::session::{Reply, Session};

/// `pkg_len` of an answer whose length is not known in advance.
pub const STREAM_UNTIL_CLOSE_LEN: i64 = 1 << 58;
/// Text handed to the socket at once: bounds memory whatever the binlog size.
const STREAM_CHUNK_BYTES: usize = 256 * 1024;

/// The line a recovering peer gets for `rec`, or None when the record does
/// not create a file on store path `path_index` (deletes, appends, …: the
/// recovering side downloads the file as it is now).
pub fn recovery_line(rec: &Record, path_index: u8) -> Option<String> {
    let prefix = format!("M{path_index:02X}/");
    if !rec.filename.starts_with(&prefix) {
        return None;
    }
    match rec.op {
        'C' | 'c' => Some(format!("{} {} {}\n", rec.timestamp, rec.op, rec.filename)),
        'L' | 'l' => Some(format!(
            "{} {} {} {}\n",
            rec.timestamp, rec.op, rec.filename, rec.extra
        )),
        // The new name holds the content now: a create of it.
        'R' => Some(format!("{} C {}\n", rec.timestamp, rec.filename)),
        'r' => Some(format!("{} c {}\n", rec.timestamp, rec.filename)),
        _ => None,
    }
}

/// Reads up to [`STREAM_CHUNK_BYTES`] of recovery lines from `reader`;
/// an empty chunk means the file is done.
fn next_chunk(reader: &mut impl BufRead, path_index: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = String::new();
    while out.len() < STREAM_CHUNK_BYTES {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // A torn last line has no newline yet: it is not a record.
        if !line.ends_with('\n') {
            break;
        }
        if let Some(text) = parse_line(&line).and_then(|r| recovery_line(&r, path_index)) {
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

pub async fn fetch_one_path_binlog(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    if body.len() != GROUP_NAME_MAX_LEN + 1 {
        return Err(OpError::invalid(format!(
            "FETCH_ONE_PATH_BINLOG body of {} bytes",
            body.len()
        )));
    }
    let group = fdfs_proto::wire::fixed_str(&body[..GROUP_NAME_MAX_LEN]);
    check_group(&s.storage, &group)?;
    let path_index = body[GROUP_NAME_MAX_LEN];
    if usize::from(path_index) >= s.storage.paths.len() {
        return Err(OpError::invalid(format!(
            "store path index {path_index} out of range"
        )));
    }
    let current = s.storage.binlog.current_path();
    let dir = current.parent().map(PathBuf::from).unwrap_or_default();
    // The binlog being written is read up to its written position: past
    // it a record's file may not be linked yet.
    let (written_index, written_len) = s.storage.binlog.position();
    let files: Vec<(PathBuf, u64)> = (0..=written_index)
        .map(|i| {
            let limit = if i == written_index {
                written_len
            } else {
                u64::MAX
            };
            (dir.join(format!("binlog.{i:03}")), limit)
        })
        .collect();
    let header = Header {
        pkg_len: STREAM_UNTIL_CLOSE_LEN,
        cmd: fdfs_proto::CMD_RESP,
        status: 0,
    };
    if s.write_all(&header.to_bytes()).await.is_err() {
        return Ok(Reply::Abort);
    }
    let mut text_bytes: u64 = 0;
    for (path, limit) in files {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let mut reader = Some(std::io::BufReader::new(std::io::Read::take(file, limit)));
        loop {
            let Some(mut r) = reader.take() else { break };
            let (r, chunk) = blocking(move || {
                let chunk = next_chunk(&mut r, path_index);
                Ok((r, chunk))
            })
            .await?;
            if chunk.is_empty() {
                break;
            }
            if s.write_all(&chunk).await.is_err() {
                return Ok(Reply::Abort);
            }
            text_bytes += chunk.len() as u64;
            reader = Some(r);
        }
    }
    let _ = s.write_all(&text_bytes.to_be_bytes()).await;
    s.sent_len = fdfs_proto::HEADER_LEN as u64 + text_bytes + 8;
    // The answer's end is the connection's end, as in the original.
    Ok(Reply::Abort)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "M01/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
    const OLD: &str = "M01/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8124.txt";

    #[test]
    fn only_creating_records_of_the_asked_path_are_sent_renames_as_creates() {
        let line = |l: &str| recovery_line(&parse_line(l).unwrap(), 1);
        assert_eq!(
            line(&format!("7 C {NAME}\n")),
            Some(format!("7 C {NAME}\n"))
        );
        assert_eq!(
            line(&format!("7 c {NAME}-m\n")),
            Some(format!("7 c {NAME}-m\n"))
        );
        assert_eq!(
            line(&format!("7 R {NAME} {OLD}\n")),
            Some(format!("7 C {NAME}\n"))
        );
        assert_eq!(line(&format!("7 D {NAME}\n")), None);
        assert_eq!(line(&format!("7 A {NAME} 1 2\n")), None);
        let other_path = parse_line(&format!("7 C {NAME}\n")).unwrap();
        assert_eq!(recovery_line(&other_path, 0), None);
    }
}
