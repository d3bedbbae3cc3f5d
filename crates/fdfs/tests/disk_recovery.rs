//! Disk recovery (#12.4, PROTOCOL.md §5.6): a member whose store path comes
//! back empty rebuilds it from an ACTIVE peer before it serves, verifies
//! every copy against its file ID, resumes a stopped rebuild at its mark,
//! and keeps replicating afterwards; FETCH_ONE_PATH_BINLOG (26) streams
//! what the source holds.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdfs_client::{ClientError, Conn, StorageClient, UploadKind};
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::stat::storage_status;
use fdfs_proto::storage_msg::{recovery_phase, RecoveryProgress};
use fdfs_proto::{Header, Status, StorageCmd, HEADER_LEN};
use fdfs_testkit::group::{Group, GroupOptions};
use fdfs_testkit::{py3fdfs_download_check, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous for a loaded 2-CPU machine.
const DEADLINE: Duration = Duration::from_secs(60);
/// Files the rebuild tests upload.
const FILE_COUNT: usize = 2000;
const SOURCE: usize = 0;
const REBUILT: usize = 1;

/// A 2-member group whose store path is `<base>/store0`, so it can be
/// wiped while the base path (binlog, marks, identity) stays.
fn two_members(threads: u32) -> Group {
    let g = Group::start_with(GroupOptions {
        groups: vec![("group1", 2)],
        tweak_storage: Some(Arc::new(move |c| {
            c.store_paths = vec![c.base_path.join("store0")];
            c.disk_recovery_threads = threads;
        })),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE), "group never turned ACTIVE");
    g
}

fn store_root(g: &Group, i: usize) -> PathBuf {
    g.store_path(i).join("store0")
}

/// Content of the k-th file: 1-16 KB, distinct per file.
fn content(k: usize) -> Vec<u8> {
    let len = 1024 + (k * 7919) % (15 * 1024);
    (0..len).map(|b| (b * 31 + k * 17) as u8).collect()
}

async fn conn_to(g: &Group, i: usize) -> Conn {
    fdfs_testkit::connect(g.storage_addr(i)).await
}

/// A file's remote name and content.
type Uploaded = (String, Vec<u8>);

fn upload_all(g: &Group, i: usize, count: usize) -> Vec<Uploaded> {
    g.block_on(async {
        let mut c = conn_to(g, i).await;
        let mut out = Vec::with_capacity(count);
        for k in 0..count {
            let data = content(k);
            let id = StorageClient::new(&mut c)
                .upload(
                    UploadKind::Normal,
                    -1,
                    "bin",
                    &mut &data[..],
                    data.len() as u64,
                )
                .await
                .unwrap();
            out.push((id.remote, data));
        }
        out
    })
}

fn meta_of(k: usize) -> Vec<MetaPair> {
    vec![
        (b"index".to_vec(), k.to_string().into_bytes()),
        (b"kind".to_vec(), b"recovery-test".to_vec()),
    ]
}

fn set_meta(g: &Group, i: usize, remote: &str, meta: &[MetaPair]) {
    g.block_on(async {
        let mut c = conn_to(g, i).await;
        StorageClient::new(&mut c)
            .set_metadata("group1", remote, meta, MetaOp::Overwrite)
            .await
            .unwrap();
    })
}

async fn try_download(c: &mut Conn, remote: &str) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    StorageClient::new(c)
        .download("group1", remote, 0, 0, &mut out)
        .await?;
    Ok(out)
}

fn download(g: &Group, i: usize, remote: &str) -> Result<Vec<u8>, ClientError> {
    g.block_on(async {
        let mut c = fdfs_testkit::try_connect(g.storage_addr(i)).await?;
        try_download(&mut c, remote).await
    })
}

fn wipe(g: &Group, i: usize) {
    let root = store_root(g, i);
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::create_dir_all(&root).unwrap();
}

fn is_status(r: &Result<Vec<u8>, ClientError>, s: Status) -> bool {
    matches!(r, Err(ClientError::Status(got)) if *got == s)
}

