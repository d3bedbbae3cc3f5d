//! Storage request and response bodies (§3).
//!
//! Requests that carry file content (upload, slave upload, append, modify)
//! are split into a *head* (fixed fields plus names) and the content that
//! follows. The server reads `FIXED_LEN` bytes, asks `name_len` how many
//! name bytes follow, reads them, and then `decode_head` checks that the
//! declared content size matches the rest of the body; the content itself is
//! streamed to disk and never passes through these types.

use bytes::{BufMut, BytesMut};

use crate::status::ProtoError;
use crate::tracker_msg::put_group;
use crate::wire::{put_fixed, wire_len, NamedHead, Reader};
use crate::{FILE_EXT_NAME_MAX_LEN, FILE_PREFIX_MAX_LEN, GROUP_NAME_MAX_LEN};

/// Longest remote name accepted by append/modify/truncate/slave requests.
pub const MAX_FILENAME_LEN: usize = 128;

fn content_len(body_len: u64, head_len: usize, declared: i64) -> Result<u64, ProtoError> {
    let rest = body_len
        .checked_sub(head_len as u64)
        .ok_or(ProtoError::BadLength(head_len))?;
    if declared < 0 || declared as u64 != rest {
        return Err(ProtoError::invalid(format!(
            "declared size {declared} != {rest} bytes sent"
        )));
    }
    Ok(rest)
}

/// UPLOAD_FILE (11) / UPLOAD_APPENDER_FILE (23) head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReq {
    /// -1 lets the storage choose.
    pub store_path_index: i8,
    pub file_size: u64,
    pub ext: String,
}

impl UploadReq {
    pub const FIXED_LEN: usize = 15;

    pub fn encode_head(&self, buf: &mut BytesMut) {
        buf.put_i8(self.store_path_index);
        buf.put_u64(self.file_size);
        put_fixed(buf, self.ext.as_bytes(), FILE_EXT_NAME_MAX_LEN);
    }

    pub fn decode_head(head: &[u8], body_len: u64) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let store_path_index = r.u8()? as i8;
        let declared = r.i64()?;
        let ext = r.fixed_str(FILE_EXT_NAME_MAX_LEN)?;
        r.expect_end()?;
        let file_size = content_len(body_len, Self::FIXED_LEN, declared)?;
        Ok(UploadReq {
            store_path_index,
            file_size,
            ext,
        })
    }
}

/// UPLOAD_SLAVE_FILE (21) head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSlaveReq {
    pub master: String,
    pub file_size: u64,
    pub prefix: String,
    pub ext: String,
}

impl NamedHead for UploadSlaveReq {
    const FIXED_LEN: usize = 38;

    /// Master name length: must be > 10 and < 128.
    fn check_name_len(declared: i64) -> Result<usize, ProtoError> {
        let len = wire_len(declared)?;
        if len <= 10 || len >= MAX_FILENAME_LEN {
            return Err(ProtoError::invalid(format!("master filename length {len}")));
        }
        Ok(len)
    }
}

impl UploadSlaveReq {
    pub fn encode_head(&self, buf: &mut BytesMut) {
        buf.put_u64(self.master.len() as u64);
        buf.put_u64(self.file_size);
        put_fixed(buf, self.prefix.as_bytes(), FILE_PREFIX_MAX_LEN);
        put_fixed(buf, self.ext.as_bytes(), FILE_EXT_NAME_MAX_LEN);
        buf.put_slice(self.master.as_bytes());
    }

    pub fn decode_head(head: &[u8], body_len: u64) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let name_len = Self::read_name_len(&mut r)?;
        let declared = r.i64()?;
        let prefix = r.fixed_str(FILE_PREFIX_MAX_LEN)?;
        let ext = r.fixed_str(FILE_EXT_NAME_MAX_LEN)?;
        let master = String::from_utf8_lossy(r.bytes(name_len)?).into_owned();
        r.expect_end()?;
        let file_size = content_len(body_len, head.len(), declared)?;
        Ok(UploadSlaveReq {
            master,
            file_size,
            prefix,
            ext,
        })
    }
}

/// Answer to uploads and REGENERATE_APPENDER_FILENAME: group + remote name,
/// laid out as the requests that name a file.
pub type FileIdResp = crate::tracker_msg::GroupFileReq;

