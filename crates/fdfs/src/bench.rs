//! `fdfs bench upload|download|http|mixed|seed`: whole-system load against
//! any FastDFS server (ours or the original C one) over the binary protocol,
//! or against any HTTP server that serves `/<file id>`.
//!
//! Each worker keeps its connections (tracker, storage, HTTP) open across
//! requests, as a pooled client does. Every request is recorded as one
//! [`Sample`]; the summary (ops/s, MB/s, latency percentiles) and the
//! per-second timeline are computed from the samples after the run, so the
//! hot path only pushes to a per-worker vector and bumps two atomics.
//!
//! `seed` is the field-report scenario in one command: upload N files, read
//! them all back over the binary protocol, then over HTTP, and write a
//! Markdown report with an SVG chart (see `bench/README.md`).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, BytesMut};
use fdfs_client::{ClientError, Conn};
use fdfs_proto::storage_msg::{DownloadReq, FileIdResp, UploadReq};
use fdfs_proto::tracker_msg::{FetchTargets, GroupFileReq, StoreTarget};
use fdfs_proto::{StorageCmd, TrackerCmd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
}

/// Small deterministic generator: content and sizes only need variety.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A size uniform in `min..=max` from one random draw.
fn uniform_size(min: usize, max: usize, r: u64) -> usize {
    let span = (max - min) as u64 + 1;
    min + (r % span) as usize
}

/// Where upload contents come from.
enum Payload {
    /// Slices of one shared block of random bytes, sizes uniform in min..=max.
    Random {
        pool: Vec<u8>,
        min: usize,
        max: usize,
    },
    /// The files of a directory: (contents, extension).
    Files(Vec<(Vec<u8>, String)>),
}

const POOL_SLACK: usize = 4096;

impl Payload {
    fn random(min: usize, max: usize) -> Self {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let pool = (0..max + POOL_SLACK).map(|_| rng.next() as u8).collect();
        Payload::Random { pool, min, max }
    }

    fn from_dir(dir: &Path) -> Result<Self, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            files.push((data, ext_of(&p)));
        }
        if files.is_empty() {
            return Err(format!("{}: no files", dir.display()));
        }
        Ok(Payload::Files(files))
    }

    /// The bytes and extension of the next upload.
    fn pick(&self, rng: &mut Rng) -> (&[u8], &str) {
        match self {
            Payload::Random { pool, min, max } => {
                let size = uniform_size(*min, *max, rng.next());
                let off = (rng.next() % POOL_SLACK as u64) as usize;
                (&pool[off..off + size], "jpg")
            }
            Payload::Files(files) => {
                let (data, ext) = &files[(rng.next() % files.len() as u64) as usize];
                (data, ext)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Payload::Random { min, max, .. } if min == max => format!("fixed {min} B"),
            Payload::Random { min, max, .. } => format!("uniform {min}-{max} B"),
            Payload::Files(f) => {
                let total: usize = f.iter().map(|(d, _)| d.len()).sum();
                format!("{} files of a directory, {total} B in all", f.len())
            }
        }
    }
}

/// The extension FastDFS will store for a local file ("bin" when unusable).
fn ext_of(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && fdfs_proto::fileid::is_valid_ext(e))
        .unwrap_or("bin")
        .to_string()
}

/// One finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    /// Completion time, ms since the phase started.
    end_ms: u32,
    lat_us: u32,
    bytes: u32,
    write: bool,
    err: bool,
}

