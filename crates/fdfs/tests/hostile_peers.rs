//! Hostile peers against the real daemons (#12.6): floods of dropped
//! connections, headers that announce huge bodies, and clients that ask for
//! a big file and never read it. Each test runs `fdfs tracker -c` and
//! `fdfs storage -c` (with its HTTP gateway) as processes, so file
//! descriptors and resident memory can be read from /proc/PID.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use std::time::{Duration, Instant};

use fdfs_client::{Client, ClientOptions, UploadOptions};
use fdfs_config::TrackerAddr;
use fdfs_proto::{Header, StorageCmd, TrackerCmd, HEADER_LEN};
use fdfs_testkit::{free_port, wait_until, ProcessGuard};

/// Deadline for anything a loaded 2-CPU machine must get done.
const DEADLINE: Duration = Duration::from_secs(60);
/// Resident memory a server may keep above its baseline after the first
/// flood, KiB: the allocator keeps the peak of the connections that were
/// open at once, and on a loaded machine more are open at once.
const FIRST_FLOOD_RSS_TOLERANCE_KIB: u64 = 24 * 1024;
/// Growth a repeated flood may add to what the first one left, KiB: a
/// leak of 1 KiB per connection (10 MiB per flood) exceeds it.
const REPEAT_FLOOD_RSS_TOLERANCE_KIB: u64 = 8 * 1024;

/// Each daemon's log file (below its base_path), in the test directory.
const TRACKER_LOG: &str = "tracker/logs/trackerd.log";
const STORAGE_LOG: &str = "storage/logs/storaged.log";

/// A tracker and a storage (with its HTTP gateway) run as processes.
struct Daemons {
    tracker: ProcessGuard,
    storage: ProcessGuard,
    tracker_port: u16,
    storage_port: u16,
    http_port: u16,
    dir: tempfile::TempDir,
}

