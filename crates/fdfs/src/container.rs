//! Container entry point and health check, so the image needs no shell.
//!
//! `fdfs container [MODE] [ARGS...]` with MODE `all` (default), `tracker`,
//! `storage`, `monitor`, or any classic tool name. It follows the habits of
//! the FastDFS images people use: confs mounted at /etc/fdfs/*.conf are used
//! as they are; otherwise one is generated from TRACKER_SERVER (comma
//! separated), GROUP_NAME, PORT, FASTDFS_IPADDR (the address the storage
//! advertises), FASTDFS_BASE_PATH (default /var/fdfs) and LOG_FORMAT (text
//! or json; logs go to stdout).
//!
//! `fdfs health` checks what the running container serves (written to
//! `<base path>/.fdfs-health` at start) and exits 0 only if all answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::daemon::{self, Role, RoleArgs};

/// Where mounted classic confs are looked for.
const CONF_DIR: &str = "/etc/fdfs";
/// Default data directory in the image (a volume).
const DEFAULT_BASE_PATH: &str = "/var/fdfs";
/// File listing the endpoints `fdfs health` checks.
const HEALTH_FILE: &str = ".fdfs-health";
/// Each health probe must answer within this time.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_HTTP_PORT: u16 = 8888;

#[derive(clap::Args, Debug, Clone)]
pub struct ContainerArgs {
    /// all | tracker | storage | monitor | <classic tool name>
    #[arg(default_value = "all")]
    pub mode: String,
    /// Arguments passed on to a classic tool.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct HealthArgs {
    /// Data directory holding the health file (default: FASTDFS_BASE_PATH
    /// or /var/fdfs).
    #[arg(long, conflicts_with = "conf")]
    pub base_path: Option<PathBuf>,
    /// Check the role a tracker.conf, storage.conf or client.conf
    /// describes instead: the tracker answers; the storage answers and its
    /// trackers list it ACTIVE (at least one of them must answer); every
    /// tracker of a client.conf answers.
    #[arg(short = 'c', long = "conf", value_name = "CONF")]
    pub conf: Option<PathBuf>,
    /// Report every check and what is wrong (with -c).
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn base_path() -> PathBuf {
    PathBuf::from(env("FASTDFS_BASE_PATH").unwrap_or_else(|| DEFAULT_BASE_PATH.into()))
}

fn mounted(name: &str) -> Option<PathBuf> {
    let p = Path::new(CONF_DIR).join(name);
    p.is_file().then_some(p)
}

/// `log_format = ...` for a generated conf when LOG_FORMAT is set.
fn log_format_line() -> String {
    env("LOG_FORMAT")
        .map(|f| format!("log_format = {f}\n"))
        .unwrap_or_default()
}

fn port_env(default: u16) -> u16 {
    env("PORT").and_then(|p| p.parse().ok()).unwrap_or(default)
}

fn tracker_lines() -> String {
    env("TRACKER_SERVER")
        .unwrap_or_else(|| "127.0.0.1:22122".into())
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            if t.contains(':') {
                format!("tracker_server = {t}\n")
            } else {
                format!("tracker_server = {t}:22122\n")
            }
        })
        .collect()
}

/// Writes a generated conf under `<base>/conf/` and returns its path.
fn write_conf(base: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let dir = base.join("conf");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn write_health(base: &Path, endpoints: &[(&str, u16)]) {
    let text: String = endpoints
        .iter()
        .map(|(kind, port)| format!("{kind} 127.0.0.1:{port}\n"))
        .collect();
    let _ = std::fs::create_dir_all(base);
    if let Err(e) = std::fs::write(base.join(HEALTH_FILE), text) {
        eprintln!("fdfs container: cannot write health file: {e}");
    }
}

pub fn run(args: ContainerArgs) -> ExitCode {
    match container(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fdfs container: {e}");
            ExitCode::FAILURE
        }
    }
}

