//! The cluster statistics commands (PROTOCOL.md §2.10–§2.12): their
//! filters and compact listings, as the `fdfs_*_stat` tools and the
//! upstream Prometheus exporter read them.
//!
//! ```text
//! TRACKER_CLUSTER_STAT (96), leader only
//!   request  3 bytes: filter_by (1 = is_active, 2 = is_leader), is_active, is_leader
//!   answer   count (1 byte), then 90 bytes per tracker:
//!            ip:port (52) | is_leader (1) | is_active (1) | alloc, current,
//!            max connections (3 × int32) | version (8) | up_time (int64) |
//!            last_heartbeat_time (int64)
//! STORAGE_CLUSTER_STAT (97)
//!   request  4 bytes: filter_by (1 = is_trunk_server, 2 = status), op_type
//!            ('=' or '!'), status, is_trunk_server
//!   answer   use_storage_id (1) | use_trunk_file (1) | count (int32), then
//!            106 bytes per storage: id (16) | ip:port (52) |
//!            is_trunk_server (1) | status (1) | 3 × int32 connections |
//!            version (8) | up_time (int64) | last_heart_beat_time (int64)
//! STORAGE_VOLUMN_STAT (98)
//!   request  4 bytes: filter_by (1 = disk, 2 = trunk, 4 = disk or trunk
//!            available), is_disk_available, is_trunk_available,
//!            is_space_available
//!   answer   use_trunk_file (1) | count (int32), then 59 bytes per group:
//!            name (17) | total, free, reserved, avail, trunk_free MB
//!            (5 × int64) | is_disk_available (1) | is_trunk_available (1)
//! ```
//!
//! The answers are decoded as the C client does: the length must be the
//! header plus exactly `count` records.

use bytes::{BufMut, BytesMut};

use crate::status::ProtoError;
use crate::wire::{put_fixed, Reader};
use crate::{GROUP_NAME_MAX_LEN, STORAGE_ID_MAX_SIZE};

/// Width of the `ip:port` text fields (FDFS_MAX_IP_PORT_SIZE).
pub const IP_PORT_FIELD_LEN: usize = 52;
/// Width of the version text fields.
pub const VERSION_FIELD_LEN: usize = 8;

/// Filter bits of TRACKER_CLUSTER_STAT.
pub const TRACKER_FILTER_BY_IS_ACTIVE: u8 = 1;
pub const TRACKER_FILTER_BY_IS_LEADER: u8 = 2;
/// Filter bits of STORAGE_CLUSTER_STAT.
pub const STORAGE_FILTER_BY_IS_TRUNK_SERVER: u8 = 1;
pub const STORAGE_FILTER_BY_STATUS: u8 = 2;
/// Filter bits of STORAGE_VOLUMN_STAT.
pub const VOLUMN_FILTER_BY_IS_DISK_AVAILABLE: u8 = 1;
pub const VOLUMN_FILTER_BY_IS_TRUNK_AVAILABLE: u8 = 2;
pub const VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE: u8 = 4;

/// Alloc, current and max connection counts, as the servers report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    pub alloc: i32,
    pub current: i32,
    pub max: i32,
}

impl ConnCounts {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.alloc);
        buf.put_i32(self.current);
        buf.put_i32(self.max);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(ConnCounts {
            alloc: r.i32()?,
            current: r.i32()?,
            max: r.i32()?,
        })
    }
}

fn exact_len<const N: usize>(body: &[u8]) -> Result<[u8; N], ProtoError> {
    body.try_into()
        .map_err(|_| ProtoError::BadLength(body.len()))
}

/// Request of TRACKER_CLUSTER_STAT (96). The flags are bytes compared as
/// they are: the C client sends 0 or 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStatFilter {
    pub filter_by: u8,
    pub is_active: u8,
    pub is_leader: u8,
}

impl TrackerStatFilter {
    pub const LEN: usize = 3;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&[self.filter_by, self.is_active, self.is_leader]);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let [filter_by, is_active, is_leader] = exact_len::<{ Self::LEN }>(body)?;
        Ok(TrackerStatFilter {
            filter_by,
            is_active,
            is_leader,
        })
    }

    /// True when a tracker with these flags passes the filter.
    pub fn admits(&self, is_leader: bool, is_active: bool) -> bool {
        (self.filter_by & TRACKER_FILTER_BY_IS_LEADER == 0 || self.is_leader == u8::from(is_leader))
            && (self.filter_by & TRACKER_FILTER_BY_IS_ACTIVE == 0
                || self.is_active == u8::from(is_active))
    }
}

