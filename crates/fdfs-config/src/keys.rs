//! Known key names per configuration type, so that a typo (`prot = 22122`)
//! surfaces as a warning while every key the original accepts stays quiet,
//! including keys we read but do not model (run_by_user, log rotation, ...).

use crate::ini::IniFile;
use crate::Warning;

/// Keys handled by libserverframe for both daemons (PROTOCOL.md §10.2) plus
/// pre-6.x log keys still found in older deployed confs.
pub const SERVER_COMMON_KEYS: &[&str] = &[
    "disabled",
    "base_path",
    "bind_addr",
    "inner_bind_addr",
    "outer_bind_addr",
    "port",
    "inner_port",
    "outer_port",
    "address_family",
    "connect_timeout",
    "network_timeout",
    "max_connections",
    "accept_threads",
    "work_threads",
    "buff_size",
    "min_buff_size",
    "max_buff_size",
    "thread_stack_size",
    "run_by_group",
    "run_by_user",
    "tcp_quick_ack",
    "use_io_uring",
    "use_send_zc",
    "log_level",
    // fastdfs-rs extension: `text` (the original's lines) or `json`.
    "log_format",
    "allow_hosts",
    // fastdfs-rs extension: see fdfs_util::cluster_secret.
    "cluster_secret_file",
    "use_connection_pool",
    "connection_pool_max_idle_time",
    "reserved_storage_space",
    // Pre-6.x spellings of the log rotation settings.
    "rotate_error_log",
    "error_log_rotate_time",
    "rotate_error_log_size",
    "compress_old_error_log",
    "compress_error_log_days_before",
];

/// The `http.conf` keys that samples pull in with `#include http.conf`.
pub const HTTP_SHARED_KEYS: &[&str] = &[
    "http.disabled",
    "http.need_find_content_type",
    "http.multi_range.enabled",
    "http.mime_types_filename",
    "http.default_content_type",
    "http.anti_steal.check_token",
    "http.anti_steal.token_ttl",
    "http.anti_steal.secret_key",
    "http.anti_steal.token_check_fail",
    // Ours: HTTPS on the gateway port.
    "http.tls.certificate",
    "http.tls.certificate_key",
];

/// tracker.conf (§10.3).
pub const TRACKER_KEYS: &[&str] = &[
    "response_ip_addr_size",
    "store_lookup",
    "store_group",
    "store_server",
    "store_path",
    "download_server",
    "check_active_interval",
    "storage_ip_changed_auto_adjust",
    "storage_sync_file_max_delay",
    "storage_sync_file_max_time",
    "use_trunk_file",
    "slot_min_size",
    "slot_max_size",
    "trunk_alloc_alignment_size",
    "trunk_free_space_merge",
    "delete_unused_trunk_files",
    "trunk_file_size",
    "trunk_create_file_advance",
    "trunk_create_file_time_base",
    "trunk_create_file_interval",
    "trunk_create_file_space_threshold",
    "trunk_init_check_occupying",
    "trunk_init_reload_from_binlog",
    "trunk_compress_binlog_min_interval",
    "trunk_compress_binlog_interval",
    "trunk_compress_binlog_time_base",
    "trunk_binlog_max_backups",
    "use_storage_id",
    "storage_ids_filename",
    "id_type_in_filename",
    "trust_storage_server_id",
    // Our extension: advertised storage addresses accepted from elsewhere.
    "trusted_storage_addrs",
    "store_slave_file_use_link",
    "http.server_port",
    "http.check_alive_interval",
    "http.check_alive_type",
    "http.check_alive_uri",
];

