//! Trunk storage settings as a storage learns them: the tracker.conf keys
//! the tracker hands out in its PARAMETER_REQ (75) answer (§2.13, §11.5).

use crate::TrackerConf;

/// The trunk part of the PARAMETER_REQ text, typed. Defaults are the
/// original's tracker defaults; a storage keeps these until a tracker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkParams {
    pub use_trunk_file: bool,
    pub slot_min_size_bytes: u64,
    pub slot_max_size_bytes: u64,
    pub trunk_alloc_alignment_size_bytes: u64,
    pub trunk_file_size_bytes: u64,
    pub trunk_create_file_advance: bool,
    /// `(hour, minute)`.
    pub trunk_create_file_time_base: (u8, u8),
    pub trunk_create_file_interval_secs: u64,
    pub trunk_create_file_space_threshold_bytes: u64,
    pub trunk_init_check_occupying: bool,
    pub trunk_init_reload_from_binlog: bool,
    pub trunk_free_space_merge: bool,
    pub delete_unused_trunk_files: bool,
    pub trunk_compress_binlog_min_interval_secs: u64,
    pub trunk_compress_binlog_interval_secs: u64,
    /// `(hour, minute)`.
    pub trunk_compress_binlog_time_base: (u8, u8),
    pub trunk_binlog_max_backups: u32,
    pub store_slave_file_use_link: bool,
}

impl Default for TrunkParams {
    fn default() -> Self {
        TrackerConf::default().trunk_params()
    }
}

fn flag(v: &str) -> Option<bool> {
    match v {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

fn hour_minute(v: &str) -> Option<(u8, u8)> {
    let (h, m) = v.split_once(':')?;
    let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

impl TrunkParams {
    /// Takes one `key=value` line of the PARAMETER_REQ answer. Returns
    /// false for a key that is not a trunk key or a value that does not
    /// parse; the setting then keeps its previous value.
    pub fn apply(&mut self, key: &str, value: &str) -> bool {
        let v = value.trim();
        let num = || v.parse::<u64>().ok();
        let applied = match key.trim() {
            "use_trunk_file" => flag(v).map(|b| self.use_trunk_file = b),
            "slot_min_size" => num().map(|n| self.slot_min_size_bytes = n),
            "slot_max_size" => num().map(|n| self.slot_max_size_bytes = n),
            "trunk_alloc_alignment_size" => {
                num().map(|n| self.trunk_alloc_alignment_size_bytes = n)
            }
            "trunk_file_size" => num().map(|n| self.trunk_file_size_bytes = n),
            "trunk_create_file_advance" => flag(v).map(|b| self.trunk_create_file_advance = b),
            "trunk_create_file_time_base" => {
                hour_minute(v).map(|t| self.trunk_create_file_time_base = t)
            }
            "trunk_create_file_interval" => num().map(|n| self.trunk_create_file_interval_secs = n),
            "trunk_create_file_space_threshold" => {
                num().map(|n| self.trunk_create_file_space_threshold_bytes = n)
            }
            "trunk_init_check_occupying" => flag(v).map(|b| self.trunk_init_check_occupying = b),
            "trunk_init_reload_from_binlog" => {
                flag(v).map(|b| self.trunk_init_reload_from_binlog = b)
            }
            "trunk_free_space_merge" => flag(v).map(|b| self.trunk_free_space_merge = b),
            "delete_unused_trunk_files" => flag(v).map(|b| self.delete_unused_trunk_files = b),
            "trunk_compress_binlog_min_interval" => {
                num().map(|n| self.trunk_compress_binlog_min_interval_secs = n)
            }
            "trunk_compress_binlog_interval" => {
                num().map(|n| self.trunk_compress_binlog_interval_secs = n)
            }
            "trunk_compress_binlog_time_base" => {
                hour_minute(v).map(|t| self.trunk_compress_binlog_time_base = t)
            }
            "trunk_binlog_max_backups" => v
                .parse::<u32>()
                .ok()
                .map(|n| self.trunk_binlog_max_backups = n),
            "store_slave_file_use_link" => flag(v).map(|b| self.store_slave_file_use_link = b),
            _ => None,
        };
        applied.is_some()
    }

    /// Reads every trunk key of a PARAMETER_REQ answer over `self`.
    pub fn with_parameter_text(mut self, text: &str) -> Self {
        for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
            self.apply(k, v);
        }
        self
    }
}

impl TrackerConf {
    /// The trunk settings this tracker hands to storages.
    pub fn trunk_params(&self) -> TrunkParams {
        TrunkParams {
            use_trunk_file: self.use_trunk_file,
            slot_min_size_bytes: self.slot_min_size,
            slot_max_size_bytes: self.slot_max_size,
            trunk_alloc_alignment_size_bytes: self.trunk_alloc_alignment_size_bytes,
            trunk_file_size_bytes: self.trunk_file_size,
            trunk_create_file_advance: self.trunk_create_file_advance,
            trunk_create_file_time_base: self.trunk_create_file_time_base,
            trunk_create_file_interval_secs: self.trunk_create_file_interval_secs,
            trunk_create_file_space_threshold_bytes: self.trunk_create_file_space_threshold_bytes,
            trunk_init_check_occupying: self.trunk_init_check_occupying,
            trunk_init_reload_from_binlog: self.trunk_init_reload_from_binlog,
            trunk_free_space_merge: self.trunk_free_space_merge,
            delete_unused_trunk_files: self.delete_unused_trunk_files,
            trunk_compress_binlog_min_interval_secs: self.trunk_compress_binlog_min_interval_secs,
            trunk_compress_binlog_interval_secs: self.trunk_compress_binlog_interval_secs,
            trunk_compress_binlog_time_base: self.trunk_compress_binlog_time_base,
            trunk_binlog_max_backups: self.trunk_binlog_max_backups,
            store_slave_file_use_link: self.store_slave_file_use_link,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let p = TrunkParams::default();
        assert!(!p.use_trunk_file);
        assert_eq!(p.slot_min_size_bytes, 256);
        assert_eq!(p.trunk_file_size_bytes, 64 * 1024 * 1024);
        assert_eq!(p.slot_max_size_bytes, 8 * 1024 * 1024);
        assert_eq!(p.trunk_alloc_alignment_size_bytes, 0);
        assert_eq!(p.trunk_create_file_time_base, (2, 0));
        assert_eq!(p.trunk_create_file_interval_secs, 86_400);
        assert_eq!(p.trunk_compress_binlog_time_base, (3, 0));
        assert_eq!(p.trunk_compress_binlog_interval_secs, 0);
        assert!(!p.store_slave_file_use_link);
    }

    #[test]
    fn bad_values_keep_the_old_setting() {
        let mut p = TrunkParams::default();
        assert!(!p.apply("slot_min_size", "-1"));
        assert!(!p.apply("use_trunk_file", "yes"));
        assert!(!p.apply("trunk_create_file_time_base", "25:00"));
        assert!(!p.apply("reserved_storage_space", "10%"));
        assert_eq!(p, TrunkParams::default());
        assert!(p.apply("trunk_create_file_time_base", "01:30"));
        assert_eq!(p.trunk_create_file_time_base, (1, 30));
    }
}
