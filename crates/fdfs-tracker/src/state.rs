//! Cluster state held by the tracker: groups, storage records, and the
//! storage status machine of PROTOCOL.md §4.4. Everything here is plain data
//! and synchronous; callers hold the cluster mutex while they use it.

use std::collections::BTreeMap;

use fdfs_proto::stat::{storage_status as st, StorageBrief, StorageStats};
use fdfs_proto::tracker_msg::PathUsage;

/// rw_mode bit: the storage may serve reads (`R_OK`).
pub const RW_READ: u8 = 4;
/// rw_mode bit: the storage may take uploads (`W_OK`).
pub const RW_WRITE: u8 = 2;
/// rw_mode of a storage without a storage_ids.conf restriction.
pub const RW_BOTH: u8 = RW_READ | RW_WRITE;

/// OFFLINE, ONLINE or ACTIVE (`FDFS_IS_AVAILABLE_STATUS`).
pub fn is_available(status: u8) -> bool {
    matches!(status, st::OFFLINE | st::ONLINE | st::ACTIVE)
}

/// Records that still describe a member: DELETED and IP_CHANGED ones are
/// kept in memory only to decide how a later JOIN is treated.
pub fn is_visible(status: u8) -> bool {
    !matches!(status, st::DELETED | st::IP_CHANGED)
}

/// One storage server as the tracker knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRec {
    /// The storage key; in IP mode the IP text.
    pub id: String,
    pub ip: String,
    pub status: u8,
    pub rw_mode: u8,
    pub version: String,
    pub join_time: i64,
    /// Process start time of the storage; 0 while it is offline.
    pub up_time: i64,
    pub storage_port: u16,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    /// Storage that feeds this one its initial copy (empty if none).
    pub sync_src_id: String,
    pub sync_until_timestamp: i64,
    pub total_mb: i64,
    pub free_mb: i64,
    /// Per store path totals from the last disk report.
    pub paths: Vec<PathUsage>,
    pub current_write_path: u32,
    /// Bytes of the changelog already delivered to this storage.
    pub changelog_offset: u64,
    /// Counters from BEAT; `last_heart_beat_time` and
    /// `last_synced_timestamp` are maintained by the tracker itself.
    pub stats: StorageStats,
    /// For this storage as a sync source: the newest timestamp each peer
    /// (by id) reported having received from it.
    pub synced_by: BTreeMap<String, i64>,
    /// Generation of the connection that owns the record (its last JOIN);
    /// a stale connection closing must not take a fresh one offline.
    pub conn_gen: u64,
    /// Source IP of the joined connection that holds the record now; None
    /// once it closed. Runtime only (never persisted): while it is set, no
    /// connection from another address may JOIN as this storage, delete it
    /// or move it (REPORT_IP_CHANGED, REPORT_STATUS).
    pub live_peer: Option<String>,
}

impl StorageRec {
    pub fn new(id: &str, ip: &str, status: u8) -> Self {
        StorageRec {
            id: id.to_string(),
            ip: ip.to_string(),
            status,
            rw_mode: RW_BOTH,
            version: String::new(),
            join_time: 0,
            up_time: 0,
            storage_port: 0,
            store_path_count: 0,
            subdir_count_per_path: 0,
            upload_priority: 0,
            sync_src_id: String::new(),
            sync_until_timestamp: 0,
            total_mb: 0,
            free_mb: 0,
            paths: Vec::new(),
            current_write_path: 0,
            changelog_offset: 0,
            stats: StorageStats::default(),
            synced_by: BTreeMap::new(),
            conn_gen: 0,
            live_peer: None,
        }
    }

    /// True when a storage connection holds the record now.
    pub fn is_live(&self) -> bool {
        self.live_peer.is_some()
    }

    /// True when a request from `peer_ip` can come from this storage: its
    /// live connection's address, or the address it is listed under.
    pub fn is_reachable_from(&self, peer_ip: &str) -> bool {
        self.live_peer.as_deref() == Some(peer_ip) || self.ip == peer_ip
    }

