//! `fdfs_monitor`: argument handling and the exact listing layout of the
//! C tool (PROTOCOL §12.7), built from GroupStat / StorageStat records.

use std::fmt::Write as _;
use std::process::ExitCode;

use fdfs_client::{Client, TrackerClient};
use fdfs_config::TrackerAddr;
use fdfs_proto::stat::{storage_status, GroupStat, StorageStat};
use fdfs_proto::tracker_msg::SyncProgress;

use crate::tools::format::{errno_line, local_datetime, mb_to_human};
use crate::tools::session::{exit_code, Session, DEFAULT_CLIENT_CONF};

/// Default tracker port for `-h host` without a port.
const DEFAULT_TRACKER_PORT: u16 = 22122;

fn rw_caption(rw_mode: u8) -> &'static str {
    match rw_mode {
        0 => "none (disabled)",
        2 => "readonly",
        4 => "writeonly",
        6 => "both (normal)",
        _ => "unknown",
    }
}

/// `[v6]` brackets as `format_ip_address` adds them.
fn formatted_ip(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// The "(… delay)" text for `storage`, from the newest source update of
/// the *other* storages of the group.
fn synced_delay_text(storage_index: usize, storages: &[StorageStat]) -> String {
    let max_last_source_update = storages
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != storage_index)
        .map(|(_, s)| s.stats.last_source_update)
        .fold(0, i64::max);
    if max_last_source_update == 0 {
        return String::new();
    }
    let synced = storages[storage_index].stats.last_synced_timestamp;
    if synced == 0 {
        "(never synced)".to_string()
    } else {
        format!(
            "({} delay)",
            crate::tools::format::seconds_to_human(max_last_source_update - synced)
        )
    }
}

/// One group block as `list_storages` prints it: group lines, then one
/// block per storage.
pub fn format_group(g: &GroupStat, storages: &[StorageStat]) -> String {
    let mut out = String::new();
    let avail = (g.free_mb - g.reserved_mb).max(0);
    // Writing to a String cannot fail; the results are ignored.
    let _ = write!(
        out,
        "group name = {}\n\
         disk total space     = {:>7}\n\
         disk free space      = {:>7}\n\
         disk reserved space  = {:>7}\n\
         disk available space = {:>7}\n",
        g.group_name,
        mb_to_human(g.total_mb),
        mb_to_human(g.free_mb),
        mb_to_human(g.reserved_mb),
        mb_to_human(avail)
    );
    let uses_trunk = g.current_trunk_file_id >= 0;
    if uses_trunk {
        let _ = writeln!(
            out,
            "trunk free space = {:>7}",
            mb_to_human(g.trunk_free_mb)
        );
    }
    let _ = write!(
        out,
        "storage server count = {}\n\
         readable server count = {}\n\
         writable server count = {}\n\
         storage server port = {}\n\
         store path count = {}\n\
         subdir count per path = {}\n\
         current write server index = {}\n",
        g.storage_count,
        g.readable_server_count,
        g.writable_server_count,
        g.storage_port,
        g.store_path_count,
        g.subdir_count_per_path,
        g.current_write_server
    );
    match storages.iter().find(|s| s.if_trunk_server) {
        Some(t) if uses_trunk => {
            let _ = write!(
                out,
                "current trunk server = {} ({})\ncurrent trunk file id = {}\n\n",
                t.id, t.ip_addr, g.current_trunk_file_id
            );
        }
        _ => out.push('\n'),
    }
    for (k, s) in storages.iter().enumerate() {
        format_storage(&mut out, k, s, &synced_delay_text(k, storages));
    }
    out
}