/// DOWNLOAD_FILE (14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReq {
    pub offset: i64,
    /// 0 = to the end of the file.
    pub length: i64,
    pub group: String,
    pub remote: String,
}

impl DownloadReq {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_i64(self.offset);
        buf.put_i64(self.length);
        put_group(buf, &self.group);
        buf.put_slice(self.remote.as_bytes());
    }

    /// Body must be longer than 32 bytes.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() <= 16 + GROUP_NAME_MAX_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        Ok(DownloadReq {
            offset: r.i64()?,
            length: r.i64()?,
            group: r.fixed_str(GROUP_NAME_MAX_LEN)?,
            remote: r.rest_str(),
        })
    }
}

/// SET_METADATA (13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMetaReq {
    pub remote: String,
    /// `b'O'` overwrite or `b'M'` merge; anything else is EINVAL on the server.
    pub op_flag: u8,
    pub group: String,
    pub meta: Vec<u8>,
}

impl SetMetaReq {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.remote.len() as u64);
        buf.put_u64(self.meta.len() as u64);
        buf.put_u8(self.op_flag);
        put_group(buf, &self.group);
        buf.put_slice(self.remote.as_bytes());
        buf.put_slice(&self.meta);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let name_len = wire_len(r.i64()?)?;
        let meta_len = wire_len(r.i64()?)?;
        if name_len == 0 || name_len >= MAX_FILENAME_LEN {
            return Err(ProtoError::invalid(format!("filename length {name_len}")));
        }
        if body.len() != 33usize.saturating_add(name_len).saturating_add(meta_len) {
            return Err(ProtoError::BadLength(body.len()));
        }
        let op_flag = r.u8()?;
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let remote = String::from_utf8_lossy(r.bytes(name_len)?).into_owned();
        let meta = r.bytes(meta_len)?.to_vec();
        Ok(SetMetaReq {
            remote,
            op_flag,
            group,
            meta,
        })
    }
}

/// QUERY_FILE_INFO (22) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfoResp {
    pub file_size: i64,
    pub create_timestamp: i64,
    pub crc32: u32,
    pub source_ip: String,
}

impl FileInfoResp {
    /// `ip_width` is 16 (IPv4 clusters) or 46.
    pub fn encode(&self, buf: &mut BytesMut, ip_width: usize) {
        buf.put_i64(self.file_size);
        buf.put_i64(self.create_timestamp);
        // The original sign-extends the 32-bit CRC.
        buf.put_i64(i64::from(self.crc32 as i32));
        put_fixed(buf, self.source_ip.as_bytes(), ip_width);
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let ip_width = match body.len() {
            40 => 16,
            70 => 46,
            n => return Err(ProtoError::BadLength(n)),
        };
        let mut r = Reader::new(body);
        Ok(FileInfoResp {
            file_size: r.i64()?,
            create_timestamp: r.i64()?,
            crc32: r.i64()? as u32,
            source_ip: r.fixed_str(ip_width)?,
        })
    }
}

/// Phases of [`RecoveryProgress`].
pub mod recovery_phase {
    /// No disk recovery since the storage started.
    pub const NONE: u8 = 0;
    /// Fetching the list of files (FETCH_ONE_PATH_BINLOG) from a peer.
    pub const FETCHING_BINLOG: u8 = 1;
    /// Downloading the listed files.
    pub const RESTORING: u8 = 2;
    /// The last rebuild is complete; the figures are its totals.
    pub const DONE: u8 = 3;
}

/// RECOVERY_PROGRESS (242, a fastdfs-rs extension) answer: how far the
/// storage's disk recovery (§5.6) is. A recovering storage answers it
/// while every other command but ACTIVE_TEST gets EAGAIN. Fixed
/// [`RecoveryProgress::LEN`] bytes: phase (1) | store path index (1) |
/// records done, records total, files restored, bytes restored,
/// milliseconds since the restore began (5 × int64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryProgress {
    pub phase: u8,
    pub store_path_index: u8,
    /// Binlog records dealt with (restored, gone on the peer, or not ours).
    pub records_done: u64,
    pub records_total: u64,
    pub files_restored: u64,
    pub bytes_restored: u64,
    pub elapsed_ms: u64,
}

