//! Tracker request and response bodies: the client-facing queries (§2) and
//! the storage reporting messages (§4) our storage and tracker exchange.
//!
//! Query answers carry IP fields of `W - 1` bytes where `W` is the
//! tracker's `response_ip_addr_size` (16 for IPv4, 46 for IPv6); readers
//! tell the two layouts apart by length, as the C client does.

use bytes::{BufMut, BytesMut};

use crate::stat::{StorageBrief, StorageStats};
use crate::status::ProtoError;
use crate::wire::{put_fixed, Reader};
use crate::{GROUP_NAME_MAX_LEN, IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE, STORAGE_ID_MAX_SIZE};

/// The two IP field widths a tracker may answer with.
pub const RESPONSE_IP_SIZES: [usize; 2] = [IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE];

/// Encodes a 16-byte group field.
pub fn put_group(buf: &mut BytesMut, group: &str) {
    put_fixed(buf, group.as_bytes(), GROUP_NAME_MAX_LEN);
}

/// A body that is exactly one 16-byte group name (104, 107, 90, 108).
pub fn decode_group_only(body: &[u8]) -> Result<String, ProtoError> {
    if body.len() != GROUP_NAME_MAX_LEN {
        return Err(ProtoError::BadLength(body.len()));
    }
    Ok(crate::wire::fixed_str(body))
}

/// A storage address in a query answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub ip: String,
    pub port: u16,
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ip.contains(':') {
            write!(f, "[{}]:{}", self.ip, self.port)
        } else {
            write!(f, "{}:{}", self.ip, self.port)
        }
    }
}

fn put_addr(buf: &mut BytesMut, addr: &ServerAddr, ip_width: usize) {
    put_fixed(buf, addr.ip.as_bytes(), ip_width - 1);
    buf.put_i64(i64::from(addr.port));
}

fn get_addr(r: &mut Reader<'_>, ip_width: usize) -> Result<ServerAddr, ProtoError> {
    let ip = r.fixed_str(ip_width - 1)?;
    let port = r.i64()?;
    let port = u16::try_from(port).map_err(|_| ProtoError::invalid(format!("bad port {port}")))?;
    Ok(ServerAddr { ip, port })
}

/// IP width and server count of a server-list answer of `body_len` bytes
/// with `fixed` bytes around the list. Both widths can fit one length
/// (23 IPv6 entries take the bytes of 53 IPv4 ones), so a layout counts
/// only with 1..=32 servers, the most a group has: that leaves one.
fn server_list_layout(body_len: usize, fixed: usize) -> Result<(usize, usize), ProtoError> {
    RESPONSE_IP_SIZES
        .into_iter()
        .find_map(|w| {
            let entry = w - 1 + 8;
            let list = body_len.checked_sub(fixed).filter(|l| *l > 0)?;
            let n = list / entry;
            (list.is_multiple_of(entry) && n <= crate::MAX_SERVERS_EACH_GROUP).then_some((w, n))
        })
        .ok_or(ProtoError::BadLength(body_len))
}

/// Answer to QUERY_STORE_*_ONE (101/104): where to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTarget {
    pub group: String,
    pub addr: ServerAddr,
    pub store_path_index: u8,
}

impl StoreTarget {
    pub fn encode(&self, buf: &mut BytesMut, ip_width: usize) {
        put_group(buf, &self.group);
        put_addr(buf, &self.addr, ip_width);
        buf.put_u8(self.store_path_index);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let ip_width = RESPONSE_IP_SIZES
            .into_iter()
            .find(|w| body.len() == GROUP_NAME_MAX_LEN + (w - 1) + 8 + 1)
            .ok_or(ProtoError::BadLength(body.len()))?;
        let mut r = Reader::new(body);
        Ok(StoreTarget {
            group: r.fixed_str(GROUP_NAME_MAX_LEN)?,
            addr: get_addr(&mut r, ip_width)?,
            store_path_index: r.u8()?,
        })
    }
}

/// Answer to QUERY_STORE_*_ALL (106/107): every writable storage of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTargets {
    pub group: String,
    pub servers: Vec<ServerAddr>,
    pub store_path_index: u8,
}

