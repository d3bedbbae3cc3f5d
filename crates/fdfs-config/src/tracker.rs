//! `tracker.conf` (PROTOCOL.md §10.2, §10.3): the typed tracker
//! configuration with the original's code defaults and load-time adjustments
//! (trunk slot caps, store_server forced by trunk mode, ...).

use std::path::{Path, PathBuf};

use crate::ini::IniFile;
use crate::keys::{self, HTTP_SHARED_KEYS, TRACKER_KEYS};
use crate::reader::{self, invalid, Reader};
use crate::values::{parse_reserved_space, ReservedSpace, DEFAULT_TRACKER_PORT};
use crate::{ConfigError, NetConf, Warning};
use fdfs_util::HostList;

/// `store_lookup`: rotate over groups.
pub const STORE_LOOKUP_ROUND_ROBIN: u8 = 0;
/// `store_lookup`: always `store_group`.
pub const STORE_LOOKUP_SPEC_GROUP: u8 = 1;
/// `store_lookup`: the group with the most free space.
pub const STORE_LOOKUP_LOAD_BALANCE: u8 = 2;
/// `store_server`: rotate over storages.
pub const STORE_SERVER_ROUND_ROBIN: u8 = 0;
/// `store_server`: first storage by id / IP order.
pub const STORE_SERVER_FIRST_BY_IP: u8 = 1;
/// `store_server`: lowest `upload_priority`.
pub const STORE_SERVER_FIRST_BY_PRI: u8 = 2;
/// `store_path`: rotate over store paths.
pub const STORE_PATH_ROUND_ROBIN: u8 = 0;
/// `store_path`: the path with the most free space.
pub const STORE_PATH_LOAD_BALANCE: u8 = 2;
/// `download_server`: rotate over storages.
pub const DOWNLOAD_SERVER_ROUND_ROBIN: u8 = 0;
/// `download_server`: the storage the file was uploaded to, first.
pub const DOWNLOAD_SERVER_SOURCE_FIRST: u8 = 1;

/// IP field width `W` for IPv4-only clusters (§2.0).
pub const RESPONSE_IP_ADDR_SIZE_V4: u8 = 16;
/// IP field width `W` when IPv6 is in use (§2.0).
pub const RESPONSE_IP_ADDR_SIZE_V6: u8 = 46;

/// Largest `slot_min_size` the tracker accepts; bigger values are capped.
pub const MAX_SLOT_MIN_SIZE_BYTES: u64 = 64 * 1024;
/// Smallest `trunk_file_size`; smaller values are raised.
pub const MIN_TRUNK_FILE_SIZE_BYTES: u64 = 4 * 1024 * 1024;

const DEFAULT_THREAD_STACK_SIZE_BYTES: u64 = 256 * 1024;
const DEFAULT_NETWORK_TIMEOUT_SECS: u64 = 60;
const DEFAULT_CHECK_ACTIVE_INTERVAL_SECS: u64 = 100;
const DEFAULT_SYNC_FILE_MAX_DELAY_SECS: u64 = 86_400;
const DEFAULT_SYNC_FILE_MAX_TIME_SECS: u64 = 300;
const DEFAULT_SLOT_MIN_SIZE_BYTES: u64 = 256;
const DEFAULT_TRUNK_FILE_SIZE_BYTES: u64 = 64 * 1024 * 1024;
const DEFAULT_TRUNK_CREATE_FILE_INTERVAL_SECS: u64 = 86_400;
const DEFAULT_HTTP_SERVER_PORT: u16 = 8080;

