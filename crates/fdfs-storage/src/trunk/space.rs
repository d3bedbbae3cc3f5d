//! The trunk server's allocator on disk: `data/trunk/binlog`, `storage_trunk.dat`, trunk file creation, unconfirmed allocations.
//!
//! Files under `<base_path>/data/`:
//! - `trunk/binlog`: the original's trunk binlog (§11.5), one
//!   [`TrunkRecord`] line per change, appended with one `write(2)` per
//!   change under `O_APPEND`. The line goes out before the change is applied
//!   in memory or answered, so a crash never loses an allocation that was
//!   handed out (up to the page cache: lines are not fsynced by default,
//!   as in the original, so a power cut can lose the last ones; see
//!   [`TrunkSpace::set_sync_lines`]).
//! - `storage_trunk.dat`: snapshot of the free pool at a binlog size
//!   (the original's format); loaded when that size is within the binlog,
//!   then the binlog is replayed from there.
//! - `trunk/unconfirmed` (ours): allocations handed out and not yet
//!   confirmed, `D` line when handed out, `A` line when settled; so a
//!   restarted trunk server can free the ones whose member never confirmed.
//! - `trunk/quarantine` (ours): the quarantined free slots, rewritten whole
//!   on each change, so quarantine survives a restart.
//! - `trunk/snapshot_files` (ours): written with each snapshot, the highest
//!   trunk id and every known trunk file, which the snapshot's free list
//!   cannot tell (a full or deleted file).
//!
//! Unlike the original's allocator, a slot handed out is out of the pool
//! in the binlog at once (the original lists it free until the confirm),
//! so a restart or a new trunk server never hands it out again.
//!
//! An allocation is written as the original's `trunk_split` does: a `D` line
//! for the whole free slot, then an `A` line for the rest that stays free.
//! A merge on free is written as `D` lines for the absorbed neighbours and
//! an `A` line for the merged slot, so replay needs no merge logic and a
//! member (or the original) replaying the lines gets the same pool.
//!
//! The binlog grows by about 100 bytes per allocation or free until
//! [`TrunkSpace::compress`] rewrites it as the free pool
//! (`trunk_compress_binlog_*`, scheduled by [`super::role`]). Opening
//! streams it from the last snapshot through a fixed buffer: memory
//! follows the free pool, not the binlog.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fdfs_config::TrunkParams;
use fdfs_proto::trunk::{
    random_sub_dirs, slot_size_for, trunk_file_relative_path, FreeSlot, SlotHeader, TrunkDataFile,
    TrunkLocation, SLOT_HEADER_LEN, SLOT_TYPE_LINK, SLOT_TYPE_REGULAR, TRUNK_DATA_FILE_NAME,
};
use fdfs_proto::trunk_binlog::{parse_lines, slot_end, TrunkOp, TrunkRecord};
use fdfs_proto::Status;

use super::pool::{Pool, PoolError};
use super::slot::FreeCheck;

/// Directory of the trunk binlog and our side files, under `<base>/data`.
const TRUNK_DIR: &str = "trunk";
const BINLOG_NAME: &str = "binlog";
const UNCONFIRMED_NAME: &str = "unconfirmed";
const QUARANTINE_NAME: &str = "quarantine";
/// Beside the last snapshot (ours), which lists free slots only:
/// `<binlog size> <highest trunk id>`, then one `<store path> <high> <low>
/// <id>` line per known trunk file, so full and deleted files stay known.
const SNAPSHOT_FILES_NAME: &str = "snapshot_files";
/// The original's binlog, moved aside while it compresses.
const ORIGINAL_ROLLBACK_NAME: &str = "binlog.rollback";
/// The compressed binlog while it is written, beside the binlog.
const BINLOG_COMPRESS_TMP_NAME: &str = "binlog.compress.tmp";
/// The trunk server's push progress per member, `<member id>.mark` or
/// `<ip>_<port>.mark` in the trunk directory (the original's names).
const MARK_SUFFIX: &str = ".mark";
/// In the trunk directory but no push mark: `crate::sync::freer`'s
/// position in our storage binlog, which neither a compression nor
/// TRUNK_DELETE_BINLOG_MARKS (32) may remove.
pub const FREER_MARK_NAME: &str = "free.mark";

/// The answer to an allocation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alloc {
    Slot(TrunkLocation),
    /// No free slot of the store path is big enough: create a trunk file
    /// (new id agreed with the trackers) with [`TrunkSpace::add_trunk_file`].
    NeedTrunkFile,
}

/// The trunk binlog's size before and after a [`TrunkSpace::compress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed {
    pub before_bytes: u64,
    pub after_bytes: u64,
}

/// A header chain on disk that disagrees with the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMismatch {
    /// Trunk file and offset of the header; size as the header says (0
    /// when unreadable).
    pub at: TrunkLocation,
    pub reason: String,
}

/// What [`TrunkSpace::scrub_local`] found on this storage's disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Trunk files walked.
    pub trunk_files: usize,
    /// Trunk files the binlog knows but this disk does not have (a member
    /// creates its copy at the first write into it), as whole-file slots.
    pub missing_files: Vec<TrunkLocation>,
    /// Slot headers read.
    pub headers_read: u64,
    /// `(free slot of the pool, file header found inside it)`: the binlog
    /// says free but a file lives there.
    pub free_with_header: Vec<(TrunkLocation, TrunkLocation)>,
    /// Allocated space whose header chain does not match the pool.
    pub chain_mismatches: Vec<ChainMismatch>,
    /// Quarantined slots that hold no file header on this disk.
    pub quarantine_clean: Vec<TrunkLocation>,
}

impl ScrubReport {
    /// True when the disk agrees with the binlog.
    pub fn is_clean(&self) -> bool {
        self.free_with_header.is_empty() && self.chain_mismatches.is_empty()
    }
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    binlog: File,
    binlog_len: u64,
    /// Pushed bytes after the last whole line (member side), already in
    /// the binlog file, applied once their line is complete.
    pending: Vec<u8>,
    max_trunk_file_id: u32,
    /// Handed-out slots not confirmed yet, with when they count from.
    unconfirmed: BTreeMap<TrunkLocation, Instant>,
    unconfirmed_file: File,
    /// Lines in the unconfirmed side file, to know when to compact it.
    unconfirmed_lines: usize,
    /// The binlog's size right after the last compression by this
    /// process: an unchanged binlog is not compressed again.
    compressed_len: Option<u64>,
}

/// The unconfirmed side file is rewritten when it holds this many lines
/// more than twice the outstanding allocations.
const UNCONFIRMED_COMPACT_SLACK_LINES: usize = 4096;

/// The trunk allocator of one storage: pool, binlog and side files. All
/// methods block (callers use `spawn_blocking`).
#[derive(Debug)]
pub struct TrunkSpace {
    data_dir: PathBuf,
    store_paths: Vec<PathBuf>,
    subdir_count_per_path: u32,
    params: TrunkParams,
    /// fdatasync the binlog after each change before answering.
    sync_lines: AtomicBool,
    inner: Mutex<Inner>,
}

fn errno(status: Status, what: impl std::fmt::Display) -> io::Error {
    tracing::warn!(status = status.0, "trunk space: {what}");
    io::Error::from_raw_os_error(i32::from(status.0))
}

fn pool_err(e: PoolError) -> io::Error {
    let status = match e {
        // The original's answer to a free of free space ("trunk space
        // already exist").
        PoolError::AlreadyFree { .. } => Status::EEXIST,
        PoolError::NotFree(_) | PoolError::NotQuarantined(_) => Status::ENOENT,
        PoolError::Invalid(_) | PoolError::DirMismatch { .. } => Status::EINVAL,
    };
    errno(status, e)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn record(op: TrunkOp, slot: TrunkLocation) -> TrunkRecord {
    TrunkRecord {
        timestamp: now_secs(),
        op,
        slot,
    }
}

fn lines(records: &[TrunkRecord]) -> String {
    let mut text = String::with_capacity(records.len() * 48);
    for r in records {
        r.write_line(&mut text);
    }
    text
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// Writes `bytes` to `path` through a synced temp file and a rename.
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes renames and unlinks in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The byte of `f` at `offset`.
fn byte_at(f: &File, offset: u64) -> io::Result<u8> {
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset)?;
    Ok(b[0])
}

/// Applies replayed records to a pool; returns how many did not apply.
fn apply_records(pool: &mut Pool, max_id: &mut u32, records: &[TrunkRecord]) -> usize {
    let mut failed = 0;
    for r in records {
        *max_id = (*max_id).max(r.slot.trunk_file_id);
        let res = match r.op {
            TrunkOp::AddSpace => pool.add(&r.slot, false),
            TrunkOp::DelSpace => pool.take(&r.slot),
        };
        if let Err(e) = res {
            failed += 1;
            tracing::warn!(error = %e, line = %r.to_line().trim_end(), "trunk binlog line does not apply");
        }
    }
    failed
}

/// The space each `A` line of `records` gave back to the pool that was not
/// free just before (the pieces a merge absorbed come as `D` lines of the
/// same time right before it), with the line's time: the slots a trunk
/// server freed. A member marks the tombstones there freed, so that it
/// refuses a second free of the same delete should it take the trunk
/// server's role over (happyfish100/fastdfs#66: after a failover the new
/// trunk server must not free a slot again that the old one freed and
/// handed out once more).
fn newly_freed(records: &[TrunkRecord]) -> Vec<(TrunkLocation, i64)> {
    let same_file = |a: &TrunkLocation, b: &TrunkLocation| {
        (
            a.store_path_index,
            a.sub_path_high,
            a.sub_path_low,
            a.trunk_file_id,
        ) == (
            b.store_path_index,
            b.sub_path_high,
            b.sub_path_low,
            b.trunk_file_id,
        )
    };
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if r.op != TrunkOp::AddSpace {
            continue;
        }
        let (start, end) = (u64::from(r.slot.offset), slot_end(&r.slot));
        let mut absorbed: Vec<(u64, u64)> = records[..i]
            .iter()
            .rev()
            .take_while(|d| d.op == TrunkOp::DelSpace && d.timestamp == r.timestamp)
            .filter(|d| {
                same_file(&d.slot, &r.slot)
                    && u64::from(d.slot.offset) >= start
                    && slot_end(&d.slot) <= end
            })
            .map(|d| (u64::from(d.slot.offset), slot_end(&d.slot)))
            .collect();
        absorbed.sort_unstable();
        let mut at = start;
        let mut gap = |from: u64, to: u64| {
            // Offsets and sizes of one trunk file fit in u32.
            if let (Ok(offset), Ok(size)) = (u32::try_from(from), u32::try_from(to - from)) {
                out.push((
                    TrunkLocation {
                        offset,
                        size,
                        ..r.slot
                    },
                    r.timestamp,
                ));
            }
        };
        for (a, b) in absorbed {
            if a > at {
                gap(at, a);
            }
            at = at.max(b);
        }
        if at < end {
            gap(at, end);
        }
    }
    out
}

/// The highest trunk id and the known trunk files (as whole-file
/// locations of size 1) saved with the snapshot of `binlog_size`; None
/// when missing, damaged or of another snapshot.
fn saved_files(trunk_dir: &Path, binlog_size: u64) -> Option<(u32, Vec<TrunkLocation>)> {
    let text = fs::read_to_string(trunk_dir.join(SNAPSHOT_FILES_NAME)).ok()?;
    let mut lines = text.lines();
    let (size, id) = lines.next()?.split_once(' ')?;
    if size.parse::<u64>().ok()? != binlog_size {
        return None;
    }
    let max_id = id.parse().ok()?;
    let mut files = Vec::new();
    for line in lines {
        let cols: Vec<&str> = line.split(' ').collect();
        let [p, h, l, id] = cols[..] else {
            return None;
        };
        files.push(TrunkLocation {
            store_path_index: p.parse().ok()?,
            sub_path_high: h.parse().ok()?,
            sub_path_low: l.parse().ok()?,
            trunk_file_id: id.parse().ok()?,
            offset: 0,
            size: 1,
        });
    }
    Some((max_id, files))
}

type SlotKey = (u8, u32, u32);

fn slot_key(s: &TrunkLocation) -> SlotKey {
    (s.store_path_index, s.trunk_file_id, s.offset)
}

/// Takes `slot` out of the staged slot that holds it, keeping the parts
/// around it. False when no staged slot holds it whole.
fn carve(staged: &mut BTreeMap<SlotKey, TrunkLocation>, slot: &TrunkLocation) -> bool {
    let k = slot_key(slot);
    let Some((&hk, &h)) = staged.range((k.0, k.1, 0)..=k).next_back() else {
        return false;
    };
    let end = slot_end(slot);
    if slot_end(&h) < end {
        return false;
    }
    staged.remove(&hk);
    if slot.offset > h.offset {
        staged.insert(
            hk,
            TrunkLocation {
                size: slot.offset - h.offset,
                ..h
            },
        );
    }
    if slot_end(&h) > end {
        // Both ends are below 2^31 (the record parser's bound).
        let rest = TrunkLocation {
            offset: end as u32,
            size: (slot_end(&h) - end) as u32,
            ..h
        };
        staged.insert(slot_key(&rest), rest);
    }
    true
}

