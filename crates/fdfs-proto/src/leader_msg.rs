//! Tracker ↔ tracker bodies (PROTOCOL.md §2.15, §4.8, §4.9): the status
//! used to elect a leader (64), the follower's JOIN_LEADER (58) and
//! PING_LEADER (65), and the data-file copy (61–63).

use bytes::{BufMut, BytesMut};

use crate::status::ProtoError;
use crate::wire::{put_fixed, Reader};
use crate::{GROUP_NAME_MAX_LEN, STORAGE_ID_MAX_SIZE};

/// Answer of TRACKER_GET_STATUS (64): what the election sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerStatus {
    pub if_leader: bool,
    /// Seconds since start, rounded down to 300.
    pub running_time_secs: i64,
    /// Downtime before the current run, rounded down to 300.
    pub restart_interval_secs: i64,
}

impl TrackerStatus {
    pub const LEN: usize = 17;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(self.if_leader));
        buf.put_i64(self.running_time_secs);
        buf.put_i64(self.restart_interval_secs);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(TrackerStatus {
            if_leader: r.u8()? != 0,
            running_time_secs: r.i64()?,
            restart_interval_secs: r.i64()?,
        })
    }
}

/// JOIN_LEADER (58): a follower announces itself to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinLeaderReq {
    /// The follower's own start time (unix seconds).
    pub up_time: i64,
    pub version: String,
    /// The follower's tracker port; with the connection's source IP it
    /// names the follower.
    pub tracker_port: u16,
}

/// Width of the version field of JOIN_LEADER.
const VERSION_FIELD_LEN: usize = 8;

impl JoinLeaderReq {
    pub const LEN: usize = 24;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_i64(self.up_time);
        put_fixed(buf, self.version.as_bytes(), VERSION_FIELD_LEN);
        buf.put_i64(i64::from(self.tracker_port));
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let up_time = r.i64()?;
        let version = r.fixed_str(VERSION_FIELD_LEN)?;
        let port = r.i64()?;
        let tracker_port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| ProtoError::invalid(format!("bad tracker port {port}")))?;
        Ok(JoinLeaderReq {
            up_time,
            version,
            tracker_port,
        })
    }
}

/// PING_LEADER (65) request: the follower's connection counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingLeaderReq {
    pub alloc_connections: i32,
    pub current_connections: i32,
    pub max_connections: i32,
}

impl PingLeaderReq {
    pub const LEN: usize = 12;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.alloc_connections);
        buf.put_i32(self.current_connections);
        buf.put_i32(self.max_connections);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(PingLeaderReq {
            alloc_connections: r.i32()?,
            current_connections: r.i32()?,
            max_connections: r.i32()?,
        })
    }
}

/// One entry of a PING_LEADER answer: a group and its trunk server id
/// (empty: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTrunk {
    pub group: String,
    pub trunk_server_id: String,
}

/// Size of one [`GroupTrunk`] on the wire.
pub const GROUP_TRUNK_LEN: usize = GROUP_NAME_MAX_LEN + STORAGE_ID_MAX_SIZE;

pub fn encode_group_trunks(buf: &mut BytesMut, entries: &[GroupTrunk]) {
    for e in entries {
        put_fixed(buf, e.group.as_bytes(), GROUP_NAME_MAX_LEN);
        put_fixed(buf, e.trunk_server_id.as_bytes(), STORAGE_ID_MAX_SIZE);
    }
}

pub fn decode_group_trunks(body: &[u8]) -> Result<Vec<GroupTrunk>, ProtoError> {
    if !body.len().is_multiple_of(GROUP_TRUNK_LEN) {
        return Err(ProtoError::BadLength(body.len()));
    }
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(body.len() / GROUP_TRUNK_LEN);
    while r.remaining() > 0 {
        out.push(GroupTrunk {
            group: r.fixed_str(GROUP_NAME_MAX_LEN)?,
            trunk_server_id: r.fixed_str(STORAGE_ID_MAX_SIZE)?,
        });
    }
    Ok(out)
}

/// The text body of NOTIFY_NEXT_LEADER (66) / COMMIT_NEXT_LEADER (67):
/// `ip:port` of the candidate, at most this long.
pub const LEADER_ADDR_MAX_LEN: usize = 52;

