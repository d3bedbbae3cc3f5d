//! `fdfs bench upload|download`: whole-system load against any FastDFS
//! server (ours or the original) over the binary protocol. Each worker keeps
//! its connections open across requests, as a pooled client does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use fdfs_client::{ClientError, Conn};
use fdfs_proto::storage_msg::{DownloadReq, FileIdResp, UploadReq};
use fdfs_proto::tracker_msg::{FetchTargets, GroupFileReq, StoreTarget};
use fdfs_proto::{StorageCmd, TrackerCmd};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// upload or download.
    #[arg(value_parser = ["upload", "download"])]
    pub mode: String,
    /// Tracker address.
    #[arg(long, default_value = "127.0.0.1:22122")]
    pub tracker: String,
    /// Talk to this storage directly instead of asking the tracker.
    #[arg(long)]
    pub storage: Option<String>,
    /// Number of files to upload (download: ids read from --ids).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Smallest file size in bytes (uniform between min and max).
    #[arg(long, default_value_t = 8 * 1024)]
    pub min_size: usize,
    /// Largest file size in bytes.
    #[arg(long, default_value_t = 128 * 1024)]
    pub max_size: usize,
    /// upload: write the file ids here; download: read them from here.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// download: check each file's CRC32 against its file id.
    #[arg(long)]
    pub verify: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Default)]
