//! Test support: starts a real tracker and storage server on 127.0.0.1 with
//! ephemeral ports and temp directories, on a runtime of their own, so
//! tests (sync or async) drive them like any external client would.

pub mod gateway;
pub mod group;
pub mod http;
pub mod trunk;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fdfs_config::storage::StorageConf;
use fdfs_config::tracker::TrackerConf;
use fdfs_config::{ReservedSpace, TrackerAddr};
use tokio_util::sync::CancellationToken;

/// How long `wait_active` polls before giving up.
pub const ACTIVE_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Knobs for a test cluster.
pub struct ClusterOptions {
    pub group: String,
    pub store_path_count: usize,
    pub reserved_storage_space: ReservedSpace,
    /// Extra changes to the tracker conf before start.
    pub tweak_tracker: Box<dyn FnOnce(&mut TrackerConf) + Send>,
    /// Extra changes to the storage conf before start.
    pub tweak_storage: Box<dyn FnOnce(&mut StorageConf) + Send>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            group: "group1".into(),
            store_path_count: 1,
            reserved_storage_space: ReservedSpace::Megabytes(1),
            tweak_tracker: Box::new(|_| {}),
            tweak_storage: Box::new(|_| {}),
        }
    }
}

/// A running tracker + storage. Dropping it shuts both down.
pub struct Cluster {
    pub tracker_addr: SocketAddr,
    pub storage_addr: SocketAddr,
    pub group: String,
    pub tracker_base: PathBuf,
    pub storage_base: PathBuf,
    pub store_paths: Vec<PathBuf>,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_with(ClusterOptions::default())
    }

    pub fn start_with(opts: ClusterOptions) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, opts)
    }

    /// Starts on an existing directory (restart tests reuse one).
    pub fn start_in(dir: tempfile::TempDir, opts: ClusterOptions) -> Cluster {
        let tracker_base = dir.path().join("tracker");
        let storage_base = dir.path().join("storage");
        let store_paths: Vec<PathBuf> = (0..opts.store_path_count)
            .map(|i| dir.path().join(format!("store{i}")))
            .collect();
        for p in store_paths.iter().chain([&tracker_base, &storage_base]) {
            std::fs::create_dir_all(p).expect("create dir");
        }
        let std_tracker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tracker");
        let std_storage = std::net::TcpListener::bind("127.0.0.1:0").expect("bind storage");
        std_tracker.set_nonblocking(true).expect("nonblocking");
        std_storage.set_nonblocking(true).expect("nonblocking");
        let tracker_addr = std_tracker.local_addr().expect("addr");
        let storage_addr = std_storage.local_addr().expect("addr");

        let mut tracker_conf = TrackerConf {
            base_path: tracker_base.clone(),
            port: tracker_addr.port(),
            bind_addr: "127.0.0.1".into(),
            reserved_storage_space: opts.reserved_storage_space,
            ..TrackerConf::default()
        };
        (opts.tweak_tracker)(&mut tracker_conf);
        let mut storage_conf = StorageConf {
            group_name: opts.group.clone(),
            group_name_configured: true,
            bind_addr: "127.0.0.1".into(),
            port: storage_addr.port(),
            base_path: storage_base.clone(),
            store_path_count: store_paths.len(),
            store_paths: store_paths.clone(),
            store_paths_readonly: vec![false; store_paths.len()],
            subdir_count_per_path: 4,
            tracker_servers: vec![TrackerAddr {
                hosts: vec!["127.0.0.1".into()],
                port: tracker_addr.port(),
            }],
            heart_beat_interval_secs: 1,
            stat_report_interval_secs: 1,
            network_timeout_secs: 10,
            reserved_storage_space: opts.reserved_storage_space,
            ..StorageConf::default()
        };
        (opts.tweak_storage)(&mut storage_conf);

        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let thread = on_own_runtime(async move {
            let t = tokio::net::TcpListener::from_std(std_tracker).expect("listener");
            let s = tokio::net::TcpListener::from_std(std_storage).expect("listener");
            let tracker = tokio::spawn(fdfs_tracker::run(t, tracker_conf, token.clone()));
            let storage = tokio::spawn(fdfs_storage::run(s, storage_conf, token.clone()));
            let (tr, sr) = tokio::join!(tracker, storage);
            if let Ok(Err(e)) = tr {
                eprintln!("testkit: tracker stopped with error: {e}");
            }
            if let Ok(Err(e)) = sr {
                eprintln!("testkit: storage stopped with error: {e}");
            }
        });
        let cluster = Cluster {
            tracker_addr,
            storage_addr,
            group: opts.group,
            tracker_base,
            storage_base,
            store_paths,
            shutdown,
            thread: Some(thread),
            dir,
        };
        cluster.wait_active();
        cluster
    }

    /// Polls the tracker until it hands out our storage for uploads.
    pub fn wait_active(&self) {
        let deadline = Instant::now() + ACTIVE_DEADLINE;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        loop {
            let ok = rt.block_on(async {
                let Ok(mut c) = fdfs_client::Conn::connect(
                    &self.tracker_addr.to_string(),
                    Duration::from_secs(2),
                    Duration::from_secs(2),
                )
                .await
                else {
                    return false;
                };
                // ENOSPC also means a storage joined and reported its disks.
                match c
                    .call(
                        fdfs_proto::TrackerCmd::QueryStoreWithoutGroupOne.into(),
                        &[],
                    )
                    .await
                {
                    Ok(_) => true,
                    Err(fdfs_client::ClientError::Status(s)) => s == fdfs_proto::Status::ENOSPC,
                    Err(_) => false,
                }
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "storage did not become ACTIVE in time"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Writes a classic client.conf naming our tracker; returns its path.
    pub fn write_client_conf(&self) -> PathBuf {
        let path = self.dir.path().join("client.conf");
        let text = format!(
            "connect_timeout = 30\nnetwork_timeout = 30\nbase_path = {}\ntracker_server = {}\nlog_level = error\n",
            self.dir.path().display(),
            self.tracker_addr
        );
        std::fs::write(&path, text).expect("write client.conf");
        path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops both servers and hands back the directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.halt();
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Runs `servers` on a thread with a runtime of its own (two workers), so
/// a test's own runtime never shares fate with the servers it drives.
fn on_own_runtime(
    servers: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(servers)
    })
}

/// A single-threaded runtime for a test to drive clients with.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A client of the tracker at 127.0.0.1:`tracker_port`, with the
/// single-threaded runtime to drive it on.
pub fn tracker_client(
    tracker_port: u16,
    network_timeout: Duration,
) -> (tokio::runtime::Runtime, fdfs_client::Client) {
    let client = fdfs_client::Client::new(fdfs_client::ClientOptions {
        trackers: vec![TrackerAddr {
            hosts: vec!["127.0.0.1".into()],
            port: tracker_port,
        }],
        connect_timeout: Duration::from_secs(2),
        network_timeout,
        ..fdfs_client::ClientOptions::default()
    })
    .expect("client options");
    (rt(), client)
}

/// Connect timeout of [`connect`].
const TEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Answer timeout of [`connect`]: generous for a loaded 2-CPU machine.
const TEST_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A client connection to a test server.
pub async fn try_connect(addr: SocketAddr) -> Result<fdfs_client::Conn, fdfs_client::ClientError> {
    fdfs_client::Conn::connect(&addr.to_string(), TEST_CONNECT_TIMEOUT, TEST_IO_TIMEOUT).await
}

/// A SYNC_CREATE_FILE (16) of `remote` (group1) with `content`, as a peer
/// storage sends it; the answer's status (0 when written).
pub async fn sync_create(addr: SocketAddr, remote: &str, content: &[u8], timestamp: u32) -> u8 {
    let mut c = connect(addr).await;
    let mut head = bytes::BytesMut::new();
    fdfs_proto::sync_msg::SyncFileReq {
        remote: remote.to_string(),
        file_size: content.len() as u64,
        timestamp: timestamp as i32,
        group: "group1".into(),
    }
    .encode_head(&mut head);
    let len = content.len() as u64;
    c.send_head(fdfs_proto::StorageCmd::SyncCreateFile.into(), 0, &head, len)
        .await
        .unwrap_or_else(|e| panic!("sync create of {remote}: {e}"));
    c.send_from(&mut &content[..], len)
        .await
        .unwrap_or_else(|e| panic!("sync create of {remote}: {e}"));
    match c.recv_ok_discarding_body().await {
        Ok(()) => 0,
        Err(e) => e.errno(),
    }
}

/// [`try_connect`] that fails the test when the server does not answer.
pub async fn connect(addr: SocketAddr) -> fdfs_client::Conn {
    match try_connect(addr).await {
        Ok(c) => c,
        Err(e) => panic!("connect to {addr}: {e}"),
    }
}

/// The JOIN of a new storage of group1 on port 23000 with one store path
/// of 256 subdirectories, joined and up since second 1, naming no trackers.
pub fn join_req() -> fdfs_proto::tracker_msg::JoinReq {
    fdfs_proto::tracker_msg::JoinReq {
        group: "group1".into(),
        storage_port: 23000,
        store_path_count: 1,
        subdir_count_per_path: 256,
        upload_priority: 10,
        join_time: 1,
        up_time: 1,
        version: fdfs_proto::FDFS_VERSION.into(),
        init_flag: true,
        status: -1,
        storage_id: String::new(),
        tracker_ip: String::new(),
        trackers: Vec::new(),
    }
}

/// How long a spawned server gets to exit after SIGTERM before SIGKILL.
const PROCESS_STOP_GRACE: Duration = Duration::from_secs(20);

/// A server a test spawned as a process (`fdfs server`, a classic daemon):
/// stopped when the guard drops, pass or panic, so a failed test leaves
/// nothing running to slow the tests after it. SIGTERM first, so the
/// server's own shutdown runs; SIGKILL if it does not exit in time.
pub struct ProcessGuard(pub std::process::Child);

impl ProcessGuard {
    /// Starts `exe args` with no input and no output; its stderr (the
    /// log of a server in the foreground) goes to `stderr`.
    pub fn spawn(exe: &str, args: &[&str], stderr: std::process::Stdio) -> ProcessGuard {
        use std::process::Stdio;
        ProcessGuard(
            std::process::Command::new(exe)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("start {exe}: {e}")),
        )
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after
    /// [`PROCESS_STOP_GRACE`]); None when it had to be killed.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(status);
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let end = Instant::now() + PROCESS_STOP_GRACE;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A daemon a test started detached (`fdfs_storaged <conf> start`), known
/// only by its pid file: when the guard drops, pass or panic, the process
/// the file names then is stopped (SIGTERM, SIGKILL after
/// [`PROCESS_STOP_GRACE`]), so a failed test leaves no daemon running. The
/// file is read at drop, so a restart in between is followed; a missing
/// file or a pid <= 0 stops nothing.
pub struct PidFileGuard(pub PathBuf);

impl PidFileGuard {
    /// The pid the file names now, if it names one.
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }
}

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        use fdfs_util::sys::send_signal;
        let Some(pid) = self.pid() else {
            return;
        };
        if !send_signal(pid, libc::SIGTERM) {
            return;
        }
        if !wait_until(PROCESS_STOP_GRACE, || !send_signal(pid, 0)) {
            send_signal(pid, libc::SIGKILL);
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for servers a test
/// starts as separate processes (which cannot be handed a bound listener).
///
/// Taken below the kernel's ephemeral range where there is room: a port
/// from `bind(0)` is an ephemeral one, which any outgoing connection of a
/// parallel test may take before the spawned server binds it (a server
/// that then exits at once makes its test wait out a deadline). A port is
/// never handed out twice in one process, so two tests running in parallel
/// cannot get the same one either.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    static NEXT_CANDIDATE: AtomicU32 = AtomicU32::new(0);
    const LOWEST_PORT: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(LOWEST_PORT);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    if span >= 1_000 {
        // Each process starts at its own place in the span, so test
        // binaries running side by side rarely try the same ports.
        let start = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..span {
            let offset = (start + NEXT_CANDIDATE.fetch_add(1, Ordering::Relaxed)) % span;
            let port = (LOWEST_PORT + offset) as u16;
            if handed_out.contains(&port) {
                continue;
            }
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.push(port);
                return port;
            }
        }
    }
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Writes the stored file `remote` (`M00/...`) of store path `store_root`
/// out and drops it from the page cache, and checks that it is gone from
/// there: the next read of it by a server takes the path for files that
/// must come from the disk.
pub fn drop_from_page_cache(store_root: &std::path::Path, remote: &str) {
    let relative = remote.strip_prefix("M00/").expect("a name on store path 0");
    let path = store_root.join("data").join(relative);
    let file = std::fs::File::open(&path).unwrap();
    file.sync_all().unwrap();
    fdfs_util::sys::drop_cached_pages(&file).unwrap();
    let len = file.metadata().unwrap().len();
    assert_eq!(
        fdfs_util::sys::cached_fully(&file, 0, len),
        Some(false),
        "{} is still in the page cache",
        path.display()
    );
}

/// Writes everything out and drops the kernel's unused dentries and inodes
/// (`vm.drop_caches = 2`), so that the next open of a file nobody holds
/// walks its path on the disk. Needs root (CI runs as root); fails loudly
/// otherwise.
pub fn drop_dentry_cache() {
    assert!(std::process::Command::new("sync")
        .status()
        .expect("sync")
        .success());
    std::fs::write("/proc/sys/vm/drop_caches", "2")
        .expect("dropping the dentry cache needs root (vm.drop_caches)");
}

/// Downloads every `(file id, CRC32 of its bytes)` of `files` through
/// `tracker` with the independent PyPI client py3fdfs (`script` is the
/// fdfs crate's tests/py/py3fdfs_download_check.py), and panics unless each
/// one came back whole. Fails loudly, never skips, when python3 or py3fdfs
/// is missing.
pub fn py3fdfs_download_check(script: &str, tracker: SocketAddr, files: &[(String, u32)]) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "connect_timeout = 30\nnetwork_timeout = 30\nbase_path = {}\ntracker_server = {tracker}\nlog_level = error\n",
            dir.path().display(),
        ),
    )
    .unwrap();
    let listing = dir.path().join("ids.txt");
    let lines: String = files
        .iter()
        .map(|(id, crc)| format!("{id} {crc}\n"))
        .collect();
    std::fs::write(&listing, lines).unwrap();
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&conf)
        .arg(&listing)
        .output()
        .expect("python3 must be installed to run the py3fdfs part");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains(&format!("\"checked\": {}", files.len()))
            && stdout.contains("\"bad\": []"),
        "py3fdfs download check failed (is py3fdfs installed? `python3 -m pip install py3fdfs`)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `cond` every `POLL_INTERVAL` until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    cond()
}

