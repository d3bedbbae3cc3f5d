//! The local file an upload reads or a download writes, done either on
//! tokio's blocking pool or inline on the calling task.
//!
//! `tokio::fs` hands every call to a blocking-pool thread: right for a
//! server, whose workers must not stall, but for a one-shot command-line
//! tool that thread (its creation, stack, malloc arena and the futex
//! hand-offs) costs more than the page-cache read it wraps. Inline I/O
//! keeps such a tool on its one thread; see
//! [`ClientOptions::inline_file_io`](crate::ClientOptions::inline_file_io).

use std::io::{Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A local file behind either I/O strategy.
pub enum LocalFile {
    /// Through `tokio::fs` (the blocking pool).
    Pooled(tokio::fs::File),
    /// Read and written with plain system calls on the polling thread.
    Inline(std::fs::File),
}

impl LocalFile {
    pub async fn open(path: &Path, inline: bool) -> std::io::Result<LocalFile> {
        Ok(if inline {
            LocalFile::Inline(std::fs::File::open(path)?)
        } else {
            LocalFile::Pooled(tokio::fs::File::open(path).await?)
        })
    }

    pub async fn create(path: &Path, inline: bool) -> std::io::Result<LocalFile> {
        Ok(if inline {
            LocalFile::Inline(std::fs::File::create(path)?)
        } else {
            LocalFile::Pooled(tokio::fs::File::create(path).await?)
        })
    }

    pub async fn metadata(&self) -> std::io::Result<std::fs::Metadata> {
        match self {
            LocalFile::Pooled(f) => f.metadata().await,
            LocalFile::Inline(f) => f.metadata(),
        }
    }
}

/// Removes `path` the way `inline` says (cleanup of a partial download).
pub async fn remove(path: &Path, inline: bool) -> std::io::Result<()> {
    if inline {
        std::fs::remove_file(path)
    } else {
        tokio::fs::remove_file(path).await
    }
}

impl AsyncRead for LocalFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            LocalFile::Pooled(f) => Pin::new(f).poll_read(cx, buf),
            LocalFile::Inline(f) => {
                let n = f.read(buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for LocalFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            LocalFile::Pooled(f) => Pin::new(f).poll_write(cx, data),
            LocalFile::Inline(f) => Poll::Ready(f.write(data)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            LocalFile::Pooled(f) => Pin::new(f).poll_flush(cx),
            // Nothing is buffered in user space.
            LocalFile::Inline(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            LocalFile::Pooled(f) => Pin::new(f).poll_shutdown(cx),
            LocalFile::Inline(_) => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Both strategies write and read back the same bytes.
    #[tokio::test]
    async fn inline_and_pooled_agree() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for inline in [true, false] {
            let path = dir.path().join(format!("f-{inline}"));
            let mut f = LocalFile::create(&path, inline).await.unwrap();
            f.write_all(&data).await.unwrap();
            f.flush().await.unwrap();
            drop(f);
            let mut f = LocalFile::open(&path, inline).await.unwrap();
            assert_eq!(f.metadata().await.unwrap().len(), data.len() as u64);
            let mut back = Vec::new();
            f.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, data);
            remove(&path, inline).await.unwrap();
            assert!(!path.exists());
        }
    }
}
