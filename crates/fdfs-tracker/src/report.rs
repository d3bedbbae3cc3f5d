//! Storage-facing commands (59–89, PROTOCOL.md §4): JOIN, heartbeats, disk
//! and sync reports, sync-source assignment, status changes, and the
//! change notices that tell storages about their peers.

use std::net::IpAddr;

use bytes::BytesMut;
use fdfs_config::tracker::{
    STORE_LOOKUP_LOAD_BALANCE, STORE_PATH_LOAD_BALANCE, STORE_SERVER_ROUND_ROBIN,
};
use fdfs_proto::stat::{storage_status as st, StorageBrief};
use fdfs_proto::tracker_msg::{
    decode_beat, decode_disk_usage, decode_sync_report, ChangeNotice, GetMyIpReq, JoinReq,
    JoinResp, SyncSource,
};
use fdfs_proto::wire::{fixed_str, Reader};
use fdfs_proto::{Status, GROUP_NAME_MAX_LEN, STORAGE_ID_MAX_SIZE};

use crate::handler::{bad_length, expect_no_body, ConnCtx, HandlerResult, Joined, OpError};
use crate::state::{is_available, no_group, no_storage, Cluster, JoinError, JoinInfo};
use crate::{guard, now_secs, select, Tracker};

/// Changelog bytes handed out per CHANGELOG_REQ.
pub const CHANGELOG_CHUNK_BYTES: usize = 8182;
/// REPLICA_CHG carries at most this many briefs.
const MAX_REPLICA_BRIEFS: usize = 32;
/// Longest `ip:port` text in GET_SERVER_ID / GET_STATUS (46 + 6).
const MAX_IP_PORT_SIZE: usize = 52;

/// GET_MY_IP (60): the peer address as this tracker sees it, no NUL; in id
/// mode every address of the peer's id entry when it has one.
pub fn get_my_ip(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let req = GetMyIpReq::decode(body)?;
    let port = u16::try_from(req.port).unwrap_or(0);
    let ips = crate::ids::my_ips(t, &req.group, &ctx.peer_ip, port)
        .unwrap_or_else(|| ctx.peer_ip.clone());
    Ok(ips.into_bytes())
}

/// A JOIN body, decoded and with every text field checked (EINVAL).
pub fn decode_join(body: &[u8]) -> Result<JoinReq, OpError> {
    let req = JoinReq::decode(body)?;
    guard::join(&req)?;
    Ok(req)
}

