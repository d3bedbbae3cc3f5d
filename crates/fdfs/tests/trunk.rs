//! Trunk storage end to end (issue 15): a tracker with `use_trunk_file`
//! and two of our storages in one group. Small files uploaded through our
//! client and through py3fdfs land in slots of trunk files (60-character
//! names, `data/HH/HH/NNNNNN` on disk, no inode of their own) and read back
//! equal; big files stay plain files; a delete frees the slot for the next
//! upload of that size. Uploads through the member that is not the trunk
//! server allocate over the network (27/28).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fdfs_client::storage::{StorageClient, UploadKind};
use fdfs_client::Conn;
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::{FileId, StorageCmd, TrunkLocation};
use fdfs_testkit::group::{Group, GroupOptions};

/// Slots of at most this many bytes (header included) hold small files.
const SLOT_MAX_BYTES: u64 = 64 * 1024;
/// The smallest trunk file the tracker accepts.
const TRUNK_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Generous: a loaded CI machine beats slowly.
const DEADLINE: Duration = Duration::from_secs(60);

fn trunk_group() -> Group {
    trunk_group_of(2)
}

fn trunk_group_of(members: usize) -> Group {
    trunk_group_with(members, |_| {})
}

/// [`trunk_group_of`] with further tracker settings.
fn trunk_group_with(
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
            c.slot_max_size = SLOT_MAX_BYTES;
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

fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| ((seed * 131 + k * 7) % 253) as u8)
        .collect()
}

async fn upload_to(addr: std::net::SocketAddr, data: &[u8], ext: &str) -> FileId {
    let mut conn = fdfs_testkit::connect(addr).await;
    let mut src = data;
    StorageClient::new(&mut conn)
        .upload(UploadKind::Normal, -1, ext, &mut src, data.len() as u64)
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

async fn download_from(addr: std::net::SocketAddr, id: &FileId) -> Vec<u8> {
    let mut conn: Conn = fdfs_testkit::connect(addr).await;
    let mut b = BytesMut::new();
    DownloadReq {
        offset: 0,
        length: 0,
        group: id.group.clone(),
        remote: id.remote.clone(),
    }
    .encode(&mut b);
    conn.call(StorageCmd::DownloadFile.into(), &b)
        .await
        .unwrap_or_else(|e| panic!("download {} from {addr}: {e}", id.remote))
}

/// Waits until the tracker's stat of group1 (91) satisfies `ok`.
fn wait_group_stat(g: &Group, what: &str, ok: impl Fn(&fdfs_proto::stat::GroupStat) -> bool) {
    let client = g.client();
    let mut seen = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let groups = g.block_on(client.list_groups()).unwrap_or_default();
            seen = groups.into_iter().find(|gs| gs.group_name == "group1");
            seen.as_ref().is_some_and(&ok)
        }),
        "tracker group stat {seen:?}, {what}"
    );
}

/// The trunk file behind a 60-character name, checked on disk.
fn trunk_location(store: &Path, remote: &str) -> (TrunkLocation, PathBuf) {
    assert_eq!(remote.len(), 60, "{remote} is not a trunk name");
    let name = RemoteName::parse(remote, 1).expect("name");
    let loc = TrunkLocation::from_remote(&name).expect("trunk flag in the name");
    let path = store.join(loc.trunk_file_relative_path());
    let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(meta.len(), TRUNK_FILE_BYTES, "{}", path.display());
    // The file has no inode of its own: nothing under its name.
    let own = store.join("data").join(&remote[4..]);
    assert!(!own.exists(), "{} exists", own.display());
    (loc, path)
}