/// An extra storage server joined to a [`Cluster`]'s tracker, in the same
/// group, with its own temp directory and runtime. Dropping it stops it.
pub struct StorageNode {
    pub addr: SocketAddr,
    pub base: PathBuf,
    pub store_paths: Vec<PathBuf>,
    pub conf: StorageConf,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts another storage of this cluster's group listening on
    /// `bind_ip` and the cluster storage's port (any 127.x.y.z works on
    /// Linux loopback, so storages of one group get distinct addresses),
    /// and waits until the tracker lists it.
    pub fn start_storage(
        &self,
        bind_ip: &str,
        tweak: impl FnOnce(&mut StorageConf) + Send + 'static,
    ) -> StorageNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("storage");
        let store = dir.path().join("store0");
        for p in [&base, &store] {
            std::fs::create_dir_all(p).expect("create dir");
        }
        // The storages of a group share one port (the tracker refuses a
        // JOIN with another one), so take the cluster storage's port.
        let port = self.storage_addr.port();
        let std_listener = std::net::TcpListener::bind(format!("{bind_ip}:{port}"))
            .unwrap_or_else(|e| panic!("bind extra storage on {bind_ip}:{port}: {e}"));
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let mut conf = StorageConf {
            group_name: self.group.clone(),
            group_name_configured: true,
            bind_addr: bind_ip.to_string(),
            port: addr.port(),
            base_path: base.clone(),
            store_path_count: 1,
            store_paths: vec![store.clone()],
            store_paths_readonly: vec![false],
            subdir_count_per_path: 4,
            tracker_servers: vec![TrackerAddr {
                hosts: vec!["127.0.0.1".into()],
                port: self.tracker_addr.port(),
            }],
            heart_beat_interval_secs: 1,
            stat_report_interval_secs: 1,
            network_timeout_secs: 10,
            reserved_storage_space: ReservedSpace::Megabytes(1),
            ..StorageConf::default()
        };
        tweak(&mut conf);
        let run_conf = conf.clone();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let thread = on_own_runtime(async move {
            let l = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            if let Err(e) = fdfs_storage::run(l, run_conf, token).await {
                eprintln!("testkit: extra storage stopped with error: {e}");
            }
        });
        let node = StorageNode {
            addr,
            base,
            store_paths: vec![store],
            conf,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        };
        let tracker = self.tracker_addr.to_string();
        let group = self.group.clone();
        let ip = bind_ip.to_string();
        let rt = rt();
        let listed = wait_until(ACTIVE_DEADLINE, || {
            rt.block_on(async {
                let Ok(mut c) = fdfs_client::Conn::connect(
                    &tracker,
                    Duration::from_secs(2),
                    Duration::from_secs(2),
                )
                .await
                else {
                    return false;
                };
                fdfs_client::TrackerClient::new(&mut c)
                    .list_storages(&group, None)
                    .await
                    .is_ok_and(|list| list.iter().any(|s| s.ip_addr == ip))
            })
        });
        assert!(
            listed,
            "extra storage {bind_ip} did not join the tracker in time"
        );
        node
    }
}

impl Drop for StorageNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn pid_file_guard_stops_the_process_the_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("d.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
        // A detached daemon is reaped by someone else; here a thread does it.
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        drop(PidFileGuard(pid_file));
        if !wait_until(Duration::from_secs(30), || reaper.is_finished()) {
            fdfs_util::sys::send_signal(pid, libc::SIGKILL);
            panic!("the guard left pid {pid} running");
        }
        assert_eq!(reaper.join().unwrap().signal(), Some(libc::SIGTERM));
    }
}
