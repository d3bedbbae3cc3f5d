//! Reading and writing one slot of a trunk file: header check against the name, content ranges, positioned writes.
//!
//! Every function here is blocking (callers run it on the blocking pool),
//! except [`body_to_slot`], which streams a request body into a slot one
//! chunk at a time.
//!
//! An upload into an allocated slot: [`SlotWrite::begin`] (no expected
//! header: only a free slot is taken), [`body_to_slot`],
//! [`SlotWrite::upload_header`], [`SlotWrite::finish`], then the name from
//! that header; on a failed confirm [`clear_slot`]. Readers use
//! [`open_slot`] / [`open_data`], deletes [`delete_slot`].
//!
//! Piecewise writes put the content first and the 24-byte header last:
//! until the header lands the slot still reads as free (or as the file it
//! held). Content that arrived whole goes in with its header in one
//! positioned write ([`SlotWrite::stage`]); a write cut short puts the old
//! header back. Either way the name is handed out only after the write, and
//! an allocation that a crash left unconfirmed is freed, never named, so a
//! half-written file never shows under a name. A slot whose on-disk header
//! is taken by another file is never overwritten (EEXIST): that is the last
//! guard against a slot handed out twice (trunk design rule 4).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fdfs_proto::fileid::RemoteName;
use fdfs_proto::trunk::{
    link_target, SlotHeader, TrunkLocation, LINK_TARGET_MAX_LEN, SLOT_HEADER_LEN, SLOT_TYPE_FREE,
    SLOT_TYPE_LINK, SLOT_TYPE_REGULAR,
};
use fdfs_proto::Status;

use crate::error::{OpError, OpResult};
use crate::session::Session;
use crate::state::Storage;

/// Zeros written at once when a cleared slot's content is wiped, bytes.
const WIPE_CHUNK_BYTES: usize = 64 * 1024;

/// `<store path>/data/HH/HH/NNNNNN` of a slot's trunk file.
pub fn trunk_file_path(store_root: &Path, loc: &TrunkLocation) -> PathBuf {
    store_root.join(loc.trunk_file_relative_path())
}

/// The location of a trunk name, or EINVAL for any other name.
pub fn location_of(name: &RemoteName) -> OpResult<TrunkLocation> {
    TrunkLocation::from_remote(name)
        .ok_or_else(|| OpError::invalid(format!("{name} is not a trunk file name")))
}

