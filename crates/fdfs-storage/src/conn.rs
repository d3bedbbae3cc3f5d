//! One client connection: read a header, hand the request to
//! [`ops::dispatch`], answer; one request at a time, as the protocol
//! requires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fdfs_proto::{Header, Status, StorageCmd, HEADER_LEN};
use fdfs_util::serve::{ConnSlot, WarnLimiter, BAD_REQUEST_WARN_INTERVAL_SECS};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::error::OpResult;
use crate::ops;
use crate::session::{Reply, Session};
use crate::state::Storage;

/// Rate limit of the warnings a peer can trigger with a bad request,
/// shared by all connections.
pub(crate) static BAD_REQUEST_WARNINGS: WarnLimiter =
    WarnLimiter::new(BAD_REQUEST_WARN_INTERVAL_SECS);

pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    storage: Arc<Storage>,
    slot: ConnSlot,
) {
    let _ = stream.set_nodelay(true);
    let mut s = Session::new(stream, peer, storage);
    let network_timeout = s.network_timeout;
    loop {
        let mut raw = [0u8; HEADER_LEN];
        // Between requests we wait for the next header; shutdown (or the
        // accept loop reclaiming this idle slot) stops the wait, but a
        // request that has started is always finished.
        let read = tokio::select! {
            _ = slot.stopped().cancelled() => return,
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
        slot.request_started();
        let header = Header::from_bytes(&raw);
        let Some(body_len) = header.body_len() else {
            if let Some(held_back) = BAD_REQUEST_WARNINGS.allow_now() {
                tracing::warn!(%peer, pkg_len = header.pkg_len, held_back, "negative pkg_len, closing");
            }
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
        let result = ops::dispatch(&mut s, header).await;
        s.storage
            .counters
            .commands
            .observe(cmd, result.is_ok(), t0.elapsed());
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
                    if let Some(held_back) = BAD_REQUEST_WARNINGS.allow_now() {
                        tracing::warn!(%peer, cmd, reason = ?e.reason, held_back, "rejected request");
                    }
                } else {
                    tracing::debug!(%peer, cmd, status = e.status.0, reason = ?e.reason, "request failed");
                }
                if e.status == Status::ENOSPC {
                    s.storage.forget_spaces();
                    s.storage.disk_reports.request();
                }
                if s.body_left > 0 && s.body_left <= LINGER_THRESHOLD_BYTES {
                    // A little body is cheaper to read than the connection
                    // is to lose.
                    if s.drain_body().await.is_err() {
                        return;
                    }
                }
                let sent = s.respond(e.status.0, &[]).await.is_ok();
                if sent && s.body_left > 0 {
                    linger_close(&mut s).await;
                    return;
                }
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
            if let Some(held_back) = BAD_REQUEST_WARNINGS.allow_now() {
                tracing::warn!(%peer, cmd, held_back, "request body not consumed, closing");
            }
            return;
        }
        if s.sync_source.is_some() {
            slot.keep();
        }
        slot.request_finished();
    }
}

/// Unread body above which a refused request is answered at once and the
/// connection closed instead of read to its end.
const LINGER_THRESHOLD_BYTES: u64 = 256 * 1024;
/// How much of a refused body a lingering close still reads, at most.
const LINGER_DRAIN_BYTES: u64 = 8 * 1024 * 1024;
/// How long a lingering close reads, at most.
const LINGER_DRAIN_TIME: Duration = Duration::from_secs(2);

/// Closes a connection whose request was answered before its body was
/// read (an upload refused up front or cut short): sends FIN after the
/// answer and reads what the client is still sending for a while. Closing
/// with unread bytes would send a reset, and a reset can destroy the answer
/// before the client reads it; the client would see a broken pipe instead
/// of the status.
async fn linger_close(s: &mut Session) {
    use tokio::io::AsyncWriteExt;
    let _ = s.writer.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER_DRAIN_TIME;
    let mut left = s.body_left.min(LINGER_DRAIN_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match tokio::time::timeout_at(deadline, s.reader.read(&mut buf[..want])).await {
            Ok(Ok(n)) if n > 0 => left -= n as u64,
            _ => return,
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