/// One tracker of a TRACKER_CLUSTER_STAT answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStatEntry {
    /// `ip:port` (`[v6]:port`).
    pub host: String,
    pub is_leader: bool,
    pub is_active: bool,
    pub connections: ConnCounts,
    pub version: String,
    pub up_time: i64,
    pub last_heartbeat_time: i64,
}

impl TrackerStatEntry {
    pub const WIRE_LEN: usize = 90;

    fn encode(&self, buf: &mut BytesMut) {
        // One byte short of the field so the text always ends in a NUL,
        // as the C client assumes.
        put_fixed(
            buf,
            truncated(&self.host, IP_PORT_FIELD_LEN - 1),
            IP_PORT_FIELD_LEN,
        );
        buf.put_u8(u8::from(self.is_leader));
        buf.put_u8(u8::from(self.is_active));
        self.connections.encode(buf);
        put_fixed(buf, self.version.as_bytes(), VERSION_FIELD_LEN);
        buf.put_i64(self.up_time);
        buf.put_i64(self.last_heartbeat_time);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(TrackerStatEntry {
            host: r.fixed_str(IP_PORT_FIELD_LEN)?,
            is_leader: r.u8()? != 0,
            is_active: r.u8()? != 0,
            connections: ConnCounts::decode(r)?,
            version: r.fixed_str(VERSION_FIELD_LEN)?,
            up_time: r.i64()?,
            last_heartbeat_time: r.i64()?,
        })
    }
}

fn truncated(text: &str, max: usize) -> &[u8] {
    &text.as_bytes()[..text.len().min(max)]
}

/// Encodes a TRACKER_CLUSTER_STAT answer; at most 255 entries fit the
/// one-byte count, and a cluster has at most 16 trackers.
pub fn encode_tracker_stats(buf: &mut BytesMut, entries: &[TrackerStatEntry]) {
    let entries = &entries[..entries.len().min(usize::from(u8::MAX))];
    buf.put_u8(entries.len() as u8);
    for e in entries {
        e.encode(buf);
    }
}

/// Decodes a TRACKER_CLUSTER_STAT answer.
pub fn decode_tracker_stats(body: &[u8]) -> Result<Vec<TrackerStatEntry>, ProtoError> {
    let mut r = Reader::new(body);
    let count = usize::from(r.u8()?);
    if r.remaining() != count * TrackerStatEntry::WIRE_LEN {
        return Err(ProtoError::BadLength(body.len()));
    }
    (0..count)
        .map(|_| TrackerStatEntry::decode(&mut r))
        .collect()
}

/// Request of STORAGE_CLUSTER_STAT (97).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStatFilter {
    pub filter_by: u8,
    /// `b'='` or `b'!'`; anything else filters every storage out when
    /// filtering by status.
    pub op_type: u8,
    pub status: u8,
    pub is_trunk_server: u8,
}

impl StorageStatFilter {
    pub const LEN: usize = 4;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&[
            self.filter_by,
            self.op_type,
            self.status,
            self.is_trunk_server,
        ]);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let [filter_by, op_type, status, is_trunk_server] = exact_len::<{ Self::LEN }>(body)?;
        Ok(StorageStatFilter {
            filter_by,
            op_type,
            status,
            is_trunk_server,
        })
    }

    /// True when a storage passes the filter. As in the original, the
    /// trunk-server filter only applies when trunk files are on.
    pub fn admits(&self, use_trunk_file: bool, is_trunk_server: bool, status: u8) -> bool {
        if use_trunk_file
            && self.filter_by & STORAGE_FILTER_BY_IS_TRUNK_SERVER != 0
            && self.is_trunk_server != u8::from(is_trunk_server)
        {
            return false;
        }
        if self.filter_by & STORAGE_FILTER_BY_STATUS != 0 {
            return match self.op_type {
                b'=' => status == self.status,
                b'!' => status != self.status,
                _ => false,
            };
        }
        true
    }
}

/// One storage of a STORAGE_CLUSTER_STAT answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStatEntry {
    pub id: String,
    /// `ip:port` (`[v6]:port`).
    pub host: String,
    pub is_trunk_server: bool,
    pub status: u8,
    pub connections: ConnCounts,
    pub version: String,
    pub up_time: i64,
    pub last_heartbeat_time: i64,
}

impl StorageStatEntry {
    pub const WIRE_LEN: usize = 106;

