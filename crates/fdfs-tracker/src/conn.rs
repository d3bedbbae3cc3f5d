//! One client or storage connection: read a request, check its size before
//! allocating, dispatch it to the command family, write the answer (a
//! refusal is logged with its reason, escaped: it may quote peer bytes);
//! on close, a joined storage goes OFFLINE.

use std::sync::Arc;

use fdfs_proto::{Status, TrackerCmd, CMD_RESP, HEADER_LEN};
use fdfs_util::framing::{read_body, read_header, write_packet};
use fdfs_util::serve::{ConnSlot, WarnLimiter, BAD_REQUEST_WARN_INTERVAL_SECS};
use tokio::net::TcpStream;

use crate::handler::{expect_no_body, ConnCtx, HandlerResult, OpError};
use crate::select::FetchKind;
use crate::{admin, cluster_stat, guard, ids, leader, query, report, trunk, Tracker};

/// The commands whose answer waits for another server or for the disk;
/// None for every other command.
async fn dispatch_async(t: &Tracker, ctx: &ConnCtx, cmd: u8, body: &[u8]) -> Option<HandlerResult> {
    match TrackerCmd::try_from(cmd).ok()? {
        TrackerCmd::StorageReportTrunkFid => Some(trunk::report_trunk_fid(t, ctx, body).await),
        TrackerCmd::ServerSetTrunkServer => Some(trunk::set_trunk_server(t, body).await),
        _ => None,
    }
}

/// Routes one request to its command family.
fn dispatch(t: &Tracker, ctx: &mut ConnCtx, cmd: u8, body: &[u8]) -> HandlerResult {
    use TrackerCmd as C;
    let Ok(c) = TrackerCmd::try_from(cmd) else {
        return Err(OpError::invalid(format!("unknown command {cmd}")));
    };
    match c {
        C::ActiveTest => expect_no_body(body).map(|()| Vec::new()),
        // Handled by the connection loop; never reaches here.
        C::Quit => Ok(Vec::new()),
        C::StorageGetMyIp => report::get_my_ip(t, ctx, body),
        C::StorageParameterReq => admin::parameter_req(t, body),
        C::StorageChangelogReq => report::changelog_req(t, ctx, body),
        C::StorageJoin => {
            guard::require_cluster_proof(t, ctx, cmd)?;
            report::join(t, ctx, body)
        }
        C::StorageBeat => report::beat(t, ctx, body),
        C::StorageReportDiskUsage => report::disk_usage(t, ctx, body),
        C::StorageReplicaChg => report::replica_chg(ctx, body),
        C::StorageSyncSrcReq => report::sync_src_req(t, body),
        C::StorageSyncDestReq => report::sync_dest_req(t, ctx, body),
        C::StorageSyncNotify => report::sync_notify(t, ctx, body),
        C::StorageSyncDestQuery => report::sync_dest_query(t, ctx, body),
        C::StorageSyncReport => report::sync_report(t, ctx, body),
        C::StorageReportStatus => report::report_status(t, ctx, body),
        C::StorageChangeStatus => report::change_status(t, ctx, body),
        C::StorageGetStatus => report::get_status(t, body),
        C::StorageGetServerId => report::get_server_id(t, body),
        C::StorageFetchStorageIds => ids::fetch_storage_ids(t, body),
        C::StorageGetGroupName => ids::group_name(t, &ctx.peer_ip, body),
        C::StorageFetchTrunkFid => report::fetch_trunk_fid(t, ctx, body),
        C::StorageReportTrunkFree => trunk::report_trunk_free(t, ctx, body),
        // Answered by `dispatch_async` (they wait for the network or disk).
        C::StorageReportTrunkFid | C::ServerSetTrunkServer => Err(OpError::invalid(format!(
            "command {cmd} is not synchronous"
        ))),
        C::StorageReportIpChanged => {
            guard::require_cluster_proof(t, ctx, cmd)?;
            report::ip_changed(t, ctx, body)
        }
        C::ClusterChallenge => guard::cluster_challenge(t, ctx, body),
        C::ClusterProve => guard::cluster_prove(t, ctx, body),
        C::QueryStoreWithoutGroupOne => query::store(t, body, false, false),
        C::QueryStoreWithGroupOne => query::store(t, body, true, false),
        C::QueryStoreWithoutGroupAll => query::store(t, body, false, true),
        C::QueryStoreWithGroupAll => query::store(t, body, true, true),
        C::QueryFetchOne => query::fetch(t, body, FetchKind::One),
        C::QueryUpdate => query::fetch(t, body, FetchKind::Update),
        C::QueryFetchAll => query::fetch(t, body, FetchKind::All),
        C::ServerListOneGroup => admin::list_one_group(t, body),
        C::ServerListAllGroups => admin::list_all_groups(t, body),
        C::ServerListStorage => admin::list_storage(t, body),
        C::ServerDeleteStorage => admin::delete_storage(t, body),
        C::ServerDeleteGroup => admin::delete_group(t, body),
        C::ServerGetLeader => leader::get_leader(t, ctx, body),
        C::ServerTrackerClusterStat => cluster_stat::trackers(t, ctx, body),
        C::ServerStorageClusterStat => cluster_stat::storages(t, body),
        C::ServerStorageVolumnStat => cluster_stat::volumes(t, body),
        C::TrackerGetStatus => leader::get_status(t, body),
        C::ServerSyncStatus => admin::sync_status(t, body),
        C::TrackerInstanceId => leader::instance_id(t, body),
        C::TrackerJoinLeader => leader::join_leader(t, ctx, body),
        C::TrackerPingLeader => leader::ping_leader(t, ctx, body),
        C::TrackerNotifyNextLeader => leader::notify_next_leader(t, ctx, body),
        C::TrackerCommitNextLeader => leader::commit_next_leader(t, ctx, body),
        C::TrackerNotifyReselectLeader => leader::notify_reselect_leader(t, ctx, body),
        C::TrackerGetSysFilesStart => leader::sys_files_start(t, ctx, body),
        C::TrackerGetSysFilesEnd => leader::sys_files_end(t, ctx, body),
        C::TrackerGetOneSysFile => leader::get_one_sys_file(ctx, body),
    }
}