/// Our extension for storages behind NAT or in containers: in IP mode the
/// JOIN's storage-id field is unused (the C storage leaves it zero), so a
/// fastdfs-rs storage with a configured address (FASTDFS_IPADDR) puts that
/// address there.
fn advertised_ip(t: &Tracker, req: &JoinReq) -> Option<IpAddr> {
    if t.conf.use_storage_id || req.storage_id.is_empty() {
        return None;
    }
    req.storage_id
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// IP mode: the address a JOIN lists the storage under. The connection's
/// source address, as in the original; an advertised one only when it is
/// that same address or `trusted_storage_addrs` permits it, so no host can
/// claim another host's address (and with it its record, its clients and
/// its peers' replication). Any other claim answers EPERM.
fn listed_address(t: &Tracker, ctx: &ConnCtx, req: &JoinReq) -> Result<String, OpError> {
    let Some(claimed) = advertised_ip(t, req) else {
        return Ok(ctx.peer_ip.clone());
    };
    let embedded = t
        .conf
        .embedded_storage
        .is_some_and(|e| e.advertised == claimed && e.source == ctx.peer_addr);
    if claimed == ctx.peer_addr || embedded || t.conf.trusted_storage_addrs.allows(claimed) {
        return Ok(claimed.to_string());
    }
    if let Some(held_back) = t.refusals.allow(now_secs()) {
        tracing::warn!(
            peer = %ctx.peer_ip,
            %claimed,
            held_back,
            "JOIN claims an address its connection does not come from: refused \
             (list the address in trusted_storage_addrs if the storage is behind NAT)"
        );
    }
    Err(OpError::new(
        Status::EPERM,
        format!("JOIN claims address {claimed}, not trusted"),
    ))
}

/// JOIN (81): validate, create/update the records, answer status + source.
pub fn join(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    let req = decode_join(body)?;
    if ctx.joined.is_some() {
        return Err(OpError::new(
            Status::EEXIST,
            "this connection has joined already",
        ));
    }
    let (id, ip, rw_mode) = if t.conf.use_storage_id {
        let entry = crate::ids::join_entry(
            t,
            &req.group,
            &req.storage_id,
            &ctx.peer_ip,
            req.storage_port,
        )?;
        (
            entry.id.clone(),
            crate::ids::listed_ip(entry, &ctx.peer_ip),
            entry.rw_mode,
        )
    } else {
        let ip = listed_address(t, ctx, &req)?;
        (ip.clone(), ip, crate::state::RW_BOTH)
    };
    let info = JoinInfo {
        req,
        id: id.clone(),
        ip,
        rw_mode,
        peer_ip: ctx.peer_ip.clone(),
    };
    let req = &info.req;
    let conn_gen = t.next_conn_gen();
    let res = t.lock().join(&info, conn_gen);
    let (status, src_id) = res.map_err(|e| match e {
        JoinError::Mismatch => OpError::invalid(format!(
            "port, store path count or subdir count differ from group {}",
            req.group
        )),
        JoinError::BadStatus => OpError::new(
            Status::EFAULT,
            format!("unknown storage {id} reports status {}", req.status),
        ),
        JoinError::Busy => {
            if let Some(held_back) = t.refusals.allow(now_secs()) {
                tracing::warn!(
                    group = %req.group,
                    %id,
                    peer = %ctx.peer_ip,
                    held_back,
                    "JOIN for a storage that is connected from another address: refused"
                );
            }
            OpError::new(
                Status::EBUSY,
                format!("storage {id} is connected from another address"),
            )
        }
    })?;
    t.learn_trackers(&req.trackers);
    tracing::info!(group = %req.group, %id, status, "storage joined");
    ctx.joined = Some(Joined {
        group: req.group.clone(),
        id,
        conn_gen,
    });
    ctx.seen_change = None;
    t.mark_dirty();
    let mut buf = BytesMut::new();
    JoinResp { status, src_id }.encode(&mut buf);
    Ok(buf.to_vec())
}

/// Builds the answer of 83/84/89 (§4.3). Only the leader sets flags: the
/// leader brief and the group list on the first answer after a leader
/// change, the group list again whenever the group changed. A follower
/// answers `0x00`.
fn change_notice(t: &Tracker, ctx: &mut ConnCtx, c: &Cluster, group: &str) -> Vec<u8> {
    let mut notice = ChangeNotice::default();
    let (leading, leader_gen, self_addr) = {
        let rel = t.relation();
        (rel.is_leader(), rel.leader_gen, rel.self_addr)
    };
    if !leading {
        ctx.seen_change = None;
        ctx.seen_leader_gen = None;
        ctx.seen_trunk = None;
    } else if let Some(g) = c.group(group) {
        let first = ctx.seen_leader_gen != Some(leader_gen) || ctx.seen_change.is_none();
        // Like the original's per-storage counter, which starts at 0 on a
        // new connection: the first answer names the trunk server once one
        // was ever appointed.
        let seen_trunk = if first {
            0
        } else {
            ctx.seen_trunk.unwrap_or(0)
        };
        if t.conf.use_trunk_file && seen_trunk != g.trunk_change_count {
            notice.trunk_server = Some(trunk_brief(g));
        }
        ctx.seen_trunk = Some(g.trunk_change_count);
        if first {
            let (ip, port) = match self_addr {
                Some(a) => (a.ip().to_canonical().to_string(), a.port()),
                None => (ctx.local_ip.clone(), ctx.local_port),
            };
            notice.leader = Some(StorageBrief {
                status: 0,
                port: i32::from(port),
                id: ip.clone(),
                ip_addr: ip,
            });
            notice.group_members = Some(g.briefs());
        } else if ctx.seen_change != Some(g.change_count) {
            notice.group_members = Some(g.briefs());
        }
        ctx.seen_change = Some(g.change_count);
        ctx.seen_leader_gen = Some(leader_gen);
    }
    let mut buf = BytesMut::new();
    notice.encode(&mut buf);
    buf.to_vec()
}

/// The trunk server's brief (its status, id, address and the group's
/// port), all zeros when the group has none.
fn trunk_brief(g: &crate::state::Group) -> StorageBrief {
    match g.trunk_server_rec() {
        Some(s) => StorageBrief {
            status: s.status,
            port: i32::from(g.storage_port),
            id: s.id.clone(),
            ip_addr: s.ip.clone(),
        },
        None => StorageBrief {
            status: 0,
            port: 0,
            id: String::new(),
            ip_addr: String::new(),
        },
    }
}

/// BEAT (83): copy the counters, stamp the heartbeat, activate.
pub fn beat(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    let stats = decode_beat(body)?;
    let now = now_secs();
    let mut c = t.lock();
    let s = c
        .storage_mut(&j.group, &j.id)
        .ok_or_else(|| no_storage(&j.group, &j.id))?;
    if let Some(mut new) = stats {
        // The tracker owns these two.
        new.last_synced_timestamp = s.stats.last_synced_timestamp;
        new.last_heart_beat_time = s.stats.last_heart_beat_time;
        s.stats = new;
    }
    s.stats.last_heart_beat_time = now;
    if c.activate(&j.group, &j.id) {
        if let Some(g) = c.groups.get_mut(&j.group) {
            g.recompute_space();
        }
        t.mark_dirty();
    }
    Ok(change_notice(t, ctx, &c, &j.group))
}

/// REPORT_DISK_USAGE (84): per-path totals, storage sums, group space.
pub fn disk_usage(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    let mut c = t.lock();
    let s = c
        .storage_mut(&j.group, &j.id)
        .ok_or_else(|| no_storage(&j.group, &j.id))?;
    let usage = decode_disk_usage(body, s.store_path_count as usize)?;
    s.total_mb = usage.iter().map(|u| u.total_mb).sum();
    s.free_mb = usage.iter().map(|u| u.free_mb).sum();
    s.paths = usage;
    if t.conf.store_path == STORE_PATH_LOAD_BALANCE {
        if let Some(p) = select::most_free_path(s) {
            s.current_write_path = p;
        }
    }
    s.stats.last_heart_beat_time = now_secs();
    if c.activate(&j.group, &j.id) {
        t.mark_dirty();
    }
    if let Some(g) = c.groups.get_mut(&j.group) {
        g.recompute_space();
    }
    if t.conf.store_lookup == STORE_LOOKUP_LOAD_BALANCE {
        select::recompute_load_balance(&mut c);
    }
    Ok(change_notice(t, ctx, &c, &j.group))
}

/// SYNC_REPORT (89): per-source timestamps of what the reporter received.
pub fn sync_report(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    let entries: Vec<(String, i32)> = decode_sync_report(body)?
        .into_iter()
        .map(|e| (e.storage_id, e.timestamp))
        .collect();
    let mut c = t.lock();
    c.sync_report(
        &j.group,
        &j.id,
        &entries,
        t.params().store_server == STORE_SERVER_ROUND_ROBIN,
    );
    t.mark_dirty();
    Ok(change_notice(t, ctx, &c, &j.group))
}

/// REPLICA_CHG (85): the leader ignores the pushed briefs.
pub fn replica_chg(ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    ctx.joined()?;
    let n = body.len() / StorageBrief::WIRE_LEN;
    if n == 0 || n * StorageBrief::WIRE_LEN != body.len() || n > MAX_REPLICA_BRIEFS {
        return Err(bad_length(body));
    }
    Ok(Vec::new())
}

fn sync_source_body(src_id: &str, until: i64) -> Vec<u8> {
    let mut buf = BytesMut::new();
    SyncSource {
        src_id: src_id.to_string(),
        until_timestamp: until,
    }
    .encode(&mut buf);
    buf.to_vec()
}

/// SYNC_SRC_REQ (86): who feeds `dest` its initial copy, and until when.
pub fn sync_src_req(t: &Tracker, body: &[u8]) -> HandlerResult {
    if body.len() != GROUP_NAME_MAX_LEN + STORAGE_ID_MAX_SIZE {
        return Err(bad_length(body));
    }
    let group = fixed_str(&body[..GROUP_NAME_MAX_LEN]);
    let dest_id = fixed_str(&body[GROUP_NAME_MAX_LEN..]);
    let mut c = t.lock();
    let g = c.groups.get_mut(&group).ok_or_else(|| no_group(&group))?;
    let dest = g
        .storages
        .get(&dest_id)
        .ok_or_else(|| no_storage(&group, &dest_id))?;
    if matches!(dest.status, st::INIT | st::DELETED | st::IP_CHANGED) {
        return Err(no_storage(&group, &dest_id));
    }
    if dest.sync_src_id.is_empty() {
        return Ok(Vec::new());
    }
    let (src_id, until) = (dest.sync_src_id.clone(), dest.sync_until_timestamp);
    let src_ok = g.storages.get(&src_id).is_some_and(|s| {
        matches!(
            s.status,
            st::OFFLINE | st::ONLINE | st::ACTIVE | st::RECOVERY
        )
    });
    if src_ok {
        return Ok(sync_source_body(&src_id, until));
    }
    if let Some(d) = g.storages.get_mut(&dest_id) {
        d.sync_src_id.clear();
    }
    t.mark_dirty();
    Ok(Vec::new())
}

/// SYNC_DEST_REQ (87): a new storage asks for a sync source.
pub fn sync_dest_req(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    expect_no_body(body)?;
    let now = now_secs();
    let mut c = t.lock();
    let g = c
        .groups
        .get_mut(&j.group)
        .ok_or_else(|| no_group(&j.group))?;
    let has_peer = g
        .storages
        .values()
        .any(|s| s.id != j.id && is_available(s.status));
    if !has_peer {
        g.set_status(&j.id, st::ONLINE);
        t.mark_dirty();
        return Ok(Vec::new());
    }
    let src_id = g
        .writable()
        .into_iter()
        .find(|s| s.id != j.id)
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            OpError::not_found(format!("no writable sync source in group {}", j.group))
        })?;
    let me = g
        .storages
        .get_mut(&j.id)
        .ok_or_else(|| no_storage(&j.group, &j.id))?;
    me.sync_src_id = src_id.clone();
    me.sync_until_timestamp = now;
    g.set_status(&j.id, st::WAIT_SYNC);
    t.mark_dirty();
    Ok(sync_source_body(&src_id, now))
}

