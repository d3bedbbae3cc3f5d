//! One phase of load: `concurrency` workers, each with connections of its
//! own, issue requests until the count or the time runs out, while a ticker
//! prints progress; their samples become the phase's report.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::cpu::cpu_us;
use super::http::{http_get, HttpConn};
use super::payload::{Payload, Rng};
use super::protocol::{download_one, upload_one, Kept};
use super::stats::{summarize, Report, Sample};
use super::BenchArgs;

/// Pause before a failed request is tried again (`--retry-failed`): a
/// server being restarted refuses connections at once, and 256 workers
/// retrying without pause would only spin.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The request a phase repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Upload,
    Download,
    Http,
    Mixed,
}

impl Op {
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Upload => "upload",
            Op::Download => "download",
            Op::Http => "http",
            Op::Mixed => "mixed",
        }
    }
}

/// When a phase ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limit {
    Count(usize),
    Time(Duration),
}

/// What every worker of a phase reads.
pub(super) struct Shared {
    pub(super) args: BenchArgs,
    pub(super) payload: Payload,
    /// Ids to read; uploads append theirs.
    pub(super) ids: RwLock<Vec<String>>,
}

/// Per-worker connections, kept across requests.
#[derive(Default)]
pub(super) struct Conns {
    pub(super) tracker: Option<Kept>,
    pub(super) storage: Option<Kept>,
    pub(super) http: Option<HttpConn>,
}

pub(super) async fn run_phase(
    shared: &Arc<Shared>,
    op: Op,
    limit: Limit,
    concurrency: usize,
) -> Result<Report, String> {
    if concurrency == 0 {
        return Err("--concurrency must be >= 1".into());
    }
    let pids = &shared.args.server_pid;
    let cpu_before = if pids.is_empty() {
        None
    } else {
        Some(cpu_us(pids)?)
    };
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let progress_line = !shared.args.quiet && std::io::stderr().is_terminal();
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (shared, next, done, failed, stop) = (
            shared.clone(),
            next.clone(),
            done.clone(),
            failed.clone(),
            stop.clone(),
        );
        let retry_failed = shared.args.retry_failed && matches!(limit, Limit::Count(_));
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
                loop {
                    let t0 = Instant::now();
                    let (write, r) = one_request(&shared, op, i, &mut rng, &mut conns).await;
                    let end = started.elapsed();
                    let end_ms = end.as_millis().min(u128::from(u32::MAX)) as u32;
                    match r {
                        Ok(bytes) => {
                            samples.push(Sample {
                                end_ms,
                                lat_us: t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32,
                                bytes: bytes.min(u64::from(u32::MAX)) as u32,
                                write,
                                err: false,
                            });
                            break;
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                                // Off the progress line, when there is one.
                                let sep = if progress_line { "\n" } else { "" };
                                eprintln!("{sep}fdfs bench: {e}");
                            }
                            conns = Conns::default();
                            samples.push(Sample {
                                end_ms,
                                lat_us: 0,
                                bytes: 0,
                                write,
                                err: true,
                            });
                            if !retry_failed {
                                break;
                            }
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                    }
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
    let mut report = summarize(op.name(), concurrency, seconds, &samples);
    if let Some(before) = cpu_before {
        report.server_cpu_us = Some(cpu_us(pids)?.saturating_sub(before));
    }
    Ok(report)
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