struct Totals {
    ops: AtomicUsize,
    errors: AtomicUsize,
    bytes: AtomicU64,
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
    match rt.block_on(bench(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fdfs bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn connect(addr: &str) -> Result<Conn, ClientError> {
    Conn::connect(addr, Duration::from_secs(10), Duration::from_secs(60)).await
}

async fn bench(args: BenchArgs) -> Result<(), String> {
    if args.min_size > args.max_size || args.concurrency == 0 {
        return Err("need --min-size <= --max-size and --concurrency >= 1".into());
    }
    let ids: Vec<String> = match args.mode.as_str() {
        "download" => {
            let path = args
                .ids
                .clone()
                .ok_or("download needs --ids FILE (written by `bench upload --ids`)")?;
            std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        }
        _ => Vec::new(),
    };
    let total = if args.mode == "download" {
        ids.len()
    } else {
        args.count
    };
    // One shared block of random bytes; each upload sends a slice of it.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pool: Arc<Vec<u8>> = Arc::new(
        (0..args.max_size + 4096)
            .map(|_| rng.next() as u8)
            .collect(),
    );
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let totals = Arc::new(Totals::default());
    let args = Arc::new(args);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (args, pool, ids, next, totals) = (
            args.clone(),
            pool.clone(),
            ids.clone(),
            next.clone(),
            totals.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (w as u64 + 1));
            let mut lat_us: Vec<u32> = Vec::new();
            let mut made: Vec<String> = Vec::new();
            let mut tracker: Option<Conn> = None;
            let mut storage: Option<(String, Conn)> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t0 = Instant::now();
                let r = if args.mode == "upload" {
                    let span = (args.max_size - args.min_size) as u64 + 1;
                    let size = args.min_size + (rng.next() % span) as usize;
                    let off = (rng.next() % 4096) as usize;
                    upload_one(&args, &mut tracker, &mut storage, &pool[off..off + size])
                        .await
                        .map(|id| {
                            made.push(id);
                            size as u64
                        })
                } else {
                    download_one(&args, &mut tracker, &mut storage, &ids[i]).await
                };
                match r {
                    Ok(bytes) => {
                        lat_us.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        totals.ops.fetch_add(1, Ordering::Relaxed);
                        totals.bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(e) => {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                        if totals.errors.load(Ordering::Relaxed) <= 5 {
                            eprintln!("fdfs bench: {e}");
                        }
                        tracker = None;
                        storage = None;
                    }
                }
            }
            (lat_us, made)
        }));
    }
    let progress = {
        let totals = totals.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done =
                    totals.ops.load(Ordering::Relaxed) + totals.errors.load(Ordering::Relaxed);
                eprint!("\r{done}/{total} ");
            }
        })
    };
    let mut lat: Vec<u32> = Vec::new();
    let mut made: Vec<String> = Vec::new();
    for w in workers {
        let (l, m) = w.await.map_err(|e| e.to_string())?;
        lat.extend(l);
        made.extend(m);
    }
    progress.abort();
    eprint!("\r");
    let elapsed = started.elapsed().as_secs_f64();
    if args.mode == "upload" {
        if let Some(path) = &args.ids {
            std::fs::write(path, made.join("\n") + "\n")
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[idx]) / 1000.0
    };
    let ops = totals.ops.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let mb = totals.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    let (p50, p95, p99, max) = (pct(0.50), pct(0.95), pct(0.99), pct(1.0));
    if args.json {
        println!(
            "{{\"mode\":\"{}\",\"ops\":{ops},\"errors\":{errors},\"seconds\":{elapsed:.3},\"ops_per_sec\":{:.1},\"mb_per_sec\":{:.2},\"p50_ms\":{p50:.2},\"p95_ms\":{p95:.2},\"p99_ms\":{p99:.2},\"max_ms\":{max:.2},\"concurrency\":{}}}",
            args.mode,
            ops as f64 / elapsed,
            mb / elapsed,
            args.concurrency
        );
    } else {
        println!(
            "{} {ops} files ({errors} errors) in {elapsed:.2}s with {} connections",
            args.mode, args.concurrency
        );
        println!(
            "  {:.1} files/s, {:.2} MB/s",
            ops as f64 / elapsed,
            mb / elapsed
        );
        println!("  latency ms: p50 {p50:.2}  p95 {p95:.2}  p99 {p99:.2}  max {max:.2}");
    }
    if errors > 0 {
        return Err(format!("{errors} requests failed"));
    }
    Ok(())
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
    tracker: &mut Option<Conn>,
    storage: &mut Option<(String, Conn)>,
    data: &[u8],
) -> Result<String, ClientError> {
    let (addr, index) = match &args.storage {
        Some(a) => (a.clone(), -1i8),
        None => {
            let t = tracker_conn(args, tracker).await?;
            let target = StoreTarget::decode(
                &t.call(TrackerCmd::QueryStoreWithoutGroupOne.into(), &[])
                    .await?,
            )?;
            (target.addr.to_string(), target.store_path_index as i8)
        }
    };
    let conn = storage_conn(storage, addr).await?;
    let mut head = BytesMut::with_capacity(15 + data.len());
    UploadReq {
        store_path_index: index,
        file_size: data.len() as u64,
        ext: "jpg".into(),
    }
    .encode_head(&mut head);
    head.put_slice(data);
    let resp = FileIdResp::decode(&conn.call(StorageCmd::UploadFile.into(), &head).await?)?;
    Ok(format!("{}/{}", resp.group, resp.remote))
}

async fn download_one(
    args: &BenchArgs,
    tracker: &mut Option<Conn>,
    storage: &mut Option<(String, Conn)>,
    file_id: &str,
) -> Result<u64, ClientError> {
    let id = fdfs_proto::FileId::parse(file_id)?;
    let addr = match &args.storage {
        Some(a) => a.clone(),
        None => {
            let t = tracker_conn(args, tracker).await?;
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
    let conn = storage_conn(storage, addr).await?;
    let mut b = BytesMut::new();
    DownloadReq {
        offset: 0,
        length: 0,
        group: id.group.clone(),
        remote: id.remote.clone(),
    }
    .encode(&mut b);
    let data = conn.call(StorageCmd::DownloadFile.into(), &b).await?;
    if args.verify {
        let rec = fdfs_proto::fileid::RemoteName::parse(&id.remote, 256)?
            .record()
            .ok_or_else(|| ClientError::Invalid(format!("{file_id}: no record in name")))?;
        if rec.crc32 != fdfs_proto::crc32(&data) || rec.file_size() != Some(data.len() as u64) {
            return Err(ClientError::Invalid(format!(
                "{file_id}: content does not match its id"
            )));
        }
    }
    Ok(data.len() as u64)
}
