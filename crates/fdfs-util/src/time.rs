//! Wall-clock time as the protocol and the data files count it.

/// Current unix time in seconds (0 before 1970, saturating far after).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
