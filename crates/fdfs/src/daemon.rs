//! Daemon entry points: `fdfs server` (all-in-one), `fdfs tracker`,
//! `fdfs storage`, and the classic `fdfs_trackerd` / `fdfs_storaged`
//! start|stop|restart front ends with their pid files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdfs_config::storage::StorageConf;
use fdfs_config::tracker::TrackerConf;
use fdfs_config::LogConf;
use fdfs_util::serve::Admission;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Pending-connection queue of every listener: hundreds of clients that
/// connect at once must not overflow it (the kernel then retries SYNs after
/// 1, 3, 7 s). The C daemons use 1024 too.
const LISTEN_BACKLOG: u32 = 1024;
/// Connection limit of the daemons in `fdfs server`, as in the sample confs.
const SERVER_MAX_CONNECTIONS: u32 = 1024;
/// How long `stop` waits for the old process to exit.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// How long `start` waits for the new process to write its pid file.
const START_WAIT: Duration = Duration::from_secs(30);
/// Heartbeat of the embedded storage in `fdfs server`; its tracker is in the
/// same process, so frequent beats cost nothing.
const SERVER_HEART_BEAT_SECS: u64 = 5;
/// Disk usage report interval of the embedded storage.
const SERVER_STAT_REPORT_SECS: u64 = 30;

/// `fdfs server`: tracker + storage in one process.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Data directory (tracker and storage state, stored files).
    #[arg(long, default_value = "./fdfs-data")]
    pub base_path: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Address the storage advertises to clients (default: the bind
    /// address, or FASTDFS_IPADDR when set).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Tracker port.
    #[arg(long, default_value_t = 22122)]
    pub tracker_port: u16,
    /// Storage port.
    #[arg(long, default_value_t = 23000)]
    pub storage_port: u16,
    /// HTTP port of the storage's file gateway (0: no HTTP).
    #[arg(long, default_value_t = 8888)]
    pub http_port: u16,
    /// Group name of the embedded storage.
    #[arg(long, default_value = "group1")]
    pub group: String,
    /// Reserved space per store path: `10%`, `1G`, `512MB`...
    #[arg(long, default_value = "1%")]
    pub reserved_space: String,
    /// Log level: error, warn, info, debug.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log line format on stdout: text (the original's lines) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// `fdfs tracker -c FILE` / `fdfs storage -c FILE`.
#[derive(clap::Args, Debug, Clone)]
pub struct RoleArgs {
    /// Classic FastDFS conf file (tracker.conf / storage.conf).
    #[arg(short = 'c', long = "conf")]
    pub conf: PathBuf,
    /// Log to stdout instead of base_path/logs (containers).
    #[arg(long)]
    pub log_stdout: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Tracker,
    Storage,
}

impl Role {
    fn classic_name(self) -> &'static str {
        match self {
            Role::Tracker => "fdfs_trackerd",
            Role::Storage => "fdfs_storaged",
        }
    }

    /// The error log's name below `base_path/logs`.
    fn log_file_name(self) -> &'static str {
        match self {
            Role::Tracker => "trackerd.log",
            Role::Storage => "storaged.log",
        }
    }

    fn subcommand(self) -> &'static str {
        match self {
            Role::Tracker => "tracker",
            Role::Storage => "storage",
        }
    }
}

/// `fdfs server` logs to stdout, as a container's main process should.
fn init_logging(level: &str, format: &str) {
    let format = if format == "json" {
        fdfs_config::LogFormat::Json
    } else {
        fdfs_config::LogFormat::Text
    };
    let _ = crate::logging::init(level, format, crate::logging::Destination::Stdout);
}

