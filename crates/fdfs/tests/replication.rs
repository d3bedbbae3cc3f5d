//! Replication inside a group: every change made on one storage reaches
//! every other member with identical bytes; a stopped member catches up when
//! it comes back; a new member gets a full copy and then turns ACTIVE.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use fdfs_client::{ClientError, Conn};
use fdfs_proto::stat::{storage_status, StorageStat};
use fdfs_proto::storage_msg::{AppendReq, DownloadReq, FileIdResp, SetMetaReq, UploadReq};
use fdfs_proto::tracker_msg::{GroupFileReq, GroupStorageReq};
use fdfs_proto::{StorageCmd, TrackerCmd};
use fdfs_testkit::group::Group;
use fdfs_testkit::wait_until;

const DEADLINE: Duration = Duration::from_secs(30);

async fn conn(addr: std::net::SocketAddr) -> Result<Conn, ClientError> {
    Conn::connect(
        &addr.to_string(),
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .await
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
}

#[test]
fn member_with_a_new_address_stays_the_same_member() {
    let mut g = Group::start(2);
    assert!(all_active(&g, 2));
    let before = upload(&g, 1, b"stored before the address change", false);
    assert!(converges(
        &g,
        &[0, 1],
        &before,
        Some(b"stored before the address change")
    ));
    let old_ip = g.storage_ip(1).to_string();
    g.stop_storage(1);
    // The tracker sees the old address go OFFLINE first, as after a crash.
    assert!(wait_until(DEADLINE, || storages(&g)
        .iter()
        .any(
            |s| s.ip_addr == old_ip && s.status == storage_status::OFFLINE
        )));
    let during = upload(&g, 0, b"written while member 1 was away", false);
    let new_ip = g.readdress_storage(1);
    g.start_storage(1);

    // One member under the new address, ACTIVE; no OFFLINE ghost left.
    assert!(
        all_active(&g, 2),
        "{:?}",
        storages(&g)
            .iter()
            .map(|s| (&s.ip_addr, s.status))
            .collect::<Vec<_>>()
    );
    let list = storages(&g);
    assert!(list.iter().any(|s| s.ip_addr == new_ip), "{list:?}");
    assert!(
        !list.iter().any(|s| s.ip_addr == old_ip),
        "old address still listed: {list:?}"
    );
    // Same data, same place in replication: it keeps its files, catches up
    // with what it missed, and replicates both ways.
    assert_eq!(
        download(&g, 1, &before).as_deref(),
        Some(&b"stored before the address change"[..])
    );
    assert!(converges(
        &g,
        &[1],
        &during,
        Some(b"written while member 1 was away")
    ));
    let after = upload(&g, 1, b"written at the new address", false);
    assert!(converges(
        &g,
        &[0, 1],
        &after,
        Some(b"written at the new address")
    ));
    let mark = g
        .store_path(0)
        .join(format!("data/sync/{new_ip}_{}.mark", g.port));
    assert!(mark.exists(), "the peer's mark file followed the address");
}
