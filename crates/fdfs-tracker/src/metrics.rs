//! The tracker's Prometheus series: the upstream exporter's
//! (`fastdfs_tracker_*`, `fastdfs_group_*`, `fastdfs_storage_*`: same
//! names, labels, types and units, so its Grafana dashboard works against
//! us), `fastdfs_group_active_count` that dashboard asks for, and our own
//! `fdfs_tracker_*` (requests per command, connections). All read from
//! memory on a scrape.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fdfs_proto::stat::storage_status as st;
use fdfs_proto::TrackerCmd;
use fdfs_util::metrics::{CommandStats, Exposition, Labels, Source};

use crate::admin::reserved_mb;
use crate::state::StorageRec;
use crate::{now_secs, Tracker};

/// What the tracker counts for its metrics alone.
#[derive(Debug, Default)]
pub struct TrackerCounters {
    pub(crate) commands: CommandStats,
    /// The allow list of the protocol port, which counts what it refused.
    pub(crate) admission: std::sync::OnceLock<Arc<fdfs_util::serve::Admission>>,
    pub(crate) accepted: AtomicU64,
}

/// The series of one tracker, as a [`Source`].
pub struct TrackerMetrics(pub Arc<Tracker>);

impl Source for TrackerMetrics {
    fn collect(&self, out: &mut Exposition<'_>) -> fmt::Result {
        let t = &self.0;
        trackers(t, out)?;
        groups_and_storages(t, out)?;
        own(t, out)
    }
}

/// `fastdfs_tracker_*{host}`: as TRACKER_CLUSTER_STAT lists them on the
/// leader; a follower knows only itself.
fn trackers(t: &Tracker, out: &mut Exposition<'_>) -> fmt::Result {
    let entries = {
        let rel = t.relation();
        let own_host = || {
            t.listen_addr
                .get()
                .map_or_else(String::new, |a| a.to_string())
        };
        if rel.is_leader() {
            crate::cluster_stat::tracker_entries(t, &rel, own_host)
        } else {
            let mut me = crate::cluster_stat::tracker_entries(t, &rel, own_host);
            me.retain(|e| e.is_leader);
            for e in &mut me {
                e.is_leader = false;
            }
            me.truncate(1);
            me
        }
    };
    let labels: Vec<[(&str, &str); 1]> = entries
        .iter()
        .map(|e| [("host", e.host.as_str())])
        .collect();
    let family = |f: fn(&fdfs_proto::cluster_stat::TrackerStatEntry) -> i64| {
        labels
            .iter()
            .zip(&entries)
            .map(move |(l, e)| (&l[..], f(e)))
    };
    out.gauges(
        "fastdfs_tracker_is_leader",
        "Is leader",
        family(|e| i64::from(e.is_leader)),
    )?;
    out.gauges(
        "fastdfs_tracker_is_active",
        "Is active",
        family(|e| i64::from(e.is_active)),
    )?;
    out.gauges(
        "fastdfs_tracker_connections_alloc",
        "Alloc connection count",
        family(|e| i64::from(e.connections.alloc)),
    )?;
    out.gauges(
        "fastdfs_tracker_connections_current",
        "Current connection count",
        family(|e| i64::from(e.connections.current)),
    )?;
    out.gauges(
        "fastdfs_tracker_connections_max",
        "Maximum connection count",
        family(|e| i64::from(e.connections.max)),
    )
}

/// One group's numbers, copied out of the cluster lock.
struct GroupRow {
    name: String,
    total_mb: i64,
    free_mb: i64,
    reserved_mb: i64,
    trunk_free_mb: i64,
    storage_count: i64,
    active_count: i64,
    readable: i64,
    writable: i64,
    storages: Vec<StorageRow>,
}

struct StorageRow {
    id: String,
    ip: String,
    status: String,
    total_mb: i64,
    free_mb: i64,
    reserved_mb: i64,
    is_trunk_server: bool,
    stats: fdfs_proto::stat::StorageStats,
    /// Newest file another member of the group received from a client
    /// (the upstream exporter's yardstick of replication delay).
    max_other_source_update: i64,
    /// (peer id, seconds this storage lags behind that peer's own
    /// changes; −1: nothing received yet), as `fdfs monitor sync` tells it.
    lag_behind: Vec<(String, i64)>,
}

/// How far `dest` lags behind the changes `peer` received from clients.
fn lag_secs(peer: &StorageRec, dest: &StorageRec) -> i64 {
    let newest = peer.stats.last_source_update;
    let received = peer.synced_by.get(&dest.id).copied().unwrap_or(0);
    if newest <= 0 {
        0
    } else if received <= 0 {
        -1
    } else {
        (newest - received).max(0)
    }
}

