//! HTTPS on the gateway port (#12.7b): `http.tls.certificate` and
//! `http.tls.certificate_key` in the http.conf that mod_fastdfs.conf
//! includes. A self-signed certificate is made with the `openssl` CLI and
//! files are fetched with `curl` (both must be installed: the test fails,
//! never skips, without them).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fdfs_client::{Client, ClientOptions, UploadOptions};
use fdfs_config::TrackerAddr;
use fdfs_testkit::gateway::GatewayConfs;
use fdfs_testkit::{wait_until, ProcessGuard};

const DEADLINE: Duration = Duration::from_secs(60);

fn spawn(args: &[&str]) -> ProcessGuard {
    ProcessGuard::spawn(env!("CARGO_BIN_EXE_fdfs"), args, Stdio::null())
}

/// A self-signed certificate for 127.0.0.1: (certificate, key) paths.
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl CLI must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `curl` over HTTPS trusting only `cert`: (status, body).
fn curl(cert: &Path, url: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-w", "%{http_code}", "-o"])
        .arg(body.path())
        .arg("--cacert")
        .arg(cert)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl must be installed");
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read(body.path()).unwrap())
}

#[test]
fn the_gateway_serves_https_with_ranges_and_refuses_plain_http() {
    let confs = GatewayConfs::write("reserved_storage_space = 1%\n", "");
    let (tp, hp) = (confs.tracker_port, confs.http_port);
    let conf = confs.conf_dir();
    let (cert, _key) = self_signed(&conf);
    // Relative names: taken from the conf's directory.
    std::fs::write(
        conf.join("http.conf"),
        "http.tls.certificate = cert.pem\nhttp.tls.certificate_key = key.pem\n",
    )
    .unwrap();
    let conf_path = |n: &str| conf.join(n).to_str().unwrap().to_string();
    let _tracker = spawn(&["tracker", "-c", &conf_path("tracker.conf")]);
    let _storage = spawn(&["storage", "-c", &conf_path("storage.conf")]);
    let base = format!("https://127.0.0.1:{hp}");
    assert!(
        wait_until(DEADLINE, || curl(&cert, &format!("{base}/healthz"), &[])
            == (200, b"ok\n".to_vec())),
        "the gateway never answered over HTTPS"
    );

    let rt = fdfs_testkit::rt();
    let client = Client::new(ClientOptions {
        trackers: vec![TrackerAddr {
            hosts: vec!["127.0.0.1".into()],
            port: tp,
        }],
        ..ClientOptions::default()
    })
    .unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let mut uploaded = None;
    assert!(
        wait_until(DEADLINE, || {
            uploaded = rt
                .block_on(client.upload_buffer(&data, &UploadOptions::default()))
                .ok();
            uploaded.is_some()
        }),
        "the storage never took an upload"
    );
    let id = uploaded.unwrap();
    let url = format!("{base}/{id}");
    assert_eq!(curl(&cert, &url, &[]), (200, data.clone()));
    assert_eq!(
        curl(&cert, &url, &["-H", "Range: bytes=1000-1999"]),
        (206, data[1000..2000].to_vec())
    );
    assert_eq!(
        curl(&cert, &url, &["-H", "Range: bytes=-10"]),
        (206, data[data.len() - 10..].to_vec())
    );
    // Keep-alive: the second request reuses the TLS connection.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "--cacert"])
        .arg(&cert)
        .args(["-o", "/dev/null", "-o", "/dev/null"])
        .args(["-w", "%{http_code}:%{num_connects} ", &url, &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200:1 200:0");

    // A client that does not trust the certificate gets nothing.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "000");

    // Plain HTTP to the TLS port: 400, then the connection ends.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", hp)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(format!("GET /{id} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}
