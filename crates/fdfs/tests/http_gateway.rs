//! The HTTP gateway inside the real binary: `fdfs server --http-port` and
//! `fdfs storage -c storage.conf` (http.server_port, with a
//! mod_fastdfs.conf beside it), plus `fdfs token` URLs accepted by it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fdfs_client::{Client, UploadKind, UploadOptions};
use fdfs_proto::FileId;
use fdfs_testkit::gateway::GatewayConfs;
use fdfs_testkit::http::http_get_then_eof;
use fdfs_testkit::{drop_from_page_cache, free_port, tracker_client, ProcessGuard};

const DEADLINE: Duration = Duration::from_secs(20);

fn fdfs(args: &[&str]) -> ProcessGuard {
    ProcessGuard::spawn(env!("CARGO_BIN_EXE_fdfs"), args, Stdio::null())
}

/// GET over a fresh connection; (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    get_with(port, path, "Connection: close\r\n")
}

/// GET as a keep-alive client sends it (the gateway's fast path), then
/// end of input so the server closes after answering.
fn http_get_keep_alive(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    get_with(port, path, "")
}

fn get_with(port: u16, path: &str, extra_headers: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let reply = http_get_then_eof(("127.0.0.1", port), path, extra_headers)?;
    Ok((reply.status, reply.body))
}

/// Uploads through the tracker, retrying until the storage is ready.
fn upload(tracker_port: u16, data: &[u8]) -> String {
    let (rt, client) = client(tracker_port);
    upload_with(&rt, &client, data, false).to_string()
}

fn client(tracker_port: u16) -> (tokio::runtime::Runtime, Client) {
    tracker_client(tracker_port, Duration::from_secs(5))
}

fn upload_with(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    data: &[u8],
    appender: bool,
) -> FileId {
    let opts = UploadOptions {
        ext: Some("txt".into()),
        kind: if appender {
            UploadKind::Appender
        } else {
            UploadKind::Normal
        },
        ..Default::default()
    };
    let end = Instant::now() + DEADLINE;
    loop {
        match rt.block_on(client.upload_buffer(data, &opts)) {
            Ok(id) => return id,
            Err(e) => assert!(Instant::now() < end, "upload never succeeded: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_healthy(port: u16) {
    let end = Instant::now() + DEADLINE;
    while !http_get(port, "/healthz").is_ok_and(|(s, b)| s == 200 && b == b"ok\n") {
        assert!(Instant::now() < end, "gateway on {port} never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `fdfs server` on free ports in `base`, once its gateway answers;
/// (process, tracker port, HTTP port).
fn start_server(base: &Path) -> (ProcessGuard, u16, u16) {
    let (tp, sp, hp) = (free_port(), free_port(), free_port());
    let (tp_s, sp_s, hp_s) = (tp.to_string(), sp.to_string(), hp.to_string());
    let server = fdfs(&[
        "server",
        "--base-path",
        base.to_str().unwrap(),
        "--tracker-port",
        &tp_s,
        "--storage-port",
        &sp_s,
        "--http-port",
        &hp_s,
        "--log-level",
        "warn",
    ]);
    wait_healthy(hp);
    (server, tp, hp)
}

/// The gateway keeps hot files open; every change made through the
/// storage must show on the very next GET, on both of its paths (hyper's
/// for `Connection: close`, the fast one for keep-alive).
#[test]
fn kept_open_files_follow_every_change_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, tp, hp) = start_server(dir.path());
    let (rt, c) = client(tp);
    let get_both = |id: &FileId| {
        let url = format!("/{id}");
        let a = http_get(hp, &url).unwrap();
        let b = http_get_keep_alive(hp, &url).unwrap();
        assert_eq!(a, b, "both paths answer alike for {url}");
        a
    };

    let id = upload_with(&rt, &c, b"kept open", false);
    for _ in 0..3 {
        assert_eq!(get_both(&id), (200, b"kept open".to_vec()));
    }
    rt.block_on(c.delete_file(&id)).unwrap();
    assert_eq!(get_both(&id).0, 404, "a deleted file is gone at once");

    let app = upload_with(&rt, &c, b"ab", true);
    assert_eq!(get_both(&app), (200, b"ab".to_vec()));
    rt.block_on(c.append_buffer(&app, b"cd")).unwrap();
    assert_eq!(get_both(&app), (200, b"abcd".to_vec()));
    rt.block_on(c.modify_buffer(&app, 1, b"XY")).unwrap();
    assert_eq!(get_both(&app), (200, b"aXYd".to_vec()));
    rt.block_on(c.truncate(&app, 1)).unwrap();
    assert_eq!(get_both(&app), (200, b"a".to_vec()));
    rt.block_on(c.delete_file(&app)).unwrap();
    assert_eq!(get_both(&app).0, 404);
}

/// A file read from the disk is served whole and in ranges, on hyper's
/// path and on the fast one.
#[test]
fn a_file_out_of_the_page_cache_is_served_whole_and_in_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, tp, hp) = start_server(dir.path());
    let (rt, c) = client(tp);
    // More than one 256 KiB disk read.
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let id = upload_with(&rt, &c, &data, false);
    let url = format!("/{id}");
    let store_root = dir.path().join("storage");
    for extra in ["Connection: close\r\n", ""] {
        drop_from_page_cache(&store_root, &id.remote);
        let (status, body) = get_with(hp, &url, extra).unwrap();
        assert_eq!(status, 200, "headers {extra:?}");
        assert!(body == data, "whole file differs (headers {extra:?})");
        drop_from_page_cache(&store_root, &id.remote);
        let range = format!("Range: bytes=262000-266999\r\n{extra}");
        let (status, body) = get_with(hp, &url, &range).unwrap();
        assert_eq!(status, 206, "headers {range:?}");
        assert!(
            body == data[262_000..267_000],
            "range differs (headers {range:?})"
        );
    }
}

/// Files whose directories are out of the dentry cache: the path walk
/// runs on the blocking pool, on the fast path and on hyper's, and the
/// answers are the same.
#[test]
fn files_whose_path_walk_needs_the_disk_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, tp, hp) = start_server(dir.path());
    let (rt, c) = client(tp);
    let files: Vec<(FileId, Vec<u8>)> = (0..4u32)
        .map(|i| {
            let data: Vec<u8> = (0..70_000 + i).map(|b| (b % 253) as u8 ^ i as u8).collect();
            (upload_with(&rt, &c, &data, false), data)
        })
        .collect();
    fdfs_testkit::drop_dentry_cache();
    for (i, (id, data)) in files.iter().enumerate() {
        // Keep-alive requests take the fast path, the others hyper's.
        let extra = if i % 2 == 0 {
            ""
        } else {
            "Connection: close\r\n"
        };
        let (status, body) = get_with(hp, &format!("/{id}"), extra).unwrap();
        assert_eq!(status, 200, "{id} {extra:?}");
        assert!(body == *data, "{id}: body differs ({extra:?})");
    }
    fdfs_testkit::drop_dentry_cache();
    let (id, data) = &files[3];
    let (status, body) = get_with(hp, &format!("/{id}"), "Range: bytes=10-19\r\n").unwrap();
    assert_eq!((status, body.as_slice()), (206, &data[10..20]));
}

