//! `fdfs bench seed`, the field-report scenario: upload N files, read them
//! all back over the binary protocol, then over HTTP, and write the report
//! (Markdown with the machine, the command and a timeline per phase, the SVG
//! chart, and the phases as JSON) under `--out`.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::payload::payload;
use super::runner::{run_phase, Limit, Op, Shared};
use super::stats::Report;
use super::svg::svg_chart;
use super::{write_ids, BenchArgs};

pub(super) async fn seed(args: BenchArgs) -> Result<(), String> {
    let count = args.count.unwrap_or(100_000);
    let concurrency = args.concurrency.unwrap_or(256);
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp = utc_stamp(started_at);
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let machine = machine_info();
    let payload = payload(&args)?;
    let dist = payload.describe();
    let shared = Arc::new(Shared {
        args: args.clone(),
        payload,
        ids: RwLock::new(Vec::new()),
    });
    let mut phases: Vec<Report> = Vec::new();
    let mut ops = vec![Op::Upload, Op::Download];
    if args.http.is_some() {
        ops.push(Op::Http);
    }
    for op in ops {
        let limit = match op {
            Op::Upload => Limit::Count(count),
            _ => Limit::Count(shared.ids.read().map_err(|e| e.to_string())?.len()),
        };
        let r = run_phase(&shared, op, limit, concurrency).await?;
        if args.json {
            outln!("{}", r.json());
        } else {
            outln!("{}", r.text());
        }
        phases.push(r);
    }
    let base = args.out.join(format!("seed-{stamp}"));
    if let Some(path) = &args.ids {
        write_ids(path, &shared.ids.read().map_err(|e| e.to_string())?)?;
    }
    let svg_name = format!("seed-{stamp}.svg");
    std::fs::write(args.out.join(&svg_name), svg_chart(&phases))
        .map_err(|e| format!("{svg_name}: {e}"))?;
    let json: Vec<String> = phases.iter().map(Report::json).collect();
    std::fs::write(
        base.with_extension("json"),
        format!("[{}]\n", json.join(",\n")),
    )
    .map_err(|e| e.to_string())?;
    let cmdline: Vec<String> = std::env::args().collect();
    let md = seed_markdown(&SeedInfo {
        stamp: &stamp,
        machine: &machine,
        cmdline: &cmdline.join(" "),
        args: &args,
        dist: &dist,
        svg_name: &svg_name,
        phases: &phases,
    });
    let md_path = base.with_extension("md");
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    eprintln!("report: {}", md_path.display());
    let errors: u64 = phases.iter().map(|p| p.errors).sum();
    if errors > 0 {
        return Err(format!("{errors} requests failed"));
    }
    Ok(())
}

/// `YYYYMMDD-HHMMSS` (UTC) for seconds since the epoch.
fn utc_stamp(secs: u64) -> String {
    let t = fdfs_util::time::utc(i64::try_from(secs).unwrap_or(i64::MAX));
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn machine_info() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {:.1} GB RAM, Linux {}, load average at start: {}",
        mem_kb as f64 / (1024.0 * 1024.0),
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

struct SeedInfo<'a> {
    stamp: &'a str,
    machine: &'a str,
    cmdline: &'a str,
    args: &'a BenchArgs,
    dist: &'a str,
    svg_name: &'a str,
    phases: &'a [Report],
}

