//! Logs and live reload of the real binary started from a conf file:
//! `base_path/logs/trackerd.log` at `log_level` in the original's line
//! format, size rotation, SIGUSR1 after logrotate's move, and SIGHUP
//! applying log_level, log_format and allow_hosts (checked with our client
//! and py3fdfs), keeping the old settings on a broken conf, and naming the
//! keys that need a restart.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fdfs_client::Conn;
use fdfs_proto::TrackerCmd;
use fdfs_testkit::gateway::GatewayConfs;
use fdfs_testkit::{free_port, rt, ProcessGuard};

/// Generous: the machine is shared and loaded.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

struct Tracker {
    dir: tempfile::TempDir,
    port: u16,
    process: ProcessGuard,
}

fn conf_text(base: &Path, port: u16, extra: &str) -> String {
    format!(
        "base_path = {}\nport = {port}\nbind_addr = 127.0.0.1\nmax_connections = 64\n{extra}\n",
        base.display()
    )
}

impl Tracker {
    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("tracker.conf")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir().join("trackerd.log")
    }

    /// Starts `fdfs tracker -c` on a conf with `extra` lines and waits for
    /// its pid file.
    fn start(extra: &str) -> Tracker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("tracker.conf"),
            conf_text(dir.path(), port, extra),
        )
        .unwrap();
        let process = ProcessGuard(
            Command::new(env!("CARGO_BIN_EXE_fdfs"))
                .arg("tracker")
                .arg("-c")
                .arg(dir.path().join("tracker.conf"))
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start fdfs tracker"),
        );
        let t = Tracker { dir, port, process };
        let pid_file = t.dir.path().join("data/fdfs_trackerd.pid");
        wait_for("the pid file", || pid_file.is_file());
        t
    }

    fn rewrite_conf(&self, extra: &str) {
        std::fs::write(
            self.conf_path(),
            conf_text(self.dir.path(), self.port, extra),
        )
        .unwrap();
    }

    fn signal(&self, sig: i32) {
        assert!(fdfs_util::sys::send_signal(self.process.0.id() as i32, sig));
    }

    /// The current log file's text.
    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The text of every log file (current and rotated).
    fn all_logs(&self) -> String {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.log_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// Sends SIGHUP and waits until a line containing `marker` appears in
    /// the logs one more time than before.
    fn reload_until(&self, marker: &str) {
        let before = self.all_logs().matches(marker).count();
        self.signal(libc::SIGHUP);
        wait_for(marker, || self.all_logs().matches(marker).count() > before);
    }

    /// Our client: does the tracker answer a request from 127.0.0.1?
    fn answers_us(&self) -> bool {
        rt().block_on(async {
            let Ok(mut c) = Conn::connect(
                &format!("127.0.0.1:{}", self.port),
                Duration::from_secs(5),
                Duration::from_secs(5),
            )
            .await
            else {
                return false;
            };
            c.call(TrackerCmd::ServerListAllGroups.into(), &[])
                .await
                .is_ok()
        })
    }

    /// py3fdfs: `ok` when list_all_groups gets an answer, else the error.
    fn py3fdfs_says(&self) -> String {
        let client_conf = self.dir.path().join("client.conf");
        std::fs::write(
            &client_conf,
            format!(
                "connect_timeout = 5\nnetwork_timeout = 5\nbase_path = {}\ntracker_server = 127.0.0.1:{}\n",
                self.dir.path().display(),
                self.port
            ),
        )
        .unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/py3fdfs_list_groups.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(&client_conf)
            .output()
            .expect("python3 must be installed to run the py3fdfs checks");
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "py3fdfs script failed (is py3fdfs installed? `python3 -m pip install py3fdfs`)\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// `[YYYY-MM-DD HH:MM:SS] LEVEL - ` as the original writes.
fn original_format(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 22
        && b[0] == b'['
        && b[20] == b']'
        && b[1..20].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && line[21..].contains(" - ")
}

fn rotated_copies(dir: &Path, base: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix(base)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|stamp| {
                    let s = stamp.as_bytes();
                    s.len() >= 15
                        && s[..8].iter().all(u8::is_ascii_digit)
                        && s[8] == b'_'
                        && s[9..15].iter().all(u8::is_ascii_digit)
                })
        })
        .collect();
    out.sort();
    out
}

