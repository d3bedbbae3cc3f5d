//! Operations on one stored file by its id: delete, metadata, and the file
//! facts `fdfs_file_info` shows (decoded from the name or asked from the
//! storage).

use fdfs_proto::fileid::FileKind;
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::storage_msg::FileInfoResp;
use fdfs_proto::FileId;

use super::{Client, Route};
use crate::error::ClientError;
use crate::fileinfo::{decode_remote_name, FileInfo};

impl Client {
    pub async fn delete_file(&self, id: &FileId) -> Result<(), ClientError> {
        self.with_file_storage(Route::Update, id, async |s| {
            s.delete(&id.group, &id.remote).await
        })
        .await
    }

    pub async fn set_metadata(
        &self,
        id: &FileId,
        meta: &[MetaPair],
        op: MetaOp,
    ) -> Result<(), ClientError> {
        self.with_file_storage(Route::Update, id, async |s| {
            s.set_metadata(&id.group, &id.remote, meta, op).await
        })
        .await
    }

    pub async fn get_metadata(&self, id: &FileId) -> Result<Vec<MetaPair>, ClientError> {
        self.with_file_storage(Route::Update, id, async |s| {
            s.get_metadata(&id.group, &id.remote).await
        })
        .await
    }

    /// QUERY_FILE_INFO (22) on a storage chosen by tracker cmd 102.
    pub async fn query_file_info(
        &self,
        id: &FileId,
        flags: u8,
    ) -> Result<FileInfoResp, ClientError> {
        self.with_file_storage(Route::Fetch, id, async |s| {
            s.query_file_info(&id.group, &id.remote, flags).await
        })
        .await
    }

    /// File facts as `fdfs_file_info` reports them: decoded from the name
    /// for normal files; appender and slave files (and names whose source
    /// IP is unknown) are asked from the storage when `get_from_server`.
    pub async fn file_info(
        &self,
        id: &FileId,
        get_from_server: bool,
        flags: u8,
    ) -> Result<FileInfo, ClientError> {
        let mut info = decode_remote_name(&id.remote)?;
        if info.source_id != 0 {
            info.source_ip = self.storage_address(info.source_id).await;
        }
        let special = matches!(info.file_type, FileKind::Appender | FileKind::Slave);
        if special || (info.source_ip.is_empty() && get_from_server) {
            if get_from_server {
                let r = self.query_file_info(id, flags).await?;
                info.file_size = r.file_size;
                info.create_timestamp = r.create_timestamp;
                info.crc32 = r.crc32;
                info.source_ip = r.source_ip;
                info.get_from_server = true;
            } else {
                info.file_size = -1;
            }
        }
        Ok(info)
    }
}
