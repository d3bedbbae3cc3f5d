//! Bulk forms of `fdfs upload`, `fdfs download` and `fdfs delete`: many
//! files (paths, directories with -r, glob patterns) over a bounded number
//! of concurrent jobs sharing the client's connection pool, a manifest that
//! records every upload as it completes (so a rerun resumes), per-file
//! errors reported at the end, and a progress bar on a terminal.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::{Instant, UNIX_EPOCH};

use fdfs_client::{decode_remote_name, ClientError, UploadOptions};
use fdfs_proto::fileid::{ext_from_local_name, FileKind};
use fdfs_proto::metadata::MetaPair;
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::FileId;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::tools::format::errno_text;
use crate::tools::manifest::{self, Format, Row};
use crate::tools::session::{exit_code, Session};

/// Concurrent jobs when `-j` is not given.
pub const DEFAULT_JOBS: usize = 4;

/// Suffix of a download in progress; renamed to the real name once verified.
const PART_SUFFIX: &str = ".fdfs-part";

const EISDIR: u8 = 21;
const ENOENT: u8 = 2;
const EINVAL: u8 = 22;
const EIO: u8 = 5;

/// What `fdfs upload` needs beyond the session in its bulk form.
pub struct UploadJob {
    pub paths: Vec<PathBuf>,
    pub recursive: bool,
    pub jobs: usize,
    pub manifest: Option<PathBuf>,
    pub format: Option<String>,
    pub group: Option<String>,
    pub ext: Option<String>,
    pub metadata: Vec<MetaPair>,
    pub storage: Option<ServerAddr>,
}

/// One file that could not be handled, reported after the run.
struct Failure {
    path: String,
    file_id: Option<String>,
    errno: u8,
    reason: String,
}

impl Failure {
    fn new(path: &str, file_id: Option<&str>, errno: u8, reason: impl Into<String>) -> Self {
        Failure {
            path: path.to_string(),
            file_id: file_id.map(str::to_string),
            errno,
            reason: reason.into(),
        }
    }

    fn from_client(path: &str, file_id: Option<&str>, e: &ClientError) -> Self {
        Failure::new(path, file_id, e.errno(), describe(e))
    }
}

/// The text a one-line tool error shows for `e` (strerror for statuses
/// and OS errors, as the single-file forms print).
fn describe(e: &ClientError) -> String {
    let n = i32::from(e.errno());
    let detail = match e {
        ClientError::Status(_) => errno_text(n),
        ClientError::Io(io) if io.raw_os_error().is_some() => errno_text(n),
        other => other.to_string(),
    };
    if e.closed_without_answer() {
        format!("{detail}; {}", ClientError::CLOSED_HINT)
    } else {
        detail
    }
}

fn io_failure(path: &str, file_id: Option<&str>, e: &std::io::Error) -> Failure {
    match e.raw_os_error().and_then(|n| u8::try_from(n).ok()) {
        Some(n) => Failure::new(path, file_id, n, errno_text(i32::from(n))),
        None => Failure::new(path, file_id, EIO, e.to_string()),
    }
}

/// Text from a manifest or the file system, safe for one terminal line.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Errors, one line each, then the summary; the exit status is the first
/// failure's errno (EIO when it has none), 0 when nothing failed.
fn finish(failures: &mut [Failure], summary: String) -> ExitCode {
    for f in failures.iter() {
        match &f.file_id {
            Some(id) => eprintln!(
                "fdfs: {} ({}): {}",
                printable(&f.path),
                printable(id),
                printable(&f.reason)
            ),
            None => eprintln!("fdfs: {}: {}", printable(&f.path), printable(&f.reason)),
        }
    }
    eprintln!("{summary}");
    match failures.first() {
        None => ExitCode::SUCCESS,
        Some(f) if f.errno == 0 => exit_code(i32::from(EIO)),
        Some(f) => exit_code(i32::from(f.errno)),
    }
}

fn elapsed(start: Instant) -> String {
    format!("{:.2} s", start.elapsed().as_secs_f64())
}

// ---- concurrency ----------------------------------------------------------

