//! The leadership commands other trackers send (PROTOCOL.md §4.8):
//! TRACKER_GET_STATUS (64), JOIN_LEADER (58), PING_LEADER (65), the
//! election's NOTIFY/COMMIT_NEXT_LEADER (66, 67), NOTIFY_RESELECT_LEADER
//! (68), the data-file copy (61–63), SERVER_GET_LEADER (95) and our
//! TRACKER_INSTANCE_ID (241). What they read and change, the tracker list
//! and the leader, is [`crate::relation::Relation`]; its bounds are
//! re-exported here.

use std::net::SocketAddr;

use bytes::BytesMut;
use fdfs_proto::cluster_stat::ConnCounts;
use fdfs_proto::leader_msg::{
    decode_leader_addr, encode_group_trunks, GroupTrunk, JoinLeaderReq, PingLeaderReq, SysFileReq,
    TrackerStatus, SYS_FILE_CHUNK_BYTES,
};
use fdfs_proto::Status;

use crate::handler::{expect_no_body, ConnCtx, HandlerResult, OpError};
use crate::relation::is_local_ip;
use crate::{now_secs, persist, Tracker};

pub use crate::relation::{MAX_UNVERIFIED_TRACKERS, MAX_VERIFIED_TRACKERS};

/// TRACKER_GET_STATUS (64): leader flag, running time, restart interval.
pub(crate) fn get_status(t: &Tracker, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    if t.lock().groups.is_empty() {
        return Err(no_groups());
    }
    let mut out = BytesMut::with_capacity(TrackerStatus::LEN);
    t.own_status().encode(&mut out);
    Ok(out.to_vec())
}

/// TRACKER_INSTANCE_ID (241, our extension): this process's random id.
pub(crate) fn instance_id(t: &Tracker, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    Ok(t.instance_id.to_be_bytes().to_vec())
}

/// SERVER_GET_LEADER (95): the leader's `ip:port`, ENOENT if none.
pub(crate) fn get_leader(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    let rel = t.relation();
    match rel.leader_addr() {
        Some(addr) => Ok(addr.to_string().into_bytes()),
        // Alone and not listed by any storage yet: we lead, as reached.
        None if !rel.has_peers() => Ok(ctx.local_addr_text().into_bytes()),
        None => Err(OpError::not_found("no leader elected yet")),
    }
}

/// JOIN_LEADER (58): a follower attaches to us.
pub(crate) fn join_leader(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    let req = JoinLeaderReq::decode(body)?;
    let rel = t.relation();
    if !rel.is_leader() {
        return Err(not_leader());
    }
    if ctx.leader_follower.is_some() {
        return Err(OpError::new(
            Status::EEXIST,
            "this connection has joined already",
        ));
    }
    let follower = SocketAddr::new(ctx.peer_addr, req.tracker_port);
    // The original tracker does not bind its outgoing sockets, so on a host
    // with several trackers its JOIN_LEADER comes from the host's default
    // source address (§4.8 quirk). Accept it when it comes from such an
    // address and a verified tracker of this host has that port.
    let same_host_peer = || {
        if !rel.is_same_host_source(follower.ip(), t.own_ip()) {
            return None;
        }
        rel.verified_peers()
            .find(|a| a.port() == follower.port() && is_local_ip(a.ip()))
    };
    // The entry of our list the follower is.
    let Some(entry) = Some(follower)
        .filter(|f| rel.is_verified(*f))
        .or_else(same_host_peer)
    else {
        drop(rel);
        refused_leadership(t, ctx, "JOIN_LEADER");
        return Err(not_a_tracker(follower));
    };
    drop(rel);
    if let Some(f) = t.relation().follower_mut(entry) {
        f.up_time = req.up_time;
        f.version = req.version.clone();
    }
    tracing::info!(%follower, "tracker joined us as leader");
    ctx.leader_follower = Some(entry);
    ctx.pinged = false;
    ctx.seen_trunk_gen = None;
    Ok(Vec::new())
}

