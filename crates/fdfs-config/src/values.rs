//! Value parsers for the dialect (PROTOCOL.md §10.1, §11.4): booleans,
//! atoi-like integers, byte sizes (`256KB`), reserved space (`20%`/`1G`),
//! times of day, tracker addresses and group names.
//!
//! Parsers return a bare [`ValueError`] message; the typed confs wrap it with
//! file, line and key.

use std::fmt;
use std::str::FromStr;

/// A value that does not parse; the message quotes the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err<T>(msg: String) -> Result<T, ValueError> {
    Err(ValueError(msg))
}

/// One mebibyte; reserved space is kept in MB like the original.
pub const ONE_MB_BYTES: u64 = 1 << 20;
/// Reserved space when `reserved_storage_space` is absent.
pub const DEFAULT_RESERVED_MB: u64 = 1024;
/// Port assumed for a `tracker_server` written without one.
pub const DEFAULT_TRACKER_PORT: u16 = 22122;
/// Longest group name (the wire field is 16 bytes + NUL in the C structs).
pub const MAX_GROUP_NAME_LEN: usize = 16;

/// `true`, `yes`, `on` (any case) or exactly `1` are true; anything else is false.
pub fn parse_bool(s: &str) -> bool {
    let s = s.trim();
    s == "1"
        || s.eq_ignore_ascii_case("true")
        || s.eq_ignore_ascii_case("yes")
        || s.eq_ignore_ascii_case("on")
}

/// Reads a leading decimal integer like `strtol`: optional leading
/// whitespace and sign, at least one digit. Returns the value and the
/// unparsed rest, or `None` when there are no digits.
fn leading_int(s: &str) -> Option<(Result<i64, ()>, &str)> {
    let t = s.trim_start();
    let bytes = t.as_bytes();
    let (neg, start) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut end = start;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end == start {
        return None;
    }
    // Accumulate towards the sign so i64::MIN parses without overflow.
    let mut value: i64 = 0;
    let mut overflow = false;
    for &d in &bytes[start..end] {
        let digit = i64::from(d - b'0');
        let next = value.checked_mul(10).and_then(|v| {
            if neg {
                v.checked_sub(digit)
            } else {
                v.checked_add(digit)
            }
        });
        match next {
            Some(v) => value = v,
            None => {
                overflow = true;
                break;
            }
        }
    }
    let result = if overflow { Err(()) } else { Ok(value) };
    Some((result, &t[end..]))
}

/// atoi-like integer: the leading number counts and the rest is ignored
/// (`22122 # x` is 22122), but text with no leading number at all (`abc`) is
/// an error rather than the C library's silent 0.
pub fn parse_int(s: &str) -> Result<i64, ValueError> {
    match leading_int(s) {
        None => err(format!("invalid integer `{s}`")),
        Some((Err(()), _)) => err(format!("integer `{s}` out of range")),
        Some((Ok(v), _)) => Ok(v),
    }
}

/// Byte size: an integer, optional spaces, then an optional unit letter
/// `K`/`M`/`G`/`T` (any case, powers of 1024); anything after the letter is
/// ignored (`256KB`). No unit means bytes. Negative sizes and unknown units
/// are errors.
pub fn parse_byte_size(s: &str) -> Result<u64, ValueError> {
    let (value, rest) = match leading_int(s) {
        None => return err(format!("invalid byte size `{s}`")),
        Some((Err(()), _)) => return err(format!("byte size `{s}` out of range")),
        Some((Ok(v), rest)) => (v, rest),
    };
    if value < 0 {
        return err(format!("negative byte size `{s}`"));
    }
    let value = value.unsigned_abs();
    let rest = rest.trim_start();
    let multiplier: u64 = match rest.chars().next() {
        None => 1,
        Some('K' | 'k') => 1 << 10,
        Some('M' | 'm') => 1 << 20,
        Some('G' | 'g') => 1 << 30,
        Some('T' | 't') => 1 << 40,
        Some(_) => {
            return err(format!(
                "unknown unit in byte size `{s}` (use K, M, G or T)"
            ))
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| ValueError(format!("byte size `{s}` out of range")))
}

/// `HH:MM` or `HH:MM:SS` (hour 0–23, minute and second 0–59), read like
/// `sscanf("%d:%d:%d")`: trailing text after the numbers is ignored. Returns
/// `(hour, minute)`; seconds are validated and dropped, as the original keeps
/// only hour and minute.
pub fn parse_time_of_day(s: &str) -> Result<(u8, u8), ValueError> {
    let bad = || ValueError(format!("invalid time `{s}`, expected HH:MM"));
    let (hour, rest) = match leading_int(s) {
        Some((Ok(h), rest)) => (h, rest),
        _ => return Err(bad()),
    };
    let rest = rest.strip_prefix(':').ok_or_else(bad)?;
    let (minute, rest) = match leading_int(rest) {
        Some((Ok(m), rest)) => (m, rest),
        _ => return Err(bad()),
    };
    let second = match rest.strip_prefix(':').and_then(leading_int) {
        Some((Ok(sec), _)) => sec,
        Some((Err(()), _)) => return Err(bad()),
        None => 0,
    };
    if !(0..=23).contains(&hour) || !(0..=59).contains(&minute) || !(0..=59).contains(&second) {
        return err(format!(
            "time `{s}` out of range (hour 0-23, minute and second 0-59)"
        ));
    }
    // Ranges checked above, so the narrowing cannot truncate.
    Ok((hour as u8, minute as u8))
}

/// Space a storage must keep free (`reserved_storage_space`, §11.4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReservedSpace {
    /// Absolute amount in MB.
    Megabytes(u64),
    /// Fraction of the total, strictly between 0 and 1 (`20%` is 0.20).
    Ratio(f64),
}

