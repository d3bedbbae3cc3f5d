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

/// How far a phase is, shared by its workers and its progress line.
#[derive(Default)]
struct Progress {
    /// The next request's index.
    next: AtomicUsize,
    done: AtomicUsize,
    failed: AtomicUsize,
    /// A timed phase is over.
    stop: AtomicBool,
}

/// What every worker of one phase runs with.
struct PhaseJob {
    shared: Arc<Shared>,
    op: Op,
    limit: Limit,
    progress: Arc<Progress>,
    started: Instant,
    /// A progress line is on the terminal (errors go below it).
    progress_line: bool,
    retry_failed: bool,
}

/// Threads that run the workers, each a single-threaded runtime with its
/// share of them: a worker's socket wakes the thread that waits on it, and
/// no thread wakes another to steal its tasks. The bench client shares
/// the machine with the servers it measures, and on a multi-threaded
/// runtime a third of its CPU went to those wake-ups.
fn client_threads(concurrency: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(concurrency)
        .max(1)
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
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let progress_line = !shared.args.quiet && std::io::stderr().is_terminal();
    let job = Arc::new(PhaseJob {
        shared: shared.clone(),
        op,
        limit,
        progress: progress.clone(),
        started,
        progress_line,
        retry_failed: shared.args.retry_failed && matches!(limit, Limit::Count(_)),
    });
    let threads = client_threads(concurrency);
    let mut running = Vec::with_capacity(threads);
    for t in 0..threads {
        let job = job.clone();
        let spawned = std::thread::Builder::new()
            .name("bench-client".into())
            .spawn(move || job.run_workers((t..concurrency).step_by(threads).collect()));
        running.push(spawned.map_err(|e| format!("cannot start a client thread: {e}"))?);
    }
    let ticker = {
        let progress = progress.clone();
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
                        progress.stop.store(true, Ordering::Relaxed);
                    }
                }
                let now = progress.done.load(Ordering::Relaxed);
                let rate = now - last;
                last = now;
                if quiet || (!tty && !tick.is_multiple_of(10)) {
                    continue;
                }
                let of = match limit {
                    Limit::Count(n) => format!("{now}/{n}"),
                    Limit::Time(d) => format!("{now} ({}s/{}s)", elapsed.as_secs(), d.as_secs()),
                };
                let errs = progress.failed.load(Ordering::Relaxed);
                if tty {
                    eprint!("\r{} {of}  {rate} ops/s  {errs} errors   ", op.name());
                } else {
                    eprintln!("{} {of}  {rate} ops/s  {errs} errors", op.name());
                }
            }
        })
    };
    let joined = tokio::task::spawn_blocking(move || {
        let mut samples: Vec<Sample> = Vec::new();
        for t in running {
            samples.extend(
                t.join()
                    .map_err(|_| "a client thread panicked".to_string())??,
            );
        }
        Ok::<_, String>(samples)
    })
    .await;
    ticker.abort();
    if !shared.args.quiet && std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let samples = joined.map_err(|e| e.to_string())??;
    let seconds = started.elapsed().as_secs_f64();
    let mut report = summarize(op.name(), concurrency, seconds, &samples);
    if let Some(before) = cpu_before {
        report.server_cpu_us = Some(cpu_us(pids)?.saturating_sub(before));
    }
    Ok(report)
}

impl PhaseJob {
    /// Runs workers `ids` on a runtime of this thread's own, to the end of
    /// the phase; returns their samples.
    fn run_workers(self: Arc<Self>, ids: Vec<usize>) -> Result<Vec<Sample>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("client runtime: {e}"))?;
        rt.block_on(async {
            let workers: Vec<_> = ids
                .into_iter()
                .map(|w| tokio::spawn(self.clone().worker(w)))
                .collect();
            let mut samples = Vec::new();
            for w in workers {
                samples.extend(w.await.map_err(|e| e.to_string())?);
            }
            Ok(samples)
        })
    }

    /// One worker: requests until the count or the time runs out.
    async fn worker(self: Arc<Self>, w: usize) -> Vec<Sample> {
        let progress = &self.progress;
        let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9));
        let mut conns = Conns::default();
        let mut samples: Vec<Sample> = Vec::new();
        loop {
            let i = match self.limit {
                Limit::Count(n) => {
                    let i = progress.next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    i
                }
                Limit::Time(_) => {
                    if progress.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    progress.next.fetch_add(1, Ordering::Relaxed)
                }
            };
            loop {
                let t0 = Instant::now();
                let (write, r) = one_request(&self.shared, self.op, i, &mut rng, &mut conns).await;
                let end = self.started.elapsed();
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
                        if progress.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            // Off the progress line, when there is one.
                            let sep = if self.progress_line { "\n" } else { "" };
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
                        if !self.retry_failed {
                            break;
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
            progress.done.fetch_add(1, Ordering::Relaxed);
        }
        samples
    }
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
