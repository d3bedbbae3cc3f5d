//! Log files written by a thread of their own: callers hand over whole lines
//! and never wait for the disk. The thread rotates the file the way the
//! original does (daily at a time of day, or past a size; the old file gets
//! a `.YYYYMMDD_HHMMSS` suffix), deletes rotated files past their keep time,
//! and reopens the file on request (SIGUSR1, for logrotate).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

/// Lines a log may hold in memory before new ones are dropped (and counted):
/// a stuck disk must not stall the daemon or grow its memory without bound.
const QUEUE_LINES: usize = 64 * 1024;
/// Size of the write buffer in front of the file.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// The writer wakes at least this often, for daily rotation and clean-up.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(60);
/// How long [`LogFile::flush`] waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
const SECS_PER_DAY: i64 = 86_400;

/// When a log file is rotated, and how long rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    /// Rotate every day at this local time (hour, minute).
    pub daily_at: Option<(u8, u8)>,
    /// Rotate once the file reaches this size; 0 never.
    pub max_bytes: u64,
    /// Delete rotated files older than this many days; 0 keeps them.
    pub keep_days: u32,
}

/// Builds the first line of a new, empty file (the access log's column
/// header).
pub type HeaderFn = Box<dyn Fn() -> String + Send>;

/// Where the lines go.
pub enum Sink {
    /// A file, rotated and reopenable.
    File {
        path: PathBuf,
        rotation: Rotation,
        header: Option<HeaderFn>,
    },
    /// The process's stdout (containers); never rotated.
    Stdout,
    /// The process's stderr; never rotated.
    Stderr,
}

enum Msg {
    Line(Vec<u8>),
    Reopen,
    Rotate,
    SetRotation(Rotation),
    Flush(mpsc::Sender<()>),
}

struct Shared {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// A handle on a log writer thread; clones share it. The thread ends once
/// every handle is gone, after writing what it was given.
#[derive(Clone)]
pub struct LogFile {
    shared: Arc<Shared>,
}

/// Every open log, for [`reopen_all`].
static OPEN_LOGS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Reopens every log file of the process (SIGUSR1): a file moved away by
/// logrotate is left alone and a new one is created at the configured path.
pub fn reopen_all() {
    let mut logs = crate::sync::lock(&OPEN_LOGS);
    logs.retain(|w| w.strong_count() > 0);
    for shared in logs.iter().filter_map(Weak::upgrade) {
        // Blocking send: a reopen must not be lost to a full queue.
        let _ = shared.tx.send(Msg::Reopen);
    }
}

impl LogFile {
    /// Starts the writer thread. A file sink is opened (its directory
    /// created) before this returns, so an unwritable path is an error here.
    pub fn open(sink: Sink) -> std::io::Result<LogFile> {
        let mut writer = Writer::new(sink)?;
        let dropped = Arc::new(AtomicU64::new(0));
        writer.dropped = dropped.clone();
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(rx))?;
        let shared = Arc::new(Shared { tx, dropped });
        crate::sync::lock(&OPEN_LOGS).push(Arc::downgrade(&shared));
        Ok(LogFile { shared })
    }

    /// Queues one line (which should end with a newline). Never waits: when
    /// the queue is full the line is dropped and counted.
    pub fn write_line(&self, line: Vec<u8>) {
        match self.shared.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Reopens the file at its path.
    pub fn reopen(&self) {
        let _ = self.shared.tx.send(Msg::Reopen);
    }

    /// Rotates the file now.
    pub fn rotate(&self) {
        let _ = self.shared.tx.send(Msg::Rotate);
    }

    /// Applies new rotation settings (SIGHUP).
    pub fn set_rotation(&self, rotation: Rotation) {
        let _ = self.shared.tx.send(Msg::SetRotation(rotation));
    }

    /// Waits (a few seconds at most) until every line queued before this
    /// call is written to the file. Blocking: not for async workers.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.shared.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(FLUSH_WAIT);
        }
    }
}