#[test]
fn small_files_live_in_trunk_slots_big_ones_stay_plain() {
    let g = trunk_group();
    let server = wait_trunk_server(&g);
    let member = 1 - server;
    let (server_addr, member_addr) = (g.storage_addr(server), g.storage_addr(member));

    // Through the trunk server itself, then through the member (27/28 over
    // the network).
    let first = first_trunk_upload(&g, server_addr);
    let mut uploaded = Vec::new();
    for (i, addr, store) in [
        (0, server_addr, g.store_path(server)),
        (1, server_addr, g.store_path(server)),
        (2, member_addr, g.store_path(member)),
        (3, member_addr, g.store_path(member)),
        (4, member_addr, g.store_path(member)),
    ] {
        let data = content(i, 100 + i * 1500);
        let id = g.block_on(upload_to(addr, &data, "bin"));
        let (loc, _) = trunk_location(&store, &id.remote);
        assert_eq!(g.block_on(download_from(addr, &id)), data, "{}", id.remote);
        uploaded.push((id, loc, addr, data));
    }
    // One allocator: no two files share a slot, whoever uploaded them.
    let mut slots: Vec<(u32, u32)> = uploaded
        .iter()
        .map(|(_, l, _, _)| (l.trunk_file_id, l.offset))
        .collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), uploaded.len(), "a slot was handed out twice");

    // The trunk server's binlog reaches the member (30) and both agree.
    let binlog = |i: usize| std::fs::read(g.store_path(i).join("data/trunk/binlog")).ok();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || binlog(server).is_some()
            && binlog(server) == binlog(member)),
        "trunk binlogs never converged:\nserver {:?}\nmember {:?}",
        binlog(server).map(String::from_utf8),
        binlog(member).map(String::from_utf8)
    );
    // Replication puts each file into the same slot on the other member.
    for (id, _, addr, data) in &uploaded {
        let other = if *addr == server_addr {
            member_addr
        } else {
            server_addr
        };
        assert!(
            fdfs_testkit::wait_until(DEADLINE, || g
                .block_on(try_download(other, id))
                .is_some_and(|got| got == *data)),
            "{} never reached {other}",
            id.remote
        );
    }

    // The trackers hear the trunk file id (73) and the free trunk space (74).
    let max_id = uploaded.iter().map(|u| u.1.trunk_file_id).max().unwrap();
    wait_group_stat(&g, &format!("trunk files up to {max_id}"), |gs| {
        gs.current_trunk_file_id >= i64::from(max_id) && gs.trunk_free_mb > 0
    });

    // A big file stays a plain file with a 44-character name.
    let big = content(9, SLOT_MAX_BYTES as usize);
    let big_id = g.block_on(upload_to(member_addr, &big, "dat"));
    assert_eq!(big_id.remote.len(), 44, "{}", big_id.remote);
    assert!(g
        .store_path(member)
        .join("data")
        .join(&big_id.remote[4..])
        .is_file());
    assert_eq!(g.block_on(download_from(member_addr, &big_id)), big);

    // A delete frees the slot: the next file of that size takes it again.
    let (id, loc, addr, data) = uploaded.remove(3);
    g.block_on(delete_at(addr, &id));
    assert!(
        wait_slot_freed(&g.store_path(member), &loc),
        "the deleted file's slot was never freed"
    );
    let again = g.block_on(upload_to(addr, &content(77, data.len()), "bin"));
    let (loc2, _) = trunk_location(&g.store_path(member), &again.remote);
    assert_eq!(
        (loc2.trunk_file_id, loc2.offset, loc2.size),
        (loc.trunk_file_id, loc.offset, loc.size),
        "the freed slot was not reused"
    );
    // The deleted name reads as gone even though its slot is in use again.
    let gone = g.block_on(async {
        let mut conn = fdfs_testkit::connect(addr).await;
        let mut b = BytesMut::new();
        DownloadReq {
            offset: 0,
            length: 0,
            group: id.group.clone(),
            remote: id.remote.clone(),
        }
        .encode(&mut b);
        conn.call(StorageCmd::DownloadFile.into(), &b).await
    });
    assert!(gone.is_err(), "a deleted trunk file still reads");
    drop(first);
}

#[test]
fn py3fdfs_uploads_small_files_into_trunks() {
    let g = trunk_group();
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || trunk_server(&g).is_some()),
        "the tracker never named a trunk server"
    );
    // Wait until the trunk server serves: a probe through the tracker's
    // choice of storage gets a trunk name.
    let client = g.client();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let opts = fdfs_client::UploadOptions::default();
            g.block_on(client.upload_buffer(b"probe", &opts))
                .is_ok_and(|id| id.remote.len() == 60)
        }),
        "small uploads never went into a trunk"
    );
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "connect_timeout = 30\nnetwork_timeout = 30\nbase_path = {}\ntracker_server = {}\nlog_level = error\n",
            work.path().display(),
            g.tracker_addr
        ),
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/py3fdfs_trunk.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&conf)
        .args(["8", "1000", &(SLOT_MAX_BYTES * 2).to_string()])
        .output()
        .expect("python3 must be installed to run the py3fdfs trunk test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "py3fdfs script failed (is py3fdfs installed?)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let small: Vec<String> = json_strings(line, "small");
    let big: Vec<String> = json_strings(line, "big");
    let bad: Vec<String> = json_strings(line, "roundtrip_bad");
    assert_eq!(small.len(), 8, "{line}");
    assert!(bad.is_empty(), "py3fdfs read back different bytes: {bad:?}");
    for id in &small {
        let remote = id.split_once('/').unwrap().1;
        assert_eq!(remote.len(), 60, "{id} is not a trunk name");
        // It is in a trunk file on whichever member took it.
        let found = (0..g.len()).any(|i| {
            let name = RemoteName::parse(remote, 1).unwrap();
            let loc = TrunkLocation::from_remote(&name).unwrap();
            g.store_path(i)
                .join(loc.trunk_file_relative_path())
                .is_file()
        });
        assert!(found, "no trunk file holds {id}");
    }
    assert_eq!(big.len(), 1, "{line}");
    assert_eq!(big[0].split_once('/').unwrap().1.len(), 44, "{}", big[0]);
}

