//! Restarts of the real binary: `fdfs server` stopped with SIGTERM and
//! started again at once on the same ports keeps its files and never fails
//! with "address already in use"; the classic `fdfs_storaged <conf>
//! start|stop|restart` front end does the same through its pid file. And
//! the server keeps answering while whole-file checksums run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::{Conn, StorageClient, UploadKind};
use fdfs_proto::storage_msg::UploadReq;
use fdfs_proto::{StorageCmd, TrackerCmd};
use fdfs_testkit::{free_port, rt, PidFileGuard, ProcessGuard};

/// Generous: a fresh server first lays out its data directories, which
/// takes tens of seconds on a disk that other tests keep busy.
const DEADLINE: Duration = Duration::from_secs(60);

/// Polls until the tracker hands out a storage for uploads and that
/// storage answers.
fn wait_ready(tracker_port: u16) {
    let end = Instant::now() + DEADLINE;
    let rt = rt();
    loop {
        let ok = rt.block_on(async {
            let Ok(mut t) = Conn::connect(
                &format!("127.0.0.1:{tracker_port}"),
                Duration::from_secs(1),
                Duration::from_secs(2),
            )
            .await
            else {
                return false;
            };
            let Ok(body) = t
                .call(TrackerCmd::QueryStoreWithoutGroupOne.into(), &[])
                .await
            else {
                return false;
            };
            let Ok(target) = fdfs_proto::tracker_msg::StoreTarget::decode(&body) else {
                return false;
            };
            match Conn::connect(
                &target.addr.to_string(),
                Duration::from_secs(1),
                Duration::from_secs(2),
            )
            .await
            {
                Ok(mut s) => s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.is_ok(),
                Err(_) => false,
            }
        });
        if ok {
            return;
        }
        assert!(Instant::now() < end, "server did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn storage_at(storage_port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], storage_port))
}

fn upload(storage_port: u16, data: &[u8]) -> String {
    rt().block_on(async {
        let mut c = fdfs_testkit::connect(storage_at(storage_port)).await;
        let mut src = data;
        StorageClient::new(&mut c)
            .upload(UploadKind::Normal, -1, "bin", &mut src, data.len() as u64)
            .await
            .unwrap()
            .remote
    })
}

fn download(storage_port: u16, remote: &str) -> Vec<u8> {
    rt().block_on(async {
        let mut c = fdfs_testkit::connect(storage_at(storage_port)).await;
        let mut out = Vec::new();
        StorageClient::new(&mut c)
            .download("group1", remote, 0, 0, &mut out)
            .await
            .unwrap();
        out
    })
}

fn start_server(base: &Path, tracker_port: u16, storage_port: u16) -> ProcessGuard {
    ProcessGuard(
        Command::new(env!("CARGO_BIN_EXE_fdfs"))
            .arg("server")
            .arg("--base-path")
            .arg(base)
            .arg("--tracker-port")
            .arg(tracker_port.to_string())
            .arg("--storage-port")
            .arg(storage_port.to_string())
            .arg("--http-port")
            .arg("0")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fdfs server"),
    )
}

fn terminate(server: &mut ProcessGuard) -> std::process::ExitStatus {
    server
        .terminate()
        .expect("server did not stop after SIGTERM")
}

#[test]
fn server_restart_keeps_files_and_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp) = (free_port(), free_port());
    let mut server = start_server(dir.path(), tp, sp);
    wait_ready(tp);
    let remote = upload(sp, b"survives restarts");
    // Keep a client connected across the stop: shutdown must not hang on it.
    let idle = std::net::TcpStream::connect(("127.0.0.1", sp)).unwrap();
    let status = terminate(&mut server);
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    drop(idle);

    for round in 0..2 {
        let mut server = start_server(dir.path(), tp, sp);
        wait_ready(tp);
        assert_eq!(download(sp, &remote), b"survives restarts", "round {round}");
        let status = terminate(&mut server);
        assert!(status.success(), "round {round}: {status:?}");
    }
}