/// SYNC_NOTIFY (88): a storage tells which source it syncs from.
pub fn sync_notify(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    let req = SyncSource::decode(body)?;
    let mut c = t.lock();
    let g = c
        .groups
        .get_mut(&j.group)
        .ok_or_else(|| no_group(&j.group))?;
    let (status, has_src) = g
        .storages
        .get(&j.id)
        .map(|s| (s.status, !s.sync_src_id.is_empty()))
        .ok_or_else(|| no_storage(&j.group, &j.id))?;
    if req.src_id.is_empty() {
        if matches!(status, st::INIT | st::WAIT_SYNC | st::SYNCING) {
            g.set_status(&j.id, st::ONLINE);
            t.mark_dirty();
        }
        return Ok(Vec::new());
    }
    if !has_src {
        let src_ok = g
            .storages
            .get(&req.src_id)
            .is_some_and(|s| !matches!(s.status, st::DELETED | st::IP_CHANGED));
        if !src_ok {
            return Err(no_storage(&j.group, &req.src_id));
        }
        if let Some(me) = g.storages.get_mut(&j.id) {
            me.sync_src_id = req.src_id.clone();
            me.sync_until_timestamp = req.until_timestamp;
        }
    }
    if status == st::INIT {
        g.set_status(&j.id, st::WAIT_SYNC);
    }
    t.mark_dirty();
    Ok(Vec::new())
}