/// Replays a binlog at open the way the original's restore does: keyed by
/// where a slot starts, an `A` listing it and a `D` unlisting it, then
/// loads what is listed into the pool. Versions before 5 wrote an
/// allocation as `A` of the rest before `D` of the whole slot, which a
/// byte-range replay would refuse; keyed, it lands as it did there. A `D`
/// of part of a listed slot is cut out of it. Records are fed one at a
/// time as they are read, so only the free slots are ever held.
#[derive(Default)]
struct KeyedReplay {
    staged: BTreeMap<SlotKey, TrunkLocation>,
    skipped: usize,
}

impl KeyedReplay {
    /// Starts from the free slots of a snapshot.
    fn from_snapshot(max_id: &mut u32, base: &[TrunkLocation]) -> Self {
        let mut replay = KeyedReplay::default();
        for s in base {
            *max_id = (*max_id).max(s.trunk_file_id);
            replay.staged.insert(slot_key(s), *s);
        }
        replay
    }

    fn record(&mut self, pool: &mut Pool, max_id: &mut u32, r: &TrunkRecord) {
        *max_id = (*max_id).max(r.slot.trunk_file_id);
        let k = slot_key(&r.slot);
        match r.op {
            TrunkOp::AddSpace => {
                self.staged.insert(k, r.slot);
            }
            TrunkOp::DelSpace => {
                if self.staged.get(&k) == Some(&r.slot) {
                    self.staged.remove(&k);
                } else if !carve(&mut self.staged, &r.slot) {
                    self.skipped += 1;
                    tracing::warn!(line = %r.to_line().trim_end(), "trunk binlog D line names no free slot");
                }
            }
        }
        // Trunk files whose space is all allocated are still known.
        if let Err(e) = pool.remember_file(&r.slot) {
            tracing::warn!(error = %e, "trunk binlog line disagrees on a trunk file's directories");
        }
    }

    fn finish(mut self, pool: &mut Pool) {
        for s in self.staged.values() {
            if let Err(e) = pool.add(s, false) {
                self.skipped += 1;
                tracing::warn!(error = %e, "trunk free slot overlaps another, left out");
            }
        }
        if self.skipped > 0 {
            tracing::warn!(
                skipped = self.skipped,
                "trunk binlog replay skipped lines or slots"
            );
        }
    }
}

/// Bytes read at a time when a binlog is replayed.
const REPLAY_CHUNK_BYTES: usize = 256 * 1024;
/// A longer line cannot be a trunk binlog line: only its start is kept
/// (to be refused), so a damaged file never grows the line buffer.
const REPLAY_LINE_CAP_BYTES: usize = 4 * fdfs_proto::trunk_binlog::MAX_LINE_BYTES;

/// Feeds the records of the whole lines of `file` within `[start, end)`
/// to `each`, reading through a fixed buffer so a binlog of any size
/// replays in constant memory. Returns how many bytes the whole lines
/// take (an unterminated last line is left out: a write torn by a crash)
/// and how many lines were refused.
fn replay_lines(
    file: &File,
    start: u64,
    end: u64,
    mut each: impl FnMut(&TrunkRecord),
) -> io::Result<(u64, usize)> {
    let mut buf = vec![0u8; REPLAY_CHUNK_BYTES];
    let mut line: Vec<u8> = Vec::with_capacity(REPLAY_LINE_CAP_BYTES);
    let mut refused = 0usize;
    let mut whole_end = start;
    let mut pos = start;
    let mut take = |line: &[u8]| match std::str::from_utf8(line).ok().and_then(TrunkRecord::parse) {
        Some(r) => each(&r),
        None => refused += 1,
    };
    while pos < end {
        let want = usize::try_from(end - pos).map_or(buf.len(), |n| n.min(buf.len()));
        let n = file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let mut from = 0usize;
        while let Some(i) = chunk[from..].iter().position(|&b| b == b'\n') {
            let head = &chunk[from..from + i + 1];
            if line.is_empty() {
                take(head);
            } else {
                let room = REPLAY_LINE_CAP_BYTES.saturating_sub(line.len());
                line.extend_from_slice(&head[..head.len().min(room)]);
                take(&line);
                line.clear();
            }
            from += i + 1;
            whole_end = pos + from as u64;
        }
        let rest = &chunk[from..];
        let room = REPLAY_LINE_CAP_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&rest[..rest.len().min(room)]);
        pos += n as u64;
    }
    Ok((whole_end - start, refused))
}

/// [`replay_lines`] over a whole side file; a missing one holds nothing.
fn replay_side_file(path: &Path, each: impl FnMut(&TrunkRecord)) -> io::Result<()> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    replay_lines(&f, 0, len, each).map(|_| ())
}