    fn encode(&self, buf: &mut BytesMut) {
        put_fixed(
            buf,
            truncated(&self.id, STORAGE_ID_MAX_SIZE - 1),
            STORAGE_ID_MAX_SIZE,
        );
        put_fixed(
            buf,
            truncated(&self.host, IP_PORT_FIELD_LEN - 1),
            IP_PORT_FIELD_LEN,
        );
        buf.put_u8(u8::from(self.is_trunk_server));
        buf.put_u8(self.status);
        self.connections.encode(buf);
        put_fixed(buf, self.version.as_bytes(), VERSION_FIELD_LEN);
        buf.put_i64(self.up_time);
        buf.put_i64(self.last_heartbeat_time);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(StorageStatEntry {
            id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
            host: r.fixed_str(IP_PORT_FIELD_LEN)?,
            is_trunk_server: r.u8()? != 0,
            status: r.u8()?,
            connections: ConnCounts::decode(r)?,
            version: r.fixed_str(VERSION_FIELD_LEN)?,
            up_time: r.i64()?,
            last_heartbeat_time: r.i64()?,
        })
    }
}

/// A STORAGE_CLUSTER_STAT answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageClusterStat {
    pub use_storage_id: bool,
    pub use_trunk_file: bool,
    pub storages: Vec<StorageStatEntry>,
}

impl StorageClusterStat {
    pub const HEADER_LEN: usize = 6;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(self.use_storage_id));
        buf.put_u8(u8::from(self.use_trunk_file));
        buf.put_i32(i32::try_from(self.storages.len()).unwrap_or(i32::MAX));
        for s in &self.storages {
            s.encode(buf);
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let use_storage_id = r.u8()? != 0;
        let use_trunk_file = r.u8()? != 0;
        let count = counted(&mut r, body.len(), StorageStatEntry::WIRE_LEN)?;
        Ok(StorageClusterStat {
            use_storage_id,
            use_trunk_file,
            storages: (0..count)
                .map(|_| StorageStatEntry::decode(&mut r))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Reads an int32 record count and checks that exactly that many records
/// of `record_len` bytes follow.
fn counted(r: &mut Reader<'_>, body_len: usize, record_len: usize) -> Result<usize, ProtoError> {
    let count = usize::try_from(r.i32()?).map_err(|_| ProtoError::BadLength(body_len))?;
    if count.checked_mul(record_len) != Some(r.remaining()) {
        return Err(ProtoError::BadLength(body_len));
    }
    Ok(count)
}

/// Request of STORAGE_VOLUMN_STAT (98).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumnStatFilter {
    pub filter_by: u8,
    pub is_disk_available: u8,
    pub is_trunk_available: u8,
    pub is_space_available: u8,
}

impl VolumnStatFilter {
    pub const LEN: usize = 4;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&[
            self.filter_by,
            self.is_disk_available,
            self.is_trunk_available,
            self.is_space_available,
        ]);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let [filter_by, is_disk_available, is_trunk_available, is_space_available] =
            exact_len::<{ Self::LEN }>(body)?;
        Ok(VolumnStatFilter {
            filter_by,
            is_disk_available,
            is_trunk_available,
            is_space_available,
        })
    }

    /// True when a group passes the filter. As in the original, the
    /// trunk filter only applies when trunk files are on.
    pub fn admits(&self, use_trunk_file: bool, disk: bool, trunk: bool) -> bool {
        let f = self.filter_by;
        (f & VOLUMN_FILTER_BY_IS_DISK_AVAILABLE == 0 || self.is_disk_available == u8::from(disk))
            && (!use_trunk_file
                || f & VOLUMN_FILTER_BY_IS_TRUNK_AVAILABLE == 0
                || self.is_trunk_available == u8::from(trunk))
            && (f & VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE == 0
                || self.is_space_available == u8::from(disk || trunk))
    }
}

/// One group of a STORAGE_VOLUMN_STAT answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumnStatEntry {
    pub group_name: String,
    pub total_mb: i64,
    pub free_mb: i64,
    pub reserved_mb: i64,
    /// free − reserved (≥ 0), 0 when the disk space is not available.
    pub avail_mb: i64,
    /// 0 when trunk space is not available.
    pub trunk_free_mb: i64,
    pub is_disk_available: bool,
    pub is_trunk_available: bool,
}

impl VolumnStatEntry {
    pub const WIRE_LEN: usize = 59;

    fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.group_name.as_bytes(), GROUP_NAME_MAX_LEN + 1);
        for v in [
            self.total_mb,
            self.free_mb,
            self.reserved_mb,
            self.avail_mb,
            self.trunk_free_mb,
        ] {
            buf.put_i64(v);
        }
        buf.put_u8(u8::from(self.is_disk_available));
        buf.put_u8(u8::from(self.is_trunk_available));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        let mut name = r.fixed_str(GROUP_NAME_MAX_LEN + 1)?;
        // The C client keeps 16 characters.
        name.truncate(
            name.char_indices()
                .nth(GROUP_NAME_MAX_LEN)
                .map_or(name.len(), |(i, _)| i),
        );
        Ok(VolumnStatEntry {
            group_name: name,
            total_mb: r.i64()?,
            free_mb: r.i64()?,
            reserved_mb: r.i64()?,
            avail_mb: r.i64()?,
            trunk_free_mb: r.i64()?,
            is_disk_available: r.u8()? != 0,
            is_trunk_available: r.u8()? != 0,
        })
    }
}

/// A STORAGE_VOLUMN_STAT answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumnStat {
    pub use_trunk_file: bool,
    pub groups: Vec<VolumnStatEntry>,
}

impl VolumnStat {
    pub const HEADER_LEN: usize = 5;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(self.use_trunk_file));
        buf.put_i32(i32::try_from(self.groups.len()).unwrap_or(i32::MAX));
        for g in &self.groups {
            g.encode(buf);
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let use_trunk_file = r.u8()? != 0;
        let count = counted(&mut r, body.len(), VolumnStatEntry::WIRE_LEN)?;
        Ok(VolumnStat {
            use_trunk_file,
            groups: (0..count)
                .map(|_| VolumnStatEntry::decode(&mut r))
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker_entry() -> TrackerStatEntry {
        TrackerStatEntry {
            host: "127.0.0.2:22122".into(),
            is_leader: true,
            is_active: true,
            connections: ConnCounts {
                alloc: 256,
                current: 3,
                max: 5,
            },
            version: "6.16.1".into(),
            up_time: 1_700_000_000,
            last_heartbeat_time: 0,
        }
    }

    #[test]
    fn filters_round_trip_and_refuse_other_lengths() {
        let t = TrackerStatFilter {
            filter_by: 3,
            is_active: 1,
            is_leader: 0,
        };
        let mut b = BytesMut::new();
        t.encode(&mut b);
        assert_eq!(&b[..], [3, 1, 0]);
        assert_eq!(TrackerStatFilter::decode(&b).unwrap(), t);
        assert!(TrackerStatFilter::decode(&[0; 4]).is_err());
        let s = StorageStatFilter {
            filter_by: 2,
            op_type: b'!',
            status: 7,
            is_trunk_server: 0,
        };
        let mut b = BytesMut::new();
        s.encode(&mut b);
        assert_eq!(&b[..], [2, b'!', 7, 0]);
        assert_eq!(StorageStatFilter::decode(&b).unwrap(), s);
        assert!(StorageStatFilter::decode(&[0; 3]).is_err());
        let v = VolumnStatFilter {
            filter_by: 4,
            is_disk_available: 0,
            is_trunk_available: 0,
            is_space_available: 1,
        };
        let mut b = BytesMut::new();
        v.encode(&mut b);
        assert_eq!(&b[..], [4, 0, 0, 1]);
        assert_eq!(VolumnStatFilter::decode(&b).unwrap(), v);
        assert!(VolumnStatFilter::decode(&[]).is_err());
    }

    #[test]
    fn tracker_listing_has_the_original_layout() {
        let e = tracker_entry();
        let mut b = BytesMut::new();
        encode_tracker_stats(&mut b, std::slice::from_ref(&e));
        // Verified size of a one-tracker answer (§2.10).
        assert_eq!(b.len(), 91);
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..16], b"127.0.0.2:22122");
        assert_eq!(b[16], 0);
        assert_eq!((b[53], b[54]), (1, 1));
        assert_eq!(&b[55..59], 256i32.to_be_bytes());
        assert_eq!(&b[67..73], b"6.16.1");
        assert_eq!(&b[83..91], [0; 8]);
        assert_eq!(decode_tracker_stats(&b).unwrap(), vec![e]);
        assert!(decode_tracker_stats(&b[..90]).is_err());
        assert!(decode_tracker_stats(&[]).is_err());
        assert_eq!(decode_tracker_stats(&[0]).unwrap(), vec![]);
    }

    #[test]
    fn a_c_answer_with_bytes_after_the_nul_decodes() {
        // §0: the C tracker leaves old bytes after the host's NUL.
        let mut b = BytesMut::new();
        encode_tracker_stats(&mut b, &[tracker_entry()]);
        b[17..25].copy_from_slice(b"27.0.0.1");
        assert_eq!(decode_tracker_stats(&b).unwrap()[0].host, "127.0.0.2:22122");
    }

    #[test]
    fn storage_listing_round_trips() {
        let st = StorageClusterStat {
            use_storage_id: true,
            use_trunk_file: false,
            storages: vec![
                StorageStatEntry {
                    id: "100001".into(),
                    host: "127.0.0.3:23000".into(),
                    status: 7,
                    connections: ConnCounts {
                        alloc: 2,
                        current: 1,
                        max: 2,
                    },
                    version: "6.16.1".into(),
                    up_time: 1_700_000_001,
                    last_heartbeat_time: 1_700_000_031,
                    ..Default::default()
                },
                StorageStatEntry {
                    id: "100002".into(),
                    host: "[::1]:23001".into(),
                    status: 5,
                    ..Default::default()
                },
            ],
        };
        let mut b = BytesMut::new();
        st.encode(&mut b);
        assert_eq!(b.len(), 6 + 2 * 106);
        assert_eq!(&b[..6], [1, 0, 0, 0, 0, 2]);
        assert_eq!(&b[6..12], b"100001");
        assert_eq!(&b[22..37], b"127.0.0.3:23000");
        assert_eq!((b[74], b[75]), (0, 7));
        assert_eq!(StorageClusterStat::decode(&b).unwrap(), st);
        assert!(StorageClusterStat::decode(&b[..b.len() - 1]).is_err());
        let mut neg = b.to_vec();
        neg[2] = 0xFF;
        assert!(StorageClusterStat::decode(&neg).is_err());
    }

    #[test]
    fn volumn_listing_round_trips() {
        let v = VolumnStat {
            use_trunk_file: false,
            groups: vec![VolumnStatEntry {
                group_name: "group1".into(),
                total_mb: 258_019,
                free_mb: 73_867,
                reserved_mb: 51_603,
                avail_mb: 22_264,
                trunk_free_mb: 0,
                is_disk_available: true,
                is_trunk_available: false,
            }],
        };
        let mut b = BytesMut::new();
        v.encode(&mut b);
        // Verified size of a one-group answer (§2.12).
        assert_eq!(b.len(), 64);
        assert_eq!(&b[..5], [0, 0, 0, 0, 1]);
        assert_eq!(&b[5..11], b"group1");
        assert_eq!(&b[22..30], 258_019i64.to_be_bytes());
        assert_eq!(&b[46..54], 22_264i64.to_be_bytes());
        assert_eq!((b[62], b[63]), (1, 0));
        assert_eq!(VolumnStat::decode(&b).unwrap(), v);
        assert!(VolumnStat::decode(&b[..63]).is_err());
        assert!(VolumnStat::decode(&[0, 0, 0, 0]).is_err());
    }

    #[test]
    fn filters_select_as_the_original() {
        let all = TrackerStatFilter::default();
        assert!(all.admits(false, false));
        let active = TrackerStatFilter {
            filter_by: TRACKER_FILTER_BY_IS_ACTIVE,
            is_active: 1,
            is_leader: 0,
        };
        assert!(active.admits(false, true));
        assert!(!active.admits(true, false));
        let followers = TrackerStatFilter {
            filter_by: TRACKER_FILTER_BY_IS_LEADER,
            ..Default::default()
        };
        assert!(followers.admits(false, true));
        assert!(!followers.admits(true, true));

        let not_active = StorageStatFilter {
            filter_by: STORAGE_FILTER_BY_STATUS,
            op_type: b'!',
            status: 7,
            is_trunk_server: 0,
        };
        assert!(not_active.admits(false, false, 5));
        assert!(!not_active.admits(false, false, 7));
        let bad_op = StorageStatFilter {
            op_type: b'<',
            ..not_active
        };
        assert!(!bad_op.admits(false, false, 5));
        let trunk = StorageStatFilter {
            filter_by: STORAGE_FILTER_BY_IS_TRUNK_SERVER,
            is_trunk_server: 1,
            ..Default::default()
        };
        // Ignored without trunk files.
        assert!(trunk.admits(false, false, 7));
        assert!(!trunk.admits(true, false, 7));

        let space = VolumnStatFilter {
            filter_by: VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE,
            is_space_available: 0,
            ..Default::default()
        };
        assert!(space.admits(false, false, false));
        assert!(!space.admits(false, true, false));
        let trunk = VolumnStatFilter {
            filter_by: VOLUMN_FILTER_BY_IS_TRUNK_AVAILABLE,
            is_trunk_available: 1,
            ..Default::default()
        };
        assert!(trunk.admits(false, true, false));
        assert!(!trunk.admits(true, true, false));
    }
}
