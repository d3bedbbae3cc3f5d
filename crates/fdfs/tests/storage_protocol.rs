//! The storage's client protocol byte for byte (PROTOCOL.md §3), against a
//! real tracker + storage: success paths, the on-disk layout and binlog,
//! and every error status the original answers with.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use fdfs_client::{ClientError, Conn};
use fdfs_proto::fileid::{FileKind, RemoteName};
use fdfs_proto::storage_msg::*;
use fdfs_proto::tracker_msg::{FetchTargets, GroupFileReq, StoreTarget};
use fdfs_proto::{StorageCmd, TrackerCmd};
use fdfs_testkit::{connect, rt, Cluster, ClusterOptions};

const HELLO: &[u8] = b"Hello FastDFS\n";

fn status_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u8 {
    match r {
        Err(ClientError::Status(s)) => s.0,
        other => panic!("expected a status error, got {other:?}"),
    }
}

/// An upload body declaring `file_size` bytes and carrying `data`.
fn upload_req(store_path_index: i8, file_size: u64, ext: &str, data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    UploadReq {
        store_path_index,
        file_size,
        ext: ext.into(),
    }
    .encode_head(&mut b);
    b.put_slice(data);
    b.to_vec()
}

fn slave_req(master: &str, prefix: &str, ext: &str, data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    UploadSlaveReq {
        master: master.into(),
        file_size: data.len() as u64,
        prefix: prefix.into(),
        ext: ext.into(),
    }
    .encode_head(&mut b);
    b.put_slice(data);
    b.to_vec()
}

async fn upload(
    conn: &mut Conn,
    cmd: StorageCmd,
    data: &[u8],
    ext: &str,
) -> Result<FileIdResp, ClientError> {
    let body = upload_req(-1, data.len() as u64, ext, data);
    let answer = conn.call(cmd.into(), &body).await?;
    Ok(FileIdResp::decode(&answer)?)
}

fn group_file(group: &str, remote: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    GroupFileReq {
        group: group.into(),
        remote: remote.into(),
    }
    .encode(&mut b);
    b.to_vec()
}

/// A connection to the cluster's storage, and HELLO uploaded through it.
async fn hello_uploaded(cluster: &Cluster) -> (Conn, FileIdResp) {
    uploaded(cluster, StorageCmd::UploadFile, HELLO, "txt").await
}

/// A connection to the cluster's storage, and `data` uploaded through it.
async fn uploaded(
    cluster: &Cluster,
    cmd: StorageCmd,
    data: &[u8],
    ext: &str,
) -> (Conn, FileIdResp) {
    let mut s = connect(cluster.storage_addr).await;
    let up = upload(&mut s, cmd, data, ext).await.unwrap();
    (s, up)
}

/// A command whose body names a file of group1 (delete, metadata, info...).
async fn file_cmd(conn: &mut Conn, cmd: StorageCmd, remote: &str) -> Result<Vec<u8>, ClientError> {
    conn.call(cmd.into(), &group_file("group1", remote)).await
}

async fn get_meta(conn: &mut Conn, remote: &str) -> Vec<u8> {
    file_cmd(conn, StorageCmd::GetMetadata, remote)
        .await
        .unwrap()
}

async fn download(
    conn: &mut Conn,
    remote: &str,
    offset: i64,
    length: i64,
) -> Result<Vec<u8>, ClientError> {
    conn.call(
        StorageCmd::DownloadFile.into(),
        &download_req(remote, offset, length),
    )
    .await
}

/// The body of a DOWNLOAD_FILE of group1's `remote`.
fn download_req(remote: &str, offset: i64, length: i64) -> Vec<u8> {
    let mut b = BytesMut::new();
    DownloadReq {
        offset,
        length,
        group: "group1".into(),
        remote: remote.into(),
    }
    .encode(&mut b);
    b.to_vec()
}