/// The string values of `key` in a flat JSON object (a string or a list
/// of strings): the test needs no JSON crate for this.
fn json_strings(line: &str, key: &str) -> Vec<String> {
    let Some(at) = line.find(&format!("\"{key}\":")) else {
        return Vec::new();
    };
    let rest = line[at + key.len() + 3..].trim_start();
    let span = if rest.starts_with('[') {
        &rest[1..rest.find(']').unwrap_or(rest.len())]
    } else {
        rest.split([',', '}']).next().unwrap_or("")
    };
    span.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The trunk server stops; the leader names the other member, which takes
/// the role over with its free space quarantined (its binlog copy may lag)
/// and allocates from a new trunk file only. The old server comes back as
/// a member, gets the new server's binlog, and every file reads intact.
#[test]
fn a_new_trunk_server_allocates_only_from_new_trunk_files() {
    let mut g = trunk_group();
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let old = wait_trunk_server(&g);
    let new = 1 - old;
    let mut files = Vec::new();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let id = g.block_on(upload_to(g.storage_addr(old), b"probe", "txt"));
            id.remote.len() == 60
        }),
        "small uploads never went into a trunk"
    );
    for i in 0..4 {
        let data = content(i, 300 + i * 700);
        let id = g.block_on(upload_to(g.storage_addr(new), &data, "bin"));
        let (loc, _) = trunk_location(&g.store_path(new), &id.remote);
        files.push((id, loc, data));
    }
    let old_max_id = files.iter().map(|f| f.1.trunk_file_id).max().unwrap();

    g.stop_storage(old);
    // A stop saves the free-space snapshot the next start loads first.
    let snapshot = g.store_path(old).join("data/storage_trunk.dat");
    assert!(snapshot.is_file(), "{} missing", snapshot.display());
    assert!(
        fdfs_testkit::wait_until(Duration::from_secs(90), || trunk_server(&g) == Some(new)),
        "the leader never moved the trunk server"
    );
    let new_addr = g.storage_addr(new);
    let mut after = Vec::new();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let data = content(50 + after.len(), 500);
            let Some(id) = g.block_on(try_upload(new_addr, &data)) else {
                return false;
            };
            let trunked = id.remote.len() == 60;
            after.push((id, data));
            trunked
        }),
        "the new trunk server never allocated"
    );
    for i in 0..4 {
        let data = content(60 + i, 200 + i * 900);
        after.push((g.block_on(upload_to(new_addr, &data, "bin")), data));
    }
    for (id, _) in after.iter().filter(|(id, _)| id.remote.len() == 60) {
        let (loc, _) = trunk_location(&g.store_path(new), &id.remote);
        assert!(
            loc.trunk_file_id > old_max_id,
            "{} reuses trunk file {} of the old server",
            id.remote,
            loc.trunk_file_id
        );
    }

    g.start_storage(old);
    let binlog = |i: usize| std::fs::read(g.store_path(i).join("data/trunk/binlog")).ok();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || binlog(new).is_some()
            && binlog(new) == binlog(old)),
        "the old server never got the new server's binlog"
    );
    for (id, _, data) in &files {
        assert_eq!(
            &g.block_on(download_from(new_addr, id)),
            data,
            "{}",
            id.remote
        );
    }
    for (id, data) in &after {
        assert_eq!(
            &g.block_on(download_from(new_addr, id)),
            data,
            "{}",
            id.remote
        );
        assert!(
            fdfs_testkit::wait_until(DEADLINE, || g
                .block_on(try_download(g.storage_addr(old), id))
                .is_some_and(|got| got == *data)),
            "{} never reached the old server",
            id.remote
        );
    }
}

/// Waits until `store`'s copy of the trunk binlog shows the slot `loc`
/// free again: a deleted file's slot goes back to the trunk server once
/// every member has the delete.
fn wait_slot_freed(store: &Path, loc: &TrunkLocation) -> bool {
    use fdfs_proto::trunk_binlog::{parse_lines, slot_end, TrunkOp};
    let same_file = |r: &TrunkLocation| {
        (r.store_path_index, r.trunk_file_id) == (loc.store_path_index, loc.trunk_file_id)
    };
    fdfs_testkit::wait_until(DEADLINE, || {
        let text = std::fs::read(store.join("data/trunk/binlog")).unwrap_or_default();
        let (records, _, _) = parse_lines(&text);
        records
            .iter()
            .rev()
            .find(|r| {
                same_file(&r.slot)
                    && r.slot.offset <= loc.offset
                    && slot_end(&r.slot) > u64::from(loc.offset)
            })
            .is_some_and(|r| r.op == TrunkOp::AddSpace && slot_end(&r.slot) >= slot_end(loc))
    })
}

/// Waits until the one member of `g` is ACTIVE and takes small uploads
/// into trunk slots; its address.
fn wait_lone_trunk_server(g: &Group) -> std::net::SocketAddr {
    assert!(
        g.wait_all_active(DEADLINE),
        "the member never became ACTIVE"
    );
    let addr = g.storage_addr(0);
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            g.block_on(try_upload(addr, b"probe"))
                .is_some_and(|id| id.remote.len() == 60)
        }),
        "small uploads never went into a trunk"
    );
    addr
}