impl RecoveryProgress {
    pub const LEN: usize = 2 + 5 * 8;

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.phase);
        buf.put_u8(self.store_path_index);
        for v in [
            self.records_done,
            self.records_total,
            self.files_restored,
            self.bytes_restored,
            self.elapsed_ms,
        ] {
            buf.put_i64(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let (phase, store_path_index) = (r.u8()?, r.u8()?);
        let mut count = || {
            let v = r.i64()?;
            u64::try_from(v).map_err(|_| ProtoError::invalid(format!("negative count {v}")))
        };
        Ok(RecoveryProgress {
            phase,
            store_path_index,
            records_done: count()?,
            records_total: count()?,
            files_restored: count()?,
            bytes_restored: count()?,
            elapsed_ms: count()?,
        })
    }
}

/// APPEND_FILE (24) head: appender name, then `length` bytes follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReq {
    pub remote: String,
    pub length: u64,
}

impl NamedHead for AppendReq {
    const FIXED_LEN: usize = 16;

    fn check_name_len(declared: i64) -> Result<usize, ProtoError> {
        appender_name_len(declared)
    }
}

impl AppendReq {
    pub fn encode_head(&self, buf: &mut BytesMut) {
        buf.put_u64(self.remote.len() as u64);
        buf.put_u64(self.length);
        buf.put_slice(self.remote.as_bytes());
    }

    pub fn decode_head(head: &[u8], body_len: u64) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let name_len = Self::read_name_len(&mut r)?;
        let declared = r.i64()?;
        let remote = String::from_utf8_lossy(r.bytes(name_len)?).into_owned();
        r.expect_end()?;
        let length = content_len(body_len, head.len(), declared)?;
        Ok(AppendReq { remote, length })
    }
}

/// Appender names are >= 44 and < 128 bytes.
fn appender_name_len(len: i64) -> Result<usize, ProtoError> {
    let len = wire_len(len)?;
    if !(crate::NORMAL_LOGIC_FILENAME_LENGTH..MAX_FILENAME_LEN).contains(&len) {
        return Err(ProtoError::invalid(format!(
            "appender filename length {len}"
        )));
    }
    Ok(len)
}

/// MODIFY_FILE (34) head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyReq {
    pub remote: String,
    pub offset: i64,
    pub length: u64,
}

impl NamedHead for ModifyReq {
    const FIXED_LEN: usize = 24;

    fn check_name_len(declared: i64) -> Result<usize, ProtoError> {
        appender_name_len(declared)
    }
}

impl ModifyReq {
    pub fn encode_head(&self, buf: &mut BytesMut) {
        buf.put_u64(self.remote.len() as u64);
        buf.put_i64(self.offset);
        buf.put_u64(self.length);
        buf.put_slice(self.remote.as_bytes());
    }

    pub fn decode_head(head: &[u8], body_len: u64) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let name_len = Self::read_name_len(&mut r)?;
        let offset = r.i64()?;
        let declared = r.i64()?;
        let remote = String::from_utf8_lossy(r.bytes(name_len)?).into_owned();
        r.expect_end()?;
        if offset < 0 {
            return Err(ProtoError::invalid(format!("negative offset {offset}")));
        }
        let length = content_len(body_len, head.len(), declared)?;
        Ok(ModifyReq {
            remote,
            offset,
            length,
        })
    }
}

/// TRUNCATE_FILE (36).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateReq {
    pub remote: String,
    pub new_size: i64,
}

impl TruncateReq {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.remote.len() as u64);
        buf.put_i64(self.new_size);
        buf.put_slice(self.remote.as_bytes());
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let name_len = appender_name_len(r.i64()?)?;
        let new_size = r.i64()?;
        let remote = String::from_utf8_lossy(r.bytes(name_len)?).into_owned();
        r.expect_end()?;
        if new_size < 0 {
            return Err(ProtoError::invalid(format!("negative size {new_size}")));
        }
        Ok(TruncateReq { remote, new_size })
    }
}

