//! One recovery worker: downloads the files its share of the fetched
//! binlog (`.binlog.recovery.N`) names from the peer, keeps a copy only
//! when it matches its file ID (size and CRC32 where the name encodes
//! them), and saves its place in `.recovery.mark.N` every
//! [`MARK_EVERY_RECORDS`] records, so a killed rebuild resumes there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fdfs_proto::trunk::{SlotHeader, TrunkLocation, SLOT_TYPE_REGULAR};

use crate::trunk::slot::{Prior, SlotWrite};
use std::time::Duration;

use bytes::BytesMut;
use fdfs_client::{ClientError, Conn, StorageClient};
use fdfs_proto::fileid::{FileKind, RemoteName};
use fdfs_proto::tracker_msg::GroupFileReq;
use fdfs_proto::StorageCmd;
use tokio::io::AsyncWriteExt;

use super::{part_binlog_path, part_mark_path, CONNECT_TIMEOUT};
use crate::binlog::parse_line;
use crate::state::{write_atomic, Storage};

/// A worker saves its binlog offset after this many records.
pub const MARK_EVERY_RECORDS: u64 = 100;
/// Copies up to this size are checked in memory; larger ones go through a
/// temporary file, so memory stays bounded whatever the file size.
const IN_MEMORY_COPY_BYTES: u64 = 1024 * 1024;

/// What a worker did in this run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub restored: u64,
    pub bytes: u64,
    /// Deleted on the peer since (ENOENT) or refused by it.
    pub gone: u64,
    /// The peer's copy does not match its file ID: not restored.
    pub mismatched: u64,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.restored += o.restored;
        self.bytes += o.bytes;
        self.gone += o.gone;
        self.mismatched += o.mismatched;
    }
}

/// True when `content` of `size` bytes with `crc` may be the file `name`
/// names: for a normal file the size and CRC32 in the name must match;
/// appender, slave and trunk names do not encode their own content.
pub fn matches_name(name: &RemoteName, size: u64, crc: u32) -> bool {
    let Some(record) = name.record() else {
        return false;
    };
    if name.kind() != FileKind::Normal || record.is_trunk() {
        return true;
    }
    record.file_size() == Some(size) && record.crc32 == crc
}

pub(super) fn read_mark(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| crate::state::ini_value(&t, "binlog_offset")?.parse().ok())
        .unwrap_or(0)
}

async fn save_mark(path: PathBuf, offset: usize, records: u64) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        write_atomic(
            &path,
            format!("binlog_offset={offset}\nrecords_done={records}\n").as_bytes(),
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("recovery mark: {e}"))
}

/// What became of one record.
enum Outcome {
    Restored(u64),
    Gone,
    Mismatched,
}

pub async fn restore_part(
    storage: &Arc<Storage>,
    index: usize,
    n: usize,
    peer: &str,
) -> Result<Tally, String> {
    let data = storage.paths[index].data_dir();
    let progress = &storage.recovery.progress;
    let text = std::fs::read(part_binlog_path(&data, n)).map_err(|e| e.to_string())?;
    let mark_path = part_mark_path(&data, n);
    let mut offset = read_mark(&mark_path).min(text.len());
    if offset > 0 {
        tracing::info!(
            path = index,
            worker = n,
            offset,
            "disk recovery resumes at its mark"
        );
    }
    let tmp = storage.paths[index].tmp_dir().join(format!("recovery.{n}"));
    let timeout = Duration::from_secs(storage.conf.network_timeout_secs.max(1));
    let mut conn: Option<Conn> = None;
    let mut tally = Tally::default();
    let mut records = 0u64;
    while offset < text.len() {
        let end = text[offset..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| offset + p + 1)
            .unwrap_or(text.len());
        let line = String::from_utf8_lossy(&text[offset..end]).into_owned();
        let name = parse_line(&line)
            .and_then(|r| RemoteName::parse(&r.filename, storage.paths.len()).ok())
            .filter(|name| usize::from(name.store_path_index) == index);
        if let Some(name) = name {
            if conn.as_ref().is_none_or(|c| !c.is_in_step()) {
                conn = Some(
                    Conn::connect_from(peer, storage.client_bind_ip(), CONNECT_TIMEOUT, timeout)
                        .await
                        .map_err(|e| format!("peer {peer}: {e}"))?,
                );
            }
            let c = conn.as_mut().expect("connected above");
            let timestamp = parse_line(&line).map(|r| r.timestamp).unwrap_or(0);
            let relinked = match parse_line(&line) {
                Some(r) if matches!(r.op, 'L' | 'l') => relink(storage, &name, &r.extra).await,
                _ => None,
            };
            let outcome = match relinked {
                Some(outcome) => outcome,
                None => restore_one(storage, c, &name, timestamp, &tmp).await?,
            };
            match outcome {
                Outcome::Restored(bytes) => {
                    tally.restored += 1;
                    tally.bytes += bytes;
                    progress.record_done(Some(bytes));
                }
                Outcome::Gone => {
                    tally.gone += 1;
                    progress.record_done(None);
                }
                Outcome::Mismatched => {
                    tracing::error!(file = %name, %peer, "disk recovery: the peer's copy does not match its file ID, not restored");
                    tally.mismatched += 1;
                    progress.record_done(None);
                }
            }
        } else {
            progress.record_done(None);
        }
        offset = end;
        records += 1;
        if records.is_multiple_of(MARK_EVERY_RECORDS) {
            save_mark(mark_path.clone(), offset, records).await?;
        }
    }
    save_mark(mark_path, offset, records).await?;
    if let Some(c) = conn {
        c.quit().await;
    }
    Ok(tally)
}