impl TrunkSpace {
    /// Loads storage_trunk.dat (if its binlog size matches) then replays data/trunk/binlog past it.
    pub fn open(
        base_path: &Path,
        store_paths: &[PathBuf],
        subdir_count_per_path: u32,
        params: &TrunkParams,
    ) -> io::Result<TrunkSpace> {
        let data_dir = base_path.join("data");
        let trunk_dir = data_dir.join(TRUNK_DIR);
        fs::create_dir_all(&trunk_dir)?;
        let slot_min = u32::try_from(params.slot_min_size_bytes).unwrap_or(u32::MAX);
        let mut pool = Pool::new(slot_min);
        let mut max_id = 0u32;

        // A compression cut short by a crash: the binlog it was to
        // replace is still whole.
        remove_if_present(&trunk_dir.join(BINLOG_COMPRESS_TMP_NAME))?;
        if trunk_dir.join(ORIGINAL_ROLLBACK_NAME).exists() {
            // The original moves its binlog aside while it compresses and
            // rolls back from its stages at start. Without them the
            // binlog may hold only the lines since: space it listed free
            // is then missing here (leaked, never handed out twice).
            tracing::warn!(
                "data/trunk/{ORIGINAL_ROLLBACK_NAME} exists: an original storage's trunk binlog \
                 compression did not finish; start the original once on this directory to \
                 roll it back, or free space may be missing"
            );
        }
        let binlog = open_append(&trunk_dir.join(BINLOG_NAME))?;
        let len = binlog.metadata()?.len();
        let snapshot = match fs::read_to_string(data_dir.join(TRUNK_DATA_FILE_NAME)) {
            // `trunk_init_reload_from_binlog`: the whole binlog decides.
            Ok(_) if params.trunk_init_reload_from_binlog => None,
            Ok(s) => TrunkDataFile::parse(&s)
                .map_err(|e| tracing::warn!(error = %e, "ignoring {TRUNK_DATA_FILE_NAME}"))
                .ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut start = 0u64;
        let mut replay = KeyedReplay::default();
        if let Some(snap) = snapshot {
            let at = snap.binlog_size;
            // The snapshot must end on a line boundary of this very binlog.
            if at <= len && (at == 0 || byte_at(&binlog, at - 1)? == b'\n') {
                let base: Vec<TrunkLocation> = snap.free.iter().map(|s| s.location).collect();
                replay = KeyedReplay::from_snapshot(&mut max_id, &base);
                start = at;
                // The snapshot lists free slots only: the highest trunk id
                // and the trunk files wholly allocated are beside it, or
                // else in the lines before it.
                let remember = |pool: &mut Pool, f: &TrunkLocation| {
                    if let Err(e) = pool.remember_file(f) {
                        tracing::warn!(error = %e, "trunk file seen under two directory pairs");
                    }
                };
                match saved_files(&trunk_dir, at) {
                    Some((id, files)) => {
                        max_id = max_id.max(id);
                        for f in &files {
                            remember(&mut pool, f);
                        }
                    }
                    None => {
                        replay_lines(&binlog, 0, at, |r| {
                            max_id = max_id.max(r.slot.trunk_file_id);
                            remember(&mut pool, &r.slot);
                        })?;
                    }
                }
            } else {
                tracing::warn!(
                    snapshot = snap.binlog_size,
                    binlog = len,
                    "{TRUNK_DATA_FILE_NAME} does not match the trunk binlog, replaying it whole"
                );
            }
        }
        let (consumed, refused) = replay_lines(&binlog, start, len, |r| {
            replay.record(&mut pool, &mut max_id, r)
        })?;
        if refused > 0 {
            tracing::warn!(refused, "trunk binlog lines refused at replay");
        }
        replay.finish(&mut pool);
        let whole = start + consumed;
        if whole < len {
            tracing::warn!(
                cut = len - whole,
                "trunk binlog ends in a torn line, cutting it off"
            );
            binlog.set_len(whole)?;
        }

        // A wholly free trunk file deleted as unused leaves no free slot
        // and no file: forget it so a scrub does not report it missing.
        for (p, id, high, low) in pool.files() {
            if pool.slots_of(p, id).is_empty() {
                if let Some(sp) = store_paths.get(usize::from(p)) {
                    if !sp.join(trunk_file_relative_path(high, low, id)).exists() {
                        pool.forget_file(p, id);
                    }
                }
            }
        }

        // Quarantine survives restarts.
        let qpath = trunk_dir.join(QUARANTINE_NAME);
        replay_side_file(&qpath, |r| {
            pool.quarantine_overlapping(&r.slot);
        })?;
        if params.trunk_init_check_occupying {
            // The original leaves a free slot holding a file out of its
            // pool; ours quarantines it (kept, never handed out, and
            // released by a scrub once the file is gone).
            let mut occupied = 0usize;
            for (slot, quarantined) in pool.slots() {
                if quarantined {
                    continue;
                }
                let Some(store) = store_paths.get(usize::from(slot.store_path_index)) else {
                    continue;
                };
                let Ok(f) = File::open(store.join(slot.trunk_file_relative_path())) else {
                    continue;
                };
                let len = f.metadata()?.len();
                if !files_in_range(&f, u64::from(slot.offset), slot_end(&slot), len)?
                    .0
                    .is_empty()
                {
                    pool.quarantine_overlapping(&slot);
                    occupied += 1;
                }
            }
            if occupied > 0 {
                tracing::warn!(occupied, "free trunk slots hold files, quarantined");
                let q: Vec<TrunkRecord> = pool
                    .quarantined()
                    .into_iter()
                    .map(|s| record(TrunkOp::AddSpace, s))
                    .collect();
                replace_file(&qpath, lines(&q).as_bytes())?;
            }
        }

        // Unconfirmed allocations: D handed out, A settled. The ones left
        // count from now: their member may still be writing.
        let upath = trunk_dir.join(UNCONFIRMED_NAME);
        let mut outstanding: BTreeMap<TrunkLocation, Instant> = BTreeMap::new();
        let opened = Instant::now();
        replay_side_file(&upath, |r| match r.op {
            TrunkOp::DelSpace => {
                outstanding.insert(r.slot, opened);
            }
            TrunkOp::AddSpace => {
                outstanding.remove(&r.slot);
            }
        })?;
        // One the binlog calls free was settled some other way (a reset).
        outstanding.retain(|s, _| pool.overlapping(s).is_none());
        let keep: Vec<TrunkRecord> = outstanding
            .keys()
            .map(|s| record(TrunkOp::DelSpace, *s))
            .collect();
        replace_file(&upath, lines(&keep).as_bytes())?;
        let unconfirmed_file = open_append(&upath)?;
        let binlog_len = binlog.metadata()?.len();

        Ok(TrunkSpace {
            data_dir,
            store_paths: store_paths.to_vec(),
            subdir_count_per_path,
            params: params.clone(),
            sync_lines: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                pool,
                binlog,
                binlog_len,
                pending: Vec::new(),
                max_trunk_file_id: max_id,
                unconfirmed_lines: outstanding.len(),
                unconfirmed: outstanding,
                unconfirmed_file,
                compressed_len: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock left the pool as the last applied
        // line made it: still consistent with the binlog.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn trunk_dir(&self) -> PathBuf {
        self.data_dir.join(TRUNK_DIR)
    }

    fn store_path(&self, index: u8) -> io::Result<&Path> {
        self.store_paths
            .get(usize::from(index))
            .map(PathBuf::as_path)
            .ok_or_else(|| {
                errno(
                    Status::EINVAL,
                    format!("store path index {index} out of range"),
                )
            })
    }

    fn trunk_file_size(&self) -> u64 {
        self.params.trunk_file_size_bytes
    }

    /// With `on`, every binlog change is fdatasynced before the call
    /// returns, so not even a power cut loses a handed-out slot's `D` line
    /// (the original does not; off by default, as there).
    pub fn set_sync_lines(&self, on: bool) {
        self.sync_lines.store(on, Ordering::Relaxed);
    }

    /// Appends lines to the binlog in one write.
    fn write_binlog(&self, inner: &mut Inner, records: &[TrunkRecord]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if !inner.pending.is_empty() {
            // A member turned trunk server with half a pushed line at the
            // end: drop it so our first line does not glue onto it.
            inner.binlog_len -= inner.pending.len() as u64;
            inner.binlog.set_len(inner.binlog_len)?;
            inner.pending.clear();
        }
        let text = lines(records);
        if let Err(e) = inner.binlog.write_all(text.as_bytes()) {
            // A part-written line must not glue onto the next one.
            let _ = inner.binlog.set_len(inner.binlog_len);
            return Err(e);
        }
        inner.binlog_len += text.len() as u64;
        if self.sync_lines.load(Ordering::Relaxed) {
            inner.binlog.sync_data()?;
        }
        Ok(())
    }

    fn note_unconfirmed(
        &self,
        inner: &mut Inner,
        op: TrunkOp,
        slot: TrunkLocation,
    ) -> io::Result<()> {
        self.note_unconfirmed_many(inner, op, &[slot])
    }

    /// Records `slots` as handed out (`DelSpace`) or settled (`AddSpace`)
    /// in the unconfirmed side file, with one write.
    fn note_unconfirmed_many(
        &self,
        inner: &mut Inner,
        op: TrunkOp,
        slots: &[TrunkLocation],
    ) -> io::Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let mut text = String::with_capacity(slots.len() * 48);
        for s in slots {
            record(op, *s).write_line(&mut text);
        }
        inner.unconfirmed_file.write_all(text.as_bytes())?;
        inner.unconfirmed_lines += slots.len();
        let now = Instant::now();
        for slot in slots {
            match op {
                TrunkOp::DelSpace => {
                    inner.unconfirmed.insert(*slot, now);
                }
                TrunkOp::AddSpace => {
                    inner.unconfirmed.remove(slot);
                }
            }
        }
        if inner.unconfirmed.is_empty() {
            if inner.unconfirmed_lines < UNCONFIRMED_COMPACT_SLACK_LINES {
                // Settled pairs replay to nothing: a truncate per upload
                // would cost more than the upload's own writes.
                return Ok(());
            }
            // Nothing outstanding: start the side file over.
            inner.unconfirmed_file.set_len(0)?;
            inner.unconfirmed_lines = 0;
        } else if inner.unconfirmed_lines
            > 2 * inner.unconfirmed.len() + UNCONFIRMED_COMPACT_SLACK_LINES
        {
            // Always some upload in flight: keep only the outstanding lines.
            let keep: Vec<TrunkRecord> = inner
                .unconfirmed
                .keys()
                .map(|s| record(TrunkOp::DelSpace, *s))
                .collect();
            let path = self.trunk_dir().join(UNCONFIRMED_NAME);
            replace_file(&path, lines(&keep).as_bytes())?;
            inner.unconfirmed_file = open_append(&path)?;
            inner.unconfirmed_lines = keep.len();
        }
        Ok(())
    }

    fn save_quarantine(&self, inner: &Inner) -> io::Result<()> {
        let q: Vec<TrunkRecord> = inner
            .pool
            .quarantined()
            .into_iter()
            .map(|s| record(TrunkOp::AddSpace, s))
            .collect();
        let path = self.trunk_dir().join(QUARANTINE_NAME);
        if q.is_empty() {
            remove_if_present(&path)
        } else {
            replace_file(&path, lines(&q).as_bytes())
        }
    }

    /// Allocations for a batch of uploads (`(store path, file size)` each)
    /// with one binlog write and one side-file write: each as
    /// [`TrunkSpace::alloc`], whose lines all reach the files before any
    /// slot is returned. An error of one upload's request is its own; a
    /// failed binlog write fails the batch and leaves the pool as it was (a
    /// failed side-file write after it leaks the batch's slots).
    pub fn alloc_batch(&self, wants: &[(u8, u32)]) -> io::Result<Vec<io::Result<Alloc>>> {
        let mut inner = self.lock();
        let mut recs = Vec::new();
        let mut plans = Vec::new();
        let mut out = Vec::with_capacity(wants.len());
        for &(store_path_index, file_size) in wants {
            let need = match self.slot_need(store_path_index, file_size) {
                Ok(need) => need,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let Some(plan) = inner.pool.plan_alloc(store_path_index, need) else {
                out.push(Ok(Alloc::NeedTrunkFile));
                continue;
            };
            if let Err(e) = inner.pool.apply_alloc(&plan) {
                out.push(Err(pool_err(e)));
                continue;
            }
            recs.push(record(TrunkOp::DelSpace, plan.whole));
            if let Some(r) = plan.remainder {
                recs.push(record(TrunkOp::AddSpace, r));
            }
            plans.push(plan);
            out.push(Ok(Alloc::Slot(plan.taken)));
        }
        if let Err(e) = self.write_binlog(&mut inner, &recs) {
            for plan in plans.iter().rev() {
                if let Some(r) = plan.remainder {
                    let _ = inner.pool.take(&r);
                }
                let _ = inner.pool.add(&plan.whole, false);
            }
            return Err(e);
        }
        // A failure here leaks the batch's slots (in the binlog, not in the
        // side file): a scrub frees them.
        let taken: Vec<TrunkLocation> = plans.iter().map(|p| p.taken).collect();
        self.note_unconfirmed_many(&mut inner, TrunkOp::DelSpace, &taken)?;
        Ok(out)
    }

    /// Confirms a batch of allocations (`ok` as [`TrunkSpace::confirm`])
    /// with one side-file write; each gets its own answer.
    pub fn confirm_batch(&self, settled: &[(TrunkLocation, bool)]) -> Vec<io::Result<()>> {
        let mut inner = self.lock();
        let mut done = Vec::new();
        let mut out: Vec<io::Result<()>> = settled
            .iter()
            .map(|(slot, ok)| {
                // Settled earlier in this batch counts as settled.
                if !inner.unconfirmed.contains_key(slot) || done.contains(slot) {
                    return Err(errno(
                        Status::ENOENT,
                        format!("confirm of {slot:?}: not an outstanding allocation"),
                    ));
                }
                if !ok {
                    self.free_locked(&mut inner, slot)?;
                }
                done.push(*slot);
                Ok(())
            })
            .collect();
        if let Err(e) = self.note_unconfirmed_many(&mut inner, TrunkOp::AddSpace, &done) {
            let status = e.raw_os_error();
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(status.map_or_else(
                    || io::Error::new(e.kind(), e.to_string()),
                    io::Error::from_raw_os_error,
                ));
            }
        }
        out
    }

    /// The slot size an upload of `file_size` bytes needs in store path
    /// `store_path_index`; EINVAL when it does not go into a trunk.
    fn slot_need(&self, store_path_index: u8, file_size: u32) -> io::Result<u32> {
        self.store_path(store_path_index)?;
        let p = &self.params;
        let need = slot_size_for(
            u64::from(file_size),
            p.slot_min_size_bytes,
            p.trunk_alloc_alignment_size_bytes,
        );
        if SLOT_HEADER_LEN as u64 + u64::from(file_size) > p.slot_max_size_bytes
            || need > self.trunk_file_size()
        {
            return Err(errno(
                Status::EINVAL,
                format!("file of {file_size} bytes does not go into a trunk"),
            ));
        }
        Ok(need as u32)
    }

    /// Best fit among non-quarantined free slots of that store path; splits; writes a `D` line before returning;
    /// remembers the slot as unconfirmed (in memory + data/trunk/unconfirmed side file, ours only).
    pub fn alloc(&self, store_path_index: u8, file_size: u32) -> io::Result<Alloc> {
        let need = self.slot_need(store_path_index, file_size)?;
        let mut inner = self.lock();
        let Some(plan) = inner.pool.plan_alloc(store_path_index, need) else {
            return Ok(Alloc::NeedTrunkFile);
        };
        let mut recs = vec![record(TrunkOp::DelSpace, plan.whole)];
        if let Some(r) = plan.remainder {
            recs.push(record(TrunkOp::AddSpace, r));
        }
        self.write_binlog(&mut inner, &recs)?;
        inner.pool.apply_alloc(&plan).map_err(pool_err)?;
        self.note_unconfirmed(&mut inner, TrunkOp::DelSpace, plan.taken)?;
        Ok(Alloc::Slot(plan.taken))
    }

    /// Creates <store>/data/HH/HH/NNNNNN of trunk_file_size (set_len, sparse; never overwrite an existing file:
    /// O_EXCL, EEXIST is an error) and adds its whole space as one free slot (`A` line).
    ///
    /// The directories come from the id as the original's hashed mode
    /// does ([`random_sub_dirs`]); the name carries them, so any choice reads back.
    pub fn add_trunk_file(
        &self,
        store_path_index: u8,
        trunk_file_id: u32,
    ) -> io::Result<TrunkLocation> {
        let store = self.store_path(store_path_index)?.to_path_buf();
        let size = u32::try_from(self.trunk_file_size())
            .ok()
            .filter(|s| *s > 0 && u64::from(*s) < 1 << 31)
            .ok_or_else(|| errno(Status::EINVAL, "trunk_file_size out of range"))?;
        let (high, low) = random_sub_dirs(trunk_file_id, self.subdir_count_per_path);
        let slot = TrunkLocation {
            store_path_index,
            sub_path_high: high,
            sub_path_low: low,
            trunk_file_id,
            offset: 0,
            size,
        };
        let mut inner = self.lock();
        if inner.pool.knows_file(store_path_index, trunk_file_id) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "trunk file {trunk_file_id} of store path {store_path_index} is in the binlog"
                ),
            ));
        }
        let path = store.join(slot.trunk_file_relative_path());
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        f.set_len(u64::from(size))?;
        f.sync_all()?;
        self.write_binlog(&mut inner, &[record(TrunkOp::AddSpace, slot)])?;
        inner.pool.add(&slot, false).map_err(pool_err)?;
        inner.max_trunk_file_id = inner.max_trunk_file_id.max(trunk_file_id);
        Ok(slot)
    }

    /// ok: forget unconfirmed. !ok: slot back to the pool (`A` line).
    /// A member answering EEXIST (the slot holds another file on its disk,
    /// design rule 4) is `ok = true`, as the original does: that space is
    /// in use and must not go back to the pool.
    /// A slot that is not outstanding is ENOENT either way: after a stale
    /// one was freed (and maybe handed out again) a late confirm must fail.
    pub fn confirm(&self, slot: &TrunkLocation, ok: bool) -> io::Result<()> {
        let mut inner = self.lock();
        if !inner.unconfirmed.contains_key(slot) {
            return Err(errno(
                Status::ENOENT,
                format!("confirm of {slot:?}: not an outstanding allocation"),
            ));
        }
        if !ok {
            self.free_locked(&mut inner, slot)?;
        }
        self.note_unconfirmed(&mut inner, TrunkOp::AddSpace, *slot)
    }

    /// A deleted file's slot back to the pool (`A` line), merging free neighbours when trunk_free_space_merge,
    /// deleting a wholly free trunk file when delete_unused_trunk_files. Freeing a slot that is already free: EEXIST (as the original), no line.
    pub fn free(&self, slot: &TrunkLocation) -> io::Result<()> {
        self.store_path(slot.store_path_index)?;
        let mut inner = self.lock();
        self.free_locked(&mut inner, slot)?;
        if inner.unconfirmed.contains_key(slot) {
            self.note_unconfirmed(&mut inner, TrunkOp::AddSpace, *slot)?;
        }
        Ok(())
    }

    /// FREE_SPACE (29) of a deleted file's slot, checked against this
    /// server's own copy of the slot first (only where deletes leave
    /// tombstones, see `slot::tombstones_fit`):
    /// - a tombstone already freed here: EEXIST, as the original answers a
    ///   free of free space. Two members that deleted
    ///   the same file both free its slot; without this the second free
    ///   could hit the slot after it was handed out again.
    /// - `every_peer_deleted` (our members send it once every peer has the
    ///   delete, so our copy must show it): a live file or another slot's
    ///   tombstone there means the space was handed out again: EBUSY.
    /// - an unfreed tombstone is marked freed before the slot is freed: a
    ///   crash in between leaks the slot (a scrub finds it), never frees
    ///   it twice.
    ///
    /// The original's members free at once, while our copy may still hold
    /// the live file: without `every_peer_deleted` the free goes on as the
    /// original's does.
    pub fn free_deleted(&self, slot: &TrunkLocation, every_peer_deleted: bool) -> io::Result<()> {
        if !super::slot::tombstones_fit(self.params.slot_min_size_bytes) {
            return self.free(slot);
        }
        let store = self.store_path(slot.store_path_index)?.to_path_buf();
        let mut inner = self.lock();
        match super::slot::check_before_free(&store, slot)? {
            FreeCheck::Freed => {
                return Err(errno(
                    Status::EEXIST,
                    format!("free of {slot:?}: freed already (deleted on two members)"),
                ))
            }
            FreeCheck::InUse if every_peer_deleted => {
                return Err(errno(
                    Status::EBUSY,
                    format!("free of {slot:?}: the space holds a newer file here"),
                ))
            }
            FreeCheck::Tombstone => super::slot::mark_freed(&store, slot)?,
            FreeCheck::InUse | FreeCheck::Unknown => {}
        }
        self.free_locked(&mut inner, slot)?;
        if inner.unconfirmed.contains_key(slot) {
            self.note_unconfirmed(&mut inner, TrunkOp::AddSpace, *slot)?;
        }
        Ok(())
    }

    fn free_locked(&self, inner: &mut Inner, slot: &TrunkLocation) -> io::Result<()> {
        // A trunk file this pool never saw (made by a former trunk server
        // past what reached our binlog) is accepted: the freed slot held
        // the deleted file, the rest of that file stays allocated here.
        if slot_end(slot) > self.trunk_file_size() {
            // A file made under a bigger trunk_file_size may still hold it.
            let on_disk = self
                .store_path(slot.store_path_index)?
                .join(slot.trunk_file_relative_path())
                .metadata()
                .map_or(0, |m| m.len());
            if slot_end(slot) > on_disk {
                return Err(errno(
                    Status::EINVAL,
                    format!("free of {slot:?}: past the trunk file's end"),
                ));
            }
        }
        let merge = self.params.trunk_free_space_merge;
        let plan = inner.pool.plan_free(slot, merge).map_err(pool_err)?;
        let m = plan.merged;
        let unused = merge
            && self.params.delete_unused_trunk_files
            && m.offset == 0
            && u64::from(m.size) == self.trunk_file_size();
        // One time for the group: members tell a merge's absorbed pieces
        // by it (`newly_freed`).
        let now = now_secs();
        let stamped = |op, slot| TrunkRecord {
            timestamp: now,
            op,
            slot,
        };
        let mut recs: Vec<TrunkRecord> = plan
            .absorbed
            .iter()
            .map(|a| stamped(TrunkOp::DelSpace, *a))
            .collect();
        if !unused {
            recs.push(stamped(TrunkOp::AddSpace, m));
        }
        self.write_binlog(inner, &recs)?;
        if unused {
            for a in &plan.absorbed {
                inner.pool.take(a).map_err(pool_err)?;
            }
            inner.pool.forget_file(m.store_path_index, m.trunk_file_id);
            let path = self
                .store_path(m.store_path_index)?
                .join(m.trunk_file_relative_path());
            super::slot::forget_open_trunk_file(&path);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(error = %e, path = %path.display(), "unused trunk file not deleted");
                }
                _ => tracing::info!(path = %path.display(), "deleted unused trunk file"),
            }
        } else {
            inner.pool.apply_free(&plan).map_err(pool_err)?;
        }
        Ok(())
    }

    pub fn binlog_size(&self) -> u64 {
        self.lock().binlog_len
    }

    /// Usable (non-quarantined) free space, bytes.
    pub fn free_bytes(&self) -> u64 {
        self.lock().pool.free_bytes()
    }

    /// Quarantined free space, bytes.
    pub fn quarantined_bytes(&self) -> u64 {
        self.lock().pool.quarantined_bytes()
    }

    /// Highest trunk file id seen in the binlog (or created here).
    pub fn max_trunk_file_id(&self) -> u32 {
        self.lock().max_trunk_file_id
    }

    /// Every free slot with its quarantine flag, in position order.
    pub fn free_slots(&self) -> Vec<(TrunkLocation, bool)> {
        self.lock().pool.slots()
    }

    /// Outstanding (unconfirmed) allocations.
    pub fn unconfirmed(&self) -> Vec<TrunkLocation> {
        self.lock().unconfirmed.keys().copied().collect()
    }

    /// Outstanding allocations with how long they have been outstanding
    /// (since this process opened the space, for ones from the side file).
    pub fn unconfirmed_ages(&self) -> Vec<(TrunkLocation, Duration)> {
        self.lock()
            .unconfirmed
            .iter()
            .map(|(s, at)| (*s, at.elapsed()))
            .collect()
    }

    /// Frees a slot a scrub found leaked (`fdfs trunk check --repair`): an
    /// outstanding allocation only once it is `older_than` (checked under
    /// the lock, so a confirm cannot slip in between), any other allocated
    /// slot at once. EEXIST when free, EBUSY when outstanding and young.
    pub fn free_leaked(&self, slot: &TrunkLocation, older_than: Duration) -> io::Result<()> {
        self.store_path(slot.store_path_index)?;
        let mut inner = self.lock();
        let outstanding = inner.unconfirmed.get(slot).copied();
        if let Some(at) = outstanding {
            if at.elapsed() < older_than {
                return Err(errno(
                    Status::EBUSY,
                    format!("{slot:?} was handed out {:?} ago", at.elapsed()),
                ));
            }
        }
        tracing::warn!(slot = ?slot, "freeing a leaked trunk slot");
        self.free_locked(&mut inner, slot)?;
        if outstanding.is_some() {
            self.note_unconfirmed(&mut inner, TrunkOp::AddSpace, *slot)?;
        }
        Ok(())
    }

    /// Taking over from another trunk server: all free space known now becomes quarantined (never allocated)
    /// until `release_quarantine` is called for a slot a scrub proved free on every member.
    pub fn quarantine_all(&self) {
        let mut inner = self.lock();
        inner.pool.quarantine_all();
        if let Err(e) = self.save_quarantine(&inner) {
            // Kept in memory; lost only if this process also restarts.
            tracing::warn!(error = %e, "trunk quarantine not saved");
        }
    }

    pub fn quarantined(&self) -> Vec<TrunkLocation> {
        self.lock().pool.quarantined()
    }

    pub fn release_quarantine(&self, slot: &TrunkLocation) -> io::Result<()> {
        let mut inner = self.lock();
        inner.pool.release_quarantine(slot).map_err(pool_err)?;
        self.save_quarantine(&inner)
    }

    /// Member side: append lines pushed by the trunk server (cmd 30) verbatim and apply them.
    /// A chunk may end inside a line: the part is kept and applied when
    /// the next chunk completes it.
    pub fn apply_pushed(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        inner.binlog.write_all(bytes)?;
        inner.binlog_len += bytes.len() as u64;
        inner.pending.extend_from_slice(bytes);
        let (records, refused, consumed) = parse_lines(&inner.pending);
        if refused > 0 {
            tracing::warn!(refused, "pushed trunk binlog lines refused");
        }
        let inner = &mut *inner;
        apply_records(&mut inner.pool, &mut inner.max_trunk_file_id, &records);
        inner.pending.drain(..consumed);
        if super::slot::tombstones_fit(self.params.slot_min_size_bytes) {
            for (slot, freed_at) in newly_freed(&records) {
                let Ok(store) = self.store_path(slot.store_path_index) else {
                    continue;
                };
                if let Err(e) = super::slot::mark_freed_if_older(store, &slot, freed_at) {
                    tracing::warn!(error = %e, ?slot, "cannot mark a freed tombstone");
                }
            }
        }
        Ok(())
    }

    /// Member side (cmd 33 / before a full push): empty the binlog and pool.
    /// Also drops the snapshot, quarantine and unconfirmed list that
    /// described the old binlog; the highest trunk id seen is kept.
    pub fn reset(&self) -> io::Result<()> {
        let mut inner = self.lock();
        for path in [
            self.snapshot_path(),
            self.trunk_dir().join(SNAPSHOT_FILES_NAME),
        ] {
            remove_if_present(&path)?;
        }
        inner.binlog.set_len(0)?;
        inner.binlog_len = 0;
        inner.compressed_len = None;
        inner.pending.clear();
        inner.pool.clear();
        inner.unconfirmed.clear();
        inner.unconfirmed_file.set_len(0)?;
        self.save_quarantine(&inner)
    }

    /// For the pusher to read from a mark offset.
    pub fn binlog_path(&self) -> PathBuf {
        self.trunk_dir().join(BINLOG_NAME)
    }

    /// `<base>/data/storage_trunk.dat`.
    pub fn snapshot_path(&self) -> PathBuf {
        self.data_dir.join(TRUNK_DATA_FILE_NAME)
    }

    /// storage_trunk.dat (binlog size + A lines), through a temp file and a rename.
    pub fn save_snapshot(&self) -> io::Result<()> {
        let inner = self.lock();
        self.save_snapshot_locked(&inner)
    }

    fn save_snapshot_locked(&self, inner: &Inner) -> io::Result<()> {
        let ts = now_secs();
        let snap = TrunkDataFile {
            binlog_size: inner.binlog_len - inner.pending.len() as u64,
            free: inner
                .pool
                .slots()
                .into_iter()
                .map(|(location, _)| FreeSlot {
                    timestamp: ts,
                    location,
                })
                .collect(),
        };
        // The highest trunk id first: a snapshot found without its
        // matching id line falls back to reading the lines before it.
        let mut files = format!("{} {}\n", snap.binlog_size, inner.max_trunk_file_id);
        for (p, id, h, l) in inner.pool.files() {
            let _ = writeln!(files, "{p} {h} {l} {id}");
        }
        replace_file(
            &self.trunk_dir().join(SNAPSHOT_FILES_NAME),
            files.as_bytes(),
        )?;
        replace_file(&self.snapshot_path(), snap.print().as_bytes())
    }

    /// Compresses `data/trunk/binlog` (`trunk_compress_binlog_*`) into
    /// the free pool it describes, as the original's compression leaves
    /// it: one `A` line per free slot, later lines appended after them.
    /// A trunk file without free space keeps an `A` and a `D` line of its
    /// whole space (before any other line of it), so a replay, ours or
    /// the original's, still knows it (its id, its directories, a scrub
    /// walks it). None when nothing was written since the last one.
    ///
    /// Crash-safe without the original's rollback stages: the new binlog
    /// is written and synced beside the old one, then everything that
    /// points into the old one goes (`storage_trunk.dat`, our
    /// `snapshot_files`, the members' push marks `*.mark`, so each member
    /// is sent TRUNCATE_BINLOG_FILE (33) and the new binlog whole), and
    /// only then is it renamed over the old one. A crash before the
    /// rename leaves the old binlog, replayed whole; after it, the new
    /// one. Neither loses or frees a slot: the pool is the same.
    pub fn compress(&self) -> io::Result<Option<Compressed>> {
        let mut inner = self.lock();
        if inner.compressed_len == Some(inner.binlog_len) {
            return Ok(None);
        }
        if !inner.pending.is_empty() {
            // A member turned trunk server with half a pushed line at the
            // end: it was never applied, so it does not go on.
            inner.binlog_len -= inner.pending.len() as u64;
            inner.pending.clear();
        }
        let before_bytes = inner.binlog_len;
        let ts = now_secs();
        let mut text = String::new();
        for (p, id, high, low) in inner.pool.files() {
            if inner.pool.slots_of(p, id).is_empty() {
                let whole = TrunkLocation {
                    store_path_index: p,
                    sub_path_high: high,
                    sub_path_low: low,
                    trunk_file_id: id,
                    offset: 0,
                    size: u32::try_from(self.trunk_file_size()).unwrap_or(u32::MAX),
                };
                for op in [TrunkOp::AddSpace, TrunkOp::DelSpace] {
                    text.push_str(
                        &TrunkRecord {
                            timestamp: ts,
                            op,
                            slot: whole,
                        }
                        .to_line(),
                    );
                }
            }
        }
        for (slot, _) in inner.pool.slots() {
            text.push_str(&record(TrunkOp::AddSpace, slot).to_line());
        }
        let trunk_dir = self.trunk_dir();
        let path = trunk_dir.join(BINLOG_NAME);
        let tmp = trunk_dir.join(BINLOG_COMPRESS_TMP_NAME);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        for gone in [self.snapshot_path(), trunk_dir.join(SNAPSHOT_FILES_NAME)] {
            remove_if_present(&gone)?;
        }
        for entry in fs::read_dir(&trunk_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(MARK_SUFFIX) && name != FREER_MARK_NAME {
                remove_if_present(&entry.path())?;
            }
        }
        sync_dir(&self.data_dir)?;
        sync_dir(&trunk_dir)?;
        fs::rename(&tmp, &path)?;
        sync_dir(&trunk_dir)?;
        inner.binlog = open_append(&path)?;
        inner.binlog_len = text.len() as u64;
        inner.compressed_len = Some(inner.binlog_len);
        if let Err(e) = self.save_snapshot_locked(&inner) {
            // The compressed binlog replays whole at the next start.
            tracing::warn!(error = %e, "no {TRUNK_DATA_FILE_NAME} after the trunk binlog compression");
        }
        Ok(Some(Compressed {
            before_bytes,
            after_bytes: inner.binlog_len,
        }))
    }

    /// Unconfirmed allocations older than `older_than` (from the side file at start, or in memory): freed.
    pub fn free_stale_unconfirmed(&self, older_than: Duration) -> io::Result<usize> {
        let mut inner = self.lock();
        let stale: Vec<TrunkLocation> = inner
            .unconfirmed
            .iter()
            .filter(|(_, at)| at.elapsed() >= older_than)
            .map(|(s, _)| *s)
            .collect();
        for s in &stale {
            tracing::warn!(slot = ?s, "freeing a trunk allocation never confirmed");
            match self.free_locked(&mut inner, s) {
                Ok(()) => {}
                // Freed by a delete already: just settle it.
                Err(e) if e.raw_os_error() == Some(i32::from(Status::EEXIST.0)) => {}
                Err(e) => return Err(e),
            }
            self.note_unconfirmed(&mut inner, TrunkOp::AddSpace, *s)?;
        }
        Ok(stale.len())
    }

    /// The files stored inside `slot` on this disk (headers reachable from
    /// its start, see [`TrunkSpace::scrub_local`]): empty means the range is
    /// proven free here, what a member answers for a quarantined slot of
    /// the trunk server. A trunk file this disk lacks holds nothing.
    pub fn scrub_range(&self, slot: &TrunkLocation) -> io::Result<Vec<TrunkLocation>> {
        let path = self
            .store_path(slot.store_path_index)?
            .join(slot.trunk_file_relative_path());
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let (found, _) = files_in_range(&f, u64::from(slot.offset), slot_end(slot), len)?;
        Ok(found
            .into_iter()
            .map(|(offset, size)| TrunkLocation {
                offset: offset as u32,
                size,
                ..*slot
            })
            .collect())
    }

    /// Walks every known trunk file's slot headers on this disk and
    /// compares them with the pool: free slots holding a file header,
    /// allocated space whose header chain does not add up, quarantined
    /// slots proven free here. Headers are followed by their alloc size,
    /// free ones too (a deleted file's header keeps it); a header of size
    /// 0 ends a free slot's walk (never-written space). Allocations made
    /// while the walk runs can show as mismatches; outstanding
    /// (unconfirmed) slots are skipped.
    pub fn scrub_local(&self) -> io::Result<ScrubReport> {
        let (files, unconfirmed) = {
            let inner = self.lock();
            let files: Vec<(TrunkLocation, Vec<(TrunkLocation, bool)>)> = inner
                .pool
                .files()
                .into_iter()
                .map(|(p, id, high, low)| {
                    let whole = TrunkLocation {
                        store_path_index: p,
                        sub_path_high: high,
                        sub_path_low: low,
                        trunk_file_id: id,
                        offset: 0,
                        size: u32::try_from(self.trunk_file_size()).unwrap_or(u32::MAX),
                    };
                    (whole, inner.pool.slots_of(p, id))
                })
                .collect();
            let unconfirmed: BTreeMap<(u8, u32, u32), u32> = inner
                .unconfirmed
                .keys()
                .map(|s| ((s.store_path_index, s.trunk_file_id, s.offset), s.size))
                .collect();
            (files, unconfirmed)
        };
        let mut report = ScrubReport::default();
        for (whole, free) in files {
            let path = self
                .store_path(whole.store_path_index)?
                .join(whole.trunk_file_relative_path());
            let f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    report.missing_files.push(whole);
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.trunk_files += 1;
            let len = f.metadata()?.len().min(1 << 31);
            scrub_file(&f, whole, len, &free, &unconfirmed, &mut report)?;
        }
        Ok(report)
    }
}

