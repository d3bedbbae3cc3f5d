//! The tracker's data files in `<base_path>/data` (PROTOCOL.md §7.3), in the
//! byte layout the C tracker writes, so either implementation can read the
//! other's files:
//!
//! | file                        | content                                           |
//! |-----------------------------|---------------------------------------------------|
//! | storage_groups_new.dat      | `[Global] group_count`, one `[GroupNNN]` per group |
//! | storage_servers_new.dat     | one `[StorageNNN]` per storage, then `[Global]`    |
//! | storage_sync_timestamp.dat  | `group,src_id,t_0,…,t_k` per source storage        |
//! | storage_changelog.dat       | `<time> <group> <id> <status> <new_id>` lines      |
//! | .tracker_status             | `up_time=…` and `last_check_time=…`                |
//!
//! Whole files are written to `<name>.tmp`, fsynced and renamed; the
//! changelog is append-only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::state::{is_visible, Cluster, Group, StorageRec};

pub const GROUPS_FILE: &str = "storage_groups_new.dat";
pub const STORAGES_FILE: &str = "storage_servers_new.dat";
pub const SYNC_TIMESTAMP_FILE: &str = "storage_sync_timestamp.dat";
pub const CHANGELOG_FILE: &str = "storage_changelog.dat";
pub const TRACKER_STATUS_FILE: &str = ".tracker_status";

/// Renders storage_groups_new.dat.
pub fn render_groups(c: &Cluster) -> String {
    let mut out = String::new();
    let _ = write!(out, "[Global]\n\tgroup_count={}\n\n", c.groups.len());
    for (i, g) in c.groups.values().enumerate() {
        let _ = write!(
            out,
            "# group: {name}\n[Group{num:03}]\n\tgroup_name={name}\n\tstorage_port={port}\n\
             \tstore_path_count={paths}\n\tsubdir_count_per_path={subdirs}\n\
             \tcurrent_trunk_file_id={trunk}\n\ttrunk_server={trunk_server}\n\
             \tlast_trunk_server={last_trunk_server}\n\n",
            name = g.name,
            num = i + 1,
            port = g.storage_port,
            paths = g.store_path_count,
            subdirs = g.subdir_count_per_path,
            trunk = g.current_trunk_file_id,
            trunk_server = g.trunk_server.as_deref().unwrap_or(""),
            last_trunk_server = g.last_trunk_server,
        );
    }
    out
}

/// Counters persisted per storage, in file order: the wire order without the
/// modify and truncate counters, which the C tracker does not persist.
const PERSISTED_COUNTERS: [&str; 36] = persisted_counters();

const fn persisted_counters() -> [&'static str; 36] {
    let names = fdfs_proto::stat::StorageStats::COUNTER_NAMES;
    let mut out = [""; 36];
    let (mut i, mut n) = (0, 0);
    while i < names.len() {
        if !contains(names[i], "modify") && !contains(names[i], "truncate") {
            out[n] = names[i];
            n += 1;
        }
        i += 1;
    }
    assert!(n == out.len(), "every persisted counter has a slot");
    out
}

/// `str::contains` for const contexts.
const fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let mut start = 0;
    while start + n.len() <= h.len() {
        let mut k = 0;
        while k < n.len() && h[start + k] == n[k] {
            k += 1;
        }
        if k == n.len() {
            return true;
        }
        start += 1;
    }
    false
}

