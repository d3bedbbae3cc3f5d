//! Target `storage_ids`: `storage_ids.conf`. Every accepted entry prints
//! (as FETCH_STORAGE_IDS sends it) to a line that parses back to the same
//! entry, and the whole printed file parses back to the same list.

use std::path::Path;

use fdfs_config::StorageIds;

pub fn storage_ids(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(ids) = StorageIds::parse_str(&text, Path::new("storage_ids.conf")) else {
        return;
    };
    for e in &ids.entries {
        let line = e.to_line();
        let again = StorageIds::parse_str(&line, Path::new("line"))
            .unwrap_or_else(|err| panic!("{line:?} of {e:?} does not parse: {err}"));
        assert_eq!(
            again.entries,
            vec![e.clone()],
            "{line:?} parses to another entry"
        );
        assert!(!e.hosts.is_empty() && e.hosts.len() <= 2);
    }
    let printed: Vec<String> = ids.entries.iter().map(|e| e.to_line()).collect();
    let again = StorageIds::parse_str(&printed.join("\n"), Path::new("printed"))
        .unwrap_or_else(|err| panic!("printed list does not parse: {err}"));
    assert_eq!(again, ids);
}
