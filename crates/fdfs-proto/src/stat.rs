//! Fixed-size statistics records shared by the tracker and its clients:
//! FDFSStorageStatBuff (348 bytes), TrackerGroupStat (113 bytes),
//! TrackerStorageStat (487 bytes IPv4 / 517 bytes IPv6) and
//! FDFSStorageBrief (67 bytes).

use bytes::{BufMut, BytesMut};

use crate::status::ProtoError;
use crate::wire::{put_fixed, Reader};
use crate::{GROUP_NAME_MAX_LEN, IP_ADDRESS_SIZE, STORAGE_ID_MAX_SIZE};

macro_rules! storage_stats {
    ($($field:ident,)*) => {
        /// FDFSStorageStatBuff: connection counts then 42 int64 counters, in
        /// wire order.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct StorageStats {
            pub connection_alloc_count: i32,
            pub connection_current_count: i32,
            pub connection_max_count: i32,
            $(pub $field: i64,)*
        }

        impl StorageStats {
            pub const WIRE_LEN: usize = 348;

            /// Counter names in wire order.
            pub const COUNTER_NAMES: &'static [&'static str] = &[$(stringify!($field),)*];

            /// Counter names and values in wire order (for monitors and persistence).
            pub fn counters(&self) -> Vec<(&'static str, i64)> {
                vec![$((stringify!($field), self.$field),)*]
            }

            /// Sets a counter by name; false if the name is unknown.
            pub fn set_counter(&mut self, name: &str, value: i64) -> bool {
                match name {
                    $(stringify!($field) => { self.$field = value; true })*
                    _ => false,
                }
            }

            pub fn encode(&self, buf: &mut BytesMut) {
                buf.put_i32(self.connection_alloc_count);
                buf.put_i32(self.connection_current_count);
                buf.put_i32(self.connection_max_count);
                $(buf.put_i64(self.$field);)*
            }

            pub fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
                Ok(StorageStats {
                    connection_alloc_count: r.i32()?,
                    connection_current_count: r.i32()?,
                    connection_max_count: r.i32()?,
                    $($field: r.i64()?,)*
                })
            }
        }
    };
}

storage_stats! {
    total_upload_count,
    success_upload_count,
    total_append_count,
    success_append_count,
    total_modify_count,
    success_modify_count,
    total_truncate_count,
    success_truncate_count,
    total_set_meta_count,
    success_set_meta_count,
    total_delete_count,
    success_delete_count,
    total_download_count,
    success_download_count,
    total_get_meta_count,
    success_get_meta_count,
    total_create_link_count,
    success_create_link_count,
    total_delete_link_count,
    success_delete_link_count,
    total_upload_bytes,
    success_upload_bytes,
    total_append_bytes,
    success_append_bytes,
    total_modify_bytes,
    success_modify_bytes,
    total_download_bytes,
    success_download_bytes,
    total_sync_in_bytes,
    success_sync_in_bytes,
    total_sync_out_bytes,
    success_sync_out_bytes,
    total_file_open_count,
    success_file_open_count,
    total_file_read_count,
    success_file_read_count,
    total_file_write_count,
    success_file_write_count,
    last_source_update,
    last_sync_update,
    last_synced_timestamp,
    last_heart_beat_time,
}

/// TrackerGroupStat, 113 bytes: one group in LIST_ONE_GROUP / LIST_ALL_GROUPS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStat {
    pub group_name: String,
    pub total_mb: i64,
    pub free_mb: i64,
    pub reserved_mb: i64,
    pub trunk_free_mb: i64,
    pub storage_count: i64,
    pub storage_port: i64,
    pub readable_server_count: i64,
    pub writable_server_count: i64,
    pub current_write_server: i64,
    pub store_path_count: i64,
    pub subdir_count_per_path: i64,
    pub current_trunk_file_id: i64,
}

impl GroupStat {
    pub const WIRE_LEN: usize = 113;

    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.group_name.as_bytes(), GROUP_NAME_MAX_LEN + 1);
        for v in [
            self.total_mb,
            self.free_mb,
            self.reserved_mb,
            self.trunk_free_mb,
            self.storage_count,
            self.storage_port,
            self.readable_server_count,
            self.writable_server_count,
            self.current_write_server,
            self.store_path_count,
            self.subdir_count_per_path,
            self.current_trunk_file_id,
        ] {
            buf.put_i64(v);
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(GroupStat {
            group_name: r.fixed_str(GROUP_NAME_MAX_LEN + 1)?,
            total_mb: r.i64()?,
            free_mb: r.i64()?,
            reserved_mb: r.i64()?,
            trunk_free_mb: r.i64()?,
            storage_count: r.i64()?,
            storage_port: r.i64()?,
            readable_server_count: r.i64()?,
            writable_server_count: r.i64()?,
            current_write_server: r.i64()?,
            store_path_count: r.i64()?,
            subdir_count_per_path: r.i64()?,
            current_trunk_file_id: r.i64()?,
        })
    }

    /// Decodes a whole LIST_*_GROUP answer.
    pub fn decode_list(body: &[u8]) -> Result<Vec<Self>, ProtoError> {
        if !body.len().is_multiple_of(Self::WIRE_LEN) {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let mut out = Vec::new();
        while r.remaining() > 0 {
            out.push(Self::decode(&mut r)?);
        }
        Ok(out)
    }
}

