//! Crash safety (#12.2): the real `fdfs` binary, one process per server,
//! killed with SIGKILL under load and started again. After each restart
//! every acknowledged change is there, intact, on both members; nothing
//! partial is served; no debris is left; the binlog holds only whole
//! records; replication resumes and the members end identical.
//!
//! `FDFS_CRASH_ROUNDS` (default 5) sets the number of kills per test,
//! `FDFS_CRASH_SEED` the seed (printed, to replay a failing run).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_client::{Conn, StorageClient, TrackerClient, UploadKind};
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::stat::storage_status;
use fdfs_proto::StorageCmd;
use fdfs_testkit::{free_port, wait_until, ProcessGuard};

/// Generous: a loaded 2-CPU machine, servers starting from scratch.
const DEADLINE: Duration = Duration::from_secs(60);
/// Concurrent client connections of the storage test.
const CONNECTIONS: usize = 256;
/// Largest normal upload of the load (bytes).
const MAX_UPLOAD_BYTES: usize = 32 * 1024;
/// Largest append or modify of the load (bytes): several body chunks, so
/// that kills land between the writes of one change.
const MAX_CHANGE_BYTES: usize = 512 * 1024;
/// Largest appender upload of the load (bytes).
const MAX_APPENDER_UPLOAD_BYTES: usize = 8 * 1024;

fn rounds() -> usize {
    std::env::var("FDFS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
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

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let fill = self.next() as u8;
        (0..len)
            .map(|i| fill.wrapping_add((i as u8).wrapping_mul(7)))
            .collect()
    }
}

/// A tracker and two storages of `group1`, each a process of its own.
struct Servers {
    tracker_port: u16,
    storage_port: u16,
    storage_ips: [String; 2],
    tracker: Option<ProcessGuard>,
    storages: [Option<ProcessGuard>; 2],
    /// Last: removed after the processes are stopped.
    dir: tempfile::TempDir,
}

