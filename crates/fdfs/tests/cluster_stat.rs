//! The cluster statistics commands (96, 97, 98) end to end: a running
//! cluster of two trackers and two groups, read through our client and
//! through the classic `fdfs_tracker_stat`, `fdfs_storage_stat` and
//! `fdfs_volumn_stat` tools and `fdfs monitor` (issue #13.1).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fdfs_client::Client;
use fdfs_proto::cluster_stat::{
    StorageStatFilter, TrackerStatEntry, TrackerStatFilter, VolumnStatFilter,
};
use fdfs_proto::stat::storage_status;
use fdfs_testkit::group::{Group, GroupOptions};
use fdfs_testkit::wait_until;

const DEADLINE: Duration = Duration::from_secs(60);

fn all_trackers(g: &Group, client: &Client) -> Vec<TrackerStatEntry> {
    g.block_on(client.tracker_cluster_stat(&TrackerStatFilter::default()))
        .unwrap_or_default()
}

/// A client.conf naming every tracker of `g`.
fn client_conf(g: &Group, dir: &Path) -> PathBuf {
    let mut text = format!(
        "connect_timeout = 30\nnetwork_timeout = 30\nbase_path = {}\nlog_level = error\n",
        dir.display()
    );
    for a in g.tracker_addrs() {
        text += &format!("tracker_server = {a}\n");
    }
    let path = dir.join("client.conf");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `bin` with `args` (TZ=UTC); exit code and stdout.
fn run(bin: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn cluster_stat_through_the_client_and_the_tools() {
    let mut g = Group::start_with(GroupOptions {
        trackers: 2,
        groups: vec![("group1", 1), ("group2", 1)],
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE), "storages never became ACTIVE");
    let client = g.client();
    let trackers: Vec<String> = g.tracker_addrs().iter().map(|a| a.to_string()).collect();

    // The leader lists both trackers once the follower pings it.
    assert!(
        wait_until(DEADLINE, || {
            let t = all_trackers(&g, &client);
            t.len() == 2 && t.iter().all(|e| e.is_active)
        }),
        "two active trackers never listed: {:?}",
        all_trackers(&g, &client)
    );
    let listed = all_trackers(&g, &client);
    let mut hosts: Vec<String> = listed.iter().map(|e| e.host.clone()).collect();
    hosts.sort();
    let mut want = trackers.clone();
    want.sort();
    assert_eq!(hosts, want);
    assert_eq!(listed.iter().filter(|e| e.is_leader).count(), 1);
    for e in &listed {
        assert_eq!(e.version, "6.16.1");
        assert!(e.up_time > 0);
        assert!(e.connections.current >= 1, "{e:?}");
    }
    let follower = listed.iter().find(|e| !e.is_leader).unwrap().clone();
    assert!(follower.last_heartbeat_time > 0);

    let storages = g
        .block_on(client.storage_cluster_stat(&StorageStatFilter::default()))
        .unwrap();
    assert!(!storages.use_storage_id && !storages.use_trunk_file);
    let mut hosts: Vec<String> = storages.storages.iter().map(|s| s.host.clone()).collect();
    hosts.sort();
    let mut want: Vec<String> = (0..2).map(|i| g.storage_addr(i).to_string()).collect();
    want.sort();
    assert_eq!(hosts, want);
    assert!(storages
        .storages
        .iter()
        .all(|s| s.status == storage_status::ACTIVE && s.version == "6.16.1"));

    let volumns = g
        .block_on(client.storage_volumn_stat(&VolumnStatFilter::default()))
        .unwrap();
    let names: Vec<&str> = volumns
        .groups
        .iter()
        .map(|v| v.group_name.as_str())
        .collect();
    assert_eq!(names, ["group1", "group2"]);
    assert!(volumns
        .groups
        .iter()
        .all(|v| v.total_mb > 0 && v.total_mb >= v.free_mb));

    // The classic tools, symlinked as `fdfs install-links` makes them.
    let work = tempfile::tempdir().unwrap();
    let conf = client_conf(&g, work.path());
    let conf = conf.to_str().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let (code, _) = run(
        Path::new(env!("CARGO_BIN_EXE_fdfs")),
        &["install-links", bin.to_str().unwrap()],
    );
    assert_eq!(code, 0);

    let (code, out) = run(&bin.join("fdfs_tracker_stat"), &["-c", conf]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with('\n') && out.ends_with("\ntracker server count: 2\n\n"),
        "{out}"
    );
    for t in &trackers {
        assert!(
            out.contains(&format!("{t}, is_leader: ")),
            "{t} missing in {out}"
        );
    }
    let (_, out) = run(&bin.join("fdfs_tracker_stat"), &["-c", conf, "-Ld"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].contains(", is_leader: 1, is_active: 1, connections {alloc: "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("  version: 6.16.1, up_time: 20"),
        "{out}"
    );
    assert!(out.ends_with("\ntracker server count: 1\n\n"), "{out}");

    let (code, out) = run(&bin.join("fdfs_storage_stat"), &["-c", conf, "-A"]);
    assert_eq!(code, 0);
    for i in 0..2 {
        assert!(
            out.contains(&format!(
                "\n{} ACTIVE, connections {{alloc: ",
                g.storage_addr(i)
            )),
            "{out}"
        );
    }
    assert!(out.ends_with("\nstorage server count: 2\n\n"), "{out}");
    // -N: nothing is inactive, nothing is printed.
    assert_eq!(
        run(&bin.join("fdfs_storage_stat"), &["-c", conf, "-N"]),
        (0, String::new())
    );

    let (code, out) = run(&bin.join("fdfs_volumn_stat"), &["-c", conf]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("\ngroup1 disk_available: 1, disk space {total: "),
        "{out}"
    );
    assert!(
        out.contains("\ngroup2 disk_available: 1, disk space {total: "),
        "{out}"
    );
    assert!(out.contains(" VOLUMNS SUMMARY "), "{out}");
    assert!(
        out.ends_with("volumn / group counts {total: 2, available: 2}\n\n"),
        "{out}"
    );

    // `fdfs monitor` prints the tools' text after its header.
    let fdfs = Path::new(env!("CARGO_BIN_EXE_fdfs"));
    let (code, out) = run(fdfs, &["monitor", "-c", conf, "storage_stat", "-d"]);
    assert_eq!(code, 0);
    assert!(out.contains("\nstorage server count: 2\n\n"), "{out}");
    assert!(out.contains("  version: 6.16.1, up_time: "), "{out}");
    let (code, out) = run(fdfs, &["monitor", "-c", conf, "volumn_stat", "-A"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("volumn / group counts {total: 2, available: 2}"),
        "{out}"
    );

    // The follower goes down: the leader shows it inactive (-N).
    let index = g
        .tracker_addrs()
        .iter()
        .position(|a| a.to_string() == follower.host)
        .unwrap();
    g.stop_tracker(index);
    assert!(
        wait_until(DEADLINE, || {
            all_trackers(&g, &client)
                .iter()
                .any(|e| e.host == follower.host && !e.is_active)
        }),
        "the stopped follower stays active"
    );
    let (code, out) = run(&bin.join("fdfs_tracker_stat"), &["-c", conf, "-N"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines()
            .nth(1)
            .map(|l| l.starts_with(&format!("{}, is_leader: 0, is_active: 0", follower.host))),
        Some(true),
        "{out}"
    );
    assert!(out.ends_with("\ntracker server count: 1\n\n"), "{out}");
}