/// The log of a daemon started from `conf_path`: base_path/logs/<role>d.log
/// (also on stderr when that is a terminal), or stdout with --log-stdout.
fn init_role_logging(role: Role, conf: &RoleConf, args: &RoleArgs) -> Result<LogConf, String> {
    use std::io::IsTerminal;
    let ini = fdfs_config::IniFile::load(&args.conf).map_err(|e| e.to_string())?;
    let log = LogConf::from_ini(&ini).map_err(|e| format!("{}: {e}", role.classic_name()))?;
    let dest = if args.log_stdout {
        crate::logging::Destination::Stdout
    } else {
        crate::logging::Destination::File {
            path: conf.base_path().join("logs").join(role.log_file_name()),
            rotation: log.error,
            mirror_stderr: std::io::stderr().is_terminal(),
        }
    };
    crate::logging::init(&log.level, log.format, dest)
        .map_err(|e| format!("{}: {e}", role.classic_name()))?;
    if fdfs_config::log::tracing_level(&log.level).is_none() {
        tracing::warn!("unknown log_level {:?}, logging at info", log.level);
    }
    Ok(log)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    fdfs_util::sys::raise_nofile_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Smallest worker stack we accept from `thread_stack_size`: polled async
/// state machines nest deeper than the original's callbacks, and its usual
/// 512KB leaves too little headroom for them.
const MIN_WORKER_STACK_BYTES: usize = 1024 * 1024;

/// The runtime of a classic daemon: `work_threads` worker threads (the
/// original's network threads; 0 or unset: one per CPU) with a stack of
/// `thread_stack_size` (at least [`MIN_WORKER_STACK_BYTES`]).
fn daemon_runtime(
    work_threads: u32,
    thread_stack_size_bytes: u64,
) -> std::io::Result<tokio::runtime::Runtime> {
    fdfs_util::sys::raise_nofile_limit();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if work_threads > 0 {
        b.worker_threads(work_threads as usize);
    }
    if thread_stack_size_bytes > 0 {
        let stack = usize::try_from(thread_stack_size_bytes).unwrap_or(usize::MAX);
        b.thread_stack_size(stack.max(MIN_WORKER_STACK_BYTES));
    }
    b.build()
}

/// Cancels `token` on SIGINT or SIGTERM.
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
    token.cancel();
}

async fn bind(addr: &str, port: u16) -> std::io::Result<TcpListener> {
    let host = if addr.is_empty() { "0.0.0.0" } else { addr };
    let sock: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad bind address {host}"),
            )
        })?;
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if sock.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // SO_REUSEADDR: a restart never trips over TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(sock)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| std::io::Error::new(e.kind(), format!("bind {sock} failed: {e}")))
}

