//! Tracker ↔ tracker relationship (PROTOCOL.md §4.8): the tracker list
//! learnt from storage JOINs, who leads, and the handlers of 58, 64–68 and
//! the data-file copy 61–63. The election and follower loops that drive it
//! live in `relation`.
//!
//! A tracker whose list names no other tracker leads by itself at once, so
//! a single-tracker cluster never waits for an election.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use fdfs_proto::leader_msg::{
    decode_leader_addr, encode_group_trunks, GroupTrunk, JoinLeaderReq, PingLeaderReq, SysFileReq,
    TrackerStatus, SYS_FILE_CHUNK_BYTES,
};
use fdfs_proto::Status;

use crate::conn::{inval, ConnCtx, HandlerResult};
use crate::{now_secs, persist, round_down_300, Tracker};

/// One tracker of the list, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTracker {
    /// As the storages configure it (`host:port`).
    pub text: String,
    pub addr: SocketAddr,
    pub is_self: bool,
}

/// What this tracker knows about its peers and the leader.
#[derive(Debug, Default, Clone)]
pub struct Relation {
    /// Tracker entries from JOIN bodies, as text.
    pub listed: BTreeSet<String>,
    /// `listed`, resolved (entries that do not resolve are left out).
    pub resolved: Vec<PeerTracker>,
    /// Entries seen in `listed` that are not resolved yet.
    pub unresolved: usize,
    /// Of those, the ones a lookup already failed for. They stop counting
    /// as peers: a name only the storages can resolve must not keep a
    /// lone tracker from leading.
    pub unresolvable: BTreeSet<String>,
    /// Entries that answered TRACKER_INSTANCE_ID (241) as another tracker,
    /// or with an error status (a C tracker): not us, never asked again.
    pub not_self: BTreeSet<SocketAddr>,
    /// Our own address as the other trackers know it.
    pub self_addr: Option<SocketAddr>,
    /// The elected leader; `None` while an election is due.
    pub leader: Option<SocketAddr>,
    /// Proposal received by NOTIFY_NEXT_LEADER, awaiting its COMMIT.
    pub proposed: Option<SocketAddr>,
    /// Bumped on every leader change: connections resend the leader brief.
    pub leader_gen: u64,
}

impl Relation {
    /// Other trackers, resolved.
    pub fn peers(&self) -> impl Iterator<Item = &PeerTracker> {
        self.resolved.iter().filter(|p| !p.is_self)
    }

    /// The other trackers' addresses.
    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.peers().map(|p| p.addr).collect()
    }

    /// True when the list names some other tracker (or an entry we have
    /// not tried to resolve yet, which may be one).
    pub fn has_peers(&self) -> bool {
        self.unresolved > self.unresolvable.len() || self.peers().next().is_some()
    }

    /// True when an election made this tracker the leader.
    pub fn elected_self(&self) -> bool {
        self.leader.is_some() && self.leader == self.self_addr
    }

    /// True when this tracker leads: elected, or alone.
    pub fn is_leader(&self) -> bool {
        self.elected_self() || !self.has_peers()
    }

    /// The leader flag this tracker shows other trackers (GET_STATUS, 64):
    /// elected, or alone in a list the storages gave us. A tracker that has
    /// not heard any list yet (just restarted, no storage JOIN so far) still
    /// serves its storages as leader, but must not claim it to a peer: the
    /// peer's leader would yield to it by rank and both would lose the
    /// storages' view for a round.
    pub fn claims_leadership(&self) -> bool {
        self.elected_self() || (!self.listed.is_empty() && !self.has_peers())
    }

    /// The leader's address, if one is known.
    pub fn leader_addr(&self) -> Option<SocketAddr> {
        if self.leader.is_some() {
            self.leader
        } else if !self.has_peers() {
            self.self_addr
        } else {
            None
        }
    }

    /// True when `addr` is a tracker of our list (ourselves included).
    pub fn knows(&self, addr: SocketAddr) -> bool {
        self.resolved.iter().any(|p| p.addr == addr) || self.self_addr == Some(addr)
    }

    /// Marks the entry at `addr` as ourselves (found by asking it for its
    /// instance id: behind NAT or a virtual IP no local address matches).
    pub fn mark_self(&mut self, addr: SocketAddr) {
        for p in self.resolved.iter_mut().filter(|p| p.addr == addr) {
            p.is_self = true;
        }
        if self.self_addr.is_none() {
            self.self_addr = Some(addr);
        }
    }

    /// Records a resolved list entry, and our own address when it is us.
    pub fn add_resolved(&mut self, text: String, addr: SocketAddr, is_self: bool) {
        if is_self && self.self_addr.is_none() {
            self.self_addr = Some(addr);
        }
        self.resolved.push(PeerTracker {
            text,
            addr,
            is_self,
        });
    }

    pub fn set_leader(&mut self, leader: Option<SocketAddr>) {
        if self.leader != leader {
            self.leader = leader;
            self.leader_gen += 1;
        }
    }
}

