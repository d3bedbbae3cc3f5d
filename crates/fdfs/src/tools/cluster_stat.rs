//! `fdfs_tracker_stat`, `fdfs_storage_stat` and `fdfs_volumn_stat`: the
//! front ends of the cluster statistics commands 96, 97 and 98, with the
//! C 6.16 tools' options (getopt style) and text. `fdfs monitor
//! tracker_stat|storage_stat|volumn_stat` print the same text.
//!
//! As the originals, they exit 0 once a tracker answered, even when the
//! command itself failed (the failure is logged on stderr), and print
//! nothing for an empty listing.

use std::process::ExitCode;

use fdfs_client::{Client, ClientError};
use fdfs_proto::cluster_stat::{
    StorageClusterStat, StorageStatFilter, TrackerStatEntry, TrackerStatFilter, VolumnStat,
    VolumnStatEntry, VolumnStatFilter, STORAGE_FILTER_BY_IS_TRUNK_SERVER, STORAGE_FILTER_BY_STATUS,
    TRACKER_FILTER_BY_IS_ACTIVE, TRACKER_FILTER_BY_IS_LEADER, VOLUMN_FILTER_BY_IS_DISK_AVAILABLE,
    VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE, VOLUMN_FILTER_BY_IS_TRUNK_AVAILABLE,
};
use fdfs_proto::stat::storage_status;

use crate::tools::format::{errno_text, local_datetime, log_error, mb_to_human};
use crate::tools::session::{Session, DEFAULT_CLIENT_CONF};

/// Which of the three tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatTool {
    Trackers,
    Storages,
    Volumns,
}

impl StatTool {
    /// The classic name's tool.
    pub fn by_name(name: &str) -> Option<StatTool> {
        match name {
            "fdfs_tracker_stat" => Some(StatTool::Trackers),
            "fdfs_storage_stat" => Some(StatTool::Storages),
            "fdfs_volumn_stat" => Some(StatTool::Volumns),
            _ => None,
        }
    }

    /// The `fdfs monitor` operation's tool.
    pub fn by_op(op: &str) -> Option<StatTool> {
        match op {
            "tracker_stat" => Some(StatTool::Trackers),
            "storage_stat" => Some(StatTool::Storages),
            "volumn_stat" | "volume_stat" => Some(StatTool::Volumns),
            _ => None,
        }
    }

    /// getopt's option string of the original (`c` takes an argument).
    fn letters(self) -> &'static str {
        match self {
            StatTool::Trackers => "hANLFd",
            StatTool::Storages => "hANTtd",
            StatTool::Volumns => "hANFDdTt",
        }
    }

    fn usage(self, prog: &str) {
        let body = match self {
            StatTool::Trackers => "\t[-A] list ACTIVE trackers\n\
                 \t[-N] list None ACTIVE trackers\n\
                 \t[-L] list leader tracker\n\
                 \t[-F] list follower trackers\n\
                 \t[-d] show detail / more info\n\n"
                .to_string(),
            StatTool::Storages => "\t[-A] list ACTIVE storages\n\
                 \t[-N] list None ACTIVE storages\n\
                 \t[-d] show detail / more info\n\
                 \nWhen use_trunk_file is true, including options:\n\
                 \t[-T] list trunk servers / storages\n\
                 \t[-t] list None trunk servers / storages\n\n"
                .to_string(),
            StatTool::Volumns => "\t[-A] list space available groups / volumns\n\
                 \t[-N | -F] list None space available groups / volumns\n\
                 \t[-D] list disk space available groups / volumns\n\
                 \t[-d] list None disk space available groups / volumns\n\
                 \nWhen use_trunk_file is true, including options:\n\
                 \t[-T] list trunk space available groups / volumns\n\
                 \t[-t] list None trunk space available groups / volumns\n\n\
                 Note: space available when disk space available or trunk space available\n\n"
                .to_string(),
        };
        eprint!(
            "Usage: {prog} [-c config_filename={DEFAULT_CLIENT_CONF}]\n{body}\
             For example:\n\t{prog} -A\n\t{prog} -N\n\n"
        );
    }
}

/// What the options asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatArgs {
    pub conf: String,
    pub tracker: TrackerStatFilter,
    pub storage: StorageStatFilter,
    pub volumn: VolumnStatFilter,
    pub detail: bool,
}

