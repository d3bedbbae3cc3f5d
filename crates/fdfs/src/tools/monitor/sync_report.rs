//! `fdfs_monitor sync [group]`, our addition (the C tool answers "Invalid
//! command"): replication as the tracker sees it, per group and peer, and
//! the progress of a disk recovery, asked of the recovering storage itself
//! (it has not joined its trackers yet, so they have no figures of it).

use std::fmt::Write as _;

use std::time::Duration;

use fdfs_client::{Conn, StorageClient, TrackerClient};
use fdfs_proto::stat::{storage_status, StorageStat};
use fdfs_proto::storage_msg::{recovery_phase, RecoveryProgress};
use fdfs_proto::tracker_msg::SyncProgress;

use super::formatted_ip;
use crate::tools::format::local_datetime;

/// `sync [group]` (our addition; the C tool answers "Invalid command"):
/// replication as the tracker sees it, per group.
pub(super) async fn list_sync(
    tc: &mut TrackerClient<'_>,
    group: Option<&str>,
) -> Result<String, u8> {
    let groups = tc.list_groups().await.map_err(|e| e.errno())?;
    let progress = tc.sync_status(group).await.map_err(|e| e.errno())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut out = String::new();
    for g in groups
        .iter()
        .filter(|g| group.is_none_or(|name| g.group_name == name))
    {
        let storages = tc
            .list_storages(&g.group_name, None)
            .await
            .map_err(|e| e.errno())?;
        let mut recoveries = Vec::new();
        for s in storages
            .iter()
            .filter(|s| s.status == storage_status::RECOVERY)
        {
            recoveries.push((s.id.clone(), ask_recovery_progress(s).await));
        }
        out.push_str(&format_sync(
            &g.group_name,
            &storages,
            &progress,
            &recoveries,
            now,
        ));
    }
    Ok(out)
}

/// Connect and answer timeout towards a recovering storage.
const RECOVERY_ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// RECOVERY_PROGRESS of a storage the tracker lists RECOVERY; the error
/// text when it cannot tell (down, or a C storage).
async fn ask_recovery_progress(s: &StorageStat) -> Result<RecoveryProgress, String> {
    let ip: std::net::IpAddr = s.ip_addr.parse().map_err(|_| "no address".to_string())?;
    let port = u16::try_from(s.storage_port).map_err(|_| "no port".to_string())?;
    let addr = std::net::SocketAddr::new(ip, port).to_string();
    let mut conn = Conn::connect(&addr, RECOVERY_ASK_TIMEOUT, RECOVERY_ASK_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let answer = StorageClient::new(&mut conn).recovery_progress().await;
    conn.quit().await;
    answer.map_err(|e| e.to_string())
}

/// One line on a disk recovery: done of total, files, bytes and rates.
fn recovery_text(p: &RecoveryProgress) -> String {
    let path = p.store_path_index;
    match p.phase {
        recovery_phase::FETCHING_BINLOG => {
            format!("store path {path}: fetching the list of files from a peer")
        }
        recovery_phase::RESTORING | recovery_phase::DONE => {
            let secs = (p.elapsed_ms as f64 / 1000.0).max(1e-3);
            let percent = if p.records_total == 0 {
                100.0
            } else {
                p.records_done as f64 * 100.0 / p.records_total as f64
            };
            format!(
                "store path {path}: {} of {} records ({percent:.1}%), {} files, {:.1} MB restored in {:.0} s, {:.0} files/s, {:.2} MB/s",
                p.records_done,
                p.records_total,
                p.files_restored,
                p.bytes_restored as f64 / 1e6,
                secs,
                p.files_restored as f64 / secs,
                p.bytes_restored as f64 / secs / 1e6
            )
        }
        _ => format!("store path {path}: waiting for an ACTIVE peer"),
    }
}

/// The `sync` report of one group: for each storage its status, last
/// heartbeat and sync source, then how far behind each peer's changes it
/// is. Lag = the peer's newest change minus the newest change of that peer
/// this storage reported having received.
pub fn format_sync(
    group: &str,
    storages: &[StorageStat],
    progress: &[SyncProgress],
    recoveries: &[(String, Result<RecoveryProgress, String>)],
    now: i64,
) -> String {
    let mut out = String::new();
    let status_of = |id: &str| storages.iter().find(|s| s.id == id).map(|s| s.status);
    let _ = writeln!(out, "group {group}: {} storage(s)", storages.len());
    for s in storages {
        let beat = s.stats.last_heart_beat_time;
        let beat_text = if beat == 0 {
            "no heartbeat yet".to_string()
        } else {
            format!("last heartbeat {} s ago", (now - beat).max(0))
        };
        // In id mode peers are named by id below: show which address it is.
        let id_text = if s.id != s.ip_addr {
            format!("  (id {})", s.id)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}:{}  {}  {beat_text}{id_text}",
            formatted_ip(&s.ip_addr),
            s.storage_port,
            storage_status::caption(s.status)
        );
        if let Some((_, recovery)) = recoveries.iter().find(|(id, _)| *id == s.id) {
            let text = match recovery {
                Ok(p) => recovery_text(p),
                Err(e) => format!("progress unknown ({e})"),
            };
            let _ = writeln!(out, "    disk recovery: {text}");
        }
        let full_sync = progress.iter().find_map(|p| match p {
            SyncProgress::FullSyncSource {
                group: g,
                storage_id,
                src_id,
                until_timestamp,
            } if g == group && *storage_id == s.id => Some((src_id.clone(), *until_timestamp)),
            _ => None,
        });
        match full_sync {
            None => {
                let _ = writeln!(out, "    sync source: none (first member of the group)");
            }
            Some((src, until)) => {
                let received = received_from(progress, group, &src, &s.id);
                let state = match s.status {
                    storage_status::WAIT_SYNC | storage_status::SYNCING => {
                        let src_status = status_of(&src);
                        if src_status == Some(storage_status::ACTIVE) {
                            format!(
                                "full copy in progress: received up to {} of {}",
                                timestamp_text(received),
                                local_datetime(until)
                            )
                        } else {
                            let caption = src_status.map_or("unknown", storage_status::caption);
                            format!("full copy waits for its source, which is {caption}")
                        }
                    }
                    _ => "full copy done".to_string(),
                };
                let _ = writeln!(out, "    sync source: {src} ({state})");
            }
        }
        for peer in storages.iter().filter(|p| p.id != s.id) {
            let newest = peer.stats.last_source_update;
            let received = received_from(progress, group, &peer.id, &s.id);
            let lag = if newest == 0 {
                "up to date (the peer has no changes of its own)".to_string()
            } else if received == 0 {
                format!(
                    "nothing received yet (peer's newest change {})",
                    local_datetime(newest)
                )
            } else {
                format!(
                    "lag {} s (received up to {})",
                    (newest - received).max(0),
                    local_datetime(received)
                )
            };
            let _ = writeln!(out, "    from {}: {lag}", peer.id);
        }
    }
    out
}