/// Reads the header at `offset`; None past the end of the file.
fn read_header(f: &File, offset: u64, len: u64) -> io::Result<Option<SlotHeader>> {
    if offset + SLOT_HEADER_LEN as u64 > len {
        return Ok(None);
    }
    let mut b = [0u8; SLOT_HEADER_LEN];
    f.read_exact_at(&mut b, offset)?;
    Ok(Some(SlotHeader::decode(&b)))
}

fn holds_file(h: &SlotHeader) -> bool {
    h.file_type == SLOT_TYPE_REGULAR || h.file_type == SLOT_TYPE_LINK
}

/// The file headers (`F`/`L`) reachable by following alloc sizes from
/// `start` within `[start, end)` of a trunk file of `len` bytes, as
/// `(offset, alloc size)`, and how many headers were read. Free headers
/// are followed too: a cleared slot keeps its size. A header of size 0
/// ends the walk (space never written).
fn files_in_range(f: &File, start: u64, end: u64, len: u64) -> io::Result<(Vec<(u64, u32)>, u64)> {
    let mut found = Vec::new();
    let mut read = 0u64;
    let mut q = start;
    while let Some(h) = read_header(f, q, len.min(end))? {
        read += 1;
        if holds_file(&h) {
            found.push((q, h.alloc_size));
        }
        if h.alloc_size == 0 || q + u64::from(h.alloc_size) > end {
            break;
        }
        q += u64::from(h.alloc_size);
    }
    Ok((found, read))
}

