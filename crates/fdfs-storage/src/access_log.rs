//! `logs/storage_access.log` in the original's format, one line per client
//! request (users extract download URLs from it):
//!
//! ```text
//! [YYYY-MM-DD HH:MM:SS.mmm] <client ip> <action> <filename> <status> <time used> <req len> <resp len>
//! ```
//!
//! The timestamp is local time at the start of the request; `time used` is
//! in ms, or in us with `time_precision = us` (whose fraction, like the
//! original's, is printed with at least 3 digits). Lines go to a writer
//! thread ([`LogFile`]), which rotates the file as `[access-log]` says.

use std::path::Path;
use std::time::{Duration, SystemTime};

use fdfs_util::logfile::{LogFile, Rotation, Sink};

use fdfs_proto::StorageCmd;

/// File name below `<base_path>/logs`.
pub const ACCESS_LOG_FILE: &str = "storage_access.log";
/// Longest filename field; the original cuts longer names.
const MAX_LOGGED_NAME_CHARS: usize = 131;

pub struct AccessLog {
    out: LogFile,
    micros: bool,
}

/// The action word the original logs for a command, or None when the
/// command is not logged (active test, sync and trunk commands...).
pub fn action(cmd: StorageCmd) -> Option<&'static str> {
    Some(match cmd {
        StorageCmd::UploadFile | StorageCmd::UploadAppenderFile | StorageCmd::UploadSlaveFile => {
            "upload"
        }
        StorageCmd::DownloadFile => "download",
        StorageCmd::DeleteFile => "delete",
        StorageCmd::SetMetadata => "set_metadata",
        StorageCmd::GetMetadata => "get_metadata",
        StorageCmd::QueryFileInfo => "status",
        StorageCmd::AppendFile => "append",
        StorageCmd::ModifyFile => "modify",
        StorageCmd::TruncateFile => "truncate",
        StorageCmd::RegenerateAppenderFilename => "rename",
        _ => return None,
    })
}

/// One request to log.
pub struct Entry<'a> {
    pub started: SystemTime,
    pub elapsed: Duration,
    pub client_ip: &'a str,
    pub action: &'a str,
    pub filename: &'a str,
    pub status: u8,
    pub req_len: u64,
    pub resp_len: u64,
}

impl AccessLog {
    /// Opens the log for appending, not rotated until [`Self::set_rotation`];
    /// a new or empty file starts with the column header line.
    pub fn open(logs_dir: &Path, precision: &str) -> std::io::Result<AccessLog> {
        let micros = matches!(precision, "us" | "microsecond");
        let header: fdfs_util::logfile::HeaderFn = Box::new(move || {
            let unit = if micros { "us" } else { "ms" };
            format!(
                "{} client_ip action filename status time_used_{unit} req_len resp_len\n",
                stamp(micros, SystemTime::now())
            )
        });
        let out = LogFile::open(Sink::File {
            path: logs_dir.join(ACCESS_LOG_FILE),
            rotation: Rotation::default(),
            header: Some(header),
        })?;
        Ok(AccessLog { out, micros })
    }

    /// Applies the `[access-log]` rotation settings.
    pub fn set_rotation(&self, rotation: Rotation) {
        self.out.set_rotation(rotation);
    }

    fn stamp(&self, at: SystemTime) -> String {
        stamp(self.micros, at)
    }

    fn write(&self, line: String) {
        self.out.write_line(line.into_bytes());
    }

    pub fn record(&self, e: &Entry<'_>) {
        let used = if self.micros {
            e.elapsed.as_micros()
        } else {
            e.elapsed.as_millis()
        };
        let name: String = e.filename.chars().take(MAX_LOGGED_NAME_CHARS).collect();
        // The name is set before it is validated: keep one line per request
        // and one field per name whatever the peer sent.
        let name = if name.is_empty() {
            "-".to_string()
        } else {
            fdfs_proto::fileid::escape_for_log(&name).into_owned()
        };
        let line = format!(
            "{} {} {} {} {} {} {} {}\n",
            self.stamp(e.started),
            e.client_ip,
            e.action,
            name,
            e.status,
            used,
            e.req_len,
            e.resp_len
        );
        self.write(line);
    }

    /// Waits until the lines recorded so far are in the file. Blocking.
    pub fn flush(&self) {
        self.out.flush();
    }
}

fn stamp(micros: bool, at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let date = fdfs_util::localtime::format_datetime(since.as_secs() as i64);
    if micros {
        format!("[{date}.{:03}]", since.subsec_micros())
    } else {
        format!("[{date}.{:03}]", since.subsec_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_line_format() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path(), "ms").unwrap();
        let started = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_621_145_007);
        log.record(&Entry {
            started,
            elapsed: Duration::from_micros(1_999),
            client_ip: "127.0.0.1",
            action: "upload",
            filename: "M00/00/00/x.bin",
            status: 0,
            req_len: 12370,
            resp_len: 70,
        });
        log.record(&Entry {
            started,
            elapsed: Duration::ZERO,
            client_ip: "127.0.0.1",
            action: "download",
            filename: "",
            status: 22,
            req_len: 42,
            resp_len: 42,
        });
        log.flush();
        let text = std::fs::read_to_string(dir.path().join(ACCESS_LOG_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("] client_ip action filename status time_used_ms req_len resp_len")
        );
        assert!(
            lines[1].ends_with(".007] 127.0.0.1 upload M00/00/00/x.bin 0 1 12370 70"),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with("] 127.0.0.1 download - 22 0 42 42"));
        // Reopening a non-empty file adds no second header.
        drop(log);
        let log = AccessLog::open(dir.path(), "us").unwrap();
        log.flush();
        let text = std::fs::read_to_string(dir.path().join(ACCESS_LOG_FILE)).unwrap();
        assert_eq!(text.matches("client_ip action").count(), 1);
    }

    #[test]
    fn peer_names_cannot_forge_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path(), "ms").unwrap();
        log.record(&Entry {
            started: SystemTime::UNIX_EPOCH,
            elapsed: Duration::ZERO,
            client_ip: "127.0.0.1",
            action: "download",
            filename: "M00/00/00/a b\n[2025-01-01 00:00:00.000] 10.0.0.1 delete x 0 0 0 0",
            status: 22,
            req_len: 1,
            resp_len: 1,
        });
        log.flush();
        let text = std::fs::read_to_string(dir.path().join(ACCESS_LOG_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[1].split(' ').count(), 9, "{}", lines[1]);
        assert!(lines[1].contains(" download M00/00/00/a\\x20b\\x0a[2025-01-01\\x20"));
    }

    #[test]
    fn micro_fraction_has_at_least_three_digits() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path(), "us").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_000_008_937);
        assert!(log.stamp(at).ends_with(".8937]"));
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_000_000_042);
        assert!(log.stamp(at).ends_with(".042]"));
    }
}