fn rows(t: &Tracker) -> Vec<GroupRow> {
    let c = t.lock();
    c.groups
        .values()
        .map(|g| {
            let visible: Vec<_> = g.visible().collect();
            let storages = visible
                .iter()
                .map(|s| StorageRow {
                    id: s.id.clone(),
                    ip: s.ip.clone(),
                    status: s.status.to_string(),
                    total_mb: s.total_mb,
                    free_mb: s.free_mb,
                    reserved_mb: reserved_mb(t, s.total_mb),
                    is_trunk_server: g.is_trunk_server(&s.id),
                    stats: s.stats.clone(),
                    max_other_source_update: visible
                        .iter()
                        .filter(|o| o.id != s.id)
                        .map(|o| o.stats.last_source_update)
                        .max()
                        .unwrap_or(0)
                        .max(0),
                    lag_behind: visible
                        .iter()
                        .filter(|p| p.id != s.id)
                        .map(|p| (p.id.clone(), lag_secs(p, s)))
                        .collect(),
                })
                .collect();
            GroupRow {
                name: g.name.clone(),
                total_mb: g.total_mb,
                free_mb: g.free_mb,
                reserved_mb: reserved_mb(t, g.total_mb),
                trunk_free_mb: g.trunk_free_mb,
                storage_count: visible.len() as i64,
                active_count: visible.iter().filter(|s| s.status == st::ACTIVE).count() as i64,
                readable: g.readable().len() as i64,
                writable: g.writable().len() as i64,
                storages,
            }
        })
        .collect()
}

/// One storage series' value.
type StorageValue<'a> = dyn Fn(&StorageRow) -> i64 + 'a;

/// `fastdfs_group_*{group}` and `fastdfs_storage_*{group,storage_id,ip,status}`.
fn groups_and_storages(t: &Tracker, out: &mut Exposition<'_>) -> fmt::Result {
    let groups = rows(t);
    let glabels: Vec<[(&str, &str); 1]> = groups
        .iter()
        .map(|g| [("group", g.name.as_str())])
        .collect();
    let gfam = |f: fn(&GroupRow) -> i64| {
        glabels
            .iter()
            .zip(&groups)
            .map(move |(l, g)| (&l[..], f(g)))
    };
    out.gauges(
        "fastdfs_group_total_mb",
        "Disk total space in MB",
        gfam(|g| g.total_mb),
    )?;
    out.gauges(
        "fastdfs_group_free_mb",
        "Disk free space in MB",
        gfam(|g| g.free_mb),
    )?;
    out.gauges(
        "fastdfs_group_reserved_mb",
        "Disk reserved space in MB",
        gfam(|g| g.reserved_mb),
    )?;
    out.gauges(
        "fastdfs_group_available_mb",
        "Disk available space in MB",
        gfam(|g| (g.free_mb - g.reserved_mb).max(0)),
    )?;
    if t.conf.use_trunk_file {
        out.gauges(
            "fastdfs_group_trunk_free_mb",
            "Trunk free space in MB",
            gfam(|g| g.trunk_free_mb),
        )?;
    }
    out.gauges(
        "fastdfs_group_storage_count",
        "Number of storage servers in group",
        gfam(|g| g.storage_count),
    )?;
    out.gauges(
        "fastdfs_group_active_count",
        "Number of ACTIVE storage servers in group",
        gfam(|g| g.active_count),
    )?;
    out.gauges(
        "fastdfs_group_readable_server_count",
        "Number of readable storage servers",
        gfam(|g| g.readable),
    )?;
    out.gauges(
        "fastdfs_group_writable_server_count",
        "Number of writable storage servers",
        gfam(|g| g.writable),
    )?;

    let storages: Vec<(&str, &StorageRow)> = groups
        .iter()
        .flat_map(|g| g.storages.iter().map(move |s| (g.name.as_str(), s)))
        .collect();
    let slabels: Vec<[(&str, &str); 4]> = storages
        .iter()
        .map(|(g, s)| {
            [
                ("group", *g),
                ("storage_id", s.id.as_str()),
                ("ip", s.ip.as_str()),
                ("status", s.status.as_str()),
            ]
        })
        .collect();
    let now = now_secs();
    let sfam = |f: &StorageValue<'_>| -> Vec<(&Labels<'_>, i64)> {
        slabels
            .iter()
            .zip(&storages)
            .map(|(l, (_, s))| (&l[..], f(s)))
            .collect()
    };
    let upstream: [(&str, &str, &StorageValue<'_>); 25] = [
        ("total_mb", "Disk total space in MB", &|s| s.total_mb),
        ("free_mb", "Disk free space in MB", &|s| s.free_mb),
        ("reserved_mb", "Disk reserved space in MB", &|s| {
            s.reserved_mb
        }),
        ("available_mb", "Disk available space in MB", &|s| {
            (s.free_mb - s.reserved_mb).max(0)
        }),
        ("upload_total", "Total upload operations", &|s| {
            s.stats.total_upload_count
        }),
        ("upload_success", "Successful upload operations", &|s| {
            s.stats.success_upload_count
        }),
        ("upload_bytes_total", "Total uploaded bytes", &|s| {
            s.stats.total_upload_bytes
        }),
        ("download_total", "Total download operations", &|s| {
            s.stats.total_download_count
        }),
        ("download_success", "Successful download operations", &|s| {
            s.stats.success_download_count
        }),
        ("download_bytes_total", "Total downloaded bytes", &|s| {
            s.stats.total_download_bytes
        }),
        ("delete_total", "Total delete operations", &|s| {
            s.stats.total_delete_count
        }),
        ("delete_success", "Successful delete operations", &|s| {
            s.stats.success_delete_count
        }),
        ("append_total", "Total append operations", &|s| {
            s.stats.total_append_count
        }),
        ("append_success", "Successful append operations", &|s| {
            s.stats.success_append_count
        }),
        ("modify_total", "Total modify operations", &|s| {
            s.stats.total_modify_count
        }),
        ("modify_success", "Successful modify operations", &|s| {
            s.stats.success_modify_count
        }),
        ("connections_alloc", "Alloc connection count", &|s| {
            i64::from(s.stats.connection_alloc_count)
        }),
        ("connections_current", "Current connection count", &|s| {
            i64::from(s.stats.connection_current_count)
        }),
        ("connections_max", "Maximum connection count", &|s| {
            i64::from(s.stats.connection_max_count)
        }),
        ("last_heartbeat", "Last heartbeat timestamp", &|s| {
            s.stats.last_heart_beat_time
        }),
        (
            "heartbeat_delay_seconds",
            "Seconds since last heartbeat",
            &|s| now - s.stats.last_heart_beat_time,
        ),
        ("last_synced_timestamp", "Last synced timestamp", &|s| {
            s.stats.last_synced_timestamp
        }),
        (
            "synced_delay_seconds",
            "Synced delay seconds",
            &synced_delay_secs,
        ),
        ("sync_in_bytes_total", "Total sync in bytes", &|s| {
            s.stats.total_sync_in_bytes
        }),
        ("sync_out_bytes_total", "Total sync out bytes", &|s| {
            s.stats.total_sync_out_bytes
        }),
    ];
    for (suffix, help, f) in upstream {
        out.gauges(&format!("fastdfs_storage_{suffix}"), help, sfam(f))?;
    }
    if t.conf.use_trunk_file {
        out.gauges(
            "fastdfs_storage_is_trunk_server",
            "1 for the trunk server of its group, else 0",
            sfam(&|s| i64::from(s.is_trunk_server)),
        )?;
    }
    // Ours: replication lag of each storage behind each peer.
    let lags: Vec<([(&str, &str); 3], i64)> = storages
        .iter()
        .flat_map(|(g, s)| {
            s.lag_behind.iter().map(move |(peer, lag)| {
                (
                    [
                        ("group", *g),
                        ("storage_id", s.id.as_str()),
                        ("peer", peer.as_str()),
                    ],
                    *lag,
                )
            })
        })
        .collect();
    out.gauges(
        "fdfs_tracker_replication_lag_seconds",
        "Seconds a storage lags behind the changes a peer received from clients (-1: nothing received yet)",
        lags.iter().map(|(l, v)| (&l[..], *v)),
    )?;
    // Ours: the storages keep no file count, so it is reckoned from the
    // counters they report.
    out.gauges(
        "fdfs_tracker_storage_files_stored",
        "Files uploaded or linked minus files deleted, as each storage counted them",
        sfam(&|s| {
            (s.stats.success_upload_count + s.stats.success_create_link_count
                - s.stats.success_delete_count
                - s.stats.success_delete_link_count)
                .max(0)
        }),
    )
}