/// TrackerStorageStat: one storage in LIST_STORAGE (cmd 92).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStat {
    pub status: u8,
    pub rw_mode: u8,
    pub id: String,
    pub ip_addr: String,
    pub src_id: String,
    pub version: String,
    pub join_time: i64,
    pub up_time: i64,
    pub total_mb: i64,
    pub free_mb: i64,
    pub reserved_mb: i64,
    pub upload_priority: i64,
    pub store_path_count: i64,
    pub subdir_count_per_path: i64,
    pub current_write_path: i64,
    pub storage_port: i64,
    pub stats: StorageStats,
    pub if_trunk_server: bool,
}

impl StorageStat {
    /// Record length with a 16-byte (IPv4) IP field.
    pub const WIRE_LEN_V4: usize = 487;
    /// Record length with a 46-byte (IPv6) IP field.
    pub const WIRE_LEN_V6: usize = 517;

    /// `ip_width` is 16 or 46 (the tracker's response_ip_addr_size).
    pub fn encode(&self, buf: &mut BytesMut, ip_width: usize) {
        buf.put_u8(self.status);
        buf.put_u8(self.rw_mode);
        put_fixed(buf, self.id.as_bytes(), STORAGE_ID_MAX_SIZE);
        put_fixed(buf, self.ip_addr.as_bytes(), ip_width);
        put_fixed(buf, self.src_id.as_bytes(), STORAGE_ID_MAX_SIZE);
        put_fixed(buf, self.version.as_bytes(), 8);
        for v in [
            self.join_time,
            self.up_time,
            self.total_mb,
            self.free_mb,
            self.reserved_mb,
            self.upload_priority,
            self.store_path_count,
            self.subdir_count_per_path,
            self.current_write_path,
            self.storage_port,
        ] {
            buf.put_i64(v);
        }
        self.stats.encode(buf);
        buf.put_u8(u8::from(self.if_trunk_server));
    }

    pub fn decode(r: &mut Reader<'_>, ip_width: usize) -> Result<Self, ProtoError> {
        Ok(StorageStat {
            status: r.u8()?,
            rw_mode: r.u8()?,
            id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
            ip_addr: r.fixed_str(ip_width)?,
            src_id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
            version: r.fixed_str(8)?,
            join_time: r.i64()?,
            up_time: r.i64()?,
            total_mb: r.i64()?,
            free_mb: r.i64()?,
            reserved_mb: r.i64()?,
            upload_priority: r.i64()?,
            store_path_count: r.i64()?,
            subdir_count_per_path: r.i64()?,
            current_write_path: r.i64()?,
            storage_port: r.i64()?,
            stats: StorageStats::decode(r)?,
            if_trunk_server: r.u8()? != 0,
        })
    }

    /// Decodes a whole LIST_STORAGE answer, picking the layout by length
    /// (487 first, then 517) as the C client does.
    pub fn decode_list(body: &[u8]) -> Result<Vec<Self>, ProtoError> {
        // 517 IPv4 records take the bytes of 487 IPv6 ones: a layout
        // counts only with at most MAX_SERVERS_EACH_GROUP records.
        let fits = |len: usize| {
            body.len().is_multiple_of(len) && body.len() / len <= crate::MAX_SERVERS_EACH_GROUP
        };
        let ip_width = if fits(Self::WIRE_LEN_V4) {
            crate::IPV4_ADDRESS_SIZE
        } else if fits(Self::WIRE_LEN_V6) {
            IP_ADDRESS_SIZE
        } else {
            return Err(ProtoError::BadLength(body.len()));
        };
        let mut r = Reader::new(body);
        let mut out = Vec::new();
        while r.remaining() > 0 {
            out.push(Self::decode(&mut r, ip_width)?);
        }
        Ok(out)
    }
}

/// FDFSStorageBrief, 67 bytes: status, port, id and IP of a storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageBrief {
    pub status: u8,
    pub port: i32,
    pub id: String,
    pub ip_addr: String,
}

impl StorageBrief {
    pub const WIRE_LEN: usize = 67;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.status);
        buf.put_i32(self.port);
        put_fixed(buf, self.id.as_bytes(), STORAGE_ID_MAX_SIZE);
        put_fixed(buf, self.ip_addr.as_bytes(), IP_ADDRESS_SIZE);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(StorageBrief {
            status: r.u8()?,
            port: r.i32()?,
            id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
            ip_addr: r.fixed_str(IP_ADDRESS_SIZE)?,
        })
    }
}

