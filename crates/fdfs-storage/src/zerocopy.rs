//! sendfile(2) from a stored file to a client socket: downloads skip the
//! copy through user space (measured in bench/RESULTS.md). This is the
//! storage's only other `unsafe` besides statvfs, kept to one call.

use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Largest piece handed to one sendfile call.
const SENDFILE_CHUNK_BYTES: usize = 1 << 20;

/// Sends `len` bytes of `file` starting at `offset` to `stream`.
pub async fn sendfile_all(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut off =
        i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut left = len;
    while left > 0 {
        stream.writable().await?;
        let want = (left as usize).min(SENDFILE_CHUNK_BYTES);
        match stream.try_io(Interest::WRITABLE, || {
            sendfile(stream, file, &mut off, want)
        }) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than announced",
                ))
            }
            Ok(n) => left -= n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn sendfile(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: &mut i64,
    count: usize,
) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call (we
    // hold references to their owners) and `offset` points to a valid i64
    // that sendfile updates in place.
    let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), offset, count) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
