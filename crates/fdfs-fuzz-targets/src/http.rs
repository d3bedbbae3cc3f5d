//! Target `http_request`: the gateway's request path and Range header
//! parsing (`fdfs_http::request`, `fdfs_http::plan`). The input is
//! `<selector byte><path>\n<range header>`. An accepted path names a data
//! file whose path stays inside the store path's `data/`; a Range answer
//! lies within the file.

use fdfs_http::plan::{parse_range, RangeSpec};
use fdfs_http::request::{parse_path, percent_decode, Query, MAX_PATH_LEN};

const LOCAL_GROUP: &str = "group1";

pub fn http_request(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (path_and_query, range) = text.split_once('\n').unwrap_or((text, ""));
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let with_group = sel & 1 != 0;
    let store_paths = usize::from(sel >> 1) % 4 + 1;
    if let Ok(req) = parse_path(path, LOCAL_GROUP, with_group, store_paths) {
        let decoded = percent_decode(path).expect("accepted path decodes");
        assert!(decoded.len() <= MAX_PATH_LEN);
        assert!(req.name.is_data_file(), "{req:?} is not a data file");
        assert!(!req.name.name.starts_with('.'));
        if req.local_group {
            assert!(usize::from(req.name.store_path_index) < store_paths);
        }
        crate::names::assert_name_reparses(&req.remote, 256);
        let canonical = if with_group {
            format!("/{}/{}", req.group, req.name)
        } else {
            format!("/{}", req.name)
        };
        let again = parse_path(&canonical, LOCAL_GROUP, with_group, store_paths)
            .expect("canonical path of an accepted request parses");
        assert_eq!(again.name, req.name);
        assert_eq!(again.group, req.group);
    }
    let _ = Query::parse(query);
    let size = u64::from(sel) * 1000 + rest.len() as u64;
    for size in [0, 1, size, u64::MAX] {
        match parse_range(range, size) {
            RangeSpec::Single { start, end } => {
                assert!(
                    start <= end && end < size,
                    "{range:?} on {size}: {start}-{end}"
                );
            }
            RangeSpec::Ignore | RangeSpec::Multi | RangeSpec::Unsatisfiable => {}
        }
    }
}
