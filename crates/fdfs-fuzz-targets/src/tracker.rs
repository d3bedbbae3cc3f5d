//! Target `tracker_msg`: every tracker request and response decoder
//! (`tracker_msg`, `leader_msg`, the list answers of `stat`). The first
//! byte picks the decoder, the rest is the body. Selectors past the
//! decoders build a value from the input and check that it survives
//! encode then decode (the multi-server answers, whose IP width the reader
//! infers from the length).

use bytes::BytesMut;
use fdfs_proto::leader_msg::{self, JoinLeaderReq, PingLeaderReq, SysFileReq, TrackerStatus};
use fdfs_proto::stat::{GroupStat, StorageStat};
use fdfs_proto::tracker_msg::{self as tm, *};
use fdfs_proto::{IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE, MAX_SERVERS_EACH_GROUP};

use crate::{assert_round_trip, rt};

/// Number of selector values in use; the selector byte is taken modulo it.
const SELECTORS: u8 = 27;

pub fn tracker_msg(data: &[u8]) {
    let Some((sel, body)) = crate::split_selector(data) else {
        return;
    };
    match sel % SELECTORS {
        0 => {
            if let Ok(g) = decode_group_only(body) {
                assert!(g.chars().count() <= body.len());
            }
        }
        1 => {
            if let Ok(t) = StoreTarget::decode(body) {
                let width = ip_width_of(body.len(), 16 + 8 + 1, 1);
                assert_round_trip(
                    "StoreTarget",
                    &t,
                    |t, b| t.encode(b, width),
                    StoreTarget::decode,
                );
            }
        }
        2 => {
            if let Ok(t) = StoreTargets::decode(body) {
                assert!(t.servers.len() <= MAX_SERVERS_EACH_GROUP);
                let width = ip_width_of(body.len(), 17, t.servers.len());
                assert_round_trip(
                    "StoreTargets",
                    &t,
                    |t, b| t.encode(b, width),
                    StoreTargets::decode,
                );
            }
        }
        3 => rt(
            "GroupFileReq",
            body,
            GroupFileReq::decode,
            GroupFileReq::encode,
        ),
        4 => {
            if let Ok(t) = FetchTargets::decode(body) {
                assert!(t.servers.len() <= MAX_SERVERS_EACH_GROUP);
                let width = ip_width_of(body.len(), 16, t.servers.len());
                assert_round_trip(
                    "FetchTargets",
                    &t,
                    |t, b| t.encode(b, width),
                    FetchTargets::decode,
                );
            }
        }
        5 => rt(
            "GroupStorageReq",
            body,
            GroupStorageReq::decode,
            GroupStorageReq::encode,
        ),
        6 => {
            if let Ok(j) = JoinReq::decode(body) {
                assert!(j.trackers.len() <= fdfs_proto::MAX_TRACKERS);
                assert!(j.trackers.iter().all(|t| !t.contains('\n')));
                // Tracker lines may carry bytes the encoder writes back
                // as is: only a value without them must round-trip.
                if !j.trackers.iter().any(|t| t.contains('\0')) {
                    assert_round_trip("JoinReq", &j, JoinReq::encode, JoinReq::decode);
                }
            }
        }
        7 => rt("JoinResp", body, JoinResp::decode, JoinResp::encode),
        8 => {
            if let Ok(Some(stats)) = decode_beat(body) {
                let mut buf = BytesMut::new();
                stats.encode(&mut buf);
                assert_eq!(&buf[..], body, "beat stats: encode(decode) != input");
            }
        }
        9 => {
            let Some((&count, body)) = body.split_first() else {
                return;
            };
            if let Ok(paths) = decode_disk_usage(body, usize::from(count)) {
                assert_eq!(paths.len(), usize::from(count));
                let mut buf = BytesMut::new();
                encode_disk_usage(&mut buf, &paths);
                assert_eq!(&buf[..], body, "disk usage: encode(decode) != input");
            }
        }
        10 => rt(
            "ChangeNotice",
            body,
            ChangeNotice::decode,
            ChangeNotice::encode,
        ),
        11 => rt("GetMyIpReq", body, GetMyIpReq::decode, GetMyIpReq::encode),
        12 => rt(
            "StorageIdsReq",
            body,
            StorageIdsReq::decode,
            StorageIdsReq::encode,
        ),
        13 => {
            if let Ok(r) = StorageIdsResp::decode(body) {
                assert!(r.lines.iter().all(|l| !l.contains('\n') && !l.is_empty()));
                assert_round_trip(
                    "StorageIdsResp",
                    &r,
                    StorageIdsResp::encode,
                    StorageIdsResp::decode,
                );
            }
        }
        14 => rt("SyncSource", body, SyncSource::decode, SyncSource::encode),
        15 => rt_list("sync report", body, decode_sync_report, encode_sync_report),
        16 => rt_list(
            "sync progress",
            body,
            decode_sync_progress,
            encode_sync_progress,
        ),
        17 => rt(
            "TrackerStatus",
            body,
            TrackerStatus::decode,
            TrackerStatus::encode,
        ),
        18 => rt(
            "JoinLeaderReq",
            body,
            JoinLeaderReq::decode,
            JoinLeaderReq::encode,
        ),
        19 => rt(
            "PingLeaderReq",
            body,
            PingLeaderReq::decode,
            PingLeaderReq::encode,
        ),
        20 => rt_list(
            "group trunks",
            body,
            leader_msg::decode_group_trunks,
            leader_msg::encode_group_trunks,
        ),
        21 => {
            if let Ok(addr) = leader_msg::decode_leader_addr(body) {
                let text = addr.to_string();
                assert_eq!(
                    leader_msg::decode_leader_addr(text.as_bytes()).ok(),
                    Some(addr)
                );
            }
        }
        22 => {
            if let Ok(r) = SysFileReq::decode(body) {
                assert!(usize::from(r.index) < leader_msg::SYS_FILE_NAMES.len() && r.offset >= 0);
                assert_round_trip("SysFileReq", &r, SysFileReq::encode, SysFileReq::decode);
            }
        }
        23 => {
            if let Ok(list) = GroupStat::decode_list(body) {
                let mut buf = BytesMut::new();
                list.iter().for_each(|g| g.encode(&mut buf));
                if !format!("{list:?}").contains('\u{FFFD}') {
                    assert_eq!(GroupStat::decode_list(&buf).ok(), Some(list));
                }
            }
        }
        24 => {
            if let Ok(list) = StorageStat::decode_list(body) {
                assert!(list.len() <= MAX_SERVERS_EACH_GROUP);
            }
        }
        25 => built_servers(body, false),
        _ => built_servers(body, true),
    }
}

