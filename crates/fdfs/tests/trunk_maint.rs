//! The trunk server's scheduled work (issue 15 points 1 and 6), against a
//! real tracker and storages: trunk files made ahead of need
//! (`trunk_create_file_advance`), each id reserved on the leader tracker
//! first, until free trunk space reaches the threshold; and the trunk
//! binlog compressed (`trunk_compress_binlog_interval`) while members keep
//! receiving it (they start over with 33 and the new binlog) and files
//! keep reading back, before and after a restart of the trunk server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fdfs_client::storage::{StorageClient, UploadKind};
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::{FileId, StorageCmd, TrunkLocation};
use fdfs_testkit::group::{Group, GroupOptions};

/// The smallest trunk file the tracker accepts.
const TRUNK_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Generous: a loaded CI machine beats slowly.
const DEADLINE: Duration = Duration::from_secs(60);

fn group_of(
    members: usize,
    tweak: impl Fn(&mut fdfs_config::TrackerConf) + Send + Sync + 'static,
) -> Group {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("FDFS_TEST_LOG").unwrap_or_else(|_| "off".into()),
        ))
        .with_test_writer()
        .try_init();
    Group::start_with(GroupOptions {
        groups: vec![("group1", members)],
        tweak_tracker: Some(Arc::new(move |c| {
            c.use_trunk_file = true;
            c.slot_min_size = 256;
            c.slot_max_size = 64 * 1024;
            c.trunk_file_size = TRUNK_FILE_BYTES;
            c.trunk_free_space_merge = false;
            c.delete_unused_trunk_files = false;
            tweak(c);
        })),
        ..GroupOptions::default()
    })
}

/// The member the tracker lists as trunk server, once there is one.
fn trunk_server(g: &Group) -> Option<usize> {
    let list = g.list_storages(0, "group1");
    let ip = list.iter().find(|s| s.if_trunk_server)?.ip_addr.clone();
    (0..g.len()).find(|&i| g.storage_ip(i) == ip)
}

fn wait_trunk_server(g: &Group) -> usize {
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let mut server = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            server = trunk_server(g);
            server.is_some()
        }),
        "the tracker never named a trunk server"
    );
    server.unwrap()
}

/// Trunk files on a store path: `data/HH/HH/NNNNNN` (six digits), by id.
fn trunk_files(store: &Path) -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    let Ok(highs) = std::fs::read_dir(store.join("data")) else {
        return out;
    };
    for high in highs.flatten().filter(|e| e.path().is_dir()) {
        for low in std::fs::read_dir(high.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(low.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().to_string();
                if name.len() == 6 && name.bytes().all(|b| b.is_ascii_digit()) {
                    out.push((name.parse().unwrap(), f.path()));
                }
            }
        }
    }
    out.sort();
    out
}

fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| ((seed * 131 + k * 7) % 253) as u8)
        .collect()
}

async fn upload_to(addr: std::net::SocketAddr, data: &[u8]) -> FileId {
    let mut conn = fdfs_testkit::connect(addr).await;
    let mut src = data;
    StorageClient::new(&mut conn)
        .upload(UploadKind::Normal, -1, "bin", &mut src, data.len() as u64)
        .await
        .expect("upload")
}

async fn try_download(addr: std::net::SocketAddr, id: &FileId) -> Option<Vec<u8>> {
    let mut conn = fdfs_testkit::try_connect(addr).await.ok()?;
    let mut b = BytesMut::new();
    DownloadReq {
        offset: 0,
        length: 0,
        group: id.group.clone(),
        remote: id.remote.clone(),
    }
    .encode(&mut b);
    conn.call(StorageCmd::DownloadFile.into(), &b).await.ok()
}

async fn delete_at(addr: std::net::SocketAddr, id: &FileId) {
    let mut conn = fdfs_testkit::connect(addr).await;
    StorageClient::new(&mut conn)
        .delete(&id.group, &id.remote)
        .await
        .expect("delete")
}

fn trunk_id_of(id: &FileId) -> u32 {
    let name = RemoteName::parse(&id.remote, 1).expect("name");
    TrunkLocation::from_remote(&name)
        .expect("a trunk name")
        .trunk_file_id
}

/// Uploads small files until one gets a trunk name (the trunk server may
/// still be switching into the role).
fn first_trunk_upload(g: &Group, addr: std::net::SocketAddr) -> FileId {
    let mut got = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let id = g.block_on(upload_to(addr, b"probe"));
            let trunked = id.remote.len() == 60;
            got = Some(id);
            trunked
        }),
        "small uploads never went into a trunk"
    );
    got.unwrap()
}