/// A slave stored as a link (`L <link> <target>`): when its target is
/// already restored here, the link is made again instead of a copy being
/// downloaded. None: not possible (the target is restored by another
/// worker later, or lies elsewhere), download the content instead. A
/// trunk link (an `L` slot, whose download would give its target's bytes)
/// is always made again.
async fn relink(storage: &Arc<Storage>, link: &RemoteName, target: &str) -> Option<Outcome> {
    if TrunkLocation::from_remote(link).is_some() {
        // A link slot of the original's CREATE_LINK: the same slot again,
        // whether or not another worker has restored its target yet.
        let (st, link, target) = (storage.clone(), link.clone(), target.to_string());
        return tokio::task::spawn_blocking(move || {
            match crate::trunk::slot::write_link_slot(&st, &link, &target, false) {
                Ok(_) => Some(Outcome::Restored(0)),
                Err(e) => {
                    // The fallback's download then reports a mismatch;
                    // this is why.
                    tracing::warn!(file = %link, error = %e.reason, "disk recovery: link slot not made");
                    None
                }
            }
        })
        .await
        .ok()
        .flatten();
    }
    let target = RemoteName::parse(target, storage.paths.len()).ok()?;
    let root_of = |n: &RemoteName| {
        storage
            .paths
            .get(usize::from(n.store_path_index))
            .map(|p| p.root.clone())
    };
    let target_path = crate::store::file_path(&root_of(&target)?, &target.relative_path());
    let link_path = crate::store::file_path(&root_of(link)?, &link.relative_path());
    tokio::task::spawn_blocking(move || {
        std::fs::metadata(&target_path).ok()?;
        match crate::store::place_in_tree(&link_path, || {
            std::os::unix::fs::symlink(&target_path, &link_path)
        }) {
            Ok(()) => Some(Outcome::Restored(0)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(Outcome::Restored(0)),
            Err(_) => None,
        }
    })
    .await
    .ok()
    .flatten()
}

/// Fetches one file (or a `-m` file's metadata) from the peer into place.
/// Only connection failures are errors: they end this run, which resumes
/// from the last mark.
async fn restore_one(
    storage: &Storage,
    conn: &mut Conn,
    name: &RemoteName,
    timestamp: i64,
    tmp: &Path,
) -> Result<Outcome, String> {
    let remote = name.to_string();
    let dest = crate::store::file_path(
        &storage.paths[usize::from(name.store_path_index)].root,
        &name.relative_path(),
    );
    let peer_error = |e: ClientError| match e {
        ClientError::Status(_) => Ok(Outcome::Gone),
        e => Err(format!("fetching {remote}: {e}")),
    };
    if let Some(base) = remote.strip_suffix("-m") {
        // A `-m` file is not a data file: its content is the metadata of
        // the data file, which GET_METADATA returns in the file's encoding.
        let mut b = BytesMut::new();
        GroupFileReq {
            group: storage.group.clone(),
            remote: base.to_string(),
        }
        .encode(&mut b);
        let body = match conn.call(StorageCmd::GetMetadata.into(), &b).await {
            Ok(body) => body,
            Err(e) => return peer_error(e),
        };
        if body.is_empty() {
            return Ok(Outcome::Gone);
        }
        let size = body.len() as u64;
        let tmp = tmp.to_path_buf();
        return place(
            move || {
                std::fs::write(&tmp, &body)?;
                Ok(tmp)
            },
            dest,
            timestamp,
        )
        .await
        .map(|_| Outcome::Restored(size));
    }
    let mut client = StorageClient::new(conn);
    let len = match client.download_start(&storage.group, &remote, 0, 0).await {
        Ok(len) => len,
        Err(e) => return peer_error(e),
    };
    if let Some(loc) = TrunkLocation::from_remote(name) {
        return restore_into_slot(storage, &mut client, name, loc, len).await;
    }
    let tmp = tmp.to_path_buf();
    if len <= IN_MEMORY_COPY_BYTES {
        // Small files (most): checked in memory, one disk hop to place.
        let mut content = Vec::with_capacity(len as usize);
        client
            .download_body(&mut content, len)
            .await
            .map_err(|e| format!("download of {remote}: {e}"))?;
        if !matches_name(name, len, crc32fast::hash(&content)) {
            return Ok(Outcome::Mismatched);
        }
        return place(
            move || {
                std::fs::write(&tmp, &content)?;
                Ok(tmp)
            },
            dest,
            timestamp,
        )
        .await
        .map(|_| Outcome::Restored(len));
    }
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| e.to_string())?;
    client
        .download_body(&mut file, len)
        .await
        .map_err(|e| format!("download of {remote}: {e}"))?;
    // tokio's file finishes its last write in the background: wait for it
    // before the content is read back.
    file.flush().await.map_err(|e| e.to_string())?;
    drop(file);
    let (check_name, tmp_path) = (name.clone(), tmp.clone());
    let matches = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let (size, crc) = crc_of_file(&tmp_path)?;
        Ok(matches_name(&check_name, size, crc))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if !matches {
        let _ = std::fs::remove_file(&tmp);
        return Ok(Outcome::Mismatched);
    }
    place(move || Ok(tmp), dest, timestamp)
        .await
        .map(|_| Outcome::Restored(len))
}

