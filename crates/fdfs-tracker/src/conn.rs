//! One client or storage connection: read a request, check its size before
//! allocating, dispatch it to the command family, write the answer; on
//! close, a joined storage goes OFFLINE.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use fdfs_proto::{ProtoError, Status, TrackerCmd, CMD_RESP, HEADER_LEN};
use fdfs_util::framing::{read_body, read_header, write_packet};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::{admin, ids, leader, query, report, Tracker};

/// The storage a connection has JOINed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub group: String,
    pub id: String,
    /// Connection generation recorded in the storage record at JOIN.
    pub conn_gen: u64,
}

/// Per-connection state the handlers see.
#[derive(Debug, Clone)]
pub struct ConnCtx {
    /// The peer's IP as text (IPv4-mapped addresses unmapped).
    pub peer_ip: String,
    /// The same address, parsed.
    pub peer_addr: IpAddr,
    /// Our own address on this connection: the leader address we announce.
    pub local_ip: String,
    pub local_port: u16,
    pub joined: Option<Joined>,
    /// Group change counter last reported on this connection; `None` until
    /// the first BEAT/84/89 answer, which also carries the leader brief.
    pub seen_change: Option<u64>,
    /// Leader generation last announced on this connection.
    pub seen_leader_gen: Option<u64>,
    /// Unique per connection (the data-file copy lock names its holder).
    pub conn_id: u64,
    /// The follower tracker that sent JOIN_LEADER on this connection.
    pub leader_follower: Option<SocketAddr>,
    /// True after the first PING_LEADER answer of this connection.
    pub pinged: bool,
    /// Data files snapshotted by GET_SYS_FILES_START (61) for 63.
    pub sys_files: Option<[Vec<u8>; 4]>,
}

fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

impl ConnCtx {
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        ConnCtx {
            peer_ip: ip_text(peer.ip()),
            peer_addr: peer.ip().to_canonical(),
            local_ip: ip_text(local.ip()),
            local_port: local.port(),
            joined: None,
            seen_change: None,
            seen_leader_gen: None,
            conn_id: 0,
            leader_follower: None,
            pinged: false,
            sys_files: None,
        }
    }

    /// The joined storage, or EACCES for storage commands sent before JOIN.
    pub fn joined(&self) -> Result<Joined, Status> {
        self.joined.clone().ok_or(Status::EACCES)
    }

    /// `ip:port` of this tracker as the peer reached it.
    pub fn local_addr_text(&self) -> String {
        fdfs_util::net::host_port(&self.local_ip, self.local_port)
    }
}

/// Result of a handler: an answer body, or an errno with an empty body.
pub type HandlerResult = Result<Vec<u8>, Status>;

/// Malformed bodies answer EINVAL. A decoder's message may quote the
/// peer's bytes: logged escaped.
pub(crate) fn inval(e: ProtoError) -> Status {
    tracing::debug!(error = %e.to_string().escape_debug(), "malformed request body");
    Status::EINVAL
}

/// Routes one request to its command family.
pub fn dispatch(t: &Tracker, ctx: &mut ConnCtx, cmd: u8, body: &[u8]) -> HandlerResult {
    use TrackerCmd as C;
    let Ok(c) = TrackerCmd::try_from(cmd) else {
        return Err(Status::EINVAL);
    };
    match c {
        C::ActiveTest => {
            if body.is_empty() {
                Ok(Vec::new())
            } else {
                Err(Status::EINVAL)
            }
        }
        // Handled by the connection loop; never reaches here.
        C::Quit => Ok(Vec::new()),
        C::StorageGetMyIp => report::get_my_ip(t, ctx, body),
        C::StorageParameterReq => admin::parameter_req(t, body),
        C::StorageChangelogReq => report::changelog_req(t, ctx, body),
        C::StorageJoin => report::join(t, ctx, body),
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
        C::StorageReportTrunkFid | C::StorageReportTrunkFree => {
            // Only the group's trunk server may report; there is none.
            ctx.joined()?;
            Err(Status::EINVAL)
        }
        C::StorageReportIpChanged => report::ip_changed(t, ctx, body),
        C::QueryStoreWithoutGroupOne => query::store(t, body, false, false),
        C::QueryStoreWithGroupOne => query::store(t, body, true, false),
        C::QueryStoreWithoutGroupAll => query::store(t, body, false, true),
        C::QueryStoreWithGroupAll => query::store(t, body, true, true),
        C::QueryFetchOne => query::fetch(t, body, crate::select::FetchKind::One),
        C::QueryUpdate => query::fetch(t, body, crate::select::FetchKind::Update),
        C::QueryFetchAll => query::fetch(t, body, crate::select::FetchKind::All),
        C::ServerListOneGroup => admin::list_one_group(t, body),
        C::ServerListAllGroups => admin::list_all_groups(t, body),
        C::ServerListStorage => admin::list_storage(t, body),
        C::ServerDeleteStorage => admin::delete_storage(t, body),
        C::ServerDeleteGroup => admin::delete_group(t, body),
        C::ServerSetTrunkServer => Err(Status::EOPNOTSUPP),
        C::ServerGetLeader => leader::get_leader(t, ctx, body),
        C::ServerTrackerClusterStat | C::ServerStorageClusterStat | C::ServerStorageVolumnStat => {
            Err(Status::EOPNOTSUPP)
        }
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

fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
    )
}

/// Serves one connection until the peer leaves, a protocol error occurs, or
/// `cancel` fires between requests.
pub async fn serve_conn(t: Arc<Tracker>, mut stream: TcpStream, cancel: CancellationToken) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut ctx = ConnCtx::new(peer, local);
    ctx.conn_id = t.next_conn_gen();
    let timeout = t.network_timeout();
    let max_pkg = t.max_pkg_size_bytes();
    loop {
        // Idle wait for the next request; shutdown interrupts only here.
        let header = tokio::select! {
            _ = cancel.cancelled() => break,
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
        let Some(len) = header.body_len() else {
            tracing::warn!(%peer, cmd = header.cmd, "negative pkg_len, closing");
            break;
        };
        if (HEADER_LEN as u64).saturating_add(len) > max_pkg {
            tracing::warn!(%peer, cmd = header.cmd, len, max_pkg, "request too large, closing");
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
        if header.cmd == u8::from(TrackerCmd::StorageJoin) && !before_first_join(&t, &body).await {
            if write_packet(&mut stream, CMD_RESP, Status::EAGAIN.0, &[])
                .await
                .is_err()
            {
                break;
            }
            continue;
        }
        let (status, answer) = match dispatch(&t, &mut ctx, header.cmd, &body) {
            Ok(b) => (0u8, b),
            Err(s) => {
                if s == Status::EINVAL {
                    tracing::warn!(%peer, cmd = header.cmd, len, "request rejected: status 22");
                } else {
                    tracing::debug!(%peer, cmd = header.cmd, status = s.0, "request rejected");
                }
                (s.0, Vec::new())
            }
        };
        match tokio::time::timeout(
            timeout,
            write_packet(&mut stream, CMD_RESP, status, &answer),
        )
        .await
        {
            Ok(Ok(())) => {}
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
