//! The 10-byte packet header shared by every request and response.
//!
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 8    | pkg_len: body length, int64 big-endian  |
//! | 8      | 1    | cmd (100 on every response)             |
//! | 9      | 1    | status: 0 or an errno value             |

use bytes::{BufMut, BytesMut};

use crate::cmd::CMD_RESP;

pub const HEADER_LEN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Body length; negative values are a protocol error the receiver rejects.
    pub pkg_len: i64,
    pub cmd: u8,
    pub status: u8,
}

impl Header {
    pub fn new(cmd: u8, pkg_len: usize) -> Self {
        Header {
            pkg_len: pkg_len as i64,
            cmd,
            status: 0,
        }
    }

    /// A response header (cmd 100).
    pub fn response(status: u8, pkg_len: usize) -> Self {
        Header {
            pkg_len: pkg_len as i64,
            cmd: CMD_RESP,
            status,
        }
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&self.pkg_len.to_be_bytes());
        out[8] = self.cmd;
        out[9] = self.status;
        out
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.to_bytes());
    }

    pub fn from_bytes(raw: &[u8; HEADER_LEN]) -> Self {
        let mut len = [0u8; 8];
        len.copy_from_slice(&raw[..8]);
        Header {
            pkg_len: i64::from_be_bytes(len),
            cmd: raw[8],
            status: raw[9],
        }
    }

    /// Incremental decode: `Ok(None)` means more bytes are needed. Consumes
    /// the header bytes from `buf` on success.
    pub fn decode(buf: &mut BytesMut) -> Option<Self> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let raw = buf.split_to(HEADER_LEN);
        let mut arr = [0u8; HEADER_LEN];
        arr.copy_from_slice(&raw);
        Some(Header::from_bytes(&arr))
    }

    /// The body length as usize, or None when negative (protocol error).
    pub fn body_len(&self) -> Option<u64> {
        u64::try_from(self.pkg_len).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn active_test_golden() {
        let h = Header::new(111, 0);
        assert_eq!(h.to_bytes(), [0, 0, 0, 0, 0, 0, 0, 0, 0x6f, 0]);
        let r = Header::response(0, 0);
        assert_eq!(r.to_bytes(), [0, 0, 0, 0, 0, 0, 0, 0, 0x64, 0]);
    }

    #[test]
    fn partial_header_needs_more() {
        let mut buf = BytesMut::from(&[0u8; 9][..]);
        assert!(Header::decode(&mut buf).is_none());
        assert_eq!(buf.len(), 9);
    }

    proptest! {
        #[test]
        fn roundtrip(pkg_len in any::<i64>(), cmd in any::<u8>(), status in any::<u8>()) {
            let h = Header { pkg_len, cmd, status };
            let mut buf = BytesMut::new();
            h.encode(&mut buf);
            prop_assert_eq!(Header::decode(&mut buf), Some(h));
            prop_assert!(buf.is_empty());
        }
    }
}