/// On a tracker that starts without groups, copies a peer's data files
/// before the first JOIN is handled (§4.2), which needs the JOIN's tracker
/// list first. Every other JOIN teaches its list only once accepted
/// (`report::join`). False: the copy failed and the JOIN must answer
/// EAGAIN.
async fn before_first_join(t: &Tracker, body: &[u8]) -> bool {
    let Ok(req) = report::decode_join(body) else {
        return true;
    };
    if t.lock().groups.is_empty() {
        t.learn_trackers(&req.trackers);
    }
    crate::relation::copy_sys_files_before_first_join(t).await
}

/// Rate limit of the warnings about bad requests, shared by all
/// connections.
static BAD_REQUEST_WARNINGS: WarnLimiter = WarnLimiter::new(BAD_REQUEST_WARN_INTERVAL_SECS);

fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
    )
}

/// Counts the connection out however serving ends.
struct Counted<'a>(&'a Tracker);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.count_connection(-1);
    }
}

/// Bytes read from a connection at a time: most requests fit whole.
const READ_BUFFER_BYTES: usize = 4096;

/// Serves one connection until the peer leaves, a protocol error occurs, or
/// `cancel` fires between requests.
pub async fn serve_connection(t: Arc<Tracker>, stream: TcpStream, slot: ConnSlot) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    // Reads ask for more than a request: a read that comes back short
    // tells tokio the socket is drained, so the next request is awaited
    // without a recv that fails with EAGAIN first (one system call less per
    // request). Writes pass through.
    let mut stream = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    t.count_connection(1);
    t.counters
        .accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _counted = Counted(&t);
    let mut ctx = ConnCtx::new(peer, local);
    ctx.conn_id = t.next_conn_gen();
    let timeout = t.network_timeout();
    let max_pkg = t.max_pkg_size_bytes();
    loop {
        // Idle wait for the next request; shutdown interrupts only here.
        let header = tokio::select! {
            _ = slot.stopped().cancelled() => break,
            r = tokio::time::timeout(timeout, read_header(&mut stream)) => r,
        };
        let header = match header {
            Err(_) => {
                tracing::debug!(%peer, "idle timeout");
                break;
            }
            Ok(Err(e)) => {
                if !is_reset(&e) {
                    tracing::debug!(%peer, error = %e, "read failed");
                }
                break;
            }
            Ok(Ok(h)) => h,
        };
        slot.request_started();
        let Some(len) = header.body_len() else {
            if let Some(held_back) = BAD_REQUEST_WARNINGS.allow_now() {
                tracing::warn!(%peer, cmd = header.cmd, held_back, "negative pkg_len, closing");
            }
            break;
        };
        if (HEADER_LEN as u64).saturating_add(len) > max_pkg {
            if let Some(held_back) = BAD_REQUEST_WARNINGS.allow_now() {
                tracing::warn!(%peer, cmd = header.cmd, len, max_pkg, held_back, "request too large, closing");
            }
            break;
        }
        let body = match tokio::time::timeout(timeout, read_body(&mut stream, len as usize)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "body read failed");
                break;
            }
            Err(_) => {
                tracing::debug!(%peer, "body read timed out");
                break;
            }
        };
        if header.cmd == fdfs_proto::CMD_QUIT {
            break;
        }
        // An unproven JOIN is refused in dispatch, before it can teach
        // anything.
        if header.cmd == u8::from(TrackerCmd::StorageJoin)
            && guard::require_cluster_proof(&t, &ctx, header.cmd).is_ok()
            && !before_first_join(&t, &body).await
        {
            if write_packet(&mut stream, CMD_RESP, Status::EAGAIN.0, &[])
                .await
                .is_err()
            {
                break;
            }
            slot.request_finished();
            continue;
        }
        let started = std::time::Instant::now();
        let handled = match dispatch_async(&t, &ctx, header.cmd, &body).await {
            Some(answer) => answer,
            None => dispatch(&t, &mut ctx, header.cmd, &body),
        };
        t.counters
            .commands
            .observe(header.cmd, handled.is_ok(), started.elapsed());
        let (status, answer) = match handled {
            Ok(b) => (0u8, b),
            Err(e) => {
                if e.status == Status::EINVAL {
                    if let Some(held_back) = BAD_REQUEST_WARNINGS.allow_now() {
                        tracing::warn!(%peer, cmd = header.cmd, len, reason = ?e.reason, held_back, "request rejected: status 22");
                    }
                } else {
                    tracing::debug!(%peer, cmd = header.cmd, status = e.status.0, reason = ?e.reason, "request rejected");
                }
                (e.status.0, Vec::new())
            }
        };
        match tokio::time::timeout(
            timeout,
            write_packet(&mut stream, CMD_RESP, status, &answer),
        )
        .await
        {
            Ok(Ok(())) => {
                if ctx.joined.is_some() || ctx.leader_follower.is_some() {
                    slot.keep();
                }
                slot.request_finished();
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "write failed");
                break;
            }
            Err(_) => {
                tracing::debug!(%peer, "write timed out");
                break;
            }
        }
    }
    if ctx.sys_files.take().is_some() {
        t.unlock_sys_files(ctx.conn_id);
    }
    if let Some(j) = ctx.joined.take() {
        let changed = t.lock().disconnected(&j.group, &j.id, j.conn_gen);
        if changed {
            tracing::info!(group = %j.group, id = %j.id, "storage connection closed: OFFLINE");
            t.mark_dirty();
        }
    }
}
