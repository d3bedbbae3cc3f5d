//! The sending side of replication (§5.2–§5.5): one long-lived worker per
//! peer of our group reads our binlog from the position in its mark file
//! (`data/sync/<peer ip>_<our port>.mark`, `<peer id>.mark` with storage
//! ids) and pushes each record with the
//! matching SYNC_* command. A worker started for a new member that the
//! tracker made us the source of first copies our whole history (full
//! sync), reporting the member SYNCING and then OFFLINE so it can turn
//! ACTIVE.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::{ClientError, Conn};
use fdfs_proto::stat::{storage_status, StorageBrief};
use fdfs_proto::storage_msg::FileInfoResp;
use fdfs_proto::sync_msg::{SyncDeleteReq, SyncFileReq, SyncPairReq, SyncRangeReq};
use fdfs_proto::tracker_msg::{put_group, GroupFileReq, SyncSource};
use fdfs_proto::wire::put_fixed;
use fdfs_proto::{Status, StorageCmd, TrackerCmd};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::binlog::{parse_line, Record};
use crate::state::{lock, Storage};

/// Pause after a failed connection or record before trying again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest binlog line the reader takes in: our longest record (a rename,
/// two names of at most 152 bytes) is far shorter, so a longer line is
/// garbage and is skipped whole without being held in memory.
const MAX_BINLOG_LINE_BYTES: usize = 1024;
/// Binlog lines read per trip to the blocking pool.
const LINES_PER_READ: usize = 256;

/// Replication progress towards one peer, in the original's mark format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    pub binlog_index: u32,
    pub binlog_offset: u64,
    pub need_sync_old: bool,
    pub sync_old_done: bool,
    pub until_timestamp: i64,
    pub scan_row_count: u64,
    pub sync_row_count: u64,
}

impl Mark {
    pub fn to_text(&self) -> String {
        format!(
            "binlog_index={}\nbinlog_offset={}\nneed_sync_old={}\nsync_old_done={}\nuntil_timestamp={}\nscan_row_count={}\nsync_row_count={}\n",
            self.binlog_index,
            self.binlog_offset,
            u8::from(self.need_sync_old),
            u8::from(self.sync_old_done),
            self.until_timestamp,
            self.scan_row_count,
            self.sync_row_count
        )
    }

    pub fn parse(text: &str) -> Option<Mark> {
        let map: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let num = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok());
        Some(Mark {
            binlog_index: num("binlog_index")? as u32,
            binlog_offset: num("binlog_offset")? as u64,
            need_sync_old: num("need_sync_old")? != 0,
            sync_old_done: num("sync_old_done")? != 0,
            until_timestamp: num("until_timestamp")?,
            scan_row_count: num("scan_row_count")? as u64,
            sync_row_count: num("sync_row_count")? as u64,
        })
    }
}

/// What we know about the other members of our group, from the tracker's
/// group lists, and the workers already running.
#[derive(Default)]
pub struct Peers {
    pub members: BTreeMap<String, StorageBrief>,
    /// Our own status in the last group list a tracker sent (§4.2: the
    /// status byte of later JOINs).
    pub self_status: Option<u8>,
    runner: Option<(TaskTracker, CancellationToken)>,
    /// Running workers, each with a token that stops only that worker.
    workers: BTreeMap<String, CancellationToken>,
}

/// Called once at start-up: where workers run and what stops them.
pub fn enable(storage: &Arc<Storage>, tasks: &TaskTracker, shutdown: CancellationToken) {
    lock(&storage.peers).runner = Some((tasks.clone(), shutdown));
}