/// A lone trunk server that restarts resumes its own tenure: nobody served
/// since, so its binlog is the group's record and freed space is reused
/// (not quarantined as after a take-over).
#[test]
fn a_restarted_lone_trunk_server_reuses_its_freed_space() {
    let mut g = trunk_group_of(1);
    let addr = wait_lone_trunk_server(&g);
    let data = content(5, 1500);
    let id = g.block_on(upload_to(addr, &data, "bin"));
    let (freed, _) = trunk_location(&g.store_path(0), &id.remote);
    g.block_on(delete_at(addr, &id));
    assert!(
        wait_slot_freed(&g.store_path(0), &freed),
        "the deleted file's slot was never freed"
    );

    g.stop_storage(0);
    g.start_storage(0);
    let addr = g.storage_addr(0);
    let mut again = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            again = g
                .block_on(try_upload(addr, &content(6, data.len())))
                .filter(|id| id.remote.len() == 60);
            again.is_some()
        }),
        "no trunk upload after the restart"
    );
    let (loc, _) = trunk_location(&g.store_path(0), &again.unwrap().remote);
    assert_eq!(
        (loc.trunk_file_id, loc.offset, loc.size),
        (freed.trunk_file_id, freed.offset, freed.size),
        "the restarted trunk server did not reuse its freed slot"
    );
    let marker = g.store_path(0).join("data/trunk/last_server");
    assert!(marker.is_file(), "{} missing", marker.display());
}

/// Two members that delete the same file at once both send FREE_SPACE
/// (29) for its slot. Here the second free is sent by hand, as our
/// members send it (after every peer has the delete): once the slot is
/// free it is refused, and once the slot holds a new file it is refused
/// too, so the new file is never overwritten.
#[test]
fn a_second_free_of_one_deleted_file_never_frees_the_slot_again() {
    use fdfs_proto::trunk_msg::{SlotReq, FREE_STATUS_EVERY_PEER_DELETED};
    use fdfs_proto::Status;
    let g = trunk_group_of(1);
    let addr = wait_lone_trunk_server(&g);
    let len = 1500;
    let deleted = g.block_on(upload_to(addr, &content(7, len), "bin"));
    let (slot, _) = trunk_location(&g.store_path(0), &deleted.remote);
    g.block_on(delete_at(addr, &deleted));
    assert!(
        wait_slot_freed(&g.store_path(0), &slot),
        "the deleted file's slot was never freed"
    );
    let second_free = || {
        let mut body = BytesMut::new();
        SlotReq {
            group: "group1".into(),
            slot,
        }
        .encode(&mut body);
        g.block_on(async move {
            let mut conn = fdfs_testkit::connect(addr).await;
            conn.call_with_status(
                StorageCmd::TrunkFreeSpace.into(),
                FREE_STATUS_EVERY_PEER_DELETED,
                &body,
            )
            .await
        })
    };
    let refused = |r: Result<Vec<u8>, fdfs_client::ClientError>| match r {
        Err(fdfs_client::ClientError::Status(s)) => s,
        other => panic!("a second free was not refused: {other:?}"),
    };
    assert_eq!(refused(second_free()), Status::EEXIST);

    let newer_data = content(8, len);
    let newer = g.block_on(upload_to(addr, &newer_data, "bin"));
    let (reused, _) = trunk_location(&g.store_path(0), &newer.remote);
    assert_eq!(reused, slot, "the freed slot was not handed out again");
    assert_eq!(refused(second_free()), Status::EBUSY);
    // The slot stays taken: more uploads of that size go elsewhere.
    for seed in 9..12 {
        let other = g.block_on(upload_to(addr, &content(seed, len), "bin"));
        let (at, _) = trunk_location(&g.store_path(0), &other.remote);
        assert_ne!(at, slot, "a slot holding a file was handed out again");
    }
    assert_eq!(g.block_on(download_from(addr, &newer)), newer_data);
}

/// A two-member trunk group whose trunk server (returned) already puts
/// small uploads into trunk slots.
fn trunk_group_taking_small_uploads() -> (Group, usize) {
    let g = trunk_group();
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let server = wait_trunk_server(&g);
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || g
            .block_on(try_upload(g.storage_addr(server), b"probe"))
            .is_some_and(|f| f.remote.len() == 60)),
        "small uploads never went into a trunk"
    );
    (g, server)
}

