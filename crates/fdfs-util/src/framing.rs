//! Packet framing on a socket (PROTOCOL.md §1.1): the 10-byte header and
//! its body, read and written the same way by the client and both daemons
//! so they cannot drift apart.

use bytes::BytesMut;
use fdfs_proto::{Header, HEADER_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one 10-byte header.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Header> {
    let mut raw = [0u8; HEADER_LEN];
    r.read_exact(&mut raw).await?;
    Ok(Header::from_bytes(&raw))
}

/// Reads exactly `len` body bytes.
pub async fn read_body<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes a header and body in one call.
pub async fn write_packet<W: AsyncWrite + Unpin>(
    w: &mut W,
    cmd: u8,
    status: u8,
    body: &[u8],
) -> std::io::Result<()> {
    let h = Header {
        pkg_len: body.len() as i64,
        cmd,
        status,
    };
    if body.len() < 64 * 1024 {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + body.len());
        h.encode(&mut buf);
        buf.extend_from_slice(body);
        w.write_all(&buf).await
    } else {
        w.write_all(&h.to_bytes()).await?;
        w.write_all(body).await
    }
}