/// SYNC_DEST_QUERY (79): the recorded source of the asking storage.
pub fn sync_dest_query(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    expect_no_body(body)?;
    let c = t.lock();
    let s = c
        .storage(&j.group, &j.id)
        .ok_or_else(|| no_storage(&j.group, &j.id))?;
    if s.sync_src_id.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sync_source_body(&s.sync_src_id, s.sync_until_timestamp))
}

/// REPORT_STATUS (76): a peer storage (the sync source) reports another
/// storage's status. Only a member of the group may (EPERM otherwise): its
/// word moves a new member past its full sync.
pub fn report_status(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    if body.len() != GROUP_NAME_MAX_LEN + StorageBrief::WIRE_LEN {
        return Err(bad_length(body));
    }
    let mut r = Reader::new(body);
    let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
    let brief = StorageBrief::decode(&mut r)?;
    guard::group(&group)?;
    guard::plain("storage id", &brief.id)?;
    guard::plain("storage ip", &brief.ip_addr)?;
    let mut c = t.lock();
    if c.group(&group).is_none() {
        return Err(no_group(&group));
    }
    if !c.is_member_address(&group, &ctx.peer_ip) {
        return Err(OpError::new(
            Status::EPERM,
            format!("the peer is not a storage of group {group}"),
        ));
    }
    if c.merge_brief(&group, &brief) {
        tracing::info!(%group, id = %brief.id, status = brief.status, "status reported by peer");
        t.mark_dirty();
    }
    Ok(Vec::new())
}