#[test]
fn upload_download_info_delete_roundtrip() {
    let cluster = Cluster::start();
    rt().block_on(async {
        // The tracker hands out our storage, with the 40-byte IPv4 answer.
        let mut t = connect(cluster.tracker_addr).await;
        let target = StoreTarget::decode(
            &t.call(TrackerCmd::QueryStoreWithoutGroupOne.into(), &[])
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(target.group, "group1");
        assert_eq!(target.addr.port, cluster.storage_addr.port());

        let (mut s, up) = hello_uploaded(&cluster).await;
        assert_eq!(up.group, "group1");
        assert_eq!(
            up.remote.len(),
            44,
            "normal names are 44 bytes: {}",
            up.remote
        );
        assert!(up.remote.ends_with(".txt"));
        let name = RemoteName::parse(&up.remote, 1).unwrap();
        let rec = name.record().unwrap();
        assert_eq!(rec.source_ip_text(), "127.0.0.1");
        assert_eq!(rec.file_size(), Some(14));
        assert_eq!(rec.crc32, 0x37F9_6DAF);
        assert_eq!(name.kind(), FileKind::Normal);

        // On disk under <store>/data/HH/HH/<name>; binlog has `C <name>`.
        let on_disk = cluster.store_paths[0]
            .join("data")
            .join(name.relative_path());
        assert_eq!(std::fs::read(&on_disk).unwrap(), HELLO);
        let binlog =
            std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000")).unwrap();
        assert!(
            binlog.contains(&format!(" C {}\n", up.remote)),
            "binlog: {binlog}"
        );
        let ts: u32 = binlog
            .lines()
            .last()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            ts, rec.timestamp,
            "binlog timestamp is the name's timestamp"
        );

        // Download: whole, ranges, clamping (§3.6 verified table).
        assert_eq!(download(&mut s, &up.remote, 0, 0).await.unwrap(), HELLO);
        assert_eq!(
            download(&mut s, &up.remote, 2, 100).await.unwrap(),
            &HELLO[2..]
        );
        assert_eq!(
            download(&mut s, &up.remote, 13, 0).await.unwrap(),
            &HELLO[13..]
        );
        assert_eq!(
            download(&mut s, &up.remote, 5, 5).await.unwrap(),
            &HELLO[5..10]
        );
        assert_eq!(
            download(&mut s, &up.remote, 0, 1 << 40).await.unwrap(),
            HELLO
        );

        // Tracker fetch answer (102) is 39 bytes naming the storage.
        let fetch = t
            .call(
                TrackerCmd::QueryFetchOne.into(),
                &group_file("group1", &up.remote),
            )
            .await
            .unwrap();
        assert_eq!(fetch.len(), 39);
        assert_eq!(
            FetchTargets::decode(&fetch).unwrap().servers[0].port,
            cluster.storage_addr.port()
        );

        // QUERY_FILE_INFO: 40 bytes, CRC from the name, 16-byte IP field.
        let info = file_cmd(&mut s, StorageCmd::QueryFileInfo, &up.remote)
            .await
            .unwrap();
        assert_eq!(info.len(), 40);
        let info = FileInfoResp::decode(&info).unwrap();
        assert_eq!(
            (info.file_size, info.crc32, info.source_ip.as_str()),
            (14, 0x37F9_6DAF, "127.0.0.1")
        );
        assert_eq!(info.create_timestamp, i64::from(rec.timestamp));

        // Delete, then everything about the file is ENOENT (connection kept).
        file_cmd(&mut s, StorageCmd::DeleteFile, &up.remote)
            .await
            .unwrap();
        assert!(!on_disk.exists());
        assert_eq!(
            status_of(file_cmd(&mut s, StorageCmd::DeleteFile, &up.remote).await),
            2
        );
        assert_eq!(status_of(download(&mut s, &up.remote, 0, 0).await), 2);
        assert_eq!(
            status_of(file_cmd(&mut s, StorageCmd::QueryFileInfo, &up.remote).await),
            2
        );
        let binlog =
            std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000")).unwrap();
        assert!(binlog.contains(&format!(" D {}\n", up.remote)));
        // Still usable after ENOENT answers.
        s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
    });
}