/// Adopts a group list from the tracker and starts a worker for every peer
/// that has none yet.
pub fn update_members(storage: &Arc<Storage>, members: Vec<StorageBrief>) {
    let self_id = storage.self_id();
    let mut peers = lock(&storage.peers);
    for m in members {
        if m.id == self_id {
            peers.self_status = Some(m.status);
            continue;
        }
        let id = m.id.clone();
        peers.members.insert(id.clone(), m);
        if peers.workers.contains_key(&id) {
            continue;
        }
        if let Some((tasks, shutdown)) = peers.runner.clone() {
            let token = shutdown.child_token();
            peers.workers.insert(id.clone(), token.clone());
            tasks.spawn(worker(storage.clone(), id, shutdown, token));
        }
    }
}

/// A peer was deleted from the group (tracker changelog): stop its worker
/// and forget its mark, so that if it joins again as a new member it gets a
/// fresh full sync.
pub fn forget_peer(storage: &Arc<Storage>, id: &str) {
    let mut peers = lock(&storage.peers);
    if let Some(token) = peers.workers.remove(id) {
        token.cancel();
    }
    if let Some(p) = peers.members.remove(id) {
        let _ = std::fs::remove_file(mark_path(storage, &p));
        tracing::info!(peer = %id, "peer deleted from the group, mark removed");
    }
}

/// A peer came back under a new address (REPORT_IP_CHANGED): its mark file
/// moves to the new name, so the worker the next group list starts for the
/// new address resumes where the old one stopped.
pub fn rename_peer(storage: &Arc<Storage>, old: &str, new: &str) {
    let mut peers = lock(&storage.peers);
    let dir = storage.data_dir().join("sync");
    let from = dir.join(format!("{old}_{}.mark", storage.port));
    let to = dir.join(format!("{new}_{}.mark", storage.port));
    if from.exists() && !to.exists() {
        if let Err(e) = std::fs::rename(&from, &to) {
            tracing::warn!(error = %e, %old, %new, "cannot rename mark file");
        }
    }
    if let Some(token) = peers.workers.remove(old) {
        token.cancel();
    }
    peers.members.remove(old);
    tracing::info!(%old, %new, "peer changed address");
}

/// Applies tracker changelog lines `<time> <group> <id> <status> <new id>`.
pub fn apply_changelog(storage: &Arc<Storage>, text: &str) {
    for line in text.lines() {
        let cols: Vec<&str> = line.split(' ').collect();
        if cols.len() < 4 || cols[1] != storage.group {
            continue;
        }
        match cols[3].parse::<u8>() {
            Ok(storage_status::DELETED) => forget_peer(storage, cols[2]),
            Ok(storage_status::IP_CHANGED) => {
                if let Some(new) = cols.get(4).filter(|n| !n.is_empty()) {
                    rename_peer(storage, cols[2], new);
                }
            }
            _ => {}
        }
    }
}

fn peer(storage: &Storage, id: &str) -> Option<StorageBrief> {
    lock(&storage.peers).members.get(id).cloned()
}

/// `data/sync/<peer id>.mark` in id mode, else `<peer ip>_<our port>.mark` (§5.2).
fn mark_path(storage: &Storage, peer: &StorageBrief) -> PathBuf {
    let name = if storage.params().use_storage_id {
        format!("{}.mark", peer.id)
    } else {
        format!("{}_{}.mark", peer.ip_addr, storage.port)
    };
    storage.data_dir().join("sync").join(name)
}

/// Writes the mark file durably (two fsyncs) on the blocking pool.
async fn save_mark(path: &Path, mark: &Mark) {
    let (path, text) = (path.to_path_buf(), mark.to_text());
    let written = tokio::task::spawn_blocking(move || {
        crate::state::write_atomic(&path, text.as_bytes()).map_err(|e| (e, path))
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err((e, path))) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot write mark file")
        }
        Err(e) => tracing::warn!(error = %e, "mark file task failed"),
    }
}