fn rt_list<T, E: std::fmt::Debug>(
    what: &str,
    body: &[u8],
    decode: fn(&[u8]) -> Result<Vec<T>, E>,
    encode: fn(&mut BytesMut, &[T]),
) where
    T: PartialEq + std::fmt::Debug,
{
    if let Ok(v) = decode(body) {
        assert_round_trip(what, &v, |v, b| encode(b, v), decode);
    }
}

/// The IP width whose layout gives `body_len` for `servers` entries.
fn ip_width_of(body_len: usize, fixed: usize, servers: usize) -> usize {
    if body_len == fixed + servers * (IPV4_ADDRESS_SIZE - 1 + 8) {
        IPV4_ADDRESS_SIZE
    } else {
        IP_ADDRESS_SIZE
    }
}

/// Builds a query answer of 1..=32 servers at either IP width from the
/// input, and checks that the reader gets back exactly what was sent.
fn built_servers(data: &[u8], fetch: bool) {
    let [count, flags, rest @ ..] = data else {
        return;
    };
    let n = usize::from(*count) % MAX_SERVERS_EACH_GROUP + 1;
    let wide = flags & 1 != 0;
    let width = if wide {
        IP_ADDRESS_SIZE
    } else {
        IPV4_ADDRESS_SIZE
    };
    let servers: Vec<ServerAddr> = (0..n)
        .map(|i| {
            let b = rest.get(i).copied().unwrap_or(i as u8);
            let ip = if wide {
                format!("fd00::{b:x}")
            } else {
                format!("10.0.0.{b}")
            };
            ServerAddr {
                ip,
                port: 23000 + u16::from(b),
            }
        })
        .collect();
    let group = "group1".to_string();
    if fetch {
        let t = FetchTargets { group, servers };
        let mut buf = BytesMut::new();
        t.encode(&mut buf, width);
        assert_eq!(
            FetchTargets::decode(&buf).ok().as_ref(),
            Some(&t),
            "width {width}"
        );
    } else {
        let t = tm::StoreTargets {
            group,
            servers,
            store_path_index: flags >> 1,
        };
        let mut buf = BytesMut::new();
        t.encode(&mut buf, width);
        assert_eq!(
            StoreTargets::decode(&buf).ok().as_ref(),
            Some(&t),
            "width {width}"
        );
    }
}
