//! What a request handler works with: the connection's [`Session`] (its
//! socket halves, the body bytes still unread, what the access log needs)
//! and the [`Reply`] it hands back. Handlers depend on this module, the
//! connection loop on the handlers, never the other way round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fdfs_proto::{Header, Status, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::error::{OpError, OpResult};
use crate::state::Storage;

/// Socket read buffer; small requests arrive in one read.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What a handler did with the connection.
pub enum Reply {
    /// Send this body with status 0.
    Body(Vec<u8>),
    /// The handler already wrote the whole response (downloads).
    Sent,
    /// The response was cut short; the connection must close.
    Abort,
}

/// A connection's two halves plus what handlers need.
pub struct Session {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
    pub storage: Arc<Storage>,
    pub peer: SocketAddr,
    pub network_timeout: Duration,
    /// Body bytes of the current request not read yet.
    pub body_left: u64,
    /// The peer stopped sending mid-request (EOF, reset or timeout): there
    /// is nobody to answer, so the connection just closes.
    pub peer_gone: bool,
    /// Filename for the access log, set by handlers once they know it.
    pub log_name: String,
    /// Bytes a handler wrote itself (header included), for the access log.
    pub sent_len: u64,
    /// The peer storage that announced itself with REPORT_SERVER_ID.
    pub sync_source: Option<String>,
    /// The cluster-secret exchange of this connection.
    pub cluster: fdfs_util::cluster_secret::Challenge,
}

impl Session {
    pub fn new(stream: TcpStream, peer: SocketAddr, storage: Arc<Storage>) -> Self {
        let (r, w) = stream.into_split();
        let network_timeout = Duration::from_secs(storage.conf.network_timeout_secs.max(1));
        Session {
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, r),
            writer: w,
            storage,
            peer,
            network_timeout,
            body_left: 0,
            peer_gone: false,
            log_name: String::new(),
            sent_len: 0,
            sync_source: None,
            cluster: Default::default(),
        }
    }

    /// Marks the peer gone when a body read failed or timed out: there is
    /// nobody left to answer.
    fn body_read<T>(
        &mut self,
        r: Result<std::io::Result<T>, tokio::time::error::Elapsed>,
    ) -> OpResult<T> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.peer_gone = true;
                Err(e.into())
            }
            Err(_) => {
                self.peer_gone = true;
                Err(OpError::new(Status::ETIMEDOUT, "timed out reading request"))
            }
        }
    }

    /// Reads exactly `n` bytes of the current request body.
    pub async fn read_exact_body(&mut self, n: usize) -> OpResult<Vec<u8>> {
        if n as u64 > self.body_left {
            return Err(OpError::invalid("request body shorter than its fields"));
        }
        let mut buf = Vec::with_capacity(n);
        let reader = &mut self.reader;
        let fill = async {
            while buf.len() < n {
                // Into the spare capacity only: zeroing a buffer that the
                // socket overwrites at once was 4% of the upload CPU.
                let missing = n - buf.len();
                let mut rest = bytes::BufMut::limit(&mut buf, missing);
                if reader.read_buf(&mut rest).await? == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
            }
            Ok(())
        };
        let r = tokio::time::timeout(self.network_timeout, fill).await;
        self.body_read(r)?;
        self.body_left -= n as u64;
        Ok(buf)
    }

    /// Reads up to `buf.len()` body bytes; 0 means the body is complete.
    pub async fn read_body_chunk(&mut self, buf: &mut [u8]) -> OpResult<usize> {
        let want = (buf.len() as u64).min(self.body_left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let r =
            tokio::time::timeout(self.network_timeout, self.reader.read(&mut buf[..want])).await;
        let n = self.body_read(r)?;
        if n == 0 {
            self.peer_gone = true;
            return Err(OpError::new(Status::EIO, "peer closed mid-request"));
        }
        self.body_left -= n as u64;
        Ok(n)
    }

    /// Discards the rest of the body, so an error answer can follow on a
    /// connection that stays in sync.
    pub async fn drain_body(&mut self) -> OpResult<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.read_body_chunk(&mut buf).await? > 0 {}
        Ok(())
    }

    pub async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        tokio::time::timeout(self.network_timeout, self.writer.write_all(data))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
    }

    pub async fn respond(&mut self, status: u8, body: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&Header::response(status, body.len()).to_bytes());
        out.extend_from_slice(body);
        self.write_all(&out).await
    }
}
