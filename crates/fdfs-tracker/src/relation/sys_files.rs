//! §4.2/§4.9: a tracker that starts without any group copies the data
//! files of the best-ranked peer tracker before it handles its first JOIN,
//! so the storages that peer knows are not refused as unknown.

use std::net::SocketAddr;

use bytes::BytesMut;
use fdfs_client::ClientError;
use fdfs_proto::leader_msg::{SysFileReq, TrackerStatus, SYS_FILE_NAMES};
use fdfs_proto::TrackerCmd;

use super::election::rank;
use super::probe::{connect, peer_status, resolve_new_names};
use crate::{persist, Tracker};

/// §4.2/§4.9: before the first JOIN after a start without any group, copy
/// the data files from the best-ranked peer tracker that has groups, so the
/// storages it knows are not refused as unknown. Returns false when a copy
/// started and failed (the JOIN then answers EAGAIN).
pub(crate) async fn copy_sys_files_before_first_join(t: &Tracker) -> bool {
    let mut checked = t.sys_files_checked.lock().await;
    if *checked || !t.lock().groups.is_empty() {
        *checked = true;
        return true;
    }
    *checked = true;
    resolve_new_names(t).await;
    let (me, peers) = {
        let rel = t.relation();
        (rel.self_addr, rel.peer_addrs())
    };
    let mut best: Option<(TrackerStatus, SocketAddr)> = None;
    for peer in peers {
        let Some(status) = peer_status(t, peer).await else {
            continue;
        };
        if best.is_none_or(|(b, a)| rank(&status, peer) > rank(&b, a)) {
            best = Some((status, peer));
        }
    }
    let Some((status, source)) = best else {
        return true;
    };
    if let Some(me) = me {
        if rank(&t.own_status(), me) > rank(&status, source) {
            return true;
        }
    }
    match fetch_sys_files(t, source).await {
        Ok(files) => match install_sys_files(t, &files) {
            Ok(()) => {
                tracing::info!(%source, "copied the data files from a peer tracker");
                true
            }
            Err(e) => {
                tracing::error!(%source, error = %e, "cannot install copied data files");
                false
            }
        },
        Err(e) => {
            tracing::warn!(%source, error = %e, "copying the data files failed");
            false
        }
    }
}

async fn fetch_sys_files(t: &Tracker, source: SocketAddr) -> Result<Vec<Vec<u8>>, ClientError> {
    let mut conn = connect(t, source).await?;
    conn.call(TrackerCmd::TrackerGetSysFilesStart.into(), &[])
        .await?;
    let mut files = Vec::with_capacity(SYS_FILE_NAMES.len());
    for index in 0..SYS_FILE_NAMES.len() as u8 {
        let mut content = Vec::new();
        loop {
            let mut req = BytesMut::new();
            SysFileReq {
                index,
                offset: content.len() as i64,
            }
            .encode(&mut req);
            let answer = conn
                .call(TrackerCmd::TrackerGetOneSysFile.into(), &req)
                .await?;
            let Some((size, chunk)) = answer.split_first_chunk::<8>() else {
                return Err(ClientError::Invalid("short GET_ONE_SYS_FILE answer".into()));
            };
            let size = u64::try_from(i64::from_be_bytes(*size))
                .map_err(|_| ClientError::Invalid("negative sys file size".into()))?;
            content.extend_from_slice(chunk);
            if content.len() as u64 >= size {
                break;
            }
            if chunk.is_empty() {
                return Err(ClientError::Invalid("sys file ended early".into()));
            }
        }
        files.push(content);
    }
    conn.call(TrackerCmd::TrackerGetSysFilesEnd.into(), &[])
        .await?;
    conn.quit().await;
    Ok(files)
}

/// Writes the copied files and loads them as our state.
fn install_sys_files(t: &Tracker, files: &[Vec<u8>]) -> std::io::Result<()> {
    for (name, content) in SYS_FILE_NAMES.iter().zip(files) {
        persist::write_atomic(&t.data_dir.join(name), content)?;
    }
    let mut loaded = persist::load(&t.data_dir, t.conf.use_storage_id)?;
    loaded.offline_after_load();
    let mut cluster = t.lock();
    if cluster.groups.is_empty() {
        *cluster = loaded;
    }
    Ok(())
}
