//! Trunk servers as the tracker keeps them (PROTOCOL.md §11.5, §2.8, §4.3,
//! §4.8): with `use_trunk_file` the leader appoints one ACTIVE storage per
//! group, shows it in LIST_STORAGE / fdfs_monitor / cluster stat, persists
//! it, fails over when it dies, lets SET_TRUNK_SERVER (94) force it under
//! the original's rules, tells the followers, and takes REPORT_TRUNK_FID /
//! REPORT_TRUNK_FREE (73, 74) from the trunk server only.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdfs_client::{ClientError, Conn, TrackerClient};
use fdfs_proto::cluster_stat::{StorageStatFilter, VolumnStatFilter};
use fdfs_proto::tracker_msg::ChangeNotice;
use fdfs_proto::{Status, TrackerCmd};
use fdfs_testkit::group::{Group, GroupOptions};
use fdfs_testkit::wait_until;

const DEADLINE: Duration = Duration::from_secs(40);

/// `trackers` trackers with `use_trunk_file` and `n` storages of group1.
fn trunk_cluster(trackers: usize, n: usize, check_active_secs: u64) -> Group {
    Group::start_with(GroupOptions {
        trackers,
        groups: vec![("group1", n)],
        tweak_tracker: Some(Arc::new(move |c| {
            c.use_trunk_file = true;
            c.check_active_interval_secs = check_active_secs;
        })),
        ..GroupOptions::default()
    })
}

/// The trunk server tracker `t` lists for group1 (None: none, or more
/// than one).
fn trunk_on(g: &Group, t: usize) -> Option<String> {
    let list = g.list_storages(t, "group1");
    let mut trunks = list.iter().filter(|s| s.if_trunk_server);
    let first = trunks.next()?.id.clone();
    trunks.next().is_none().then_some(first)
}

fn wait_trunk(g: &Group, t: usize, not: Option<&str>) -> String {
    let mut found = None;
    assert!(
        wait_until(DEADLINE, || {
            found = trunk_on(g, t).filter(|id| Some(id.as_str()) != not);
            found.is_some()
        }),
        "tracker {t} never listed a trunk server (other than {not:?})"
    );
    found.unwrap()
}

fn set_trunk(g: &Group, t: usize, id: &str) -> Result<String, ClientError> {
    g.block_on(g.client_of(t).set_trunk_server("group1", id))
}

fn status_of(r: Result<String, ClientError>) -> Option<Status> {
    match r {
        Err(ClientError::Status(s)) => Some(s),
        _ => None,
    }
}

