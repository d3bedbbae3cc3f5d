//! The relationship tasks (PROTOCOL.md §4.8): the list task resolves and
//! probes the entries of the tracker list that have not answered as
//! trackers yet; the election task elects a leader when none is known
//! (TRACKER_GET_STATUS ordering, then NOTIFY/COMMIT_NEXT_LEADER), and as a
//! follower keeps one connection to the leader with JOIN_LEADER and a
//! PING_LEADER every second.
//!
//! Outgoing connections are bound to our listening address when it is a
//! specific one: the leader names a follower by the connection's source IP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::conn::Conn;
use fdfs_client::ClientError;
use fdfs_proto::leader_msg::{
    JoinLeaderReq, PingLeaderReq, SysFileReq, TrackerStatus, SYS_FILE_NAMES,
};
use fdfs_proto::{Status, TrackerCmd, FDFS_VERSION};
use tokio_util::sync::CancellationToken;

use crate::{persist, Tracker};

/// Between two rounds of the loop, and between two pings.
const TICK: Duration = Duration::from_secs(1);
/// Connect timeout towards another tracker.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Answer timeout towards another tracker: an election must not hang on a
/// stalled peer for the 60 s of network_timeout.
const PEER_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Consecutive failures to reach the leader before electing another.
const LEADER_FAILURES_BEFORE_ELECTION: u32 = 3;
/// A tracker that lost an election waits for the winner's notification at
/// most this long (plus jitter) before trying again. The original waits a
/// random 1–10 s; a shorter wait heals a split faster.
const ELECTION_RETRY_MAX_MS: u64 = 2500;

/// How often a leader asks the other trackers whether one of them leads
/// too (two leaders after a network partition heals).
const RIVAL_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Bound of one host-name lookup of a list entry.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A probe of an entry in flight is not started again for this long (a
/// probe takes at most a connect and two answers).
const PROBE_IN_FLIGHT: Duration = Duration::from_secs(15);

/// The list task: every tick (or when a JOIN brought entries) resolves and
/// probes the unverified entries that are due, all at once, so entries
/// that never answer cost one timeout per round. Runs until `cancel` fires.
pub async fn watch_list(t: Arc<Tracker>, cancel: CancellationToken) {
    loop {
        let (due, peers_before) = {
            let mut rel = t.relation();
            (
                rel.take_due(Instant::now(), PROBE_IN_FLIGHT),
                rel.peer_addrs(),
            )
        };
        let mut probes = tokio::task::JoinSet::new();
        for (text, addr) in due {
            let t = t.clone();
            probes.spawn(async move {
                let addr = match addr {
                    Some(a) => Some(a),
                    None => resolve(&t, text).await,
                };
                // Entries known to be ourselves are never due.
                if let Some(addr) = addr {
                    let _ = peer_status(&t, addr).await;
                }
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async { while probes.join_next().await.is_some() {} } => {}
        }
        if t.relation().peer_addrs() != peers_before {
            // A peer answered at last, or went dormant: the election task
            // looks again.
            t.relation_wake.notify_one();
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
            _ = t.list_wake.notified() => {}
        }
    }
}

/// Runs the election task until `cancel` fires.
pub async fn run(t: Arc<Tracker>, cancel: CancellationToken) {
    let mut last_rival_check = tokio::time::Instant::now();
    loop {
        let (leader, me, has_peers) = {
            let rel = t.relation();
            (rel.leader, rel.self_addr, rel.has_peers())
        };
        let pause = if !has_peers {
            TICK
        } else {
            match leader {
                None => elect(&t).await,
                Some(l) if Some(l) == me => {
                    if last_rival_check.elapsed() >= RIVAL_CHECK_INTERVAL {
                        last_rival_check = tokio::time::Instant::now();
                        settle_rival_leaders(&t, l).await;
                    }
                    TICK
                }
                Some(l) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = follow(&t, l) => {}
                    }
                    Duration::ZERO
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
            _ = t.relation_wake.notified() => {}
        }
    }
}

/// Looks up a host-name entry of the list (literal ones were resolved
/// when they were learnt) and records the outcome.
async fn resolve(t: &Tracker, text: String) -> Option<SocketAddr> {
    let found =
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(text.as_str())).await {
            Ok(Ok(mut addrs)) => addrs.find(|a| a.is_ipv4()),
            _ => None,
        };
    let Some(addr) = found else {
        t.relation().lookup_failed(&text, Instant::now());
        return None;
    };
    let is_self = t.is_self_addr(addr);
    t.relation().resolved(&text, addr, is_self);
    (!is_self).then_some(addr)
}

/// Resolves the host-name entries never tried yet (before the first JOIN
/// the data-file copy needs the whole list at once).
async fn resolve_new_names(t: &Tracker) {
    let pending: Vec<String> = t
        .relation()
        .listed
        .iter()
        .filter(|p| p.addr.is_none() && p.failures == 0)
        .map(|p| p.text.clone())
        .collect();
    for text in pending {
        resolve(t, text).await;
    }
}

async fn connect(t: &Tracker, addr: SocketAddr) -> Result<Conn, ClientError> {
    Conn::connect_from(
        &addr.to_string(),
        t.own_ip(),
        PEER_CONNECT_TIMEOUT,
        PEER_IO_TIMEOUT,
    )
    .await
}

async fn call(
    t: &Tracker,
    addr: SocketAddr,
    cmd: TrackerCmd,
    body: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let mut conn = connect(t, addr).await?;
    let answer = conn.call(cmd.into(), body).await;
    conn.quit().await;
    answer
}

/// TRACKER_GET_STATUS of `peer`. None when it does not answer with a
/// status, or when the entry turns out to be ourselves (its instance id is
/// ours: NAT or a virtual IP in front of us); the entry is then marked so.
/// A status, or ENOENT (a tracker without groups, §2.15), verifies the
/// entry as a tracker; anything else counts against it.
async fn peer_status(t: &Tracker, peer: SocketAddr) -> Option<TrackerStatus> {
    let Ok(mut conn) = connect(t, peer).await else {
        t.relation().record_probe(peer, false, Instant::now());
        return None;
    };
    let answer = conn.call(TrackerCmd::TrackerGetStatus.into(), &[]).await;
    // Asked once per entry: an entry that answered is not us, and the
    // original tracker (which answers 241 with EINVAL) logs each probe.
    let already_checked = t.relation().known_not_self(peer);
    let is_us = if already_checked {
        false
    } else {
        let answered = conn.call(TrackerCmd::TrackerInstanceId.into(), &[]).await;
        let is_us = matches!(&answered, Ok(id) if *id == t.instance_id.to_be_bytes());
        if !is_us && !matches!(answered, Err(ref e) if e.is_network()) {
            t.relation().set_not_self(peer);
        }
        is_us
    };
    conn.quit().await;
    if is_us {
        tracing::info!(entry = %peer, "this tracker list entry is ourselves");
        t.relation().mark_self(peer);
        return None;
    }
    let status = match &answer {
        Ok(body) => TrackerStatus::decode(body)
            .map_err(|e| tracing::debug!(%peer, error = %e, "bad tracker status answer"))
            .ok(),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "tracker status not available");
            None
        }
    };
    let answered_as_tracker =
        status.is_some() || matches!(answer, Err(ClientError::Status(s)) if s == Status::ENOENT);
    t.relation()
        .record_probe(peer, answered_as_tracker, Instant::now());
    status
}

