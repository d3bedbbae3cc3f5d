//! Storage commands a client sends (PROTOCOL §3) over one connection:
//! upload (normal, appender, slave), download, delete, metadata, file info,
//! append / modify / truncate and appender-name regeneration. File content
//! is streamed through a fixed buffer in both directions.

use bytes::BytesMut;
use fdfs_proto::metadata::{self, MetaOp, MetaPair};
use fdfs_proto::storage_msg::{
    AppendReq, DownloadReq, FileIdResp, FileInfoResp, ModifyReq, SetMetaReq, TruncateReq,
    UploadReq, UploadSlaveReq,
};
use fdfs_proto::{FileId, StorageCmd, CMD_ACTIVE_TEST};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::conn::Conn;
use crate::error::ClientError;
use crate::tracker::encode_group_file;

/// QUERY_FILE_INFO flag: do not compute CRC32 for appender/slave files.
pub const FINFO_FLAG_NO_CRC32: u8 = 1;
/// QUERY_FILE_INFO flag: the storage does not log a missing file.
pub const FINFO_FLAG_KEEP_SILENCE: u8 = 2;

/// Head of an UPLOAD_FILE / UPLOAD_APPENDER_FILE request (15 bytes).
pub fn upload_head(store_path_index: i8, size: u64, ext: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    UploadReq {
        store_path_index,
        file_size: size,
        ext: ext.to_string(),
    }
    .encode_head(&mut b);
    b.to_vec()
}

/// Head of an UPLOAD_SLAVE_FILE request (38 bytes + master name).
pub fn upload_slave_head(master: &str, prefix: &str, ext: &str, size: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    UploadSlaveReq {
        master: master.to_string(),
        file_size: size,
        prefix: prefix.to_string(),
        ext: ext.to_string(),
    }
    .encode_head(&mut b);
    b.to_vec()
}

/// Full DOWNLOAD_FILE request body.
pub fn download_body(group: &str, remote: &str, offset: u64, length: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    DownloadReq {
        offset: i64::try_from(offset).unwrap_or(i64::MAX),
        length: i64::try_from(length).unwrap_or(i64::MAX),
        group: group.to_string(),
        remote: remote.to_string(),
    }
    .encode(&mut b);
    b.to_vec()
}

/// Full SET_METADATA request body.
pub fn set_metadata_body(group: &str, remote: &str, meta: &[MetaPair], op: MetaOp) -> Vec<u8> {
    let mut b = BytesMut::new();
    SetMetaReq {
        remote: remote.to_string(),
        op_flag: op.flag(),
        group: group.to_string(),
        meta: metadata::pack(meta),
    }
    .encode(&mut b);
    b.to_vec()
}

/// Head of an APPEND_FILE request (16 bytes + appender name).
pub fn append_head(remote: &str, size: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    AppendReq {
        remote: remote.to_string(),
        length: size,
    }
    .encode_head(&mut b);
    b.to_vec()
}

/// Head of a MODIFY_FILE request (24 bytes + appender name).
pub fn modify_head(remote: &str, offset: u64, size: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    ModifyReq {
        remote: remote.to_string(),
        offset: i64::try_from(offset).unwrap_or(i64::MAX),
        length: size,
    }
    .encode_head(&mut b);
    b.to_vec()
}

/// Full TRUNCATE_FILE request body.
pub fn truncate_body(remote: &str, new_size: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    TruncateReq {
        remote: remote.to_string(),
        new_size: i64::try_from(new_size).unwrap_or(i64::MAX),
    }
    .encode(&mut b);
    b.to_vec()
}

/// Normal or appender upload (cmd 11 or 23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadKind {
    #[default]
    Normal,
    Appender,
}

impl UploadKind {
    pub fn cmd(self) -> StorageCmd {
        match self {
            UploadKind::Normal => StorageCmd::UploadFile,
            UploadKind::Appender => StorageCmd::UploadAppenderFile,
        }
    }
}

fn file_id_from(body: &[u8]) -> Result<FileId, ClientError> {
    let r = FileIdResp::decode(body)?;
    Ok(FileId::new(r.group, r.remote))
}

/// Storage operations over one borrowed connection.
pub struct StorageClient<'a> {
    conn: &'a mut Conn,
}

impl<'a> StorageClient<'a> {
    pub fn new(conn: &'a mut Conn) -> Self {
        StorageClient { conn }
    }

