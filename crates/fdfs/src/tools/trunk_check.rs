//! `fdfs trunk check [--group G] [--repair]`: asks every ACTIVE member of a group to compare its slot headers with its trunk binlog (TRUNK_SCRUB 243, ours), prints one line per mismatch and a summary; with --repair, releases quarantined slots proven free on every member and frees leaked slots, only while every member is ACTIVE.
//!
//! A leaked slot is allocated in the trunk server's binlog and holds no
//! file: an allocation never confirmed for longer than network_timeout, or
//! a slot whose header on the trunk server is free with its size kept.
//! Either is freed only when no ACTIVE member holds a file header in it and
//! no member's storage binlog names a live file there. Exit status: 0
//! clean, 1 mismatches (or a member that could not be checked), else the
//! errno of a failure to reach the trackers.

use std::process::ExitCode;
use std::time::Duration;

use bytes::BytesMut;
use fdfs_client::{Client, ClientError, Conn, TrackerClient};
use fdfs_proto::stat::{storage_status, StorageStat};
use fdfs_proto::trunk::TrunkLocation;
use fdfs_proto::trunk_binlog::slot_end;
use fdfs_proto::trunk_scrub::{decode_statuses, Probe, ScrubAnswer, ScrubOp, ScrubReq, MAX_SLOTS};
use fdfs_proto::{Status, StorageCmd};

use crate::tools::format::errno_text;
use crate::tools::session::{exit_code, Session};

/// What `fdfs trunk check` was asked.
#[derive(Debug, Clone, Default)]
pub struct CheckArgs {
    pub group: Option<String>,
    pub repair: bool,
    /// The storages' `cluster_secret_file` secret: repairs are taken only
    /// from who proves it, when the storages have one.
    pub cluster_secret: Option<fdfs_util::cluster_secret::ClusterSecret>,
}

/// `M00/data/HH/HH/NNNNNN offset O size S`.
pub fn slot_text(s: &TrunkLocation) -> String {
    format!(
        "M{:02X}/{} offset {} size {}",
        s.store_path_index,
        s.trunk_file_relative_path(),
        s.offset,
        s.size
    )
}

fn same_file(a: &TrunkLocation, b: &TrunkLocation) -> bool {
    a.store_path_index == b.store_path_index && a.trunk_file_id == b.trunk_file_id
}

/// `inner` starts inside `outer`.
fn starts_in(inner: &TrunkLocation, outer: &TrunkLocation) -> bool {
    same_file(inner, outer)
        && inner.offset >= outer.offset
        && u64::from(inner.offset) < slot_end(outer)
}

/// Totals over all groups.
#[derive(Debug, Default)]
struct Totals {
    mismatches: usize,
    unchecked: usize,
}

pub fn run(session: &Session, args: &CheckArgs) -> ExitCode {
    let res = session.rt.block_on(check(&session.client, session, args));
    match res {
        Ok(t) => {
            if t.mismatches > 0 || t.unchecked > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            let n = i32::from(e.errno());
            eprintln!("fdfs: trunk check: {}", errno_text(n));
            exit_code(n)
        }
    }
}

async fn check(
    client: &Client,
    session: &Session,
    args: &CheckArgs,
) -> Result<Totals, ClientError> {
    let mut last = ClientError::Status(Status::ECONNREFUSED);
    let mut conn = None;
    for i in 0..client.trackers().len() {
        match client.connect_tracker(i).await {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(e) => last = e,
        }
    }
    let Some(mut conn) = conn else {
        return Err(last);
    };
    let mut tc = TrackerClient::new(&mut conn);
    let groups: Vec<String> = match &args.group {
        Some(g) => vec![g.clone()],
        None => tc
            .list_groups()
            .await?
            .into_iter()
            .map(|g| g.group_name)
            .collect(),
    };
    let mut lists = Vec::new();
    for g in &groups {
        lists.push((g.clone(), tc.list_storages(g, None).await?));
    }
    client.release(conn, true).await;
    let timeouts = (
        Duration::from_secs(session.conf.connect_timeout_secs.max(1)),
        // A scrub reads every slot header of the member's trunk files.
        Duration::from_secs(session.conf.network_timeout_secs.max(60)),
    );
    let mut totals = Totals::default();
    for (group, storages) in lists {
        let repair = args.repair.then_some(args.cluster_secret.as_ref());
        check_group(&group, &storages, repair, timeouts, &mut totals).await;
    }
    Ok(totals)
}

