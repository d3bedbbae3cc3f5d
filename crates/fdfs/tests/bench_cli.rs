//! `fdfs bench` against a spawned `fdfs server`: with `--server-pid` every
//! phase reports the server's CPU per operation, in text and in JSON, and a
//! pid that names no process stops the bench with a one-line message; a
//! kept connection the server closed while it idled is replaced, not
//! counted as a failed request; a failure names the server it met; a
//! closed stdout does not make it panic.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fdfs_testkit::{free_port, wait_until, ProcessGuard};

const DEADLINE: Duration = Duration::from_secs(60);
/// Enough work for the server to be charged many clock ticks (10 ms each).
const UPLOADS: &str = "1500";

fn fdfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run fdfs")
}

/// `fdfs server` (no HTTP) on free ports in `base`, once it takes uploads.
/// Its log goes to `base`'s sibling `server.log`, shown when it never does.
fn start_server(base: &Path, probe: &Path) -> (ProcessGuard, String) {
    let (tp, sp) = (free_port().to_string(), free_port().to_string());
    let log = base.with_file_name("server.log");
    let mut server = ProcessGuard::spawn(
        env!("CARGO_BIN_EXE_fdfs"),
        &[
            "server",
            "--base-path",
            base.to_str().unwrap(),
            "--tracker-port",
            &tp,
            "--storage-port",
            &sp,
            "--http-port",
            "0",
            "--log-level",
            "warn",
        ],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let tracker = format!("127.0.0.1:{tp}");
    let mut last_refusal = String::new();
    let up = wait_until(DEADLINE, || {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "fdfs server exited ({status}) before it took an upload: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let out = fdfs(&["upload", "--tracker", &tracker, probe.to_str().unwrap()]);
        last_refusal = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success()
    });
    assert!(
        up,
        "fdfs server did not take an upload in time; last refusal: {last_refusal}; server log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (server, tracker)
}

/// The value of `"key":<number>` in a one-line JSON object.
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let end = json[at..].find([',', '}'])? + at;
    json[at..end].parse().ok()
}

#[test]
fn server_pid_reports_server_cpu_per_operation() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.txt");
    std::fs::write(&probe, b"probe\n").unwrap();
    let (server, tracker) = start_server(&dir.path().join("data"), &probe);
    let pid = server.0.id().to_string();
    let ids = dir.path().join("ids.txt");
    let ids_arg = ids.to_str().unwrap();
    let common = ["--tracker", &tracker, "--concurrency", "8", "--quiet"];

    let out = fdfs(
        &[
            &["bench", "upload", "--count", UPLOADS, "--size", "65536"][..],
            &common,
            &["--ids", ids_arg, "--json", "--server-pid", &pid],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_number(&json, "ops"), Some(1500.0), "{json}");
    let per_op = json_number(&json, "server_cpu_us_per_op").expect(&json);
    let total_ms = json_number(&json, "server_cpu_ms").expect(&json);
    assert!(per_op > 0.0 && total_ms > 0.0, "{json}");
    // Total and per-operation figures agree.
    assert!((per_op * 1500.0 / 1000.0 - total_ms).abs() <= 0.1 + total_ms * 0.01);

    // Text output; the pid list also takes the comma form.
    let pids = format!("{pid},{pid}");
    let out = fdfs(
        &[
            &["bench", "download", "--ids", ids_arg, "--verify"][..],
            &common,
            &["--server-pid", &pids],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("server CPU: "))
        .unwrap_or_else(|| panic!("no server CPU line in {text}"));
    let per_op: f64 = line
        .split(", ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" µs/op"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"));
    assert!(per_op > 0.0, "{line}");

    // Without the option, no such figure.
    let out = fdfs(&[&["bench", "upload", "--count", "20", "--json"][..], &common].concat());
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("server_cpu"));

    // A reader gone before the report (`fdfs bench ... | head -0`) is no
    // reason to panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args([&["bench", "upload", "--count", "20"][..], &common].concat())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fdfs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{out:?}"
    );
}

#[test]
fn server_pid_of_no_process_fails_with_one_line() {
    // Above the kernel's pid_max (at most 2^22): names no process.
    let out = fdfs(&[
        "bench",
        "upload",
        "--tracker",
        "127.0.0.1:1",
        "--count",
        "1",
        "--quiet",
        "--server-pid",
        "2147483647",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("fdfs bench: --server-pid 2147483647: /proc/2147483647/stat: "));
}

/// A tracker in front of `tracker` that answers one request per connection
/// and then closes it, as a server does to an idle client whose slot it
/// gives to a new one at `max_connections`. Returns its address.
fn one_answer_per_connection(tracker: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tracker = tracker.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                let _ = relay_one(&mut client, &tracker);
            });
        }
    });
    addr
}

/// Header (8-byte length, command, status) and body, read whole.
fn read_packet(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut packet = vec![0u8; 10];
    s.read_exact(&mut packet)?;
    let len = u64::from_be_bytes(packet[..8].try_into().unwrap());
    packet.resize(10 + usize::try_from(len).unwrap(), 0);
    s.read_exact(&mut packet[10..])?;
    Ok(packet)
}

fn relay_one(client: &mut TcpStream, tracker: &str) -> std::io::Result<()> {
    let request = read_packet(client)?;
    let mut upstream = TcpStream::connect(tracker)?;
    upstream.write_all(&request)?;
    let answer = read_packet(&mut upstream)?;
    client.write_all(&answer)
    // Both connections close here.
}

#[test]
fn kept_connection_closed_by_the_server_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.txt");
    std::fs::write(&probe, b"probe\n").unwrap();
    let (_server, tracker) = start_server(&dir.path().join("data"), &probe);
    let closing = one_answer_per_connection(&tracker);
    let ids = dir.path().join("ids.txt");
    let ids_arg = ids.to_str().unwrap();
    // One worker: every request after the first finds its kept tracker
    // connection closed by the server.
    let common = [
        "--tracker",
        closing.as_str(),
        "--concurrency",
        "1",
        "--quiet",
    ];

    let out = fdfs(
        &[
            &["bench", "upload", "--count", "20", "--size", "4096"][..],
            &common,
            &["--ids", ids_arg, "--json"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_number(&json, "ops"), Some(20.0), "{json}");
    assert_eq!(json_number(&json, "errors"), Some(0.0), "{json}");

    let out = fdfs(
        &[
            &["bench", "download", "--ids", ids_arg, "--verify", "--json"][..],
            &common,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_number(&json, "ops"), Some(20.0), "{json}");
    assert_eq!(json_number(&json, "errors"), Some(0.0), "{json}");
}

#[test]
fn unreachable_tracker_is_named_in_the_error() {
    // Nothing listens on a port just freed.
    let tracker = format!("127.0.0.1:{}", free_port());
    let out = fdfs(&[
        "bench",
        "upload",
        "--tracker",
        &tracker,
        "--count",
        "1",
        "--quiet",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("fdfs bench: tracker {tracker}: network error: "))
            && first.contains("refused"),
        "{err}"
    );
}
