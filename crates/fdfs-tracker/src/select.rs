//! Upload and download target selection (PROTOCOL.md §11.1, §11.2, §11.4):
//! pure functions over the cluster state, so every rule is unit tested.

use fdfs_config::tracker::{
    TrackerConf, DOWNLOAD_SERVER_SOURCE_FIRST, STORE_LOOKUP_LOAD_BALANCE, STORE_LOOKUP_ROUND_ROBIN,
    STORE_LOOKUP_SPEC_GROUP, STORE_PATH_ROUND_ROBIN, STORE_SERVER_FIRST_BY_IP,
    STORE_SERVER_FIRST_BY_PRI, STORE_SERVER_ROUND_ROBIN,
};
use fdfs_config::ReservedSpace;
use fdfs_proto::fileid::{file_kind, FileKind, FileNameRecord, FileSource, LOGIC_FILE_PATH_LEN};
use fdfs_proto::Status;

use crate::handler::OpError;
use crate::state::{no_group, Cluster, Group, StorageRec};

/// The configuration keys the selection rules read.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectParams {
    pub store_lookup: u8,
    pub store_group: String,
    pub store_server: u8,
    pub store_path: u8,
    pub download_server: u8,
    pub reserved: ReservedSpace,
    pub sync_file_max_delay_secs: i64,
    pub sync_file_max_time_secs: i64,
    /// Free trunk space may make room where the disk has none (§11.5).
    pub use_trunk_file: bool,
}

impl SelectParams {
    pub fn from_conf(conf: &TrackerConf) -> Self {
        SelectParams {
            store_lookup: conf.store_lookup,
            store_group: conf.store_group.clone(),
            // Trunk files need one store server per group (the config
            // reader forces this too; a conf built in code is forced here).
            store_server: if conf.use_trunk_file && conf.store_server == STORE_SERVER_ROUND_ROBIN {
                STORE_SERVER_FIRST_BY_IP
            } else {
                conf.store_server
            },
            store_path: conf.store_path,
            download_server: conf.download_server,
            reserved: conf.reserved_storage_space,
            sync_file_max_delay_secs: i64::try_from(conf.storage_sync_file_max_delay_secs)
                .unwrap_or(i64::MAX),
            sync_file_max_time_secs: i64::try_from(conf.storage_sync_file_max_time_secs)
                .unwrap_or(i64::MAX),
            use_trunk_file: conf.use_trunk_file,
        }
    }
}

/// A storage address as it goes into a query answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ip: String,
    pub port: u16,
}

impl Target {
    fn of(s: &StorageRec) -> Self {
        Target {
            ip: s.ip.clone(),
            port: s.storage_port,
        }
    }
}

/// Result of an upload query: group, one or more storages, store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreChoice {
    pub group: String,
    pub servers: Vec<Target>,
    pub store_path_index: u8,
}

