//! Storage → storage replication requests (§5.4). Every one carries the
//! source operation timestamp (int32) and the group (16 bytes; compare only
//! up to the first NUL: C senders leave garbage after it).
//!
//! | cmd | layout |
//! |-----|--------|
//! | 16 SYNC_CREATE_FILE, 18 SYNC_UPDATE_FILE | name_len 8, file_size 8, ts 4, group 16, name, [content] |
//! | 25 SYNC_APPEND_FILE, 35 SYNC_MODIFY_FILE | name_len 8, offset 8, length 8, ts 4, group 16, name, data |
//! | 37 SYNC_TRUNCATE_FILE | name_len 8, old_size 8, new_size 8, ts 4, group 16, name |
//! | 17 SYNC_DELETE_FILE | ts 4, group 16, name |
//! | 40 SYNC_RENAME_FILE, 19 SYNC_CREATE_LINK | dest_len 8, src_len 8, ts 4, group 16, dest, src |
//! | 9 REPORT_SERVER_ID | 16-byte storage id |

use bytes::{BufMut, BytesMut};

use crate::status::ProtoError;
use crate::tracker_msg::put_group;
use crate::wire::{wire_len, NamedHead, Reader};
use crate::GROUP_NAME_MAX_LEN;

/// Longest file name a sync request may carry.
pub const MAX_SYNC_NAME_LEN: usize = 256;

fn name_len(v: i64) -> Result<usize, ProtoError> {
    let n = wire_len(v)?;
    if n == 0 || n > MAX_SYNC_NAME_LEN {
        return Err(ProtoError::invalid(format!("sync filename length {n}")));
    }
    Ok(n)
}

fn name(r: &mut Reader<'_>, n: usize) -> Result<String, ProtoError> {
    Ok(String::from_utf8_lossy(r.bytes(n)?).into_owned())
}

/// Writes what most sync requests end with: timestamp, group, file name.
fn put_stamped_name(buf: &mut BytesMut, timestamp: i32, group: &str, remote: &str) {
    buf.put_i32(timestamp);
    put_group(buf, group);
    buf.put_slice(remote.as_bytes());
}

/// Reads timestamp, group and an `n`-byte file name; nothing may follow.
fn read_stamped_name(r: &mut Reader<'_>, n: usize) -> Result<(i32, String, String), ProtoError> {
    let timestamp = r.i32()?;
    let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
    let remote = name(r, n)?;
    r.expect_end()?;
    Ok((timestamp, group, remote))
}

/// Head of SYNC_CREATE_FILE (16) / SYNC_UPDATE_FILE (18). With header status
/// 0 `file_size` content bytes follow; otherwise none (metadata-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFileReq {
    pub remote: String,
    pub file_size: u64,
    pub timestamp: i32,
    pub group: String,
}

impl NamedHead for SyncFileReq {
    const FIXED_LEN: usize = 36;

    fn check_name_len(declared: i64) -> Result<usize, ProtoError> {
        name_len(declared)
    }
}

impl SyncFileReq {
    pub fn encode_head(&self, buf: &mut BytesMut) {
        buf.put_u64(self.remote.len() as u64);
        buf.put_u64(self.file_size);
        put_stamped_name(buf, self.timestamp, &self.group, &self.remote);
    }

    pub fn decode_head(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let n = Self::read_name_len(&mut r)?;
        let size = r.i64()?;
        let (timestamp, group, remote) = read_stamped_name(&mut r, n)?;
        Ok(SyncFileReq {
            remote,
            file_size: wire_len(size)? as u64,
            timestamp,
            group,
        })
    }
}

/// SYNC_APPEND_FILE (25), SYNC_MODIFY_FILE (35): `a` = offset, `b` = length,
/// data follows. SYNC_TRUNCATE_FILE (37): `a` = old size, `b` = new size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRangeReq {
    pub remote: String,
    pub a: u64,
    pub b: u64,
    pub timestamp: i32,
    pub group: String,
}

impl NamedHead for SyncRangeReq {
    const FIXED_LEN: usize = 44;

    fn check_name_len(declared: i64) -> Result<usize, ProtoError> {
        name_len(declared)
    }
}

impl SyncRangeReq {
    pub fn encode_head(&self, buf: &mut BytesMut) {
        buf.put_u64(self.remote.len() as u64);
        buf.put_u64(self.a);
        buf.put_u64(self.b);
        put_stamped_name(buf, self.timestamp, &self.group, &self.remote);
    }

