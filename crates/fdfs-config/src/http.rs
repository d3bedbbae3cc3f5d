//! `mod_fastdfs.conf` and the shared `http.conf` keys (PROTOCOL.md §10.6,
//! §9): what the HTTP gateway reads. The same loader also pulls the
//! `http.*` keys out of a storage.conf that `#include`s http.conf.

use std::path::{Path, PathBuf};

use crate::ini::IniFile;
use crate::keys::{self, HTTP_SHARED_KEYS};
use crate::reader::{self, invalid, Reader};
use crate::values::{is_valid_group_name, TrackerAddr};
use crate::{ConfigError, Warning};

const DEFAULT_NETWORK_TIMEOUT_SECS: u64 = 30;
const DEFAULT_STORAGE_SYNC_FILE_MAX_DELAY_SECS: u64 = 86400;
const DEFAULT_STORAGE_SERVER_PORT: u16 = 23000;
const DEFAULT_TOKEN_TTL_SECS: u64 = 600;
const DEFAULT_HTTP_SERVER_PORT: u16 = 80;

/// Keys of mod_fastdfs.conf besides the shared `http.*` ones; the
/// store path keys are matched by [`keys::is_store_path_key`].
pub const MOD_FASTDFS_KEYS: &[&str] = &[
    "connect_timeout",
    "network_timeout",
    "base_path",
    "load_fdfs_parameters_from_tracker",
    "storage_sync_file_max_delay",
    "use_storage_id",
    "storage_ids_filename",
    "tracker_server",
    "storage_server_port",
    "group_name",
    "url_have_group_name",
    "store_path_count",
    "log_level",
    "log_filename",
    "response_mode",
    "if_alias_prefix",
    "flv_support",
    "flv_extension",
    "group_count",
    "anti_steal_bypass_header_name",
    "anti_steal_bypass_header_value",
    "http.server_port",
];

/// What to do with a request for a file this host does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    /// Fetch it from the source storage and relay it (the default).
    #[default]
    Proxy,
    /// Answer 302 pointing at the source storage.
    Redirect,
}

/// The gateway configuration (mod_fastdfs.conf + http.conf).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConf {
    pub connect_timeout_secs: u64,
    pub network_timeout_secs: u64,
    /// Log directory; required in a file.
    pub base_path: PathBuf,
    pub load_fdfs_parameters_from_tracker: bool,
    /// Files older than this are assumed replicated everywhere.
    pub storage_sync_file_max_delay_secs: u64,
    pub use_storage_id: bool,
    pub storage_ids_filename: String,
    /// Used to find the other storages of the group; may be empty.
    pub tracker_servers: Vec<TrackerAddr>,
    /// Port of the storages' binary protocol (to fetch remote files).
    pub storage_server_port: u16,
    /// The local group (required when `group_count` is 0).
    pub group_name: String,
    /// URLs are `/<group>/M00/...` instead of `/M00/...`.
    pub url_have_group_name: bool,
    pub store_path_count: usize,
    /// `store_pathN`; `store_path0` defaults to `base_path`.
    pub store_paths: Vec<PathBuf>,
    pub log_level: String,
    pub response_mode: ResponseMode,
    pub flv_support: bool,
    pub flv_extension: String,
    /// Multi-group configurations (`[groupN]` sections); we read the value
    /// only to refuse it.
    pub group_count: u32,
    pub anti_steal_bypass_header_name: String,
    pub anti_steal_bypass_header_value: String,
    /// `http.disabled`.
    pub disabled: bool,
    /// `http.need_find_content_type`.
    pub need_find_content_type: bool,
    /// `http.multi_range.enabled`.
    pub multi_range_enabled: bool,
    /// `http.server_port` (unused by the module itself).
    pub server_port: u16,
    /// `http.mime_types_filename`, resolved against the conf's directory.
    pub mime_types_filename: Option<PathBuf>,
    /// `http.default_content_type`.
    pub default_content_type: String,
    /// `http.anti_steal.check_token`.
    pub check_token: bool,
    /// `http.anti_steal.token_ttl`.
    pub token_ttl_secs: u64,
    /// `http.anti_steal.secret_key`; required with `check_token`.
    pub secret_key: String,
    /// `http.anti_steal.token_check_fail`: file answered (200) on a bad
    /// token, resolved against the conf's directory; None → 400.
    pub token_check_fail: Option<PathBuf>,
    /// `http.tls.certificate` and `http.tls.certificate_key` (ours): PEM
    /// files, resolved against the conf's directory; the gateway then
    /// speaks HTTPS only.
    pub tls: Option<TlsFiles>,
}

/// The certificate chain and private key of the gateway's HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub certificate_key: PathBuf,
}