    pub fn is_writable(&self) -> bool {
        self.status == st::ACTIVE && self.rw_mode & RW_WRITE != 0
    }

    pub fn is_readable(&self) -> bool {
        self.status == st::ACTIVE && self.rw_mode & RW_READ != 0
    }

    pub fn brief(&self) -> StorageBrief {
        StorageBrief {
            status: self.status,
            port: i32::from(self.storage_port),
            id: self.id.clone(),
            ip_addr: self.ip.clone(),
        }
    }

    /// Wipes what DELETE_STORAGE clears (stats and disk figures).
    fn clear_fields(&mut self) {
        self.stats = StorageStats::default();
        self.total_mb = 0;
        self.free_mb = 0;
        self.paths.clear();
        self.current_write_path = 0;
        self.sync_src_id.clear();
        self.sync_until_timestamp = 0;
        self.synced_by.clear();
        self.up_time = 0;
    }
}

/// One group and its members.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub storage_port: u16,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub current_trunk_file_id: i64,
    /// Members keyed (and therefore ordered) by id, as the C tracker sorts them.
    pub storages: BTreeMap<String, StorageRec>,
    /// Space of the writable member with the least free space, refreshed on
    /// disk reports.
    pub total_mb: i64,
    pub free_mb: i64,
    /// Round-robin cursor over writable members (store_server = 0).
    pub current_write_server: usize,
    /// Round-robin cursor over readable members (downloads).
    pub current_read_server: usize,
    /// Bumped on every membership or status change; connections compare it
    /// with the value they last reported to decide on the group-list flag.
    pub change_count: u64,
}

impl Group {
    pub fn new(name: &str) -> Self {
        Group {
            name: name.to_string(),
            storage_port: 0,
            store_path_count: 0,
            subdir_count_per_path: 0,
            current_trunk_file_id: 0,
            storages: BTreeMap::new(),
            total_mb: 0,
            free_mb: 0,
            current_write_server: 0,
            current_read_server: 0,
            change_count: 0,
        }
    }

    /// Writable members in id order.
    pub fn writable(&self) -> Vec<&StorageRec> {
        self.storages.values().filter(|s| s.is_writable()).collect()
    }

    /// Readable members in id order.
    pub fn readable(&self) -> Vec<&StorageRec> {
        self.storages.values().filter(|s| s.is_readable()).collect()
    }

    /// Members that are neither DELETED nor IP_CHANGED, in id order.
    pub fn visible(&self) -> impl Iterator<Item = &StorageRec> {
        self.storages.values().filter(|s| is_visible(s.status))
    }

    /// The group member list sent to storages (§4.3).
    pub fn briefs(&self) -> Vec<StorageBrief> {
        self.visible().map(StorageRec::brief).collect()
    }

    /// Sets a member's status, counting a real change. Returns true when the
    /// status changed.
    pub fn set_status(&mut self, id: &str, status: u8) -> bool {
        let Some(s) = self.storages.get_mut(id) else {
            return false;
        };
        if s.status == status {
            return false;
        }
        s.status = status;
        if status == st::OFFLINE {
            // An offline storage has no uptime to show.
            s.up_time = 0;
        }
        self.change_count += 1;
        true
    }

    /// Group total/free = the writable member with the least free space.
    pub fn recompute_space(&mut self) {
        let least = self
            .writable()
            .into_iter()
            .min_by_key(|s| s.free_mb)
            .map(|s| (s.total_mb, s.free_mb));
        if let Some((total, free)) = least {
            self.total_mb = total;
            self.free_mb = free;
        }
    }

    /// The group's "store server": lowest upload_priority when
    /// `store_server = 2`, otherwise the first writable member.
    pub fn store_server(&self, store_server_mode: u8) -> Option<&StorageRec> {
        let w = self.writable();
        if store_server_mode == fdfs_config::tracker::STORE_SERVER_FIRST_BY_PRI {
            w.into_iter().min_by_key(|s| s.upload_priority)
        } else {
            w.into_iter().next()
        }
    }
}

