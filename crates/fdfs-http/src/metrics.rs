//! The gateway's own series (`fdfs_http_*`): answers by status code, and
//! file requests served from the local store paths (hits) or not found
//! there (misses: redirected, proxied or 404). Counted with atomics on
//! both the fast path and hyper's.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fdfs_util::metrics::{Exposition, Source, StatusCounts};

#[derive(Debug)]
pub struct GatewayCounters {
    pub(crate) statuses: StatusCounts,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl GatewayCounters {
    pub fn new() -> GatewayCounters {
        GatewayCounters {
            statuses: StatusCounts::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for GatewayCounters {
    fn default() -> Self {
        GatewayCounters::new()
    }
}

/// The series of one gateway, as a [`Source`].
pub struct GatewayMetrics {
    pub counters: Arc<GatewayCounters>,
    pub group: String,
}

impl Source for GatewayMetrics {
    fn collect(&self, out: &mut Exposition<'_>) -> fmt::Result {
        let c = &self.counters;
        let group = [("group", self.group.as_str())];
        out.counters(
            "fdfs_http_local_hits",
            "File requests answered from the local store paths",
            [(&group[..], c.hits.load(Ordering::Relaxed))],
        )?;
        out.counters(
            "fdfs_http_local_misses",
            "File requests for files not on the local store paths (redirected, proxied or not found)",
            [(&group[..], c.misses.load(Ordering::Relaxed))],
        )?;
        let seen = c.statuses.seen();
        let codes: Vec<String> = seen.iter().map(|(code, _)| code.to_string()).collect();
        let labels: Vec<[(&str, &str); 2]> = codes
            .iter()
            .map(|code| [("group", self.group.as_str()), ("code", code.as_str())])
            .collect();
        out.counters(
            "fdfs_http_responses",
            "HTTP answers by status code",
            labels.iter().zip(&seen).map(|(l, (_, n))| (&l[..], *n)),
        )
    }
}
