//! Cluster state held by the tracker: groups, storage records (`group`),
//! and the storage status machine of PROTOCOL.md §4.4. Everything here is
//! plain data and synchronous; callers hold the cluster mutex while they
//! use it.

mod group;

use std::collections::BTreeMap;

use fdfs_proto::stat::{storage_status as st, StorageBrief};
use fdfs_proto::tracker_msg::{JoinReq, PathUsage};
use fdfs_proto::Status;

use crate::handler::OpError;

pub use group::{
    is_available, is_visible, status_after_restart, Group, StorageRec, RW_BOTH, RW_READ,
};

/// Everything the tracker knows about the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// Groups by name (the sort order every listing uses).
    pub groups: BTreeMap<String, Group>,
    /// Index into the name-ordered groups for uploads without a group.
    pub current_write_group: usize,
    /// Contents of storage_changelog.dat (small: one line per delete).
    pub changelog: Vec<u8>,
    /// Bumped whenever any group's trunk server changes: a follower's
    /// PING_LEADER answer carries the trunk list again (§4.8).
    pub trunk_gen: u64,
}

/// What a JOIN asks for (the request, already validated by the wire
/// decoder and the text guard) and what the tracker made of it.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    pub req: JoinReq,
    /// The record's key: the storage id, or the address in IP mode.
    pub id: String,
    /// The address the storage is listed under.
    pub ip: String,
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

    /// Appoints `id` (or nobody) as the trunk server of `group`. Returns the
    /// previous one when this is a change.
    pub fn set_trunk_server(&mut self, group: &str, id: Option<&str>) -> Option<Option<String>> {
        let changed = self.groups.get_mut(group)?.set_trunk_server(id);
        if changed.is_some() {
            self.trunk_gen += 1;
        }
        changed
    }

    pub fn storage(&self, group: &str, id: &str) -> Option<&StorageRec> {
        self.groups.get(group)?.storages.get(id)
    }

    pub fn storage_mut(&mut self, group: &str, id: &str) -> Option<&mut StorageRec> {
        self.groups.get_mut(group)?.storages.get_mut(id)
    }

    /// JOIN (§4.2): creates or updates the group and storage records and
    /// returns (status, sync source id) for the answer.
    pub fn join(&mut self, j: &JoinInfo, conn_gen: u64) -> Result<(u8, String), JoinError> {
        let changelog_len = self.changelog.len() as u64;
        let group = self
            .groups
            .entry(j.req.group.clone())
            .or_insert_with(|| Group::new(&j.req.group));
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
            && group.storage_port != j.req.storage_port
            && others.iter().any(|s| s.storage_port != j.req.storage_port)
        {
            return Err(JoinError::Mismatch);
        }
        if group.store_path_count != 0
            && j.req.store_path_count < group.store_path_count
            && !others.is_empty()
        {
            return Err(JoinError::Mismatch);
        }
        if group.subdir_count_per_path != 0
            && group.subdir_count_per_path != j.req.subdir_count_per_path
            && others
                .iter()
                .any(|s| s.subdir_count_per_path != j.req.subdir_count_per_path)
        {
            return Err(JoinError::Mismatch);
        }
        let known = group.storages.contains_key(&j.id);
        if !known
            && !j.req.init_flag
            && (j.req.status < 0
                || matches!(j.req.status as u8, st::DELETED | st::IP_CHANGED | st::NONE))
        {
            return Err(JoinError::BadStatus);
        }
        group.storage_port = j.req.storage_port;
        group.store_path_count = group.store_path_count.max(j.req.store_path_count);
        group.subdir_count_per_path = j.req.subdir_count_per_path;

        let old_status = group.storages.get(&j.id).map(|s| s.status);
        let rec = group
            .storages
            .entry(j.id.clone())
            .or_insert_with(|| StorageRec::new(&j.id, &j.ip, st::INIT));
        let mut status = match old_status {
            None if !j.req.init_flag && j.req.status > 0 => {
                if j.req.status as u8 == st::ACTIVE {
                    st::ONLINE
                } else {
                    j.req.status as u8
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
        rec.storage_port = j.req.storage_port;
        rec.store_path_count = j.req.store_path_count;
        rec.subdir_count_per_path = j.req.subdir_count_per_path;
        rec.upload_priority = j.req.upload_priority;
        rec.join_time = j.req.join_time;
        rec.up_time = j.req.up_time;
        rec.version = j.req.version.clone();
        rec.conn_gen = conn_gen;
        rec.live_peer = Some(j.peer_ip.clone());
        if rec.paths.len() != j.req.store_path_count as usize {
            rec.paths.resize(
                j.req.store_path_count as usize,
                PathUsage {
                    total_mb: 0,
                    free_mb: 0,
                },
            );
        }
        if rec.current_write_path >= j.req.store_path_count {
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
                s.status = status_after_restart(s.status);
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
    pub fn delete_storage(&mut self, group: &str, id: &str, now: i64) -> Result<String, OpError> {
        let g = self.groups.get_mut(group).ok_or_else(|| no_group(group))?;
        let (cur, live) = g
            .storages
            .get(id)
            .map(|s| (s.status, s.is_live()))
            .ok_or_else(|| no_storage(group, id))?;
        match cur {
            st::IP_CHANGED => return Err(no_storage(group, id)),
            st::ONLINE | st::ACTIVE | st::RECOVERY => return Err(in_service(id, cur)),
            st::DELETED => {
                return Err(OpError::new(
                    Status::EALREADY,
                    format!("storage {id} is already deleted"),
                ))
            }
            // Its storage is connected (the status alone can be OFFLINE
            // after a missed heartbeat, or WAIT_SYNC): not deleted under it.
            _ if live => return Err(connected(id)),
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
    ) -> Result<String, OpError> {
        let g = self.groups.get_mut(group).ok_or_else(|| no_group(group))?;
        let rec = g.storages.get(old).ok_or_else(|| no_storage(group, old))?;
        match rec.status {
            st::DELETED => return Err(no_storage(group, old)),
            st::IP_CHANGED => {
                return Err(OpError::new(
                    Status::EALREADY,
                    format!("storage {old} has already changed its address"),
                ))
            }
            st::ONLINE | st::ACTIVE | st::RECOVERY => return Err(in_service(old, rec.status)),
            _ if rec.is_live() => return Err(connected(old)),
            _ => {}
        }
        if g.storages.get(new).is_some_and(|s| is_visible(s.status)) {
            return Err(OpError::new(
                Status::EEXIST,
                format!("storage {new} exists in group {group}"),
            ));
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
    pub fn delete_group(&mut self, group: &str) -> Result<(), OpError> {
        let g = self.groups.get(group).ok_or_else(|| no_group(group))?;
        if g.visible().next().is_some() {
            return Err(OpError::new(
                Status::EBUSY,
                format!("group {group} still has storages"),
            ));
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

/// ENOENT for a group this tracker does not know.
pub fn no_group(group: &str) -> OpError {
    OpError::not_found(format!("no group {group}"))
}

/// ENOENT for a storage that is not (or no longer) a member of `group`.
pub fn no_storage(group: &str, id: &str) -> OpError {
    OpError::not_found(format!("no storage {id} in group {group}"))
}

/// EBUSY: the storage's status says it is in service.
fn in_service(id: &str, status: u8) -> OpError {
    OpError::new(
        Status::EBUSY,
        format!("storage {id} is in service (status {status})"),
    )
}

/// EBUSY: the storage is connected, whatever its status says.
fn connected(id: &str) -> OpError {
    OpError::new(Status::EBUSY, format!("storage {id} is connected"))
}

/// The JOIN of a new storage of group1 at `ip` (tests).
#[cfg(test)]
pub(crate) fn join_info(ip: &str) -> JoinInfo {
    JoinInfo {
        req: JoinReq {
            up_time: 2,
            ..fdfs_testkit::join_req()
        },
        id: ip.into(),
        ip: ip.into(),
        rw_mode: RW_BOTH,
        peer_ip: ip.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        j.req.init_flag = false;
        assert_eq!(c.join(&j, 1), Err(JoinError::BadStatus));
        j.req.status = st::ACTIVE as i8;
        assert_eq!(c.join(&j, 1).unwrap().0, st::ONLINE);
    }

    #[test]
    fn join_port_mismatch() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        let mut j = join_info("10.0.0.2");
        j.req.storage_port = 23001;
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

    /// 10.0.0.1 joined on connection 1 and set to `status`.
    fn joined_with(status: u8) -> Cluster {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        c.groups
            .get_mut("group1")
            .unwrap()
            .set_status("10.0.0.1", status);
        c
    }

    #[test]
    fn delete_rules() {
        let mut c = joined_with(st::ACTIVE);
        assert_eq!(
            c.delete_storage("group1", "10.0.0.1", 5)
                .map_err(|e| e.status),
            Err(Status::EBUSY)
        );
        assert_eq!(
            c.delete_group("group1").map_err(|e| e.status),
            Err(Status::EBUSY)
        );
        c.disconnected("group1", "10.0.0.1", 1);
        let line = c.delete_storage("group1", "10.0.0.1", 5).unwrap();
        assert_eq!(line, "5 group1 10.0.0.1 4 \n");
        assert_eq!(
            c.delete_storage("group1", "10.0.0.1", 5)
                .map_err(|e| e.status),
            Err(Status::EALREADY)
        );
        assert_eq!(
            c.delete_storage("group1", "x", 5).map_err(|e| e.status),
            Err(Status::ENOENT)
        );
        assert_eq!(c.delete_group("group1"), Ok(()));
        assert_eq!(
            c.delete_group("group1").map_err(|e| e.status),
            Err(Status::ENOENT)
        );
    }

    #[test]
    fn a_live_record_is_held_by_its_connection_address() {
        let mut c = Cluster::default();
        c.join(&join_info("10.0.0.1"), 1).unwrap();
        let mut other = join_info("10.0.0.1");
        other.peer_ip = "10.0.0.66".into();
        other.req.storage_port = 1;
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
        // WAIT_SYNC (or OFFLINE after a missed heartbeat) while connected.
        let mut c = joined_with(st::WAIT_SYNC);
        assert_eq!(
            c.delete_storage("group1", "10.0.0.1", 5)
                .map_err(|e| e.status),
            Err(Status::EBUSY)
        );
        assert_eq!(
            c.ip_changed("group1", "10.0.0.1", "10.0.0.2", 5)
                .map_err(|e| e.status),
            Err(Status::EBUSY)
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