impl Default for HttpConf {
    fn default() -> Self {
        HttpConf {
            connect_timeout_secs: reader::DEFAULT_CONNECT_TIMEOUT_SECS,
            network_timeout_secs: DEFAULT_NETWORK_TIMEOUT_SECS,
            base_path: PathBuf::from("/tmp"),
            load_fdfs_parameters_from_tracker: false,
            storage_sync_file_max_delay_secs: DEFAULT_STORAGE_SYNC_FILE_MAX_DELAY_SECS,
            use_storage_id: false,
            storage_ids_filename: String::new(),
            tracker_servers: Vec::new(),
            storage_server_port: DEFAULT_STORAGE_SERVER_PORT,
            group_name: "group1".to_string(),
            url_have_group_name: false,
            store_path_count: 1,
            store_paths: vec![PathBuf::from("/tmp")],
            log_level: "info".to_string(),
            response_mode: ResponseMode::Proxy,
            flv_support: false,
            flv_extension: "flv".to_string(),
            group_count: 0,
            anti_steal_bypass_header_name: String::new(),
            anti_steal_bypass_header_value: String::new(),
            disabled: false,
            need_find_content_type: true,
            multi_range_enabled: true,
            server_port: DEFAULT_HTTP_SERVER_PORT,
            mime_types_filename: None,
            default_content_type: "application/octet-stream".to_string(),
            check_token: false,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            secret_key: String::new(),
            token_check_fail: None,
            tls: None,
        }
    }
}

/// Whether `key` is one mod_fastdfs.conf may contain (global section).
pub fn is_known_key(key: &str) -> bool {
    MOD_FASTDFS_KEYS.contains(&key)
        || HTTP_SHARED_KEYS.contains(&key)
        || keys::is_store_path_key(key)
}

/// `name` relative to the directory of the conf file `ini` came from.
fn relative_to_conf(ini: &IniFile, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    ini.origin()
        .parent()
        .map_or_else(|| p.to_path_buf(), |d| d.join(p))
}

/// `http.tls.certificate` and `http.tls.certificate_key`: both or none.
fn read_tls_files(r: &Reader<'_>, ini: &IniFile) -> Result<Option<TlsFiles>, ConfigError> {
    let certificate = r.value("http.tls.certificate").filter(|v| !v.is_empty());
    let key = r
        .value("http.tls.certificate_key")
        .filter(|v| !v.is_empty());
    match (certificate, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some(TlsFiles {
            certificate: relative_to_conf(ini, c),
            certificate_key: relative_to_conf(ini, k),
        })),
        (Some(_), None) => Err(r.missing("http.tls.certificate_key")),
        (None, Some(_)) => Err(r.missing("http.tls.certificate")),
    }
}

impl HttpConf {
    /// Loads and validates a mod_fastdfs.conf file.
    pub fn load(path: &Path) -> Result<(Self, Vec<Warning>), ConfigError> {
        Self::from_ini(&IniFile::load(path)?)
    }

    /// Builds the configuration from parsed items. Malformed values are
    /// errors; unknown keys come back as warnings.
    pub fn from_ini(ini: &IniFile) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut r = Reader::new(ini);
        let d = HttpConf::default();
        let base_path = reader::read_base_path(&r)?;

        let group_count: u32 = r.int("group_count", 0)?;
        let group_name = match r.item("group_name") {
            Some(item) if !item.value.is_empty() => {
                if !is_valid_group_name(&item.value) {
                    return Err(invalid(
                        item,
                        format!("invalid group name `{}`", item.value),
                    ));
                }
                item.value.clone()
            }
            _ if group_count == 0 => return Err(r.missing("group_name")),
            _ => String::new(),
        };

        let store_paths = reader::read_store_paths(&r, &base_path)?;
        let store_path_count = store_paths.len();

        let response_mode = match r.item("response_mode") {
            None => ResponseMode::Proxy,
            Some(item) => match item.value.as_str() {
                "proxy" | "" => ResponseMode::Proxy,
                "redirect" => ResponseMode::Redirect,
                other => {
                    return Err(invalid(
                        item,
                        format!("response_mode `{other}`: expected proxy or redirect"),
                    ))
                }
            },
        };

        let check_token = r.boolean("http.anti_steal.check_token", false);
        let secret_key = r.string("http.anti_steal.secret_key", "");
        if check_token && secret_key.is_empty() {
            return Err(r.missing("http.anti_steal.secret_key"));
        }
        let need_find_content_type = r.boolean("http.need_find_content_type", true);
        let multi_range_enabled = r.boolean("http.multi_range.enabled", true);
        let mime_types_filename = r
            .value("http.mime_types_filename")
            .map(|v| relative_to_conf(ini, v));
        let default_content_type = r.string("http.default_content_type", &d.default_content_type);

