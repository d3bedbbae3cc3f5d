//! `fdfs bench upload|download|http|mixed|seed`: whole-system load against
//! any FastDFS server (ours or the original C one) over the binary protocol,
//! or against any HTTP server that serves `/<file id>`.
//!
//! Each worker keeps its connections (tracker, storage, HTTP) open across
//! requests, as a pooled client does. Every request is recorded as one
//! [`stats::Sample`]; the summary (ops/s, MB/s, latency percentiles) and the
//! per-second timeline are computed from the samples after the run, so the
//! hot path only pushes to a per-worker vector and bumps two atomics.
//!
//! `seed` is the field-report scenario in one command: upload N files, read
//! them all back over the binary protocol, then over HTTP, and write a
//! Markdown report with an SVG chart (see `bench/README.md`).
//!
//! Modules, one job each: `payload` (what uploads send), `stats` (samples to
//! summary and timeline), `runner` (workers of one phase), `cpu` (the
//! servers' CPU time for `--server-pid`), `protocol`
//! (upload and download over the binary protocol), `http` (the keep-alive
//! GET client), `seed` (the report scenario) and `svg` (its chart).

mod cpu;
mod http;
mod payload;
mod protocol;
mod runner;
mod seed;
mod stats;
mod svg;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use payload::{payload, Payload};
use runner::{run_phase, Limit, Op, Shared};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// upload | download (binary protocol) | http (GET /<file id>) |
    /// mixed (random reads and writes) | seed (upload, download, http; writes
    /// a report to --out).
    #[arg(value_parser = ["upload", "download", "http", "mixed", "seed"])]
    pub mode: String,
    /// Tracker address.
    #[arg(long, default_value = "127.0.0.1:22122")]
    pub tracker: String,
    /// Talk to this storage directly instead of asking the tracker.
    #[arg(long)]
    pub storage: Option<String>,
    /// HTTP server (HOST:PORT) serving `/<file id>`: the target of `http`,
    /// the third phase of `seed`, and the read path of `mixed` when given.
    #[arg(long)]
    pub http: Option<String>,
    /// Number of requests [upload/mixed: 10000; download/http: one per id;
    /// seed: 100000 files]. Ids are reused round-robin when count > ids.
    #[arg(long, conflicts_with = "duration")]
    pub count: Option<usize>,
    /// Run for this many seconds instead of a request count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Concurrent workers, each with its own connections [64; seed: 256].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Fixed file size in bytes (same as --min-size N --max-size N).
    #[arg(long, conflicts_with_all = ["min_size", "max_size", "files"])]
    pub size: Option<usize>,
    /// Smallest file size in bytes (uniform between min and max).
    #[arg(long, default_value_t = 8 * 1024)]
    pub min_size: usize,
    /// Largest file size in bytes.
    #[arg(long, default_value_t = 128 * 1024)]
    pub max_size: usize,
    /// Upload the files of this directory (sizes and contents), round-robin.
    #[arg(long)]
    pub files: Option<PathBuf>,
    /// upload/seed: write the file ids here; download/http/mixed: read them from here.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// mixed: fraction of requests that are reads (0.0-1.0).
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Check each downloaded file's CRC32 and size against its file id.
    #[arg(long)]
    pub verify: bool,
    /// Print one JSON object per phase instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write per-second ops, MB, errors, p50 and p99 as CSV here.
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// seed: directory for the report (seed-<timestamp>.md/.svg/.json).
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Server processes (tracker, storage, nginx...) whose CPU time
    /// (utime + stime, all threads) is read before and after each phase, to
    /// report server CPU per operation. Several pids: `--server-pid 1 2` or
    /// `--server-pid 1,2`.
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "PID")]
    pub server_pid: Vec<i32>,
    /// With --count: a failed request is retried (on a new connection,
    /// after a short pause) instead of counting towards the count, which
    /// then is the number of successful requests. Failures still show in
    /// the error count and the timeline (bench/soak.sh restarts the server
    /// under load and wants N acknowledged uploads).
    #[arg(long)]
    pub retry_failed: bool,
}

pub fn run(args: BenchArgs) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = if args.mode == "seed" {
        rt.block_on(seed::seed(args))
    } else {
        rt.block_on(bench(args))
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fdfs bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn read_ids(path: &Path) -> Result<Vec<String>, String> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

fn write_ids(path: &Path, ids: &[String]) -> Result<(), String> {
    let mut text = ids.join("\n");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

async fn bench(args: BenchArgs) -> Result<(), String> {
    let op = match args.mode.as_str() {
        "upload" => Op::Upload,
        "download" => Op::Download,
        "http" => Op::Http,
        _ => Op::Mixed,
    };
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return Err("--read-ratio must lie in 0.0..=1.0".into());
    }
    let ids = match (&args.ids, op) {
        (Some(p), Op::Download | Op::Http | Op::Mixed) => read_ids(p)?,
        (None, Op::Download | Op::Http) => {
            return Err(format!(
                "{} needs --ids FILE (written by `bench upload --ids`)",
                args.mode
            ))
        }
        _ => Vec::new(),
    };
    if matches!(op, Op::Download | Op::Http) && ids.is_empty() {
        return Err("no file ids to read".into());
    }
    if op == Op::Http && args.http.is_none() {
        return Err("http needs --http HOST:PORT".into());
    }
    let limit = match (args.duration, args.count) {
        (Some(d), _) if d > 0.0 => Limit::Time(Duration::from_secs_f64(d)),
        (Some(_), _) => return Err("--duration must be > 0".into()),
        (None, Some(n)) => Limit::Count(n),
        (None, None) if matches!(op, Op::Download | Op::Http) => Limit::Count(ids.len()),
        (None, None) => Limit::Count(10_000),
    };
    let concurrency = args.concurrency.unwrap_or(64);
    let payload = if matches!(op, Op::Upload | Op::Mixed) {
        payload(&args)?
    } else {
        Payload::random(0, 0)
    };
    let known = ids.len();
    let shared = Arc::new(Shared {
        args,
        payload,
        ids: RwLock::new(ids),
    });
    let report = run_phase(&shared, op, limit, concurrency).await?;
    let args = &shared.args;
    if op == Op::Upload {
        if let Some(path) = &args.ids {
            let ids = shared.ids.read().map_err(|e| e.to_string())?;
            write_ids(path, &ids[known..])?;
        }
    }
    if let Some(path) = &args.timeline {
        std::fs::write(path, report.timeline_csv())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.json {
        outln!("{}", report.json());
    } else {
        outln!("{}", report.text());
    }
    if report.errors > 0 {
        return Err(format!("{} requests failed", report.errors));
    }
    Ok(())
}
