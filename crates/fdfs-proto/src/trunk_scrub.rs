//! TRUNK_SCRUB (243, a fastdfs-rs extension) bodies: `fdfs trunk check`
//! asks each member of a group to compare the slot headers on its disk with
//! its copy of the trunk binlog, and the trunk server to release proven
//! free quarantined slots and free leaked ones. Sans-IO.
//!
//! Request: group (16) | op (1) | slots (FDFSTrunkInfoBuff, 15 each).
//!
//! | op | slots | answer |
//! |----|-------|--------|
//! | 0 SCRUB | none | [`ScrubAnswer`] |
//! | 1 PROBE | 1..=[`MAX_SLOTS`] | per slot: file headers on disk (u32), live names in the storage binlog (u32) |
//! | 2 RELEASE | 1..=[`MAX_SLOTS`] | per slot: status (1), 0 = released from quarantine |
//! | 3 FREE | 1..=[`MAX_SLOTS`] | per slot: status (1), 0 = freed |
//!
//! A C storage answers EINVAL (unknown command).

use bytes::{BufMut, BytesMut};

use crate::trunk::{TrunkLocation, TRUNK_INFO_BUFF_LEN};
use crate::wire::{put_fixed, Reader};
use crate::{ProtoError, GROUP_NAME_MAX_LEN};

/// Most slots in one request: keeps a request under the storage's
/// smallest network buffer (64 KiB).
pub const MAX_SLOTS: usize = 2048;
/// Most entries of each list in a [`ScrubAnswer`]; the totals still count
/// all of them.
pub const MAX_LIST: usize = 4096;
/// Longest mismatch reason text sent, bytes.
const MAX_REASON_BYTES: usize = 200;

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrubOp {
    Scrub = 0,
    Probe = 1,
    Release = 2,
    Free = 3,
}

impl TryFrom<u8> for ScrubOp {
    type Error = ProtoError;
    fn try_from(v: u8) -> Result<Self, ProtoError> {
        Ok(match v {
            0 => ScrubOp::Scrub,
            1 => ScrubOp::Probe,
            2 => ScrubOp::Release,
            3 => ScrubOp::Free,
            other => return Err(ProtoError::invalid(format!("trunk scrub op {other}"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubReq {
    pub group: String,
    pub op: ScrubOp,
    pub slots: Vec<TrunkLocation>,
}

impl ScrubReq {
    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.group.as_bytes(), GROUP_NAME_MAX_LEN);
        buf.put_u8(self.op as u8);
        for s in &self.slots {
            buf.put_slice(&s.to_info_buff());
        }
    }

    /// SCRUB takes no slots, the other ops 1 to [`MAX_SLOTS`].
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let head = GROUP_NAME_MAX_LEN + 1;
        if body.len() < head || !(body.len() - head).is_multiple_of(TRUNK_INFO_BUFF_LEN) {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let op = ScrubOp::try_from(r.u8()?)?;
        let n = r.remaining() / TRUNK_INFO_BUFF_LEN;
        let bad_count = match op {
            ScrubOp::Scrub => n != 0,
            _ => n == 0 || n > MAX_SLOTS,
        };
        if bad_count {
            return Err(ProtoError::invalid(format!(
                "trunk scrub {op:?} with {n} slots"
            )));
        }
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push(TrunkLocation::from_info_buff(
                r.bytes(TRUNK_INFO_BUFF_LEN)?,
            )?);
        }
        Ok(ScrubReq { group, op, slots })
    }
}

/// A header chain that disagrees with the binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Where; size as the header says (0 when none could be read).
    pub at: TrunkLocation,
    /// The header there is a free one of exactly `at.size` bytes (a file
    /// deleted, or an upload given up, whose slot the binlog still holds):
    /// a leaked slot when every member agrees.
    pub cleared: bool,
    pub reason: String,
}

/// A list of at most [`MAX_LIST`] entries and how many there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    pub total: u32,
    pub items: Vec<T>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed {
            total: 0,
            items: Vec::new(),
        }
    }
}

impl<T> Listed<T> {
    /// Keeps the first [`MAX_LIST`] of `all`.
    pub fn capped(mut all: Vec<T>) -> Self {
        let total = u32::try_from(all.len()).unwrap_or(u32::MAX);
        all.truncate(MAX_LIST);
        Listed { total, items: all }
    }
}

/// SCRUB answer of one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubAnswer {
    /// This storage is the group's trunk server and allocates now.
    pub serving: bool,
    /// The storage's network_timeout, seconds: unconfirmed allocations
    /// older than that are abandoned.
    pub network_timeout_secs: u64,
    pub trunk_files: u64,
    pub headers_read: u64,
    /// Trunk files of the binlog this disk has no copy of (not written
    /// here yet): not a mismatch.
    pub missing_files: u64,
    /// `(free slot, file header found inside it)`.
    pub free_with_header: Listed<(TrunkLocation, TrunkLocation)>,
    pub mismatches: Listed<Mismatch>,
    /// Trunk server only: quarantined slots, and whether this disk holds
    /// no file inside.
    pub quarantined: Listed<(TrunkLocation, bool)>,
    /// Trunk server only: allocations not confirmed yet, with their age in
    /// seconds.
    pub unconfirmed: Listed<(TrunkLocation, u64)>,
}