        let tracker_servers = if r.item("tracker_server").is_some() {
            reader::read_tracker_servers(&r)?
        } else {
            Vec::new()
        };
        if r.boolean("load_fdfs_parameters_from_tracker", false) && tracker_servers.is_empty() {
            return Err(r.missing("tracker_server"));
        }

        let conf = HttpConf {
            connect_timeout_secs: r.positive("connect_timeout", d.connect_timeout_secs)?,
            network_timeout_secs: r.positive("network_timeout", d.network_timeout_secs)?,
            base_path,
            load_fdfs_parameters_from_tracker: r
                .boolean("load_fdfs_parameters_from_tracker", false),
            storage_sync_file_max_delay_secs: r.positive(
                "storage_sync_file_max_delay",
                d.storage_sync_file_max_delay_secs,
            )?,
            use_storage_id: r.boolean("use_storage_id", false),
            storage_ids_filename: r.string("storage_ids_filename", ""),
            tracker_servers,
            storage_server_port: r.int("storage_server_port", d.storage_server_port)?,
            group_name,
            url_have_group_name: r.boolean("url_have_group_name", false),
            store_path_count,
            store_paths,
            log_level: r.string("log_level", &d.log_level),
            response_mode,
            flv_support: r.boolean("flv_support", false),
            flv_extension: r.string("flv_extension", &d.flv_extension),
            group_count,
            anti_steal_bypass_header_name: r.string("anti_steal_bypass_header_name", ""),
            anti_steal_bypass_header_value: r.string("anti_steal_bypass_header_value", ""),
            disabled: r.boolean("http.disabled", false),
            need_find_content_type,
            multi_range_enabled,
            server_port: r.int("http.server_port", d.server_port)?,
            mime_types_filename,
            default_content_type,
            check_token,
            token_ttl_secs: r.positive("http.anti_steal.token_ttl", d.token_ttl_secs)?,
            secret_key,
            token_check_fail: r
                .value("http.anti_steal.token_check_fail")
                .map(|v| relative_to_conf(ini, v)),
            tls: read_tls_files(&r, ini)?,
        };
        let mut warnings = keys::unknown_key_warnings(ini, is_known_key);
        warnings.append(&mut r.warnings);
        Ok((conf, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(HttpConf, Vec<Warning>), ConfigError> {
        HttpConf::from_ini(&IniFile::parse_str(
            text,
            Path::new("/etc/fdfs/mod_fastdfs.conf"),
        )?)
    }

    #[test]
    fn minimal_and_defaults() {
        let (c, w) = parse("base_path=/tmp\ngroup_name=group1\n").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c, HttpConf::default());
        assert!(parse("base_path=/tmp\n").is_err());
        assert!(parse("group_name=group1\n").is_err());
    }

    #[test]
    fn sample_file_loads_without_warnings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/mod_fastdfs.conf");
        let (c, w) = HttpConf::load(&path).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.response_mode, ResponseMode::Proxy);
        assert!(c.url_have_group_name);
        assert!(c
            .mime_types_filename
            .as_deref()
            .is_some_and(|p| p.ends_with("conf/mime.types")));
    }

    #[test]
    fn keys_and_paths() {
        let (c, w) = parse(
            "base_path=/b\ngroup_name=g2\nurl_have_group_name=true\nresponse_mode=redirect\n\
             store_path_count=2\nstore_path0=/s0/\nstore_path1=/s1\ntracker_server=10.0.0.1:22122\n\
             http.mime_types_filename=mime.types\nhttp.anti_steal.check_token=yes\n\
             http.anti_steal.secret_key=k\nhttp.anti_steal.token_ttl=900\n\
             http.anti_steal.token_check_fail=/x/deny.png\nbogus=1\n",
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(c.group_name, "g2");
        assert!(c.url_have_group_name);
        assert_eq!(c.response_mode, ResponseMode::Redirect);
        assert_eq!(c.store_paths, [PathBuf::from("/s0"), "/s1".into()]);
        assert_eq!(c.tracker_servers.len(), 1);
        assert_eq!(
            c.mime_types_filename,
            Some(PathBuf::from("/etc/fdfs/mime.types"))
        );
        assert!(c.check_token);
        assert_eq!(c.token_ttl_secs, 900);
        assert_eq!(c.token_check_fail, Some(PathBuf::from("/x/deny.png")));
    }

    #[test]
    fn invalid_values() {
        let base = "base_path=/b\ngroup_name=g\n";
        assert!(parse(&format!("{base}response_mode=Proxy\n")).is_err());
        assert!(parse(&format!("{base}http.anti_steal.check_token=true\n")).is_err());
        assert!(parse(&format!("{base}store_path_count=2\n")).is_err());
        assert!(parse(&format!("{base}load_fdfs_parameters_from_tracker=true\n")).is_err());
    }
}
