//! UPLOAD_FILE (11), UPLOAD_APPENDER_FILE (23) and UPLOAD_SLAVE_FILE (21).
//!
//! Content streams through a fixed buffer into a temp file under the store
//! path's `data/.tmp`; a body of one buffer is read whole first, then
//! written into a file without a name (O_TMPFILE) in its final directory,
//! linked and logged by one blocking task. Only when it is complete is it
//! linked under its final name, so a crash or a dropped connection never
//! leaves a partial file under a file ID. The CREATE record is written
//! before the link, under the binlog lock: a kill in between leaves a
//! record without its file (skipped by readers), never a file without its
//! record, at no more cost than the record itself.

use std::path::Path;

use fdfs_proto::fileid::{
    appender_size_field, is_creatable_data_name, is_valid_ext, normal_size_field,
    slave_remote_name, FileNameRecord,
};
use fdfs_proto::storage_msg::{FileIdResp, UploadReq, UploadSlaveReq};
use fdfs_proto::wire::NamedHead;
use fdfs_proto::Status;

use super::{blocking, body_to_file, random_u32, resolve_data};
use crate::binlog::{op, Placing};
use crate::error::{OpError, OpResult};
use crate::session::{Reply, Session};
use crate::state::{lock, Storage};
use crate::store;
use crate::trunk::slot::check_data_exists;

/// Attempts at a unique name before giving up (EBUSY), as the original.
const NAME_ATTEMPTS: usize = 10;

/// An upload received into the temp directory: removed on drop unless it
/// was linked into place.
pub struct TempFile {
    tmp: fdfs_util::fs::TempPath,
    pub crc32: u32,
    pub size: u64,
}

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.tmp.path
    }

    fn disarm(&mut self) {
        self.tmp.keep();
    }

    /// Drops the temp file on the blocking pool: unlinking a big partial
    /// upload frees all its extents.
    pub async fn discard(self) {
        let _ = blocking(move || {
            drop(self);
            Ok(())
        })
        .await;
    }
}

/// A fresh temp file name in store path `index` (not created yet).
fn new_temp(storage: &Storage, index: usize, size: u64) -> TempFile {
    let name = format!("{:08x}{:08x}.tmp", random_u32(storage), random_u32(storage));
    TempFile {
        tmp: fdfs_util::fs::TempPath::new(storage.paths[index].tmp_dir().join(name)),
        crc32: 0,
        size,
    }
}

/// An upload's content once the body is read: already in a temp file, or
/// (small ones) still in memory, to be written by the same blocking task
/// that links it into place.
pub enum Received {
    Temp(TempFile),
    Memory { body: Vec<u8>, crc32: u32 },
}

impl Received {
    /// Reads the `size`-byte body: a body that fits one chunk into memory
    /// (no disk work, no blocking-pool hop: each hop costs two thread
    /// wake-ups, the bulk of a small upload's CPU), a bigger one streamed
    /// into a temp file in store path `index`.
    pub async fn read(s: &mut Session, index: usize, size: u64) -> OpResult<Received> {
        if size > super::BODY_CHUNK_BYTES as u64 {
            return Ok(Received::Temp(receive_to_temp(s, index, size).await?));
        }
        let body = s.read_exact_body(size as usize).await?;
        let crc32 = crc32fast::hash(&body);
        Ok(Received::Memory { body, crc32 })
    }

    /// The content as a complete temp file in store path `index`, written
    /// (and synced, as `fsync_after_written_bytes` asks) now if it was in
    /// memory. Blocking.
    pub fn into_temp(self, storage: &Storage, index: usize) -> OpResult<TempFile> {
        let (body, crc32) = match self {
            Received::Temp(temp) => return Ok(temp),
            Received::Memory { body, crc32 } => (body, crc32),
        };
        let mut temp = new_temp(storage, index, body.len() as u64);
        temp.crc32 = crc32;
        storage.bump(|st| st.total_file_open_count += 1);
        let mut file = match std::fs::File::create(temp.path()) {
            Ok(f) => f,
            Err(e) => {
                temp.disarm();
                return Err(e.into());
            }
        };
        storage.bump(|st| st.success_file_open_count += 1);
        // A failure drops `temp`, which removes the partial file.
        std::io::Write::write_all(&mut file, &body)?;
        storage.bump(|st| {
            st.total_file_write_count += 1;
            st.success_file_write_count += 1;
        });
        if syncs(storage, temp.size) {
            file.sync_all()?;
        }
        Ok(temp)
    }
}

