//! Talking to another tracker of the list: connections bound to our
//! address, one-shot calls, and the probe (TRACKER_GET_STATUS, plus
//! TRACKER_INSTANCE_ID once) that verifies an entry as a tracker or finds
//! it is ourselves; and the list task that resolves and probes the
//! entries that have not answered yet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdfs_client::conn::Conn;
use fdfs_client::ClientError;
use fdfs_proto::leader_msg::TrackerStatus;
use fdfs_proto::{Status, TrackerCmd};
use tokio_util::sync::CancellationToken;

use super::TICK;
use crate::Tracker;

/// Connect timeout towards another tracker.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Answer timeout towards another tracker: an election must not hang on a
/// stalled peer for the 60 s of network_timeout.
const PEER_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound of one host-name lookup of a list entry.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A probe of an entry in flight is not started again for this long (a
/// probe takes at most a connect and two answers).
const PROBE_IN_FLIGHT: Duration = Duration::from_secs(15);

/// The list task: every tick (or when a JOIN brought entries) resolves and
/// probes the unverified entries that are due, all at once, so entries
/// that never answer cost one timeout per round. Runs until `cancel` fires.
pub(crate) async fn watch_list(t: Arc<Tracker>, cancel: CancellationToken) {
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
pub(super) async fn resolve_new_names(t: &Tracker) {
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

/// A connection to another tracker, bound to our listening address.
pub(super) async fn connect(t: &Tracker, addr: SocketAddr) -> Result<Conn, ClientError> {
    Conn::connect_from(
        &addr.to_string(),
        t.own_ip(),
        PEER_CONNECT_TIMEOUT,
        PEER_IO_TIMEOUT,
    )
    .await
}

/// One request on a connection of its own.
pub(super) async fn call(
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
pub(super) async fn peer_status(t: &Tracker, peer: SocketAddr) -> Option<TrackerStatus> {
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