fn formatted_ip(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// Renders storage_servers_new.dat (DELETED / IP_CHANGED records skipped).
pub fn render_storages(c: &Cluster, use_storage_id: bool) -> String {
    let mut out = String::new();
    let mut count = 0;
    for g in c.groups.values() {
        for s in g.visible() {
            count += 1;
            let _ = write!(
                out,
                "# storage: {}:{}\n[Storage{:03}]\n",
                formatted_ip(&s.ip),
                s.storage_port,
                count
            );
            if use_storage_id {
                let _ = writeln!(out, "\tid={}", s.id);
            }
            let _ = write!(
                out,
                "\tgroup_name={}\n\tip_addr={}\n\tstatus={}\n\tversion={}\n\tjoin_time={}\n\
                 \tstorage_port={}\n\tsync_src_server={}\n\tsync_until_timestamp={}\n\
                 \ttotal_mb={}\n\tfree_mb={}\n\tchangelog_offset={}\n\tstore_path_count={}\n\
                 \tsubdir_count_per_path={}\n\tupload_priority={}\n",
                g.name,
                s.ip,
                s.status,
                s.version,
                s.join_time,
                s.storage_port,
                s.sync_src_id,
                s.sync_until_timestamp,
                s.total_mb,
                s.free_mb,
                s.changelog_offset,
                s.store_path_count,
                s.subdir_count_per_path,
                s.upload_priority,
            );
            let counters: BTreeMap<&str, i64> = s.stats.counters().into_iter().collect();
            for name in PERSISTED_COUNTERS {
                let v = counters.get(name).copied().unwrap_or(0);
                let _ = writeln!(out, "\t{name}={v}");
            }
            out.push('\n');
        }
    }
    let _ = write!(out, "\n[Global]\n\tstorage_count={count}\n");
    out
}

/// Renders storage_sync_timestamp.dat: row = source, column = destination,
/// both in the same (id) order.
pub fn render_sync_timestamps(c: &Cluster) -> String {
    let mut out = String::new();
    for g in c.groups.values() {
        let members: Vec<&StorageRec> = g.visible().collect();
        for src in &members {
            let _ = write!(out, "{},{}", g.name, src.id);
            for dest in &members {
                let t = if dest.id == src.id {
                    0
                } else {
                    src.synced_by.get(&dest.id).copied().unwrap_or(0)
                };
                let _ = write!(out, ",{t}");
            }
            out.push('\n');
        }
    }
    out
}

/// Renders .tracker_status.
pub fn render_tracker_status(up_time: i64, last_check_time: i64) -> String {
    format!("up_time={up_time}\nlast_check_time={last_check_time}\n")
}

/// The three snapshot files, rendered under the state lock and written later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub groups: String,
    pub storages: String,
    pub sync_timestamps: String,
}

impl Snapshot {
    pub fn of(c: &Cluster, use_storage_id: bool) -> Self {
        Snapshot {
            groups: render_groups(c),
            storages: render_storages(c, use_storage_id),
            sync_timestamps: render_sync_timestamps(c),
        }
    }

    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        write_atomic(&data_dir.join(GROUPS_FILE), self.groups.as_bytes())?;
        write_atomic(&data_dir.join(STORAGES_FILE), self.storages.as_bytes())?;
        write_atomic(
            &data_dir.join(SYNC_TIMESTAMP_FILE),
            self.sync_timestamps.as_bytes(),
        )
    }
}

pub use fdfs_util::fs::write_atomic;

/// Appends one line to the changelog and fsyncs it.
pub fn append_changelog(data_dir: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join(CHANGELOG_FILE))?;
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

