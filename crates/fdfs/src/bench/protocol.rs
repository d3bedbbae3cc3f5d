//! Upload and download over the FastDFS binary protocol on a worker's kept
//! connections (the tracker only when no storage is named), and the check of
//! downloaded content against the CRC32 and size its file id records.

use std::time::Duration;

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

async fn storage_conn(
    storage: &mut Option<(String, Conn)>,
    addr: String,
) -> Result<&mut Conn, ClientError> {
    if storage.as_ref().is_none_or(|(a, _)| *a != addr) {
        *storage = Some((addr.clone(), connect(&addr).await?));
    }
    match storage {
        Some((_, c)) => Ok(c),
        None => Err(ClientError::Invalid("no storage connection".into())),
    }
}

async fn tracker_conn<'a>(
    args: &BenchArgs,
    tracker: &'a mut Option<Conn>,
) -> Result<&'a mut Conn, ClientError> {
    if tracker.is_none() {
        *tracker = Some(connect(&args.tracker).await?);
    }
    match tracker {
        Some(c) => Ok(c),
        None => Err(ClientError::Invalid("no tracker connection".into())),
    }
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
            let t = tracker_conn(args, &mut conns.tracker).await?;
            let target = StoreTarget::decode(
                &t.call(TrackerCmd::QueryStoreWithoutGroupOne.into(), &[])
                    .await?,
            )?;
            (target.addr.to_string(), target.store_path_index as i8)
        }
    };
    let conn = storage_conn(&mut conns.storage, addr).await?;
    let mut head = BytesMut::with_capacity(UploadReq::FIXED_LEN + data.len());
    UploadReq {
        store_path_index: index,
        file_size: data.len() as u64,
        ext: ext.into(),
    }
    .encode_head(&mut head);
    head.put_slice(data);
    let resp = FileIdResp::decode(&conn.call(StorageCmd::UploadFile.into(), &head).await?)?;
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
            let t = tracker_conn(args, &mut conns.tracker).await?;
            let mut b = BytesMut::new();
            GroupFileReq {
                group: id.group.clone(),
                remote: id.remote.clone(),
            }
            .encode(&mut b);
            let targets =
                FetchTargets::decode(&t.call(TrackerCmd::QueryFetchOne.into(), &b).await?)?;
            targets
                .servers
                .first()
                .map(|s| s.to_string())
                .ok_or_else(|| ClientError::Invalid("tracker named no storage".into()))?
        }
    };
    let conn = storage_conn(&mut conns.storage, addr).await?;
    let mut b = BytesMut::new();
    DownloadReq {
        offset: 0,
        length: 0,
        group: id.group,
        remote: id.remote,
    }
    .encode(&mut b);
    let data = conn.call(StorageCmd::DownloadFile.into(), &b).await?;
    if args.verify {
        check_content(file_id, fdfs_proto::crc32(&data), data.len() as u64)
            .map_err(ClientError::Invalid)?;
    }
    Ok(data.len() as u64)
}