#[test]
fn log_file_level_filter_live_level_and_size_rotation() {
    let t = Tracker::start("log_level = warn\nallow_hosts = 127.0.0.2\n");
    assert!(t.log_path().is_file(), "no {}", t.log_path().display());
    // A refused connection is a warning: it must reach the file.
    wait_for("a refused-connection warning", || {
        let _ = std::net::TcpStream::connect(("127.0.0.1", t.port));
        t.log().contains("WARNING - connection refused")
    });
    let text = t.log();
    assert!(
        !text.contains(" INFO - "),
        "info lines at log_level=warn:\n{text}"
    );
    for line in text.lines() {
        assert!(original_format(line), "not the original's format: {line:?}");
    }

    // SIGHUP to info: the reload's own info line now shows.
    t.rewrite_conf("log_level = info\nallow_hosts = 127.0.0.2\nlog_file_rotate_on_size = 600\n");
    t.reload_until("configuration reloaded");
    assert!(t.all_logs().contains(" INFO - configuration reloaded"));

    // Each reload logs about 200 bytes: a few more pass 600.
    let logs = t.log_dir();
    wait_for("a size rotation", || {
        if rotated_copies(&logs, "trackerd.log").is_empty() {
            t.reload_until("configuration reloaded");
        }
        !rotated_copies(&logs, "trackerd.log").is_empty()
    });
    let copies = rotated_copies(&logs, "trackerd.log");
    let first = std::fs::read_to_string(logs.join(&copies[0])).unwrap();
    assert!(first.contains("WARNING - connection refused"), "{first}");
    assert!(
        first.len() >= 600,
        "rotated below the size: {}",
        first.len()
    );
    // The fresh file keeps receiving lines.
    t.reload_until("configuration reloaded");
    wait_for("lines in the fresh file", || {
        t.log().contains("configuration reloaded")
    });
    assert!(t.log().len() < first.len(), "{}", t.log());
}

#[test]
fn sigusr1_after_a_move_gives_a_new_file() {
    let t = Tracker::start("log_level = info\n");
    wait_for("the listening line", || {
        t.log().contains("tracker listening")
    });
    let moved = t.log_dir().join("trackerd.log.moved");
    std::fs::rename(t.log_path(), &moved).unwrap();
    t.signal(libc::SIGUSR1);
    wait_for("a new trackerd.log with the reopen line", || {
        t.log().contains("log files reopened")
    });
    assert!(std::fs::read_to_string(&moved)
        .unwrap()
        .contains("tracker listening"));
    // Later lines land in the new file, not the moved one.
    t.reload_until("configuration reloaded");
    assert!(t.log().contains("configuration reloaded"));
    assert!(!std::fs::read_to_string(&moved)
        .unwrap()
        .contains("configuration reloaded"));
}

#[test]
fn sighup_swaps_allow_hosts_for_our_client_and_py3fdfs() {
    let t = Tracker::start("log_level = info\nallow_hosts = 127.0.0.1\n");
    assert!(
        t.answers_us(),
        "our client refused by allow_hosts = 127.0.0.1"
    );
    assert_eq!(t.py3fdfs_says(), "ok");

    t.rewrite_conf("log_level = info\nallow_hosts = 127.0.0.2\n");
    t.reload_until("configuration reloaded");
    assert!(
        !t.answers_us(),
        "our client still served after allow_hosts = 127.0.0.2"
    );
    let py = t.py3fdfs_says();
    assert!(py.starts_with("refused"), "py3fdfs: {py}");
    assert!(t.log().contains("connection refused"));

    t.rewrite_conf("log_level = info\nallow_hosts = 127.0.0.1\n");
    t.reload_until("configuration reloaded");
    assert!(t.answers_us(), "our client not served again");
    assert_eq!(t.py3fdfs_says(), "ok");
}