/// The 24 header bytes at a slot's offset. A trunk file too short to hold
/// them reads as a free slot: the original creates trunk files sparse, so
/// bytes never written are zeros either way.
pub fn read_header(file: &File, loc: &TrunkLocation) -> io::Result<[u8; SLOT_HEADER_LEN]> {
    let mut raw = [0u8; SLOT_HEADER_LEN];
    let mut done = 0;
    while done < SLOT_HEADER_LEN {
        match file.read_at(&mut raw[done..], u64::from(loc.offset) + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(raw)
}

/// A trunk-backed file found at its slot, header checked against its name.
#[derive(Debug)]
pub struct OpenSlot {
    /// The trunk file, opened read-only.
    pub file: File,
    pub loc: TrunkLocation,
    pub header: SlotHeader,
}

impl OpenSlot {
    /// The file's size in bytes, from the header (§3.7: trunk files report it).
    pub fn size(&self) -> u64 {
        u64::from(self.header.file_size)
    }

    /// Offset of the file's first byte inside the trunk file.
    pub fn content_offset(&self) -> u64 {
        self.loc.content_offset()
    }

    /// The whole content (a trunk file is at most `slot_max_size` bytes).
    pub fn read_content(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.header.file_size as usize];
        self.file.read_exact_at(&mut buf, self.content_offset())?;
        Ok(buf)
    }
}

/// Opens the slot a trunk name points at and checks it holds that file
/// (§11.5): ENOENT for a missing trunk file, a free slot, or a header that
/// differs from the name in any byte, as the original answers; EINVAL for a
/// name that is not a trunk name; EIO for a trunk file cut short inside the
/// slot.
pub fn open_slot(store_root: &Path, name: &RemoteName) -> OpResult<OpenSlot> {
    let loc = location_of(name)?;
    let path = trunk_file_path(store_root, &loc);
    let file = match fdfs_util::sys::open_noatime(OpenOptions::new().read(true), &path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(OpError::not_found(format!(
                "trunk file {} of {name} not found",
                path.display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let raw = read_header(&file, &loc)?;
    if !SlotHeader::matches_name(&raw, name) {
        return Err(OpError::not_found(format!(
            "{name}: slot header does not match the name"
        )));
    }
    let header = SlotHeader::decode(&raw);
    // A name whose size does not fit its own slot was not made by an
    // allocator; reading it would run into the next slot.
    if SLOT_HEADER_LEN as u64 + u64::from(header.file_size) > u64::from(loc.size) {
        return Err(OpError::not_found(format!(
            "{name}: file size {} exceeds its slot of {}",
            header.file_size, loc.size
        )));
    }
    let end = loc.content_offset() + u64::from(header.file_size);
    let len = file.metadata()?.len();
    if len < end {
        return Err(OpError::new(
            Status::EIO,
            format!(
                "trunk file {} is {len} bytes, slot ends at {end}",
                path.display()
            ),
        ));
    }
    Ok(OpenSlot { file, loc, header })
}

/// A stored data file opened for reading: a plain file (following a slave
/// link) or the slot of a trunk name.
#[derive(Debug)]
pub struct DataFile {
    pub file: File,
    /// Offset of the file's first byte inside `file`: 0 for a plain file.
    pub base: u64,
    pub size: u64,
    /// Set for a trunk-backed file: its slot and checked header.
    pub trunk: Option<(TrunkLocation, SlotHeader)>,
}

/// The store path root a name lives under; EINVAL for an index we lack.
pub fn store_root(storage: &Storage, name: &RemoteName) -> OpResult<PathBuf> {
    storage
        .paths
        .get(usize::from(name.store_path_index))
        .map(|p| p.root.clone())
        .ok_or_else(|| OpError::invalid("store path index out of range"))
}

/// Opens a data file by name: trunk names at their slot ([`open_slot`]),
/// other names at `path` (what [`crate::ops::resolve`] gave). Blocking.
pub fn open_data(storage: &Storage, name: &RemoteName, path: &Path) -> OpResult<DataFile> {
    if TrunkLocation::from_remote(name).is_some() {
        let slot = open_slot(&store_root(storage, name)?, name)?;
        if slot.header.file_type == SLOT_TYPE_LINK {
            return open_link_target(storage, name, &slot);
        }
        return Ok(slot.into());
    }
    let (file, meta) = crate::ops::open_existing(path)?;
    Ok(DataFile {
        file,
        base: 0,
        size: meta.len(),
        trunk: None,
    })
}

impl From<OpenSlot> for DataFile {
    fn from(slot: OpenSlot) -> Self {
        DataFile {
            base: slot.content_offset(),
            size: slot.size(),
            trunk: Some((slot.loc, slot.header)),
            file: slot.file,
        }
    }
}

/// The file an `L` slot stands for (PROTOCOL.md §11.5): its content names
/// a plain file or another slot of this storage, which is read in its
/// place, as the original's download and file info do. One level only: a
/// link to a link, or content that names no data file, is ENOENT.
pub fn open_link_target(
    storage: &Storage,
    name: &RemoteName,
    link: &OpenSlot,
) -> OpResult<DataFile> {
    let dangling = |why: &str| OpError::not_found(format!("{name}: link slot {why}"));
    if link.size() > LINK_TARGET_MAX_LEN as u64 {
        return Err(dangling("holds more than a file name"));
    }
    let target = link_target(&link.read_content()?, storage.paths.len())
        .ok_or_else(|| dangling("holds no file name"))?;
    let root = store_root(storage, &target)?;
    // A missing target is the link's ENOENT; any other failure keeps its own.
    let missing = |e: OpError| {
        if e.status == Status::ENOENT {
            dangling("names a missing file")
        } else {
            e
        }
    };
    if TrunkLocation::from_remote(&target).is_some() {
        let slot = open_slot(&root, &target).map_err(missing)?;
        if slot.header.file_type == SLOT_TYPE_LINK {
            return Err(dangling("names another link"));
        }
        return Ok(slot.into());
    }
    let path = crate::store::file_path(&root, &target.relative_path());
    let (file, meta) = crate::ops::open_existing(&path).map_err(missing)?;
    Ok(DataFile {
        file,
        base: 0,
        size: meta.len(),
        trunk: None,
    })
}

/// Makes `link` (a trunk name) an `L` slot whose content is `target`, the
/// name of a data file of this storage, as the original's storage does
/// for a link it receives (§11.5). With `target_here`, a target missing
/// here is ENOENT (SYNC_CREATE_LINK, whose stream sent the target first);
/// disk recovery restores targets on other threads, in any order. Like a
/// file copy: true when written; false when the slot holds this link
/// already or the link was deleted here; a slot held by another file is
/// never overwritten (EEXIST). Blocking.
pub fn write_link_slot(
    storage: &Storage,
    link: &RemoteName,
    target: &str,
    target_here: bool,
) -> OpResult<bool> {
    let loc = location_of(link)?;
    let expect = SlotHeader::expected_for(link, SLOT_TYPE_LINK)
        .ok_or_else(|| OpError::invalid(format!("{link} is not a trunk name")))?;
    let target_name = link_target(target.as_bytes(), storage.paths.len())
        .ok_or_else(|| OpError::invalid(format!("{link}: a link to no data file")))?;
    if target.len() != expect.file_size as usize {
        return Err(OpError::invalid(format!(
            "{link}: a link of {} bytes names {target}",
            expect.file_size
        )));
    }
    let target_root = store_root(storage, &target_name)?;
    if target_here {
        let target_path = crate::store::file_path(&target_root, &target_name.relative_path());
        check_data_exists(storage, &target_name, &target_path)?;
    }
    if storage
        .trunk
        .tombstones(storage.data_dir())?
        .take(&link.to_string())?
    {
        return Ok(false);
    }
    let trunk_file_size = storage.params().trunk.trunk_file_size_bytes;
    let root = store_root(storage, link)?;
    let (mut writer, prior) =
        SlotWrite::begin(&root, loc, expect.file_size, trunk_file_size, Some(&expect))?;
    if prior != Prior::Free {
        return Ok(false);
    }
    writer.write(target.as_bytes())?;
    writer.finish(&expect, false)?;
    Ok(true)
}

/// Whether a data file exists (ENOENT or the reader's status otherwise):
/// trunk names by their slot header, other names as a plain stat.
/// Blocking.
pub fn check_data_exists(storage: &Storage, name: &RemoteName, path: &Path) -> OpResult<()> {
    if TrunkLocation::from_remote(name).is_some() {
        open_slot(&store_root(storage, name)?, name).map(|_| ())
    } else {
        crate::ops::stat_existing(path).map(|_| ())
    }
}

/// The slots being written in this process: two writers of one slot (two
/// replicas of a file racing, or a double allocation) must not both pass
/// the header check before either writes.
fn slots_in_flight() -> &'static Mutex<HashSet<(PathBuf, u32)>> {
    static SET: OnceLock<Mutex<HashSet<(PathBuf, u32)>>> = OnceLock::new();
    SET.get_or_init(Default::default)
}

/// Holds one slot in [`slots_in_flight`] until dropped.
#[derive(Debug)]
struct SlotClaim((PathBuf, u32));

impl SlotClaim {
    fn take(path: &Path, offset: u32) -> OpResult<Self> {
        let key = (path.to_path_buf(), offset);
        if !fdfs_util::sync::lock(slots_in_flight()).insert(key.clone()) {
            return Err(OpError::new(
                Status::EBUSY,
                format!("slot {} @{offset} is being written", path.display()),
            ));
        }
        Ok(SlotClaim(key))
    }
}

impl Drop for SlotClaim {
    fn drop(&mut self) {
        fdfs_util::sync::lock(slots_in_flight()).remove(&self.0);
    }
}

/// Slots whose content a sync worker is sending to a peer right now, with
/// how many workers send each. A delete of such a slot waits for them: a
/// peer must have the file's create answered before we acknowledge its
/// delete, or the trunk server could reuse the slot (once every peer has
/// the delete, `sync::freer`) while our stale copy is still on its way to
/// a peer that has the new file.
type Sends = (Mutex<HashMap<(PathBuf, u32), usize>>, Condvar);

fn sends_in_flight() -> &'static Sends {
    static SENDS: OnceLock<Sends> = OnceLock::new();
    SENDS.get_or_init(Default::default)
}

/// The longest a delete waits for a send of its slot: a sync connection
/// times out well before.
const SEND_WAIT_MAX: Duration = Duration::from_secs(120);

/// Registers a send of the slot at `loc` until dropped.
#[derive(Debug)]
pub struct SendGuard((PathBuf, u32));

impl SendGuard {
    /// Call before reading the slot's header, so that a delete either
    /// happened before (the header is gone) or waits for the send.
    pub fn register(store_root: &Path, loc: &TrunkLocation) -> SendGuard {
        let key = (trunk_file_path(store_root, loc), loc.offset);
        *fdfs_util::sync::lock(&sends_in_flight().0)
            .entry(key.clone())
            .or_insert(0) += 1;
        SendGuard(key)
    }
}

impl Drop for SendGuard {
    fn drop(&mut self) {
        let (sends, done) = sends_in_flight();
        let mut sends = fdfs_util::sync::lock(sends);
        if let Some(n) = sends.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                sends.remove(&self.0);
            }
        }
        done.notify_all();
    }
}

/// Runs `f` once no send of the slot at (`path`, `offset`) is in flight,
/// holding off new ones while it runs.
fn without_sends<T>(path: &Path, offset: u32, f: impl FnOnce() -> OpResult<T>) -> OpResult<T> {
    let (sends, done) = sends_in_flight();
    let key = (path.to_path_buf(), offset);
    let deadline = Instant::now() + SEND_WAIT_MAX;
    let mut held = fdfs_util::sync::lock(sends);
    while held.contains_key(&key) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(OpError::new(
                Status::EBUSY,
                format!("slot {} @{offset} is being sent to a peer", path.display()),
            ));
        }
        held = done
            .wait_timeout(held, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    f()
}

/// What the slot held when a write began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// A free slot (or never-written bytes): the write goes ahead.
    Free,
    /// Exactly the header being written: the file is already there (a
    /// replica that received it before). Nothing needs writing.
    Same,
    /// The header being written, marked free: this file was deleted here
    /// (see [`delete_slot`]). A replica of it that arrives late must not
    /// bring it back.
    Deleted,
}

/// Most trunk files kept open for writing ([`open_for_write`]); a full
/// cache starts over.
const OPEN_TRUNK_FILES: usize = 64;

/// A trunk file kept open for writing, with its length and the time its
/// name and length were last checked by fstat.
struct KeptTrunkFile {
    file: Arc<File>,
    len: u64,
    checked: Instant,
}

/// How long a kept trunk file takes writes without an fstat. Our own
/// deletes forget it first ([`forget_open_trunk_file`]); this bounds how
/// long a trunk file deleted or replaced by hand still does. An fstat per
/// write cost more than itself: it marks the inode's times as seen, so the
/// next write stores fine-grained times and dirties the inode again.
const TRUST_KEPT_TRUNK_FILE: Duration = Duration::from_secs(1);

/// Trunk files open for writing, by path: a small upload would otherwise
/// spend more on mkdir, open and fstat of its trunk file than on its write.
fn open_trunk_files() -> &'static Mutex<HashMap<PathBuf, KeptTrunkFile>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, KeptTrunkFile>>> = OnceLock::new();
    FILES.get_or_init(Default::default)
}

/// Closes the kept descriptor of a trunk file about to be deleted, so its
/// space is freed with the unlink.
pub fn forget_open_trunk_file(path: &Path) {
    fdfs_util::sync::lock(open_trunk_files()).remove(path);
}

/// Closes the kept descriptors of every trunk file under `store_root`.
pub fn forget_open_trunk_files_under(store_root: &Path) {
    fdfs_util::sync::lock(open_trunk_files()).retain(|path, _| !path.starts_with(store_root));
}