fn put_count(buf: &mut BytesMut, v: u64) {
    buf.put_i64(i64::try_from(v).unwrap_or(i64::MAX));
}

fn get_count(r: &mut Reader<'_>) -> Result<u64, ProtoError> {
    let v = r.i64()?;
    u64::try_from(v).map_err(|_| ProtoError::invalid(format!("negative count {v}")))
}

fn put_list<T>(buf: &mut BytesMut, l: &Listed<T>, mut each: impl FnMut(&mut BytesMut, &T)) {
    buf.put_u32(l.total);
    let n = l.items.len().min(MAX_LIST);
    buf.put_u32(n as u32);
    for item in &l.items[..n] {
        each(buf, item);
    }
}

fn get_list<T>(
    r: &mut Reader<'_>,
    mut each: impl FnMut(&mut Reader<'_>) -> Result<T, ProtoError>,
) -> Result<Listed<T>, ProtoError> {
    let total = r
        .bytes(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
    let n = r
        .bytes(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))? as usize;
    if n > MAX_LIST || n as u64 > u64::from(total) {
        return Err(ProtoError::invalid(format!(
            "trunk scrub list of {n} entries (total {total})"
        )));
    }
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(each(r)?);
    }
    Ok(Listed { total, items })
}

fn get_slot(r: &mut Reader<'_>) -> Result<TrunkLocation, ProtoError> {
    TrunkLocation::from_info_buff(r.bytes(TRUNK_INFO_BUFF_LEN)?)
}

impl ScrubAnswer {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(self.serving));
        for v in [
            self.network_timeout_secs,
            self.trunk_files,
            self.headers_read,
            self.missing_files,
        ] {
            put_count(buf, v);
        }
        put_list(buf, &self.free_with_header, |b, (free, file)| {
            b.put_slice(&free.to_info_buff());
            b.put_slice(&file.to_info_buff());
        });
        put_list(buf, &self.mismatches, |b, m| {
            b.put_slice(&m.at.to_info_buff());
            b.put_u8(u8::from(m.cleared));
            let mut end = m.reason.len().min(MAX_REASON_BYTES);
            while !m.reason.is_char_boundary(end) {
                end -= 1;
            }
            b.put_u8(end as u8);
            b.put_slice(&m.reason.as_bytes()[..end]);
        });
        put_list(buf, &self.quarantined, |b, (s, clean)| {
            b.put_slice(&s.to_info_buff());
            b.put_u8(u8::from(*clean));
        });
        put_list(buf, &self.unconfirmed, |b, (s, age)| {
            b.put_slice(&s.to_info_buff());
            put_count(b, *age);
        });
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let serving = r.u8()? != 0;
        let network_timeout_secs = get_count(&mut r)?;
        let trunk_files = get_count(&mut r)?;
        let headers_read = get_count(&mut r)?;
        let missing_files = get_count(&mut r)?;
        let free_with_header = get_list(&mut r, |r| Ok((get_slot(r)?, get_slot(r)?)))?;
        let mismatches = get_list(&mut r, |r| {
            let at = get_slot(r)?;
            let cleared = r.u8()? != 0;
            let n = usize::from(r.u8()?);
            let reason = String::from_utf8_lossy(r.bytes(n)?).into_owned();
            Ok(Mismatch {
                at,
                cleared,
                reason,
            })
        })?;
        let quarantined = get_list(&mut r, |r| Ok((get_slot(r)?, r.u8()? != 0)))?;
        let unconfirmed = get_list(&mut r, |r| Ok((get_slot(r)?, get_count(r)?)))?;
        r.expect_end()?;
        Ok(ScrubAnswer {
            serving,
            network_timeout_secs,
            trunk_files,
            headers_read,
            missing_files,
            free_with_header,
            mismatches,
            quarantined,
            unconfirmed,
        })
    }
}