fn container(args: ContainerArgs) -> Result<ExitCode, String> {
    let base = base_path();
    match args.mode.as_str() {
        "all" => {
            let port = port_env(23000);
            write_health(
                &base,
                &[
                    ("tracker", 22122),
                    ("storage", port),
                    ("http", DEFAULT_HTTP_PORT),
                ],
            );
            let mut argv = vec![
                "server".to_string(),
                "--bind".into(),
                "0.0.0.0".into(),
                "--base-path".into(),
                base.display().to_string(),
                "--storage-port".into(),
                port.to_string(),
            ];
            if let Some(group) = env("GROUP_NAME") {
                argv.extend(["--group".into(), group]);
            }
            if let Some(ip) = env("FASTDFS_IPADDR") {
                argv.extend(["--advertise".into(), ip]);
            }
            if let Some(format) = env("LOG_FORMAT") {
                argv.extend(["--log-format".into(), format]);
            }
            #[derive(Parser)]
            struct Wrap {
                #[command(flatten)]
                server: daemon::ServerArgs,
            }
            let wrap = Wrap::try_parse_from(argv).map_err(|e| e.to_string())?;
            Ok(daemon::server(wrap.server))
        }
        "tracker" => {
            let conf = match mounted("tracker.conf") {
                Some(p) => p,
                None => {
                    let port = port_env(22122);
                    write_health(&base, &[("tracker", port)]);
                    write_conf(
                        &base,
                        "tracker.conf",
                        &format!(
                            "port = {port}\nbase_path = {b}\nreserved_storage_space = 1%\nhttp.server_port = 8080\n{log}",
                            b = base.display(),
                            log = log_format_line()
                        ),
                    )?
                }
            };
            Ok(daemon::role(
                Role::Tracker,
                RoleArgs {
                    conf,
                    log_stdout: true,
                },
            ))
        }
        "storage" => {
            let conf = match mounted("storage.conf") {
                Some(p) => p,
                None => {
                    let port = port_env(23000);
                    write_health(&base, &[("storage", port), ("http", DEFAULT_HTTP_PORT)]);
                    let group = env("GROUP_NAME").unwrap_or_else(|| "group1".into());
                    write_conf(
                        &base,
                        "storage.conf",
                        &format!(
                            "group_name = {group}\nport = {port}\nbase_path = {b}\nstore_path0 = {b}\n{trackers}http.server_port = {DEFAULT_HTTP_PORT}\nheart_beat_interval = 10\nstat_report_interval = 30\n{log}",
                            b = base.display(),
                            log = log_format_line(),
                            trackers = tracker_lines()
                        ),
                    )?
                }
            };
            Ok(daemon::role(
                Role::Storage,
                RoleArgs {
                    conf,
                    log_stdout: true,
                },
            ))
        }
        "monitor" => {
            let conf = client_conf(&base)?;
            let mut argv = vec!["fdfs_monitor".to_string(), conf.display().to_string()];
            argv.extend(args.rest);
            Ok(crate::tools::classic::run("fdfs_monitor", &argv).unwrap_or(ExitCode::FAILURE))
        }
        name => {
            let mut argv = vec![name.to_string()];
            argv.extend(args.rest);
            match name {
                "fdfs_trackerd" => Ok(daemon::classic(Role::Tracker, &argv[1..])),
                "fdfs_storaged" => Ok(daemon::classic(Role::Storage, &argv[1..])),
                _ => crate::tools::classic::run(name, &argv)
                    .ok_or_else(|| format!("unknown mode {name:?}: use all, tracker, storage, monitor or a fdfs tool name")),
            }
        }
    }
}

/// /etc/fdfs/client.conf when mounted, else one naming TRACKER_SERVER.
fn client_conf(base: &Path) -> Result<PathBuf, String> {
    if let Some(p) = mounted("client.conf") {
        return Ok(p);
    }
    write_conf(
        base,
        "client.conf",
        &format!(
            "connect_timeout = 5\nnetwork_timeout = 30\nbase_path = {}\n{}",
            base.display(),
            tracker_lines()
        ),
    )
}

