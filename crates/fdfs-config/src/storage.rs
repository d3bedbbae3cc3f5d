//! `storage.conf` (PROTOCOL.md §10.2, §10.4): the typed storage server
//! configuration, plus our `advertise_addr` extension and its
//! `FASTDFS_IPADDR` environment override.

use std::path::{Path, PathBuf};

use crate::ini::IniFile;
use crate::keys::{self, HTTP_SHARED_KEYS, STORAGE_KEYS};
use crate::reader::{self, invalid, item_bool, Reader};
use crate::values::{parse_reserved_space, ReservedSpace, TrackerAddr};
use crate::{ConfigError, NetConf, Warning};

/// Environment variable that overrides `advertise_addr` (the classic
/// container convention: the start script substituted it into the confs).
pub const ENV_ADVERTISE_ADDR: &str = "FASTDFS_IPADDR";

pub const DEFAULT_STORAGE_PORT: u16 = 23000;
/// Most store paths a storage may have (the path index is one byte on the wire).
pub const MAX_STORE_PATHS: usize = 256;
/// Most `data/XX` subdirectories per level.
pub const MAX_SUBDIR_COUNT_PER_PATH: u32 = 256;
/// The storage needs room for a header plus a 64KB chunk in one buffer.
pub const MIN_STORAGE_BUFF_SIZE_BYTES: u64 = 10 + 65536;
/// The storage rejects smaller thread stacks.
pub const MIN_STORAGE_THREAD_STACK_SIZE_BYTES: u64 = 320 * 1024;

const DEFAULT_THREAD_STACK_SIZE_BYTES: u64 = 512 * 1024;
const DEFAULT_NETWORK_TIMEOUT_SECS: u64 = 30;
const DEFAULT_HEART_BEAT_INTERVAL_SECS: u64 = 30;
const DEFAULT_STAT_REPORT_INTERVAL_SECS: u64 = 300;
const DEFAULT_SYNC_WAIT_MSEC: u64 = 100;
const DEFAULT_WRITE_MARK_FILE_FREQ: u32 = 500;
const DEFAULT_FILE_DISTRIBUTE_ROTATE_COUNT: u32 = 100;
const DEFAULT_SYNC_BINLOG_BUFF_INTERVAL_SECS: u64 = 60;
const DEFAULT_SYNC_STAT_FILE_INTERVAL_SECS: u64 = 60;
const DEFAULT_UPLOAD_PRIORITY: i32 = 10;
const DEFAULT_HTTP_SERVER_PORT: u16 = 8888;
const DEFAULT_GROUP_NAME: &str = "group1";