/// PROBE answer entry of one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probe {
    /// File headers reachable inside the slot on this disk.
    pub files_on_disk: u32,
    /// Live trunk names (created, not deleted) of the storage binlog that
    /// share a byte with the slot.
    pub live_names: u32,
}

impl Probe {
    pub const LEN: usize = 8;

    pub fn encode_all(probes: &[Probe], buf: &mut BytesMut) {
        for p in probes {
            buf.put_u32(p.files_on_disk);
            buf.put_u32(p.live_names);
        }
    }

    /// Exactly `n` entries.
    pub fn decode_all(body: &[u8], n: usize) -> Result<Vec<Probe>, ProtoError> {
        if body.len() != n * Self::LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        Ok(body
            .chunks_exact(Self::LEN)
            .map(|c| Probe {
                files_on_disk: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                live_names: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect())
    }
}

/// RELEASE and FREE answers: one status byte per slot, exactly `n`.
pub fn decode_statuses(body: &[u8], n: usize) -> Result<Vec<u8>, ProtoError> {
    if body.len() != n {
        return Err(ProtoError::BadLength(body.len()));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(offset: u32, size: u32) -> TrunkLocation {
        TrunkLocation {
            store_path_index: 0,
            sub_path_high: 1,
            sub_path_low: 2,
            trunk_file_id: 7,
            offset,
            size,
        }
    }

    #[test]
    fn request_roundtrips_and_counts_are_checked() {
        let req = ScrubReq {
            group: "group1".into(),
            op: ScrubOp::Probe,
            slots: vec![slot(0, 256), slot(256, 512)],
        };
        let mut b = BytesMut::new();
        req.encode(&mut b);
        assert_eq!(ScrubReq::decode(&b).unwrap(), req);
        assert!(ScrubReq::decode(&b[..b.len() - 1]).is_err());
        let mut scrub_with_slots = b.clone();
        scrub_with_slots[16] = 0;
        assert!(ScrubReq::decode(&scrub_with_slots).is_err());
        let mut bad_op = b.clone();
        bad_op[16] = 9;
        assert!(ScrubReq::decode(&bad_op).is_err());
        assert!(ScrubReq::decode(&b[..17]).is_err(), "probe of no slot");
    }

    #[test]
    fn answer_roundtrips_and_refuses_lies() {
        let a = ScrubAnswer {
            serving: true,
            network_timeout_secs: 30,
            trunk_files: 2,
            headers_read: 99,
            missing_files: 1,
            free_with_header: Listed::capped(vec![(slot(0, 1024), slot(256, 256))]),
            mismatches: Listed::capped(vec![Mismatch {
                at: slot(2048, 256),
                cleared: true,
                reason: "free header where the binlog says allocated".into(),
            }]),
            quarantined: Listed::capped(vec![(slot(4096, 4096), true)]),
            unconfirmed: Listed::capped(vec![(slot(8192, 256), 41)]),
        };
        let mut b = BytesMut::new();
        a.encode(&mut b);
        assert_eq!(ScrubAnswer::decode(&b).unwrap(), a);
        assert!(ScrubAnswer::decode(&b[..b.len() - 1]).is_err());
        let mut extra = b.to_vec();
        extra.push(0);
        assert!(ScrubAnswer::decode(&extra).is_err());
        // A list claiming more entries than its total.
        let mut lie = b.to_vec();
        let at = 1 + 4 * 8;
        lie[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
        assert!(ScrubAnswer::decode(&lie).is_err());
    }

    #[test]
    fn probes_roundtrip() {
        let p = vec![
            Probe {
                files_on_disk: 1,
                live_names: 0,
            },
            Probe::default(),
        ];
        let mut b = BytesMut::new();
        Probe::encode_all(&p, &mut b);
        assert_eq!(Probe::decode_all(&b, 2).unwrap(), p);
        assert!(Probe::decode_all(&b, 3).is_err());
    }
}
