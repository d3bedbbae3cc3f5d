//! Typed access to an [`IniFile`] for the conf loaders: turns value-parser
//! failures into `ConfigError::Invalid` with file, line and key, and collects
//! adjustment warnings.

use crate::ini::{IniFile, IniItem};
use crate::values::{parse_bool, parse_byte_size, parse_int, parse_time_of_day};
use crate::{ConfigError, Warning};

pub(crate) struct Reader<'a> {
    pub ini: &'a IniFile,
    /// Display name of the top-level file, for `Missing` errors.
    pub file: String,
    pub warnings: Vec<Warning>,
}

pub(crate) fn invalid(item: &IniItem, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: item.file.clone(),
        line: item.line,
        key: item.key.clone(),
        msg: msg.into(),
    }
}

/// An item whose value is not empty. An empty numeric value (`port =`) is
/// treated as absent, i.e. the default applies.
fn nonempty(item: Option<&IniItem>) -> Option<&IniItem> {
    item.filter(|i| !i.value.is_empty())
}

pub(crate) fn item_bool(item: Option<&IniItem>, default: bool) -> bool {
    item.map_or(default, |i| parse_bool(&i.value))
}

pub(crate) fn item_int<T: TryFrom<i64>>(
    item: Option<&IniItem>,
    default: T,
) -> Result<T, ConfigError> {
    let Some(item) = nonempty(item) else {
        return Ok(default);
    };
    let v = parse_int(&item.value).map_err(|e| invalid(item, e.0))?;
    T::try_from(v).map_err(|_| invalid(item, format!("value {v} out of range")))
}

impl<'a> Reader<'a> {
    pub fn new(ini: &'a IniFile) -> Self {
        Reader {
            ini,
            file: ini.display_name(),
            warnings: Vec::new(),
        }
    }

    pub fn item(&self, key: &str) -> Option<&'a IniItem> {
        self.ini.get(key)
    }

    /// The value of a non-empty item.
    pub fn value(&self, key: &str) -> Option<&'a str> {
        nonempty(self.item(key)).map(|i| i.value.as_str())
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.item(key)
            .map_or_else(|| default.to_string(), |i| i.value.clone())
    }

    pub fn boolean(&self, key: &str, default: bool) -> bool {
        item_bool(self.item(key), default)
    }

    pub fn int<T: TryFrom<i64>>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        item_int(self.item(key), default)
    }

    /// Like [`Reader::int`], but zero or negative values fall back to the
    /// default, as the original does for intervals and timeouts.
    pub fn positive<T: TryFrom<i64>>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        let Some(item) = nonempty(self.item(key)) else {
            return Ok(default);
        };
        let v = parse_int(&item.value).map_err(|e| invalid(item, e.0))?;
        if v <= 0 {
            return Ok(default);
        }
        T::try_from(v).map_err(|_| invalid(item, format!("value {v} out of range")))
    }

    pub fn bytes(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match nonempty(self.item(key)) {
            None => Ok(default),
            Some(item) => parse_byte_size(&item.value).map_err(|e| invalid(item, e.0)),
        }
    }

    pub fn time(&self, key: &str, default: (u8, u8)) -> Result<(u8, u8), ConfigError> {
        match nonempty(self.item(key)) {
            None => Ok(default),
            Some(item) => parse_time_of_day(&item.value).map_err(|e| invalid(item, e.0)),
        }
    }

    pub fn missing(&self, key: &str) -> ConfigError {
        ConfigError::Missing {
            file: self.file.clone(),
            key: key.to_string(),
        }
    }

    /// Records an adjustment; points at the key's line when it is present.
    pub fn warn(&mut self, key: &str, msg: String) {
        let (file, line) = match self.item(key) {
            Some(i) => (i.file.clone(), i.line),
            None => (self.file.clone(), 0),
        };
        self.warnings.push(Warning {
            file,
            line,
            key: key.to_string(),
            msg,
        });
    }
}

/// Maximum package size / buffer size when `buff_size` is absent (sf default).
pub(crate) const SF_DEFAULT_BUFF_SIZE_BYTES: u64 = 256 * 1024;
/// Buffer bounds used when both `min_buff_size` and `max_buff_size` are given
/// but one of them is empty.
pub(crate) const SF_DEFAULT_MIN_BUFF_SIZE_BYTES: u64 = 64 * 1024;
pub(crate) const SF_DEFAULT_MAX_BUFF_SIZE_BYTES: u64 = 256 * 1024;
pub(crate) const SF_DEFAULT_MAX_CONNECTIONS: u32 = 256;
pub(crate) const SF_DEFAULT_ACCEPT_THREADS: u32 = 1;
pub(crate) const SF_DEFAULT_WORK_THREADS: u32 = 4;
pub(crate) const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
pub(crate) const DEFAULT_POOL_MAX_IDLE_TIME_SECS: u64 = 3600;