/// The sort key of the election: the largest wins.
fn rank(s: &TrackerStatus, addr: SocketAddr) -> (bool, i64, std::cmp::Reverse<i64>, String, u16) {
    (
        s.if_leader,
        s.running_time_secs,
        std::cmp::Reverse(s.restart_interval_secs),
        addr.ip().to_string(),
        addr.port(),
    )
}

/// One election round; returns how long to wait before the next round.
async fn elect(t: &Tracker) -> Duration {
    let (me, peers) = {
        let rel = t.relation();
        (rel.self_addr, rel.peer_addrs())
    };
    let Some(me) = me else {
        // Not listed by any storage as itself: we cannot be named leader.
        // Follow whichever peer claims it.
        return adopt_claimed_leader(t, &peers).await;
    };
    let mut candidates = vec![(t.own_status(), me)];
    for &peer in &peers {
        if let Some(s) = peer_status(t, peer).await {
            candidates.push((s, peer));
        }
    }
    if t.relation().peers().count() != peers.len() {
        // A probe found another entry of ours: start over with the new list.
        return Duration::ZERO;
    }
    let Some(&(best, candidate)) = candidates.iter().max_by_key(|(s, a)| rank(s, *a)) else {
        return TICK;
    };
    if candidate == me {
        if commit_myself(t, me, &peers).await {
            tracing::info!(leader = %me, "I am the new tracker leader");
            return TICK;
        }
        return election_retry_pause();
    }
    if best.if_leader {
        tracing::info!(leader = %candidate, "adopting the tracker leader");
        t.relation().set_leader(Some(candidate));
        return Duration::ZERO;
    }
    tracing::debug!(%candidate, "waiting for the candidate's notification");
    election_retry_pause()
}

