//! libserverframe's network service settings (PROTOCOL.md §10.2): the
//! connection cap, thread counts and buffer sizes both daemons read with the
//! same keys, defaults and rules.

use crate::reader::{self, Reader};
use crate::ConfigError;

/// The network service settings of a daemon conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    pub max_connections: u32,
    pub accept_threads: u32,
    pub work_threads: u32,
    /// Maximum package size (see [`NetConf::max_pkg_size_bytes`]).
    pub buff_size_bytes: u64,
    /// Network buffer bounds; equal to `buff_size_bytes` unless both keys are set.
    pub min_buff_size_bytes: u64,
    pub max_buff_size_bytes: u64,
}

impl Default for NetConf {
    fn default() -> Self {
        NetConf {
            max_connections: reader::SF_DEFAULT_MAX_CONNECTIONS,
            accept_threads: reader::SF_DEFAULT_ACCEPT_THREADS,
            work_threads: reader::SF_DEFAULT_WORK_THREADS,
            buff_size_bytes: reader::SF_DEFAULT_BUFF_SIZE_BYTES,
            min_buff_size_bytes: reader::SF_DEFAULT_BUFF_SIZE_BYTES,
            max_buff_size_bytes: reader::SF_DEFAULT_BUFF_SIZE_BYTES,
        }
    }
}

impl NetConf {
    /// Reads the keys; zero or negative counts fall back to the defaults.
    pub(crate) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let d = NetConf::default();
        let (buff, min_buff, max_buff) = reader::read_buffers(r)?;
        Ok(NetConf {
            max_connections: r.positive("max_connections", d.max_connections)?,
            accept_threads: r.positive("accept_threads", d.accept_threads)?,
            work_threads: r.positive("work_threads", d.work_threads)?,
            buff_size_bytes: buff,
            min_buff_size_bytes: min_buff,
            max_buff_size_bytes: max_buff,
        })
    }

    /// Maximum package size after the libserverframe rule (§10.2): a
    /// `max_buff_size` above `buff_size` raises the package size to it, and
    /// one below is raised to the package size, so the effective value (and
    /// the effective max buffer) is the larger of the two.
    pub fn max_pkg_size_bytes(&self) -> u64 {
        self.buff_size_bytes.max(self.max_buff_size_bytes)
    }
}
