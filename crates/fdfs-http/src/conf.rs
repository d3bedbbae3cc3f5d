//! [`GatewayConf`]: everything the gateway needs, built from a storage.conf
//! ([`StorageConf`]) and optionally a mod_fastdfs.conf ([`HttpConf`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use fdfs_config::http::ResponseMode;
use fdfs_config::{HttpConf, StorageConf, TrackerAddr};

use crate::error::HttpError;
use crate::mime::MimeTypes;

/// Time a client gets to send a complete request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections making no progress (idle keep-alive, stalled reader or
/// writer) for this long are closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent connections; more wait in the kernel backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The anti-steal token settings (`http.anti_steal.*`).
#[derive(Debug, Clone)]
pub struct TokenConf {
    pub secret_key: String,
    pub ttl_secs: u64,
    /// Answered with 200 instead of the file when a token is wrong
    /// (`token_check_fail`); None → 400.
    pub check_fail: Option<CheckFailFile>,
    /// `anti_steal_bypass_header_name` / `_value`: requests carrying this
    /// header with exactly this value skip the check.
    pub bypass_header: Option<(String, String)>,
}

/// The token-check-fail file, read once at start.
#[derive(Debug, Clone)]
pub struct CheckFailFile {
    pub content: Bytes,
    pub content_type: String,
}

/// Gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConf {
    /// This storage's group.
    pub group: String,
    /// `store_pathN` roots, by index.
    pub store_paths: Vec<PathBuf>,
    /// URLs carry the group: `/group1/M00/...` (else `/M00/...`).
    pub url_have_group_name: bool,
    pub response_mode: ResponseMode,
    pub token: Option<TokenConf>,
    pub mime: MimeTypes,
    /// Content-Type of unknown extensions (`http.default_content_type`).
    pub default_content_type: String,
    /// `http.multi_range.enabled`: false → several ranges get 416.
    pub multi_range_enabled: bool,
    /// Trackers to ask for the group's other storages (may be empty).
    pub trackers: Vec<TrackerAddr>,
    /// Binary-protocol port of this storage and (by assumption, as in
    /// mod_fastdfs.conf's `storage_server_port`) of its group peers.
    pub storage_port: u16,
    /// This storage's own addresses: a file whose source is one of these
    /// is not fetched from "the source" (it would be us).
    pub self_ips: Vec<IpAddr>,
    pub connect_timeout: Duration,
    pub network_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// HTTPS instead of HTTP (`http.tls.*`, ours).
    pub tls: Option<fdfs_config::http::TlsFiles>,
}

impl GatewayConf {
    /// A gateway for `group` serving `store_paths`, with defaults for the
    /// rest (group names in URLs, proxy mode, no token, built-in mime table).
    pub fn new(group: impl Into<String>, store_paths: Vec<PathBuf>) -> GatewayConf {
        GatewayConf {
            group: group.into(),
            store_paths,
            url_have_group_name: true,
            response_mode: ResponseMode::Proxy,
            token: None,
            mime: MimeTypes::builtin(),
            default_content_type: "application/octet-stream".to_string(),
            multi_range_enabled: true,
            trackers: Vec::new(),
            storage_port: fdfs_config::storage::DEFAULT_STORAGE_PORT,
            self_ips: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            network_timeout: Duration::from_secs(30),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
        }
    }

    /// The gateway of a storage: its group, store paths, trackers, port
    /// and address from storage.conf; URL form, response mode, token and
    /// mime settings from mod_fastdfs.conf when given (its group and store
    /// paths must then agree with storage.conf's).
    pub fn from_storage(
        storage: &StorageConf,
        http: Option<&HttpConf>,
    ) -> Result<GatewayConf, HttpError> {
        let mut c = GatewayConf::new(storage.group_name.clone(), storage.store_paths.clone());
        c.trackers = storage.tracker_servers.clone();
        c.storage_port = storage.port;
        c.connect_timeout = Duration::from_secs(storage.connect_timeout_secs);
        c.network_timeout = Duration::from_secs(storage.network_timeout_secs);
        c.idle_timeout = Duration::from_secs(storage.network_timeout_secs.max(1));
        c.self_ips = [
            storage.advertise_addr.as_deref(),
            Some(storage.bind_addr.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_unspecified())
        .collect();
        if let Some(h) = http {
            c.apply_http_conf(h)?;
            if h.group_count == 0 && h.group_name != storage.group_name {
                return Err(HttpError::Config(format!(
                    "mod_fastdfs.conf group_name {} differs from storage.conf's {}",
                    h.group_name, storage.group_name
                )));
            }
        }
        Ok(c)
    }

    /// A gateway from mod_fastdfs.conf alone (group, store paths and
    /// trackers from it).
    pub fn from_http_conf(h: &HttpConf) -> Result<GatewayConf, HttpError> {
        let mut c = GatewayConf::new(h.group_name.clone(), h.store_paths.clone());
        c.trackers = h.tracker_servers.clone();
        c.storage_port = h.storage_server_port;
        c.connect_timeout = Duration::from_secs(h.connect_timeout_secs);
        c.network_timeout = Duration::from_secs(h.network_timeout_secs);
        c.apply_http_conf(h)?;
        Ok(c)
    }

    fn apply_http_conf(&mut self, h: &HttpConf) -> Result<(), HttpError> {
        if h.group_count > 0 {
            return Err(HttpError::Config(
                "group_count > 0 (several groups on one host) is not supported".into(),
            ));
        }
        if h.disabled {
            return Err(HttpError::Config("http.disabled = true".into()));
        }
        self.url_have_group_name = h.url_have_group_name;
        self.response_mode = h.response_mode;
        self.multi_range_enabled = h.multi_range_enabled;
        self.default_content_type = h.default_content_type.clone();
        self.tls = h.tls.clone();
        if !h.tracker_servers.is_empty() {
            self.trackers = h.tracker_servers.clone();
        }
        if h.need_find_content_type {
            if let Some(path) = &h.mime_types_filename {
                self.mime = MimeTypes::load(path).map_err(|e| {
                    HttpError::Config(format!("http.mime_types_filename {}: {e}", path.display()))
                })?;
            }
        }
        if h.check_token {
            let check_fail = match &h.token_check_fail {
                None => None,
                Some(p) => Some(self.load_check_fail(p)?),
            };
            let bypass = (!h.anti_steal_bypass_header_name.is_empty()).then(|| {
                (
                    h.anti_steal_bypass_header_name.clone(),
                    h.anti_steal_bypass_header_value.clone(),
                )
            });
            self.token = Some(TokenConf {
                secret_key: h.secret_key.clone(),
                ttl_secs: h.token_ttl_secs,
                check_fail,
                bypass_header: bypass,
            });
        }
        Ok(())
    }

    /// Reads the token-check-fail file. A missing file is a start-up error
    /// (the module's worker dies at start in that case, §9.2).
    fn load_check_fail(&self, path: &Path) -> Result<CheckFailFile, HttpError> {
        let content = std::fs::read(path).map_err(|e| {
            HttpError::Config(format!(
                "http.anti_steal.token_check_fail {}: {e}",
                path.display()
            ))
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let content_type = self
            .mime
            .lookup(&name)
            .unwrap_or(&self.default_content_type)
            .to_string();
        Ok(CheckFailFile {
            content: content.into(),
            content_type,
        })
    }
}