/// The tracker daemon's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConf {
    /// `true` makes the daemon refuse to start (the caller checks it).
    pub disabled: bool,
    /// Listen address(es), comma separated; empty means all addresses.
    pub bind_addr: String,
    pub port: u16,
    /// Root of `data/` and `logs/`; required in a file.
    pub base_path: PathBuf,
    pub connect_timeout_secs: u64,
    pub network_timeout_secs: u64,
    /// Connection cap, thread counts, buffer sizes.
    pub net: NetConf,
    pub thread_stack_size_bytes: u64,
    pub log_level: String,
    /// Client allow list entries as written (`*`, CIDR, ranges).
    pub allow_hosts: Vec<String>,
    /// `cluster_secret_file`, loaded (fastdfs-rs extension, off when
    /// None): storages must prove it to join a tracker and to sync to a
    /// peer (fdfs_util::cluster_secret).
    pub cluster_secret: Option<fdfs_util::cluster_secret::ClusterSecret>,
    /// Group and user to run as once the listener is bound (empty: stay).
    pub run_by_group: String,
    pub run_by_user: String,
    /// Group choice for uploads: see the `STORE_LOOKUP_*` constants.
    pub store_lookup: u8,
    /// Group used when `store_lookup` is 1 (validated only then).
    pub store_group: String,
    /// Storage choice: `STORE_SERVER_*`; forced to 1 when trunks are on and it was 0.
    pub store_server: u8,
    /// Store path choice: `STORE_PATH_*`.
    pub store_path: u8,
    /// Download source choice: `DOWNLOAD_SERVER_*`.
    pub download_server: u8,
    pub reserved_storage_space: ReservedSpace,
    /// An ACTIVE storage silent for longer than this goes OFFLINE.
    pub check_active_interval_secs: u64,
    pub storage_ip_changed_auto_adjust: bool,
    /// Files older than this are assumed replicated everywhere.
    pub storage_sync_file_max_delay_secs: u64,
    pub storage_sync_file_max_time_secs: u64,
    pub use_trunk_file: bool,
    /// Smallest trunk slot, bytes (after the 64KB cap and alignment raise).
    pub slot_min_size: u64,
    /// Files with `24 + size <= slot_max_size` bytes go to trunks.
    pub slot_max_size: u64,
    /// Size of one trunk file, bytes (at least 4MB).
    pub trunk_file_size: u64,
    pub trunk_alloc_alignment_size_bytes: u64,
    pub trunk_free_space_merge: bool,
    pub delete_unused_trunk_files: bool,
    pub trunk_create_file_advance: bool,
    /// `(hour, minute)`.
    pub trunk_create_file_time_base: (u8, u8),
    pub trunk_create_file_interval_secs: u64,
    pub trunk_create_file_space_threshold_bytes: u64,
    pub trunk_init_check_occupying: bool,
    pub trunk_init_reload_from_binlog: bool,
    pub trunk_compress_binlog_min_interval_secs: u64,
    pub trunk_compress_binlog_interval_secs: u64,
    /// `(hour, minute)`.
    pub trunk_compress_binlog_time_base: (u8, u8),
    pub trunk_binlog_max_backups: u32,
    /// Identify storages by id from storage_ids.conf.
    pub use_storage_id: bool,
    /// As written; relative to the tracker.conf directory (see
    /// [`TrackerConf::storage_ids_path`]). Required when `use_storage_id`.
    pub storage_ids_filename: String,
    /// `"id"` or `"ip"`; always `"ip"` unless `use_storage_id` (the key is
    /// only read then, §10.3).
    pub id_type_in_filename: String,
    pub trust_storage_server_id: bool,
    /// `trusted_storage_addrs` (our key): addresses a storage may announce
    /// as its own in IP mode while its connection comes from elsewhere.
    pub trusted_storage_addrs: HostList,
    /// Not a conf key: `fdfs server` names its own storage here, which
    /// connects from `source` and advertises `advertised`. That claim is
    /// accepted from that source only, so no other host can take the
    /// address while the embedded storage has not joined yet.
    pub embedded_storage: Option<EmbeddedStorage>,
    pub store_slave_file_use_link: bool,
    pub use_connection_pool: bool,
    pub connection_pool_max_idle_time_secs: u64,
    /// 16, or 46 for any explicit value other than `auto`. `auto`/absent
    /// gives 16; the caller upgrades to 46 when storage_ids has IPv6.
    pub response_ip_addr_size: u8,
    /// `http.server_port`.
    pub http_server_port: u16,
}

