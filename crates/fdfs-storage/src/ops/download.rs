//! DOWNLOAD_FILE (14): a byte range of a stored file, sent with sendfile
//! right behind its header.

use std::path::Path;

use fdfs_proto::fileid::RemoteName;
use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::trunk::TrunkLocation;
use fdfs_proto::{Header, Status};

use super::{blocking, check_group, read_small_body, resolve_data};
use crate::error::{OpError, OpResult};
use crate::session::{Reply, Session};
use crate::trunk::slot::{open_data, DataFile};

/// Unit in which file reads are counted for the statistics (sendfile moves
/// the data; the original reads in chunks of this size).
pub const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

pub async fn download(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = DownloadReq::decode(&body)?;
    let storage = s.storage.clone();
    s.log_name = req.remote.clone();
    check_group(&storage, &req.group)?;
    let (name, path) = resolve_data(&storage, &req.remote)?;
    if req.offset < 0 || req.length < 0 {
        return Err(OpError::invalid("negative offset or length"));
    }
    // The original stats before it opens: a missing file or a directory
    // is not counted as an open attempt. (The sendfile below moves at most
    // one bounded chunk per call.)
    // Trunk names are read from their slot (§3.6), after the header check.
    let opened = match open_plain_if_cached(&name, &path) {
        Some(opened) => opened,
        None => {
            let disk_storage = storage.clone();
            blocking(move || open_data(&disk_storage, &name, &path)).await
        }
    };
    match &opened {
        Ok(_) => storage.bump(|st| {
            st.total_file_open_count += 1;
            st.success_file_open_count += 1;
        }),
        Err(e) if e.status == Status::ENOENT || e.status == Status::EISDIR => {}
        Err(_) => storage.bump(|st| st.total_file_open_count += 1),
    }
    let data = opened?;
    let (file, size) = (data.file, data.size);
    let offset = req.offset as u64;
    if offset >= size {
        // Also rejects any read of a 0-byte file, as the original does.
        return Err(OpError::invalid(format!(
            "offset {offset} >= file size {size}"
        )));
    }
    let available = size - offset;
    let length = if req.length == 0 {
        available
    } else {
        (req.length as u64).min(available)
    };
    storage.bump(|st| st.total_download_bytes += length as i64);

    let header = Header::response(0, length as usize).to_bytes();
    // The header leaves with MSG_MORE, so it shares its segment with the
    // start of the file; the file goes from the page cache to the socket
    // with sendfile, without a copy through our memory (bench/RESULTS.md).
    let stall = s.network_timeout.max(std::time::Duration::from_secs(1));
    let stream = s.writer.as_ref();
    let file = std::sync::Arc::new(file);
    let streamed: std::io::Result<()> = async {
        fdfs_util::zerocopy::write_all(stream, &header, true, stall).await?;
        fdfs_util::zerocopy::send_file_range(stream, &file, data.base + offset, length, stall).await
    }
    .await;
    if let Err(e) = streamed {
        // The header promised `length` bytes; all we can do is close.
        // A client that stops reading lands here; many of them must not
        // flood the log.
        if let Some(held_back) = crate::conn::BAD_REQUEST_WARNINGS.allow_now() {
            tracing::warn!(peer = %s.peer, error = %e, held_back, "download aborted mid-stream");
        }
        return Ok(Reply::Abort);
    }
    let reads = length.div_ceil(DOWNLOAD_CHUNK_BYTES as u64) as i64;
    storage.bump(|st| {
        st.success_download_bytes += length as i64;
        st.total_file_read_count += reads;
        st.success_file_read_count += reads;
    });
    s.sent_len = fdfs_proto::HEADER_LEN as u64 + length;
    Ok(Reply::Sent)
}

/// Opens a plain (not trunk) data file right here on the async worker when
/// its whole path is in the dentry cache, as it is for a file read or
/// written lately: a hand-off to the blocking pool and back cost more CPU
/// than such an open. `None` for a trunk name or a path that needs the
/// disk: those go to the blocking pool.
fn open_plain_if_cached(name: &RemoteName, path: &Path) -> Option<OpResult<DataFile>> {
    if TrunkLocation::from_remote(name).is_some() {
        return None;
    }
    let opened = fdfs_util::sys::open_read_if_cached(path)?;
    Some(
        super::checked_open(opened, path).map(|(file, meta)| DataFile {
            file,
            base: 0,
            size: meta.len(),
            trunk: None,
        }),
    )
}
