//! HTTPS on the gateway port (ours, off by default): `http.tls.certificate`
//! and `http.tls.certificate_key` (PEM) load a rustls server configuration
//! (ring provider); each connection is a TLS session over the TCP stream,
//! driven here for tokio, then served by hyper like plain HTTP. A plain
//! HTTP request sent to the TLS port is answered 400 and closed, as nginx
//! does.

use std::io::{self, Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::error::HttpError;

/// First byte of a TLS handshake record; anything else is no TLS client.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How long, and how many bytes, a plain HTTP client's request is read
/// after its 400 before the connection closes.
const LINGER_DRAIN_TIME: Duration = Duration::from_secs(2);
const LINGER_DRAIN_BYTES: usize = 64 * 1024;

/// The answer to plain HTTP on the TLS port.
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Content-Length: 49\r\nConnection: close\r\n\r\nThe plain HTTP request was sent to an HTTPS port.\n";

/// A server configuration from a PEM certificate chain and its key.
pub fn server_config(certificate: &Path, key: &Path) -> Result<Arc<ServerConfig>, HttpError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| {
            HttpError::Config(format!(
                "http.tls.certificate {}: {e}",
                certificate.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(HttpError::Config(format!(
            "http.tls.certificate {}: no certificate in it",
            certificate.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        HttpError::Config(format!("http.tls.certificate_key {}: {e}", key.display()))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| HttpError::Config(format!("http.tls: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Completes the TLS handshake on `tcp` within `deadline`; None when the
/// client is gone, spoke plain HTTP (answered 400) or failed the handshake.
pub async fn accept(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    deadline: Duration,
) -> Option<TlsStream> {
    let handshake = async {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await.ok()? == 0 {
            return None;
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            answer_plain_http(&mut tcp).await;
            return None;
        }
        let conn = ServerConnection::new(config).ok()?;
        let mut s = TlsStream { tcp, conn };
        std::future::poll_fn(|cx| s.poll_handshake(cx)).await.ok()?;
        Some(s)
    };
    tokio::time::timeout(deadline, handshake)
        .await
        .ok()
        .flatten()
}

/// Answers 400 to a plain HTTP client, then reads what it sent for a
/// moment before closing (a close with unread bytes would reset the
/// connection and could destroy the answer before the client reads it).
async fn answer_plain_http(tcp: &mut TcpStream) {
    use tokio::io::AsyncReadExt;
    if tcp.write_all(PLAIN_HTTP_ON_TLS_PORT).await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = LINGER_DRAIN_BYTES;
        while left > 0 {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_DRAIN_TIME, drain).await;
}

/// A server-side TLS session over a TCP stream.
pub struct TlsStream {
    tcp: TcpStream,
    conn: ServerConnection,
}

/// `std::io` access to a tokio socket without blocking: WouldBlock when it
/// is not ready (the caller then waits for readiness).
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsStream {
    /// Reads TLS records from the socket and processes them; Ok(0) at the
    /// end of the TCP stream.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            match self.conn.read_tls(&mut NonBlocking(&self.tcp)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
                Ok(n) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // Let the peer hear why (the alert), best effort.
                        let _ = self.conn.write_tls(&mut NonBlocking(&self.tcp));
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    /// Writes pending TLS records to the socket until none are left.
    fn poll_write_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut NonBlocking(&self.tcp)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
                Ok(_) => {}
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.is_handshaking() {
            ready!(self.poll_write_tls(cx))?;
            if !self.conn.is_handshaking() {
                break;
            }
            if ready!(self.poll_read_tls(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        self.poll_write_tls(cx)
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match this.conn.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Key updates and alerts may need an answer before more data.
            ready!(this.poll_write_tls(cx))?;
            if ready!(this.poll_read_tls(cx))? == 0 {
                // The TCP stream ended: whatever the session holds is all.
                return match this.conn.reader().read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        Poll::Ready(Ok(()))
                    }
                    // Closed without close_notify: an end all the same
                    // for a request reader (hyper sees no more bytes).
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Ready(Ok(())),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
                    Err(e) => Poll::Ready(Err(e)),
                };
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            // rustls buffers a bounded amount; 0 means full until flushed.
            let n = this.conn.writer().write(buf)?;
            match this.poll_write_tls(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if n > 0 => return Poll::Ready(Ok(n)),
                Poll::Pending => return Poll::Pending,
            }
            if n > 0 || buf.is_empty() {
                return Poll::Ready(Ok(n));
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.conn.writer().flush()?;
        this.poll_write_tls(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.conn.send_close_notify();
        ready!(this.poll_write_tls(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
