//! Signals of a daemon started from a conf file: SIGUSR1 reopens the log
//! files (logrotate), SIGHUP re-reads the conf and applies what can change
//! live. What cannot is named in one log line; a conf that does not load
//! keeps every old setting, with one line saying why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use fdfs_config::{IniFile, LogConf};
use fdfs_util::serve::Admission;

use crate::daemon::{load_role_conf, storage_gateway_conf, Role, RoleConf};

/// Keys (global, or `[section] key`) a SIGHUP applies to a tracker.
const TRACKER_LIVE_KEYS: &[&str] = &[
    "log_level",
    "log_format",
    "allow_hosts",
    "reserved_storage_space",
];
/// Keys a SIGHUP applies to a storage.
const STORAGE_LIVE_KEYS: &[&str] = &[
    "log_level",
    "log_format",
    "allow_hosts",
    "reserved_storage_space",
];
/// Keys of the mod_fastdfs.conf beside storage.conf (and the files it
/// includes) a SIGHUP applies to the HTTP gateway; the mime table file is
/// read again too.
const GATEWAY_LIVE_KEYS: &[&str] = &[
    "anti_steal_bypass_header_name",
    "anti_steal_bypass_header_value",
    "http.anti_steal.check_token",
    "http.anti_steal.token_ttl",
    "http.anti_steal.secret_key",
    "http.anti_steal.token_check_fail",
    "http.mime_types_filename",
    "http.default_content_type",
    "http.need_find_content_type",
];
/// Log rotation keys: live for both daemons.
const ROTATION_KEYS: &[&str] = &[
    "log_file_rotate_everyday",
    "log_file_rotate_time",
    "log_file_rotate_on_size",
    "log_file_keep_days",
    "rotate_error_log",
    "error_log_rotate_time",
    "rotate_error_log_size",
    "rotate_access_log",
    "access_log_rotate_time",
    "rotate_access_log_size",
];
/// How keys of the gateway's conf are named in the restart line.
const GATEWAY_CONF_PREFIX: &str = "mod_fastdfs.conf: ";
/// Sections whose rotation keys are live.
const LOG_SECTIONS: &[&str] = &["error-log", "access-log"];

/// What a running daemon lets a reload change.
pub struct Live {
    pub role: Role,
    pub conf_path: PathBuf,
    /// The conf (and the gateway's mod_fastdfs.conf) as last applied, to
    /// name the keys that changed.
    pub applied: Mutex<Applied>,
    pub admission: Arc<Admission>,
    pub tracker: Option<Arc<fdfs_tracker::Tracker>>,
    pub storage: Option<Arc<fdfs_storage::Storage>>,
    pub gateway: Option<Arc<fdfs_http::LiveConf>>,
}

/// Every item of a conf as `key` / `[section] key` → its values in order.
fn items(ini: &IniFile) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in ini.keys() {
        out.entry(i.key.clone()).or_default().push(i.value.clone());
    }
    for section in ini.sections() {
        for i in ini.section_items(section) {
            out.entry(format!("[{section}] {}", i.key))
                .or_default()
                .push(i.value.clone());
        }
    }
    out
}