fn scrub_file(
    f: &File,
    whole: TrunkLocation,
    len: u64,
    free: &[(TrunkLocation, bool)],
    unconfirmed: &BTreeMap<(u8, u32, u32), u32>,
    report: &mut ScrubReport,
) -> io::Result<()> {
    let at = |offset: u64, size: u32| TrunkLocation {
        offset: offset as u32,
        size,
        ..whole
    };
    let mut p = 0u64;
    let mut next_free = 0usize;
    while p < len {
        if let Some((fs, quarantined)) = free
            .get(next_free)
            .filter(|(s, _)| u64::from(s.offset) == p)
        {
            // A free slot: no file header may be reachable inside it.
            let end = slot_end(fs);
            let (found, read) = files_in_range(f, p, end, len)?;
            report.headers_read += read;
            let clean = found.is_empty();
            for (offset, size) in found {
                report.free_with_header.push((*fs, at(offset, size)));
            }
            if *quarantined && clean {
                report.quarantine_clean.push(*fs);
            }
            p = end;
            next_free += 1;
            continue;
        }
        // Allocated space up to the next free slot: a chain of file headers.
        let region_end = free
            .get(next_free)
            .map_or(len, |(s, _)| u64::from(s.offset).min(len));
        if region_end < p {
            // Free slots overlapping each other cannot come from the pool.
            break;
        }
        let mut q = p;
        while q < region_end {
            let key = (whole.store_path_index, whole.trunk_file_id, q as u32);
            if let Some(size) = unconfirmed.get(&key) {
                q += u64::from(*size);
                continue;
            }
            let Some(h) = read_header(f, q, region_end)? else {
                report.chain_mismatches.push(ChainMismatch {
                    at: at(q, 0),
                    reason: format!(
                        "{} bytes left before the next free slot, no room for a header",
                        region_end - q
                    ),
                });
                break;
            };
            report.headers_read += 1;
            let step = u64::from(h.alloc_size);
            let reason = if !holds_file(&h) && h.file_type != 0 {
                Some(format!("bad file type {:#04x}", h.file_type))
            } else if step < SLOT_HEADER_LEN as u64 {
                Some(format!("alloc size {step} smaller than a header"))
            } else if q + step > region_end {
                Some(format!(
                    "alloc size {step} runs past the allocated space ending at {region_end}"
                ))
            } else if !holds_file(&h) {
                Some("free header where the binlog says allocated".to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                report.chain_mismatches.push(ChainMismatch {
                    at: at(q, h.alloc_size),
                    reason,
                });
                if step < SLOT_HEADER_LEN as u64 || q + step > region_end {
                    break;
                }
            }
            q += step;
        }
        p = region_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::trunk::SLOT_TYPE_FREE;

    const FILE: u64 = 64 * 1024;

    fn params(merge: bool, delete_unused: bool) -> TrunkParams {
        TrunkParams {
            use_trunk_file: true,
            slot_min_size_bytes: 256,
            slot_max_size_bytes: 16 * 1024,
            trunk_alloc_alignment_size_bytes: 0,
            trunk_file_size_bytes: FILE,
            trunk_free_space_merge: merge,
            delete_unused_trunk_files: delete_unused,
            ..TrunkParams::default()
        }
    }

    struct Env {
        dir: tempfile::TempDir,
        params: TrunkParams,
    }

    impl Env {
        fn new(params: TrunkParams) -> Env {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("store0")).unwrap();
            fs::create_dir_all(dir.path().join("store1")).unwrap();
            Env { dir, params }
        }
        fn stores(&self) -> Vec<PathBuf> {
            vec![
                self.dir.path().join("store0"),
                self.dir.path().join("store1"),
            ]
        }
        fn open(&self) -> TrunkSpace {
            TrunkSpace::open(
                &self.dir.path().join("base"),
                &self.stores(),
                256,
                &self.params,
            )
            .unwrap()
        }
        fn binlog(&self) -> Vec<u8> {
            fs::read(self.dir.path().join("base/data/trunk/binlog")).unwrap()
        }
    }

    fn slot(a: Alloc) -> TrunkLocation {
        match a {
            Alloc::Slot(s) => s,
            Alloc::NeedTrunkFile => panic!("no slot"),
        }
    }

    fn os_err(e: &io::Error) -> Option<Status> {
        e.raw_os_error().map(|c| Status(c as u8))
    }

    /// Everything a restart must reproduce.
    fn state(s: &TrunkSpace) -> (Vec<(TrunkLocation, bool)>, u64, u32, Vec<TrunkLocation>) {
        (
            s.free_slots(),
            s.binlog_size(),
            s.max_trunk_file_id(),
            s.unconfirmed(),
        )
    }

    #[test]
    fn alloc_confirm_and_restart_equal_state() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.set_sync_lines(true);
        assert_eq!(s.alloc(0, 1000).unwrap(), Alloc::NeedTrunkFile);
        let t = s.add_trunk_file(0, 7).unwrap();
        assert_eq!((t.offset, u64::from(t.size)), (0, FILE));
        let path = env.stores()[0].join(t.trunk_file_relative_path());
        assert_eq!(fs::metadata(&path).unwrap().len(), FILE);
        let a = slot(s.alloc(0, 1000).unwrap());
        assert_eq!((a.offset, a.size), (0, 1024));
        assert_eq!(a.trunk_file_id, 7);
        let text = String::from_utf8(env.binlog()).unwrap();
        let ops: Vec<String> = text
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect();
        let (h, l) = (t.sub_path_high, t.sub_path_low);
        assert_eq!(
            ops,
            vec![
                format!("A 0 {h} {l} 7 0 65536"),
                format!("D 0 {h} {l} 7 0 65536"),
                format!("A 0 {h} {l} 7 1024 64512"),
            ]
        );
        assert_eq!(s.unconfirmed(), vec![a]);
        s.confirm(&a, true).unwrap();
        assert!(s.unconfirmed().is_empty());
        assert_eq!(
            os_err(&s.confirm(&a, true).unwrap_err()),
            Some(Status::ENOENT)
        );
        let b = slot(s.alloc(0, 10).unwrap());
        assert_eq!((b.offset, b.size), (1024, 256));
        s.confirm(&b, false).unwrap();
        assert_eq!(s.free_bytes(), FILE - 1024);
        // A store path index beyond the configured ones, an oversized file.
        assert_eq!(os_err(&s.alloc(2, 10).unwrap_err()), Some(Status::EINVAL));
        assert_eq!(
            os_err(&s.alloc(0, 16 * 1024).unwrap_err()),
            Some(Status::EINVAL)
        );
        let before = state(&s);
        drop(s);
        assert_eq!(state(&env.open()), before);
    }

    #[test]
    fn existing_trunk_files_are_never_overwritten() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        let e = s.add_trunk_file(0, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        // A file on disk the binlog does not know (another server made it).
        let (h, l) = random_sub_dirs(2, 256);
        let p = env.stores()[1].join(trunk_file_relative_path(h, l, 2));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"data").unwrap();
        let size = s.binlog_size();
        assert_eq!(
            s.add_trunk_file(1, 2).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&p).unwrap(), b"data");
        assert_eq!(s.binlog_size(), size);
        assert_eq!(s.max_trunk_file_id(), 1);
    }

    #[test]
    fn double_free_writes_no_line() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        let a = slot(s.alloc(0, 1000).unwrap());
        s.confirm(&a, true).unwrap();
        s.free(&a).unwrap();
        let size = s.binlog_size();
        assert_eq!(os_err(&s.free(&a).unwrap_err()), Some(Status::EEXIST));
        let past_end = TrunkLocation {
            offset: FILE as u32 - 100,
            size: 200,
            ..a
        };
        assert_eq!(
            os_err(&s.free(&past_end).unwrap_err()),
            Some(Status::EINVAL)
        );
        assert_eq!(s.binlog_size(), size);
        assert_eq!(env.binlog().len() as u64, size);
    }

    #[test]
    fn merge_and_delete_unused_trunk_file() {
        let env = Env::new(params(true, true));
        let s = env.open();
        let t = s.add_trunk_file(0, 3).unwrap();
        let a = slot(s.alloc(0, 1000).unwrap());
        let b = slot(s.alloc(0, 2000).unwrap());
        s.confirm(&a, true).unwrap();
        s.confirm(&b, true).unwrap();
        s.free(&a).unwrap();
        assert_eq!(s.free_slots().len(), 2);
        s.free(&b).unwrap();
        assert!(s.free_slots().is_empty());
        assert!(!env.stores()[0].join(t.trunk_file_relative_path()).exists());
        drop(s);
        let s = env.open();
        assert!(s.free_slots().is_empty());
        assert_eq!(s.max_trunk_file_id(), 3);
        assert!(s.scrub_local().unwrap().missing_files.is_empty());
        // Merge without deletion keeps one whole slot.
        let env = Env::new(params(true, false));
        let s = env.open();
        let t = s.add_trunk_file(0, 3).unwrap();
        let a = slot(s.alloc(0, 1000).unwrap());
        let b = slot(s.alloc(0, 2000).unwrap());
        s.free(&b).unwrap();
        s.free(&a).unwrap();
        assert_eq!(s.free_slots(), vec![(t, false)]);
        drop(s);
        assert_eq!(env.open().free_slots(), vec![(t, false)]);
    }

    #[test]
    fn snapshot_round_trip_and_replay_past_it() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        s.add_trunk_file(1, 2).unwrap();
        let a = slot(s.alloc(0, 1000).unwrap());
        slot(s.alloc(1, 3000).unwrap());
        s.save_snapshot().unwrap();
        let snap_at = s.binlog_size() as usize;
        s.free(&a).unwrap();
        slot(s.alloc(1, 500).unwrap());
        let before = state(&s);
        drop(s);
        // Garble the binlog before the snapshot point: only what follows
        // the snapshot is replayed.
        let mut bin = env.binlog();
        for b in &mut bin[..snap_at - 1] {
            if *b != b'\n' {
                *b = b'x';
            }
        }
        fs::write(env.dir.path().join("base/data/trunk/binlog"), &bin).unwrap();
        assert_eq!(state(&env.open()), before);
        // A snapshot beyond the binlog is ignored: whole replay.
        let env2 = Env::new(params(true, false));
        let s = env2.open();
        s.add_trunk_file(0, 1).unwrap();
        let before = state(&s);
        fs::write(s.snapshot_path(), "999999\n").unwrap();
        drop(s);
        assert_eq!(state(&env2.open()), before);
    }

    /// A member fed the whole binlog of `server_env`, with its own dirs.
    fn member_of(server_env: &Env) -> (Env, TrunkSpace) {
        let member_env = Env::new(server_env.params.clone());
        let member = member_env.open();
        member.apply_pushed(&server_env.binlog()).unwrap();
        (member_env, member)
    }

    /// The free slots as a member knows them: quarantine is the server's.
    fn unflagged(s: &TrunkSpace) -> Vec<(TrunkLocation, bool)> {
        s.free_slots()
            .into_iter()
            .map(|(l, _)| (l, false))
            .collect()
    }

    /// The pool as a restart must rebuild it, binlog size left out.
    fn pool_state(s: &TrunkSpace) -> (Vec<(TrunkLocation, bool)>, u32, Vec<TrunkLocation>) {
        (s.free_slots(), s.max_trunk_file_id(), s.unconfirmed())
    }

    #[test]
    fn compression_rewrites_the_binlog_as_the_pool() {
        let env = Env::new(params(false, false));
        let s = env.open();
        let trunk_dir = env.dir.path().join("base/data/trunk");
        // File 1 fragmented, file 2 wholly allocated, file 3 untouched.
        s.add_trunk_file(0, 1).unwrap();
        let mut held = Vec::new();
        for n in [100, 2000, 300, 4000, 500] {
            let a = slot(s.alloc(0, n).unwrap());
            s.confirm(&a, true).unwrap();
            held.push(a);
        }
        s.free(&held[1]).unwrap();
        s.free(&held[3]).unwrap();
        let full = s.add_trunk_file(1, 2).unwrap();
        for _ in 0..4 {
            let quarter = slot(
                s.alloc(1, FILE as u32 / 4 - SLOT_HEADER_LEN as u32)
                    .unwrap(),
            );
            assert_eq!(quarter.trunk_file_id, 2);
            s.confirm(&quarter, true).unwrap();
        }
        s.add_trunk_file(1, 3).unwrap();
        let outstanding = slot(s.alloc(1, 700).unwrap());
        fs::write(trunk_dir.join("127.0.0.9.mark"), "binlog_offset=300\n").unwrap();
        fs::write(trunk_dir.join(FREER_MARK_NAME), "binlog_index=0\n").unwrap();
        let before = pool_state(&s);
        let old_size = s.binlog_size();

        let done = s.compress().unwrap().expect("compressed");
        assert_eq!(done.before_bytes, old_size);
        assert!(done.after_bytes < old_size, "{done:?}");
        assert_eq!(s.binlog_size(), done.after_bytes);
        assert_eq!(pool_state(&s), before);
        let text = String::from_utf8(env.binlog()).unwrap();
        let ops: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        let (h, l) = (full.sub_path_high, full.sub_path_low);
        let mut want = vec![
            format!("A 1 {h} {l} 2 0 65536"),
            format!("D 1 {h} {l} 2 0 65536"),
        ];
        want.extend(before.0.iter().map(|(f, _)| {
            format!(
                "A {} {} {} {} {} {}",
                f.store_path_index,
                f.sub_path_high,
                f.sub_path_low,
                f.trunk_file_id,
                f.offset,
                f.size
            )
        }));
        assert_eq!(ops, want);
        assert!(
            !trunk_dir.join("127.0.0.9.mark").exists(),
            "members start over"
        );
        assert!(trunk_dir.join(FREER_MARK_NAME).exists(), "not a push mark");
        assert!(!trunk_dir.join(BINLOG_COMPRESS_TMP_NAME).exists());
        assert_eq!(s.compress().unwrap(), None, "nothing new to compress");

        // Work goes on past the compression and replays after it.
        s.confirm(&outstanding, true).unwrap();
        s.free(&held[0]).unwrap();
        let after = pool_state(&s);
        drop(s);
        assert_eq!(pool_state(&env.open()), after);
        // Without storage_trunk.dat (a crash right after the rename) the
        // compressed binlog alone gives the same pool and trunk files.
        fs::remove_file(env.dir.path().join("base/data").join(TRUNK_DATA_FILE_NAME)).unwrap();
        let s = env.open();
        assert_eq!(pool_state(&s), after);
        let known = s.add_trunk_file(1, 2).unwrap_err();
        assert_eq!(known.kind(), io::ErrorKind::AlreadyExists);
        let r = s.scrub_local().unwrap();
        assert_eq!(r.trunk_files, 3, "{r:?}");
        // A member fed the compressed binlog from scratch has the pool.
        let (_member_env, member) = member_of(&env);
        assert_eq!(member.free_slots(), unflagged(&s));
        assert_eq!(member.max_trunk_file_id(), 3);
    }

    /// A crash anywhere in a compression leaves either binlog; both replay
    /// to the same pool. Before the rename: the old binlog and no snapshot
    /// (removed first), with the temp file left behind.
    #[test]
    fn a_crash_before_the_rename_replays_the_old_binlog() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        for n in 0..40u32 {
            let a = slot(s.alloc(0, 100 + n * 13).unwrap());
            s.confirm(&a, n % 3 != 0).unwrap();
        }
        s.save_snapshot().unwrap();
        let old = env.binlog();
        let before = pool_state(&s);
        s.compress().unwrap().unwrap();
        let compressed = env.binlog();
        drop(s);
        let data = env.dir.path().join("base/data");
        fs::write(data.join("trunk/binlog"), &old).unwrap();
        fs::write(
            data.join("trunk").join(BINLOG_COMPRESS_TMP_NAME),
            &compressed,
        )
        .unwrap();
        fs::remove_file(data.join(TRUNK_DATA_FILE_NAME)).unwrap();
        fs::remove_file(data.join("trunk").join(SNAPSHOT_FILES_NAME)).unwrap();
        let s = env.open();
        assert_eq!(pool_state(&s), before);
        assert_eq!(s.binlog_size(), old.len() as u64);
        assert!(!data.join("trunk").join(BINLOG_COMPRESS_TMP_NAME).exists());
    }

    /// Replay reads through a fixed buffer: lines across its edges, a
    /// torn last line and an overlong garbage line read as a whole read.
    #[test]
    fn replay_streams_across_buffer_edges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binlog");
        let mut text = Vec::new();
        let mut want = Vec::new();
        for i in 0..(3 * REPLAY_CHUNK_BYTES / 30) as u32 {
            let r = TrunkRecord {
                timestamp: 1_700_000_000 + i64::from(i),
                op: if i % 2 == 0 {
                    TrunkOp::AddSpace
                } else {
                    TrunkOp::DelSpace
                },
                slot: TrunkLocation {
                    store_path_index: 0,
                    sub_path_high: (i % 256) as u8,
                    sub_path_low: 1,
                    trunk_file_id: i,
                    offset: i * 7,
                    size: 256 + i,
                },
            };
            text.extend_from_slice(r.to_line().as_bytes());
            want.push(r);
            if i == 5000 {
                text.extend(std::iter::repeat_n(b'z', 3 * REPLAY_CHUNK_BYTES));
                text.push(b'\n');
            }
        }
        let whole = text.len() as u64;
        text.extend_from_slice(b"1700000000 A 0 1");
        fs::write(&path, &text).unwrap();
        let f = File::open(&path).unwrap();
        let mut got = Vec::new();
        let (consumed, refused) = replay_lines(&f, 0, text.len() as u64, |r| got.push(*r)).unwrap();
        assert_eq!((consumed, refused), (whole, 1));
        assert_eq!(got, want);
        let (records, refused, consumed) = parse_lines(&text);
        assert_eq!((records, refused, consumed as u64), (want, 1, whole));
    }

    #[test]
    fn highest_trunk_id_survives_a_snapshot_without_its_file() {
        let env = Env::new(params(true, true));
        let s = env.open();
        s.add_trunk_file(0, 5).unwrap();
        let a = slot(s.alloc(0, 100).unwrap());
        s.confirm(&a, false).unwrap();
        assert!(s.free_slots().is_empty());
        s.save_snapshot().unwrap();
        drop(s);
        // Lines before the snapshot unreadable: the id comes from its side file.
        let bin: Vec<u8> = env
            .binlog()
            .iter()
            .map(|b| if *b == b'\n' { b'\n' } else { b'x' })
            .collect();
        fs::write(env.dir.path().join("base/data/trunk/binlog"), &bin).unwrap();
        assert_eq!(env.open().max_trunk_file_id(), 5);
    }

    #[test]
    fn init_check_occupying_quarantines_free_slots_holding_files() {
        let mut p = params(false, false);
        let env = Env::new(p.clone());
        let s = env.open();
        let t = s.add_trunk_file(0, 1).unwrap();
        let a = slot(s.alloc(0, 100).unwrap());
        s.confirm(&a, false).unwrap();
        drop(s);
        // A file the binlog does not know about sits in the free slot at 0.
        write_header(&env.stores()[0], &a, SLOT_TYPE_REGULAR);
        p.trunk_init_check_occupying = true;
        let env2 = Env {
            dir: env.dir,
            params: p,
        };
        let s = env2.open();
        assert_eq!(s.quarantined(), vec![a]);
        assert_eq!(s.free_bytes(), u64::from(t.size - a.size));
        drop(s);
        // Kept across restarts, also without the check.
        let env3 = Env {
            dir: env2.dir,
            params: params(false, false),
        };
        assert_eq!(env3.open().quarantined(), vec![a]);
    }

    #[test]
    fn init_reload_from_binlog_ignores_the_snapshot() {
        let mut p = params(true, false);
        let env = Env::new(p.clone());
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        s.save_snapshot().unwrap();
        let before = state(&s);
        // A snapshot that disagrees with the binlog it claims to cover.
        fs::write(s.snapshot_path(), format!("{}\n", before.1)).unwrap();
        drop(s);
        assert!(env.open().free_slots().is_empty());
        p.trunk_init_reload_from_binlog = true;
        let env2 = Env {
            dir: env.dir,
            params: p,
        };
        assert_eq!(state(&env2.open()), before);
    }

    #[test]
    fn concurrent_callers_never_share_a_slot() {
        let env = Env::new(params(true, false));
        let s = env.open();
        let next_id = std::sync::atomic::AtomicU32::new(1);
        let held: Vec<TrunkLocation> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u32)
                .map(|w| {
                    let (s, next_id) = (&s, &next_id);
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        for i in 0..300u32 {
                            let n = 50 + (w * 7919 + i * 104_729) % 8000;
                            let a = loop {
                                match s.alloc((i % 2) as u8, n).unwrap() {
                                    Alloc::Slot(a) => break a,
                                    Alloc::NeedTrunkFile => {
                                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                                        // Another thread may have made room meanwhile.
                                        s.add_trunk_file((i % 2) as u8, id).unwrap();
                                    }
                                }
                            };
                            s.confirm(&a, i % 5 != 0).unwrap();
                            if i % 5 != 0 {
                                mine.push(a);
                            }
                            if i % 3 == 0 {
                                if let Some(f) = mine.pop() {
                                    s.free(&f).unwrap();
                                }
                            }
                        }
                        mine
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let free = s.free_slots();
        let mut spans: Vec<(u8, u32, u64, u64)> = held
            .iter()
            .chain(free.iter().map(|(f, _)| f))
            .map(|l| {
                (
                    l.store_path_index,
                    l.trunk_file_id,
                    u64::from(l.offset),
                    slot_end(l),
                )
            })
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            if (w[0].0, w[0].1) == (w[1].0, w[1].1) {
                assert!(w[0].3 <= w[1].2, "{w:?}");
            }
        }
        // Held plus free covers every trunk file exactly.
        let total: u64 = spans.iter().map(|s| s.3 - s.2).sum();
        assert_eq!(total, u64::from(next_id.load(Ordering::Relaxed) - 1) * FILE);
        let before = state(&s);
        drop(s);
        assert_eq!(state(&env.open()), before);
    }

    #[test]
    fn a_full_trunk_file_stays_known_across_a_snapshot() {
        let env = Env::new(params(false, false));
        let s = env.open();
        s.add_trunk_file(0, 4).unwrap();
        let mut rest = None;
        while let Alloc::Slot(a) = s.alloc(0, 1000).unwrap() {
            s.confirm(&a, true).unwrap();
            rest = Some(a);
        }
        let rest = rest.unwrap();
        assert!(s.free_slots().is_empty());
        s.save_snapshot().unwrap();
        drop(s);
        for side_file in [true, false] {
            if !side_file {
                fs::remove_file(
                    env.dir
                        .path()
                        .join("base/data/trunk")
                        .join(SNAPSHOT_FILES_NAME),
                )
                .unwrap();
            }
            let s = env.open();
            assert_eq!(
                s.scrub_local().unwrap().trunk_files,
                1,
                "side file {side_file}"
            );
            assert_eq!(s.max_trunk_file_id(), 4);
            // Its slots can be freed after the restart.
            s.free(&rest).unwrap();
            assert_eq!(s.free_slots(), vec![(rest, false)]);
            s.save_snapshot().unwrap();
            s.alloc(0, 1000).unwrap();
            drop(s);
        }
    }

    #[test]
    fn torn_last_line_is_cut_off() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        slot(s.alloc(0, 100).unwrap());
        let before = state(&s);
        drop(s);
        let path = env.dir.path().join("base/data/trunk/binlog");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1700000000 D 0 0 0 1 4").unwrap();
        drop(f);
        let s = env.open();
        assert_eq!(state(&s), before);
        assert_eq!(fs::metadata(&path).unwrap().len(), before.1);
    }

    #[test]
    fn quarantine_is_never_allocated_and_survives_restart() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        let a = slot(s.alloc(0, 1000).unwrap());
        s.confirm(&a, true).unwrap();
        s.quarantine_all();
        assert_eq!(s.free_bytes(), 0);
        assert_eq!(s.quarantined_bytes(), FILE - 1024);
        assert_eq!(s.alloc(0, 10).unwrap(), Alloc::NeedTrunkFile);
        s.add_trunk_file(0, 2).unwrap();
        for _ in 0..20 {
            let b = slot(s.alloc(0, 2000).unwrap());
            assert_eq!(b.trunk_file_id, 2);
        }
        drop(s);
        let s = env.open();
        let q = s.quarantined();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].trunk_file_id, 1);
        // Freed space is usable: that file was really stored there.
        s.free(&a).unwrap();
        assert_eq!(slot(s.alloc(0, 1000).unwrap()), a);
        s.release_quarantine(&q[0]).unwrap();
        assert!(s.quarantined().is_empty());
        drop(s);
        let s = env.open();
        assert!(s.quarantined().is_empty());
        assert_eq!(s.quarantined_bytes(), 0);
        // File 2 has 65536 - 20 * 2024 bytes left; the released slot is bigger.
        assert_eq!(s.free_bytes(), u64::from(q[0].size) + 65536 - 20 * 2024);
    }

    #[test]
    fn stale_unconfirmed_freed_only_after_the_timeout() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        let a = slot(s.alloc(0, 1000).unwrap());
        let b = slot(s.alloc(0, 1000).unwrap());
        s.confirm(&b, true).unwrap();
        drop(s);
        let s = env.open();
        assert_eq!(s.unconfirmed(), vec![a]);
        assert_eq!(
            s.free_stale_unconfirmed(Duration::from_secs(3600)).unwrap(),
            0
        );
        assert_eq!(s.free_stale_unconfirmed(Duration::ZERO).unwrap(), 1);
        assert!(s.unconfirmed().is_empty());
        assert_eq!(s.free_bytes(), FILE - 1024);
        // A late confirm of the freed slot fails: the member must not keep it.
        assert_eq!(
            os_err(&s.confirm(&a, true).unwrap_err()),
            Some(Status::ENOENT)
        );
        drop(s);
        assert!(env.open().unconfirmed().is_empty());
    }

    #[test]
    fn apply_pushed_equals_server_state() {
        let server_env = Env::new(params(true, false));
        let server = server_env.open();
        let member_env = Env::new(params(true, false));
        let member = member_env.open();
        server.add_trunk_file(0, 1).unwrap();
        server.add_trunk_file(1, 2).unwrap();
        let mut held = Vec::new();
        for i in 0..30u32 {
            let a = slot(server.alloc((i % 2) as u8, 100 + i * 37).unwrap());
            server.confirm(&a, true).unwrap();
            held.push(a);
        }
        for a in held.iter().step_by(3) {
            server.free(a).unwrap();
        }
        let bytes = server_env.binlog();
        // Chunks that split lines anywhere.
        for chunk in bytes.chunks(7) {
            member.apply_pushed(chunk).unwrap();
        }
        assert_eq!(member.free_slots(), server.free_slots());
        assert_eq!(member.binlog_size(), server.binlog_size());
        assert_eq!(member.max_trunk_file_id(), 2);
        assert_eq!(member_env.binlog(), bytes);
        member.reset().unwrap();
        assert!(member.free_slots().is_empty());
        assert_eq!(member.binlog_size(), 0);
        member.apply_pushed(&bytes).unwrap();
        assert_eq!(member.free_slots(), server.free_slots());
        drop(member);
        assert_eq!(member_env.open().free_slots(), server.free_slots());
    }

    /// A trunk binlog and snapshot as the C original writes them: 8-column
    /// lines, an allocation as `D` of the whole free slot then `A` of the
    /// rest; the snapshot in the pre-5.01 six-column form.
    #[test]
    fn reads_the_originals_files() {
        let env = Env::new(params(true, false));
        let data = env.dir.path().join("base/data");
        fs::create_dir_all(data.join("trunk")).unwrap();
        let binlog = "1700000000 A 0 0 0 1 0 65536\n\
                      1700000001 D 0 0 0 1 0 65536\n\
                      1700000001 A 0 0 0 1 1024 64512\n\
                      1700000002 A 1 3 4 5 0 65536\n";
        fs::write(data.join("trunk/binlog"), binlog).unwrap();
        let s = env.open();
        let loc = |p, h, l, id, offset, size| TrunkLocation {
            store_path_index: p,
            sub_path_high: h,
            sub_path_low: l,
            trunk_file_id: id,
            offset,
            size,
        };
        assert_eq!(
            s.free_slots(),
            vec![
                (loc(0, 0, 0, 1, 1024, 64512), false),
                (loc(1, 3, 4, 5, 0, 65536), false)
            ]
        );
        assert_eq!(s.max_trunk_file_id(), 5);
        drop(s);
        // The snapshot covers the first three lines; its slot is the old form.
        let at = binlog.lines().take(3).map(|l| l.len() + 1).sum::<usize>();
        fs::write(
            data.join(TRUNK_DATA_FILE_NAME),
            format!("{at}\n0 0 0 1 1024 64512\n"),
        )
        .unwrap();
        fs::write(
            data.join("trunk/binlog"),
            binlog.replace("1700000000 A", "1700000000 X"),
        )
        .unwrap();
        let s = env.open();
        assert_eq!(s.free_slots().len(), 2);
        assert_eq!(s.free_bytes(), 64512 + 65536);
    }

    fn write_header(store: &Path, at: &TrunkLocation, file_type: u8) {
        let h = SlotHeader {
            file_type,
            alloc_size: at.size,
            file_size: at.size - SLOT_HEADER_LEN as u32,
            crc32: 1,
            mtime: 2,
            ext7: *b"0000txt",
        };
        let f = OpenOptions::new()
            .write(true)
            .open(store.join(at.trunk_file_relative_path()))
            .unwrap();
        f.write_all_at(&h.encode(), u64::from(at.offset)).unwrap();
    }

    /// A batch allocates and confirms as one call per upload would.
    #[test]
    fn a_batch_allocates_and_confirms_as_single_calls_do() {
        let (one, many) = (Env::new(params(true, false)), Env::new(params(true, false)));
        let (a, b) = (one.open(), many.open());
        for s in [&a, &b] {
            s.add_trunk_file(0, 7).unwrap();
        }
        // Fits, fits, too big, no trunk file in store path 1, no store path 9.
        let wants = [(0u8, 1000u32), (0, 3000), (0, 60 * 1024), (1, 500), (9, 10)];
        let status = |r: io::Result<Alloc>| r.map_err(|e| os_err(&e));
        let singles: Vec<_> = wants.iter().map(|&(i, n)| status(a.alloc(i, n))).collect();
        let batch: Vec<_> = b
            .alloc_batch(&wants)
            .unwrap()
            .into_iter()
            .map(status)
            .collect();
        assert_eq!(singles, batch);
        assert_eq!(singles[3], Ok(Alloc::NeedTrunkFile));
        assert_eq!(a.free_slots(), b.free_slots());
        assert_eq!(a.unconfirmed(), b.unconfirmed());
        let ops = |env: &Env| -> Vec<String> {
            String::from_utf8(env.binlog())
                .unwrap()
                .lines()
                .map(|l| l.split_once(' ').unwrap().1.to_string())
                .collect()
        };
        assert_eq!(ops(&one), ops(&many));

        let (x, y) = (slot(singles[0].unwrap()), slot(singles[1].unwrap()));
        let settled = [(x, true), (y, false), (x, true)];
        let status = |r: io::Result<()>| r.map_err(|e| os_err(&e));
        let singles: Vec<_> = settled
            .iter()
            .map(|(s, ok)| status(a.confirm(s, *ok)))
            .collect();
        let batch: Vec<_> = b.confirm_batch(&settled).into_iter().map(status).collect();
        assert_eq!(singles, batch);
        assert_eq!(batch, vec![Ok(()), Ok(()), Err(Some(Status::ENOENT))]);
        assert_eq!(a.free_slots(), b.free_slots());
        assert!(b.unconfirmed().is_empty());
        assert_eq!(ops(&one), ops(&many));
        // The side files replay alike: a restart sees the same state.
        drop((a, b));
        assert_eq!(state(&one.open()), state(&many.open()));
    }

    /// A file stored in a freshly allocated and confirmed slot; its name.
    fn store_file(
        s: &TrunkSpace,
        store: &Path,
        content: &[u8],
        ts: u32,
    ) -> fdfs_proto::fileid::RemoteName {
        use fdfs_proto::fileid::FileNameRecord;
        let at = slot(s.alloc(0, content.len() as u32).unwrap());
        s.confirm(&at, true).unwrap();
        let (mut w, _) =
            super::super::slot::SlotWrite::begin(store, at, content.len() as u32, FILE, None)
                .unwrap();
        w.write(content).unwrap();
        let header = w.upload_header(ts, *b"123.txt");
        w.finish(&header, false).unwrap();
        let record = FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: ts,
            size_field: fdfs_proto::trunk::trunk_size_field(header.file_size, 7),
            crc32: header.crc32,
        };
        at.remote_name(&record, "123.txt").unwrap()
    }

    /// Issue 15 point 4: two members delete one file at once, and both
    /// free its slot. The second free finds the tombstone marked freed,
    /// or, once the slot is handed out again, a live file.
    #[test]
    fn a_second_free_of_one_delete_is_refused_before_and_after_reuse() {
        use super::super::slot::{delete_slot, open_slot};
        let env = Env::new(params(false, false));
        let store = env.stores()[0].clone();
        let s = env.open();
        s.add_trunk_file(0, 7).unwrap();
        let name = store_file(&s, &store, b"deleted on two members", 1);
        let freed = delete_slot(&store, &name, true).unwrap();
        s.free_deleted(&freed, true).unwrap();
        let free_now = s.free_slots();
        for every_peer_deleted in [true, false] {
            let e = s.free_deleted(&freed, every_peer_deleted).unwrap_err();
            assert_eq!(os_err(&e), Some(Status::EEXIST));
        }
        assert_eq!(s.free_slots(), free_now, "a refused free changed the pool");

        let newer = store_file(&s, &store, b"the next file", 2);
        assert_eq!(
            TrunkLocation::from_remote(&newer),
            Some(freed),
            "not reused"
        );
        let e = s.free_deleted(&freed, true).unwrap_err();
        assert_eq!(os_err(&e), Some(Status::EBUSY));
        let other = store_file(&s, &store, b"yet another", 3);
        assert_ne!(TrunkLocation::from_remote(&other), Some(freed));
        let kept = open_slot(&store, &newer).unwrap().read_content().unwrap();
        assert_eq!(kept, b"the next file");
        // The newer file's own delete frees it once, and a restart keeps
        // the mark.
        delete_slot(&store, &newer, true).unwrap();
        s.free_deleted(&freed, true).unwrap();
        drop(s);
        let s = env.open();
        let e = s.free_deleted(&freed, true).unwrap_err();
        assert_eq!(os_err(&e), Some(Status::EEXIST));
    }

    /// Issue 15 point 4 across a failover (happyfish100/fastdfs#66): a
    /// member that was pushed the old trunk server's free of a slot refuses
    /// a second free of that delete once it serves, with and without
    /// merging, as the old server would have.
    #[test]
    fn a_member_refuses_a_second_free_the_old_trunk_server_did_once() {
        use super::super::slot::{delete_slot, SlotWrite};
        for merge in [false, true] {
            let server_env = Env::new(params(merge, false));
            let server_store = server_env.stores()[0].clone();
            let server = server_env.open();
            server.add_trunk_file(0, 7).unwrap();
            let _before = store_file(&server, &server_store, b"a neighbour", 1);
            let name = store_file(&server, &server_store, b"deleted on two members", 1);
            let at = TrunkLocation::from_remote(&name).unwrap();
            // The member's copy of the file, then both delete it.
            let (member_env, member) = member_of(&server_env);
            let member_store = member_env.stores()[0].clone();
            let expect = SlotHeader::expected_for(&name, SLOT_TYPE_REGULAR).unwrap();
            let (mut w, _) =
                SlotWrite::begin(&member_store, at, expect.file_size, FILE, Some(&expect)).unwrap();
            w.write(b"deleted on two members").unwrap();
            w.finish(&expect, false).unwrap();
            for store in [&server_store, &member_store] {
                delete_slot(store, &name, true).unwrap();
            }
            let pushed = server_env.binlog().len();
            server.free_deleted(&at, true).unwrap();
            member.apply_pushed(&server_env.binlog()[pushed..]).unwrap();
            assert_eq!(
                super::super::slot::check_before_free(&member_store, &at).unwrap(),
                FreeCheck::Freed,
                "merge {merge}: the member's tombstone is not marked freed"
            );
            let e = member.free_deleted(&at, true).unwrap_err();
            assert_eq!(os_err(&e), Some(Status::EEXIST), "merge {merge}");
        }
    }

    /// Where slots are too small for a tombstone, frees go on unchecked.
    #[test]
    fn without_tombstones_a_free_is_not_checked_against_the_disk() {
        let mut p = params(false, false);
        p.slot_min_size_bytes = 32;
        let env = Env::new(p);
        let store = env.stores()[0].clone();
        let s = env.open();
        s.add_trunk_file(0, 7).unwrap();
        let name = store_file(&s, &store, b"live", 1);
        let at = TrunkLocation::from_remote(&name).unwrap();
        s.free_deleted(&at, true).unwrap();
        let e = s.free_deleted(&at, true).unwrap_err();
        assert_eq!(os_err(&e), Some(Status::EEXIST));
    }

    #[test]
    fn scrub_compares_headers_with_the_pool() {
        let env = Env::new(params(false, false));
        let store = env.stores()[0].clone();
        let s = env.open();
        let t = s.add_trunk_file(0, 1).unwrap();
        let a = slot(s.alloc(0, 1000).unwrap());
        let b = slot(s.alloc(0, 2000).unwrap());
        // Unconfirmed slots are skipped: their writer may be busy.
        assert!(s.scrub_local().unwrap().is_clean());
        write_header(&store, &a, SLOT_TYPE_REGULAR);
        write_header(&store, &b, SLOT_TYPE_LINK);
        s.confirm(&a, true).unwrap();
        s.confirm(&b, true).unwrap();
        let r = s.scrub_local().unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.trunk_files, 1);
        // A file header inside free space (a slot some other server handed out).
        let rogue = TrunkLocation {
            offset: b.offset + b.size,
            size: 512,
            ..t
        };
        write_header(&store, &rogue, SLOT_TYPE_REGULAR);
        let r = s.scrub_local().unwrap();
        assert_eq!(r.free_with_header.len(), 1);
        assert_eq!(r.free_with_header[0].1, rogue);
        write_header(&store, &rogue, SLOT_TYPE_FREE);
        // An allocated slot whose header says free (a lost delete).
        write_header(&store, &a, SLOT_TYPE_FREE);
        let r = s.scrub_local().unwrap();
        assert!(r.free_with_header.is_empty());
        assert_eq!(r.chain_mismatches.len(), 1);
        assert_eq!(r.chain_mismatches[0].at, a);
        // Quarantined slots proven free here.
        s.quarantine_all();
        let r = s.scrub_local().unwrap();
        assert_eq!(r.quarantine_clean, s.quarantined());
        assert!(s.scrub_range(&s.quarantined()[0]).unwrap().is_empty());
        write_header(&store, &rogue, SLOT_TYPE_REGULAR);
        assert!(s.scrub_local().unwrap().quarantine_clean.is_empty());
        assert_eq!(s.scrub_range(&s.quarantined()[0]).unwrap(), vec![rogue]);
        // A trunk file this disk lacks.
        s.add_trunk_file(1, 2).unwrap();
        let (h, l) = random_sub_dirs(2, 256);
        fs::remove_file(env.stores()[1].join(trunk_file_relative_path(h, l, 2))).unwrap();
        assert_eq!(s.scrub_local().unwrap().missing_files.len(), 1);
    }
    #[test]
    fn space_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TrunkSpace>();
    }

    /// The original's allocation line orders: 5.x/6.x write `D` whole, `A`
    /// rest, `A` taken (held until confirmed), `D` taken at confirm; older
    /// versions wrote `A` rest before `D` whole. Both replay to the rest.
    #[test]
    fn replays_the_originals_allocation_orders() {
        for binlog in [
            "1 A 0 0 0 1 0 65536\n2 D 0 0 0 1 0 65536\n2 A 0 0 0 1 1024 64512\n2 A 0 0 0 1 0 1024\n3 D 0 0 0 1 0 1024\n",
            "1 A 0 0 0 1 0 65536\n2 A 0 0 0 1 1024 64512\n2 D 0 0 0 1 0 65536\n2 A 0 0 0 1 0 1024\n3 D 0 0 0 1 0 1024\n",
        ] {
            let env = Env::new(params(true, false));
            let data = env.dir.path().join("base/data/trunk");
            fs::create_dir_all(&data).unwrap();
            fs::write(data.join("binlog"), binlog).unwrap();
            let s = env.open();
            let rest = TrunkLocation {
                store_path_index: 0,
                sub_path_high: 0,
                sub_path_low: 0,
                trunk_file_id: 1,
                offset: 1024,
                size: 64512,
            };
            assert_eq!(s.free_slots(), vec![(rest, false)], "{binlog}");
            // A D line naming part of a free slot is cut out of it.
            drop(s);
            let mut f = OpenOptions::new().append(true).open(data.join("binlog")).unwrap();
            f.write_all(b"4 D 0 0 0 1 2048 1024\n").unwrap();
            drop(f);
            assert_eq!(env.open().free_bytes(), 64512 - 1024);
        }
    }

    #[test]
    fn member_turned_server_drops_a_half_pushed_line() {
        let env = Env::new(params(true, false));
        let s = env.open();
        let (h, l) = random_sub_dirs(1, 256);
        let line = format!("1 A 0 {h} {l} 1 0 65536\n");
        s.apply_pushed(line.as_bytes()).unwrap();
        s.apply_pushed(b"2 D 0 0").unwrap();
        let p = env.stores()[0].join(trunk_file_relative_path(h, l, 1));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        File::create(&p).unwrap().set_len(FILE).unwrap();
        let a = slot(s.alloc(0, 100).unwrap());
        let before = state(&s);
        let bin = env.binlog();
        let (_, refused, consumed) = parse_lines(&bin);
        assert_eq!((refused, consumed), (0, bin.len()));
        drop(s);
        assert_eq!(state(&env.open()), before);
        assert_eq!(a.offset, 0);
    }

    #[test]
    fn unconfirmed_side_file_stays_small() {
        let env = Env::new(params(true, false));
        let s = env.open();
        s.add_trunk_file(0, 1).unwrap();
        let held = slot(s.alloc(0, 100).unwrap());
        for _ in 0..(UNCONFIRMED_COMPACT_SLACK_LINES + 100) {
            let a = slot(s.alloc(0, 100).unwrap());
            s.confirm(&a, false).unwrap();
        }
        let path = env.dir.path().join("base/data/trunk/unconfirmed");
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= UNCONFIRMED_COMPACT_SLACK_LINES + 4, "{lines}");
        drop(s);
        assert_eq!(env.open().unconfirmed(), vec![held]);
    }
    #[derive(Debug, Clone)]
    enum SpaceOp {
        Alloc(u8, u32),
        Confirm(usize, bool),
        Free(usize),
        Snapshot,
        Compress,
        Reopen,
        Quarantine,
        Stale,
    }

    fn space_op() -> impl proptest::strategy::Strategy<Value = SpaceOp> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (0u8..2, 0u32..12_000).prop_map(|(p, n)| SpaceOp::Alloc(p, n)),
            4 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| SpaceOp::Confirm(i, ok)),
            4 => any::<usize>().prop_map(SpaceOp::Free),
            1 => Just(SpaceOp::Snapshot),
            1 => Just(SpaceOp::Compress),
            1 => Just(SpaceOp::Reopen),
            1 => Just(SpaceOp::Quarantine),
            1 => Just(SpaceOp::Stale),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Random traffic: slots handed out never overlap one held, a
        /// restart reproduces the state, and a member fed the binlog has
        /// the server's pool.
        #[test]
        fn restart_and_members_agree(ops in proptest::collection::vec(space_op(), 1..80), merge in proptest::prelude::any::<bool>(), unused in proptest::prelude::any::<bool>()) {
            let env = Env::new(params(merge, unused));
            let mut s = env.open();
            let mut next_id = 1u32;
            let mut unconfirmed: Vec<TrunkLocation> = Vec::new();
            let mut held: Vec<TrunkLocation> = Vec::new();
            for op in ops {
                match op {
                    SpaceOp::Alloc(p, n) => {
                        let a = match s.alloc(p, n).unwrap() {
                            Alloc::Slot(a) => a,
                            Alloc::NeedTrunkFile => {
                                next_id = next_id.max(s.max_trunk_file_id() + 1);
                                s.add_trunk_file(p, next_id).unwrap();
                                next_id += 1;
                                slot(s.alloc(p, n).unwrap())
                            }
                        };
                        for h in held.iter().chain(&unconfirmed) {
                            let apart = h.store_path_index != a.store_path_index
                                || h.trunk_file_id != a.trunk_file_id
                                || slot_end(h) <= u64::from(a.offset)
                                || slot_end(&a) <= u64::from(h.offset);
                            proptest::prop_assert!(apart, "{:?} overlaps {:?}", a, h);
                        }
                        unconfirmed.push(a);
                    }
                    SpaceOp::Confirm(i, ok) if !unconfirmed.is_empty() => {
                        let a = unconfirmed.swap_remove(i % unconfirmed.len());
                        s.confirm(&a, ok).unwrap();
                        if ok {
                            held.push(a);
                        }
                    }
                    SpaceOp::Free(i) if !held.is_empty() => {
                        let a = held.swap_remove(i % held.len());
                        s.free(&a).unwrap();
                    }
                    SpaceOp::Snapshot => s.save_snapshot().unwrap(),
                    SpaceOp::Compress => {
                        let before = (s.free_slots(), s.max_trunk_file_id(), s.unconfirmed());
                        s.compress().unwrap();
                        proptest::prop_assert_eq!(before, (s.free_slots(), s.max_trunk_file_id(), s.unconfirmed()));
                    }
                    SpaceOp::Reopen => {
                        let before = (s.free_slots(), s.binlog_size(), s.max_trunk_file_id());
                        let mut outstanding = s.unconfirmed();
                        drop(s);
                        s = env.open();
                        proptest::prop_assert_eq!(before, (s.free_slots(), s.binlog_size(), s.max_trunk_file_id()));
                        outstanding.sort();
                        proptest::prop_assert_eq!(outstanding, s.unconfirmed());
                    }
                    SpaceOp::Quarantine => s.quarantine_all(),
                    SpaceOp::Stale => {
                        let n = s.free_stale_unconfirmed(Duration::ZERO).unwrap();
                        proptest::prop_assert_eq!(n, unconfirmed.len());
                        unconfirmed.clear();
                    }
                    SpaceOp::Confirm(..) | SpaceOp::Free(_) => {}
                }
            }
            let (_member_env, member) = member_of(&env);
            proptest::prop_assert_eq!(member.free_slots(), unflagged(&s));
        }
    }
}
