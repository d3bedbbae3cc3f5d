//! Replication inside a group: every change made on one storage reaches
//! every other member with identical bytes; a stopped member catches up when
//! it comes back; a new member gets a full copy and then turns ACTIVE.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use fdfs_client::{ClientError, Conn};
use fdfs_proto::stat::{storage_status, StorageStat};
use fdfs_proto::storage_msg::{AppendReq, DownloadReq, FileIdResp, SetMetaReq, UploadReq};
use fdfs_proto::sync_msg::{SyncDeleteReq, SyncFileReq};
use fdfs_proto::tracker_msg::{GroupFileReq, GroupStorageReq};
use fdfs_proto::{StorageCmd, TrackerCmd};
use fdfs_testkit::group::Group;
use fdfs_testkit::wait_until;

const DEADLINE: Duration = Duration::from_secs(30);

async fn conn(addr: std::net::SocketAddr) -> Result<Conn, ClientError> {
    fdfs_testkit::try_connect(addr).await
}

fn upload(g: &Group, i: usize, data: &[u8], appender: bool) -> String {
    g.block_on(async {
        let mut c = conn(g.storage_addr(i)).await.unwrap();
        let mut b = BytesMut::new();
        UploadReq {
            store_path_index: -1,
            file_size: data.len() as u64,
            ext: "bin".into(),
        }
        .encode_head(&mut b);
        b.put_slice(data);
        let cmd = if appender {
            StorageCmd::UploadAppenderFile
        } else {
            StorageCmd::UploadFile
        };
        FileIdResp::decode(&c.call(cmd.into(), &b).await.unwrap())
            .unwrap()
            .remote
    })
}

fn download(g: &Group, i: usize, remote: &str) -> Option<Vec<u8>> {
    g.block_on(async {
        let mut c = conn(g.storage_addr(i)).await.ok()?;
        let mut b = BytesMut::new();
        DownloadReq {
            offset: 0,
            length: 0,
            group: "group1".into(),
            remote: remote.into(),
        }
        .encode(&mut b);
        c.call(StorageCmd::DownloadFile.into(), &b).await.ok()
    })
}

fn call(g: &Group, i: usize, cmd: StorageCmd, body: &[u8]) {
    g.block_on(async {
        let mut c = conn(g.storage_addr(i)).await.unwrap();
        c.call(cmd.into(), body).await.unwrap();
    });
}

fn group_file(remote: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    GroupFileReq {
        group: "group1".into(),
        remote: remote.into(),
    }
    .encode(&mut b);
    b.to_vec()
}

/// Waits until every listed member serves `remote` with `expected` bytes
/// (None: every member answers ENOENT).
fn converges(g: &Group, members: &[usize], remote: &str, expected: Option<&[u8]>) -> bool {
    wait_until(DEADLINE, || {
        members
            .iter()
            .all(|&i| download(g, i, remote).as_deref() == expected)
    })
}

