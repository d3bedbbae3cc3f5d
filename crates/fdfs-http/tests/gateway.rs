//! The HTTP gateway against a real tracker + storage (fdfs-testkit), driven
//! with hyper's HTTP/1 client and, for malformed requests, raw TCP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fdfs_client::{Client, ClientOptions, UploadKind, UploadOptions};
use fdfs_config::http::ResponseMode;
use fdfs_config::TrackerAddr;
use fdfs_http::conf::{CheckFailFile, TokenConf};
use fdfs_http::{httpdate, token, GatewayConf};
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::FileId;
use fdfs_testkit::{wait_until, Cluster};
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

/// A test cluster, a runtime for the gateways and clients, and the
/// gateways started on it (stopped on drop).
struct Env {
    rt: tokio::runtime::Runtime,
    cluster: Cluster,
    client: Client,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Env {
    fn start() -> Env {
        let cluster = Cluster::start();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let client = Client::new(ClientOptions {
            trackers: vec![tracker_of(&cluster)],
            ..ClientOptions::default()
        })
        .unwrap();
        Env {
            rt,
            cluster,
            client,
            stop: CancellationToken::new(),
        }
    }

    /// The gateway configuration of the cluster's storage.
    fn conf(&self) -> GatewayConf {
        let c = &self.cluster;
        let mut g = GatewayConf::new(c.group.clone(), c.store_paths.clone());
        g.trackers = vec![tracker_of(c)];
        g.storage_port = c.storage_addr.port();
        g.self_ips = vec!["127.0.0.1".parse().unwrap()];
        g
    }

    /// Starts a gateway on `ip:port` (0 = any) and waits for /healthz.
    fn gateway_on(&self, conf: GatewayConf, ip: &str, port: u16) -> SocketAddr {
        let l = std::net::TcpListener::bind(format!("{ip}:{port}")).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = self.stop.clone();
        self.rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            fdfs_http::run(l, Arc::new(conf), stop).await.unwrap();
        });
        let up = wait_until(DEADLINE, || {
            self.rt
                .block_on(get(addr, "/healthz", &[]))
                .is_ok_and(|r| r.status == 200 && r.body == "ok\n")
        });
        assert!(up, "gateway on {addr} did not come up");
        addr
    }

    fn gateway(&self, conf: GatewayConf) -> SocketAddr {
        self.gateway_on(conf, "127.0.0.1", 0)
    }

    fn upload(&self, data: &[u8], ext: &str) -> FileId {
        let opts = UploadOptions {
            ext: Some(ext.into()),
            ..Default::default()
        };
        self.rt
            .block_on(self.client.upload_buffer(data, &opts))
            .unwrap()
    }

    /// Path of a stored file in the cluster's store.
    fn local_path(&self, id: &FileId) -> PathBuf {
        let n = RemoteName::parse(&id.remote, 1).unwrap();
        self.cluster.store_paths[0]
            .join("data")
            .join(n.relative_path())
    }
}

fn tracker_of(c: &Cluster) -> TrackerAddr {
    TrackerAddr {
        hosts: vec!["127.0.0.1".into()],
        port: c.tracker_addr.port(),
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    // A reused connection takes the next request only once hyper has seen
    // the previous response to its end: without waiting, a request can be
    // refused with "connection was not ready".
    tokio::time::timeout(DEADLINE, sender.ready()).await??;
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(b.body(Empty::new())?)).await??;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(DEADLINE, body.collect())
        .await??
        .to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

async fn connect(
    addr: SocketAddr,
) -> Result<
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    let stream = TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let mut sender = connect(addr).await?;
    send(&mut sender, method, path, headers).await
}

async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    request(addr, Method::GET, path, headers).await
}

