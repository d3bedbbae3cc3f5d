//! Storage ids (`use_storage_id`, storage_ids.conf): which id a joining
//! storage gets (§4.2) and the commands that hand the id table out
//! (FETCH_STORAGE_IDS 69 §2.14, GET_SERVER_ID 70 and GET_GROUP_NAME 109
//! §4.6, the id-mode answer of GET_MY_IP 60).

use bytes::BytesMut;
use fdfs_config::{StorageIdEntry, StorageIds};
use fdfs_proto::tracker_msg::{StorageIdsReq, StorageIdsResp};
use fdfs_proto::wire::fixed_str;
use fdfs_proto::{Status, GROUP_NAME_MAX_LEN, HEADER_LEN};

use crate::handler::{bad_length, HandlerResult, OpError};
use crate::Tracker;

/// FETCH_STORAGE_IDS stops adding lines when fewer bytes than this remain
/// in the answer buffer (§2.14).
const MIN_ROOM_PER_LINE: usize = 128;
/// Longest IP text (IPv6) in GET_GROUP_NAME.
const MAX_IP_TEXT_LEN: usize = 46;

/// The id-table entry a JOIN is keyed by (§4.2): the reported id when the
/// tracker trusts it and it is set, else the entry of group + peer IP +
/// port. Unknown → ENOENT; an entry of another group → EINVAL.
pub fn join_entry<'a>(
    t: &'a Tracker,
    group: &str,
    reported_id: &str,
    peer_ip: &str,
    port: u16,
) -> Result<&'a StorageIdEntry, OpError> {
    let ids = t.storage_ids.as_ref().ok_or_else(no_storage_ids)?;
    let entry = if t.conf.trust_storage_server_id && !reported_id.is_empty() {
        ids.find_by_id(reported_id)
    } else {
        ids.find_by_addr(group, peer_ip, port)
    };
    let Some(entry) = entry else {
        // The JOIN's text fields were checked (`guard::join`) before.
        if let Some(held_back) = t.refusals.allow(crate::now_secs()) {
            tracing::warn!(%group, %peer_ip, port, id = %reported_id, held_back, "storage not in storage_ids.conf");
        }
        return Err(not_listed(group, peer_ip, port));
    };
    if entry.group != group {
        tracing::warn!(%group, id = %entry.id, id_group = %entry.group, "storage id belongs to another group");
        return Err(OpError::invalid(format!(
            "storage id {} belongs to group {}",
            entry.id, entry.group
        )));
    }
    Ok(entry)
}

/// The address a storage of `entry` is listed under: the connection's IP
/// when the entry names it, else the entry's first (inner) address if it
/// is an IP literal, else the connection's IP.
pub fn listed_ip(entry: &StorageIdEntry, peer_ip: &str) -> String {
    if entry.hosts.iter().any(|h| h == peer_ip) {
        return peer_ip.to_string();
    }
    entry
        .hosts
        .first()
        .filter(|h| h.parse::<std::net::IpAddr>().is_ok())
        .cloned()
        .unwrap_or_else(|| peer_ip.to_string())
}

/// FETCH_STORAGE_IDS (69): the id table from `start_index` on, as many
/// lines as fit the answer buffer; the client asks again for the rest.
pub fn fetch_storage_ids(t: &Tracker, body: &[u8]) -> HandlerResult {
    let req = StorageIdsReq::decode(body)?;
    let Some(ids) = t.storage_ids.as_ref().filter(|_| t.conf.use_storage_id) else {
        return if req.allow_empty {
            Ok(vec![0u8; 8])
        } else {
            Err(no_storage_ids())
        };
    };
    let capacity = usize::try_from(t.conf.max_pkg_size_bytes())
        .unwrap_or(usize::MAX)
        .saturating_sub(HEADER_LEN);
    Ok(render_ids(ids, req.start_index, capacity)?.to_vec())
}

fn render_ids(ids: &StorageIds, start_index: i32, capacity: usize) -> Result<BytesMut, OpError> {
    let out_of_range = || {
        OpError::invalid(format!(
            "start index {start_index} of {} storage ids",
            ids.len()
        ))
    };
    let start = usize::try_from(start_index).map_err(|_| out_of_range())?;
    if start > ids.len() || (start == ids.len() && start > 0) {
        return Err(out_of_range());
    }
    let mut resp = StorageIdsResp {
        total: i32::try_from(ids.len()).unwrap_or(i32::MAX),
        lines: Vec::new(),
    };
    let mut used = 8;
    for entry in &ids.entries[start..] {
        if used + MIN_ROOM_PER_LINE > capacity {
            break;
        }
        let line = entry.to_line();
        used += line.len() + 1;
        resp.lines.push(line);
    }
    let mut buf = BytesMut::new();
    resp.encode(&mut buf);
    Ok(buf)
}

/// Splits the `ip:port` text of GET_SERVER_ID / GET_STATUS; a missing or
/// unreadable port is 0 (matches any entry port).
pub fn split_ip_port(addr: &str) -> (String, u16) {
    if let Some(rest) = addr.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        (ip.to_string(), port.unwrap_or(0))
    } else if addr.matches(':').count() == 1 {
        let (ip, port) = addr.split_once(':').unwrap_or((addr, ""));
        (ip.to_string(), port.parse().unwrap_or(0))
    } else {
        (addr.to_string(), 0)
    }
}