/// Whether an upload of `size` bytes is synced (`fsync_after_written_bytes`).
pub(crate) fn syncs(storage: &Storage, size: u64) -> bool {
    let threshold = storage.conf.fsync_after_written_bytes;
    threshold > 0 && size >= threshold
}

/// Streams `size` body bytes into a new temp file in store path `index`.
pub async fn receive_to_temp(s: &mut Session, index: usize, size: u64) -> OpResult<TempFile> {
    let mut temp = new_temp(&s.storage, index, size);
    s.storage.bump(|st| st.total_file_open_count += 1);
    let create = temp.path().to_path_buf();
    let file = match blocking(move || Ok(std::fs::File::create(create)?)).await {
        Ok(f) => f,
        Err(e) => {
            temp.disarm();
            return Err(e);
        }
    };
    s.storage.bump(|st| st.success_file_open_count += 1);
    let mut hasher = crc32fast::Hasher::new();
    let (file, writes) = match body_to_file(s, file, size, |chunk| hasher.update(chunk)).await {
        Ok(done) => done,
        Err(e) => {
            temp.discard().await;
            return Err(e);
        }
    };
    s.storage.bump(|st| {
        st.total_file_write_count += writes;
        st.success_file_write_count += writes;
    });
    if syncs(&s.storage, size) {
        if let Err(e) = blocking(move || Ok(file.sync_all()?)).await {
            temp.discard().await;
            return Err(e);
        }
    }
    temp.crc32 = hasher.finalize();
    Ok(temp)
}

/// Links a finished temp file under a fresh unique normal/appender name in
/// `dir`, with its binlog record, and returns the remote name and mtime.
fn commit_new_name(
    storage: &Storage,
    temp: &mut TempFile,
    index: usize,
    dir: (u8, u8),
    ext7: &str,
    appender: bool,
) -> OpResult<(String, i64)> {
    let mtime = super::mtime_secs(&std::fs::metadata(temp.path())?);
    let content = (temp.size, temp.crc32, mtime);
    let from = temp.path().to_path_buf();
    let placed = place_new_name(storage, index, dir, ext7, appender, content, |to| {
        link_no_clobber(&from, to)
    })?;
    temp.disarm();
    let _ = std::fs::remove_file(temp.path());
    Ok(placed)
}

/// Writes an in-memory body into a file without a name in its final
/// directory (O_TMPFILE), then names it as [`commit_new_name`] does. There
/// is no temp name to make and remove, and the inode is allocated near its
/// directory, as the original's files are: a shared temp directory puts
/// every new inode in one block group, whose bitmap each create then
/// searches, and takes that directory's lock twice per upload. `None`,
/// before anything is written, where the file system has no O_TMPFILE or
/// the directory is not made yet: the caller goes through a temp file.
/// Blocking.
fn commit_unnamed(
    storage: &Storage,
    (body, crc32): (&[u8], u32),
    index: usize,
    dir: (u8, u8),
    ext7: &str,
    appender: bool,
) -> Option<OpResult<(String, i64)>> {
    let dir_path = store::dir_path(&storage.paths[index].root, dir);
    let mut file = fdfs_util::sys::open_unnamed_in(&dir_path).ok()?;
    storage.bump(|st| {
        st.total_file_open_count += 1;
        st.success_file_open_count += 1;
    });
    let mut write_and_name = || {
        std::io::Write::write_all(&mut file, body)?;
        storage.bump(|st| {
            st.total_file_write_count += 1;
            st.success_file_write_count += 1;
        });
        let size = body.len() as u64;
        if syncs(storage, size) {
            file.sync_all()?;
        }
        let mtime = super::mtime_secs(&file.metadata()?);
        place_new_name(
            storage,
            index,
            dir,
            ext7,
            appender,
            (size, crc32, mtime),
            |to| fdfs_util::sys::link_unnamed(&file, to),
        )
    };
    Some(write_and_name())
}