/// Sends `head` verbatim (plus Host and Connection: close) and returns the
/// status code of the answer.
async fn raw_status(addr: SocketAddr, request_line: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let text = format!("{request_line}\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

fn url(id: &FileId) -> String {
    format!("/{id}")
}

fn name_timestamp(id: &FileId) -> i64 {
    i64::from(
        RemoteName::parse(&id.remote, 1)
            .unwrap()
            .record()
            .unwrap()
            .timestamp,
    )
}

fn mtime(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().mtime()
}

#[test]
fn get_and_head_of_normal_appender_and_slave_files() {
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let data = b"Hello FastDFS\n".to_vec();
    let id = env.upload(&data, "txt");
    let rt = &env.rt;

    let r = rt.block_on(get(gw, &url(&id), &[])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-length"), Some("14"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let lm = httpdate::format(name_timestamp(&id));
    assert_eq!(r.header("last-modified"), Some(lm.as_str()));
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let h = rt
        .block_on(request(gw, Method::HEAD, &url(&id), &[]))
        .unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("14"));
    assert_eq!(h.header("etag"), Some(etag.as_str()));
    assert_eq!(h.header("last-modified"), Some(lm.as_str()));

    // Mime types by extension, default for unknown ones.
    for (ext, ty) in [
        ("jpg", "image/jpeg"),
        ("png", "image/png"),
        ("mp4", "video/mp4"),
        ("zzz", "application/octet-stream"),
        ("", "application/octet-stream"),
    ] {
        let id = env.upload(b"x", ext);
        let r = rt.block_on(get(gw, &url(&id), &[])).unwrap();
        assert_eq!(r.status, 200, "{id}");
        assert_eq!(r.header("content-type"), Some(ty), "{id}");
    }

    // Appender: Last-Modified is the file's mtime; content follows appends.
    let opts = UploadOptions {
        kind: UploadKind::Appender,
        ext: Some("log".into()),
        ..Default::default()
    };
    let app = rt
        .block_on(env.client.upload_buffer(b"part1,", &opts))
        .unwrap();
    rt.block_on(env.client.append_buffer(&app, b"part2"))
        .unwrap();
    let r = rt.block_on(get(gw, &url(&app), &[])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "part1,part2");
    let lm = httpdate::format(mtime(&env.local_path(&app)));
    assert_eq!(r.header("last-modified"), Some(lm.as_str()));

    // Slave.
    let slave = rt
        .block_on(
            env.client
                .upload_slave_buffer(&id, "_150x150", "jpg", b"thumb", &[]),
        )
        .unwrap();
    let r = rt.block_on(get(gw, &url(&slave), &[])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "thumb");
    assert_eq!(r.header("content-type"), Some("image/jpeg"));

    // A large file streams in several chunks.
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let big_id = env.upload(&big, "bin");
    let r = rt.block_on(get(gw, &url(&big_id), &[])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big);

    // A well-formed name that is nowhere: 404.
    let mut gone = id.clone();
    gone.remote = gone.remote.replace(".txt", ".dat");
    let r = rt.block_on(get(gw, &url(&gone), &[])).unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn ranges_and_conditional_requests() {
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let id = env.upload(b"0123456789abcd", "txt");
    let u = url(&id);
    let rt = &env.rt;
    let g = |headers: &[(&str, &str)]| rt.block_on(get(gw, &u, headers)).unwrap();

    for (range, body, cr) in [
        ("bytes=2-5", "2345", "bytes 2-5/14"),
        ("bytes=-5", "9abcd", "bytes 9-13/14"),
        ("bytes=5-", "56789abcd", "bytes 5-13/14"),
        ("bytes=10-100", "abcd", "bytes 10-13/14"),
        ("bytes=-20", "0123456789abcd", "bytes 0-13/14"),
        ("bytes=0-0", "0", "bytes 0-0/14"),
    ] {
        let r = g(&[("range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.body, body, "{range}");
        assert_eq!(r.header("content-range"), Some(cr), "{range}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
    for range in ["bytes=14-", "bytes=20-", "bytes=5-3", "bytes=abc"] {
        let r = g(&[("range", range)]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */14"), "{range}");
    }
    // Several ranges: the whole file, 200.
    let r = g(&[("range", "bytes=1-2,4-5")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "0123456789abcd");
    // Another unit is ignored.
    assert_eq!(g(&[("range", "items=1-2")]).status, 200);
    // HEAD with a range.
    let h = rt
        .block_on(request(gw, Method::HEAD, &u, &[("range", "bytes=2-5")]))
        .unwrap();
    assert_eq!(h.status, 206);
    assert_eq!(h.header("content-length"), Some("4"));
    assert!(h.body.is_empty());

    // Conditionals.
    let first = g(&[]);
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let r = g(&[("if-none-match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(g(&[("if-none-match", "\"other\"")]).status, 200);
    assert_eq!(g(&[("if-modified-since", &lm)]).status, 304);
    let later = httpdate::format(name_timestamp(&id) + 3600);
    let earlier = httpdate::format(name_timestamp(&id) - 3600);
    assert_eq!(g(&[("if-modified-since", &later)]).status, 304);
    assert_eq!(g(&[("if-modified-since", &earlier)]).status, 200);
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        g(&[("if-none-match", "\"other\""), ("if-modified-since", &lm)]).status,
        200
    );
    // If-Range: a stale validator gets the whole file.
    assert_eq!(
        g(&[("if-range", &etag), ("range", "bytes=1-1")]).status,
        206
    );
    assert_eq!(
        g(&[("if-range", "\"stale\""), ("range", "bytes=1-1")]).status,
        200
    );

    // http.multi_range.enabled = false: several ranges → 416.
    let mut c = env.conf();
    c.multi_range_enabled = false;
    let gw2 = env.gateway(c);
    let r = rt
        .block_on(get(gw2, &u, &[("range", "bytes=1-2,4-5")]))
        .unwrap();
    assert_eq!(r.status, 416);
}

#[test]
fn disposition_keep_alive_healthz_and_methods() {
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let id = env.upload(b"report", "pdf");
    let u = url(&id);
    let rt = &env.rt;

    let r = rt
        .block_on(get(gw, &format!("{u}?filename=a%20b.pdf"), &[]))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"a b.pdf\"")
    );
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    let r = rt
        .block_on(get(
            gw,
            &format!("{u}?filename=%E6%8A%A5%E5%91%8A.pdf"),
            &[],
        ))
        .unwrap();
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"__.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf")
    );
    let r = rt
        .block_on(get(gw, &format!("{u}?filename=x%22%0D%0AX-Evil:%201"), &[]))
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-evil").is_none());

    // Two requests on one connection.
    rt.block_on(async {
        let mut s = connect(gw).await.unwrap();
        let a = send(&mut s, Method::GET, &u, &[]).await.unwrap();
        let b = send(&mut s, Method::GET, &u, &[("range", "bytes=0-1")])
            .await
            .unwrap();
        assert_eq!((a.status, b.status), (200, 206));
        assert_eq!(b.body, "re");
    });

    let r = rt.block_on(get(gw, "/healthz", &[])).unwrap();
    assert_eq!((r.status, r.body.as_ref()), (200, b"ok\n".as_ref()));
    for m in [Method::POST, Method::PUT, Method::DELETE] {
        let r = rt.block_on(request(gw, m.clone(), &u, &[])).unwrap();
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // Absolute-form request target.
    let r = rt
        .block_on(get(gw, &format!("http://somehost{u}"), &[]))
        .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn traversal_and_malformed_ids_are_refused() {
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let id = env.upload(b"inside", "txt");
    let n = RemoteName::parse(&id.remote, 1).unwrap();
    let b64 = &n.name[..27];
    let rt = &env.rt;
    let status = |line: &str| rt.block_on(raw_status(gw, line));

    for path in [
        "/group1/M00/00/00/../../../etc/passwd".to_string(),
        "/group1/M00/00/00/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_string(),
        format!("/group1/M00/00/00/%2e%2e%2f%2e%2e%2f{b64}1234567.txt"),
        format!("/group1/M00/00/0a/{b64}1234567.txt"),
        format!("/group1/M01/00/00/{b64}1234567.txt"),
        format!("/group1/M00/00/00/{}%00.txt", n.name),
        format!("/group1/M00/00/00/{}%zz", n.name),
        "/etc/passwd".to_string(),
        "//etc/passwd".to_string(),
        format!("/group1/00/00/{}", n.name),
        format!("/group1/M00/00/00/{}", "A".repeat(500)),
        "/group1/M00/00/00/short.txt".to_string(),
        format!("/gr%2Foup/M00/00/00/{}", n.name),
    ] {
        assert_eq!(status(&format!("GET {path} HTTP/1.1")), 400, "{path}");
    }
    assert_eq!(status(&format!("GET /{id} HTTP/1.1")), 200);

    // A symlink planted in the store that leaves it: 403, never the target.
    let dir = env.local_path(&id).parent().unwrap().to_path_buf();
    let evil = format!("{b64}_evil.txt");
    std::os::unix::fs::symlink("/etc/passwd", dir.join(&evil)).unwrap();
    let u = format!("/group1/{}/{evil}", &id.remote[..9]);
    let r = rt.block_on(get(gw, &u, &[])).unwrap();
    assert_eq!(r.status, 403, "{u}");
    assert!(!String::from_utf8_lossy(&r.body).contains("root:"));
    // A symlink to another file inside the store is fine (linked slaves).
    let good = format!("{b64}_link.txt");
    std::os::unix::fs::symlink(env.local_path(&id), dir.join(&good)).unwrap();
    let r = rt
        .block_on(get(gw, &format!("/group1/{}/{good}", &id.remote[..9]), &[]))
        .unwrap();
    assert_eq!((r.status, r.body.as_ref()), (200, b"inside".as_ref()));
    // A directory or a FIFO under a file name: not a file, 404 (and the
    // FIFO must not block the open).
    let d = format!("{b64}_dir.txt");
    std::fs::create_dir(dir.join(&d)).unwrap();
    let r = rt
        .block_on(get(gw, &format!("/group1/{}/{d}", &id.remote[..9]), &[]))
        .unwrap();
    assert_eq!(r.status, 404);
    let fifo = format!("{b64}_fifo.txt");
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join(&fifo))
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let r = rt
            .block_on(get(gw, &format!("/group1/{}/{fifo}", &id.remote[..9]), &[]))
            .unwrap();
        assert_eq!(r.status, 404);
    }
}

#[test]
fn anti_steal_token() {
    let env = Env::start();
    const KEY: &str = "FastDFS1234567890";
    let token_conf = |fail: Option<CheckFailFile>| TokenConf {
        secret_key: KEY.into(),
        ttl_secs: 900,
        check_fail: fail,
        bypass_header: Some(("x-bypass".into(), "letmein".into())),
    };
    let mut c = env.conf();
    c.token = Some(token_conf(None));
    let gw = env.gateway(c);
    let id = env.upload(b"secret", "txt");
    let rt = &env.rt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signed = |ts: i64| {
        format!(
            "{}?token={}&ts={ts}",
            url(&id),
            token::make_token(&id.remote, KEY, ts)
        )
    };
    let st = |u: &str, h: &[(&str, &str)]| rt.block_on(get(gw, u, h)).unwrap();

    let r = st(&signed(now), &[]);
    assert_eq!((r.status, r.body.as_ref()), (200, b"secret".as_ref()));
    assert_eq!(st(&signed(0), &[]).status, 200);
    assert_eq!(st(&signed(now - 899), &[]).status, 200);
    assert_eq!(st(&signed(now - 1000), &[]).status, 400, "expired");
    let wrong = format!("{}?token={}&ts={now}", url(&id), "0".repeat(32));
    assert_eq!(st(&wrong, &[]).status, 400);
    let with_group = format!(
        "{}?token={}&ts={now}",
        url(&id),
        token::make_token(&id.to_string(), KEY, now)
    );
    assert_eq!(st(&with_group, &[]).status, 400);
    assert_eq!(st(&url(&id), &[]).status, 400, "missing");
    assert_eq!(st(&format!("{}?ts={now}", url(&id)), &[]).status, 400);
    assert_eq!(st(&url(&id), &[("x-bypass", "letmein")]).status, 200);
    assert_eq!(st(&url(&id), &[("x-bypass", "nope")]).status, 400);
    let r = st(&format!("{}&filename=s.txt", signed(now)), &[]);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"s.txt\"")
    );

    // With token_check_fail: a bad token gets that file with 200.
    let mut c = env.conf();
    c.token = Some(token_conf(Some(CheckFailFile {
        content: Bytes::from_static(b"\x89PNGdeny"),
        content_type: "image/png".into(),
    })));
    let gw2 = env.gateway(c);
    let r = rt.block_on(get(gw2, &wrong, &[])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"\x89PNGdeny".as_ref());
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(rt.block_on(get(gw2, &url(&id), &[])).unwrap().status, 400);
    assert_eq!(
        rt.block_on(get(gw2, &signed(now), &[])).unwrap().body,
        "secret"
    );
}

#[test]
fn url_without_group_name() {
    let env = Env::start();
    let mut c = env.conf();
    c.url_have_group_name = false;
    let gw = env.gateway(c);
    let id = env.upload(b"nogroup", "txt");
    let r = env
        .rt
        .block_on(get(gw, &format!("/{}", id.remote), &[]))
        .unwrap();
    assert_eq!((r.status, r.body.as_ref()), (200, b"nogroup".as_ref()));
    let r = env.rt.block_on(get(gw, &url(&id), &[])).unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn idle_and_slow_connections_are_closed() {
    let env = Env::start();
    let mut c = env.conf();
    c.idle_timeout = Duration::from_millis(300);
    c.header_read_timeout = Duration::from_millis(300);
    let gw = env.gateway(c);
    env.rt.block_on(async {
        // Silent connection.
        let mut s = TcpStream::connect(gw).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("idle connection was not closed");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        // A request head that never completes.
        let mut s = TcpStream::connect(gw).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
            .await
            .expect("slow header was not cut off")
            .ok();
        // Keep-alive connection idle after one answer.
        let mut sender = connect(gw).await.unwrap();
        let r = send(&mut sender, Method::GET, "/healthz", &[])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                if sender.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(closed.is_ok(), "idle keep-alive connection stayed open");
    });
}

/// Binds `127.0.0.1:P` and `127.0.0.2:P` for one port P.
fn twin_listeners() -> (std::net::TcpListener, std::net::TcpListener) {
    for _ in 0..50 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if let Ok(b) = std::net::TcpListener::bind(("127.0.0.2", port)) {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

#[test]
fn redirect_and_proxy_between_two_storages_of_a_group() {
    let env = Env::start();
    let node = env.cluster.start_storage("127.0.0.2", |_| {});
    let rt = &env.rt;

    // Files written to storage A (127.0.0.1) only.
    let a = ServerAddr {
        ip: "127.0.0.1".into(),
        port: env.cluster.storage_addr.port(),
    };
    let upload_to_a = |data: &[u8], ext: &str| {
        let opts = UploadOptions {
            ext: Some(ext.into()),
            storage: Some(a.clone()),
            ..Default::default()
        };
        rt.block_on(env.client.upload_buffer(data, &opts)).unwrap()
    };
    let id = upload_to_a(b"0123456789abcd", "txt");
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    let big_id = upload_to_a(&big, "bin");
    assert!(RemoteName::parse(&id.remote, 1)
        .unwrap()
        .record()
        .unwrap()
        .source_ip_text()
        .starts_with("127.0.0.1"));

    // Gateways of A and B on the same port, A serving, B redirecting.
    let (la, lb) = twin_listeners();
    let port = la.local_addr().unwrap().port();
    drop((la, lb));
    let ga = env.gateway_on(env.conf(), "127.0.0.1", port);
    let mut b_conf = GatewayConf::from_storage(&node.conf, None).unwrap();
    assert_eq!(
        b_conf.self_ips,
        ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    b_conf.response_mode = ResponseMode::Redirect;
    let gb = env.gateway_on(b_conf, "127.0.0.2", port);

    let r = rt
        .block_on(get(
            gb,
            &format!("{}?x=1", url(&id)),
            &[("range", "bytes=1-2")],
        ))
        .unwrap();
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(
        loc,
        format!("http://127.0.0.1:{port}{}?x=1&redirect=1", url(&id))
    );
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("range"), Some("bytes=1-2"));
    let target = loc.trim_start_matches(&format!("http://127.0.0.1:{port}"));
    let r = rt.block_on(get(ga, target, &[])).unwrap();
    assert_eq!(
        (r.status, r.body.as_ref()),
        (200, b"0123456789abcd".as_ref())
    );
    let r = rt
        .block_on(get(gb, &format!("{}?redirect=1", url(&id)), &[]))
        .unwrap();
    assert_eq!(r.status, 404, "loop guard");
    let r = rt.block_on(get(gb, &url(&id), &[])).unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("http://127.0.0.1:{port}{}?redirect=1", url(&id)).as_str())
    );

    // B proxying from A over the binary protocol.
    let proxy_conf = GatewayConf::from_storage(&node.conf, None).unwrap();
    let gp = env.gateway_on(proxy_conf.clone(), "127.0.0.2", 0);
    let r = rt.block_on(get(gp, &url(&id), &[])).unwrap();
    assert_eq!(
        (r.status, r.body.as_ref()),
        (200, b"0123456789abcd".as_ref())
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let direct = rt.block_on(get(ga, &url(&id), &[])).unwrap();
    assert_eq!(r.header("etag"), direct.header("etag"));
    assert_eq!(r.header("last-modified"), direct.header("last-modified"));
    let r = rt
        .block_on(get(gp, &url(&id), &[("range", "bytes=2-5")]))
        .unwrap();
    assert_eq!((r.status, r.body.as_ref()), (206, b"2345".as_ref()));
    assert_eq!(r.header("content-range"), Some("bytes 2-5/14"));
    let r = rt
        .block_on(get(gp, &url(&id), &[("range", "bytes=99-")]))
        .unwrap();
    assert_eq!(r.status, 416);
    let etag = direct.header("etag").unwrap().to_string();
    let r = rt
        .block_on(get(gp, &url(&id), &[("if-none-match", &etag)]))
        .unwrap();
    assert_eq!(r.status, 304);
    let h = rt
        .block_on(request(gp, Method::HEAD, &url(&id), &[]))
        .unwrap();
    assert_eq!((h.status, h.header("content-length")), (200, Some("14")));
    let r = rt.block_on(get(gp, &url(&big_id), &[])).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == big);
    let mut gone = id.clone();
    gone.remote = gone.remote.replace(".txt", ".dat");
    assert_eq!(rt.block_on(get(gp, &url(&gone), &[])).unwrap().status, 404);

    // The source does not answer at the assumed port: the tracker names A.
    let mut fallback = proxy_conf;
    fallback.storage_port = 1;
    let gf = env.gateway_on(fallback, "127.0.0.2", 0);
    let r = rt.block_on(get(gf, &url(&id), &[])).unwrap();
    assert_eq!(
        (r.status, r.body.as_ref()),
        (200, b"0123456789abcd".as_ref())
    );
    drop(node);
}

/// One response read off a raw connection.
#[derive(Debug)]
struct RawReply {
    status: u16,
    /// Lower-case names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `s` (`pending` keeps bytes of the next ones);
/// `head` for answers to HEAD (no body whatever Content-Length says).
async fn read_reply(s: &mut TcpStream, pending: &mut Vec<u8>, head: bool) -> RawReply {
    async fn fill(s: &mut TcpStream, pending: &mut Vec<u8>) {
        let mut chunk = vec![0u8; 65536];
        let n = tokio::time::timeout(DEADLINE, s.read(&mut chunk))
            .await
            .expect("no answer in time")
            .expect("read failed");
        assert!(n > 0, "connection closed early");
        pending.extend_from_slice(&chunk[..n]);
    }
    let head_len = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(s, pending).await;
    };
    let text = String::from_utf8(pending[..head_len].to_vec()).unwrap();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = if head || status == 304 {
        0
    } else {
        headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap())
    };
    while pending.len() < head_len + len {
        fill(s, pending).await;
    }
    let body = pending[head_len..head_len + len].to_vec();
    pending.drain(..head_len + len);
    RawReply {
        status,
        headers,
        body,
    }
}

fn raw_get(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n")
}

#[test]
fn fast_path_keep_alive_pipelining_head_and_ranges() {
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let small = b"0123456789abcd".to_vec();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    let (s_id, b_id) = (env.upload(&small, "txt"), env.upload(&big, "bin"));
    let (su, bu) = (url(&s_id), url(&b_id));
    env.rt.block_on(async {
        let mut s = TcpStream::connect(gw).await.unwrap();
        let mut pending = Vec::new();
        // Several requests one after the other on one connection.
        for _ in 0..3 {
            s.write_all(raw_get("GET", &bu, "").as_bytes())
                .await
                .unwrap();
            let r = read_reply(&mut s, &mut pending, false).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-length"), Some("700000"));
            assert!(r.body == big, "bytes served differ from the file");
        }
        // Pipelined: GET, HEAD, ranges, a conditional GET, in one write.
        let etag = {
            s.write_all(raw_get("HEAD", &su, "").as_bytes())
                .await
                .unwrap();
            let h = read_reply(&mut s, &mut pending, true).await;
            assert_eq!((h.status, h.header("content-length")), (200, Some("14")));
            assert!(h.body.is_empty());
            h.header("etag").unwrap().to_string()
        };
        let batch = [
            raw_get("GET", &su, ""),
            raw_get("HEAD", &bu, ""),
            raw_get("GET", &su, "Range: bytes=2-5\r\n"),
            raw_get("GET", &bu, "Range: bytes=-3\r\n"),
            raw_get("GET", &bu, "Range: bytes=699999-800000\r\n"),
            raw_get("GET", &su, "Range: bytes=99-\r\n"),
            raw_get("GET", &su, &format!("If-None-Match: {etag}\r\n")),
            raw_get("GET", &bu, "Range: bytes=100000-399999\r\n"),
        ]
        .concat();
        s.write_all(batch.as_bytes()).await.unwrap();
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (200, small.as_slice()));
        let r = read_reply(&mut s, &mut pending, true).await;
        assert_eq!(
            (r.status, r.header("content-length")),
            (200, Some("700000"))
        );
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (206, b"2345".as_slice()));
        assert_eq!(r.header("content-range"), Some("bytes 2-5/14"));
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (206, &big[699_997..]));
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (206, &big[699_999..]));
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */14"));
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.len()), (304, 0));
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!(r.status, 206);
        assert!(r.body == big[100_000..400_000]);

        // A request split across TCP segments.
        s.set_nodelay(true).unwrap();
        let req = raw_get("GET", &su, "Range: bytes=0-0\r\n");
        let (a, rest) = req.as_bytes().split_at(7);
        let (b, c) = rest.split_at(rest.len() - 3);
        for part in [a, b, c] {
            s.write_all(part).await.unwrap();
            s.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (206, b"0".as_slice()));

        // A request for hyper in the middle of a pipeline: the connection
        // goes on with the requests after it.
        let batch = [
            raw_get("GET", "/healthz", ""),
            raw_get("GET", &su, ""),
            raw_get("GET", &bu, "Range: bytes=1-2\r\n"),
        ]
        .concat();
        s.write_all(batch.as_bytes()).await.unwrap();
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (200, b"ok\n".as_slice()));
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (200, small.as_slice()));
        let r = read_reply(&mut s, &mut pending, false).await;
        assert_eq!((r.status, r.body.as_slice()), (206, &big[1..3]));
        assert!(pending.is_empty());
    });
}