impl StoreTargets {
    pub fn encode(&self, buf: &mut BytesMut, ip_width: usize) {
        put_group(buf, &self.group);
        for s in &self.servers {
            put_addr(buf, s, ip_width);
        }
        buf.put_u8(self.store_path_index);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let (ip_width, n) = server_list_layout(body.len(), GROUP_NAME_MAX_LEN + 1)?;
        let mut r = Reader::new(body);
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let servers = (0..n)
            .map(|_| get_addr(&mut r, ip_width))
            .collect::<Result<_, _>>()?;
        Ok(StoreTargets {
            group,
            servers,
            store_path_index: r.u8()?,
        })
    }
}

/// Request of QUERY_FETCH_ONE / QUERY_UPDATE / QUERY_FETCH_ALL (102/103/105),
/// and of the storage commands that name a group and a file (12, 15, 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFileReq {
    pub group: String,
    pub remote: String,
}

impl GroupFileReq {
    pub fn encode(&self, buf: &mut BytesMut) {
        put_group(buf, &self.group);
        buf.put_slice(self.remote.as_bytes());
    }

    /// Needs more than 16 bytes (a non-empty name).
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() <= GROUP_NAME_MAX_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(GroupFileReq {
            group: r.fixed_str(GROUP_NAME_MAX_LEN)?,
            remote: r.rest_str(),
        })
    }
}

/// Answer to 102/103 (one server) and 105 (several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTargets {
    pub group: String,
    pub servers: Vec<ServerAddr>,
}

impl FetchTargets {
    pub fn encode(&self, buf: &mut BytesMut, ip_width: usize) {
        put_group(buf, &self.group);
        for s in &self.servers {
            put_addr(buf, s, ip_width);
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let (ip_width, n) = server_list_layout(body.len(), GROUP_NAME_MAX_LEN)?;
        let mut r = Reader::new(body);
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let servers = (0..n)
            .map(|_| get_addr(&mut r, ip_width))
            .collect::<Result<_, _>>()?;
        Ok(FetchTargets { group, servers })
    }
}

/// Request of SERVER_LIST_STORAGE (92), SERVER_DELETE_STORAGE (93) and
/// SERVER_SET_TRUNK_SERVER (94): group plus an optional storage id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStorageReq {
    pub group: String,
    pub storage_id: Option<String>,
}

impl GroupStorageReq {
    pub fn encode(&self, buf: &mut BytesMut) {
        put_group(buf, &self.group);
        if let Some(id) = &self.storage_id {
            let n = id.len().min(STORAGE_ID_MAX_SIZE - 1);
            buf.put_slice(&id.as_bytes()[..n]);
        }
    }

    /// Body length must be >= 16 and < 32.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() < GROUP_NAME_MAX_LEN || body.len() >= GROUP_NAME_MAX_LEN + STORAGE_ID_MAX_SIZE
        {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let id = r.rest_str();
        let id = id.trim_end_matches('\0').to_string();
        Ok(GroupStorageReq {
            group,
            storage_id: (!id.is_empty()).then_some(id),
        })
    }
}

/// JOIN (81): a storage logs in to a tracker. 145 fixed bytes + tracker lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReq {
    pub group: String,
    pub storage_port: u16,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    pub join_time: i64,
    pub up_time: i64,
    pub version: String,
    /// True while the storage has not finished its initial sync.
    pub init_flag: bool,
    /// The status the storage holds for itself (-1 = unknown yet).
    pub status: i8,
    pub storage_id: String,
    /// The tracker's IP as the storage connected to it.
    pub tracker_ip: String,
    /// Every configured tracker as `host:port`.
    pub trackers: Vec<String>,
}