/// The trunk file open for writing ([`open_new_or_grow`]), kept open for
/// the next write. A kept descriptor is checked again (one fstat) once it
/// has been trusted for [`TRUST_KEPT_TRUNK_FILE`]: a trunk file deleted or
/// renamed over by anyone since is then opened afresh by its path.
fn open_for_write(path: &Path, trunk_file_size: u64) -> io::Result<Arc<File>> {
    use std::os::unix::fs::MetadataExt;
    let now = Instant::now();
    let kept = {
        let files = fdfs_util::sync::lock(open_trunk_files());
        match files.get(path) {
            Some(k)
                if k.len >= trunk_file_size
                    && now.duration_since(k.checked) < TRUST_KEPT_TRUNK_FILE =>
            {
                return Ok(k.file.clone());
            }
            Some(k) => Some(k.file.clone()),
            None => None,
        }
    };
    if let Some(file) = kept {
        let meta = file.metadata()?;
        if meta.nlink() > 0 && meta.len() >= trunk_file_size {
            if let Some(k) = fdfs_util::sync::lock(open_trunk_files()).get_mut(path) {
                if Arc::ptr_eq(&k.file, &file) {
                    k.len = meta.len();
                    k.checked = now;
                }
            }
            return Ok(file);
        }
    }
    let file = open_new_or_grow(path, trunk_file_size)?;
    // Header checks read 24 bytes ahead of each write: readahead would fill
    // the page cache with large folios of the sparse file, and every small
    // write into one then walks all its blocks (most of an upload's CPU).
    if let Err(e) = fdfs_util::sys::advise_random_reads(&file) {
        tracing::debug!(error = %e, path = %path.display(), "fadvise(RANDOM) refused");
    }
    let file = Arc::new(file);
    let mut files = fdfs_util::sync::lock(open_trunk_files());
    if files.len() >= OPEN_TRUNK_FILES {
        files.clear();
    }
    files.insert(
        path.to_path_buf(),
        KeptTrunkFile {
            file: file.clone(),
            len: trunk_file_size,
            checked: now,
        },
    );
    Ok(file)
}

/// Opens the trunk file for writing, creating it (and `data/HH/HH`) when
/// missing. A new file gets `trunk_file_size` bytes with `set_len`: sparse,
/// as the original's ftruncate; an existing shorter one grows the same way.
fn open_new_or_grow(path: &Path, trunk_file_size: u64) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = fdfs_util::sys::open_noatime(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        path,
    )?;
    if file.metadata()?.len() < trunk_file_size {
        file.set_len(trunk_file_size)?;
    }
    Ok(file)
}

/// Whether the 24 bytes at `loc` are the header of a file: a file type
/// and sizes that fit in the trunk file (`file_len` bytes). Bytes left in
/// free space (the content of a file deleted elsewhere whose delete has
/// not reached this replica, whose header here only is cleared, or of an
/// upload that failed before its header) are not: a new slot may start in
/// the middle of them. Random bytes pass this with odds of about 1e-8.
fn holds_a_header(raw: &[u8; SLOT_HEADER_LEN], loc: &TrunkLocation, file_len: u64) -> bool {
    let h = SlotHeader::decode(raw);
    (h.file_type == SLOT_TYPE_REGULAR || h.file_type == SLOT_TYPE_LINK)
        && u64::from(h.alloc_size) >= SLOT_HEADER_LEN as u64 + u64::from(h.file_size)
        && u64::from(loc.offset) + u64::from(h.alloc_size) <= file_len
}

/// The slot a file header found at `loc`'s offset on this disk spans
/// (that file's own size, which may differ from `loc`'s), or None when the
/// slot is free there. Blocking.
pub fn file_header_at(store_root: &Path, loc: &TrunkLocation) -> io::Result<Option<TrunkLocation>> {
    let file = match open_trunk_file(store_root, loc) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let raw = read_header(&file, loc)?;
    if !holds_a_header(&raw, loc, file.metadata()?.len()) {
        return Ok(None);
    }
    Ok(Some(TrunkLocation {
        size: SlotHeader::decode(&raw).alloc_size,
        ..*loc
    }))
}

/// Checks the header on disk before a write: free (or no header at all,
/// see [`holds_a_header`]) → [`Prior::Free`]; equal to `expect` →
/// [`Prior::Same`]; another file's header is refused with EEXIST
/// (rule 4), logged.
fn check_prior(
    file: &File,
    path: &Path,
    loc: &TrunkLocation,
    expect: Option<&SlotHeader>,
) -> OpResult<Prior> {
    prior_of(&read_header(file, loc)?, file, path, loc, expect)
}

/// [`check_prior`] of the header bytes `raw` read from the slot.
fn prior_of(
    raw: &[u8; SLOT_HEADER_LEN],
    file: &File,
    path: &Path,
    loc: &TrunkLocation,
    expect: Option<&SlotHeader>,
) -> OpResult<Prior> {
    if raw[0] == SLOT_TYPE_FREE {
        if let Some(h) = expect {
            if holds_tombstone_of(file, loc, h)? {
                return Ok(Prior::Deleted);
            }
        }
        return Ok(Prior::Free);
    }
    if expect.is_some_and(|h| h.encode() == *raw) {
        return Ok(Prior::Same);
    }
    if !holds_a_header(raw, loc, file.metadata()?.len()) {
        tracing::debug!(
            trunk_file = %path.display(),
            offset = loc.offset,
            "slot starts in bytes left in free space; written over"
        );
        return Ok(Prior::Free);
    }
    tracing::error!(
        trunk_file = %path.display(),
        offset = loc.offset,
        on_disk = ?SlotHeader::decode(raw),
        new = ?expect,
        "slot already holds another file; write refused"
    );
    Err(OpError::new(
        Status::EEXIST,
        format!("slot {} @{} holds another file", path.display(), loc.offset),
    ))
}

/// A slot being filled: content first ([`SlotWrite::write`], or all of it
/// kept for `finish` by [`SlotWrite::stage`]), header last
/// ([`SlotWrite::finish`]). Dropping it before `finish` leaves the slot as
/// it was (free): only content bytes nobody points at were written.
#[derive(Debug)]
pub struct SlotWrite {
    file: Arc<File>,
    path: PathBuf,
    loc: TrunkLocation,
    size: u32,
    written: u64,
    hasher: crc32fast::Hasher,
    /// The whole content, when it came in one piece ([`SlotWrite::stage`]):
    /// written with the header by `finish`.
    staged: Option<bytes::Bytes>,
    /// The slot's header as `begin` found it.
    header_before: [u8; SLOT_HEADER_LEN],
    /// When `begin` checked the slot.
    began: Instant,
    _claim: SlotClaim,
}

/// A slot write that took longer than this since `begin` checks the slot
/// again before its header goes in.
const RECHECK_AFTER: Duration = Duration::from_millis(20);

impl SlotWrite {
    /// Claims the slot `loc` for a file of `size` bytes. `expect` is the
    /// header the caller will write when it knows it already (a replica
    /// receiving a named file); an upload, whose name waits for the CRC,
    /// passes None and then only a free slot is accepted.
    pub fn begin(
        store_root: &Path,
        loc: TrunkLocation,
        size: u32,
        trunk_file_size: u64,
        expect: Option<&SlotHeader>,
    ) -> OpResult<(SlotWrite, Prior)> {
        if SLOT_HEADER_LEN as u64 + u64::from(size) > u64::from(loc.size) {
            return Err(OpError::invalid(format!(
                "file of {size} bytes does not fit a slot of {}",
                loc.size
            )));
        }
        let path = trunk_file_path(store_root, &loc);
        let claim = SlotClaim::take(&path, loc.offset)?;
        let file = open_for_write(&path, trunk_file_size)?;
        let header_before = read_header(&file, &loc)?;
        let prior = prior_of(&header_before, &file, &path, &loc, expect)?;
        Ok((
            SlotWrite {
                file,
                path,
                loc,
                size,
                written: 0,
                hasher: crc32fast::Hasher::new(),
                staged: None,
                header_before,
                began: Instant::now(),
                _claim: claim,
            },
            prior,
        ))
    }

