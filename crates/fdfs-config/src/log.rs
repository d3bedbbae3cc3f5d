//! The log settings of tracker.conf and storage.conf: level, line format
//! (ours: `log_format`), and rotation of the error log and the access log.
//!
//! Rotation keys come in two generations and both are read. The 6.x
//! libserverframe keys (`log_file_rotate_everyday`, `log_file_rotate_time`,
//! `log_file_rotate_on_size`, `log_file_keep_days`, globally or in the
//! `[error-log]` / `[access-log]` sections) win over the older spellings
//! still found in deployed confs (`rotate_error_log`, `error_log_rotate_time`,
//! `rotate_error_log_size`, `rotate_access_log`, `access_log_rotate_time`,
//! `rotate_access_log_size`).

use crate::ini::{IniFile, IniItem};
use crate::reader::invalid;
use crate::values::{parse_bool, parse_byte_size, parse_int, parse_time_of_day};
use crate::ConfigError;

/// Line format of the error log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `[YYYY-MM-DD HH:MM:SS] LEVEL - message key=value...`, as the original.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// When one log file is rotated and how long rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// Rotate every day at `rotate_time`.
    pub rotate_daily: bool,
    /// Local time of day (hour, minute) of the daily rotation.
    pub rotate_time: (u8, u8),
    /// Rotate when the file reaches this size; 0 never.
    pub rotate_size_bytes: u64,
    /// Delete rotated files older than this; 0 keeps them forever.
    pub keep_days: u32,
}

/// Defaults of the 6.x error log: daily at midnight, kept 15 days.
impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            rotate_daily: true,
            rotate_time: (0, 0),
            rotate_size_bytes: 0,
            keep_days: 15,
        }
    }
}

/// Everything about a daemon's logs that its conf file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConf {
    /// `log_level` as written (emerg ... debug).
    pub level: String,
    pub format: LogFormat,
    /// `logs/trackerd.log` / `logs/storaged.log`.
    pub error: LogRotation,
    /// `logs/storage_access.log`.
    pub access: LogRotation,
}

impl Default for LogConf {
    fn default() -> Self {
        LogConf {
            level: "info".to_string(),
            format: LogFormat::Text,
            error: LogRotation::default(),
            access: LogRotation::default(),
        }
    }
}

/// The first of the items present (and not empty).
fn first<'a>(items: &[Option<&'a IniItem>]) -> Option<&'a IniItem> {
    items
        .iter()
        .flatten()
        .find(|i| !i.value.trim().is_empty())
        .copied()
}

fn bool_of(items: &[Option<&IniItem>], default: bool) -> bool {
    first(items).map_or(default, |i| parse_bool(&i.value))
}

fn time_of(items: &[Option<&IniItem>], default: (u8, u8)) -> Result<(u8, u8), ConfigError> {
    match first(items) {
        None => Ok(default),
        Some(i) => parse_time_of_day(&i.value).map_err(|e| invalid(i, e.0)),
    }
}

fn size_of(items: &[Option<&IniItem>]) -> Result<u64, ConfigError> {
    match first(items) {
        None => Ok(0),
        Some(i) => parse_byte_size(&i.value).map_err(|e| invalid(i, e.0)),
    }
}

fn days_of(items: &[Option<&IniItem>], default: u32) -> Result<u32, ConfigError> {
    match first(items) {
        None => Ok(default),
        Some(i) => {
            let v = parse_int(&i.value).map_err(|e| invalid(i, e.0))?;
            // Negative means "keep" in the original's checks, as 0 does.
            Ok(u32::try_from(v.max(0)).unwrap_or(u32::MAX))
        }
    }
}

