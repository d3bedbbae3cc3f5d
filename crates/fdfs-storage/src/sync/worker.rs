//! What one sync worker does: find its starting point (the mark file, or
//! SYNC_SRC_REQ for a new peer), then, connection after connection, read
//! our binlog from the mark and push each record the peer needs, saving
//! the mark as it goes; around a full sync it reports the peer SYNCING,
//! then OFFLINE, to the trackers.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::{ClientError, Conn};
use fdfs_proto::stat::{storage_status, StorageBrief};
use fdfs_proto::tracker_msg::{put_group, SyncSource};
use fdfs_proto::wire::put_fixed;
use fdfs_proto::{StorageCmd, TrackerCmd};
use tokio_util::sync::CancellationToken;

use super::cursor::{read_batch, Cursor};
use super::mark::{mark_path, save_mark, Mark};
use super::sender::{refused_for_good, send_record};
use super::{peer, publish_acked};
use crate::binlog::Record;
use crate::state::Storage;

/// Pause after a failed connection or record before trying again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Logs and counts a binlog record that cannot be sent, so that the worker
/// moves on: one bad record must never stall a peer's replication. The
/// line is escaped, so it cannot forge log lines either.
fn skip_record(storage: &Storage, peer_id: &str, line: &str, why: &str) {
    let skipped_total = storage.count_skipped_sync_record();
    tracing::warn!(
        peer = %peer_id,
        line = %fdfs_proto::fileid::escape_for_log(line.strip_suffix('\n').unwrap_or(line)),
        why,
        skipped_total,
        "skipping binlog record"
    );
}