impl Default for TrackerConf {
    /// The classic single-box deployment: code defaults with base_path /var/fdfs.
    fn default() -> Self {
        TrackerConf {
            disabled: false,
            bind_addr: String::new(),
            port: DEFAULT_TRACKER_PORT,
            base_path: PathBuf::from("/var/fdfs"),
            connect_timeout_secs: reader::DEFAULT_CONNECT_TIMEOUT_SECS,
            network_timeout_secs: DEFAULT_NETWORK_TIMEOUT_SECS,
            net: NetConf::default(),
            thread_stack_size_bytes: DEFAULT_THREAD_STACK_SIZE_BYTES,
            log_level: "info".to_string(),
            allow_hosts: vec!["*".to_string()],
            cluster_secret: None,
            run_by_group: String::new(),
            run_by_user: String::new(),
            store_lookup: STORE_LOOKUP_ROUND_ROBIN,
            store_group: String::new(),
            store_server: STORE_SERVER_ROUND_ROBIN,
            store_path: STORE_PATH_ROUND_ROBIN,
            download_server: DOWNLOAD_SERVER_ROUND_ROBIN,
            reserved_storage_space: ReservedSpace::default(),
            check_active_interval_secs: DEFAULT_CHECK_ACTIVE_INTERVAL_SECS,
            storage_ip_changed_auto_adjust: true,
            storage_sync_file_max_delay_secs: DEFAULT_SYNC_FILE_MAX_DELAY_SECS,
            storage_sync_file_max_time_secs: DEFAULT_SYNC_FILE_MAX_TIME_SECS,
            use_trunk_file: false,
            slot_min_size: DEFAULT_SLOT_MIN_SIZE_BYTES,
            slot_max_size: DEFAULT_TRUNK_FILE_SIZE_BYTES / 8,
            trunk_file_size: DEFAULT_TRUNK_FILE_SIZE_BYTES,
            trunk_alloc_alignment_size_bytes: 0,
            trunk_free_space_merge: false,
            delete_unused_trunk_files: false,
            trunk_create_file_advance: false,
            trunk_create_file_time_base: (2, 0),
            trunk_create_file_interval_secs: DEFAULT_TRUNK_CREATE_FILE_INTERVAL_SECS,
            trunk_create_file_space_threshold_bytes: 0,
            trunk_init_check_occupying: false,
            trunk_init_reload_from_binlog: false,
            trunk_compress_binlog_min_interval_secs: 0,
            trunk_compress_binlog_interval_secs: 0,
            trunk_compress_binlog_time_base: (3, 0),
            trunk_binlog_max_backups: 0,
            use_storage_id: false,
            storage_ids_filename: String::new(),
            id_type_in_filename: "ip".to_string(),
            trust_storage_server_id: true,
            trusted_storage_addrs: HostList::none(),
            embedded_storage: None,
            store_slave_file_use_link: false,
            use_connection_pool: false,
            connection_pool_max_idle_time_secs: reader::DEFAULT_POOL_MAX_IDLE_TIME_SECS,
            response_ip_addr_size: RESPONSE_IP_ADDR_SIZE_V4,
            http_server_port: DEFAULT_HTTP_SERVER_PORT,
        }
    }
}

/// Whether `key` is one tracker.conf may contain.
pub fn is_known_key(key: &str) -> bool {
    keys::is_server_common_key(key)
        || TRACKER_KEYS.contains(&key)
        || HTTP_SHARED_KEYS.contains(&key)
}

impl TrackerConf {
    /// Loads and validates a tracker.conf file.
    pub fn load(path: &Path) -> Result<(Self, Vec<Warning>), ConfigError> {
        Self::from_ini(&IniFile::load(path)?)
    }

    /// Builds the configuration from parsed items. Malformed values are
    /// errors; unknown keys and adjusted values come back as warnings.
    pub fn from_ini(ini: &IniFile) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut r = Reader::new(ini);
        let d = TrackerConf::default();
        let net = NetConf::read(&r)?;

        let store_lookup: u8 = r.int("store_lookup", d.store_lookup)?;
        let mut store_group = String::new();
        match store_lookup {
            STORE_LOOKUP_ROUND_ROBIN | STORE_LOOKUP_LOAD_BALANCE => {}
            STORE_LOOKUP_SPEC_GROUP => {
                let Some(item) = r.item("store_group") else {
                    return Err(r.missing("store_group"));
                };
                store_group = reader::group_name(item)?;
            }
            other => {
                let item = r
                    .item("store_lookup")
                    .ok_or_else(|| r.missing("store_lookup"))?;
                return Err(invalid(
                    item,
                    format!("invalid value {other}, expected 0, 1 or 2"),
                ));
            }
        }

