//! A tracker and several storages of one group, each storage on its own
//! loopback address (127.0.0.x) and the same port, as FastDFS requires in
//! IP mode. Storages can be stopped, restarted and added while the test
//! runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use fdfs_config::storage::StorageConf;
use fdfs_config::tracker::TrackerConf;
use fdfs_config::{ReservedSpace, TrackerAddr};
use tokio_util::sync::CancellationToken;

/// Next last octet for storage addresses; tests in one process never share.
static NEXT_OCTET: AtomicU8 = AtomicU8::new(20);

fn next_ip() -> String {
    let octet = NEXT_OCTET.fetch_add(1, Ordering::Relaxed);
    format!("127.0.0.{}", 20 + octet % 230)
}

struct Node {
    conf: StorageConf,
    token: Option<CancellationToken>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct Group {
    rt: tokio::runtime::Runtime,
    pub tracker_addr: SocketAddr,
    pub port: u16,
    tracker_token: CancellationToken,
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Group {
    /// A tracker and `n` storages of `group1`, all ACTIVE.
    pub fn start(n: usize) -> Group {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let std_tracker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tracker");
        std_tracker.set_nonblocking(true).expect("nonblocking");
        let tracker_addr = std_tracker.local_addr().expect("addr");
        let tracker_conf = TrackerConf {
            base_path: dir.path().join("tracker"),
            port: tracker_addr.port(),
            bind_addr: "127.0.0.1".into(),
            reserved_storage_space: ReservedSpace::Megabytes(1),
            check_active_interval_secs: 5,
            ..TrackerConf::default()
        };
        std::fs::create_dir_all(&tracker_conf.base_path).expect("dir");
        let tracker_token = CancellationToken::new();
        let token = tracker_token.clone();
        rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(std_tracker).expect("listener");
            if let Err(e) = fdfs_tracker::run(l, tracker_conf, token).await {
                eprintln!("testkit: tracker stopped: {e}");
            }
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut g = Group {
            rt,
            tracker_addr,
            port,
            tracker_token,
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..n {
            g.add_storage();
        }
        g
    }

    /// Adds and starts a new member; returns its index.
    pub fn add_storage(&mut self) -> usize {
        let i = self.nodes.len();
        let ip = next_ip();
        let base = self.dir.path().join(format!("storage{i}"));
        std::fs::create_dir_all(&base).expect("dir");
        let conf = StorageConf {
            group_name: "group1".into(),
            group_name_configured: true,
            bind_addr: ip,
            port: self.port,
            base_path: base.clone(),
            store_path_count: 1,
            store_paths: vec![base],
            store_paths_readonly: vec![false],
            subdir_count_per_path: 4,
            tracker_servers: vec![TrackerAddr {
                hosts: vec!["127.0.0.1".into()],
                port: self.tracker_addr.port(),
            }],
            heart_beat_interval_secs: 1,
            stat_report_interval_secs: 1,
            network_timeout_secs: 10,
            sync_wait_msec: 20,
            reserved_storage_space: ReservedSpace::Megabytes(1),
            ..StorageConf::default()
        };
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
        let conf = self.nodes[i].conf.clone();
        let addr: SocketAddr = format!("{}:{}", conf.bind_addr, conf.port)
            .parse()
            .expect("addr");
        let std_listener = std::net::TcpListener::bind(addr).expect("bind storage");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let token = CancellationToken::new();
        let t = token.clone();
        let task = self.rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            if let Err(e) = fdfs_storage::run(l, conf, t).await {
                eprintln!("testkit: storage stopped: {e}");
            }
        });
        self.nodes[i].token = Some(token);
        self.nodes[i].task = Some(task);
    }

    /// Stops member `i` and waits until it has shut down.
    pub fn stop_storage(&mut self, i: usize) {
        if let Some(t) = self.nodes[i].token.take() {
            t.cancel();
        }
        if let Some(task) = self.nodes[i].task.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(20), task).await });
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn storage_ip(&self, i: usize) -> &str {
        &self.nodes[i].conf.bind_addr
    }

    pub fn storage_addr(&self, i: usize) -> SocketAddr {
        format!("{}:{}", self.nodes[i].conf.bind_addr, self.port)
            .parse()
            .expect("addr")
    }

    pub fn store_path(&self, i: usize) -> PathBuf {
        self.nodes[i].conf.base_path.clone()
    }

    /// Runs a future on the group's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for n in &self.nodes {
            if let Some(t) = &n.token {
                t.cancel();
            }
        }
        self.tracker_token.cancel();
        let tasks: Vec<_> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.task.take())
            .collect();
        self.rt.block_on(async {
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
            }
        });
    }
}