/// tracker.conf and storage.conf for daemons on `tp` and `sp` under `dir`
/// (bases `dir/tracker`, `dir/storage`, the store path being the storage
/// base), each with `extra` lines appended.
fn write_confs(
    dir: &Path,
    tp: u16,
    sp: u16,
    tracker_extra: &str,
    storage_extra: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let tracker_conf = dir.join("tracker.conf");
    std::fs::write(
        &tracker_conf,
        format!(
            "bind_addr = 127.0.0.1\nport = {tp}\nbase_path = {}\nreserved_storage_space = 1%\n{tracker_extra}",
            dir.join("tracker").display()
        ),
    )
    .unwrap();
    let storage_conf = dir.join("storage.conf");
    std::fs::write(
        &storage_conf,
        format!(
            "group_name = group1\nbind_addr = 127.0.0.1\nport = {sp}\nbase_path = {base}\n\
             store_path0 = {base}\nsubdir_count_per_path = 2\ntracker_server = 127.0.0.1:{tp}\n\
             heart_beat_interval = 1\nstat_report_interval = 1\nhttp.server_port = 0\n{storage_extra}",
            base = dir.join("storage").display()
        ),
    )
    .unwrap();
    (tracker_conf, storage_conf)
}

#[test]
fn classic_storaged_start_stop_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp) = (free_port(), free_port());
    std::fs::create_dir_all(dir.path().join("tracker")).unwrap();
    std::fs::create_dir_all(dir.path().join("storage")).unwrap();
    let (tracker_conf, storage_conf) = write_confs(dir.path(), tp, sp, "", "");
    let storage_base = dir.path().join("storage");
    let bin_dir = classic_bin_dir(dir.path());
    // Declared after `dir`, so they drop (and stop the daemons) before it.
    let _tracker = PidFileGuard(dir.path().join("tracker/data/fdfs_trackerd.pid"));
    let _storage = PidFileGuard(storage_base.join("data/fdfs_storaged.pid"));
    let run = |name: &str, conf: &Path, action: &str| {
        let out = Command::new(bin_dir.join(name))
            .arg(conf)
            .arg(action)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} {action}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("fdfs_trackerd", &tracker_conf, "start");
    run("fdfs_storaged", &storage_conf, "start");
    let pid_file = storage_base.join("data/fdfs_storaged.pid");
    assert!(pid_file.exists());
    wait_ready(tp);
    let remote = upload(sp, b"classic daemons");
    run("fdfs_storaged", &storage_conf, "restart");
    wait_ready(tp);
    assert_eq!(download(sp, &remote), b"classic daemons");
    run("fdfs_storaged", &storage_conf, "stop");
    assert!(!pid_file.exists(), "pid file removed on stop");
    // Stopped and at once started again: the port is free.
    run("fdfs_storaged", &storage_conf, "start");
    wait_ready(tp);
    run("fdfs_storaged", &storage_conf, "stop");
    run("fdfs_trackerd", &tracker_conf, "stop");
}

/// `dir/bin` holding the binary under its classic daemon names.
fn classic_bin_dir(dir: &Path) -> std::path::PathBuf {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for name in ["fdfs_trackerd", "fdfs_storaged"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fdfs"), bin_dir.join(name)).unwrap();
    }
    bin_dir
}

/// A pid file holding -1 or 0 names no process: kill(2) would read them as
/// "every process we may signal" and "our own process group". `stop` fails
/// cleanly instead and signals nothing.
#[test]
fn classic_stop_with_a_bogus_pid_file_signals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage_data = dir.path().join("storage/data");
    std::fs::create_dir_all(&storage_data).unwrap();
    let (_, storage_conf) = write_confs(dir.path(), free_port(), free_port(), "", "");
    let bin_dir = classic_bin_dir(dir.path());
    let mut bystander = ProcessGuard(Command::new("sleep").arg("600").spawn().unwrap());
    let pid_file = storage_data.join("fdfs_storaged.pid");
    for bogus in ["-1", "0"] {
        std::fs::write(&pid_file, format!("{bogus}\n")).unwrap();
        let out = Command::new(bin_dir.join("fdfs_storaged"))
            .arg(&storage_conf)
            .arg("stop")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "pid {bogus}: {out:?}");
        assert!(stderr.contains("not running"), "pid {bogus}: {stderr}");
        assert!(
            bystander.0.try_wait().unwrap().is_none(),
            "pid {bogus}: a bystander process was signalled"
        );
    }
}

