//! One client connection: read a header, dispatch by command, answer; one
//! request at a time, as the protocol requires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fdfs_proto::{Header, Status, StorageCmd, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::error::{OpError, OpResult};
use crate::ops;
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
}

impl Session {
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
        let mut buf = vec![0u8; n];
        let r = tokio::time::timeout(self.network_timeout, self.reader.read_exact(&mut buf)).await;
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

pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    storage: Arc<Storage>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let network_timeout = Duration::from_secs(storage.conf.network_timeout_secs.max(1));
    let mut s = Session {
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
    };
    loop {
        let mut raw = [0u8; HEADER_LEN];
        // Between requests we wait for the next header; shutdown stops the
        // wait, but a request that has started is always finished.
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(idle_timeout(network_timeout), s.reader.read_exact(&mut raw)) => r,
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection closed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "idle connection timed out");
                return;
            }
        }
        let header = Header::from_bytes(&raw);
        let Some(body_len) = header.body_len() else {
            tracing::warn!(%peer, pkg_len = header.pkg_len, "negative pkg_len, closing");
            return;
        };
        s.body_left = body_len;
        let cmd = header.cmd;
        if cmd == fdfs_proto::CMD_QUIT {
            return;
        }
        let started = std::time::SystemTime::now();
        let t0 = std::time::Instant::now();
        s.log_name.clear();
        s.sent_len = 0;
        let result = dispatch(&mut s, header).await;
        if let (Some(log), Ok(command)) = (&s.storage.access_log, StorageCmd::try_from(cmd)) {
            log_access(log, &s, command, &result, started, t0.elapsed(), body_len);
        }
        let keep = match result {
            Ok(Reply::Body(body)) => s.respond(0, &body).await.is_ok(),
            Ok(Reply::Sent) => true,
            Ok(Reply::Abort) => false,
            Err(e) if s.peer_gone => {
                tracing::debug!(%peer, cmd, reason = ?e.reason, "peer left mid-request");
                return;
            }
            Err(e) => {
                if e.status == Status::EINVAL {
                    tracing::warn!(%peer, cmd, reason = ?e.reason, "rejected request");
                } else {
                    tracing::debug!(%peer, cmd, status = e.status.0, reason = ?e.reason, "request failed");
                }
                let sent = s.respond(e.status.0, &[]).await.is_ok();
                // Like the original, an EINVAL answer ends the connection:
                // after a malformed request the framing cannot be trusted.
                sent && e.status != Status::EINVAL && s.body_left == 0
            }
        };
        if !keep {
            return;
        }
        if s.body_left != 0 {
            // A handler that returned without consuming its body leaves the
            // stream out of sync; never read the rest as a header.
            tracing::warn!(%peer, cmd, "request body not consumed, closing");
            return;
        }
    }
}

/// Writes the access-log line of a finished request. Requests the peer
/// abandoned are not logged, as in the original.
fn log_access(
    log: &crate::access_log::AccessLog,
    s: &Session,
    cmd: StorageCmd,
    result: &OpResult<Reply>,
    started: std::time::SystemTime,
    elapsed: Duration,
    body_len: u64,
) {
    let Some(action) = crate::access_log::action(cmd) else {
        return;
    };
    let req_len = HEADER_LEN as u64 + body_len;
    let (status, resp_len) = match result {
        Ok(Reply::Body(b)) => (0, (HEADER_LEN + b.len()) as u64),
        Ok(Reply::Sent) => (0, s.sent_len),
        Ok(Reply::Abort) => return,
        Err(_) if s.peer_gone => return,
        // The original reports the request length as the response length
        // of a failed request, except for deletes.
        Err(e) if cmd == StorageCmd::DeleteFile => (e.status.0, HEADER_LEN as u64),
        Err(e) => (e.status.0, req_len),
    };
    log.record(&crate::access_log::Entry {
        started,
        elapsed,
        client_ip: &s.peer.ip().to_string(),
        action,
        filename: &s.log_name,
        status,
        req_len,
        resp_len,
    });
}

/// How long an idle connection is kept between requests.
fn idle_timeout(network_timeout: Duration) -> Duration {
    network_timeout.max(Duration::from_secs(60))
}

async fn dispatch(s: &mut Session, header: Header) -> OpResult<Reply> {
    let Ok(cmd) = StorageCmd::try_from(header.cmd) else {
        return Err(OpError::invalid(format!("unknown command {}", header.cmd)));
    };
    match cmd {
        StorageCmd::ActiveTest => {
            if s.body_left != 0 {
                return Err(OpError::invalid("ACTIVE_TEST with a body"));
            }
            Ok(Reply::Body(Vec::new()))
        }
        StorageCmd::UploadFile => ops::upload::upload(s, false).await,
        StorageCmd::UploadAppenderFile => ops::upload::upload(s, true).await,
        StorageCmd::UploadSlaveFile => ops::upload::upload_slave(s).await,
        StorageCmd::DownloadFile => ops::download::download(s).await,
        StorageCmd::DeleteFile => ops::file::delete(s).await,
        StorageCmd::QueryFileInfo => ops::file::query_info(s, header.status).await,
        StorageCmd::RegenerateAppenderFilename => ops::file::regenerate(s).await,
        StorageCmd::SetMetadata => ops::meta::set(s).await,
        StorageCmd::GetMetadata => ops::meta::get(s).await,
        StorageCmd::AppendFile => ops::appender::append(s).await,
        StorageCmd::ModifyFile => ops::appender::modify(s).await,
        StorageCmd::TruncateFile => ops::appender::truncate(s).await,
        StorageCmd::ReportServerId => ops::sync_recv::report_server_id(s).await,
        StorageCmd::SyncCreateFile => {
            ops::sync_recv::create_or_update(s, false, header.status).await
        }
        StorageCmd::SyncUpdateFile => {
            ops::sync_recv::create_or_update(s, true, header.status).await
        }
        StorageCmd::SyncDeleteFile => ops::sync_recv::delete(s).await,
        StorageCmd::SyncAppendFile => ops::sync_recv::append_or_modify(s, false).await,
        StorageCmd::SyncModifyFile => ops::sync_recv::append_or_modify(s, true).await,
        StorageCmd::SyncTruncateFile => ops::sync_recv::truncate(s).await,
        StorageCmd::SyncRenameFile => ops::sync_recv::rename(s).await,
        other => Err(OpError::invalid(format!("unsupported command {other:?}"))),
    }
}