enum Out {
    File {
        path: PathBuf,
        rotation: Rotation,
        header: Option<HeaderFn>,
        /// None after a failed (re)open: lines are dropped until the next
        /// reopen or rotation succeeds.
        file: Option<BufWriter<File>>,
        size: u64,
        /// Unix time of the next daily rotation.
        next_daily: Option<i64>,
    },
    Stream(Box<dyn Write + Send>),
}

struct Writer {
    out: Out,
    /// A write error is reported once, not per line.
    failing: bool,
    /// Lines callers dropped because the queue was full, and how many of
    /// them were reported already.
    dropped: Arc<AtomicU64>,
    reported_dropped: u64,
}

impl Writer {
    fn new(sink: Sink) -> std::io::Result<Writer> {
        let out = match sink {
            Sink::Stdout => Out::Stream(Box::new(std::io::stdout())),
            Sink::Stderr => Out::Stream(Box::new(std::io::stderr())),
            Sink::File {
                path,
                rotation,
                header,
            } => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let (file, size) = open_append(&path, header.as_ref())?;
                delete_expired(&path, rotation.keep_days);
                Out::File {
                    next_daily: next_daily(rotation.daily_at, crate::now_secs()),
                    path,
                    rotation,
                    header,
                    file: Some(file),
                    size,
                }
            }
        };
        Ok(Writer {
            out,
            failing: false,
            dropped: Arc::default(),
            reported_dropped: 0,
        })
    }

    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            match rx.recv_timeout(self.idle_wait()) {
                Ok(msg) => {
                    self.handle(msg);
                    while let Ok(msg) = rx.try_recv() {
                        self.handle(msg);
                    }
                    self.flush();
                    self.report_dropped();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
            self.rotate_if_daily_due();
        }
    }

    /// Says in the daemon's log (never blocking: through `tracing`) how
    /// many lines were lost since the last report.
    fn report_dropped(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.reported_dropped {
            let lines = dropped - self.reported_dropped;
            self.reported_dropped = dropped;
            let path = match &self.out {
                Out::File { path, .. } => path.display().to_string(),
                Out::Stream(_) => "-".to_string(),
            };
            tracing::warn!(lines, log = %path, "log lines dropped: the log writer fell behind");
        }
    }

    fn idle_wait(&self) -> Duration {
        match &self.out {
            Out::File {
                next_daily: Some(at),
                ..
            } => {
                let secs = (*at - crate::now_secs()).max(0) as u64;
                Duration::from_secs(secs).min(MAX_IDLE_WAIT)
            }
            _ => MAX_IDLE_WAIT,
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Line(line) => self.write(&line),
            Msg::Reopen => self.reopen(),
            Msg::Rotate => self.rotate(),
            Msg::SetRotation(r) => {
                if let Out::File {
                    rotation,
                    next_daily: next,
                    ..
                } = &mut self.out
                {
                    *rotation = r;
                    *next = next_daily(r.daily_at, crate::now_secs());
                }
            }
            Msg::Flush(done) => {
                self.flush();
                let _ = done.send(());
            }
        }
    }

    fn write(&mut self, line: &[u8]) {
        let result = match &mut self.out {
            Out::Stream(w) => w.write_all(line),
            Out::File {
                file: Some(f),
                size,
                ..
            } => {
                *size += line.len() as u64;
                f.write_all(line)
            }
            Out::File { file: None, .. } => Ok(()),
        };
        self.note(result);
        if let Out::File { rotation, size, .. } = &self.out {
            if rotation.max_bytes > 0 && *size >= rotation.max_bytes {
                self.rotate();
            }
        }
    }

    fn flush(&mut self) {
        let result = match &mut self.out {
            Out::Stream(w) => w.flush(),
            Out::File { file: Some(f), .. } => f.flush(),
            Out::File { file: None, .. } => Ok(()),
        };
        self.note(result);
    }

    fn note(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                // The log itself is what failed: stderr is all that is left.
                eprintln!("log write failed: {e}");
            }
            Err(_) => {}
        }
    }

    fn reopen(&mut self) {
        self.flush();
        if let Out::File {
            path,
            header,
            file,
            size,
            ..
        } = &mut self.out
        {
            *file = None;
            match open_append(path, header.as_ref()) {
                Ok((f, s)) => {
                    *file = Some(f);
                    *size = s;
                }
                Err(e) => eprintln!("cannot reopen log {}: {e}", path.display()),
            }
        }
    }

    fn rotate_if_daily_due(&mut self) {
        let now = crate::now_secs();
        let due = match &self.out {
            Out::File {
                next_daily: Some(at),
                ..
            } => now >= *at,
            _ => false,
        };
        if !due {
            return;
        }
        let empty = matches!(&self.out, Out::File { size: 0, .. });
        if !empty {
            self.rotate();
        }
        if let Out::File {
            rotation,
            next_daily: next,
            path,
            ..
        } = &mut self.out
        {
            *next = next_daily(rotation.daily_at, now + 1);
            delete_expired(path, rotation.keep_days);
        }
    }

    /// Renames the file to `<name>.YYYYMMDD_HHMMSS` and starts a new one.
    fn rotate(&mut self) {
        self.flush();
        let Out::File {
            path,
            rotation,
            file,
            ..
        } = &mut self.out
        else {
            return;
        };
        *file = None;
        let target = rotated_name(path, crate::now_secs());
        if let Err(e) = std::fs::rename(&*path, &target) {
            eprintln!(
                "cannot rotate log {} to {}: {e}",
                path.display(),
                target.display()
            );
        }
        let keep_days = rotation.keep_days;
        let path = path.clone();
        self.reopen();
        delete_expired(&path, keep_days);
    }
}

