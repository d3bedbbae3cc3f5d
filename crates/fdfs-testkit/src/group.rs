//! A small FastDFS cluster in one process: one or more trackers and one or
//! more groups of storages. Every server has its own loopback address
//! (127.0.0.x); all storages share one port, as FastDFS requires of the
//! members of a group in IP mode. Every storage is configured with every
//! tracker, so it JOINs and beats each of them. Trackers and storages can
//! be stopped and restarted (on the same address and data directory), and
//! members can be added while the test runs.
//!
//! Storages are numbered in the order they were created, across groups:
//! `Group::start(3)` has members 0, 1, 2 of `group1`; with
//! `groups: vec![("group1", 2), ("group2", 2)]` members 0 and 1 are in
//! `group1` and 2 and 3 in `group2`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fdfs_client::{Client, ClientOptions, Conn, TrackerClient};
use fdfs_config::storage::StorageConf;
use fdfs_config::tracker::TrackerConf;
use fdfs_config::{ReservedSpace, TrackerAddr};
use fdfs_proto::stat::{storage_status, StorageStat};
use tokio_util::sync::CancellationToken;

/// How long stopping a server may take (its data files are saved).
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// Next last octet for server addresses; tests in one process never share.
static NEXT_OCTET: AtomicU8 = AtomicU8::new(20);

fn next_ip() -> String {
    let octet = NEXT_OCTET.fetch_add(1, Ordering::Relaxed);
    format!("127.0.0.{}", 20 + octet % 230)
}

/// Changes applied to a server configuration before it starts.
pub type TrackerTweak = Arc<dyn Fn(&mut TrackerConf) + Send + Sync>;
/// Changes applied to each storage configuration before it first starts.
pub type StorageTweak = Arc<dyn Fn(&mut StorageConf) + Send + Sync>;

/// Shape of a test cluster.
#[derive(Clone)]
pub struct GroupOptions {
    /// Number of trackers (at least 1).
    pub trackers: usize,
    /// Groups and their initial member counts, in this order.
    pub groups: Vec<(&'static str, usize)>,
    /// Tracker `store_lookup`: 0 round robin, 1 `store_group`, 2 most free space.
    pub store_lookup: u8,
    /// Tracker `store_group` (used with `store_lookup = 1`).
    pub store_group: String,
    /// Further tracker settings (applied after the ones above).
    pub tweak_tracker: Option<TrackerTweak>,
    /// Further storage settings (applied to every member, also later ones).
    pub tweak_storage: Option<StorageTweak>,
    /// Storage ids of the first members, in creation order. Non-empty:
    /// the trackers run with `use_storage_id` and `id_type_in_filename =
    /// id`, and a storage_ids.conf lists these members (`<id> <group>
    /// <ip>`); members beyond the list, and members added later, are not
    /// in it.
    pub storage_ids: Vec<u32>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            trackers: 1,
            groups: vec![("group1", 1)],
            store_lookup: TrackerConf::default().store_lookup,
            store_group: String::new(),
            tweak_tracker: None,
            tweak_storage: None,
            storage_ids: Vec::new(),
        }
    }
}