/// storage.conf (§10.4); `store_pathN` / `store_pathN_readonly` are matched
/// by [`is_store_path_key`].
pub const STORAGE_KEYS: &[&str] = &[
    "group_name",
    "client_bind",
    "server_id",
    "heart_beat_interval",
    "stat_report_interval",
    "disk_rw_separated",
    "disk_reader_threads",
    "disk_writer_threads",
    "sync_min_threads",
    "sync_max_threads",
    "sync_wait_msec",
    "sync_interval",
    "sync_start_time",
    "sync_end_time",
    "write_mark_file_freq",
    "disk_recovery_threads",
    "store_path_count",
    "subdir_count_per_path",
    "tracker_server",
    "file_distribute_path_mode",
    "file_distribute_rotate_count",
    "fsync_after_written_bytes",
    "sync_binlog_buff_interval",
    "sync_stat_file_interval",
    "upload_priority",
    "if_alias_prefix",
    "check_file_duplicate",
    "file_signature_method",
    "key_namespace",
    "keep_alive",
    "file_sync_skip_invalid_record",
    "compress_binlog",
    "compress_binlog_time",
    "check_store_path_mark",
    "http.domain_name",
    "http.server_port",
    // Our extension: the address reported to trackers and clients.
    "advertise_addr",
    // Pre-6.x access log settings (now in the [access-log] section).
    "use_access_log",
    "rotate_access_log",
    "access_log_rotate_time",
    "compress_old_access_log",
    "compress_access_log_days_before",
    "rotate_access_log_size",
];

/// client.conf (§10.5).
pub const CLIENT_KEYS: &[&str] = &[
    "connect_timeout",
    "network_timeout",
    "base_path",
    "tracker_server",
    "log_level",
    "connect_first_by",
    "use_connection_pool",
    "connection_pool_max_idle_time",
    "load_fdfs_parameters_from_tracker",
    "use_storage_id",
    "storage_ids_filename",
    "http.tracker_server_port",
];

/// Log file settings: global keys of both daemons (for the error log), and
/// keys of the `[access-log]` and `[error-log]` sections.
pub const LOG_FILE_KEYS: &[&str] = &[
    "sync_log_buff_interval",
    "log_file_rotate_everyday",
    "log_file_rotate_time",
    "log_file_compress_old",
    "log_file_compress_days_before",
    "log_file_rotate_on_size",
    "log_file_keep_days",
    "log_file_delete_old_time",
];

/// Keys valid inside `[access-log]` and `[error-log]` besides [`LOG_FILE_KEYS`].
pub const LOG_SECTION_KEYS: &[&str] = &["enabled", "time_precision"];

/// Whether `key` is a global key both daemon confs may contain.
pub fn is_server_common_key(key: &str) -> bool {
    SERVER_COMMON_KEYS.contains(&key) || LOG_FILE_KEYS.contains(&key)
}

/// Sections whose keys we check; keys in any other section are left alone.
pub const CHECKED_SECTIONS: &[&str] = &["access-log", "error-log"];

/// `store_path<N>` or `store_path<N>_readonly`.
pub fn is_store_path_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("store_path") else {
        return false;
    };
    let digits = rest.strip_suffix("_readonly").unwrap_or(rest);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// One warning per global item whose key `is_known` rejects, and per item of
/// a checked section that is not a log-section key.
pub(crate) fn unknown_key_warnings(ini: &IniFile, is_known: impl Fn(&str) -> bool) -> Vec<Warning> {
    let mut out: Vec<Warning> = ini
        .keys()
        .filter(|i| !is_known(&i.key))
        .map(Warning::unknown_key)
        .collect();
    for section in CHECKED_SECTIONS {
        out.extend(
            ini.section_items(section)
                .iter()
                .filter(|i| {
                    let key = i.key.as_str();
                    !LOG_SECTION_KEYS.contains(&key) && !LOG_FILE_KEYS.contains(&key)
                })
                .map(Warning::unknown_key),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_path_keys() {
        assert!(is_store_path_key("store_path0"));
        assert!(is_store_path_key("store_path12_readonly"));
        assert!(!is_store_path_key("store_path"));
        assert!(!is_store_path_key("store_path_count"));
        assert!(!is_store_path_key("store_pathx"));
        assert!(!is_store_path_key("store_path_readonly"));
    }
}
