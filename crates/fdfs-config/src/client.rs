//! `client.conf` (PROTOCOL.md §10.5): what the client library and the
//! classic command-line tools read.

use std::path::{Path, PathBuf};

use crate::ini::IniFile;
use crate::keys::{self, CLIENT_KEYS, HTTP_SHARED_KEYS};
use crate::reader::{self, Reader};
use crate::values::TrackerAddr;
use crate::{ConfigError, Warning};

const DEFAULT_NETWORK_TIMEOUT_SECS: u64 = 30;
const DEFAULT_HTTP_TRACKER_SERVER_PORT: u16 = 80;

/// `connect_first_by`: connect to the address the tracker returned.
pub const CONNECT_FIRST_BY_TRACKER: &str = "tracker";
/// `connect_first_by`: try the address that worked last time first.
pub const CONNECT_FIRST_BY_LAST_CONNECTED: &str = "last-connected";

/// The client configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConf {
    pub connect_timeout_secs: u64,
    pub network_timeout_secs: u64,
    /// Log directory.
    pub base_path: PathBuf,
    /// Required in a file.
    pub tracker_servers: Vec<TrackerAddr>,
    pub log_level: String,
    /// For dual-IP storages: [`CONNECT_FIRST_BY_TRACKER`] or
    /// [`CONNECT_FIRST_BY_LAST_CONNECTED`] (any value starting with `last`).
    pub connect_first_by: String,
    pub use_connection_pool: bool,
    pub connection_pool_max_idle_time_secs: u64,
    /// Fetch `use_storage_id` and the storage ids from the tracker.
    pub load_fdfs_parameters_from_tracker: bool,
    /// Used when not loading parameters from the tracker.
    pub use_storage_id: bool,
    /// Relative to the client.conf directory.
    pub storage_ids_filename: String,
    /// `http.anti_steal.check_token`: generate tokens for HTTP URLs.
    pub http_anti_steal_check_token: bool,
    /// `http.anti_steal.secret_key`; required when checking tokens.
    pub http_anti_steal_secret_key: String,
    /// `http.tracker_server_port`.
    pub http_tracker_server_port: u16,
}

impl Default for ClientConf {
    /// One tracker on 127.0.0.1:22122, logs in /tmp.
    fn default() -> Self {
        ClientConf {
            connect_timeout_secs: reader::DEFAULT_CONNECT_TIMEOUT_SECS,
            network_timeout_secs: DEFAULT_NETWORK_TIMEOUT_SECS,
            base_path: PathBuf::from("/tmp"),
            tracker_servers: vec![TrackerAddr {
                hosts: vec!["127.0.0.1".to_string()],
                port: crate::values::DEFAULT_TRACKER_PORT,
            }],
            log_level: "info".to_string(),
            connect_first_by: CONNECT_FIRST_BY_TRACKER.to_string(),
            use_connection_pool: false,
            connection_pool_max_idle_time_secs: reader::DEFAULT_POOL_MAX_IDLE_TIME_SECS,
            load_fdfs_parameters_from_tracker: false,
            use_storage_id: false,
            storage_ids_filename: String::new(),
            http_anti_steal_check_token: false,
            http_anti_steal_secret_key: String::new(),
            http_tracker_server_port: DEFAULT_HTTP_TRACKER_SERVER_PORT,
        }
    }
}

/// Whether `key` is one client.conf may contain.
pub fn is_known_key(key: &str) -> bool {
    CLIENT_KEYS.contains(&key) || HTTP_SHARED_KEYS.contains(&key)
}

impl ClientConf {
    /// Loads and validates a client.conf file.
    pub fn load(path: &Path) -> Result<(Self, Vec<Warning>), ConfigError> {
        Self::from_ini(&IniFile::load(path)?)
    }

    /// Builds the configuration from parsed items.
    pub fn from_ini(ini: &IniFile) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut r = Reader::new(ini);
        let d = ClientConf::default();

