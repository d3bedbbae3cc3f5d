//! Uploads: normal and appender files from a reader, a buffer or a local
//! file, slave files of a master, and the metadata set right after.

use std::path::Path;

use fdfs_proto::fileid::ext_from_local_name;
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::{FileId, Status};
use tokio::io::AsyncRead;

use super::{Client, Route};
use crate::error::ClientError;
use crate::localfile::LocalFile;
use crate::storage::{StorageClient, UploadKind};

/// Options for uploads.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Upload into this group (tracker cmd 104 instead of 101).
    pub group: Option<String>,
    pub kind: UploadKind,
    /// Extension without dot. `None`: derived from the local file name for
    /// path uploads, empty for buffers.
    pub ext: Option<String>,
    /// Set (overwrite) after the upload; the file is deleted if that fails.
    pub metadata: Vec<MetaPair>,
    /// Upload straight to this storage, skipping the tracker.
    pub storage: Option<ServerAddr>,
    /// Store path index with `storage`; `None` lets the storage choose (-1).
    pub store_path_index: Option<i8>,
}

impl Client {
    async fn upload_target(&self, opts: &UploadOptions) -> Result<(ServerAddr, i8), ClientError> {
        match &opts.storage {
            Some(addr) => Ok((addr.clone(), opts.store_path_index.unwrap_or(-1))),
            None => {
                let t = self.query_store(opts.group.as_deref()).await?;
                // The index travels as a signed byte; 255 means "-1".
                Ok((t.addr, t.store_path_index as i8))
            }
        }
    }

    /// Uploads `size` bytes read from `src`.
    pub async fn upload_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        src: &mut R,
        size: u64,
        opts: &UploadOptions,
    ) -> Result<FileId, ClientError> {
        let (addr, index) = self.upload_target(opts).await?;
        let ext = opts.ext.as_deref().unwrap_or("");
        self.with_storage(&addr, async |s| {
            let id = s.upload(opts.kind, index, ext, src, size).await?;
            attach_metadata(s, &id, &opts.metadata).await?;
            Ok(id)
        })
        .await
    }

    pub async fn upload_buffer(
        &self,
        data: &[u8],
        opts: &UploadOptions,
    ) -> Result<FileId, ClientError> {
        let mut src = data;
        self.upload_reader(&mut src, data.len() as u64, opts).await
    }

    /// Uploads a local file, streaming it; the extension defaults to the
    /// one of the local name (`a.tar.gz` → `tar.gz`).
    pub async fn upload_file(
        &self,
        path: &Path,
        opts: &UploadOptions,
    ) -> Result<FileId, ClientError> {
        let (mut file, size) = open_for_upload(path, self.opts.inline_file_io).await?;
        let mut opts = opts.clone();
        if opts.ext.is_none() {
            opts.ext = Some(ext_from_local_name(&path.to_string_lossy()));
        }
        let LocalFile::Inline(local) = &file else {
            return self.upload_reader(&mut file, size, &opts).await;
        };
        // A file at hand: sendfile(2) instead of reading it through a buffer.
        let (addr, index) = self.upload_target(&opts).await?;
        let ext = opts.ext.as_deref().unwrap_or("");
        self.with_storage(&addr, async |s| {
            let id = s
                .upload_local_file(opts.kind, index, ext, local, size)
                .await?;
            attach_metadata(s, &id, &opts.metadata).await?;
            Ok(id)
        })
        .await
    }

    /// Uploads a slave file of `master` (tracker 103 with the master name).
    pub async fn upload_slave_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        master: &FileId,
        prefix: &str,
        ext: &str,
        src: &mut R,
        size: u64,
        metadata: &[MetaPair],
    ) -> Result<FileId, ClientError> {
        self.with_file_storage(Route::Update, master, async |s| {
            let id = s
                .upload_slave(&master.remote, prefix, ext, src, size)
                .await?;
            attach_metadata(s, &id, metadata).await?;
            Ok(id)
        })
        .await
    }

    pub async fn upload_slave_buffer(
        &self,
        master: &FileId,
        prefix: &str,
        ext: &str,
        data: &[u8],
        metadata: &[MetaPair],
    ) -> Result<FileId, ClientError> {
        let mut src = data;
        self.upload_slave_reader(master, prefix, ext, &mut src, data.len() as u64, metadata)
            .await
    }

    /// Uploads a local file as a slave; `ext` `None` takes the local
    /// file's extension.
    pub async fn upload_slave_file(
        &self,
        master: &FileId,
        prefix: &str,
        ext: Option<&str>,
        path: &Path,
        metadata: &[MetaPair],
    ) -> Result<FileId, ClientError> {
        let (mut file, size) = open_for_upload(path, self.opts.inline_file_io).await?;
        let ext = match ext {
            Some(e) => e.to_string(),
            None => ext_from_local_name(&path.to_string_lossy()),
        };
        self.upload_slave_reader(master, prefix, &ext, &mut file, size, metadata)
            .await
    }
}

/// SET_METADATA (overwrite) after an upload; deletes the new file if that
/// fails, as the C client does.
async fn attach_metadata(
    s: &mut StorageClient<'_>,
    id: &FileId,
    metadata: &[MetaPair],
) -> Result<(), ClientError> {
    if metadata.is_empty() {
        return Ok(());
    }
    if let Err(e) = s
        .set_metadata(&id.group, &id.remote, metadata, MetaOp::Overwrite)
        .await
    {
        let _ = s.delete(&id.group, &id.remote).await;
        return Err(e);
    }
    Ok(())
}

/// Opens a regular local file for streaming and returns its size.
pub(super) async fn open_for_upload(
    path: &Path,
    inline: bool,
) -> Result<(LocalFile, u64), ClientError> {
    let file = LocalFile::open(path, inline).await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(ClientError::Io(std::io::Error::from_raw_os_error(
            i32::from(Status::EINVAL.0),
        )));
    }
    Ok((file, meta.len()))
}