    pub fn location(&self) -> TrunkLocation {
        self.loc
    }

    /// The next content bytes, at their place in the slot.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.written + data.len() as u64 > u64::from(self.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more content than the file size",
            ));
        }
        self.file
            .write_all_at(data, self.loc.content_offset() + self.written)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// The whole content in one piece, kept until `finish` writes it and
    /// the header with one positioned write: one system call, and one
    /// update of the trunk file's times, per upload instead of two.
    pub fn stage(&mut self, content: bytes::Bytes) -> io::Result<()> {
        if self.written != 0 || content.len() as u64 != u64::from(self.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "staged content is not the whole file",
            ));
        }
        self.hasher.update(&content);
        self.written = content.len() as u64;
        self.staged = Some(content);
        Ok(())
    }

    /// CRC32 of the content written so far.
    pub fn crc32(&self) -> u32 {
        self.hasher.clone().finalize()
    }

    /// The header of an upload once its content is written: a regular
    /// file of this slot with the CRC32 of what was written, `mtime` (the
    /// name's timestamp) and the name's `ext7`. The name is then built
    /// from the same facts ([`TrunkLocation::remote_name`]).
    pub fn upload_header(&self, mtime: u32, ext7: [u8; 7]) -> SlotHeader {
        SlotHeader {
            file_type: SLOT_TYPE_REGULAR,
            alloc_size: self.loc.size,
            file_size: self.size,
            crc32: self.crc32(),
            mtime,
            ext7,
        }
    }

    /// Writes the header, which makes the file readable. It must describe
    /// this slot and exactly the content written (size and CRC32: a replica
    /// never stores bytes that do not match their name). With `fsync` the
    /// content is made durable before the header and the header after it,
    /// so a crash never leaves a header in front of content that is not on
    /// disk.
    pub fn finish(self, header: &SlotHeader, fsync: bool) -> OpResult<()> {
        if !self.ready_to_finish(header)? {
            return Ok(());
        }
        let header_bytes = header.encode();
        match &self.staged {
            // The header goes first in the same write: a write cut short
            // after it (a full disk) puts the old header back, so the slot
            // never names content that is not there.
            Some(content) if !fsync => {
                let at = u64::from(self.loc.offset);
                if let Err((written, e)) =
                    fdfs_util::sys::write_all_vectored_at(&self.file, &[&header_bytes, content], at)
                {
                    if written > 0 {
                        self.put_header_back();
                    }
                    return Err(e.into());
                }
                return Ok(());
            }
            Some(content) => self.file.write_all_at(content, self.loc.content_offset())?,
            None => {}
        }
        if fsync {
            self.file.sync_data()?;
        }
        self.file
            .write_all_at(&header_bytes, u64::from(self.loc.offset))?;
        if fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Checks `header` against what was written, as [`SlotWrite::finish`]
    /// needs; `false` when the slot already holds exactly this file, so
    /// there is nothing left to write.
    fn ready_to_finish(&self, header: &SlotHeader) -> OpResult<bool> {
        if self.written != u64::from(self.size)
            || header.file_size != self.size
            || header.alloc_size != self.loc.size
            || header.is_free()
        {
            return Err(OpError::invalid(format!(
                "slot header {header:?} does not describe the {} bytes written to a slot of {}",
                self.written, self.loc.size
            )));
        }
        let crc = self.crc32();
        // The original puts a random number in a link's CRC32 field, so
        // only a regular file's content is held to it.
        if header.file_type == SLOT_TYPE_REGULAR && header.crc32 != crc {
            return Err(OpError::new(
                Status::EIO,
                format!(
                    "content CRC32 {crc:08x} differs from the name's {:08x}",
                    header.crc32
                ),
            ));
        }
        // Again under the claim when the content took a while (streamed
        // from the client): a slot written by another process (or a file
        // restored by hand) since `begin` is still not overwritten. Content
        // written in one go follows `begin`'s check within microseconds.
        if self.began.elapsed() > RECHECK_AFTER
            && check_prior(&self.file, &self.path, &self.loc, Some(header))? == Prior::Same
        {
            return Ok(false);
        }
        Ok(true)
    }

    /// Writes back the header `begin` found, after a write of ours that
    /// failed part way may have put its own header in.
    fn put_header_back(&self) {
        if let Err(undo) = self
            .file
            .write_all_at(&self.header_before, u64::from(self.loc.offset))
        {
            tracing::error!(error = %undo, trunk_file = %self.path.display(),
                offset = self.loc.offset, "header of a failed write not cleared");
        }
    }

    /// Whether `next` starts where this slot ends, in the same trunk file,
    /// with a tail short enough to fill with zeros in between.
    fn runs_into(&self, next: &SlotWrite) -> bool {
        Arc::ptr_eq(&self.file, &next.file)
            && u64::from(self.loc.offset) + u64::from(self.loc.size) == u64::from(next.loc.offset)
            && self.tail_len() <= ZERO_FILL_MAX_BYTES
    }

    /// Bytes of the slot after the header and content.
    fn tail_len(&self) -> usize {
        (u64::from(self.loc.size) - SLOT_HEADER_LEN as u64 - u64::from(self.size)) as usize
    }
}

/// The longest unused slot tail written over with zeros so that the slots
/// on either side of it go into one positioned write.
const ZERO_FILL_MAX_BYTES: usize = 4096;
static ZERO_FILL: [u8; ZERO_FILL_MAX_BYTES] = [0; ZERO_FILL_MAX_BYTES];

/// Most slots one positioned write of [`finish_staged`] covers.
const SLOTS_PER_WRITE_MAX: usize = 128;

/// Finishes staged writes ([`SlotWrite::stage`]), not synced, as
/// [`SlotWrite::finish`] finishes each, but slots that lie end to end in
/// one trunk file go into one positioned write (with zeros over the unused
/// tails between them): a batch of small uploads then costs one system
/// call, and one update of the trunk file's times, instead of one per
/// upload. One result per write, in order. A write cut short puts back the
/// old header of every slot it reached, and fails them all.
pub fn finish_staged(writes: Vec<(SlotWrite, SlotHeader)>) -> Vec<OpResult<()>> {
    let mut results: Vec<OpResult<()>> = Vec::with_capacity(writes.len());
    let mut due: Vec<usize> = Vec::with_capacity(writes.len());
    for (i, (write, header)) in writes.iter().enumerate() {
        results.push(match write.ready_to_finish(header) {
            Ok(true) if write.staged.is_none() => {
                Err(OpError::invalid("a slot write to finish was not staged"))
            }
            Ok(true) => {
                due.push(i);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        });
    }
    due.sort_unstable_by_key(|&i| (Arc::as_ptr(&writes[i].0.file), writes[i].0.loc.offset));
    let mut start = 0;
    while start < due.len() {
        let mut end = start + 1;
        while end < due.len()
            && end - start < SLOTS_PER_WRITE_MAX
            && writes[due[end - 1]].0.runs_into(&writes[due[end]].0)
        {
            end += 1;
        }
        if let Err(e) = write_run(&writes, &due[start..end]) {
            let e = OpError::from(e);
            for &i in &due[start..end] {
                results[i] = Err(OpError::new(e.status, e.reason.clone()));
            }
        }
        start = end;
    }
    results
}

/// One positioned write of the staged slots `run` (indexes into `writes`,
/// each slot starting where the one before ends).
fn write_run(writes: &[(SlotWrite, SlotHeader)], run: &[usize]) -> io::Result<()> {
    let headers: Vec<[u8; SLOT_HEADER_LEN]> = run.iter().map(|&i| writes[i].1.encode()).collect();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(3 * run.len());
    for (k, (&i, header)) in run.iter().zip(&headers).enumerate() {
        let write = &writes[i].0;
        parts.push(header);
        parts.push(write.staged.as_deref().unwrap_or_default());
        if k + 1 < run.len() {
            parts.push(&ZERO_FILL[..write.tail_len()]);
        }
    }
    let first = &writes[run[0]].0;
    let at = u64::from(first.loc.offset);
    fdfs_util::sys::write_all_vectored_at(&first.file, &parts, at).map_err(|(written, e)| {
        let reached = at + written as u64;
        for &i in run {
            let write = &writes[i].0;
            if u64::from(write.loc.offset) < reached {
                write.put_header_back();
            }
        }
        e
    })
}

/// Streams the next `length` body bytes of a request into `slot`, each
/// positioned write on the blocking pool. Returns the slot writer and the
/// number of writes.
pub async fn body_to_slot(
    s: &mut Session,
    slot: SlotWrite,
    length: u64,
) -> OpResult<(SlotWrite, i64)> {
    crate::ops::body_into(s, slot, length, |_| {}, SlotWrite::write).await
}

/// Marks a slot free as the original does: a header with type 0, the
/// slot's size and every other field 0, then the old file's content
/// overwritten with zeros. Idempotent; a missing trunk file is ENOENT.
pub fn clear_slot(store_root: &Path, loc: &TrunkLocation) -> io::Result<()> {
    let file = open_trunk_file(store_root, loc)?;
    let old = free_header(&file, loc, None)?;
    wipe_content(&file, loc, &old, 0)
}

fn open_trunk_file(store_root: &Path, loc: &TrunkLocation) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(trunk_file_path(store_root, loc))
}

