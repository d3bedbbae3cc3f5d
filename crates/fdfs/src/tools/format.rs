//! Text formats the classic tools print: human sizes and durations the way
//! libfastcommon renders them, local-time datetimes, errno texts.

/// `bytes_to_human_str`: below 1 KiB `"<n>  B"` (two spaces); otherwise
/// the largest unit below which the value lies, with one decimal while the
/// rounded value is under 10 (`9.9 GB`) and none from there on (`10 GB`,
/// `1024 KB`).
pub fn bytes_to_human(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1024 {
        return format!("{bytes}  B");
    }
    let mut unit_index = 0;
    while unit_index + 1 < UNITS.len() && bytes >> (10 * (unit_index + 2)) != 0 {
        unit_index += 1;
    }
    let scaled = bytes as f64 / (1u64 << (10 * (unit_index + 1))) as f64;
    let one_decimal = format!("{scaled:.1}");
    if one_decimal.parse::<f64>().is_ok_and(|v| v < 10.0) {
        format!("{one_decimal} {}", UNITS[unit_index])
    } else {
        format!("{scaled:.0} {}", UNITS[unit_index])
    }
}

/// `FDFS_MB_TO_HUMAN_STR`: a size given in MB.
pub fn mb_to_human(mb: i64) -> String {
    bytes_to_human(mb.saturating_mul(1024 * 1024))
}

/// `seconds_to_human_str`: `1 day 2 hours 1 minute 5 seconds`, zero parts
/// left out, singular for 0 and 1; negative or zero → `0 second`.
pub fn seconds_to_human(seconds: i64) -> String {
    if seconds <= 0 {
        return "0 second".to_string();
    }
    let parts = [
        (seconds / 86_400, "day"),
        (seconds % 86_400 / 3600, "hour"),
        (seconds % 3600 / 60, "minute"),
        (seconds % 60, "second"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n > 1 { "s" } else { "" }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `%Y-%m-%d %H:%M:%S` in the process's local time zone (TZ honoured), as
/// the C tools' `formatDatetime`.
pub fn local_datetime(ts: i64) -> String {
    match crate::tools::localtime::local_tm(ts) {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        None => String::new(),
    }
}

/// What the protocol's errno table says for a number it has no text for.
const TABLE_FALLBACK: &str = "Unknown error";

/// glibc's `strerror` text for an errno, from the protocol's table rather
/// than the host libc: a static musl build would otherwise print musl's
/// words ("Operation timed out" where the C tools say "Connection timed
/// out"). Numbers without a text read as glibc words them,
/// `Unknown error N`.
pub fn errno_text(errno: i32) -> String {
    match u8::try_from(errno).map(fdfs_proto::status::strerror) {
        Ok(text) if text != TABLE_FALLBACK => text.to_string(),
        _ => format!("{TABLE_FALLBACK} {errno}"),
    }
}

/// `error no: N, error info: TEXT`.
pub fn errno_line(errno: i32) -> String {
    format!("error no: {errno}, error info: {}", errno_text(errno))
}

/// A logger-style line as the C tools write to stderr:
/// `[YYYY-mm-dd HH:MM:SS] ERROR - message`.
pub fn log_error(msg: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    eprintln!("[{}] ERROR - {msg}", local_datetime(now));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values were produced by libfastcommon 1.0.86's
    /// `bytes_to_human_str` / `seconds_to_human_str`.
    #[test]
    fn human_sizes_match_libfastcommon() {
        let cases: &[(i64, &str)] = &[
            (0, "0  B"),
            (1023, "1023  B"),
            (-5, "-5  B"),
            (1024, "1.0 KB"),
            (1536, "1.5 KB"),
            (10188, "9.9 KB"),
            (10189, "10 KB"),
            (10239, "10 KB"),
            (102_400, "100 KB"),
            (1_048_575, "1024 KB"),
            (1_048_576, "1.0 MB"),
            (1_072_693_248, "1023 MB"),
            (2_684_354_560, "2.5 GB"),
            (270_552_530_944, "252 GB"),
            (10_683_731_148, "9.9 GB"),
            (10_683_731_149, "10 GB"),
            (1 << 40, "1.0 TB"),
            (1 << 50, "1.0 PB"),
            (1 << 60, "1.0 EB"),
            (1 << 62, "4.0 EB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(bytes_to_human(*bytes), *want, "{bytes}");
        }
        assert_eq!(mb_to_human(258_019), "252 GB");
    }

    #[test]
    fn durations_match_libfastcommon() {
        let cases: &[(i64, &str)] = &[
            (-5, "0 second"),
            (0, "0 second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "1 minute"),
            (61, "1 minute 1 second"),
            (3661, "1 hour 1 minute 1 second"),
            (86_400, "1 day"),
            (172_801, "2 days 1 second"),
            (180_122, "2 days 2 hours 2 minutes 2 seconds"),
        ];
        for (s, want) in cases {
            assert_eq!(seconds_to_human(*s), *want, "{s}");
        }
    }

    /// glibc 2.36's exact words, whatever libc runs the test: every errno
    /// of PROTOCOL §1.4, what `ClientError::errno` maps I/O errors to, and
    /// the OS errors a local file or a connect can fail with.
    #[test]
    fn errno_texts_are_glibc() {
        let cases: &[(i32, &str)] = &[
            (0, "Success"),
            (1, "Operation not permitted"),
            (2, "No such file or directory"),
            (4, "Interrupted system call"),
            (5, "Input/output error"),
            (9, "Bad file descriptor"),
            (11, "Resource temporarily unavailable"),
            (12, "Cannot allocate memory"),
            (13, "Permission denied"),
            (14, "Bad address"),
            (16, "Device or resource busy"),
            (17, "File exists"),
            (20, "Not a directory"),
            (21, "Is a directory"),
            (22, "Invalid argument"),
            (23, "Too many open files in system"),
            (24, "Too many open files"),
            (28, "No space left on device"),
            (30, "Read-only file system"),
            (32, "Broken pipe"),
            (36, "File name too long"),
            (39, "Directory not empty"),
            (40, "Too many levels of symbolic links"),
            (61, "No data available"),
            (64, "Machine is not on the network"),
            (95, "Operation not supported"),
            (99, "Cannot assign requested address"),
            (100, "Network is down"),
            (101, "Network is unreachable"),
            (103, "Software caused connection abort"),
            (104, "Connection reset by peer"),
            (107, "Transport endpoint is not connected"),
            (110, "Connection timed out"),
            (111, "Connection refused"),
            (112, "Host is down"),
            (113, "No route to host"),
            (114, "Operation already in progress"),
            (115, "Operation now in progress"),
            (122, "Disk quota exceeded"),
            (125, "Operation canceled"),
            (133, "Memory page has hardware error"),
            (41, "Unknown error 41"),
            (58, "Unknown error 58"),
            (134, "Unknown error 134"),
            (255, "Unknown error 255"),
            (256, "Unknown error 256"),
            (-1, "Unknown error -1"),
        ];
        for (errno, want) in cases {
            assert_eq!(errno_text(*errno), *want, "errno {errno}");
        }
        assert_eq!(errno_line(22), "error no: 22, error info: Invalid argument");
    }
}
