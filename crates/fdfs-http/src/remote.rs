//! Files that are not here (PROTOCOL.md §9.3): `redirect` mode answers 302
//! to another storage's HTTP port, `proxy` mode fetches the file over the
//! binary protocol (QUERY_FILE_INFO, then DOWNLOAD_FILE for the planned
//! window) and relays it.
//!
//! The only storages named or contacted are those the tracker's
//! QUERY_FETCH_ALL (105) lists for the URL's group and file; the source
//! encoded in the file name only puts its storage first when the tracker
//! lists it. The module trusts the name's source address, and a name is
//! client text: anyone could make the gateway connect to, and relay, any
//! address (or send clients there), whatever group the URL names.

use std::net::IpAddr;

use bytes::BytesMut;
use fdfs_client::{
    Client, ClientError, ClientOptions, Conn, StorageClient, FINFO_FLAG_KEEP_SILENCE,
    FINFO_FLAG_NO_CRC32,
};
use fdfs_proto::fileid::{FileKind, FileSource};
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::Status;
use hyper::header::HeaderValue;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::body::{GatewayBody, RelayBody, FILE_CHUNK_BYTES};
use crate::conf::GatewayConf;
use crate::error::Reject;
use crate::plan::{decide, Conditions, FileFacts};
use crate::request::FileRequest;
use crate::response::{self, Resp};
use crate::Gateway;

/// Chunks buffered between the source storage and the HTTP client.
const RELAY_CHANNEL_CHUNKS: usize = 4;

/// The source address in a file name (None for server-id names: we keep no
/// storage id table).
pub fn source_ip(req: &FileRequest) -> Option<IpAddr> {
    match req.record.source() {
        FileSource::Ip(ip) => Some(IpAddr::V4(ip)),
        FileSource::ServerId(_) => None,
    }
}

/// The client the gateway asks the trackers with; None when the conf names
/// no tracker (then only local files are served). Connections are not
/// pooled: a tracker is asked only for files that are not here.
pub(crate) fn tracker_client(conf: &GatewayConf) -> Option<Client> {
    Client::new(ClientOptions {
        trackers: conf.trackers.clone(),
        connect_timeout: conf.connect_timeout,
        network_timeout: conf.network_timeout,
        ..ClientOptions::default()
    })
    .ok()
}

impl Gateway {
    fn is_self_ip(&self, ip: &IpAddr) -> bool {
        self.conf().self_ips.contains(ip)
    }

