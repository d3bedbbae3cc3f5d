//! Tracker reporting (§4.1): one long-lived task per configured tracker
//! that learns our address and the cluster parameters, JOINs, settles the
//! initial-sync handshake, then sends BEATs and disk usage reports until
//! shutdown; on any error it reconnects after `heart_beat_interval`.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::{ClientError, Conn};
use fdfs_proto::tracker_msg::{
    encode_disk_usage, encode_sync_report, ChangeNotice, GetMyIpReq, JoinReq, JoinResp, PathUsage,
    SyncSource, SyncTimestamp,
};
use fdfs_proto::{TrackerCmd, FDFS_VERSION};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::{lock, Storage, TrackerParams};

/// First reconnect delay; later ones wait `heart_beat_interval`.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);

pub fn spawn_all(storage: &Arc<Storage>, tasks: &TaskTracker, shutdown: CancellationToken) {
    for tracker in &storage.conf.tracker_servers {
        let addr = tracker.to_string();
        tasks.spawn(report_loop(storage.clone(), addr, shutdown.clone()));
    }
    tasks.spawn(watch_disks_loop(storage.clone(), shutdown.clone()));
    tasks.spawn(persist_loop(storage.clone(), shutdown));
}

/// Writes storage_stat.dat and the binlog to disk every
/// `sync_stat_file_interval` seconds.
async fn persist_loop(storage: Arc<Storage>, shutdown: CancellationToken) {
    let every = Duration::from_secs(storage.conf.sync_stat_file_interval_secs.max(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let s = storage.clone();
        let _ = tokio::task::spawn_blocking(move || s.persist_state()).await;
    }
}

async fn report_loop(storage: Arc<Storage>, addr: String, shutdown: CancellationToken) {
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session(&storage, &addr, &shutdown) => r,
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(tracker = %addr, error = %e, "tracker connection failed, will retry")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = Duration::from_secs(storage.conf.heart_beat_interval_secs.max(1));
    }
}

/// Parses PARAMETER_REQ text into what the storage uses.
pub fn parse_params(text: &str, fallback: &TrackerParams) -> TrackerParams {
    let mut p = fallback.clone();
    for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
        match k.trim() {
            "reserved_storage_space" => {
                if let Ok(r) = fdfs_config::values::parse_reserved_space(v.trim()) {
                    p.reserved_storage_space = r;
                }
            }
            "store_path" => p.store_path_mode = if v.trim() == "2" { 2 } else { 0 },
            "use_storage_id" => p.use_storage_id = v.trim() == "1",
            "id_type_in_filename" => p.id_in_filename = v.trim().eq_ignore_ascii_case("id"),
            "trust_storage_server_id" => p.trust_storage_server_id = v.trim() == "1",
            "response_ip_addr_size" => {
                p.response_ip_addr_size = match v.trim() {
                    "46" => fdfs_proto::IP_ADDRESS_SIZE,
                    _ => fdfs_proto::IPV4_ADDRESS_SIZE,
                }
            }
            key => {
                p.trunk.apply(key, v);
            }
        }
    }
    // The key is only meaningful with storage ids (§2.13).
    p.id_in_filename &= p.use_storage_id;
    p
}