fn mb(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Group reserved-space check (§11.4).
pub fn group_has_room(g: &Group, reserved: &ReservedSpace) -> bool {
    reserved.group_has_room(mb(g.free_mb), mb(g.total_mb))
}

/// Room counting the group's free trunk space too (with `use_trunk_file`).
pub fn group_has_room_with_trunk(g: &Group, reserved: &ReservedSpace) -> bool {
    reserved.group_has_room(
        mb(g.free_mb.saturating_add(g.trunk_free_mb)),
        mb(g.total_mb),
    )
}

/// Upload target for 101/104/106/107. `group` is the named group of
/// 104/107; `all` selects the ALL variants (106/107).
pub fn select_store(
    cluster: &mut Cluster,
    p: &SelectParams,
    group: Option<&str>,
    all: bool,
) -> Result<StoreChoice, OpError> {
    let name = match group {
        Some(name) => name.to_string(),
        None => match p.store_lookup {
            STORE_LOOKUP_SPEC_GROUP => p.store_group.clone(),
            STORE_LOOKUP_ROUND_ROBIN | STORE_LOOKUP_LOAD_BALANCE => pick_group(cluster, p)?,
            other => return Err(OpError::invalid(format!("store_lookup {other}"))),
        },
    };
    let g = cluster
        .groups
        .get_mut(&name)
        .ok_or_else(|| no_group(&name))?;
    if !g.has_writable() {
        return Err(no_writable(&name));
    }
    let trunk_room = p.use_trunk_file && group_has_room_with_trunk(g, &p.reserved);
    if !group_has_room(g, &p.reserved) && !trunk_room {
        return Err(OpError::new(
            Status::ENOSPC,
            format!("group {name} has no room"),
        ));
    }
    if g.store_path_count == 0 {
        return Err(OpError::not_found(format!(
            "group {name} has no store paths"
        )));
    }
    let group_paths = g.store_path_count;
    let trunk_free_mb = if p.use_trunk_file { g.trunk_free_mb } else { 0 };
    let (store_path_index, servers) = if all {
        let ids: Vec<String> = g.writable_iter().map(|s| s.id.clone()).collect();
        let first = ids.first().ok_or_else(|| no_writable(&name))?;
        let s = g
            .storages
            .get_mut(first)
            .ok_or_else(|| no_writable(&name))?;
        let index = pick_path(s, group_paths, trunk_free_mb, p)?;
        let servers = ids
            .iter()
            .filter_map(|id| g.storages.get(id))
            .map(Target::of)
            .collect();
        (index, servers)
    } else {
        let s = pick_writable(g, p.store_server).ok_or_else(|| no_writable(&name))?;
        let index = pick_path(s, group_paths, trunk_free_mb, p)?;
        (index, vec![Target::of(s)])
    };
    Ok(StoreChoice {
        group: name,
        servers,
        store_path_index,
    })
}

/// Group choice for round robin / load balance: start at the current write
/// group, then scan forward for a writable group with room.
fn pick_group(cluster: &mut Cluster, p: &SelectParams) -> Result<String, OpError> {
    let names: Vec<&String> = cluster.groups.keys().collect();
    let n = names.len();
    if n == 0 {
        return Err(OpError::not_found("no groups"));
    }
    let start = if cluster.current_write_group < n {
        cluster.current_write_group
    } else {
        0
    };
    let round_robin = p.store_lookup == STORE_LOOKUP_ROUND_ROBIN;
    let mut any_writable = false;
    let mut chosen = None;
    for i in 0..n {
        let name = names[(start + i) % n];
        let Some(g) = cluster.groups.get(name) else {
            continue;
        };
        if !g.has_writable() {
            continue;
        }
        any_writable = true;
        if group_has_room(g, &p.reserved) {
            chosen = Some((name.clone(), None));
            break;
        }
    }
    if chosen.is_none() && any_writable && p.use_trunk_file {
        // As the original: only when no group has disk room, the first
        // group whose free trunk space makes room.
        let found = names.iter().position(|name| {
            cluster
                .groups
                .get(*name)
                .is_some_and(|g| g.has_writable() && group_has_room_with_trunk(g, &p.reserved))
        });
        chosen = found.map(|i| (names[i].clone(), Some(i)));
    }
    if round_robin {
        cluster.current_write_group = (start + 1) % n;
    }
    if let Some((name, current)) = chosen {
        if let Some(i) = current {
            cluster.current_write_group = i;
        }
        return Ok(name);
    }
    Err(if any_writable {
        OpError::new(Status::ENOSPC, "no group has room")
    } else {
        OpError::not_found("no group has a writable storage")
    })
}

/// ENOENT: no storage of the group takes uploads.
fn no_writable(group: &str) -> OpError {
    OpError::not_found(format!("no writable storage in group {group}"))
}

/// ENOENT: no storage of the group serves downloads.
fn no_readable(group: &str) -> OpError {
    OpError::not_found(format!("no readable storage in group {group}"))
}

/// Load balance: the writable group with the most free space becomes the
/// current write group (recomputed on every disk report).
pub fn recompute_load_balance(cluster: &mut Cluster) {
    let best = cluster
        .groups
        .values()
        .enumerate()
        .filter(|(_, g)| g.has_writable())
        .max_by_key(|(i, g)| (g.free_mb, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    if let Some(i) = best {
        cluster.current_write_group = i;
    }
}

/// One writable storage by the `store_server` rule; advances the round
/// robin cursor.
pub fn pick_writable(g: &mut Group, store_server: u8) -> Option<&mut StorageRec> {
    let count = g.writable_iter().count();
    if count == 0 {
        return None;
    }
    let index = match store_server {
        STORE_SERVER_FIRST_BY_IP => 0,
        STORE_SERVER_FIRST_BY_PRI => {
            g.writable_iter()
                .enumerate()
                .min_by_key(|(_, s)| s.upload_priority)?
                .0
        }
        _ => {
            let idx = g.current_write_server % count;
            g.current_write_server = (idx + 1) % count;
            idx
        }
    };
    g.storages
        .values_mut()
        .filter(|s| s.is_writable())
        .nth(index)
}

/// Store path for an upload: the storage's current write path, or the next
/// one with room; with no room anywhere, the first whose free space plus
/// the group's free trunk space (`trunk_free_mb`, 0 without trunk files)
/// makes room; ENOSPC if none has room.
pub fn pick_path(
    s: &mut StorageRec,
    group_path_count: u32,
    trunk_free_mb: i64,
    p: &SelectParams,
) -> Result<u8, OpError> {
    let count = s.paths.len();
    if count == 0 {
        return Err(no_path_room(s));
    }
    let start = if (s.current_write_path as usize) < count {
        s.current_write_path as usize
    } else {
        0
    };
    let divisor = group_path_count.max(1) as usize;
    let room = |extra_mb: i64| {
        (0..count).map(|i| (start + i) % count).find(|&i| {
            let u = &s.paths[i];
            p.reserved.path_has_room(
                mb(u.free_mb.saturating_add(extra_mb)),
                mb(u.total_mb),
                divisor,
            )
        })
    };
    let chosen = room(0).or_else(|| (trunk_free_mb > 0).then(|| room(trunk_free_mb)).flatten());
    let chosen = chosen.ok_or_else(|| no_path_room(s))?;
    if p.store_path == STORE_PATH_ROUND_ROBIN {
        s.current_write_path = ((start + 1) % count) as u32;
    }
    u8::try_from(chosen).map_err(|_| no_path_room(s))
}

/// ENOSPC: no store path of the storage has room.
fn no_path_room(s: &StorageRec) -> OpError {
    OpError::new(
        Status::ENOSPC,
        format!("no store path of storage {} has room", s.id),
    )
}

/// The path with the most free space (store_path = 2), set on disk reports.
pub fn most_free_path(s: &StorageRec) -> Option<u32> {
    s.paths
        .iter()
        .enumerate()
        .max_by_key(|(i, u)| (u.free_mb, std::cmp::Reverse(*i)))
        .and_then(|(i, _)| u32::try_from(i).ok())
}

/// Who uploaded a file, as its name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKey {
    Ip(String),
    /// A numeric server id (id mode, or an IP ending in .0, quirk 5).
    Id(String),
}

/// What the tracker learns from a remote file name (§11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub source: SourceKey,
    /// Creation time of the file (seconds).
    pub timestamp: i64,
    /// Neither slave nor appender.
    pub normal: bool,
}

/// Decodes the 27 base64 characters after `Mxx/HH/HH/` leniently, as the C
/// tracker does: a short or garbled name still yields facts (zeros).
pub fn decode_file_facts(filename: &[u8]) -> FileFacts {
    let end = filename
        .len()
        .min(LOGIC_FILE_PATH_LEN + fdfs_proto::fileid::FILENAME_BASE64_LENGTH);
    let part = filename.get(LOGIC_FILE_PATH_LEN..end).unwrap_or(&[]);
    let text = String::from_utf8_lossy(part);
    let mut raw = fdfs_proto::base64::decode(&text);
    raw.resize(20, 0);
    let mut arr = [0u8; 20];
    arr.copy_from_slice(&raw[..20]);
    let rec = FileNameRecord::from_bytes(&arr);
    let source = match rec.source() {
        FileSource::ServerId(id) => SourceKey::Id(id.to_string()),
        FileSource::Ip(ip) => SourceKey::Ip(ip.to_string()),
    };
    FileFacts {
        source,
        // The C tracker reads the timestamp as a signed 32-bit int.
        timestamp: i64::from(rec.timestamp as i32),
        normal: file_kind(filename.len(), rec.size_field) == FileKind::Normal,
    }
}

fn is_source(s: &StorageRec, f: &FileFacts) -> bool {
    match &f.source {
        SourceKey::Ip(ip) => &s.ip == ip,
        SourceKey::Id(id) => &s.id == id,
    }
}

/// The sync-timestamp rule: may `s` already hold the file?
pub fn may_have_file(s: &StorageRec, f: &FileFacts, now: i64, p: &SelectParams) -> bool {
    let synced = s.stats.last_synced_timestamp;
    is_source(s, f)
        || f.timestamp < now.saturating_sub(p.sync_file_max_delay_secs)
        || synced > f.timestamp
        || (synced + 1 >= f.timestamp && now - f.timestamp > p.sync_file_max_time_secs)
}

/// Which download/update query is being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    /// 102
    One,
    /// 103
    Update,
    /// 105
    All,
}