#[test]
fn trunk_files_are_made_ahead_of_need_up_to_the_threshold() {
    // Three whole trunk files fit below the threshold; every second is a
    // point of the schedule.
    let g = group_of(1, |c| {
        c.trunk_create_file_advance = true;
        c.trunk_create_file_time_base = (0, 0);
        c.trunk_create_file_interval_secs = 1;
        c.trunk_create_file_space_threshold_bytes = 3 * TRUNK_FILE_BYTES + TRUNK_FILE_BYTES / 2;
    });
    let server = wait_trunk_server(&g);
    let store = g.store_path(server);
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || trunk_files(&store).len() >= 3),
        "trunk files were not made ahead of need: {:?}",
        trunk_files(&store)
    );
    let files = trunk_files(&store);
    assert_eq!(files.len(), 3, "{files:?}");
    for (_, path) in &files {
        assert_eq!(std::fs::metadata(path).unwrap().len(), TRUNK_FILE_BYTES);
    }
    // Every id was reserved on the tracker before its file existed: the
    // group's trunk file id is at least the highest, and the tenure took
    // the one below the first.
    let ids: Vec<u32> = files.iter().map(|(id, _)| *id).collect();
    let client = g.client();
    let mut seen = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let groups = g.block_on(client.list_groups()).unwrap_or_default();
            seen = groups.into_iter().find(|gs| gs.group_name == "group1");
            seen.as_ref().is_some_and(|gs| {
                gs.current_trunk_file_id >= i64::from(ids[2]) && gs.trunk_free_mb >= 12
            })
        }),
        "tracker group stat {seen:?}, trunk files {ids:?}"
    );
    assert_eq!(ids, vec![ids[0], ids[0] + 1, ids[0] + 2], "ids in order");
    // The threshold is reached: later rounds make nothing more, and
    // uploads go into the files made ahead.
    let id = first_trunk_upload(&g, g.storage_addr(server));
    assert!(
        ids.contains(&trunk_id_of(&id)),
        "{} not in {ids:?}",
        id.remote
    );
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        assert_eq!(trunk_files(&store).len(), 3);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn compression_keeps_members_in_step_and_files_readable() {
    let mut g = group_of(2, |c| {
        c.trunk_compress_binlog_time_base = (0, 0);
        c.trunk_compress_binlog_interval_secs = 1;
    });
    let server = wait_trunk_server(&g);
    let member = 1 - server;
    let addrs = [g.storage_addr(0), g.storage_addr(1)];
    first_trunk_upload(&g, addrs[server]);
    // Uploads through both members and deletes, while the binlog is
    // compressed every second.
    let mut kept = Vec::new();
    for i in 0..60 {
        let data = content(i, 300 + i * 97);
        let id = g.block_on(upload_to(addrs[i % 2], &data));
        assert_eq!(id.remote.len(), 60, "{}", id.remote);
        if i % 3 == 0 {
            g.block_on(delete_at(addrs[i % 2], &id));
        } else {
            kept.push((id, data));
        }
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    // Once quiet, the trunk server's binlog is the free pool (A lines
    // only) and the member holds the same bytes: it started over (33)
    // after each compression.
    let binlog = |i: usize| {
        std::fs::read_to_string(g.store_path(i).join("data/trunk/binlog")).unwrap_or_default()
    };
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let b = binlog(server);
            !b.is_empty()
                && b.lines().all(|l| l.split(' ').nth(1) == Some("A"))
                && b == binlog(member)
        }),
        "binlogs never converged on a compressed one:\nserver:\n{}\nmember:\n{}",
        binlog(server),
        binlog(member)
    );
    let flag = std::fs::read_to_string(g.store_path(server).join("data/.data_init_flag"))
        .unwrap_or_default();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            std::fs::read_to_string(g.store_path(server).join("data/.data_init_flag"))
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    l.starts_with("trunk_last_compress_time=") && l != "trunk_last_compress_time=0"
                })
        }),
        "no compression time in the init flag: {flag}"
    );
    for (id, data) in &kept {
        for addr in addrs {
            assert!(
                fdfs_testkit::wait_until(DEADLINE, || g
                    .block_on(try_download(addr, id))
                    .is_some_and(|got| got == *data)),
                "{} does not read back from {addr}",
                id.remote
            );
        }
    }

    // A restart of the trunk server replays the compressed binlog: new
    // uploads never land on a kept file.
    g.stop_storage(server);
    g.start_storage(server);
    let server = wait_trunk_server(&g);
    first_trunk_upload(&g, addrs[server]);
    for i in 0..20 {
        let data = content(100 + i, 200 + i * 131);
        let id = g.block_on(upload_to(addrs[i % 2], &data));
        kept.push((id, data));
    }
    for (id, data) in &kept {
        for addr in addrs {
            assert!(
                fdfs_testkit::wait_until(DEADLINE, || g
                    .block_on(try_download(addr, id))
                    .is_some_and(|got| got == *data)),
                "{} does not read back from {addr} after the restart",
                id.remote
            );
        }
    }
    let mut slots: Vec<(u32, u32)> = kept
        .iter()
        .map(|(id, _)| {
            let name = RemoteName::parse(&id.remote, 1).unwrap();
            let loc = TrunkLocation::from_remote(&name).unwrap();
            (loc.trunk_file_id, loc.offset)
        })
        .collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), kept.len(), "a slot was handed out twice");
}