/// Parses the options like getopt (`-Ad`, `-c conf`, `-cconf`); operands
/// are ignored. `Err(code)` after printing usage (`-h`: 0, bad option: 1).
pub fn parse_args(tool: StatTool, prog: &str, args: &[String]) -> Result<StatArgs, u8> {
    let mut out = StatArgs {
        conf: DEFAULT_CLIENT_CONF.to_string(),
        tracker: TrackerStatFilter::default(),
        storage: StorageStatFilter::default(),
        volumn: VolumnStatFilter::default(),
        detail: false,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(letters) = arg.strip_prefix('-').filter(|l| !l.is_empty()) else {
            continue;
        };
        for (pos, ch) in letters.char_indices() {
            if ch == 'c' {
                let rest = &letters[pos + 1..];
                if !rest.is_empty() {
                    out.conf = rest.to_string();
                } else if let Some(next) = args.get(i) {
                    out.conf = next.clone();
                    i += 1;
                } else {
                    eprintln!("{prog}: option requires an argument -- 'c'");
                    tool.usage(prog);
                    return Err(1);
                }
                break;
            }
            if !tool.letters().contains(ch) {
                eprintln!("{prog}: invalid option -- '{ch}'");
                tool.usage(prog);
                return Err(1);
            }
            if ch == 'h' {
                tool.usage(prog);
                return Err(0);
            }
            apply_option(tool, ch, &mut out);
        }
    }
    Ok(out)
}

fn apply_option(tool: StatTool, ch: char, out: &mut StatArgs) {
    match (tool, ch) {
        (_, 'd') if tool != StatTool::Volumns => out.detail = true,
        (StatTool::Trackers, 'A' | 'N') => {
            out.tracker.filter_by |= TRACKER_FILTER_BY_IS_ACTIVE;
            out.tracker.is_active = u8::from(ch == 'A');
        }
        (StatTool::Trackers, 'L' | 'F') => {
            out.tracker.filter_by |= TRACKER_FILTER_BY_IS_LEADER;
            out.tracker.is_leader = u8::from(ch == 'L');
        }
        (StatTool::Storages, 'A' | 'N') => {
            out.storage.filter_by |= STORAGE_FILTER_BY_STATUS;
            out.storage.status = storage_status::ACTIVE;
            out.storage.op_type = if ch == 'A' { b'=' } else { b'!' };
        }
        (StatTool::Storages, 'T' | 't') => {
            out.storage.filter_by |= STORAGE_FILTER_BY_IS_TRUNK_SERVER;
            out.storage.is_trunk_server = u8::from(ch == 'T');
        }
        (StatTool::Volumns, 'A' | 'N' | 'F') => {
            out.volumn.filter_by |= VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE;
            out.volumn.is_space_available = u8::from(ch == 'A');
        }
        (StatTool::Volumns, 'D' | 'd') => {
            out.volumn.filter_by |= VOLUMN_FILTER_BY_IS_DISK_AVAILABLE;
            out.volumn.is_disk_available = u8::from(ch == 'D');
        }
        (StatTool::Volumns, 'T' | 't') => {
            out.volumn.filter_by |= VOLUMN_FILTER_BY_IS_TRUNK_AVAILABLE;
            out.volumn.is_trunk_available = u8::from(ch == 'T');
        }
        _ => {}
    }
}

/// Runs the classic tool; `argv` includes the program name.
pub fn main(tool: StatTool, argv: &[String]) -> ExitCode {
    let prog = argv.first().map_or("fdfs_stat", String::as_str);
    let args = match parse_args(tool, prog, argv.get(1..).unwrap_or_default()) {
        Ok(a) => a,
        Err(code) => return ExitCode::from(code),
    };
    let session = match Session::load(&args.conf) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(code) = session.tracker_get_connection() {
        return code;
    }
    let text = session.rt.block_on(render(&session.client, tool, &args));
    out!("{text}");
    ExitCode::SUCCESS
}

/// The tool's text for the cluster `client` reaches; a failure is logged
/// (as the C library logs it) and yields no text.
pub async fn render(client: &Client, tool: StatTool, args: &StatArgs) -> String {
    let res = match tool {
        StatTool::Trackers => client
            .tracker_cluster_stat(&args.tracker)
            .await
            .map(|t| tracker_text(&t, args.detail)),
        StatTool::Storages => client
            .storage_cluster_stat(&args.storage)
            .await
            .map(|s| storage_text(&s, args.detail)),
        StatTool::Volumns => client
            .storage_volumn_stat(&args.volumn)
            .await
            .map(|v| volumn_text(&v)),
    };
    res.unwrap_or_else(|e: ClientError| {
        let n = crate::tools::session::report(&e);
        log_error(&format!(
            "fdfs_recv_response fail, errno: {n}, error info: {}",
            errno_text(n)
        ));
        String::new()
    })
}