/// Runs `f` on every item with at most `jobs` running at once. All of it
/// runs on the calling task: the work is network-bound and the client is
/// shared by reference, so no spawning (and no `Send`/`'static`) is needed.
async fn for_each_concurrent<T>(items: &[T], jobs: usize, f: impl AsyncFn(&T)) {
    let next = Cell::new(0usize);
    let worker = async || loop {
        let i = next.get();
        let Some(item) = items.get(i) else { break };
        next.set(i + 1);
        f(item).await;
    };
    let workers: Vec<_> = (0..jobs.clamp(1, items.len().max(1)))
        .map(|_| Box::pin(worker()))
        .collect();
    join_all(workers).await;
}

async fn join_all<F: Future<Output = ()>>(futures: Vec<Pin<Box<F>>>) {
    let mut slots: Vec<Option<Pin<Box<F>>>> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut slots {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

// ---- progress ---------------------------------------------------------------

/// A byte progress bar on stderr when it is a terminal, else nothing.
fn progress(total_bytes: u64, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total_bytes);
    let template = format!(
        "{verb} [{{elapsed_precise}}] {{wide_bar}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style);
    }
    pb
}

/// A reader that moves the progress bar as bytes go out.
struct Counted<R> {
    inner: R,
    pb: ProgressBar,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.pb.inc(read as u64);
        res
    }
}

/// A file writer that computes the CRC32 and length of what it writes and
/// moves the progress bar.
struct Verifying {
    file: tokio::fs::File,
    crc: crc32fast::Hasher,
    len: u64,
    pb: ProgressBar,
}

impl AsyncWrite for Verifying {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.file).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.crc.update(&buf[..n]);
            this.len += n as u64;
            this.pb.inc(n as u64);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

// ---- finding files -----------------------------------------------------------

/// True when `s` has glob metacharacters.
fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style match of one path component: `*`, `?`, `[abc]`, `[a-z]`,
/// `[!x]`. A leading dot must be matched literally, as in the shell.
fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|k| match_from(&p[1..], &n[k..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                return n.first() == Some(&'[') && match_from(&p[1..], &n[1..]);
            };
            let Some(&c) = n.first() else { return false };
            let mut set = &p[1..close];
            let negate = matches!(set.first(), Some('!' | '^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_from(&p[close + 1..], &n[1..])
        }
        Some(&c) => n.first() == Some(&c) && match_from(&p[1..], &n[1..]),
    }
}

/// Paths matching a glob pattern, sorted.
fn expand_pattern(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let mut current: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if !is_pattern(part) {
                let p = base.join(part);
                if p.symlink_metadata().is_ok() {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|name| glob_match(part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| base.join(name)));
        }
        current = next;
    }
    current.retain(|p| !p.as_os_str().is_empty() && p != Path::new("/"));
    current
}

/// Regular files under `dir`, depth first in name order. Symlinks to files
/// are followed; symlinks to directories are not (no loops).
fn walk(dir: &Path, files: &mut Vec<PathBuf>, failures: &mut Vec<Failure>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            failures.push(io_failure(&dir.to_string_lossy(), None, &e));
            return;
        }
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, files, failures);
        } else if kind.is_symlink() {
            if path.metadata().is_ok_and(|m| m.is_file()) {
                files.push(path);
            }
        } else if kind.is_file() {
            files.push(path);
        } else {
            failures.push(Failure::new(
                &path.to_string_lossy(),
                None,
                EINVAL,
                "not a regular file",
            ));
        }
    }
}

