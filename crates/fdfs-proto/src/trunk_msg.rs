//! Bodies of the storage-to-storage trunk commands (PROTOCOL.md §11.5) and
//! the trunk reports to trackers (§4.6). Sans-IO.
//!
//! | cmd | request body | answer body |
//! |-----|--------------|-------------|
//! | 27 TRUNK_ALLOC_SPACE | group (16) + file size int32 + store path index (1) = 21 | FDFSTrunkInfoBuff (15) |
//! | 28 TRUNK_ALLOC_CONFIRM | group (16) + FDFSTrunkInfoBuff (15) = 31; header status = write result | empty |
//! | 29 TRUNK_FREE_SPACE | group (16) + FDFSTrunkInfoBuff (15) = 31 | empty |
//! | 30 TRUNK_SYNC_BINLOG | trunk binlog lines, verbatim | empty |
//! | 31 TRUNK_GET_BINLOG_SIZE | empty | int64 bytes |
//! | 32 TRUNK_DELETE_BINLOG_MARKS, 33 TRUNK_TRUNCATE_BINLOG_FILE | empty | empty |
//! | 72 FETCH_TRUNK_FID | empty | int32 id |
//! | 73 REPORT_TRUNK_FID | int32 id | empty |
//! | 74 REPORT_TRUNK_FREE | int64 MB | empty |

use bytes::{BufMut, BytesMut};

use crate::trunk::{TrunkLocation, SLOT_HEADER_LEN, TRUNK_INFO_BUFF_LEN};
use crate::wire::{put_fixed, Reader};
use crate::{ProtoError, GROUP_NAME_MAX_LEN};

/// ALLOC_SPACE (27) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocReq {
    pub group: String,
    /// Content bytes of the file to store. On the wire the size counts the
    /// 24-byte slot header too: the original's member sends
    /// `TRUNK_CALC_SIZE(file_bytes)` and its trunk server allocates exactly
    /// that (rounded), so the codec adds and strips the header here.
    pub file_size: u32,
    pub store_path_index: u8,
}

impl AllocReq {
    pub const WIRE_LEN: usize = GROUP_NAME_MAX_LEN + 4 + 1;

    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.group.as_bytes(), GROUP_NAME_MAX_LEN);
        buf.put_u32(self.file_size.saturating_add(SLOT_HEADER_LEN as u32));
        buf.put_u8(self.store_path_index);
    }

    /// Exactly 21 bytes; a size smaller than the slot header is refused.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::WIRE_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let size = r.i32()?;
        let file_size = u32::try_from(size)
            .ok()
            .and_then(|n| n.checked_sub(SLOT_HEADER_LEN as u32))
            .ok_or_else(|| {
                ProtoError::invalid(format!(
                    "trunk slot size {size} is smaller than the slot header"
                ))
            })?;
        Ok(AllocReq {
            group,
            file_size,
            store_path_index: r.u8()?,
        })
    }
}

/// ALLOC_CONFIRM (28) and FREE_SPACE (29) request: a group and a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReq {
    pub group: String,
    pub slot: TrunkLocation,
}

impl SlotReq {
    pub const WIRE_LEN: usize = GROUP_NAME_MAX_LEN + TRUNK_INFO_BUFF_LEN;

    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed(buf, self.group.as_bytes(), GROUP_NAME_MAX_LEN);
        buf.put_slice(&self.slot.to_info_buff());
    }

    /// Exactly 31 bytes.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::WIRE_LEN {
            return Err(ProtoError::BadLength(body.len()));
        }
        let mut r = Reader::new(body);
        let group = r.fixed_str(GROUP_NAME_MAX_LEN)?;
        let slot = TrunkLocation::from_info_buff(r.bytes(TRUNK_INFO_BUFF_LEN)?)?;
        Ok(SlotReq { group, slot })
    }
}

/// The request header status of a FREE_SPACE (29) sent only once every
/// peer has the delete (ours). The original ignores the status of 29, and
/// our trunk server then checks its own copy of the slot more strictly.
pub const FREE_STATUS_EVERY_PEER_DELETED: u8 = 1;

/// Whether an ALLOC_CONFIRM (28) request header status keeps the slot out
/// of the free space, as the original's trunk server reads it: 0 (it holds
/// the new file) and EEXIST (it holds another file a member would not write
/// over) do; any other status gives it back.
pub fn confirm_keeps_slot(status: u8) -> bool {
    status == 0 || status == crate::Status::EEXIST.0
}