/// Puts content of `(size, crc32, mtime)` under a fresh unique name in
/// `dir` with `place` (which must never replace a file: EEXIST when the
/// name is taken, and another is tried), after its CREATE record (see
/// [`place_with_record`]). Returns the remote name and mtime.
fn place_new_name(
    storage: &Storage,
    index: usize,
    dir: (u8, u8),
    ext7: &str,
    appender: bool,
    (size, crc32, mtime): (u64, u32, i64),
    mut place: impl FnMut(&Path) -> std::io::Result<()>,
) -> OpResult<(String, i64)> {
    let root = storage.paths[index].root.clone();
    for _ in 0..NAME_ATTEMPTS {
        let random = random_u32(storage);
        let record = FileNameRecord {
            source: storage.name_source(),
            timestamp: mtime as u32,
            size_field: if appender {
                appender_size_field(random)
            } else {
                normal_size_field(size, random)
            },
            crc32,
        };
        let remote = store::remote_name(index, dir, &record, ext7);
        let final_path = store::file_path(&root, &remote[4..]);
        let placed = storage
            .binlog
            .append_placing(mtime, op::CREATE, &remote, "", || place(&final_path));
        match placed {
            Ok(()) => return Ok((remote, mtime)),
            Err(Placing::Place(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(placing_error(e, &remote)),
        }
    }
    Err(OpError::new(Status::EBUSY, "no unique file name"))
}

/// Writes the CREATE record of `remote`, then links the temp file at
/// `final_path` (see [`crate::binlog::Binlog::append_placing`]): a kill
/// in between leaves a record whose file is missing, which the sync
/// sender and disk recovery skip, and never a file without its record.
/// A name already taken cuts the record off again.
fn place_with_record(
    storage: &Storage,
    temp: &mut TempFile,
    final_path: &Path,
    remote: &str,
    mtime: i64,
) -> Result<(), Placing> {
    storage
        .binlog
        .append_placing(mtime, op::CREATE, remote, "", || {
            link_no_clobber(temp.path(), final_path)
        })?;
    temp.disarm();
    let _ = std::fs::remove_file(temp.path());
    Ok(())
}

/// The answer to a failed [`place_with_record`]: EEXIST for a name taken,
/// EIO for a binlog that cannot be written.
fn placing_error(e: Placing, remote: &str) -> OpError {
    match e {
        Placing::Place(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            OpError::new(Status::EEXIST, format!("{remote} exists"))
        }
        Placing::Place(e) => e.into(),
        Placing::Binlog(e) => {
            tracing::error!(error = %e, filename = remote, "binlog write failed; upload refused");
            OpError::new(Status::EIO, format!("binlog write failed: {e}"))
        }
    }
}

/// Puts `from` at `to` unless `to` exists (hard link, then the caller
/// removes `from`): never replaces a stored file.
pub fn link_no_clobber(from: &Path, to: &Path) -> std::io::Result<()> {
    crate::store::place_in_tree(to, || std::fs::hard_link(from, to))
}

pub async fn upload(s: &mut Session, appender: bool) -> OpResult<Reply> {
    let body_len = s.body_left;
    if body_len < UploadReq::FIXED_LEN as u64 {
        return Err(OpError::invalid(format!("upload body of {body_len} bytes")));
    }
    let head = s.read_exact_body(UploadReq::FIXED_LEN).await?;
    let req = UploadReq::decode_head(&head, body_len)?;
    if !is_valid_ext(&req.ext) {
        return Err(OpError::invalid(format!("invalid extension {:?}", req.ext)));
    }
    let storage = s.storage.clone();
    let requested = match req.store_path_index {
        -1 => None,
        i if i >= 0 && (i as usize) < storage.paths.len() => Some(i as usize),
        i => return Err(OpError::invalid(format!("store path index {i}"))),
    };
    let size = req.file_size;
    // A recent reading decides when every path has ample room in it (the
    // choice is then the one a fresh reading would make); otherwise, and
    // for every refusal, the spaces are read again.
    // While another upload reads them again, one a little older decides
    // too: otherwise every upload that arrives meanwhile starts a blocking
    // task of its own (hundreds of threads and statfs calls under load).
    let recent = storage
        .recent_spaces(SPACE_READING_MAX_AGE)
        .or_else(|| {
            storage
                .space_reading_under_way()
                .then(|| storage.recent_spaces(SPACE_READING_MAX_AGE_WHILE_READ))
                .flatten()
        })
        .filter(|sp| all_ample(&storage, sp, size));
    let chosen = match recent.and_then(|sp| pick_path(&storage, &sp, requested, size, false)) {
        Some(i) => Some(i),
        None => {
            let disk_storage = storage.clone();
            let reading = storage.begin_space_reading();
            blocking(move || {
                let _reading = reading;
                let spaces = disk_storage.refresh_spaces();
                Ok(pick_path(&disk_storage, &spaces, requested, size, true))
            })
            .await?
        }
    };
    let Some(index) = chosen else {
        // Refused before the body is read: the connection answers at once
        // (a small body is drained, a big one gets a lingering close).
        return Err(OpError::new(Status::ENOSPC, "no store path has room"));
    };
    // Small new files go into a trunk slot (cmd 11 only, as the original).
    if !appender && crate::trunk::client::fits_trunk(&storage.params().trunk, req.file_size) {
        if let Some(reply) = crate::trunk::client::upload(s, index, &req.ext, req.file_size).await?
        {
            return Ok(reply);
        }
    }
    storage.bump(|st| st.total_upload_bytes += req.file_size as i64);
    let received = Received::read(s, index, req.file_size).await?;
    // A synced write can take long: it keeps to the blocking pool, where it
    // holds no writer thread that other small uploads wait for.
    let small_and_quick = matches!(received, Received::Memory { .. }) && !syncs(&storage, size);
    let ext7 = store::new_ext7(&req.ext, &mut lock(&storage.rng));
    let dir = next_dir(&storage);
    let disk_storage = storage.clone();
    let commit = move || {
        if let Received::Memory { body, crc32 } = &received {
            let unnamed =
                commit_unnamed(&disk_storage, (body, *crc32), index, dir, &ext7, appender);
            if let Some(done) = unnamed {
                return done;
            }
        }
        let mut temp = received.into_temp(&disk_storage, index)?;
        commit_new_name(&disk_storage, &mut temp, index, dir, &ext7, appender)
    };
    let (remote, mtime) = if small_and_quick {
        storage.writers.run(commit).await?
    } else {
        blocking(commit).await?
    };
    storage.bump(|st| {
        st.success_upload_bytes += req.file_size as i64;
        st.last_source_update = mtime;
    });
    s.log_name = remote.clone();
    let mut body = bytes::BytesMut::new();
    FileIdResp {
        group: storage.group.clone(),
        remote,
    }
    .encode(&mut body);
    Ok(Reply::Body(body.to_vec()))
}

/// The directory of a new file: hashed or rotating (§6.5).
fn next_dir(storage: &Storage) -> (u8, u8) {
    if storage.conf.file_distribute_path_mode == 1 {
        let seed = {
            let mut rng = lock(&storage.rng);
            format!("{:08x}{:08x}", rng.next_u32(), rng.next_u32())
        };
        store::hashed_dir(&seed, storage.conf.subdir_count_per_path)
    } else {
        lock(&storage.rotation).next_dir(
            storage.conf.file_distribute_rotate_count,
            storage.conf.subdir_count_per_path,
        )
    }
}

/// `store_slave_file_use_link` (§3.2): the slave's content goes under a
/// fresh normal name (`C <real>`), and the slave name becomes a symlink to
/// that file's absolute path (`L <slave> <real>`, the form the original
/// meant to write, §5.1). A slave name taken in between removes the real
/// file again (`D <real>`). Returns the mtime. Blocking.
fn link_slave(
    storage: &Storage,
    mut temp: TempFile,
    index: usize,
    dir: (u8, u8),
    ext7: &str,
    slave_path: &Path,
    slave_remote: &str,
) -> OpResult<i64> {
    let (real_remote, mtime) = commit_new_name(storage, &mut temp, index, dir, ext7, false)?;
    let real_path = store::file_path(&storage.paths[index].root, &real_remote[4..]);
    let linked = storage
        .binlog
        .append_placing(mtime, op::LINK, slave_remote, &real_remote, || {
            crate::store::place_in_tree(slave_path, || {
                std::os::unix::fs::symlink(&real_path, slave_path)
            })
        });
    if let Err(e) = linked {
        if std::fs::remove_file(&real_path).is_ok() {
            super::log_change(storage, mtime, op::DELETE, &real_remote, "");
        }
        return Err(placing_error(e, slave_remote));
    }
    Ok(mtime)
}

/// How old a free-space reading an upload may choose its store path by.
/// The original goes by a reading up to `stat_report_interval` old; a
/// write that still finds the disk full answers ENOSPC and drops the
/// reading.
const SPACE_READING_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// How old a reading may be while another upload reads the spaces again
/// (a reading is trusted only with [`SPACE_READING_SLACK_MB`] to spare).
const SPACE_READING_MAX_AGE_WHILE_READ: std::time::Duration = std::time::Duration::from_secs(3);

/// Room a recent reading must show on every path beyond an upload and the
/// reserve to be trusted: more than the store takes in
/// [`SPACE_READING_MAX_AGE`], so a fresh reading would decide the same.
const SPACE_READING_SLACK_MB: u64 = 1024;

/// Whether every writable store path has room for `size` bytes and
/// [`SPACE_READING_SLACK_MB`] in `spaces`.
fn all_ample(storage: &Storage, spaces: &[crate::disk::SpaceMb], size: u64) -> bool {
    let reserved = storage.params().reserved_storage_space;
    let need_mb = size / (1024 * 1024) + SPACE_READING_SLACK_MB;
    let n = storage.paths.len();
    storage.paths.iter().enumerate().all(|(i, p)| {
        p.readonly
            || spaces
                .get(i)
                .is_some_and(|sp| store::path_has_room(&reserved, *sp, need_mb, n))
    })
}

/// Chooses a store path with room for `size` bytes (§11.3) by `spaces`;
/// `log` names every path in a warning when none has room.
fn pick_path(
    storage: &Storage,
    spaces: &[crate::disk::SpaceMb],
    requested: Option<usize>,
    size: u64,
    log: bool,
) -> Option<usize> {
    let params = storage.params();
    let incoming_mb = size / (1024 * 1024);
    let mut rr = lock(&storage.round_robin_path);
    let chosen = store::choose_path(
        &storage.paths,
        spaces,
        &params.reserved_storage_space,
        incoming_mb,
        requested,
        params.store_path_mode,
        &mut rr,
    );
    if chosen.is_none() && log {
        log_no_room(storage, spaces, &params.reserved_storage_space, size);
    }
    chosen
}

/// At most one "no room" warning per this many seconds.
const NO_ROOM_LOG_INTERVAL_SECS: i64 = 10;
static NO_ROOM_LOG: fdfs_util::serve::WarnLimiter =
    fdfs_util::serve::WarnLimiter::new(NO_ROOM_LOG_INTERVAL_SECS);

/// Names every store path and why it cannot take an upload: its free and
/// total space against `reserved_storage_space` (rate-limited).
fn log_no_room(
    storage: &Storage,
    spaces: &[crate::disk::SpaceMb],
    reserved: &fdfs_config::ReservedSpace,
    size: u64,
) {
    let Some(held_back) = NO_ROOM_LOG.allow(crate::state::now_secs()) else {
        return;
    };
    let paths: Vec<String> = storage
        .paths
        .iter()
        .zip(spaces)
        .map(|(p, sp)| {
            format!(
                "{}{}: free {} MB of {} MB",
                p.root.display(),
                if p.readonly { " (read-only)" } else { "" },
                sp.free_mb,
                sp.total_mb
            )
        })
        .collect();
    tracing::warn!(
        upload_bytes = size,
        reserved_storage_space = %reserved.to_param_string(),
        store_paths = %paths.join("; "),
        refused_since_last = held_back,
        "upload refused with ENOSPC: no store path has room above reserved_storage_space"
    );
}

pub async fn upload_slave(s: &mut Session) -> OpResult<Reply> {
    let body_len = s.body_left;
    if body_len <= UploadSlaveReq::FIXED_LEN as u64 {
        return Err(OpError::invalid(format!(
            "slave upload body of {body_len} bytes"
        )));
    }
    let fixed = s.read_exact_body(UploadSlaveReq::FIXED_LEN).await?;
    let name_len = UploadSlaveReq::name_len(&fixed)?;
    let name = s.read_exact_body(name_len).await?;
    let req = UploadSlaveReq::decode_head(&[fixed, name].concat(), body_len)?;
    let storage = s.storage.clone();

    // The original checks that the master exists before validating anything
    // else, so an unknown master is ENOENT even when malformed.
    let master = resolve_data(&storage, &req.master).ok();
    let disk_storage = storage.clone();
    let master_found = match master {
        // A trunk master is found by its slot header.
        Some((name, path)) => {
            blocking(move || Ok(check_data_exists(&disk_storage, &name, &path).is_ok())).await?
        }
        None => false,
    };
    if !master_found {
        s.drain_body().await?;
        return Err(OpError::not_found(format!(
            "master {} not found",
            fdfs_proto::fileid::escape_for_log(&req.master)
        )));
    }
    let slave_remote = slave_remote_name(&req.master, &req.prefix, &req.ext)?;
    let (slave_name, slave_path) = resolve_data(&storage, &slave_remote)
        .ok()
        .filter(|(n, _)| is_creatable_data_name(&n.name))
        .ok_or_else(|| OpError::invalid(format!("slave name {slave_remote} is not usable")))?;
    s.log_name = slave_remote.clone();
    let index = usize::from(slave_name.store_path_index);
    let (disk_storage, probe) = (storage.clone(), slave_path.clone());
    let size_mb = req.file_size / (1024 * 1024);
    let (exists, has_room) = blocking(move || {
        let params = disk_storage.params();
        let spaces = disk_storage.refresh_spaces();
        let has_room = spaces.get(index).is_some_and(|sp| {
            store::path_has_room(
                &params.reserved_storage_space,
                *sp,
                size_mb,
                disk_storage.paths.len(),
            )
        });
        Ok((probe.exists(), has_room))
    })
    .await?;
    if exists {
        s.drain_body().await?;
        return Err(OpError::new(
            Status::EEXIST,
            format!("{slave_remote} exists"),
        ));
    }
    if !has_room {
        return Err(OpError::new(Status::ENOSPC, "store path is full"));
    }
    storage.bump(|st| st.total_upload_bytes += req.file_size as i64);
    let temp = receive_to_temp(s, index, req.file_size).await?;
    if storage.params().trunk.store_slave_file_use_link {
        let ext7 = store::new_ext7(&req.ext, &mut lock(&storage.rng));
        let dir = next_dir(&storage);
        let (disk_storage, logged) = (storage.clone(), slave_remote.clone());
        let mtime = blocking(move || {
            link_slave(&disk_storage, temp, index, dir, &ext7, &slave_path, &logged)
        })
        .await?;
        storage.bump(|st| {
            st.success_upload_bytes += req.file_size as i64;
            st.last_source_update = mtime;
        });
        let mut body = bytes::BytesMut::new();
        FileIdResp {
            group: storage.group.clone(),
            remote: slave_remote,
        }
        .encode(&mut body);
        return Ok(Reply::Body(body.to_vec()));
    }
    let (disk_storage, logged) = (storage.clone(), slave_remote.clone());
    let mtime = blocking(move || {
        let mut temp = temp;
        let mtime = super::mtime_secs(&std::fs::metadata(temp.path())?);
        place_with_record(&disk_storage, &mut temp, &slave_path, &logged, mtime)
            .map_err(|e| placing_error(e, &logged))?;
        Ok(mtime)
    })
    .await?;
    storage.bump(|st| {
        st.success_upload_bytes += req.file_size as i64;
        st.last_source_update = mtime;
    });
    let mut body = bytes::BytesMut::new();
    FileIdResp {
        group: storage.group.clone(),
        remote: slave_remote,
    }
    .encode(&mut body);
    Ok(Reply::Body(body.to_vec()))
}