/// The files the arguments name: files as given, directories walked with
/// -r (an error without), patterns expanded. Duplicates are dropped.
fn collect(paths: &[PathBuf], recursive: bool, failures: &mut Vec<Failure>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for arg in paths {
        let text = arg.to_string_lossy();
        let candidates = if arg.symlink_metadata().is_err() && is_pattern(&text) {
            let matches = expand_pattern(&text);
            if matches.is_empty() {
                failures.push(Failure::new(
                    &text,
                    None,
                    ENOENT,
                    "no file matches this pattern",
                ));
            }
            matches
        } else {
            vec![arg.clone()]
        };
        for path in candidates {
            match path.metadata() {
                Ok(m) if m.is_dir() => {
                    if recursive {
                        walk(&path, &mut found, failures);
                    } else {
                        failures.push(Failure::new(
                            &path.to_string_lossy(),
                            None,
                            EISDIR,
                            "Is a directory (use -r to upload what it holds)",
                        ));
                    }
                }
                Ok(_) => found.push(path),
                Err(e) => failures.push(io_failure(&path.to_string_lossy(), None, &e)),
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(p.clone()));
    found
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

// ---- upload -------------------------------------------------------------------

/// `http://IP[:PORT]/FILE_ID[?token=..&ts=..]`, the URL the C client's
/// test tool prints: the storage that took the file, the conf's
/// http.tracker_server_port (left out when 80), and an anti-steal token
/// over the whole file id when the conf turns tokens on.
fn file_url(s: &Session, storage_ip: &str, id: &FileId) -> String {
    let port = match s.conf.http_tracker_server_port {
        80 => String::new(),
        p => format!(":{p}"),
    };
    let host = if storage_ip.contains(':') {
        format!("[{storage_ip}]")
    } else {
        storage_ip.to_string()
    };
    let mut url = format!("http://{host}{port}/{id}");
    if s.conf.http_anti_steal_check_token {
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let token =
            fdfs_http::token::make_token(&id.to_string(), &s.conf.http_anti_steal_secret_key, now);
        url.push_str(&format!("?token={token}&ts={now}"));
    }
    url
}

struct Pending {
    path: PathBuf,
    text: String,
    size: u64,
    mtime_ns: i128,
}

/// Opens a manifest for appending, or says why not (one line, exit code).
fn open_manifest(path: &Path, format: Format) -> Result<manifest::Writer, ExitCode> {
    manifest::Writer::open(path, format).map_err(|e| {
        eprintln!(
            "fdfs: {}: {}",
            path.display(),
            describe(&ClientError::Io(e))
        );
        exit_code(i32::from(EIO))
    })
}

fn pick_format(explicit: Option<&str>, path: &Path) -> Result<Format, ExitCode> {
    Format::pick(explicit, path).map_err(|e| {
        eprintln!("fdfs: {e}");
        exit_code(i32::from(EINVAL))
    })
}

/// `fdfs upload` with many paths, -r, -j or --manifest.
pub fn upload(s: &Session, job: UploadJob) -> ExitCode {
    let start = Instant::now();
    let mut failures = Vec::new();
    let files = collect(&job.paths, job.recursive, &mut failures);

    let (done, mut writer) = match &job.manifest {
        Some(path) => {
            let format = match pick_format(job.format.as_deref(), path) {
                Ok(f) => f,
                Err(c) => return c,
            };
            let rows = match manifest::read(path, format) {
                Ok((rows, _torn)) => rows,
                Err(e) => {
                    eprintln!(
                        "fdfs: {}: {}",
                        path.display(),
                        describe(&ClientError::Io(e))
                    );
                    return exit_code(i32::from(EIO));
                }
            };
            let writer = match open_manifest(path, format) {
                Ok(w) => w,
                Err(c) => return c,
            };
            (rows, Some(writer))
        }
        None => (Vec::new(), None),
    };
    // Last row wins: a file uploaded again after a change has a newer row.
    let done: std::collections::HashMap<&str, &Row> =
        done.iter().map(|r| (r.path.as_str(), r)).collect();

    // `upload -r --manifest m.csv .` must not upload its own manifest.
    let manifest_file = job.manifest.as_ref().and_then(|m| m.canonicalize().ok());
    let mut pending = Vec::new();
    let mut skipped = 0usize;
    for path in files {
        if manifest_file.is_some() && path.canonicalize().ok() == manifest_file {
            continue;
        }
        let Some(text) = path.to_str().map(str::to_string) else {
            failures.push(Failure::new(
                &path.to_string_lossy(),
                None,
                EINVAL,
                "path is not valid UTF-8; a manifest cannot record it",
            ));
            continue;
        };
        let meta = match path.metadata() {
            Ok(m) => m,
            Err(e) => {
                failures.push(io_failure(&text, None, &e));
                continue;
            }
        };
        let (size, mtime_ns) = (meta.len(), mtime_ns(&meta));
        if done
            .get(text.as_str())
            .is_some_and(|r| r.size == size && r.mtime_ns == mtime_ns)
        {
            skipped += 1;
            continue;
        }
        pending.push(Pending {
            path,
            text,
            size,
            mtime_ns,
        });
    }

    let total: u64 = pending.iter().map(|p| p.size).sum();
    let pb = progress(total, "upload");
    let uploaded = Cell::new(0usize);
    let bytes = Cell::new(0u64);
    let failed = RefCell::new(Vec::new());
    let writer_cell = RefCell::new(writer.take());
    let quiet_stdout = job.manifest.is_some();

    s.rt.block_on(for_each_concurrent(
        &pending,
        job.jobs,
        async |p: &Pending| {
            match upload_one(s, &job, p, &pb).await {
                Ok((id, ip)) => {
                    let crc32 = decode_remote_name(&id.remote).map_or(0, |i| i.crc32);
                    let row = Row {
                        path: p.text.clone(),
                        file_id: id.to_string(),
                        url: file_url(s, &ip, &id),
                        size: p.size,
                        mtime_ns: p.mtime_ns,
                        crc32,
                    };
                    if let Some(w) = writer_cell.borrow_mut().as_mut() {
                        if let Err(e) = w.append(&row) {
                            // The file is stored but unrecorded: say which id.
                            failed.borrow_mut().push(
                                io_failure(&p.text, Some(&row.file_id), &e)
                                    .with_reason_prefix("stored, but the manifest write failed"),
                            );
                            return;
                        }
                    }
                    if !quiet_stdout {
                        pb.suspend(|| outln!("{}\t{}", row.path, row.file_id));
                    }
                    uploaded.set(uploaded.get() + 1);
                    pb.set_message(format!("{}/{} files", uploaded.get(), pending.len()));
                    bytes.set(bytes.get() + p.size);
                }
                Err(e) => failed
                    .borrow_mut()
                    .push(Failure::from_client(&p.text, None, &e)),
            }
        },
    ));
    pb.finish_and_clear();

    failures.extend(failed.into_inner());
    let summary = format!(
        "upload: {} uploaded, {skipped} skipped, {} failed, {} bytes, {}",
        uploaded.get(),
        failures.len(),
        bytes.get(),
        elapsed(start)
    );
    finish(&mut failures, summary)
}

impl Failure {
    fn with_reason_prefix(mut self, prefix: &str) -> Self {
        self.reason = format!("{prefix}: {}", self.reason);
        self
    }
}

/// Uploads one file; returns its id and the IP of the storage that took it.
async fn upload_one(
    s: &Session,
    job: &UploadJob,
    p: &Pending,
    pb: &ProgressBar,
) -> Result<(FileId, String), ClientError> {
    let file = tokio::fs::File::open(&p.path).await?;
    let (addr, index) = match &job.storage {
        Some(a) => (a.clone(), None),
        None => {
            let t = s.client.query_store(job.group.as_deref()).await?;
            // The index travels as a signed byte; 255 means "any".
            (t.addr, Some(t.store_path_index as i8))
        }
    };
    let opts = UploadOptions {
        group: job.group.clone(),
        ext: Some(
            job.ext
                .clone()
                .unwrap_or_else(|| ext_from_local_name(&p.text)),
        ),
        metadata: job.metadata.clone(),
        storage: Some(addr.clone()),
        store_path_index: index,
        ..Default::default()
    };
    let mut src = Counted {
        inner: file,
        pb: pb.clone(),
    };
    let id = s.client.upload_reader(&mut src, p.size, &opts).await?;
    Ok((id, addr.ip))
}

// ---- download and delete --------------------------------------------------

/// Rows of the manifest, or the one-line error and exit code.
fn load_rows(path: &Path, format: Option<&str>) -> Result<Vec<Row>, ExitCode> {
    let format = pick_format(format, path)?;
    if !path.exists() {
        eprintln!(
            "fdfs: {}: {}",
            path.display(),
            errno_text(i32::from(ENOENT))
        );
        return Err(exit_code(i32::from(ENOENT)));
    }
    match manifest::read(path, format) {
        Ok((rows, torn)) => {
            if torn > 0 {
                eprintln!("fdfs: {}: {torn} malformed row(s) skipped", path.display());
            }
            Ok(rows)
        }
        Err(e) => {
            eprintln!(
                "fdfs: {}: {}",
                path.display(),
                describe(&ClientError::Io(e))
            );
            Err(exit_code(i32::from(EIO)))
        }
    }
}

/// Where a row lands: its own path, or that path under `dir` (an absolute
/// path loses its root; a path climbing out of `dir` is refused).
fn target_path(row_path: &str, dir: Option<&Path>) -> Result<PathBuf, String> {
    let Some(dir) = dir else {
        return Ok(PathBuf::from(row_path));
    };
    let mut out = dir.to_path_buf();
    for c in Path::new(row_path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err("path climbs out of the download directory (..)".to_string())
            }
        }
    }
    if out == dir {
        return Err("path names no file".to_string());
    }
    Ok(out)
}

/// `fdfs download --manifest`.
pub fn download(
    s: &Session,
    manifest_path: &Path,
    format: Option<&str>,
    dir: Option<&Path>,
    jobs: usize,
) -> ExitCode {
    let start = Instant::now();
    let rows = match load_rows(manifest_path, format) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let total: u64 = rows.iter().map(|r| r.size).sum();
    let pb = progress(total, "download");
    let downloaded = Cell::new(0usize);
    let bytes = Cell::new(0u64);
    let failed = RefCell::new(Vec::new());
    s.rt.block_on(for_each_concurrent(
        &rows,
        jobs,
        async |row: &Row| match download_one(s, row, dir, &pb).await {
            Ok(n) => {
                downloaded.set(downloaded.get() + 1);
                pb.set_message(format!("{}/{} files", downloaded.get(), rows.len()));
                bytes.set(bytes.get() + n);
            }
            Err(f) => failed.borrow_mut().push(f),
        },
    ));
    pb.finish_and_clear();
    let mut failures = failed.into_inner();
    let summary = format!(
        "download: {} downloaded, {} failed, {} bytes, {}",
        downloaded.get(),
        failures.len(),
        bytes.get(),
        elapsed(start)
    );
    finish(&mut failures, summary)
}

/// Downloads one row to `<target>.fdfs-part`, checks size and CRC32
/// against the file id (the storage's figures for names that do not carry
/// them), then renames it into place.
async fn download_one(
    s: &Session,
    row: &Row,
    dir: Option<&Path>,
    pb: &ProgressBar,
) -> Result<u64, Failure> {
    let fail =
        |errno: u8, reason: String| Failure::new(&row.path, Some(&row.file_id), errno, reason);
    let client_fail = |e: &ClientError| Failure::from_client(&row.path, Some(&row.file_id), e);
    let io_fail = |e: &std::io::Error| io_failure(&row.path, Some(&row.file_id), e);

    let target = target_path(&row.path, dir).map_err(|r| fail(EINVAL, r))?;
    let id = FileId::parse(&row.file_id).map_err(|_| fail(EINVAL, "invalid file id".into()))?;
    let (want_size, want_crc) = match decode_remote_name(&id.remote) {
        Ok(info) if info.file_type == FileKind::Normal => (info.file_size as u64, info.crc32),
        // Appender and slave names do not carry the final size and CRC32:
        // the storage knows them.
        Ok(_) => {
            let info = s
                .client
                .query_file_info(&id, 0)
                .await
                .map_err(|e| client_fail(&e))?;
            (info.file_size.max(0) as u64, info.crc32)
        }
        Err(e) => return Err(client_fail(&e)),
    };
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_fail(&e))?;
    }
    let mut part = target.clone().into_os_string();
    part.push(PART_SUFFIX);
    let part = PathBuf::from(part);

    let got = if want_size == 0 {
        // Storages refuse a download at offset 0 of an empty file
        // (EINVAL); ask whether it exists instead.
        s.client
            .query_file_info(&id, 0)
            .await
            .map_err(|e| client_fail(&e))?;
        tokio::fs::File::create(&part)
            .await
            .map_err(|e| io_fail(&e))?;
        (0, 0)
    } else {
        let file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| io_fail(&e))?;
        let mut sink = Verifying {
            file,
            crc: crc32fast::Hasher::new(),
            len: 0,
            pb: pb.clone(),
        };
        let res = async {
            s.client.download_to_writer(&id, 0, 0, &mut sink).await?;
            sink.flush().await?;
            Ok::<_, ClientError>(())
        }
        .await;
        if let Err(e) = res {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(client_fail(&e));
        }
        (sink.len, sink.crc.finalize())
    };
    if got != (want_size, want_crc) {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(fail(
            EIO,
            format!(
                "verification failed: got {} bytes with CRC32 {:08x}, the file id says {} bytes with CRC32 {:08x}",
                got.0, got.1, want_size, want_crc
            ),
        ));
    }
    tokio::fs::rename(&part, &target)
        .await
        .map_err(|e| io_fail(&e))?;
    Ok(got.0)
}