/// GET_SERVER_ID (70) in id mode: the id of group + ip + port, or ENOENT.
pub fn server_id(ids: &StorageIds, group: &str, ip: &str, port: u16) -> HandlerResult {
    ids.find_by_addr(group, ip, port)
        .map(|e| e.id.clone().into_bytes())
        .ok_or_else(|| not_listed(group, ip, port))
}

/// GET_MY_IP (60) in id mode: every address of the peer's id entry,
/// comma separated, or None when it has no entry.
pub fn my_ips(t: &Tracker, group: &str, peer_ip: &str, port: u16) -> Option<String> {
    let ids = t.storage_ids.as_ref()?;
    ids.find_by_addr(group, peer_ip, port)
        .map(|e| e.hosts.join(","))
}

/// GET_GROUP_NAME (109): the group of the storage at (peer IP or the given
/// IP text) + port. Needs storage ids (EOPNOTSUPP otherwise).
pub fn group_name(t: &Tracker, peer_ip: &str, body: &[u8]) -> HandlerResult {
    let ids = t.storage_ids.as_ref().ok_or_else(no_storage_ids)?;
    let (ip, port_bytes) = match body.len() {
        0..=3 => return Err(bad_length(body)),
        4 => (peer_ip.to_string(), body),
        n => {
            let ip_len = n - 4;
            if ip_len >= MAX_IP_TEXT_LEN {
                return Err(OpError::new(
                    Status::ENAMETOOLONG,
                    format!("IP text of {ip_len} bytes"),
                ));
            }
            (fixed_str(&body[..ip_len]), &body[ip_len..])
        }
    };
    let port_raw = i32::from_be_bytes(port_bytes.try_into().map_err(|_| bad_length(body))?);
    let port = u16::try_from(port_raw).map_err(|_| OpError::invalid(format!("port {port_raw}")))?;
    let entry = ids
        .find_by_addr("", &ip, port)
        .ok_or_else(|| not_listed("", &ip, port))?;
    let mut out = vec![0u8; GROUP_NAME_MAX_LEN];
    let name = entry.group.as_bytes();
    let n = name.len().min(GROUP_NAME_MAX_LEN);
    out[..n].copy_from_slice(&name[..n]);
    Ok(out)
}

/// EOPNOTSUPP: the command needs `use_storage_id`.
fn no_storage_ids() -> OpError {
    OpError::new(Status::EOPNOTSUPP, "storage ids are not in use")
}

/// ENOENT: storage_ids.conf has no entry for the address.
fn not_listed(group: &str, ip: &str, port: u16) -> OpError {
    OpError::not_found(format!(
        "{} of group {group:?} is not in storage_ids.conf",
        fdfs_util::net::host_port(ip, port)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ids(text: &str) -> StorageIds {
        StorageIds::parse_str(text, Path::new("storage_ids.conf")).unwrap()
    }

    #[test]
    fn id_list_chunks_and_ranges() {
        let table = ids("100001 group1 127.0.0.1\n100002 group1 127.0.0.2 rw=read\n");
        let all = render_ids(&table, 0, 8192).unwrap();
        let resp = StorageIdsResp::decode(&all).unwrap();
        assert_eq!(resp.total, 2);
        assert_eq!(
            resp.lines,
            ["100001 group1 127.0.0.1", "100002 group1 127.0.0.2 rw=read"]
        );
        assert_eq!(&all[..8], &[0, 0, 0, 2, 0, 0, 0, 2]);
        // Room for one line only: the client continues at index 1.
        let first = StorageIdsResp::decode(&render_ids(&table, 0, 8 + 129).unwrap()).unwrap();
        assert_eq!(first.lines.len(), 1);
        let rest = StorageIdsResp::decode(&render_ids(&table, 1, 8192).unwrap()).unwrap();
        assert_eq!(rest.lines, ["100002 group1 127.0.0.2 rw=read"]);
        assert_eq!(
            render_ids(&table, 2, 8192).unwrap_err().status,
            Status::EINVAL
        );
        assert_eq!(
            render_ids(&table, -1, 8192).unwrap_err().status,
            Status::EINVAL
        );
        let empty = render_ids(&StorageIds::default(), 0, 8192).unwrap();
        assert_eq!(&empty[..], &[0u8; 8]);
    }

    #[test]
    fn server_id_lookup() {
        let table = ids("100001 group1 10.0.0.1:23000\n100002 group1 10.0.0.2:23000\n");
        assert_eq!(split_ip_port("10.0.0.2:23000"), ("10.0.0.2".into(), 23000));
        assert_eq!(split_ip_port("[::1]:23000"), ("::1".into(), 23000));
        assert_eq!(
            server_id(&table, "group1", "10.0.0.2", 23000).unwrap(),
            b"100002"
        );
        assert_eq!(
            server_id(&table, "group1", "10.0.0.2", 23001)
                .unwrap_err()
                .status,
            Status::ENOENT
        );
        assert_eq!(
            server_id(&table, "group2", "10.0.0.2", 23000)
                .unwrap_err()
                .status,
            Status::ENOENT
        );
    }

    #[test]
    fn listed_address() {
        let table = ids("1 g 10.0.0.1,1.2.3.4\n2 g host.example\n");
        assert_eq!(listed_ip(&table.entries[0], "1.2.3.4"), "1.2.3.4");
        assert_eq!(listed_ip(&table.entries[0], "9.9.9.9"), "10.0.0.1");
        assert_eq!(listed_ip(&table.entries[1], "9.9.9.9"), "9.9.9.9");
    }
}