/// Two leaders can exist after a partition heals: each side elected one
/// while it could not reach the other, or a restarted original tracker
/// elected itself before a storage told it the whole list. The original
/// relies on storages noticing (NOTIFY_RESELECT_LEADER); here the leader
/// itself asks its peers. A rival that ranks higher by the election's
/// order is followed; one that ranks lower is told to step down with
/// NOTIFY_RESELECT_LEADER (68), which the original obeys by electing again
/// (and then adopts us). Both sides compute the same order, so exactly one
/// yields.
async fn settle_rival_leaders(t: &Tracker, me: SocketAddr) {
    let peers = t.relation().peer_addrs();
    let mine = t.own_status();
    for peer in peers {
        let Some(theirs) = peer_status(t, peer).await else {
            continue;
        };
        if !theirs.if_leader {
            continue;
        }
        if rank(&theirs, peer) > rank(&mine, me) {
            tracing::warn!(rival = %peer, "another tracker leads too and ranks higher: following it");
            let mut rel = t.relation();
            if rel.leader == Some(me) {
                rel.set_leader(Some(peer));
            }
            return;
        }
        tracing::warn!(rival = %peer, "another tracker leads too and ranks lower: asking it to step down");
        if let Err(e) = call(t, peer, TrackerCmd::TrackerNotifyReselectLeader, &[]).await {
            tracing::debug!(rival = %peer, error = %e, "NOTIFY_RESELECT_LEADER failed");
        }
    }
}

/// Without a place in the list we follow a claimed leader, unless a probe
/// finds that one of the entries is us after all.
async fn adopt_claimed_leader(t: &Tracker, peers: &[SocketAddr]) -> Duration {
    for &peer in peers {
        if peer_status(t, peer).await.is_some_and(|s| s.if_leader) {
            t.relation().set_leader(Some(peer));
            return Duration::ZERO;
        }
    }
    if t.relation().self_addr.is_some() {
        // A probe found our own entry: elect with it at once.
        return Duration::ZERO;
    }
    election_retry_pause()
}

/// Two-phase commit of ourselves to every reachable peer. An unreachable
/// peer is skipped; any answered error aborts the round.
async fn commit_myself(t: &Tracker, me: SocketAddr, peers: &[SocketAddr]) -> bool {
    let body = me.to_string().into_bytes();
    t.relation().proposed = Some(me);
    for cmd in [
        TrackerCmd::TrackerNotifyNextLeader,
        TrackerCmd::TrackerCommitNextLeader,
    ] {
        for &peer in peers {
            match call(t, peer, cmd, &body).await {
                Ok(_) => {}
                Err(ClientError::Status(s)) => {
                    tracing::info!(%peer, ?cmd, status = s.0, "election refused by a tracker");
                    return false;
                }
                Err(e) => tracing::debug!(%peer, ?cmd, error = %e, "tracker unreachable"),
            }
        }
    }
    let mut rel = t.relation();
    rel.proposed = None;
    rel.set_leader(Some(me));
    true
}

fn election_retry_pause() -> Duration {
    // Jitter from the clock: two trackers that tied should not retry in step.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_millis(500 + nanos % ELECTION_RETRY_MAX_MS)
}

