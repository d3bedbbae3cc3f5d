//! Local-time conversion through libc, so output follows `TZ` and the
//! system zone database exactly as the C tools' `localtime` does.

/// Broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTm {
    pub year: i32,
    pub month: i32,
    pub day: i32,
    pub hour: i32,
    pub minute: i32,
    pub second: i32,
}

/// Converts unix seconds to local time; None if libc cannot represent it.
#[allow(unsafe_code)]
// time_t is i64 here but 32 bits on some targets: keep the checked conversion.
#[allow(clippy::useless_conversion)]
pub fn local_tm(ts: i64) -> Option<LocalTm> {
    // musl deprecates the alias while it moves to 64 bits; the checked
    // conversion is right either way.
    #[allow(deprecated)]
    let t: libc::time_t = ts.try_into().ok()?;
    // SAFETY: `localtime_r` reads `t` and writes only into `tm`, a
    // zero-initialised plain C struct we own; it is the reentrant variant,
    // so no shared static buffer is involved. A null return means failure.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(LocalTm {
        year: tm.tm_year + 1900,
        month: tm.tm_mon + 1,
        day: tm.tm_mday,
        hour: tm.tm_hour,
        minute: tm.tm_min,
        second: tm.tm_sec,
    })
}

/// `YYYY-MM-DD HH:MM:SS` in local time, as the C tools print times.
pub fn format_datetime(ts: i64) -> String {
    match local_tm(ts) {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_a_valid_date() {
        // Whatever the test machine's zone, the epoch lands on 1969-12-31 or
        // 1970-01-01.
        let t = local_tm(0).unwrap();
        assert!(t.year == 1970 || t.year == 1969);
        assert!((0..24).contains(&t.hour));
    }
}