/// Download/update targets for 102/103/105 (§11.2).
pub fn select_fetch(
    g: &mut Group,
    kind: FetchKind,
    f: &FileFacts,
    p: &SelectParams,
    now: i64,
) -> Result<Vec<Target>, OpError> {
    match kind {
        FetchKind::Update => {
            if !g.has_writable() {
                return Err(no_writable(&g.name));
            }
            if let Some(s) = g.writable_iter().find(|s| is_source(s, f)) {
                return Ok(vec![Target::of(s)]);
            }
            let Some(s) = pick_writable(g, p.store_server) else {
                return Err(no_writable(&g.name));
            };
            Ok(vec![Target::of(s)])
        }
        FetchKind::One => {
            let readable = g.readable();
            if readable.is_empty() {
                return Err(no_readable(&g.name));
            }
            if !f.normal || p.download_server == DOWNLOAD_SERVER_SOURCE_FIRST {
                if let Some(s) = readable.iter().find(|s| is_source(s, f)) {
                    return Ok(vec![Target::of(s)]);
                }
            }
            if f.normal {
                let n = readable.len();
                let start = g.current_read_server;
                let hit = (start..start + n)
                    .map(|i| (i, readable[i % n]))
                    .find(|(_, s)| may_have_file(s, f, now, p))
                    .map(|(i, s)| (i, Target::of(s)));
                if let Some((i, t)) = hit {
                    // `i` may have wrapped past the end: continue after
                    // the storage actually chosen.
                    g.current_read_server = (i + 1) % n;
                    return Ok(vec![t]);
                }
            }
            fallback(g, p).map(|t| vec![t])
        }
        FetchKind::All => {
            let readable = g.readable();
            if readable.is_empty() {
                return Err(no_readable(&g.name));
            }
            let out: Vec<Target> = if f.normal {
                readable
                    .iter()
                    .filter(|s| may_have_file(s, f, now, p))
                    .map(|s| Target::of(s))
                    .collect()
            } else {
                readable
                    .iter()
                    .find(|s| is_source(s, f))
                    .map(|s| vec![Target::of(s)])
                    .unwrap_or_default()
            };
            if out.is_empty() {
                fallback(g, p).map(|t| vec![t])
            } else {
                Ok(out)
            }
        }
    }
}