/// Logs and counts a binlog record that cannot be sent, so that the worker
/// moves on: one bad record must never stall a peer's replication. The
/// line is escaped, so it cannot forge log lines either.
fn skip_record(storage: &Storage, peer_id: &str, line: &str, why: &str) {
    let skipped_total = storage.count_skipped_sync_record();
    tracing::warn!(
        peer = %peer_id,
        line = %fdfs_proto::fileid::escape_for_log(line.strip_suffix('\n').unwrap_or(line)),
        why,
        skipped_total,
        "skipping binlog record"
    );
}

/// A peer's answer that no retry can change: the record is malformed for
/// it (EINVAL; it also closes the connection, §1.1).
fn refused_for_good(e: &ClientError) -> bool {
    status_of(e) == Some(Status::EINVAL)
}

async fn tracker_call(
    storage: &Storage,
    cmd: TrackerCmd,
    body: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let mut last = ClientError::Invalid("no tracker configured".into());
    for t in &storage.conf.tracker_servers {
        match Conn::connect_from(
            &t.to_string(),
            storage.client_bind_ip(),
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
        .await
        {
            Ok(mut c) => {
                let r = c.call(cmd.into(), body).await;
                c.quit().await;
                match r {
                    Ok(b) => return Ok(b),
                    Err(ClientError::Status(s)) => return Err(ClientError::Status(s)),
                    Err(e) => last = e,
                }
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// SYNC_SRC_REQ (86): are we the designated source of this peer's full
/// sync, and from when on does it need our records?
async fn initial_mark(storage: &Storage, peer_id: &str) -> Result<Mark, ClientError> {
    let mut body = BytesMut::new();
    put_group(&mut body, &storage.group);
    put_fixed(
        &mut body,
        peer_id.as_bytes(),
        fdfs_proto::STORAGE_ID_MAX_SIZE,
    );
    let answer = tracker_call(storage, TrackerCmd::StorageSyncSrcReq, &body).await?;
    let src = if answer.is_empty() {
        SyncSource::default()
    } else {
        SyncSource::decode(&answer)?
    };
    Ok(Mark {
        need_sync_old: !src.src_id.is_empty() && src.src_id == storage.self_id(),
        until_timestamp: src.until_timestamp,
        ..Mark::default()
    })
}

/// REPORT_STATUS (76) of `peer` to every tracker (best effort).
async fn report_status(storage: &Storage, peer: &StorageBrief, status: u8) {
    let mut body = BytesMut::new();
    put_group(&mut body, &storage.group);
    StorageBrief {
        status,
        port: 0,
        id: peer.id.clone(),
        ip_addr: peer.ip_addr.clone(),
    }
    .encode(&mut body);
    for t in &storage.conf.tracker_servers {
        if let Ok(mut c) = Conn::connect_from(
            &t.to_string(),
            storage.client_bind_ip(),
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
        .await
        {
            if let Err(e) = c.call(TrackerCmd::StorageReportStatus.into(), &body).await {
                tracing::warn!(error = %e, peer = %peer.id, "REPORT_STATUS failed");
            }
            c.quit().await;
        }
    }
}

/// Sequential reader over `binlog.NNN` files from a mark position. It is
/// driven from the blocking pool ([`read_batch`]).
struct Cursor {
    dir: PathBuf,
    index: u32,
    /// Start of the next line to read in binlog `index`.
    offset: u64,
    reader: Option<BufReader<std::fs::File>>,
}

/// One line read from a binlog.
struct Line {
    /// The line (lossy UTF-8), cut at [`MAX_BINLOG_LINE_BYTES`].
    text: String,
    /// False for a line too long, or cut off at the end of a finished
    /// binlog (a crash mid-write): garbage either way.
    whole: bool,
    /// Binlog of the line, and where the line after it starts: the mark
    /// position once the line is dealt with.
    index: u32,
    next_offset: u64,
}

impl Line {
    fn record(&self) -> Option<Record> {
        self.whole.then(|| parse_line(&self.text)).flatten()
    }
}

/// Reads through the next `\n` (or to the end of the data), keeping at most
/// `max` bytes. Returns the kept bytes, the bytes consumed and whether a
/// `\n` ended the line.
fn read_bounded_line(
    reader: &mut impl BufRead,
    max: usize,
) -> std::io::Result<(Vec<u8>, u64, bool)> {
    let mut kept = Vec::new();
    let mut consumed = 0u64;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((kept, consumed, false));
        }
        let (take, ended) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take);
        consumed += take as u64;
        if ended {
            return Ok((kept, consumed, true));
        }
    }
}

impl Cursor {
    fn open(&mut self) -> std::io::Result<()> {
        let mut f = std::fs::File::open(self.dir.join(format!("binlog.{:03}", self.index)))?;
        f.seek(SeekFrom::Start(self.offset))?;
        self.reader = Some(BufReader::new(f));
        Ok(())
    }

    /// Up to `max` lines from the read position; empty at the end for now.
    fn read_lines(&mut self, current_write_index: u32, max: usize) -> std::io::Result<Vec<Line>> {
        let mut out = Vec::new();
        while out.len() < max {
            if self.reader.is_none() {
                match self.open() {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e),
                }
            }
            let Some(reader) = self.reader.as_mut() else {
                break;
            };
            let (bytes, consumed, ended) = read_bounded_line(reader, MAX_BINLOG_LINE_BYTES)?;
            // Nothing is written to a binlog once a newer one exists, so an
            // unterminated last line there is torn for good.
            let finished = self.index < current_write_index;
            if consumed > 0 && (ended || finished) {
                self.offset += consumed;
                out.push(Line {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    whole: ended && consumed as usize <= MAX_BINLOG_LINE_BYTES,
                    index: self.index,
                    next_offset: self.offset,
                });
                continue;
            }
            // The end of the file, or a line still being written: come back
            // later from the same offset.
            self.reader = None;
            if consumed == 0 && finished {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            break;
        }
        Ok(out)
    }
}

/// [`Cursor::read_lines`] on the blocking pool.
async fn read_batch(
    mut cursor: Cursor,
    current_write_index: u32,
) -> Result<(Cursor, Vec<Line>), ClientError> {
    tokio::task::spawn_blocking(move || {
        let lines = cursor.read_lines(current_write_index, LINES_PER_READ);
        lines.map(|l| (cursor, l))
    })
    .await
    .map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))?
    .map_err(ClientError::Io)
}

/// Whether a record goes to this peer (§5.3).
fn should_send(rec: &Record, mark: &Mark) -> bool {
    if rec.op.is_ascii_uppercase() {
        return rec.op != 'L';
    }
    matches!(rec.op, 'c' | 'd' | 'u' | 'r')
        && mark.need_sync_old
        && !mark.sync_old_done
        && rec.timestamp <= mark.until_timestamp
}

async fn worker(
    storage: Arc<Storage>,
    peer_id: String,
    global: CancellationToken,
    shutdown: CancellationToken,
) {
    let Some(first) = peer(&storage, &peer_id) else {
        return;
    };
    let path = mark_path(&storage, &first);
    let mut mark = match tokio::fs::read_to_string(&path)
        .await
        .ok()
        .and_then(|t| Mark::parse(&t))
    {
        Some(m) => m,
        None => loop {
            match initial_mark(&storage, &peer_id).await {
                Ok(m) => break m,
                Err(e) => {
                    tracing::warn!(peer = %peer_id, error = %e, "SYNC_SRC_REQ failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_DELAY) => {}
                    }
                }
            }
        },
    };
    save_mark(&path, &mark).await;
    tracing::info!(peer = %peer_id, need_sync_old = mark.need_sync_old, until = mark.until_timestamp, "sync worker started");
    let mut reported_syncing = false;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = run_session(&storage, &peer_id, &path, &mut mark, &mut reported_syncing, &shutdown) => r,
        };
        match result {
            Ok(()) => break,
            Err(e) => tracing::debug!(peer = %peer_id, error = %e, "sync session ended"),
        }
        save_mark(&path, &mark).await;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }
    if shutdown.is_cancelled() && !global.is_cancelled() {
        // Stopped because the peer was deleted: its mark is gone for good.
        let _ = tokio::fs::remove_file(&path).await;
        return;
    }
    save_mark(&path, &mark).await;
}