impl JoinReq {
    pub const FIXED_LEN: usize = 145;

    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.group.as_bytes(), GROUP_NAME_MAX_LEN + 1);
        buf.put_i64(i64::from(self.storage_port));
        buf.put_i64(i64::from(self.store_path_count));
        buf.put_i64(i64::from(self.subdir_count_per_path));
        buf.put_i64(self.upload_priority);
        buf.put_i64(self.join_time);
        buf.put_i64(self.up_time);
        put_fixed(buf, self.version.as_bytes(), 8);
        buf.put_u8(u8::from(self.init_flag));
        buf.put_i8(self.status);
        put_fixed(buf, self.storage_id.as_bytes(), STORAGE_ID_MAX_SIZE);
        put_fixed(buf, self.tracker_ip.as_bytes(), IP_ADDRESS_SIZE);
        buf.put_i64(self.trackers.len() as i64);
        for t in &self.trackers {
            buf.put_slice(t.as_bytes());
            buf.put_u8(b'\n');
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() < Self::FIXED_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let group = r.fixed_str(GROUP_NAME_MAX_LEN + 1)?;
        let port = r.i64()?;
        let store_path_count = r.i64()?;
        let subdir_count = r.i64()?;
        let upload_priority = r.i64()?;
        let join_time = r.i64()?;
        let up_time = r.i64()?;
        let version = r.fixed_str(8)?;
        let init_flag = r.u8()? != 0;
        let status = r.u8()? as i8;
        let storage_id = r.fixed_str(STORAGE_ID_MAX_SIZE)?;
        let tracker_ip = r.fixed_str(IP_ADDRESS_SIZE)?;
        let tracker_count = r.i64()?;
        if !(1..=crate::MAX_TRACKERS as i64).contains(&tracker_count) {
            return Err(ProtoError::invalid(format!(
                "tracker count {tracker_count}"
            )));
        }
        if body.len() > Self::FIXED_LEN + tracker_count as usize * 100 {
            return Err(ProtoError::BadLength(body.len()));
        }
        let rest = r.rest();
        let mut trackers = Vec::new();
        let mut lines = rest.split_inclusive(|&b| b == b'\n');
        for _ in 0..tracker_count {
            let line = lines
                .next()
                .filter(|l| l.ends_with(b"\n"))
                .ok_or_else(|| ProtoError::invalid("tracker line without newline"))?;
            trackers.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        let in_range = |v: i64| (1..=256).contains(&v);
        if !crate::is_valid_group_name(&group)
            || !(1..=65535).contains(&port)
            || !in_range(store_path_count)
            || !in_range(subdir_count)
        {
            return Err(ProtoError::invalid("join: invalid group, port or counts"));
        }
        Ok(JoinReq {
            group,
            storage_port: port as u16,
            store_path_count: store_path_count as u32,
            subdir_count_per_path: subdir_count as u32,
            upload_priority,
            join_time,
            up_time,
            version,
            init_flag,
            status,
            storage_id,
            tracker_ip,
            trackers,
        })
    }
}

/// JOIN answer: the storage's status on this tracker and its sync source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResp {
    pub status: u8,
    pub src_id: String,
}

impl JoinResp {
    pub const WIRE_LEN: usize = 17;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.status);
        put_fixed(buf, self.src_id.as_bytes(), STORAGE_ID_MAX_SIZE);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::WIRE_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(JoinResp {
            status: r.u8()?,
            src_id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
        })
    }
}

/// BEAT (83) body: empty, or the storage's statistics when they changed.
pub fn decode_beat(body: &[u8]) -> Result<Option<StorageStats>, ProtoError> {
    match body.len() {
        0 => Ok(None),
        StorageStats::WIRE_LEN => Ok(Some(StorageStats::decode(&mut Reader::new(body))?)),
        n => Err(ProtoError::BadLength(n)),
    }
}

/// Per store path totals of REPORT_DISK_USAGE (84), in MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathUsage {
    pub total_mb: i64,
    pub free_mb: i64,
}

pub fn encode_disk_usage(buf: &mut BytesMut, paths: &[PathUsage]) {
    for p in paths {
        buf.put_i64(p.total_mb);
        buf.put_i64(p.free_mb);
    }
}

pub fn decode_disk_usage(
    body: &[u8],
    store_path_count: usize,
) -> Result<Vec<PathUsage>, ProtoError> {
    if body.len() != 16 * store_path_count {
        return Err(ProtoError::BadLength(body.len()));
    }
    let mut r = Reader::new(body);
    (0..store_path_count)
        .map(|_| {
            Ok(PathUsage {
                total_mb: r.i64()?,
                free_mb: r.i64()?,
            })
        })
        .collect()
}

