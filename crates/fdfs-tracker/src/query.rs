//! Client queries 101–107 (PROTOCOL.md §2.1–§2.3): where to upload, where
//! to download or update a file. Selection itself lives in `select`.

use bytes::BytesMut;
use fdfs_proto::tracker_msg::{
    decode_group_only, FetchTargets, ServerAddr, StoreTarget, StoreTargets,
};
use fdfs_proto::GROUP_NAME_MAX_LEN;

use crate::handler::{bad_length, HandlerResult, OpError};
use crate::select::{self, FetchKind, Target};
use crate::state::no_group;
use crate::{now_secs, Tracker};

/// Smallest 102/103/105 body: group + a 22-byte name.
pub const MIN_FETCH_BODY_BYTES: usize = GROUP_NAME_MAX_LEN + 22;
/// 102/103/105 bodies must be shorter than group + 128 bytes.
pub const MAX_FETCH_BODY_BYTES: usize = GROUP_NAME_MAX_LEN + 128 - 1;

/// Response IP field width `W` (16 or 46).
pub fn ip_width(t: &Tracker) -> usize {
    if t.conf.response_ip_addr_size == 16 {
        16
    } else {
        46
    }
}

fn addr(t: &Target) -> ServerAddr {
    ServerAddr {
        ip: t.ip.clone(),
        port: t.port,
    }
}

/// QUERY_STORE_* (101/104/106/107).
pub fn store(t: &Tracker, body: &[u8], with_group: bool, all: bool) -> HandlerResult {
    let group = if with_group {
        Some(decode_group_only(body)?)
    } else if body.is_empty() {
        None
    } else {
        return Err(bad_length(body));
    };
    let choice = select::select_store(&mut t.lock(), &t.params(), group.as_deref(), all)?;
    // Every upload asks: one allocation for the answer, not a growing one
    // and a copy.
    let mut buf = BytesMut::with_capacity(STORE_ANSWER_CAPACITY_BYTES);
    if all {
        StoreTargets {
            group: choice.group,
            servers: choice.servers.iter().map(addr).collect(),
            store_path_index: choice.store_path_index,
        }
        .encode(&mut buf, ip_width(t));
    } else {
        let first = choice
            .servers
            .first()
            .ok_or_else(|| OpError::not_found(format!("no storage in group {}", choice.group)))?;
        StoreTarget {
            addr: addr(first),
            group: choice.group,
            store_path_index: choice.store_path_index,
        }
        .encode(&mut buf, ip_width(t));
    }
    Ok(Vec::from(buf))
}

/// Room for a one-storage store answer of any IP width (PROTOCOL §4.4).
const STORE_ANSWER_CAPACITY_BYTES: usize = 64;

/// QUERY_FETCH_ONE / QUERY_UPDATE / QUERY_FETCH_ALL (102/103/105).
pub fn fetch(t: &Tracker, body: &[u8], kind: FetchKind) -> HandlerResult {
    if !(MIN_FETCH_BODY_BYTES..=MAX_FETCH_BODY_BYTES).contains(&body.len()) {
        return Err(bad_length(body));
    }
    let (group_field, filename) = body.split_at(GROUP_NAME_MAX_LEN);
    let group = fdfs_proto::wire::fixed_str(group_field);
    let facts = select::decode_file_facts(filename);
    let now = now_secs();
    let targets = {
        let mut c = t.lock();
        let g = c.groups.get_mut(&group).ok_or_else(|| no_group(&group))?;
        let out = select::select_fetch(g, kind, &facts, &t.params(), now)?;
        (g.name.clone(), out)
    };
    let mut buf = BytesMut::new();
    FetchTargets {
        group: targets.0,
        servers: targets.1.iter().map(addr).collect(),
    }
    .encode(&mut buf, ip_width(t));
    Ok(buf.to_vec())
}
