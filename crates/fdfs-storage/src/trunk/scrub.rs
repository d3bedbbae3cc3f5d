//! TRUNK_SCRUB (243, ours): the member side of `fdfs trunk check`. SCRUB compares this disk's slot headers with this storage's copy of the trunk binlog; PROBE tells whether slots hold files here; RELEASE and FREE are the repairs, on the trunk server only.
//!
//! The tool decides; this side only answers for its own disk and binlogs,
//! and re-checks what it can before a repair: RELEASE takes only a slot
//! quarantined exactly as named, FREE only an allocated slot, and an
//! outstanding allocation only once it is older than network_timeout.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::trunk::{SlotHeader, TrunkLocation, SLOT_HEADER_LEN, SLOT_TYPE_FREE};
use fdfs_proto::trunk_binlog::slot_end;
use fdfs_proto::trunk_scrub::{Listed, Mismatch, Probe, ScrubAnswer, ScrubOp, ScrubReq};
use fdfs_proto::Status;

use super::role::SpaceApi;
use crate::error::{OpError, OpResult};
use crate::ops::{blocking, check_group, read_small_body};
use crate::session::{Reply, Session};
use crate::state::Storage;

/// TRUNK_SCRUB (243).
pub async fn trunk_scrub(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = ScrubReq::decode(&body)?;
    let storage = s.storage.clone();
    check_group(&storage, &req.group)?;
    if !storage.params().trunk.use_trunk_file {
        return Err(OpError::invalid("trunk files are disabled"));
    }
    if matches!(req.op, ScrubOp::Release | ScrubOp::Free) {
        // Repairs change the pool: only who holds the cluster secret.
        crate::ops::sync_recv::require_cluster_proof(s)?;
        if !storage.trunk.serving() {
            return Err(OpError::invalid("this storage is not the trunk server"));
        }
    }
    let st = storage.clone();
    let space = blocking(move || Ok(st.trunk.open_space(&st)?)).await?;
    let mut out = BytesMut::new();
    match req.op {
        ScrubOp::Scrub => {
            let answer = blocking(move || scrub(&storage, &space)).await?;
            answer.encode(&mut out);
        }
        ScrubOp::Probe => {
            let slots = req.slots;
            let probes = blocking(move || probe(&storage, &space, &slots)).await?;
            Probe::encode_all(&probes, &mut out);
        }
        ScrubOp::Release => {
            for slot in &req.slots {
                let r = space.release_quarantine(slot);
                out.extend_from_slice(&[status_of(r, slot, "release")]);
            }
        }
        ScrubOp::Free => {
            let timeout = network_timeout(&storage);
            let slots = req.slots;
            let statuses = blocking(move || {
                Ok(slots
                    .iter()
                    .map(|slot| status_of(space.free_leaked(slot, timeout), slot, "free"))
                    .collect::<Vec<u8>>())
            })
            .await?;
            out.extend_from_slice(&statuses);
        }
    }
    Ok(Reply::Body(out.to_vec()))
}

fn network_timeout(storage: &Storage) -> Duration {
    Duration::from_secs(storage.conf.network_timeout_secs.max(1))
}

fn status_of(r: io::Result<()>, slot: &TrunkLocation, what: &str) -> u8 {
    match r {
        Ok(()) => {
            tracing::info!(slot = ?slot, "trunk check: {what} done");
            0
        }
        Err(e) => {
            tracing::warn!(slot = ?slot, error = %e, "trunk check: {what} refused");
            e.raw_os_error()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| *n != 0)
                .unwrap_or(Status::EIO.0)
        }
    }
}

/// The header at `at` is a free one of exactly `at.size` bytes.
fn cleared_header(storage: &Storage, at: &TrunkLocation) -> bool {
    if (at.size as usize) < SLOT_HEADER_LEN {
        return false;
    }
    let Some(root) = storage.paths.get(usize::from(at.store_path_index)) else {
        return false;
    };
    let Ok(f) = File::open(super::slot::trunk_file_path(&root.root, at)) else {
        return false;
    };
    super::slot::read_header(&f, at).is_ok_and(|raw| {
        let h = SlotHeader::decode(&raw);
        h.file_type == SLOT_TYPE_FREE && h.alloc_size == at.size
    })
}

fn scrub(storage: &Arc<Storage>, space: &Arc<dyn SpaceApi>) -> OpResult<ScrubAnswer> {
    let serving = storage.trunk.serving();
    let report = space.scrub_local()?;
    let mismatches = report
        .chain_mismatches
        .iter()
        .map(|m| Mismatch {
            at: m.at,
            cleared: cleared_header(storage, &m.at),
            reason: m.reason.clone(),
        })
        .collect();
    let (quarantined, unconfirmed) = if serving {
        let q = space
            .quarantined()
            .into_iter()
            .map(|s| (s, report.quarantine_clean.contains(&s)))
            .collect();
        let u = space
            .unconfirmed_ages()
            .into_iter()
            .map(|(s, age)| (s, age.as_secs()))
            .collect();
        (q, u)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(ScrubAnswer {
        serving,
        network_timeout_secs: storage.conf.network_timeout_secs,
        trunk_files: report.trunk_files as u64,
        headers_read: report.headers_read,
        missing_files: report.missing_files.len() as u64,
        free_with_header: Listed::capped(report.free_with_header),
        mismatches: Listed::capped(mismatches),
        quarantined: Listed::capped(quarantined),
        unconfirmed: Listed::capped(unconfirmed),
    })
}

fn probe(
    storage: &Storage,
    space: &Arc<dyn SpaceApi>,
    slots: &[TrunkLocation],
) -> OpResult<Vec<Probe>> {
    let live = live_trunk_names(storage)?;
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        if usize::from(slot.store_path_index) >= storage.paths.len() {
            return Err(OpError::invalid(format!(
                "store path index {} out of range",
                slot.store_path_index
            )));
        }
        let files_on_disk = space.scrub_range(slot)?.len();
        out.push(Probe {
            files_on_disk: u32::try_from(files_on_disk).unwrap_or(u32::MAX),
            live_names: live.overlapping(slot),
        });
    }
    Ok(out)
}

