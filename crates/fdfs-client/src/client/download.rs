//! Downloads: a window of a file into a writer, a vector or a local file.

use std::path::Path;

use fdfs_proto::FileId;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Client, Route};
use crate::error::ClientError;
use crate::localfile::{self, LocalFile};

impl Client {
    /// Streams `[offset, offset+length)` (length 0: to the end) into `dst`.
    pub async fn download_to_writer<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        id: &FileId,
        offset: u64,
        length: u64,
        dst: &mut W,
    ) -> Result<u64, ClientError> {
        self.with_file_storage(Route::Fetch, id, async |s| {
            s.download(&id.group, &id.remote, offset, length, dst).await
        })
        .await
    }

    pub async fn download_to_vec(
        &self,
        id: &FileId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.download_to_writer(id, offset, length, &mut out)
            .await?;
        Ok(out)
    }

    /// Downloads into a local file, created (truncated) only once the
    /// storage has accepted the request; a partial file is removed.
    pub async fn download_to_file(
        &self,
        id: &FileId,
        path: &Path,
        offset: u64,
        length: u64,
    ) -> Result<u64, ClientError> {
        self.with_file_storage(Route::Fetch, id, async |s| {
            let len = s
                .download_start(&id.group, &id.remote, offset, length)
                .await?;
            let inline = self.opts.inline_file_io;
            let mut file = match LocalFile::create(path, inline).await {
                Ok(f) => f,
                Err(e) => {
                    // The announced body is still on the wire.
                    s.download_body(&mut tokio::io::sink(), len).await?;
                    return Err(ClientError::Io(e));
                }
            };
            let res = async {
                s.download_body(&mut file, len).await?;
                file.flush().await?;
                Ok::<_, ClientError>(())
            }
            .await;
            if let Err(e) = res {
                drop(file);
                let _ = localfile::remove(path, inline).await;
                return Err(e);
            }
            Ok(len)
        })
        .await
    }
}
