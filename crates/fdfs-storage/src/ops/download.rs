//! DOWNLOAD_FILE (14): a byte range of a stored file; small ranges go out
//! with their header in one write, large ones with sendfile.

use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::Header;

use super::{check_group, count, read_small_body, resolve, stat_existing};
use crate::conn::{Reply, Session};
use crate::error::{OpError, OpResult};

/// Unit in which file reads are counted for the statistics (sendfile moves
/// the data; the original reads in chunks of this size).
pub const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;
/// Downloads up to this size are sent with one write (header included);
/// larger ones use sendfile.
pub const SMALL_DOWNLOAD_BYTES: u64 = 256 * 1024;

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
    let file = std::fs::File::open(&path)?;
    storage.bump(|st| st.success_file_open_count += 1);
    storage.bump(|st| st.total_download_bytes += length as i64);

    let header = Header::response(0, length as usize).to_bytes();
    let streamed: OpResult<()> = async {
        if length <= SMALL_DOWNLOAD_BYTES {
            // Small files travel with their header in one write. Besides
            // being one syscall, this keeps clients that mis-count partial
            // reads (py3fdfs's download_to_file) working through proxies.
            let mut out = Vec::with_capacity(header.len() + length as usize);
            out.extend_from_slice(&header);
            out.resize(header.len() + length as usize, 0);
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut out[header.len()..], offset)?;
            s.write_all(&out).await?;
        } else {
            // The header, then the file straight from the page cache to the
            // socket (sendfile): no copy through our memory.
            s.write_all(&header).await?;
            let stream = s.writer.as_ref();
            tokio::time::timeout(
                s.network_timeout.max(std::time::Duration::from_secs(1)) * 4,
                crate::zerocopy::sendfile_all(stream, &file, offset, length),
            )
            .await
            .map_err(|_| OpError::new(fdfs_proto::Status::ETIMEDOUT, "download timed out"))??;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        // The header promised `length` bytes; all we can do is close.
        tracing::warn!(peer = %s.peer, reason = %e.reason, "download aborted mid-stream");
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
