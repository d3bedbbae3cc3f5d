//! `fdfs trunk check` (issue 15 point 4) against real servers: a healthy
//! group checks clean; a file header planted in a free slot, or a used
//! slot's header cleared, on one member is reported with exit status 1; an
//! allocation never confirmed (a raw ALLOC_SPACE 27 with no 28 after it)
//! leaks only its slot, which `--repair` frees once network_timeout has
//! passed, and which a restarted trunk server frees by itself; the space a
//! new trunk server quarantines after a failover is released by `--repair`
//! and then allocated again.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fdfs_client::storage::{StorageClient, UploadKind};
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::trunk::{SlotHeader, SLOT_HEADER_LEN, SLOT_TYPE_REGULAR};
use fdfs_proto::trunk_binlog::{parse_lines, TrunkOp};
use fdfs_proto::trunk_msg::AllocReq;
use fdfs_proto::{FileId, StorageCmd, TrunkLocation};
use fdfs_testkit::group::{Group, GroupOptions};
use fdfs_testkit::trunk::{name_and_header, slot_after, stray_header};
use fdfs_testkit::wait_until;
use fdfs_util::cluster_secret::{ClusterSecret, Purpose};

const SLOT_MAX_BYTES: u64 = 64 * 1024;
const TRUNK_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Generous: a loaded CI machine beats slowly.
const DEADLINE: Duration = Duration::from_secs(60);
/// The storages' network_timeout: how long an unconfirmed allocation may
/// still be in flight.
const NETWORK_TIMEOUT_SECS: u64 = 3;

fn trunk_group(n: usize) -> Group {
    trunk_group_with(n, None)
}

/// `trunk_group`, the tracker and storages sharing `secret` if given.
fn trunk_group_with(n: usize, secret: Option<ClusterSecret>) -> Group {
    let (tracker_secret, storage_secret) = (secret.clone(), secret);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("FDFS_TEST_LOG").unwrap_or_else(|_| "off".into()),
        ))
        .with_test_writer()
        .try_init();
    Group::start_with(GroupOptions {
        groups: vec![("group1", n)],
        tweak_tracker: Some(Arc::new(move |c| {
            c.use_trunk_file = true;
            c.slot_min_size = 256;
            c.slot_max_size = SLOT_MAX_BYTES;
            c.trunk_file_size = TRUNK_FILE_BYTES;
            c.trunk_free_space_merge = false;
            c.delete_unused_trunk_files = false;
            c.check_active_interval_secs = 2;
            c.cluster_secret = tracker_secret.clone();
        })),
        tweak_storage: Some(Arc::new(move |c| {
            c.network_timeout_secs = NETWORK_TIMEOUT_SECS;
            c.cluster_secret = storage_secret.clone();
        })),
        ..GroupOptions::default()
    })
}

/// The member the tracker lists as trunk server, once there is one.
fn trunk_server(g: &Group, not: Option<usize>) -> usize {
    let mut found = None;
    assert!(
        wait_until(DEADLINE, || {
            let list = g.list_storages(0, "group1");
            found = list
                .iter()
                .find(|s| s.if_trunk_server)
                .and_then(|s| (0..g.len()).find(|&i| g.storage_ip(i) == s.ip_addr))
                .filter(|&i| Some(i) != not);
            found.is_some()
        }),
        "the tracker never named a trunk server (other than {not:?})"
    );
    found.unwrap()
}

fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| ((seed * 131 + k * 7) % 253) as u8)
        .collect()
}

/// One upload of `data` through member `i`.
fn upload_once(g: &Group, i: usize, data: &[u8]) -> Result<FileId, fdfs_client::ClientError> {
    let addr = g.storage_addr(i);
    g.block_on(async {
        let mut conn = fdfs_testkit::connect(addr).await;
        let mut src = data;
        StorageClient::new(&mut conn)
            .upload(UploadKind::Normal, -1, "bin", &mut src, data.len() as u64)
            .await
    })
}

