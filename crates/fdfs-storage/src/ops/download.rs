//! DOWNLOAD_FILE (14): a byte range of a stored file, streamed through a
//! fixed buffer.

use std::io::{Read, Seek, SeekFrom};

use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::Header;

use super::{check_group, count, read_small_body, resolve, stat_existing};
use crate::conn::{Reply, Session};
use crate::error::{OpError, OpResult};

/// Largest chunk read from disk and written to the socket at once.
pub const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

pub async fn download(s: &mut Session) -> OpResult<Reply> {
    s.storage.bump(|st| st.total_download_count += 1);
    let result = download_inner(s).await;
    count(&s.storage, &result, |st| st.success_download_count += 1);
    result
}

async fn download_inner(s: &mut Session) -> OpResult<Reply> {
    let body = read_small_body(s).await?;
    let req = DownloadReq::decode(&body)?;
    let storage = s.storage.clone();
    s.log_name = req.remote.clone();
    check_group(&storage, &req.group)?;
    let (_, path) = resolve(&storage, &req.remote)?;
    if req.offset < 0 || req.length < 0 {
        return Err(OpError::invalid("negative offset or length"));
    }
    let meta = stat_existing(&path)?;
    let size = meta.len();
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
    storage.bump(|st| st.total_file_open_count += 1);
    let mut file = std::fs::File::open(&path)?;
    storage.bump(|st| st.success_file_open_count += 1);
    file.seek(SeekFrom::Start(offset))?;
    storage.bump(|st| st.total_download_bytes += length as i64);

    let mut buf = vec![0u8; (length as usize).min(DOWNLOAD_CHUNK_BYTES)];
    // The first chunk travels with the header in one write.
    let first = read_chunk(&mut file, &mut buf, length)?;
    let mut out = Vec::with_capacity(fdfs_proto::HEADER_LEN + first);
    out.extend_from_slice(&Header::response(0, length as usize).to_bytes());
    out.extend_from_slice(&buf[..first]);
    let streamed: OpResult<()> = async {
        s.write_all(&out).await?;
        let mut sent = first as u64;
        while sent < length {
            let n = read_chunk(&mut file, &mut buf, length - sent)?;
            s.write_all(&buf[..n]).await?;
            sent += n as u64;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        // The header promised `length` bytes; all we can do is close.
        tracing::warn!(peer = %s.peer, reason = %e.reason, "download aborted mid-stream");
        return Ok(Reply::Abort);
    }
    let reads = length.div_ceil(buf.len().max(1) as u64) as i64;
    storage.bump(|st| {
        st.success_download_bytes += length as i64;
        st.total_file_read_count += reads;
        st.success_file_read_count += reads;
    });
    s.sent_len = fdfs_proto::HEADER_LEN as u64 + length;
    Ok(Reply::Sent)
}

/// Reads up to `left` bytes (at most the buffer); a file that shrank under
/// us is an I/O error, which closes the connection mid-stream.
fn read_chunk(file: &mut std::fs::File, buf: &mut [u8], left: u64) -> OpResult<usize> {
    let want = (buf.len() as u64).min(left) as usize;
    file.read_exact(&mut buf[..want])?;
    Ok(want)
}