/// ACTIVE_TEST over the binary protocol.
fn probe_fdfs(addr: &str) -> Result<(), String> {
    let sock = addr.parse().map_err(|_| format!("bad address {addr}"))?;
    let mut s = TcpStream::connect_timeout(&sock, HEALTH_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(HEALTH_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(&fdfs_proto::Header::new(fdfs_proto::CMD_ACTIVE_TEST, 0).to_bytes())
        .map_err(|e| e.to_string())?;
    let mut resp = [0u8; fdfs_proto::HEADER_LEN];
    s.read_exact(&mut resp).map_err(|e| e.to_string())?;
    match fdfs_proto::Header::from_bytes(&resp) {
        h if h.cmd == fdfs_proto::CMD_RESP && h.status == 0 => Ok(()),
        h => Err(format!("status {}", h.status)),
    }
}

/// GET /healthz must answer 200.
fn probe_http(addr: &str) -> Result<(), String> {
    let sock = addr.parse().map_err(|_| format!("bad address {addr}"))?;
    let mut s = TcpStream::connect_timeout(&sock, HEALTH_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(HEALTH_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).map_err(|e| e.to_string())?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(format!("answered {:?}", String::from_utf8_lossy(&head)))
    }
}

pub fn health(args: HealthArgs) -> ExitCode {
    if let Some(conf) = &args.conf {
        return crate::health::check_conf(conf, args.verbose);
    }
    let base = args.base_path.unwrap_or_else(base_path);
    let text = std::fs::read_to_string(base.join(HEALTH_FILE))
        .unwrap_or_else(|_| "tracker 127.0.0.1:22122\nstorage 127.0.0.1:23000\n".into());
    for line in text.lines() {
        let Some((kind, addr)) = line.split_once(' ') else {
            continue;
        };
        let result = match kind {
            "http" => probe_http(addr),
            _ => probe_fdfs(addr),
        };
        if let Err(e) = result {
            eprintln!("fdfs health: {kind} {addr}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Tracker to upload through.
    #[arg(long, default_value = "127.0.0.1:22122")]
    pub tracker: String,
    /// HTTP gateway to read back from (host:port).
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub http: String,
    /// Keep trying this many seconds while the cluster starts.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
}

/// The example application of docker-compose.yml: uploads a file through
/// the tracker, fetches it back through the HTTP gateway and compares.
pub fn demo(args: DemoArgs) -> ExitCode {
    let content = format!(
        "hello from the fastdfs-rs example app at {:?}\n",
        std::time::SystemTime::now()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(args.wait_secs);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut last_error = String::new();
    while std::time::Instant::now() < deadline {
        match rt.block_on(demo_once(&args, content.as_bytes())) {
            Ok(id) => {
                outln!("ok {id}");
                return ExitCode::SUCCESS;
            }
            Err(e) => last_error = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("fdfs demo: {last_error}");
    ExitCode::FAILURE
}

async fn demo_once(args: &DemoArgs, content: &[u8]) -> Result<String, String> {
    let trackers = vec![args
        .tracker
        .parse::<fdfs_config::TrackerAddr>()
        .map_err(|e| e.0)?];
    let client = fdfs_client::Client::new(fdfs_client::ClientOptions {
        trackers,
        ..fdfs_client::ClientOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let opts = fdfs_client::UploadOptions {
        ext: Some("txt".into()),
        ..Default::default()
    };
    let id = client
        .upload_buffer(content, &opts)
        .await
        .map_err(|e| format!("upload: {e}"))?
        .to_string();
    let body = http_get(&args.http, &format!("/{id}")).map_err(|e| format!("GET /{id}: {e}"))?;
    if body != content {
        return Err(format!("GET /{id}: content differs"));
    }
    Ok(id)
}

/// A minimal HTTP/1.0 GET; returns the body of a 200 answer.
fn http_get(host: &str, path: &str) -> Result<Vec<u8>, String> {
    use std::net::ToSocketAddrs;
    let addr = host
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, HEALTH_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8_lossy(&resp[..split]);
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(resp[split + 4..].to_vec())
}