/// Keys whose values differ between two confs, in name order.
pub fn changed_keys(old: &IniFile, new: &IniFile) -> Vec<String> {
    let (a, b) = (items(old), items(new));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn is_live(role: Role, key: &str) -> bool {
    if let Some(key) = key.strip_prefix(GATEWAY_CONF_PREFIX) {
        return GATEWAY_LIVE_KEYS.contains(&key);
    }
    let (section, name) = match key.strip_prefix('[').and_then(|k| k.split_once("] ")) {
        Some((s, n)) => (Some(s), n),
        None => (None, key),
    };
    match section {
        Some(s) => LOG_SECTIONS.contains(&s) && ROTATION_KEYS.contains(&name),
        None => {
            let live = match role {
                Role::Tracker => TRACKER_LIVE_KEYS,
                Role::Storage => STORAGE_LIVE_KEYS,
            };
            live.contains(&name) || ROTATION_KEYS.contains(&name)
        }
    }
}

impl Live {
    /// SIGHUP: everything is loaded and checked first, then applied.
    pub fn reload(&self) {
        let path = self.conf_path.display().to_string();
        match self.prepare() {
            Err(e) => tracing::error!(
                "reload of {path} failed, keeping the running settings: {}",
                e.replace('\n', " ")
            ),
            Ok(next) => self.apply(next, &path),
        }
    }

    fn prepare(&self) -> Result<Next, String> {
        let ini = Applied::load(&self.conf_path)?;
        let log = LogConf::from_ini(&ini.conf).map_err(|e| e.to_string())?;
        let conf = load_role_conf(self.role, &self.conf_path)?;
        let gateway = match (&conf, &self.gateway) {
            (RoleConf::Storage(c), Some(_)) => Some(storage_gateway_conf(&self.conf_path, c)?),
            _ => None,
        };
        let (allow_hosts, reserved) = match &conf {
            RoleConf::Tracker(c) => (c.allow_hosts.clone(), c.reserved_storage_space),
            RoleConf::Storage(c) => (c.allow_hosts.clone(), c.reserved_storage_space),
        };
        // Loaded here so that a bad entry changes nothing at all; names
        // that do not resolve are skipped with a warning, as at start.
        let (allow_hosts, warnings) =
            fdfs_util::hosts::HostList::load(&allow_hosts).map_err(|e| e.0)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(Next {
            ini,
            log,
            allow_hosts,
            reserved,
            gateway,
        })
    }

    fn apply(&self, next: Next, path: &str) {
        let changed = fdfs_util::sync::lock(&self.applied).changed_keys(&next.ini);
        if let Err(e) = crate::logging::set_level(&next.log.level) {
            tracing::warn!("log_level not applied: {e}");
        }
        crate::logging::set_format(next.log.format);
        crate::logging::set_rotation(&next.log.error);
        if let Some(log) = self.storage.as_ref().and_then(|s| s.access_log.as_ref()) {
            log.set_rotation(crate::logging::rotation(&next.log.access));
        }
        self.admission.replace(next.allow_hosts);
        if let Some(t) = &self.tracker {
            t.set_reserved_storage_space(next.reserved);
        }
        let reserved_changed = changed.iter().any(|k| k == "reserved_storage_space");
        if let (Some(s), true) = (&self.storage, reserved_changed) {
            // A storage works with its tracker's value, fetched when it
            // joins: the conf's new one holds until the next join.
            let mut params = s.params();
            params.reserved_storage_space = next.reserved;
            s.set_params(params);
        }
        if let (Some(live), Some(conf)) = (&self.gateway, &next.gateway) {
            live.reload(conf);
        }
        let restart: Vec<String> = changed
            .into_iter()
            .filter(|k| !is_live(self.role, k))
            .collect();
        *fdfs_util::sync::lock(&self.applied) = next.ini;
        if !restart.is_empty() {
            tracing::warn!(
                "changed keys that need a restart to take effect: {}",
                restart.join(", ")
            );
        }
        tracing::info!(
            level = %next.log.level,
            "configuration reloaded from {path}"
        );
    }
}

/// A daemon's conf files as loaded.
pub struct Applied {
    conf: IniFile,
    /// `mod_fastdfs.conf` beside a storage.conf, when there is one.
    gateway: Option<IniFile>,
}

impl Applied {
    pub fn load(conf_path: &std::path::Path) -> Result<Applied, String> {
        let conf = IniFile::load(conf_path).map_err(|e| e.to_string())?;
        let gateway = match crate::daemon::gateway_conf_path(conf_path) {
            Some(p) => Some(IniFile::load(&p).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(Applied { conf, gateway })
    }

    fn changed_keys(&self, next: &Applied) -> Vec<String> {
        let mut out = changed_keys(&self.conf, &next.conf);
        let empty = IniFile::default();
        let (old, new) = (
            self.gateway.as_ref().unwrap_or(&empty),
            next.gateway.as_ref().unwrap_or(&empty),
        );
        out.extend(
            changed_keys(old, new)
                .into_iter()
                .map(|k| format!("{GATEWAY_CONF_PREFIX}{k}")),
        );
        out
    }
}

struct Next {
    ini: Applied,
    log: LogConf,
    allow_hosts: fdfs_util::hosts::HostList,
    reserved: fdfs_config::ReservedSpace,
    gateway: Option<fdfs_http::GatewayConf>,
}

/// Handles SIGHUP and SIGUSR1 until the process ends.
pub async fn handle_signals(live: Arc<Live>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("cannot install the SIGHUP / SIGUSR1 handlers");
        return;
    };
    loop {
        tokio::select! {
            Some(()) = hup.recv() => {
                tracing::info!("SIGHUP received, reloading {}", live.conf_path.display());
                let live = live.clone();
                // Name resolution (allow_hosts) and file reads block.
                let _ = tokio::task::spawn_blocking(move || live.reload()).await;
            }
            Some(()) = usr1.recv() => {
                fdfs_util::logfile::reopen_all();
                tracing::info!("SIGUSR1 received, log files reopened");
            }
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ini(text: &str) -> IniFile {
        IniFile::parse_str(text, Path::new("t.conf")).unwrap()
    }

    #[test]
    fn changed_keys_cover_sections_and_repeats() {
        let old = ini("port=1\nallow_hosts=a\nallow_hosts=b\n[access-log]\nenabled=false\n");
        let new = ini("port=2\nallow_hosts=a\nlog_level=debug\n[access-log]\nenabled=true\n");
        assert_eq!(
            changed_keys(&old, &new),
            ["[access-log] enabled", "allow_hosts", "log_level", "port"]
        );
    }

    #[test]
    fn live_keys_per_role() {
        assert!(is_live(Role::Tracker, "allow_hosts"));
        assert!(is_live(Role::Tracker, "[error-log] log_file_rotate_time"));
        assert!(!is_live(Role::Tracker, "[access-log] enabled"));
        assert!(!is_live(Role::Tracker, "port"));
        assert!(!is_live(Role::Tracker, "http.anti_steal.secret_key"));
        assert!(!is_live(Role::Storage, "http.anti_steal.secret_key"));
        assert!(!is_live(Role::Storage, "store_path0"));
        assert!(is_live(
            Role::Storage,
            "mod_fastdfs.conf: http.anti_steal.secret_key"
        ));
        assert!(!is_live(Role::Storage, "mod_fastdfs.conf: response_mode"));
    }
}
