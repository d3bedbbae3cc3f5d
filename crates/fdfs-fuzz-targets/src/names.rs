//! Target `file_id`: file IDs (`group/remote`) and remote names. An
//! accepted name re-parses to itself from its canonical spelling, its
//! relative path stays three plain components under `data/`, a file-name
//! record survives encode then decode, and a trunk name's location survives
//! rebuilding the name from it.

use std::path::{Component, Path};

use fdfs_proto::fileid::{self, FileNameRecord, RemoteName};
use fdfs_proto::FileId;

pub fn file_id(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let store_paths = usize::from(sel) + 1;
    if let Ok(id) = FileId::parse(text) {
        assert_eq!(id.to_string(), text, "file id does not print as parsed");
        assert!(!id.group.is_empty() && !id.group.contains('/'));
        assert_name_reparses_if_ok(&id.remote, store_paths);
    }
    assert_name_reparses_if_ok(text, store_paths);
    if let Some(rec) = FileNameRecord::decode(text) {
        let again = FileNameRecord::decode(&rec.encode());
        assert_eq!(again, Some(rec), "record: decode(encode(x)) != x");
    }
    if fileid::is_creatable_data_name(text) {
        assert_eq!(fileid::classify_name(text), Some(fileid::NameClass::Data));
    }
    let escaped = fileid::escape_for_log(text);
    assert!(
        escaped.bytes().all(|b| b.is_ascii_graphic()),
        "escape leaves {escaped:?}"
    );
}

fn assert_name_reparses_if_ok(remote: &str, store_paths: usize) {
    if RemoteName::parse(remote, store_paths).is_ok() {
        assert_name_reparses(remote, store_paths);
    }
}

/// `remote` is known to parse: its canonical spelling parses to the same
/// name, and its path under a store path's `data/` cannot leave it.
pub(crate) fn assert_name_reparses(remote: &str, store_paths: usize) {
    let name = RemoteName::parse(remote, store_paths).expect("accepted name parses");
    let canonical = name.to_string();
    assert_eq!(
        RemoteName::parse(&canonical, store_paths).ok().as_ref(),
        Some(&name),
        "{remote:?} does not re-parse from {canonical:?}"
    );
    assert!(
        remote.eq_ignore_ascii_case(&canonical) || canonical.get(4..) == Some(remote),
        "{remote:?} is not a spelling of {canonical:?}"
    );
    assert_inside_data_dir(&name.relative_path());
    if let Some(loc) = name.trunk_location() {
        assert_trunk_name_rebuilds(&name, loc);
    }
}

/// A trunk name rebuilt from its record, location and ext7 carries the
/// same location, and its trunk file stays `data/HH/HH/NNNNNN`.
fn assert_trunk_name_rebuilds(name: &RemoteName, loc: fdfs_proto::TrunkLocation) {
    let rec = name.record().expect("a trunk name has a record");
    let ext7 = &name.name[name.name.len() - fileid::EXT7_LEN..];
    let rebuilt = loc
        .remote_name(&rec, ext7)
        .expect("a parsed trunk name rebuilds");
    assert_eq!(
        rebuilt.trunk_location(),
        Some(loc),
        "trunk location changed"
    );
    let path = loc.trunk_file_relative_path();
    let under_data = path.strip_prefix("data/").expect("trunk path under data/");
    assert_inside_data_dir(under_data);
}

/// A relative path joined under `data/` names a file inside it: exactly
/// three plain components (two directories and the file).
pub(crate) fn assert_inside_data_dir(relative: &str) {
    let comps: Vec<Component<'_>> = Path::new(relative).components().collect();
    assert_eq!(comps.len(), 3, "path {relative:?} is not HH/HH/name");
    assert!(
        comps.iter().all(|c| matches!(c, Component::Normal(_))),
        "path {relative:?} leaves the data dir"
    );
    assert!(!relative.contains('\0') && !relative.contains('\\'));
}
