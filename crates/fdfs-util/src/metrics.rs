//! What the daemons share to be scraped: the [`Source`] of a set of
//! Prometheus series, the [`Hub`] that renders every source of a process
//! as one OpenMetrics text page, the lock-free per-command request
//! statistics ([`CommandStats`]), and the [`Routes`] contract of the small
//! HTTP pages (/metrics, the status page) a listener serves.
//!
//! Series are read from state the daemons keep anyway when a scrape
//! comes: a scrape walks no disk and the request path only bumps atomics.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// The path every listener serves its series on.
pub const METRICS_PATH: &str = "/metrics";
/// What a /metrics answer is (prometheus-client writes OpenMetrics text,
/// which Prometheus asks for first).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A set of series read on each scrape.
pub trait Source: Send + Sync + 'static {
    fn collect(&self, out: &mut Exposition<'_>) -> fmt::Result;
}

/// The sources of one process (`fdfs server` holds tracker, storage and
/// gateway). Sources join late: a storage's opens after its gateway has
/// started listening. The lock is taken by scrapes only.
#[derive(Default)]
pub struct Hub {
    sources: RwLock<Vec<Arc<dyn Source>>>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    pub fn add(&self, source: Arc<dyn Source>) {
        crate::sync::write(&self.sources).push(source);
    }

    /// Every source's series as one OpenMetrics page (ends with `# EOF`).
    pub fn render(&self) -> String {
        let sources: Vec<Arc<dyn Source>> = crate::sync::read(&self.sources).clone();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Collect(sources)));
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; a source that fails cuts its
        // own series short and the page still ends with # EOF.
        if prometheus_client::encoding::text::encode_registry(&mut text, &registry).is_err() {
            tracing::warn!("a metrics source failed to encode");
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut text);
        text
    }
}

/// The registry's view of the hub's sources.
struct Collect(Vec<Arc<dyn Source>>);

impl fmt::Debug for Collect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} metrics sources", self.0.len())
    }
}

impl prometheus_client::collector::Collector for Collect {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        let mut out = Exposition { enc: encoder };
        for s in &self.0 {
            s.collect(&mut out)?;
        }
        Ok(())
    }
}

/// Labels of one sample: (name, value) pairs.
pub type Labels<'a> = [(&'a str, &'a str)];

/// Writes metric families: one descriptor (`# HELP`, `# TYPE`) then its
/// samples. Names are written as given, without a unit suffix.
pub struct Exposition<'a> {
    enc: DescriptorEncoder<'a>,
}

impl Exposition<'_> {
    /// A gauge family: every sample with its labels.
    pub fn gauges<'l, V, I>(&mut self, name: &str, help: &str, samples: I) -> fmt::Result
    where
        V: prometheus_client::encoding::EncodeGaugeValue,
        I: IntoIterator<Item = (&'l Labels<'l>, V)>,
    {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in samples {
            if labels.is_empty() {
                m.encode_gauge(&v)?;
            } else {
                m.encode_family(&labels)?.encode_gauge(&v)?;
            }
        }
        Ok(())
    }

    /// One unlabelled gauge.
    pub fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        v: V,
    ) -> fmt::Result {
        let none: &Labels<'_> = &[];
        self.gauges(name, help, [(none, v)])
    }

    /// A counter family; `name` is without `_total`, which the samples get.
    pub fn counters<'l, I>(&mut self, name: &str, help: &str, samples: I) -> fmt::Result
    where
        I: IntoIterator<Item = (&'l Labels<'l>, u64)>,
    {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in samples {
            if labels.is_empty() {
                m.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
            } else {
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
            }
        }
        Ok(())
    }

    /// One unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, v: u64) -> fmt::Result {
        let none: &Labels<'_> = &[];
        self.counters(name, help, [(none, v)])
    }

    /// A histogram family from [`HistogramSnapshot`]s.
    pub fn histograms<'l, I>(&mut self, name: &str, help: &str, samples: I) -> fmt::Result
    where
        I: IntoIterator<Item = (&'l Labels<'l>, HistogramSnapshot)>,
    {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, h) in samples {
            m.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

/// Upper bounds of the request latency buckets, in microseconds (100 µs
/// to 10 s; +Inf is implied).
pub const LATENCY_BUCKETS_MICROS: [u64; 11] = [
    100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000,
];

/// A histogram as read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct HistogramSnapshot {
    pub sum_secs: f64,
    pub count: u64,
    /// (upper bound in seconds, count in this bucket alone), ending with
    /// `f64::MAX` for +Inf; the encoder sums them up.
    pub buckets: Vec<(f64, u64)>,
}

/// A latency histogram of plain atomics (prometheus-client's own takes a
/// lock per observation).
#[derive(Debug, Default)]
pub struct AtomicHistogram {
    /// Per bucket, not cumulative; the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

impl AtomicHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(LATENCY_BUCKETS_MICROS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            count += n;
            let bound = LATENCY_BUCKETS_MICROS
                .get(i)
                .map_or(f64::MAX, |&m| m as f64 / 1e6);
            buckets.push((bound, n));
        }
        HistogramSnapshot {
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
            buckets,
        }
    }

    fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.load(Ordering::Relaxed) == 0)
    }
}

/// Requests per command byte: how many, how many failed, how long they
/// took. Indexed by the command, so counting is two atomic adds.
pub struct CommandStats {
    slots: Box<[CommandSlot]>,
}