/// True when `ip` is an address of this host (it can be bound).
pub fn is_local_ip(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

impl Tracker {
    /// Remembers the tracker entries of a JOIN body (§4.2: the only way a
    /// tracker learns its peers). Literal addresses are resolved at once;
    /// host names wait for the relationship task.
    pub fn learn_trackers(&self, entries: &[String]) {
        let mut rel = self.relation();
        let mut added = false;
        for e in entries {
            let text = e.trim().to_string();
            if text.is_empty() || rel.listed.contains(&text) {
                continue;
            }
            rel.listed.insert(text.clone());
            added = true;
            match text.parse::<SocketAddr>() {
                Ok(addr) => rel.add_resolved(text, addr, self.is_self_addr(addr)),
                Err(_) => rel.unresolved += 1,
            }
        }
        drop(rel);
        if added {
            self.relation_wake.notify_one();
        }
    }

    /// True when `addr` names this tracker: our listening address, or our
    /// port on a local address when we listen on every interface.
    pub fn is_self_addr(&self, addr: SocketAddr) -> bool {
        let Some(listen) = self.listen_addr.get() else {
            return false;
        };
        if addr.port() != listen.port() {
            return false;
        }
        if listen.ip().is_unspecified() {
            is_local_ip(addr.ip())
        } else {
            addr.ip().to_canonical() == listen.ip().to_canonical()
        }
    }

    /// This tracker's own election status.
    pub fn own_status(&self) -> TrackerStatus {
        TrackerStatus {
            if_leader: self.relation().claims_leadership(),
            running_time_secs: round_down_300(now_secs() - self.start_time),
            restart_interval_secs: self.restart_interval_secs,
        }
    }
}

/// TRACKER_GET_STATUS (64): leader flag, running time, restart interval.
pub fn get_status(t: &Tracker, body: &[u8]) -> HandlerResult {
    if !body.is_empty() {
        return Err(Status::EINVAL);
    }
    if t.lock().groups.is_empty() {
        return Err(Status::ENOENT);
    }
    let mut out = BytesMut::with_capacity(TrackerStatus::LEN);
    t.own_status().encode(&mut out);
    Ok(out.to_vec())
}

/// TRACKER_INSTANCE_ID (241, our extension): this process's random id.
pub fn instance_id(t: &Tracker, body: &[u8]) -> HandlerResult {
    if !body.is_empty() {
        return Err(Status::EINVAL);
    }
    Ok(t.instance_id.to_be_bytes().to_vec())
}

/// SERVER_GET_LEADER (95): the leader's `ip:port`, ENOENT if none.
pub fn get_leader(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    if !body.is_empty() {
        return Err(Status::EINVAL);
    }
    let rel = t.relation();
    match rel.leader_addr() {
        Some(addr) => Ok(addr.to_string().into_bytes()),
        // Alone and not listed by any storage yet: we lead, as reached.
        None if !rel.has_peers() => Ok(ctx.local_addr_text().into_bytes()),
        None => Err(Status::ENOENT),
    }
}

/// JOIN_LEADER (58): a follower attaches to us.
pub fn join_leader(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    let req = JoinLeaderReq::decode(body).map_err(inval)?;
    let rel = t.relation();
    if !rel.is_leader() {
        return Err(Status::EOPNOTSUPP);
    }
    if ctx.leader_follower.is_some() {
        return Err(Status::EEXIST);
    }
    let follower = ctx
        .peer_ip
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, req.tracker_port))
        .map_err(|_| Status::ENOENT)?;
    // The original tracker does not bind its outgoing sockets, so on a host
    // with several trackers its JOIN_LEADER comes from the host's default
    // source address (§4.8 quirk). Accept it when it comes from this host
    // and a listed tracker of this host has that port.
    let same_host_peer = || {
        is_local_ip(follower.ip())
            && rel
                .peers()
                .any(|p| p.addr.port() == follower.port() && is_local_ip(p.addr.ip()))
    };
    if !rel.knows(follower) && !same_host_peer() {
        tracing::warn!(%follower, "JOIN_LEADER from a tracker not in our list");
        return Err(Status::ENOENT);
    }
    drop(rel);
    tracing::info!(%follower, "tracker joined us as leader");
    ctx.leader_follower = Some(follower);
    ctx.pinged = false;
    Ok(Vec::new())
}

/// PING_LEADER (65): the group list with trunk servers on the first ping
/// of a connection, empty afterwards (we never assign trunk servers).
pub fn ping_leader(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    PingLeaderReq::decode(body).map_err(inval)?;
    if !t.relation().is_leader() {
        return Err(Status::EOPNOTSUPP);
    }
    if ctx.leader_follower.is_none() {
        return Err(Status::EINVAL);
    }
    if ctx.pinged {
        return Ok(Vec::new());
    }
    ctx.pinged = true;
    let entries: Vec<GroupTrunk> = t
        .lock()
        .groups
        .keys()
        .map(|g| GroupTrunk {
            group: g.clone(),
            trunk_server_id: String::new(),
        })
        .collect();
    let mut out = BytesMut::new();
    encode_group_trunks(&mut out, &entries);
    Ok(out.to_vec())
}