pub fn server(args: ServerArgs) -> ExitCode {
    init_logging(&args.log_level, &args.log_format);
    let reserved = match fdfs_config::values::parse_reserved_space(&args.reserved_space) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "fdfs server: invalid --reserved-space {:?}: {}",
                args.reserved_space, e.0
            );
            return ExitCode::from(2);
        }
    };
    let advertise = args.advertise.clone().or_else(|| {
        std::env::var(fdfs_config::storage::ENV_ADVERTISE_ADDR)
            .ok()
            .filter(|v| !v.is_empty())
    });
    let net = fdfs_config::NetConf {
        max_connections: SERVER_MAX_CONNECTIONS,
        ..fdfs_config::NetConf::default()
    };
    let mut tracker_conf = TrackerConf {
        bind_addr: args.bind.clone(),
        port: args.tracker_port,
        base_path: args.base_path.join("tracker"),
        reserved_storage_space: reserved,
        net: net.clone(),
        ..TrackerConf::default()
    };
    let tracker_host = if args.bind == "0.0.0.0" || args.bind.is_empty() {
        "127.0.0.1".to_string()
    } else {
        args.bind.clone()
    };
    // The embedded storage reaches its tracker from `tracker_host` (it binds
    // its outgoing connections to a specific --bind, and the kernel picks
    // 127.0.0.1 for the loopback otherwise) but is listed under the address
    // it advertises: trusted from that source only.
    let advertised = advertise.as_deref().and_then(|a| a.parse().ok());
    if let (Some(advertised), Ok(source)) = (advertised, tracker_host.parse()) {
        tracker_conf.embedded_storage =
            Some(fdfs_config::tracker::EmbeddedStorage { source, advertised });
    }
    let storage_base = args.base_path.join("storage");
    let storage_conf = StorageConf {
        group_name: args.group.clone(),
        group_name_configured: true,
        net,
        bind_addr: args.bind.clone(),
        port: args.storage_port,
        base_path: storage_base.clone(),
        store_paths: vec![storage_base],
        store_path_count: 1,
        tracker_servers: vec![fdfs_config::TrackerAddr {
            hosts: vec![tracker_host],
            port: args.tracker_port,
        }],
        heart_beat_interval_secs: SERVER_HEART_BEAT_SECS,
        stat_report_interval_secs: SERVER_STAT_REPORT_SECS,
        reserved_storage_space: reserved,
        advertise_addr: advertise,
        http_server_port: args.http_port,
        ..StorageConf::default()
    };
    let gateway_conf = match fdfs_http::GatewayConf::from_storage(&storage_conf, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fdfs server: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs server: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let tracker_listener = bind(&args.bind, args.tracker_port)
            .await
            .map_err(|e| e.to_string())?;
        let storage_listener = bind(&args.bind, args.storage_port)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            tracker = %tracker_listener.local_addr().map_err(|e| e.to_string())?,
            storage = %storage_listener.local_addr().map_err(|e| e.to_string())?,
            base_path = %args.base_path.display(),
            "fdfs server starting"
        );
        // One /metrics on the gateway port for all three.
        let server_shutdown = shutdown.clone();
        let hub = fdfs_util::metrics::Hub::new();
        let tracker_state =
            fdfs_tracker::Tracker::open(tracker_conf).map_err(|e| format!("tracker: {e}"))?;
        hub.add(std::sync::Arc::new(fdfs_tracker::metrics::TrackerMetrics(
            tracker_state.clone(),
        )));
        let pages = fdfs_http::Pages {
            hub: hub.clone(),
            routes: Some(std::sync::Arc::new(fdfs_tracker::http::TrackerPages {
                tracker: tracker_state.clone(),
                hub: hub.clone(),
            })),
        };
        let tracker = spawn_tracker_thread(tracker_listener, tracker_state, shutdown.clone())
            .map_err(|e| format!("tracker: cannot start its thread: {e}"))?;
        let tracker = tokio::task::spawn_blocking(move || {
            tracker
                .join()
                .unwrap_or_else(|_| Err("tracker: its thread panicked".to_string()))
        });
        let gateway_conf = fdfs_http::LiveConf::new(Arc::new(gateway_conf));
        let http =
            match spawn_gateway(&args.bind, args.http_port, gateway_conf, pages, &shutdown).await {
                Ok(h) => h,
                Err(e) => {
                    // The tracker thread runs already: stop it, or the process
                    // waits on it forever.
                    server_shutdown.cancel();
                    let _ = tracker.await;
                    return Err(e);
                }
            };
        let storage = open_storage(&storage_listener, storage_conf, &hub).await;
        let storage = tokio::spawn(async move {
            fdfs_storage::serve(storage_listener, storage?, shutdown.clone()).await
        });
        let (t, s) = tokio::join!(tracker, storage);
        server_shutdown.cancel();
        join_gateway(http).await?;
        t.map_err(|e| e.to_string())??;
        s.map_err(|e| e.to_string())?
            .map_err(|e| format!("storage: {e}"))?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fdfs server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the tracker of `fdfs server` on a runtime and thread of its own:
/// storage work that holds the shared runtime's workers (a slow disk, a
/// long checksum) must not stall the cluster's routing along with it.
fn spawn_tracker_thread(
    listener: TcpListener,
    tracker: std::sync::Arc<fdfs_tracker::Tracker>,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<Result<(), String>>> {
    let listener = listener.into_std()?;
    std::thread::Builder::new()
        .name("tracker".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tracker: cannot start runtime: {e}"))?;
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
                fdfs_tracker::serve(listener, tracker, shutdown)
                    .await
                    .map_err(|e| format!("tracker: {e}"))
            })
        })
}

/// The tracker's HTTP listener (`http.server_port`, 0: off), bound on
/// `bind_addr`. A port that cannot be bound is logged and left out: the
/// original ignores this key since v5, so a tracker.conf carried over from
/// it must not keep the tracker from starting.
async fn bind_tracker_http(c: &TrackerConf) -> Option<TcpListener> {
    if c.http_server_port == 0 {
        return None;
    }
    match bind(&c.bind_addr, c.http_server_port).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(port = c.http_server_port, error = %e, "tracker http (metrics) port not served");
            None
        }
    }
}

/// The `mod_fastdfs.conf` beside a storage.conf, if there is one.
pub(crate) fn gateway_conf_path(storage_conf_path: &Path) -> Option<PathBuf> {
    storage_conf_path
        .parent()
        .map(|d| d.join("mod_fastdfs.conf"))
        .filter(|p| p.is_file())
}