/// A raw connection to tracker `t` bound to member `i`'s address, JOINed
/// as that member (the storage itself is connected from the same address,
/// which the tracker allows).
async fn join_as(g: &Group, t: usize, i: usize) -> Conn {
    let ip = g.storage_ip(i).parse().unwrap();
    let mut c = Conn::connect_from(
        &g.tracker(t).to_string(),
        Some(ip),
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    c.call(TrackerCmd::StorageJoin.into(), &g.join_body("group1"))
        .await
        .unwrap();
    c
}

fn call_status(r: Result<Vec<u8>, ClientError>) -> Status {
    match r {
        Ok(_) => Status(0),
        Err(ClientError::Status(s)) => s,
        Err(e) => panic!("{e}"),
    }
}

fn monitor(g: &Group, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("client.conf");
    let trackers: String = g
        .tracker_addrs()
        .iter()
        .map(|a| format!("tracker_server = {a}\n"))
        .collect();
    std::fs::write(
        &conf,
        format!(
            "connect_timeout = 5\nnetwork_timeout = 10\nbase_path = {}\n{trackers}log_level = error\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let bin = dir.path().join("fdfs_monitor");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fdfs"), &bin).unwrap();
    let out = Command::new(&bin)
        .arg(&conf)
        .args(["-h", &g.tracker(0).to_string()])
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn one_trunk_server_is_appointed_shown_and_saved() {
    let g = trunk_cluster(1, 3, 5);
    assert!(g.wait_all_active(DEADLINE));
    let trunk = wait_trunk(&g, 0, None);
    assert!(g
        .members("group1")
        .iter()
        .any(|&i| g.storage_ip(i) == trunk));

    // fdfs_monitor list: the group's trunk lines and one if_trunk_server = 1.
    // The trunk server's tenure starts by reserving trunk file id 1 (73).
    let mut out = String::new();
    let reserved = fdfs_testkit::wait_until(DEADLINE, || {
        out = monitor(&g, &["list"]);
        out.contains("current trunk file id = 1\n")
    });
    assert!(reserved, "{out}");
    assert!(out.contains("trunk free space = "), "{out}");
    assert!(
        out.contains(&format!("current trunk server = {trunk} ({trunk})\n")),
        "{out}"
    );
    assert_eq!(out.matches("if_trunk_server = 1").count(), 1, "{out}");
    assert_eq!(out.matches("if_trunk_server = 0").count(), 2, "{out}");

    // Cluster stat 97 marks it; 98 tells trunk files are on.
    let (storages, volumes) = g.block_on(async {
        let mut c = fdfs_testkit::connect(g.tracker(0)).await;
        let mut tc = TrackerClient::new(&mut c);
        let s = tc
            .storage_cluster_stat(&StorageStatFilter {
                filter_by: 1,
                op_type: b'=',
                status: 0,
                is_trunk_server: 1,
            })
            .await
            .unwrap();
        let v = tc
            .storage_volumn_stat(&VolumnStatFilter::default())
            .await
            .unwrap();
        (s, v)
    });
    assert!(storages.use_trunk_file);
    let ids: Vec<&str> = storages.storages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [trunk.as_str()]);
    assert!(volumes.use_trunk_file);

    // Saved with the data files, and logged.
    let base = g.tracker_base(0);
    assert!(wait_until(DEADLINE, || {
        std::fs::read_to_string(base.join("data/storage_groups_new.dat")).is_ok_and(|t| {
            t.contains(&format!(
                "\ttrunk_server={trunk}\n\tlast_trunk_server={trunk}\n"
            ))
        })
    }));
    let log = std::fs::read_to_string(base.join("logs/trunk_server_change.log")).unwrap();
    assert!(
        log.ends_with(&format!(" group1  -  =>  {trunk}\n")),
        "{log}"
    );

    // A storage's first heartbeat answer names the trunk server (flag 2).
    let member = g
        .members("group1")
        .into_iter()
        .find(|&i| g.storage_ip(i) != trunk)
        .unwrap();
    let notice = g.block_on(async {
        let mut c = join_as(&g, 0, member).await;
        let answer = c.call(TrackerCmd::StorageBeat.into(), &[]).await.unwrap();
        let again = c.call(TrackerCmd::StorageBeat.into(), &[]).await.unwrap();
        c.quit().await;
        (
            ChangeNotice::decode(&answer).unwrap(),
            ChangeNotice::decode(&again).unwrap(),
        )
    });
    let brief = notice
        .0
        .trunk_server
        .expect("trunk brief on the first answer");
    assert_eq!(
        (brief.id.as_str(), brief.ip_addr.as_str()),
        (trunk.as_str(), trunk.as_str())
    );
    assert_eq!(brief.port, i32::from(g.port));
    assert!(notice.1.trunk_server.is_none(), "once per change");
}

#[test]
fn trunk_reports_come_from_the_trunk_server_only() {
    let g = trunk_cluster(1, 2, 5);
    assert!(g.wait_all_active(DEADLINE));
    let trunk = wait_trunk(&g, 0, None);
    let ti = g
        .members("group1")
        .into_iter()
        .find(|&i| g.storage_ip(i) == trunk)
        .unwrap();
    let other = g.members("group1").into_iter().find(|&i| i != ti).unwrap();
    let fid = 7i32.to_be_bytes();
    let free = 1234i64.to_be_bytes();
    g.block_on(async {
        // Before JOIN: EACCES.
        let mut raw = fdfs_testkit::connect(g.tracker(0)).await;
        for cmd in [
            TrackerCmd::StorageReportTrunkFid,
            TrackerCmd::StorageReportTrunkFree,
        ] {
            let r = raw.call(cmd.into(), &fid).await;
            assert_eq!(call_status(r), Status::EACCES, "{cmd:?}");
        }
        raw.quit().await;
        // Another member: EINVAL, and nothing moves.
        let mut c = join_as(&g, 0, other).await;
        let r = c.call(TrackerCmd::StorageReportTrunkFid.into(), &fid).await;
        assert_eq!(call_status(r), Status::EINVAL);
        let r = c
            .call(TrackerCmd::StorageReportTrunkFree.into(), &free)
            .await;
        assert_eq!(call_status(r), Status::EINVAL);
        c.quit().await;
        // The trunk server: accepted.
        let mut c = join_as(&g, 0, ti).await;
        let r = c.call(TrackerCmd::StorageReportTrunkFid.into(), &fid).await;
        assert_eq!(call_status(r), Status(0));
        // The file id only rises, a bad length is EINVAL.
        let r = c
            .call(
                TrackerCmd::StorageReportTrunkFid.into(),
                &3i32.to_be_bytes(),
            )
            .await;
        assert_eq!(call_status(r), Status(0));
        let r = c
            .call(TrackerCmd::StorageReportTrunkFid.into(), &free)
            .await;
        assert_eq!(call_status(r), Status::EINVAL);
        let r = c
            .call(TrackerCmd::StorageReportTrunkFree.into(), &free)
            .await;
        assert_eq!(call_status(r), Status(0));
        // FETCH_TRUNK_FID (72) gives the raised id back.
        let id = c
            .call(TrackerCmd::StorageFetchTrunkFid.into(), &[])
            .await
            .unwrap();
        assert_eq!(id, 7i32.to_be_bytes());
        let mut tc = fdfs_testkit::connect(g.tracker(0)).await;
        let gs = TrackerClient::new(&mut tc)
            .list_one_group("group1")
            .await
            .unwrap();
        assert_eq!((gs.current_trunk_file_id, gs.trunk_free_mb), (7, 1234));
        // 98: the reported space; trunk room is free disk plus trunk space.
        let v = TrackerClient::new(&mut tc)
            .storage_volumn_stat(&VolumnStatFilter {
                filter_by: 2,
                is_trunk_available: 1,
                ..VolumnStatFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(v.groups.len(), 1);
        assert_eq!(v.groups[0].trunk_free_mb, 1234);
        assert!(v.groups[0].is_trunk_available);
        tc.quit().await;
        c.quit().await;
    });
    // The raised id was on disk before the answer.
    let groups =
        std::fs::read_to_string(g.tracker_base(0).join("data/storage_groups_new.dat")).unwrap();
    assert!(groups.contains("\tcurrent_trunk_file_id=7\n"), "{groups}");
    let out = monitor(&g, &["list"]);
    assert!(out.contains("trunk free space =  1.2 GB\n"), "{out}");
    assert!(out.contains("current trunk file id = 7\n"), "{out}");
}

#[test]
fn set_trunk_server_follows_the_original_rules() {
    // A long check interval: a stopped trunk server keeps its role for a
    // while, which is when a new one may be forced.
    let mut g = trunk_cluster(1, 2, 30);
    assert!(g.wait_all_active(DEADLINE));
    let trunk = wait_trunk(&g, 0, None);
    let ti = g
        .members("group1")
        .into_iter()
        .find(|&i| g.storage_ip(i) == trunk)
        .unwrap();
    let other = g.storage_ip(1 - ti).to_string();

    // Empty id with an ACTIVE trunk server: that one.
    assert_eq!(set_trunk(&g, 0, "").unwrap(), trunk);
    assert_eq!(status_of(set_trunk(&g, 0, &trunk)), Some(Status::EALREADY));
    assert_eq!(status_of(set_trunk(&g, 0, &other)), Some(Status::EEXIST));
    let r = g.block_on(g.client_of(0).set_trunk_server("nogroup", ""));
    assert_eq!(status_of(r), Some(Status::ENOENT));
    let out = monitor(&g, &["set_trunk_server", "group1", &trunk]);
    assert!(
        out.contains(&format!(
            "set trunk server group1::{trunk} fail, error no: 114"
        )),
        "{out}"
    );

    // The trunk server stops: it is OFFLINE but still appointed.
    g.stop_storage(ti);
    assert!(wait_until(DEADLINE, || g.status_on(0, ti)
        != Some(fdfs_proto::stat::storage_status::ACTIVE)));
    assert_eq!(trunk_on(&g, 0).as_deref(), Some(trunk.as_str()));
    assert_eq!(
        status_of(set_trunk(&g, 0, "10.9.9.9")),
        Some(Status::ENOENT)
    );
    assert_eq!(status_of(set_trunk(&g, 0, &trunk)), Some(Status::ENONET));
    let out = monitor(&g, &["set_trunk_server", "group1", &other]);
    assert!(
        out.contains(&format!(
            "set trunk server group1::{other} success, new trunk server: {other}"
        )),
        "{out}"
    );
    assert_eq!(trunk_on(&g, 0).as_deref(), Some(other.as_str()));
    let log =
        std::fs::read_to_string(g.tracker_base(0).join("logs/trunk_server_change.log")).unwrap();
    assert!(
        log.ends_with(&format!(" group1  {trunk}  =>  {other}\n")),
        "{log}"
    );
}

#[test]
fn a_dead_trunk_server_is_replaced() {
    let mut g = trunk_cluster(1, 3, 2);
    assert!(g.wait_all_active(DEADLINE));
    let trunk = wait_trunk(&g, 0, None);
    let ti = g
        .members("group1")
        .into_iter()
        .find(|&i| g.storage_ip(i) == trunk)
        .unwrap();
    let stopped = Instant::now();
    g.stop_storage(ti);
    let next = wait_trunk(&g, 0, Some(&trunk));
    let took = stopped.elapsed();
    eprintln!("trunk server failover took {took:?}");
    assert_ne!(next, trunk);
    assert!(g.members("group1").iter().any(|&i| g.storage_ip(i) == next));
    // The tracker saves its state after it announces the change.
    let path = g.tracker_base(0).join("data/storage_groups_new.dat");
    let want = format!("\ttrunk_server={next}\n\tlast_trunk_server={next}\n");
    let mut groups = String::new();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            groups = std::fs::read_to_string(&path).unwrap_or_default();
            groups.contains(&want)
        }),
        "{groups}"
    );
}

