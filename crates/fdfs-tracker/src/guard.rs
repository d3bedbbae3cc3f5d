//! Peer text checks and refusal warnings: every string a request carries
//! (JOIN, REPORT_STATUS, REPORT_IP_CHANGED, DELETE_STORAGE) is checked here
//! before any of it is stored, persisted or logged. Also the cluster-secret
//! exchange (CLUSTER_CHALLENGE / CLUSTER_PROVE) and the check that a JOIN
//! or REPORT_IP_CHANGED comes from a connection that proved the secret.

use fdfs_proto::tracker_msg::JoinReq;

use crate::handler::OpError;

/// Longest tracker entry of a JOIN (`host[,host2]:port`): the original
/// allows 100 bytes per line, newline included.
pub const MAX_TRACKER_ENTRY_BYTES: usize = 99;
/// A refused-peer warning is logged at most once per this many seconds.
pub const REFUSAL_WARN_INTERVAL_SECS: i64 = 10;

/// True when `text` is printable ASCII without spaces. Such text can go
/// into a `key=value` line of the data files, a space separated changelog
/// line or a log line as it is; a newline would start a new data-file
/// line, a space a new changelog field.
pub fn is_plain(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic())
}

/// A text field that may be empty: plain, else EINVAL naming the field.
pub fn plain(field: &str, text: &str) -> Result<(), OpError> {
    if is_plain(text) {
        Ok(())
    } else {
        Err(OpError::invalid(format!(
            "{field} {text:?} is not printable ASCII without spaces"
        )))
    }
}

/// A group name (`[A-Za-z0-9]{1,16}`), else EINVAL.
pub fn group(name: &str) -> Result<(), OpError> {
    if fdfs_proto::is_valid_group_name(name) {
        Ok(())
    } else {
        Err(OpError::invalid(format!(
            "group name {name:?} is not [A-Za-z0-9]{{1,16}}"
        )))
    }
}

/// One tracker entry of a JOIN: `host:port`, `host1,host2:port` or
/// `[v6]:port`, nothing else.
fn tracker_entry(entry: &str) -> Result<(), OpError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b".-_:[],".contains(&b);
    if entry.is_empty() || entry.len() > MAX_TRACKER_ENTRY_BYTES || !entry.bytes().all(allowed) {
        return Err(OpError::invalid(format!(
            "tracker entry {entry:?} is not host:port"
        )));
    }
    Ok(())
}

/// Every string field of a JOIN (§4.2); the decoder has checked the group
/// name, the counts and the framing of the tracker lines.
pub fn join(req: &JoinReq) -> Result<(), OpError> {
    group(&req.group)?;
    plain("version", &req.version)?;
    plain("storage id", &req.storage_id)?;
    plain("tracker ip", &req.tracker_ip)?;
    req.trackers.iter().try_for_each(|e| tracker_entry(e))
}

/// CLUSTER_CHALLENGE (fastdfs-rs extension): a fresh nonce for the peer to
/// prove the cluster secret against. EOPNOTSUPP without a secret, so a
/// storage that has one can tell it need not prove anything here.
pub fn cluster_challenge(
    t: &crate::Tracker,
    ctx: &mut crate::handler::ConnCtx,
    body: &[u8],
) -> crate::handler::HandlerResult {
    crate::handler::expect_no_body(body)?;
    if t.conf.cluster_secret.is_none() {
        return Err(OpError::new(
            fdfs_proto::Status::EOPNOTSUPP,
            "no cluster secret configured",
        ));
    }
    let nonce = ctx
        .cluster
        .issue()
        .map_err(|e| OpError::new(fdfs_proto::Status::EIO, e.to_string()))?;
    Ok(nonce.to_vec())
}

/// CLUSTER_PROVE (fastdfs-rs extension): the peer's answer to the last
/// challenge; EPERM when wrong or when no challenge is pending.
pub fn cluster_prove(
    t: &crate::Tracker,
    ctx: &mut crate::handler::ConnCtx,
    body: &[u8],
) -> crate::handler::HandlerResult {
    use fdfs_util::cluster_secret::Purpose;
    let Some(secret) = &t.conf.cluster_secret else {
        return Err(OpError::new(
            fdfs_proto::Status::EOPNOTSUPP,
            "no cluster secret configured",
        ));
    };
    if ctx.cluster.answer(secret, Purpose::TrackerJoin, body) {
        return Ok(Vec::new());
    }
    if let Some(held_back) = t.refusals.allow(fdfs_util::now_secs()) {
        tracing::warn!(peer = %ctx.peer_ip, held_back, "wrong cluster secret proof: refused");
    }
    Err(OpError::new(
        fdfs_proto::Status::EPERM,
        "wrong cluster secret proof",
    ))
}

/// EPERM unless the tracker has no cluster secret or this connection
/// proved it: guards JOIN and REPORT_IP_CHANGED, so nobody who lacks the
/// secret can add a storage to a group or move one.
pub fn require_cluster_proof(
    t: &crate::Tracker,
    ctx: &crate::handler::ConnCtx,
    cmd: u8,
) -> Result<(), OpError> {
    if t.conf.cluster_secret.is_none() || ctx.cluster.proven() {
        return Ok(());
    }
    if let Some(held_back) = t.refusals.allow(fdfs_util::now_secs()) {
        tracing::warn!(
            peer = %ctx.peer_ip,
            cmd,
            held_back,
            "storage command from a peer that did not prove the cluster secret: refused"
        );
    }
    Err(OpError::new(
        fdfs_proto::Status::EPERM,
        "the cluster secret was not proven on this connection",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use fdfs_proto::Status;

    fn join_req() -> JoinReq {
        JoinReq {
            tracker_ip: "10.0.0.1".into(),
            trackers: vec![
                "10.0.0.1:22122".into(),
                "tracker-2.example,10.0.0.2:22122".into(),
                "[::1]:22122".into(),
            ],
            ..fdfs_testkit::join_req()
        }
    }

    #[test]
    fn join_fields_must_be_plain() {
        assert_eq!(join(&join_req()), Ok(()));
        let bad = [
            JoinReq {
                version: "6.1\n6".into(),
                ..join_req()
            },
            JoinReq {
                version: "6 16".into(),
                ..join_req()
            },
            JoinReq {
                storage_id: "1\tx".into(),
                ..join_req()
            },
            JoinReq {
                tracker_ip: "\u{fffd}".into(),
                ..join_req()
            },
            JoinReq {
                trackers: vec!["10.0.0.1:22122 #".into()],
                ..join_req()
            },
            JoinReq {
                trackers: vec![String::new()],
                ..join_req()
            },
            JoinReq {
                trackers: vec!["a".repeat(MAX_TRACKER_ENTRY_BYTES + 1)],
                ..join_req()
            },
        ];
        for req in bad {
            assert_eq!(
                join(&req).map_err(|e| e.status),
                Err(Status::EINVAL),
                "{req:?}"
            );
        }
    }

    #[test]
    fn a_decoded_join_with_a_newline_in_its_version_is_refused() {
        let mut body = BytesMut::new();
        join_req().encode(&mut body);
        // The 8-byte version field starts at offset 65 (§4.2).
        body[65..73].copy_from_slice(b"6.1\n[x]\0");
        let req = JoinReq::decode(&body).unwrap();
        assert_eq!(join(&req).map_err(|e| e.status), Err(Status::EINVAL));
    }
}