/// One second of a phase.
#[derive(Debug, Clone, PartialEq)]
struct Second {
    t: u32,
    ops: u64,
    errors: u64,
    bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The summary of one phase.
#[derive(Debug, Clone)]
struct Report {
    mode: String,
    concurrency: usize,
    ops: u64,
    reads: u64,
    writes: u64,
    errors: u64,
    bytes: u64,
    seconds: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    timeline: Vec<Second>,
}

impl Report {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }

    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.seconds.max(1e-9)
    }

    fn json(&self) -> String {
        format!(
            "{{\"mode\":\"{}\",\"ops\":{},\"reads\":{},\"writes\":{},\"errors\":{},\"bytes\":{},\"seconds\":{:.3},\"ops_per_sec\":{:.1},\"mb_per_sec\":{:.2},\"p50_ms\":{:.2},\"p95_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"concurrency\":{}}}",
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
            self.max_ms,
            self.concurrency
        )
    }

    fn text(&self) -> String {
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
            "  latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        );
        s
    }

    fn timeline_csv(&self) -> String {
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
fn summarize(mode: &str, concurrency: usize, seconds: f64, samples: &[Sample]) -> Report {
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
        max_ms: percentile_ms(&lat, 1.0),
        timeline: timeline(samples),
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
        rt.block_on(seed(args))
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

fn payload(args: &BenchArgs) -> Result<Payload, String> {
    if let Some(dir) = &args.files {
        return Payload::from_dir(dir);
    }
    let (min, max) = match args.size {
        Some(n) => (n, n),
        None => (args.min_size, args.max_size),
    };
    if min > max {
        return Err("need --min-size <= --max-size".into());
    }
    Ok(Payload::random(min, max))
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
        println!("{}", report.json());
    } else {
        println!("{}", report.text());
    }
    if report.errors > 0 {
        return Err(format!("{} requests failed", report.errors));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Upload,
    Download,
    Http,
    Mixed,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Upload => "upload",
            Op::Download => "download",
            Op::Http => "http",
            Op::Mixed => "mixed",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Count(usize),
    Time(Duration),
}

/// What every worker of a phase reads.
struct Shared {
    args: BenchArgs,
    payload: Payload,
    /// Ids to read; uploads append theirs.
    ids: RwLock<Vec<String>>,
}

/// Per-worker connections, kept across requests.
#[derive(Default)]
struct Conns {
    tracker: Option<Conn>,
    storage: Option<(String, Conn)>,
    http: Option<HttpConn>,
}

async fn run_phase(
    shared: &Arc<Shared>,
    op: Op,
    limit: Limit,
    concurrency: usize,
) -> Result<Report, String> {
    if concurrency == 0 {
        return Err("--concurrency must be >= 1".into());
    }
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (shared, next, done, failed, stop) = (
            shared.clone(),
            next.clone(),
            done.clone(),
            failed.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9));
            let mut conns = Conns::default();
            let mut samples: Vec<Sample> = Vec::new();
            loop {
                let i = match limit {
                    Limit::Count(n) => {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        i
                    }
                    Limit::Time(_) => {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        next.fetch_add(1, Ordering::Relaxed)
                    }
                };
                let t0 = Instant::now();
                let (write, r) = one_request(&shared, op, i, &mut rng, &mut conns).await;
                let end = started.elapsed();
                let err = match r {
                    Ok(bytes) => {
                        samples.push(Sample {
                            end_ms: end.as_millis().min(u128::from(u32::MAX)) as u32,
                            lat_us: t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32,
                            bytes: bytes.min(u64::from(u32::MAX)) as u32,
                            write,
                            err: false,
                        });
                        false
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("\nfdfs bench: {e}");
                        }
                        conns = Conns::default();
                        true
                    }
                };
                if err {
                    samples.push(Sample {
                        end_ms: end.as_millis().min(u128::from(u32::MAX)) as u32,
                        lat_us: 0,
                        bytes: 0,
                        write,
                        err: true,
                    });
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            samples
        }));
    }
    let progress = {
        let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
        let quiet = shared.args.quiet;
        let tty = std::io::stderr().is_terminal();
        tokio::spawn(async move {
            let mut last = 0usize;
            let mut tick = 0u64;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                let elapsed = started.elapsed();
                if let Limit::Time(d) = limit {
                    if elapsed >= d {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                let now = done.load(Ordering::Relaxed);
                let rate = now - last;
                last = now;
                if quiet || (!tty && !tick.is_multiple_of(10)) {
                    continue;
                }
                let of = match limit {
                    Limit::Count(n) => format!("{now}/{n}"),
                    Limit::Time(d) => format!("{now} ({}s/{}s)", elapsed.as_secs(), d.as_secs()),
                };
                let errs = failed.load(Ordering::Relaxed);
                if tty {
                    eprint!("\r{} {of}  {rate} ops/s  {errs} errors   ", op.name());
                } else {
                    eprintln!("{} {of}  {rate} ops/s  {errs} errors", op.name());
                }
            }
        })
    };
    let mut samples: Vec<Sample> = Vec::new();
    let mut join_err = None;
    for w in workers {
        match w.await {
            Ok(s) => samples.extend(s),
            Err(e) => join_err = Some(e.to_string()),
        }
    }
    progress.abort();
    if !shared.args.quiet && std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    if let Some(e) = join_err {
        return Err(e);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(summarize(op.name(), concurrency, seconds, &samples))
}

/// One request of the phase; returns (was a write, bytes moved).
async fn one_request(
    shared: &Shared,
    op: Op,
    i: usize,
    rng: &mut Rng,
    conns: &mut Conns,
) -> (bool, Result<u64, String>) {
    let args = &shared.args;
    let read_id = |i: usize| -> Option<String> {
        let ids = shared.ids.read().ok()?;
        (!ids.is_empty()).then(|| ids[i % ids.len()].clone())
    };
    let target = match op {
        Op::Upload => None,
        Op::Download | Op::Http => read_id(i),
        Op::Mixed => {
            if rng.unit() < args.read_ratio {
                read_id(rng.next() as usize)
            } else {
                None
            }
        }
    };
    match target {
        None => {
            let (data, ext) = shared.payload.pick(rng);
            let r = upload_one(args, conns, data, ext).await;
            let r = r.map_err(|e| e.to_string()).map(|id| {
                if let Ok(mut ids) = shared.ids.write() {
                    ids.push(id);
                }
                data.len() as u64
            });
            (true, r)
        }
        Some(id) => {
            let r = match (op, &args.http) {
                (Op::Http, Some(h)) | (Op::Mixed, Some(h)) => {
                    http_get(h, conns, &id, args.verify).await
                }
                _ => download_one(args, conns, &id)
                    .await
                    .map_err(|e| e.to_string()),
            };
            (false, r)
        }
    }
}

async fn connect(addr: &str) -> Result<Conn, ClientError> {
    Conn::connect(addr, Duration::from_secs(10), Duration::from_secs(60)).await
}

async fn storage_conn(
    storage: &mut Option<(String, Conn)>,
    addr: String,
) -> Result<&mut Conn, ClientError> {
    if storage.as_ref().is_none_or(|(a, _)| *a != addr) {
        *storage = Some((addr.clone(), connect(&addr).await?));
    }
    match storage {
        Some((_, c)) => Ok(c),
        None => Err(ClientError::Invalid("no storage connection".into())),
    }
}

async fn tracker_conn<'a>(
    args: &BenchArgs,
    tracker: &'a mut Option<Conn>,
) -> Result<&'a mut Conn, ClientError> {
    if tracker.is_none() {
        *tracker = Some(connect(&args.tracker).await?);
    }
    match tracker {
        Some(c) => Ok(c),
        None => Err(ClientError::Invalid("no tracker connection".into())),
    }
}