#[test]
fn leader_and_follower_agree_on_the_trunk_server() {
    let mut g = trunk_cluster(2, 2, 2);
    assert!(g.wait_all_active(DEADLINE));
    let lt = agreed_leader(&g);
    let ft = 1 - lt;
    let trunk = wait_trunk(&g, lt, None);
    assert!(wait_until(DEADLINE, || trunk_on(&g, ft).as_deref()
        == Some(trunk.as_str())));
    // Only the leader sets trunk servers.
    assert_eq!(status_of(set_trunk(&g, ft, "")), Some(Status::EOPNOTSUPP));
    assert_eq!(set_trunk(&g, lt, "").unwrap(), trunk);

    let ti = g
        .members("group1")
        .into_iter()
        .find(|&i| g.storage_ip(i) == trunk)
        .unwrap();
    g.stop_storage(ti);
    let next = wait_trunk(&g, lt, Some(&trunk));
    assert!(wait_until(DEADLINE, || trunk_on(&g, ft).as_deref()
        == Some(next.as_str())));
    assert!(wait_until(DEADLINE, || {
        std::fs::read_to_string(g.tracker_base(ft).join("data/storage_groups_new.dat"))
            .is_ok_and(|t| t.contains(&format!("\ttrunk_server={next}\n")))
    }));
}