struct Member {
    addr: String,
    answer: ScrubAnswer,
}

/// Repairs prove the cluster secret first, when there is one.
async fn call(
    addr: &str,
    timeouts: (Duration, Duration),
    req: &ScrubReq,
    secret: Option<&fdfs_util::cluster_secret::ClusterSecret>,
) -> Result<Vec<u8>, ClientError> {
    let mut conn = Conn::connect(addr, timeouts.0, timeouts.1).await?;
    if let Some(secret) = secret.filter(|_| matches!(req.op, ScrubOp::Release | ScrubOp::Free)) {
        conn.prove_cluster_secret(secret, fdfs_util::cluster_secret::Purpose::StorageSync)
            .await?;
    }
    let mut b = BytesMut::new();
    req.encode(&mut b);
    let answer = conn.call(StorageCmd::TrunkScrub.into(), &b).await;
    conn.quit().await;
    answer
}

/// Sends `op` for `slots` in requests of at most [`MAX_SLOTS`].
async fn call_slots(
    addr: &str,
    timeouts: (Duration, Duration),
    group: &str,
    op: ScrubOp,
    slots: &[TrunkLocation],
    secret: Option<&fdfs_util::cluster_secret::ClusterSecret>,
) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    for chunk in slots.chunks(MAX_SLOTS) {
        let req = ScrubReq {
            group: group.to_string(),
            op,
            slots: chunk.to_vec(),
        };
        out.extend(call(addr, timeouts, &req, secret).await?);
    }
    Ok(out)
}

fn storage_addr(s: &StorageStat) -> String {
    if s.ip_addr.contains(':') {
        format!("[{}]:{}", s.ip_addr, s.storage_port)
    } else {
        format!("{}:{}", s.ip_addr, s.storage_port)
    }
}