#[test]
fn fdfs_server_serves_http() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, tp, hp) = start_server(dir.path());
    let id = upload(tp, b"served over http");
    let (status, body) = http_get(hp, &format!("/{id}")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, b"served over http");
    let (status, _) = http_get(hp, "/group1/M00/00/00/../../../etc/passwd").unwrap();
    assert_eq!(status, 400);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn fdfs_storage_conf_serves_http_with_mod_fastdfs_conf_and_tokens() {
    let confs = GatewayConfs::write("reserved_storage_space = 1%\n", "");
    let (tp, hp) = (confs.tracker_port, confs.http_port);
    let conf = confs.conf_dir();
    write(
        &conf.join("http.conf"),
        "http.anti_steal.check_token = true\nhttp.anti_steal.token_ttl = 900\n\
         http.anti_steal.secret_key = S3cret\nhttp.mime_types_filename = mime.types\n\
         http.default_content_type = application/x-test\n",
    );
    write(&conf.join("mime.types"), "text/x-mine txt\n");
    let conf_path = |n: &str| conf.join(n).to_str().unwrap().to_string();
    let _tracker = fdfs(&["tracker", "-c", &conf_path("tracker.conf")]);
    let _storage = fdfs(&["storage", "-c", &conf_path("storage.conf")]);
    wait_healthy(hp);
    let id = upload(tp, b"guarded");

    let (status, _) = http_get(hp, &format!("/{id}")).unwrap();
    assert_eq!(status, 400, "no token");
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(["token", &id, "-c", &conf_path("mod_fastdfs.conf")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let signed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(signed.starts_with(&format!("/{id}?token=")), "{signed}");
    let (status, body) = http_get(hp, &signed).unwrap();
    assert_eq!((status, body.as_slice()), (200, b"guarded".as_slice()));

    // The same with --secret, and a URL that expired.
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(["token", &id, "--secret", "S3cret", "--ttl", "0"])
        .output()
        .unwrap();
    let forever = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(forever.ends_with("&ts=0"), "{forever}");
    assert_eq!(http_get(hp, &forever).unwrap().0, 200);
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args([
            "token",
            &id,
            "-c",
            &conf_path("mod_fastdfs.conf"),
            "--ttl",
            "1",
        ])
        .output()
        .unwrap();
    let short = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let ts: i64 = short.rsplit("ts=").next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now + 1 - 900 - ts).abs() <= 2, "{short}");
}