fn open_append(path: &Path, header: Option<&HeaderFn>) -> std::io::Result<(BufWriter<File>, u64)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut size = file.metadata()?.len();
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    if size == 0 {
        if let Some(header) = header {
            let line = header();
            out.write_all(line.as_bytes())?;
            size = line.len() as u64;
        }
    }
    Ok((out, size))
}

/// The unix time of the next `daily_at` local time after `now`.
fn next_daily(daily_at: Option<(u8, u8)>, now: i64) -> Option<i64> {
    let (hour, minute) = daily_at?;
    let tm = crate::localtime::local_tm(now)?;
    let since_midnight = i64::from(tm.hour * 3600 + tm.minute * 60 + tm.second);
    let target = i64::from(hour) * 3600 + i64::from(minute) * 60;
    let mut wait = target - since_midnight;
    if wait <= 0 {
        wait += SECS_PER_DAY;
    }
    Some(now + wait)
}

/// `<path>.YYYYMMDD_HHMMSS` in local time; `_N` is added when a file of
/// that name exists already (several size rotations in one second).
pub fn rotated_name(path: &Path, now: i64) -> PathBuf {
    let stamp = match crate::localtime::local_tm(now) {
        Some(t) => format!(
            "{:04}{:02}{:02}_{:02}{:02}{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        None => now.to_string(),
    };
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{stamp}"));
    let first = PathBuf::from(&name);
    if !first.exists() {
        return first;
    }
    (1u32..)
        .map(|n| {
            let mut numbered = name.clone();
            numbered.push(format!("_{n}"));
            PathBuf::from(numbered)
        })
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Whether `file_name` is a rotated copy of `base`: `<base>.` followed by
/// a `YYYYMMDD_HHMMSS` stamp (and possibly more).
fn is_rotated_copy(base: &str, file_name: &str) -> bool {
    let Some(rest) = file_name
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('.'))
    else {
        return false;
    };
    let stamp = rest.as_bytes();
    stamp.len() >= 15
        && stamp[..8].iter().all(u8::is_ascii_digit)
        && stamp[8] == b'_'
        && stamp[9..15].iter().all(u8::is_ascii_digit)
}

/// Deletes rotated copies of `path` last written more than `keep_days`
/// days ago; 0 keeps everything.
fn delete_expired(path: &Path, keep_days: u32) {
    if keep_days == 0 {
        return;
    }
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let max_age = Duration::from_secs(u64::from(keep_days) * SECS_PER_DAY as u64);
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_rotated_copy(base, name) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > max_age);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_log(path: &Path, rotation: Rotation) -> LogFile {
        LogFile::open(Sink::File {
            path: path.to_path_buf(),
            rotation,
            header: Some(Box::new(|| "header\n".to_string())),
        })
        .unwrap()
    }

    fn rotated(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| is_rotated_copy("x.log", n))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn lines_reach_the_file_after_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/x.log");
        let log = file_log(&path, Rotation::default());
        log.write_line(b"one\n".to_vec());
        log.write_line(b"two\n".to_vec());
        log.flush();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "header\none\ntwo\n"
        );
    }

    #[test]
    fn size_rotation_moves_the_full_file_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let log = file_log(
            &path,
            Rotation {
                max_bytes: 20,
                ..Rotation::default()
            },
        );
        for _ in 0..5 {
            log.write_line(b"0123456789\n".to_vec());
        }
        log.flush();
        let copies = rotated(dir.path());
        assert_eq!(copies.len(), 2, "{copies:?}");
        let first = std::fs::read_to_string(dir.path().join(&copies[0])).unwrap();
        assert_eq!(first, "header\n0123456789\n0123456789\n");
        let current = std::fs::read_to_string(&path).unwrap();
        assert_eq!(current, "header\n0123456789\n");
    }

    #[test]
    fn reopen_follows_a_moved_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let log = file_log(&path, Rotation::default());
        log.write_line(b"before\n".to_vec());
        log.flush();
        std::fs::rename(&path, dir.path().join("x.log.1")).unwrap();
        log.write_line(b"still old\n".to_vec());
        reopen_all();
        log.write_line(b"after\n".to_vec());
        log.flush();
        let old = std::fs::read_to_string(dir.path().join("x.log.1")).unwrap();
        assert_eq!(old, "header\nbefore\nstill old\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "header\nafter\n");
    }

    #[test]
    fn expired_copies_are_deleted_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let old = dir.path().join("x.log.20200101_000000");
        let young = dir.path().join("x.log.20200102_000000");
        let unrelated = dir.path().join("x.log.keep");
        for p in [&old, &young, &unrelated] {
            std::fs::write(p, "x").unwrap();
        }
        let long_ago = SystemTime::now() - Duration::from_secs(3 * SECS_PER_DAY as u64);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        File::options()
            .write(true)
            .open(&unrelated)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        delete_expired(&path, 2);
        assert!(!old.exists());
        assert!(young.exists() && unrelated.exists());
    }

    #[test]
    fn a_due_daily_rotation_moves_a_written_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut w = Writer::new(Sink::File {
            path: path.clone(),
            rotation: Rotation {
                daily_at: Some((0, 0)),
                ..Rotation::default()
            },
            header: None,
        })
        .unwrap();
        let past = |w: &mut Writer| {
            if let Out::File { next_daily, .. } = &mut w.out {
                *next_daily = Some(crate::now_secs() - 1);
            }
        };
        past(&mut w);
        w.rotate_if_daily_due();
        assert!(rotated(dir.path()).is_empty(), "an empty file was rotated");
        w.write(b"line\n");
        past(&mut w);
        w.rotate_if_daily_due();
        assert_eq!(rotated(dir.path()).len(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let Out::File { next_daily, .. } = &w.out else {
            unreachable!()
        };
        assert!(next_daily.unwrap() > crate::now_secs());
    }

    #[test]
    fn next_daily_is_within_a_day() {
        let now = 1_795_621_145;
        let at = next_daily(Some((0, 0)), now).unwrap();
        assert!(at > now && at <= now + SECS_PER_DAY);
        assert_eq!(next_daily(None, now), None);
    }

    #[test]
    fn rotated_names_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let a = rotated_name(&path, 1_795_621_145);
        std::fs::write(&a, "").unwrap();
        let b = rotated_name(&path, 1_795_621_145);
        assert_ne!(a, b);
        let name = b.file_name().unwrap().to_str().unwrap();
        assert!(is_rotated_copy("x.log", name), "{name}");
    }
}