/// Storage status values, persisted and sent on the wire.
pub mod storage_status {
    pub const INIT: u8 = 0;
    pub const WAIT_SYNC: u8 = 1;
    pub const SYNCING: u8 = 2;
    pub const IP_CHANGED: u8 = 3;
    pub const DELETED: u8 = 4;
    pub const OFFLINE: u8 = 5;
    pub const ONLINE: u8 = 6;
    pub const ACTIVE: u8 = 7;
    pub const RECOVERY: u8 = 9;
    pub const NONE: u8 = 99;

    /// Caption used by fdfs_monitor.
    pub fn caption(status: u8) -> &'static str {
        match status {
            INIT => "INIT",
            WAIT_SYNC => "WAIT_SYNC",
            SYNCING => "SYNCING",
            IP_CHANGED => "IP_CHANGED",
            DELETED => "DELETED",
            OFFLINE => "OFFLINE",
            ONLINE => "ONLINE",
            ACTIVE => "ACTIVE",
            RECOVERY => "RECOVERY",
            _ => "UNKNOWN",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stats_strategy() -> impl Strategy<Value = StorageStats> {
        (
            any::<[i32; 3]>(),
            proptest::collection::vec(any::<i64>(), 42),
        )
            .prop_map(|(c, v)| {
                let mut s = StorageStats {
                    connection_alloc_count: c[0],
                    connection_current_count: c[1],
                    connection_max_count: c[2],
                    ..Default::default()
                };
                let names: Vec<&str> = s.counters().iter().map(|(n, _)| *n).collect();
                for (n, val) in names.into_iter().zip(v) {
                    assert!(s.set_counter(n, val));
                }
                s
            })
    }

    #[test]
    fn sizes() {
        let mut b = BytesMut::new();
        StorageStats::default().encode(&mut b);
        assert_eq!(b.len(), StorageStats::WIRE_LEN);
        b.clear();
        GroupStat::default().encode(&mut b);
        assert_eq!(b.len(), GroupStat::WIRE_LEN);
        b.clear();
        StorageStat::default().encode(&mut b, 16);
        assert_eq!(b.len(), StorageStat::WIRE_LEN_V4);
        b.clear();
        StorageStat::default().encode(&mut b, 46);
        assert_eq!(b.len(), StorageStat::WIRE_LEN_V6);
        b.clear();
        StorageBrief::default().encode(&mut b);
        assert_eq!(b.len(), StorageBrief::WIRE_LEN);
    }

    proptest! {
        #[test]
        fn storage_stat_roundtrip(stats in stats_strategy(), status in any::<u8>(), id in "[0-9.]{1,15}", v6 in any::<bool>(), jt in any::<i64>()) {
            let s = StorageStat { status, rw_mode: 6, id: id.clone(), ip_addr: id, src_id: String::new(), version: "6.16.1".into(), join_time: jt, stats, if_trunk_server: v6, ..Default::default() };
            let mut b = BytesMut::new();
            s.encode(&mut b, if v6 { 46 } else { 16 });
            prop_assert_eq!(StorageStat::decode_list(&b).unwrap(), vec![s]);
        }

        #[test]
        fn group_stat_roundtrip(name in "[a-z0-9]{1,16}", vals in any::<[i64; 12]>()) {
            let g = GroupStat { group_name: name, total_mb: vals[0], free_mb: vals[1], reserved_mb: vals[2], trunk_free_mb: vals[3], storage_count: vals[4], storage_port: vals[5], readable_server_count: vals[6], writable_server_count: vals[7], current_write_server: vals[8], store_path_count: vals[9], subdir_count_per_path: vals[10], current_trunk_file_id: vals[11] };
            let mut b = BytesMut::new();
            g.encode(&mut b);
            g.encode(&mut b);
            prop_assert_eq!(GroupStat::decode_list(&b).unwrap(), vec![g.clone(), g]);
        }

        #[test]
        fn brief_roundtrip(status in any::<u8>(), port in any::<i32>(), id in "[0-9a-z.]{0,15}", ip in "[0-9a-f:.]{0,45}") {
            let br = StorageBrief { status, port, id, ip_addr: ip };
            let mut b = BytesMut::new();
            br.encode(&mut b);
            prop_assert_eq!(StorageBrief::decode(&mut Reader::new(&b)).unwrap(), br);
        }

        #[test]
        fn decode_list_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = StorageStat::decode_list(&data);
            let _ = GroupStat::decode_list(&data);
        }
    }

    /// Same length ambiguity as the query answers (fuzz finding in
    /// tracker_msg): 487 IPv6 records are 517 IPv4 ones by length.
    #[test]
    fn storage_list_layout_is_not_ambiguous() {
        let stat = StorageStat {
            ip_addr: "fd00::1".into(),
            ..StorageStat::default()
        };
        let mut one = BytesMut::new();
        stat.encode(&mut one, IP_ADDRESS_SIZE);
        let many = one.repeat(StorageStat::WIRE_LEN_V4);
        // More records than a group holds is refused, never misread.
        assert!(StorageStat::decode_list(&many).is_err());
        let list = StorageStat::decode_list(&one.repeat(3)).unwrap();
        assert_eq!(list, vec![stat; 3]);
    }
}