struct TrackerNode {
    addr: SocketAddr,
    conf: TrackerConf,
    token: Option<CancellationToken>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Node {
    conf: StorageConf,
    token: Option<CancellationToken>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct Group {
    rt: tokio::runtime::Runtime,
    /// The first tracker.
    pub tracker_addr: SocketAddr,
    /// The port every storage listens on.
    pub port: u16,
    trackers: Vec<TrackerNode>,
    nodes: Vec<Node>,
    tweak_storage: Option<StorageTweak>,
    /// Addresses set aside for the members listed in storage_ids.conf,
    /// taken by `add_storage_to` in order.
    reserved_ips: std::collections::VecDeque<String>,
    dir: tempfile::TempDir,
}

impl Group {
    /// A tracker and `n` storages of `group1`. Callers wait for ACTIVE
    /// themselves (see [`Group::wait_all_active`]).
    pub fn start(n: usize) -> Group {
        Self::start_with(GroupOptions {
            groups: vec![("group1", n)],
            ..GroupOptions::default()
        })
    }

    /// Trackers first, then the members of each group in order.
    pub fn start_with(opts: GroupOptions) -> Group {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let (ids_file, reserved_ips) = write_storage_ids(&opts, dir.path());
        let mut trackers = Vec::new();
        for t in 0..opts.trackers.max(1) {
            let ip = next_ip();
            let probe = std::net::TcpListener::bind(format!("{ip}:0")).expect("bind tracker");
            let addr = probe.local_addr().expect("addr");
            drop(probe);
            let mut conf = TrackerConf {
                base_path: dir.path().join(format!("tracker{t}")),
                port: addr.port(),
                bind_addr: ip,
                reserved_storage_space: ReservedSpace::Megabytes(1),
                check_active_interval_secs: 5,
                store_lookup: opts.store_lookup,
                store_group: opts.store_group.clone(),
                ..TrackerConf::default()
            };
            if let Some(path) = &ids_file {
                conf.use_storage_id = true;
                conf.storage_ids_filename = path.to_string_lossy().into_owned();
                conf.id_type_in_filename = "id".into();
            }
            if let Some(tweak) = &opts.tweak_tracker {
                tweak(&mut conf);
            }
            std::fs::create_dir_all(&conf.base_path).expect("dir");
            trackers.push(TrackerNode {
                addr,
                conf,
                token: None,
                task: None,
            });
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut g = Group {
            rt,
            tracker_addr: trackers[0].addr,
            port,
            trackers,
            nodes: Vec::new(),
            tweak_storage: opts.tweak_storage.clone(),
            reserved_ips,
            dir,
        };
        for t in 0..g.trackers.len() {
            g.start_tracker(t);
        }
        for (name, n) in &opts.groups {
            for _ in 0..*n {
                g.add_storage_to(name);
            }
        }
        g
    }

    // ---- trackers ----------------------------------------------------

    pub fn tracker_count(&self) -> usize {
        self.trackers.len()
    }

    /// Address of tracker `t`.
    pub fn tracker(&self, t: usize) -> SocketAddr {
        self.trackers[t].addr
    }

    pub fn tracker_addrs(&self) -> Vec<SocketAddr> {
        self.trackers.iter().map(|t| t.addr).collect()
    }

    /// Data directory (`base_path`) of tracker `t`.
    pub fn tracker_base(&self, t: usize) -> PathBuf {
        self.trackers[t].conf.base_path.clone()
    }

    pub fn tracker_running(&self, t: usize) -> bool {
        self.trackers[t].task.is_some()
    }

    /// (Re)starts tracker `t` on its address with its data directory.
    pub fn start_tracker(&mut self, t: usize) {
        assert!(!self.tracker_running(t), "tracker {t} is already running");
        let conf = self.trackers[t].conf.clone();
        let (token, task) = serve_on(&self.rt, self.trackers[t].addr, "tracker", |l, c| {
            fdfs_tracker::run(l, conf, c)
        });
        self.trackers[t].token = Some(token);
        self.trackers[t].task = Some(task);
    }

    /// Stops tracker `t` and waits until it has shut down (its data files
    /// are saved; its port is free again).
    pub fn stop_tracker(&mut self, t: usize) {
        let (token, task) = (self.trackers[t].token.take(), self.trackers[t].task.take());
        self.stop(token, task);
    }

    /// Cancels a server and waits (up to [`STOP_DEADLINE`]) until it has
    /// shut down.
    fn stop(&self, token: Option<CancellationToken>, task: Option<tokio::task::JoinHandle<()>>) {
        if let Some(token) = token {
            token.cancel();
        }
        if let Some(task) = task {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(STOP_DEADLINE, task).await });
        }
    }

    /// Every tracker, in order, as a conf lists them.
    fn tracker_list(&self) -> Vec<TrackerAddr> {
        self.trackers
            .iter()
            .map(|t| TrackerAddr {
                hosts: vec![t.addr.ip().to_string()],
                port: t.addr.port(),
            })
            .collect()
    }

    /// Client options naming every tracker, in order.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            trackers: self.tracker_list(),
            connect_timeout: Duration::from_secs(2),
            network_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        }
    }

    /// A client configured with every tracker (it fails over between them).
    pub fn client(&self) -> Client {
        Client::new(self.client_options()).expect("client")
    }

    /// A client that talks to tracker `t` only.
    pub fn client_of(&self, t: usize) -> Client {
        let mut opts = self.client_options();
        opts.trackers = vec![opts.trackers.swap_remove(t)];
        Client::new(opts).expect("client")
    }

    /// The body of a JOIN (81) that a new storage of `group` on this
    /// cluster's storage port would send, naming the first tracker.
    pub fn join_body(&self, group: &str) -> Vec<u8> {
        let mut body = bytes::BytesMut::new();
        fdfs_proto::tracker_msg::JoinReq {
            group: group.into(),
            storage_port: self.port,
            store_path_count: 1,
            subdir_count_per_path: 4,
            upload_priority: 10,
            join_time: 1,
            up_time: 1,
            version: "6.16.1".into(),
            init_flag: true,
            status: 0,
            storage_id: String::new(),
            tracker_ip: self.tracker_addr.ip().to_string(),
            trackers: vec![self.tracker_addr.to_string()],
        }
        .encode(&mut body);
        body.to_vec()
    }

    /// LIST_STORAGE (92) of `group` on tracker `t`; empty if it cannot answer.
    pub fn list_storages(&self, t: usize, group: &str) -> Vec<StorageStat> {
        let addr = self.trackers[t].addr.to_string();
        self.rt.block_on(async {
            let Ok(mut c) =
                Conn::connect(&addr, Duration::from_secs(2), Duration::from_secs(5)).await
            else {
                return Vec::new();
            };
            let r = TrackerClient::new(&mut c).list_storages(group, None).await;
            c.quit().await;
            r.unwrap_or_default()
        })
    }

    /// Status of member `i` on tracker `t` (None: not listed).
    pub fn status_on(&self, t: usize, i: usize) -> Option<u8> {
        let ip = self.storage_ip(i);
        self.list_storages(t, self.group_of(i))
            .into_iter()
            .find(|s| s.ip_addr == ip)
            .map(|s| s.status)
    }

    /// Polls until every running tracker lists every running member of
    /// every group as ACTIVE.
    pub fn wait_all_active(&self, deadline: Duration) -> bool {
        crate::wait_until(deadline, || {
            (0..self.trackers.len())
                .filter(|&t| self.tracker_running(t))
                .all(|t| {
                    self.groups().iter().all(|g| {
                        let list = self.list_storages(t, g);
                        self.members(g)
                            .into_iter()
                            .filter(|&i| self.storage_running(i))
                            .all(|i| {
                                list.iter().any(|s| {
                                    s.ip_addr == self.storage_ip(i)
                                        && s.status == storage_status::ACTIVE
                                })
                            })
                    })
                })
        })
    }

    // ---- storages ----------------------------------------------------

    /// Adds and starts a new member of the first group; returns its index.
    pub fn add_storage(&mut self) -> usize {
        let group = self
            .nodes
            .first()
            .map(|n| n.conf.group_name.clone())
            .unwrap_or_else(|| "group1".to_string());
        self.add_storage_to(&group)
    }

    /// Adds and starts a new member of `group`; returns its index.
    pub fn add_storage_to(&mut self, group: &str) -> usize {
        let i = self.nodes.len();
        let ip = self.reserved_ips.pop_front().unwrap_or_else(next_ip);
        let base = self.dir.path().join(format!("storage{i}"));
        std::fs::create_dir_all(&base).expect("dir");
        let mut conf = StorageConf {
            group_name: group.into(),
            group_name_configured: true,
            bind_addr: ip,
            port: self.port,
            base_path: base.clone(),
            store_path_count: 1,
            store_paths: vec![base],
            store_paths_readonly: vec![false],
            subdir_count_per_path: 4,
            tracker_servers: self.tracker_list(),
            heart_beat_interval_secs: 1,
            stat_report_interval_secs: 1,
            network_timeout_secs: 10,
            sync_wait_msec: 20,
            reserved_storage_space: ReservedSpace::Megabytes(1),
            ..StorageConf::default()
        };
        if let Some(tweak) = &self.tweak_storage {
            tweak(&mut conf);
        }
        self.nodes.push(Node {
            conf,
            token: None,
            task: None,
        });
        self.start_storage(i);
        i
    }

    /// (Re)starts member `i` on its address.
    pub fn start_storage(&mut self, i: usize) {
        assert!(!self.storage_running(i), "storage {i} is already running");
        let conf = self.nodes[i].conf.clone();
        let addr: SocketAddr = format!("{}:{}", conf.bind_addr, conf.port)
            .parse()
            .expect("addr");
        let (token, task) = serve_on(&self.rt, addr, "storage", |l, c| {
            fdfs_storage::run(l, conf, c)
        });
        self.nodes[i].token = Some(token);
        self.nodes[i].task = Some(task);
    }

    /// Gives stopped member `i` a new address (as a container restarted
    /// with a new IP) and returns it; start it again with `start_storage`.
    pub fn readdress_storage(&mut self, i: usize) -> String {
        assert!(!self.storage_running(i), "stop storage {i} first");
        let ip = next_ip();
        self.nodes[i].conf.bind_addr = ip.clone();
        ip
    }

    /// Stops member `i` and waits until it has shut down.
    pub fn stop_storage(&mut self, i: usize) {
        let (token, task) = (self.nodes[i].token.take(), self.nodes[i].task.take());
        self.stop(token, task);
    }

    pub fn storage_running(&self, i: usize) -> bool {
        self.nodes[i].task.is_some()
    }

    /// Number of members, all groups together.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Group names, in the order they first got a member.
    pub fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.nodes {
            if !out.contains(&n.conf.group_name) {
                out.push(n.conf.group_name.clone());
            }
        }
        out
    }

    /// Indexes of the members of `group`.
    pub fn members(&self, group: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].conf.group_name == group)
            .collect()
    }

    pub fn group_of(&self, i: usize) -> &str {
        &self.nodes[i].conf.group_name
    }

    /// The member's address, which is also its storage id in IP mode.
    pub fn storage_ip(&self, i: usize) -> &str {
        &self.nodes[i].conf.bind_addr
    }

    pub fn storage_addr(&self, i: usize) -> SocketAddr {
        format!("{}:{}", self.nodes[i].conf.bind_addr, self.port)
            .parse()
            .expect("addr")
    }

    /// The member listening on `addr`, if any.
    pub fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.storage_addr(i) == addr)
    }

    /// The member's base path (also its only store path).
    pub fn store_path(&self, i: usize) -> PathBuf {
        self.nodes[i].conf.base_path.clone()
    }

    /// Runs a future on the group's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// With `opts.storage_ids`: writes `storage_ids.conf` into `dir` for the
