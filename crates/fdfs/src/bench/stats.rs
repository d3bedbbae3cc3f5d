//! Per-request samples and what a phase's report computes from them: the
//! summary (ops/s, MB/s, latency percentiles) and the per-second timeline.

use std::fmt::Write as _;

/// One finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sample {
    /// Completion time, ms since the phase started.
    pub(super) end_ms: u32,
    pub(super) lat_us: u32,
    pub(super) bytes: u32,
    pub(super) write: bool,
    pub(super) err: bool,
}

/// One second of a phase.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Second {
    pub(super) t: u32,
    pub(super) ops: u64,
    pub(super) errors: u64,
    pub(super) bytes: u64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
}

/// The summary of one phase.
#[derive(Debug, Clone)]
pub(super) struct Report {
    pub(super) mode: String,
    pub(super) concurrency: usize,
    pub(super) ops: u64,
    pub(super) reads: u64,
    pub(super) writes: u64,
    pub(super) errors: u64,
    pub(super) bytes: u64,
    pub(super) seconds: f64,
    pub(super) p50_ms: f64,
    pub(super) p95_ms: f64,
    pub(super) p99_ms: f64,
    /// The tail the latency target is about (one upload in a thousand).
    pub(super) p999_ms: f64,
    pub(super) max_ms: f64,
    pub(super) timeline: Vec<Second>,
    /// CPU time the `--server-pid` processes spent during the phase.
    pub(super) server_cpu_us: Option<u64>,
}

impl Report {
    pub(super) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }

    pub(super) fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.seconds.max(1e-9)
    }

    /// Server CPU per successful operation, in microseconds.
    pub(super) fn server_cpu_us_per_op(&self) -> Option<f64> {
        self.server_cpu_us
            .map(|us| us as f64 / (self.ops.max(1) as f64))
    }

    pub(super) fn json(&self) -> String {
        let server = match (self.server_cpu_us, self.server_cpu_us_per_op()) {
            (Some(total), Some(per_op)) => format!(
                ",\"server_cpu_ms\":{:.1},\"server_cpu_us_per_op\":{per_op:.1}",
                total as f64 / 1000.0
            ),
            _ => String::new(),
        };
        format!(
            "{{\"mode\":\"{}\",\"ops\":{},\"reads\":{},\"writes\":{},\"errors\":{},\"bytes\":{},\"seconds\":{:.3},\"ops_per_sec\":{:.1},\"mb_per_sec\":{:.2},\"p50_ms\":{:.2},\"p95_ms\":{:.2},\"p99_ms\":{:.2},\"p999_ms\":{:.2},\"max_ms\":{:.2},\"concurrency\":{}{server}}}",
            self.mode,
            self.ops,
            self.reads,
            self.writes,
            self.errors,
            self.bytes,
            self.seconds,
            self.ops_per_sec(),
            self.mb_per_sec(),
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.concurrency
        )
    }

    pub(super) fn text(&self) -> String {
        let mut s = format!(
            "{} {} files ({} errors) in {:.2}s with {} connections\n",
            self.mode, self.ops, self.errors, self.seconds, self.concurrency
        );
        if self.mode == "mixed" {
            let _ = writeln!(s, "  {} reads, {} writes", self.reads, self.writes);
        }
        let _ = writeln!(
            s,
            "  {:.1} files/s, {:.2} MB/s",
            self.ops_per_sec(),
            self.mb_per_sec()
        );
        let _ = write!(
            s,
            "  latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.p999_ms, self.max_ms
        );
        if let (Some(total), Some(per_op)) = (self.server_cpu_us, self.server_cpu_us_per_op()) {
            let _ = write!(
                s,
                "\n  server CPU: {:.1} ms, {per_op:.1} µs/op",
                total as f64 / 1000.0
            );
        }
        s
    }

    pub(super) fn timeline_csv(&self) -> String {
        let mut s = String::from("second,ops,errors,mb,p50_ms,p99_ms\n");
        for r in &self.timeline {
            let _ = writeln!(
                s,
                "{},{},{},{:.3},{:.2},{:.2}",
                r.t,
                r.ops,
                r.errors,
                r.bytes as f64 / (1024.0 * 1024.0),
                r.p50_ms,
                r.p99_ms
            );
        }
        s
    }
}