/// Marks a tombstone's first content bytes (see [`tombstone_record`]).
const TOMBSTONE_MAGIC: &[u8; 8] = b"fdfs-rip";
/// The magic of a tombstone in the trunk server's own copy once it freed
/// the slot ([`mark_freed`]). It differs in the last byte only, so marking
/// is a one-byte write that a concurrent reader sees whole.
const FREED_TOMBSTONE_MAGIC: &[u8; 8] = b"fdfs-rif";
/// The tombstone record: magic, CRC32, mtime, ext7 of the deleted file.
pub const TOMBSTONE_RECORD_LEN: usize = 8 + 4 + 4 + 7;

/// What a delete leaves at the start of the slot's content, after a free
/// header that keeps only the deleted file's size: together they tell a
/// late replica of that file that it was deleted here ([`Prior::Deleted`]).
/// The identity is not left in the header itself because the original
/// reads a slot as free only when its CRC32, mtime and extension are 0.
fn tombstone_record(file: &SlotHeader) -> [u8; TOMBSTONE_RECORD_LEN] {
    let mut out = [0u8; TOMBSTONE_RECORD_LEN];
    out[..8].copy_from_slice(TOMBSTONE_MAGIC);
    out[8..12].copy_from_slice(&file.crc32.to_be_bytes());
    out[12..16].copy_from_slice(&file.mtime.to_be_bytes());
    out[16..].copy_from_slice(&file.ext7);
    out
}

/// Whether the slot at `loc` holds the tombstone of the file whose header
/// is `expect`.
fn holds_tombstone_of(file: &File, loc: &TrunkLocation, expect: &SlotHeader) -> io::Result<bool> {
    let mut raw = [0u8; SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN];
    if file.read_at(&mut raw, u64::from(loc.offset))? < raw.len() {
        return Ok(false);
    }
    let header = SlotHeader::decode(raw[..SLOT_HEADER_LEN].try_into().expect("24 bytes"));
    let (magic, identity) = raw[SLOT_HEADER_LEN..].split_at(TOMBSTONE_MAGIC.len());
    Ok(header.file_type == SLOT_TYPE_FREE
        && header.alloc_size == expect.alloc_size
        && header.file_size == expect.file_size
        && (magic == TOMBSTONE_MAGIC || magic == FREED_TOMBSTONE_MAGIC)
        && identity == &tombstone_record(expect)[TOMBSTONE_MAGIC.len()..])
}

/// What the trunk server's own copy of a slot holds when a FREE_SPACE (29)
/// for it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeCheck {
    /// The tombstone of a file of exactly this slot, not freed yet.
    Tombstone,
    /// A tombstone whose slot this server freed already.
    Freed,
    /// A live file's header, or the tombstone of a file in a slot of
    /// another size there: the space was handed out again since.
    InUse,
    /// Anything else: a free header without a tombstone, a slot never
    /// written here, no trunk file.
    Unknown,
}

/// Reads what the slot at `loc` holds, for [`FreeCheck`].
pub fn check_before_free(store_root: &Path, loc: &TrunkLocation) -> io::Result<FreeCheck> {
    let file = match File::open(trunk_file_path(store_root, loc)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FreeCheck::Unknown),
        Err(e) => return Err(e),
    };
    let mut raw = [0u8; SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN];
    if file.read_at(&mut raw, u64::from(loc.offset))? < raw.len() {
        return Ok(FreeCheck::Unknown);
    }
    let header = SlotHeader::decode(raw[..SLOT_HEADER_LEN].try_into().expect("24 bytes"));
    if header.file_type == SLOT_TYPE_REGULAR || header.file_type == SLOT_TYPE_LINK {
        return Ok(FreeCheck::InUse);
    }
    let magic = &raw[SLOT_HEADER_LEN..SLOT_HEADER_LEN + TOMBSTONE_MAGIC.len()];
    let kind = if magic == TOMBSTONE_MAGIC {
        FreeCheck::Tombstone
    } else if magic == FREED_TOMBSTONE_MAGIC {
        FreeCheck::Freed
    } else {
        return Ok(FreeCheck::Unknown);
    };
    if header.file_type != SLOT_TYPE_FREE {
        return Ok(FreeCheck::Unknown);
    }
    if kind == FreeCheck::Tombstone && header.alloc_size != loc.size {
        return Ok(FreeCheck::InUse);
    }
    Ok(kind)
}

/// Marks the tombstone at `loc` as freed by this trunk server: a second
/// FREE_SPACE of the same delete then finds [`FreeCheck::Freed`].
pub fn mark_freed(store_root: &Path, loc: &TrunkLocation) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(trunk_file_path(store_root, loc))?;
    let last = TOMBSTONE_MAGIC.len() - 1;
    file.write_all_at(
        &FREED_TOMBSTONE_MAGIC[last..],
        loc.content_offset() + last as u64,
    )
}