/// `fdfs delete --manifest`.
pub fn delete(s: &Session, manifest_path: &Path, format: Option<&str>, jobs: usize) -> ExitCode {
    let start = Instant::now();
    let rows = match load_rows(manifest_path, format) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(rows.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    let deleted = Cell::new(0usize);
    let failed = RefCell::new(Vec::new());
    s.rt.block_on(for_each_concurrent(&rows, jobs, async |row: &Row| {
        let res = match FileId::parse(&row.file_id) {
            Ok(id) => s.client.delete_file(&id).await,
            Err(_) => Err(ClientError::Invalid("invalid file id".into())),
        };
        pb.inc(1);
        match res {
            Ok(()) => deleted.set(deleted.get() + 1),
            Err(e) => {
                failed
                    .borrow_mut()
                    .push(Failure::from_client(&row.path, Some(&row.file_id), &e))
            }
        }
    }));
    pb.finish_and_clear();
    let mut failures = failed.into_inner();
    let summary = format!(
        "delete: {} deleted, {} failed, {}",
        deleted.get(),
        failures.len(),
        elapsed(start)
    );
    finish(&mut failures, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(!glob_match("*", ".hidden"));
        assert!(glob_match(".*", ".hidden"));
        assert!(glob_match("f?le[0-9].[!c]*", "file7.rs"));
        assert!(!glob_match("f?le[0-9].[!c]*", "file7.c"));
        assert!(glob_match("[ab]", "b"));
        assert!(glob_match("a[", "a["));
    }

    #[test]
    fn patterns_expand_per_component() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["x/a.txt", "x/b.txt", "x/c.bin", "y/a.txt", "y/.h.txt"] {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"1").unwrap();
        }
        let pat = format!("{}/*/*.txt", dir.path().display());
        let got: Vec<_> = expand_pattern(&pat)
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(got, ["x/a.txt", "x/b.txt", "y/a.txt"].map(PathBuf::from));
        assert!(expand_pattern(&format!("{}/z*/q", dir.path().display())).is_empty());
    }

    #[test]
    fn download_targets_stay_under_the_directory() {
        let d = Path::new("/out");
        assert_eq!(
            target_path("a/b.txt", Some(d)).unwrap(),
            Path::new("/out/a/b.txt")
        );
        assert_eq!(
            target_path("/abs/c.txt", Some(d)).unwrap(),
            Path::new("/out/abs/c.txt")
        );
        assert_eq!(target_path("./x", Some(d)).unwrap(), Path::new("/out/x"));
        assert!(target_path("../up.txt", Some(d)).is_err());
        assert!(target_path("/", Some(d)).is_err());
        assert_eq!(
            target_path("../up.txt", None).unwrap(),
            Path::new("../up.txt")
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn jobs_are_bounded_and_all_run() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let items: Vec<u32> = (0..20).collect();
        let running = Cell::new(0);
        let peak = Cell::new(0);
        let sum = Cell::new(0);
        rt.block_on(for_each_concurrent(&items, 3, async |i: &u32| {
            running.set(running.get() + 1);
            peak.set(peak.get().max(running.get()));
            tokio::task::yield_now().await;
            sum.set(sum.get() + *i);
            running.set(running.get() - 1);
        }));
        assert_eq!(sum.get(), 190);
        assert_eq!(peak.get(), 3);
    }
}