/// fdfs_tracker_stat's text.
pub fn tracker_text(trackers: &[TrackerStatEntry], detail: bool) -> String {
    if trackers.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n");
    for t in trackers {
        let c = t.connections;
        s += &format!(
            "{}, is_leader: {}, is_active: {}, connections {{alloc: {}, current: {}, max: {}}}\n",
            t.host,
            u8::from(t.is_leader),
            u8::from(t.is_active),
            c.alloc,
            c.current,
            c.max
        );
        if detail {
            s += &format!(
                "  version: {}, up_time: {}",
                t.version,
                local_datetime(t.up_time)
            );
            if t.is_leader {
                s += "\n\n";
            } else {
                s += &format!(
                    ", last_heartbeat_time: {}\n\n",
                    local_datetime(t.last_heartbeat_time)
                );
            }
        }
    }
    s + &format!("\ntracker server count: {}\n\n", trackers.len())
}

/// fdfs_storage_stat's text.
pub fn storage_text(stat: &StorageClusterStat, detail: bool) -> String {
    if stat.storages.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n");
    for st in &stat.storages {
        if stat.use_storage_id {
            s += &format!("{} ", st.id);
        }
        s += &format!("{} {}, ", st.host, storage_status::caption(st.status));
        if stat.use_trunk_file {
            s += &format!("is_trunk_server: {}, ", u8::from(st.is_trunk_server));
        }
        let c = st.connections;
        s += &format!(
            "connections {{alloc: {}, current: {}, max: {}}}\n",
            c.alloc, c.current, c.max
        );
        if detail {
            s += &format!(
                "  version: {}, up_time: {}, last_heartbeat_time: {}\n\n",
                st.version,
                local_datetime(st.up_time),
                local_datetime(st.last_heartbeat_time)
            );
        }
    }
    s + &format!("\nstorage server count: {}\n\n", stat.storages.len())
}

fn group_text(g: &VolumnStatEntry, use_trunk_file: bool) -> String {
    let mut s = format!(
        "{} disk_available: {}",
        g.group_name,
        u8::from(g.is_disk_available)
    );
    if use_trunk_file {
        s += &format!(", trunk_available: {}", u8::from(g.is_trunk_available));
    }
    let total_mb = g.total_mb - g.reserved_mb;
    let util = if total_mb > 0 {
        (total_mb - g.avail_mb) as f64 / total_mb as f64 * 100.0
    } else {
        0.0
    };
    s += &format!(
        ", disk space {{total: {}, free: {}, reserved: {}, avail: {}, util: {util:.2}%}}",
        mb_to_human(g.total_mb),
        mb_to_human(g.free_mb),
        mb_to_human(g.reserved_mb),
        mb_to_human(g.avail_mb)
    );
    if use_trunk_file {
        let total_avail = g.avail_mb + g.trunk_free_mb;
        let ratio = if total_mb > 0 {
            total_avail as f64 / total_mb as f64 * 100.0
        } else {
            0.0
        };
        s += &format!(
            ", trunk free space: {}, total available {{space: {}, ratio: {ratio:.2}%}}\n\n",
            mb_to_human(g.trunk_free_mb),
            mb_to_human(total_avail)
        );
    } else {
        s += "\n\n";
    }
    s
}