/// REGENERATE_APPENDER_FILENAME (38): the body is the appender name.
pub fn decode_regenerate(body: &[u8]) -> Result<String, ProtoError> {
    appender_name_len(body.len() as i64)?;
    Ok(String::from_utf8_lossy(body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A4_NAME: &str = "M00/02/E1/fwAAAWsHARmAQdxWAAAADjf5ba8161.txt";

    #[test]
    fn golden_a4_upload_request() {
        let req = UploadReq {
            store_path_index: 0,
            file_size: 14,
            ext: "txt".into(),
        };
        let mut b = BytesMut::new();
        req.encode_head(&mut b);
        b.put_slice(b"Hello FastDFS\n");
        let expected: Vec<u8> = [
            &[0u8][..],
            &[0, 0, 0, 0, 0, 0, 0, 0x0e][..],
            &[0x74, 0x78, 0x74, 0, 0, 0][..],
            b"Hello FastDFS\n",
        ]
        .concat();
        assert_eq!(&b[..], &expected[..]);
        assert_eq!(UploadReq::decode_head(&b[..15], 29).unwrap(), req);
        // declared size must match what follows
        assert!(UploadReq::decode_head(&b[..15], 30).is_err());
        assert!(UploadReq::decode_head(&b[..15], 10).is_err());
    }

    #[test]
    fn golden_a5_file_info() {
        let resp = FileInfoResp {
            file_size: 14,
            create_timestamp: 1_795_621_145,
            crc32: 0x37F9_6DAF,
            source_ip: "127.0.0.1".into(),
        };
        let mut b = BytesMut::new();
        resp.encode(&mut b, 16);
        assert_eq!(b.len(), 40);
        assert_eq!(&b[16..24], &[0, 0, 0, 0, 0x37, 0xf9, 0x6d, 0xaf]);
        assert_eq!(FileInfoResp::decode(&b).unwrap(), resp);
        let neg = FileInfoResp {
            crc32: 0x8A7E_99C5,
            ..resp
        };
        b.clear();
        neg.encode(&mut b, 16);
        assert_eq!(
            &b[16..24],
            &[0xff, 0xff, 0xff, 0xff, 0x8a, 0x7e, 0x99, 0xc5]
        );
        assert_eq!(FileInfoResp::decode(&b).unwrap(), neg);
    }

    #[test]
    fn golden_a11_set_metadata() {
        let req = SetMetaReq {
            remote: "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829.jpg".into(),
            op_flag: b'O',
            group: "group1".into(),
            meta: b"b\x021\x01a\x022".to_vec(),
        };
        let mut b = BytesMut::new();
        req.encode(&mut b);
        assert_eq!(b.len(), 84);
        assert_eq!(
            &b[..17],
            &[0, 0, 0, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 0, 0, 0, 7, 0x4f]
        );
        assert_eq!(SetMetaReq::decode(&b).unwrap(), req);
    }

    #[test]
    fn golden_a14_slave() {
        let req = UploadSlaveReq {
            master: "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829.jpg".into(),
            file_size: 12,
            prefix: "_150x150".into(),
            ext: "jpg".into(),
        };
        let mut b = BytesMut::new();
        req.encode_head(&mut b);
        assert_eq!(b.len(), 38 + 44);
        assert_eq!(UploadSlaveReq::name_len(&b[..38]).unwrap(), 44);
        assert_eq!(UploadSlaveReq::decode_head(&b, 94).unwrap(), req);
    }

    #[test]
    fn golden_a9_download() {
        let req = DownloadReq {
            offset: 0,
            length: 0,
            group: "group1".into(),
            remote: "M00/02/E0/fwAAAWsHAEGAbZL1AAAADjf5ba8109.txt".into(),
        };
        let mut b = BytesMut::new();
        req.encode(&mut b);
        assert_eq!(b.len(), 76);
        assert_eq!(DownloadReq::decode(&b).unwrap(), req);
        assert!(DownloadReq::decode(&b[..32]).is_err());
    }

    proptest! {
        #[test]
        fn upload_roundtrip(idx in any::<i8>(), size in 0u64..1_000_000, ext in "[a-z0-9]{0,6}") {
            let req = UploadReq { store_path_index: idx, file_size: size, ext };
            let mut b = BytesMut::new();
            req.encode_head(&mut b);
            prop_assert_eq!(UploadReq::decode_head(&b, 15 + size).unwrap(), req);
        }

        #[test]
        fn append_modify_truncate_roundtrip(name in "[A-Za-z0-9/]{44,100}", len in 0u64..1_000_000, off in 0i64..1_000_000) {
            let a = AppendReq { remote: name.clone(), length: len };
            let mut b = BytesMut::new();
            a.encode_head(&mut b);
            prop_assert_eq!(AppendReq::name_len(&b[..16]).unwrap(), name.len());
            prop_assert_eq!(AppendReq::decode_head(&b, b.len() as u64 + len).unwrap(), a);

            let m = ModifyReq { remote: name.clone(), offset: off, length: len };
            let mut b = BytesMut::new();
            m.encode_head(&mut b);
            prop_assert_eq!(ModifyReq::decode_head(&b, b.len() as u64 + len).unwrap(), m);

            let t = TruncateReq { remote: name.clone(), new_size: off };
            let mut b = BytesMut::new();
            t.encode(&mut b);
            prop_assert_eq!(TruncateReq::decode(&b).unwrap(), t);
            prop_assert_eq!(decode_regenerate(name.as_bytes()).unwrap(), name);
        }

        #[test]
        fn file_id_resp_roundtrip(group in "[a-z0-9]{1,16}", remote in "[A-Za-z0-9/._-]{1,80}") {
            let r = FileIdResp { group, remote };
            let mut b = BytesMut::new();
            r.encode(&mut b);
            prop_assert_eq!(FileIdResp::decode(&b).unwrap(), r);
        }

        #[test]
        fn set_meta_roundtrip(remote in "[A-Za-z0-9/._-]{1,100}", meta in proptest::collection::vec(any::<u8>(), 0..300), flag in any::<u8>()) {
            let r = SetMetaReq { remote, op_flag: flag, group: "g1".into(), meta };
            let mut b = BytesMut::new();
            r.encode(&mut b);
            prop_assert_eq!(SetMetaReq::decode(&b).unwrap(), r);
        }

        #[test]
        fn download_roundtrip(off in any::<i64>(), len in any::<i64>(), remote in "[A-Za-z0-9/._-]{1,100}") {
            let r = DownloadReq { offset: off, length: len, group: "group1".into(), remote };
            let mut b = BytesMut::new();
            r.encode(&mut b);
            prop_assert_eq!(DownloadReq::decode(&b).unwrap(), r);
        }

        #[test]
        fn file_info_roundtrip(size in any::<i64>(), ts in any::<i64>(), crc in any::<u32>(), ip in "[0-9.]{0,15}", v6 in any::<bool>()) {
            let r = FileInfoResp { file_size: size, create_timestamp: ts, crc32: crc, source_ip: ip };
            let mut b = BytesMut::new();
            r.encode(&mut b, if v6 { 46 } else { 16 });
            prop_assert_eq!(FileInfoResp::decode(&b).unwrap(), r);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), body_len in any::<u64>()) {
            let _ = UploadReq::decode_head(&data, body_len);
            let _ = UploadSlaveReq::name_len(&data);
            let _ = UploadSlaveReq::decode_head(&data, body_len);
            let _ = AppendReq::decode_head(&data, body_len);
            let _ = ModifyReq::decode_head(&data, body_len);
            let _ = TruncateReq::decode(&data);
            let _ = SetMetaReq::decode(&data);
            let _ = DownloadReq::decode(&data);
            let _ = FileInfoResp::decode(&data);
            let _ = FileIdResp::decode(&data);
        }
    }

    #[test]
    fn a4_name_is_valid_length() {
        assert_eq!(A4_NAME.len(), 44);
    }

    #[test]
    fn recovery_progress_round_trips_and_refuses_other_lengths() {
        let p = RecoveryProgress {
            phase: recovery_phase::RESTORING,
            store_path_index: 1,
            records_done: 1234,
            records_total: 2000,
            files_restored: 1200,
            bytes_restored: 10_500_000,
            elapsed_ms: 3000,
        };
        let mut b = BytesMut::new();
        p.encode(&mut b);
        assert_eq!(b.len(), RecoveryProgress::LEN);
        assert_eq!(&b[..4], &[2, 1, 0, 0]);
        assert_eq!(RecoveryProgress::decode(&b).unwrap(), p);
        assert!(RecoveryProgress::decode(&b[..41]).is_err());
        let mut negative = b.to_vec();
        negative[2] = 0x80;
        assert!(RecoveryProgress::decode(&negative).is_err());
    }
}