        let mut store_server: u8 = r.int("store_server", d.store_server)?;
        if store_server > STORE_SERVER_FIRST_BY_PRI {
            r.warn(
                "store_server",
                format!("store_server {store_server} is invalid, using 0 (round robin)"),
            );
            store_server = STORE_SERVER_ROUND_ROBIN;
        }
        let mut download_server: u8 = r.int("download_server", d.download_server)?;
        if download_server > DOWNLOAD_SERVER_SOURCE_FIRST {
            r.warn(
                "download_server",
                format!("download_server {download_server} is invalid, using 0 (round robin)"),
            );
            download_server = DOWNLOAD_SERVER_ROUND_ROBIN;
        }
        let mut store_path: u8 = r.int("store_path", d.store_path)?;
        if store_path != STORE_PATH_ROUND_ROBIN && store_path != STORE_PATH_LOAD_BALANCE {
            r.warn(
                "store_path",
                format!("store_path {store_path} is invalid, using 0 (round robin)"),
            );
            store_path = STORE_PATH_ROUND_ROBIN;
        }

        let reserved_storage_space = match r.item("reserved_storage_space") {
            None => d.reserved_storage_space,
            Some(item) => parse_reserved_space(&item.value).map_err(|e| invalid(item, e.0))?,
        };

        let use_trunk_file = r.boolean("use_trunk_file", d.use_trunk_file);
        let (slot_min_size, slot_max_size, trunk_file_size, alignment) = read_trunk_sizes(&mut r)?;
        if use_trunk_file && store_server == STORE_SERVER_ROUND_ROBIN {
            // The original forces this so one trunk server per group serves uploads.
            store_server = STORE_SERVER_FIRST_BY_IP;
        }

        let use_storage_id = r.boolean("use_storage_id", d.use_storage_id);
        let storage_ids_filename = r.string("storage_ids_filename", "");
        let id_type_in_filename = if use_storage_id {
            if storage_ids_filename.is_empty() {
                return Err(r.missing("storage_ids_filename"));
            }
            match r.value("id_type_in_filename") {
                Some(v) if v.eq_ignore_ascii_case("id") => "id",
                _ => "ip",
            }
        } else {
            "ip"
        };

        let response_ip_addr_size = match r.value("response_ip_addr_size") {
            None => RESPONSE_IP_ADDR_SIZE_V4,
            Some(v) if v.eq_ignore_ascii_case("auto") => RESPONSE_IP_ADDR_SIZE_V4,
            // [QUIRK] any explicit value, even `IPv4`, selects the wide field.
            Some(_) => RESPONSE_IP_ADDR_SIZE_V6,
        };