async fn upload_one(
    args: &BenchArgs,
    conns: &mut Conns,
    data: &[u8],
    ext: &str,
) -> Result<String, ClientError> {
    let (addr, index) = match &args.storage {
        Some(a) => (a.clone(), -1i8),
        None => {
            let t = tracker_conn(args, &mut conns.tracker).await?;
            let target = StoreTarget::decode(
                &t.call(TrackerCmd::QueryStoreWithoutGroupOne.into(), &[])
                    .await?,
            )?;
            (target.addr.to_string(), target.store_path_index as i8)
        }
    };
    let conn = storage_conn(&mut conns.storage, addr).await?;
    let mut head = BytesMut::with_capacity(UploadReq::FIXED_LEN + data.len());
    UploadReq {
        store_path_index: index,
        file_size: data.len() as u64,
        ext: ext.into(),
    }
    .encode_head(&mut head);
    head.put_slice(data);
    let resp = FileIdResp::decode(&conn.call(StorageCmd::UploadFile.into(), &head).await?)?;
    Ok(format!("{}/{}", resp.group, resp.remote))
}

/// The CRC32 and size a file id promises for its content.
fn expected_content(file_id: &str) -> Result<(u32, Option<u64>), String> {
    let id = fdfs_proto::FileId::parse(file_id).map_err(|e| e.to_string())?;
    let rec = fdfs_proto::fileid::RemoteName::parse(&id.remote, 256)
        .map_err(|e| e.to_string())?
        .record()
        .ok_or_else(|| format!("{file_id}: no record in name"))?;
    Ok((rec.crc32, rec.file_size()))
}

fn check_content(file_id: &str, crc: u32, len: u64) -> Result<(), String> {
    let (want_crc, want_len) = expected_content(file_id)?;
    if want_crc != crc || want_len.is_some_and(|n| n != len) {
        return Err(format!("{file_id}: content does not match its id"));
    }
    Ok(())
}