/// Files under `<store>/data/HH/HH/` (the names clients can ask for).
fn stored_files(store: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let data = store.join("data");
    for hi in std::fs::read_dir(&data).unwrap().flatten() {
        let name = hi.file_name().to_string_lossy().into_owned();
        if name.len() != 2 || !hi.path().is_dir() {
            continue;
        }
        for lo in std::fs::read_dir(hi.path()).unwrap().flatten() {
            for f in std::fs::read_dir(lo.path()).unwrap().flatten() {
                out.push(f.path());
            }
        }
    }
    out
}

#[test]
fn killed_mid_upload_leaves_no_partial_file() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp) = (free_port(), free_port());
    let mut server = start_server(dir.path(), tp, sp);
    wait_ready(tp);
    let done = upload(sp, b"complete before the crash");

    // Start a 4 MiB upload, send half of it, then SIGKILL the server.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", sp)).unwrap();
    let size: u64 = 4 << 20;
    let mut head = BytesMut::new();
    fdfs_proto::Header::new(StorageCmd::UploadFile.into(), 15 + size as usize).encode(&mut head);
    UploadReq {
        store_path_index: -1,
        file_size: size,
        ext: "bin".into(),
    }
    .encode_head(&mut head);
    raw.write_all(&head).unwrap();
    raw.write_all(&vec![9u8; (size / 2) as usize]).unwrap();
    let tmp = dir.path().join("storage/data/.tmp");
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || std::fs::read_dir(&tmp)
            .map(|d| d.count() == 1)
            .unwrap_or(false)),
        "the upload is in progress in .tmp"
    );
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(raw);

    let mut server = start_server(dir.path(), tp, sp);
    wait_ready(tp);
    let store = dir.path().join("storage");
    let files = stored_files(&store);
    assert_eq!(
        files.len(),
        1,
        "only the completed upload is stored: {files:?}"
    );
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        b"complete before the crash"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "start-up empties .tmp"
    );
    let binlog = std::fs::read_to_string(store.join("data/sync/binlog.000")).unwrap();
    assert_eq!(binlog.lines().count(), 1, "{binlog}");
    assert_eq!(download(sp, &done), b"complete before the crash");
    terminate(&mut server);
}

