//! What to answer for a file whose facts are known: conditional requests
//! (If-None-Match, If-Modified-Since → 304), If-Range, and the Range
//! header (one range → 206, unsatisfiable → 416, several → the whole file
//! with 200). Pure functions, shared by local and proxied files.

use crate::httpdate;

/// What the answer depends on: the same for a local file and for a file
/// described by a remote storage (QUERY_FILE_INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    /// Unix seconds: the name's timestamp for normal files, the file's
    /// mtime for appender and slave files (PROTOCOL §9.3).
    pub last_modified: i64,
}

impl FileFacts {
    /// Strong validator from modification time and size, like nginx's.
    pub fn etag(&self) -> String {
        self.etag_text().to_string()
    }

    /// [`Self::etag`] without a `String`, for writing into a head.
    pub fn etag_text(&self) -> impl std::fmt::Display + '_ {
        EtagText(self)
    }
}

struct EtagText<'a>(&'a FileFacts);

impl std::fmt::Display for EtagText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{:x}-{:x}\"", self.0.last_modified, self.0.size)
    }
}

/// The conditional and range headers of a request, copied out so the
/// decision can run on a blocking thread.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_range: Option<String>,
    pub range: Option<String>,
}

/// The answer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 304.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

impl Plan {
    /// `(offset, length)` of the body bytes.
    pub fn window(&self, size: u64) -> (u64, u64) {
        match *self {
            Plan::Full => (0, size),
            Plan::Partial { start, end } => (start, end - start + 1),
            Plan::NotModified | Plan::Unsatisfiable => (0, 0),
        }
    }
}

/// A parsed Range header against a file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// No Range header, or a unit other than bytes (ignored, RFC 9110).
    Ignore,
    Single {
        start: u64,
        end: u64,
    },
    /// Several ranges: we answer the whole file.
    Multi,
    Unsatisfiable,
}