/// PING_LEADER (65): every group with its trunk server id (empty: none) on
/// the first ping of a connection and whenever an appointment changed
/// since this connection's last ping; empty otherwise.
pub(crate) fn ping_leader(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    let req = PingLeaderReq::decode(body)?;
    if !t.relation().is_leader() {
        return Err(not_leader());
    }
    let Some(follower) = ctx.leader_follower else {
        return Err(OpError::invalid("PING_LEADER before JOIN_LEADER"));
    };
    if let Some(f) = t.relation().follower_mut(follower) {
        f.connections = ConnCounts {
            alloc: req.alloc_connections,
            current: req.current_connections,
            max: req.max_connections,
        };
        f.last_heartbeat_time = now_secs();
    }
    let c = t.lock();
    if ctx.pinged && ctx.seen_trunk_gen == Some(c.trunk_gen) {
        return Ok(Vec::new());
    }
    ctx.pinged = true;
    ctx.seen_trunk_gen = Some(c.trunk_gen);
    let entries: Vec<GroupTrunk> = c
        .groups
        .values()
        .map(|g| GroupTrunk {
            group: g.name.clone(),
            trunk_server_id: g.trunk_server.clone().unwrap_or_default(),
        })
        .collect();
    drop(c);
    let mut out = BytesMut::new();
    encode_group_trunks(&mut out, &entries);
    Ok(out.to_vec())
}

/// A follower takes the trunk servers from its leader's PING_LEADER answer
/// (an empty answer: nothing changed). An id is kept even before that
/// storage has JOINed us: the leader sends the list again only after the
/// next change. Returns true when something changed.
pub(crate) fn apply_group_trunks(t: &Tracker, entries: &[GroupTrunk]) -> bool {
    let mut changed = false;
    let mut c = t.lock();
    for e in entries {
        if !c.groups.contains_key(&e.group) {
            continue;
        }
        let id = Some(e.trunk_server_id.as_str()).filter(|id| !id.is_empty());
        if id.is_some_and(|id| !crate::guard::is_plain(id)) {
            tracing::warn!(group = %e.group, id = ?e.trunk_server_id, "the leader names a trunk server id that is not plain text");
            continue;
        }
        if c.set_trunk_server(&e.group, id).is_some() {
            tracing::info!(group = %e.group, id = %e.trunk_server_id, "trunk server learnt from the leader");
            changed = true;
        }
    }
    changed
}

/// Logs (rate limited) a leadership command from an address that is not a
/// verified tracker's; the caller answers ENOENT, as the original does for
/// a tracker it does not know.
fn refused_leadership(t: &Tracker, ctx: &ConnCtx, cmd: &str) {
    if let Some(held_back) = t.refusals.allow(now_secs()) {
        tracing::warn!(
            peer = %ctx.peer_ip,
            cmd,
            held_back,
            "leadership command from an address that is not a tracker of our list: refused"
        );
    }
}

/// True when the connection may send leadership commands (66, 67, 68):
/// it comes from a tracker of our list that answered as a tracker.
fn from_tracker(t: &Tracker, ctx: &ConnCtx, cmd: &str) -> Result<(), OpError> {
    if t.relation().is_tracker_source(ctx.peer_addr, t.own_ip()) {
        Ok(())
    } else {
        refused_leadership(t, ctx, cmd);
        Err(OpError::not_found(format!(
            "{} is not a tracker of our list",
            ctx.peer_ip
        )))
    }
}

/// ENOENT for an address that is not a verified tracker of our list.
fn not_a_tracker(addr: SocketAddr) -> OpError {
    OpError::not_found(format!("{addr} is not a tracker of our list"))
}

/// EOPNOTSUPP: only the leader takes followers.
fn not_leader() -> OpError {
    OpError::new(Status::EOPNOTSUPP, "this tracker is not the leader")
}

/// ENOENT: a tracker without groups has no status and no data files to
/// give (§2.15).
fn no_groups() -> OpError {
    OpError::not_found("this tracker has no groups")
}

