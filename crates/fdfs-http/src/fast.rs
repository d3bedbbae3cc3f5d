//! The fast path: plain GET/HEAD of a local file on an HTTP/1.1 keep-alive
//! connection, served without hyper. The request head is parsed with
//! httparse, the file is resolved by the same code as hyper's service
//! ([`Gateway::front`], [`Gateway::open_local`], [`crate::response::file_headers`]),
//! the status line and headers go out in one write and the body follows
//! with sendfile(2) straight from the page cache (no copy through user
//! space, no per-request body machinery).
//!
//! A file whose path walk would read the disk (out of the dentry cache) is
//! opened on the blocking pool and then answered here the same way.
//!
//! Everything else (other methods and versions, request bodies, upgrades,
//! `Connection: close`, /healthz, files that are not here, errors,
//! malformed or oversized heads) hands the connection, with the bytes read
//! so far, to hyper's service ([`crate::serve_hyper`]), which answers
//! exactly as it always has; the connection stays with hyper from then on.
//!
//! Timeouts match hyper's: a request head must be complete within
//! `header_read_timeout` from the moment we wait for it (which also closes
//! idle keep-alive connections), no read or write may stall longer than
//! `idle_timeout`. On shutdown an idle connection closes at once; a
//! response in flight gets [`crate::SHUTDOWN_GRACE`].

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use fdfs_util::zerocopy;
use hyper::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conf::GatewayConf;
use crate::{local, ConfView, FileTarget, Front, Gateway, Headers};

/// Most header lines a fast request may have (more: hyper decides).
const MAX_HEADERS: usize = 64;
/// Read buffer growth step.
const READ_BUF_BYTES: usize = 4096;
impl Headers for [httparse::Header<'_>] {
    fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// The part of a file sent with sendfile after the head.
struct FileWindow {
    file: Arc<std::fs::File>,
    offset: u64,
    len: u64,
}

enum Step {
    /// The head is incomplete.
    NeedMore,
    /// Not for the fast path: hyper takes the connection.
    Fallback,
    /// `out` holds the head; the request took
    /// `consumed` bytes.
    Send {
        consumed: usize,
        rest: Option<FileWindow>,
    },
    /// A local file whose path walk needs the disk: opened on the
    /// blocking pool, then answered here like any other.
    OpenOnDisk {
        consumed: usize,
        target: Box<FileTarget>,
        head: bool,
    },
}

/// Headers that make a request one for hyper.
fn needs_hyper(h: &httparse::Header<'_>) -> bool {
    let n = h.name;
    ["content-length", "transfer-encoding", "upgrade", "expect"]
        .iter()
        .any(|x| n.eq_ignore_ascii_case(x))
        || (n.eq_ignore_ascii_case("connection") && !h.value.eq_ignore_ascii_case(b"keep-alive"))
}

/// Parses the request at the start of `buf` and, when it is a fast one,
/// writes its answer's head to `out`.
fn try_fast(gw: &Gateway, conf: &GatewayConf, buf: &[u8], out: &mut Vec<u8>) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < crate::MAX_REQUEST_HEAD_BYTES => {
            return Step::NeedMore
        }
        _ => return Step::Fallback,
    };
    let head = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Step::Fallback,
    };
    if req.version != Some(1) || req.headers.iter().any(needs_hyper) {
        return Step::Fallback;
    }
    let Some(uri) = req.path.and_then(|p| p.parse::<hyper::Uri>().ok()) else {
        return Step::Fallback;
    };
    let t = match gw.front(conf, uri.path(), uri.query(), &*req.headers, head) {
        Ok(Front::File(t)) if t.file.local_group => t,
        _ => return Step::Fallback,
    };
    let f = match gw.open_local(conf, &t, false) {
        Ok(Some(f)) => f,
        Err(e) if e.is_needs_disk() => {
            return Step::OpenOnDisk {
                consumed,
                target: Box::new(t),
                head,
            }
        }
        _ => return Step::Fallback,
    };
    Step::Send {
        consumed,
        rest: answer(gw, conf, &t, f, head, out),
    }
}

/// Writes the head of the answer for an opened local file to `out`; the
/// part of the file that follows it, if any.
fn answer(
    gw: &Gateway,
    conf: &GatewayConf,
    t: &FileTarget,
    f: local::Found,
    head: bool,
    out: &mut Vec<u8>,
) -> Option<FileWindow> {
    out.clear();
    let status = crate::response::file_status(f.plan);
    gw.counters.hit();
    gw.counters.statuses.count(status.as_u16());
    write_status_line(out, status);
    crate::response::file_headers(
        conf,
        &t.file.name.name,
        t.download_name(),
        &f.facts,
        f.plan,
        out,
    );
    out.extend_from_slice(b"date: ");
    date(out);
    out.extend_from_slice(b"\r\n\r\n");
    let (offset, len) = f.plan.window(f.facts.size);
    if head || len == 0 {
        return None;
    }
    Some(FileWindow {
        file: f.file,
        offset: f.base + offset,
        len,
    })
}