impl Default for ReservedSpace {
    fn default() -> Self {
        ReservedSpace::Megabytes(DEFAULT_RESERVED_MB)
    }
}

impl ReservedSpace {
    /// The reservation in MB for a disk (or group) of `total_mb`: the MB
    /// value, or `total_mb × ratio` rounded down. This is what list
    /// responses report as `reserved_mb`.
    pub fn reserved_mb(&self, total_mb: u64) -> u64 {
        match *self {
            ReservedSpace::Megabytes(mb) => mb,
            ReservedSpace::Ratio(r) => (total_mb as f64 * r) as u64,
        }
    }

    /// Group check on the tracker: MB → `free_mb > reserved`; ratio →
    /// `free/total > ratio` (false when total is 0).
    pub fn group_has_room(&self, free_mb: u64, total_mb: u64) -> bool {
        match *self {
            ReservedSpace::Megabytes(mb) => free_mb > mb,
            ReservedSpace::Ratio(r) => total_mb > 0 && (free_mb as f64 / total_mb as f64) > r,
        }
    }

    /// Per store path check: MB → `free_mb > reserved / store_path_count`
    /// (the reservation is spread over the paths); ratio →
    /// `free/total > ratio` (false when total is 0).
    pub fn path_has_room(&self, free_mb: u64, total_mb: u64, store_path_count: usize) -> bool {
        match *self {
            ReservedSpace::Megabytes(mb) => {
                let paths = store_path_count.max(1) as u64;
                free_mb > mb / paths
            }
            ReservedSpace::Ratio(r) => total_mb > 0 && (free_mb as f64 / total_mb as f64) > r,
        }
    }

    /// Rendering used by PARAMETER_REQ (§2.13): `1024MB` or `20.00%`.
    pub fn to_param_string(&self) -> String {
        match *self {
            ReservedSpace::Megabytes(mb) => format!("{mb}MB"),
            ReservedSpace::Ratio(r) => format!("{:.2}%", r * 100.0),
        }
    }
}

/// `NN%` / `NN.NN%` (0 < x < 100) is a ratio; anything else is a byte size
/// (plain number = bytes) converted to MB, rounded down.
pub fn parse_reserved_space(s: &str) -> Result<ReservedSpace, ValueError> {
    let t = s.trim();
    if t.is_empty() {
        return err("empty reserved space".to_string());
    }
    if let Some(num) = t.strip_suffix('%') {
        let x: f64 = num
            .trim_start()
            .parse()
            .map_err(|_| ValueError(format!("invalid ratio `{s}`")))?;
        // `!(a && b)` also rejects NaN.
        if !(x > 0.0 && x < 100.0) {
            return err(format!("ratio `{s}` must be > 0% and < 100%"));
        }
        return Ok(ReservedSpace::Ratio(x / 100.0));
    }
    Ok(ReservedSpace::Megabytes(parse_byte_size(t)? / ONE_MB_BYTES))
}

/// `[A-Za-z0-9]{1,16}`: the only group names the original accepts.
pub fn is_valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_GROUP_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A `tracker_server` value: one host or two (inner, outer) sharing a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackerAddr {
    /// One or two host names / IP literals (IPv6 without brackets).
    pub hosts: Vec<String>,
    pub port: u16,
}

