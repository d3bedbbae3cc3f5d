//! Appender files: append, modify in place, truncate, and turning one into
//! a normal file.

use std::path::Path;

use fdfs_proto::FileId;
use tokio::io::AsyncRead;

use super::upload::open_for_upload;
use super::{Client, Route};
use crate::error::ClientError;

impl Client {
    pub async fn append_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        id: &FileId,
        src: &mut R,
        size: u64,
    ) -> Result<(), ClientError> {
        self.with_file_storage(Route::Update, id, async |s| {
            s.append(&id.remote, src, size).await
        })
        .await
    }

    pub async fn append_buffer(&self, id: &FileId, data: &[u8]) -> Result<(), ClientError> {
        let mut src = data;
        self.append_reader(id, &mut src, data.len() as u64).await
    }

    pub async fn append_file(&self, id: &FileId, path: &Path) -> Result<(), ClientError> {
        let (mut file, size) = open_for_upload(path, self.opts.inline_file_io).await?;
        self.append_reader(id, &mut file, size).await
    }

    pub async fn modify_reader<R: AsyncRead + Unpin + ?Sized>(
        &self,
        id: &FileId,
        offset: u64,
        src: &mut R,
        size: u64,
    ) -> Result<(), ClientError> {
        self.with_file_storage(Route::Update, id, async |s| {
            s.modify(&id.remote, offset, src, size).await
        })
        .await
    }

    pub async fn modify_buffer(
        &self,
        id: &FileId,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let mut src = data;
        self.modify_reader(id, offset, &mut src, data.len() as u64)
            .await
    }

    pub async fn modify_file(
        &self,
        id: &FileId,
        offset: u64,
        path: &Path,
    ) -> Result<(), ClientError> {
        let (mut file, size) = open_for_upload(path, self.opts.inline_file_io).await?;
        self.modify_reader(id, offset, &mut file, size).await
    }

    pub async fn truncate(&self, id: &FileId, new_size: u64) -> Result<(), ClientError> {
        self.with_file_storage(Route::Update, id, async |s| {
            s.truncate(&id.remote, new_size).await
        })
        .await
    }

    /// Turns an appender file into a normal file; returns its new id.
    pub async fn regenerate_appender_name(&self, id: &FileId) -> Result<FileId, ClientError> {
        self.with_file_storage(Route::Update, id, async |s| {
            s.regenerate_appender_name(&id.remote).await
        })
        .await
    }
}