/// A two-member trunk group with its trunk server and its other member,
/// and a first file of `size` bytes uploaded through that member. Slots are
/// handed out in turn here, so the member's next upload of the same size
/// gets `slot_after` that file's.
fn group_with_a_member_file(size: usize) -> (Group, usize, usize, FileId) {
    let g = trunk_group(2);
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let server = trunk_server(&g, None);
    let member = 1 - server;
    let first = upload_trunked(&g, member, &content(1, size));
    (g, server, member, first)
}

/// Writes a file header that no file name has into member `i`'s copy of
/// `loc`: what an upload there cut short by a crash leaves.
fn plant_stray_header(g: &Group, i: usize, loc: &TrunkLocation, file_size: u32) {
    let orphan = stray_header(loc.size, file_size);
    trunk_file(g, i, loc)
        .write_all_at(&orphan.encode(), u64::from(loc.offset))
        .unwrap();
}

/// Uploads through `i` until the file lands in a trunk slot (the trunk
/// server may still be switching into its role).
fn upload_trunked(g: &Group, i: usize, data: &[u8]) -> FileId {
    let mut id = None;
    assert!(
        wait_until(DEADLINE, || {
            match upload_once(g, i, data) {
                Ok(f) if f.remote.len() == 60 => {
                    id = Some(f);
                    true
                }
                _ => false,
            }
        }),
        "no trunk upload through member {i}"
    );
    id.unwrap()
}

fn downloads(g: &Group, i: usize, id: &FileId) -> Option<Vec<u8>> {
    let addr = g.storage_addr(i);
    g.block_on(async {
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
    })
}

fn location(id: &FileId) -> TrunkLocation {
    let name = RemoteName::parse(&id.remote, 1).expect("name");
    TrunkLocation::from_remote(&name).expect("trunk name")
}