fn format_storage(out: &mut String, k: usize, s: &StorageStat, delay: &str) {
    let up_time = if s.up_time != 0 {
        local_datetime(s.up_time)
    } else {
        String::new()
    };
    let avail = (s.free_mb - s.reserved_mb).max(0);
    let st = &s.stats;
    let _ = write!(
        out,
        "\tStorage {}:\n\
         \t\tid = {}\n\
         \t\thost = {}:{}  {}\n\
         \t\tread write mode = {}\n\
         \t\tversion = {}\n\
         \t\tjoin time = {}\n\
         \t\tup time = {}\n\
         \t\tdisk total space     = {:>7}\n\
         \t\tdisk free space      = {:>7}\n\
         \t\tdisk reserved space  = {:>7}\n\
         \t\tdisk available space = {:>7}\n\
         \t\tupload priority = {}\n\
         \t\tstore_path_count = {}\n\
         \t\tsubdir_count_per_path = {}\n\
         \t\tcurrent_write_path = {}\n\
         \t\tsource storage id = {}\n\
         \t\tif_trunk_server = {}\n\
         \t\tconnection.alloc_count = {}\n\
         \t\tconnection.current_count = {}\n\
         \t\tconnection.max_count = {}\n",
        k + 1,
        s.id,
        formatted_ip(&s.ip_addr),
        s.storage_port,
        storage_status::caption(s.status),
        rw_caption(s.rw_mode),
        s.version,
        local_datetime(s.join_time),
        up_time,
        mb_to_human(s.total_mb),
        mb_to_human(s.free_mb),
        mb_to_human(s.reserved_mb),
        mb_to_human(avail),
        s.upload_priority,
        s.store_path_count,
        s.subdir_count_per_path,
        s.current_write_path,
        s.src_id,
        u8::from(s.if_trunk_server),
        st.connection_alloc_count,
        st.connection_current_count,
        st.connection_max_count,
    );
    // The 38 counters, in wire order; the C tool misspells one of them.
    for (name, value) in st.counters() {
        if name.starts_with("last_") {
            continue;
        }
        let name = if name == "total_download_bytes" {
            "stotal_download_bytes"
        } else {
            name
        };
        let _ = writeln!(out, "\t\t{name} = {value}");
    }
    let _ = write!(
        out,
        "\t\tlast_heart_beat_time = {}\n\
         \t\tlast_source_update = {}\n\
         \t\tlast_sync_update = {}\n\
         \t\tlast_synced_timestamp = {} {}\n",
        local_datetime(st.last_heart_beat_time),
        local_datetime(st.last_source_update),
        local_datetime(st.last_sync_update),
        local_datetime(st.last_synced_timestamp),
        delay
    );
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
            let text = list_all_groups(&mut tc, group.as_deref()).await;
            ok = text.is_some();
            out!("{}", text.unwrap_or_default());
        }
        "sync" => {
            let mut tc = TrackerClient::new(&mut conn);
            match list_sync(&mut tc, group.as_deref()).await {
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
        other => {
            out!("Invalid command {other}\n\n");
            usage(prog);
        }
    }
    client.release(conn, ok).await;
    ExitCode::SUCCESS
}

/// `sync [group]` (our addition; the C tool answers "Invalid command"):
/// replication as the tracker sees it, per group.
async fn list_sync(tc: &mut TrackerClient<'_>, group: Option<&str>) -> Result<String, u8> {
    let groups = tc.list_groups().await.map_err(|e| e.errno())?;
    let progress = tc.sync_status(group).await.map_err(|e| e.errno())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut out = String::new();
    for g in groups
        .iter()
        .filter(|g| group.is_none_or(|name| g.group_name == name))
    {
        let storages = tc
            .list_storages(&g.group_name, None)
            .await
            .map_err(|e| e.errno())?;
        out.push_str(&format_sync(&g.group_name, &storages, &progress, now));
    }
    Ok(out)
}

