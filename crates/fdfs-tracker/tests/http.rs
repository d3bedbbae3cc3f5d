//! The tracker's HTTP listener as a library (`http::run` on a listener
//! bound to 127.0.0.1:0): /metrics, 404 for other paths, 405 for other
//! methods, and a request counted per command between two scrapes.

use std::time::Duration;

use fdfs_config::TrackerConf;
use fdfs_proto::CMD_ACTIVE_TEST;
use fdfs_util::framing::{read_header, write_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

/// Sends `request` and reads to the end: (status code, whole response).
async fn http(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let code = text.split(' ').nth(1).unwrap().parse().unwrap();
    (code, text)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn metrics_page_and_route_table() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = fdfs_tracker::Tracker::open(TrackerConf {
        base_path: dir.path().to_path_buf(),
        ..TrackerConf::default()
    })
    .unwrap();
    let stop = CancellationToken::new();
    let proto = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proto_addr = proto.local_addr().unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_addr = web.local_addr().unwrap();
    let serving = tokio::spawn(fdfs_tracker::serve(proto, tracker.clone(), stop.clone()));
    let web_task = tokio::spawn(fdfs_tracker::http::run(web, tracker, stop.clone()));

    let (code, page) = http(web_addr, &get("/metrics")).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("content-type: application/openmetrics-text"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "fastdfs_tracker_is_leader{{host=\"{proto_addr}\"}} 1\n"
        )),
        "{page}"
    );
    assert!(page.ends_with("# EOF\n"), "{page}");
    assert!(!page.contains("fdfs_tracker_requests_total{command=\"ActiveTest\"}"));

    let mut s = TcpStream::connect(proto_addr).await.unwrap();
    write_packet(&mut s, CMD_ACTIVE_TEST, 0, &[]).await.unwrap();
    assert_eq!(read_header(&mut s).await.unwrap().status, 0);
    let (_, page) = http(web_addr, &get("/metrics")).await;
    assert!(
        page.contains("fdfs_tracker_requests_total{command=\"ActiveTest\"} 1\n"),
        "{page}"
    );

    assert_eq!(http(web_addr, &get("/nope")).await.0, 404);
    // The status page and the JSON it polls (issue #13.3).
    let (code, page) = http(web_addr, &get("/")).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("content-type: text/html; charset=utf-8"),
        "{page}"
    );
    assert!(page.contains("<!DOCTYPE html>"), "{page}");
    let (code, json) = http(web_addr, &get("/status.json")).await;
    assert_eq!(code, 200, "{json}");
    assert!(json.contains("content-type: application/json"), "{json}");
    assert!(
        json.contains(&format!("\"leader\":\"{proto_addr}\",\"is_leader\":true")),
        "{json}"
    );
    let (code, text) = http(
        web_addr,
        "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 405);
    assert!(text.contains("allow: GET, HEAD"), "{text}");
    let (code, text) = http(
        web_addr,
        "HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 200);
    assert!(text.ends_with("\r\n\r\n"), "HEAD has no body: {text}");

    stop.cancel();
    tokio::time::timeout(DEADLINE, web_task)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(DEADLINE, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A request on a raw connection; the answer's status and body.
async fn raw_call(s: &mut TcpStream, cmd: u8, body: &[u8]) -> (u8, Vec<u8>) {
    write_packet(s, cmd, 0, body).await.unwrap();
    let h = read_header(s).await.unwrap();
    let len = h.body_len().unwrap() as usize;
    let body = fdfs_util::framing::read_body(s, len).await.unwrap();
    (h.status, body.to_vec())
}

#[tokio::test]
async fn metrics_show_the_trunk_server_and_its_free_space() {
    use fdfs_proto::TrackerCmd as C;
    let dir = tempfile::tempdir().unwrap();
    let tracker = fdfs_tracker::Tracker::open(TrackerConf {
        base_path: dir.path().to_path_buf(),
        use_trunk_file: true,
        ..TrackerConf::default()
    })
    .unwrap();
    let stop = CancellationToken::new();
    let proto = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proto_addr = proto.local_addr().unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_addr = web.local_addr().unwrap();
    let serving = tokio::spawn(fdfs_tracker::serve(proto, tracker.clone(), stop.clone()));
    let web_task = tokio::spawn(fdfs_tracker::http::run(web, tracker, stop.clone()));

    // A storage whose port answers nothing: its binlog size counts as -1
    // and it still becomes the trunk server, the only ACTIVE member.
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let now = fdfs_tracker::now_secs();
    let join = fdfs_proto::tracker_msg::JoinReq {
        storage_port: closed_port,
        join_time: now,
        up_time: now,
        tracker_ip: "127.0.0.1".into(),
        trackers: vec![proto_addr.to_string()],
        ..fdfs_testkit::join_req()
    };
    let mut body = bytes::BytesMut::new();
    join.encode(&mut body);
    let mut s = TcpStream::connect(proto_addr).await.unwrap();
    assert_eq!(raw_call(&mut s, C::StorageJoin.into(), &body).await.0, 0);
    assert_eq!(
        raw_call(&mut s, C::StorageSyncDestReq.into(), &[]).await.0,
        0
    );
    let mut trunk_flag = false;
    let start = std::time::Instant::now();
    while !trunk_flag && start.elapsed() < DEADLINE {
        let (status, answer) = raw_call(&mut s, C::StorageBeat.into(), &[]).await;
        assert_eq!(status, 0);
        trunk_flag = answer.first().is_some_and(|f| f & 2 != 0);
        if !trunk_flag {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(trunk_flag, "appointed and announced in a heartbeat answer");
    let free = 77i64.to_be_bytes();
    assert_eq!(
        raw_call(&mut s, C::StorageReportTrunkFree.into(), &free)
            .await
            .0,
        0
    );

    let (_, page) = http(web_addr, &get("/metrics")).await;
    assert!(
        page.contains("fastdfs_group_trunk_free_mb{group=\"group1\"} 77\n"),
        "{page}"
    );
    assert!(
        page.contains("fastdfs_storage_is_trunk_server{group=\"group1\",storage_id=\"127.0.0.1\""),
        "{page}"
    );
    assert!(
        page.lines()
            .any(|l| l.starts_with("fastdfs_storage_is_trunk_server{") && l.ends_with("} 1")),
        "{page}"
    );
    stop.cancel();
    drop(s);
    tokio::time::timeout(DEADLINE, web_task)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(DEADLINE, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