#[test]
fn the_trunk_server_survives_a_tracker_restart() {
    let mut g = trunk_cluster(1, 3, 5);
    assert!(g.wait_all_active(DEADLINE));
    let trunk = wait_trunk(&g, 0, None);
    let log_path = g.tracker_base(0).join("logs/trunk_server_change.log");
    let log_before = std::fs::read_to_string(&log_path).unwrap();
    g.stop_tracker(0);
    g.start_tracker(0);
    assert!(g.wait_all_active(DEADLINE));
    // Loaded from storage_groups_new.dat and kept once it beats again.
    assert_eq!(trunk_on(&g, 0).as_deref(), Some(trunk.as_str()));
    // Not a synchronisation: past the 5 s a loaded trunk server gets to
    // come back, it must still be the same one.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(trunk_on(&g, 0).as_deref(), Some(trunk.as_str()));
    assert_eq!(std::fs::read_to_string(&log_path).unwrap(), log_before);
}

#[test]
fn storage_ids_name_the_trunk_server() {
    let g = Group::start_with(GroupOptions {
        groups: vec![("group1", 2)],
        storage_ids: vec![100001, 100002],
        tweak_tracker: Some(Arc::new(|c| c.use_trunk_file = true)),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE));
    let trunk = wait_trunk(&g, 0, None);
    assert!(trunk == "100001" || trunk == "100002", "{trunk}");
    let ip = g
        .list_storages(0, "group1")
        .into_iter()
        .find(|s| s.id == trunk)
        .unwrap()
        .ip_addr;
    let out = monitor(&g, &["list"]);
    assert!(
        out.contains(&format!("current trunk server = {trunk} ({ip})\n")),
        "{out}"
    );
    let log =
        std::fs::read_to_string(g.tracker_base(0).join("logs/trunk_server_change.log")).unwrap();
    assert!(
        log.ends_with(&format!(" group1  -  =>  {trunk}/{ip}\n")),
        "{log}"
    );
}