/// The storage daemon's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConf {
    /// `true` makes the daemon refuse to start (the caller checks it).
    pub disabled: bool,
    /// `[A-Za-z0-9]{1,16}`; `group1` when the key is absent (see
    /// `group_name_configured`).
    pub group_name: String,
    /// False when the file has no (or an empty) `group_name`: the original
    /// then fetches the group from the tracker (needs `use_storage_id`).
    pub group_name_configured: bool,
    pub bind_addr: String,
    /// Bind outgoing connections to `bind_addr` too.
    pub client_bind: bool,
    pub port: u16,
    pub connect_timeout_secs: u64,
    pub network_timeout_secs: u64,
    pub heart_beat_interval_secs: u64,
    /// Disk usage report interval.
    pub stat_report_interval_secs: u64,
    /// Root of `data/` (binlogs, marks) and `logs/`; required in a file.
    pub base_path: PathBuf,
    /// Connection cap, thread counts, buffer sizes.
    pub net: NetConf,
    pub disk_rw_separated: bool,
    /// Per store path.
    pub disk_reader_threads: u32,
    /// Per store path.
    pub disk_writer_threads: u32,
    pub disk_recovery_threads: u32,
    pub sync_min_threads: u32,
    /// 0 means auto (2 × store_path_count, at most 256).
    pub sync_max_threads: u32,
    /// Idle wait when the binlog is exhausted.
    pub sync_wait_msec: u64,
    /// Pause after each synced file (`sync_interval`).
    pub sync_interval_msec: u64,
    /// Daily replication window start, `(hour, minute)`.
    pub sync_start_time: (u8, u8),
    /// Daily replication window end, `(hour, minute)`.
    pub sync_end_time: (u8, u8),
    /// Binlog records between mark-file writes.
    pub write_mark_file_freq: u32,
    pub store_path_count: usize,
    /// `store_path0..N-1`; `store_path0` defaults to `base_path`.
    pub store_paths: Vec<PathBuf>,
    /// `store_pathN_readonly`: no new uploads to that path.
    pub store_paths_readonly: Vec<bool>,
    /// `N` in `data/NN/NN`, 1..=256.
    pub subdir_count_per_path: u32,
    /// Required in a file; at most 16.
    pub tracker_servers: Vec<TrackerAddr>,
    pub log_level: String,
    pub allow_hosts: Vec<String>,
    /// `cluster_secret_file`, loaded (fastdfs-rs extension, off when
    /// None): storages must prove it to join a tracker and to sync to a
    /// peer (fdfs_util::cluster_secret).
    pub cluster_secret: Option<fdfs_util::cluster_secret::ClusterSecret>,
    /// Group and user to run as once the listeners are bound (empty: stay).
    pub run_by_group: String,
    pub run_by_user: String,
    /// 0 round robin, 1 hash.
    pub file_distribute_path_mode: u8,
    /// Files per directory before rotating (round robin mode).
    pub file_distribute_rotate_count: u32,
    /// 0 = never fsync.
    pub fsync_after_written_bytes: u64,
    pub sync_binlog_buff_interval_secs: u64,
    pub sync_stat_file_interval_secs: u64,
    pub thread_stack_size_bytes: u64,
    /// Lower is preferred when the tracker's `store_server` is 2.
    pub upload_priority: i32,
    /// NIC alias prefixes for local IP detection.
    pub if_alias_prefix: String,
    pub check_file_duplicate: bool,
    pub file_sync_skip_invalid_record: bool,
    pub use_connection_pool: bool,
    pub connection_pool_max_idle_time_secs: u64,
    /// Gzip consumed binlogs.
    pub compress_binlog: bool,
    /// `(hour, minute)`.
    pub compress_binlog_time: (u8, u8),
    /// Detect two storages sharing a store path.
    pub check_store_path_mark: bool,
    /// `[access-log] enabled` (falls back to the pre-6.x `use_access_log`).
    pub access_log_enabled: bool,
    /// `[access-log] time_precision`, normalised to `"ms"` or `"us"`.
    pub access_log_time_precision: String,
    /// `http.server_port`: where our HTTP gateway serves this storage's files.
    pub http_server_port: u16,
    /// Own storage id (`server_id`), empty when not set.
    pub server_id: String,
    /// Normally sent by the tracker (PARAMETER_REQ); read here if present.
    pub reserved_storage_space: ReservedSpace,
    /// Our extension: the address reported to trackers and clients instead
    /// of the auto-detected one (containers, NAT). `FASTDFS_IPADDR` wins,
    /// see [`StorageConf::apply_env_overrides`].
    pub advertise_addr: Option<String>,
}

