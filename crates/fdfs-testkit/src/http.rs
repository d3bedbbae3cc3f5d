//! A one-request HTTP/1.1 client for tests that read the gateway and the
//! tracker's pages, where a real HTTP client crate would be overkill.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a test waits for an answer: generous for a loaded machine.
const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One answer: status, the head as sent (status line and headers), body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// GET `path` over a fresh connection with `Connection: close`.
pub fn http_get(addr: impl ToSocketAddrs, path: &str) -> std::io::Result<HttpReply> {
    exchange(addr, path, "Connection: close\r\n", false)
}

/// GET `path` as a keep-alive client sends it, plus `extra_headers`
/// (each ending in CRLF), then end of input so the server closes after
/// answering.
pub fn http_get_then_eof(
    addr: impl ToSocketAddrs,
    path: &str,
    extra_headers: &str,
) -> std::io::Result<HttpReply> {
    exchange(addr, path, extra_headers, true)
}

fn exchange(
    addr: impl ToSocketAddrs,
    path: &str,
    extra_headers: &str,
    half_close: bool,
) -> std::io::Result<HttpReply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(HTTP_READ_TIMEOUT))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n{extra_headers}\r\n")?;
    if half_close {
        s.shutdown(std::net::Shutdown::Write)?;
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok(HttpReply {
        status,
        head,
        body: out[split + 4..].to_vec(),
    })
}