/// The status line as hyper writes it. Headers follow in hyper's form
/// (lower-case names), with a `date` header last.
fn write_status_line(out: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the current HTTP date, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = crate::now_secs();
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            *d = (now, crate::httpdate::format(now));
        }
        out.extend_from_slice(d.1.as_bytes());
    });
}

/// Serves one connection: fast requests here, the rest (and everything
/// after it) through hyper.
pub(crate) async fn serve(
    gw: Arc<Gateway>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let mut conf_view = ConfView::new(&gw.conf);
    let idle = conf_view.current(&gw.conf).idle_timeout;
    let mut buf = BytesMut::with_capacity(READ_BUF_BYTES);
    let mut out = Vec::with_capacity(512);
    // One wait for shutdown and one timer for the whole connection, not a
    // new one per request, each registered and removed again under a lock.
    // The timer is only moved when it fires before the deadline it stands
    // for.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let mut wait_until = Instant::now() + conf_view.current(&gw.conf).header_read_timeout.min(idle);
    let timer = tokio::time::sleep_until(wait_until);
    tokio::pin!(timer);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // Read per request: a reload applies to the next request of a
        // kept-alive connection.
        let head_deadline = Instant::now() + conf_view.current(&gw.conf).header_read_timeout;
        let (consumed, rest) = loop {
            if !buf.is_empty() {
                let conf = conf_view.current(&gw.conf);
                match try_fast(&gw, conf, &buf, &mut out) {
                    Step::Send { consumed, rest } => break (consumed, rest),
                    Step::OpenOnDisk {
                        consumed,
                        target,
                        head,
                    } => {
                        let (disk_gw, disk_conf) = (gw.clone(), conf.clone());
                        let opened = tokio::task::spawn_blocking(move || {
                            let f = disk_gw.open_request(
                                &disk_conf,
                                &target.file,
                                &target.cond,
                                false,
                                true,
                            );
                            (target, f)
                        })
                        .await;
                        let conf = conf_view.current(&gw.conf);
                        if let Ok((target, Ok(Some(f)))) = opened {
                            break (consumed, answer(&gw, conf, &target, f, head, &mut out));
                        }
                        // Gone meanwhile, or an error: hyper answers the
                        // request, still whole in `buf`, as always.
                        let io = crate::io::Rewind::new(stream, buf.freeze());
                        return crate::serve_hyper(gw, io, peer, shutdown.clone()).await;
                    }
                    Step::NeedMore => {}
                    Step::Fallback => {
                        let io = crate::io::Rewind::new(stream, buf.freeze());
                        return crate::serve_hyper(gw, io, peer, shutdown.clone()).await;
                    }
                }
            }
            if buf.capacity() - buf.len() < READ_BUF_BYTES / 4 {
                buf.reserve(READ_BUF_BYTES);
            }
            wait_until = head_deadline.min(Instant::now() + idle);
            if timer.deadline() > wait_until {
                timer.as_mut().reset(wait_until);
            }
            let read = tokio::select! {
                biased;
                _ = &mut cancelled => return,
                _ = &mut timer => {
                    if Instant::now() >= wait_until {
                        return;
                    }
                    timer.as_mut().reset(wait_until);
                    continue;
                }
                r = stream.read_buf(&mut buf) => r,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        buf.advance(consumed);
        let sent = tokio::select! {
            r = send_response(&stream, &out, rest, idle) => r,
            _ = async {
                (&mut cancelled).await;
                tokio::time::sleep(crate::SHUTDOWN_GRACE).await;
            } => Err(io::Error::new(io::ErrorKind::TimedOut, "shutting down")),
        };
        if let Err(e) = sent {
            tracing::debug!(peer = %peer, error = %e, "http connection ended with an error");
            return;
        }
    }
}

async fn send_response(
    stream: &TcpStream,
    head: &[u8],
    body: Option<FileWindow>,
    idle: Duration,
) -> io::Result<()> {
    match body {
        None => zerocopy::write_all(stream, head, false, idle).await,
        Some(w) => {
            zerocopy::write_all(stream, head, true, idle).await?;
            zerocopy::send_file_range(stream, &w.file, w.offset, w.len, idle).await
        }
    }
}