fn storages(g: &Group) -> Vec<StorageStat> {
    g.block_on(async {
        let Ok(mut t) = conn(g.tracker_addr).await else {
            return Vec::new();
        };
        let mut b = BytesMut::new();
        GroupStorageReq {
            group: "group1".into(),
            storage_id: None,
        }
        .encode(&mut b);
        match t.call(TrackerCmd::ServerListStorage.into(), &b).await {
            Ok(body) => StorageStat::decode_list(&body).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    })
}

fn all_active(g: &Group, n: usize) -> bool {
    wait_until(DEADLINE, || {
        let list = storages(g);
        list.len() == n && list.iter().all(|s| s.status == storage_status::ACTIVE)
    })
}

#[test]
fn changes_reach_every_member() {
    let g = Group::start(3);
    assert!(
        all_active(&g, 3),
        "{:?}",
        storages(&g)
            .iter()
            .map(|s| (&s.ip_addr, s.status))
            .collect::<Vec<_>>()
    );
    let all = [0, 1, 2];

    // Uploads to each member reach all members with identical bytes.
    let mut ids = Vec::new();
    for i in 0..3 {
        let data: Vec<u8> = (0..50_000u32).map(|x| (x * (i as u32 + 7)) as u8).collect();
        let id = upload(&g, i, &data, false);
        assert!(
            converges(&g, &all, &id, Some(&data)),
            "upload to member {i} did not replicate"
        );
        ids.push((id, data));
    }

    // Metadata, appends and deletes replicate too.
    let (id0, _) = &ids[0];
    let mut b = BytesMut::new();
    SetMetaReq {
        remote: id0.clone(),
        op_flag: b'O',
        group: "group1".into(),
        meta: b"w\x02160".to_vec(),
    }
    .encode(&mut b);
    call(&g, 0, StorageCmd::SetMetadata, &b);
    assert!(
        wait_until(DEADLINE, || all.iter().all(|&i| {
            g.block_on(async {
                let Ok(mut c) = conn(g.storage_addr(i)).await else {
                    return false;
                };
                c.call(StorageCmd::GetMetadata.into(), &group_file(id0))
                    .await
                    .map(|m| m == b"w\x02160")
                    .unwrap_or(false)
            })
        })),
        "metadata did not replicate"
    );

    let ap = upload(&g, 1, b"first ", true);
    let mut b = BytesMut::new();
    AppendReq {
        remote: ap.clone(),
        length: 6,
    }
    .encode_head(&mut b);
    b.put_slice(b"second");
    call(&g, 1, StorageCmd::AppendFile, &b);
    assert!(
        converges(&g, &all, &ap, Some(b"first second")),
        "append did not replicate"
    );

    let (id2, _) = &ids[2];
    call(&g, 2, StorageCmd::DeleteFile, &group_file(id2));
    assert!(converges(&g, &all, id2, None), "delete did not replicate");

    // Replicas keep the source's timestamp as mtime, and log lower-case ops.
    let binlog = std::fs::read_to_string(g.store_path(1).join("data/sync/binlog.000")).unwrap();
    assert!(binlog.contains(&format!(" c {}\n", ids[0].0)), "{binlog}");
    assert!(binlog.contains(&format!(" d {id2}\n")), "{binlog}");
    // Mark files exist in the original's format.
    let mark = std::fs::read_to_string(g.store_path(0).join(format!(
        "data/sync/{}_{}.mark",
        g.storage_ip(1),
        g.port
    )))
    .unwrap();
    assert!(mark.starts_with("binlog_index=0\nbinlog_offset="), "{mark}");
    assert_eq!(mark.lines().count(), 7);
}

#[test]
fn stopped_member_catches_up_and_new_member_full_syncs() {
    let mut g = Group::start(3);
    assert!(all_active(&g, 3));
    let before = upload(&g, 0, b"before the outage", false);
    assert!(converges(
        &g,
        &[0, 1, 2],
        &before,
        Some(b"before the outage")
    ));

    g.stop_storage(2);
    let during = upload(&g, 0, b"written during the outage", false);
    let also = upload(&g, 1, b"also during the outage", false);
    call(&g, 1, StorageCmd::DeleteFile, &group_file(&before));
    assert!(converges(&g, &[0, 1], &before, None));
    g.start_storage(2);
    assert!(
        converges(&g, &[0, 1, 2], &during, Some(b"written during the outage")),
        "member 2 did not catch up"
    );
    assert!(converges(
        &g,
        &[0, 1, 2],
        &also,
        Some(b"also during the outage")
    ));
    assert!(
        converges(&g, &[0, 1, 2], &before, None),
        "the deletion reached member 2"
    );

    // A fresh fourth member: full copy, then ACTIVE.
    let fourth = g.add_storage();
    assert!(
        all_active(&g, 4),
        "{:?}",
        storages(&g)
            .iter()
            .map(|s| (&s.ip_addr, s.status))
            .collect::<Vec<_>>()
    );
    assert!(
        converges(&g, &[fourth], &during, Some(b"written during the outage")),
        "full sync missed a file"
    );
    assert!(converges(
        &g,
        &[fourth],
        &also,
        Some(b"also during the outage")
    ));
    assert!(converges(&g, &[fourth], &before, None));
    let after = upload(&g, fourth, b"written on the new member", false);
    assert!(converges(
        &g,
        &[0, 1, 2, 3],
        &after,
        Some(b"written on the new member")
    ));

    // `fdfs monitor sync` explains the group: the new member's full copy
    // from its source is done, and every member has caught up with it.
    let source_line = |text: &str| {
        storage_block(text, g.storage_ip(fourth))
            .lines()
            .find(|l| l.trim_start().starts_with("sync source:"))
            .map(str::to_string)
    };
    let mut report = String::new();
    let caught_up = wait_until(DEADLINE, || {
        report = monitor_sync(&g);
        (0..3).all(|i| {
            storage_block(&report, g.storage_ip(i))
                .contains(&format!("from {}: lag 0 s", g.storage_ip(fourth)))
        })
    });
    assert!(caught_up, "{report}");
    let line = source_line(&report).unwrap_or_default();
    assert!(line.ends_with("(full copy done)"), "{report}");
    assert!(
        (0..3).any(|i| line.contains(&format!("sync source: {} ", g.storage_ip(i)))),
        "{report}"
    );
    assert_eq!(
        report.matches("  ACTIVE  last heartbeat ").count(),
        4,
        "{report}"
    );
}

/// Status of one request to member `i` on a fresh connection.
fn status_of_call(g: &Group, i: usize, cmd: StorageCmd, body: &[u8]) -> u8 {
    g.block_on(async {
        let mut c = conn(g.storage_addr(i)).await.unwrap();
        match c.call(cmd.into(), body).await {
            Err(ClientError::Status(s)) => s.0,
            other => panic!("expected a status, got {other:?}"),
        }
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn forged_sync_records_are_refused_and_replication_goes_on() {
    // Issue #10 item 2: a SYNC_CREATE_FILE whose name carries a newline
    // and a forged source record used to land in the binlog, and every
    // sender then retried SYNC_DELETE "x" (EINVAL) for ever.
    let g = Group::start(2);
    assert!(all_active(&g, 2));
    let first = upload(&g, 1, b"before the attack", false);
    assert!(converges(&g, &[0, 1], &first, Some(b"before the attack")));
    let binlog = g.store_path(1).join("data/sync/binlog.000");
    let before = std::fs::read(&binlog).unwrap();

    let forged = format!("{first}\n{} D x", now_secs());
    let mut create = BytesMut::new();
    SyncFileReq {
        remote: forged.clone(),
        file_size: 3,
        timestamp: now_secs() as i32,
        group: "group1".into(),
    }
    .encode_head(&mut create);
    create.put_slice(b"abc");
    assert_eq!(
        status_of_call(&g, 1, StorageCmd::SyncCreateFile, &create),
        22
    );
    let mut delete = BytesMut::new();
    SyncDeleteReq {
        timestamp: now_secs() as i32,
        group: "group1".into(),
        remote: "x".into(),
    }
    .encode(&mut delete);
    assert_eq!(
        status_of_call(&g, 1, StorageCmd::SyncDeleteFile, &delete),
        22
    );
    assert_eq!(
        std::fs::read(&binlog).unwrap(),
        before,
        "the binlog is unchanged"
    );

    // Replication still runs both ways.
    let from_1 = upload(&g, 1, b"after the attack, from 1", false);
    let from_0 = upload(&g, 0, b"after the attack, from 0", false);
    assert!(converges(
        &g,
        &[0, 1],
        &from_1,
        Some(b"after the attack, from 1")
    ));
    assert!(converges(
        &g,
        &[0, 1],
        &from_0,
        Some(b"after the attack, from 0")
    ));
}

#[test]
fn senders_skip_records_they_cannot_send() {
    // Issue #10 item 2: a binlog line no peer accepts (torn, garbage,
    // forged, or refused with EINVAL) is logged, counted and skipped; the
    // records after it still replicate, and a new member's full sync
    // still completes.
    let mut g = Group::start(2);
    assert!(all_active(&g, 2));
    let seed = upload(&g, 0, b"seed", false);
    assert!(converges(&g, &[0, 1], &seed, Some(b"seed")));
    let ts = now_secs();
    let name = seed.rsplit('/').next().unwrap();
    let junk = [
        b"garbage\n".to_vec(),
        format!("{ts} D x\n").into_bytes(),
        [format!("{ts} C M00/00/00/").as_bytes(), b"\xff\xfe\n"].concat(),
        [
            format!("{ts} C M00/00/00/").as_bytes(),
            &[b'A'; 5_000],
            b"\n",
        ]
        .concat(),
        // Well-formed, but no member has a store path 5: the peer answers
        // EINVAL to the SYNC_DELETE, for ever.
        format!("{ts} D M05/00/00/{name}\n").into_bytes(),
    ]
    .concat();
    for i in 0..2 {
        let path = g.store_path(i).join("data/sync/binlog.000");
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        std::io::Write::write_all(&mut f, &junk).unwrap();
    }
    let from_0 = upload(&g, 0, b"after the junk, from 0", false);
    let from_1 = upload(&g, 1, b"after the junk, from 1", false);
    assert!(
        converges(&g, &[0, 1], &from_0, Some(b"after the junk, from 0")),
        "member 0 stalled on its junk"
    );
    assert!(
        converges(&g, &[0, 1], &from_1, Some(b"after the junk, from 1")),
        "member 1 stalled on its junk"
    );
    let third = g.add_storage();
    assert!(
        all_active(&g, 3),
        "the new member's full sync did not finish"
    );
    assert!(converges(
        &g,
        &[third],
        &from_0,
        Some(b"after the junk, from 0")
    ));
    assert!(converges(
        &g,
        &[third],
        &from_1,
        Some(b"after the junk, from 1")
    ));
}

/// `fdfs monitor --tracker T sync group1`, as a user runs it.
fn monitor_sync(g: &Group) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args([
            "monitor",
            "--tracker",
            &g.tracker_addr.to_string(),
            "sync",
            "group1",
        ])
        .output()
        .expect("run fdfs monitor");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The lines of the `sync` report about the storage at `ip`: its own line
/// (two spaces in) and its detail lines (four spaces in).
fn storage_block(report: &str, ip: &str) -> String {
    let head = format!("  {ip}:");
    let mut lines = report.lines().skip_while(|l| !l.starts_with(&head));
    let Some(first) = lines.next() else {
        return String::new();
    };
    let mut block = vec![first];
    block.extend(lines.take_while(|l| l.starts_with("    ")));
    block.join("\n")
}

/// A modify whose range a later truncate cut away cannot be replayed from
/// the source's file as it is now: the sender used to skip it, and the
/// truncate then left the peer with the bytes from before the modify. The
/// sender now sends the whole file, and the members end identical.
#[test]
fn modify_then_truncate_while_a_member_is_down_converges() {
    use fdfs_client::StorageClient;
    let mut g = Group::start(2);
    assert!(all_active(&g, 2));
    let remote = upload(&g, 0, b"0123456789abcdefghij", true);
    assert!(converges(
        &g,
        &[0, 1],
        &remote,
        Some(b"0123456789abcdefghij")
    ));
    g.stop_storage(1);
    g.block_on(async {
        let mut c = conn(g.storage_addr(0)).await.unwrap();
        let mut s = StorageClient::new(&mut c);
        let mut patch: &[u8] = b"XXXXXXXX";
        s.modify(&remote, 4, &mut patch, 8).await.unwrap();
        s.truncate(&remote, 6).await.unwrap();
    });
    assert_eq!(download(&g, 0, &remote).as_deref(), Some(&b"0123XX"[..]));
    g.start_storage(1);
    assert!(
        converges(&g, &[0, 1], &remote, Some(b"0123XX")),
        "member 1 holds {:?}",
        download(&g, 1, &remote).map(|b| String::from_utf8_lossy(&b).into_owned())
    );
}