fn seed_markdown(i: &SeedInfo<'_>) -> String {
    let mut s = format!("# fdfs bench seed {}\n\n", i.stamp);
    let _ = writeln!(s, "- Machine: {}", i.machine);
    let _ = writeln!(s, "- Command: `{}`", i.cmdline);
    let _ = writeln!(
        s,
        "- Target: {}{}",
        match &i.args.storage {
            Some(st) => format!("storage {st} (direct)"),
            None => format!("tracker {}", i.args.tracker),
        },
        i.args
            .http
            .as_ref()
            .map(|h| format!(", HTTP {h}"))
            .unwrap_or_else(|| ", no HTTP phase (no --http)".into())
    );
    let _ = writeln!(s, "- Files: {}", i.dist);
    let _ = writeln!(
        s,
        "- Concurrency: {} connections per phase{}\n",
        i.phases.first().map_or(0, |p| p.concurrency),
        if i.args.verify {
            ", downloads verified against the CRC32 in the file id"
        } else {
            ""
        }
    );
    let with_cpu = !i.args.server_pid.is_empty();
    s.push_str(
        "| phase | files | errors | seconds | files/s | MB/s | p50 ms | p95 ms | p99 ms | max ms |",
    );
    s.push_str(if with_cpu {
        " server CPU µs/op |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    });
    for p in i.phases {
        let _ = write!(
            s,
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
            p.mode,
            p.ops,
            p.errors,
            p.seconds,
            p.ops_per_sec(),
            p.mb_per_sec(),
            p.p50_ms,
            p.p95_ms,
            p.p99_ms,
            p.max_ms
        );
        if with_cpu {
            let _ = write!(
                s,
                " {} |",
                p.server_cpu_us_per_op()
                    .map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "\n![throughput and latency]({})\n", i.svg_name);
    s.push_str("## Per-second timeline\n\n");
    for p in i.phases {
        let _ = writeln!(s, "### {}\n\n```csv\n{}```\n", p.mode, p.timeline_csv());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::stats::{summarize, Sample};
    use super::super::svg::nice_ceil;
    use super::*;

    #[test]
    fn stamps_and_nice_numbers() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(12_345.0), 20_000.0);
        assert_eq!(nice_ceil(2.0), 2.0);
        assert_eq!(nice_ceil(0.3), 0.5);
    }

    #[test]
    fn svg_and_markdown_render() {
        let samples: Vec<Sample> = (0..3000)
            .map(|i| Sample {
                end_ms: i,
                lat_us: 1000 + i,
                bytes: 1024,
                write: true,
                err: false,
            })
            .collect();
        let r = summarize("upload", 8, 3.0, &samples);
        let mut d = r.clone();
        d.mode = "download".into();
        let svg = svg_chart(&[r.clone(), d.clone()]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg_chart(&[]).contains("</svg>"));
        let args = BenchArgs {
            mode: "seed".into(),
            tracker: "t:1".into(),
            storage: None,
            http: Some("h:2".into()),
            count: None,
            duration: None,
            concurrency: None,
            size: None,
            min_size: 1,
            max_size: 2,
            files: None,
            ids: None,
            read_ratio: 0.9,
            verify: true,
            json: false,
            timeline: None,
            out: "x".into(),
            quiet: true,
            server_pid: Vec::new(),
            retry_failed: false,
        };
        let md = seed_markdown(&SeedInfo {
            stamp: "s",
            machine: "m",
            cmdline: "fdfs bench seed",
            args: &args,
            dist: "uniform",
            svg_name: "seed-s.svg",
            phases: &[r.clone(), d.clone()],
        });
        assert!(md.contains("| upload | 3000 | 0 | 3.00 | 1000 |"));
        assert!(md.contains("![throughput and latency](seed-s.svg)"));
        assert!(!md.contains("server CPU"));
        // With --server-pid: a column, "-" where a phase has no figure.
        let args = BenchArgs {
            server_pid: vec![1],
            ..args
        };
        let r = Report {
            server_cpu_us: Some(1_500_000),
            ..r
        };
        let md = seed_markdown(&SeedInfo {
            stamp: "s",
            machine: "m",
            cmdline: "fdfs bench seed --server-pid 1",
            args: &args,
            dist: "uniform",
            svg_name: "seed-s.svg",
            phases: &[r, d],
        });
        assert!(md.contains("| max ms | server CPU µs/op |\n|---|"));
        assert!(md.contains(" 500.0 |\n| download |"));
        assert!(md.contains(" - |\n"));
    }
}