/// The HTTP gateway of a storage started from `storage_conf_path`: the
/// storage's own settings, refined by a `mod_fastdfs.conf` in the same
/// directory when there is one (as nginx reads /etc/fdfs/mod_fastdfs.conf).
pub(crate) fn storage_gateway_conf(
    storage_conf_path: &Path,
    c: &StorageConf,
) -> Result<fdfs_http::GatewayConf, String> {
    let http = match &gateway_conf_path(storage_conf_path) {
        None => None,
        Some(p) => {
            let (h, warnings) = fdfs_config::HttpConf::load(p).map_err(|e| e.to_string())?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            Some(h)
        }
    };
    fdfs_http::GatewayConf::from_storage(c, http.as_ref()).map_err(|e| e.to_string())
}

/// Binds and starts the HTTP gateway next to a storage; port 0 means off.
async fn spawn_gateway(
    addr: &str,
    port: u16,
    conf: Arc<fdfs_http::LiveConf>,
    pages: fdfs_http::Pages,
    shutdown: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<Result<(), fdfs_http::HttpError>>>, String> {
    if port == 0 {
        return Ok(None);
    }
    let listener = bind(addr, port).await.map_err(|e| format!("http: {e}"))?;
    Ok(Some(tokio::spawn(fdfs_http::run_live(
        listener,
        conf,
        pages,
        shutdown.clone(),
    ))))
}

/// Opens the storage that will serve on `listener` and adds its series to
/// `hub`.
async fn open_storage(
    listener: &TcpListener,
    conf: StorageConf,
    hub: &fdfs_util::metrics::Hub,
) -> Result<std::sync::Arc<fdfs_storage::Storage>, fdfs_storage::StorageError> {
    let port = listener.local_addr()?.port();
    let storage = fdfs_storage::Storage::open(conf, port).await?;
    hub.add(std::sync::Arc::new(fdfs_storage::metrics::StorageMetrics(
        storage.clone(),
    )));
    Ok(storage)
}

async fn join_gateway(
    http: Option<tokio::task::JoinHandle<Result<(), fdfs_http::HttpError>>>,
) -> Result<(), String> {
    if let Some(h) = http {
        h.await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("http: {e}"))?;
    }
    Ok(())
}

fn pid_file(role: Role, base_path: &Path) -> PathBuf {
    base_path
        .join("data")
        .join(format!("{}.pid", role.classic_name()))
}

/// A conf warning: to the log once it is open (a reload), else to stderr.
fn conf_warning(name: &str, w: &fdfs_config::Warning) {
    if crate::logging::active() {
        tracing::warn!("{w}");
    } else {
        eprintln!("{name}: warning: {w}");
    }
}

/// Loads and checks the conf of `role`, reporting its warnings.
pub(crate) fn load_role_conf(role: Role, path: &Path) -> Result<RoleConf, String> {
    let name = role.classic_name();
    match role {
        Role::Tracker => {
            let (mut conf, warnings) =
                TrackerConf::load(path).map_err(|e| format!("{name}: {e}"))?;
            for w in warnings {
                conf_warning(name, &w);
            }
            if conf.use_storage_id {
                // Relative to the tracker.conf directory, as the original.
                conf.storage_ids_filename =
                    conf.storage_ids_path(path).to_string_lossy().into_owned();
            }
            if conf.disabled {
                return Err(format!("{name}: disabled=true in {}", path.display()));
            }
            Ok(RoleConf::Tracker(conf))
        }
        Role::Storage => {
            let (mut conf, warnings) =
                StorageConf::load(path).map_err(|e| format!("{name}: {e}"))?;
            for w in warnings {
                conf_warning(name, &w);
            }
            if conf.disabled {
                return Err(format!("{name}: disabled=true in {}", path.display()));
            }
            conf.apply_env_overrides();
            Ok(RoleConf::Storage(conf))
        }
    }
}

pub(crate) enum RoleConf {
    Tracker(TrackerConf),
    Storage(StorageConf),
}

impl RoleConf {
    fn base_path(&self) -> &Path {
        match self {
            RoleConf::Tracker(c) => &c.base_path,
            RoleConf::Storage(c) => &c.base_path,
        }
    }
    /// `work_threads` and `thread_stack_size`.
    fn thread_settings(&self) -> (u32, u64) {
        match self {
            RoleConf::Tracker(c) => (c.net.work_threads, c.thread_stack_size_bytes),
            RoleConf::Storage(c) => (c.net.work_threads, c.thread_stack_size_bytes),
        }
    }
}