#[test]
fn fast_path_answers_like_hyper() {
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let id = env.upload(b"0123456789abcd", "txt");
    let u = url(&id);
    let etag = env
        .rt
        .block_on(get(gw, &u, &[]))
        .unwrap()
        .header("etag")
        .unwrap()
        .to_string();
    env.rt.block_on(async {
        for (method, path, extra) in [
            ("GET", u.clone(), String::new()),
            ("HEAD", u.clone(), String::new()),
            ("GET", format!("{u}?filename=r%20x.txt"), String::new()),
            ("GET", u.clone(), "Range: bytes=3-\r\n".to_string()),
            ("GET", u.clone(), "Range: bytes=30-\r\n".to_string()),
            ("GET", u.clone(), format!("If-None-Match: {etag}\r\n")),
            (
                "GET",
                format!("http://somehost{u}"),
                "If-Range: \"old\"\r\nRange: bytes=1-2\r\n".to_string(),
            ),
        ] {
            let mut replies = Vec::new();
            // Content-Length: 0 leaves the request to hyper's service.
            for force_hyper in ["", "Content-Length: 0\r\n"] {
                let mut s = TcpStream::connect(gw).await.unwrap();
                let req = raw_get(method, &path, &format!("{extra}{force_hyper}"));
                s.write_all(req.as_bytes()).await.unwrap();
                let mut pending = Vec::new();
                let mut r = read_reply(&mut s, &mut pending, method == "HEAD").await;
                r.headers.retain(|(n, _)| n != "date");
                replies.push(r);
            }
            let (fast, hyper) = (&replies[0], &replies[1]);
            assert_eq!(fast.status, hyper.status, "{method} {path} {extra}");
            assert_eq!(fast.headers, hyper.headers, "{method} {path} {extra}");
            assert_eq!(fast.body, hyper.body, "{method} {path} {extra}");
        }
    });
}