/// A trunk name's content, fetched whole (it fits its slot), goes into
/// our copy of its trunk file at the name's slot, header last, as a
/// replica receives it. A slot that already holds the file counts as
/// restored; one that holds another file is left alone (mismatch, logged).
async fn restore_into_slot(
    storage: &Storage,
    client: &mut StorageClient<'_>,
    name: &RemoteName,
    loc: TrunkLocation,
    len: u64,
) -> Result<Outcome, String> {
    let remote = name.to_string();
    let Some(expect) = SlotHeader::expected_for(name, SLOT_TYPE_REGULAR) else {
        return Ok(Outcome::Mismatched);
    };
    if len != u64::from(expect.file_size) {
        return Ok(Outcome::Mismatched);
    }
    let mut content = Vec::with_capacity(len as usize);
    client
        .download_body(&mut content, len)
        .await
        .map_err(|e| format!("download of {remote}: {e}"))?;
    if crc32fast::hash(&content) != expect.crc32 {
        return Ok(Outcome::Mismatched);
    }
    let root = storage.paths[usize::from(name.store_path_index)]
        .root
        .clone();
    let trunk_file_size = storage.params().trunk.trunk_file_size_bytes;
    tokio::task::spawn_blocking(move || -> Result<Outcome, String> {
        match SlotWrite::begin(&root, loc, expect.file_size, trunk_file_size, Some(&expect)) {
            Ok((_, Prior::Same)) => Ok(Outcome::Restored(len)),
            // Deleted here since the peer listed it: its delete reaches
            // the peer too.
            Ok((_, Prior::Deleted)) => Ok(Outcome::Mismatched),
            Ok((mut w, Prior::Free)) => {
                w.write(&content).map_err(|e| e.to_string())?;
                w.finish(&expect, false).map_err(|e| e.reason)?;
                Ok(Outcome::Restored(len))
            }
            Err(e) if e.status == fdfs_proto::Status::EEXIST => Ok(Outcome::Mismatched),
            Err(e) => Err(format!("writing {remote} into its slot: {}", e.reason)),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Size and CRC32 of a file, read in bounded chunks.
fn crc_of_file(path: &Path) -> std::io::Result<(u64, u32)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// Moves the file `write` prepared into `dest` with the binlog timestamp
/// as its mtime (the original does the same), on the blocking pool.
async fn place(
    write: impl FnOnce() -> std::io::Result<PathBuf> + Send + 'static,
    dest: PathBuf,
    timestamp: i64,
) -> Result<(), String> {
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let tmp = write()?;
        if timestamp > 0 {
            let when = std::time::UNIX_EPOCH + Duration::from_secs(timestamp as u64);
            std::fs::File::options()
                .write(true)
                .open(&tmp)?
                .set_modified(when)?;
        }
        crate::store::place_in_tree(&dest, || std::fs::rename(&tmp, &dest))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("placing a recovered file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::fileid::{normal_size_field, FileNameRecord};

    fn normal_name(content: &[u8]) -> RemoteName {
        let record = FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: 1_700_000_000,
            size_field: normal_size_field(content.len() as u64, 0),
            crc32: crc32fast::hash(content),
        };
        RemoteName::parse(&format!("M00/00/00/{}123.txt", record.encode()), 1).unwrap()
    }

    #[test]
    fn a_copy_matches_its_name_only_with_the_same_size_and_crc() {
        let name = normal_name(b"hello world");
        assert!(matches_name(&name, 11, crc32fast::hash(b"hello world")));
        assert!(!matches_name(&name, 11, crc32fast::hash(b"hello WORLD")));
        assert!(!matches_name(&name, 10, crc32fast::hash(b"hello worl")));
    }
}