/// A slot that holds a file this storage did not write there (a header
/// laid there by hand on the trunk server; on a member, a file that its
/// binlog names, received as a replica into a slot the trunk server counts
/// as free) is refused once (EEXIST, rule 4) and then kept out of the free
/// space, as the original's trunk server does with an EEXIST confirm: the
/// next upload gets other space instead of the same refusal. Through the
/// trunk server's own uploads and through a member's (which refuses only
/// after checking, 5 s later, that a name has the header: one that no name
/// has is cleared, see trunk_check.rs).
#[test]
fn a_slot_found_holding_another_file_is_refused_once_then_left_alone() {
    use std::os::unix::fs::FileExt;
    let (g, server) = trunk_group_taking_small_uploads();
    let size = 1000;
    for (round, i) in [server, 1 - server].into_iter().enumerate() {
        let addr = g.storage_addr(i);
        let store = g.store_path(i);
        // Allocation is sequential here: the next slot of this size starts
        // right after the last one.
        let last = g.block_on(upload_to(addr, &content(round * 10, size), "bin"));
        let (loc, path) = trunk_location(&store, &last.remote);
        let planted = fdfs_testkit::trunk::slot_after(&loc);
        let stranger = if i == server {
            let stray = fdfs_testkit::trunk::stray_header(planted.size, 500);
            let trunk_file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            trunk_file
                .write_all_at(&stray.encode(), u64::from(planted.offset))
                .unwrap();
            stray
        } else {
            let other = content(round * 10 + 9, 500);
            let (name, header) = fdfs_testkit::trunk::name_and_header(
                &planted,
                [127, 0, 0, 1],
                1_700_000_000,
                (other.len(), crc32fast::hash(&other)),
                "bin",
                fdfs_proto::trunk::SLOT_TYPE_REGULAR,
            );
            assert_eq!(
                g.block_on(fdfs_testkit::sync_create(
                    addr,
                    &name.to_string(),
                    &other,
                    1_700_000_000
                )),
                0,
                "the replica into the free slot was refused"
            );
            header
        };
        assert!(
            g.block_on(try_upload(addr, &content(round * 10 + 1, size)))
                .is_none(),
            "storage {i}: an upload into a slot holding another file was accepted"
        );
        for k in 2..5 {
            let data = content(round * 10 + k, size);
            let id = g
                .block_on(try_upload(addr, &data))
                .unwrap_or_else(|| panic!("storage {i}: the refused slot was handed out again"));
            let (at, _) = trunk_location(&store, &id.remote);
            assert!(
                at.trunk_file_id != planted.trunk_file_id
                    || at.offset >= planted.offset + planted.size
                    || at.offset + at.size <= planted.offset,
                "storage {i}: {at:?} overlaps the refused slot {planted:?}"
            );
            assert_eq!(g.block_on(download_from(addr, &id)), data);
        }
        let mut on_disk = [0u8; 24];
        let reread = std::fs::File::open(&path).unwrap();
        reread
            .read_exact_at(&mut on_disk, u64::from(planted.offset))
            .unwrap();
        assert_eq!(
            on_disk,
            stranger.encode(),
            "storage {i}: the other file was written over"
        );
    }
}

async fn try_upload(addr: std::net::SocketAddr, data: &[u8]) -> Option<FileId> {
    let mut conn = fdfs_testkit::try_connect(addr).await.ok()?;
    let mut src = data;
    StorageClient::new(&mut conn)
        .upload(UploadKind::Normal, -1, "bin", &mut src, data.len() as u64)
        .await
        .ok()
}

