//! A group and its storage records as the tracker keeps them, and the
//! status and rw_mode predicates (§4.4) that decide which members serve
//! uploads and downloads.

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

/// Status a loaded record starts with (§4.4): only WAIT_SYNC, SYNCING and
/// INIT survive a restart.
pub fn status_after_restart(saved: u8) -> u8 {
    if matches!(saved, st::WAIT_SYNC | st::SYNCING | st::INIT) {
        saved
    } else {
        st::OFFLINE
    }
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
    pub(super) fn clear_fields(&mut self) {
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
    /// Id of the group's trunk server (`use_trunk_file`, §11.5): chosen by
    /// the leader, learnt from it by followers.
    pub trunk_server: Option<String>,
    /// Id of the trunk server appointed last (kept when the group has none
    /// now), so a new appointment can tell it replaces another one.
    pub last_trunk_server: String,
    /// Bumped on every trunk server change; connections compare it with the
    /// value they last announced (heartbeat flag 2).
    pub trunk_change_count: u64,
    /// Free trunk space in MB as the trunk server last reported it (74).
    pub trunk_free_mb: i64,
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
            trunk_server: None,
            last_trunk_server: String::new(),
            trunk_change_count: 0,
            trunk_free_mb: 0,
        }
    }

    /// The trunk server's record, if the group has one.
    pub fn trunk_server_rec(&self) -> Option<&StorageRec> {
        self.storages.get(self.trunk_server.as_deref()?)
    }

    /// True when `id` is the group's trunk server.
    pub fn is_trunk_server(&self, id: &str) -> bool {
        self.trunk_server.as_deref() == Some(id)
    }

    /// Appoints `id` (or nobody) as trunk server. Returns the previous one
    /// when this is a change; the change counter moves, `last_trunk_server`
    /// follows the new one (it keeps the old one when there is none now, so
    /// the next appointment still sees whom it replaces) and the reported
    /// trunk space, which was the old server's, is forgotten.
    pub fn set_trunk_server(&mut self, id: Option<&str>) -> Option<Option<String>> {
        if self.trunk_server.as_deref() == id {
            return None;
        }
        let old = self.trunk_server.take();
        self.trunk_server = id.map(str::to_string);
        if let Some(id) = id {
            self.last_trunk_server = id.to_string();
        }
        self.trunk_change_count += 1;
        self.trunk_free_mb = 0;
        Some(old)
    }

    /// Writable members in id order.
    pub fn writable(&self) -> Vec<&StorageRec> {
        self.writable_iter().collect()
    }

    /// [`Self::writable`] without collecting them: every upload's query
    /// asks, and a list costs an allocation each time.
    pub fn writable_iter(&self) -> impl Iterator<Item = &StorageRec> {
        self.storages.values().filter(|s| s.is_writable())
    }

    /// Whether any member takes uploads.
    pub fn has_writable(&self) -> bool {
        self.writable_iter().next().is_some()
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