impl Servers {
    /// `first_octet`: the storages listen on 127.0.0.<first_octet> and the
    /// next address (each test its own).
    fn start(first_octet: u8) -> Servers {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Servers {
            tracker_port: free_port(),
            storage_port: free_port(),
            storage_ips: [
                format!("127.0.0.{first_octet}"),
                format!("127.0.0.{}", first_octet + 1),
            ],
            dir,
            tracker: None,
            storages: [None, None],
        };
        s.write_confs();
        s.start_tracker();
        s.start_storage(0);
        s.start_storage(1);
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
        std::fs::create_dir_all(self.tracker_base()).unwrap();
        std::fs::write(
            self.dir.path().join("tracker.conf"),
            format!(
                "bind_addr = 127.0.0.1\nport = {}\nbase_path = {}\nreserved_storage_space = 1%\n\
                 check_active_interval = 5\nlog_level = warn\n",
                self.tracker_port,
                self.tracker_base().display()
            ),
        )
        .unwrap();
        for i in 0..2 {
            let base = self.store(i);
            std::fs::create_dir_all(&base).unwrap();
            std::fs::write(
                self.dir.path().join(format!("storage{i}.conf")),
                format!(
                    "group_name = group1\nbind_addr = {ip}\nport = {port}\nbase_path = {base}\n\
                     store_path0 = {base}\nsubdir_count_per_path = 4\ntracker_server = 127.0.0.1:{tp}\n\
                     heart_beat_interval = 1\nstat_report_interval = 1\nsync_wait_msec = 20\n\
                     reserved_storage_space = 1%\nhttp.server_port = 0\nlog_level = warn\n",
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

    fn start_tracker(&mut self) {
        self.tracker = Some(self.spawn("tracker", "tracker.conf"));
    }

    fn start_storage(&mut self, i: usize) {
        self.storages[i] = Some(self.spawn("storage", &format!("storage{i}.conf")));
    }

    fn kill_tracker(&mut self) {
        kill9(self.tracker.take());
    }

    fn kill_storage(&mut self, i: usize) {
        kill9(self.storages[i].take());
    }

    /// Statuses of both storages on the tracker (None: not listed or no
    /// answer).
    fn statuses(&self, rt: &tokio::runtime::Runtime) -> [Option<u8>; 2] {
        let list = rt.block_on(async {
            let Ok(mut c) = fdfs_testkit::try_connect(self.tracker_addr()).await else {
                return Vec::new();
            };
            TrackerClient::new(&mut c)
                .list_storages("group1", None)
                .await
                .unwrap_or_default()
        });
        [0, 1].map(|i| {
            list.iter()
                .find(|s| s.ip_addr == self.storage_ips[i])
                .map(|s| s.status)
        })
    }

    /// Waits until the tracker lists both storages ACTIVE and each answers.
    fn wait_all_active(&self, rt: &tokio::runtime::Runtime) {
        let ok = wait_until(DEADLINE, || {
            self.statuses(rt) == [Some(storage_status::ACTIVE); 2]
                && (0..2).all(|i| {
                    rt.block_on(async {
                        match fdfs_testkit::try_connect(self.storage_addr(i)).await {
                            Ok(mut c) => StorageClient::new(&mut c).active_test().await.is_ok(),
                            Err(_) => false,
                        }
                    })
                })
        });
        assert!(ok, "group did not converge: {:?}", self.statuses(rt));
    }
}

fn kill9(guard: Option<ProcessGuard>) {
    if let Some(mut g) = guard {
        g.0.kill().expect("SIGKILL");
        g.0.wait().expect("reap");
    }
}

fn multi_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What clients were told: acknowledged normal uploads, and appender
/// files with their acknowledged content (and, after a change that got no
/// answer, the content it would have made: either is right).
#[derive(Default)]
struct Ledger {
    normal: Vec<String>,
    /// `normal[..downloaded]` were downloaded intact in an earlier round
    /// (every round still checks every stored file against its name).
    downloaded: usize,
    appenders: HashMap<String, Appender>,
}

struct Appender {
    member: usize,
    acked: Vec<u8>,
    unanswered: Option<Vec<u8>>,
}

#[derive(Default)]
struct Counters {
    acked: AtomicUsize,
    failed: AtomicUsize,
}

/// One change of an appender, and the content it makes of `content`.
enum AppenderChange {
    Append(Vec<u8>),
    Modify(u64, Vec<u8>),
    Truncate(u64),
}

impl AppenderChange {
    fn pick(rng: &mut Rng, len: usize) -> Self {
        match rng.below(10) {
            0..=4 => {
                let n = 1 + rng.below(MAX_CHANGE_BYTES as u64) as usize;
                AppenderChange::Append(rng.bytes(n))
            }
            5..=7 => {
                let offset = rng.below(len as u64 + 1);
                let n = 1 + rng.below(MAX_CHANGE_BYTES as u64 / 4) as usize;
                AppenderChange::Modify(offset, rng.bytes(n))
            }
            _ => AppenderChange::Truncate(rng.below(len as u64 + 64)),
        }
    }

    fn apply(&self, content: &[u8]) -> Vec<u8> {
        let mut out = content.to_vec();
        match self {
            AppenderChange::Append(data) => out.extend_from_slice(data),
            AppenderChange::Modify(offset, data) => {
                let at = *offset as usize;
                if out.len() < at + data.len() {
                    out.resize(at + data.len(), 0);
                }
                out[at..at + data.len()].copy_from_slice(data);
            }
            AppenderChange::Truncate(size) => out.resize(*size as usize, 0),
        }
        out
    }

    async fn send(&self, c: &mut Conn, remote: &str) -> Result<(), fdfs_client::ClientError> {
        let mut s = StorageClient::new(c);
        match self {
            AppenderChange::Append(data) => {
                s.append(remote, &mut data.as_slice(), data.len() as u64)
                    .await
            }
            AppenderChange::Modify(offset, data) => {
                s.modify(remote, *offset, &mut data.as_slice(), data.len() as u64)
                    .await
            }
            AppenderChange::Truncate(size) => s.truncate(remote, *size).await,
        }
    }
}

/// One client connection's loop until `stop`: normal uploads, appender
/// uploads and changes of its own appender, on member `member`.
async fn client_loop(
    member: usize,
    addr: SocketAddr,
    mut rng: Rng,
    ledger: Arc<Mutex<Ledger>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<Conn> = None;
    let mut own: Option<(String, Vec<u8>)> = None;
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
        let ok = match (own.take(), rng.below(10)) {
            (Some((remote, content)), 0..=5) => {
                let change = AppenderChange::pick(&mut rng, content.len());
                let after = change.apply(&content);
                let r = change.send(c, &remote).await;
                let mut l = ledger.lock().unwrap();
                let entry = l.appenders.get_mut(&remote).expect("own appender");
                if r.is_ok() {
                    entry.acked = after.clone();
                    own = Some((remote, after));
                } else {
                    // No answer: either content is right; the file is left
                    // alone from now on.
                    entry.unanswered = Some(after);
                }
                r.is_ok()
            }
            (kept, pick) => {
                own = kept;
                let appender = own.is_none() && pick < 3;
                let len = if appender {
                    rng.below(MAX_APPENDER_UPLOAD_BYTES as u64) as usize
                } else {
                    1 + rng.below(MAX_UPLOAD_BYTES as u64) as usize
                };
                let data = rng.bytes(len);
                let kind = if appender {
                    UploadKind::Appender
                } else {
                    UploadKind::Normal
                };
                let r = StorageClient::new(c)
                    .upload(kind, -1, "bin", &mut data.as_slice(), len as u64)
                    .await;
                match r {
                    Ok(id) => {
                        let mut l = ledger.lock().unwrap();
                        if appender {
                            l.appenders.insert(
                                id.remote.clone(),
                                Appender {
                                    member,
                                    acked: data.clone(),
                                    unanswered: None,
                                },
                            );
                            own = Some((id.remote, data));
                        } else {
                            l.normal.push(id.remote);
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        if ok {
            counters.acked.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            conn = None;
        }
    }
}

/// Size and CRC32 of a stored file.
type Digest = (u64, u32);

/// Every file under `<store>/data/HH/HH/`, by remote name (`M00/...`),
/// with its size and CRC32; normal files are checked against their names
/// on the way.
fn stored_files(store: &Path) -> BTreeMap<String, Digest> {
    let mut out = BTreeMap::new();
    let data = store.join("data");
    for hi in std::fs::read_dir(&data).unwrap().flatten() {
        let h = hi.file_name().to_string_lossy().into_owned();
        if h.len() != 2 || !hi.path().is_dir() {
            continue;
        }
        for lo in std::fs::read_dir(hi.path()).unwrap().flatten() {
            let l = lo.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(lo.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Ok(bytes) = std::fs::read(f.path()) {
                    let remote = format!("M00/{h}/{l}/{name}");
                    assert!(
                        matches_its_name(&remote, &bytes),
                        "{} holds {} bytes that do not match its name",
                        f.path().display(),
                        bytes.len()
                    );
                    out.insert(remote, (bytes.len() as u64, fdfs_proto::crc32(&bytes)));
                }
            }
        }
    }
    out
}

/// A normal file's content matches the CRC32 and size in its name.
fn matches_its_name(remote: &str, content: &[u8]) -> bool {
    let name = RemoteName::parse(remote, 1).expect("a valid stored name");
    if !name.is_data_file() {
        return true;
    }
    let rec = name.record().expect("a record in the name");
    if rec.is_appender() {
        return true;
    }
    rec.crc32 == fdfs_proto::crc32(content) && rec.file_size() == Some(content.len() as u64)
}

/// No upload temp, undo journal or state-file temp left behind; only whole
/// binlog records.
fn assert_clean(store: &Path, round: usize) {
    let data = store.join("data");
    for dir in [data.join(".tmp"), data.join("pending")] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "round {round}: debris in {}: {left:?}",
            dir.display()
        );
    }
    for dir in [data.clone(), data.join("sync")] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !(name.ends_with(".tmp") && e.path().is_file()),
                "round {round}: stale temp {}",
                e.path().display()
            );
        }
    }
    for e in std::fs::read_dir(data.join("sync")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("binlog.") || name.len() != "binlog.000".len() {
            continue;
        }
        let text = std::fs::read(e.path()).unwrap();
        assert!(
            text.is_empty() || text.ends_with(b"\n"),
            "round {round}: {name} ends with a torn line"
        );
        for line in String::from_utf8_lossy(&text).lines() {
            assert!(
                fdfs_storage::binlog::parse_line(line).is_some(),
                "round {round}: garbage binlog line {line:?} in {}",
                e.path().display()
            );
        }
    }
}

/// CREATE records of `store`'s binlog whose file is not there.
fn records_without_file(store: &Path) -> usize {
    let text = std::fs::read_to_string(store.join("data/sync/binlog.000")).unwrap_or_default();
    text.lines()
        .filter_map(fdfs_storage::binlog::parse_line)
        .filter(|r| r.op == 'C' && !store.join("data").join(&r.filename[4..]).exists())
        .count()
}

async fn download(c: &mut Conn, remote: &str) -> Result<Vec<u8>, fdfs_client::ClientError> {
    let mut out = Vec::new();
    StorageClient::new(c)
        .download("group1", remote, 0, 0, &mut out)
        .await?;
    Ok(out)
}

/// After a restart (load stopped): both members converge to identical file
/// sets, every acknowledged file downloads intact from both, no stored
/// normal file contradicts its name, and nothing is left behind.
fn verify_round(s: &Servers, rt: &tokio::runtime::Runtime, ledger: &Mutex<Ledger>, round: usize) {
    s.wait_all_active(rt);
    let mut last = (BTreeMap::new(), BTreeMap::new());
    let identical = wait_until(DEADLINE, || {
        last = (stored_files(&s.store(0)), stored_files(&s.store(1)));
        last.0 == last.1
    });
    if !identical {
        let only: Vec<_> = last
            .0
            .keys()
            .filter(|k| last.1.get(*k) != last.0.get(*k))
            .chain(last.1.keys().filter(|k| !last.0.contains_key(*k)))
            .take(10)
            .collect();
        panic!(
            "round {round}: members differ ({} vs {} files), e.g. {only:?}",
            last.0.len(),
            last.1.len()
        );
    }
    let mut l = ledger.lock().unwrap();
    rt.block_on(async {
        let mut conns = [
            fdfs_testkit::connect(s.storage_addr(0)).await,
            fdfs_testkit::connect(s.storage_addr(1)).await,
        ];
        let l = &mut *l;
        for remote in &l.normal[l.downloaded..] {
            for (i, c) in conns.iter_mut().enumerate() {
                let got = download(c, remote)
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: {remote} from member {i}: {e}"));
                assert!(
                    matches_its_name(remote, &got),
                    "round {round}: {remote} from member {i} is corrupt"
                );
            }
        }
        for (remote, a) in l.appenders.iter_mut() {
            let mut seen = Vec::new();
            for (i, c) in conns.iter_mut().enumerate() {
                seen.push(match download(c, remote).await {
                    Ok(bytes) => bytes,
                    // A 0-byte file cannot be read (EINVAL, as the original),
                    // and an EINVAL answer ends the connection.
                    Err(fdfs_client::ClientError::Status(fdfs_proto::Status::EINVAL)) => {
                        *c = fdfs_testkit::connect(s.storage_addr(i)).await;
                        Vec::new()
                    }
                    Err(e) => panic!("round {round}: appender {remote} (member {}): {e}", a.member),
                });
            }
            assert_eq!(seen[0], seen[1], "round {round}: {remote} differs");
            let ok = seen[0] == a.acked || a.unanswered.as_ref() == Some(&seen[0]);
            assert!(
                ok,
                "round {round}: appender {remote} holds {} bytes, acknowledged {} (unanswered change: {:?} bytes)",
                seen[0].len(),
                a.acked.len(),
                a.unanswered.as_ref().map(Vec::len)
            );
            a.acked = seen.swap_remove(0);
            a.unanswered = None;
        }
        l.downloaded = l.normal.len();
    });
    for i in 0..2 {
        assert_clean(&s.store(i), round);
    }
}

#[test]
fn storage_killed_under_load_keeps_every_acknowledged_change() {
    let seed = seed();
    let rounds = rounds();
    eprintln!("storage crash test: FDFS_CRASH_SEED={seed} FDFS_CRASH_ROUNDS={rounds}");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let rt = multi_thread_rt();
    let mut s = Servers::start(151);
    s.wait_all_active(&rt);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let counters = Arc::new(Counters::default());
    let mut mid_write_kills = 0;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|w| {
                let member = w % 2;
                rt.spawn(client_loop(
                    member,
                    s.storage_addr(member),
                    Rng(rng.next()),
                    ledger.clone(),
                    counters.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let victim = rng.below(2) as usize;
        let acked_before = counters.acked.load(Ordering::Relaxed);
        // A random moment once the load runs.
        let load_started = wait_until(DEADLINE, || {
            counters.acked.load(Ordering::Relaxed) > acked_before + 20
        });
        assert!(load_started, "round {round}: no upload succeeded");
        std::thread::sleep(Duration::from_millis(rng.below(800)));
        s.kill_storage(victim);
        // Changes the kill caught between touching a data file and writing
        // its binlog record: what the restart has to take back.
        let in_flight = std::fs::read_dir(s.store(victim).join("data/pending"))
            .map(|d| d.count())
            .unwrap_or(0);
        // Uploads the kill caught between their record and their link.
        let unlinked = records_without_file(&s.store(victim));
        if in_flight + unlinked > 0 {
            mid_write_kills += 1;
        }
        // What a kill between a mark file's temp and its rename leaves
        // (checked gone by `assert_clean`).
        std::fs::write(
            s.store(victim).join("data/sync/killed_writer.mark.tmp"),
            STALE_TEMP,
        )
        .unwrap();
        // The survivor keeps taking writes while the victim is down.
        std::thread::sleep(Duration::from_millis(rng.below(500)));
        s.start_storage(victim);
        s.wait_all_active(&rt);
        stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            for w in workers {
                w.await.unwrap();
            }
        });
        let t = Instant::now();
        verify_round(&s, &rt, &ledger, round);
        let l = ledger.lock().unwrap();
        eprintln!(
            "round {round}: killed member {victim} with {in_flight} changes in the undo journal, \
             {unlinked} records without their file; {} normal + {} appender files acknowledged so far; {} ops acked, {} failed; verified in {:?}",
            l.normal.len(),
            l.appenders.len(),
            counters.acked.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
            t.elapsed()
        );
    }
    py3fdfs_reads_back(&s, &ledger.lock().unwrap().normal);
    eprintln!(
        "storage crash test: {rounds} rounds, {mid_write_kills} kills caught changes in flight, {:?}",
        started.elapsed()
    );
}

/// Acknowledged uploads read back through the tracker by the independent
/// client py3fdfs match their file ids: what survived the kills is what any
/// FastDFS client gets.
fn py3fdfs_reads_back(s: &Servers, normal: &[String]) {
    /// Files read back (spread over the whole run).
    const SAMPLE: usize = 40;
    let step = (normal.len() / SAMPLE).max(1);
    let ids: Vec<String> = normal
        .iter()
        .step_by(step)
        .map(|r| format!("group1/{r}"))
        .collect();
    let conf = s.dir.path().join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "connect_timeout = 10\nnetwork_timeout = 30\nbase_path = {}\ntracker_server = {}\n",
            s.dir.path().display(),
            s.tracker_addr()
        ),
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/crash_readback.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run the crash test's py3fdfs read-back");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(ids.join("\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py3fdfs read-back failed (is py3fdfs installed?): {text}"
    );
    let mut checked = 0;
    for line in text.lines() {
        let cols: Vec<&str> = line.split(' ').collect();
        let [id, size, crc] = cols[..] else {
            panic!("py3fdfs could not read a file back: {line}");
        };
        let remote = id.strip_prefix("group1/").unwrap();
        let rec = RemoteName::parse(remote, 1).unwrap().record().unwrap();
        assert_eq!(
            (rec.file_size(), rec.crc32),
            (size.parse().ok(), u32::from_str_radix(crc, 16).unwrap()),
            "py3fdfs read {id} back different"
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        ids.len(),
        "py3fdfs answered for every file: {text}"
    );
}

/// Content of the stale temp the tracker test leaves for the restart.
const STALE_TEMP: &[u8] = b"left by a killed writer";

#[test]
fn tracker_killed_while_storages_join_restarts_from_its_files() {
    let seed = seed();
    let rounds = rounds();
    eprintln!("tracker crash test: FDFS_CRASH_SEED={seed} FDFS_CRASH_ROUNDS={rounds}");
    let started = Instant::now();
    let mut rng = Rng(seed ^ 0x5EED);
    let rt = multi_thread_rt();
    let mut s = Servers::start(161);
    s.wait_all_active(&rt);
    let mut files = Vec::new();
    for round in 0..rounds {
        // Storages restart (JOIN, then beat every second) while the tracker
        // is killed at a random moment of it.
        for i in 0..2 {
            if let Some(mut g) = s.storages[i].take() {
                g.terminate();
            }
            s.start_storage(i);
        }
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        s.kill_tracker();
        // What a kill between writing a data file's temp and its rename
        // leaves: the restarted tracker must not trip over it or keep it.
        let data_dir = s.tracker_base().join("data");
        // (A name the tracker never writes itself, so only the start-up
        // clean-up can remove it.)
        let planted = data_dir.join("storage_state_of_a_killed_writer.dat.tmp");
        std::fs::write(&planted, STALE_TEMP).unwrap();
        s.start_tracker();
        s.wait_all_active(&rt);
        for name in ["storage_groups_new.dat", "storage_servers_new.dat"] {
            let text = std::fs::read_to_string(data_dir.join(name))
                .unwrap_or_else(|e| panic!("round {round}: {name}: {e}"));
            assert!(text.contains("group1"), "round {round}: {name}: {text}");
        }
        assert!(
            !planted.exists(),
            "round {round}: the stale temp survived the start"
        );
        // Uploads through the restarted tracker reach both members.
        let data = rng.bytes(1000 + round);
        let id = rt.block_on(async {
            let client = fdfs_client::Client::new(fdfs_client::ClientOptions {
                trackers: vec![fdfs_config::TrackerAddr {
                    hosts: vec!["127.0.0.1".into()],
                    port: s.tracker_port,
                }],
                connect_timeout: Duration::from_secs(2),
                network_timeout: Duration::from_secs(10),
                ..Default::default()
            })
            .unwrap();
            let opts = fdfs_client::UploadOptions {
                ext: Some("bin".into()),
                ..Default::default()
            };
            client.upload_buffer(&data, &opts).await
        });
        let id = id.unwrap_or_else(|e| panic!("round {round}: upload after restart: {e}"));
        files.push((id.remote, data));
        let replicated = wait_until(DEADLINE, || {
            rt.block_on(async {
                for i in 0..2 {
                    let Ok(mut c) = fdfs_testkit::try_connect(s.storage_addr(i)).await else {
                        return false;
                    };
                    for (remote, data) in &files {
                        if download(&mut c, remote).await.ok().as_ref() != Some(data) {
                            return false;
                        }
                    }
                }
                true
            })
        });
        assert!(
            replicated,
            "round {round}: uploads did not reach both members"
        );
        eprintln!("tracker round {round}: converged");
    }
    eprintln!(
        "tracker crash test: {rounds} rounds, {:?}",
        started.elapsed()
    );
}

/// A client that breaks off an append mid-body: the bytes that arrived
/// are taken back, the file is as it was, and the binlog has no record.
#[test]
fn append_cut_off_mid_body_is_taken_back() {
    use std::io::Write;
    let cluster = fdfs_testkit::Cluster::start();
    let rt = fdfs_testkit::rt();
    let remote = rt.block_on(async {
        let mut c = fdfs_testkit::connect(cluster.storage_addr).await;
        let data = b"appender before";
        StorageClient::new(&mut c)
            .upload(
                UploadKind::Appender,
                -1,
                "bin",
                &mut &data[..],
                data.len() as u64,
            )
            .await
            .unwrap()
            .remote
    });
    let size: usize = 1 << 20;
    let head = fdfs_client::storage::append_head(&remote, size as u64);
    let mut packet = BytesMut::new();
    fdfs_proto::Header::new(StorageCmd::AppendFile.into(), head.len() + size).encode(&mut packet);
    let mut raw = std::net::TcpStream::connect(cluster.storage_addr).unwrap();
    raw.write_all(&packet).unwrap();
    raw.write_all(&head).unwrap();
    raw.write_all(&vec![7u8; size / 2]).unwrap();
    let store = cluster.store_paths[0].clone();
    let file = store.join("data").join(&remote[4..]);
    assert!(
        wait_until(DEADLINE, || std::fs::metadata(&file)
            .is_ok_and(|m| m.len() > 15)),
        "part of the append reached the file"
    );
    drop(raw);
    let restored = wait_until(DEADLINE, || {
        std::fs::read(&file).is_ok_and(|b| b == b"appender before")
            && std::fs::read_dir(cluster.storage_base.join("data/pending"))
                .is_ok_and(|d| d.count() == 0)
    });
    assert!(
        restored,
        "the cut-off append stayed: {} bytes",
        std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0)
    );
    let binlog =
        std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000")).unwrap();
    assert!(
        binlog.lines().all(|l| !l.contains(" A ")),
        "no append record: {binlog}"
    );
}

/// A kill between an upload's CREATE record and the link of its file
/// leaves a record whose file is missing (the record reaches the kernel
/// first, on purpose: never a file without its record). The two steps are
/// one syscall apart, so the test kills the storage for real and then lays
/// down exactly what such a kill leaves: the record at the end of the
/// binlog and the received upload in `data/.tmp`. After the restart the
/// file is not there and not served, the temp is gone, every binlog line
/// parses, and the sync sender steps over the record: an upload after it
/// reaches the peer, and both members end identical.
#[test]
fn a_kill_between_create_record_and_link_leaves_a_record_the_sender_skips() {
    let rt = multi_thread_rt();
    let mut s = Servers::start(171);
    s.wait_all_active(&rt);
    let upload = |s: &Servers, data: &[u8]| {
        rt.block_on(async {
            let mut c = fdfs_testkit::connect(s.storage_addr(0)).await;
            StorageClient::new(&mut c)
                .upload(
                    UploadKind::Normal,
                    -1,
                    "bin",
                    &mut &data[..],
                    data.len() as u64,
                )
                .await
                .unwrap()
                .remote
        })
    };
    let before = upload(&s, b"acknowledged before the kill");
    assert!(
        wait_until(DEADLINE, || stored_files(&s.store(1)).contains_key(&before)),
        "{before} reached the peer"
    );
    s.kill_storage(0);

    // The name the killed upload was about to link: another file's name
    // with a different CRC32 field.
    let mut unlinked = before.clone().into_bytes();
    let at = "M00/00/00/".len() + 24;
    unlinked[at] = if unlinked[at] == b'A' { b'B' } else { b'A' };
    let unlinked = String::from_utf8(unlinked).unwrap();
    assert!(fdfs_storage::binlog::parse_line(&format!("1 C {unlinked}")).is_some());
    let data = s.store(0).join("data");
    let binlog_path = data.join("sync/binlog.000");
    let mut binlog = std::fs::read_to_string(&binlog_path).unwrap();
    let ts = binlog
        .lines()
        .last()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    binlog.push_str(&format!("{ts} C {unlinked}\n"));
    std::fs::write(&binlog_path, binlog).unwrap();
    std::fs::create_dir_all(data.join(".tmp")).unwrap();
    std::fs::write(
        data.join(".tmp/00c0ffee00c0ffee.tmp"),
        b"received, never linked",
    )
    .unwrap();

    s.start_storage(0);
    s.wait_all_active(&rt);
    let after = upload(&s, b"acknowledged after the restart");
    let mut last = (BTreeMap::new(), BTreeMap::new());
    let converged = wait_until(DEADLINE, || {
        last = (stored_files(&s.store(0)), stored_files(&s.store(1)));
        last.0 == last.1 && last.1.contains_key(&after)
    });
    assert!(
        converged,
        "the sender went past the record: {:?} vs {:?}",
        last.0.keys().collect::<Vec<_>>(),
        last.1.keys().collect::<Vec<_>>()
    );
    assert!(!last.0.contains_key(&unlinked) && last.0.contains_key(&before));
    rt.block_on(async {
        for i in 0..2 {
            let mut c = fdfs_testkit::connect(s.storage_addr(i)).await;
            let missing = download(&mut c, &unlinked).await;
            assert!(
                matches!(
                    missing,
                    Err(fdfs_client::ClientError::Status(fdfs_proto::Status::ENOENT))
                ),
                "member {i} answers ENOENT for the unlinked name: {missing:?}"
            );
        }
    });
    // Stopped first: a running storage's periodic state writes pass
    // through `*.tmp` files that a live check could catch mid-rename.
    for i in 0..2 {
        if let Some(mut g) = s.storages[i].take() {
            g.terminate();
        }
        assert_clean(&s.store(i), 0);
    }
}
