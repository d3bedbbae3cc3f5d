//! Building responses: file answers (200/206/304/416 with Content-Length,
//! Accept-Ranges, ETag, Last-Modified, Content-Type, Content-Disposition),
//! redirects and plain status pages.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::body::GatewayBody;
use crate::conf::{CheckFailFile, GatewayConf};
use crate::error::Reject;
use crate::httpdate;
use crate::plan::{FileFacts, Plan};

pub type Resp = Response<GatewayBody>;

/// Longest `filename=` value used (the module truncates at about 256 bytes).
pub const MAX_DISPOSITION_NAME_BYTES: usize = 200;

/// A status page: the reason phrase as text/plain (no body for HEAD).
pub fn status_page(status: StatusCode, head: bool) -> Resp {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut r = Response::new(if head {
        GatewayBody::empty()
    } else {
        GatewayBody::full(text.clone())
    });
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    r
}

/// A page of the gateway's extra routes (/metrics, ...).
pub fn page(a: fdfs_util::metrics::Answer, head: bool) -> Resp {
    let len = a.body.len();
    let mut r = Response::new(if head {
        GatewayBody::empty()
    } else {
        GatewayBody::full(a.body)
    });
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

pub fn reject(e: &Reject, head: bool) -> Resp {
    status_page(e.status, head)
}

/// 405 with `Allow`.
pub fn method_not_allowed() -> Resp {
    let mut r = status_page(StatusCode::METHOD_NOT_ALLOWED, false);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

/// 302 to `location` with an empty body (the module sends a chunked
/// header and no body at all, quirk 33).
pub fn redirect(location: &str, range: Option<&HeaderValue>) -> Result<Resp, Reject> {
    let loc = HeaderValue::from_str(location)
        .map_err(|_| Reject::internal(format!("unusable redirect location {location:?}")))?;
    let mut r = Response::new(GatewayBody::empty());
    *r.status_mut() = StatusCode::FOUND;
    let h = r.headers_mut();
    h.insert(header::LOCATION, loc);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    if let Some(range) = range {
        h.insert(header::RANGE, range.clone());
    }
    Ok(r)
}

fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// `attachment; filename="..."`, plus `filename*=UTF-8''...` (RFC 6266 /
/// RFC 5987) when the name is not plain printable ASCII.
pub fn content_disposition(name: &str) -> Option<HeaderValue> {
    let mut end = name.len().min(MAX_DISPOSITION_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = &name[..end];
    if name.is_empty() {
        return None;
    }
    let plain = name
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    let text = if plain {
        format!("attachment; filename=\"{name}\"")
    } else {
        let fallback: String = name
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut encoded = String::with_capacity(name.len() * 3);
        for b in name.bytes() {
            if is_attr_char(b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&text).ok()
}

/// Content type for a file name: the mime table, else the default.
pub fn content_type<'a>(conf: &'a GatewayConf, file_name: &str) -> &'a str {
    let t = conf
        .mime
        .lookup(file_name)
        .unwrap_or(&conf.default_content_type);
    if is_header_text(t.as_bytes()) {
        t
    } else {
        "application/octet-stream"
    }
}

/// What `HeaderValue::from_str` accepts: any byte but the controls other
/// than tab, and DEL.
fn is_header_text(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Where a file answer's headers go: hyper's `HeaderMap`, or the bytes of
/// the fast path's head, written as hyper writes them (no map and no
/// allocation per header: building them was 4% of the gateway's CPU).
pub trait HeadSink {
    /// Adds `name: value`; a value `HeaderValue` refuses is left out.
    fn header(&mut self, name: &HeaderName, value: std::fmt::Arguments<'_>);
}

impl HeadSink for HeaderMap {
    fn header(&mut self, name: &HeaderName, value: std::fmt::Arguments<'_>) {
        let text = value
            .as_str()
            .map_or_else(|| std::borrow::Cow::Owned(value.to_string()), Into::into);
        if let Ok(v) = HeaderValue::from_str(&text) {
            self.insert(name.clone(), v);
        }
    }
}

impl HeadSink for Vec<u8> {
    fn header(&mut self, name: &HeaderName, value: std::fmt::Arguments<'_>) {
        let start = self.len();
        self.extend_from_slice(name.as_str().as_bytes());
        self.extend_from_slice(b": ");
        let value_at = self.len();
        if std::io::Write::write_fmt(self, value).is_err() || !is_header_text(&self[value_at..]) {
            self.truncate(start);
            return;
        }
        self.extend_from_slice(b"\r\n");
    }
}

/// The status of a file answer with this plan.
pub fn file_status(plan: Plan) -> StatusCode {
    match plan {
        Plan::NotModified => StatusCode::NOT_MODIFIED,
        Plan::Unsatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        Plan::Full => StatusCode::OK,
        Plan::Partial { .. } => StatusCode::PARTIAL_CONTENT,
    }
}

/// The headers of a file answer with known facts and plan (its status is
/// [`file_status`]), in the order hyper's path has always sent them.
pub fn file_headers(
    conf: &GatewayConf,
    file_name: &str,
    download_name: Option<&str>,
    facts: &FileFacts,
    plan: Plan,
    h: &mut impl HeadSink,
) {
    h.header(
        &header::LAST_MODIFIED,
        format_args!("{}", httpdate::text(facts.last_modified)),
    );
    h.header(&header::ETAG, format_args!("{}", facts.etag_text()));
    h.header(&header::ACCEPT_RANGES, format_args!("bytes"));
    let len = match plan {
        Plan::NotModified => None,
        Plan::Unsatisfiable => {
            h.header(
                &header::CONTENT_RANGE,
                format_args!("bytes */{}", facts.size),
            );
            Some(0)
        }
        Plan::Full => Some(facts.size),
        Plan::Partial { start, end } => {
            h.header(
                &header::CONTENT_RANGE,
                format_args!("bytes {start}-{end}/{}", facts.size),
            );
            Some(end - start + 1)
        }
    };
    if let Some(len) = len {
        h.header(&header::CONTENT_LENGTH, format_args!("{len}"));
    }
    if matches!(plan, Plan::Full | Plan::Partial { .. }) {
        h.header(
            &header::CONTENT_TYPE,
            format_args!("{}", content_type(conf, file_name)),
        );
        if let Some(cd) = download_name.and_then(content_disposition) {
            if let Ok(text) = cd.to_str() {
                h.header(&header::CONTENT_DISPOSITION, format_args!("{text}"));
            }
        }
    }
}

/// The answer for a file with known facts and plan; `body` carries the
/// planned window (empty for HEAD, 304 and 416).
pub fn file(
    conf: &GatewayConf,
    file_name: &str,
    download_name: Option<&str>,
    facts: &FileFacts,
    plan: Plan,
    body: GatewayBody,
) -> Resp {
    let mut r = Response::new(body);
    file_headers(conf, file_name, download_name, facts, plan, r.headers_mut());
    *r.status_mut() = file_status(plan);
    r
}

/// The token-check-fail file, answered with 200 (§9.2).
pub fn check_fail(f: &CheckFailFile, head: bool) -> Resp {
    let mut r = Response::new(if head {
        GatewayBody::empty()
    } else {
        GatewayBody::full(f.content.clone())
    });
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&f.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(f.content.len()));
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_forms() {
        assert_eq!(
            content_disposition("a b.txt").unwrap(),
            "attachment; filename=\"a b.txt\""
        );
        assert_eq!(
            content_disposition("报告 1.pdf").unwrap(),
            "attachment; filename=\"__ 1.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%201.pdf"
        );
        assert_eq!(
            content_disposition("a\"b\r\n.txt").unwrap(),
            "attachment; filename=\"a_b__.txt\"; filename*=UTF-8''a%22b%0D%0A.txt"
        );
        assert!(content_disposition("").is_none());
        let long = "é".repeat(300);
        assert!(content_disposition(&long).is_some());
    }

    #[test]
    fn head_bytes_match_the_header_map() {
        let mut conf = GatewayConf::new("group1", Vec::new());
        let facts = FileFacts {
            size: 10,
            last_modified: 1_700_000_000,
        };
        let plans = [
            Plan::Full,
            Plan::Partial { start: 2, end: 5 },
            Plan::NotModified,
            Plan::Unsatisfiable,
        ];
        for bad_default in [false, true] {
            if bad_default {
                // Refused by HeaderValue: both fall back alike.
                conf.default_content_type = "text/plain\r\nx-evil: 1".to_string();
            }
            for plan in plans {
                for download in [None, Some("a b.txt"), Some("报告.pdf")] {
                    let mut map = HeaderMap::new();
                    file_headers(&conf, "x.unknownext", download, &facts, plan, &mut map);
                    let mut bytes = Vec::new();
                    file_headers(&conf, "x.unknownext", download, &facts, plan, &mut bytes);
                    let mut from_map = Vec::new();
                    for (name, value) in &map {
                        from_map.extend_from_slice(name.as_str().as_bytes());
                        from_map.extend_from_slice(b": ");
                        from_map.extend_from_slice(value.as_bytes());
                        from_map.extend_from_slice(b"\r\n");
                    }
                    assert_eq!(
                        String::from_utf8_lossy(&bytes),
                        String::from_utf8_lossy(&from_map),
                        "{plan:?} {download:?}"
                    );
                }
            }
        }
        for (value, kept) in [("a\nb", false), ("a\u{7f}", false), ("é\tx", true)] {
            let mut bytes = Vec::new();
            bytes.header(&header::ETAG, format_args!("{value}"));
            let mut map = HeaderMap::new();
            map.header(&header::ETAG, format_args!("{value}"));
            assert_eq!(!bytes.is_empty(), kept, "{value:?}");
            assert_eq!(map.contains_key(header::ETAG), kept, "{value:?}");
        }
        let mut full = Vec::new();
        file_headers(&conf, "x.jpg", None, &facts, Plan::Full, &mut full);
        let text = String::from_utf8(full).unwrap();
        assert!(
            text.starts_with("last-modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\ncontent-length: 10\r\ncontent-type: image/jpeg\r\n"),
            "{text}"
        );
    }
}
