//! Trunk crash safety (#15.4): the real `fdfs` binary, a tracker with
//! `use_trunk_file` and three storages of one group, each a process of
//! its own. Per round, 256 connections upload small files (and delete
//! some of theirs, so freed slots are handed out again) while the trunk
//! server is killed with SIGKILL; the leader appoints another member, the
//! uploads go on, and the old trunk server is started again. Then:
//! - every acknowledged, not deleted file downloads intact from every
//!   member, and its slot on every member's disk holds it;
//! - no two live files share trunk space (their 60-character names
//!   decoded into trunk locations never overlap);
//! - acknowledged deletes are gone from every member;
//! - the trunk binlogs converge (see [`assert_binlogs_converge`]).
//!
//! A part of the uploads goes through the tracker with the PyPI client
//! py3fdfs. `FDFS_CRASH_ROUNDS` (default 5) sets the number of kills,
//! `FDFS_CRASH_SEED` the seed (printed, to replay a failing run),
//! `FDFS_CRASH_COMPRESS_SECS` a trunk binlog compression interval.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fdfs_client::{ClientError, Conn, StorageClient, TrackerClient, UploadKind};
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::stat::storage_status;
use fdfs_proto::trunk::{SlotHeader, TrunkLocation, SLOT_HEADER_LEN};
use fdfs_proto::trunk_binlog::{parse_lines, slot_end, TrunkOp};
use fdfs_proto::Status;
use fdfs_testkit::{free_port, wait_until, ProcessGuard};

/// Generous: a loaded 2-CPU machine, servers starting from scratch.
const DEADLINE: Duration = Duration::from_secs(60);
/// Members of the group.
const MEMBERS: usize = 3;
/// Concurrent client connections.
const CONNECTIONS: usize = 256;
/// Largest upload of the load (bytes); every upload goes to a slot.
const MAX_UPLOAD_BYTES: usize = 16 * 1024;
/// Small trunk files, so that the load fills several and quarantine
/// after each failover costs little (bytes; the tracker's minimum).
const TRUNK_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Slot sizes (bytes).
const SLOT_MIN_BYTES: u64 = 256;
const SLOT_MAX_BYTES: u64 = 64 * 1024;
/// One operation in this many is a delete of one of the connection's
/// own acknowledged files.
const DELETE_ONE_IN: u64 = 6;
/// Uploads acknowledged before the kill, and after the failover before
/// the old trunk server comes back.
const ACKED_BEFORE_KILL: usize = 300;
const ACKED_AFTER_FAILOVER: usize = 300;
/// The tracker's check_active_interval (s): how soon a dead trunk server
/// is replaced.
const CHECK_ACTIVE_SECS: u64 = 2;

