//! The election task (§4.8): elects a leader when none is known, by the
//! order of [`rank`] over every peer's TRACKER_GET_STATUS, then commits it
//! with NOTIFY/COMMIT_NEXT_LEADER; as a leader, settles rival leaders; as
//! a follower, keeps one connection to the leader with JOIN_LEADER and a
//! PING_LEADER every [`TICK`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fdfs_client::ClientError;
use fdfs_proto::leader_msg::{decode_group_trunks, JoinLeaderReq, PingLeaderReq, TrackerStatus};
use fdfs_proto::{TrackerCmd, FDFS_VERSION};
use tokio_util::sync::CancellationToken;

use super::probe::{call, connect, peer_status};
use super::TICK;
use crate::Tracker;

/// Consecutive failures to reach the leader before electing another.
const LEADER_FAILURES_BEFORE_ELECTION: u32 = 3;
/// A tracker that lost an election waits for the winner's notification at
/// most this long (plus jitter) before trying again. The original waits a
/// random 1–10 s; a shorter wait heals a split faster.
const ELECTION_RETRY_MAX_MS: u64 = 2500;

/// How often a leader asks the other trackers whether one of them leads
/// too (two leaders after a network partition heals).
const RIVAL_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the election task until `cancel` fires.
pub(crate) async fn run(t: Arc<Tracker>, cancel: CancellationToken) {
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

/// The sort key of the election: the largest wins.
pub(super) fn rank(
    s: &TrackerStatus,
    addr: SocketAddr,
) -> (bool, i64, std::cmp::Reverse<i64>, String, u16) {
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
        let counts = t.conn_counts();
        PingLeaderReq {
            alloc_connections: counts.alloc,
            current_connections: counts.current,
            max_connections: counts.max,
        }
        .encode(&mut ping);
        let answer = match conn.call(TrackerCmd::TrackerPingLeader.into(), &ping).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(%leader, error = %e, "PING_LEADER failed");
                return FollowEnd::Failed { pinged };
            }
        };
        pinged = true;
        if !answer.is_empty() {
            match decode_group_trunks(&answer) {
                Ok(entries) => {
                    if crate::leader::apply_group_trunks(t, &entries) {
                        t.mark_dirty();
                    }
                }
                Err(e) => tracing::warn!(%leader, error = %e, "bad PING_LEADER answer"),
            }
        }
    }
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