/// `(buff_size, min_buff_size, max_buff_size)` after the libserverframe
/// rule: min/max take their own values only when **both** keys are present,
/// otherwise both equal `buff_size` (§10.2).
pub(crate) fn read_buffers(r: &Reader<'_>) -> Result<(u64, u64, u64), ConfigError> {
    let buff = r.bytes("buff_size", SF_DEFAULT_BUFF_SIZE_BYTES)?;
    if r.item("min_buff_size").is_some() && r.item("max_buff_size").is_some() {
        let min = r.bytes("min_buff_size", SF_DEFAULT_MIN_BUFF_SIZE_BYTES)?;
        let max = r.bytes("max_buff_size", SF_DEFAULT_MAX_BUFF_SIZE_BYTES)?;
        if min > max {
            if let Some(item) = r.item("min_buff_size") {
                return Err(invalid(
                    item,
                    format!("min_buff_size {min} is above max_buff_size {max}"),
                ));
            }
        }
        Ok((buff, min, max))
    } else {
        Ok((buff, buff, buff))
    }
}

/// The secret in `cluster_secret_file` (a fastdfs-rs extension), a
/// relative name being taken from the directory of the conf that names
/// it; None when the key is absent or empty (the default: no secret).
pub(crate) fn read_cluster_secret(
    r: &Reader<'_>,
) -> Result<Option<fdfs_util::cluster_secret::ClusterSecret>, ConfigError> {
    let Some(item) = nonempty(r.ini.get("cluster_secret_file")) else {
        return Ok(None);
    };
    let name = std::path::Path::new(&item.value);
    let path = if name.is_absolute() {
        name.to_path_buf()
    } else {
        std::path::Path::new(&item.file)
            .parent()
            .unwrap_or_else(|| std::path::Path::new(""))
            .join(name)
    };
    fdfs_util::cluster_secret::ClusterSecret::load(&path)
        .map(Some)
        .map_err(|e| invalid(item, e))
}

/// All non-empty `allow_hosts` values; `["*"]` when there are none.
pub(crate) fn read_allow_hosts(r: &Reader<'_>) -> Vec<String> {
    let hosts: Vec<String> = r
        .ini
        .get_all("allow_hosts")
        .into_iter()
        .filter(|i| !i.value.is_empty())
        .map(|i| i.value.clone())
        .collect();
    if hosts.is_empty() {
        vec!["*".to_string()]
    } else {
        hosts
    }
}

/// A group name value: 1-16 letters or digits.
pub(crate) fn group_name(item: &IniItem) -> Result<String, ConfigError> {
    if !crate::values::is_valid_group_name(&item.value) {
        return Err(invalid(
            item,
            format!(
                "invalid group name `{}` (1-16 letters or digits)",
                item.value
            ),
        ));
    }
    Ok(item.value.clone())
}

/// `store_path0..N-1` for `store_path_count` N (1..=256, default 1);
/// `store_path0` defaults to `base_path`, the others are required.
pub(crate) fn read_store_paths(
    r: &Reader<'_>,
    base_path: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, ConfigError> {
    use crate::storage::MAX_STORE_PATHS;
    let store_path_count: usize = r.int("store_path_count", 1)?;
    if !(1..=MAX_STORE_PATHS).contains(&store_path_count) {
        if let Some(item) = r.item("store_path_count") {
            return Err(invalid(
                item,
                format!("store_path_count must be 1..={MAX_STORE_PATHS}"),
            ));
        }
    }
    let mut store_paths = Vec::with_capacity(store_path_count);
    for i in 0..store_path_count {
        let key = format!("store_path{i}");
        match r.value(&key) {
            Some(v) => store_paths.push(strip_trailing_slash(v).into()),
            None if i == 0 => store_paths.push(base_path.to_path_buf()),
            None => return Err(r.missing(&key)),
        }
    }
    Ok(store_paths)
}

/// Required `base_path`: present and non-empty.
pub(crate) fn read_base_path(r: &Reader<'_>) -> Result<std::path::PathBuf, ConfigError> {
    r.value("base_path")
        .map(|v| strip_trailing_slash(v).into())
        .ok_or_else(|| r.missing("base_path"))
}

/// `/var/fdfs/` → `/var/fdfs` (the original chops trailing slashes so that
/// joined paths have no `//`); `/` stays `/`.
pub(crate) fn strip_trailing_slash(v: &str) -> &str {
    let t = v.trim_end_matches('/');
    if t.is_empty() && v.starts_with('/') {
        "/"
    } else {
        t
    }
}

/// All `tracker_server` values (required, at most 16).
pub(crate) fn read_tracker_servers(
    r: &Reader<'_>,
) -> Result<Vec<crate::values::TrackerAddr>, ConfigError> {
    let items: Vec<&IniItem> = r
        .ini
        .get_all("tracker_server")
        .into_iter()
        .filter(|i| !i.value.is_empty())
        .collect();
    if items.is_empty() {
        return Err(r.missing("tracker_server"));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if out.len() >= MAX_TRACKER_SERVERS {
            return Err(invalid(
                item,
                format!("more than {MAX_TRACKER_SERVERS} tracker servers"),
            ));
        }
        out.push(
            item.value
                .parse()
                .map_err(|e: crate::ValueError| invalid(item, e.0))?,
        );
    }
    Ok(out)
}

/// The original's fixed tracker array size.
pub(crate) const MAX_TRACKER_SERVERS: usize = 16;
