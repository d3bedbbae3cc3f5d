//! HTTP dates in unix seconds, through the `httpdate` crate: IMF-fixdate
//! out, and in also the two obsolete forms (RFC 850, asctime) that RFC 9110
//! §5.6.7 requires a recipient to accept in `If-Modified-Since`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats unix seconds as an IMF-fixdate (times before 1970 as 1970).
pub fn format(secs: i64) -> String {
    text(secs).to_string()
}

/// [`format`] without a `String`, for writing into a head.
pub fn text(secs: i64) -> httpdate::HttpDate {
    let secs = u64::try_from(secs).unwrap_or(0);
    httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Parses any of the three HTTP date forms into unix seconds.
pub fn parse(text: &str) -> Option<i64> {
    let t: SystemTime = httpdate::parse_http_date(text.trim()).ok()?;
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn obsolete_forms_are_accepted() {
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
    }

    #[test]
    fn roundtrip() {
        for s in [
            0i64,
            951_782_400,
            1_709_164_800,
            4_102_444_799,
            1_795_621_145,
        ] {
            assert_eq!(parse(&format(s)), Some(s), "{}", format(s));
        }
    }
}