/// One connection to the peer: push records until an error or shutdown.
async fn run_session(
    storage: &Arc<Storage>,
    peer_id: &str,
    mark_file: &Path,
    mark: &mut Mark,
    reported_syncing: &mut bool,
    shutdown: &CancellationToken,
) -> Result<(), ClientError> {
    let full_sync = mark.need_sync_old && !mark.sync_old_done;
    // The designated source copies while the peer waits for its data; the
    // others wait until it is ACTIVE (§5.5).
    let target = loop {
        match peer(storage, peer_id) {
            Some(p)
                if matches!(
                    p.status,
                    storage_status::DELETED | storage_status::IP_CHANGED | storage_status::NONE
                ) =>
            {
                return Ok(());
            }
            Some(p)
                if p.status == storage_status::ACTIVE
                    || (full_sync
                        && matches!(
                            p.status,
                            storage_status::WAIT_SYNC | storage_status::SYNCING
                        )) =>
            {
                break p;
            }
            _ => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    let addr = format!("{}:{}", target.ip_addr, target.port);
    let mut conn = Conn::connect_from(
        &addr,
        storage.client_bind_ip(),
        Duration::from_secs(5),
        // A peer cut off by the network must not hold the worker for long:
        // after network_timeout the worker reconnects and resumes.
        Duration::from_secs(storage.conf.network_timeout_secs.clamp(5, 60)),
    )
    .await?;
    let mut id = BytesMut::new();
    put_fixed(
        &mut id,
        storage.self_id().as_bytes(),
        fdfs_proto::STORAGE_ID_MAX_SIZE,
    );
    conn.call(StorageCmd::ReportServerId.into(), &id).await?;
    if full_sync && !*reported_syncing {
        report_status(storage, &target, storage_status::SYNCING).await;
        *reported_syncing = true;
    }

    let mut cursor = Cursor {
        dir: storage.data_dir().join("sync"),
        index: mark.binlog_index,
        offset: mark.binlog_offset,
        reader: None,
    };
    let wait = Duration::from_millis(storage.conf.sync_wait_msec.clamp(10, 1000));
    let idle_ping = Duration::from_secs(storage.conf.heart_beat_interval_secs.max(1));
    let mark_every = u64::from(storage.conf.write_mark_file_freq.max(1));
    let mut since_mark = 0u64;
    let mut last_traffic = Instant::now();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let current = storage.binlog.current_index();
        let lines;
        (cursor, lines) = read_batch(cursor, current).await?;
        if lines.is_empty() {
            // Caught up with our binlog.
            mark.binlog_index = cursor.index;
            mark.binlog_offset = cursor.offset;
            if mark.need_sync_old && !mark.sync_old_done {
                mark.sync_old_done = true;
                save_mark(mark_file, mark).await;
                report_status(storage, &target, storage_status::OFFLINE).await;
                tracing::info!(peer = %peer_id, "full sync done");
            }
            if since_mark > 0 {
                save_mark(mark_file, mark).await;
                since_mark = 0;
            }
            if last_traffic.elapsed() >= idle_ping {
                conn.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await?;
                last_traffic = Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        for line in lines {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            mark.scan_row_count += 1;
            match line.record() {
                Some(rec) => {
                    let skip_old = !mark.need_sync_old
                        && mark.until_timestamp > 0
                        && rec.timestamp < mark.until_timestamp;
                    if !skip_old && should_send(&rec, mark) {
                        match send_record(storage, &mut conn, &rec).await {
                            Ok(()) => {
                                mark.sync_row_count += 1;
                                last_traffic = Instant::now();
                            }
                            Err(e) if refused_for_good(&e) => {
                                skip_record(storage, peer_id, &line.text, &e.to_string());
                                mark.binlog_index = line.index;
                                mark.binlog_offset = line.next_offset;
                                save_mark(mark_file, mark).await;
                                // The peer closed the connection after its
                                // EINVAL: go on with a new one.
                                return Err(e);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                None if line.whole && line.text.trim().is_empty() => {}
                None => skip_record(storage, peer_id, &line.text, "unreadable binlog line"),
            }
            mark.binlog_index = line.index;
            mark.binlog_offset = line.next_offset;
            since_mark += 1;
            if since_mark >= mark_every {
                save_mark(mark_file, mark).await;
                since_mark = 0;
            }
        }
    }
}

fn local_path(storage: &Storage, remote: &str) -> Option<PathBuf> {
    crate::ops::resolve(storage, remote).ok().map(|(_, p)| p)
}

fn status_of(e: &ClientError) -> Option<Status> {
    match e {
        ClientError::Status(s) => Some(*s),
        _ => None,
    }
}

/// Sends a whole local file with SYNC_CREATE_FILE (16) or
/// SYNC_UPDATE_FILE (18). Content is the file as it is now.
async fn send_file(
    storage: &Storage,
    conn: &mut Conn,
    cmd: StorageCmd,
    remote: &str,
    timestamp: i64,
) -> Result<(), ClientError> {
    let Some(path) = local_path(storage, remote) else {
        return Ok(());
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        // Gone since: a later record deletes it anyway.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ClientError::Io(e)),
    };
    let meta = file.metadata().await.map_err(ClientError::Io)?;
    if !meta.is_file() {
        // Not a file we store (a directory in its place): nothing to send.
        return Ok(());
    }
    let size = meta.len();
    let mut head = BytesMut::new();
    SyncFileReq {
        remote: remote.to_string(),
        file_size: size,
        timestamp: timestamp as i32,
        group: storage.group.clone(),
    }
    .encode_head(&mut head);
    conn.send_head(cmd.into(), 0, &head, size).await?;
    conn.send_from(&mut file, size).await?;
    let r = conn.recv_ok_discarding_body().await;
    storage.bump(|st| {
        st.total_sync_out_bytes += size as i64;
        if r.is_ok() {
            st.success_sync_out_bytes += size as i64;
        }
    });
    r
}

async fn remote_size(storage: &Storage, conn: &mut Conn, remote: &str) -> Result<i64, ClientError> {
    let mut b = BytesMut::new();
    GroupFileReq {
        group: storage.group.clone(),
        remote: remote.to_string(),
    }
    .encode(&mut b);
    let body = conn
        .call_with_status(StorageCmd::QueryFileInfo.into(), 1, &b)
        .await?;
    Ok(FileInfoResp::decode(&body)?.file_size)
}

async fn send_record(storage: &Storage, conn: &mut Conn, rec: &Record) -> Result<(), ClientError> {
    let ts = rec.timestamp;
    match rec.op {
        'C' | 'c' | 'r' => {
            let name = &rec.filename;
            match send_file(storage, conn, StorageCmd::SyncCreateFile, name, ts).await {
                Err(e) if status_of(&e) == Some(Status::EEXIST) => {
                    // The peer has a file of the same size or a different
                    // one; make sure it ends up with ours.
                    let local = match local_path(storage, name) {
                        Some(p) => tokio::fs::metadata(p).await.ok().map(|m| m.len() as i64),
                        None => None,
                    };
                    let theirs = remote_size(storage, conn, name).await.ok();
                    if local.is_some() && local != theirs {
                        send_file(storage, conn, StorageCmd::SyncUpdateFile, name, ts).await?;
                    }
                    Ok(())
                }
                other => other,
            }
        }
        'U' | 'u' => send_file(storage, conn, StorageCmd::SyncUpdateFile, &rec.filename, ts).await,
        'D' | 'd' => {
            if let Some(p) = local_path(storage, &rec.filename) {
                if tokio::fs::try_exists(p).await.unwrap_or(false) {
                    return Ok(());
                }
            }
            let mut b = BytesMut::new();
            SyncDeleteReq {
                timestamp: ts as i32,
                group: storage.group.clone(),
                remote: rec.filename.clone(),
            }
            .encode(&mut b);
            match conn.call(StorageCmd::SyncDeleteFile.into(), &b).await {
                Err(e) if status_of(&e) == Some(Status::ENOENT) => Ok(()),
                other => other.map(|_| ()),
            }
        }
        'A' | 'M' => {
            let mut parts = rec.extra.split(' ');
            let (Some(Ok(offset)), Some(Ok(length))) = (
                parts.next().map(str::parse::<u64>),
                parts.next().map(str::parse::<u64>),
            ) else {
                return Ok(());
            };
            let Some(path) = local_path(storage, &rec.filename) else {
                return Ok(());
            };
            let Ok(mut file) = tokio::fs::File::open(&path).await else {
                return Ok(());
            };
            let size = file.metadata().await.map_err(ClientError::Io)?.len();
            if offset.checked_add(length).is_none_or(|end| size < end) {
                // Truncated since; a later record carries the result.
                return Ok(());
            }
            use tokio::io::AsyncSeekExt;
            file.seek(SeekFrom::Start(offset))
                .await
                .map_err(ClientError::Io)?;
            let cmd = if rec.op == 'A' {
                StorageCmd::SyncAppendFile
            } else {
                StorageCmd::SyncModifyFile
            };
            let mut head = BytesMut::new();
            SyncRangeReq {
                remote: rec.filename.clone(),
                a: offset,
                b: length,
                timestamp: ts as i32,
                group: storage.group.clone(),
            }
            .encode_head(&mut head);
            conn.send_head(cmd.into(), 0, &head, length).await?;
            conn.send_from(&mut file, length).await?;
            match conn.recv_ok_discarding_body().await {
                Err(e) if status_of(&e) == Some(Status::EEXIST) => Ok(()),
                // The replica differs: send the whole file instead.
                Err(e) if status_of(&e) == Some(Status::ENOENT) => {
                    send_file(storage, conn, StorageCmd::SyncUpdateFile, &rec.filename, ts).await
                }
                other => other,
            }
        }
        'T' => {
            let mut parts = rec.extra.split(' ');
            let (Some(Ok(old)), Some(Ok(new))) = (
                parts.next().map(str::parse::<u64>),
                parts.next().map(str::parse::<u64>),
            ) else {
                return Ok(());
            };
            let mut b = BytesMut::new();
            SyncRangeReq {
                remote: rec.filename.clone(),
                a: old,
                b: new,
                timestamp: ts as i32,
                group: storage.group.clone(),
            }
            .encode_head(&mut b);
            match conn.call(StorageCmd::SyncTruncateFile.into(), &b).await {
                Ok(_) => Ok(()),
                // The replica's size differs from the record's old size:
                // unlike the original (which counts this as done and can
                // leave replicas different), send the whole current file.
                Err(e) if matches!(status_of(&e), Some(Status::EEXIST) | Some(Status::ENOENT)) => {
                    send_file(storage, conn, StorageCmd::SyncUpdateFile, &rec.filename, ts).await
                }
                Err(e) => Err(e),
            }
        }
        'R' => {
            let mut b = BytesMut::new();
            SyncPairReq {
                dest: rec.filename.clone(),
                src: rec.extra.clone(),
                timestamp: ts as i32,
                group: storage.group.clone(),
            }
            .encode(&mut b);
            conn.send(StorageCmd::SyncRenameFile.into(), 0, &b).await?;
            match conn.recv_ok_discarding_body().await {
                Err(e) if status_of(&e) == Some(Status::EEXIST) => Ok(()),
                Err(e) if status_of(&e) == Some(Status::ENOENT) => {
                    send_file(storage, conn, StorageCmd::SyncCreateFile, &rec.filename, ts).await
                }
                other => other,
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_file_format() {
        let m = Mark {
            binlog_index: 0,
            binlog_offset: 996,
            need_sync_old: true,
            sync_old_done: true,
            until_timestamp: 1_795_623_843,
            scan_row_count: 16,
            sync_row_count: 15,
        };
        assert_eq!(
            m.to_text(),
            "binlog_index=0\nbinlog_offset=996\nneed_sync_old=1\nsync_old_done=1\nuntil_timestamp=1795623843\nscan_row_count=16\nsync_row_count=15\n"
        );
        assert_eq!(Mark::parse(&m.to_text()), Some(m));
        assert_eq!(Mark::parse("binlog_index=0\n"), None);
    }

    #[test]
    fn reader_passes_junk_on_as_lines_and_moves_past_torn_binlogs() {
        const GOOD: &str = "1700000000 C M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt\n";
        let dir = tempfile::tempdir().unwrap();
        let old = [
            GOOD.as_bytes(),
            b"garbage\n",
            b"1700000001 C \xff\xfe\n",
            &[b'A'; MAX_BINLOG_LINE_BYTES + 1],
            b"\n",
            // A crash cut this one; binlog.001 was started since.
            b"1700000002 C M00/00/00/torn",
        ]
        .concat();
        std::fs::write(dir.path().join("binlog.000"), &old).unwrap();
        let new = format!("{GOOD}1700000003 C M00/00/00/still-being-wr");
        std::fs::write(dir.path().join("binlog.001"), &new).unwrap();
        let mut cursor = Cursor {
            dir: dir.path().to_path_buf(),
            index: 0,
            offset: 0,
            reader: None,
        };
        let lines = cursor.read_lines(1, 100).unwrap();
        let seen: Vec<(bool, bool, u32, u64)> = lines
            .iter()
            .map(|l| (l.record().is_some(), l.whole, l.index, l.next_offset))
            .collect();
        let g = GOOD.len() as u64;
        let long = g + 8 + 16 + MAX_BINLOG_LINE_BYTES as u64 + 2;
        assert_eq!(
            seen,
            [
                (true, true, 0, g),
                (false, true, 0, g + 8),
                (false, true, 0, g + 8 + 16),
                (false, false, 0, long),
                (false, false, 0, old.len() as u64),
                (true, true, 1, g),
            ]
        );
        assert!(lines[3].text.len() <= MAX_BINLOG_LINE_BYTES);
        // The unfinished line of the binlog being written waits for its end.
        assert_eq!((cursor.index, cursor.offset), (1, g));
        assert!(cursor.read_lines(1, 100).unwrap().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("binlog.001"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"ite\n").unwrap();
        let rest = cursor.read_lines(1, 100).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].text, "1700000003 C M00/00/00/still-being-write\n");
        assert!(rest[0].whole);
    }

    #[test]
    fn record_filter_follows_section_5_3() {
        let rec = |op: char, ts: i64| Record {
            timestamp: ts,
            op,
            filename: "M00/00/00/x".into(),
            extra: String::new(),
        };
        let plain = Mark::default();
        assert!(should_send(&rec('C', 5), &plain));
        assert!(!should_send(&rec('c', 5), &plain));
        let full = Mark {
            need_sync_old: true,
            until_timestamp: 10,
            ..Mark::default()
        };
        assert!(should_send(&rec('c', 5), &full));
        assert!(!should_send(&rec('c', 11), &full));
        assert!(!should_send(&rec('a', 5), &full));
        assert!(!should_send(&rec('L', 5), &full));
    }
}