/// One tracker call, to the first configured tracker that answers.
async fn tracker_call(
    storage: &Storage,
    cmd: TrackerCmd,
    body: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let mut last = ClientError::Invalid("no tracker configured".into());
    for t in &storage.conf.tracker_servers {
        match Conn::connect_from(
            &t.to_string(),
            storage.client_bind_ip(),
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
        .await
        {
            Ok(mut c) => {
                let r = c.call(cmd.into(), body).await;
                c.quit().await;
                match r {
                    Ok(b) => return Ok(b),
                    Err(ClientError::Status(s)) => return Err(ClientError::Status(s)),
                    Err(e) => last = e,
                }
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// SYNC_SRC_REQ (86): are we the designated source of this peer's full
/// sync, and from when on does it need our records?
async fn initial_mark(storage: &Storage, peer_id: &str) -> Result<Mark, ClientError> {
    let mut body = BytesMut::new();
    put_group(&mut body, &storage.group);
    put_fixed(
        &mut body,
        peer_id.as_bytes(),
        fdfs_proto::STORAGE_ID_MAX_SIZE,
    );
    let answer = tracker_call(storage, TrackerCmd::StorageSyncSrcReq, &body).await?;
    let src = if answer.is_empty() {
        SyncSource::default()
    } else {
        SyncSource::decode(&answer)?
    };
    Ok(Mark {
        need_sync_old: !src.src_id.is_empty() && src.src_id == storage.self_id(),
        until_timestamp: src.until_timestamp,
        ..Mark::default()
    })
}

/// REPORT_STATUS (76) of `peer` to every tracker (best effort).
async fn report_status(storage: &Storage, peer: &StorageBrief, status: u8) {
    let mut body = BytesMut::new();
    put_group(&mut body, &storage.group);
    StorageBrief {
        status,
        port: 0,
        id: peer.id.clone(),
        ip_addr: peer.ip_addr.clone(),
    }
    .encode(&mut body);
    for t in &storage.conf.tracker_servers {
        if let Ok(mut c) = Conn::connect_from(
            &t.to_string(),
            storage.client_bind_ip(),
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
        .await
        {
            if let Err(e) = c.call(TrackerCmd::StorageReportStatus.into(), &body).await {
                tracing::warn!(error = %e, peer = %peer.id, "REPORT_STATUS failed");
            }
            c.quit().await;
        }
    }
}

/// Whether a record goes to this peer (§5.3).
fn should_send(rec: &Record, mark: &Mark) -> bool {
    if rec.op.is_ascii_uppercase() {
        return true;
    }
    matches!(rec.op, 'c' | 'd' | 'u' | 'r' | 'l')
        && mark.need_sync_old
        && !mark.sync_old_done
        && rec.timestamp <= mark.until_timestamp
}

/// One peer's worker, until `shutdown` (this worker's token) fires;
/// `global` tells a server stop from the peer's removal.
pub(super) async fn run(
    storage: Arc<Storage>,
    peer_id: String,
    global: CancellationToken,
    shutdown: CancellationToken,
) {
    let Some(first) = peer(&storage, &peer_id) else {
        return;
    };
    let path = mark_path(&storage, &first);
    let mut mark = match tokio::fs::read_to_string(&path)
        .await
        .ok()
        .and_then(|t| Mark::parse(&t))
    {
        Some(m) => m,
        None => loop {
            match initial_mark(&storage, &peer_id).await {
                Ok(m) => break m,
                Err(e) => {
                    tracing::warn!(peer = %peer_id, error = %e, "SYNC_SRC_REQ failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_DELAY) => {}
                    }
                }
            }
        },
    };
    save_mark(&path, &mark).await;
    publish_acked(&storage, &peer_id, &mark);
    tracing::info!(peer = %peer_id, need_sync_old = mark.need_sync_old, until = mark.until_timestamp, "sync worker started");
    let mut reported_syncing = false;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = run_session(&storage, &peer_id, &path, &mut mark, &mut reported_syncing, &shutdown) => r,
        };
        match result {
            Ok(()) => break,
            Err(e) => tracing::debug!(peer = %peer_id, error = %e, "sync session ended"),
        }
        save_mark(&path, &mark).await;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }
    if shutdown.is_cancelled() && !global.is_cancelled() {
        // Stopped because the peer was deleted: its mark is gone for good.
        let _ = tokio::fs::remove_file(&path).await;
        return;
    }
    save_mark(&path, &mark).await;
}

/// One connection to the peer: push records until an error or shutdown.
async fn run_session(
    storage: &Arc<Storage>,
    peer_id: &str,
    mark_file: &Path,
    mark: &mut Mark,
    reported_syncing: &mut bool,
    shutdown: &CancellationToken,
) -> Result<(), ClientError> {
    let full_sync = mark.need_sync_old && !mark.sync_old_done;
    // The designated source copies while the peer waits for its data; the
    // others wait until it is ACTIVE (§5.5).
    let target = loop {
        match peer(storage, peer_id) {
            Some(p)
                if matches!(
                    p.status,
                    storage_status::DELETED | storage_status::IP_CHANGED | storage_status::NONE
                ) =>
            {
                return Ok(());
            }
            Some(p)
                if p.status == storage_status::ACTIVE
                    || (full_sync
                        && matches!(
                            p.status,
                            storage_status::WAIT_SYNC | storage_status::SYNCING
                        )) =>
            {
                break p;
            }
            _ => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    let addr = format!("{}:{}", target.ip_addr, target.port);
    let mut conn = Conn::connect_from(
        &addr,
        storage.client_bind_ip(),
        Duration::from_secs(5),
        // A peer cut off by the network must not hold the worker for long:
        // after network_timeout the worker reconnects and resumes.
        Duration::from_secs(storage.conf.network_timeout_secs.clamp(5, 60)),
    )
    .await?;
    if let Some(secret) = &storage.conf.cluster_secret {
        conn.prove_cluster_secret(secret, fdfs_util::cluster_secret::Purpose::StorageSync)
            .await?;
    }
    let mut id = BytesMut::new();
    put_fixed(
        &mut id,
        storage.self_id().as_bytes(),
        fdfs_proto::STORAGE_ID_MAX_SIZE,
    );
    conn.call(StorageCmd::ReportServerId.into(), &id).await?;
    if full_sync && !*reported_syncing {
        report_status(storage, &target, storage_status::SYNCING).await;
        *reported_syncing = true;
    }

    let mut cursor = Cursor::at(
        storage.data_dir().join("sync"),
        mark.binlog_index,
        mark.binlog_offset,
    );
    let wait = Duration::from_millis(storage.conf.sync_wait_msec.clamp(10, 1000));
    let idle_ping = Duration::from_secs(storage.conf.heart_beat_interval_secs.max(1));
    let mark_every = u64::from(storage.conf.write_mark_file_freq.max(1));
    let mut since_mark = 0u64;
    let mut last_traffic = Instant::now();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let written = storage.binlog.position();
        let lines;
        (cursor, lines) = read_batch(cursor, written).await?;
        if lines.is_empty() {
            // Caught up with our binlog.
            mark.binlog_index = cursor.index;
            mark.binlog_offset = cursor.offset;
            publish_acked(storage, peer_id, mark);
            if mark.need_sync_old && !mark.sync_old_done {
                mark.sync_old_done = true;
                save_mark(mark_file, mark).await;
                report_status(storage, &target, storage_status::OFFLINE).await;
                tracing::info!(peer = %peer_id, "full sync done");
            }
            if since_mark > 0 {
                save_mark(mark_file, mark).await;
                since_mark = 0;
            }
            if last_traffic.elapsed() >= idle_ping {
                conn.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await?;
                last_traffic = Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        for line in lines {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            mark.scan_row_count += 1;
            match line.record() {
                Some(rec) => {
                    let skip_old = !mark.need_sync_old
                        && mark.until_timestamp > 0
                        && rec.timestamp < mark.until_timestamp;
                    if !skip_old && should_send(&rec, mark) {
                        match send_record(storage, &mut conn, &rec).await {
                            Ok(()) => {
                                mark.sync_row_count += 1;
                                last_traffic = Instant::now();
                            }
                            Err(e) if refused_for_good(&e) => {
                                skip_record(storage, peer_id, &line.text, &e.to_string());
                                mark.binlog_index = line.index;
                                mark.binlog_offset = line.next_offset;
                                save_mark(mark_file, mark).await;
                                // The peer closed the connection after its
                                // EINVAL: go on with a new one.
                                return Err(e);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                None if line.whole && line.text.trim().is_empty() => {}
                None => skip_record(storage, peer_id, &line.text, "unreadable binlog line"),
            }
            mark.binlog_index = line.index;
            mark.binlog_offset = line.next_offset;
            publish_acked(storage, peer_id, mark);
            since_mark += 1;
            if since_mark >= mark_every {
                save_mark(mark_file, mark).await;
                since_mark = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_filter_follows_section_5_3() {
        let rec = |op: char, ts: i64| Record {
            timestamp: ts,
            op,
            filename: "M00/00/00/x".into(),
            extra: String::new(),
        };
        let plain = Mark::default();
        assert!(should_send(&rec('C', 5), &plain));
        assert!(!should_send(&rec('c', 5), &plain));
        let full = Mark {
            need_sync_old: true,
            until_timestamp: 10,
            ..Mark::default()
        };
        assert!(should_send(&rec('c', 5), &full));
        assert!(!should_send(&rec('c', 11), &full));
        assert!(!should_send(&rec('a', 5), &full));
        assert!(should_send(&rec('L', 5), &full));
    }
}