/// Splits `host[,host2][:port]` or `[h1,h2][:port]` into hosts and port
/// text. Shared with storage_ids.conf, which uses the same host syntax.
pub(crate) fn split_hosts_port(s: &str) -> Result<(Vec<String>, Option<&str>), ValueError> {
    let t = s.trim();
    let (hosts_part, port_part) = if let Some(rest) = t.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| ValueError(format!("missing `]` in `{s}`")))?;
        let after = rest[close + 1..].trim_start();
        let port = if after.is_empty() {
            None
        } else if let Some(p) = after.strip_prefix(':') {
            Some(p)
        } else {
            return err(format!("expected `:port` after `]` in `{s}`"));
        };
        (&rest[..close], port)
    } else {
        match t.matches(':').count() {
            0 => (t, None),
            1 => {
                let (h, p) = t.split_once(':').unwrap_or((t, ""));
                (h, Some(p))
            }
            _ => {
                return err(format!(
                    "IPv6 addresses must be bracketed, e.g. `[::1]:22122`, got `{s}`"
                ))
            }
        }
    };
    let hosts: Vec<String> = hosts_part
        .split(',')
        .map(|h| h.trim().to_string())
        .collect();
    if hosts.len() > 2 {
        return err(format!("at most two addresses allowed in `{s}`"));
    }
    if hosts
        .iter()
        // A bracket inside a host (`[[a]`) would not survive being
        // written back out: no host name or address has one.
        .any(|h| h.is_empty() || h.contains(|c: char| c.is_whitespace() || c == '[' || c == ']'))
    {
        return err(format!("invalid host in `{s}`"));
    }
    Ok((hosts, port_part))
}

/// Port text after `:`, atoi-like; must be 1..=65535.
pub(crate) fn parse_port(p: &str, whole: &str) -> Result<u16, ValueError> {
    let v = parse_int(p).map_err(|_| ValueError(format!("invalid port in `{whole}`")))?;
    u16::try_from(v)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| ValueError(format!("port out of range in `{whole}`")))
}

impl FromStr for TrackerAddr {
    type Err = ValueError;

    /// `host[,host2]:port` or `[v6,v6]:port`; a missing port means 22122.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hosts, port) = split_hosts_port(s)?;
        let port = match port {
            None => DEFAULT_TRACKER_PORT,
            Some(p) => parse_port(p, s)?,
        };
        Ok(TrackerAddr { hosts, port })
    }
}

impl fmt::Display for TrackerAddr {
    /// `host:port` of the first host; an IPv6 host is bracketed so the text
    /// can be handed to a socket-address parser.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.hosts.first().map(String::as_str).unwrap_or("");
        if host.contains(':') {
            write!(f, "[{host}]:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "Yes", "on", "ON", "1", " true "] {
            assert!(parse_bool(t), "{t}");
        }
        for f in [
            "false", "no", "off", "0", "", "2", "enabled", "11", "true # x",
        ] {
            assert!(!parse_bool(f), "{f}");
        }
    }