/// Nearest-rank percentile of sorted microsecond latencies, in ms.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let idx = ((sorted_us.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
    f64::from(sorted_us[idx]) / 1000.0
}

/// Summary and per-second timeline of a phase's samples.
pub(super) fn summarize(
    mode: &str,
    concurrency: usize,
    seconds: f64,
    samples: &[Sample],
) -> Report {
    let mut lat: Vec<u32> = samples
        .iter()
        .filter(|s| !s.err)
        .map(|s| s.lat_us)
        .collect();
    lat.sort_unstable();
    let ok = samples.iter().filter(|s| !s.err);
    Report {
        mode: mode.to_string(),
        concurrency,
        ops: lat.len() as u64,
        reads: ok.clone().filter(|s| !s.write).count() as u64,
        writes: ok.clone().filter(|s| s.write).count() as u64,
        errors: samples.iter().filter(|s| s.err).count() as u64,
        bytes: ok.map(|s| u64::from(s.bytes)).sum(),
        seconds,
        p50_ms: percentile_ms(&lat, 0.50),
        p95_ms: percentile_ms(&lat, 0.95),
        p99_ms: percentile_ms(&lat, 0.99),
        p999_ms: percentile_ms(&lat, 0.999),
        max_ms: percentile_ms(&lat, 1.0),
        timeline: timeline(samples),
        server_cpu_us: None,
    }
}

/// Buckets samples by the second they completed in (every second from 0 to
/// the last one appears, empty ones with zeros).
fn timeline(samples: &[Sample]) -> Vec<Second> {
    let Some(last) = samples.iter().map(|s| s.end_ms / 1000).max() else {
        return Vec::new();
    };
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); last as usize + 1];
    let mut out: Vec<Second> = (0..=last)
        .map(|t| Second {
            t,
            ops: 0,
            errors: 0,
            bytes: 0,
            p50_ms: 0.0,
            p99_ms: 0.0,
        })
        .collect();
    for s in samples {
        let i = (s.end_ms / 1000) as usize;
        if s.err {
            out[i].errors += 1;
        } else {
            out[i].ops += 1;
            out[i].bytes += u64::from(s.bytes);
            buckets[i].push(s.lat_us);
        }
    }
    for (sec, mut lat) in out.iter_mut().zip(buckets) {
        lat.sort_unstable();
        sec.p50_ms = percentile_ms(&lat, 0.50);
        sec.p99_ms = percentile_ms(&lat, 0.99);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let lat: Vec<u32> = (1..=100).map(|v| v * 1000).collect();
        assert_eq!(percentile_ms(&lat, 0.0), 1.0);
        assert_eq!(percentile_ms(&lat, 0.5), 51.0);
        assert_eq!(percentile_ms(&lat, 0.99), 99.0);
        assert_eq!(percentile_ms(&lat, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&[2500], 0.99), 2.5);
    }

    #[test]
    fn timeline_buckets_by_second() {
        let s = |end_ms, lat_us, err| Sample {
            end_ms,
            lat_us,
            bytes: 10,
            write: false,
            err,
        };
        let samples = [
            s(10, 1000, false),
            s(900, 3000, false),
            s(2500, 5000, false),
            s(2600, 0, true),
        ];
        let t = timeline(&samples);
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].ops, t[0].bytes, t[0].p99_ms), (2, 20, 3.0));
        assert_eq!((t[1].ops, t[1].errors), (0, 0));
        assert_eq!((t[2].ops, t[2].errors, t[2].p50_ms), (1, 1, 5.0));
        let r = summarize("download", 4, 2.0, &samples);
        assert_eq!((r.ops, r.errors, r.bytes, r.reads), (3, 1, 30, 3));
        assert_eq!(r.ops_per_sec(), 1.5);
        assert!(r.json().contains("\"ops\":3,"));
        assert!(r
            .timeline_csv()
            .starts_with("second,ops,errors,mb,p50_ms,p99_ms\n0,2,0,"));
        assert!(!r.json().contains("server_cpu") && !r.text().contains("server CPU"));
        // 4.5 ms of server CPU over 3 operations.
        let r = Report {
            server_cpu_us: Some(4500),
            ..r
        };
        assert!(r
            .json()
            .ends_with(",\"server_cpu_ms\":4.5,\"server_cpu_us_per_op\":1500.0}"));
        assert!(r.text().ends_with("\n  server CPU: 4.5 ms, 1500.0 µs/op"));
    }
}