/// Sections of one of our ini-style data files, in file order.
fn parse_sections(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.to_string(), BTreeMap::new()));
        } else if let Some((k, v)) = line.split_once('=') {
            if let Some((_, items)) = out.last_mut() {
                items.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    out
}

fn num<T: std::str::FromStr + Default>(items: &BTreeMap<String, String>, key: &str) -> T {
    items
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

fn text(items: &BTreeMap<String, String>, key: &str) -> String {
    items.get(key).cloned().unwrap_or_default()
}

/// Loads the data files (missing files mean an empty cluster). Records come
/// back with the status they were saved with; the caller applies the
/// start-up rule.
pub fn load(data_dir: &Path, use_storage_id: bool) -> std::io::Result<Cluster> {
    let mut c = Cluster::default();
    if let Some(t) = read_optional(&data_dir.join(GROUPS_FILE))? {
        for (name, items) in parse_sections(&t) {
            if !name.starts_with("Group") {
                continue;
            }
            let gname = text(&items, "group_name");
            if !fdfs_proto::is_valid_group_name(&gname) {
                continue;
            }
            let mut g = Group::new(&gname);
            g.storage_port = num(&items, "storage_port");
            g.store_path_count = num(&items, "store_path_count");
            g.subdir_count_per_path = num(&items, "subdir_count_per_path");
            g.current_trunk_file_id = num(&items, "current_trunk_file_id");
            // Checked like any peer text: the file may come from a peer (§4.9).
            let plain = |key| Some(text(&items, key)).filter(|v| crate::guard::is_plain(v));
            g.trunk_server = plain("trunk_server").filter(|v| !v.is_empty());
            g.last_trunk_server = plain("last_trunk_server").unwrap_or_default();
            if g.trunk_server.is_some() {
                // Storages connecting to us learn the loaded trunk server.
                g.trunk_change_count = 1;
            }
            c.groups.insert(gname, g);
        }
    }
    // File order of the storages per group: the columns of the sync file.
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(t) = read_optional(&data_dir.join(STORAGES_FILE))? {
        for (name, items) in parse_sections(&t) {
            if !name.starts_with("Storage") {
                continue;
            }
            let gname = text(&items, "group_name");
            let ip = text(&items, "ip_addr");
            if !fdfs_proto::is_valid_group_name(&gname) || ip.is_empty() {
                continue;
            }
            let id = match items.get("id") {
                Some(id) if use_storage_id && !id.is_empty() => id.clone(),
                _ => ip.clone(),
            };
            let status: u8 = num(&items, "status");
            if !is_visible(status) {
                continue;
            }
            let mut s = StorageRec::new(&id, &ip, status);
            s.version = text(&items, "version");
            s.join_time = num(&items, "join_time");
            s.storage_port = num(&items, "storage_port");
            s.sync_src_id = text(&items, "sync_src_server");
            s.sync_until_timestamp = num(&items, "sync_until_timestamp");
            s.total_mb = num(&items, "total_mb");
            s.free_mb = num(&items, "free_mb");
            s.changelog_offset = num(&items, "changelog_offset");
            s.store_path_count = num(&items, "store_path_count");
            s.subdir_count_per_path = num(&items, "subdir_count_per_path");
            s.upload_priority = num(&items, "upload_priority");
            for key in PERSISTED_COUNTERS {
                s.stats.set_counter(key, num(&items, key));
            }
            s.paths = vec![
                fdfs_proto::tracker_msg::PathUsage {
                    total_mb: 0,
                    free_mb: 0
                };
                s.store_path_count as usize
            ];
            let g = c
                .groups
                .entry(gname.clone())
                .or_insert_with(|| Group::new(&gname));
            if g.storage_port == 0 {
                g.storage_port = s.storage_port;
            }
            order.entry(gname).or_default().push(id.clone());
            g.storages.insert(id, s);
        }
    }
    if let Some(t) = read_optional(&data_dir.join(SYNC_TIMESTAMP_FILE))? {
        for line in t.lines() {
            let mut fields = line.split(',').map(str::trim);
            let (Some(gname), Some(src)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some(cols) = order.get(gname) else {
                continue;
            };
            let Some(g) = c.groups.get_mut(gname) else {
                continue;
            };
            let values: Vec<i64> = fields.map(|f| f.parse().unwrap_or(0)).collect();
            let Some(s) = g.storages.get_mut(src) else {
                continue;
            };
            for (dest, t) in cols.iter().zip(values) {
                if dest != src && t > 0 {
                    s.synced_by.insert(dest.clone(), t);
                }
            }
        }
    }
    if let Some(bytes) = read_optional_bytes(&data_dir.join(CHANGELOG_FILE))? {
        c.changelog = bytes;
    }
    let len = c.changelog.len() as u64;
    for g in c.groups.values_mut() {
        for s in g.storages.values_mut() {
            s.changelog_offset = s.changelog_offset.min(len);
        }
        g.recompute_space();
        if g.trunk_server
            .as_deref()
            .is_some_and(|id| !g.storages.contains_key(id))
        {
            // Not a member (any more): the leader appoints another.
            g.trunk_server = None;
        }
    }
    Ok(c)
}

/// `last_check_time` of the previous run, if `.tracker_status` exists.
pub fn load_last_check_time(data_dir: &Path) -> Option<i64> {
    let t = std::fs::read_to_string(data_dir.join(TRACKER_STATUS_FILE)).ok()?;
    t.lines()
        .find_map(|l| l.trim().strip_prefix("last_check_time="))
        .and_then(|v| v.trim().parse().ok())
}

fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    Ok(read_optional_bytes(path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

fn read_optional_bytes(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{join_info, status_after_restart, Cluster};
    use fdfs_proto::stat::storage_status as st;

    fn one_storage_cluster() -> Cluster {
        let mut c = Cluster::default();
        let mut join = join_info("192.168.0.10");
        join.req.join_time = 1_700_000_000;
        join.req.up_time = 1_700_000_100;
        c.join(&join, 1).unwrap();
        let g = c.groups.get_mut("group1").unwrap();
        g.set_status("192.168.0.10", st::ACTIVE);
        let s = g.storages.get_mut("192.168.0.10").unwrap();
        s.total_mb = 258_019;
        s.free_mb = 67_360;
        s.stats.total_upload_count = 3;
        s.stats.success_upload_count = 2;
        s.stats.last_heart_beat_time = 1_700_000_200;
        s.stats.last_synced_timestamp = 5;
        c
    }

    #[test]
    fn groups_file_matches_template() {
        let c = one_storage_cluster();
        let expected = "[Global]\n\tgroup_count=1\n\n# group: group1\n[Group001]\n\
                        \tgroup_name=group1\n\tstorage_port=23000\n\tstore_path_count=1\n\
                        \tsubdir_count_per_path=256\n\tcurrent_trunk_file_id=0\n\
                        \ttrunk_server=\n\tlast_trunk_server=\n\n";
        assert_eq!(render_groups(&c), expected);
    }

    #[test]
    fn storages_file_matches_template() {
        let c = one_storage_cluster();
        let mut expected = String::from(
            "# storage: 192.168.0.10:23000\n[Storage001]\n\tgroup_name=group1\n\
             \tip_addr=192.168.0.10\n\tstatus=7\n\tversion=6.16.1\n\tjoin_time=1700000000\n\
             \tstorage_port=23000\n\tsync_src_server=\n\tsync_until_timestamp=0\n\
             \ttotal_mb=258019\n\tfree_mb=67360\n\tchangelog_offset=0\n\tstore_path_count=1\n\
             \tsubdir_count_per_path=256\n\tupload_priority=10\n",
        );
        for name in PERSISTED_COUNTERS {
            let v = match name {
                "total_upload_count" => 3,
                "success_upload_count" => 2,
                "last_heart_beat_time" => 1_700_000_200,
                "last_synced_timestamp" => 5,
                _ => 0,
            };
            expected.push_str(&format!("\t{name}={v}\n"));
        }
        expected.push_str("\n\n[Global]\n\tstorage_count=1\n");
        assert_eq!(render_storages(&c, false), expected);
        assert_eq!(render_sync_timestamps(&c), "group1,192.168.0.10,0\n");
    }

    #[test]
    fn trunk_servers_are_saved_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = one_storage_cluster();
        c.set_trunk_server("group1", Some("192.168.0.10"));
        let text = render_groups(&c);
        assert!(text.contains(
            "\tcurrent_trunk_file_id=0\n\ttrunk_server=192.168.0.10\n\tlast_trunk_server=192.168.0.10\n\n"
        ));
        Snapshot::of(&c, false).write(dir.path()).unwrap();
        let loaded = load(dir.path(), false).unwrap();
        let g = &loaded.groups["group1"];
        assert_eq!(g.trunk_server.as_deref(), Some("192.168.0.10"));
        assert_eq!(g.last_trunk_server, "192.168.0.10");
        assert_eq!(g.trunk_change_count, 1, "connections announce it");
        // A trunk server that is no member is dropped, the last one kept.
        let text = render_groups(&loaded).replace("\ttrunk_server=192", "\ttrunk_server=10");
        std::fs::write(dir.path().join(GROUPS_FILE), text).unwrap();
        let loaded = load(dir.path(), false).unwrap();
        let g = &loaded.groups["group1"];
        assert_eq!(g.trunk_server, None);
        assert_eq!(g.last_trunk_server, "192.168.0.10");
    }

    #[test]
    fn roundtrip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = one_storage_cluster();
        // A second member with sync timestamps and one deleted record.
        let g = c.groups.get_mut("group1").unwrap();
        let mut s2 = StorageRec::new("192.168.0.11", "192.168.0.11", st::WAIT_SYNC);
        s2.storage_port = 23000;
        s2.store_path_count = 1;
        s2.subdir_count_per_path = 256;
        s2.sync_src_id = "192.168.0.10".into();
        s2.sync_until_timestamp = 99;
        g.storages.insert(s2.id.clone(), s2);
        g.storages
            .get_mut("192.168.0.10")
            .unwrap()
            .synced_by
            .insert("192.168.0.11".into(), 1234);
        let mut gone = StorageRec::new("192.168.0.12", "192.168.0.12", st::DELETED);
        gone.storage_port = 23000;
        g.storages.insert(gone.id.clone(), gone);

        let snap = Snapshot::of(&c, false);
        snap.write(dir.path()).unwrap();
        append_changelog(dir.path(), "1 group1 192.168.0.12 4 \n").unwrap();
        let loaded = load(dir.path(), false).unwrap();
        let lg = &loaded.groups["group1"];
        assert_eq!(lg.storage_port, 23000);
        assert_eq!(lg.storages.len(), 2, "deleted records are not persisted");
        let a = &lg.storages["192.168.0.10"];
        let orig = &c.groups["group1"].storages["192.168.0.10"];
        assert_eq!(a.status, st::ACTIVE);
        assert_eq!(a.stats, orig.stats);
        assert_eq!(a.total_mb, orig.total_mb);
        assert_eq!(a.synced_by["192.168.0.11"], 1234);
        let b = &lg.storages["192.168.0.11"];
        assert_eq!(b.sync_src_id, "192.168.0.10");
        assert_eq!(b.sync_until_timestamp, 99);
        assert_eq!(loaded.changelog, b"1 group1 192.168.0.12 4 \n");
        // Rendering the loaded state gives the same files.
        let again = Snapshot::of(&loaded, false);
        assert_eq!(
            again,
            Snapshot::of(
                &{
                    let mut c2 = c.clone();
                    c2.groups
                        .get_mut("group1")
                        .unwrap()
                        .storages
                        .remove("192.168.0.12");
                    c2
                },
                false
            )
        );
        assert!(!dir.path().join("storage_groups_new.dat.tmp").exists());
        assert_eq!(status_after_restart(st::ACTIVE), st::OFFLINE);
        assert_eq!(status_after_restart(st::WAIT_SYNC), st::WAIT_SYNC);
    }

    #[test]
    fn tracker_status_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_last_check_time(dir.path()), None);
        write_atomic(
            &dir.path().join(TRACKER_STATUS_FILE),
            render_tracker_status(10, 20).as_bytes(),
        )
        .unwrap();
        assert_eq!(load_last_check_time(dir.path()), Some(20));
    }
}
