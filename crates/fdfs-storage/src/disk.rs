//! Free and total space of a file system, for reserved-space checks and
//! REPORT_DISK_USAGE.

use std::path::Path;

/// Total and free (available to unprivileged users) megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceMb {
    pub total_mb: u64,
    pub free_mb: u64,
}

const BYTES_PER_MB: u64 = 1024 * 1024;

/// The space of the file system that holds `path`.
pub fn space(path: &Path) -> std::io::Result<SpaceMb> {
    let (total, free) = fdfs_util::sys::fs_space_bytes(path)?;
    Ok(SpaceMb {
        total_mb: total / BYTES_PER_MB,
        free_mb: free / BYTES_PER_MB,
    })
}

/// How often the watcher re-reads the free space of every store path, so
/// space freed (or filled) outside the storage reaches the trackers within
/// seconds instead of at the next `stat_report_interval`.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Least time between two out-of-turn disk reports to one tracker: a burst
/// of refused uploads asks for one report, not one each.
pub const PROMPT_REPORT_MIN_GAP: std::time::Duration = std::time::Duration::from_millis(500);

/// Requests for a disk report out of turn (a store path filled up or got
/// room back), and the figures last reported. Every tracker reporter
/// subscribes; a request wakes them all.
#[derive(Debug)]
pub struct DiskReportRequests {
    wake: tokio::sync::watch::Sender<u64>,
    reported: std::sync::Mutex<Vec<SpaceMb>>,
}

impl Default for DiskReportRequests {
    fn default() -> Self {
        DiskReportRequests {
            wake: tokio::sync::watch::Sender::new(0),
            reported: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl DiskReportRequests {
    pub fn request(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Records what a tracker was just told.
    pub fn reported(&self, spaces: &[SpaceMb]) {
        *fdfs_util::sync::lock(&self.reported) = spaces.to_vec();
    }

    /// What the trackers were last told: the watcher compares a new
    /// reading with it, not with its own last reading, so a path filled
    /// and freed between two readings is still reported.
    pub fn last_reported(&self) -> Vec<SpaceMb> {
        fdfs_util::sync::lock(&self.reported).clone()
    }
}

/// For each store path, whether it can take another file above the reserve.
pub fn room_flags(
    spaces: &[SpaceMb],
    reserved: &fdfs_config::ReservedSpace,
    store_path_count: usize,
) -> Vec<bool> {
    spaces
        .iter()
        .map(|s| crate::store::path_has_room(reserved, *s, 0, store_path_count))
        .collect()
}

/// Whether a new reading of the store paths must reach the trackers now:
/// a path filled up or got room back, or a path is (or was) full and its
/// figures moved (the tracker's own reserve rule may see room first).
pub fn report_due(
    before: &[SpaceMb],
    after: &[SpaceMb],
    rooms_before: &[bool],
    rooms_after: &[bool],
) -> bool {
    rooms_before != rooms_after
        || (rooms_after.iter().chain(rooms_before).any(|room| !room) && before != after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_config::ReservedSpace;

    fn mb(total_mb: u64, free_mb: u64) -> SpaceMb {
        SpaceMb { total_mb, free_mb }
    }

    #[test]
    fn a_report_is_due_when_a_path_crosses_its_reserve_or_a_full_path_moves() {
        let reserve = ReservedSpace::Megabytes(1);
        let roomy = [mb(8, 8), mb(8, 6)];
        let one_full = [mb(8, 0), mb(8, 6)];
        let rooms = |s: &[SpaceMb]| room_flags(s, &reserve, 2);
        assert_eq!(rooms(&roomy), [true, true]);
        assert_eq!(rooms(&one_full), [false, true]);
        let due = |a: &[SpaceMb], b: &[SpaceMb]| report_due(a, b, &rooms(a), &rooms(b));
        assert!(due(&roomy, &one_full), "filled up");
        assert!(due(&one_full, &roomy), "freed");
        assert!(!due(&roomy, &roomy));
        // Ordinary churn above the reserve waits for the periodic report.
        assert!(!due(&roomy, &[mb(8, 7), mb(8, 5)]));
        // A full path whose figures move is reported: the tracker's own
        // rule may see room before ours does.
        assert!(due(&one_full, &[mb(8, 0), mb(8, 5)]));
        assert!(!due(&one_full, &one_full));
        // A ratio reserve.
        assert_eq!(
            room_flags(&[mb(100, 11), mb(100, 9)], &ReservedSpace::Ratio(0.1), 2),
            [true, false]
        );
    }

    #[test]
    fn requests_wake_every_subscriber_and_reports_are_remembered() {
        let r = DiskReportRequests::default();
        let (mut a, mut b) = (r.subscribe(), r.subscribe());
        assert!(!a.has_changed().unwrap());
        r.request();
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
        a.borrow_and_update();
        assert!(!a.has_changed().unwrap());
        assert!(r.last_reported().is_empty());
        r.reported(&[mb(8, 3)]);
        assert_eq!(r.last_reported(), [mb(8, 3)]);
        b.borrow_and_update();
    }
}