impl Default for StorageConf {
    /// The classic single-box deployment: everything under /var/fdfs, one
    /// tracker on 127.0.0.1:22122.
    fn default() -> Self {
        StorageConf {
            disabled: false,
            group_name: DEFAULT_GROUP_NAME.to_string(),
            group_name_configured: true,
            bind_addr: String::new(),
            client_bind: true,
            port: DEFAULT_STORAGE_PORT,
            connect_timeout_secs: reader::DEFAULT_CONNECT_TIMEOUT_SECS,
            network_timeout_secs: DEFAULT_NETWORK_TIMEOUT_SECS,
            heart_beat_interval_secs: DEFAULT_HEART_BEAT_INTERVAL_SECS,
            stat_report_interval_secs: DEFAULT_STAT_REPORT_INTERVAL_SECS,
            base_path: PathBuf::from("/var/fdfs"),
            net: NetConf::default(),
            disk_rw_separated: true,
            disk_reader_threads: 1,
            disk_writer_threads: 1,
            disk_recovery_threads: 1,
            sync_min_threads: 1,
            sync_max_threads: 0,
            sync_wait_msec: DEFAULT_SYNC_WAIT_MSEC,
            sync_interval_msec: 0,
            sync_start_time: (0, 0),
            sync_end_time: (23, 59),
            write_mark_file_freq: DEFAULT_WRITE_MARK_FILE_FREQ,
            store_path_count: 1,
            store_paths: vec![PathBuf::from("/var/fdfs")],
            store_paths_readonly: vec![false],
            subdir_count_per_path: MAX_SUBDIR_COUNT_PER_PATH,
            tracker_servers: vec![TrackerAddr {
                hosts: vec!["127.0.0.1".to_string()],
                port: crate::values::DEFAULT_TRACKER_PORT,
            }],
            log_level: "info".to_string(),
            allow_hosts: vec!["*".to_string()],
            cluster_secret: None,
            run_by_group: String::new(),
            run_by_user: String::new(),
            file_distribute_path_mode: 0,
            file_distribute_rotate_count: DEFAULT_FILE_DISTRIBUTE_ROTATE_COUNT,
            fsync_after_written_bytes: 0,
            sync_binlog_buff_interval_secs: DEFAULT_SYNC_BINLOG_BUFF_INTERVAL_SECS,
            sync_stat_file_interval_secs: DEFAULT_SYNC_STAT_FILE_INTERVAL_SECS,
            thread_stack_size_bytes: DEFAULT_THREAD_STACK_SIZE_BYTES,
            upload_priority: DEFAULT_UPLOAD_PRIORITY,
            if_alias_prefix: String::new(),
            check_file_duplicate: false,
            file_sync_skip_invalid_record: false,
            use_connection_pool: false,
            connection_pool_max_idle_time_secs: reader::DEFAULT_POOL_MAX_IDLE_TIME_SECS,
            compress_binlog: false,
            compress_binlog_time: (1, 30),
            check_store_path_mark: true,
            access_log_enabled: false,
            access_log_time_precision: "ms".to_string(),
            http_server_port: DEFAULT_HTTP_SERVER_PORT,
            server_id: String::new(),
            reserved_storage_space: ReservedSpace::default(),
            advertise_addr: None,
        }
    }
}

/// Whether `key` is one storage.conf may contain (global section).
pub fn is_known_key(key: &str) -> bool {
    keys::is_server_common_key(key)
        || STORAGE_KEYS.contains(&key)
        || HTTP_SHARED_KEYS.contains(&key)
        || keys::is_store_path_key(key)
}

impl StorageConf {
    /// Loads and validates a storage.conf file. Does not apply environment
    /// overrides; call [`StorageConf::apply_env_overrides`] for that.
    pub fn load(path: &Path) -> Result<(Self, Vec<Warning>), ConfigError> {
        Self::from_ini(&IniFile::load(path)?)
    }

    /// Builds the configuration from parsed items. Malformed values are
    /// errors; unknown keys come back as warnings.
    pub fn from_ini(ini: &IniFile) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut r = Reader::new(ini);
        let d = StorageConf::default();

        let (group_name, group_name_configured) = match r.item("group_name") {
            Some(item) if !item.value.is_empty() => (reader::group_name(item)?, true),
            _ => (d.group_name.clone(), false),
        };

        let base_path = reader::read_base_path(&r)?;
        let net = NetConf::read(&r)?;
        let buff = net.buff_size_bytes;
        if buff < MIN_STORAGE_BUFF_SIZE_BYTES {
            if let Some(item) = r.item("buff_size") {
                return Err(invalid(
                    item,
                    format!("buff_size {buff} is below the minimum {MIN_STORAGE_BUFF_SIZE_BYTES}"),
                ));
            }
        }
        let thread_stack = r.bytes("thread_stack_size", d.thread_stack_size_bytes)?;
        if thread_stack < MIN_STORAGE_THREAD_STACK_SIZE_BYTES {
            if let Some(item) = r.item("thread_stack_size") {
                return Err(invalid(
                    item,
                    format!(
                        "thread_stack_size {thread_stack} is below the minimum {MIN_STORAGE_THREAD_STACK_SIZE_BYTES}"
                    ),
                ));
            }
        }

        let store_paths = reader::read_store_paths(&r, &base_path)?;
        let store_path_count = store_paths.len();
        let store_paths_readonly = (0..store_path_count)
            .map(|i| r.boolean(&format!("store_path{i}_readonly"), false))
            .collect();

        let subdir_count_per_path: u32 = r.int("subdir_count_per_path", d.subdir_count_per_path)?;
        if !(1..=MAX_SUBDIR_COUNT_PER_PATH).contains(&subdir_count_per_path) {
            if let Some(item) = r.item("subdir_count_per_path") {
                return Err(invalid(
                    item,
                    format!("subdir_count_per_path must be 1..={MAX_SUBDIR_COUNT_PER_PATH}"),
                ));
            }
        }