async fn download_one(
    args: &BenchArgs,
    conns: &mut Conns,
    file_id: &str,
) -> Result<u64, ClientError> {
    let id = fdfs_proto::FileId::parse(file_id)?;
    let addr = match &args.storage {
        Some(a) => a.clone(),
        None => {
            let t = tracker_conn(args, &mut conns.tracker).await?;
            let mut b = BytesMut::new();
            GroupFileReq {
                group: id.group.clone(),
                remote: id.remote.clone(),
            }
            .encode(&mut b);
            let targets =
                FetchTargets::decode(&t.call(TrackerCmd::QueryFetchOne.into(), &b).await?)?;
            targets
                .servers
                .first()
                .map(|s| s.to_string())
                .ok_or_else(|| ClientError::Invalid("tracker named no storage".into()))?
        }
    };
    let conn = storage_conn(&mut conns.storage, addr).await?;
    let mut b = BytesMut::new();
    DownloadReq {
        offset: 0,
        length: 0,
        group: id.group,
        remote: id.remote,
    }
    .encode(&mut b);
    let data = conn.call(StorageCmd::DownloadFile.into(), &b).await?;
    if args.verify {
        check_content(file_id, fdfs_proto::crc32(&data), data.len() as u64)
            .map_err(ClientError::Invalid)?;
    }
    Ok(data.len() as u64)
}

// ---------------------------------------------------------------------------
// Minimal HTTP/1.1 client: GET with keep-alive, Content-Length bodies only.

/// The parts of a response head the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RespHead {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    /// The server will close the connection after this response.
    close: bool,
}

const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete;
/// `Ok(Some((len, head)))`: the head took `len` bytes (blank line included).
fn parse_response_head(buf: &[u8]) -> Result<Option<(usize, RespHead)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD_BYTES {
            return Err("response head too long".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(format!("bad status line {status_line:?}")),
    };
    let status = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut head = RespHead {
        status,
        content_length: None,
        chunked: false,
        close: http10,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.close = true;
            } else if v.contains("keep-alive") {
                head.close = false;
            }
        }
    }
    // 1xx, 204 and 304 carry no body.
    if status < 200 || status == 204 || status == 304 {
        head.content_length = Some(0);
    }
    Ok(Some((end + 4, head)))
}

struct HttpConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl HttpConn {
    async fn connect(addr: &str) -> Result<Self, String> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: connect timed out"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(HttpConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        })
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = tokio::time::timeout(Duration::from_secs(60), self.stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| "HTTP read timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("HTTP connection closed early".into());
        }
        Ok(())
    }

    /// GET `path`; returns the head, the body length and its CRC32 when
    /// `crc` is asked for. The body is read and dropped as it arrives.
    async fn get(
        &mut self,
        host: &str,
        path: &str,
        crc: bool,
    ) -> Result<(RespHead, u64, u32), String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fdfs-bench\r\n\r\n");
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let head = loop {
            if let Some((len, head)) = parse_response_head(&self.buf)? {
                self.buf.advance(len);
                break head;
            }
            self.fill().await?;
        };
        if head.chunked {
            return Err("chunked responses are not supported".into());
        }
        let Some(len) = head.content_length else {
            return Err("response without Content-Length".into());
        };
        let mut hasher = crc.then(crc32fast::Hasher::new);
        let mut left = len;
        loop {
            let take = (self.buf.len() as u64).min(left) as usize;
            if let Some(h) = hasher.as_mut() {
                h.update(&self.buf[..take]);
            }
            self.buf.advance(take);
            left -= take as u64;
            if left == 0 {
                break;
            }
            self.fill().await?;
        }
        Ok((head, len, hasher.map_or(0, |h| h.finalize())))
    }
}

async fn http_get(
    addr: &str,
    conns: &mut Conns,
    file_id: &str,
    verify: bool,
) -> Result<u64, String> {
    if conns.http.is_none() {
        conns.http = Some(HttpConn::connect(addr).await?);
    }
    let Some(conn) = conns.http.as_mut() else {
        return Err("no HTTP connection".into());
    };
    let (head, len, crc) = conn.get(addr, &format!("/{file_id}"), verify).await?;
    if head.close {
        conns.http = None;
    }
    if head.status != 200 {
        return Err(format!("{file_id}: HTTP {}", head.status));
    }
    if verify {
        check_content(file_id, crc, len)?;
    }
    Ok(len)
}

// ---------------------------------------------------------------------------
// seed: the field-report scenario and its report.