/// Follows `leader` until it changes or fails three times in a row, then
/// forgets it (the next round elects).
async fn follow(t: &Tracker, leader: SocketAddr) {
    let mut failures = 0u32;
    let mut backoff = TICK;
    loop {
        if t.relation().leader != Some(leader) {
            return;
        }
        match follow_once(t, leader).await {
            FollowEnd::LeaderChanged => return,
            FollowEnd::Failed { pinged } => {
                if pinged {
                    failures = 0;
                    backoff = TICK;
                }
                failures += 1;
                if failures >= LEADER_FAILURES_BEFORE_ELECTION {
                    tracing::warn!(%leader, "tracker leader unreachable: electing a new one");
                    let mut rel = t.relation();
                    if rel.leader == Some(leader) {
                        rel.set_leader(None);
                    }
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}

enum FollowEnd {
    LeaderChanged,
    Failed { pinged: bool },
}

async fn follow_once(t: &Tracker, leader: SocketAddr) -> FollowEnd {
    let Ok(mut conn) = connect(t, leader).await else {
        return FollowEnd::Failed { pinged: false };
    };
    let port = t.listen_addr.get().map(|a| a.port()).unwrap_or(t.conf.port);
    let mut body = BytesMut::new();
    JoinLeaderReq {
        up_time: t.start_time,
        version: FDFS_VERSION.to_string(),
        tracker_port: port,
    }
    .encode(&mut body);
    if let Err(e) = conn.call(TrackerCmd::TrackerJoinLeader.into(), &body).await {
        tracing::debug!(%leader, error = %e, "JOIN_LEADER failed");
        return FollowEnd::Failed { pinged: false };
    }
    tracing::info!(%leader, "following the tracker leader");
    let mut pinged = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = t.relation_wake.notified() => {}
        }
        if t.relation().leader != Some(leader) {
            conn.quit().await;
            return FollowEnd::LeaderChanged;
        }
        let mut ping = BytesMut::new();
        PingLeaderReq::default().encode(&mut ping);
        if let Err(e) = conn.call(TrackerCmd::TrackerPingLeader.into(), &ping).await {
            tracing::debug!(%leader, error = %e, "PING_LEADER failed");
            return FollowEnd::Failed { pinged };
        }
        pinged = true;
    }
}

/// §4.2/§4.9: before the first JOIN after a start without any group, copy
/// the data files from the best-ranked peer tracker that has groups, so the
/// storages it knows are not refused as unknown. Returns false when a copy
/// started and failed (the JOIN then answers EAGAIN).
pub async fn copy_sys_files_before_first_join(t: &Tracker) -> bool {
    let mut checked = t.sys_files_checked.lock().await;
    if *checked || !t.lock().groups.is_empty() {
        *checked = true;
        return true;
    }
    *checked = true;
    resolve_new_names(t).await;
    let (me, peers) = {
        let rel = t.relation();
        (rel.self_addr, rel.peer_addrs())
    };
    let mut best: Option<(TrackerStatus, SocketAddr)> = None;
    for peer in peers {
        let Some(status) = peer_status(t, peer).await else {
            continue;
        };
        if best.is_none_or(|(b, a)| rank(&status, peer) > rank(&b, a)) {
            best = Some((status, peer));
        }
    }
    let Some((status, source)) = best else {
        return true;
    };
    if let Some(me) = me {
        if rank(&t.own_status(), me) > rank(&status, source) {
            return true;
        }
    }
    match fetch_sys_files(t, source).await {
        Ok(files) => match install_sys_files(t, &files) {
            Ok(()) => {
                tracing::info!(%source, "copied the data files from a peer tracker");
                true
            }
            Err(e) => {
                tracing::error!(%source, error = %e, "cannot install copied data files");
                false
            }
        },
        Err(e) => {
            tracing::warn!(%source, error = %e, "copying the data files failed");
            false
        }
    }
}

async fn fetch_sys_files(t: &Tracker, source: SocketAddr) -> Result<Vec<Vec<u8>>, ClientError> {
    let mut conn = connect(t, source).await?;
    conn.call(TrackerCmd::TrackerGetSysFilesStart.into(), &[])
        .await?;
    let mut files = Vec::with_capacity(SYS_FILE_NAMES.len());
    for index in 0..SYS_FILE_NAMES.len() as u8 {
        let mut content = Vec::new();
        loop {
            let mut req = BytesMut::new();
            SysFileReq {
                index,
                offset: content.len() as i64,
            }
            .encode(&mut req);
            let answer = conn
                .call(TrackerCmd::TrackerGetOneSysFile.into(), &req)
                .await?;
            let Some((size, chunk)) = answer.split_first_chunk::<8>() else {
                return Err(ClientError::Invalid("short GET_ONE_SYS_FILE answer".into()));
            };
            let size = u64::try_from(i64::from_be_bytes(*size))
                .map_err(|_| ClientError::Invalid("negative sys file size".into()))?;
            content.extend_from_slice(chunk);
            if content.len() as u64 >= size {
                break;
            }
            if chunk.is_empty() {
                return Err(ClientError::Invalid("sys file ended early".into()));
            }
        }
        files.push(content);
    }
    conn.call(TrackerCmd::TrackerGetSysFilesEnd.into(), &[])
        .await?;
    conn.quit().await;
    Ok(files)
}

/// Writes the copied files and loads them as our state.
fn install_sys_files(t: &Tracker, files: &[Vec<u8>]) -> std::io::Result<()> {
    for (name, content) in SYS_FILE_NAMES.iter().zip(files) {
        persist::write_atomic(&t.data_dir.join(name), content)?;
    }
    let mut loaded = persist::load(&t.data_dir, t.conf.use_storage_id)?;
    loaded.offline_after_load();
    let mut cluster = t.lock();
    if cluster.groups.is_empty() {
        *cluster = loaded;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(l: bool, run: i64, restart: i64) -> TrackerStatus {
        TrackerStatus {
            if_leader: l,
            running_time_secs: run,
            restart_interval_secs: restart,
        }
    }

    #[test]
    fn ranking_follows_the_original_order() {
        let a: SocketAddr = "127.0.0.11:22300".parse().unwrap();
        let b: SocketAddr = "127.0.0.12:22300".parse().unwrap();
        // All tied: the larger IP string wins.
        assert!(rank(&st(false, 0, 0), b) > rank(&st(false, 0, 0), a));
        // A leader beats a longer runner.
        assert!(rank(&st(true, 0, 0), a) > rank(&st(false, 900, 0), b));
        // Longer running time wins.
        assert!(rank(&st(false, 600, 0), a) > rank(&st(false, 300, 0), b));
        // The shorter restart interval wins.
        assert!(rank(&st(false, 300, 0), a) > rank(&st(false, 300, 600), b));
    }
}