/// The newest change of `src` that `dest` reported having received (0: none).
fn received_from(progress: &[SyncProgress], group: &str, src: &str, dest: &str) -> i64 {
    progress
        .iter()
        .find_map(|p| match p {
            SyncProgress::Synced {
                group: g,
                src_id,
                dest_id,
                timestamp,
            } if g == group && src_id == src && dest_id == dest => Some(*timestamp),
            _ => None,
        })
        .unwrap_or(0)
}

fn timestamp_text(ts: i64) -> String {
    if ts == 0 {
        "nothing".to_string()
    } else {
        local_datetime(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::monitor::tests::captured;

    #[test]
    fn sync_report_explains_lag_and_a_stuck_full_copy() {
        let (_, s) = captured();
        let mut a = s.clone();
        a.stats.last_source_update = 1000;
        a.stats.last_heart_beat_time = 1990;
        let mut b = s.clone();
        b.id = "127.0.0.4".into();
        b.ip_addr = "127.0.0.4".into();
        b.status = storage_status::OFFLINE;
        b.stats.last_source_update = 900;
        let mut c = s;
        c.id = "127.0.0.5".into();
        c.ip_addr = "127.0.0.5".into();
        c.status = storage_status::WAIT_SYNC;
        c.stats.last_heart_beat_time = 0;
        let progress = vec![
            SyncProgress::Synced {
                group: "group1".into(),
                src_id: "127.0.0.3".into(),
                dest_id: "127.0.0.4".into(),
                timestamp: 970,
            },
            SyncProgress::FullSyncSource {
                group: "group1".into(),
                storage_id: "127.0.0.5".into(),
                src_id: "127.0.0.4".into(),
                until_timestamp: 950,
            },
        ];
        let text = format_sync("group1", &[a, b, c], &progress, &[], 2000);
        assert!(text.starts_with("group group1: 3 storage(s)\n  127.0.0.3:23000  ACTIVE  last heartbeat 10 s ago\n    sync source: none (first member of the group)\n"), "{text}");
        // 127.0.0.4 has 127.0.0.3's changes up to 970 of 1000.
        assert!(text.contains("  127.0.0.4:23000  OFFLINE  "), "{text}");
        assert!(
            text.contains("    from 127.0.0.3: lag 30 s (received up to "),
            "{text}"
        );
        // 127.0.0.5 waits for its source, which is down.
        assert!(text.contains("  127.0.0.5:23000  WAIT_SYNC  no heartbeat yet\n    sync source: 127.0.0.4 (full copy waits for its source, which is OFFLINE)\n"), "{text}");
        assert!(
            text.contains("    from 127.0.0.4: nothing received yet (peer's newest change "),
            "{text}"
        );
    }

    #[test]
    fn a_recovering_storage_shows_its_progress_or_why_not() {
        let (_, mut s) = captured();
        s.status = storage_status::RECOVERY;
        let p = RecoveryProgress {
            phase: recovery_phase::RESTORING,
            store_path_index: 0,
            records_done: 500,
            records_total: 2000,
            files_restored: 480,
            bytes_restored: 4_000_000,
            elapsed_ms: 2000,
        };
        let text = format_sync("group1", &[s.clone()], &[], &[(s.id.clone(), Ok(p))], 2000);
        assert!(text.contains("  RECOVERY  "), "{text}");
        assert!(
            text.contains("    disk recovery: store path 0: 500 of 2000 records (25.0%), 480 files, 4.0 MB restored in 2 s, 240 files/s, 2.00 MB/s\n"),
            "{text}"
        );
        let down = format_sync(
            "group1",
            &[s.clone()],
            &[],
            &[(s.id.clone(), Err("connection refused".into()))],
            2000,
        );
        assert!(
            down.contains("    disk recovery: progress unknown (connection refused)\n"),
            "{down}"
        );
    }
}