async fn seed(args: BenchArgs) -> Result<(), String> {
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
            println!("{}", r.json());
        } else {
            println!("{}", r.text());
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
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
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
    s.push_str(
        "| phase | files | errors | seconds | files/s | MB/s | p50 ms | p95 ms | p99 ms | max ms |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in i.phases {
        let _ = writeln!(
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
    }
    let _ = writeln!(s, "\n![throughput and latency]({})\n", i.svg_name);
    s.push_str("## Per-second timeline\n\n");
    for p in i.phases {
        let _ = writeln!(s, "### {}\n\n```csv\n{}```\n", p.mode, p.timeline_csv());
    }
    s
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v * (1.0 - 1e-9) {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

/// Two panels: ops/s per second for each phase on one time axis, and
/// p50/p95/p99 latency bars per phase.
fn svg_chart(phases: &[Report]) -> String {
    let (w, h) = (900.0, 620.0);
    let (left, right) = (70.0, 880.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Panel 1: throughput over time.
    let (top, bottom) = (40.0, 290.0);
    let total_secs: usize = phases
        .iter()
        .map(|p| p.timeline.len())
        .sum::<usize>()
        .max(1);
    let peak = phases
        .iter()
        .flat_map(|p| p.timeline.iter().map(|t| rate(p, t)))
        .fold(0.0, f64::max);
    let ymax = nice_ceil(peak);
    let xs = |t: f64| left + (right - left) * t / total_secs as f64;
    let ys = |v: f64| bottom - (bottom - top) * v / ymax;
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">Throughput (files/s, per second)</text>"
    );
    axes(&mut s, left, right, top, bottom, ymax, "files/s");
    let step = nice_ceil(total_secs as f64 / 10.0).max(1.0);
    let mut t = 0.0;
    while t <= total_secs as f64 + 1e-9 {
        let x = xs(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            bottom + 17.0,
            fmt_num(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds</text>",
        (left + right) / 2.0,
        bottom + 32.0
    );
    let mut offset = 0usize;
    for (k, p) in phases.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<String> = p
            .timeline
            .iter()
            .map(|t| {
                format!(
                    "{:.1},{:.1}",
                    xs((offset + t.t as usize) as f64 + 0.5),
                    ys(rate(p, t))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        if pts.len() <= 60 {
            for pt in &pts {
                let (x, y) = pt.split_once(',').unwrap_or_default();
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>"
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" font-weight=\"bold\">{} ({:.0}/s)</text>",
            left + 8.0,
            top + 14.0 + 16.0 * k as f64,
            p.mode,
            p.ops_per_sec()
        );
        offset += p.timeline.len();
        if k + 1 < phases.len() {
            let x = xs(offset as f64);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>"
            );
        }
    }
    // Panel 2: latency percentiles.
    let (top, bottom) = (370.0, 570.0);
    let lmax = nice_ceil(phases.iter().map(|p| p.p99_ms).fold(0.0, f64::max));
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{:.1}\" font-size=\"15\" font-weight=\"bold\">Latency percentiles (ms)</text>",
        top - 16.0
    );
    axes(&mut s, left, right, top, bottom, lmax, "ms");
    let group_w = (right - left) / phases.len().max(1) as f64;
    let bar_w = (group_w / 5.0).min(60.0);
    let shades = [("p50", 1.0), ("p95", 0.7), ("p99", 0.45)];
    for (k, p) in phases.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let gx = left + group_w * k as f64 + (group_w - 3.0 * bar_w) / 2.0;
        for (j, ((label, opacity), v)) in shades
            .iter()
            .zip([p.p50_ms, p.p95_ms, p.p99_ms])
            .enumerate()
        {
            let x = gx + bar_w * j as f64;
            let y = bottom - (bottom - top) * (v / lmax).min(1.0);
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" fill-opacity=\"{opacity}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{label}</text>",
                bar_w - 4.0,
                bottom - y,
                x + (bar_w - 4.0) / 2.0,
                y - 3.0,
                fmt_num(v),
                x + (bar_w - 4.0) / 2.0,
                bottom + 13.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{color}\" font-weight=\"bold\">{}</text>",
            gx + 1.5 * bar_w,
            bottom + 30.0,
            p.mode
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Ops per second of a timeline bucket; the last bucket of a phase usually
/// covers only part of a second and is scaled to a rate.
fn rate(p: &Report, t: &Second) -> f64 {
    let covered = p.seconds - f64::from(t.t);
    if covered > 0.05 && covered < 1.0 {
        t.ops as f64 / covered
    } else {
        t.ops as f64
    }
}

/// Y axis with five gridlines from 0 to `ymax`, and the x axis line.
fn axes(s: &mut String, left: f64, right: f64, top: f64, bottom: f64, ymax: f64, unit: &str) {
    for k in 0..=5 {
        let v = ymax * f64::from(k) / 5.0;
        let y = bottom - (bottom - top) * f64::from(k) / 5.0;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#333\"/><text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{unit}</text>",
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
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
    fn uniform_sizes_stay_in_range_and_cover_it() {
        let mut rng = Rng(7);
        let (min, max) = (8 * 1024, 128 * 1024);
        let sizes: Vec<usize> = (0..20_000)
            .map(|_| uniform_size(min, max, rng.next()))
            .collect();
        assert!(sizes.iter().all(|&s| (min..=max).contains(&s)));
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        let want = (min + max) as f64 / 2.0;
        assert!((mean - want).abs() / want < 0.02, "mean {mean}");
        assert!(sizes.iter().any(|&s| s < min + 1024));
        assert!(sizes.iter().any(|&s| s > max - 1024));
        assert_eq!(uniform_size(5, 5, 12345), 5);
    }

    #[test]
    fn payload_random_and_files() {
        let p = Payload::random(100, 200);
        let mut rng = Rng(3);
        for _ in 0..100 {
            let (d, ext) = p.pick(&mut rng);
            assert!((100..=200).contains(&d.len()));
            assert_eq!(ext, "jpg");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"hello").unwrap();
        std::fs::write(dir.path().join("b.toolongext"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let p = Payload::from_dir(dir.path()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let (d, ext) = p.pick(&mut rng);
            seen.insert((d.to_vec(), ext.to_string()));
        }
        let want: std::collections::BTreeSet<_> = [
            (b"hello".to_vec(), "png".to_string()),
            (b"x".to_vec(), "bin".to_string()),
        ]
        .into();
        assert_eq!(seen, want);
        let empty = tempfile::tempdir().unwrap();
        assert!(Payload::from_dir(empty.path()).is_err());
    }

    #[test]
    fn http_head_parsing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\ncontent-length: 5\r\n\r\nhello";
        let (len, head) = parse_response_head(r).unwrap().unwrap();
        assert_eq!(&r[len..], b"hello");
        assert_eq!(
            head,
            RespHead {
                status: 200,
                content_length: Some(5),
                chunked: false,
                close: false
            }
        );
        // Incomplete head.
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(),
            None
        );
        // HTTP/1.0 closes unless keep-alive; Connection: close on 1.1.
        let (_, h) = parse_response_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close && h.status == 404 && h.content_length.is_none());
        let (_, h) = parse_response_head(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(!h.close);
        let (_, h) = parse_response_head(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.close && h.chunked);
        let (_, h) = parse_response_head(b"HTTP/1.1 304 Not Modified\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.content_length, Some(0));
        // Malformed.
        assert!(parse_response_head(b"HTTP/2 200 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n").is_err());
        assert!(parse_response_head(&vec![b'a'; MAX_HEAD_BYTES + 1]).is_err());
    }

    #[tokio::test]
    async fn http_client_keeps_alive_and_verifies() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let body = vec![7u8; 100_000];
        let crc = fdfs_proto::crc32(&body);
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut served = 0;
            while served < 3 {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                while let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..p + 4);
                    let mut resp =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 100_000)
                            .into_bytes();
                    resp.extend_from_slice(&[7u8; 100_000]);
                    s.write_all(&resp).await.unwrap();
                    served += 1;
                }
            }
        });
        let mut c = HttpConn::connect(&addr).await.unwrap();
        for _ in 0..3 {
            let (head, len, got) = c.get(&addr, "/group1/x", true).await.unwrap();
            assert_eq!((head.status, len, got), (200, 100_000, crc));
        }
        server.await.unwrap();
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
    }

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
        };
        let md = seed_markdown(&SeedInfo {
            stamp: "s",
            machine: "m",
            cmdline: "fdfs bench seed",
            args: &args,
            dist: "uniform",
            svg_name: "seed-s.svg",
            phases: &[r, d],
        });
        assert!(md.contains("| upload | 3000 | 0 | 3.00 | 1000 |"));
        assert!(md.contains("![throughput and latency](seed-s.svg)"));
    }
}