    fn is_self(&self, addr: &ServerAddr) -> bool {
        addr.port == self.conf().storage_port
            && addr
                .ip
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.is_self_ip(&ip))
    }

    /// The group's storages that the tracker says can serve the file: the
    /// first tracker that answers wins, by the client's failover (starting
    /// at a rotating tracker, as the C client library does; network
    /// failures move on; a status answer is final and lists nothing).
    pub(crate) async fn tracker_candidates(&self, req: &FileRequest) -> Vec<ServerAddr> {
        let Some(client) = &self.tracker_client else {
            return Vec::new();
        };
        let listed = client
            .with_tracker(req, |t, req| {
                Box::pin(t.query_fetch_all(&req.group, &req.remote))
            })
            .await;
        listed.unwrap_or_else(|e| {
            tracing::debug!(group = %req.group, file = %req.remote, error = %e, "no tracker lists a storage for the file");
            Vec::new()
        })
    }

    /// The storages that may serve `req`, the name's source first when the
    /// tracker lists it, this storage left out.
    async fn candidates(&self, req: &FileRequest) -> Vec<ServerAddr> {
        let mut listed: Vec<ServerAddr> = self
            .tracker_candidates(req)
            .await
            .into_iter()
            .filter(|a| !self.is_self(a))
            .collect();
        let source_pos = source_ip(req).and_then(|src| {
            listed
                .iter()
                .position(|a| a.ip.parse::<IpAddr>().ok() == Some(src))
        });
        if let Some(pos) = source_pos {
            listed[..=pos].rotate_right(1);
        }
        listed
    }

    /// 302 to the gateway of a storage the tracker lists for the file
    /// (same port, same path and query, plus `redirect=1`).
    pub(crate) async fn redirect(
        &self,
        req: &FileRequest,
        uri: &hyper::Uri,
        range: Option<&HeaderValue>,
    ) -> Result<Resp, Reject> {
        let target = self
            .candidates(req)
            .await
            .iter()
            .filter_map(|a| a.ip.parse::<IpAddr>().ok())
            .find(|ip| !self.is_self_ip(ip));
        let Some(ip) = target else {
            return Err(Reject::not_found(format!(
                "{}/{}: not here and no other storage to send the client to",
                req.group, req.remote
            )));
        };
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let port = match self.http_port {
            80 => String::new(),
            p => format!(":{p}"),
        };
        let location = match uri.query() {
            Some(q) if !q.is_empty() => {
                format!("http://{host}{port}{}?{q}&redirect=1", uri.path())
            }
            _ => format!("http://{host}{port}{}?redirect=1", uri.path()),
        };
        response::redirect(&location, range)
    }

    /// Relays the file from a storage that has it; 404 when none has.
    pub(crate) async fn proxy(
        &self,
        req: &FileRequest,
        cond: &Conditions,
        download_name: Option<&str>,
        head: bool,
    ) -> Result<Resp, Reject> {
        let mut tried = 0usize;
        for addr in self.candidates(req).await {
            if let Some(r) = self
                .try_storage(&addr, req, cond, download_name, head)
                .await?
            {
                return Ok(r);
            }
            tried += 1;
        }
        Err(Reject::not_found(format!(
            "{}/{}: no storage has it (tried {})",
            req.group, req.remote, tried
        )))
    }

    /// One candidate: `Ok(None)` when it is unreachable or lacks the file.
    async fn try_storage(
        &self,
        addr: &ServerAddr,
        req: &FileRequest,
        cond: &Conditions,
        download_name: Option<&str>,
        head: bool,
    ) -> Result<Option<Resp>, Reject> {
        let mut conn = match Conn::connect(
            &addr.to_string(),
            self.conf().connect_timeout,
            self.conf().network_timeout,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(storage = %addr, error = %e, "source storage unreachable");
                return Ok(None);
            }
        };
        let mut sc = StorageClient::new(&mut conn);
        let info = match sc
            .query_file_info(
                &req.group,
                &req.remote,
                FINFO_FLAG_NO_CRC32 | FINFO_FLAG_KEEP_SILENCE,
            )
            .await
        {
            Ok(i) => i,
            Err(ClientError::Status(Status::ENOENT)) => {
                conn.quit().await;
                return Ok(None);
            }
            Err(e) => {
                tracing::debug!(storage = %addr, error = %e, "file info failed");
                return Ok(None);
            }
        };
        let size = u64::try_from(info.file_size)
            .map_err(|_| Reject::bad_gateway(format!("{addr}: negative file size")))?;
        let last_modified = match req.name.kind() {
            FileKind::Normal => i64::from(req.record.timestamp),
            FileKind::Appender | FileKind::Slave => info.create_timestamp,
        };
        let facts = FileFacts {
            size,
            last_modified,
        };
        let plan = decide(&facts, cond, self.conf().multi_range_enabled);
        let (offset, len) = plan.window(size);
        let respond = |body| {
            response::file(
                &self.conf(),
                &req.name.name,
                download_name,
                &facts,
                plan,
                body,
            )
        };
        if head || len == 0 {
            conn.quit().await;
            return Ok(Some(respond(GatewayBody::empty())));
        }
        let announced = match StorageClient::new(&mut conn)
            .download_start(&req.group, &req.remote, offset, len)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(storage = %addr, error = %e, "download failed");
                return Ok(None);
            }
        };
        if announced != len {
            return Err(Reject::bad_gateway(format!(
                "{addr}: announced {announced} bytes, expected {len}"
            )));
        }
        let (tx, rx) = mpsc::channel(RELAY_CHANNEL_CHUNKS);
        tokio::spawn(relay(conn, len, tx));
        Ok(Some(respond(GatewayBody::Relay(RelayBody::new(rx, len)))))
    }
}

/// Copies `len` announced bytes from the storage connection into the
/// channel, each read under the network timeout; then says QUIT.
async fn relay(mut conn: Conn, len: u64, tx: mpsc::Sender<std::io::Result<bytes::Bytes>>) {
    let mut left = len;
    while left > 0 {
        let want = left.min(FILE_CHUNK_BYTES as u64) as usize;
        let mut buf = BytesMut::with_capacity(want);
        let read = tokio::time::timeout(
            conn.network_timeout,
            (&mut conn.stream).take(want as u64).read_buf(&mut buf),
        )
        .await;
        let n = match read {
            Ok(Ok(0)) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "source storage closed early",
            )),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "source storage timed out",
            )),
        };
        match n {
            Ok(n) => {
                left -= n as u64;
                if tx.send(Ok(buf.freeze())).await.is_err() {
                    // The HTTP client went away.
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(storage = %conn.addr, error = %e, "relay aborted");
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
    conn.quit().await;
}