/// The `sync` report of one group: for each storage its status, last
/// heartbeat and sync source, then how far behind each peer's changes it
/// is. Lag = the peer's newest change minus the newest change of that peer
/// this storage reported having received.
pub fn format_sync(
    group: &str,
    storages: &[StorageStat],
    progress: &[SyncProgress],
    now: i64,
) -> String {
    let mut out = String::new();
    let status_of = |id: &str| storages.iter().find(|s| s.id == id).map(|s| s.status);
    let _ = writeln!(out, "group {group}: {} storage(s)", storages.len());
    for s in storages {
        let beat = s.stats.last_heart_beat_time;
        let beat_text = if beat == 0 {
            "no heartbeat yet".to_string()
        } else {
            format!("last heartbeat {} s ago", (now - beat).max(0))
        };
        // In id mode peers are named by id below: show which address it is.
        let id_text = if s.id != s.ip_addr {
            format!("  (id {})", s.id)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}:{}  {}  {beat_text}{id_text}",
            formatted_ip(&s.ip_addr),
            s.storage_port,
            storage_status::caption(s.status)
        );
        let full_sync = progress.iter().find_map(|p| match p {
            SyncProgress::FullSyncSource {
                group: g,
                storage_id,
                src_id,
                until_timestamp,
            } if g == group && *storage_id == s.id => Some((src_id.clone(), *until_timestamp)),
            _ => None,
        });
        match full_sync {
            None => {
                let _ = writeln!(out, "    sync source: none (first member of the group)");
            }
            Some((src, until)) => {
                let received = received_from(progress, group, &src, &s.id);
                let state = match s.status {
                    storage_status::WAIT_SYNC | storage_status::SYNCING => {
                        let src_status = status_of(&src);
                        if src_status == Some(storage_status::ACTIVE) {
                            format!(
                                "full copy in progress: received up to {} of {}",
                                timestamp_text(received),
                                local_datetime(until)
                            )
                        } else {
                            let caption = src_status.map_or("unknown", storage_status::caption);
                            format!("full copy waits for its source, which is {caption}")
                        }
                    }
                    _ => "full copy done".to_string(),
                };
                let _ = writeln!(out, "    sync source: {src} ({state})");
            }
        }
        for peer in storages.iter().filter(|p| p.id != s.id) {
            let newest = peer.stats.last_source_update;
            let received = received_from(progress, group, &peer.id, &s.id);
            let lag = if newest == 0 {
                "up to date (the peer has no changes of its own)".to_string()
            } else if received == 0 {
                format!(
                    "nothing received yet (peer's newest change {})",
                    local_datetime(newest)
                )
            } else {
                format!(
                    "lag {} s (received up to {})",
                    (newest - received).max(0),
                    local_datetime(received)
                )
            };
            let _ = writeln!(out, "    from {}: {lag}", peer.id);
        }
    }
    out
}

/// The newest change of `src` that `dest` reported having received (0: none).
fn received_from(progress: &[SyncProgress], group: &str, src: &str, dest: &str) -> i64 {
    progress
        .iter()
        .find_map(|p| match p {
            SyncProgress::Synced {
                group: g,
                src_id,
                dest_id,
                timestamp,
            } if g == group && src_id == src && dest_id == dest => Some(*timestamp),
            _ => None,
        })
        .unwrap_or(0)
}

fn timestamp_text(ts: i64) -> String {
    if ts == 0 {
        "nothing".to_string()
    } else {
        local_datetime(ts)
    }
}