/// Answer body of BEAT / REPORT_DISK_USAGE / SYNC_REPORT: what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeNotice {
    pub leader: Option<StorageBrief>,
    pub trunk_server: Option<StorageBrief>,
    pub group_members: Option<Vec<StorageBrief>>,
}

impl ChangeNotice {
    pub const LEADER_CHANGED: u8 = 1;
    pub const TRUNK_CHANGED: u8 = 2;
    pub const GROUP_CHANGED: u8 = 4;

    pub fn encode(&self, buf: &mut BytesMut) {
        let mut flags = 0;
        if self.leader.is_some() {
            flags |= Self::LEADER_CHANGED;
        }
        if self.trunk_server.is_some() {
            flags |= Self::TRUNK_CHANGED;
        }
        if self.group_members.is_some() {
            flags |= Self::GROUP_CHANGED;
        }
        buf.put_u8(flags);
        for b in [&self.leader, &self.trunk_server].into_iter().flatten() {
            b.encode(buf);
        }
        for b in self.group_members.iter().flatten() {
            b.encode(buf);
        }
    }

    /// An empty body is accepted as "nothing changed".
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        if body.is_empty() {
            return Ok(ChangeNotice::default());
        }
        let flags = r.u8()?;
        let mut out = ChangeNotice::default();
        if flags & Self::LEADER_CHANGED != 0 {
            out.leader = Some(StorageBrief::decode(&mut r)?);
        }
        if flags & Self::TRUNK_CHANGED != 0 {
            out.trunk_server = Some(StorageBrief::decode(&mut r)?);
        }
        if flags & Self::GROUP_CHANGED != 0 {
            if !r.remaining().is_multiple_of(StorageBrief::WIRE_LEN) {
                return Err(ProtoError::BadLength(body.len()));
            }
            let mut members = Vec::new();
            while r.remaining() > 0 {
                members.push(StorageBrief::decode(&mut r)?);
            }
            out.group_members = Some(members);
        }
        r.expect_end()?;
        Ok(out)
    }
}

/// GET_MY_IP (60) request: group (17) + storage port (int32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMyIpReq {
    pub group: String,
    pub port: i32,
}

impl GetMyIpReq {
    pub const WIRE_LEN: usize = 21;

    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.group.as_bytes(), GROUP_NAME_MAX_LEN + 1);
        buf.put_i32(self.port);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::WIRE_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(GetMyIpReq {
            group: r.fixed_str(GROUP_NAME_MAX_LEN + 1)?,
            port: r.i32()?,
        })
    }
}

/// FETCH_STORAGE_IDS (69) request: the first entry wanted and whether a
/// tracker in IP mode may answer with an empty list instead of EOPNOTSUPP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageIdsReq {
    pub start_index: i32,
    pub allow_empty: bool,
}

impl StorageIdsReq {
    pub const WIRE_LEN: usize = 5;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.start_index);
        buf.put_u8(u8::from(self.allow_empty));
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::WIRE_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(StorageIdsReq {
            start_index: r.i32()?,
            allow_empty: r.u8()? != 0,
        })
    }
}

/// FETCH_STORAGE_IDS (69) answer: the total number of ids, then this
/// chunk's lines in storage_ids.conf syntax
/// (`<id> <group> <host>[:<port>][ rw=<mode>]\n`, §2.14).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageIdsResp {
    pub total: i32,
    pub lines: Vec<String>,
}

impl StorageIdsResp {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.total);
        buf.put_i32(i32::try_from(self.lines.len()).unwrap_or(i32::MAX));
        for line in &self.lines {
            buf.put_slice(line.as_bytes());
            buf.put_u8(b'\n');
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let total = r.i32()?;
        let count = r.i32()?;
        let text = r.rest_str();
        let lines: Vec<String> = text
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if total < 0 || count < 0 || lines.len() != count as usize || count > total {
            return Err(ProtoError::invalid(format!(
                "storage id list: total {total}, count {count}, {} lines",
                lines.len()
            )));
        }
        Ok(StorageIdsResp { total, lines })
    }
}

