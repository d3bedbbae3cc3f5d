//! A client connection: one request, one response, strictly in turn, over
//! fdfs-util's framing (shared with the daemons so they cannot drift apart).

use std::time::Duration;

use bytes::BytesMut;
use fdfs_proto::{Header, HEADER_LEN};
use fdfs_util::framing::{read_header, write_packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ClientError;

/// A client connection to a tracker or storage, with the configured network
/// timeout applied to every exchange.
pub struct Conn {
    pub stream: TcpStream,
    pub addr: String,
    pub network_timeout: Duration,
    /// False once the byte stream may be out of step with the protocol (a
    /// response body left unread, a request sent only in part): such a
    /// connection must be dropped, never pooled.
    in_step: bool,
}

/// Largest response body a client accepts for non-download commands: guards
/// against a confused peer making us allocate without bound.
pub const MAX_SMALL_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes the first read of a response asks for: a header and a small
/// answer (a file id, a store target, a file's info) whole.
const FIRST_READ_BYTES: usize = 512;

/// How long a client whose request failed to send waits for an answer
/// the server sent before closing.
const EARLY_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Chunk size for streaming file content to and from a socket: large files
/// go through one buffer of this size, never into memory whole.
pub const STREAM_CHUNK_BYTES: usize = 256 * 1024;

impl Conn {
    pub async fn connect(
        addr: &str,
        connect_timeout: Duration,
        network_timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let connecting = TcpStream::connect(addr);
        Self::established(connecting, addr, connect_timeout, network_timeout).await
    }

    /// Like `connect`, but the socket is bound to `local_ip` first, so the
    /// peer sees that source address. Storages do this (`client_bind`):
    /// trackers and peers identify a storage by the address it connects from.
    pub async fn connect_from(
        addr: &str,
        local_ip: Option<std::net::IpAddr>,
        connect_timeout: Duration,
        network_timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let Some(local_ip) = local_ip else {
            return Self::connect(addr, connect_timeout, network_timeout).await;
        };
        let target = tokio::net::lookup_host(addr)
            .await?
            .find(|a| a.is_ipv4() == local_ip.is_ipv4())
            .ok_or_else(|| ClientError::Invalid(format!("cannot resolve {addr}")))?;
        let socket = if local_ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local_ip, 0))?;
        let connecting = socket.connect(target);
        Self::established(connecting, addr, connect_timeout, network_timeout).await
    }

    /// Waits up to `connect_timeout` for `connecting` to `addr` to finish.
    async fn established(
        connecting: impl std::future::Future<Output = std::io::Result<TcpStream>>,
        addr: &str,
        connect_timeout: Duration,
        network_timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let stream = tokio::time::timeout(connect_timeout, connecting)
            .await
            .map_err(|_| ClientError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            addr: addr.to_string(),
            network_timeout,
            in_step: true,
        })
    }

    /// True while request/response framing is intact, so the connection can
    /// be reused for another exchange.
    pub fn is_in_step(&self) -> bool {
        self.in_step
    }

    /// Marks the connection as unusable for further exchanges.
    pub fn mark_broken(&mut self) {
        self.in_step = false;
    }

    /// Cheap liveness probe for an idle pooled connection: an idle peer must
    /// have sent nothing, so readable data or EOF both mean "do not reuse".
    pub fn idle_looks_healthy(&self) -> bool {
        if !self.in_step {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(
            self.stream.try_read(&mut probe),
            Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    /// Runs one socket operation under the network timeout; any failure
    /// leaves the stream in an unknown state, so the connection is marked
    /// broken.
    async fn io<T>(
        in_step: &mut bool,
        timeout: Duration,
        fut: impl std::future::Future<Output = std::io::Result<T>>,
    ) -> Result<T, ClientError> {
        let res = match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(r) => r.map_err(ClientError::Io),
        };
        if res.is_err() {
            *in_step = false;
        }
        res
    }

    pub async fn send(&mut self, cmd: u8, status: u8, body: &[u8]) -> Result<(), ClientError> {
        let fut = write_packet(&mut self.stream, cmd, status, body);
        Self::io(&mut self.in_step, self.network_timeout, fut).await
    }

    /// Sends raw bytes (content following a request head).
    pub async fn send_raw(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let fut = self.stream.write_all(data);
        Self::io(&mut self.in_step, self.network_timeout, fut).await
    }

    /// Reads a response header; a non-zero status becomes
    /// `ClientError::Status` and its body (if any) is left unread.
    pub async fn recv_header(&mut self) -> Result<Header, ClientError> {
        let fut = read_header(&mut self.stream);
        let h = Self::io(&mut self.in_step, self.network_timeout, fut).await?;
        self.check_header(h)
    }

    /// A response header as `recv_header` accepts it.
    fn check_header(&mut self, h: Header) -> Result<Header, ClientError> {
        if h.cmd != fdfs_proto::CMD_RESP {
            self.in_step = false;
            return Err(ClientError::Invalid(format!(
                "unexpected response cmd {}",
                h.cmd
            )));
        }
        let Some(len) = h.body_len() else {
            self.in_step = false;
            return Err(ClientError::Invalid("negative pkg_len".into()));
        };
        if h.status != 0 {
            // Clients never read the body of an error answer (PROTOCOL §1.1):
            // a C storage may announce bytes it never sends (§3.6), so the
            // stream position is unknown afterwards. A storage also closes
            // after an empty EINVAL answer.
            if len > 0 || h.status == fdfs_proto::Status::EINVAL.0 {
                self.in_step = false;
            }
            return Err(ClientError::Status(fdfs_proto::Status(h.status)));
        }
        Ok(h)
    }

    /// After a request failed to send: the error status the server may
    /// have answered with before it stopped reading (a storage refusing an
    /// upload up front), if one is waiting in the socket.
    pub async fn early_answer(&mut self) -> Option<ClientError> {
        let read = tokio::time::timeout(EARLY_ANSWER_WAIT, read_header(&mut self.stream));
        let header = read.await.ok()?.ok()?;
        self.in_step = false;
        (header.cmd == fdfs_proto::CMD_RESP && header.status != 0)
            .then_some(ClientError::Status(fdfs_proto::Status(header.status)))
    }

    /// One request/response exchange with a small body.
    pub async fn call(&mut self, cmd: u8, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.call_with_status(cmd, 0, body).await
    }

    /// Proves the cluster secret to the server at the other end (a
    /// fastdfs-rs extension): CLUSTER_CHALLENGE, then CLUSTER_PROVE with
    /// the HMAC of its nonce. A server without a secret answers the
    /// challenge EOPNOTSUPP: nothing to prove there.
    pub async fn prove_cluster_secret(
        &mut self,
        secret: &fdfs_util::cluster_secret::ClusterSecret,
        purpose: fdfs_util::cluster_secret::Purpose,
    ) -> Result<(), ClientError> {
        let nonce = match self.call(fdfs_proto::CMD_CLUSTER_CHALLENGE, &[]).await {
            Ok(n) => n,
            Err(ClientError::Status(s)) if s == fdfs_proto::Status::EOPNOTSUPP => return Ok(()),
            Err(e) => return Err(e),
        };
        if nonce.len() != fdfs_util::cluster_secret::NONCE_BYTES {
            return Err(ClientError::Invalid(format!(
                "cluster challenge of {} bytes",
                nonce.len()
            )));
        }
        let proof = secret.prove(purpose, &nonce);
        self.call(fdfs_proto::CMD_CLUSTER_PROVE, &proof).await?;
        Ok(())
    }

    /// Like `call` but with a status byte in the request header.
    pub async fn call_with_status(
        &mut self,
        cmd: u8,
        status: u8,
        body: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.send(cmd, status, body).await?;
        self.recv_response().await
    }

    /// Reads a whole (small) response: its header and the first bytes of
    /// its body come in one read, so an answer of up to
    /// [`FIRST_READ_BYTES`] costs one system call, not two. The peer
    /// sends nothing it has not announced (one answer per request), so
    /// bytes past the announced body mean the stream is out of step.
    pub async fn recv_response(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut first = [0u8; FIRST_READ_BYTES];
        let mut got = 0;
        while got < HEADER_LEN {
            let fut = self.stream.read(&mut first[got..]);
            let n = Self::io(&mut self.in_step, self.network_timeout, fut).await?;
            if n == 0 {
                self.in_step = false;
                return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            got += n;
        }
        let raw: &[u8; HEADER_LEN] = first[..HEADER_LEN].try_into().expect("header length");
        let h = match self.check_header(Header::from_bytes(raw)) {
            Ok(h) => h,
            Err(e) => {
                // An error answer's body is never read; any of it that
                // came with the header is gone from the stream too.
                if got > HEADER_LEN {
                    self.in_step = false;
                }
                return Err(e);
            }
        };
        let len = h.body_len().unwrap_or(0);
        if len > MAX_SMALL_RESPONSE_BYTES {
            self.in_step = false;
            return Err(ClientError::Invalid(format!("response too large: {len}")));
        }
        let early = &first[HEADER_LEN..got];
        if early.len() as u64 > len {
            self.in_step = false;
            return Err(ClientError::Invalid(format!(
                "response of {} bytes announced {len}",
                early.len()
            )));
        }
        let mut body = vec![0u8; len as usize];
        body[..early.len()].copy_from_slice(early);
        if early.len() < body.len() {
            let fut = self.stream.read_exact(&mut body[early.len()..]);
            Self::io(&mut self.in_step, self.network_timeout, fut).await?;
        }
        Ok(body)
    }

    /// Sends a request header announcing `head.len() + content_len` body
    /// bytes followed by `head`; the caller then streams `content_len` bytes.
    pub async fn send_head(
        &mut self,
        cmd: u8,
        status: u8,
        head: &[u8],
        content_len: u64,
    ) -> Result<(), ClientError> {
        let total = (head.len() as u64)
            .checked_add(content_len)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| ClientError::Invalid(format!("body too large: {content_len}")))?;
        let h = Header {
            pkg_len: total,
            cmd,
            status,
        };
        let mut buf = BytesMut::with_capacity(HEADER_LEN + head.len());
        h.encode(&mut buf);
        buf.extend_from_slice(head);
        self.send_raw(&buf).await
    }

    /// Copies exactly `len` bytes from `src` to the peer through one
    /// fixed-size buffer. A short source is an error (the header already
    /// promised `len` bytes), and leaves the connection out of step.
    pub async fn send_from<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
    ) -> Result<(), ClientError> {
        let mut copy = CopyBuffer::new(len);
        while let Some(chunk) = copy.next_chunk() {
            let n = match src.read(chunk).await {
                Ok(0) => {
                    self.in_step = false;
                    return Err(ClientError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("source ended with {} of {len} bytes unsent", copy.left),
                    )));
                }
                Ok(n) => n,
                Err(e) => {
                    self.in_step = false;
                    return Err(ClientError::Io(e));
                }
            };
            if let Err(e) = self.send_raw(&chunk[..n]).await {
                self.in_step = false;
                return Err(e);
            }
            copy.consumed(n);
        }
        Ok(())
    }

    /// Sends a request header announcing `head.len() + len` body bytes and
    /// `head` (with MSG_MORE, so they leave with the start of the content),
    /// then `len` bytes of `file` from its start with sendfile(2): no
    /// user-space buffer, no read, no copy, as the C client sends a file.
    pub async fn send_head_and_file(
        &mut self,
        cmd: u8,
        head: &[u8],
        file: &std::fs::File,
        len: u64,
    ) -> Result<(), ClientError> {
        let total = (head.len() as u64)
            .checked_add(len)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| ClientError::Invalid(format!("body too large: {len}")))?;
        let h = Header {
            pkg_len: total,
            cmd,
            status: 0,
        };
        let mut buf = BytesMut::with_capacity(HEADER_LEN + head.len());
        h.encode(&mut buf);
        buf.extend_from_slice(head);
        let stall = self.network_timeout;
        let fut = fdfs_util::zerocopy::write_all(&self.stream, &buf, len > 0, stall);
        Self::io(&mut self.in_step, stall, fut).await?;
        let fut = fdfs_util::zerocopy::sendfile_all(&self.stream, file, 0, len, stall);
        Self::io(&mut self.in_step, stall, fut).await
    }

    /// Copies exactly `len` response body bytes from the peer into `dst`
    /// through one fixed-size buffer.
    pub async fn recv_into<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        dst: &mut W,
        len: u64,
    ) -> Result<(), ClientError> {
        let mut copy = CopyBuffer::new(len);
        while let Some(chunk) = copy.next_chunk() {
            let t = self.network_timeout;
            let n = match tokio::time::timeout(t, self.stream.read(chunk)).await {
                Err(_) => {
                    self.in_step = false;
                    return Err(ClientError::Timeout);
                }
                Ok(Err(e)) => {
                    self.in_step = false;
                    return Err(ClientError::Io(e));
                }
                Ok(Ok(0)) => {
                    self.in_step = false;
                    return Err(ClientError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("peer closed with {} of {len} bytes unreceived", copy.left),
                    )));
                }
                Ok(Ok(n)) => n,
            };
            if let Err(e) = dst.write_all(&chunk[..n]).await {
                self.in_step = false;
                return Err(ClientError::Io(e));
            }
            copy.consumed(n);
        }
        Ok(())
    }

    /// Reads a status-0 response and throws its body away. Used where the
    /// answer should be empty but a C storage echoes the request (PROTOCOL
    /// §1.1, quirk 25): reading it keeps the connection in step.
    pub async fn recv_ok_discarding_body(&mut self) -> Result<(), ClientError> {
        let h = self.recv_header().await?;
        let len = h.body_len().unwrap_or(0);
        if len > 0 {
            self.recv_into(&mut tokio::io::sink(), len).await?;
        }
        Ok(())
    }

    /// Tells the server we are done (no response is sent).
    pub async fn quit(mut self) {
        let _ = self.send(fdfs_proto::CMD_QUIT, 0, &[]).await;
    }
}