/// Last resort of a download query: the group's store server if it may be
/// read from.
fn fallback(g: &Group, p: &SelectParams) -> Result<Target, OpError> {
    match g.store_server(p.store_server) {
        Some(s) if s.rw_mode & crate::state::RW_READ != 0 => Ok(Target::of(s)),
        _ => Err(OpError::not_found(format!(
            "no storage of group {} may have the file yet",
            g.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Cluster, Group, StorageRec};
    use fdfs_proto::stat::storage_status as st;
    use fdfs_proto::tracker_msg::PathUsage;

    fn params() -> SelectParams {
        SelectParams::from_conf(&TrackerConf::default())
    }

    fn storage(ip: &str, free_mb: i64) -> StorageRec {
        let mut s = StorageRec::new(ip, ip, st::ACTIVE);
        s.storage_port = 23000;
        s.store_path_count = 1;
        s.total_mb = 100_000;
        s.free_mb = free_mb;
        s.paths = vec![PathUsage {
            total_mb: 100_000,
            free_mb,
        }];
        s
    }

    fn group(name: &str, members: &[StorageRec]) -> Group {
        let mut g = Group::new(name);
        g.storage_port = 23000;
        g.store_path_count = 1;
        g.subdir_count_per_path = 256;
        for s in members {
            g.storages.insert(s.id.clone(), s.clone());
        }
        g.recompute_space();
        g
    }

    fn cluster(groups: Vec<Group>) -> Cluster {
        let mut c = Cluster::default();
        for g in groups {
            c.groups.insert(g.name.clone(), g);
        }
        c
    }

    #[test]
    fn no_groups_is_enoent() {
        let mut c = Cluster::default();
        assert_eq!(
            select_store(&mut c, &params(), None, false).map_err(|e| e.status),
            Err(Status::ENOENT)
        );
        assert_eq!(
            select_store(&mut c, &params(), Some("nogroup"), false).map_err(|e| e.status),
            Err(Status::ENOENT)
        );
    }

    #[test]
    fn round_robin_over_groups_and_servers() {
        let mut c = cluster(vec![
            group(
                "group1",
                &[storage("10.0.0.1", 50_000), storage("10.0.0.2", 50_000)],
            ),
            group("group2", &[storage("10.0.1.1", 50_000)]),
        ]);
        let p = params();
        let picks: Vec<(String, String)> = (0..4)
            .map(|_| {
                let c = select_store(&mut c, &p, None, false).unwrap();
                (c.group, c.servers[0].ip.clone())
            })
            .collect();
        assert_eq!(picks[0], ("group1".into(), "10.0.0.1".into()));
        assert_eq!(picks[1], ("group2".into(), "10.0.1.1".into()));
        assert_eq!(picks[2], ("group1".into(), "10.0.0.2".into()));
        assert_eq!(picks[3], ("group2".into(), "10.0.1.1".into()));
    }

    #[test]
    fn first_by_ip_and_priority() {
        let mut a = storage("10.0.0.1", 50_000);
        a.upload_priority = 10;
        let mut b = storage("10.0.0.2", 50_000);
        b.upload_priority = 1;
        let mut c = cluster(vec![group("group1", &[a, b])]);
        let mut p = params();
        p.store_server = STORE_SERVER_FIRST_BY_IP;
        for _ in 0..2 {
            let r = select_store(&mut c, &p, Some("group1"), false).unwrap();
            assert_eq!(r.servers[0].ip, "10.0.0.1");
        }
        p.store_server = STORE_SERVER_FIRST_BY_PRI;
        let r = select_store(&mut c, &p, Some("group1"), false).unwrap();
        assert_eq!(r.servers[0].ip, "10.0.0.2");
        let all = select_store(&mut c, &p, Some("group1"), true).unwrap();
        assert_eq!(all.servers.len(), 2);
    }

    #[test]
    fn load_balance_picks_most_free_group() {
        let mut c = cluster(vec![
            group("group1", &[storage("10.0.0.1", 20_000)]),
            group("group2", &[storage("10.0.1.1", 80_000)]),
        ]);
        let mut p = params();
        p.store_lookup = STORE_LOOKUP_LOAD_BALANCE;
        recompute_load_balance(&mut c);
        for _ in 0..2 {
            assert_eq!(
                select_store(&mut c, &p, None, false).unwrap().group,
                "group2"
            );
        }
    }

    #[test]
    fn reserved_space_enospc_and_skip() {
        // Default reservation is 1024 MB.
        let mut c = cluster(vec![
            group("group1", &[storage("10.0.0.1", 1000)]),
            group("group2", &[storage("10.0.1.1", 5000)]),
        ]);
        let p = params();
        assert_eq!(
            select_store(&mut c, &p, Some("group1"), false).map_err(|e| e.status),
            Err(Status::ENOSPC)
        );
        // Without a group the full group is skipped.
        for _ in 0..3 {
            assert_eq!(
                select_store(&mut c, &p, None, false).unwrap().group,
                "group2"
            );
        }
        c.groups.get_mut("group2").unwrap().free_mb = 10;
        assert_eq!(
            select_store(&mut c, &p, None, false).map_err(|e| e.status),
            Err(Status::ENOSPC)
        );
        // Ratio mode: 20% of 100000 MB.
        let mut p2 = params();
        p2.reserved = ReservedSpace::Ratio(0.2);
        let mut c2 = cluster(vec![group("group1", &[storage("10.0.0.1", 20_001)])]);
        assert!(select_store(&mut c2, &p2, None, false).is_ok());
        let mut c3 = cluster(vec![group("group1", &[storage("10.0.0.1", 20_000)])]);
        assert_eq!(
            select_store(&mut c3, &p2, None, false).map_err(|e| e.status),
            Err(Status::ENOSPC)
        );
    }

    #[test]
    fn store_path_round_robin_skips_full_paths() {
        let mut s = storage("10.0.0.1", 50_000);
        s.paths = vec![
            PathUsage {
                total_mb: 10_000,
                free_mb: 9_000,
            },
            PathUsage {
                total_mb: 10_000,
                free_mb: 100,
            },
            PathUsage {
                total_mb: 10_000,
                free_mb: 9_000,
            },
        ];
        let p = params();
        // 1024 MB spread over 3 paths: 341 MB per path.
        let picks: Vec<u8> = (0..4)
            .map(|_| pick_path(&mut s, 3, 0, &p).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 2, 2, 0]);
        s.paths.iter_mut().for_each(|u| u.free_mb = 1);
        assert_eq!(
            pick_path(&mut s, 3, 0, &p).map_err(|e| e.status),
            Err(Status::ENOSPC)
        );
        // Free trunk space makes room (the current write path first).
        s.current_write_path = 1;
        assert_eq!(pick_path(&mut s, 3, 400, &p).unwrap(), 1);
    }

    #[test]
    fn trunk_files_force_a_store_server() {
        let conf = TrackerConf {
            use_trunk_file: true,
            ..TrackerConf::default()
        };
        assert_eq!(conf.store_server, STORE_SERVER_ROUND_ROBIN);
        assert_eq!(
            SelectParams::from_conf(&conf).store_server,
            STORE_SERVER_FIRST_BY_IP
        );
        let by_pri = TrackerConf {
            store_server: STORE_SERVER_FIRST_BY_PRI,
            ..conf
        };
        assert_eq!(
            SelectParams::from_conf(&by_pri).store_server,
            STORE_SERVER_FIRST_BY_PRI
        );
    }

    #[test]
    fn trunk_space_makes_room_when_the_disks_have_none() {
        // Default reservation is 1024 MB; both groups are below it.
        let mut c = cluster(vec![
            group("group1", &[storage("10.0.0.1", 1000)]),
            group("group2", &[storage("10.0.1.1", 900)]),
        ]);
        c.groups.get_mut("group2").unwrap().trunk_free_mb = 500;
        let mut p = params();
        assert_eq!(
            select_store(&mut c, &p, None, false).map_err(|e| e.status),
            Err(Status::ENOSPC)
        );
        p.use_trunk_file = true;
        assert_eq!(
            select_store(&mut c, &p, None, false).unwrap().group,
            "group2"
        );
        assert_eq!(
            select_store(&mut c, &p, Some("group1"), false).map_err(|e| e.status),
            Err(Status::ENOSPC)
        );
        let chosen = select_store(&mut c, &p, Some("group2"), false).unwrap();
        assert_eq!(chosen.store_path_index, 0);
    }

    #[test]
    fn offline_storage_is_not_writable() {
        let mut s = storage("10.0.0.1", 50_000);
        s.status = st::OFFLINE;
        let mut c = cluster(vec![group("group1", &[s])]);
        assert_eq!(
            select_store(&mut c, &params(), None, false).map_err(|e| e.status),
            Err(Status::ENOENT)
        );
    }

    fn facts(ip: &str, ts: i64) -> FileFacts {
        FileFacts {
            source: SourceKey::Ip(ip.into()),
            timestamp: ts,
            normal: true,
        }
    }

    #[test]
    fn fetch_sync_timestamp_rule() {
        let now = 1_000_000;
        let p = params();
        let src = storage("10.0.0.1", 50_000);
        let mut peer = storage("10.0.0.2", 50_000);
        // Fresh file not yet synced to the peer: only the source qualifies.
        peer.stats.last_synced_timestamp = now - 100;
        assert!(may_have_file(&src, &facts("10.0.0.1", now - 10), now, &p));
        assert!(!may_have_file(&peer, &facts("10.0.0.1", now - 10), now, &p));
        // Peer synced past the file time.
        assert!(may_have_file(&peer, &facts("10.0.0.1", now - 101), now, &p));
        // Older than storage_sync_file_max_delay: assumed everywhere.
        assert!(may_have_file(
            &peer,
            &facts("10.0.0.1", now - 86_401),
            now,
            &p
        ));
        // synced + 1 >= T and the file is older than max_time (300 s).
        peer.stats.last_synced_timestamp = now - 400;
        assert!(may_have_file(&peer, &facts("10.0.0.1", now - 399), now, &p));
        assert!(!may_have_file(
            &peer,
            &facts("10.0.0.1", now - 398),
            now,
            &p
        ));

        let mut g = group("group1", &[src, peer]);
        // Round robin skips the peer that cannot have the file yet.
        for _ in 0..3 {
            let t = select_fetch(
                &mut g,
                FetchKind::One,
                &facts("10.0.0.1", now - 10),
                &p,
                now,
            )
            .unwrap();
            assert_eq!(t[0].ip, "10.0.0.1");
        }
        let all = select_fetch(
            &mut g,
            FetchKind::All,
            &facts("10.0.0.1", now - 10),
            &p,
            now,
        )
        .unwrap();
        assert_eq!(all.len(), 1);
        // An old file alternates between both.
        let a = select_fetch(&mut g, FetchKind::One, &facts("10.0.0.1", 5), &p, now).unwrap();
        let b = select_fetch(&mut g, FetchKind::One, &facts("10.0.0.1", 5), &p, now).unwrap();
        assert_ne!(a[0].ip, b[0].ip);
    }

    #[test]
    fn fetch_cursor_continues_after_a_wrapped_pick() {
        let now = 1_000_000;
        let p = params();
        let src = storage("10.0.0.1", 50_000);
        let mut peer = storage("10.0.0.2", 50_000);
        peer.stats.last_synced_timestamp = now - 100;
        let mut g = group("group1", &[src, peer]);
        // Fresh files (only the source has them) interleaved with old ones
        // (both have them): the old ones must still reach the peer. Two
        // fresh reads first leave the cursor where a pick wraps around.
        let fresh = facts("10.0.0.1", now - 10);
        let old = facts("10.0.0.1", now - 200);
        select_fetch(&mut g, FetchKind::One, &fresh, &p, now).unwrap();
        let mut peer_picks = 0;
        for _ in 0..4 {
            let t = select_fetch(&mut g, FetchKind::One, &fresh, &p, now).unwrap();
            assert_eq!(t[0].ip, "10.0.0.1");
            let t = select_fetch(&mut g, FetchKind::One, &old, &p, now).unwrap();
            peer_picks += usize::from(t[0].ip == "10.0.0.2");
        }
        assert!(peer_picks >= 2, "peer chosen {peer_picks} of 4 times");
    }

    #[test]
    fn fetch_fallback_and_update() {
        let now = 1_000_000;
        let p = params();
        let mut peer = storage("10.0.0.2", 50_000);
        peer.stats.last_synced_timestamp = 0;
        let mut g = group("group1", &[peer]);
        // Source unknown to the group and no peer synced: fallback store server.
        let t = select_fetch(&mut g, FetchKind::One, &facts("10.9.9.9", now - 5), &p, now).unwrap();
        assert_eq!(t[0].ip, "10.0.0.2");
        let u = select_fetch(&mut g, FetchKind::Update, &facts("10.9.9.9", now), &p, now).unwrap();
        assert_eq!(u[0].ip, "10.0.0.2");
        g.storages.get_mut("10.0.0.2").unwrap().status = st::OFFLINE;
        assert_eq!(
            select_fetch(&mut g, FetchKind::One, &facts("10.0.0.2", now), &p, now)
                .map_err(|e| e.status),
            Err(Status::ENOENT)
        );
        assert_eq!(
            select_fetch(&mut g, FetchKind::Update, &facts("10.0.0.2", now), &p, now)
                .map_err(|e| e.status),
            Err(Status::ENOENT)
        );
    }

    #[test]
    fn decode_facts_from_name() {
        let rec = FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: 1_700_000_000,
            size_field: fdfs_proto::fileid::normal_size_field(14, 7),
            crc32: 1,
        };
        let name = format!("M00/00/00/{}123.txt", rec.encode());
        let f = decode_file_facts(name.as_bytes());
        assert_eq!(f.source, SourceKey::Ip("127.0.0.1".into()));
        assert_eq!(f.timestamp, 1_700_000_000);
        assert!(f.normal);
        // Short garbage never panics.
        let _ = decode_file_facts(b"xxxxxxxxxxxxxxxxxxxxxx");
        let _ = decode_file_facts(b"");
        let _ = decode_file_facts(&[0xff; 200]);
    }
}