    #[test]
    fn integers_are_atoi_like_but_reject_non_numbers() {
        assert_eq!(parse_int("22122"), Ok(22122));
        assert_eq!(parse_int("22122 # x"), Ok(22122));
        assert_eq!(parse_int("  -5abc"), Ok(-5));
        assert_eq!(parse_int("+7"), Ok(7));
        assert!(parse_int("abc")
            .unwrap_err()
            .0
            .contains("invalid integer `abc`"));
        assert!(parse_int("").is_err());
        assert!(parse_int("-").is_err());
        assert!(parse_int("99999999999999999999").is_err());
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("256KB"), Ok(256 * 1024));
        assert_eq!(parse_byte_size("256 KB"), Ok(256 * 1024));
        assert_eq!(parse_byte_size("64k"), Ok(64 * 1024));
        assert_eq!(parse_byte_size("1G"), Ok(1 << 30));
        assert_eq!(parse_byte_size("20g"), Ok(20 << 30));
        assert_eq!(parse_byte_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_byte_size("2T"), Ok(2 << 40));
        assert_eq!(parse_byte_size("1024"), Ok(1024));
        assert_eq!(parse_byte_size("0"), Ok(0));
        assert!(parse_byte_size("-1K").is_err());
        assert!(parse_byte_size("abc").is_err());
        assert!(parse_byte_size("").is_err());
        assert!(parse_byte_size("10X").is_err());
        assert!(parse_byte_size("10 # x").is_err());
        assert!(parse_byte_size("99999999999T").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_of_day("00:00"), Ok((0, 0)));
        assert_eq!(parse_time_of_day("23:59"), Ok((23, 59)));
        assert_eq!(parse_time_of_day("2:5"), Ok((2, 5)));
        assert_eq!(parse_time_of_day("01:30:45"), Ok((1, 30)));
        assert!(parse_time_of_day("24:00").is_err());
        assert!(parse_time_of_day("12:60").is_err());
        assert!(parse_time_of_day("12:00:60").is_err());
        assert!(parse_time_of_day("12").is_err());
        assert!(parse_time_of_day("ab:cd").is_err());
        assert!(parse_time_of_day("-1:00").is_err());
    }

    #[test]
    fn reserved_space_percentages_and_sizes() {
        assert_eq!(parse_reserved_space("20%"), Ok(ReservedSpace::Ratio(0.20)));
        match parse_reserved_space("10.5%").unwrap() {
            ReservedSpace::Ratio(r) => assert!((r - 0.105).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_reserved_space("1024MB"),
            Ok(ReservedSpace::Megabytes(1024))
        );
        assert_eq!(
            parse_reserved_space("1G"),
            Ok(ReservedSpace::Megabytes(1024))
        );
        assert_eq!(
            parse_reserved_space("1048576"),
            Ok(ReservedSpace::Megabytes(1))
        );
        assert_eq!(
            parse_reserved_space("1048575"),
            Ok(ReservedSpace::Megabytes(0))
        );
        assert_eq!(
            parse_reserved_space("1536K"),
            Ok(ReservedSpace::Megabytes(1))
        );
        for bad in ["0%", "100%", "-5%", "abc%", "%", "", "nan%", "20 %", "x"] {
            assert!(parse_reserved_space(bad).is_err(), "{bad}");
        }
        assert_eq!(ReservedSpace::default(), ReservedSpace::Megabytes(1024));
    }

    #[test]
    fn reserved_space_rendering_and_checks() {
        assert_eq!(ReservedSpace::Ratio(0.20).to_param_string(), "20.00%");
        assert_eq!(ReservedSpace::Ratio(0.105).to_param_string(), "10.50%");
        assert_eq!(ReservedSpace::Megabytes(1024).to_param_string(), "1024MB");

        let mb = ReservedSpace::Megabytes(1000);
        assert_eq!(mb.reserved_mb(5000), 1000);
        assert!(mb.path_has_room(501, 9999, 2));
        assert!(!mb.path_has_room(500, 9999, 2));
        assert!(mb.path_has_room(1001, 9999, 0));
        assert!(mb.group_has_room(1001, 0));
        assert!(!mb.group_has_room(1000, 0));

        let ratio = ReservedSpace::Ratio(0.20);
        assert_eq!(ratio.reserved_mb(1000), 200);
        assert!(ratio.path_has_room(201, 1000, 4));
        assert!(!ratio.path_has_room(200, 1000, 4));
        assert!(!ratio.path_has_room(0, 0, 1));
        assert!(!ratio.group_has_room(10, 0));
    }

    #[test]
    fn tracker_addrs() {
        let a: TrackerAddr = "127.0.0.1:22122".parse().unwrap();
        assert_eq!(a.hosts, ["127.0.0.1"]);
        assert_eq!(a.port, 22122);
        assert_eq!(a.to_string(), "127.0.0.1:22122");

        let a: TrackerAddr = "192.168.2.100,122.244.141.46:22122".parse().unwrap();
        assert_eq!(a.hosts, ["192.168.2.100", "122.244.141.46"]);
        assert_eq!(a.to_string(), "192.168.2.100:22122");

        let a: TrackerAddr = "[2409:8a20::1,fe80::1]:22123".parse().unwrap();
        assert_eq!(a.hosts, ["2409:8a20::1", "fe80::1"]);
        assert_eq!(a.port, 22123);
        assert_eq!(a.to_string(), "[2409:8a20::1]:22123");

        let a: TrackerAddr = "tracker.local".parse().unwrap();
        assert_eq!(a.port, DEFAULT_TRACKER_PORT);

        for bad in [
            "::1:22122",
            "h:abc",
            "h:0",
            "h:70000",
            "a,b,c:1",
            ":1",
            "[::1",
            "[::1]x",
            "a, :1",
        ] {
            assert!(bad.parse::<TrackerAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn group_names() {
        assert!(is_valid_group_name("group1"));
        assert!(is_valid_group_name("G"));
        assert!(is_valid_group_name("abcdefghijklmnop"));
        assert!(!is_valid_group_name("abcdefghijklmnopq"));
        assert!(!is_valid_group_name(""));
        assert!(!is_valid_group_name("group-1"));
        assert!(!is_valid_group_name("grüp"));
    }

    proptest! {
        #[test]
        fn parse_byte_size_never_panics(s in "\\PC*") {
            let _ = parse_byte_size(&s);
            let _ = parse_reserved_space(&s);
            let _ = parse_time_of_day(&s);
            let _ = parse_int(&s);
            let _ = s.parse::<TrackerAddr>();
        }

        #[test]
        fn byte_size_round_trips_with_units(n in 0u64..1_000_000, unit in 0usize..5) {
            let (suffix, mult) = [("", 1u64), ("K", 1 << 10), ("m", 1 << 20), ("G", 1 << 30), ("t", 1 << 40)][unit];
            prop_assert_eq!(parse_byte_size(&format!("{n}{suffix}")), Ok(n * mult));
        }
    }
}