/// Many small uploads at once through both members: every one gets its
/// own slot (one allocator for the group) and reads back intact.
#[test]
fn concurrent_small_uploads_through_both_members_never_share_a_slot() {
    let (g, _) = trunk_group_taking_small_uploads();
    /// Uploads in flight at once.
    const CONCURRENT: usize = 64;
    let addrs = [g.storage_addr(0), g.storage_addr(1)];
    let results: Vec<(FileId, std::net::SocketAddr, Vec<u8>)> = g.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..CONCURRENT {
            let addr = addrs[i % 2];
            let data = content(1000 + i, 50 + (i * 397) % 6000);
            tasks.push(tokio::spawn(async move {
                (upload_to(addr, &data, "bin").await, addr, data)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("upload task"));
        }
        out
    });
    let mut slots = Vec::new();
    for (id, addr, data) in &results {
        assert_eq!(id.remote.len(), 60, "{}", id.remote);
        let name = RemoteName::parse(&id.remote, 1).unwrap();
        let loc = TrunkLocation::from_remote(&name).unwrap();
        slots.push((loc.trunk_file_id, loc.offset, loc.size));
        assert_eq!(&g.block_on(download_from(*addr, id)), data, "{}", id.remote);
    }
    slots.sort();
    for w in slots.windows(2) {
        let ((f1, o1, s1), (f2, o2, _)) = (w[0], w[1]);
        assert!(
            f1 != f2 || o1 + s1 <= o2,
            "slots overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
}

/// The trunk commands between members: answered by the trunk server only,
/// bodies checked at the edge, the binlog size as the tracker asks it.
#[test]
fn trunk_commands_are_answered_by_the_trunk_server_and_checked() {
    use fdfs_proto::trunk_msg::{decode_i64, AllocReq, SlotReq};
    use fdfs_proto::Status;
    let g = trunk_group();
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let server = wait_trunk_server(&g);
    let member = 1 - server;
    let (server_addr, member_addr) = (g.storage_addr(server), g.storage_addr(member));
    let call = |addr, cmd: StorageCmd, status: u8, body: Vec<u8>| {
        g.block_on(async move {
            let mut conn = fdfs_testkit::connect(addr).await;
            conn.call_with_status(cmd.into(), status, &body).await
        })
    };
    let status_of = |r: Result<Vec<u8>, fdfs_client::ClientError>| match r {
        Ok(_) => 0,
        Err(fdfs_client::ClientError::Status(s)) => s.0,
        Err(e) => panic!("{e}"),
    };
    let alloc = |group: &str, size: u32, index: u8| {
        let mut b = BytesMut::new();
        AllocReq {
            group: group.into(),
            file_size: size,
            store_path_index: index,
        }
        .encode(&mut b);
        b.to_vec()
    };
    // Wait until the server allocates (it may still be opening its space).
    let mut slot = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            let r = call(
                server_addr,
                StorageCmd::TrunkAllocSpace,
                0,
                alloc("group1", 1000, 0),
            );
            slot = r
                .ok()
                .map(|b| TrunkLocation::from_info_buff(&b).expect("15 bytes"));
            slot.is_some()
        }),
        "the trunk server never allocated"
    );
    let slot = slot.unwrap();
    assert!(slot.size >= 1024, "{slot:?}");
    // Not the trunk server: EINVAL, as the original.
    let r = call(
        member_addr,
        StorageCmd::TrunkAllocSpace,
        0,
        alloc("group1", 1000, 0),
    );
    assert_eq!(status_of(r), Status::EINVAL.0);
    // Wrong group, store path, size or length: EINVAL.
    for body in [
        alloc("group9", 1000, 0),
        alloc("group1", 1000, 3),
        alloc("group1", SLOT_MAX_BYTES as u32, 0),
        alloc("group1", 1000, 0)[..20].to_vec(),
    ] {
        let r = call(server_addr, StorageCmd::TrunkAllocSpace, 0, body);
        assert_eq!(status_of(r), Status::EINVAL.0);
    }
    // Confirming with a failure status gives the slot back: the next
    // allocation of that size gets it again. EEXIST (the member found
    // another file in it) keeps it out of the pool, as the original does;
    // a confirm of a slot in another store path is refused.
    let confirm = |slot: TrunkLocation| {
        let mut b = BytesMut::new();
        SlotReq {
            group: "group1".into(),
            slot,
        }
        .encode(&mut b);
        b.to_vec()
    };
    let alloc_1000 = || {
        let r = call(
            server_addr,
            StorageCmd::TrunkAllocSpace,
            0,
            alloc("group1", 1000, 0),
        );
        TrunkLocation::from_info_buff(&r.unwrap()).expect("15 bytes")
    };
    let r = call(server_addr, StorageCmd::TrunkAllocConfirm, 5, confirm(slot));
    assert_eq!(status_of(r), 0);
    let again = alloc_1000();
    assert_eq!(
        again, slot,
        "a slot confirmed as failed goes back to the pool"
    );
    let r = call(
        server_addr,
        StorageCmd::TrunkAllocConfirm,
        Status::EEXIST.0,
        confirm(again),
    );
    assert_eq!(status_of(r), 0);
    let next = alloc_1000();
    assert!(
        next.trunk_file_id != slot.trunk_file_id
            || next.offset >= slot.offset + slot.size
            || next.offset + next.size <= slot.offset,
        "a slot confirmed occupied was handed out again: {next:?} overlaps {slot:?}"
    );
    let r = call(server_addr, StorageCmd::TrunkAllocConfirm, 0, confirm(next));
    assert_eq!(status_of(r), 0);
    let mut elsewhere = slot;
    elsewhere.store_path_index = 7;
    let r = call(
        server_addr,
        StorageCmd::TrunkAllocConfirm,
        0,
        confirm(elsewhere),
    );
    assert_eq!(status_of(r), Status::EINVAL.0);
    // GET_BINLOG_SIZE: the size of data/trunk/binlog, on every member.
    let size =
        decode_i64(&call(server_addr, StorageCmd::TrunkGetBinlogSize, 0, Vec::new()).unwrap())
            .unwrap();
    let on_disk = std::fs::metadata(g.store_path(server).join("data/trunk/binlog"))
        .unwrap()
        .len();
    assert_eq!(size as u64, on_disk);
    let r = call(member_addr, StorageCmd::TrunkGetBinlogSize, 0, Vec::new());
    assert!(r.is_ok(), "{r:?}");
    // The trunk server keeps its marks; a member may drop its own.
    let r = call(
        server_addr,
        StorageCmd::TrunkDeleteBinlogMarks,
        0,
        Vec::new(),
    );
    assert_eq!(status_of(r), Status::EINVAL.0);
    let member_trunk_dir = g.store_path(member).join("data/trunk");
    let free_mark = member_trunk_dir.join("free.mark");
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || free_mark.is_file()),
        "the member's freer never saved its place"
    );
    let push_mark = member_trunk_dir.join("127.0.0.99_23000.mark");
    std::fs::write(&push_mark, "binlog_offset=0\n").unwrap();
    let r = call(
        member_addr,
        StorageCmd::TrunkDeleteBinlogMarks,
        0,
        Vec::new(),
    );
    assert_eq!(status_of(r), 0);
    assert!(!push_mark.exists(), "push marks go");
    assert!(free_mark.is_file(), "the freer's place stays");
}

