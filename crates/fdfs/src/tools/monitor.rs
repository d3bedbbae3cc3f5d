//! `fdfs_monitor`: argument handling, the choice of tracker and the
//! commands; the C-exact `list` text is in `listing`, our `sync` report in
//! `sync_report`.

use std::process::ExitCode;

use fdfs_client::{Client, TrackerClient};
use fdfs_config::TrackerAddr;

use crate::tools::cluster_stat::{self, StatTool};
use crate::tools::format::{errno_line, log_error};
use crate::tools::session::{exit_code, report, Session, DEFAULT_CLIENT_CONF};

mod listing;
mod sync_report;

/// Default tracker port for `-h host` without a port.
const DEFAULT_TRACKER_PORT: u16 = 22122;

/// `[v6]` brackets as `format_ip_address` adds them.
fn formatted_ip(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

fn usage(prog: &str) {
    out!(
        "\nUsage:\n  {prog} <client_cfg_file> [-h <tracker_server>]\n  \
         [list|delete|set_trunk_server <group_name> [storage_id]]\n\n\
         Note:\n  the tracker server format: host[:port], the tracker default port is {DEFAULT_TRACKER_PORT}\n  \
         {prog} without parameter equals: {prog} {DEFAULT_CLIENT_CONF}\n\n"
    );
}

/// Parsed command line of fdfs_monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorArgs {
    pub conf: String,
    pub tracker: Option<String>,
    pub op: String,
    pub rest: Vec<String>,
}

/// Parses `conf [-h host | -hhost] [op [args...]]` like the C tool.
/// `Err(code)` after printing usage.
pub fn parse_args(argv: &[String]) -> Result<MonitorArgs, u8> {
    let prog = argv.first().map_or("fdfs_monitor", String::as_str);
    let (conf, mut i) = if argv.len() <= 1 {
        (DEFAULT_CLIENT_CONF.to_string(), 1)
    } else {
        if argv.len() == 2 && argv[1] == "-h" {
            usage(prog);
            return Err(0);
        }
        (argv[1].clone(), 2)
    };
    let mut tracker = None;
    let op;
    match argv.get(i) {
        None => op = "list".to_string(),
        Some(a) if a.starts_with("-h") => {
            if a.len() == 2 {
                i += 1;
                let Some(h) = argv.get(i) else {
                    usage(prog);
                    return Err(1);
                };
                tracker = Some(h.clone());
            } else {
                tracker = Some(a[2..].to_string());
            }
            i += 1;
            op = argv.get(i).cloned().unwrap_or_else(|| "list".to_string());
            i += 1;
        }
        Some(a) => {
            op = a.clone();
            i += 1;
        }
    }
    Ok(MonitorArgs {
        conf,
        tracker,
        op,
        rest: argv.get(i..).map(<[String]>::to_vec).unwrap_or_default(),
    })
}

/// Splits `host[:port]` (`[v6]:port` allowed), default port 22122.
fn split_host_port(text: &str) -> Option<(String, u16)> {
    let parsed: TrackerAddr = text.parse().ok()?;
    Some((parsed.hosts.first()?.clone(), parsed.port))
}

/// Index of the configured tracker that `text` names, comparing host text
/// and, failing that, resolved addresses.
fn find_tracker(trackers: &[TrackerAddr], text: &str) -> Option<usize> {
    use std::net::ToSocketAddrs;
    let (host, port) = split_host_port(text)?;
    let resolve = |h: &str| -> Vec<std::net::IpAddr> {
        (h, port)
            .to_socket_addrs()
            .map(|it| it.map(|a| a.ip()).collect())
            .unwrap_or_default()
    };
    let wanted = resolve(&host);
    trackers.iter().position(|t| {
        t.port == port
            && t.hosts
                .iter()
                .any(|h| h == &host || resolve(h).iter().any(|ip| wanted.contains(ip)))
    })
}

/// Pseudo-random start index, as the C tool picks a random tracker.
fn random_index(count: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize);
    nanos % count.max(1)
}