/// Everything the tracker knows about the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// Groups by name (the sort order every listing uses).
    pub groups: BTreeMap<String, Group>,
    /// Index into the name-ordered groups for uploads without a group.
    pub current_write_group: usize,
    /// Contents of storage_changelog.dat (small: one line per delete).
    pub changelog: Vec<u8>,
}

/// What a JOIN asks for, already validated by the wire decoder.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    pub group: String,
    pub id: String,
    pub ip: String,
    pub storage_port: u16,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    pub join_time: i64,
    pub up_time: i64,
    pub version: String,
    pub init_flag: bool,
    pub status: i8,
    /// From storage_ids.conf (`rw=`); [`RW_BOTH`] in IP mode.
    pub rw_mode: u8,
    /// Source IP of the joining connection.
    pub peer_ip: String,
}

/// Why a JOIN was refused; each maps to the C tracker's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// Port / path count / subdir count disagree with the group (EINVAL).
    Mismatch,
    /// Unknown storage reporting a status it cannot have (EFAULT).
    BadStatus,
    /// The record is held by a live connection from another address
    /// (EBUSY): a second host must not take a running storage over.
    Busy,
}

impl Cluster {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Records loaded from the data files take their rw_mode from
    /// storage_ids.conf, which is not persisted with them.
    pub fn apply_storage_ids(&mut self, ids: &fdfs_config::StorageIds) {
        for g in self.groups.values_mut() {
            for s in g.storages.values_mut() {
                if let Some(e) = ids.find_by_id(&s.id) {
                    s.rw_mode = e.rw_mode;
                }
            }
        }
    }

    pub fn storage(&self, group: &str, id: &str) -> Option<&StorageRec> {
        self.groups.get(group)?.storages.get(id)
    }

    /// JOIN (§4.2): creates or updates the group and storage records and
    /// returns (status, sync source id) for the answer.
    pub fn join(&mut self, j: &JoinInfo, conn_gen: u64) -> Result<(u8, String), JoinError> {
        let changelog_len = self.changelog.len() as u64;
        let group = self
            .groups
            .entry(j.group.clone())
            .or_insert_with(|| Group::new(&j.group));
        if group
            .storages
            .get(&j.id)
            .and_then(|s| s.live_peer.as_deref())
            .is_some_and(|live| live != j.peer_ip)
        {
            return Err(JoinError::Busy);
        }
        // Other members (not this one, not deleted) constrain the group shape.
        let others: Vec<&StorageRec> = group
            .storages
            .values()
            .filter(|s| s.id != j.id && is_visible(s.status))
            .collect();
        if group.storage_port != 0
            && group.storage_port != j.storage_port
            && others.iter().any(|s| s.storage_port != j.storage_port)
        {
            return Err(JoinError::Mismatch);
        }
        if group.store_path_count != 0
            && j.store_path_count < group.store_path_count
            && !others.is_empty()
        {
            return Err(JoinError::Mismatch);
        }
        if group.subdir_count_per_path != 0
            && group.subdir_count_per_path != j.subdir_count_per_path
            && others
                .iter()
                .any(|s| s.subdir_count_per_path != j.subdir_count_per_path)
        {
            return Err(JoinError::Mismatch);
        }
        let known = group.storages.contains_key(&j.id);
        if !known
            && !j.init_flag
            && (j.status < 0 || matches!(j.status as u8, st::DELETED | st::IP_CHANGED | st::NONE))
        {
            return Err(JoinError::BadStatus);
        }
        group.storage_port = j.storage_port;
        group.store_path_count = group.store_path_count.max(j.store_path_count);
        group.subdir_count_per_path = j.subdir_count_per_path;

        let old_status = group.storages.get(&j.id).map(|s| s.status);
        let rec = group
            .storages
            .entry(j.id.clone())
            .or_insert_with(|| StorageRec::new(&j.id, &j.ip, st::INIT));
        let mut status = match old_status {
            None if !j.init_flag && j.status > 0 => {
                if j.status as u8 == st::ACTIVE {
                    st::ONLINE
                } else {
                    j.status as u8
                }
            }
            None => st::INIT,
            Some(st::DELETED | st::IP_CHANGED) => st::INIT,
            Some(s) => s,
        };
        if matches!(status, st::OFFLINE | st::RECOVERY) {
            status = st::ONLINE;
        }
        if status == st::INIT {
            rec.changelog_offset = changelog_len;
        }
        rec.ip = j.ip.clone();
        rec.rw_mode = j.rw_mode;
        rec.storage_port = j.storage_port;
        rec.store_path_count = j.store_path_count;
        rec.subdir_count_per_path = j.subdir_count_per_path;
        rec.upload_priority = j.upload_priority;
        rec.join_time = j.join_time;
        rec.up_time = j.up_time;
        rec.version = j.version.clone();
        rec.conn_gen = conn_gen;
        rec.live_peer = Some(j.peer_ip.clone());
        if rec.paths.len() != j.store_path_count as usize {
            rec.paths.resize(
                j.store_path_count as usize,
                PathUsage {
                    total_mb: 0,
                    free_mb: 0,
                },
            );
        }
        if rec.current_write_path >= j.store_path_count {
            rec.current_write_path = 0;
        }
        let src = rec.sync_src_id.clone();
        if old_status != Some(status) {
            rec.status = status;
            group.change_count += 1;
        }
        Ok((status, src))
    }