/// Runs one role in the foreground until SIGTERM/SIGINT.
pub fn role(role: Role, args: RoleArgs) -> ExitCode {
    let conf = match load_role_conf(role, &args.conf) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // The log opens before run_by_user applies: what it creates is handed
    // over to that user afterwards.
    let logs_dir = conf.base_path().join("logs");
    let mut created_for_log: Vec<PathBuf> = logs_dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    created_for_log.reverse();
    let log = match init_role_logging(role, &conf, &args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let pid_path = pid_file(role, conf.base_path());
    let (work_threads, stack_bytes) = conf.thread_settings();
    let rt = match daemon_runtime(work_threads, stack_bytes) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start runtime: {e}", role.classic_name());
            return ExitCode::FAILURE;
        }
    };
    let name = role.classic_name();
    let result: Result<(), String> = rt.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let applied = crate::reload::Applied::load(&args.conf)?;
        let live = |admission, tracker, storage, gateway| {
            Arc::new(crate::reload::Live {
                role,
                conf_path: args.conf.clone(),
                applied: std::sync::Mutex::new(applied),
                admission,
                tracker,
                storage,
                gateway,
            })
        };
        match conf {
            RoleConf::Tracker(c) => {
                let listener = bind(&c.bind_addr, c.port)
                    .await
                    .map_err(|e| e.to_string())?;
                let http = bind_tracker_http(&c).await;
                run_as(
                    &c.run_by_group,
                    &c.run_by_user,
                    &[c.base_path.as_path()],
                    &created_for_log,
                    &logs_dir,
                )?;
                let admission = Arc::new(Admission::from_conf(&c.allow_hosts, "allow_hosts")?);
                let tracker = fdfs_tracker::Tracker::open(c).map_err(|e| e.to_string())?;
                tokio::spawn(crate::reload::handle_signals(live(
                    admission.clone(),
                    Some(tracker.clone()),
                    None,
                    None,
                )));
                write_pid(&pid_path)?;
                let http = http.map(|l| {
                    tokio::spawn(fdfs_tracker::http::run(
                        l,
                        tracker.clone(),
                        shutdown.clone(),
                    ))
                });
                let res =
                    fdfs_tracker::serve_admitting(listener, tracker, admission, shutdown.clone())
                        .await
                        .map_err(|e| e.to_string());
                shutdown.cancel();
                if let Some(h) = http {
                    let _ = h.await;
                }
                res
            }
            RoleConf::Storage(c) => {
                let listener = bind(&c.bind_addr, c.port)
                    .await
                    .map_err(|e| e.to_string())?;
                let gateway_conf = storage_gateway_conf(&args.conf, &c)?;
                let gateway = fdfs_http::LiveConf::new(Arc::new(gateway_conf));
                let pages = fdfs_http::Pages::default();
                let hub = pages.hub.clone();
                let http = spawn_gateway(
                    &c.bind_addr,
                    c.http_server_port,
                    gateway.clone(),
                    pages,
                    &shutdown,
                )
                .await?;
                let mut dirs = vec![c.base_path.as_path()];
                dirs.extend(c.store_paths.iter().map(PathBuf::as_path));
                run_as(
                    &c.run_by_group,
                    &c.run_by_user,
                    &dirs,
                    &created_for_log,
                    &logs_dir,
                )?;
                let admission = Arc::new(Admission::from_conf(&c.allow_hosts, "allow_hosts")?);
                let storage = open_storage(&listener, c, &hub)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(access) = &storage.access_log {
                    access.set_rotation(crate::logging::rotation(&log.access));
                }
                tokio::spawn(crate::reload::handle_signals(live(
                    admission.clone(),
                    None,
                    Some(storage.clone()),
                    Some(gateway),
                )));
                write_pid(&pid_path)?;
                let res =
                    fdfs_storage::serve_admitting(listener, storage, admission, shutdown.clone())
                        .await
                        .map_err(|e| e.to_string());
                shutdown.cancel();
                join_gateway(http).await?;
                res
            }
        }
    });
    let _ = std::fs::remove_file(&pid_path);
    if let Err(e) = &result {
        tracing::error!("{e}");
    }
    crate::logging::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `run_by_group` / `run_by_user`, once the listeners are bound: the