    pub fn decode_head(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let n = Self::read_name_len(&mut r)?;
        let a = wire_len(r.i64()?)? as u64;
        let b = wire_len(r.i64()?)? as u64;
        let (timestamp, group, remote) = read_stamped_name(&mut r, n)?;
        Ok(SyncRangeReq {
            remote,
            a,
            b,
            timestamp,
            group,
        })
    }
}

/// SYNC_DELETE_FILE (17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDeleteReq {
    pub timestamp: i32,
    pub group: String,
    pub remote: String,
}

impl SyncDeleteReq {
    pub fn encode(&self, buf: &mut BytesMut) {
        put_stamped_name(buf, self.timestamp, &self.group, &self.remote);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() <= 4 + GROUP_NAME_MAX_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(SyncDeleteReq {
            timestamp: r.i32()?,
            group: r.fixed_str(GROUP_NAME_MAX_LEN)?,
            remote: r.rest_str(),
        })
    }
}

/// SYNC_RENAME_FILE (40) and SYNC_CREATE_LINK (19): `dest` is the new name
/// (or the link), `src` the old name (or the link target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPairReq {
    pub dest: String,
    pub src: String,
    pub timestamp: i32,
    pub group: String,
}

impl SyncPairReq {
    pub const FIXED_LEN: usize = 36;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.dest.len() as u64);
        buf.put_u64(self.src.len() as u64);
        buf.put_i32(self.timestamp);
        put_group(buf, &self.group);
        buf.put_slice(self.dest.as_bytes());
        buf.put_slice(self.src.as_bytes());
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let dest_len = name_len(r.i64()?)?;
        let src_len = name_len(r.i64()?)?;
        let timestamp = r.i32()?;
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let dest = name(&mut r, dest_len)?;
        let src = name(&mut r, src_len)?;
        r.expect_end()?;
        Ok(SyncPairReq {
            dest,
            src,
            timestamp,
            group,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn group_garbage_after_nul_is_ignored() {
        let mut b = BytesMut::new();
        SyncDeleteReq {
            timestamp: 5,
            group: "group1".into(),
            remote: "M00/00/00/x".into(),
        }
        .encode(&mut b);
        b[4 + 7] = 0x7f;
        b[4 + 10] = 0x5c;
        let d = SyncDeleteReq::decode(&b).unwrap();
        assert_eq!(d.group, "group1");
    }

    proptest! {
        #[test]
        fn file_req_roundtrip(remote in "[A-Za-z0-9/._-]{1,100}", size in 0u64..1 << 40, ts in any::<i32>()) {
            let r = SyncFileReq { remote, file_size: size, timestamp: ts, group: "group1".into() };
            let mut b = BytesMut::new();
            r.encode_head(&mut b);
            prop_assert_eq!(SyncFileReq::name_len(&b[..SyncFileReq::FIXED_LEN]).unwrap(), r.remote.len());
            prop_assert_eq!(SyncFileReq::decode_head(&b).unwrap(), r);
        }

        #[test]
        fn range_req_roundtrip(remote in "[A-Za-z0-9/._-]{1,100}", a in 0u64..1 << 40, bb in 0u64..1 << 40, ts in any::<i32>()) {
            let r = SyncRangeReq { remote, a, b: bb, timestamp: ts, group: "g2".into() };
            let mut b = BytesMut::new();
            r.encode_head(&mut b);
            prop_assert_eq!(SyncRangeReq::decode_head(&b).unwrap(), r);
        }

        #[test]
        fn delete_and_pair_roundtrip(dest in "[A-Za-z0-9/._-]{1,100}", src in "[A-Za-z0-9/._-]{1,100}", ts in any::<i32>()) {
            let d = SyncDeleteReq { timestamp: ts, group: "group1".into(), remote: dest.clone() };
            let mut b = BytesMut::new();
            d.encode(&mut b);
            prop_assert_eq!(SyncDeleteReq::decode(&b).unwrap(), d);
            let p = SyncPairReq { dest, src, timestamp: ts, group: "group1".into() };
            let mut b = BytesMut::new();
            p.encode(&mut b);
            prop_assert_eq!(SyncPairReq::decode(&b).unwrap(), p);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SyncFileReq::name_len(&data);
            let _ = SyncFileReq::decode_head(&data);
            let _ = SyncRangeReq::decode_head(&data);
            let _ = SyncDeleteReq::decode(&data);
            let _ = SyncPairReq::decode(&data);
        }
    }
}