/// One buffer of at most [`STREAM_CHUNK_BYTES`] through which a `len`-byte
/// stream is copied piece by piece.
struct CopyBuffer {
    buf: Vec<u8>,
    /// Bytes still to copy.
    left: u64,
}

impl CopyBuffer {
    fn new(len: u64) -> Self {
        CopyBuffer {
            buf: vec![0u8; STREAM_CHUNK_BYTES.min(usize::try_from(len).unwrap_or(usize::MAX))],
            left: len,
        }
    }

    /// Room for the next piece; None once all `len` bytes are copied.
    fn next_chunk(&mut self) -> Option<&mut [u8]> {
        if self.left == 0 {
            return None;
        }
        let want = self
            .buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        Some(&mut self.buf[..want])
    }

    /// Records that `n` bytes of the last piece were copied.
    fn consumed(&mut self, n: usize) {
        self.left -= n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A client connection to a one-shot peer that reads one request and
    /// then sends `answer` in pieces split at `splits`.
    async fn exchange(answer: Vec<u8>, splits: Vec<usize>) -> (Conn, Result<Vec<u8>, ClientError>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; HEADER_LEN];
            s.read_exact(&mut req).await.unwrap();
            let mut from = 0;
            for at in splits.into_iter().chain([answer.len()]) {
                s.write_all(&answer[from..at]).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                from = at;
            }
            s
        });
        let t = Duration::from_secs(5);
        let mut conn = Conn::connect(&addr, t, t).await.unwrap();
        let got = conn.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await;
        let _peer = peer.await.unwrap();
        (conn, got)
    }

    fn packet(status: u8, announced: i64, body: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        Header {
            pkg_len: announced,
            cmd: fdfs_proto::CMD_RESP,
            status,
        }
        .encode(&mut b);
        b.extend_from_slice(body);
        b.to_vec()
    }

    #[tokio::test]
    async fn an_answer_reads_whole_however_it_arrives() {
        let body: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        let answer = packet(0, body.len() as i64, &body);
        for splits in [vec![], vec![3], vec![HEADER_LEN], vec![HEADER_LEN + 5, 700]] {
            let (conn, got) = exchange(answer.clone(), splits.clone()).await;
            assert_eq!(got.unwrap(), body, "split at {splits:?}");
            assert!(conn.is_in_step());
        }
        let (conn, got) = exchange(packet(0, 0, &[]), vec![]).await;
        assert!(got.unwrap().is_empty());
        assert!(conn.is_in_step());
    }

    #[tokio::test]
    async fn bytes_past_the_announced_answer_leave_the_connection_out_of_step() {
        let (conn, got) = exchange(packet(0, 2, b"abcd"), vec![]).await;
        assert!(matches!(got, Err(ClientError::Invalid(_))), "{got:?}");
        assert!(!conn.is_in_step());
        // An error status followed by bytes it did not announce.
        let (conn, got) = exchange(packet(2, 0, b"xy"), vec![]).await;
        assert!(
            matches!(got, Err(ClientError::Status(s)) if s.0 == 2),
            "{got:?}"
        );
        assert!(!conn.is_in_step());
        // An error status alone keeps the connection.
        let (conn, got) = exchange(packet(2, 0, &[]), vec![]).await;
        assert!(
            matches!(got, Err(ClientError::Status(s)) if s.0 == 2),
            "{got:?}"
        );
        assert!(conn.is_in_step());
    }
}
