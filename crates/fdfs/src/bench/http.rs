//! A minimal HTTP/1.1 client for the `http` phase: GET with keep-alive,
//! Content-Length bodies only, read and dropped as they arrive (hashed when
//! verifying), so the client costs little next to the server it measures.
//! httparse reads the response head.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::protocol::check_content;
use super::runner::Conns;

/// The parts of a response head the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RespHead {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    /// The server will close the connection after this response.
    close: bool,
}

const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Header slots httparse fills per response; a file server sends a handful.
const MAX_HEADERS: usize = 64;

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete;
/// `Ok(Some((len, head)))`: the head took `len` bytes (blank line included).
fn parse_response_head(buf: &[u8]) -> Result<Option<(usize, RespHead)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        // A malformed head is reported only once its blank line is in, as a
        // partial one would be: a peer that is no HTTP server and hangs up
        // first still reads as "closed early".
        Ok(httparse::Status::Partial) | Err(_) if !has_blank_line(buf) => {
            if buf.len() > MAX_HEAD_BYTES {
                return Err("response head too long".into());
            }
            return Ok(None);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version | httparse::Error::Status) => {
            let line_end = buf
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(buf.len());
            let status_line = String::from_utf8_lossy(&buf[..line_end]);
            return Err(format!("bad status line {status_line:?}"));
        }
        Err(e) => return Err(format!("bad header line: {e}")),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err("response head without status".into());
    };
    let mut head = RespHead {
        status,
        content_length: None,
        chunked: false,
        close: version == 0,
    };
    for header in resp.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        let value = value.trim();
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.close = true;
            } else if v.contains("keep-alive") {
                head.close = false;
            }
        }
    }
    // 1xx, 204 and 304 carry no body.
    if status < 200 || status == 204 || status == 304 {
        head.content_length = Some(0);
    }
    Ok(Some((len, head)))
}

fn has_blank_line(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n")
}

pub(super) struct HttpConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl HttpConn {
    async fn connect(addr: &str) -> Result<Self, String> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: connect timed out"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(HttpConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        })
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = tokio::time::timeout(Duration::from_secs(60), self.stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| "HTTP read timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("HTTP connection closed early".into());
        }
        Ok(())
    }

    /// GET `path`; returns the head, the body length and its CRC32 when
    /// `crc` is asked for. The body is read and dropped as it arrives.
    async fn get(
        &mut self,
        host: &str,
        path: &str,
        crc: bool,
    ) -> Result<(RespHead, u64, u32), String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fdfs-bench\r\n\r\n");
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let head = loop {
            if let Some((len, head)) = parse_response_head(&self.buf)? {
                self.buf.advance(len);
                break head;
            }
            self.fill().await?;
        };
        if head.chunked {
            return Err("chunked responses are not supported".into());
        }
        let Some(len) = head.content_length else {
            return Err("response without Content-Length".into());
        };
        let mut hasher = crc.then(crc32fast::Hasher::new);
        let mut left = len;
        loop {
            let take = (self.buf.len() as u64).min(left) as usize;
            if let Some(h) = hasher.as_mut() {
                h.update(&self.buf[..take]);
            }
            self.buf.advance(take);
            left -= take as u64;
            if left == 0 {
                break;
            }
            self.fill().await?;
        }
        Ok((head, len, hasher.map_or(0, |h| h.finalize())))
    }
}

pub(super) async fn http_get(
    addr: &str,
    conns: &mut Conns,
    file_id: &str,
    verify: bool,
) -> Result<u64, String> {
    if conns.http.is_none() {
        conns.http = Some(HttpConn::connect(addr).await?);
    }
    let Some(conn) = conns.http.as_mut() else {
        return Err("no HTTP connection".into());
    };
    let (head, len, crc) = conn.get(addr, &format!("/{file_id}"), verify).await?;
    if head.close {
        conns.http = None;
    }
    if head.status != 200 {
        return Err(format!("{file_id}: HTTP {}", head.status));
    }
    if verify {
        check_content(file_id, crc, len)?;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_head_parsing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\ncontent-length: 5\r\n\r\nhello";
        let (len, head) = parse_response_head(r).unwrap().unwrap();
        assert_eq!(&r[len..], b"hello");
        assert_eq!(
            head,
            RespHead {
                status: 200,
                content_length: Some(5),
                chunked: false,
                close: false
            }
        );
        // Incomplete head.
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(),
            None
        );
        // HTTP/1.0 closes unless keep-alive; Connection: close on 1.1.
        let (_, h) = parse_response_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close && h.status == 404 && h.content_length.is_none());
        let (_, h) = parse_response_head(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(!h.close);
        let (_, h) = parse_response_head(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.close && h.chunked);
        let (_, h) = parse_response_head(b"HTTP/1.1 304 Not Modified\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.content_length, Some(0));
        // Malformed.
        assert!(parse_response_head(b"HTTP/2 200 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n").is_err());
        assert!(parse_response_head(&vec![b'a'; MAX_HEAD_BYTES + 1]).is_err());
    }

    #[tokio::test]
    async fn http_client_keeps_alive_and_verifies() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let body = vec![7u8; 100_000];
        let crc = fdfs_proto::crc32(&body);
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut served = 0;
            while served < 3 {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                while let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..p + 4);
                    let mut resp =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 100_000)
                            .into_bytes();
                    resp.extend_from_slice(&[7u8; 100_000]);
                    s.write_all(&resp).await.unwrap();
                    served += 1;
                }
            }
        });
        let mut c = HttpConn::connect(&addr).await.unwrap();
        for _ in 0..3 {
            let (head, len, got) = c.get(&addr, "/group1/x", true).await.unwrap();
            assert_eq!((head.status, len, got), (200, 100_000, crc));
        }
        server.await.unwrap();
    }
}