        let connect_first_by = match r.value("connect_first_by") {
            Some(v) if v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("last")) => {
                CONNECT_FIRST_BY_LAST_CONNECTED
            }
            _ => CONNECT_FIRST_BY_TRACKER,
        };
        let check_token = r.boolean("http.anti_steal.check_token", false);
        let secret_key = r.string("http.anti_steal.secret_key", "");
        if check_token && secret_key.is_empty() {
            return Err(r.missing("http.anti_steal.secret_key"));
        }

        let conf = ClientConf {
            connect_timeout_secs: r.positive("connect_timeout", d.connect_timeout_secs)?,
            network_timeout_secs: r.positive("network_timeout", d.network_timeout_secs)?,
            base_path: r
                .value("base_path")
                .map_or(d.base_path, |v| reader::strip_trailing_slash(v).into()),
            tracker_servers: reader::read_tracker_servers(&r)?,
            log_level: r.string("log_level", &d.log_level),
            connect_first_by: connect_first_by.to_string(),
            use_connection_pool: r.boolean("use_connection_pool", false),
            connection_pool_max_idle_time_secs: r.positive(
                "connection_pool_max_idle_time",
                d.connection_pool_max_idle_time_secs,
            )?,
            load_fdfs_parameters_from_tracker: r
                .boolean("load_fdfs_parameters_from_tracker", false),
            use_storage_id: r.boolean("use_storage_id", false),
            storage_ids_filename: r.string("storage_ids_filename", ""),
            http_anti_steal_check_token: check_token,
            http_anti_steal_secret_key: secret_key,
            http_tracker_server_port: r
                .int("http.tracker_server_port", d.http_tracker_server_port)?,
        };

        let mut warnings = keys::unknown_key_warnings(ini, is_known_key);
        warnings.append(&mut r.warnings);
        Ok((conf, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(ClientConf, Vec<Warning>), ConfigError> {
        ClientConf::from_ini(&IniFile::parse_str(text, Path::new("client.conf"))?)
    }

    #[test]
    fn sample_file_loads_without_warnings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/client.conf");
        let (conf, warnings) = ClientConf::load(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(conf.tracker_servers[0].to_string(), "127.0.0.1:22122");
    }

    #[test]
    fn defaults_and_required_tracker() {
        let (c, w) = parse("tracker_server=127.0.0.1:22122\n").unwrap();
        assert!(w.is_empty());
        assert_eq!(c, ClientConf::default());
        let err = parse("base_path=/tmp\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "client.conf: missing required key `tracker_server`"
        );
    }

    #[test]
    fn connect_first_by_and_anti_steal() {
        let (c, _) = parse("tracker_server=t:1\nconnect_first_by=Last\n").unwrap();
        assert_eq!(c.connect_first_by, CONNECT_FIRST_BY_LAST_CONNECTED);
        let (c, _) = parse("tracker_server=t:1\nconnect_first_by=whatever\n").unwrap();
        assert_eq!(c.connect_first_by, CONNECT_FIRST_BY_TRACKER);
        assert!(parse("tracker_server=t:1\nhttp.anti_steal.check_token=true\n").is_err());
        let (c, _) = parse(
            "tracker_server=t:1\nhttp.anti_steal.check_token=on\nhttp.anti_steal.secret_key=FastDFS#1234\n",
        )
        .unwrap();
        assert!(c.http_anti_steal_check_token);
        assert_eq!(c.http_anti_steal_secret_key, "FastDFS#1234");
    }

    #[test]
    fn http_conf_include_does_not_warn() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("http.conf"),
            "http.default_content_type = application/octet-stream\nhttp.mime_types_filename=mime.types\nhttp.anti_steal.check_token=false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("client.conf"),
            "tracker_server=127.0.0.1:22122\n#include http.conf\nbogus_key=1\n",
        )
        .unwrap();
        let (_, w) = ClientConf::load(&dir.path().join("client.conf")).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "bogus_key");
        assert_eq!(w[0].line, 3);
    }
}