#[test]
fn fast_path_drops_stalled_clients() {
    let env = Env::start();
    let mut c = env.conf();
    c.header_read_timeout = Duration::from_millis(300);
    c.idle_timeout = Duration::from_millis(300);
    let gw = env.gateway(c);
    let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 241) as u8).collect();
    let (s_id, b_id) = (env.upload(b"small", "txt"), env.upload(&big, "bin"));
    env.rt.block_on(async {
        // A head that stops halfway, after one answered request.
        let mut s = TcpStream::connect(gw).await.unwrap();
        let mut pending = Vec::new();
        s.write_all(raw_get("GET", &url(&s_id), "").as_bytes())
            .await
            .unwrap();
        assert_eq!(read_reply(&mut s, &mut pending, false).await.status, 200);
        let started = std::time::Instant::now();
        s.write_all(format!("GET {} HTTP/1.1\r\nHost: t\r\n", url(&s_id)).as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
            .await
            .expect("stalled head was not cut off")
            .ok();
        assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
        assert!(started.elapsed() >= Duration::from_millis(250));

        // A client that stops reading its answer: the write stalls and the
        // connection is closed before the whole file went out.
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(gw).await.unwrap();
        s.write_all(raw_get("GET", &url(&b_id), "").as_bytes())
            .await
            .unwrap();
        // The client sees nothing until it reads the buffered bytes, but the
        // kernel shows the server's side of the connection leave
        // ESTABLISHED once the gateway gives up and closes it.
        let client_addr = s.local_addr().unwrap();
        let deadline = std::time::Instant::now() + DEADLINE;
        assert!(
            server_side_established(gw, client_addr),
            "connection not listed"
        );
        while server_side_established(gw, client_addr) {
            assert!(
                std::time::Instant::now() < deadline,
                "stalled writer was not cut off"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut got = 0usize;
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(DEADLINE, s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got += n,
                Err(_) => panic!("stalled writer was not cut off"),
            }
        }
        assert!(got < big.len(), "got the whole file ({got} bytes)");
    });
}

/// True while /proc/net/tcp lists the connection `server` ← `client` (IPv4)
/// from the server's side as ESTABLISHED.
fn server_side_established(server: std::net::SocketAddr, client: std::net::SocketAddr) -> bool {
    fn hex(addr: std::net::SocketAddr) -> String {
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            panic!("IPv4 only");
        };
        // The kernel prints the address as a native-endian u32.
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(ip.octets()),
            addr.port()
        )
    }
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[2] == remote && f[3] == "01"
    })
}