impl Daemons {
    /// Starts both with `network_timeout` seconds, and waits until the
    /// storage takes uploads and the gateway answers.
    fn start(network_timeout_secs: u64) -> Daemons {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (tp, sp, hp) = (free_port(), free_port(), free_port());
        for sub in ["tracker", "storage"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let tracker_conf = d.join("tracker.conf");
        std::fs::write(
            &tracker_conf,
            format!(
                "bind_addr = 127.0.0.1\nport = {tp}\nbase_path = {}\nreserved_storage_space = 1%\n\
                 network_timeout = {network_timeout_secs}\nlog_level = warn\n",
                d.join("tracker").display()
            ),
        )
        .unwrap();
        let storage_conf = d.join("storage.conf");
        std::fs::write(
            &storage_conf,
            format!(
                "group_name = group1\nbind_addr = 127.0.0.1\nport = {sp}\nbase_path = {b}\n\
                 store_path0 = {b}\nsubdir_count_per_path = 2\ntracker_server = 127.0.0.1:{tp}\n\
                 heart_beat_interval = 1\nstat_report_interval = 1\nhttp.server_port = {hp}\n\
                 network_timeout = {network_timeout_secs}\nlog_level = warn\n",
                b = d.join("storage").display()
            ),
        )
        .unwrap();
        let tracker = spawn(
            &["tracker", "-c", tracker_conf.to_str().unwrap()],
            &d.join("tracker.stderr"),
        );
        let storage = spawn(
            &["storage", "-c", storage_conf.to_str().unwrap()],
            &d.join("storage.stderr"),
        );
        let daemons = Daemons {
            tracker,
            storage,
            tracker_port: tp,
            storage_port: sp,
            http_port: hp,
            dir,
        };
        let (rt, client) = daemons.client();
        let ready = wait_until(DEADLINE, || {
            rt.block_on(client.upload_buffer(b"ready", &UploadOptions::default()))
                .is_ok()
                && http_status(hp, "/healthz") == Some(200)
        });
        assert!(ready, "daemons did not become ready in time");
        daemons
    }

    fn client(&self) -> (tokio::runtime::Runtime, Client) {
        let client = Client::new(ClientOptions {
            trackers: vec![TrackerAddr {
                hosts: vec!["127.0.0.1".into()],
                port: self.tracker_port,
            }],
            connect_timeout: Duration::from_secs(5),
            network_timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        })
        .unwrap();
        (fdfs_testkit::rt(), client)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn pids(&self) -> [u32; 2] {
        [self.tracker.0.id(), self.storage.0.id()]
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn ports(&self) -> [u16; 3] {
        [self.tracker_port, self.storage_port, self.http_port]
    }

    /// Fails the test when a daemon died (a panic, an abort on OOM).
    fn assert_alive(&mut self) {
        for (name, p) in [
            ("tracker", &mut self.tracker),
            ("storage", &mut self.storage),
        ] {
            if let Ok(Some(status)) = p.0.try_wait() {
                panic!("{name} exited: {status}");
            }
        }
    }
}

/// Runs `fdfs args` in the foreground, its stderr going to `log`.
fn spawn(args: &[&str], log: &Path) -> ProcessGuard {
    let log = std::fs::File::create(log).unwrap();
    ProcessGuard::spawn(env!("CARGO_BIN_EXE_fdfs"), args, log.into())
}

/// Status of a GET over a fresh connection, None when it failed.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(Daemons::addr(port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Open descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// Open sockets of a process.
fn socket_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// (fds, RSS KiB) of each pid.
fn usage(pids: &[u32]) -> Vec<(usize, u64)> {
    pids.iter().map(|&p| (fd_count(p), rss_kib(p))).collect()
}

/// Polls until every pid is back to its baseline fd count and within
/// `rss_tolerance_kib` of its baseline RSS; the last reading on failure.
fn back_to_baseline(
    pids: &[u32],
    baseline: &[(usize, u64)],
    rss_tolerance_kib: u64,
) -> Result<(), Vec<(usize, u64)>> {
    let mut last = Vec::new();
    let ok = wait_until(DEADLINE, || {
        last = usage(pids);
        last.iter()
            .zip(baseline)
            .all(|(now, base)| now.0 <= base.0 && now.1 <= base.1 + rss_tolerance_kib)
    });
    if ok {
        Ok(())
    } else {
        Err(last)
    }
}

/// Opens `count` connections to `port`, `concurrency` at a time, and drops
/// each in one of three ways: at once, after half a header, or with a
/// reset (SO_LINGER 0, which also keeps TIME_WAIT off the port range).
async fn open_and_drop(port: u16, count: usize, concurrency: usize) {
    let addr = Daemons::addr(port);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                match i % 3 {
                    0 => {}
                    1 => {
                        let _ = s.write_all(&[0u8; HEADER_LEN / 2]).await;
                    }
                    _ => {
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                    }
                }
                drop(s);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Opening and dropping 10,000 connections on each port leaves the
/// descriptors and memory of both daemons where they were.
#[test]
fn ten_thousand_dropped_connections_leave_fds_and_rss_at_baseline() {
    const CONNECTIONS_PER_PORT: usize = 10_000;
    const CONCURRENCY: usize = 64;
    let mut d = Daemons::start(10);
    let pids = d.pids();
    let rt = fdfs_testkit::rt();
    // A first round warms what a server builds once (runtime workers,
    // allocator arenas), so the baseline is the steady state; it is taken
    // once the warm-up's connections are all closed.
    let before_warm_up = usage(&pids);
    for port in d.ports() {
        rt.block_on(open_and_drop(port, 500, CONCURRENCY));
    }
    let warm_closed = wait_until(DEADLINE, || {
        usage(&pids)
            .iter()
            .zip(&before_warm_up)
            .all(|(now, before)| now.0 <= before.0)
    });
    assert!(
        warm_closed,
        "warm-up connections still open: {:?}",
        usage(&pids)
    );
    let baseline = usage(&pids);
    // Two floods: a leak shows as growth that the second one doubles.
    let mut after_first_flood: Option<Vec<(usize, u64)>> = None;
    for round in 1..=2 {
        for port in d.ports() {
            rt.block_on(open_and_drop(port, CONNECTIONS_PER_PORT, CONCURRENCY));
        }
        d.assert_alive();
        let right_after = usage(&pids);
        // fds go back to the baseline after every flood; memory may keep
        // the first flood's peak, but a repeat must not add to it.
        let (reference, tolerance) = match &after_first_flood {
            None => (baseline.clone(), FIRST_FLOOD_RSS_TOLERANCE_KIB),
            Some(first) => (
                baseline
                    .iter()
                    .zip(first)
                    .map(|(base, first)| (base.0, first.1))
                    .collect(),
                REPEAT_FLOOD_RSS_TOLERANCE_KIB,
            ),
        };
        if let Err(last) = back_to_baseline(&pids, &reference, tolerance) {
            panic!(
                "after flood {round}: (fds, RSS KiB) {last:?}, baseline {baseline:?}, after flood 1 {after_first_flood:?}"
            );
        }
        let settled = usage(&pids);
        // The figures, for reports (--nocapture): tracker then storage.
        eprintln!(
            "flood {round}: (fds, RSS KiB) baseline {baseline:?}, right after {right_after:?}, settled {settled:?}"
        );
        after_first_flood.get_or_insert(settled);
    }
    // And they still serve.
    let (rt, client) = d.client();
    let id = rt
        .block_on(client.upload_buffer(b"still here", &UploadOptions::default()))
        .unwrap();
    assert_eq!(
        rt.block_on(client.download_to_vec(&id, 0, 0)).unwrap(),
        b"still here"
    );
    assert_eq!(http_status(d.http_port, &format!("/{id}")), Some(200));
}

/// Sends a header announcing `pkg_len` body bytes (and the first bytes of
/// a body) and waits for the server to answer or close; the time taken.
fn announce(port: u16, cmd: u8, pkg_len: i64) -> Duration {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(Daemons::addr(port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let header = Header {
        pkg_len,
        cmd,
        status: 0,
    };
    s.write_all(&header.to_bytes()).unwrap();
    // A few body bytes, as a client streaming a huge upload would send.
    let _ = s.write_all(&[b'7'; 64]);
    let mut answer = [0u8; HEADER_LEN];
    match s.read(&mut answer) {
        Ok(0) => {}
        Ok(_) => {
            let h = Header::from_bytes(&answer);
            assert_ne!(h.status, 0, "cmd {cmd} with pkg_len {pkg_len} succeeded");
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("cmd {cmd} with pkg_len {pkg_len}: no answer, no close: {e}"),
    }
    t0.elapsed()
}

/// A header announcing 2^40 or i64::MAX bytes, on every command family of
/// both daemons, is answered or closed at once, and the daemons' memory
/// does not follow the announced size.
#[test]
fn a_huge_pkg_len_is_refused_before_any_allocation() {
    /// Longest a refusal may take: far below the 30 s network_timeout the
    /// daemons run with, so nobody waited for a body.
    const REFUSAL_LIMIT: Duration = Duration::from_secs(10);
    let mut d = Daemons::start(30);
    let pids = d.pids();
    let baseline = usage(&pids);
    let tracker_cmds = [
        TrackerCmd::QueryStoreWithoutGroupOne,
        TrackerCmd::QueryFetchOne,
        TrackerCmd::ServerListAllGroups,
        TrackerCmd::ServerDeleteStorage,
        TrackerCmd::StorageJoin,
        TrackerCmd::StorageBeat,
        TrackerCmd::StorageReportDiskUsage,
        TrackerCmd::StorageSyncReport,
        TrackerCmd::StorageFetchStorageIds,
        TrackerCmd::TrackerJoinLeader,
        TrackerCmd::TrackerGetOneSysFile,
    ]
    .map(u8::from);
    let storage_cmds = [
        StorageCmd::UploadFile,
        StorageCmd::UploadAppenderFile,
        StorageCmd::UploadSlaveFile,
        StorageCmd::DownloadFile,
        StorageCmd::DeleteFile,
        StorageCmd::SetMetadata,
        StorageCmd::GetMetadata,
        StorageCmd::QueryFileInfo,
        StorageCmd::AppendFile,
        StorageCmd::ModifyFile,
        StorageCmd::TruncateFile,
        StorageCmd::RegenerateAppenderFilename,
        StorageCmd::SyncCreateFile,
        StorageCmd::SyncAppendFile,
        StorageCmd::SyncDeleteFile,
        StorageCmd::ReportServerId,
    ]
    .map(u8::from);
    let unknown_cmd = 250u8;
    let mut probes: Vec<(u16, u8)> = Vec::new();
    probes.extend(tracker_cmds.iter().map(|&c| (d.tracker_port, c)));
    probes.extend(storage_cmds.iter().map(|&c| (d.storage_port, c)));
    probes.push((d.tracker_port, unknown_cmd));
    probes.push((d.storage_port, unknown_cmd));
    for (port, cmd) in probes {
        for pkg_len in [1i64 << 40, i64::MAX, i64::MAX - HEADER_LEN as i64 + 1] {
            let took = announce(port, cmd, pkg_len);
            assert!(
                took < REFUSAL_LIMIT,
                "port {port} cmd {cmd} pkg_len {pkg_len}: refused after {took:?}"
            );
        }
    }
    d.assert_alive();
    if let Err(last) = back_to_baseline(&pids, &baseline, REPEAT_FLOOD_RSS_TOLERANCE_KIB) {
        panic!("after the huge headers: (fds, RSS KiB) {last:?}, baseline {baseline:?}");
    }
}

/// Downloads sent by clients that never read the answer are dropped after
/// about network_timeout, on the storage port and the HTTP gateway, and
/// other clients are served meanwhile.
#[test]
fn clients_that_never_read_are_dropped_after_network_timeout() {
    const NETWORK_TIMEOUT_SECS: u64 = 2;
    /// Far more than loopback socket buffers hold on both ends.
    const BIG_FILE_BYTES: usize = 64 << 20;
    const STUCK_CLIENTS: usize = 8;
    let mut d = Daemons::start(NETWORK_TIMEOUT_SECS);
    let (rt, client) = d.client();
    let big: Vec<u8> = (0..BIG_FILE_BYTES).map(|i| (i % 251) as u8).collect();
    let id = rt
        .block_on(client.upload_buffer(&big, &UploadOptions::default()))
        .unwrap();
    let pids = d.pids();
    let sockets_before: Vec<usize> = pids.iter().map(|&p| socket_count(p)).collect();

    let mut stuck = Vec::new();
    for i in 0..STUCK_CLIENTS {
        if i % 2 == 0 {
            let mut s = TcpStream::connect(Daemons::addr(d.storage_port)).unwrap();
            let mut body = bytes::BytesMut::new();
            fdfs_proto::storage_msg::DownloadReq {
                offset: 0,
                length: 0,
                group: id.group.clone(),
                remote: id.remote.clone(),
            }
            .encode(&mut body);
            let header = Header {
                pkg_len: body.len() as i64,
                cmd: StorageCmd::DownloadFile.into(),
                status: 0,
            };
            s.write_all(&header.to_bytes()).unwrap();
            s.write_all(&body).unwrap();
            stuck.push(s);
        } else {
            let mut s = TcpStream::connect(Daemons::addr(d.http_port)).unwrap();
            // Keep-alive: the gateway's fast path.
            write!(s, "GET /{id} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            stuck.push(s);
        }
    }
    let t0 = Instant::now();
    // Meanwhile others are served, by both.
    let small = rt
        .block_on(client.upload_buffer(b"meanwhile", &UploadOptions::default()))
        .unwrap();
    assert_eq!(
        rt.block_on(client.download_to_vec(&small, 0, 0)).unwrap(),
        b"meanwhile"
    );
    assert_eq!(http_status(d.http_port, &format!("/{small}")), Some(200));
    let served_within = t0.elapsed();
    assert!(
        served_within < Duration::from_secs(NETWORK_TIMEOUT_SECS),
        "others waited {served_within:?} for the stuck clients"
    );

    // The daemons let go of the stuck ones: their sockets are closed. (The
    // gateway keeps the files it served open, so whole fd counts differ.)
    let mut held = Vec::new();
    let released = wait_until(DEADLINE, || {
        held = pids.iter().map(|&p| socket_count(p)).collect();
        held.iter()
            .zip(&sockets_before)
            .all(|(now, base)| now <= base)
    });
    assert!(
        released,
        "stuck clients still held: sockets {held:?}, before {sockets_before:?}"
    );
    let dropped_after = t0.elapsed();
    assert!(
        dropped_after < Duration::from_secs(NETWORK_TIMEOUT_SECS * 5),
        "stuck clients dropped only after {dropped_after:?}"
    );
    // Each stuck client got less than the file, then the end of the stream.
    for (i, mut s) in stuck.into_iter().enumerate() {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            got.len() < BIG_FILE_BYTES,
            "stuck client {i} received {} bytes",
            got.len()
        );
    }
    d.assert_alive();
}

/// Lines of a daemon's log that contain `needle`.
fn log_lines_with(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// A flood of malformed requests (each on a fresh connection, so closing
/// it does not stop the next) leaves about one warning per second in each
/// daemon's log, not one per request.
#[test]
fn a_flood_of_bad_requests_logs_about_one_line_per_second() {
    const BAD_REQUESTS: usize = 500;
    let d = Daemons::start(10);
    let unknown_cmd = 250u8;
    let t0 = Instant::now();
    for i in 0..BAD_REQUESTS {
        let port = if i % 2 == 0 {
            d.tracker_port
        } else {
            d.storage_port
        };
        let mut s = TcpStream::connect(Daemons::addr(port)).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let header = Header {
            pkg_len: 0,
            cmd: unknown_cmd,
            status: 0,
        };
        s.write_all(&header.to_bytes()).unwrap();
        let mut answer = [0u8; HEADER_LEN];
        s.read_exact(&mut answer).unwrap();
        assert_eq!(Header::from_bytes(&answer).status, 22);
    }
    let flood_secs = t0.elapsed().as_secs() as usize;
    let logs = [d.dir().join(TRACKER_LOG), d.dir().join(STORAGE_LOG)];
    // The warnings are written as they happen; wait for the first one.
    assert!(
        wait_until(DEADLINE, || logs
            .iter()
            .all(|l| log_lines_with(l, "held_back") > 0)),
        "no rejection warning in {logs:?}"
    );
    for log in &logs {
        let lines = log_lines_with(log, "held_back");
        assert!(
            lines <= flood_secs + 2,
            "{} warnings in {} for {BAD_REQUESTS} bad requests over {flood_secs} s",
            lines,
            log.display()
        );
    }
}