/// A huge appender made of holes: nothing on disk, but reading and summing
/// it takes far longer than the answers below may take.
const SPARSE_APPENDER_BYTES: u64 = 64 << 30;
/// Whole-file checksums kept in flight at once: more than the runtime has
/// workers.
const CHECKSUMS_IN_FLIGHT: usize = 4;
/// How long ACTIVE_TEST and QUERY_STORE may take meanwhile: "at once" on a
/// loaded 2-CPU machine, and far below what one checksum takes.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// QUERY_FILE_INFO of an appender sums the whole file. With several of
/// them in flight on a huge sparse appender the storage still answers
/// ACTIVE_TEST and the tracker QUERY_STORE at once: the sums run off the
/// runtime's workers, and the tracker of `fdfs server` has its own.
#[test]
fn server_answers_while_whole_file_checksums_run() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp) = (free_port(), free_port());
    let mut server = start_server(dir.path(), tp, sp);
    wait_ready(tp);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = format!("127.0.0.1:{sp}");
        let connect = || Conn::connect(&storage, Duration::from_secs(2), DEADLINE);
        let mut c = connect().await.unwrap();
        let id = StorageClient::new(&mut c)
            .upload(UploadKind::Appender, -1, "bin", &mut &b"x"[..], 1)
            .await
            .unwrap();
        StorageClient::new(&mut c)
            .truncate(&id.remote, SPARSE_APPENDER_BYTES)
            .await
            .unwrap();
        let mut in_flight = Vec::new();
        for _ in 0..CHECKSUMS_IN_FLIGHT {
            let mut c = connect().await.unwrap();
            let remote = id.remote.clone();
            in_flight.push(tokio::spawn(async move {
                StorageClient::new(&mut c)
                    .query_file_info("group1", &remote, 0)
                    .await
            }));
        }
        tokio::task::yield_now().await;

        let started = Instant::now();
        let tracker = format!("127.0.0.1:{tp}");
        tokio::time::timeout(ANSWER_WITHIN, async {
            let mut t = Conn::connect(&tracker, Duration::from_secs(2), DEADLINE)
                .await
                .unwrap();
            t.call(TrackerCmd::QueryStoreWithoutGroupOne.into(), &[])
                .await
                .unwrap();
        })
        .await
        .expect("the tracker did not answer QUERY_STORE while checksums ran");
        tokio::time::timeout(ANSWER_WITHIN, async {
            c.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
        })
        .await
        .expect("the storage did not answer ACTIVE_TEST while checksums ran");
        eprintln!(
            "answered in {:?}; checksums still running: {}",
            started.elapsed(),
            in_flight.iter().filter(|h| !h.is_finished()).count()
        );
        for h in in_flight {
            h.abort();
        }
    });
    // Stops the checksums with the server (they would burn CPU for
    // minutes under the tests that follow).
    server.0.kill().unwrap();
    server.0.wait().unwrap();
}

/// uid and gid lines of /proc/PID/status: (real, effective, saved, fs).
fn process_ids(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    (ids("Uid:"), ids("Gid:"))
}

/// `run_by_user` / `run_by_group`: a tracker and a storage started as root
/// bind, create their directories for the user, drop to it for good, and
/// still store and serve files, all of them owned by that user.
#[test]
fn daemons_drop_to_run_by_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert!(
        std::fs::metadata("/proc/self").unwrap().uid() == 0,
        "this test switches users and must run as root (as CI does)"
    );
    // nobody:nogroup, present on every Debian system.
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (tp, sp) = (free_port(), free_port());
    let (tracker_conf, storage_conf) = write_confs(
        dir.path(),
        tp,
        sp,
        "run_by_user = nobody\nrun_by_group = nogroup\n",
        "run_by_user = nobody\n",
    );
    let (tracker_base, storage_base) = (dir.path().join("tracker"), dir.path().join("storage"));
    let daemon = |role: &str, conf: &Path| {
        ProcessGuard(
            Command::new(env!("CARGO_BIN_EXE_fdfs"))
                .args([role, "-c"])
                .arg(conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let tracker = daemon("tracker", &tracker_conf);
    let storage = daemon("storage", &storage_conf);
    wait_ready(tp);

    for (role, pid) in [("tracker", tracker.0.id()), ("storage", storage.0.id())] {
        let (uids, gids) = process_ids(pid);
        assert_eq!(
            uids, [NOBODY; 4],
            "{role}: real, effective, saved and fs uid"
        );
        assert_eq!(gids, [NOBODY; 4], "{role}: gids (nogroup)");
    }
    let remote = upload(sp, b"stored by nobody");
    assert_eq!(download(sp, &remote), b"stored by nobody");
    let stored = stored_files(&storage_base);
    assert_eq!(stored.len(), 1, "{stored:?}");
    for path in [
        tracker_base.join("data/storage_groups_new.dat"),
        // Opened before the drop; rotation and SIGUSR1 need them.
        tracker_base.join("logs"),
        tracker_base.join("logs/trackerd.log"),
        storage_base.join("logs/storaged.log"),
        storage_base.clone(),
        storage_base.join("data/.data_init_flag"),
        storage_base.join("data/00/00"),
        stored[0].clone(),
    ] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (NOBODY, NOBODY),
            "{}",
            path.display()
        );
    }
}