/// A file name is client text: the source address it encodes must never
/// make the gateway connect to (proxy) or send clients to (redirect) an
/// address the tracker does not list for the URL's group, whichever group
/// the URL names.
#[test]
fn names_never_steer_the_gateway_to_an_unlisted_address() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = Env::start();
    let rt = &env.rt;
    // Where a forged name points: the port the gateway assumes for a
    // source storage, on an address that is no storage of the cluster.
    let trap = rt
        .block_on(tokio::net::TcpListener::bind((
            "127.0.0.2",
            env.cluster.storage_addr.port(),
        )))
        .expect("bind the trap listener on 127.0.0.2");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    rt.spawn(async move {
        while trap.accept().await.is_ok() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });

    let real = env.upload(b"real", "txt");
    let n = RemoteName::parse(&real.remote, 1).unwrap();
    let mut record = n.record().unwrap();
    record.source = fdfs_proto::fileid::FileNameRecord::ip_source("127.0.0.2".parse().unwrap());
    let forged = format!("{}{}", record.encode(), &n.name[27..]);

    for mode in [ResponseMode::Proxy, ResponseMode::Redirect] {
        let mut conf = env.conf();
        conf.response_mode = mode;
        let gw = env.gateway(conf);
        for group in ["group1", "group9"] {
            let path = format!("/{group}/M00/00/00/{forged}");
            let r = rt.block_on(get(gw, &path, &[])).unwrap();
            assert_eq!(r.status, 404, "{mode:?} {path}: {r:?}");
            assert_eq!(r.header("location"), None, "{mode:?} {path}");
        }
        // The real file still comes from here.
        let r = rt.block_on(get(gw, &url(&real), &[])).unwrap();
        assert_eq!((r.status, r.body.as_ref()), (200, b"real".as_ref()));
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the gateway connected to the address a file name encodes"
    );
}

