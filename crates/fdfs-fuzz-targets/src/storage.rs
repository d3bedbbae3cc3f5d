//! Target `storage_msg`: every storage request decoder (`storage_msg`,
//! `sync_msg`) and the storage answers the client decodes. The first byte
//! picks the decoder, the rest is the body. For requests with content the
//! head is what the server reads before streaming: `FIXED_LEN` bytes, then
//! the `name_len` it announces; the body length comes from the input.

use fdfs_proto::storage_msg::*;
use fdfs_proto::sync_msg::*;
use fdfs_proto::wire::NamedHead;
use fdfs_proto::{metadata, status::ProtoError};

use crate::{assert_round_trip, rt};

const SELECTORS: u8 = 17;

pub fn storage_msg(data: &[u8]) {
    let Some((sel, body)) = crate::split_selector(data) else {
        return;
    };
    match sel % SELECTORS {
        0 => {
            // UPLOAD: the head, with the declared length the tail.
            let (head, extra) = body.split_at(body.len().min(UploadReq::FIXED_LEN));
            let body_len = (head.len() + extra.len()) as u64;
            if let Ok(u) = UploadReq::decode_head(head, body_len) {
                assert_eq!(u.file_size, extra.len() as u64);
                assert_round_trip("UploadReq", &u, UploadReq::encode_head, |b| {
                    UploadReq::decode_head(b, b.len() as u64 + u.file_size)
                });
            }
        }
        1 => streamed_head(
            body,
            UploadSlaveReq::FIXED_LEN,
            UploadSlaveReq::name_len,
            |head, body_len| {
                let u = UploadSlaveReq::decode_head(head, body_len)?;
                assert!(u.master.len() < MAX_FILENAME_LEN);
                assert_round_trip("UploadSlaveReq", &u, UploadSlaveReq::encode_head, |b| {
                    UploadSlaveReq::decode_head(b, b.len() as u64 + u.file_size)
                });
                Ok(())
            },
        ),
        2 => rt("FileIdResp", body, FileIdResp::decode, FileIdResp::encode),
        3 => rt(
            "DownloadReq",
            body,
            DownloadReq::decode,
            DownloadReq::encode,
        ),
        4 => {
            if let Ok(m) = SetMetaReq::decode(body) {
                assert!(m.meta.len() <= body.len());
                assert_round_trip("SetMetaReq", &m, SetMetaReq::encode, SetMetaReq::decode);
                // Metadata pairs: pack(unpack) keeps every pair unpack found.
                let pairs = metadata::unpack(&m.meta);
                assert_eq!(metadata::unpack(&metadata::pack(&pairs)), pairs);
            }
        }
        5 => {
            // The fixed-size answers: RECOVERY_PROGRESS re-encodes to its
            // exact bytes (every count it accepts is a non-negative int64).
            if let Ok(p) = RecoveryProgress::decode(body) {
                let mut again = bytes::BytesMut::new();
                p.encode(&mut again);
                assert_eq!(&again[..], body, "RecoveryProgress re-encodes differently");
            }
            if let Ok(f) = FileInfoResp::decode(body) {
                let width = body.len() - 24;
                assert_round_trip(
                    "FileInfoResp",
                    &f,
                    |f, b| f.encode(b, width),
                    FileInfoResp::decode,
                );
            }
        }
        6 => streamed_head(
            body,
            AppendReq::FIXED_LEN,
            AppendReq::name_len,
            |head, body_len| {
                let a = AppendReq::decode_head(head, body_len)?;
                assert_round_trip("AppendReq", &a, AppendReq::encode_head, |b| {
                    AppendReq::decode_head(b, b.len() as u64 + a.length)
                });
                Ok(())
            },
        ),
        7 => streamed_head(
            body,
            ModifyReq::FIXED_LEN,
            ModifyReq::name_len,
            |head, body_len| {
                let m = ModifyReq::decode_head(head, body_len)?;
                assert!(m.offset >= 0);
                assert_round_trip("ModifyReq", &m, ModifyReq::encode_head, |b| {
                    ModifyReq::decode_head(b, b.len() as u64 + m.length)
                });
                Ok(())
            },
        ),
        8 => rt(
            "TruncateReq",
            body,
            TruncateReq::decode,
            TruncateReq::encode,
        ),
        9 => {
            if let Ok(name) = decode_regenerate(body) {
                if std::str::from_utf8(body).is_ok() {
                    assert_eq!(name.as_bytes(), body);
                }
            }
        }
        10 => streamed_head(
            body,
            SyncFileReq::FIXED_LEN,
            SyncFileReq::name_len,
            |head, _| {
                let s = SyncFileReq::decode_head(head)?;
                assert_round_trip(
                    "SyncFileReq",
                    &s,
                    SyncFileReq::encode_head,
                    SyncFileReq::decode_head,
                );
                Ok(())
            },
        ),
        11 => streamed_head(
            body,
            SyncRangeReq::FIXED_LEN,
            SyncRangeReq::name_len,
            |head, _| {
                let s = SyncRangeReq::decode_head(head)?;
                assert_round_trip(
                    "SyncRangeReq",
                    &s,
                    SyncRangeReq::encode_head,
                    SyncRangeReq::decode_head,
                );
                Ok(())
            },
        ),
        12 => rt(
            "SyncDeleteReq",
            body,
            SyncDeleteReq::decode,
            SyncDeleteReq::encode,
        ),
        13 => rt(
            "SyncPairReq",
            body,
            SyncPairReq::decode,
            SyncPairReq::encode,
        ),
        14 => {
            let pairs = metadata::unpack(body);
            for p in &pairs {
                assert!(p.0.len() <= metadata::MAX_META_NAME_LEN);
                assert!(p.1.len() <= metadata::MAX_META_VALUE_LEN);
            }
            assert_eq!(metadata::unpack(&metadata::pack(&pairs)), pairs);
        }
        15 => {
            if let Ok(g) = fdfs_proto::tracker_msg::GroupFileReq::decode(body) {
                assert!(g.group.chars().count() <= fdfs_proto::GROUP_NAME_MAX_LEN);
            }
        }
        _ => {
            let Some((&flag, _)) = body.split_first() else {
                return;
            };
            if let Some(op) = metadata::MetaOp::from_flag(flag) {
                assert_eq!(op.flag(), flag);
            }
        }
    }
}

/// Reads a head the way the server does: `fixed` bytes, `name_len` more,
/// the rest being content. Checks that the name length stays within the
/// input before the head decoder sees it.
fn streamed_head(
    body: &[u8],
    fixed: usize,
    name_len: fn(&[u8]) -> Result<usize, ProtoError>,
    check: impl FnOnce(&[u8], u64) -> Result<(), ProtoError>,
) {
    if body.len() < fixed {
        return;
    }
    let Ok(n) = name_len(&body[..fixed]) else {
        return;
    };
    let Some(head) = body.get(..fixed + n) else {
        return;
    };
    let _ = check(head, body.len() as u64);
}