/// Kill -9 of the trunk server while both members take small uploads:
/// the leader moves the role, uploads go on, the old server restarts, and
/// every acknowledged file reads back intact from the member that took
/// it, no two files share trunk space, and the trunk binlogs converge.
#[test]
fn trunk_server_killed_under_load_loses_no_acknowledged_file() {
    use fdfs_testkit::ProcessGuard;
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Upload loops running at once.
    const LOOPS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp) = (fdfs_testkit::free_port(), fdfs_testkit::free_port());
    let ips = ["127.0.0.240", "127.0.0.241"];
    let tracker_base = dir.path().join("tracker");
    std::fs::create_dir_all(&tracker_base).unwrap();
    std::fs::write(
        dir.path().join("tracker.conf"),
        format!(
            "bind_addr = 127.0.0.1\nport = {tp}\nbase_path = {}\nreserved_storage_space = 1%\n\
             check_active_interval = 5\nlog_level = info\nuse_trunk_file = true\n\
             slot_min_size = 256\nslot_max_size = {SLOT_MAX_BYTES}\ntrunk_file_size = {TRUNK_FILE_BYTES}\n",
            tracker_base.display()
        ),
    )
    .unwrap();
    let store = |i: usize| dir.path().join(format!("storage{i}"));
    for (i, ip) in ips.iter().enumerate() {
        std::fs::create_dir_all(store(i)).unwrap();
        std::fs::write(
            dir.path().join(format!("storage{i}.conf")),
            format!(
                "group_name = group1\nbind_addr = {ip}\nport = {sp}\nbase_path = {b}\n\
                 store_path0 = {b}\nsubdir_count_per_path = 4\ntracker_server = 127.0.0.1:{tp}\n\
                 heart_beat_interval = 1\nstat_report_interval = 1\nsync_wait_msec = 20\n\
                 reserved_storage_space = 1%\nhttp.server_port = 0\nlog_level = info\n",
                b = store(i).display()
            ),
        )
        .unwrap();
    }
    let spawn = |role: &str, conf: &str| {
        ProcessGuard(
            Command::new(env!("CARGO_BIN_EXE_fdfs"))
                .arg(role)
                .arg("--conf")
                .arg(dir.path().join(conf))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start fdfs"),
        )
    };
    let _tracker = spawn("tracker", "tracker.conf");
    let mut storages = [
        Some(spawn("storage", "storage0.conf")),
        Some(spawn("storage", "storage1.conf")),
    ];
    let addrs: [std::net::SocketAddr; 2] =
        [0, 1].map(|i| format!("{}:{sp}", ips[i]).parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tracker_addr: std::net::SocketAddr = format!("127.0.0.1:{tp}").parse().unwrap();
    let members = || {
        rt.block_on(async {
            let mut c = fdfs_testkit::try_connect(tracker_addr).await.ok()?;
            fdfs_client::TrackerClient::new(&mut c)
                .list_storages("group1", None)
                .await
                .ok()
        })
    };
    let trunk_server = || -> Option<usize> {
        let list = members()?;
        let ip = list.iter().find(|s| s.if_trunk_server)?.ip_addr.clone();
        ips.iter().position(|i| *i == ip)
    };
    let mut old = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            old = trunk_server();
            old.is_some()
        }),
        "the tracker never named a trunk server"
    );
    let old = old.unwrap();
    let new = 1 - old;
    // Only an ACTIVE member can take the role over: a kill while the other
    // one still copies the first one's files (SYNCING) would leave the
    // group without a trunk server, as with the original.
    let both_active = || {
        members().is_some_and(|list| {
            list.len() == 2
                && list
                    .iter()
                    .all(|s| s.status == fdfs_proto::stat::storage_status::ACTIVE)
        })
    };
    assert!(
        fdfs_testkit::wait_until(DEADLINE, both_active),
        "members never became ACTIVE\n{}",
        log_tails(dir.path())
    );
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || rt
            .block_on(try_upload(addrs[old], b"probe"))
            .is_some_and(|id| id.remote.len() == 60)),
        "small uploads never went into a trunk"
    );

    let stop = Arc::new(AtomicBool::new(false));
    /// An acknowledged upload: its id, the member that took it, its bytes.
    type Acked = (FileId, usize, Vec<u8>);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for l in 0..LOOPS {
        let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
        loops.push(rt.spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let target = (l + n) % 2;
                let data = content(l * 100_000 + n, 100 + (l * 7919 + n * 104_729) % 8000);
                n += 1;
                match try_upload(addrs[target], &data).await {
                    Some(id) => acked.lock().unwrap().push((id, target, data)),
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    let acked_now = || acked.lock().unwrap().len();
    let before = acked_now();
    assert!(fdfs_testkit::wait_until(DEADLINE, || acked_now() >= before + 300));
    if let Some(mut g) = storages[old].take() {
        g.0.kill().expect("SIGKILL");
        g.0.wait().expect("reap");
    }
    assert!(
        fdfs_testkit::wait_until(Duration::from_secs(90), || trunk_server() == Some(new)),
        "the leader never moved the trunk server (now {:?})\n{}",
        trunk_server(),
        log_tails(dir.path())
    );
    let moved = acked_now();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || acked_now() >= moved + 300),
        "uploads stopped after the failover"
    );
    storages[old] = Some(spawn("storage", &format!("storage{old}.conf")));
    let restarted = acked_now();
    assert!(fdfs_testkit::wait_until(DEADLINE, || acked_now() >= restarted + 300));
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        rt.block_on(l).unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    let mut slots = Vec::new();
    let mut trunked = 0;
    for (id, target, data) in &acked {
        let got = rt.block_on(async {
            let mut last = None;
            for _ in 0..100 {
                last = try_download(addrs[*target], id).await;
                if last.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            last
        });
        assert_eq!(
            got.as_deref(),
            Some(&data[..]),
            "{} on {}",
            id.remote,
            addrs[*target]
        );
        if id.remote.len() == 60 {
            trunked += 1;
            let name = RemoteName::parse(&id.remote, 1).unwrap();
            let loc = TrunkLocation::from_remote(&name).unwrap();
            slots.push((loc.trunk_file_id, loc.offset, loc.size));
        }
    }
    slots.sort();
    for w in slots.windows(2) {
        assert!(
            w[0].0 != w[1].0 || w[0].1 + w[0].2 <= w[1].1,
            "trunk space handed out twice: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    let binlog = |i: usize| std::fs::read(store(i).join("data/trunk/binlog")).ok();
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || binlog(new).is_some()
            && binlog(new) == binlog(old)),
        "trunk binlogs never converged"
    );
    eprintln!(
        "kill -9 of the trunk server: {} uploads acknowledged ({trunked} in trunks), {} refused",
        acked.len(),
        failed.load(Ordering::Relaxed)
    );
}

/// The last lines of every daemon log under `dir`, for a failure message.
fn log_tails(dir: &Path) -> String {
    let mut out = String::new();
    for who in ["tracker", "storage0", "storage1"] {
        let Ok(entries) = std::fs::read_dir(dir.join(who).join("logs")) else {
            continue;
        };
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {}\n", e.path().display()));
            for l in &lines[lines.len().saturating_sub(40)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

// ---- the trunk server's scheduled work (trunk_create_file_advance,
// trunk_compress_binlog_*) ----

/// Waits for every member to be ACTIVE and for the tracker to name a
/// trunk server; returns that member.
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
            let id = g.block_on(upload_to(addr, b"probe", "bin"));
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
    let g = trunk_group_with(1, |c| {
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
    wait_group_stat(&g, &format!("trunk files {ids:?}"), |gs| {
        gs.current_trunk_file_id >= i64::from(ids[2]) && gs.trunk_free_mb >= 12
    });
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

/// Every file of `kept` reads back equal from every member of `addrs`
/// (waiting for replication).
fn all_read_back(
    g: &Group,
    addrs: &[std::net::SocketAddr],
    kept: &[(FileId, Vec<u8>)],
    when: &str,
) {
    for (id, data) in kept {
        for &addr in addrs {
            assert!(
                fdfs_testkit::wait_until(DEADLINE, || g
                    .block_on(try_download(addr, id))
                    .is_some_and(|got| got == *data)),
                "{} does not read back from {addr}{when}",
                id.remote
            );
        }
    }
}

#[test]
fn compression_keeps_members_in_step_and_files_readable() {
    let mut g = trunk_group_with(2, |c| {
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
        let id = g.block_on(upload_to(addrs[i % 2], &data, "bin"));
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
    all_read_back(&g, &addrs, &kept, "");

    // A restart of the trunk server replays the compressed binlog: new
    // uploads never land on a kept file.
    g.stop_storage(server);
    g.start_storage(server);
    let server = wait_trunk_server(&g);
    first_trunk_upload(&g, addrs[server]);
    for i in 0..20 {
        let data = content(100 + i, 200 + i * 131);
        let id = g.block_on(upload_to(addrs[i % 2], &data, "bin"));
        kept.push((id, data));
    }
    all_read_back(&g, &addrs, &kept, " after the restart");
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

/// A member that is down holds back the free of every slot deleted
/// meanwhile (it may still send the deleted file); once it is removed
/// from the group, the freer goes on and the slot is freed.
#[test]
fn a_removed_member_no_longer_holds_back_frees() {
    let mut g = trunk_group();
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let server = wait_trunk_server(&g);
    let other = 1 - server;
    let addr = g.storage_addr(server);
    let mut id = None;
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || {
            id = g
                .block_on(try_upload(addr, &content(9, 1500)))
                .filter(|id| id.remote.len() == 60);
            id.is_some()
        }),
        "small uploads never went into a trunk"
    );
    let id = id.unwrap();
    let (loc, _) = trunk_location(&g.store_path(server), &id.remote);
    let other_addr = g.storage_addr(other);
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || g
            .block_on(try_download(other_addr, &id))
            .is_some()),
        "the file never reached the other member"
    );
    g.stop_storage(other);
    assert!(
        fdfs_testkit::wait_until(DEADLINE, || g.status_on(0, other)
            == Some(fdfs_proto::stat::storage_status::OFFLINE)),
        "the stopped member never went OFFLINE"
    );
    g.block_on(delete_at(addr, &id));
    let other_id = g.storage_ip(other).to_string();
    let tracker = g.tracker(0);
    g.block_on(async {
        let mut conn = fdfs_testkit::connect(tracker).await;
        fdfs_client::TrackerClient::new(&mut conn)
            .delete_storage("group1", &other_id)
            .await
            .expect("delete the OFFLINE member from the group")
    });
    assert!(
        wait_slot_freed(&g.store_path(server), &loc),
        "the deleted file's slot was never freed after the member was removed"
    );
}