static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn rounds() -> usize {
    std::env::var("FDFS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// `FDFS_CRASH_COMPRESS_SECS`: the trunk server also compresses its
/// binlog every that many seconds (0, the default: never).
fn compress_secs() -> u64 {
    std::env::var("FDFS_CRASH_COMPRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn seed() -> u64 {
    std::env::var("FDFS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// SplitMix64: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Random bytes: no two uploads alike, so a slot handed out twice
    /// shows as a content mismatch.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A tracker and three storages of `group1`, each a process of its own.
struct Servers {
    tracker_port: u16,
    storage_port: u16,
    storage_ips: Vec<String>,
    tracker: Option<ProcessGuard>,
    storages: Vec<Option<ProcessGuard>>,
    /// Last: removed after the processes are stopped.
    dir: tempfile::TempDir,
}

impl Servers {
    fn start(first_octet: u8) -> Servers {
        let mut dir = tempfile::tempdir().unwrap();
        // To read the daemons' logs after a failure.
        if std::env::var("FDFS_CRASH_KEEP").is_ok() {
            eprintln!("keeping {}", dir.path().display());
            dir.disable_cleanup(true);
        }
        let mut s = Servers {
            tracker_port: free_port(),
            storage_port: free_port(),
            storage_ips: (0..MEMBERS)
                .map(|i| format!("127.0.0.{}", first_octet + i as u8))
                .collect(),
            dir,
            tracker: None,
            storages: (0..MEMBERS).map(|_| None).collect(),
        };
        s.write_confs();
        s.tracker = Some(s.spawn("tracker", "tracker.conf"));
        for i in 0..MEMBERS {
            s.start_storage(i);
        }
        s
    }

    fn tracker_base(&self) -> PathBuf {
        self.dir.path().join("tracker")
    }

    fn store(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("storage{i}"))
    }

    fn storage_addr(&self, i: usize) -> SocketAddr {
        format!("{}:{}", self.storage_ips[i], self.storage_port)
            .parse()
            .unwrap()
    }

    fn tracker_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tracker_port))
    }

    fn write_confs(&self) {
        let log_level = std::env::var("FDFS_CRASH_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
        std::fs::create_dir_all(self.tracker_base()).unwrap();
        std::fs::write(
            self.dir.path().join("tracker.conf"),
            format!(
                "bind_addr = 127.0.0.1\nport = {}\nbase_path = {}\nreserved_storage_space = 1%\n\
                 check_active_interval = {CHECK_ACTIVE_SECS}\nlog_level = {log_level}\n\
                 use_trunk_file = true\nslot_min_size = {SLOT_MIN_BYTES}\n\
                 slot_max_size = {SLOT_MAX_BYTES}\ntrunk_file_size = {TRUNK_FILE_BYTES}\n\
                 trunk_free_space_merge = true\ndelete_unused_trunk_files = false\n\
                 trunk_compress_binlog_interval = {}\n",
                self.tracker_port,
                self.tracker_base().display(),
                compress_secs()
            ),
        )
        .unwrap();
        for i in 0..MEMBERS {
            let base = self.store(i);
            std::fs::create_dir_all(&base).unwrap();
            std::fs::write(
                self.dir.path().join(format!("storage{i}.conf")),
                format!(
                    "group_name = group1\nbind_addr = {ip}\nport = {port}\nbase_path = {base}\n\
                     store_path0 = {base}\nsubdir_count_per_path = 4\ntracker_server = 127.0.0.1:{tp}\n\
                     heart_beat_interval = 1\nstat_report_interval = 1\nsync_wait_msec = 20\n\
                     network_timeout = 10\nreserved_storage_space = 1%\nhttp.server_port = 0\n\
                     log_level = {log_level}\n",
                    ip = self.storage_ips[i],
                    port = self.storage_port,
                    base = base.display(),
                    tp = self.tracker_port,
                ),
            )
            .unwrap();
        }
    }

    fn spawn(&self, role: &str, conf: &str) -> ProcessGuard {
        ProcessGuard(
            Command::new(env!("CARGO_BIN_EXE_fdfs"))
                .arg(role)
                .arg("--conf")
                .arg(self.dir.path().join(conf))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("start fdfs {role}: {e}")),
        )
    }

    fn start_storage(&mut self, i: usize) {
        self.storages[i] = Some(self.spawn("storage", &format!("storage{i}.conf")));
    }

    fn kill_storage(&mut self, i: usize) {
        if let Some(mut g) = self.storages[i].take() {
            g.0.kill().expect("SIGKILL");
            g.0.wait().expect("reap");
        }
    }

    /// (status, is trunk server) of each member on the tracker.
    fn statuses(&self, rt: &tokio::runtime::Runtime) -> Vec<Option<(u8, bool)>> {
        let list = rt.block_on(async {
            let Ok(mut c) = fdfs_testkit::try_connect(self.tracker_addr()).await else {
                return Vec::new();
            };
            TrackerClient::new(&mut c)
                .list_storages("group1", None)
                .await
                .unwrap_or_default()
        });
        (0..MEMBERS)
            .map(|i| {
                list.iter()
                    .find(|s| s.ip_addr == self.storage_ips[i])
                    .map(|s| (s.status, s.if_trunk_server))
            })
            .collect()
    }

    /// The ACTIVE member the tracker names trunk server, if any.
    fn trunk_server(&self, rt: &tokio::runtime::Runtime) -> Option<usize> {
        let st = self.statuses(rt);
        let mut trunks = (0..MEMBERS).filter(|&i| st[i].is_some_and(|(_, t)| t));
        let first = trunks.next()?;
        (trunks.next().is_none() && st[first].map(|(s, _)| s) == Some(storage_status::ACTIVE))
            .then_some(first)
    }

    /// Waits until every member is ACTIVE and answers, and one of them is
    /// the trunk server; returns it.
    fn wait_all_active(&self, rt: &tokio::runtime::Runtime) -> usize {
        let mut trunk = None;
        let ok = wait_until(DEADLINE, || {
            let st = self.statuses(rt);
            trunk = self.trunk_server(rt);
            trunk.is_some()
                && st
                    .iter()
                    .all(|s| s.map(|(s, _)| s) == Some(storage_status::ACTIVE))
                && (0..MEMBERS).all(|i| {
                    rt.block_on(async {
                        match fdfs_testkit::try_connect(self.storage_addr(i)).await {
                            Ok(mut c) => StorageClient::new(&mut c).active_test().await.is_ok(),
                            Err(_) => false,
                        }
                    })
                })
        });
        assert!(ok, "group did not converge: {:?}", self.statuses(rt));
        trunk.unwrap()
    }
}

fn multi_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Size and CRC32 of what a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest {
    len: u64,
    crc: u32,
}

impl Digest {
    fn of(bytes: &[u8]) -> Digest {
        Digest {
            len: bytes.len() as u64,
            crc: fdfs_proto::crc32(bytes),
        }
    }
}

/// What clients were told.
#[derive(Default)]
struct Ledger {
    /// Acknowledged uploads not deleted, by remote name.
    live: BTreeMap<String, Digest>,
    /// Live files downloaded intact from every member in an earlier round
    /// (every round still checks every live file on every disk).
    downloaded: BTreeSet<String>,
    /// Acknowledged deletes.
    deleted: BTreeSet<String>,
    /// Deletes found gone on every member in an earlier round (the last
    /// check looks at every delete again).
    gone_checked: BTreeSet<String>,
    /// Deletes that got no answer: either state is right, so they leave
    /// every check.
    uncertain: BTreeSet<String>,
}

#[derive(Default)]
struct Counters {
    uploads: AtomicUsize,
    deletes: AtomicUsize,
    failed: AtomicUsize,
}

/// One client connection's loop until `stop`: uploads to member `addr`,
/// and deletes of its own acknowledged files there.
async fn client_loop(
    addr: SocketAddr,
    mut rng: Rng,
    ledger: Arc<Mutex<Ledger>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<Conn> = None;
    let mut own: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match fdfs_testkit::try_connect(addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ok = if !own.is_empty() && rng.below(DELETE_ONE_IN) == 0 {
            let remote = own.swap_remove(rng.below(own.len() as u64) as usize);
            let r = StorageClient::new(c).delete("group1", &remote).await;
            let mut l = ledger.lock().unwrap();
            l.live.remove(&remote);
            l.downloaded.remove(&remote);
            match &r {
                Ok(()) => {
                    l.deleted.insert(remote);
                    counters.deletes.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    l.uncertain.insert(remote);
                }
            }
            r.is_ok()
        } else {
            let len = 1 + rng.below(MAX_UPLOAD_BYTES as u64) as usize;
            let mut data = rng.bytes(len);
            if rng.below(4) == 0 {
                // Mostly zeros, as much real data is: a slot that starts
                // inside such a file's stale bytes sees a "free" header.
                data[len.min(16)..].fill(0);
            }
            let r = StorageClient::new(c)
                .upload(
                    UploadKind::Normal,
                    -1,
                    "bin",
                    &mut data.as_slice(),
                    len as u64,
                )
                .await;
            match r {
                Ok(id) => {
                    ledger
                        .lock()
                        .unwrap()
                        .live
                        .insert(id.remote.clone(), Digest::of(&data));
                    own.push(id.remote);
                    counters.uploads.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    if std::env::var("FDFS_CRASH_DEBUG").is_ok() {
                        eprintln!(
                            "upload to {addr}: {e} at {:?}",
                            T0.get().map(|t| t.elapsed())
                        );
                    }
                    false
                }
            }
        };
        if !ok {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            conn = None;
            // No busy loop while the group has no trunk server.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// py3fdfs uploading through the tracker for one round.
struct PyUploader {
    child: std::process::Child,
    stop_file: PathBuf,
}

impl PyUploader {
    fn start(s: &Servers, seed: u64) -> PyUploader {
        let conf = s.dir.path().join("client.conf");
        std::fs::write(
            &conf,
            format!(
                "connect_timeout = 5\nnetwork_timeout = 10\nbase_path = {}\ntracker_server = {}\n",
                s.dir.path().display(),
                s.tracker_addr()
            ),
        )
        .unwrap();
        let stop_file = s.dir.path().join("py_stop");
        let _ = std::fs::remove_file(&stop_file);
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/trunk_crash_upload.py"
        );
        let child = Command::new("python3")
            .arg(script)
            .arg(&conf)
            .arg(&stop_file)
            .arg((seed % (1 << 62)).to_string())
            .arg(MAX_UPLOAD_BYTES.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 must be installed to run the trunk crash test's py3fdfs uploads");
        PyUploader { child, stop_file }
    }

    /// Stops it and puts its acknowledged uploads into the ledger; returns
    /// how many.
    fn finish(mut self, ledger: &Mutex<Ledger>) -> usize {
        std::fs::write(&self.stop_file, b"").unwrap();
        let out = self.child.stdout.take().unwrap();
        let mut n = 0;
        let mut l = ledger.lock().unwrap();
        for line in std::io::BufReader::new(out).lines() {
            let line = line.unwrap();
            // py3fdfs prints its own errors on stdout too.
            let Some(acked) = line.strip_prefix("acked ") else {
                continue;
            };
            let cols: Vec<&str> = acked.split(' ').collect();
            let [id, len, crc] = cols[..] else {
                panic!("py3fdfs uploader: {line}");
            };
            let remote = id
                .strip_prefix("group1/")
                .unwrap_or_else(|| panic!("py3fdfs uploaded outside group1: {line}"));
            l.live.insert(
                remote.to_string(),
                Digest {
                    len: len.parse().unwrap(),
                    crc: u32::from_str_radix(crc, 16).unwrap(),
                },
            );
            n += 1;
        }
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "py3fdfs uploader failed (is py3fdfs installed?): {status}"
        );
        n
    }
}

impl Drop for PyUploader {
    /// A failing test leaves no uploader running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The trunk location behind a live file's name; None for a plain file
/// (stored while the group had no serving trunk server: the storage does
/// not wait for one, see trunk/client.rs).
fn location(remote: &str) -> Option<(RemoteName, TrunkLocation)> {
    let name = RemoteName::parse(remote, 1).unwrap_or_else(|e| panic!("bad name {remote}: {e:?}"));
    let loc = TrunkLocation::from_remote(&name)?;
    Some((name, loc))
}

/// The trunk file a slot lives in.
type TrunkKey = (u8, u8, u8, u32);

fn key(loc: &TrunkLocation) -> TrunkKey {
    (
        loc.store_path_index,
        loc.sub_path_high,
        loc.sub_path_low,
        loc.trunk_file_id,
    )
}

/// No two live files share a byte of trunk space.
fn assert_no_overlap(live: &BTreeMap<String, Digest>, round: usize) {
    let mut by_file: BTreeMap<TrunkKey, Vec<(u64, u64, &str)>> = BTreeMap::new();
    for remote in live.keys() {
        let Some((_, loc)) = location(remote) else {
            continue;
        };
        by_file
            .entry(key(&loc))
            .or_default()
            .push((u64::from(loc.offset), slot_end(&loc), remote));
    }
    for (k, mut slots) in by_file {
        slots.sort();
        for w in slots.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "round {round}: trunk file {k:?}: {} [{}, {}) and {} [{}, {}) overlap",
                w[0].2,
                w[0].0,
                w[0].1,
                w[1].2,
                w[1].0,
                w[1].1
            );
        }
    }
}

/// Every live file's slot on member `store`'s disk holds its header and
/// content (a direct read of the trunk file: cheap for every file every
/// round, where downloads check the new ones).
fn assert_on_disk(store: &Path, live: &BTreeMap<String, Digest>, round: usize) {
    let mut files: BTreeMap<TrunkKey, std::fs::File> = BTreeMap::new();
    for (remote, d) in live {
        let Some((name, loc)) = location(remote) else {
            let content = std::fs::read(store.join("data").join(&remote[4..]))
                .unwrap_or_else(|e| panic!("round {round}: plain {remote}: {e}"));
            assert_eq!(Digest::of(&content), *d, "round {round}: plain {remote}");
            continue;
        };
        let file = files.entry(key(&loc)).or_insert_with(|| {
            let p = store.join(loc.trunk_file_relative_path());
            std::fs::File::open(&p)
                .unwrap_or_else(|e| panic!("round {round}: {}: {e}", p.display()))
        });
        let mut header = [0u8; SLOT_HEADER_LEN];
        file.read_exact_at(&mut header, u64::from(loc.offset))
            .unwrap();
        assert!(
            SlotHeader::matches_name(&header, &name),
            "round {round}: {}: slot of {remote} holds {:?}",
            store.display(),
            SlotHeader::decode(&header)
        );
        let mut content = vec![0u8; d.len as usize];
        file.read_exact_at(&mut content, loc.content_offset())
            .unwrap();
        assert_eq!(
            Digest::of(&content),
            *d,
            "round {round}: {}: content of {remote}",
            store.display()
        );
    }
}

async fn download(c: &mut Conn, remote: &str) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    StorageClient::new(c)
        .download("group1", remote, 0, 0, &mut out)
        .await?;
    Ok(out)
}

/// Whether every file of `want` downloads intact from member `i` and
/// every name of `gone` is ENOENT there; the first problem otherwise.
async fn served_by(
    s: &Servers,
    i: usize,
    want: &[(String, Digest)],
    gone: &[String],
) -> Result<(), String> {
    let mut c = fdfs_testkit::try_connect(s.storage_addr(i))
        .await
        .map_err(|e| format!("connect member {i}: {e}"))?;
    for (remote, d) in want {
        match download(&mut c, remote).await {
            Ok(bytes) if Digest::of(&bytes) == *d => {}
            Ok(bytes) => {
                return Err(format!(
                    "{remote} from member {i}: {} bytes, not what was sent ({d:?})",
                    bytes.len()
                ))
            }
            Err(e) => return Err(format!("{remote} from member {i}: {e}")),
        }
    }
    for remote in gone {
        match download(&mut c, remote).await {
            Err(ClientError::Status(Status::ENOENT)) => {}
            other => {
                return Err(format!(
                    "deleted {remote} on member {i}: {:?}",
                    other.map(|b| b.len())
                ))
            }
        }
    }
    Ok(())
}

/// The free trunk space a binlog describes, replayed line by line as a
/// member applies it: `A` adds a slot, `D` removes it.
fn replay(binlog: &[u8]) -> BTreeSet<(TrunkKey, u32, u32)> {
    let (records, refused, consumed) = parse_lines(binlog);
    assert_eq!(refused, 0, "trunk binlog lines refused");
    assert_eq!(consumed, binlog.len(), "trunk binlog ends with a torn line");
    let mut free = BTreeSet::new();
    for r in records {
        let k = (key(&r.slot), r.slot.offset, r.slot.size);
        match r.op {
            TrunkOp::AddSpace => {
                assert!(free.insert(k), "slot {:?} added twice", r.slot);
            }
            TrunkOp::DelSpace => {
                assert!(free.remove(&k), "slot {:?} removed while not free", r.slot);
            }
        }
    }
    free
}

/// Convergence of the trunk binlogs, as the trunk server keeps them
/// (trunk/role.rs, space.rs): the server pushes its `data/trunk/binlog`
/// to every other member (SYNC_BINLOG 30; a member without a mark is
/// truncated first, 33), and a member appends the pushed lines verbatim.
/// So once uploads stop, every member's binlog is byte for byte the
/// server's, hence the same free space. Also: that free space, less the
/// slots the server quarantined when it took over (free in its binlog,
/// never handed out), overlaps no live file: a slot holding a live file
/// is never handed out again.
fn assert_binlogs_converge(
    s: &Servers,
    trunk: usize,
    live: &BTreeMap<String, Digest>,
    round: usize,
) -> usize {
    let read = |i: usize| std::fs::read(s.store(i).join("data/trunk/binlog")).unwrap_or_default();
    let mut last = Vec::new();
    let same = wait_until(DEADLINE, || {
        let server = read(trunk);
        last = (0..MEMBERS).map(read).map(|b| b.len()).collect();
        !server.is_empty() && (0..MEMBERS).all(|i| read(i) == server)
    });
    assert!(
        same,
        "round {round}: trunk binlogs differ from the server's (member {trunk}): sizes {last:?}"
    );
    let binlog = read(trunk);
    let free = replay(&binlog);
    let quarantine =
        std::fs::read(s.store(trunk).join("data/trunk/quarantine")).unwrap_or_default();
    let (quarantined, refused, _) = parse_lines(&quarantine);
    assert_eq!(refused, 0, "round {round}: quarantine lines refused");
    let quarantined: BTreeSet<_> = quarantined
        .iter()
        .map(|r| (key(&r.slot), r.slot.offset, r.slot.size))
        .collect();
    let usable: BTreeMap<TrunkKey, Vec<(u64, u64)>> =
        free.difference(&quarantined)
            .fold(BTreeMap::new(), |mut m, (k, off, size)| {
                m.entry(*k)
                    .or_default()
                    .push((u64::from(*off), u64::from(*off) + u64::from(*size)));
                m
            });
    for remote in live.keys() {
        let Some((_, loc)) = location(remote) else {
            continue;
        };
        let (a, b) = (u64::from(loc.offset), slot_end(&loc));
        if let Some(slots) = usable.get(&key(&loc)) {
            for (x, y) in slots {
                assert!(
                    b <= *x || *y <= a,
                    "round {round}: free trunk space [{x}, {y}) of the server's binlog \
                     overlaps live {remote} [{a}, {b})"
                );
            }
        }
    }
    binlog.len()
}

/// After the old trunk server is back (load stopped): every check of the
/// module doc.
fn verify_round(s: &Servers, rt: &tokio::runtime::Runtime, ledger: &Mutex<Ledger>, round: usize) {
    let trunk = s.wait_all_active(rt);
    let mut l = ledger.lock().unwrap();
    for r in &l.uncertain.clone() {
        l.deleted.remove(r);
    }
    assert_no_overlap(&l.live, round);
    let new: Vec<(String, Digest)> = l
        .live
        .iter()
        .filter(|(r, _)| !l.downloaded.contains(*r))
        .map(|(r, d)| (r.clone(), *d))
        .collect();
    let gone: Vec<String> = l.deleted.difference(&l.gone_checked).cloned().collect();
    let mut problem = String::new();
    let served = wait_until(DEADLINE, || {
        rt.block_on(async {
            for i in 0..MEMBERS {
                if let Err(e) = served_by(s, i, &new, &gone).await {
                    problem = e;
                    return false;
                }
            }
            true
        })
    });
    assert!(served, "round {round}: {problem}");
    for i in 0..MEMBERS {
        assert_on_disk(&s.store(i), &l.live, round);
    }
    let binlog_bytes = assert_binlogs_converge(s, trunk, &l.live, round);
    let l = &mut *l;
    l.downloaded.extend(new.into_iter().map(|(r, _)| r));
    l.gone_checked.extend(gone);
    eprintln!(
        "round {round}: trunk server now member {trunk}, trunk binlog {binlog_bytes} bytes on every member"
    );
}

// `FDFS_CRASH_ROUNDS=30 cargo test -p fdfs --test trunk_crash` for the
// long run by hand; FDFS_CRASH_SEED replays one, FDFS_CRASH_KEEP keeps
// its directories.
#[test]
fn trunk_server_killed_under_load_hands_no_slot_out_twice() {
    let seed = seed();
    let rounds = rounds();
    eprintln!("trunk crash test: FDFS_CRASH_SEED={seed} FDFS_CRASH_ROUNDS={rounds}");
    let started = Instant::now();
    T0.get_or_init(Instant::now);
    let mut rng = Rng(seed);
    let rt = multi_thread_rt();
    let mut s = Servers::start(191);
    let mut trunk = s.wait_all_active(&rt);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let counters = Arc::new(Counters::default());
    let mut py_uploads = 0;
    let mut failovers = Vec::new();
    for round in 0..rounds {
        let round_started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|w| {
                rt.spawn(client_loop(
                    s.storage_addr(w % MEMBERS),
                    Rng(rng.next()),
                    ledger.clone(),
                    counters.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let py = PyUploader::start(&s, rng.next());
        let acked = |c: &Counters| c.uploads.load(Ordering::Relaxed);
        let before = acked(&counters);
        assert!(
            wait_until(DEADLINE, || acked(&counters) > before + ACKED_BEFORE_KILL),
            "round {round}: the load did not start"
        );
        std::thread::sleep(Duration::from_millis(rng.below(500)));
        let victim = trunk;
        s.kill_storage(victim);
        let killed = Instant::now();
        if std::env::var("FDFS_CRASH_DEBUG").is_ok() {
            eprintln!("killed at {:?}", T0.get().map(|t| t.elapsed()));
        }
        let mut next = None;
        assert!(
            wait_until(DEADLINE, || {
                next = s.trunk_server(&rt).filter(|&t| t != victim);
                next.is_some()
            }),
            "round {round}: no new trunk server after the kill of member {victim}"
        );
        let failover = killed.elapsed();
        if std::env::var("FDFS_CRASH_DEBUG").is_ok() {
            eprintln!("failover at {:?}", T0.get().map(|t| t.elapsed()));
        }
        failovers.push(failover);
        let after = acked(&counters);
        assert!(
            wait_until(DEADLINE, || acked(&counters) > after + ACKED_AFTER_FAILOVER),
            "round {round}: uploads did not go on after the failover"
        );
        s.start_storage(victim);
        trunk = s.wait_all_active(&rt);
        stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            for w in workers {
                w.await.unwrap();
            }
        });
        py_uploads += py.finish(&ledger);
        let t = Instant::now();
        verify_round(&s, &rt, &ledger, round);
        let l = ledger.lock().unwrap();
        let plain = l.live.keys().filter(|r| location(r).is_none()).count();
        eprintln!(
            "round {round}: killed trunk server member {victim}, member {} took over in {failover:?}; \
             {} live files ({plain} plain), {} deleted, {} uncertain; {} uploads + {} deletes acked, {} failed, \
             {py_uploads} by py3fdfs; verified in {:?}, round took {:?}",
            next.unwrap(),
            l.live.len(),
            l.deleted.len(),
            l.uncertain.len(),
            counters.uploads.load(Ordering::Relaxed),
            counters.deletes.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
            t.elapsed(),
            round_started.elapsed(),
        );
    }
    // The last word: every live file downloads from every member.
    let l = ledger.lock().unwrap();
    let all: Vec<(String, Digest)> = l.live.iter().map(|(r, d)| (r.clone(), *d)).collect();
    let gone: Vec<String> = l.deleted.iter().cloned().collect();
    rt.block_on(async {
        for i in 0..MEMBERS {
            served_by(&s, i, &all, &gone).await.unwrap();
        }
    });
    assert!(py_uploads > 0, "py3fdfs got no upload through");
    eprintln!(
        "trunk crash test: {rounds} rounds, {} live files, {} deletes, {py_uploads} py3fdfs uploads, \
         failovers {failovers:?}, {:?}",
        l.live.len(),
        l.deleted.len(),
        started.elapsed()
    );
}
