//! Upload and download over the FastDFS binary protocol on a worker's kept
//! connections (the tracker only when no storage is named; a connection the
//! server closed meanwhile is replaced), and the check of downloaded content
//! against the CRC32 and size its file id records.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use fdfs_client::{ClientError, Conn};
use fdfs_proto::storage_msg::{DownloadReq, FileIdResp, UploadReq};
use fdfs_proto::tracker_msg::{FetchTargets, GroupFileReq, StoreTarget};
use fdfs_proto::{StorageCmd, TrackerCmd};

use super::runner::Conns;
use super::BenchArgs;

async fn connect(addr: &str) -> Result<Conn, ClientError> {
    Conn::connect(addr, Duration::from_secs(10), Duration::from_secs(60)).await
}

/// A worker's connection to one server, kept across requests.
pub(super) struct Kept {
    addr: String,
    conn: Conn,
    /// When its last answer came.
    answered_at: Instant,
}

/// How long a kept connection may idle before it is probed for a close
/// before reuse. A connection in steady use skips the probe (a system call
/// per request); one closed meanwhile still gets its request again below.
const PROBE_AFTER_IDLE: Duration = Duration::from_secs(1);

/// One request on the worker's kept connection to `addr` (a `role`), opened
/// when there is none or it leads elsewhere. The server may have closed a
/// kept connection while it idled (its slot reclaimed for a new client at
/// `max_connections`, or a restart): after an idle spell that is checked
/// before reuse, as the client library's pool does, and a reused
/// connection that closes without answering, or could not take the
/// request, gets it again on a fresh one, once (the server closes only
/// connections it is not reading a request from). Errors name the server,
/// so a run against the wrong or a stopped server says which one in its
/// one line.
async fn call_kept(
    kept: &mut Option<Kept>,
    role: &str,
    addr: &str,
    cmd: u8,
    body: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let named = |e: ClientError| {
        let hint = if e.closed_without_answer() {
            " (closed without answering: the server stopped, refuses this host, \
             or has all its max_connections slots taken)"
        } else {
            ""
        };
        ClientError::Invalid(format!("{role} {addr}: {e}{hint}"))
    };
    if let Some(k) = kept.as_mut() {
        if k.addr == addr
            && (k.answered_at.elapsed() < PROBE_AFTER_IDLE || k.conn.idle_looks_healthy())
        {
            match k.conn.call(cmd, body).await {
                Err(e) if e.closed_without_answer() || e.is_broken_pipe() => {}
                Err(e) => return Err(named(e)),
                Ok(answer) => {
                    k.answered_at = Instant::now();
                    return Ok(answer);
                }
            }
        }
    }
    *kept = None;
    let mut conn = connect(addr).await.map_err(named)?;
    let answer = conn.call(cmd, body).await.map_err(named)?;
    *kept = Some(Kept {
        addr: addr.to_string(),
        conn,
        answered_at: Instant::now(),
    });
    Ok(answer)
}

pub(super) async fn upload_one(
    args: &BenchArgs,
    conns: &mut Conns,
    data: &[u8],
    ext: &str,
) -> Result<String, ClientError> {
    let (addr, index) = match &args.storage {
        Some(a) => (a.clone(), -1i8),
        None => {
            let answer = call_kept(
                &mut conns.tracker,
                "tracker",
                &args.tracker,
                TrackerCmd::QueryStoreWithoutGroupOne.into(),
                &[],
            )
            .await?;
            let target = StoreTarget::decode(&answer)?;
            (target.addr.to_string(), target.store_path_index as i8)
        }
    };
    let mut head = BytesMut::with_capacity(UploadReq::FIXED_LEN + data.len());
    UploadReq {
        store_path_index: index,
        file_size: data.len() as u64,
        ext: ext.into(),
    }
    .encode_head(&mut head);
    head.put_slice(data);
    let answer = call_kept(
        &mut conns.storage,
        "storage",
        &addr,
        StorageCmd::UploadFile.into(),
        &head,
    )
    .await?;
    let resp = FileIdResp::decode(&answer)?;
    Ok(format!("{}/{}", resp.group, resp.remote))
}

/// The CRC32 and size a file id promises for its content.
fn expected_content(file_id: &str) -> Result<(u32, Option<u64>), String> {
    let id = fdfs_proto::FileId::parse(file_id).map_err(|e| e.to_string())?;
    let rec = fdfs_proto::fileid::RemoteName::parse(&id.remote, 256)
        .map_err(|e| e.to_string())?
        .record()
        .ok_or_else(|| format!("{file_id}: no record in name"))?;
    Ok((rec.crc32, rec.file_size()))
}

pub(super) fn check_content(file_id: &str, crc: u32, len: u64) -> Result<(), String> {
    let (want_crc, want_len) = expected_content(file_id)?;
    if want_crc != crc || want_len.is_some_and(|n| n != len) {
        return Err(format!("{file_id}: content does not match its id"));
    }
    Ok(())
}

pub(super) async fn download_one(
    args: &BenchArgs,
    conns: &mut Conns,
    file_id: &str,
) -> Result<u64, ClientError> {
    let id = fdfs_proto::FileId::parse(file_id)?;
    let addr = match &args.storage {
        Some(a) => a.clone(),
        None => {
            let mut b = BytesMut::new();
            GroupFileReq {
                group: id.group.clone(),
                remote: id.remote.clone(),
            }
            .encode(&mut b);
            let answer = call_kept(
                &mut conns.tracker,
                "tracker",
                &args.tracker,
                TrackerCmd::QueryFetchOne.into(),
                &b,
            )
            .await?;
            let targets = FetchTargets::decode(&answer)?;
            targets
                .servers
                .first()
                .map(|s| s.to_string())
                .ok_or_else(|| ClientError::Invalid("tracker named no storage".into()))?
        }
    };
    let mut b = BytesMut::new();
    DownloadReq {
        offset: 0,
        length: 0,
        group: id.group,
        remote: id.remote,
    }
    .encode(&mut b);
    let data = call_kept(
        &mut conns.storage,
        "storage",
        &addr,
        StorageCmd::DownloadFile.into(),
        &b,
    )
    .await?;
    if args.verify {
        check_content(file_id, fdfs_proto::crc32(&data), data.len() as u64)
            .map_err(ClientError::Invalid)?;
    }
    Ok(data.len() as u64)
}
