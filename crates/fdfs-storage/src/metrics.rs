//! The storage's own Prometheus series (`fdfs_storage_*`): requests and
//! latency per command, bytes in and out, files, space per store path as
//! the disk reporter last read it, what each peer last replicated to us,
//! connections. The upstream exporter's `fastdfs_storage_*` come from the
//! tracker, which sees every storage; these are one storage's own view.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fdfs_proto::StorageCmd;
use fdfs_util::metrics::{CommandStats, Exposition, Source};
use fdfs_util::sync::lock;

use crate::state::Storage;

const BYTES_PER_MB: u64 = 1024 * 1024;

/// What the storage counts for its metrics alone.
#[derive(Debug, Default)]
pub struct StorageCounters {
    pub(crate) commands: CommandStats,
    /// The allow list of the protocol port, which counts what it refused.
    pub(crate) admission: std::sync::OnceLock<Arc<fdfs_util::serve::Admission>>,
    pub(crate) accepted: AtomicU64,
}

/// The series of one storage, as a [`Source`].
pub struct StorageMetrics(pub Arc<Storage>);

impl Source for StorageMetrics {
    fn collect(&self, out: &mut Exposition<'_>) -> fmt::Result {
        let s = &self.0;
        let stats = s.stats_snapshot();
        let group = [("group", s.group.as_str())];
        let g = &group[..];
        let bytes = |v: i64| u64::try_from(v).unwrap_or(0);
        out.counters(
            "fdfs_storage_bytes_in",
            "File bytes received: uploads, appends, modifies, replication",
            [(
                g,
                bytes(stats.success_upload_bytes)
                    + bytes(stats.success_append_bytes)
                    + bytes(stats.success_modify_bytes)
                    + bytes(stats.success_sync_in_bytes),
            )],
        )?;
        out.counters(
            "fdfs_storage_bytes_out",
            "File bytes sent: downloads, replication",
            [(
                g,
                bytes(stats.success_download_bytes) + bytes(stats.success_sync_out_bytes),
            )],
        )?;
        out.counters(
            "fdfs_storage_files_uploaded",
            "Files uploaded by clients (regular, appender and slave)",
            [(g, bytes(stats.success_upload_count))],
        )?;
        out.counters(
            "fdfs_storage_files_deleted",
            "Files deleted by clients",
            [(g, bytes(stats.success_delete_count))],
        )?;
        out.gauges(
            "fdfs_storage_files_stored",
            "Files uploaded or linked minus files deleted through this storage (replicas not counted)",
            [(
                g,
                (stats.success_upload_count + stats.success_create_link_count
                    - stats.success_delete_count
                    - stats.success_delete_link_count)
                    .max(0),
            )],
        )?;

        let spaces = lock(&s.spaces).clone();
        let paths: Vec<String> = s
            .paths
            .iter()
            .map(|p| p.root.display().to_string())
            .collect();
        let plabels: Vec<[(&str, &str); 2]> = paths
            .iter()
            .map(|p| [("group", s.group.as_str()), ("path", p.as_str())])
            .collect();
        out.gauges(
            "fdfs_storage_path_total_bytes",
            "Size of the file system of each store path (as last read by the disk reporter)",
            plabels
                .iter()
                .zip(&spaces)
                .map(|(l, sp)| (&l[..], sp.total_mb.saturating_mul(BYTES_PER_MB))),
        )?;
        out.gauges(
            "fdfs_storage_path_free_bytes",
            "Free space of each store path (as last read by the disk reporter)",
            plabels
                .iter()
                .zip(&spaces)
                .map(|(l, sp)| (&l[..], sp.free_mb.saturating_mul(BYTES_PER_MB))),
        )?;

        let received = lock(&s.received_from).clone();
        let now = fdfs_util::now_secs();
        let peers: Vec<&String> = received.keys().collect();
        let rlabels: Vec<[(&str, &str); 2]> = peers
            .iter()
            .map(|p| [("group", s.group.as_str()), ("peer", p.as_str())])
            .collect();
        out.gauges(
            "fdfs_storage_replica_received_timestamp_seconds",
            "Source time of the newest change each peer replicated to us",
            rlabels
                .iter()
                .zip(received.values())
                .map(|(l, ts)| (&l[..], i64::from(*ts))),
        )?;
        out.gauges(
            "fdfs_storage_replica_age_seconds",
            "Seconds since the source time of the newest change each peer replicated to us",
            rlabels
                .iter()
                .zip(received.values())
                .map(|(l, ts)| (&l[..], (now - i64::from(*ts)).max(0))),
        )?;

        out.gauges(
            "fdfs_storage_connections_open",
            "Client connections open now",
            [(g, s.connections_current.load(Ordering::Relaxed))],
        )?;
        out.counters(
            "fdfs_storage_connections_accepted",
            "Connections accepted since start",
            [(g, s.counters.accepted.load(Ordering::Relaxed))],
        )?;
        out.counters(
            "fdfs_storage_connections_refused",
            "Connections refused by allow_hosts since start",
            [(g, s.counters.admission.get().map_or(0, |a| a.refused()))],
        )?;
        out.gauges(
            "fdfs_storage_start_time_seconds",
            "When this storage started (unix seconds)",
            [(g, s.up_time)],
        )?;
        s.counters
            .commands
            .collect(out, "fdfs_storage", StorageCmd::name_of)
    }
}