/// `repair` is Some (with the cluster secret, if given) for --repair.
async fn check_group(
    group: &str,
    storages: &[StorageStat],
    repair: Option<Option<&fdfs_util::cluster_secret::ClusterSecret>>,
    timeouts: (Duration, Duration),
    totals: &mut Totals,
) {
    let (repair, secret) = (repair.is_some(), repair.flatten());
    outln!("group {group}: {} storage(s)", storages.len());
    let mut members: Vec<Member> = Vec::new();
    let mut unsupported = 0usize;
    let mut unreachable = 0usize;
    let mut skipped = 0usize;
    for s in storages {
        let addr = storage_addr(s);
        if s.status != storage_status::ACTIVE {
            outln!("  {addr}: skipped ({})", storage_status::caption(s.status));
            skipped += 1;
            continue;
        }
        let req = ScrubReq {
            group: group.to_string(),
            op: ScrubOp::Scrub,
            slots: Vec::new(),
        };
        match call(&addr, timeouts, &req, None).await {
            Ok(body) => match ScrubAnswer::decode(&body) {
                Ok(answer) => members.push(Member { addr, answer }),
                Err(e) => {
                    outln!("  {addr}: bad scrub answer: {e}");
                    unreachable += 1;
                }
            },
            Err(ClientError::Status(st)) if st == Status::EINVAL => {
                outln!("  {addr}: scrub not supported");
                unsupported += 1;
            }
            Err(e) => {
                outln!("  {addr}: scrub failed: {e}");
                unreachable += 1;
            }
        }
    }
    let server = members.iter().position(|m| m.answer.serving);
    let timeout_secs = server.map_or(0, |i| members[i].answer.network_timeout_secs.max(1));
    // Allocations still being written (young) or abandoned (stale).
    let (young, stale): (Vec<_>, Vec<_>) = server
        .map(|i| members[i].answer.unconfirmed.items.clone())
        .unwrap_or_default()
        .into_iter()
        .partition(|(_, age)| *age < timeout_secs);
    let young: Vec<TrunkLocation> = young.into_iter().map(|(s, _)| s).collect();
    // Leak candidates: stale allocations, and slots the trunk server's own
    // disk shows cleared.
    let mut leaks: Vec<(TrunkLocation, String)> = stale
        .iter()
        .map(|(s, age)| (*s, format!("allocated {age} s ago, never confirmed")))
        .collect();
    if let Some(i) = server {
        for m in &members[i].answer.mismatches.items {
            if m.cleared {
                leaks.push((m.at, "allocated, header free".to_string()));
            }
        }
    }
    let mut mismatches = 0usize;
    let mut headers = 0u64;
    for m in &members {
        let a = &m.answer;
        headers += a.headers_read;
        let role = if a.serving { " (trunk server)" } else { "" };
        let mut lines = Vec::new();
        for (free, file) in &a.free_with_header.items {
            lines.push(format!(
                "free slot {} holds a file header at offset {} size {}",
                slot_text(free),
                file.offset,
                file.size
            ));
        }
        for mm in &a.mismatches.items {
            let in_flight = young.iter().any(|s| starts_in(&mm.at, s));
            let leak = leaks.iter().any(|(s, _)| starts_in(&mm.at, s));
            if !in_flight && !leak {
                lines.push(format!("{}: {}", slot_text(&mm.at), mm.reason));
            }
        }
        let untold = (a.free_with_header.total as usize - a.free_with_header.items.len())
            + (a.mismatches.total as usize - a.mismatches.items.len());
        mismatches += lines.len() + untold;
        if lines.is_empty() && untold == 0 {
            outln!(
                "  {}{role}: clean, {} trunk file(s), {} header(s) read",
                m.addr,
                a.trunk_files,
                a.headers_read
            );
        }
        for l in &lines {
            outln!("  {}{role}: mismatch: {l}", m.addr);
        }
        if untold > 0 {
            outln!("  {}{role}: {untold} more mismatch(es) not listed", m.addr);
        }
    }

    // What every checked member holds in the candidates.
    let quarantined: Vec<(TrunkLocation, bool)> = server
        .map(|i| members[i].answer.quarantined.items.clone())
        .unwrap_or_default();
    let mut probe_slots: Vec<TrunkLocation> = leaks.iter().map(|(s, _)| *s).collect();
    probe_slots.extend(quarantined.iter().map(|(s, _)| *s));
    let mut busy = vec![false; probe_slots.len()];
    // A member that is not ACTIVE may hold files there, or still owe the
    // trunk server the free of a slot it deleted: nothing is repaired
    // without hearing from every member.
    let can_prove = unsupported == 0 && unreachable == 0 && skipped == 0;
    if !probe_slots.is_empty() && can_prove {
        for m in &members {
            let body =
                call_slots(&m.addr, timeouts, group, ScrubOp::Probe, &probe_slots, None).await;
            match body
                .map_err(|e| e.to_string())
                .and_then(|b| Probe::decode_all(&b, probe_slots.len()).map_err(|e| e.to_string()))
            {
                Ok(probes) => {
                    for (b, p) in busy.iter_mut().zip(probes) {
                        *b |= p.files_on_disk > 0 || p.live_names > 0;
                    }
                }
                Err(e) => {
                    outln!("  {}: probe failed: {e}", m.addr);
                    busy.iter_mut().for_each(|b| *b = true);
                }
            }
        }
    } else {
        busy.iter_mut().for_each(|b| *b = true);
    }
    let (leak_busy, q_busy) = busy.split_at(leaks.len());

    let server_addr = server.map(|i| members[i].addr.clone());
    let mut freed = 0usize;
    let free_list: Vec<TrunkLocation> = leaks
        .iter()
        .zip(leak_busy)
        .filter(|(_, b)| !**b)
        .map(|((s, _), _)| *s)
        .collect();
    let mut free_status = vec![u8::MAX; free_list.len()];
    if repair && !free_list.is_empty() {
        if let Some(addr) = &server_addr {
            match call_slots(addr, timeouts, group, ScrubOp::Free, &free_list, secret)
                .await
                .and_then(|b| decode_statuses(&b, free_list.len()).map_err(ClientError::from))
            {
                Ok(st) => free_status = st,
                Err(e) => outln!("  {addr}: freeing leaked slots failed: {e}"),
            }
        }
    }
    let mut k = 0usize;
    for ((slot, why), b) in leaks.iter().zip(leak_busy) {
        if *b {
            let reason = if can_prove {
                "a member holds a file there, or has not given it back yet"
            } else {
                "not every member could be checked"
            };
            outln!("  leaked slot? {} ({why}): kept, {reason}", slot_text(slot));
            mismatches += 1;
            continue;
        }
        let st = free_status[k];
        k += 1;
        match (repair, st) {
            (false, _) => {
                outln!("  leaked slot: {} ({why})", slot_text(slot));
                mismatches += 1;
            }
            (true, 0) => outln!("  freed leaked slot {} ({why})", slot_text(slot)),
            (true, st) => {
                outln!(
                    "  leaked slot {} ({why}): not freed: {}",
                    slot_text(slot),
                    errno_text(i32::from(st))
                );
                mismatches += 1;
            }
        }
        if repair && st == 0 {
            freed += 1;
        }
    }

    let q_free: Vec<TrunkLocation> = quarantined
        .iter()
        .zip(q_busy)
        .filter(|(_, b)| !**b)
        .map(|((s, _), _)| *s)
        .collect();
    let q_bytes: u64 = quarantined.iter().map(|(s, _)| u64::from(s.size)).sum();
    let mut released = 0usize;
    let mut released_bytes = 0u64;
    if repair && !q_free.is_empty() {
        if let Some(addr) = &server_addr {
            match call_slots(addr, timeouts, group, ScrubOp::Release, &q_free, secret)
                .await
                .and_then(|b| decode_statuses(&b, q_free.len()).map_err(ClientError::from))
            {
                Ok(st) => {
                    for (s, st) in q_free.iter().zip(st) {
                        if st == 0 {
                            released += 1;
                            released_bytes += u64::from(s.size);
                        } else {
                            outln!(
                                "  quarantined slot {}: not released: {}",
                                slot_text(s),
                                errno_text(i32::from(st))
                            );
                        }
                    }
                }
                Err(e) => outln!("  {addr}: releasing quarantined slots failed: {e}"),
            }
        }
    }
    if !quarantined.is_empty() {
        let total = server.map_or(0, |i| members[i].answer.quarantined.total);
        if repair {
            outln!(
                "  quarantine: {released} of {total} slot(s) released ({:.1} MB), {} kept",
                released_bytes as f64 / 1e6,
                total as usize - released
            );
        } else {
            outln!(
                "  quarantine: {total} slot(s), {:.1} MB, {} proven free on every member (release with --repair)",
                q_bytes as f64 / 1e6,
                q_free.len()
            );
        }
    }
    if server.is_none() && !members.is_empty() {
        outln!("  no checked member is serving as trunk server: leaks and quarantine not checked");
    }
    outln!(
        "group {group}: {} checked, {unsupported} not supported, {unreachable} failed, {skipped} skipped, {headers} header(s) read, {mismatches} mismatch(es), {freed} leaked slot(s) freed, {released} quarantined slot(s) released",
        members.len()
    );
    totals.mismatches += mismatches;
    totals.unchecked += unreachable;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_text_names_the_trunk_file() {
        let s = TrunkLocation {
            store_path_index: 0,
            sub_path_high: 0x0A,
            sub_path_low: 0x1B,
            trunk_file_id: 3,
            offset: 512,
            size: 256,
        };
        assert_eq!(slot_text(&s), "M00/data/0A/1B/000003 offset 512 size 256");
        let inner = TrunkLocation {
            offset: 700,
            size: 0,
            ..s
        };
        assert!(starts_in(&inner, &s));
        assert!(!starts_in(
            &TrunkLocation {
                offset: 768,
                ..inner
            },
            &s
        ));
    }
}