/// The leader of `g`'s trackers (index), as tracker `asked` names it.
fn leader_index(g: &Group, asked: usize) -> Option<usize> {
    g.block_on(async {
        let mut c = fdfs_client::Conn::connect(
            &g.tracker(asked).to_string(),
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .await
        .ok()?;
        let l = TrackerClient::new(&mut c).get_leader().await.ok();
        c.quit().await;
        let l = l?;
        (0..g.tracker_count()).find(|&t| g.tracker(t).to_string() == l)
    })
}

/// The leader both trackers of `g` name. Two trackers started together
/// may both elect themselves at first, until the leader settles the
/// rivalry: wait until they agree.
fn agreed_leader(g: &Group) -> usize {
    let mut agreed = None;
    assert!(
        wait_until(DEADLINE, || {
            agreed = match (leader_index(g, 0), leader_index(g, 1)) {
                (Some(a), Some(b)) if a == b => Some(a),
                _ => None,
            };
            agreed.is_some()
        }),
        "the trackers never agreed on a leader"
    );
    agreed.unwrap()
}

#[test]
fn a_new_leader_keeps_the_trunk_server_it_learnt() {
    let mut g = trunk_cluster(2, 2, 5);
    assert!(g.wait_all_active(DEADLINE));
    let lt = agreed_leader(&g);
    let ft = 1 - lt;
    let trunk = wait_trunk(&g, lt, None);
    assert!(wait_until(DEADLINE, || trunk_on(&g, ft).as_deref()
        == Some(trunk.as_str())));
    g.stop_tracker(lt);
    assert!(
        wait_until(Duration::from_secs(60), || leader_index(&g, ft) == Some(ft)),
        "the follower takes over"
    );
    // Same trunk server, and the new leader answers for it.
    assert_eq!(set_trunk(&g, ft, "").unwrap(), trunk);
    assert_eq!(trunk_on(&g, ft).as_deref(), Some(trunk.as_str()));
}
