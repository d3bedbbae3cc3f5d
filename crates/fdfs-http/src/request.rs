//! URL → file id (PROTOCOL.md §9.1). The path is percent-decoded, then
//! must be `/<group>/Mxx/HH/HH/<name>` (or `/Mxx/HH/HH/<name>` without
//! group names) and is resolved only through [`RemoteName::parse`]:
//! upper-case hex directories, no further `/`, no NUL, no `..`. Query
//! parameters are `key=value` pairs with percent-decoded values.

use fdfs_config::is_valid_group_name;
use fdfs_proto::fileid::{FileNameRecord, NameClass, RemoteName};

use crate::error::Reject;

/// Shortest remote name: `Mxx/HH/HH/` + 27 base64 characters + ext7.
pub const MIN_REMOTE_NAME_LEN: usize = 44;
/// Longest decoded path the module accepts (511 and more → 400).
pub const MAX_PATH_LEN: usize = 510;
/// The module reads at most this many query parameters.
pub const MAX_QUERY_PARAMS: usize = 32;
/// Store path count assumed for groups that are not ours.
const FOREIGN_STORE_PATHS: usize = 256;

/// A validated request for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    pub group: String,
    /// `Mxx/HH/HH/<name>` exactly as requested (after decoding).
    pub remote: String,
    pub name: RemoteName,
    pub record: FileNameRecord,
    /// True when the group is this storage's.
    pub local_group: bool,
}

/// Decodes `%XX` escapes. Malformed escapes are an error (nginx answers
/// 400 for them too).
pub fn percent_decode(s: &str) -> Result<Vec<u8>, Reject> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(Reject::bad_request("malformed percent escape")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Parses a request path into a file request.
pub fn parse_path(
    raw_path: &str,
    local_group: &str,
    url_have_group_name: bool,
    store_path_count: usize,
) -> Result<FileRequest, Reject> {
    let decoded = percent_decode(raw_path)?;
    if decoded.contains(&0) {
        return Err(Reject::bad_request("NUL in path"));
    }
    if decoded.len() > MAX_PATH_LEN {
        return Err(Reject::bad_request("path too long"));
    }
    let path = String::from_utf8(decoded).map_err(|_| Reject::bad_request("path is not UTF-8"))?;
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| Reject::bad_request("path must start with /"))?;
    let (group, remote) = if url_have_group_name {
        let (g, r) = rest
            .split_once('/')
            .ok_or_else(|| Reject::bad_request("no file name after the group"))?;
        if !is_valid_group_name(g) {
            return Err(Reject::bad_request(format!("invalid group name {g:?}")));
        }
        (g, r)
    } else {
        (local_group, rest)
    };
    let is_local = group == local_group;
    if remote.len() < MIN_REMOTE_NAME_LEN || !remote.starts_with('M') {
        return Err(Reject::bad_request(format!("invalid file name {remote:?}")));
    }
    let paths = if is_local {
        store_path_count
    } else {
        FOREIGN_STORE_PATHS
    };
    let (name, class) = RemoteName::parse_classified(remote, paths)
        .map_err(|e| Reject::bad_request(e.to_string()))?;
    // RemoteName::parse forbids `/` and NUL in the last component; a name
    // of dots cannot reach 34 characters, but say it explicitly.
    if name.name.starts_with('.') || name.name.contains('\\') {
        return Err(Reject::bad_request(format!("invalid file name {remote:?}")));
    }
    // Metadata files (`<name>-m`) and shapes the original never creates
    // are not files a client may fetch: the HTTP port is usually public.
    if class != NameClass::Data {
        return Err(Reject::not_found(format!("not a data file: {remote:?}")));
    }
    let record = name
        .record()
        .ok_or_else(|| Reject::bad_request(format!("undecodable file name {remote:?}")))?;
    Ok(FileRequest {
        group: group.to_string(),
        remote: remote.to_string(),
        name,
        record,
        local_group: is_local,
    })
}

/// Query parameters, in order; keys raw, values percent-decoded (lossy
/// UTF-8). Extra parameters beyond [`MAX_QUERY_PARAMS`] are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, Reject> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if pairs.len() >= MAX_QUERY_PARAMS {
                break;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let v = String::from_utf8_lossy(&percent_decode(v)?).into_owned();
            pairs.push((k.to_string(), v));
        }
        Ok(Query { pairs })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAME: &str = "fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";

    fn p(path: &str) -> Result<FileRequest, Reject> {
        parse_path(path, "group1", true, 1)
    }

    #[test]
    fn accepted_forms() {
        let r = p(&format!("/group1/M00/00/00/{NAME}")).unwrap();
        assert_eq!(r.remote, format!("M00/00/00/{NAME}"));
        assert!(r.local_group);
        assert_eq!(r.record.source_ip_text(), "127.0.0.1");
        let r = p(&format!("/group2/M03/0A/FF/{NAME}")).unwrap();
        assert!(!r.local_group);
        let r = p("/group1/M00/00/00/%66wAAAWVT8QCANFZ4AAAADjf5ba8123.txt").unwrap();
        assert_eq!(r.name.name, NAME);
        let r = parse_path(&format!("/M00/00/00/{NAME}"), "group1", false, 1).unwrap();
        assert_eq!(r.group, "group1");
        let slave = "/group1/M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123_150x150.txt";
        assert!(p(slave).is_ok());
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "/group1/M00/00/00/../../../etc/passwd".to_string(),
            format!("/group1/M00/00/00/%2e%2e/%2e%2e/{NAME}"),
            format!("/group1/M00/00/0a/{NAME}"),
            format!("/group1/M01/00/00/{NAME}"),
            format!("/group1/M00/00/00/{NAME}%00.jpg"),
            format!("/group1/M00/00/00/{NAME}%2f"),
            format!("/group1/M00/00/00/sub/{NAME}"),
            format!("/group1/00/00/{NAME}"),
            format!("/group1/M00/00/00/{NAME}%zz"),
            format!("/group1//M00/00/00/{NAME}"),
            format!("//etc/passwd/M00/00/00/{NAME}"),
            format!("/group_1/M00/00/00/{NAME}"),
            "/group1/M00/00/00/short.txt".to_string(),
            format!("/group1/M00/00/00/{}", "!".repeat(40)),
            format!("/group1/M00/00/00/{NAME}{}", "x".repeat(500)),
            "/etc/passwd".to_string(),
            "/".to_string(),
        ] {
            let e = p(&bad).unwrap_err();
            assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(parse_path(&format!("/group1/M00/00/00/{NAME}"), "group1", false, 1).is_err());
    }

    #[test]
    fn query_params() {
        let q = Query::parse(Some("token=abc&ts=12&filename=a%20b.txt&redirect")).unwrap();
        assert_eq!(q.get("token"), Some("abc"));
        assert_eq!(q.get("filename"), Some("a b.txt"));
        assert!(q.has("redirect"));
        assert_eq!(q.get("nope"), None);
        assert!(Query::parse(Some("a=%")).is_err());
        let many: String = (0..40).map(|i| format!("k{i}=v&")).collect();
        assert_eq!(Query::parse(Some(&many)).unwrap().get("k35"), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_stays_in_shape(s in ".{0,200}") {
            if let Ok(r) = parse_path(&s, "group1", true, 2) {
                prop_assert!(r.name.name.len() >= MIN_REMOTE_NAME_LEN - 10);
                prop_assert!(!r.name.name.contains('/'));
                prop_assert!(!r.name.name.contains('\0'));
            }
            let _ = Query::parse(Some(&s));
        }
    }
}