/// `list [group]`: the whole listing text, or None if the group list could
/// not be read (the C tool then prints nothing more and still exits 0).
async fn list_all_groups(tc: &mut TrackerClient<'_>, group: Option<&str>) -> Option<String> {
    let groups = tc.list_groups().await.ok()?;
    let mut out = String::new();
    match group {
        None => {
            let _ = writeln!(out, "group count: {}", groups.len());
            for (i, g) in groups.iter().enumerate() {
                let _ = write!(out, "\nGroup {}:\n", i + 1);
                if let Ok(storages) = tc.list_storages(&g.group_name, None).await {
                    out.push_str(&format_group(g, &storages));
                }
            }
        }
        Some(name) => {
            if let Some(g) = groups.iter().find(|g| g.group_name == name) {
                if let Ok(storages) = tc.list_storages(&g.group_name, None).await {
                    out.push_str(&format_group(g, &storages));
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::stat::StorageStats;

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
    fn captured() -> (GroupStat, StorageStat) {
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

    #[test]
    fn layout_matches_captured_c_output() {
        let (g, s) = captured();
        let text = format_group(&g, std::slice::from_ref(&s));
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "group name = group1");
        assert_eq!(lines[1], "disk total space     =  252 GB");
        assert_eq!(lines[2], "disk free space      =   79 GB");
        assert_eq!(lines[3], "disk reserved space  =  2.5 GB");
        assert_eq!(lines[4], "disk available space =   77 GB");
        assert_eq!(lines[5], "storage server count = 1");
        assert_eq!(lines[11], "current write server index = 0");
        assert_eq!(lines[12], "");
        assert_eq!(lines[13], "\tStorage 1:");
        assert_eq!(lines[14], "\t\tid = 127.0.0.3");
        assert_eq!(lines[15], "\t\thost = 127.0.0.3:23000  ACTIVE");
        assert_eq!(lines[16], "\t\tread write mode = both (normal)");
        assert_eq!(lines[19], "\t\tup time = ");
        assert_eq!(lines[20], "\t\tdisk total space     =  252 GB");
        assert_eq!(lines[28], "\t\tsource storage id = ");
        assert!(text.contains("\n\t\ttotal_upload_count = 4\n\t\tsuccess_upload_count = 4\n"));
        assert!(
            text.contains("\n\t\tstotal_download_bytes = 51\n\t\tsuccess_download_bytes = 51\n")
        );
        assert!(text.contains("\n\t\tsuccess_file_write_count = 0\n\t\tlast_heart_beat_time = "));
        // A single storage has no delay text, but the separating space stays.
        assert!(text.ends_with(" \n"), "{text:?}");
        assert_eq!(text.matches('\n').count(), 13 + 62);
    }

    #[test]
    fn trunk_lines_and_delay_text() {
        let (mut g, s) = captured();
        g.current_trunk_file_id = 3;
        g.trunk_free_mb = 1024;
        let mut a = s.clone();
        a.if_trunk_server = true;
        a.stats.last_source_update = 1000;
        a.stats.last_synced_timestamp = 0;
        let mut b = s;
        b.id = "127.0.0.4".into();
        b.ip_addr = "127.0.0.4".into();
        b.stats.last_source_update = 0;
        b.stats.last_synced_timestamp = 1000 - 3661;
        let text = format_group(&g, &[a, b]);
        assert!(text.contains("\ntrunk free space =  1.0 GB\n"));
        assert!(text.contains(
            "current write server index = 0\ncurrent trunk server = 127.0.0.3 (127.0.0.3)\ncurrent trunk file id = 3\n\n\tStorage 1:"
        ));
        // Storage 1: the other storage never updated anything → no text.
        // Storage 2: 1 h 1 min 1 s behind storage 1.
        assert!(text.contains("(1 hour 1 minute 1 second delay)\n"));
        let first = text.split("\tStorage 2:").next().unwrap_or("");
        assert!(first.ends_with(" \n"));
        let (_, s) = captured();
        let mut never = s.clone();
        never.stats.last_source_update = 5;
        let text = format_group(&g, &[never, s]);
        assert!(text.ends_with("(never synced)\n"));
    }

    #[test]
    fn sync_report_explains_lag_and_a_stuck_full_copy() {
        let (_, s) = captured();
        let mut a = s.clone();
        a.stats.last_source_update = 1000;
        a.stats.last_heart_beat_time = 1990;
        let mut b = s.clone();
        b.id = "127.0.0.4".into();
        b.ip_addr = "127.0.0.4".into();
        b.status = storage_status::OFFLINE;
        b.stats.last_source_update = 900;
        let mut c = s;
        c.id = "127.0.0.5".into();
        c.ip_addr = "127.0.0.5".into();
        c.status = storage_status::WAIT_SYNC;
        c.stats.last_heart_beat_time = 0;
        let progress = vec![
            SyncProgress::Synced {
                group: "group1".into(),
                src_id: "127.0.0.3".into(),
                dest_id: "127.0.0.4".into(),
                timestamp: 970,
            },
            SyncProgress::FullSyncSource {
                group: "group1".into(),
                storage_id: "127.0.0.5".into(),
                src_id: "127.0.0.4".into(),
                until_timestamp: 950,
            },
        ];
        let text = format_sync("group1", &[a, b, c], &progress, 2000);
        assert!(text.starts_with("group group1: 3 storage(s)\n  127.0.0.3:23000  ACTIVE  last heartbeat 10 s ago\n    sync source: none (first member of the group)\n"), "{text}");
        // 127.0.0.4 has 127.0.0.3's changes up to 970 of 1000.
        assert!(text.contains("  127.0.0.4:23000  OFFLINE  "), "{text}");
        assert!(
            text.contains("    from 127.0.0.3: lag 30 s (received up to "),
            "{text}"
        );
        // 127.0.0.5 waits for its source, which is down.
        assert!(text.contains("  127.0.0.5:23000  WAIT_SYNC  no heartbeat yet\n    sync source: 127.0.0.4 (full copy waits for its source, which is OFFLINE)\n"), "{text}");
        assert!(
            text.contains("    from 127.0.0.4: nothing received yet (peer's newest change "),
            "{text}"
        );
    }
}