/// Trunk slots named by files this storage's binlog created and did not
/// delete, keyed by (store path, trunk file id, offset) → size.
pub(crate) struct LiveNames(BTreeMap<(u8, u32, u32), u32>);

impl LiveNames {
    pub(crate) fn overlapping(&self, slot: &TrunkLocation) -> u32 {
        let (p, id) = (slot.store_path_index, slot.trunk_file_id);
        let end = slot_end(slot);
        // Slots of one trunk file never overlap each other, so only the
        // one starting at or before the slot can reach into it from below.
        let from = self
            .0
            .range((p, id, 0)..=(p, id, slot.offset))
            .next_back()
            .map_or(slot.offset, |(k, _)| k.2);
        let n = self
            .0
            .range((p, id, from)..=(p, id, u32::MAX))
            .take_while(|(k, _)| u64::from(k.2) < end)
            .filter(|(k, size)| u64::from(k.2) + u64::from(**size) > u64::from(slot.offset))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// How long a slot found holding a header that no file name may have is
/// left alone before it is checked ([`clear_orphan_header`]): by then a
/// file being written into the slot here meanwhile (a replica) has its
/// binlog line, which is written right after the slot.
pub(crate) const ORPHAN_CHECK_AFTER: Duration = Duration::from_secs(5);

/// Clears the file header in `loc`'s slot on this disk when no live name
/// of this storage's binlog names it; true when it did. Such a header is
/// what an upload here left when a crash cut it between its slot write and
/// its confirm (names are handed out after both, and every file written
/// here, uploaded or replicated, has its binlog line right after its
/// slot): the slot was then freed and handed out again, and the header
/// would refuse every upload and replica into it for good. A header a live
/// name does name is a file: kept. Blocking.
pub(crate) fn clear_orphan_header(
    storage: &Storage,
    root: &Path,
    loc: &TrunkLocation,
) -> io::Result<bool> {
    let Some(found) = super::slot::file_header_at(root, loc)? else {
        return Ok(false);
    };
    let live = live_trunk_names(storage)?;
    if live.overlapping(&found) > 0 || live.overlapping(loc) > 0 {
        return Ok(false);
    }
    tracing::warn!(slot = ?found, "clearing a trunk slot header that no file name has (an upload cut short by a crash)");
    super::slot::clear_slot(root, &found)?;
    Ok(true)
}

/// Reads every `data/sync/binlog.NNN`: CREATE records of trunk names add
/// a slot, DELETE records remove it (lower case: replicated ones, too),
/// except our own deletes whose slot the freer has not given back yet
/// (`sync::frees_unsent_from`): a repair must not free those, or the
/// freer would free them a second time.
pub(crate) fn live_trunk_names(storage: &Storage) -> io::Result<LiveNames> {
    let dir = storage.data_dir().join("sync");
    let unsent_from = crate::sync::frees_unsent_from(storage);
    let mut live = BTreeMap::new();
    for index in 0..=storage.binlog.current_index() {
        read_binlog(
            &dir.join(format!("binlog.{index:03}")),
            index,
            storage.paths.len(),
            unsent_from,
            &mut live,
        )?;
    }
    Ok(LiveNames(live))
}

fn read_binlog(
    path: &Path,
    index: u32,
    store_paths: usize,
    unsent_from: (u32, u64),
    live: &mut BTreeMap<(u8, u32, u32), u32>,
) -> io::Result<()> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut offset = 0u64;
    for line in BufReader::new(f).split(b'\n') {
        let line = line?;
        let at = (index, offset);
        offset += line.len() as u64 + 1;
        let Some(rec) = std::str::from_utf8(&line)
            .ok()
            .and_then(crate::binlog::parse_line)
        else {
            continue;
        };
        let Some(loc) = RemoteName::parse(&rec.filename, store_paths)
            .ok()
            .and_then(|n| TrunkLocation::from_remote(&n))
        else {
            continue;
        };
        let key = (loc.store_path_index, loc.trunk_file_id, loc.offset);
        match rec.op {
            'C' | 'c' => {
                live.insert(key, loc.size);
            }
            'D' if at >= unsent_from => {}
            'D' | 'd' => {
                live.remove(&key);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(offset: u32, size: u32) -> TrunkLocation {
        TrunkLocation {
            store_path_index: 0,
            sub_path_high: 0,
            sub_path_low: 0,
            trunk_file_id: 1,
            offset,
            size,
        }
    }

    #[test]
    fn live_names_overlap_by_byte_range() {
        let mut m = BTreeMap::new();
        m.insert((0, 1, 0), 256);
        m.insert((0, 1, 512), 256);
        let live = LiveNames(m);
        assert_eq!(live.overlapping(&slot(256, 256)), 0);
        assert_eq!(live.overlapping(&slot(255, 2)), 1);
        assert_eq!(live.overlapping(&slot(0, 1024)), 2);
        assert_eq!(live.overlapping(&slot(600, 10)), 1);
        assert_eq!(live.overlapping(&slot(768, 10)), 0);
        assert_eq!(
            live.overlapping(&TrunkLocation {
                trunk_file_id: 2,
                ..slot(0, 1024)
            }),
            0
        );
    }
}