impl LogConf {
    pub fn from_ini(ini: &IniFile) -> Result<LogConf, ConfigError> {
        let d = LogRotation::default();
        let g = |k: &str| ini.get(k);
        let err = |k: &str| ini.section_get("error-log", k);
        let acc = |k: &str| ini.section_get("access-log", k);
        let format = match ini.get("log_format") {
            None => LogFormat::Text,
            Some(i) => match i.value.trim().to_ascii_lowercase().as_str() {
                "" | "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(invalid(i, format!("`{other}`: expected text or json"))),
            },
        };
        let level = ini
            .get("log_level")
            .map(|i| i.value.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "info".to_string());
        let error = LogRotation {
            rotate_daily: bool_of(
                &[
                    err("log_file_rotate_everyday"),
                    g("log_file_rotate_everyday"),
                    g("rotate_error_log"),
                ],
                d.rotate_daily,
            ),
            rotate_time: time_of(
                &[
                    err("log_file_rotate_time"),
                    g("log_file_rotate_time"),
                    g("error_log_rotate_time"),
                ],
                d.rotate_time,
            )?,
            rotate_size_bytes: size_of(&[
                err("log_file_rotate_on_size"),
                g("log_file_rotate_on_size"),
                g("rotate_error_log_size"),
            ])?,
            keep_days: days_of(
                &[err("log_file_keep_days"), g("log_file_keep_days")],
                d.keep_days,
            )?,
        };
        let access = LogRotation {
            rotate_daily: bool_of(
                &[acc("log_file_rotate_everyday"), g("rotate_access_log")],
                d.rotate_daily,
            ),
            rotate_time: time_of(
                &[acc("log_file_rotate_time"), g("access_log_rotate_time")],
                d.rotate_time,
            )?,
            rotate_size_bytes: size_of(&[
                acc("log_file_rotate_on_size"),
                g("rotate_access_log_size"),
            ])?,
            keep_days: days_of(
                &[acc("log_file_keep_days"), g("log_file_keep_days")],
                d.keep_days,
            )?,
        };
        Ok(LogConf {
            level,
            format,
            error,
            access,
        })
    }
}

/// The `tracing` level of one of the original's `log_level` names (case
/// insensitive): emerg, alert and crit log as errors, notice as info.
/// `trace` is ours. None for anything else (the daemons then log at info,
/// as the original does).
pub fn tracing_level(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "emerg" | "alert" | "crit" | "err" | "error" => "error",
        "warn" | "warning" => "warn",
        "notice" | "info" => "info",
        "debug" => "debug",
        "trace" => "trace",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<LogConf, ConfigError> {
        LogConf::from_ini(&IniFile::parse_str(text, Path::new("t.conf")).unwrap())
    }

    #[test]
    fn defaults_are_the_6x_ones() {
        let c = parse("base_path=/x\n").unwrap();
        assert_eq!(c, LogConf::default());
        assert!(c.error.rotate_daily && c.error.keep_days == 15);
    }

    #[test]
    fn new_keys_win_over_old_spellings_and_sections_over_globals() {
        let c = parse(
            "rotate_error_log=false\nlog_file_rotate_everyday=true\nerror_log_rotate_time=02:00\n\
             rotate_error_log_size=1M\nlog_file_keep_days=3\nrotate_access_log=false\n\
             access_log_rotate_time=04:30\nrotate_access_log_size=4096\n\
             [error-log]\nlog_file_rotate_time=01:15\n",
        )
        .unwrap();
        assert!(c.error.rotate_daily);
        assert_eq!(c.error.rotate_time, (1, 15));
        assert_eq!(c.error.rotate_size_bytes, 1024 * 1024);
        assert_eq!(c.error.keep_days, 3);
        assert!(!c.access.rotate_daily);
        assert_eq!(c.access.rotate_time, (4, 30));
        assert_eq!(c.access.rotate_size_bytes, 4096);
        assert_eq!(c.access.keep_days, 3);
    }

    #[test]
    fn levels_and_formats() {
        assert_eq!(parse("log_level=CRIT\n").unwrap().level, "CRIT");
        assert_eq!(tracing_level("CRIT"), Some("error"));
        assert_eq!(tracing_level("notice"), Some("info"));
        // Unknown levels log at info, as the original's.
        assert_eq!(tracing_level("loud"), None);
        assert_eq!(parse("log_level=loud\n").unwrap().level, "loud");
        assert_eq!(parse("log_format=JSON\n").unwrap().format, LogFormat::Json);
        assert!(parse("log_format=xml\n").is_err());
        assert!(parse("log_file_rotate_time=25:00\n").is_err());
    }
}