/// How far a storage's replicas lag behind the newest upload its group
/// peers received (0: nothing to wait for, −1: never synced), as the
/// upstream exporter reckons it.
fn synced_delay_secs(s: &StorageRow) -> i64 {
    if s.max_other_source_update == 0 {
        0
    } else if s.stats.last_synced_timestamp > 0 {
        (s.max_other_source_update - s.stats.last_synced_timestamp).max(0)
    } else {
        -1
    }
}

/// `fdfs_tracker_*`: what this tracker process itself counts.
fn own(t: &Tracker, out: &mut Exposition<'_>) -> fmt::Result {
    let counts = t.conn_counts();
    out.gauge(
        "fdfs_tracker_connections_open",
        "Client and storage connections open now",
        i64::from(counts.current),
    )?;
    out.counter(
        "fdfs_tracker_connections_accepted",
        "Connections accepted since start",
        t.counters.accepted.load(Ordering::Relaxed),
    )?;
    out.counter(
        "fdfs_tracker_connections_refused",
        "Connections refused by allow_hosts since start",
        t.counters.admission.get().map_or(0, |a| a.refused()),
    )?;
    out.gauge(
        "fdfs_tracker_is_leader",
        "1 when this tracker leads",
        i64::from(t.relation().is_leader()),
    )?;
    out.gauge(
        "fdfs_tracker_start_time_seconds",
        "When this tracker started (unix seconds)",
        t.start_time,
    )?;
    t.counters
        .commands
        .collect(out, "fdfs_tracker", TrackerCmd::name_of)
}