        let conf = TrackerConf {
            disabled: r.boolean("disabled", d.disabled),
            bind_addr: r.string("bind_addr", ""),
            port: r.int("port", d.port)?,
            base_path: reader::read_base_path(&r)?,
            connect_timeout_secs: r.positive("connect_timeout", d.connect_timeout_secs)?,
            network_timeout_secs: r.positive("network_timeout", d.network_timeout_secs)?,
            net,
            thread_stack_size_bytes: r.bytes("thread_stack_size", d.thread_stack_size_bytes)?,
            log_level: r.string("log_level", &d.log_level),
            allow_hosts: reader::read_allow_hosts(&r),
            cluster_secret: reader::read_cluster_secret(&r)?,
            run_by_group: r.string("run_by_group", ""),
            run_by_user: r.string("run_by_user", ""),
            store_lookup,
            store_group,
            store_server,
            store_path,
            download_server,
            reserved_storage_space,
            check_active_interval_secs: r
                .positive("check_active_interval", d.check_active_interval_secs)?,
            storage_ip_changed_auto_adjust: r.boolean(
                "storage_ip_changed_auto_adjust",
                d.storage_ip_changed_auto_adjust,
            ),
            storage_sync_file_max_delay_secs: r.positive(
                "storage_sync_file_max_delay",
                d.storage_sync_file_max_delay_secs,
            )?,
            storage_sync_file_max_time_secs: r.positive(
                "storage_sync_file_max_time",
                d.storage_sync_file_max_time_secs,
            )?,
            use_trunk_file,
            slot_min_size,
            slot_max_size,
            trunk_file_size,
            trunk_alloc_alignment_size_bytes: alignment,
            trunk_free_space_merge: r.boolean("trunk_free_space_merge", false),
            delete_unused_trunk_files: r.boolean("delete_unused_trunk_files", false),
            trunk_create_file_advance: r.boolean("trunk_create_file_advance", false),
            trunk_create_file_time_base: r
                .time("trunk_create_file_time_base", d.trunk_create_file_time_base)?,
            trunk_create_file_interval_secs: r.int(
                "trunk_create_file_interval",
                d.trunk_create_file_interval_secs,
            )?,
            trunk_create_file_space_threshold_bytes: r
                .bytes("trunk_create_file_space_threshold", 0)?,
            trunk_init_check_occupying: r.boolean("trunk_init_check_occupying", false),
            trunk_init_reload_from_binlog: r.boolean("trunk_init_reload_from_binlog", false),
            trunk_compress_binlog_min_interval_secs: r
                .int("trunk_compress_binlog_min_interval", 0)?,
            trunk_compress_binlog_interval_secs: r.int("trunk_compress_binlog_interval", 0)?,
            trunk_compress_binlog_time_base: r.time(
                "trunk_compress_binlog_time_base",
                d.trunk_compress_binlog_time_base,
            )?,
            trunk_binlog_max_backups: r.int("trunk_binlog_max_backups", 0)?,
            use_storage_id,
            storage_ids_filename,
            id_type_in_filename: id_type_in_filename.to_string(),
            trust_storage_server_id: r
                .boolean("trust_storage_server_id", d.trust_storage_server_id),
            trusted_storage_addrs: read_trusted_addrs(&mut r)?,
            embedded_storage: None,
            store_slave_file_use_link: r.boolean("store_slave_file_use_link", false),
            use_connection_pool: r.boolean("use_connection_pool", false),
            connection_pool_max_idle_time_secs: r.positive(
                "connection_pool_max_idle_time",
                d.connection_pool_max_idle_time_secs,
            )?,
            response_ip_addr_size,
            http_server_port: r.int("http.server_port", d.http_server_port)?,
        };

        let mut warnings = keys::unknown_key_warnings(ini, is_known_key);
        warnings.append(&mut r.warnings);
        Ok((conf, warnings))
    }

    /// Maximum package size after the libserverframe rule (§10.2).
    pub fn max_pkg_size_bytes(&self) -> u64 {
        self.net.max_pkg_size_bytes()
    }

    /// Where storage_ids.conf lives: `storage_ids_filename` resolved against
    /// the directory of the tracker.conf at `conf_path`.
    pub fn storage_ids_path(&self, conf_path: &Path) -> PathBuf {
        let name = Path::new(&self.storage_ids_filename);
        if name.is_absolute() {
            name.to_path_buf()
        } else {
            conf_path
                .parent()
                .unwrap_or_else(|| Path::new(""))
                .join(name)
        }
    }
}

/// The storage that `fdfs server` runs next to its tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedStorage {
    /// The address its tracker connection comes from.
    pub source: std::net::IpAddr,
    /// The address it advertises (`--advertise`, FASTDFS_IPADDR).
    pub advertised: std::net::IpAddr,
}

/// Key of [`TrackerConf::trusted_storage_addrs`].
pub const TRUSTED_STORAGE_ADDRS_KEY: &str = "trusted_storage_addrs";

/// `trusted_storage_addrs`, in the syntax of `allow_hosts` (repeatable;
/// addresses, names, CIDR, ranges, `*`); absent: nobody.
fn read_trusted_addrs(r: &mut Reader<'_>) -> Result<HostList, ConfigError> {
    let items = r.ini.get_all(TRUSTED_STORAGE_ADDRS_KEY);
    // Syntax first, line by line, so an error names its own line.
    for item in &items {
        HostList::parse_with(std::slice::from_ref(&item.value), |_| None)
            .map_err(|e| invalid(item, e.0))?;
    }
    let entries: Vec<String> = items.iter().map(|i| i.value.clone()).collect();
    let (list, warnings) = HostList::load(&entries).map_err(|e| ConfigError::Other(e.0))?;
    for w in warnings {
        r.warn(TRUSTED_STORAGE_ADDRS_KEY, w);
    }
    Ok(list)
}