    /// BEAT / REPORT_DISK_USAGE activation (§4.4). True if the status changed.
    pub fn activate(&mut self, group: &str, id: &str) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(s) = g.storages.get(id) else {
            return false;
        };
        if matches!(
            s.status,
            st::WAIT_SYNC | st::SYNCING | st::IP_CHANGED | st::INIT | st::DELETED | st::ACTIVE
        ) {
            return false;
        }
        g.set_status(id, st::ACTIVE)
    }

    /// A joined connection went away: the record is no longer live, and
    /// ACTIVE/ONLINE/OFFLINE → OFFLINE, up_time 0. Ignored when a newer
    /// connection owns the record.
    pub fn disconnected(&mut self, group: &str, id: &str, conn_gen: u64) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(s) = g.storages.get_mut(id) else {
            return false;
        };
        if s.conn_gen != conn_gen {
            return false;
        }
        s.live_peer = None;
        if matches!(s.status, st::ACTIVE | st::ONLINE | st::OFFLINE) {
            s.up_time = 0;
            return g.set_status(id, st::OFFLINE);
        }
        false
    }

    /// Periodic check: ACTIVE storages silent for longer than `interval_secs`
    /// go OFFLINE. Returns true if anything changed.
    pub fn check_active(&mut self, now: i64, interval_secs: i64) -> bool {
        let mut changed = false;
        for g in self.groups.values_mut() {
            let stale: Vec<String> = g
                .storages
                .values()
                .filter(|s| {
                    s.status == st::ACTIVE && now - s.stats.last_heart_beat_time > interval_secs
                })
                .map(|s| s.id.clone())
                .collect();
            for id in stale {
                changed |= g.set_status(&id, st::OFFLINE);
            }
        }
        changed
    }

    /// Start-up rule: loaded records not in WAIT_SYNC/SYNCING/INIT become
    /// OFFLINE (DELETED/IP_CHANGED records are never persisted).
    pub fn offline_after_load(&mut self) {
        for g in self.groups.values_mut() {
            for s in g.storages.values_mut() {
                if !matches!(s.status, st::WAIT_SYNC | st::SYNCING | st::INIT) {
                    s.status = st::OFFLINE;
                }
                s.up_time = 0;
            }
        }
    }

    /// CHANGE_STATUS (59): returns true if the status changed.
    pub fn change_status(&mut self, group: &str, id: &str, wanted: u8) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(cur) = g.storages.get(id).map(|s| s.status) else {
            return false;
        };
        if cur == wanted || (is_available(cur) && is_available(wanted)) {
            return false;
        }
        let new = if matches!(wanted, st::ONLINE | st::ACTIVE) {
            st::OFFLINE
        } else {
            wanted
        };
        g.set_status(id, new)
    }

    /// REPORT_STATUS merge rule (§4.4) for a storage this tracker knows.
    /// Returns true if the state changed. Unlike the original, a brief about
    /// an unknown storage creates no record: its address would be the
    /// reporter's word alone, and the group's members would start sending
    /// their files there (the storage JOINs this tracker itself anyway).
    /// DELETED / IP_CHANGED are not applied to a live record.
    pub fn merge_brief(&mut self, group: &str, brief: &StorageBrief) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        if brief.status == st::NONE || brief.id.is_empty() {
            return false;
        }
        let Some((cur, live)) = g.storages.get(&brief.id).map(|s| (s.status, s.is_live())) else {
            return false;
        };
        if cur == brief.status || matches!(cur, st::INIT | st::ONLINE | st::ACTIVE | st::RECOVERY) {
            return false;
        }
        let removal = matches!(brief.status, st::DELETED | st::IP_CHANGED);
        if (removal && !live) || (!removal && brief.status > cur) {
            return g.set_status(&brief.id, brief.status);
        }
        false
    }

    /// True when `peer_ip` is the address of a member of `group` (its live
    /// connection's or its listed one).
    pub fn is_member_address(&self, group: &str, peer_ip: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.visible().any(|s| s.is_reachable_from(peer_ip)))
    }

    /// True when `peer_ip` is the address of any storage this tracker knows.
    pub fn is_storage_address(&self, peer_ip: &str) -> bool {
        self.groups
            .values()
            .any(|g| g.visible().any(|s| s.is_reachable_from(peer_ip)))
    }

    /// DELETE_STORAGE (93). On success the changelog line to append is
    /// returned (the caller writes it to disk).
    pub fn delete_storage(
        &mut self,
        group: &str,
        id: &str,
        now: i64,
    ) -> Result<String, fdfs_proto::Status> {
        use fdfs_proto::Status;
        let g = self.groups.get_mut(group).ok_or(Status::ENOENT)?;
        let (cur, live) = g
            .storages
            .get(id)
            .map(|s| (s.status, s.is_live()))
            .ok_or(Status::ENOENT)?;
        match cur {
            st::IP_CHANGED => return Err(Status::ENOENT),
            st::ONLINE | st::ACTIVE | st::RECOVERY => return Err(Status::EBUSY),
            st::DELETED => return Err(Status::EALREADY),
            // Its storage is connected (the status alone can be OFFLINE
            // after a missed heartbeat, or WAIT_SYNC): not deleted under it.
            _ if live => return Err(Status::EBUSY),
            _ => {}
        }
        for s in g.storages.values_mut() {
            if s.sync_src_id == id {
                s.sync_src_id.clear();
            }
            s.synced_by.remove(id);
        }
        if let Some(s) = g.storages.get_mut(id) {
            s.clear_fields();
        }
        g.set_status(id, st::DELETED);
        let line = format!("{} {} {} {} \n", now, group, id, st::DELETED);
        self.changelog.extend_from_slice(line.as_bytes());
        Ok(line)
    }

    /// REPORT_IP_CHANGED (78): the storage known as `old` is now at `new`.
    /// Its record (status, join time, sync source, statistics) moves to the
    /// new key, the old one becomes IP_CHANGED, and references to it follow.
    /// Returns the changelog line that tells the peers.
    pub fn ip_changed(
        &mut self,
        group: &str,
        old: &str,
        new: &str,
        now: i64,
    ) -> Result<String, fdfs_proto::Status> {
        use fdfs_proto::Status;
        let g = self.groups.get_mut(group).ok_or(Status::ENOENT)?;
        let rec = g.storages.get(old).ok_or(Status::ENOENT)?;
        match rec.status {
            st::DELETED => return Err(Status::ENOENT),
            st::IP_CHANGED => return Err(Status::EALREADY),
            st::ONLINE | st::ACTIVE | st::RECOVERY => return Err(Status::EBUSY),
            _ if rec.is_live() => return Err(Status::EBUSY),
            _ => {}
        }
        if g.storages.get(new).is_some_and(|s| is_visible(s.status)) {
            return Err(Status::EEXIST);
        }
        let mut moved = rec.clone();
        moved.id = new.to_string();
        moved.ip = new.to_string();
        moved.up_time = 0;
        g.storages.insert(new.to_string(), moved);
        for s in g.storages.values_mut() {
            if s.sync_src_id == old {
                s.sync_src_id = new.to_string();
            }
            if let Some(ts) = s.synced_by.remove(old) {
                s.synced_by.insert(new.to_string(), ts);
            }
        }
        if let Some(s) = g.storages.get_mut(old) {
            s.clear_fields();
        }
        g.set_status(old, st::IP_CHANGED);
        let line = format!("{} {} {} {} {}\n", now, group, old, st::IP_CHANGED, new);
        self.changelog.extend_from_slice(line.as_bytes());
        Ok(line)
    }

    /// DELETE_GROUP (108): EBUSY while the group has member records.
    pub fn delete_group(&mut self, group: &str) -> Result<(), fdfs_proto::Status> {
        let g = self.groups.get(group).ok_or(fdfs_proto::Status::ENOENT)?;
        if g.visible().next().is_some() {
            return Err(fdfs_proto::Status::EBUSY);
        }
        self.groups.remove(group);
        if self.current_write_group >= self.groups.len() {
            self.current_write_group = 0;
        }
        Ok(())
    }

    /// SYNC_REPORT (89) for `reporter`: records who synced what and updates
    /// the reporter's `last_synced_timestamp` (min for round robin uploads,
    /// max otherwise).
    pub fn sync_report(
        &mut self,
        group: &str,
        reporter: &str,
        entries: &[(String, i32)],
        round_robin: bool,
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(prev) = g
            .storages
            .get(reporter)
            .map(|s| s.stats.last_synced_timestamp)
        else {
            return;
        };
        let mut min_ts: i64 = 0;
        let mut max_ts: i64 = prev;
        for (src, ts) in entries {
            let ts = i64::from(*ts);
            if ts <= 0 || src == reporter {
                continue;
            }
            let Some(s) = g.storages.get_mut(src) else {
                continue;
            };
            if s.status != st::ACTIVE {
                continue;
            }
            s.synced_by.insert(reporter.to_string(), ts);
            if min_ts == 0 || ts < min_ts {
                min_ts = ts;
            }
            max_ts = max_ts.max(ts);
        }
        if let Some(r) = g.storages.get_mut(reporter) {
            if round_robin {
                if min_ts > 0 {
                    r.stats.last_synced_timestamp = min_ts;
                }
            } else {
                r.stats.last_synced_timestamp = max_ts;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_info(ip: &str) -> JoinInfo {
        JoinInfo {
            group: "group1".into(),
            id: ip.into(),
            ip: ip.into(),
            storage_port: 23000,
            store_path_count: 1,
            subdir_count_per_path: 256,
            upload_priority: 10,
            join_time: 1,
            up_time: 2,
            version: "6.16.1".into(),
            init_flag: true,
            status: -1,
            rw_mode: RW_BOTH,
            peer_ip: ip.into(),
        }
    }

    #[test]
    fn join_beat_close_cycle() {
        let mut c = Cluster::default();
        assert_eq!(
            c.join(&join_info("10.0.0.1"), 1),
            Ok((st::INIT, String::new()))
        );
        // INIT does not activate.
        assert!(!c.activate("group1", "10.0.0.1"));
        c.groups
            .get_mut("group1")
            .unwrap()
            .set_status("10.0.0.1", st::ONLINE);
        assert!(c.activate("group1", "10.0.0.1"));
        assert_eq!(c.storage("group1", "10.0.0.1").unwrap().status, st::ACTIVE);
        // A stale connection does not take it offline.
        assert!(!c.disconnected("group1", "10.0.0.1", 7));
        assert!(c.disconnected("group1", "10.0.0.1", 1));
        assert_eq!(c.storage("group1", "10.0.0.1").unwrap().status, st::OFFLINE);
        // Rejoin: OFFLINE → ONLINE.
        let (s, _) = c.join(&join_info("10.0.0.1"), 2).unwrap();
        assert_eq!(s, st::ONLINE);
    }

    #[test]
    fn heartbeat_timeout_goes_offline() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        let g = c.groups.get_mut("group1").unwrap();
        g.set_status("10.0.0.1", st::ACTIVE);
        g.storages
            .get_mut("10.0.0.1")
            .unwrap()
            .stats
            .last_heart_beat_time = 1000;
        assert!(!c.check_active(1100, 100));
        assert!(c.check_active(1101, 100));
        let s = c.storage("group1", "10.0.0.1").unwrap();
        assert_eq!((s.status, s.up_time), (st::OFFLINE, 0));
    }

    #[test]
    fn join_unknown_with_bad_status_is_efault() {
        let mut c = Cluster::default();
        let mut j = join_info("10.0.0.2");
        j.init_flag = false;
        assert_eq!(c.join(&j, 1), Err(JoinError::BadStatus));
        j.status = st::ACTIVE as i8;
        assert_eq!(c.join(&j, 1).unwrap().0, st::ONLINE);
    }

    #[test]
    fn join_port_mismatch() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        let mut j = join_info("10.0.0.2");
        j.storage_port = 23001;
        assert_eq!(c.join(&j, 2), Err(JoinError::Mismatch));
    }

    #[test]
    fn change_status_rules() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        let g = c.groups.get_mut("group1").unwrap();
        g.set_status("10.0.0.1", st::OFFLINE);
        assert!(!c.change_status("group1", "10.0.0.1", st::ACTIVE));
        assert!(c.change_status("group1", "10.0.0.1", st::WAIT_SYNC));
        assert!(c.change_status("group1", "10.0.0.1", st::ACTIVE));
        assert_eq!(c.storage("group1", "10.0.0.1").unwrap().status, st::OFFLINE);
    }

    #[test]
    fn merge_rule() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        c.groups
            .get_mut("group1")
            .unwrap()
            .set_status("10.0.0.1", st::WAIT_SYNC);
        let b = |s| StorageBrief {
            status: s,
            port: 0,
            id: "10.0.0.1".into(),
            ip_addr: "10.0.0.1".into(),
        };
        assert!(c.merge_brief("group1", &b(st::SYNCING)));
        assert!(!c.merge_brief("group1", &b(st::WAIT_SYNC)));
        assert!(c.merge_brief("group1", &b(st::OFFLINE)));
        assert_eq!(c.storage("group1", "10.0.0.1").unwrap().status, st::OFFLINE);
    }

    #[test]
    fn delete_rules() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        c.groups
            .get_mut("group1")
            .unwrap()
            .set_status("10.0.0.1", st::ACTIVE);
        assert_eq!(
            c.delete_storage("group1", "10.0.0.1", 5),
            Err(fdfs_proto::Status::EBUSY)
        );
        assert_eq!(c.delete_group("group1"), Err(fdfs_proto::Status::EBUSY));
        c.disconnected("group1", "10.0.0.1", 1);
        let line = c.delete_storage("group1", "10.0.0.1", 5).unwrap();
        assert_eq!(line, "5 group1 10.0.0.1 4 \n");
        assert_eq!(
            c.delete_storage("group1", "10.0.0.1", 5),
            Err(fdfs_proto::Status::EALREADY)
        );
        assert_eq!(
            c.delete_storage("group1", "x", 5),
            Err(fdfs_proto::Status::ENOENT)
        );
        assert_eq!(c.delete_group("group1"), Ok(()));
        assert_eq!(c.delete_group("group1"), Err(fdfs_proto::Status::ENOENT));
    }

    #[test]
    fn a_live_record_is_held_by_its_connection_address() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        let mut other = join_info("10.0.0.1");
        other.peer_ip = "10.0.0.66".into();
        other.storage_port = 1;
        assert_eq!(c.join(&other, 2), Err(JoinError::Busy));
        let s = c.storage("group1", "10.0.0.1").unwrap();
        assert_eq!((s.storage_port, s.conn_gen), (23000, 1), "untouched");
        // The same host may JOIN again (a restarted storage whose old
        // connection is not closed yet).
        assert!(c.join(&join_info("10.0.0.1"), 3).is_ok());
        // Closed: the record may be joined from elsewhere again.
        c.disconnected("group1", "10.0.0.1", 3);
        assert_eq!(c.storage("group1", "10.0.0.1").unwrap().live_peer, None);
        assert!(c.join(&other, 4).is_ok());
        assert_eq!(
            c.storage("group1", "10.0.0.1")
                .unwrap()
                .live_peer
                .as_deref(),
            Some("10.0.0.66")
        );
    }

    #[test]
    fn a_live_record_is_neither_deleted_nor_moved_nor_reported_away() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        // WAIT_SYNC (or OFFLINE after a missed heartbeat) while connected.
        c.groups
            .get_mut("group1")
            .unwrap()
            .set_status("10.0.0.1", st::WAIT_SYNC);
        assert_eq!(
            c.delete_storage("group1", "10.0.0.1", 5),
            Err(fdfs_proto::Status::EBUSY)
        );
        assert_eq!(
            c.ip_changed("group1", "10.0.0.1", "10.0.0.2", 5),
            Err(fdfs_proto::Status::EBUSY)
        );
        let deleted = StorageBrief {
            status: st::DELETED,
            port: 0,
            id: "10.0.0.1".into(),
            ip_addr: "10.0.0.1".into(),
        };
        assert!(!c.merge_brief("group1", &deleted));
        assert_eq!(
            c.storage("group1", "10.0.0.1").unwrap().status,
            st::WAIT_SYNC
        );
        assert!(c.is_member_address("group1", "10.0.0.1"));
        assert!(!c.is_member_address("group1", "10.0.0.9"));
        assert!(c.is_storage_address("10.0.0.1"));
        c.disconnected("group1", "10.0.0.1", 1);
        assert!(c.merge_brief("group1", &deleted));
    }

    #[test]
    fn a_brief_about_an_unknown_storage_creates_no_record() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        let brief = StorageBrief {
            status: st::WAIT_SYNC,
            port: 0,
            id: "10.0.0.66".into(),
            ip_addr: "10.0.0.66".into(),
        };
        assert!(!c.merge_brief("group1", &brief));
        assert!(c.storage("group1", "10.0.0.66").is_none());
    }

    #[test]
    fn sync_report_min_and_max() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        c.join(&join_info("10.0.0.2"), 2).unwrap();
        c.join(&join_info("10.0.0.3"), 3).unwrap();
        let g = c.groups.get_mut("group1").unwrap();
        for id in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            g.set_status(id, st::ACTIVE);
        }
        let entries = vec![
            ("10.0.0.1".to_string(), 100),
            ("10.0.0.2".to_string(), 50),
            ("10.0.0.3".to_string(), 0),
        ];
        c.sync_report("group1", "10.0.0.3", &entries, true);
        assert_eq!(
            c.storage("group1", "10.0.0.3")
                .unwrap()
                .stats
                .last_synced_timestamp,
            50
        );
        c.sync_report("group1", "10.0.0.3", &entries, false);
        assert_eq!(
            c.storage("group1", "10.0.0.3")
                .unwrap()
                .stats
                .last_synced_timestamp,
            100
        );
        assert_eq!(
            c.storage("group1", "10.0.0.1").unwrap().synced_by["10.0.0.3"],
            100
        );
    }
}