#[test]
fn sighup_keeps_old_settings_on_a_broken_conf_and_names_restart_keys() {
    let t = Tracker::start("log_level = info\nallow_hosts = 127.0.0.1\nstore_lookup = 2\n");
    assert!(t.answers_us());

    // Unparsable value: nothing changes, one line says why.
    t.rewrite_conf("log_level = info\nallow_hosts = 127.0.0.2\nstore_lookup = many\n");
    t.reload_until("keeping the running settings");
    let line = t
        .log()
        .lines()
        .find(|l| l.contains("keeping the running settings"))
        .unwrap()
        .to_string();
    assert!(line.contains("store_lookup"), "{line}");
    assert!(t.answers_us(), "the old allow_hosts must stay");

    // Restart-only keys are named in one line; live ones apply, JSON too.
    t.rewrite_conf(
        "log_level = info\nallow_hosts = 127.0.0.1\nstore_lookup = 0\ncheck_active_interval = 50\nlog_format = json\n",
    );
    t.reload_until("need a restart");
    let text = t.log();
    let line = text.lines().find(|l| l.contains("need a restart")).unwrap();
    assert!(
        line.ends_with("need a restart to take effect: check_active_interval, store_lookup\"}"),
        "{line}"
    );
    assert!(
        line.starts_with("{\"time\":\"") && line.contains("\"level\":\"WARNING\""),
        "{line}"
    );
    assert!(t.answers_us());
}

/// GET over a fresh connection: (status, head, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let reply = fdfs_testkit::http::http_get(("127.0.0.1", port), path)?;
    Ok((reply.status, reply.head.to_ascii_lowercase(), reply.body))
}

fn client(tracker_port: u16) -> fdfs_client::Client {
    fdfs_client::Client::new(fdfs_client::ClientOptions {
        trackers: vec![fdfs_config::TrackerAddr {
            hosts: vec!["127.0.0.1".into()],
            port: tracker_port,
        }],
        connect_timeout: Duration::from_secs(5),
        network_timeout: Duration::from_secs(10),
        ..fdfs_client::ClientOptions::default()
    })
    .unwrap()
}

fn try_upload(tracker_port: u16, data: &[u8]) -> Result<String, fdfs_client::ClientError> {
    let opts = fdfs_client::UploadOptions {
        ext: Some("txt".into()),
        ..Default::default()
    };
    rt().block_on(client(tracker_port).upload_buffer(data, &opts))
        .map(|id| id.to_string())
}

fn signal(p: &ProcessGuard, sig: i32) {
    assert!(fdfs_util::sys::send_signal(p.0.id() as i32, sig));
}

