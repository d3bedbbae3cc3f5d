//! The cluster statistics commands (PROTOCOL.md §2.10–§2.12) that the
//! `fdfs_*_stat` tools and the upstream Prometheus exporter ask:
//! TRACKER_CLUSTER_STAT (96, the leader's view of the trackers),
//! STORAGE_CLUSTER_STAT (97) and STORAGE_VOLUMN_STAT (98).

use bytes::BytesMut;
use fdfs_proto::cluster_stat::{
    encode_tracker_stats, StorageClusterStat, StorageStatEntry, StorageStatFilter,
    TrackerStatEntry, TrackerStatFilter, VolumnStat, VolumnStatEntry, VolumnStatFilter,
};
use fdfs_proto::{Status, FDFS_VERSION};
use fdfs_util::net::host_port;

use crate::admin::reserved_mb;
use crate::handler::{ConnCtx, HandlerResult, OpError};
use crate::select::group_has_room;
use crate::{now_secs, Tracker};

/// A follower counts as active while its last PING_LEADER is at most this
/// old (the original's rule; followers ping every second).
pub const FOLLOWER_ACTIVE_SECS: i64 = 3;

/// TRACKER_CLUSTER_STAT (96): every tracker of our list, ourselves first
/// when the list does not name us yet. Only the leader answers.
pub fn trackers(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let filter = TrackerStatFilter::decode(body)?;
    let rel = t.relation();
    if !rel.is_leader() {
        return Err(OpError::new(
            Status::EOPNOTSUPP,
            "only the leader lists the trackers",
        ));
    }
    let mut all = tracker_entries(t, &rel, || ctx.local_addr_text());
    drop(rel);
    all.retain(|e| filter.admits(e.is_leader, e.is_active));
    let mut buf = BytesMut::new();
    encode_tracker_stats(&mut buf, &all);
    Ok(buf.to_vec())
}

/// The trackers as the leader lists them: every tracker of our list, with
/// ourselves first when the list does not name us yet (`own_host` names
/// us then, when we do not know our own address).
pub(crate) fn tracker_entries(
    t: &Tracker,
    rel: &crate::Relation,
    own_host: impl FnOnce() -> String,
) -> Vec<TrackerStatEntry> {
    let now = now_secs();
    let myself = |host: String| TrackerStatEntry {
        host,
        is_leader: true,
        is_active: true,
        connections: t.conn_counts(),
        version: FDFS_VERSION.to_string(),
        up_time: t.start_time,
        last_heartbeat_time: 0,
    };
    let mut all = Vec::with_capacity(rel.listed.len() + 1);
    if !rel.listed.iter().any(|p| p.is_self) {
        let me = rel.self_addr.map_or_else(own_host, |a| a.to_string());
        all.push(myself(me));
    }
    for p in &rel.listed {
        let host = p.addr.map_or_else(|| p.text.clone(), |a| a.to_string());
        if p.is_self {
            all.push(myself(host));
            continue;
        }
        let f = &p.follower;
        all.push(TrackerStatEntry {
            host,
            is_leader: false,
            is_active: f.last_heartbeat_time > 0
                && now - f.last_heartbeat_time <= FOLLOWER_ACTIVE_SECS,
            connections: f.connections,
            version: f.version.clone(),
            up_time: f.up_time,
            last_heartbeat_time: f.last_heartbeat_time,
        });
    }
    all
}

/// STORAGE_CLUSTER_STAT (97): the storages of every group, groups in name
/// order and storages in id order (DELETED records are not listed, as
/// with LIST_STORAGE).
pub fn storages(t: &Tracker, body: &[u8]) -> HandlerResult {
    let filter = StorageStatFilter::decode(body)?;
    let use_trunk_file = t.conf.use_trunk_file;
    let c = t.lock();
    let mut out = StorageClusterStat {
        use_storage_id: t.conf.use_storage_id,
        use_trunk_file,
        storages: Vec::new(),
    };
    for g in c.groups.values() {
        for s in g.visible() {
            let is_trunk_server = g.is_trunk_server(&s.id);
            if !filter.admits(use_trunk_file, is_trunk_server, s.status) {
                continue;
            }
            let st = &s.stats;
            out.storages.push(StorageStatEntry {
                id: s.id.clone(),
                host: host_port(&s.ip, s.storage_port),
                is_trunk_server,
                status: s.status,
                connections: fdfs_proto::cluster_stat::ConnCounts {
                    alloc: st.connection_alloc_count,
                    current: st.connection_current_count,
                    max: st.connection_max_count,
                },
                version: s.version.clone(),
                up_time: s.up_time,
                last_heartbeat_time: st.last_heart_beat_time,
            });
        }
    }
    drop(c);
    let mut buf = BytesMut::new();
    out.encode(&mut buf);
    fits(t, buf)
}

/// STORAGE_VOLUMN_STAT (98): the space of every group, in name order.
pub fn volumes(t: &Tracker, body: &[u8]) -> HandlerResult {
    let filter = VolumnStatFilter::decode(body)?;
    let use_trunk_file = t.conf.use_trunk_file;
    let c = t.lock();
    let mut out = VolumnStat {
        use_trunk_file,
        groups: Vec::new(),
    };
    for g in c.groups.values() {
        let reserved_space = t.params().reserved;
        let disk = group_has_room(g, &reserved_space);
        // The original's fdfs_check_reserved_space_trunk: free disk plus
        // free trunk space above the reservation.
        let trunk = use_trunk_file && crate::select::group_has_room_with_trunk(g, &reserved_space);
        if !filter.admits(use_trunk_file, disk, trunk) {
            continue;
        }
        let reserved = reserved_mb(t, g.total_mb);
        out.groups.push(VolumnStatEntry {
            group_name: g.name.clone(),
            total_mb: g.total_mb,
            free_mb: g.free_mb,
            reserved_mb: reserved,
            avail_mb: if disk {
                (g.free_mb - reserved).max(0)
            } else {
                0
            },
            trunk_free_mb: g.trunk_free_mb,
            is_disk_available: disk,
            is_trunk_available: trunk,
        });
    }
    drop(c);
    let mut buf = BytesMut::new();
    out.encode(&mut buf);
    fits(t, buf)
}

/// The original refuses (EINVAL) an answer larger than its biggest buffer.
fn fits(t: &Tracker, buf: BytesMut) -> HandlerResult {
    let len = buf.len() as u64 + fdfs_proto::HEADER_LEN as u64;
    if len > t.conf.max_pkg_size_bytes() {
        return Err(OpError::invalid(format!(
            "an answer of {len} bytes exceeds max_pkg_size"
        )));
    }
    Ok(buf.to_vec())
}