        let file_distribute_path_mode: u8 = r.int("file_distribute_path_mode", 0)?;
        if file_distribute_path_mode > 1 {
            if let Some(item) = r.item("file_distribute_path_mode") {
                return Err(invalid(item, "file_distribute_path_mode must be 0 or 1"));
            }
        }

        let sync_max_threads: u32 = match r.value("sync_max_threads") {
            Some(v) if v.eq_ignore_ascii_case("auto") => 0,
            _ => r.int("sync_max_threads", 0)?,
        };

        let access_enabled_item = ini.section_get("access-log", "enabled");
        let access_log_enabled = match access_enabled_item {
            Some(_) => item_bool(access_enabled_item, false),
            None => r.boolean("use_access_log", false),
        };
        let access_log_time_precision = match ini.section_get("access-log", "time_precision") {
            None => d.access_log_time_precision.clone(),
            Some(item) if item.value.is_empty() => d.access_log_time_precision.clone(),
            Some(item) => {
                let v = item.value.to_ascii_lowercase();
                match v.as_str() {
                    "ms" | "millisecond" => "ms".to_string(),
                    "us" | "microsecond" => "us".to_string(),
                    _ => {
                        return Err(invalid(
                            item,
                            format!("invalid time precision `{}` (ms or us)", item.value),
                        ))
                    }
                }
            }
        };

        let reserved_storage_space = match r.item("reserved_storage_space") {
            None => d.reserved_storage_space,
            Some(item) => parse_reserved_space(&item.value).map_err(|e| invalid(item, e.0))?,
        };

        let conf = StorageConf {
            disabled: r.boolean("disabled", false),
            group_name,
            group_name_configured,
            bind_addr: r.string("bind_addr", ""),
            client_bind: r.boolean("client_bind", d.client_bind),
            port: r.int("port", d.port)?,
            connect_timeout_secs: r.positive("connect_timeout", d.connect_timeout_secs)?,
            network_timeout_secs: r.positive("network_timeout", d.network_timeout_secs)?,
            heart_beat_interval_secs: r
                .positive("heart_beat_interval", d.heart_beat_interval_secs)?,
            stat_report_interval_secs: r
                .positive("stat_report_interval", d.stat_report_interval_secs)?,
            base_path,
            net,
            disk_rw_separated: r.boolean("disk_rw_separated", d.disk_rw_separated),
            disk_reader_threads: r.int("disk_reader_threads", d.disk_reader_threads)?,
            disk_writer_threads: r.int("disk_writer_threads", d.disk_writer_threads)?,
            disk_recovery_threads: r.positive("disk_recovery_threads", d.disk_recovery_threads)?,
            sync_min_threads: r.positive("sync_min_threads", d.sync_min_threads)?,
            sync_max_threads,
            sync_wait_msec: r.positive("sync_wait_msec", d.sync_wait_msec)?,
            sync_interval_msec: r.int("sync_interval", 0)?,
            sync_start_time: r.time("sync_start_time", d.sync_start_time)?,
            sync_end_time: r.time("sync_end_time", d.sync_end_time)?,
            write_mark_file_freq: r.positive("write_mark_file_freq", d.write_mark_file_freq)?,
            store_path_count,
            store_paths,
            store_paths_readonly,
            subdir_count_per_path,
            tracker_servers: reader::read_tracker_servers(&r)?,
            log_level: r.string("log_level", &d.log_level),
            allow_hosts: reader::read_allow_hosts(&r),
            cluster_secret: reader::read_cluster_secret(&r)?,
            run_by_group: r.string("run_by_group", ""),
            run_by_user: r.string("run_by_user", ""),
            file_distribute_path_mode,
            file_distribute_rotate_count: r.positive(
                "file_distribute_rotate_count",
                d.file_distribute_rotate_count,
            )?,
            fsync_after_written_bytes: r.bytes("fsync_after_written_bytes", 0)?,
            sync_binlog_buff_interval_secs: r.positive(
                "sync_binlog_buff_interval",
                d.sync_binlog_buff_interval_secs,
            )?,
            sync_stat_file_interval_secs: r
                .positive("sync_stat_file_interval", d.sync_stat_file_interval_secs)?,
            thread_stack_size_bytes: thread_stack,
            upload_priority: r.int("upload_priority", d.upload_priority)?,
            if_alias_prefix: r.string("if_alias_prefix", ""),
            check_file_duplicate: r.boolean("check_file_duplicate", false),
            file_sync_skip_invalid_record: r.boolean("file_sync_skip_invalid_record", false),
            use_connection_pool: r.boolean("use_connection_pool", false),
            connection_pool_max_idle_time_secs: r.positive(
                "connection_pool_max_idle_time",
                d.connection_pool_max_idle_time_secs,
            )?,
            compress_binlog: r.boolean("compress_binlog", false),
            compress_binlog_time: r.time("compress_binlog_time", d.compress_binlog_time)?,
            check_store_path_mark: r.boolean("check_store_path_mark", d.check_store_path_mark),
            access_log_enabled,
            access_log_time_precision,
            http_server_port: r.int("http.server_port", d.http_server_port)?,
            server_id: r.string("server_id", ""),
            reserved_storage_space,
            advertise_addr: r.value("advertise_addr").map(str::to_string),
        };