#[test]
fn metadata_overwrite_merge_delete() {
    let cluster = Cluster::start();
    rt().block_on(async {
        let mut s = connect(cluster.storage_addr).await;
        let up = upload(&mut s, StorageCmd::UploadFile, b"image bytes", "jpg")
            .await
            .unwrap();
        let set = |flag: u8, meta: &[u8]| {
            let mut b = BytesMut::new();
            SetMetaReq {
                remote: up.remote.clone(),
                op_flag: flag,
                group: "group1".into(),
                meta: meta.to_vec(),
            }
            .encode(&mut b);
            b.to_vec()
        };
        // Unknown metadata → ENOENT before any is set.
        assert_eq!(
            status_of(file_cmd(&mut s, StorageCmd::GetMetadata, &up.remote).await),
            2
        );
        s.call(
            StorageCmd::SetMetadata.into(),
            &set(b'O', b"b\x021\x01a\x022"),
        )
        .await
        .unwrap();
        let got = get_meta(&mut s, &up.remote).await;
        assert_eq!(got, b"a\x022\x01b\x021", "records come back sorted");
        s.call(StorageCmd::SetMetadata.into(), &set(b'M', b"a\x029"))
            .await
            .unwrap();
        let got = get_meta(&mut s, &up.remote).await;
        assert_eq!(got, b"a\x029\x01b\x021");
        // Malformed records are dropped and never stored with leftovers.
        s.call(
            StorageCmd::SetMetadata.into(),
            &set(b'O', b"z\x02last\x01norecord\x01y\x02"),
        )
        .await
        .unwrap();
        let got = get_meta(&mut s, &up.remote).await;
        assert_eq!(got, b"y\x02\x01z\x02last");
        let name = RemoteName::parse(&up.remote, 1).unwrap();
        let meta_file = cluster.store_paths[0]
            .join("data")
            .join(format!("{}-m", name.relative_path()));
        assert_eq!(std::fs::read(&meta_file).unwrap(), got);
        // Overwrite with nothing deletes the metadata file.
        s.call(StorageCmd::SetMetadata.into(), &set(b'O', b""))
            .await
            .unwrap();
        assert!(!meta_file.exists());
        assert_eq!(
            status_of(file_cmd(&mut s, StorageCmd::GetMetadata, &up.remote).await),
            2
        );
        let binlog =
            std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000")).unwrap();
        let meta_ops: Vec<&str> = binlog
            .lines()
            .filter(|l| l.ends_with("-m"))
            .map(|l| l.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(meta_ops, ["C", "U", "U", "D"]);
        // A bad op flag is EINVAL and closes the connection.
        assert_eq!(
            status_of(
                s.call(StorageCmd::SetMetadata.into(), &set(b'X', b"a\x021"))
                    .await
            ),
            22
        );
        assert!(
            s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.is_err(),
            "EINVAL closes the connection"
        );
        // Delete removes the metadata too.
        let mut s = connect(cluster.storage_addr).await;
        s.call(StorageCmd::SetMetadata.into(), &set(b'O', b"k\x02v"))
            .await
            .unwrap();
        file_cmd(&mut s, StorageCmd::DeleteFile, &up.remote)
            .await
            .unwrap();
        assert!(!meta_file.exists());
    });
}

#[test]
fn appender_append_modify_truncate_regenerate() {
    let cluster = Cluster::start();
    rt().block_on(async {
        let mut s = connect(cluster.storage_addr).await;
        let up = upload(&mut s, StorageCmd::UploadAppenderFile, b"0123456789", "log")
            .await
            .unwrap();
        let name = RemoteName::parse(&up.remote, 1).unwrap();
        let rec = name.record().unwrap();
        assert!(rec.is_appender());
        assert_eq!(rec.size_field & 0xFFFF_FFFF, 0);
        assert_eq!(rec.crc32, fdfs_proto::crc32(b"0123456789"));
        assert_eq!(name.kind(), FileKind::Appender);

        let append = |data: &[u8]| append_req(&up.remote, data);
        // Append, and a 0-byte append is a no-op that answers an EMPTY body.
        assert!(s
            .call(StorageCmd::AppendFile.into(), &append(b"abcde"))
            .await
            .unwrap()
            .is_empty());
        assert!(s
            .call(StorageCmd::AppendFile.into(), &append(b""))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            download(&mut s, &up.remote, 0, 0).await.unwrap(),
            b"0123456789abcde"
        );

        let modify = |offset: i64, data: &[u8]| modify_req(&up.remote, offset, data);
        s.call(StorageCmd::ModifyFile.into(), &modify(2, b"XYZ"))
            .await
            .unwrap();
        s.call(StorageCmd::ModifyFile.into(), &modify(15, b"!!"))
            .await
            .unwrap();
        assert_eq!(
            download(&mut s, &up.remote, 0, 0).await.unwrap(),
            b"01XYZ56789abcde!!"
        );

        let truncate = |size: i64| {
            let mut b = BytesMut::new();
            TruncateReq {
                remote: up.remote.clone(),
                new_size: size,
            }
            .encode(&mut b);
            b.to_vec()
        };
        s.call(StorageCmd::TruncateFile.into(), &truncate(4))
            .await
            .unwrap();
        assert_eq!(download(&mut s, &up.remote, 0, 0).await.unwrap(), b"01XY");
        s.call(StorageCmd::TruncateFile.into(), &truncate(4))
            .await
            .unwrap();

        // Info of an appender computes the CRC of its content.
        let info = FileInfoResp::decode(
            &file_cmd(&mut s, StorageCmd::QueryFileInfo, &up.remote)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (info.file_size, info.crc32),
            (4, fdfs_proto::crc32(b"01XY"))
        );
        let info = FileInfoResp::decode(
            &s.call_with_status(
                StorageCmd::QueryFileInfo.into(),
                1,
                &group_file("group1", &up.remote),
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(info.crc32, 0, "flag 1 skips the CRC of appender files");

        let binlog =
            std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000")).unwrap();
        assert!(
            binlog.contains(&format!(" A {} 10 5\n", up.remote)),
            "{binlog}"
        );
        assert!(binlog.contains(&format!(" M {} 2 3\n", up.remote)));
        assert!(binlog.contains(&format!(" M {} 15 2\n", up.remote)));
        assert!(binlog.contains(&format!(" T {} 17 4\n", up.remote)));
        assert_eq!(
            binlog.matches(" A ").count(),
            1,
            "no-op append writes no binlog line"
        );

        // Modify past the end is EINVAL (connection closed).
        assert_eq!(
            status_of(
                s.call(StorageCmd::ModifyFile.into(), &modify(5, b"x"))
                    .await
            ),
            22
        );

        // Regenerate: same dir and ext7, normal name, old name gone.
        let mut s = connect(cluster.storage_addr).await;
        let regen = FileIdResp::decode(
            &s.call(
                StorageCmd::RegenerateAppenderFilename.into(),
                up.remote.as_bytes(),
            )
            .await
            .unwrap(),
        )
        .unwrap();
        let new = RemoteName::parse(&regen.remote, 1).unwrap();
        assert_eq!((new.dir1, new.dir2), (name.dir1, name.dir2));
        assert_eq!(&regen.remote[37..], &up.remote[37..], "ext7 is kept");
        let nrec = new.record().unwrap();
        assert!(!nrec.is_appender());
        assert_eq!(
            (nrec.file_size(), nrec.crc32),
            (Some(4), fdfs_proto::crc32(b"01XY"))
        );
        assert_eq!(
            download(&mut s, &regen.remote, 0, 0).await.unwrap(),
            b"01XY"
        );
        assert_eq!(status_of(download(&mut s, &up.remote, 0, 0).await), 2);
        let binlog =
            std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000")).unwrap();
        assert!(binlog.contains(&format!(" R {} {}\n", regen.remote, up.remote)));

        // Appending to a normal file is EINVAL; to a missing appender ENOENT.
        let mut s = connect(cluster.storage_addr).await;
        let b = append_req(&regen.remote, b"x");
        assert_eq!(
            status_of(s.call(StorageCmd::AppendFile.into(), &b).await),
            22
        );
        let mut s = connect(cluster.storage_addr).await;
        assert_eq!(
            status_of(s.call(StorageCmd::AppendFile.into(), &append(b"zz")).await),
            2
        );
        s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
    });
}

#[test]
fn slave_files() {
    let cluster = Cluster::start();
    rt().block_on(async {
        let mut s = connect(cluster.storage_addr).await;
        let master = upload(&mut s, StorageCmd::UploadFile, b"master image", "jpg")
            .await
            .unwrap();
        let slave = FileIdResp::decode(
            &s.call(
                StorageCmd::UploadSlaveFile.into(),
                &slave_req(&master.remote, "_150x150", "jpg", b"slave data!\n"),
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            slave.remote,
            format!("{}_150x150.jpg", &master.remote[..40])
        );
        assert_eq!(
            RemoteName::parse(&slave.remote, 1).unwrap().kind(),
            FileKind::Slave
        );
        assert_eq!(
            download(&mut s, &slave.remote, 0, 0).await.unwrap(),
            b"slave data!\n"
        );
        let info = FileInfoResp::decode(
            &file_cmd(&mut s, StorageCmd::QueryFileInfo, &slave.remote)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (info.file_size, info.crc32),
            (12, fdfs_proto::crc32(b"slave data!\n"))
        );
        // Same slave again → EEXIST, connection kept.
        assert_eq!(
            status_of(
                s.call(
                    StorageCmd::UploadSlaveFile.into(),
                    &slave_req(&master.remote, "_150x150", "jpg", b"again")
                )
                .await
            ),
            17
        );
        // Unknown master → ENOENT, connection kept; even a short name.
        assert_eq!(
            status_of(
                s.call(
                    StorageCmd::UploadSlaveFile.into(),
                    &slave_req("M00/00/00/nonexistent.jpg", "_s", "jpg", b"x")
                )
                .await
            ),
            2
        );
        // Slave without extension.
        let bare = FileIdResp::decode(
            &s.call(
                StorageCmd::UploadSlaveFile.into(),
                &slave_req(&master.remote, "_s", "", b"y"),
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(bare.remote, format!("{}_s", &master.remote[..40]));
        // Empty prefix → EINVAL.
        assert_eq!(
            status_of(
                s.call(
                    StorageCmd::UploadSlaveFile.into(),
                    &slave_req(&master.remote, "", "jpg", b"z")
                )
                .await
            ),
            22
        );
    });
}

#[test]
fn malformed_requests_get_the_original_statuses() {
    let cluster = Cluster::start();
    rt().block_on(async {
        let (_conn, up) = hello_uploaded(&cluster).await;

        // Each case: (cmd, status byte, body) → expected status; EINVAL closes.
        let lower = format!("{}0a{}", &up.remote[..7], &up.remote[9..]);
        let cases: Vec<(u8, Vec<u8>, u8)> = vec![
            (200, vec![], 22),                                // unknown command
            (fdfs_proto::CMD_ACTIVE_TEST, vec![1, 2, 3], 22), // active test with a body
            (
                StorageCmd::DeleteFile.into(),
                group_file("nogroup", &up.remote),
                22,
            ),
            (
                StorageCmd::DeleteFile.into(),
                group_file("group1", &lower),
                22,
            ),
            (
                StorageCmd::DeleteFile.into(),
                group_file("group1", "M05/00/00/abc"),
                22,
            ),
            (
                StorageCmd::DeleteFile.into(),
                group_file("group1", "M00/00/00/a/b"),
                22,
            ),
            (
                StorageCmd::DeleteFile.into(),
                group_file("group1", "M00/00/00"),
                22,
            ),
            (
                StorageCmd::DeleteFile.into(),
                group_file("group1", &"x".repeat(300_000)),
                22,
            ), // crashes the original
            (
                StorageCmd::DownloadFile.into(),
                download_req(&up.remote, 14, 0),
                22,
            ),
            (
                StorageCmd::DownloadFile.into(),
                download_req(&up.remote, -1, 0),
                22,
            ),
            (StorageCmd::DownloadFile.into(), vec![0u8; 32], 22),
            (StorageCmd::UploadFile.into(), vec![0u8; 14], 22), // 14-byte body
            (
                StorageCmd::UploadFile.into(),
                upload_req(-1, 5, "txt", b"abc"),
                22,
            ), // size mismatch
            (
                StorageCmd::UploadFile.into(),
                upload_req(-1, 1, "a b", b"x"),
                22,
            ), // bad extension
            (
                StorageCmd::UploadFile.into(),
                upload_req(1, 1, "txt", b"x"),
                22,
            ), // path index out of range
            (
                StorageCmd::QueryFileInfo.into(),
                group_file("group1", &format!("M00/00/00/{}", "A".repeat(122))),
                22,
            ),
            (
                StorageCmd::QueryFileInfo.into(),
                group_file("group1", "M00/00/00/fwAAAWsAAAAAAAAAAAAAAAAAAAA109.txt"),
                2,
            ),
            (
                StorageCmd::GetMetadata.into(),
                group_file("group1", "M00/00/00/fwAAAWsAAAAAAAAAAAAAAAAAAAA109.txt"),
                2,
            ),
        ];
        for (cmd, body, expected) in cases {
            let mut c = connect(cluster.storage_addr).await;
            let got = status_of(c.call(cmd, &body).await);
            assert_eq!(got, expected, "cmd {cmd} body {} bytes", body.len());
            let alive = c.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.is_ok();
            assert_eq!(
                alive,
                expected != 22,
                "cmd {cmd}: EINVAL and only EINVAL closes"
            );
        }

        // A 0-byte file uploads (size 0, CRC 0) but cannot be downloaded.
        let mut s = connect(cluster.storage_addr).await;
        let empty = upload(&mut s, StorageCmd::UploadFile, b"", "")
            .await
            .unwrap();
        let rec = RemoteName::parse(&empty.remote, 1)
            .unwrap()
            .record()
            .unwrap();
        assert_eq!((rec.file_size(), rec.crc32), (Some(0), 0));
        assert_eq!(status_of(download(&mut s, &empty.remote, 0, 0).await), 22);

        // A body shorter than announced, then the client half-closes: the
        // storage closes without an answer.
        let mut raw = tokio::net::TcpStream::connect(cluster.storage_addr)
            .await
            .unwrap();
        let mut b = BytesMut::new();
        fdfs_proto::Header::new(StorageCmd::DeleteFile.into(), 100).encode(&mut b);
        b.put_slice(b"group1\0\0\0\0");
        raw.write_all(&b).await.unwrap();
        raw.shutdown().await.unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(
            raw.read(&mut buf).await.unwrap(),
            0,
            "closed without a response"
        );

        // Negative pkg_len: closed without an answer.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(cluster.storage_addr)
            .await
            .unwrap();
        raw.write_all(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 11, 0])
            .await
            .unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(
            raw.read(&mut buf).await.unwrap(),
            0,
            "closed without a response"
        );
    });
}

#[test]
fn full_disk_answers_enospc_and_writes_nothing() {
    // A reserve no disk satisfies: the tracker refuses to hand out a
    // storage, and a direct upload gets status 28 with nothing written.
    let cluster = Cluster::start_with(ClusterOptions {
        reserved_storage_space: fdfs_config::ReservedSpace::Ratio(0.9999),
        ..Default::default()
    });
    rt().block_on(async {
        let mut t = connect(cluster.tracker_addr).await;
        assert_eq!(
            status_of(
                t.call(TrackerCmd::QueryStoreWithoutGroupOne.into(), &[])
                    .await
            ),
            28
        );
        let mut s = connect(cluster.storage_addr).await;
        assert_eq!(
            status_of(upload(&mut s, StorageCmd::UploadFile, &[7u8; 100_000], "bin").await),
            28
        );
        // Connection still in sync after the drained body.
        s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
        let binlog = std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000"))
            .unwrap_or_default();
        assert!(!binlog.contains(" C "), "nothing written: {binlog}");
        let tmp = cluster.store_paths[0].join("data/.tmp");
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    });
}

#[test]
fn load_balance_moves_uploads_off_a_full_path() {
    // store_path = 2 on the tracker: with path 0 read-only, every upload
    // requested for path 0 lands on path 1.
    let cluster = Cluster::start_with(ClusterOptions {
        store_path_count: 2,
        tweak_tracker: Box::new(|t| t.store_path = 2),
        tweak_storage: Box::new(|s| s.store_paths_readonly = vec![true, false]),
        ..Default::default()
    });
    rt().block_on(async {
        let mut s = connect(cluster.storage_addr).await;
        for _ in 0..3 {
            let b = upload_req(0, 3, "txt", b"abc");
            let up = FileIdResp::decode(&s.call(StorageCmd::UploadFile.into(), &b).await.unwrap())
                .unwrap();
            assert!(up.remote.starts_with("M01/"), "{}", up.remote);
            assert_eq!(download(&mut s, &up.remote, 0, 0).await.unwrap(), b"abc");
        }
    });
}

#[test]
fn interrupted_upload_leaves_no_file() {
    let cluster = Cluster::start();
    rt().block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut raw = tokio::net::TcpStream::connect(cluster.storage_addr)
            .await
            .unwrap();
        let mut b = BytesMut::new();
        fdfs_proto::Header::new(StorageCmd::UploadFile.into(), 15 + 1_000_000).encode(&mut b);
        b.put_slice(&upload_req(-1, 1_000_000, "bin", &[1u8; 300_000]));
        raw.write_all(&b).await.unwrap();
        drop(raw); // the client dies mid-upload
        let tmp = cluster.store_paths[0].join("data/.tmp");
        assert!(fdfs_testkit::wait_until(Duration::from_secs(5), || {
            std::fs::read_dir(&tmp)
                .map(|d| d.count() == 0)
                .unwrap_or(false)
        }));
        let binlog = std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000"))
            .unwrap_or_default();
        assert!(binlog.is_empty(), "no file was created: {binlog}");
    });
}

#[test]
fn access_log_in_original_format() {
    let cluster = Cluster::start_with(ClusterOptions {
        tweak_storage: Box::new(|s| s.access_log_enabled = true),
        ..Default::default()
    });
    let remote = rt().block_on(async {
        let (mut s, up) = hello_uploaded(&cluster).await;
        download(&mut s, &up.remote, 0, 0).await.unwrap();
        file_cmd(&mut s, StorageCmd::DeleteFile, &up.remote)
            .await
            .unwrap();
        assert_eq!(status_of(download(&mut s, &up.remote, 0, 0).await), 2);
        s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
        up.remote
    });
    let path = cluster.storage_base.join("logs/storage_access.log");
    let mut text = String::new();
    assert!(
        fdfs_testkit::wait_until(Duration::from_secs(5), || {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            text.lines().count() >= 5
        }),
        "access log: {text}"
    );
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        &lines[0][2..],
        [
            "client_ip",
            "action",
            "filename",
            "status",
            "time_used_ms",
            "req_len",
            "resp_len"
        ]
    );
    // [date time.mmm] ip action filename status time_used req_len resp_len
    let row = |i: usize| {
        lines[i][2..]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        lines[1][1].ends_with(']') && lines[1][1].len() == 13,
        "{:?}",
        lines[1]
    );
    let upload_row = row(1);
    assert_eq!(
        &upload_row[..4],
        ["127.0.0.1", "upload", remote.as_str(), "0"]
    );
    assert_eq!(upload_row[5], (10 + 15 + 14).to_string());
    assert_eq!(upload_row[6], (10 + 16 + 44).to_string());
    let download_row = row(2);
    assert_eq!(
        &download_row[..4],
        ["127.0.0.1", "download", remote.as_str(), "0"]
    );
    assert_eq!(download_row[6], (10 + 14).to_string());
    assert_eq!(&row(3)[..4], ["127.0.0.1", "delete", remote.as_str(), "0"]);
    assert_eq!(
        &row(4)[..4],
        ["127.0.0.1", "download", remote.as_str(), "2"]
    );
    assert_eq!(lines.len(), 5, "active test is not logged");
}

// ---- issue #10: attacks on a running storage -----------------------------

/// The file of `remote` in the cluster's first store path.
fn disk_path(cluster: &Cluster, remote: &str) -> std::path::PathBuf {
    cluster.store_paths[0]
        .join("data")
        .join(RemoteName::parse(remote, 1).unwrap().relative_path())
}

fn set_meta(remote: &str, flag: u8, meta: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    SetMetaReq {
        remote: remote.into(),
        op_flag: flag,
        group: "group1".into(),
        meta: meta.to_vec(),
    }
    .encode(&mut b);
    b.to_vec()
}

fn append_req(remote: &str, data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    AppendReq {
        remote: remote.into(),
        length: data.len() as u64,
    }
    .encode_head(&mut b);
    b.put_slice(data);
    b.to_vec()
}

fn modify_req(remote: &str, offset: i64, data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    ModifyReq {
        remote: remote.into(),
        offset,
        length: data.len() as u64,
    }
    .encode_head(&mut b);
    b.put_slice(data);
    b.to_vec()
}

fn truncate_req(remote: &str, size: i64) -> Vec<u8> {
    let mut b = BytesMut::new();
    TruncateReq {
        remote: remote.into(),
        new_size: size,
    }
    .encode(&mut b);
    b.to_vec()
}

/// Status of one request on a fresh connection (EINVAL closes it).
async fn status_alone(cluster: &Cluster, cmd: StorageCmd, body: &[u8]) -> u8 {
    let mut c = connect(cluster.storage_addr).await;
    status_of(c.call(cmd.into(), body).await)
}

#[test]
fn metadata_files_are_not_data_files() {
    // Item 8: `<name>-m` is no data file for any client command; the
    // metadata stays reachable through the data file's own name.
    let cluster = Cluster::start();
    rt().block_on(async {
        let (mut s, up) = hello_uploaded(&cluster).await;
        let app = upload(&mut s, StorageCmd::UploadAppenderFile, b"0123", "log")
            .await
            .unwrap();
        for r in [&up.remote, &app.remote] {
            s.call(
                StorageCmd::SetMetadata.into(),
                &set_meta(r, b'O', b"k\x02v"),
            )
            .await
            .unwrap();
        }
        let meta = format!("{}-m", up.remote);
        let app_meta = format!("{}-m", app.remote);
        let meta_file = disk_path(&cluster, &meta);
        assert_eq!(std::fs::read(&meta_file).unwrap(), b"k\x02v");

        assert_eq!(status_of(download(&mut s, &meta, 0, 0).await), 2);
        let slave = slave_req(&meta, "_s", "txt", b"x");
        let cases: Vec<(StorageCmd, Vec<u8>)> = vec![
            (StorageCmd::QueryFileInfo, group_file("group1", &meta)),
            (StorageCmd::GetMetadata, group_file("group1", &meta)),
            (StorageCmd::SetMetadata, set_meta(&meta, b'O', b"x\x02y")),
            (StorageCmd::DeleteFile, group_file("group1", &meta)),
            (StorageCmd::UploadSlaveFile, slave.to_vec()),
            (
                StorageCmd::RegenerateAppenderFilename,
                app_meta.clone().into_bytes(),
            ),
            (StorageCmd::AppendFile, append_req(&app_meta, b"abc")),
            (StorageCmd::ModifyFile, modify_req(&app_meta, 0, b"abc")),
            (StorageCmd::TruncateFile, truncate_req(&app_meta, 1 << 30)),
        ];
        for (cmd, body) in cases {
            assert_eq!(
                status_of(s.call(cmd.into(), &body).await),
                2,
                "{cmd:?} on a -m name"
            );
        }
        // Nothing changed, the connection is still in step, and the
        // metadata is still there for the data file.
        assert_eq!(std::fs::read(&meta_file).unwrap(), b"k\x02v");
        assert_eq!(
            std::fs::read(disk_path(&cluster, &app_meta)).unwrap(),
            b"k\x02v"
        );
        s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
        assert_eq!(
            file_cmd(&mut s, StorageCmd::GetMetadata, &up.remote)
                .await
                .unwrap(),
            b"k\x02v"
        );
    });
}

#[test]
fn only_a_whole_appender_name_is_an_appender() {
    // Item 3: `<appender>-m` and slaves of an appender share its first 27
    // characters (and so its appender flag) but are not appenders.
    let cluster = Cluster::start();
    rt().block_on(async {
        let (mut s, app) = uploaded(&cluster, StorageCmd::UploadAppenderFile, b"0123", "log").await;
        s.call(
            StorageCmd::SetMetadata.into(),
            &set_meta(&app.remote, b'O', b"k\x02v"),
        )
        .await
        .unwrap();
        let b = slave_req(&app.remote, "_s", "log", b"slave");
        let slave = FileIdResp::decode(
            &s.call(StorageCmd::UploadSlaveFile.into(), &b)
                .await
                .unwrap(),
        )
        .unwrap()
        .remote;
        let meta = format!("{}-m", app.remote);
        let meta_file = disk_path(&cluster, &meta);

        // The -m file: not even a data file (ENOENT, connection kept).
        for (cmd, body) in [
            (StorageCmd::TruncateFile, truncate_req(&meta, 1 << 30)),
            (StorageCmd::AppendFile, append_req(&meta, b"more")),
            (StorageCmd::ModifyFile, modify_req(&meta, 0, b"XY")),
        ] {
            assert_eq!(status_alone(&cluster, cmd, &body).await, 2, "{cmd:?}");
        }
        assert_eq!(std::fs::metadata(&meta_file).unwrap().len(), 3);
        // The slave: a data file, but no appender (EINVAL, as for a
        // normal file).
        for (cmd, body) in [
            (StorageCmd::TruncateFile, truncate_req(&slave, 1 << 30)),
            (StorageCmd::AppendFile, append_req(&slave, b"more")),
            (StorageCmd::ModifyFile, modify_req(&slave, 0, b"XY")),
            (
                StorageCmd::RegenerateAppenderFilename,
                slave.clone().into_bytes(),
            ),
        ] {
            assert_eq!(status_alone(&cluster, cmd, &body).await, 22, "{cmd:?}");
        }
        assert_eq!(
            std::fs::read(disk_path(&cluster, &slave)).unwrap(),
            b"slave"
        );
        // The appender itself still works.
        let mut s = connect(cluster.storage_addr).await;
        s.call(
            StorageCmd::AppendFile.into(),
            &append_req(&app.remote, b"45"),
        )
        .await
        .unwrap();
        assert_eq!(
            download(&mut s, &app.remote, 0, 0).await.unwrap(),
            b"012345"
        );
    });
}

/// Peak resident memory of this process (the servers run in it), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn oversized_metadata_is_refused_without_loading_it() {
    // Item 3: a `-m` file grown on disk (TRUNCATE used to do it) is
    // answered with an error instead of being read into memory whole.
    const GROWN_META_BYTES: u64 = 2 << 30;
    let cluster = Cluster::start();
    rt().block_on(async {
        let (mut s, up) = hello_uploaded(&cluster).await;
        s.call(
            StorageCmd::SetMetadata.into(),
            &set_meta(&up.remote, b'O', b"k\x02v"),
        )
        .await
        .unwrap();
        let meta_file = disk_path(&cluster, &format!("{}-m", up.remote));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&meta_file)
            .unwrap()
            .set_len(GROWN_META_BYTES)
            .unwrap();
        let rss_before = peak_rss_kib();
        let get = group_file("group1", &up.remote);
        match s.call(StorageCmd::GetMetadata.into(), &get).await {
            Err(ClientError::Status(st)) => assert_eq!(st.0, 28),
            Ok(body) => panic!("GET_METADATA answered {} bytes", body.len()),
            Err(e) => panic!("GET_METADATA failed: {e}"),
        }
        // A merge would have to read it too.
        assert_eq!(
            status_of(
                s.call(
                    StorageCmd::SetMetadata.into(),
                    &set_meta(&up.remote, b'M', b"a\x02b")
                )
                .await
            ),
            28
        );
        assert_eq!(
            std::fs::metadata(&meta_file).unwrap().len(),
            GROWN_META_BYTES
        );
        let grown_kib = peak_rss_kib().saturating_sub(rss_before);
        assert!(
            grown_kib < (GROWN_META_BYTES / 1024) / 4,
            "peak RSS grew by {grown_kib} KiB"
        );
        // An overwrite replaces it; the connection was kept throughout.
        s.call(
            StorageCmd::SetMetadata.into(),
            &set_meta(&up.remote, b'O', b"a\x02b"),
        )
        .await
        .unwrap();
        assert_eq!(
            s.call(StorageCmd::GetMetadata.into(), &get).await.unwrap(),
            b"a\x02b"
        );
    });
}

