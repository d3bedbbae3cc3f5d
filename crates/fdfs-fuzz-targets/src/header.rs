//! Target `packet_header`: the 10-byte header, whole and incremental.

use bytes::BytesMut;
use fdfs_proto::{Header, HEADER_LEN};

pub fn packet_header(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let Some(h) = Header::decode(&mut buf) else {
        assert!(data.len() < HEADER_LEN, "a full header was not decoded");
        assert_eq!(buf.len(), data.len(), "a short header consumed bytes");
        return;
    };
    assert_eq!(buf.len(), data.len() - HEADER_LEN, "consumed != 10 bytes");
    assert_eq!(
        &h.to_bytes()[..],
        &data[..HEADER_LEN],
        "encode(decode) != input"
    );
    assert_eq!(h.body_len().is_some(), h.pkg_len >= 0);
    crate::assert_round_trip(
        "header",
        &h,
        |h, b| h.encode(b),
        |b| Header::decode(&mut BytesMut::from(b)).ok_or("short"),
    );
}