/// An 8-byte big-endian integer body (31's answer, 74's request).
pub fn encode_i64(value: i64) -> [u8; 8] {
    value.to_be_bytes()
}

/// Reads an 8-byte body; any other length is refused.
pub fn decode_i64(body: &[u8]) -> Result<i64, ProtoError> {
    let b: [u8; 8] = body
        .try_into()
        .map_err(|_| ProtoError::BadLength(body.len()))?;
    Ok(i64::from_be_bytes(b))
}

/// A 4-byte big-endian integer body (72's answer, 73's request).
pub fn encode_i32(value: i32) -> [u8; 4] {
    value.to_be_bytes()
}

/// Reads a 4-byte body; any other length is refused.
pub fn decode_i32(body: &[u8]) -> Result<i32, ProtoError> {
    let b: [u8; 4] = body
        .try_into()
        .map_err(|_| ProtoError::BadLength(body.len()))?;
    Ok(i32::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirm_keeps_the_slot_when_it_holds_a_file() {
        assert!(confirm_keeps_slot(0));
        assert!(confirm_keeps_slot(crate::Status::EEXIST.0));
        for given_back in [crate::Status::EIO.0, 1, 2, 255] {
            assert!(!confirm_keeps_slot(given_back), "{given_back}");
        }
    }

    fn slot() -> TrunkLocation {
        TrunkLocation {
            store_path_index: 1,
            sub_path_high: 0x0A,
            sub_path_low: 0xFF,
            trunk_file_id: 7,
            offset: 1024,
            size: 256,
        }
    }

    #[test]
    fn alloc_request_round_trip_and_bytes() {
        let req = AllocReq {
            group: "group1".into(),
            file_size: 0x0102_0304,
            store_path_index: 2,
        };
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        assert_eq!(buf.len(), AllocReq::WIRE_LEN);
        assert_eq!(&buf[..6], b"group1");
        assert_eq!(&buf[6..16], &[0u8; 10]);
        // 0x01020304 content bytes + the 24-byte header.
        assert_eq!(&buf[16..], &[1, 2, 3, 0x1C, 2]);
        assert_eq!(AllocReq::decode(&buf).unwrap(), req);
    }

    /// The body a C 6.16.1 member sends for a 1,000-byte upload:
    /// `TRUNK_CALC_SIZE(1000)` = 1,024 (found by hand: our check of the
    /// answer refused the original trunk server's too small slots).
    #[test]
    fn alloc_request_size_counts_the_slot_header_as_the_original() {
        let mut body = b"group1".to_vec();
        body.resize(GROUP_NAME_MAX_LEN, 0);
        body.extend_from_slice(&1024i32.to_be_bytes());
        body.push(0);
        let req = AllocReq::decode(&body).unwrap();
        assert_eq!(req.file_size, 1000);
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        assert_eq!(&buf[..], &body[..]);
        // Below the header: no file fits.
        body[16..20].copy_from_slice(&23i32.to_be_bytes());
        assert!(AllocReq::decode(&body).is_err());
    }

    #[test]
    fn alloc_request_refuses_bad_lengths_and_negative_sizes() {
        assert!(AllocReq::decode(&[0u8; 20]).is_err());
        assert!(AllocReq::decode(&[0u8; 22]).is_err());
        let mut body = vec![0u8; AllocReq::WIRE_LEN];
        body[16] = 0x80;
        assert!(AllocReq::decode(&body).is_err());
    }

    #[test]
    fn slot_request_round_trip() {
        let req = SlotReq {
            group: "g".into(),
            slot: slot(),
        };
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        assert_eq!(buf.len(), 31);
        assert_eq!(&buf[16..19], &[1, 0x0A, 0xFF]);
        assert_eq!(&buf[19..23], &7u32.to_be_bytes());
        assert_eq!(SlotReq::decode(&buf).unwrap(), req);
        assert!(SlotReq::decode(&buf[..30]).is_err());
        let mut longer = buf.to_vec();
        longer.push(0);
        assert!(SlotReq::decode(&longer).is_err());
    }

    #[test]
    fn integer_bodies() {
        assert_eq!(decode_i64(&encode_i64(-5)).unwrap(), -5);
        assert_eq!(decode_i32(&encode_i32(77)).unwrap(), 77);
        assert!(decode_i64(&[0; 4]).is_err());
        assert!(decode_i32(&[0; 8]).is_err());
    }
}