#[test]
fn file_scans_do_not_stall_the_storage() {
    // Item 4: QUERY_FILE_INFO of an appender and REGENERATE compute the
    // CRC32 of the whole file. On a huge sparse appender that takes many
    // seconds (about 20 s per 8 GiB on the 2-CPU CI host), and while
    // several run the storage must still answer at once.
    const SPARSE_APPENDER_BYTES: u64 = 1 << 40;
    const SCANS: usize = 5;
    // Far below the time one scan of the file takes.
    const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
    const PROBE_WINDOW: Duration = Duration::from_secs(3);
    let cluster = Cluster::start();
    rt().block_on(async {
        let mut s = connect(cluster.storage_addr).await;
        let app = upload(&mut s, StorageCmd::UploadAppenderFile, b"0123", "bin")
            .await
            .unwrap();
        let normal = upload(&mut s, StorageCmd::UploadFile, HELLO, "txt")
            .await
            .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(disk_path(&cluster, &app.remote))
            .unwrap()
            .set_len(SPARSE_APPENDER_BYTES)
            .unwrap();
        let mut scans = Vec::new();
        for i in 0..SCANS {
            let mut c = connect(cluster.storage_addr).await;
            if i % 2 == 0 {
                c.send(
                    StorageCmd::QueryFileInfo.into(),
                    0,
                    &group_file("group1", &app.remote),
                )
                .await
                .unwrap();
            } else {
                c.send(
                    StorageCmd::RegenerateAppenderFilename.into(),
                    0,
                    app.remote.as_bytes(),
                )
                .await
                .unwrap();
            }
            scans.push(c);
        }
        let window = std::time::Instant::now() + PROBE_WINDOW;
        let mut probes = 0;
        while probes < 3 || std::time::Instant::now() < window {
            let probe = tokio::time::timeout(ANSWER_DEADLINE, async {
                let mut c = connect(cluster.storage_addr).await;
                c.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await?;
                download(&mut c, &normal.remote, 0, 0).await
            })
            .await;
            assert!(
                matches!(&probe, Ok(Ok(body)) if body == HELLO),
                "probe {probes} not answered within {ANSWER_DEADLINE:?}: {probe:?}"
            );
            probes += 1;
        }
        // The scans were in flight all along: none has answered yet.
        for c in &mut scans {
            let answer = tokio::time::timeout(Duration::from_millis(20), c.recv_header()).await;
            assert!(answer.is_err(), "a scan finished early: {answer:?}");
        }
    });
    // Dropping the cluster stops the scans (EINTR) instead of waiting.
}