/// fdfs_volumn_stat's text: one line per group, and a summary when there
/// are several.
pub fn volumn_text(v: &VolumnStat) -> String {
    if v.groups.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n");
    let mut sum = VolumnStatEntry::default();
    let mut available = 0;
    for g in &v.groups {
        sum.total_mb += g.total_mb;
        sum.free_mb += g.free_mb;
        sum.reserved_mb += g.reserved_mb;
        sum.avail_mb += g.avail_mb;
        sum.trunk_free_mb += g.trunk_free_mb;
        sum.is_disk_available |= g.is_disk_available;
        sum.is_trunk_available |= g.is_trunk_available;
        if g.is_disk_available || g.is_trunk_available {
            available += 1;
        }
        s += &group_text(g, v.use_trunk_file);
    }
    if v.groups.len() <= 1 {
        s += &format!("storage volumn / group count: {}\n\n", v.groups.len());
    } else {
        let bar = "=".repeat(32);
        s += &format!("{bar} VOLUMNS SUMMARY {bar}\n");
        s += &group_text(&sum, v.use_trunk_file);
        s += &format!(
            "volumn / group counts {{total: {}, available: {available}}}\n\n",
            v.groups.len()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::cluster_stat::{ConnCounts, StorageStatEntry};

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_like_getopt() {
        let a = parse_args(StatTool::Trackers, "t", &args(&["-Ad", "-c", "x.conf"])).unwrap();
        assert_eq!(a.conf, "x.conf");
        assert!(a.detail);
        assert_eq!((a.tracker.filter_by, a.tracker.is_active), (1, 1));
        let a = parse_args(StatTool::Trackers, "t", &args(&["-F", "-cy.conf"])).unwrap();
        assert_eq!(a.conf, "y.conf");
        assert_eq!((a.tracker.filter_by, a.tracker.is_leader), (2, 0));
        let a = parse_args(StatTool::Storages, "s", &args(&["-N"])).unwrap();
        assert_eq!(a.conf, DEFAULT_CLIENT_CONF);
        assert_eq!(
            (a.storage.filter_by, a.storage.op_type, a.storage.status),
            (2, b'!', 7)
        );
        let a = parse_args(StatTool::Volumns, "v", &args(&["-F", "-d"])).unwrap();
        assert_eq!(a.volumn.filter_by, 5);
        assert_eq!(
            (a.volumn.is_space_available, a.volumn.is_disk_available),
            (0, 0)
        );
        assert!(
            !a.detail,
            "-d filters volumns, it is no detail switch there"
        );
        assert_eq!(parse_args(StatTool::Trackers, "t", &args(&["-T"])), Err(1));
        assert_eq!(parse_args(StatTool::Volumns, "v", &args(&["-h"])), Err(0));
        assert_eq!(parse_args(StatTool::Storages, "s", &args(&["-c"])), Err(1));
    }

    #[test]
    fn tracker_text_matches_the_original_layout() {
        std::env::set_var("TZ", "UTC");
        let t = vec![
            TrackerStatEntry {
                host: "127.0.0.2:22122".into(),
                is_leader: true,
                is_active: true,
                connections: ConnCounts {
                    alloc: 256,
                    current: 2,
                    max: 3,
                },
                version: "6.16.1".into(),
                up_time: 1_700_000_000,
                last_heartbeat_time: 0,
            },
            TrackerStatEntry {
                host: "127.0.0.3:22122".into(),
                version: "6.16.1".into(),
                up_time: 1_700_000_000,
                last_heartbeat_time: 1_700_000_060,
                ..Default::default()
            },
        ];
        assert_eq!(
            tracker_text(&t, false),
            "\n127.0.0.2:22122, is_leader: 1, is_active: 1, connections {alloc: 256, current: 2, max: 3}\n\
             127.0.0.3:22122, is_leader: 0, is_active: 0, connections {alloc: 0, current: 0, max: 0}\n\
             \ntracker server count: 2\n\n"
        );
        assert_eq!(
            tracker_text(&t, true),
            "\n127.0.0.2:22122, is_leader: 1, is_active: 1, connections {alloc: 256, current: 2, max: 3}\n\
             \x20 version: 6.16.1, up_time: 2023-11-14 22:13:20\n\n\
             127.0.0.3:22122, is_leader: 0, is_active: 0, connections {alloc: 0, current: 0, max: 0}\n\
             \x20 version: 6.16.1, up_time: 2023-11-14 22:13:20, last_heartbeat_time: 2023-11-14 22:14:20\n\n\
             \ntracker server count: 2\n\n"
        );
        assert_eq!(tracker_text(&[], true), "");
    }

    #[test]
    fn storage_text_shows_ids_and_trunk_only_when_on() {
        let mut st = StorageClusterStat {
            use_storage_id: false,
            use_trunk_file: false,
            storages: vec![StorageStatEntry {
                id: "100001".into(),
                host: "127.0.0.3:23000".into(),
                status: 7,
                connections: ConnCounts {
                    alloc: 2,
                    current: 1,
                    max: 2,
                },
                ..Default::default()
            }],
        };
        assert_eq!(
            storage_text(&st, false),
            "\n127.0.0.3:23000 ACTIVE, connections {alloc: 2, current: 1, max: 2}\n\
             \nstorage server count: 1\n\n"
        );
        st.use_storage_id = true;
        st.use_trunk_file = true;
        assert!(storage_text(&st, false)
            .starts_with("\n100001 127.0.0.3:23000 ACTIVE, is_trunk_server: 0, connections"));
    }

    #[test]
    fn volumn_text_has_a_summary_for_several_groups() {
        let g = |name: &str| VolumnStatEntry {
            group_name: name.into(),
            total_mb: 258_019,
            free_mb: 73_867,
            reserved_mb: 51_603,
            avail_mb: 22_264,
            trunk_free_mb: 0,
            is_disk_available: true,
            is_trunk_available: false,
        };
        let one = VolumnStat {
            use_trunk_file: false,
            groups: vec![g("group1")],
        };
        assert_eq!(
            volumn_text(&one),
            "\ngroup1 disk_available: 1, disk space {total: 252 GB, free: 72 GB, \
             reserved: 50 GB, avail: 22 GB, util: 89.21%}\n\n\
             storage volumn / group count: 1\n\n"
        );
        let two = VolumnStat {
            use_trunk_file: false,
            groups: vec![g("group1"), g("group2")],
        };
        let text = volumn_text(&two);
        assert!(text.contains(
            "================================ VOLUMNS SUMMARY ================================\n disk_available: 1"
        ));
        assert!(text.ends_with("volumn / group counts {total: 2, available: 2}\n\n"));
    }
}