/// Runs fdfs_monitor; `argv` includes the program name.
pub fn main(argv: &[String]) -> ExitCode {
    let args = match parse_args(argv) {
        Ok(a) => a,
        Err(code) => return ExitCode::from(code),
    };
    let prog = argv.first().map_or("fdfs_monitor", String::as_str);
    let session = match Session::load(&args.conf) {
        Ok(s) => s,
        Err(code) => return code,
    };
    run_with(&session, &args, prog)
}

/// Runs a parsed monitor command on an already loaded session (`args.conf`
/// is not read again).
pub fn run_with(session: &Session, args: &MonitorArgs, prog: &str) -> ExitCode {
    let trackers = session.client.trackers().to_vec();
    let index = match &args.tracker {
        None => {
            if trackers.len() > 1 {
                random_index(trackers.len())
            } else {
                0
            }
        }
        Some(t) => {
            if split_host_port(t).is_none() {
                outln!("resolve ip address of tracker server: {t} fail!, error info: Unknown host");
                return ExitCode::from(1);
            }
            match find_tracker(&trackers, t) {
                Some(i) => i,
                None => {
                    outln!("tracker server: {t} not exists!");
                    return ExitCode::from(2);
                }
            }
        }
    };
    outln!(
        "tracker server count={}, current server index={index}",
        trackers.len()
    );
    session.rt.block_on(run(&session.client, index, args, prog))
}