#[test]
fn regenerate_of_a_multibyte_name_is_einval() {
    // Item 6: REGENERATE used to slice the name inside a UTF-8 character
    // and panic. The file exists, so only the name check can refuse it.
    let cluster = Cluster::start();
    rt().block_on(async {
        let (_s, app) = uploaded(&cluster, StorageCmd::UploadAppenderFile, b"0123", "log").await;
        let (dir, name) = app.remote.split_at(10);
        let odd = format!("{dir}{}\u{e9}\u{e9}\u{e9}\u{e9}", &name[..27]);
        let odd_path = disk_path(&cluster, &app.remote).with_file_name(&odd[10..]);
        std::fs::copy(disk_path(&cluster, &app.remote), &odd_path).unwrap();
        assert_eq!(
            status_alone(
                &cluster,
                StorageCmd::RegenerateAppenderFilename,
                odd.as_bytes()
            )
            .await,
            22
        );
        assert_eq!(std::fs::read(&odd_path).unwrap(), b"0123");
        let mut s = connect(cluster.storage_addr).await;
        s.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await.unwrap();
    });
}

#[test]
fn overlong_names_answer_einval() {
    // Item 9: a 5,000-character name is EINVAL (22), as in the original,
    // not ENAMETOOLONG (36) from the file system.
    let cluster = Cluster::start();
    rt().block_on(async {
        let long = format!("M00/00/00/{}", "x".repeat(5_000));
        for (cmd, body) in [
            (StorageCmd::DownloadFile, download_req(&long, 0, 0)),
            (StorageCmd::DeleteFile, group_file("group1", &long)),
            (StorageCmd::GetMetadata, group_file("group1", &long)),
            (StorageCmd::QueryFileInfo, group_file("group1", &long)),
        ] {
            assert_eq!(status_alone(&cluster, cmd, &body).await, 22, "{cmd:?}");
        }
    });
}