/// REPORT_IP_CHANGED (78): group (16) + old IP (46) + new IP (46). IP mode
/// only. As in the original, the new address must be the connection's
/// source address (EINVAL); ours also accepts one `trusted_storage_addrs`
/// permits, which a storage behind NAT advertises (see `listed_address`).
/// A record whose storage is still connected is not moved (EBUSY).
pub fn ip_changed(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    if t.conf.use_storage_id {
        return Err(OpError::new(
            Status::EOPNOTSUPP,
            "addresses do not change with storage ids",
        ));
    }
    let ip_size = fdfs_proto::IP_ADDRESS_SIZE;
    if body.len() != GROUP_NAME_MAX_LEN + 2 * ip_size {
        return Err(bad_length(body));
    }
    let mut r = Reader::new(body);
    let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
    let old = r.fixed_str(ip_size)?;
    let new = r.fixed_str(ip_size)?;
    guard::group(&group)?;
    guard::plain("old ip", &old)?;
    let new_ip = new
        .parse::<IpAddr>()
        .map_err(|_| OpError::invalid(format!("new ip {new:?} is not an IP address")))?
        .to_canonical();
    let new = new_ip.to_string();
    if old.is_empty() || old == new {
        return Err(OpError::invalid(format!("old ip {old:?}, new ip {new}")));
    }
    if new_ip != ctx.peer_addr && !t.conf.trusted_storage_addrs.allows(new_ip) {
        if let Some(held_back) = t.refusals.allow(now_secs()) {
            tracing::warn!(
                peer = %ctx.peer_ip,
                %new,
                held_back,
                "REPORT_IP_CHANGED to an address the connection does not come from: refused"
            );
        }
        return Err(OpError::invalid(format!(
            "new ip {new} is not the connection's, nor trusted"
        )));
    }
    let line = t.lock().ip_changed(&group, &old, &new, now_secs())?;
    if let Err(e) = crate::persist::append_changelog(&t.data_dir, &line) {
        tracing::error!(error = %e, "cannot append to the changelog");
    }
    tracing::info!(%group, %old, %new, "storage address changed");
    t.mark_dirty();
    Ok(Vec::new())
}

/// CHANGE_STATUS (59): a storage asks for its own status to be set.
pub fn change_status(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    let [wanted] = body else {
        return Err(bad_length(body));
    };
    if t.lock().change_status(&j.group, &j.id, *wanted) {
        t.mark_dirty();
    }
    Ok(Vec::new())
}