/// TrackerStorageSyncReqBody (24 bytes): sync source id and until-timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSource {
    pub src_id: String,
    pub until_timestamp: i64,
}

impl SyncSource {
    pub const WIRE_LEN: usize = 24;

    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.src_id.as_bytes(), STORAGE_ID_MAX_SIZE);
        buf.put_i64(self.until_timestamp);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::WIRE_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(SyncSource {
            src_id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
            until_timestamp: r.i64()?,
        })
    }
}

/// SYNC_REPORT (89) entry: newest source timestamp received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTimestamp {
    pub storage_id: String,
    pub timestamp: i32,
}

pub fn encode_sync_report(buf: &mut BytesMut, entries: &[SyncTimestamp]) {
    for e in entries {
        put_fixed(buf, e.storage_id.as_bytes(), STORAGE_ID_MAX_SIZE);
        buf.put_i32(e.timestamp);
    }
}

pub fn decode_sync_report(body: &[u8]) -> Result<Vec<SyncTimestamp>, ProtoError> {
    if body.is_empty() || !body.len().is_multiple_of(20) {
        return Err(ProtoError::BadLength(body.len()));
    }
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(SyncTimestamp {
            storage_id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
            timestamp: r.i32()?,
        });
    }
    Ok(out)
}

/// One line of the fastdfs-rs extension SERVER_SYNC_STATUS (240), which
/// the original does not have (it answers EINVAL): what the tracker knows
/// about replication inside a group. Text lines, one per fact:
/// `synced <group> <source id> <destination id> <timestamp>` (the newest
/// change of the source the destination reported having received) and
/// `source <group> <storage id> <source id> <until timestamp>` (the full
/// sync a new member was assigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncProgress {
    Synced {
        group: String,
        src_id: String,
        dest_id: String,
        timestamp: i64,
    },
    FullSyncSource {
        group: String,
        storage_id: String,
        src_id: String,
        until_timestamp: i64,
    },
}

pub fn encode_sync_progress(buf: &mut BytesMut, lines: &[SyncProgress]) {
    for l in lines {
        let text = match l {
            SyncProgress::Synced {
                group,
                src_id,
                dest_id,
                timestamp,
            } => format!("synced {group} {src_id} {dest_id} {timestamp}\n"),
            SyncProgress::FullSyncSource {
                group,
                storage_id,
                src_id,
                until_timestamp,
            } => format!("source {group} {storage_id} {src_id} {until_timestamp}\n"),
        };
        buf.put_slice(text.as_bytes());
    }
}

