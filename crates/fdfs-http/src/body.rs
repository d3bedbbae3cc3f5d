//! Response bodies: empty, in-memory, a byte window of a local file read
//! chunk by chunk on the blocking pool (never the whole file at once), or
//! chunks relayed from another storage through a bounded channel.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest piece of a local file read and sent at once.
pub const FILE_CHUNK_BYTES: usize = 128 * 1024;

/// The gateway's response body.
pub enum GatewayBody {
    Empty,
    Full(Option<Bytes>),
    File(FileBody),
    Relay(RelayBody),
}

impl GatewayBody {
    pub fn empty() -> Self {
        GatewayBody::Empty
    }

    pub fn full(b: impl Into<Bytes>) -> Self {
        GatewayBody::Full(Some(b.into()))
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            GatewayBody::Empty => Poll::Ready(None),
            GatewayBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            GatewayBody::File(f) => f.poll_chunk(cx),
            GatewayBody::Relay(r) => r.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Empty => true,
            GatewayBody::Full(b) => b.is_none(),
            GatewayBody::File(f) => f.first.is_none() && f.remaining == 0,
            GatewayBody::Relay(r) => r.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Empty => SizeHint::with_exact(0),
            GatewayBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            GatewayBody::File(f) => {
                SizeHint::with_exact(f.remaining + f.first.as_ref().map_or(0, |b| b.len() as u64))
            }
            GatewayBody::Relay(r) => SizeHint::with_exact(r.remaining),
        }
    }
}

/// Reads `len` bytes at `offset` (fewer only at end of file) with pread:
/// the handle may be shared by several responses (kept open files), so
/// its file position is never used.
pub fn read_window(file: &std::fs::File, offset: u64, len: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(Bytes::from(buf))
}

/// A window of a local file. The first chunk may be read ahead (with the
/// open, in one trip to the blocking pool); the rest is read on demand, one
/// chunk in flight at a time, so memory per response is one chunk. Reads
/// are positional (pread), so responses may share one handle.
pub struct FileBody {
    file: Arc<std::fs::File>,
    offset: u64,
    remaining: u64,
    first: Option<Bytes>,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileBody {
    /// `first` holds the bytes at `offset` already read; `remaining`
    /// counts the bytes after them.
    pub fn new(
        file: Arc<std::fs::File>,
        offset: u64,
        remaining: u64,
        first: Option<Bytes>,
    ) -> Self {
        FileBody {
            file,
            offset,
            remaining,
            first,
            pending: None,
        }
    }

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let pending = self.pending.get_or_insert_with(|| {
            let file = self.file.clone();
            let offset = self.offset;
            let want = self.remaining.min(FILE_CHUNK_BYTES as u64) as usize;
            tokio::task::spawn_blocking(move || read_window(&file, offset, want))
        });
        let res = match Pin::new(pending).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        self.pending = None;
        let chunk = match res {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
            Err(e) => return Poll::Ready(Some(Err(io::Error::other(e)))),
        };
        if chunk.is_empty() {
            // The file shrank under us: the promised length cannot be met.
            self.remaining = 0;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ))));
        }
        let n = chunk.len() as u64;
        self.offset += n;
        self.remaining = self.remaining.saturating_sub(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

/// Chunks relayed from another storage by a background task.
pub struct RelayBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl RelayBody {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>, len: u64) -> Self {
        RelayBody { rx, remaining: len }
    }

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "source storage stopped sending",
            )))),
        }
    }
}