fn spawn(args: &[&str]) -> ProcessGuard {
    ProcessGuard(
        Command::new(env!("CARGO_BIN_EXE_fdfs"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fdfs"),
    )
}

/// Sends SIGHUP to `p` and waits for one more `marker` in `log`.
fn reload(p: &ProcessGuard, log: &Path, marker: &str) {
    let count = || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches(marker)
            .count()
    };
    let before = count();
    signal(p, libc::SIGHUP);
    wait_for(marker, || count() > before);
}

/// A storage from storage.conf with mod_fastdfs.conf beside it: its log,
/// its access log rotated by size, and a SIGHUP that turns on the token
/// check and changes the mime table; a tracker SIGHUP that changes
/// reserved_storage_space changes where uploads may go.
#[test]
fn storage_logs_access_rotation_and_live_gateway_and_reserved_space() {
    let tracker_extra =
        |reserved: &str| format!("log_level = info\nreserved_storage_space = {reserved}\n");
    let confs = GatewayConfs::write(
        &tracker_extra("1%"),
        "log_level = info\n[access-log]\nenabled = true\nlog_file_rotate_on_size = 400\n",
    );
    let d = confs.dir();
    let (tp, hp) = (confs.tracker_port, confs.http_port);
    let conf = confs.conf_dir();
    let http_conf = |token: bool, mime: &str| {
        std::fs::write(
            conf.join("http.conf"),
            format!(
                "http.anti_steal.check_token = {token}\nhttp.anti_steal.token_ttl = 900\n\
                 http.anti_steal.secret_key = S3cret\nhttp.mime_types_filename = mime.types\n\
                 http.default_content_type = application/x-test\n"
            ),
        )
        .unwrap();
        std::fs::write(conf.join("mime.types"), format!("{mime} txt\n")).unwrap();
    };
    http_conf(false, "text/x-mine");
    let conf_path = |n: &str| conf.join(n).to_str().unwrap().to_string();
    let tracker = spawn(&["tracker", "-c", &conf_path("tracker.conf")]);
    let storage = spawn(&["storage", "-c", &conf_path("storage.conf")]);
    let tracker_log = d.join("tracker/logs/trackerd.log");
    let storage_logs = d.join("storage/logs");
    let storage_log = storage_logs.join("storaged.log");
    wait_for("the gateway", || {
        http_get(hp, "/healthz").is_ok_and(|(s, _, _)| s == 200)
    });
    wait_for("the storage's listening line", || {
        std::fs::read_to_string(&storage_log)
            .unwrap_or_default()
            .contains("storage server listening")
    });

    // Uploads until the access log (about 100 bytes a line) passes 400.
    let mut ids = Vec::new();
    wait_for("an access log rotation", || {
        if let Ok(id) = try_upload(tp, b"logged") {
            ids.push(id);
        }
        !rotated_copies(&storage_logs, "storage_access.log").is_empty()
    });
    let copies = rotated_copies(&storage_logs, "storage_access.log");
    let old = std::fs::read_to_string(storage_logs.join(&copies[0])).unwrap();
    assert!(old.contains(" upload "), "{old}");
    wait_for("the fresh access log's header", || {
        std::fs::read_to_string(storage_logs.join("storage_access.log"))
            .unwrap_or_default()
            .lines()
            .next()
            .is_some_and(|l| {
                l.ends_with("client_ip action filename status time_used_ms req_len resp_len")
            })
    });

    let id = ids[0].clone();
    let (status, head, body) = http_get(hp, &format!("/{id}")).unwrap();
    assert_eq!((status, body.as_slice()), (200, b"logged".as_slice()));
    assert!(head.contains("content-type: text/x-mine"), "{head}");

    // SIGHUP: tokens required, new mime table.
    http_conf(true, "text/x-other");
    reload(&storage, &storage_log, "configuration reloaded");
    assert_eq!(http_get(hp, &format!("/{id}")).unwrap().0, 400, "no token");
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(["token", &id, "-c", &conf_path("mod_fastdfs.conf")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let signed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, head, _) = http_get(hp, &signed).unwrap();
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/x-other"), "{head}");

    // Tracker SIGHUP: reserving all the space leaves no room for uploads.
    confs.write_tracker_conf(&tracker_extra("100000000G"));
    reload(&tracker, &tracker_log, "configuration reloaded");
    let err = try_upload(tp, b"no room").unwrap_err();
    assert!(
        err.to_string().contains("28") || err.to_string().to_lowercase().contains("space"),
        "{err}"
    );
    confs.write_tracker_conf(&tracker_extra("1%"));
    reload(&tracker, &tracker_log, "configuration reloaded");
    try_upload(tp, b"room again").unwrap();
}

/// `fdfs server` logs to stdout (a container's main process), here as
/// JSON lines, and writes no log file.
#[test]
fn fdfs_server_logs_json_lines_to_stdout() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp) = (free_port(), free_port());
    let mut server = ProcessGuard(
        Command::new(env!("CARGO_BIN_EXE_fdfs"))
            .args(["server", "--base-path"])
            .arg(dir.path())
            .args(["--tracker-port", &tp.to_string()])
            .args(["--storage-port", &sp.to_string()])
            .args(["--http-port", "0", "--log-format", "json"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fdfs server"),
    );
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let end = Instant::now() + DEADLINE;
    let line = loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("no log line on stdout");
        if line.contains("fdfs server starting") {
            break line;
        }
    };
    assert!(
        line.starts_with("{\"time\":\"") && line.ends_with('}'),
        "{line}"
    );
    assert!(line.contains("\"level\":\"INFO\""), "{line}");
    assert!(
        line.contains(&format!("\"tracker\":\"127.0.0.1:{tp}\"")),
        "{line}"
    );
    assert!(!dir.path().join("tracker/logs/trackerd.log").exists());
    server.terminate().expect("server did not stop");
}