/// Unfinished request heads cannot hold more than 16 KiB each: a longer
/// head is answered 431 at once, a long but complete one is still served.
#[test]
fn request_heads_are_capped_at_16_kib() {
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let id = env.upload(b"capped", "txt");
    env.rt.block_on(async {
        let head = |pad: usize| {
            format!(
                "GET {} HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
                url(&id),
                "a".repeat(pad)
            )
        };
        let exchange = |text: String| async move {
            let mut s = TcpStream::connect(gw).await.unwrap();
            // The server may answer and close before it read everything.
            let _ = s.write_all(text.as_bytes()).await;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
                .await
                .expect("no answer to the request head");
            String::from_utf8_lossy(&out).into_owned()
        };
        let served = exchange(head(12 * 1024)).await;
        assert!(served.starts_with("HTTP/1.1 200"), "{served:.80}");
        assert!(served.ends_with("capped"));
        let refused = exchange(head(40 * 1024)).await;
        assert!(refused.starts_with("HTTP/1.1 431"), "{refused:.80}");
    });
}

/// A file's metadata (`<name>-m`) is not served as a file, on the fast
/// path or through hyper: 404, as for any name that is not a data file.
#[test]
fn metadata_files_are_not_served() {
    use fdfs_proto::metadata::MetaOp;
    let env = Env::start();
    let gw = env.gateway(env.conf());
    let id = env.upload(b"with metadata", "txt");
    env.rt
        .block_on(env.client.set_metadata(
            &id,
            &[(b"secret".to_vec(), b"token".to_vec())],
            MetaOp::Overwrite,
        ))
        .unwrap();
    let meta_path = env.local_path(&id).with_extension("txt-m");
    assert!(meta_path.is_file(), "{} was written", meta_path.display());
    let meta_url = format!("{}-m", url(&id));
    // Fast path (keep-alive GET) and hyper (Connection: close) alike.
    let r = env.rt.block_on(get(gw, &meta_url, &[])).unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    let status = env
        .rt
        .block_on(raw_status(gw, &format!("GET {meta_url} HTTP/1.1")));
    assert_eq!(status, 404);
    let r = env.rt.block_on(get(gw, &url(&id), &[])).unwrap();
    assert_eq!(
        (r.status, r.body.as_ref()),
        (200, b"with metadata".as_ref())
    );
}