/// NOTIFY_NEXT_LEADER (66): phase one of an election.
pub fn notify_next_leader(t: &Tracker, body: &[u8]) -> HandlerResult {
    let addr = decode_leader_addr(body).map_err(inval)?;
    let mut rel = t.relation();
    if !rel.knows(addr) {
        return Err(Status::ENOENT);
    }
    if rel.elected_self() && Some(addr) != rel.self_addr {
        tracing::warn!(candidate = %addr, "another tracker wants to lead while we do: stepping down");
        rel.set_leader(None);
        return Err(Status::EINVAL);
    }
    rel.proposed = Some(addr);
    Ok(Vec::new())
}

/// COMMIT_NEXT_LEADER (67): phase two; must match the proposal.
pub fn commit_next_leader(t: &Tracker, body: &[u8]) -> HandlerResult {
    let addr = decode_leader_addr(body).map_err(inval)?;
    let mut rel = t.relation();
    if rel.proposed != Some(addr) {
        return Err(Status::EINVAL);
    }
    rel.proposed = None;
    rel.set_leader(Some(addr));
    drop(rel);
    tracing::info!(leader = %addr, "tracker leader committed");
    t.relation_wake.notify_one();
    Ok(Vec::new())
}

/// NOTIFY_RESELECT_LEADER (68): a storage saw two leaders; we step down.
pub fn notify_reselect_leader(t: &Tracker, body: &[u8]) -> HandlerResult {
    if !body.is_empty() {
        return Err(Status::EINVAL);
    }
    let mut rel = t.relation();
    if !rel.elected_self() {
        return Err(Status::EOPNOTSUPP);
    }
    rel.set_leader(None);
    drop(rel);
    t.relation_wake.notify_one();
    Ok(Vec::new())
}

/// GET_SYS_FILES_START (61): snapshot the data files for this connection.
pub fn sys_files_start(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    if !body.is_empty() {
        return Err(Status::EINVAL);
    }
    let cluster = t.lock();
    if cluster.groups.is_empty() {
        return Err(Status::ENOENT);
    }
    if ctx.sys_files.is_none() && !t.try_lock_sys_files(ctx.conn_id) {
        return Err(Status::EBUSY);
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
pub fn sys_files_end(t: &Tracker, ctx: &mut ConnCtx, body: &[u8]) -> HandlerResult {
    if !body.is_empty() {
        return Err(Status::EINVAL);
    }
    if ctx.sys_files.take().is_some() {
        t.unlock_sys_files(ctx.conn_id);
    }
    Ok(Vec::new())
}

/// GET_ONE_SYS_FILE (63): total size, then a chunk from `offset`.
pub fn get_one_sys_file(ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let req = SysFileReq::decode(body).map_err(inval)?;
    let files = ctx.sys_files.as_ref().ok_or(Status::EINVAL)?;
    let file = &files[usize::from(req.index)];
    let offset = usize::try_from(req.offset).map_err(|_| Status::EINVAL)?;
    if offset > file.len() {
        return Err(Status::EINVAL);
    }
    let end = file.len().min(offset + SYS_FILE_CHUNK_BYTES);
    let mut out = Vec::with_capacity(8 + end - offset);
    out.extend_from_slice(&(file.len() as i64).to_be_bytes());
    out.extend_from_slice(&file[offset..end]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn alone_means_leader() {
        let mut rel = Relation {
            self_addr: Some(addr("127.0.0.2:22122")),
            ..Relation::default()
        };
        assert!(rel.is_leader());
        // No storage has named the tracker list yet: lead, but do not
        // claim it to other trackers.
        assert!(!rel.claims_leadership());
        rel.listed.insert("127.0.0.2:22122".into());
        assert!(rel.claims_leadership());
        rel.resolved.push(PeerTracker {
            text: "127.0.0.3:22122".into(),
            addr: addr("127.0.0.3:22122"),
            is_self: false,
        });
        assert!(!rel.is_leader());
        assert_eq!(rel.leader_addr(), None);
        assert!(!rel.claims_leadership());
        rel.set_leader(Some(addr("127.0.0.2:22122")));
        assert!(rel.is_leader());
        assert!(rel.claims_leadership());
        rel.set_leader(Some(addr("127.0.0.3:22122")));
        assert!(!rel.is_leader());
        assert!(!rel.claims_leadership());
        assert_eq!(rel.leader_gen, 2);
    }

    #[test]
    fn unresolved_entries_count_as_peers_until_a_lookup_fails() {
        let mut rel = Relation {
            unresolved: 1,
            ..Relation::default()
        };
        assert!(!rel.is_leader());
        rel.unresolvable
            .insert("tracker-only-storages-know:22122".into());
        assert!(rel.is_leader());
    }
}