#[derive(Debug, Default)]
struct CommandSlot {
    failed: AtomicU64,
    latency: AtomicHistogram,
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            slots: (0..256).map(|_| CommandSlot::default()).collect(),
        }
    }
}

impl fmt::Debug for CommandStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommandStats")
    }
}

impl CommandStats {
    /// Counts one request of `cmd` that took `elapsed`; `ok`: answered
    /// status 0.
    pub fn observe(&self, cmd: u8, ok: bool, elapsed: Duration) {
        let slot = &self.slots[usize::from(cmd)];
        slot.latency.observe(elapsed);
        if !ok {
            slot.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes `<prefix>_requests_total`, `<prefix>_request_errors_total`
    /// and `<prefix>_request_duration_seconds`, labelled `command` with
    /// `name_of(cmd)` (the number when it has no name). Commands never
    /// seen are left out.
    pub fn collect(
        &self,
        out: &mut Exposition<'_>,
        prefix: &str,
        name_of: fn(u8) -> Option<&'static str>,
    ) -> fmt::Result {
        let mut seen = Vec::new();
        for (cmd, slot) in self.slots.iter().enumerate() {
            if slot.latency.is_empty() {
                continue;
            }
            let cmd = cmd as u8;
            let name = name_of(cmd).map_or_else(|| cmd.to_string(), str::to_string);
            seen.push((
                name,
                slot.latency.snapshot(),
                slot.failed.load(Ordering::Relaxed),
            ));
        }
        let labels: Vec<[(&str, &str); 1]> = seen
            .iter()
            .map(|(name, _, _)| [("command", name.as_str())])
            .collect();
        out.counters(
            &format!("{prefix}_requests"),
            "Requests served, per protocol command",
            labels
                .iter()
                .zip(&seen)
                .map(|(l, (_, h, _))| (&l[..], h.count)),
        )?;
        out.counters(
            &format!("{prefix}_request_errors"),
            "Requests answered with a non-zero status, per protocol command",
            labels.iter().zip(&seen).map(|(l, (_, _, f))| (&l[..], *f)),
        )?;
        out.histograms(
            &format!("{prefix}_request_duration_seconds"),
            "Time from a request's header to its answer, per protocol command",
            labels
                .iter()
                .zip(&seen)
                .map(|(l, (_, h, _))| (&l[..], h.clone())),
        )
    }
}

/// An answer of a [`Routes`] table, independent of the HTTP library.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    pub fn not_found() -> Answer {
        Answer {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: b"Not Found\n".to_vec(),
        }
    }

    /// The hub's series.
    pub fn metrics(hub: &Hub) -> Answer {
        Answer::ok(OPENMETRICS_CONTENT_TYPE, hub.render())
    }
}

/// The pages of a small HTTP listener (GET and HEAD only): `None` when
/// the path is not one of them.
pub trait Routes: Send + Sync + 'static {
    fn answer(&self, path: &str, query: Option<&str>) -> Option<Answer>;
}

/// Counts by HTTP status code, for the status codes a server answers.
#[derive(Debug, Default)]
pub struct StatusCounts {
    /// Indexed by code − 100 (1xx to 5xx).
    counts: Box<[AtomicU64]>,
}

impl StatusCounts {
    pub fn new() -> StatusCounts {
        StatusCounts {
            counts: (100..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn count(&self, status: u16) {
        if let Some(c) = status
            .checked_sub(100)
            .and_then(|i| self.counts.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (code, count) of every code answered at least once.
    pub fn seen(&self) -> Vec<(u16, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((i as u16 + 100, n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Source for Fixed {
        fn collect(&self, out: &mut Exposition<'_>) -> fmt::Result {
            out.gauges(
                "fastdfs_group_free_mb",
                "Disk free space in MB",
                [(&[("group", "group1")][..], 7i64)],
            )?;
            out.counter("fdfs_test_bytes_in", "Bytes in", 5)?;
            let stats = CommandStats::default();
            stats.observe(11, true, Duration::from_micros(300));
            stats.observe(11, false, Duration::from_secs(20));
            stats.collect(out, "fdfs_test", |c| (c == 11).then_some("UPLOAD_FILE"))
        }
    }

    #[test]
    fn renders_families_with_labels_and_eof() {
        let hub = Hub::new();
        hub.add(Arc::new(Fixed));
        let text = hub.render();
        assert!(
            text.contains("# TYPE fastdfs_group_free_mb gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("fastdfs_group_free_mb{group=\"group1\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("fdfs_test_bytes_in_total 5\n"), "{text}");
        assert!(
            text.contains("fdfs_test_requests_total{command=\"UPLOAD_FILE\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("fdfs_test_request_errors_total{command=\"UPLOAD_FILE\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "fdfs_test_request_duration_seconds_bucket{le=\"0.0005\",command=\"UPLOAD_FILE\"} 1\n"
            ) && text.contains(
                "fdfs_test_request_duration_seconds_bucket{le=\"10.0\",command=\"UPLOAD_FILE\"} 1\n"
            ) && text.contains(
                "fdfs_test_request_duration_seconds_bucket{le=\"+Inf\",command=\"UPLOAD_FILE\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn status_counts_keep_known_codes_only() {
        let s = StatusCounts::new();
        s.count(200);
        s.count(200);
        s.count(404);
        s.count(42);
        s.count(999);
        assert_eq!(s.seen(), vec![(200, 2), (404, 1)]);
    }
}