    /// Streams the content of a request whose head is sent.
    async fn send_content<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        src: &mut R,
        size: u64,
    ) -> Result<(), ClientError> {
        match self.conn.send_from(src, size).await {
            Ok(()) => Ok(()),
            // A storage that refuses a write (a full disk) answers before
            // it has read the content and closes; its status explains the
            // broken pipe better than the pipe does.
            Err(sending) if sending.is_network() => {
                Err(self.conn.early_answer().await.unwrap_or(sending))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `head` plus `size` bytes streamed from `src`, returns the answer body.
    async fn call_streaming<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        cmd: StorageCmd,
        head: &[u8],
        src: &mut R,
        size: u64,
    ) -> Result<Vec<u8>, ClientError> {
        self.conn.send_head(cmd.into(), 0, head, size).await?;
        self.send_content(src, size).await?;
        self.conn.recv_response().await
    }

    /// Uploads the first `size` bytes of a local file, sent with
    /// sendfile(2) (see [`Conn::send_head_and_file`]); otherwise as
    /// [`StorageClient::upload`].
    pub async fn upload_local_file(
        &mut self,
        kind: UploadKind,
        store_path_index: i8,
        ext: &str,
        file: &std::fs::File,
        size: u64,
    ) -> Result<FileId, ClientError> {
        let head = upload_head(store_path_index, size, ext);
        match self
            .conn
            .send_head_and_file(kind.cmd().into(), &head, file, size)
            .await
        {
            Ok(()) => {}
            // As in `send_content`: a refusal explains a broken pipe.
            Err(sending) if sending.is_network() => {
                return Err(self.conn.early_answer().await.unwrap_or(sending))
            }
            Err(e) => return Err(e),
        }
        let body = self.conn.recv_response().await?;
        file_id_from(&body)
    }

    /// Uploads `size` bytes from `src`; `store_path_index` -1 lets the
    /// storage choose. `ext` is the extension without dot (may be empty).
    pub async fn upload<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        kind: UploadKind,
        store_path_index: i8,
        ext: &str,
        src: &mut R,
        size: u64,
    ) -> Result<FileId, ClientError> {
        let head = upload_head(store_path_index, size, ext);
        let body = self.call_streaming(kind.cmd(), &head, src, size).await?;
        file_id_from(&body)
    }

    /// Uploads a slave of `master_remote` (remote name without group).
    pub async fn upload_slave<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        master_remote: &str,
        prefix: &str,
        ext: &str,
        src: &mut R,
        size: u64,
    ) -> Result<FileId, ClientError> {
        let head = upload_slave_head(master_remote, prefix, ext, size);
        let body = self
            .call_streaming(StorageCmd::UploadSlaveFile, &head, src, size)
            .await?;
        file_id_from(&body)
    }

    /// Sends a download request and reads the answer header; returns the
    /// number of content bytes that follow (read them with
    /// [`StorageClient::download_body`]). `length` 0 means "to the end".
    pub async fn download_start(
        &mut self,
        group: &str,
        remote: &str,
        offset: u64,
        length: u64,
    ) -> Result<u64, ClientError> {
        let body = download_body(group, remote, offset, length);
        self.conn
            .send(StorageCmd::DownloadFile.into(), 0, &body)
            .await?;
        let h = self.conn.recv_header().await?;
        Ok(h.body_len().unwrap_or(0))
    }

    /// Streams the `len` content bytes announced by `download_start`.
    pub async fn download_body<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        dst: &mut W,
        len: u64,
    ) -> Result<(), ClientError> {
        self.conn.recv_into(dst, len).await
    }

    /// Downloads a range into `dst`; returns the byte count.
    pub async fn download<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        group: &str,
        remote: &str,
        offset: u64,
        length: u64,
        dst: &mut W,
    ) -> Result<u64, ClientError> {
        let len = self.download_start(group, remote, offset, length).await?;
        self.download_body(dst, len).await?;
        Ok(len)
    }

    pub async fn delete(&mut self, group: &str, remote: &str) -> Result<(), ClientError> {
        self.conn
            .call(
                StorageCmd::DeleteFile.into(),
                &encode_group_file(group, remote),
            )
            .await
            .map(drop)
    }

    pub async fn set_metadata(
        &mut self,
        group: &str,
        remote: &str,
        meta: &[MetaPair],
        op: MetaOp,
    ) -> Result<(), ClientError> {
        let body = set_metadata_body(group, remote, meta, op);
        self.conn
            .send(StorageCmd::SetMetadata.into(), 0, &body)
            .await?;
        self.conn.recv_ok_discarding_body().await
    }

    /// Metadata records as stored (sorted by name).
    pub async fn get_metadata(
        &mut self,
        group: &str,
        remote: &str,
    ) -> Result<Vec<MetaPair>, ClientError> {
        let body = self
            .conn
            .call(
                StorageCmd::GetMetadata.into(),
                &encode_group_file(group, remote),
            )
            .await?;
        Ok(metadata::unpack(&body))
    }

    /// QUERY_FILE_INFO (22); `flags` are the FINFO_FLAG_* bits.
    pub async fn query_file_info(
        &mut self,
        group: &str,
        remote: &str,
        flags: u8,
    ) -> Result<FileInfoResp, ClientError> {
        let body = self
            .conn
            .call_with_status(
                StorageCmd::QueryFileInfo.into(),
                flags,
                &encode_group_file(group, remote),
            )
            .await?;
        Ok(FileInfoResp::decode(&body)?)
    }

    /// Appends `size` bytes from `src` to an appender file. A status-0
    /// answer with a body (the C storage's no-op echo) counts as success.
    pub async fn append<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        remote: &str,
        src: &mut R,
        size: u64,
    ) -> Result<(), ClientError> {
        let head = append_head(remote, size);
        self.conn
            .send_head(StorageCmd::AppendFile.into(), 0, &head, size)
            .await?;
        self.send_content(src, size).await?;
        self.conn.recv_ok_discarding_body().await
    }

    /// Overwrites `size` bytes at `offset` of an appender file.
    pub async fn modify<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        remote: &str,
        offset: u64,
        src: &mut R,
        size: u64,
    ) -> Result<(), ClientError> {
        let head = modify_head(remote, offset, size);
        self.conn
            .send_head(StorageCmd::ModifyFile.into(), 0, &head, size)
            .await?;
        self.send_content(src, size).await?;
        self.conn.recv_ok_discarding_body().await
    }

    /// Truncates (or extends with zeros) an appender file.
    pub async fn truncate(&mut self, remote: &str, new_size: u64) -> Result<(), ClientError> {
        let body = truncate_body(remote, new_size);
        self.conn
            .send(StorageCmd::TruncateFile.into(), 0, &body)
            .await?;
        self.conn.recv_ok_discarding_body().await
    }

    /// Turns an appender file into a normal file with a new name (38).
    pub async fn regenerate_appender_name(&mut self, remote: &str) -> Result<FileId, ClientError> {
        let body = self
            .conn
            .call(
                StorageCmd::RegenerateAppenderFilename.into(),
                remote.as_bytes(),
            )
            .await?;
        file_id_from(&body)
    }

    /// Header-only ping (111).
    pub async fn active_test(&mut self) -> Result<(), ClientError> {
        self.conn.call(CMD_ACTIVE_TEST, &[]).await.map(drop)
    }

    /// How far the storage's disk recovery is (RECOVERY_PROGRESS, 242, a
    /// fastdfs-rs extension; a C storage answers EINVAL and closes).
    pub async fn recovery_progress(
        &mut self,
    ) -> Result<fdfs_proto::storage_msg::RecoveryProgress, ClientError> {
        let body = self
            .conn
            .call(fdfs_proto::StorageCmd::RecoveryProgress.into(), &[])
            .await?;
        Ok(fdfs_proto::storage_msg::RecoveryProgress::decode(&body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";

    #[test]
    fn upload_head_golden_a4() {
        let h = upload_head(0, 14, "txt");
        assert_eq!(h, [0, 0, 0, 0, 0, 0, 0, 0, 0x0e, b't', b'x', b't', 0, 0, 0]);
        assert_eq!(upload_head(-1, 0, "")[0], 0xFF);
    }

    #[test]
    fn slave_head_layout() {
        let h = upload_slave_head(NAME, "_150x150", "jpg", 5);
        assert_eq!(h.len(), 38 + NAME.len());
        assert_eq!(&h[..8], &(NAME.len() as u64).to_be_bytes());
        assert_eq!(&h[8..16], &5u64.to_be_bytes());
        assert_eq!(&h[16..24], b"_150x150");
        assert_eq!(&h[32..35], b"jpg");
        assert_eq!(&h[38..], NAME.as_bytes());
    }

    #[test]
    fn download_body_layout() {
        let b = download_body("group1", NAME, 6, 7);
        assert_eq!(&b[..8], &6i64.to_be_bytes());
        assert_eq!(&b[8..16], &7i64.to_be_bytes());
        assert_eq!(&b[16..22], b"group1");
        assert_eq!(&b[32..], NAME.as_bytes());
    }

    #[test]
    fn set_metadata_body_layout() {
        let meta = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ];
        let b = set_metadata_body("group1", NAME, &meta, MetaOp::Merge);
        assert_eq!(&b[..8], &44u64.to_be_bytes());
        assert_eq!(&b[8..16], &7u64.to_be_bytes());
        assert_eq!(b[16], b'M');
        assert_eq!(&b[33..77], NAME.as_bytes());
        assert_eq!(&b[77..], b"a\x021\x01b\x022");
    }

    #[test]
    fn appender_heads() {
        let a = append_head(NAME, 9);
        assert_eq!(a.len(), 16 + 44);
        assert_eq!(&a[8..16], &9u64.to_be_bytes());
        let m = modify_head(NAME, 3, 4);
        assert_eq!(&m[8..16], &3i64.to_be_bytes());
        assert_eq!(&m[16..24], &4u64.to_be_bytes());
        assert_eq!(&m[24..], NAME.as_bytes());
        let t = truncate_body(NAME, 10);
        assert_eq!(&t[..8], &44u64.to_be_bytes());
        assert_eq!(&t[8..16], &10i64.to_be_bytes());
    }

    #[test]
    fn upload_kind_commands() {
        assert_eq!(u8::from(UploadKind::Normal.cmd()), 11);
        assert_eq!(u8::from(UploadKind::Appender.cmd()), 23);
    }
}
