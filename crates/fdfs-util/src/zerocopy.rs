//! Zero-copy sends shared by the storage (DOWNLOAD_FILE) and the HTTP
//! gateway: a response head written with MSG_MORE so it leaves in the same
//! segment as the start of the body, then the body with sendfile(2), each
//! wait for the peer bounded by a stall timeout. The two system calls go
//! through rustix. A body not all in the page cache is read on the
//! blocking pool instead (see [`send_file_range`]).

use std::io;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Largest piece handed to one sendfile call.
const SENDFILE_CHUNK_BYTES: usize = 1 << 20;
/// Bytes read per blocking task when a body is not in the page cache.
const COLD_READ_BYTES: u64 = 256 * 1024;

async fn wait_writable(stream: &TcpStream, stall: Duration) -> io::Result<()> {
    match tokio::time::timeout(stall, stream.writable()).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading",
        )),
    }
}

/// Writes all of `data`; `more`: a body follows (MSG_MORE, so head and
/// body leave in one segment when they fit). No wait for the socket to
/// become writable may last longer than `stall`.
pub async fn write_all(
    stream: &TcpStream,
    mut data: &[u8],
    more: bool,
    stall: Duration,
) -> io::Result<()> {
    while !data.is_empty() {
        let r = if more {
            stream.try_io(Interest::WRITABLE, || send_more(stream, data))
        } else {
            stream.try_write(data)
        };
        match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(stream, stall).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` from `offset` with sendfile(2): the pages go
/// from the page cache to the socket without a copy through user space.
/// No wait for the socket to become writable may last longer than `stall`.
pub async fn sendfile_all(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
    stall: Duration,
) -> io::Result<()> {
    // sendfile(2) takes a signed offset: larger ones are EINVAL here already.
    i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut off = offset;
    let mut left = len;
    while left > 0 {
        let want = left.min(SENDFILE_CHUNK_BYTES as u64) as usize;
        match stream.try_io(Interest::WRITABLE, || {
            sendfile(stream, file, &mut off, want)
        }) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => left = left.saturating_sub(n as u64),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(stream, stall).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send_more(stream: &TcpStream, data: &[u8]) -> io::Result<usize> {
    let flags = rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL;
    Ok(rustix::net::send(stream, data, flags)?)
}

fn sendfile(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    Ok(rustix::fs::sendfile(stream, file, Some(offset), count)?)
}

/// Sends `len` bytes of `file` at `offset`. sendfile runs on the async
/// worker, so a page it had to read from the disk would hold every
/// connection of that worker for the read (2 s beside a `dd` that keeps
/// the disk busy): bytes not all in the page cache (cachestat) are read in
/// chunks on the blocking pool and sent from memory instead.
pub async fn send_file_range(
    stream: &TcpStream,
    file: &std::sync::Arc<std::fs::File>,
    mut offset: u64,
    len: u64,
    stall: Duration,
) -> io::Result<()> {
    if crate::sys::cached_fully(file, offset, len) != Some(false) {
        return sendfile_all(stream, file, offset, len, stall).await;
    }
    let end = offset
        .checked_add(len)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    while offset < end {
        let want = (end - offset).min(COLD_READ_BYTES) as usize;
        let reader = file.clone();
        let chunk = tokio::task::spawn_blocking(move || {
            let mut chunk = vec![0u8; want];
            std::os::unix::fs::FileExt::read_exact_at(&*reader, &mut chunk, offset)?;
            Ok::<_, io::Error>(chunk)
        })
        .await
        .map_err(io::Error::other)??;
        offset += want as u64;
        write_all(stream, &chunk, offset < end, stall).await?;
    }
    Ok(())
}