        let mut warnings = keys::unknown_key_warnings(ini, is_known_key);
        warnings.append(&mut r.warnings);
        Ok((conf, warnings))
    }

    /// Sets `advertise_addr` from `FASTDFS_IPADDR` when that is set and not
    /// empty: the environment overrides the file.
    pub fn apply_env_overrides(&mut self) {
        if let Ok(v) = std::env::var(ENV_ADVERTISE_ADDR) {
            let v = v.trim();
            if !v.is_empty() {
                self.advertise_addr = Some(v.to_string());
            }
        }
    }

    /// Maximum package size after the libserverframe buffer rule (§10.2).
    pub fn max_pkg_size_bytes(&self) -> u64 {
        self.net.max_pkg_size_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "base_path=/data\ntracker_server=127.0.0.1:22122\n";

    fn parse(text: &str) -> Result<(StorageConf, Vec<Warning>), ConfigError> {
        StorageConf::from_ini(&IniFile::parse_str(text, Path::new("storage.conf"))?)
    }

    #[test]
    fn sample_file_loads_without_warnings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/storage.conf");
        let (conf, warnings) = StorageConf::load(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(conf.port, 23000);
        assert_eq!(conf.group_name, "group1");
        assert!(conf.group_name_configured);
        assert_eq!(conf.base_path, PathBuf::from("/var/fdfs"));
        assert_eq!(conf.store_paths, [PathBuf::from("/var/fdfs")]);
        assert_eq!(conf.tracker_servers.len(), 1);
        assert_eq!(conf.tracker_servers[0].to_string(), "127.0.0.1:22122");
        assert_eq!(conf.http_server_port, 8888);
        assert_eq!(conf.advertise_addr, None);
    }

    #[test]
    fn minimal_file_gets_code_defaults() {
        let (conf, warnings) = parse(MINIMAL).unwrap();
        assert!(warnings.is_empty());
        let expected = StorageConf {
            base_path: "/data".into(),
            store_paths: vec!["/data".into()],
            group_name_configured: false,
            ..StorageConf::default()
        };
        assert_eq!(conf, expected);
    }

    #[test]
    fn required_keys() {
        let err = parse("base_path=/data\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "storage.conf: missing required key `tracker_server`"
        );
        assert!(parse("tracker_server=a:1\n").is_err());
    }

    #[test]
    fn repeated_tracker_server() {
        let (c, _) = parse(
            "base_path=/d\ntracker_server=10.0.0.1:22122\ntracker_server = 10.0.0.2:22122\ntracker_server=[::1]:22122\n",
        )
        .unwrap();
        let addrs: Vec<String> = c.tracker_servers.iter().map(|t| t.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:22122", "10.0.0.2:22122", "[::1]:22122"]);

        let many: String = (0..17)
            .map(|i| format!("tracker_server=10.0.0.{i}:22122\n"))
            .collect();
        let err = parse(&format!("base_path=/d\n{many}")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("storage.conf:18: key `tracker_server`"),
            "{err}"
        );

        let err = parse("base_path=/d\ntracker_server=::1:22122\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("storage.conf:2: key `tracker_server`"),
            "{err}"
        );
    }

    #[test]
    fn store_paths() {
        let (c, _) = parse(&format!(
            "{MINIMAL}store_path_count=3\nstore_path0=/d0/\nstore_path1=/d1\nstore_path2=/d2\nstore_path1_readonly=true\n"
        ))
        .unwrap();
        assert_eq!(
            c.store_paths,
            [PathBuf::from("/d0"), "/d1".into(), "/d2".into()]
        );
        assert_eq!(c.store_paths_readonly, [false, true, false]);

        let err = parse(&format!("{MINIMAL}store_path_count=2\nstore_path0=/d0\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "storage.conf: missing required key `store_path1`"
        );
        assert!(parse(&format!("{MINIMAL}store_path_count=0\n")).is_err());
        assert!(parse(&format!("{MINIMAL}subdir_count_per_path=257\n")).is_err());
    }

    #[test]
    fn group_name_validation() {
        let err = parse(&format!("{MINIMAL}group_name=group_1\n")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("storage.conf:3: key `group_name`"),
            "{err}"
        );
        let (c, _) = parse(&format!("{MINIMAL}group_name=\n")).unwrap();
        assert!(!c.group_name_configured);
    }

    #[test]
    fn sizes_times_and_sections() {
        let (c, w) = parse(&format!(
            "{MINIMAL}buff_size=512KB\nthread_stack_size = 1M\nfsync_after_written_bytes=64k\nsync_start_time=01:30\nsync_end_time=22:00:59\n[access-log]\nenabled=yes\ntime_precision=microsecond\n"
        ))
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.net.buff_size_bytes, 512 * 1024);
        assert_eq!(c.thread_stack_size_bytes, 1 << 20);
        assert_eq!(c.fsync_after_written_bytes, 64 * 1024);
        assert_eq!(c.sync_start_time, (1, 30));
        assert_eq!(c.sync_end_time, (22, 0));
        assert!(c.access_log_enabled);
        assert_eq!(c.access_log_time_precision, "us");

        assert!(parse(&format!("{MINIMAL}buff_size=8KB\n")).is_err());
        assert!(parse(&format!("{MINIMAL}thread_stack_size=256KB\n")).is_err());
        assert!(parse(&format!("{MINIMAL}sync_start_time=25:00\n")).is_err());
        assert!(parse(&format!("{MINIMAL}[access-log]\ntime_precision=ns\n")).is_err());
    }

    #[test]
    fn values_keep_hash_characters() {
        let (c, _) = parse(&format!(
            "{MINIMAL}if_alias_prefix=eth # nic\nserver_id=#1\n"
        ))
        .unwrap();
        assert_eq!(c.if_alias_prefix, "eth # nic");
        assert_eq!(c.server_id, "#1");
    }

    #[test]
    fn unknown_keys_warn_in_global_and_log_sections() {
        let (_, w) = parse(&format!(
            "{MINIMAL}store_path0_readonly=false\nstorepath0=/x\n[access-log]\nenable=true\n[fastdht]\nwhatever=1\n"
        ))
        .unwrap();
        let msgs: Vec<String> = w.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "storage.conf:4: unknown key `storepath0` ignored",
                "storage.conf:6: unknown key `enable` ignored"
            ]
        );
    }

    /// The only test that touches the process environment.
    #[test]
    fn fastdfs_ipaddr_overrides_advertise_addr() {
        let (mut c, _) = parse(&format!("{MINIMAL}advertise_addr=10.1.1.1\n")).unwrap();
        assert_eq!(c.advertise_addr.as_deref(), Some("10.1.1.1"));

        std::env::remove_var(ENV_ADVERTISE_ADDR);
        c.apply_env_overrides();
        assert_eq!(c.advertise_addr.as_deref(), Some("10.1.1.1"));

        std::env::set_var(ENV_ADVERTISE_ADDR, "");
        c.apply_env_overrides();
        assert_eq!(c.advertise_addr.as_deref(), Some("10.1.1.1"));

        std::env::set_var(ENV_ADVERTISE_ADDR, "203.0.113.7");
        c.apply_env_overrides();
        assert_eq!(c.advertise_addr.as_deref(), Some("203.0.113.7"));

        let (mut c, _) = parse(MINIMAL).unwrap();
        assert_eq!(c.advertise_addr, None);
        c.apply_env_overrides();
        assert_eq!(c.advertise_addr.as_deref(), Some("203.0.113.7"));
        std::env::remove_var(ENV_ADVERTISE_ADDR);
    }
}