/// A byte position of a Range header. Positions past `u64::MAX` are still
/// well-formed (RFC 9110 puts no limit on the digits): they saturate, so a
/// huge last position clamps to the end of the file and a huge suffix
/// means the whole file, the same as any other position past the end.
fn parse_pos(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n` (and lists of them). A
/// malformed `bytes=` value is unsatisfiable, as in the module (416).
pub fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeSpec::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeSpec::Ignore;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match specs.as_slice() {
        [] => RangeSpec::Unsatisfiable,
        [one] => parse_one(one, size),
        _ => {
            if specs.iter().all(|s| s.split_once('-').is_some()) {
                RangeSpec::Multi
            } else {
                RangeSpec::Unsatisfiable
            }
        }
    }
}

fn parse_one(spec: &str, size: u64) -> RangeSpec {
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last n bytes.
        return match parse_pos(b) {
            Some(n) if n > 0 && size > 0 => RangeSpec::Single {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            _ => RangeSpec::Unsatisfiable,
        };
    }
    let Some(start) = parse_pos(a) else {
        return RangeSpec::Unsatisfiable;
    };
    let end = if b.is_empty() {
        None
    } else {
        match parse_pos(b) {
            Some(e) => Some(e),
            None => return RangeSpec::Unsatisfiable,
        }
    };
    if start >= size || end.is_some_and(|e| e < start) {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Single {
        start,
        end: end.map_or(size - 1, |e| e.min(size - 1)),
    }
}

/// Weak comparison of an If-None-Match list against our tag.
fn etag_listed(list: &str, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

/// Decides the answer (RFC 9110 §13.2.2 order: If-None-Match, then
/// If-Modified-Since; If-Range gates Range). `multi_range_enabled = false`
/// turns several ranges into 416, as `http.multi_range.enabled` does.
pub fn decide(facts: &FileFacts, c: &Conditions, multi_range_enabled: bool) -> Plan {
    if let Some(inm) = &c.if_none_match {
        if etag_listed(inm, &facts.etag()) {
            return Plan::NotModified;
        }
    } else if let Some(ims) = &c.if_modified_since {
        let lm = httpdate::format(facts.last_modified);
        let not_modified = match httpdate::parse(ims) {
            Some(t) => facts.last_modified <= t,
            None => ims.trim() == lm,
        };
        if not_modified {
            return Plan::NotModified;
        }
    }
    let Some(range) = &c.range else {
        return Plan::Full;
    };
    if let Some(ir) = &c.if_range {
        let ir = ir.trim();
        let fresh = if ir.starts_with('"') {
            ir == facts.etag()
        } else {
            httpdate::parse(ir) == Some(facts.last_modified)
        };
        if !fresh {
            return Plan::Full;
        }
    }
    match parse_range(range, facts.size) {
        RangeSpec::Ignore => Plan::Full,
        RangeSpec::Single { start, end } => Plan::Partial { start, end },
        RangeSpec::Multi if multi_range_enabled => Plan::Full,
        RangeSpec::Multi | RangeSpec::Unsatisfiable => Plan::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(v: &str, size: u64) -> RangeSpec {
        parse_range(v, size)
    }

    #[test]
    fn ranges_against_a_14_byte_file() {
        let s = |start, end| RangeSpec::Single { start, end };
        assert_eq!(single("bytes=2-5", 14), s(2, 5));
        assert_eq!(single("bytes=-5", 14), s(9, 13));
        assert_eq!(single("bytes=5-", 14), s(5, 13));
        assert_eq!(single("bytes=10-100", 14), s(10, 13));
        assert_eq!(single("bytes=-20", 14), s(0, 13));
        assert_eq!(single("bytes=0-0", 14), s(0, 0));
        assert_eq!(single("bytes= 1-2 ", 14), s(1, 2));
        for bad in [
            "bytes=14-",
            "bytes=20-",
            "bytes=5-3",
            "bytes=abc",
            "bytes=-0",
            "bytes=",
            "bytes=1-x",
            "x",
        ] {
            assert_eq!(single(bad, 14), RangeSpec::Unsatisfiable, "{bad}");
        }
        assert_eq!(single("bytes=-1", 0), RangeSpec::Unsatisfiable);
        assert_eq!(single("bytes=1-2,4-5", 14), RangeSpec::Multi);
        assert_eq!(single("items=1-2", 14), RangeSpec::Ignore);
    }

    #[test]
    fn positions_past_u64_are_clamped_like_any_position_past_the_end() {
        let s = |start, end| RangeSpec::Single { start, end };
        // RFC 9110 §14.1.2: a last position at or past the end means "to
        // the end"; a suffix longer than the file means the whole file.
        assert_eq!(single("bytes=0-999999999999999999999", 14), s(0, 13));
        assert_eq!(single("bytes=3-18446744073709551615", 14), s(3, 13));
        assert_eq!(single("bytes=-99999999999999999999999", 14), s(0, 13));
        assert_eq!(single("bytes=-18446744073709551615", 14), s(0, 13));
        // A first position past the end stays unsatisfiable, however long.
        assert_eq!(
            single("bytes=99999999999999999999999-", 14),
            RangeSpec::Unsatisfiable
        );
    }

    #[test]
    fn decisions() {
        let f = FileFacts {
            size: 14,
            last_modified: 1_700_000_000,
        };
        let lm = httpdate::format(f.last_modified);
        let none = Conditions::default();
        assert_eq!(decide(&f, &none, true), Plan::Full);
        let c =
            |inm: Option<&str>, ims: Option<&str>, ir: Option<&str>, r: Option<&str>| Conditions {
                if_none_match: inm.map(String::from),
                if_modified_since: ims.map(String::from),
                if_range: ir.map(String::from),
                range: r.map(String::from),
            };
        let etag = f.etag();
        assert_eq!(
            decide(&f, &c(Some(&etag), None, None, None), true),
            Plan::NotModified
        );
        assert_eq!(
            decide(&f, &c(Some("\"x\", *"), None, None, None), true),
            Plan::NotModified
        );
        assert_eq!(
            decide(&f, &c(Some("\"x\""), Some(&lm), None, None), true),
            Plan::Full
        );
        assert_eq!(
            decide(&f, &c(None, Some(&lm), None, None), true),
            Plan::NotModified
        );
        let later = httpdate::format(f.last_modified + 10);
        let earlier = httpdate::format(f.last_modified - 10);
        assert_eq!(
            decide(&f, &c(None, Some(&later), None, None), true),
            Plan::NotModified
        );
        assert_eq!(
            decide(&f, &c(None, Some(&earlier), None, None), true),
            Plan::Full
        );
        assert_eq!(
            decide(&f, &c(None, None, None, Some("bytes=1-2")), true),
            Plan::Partial { start: 1, end: 2 }
        );
        assert_eq!(
            decide(&f, &c(None, None, Some(&etag), Some("bytes=1-2")), true),
            Plan::Partial { start: 1, end: 2 }
        );
        assert_eq!(
            decide(&f, &c(None, None, Some("\"old\""), Some("bytes=1-2")), true),
            Plan::Full
        );
        assert_eq!(
            decide(&f, &c(None, None, Some(&lm), Some("bytes=1-2")), true),
            Plan::Partial { start: 1, end: 2 }
        );
        assert_eq!(
            decide(&f, &c(None, None, None, Some("bytes=1-2,5-6")), true),
            Plan::Full
        );
        assert_eq!(
            decide(&f, &c(None, None, None, Some("bytes=1-2,5-6")), false),
            Plan::Unsatisfiable
        );
        assert_eq!(
            decide(&f, &c(None, None, None, Some("bytes=99-")), true),
            Plan::Unsatisfiable
        );
        assert_eq!(Plan::Partial { start: 2, end: 5 }.window(14), (2, 4));
        assert_eq!(Plan::Full.window(14), (0, 14));
    }
}