/// daemon's directories are created for that user when missing, the
/// directories the log created (`created_for_log`) and the files in
/// `logs_dir` are handed over, then the process drops to it for good.
fn run_as(
    group: &str,
    user: &str,
    dirs: &[&Path],
    created_for_log: &[PathBuf],
    logs_dir: &Path,
) -> Result<(), String> {
    let Some(run_by) = crate::privileges::RunBy::resolve(group, user)? else {
        return Ok(());
    };
    for dir in dirs {
        run_by.prepare_dir(dir)?;
    }
    run_by.hand_over_logs(created_for_log, logs_dir);
    run_by.apply()?;
    tracing::info!(
        uid = run_by.uid,
        gid = run_by.gid,
        "running as run_by_user / run_by_group"
    );
    Ok(())
}

fn write_pid(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|e| format!("write pid file {}: {e}", path.display()))
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `fdfs_trackerd <conf> [start|stop|restart]` and `fdfs_storaged ...`.
/// `argv` excludes the program name.
pub fn classic(role: Role, argv: &[String]) -> ExitCode {
    let name = role.classic_name();
    let Some(conf_path) = argv.first() else {
        println!("Usage: {name} <config_file> [start | stop | restart]");
        return ExitCode::from(1);
    };
    let action = argv.get(1).map(String::as_str).unwrap_or("start");
    let conf = match load_role_conf(role, Path::new(conf_path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let pid_path = pid_file(role, conf.base_path());
    let log_dir = conf.base_path().join("logs");
    match action {
        "start" => start_detached(role, conf_path, &pid_path, &log_dir),
        "stop" => stop(name, &pid_path),
        "restart" => {
            let code = stop(name, &pid_path);
            if code != ExitCode::SUCCESS
                && read_pid(&pid_path).is_some_and(|p| fdfs_util::sys::send_signal(p, 0))
            {
                return code;
            }
            start_detached(role, conf_path, &pid_path, &log_dir)
        }
        other => {
            println!("Usage: {name} <config_file> [start | stop | restart]");
            eprintln!("{name}: invalid action: {other}");
            ExitCode::from(1)
        }
    }
}

fn stop(name: &str, pid_path: &Path) -> ExitCode {
    let Some(pid) = read_pid(pid_path) else {
        eprintln!("{name}: no pid file {}, not running", pid_path.display());
        return ExitCode::from(2);
    };
    if !fdfs_util::sys::send_signal(pid, libc::SIGTERM) {
        eprintln!("{name}: process {pid} is not running");
        let _ = std::fs::remove_file(pid_path);
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + STOP_WAIT;
    while fdfs_util::sys::send_signal(pid, 0) {
        if Instant::now() > deadline {
            eprintln!(
                "{name}: process {pid} did not exit within {}s",
                STOP_WAIT.as_secs()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("waiting for pid: {pid} exit ...");
    println!("pid [{pid}] exit.");
    ExitCode::SUCCESS
}

fn start_detached(role: Role, conf_path: &str, pid_path: &Path, log_dir: &Path) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let name = role.classic_name();
    if let Some(pid) = read_pid(pid_path) {
        if fdfs_util::sys::send_signal(pid, 0) {
            eprintln!("{name}: already running, pid {pid}");
            return ExitCode::from(16);
        }
        let _ = std::fs::remove_file(pid_path);
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{name}: cannot find own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(log_dir) {
        eprintln!("{name}: {}: {e}", log_dir.display());
        return ExitCode::FAILURE;
    }
    let log_name = role.log_file_name();
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join(log_name))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{name}: cannot open log: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log2 = match log.try_clone() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut child = match std::process::Command::new(exe)
        .arg(role.subcommand())
        .arg("-c")
        .arg(conf_path)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!(
                "{name}: exit abnormally ({status}); see {}",
                log_dir.join(log_name).display()
            );
            return ExitCode::FAILURE;
        }
        if read_pid(pid_path) == Some(child.id() as i32) {
            return ExitCode::SUCCESS;
        }
        if Instant::now() > deadline {
            eprintln!("{name}: did not start within {}s", START_WAIT.as_secs());
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