pub fn decode_sync_progress(body: &[u8]) -> Result<Vec<SyncProgress>, ProtoError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ProtoError::invalid("sync status not UTF-8"))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(' ').collect();
        let bad = || ProtoError::invalid(format!("bad sync status line {line:?}"));
        if f.len() != 5 {
            return Err(bad());
        }
        let ts: i64 = f[4].parse().map_err(|_| bad())?;
        let (group, a, b) = (f[1].to_string(), f[2].to_string(), f[3].to_string());
        out.push(match f[0] {
            "synced" => SyncProgress::Synced {
                group,
                src_id: a,
                dest_id: b,
                timestamp: ts,
            },
            "source" => SyncProgress::FullSyncSource {
                group,
                storage_id: a,
                src_id: b,
                until_timestamp: ts,
            },
            _ => return Err(bad()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_a1_store_target() {
        let t = StoreTarget {
            group: "group1".into(),
            addr: ServerAddr {
                ip: "127.0.0.1".into(),
                port: 23000,
            },
            store_path_index: 0,
        };
        let mut b = BytesMut::new();
        t.encode(&mut b, 16);
        let expected: Vec<u8> = [
            &b"group1"[..],
            &[0u8; 10][..],
            &b"127.0.0.1"[..],
            &[0u8; 6][..],
            &[0, 0, 0, 0, 0, 0, 0x59, 0xd8][..],
            &[0][..],
        ]
        .concat();
        assert_eq!(&b[..], &expected[..]);
        assert_eq!(b.len(), 40);
        assert_eq!(StoreTarget::decode(&b).unwrap(), t);
        let mut b6 = BytesMut::new();
        t.encode(&mut b6, 46);
        assert_eq!(b6.len(), 70);
        assert_eq!(StoreTarget::decode(&b6).unwrap(), t);
    }

    #[test]
    fn golden_a8_fetch_target() {
        let f = FetchTargets {
            group: "group1".into(),
            servers: vec![ServerAddr {
                ip: "127.0.0.1".into(),
                port: 23000,
            }],
        };
        let mut b = BytesMut::new();
        f.encode(&mut b, 16);
        assert_eq!(b.len(), 39);
        assert_eq!(&b[31..39], &[0, 0, 0, 0, 0, 0, 0x59, 0xd8]);
        assert_eq!(FetchTargets::decode(&b).unwrap(), f);
    }

    fn addr() -> impl Strategy<Value = ServerAddr> {
        ("[0-9.]{1,15}", 1u16..).prop_map(|(ip, port)| ServerAddr { ip, port })
    }

    proptest! {
        #[test]
        fn store_targets_roundtrip(group in "[a-z0-9]{1,16}", servers in proptest::collection::vec(addr(), 1..5), idx in any::<u8>(), v6 in any::<bool>()) {
            let t = StoreTargets { group, servers, store_path_index: idx };
            let mut b = BytesMut::new();
            t.encode(&mut b, if v6 { 46 } else { 16 });
            prop_assert_eq!(StoreTargets::decode(&b).unwrap(), t);
        }

        #[test]
        fn fetch_targets_roundtrip(group in "[a-z0-9]{1,16}", servers in proptest::collection::vec(addr(), 1..5), v6 in any::<bool>()) {
            let t = FetchTargets { group, servers };
            let mut b = BytesMut::new();
            t.encode(&mut b, if v6 { 46 } else { 16 });
            prop_assert_eq!(FetchTargets::decode(&b).unwrap(), t);
        }

        #[test]
        fn group_file_roundtrip(group in "[a-z0-9]{1,16}", remote in "[A-Za-z0-9/._-]{1,100}") {
            let req = GroupFileReq { group, remote };
            let mut b = BytesMut::new();
            req.encode(&mut b);
            prop_assert_eq!(GroupFileReq::decode(&b).unwrap(), req);
        }

        #[test]
        fn group_storage_roundtrip(group in "[a-z0-9]{1,16}", id in proptest::option::of("[0-9.]{1,15}")) {
            let req = GroupStorageReq { group, storage_id: id };
            let mut b = BytesMut::new();
            req.encode(&mut b);
            prop_assert_eq!(GroupStorageReq::decode(&b).unwrap(), req);
        }

        #[test]
        fn join_roundtrip(group in "[a-z0-9]{1,16}", port in 1u16.., paths in 1u32..=256, subdirs in 1u32..=256, prio in any::<i64>(), jt in any::<i64>(), ut in any::<i64>(), init in any::<bool>(), status in any::<i8>(), trackers in proptest::collection::vec("[0-9.]{7,15}:[0-9]{1,5}", 1..4)) {
            let j = JoinReq { group, storage_port: port, store_path_count: paths, subdir_count_per_path: subdirs, upload_priority: prio, join_time: jt, up_time: ut, version: "6.16.1".into(), init_flag: init, status, storage_id: String::new(), tracker_ip: "127.0.0.1".into(), trackers };
            let mut b = BytesMut::new();
            j.encode(&mut b);
            prop_assert_eq!(JoinReq::decode(&b).unwrap(), j);
        }

        #[test]
        fn join_resp_roundtrip(status in any::<u8>(), src in "[0-9.]{0,15}") {
            let j = JoinResp { status, src_id: src };
            let mut b = BytesMut::new();
            j.encode(&mut b);
            prop_assert_eq!(JoinResp::decode(&b).unwrap(), j);
        }

        #[test]
        fn change_notice_roundtrip(leader in any::<bool>(), members in proptest::option::of(proptest::collection::vec(("[0-9.]{1,15}", any::<u8>()), 0..4))) {
            let brief = |ip: &str, status: u8| StorageBrief { status, port: 23000, id: ip.into(), ip_addr: ip.into() };
            let n = ChangeNotice {
                leader: leader.then(|| brief("127.0.0.1", 0)),
                trunk_server: None,
                group_members: members.map(|m| m.iter().map(|(ip, s)| brief(ip, *s)).collect()),
            };
            let mut b = BytesMut::new();
            n.encode(&mut b);
            prop_assert_eq!(ChangeNotice::decode(&b).unwrap(), n);
        }

        #[test]
        fn disk_usage_roundtrip(paths in proptest::collection::vec((any::<i64>(), any::<i64>()), 1..4)) {
            let usage: Vec<PathUsage> = paths.iter().map(|(t, f)| PathUsage { total_mb: *t, free_mb: *f }).collect();
            let mut b = BytesMut::new();
            encode_disk_usage(&mut b, &usage);
            prop_assert_eq!(decode_disk_usage(&b, usage.len()).unwrap(), usage);
        }

        #[test]
        fn sync_msgs_roundtrip(id in "[0-9.]{0,15}", until in any::<i64>(), ts in any::<i32>()) {
            let s = SyncSource { src_id: id.clone(), until_timestamp: until };
            let mut b = BytesMut::new();
            s.encode(&mut b);
            prop_assert_eq!(SyncSource::decode(&b).unwrap(), s);
            let rep = vec![SyncTimestamp { storage_id: id, timestamp: ts }];
            let mut b = BytesMut::new();
            encode_sync_report(&mut b, &rep);
            prop_assert_eq!(decode_sync_report(&b).unwrap(), rep);
            let ip = GetMyIpReq { group: "group1".into(), port: ts };
            let mut b = BytesMut::new();
            ip.encode(&mut b);
            prop_assert_eq!(GetMyIpReq::decode(&b).unwrap(), ip);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = StoreTarget::decode(&data);
            let _ = StoreTargets::decode(&data);
            let _ = FetchTargets::decode(&data);
            let _ = GroupFileReq::decode(&data);
            let _ = GroupStorageReq::decode(&data);
            let _ = JoinReq::decode(&data);
            let _ = ChangeNotice::decode(&data);
            let _ = decode_sync_report(&data);
            let _ = decode_beat(&data);
            let _ = decode_sync_progress(&data);
        }

        #[test]
        fn sync_progress_roundtrip(g in "[a-z0-9]{1,16}", a in "[0-9.]{1,15}", b in "[0-9.]{1,15}", ts in any::<i64>(), synced in any::<bool>()) {
            let line = if synced {
                SyncProgress::Synced { group: g, src_id: a, dest_id: b, timestamp: ts }
            } else {
                SyncProgress::FullSyncSource { group: g, storage_id: a, src_id: b, until_timestamp: ts }
            };
            let mut buf = BytesMut::new();
            encode_sync_progress(&mut buf, std::slice::from_ref(&line));
            prop_assert_eq!(decode_sync_progress(&buf).unwrap(), vec![line]);
        }
    }

    /// Fuzz finding (fuzz/regressions/tracker_msg/ipv6_23_*): 23 IPv6
    /// entries take as many bytes as 53 IPv4 ones, and the reader took the
    /// IPv4 layout first.
    #[test]
    fn ipv6_server_lists_are_not_read_as_ipv4() {
        let servers: Vec<ServerAddr> = (0..23)
            .map(|i| ServerAddr {
                ip: format!("fd00::{i:x}"),
                port: 23000 + i,
            })
            .collect();
        let store = StoreTargets {
            group: "group1".into(),
            servers: servers.clone(),
            store_path_index: 1,
        };
        let mut b = BytesMut::new();
        store.encode(&mut b, IP_ADDRESS_SIZE);
        assert_eq!(StoreTargets::decode(&b).unwrap(), store);
        let fetch = FetchTargets {
            group: "group1".into(),
            servers,
        };
        let mut b = BytesMut::new();
        fetch.encode(&mut b, IP_ADDRESS_SIZE);
        assert_eq!(FetchTargets::decode(&b).unwrap(), fetch);
    }
}