/// Marks the tombstone at `loc` freed, as [`mark_freed`] does on the trunk
/// server, when it is the tombstone of a file of exactly this slot made
/// before `freed_at` (unix seconds) and not marked yet. A member calls it
/// for each slot a pushed trunk binlog line gave back to the pool: should
/// it become trunk server, a second free of that delete is then refused
/// here too. True when marked.
pub fn mark_freed_if_older(
    store_root: &Path,
    loc: &TrunkLocation,
    freed_at: i64,
) -> io::Result<bool> {
    let file = match File::open(trunk_file_path(store_root, loc)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut raw = [0u8; SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN];
    if file.read_at(&mut raw, u64::from(loc.offset))? < raw.len() {
        return Ok(false);
    }
    let header = SlotHeader::decode(raw[..SLOT_HEADER_LEN].try_into().expect("24 bytes"));
    let record = &raw[SLOT_HEADER_LEN..];
    let made = u32::from_be_bytes(record[12..16].try_into().expect("4 bytes"));
    let unfreed_tombstone = header.file_type == SLOT_TYPE_FREE
        && header.alloc_size == loc.size
        && &record[..TOMBSTONE_MAGIC.len()] == TOMBSTONE_MAGIC;
    // Made in the very second of the free, the tombstone may be of a file
    // that took the slot after that free: leave it (the free it is due
    // is then not refused, as before this check).
    if !unfreed_tombstone || i64::from(made) >= freed_at {
        return Ok(false);
    }
    mark_freed(store_root, loc)?;
    Ok(true)
}

/// Writes a free header at `loc` the original reads as free (type, CRC32,
/// mtime and extension 0) and returns the one it replaced. With
/// `tombstone_of` (the deleted file's header), the free header keeps that
/// file's size and the tombstone record follows it.
fn free_header(
    file: &File,
    loc: &TrunkLocation,
    tombstone_of: Option<&SlotHeader>,
) -> io::Result<SlotHeader> {
    let old = SlotHeader::decode(&read_header(file, loc)?);
    let free = SlotHeader {
        file_type: SLOT_TYPE_FREE,
        alloc_size: loc.size,
        file_size: tombstone_of.map_or(0, |h| h.file_size),
        crc32: 0,
        mtime: 0,
        ext7: [0; 7],
    };
    file.write_all_at(&free.encode(), u64::from(loc.offset))?;
    if let Some(h) = tombstone_of {
        file.write_all_at(&tombstone_record(h), loc.content_offset())?;
    }
    Ok(old)
}

/// Zeroes what the `old` header says its slot held, never past the slot,
/// from `skip` bytes into the content on.
fn wipe_content(file: &File, loc: &TrunkLocation, old: &SlotHeader, skip: u64) -> io::Result<()> {
    let wipe = u64::from(old.file_size)
        .min(u64::from(loc.size).saturating_sub(SLOT_HEADER_LEN as u64))
        .min(file.metadata()?.len().saturating_sub(loc.content_offset()));
    let zeros = [0u8; WIPE_CHUNK_BYTES];
    let mut done = skip.min(wipe);
    while done < wipe {
        let n = (wipe - done).min(WIPE_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros[..n], loc.content_offset() + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Whether the slot of `name` holds its tombstone: the file was deleted
/// here.
pub fn deleted_here(store_root: &Path, name: &RemoteName) -> bool {
    let (Ok(loc), Some(expect)) = (
        location_of(name),
        SlotHeader::expected_for(name, SLOT_TYPE_REGULAR),
    ) else {
        return false;
    };
    let Ok(file) = File::open(trunk_file_path(store_root, &loc)) else {
        return false;
    };
    holds_tombstone_of(&file, &loc, &expect).unwrap_or(false)
}

/// Whether the slot of `name` is still as a delete here left it: its
/// tombstone, or a free header where no tombstone fits the slot. Anything
/// else means the slot was handed out again already: freed by another
/// member that deleted the same file at the same time.
pub fn still_deleted_here(store_root: &Path, name: &RemoteName) -> bool {
    if deleted_here(store_root, name) {
        return true;
    }
    let Ok(loc) = location_of(name) else {
        return false;
    };
    if loc.size as usize >= SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN {
        return false;
    }
    let Ok(file) = File::open(trunk_file_path(store_root, &loc)) else {
        return false;
    };
    read_header(&file, &loc).is_ok_and(|raw| raw[0] == SLOT_TYPE_FREE)
}

/// Whether a delete may leave a tombstone record in the slot's content:
/// only when no slot can start inside the record's bytes, i.e. every slot
/// (at least `slot_min_size_bytes`) is longer than header and record.
pub fn tombstones_fit(slot_min_size_bytes: u64) -> bool {
    slot_min_size_bytes >= (SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN) as u64
}

/// The local part of deleting a trunk-backed file: the slot must hold the
/// named file (ENOENT otherwise, as a read), then it is cleared, with a
/// tombstone if `tombstone`. The slot goes back to the trunk server later
/// (`sync::freer`).
pub fn delete_slot(
    store_root: &Path,
    name: &RemoteName,
    tombstone: bool,
) -> OpResult<TrunkLocation> {
    delete(store_root, name, true, tombstone)
}

/// A delete that reached this replica through sync: the header is
/// cleared (and the tombstone record written, with `tombstone`), the rest
/// of the content kept. With our storages nothing else can be in the slot
/// yet (a slot is reused only once every member has the delete); with the
/// original's, which free at once, part of it may already hold a newer
/// file that reached us first, and wiping would destroy it.
pub fn delete_replica_slot(
    store_root: &Path,
    name: &RemoteName,
    tombstone: bool,
) -> OpResult<TrunkLocation> {
    delete(store_root, name, false, tombstone)
}

fn delete(
    store_root: &Path,
    name: &RemoteName,
    wipe: bool,
    tombstone: bool,
) -> OpResult<TrunkLocation> {
    let slot = open_slot(store_root, name)?;
    let path = trunk_file_path(store_root, &slot.loc);
    // Held so that a replica writing this slot right now is not cleared
    // half-way through.
    let _claim = SlotClaim::take(&path, slot.loc.offset)?;
    let file = open_trunk_file(store_root, &slot.loc)?;
    // The header is the one the name asks for (open_slot checked it), so
    // the record goes over the start of this file's own slot.
    let tombstone_of = (tombstone
        && slot.loc.size as usize >= SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN)
        .then_some(slot.header);
    let old = without_sends(&path, slot.loc.offset, || {
        Ok(free_header(&file, &slot.loc, tombstone_of.as_ref())?)
    })?;
    if wipe {
        let skip = if tombstone_of.is_some() {
            TOMBSTONE_RECORD_LEN as u64
        } else {
            0
        };
        wipe_content(&file, &slot.loc, &old, skip)?;
    }
    Ok(slot.loc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::fileid::FileNameRecord;
    use fdfs_proto::trunk::{trunk_size_field, SLOT_TYPE_REGULAR};

    const TRUNK_FILE_BYTES: u64 = 1 << 20;

    fn loc(offset: u32, size: u32) -> TrunkLocation {
        TrunkLocation {
            store_path_index: 0,
            sub_path_high: 0x0A,
            sub_path_low: 0x1B,
            trunk_file_id: 7,
            offset,
            size,
        }
    }

    /// The name and header of `content` stored at `at`.
    fn named(at: TrunkLocation, content: &[u8], ts: u32) -> (RemoteName, SlotHeader) {
        let record = FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: ts,
            size_field: trunk_size_field(content.len() as u32, 0x1234),
            crc32: crc32fast::hash(content),
        };
        let name = at.remote_name(&record, "123.txt").unwrap();
        let header = SlotHeader::expected_for(&name, SLOT_TYPE_REGULAR).unwrap();
        (name, header)
    }

    #[test]
    fn an_upload_names_its_file_after_the_header_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(0, 256);
        let (mut w, _) = SlotWrite::begin(dir.path(), at, 5, TRUNK_FILE_BYTES, None).unwrap();
        w.write(b"hello").unwrap();
        let header = w.upload_header(1_700_000_000, *b"123.txt");
        w.finish(&header, false).unwrap();
        let record = FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: header.mtime,
            size_field: trunk_size_field(header.file_size, 7),
            crc32: header.crc32,
        };
        let name = at.remote_name(&record, "123.txt").unwrap();
        assert_eq!(header.crc32, crc32fast::hash(b"hello"));
        assert_eq!(
            open_slot(dir.path(), &name)
                .unwrap()
                .read_content()
                .unwrap(),
            b"hello"
        );
    }

    fn store(root: &Path, at: TrunkLocation, content: &[u8], ts: u32) -> RemoteName {
        let (name, header) = named(at, content, ts);
        let (mut w, prior) =
            SlotWrite::begin(root, at, content.len() as u32, TRUNK_FILE_BYTES, None).unwrap();
        assert_eq!(prior, Prior::Free);
        for part in content.chunks(3) {
            w.write(part).unwrap();
        }
        w.finish(&header, true).unwrap();
        name
    }

    /// Content handed over whole goes out with its header in one write,
    /// synced or not, and lands exactly where piecewise writes put it.
    #[test]
    fn staged_content_lands_as_piecewise_writes_do() {
        let dir = tempfile::tempdir().unwrap();
        let piecewise = store(dir.path(), loc(0, 256), b"written in pieces", 1);
        for (offset, fsync) in [(256, false), (512, true)] {
            let at = loc(offset, 256);
            let content = bytes::Bytes::from_static(b"written in one go");
            let (name, header) = named(at, &content, 2);
            let (mut w, _) =
                SlotWrite::begin(dir.path(), at, content.len() as u32, TRUNK_FILE_BYTES, None)
                    .unwrap();
            w.stage(content.clone()).unwrap();
            w.finish(&header, fsync).unwrap();
            let slot = open_slot(dir.path(), &name).unwrap();
            assert_eq!(slot.read_content().unwrap(), content);
            assert_eq!(slot.header, header);
        }
        assert_eq!(
            open_slot(dir.path(), &piecewise)
                .unwrap()
                .read_content()
                .unwrap(),
            b"written in pieces"
        );
        // Only the whole content can be staged, and only once.
        let (mut w, _) =
            SlotWrite::begin(dir.path(), loc(768, 256), 4, TRUNK_FILE_BYTES, None).unwrap();
        assert!(w.stage(bytes::Bytes::from_static(b"abc")).is_err());
        w.stage(bytes::Bytes::from_static(b"abcd")).unwrap();
        assert!(w.stage(bytes::Bytes::from_static(b"abcd")).is_err());
    }

    /// Staged writes finish together: slots end to end in one trunk file
    /// go out in one write with zeros over the tails between them (and
    /// nowhere else), every file reads back as written, and a write whose
    /// header does not describe its content fails alone, leaving its slot
    /// free.
    #[test]
    fn staged_writes_finish_together_and_each_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/0A/1B/000007");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Old bytes after where the first and the third file end.
        let mut old = vec![0u8; TRUNK_FILE_BYTES as usize];
        old[30..256].fill(0xEE);
        old[768 + 64..1024].fill(0xEE);
        std::fs::write(&path, &old).unwrap();
        let files: [(TrunkLocation, &[u8]); 4] = [
            (loc(768, 256), b"third, end to end"),
            (loc(4096, 256), b"apart"),
            (loc(0, 256), b"first"),
            (loc(256, 512), &[9u8; 400]),
        ];
        let mut writes = Vec::new();
        let mut names = Vec::new();
        for (at, content) in files {
            let (name, header) = named(at, content, 3);
            let (mut w, _) =
                SlotWrite::begin(dir.path(), at, content.len() as u32, TRUNK_FILE_BYTES, None)
                    .unwrap();
            w.stage(bytes::Bytes::copy_from_slice(content)).unwrap();
            writes.push((w, header));
            names.push(name);
        }
        let bad_at = loc(2048, 256);
        let (mut w, _) = SlotWrite::begin(dir.path(), bad_at, 3, TRUNK_FILE_BYTES, None).unwrap();
        w.stage(bytes::Bytes::from_static(b"abc")).unwrap();
        writes.insert(1, (w, named(bad_at, b"xyz", 3).1));
        let results = finish_staged(writes);
        let statuses: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.status))
            .collect();
        assert_eq!(statuses, [None, Some(Status::EIO), None, None, None]);
        for ((_, content), name) in files.iter().zip(&names) {
            assert_eq!(
                open_slot(dir.path(), name).unwrap().read_content().unwrap(),
                *content
            );
        }
        let now = std::fs::read(&path).unwrap();
        assert!(
            now[24 + 5..256].iter().all(|&b| b == 0),
            "a tail between slots is zeroed"
        );
        assert!(
            now[768 + 64..1024].iter().all(|&b| b == 0xEE),
            "the last tail is kept"
        );
        assert_eq!(
            now[2048..2048 + 24],
            [0u8; 24],
            "the refused slot stays free"
        );
    }

    #[test]
    fn written_slots_read_back_and_the_trunk_file_is_sparse_and_sized() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), loc(0, 256), b"Hello FastDFS\n", 1_700_000_000);
        let b = store(dir.path(), loc(256, 512), &[7u8; 300], 1_700_000_001);
        let path = dir.path().join("data/0A/1B/000007");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), TRUNK_FILE_BYTES);

        let slot = open_slot(dir.path(), &a).unwrap();
        assert_eq!(slot.size(), 14);
        assert_eq!(slot.content_offset(), 24);
        assert_eq!(slot.header.mtime, 1_700_000_000);
        assert_eq!(slot.read_content().unwrap(), b"Hello FastDFS\n");
        let slot = open_slot(dir.path(), &b).unwrap();
        assert_eq!(slot.content_offset(), 256 + 24);
        assert_eq!(slot.read_content().unwrap(), vec![7u8; 300]);
    }

    #[test]
    fn a_header_that_differs_from_the_name_is_enoent() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(1024, 256);
        let name = store(dir.path(), at, b"abc", 1_700_000_000);
        // Same slot, another timestamp: the name of a file no longer there.
        let (stale, _) = named(at, b"abc", 1_700_000_999);
        assert_eq!(
            open_slot(dir.path(), &stale).unwrap_err().status,
            Status::ENOENT
        );
        // A free slot, a missing trunk file, and a name that is not a trunk name.
        let (unwritten, _) = named(loc(4096, 256), b"abc", 1);
        assert_eq!(
            open_slot(dir.path(), &unwritten).unwrap_err().status,
            Status::ENOENT
        );
        let mut other = at;
        other.trunk_file_id = 8;
        let (missing, _) = named(other, b"abc", 1);
        assert_eq!(
            open_slot(dir.path(), &missing).unwrap_err().status,
            Status::ENOENT
        );
        let normal = RemoteName::parse("M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 1).unwrap();
        assert_eq!(
            open_slot(dir.path(), &normal).unwrap_err().status,
            Status::EINVAL
        );
        assert!(open_slot(dir.path(), &name).is_ok());
    }

    #[test]
    fn a_name_bigger_than_its_slot_or_a_short_trunk_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Header claims 300 bytes in a 256-byte slot: written by hand.
        let at = loc(0, 256);
        let (name, mut header) = named(at, &[1u8; 300], 5);
        header.alloc_size = 256;
        let path = dir.path().join("data/0A/1B/000007");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, header.encode()).unwrap();
        assert_eq!(
            open_slot(dir.path(), &name).unwrap_err().status,
            Status::ENOENT
        );
        // A valid header whose content the file no longer holds.
        let (name, header) = named(at, b"0123456789", 5);
        std::fs::write(&path, header.encode()).unwrap();
        assert_eq!(
            open_slot(dir.path(), &name).unwrap_err().status,
            Status::EIO
        );
    }

    #[test]
    fn a_taken_slot_is_never_overwritten_but_the_same_file_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(0, 256);
        let name = store(dir.path(), at, b"first", 10);
        let (_, same) = named(at, b"first", 10);
        let (_, other) = named(at, b"second", 11);
        let (w, prior) =
            SlotWrite::begin(dir.path(), at, 5, TRUNK_FILE_BYTES, Some(&same)).unwrap();
        assert_eq!(prior, Prior::Same);
        drop(w);
        let err = SlotWrite::begin(dir.path(), at, 6, TRUNK_FILE_BYTES, Some(&other)).unwrap_err();
        assert_eq!(err.status, Status::EEXIST);
        let err = SlotWrite::begin(dir.path(), at, 6, TRUNK_FILE_BYTES, None).unwrap_err();
        assert_eq!(err.status, Status::EEXIST);
        assert_eq!(
            open_slot(dir.path(), &name)
                .unwrap()
                .read_content()
                .unwrap(),
            b"first"
        );
    }

    #[test]
    fn one_writer_per_slot_and_an_unfinished_write_leaves_the_slot_free() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(512, 256);
        let (name, header) = named(at, b"payload", 3);
        let (mut w, _) =
            SlotWrite::begin(dir.path(), at, 7, TRUNK_FILE_BYTES, Some(&header)).unwrap();
        let busy =
            SlotWrite::begin(dir.path(), at, 7, TRUNK_FILE_BYTES, Some(&header)).unwrap_err();
        assert_eq!(busy.status, Status::EBUSY);
        w.write(b"pay").unwrap();
        drop(w);
        assert_eq!(
            open_slot(dir.path(), &name).unwrap_err().status,
            Status::ENOENT
        );
        // The claim went with the writer.
        let (mut w, prior) =
            SlotWrite::begin(dir.path(), at, 7, TRUNK_FILE_BYTES, Some(&header)).unwrap();
        assert_eq!(prior, Prior::Free);
        w.write(b"payload").unwrap();
        assert!(w.write(b"x").is_err(), "past the file size");
        w.finish(&header, false).unwrap();
        assert_eq!(
            open_slot(dir.path(), &name)
                .unwrap()
                .read_content()
                .unwrap(),
            b"payload"
        );
    }

    #[test]
    fn finish_refuses_content_that_does_not_match_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(0, 256);
        let (name, header) = named(at, b"expected", 3);
        let (mut w, _) =
            SlotWrite::begin(dir.path(), at, 8, TRUNK_FILE_BYTES, Some(&header)).unwrap();
        w.write(b"corrupt!").unwrap();
        assert_eq!(w.finish(&header, false).unwrap_err().status, Status::EIO);
        let (mut w, _) =
            SlotWrite::begin(dir.path(), at, 8, TRUNK_FILE_BYTES, Some(&header)).unwrap();
        w.write(b"expec").unwrap();
        assert_eq!(w.finish(&header, false).unwrap_err().status, Status::EINVAL);
        assert_eq!(
            open_slot(dir.path(), &name).unwrap_err().status,
            Status::ENOENT
        );
        let too_big = SlotWrite::begin(dir.path(), at, 233, TRUNK_FILE_BYTES, None).unwrap_err();
        assert_eq!(too_big.status, Status::EINVAL);
        assert!(SlotWrite::begin(dir.path(), at, 232, TRUNK_FILE_BYTES, None).is_ok());
    }

    #[test]
    fn delete_clears_the_slot_as_the_original_and_it_can_be_reused() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(256, 256);
        let neighbour = store(dir.path(), loc(0, 256), b"keep me", 1);
        let name = store(dir.path(), at, b"delete me", 2);
        assert_eq!(delete_slot(dir.path(), &name, true).unwrap(), at);
        assert_eq!(
            open_slot(dir.path(), &name).unwrap_err().status,
            Status::ENOENT
        );
        assert_eq!(
            delete_slot(dir.path(), &name, true).unwrap_err().status,
            Status::ENOENT
        );
        let bytes = std::fs::read(dir.path().join("data/0A/1B/000007")).unwrap();
        let slot = &bytes[256..512];
        // Free as the original reads it (type 0); the rest is the deleted
        // file's, as a tombstone.
        let left = SlotHeader::decode(slot[..SLOT_HEADER_LEN].try_into().unwrap());
        assert_eq!(left.file_type, SLOT_TYPE_FREE);
        assert_eq!(left.alloc_size, 256);
        assert_eq!(left.file_size, 9);
        // What the original checks before it writes a slot: CRC32, mtime
        // and extension 0.
        assert_eq!((left.crc32, left.mtime, left.ext7), (0, 0, [0; 7]));
        let record = &slot[SLOT_HEADER_LEN..SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN];
        assert_eq!(&record[..8], TOMBSTONE_MAGIC);
        assert!(
            slot[SLOT_HEADER_LEN + TOMBSTONE_RECORD_LEN..]
                .iter()
                .all(|&b| b == 0),
            "content wiped"
        );
        assert_eq!(
            open_slot(dir.path(), &neighbour)
                .unwrap()
                .read_content()
                .unwrap(),
            b"keep me"
        );
        let again = store(dir.path(), at, b"new", 3);
        assert_eq!(
            open_slot(dir.path(), &again)
                .unwrap()
                .read_content()
                .unwrap(),
            b"new"
        );
        // Clearing a never-written slot of an existing file is harmless.
        clear_slot(dir.path(), &loc(4096, 256)).unwrap();
    }

    /// The race of issue 15 point 4 on a replica: the trunk server freed
    /// a file's slot (deleted on another member) and handed part of it
    /// out again; the new file reaches this replica before the delete.
    #[test]
    fn a_replica_writes_over_stale_content_and_its_late_delete_keeps_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let old = store(dir.path(), loc(0, 4096), &[0xAB; 4000], 1);
        // A new slot starting inside the old file's content, over bytes
        // that are no header (first byte not 0).
        let at = loc(1024, 512);
        let (name, header) = named(at, b"new file", 2);
        let (mut w, prior) =
            SlotWrite::begin(dir.path(), at, 8, TRUNK_FILE_BYTES, Some(&header)).unwrap();
        assert_eq!(prior, Prior::Free);
        w.write(b"new file").unwrap();
        w.finish(&header, false).unwrap();
        // The old file's header is still a header: refused (rule 4).
        let (_, h0) = named(loc(0, 512), b"other", 3);
        let e =
            SlotWrite::begin(dir.path(), loc(0, 512), 5, TRUNK_FILE_BYTES, Some(&h0)).unwrap_err();
        assert_eq!(e.status, Status::EEXIST);
        // The old file's delete arrives: its header goes, the new file stays.
        delete_replica_slot(dir.path(), &old, true).unwrap();
        assert_eq!(
            open_slot(dir.path(), &old).unwrap_err().status,
            Status::ENOENT
        );
        assert_eq!(
            open_slot(dir.path(), &name)
                .unwrap()
                .read_content()
                .unwrap(),
            b"new file"
        );
    }

    /// A delete leaves a tombstone: type 0 (free for every reader) with
    /// the file's own fields, so that a late replica of that file is
    /// recognised and not written back, while any other file may use the
    /// slot.
    #[test]
    fn a_deleted_file_is_not_written_back_by_a_late_replica() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(512, 512);
        let (name, header) = named(at, b"deleted here", 1_700_000_000);
        let (mut w, _) =
            SlotWrite::begin(dir.path(), at, 12, TRUNK_FILE_BYTES, Some(&header)).unwrap();
        w.write(b"deleted here").unwrap();
        w.finish(&header, false).unwrap();
        delete_replica_slot(dir.path(), &name, true).unwrap();
        let (_, prior) =
            SlotWrite::begin(dir.path(), at, 12, TRUNK_FILE_BYTES, Some(&header)).unwrap();
        assert_eq!(prior, Prior::Deleted);
        let (_, other) = named(at, b"another file", 1_700_000_001);
        let (_, prior) =
            SlotWrite::begin(dir.path(), at, 12, TRUNK_FILE_BYTES, Some(&other)).unwrap();
        assert_eq!(prior, Prior::Free);
        let (_, prior) = SlotWrite::begin(dir.path(), at, 12, TRUNK_FILE_BYTES, None).unwrap();
        assert_eq!(prior, Prior::Free);
    }

    /// The freer gives a slot back only while it still shows the delete.
    #[test]
    fn a_slot_in_use_again_no_longer_shows_its_delete() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(256, 256);
        let name = store(dir.path(), at, b"deleted twice", 1);
        assert!(!still_deleted_here(dir.path(), &name), "live");
        delete_slot(dir.path(), &name, true).unwrap();
        assert!(still_deleted_here(dir.path(), &name));
        store(dir.path(), at, b"reused", 2);
        assert!(!still_deleted_here(dir.path(), &name), "reused");
    }

    /// A delete waits while a sync worker sends the slot's content: the
    /// peer has the create answered before the delete is acknowledged.
    #[test]
    fn a_delete_waits_for_a_send_of_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let at = loc(0, 256);
        let name = store(dir.path(), at, b"being sent", 1);
        let sending = SendGuard::register(dir.path(), &at);
        let root = dir.path().to_path_buf();
        let deleter =
            std::thread::spawn(move || delete_replica_slot(&root, &name, true).map(|_| ()));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!deleter.is_finished(), "the delete waits for the send");
        drop(sending);
        deleter.join().unwrap().unwrap();
    }

    #[test]
    fn a_trunk_file_deleted_on_disk_is_made_again_once_its_kept_descriptor_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), loc(0, 256), b"first", 1);
        let path = dir.path().join("data/0A/1B/000007");
        std::fs::remove_file(&path).unwrap();
        // As if the descriptor had been trusted for its whole time.
        for kept in fdfs_util::sync::lock(open_trunk_files()).values_mut() {
            if let Some(then) = kept.checked.checked_sub(TRUST_KEPT_TRUNK_FILE) {
                kept.checked = then;
            }
        }
        let name = store(dir.path(), loc(256, 256), b"second", 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), TRUNK_FILE_BYTES);
        assert_eq!(
            open_slot(dir.path(), &name)
                .unwrap()
                .read_content()
                .unwrap(),
            b"second"
        );
    }

    #[test]
    fn an_existing_shorter_trunk_file_grows_and_a_longer_one_keeps_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/0A/1B/000007");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, [0u8; 10]).unwrap();
        store(dir.path(), loc(0, 256), b"x", 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), TRUNK_FILE_BYTES);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(2 * TRUNK_FILE_BYTES)
            .unwrap();
        store(dir.path(), loc(256, 256), b"y", 1);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            2 * TRUNK_FILE_BYTES
        );
    }
}