/// NOTIFY_NEXT_LEADER (66): phase one of an election.
pub(crate) fn notify_next_leader(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let addr = decode_leader_addr(body)?;
    from_tracker(t, ctx, "NOTIFY_NEXT_LEADER")?;
    let mut rel = t.relation();
    if !rel.knows(addr) {
        return Err(not_a_tracker(addr));
    }
    if rel.elected_self() && Some(addr) != rel.self_addr {
        tracing::warn!(candidate = %addr, "another tracker wants to lead while we do: stepping down");
        rel.set_leader(None);
        return Err(OpError::invalid(format!("{addr} proposed while we lead")));
    }
    rel.proposed = Some(addr);
    Ok(Vec::new())
}

/// COMMIT_NEXT_LEADER (67): phase two; must match the proposal.
pub(crate) fn commit_next_leader(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let addr = decode_leader_addr(body)?;
    from_tracker(t, ctx, "COMMIT_NEXT_LEADER")?;
    let mut rel = t.relation();
    if rel.proposed != Some(addr) {
        return Err(OpError::invalid(format!("{addr} was not proposed")));
    }
    rel.proposed = None;
    rel.set_leader(Some(addr));
    drop(rel);
    tracing::info!(leader = %addr, "tracker leader committed");
    t.relation_wake.notify_one();
    Ok(Vec::new())
}

/// NOTIFY_RESELECT_LEADER (68): a storage saw two leaders, or a leader
/// found us leading too; we step down. Accepted from a verified tracker or
/// from a storage this tracker knows.
pub(crate) fn notify_reselect_leader(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    // The cluster lock is never taken under the relation lock.
    let from_storage = t.lock().is_storage_address(&ctx.peer_ip);
    if !from_storage {
        from_tracker(t, ctx, "NOTIFY_RESELECT_LEADER")?;
    }
    let mut rel = t.relation();
    if !rel.elected_self() {
        return Err(OpError::new(
            Status::EOPNOTSUPP,
            "this tracker was not elected",
        ));
    }
    rel.set_leader(None);
    drop(rel);
    t.relation_wake.notify_one();
    Ok(Vec::new())
}

/// GET_SYS_FILES_START (61): snapshot the data files for this connection.
pub(crate) fn sys_files_start(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    let cluster = t.lock();
    if cluster.groups.is_empty() {
        return Err(no_groups());
    }
    if ctx.sys_files.is_none() && !t.try_lock_sys_files(ctx.conn_id) {
        return Err(OpError::new(
            Status::EBUSY,
            "another connection copies the data files",
        ));
    }
    let snap = persist::Snapshot::of(&cluster, t.conf.use_storage_id);
    ctx.sys_files = Some([
        snap.groups.into_bytes(),
        snap.storages.into_bytes(),
        snap.sync_timestamps.into_bytes(),
        cluster.changelog.clone(),
    ]);
    Ok(Vec::new())
}

/// GET_SYS_FILES_END (62): release the copy lock.
pub(crate) fn sys_files_end(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    if ctx.sys_files.take().is_some() {
        t.unlock_sys_files(ctx.conn_id);
    }
    Ok(Vec::new())
}

/// GET_ONE_SYS_FILE (63): total size, then a chunk from `offset`.
pub(crate) fn get_one_sys_file(ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let req = SysFileReq::decode(body)?;
    let files = ctx
        .sys_files
        .as_ref()
        .ok_or_else(|| OpError::invalid("GET_ONE_SYS_FILE before GET_SYS_FILES_START"))?;
    let file = &files[usize::from(req.index)];
    let past_end = || {
        OpError::invalid(format!(
            "offset {} of a file of {} bytes",
            req.offset,
            file.len()
        ))
    };
    let offset = usize::try_from(req.offset).map_err(|_| past_end())?;
    if offset > file.len() {
        return Err(past_end());
    }
    let end = file.len().min(offset + SYS_FILE_CHUNK_BYTES);
    let mut out = Vec::with_capacity(8 + end - offset);
    out.extend_from_slice(&(file.len() as i64).to_be_bytes());
    out.extend_from_slice(&file[offset..end]);
    Ok(out)
}