/// Uploads, wipes the rebuilt member's path, restarts it and waits until
/// it is ACTIVE again; returns the files and the seconds the rebuild took.
/// While it rebuilds, every read it answers is EAGAIN or the right bytes.
fn rebuild_scenario(g: &mut Group) -> (Vec<Uploaded>, Vec<usize>, f64) {
    let files = upload_all(g, SOURCE, FILE_COUNT);
    let with_meta: Vec<usize> = (0..FILE_COUNT).step_by(50).collect();
    for &k in &with_meta {
        set_meta(g, SOURCE, &files[k].0, &meta_of(k));
    }
    // Replication is in binlog order: the last change arriving means all did.
    let last = upload_all(g, SOURCE, 1).remove(0);
    assert!(
        wait_until(DEADLINE, || download(g, REBUILT, &last.0).is_ok()),
        "the member never caught up before the wipe"
    );
    g.stop_storage(REBUILT);
    wipe(g, REBUILT);
    let started = Instant::now();
    g.start_storage(REBUILT);
    let probe = &files[FILE_COUNT - 1];
    let mut saw_eagain = false;
    // Progress is visible while the files are restored: from the storage
    // itself, and (asked at once, in the first half) in `fdfs monitor sync`.
    // Polled without pause: a rebuild of this size takes about a second.
    let mut mid_rebuild: Option<RecoveryProgress> = None;
    let mut monitor_report = String::new();
    let polling_until = Instant::now() + Duration::from_secs(300);
    while mid_rebuild.is_none() && Instant::now() < polling_until {
        match recovery_progress(g, REBUILT) {
            Ok(p) if p.phase == recovery_phase::RESTORING && p.records_done > 0 => {
                if p.records_done < p.records_total / 2 {
                    monitor_report = monitor_sync(g);
                }
                mid_rebuild = Some(p);
            }
            Ok(p) if p.phase == recovery_phase::DONE => break,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let monitor_line = monitor_report
        .lines()
        .find(|l| l.starts_with("    disk recovery: store path 0: "))
        .map(str::to_string);
    let done = wait_until(Duration::from_secs(300), || {
        let r = download(g, REBUILT, &probe.0);
        saw_eagain |= is_status(&r, Status::EAGAIN);
        match r {
            Ok(bytes) => {
                assert_eq!(bytes, probe.1, "served wrong bytes");
                g.status_on(0, REBUILT) == Some(storage_status::ACTIVE)
            }
            Err(e) => {
                assert!(
                    !matches!(e, ClientError::Status(s) if s == Status::ENOENT),
                    "a rebuilding member must not answer ENOENT"
                );
                false
            }
        }
    });
    assert!(done, "the wiped member never came back ACTIVE");
    let secs = started.elapsed().as_secs_f64();
    eprintln!("saw EAGAIN while rebuilding: {saw_eagain}");
    let mid = mid_rebuild.expect("progress seen mid-rebuild");
    // Every file, its metadata, and the last upload are records to restore.
    let records = (FILE_COUNT + with_meta.len() + 1) as u64;
    assert_eq!(mid.records_total, records, "{mid:?}");
    assert!(mid.files_restored <= mid.records_done, "{mid:?}");
    let line = monitor_line.unwrap_or_else(|| {
        panic!("`fdfs monitor sync` showed the rebuild's progress:\n{monitor_report}")
    });
    assert!(
        line.contains(&format!(" of {records} records (")) && line.contains(" files/s, "),
        "{line}"
    );
    eprintln!("mid-rebuild: {mid:?}\n{line}");
    // Once done, the storage still tells the totals of its last rebuild.
    let last = recovery_progress(g, REBUILT).expect("RECOVERY_PROGRESS after the rebuild");
    assert_eq!(last.phase, recovery_phase::DONE, "{last:?}");
    assert_eq!(
        (last.records_done, last.records_total, last.files_restored),
        (records, records, records),
        "{last:?}"
    );
    let restore_secs = (last.elapsed_ms as f64 / 1000.0).max(1e-3);
    println!(
        "disk recovery, storage's own figures: {} files, {:.1} MB restored in {restore_secs:.2} s: {:.0} files/s, {:.2} MB/s",
        last.files_restored,
        last.bytes_restored as f64 / 1e6,
        last.files_restored as f64 / restore_secs,
        last.bytes_restored as f64 / 1e6 / restore_secs
    );
    (files, with_meta, secs)
}

fn recovery_progress(g: &Group, i: usize) -> Result<RecoveryProgress, ClientError> {
    g.block_on(async {
        let mut c = fdfs_testkit::try_connect(g.storage_addr(i)).await?;
        StorageClient::new(&mut c).recovery_progress().await
    })
}

/// `fdfs monitor --tracker T sync group1`, as a user runs it.
fn monitor_sync(g: &Group) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args([
            "monitor",
            "--tracker",
            &g.tracker_addr.to_string(),
            "sync",
            "group1",
        ])
        .output()
        .expect("run fdfs monitor");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn rebuilt_from_the_peer(threads: u32) {
    let mut g = two_members(threads);
    let (files, with_meta, secs) = rebuild_scenario(&mut g);
    let bytes: usize = files.iter().map(|f| f.1.len()).sum();
    println!(
        "disk recovery, threads={threads}: {} files, {:.1} MB in {secs:.2} s (restart to ACTIVE): {:.0} files/s, {:.2} MB/s",
        files.len(),
        bytes as f64 / 1e6,
        files.len() as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    // Every file, from the rebuilt member itself.
    g.block_on(async {
        let mut c = conn_to(&g, REBUILT).await;
        let mut missing = Vec::new();
        for (k, (remote, data)) in files.iter().enumerate() {
            match try_download(&mut c, remote).await {
                Ok(got) => assert_eq!(&got, data, "{remote}"),
                Err(e) => missing.push(format!("{k} {remote} {e}")),
            }
        }
        assert!(
            missing.is_empty(),
            "{} missing: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        for &k in &with_meta {
            let got = StorageClient::new(&mut c)
                .get_metadata("group1", &files[k].0)
                .await
                .unwrap();
            assert_eq!(got, meta_of(k), "metadata of file {k}");
        }
    });
    // With the source stopped the tracker can only send py3fdfs to the
    // rebuilt member.
    g.stop_storage(SOURCE);
    let checked: Vec<(String, u32)> = files
        .iter()
        .step_by(10)
        .map(|(remote, data)| (format!("group1/{remote}"), crc32fast::hash(data)))
        .collect();
    assert_eq!(checked.len(), FILE_COUNT / 10);
    py3fdfs_download_check(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/py3fdfs_download_check.py"
        ),
        g.tracker_addr,
        &checked,
    );
    // Its binlog goes on: a change made on it alone reaches the source.
    let fresh = upload_all(&g, REBUILT, 1).remove(0);
    g.start_storage(SOURCE);
    assert!(
        wait_until(DEADLINE, || download(&g, SOURCE, &fresh.0).ok()
            == Some(fresh.1.clone())),
        "a change on the rebuilt member never reached its peer"
    );
}

#[test]
fn a_wiped_store_path_is_rebuilt_from_the_peer() {
    rebuilt_from_the_peer(1);
}

#[test]
fn a_wiped_store_path_is_rebuilt_from_the_peer_with_four_threads() {
    rebuilt_from_the_peer(4);
}

#[test]
fn a_peer_copy_that_does_not_match_its_file_id_is_not_restored() {
    let mut g = two_members(1);
    let mut files = upload_all(&g, SOURCE, 3);
    // Above the in-memory limit, checked through a temporary file: one
    // intact, one corrupted below.
    for k in 0..2 {
        let big: Vec<u8> = (0..3 * 1024 * 1024 + k).map(|b| (b % 251) as u8).collect();
        let id = g.block_on(async {
            let mut c = conn_to(&g, SOURCE).await;
            StorageClient::new(&mut c)
                .upload(
                    UploadKind::Normal,
                    -1,
                    "bin",
                    &mut &big[..],
                    big.len() as u64,
                )
                .await
                .unwrap()
        });
        files.push((id.remote, big));
    }
    assert!(wait_until(DEADLINE, || download(&g, REBUILT, &files[4].0).is_ok()));
    g.stop_storage(REBUILT);
    let big_bad = &files[4].0;
    let on_disk = store_root(&g, SOURCE).join("data").join(&big_bad[4..]);
    let mut bytes = std::fs::read(&on_disk).unwrap();
    bytes[1_000_000] ^= 0xFF;
    std::fs::write(&on_disk, &bytes).unwrap();
    // Same size, different bytes: only the CRC32 in its name tells.
    let bad = &files[1].0;
    let on_disk = store_root(&g, SOURCE).join("data").join(&bad[4..]);
    let mut bytes = std::fs::read(&on_disk).unwrap();
    bytes[0] ^= 0xFF;
    std::fs::write(&on_disk, &bytes).unwrap();
    wipe(&g, REBUILT);
    g.start_storage(REBUILT);
    assert!(
        wait_until(DEADLINE, || g.status_on(0, REBUILT)
            == Some(storage_status::ACTIVE)),
        "never came back ACTIVE"
    );
    assert_eq!(download(&g, REBUILT, &files[0].0).unwrap(), files[0].1);
    assert_eq!(download(&g, REBUILT, &files[2].0).unwrap(), files[2].1);
    assert_eq!(download(&g, REBUILT, &files[3].0).unwrap(), files[3].1);
    let r = download(&g, REBUILT, big_bad);
    assert!(
        is_status(&r, Status::ENOENT),
        "corrupt large copy restored: {:?}",
        r.map(|b| b.len())
    );
    let r = download(&g, REBUILT, bad);
    assert!(
        is_status(&r, Status::ENOENT),
        "corrupt copy restored: {:?}",
        r.map(|b| b.len())
    );
}

/// `records_done` of worker 0's mark, if the rebuild wrote one.
fn mark_records(g: &Group, i: usize) -> u64 {
    mark_records_in(&store_root(g, i))
}

fn mark_records_in(store: &std::path::Path) -> u64 {
    let mark = store.join("data/.recovery.mark.0");
    std::fs::read_to_string(mark)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("records_done="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The source's successful downloads as the tracker last heard them.
fn source_downloads(g: &Group) -> i64 {
    g.list_storages(0, "group1")
        .into_iter()
        .find(|s| s.ip_addr == g.storage_ip(SOURCE))
        .map(|s| s.stats.success_download_count)
        .unwrap_or(-1)
}

/// The source served each file about once since `before`: a rebuild that
/// started over would have fetched the first `done_first` files twice.
fn assert_served_about_once(g: &Group, before: i64, done_first: u64) {
    let mut last = -1;
    assert!(wait_until(DEADLINE, || {
        std::thread::sleep(Duration::from_millis(1500));
        let now = source_downloads(g);
        let stable = now == last && now - before >= FILE_COUNT as i64;
        last = now;
        stable
    }));
    let served = last - before;
    eprintln!("stopped at {done_first} records; the source served {served} downloads for {FILE_COUNT} files");
    assert!(
        served < (FILE_COUNT as i64) + 250,
        "served {served}: the rebuild started over instead of resuming"
    );
}

#[test]
fn a_stopped_rebuild_resumes_where_its_mark_stopped() {
    let mut g = two_members(1);
    let files = upload_all(&g, SOURCE, FILE_COUNT);
    assert!(wait_until(DEADLINE, || download(
        &g,
        REBUILT,
        &files[FILE_COUNT - 1].0
    )
    .is_ok()));
    g.stop_storage(REBUILT);
    wipe(&g, REBUILT);
    let before = source_downloads(&g);
    g.start_storage(REBUILT);
    assert!(
        wait_until(Duration::from_secs(300), || mark_records(&g, REBUILT)
            >= 500),
        "the rebuild never saved a mark"
    );
    g.stop_storage(REBUILT);
    let done_first = mark_records(&g, REBUILT);
    assert!(
        done_first < FILE_COUNT as u64,
        "the rebuild finished before the stop"
    );
    g.start_storage(REBUILT);
    assert!(
        wait_until(Duration::from_secs(300), || g.status_on(0, REBUILT)
            == Some(storage_status::ACTIVE)),
        "never came back ACTIVE"
    );
    for (remote, data) in files.iter().step_by(7) {
        assert_eq!(&download(&g, REBUILT, remote).unwrap(), data);
    }
    assert_served_about_once(&g, before, done_first);
}

#[test]
fn a_recovering_member_is_listed_recovery_and_answers_eagain_to_all_but_active_test() {
    let mut g = two_members(1);
    let files = upload_all(&g, SOURCE, 3);
    assert!(wait_until(DEADLINE, || download(&g, REBUILT, &files[2].0).is_ok()));
    g.stop_storage(REBUILT);
    // With its only peer down the rebuild waits, so the state can be seen.
    g.stop_storage(SOURCE);
    wipe(&g, REBUILT);
    g.start_storage(REBUILT);
    assert!(
        wait_until(DEADLINE, || g.status_on(0, REBUILT)
            == Some(storage_status::RECOVERY)),
        "the tracker never listed the member RECOVERY"
    );
    assert!(is_status(
        &download(&g, REBUILT, &files[0].0),
        Status::EAGAIN
    ));
    let upload = g.block_on(async {
        let mut c = conn_to(&g, REBUILT).await;
        StorageClient::new(&mut c)
            .upload(UploadKind::Normal, -1, "bin", &mut &b"x"[..], 1)
            .await
    });
    assert!(
        matches!(upload, Err(ClientError::Status(s)) if s == Status::EAGAIN),
        "{upload:?}"
    );
    g.block_on(async {
        let mut c = conn_to(&g, REBUILT).await;
        c.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
    });
    g.start_storage(SOURCE);
    assert!(
        wait_until(DEADLINE, || g.status_on(0, REBUILT)
            == Some(storage_status::ACTIVE)),
        "never came back ACTIVE once its peer was"
    );
    for (remote, data) in &files {
        assert_eq!(&download(&g, REBUILT, remote).unwrap(), data);
    }
}

#[test]
fn a_lone_member_with_a_wiped_path_starts_empty() {
    let mut g = Group::start_with(GroupOptions {
        groups: vec![("group1", 1)],
        tweak_storage: Some(Arc::new(|c| {
            c.store_paths = vec![c.base_path.join("store0")]
        })),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE));
    let files = upload_all(&g, 0, 2);
    g.stop_storage(0);
    wipe(&g, 0);
    g.start_storage(0);
    assert!(
        wait_until(DEADLINE, || g.status_on(0, 0)
            == Some(storage_status::ACTIVE)),
        "a lone member waited for a peer that does not exist"
    );
    assert!(is_status(&download(&g, 0, &files[0].0), Status::ENOENT));
    let fresh = upload_all(&g, 0, 1).remove(0);
    assert_eq!(download(&g, 0, &fresh.0).unwrap(), fresh.1);
}

#[test]
fn fetch_one_path_binlog_streams_what_the_path_holds_then_the_byte_count() {
    let g = Group::start(1);
    assert!(g.wait_all_active(DEADLINE));
    let files = upload_all(&g, 0, 3);
    set_meta(&g, 0, &files[0].0, &meta_of(0));
    g.block_on(async {
        let mut c = conn_to(&g, 0).await;
        StorageClient::new(&mut c)
            .delete("group1", &files[2].0)
            .await
            .unwrap();
    });
    let raw = g.block_on(async {
        let mut s = tokio::net::TcpStream::connect(g.storage_addr(0))
            .await
            .unwrap();
        let mut req = Header::new(StorageCmd::FetchOnePathBinlog.into(), 17)
            .to_bytes()
            .to_vec();
        let mut group = [0u8; 16];
        group[..6].copy_from_slice(b"group1");
        req.extend_from_slice(&group);
        req.push(0);
        s.write_all(&req).await.unwrap();
        let mut all = Vec::new();
        // The answer ends with the connection.
        tokio::time::timeout(DEADLINE, s.read_to_end(&mut all))
            .await
            .unwrap()
            .unwrap();
        all
    });
    let header = Header::from_bytes(raw[..HEADER_LEN].try_into().unwrap());
    assert_eq!(
        (header.pkg_len, header.cmd, header.status),
        (1 << 58, 100, 0)
    );
    let (text, trailer) = raw[HEADER_LEN..].split_at(raw.len() - HEADER_LEN - 8);
    assert_eq!(
        u64::from_be_bytes(trailer.try_into().unwrap()),
        text.len() as u64
    );
    let text = String::from_utf8(text.to_vec()).unwrap();
    let mut names: Vec<&str> = text
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split(' ').collect();
            assert_eq!(cols.len(), 3, "{l}");
            assert_eq!(cols[1], "C", "{l}");
            cols[2]
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    expected.push(format!("{}-m", files[0].0));
    expected.sort();
    // A deleted file's create is still listed: the rebuild skips it (ENOENT).
    assert_eq!(names, expected);
    // Another group's path: EINVAL, as every request naming a foreign group.
    let r = g.block_on(async {
        let mut c = conn_to(&g, 0).await;
        let mut body = vec![0u8; 17];
        body[..6].copy_from_slice(b"group9");
        c.call(StorageCmd::FetchOnePathBinlog.into(), &body).await
    });
    assert!(
        matches!(r, Err(ClientError::Status(s)) if s == Status::EINVAL),
        "{r:?}"
    );
}

/// Address of the member run as its own process (outside the range the
/// test kit hands out, 127.0.0.20-249).
const PROCESS_MEMBER_IP: &str = "127.0.0.252";

/// `fdfs storage -c <conf>` as a child process, output appended to `log`.
fn spawn_storage(conf: &std::path::Path, log: &std::path::Path) -> fdfs_testkit::ProcessGuard {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let err = out.try_clone().unwrap();
    fdfs_testkit::ProcessGuard(
        Command::new(env!("CARGO_BIN_EXE_fdfs"))
            .arg("storage")
            .arg("-c")
            .arg(conf)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start fdfs storage"),
    )
}

fn kill9(p: &mut fdfs_testkit::ProcessGuard) {
    p.0.kill().unwrap();
    p.0.wait().unwrap();
}

#[test]
fn a_killed_rebuild_resumes_where_its_mark_stopped() {
    let g = Group::start(1);
    assert!(g.wait_all_active(DEADLINE));
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("b");
    let store = base.join("store0");
    std::fs::create_dir_all(&store).unwrap();
    let conf = dir.path().join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "group_name = group1\nbind_addr = {PROCESS_MEMBER_IP}\nport = {}\nbase_path = {}\n\
             store_path0 = {}\nsubdir_count_per_path = 4\ntracker_server = {}\n\
             heart_beat_interval = 1\nstat_report_interval = 1\nsync_wait_msec = 20\n\
             reserved_storage_space = 1MB\nhttp.server_port = 0\nlog_level = info\n",
            g.port,
            base.display(),
            store.display(),
            g.tracker_addr
        ),
    )
    .unwrap();
    let log = dir.path().join("storage.log");
    let member: std::net::SocketAddr = format!("{PROCESS_MEMBER_IP}:{}", g.port).parse().unwrap();
    let member_status = || {
        g.list_storages(0, "group1")
            .into_iter()
            .find(|s| s.ip_addr == PROCESS_MEMBER_IP)
            .map(|s| s.status)
    };
    let from_member = |remote: &str| {
        g.block_on(async {
            let mut c = fdfs_testkit::try_connect(member).await?;
            try_download(&mut c, remote).await
        })
    };
    let mut b = spawn_storage(&conf, &log);
    assert!(
        wait_until(DEADLINE, || member_status() == Some(storage_status::ACTIVE)),
        "the process member never turned ACTIVE"
    );
    let files = upload_all(&g, 0, FILE_COUNT);
    assert!(wait_until(DEADLINE, || from_member(
        &files[FILE_COUNT - 1].0
    )
    .is_ok()));
    kill9(&mut b);
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    let before = source_downloads(&g);
    let mut b = spawn_storage(&conf, &log);
    assert!(
        wait_until(Duration::from_secs(300), || mark_records_in(&store) >= 500),
        "the rebuild never saved a mark"
    );
    kill9(&mut b);
    let done_first = mark_records_in(&store);
    assert!(
        done_first < FILE_COUNT as u64,
        "the rebuild finished before the kill"
    );
    let _b = spawn_storage(&conf, &log);
    assert!(
        wait_until(Duration::from_secs(300), || member_status()
            == Some(storage_status::ACTIVE)),
        "never came back ACTIVE after the kill"
    );
    for (remote, data) in files.iter().step_by(7) {
        assert_eq!(&from_member(remote).unwrap(), data);
    }
    // The daemon's own log, not its stderr.
    let text = std::fs::read_to_string(base.join("logs/storaged.log")).unwrap();
    assert!(text.contains("disk recovery resumes at its mark"), "{text}");
    let summary = text
        .lines()
        .find(|l| l.contains("store path rebuilt"))
        .unwrap_or_else(|| panic!("no rebuild summary in the log:\n{text}"));
    eprintln!("log: {summary}");
    assert_served_about_once(&g, before, done_first);
}