/// Parses the `ip:port` (IPv6: `[ip]:port`) body of 66/67.
pub fn decode_leader_addr(body: &[u8]) -> Result<std::net::SocketAddr, ProtoError> {
    if body.is_empty() || body.len() > LEADER_ADDR_MAX_LEN {
        return Err(ProtoError::BadLength(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| ProtoError::invalid("address not UTF-8"))?;
    text.parse()
        .map_err(|_| ProtoError::invalid(format!("bad leader address {text:?}")))
}

/// The data files a tracker copies from a peer (§4.9), by wire index.
pub const SYS_FILE_NAMES: [&str; 4] = [
    "storage_groups_new.dat",
    "storage_servers_new.dat",
    "storage_sync_timestamp.dat",
    "storage_changelog.dat",
];

/// Most file bytes in one GET_ONE_SYS_FILE answer: the C tracker's 8 KiB
/// buffer minus the header, the size field and a NUL.
pub const SYS_FILE_CHUNK_BYTES: usize = 8192 - 8 - 10 - 1;

/// GET_ONE_SYS_FILE (63) request: file index and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysFileReq {
    pub index: u8,
    pub offset: i64,
}

impl SysFileReq {
    pub const LEN: usize = 9;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.index);
        buf.put_i64(self.offset);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let index = r.u8()?;
        let offset = r.i64()?;
        if usize::from(index) >= SYS_FILE_NAMES.len() || offset < 0 {
            return Err(ProtoError::invalid(format!(
                "bad sys file request {index}/{offset}"
            )));
        }
        Ok(SysFileReq { index, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_layout_matches_the_capture() {
        // §2.15: `01`, running_time 300, restart_interval 0.
        let mut buf = BytesMut::new();
        TrackerStatus {
            if_leader: true,
            running_time_secs: 300,
            restart_interval_secs: 0,
        }
        .encode(&mut buf);
        let mut want = vec![1u8];
        want.extend_from_slice(&300i64.to_be_bytes());
        want.extend_from_slice(&0i64.to_be_bytes());
        assert_eq!(&buf[..], &want[..]);
    }

    #[test]
    fn leader_addr_parses_both_families() {
        assert_eq!(
            decode_leader_addr(b"127.0.0.12:22300").unwrap(),
            "127.0.0.12:22300".parse().unwrap()
        );
        assert_eq!(
            decode_leader_addr(b"[::1]:22122").unwrap(),
            "[::1]:22122".parse().unwrap()
        );
        assert!(decode_leader_addr(b"").is_err());
        assert!(decode_leader_addr(b"nonsense").is_err());
        assert!(decode_leader_addr(&[b'1'; 53]).is_err());
    }

    #[test]
    fn sys_file_request_checks_index_and_offset() {
        let mut buf = BytesMut::new();
        SysFileReq {
            index: 4,
            offset: 0,
        }
        .encode(&mut buf);
        assert!(SysFileReq::decode(&buf).is_err());
        let mut buf = BytesMut::new();
        SysFileReq {
            index: 1,
            offset: -1,
        }
        .encode(&mut buf);
        assert!(SysFileReq::decode(&buf).is_err());
    }

    proptest! {
        #[test]
        fn status_roundtrip(l in any::<bool>(), a in any::<i64>(), b in any::<i64>()) {
            let s = TrackerStatus { if_leader: l, running_time_secs: a, restart_interval_secs: b };
            let mut buf = BytesMut::new();
            s.encode(&mut buf);
            prop_assert_eq!(TrackerStatus::decode(&buf).unwrap(), s);
        }

        #[test]
        fn join_leader_roundtrip(up in any::<i64>(), port in 1u16..) {
            let j = JoinLeaderReq { up_time: up, version: "6.16.1".into(), tracker_port: port };
            let mut buf = BytesMut::new();
            j.encode(&mut buf);
            prop_assert_eq!(buf.len(), JoinLeaderReq::LEN);
            prop_assert_eq!(JoinLeaderReq::decode(&buf).unwrap(), j);
        }

        #[test]
        fn ping_roundtrip(a in any::<i32>(), b in any::<i32>(), c in any::<i32>()) {
            let p = PingLeaderReq { alloc_connections: a, current_connections: b, max_connections: c };
            let mut buf = BytesMut::new();
            p.encode(&mut buf);
            prop_assert_eq!(PingLeaderReq::decode(&buf).unwrap(), p);
        }

        #[test]
        fn group_trunks_roundtrip(groups in proptest::collection::vec(("[a-z0-9]{1,16}", "[0-9.]{0,15}"), 0..5)) {
            let entries: Vec<GroupTrunk> = groups.into_iter().map(|(g, t)| GroupTrunk { group: g, trunk_server_id: t }).collect();
            let mut buf = BytesMut::new();
            encode_group_trunks(&mut buf, &entries);
            prop_assert_eq!(decode_group_trunks(&buf).unwrap(), entries);
        }

        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TrackerStatus::decode(&body);
            let _ = JoinLeaderReq::decode(&body);
            let _ = PingLeaderReq::decode(&body);
            let _ = decode_group_trunks(&body);
            let _ = decode_leader_addr(&body);
            let _ = SysFileReq::decode(&body);
        }
    }
}