async fn session(
    storage: &Arc<Storage>,
    addr: &str,
    shutdown: &CancellationToken,
) -> Result<(), ClientError> {
    let conf = &storage.conf;
    let connect_timeout = Duration::from_secs(conf.connect_timeout_secs.max(1));
    // A JOIN may be answered late (the original sleeps while growing its
    // arrays), so never use a short network timeout here.
    let network_timeout = Duration::from_secs(conf.network_timeout_secs.max(30));
    let mut conn = Conn::connect_from(
        addr,
        storage.client_bind_ip(),
        connect_timeout,
        network_timeout,
    )
    .await?;
    if let Some(secret) = &conf.cluster_secret {
        conn.prove_cluster_secret(secret, fdfs_util::cluster_secret::Purpose::TrackerJoin)
            .await?;
    }

    let mut body = BytesMut::new();
    GetMyIpReq {
        group: storage.group.clone(),
        port: i32::from(storage.port),
    }
    .encode(&mut body);
    let my_ip = conn.call(TrackerCmd::StorageGetMyIp.into(), &body).await?;
    // In id mode a storage with two addresses gets both, comma separated;
    // the first is the one it is listed under.
    let my_ip = String::from_utf8_lossy(&my_ip);
    if let Ok(ip) = my_ip
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .parse::<Ipv4Addr>()
    {
        storage.learn_self_ip(ip);
    }

    let params = conn
        .call(TrackerCmd::StorageParameterReq.into(), &[])
        .await?;
    let fallback = storage.params();
    let params = parse_params(&String::from_utf8_lossy(&params), &fallback);
    let use_storage_id = params.use_storage_id;
    storage.set_params(params);
    if use_storage_id {
        learn_storage_id(storage, &mut conn).await?;
    }

    let tracker_ip = conn
        .stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    report_ip_change(storage, &mut conn).await?;

    // The initial-sync handshake below runs one reporter at a time: the
    // first does SYNC_DEST_REQ, the others then notify the source it got,
    // so every tracker records the same sync source.
    let handshake = storage.init_sync_lock.lock().await;
    let init = lock(&storage.init_flag).clone();
    let join = JoinReq {
        group: storage.group.clone(),
        storage_port: storage.port,
        store_path_count: storage.paths.len() as u32,
        subdir_count_per_path: conf.subdir_count_per_path,
        upload_priority: i64::from(conf.upload_priority),
        join_time: init.storage_join_time,
        up_time: storage.up_time,
        version: FDFS_VERSION.to_string(),
        init_flag: !init.sync_old_done,
        status: join_status(storage),
        // In id mode the field carries our id. Our extension: in IP mode
        // the original leaves it empty, so a storage with a configured
        // (advertised) address sends it here and our tracker lists the
        // storage under that address.
        storage_id: if use_storage_id {
            storage.self_id()
        } else if storage.self_ip_fixed {
            storage.self_ip().to_string()
        } else {
            String::new()
        },
        tracker_ip,
        trackers: conf.tracker_servers.iter().map(|t| t.to_string()).collect(),
    };
    body.clear();
    join.encode(&mut body);
    let resp = JoinResp::decode(&conn.call(TrackerCmd::StorageJoin.into(), &body).await?)?;
    tracing::info!(tracker = %addr, status = resp.status, "joined tracker");
    lock(&storage.joined_trackers).insert(addr.to_string());

    if !init.sync_old_done {
        let answer = conn
            .call(TrackerCmd::StorageSyncDestReq.into(), &[])
            .await?;
        let source = if answer.is_empty() {
            SyncSource::default()
        } else {
            SyncSource::decode(&answer)?
        };
        {
            let mut flag = lock(&storage.init_flag);
            flag.sync_old_done = true;
            flag.sync_src_server = source.src_id.clone();
            flag.sync_until_timestamp = source.until_timestamp;
        }
        let s = storage.clone();
        let _ = tokio::task::spawn_blocking(move || s.persist_state()).await;
        // The other trackers get JOINs with init_flag 0 from now on, and one
        // that never saw us refuses such a JOIN unless it carries a real
        // status. The tracker's answer tells us ours: WAIT_SYNC with a
        // source, ONLINE without. The leader's lists refine it later.
        let assigned = if source.src_id.is_empty() {
            fdfs_proto::stat::storage_status::ONLINE
        } else {
            fdfs_proto::stat::storage_status::WAIT_SYNC
        };
        lock(&storage.peers).self_status.get_or_insert(assigned);
    }
    let src = {
        let flag = lock(&storage.init_flag);
        SyncSource {
            src_id: flag.sync_src_server.clone(),
            until_timestamp: flag.sync_until_timestamp,
        }
    };
    body.clear();
    src.encode(&mut body);
    conn.call(TrackerCmd::StorageSyncNotify.into(), &body)
        .await?;
    drop(handshake);

    let beat_every = Duration::from_secs(conf.heart_beat_interval_secs.max(1));
    let disk_every = Duration::from_secs(conf.stat_report_interval_secs.max(1));
    let mut sent_stats_version = 0u64;
    let mut sent_received_version = 0u64;
    let mut sent_trunk_free_mb: Option<i64> = None;
    let mut disk_requests = storage.disk_reports.subscribe();
    disk_requests.borrow_and_update();
    let mut disk_wanted = false;
    let mut last_disk_report: Option<Instant> = None;
    let mut next_beat = Instant::now();
    loop {
        // The disk report goes first, before the first beat too: a tracker
        // must never see a new storage with 0 MB free and refuse uploads.
        let since_report = last_disk_report.map(|t| t.elapsed());
        let disk_due = since_report.is_none_or(|d| {
            d >= disk_every || (disk_wanted && d >= crate::disk::PROMPT_REPORT_MIN_GAP)
        });
        if disk_due {
            send_disk_report(storage, &mut conn).await?;
            last_disk_report = Some(Instant::now());
            disk_wanted = false;
        }
        if Instant::now() >= next_beat {
            beat(
                storage,
                &mut conn,
                &mut sent_stats_version,
                &mut sent_received_version,
            )
            .await?;
            report_trunk_free(storage, &mut conn, &mut sent_trunk_free_mb).await?;
            next_beat = Instant::now() + beat_every;
        }
        let reported = last_disk_report.unwrap_or_else(Instant::now);
        let mut wake = next_beat.min(reported + disk_every);
        if disk_wanted {
            wake = wake.min(reported + crate::disk::PROMPT_REPORT_MIN_GAP);
        }
        let serves_trunk_ids = is_leader_connection(storage, &conn);
        tokio::select! {
            _ = shutdown.cancelled() => {
                conn.quit().await;
                return Ok(());
            }
            _ = storage.trunk.id_wanted(), if serves_trunk_ids => {
                reserve_trunk_file_ids(storage, &mut conn).await?;
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
            changed = disk_requests.changed(), if !disk_wanted => {
                match changed {
                    Ok(()) => disk_wanted = true,
                    // Only a storage being dropped closes the channel.
                    Err(_) => tokio::time::sleep(beat_every).await,
                }
            }
        }
    }
}

/// One BEAT (with the counters when they changed), the changelog, and a
/// SYNC_REPORT when replication received something new.
async fn beat(
    storage: &Arc<Storage>,
    conn: &mut Conn,
    sent_stats_version: &mut u64,
    sent_received_version: &mut u64,
) -> Result<(), ClientError> {
    let mut body = BytesMut::new();
    let version = storage.stats_version.load(Ordering::Relaxed);
    if version != *sent_stats_version {
        let mut stats = storage.stats_snapshot();
        stats.last_heart_beat_time = crate::state::now_secs();
        stats.encode(&mut body);
        *sent_stats_version = version;
    }
    let notice = conn.call(TrackerCmd::StorageBeat.into(), &body).await?;
    handle_notice(storage, &notice);
    // Deletions of peers reach us only through the changelog (§4.6).
    let changes = conn
        .call(TrackerCmd::StorageChangelogReq.into(), &[])
        .await?;
    if !changes.is_empty() {
        crate::sync::apply_changelog(storage, &String::from_utf8_lossy(&changes));
    }
    let received = storage.received_version.load(Ordering::Relaxed);
    if received != *sent_received_version {
        let notice = conn
            .call(
                TrackerCmd::StorageSyncReport.into(),
                &sync_report_body(storage),
            )
            .await?;
        handle_notice(storage, &notice);
        *sent_received_version = received;
    }
    Ok(())
}

/// Whether this reporter's tracker is the leader (as the last leader
/// brief said; any tracker while none is known): trunk file ids are
/// reserved there.
fn is_leader_connection(storage: &Storage, conn: &Conn) -> bool {
    let Some(leader) = storage.trunk.leader() else {
        return true;
    };
    conn.stream
        .peer_addr()
        .is_ok_and(|a| a.ip().to_string() == leader.ip_addr && i32::from(a.port()) == leader.port)
}

/// Serves the waiting requests for new trunk file ids (72 then 73) on this
/// joined connection to the leader. A refusal goes to the requester; a
/// broken connection also ends the session.
async fn reserve_trunk_file_ids(storage: &Storage, conn: &mut Conn) -> Result<(), ClientError> {
    for req in storage.trunk.take_id_requests() {
        match crate::trunk::role::exchange_trunk_fid(conn, req.seen_max).await {
            Ok(id) => {
                let _ = req.reply.send(Ok(id));
            }
            Err(e) => {
                let status = crate::trunk::role::client_status(&e);
                let _ = req.reply.send(Err(crate::error::OpError::new(
                    status,
                    format!("trunk file id from the leader tracker: {e}"),
                )));
                if !matches!(e, ClientError::Status(_)) || !conn.is_in_step() {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// REPORT_TRUNK_FREE (74) from the trunk server when its free trunk space
/// changed since this connection last said it. A value is sent once even
/// when the tracker refuses it, so a refusal cannot repeat every beat.
async fn report_trunk_free(
    storage: &Arc<Storage>,
    conn: &mut Conn,
    sent: &mut Option<i64>,
) -> Result<(), ClientError> {
    // The space's lock may be held by a snapshot being written.
    let s = storage.clone();
    let free = tokio::task::spawn_blocking(move || crate::trunk::role::free_mb(&s))
        .await
        .unwrap_or(None);
    let Some(mb) = free else {
        *sent = None;
        return Ok(());
    };
    if *sent == Some(mb) {
        return Ok(());
    }
    *sent = Some(mb);
    let body = fdfs_proto::trunk_msg::encode_i64(mb);
    conn.call(TrackerCmd::StorageReportTrunkFree.into(), &body)
        .await?;
    Ok(())
}

/// REPORT_DISK_USAGE with a fresh reading of every store path.
async fn send_disk_report(storage: &Arc<Storage>, conn: &mut Conn) -> Result<(), ClientError> {
    // statvfs can wait on a slow or remote file system.
    let s = storage.clone();
    let spaces = tokio::task::spawn_blocking(move || s.refresh_spaces())
        .await
        .unwrap_or_default();
    let usage: Vec<PathUsage> = spaces
        .iter()
        .map(|s| PathUsage {
            total_mb: s.total_mb as i64,
            free_mb: s.free_mb as i64,
        })
        .collect();
    let mut body = BytesMut::new();
    encode_disk_usage(&mut body, &usage);
    let notice = conn
        .call(TrackerCmd::StorageReportDiskUsage.into(), &body)
        .await?;
    storage.disk_reports.reported(&spaces);
    handle_notice(storage, &notice);
    Ok(())
}

/// Re-reads the store paths every [`crate::disk::WATCH_INTERVAL`] and asks
/// for a disk report when one filled up or got room back, so uploads
/// resume within seconds of space being freed, without a restart.
async fn watch_disks_loop(storage: Arc<Storage>, shutdown: CancellationToken) {
    let rooms_of = |s: &Storage, spaces: &[crate::disk::SpaceMb]| {
        crate::disk::room_flags(spaces, &s.params().reserved_storage_space, s.paths.len())
    };
    let mut rooms_seen: Vec<bool> = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(crate::disk::WATCH_INTERVAL) => {}
        }
        let s = storage.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || s.refresh_spaces()).await else {
            continue;
        };
        let reported = storage.disk_reports.last_reported();
        if reported.is_empty() {
            continue; // no tracker has had a first report yet
        }
        let rooms_now = rooms_of(&storage, &now);
        if !rooms_seen.is_empty() && rooms_now != rooms_seen {
            tracing::info!(
                has_room = ?rooms_now,
                "a store path crossed its reserve; reporting to trackers now"
            );
        }
        let rooms_reported = rooms_of(&storage, &reported);
        if crate::disk::report_due(&reported, &now, &rooms_reported, &rooms_now) {
            storage.disk_reports.request();
        }
        rooms_seen = rooms_now;
    }
}

/// Id mode (§4.1 steps 4-5): fetches the tracker's id table and finds our
/// id: a configured `server_id` the tracker trusts, else the entry of our
/// group + address + port, else the tracker's GET_SERVER_ID answer. A
/// storage the tracker cannot name fails here with the tracker's status
/// (ENOENT) and retries later, as its JOIN would be refused.
async fn learn_storage_id(storage: &Storage, conn: &mut Conn) -> Result<(), ClientError> {
    let ids = fdfs_client::tracker::fetch_storage_ids(conn).await?;
    let ip = storage.self_ip().to_string();
    let configured = storage.conf.server_id.trim();
    let id = if !configured.is_empty() && storage.params().trust_storage_server_id {
        ids.find_by_id(configured).map(|e| e.id.clone())
    } else {
        ids.find_by_addr(&storage.group, &ip, storage.port)
            .map(|e| e.id.clone())
    };
    storage.set_storage_ids(ids);
    let id = match id {
        Some(id) => id,
        None => {
            let mut body = BytesMut::new();
            fdfs_proto::tracker_msg::put_group(&mut body, &storage.group);
            body.extend_from_slice(format!("{ip}:{}", storage.port).as_bytes());
            let answer = conn
                .call(TrackerCmd::StorageGetServerId.into(), &body)
                .await?;
            String::from_utf8_lossy(&answer).trim().to_string()
        }
    };
    if id.is_empty() {
        return Err(ClientError::Status(fdfs_proto::Status::ENOENT));
    }
    storage.set_server_id(id);
    Ok(())
}

/// Status byte of a JOIN (§4.2): our own status from the last group list
/// a tracker sent; before any list, −1 while some configured tracker has
/// not answered a JOIN from this process (several trackers), else INIT.
/// A tracker that lost its data files (restarted empty) thus re-creates
/// the record of a known storage instead of refusing it with EFAULT.
fn join_status(storage: &Storage) -> i8 {
    if let Some(s) = lock(&storage.peers).self_status {
        return i8::try_from(s).unwrap_or(-1);
    }
    let trackers = &storage.conf.tracker_servers;
    let joined = lock(&storage.joined_trackers);
    if trackers.len() > 1 && trackers.iter().any(|t| !joined.contains(&t.to_string())) {
        -1
    } else {
        0
    }
}

/// REPORT_IP_CHANGED (78) when our address differs from the last run's.
/// Only "the old record is still online" stops the session (to retry after
/// the tracker noticed); every other answer means the tracker is settled.
async fn report_ip_change(storage: &Storage, conn: &mut Conn) -> Result<(), ClientError> {
    // Ids do not change with the address (the tracker refuses 78 then).
    if storage.params().use_storage_id {
        return Ok(());
    }
    let Some(old) = &storage.previous_ip else {
        return Ok(());
    };
    let new = storage.self_ip().to_string();
    if *old == new {
        return Ok(());
    }
    let mut body = BytesMut::new();
    fdfs_proto::tracker_msg::put_group(&mut body, &storage.group);
    fdfs_proto::wire::put_fixed(&mut body, old.as_bytes(), fdfs_proto::IP_ADDRESS_SIZE);
    fdfs_proto::wire::put_fixed(&mut body, new.as_bytes(), fdfs_proto::IP_ADDRESS_SIZE);
    match conn
        .call(TrackerCmd::StorageReportIpChanged.into(), &body)
        .await
    {
        Ok(_) => {
            tracing::info!(%old, %new, "reported our address change to the tracker");
            Ok(())
        }
        Err(ClientError::Status(s)) if s == fdfs_proto::Status::EBUSY => {
            Err(ClientError::Status(s))
        }
        Err(ClientError::Status(s)) => {
            tracing::debug!(%old, %new, status = s.0, "address change not applied by the tracker");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Peers come only from the leader's group lists (§4.3): adopt them and
/// start their sync workers. The leader and trunk server briefs go to the
/// trunk role.
fn handle_notice(storage: &Arc<Storage>, body: &[u8]) {
    match ChangeNotice::decode(body) {
        Ok(n) => {
            if let Some(leader) = n.leader {
                storage.trunk.set_leader(leader);
            }
            if let Some(trunk_server) = n.trunk_server {
                storage.trunk.announce(storage, trunk_server);
            }
            if let Some(members) = n.group_members {
                tracing::debug!(members = members.len(), "group membership from tracker");
                crate::sync::update_members(storage, members);
            }
        }
        Err(e) => tracing::debug!(error = %e, "unreadable tracker notice"),
    }
}

/// SYNC_REPORT (89) body: every known member (ourselves included, with 0)
/// and the newest source timestamp received from it, in id order.
fn sync_report_body(storage: &Storage) -> Vec<u8> {
    let received = lock(&storage.received_from).clone();
    let mut ids: std::collections::BTreeSet<String> =
        lock(&storage.peers).members.keys().cloned().collect();
    ids.extend(received.keys().cloned());
    ids.insert(storage.self_id());
    let entries: Vec<SyncTimestamp> = ids
        .into_iter()
        .map(|id| SyncTimestamp {
            timestamp: received.get(&id).copied().unwrap_or(0),
            storage_id: id,
        })
        .collect();
    let mut body = BytesMut::new();
    encode_sync_report(&mut body, &entries);
    body.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_config::ReservedSpace;

    /// What a storage holds before the tracker's answer.
    fn fallback_params() -> TrackerParams {
        TrackerParams {
            reserved_storage_space: ReservedSpace::Megabytes(7),
            store_path_mode: 0,
            response_ip_addr_size: fdfs_proto::IPV4_ADDRESS_SIZE,
            use_storage_id: false,
            id_in_filename: false,
            trust_storage_server_id: false,
            trunk: fdfs_config::TrunkParams::default(),
        }
    }

    /// The tracker renders the reserve as `10.00%` or `1024MB`; the
    /// storage checks its paths against what it parses.
    #[test]
    fn the_reserve_from_the_tracker_parameters() {
        let fallback = fallback_params();
        let p = parse_params("store_path=2\nreserved_storage_space=10.00%\n", &fallback);
        assert_eq!(p.reserved_storage_space, ReservedSpace::Ratio(0.10));
        assert_eq!(p.store_path_mode, 2);
        let p = parse_params("reserved_storage_space=1024MB\n", &fallback);
        assert_eq!(p.reserved_storage_space, ReservedSpace::Megabytes(1024));
        let p = parse_params("reserved_storage_space=1G\n", &fallback);
        assert_eq!(p.reserved_storage_space, ReservedSpace::Megabytes(1024));
        let p = parse_params("reserved_storage_space=10%\n", &fallback);
        assert_eq!(p.reserved_storage_space, ReservedSpace::Ratio(0.10));
        // An unreadable value keeps what the storage had.
        let p = parse_params("reserved_storage_space=150%\n", &fallback);
        assert_eq!(p.reserved_storage_space, fallback.reserved_storage_space);
    }

    /// The trunk lines of the original's answer (§2.13) land in the typed
    /// trunk settings.
    #[test]
    fn trunk_settings_from_the_tracker_parameters() {
        let fallback = fallback_params();
        let text = "use_storage_id=0\nreserved_storage_space=20.00%\nuse_trunk_file=1\n\
                    slot_min_size=512\nslot_max_size=1048576\ntrunk_alloc_alignment_size=256\n\
                    trunk_file_size=67108864\ntrunk_create_file_advance=1\n\
                    trunk_create_file_time_base=02:30\ntrunk_create_file_interval=3600\n\
                    trunk_create_file_space_threshold=21474836480\n\
                    trunk_init_check_occupying=1\ntrunk_init_reload_from_binlog=1\n\
                    trunk_free_space_merge=1\ndelete_unused_trunk_files=1\n\
                    trunk_compress_binlog_min_interval=60\ntrunk_compress_binlog_interval=86400\n\
                    trunk_compress_binlog_time_base=03:15\ntrunk_binlog_max_backups=7\n\
                    store_slave_file_use_link=1\n";
        let t = parse_params(text, &fallback).trunk;
        let want = fdfs_config::TrunkParams {
            use_trunk_file: true,
            slot_min_size_bytes: 512,
            slot_max_size_bytes: 1_048_576,
            trunk_alloc_alignment_size_bytes: 256,
            trunk_file_size_bytes: 67_108_864,
            trunk_create_file_advance: true,
            trunk_create_file_time_base: (2, 30),
            trunk_create_file_interval_secs: 3600,
            trunk_create_file_space_threshold_bytes: 21_474_836_480,
            trunk_init_check_occupying: true,
            trunk_init_reload_from_binlog: true,
            trunk_free_space_merge: true,
            delete_unused_trunk_files: true,
            trunk_compress_binlog_min_interval_secs: 60,
            trunk_compress_binlog_interval_secs: 86_400,
            trunk_compress_binlog_time_base: (3, 15),
            trunk_binlog_max_backups: 7,
            store_slave_file_use_link: true,
        };
        assert_eq!(t, want);
    }
}