/// CHANGELOG_REQ (77): the next chunk of the changelog for a storage, by
/// its connection (joined form) or by group + id (32-byte form).
pub fn changelog_req(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let (group, id) = if body.len() == GROUP_NAME_MAX_LEN + STORAGE_ID_MAX_SIZE {
        (
            fixed_str(&body[..GROUP_NAME_MAX_LEN]),
            fixed_str(&body[GROUP_NAME_MAX_LEN..]),
        )
    } else if body.is_empty() {
        let j = ctx
            .joined()
            .map_err(|_| OpError::invalid("CHANGELOG_REQ without a storage before JOIN"))?;
        (j.group, j.id)
    } else {
        return Err(bad_length(body));
    };
    let mut c = t.lock();
    let total = c.changelog.len();
    let g = c.groups.get_mut(&group).ok_or_else(|| no_group(&group))?;
    let s = g
        .storages
        .get_mut(&id)
        .ok_or_else(|| no_storage(&group, &id))?;
    // The read offset is the storage's own: another host advancing it
    // would hide deletions and address changes from it.
    if !s.is_reachable_from(&ctx.peer_ip) {
        return Err(OpError::new(
            Status::EPERM,
            format!("the changelog offset of {id} is not the peer's"),
        ));
    }
    let start = usize::try_from(s.changelog_offset)
        .unwrap_or(total)
        .min(total);
    let end = start.saturating_add(CHANGELOG_CHUNK_BYTES).min(total);
    if start == end {
        return Ok(Vec::new());
    }
    s.changelog_offset = end as u64;
    let chunk = c.changelog.get(start..end).unwrap_or(&[]).to_vec();
    t.mark_dirty();
    Ok(chunk)
}

/// Splits `group(16) + "ip:port"` bodies (70, 71) into group, IP text and
/// port (0 when absent).
fn group_and_ip(body: &[u8]) -> Result<(String, String, u16), OpError> {
    if body.len() <= GROUP_NAME_MAX_LEN || body.len() > GROUP_NAME_MAX_LEN + MAX_IP_PORT_SIZE {
        return Err(bad_length(body));
    }
    let group = fixed_str(&body[..GROUP_NAME_MAX_LEN]);
    let (ip, port) = crate::ids::split_ip_port(&fixed_str(&body[GROUP_NAME_MAX_LEN..]));
    if ip.is_empty() {
        return Err(OpError::invalid("no IP address"));
    }
    Ok((group, ip, port))
}

/// GET_SERVER_ID (70): in IP mode the id is the IP itself; in id mode the
/// id of group + ip + port from storage_ids.conf (ENOENT if none).
pub fn get_server_id(t: &Tracker, body: &[u8]) -> HandlerResult {
    let (group, ip, port) = group_and_ip(body)?;
    match &t.storage_ids {
        Some(ids) => crate::ids::server_id(ids, &group, &ip, port),
        None => Ok(ip.into_bytes()),
    }
}

/// GET_STATUS (71): the brief of the storage at `ip:port`.
pub fn get_status(t: &Tracker, body: &[u8]) -> HandlerResult {
    let (group, ip, _) = group_and_ip(body)?;
    let c = t.lock();
    let g = c.group(&group).ok_or_else(|| no_group(&group))?;
    let s = g
        .storages
        .values()
        .find(|s| s.ip == ip || s.id == ip)
        .ok_or_else(|| no_storage(&group, &ip))?;
    let mut buf = BytesMut::new();
    s.brief().encode(&mut buf);
    Ok(buf.to_vec())
}

/// FETCH_TRUNK_FID (72): the group's current trunk file id.
pub fn fetch_trunk_fid(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let j = ctx.joined()?;
    expect_no_body(body)?;
    let c = t.lock();
    let g = c.group(&j.group).ok_or_else(|| no_group(&j.group))?;
    let id = i32::try_from(g.current_trunk_file_id).unwrap_or(0);
    Ok(id.to_be_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_port_parsing() {
        let mut body = vec![0u8; 16];
        body[..6].copy_from_slice(b"group1");
        let mut b = body.clone();
        b.extend_from_slice(b"10.0.0.1:23000");
        assert_eq!(
            group_and_ip(&b),
            Ok(("group1".into(), "10.0.0.1".into(), 23000))
        );
        let mut b6 = body.clone();
        b6.extend_from_slice(b"[::1]:23000");
        assert_eq!(group_and_ip(&b6).unwrap().1, "::1");
        assert_eq!(
            group_and_ip(&body).map_err(|e| e.status),
            Err(Status::EINVAL)
        );
        let mut long = body;
        long.extend_from_slice(&[b'1'; 53]);
        assert_eq!(
            group_and_ip(&long).map_err(|e| e.status),
            Err(Status::EINVAL)
        );
    }
}