/// first members (their addresses chosen now) and returns its path and
/// those addresses.
fn write_storage_ids(
    opts: &GroupOptions,
    dir: &std::path::Path,
) -> (Option<PathBuf>, std::collections::VecDeque<String>) {
    if opts.storage_ids.is_empty() {
        return (None, Default::default());
    }
    let groups = opts
        .groups
        .iter()
        .flat_map(|(name, n)| std::iter::repeat_n(*name, *n));
    let mut text = String::new();
    let mut ips = std::collections::VecDeque::new();
    for (id, group) in opts.storage_ids.iter().zip(groups) {
        let ip = next_ip();
        text.push_str(&format!("{id} {group} {ip}\n"));
        ips.push_back(ip);
    }
    let path = dir.join("storage_ids.conf");
    std::fs::write(&path, text).expect("write storage_ids.conf");
    (Some(path), ips)
}

impl Drop for Group {
    fn drop(&mut self) {
        for n in &self.nodes {
            if let Some(t) = &n.token {
                t.cancel();
            }
        }
        for t in &self.trackers {
            if let Some(token) = &t.token {
                token.cancel();
            }
        }
        let tasks: Vec<_> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.task.take())
            .chain(self.trackers.iter_mut().filter_map(|t| t.task.take()))
            .collect();
        self.rt.block_on(async {
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
            }
        });
    }
}

/// Binds `addr` and runs a daemon's `run(listener, shutdown)` on `rt`;
/// returns the token that stops it and its task.
fn serve_on<Fut, E>(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    role: &'static str,
    run: impl FnOnce(tokio::net::TcpListener, CancellationToken) -> Fut + Send + 'static,
) -> (CancellationToken, tokio::task::JoinHandle<()>)
where
    Fut: std::future::Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let std_listener =
        std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {role} {addr}: {e}"));
    std_listener.set_nonblocking(true).expect("nonblocking");
    let token = CancellationToken::new();
    let cancel = token.clone();
    let task = rt.spawn(async move {
        let l = tokio::net::TcpListener::from_std(std_listener).expect("listener");
        if let Err(e) = run(l, cancel).await {
            eprintln!("testkit: {role} stopped: {e}");
        }
    });
    (token, task)
}
