//! FastDFS configuration: the `.conf` ini dialect, value parsers, and typed
//! `TrackerConf` / `StorageConf` / `ClientConf` / `StorageIds` with the
//! original's defaults. Errors name the file, line and key; unknown keys are
//! returned as [`Warning`]s, never fatal.
//!
//! Reference: PROTOCOL.md §10 (configuration files) and §11.4 (reserved space).

use std::fmt;
use std::path::PathBuf;

pub mod client;
pub mod http;
pub mod ini;
pub mod keys;
pub mod log;
pub mod net;
mod reader;
pub mod storage;
pub mod storage_ids;
pub mod tracker;
pub mod trunk;
pub mod values;

pub use client::ClientConf;
pub use http::HttpConf;
pub use ini::{IniFile, IniItem, IniSection};
pub use log::{LogConf, LogFormat, LogRotation};
pub use net::NetConf;
pub use storage::StorageConf;
pub use storage_ids::{StorageIdEntry, StorageIds};
pub use tracker::TrackerConf;
pub use trunk::TrunkParams;
pub use values::{
    is_valid_group_name, parse_bool, parse_byte_size, parse_int, parse_reserved_space,
    parse_time_of_day, ReservedSpace, TrackerAddr, ValueError,
};

/// Everything that can make loading a configuration fail.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file (the conf itself or an `#include`d one) could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed value; `file` is the display path of the file that holds
    /// the offending line, so the message points the operator at it.
    #[error("{file}:{line}: key `{key}`: {msg}")]
    Invalid {
        file: String,
        line: usize,
        key: String,
        msg: String,
    },
    /// A required key is absent (or empty).
    #[error("{file}: missing required key `{key}`")]
    Missing { file: String, key: String },
    /// Structural problems that belong to no single key (include cycles, ...).
    #[error("{0}")]
    Other(String),
}

/// A non-fatal remark about a configuration: an unknown key, or a value the
/// loader adjusted the way the original daemon does (e.g. `slot_max_size`
/// capped at half the trunk file size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub msg: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.msg)
    }
}

impl Warning {
    pub(crate) fn unknown_key(item: &IniItem) -> Warning {
        Warning {
            file: item.file.clone(),
            line: item.line,
            key: item.key.clone(),
            msg: format!("unknown key `{}` ignored", item.key),
        }
    }
}