/// `(slot_min_size, slot_max_size, trunk_file_size, alignment)` with the
/// tracker's caps, in the original's order of checks.
fn read_trunk_sizes(r: &mut Reader<'_>) -> Result<(u64, u64, u64, u64), ConfigError> {
    let mut slot_min = r.bytes("slot_min_size", DEFAULT_SLOT_MIN_SIZE_BYTES)?;
    if slot_min == 0 {
        if let Some(item) = r.item("slot_min_size") {
            return Err(invalid(item, "slot_min_size must be > 0"));
        }
    }
    if slot_min > MAX_SLOT_MIN_SIZE_BYTES {
        r.warn(
            "slot_min_size",
            format!("slot_min_size {slot_min} is too large, using {MAX_SLOT_MIN_SIZE_BYTES}"),
        );
        slot_min = MAX_SLOT_MIN_SIZE_BYTES;
    }
    let mut trunk_file_size = r.bytes("trunk_file_size", DEFAULT_TRUNK_FILE_SIZE_BYTES)?;
    if trunk_file_size < MIN_TRUNK_FILE_SIZE_BYTES {
        r.warn(
            "trunk_file_size",
            format!(
                "trunk_file_size {trunk_file_size} is too small, using {MIN_TRUNK_FILE_SIZE_BYTES}"
            ),
        );
        trunk_file_size = MIN_TRUNK_FILE_SIZE_BYTES;
    }
    let mut slot_max = r.bytes("slot_max_size", trunk_file_size / 8)?;
    if slot_max <= slot_min {
        let msg = format!("slot_max_size {slot_max} must be > slot_min_size {slot_min}");
        return Err(match r.item("slot_max_size") {
            Some(item) => invalid(item, msg),
            None => ConfigError::Other(format!("{}: {msg}", r.file)),
        });
    }
    if slot_max > trunk_file_size / 2 {
        r.warn(
            "slot_max_size",
            format!(
                "slot_max_size {slot_max} is too large, using {}",
                trunk_file_size / 2
            ),
        );
        slot_max = trunk_file_size / 2;
    }
    let alignment: u64 = r.int("trunk_alloc_alignment_size", 0)?;
    if slot_min < alignment {
        r.warn(
            "slot_min_size",
            format!(
                "slot_min_size {slot_min} is below trunk_alloc_alignment_size, using {alignment}"
            ),
        );
        slot_min = alignment;
    }
    Ok((slot_min, slot_max, trunk_file_size, alignment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(TrackerConf, Vec<Warning>), ConfigError> {
        TrackerConf::from_ini(&IniFile::parse_str(text, Path::new("tracker.conf"))?)
    }

    #[test]
    fn cluster_secret_file_is_read_next_to_the_conf_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("tracker.conf");
        std::fs::write(dir.path().join("secret"), "sixteen bytes or more\n").unwrap();
        std::fs::write(dir.path().join("short"), "too short\n").unwrap();
        let load = |key: &str| {
            std::fs::write(&conf, format!("base_path=/x\n{key}\n")).unwrap();
            TrackerConf::load(&conf)
        };
        assert_eq!(load("").unwrap().0.cluster_secret, None, "off by default");
        let (c, warnings) = load("cluster_secret_file = secret").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            c.cluster_secret,
            Some(
                fdfs_util::cluster_secret::ClusterSecret::from_bytes(b"sixteen bytes or more")
                    .unwrap()
            )
        );
        let err = load("cluster_secret_file = short").unwrap_err().to_string();
        assert!(err.contains("at least 16"), "{err}");
        let err = load("cluster_secret_file = missing")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster_secret_file"), "{err}");
    }

    #[test]
    fn sample_file_loads_without_warnings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/tracker.conf");
        let (conf, warnings) = TrackerConf::load(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(conf.port, 22122);
        assert_eq!(conf.base_path, PathBuf::from("/var/fdfs"));
        assert_eq!(conf.http_server_port, 8080);
        assert!(!conf.disabled);
        // The classic sample's 8KB/128KB buffers with a 256KB package size.
        assert_eq!(conf.net.min_buff_size_bytes, 8 * 1024);
        assert_eq!(conf.net.max_buff_size_bytes, 128 * 1024);
        assert_eq!(conf.max_pkg_size_bytes(), 256 * 1024);
    }

    #[test]
    fn minimal_file_gets_code_defaults() {
        let (conf, warnings) = parse("base_path=/var/fdfs\n").unwrap();
        assert!(warnings.is_empty());
        assert_eq!(conf, TrackerConf::default());
    }

    #[test]
    fn base_path_is_required() {
        let err = parse("port=22122\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tracker.conf: missing required key `base_path`"
        );
    }

    #[test]
    fn malformed_value_names_file_line_and_key() {
        let err = parse("base_path=/x\n\nport = abc\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tracker.conf:3: key `port`: invalid integer `abc`"
        );
        let err = parse("base_path=/x\nbuff_size=-1\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("tracker.conf:2: key `buff_size`"),
            "{err}"
        );
        let err = parse("base_path=/x\nport=70000\n").unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let err = parse("base_path=/x\nreserved_storage_space=150%\n").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("tracker.conf:2: key `reserved_storage_space`"));
    }

    #[test]
    fn trailing_junk_after_number_is_accepted() {
        let (conf, _) = parse("base_path=/x\nport = 22123 # x\n").unwrap();
        assert_eq!(conf.port, 22123);
    }

    #[test]
    fn unknown_key_is_a_warning() {
        let (_, warnings) =
            parse("base_path=/x\nprot=1\n[error-log]\nbogus=1\n[other]\nany=1\n").unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(
            warnings[0].to_string(),
            "tracker.conf:2: unknown key `prot` ignored"
        );
        assert_eq!(warnings[0].key, "prot");
        assert_eq!(warnings[1].line, 4);
    }

    #[test]
    fn buffer_rule() {
        let (c, _) = parse("base_path=/x\nmin_buff_size=8KB\nmax_buff_size=128KB\n").unwrap();
        assert_eq!(
            (c.net.buff_size_bytes, c.max_pkg_size_bytes()),
            (256 * 1024, 256 * 1024)
        );
        // Only one of the pair: both follow buff_size.
        let (c, _) = parse("base_path=/x\nbuff_size=64KB\nmax_buff_size=1MB\n").unwrap();
        assert_eq!(
            (c.net.min_buff_size_bytes, c.net.max_buff_size_bytes),
            (64 * 1024, 64 * 1024)
        );
        assert_eq!(c.max_pkg_size_bytes(), 64 * 1024);
        // Both present and max above buff_size raises the package size.
        let (c, _) =
            parse("base_path=/x\nbuff_size=64KB\nmin_buff_size=8K\nmax_buff_size=1MB\n").unwrap();
        assert_eq!(c.max_pkg_size_bytes(), 1 << 20);
    }

    #[test]
    fn reserved_space_and_selection_keys() {
        let (c, w) = parse(
            "base_path=/x\nreserved_storage_space=20%\nstore_lookup=1\nstore_group=group2\nstore_server=7\nstore_path=1\n",
        )
        .unwrap();
        assert_eq!(c.reserved_storage_space, ReservedSpace::Ratio(0.20));
        assert_eq!(c.reserved_storage_space.to_param_string(), "20.00%");
        assert_eq!(c.store_lookup, 1);
        assert_eq!(c.store_group, "group2");
        assert_eq!(c.store_server, 0);
        assert_eq!(c.store_path, 0);
        assert_eq!(w.len(), 2, "{w:?}");

        assert!(parse("base_path=/x\nstore_lookup=1\n").is_err());
        assert!(parse("base_path=/x\nstore_lookup=1\nstore_group=bad-name\n").is_err());
        assert!(parse("base_path=/x\nstore_lookup=3\n").is_err());
        // store_group is ignored unless store_lookup is 1.
        let (c, _) = parse("base_path=/x\nstore_lookup=2\nstore_group=bad-name\n").unwrap();
        assert_eq!(c.store_group, "");
    }

    #[test]
    fn trunk_rules() {
        let (c, _) = parse("base_path=/x\nuse_trunk_file=true\n").unwrap();
        assert_eq!(c.store_server, STORE_SERVER_FIRST_BY_IP);
        assert_eq!(c.slot_max_size, 8 << 20);
        let (c, w) = parse(
            "base_path=/x\nslot_min_size=128K\ntrunk_file_size=1M\nslot_max_size=16MB\ntrunk_alloc_alignment_size=256\n",
        )
        .unwrap();
        assert_eq!(c.slot_min_size, 64 * 1024);
        assert_eq!(c.trunk_file_size, 4 << 20);
        assert_eq!(c.slot_max_size, 2 << 20);
        assert_eq!(w.len(), 3, "{w:?}");
        let (c, _) =
            parse("base_path=/x\nslot_min_size=100\ntrunk_alloc_alignment_size=512\n").unwrap();
        assert_eq!(c.slot_min_size, 512);
        assert!(parse("base_path=/x\nslot_min_size=4K\nslot_max_size=4K\n").is_err());
        assert!(parse("base_path=/x\nslot_min_size=0\n").is_err());
    }

    #[test]
    fn storage_id_and_ip_size_quirks() {
        let (c, _) = parse("base_path=/x\nid_type_in_filename=id\n").unwrap();
        assert_eq!(c.id_type_in_filename, "ip");
        let (c, _) = parse(
            "base_path=/x\nuse_storage_id=true\nstorage_ids_filename=storage_ids.conf\nid_type_in_filename=ID\n",
        )
        .unwrap();
        assert_eq!(c.id_type_in_filename, "id");
        assert_eq!(
            c.storage_ids_path(Path::new("/etc/fdfs/tracker.conf")),
            PathBuf::from("/etc/fdfs/storage_ids.conf")
        );
        assert!(parse("base_path=/x\nuse_storage_id=true\n").is_err());

        for (v, w) in [
            ("auto", 16),
            ("AUTO", 16),
            ("", 16),
            ("IPv4", 46),
            ("16", 46),
        ] {
            let (c, _) = parse(&format!("base_path=/x\nresponse_ip_addr_size={v}\n")).unwrap();
            assert_eq!(c.response_ip_addr_size, w, "{v}");
        }
    }

    #[test]
    fn trusted_storage_addrs_takes_the_allow_hosts_forms() {
        let (c, w) = parse(
            "base_path=/x\ntrusted_storage_addrs = 10.0.0.0/8, 192.168.1.7\ntrusted_storage_addrs=fd00::/8 203.0.113.[9-10]\n",
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let t = &c.trusted_storage_addrs;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(t.allows(ip("10.1.2.3")));
        assert!(t.allows(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(t.allows(ip("192.168.1.7")));
        assert!(!t.allows(ip("192.168.1.8")));
        assert!(!t.allows(ip("11.0.0.1")));
        assert!(t.allows(ip("fd12::1")));
        assert!(!t.allows(ip("fe80::1")));
        assert!(t.allows(ip("203.0.113.10")));

        let (c, _) = parse("base_path=/x\n").unwrap();
        assert!(!c.trusted_storage_addrs.allows(ip("127.0.0.1")));
        let (c, _) = parse("base_path=/x\ntrusted_storage_addrs = *\n").unwrap();
        assert!(c.trusted_storage_addrs.allows(ip("198.51.100.1")));
        let (c, _) = parse("base_path=/x\ntrusted_storage_addrs = 0.0.0.0/0\n").unwrap();
        assert!(c.trusted_storage_addrs.allows(ip("198.51.100.1")));
        assert!(!c.trusted_storage_addrs.allows(ip("::1")));

        for bad in ["10.0.0.0/33", "10.0.0.1/x", "::/129", "10.0.0.[1-"] {
            let err = parse(&format!("base_path=/x\ntrusted_storage_addrs = {bad}\n")).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("tracker.conf:2: key `trusted_storage_addrs`"),
                "{bad}: {err}"
            );
        }
        let (c, w) = parse("base_path=/x\ntrusted_storage_addrs = no-such-host.invalid\n").unwrap();
        assert_eq!(w.len(), 1, "an unresolvable name is a warning: {w:?}");
        assert!(!c.trusted_storage_addrs.allows(ip("127.0.0.1")));
    }

    #[test]
    fn booleans_and_allow_hosts() {
        let (c, _) = parse(
            "base_path=/x\nuse_connection_pool=yes\nstorage_ip_changed_auto_adjust=off\nallow_hosts=10.0.0.[1-3]\nallow_hosts=192.168.5.64/26\n",
        )
        .unwrap();
        assert!(c.use_connection_pool);
        assert!(!c.storage_ip_changed_auto_adjust);
        assert_eq!(c.allow_hosts, ["10.0.0.[1-3]", "192.168.5.64/26"]);
    }
}