/// Runs `fdfs trunk check` (plus `extra`): exit code and stdout.
fn check(g: &Group, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(["trunk", "check", "--tracker", &g.tracker(0).to_string()])
        .args(extra)
        .output()
        .expect("run fdfs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), format!("{text}{err}"))
}

/// Polls the check until it exits `code` with `want` in its output.
fn check_until(g: &Group, extra: &[&str], code: i32, want: &str) -> String {
    let mut last = (0, String::new());
    let ok = wait_until(DEADLINE, || {
        last = check(g, extra);
        last.0 == code && last.1.contains(want)
    });
    assert!(
        ok,
        "trunk check {extra:?} never exited {code} with {want:?}; last ({}):\n{}",
        last.0, last.1
    );
    last.1
}

fn slot_text(s: &TrunkLocation) -> String {
    format!(
        "M{:02X}/{} offset {} size {}",
        s.store_path_index,
        s.trunk_file_relative_path(),
        s.offset,
        s.size
    )
}

fn trunk_file(g: &Group, i: usize, loc: &TrunkLocation) -> std::fs::File {
    let path = g.store_path(i).join(loc.trunk_file_relative_path());
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A raw ALLOC_SPACE (27) to the trunk server, never confirmed: what an
/// uploading member killed between 27 and 28 leaves behind.
fn alloc_unconfirmed(g: &Group, server: usize, size: u32) -> TrunkLocation {
    alloc_unconfirmed_proving(g, server, size, None)
}

/// `alloc_unconfirmed` over a connection that proved `secret` first.
fn alloc_unconfirmed_proving(
    g: &Group,
    server: usize,
    size: u32,
    secret: Option<&ClusterSecret>,
) -> TrunkLocation {
    let mut b = BytesMut::new();
    AllocReq {
        group: "group1".into(),
        file_size: size,
        store_path_index: 0,
    }
    .encode(&mut b);
    let addr = g.storage_addr(server);
    let body = g.block_on(async {
        let mut conn = fdfs_testkit::connect(addr).await;
        if let Some(secret) = secret {
            conn.prove_cluster_secret(secret, Purpose::StorageSync)
                .await
                .expect("prove the cluster secret");
        }
        conn.call(StorageCmd::TrunkAllocSpace.into(), &b).await
    });
    TrunkLocation::from_info_buff(&body.expect("ALLOC_SPACE")).expect("15 bytes")
}

/// Waits until member `to` holds the trunk server `from`'s whole trunk
/// binlog (pushed with SYNC_BINLOG 30 every half second).
fn wait_binlogs_converge(g: &Group, from: usize, to: usize) {
    let read =
        |i: usize| std::fs::read(g.store_path(i).join("data/trunk/binlog")).unwrap_or_default();
    assert!(
        wait_until(DEADLINE, || {
            let a = read(from);
            !a.is_empty() && a == read(to)
        }),
        "the trunk binlog never reached member {to}"
    );
}

/// The trunk binlog of member `i` has an `A` line giving `slot` back.
fn freed_in_binlog(base: &Path, slot: &TrunkLocation) -> bool {
    let text = std::fs::read(base.join("data/trunk/binlog")).unwrap_or_default();
    parse_lines(&text)
        .0
        .iter()
        .any(|r| r.op == TrunkOp::AddSpace && r.slot == *slot)
}

#[test]
fn a_healthy_group_checks_clean_and_planted_mismatches_are_reported() {
    let g = trunk_group(2);
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let server = trunk_server(&g, None);
    let member = 1 - server;
    let mut files = Vec::new();
    for k in 0..6 {
        let data = content(k, 300 + k * 200);
        let via = if k % 2 == 0 { server } else { member };
        files.push((upload_trunked(&g, via, &data), data));
    }
    // Replicated both ways before the disks are compared.
    for (id, data) in &files {
        for i in [server, member] {
            assert!(
                wait_until(DEADLINE, || downloads(&g, i, id).as_ref() == Some(data)),
                "{} never readable on member {i}",
                id.remote
            );
        }
    }
    wait_binlogs_converge(&g, server, member);
    let out = check_until(&g, &[], 0, "0 mismatch(es)");
    assert!(out.contains("(trunk server): clean"), "{out}");
    assert_eq!(out.matches(": clean, 1 trunk file(s)").count(), 2, "{out}");

    // A file header in the free space after the last slot of a trunk
    // file, on the member only.
    let loc = location(&files[0].0);
    let end = files
        .iter()
        .map(|(id, _)| location(id))
        .filter(|l| l.trunk_file_id == loc.trunk_file_id)
        .map(|l| l.offset + l.size)
        .max()
        .unwrap();
    let planted = SlotHeader {
        file_type: SLOT_TYPE_REGULAR,
        alloc_size: 256,
        file_size: 100,
        crc32: 0,
        mtime: 0,
        ext7: *b"123.bin",
    };
    let f = trunk_file(&g, member, &loc);
    f.write_all_at(&planted.encode(), u64::from(end)).unwrap();
    let (code, out) = check(&g, &[]);
    assert_eq!(code, 1, "{out}");
    let member_addr = g.storage_addr(member).to_string();
    assert!(
        out.lines().any(|l| l.contains(&member_addr)
            && l.contains("mismatch: free slot")
            && l.contains(&format!("holds a file header at offset {end} size 256"))),
        "{out}"
    );
    assert!(out.contains("1 mismatch(es)"), "{out}");
    f.write_all_at(&[0u8; SLOT_HEADER_LEN], u64::from(end))
        .unwrap();
    check_until(&g, &[], 0, "0 mismatch(es)");

    // A used slot whose header is wiped on the member.
    let victim = location(&files[1].0);
    let mut saved = [0u8; SLOT_HEADER_LEN];
    f.read_exact_at(&mut saved, u64::from(victim.offset))
        .unwrap();
    f.write_all_at(&[0u8; SLOT_HEADER_LEN], u64::from(victim.offset))
        .unwrap();
    let (code, out) = check(&g, &[]);
    assert_eq!(code, 1, "{out}");
    let at = format!(
        "M00/{} offset {}",
        victim.trunk_file_relative_path(),
        victim.offset
    );
    assert!(
        out.lines()
            .any(|l| l.contains(&member_addr) && l.contains("mismatch") && l.contains(&at)),
        "{out}"
    );
    // --repair frees nothing that holds a file elsewhere.
    let (code, out) = check(&g, &["--repair"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0 leaked slot(s) freed"), "{out}");
    f.write_all_at(&saved, u64::from(victim.offset)).unwrap();
    check_until(&g, &[], 0, "0 mismatch(es)");
    for (id, data) in &files {
        assert_eq!(downloads(&g, server, id).as_ref(), Some(data));
        assert_eq!(downloads(&g, member, id).as_ref(), Some(data));
    }
}

#[test]
fn an_allocation_never_confirmed_leaks_one_slot_freed_by_repair_and_at_restart() {
    let mut g = trunk_group(1);
    assert!(g.wait_all_active(DEADLINE), "member never became ACTIVE");
    let server = trunk_server(&g, None);
    let kept = upload_trunked(&g, server, &content(1, 500));
    let leaked = alloc_unconfirmed(&g, server, 1000);
    // In flight until network_timeout has passed, then leaked.
    let out = check_until(&g, &[], 1, &format!("leaked slot: {}", slot_text(&leaked)));
    assert!(out.contains("1 mismatch(es)"), "{out}");
    let (code, out) = check(&g, &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("freed leaked slot {}", slot_text(&leaked))),
        "{out}"
    );
    assert!(freed_in_binlog(&g.store_path(server), &leaked));
    let (code, out) = check(&g, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 mismatch(es)"), "{out}");
    assert!(
        !out.contains("leaked slot:") && !out.contains("leaked slot?"),
        "{out}"
    );

    // A restart frees a stale unconfirmed allocation by itself once
    // network_timeout has passed (the trunk server's side file keeps it).
    let leaked2 = alloc_unconfirmed(&g, server, 2000);
    g.stop_storage(server);
    assert!(!freed_in_binlog(&g.store_path(server), &leaked2));
    g.start_storage(server);
    assert!(
        wait_until(DEADLINE, || freed_in_binlog(
            &g.store_path(server),
            &leaked2
        )),
        "the restarted trunk server never freed {leaked2:?}"
    );
    assert_eq!(
        downloads(&g, server, &kept),
        Some(content(1, 500)),
        "a confirmed file is kept"
    );
    // A lone trunk server that restarts resumes its own tenure (nobody
    // served since), so nothing was quarantined and the check is clean.
    let (code, out) = check(&g, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("quarantine:"), "{out}");
}

#[test]
fn quarantine_after_a_failover_is_released_by_repair_then_reused() {
    let mut g = trunk_group(2);
    assert!(g.wait_all_active(DEADLINE), "members never became ACTIVE");
    let old = trunk_server(&g, None);
    let next = 1 - old;
    let mut files = Vec::new();
    for k in 0..10 {
        let data = content(k, 1000);
        files.push((upload_trunked(&g, old, &data), data));
    }
    let old_ids: Vec<u32> = files
        .iter()
        .map(|(id, _)| location(id).trunk_file_id)
        .collect();
    for (id, data) in &files {
        assert!(
            wait_until(DEADLINE, || downloads(&g, next, id).as_ref() == Some(data)),
            "{} never replicated",
            id.remote
        );
    }
    // Let the trunk binlog reach the other member.
    wait_binlogs_converge(&g, old, next);
    let out = check_until(&g, &[], 0, "0 mismatch(es)");
    assert_eq!(out.matches(": clean, 1 trunk file(s)").count(), 2, "{out}");
    g.stop_storage(old);
    assert_eq!(trunk_server(&g, Some(old)), next);
    // The new trunk server allocates from new trunk files only.
    let fresh = upload_trunked(&g, next, &content(50, 1000));
    assert!(
        !old_ids.contains(&location(&fresh).trunk_file_id),
        "allocated from quarantined space: {fresh}"
    );
    // While the old trunk server is down it may hold files in that space
    // that reached nobody else: nothing is released.
    let out = check_until(&g, &["--repair"], 0, "1 skipped");
    assert!(out.contains(" 0 quarantined slot(s) released"), "{out}");
    g.start_storage(old);
    assert!(
        g.wait_all_active(DEADLINE),
        "the old trunk server never came back"
    );
    let out = check_until(&g, &[], 0, "proven free on every member");
    assert!(out.contains(" 0 skipped"), "{out}");
    let out = check_until(&g, &["--repair"], 0, "quarantined slot(s) released");
    assert!(out.contains("quarantine: "), "{out}");
    assert!(!out.contains(" 0 quarantined slot(s) released"), "{out}");
    let (code, out) = check(&g, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("quarantine:"), "{out}");
    // Released space is allocated again: the old trunk file's rest is the
    // best fit now.
    let reused = upload_trunked(&g, next, &content(51, 1000));
    assert!(
        old_ids.contains(&location(&reused).trunk_file_id),
        "released space not reused: {reused}"
    );
    for (id, data) in &files {
        assert_eq!(downloads(&g, next, id).as_ref(), Some(data));
    }
    assert_eq!(downloads(&g, next, &reused), Some(content(51, 1000)));
}

#[test]
fn a_storage_without_trunk_scrub_is_reported_not_supported() {
    // Trunk files off: our storage answers EINVAL, as a C storage does for
    // a command it does not know.
    let g = Group::start(1);
    assert!(g.wait_all_active(DEADLINE), "member never became ACTIVE");
    let (code, out) = check(&g, &["--group", "group1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{}: scrub not supported", g.storage_addr(0))),
        "{out}"
    );
    assert!(out.contains("1 not supported"), "{out}");
}

#[test]
fn a_slot_whose_free_never_reached_the_trunk_server_is_freed_by_repair() {
    let mut g = trunk_group(1);
    assert!(g.wait_all_active(DEADLINE), "member never became ACTIVE");
    let server = trunk_server(&g, None);
    let id = upload_trunked(&g, server, &content(3, 700));
    let loc = location(&id);
    // A delete whose FREE_SPACE (29) failed: the slot cleared as the
    // storage clears it (type 0, size kept), the DELETE record written,
    // the trunk binlog still holding the slot.
    let cleared = SlotHeader {
        file_type: 0,
        alloc_size: loc.size,
        file_size: 0,
        crc32: 0,
        mtime: 0,
        ext7: [0; 7],
    };
    let f = trunk_file(&g, server, &loc);
    f.write_all_at(&cleared.encode(), u64::from(loc.offset))
        .unwrap();
    // Only the header: while the storage binlog still names the file, the
    // slot is kept.
    let (code, out) = check(&g, &["--repair"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "leaked slot? {} (allocated, header free): kept, a member holds a file there",
            slot_text(&loc)
        )),
        "{out}"
    );
    // The DELETE record, and the storage's freer past it (as after a
    // free that was sent and never answered): nobody owes the free now.
    g.stop_storage(server);
    let sync_dir = g.store_path(server).join("data/sync");
    let mut binlog = std::fs::OpenOptions::new()
        .append(true)
        .open(sync_dir.join("binlog.000"))
        .unwrap();
    std::io::Write::write_all(
        &mut binlog,
        format!("1700000000 D {}\n", id.remote).as_bytes(),
    )
    .unwrap();
    let end = binlog.metadata().unwrap().len();
    std::fs::write(
        g.store_path(server).join("data/trunk/free.mark"),
        format!(
            "binlog_index=0\nbinlog_offset={end}\nneed_sync_old=0\nsync_old_done=0\n\
             until_timestamp=0\nscan_row_count=0\nsync_row_count=0\n"
        ),
    )
    .unwrap();
    g.start_storage(server);
    assert!(g.wait_all_active(DEADLINE), "member never came back");
    check_until(
        &g,
        &[],
        1,
        &format!("leaked slot: {} (allocated, header free)", slot_text(&loc)),
    );
    let (code, out) = check(&g, &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("freed leaked slot {}", slot_text(&loc))),
        "{out}"
    );
    assert!(freed_in_binlog(&g.store_path(server), &loc));
    let (code, out) = check(&g, &[]);
    assert_eq!(code, 0, "{out}");
}

/// Storages with a cluster secret take repairs only from who proves it:
/// `--repair` alone is refused, with `--cluster-secret-file` it frees.
#[test]
fn with_a_cluster_secret_only_who_proves_it_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("cluster.secret");
    std::fs::write(&secret_file, b"a cluster secret of enough bytes\n").unwrap();
    let secret = ClusterSecret::load(&secret_file).unwrap();
    let g = trunk_group_with(1, Some(secret.clone()));
    assert!(g.wait_all_active(DEADLINE), "member never became ACTIVE");
    let server = trunk_server(&g, None);
    upload_trunked(&g, server, &content(1, 500));
    let leaked = alloc_unconfirmed_proving(&g, server, 1000, Some(&secret));
    check_until(&g, &[], 1, &format!("leaked slot: {}", slot_text(&leaked)));
    let (code, out) = check(&g, &["--repair"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("freeing leaked slots failed"), "{out}");
    assert!(!freed_in_binlog(&g.store_path(server), &leaked));
    let secret_arg = secret_file.to_str().unwrap();
    let (code, out) = check(&g, &["--repair", "--cluster-secret-file", secret_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("freed leaked slot {}", slot_text(&leaked))),
        "{out}"
    );
    assert!(freed_in_binlog(&g.store_path(server), &leaked));
}

/// A trunk server killed between its own slot write and the confirm leaves
/// a header that no file name has. When it starts again it clears that
/// header before it frees the slot, so the next upload (or a replica) of
/// that size gets the slot instead of being refused as if another file
/// were there.
#[test]
fn a_header_left_by_an_upload_cut_short_is_cleared_when_its_slot_is_freed_at_start() {
    let mut g = trunk_group(1);
    assert!(g.wait_all_active(DEADLINE), "member never became ACTIVE");
    let server = trunk_server(&g, None);
    let size = 1000;
    let kept = upload_trunked(&g, server, &content(1, size));
    let cut_short = alloc_unconfirmed(&g, server, size as u32);
    let f = trunk_file(&g, server, &cut_short);
    f.write_all_at(
        &content(2, size),
        u64::from(cut_short.offset) + SLOT_HEADER_LEN as u64,
    )
    .unwrap();
    plant_stray_header(&g, server, &cut_short, size as u32);
    // Another unconfirmed slot holds a file that the binlog names: written
    // and acknowledged, only its confirm never reached the trunk binlog.
    let acked_loc = alloc_unconfirmed(&g, server, 2000);
    let acked_data = content(4, 2000);
    let (acked_name, acked_header) = name_and_header(
        &acked_loc,
        [127, 0, 0, 1],
        1_700_000_000,
        (acked_data.len(), crc32fast::hash(&acked_data)),
        "bin",
        SLOT_TYPE_REGULAR,
    );
    f.write_all_at(&acked_data, acked_loc.content_offset())
        .unwrap();
    f.write_all_at(&acked_header.encode(), u64::from(acked_loc.offset))
        .unwrap();
    g.stop_storage(server);
    let mut binlog = std::fs::OpenOptions::new()
        .append(true)
        .open(g.store_path(server).join("data/sync/binlog.000"))
        .unwrap();
    std::io::Write::write_all(
        &mut binlog,
        format!("1700000000 C {acked_name}\n").as_bytes(),
    )
    .unwrap();
    g.start_storage(server);
    assert!(
        wait_until(DEADLINE, || freed_in_binlog(
            &g.store_path(server),
            &cut_short
        )),
        "the restarted trunk server never freed {cut_short:?}"
    );
    let mut on_disk = [0u8; SLOT_HEADER_LEN];
    f.read_exact_at(&mut on_disk, u64::from(cut_short.offset))
        .unwrap();
    assert_eq!(
        SlotHeader::decode(&on_disk).file_type,
        0,
        "the header of the upload cut short is still there"
    );
    // The freed slot is the best fit for the next file of that size.
    let data = content(3, size);
    let next = upload_trunked(&g, server, &data);
    assert_eq!(location(&next), cut_short, "{next}");
    assert_eq!(downloads(&g, server, &next), Some(data));
    assert_eq!(downloads(&g, server, &kept), Some(content(1, size)));
    let acked = FileId {
        group: "group1".into(),
        remote: acked_name.to_string(),
    };
    assert_eq!(downloads(&g, server, &acked), Some(acked_data));
    assert!(
        !freed_in_binlog(&g.store_path(server), &acked_loc),
        "a slot holding a named file was freed"
    );
    let (code, out) = check(&g, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("unconfirmed"), "{out}");
}

/// A header that no file name has (an upload cut short by a crash left it)
/// in a slot the trunk server hands out again does not stop the replica of
/// the new file for long: the member clears it once the replica has been
/// refused for a few seconds, then takes the copy.
#[test]
fn a_replica_into_a_slot_holding_a_header_no_name_has_lands() {
    let size = 1000;
    let (g, server, member, last) = group_with_a_member_file(size);
    assert!(
        wait_until(DEADLINE, || downloads(&g, server, &last)
            == Some(content(1, size))),
        "the first file never replicated"
    );
    // The header goes into the trunk server's copy only.
    let next_loc = slot_after(&location(&last));
    plant_stray_header(&g, server, &next_loc, 900);
    let data = content(2, size);
    let next = upload_trunked(&g, member, &data);
    assert_eq!(location(&next), next_loc, "{next}");
    assert!(
        wait_until(DEADLINE, || downloads(&g, server, &next).as_ref()
            == Some(&data)),
        "the replica never landed over the orphan header"
    );
    // Replication goes on after it.
    let after = upload_trunked(&g, member, &content(3, size));
    assert!(
        wait_until(DEADLINE, || downloads(&g, server, &after)
            == Some(content(3, size))),
        "replication stopped"
    );
    wait_binlogs_converge(&g, server, member);
    check_until(&g, &[], 0, "0 mismatch(es)");
}

/// A member's own upload cut short by a crash leaves a header that no file
/// name has in the member's copy of the slot; once the trunk server has
/// freed the slot and hands it to that member again, the member's next
/// upload into it clears the header (after a few seconds) and lands,
/// instead of failing and keeping the slot out of the pool.
#[test]
fn an_upload_into_a_slot_holding_a_header_no_name_has_lands() {
    let size = 1000;
    let (g, server, member, last) = group_with_a_member_file(size);
    // The header goes into the member's own copy only.
    let next_loc = slot_after(&location(&last));
    plant_stray_header(&g, member, &next_loc, 900);
    let data = content(2, size);
    let next = upload_once(&g, member, &data)
        .expect("the upload into a slot holding a header no name has failed");
    assert_eq!(location(&next), next_loc, "{next}");
    assert_eq!(downloads(&g, member, &next).as_ref(), Some(&data));
    assert!(
        wait_until(DEADLINE, || downloads(&g, server, &next).as_ref()
            == Some(&data)),
        "the file never replicated"
    );
    wait_binlogs_converge(&g, server, member);
    check_until(&g, &[], 0, "0 mismatch(es)");
}