async fn run(client: &Client, index: usize, args: &MonitorArgs, prog: &str) -> ExitCode {
    // Like tracker_get_connection: start at `index`, try the others in turn.
    let n = client.trackers().len();
    let mut conn = None;
    let mut last_errno = 111;
    for k in 0..n {
        let i = (index + k) % n;
        match client.connect_tracker(i).await {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(e) => {
                last_errno = i32::from(e.errno());
                crate::tools::format::log_error(&format!(
                    "connect to server {} fail, {}",
                    client.trackers()[i],
                    errno_line(last_errno).replace("error no", "errno")
                ));
            }
        }
    }
    let Some(mut conn) = conn else {
        return exit_code(last_errno);
    };
    let peer = conn
        .stream
        .peer_addr()
        .map(|a| format!("{}:{}", formatted_ip(&a.ip().to_string()), a.port()))
        .unwrap_or_else(|_| conn.addr.clone());
    out!("\ntracker server is {peer}\n\n");
    let group = args.rest.first().cloned();
    let mut ok = true;
    match args.op.as_str() {
        "list" => {
            let mut tc = TrackerClient::new(&mut conn);
            match listing::list_all_groups(&mut tc, group.as_deref()).await {
                Ok(text) => out!("{text}"),
                Err(e) => {
                    // The C tool returns the errno of the failed listing.
                    let errno = report(&e);
                    log_error(&format!("list all groups fail, {}", errno_line(errno)));
                    client.release(conn, !e.is_network()).await;
                    return exit_code(errno);
                }
            }
        }
        "sync" => {
            let mut tc = TrackerClient::new(&mut conn);
            match sync_report::list_sync(&mut tc, group.as_deref()).await {
                Ok(text) => out!("{text}"),
                Err(errno) => {
                    ok = false;
                    outln!("sync status: fail, {}", errno_line(i32::from(errno)));
                }
            }
        }
        "delete" => {
            let Some(group) = group else {
                usage(prog);
                return ExitCode::from(1);
            };
            match args.rest.get(1) {
                None => match client.delete_group(&group).await {
                    Ok(()) => outln!("delete group: {group} success"),
                    Err(e) => outln!(
                        "delete group: {group} fail, {}",
                        errno_line(i32::from(e.errno()))
                    ),
                },
                Some(id) => match client.delete_storage(&group, id).await {
                    Ok(()) => outln!("delete storage server {group}::{id} success"),
                    Err(e) => outln!(
                        "delete storage server {group}::{id} fail, {}",
                        errno_line(i32::from(e.errno()))
                    ),
                },
            }
        }
        "set_trunk_server" => {
            let Some(group) = group else {
                usage(prog);
                return ExitCode::from(1);
            };
            let id = args.rest.get(1).cloned().unwrap_or_default();
            match client.set_trunk_server(&group, &id).await {
                Ok(new_id) => {
                    outln!("set trunk server {group}::{id} success, new trunk server: {new_id}")
                }
                Err(e) => outln!(
                    "set trunk server {group}::{id} fail, {}",
                    errno_line(i32::from(e.errno()))
                ),
            }
        }
        op if StatTool::by_op(op).is_some() => {
            client.release(conn, true).await;
            let tool = StatTool::by_op(op).unwrap_or(StatTool::Trackers);
            let prog = format!("{prog} {op}");
            return match cluster_stat::parse_args(tool, &prog, &args.rest) {
                Ok(stat_args) => {
                    out!("{}", cluster_stat::render(client, tool, &stat_args).await);
                    ExitCode::SUCCESS
                }
                Err(code) => ExitCode::from(code),
            };
        }
        other => {
            out!("Invalid command {other}\n\n");
            usage(prog);
        }
    }
    client.release(conn, ok).await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::stat::{storage_status, GroupStat, StorageStat, StorageStats};

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argument_forms() {
        let a = parse_args(&args(&["m", "c.conf"])).unwrap();
        assert_eq!(
            (a.conf.as_str(), a.op.as_str(), a.tracker),
            ("c.conf", "list", None)
        );
        let a = parse_args(&args(&["m"])).unwrap();
        assert_eq!(a.conf, DEFAULT_CLIENT_CONF);
        let a = parse_args(&args(&["m", "c", "-h", "1.2.3.4", "list", "g1"])).unwrap();
        assert_eq!(a.tracker.as_deref(), Some("1.2.3.4"));
        assert_eq!(a.rest, ["g1"]);
        let a = parse_args(&args(&["m", "c", "-h1.2.3.4:22123"])).unwrap();
        assert_eq!(
            (a.tracker.as_deref(), a.op.as_str()),
            (Some("1.2.3.4:22123"), "list")
        );
        let a = parse_args(&args(&["m", "c", "delete", "g1", "10.0.0.1"])).unwrap();
        assert_eq!((a.op.as_str(), a.rest.len()), ("delete", 2));
        assert_eq!(parse_args(&args(&["m", "c", "-h"])), Err(1));
    }

    #[test]
    fn tracker_lookup_by_host_and_port() {
        let t: Vec<TrackerAddr> = vec![
            "127.0.0.2:22122".parse().unwrap(),
            "127.0.0.5:22123".parse().unwrap(),
        ];
        assert_eq!(find_tracker(&t, "127.0.0.2"), Some(0));
        assert_eq!(find_tracker(&t, "127.0.0.5:22123"), Some(1));
        assert_eq!(find_tracker(&t, "127.0.0.5"), None);
        assert_eq!(find_tracker(&t, "1.2.3.4"), None);
    }

    /// Values from the captured C output in /tmp/cfdfs/tool-outputs.txt.
    pub(super) fn captured() -> (GroupStat, StorageStat) {
        let g = GroupStat {
            group_name: "group1".into(),
            total_mb: 258_019,
            free_mb: 81_300,
            reserved_mb: 2580,
            trunk_free_mb: 0,
            storage_count: 1,
            storage_port: 23000,
            readable_server_count: 1,
            writable_server_count: 1,
            current_write_server: 0,
            store_path_count: 1,
            subdir_count_per_path: 256,
            current_trunk_file_id: -1,
        };
        let mut stats = StorageStats {
            connection_alloc_count: 64,
            connection_current_count: 0,
            connection_max_count: 2,
            ..Default::default()
        };
        for (name, v) in [
            ("total_upload_count", 4),
            ("success_upload_count", 4),
            ("total_download_bytes", 51),
            ("success_download_bytes", 51),
        ] {
            stats.set_counter(name, v);
        }
        let s = StorageStat {
            status: storage_status::ACTIVE,
            rw_mode: 6,
            id: "127.0.0.3".into(),
            ip_addr: "127.0.0.3".into(),
            version: "6.16.1".into(),
            total_mb: 258_019,
            free_mb: 81_300,
            reserved_mb: 2580,
            upload_priority: 10,
            store_path_count: 1,
            subdir_count_per_path: 256,
            storage_port: 23000,
            stats,
            ..Default::default()
        };
        (g, s)
    }
}
