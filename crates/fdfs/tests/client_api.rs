//! The high-level `fdfs_client::Client` against a real tracker + storage:
//! uploads (buffer, streamed file, appender, slave) with metadata,
//! downloads, file info, metadata merge/overwrite, appender operations,
//! tracker queries and statistics, connection pooling, tracker failover
//! and network timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fdfs_client::{Client, ClientError, ClientOptions, UploadKind, UploadOptions};
use fdfs_config::TrackerAddr;
use fdfs_proto::fileid::{slave_remote_name, FileKind};
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::stat::{storage_status, StorageStat};
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::FileId;
use fdfs_testkit::{drop_from_page_cache, py3fdfs_download_check, rt, wait_until, Cluster};

const HELLO: &[u8] = b"Hello FastDFS\n";
const HELLO_CRC32: u32 = 0x37F9_6DAF;
const DEADLINE: Duration = Duration::from_secs(20);

fn tracker_addr(addr: SocketAddr) -> TrackerAddr {
    addr.to_string().parse().unwrap()
}

fn options(trackers: &[SocketAddr]) -> ClientOptions {
    ClientOptions {
        trackers: trackers.iter().map(|a| tracker_addr(*a)).collect(),
        connect_timeout: Duration::from_secs(5),
        network_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn client(cluster: &Cluster) -> Client {
    Client::new(options(&[cluster.tracker_addr])).unwrap()
}

fn meta(pairs: &[(&str, &str)]) -> Vec<MetaPair> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Deterministic pseudo-random bytes (xorshift), so content mix-ups show.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn errno_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u8 {
    r.expect_err("expected an error").errno()
}

/// A port nothing listens on (bound, then released).
fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[test]
fn upload_buffer_and_download_whole_range_and_to_file() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let opts = UploadOptions {
            ext: Some("txt".into()),
            metadata: meta(&[("width", "160"), ("author", "me")]),
            ..Default::default()
        };
        let id = c.upload_buffer(HELLO, &opts).await.unwrap();
        assert_eq!(id.group, "group1");
        assert_eq!(id.remote.len(), 44, "{id}");
        assert!(id.remote.starts_with("M00/"), "{id}");
        assert!(id.remote.ends_with(".txt"), "{id}");

        // Whole, range, tail and to-file downloads.
        assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), HELLO);
        assert_eq!(c.download_to_vec(&id, 6, 7).await.unwrap(), b"FastDFS");
        assert_eq!(c.download_to_vec(&id, 6, 0).await.unwrap(), b"FastDFS\n");
        let local = dir.path().join("hello.down");
        assert_eq!(c.download_to_file(&id, &local, 0, 0).await.unwrap(), 14);
        assert_eq!(std::fs::read(&local).unwrap(), HELLO);
        // Offset past the end is refused (EINVAL) and creates no file.
        let past = dir.path().join("past.down");
        assert_eq!(errno_of(c.download_to_file(&id, &past, 20, 0).await), 22);
        assert!(!past.exists(), "no local file for a refused download");

        // Metadata given at upload time, sorted by name like the C server.
        assert_eq!(
            c.get_metadata(&id).await.unwrap(),
            meta(&[("author", "me"), ("width", "160")])
        );

        // Local decode of the name.
        let info = c.file_info(&id, false, 0).await.unwrap();
        assert_eq!(info.file_type, FileKind::Normal);
        assert_eq!(info.source_id, 0);
        assert_eq!(info.source_ip, "127.0.0.1");
        assert_eq!(info.file_size, 14);
        assert_eq!(info.crc32, HELLO_CRC32);
        assert!(!info.get_from_server);
        assert!((info.create_timestamp - now()).abs() < 60, "{info:?}");
        // A normal file is never asked from the server.
        let again = c.file_info(&id, true, 0).await.unwrap();
        assert_eq!(again, info);
        // The server agrees with the name.
        let srv = c.query_file_info(&id, 0).await.unwrap();
        assert_eq!(srv.file_size, 14);
        assert_eq!(srv.crc32, HELLO_CRC32);
        assert_eq!(srv.source_ip, "127.0.0.1");
        assert_eq!(srv.create_timestamp, info.create_timestamp);

        // Upload with an explicit group (tracker cmd 104); unknown group.
        let in_group = UploadOptions {
            group: Some("group1".into()),
            ..Default::default()
        };
        let id2 = c.upload_buffer(b"grouped", &in_group).await.unwrap();
        assert_eq!(id2.group, "group1");
        // Without an extension the name is padded with digits to 44.
        assert_eq!(id2.remote.len(), 44, "{id2}");
        assert!(
            id2.remote[37..].bytes().all(|b| b.is_ascii_digit()),
            "{id2}"
        );
        assert_eq!(c.download_to_vec(&id2, 0, 0).await.unwrap(), b"grouped");
        let nogroup = UploadOptions {
            group: Some("nogroup".into()),
            ..Default::default()
        };
        assert_eq!(errno_of(c.upload_buffer(b"x", &nogroup).await), 2);
    });
}

#[test]
fn a_file_out_of_the_page_cache_downloads_whole_and_in_ranges() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    // More than one of the storage's 256 KiB disk reads.
    let data = pattern(600_000, 7);
    let id = rt().block_on(async {
        let id = c
            .upload_buffer(&data, &UploadOptions::default())
            .await
            .unwrap();
        for (offset, len) in [(0, 0), (262_000, 5_000), (599_990, 0), (1, 524_288)] {
            drop_from_page_cache(&cluster.store_paths[0], &id.remote);
            let got = c.download_to_vec(&id, offset, len).await.unwrap();
            let end = if len == 0 {
                data.len()
            } else {
                (offset + len) as usize
            };
            assert!(
                got == data[offset as usize..end],
                "bytes {offset}+{len} differ"
            );
        }
        id
    });

    // The independent client reads it from the disk as well.
    drop_from_page_cache(&cluster.store_paths[0], &id.remote);
    py3fdfs_download_check(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/py3fdfs_download_check.py"
        ),
        cluster.tracker_addr,
        &[(id.to_string(), crc32fast::hash(&data))],
    );
}

#[test]
fn streamed_upload_of_a_3_mib_file() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 * 1024 * 1024 + 17, 42);
    let local = dir.path().join("big.tar.gz");
    std::fs::write(&local, &data).unwrap();
    rt().block_on(async {
        let opts = UploadOptions {
            metadata: meta(&[("kind", "big")]),
            ..Default::default()
        };
        let id = c.upload_file(&local, &opts).await.unwrap();
        assert!(id.remote.ends_with(".tar.gz"), "double extension: {id}");
        let info = c.file_info(&id, false, 0).await.unwrap();
        assert_eq!(info.file_size, data.len() as i64);
        assert_eq!(info.crc32, crc32fast::hash(&data));

        let out = dir.path().join("big.down");
        let n = c.download_to_file(&id, &out, 0, 0).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(std::fs::read(&out).unwrap() == data, "content differs");
        // A range across a 256 KiB streaming chunk boundary, and the tail.
        let mid = c.download_to_vec(&id, 262_000, 10_000).await.unwrap();
        assert!(mid == data[262_000..272_000], "range content differs");
        let tail = c
            .download_to_vec(&id, data.len() as u64 - 100, 0)
            .await
            .unwrap();
        assert!(tail == data[data.len() - 100..], "tail differs");
        assert_eq!(c.get_metadata(&id).await.unwrap(), meta(&[("kind", "big")]));
    });
}

#[test]
fn metadata_overwrite_and_merge() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    rt().block_on(async {
        let id = c.upload_buffer(HELLO, &Default::default()).await.unwrap();
        // No metadata file yet: ENOENT, as the C storage answers (§3.5).
        assert_eq!(errno_of(c.get_metadata(&id).await), 2);
        c.set_metadata(
            &id,
            &meta(&[("width", "160"), ("height", "80"), ("ext_name", "jpg")]),
            MetaOp::Overwrite,
        )
        .await
        .unwrap();
        assert_eq!(
            c.get_metadata(&id).await.unwrap(),
            meta(&[("ext_name", "jpg"), ("height", "80"), ("width", "160")])
        );
        // Merge: new names added, existing ones replaced, others kept.
        c.set_metadata(
            &id,
            &meta(&[("color", "red"), ("width", "320")]),
            MetaOp::Merge,
        )
        .await
        .unwrap();
        assert_eq!(
            c.get_metadata(&id).await.unwrap(),
            meta(&[
                ("color", "red"),
                ("ext_name", "jpg"),
                ("height", "80"),
                ("width", "320")
            ])
        );
        // Overwrite replaces everything.
        c.set_metadata(&id, &meta(&[("only", "one")]), MetaOp::Overwrite)
            .await
            .unwrap();
        assert_eq!(c.get_metadata(&id).await.unwrap(), meta(&[("only", "one")]));
        // Metadata of a file that does not exist.
        let missing = FileId::new("group1", format!("{}x", &id.remote[..43]));
        assert_eq!(errno_of(c.get_metadata(&missing).await), 2);
        assert_eq!(
            errno_of(
                c.set_metadata(&missing, &meta(&[("a", "1")]), MetaOp::Merge)
                    .await
            ),
            2
        );
    });
}

#[test]
fn appender_append_modify_truncate_regenerate() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let opts = UploadOptions {
            kind: UploadKind::Appender,
            ext: Some("log".into()),
            ..Default::default()
        };
        let id = c.upload_buffer(b"appender-part1\n", &opts).await.unwrap();
        assert!(id.remote.ends_with(".log"), "{id}");

        // Appender files: the name alone cannot tell; the server can.
        let local = c.file_info(&id, false, 0).await.unwrap();
        assert_eq!(local.file_type, FileKind::Appender);
        assert_eq!(local.file_size, -1);
        assert!(!local.get_from_server);

        c.append_buffer(&id, b"appender-part2\n").await.unwrap();
        let part3 = dir.path().join("part3.txt");
        std::fs::write(&part3, b"part3\n").unwrap();
        c.append_file(&id, &part3).await.unwrap();
        let mut want = b"appender-part1\nappender-part2\npart3\n".to_vec();
        assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), want);

        let info = c.file_info(&id, true, 0).await.unwrap();
        assert_eq!(info.file_type, FileKind::Appender);
        assert!(info.get_from_server);
        assert_eq!(info.file_size, want.len() as i64);
        assert_eq!(info.crc32, crc32fast::hash(&want));
        assert_eq!(info.source_ip, "127.0.0.1");
        assert!((info.create_timestamp - now()).abs() < 60, "{info:?}");

        // Modify in place and at the end (extends the file).
        c.modify_buffer(&id, 0, b"APPENDER").await.unwrap();
        want[..8].copy_from_slice(b"APPENDER");
        assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), want);
        let end = want.len() as u64;
        c.modify_buffer(&id, end, b"tail").await.unwrap();
        want.extend_from_slice(b"tail");
        assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), want);
        // Modifying past the end is refused.
        assert_eq!(errno_of(c.modify_buffer(&id, 1000, b"x").await), 22);

        // Truncate.
        c.truncate(&id, 15).await.unwrap();
        want.truncate(15);
        assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), want);
        let info = c.file_info(&id, true, 0).await.unwrap();
        assert_eq!(info.file_size, 15);
        assert_eq!(info.crc32, crc32fast::hash(&want));

        // Appending to / truncating a normal file is refused.
        let normal = c.upload_buffer(HELLO, &Default::default()).await.unwrap();
        assert_ne!(errno_of(c.append_buffer(&normal, b"x").await), 0);
        assert_ne!(errno_of(c.truncate(&normal, 0).await), 0);
        assert_eq!(c.download_to_vec(&normal, 0, 0).await.unwrap(), HELLO);

        // Regenerate: a normal file under a new name with the same content;
        // the appender name is gone.
        let new_id = c.regenerate_appender_name(&id).await.unwrap();
        assert_ne!(new_id, id);
        assert_eq!(new_id.group, "group1");
        assert!(new_id.remote.ends_with(".log"), "{new_id}");
        let info = c.file_info(&new_id, false, 0).await.unwrap();
        assert_eq!(info.file_type, FileKind::Normal);
        assert_eq!(info.file_size, 15);
        assert_eq!(c.download_to_vec(&new_id, 0, 0).await.unwrap(), want);
        assert_eq!(errno_of(c.download_to_vec(&id, 0, 0).await), 2);
    });
}

#[test]
fn slave_upload_and_server_file_info() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let master = c
            .upload_buffer(
                HELLO,
                &UploadOptions {
                    ext: Some("txt".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let content = b"slave content, longer than the master\n";
        let slave = c
            .upload_slave_buffer(&master, "_big", "txt", content, &meta(&[("s", "1")]))
            .await
            .unwrap();
        assert_eq!(slave.group, master.group);
        assert_eq!(
            slave.remote,
            slave_remote_name(&master.remote, "_big", "txt").unwrap()
        );
        assert_eq!(c.download_to_vec(&slave, 0, 0).await.unwrap(), content);
        assert_eq!(c.get_metadata(&slave).await.unwrap(), meta(&[("s", "1")]));

        let info = c.file_info(&slave, true, 0).await.unwrap();
        assert_eq!(info.file_type, FileKind::Slave);
        assert!(info.get_from_server);
        assert_eq!(info.file_size, content.len() as i64);
        assert_eq!(info.crc32, crc32fast::hash(content));
        assert_eq!(info.source_ip, "127.0.0.1");
        let local = c.file_info(&slave, false, 0).await.unwrap();
        assert_eq!(local.file_type, FileKind::Slave);
        assert_eq!(local.file_size, -1);

        // Same prefix again: the slave exists already.
        assert_eq!(
            errno_of(
                c.upload_slave_buffer(&master, "_big", "txt", b"x", &[])
                    .await
            ),
            17
        );
        // From a local file, extension taken from its name.
        let p = dir.path().join("thumb.jpg");
        std::fs::write(&p, b"jpeg?").unwrap();
        let thumb = c
            .upload_slave_file(&master, "_150x150", None, &p, &[])
            .await
            .unwrap();
        assert!(thumb.remote.ends_with("_150x150.jpg"), "{thumb}");
        assert_eq!(c.download_to_vec(&thumb, 0, 0).await.unwrap(), b"jpeg?");
        // A slave of a missing master.
        let missing = FileId::new("group1", format!("{}x.txt", &master.remote[..40]));
        assert_eq!(
            errno_of(
                c.upload_slave_buffer(&missing, "_s", "txt", b"x", &[])
                    .await
            ),
            2
        );
    });
}

#[test]
fn delete_then_enoent_everywhere() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let id = c.upload_buffer(HELLO, &Default::default()).await.unwrap();
        c.delete_file(&id).await.unwrap();
        let e = c.delete_file(&id).await.unwrap_err();
        assert_eq!(e.errno(), 2, "{e}");
        assert!(matches!(e, ClientError::Status(_)), "{e:?}");
        assert_eq!(
            e.tool_text(),
            "error no: 2, error info: No such file or directory"
        );
        assert_eq!(errno_of(c.download_to_vec(&id, 0, 0).await), 2);
        let out = dir.path().join("gone");
        assert_eq!(errno_of(c.download_to_file(&id, &out, 0, 0).await), 2);
        assert!(!out.exists());
        assert_eq!(errno_of(c.get_metadata(&id).await), 2);
        assert_eq!(errno_of(c.query_file_info(&id, 0).await), 2);
        // A normal file's info still decodes from its name.
        let info = c.file_info(&id, true, 0).await.unwrap();
        assert_eq!(info.file_size, 14);
        assert!(!info.get_from_server);
        // Malformed names are EINVAL before any network traffic.
        assert_eq!(
            errno_of(c.file_info(&FileId::new("group1", "abc"), true, 0).await),
            22
        );
    });
}

fn our_storage(c: &Client, rt: &tokio::runtime::Runtime) -> StorageStat {
    let list = rt.block_on(c.list_storages("group1", None)).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    list.into_iter().next().unwrap()
}

#[test]
fn tracker_queries_list_and_statistics() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let rt = rt();
    rt.block_on(async {
        let t = c.query_store(None).await.unwrap();
        assert_eq!(t.group, "group1");
        assert_eq!(
            t.addr,
            ServerAddr {
                ip: "127.0.0.1".into(),
                port: cluster.storage_addr.port()
            }
        );
        assert_eq!(t.store_path_index, 0);
        let t = c.query_store(Some("group1")).await.unwrap();
        assert_eq!(t.addr.port, cluster.storage_addr.port());
        assert_eq!(errno_of(c.query_store(Some("nogroup")).await), 2);
        let all = c.query_store_all(None).await.unwrap();
        assert_eq!(all.servers.len(), 1);
        assert_eq!(all.servers[0].port, cluster.storage_addr.port());
        c.active_test_tracker().await.unwrap();

        let groups = c.list_groups().await.unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.group_name, "group1");
        assert_eq!(g.storage_count, 1);
        assert_eq!(g.readable_server_count, 1);
        assert_eq!(g.writable_server_count, 1);
        assert_eq!(g.storage_port, i64::from(cluster.storage_addr.port()));
        assert_eq!(g.store_path_count, 1);
        assert_eq!(g.subdir_count_per_path, 4);
        assert!(g.total_mb > 0 && g.free_mb <= g.total_mb, "{g:?}");
        assert_eq!(c.list_group("group1").await.unwrap().group_name, "group1");
        assert_eq!(errno_of(c.list_group("nogroup").await), 2);
        assert_eq!(errno_of(c.list_storages("nogroup", None).await), 2);
    });

    let s = our_storage(&c, &rt);
    assert_eq!(s.status, storage_status::ACTIVE);
    assert_eq!(s.version, "6.16.1");
    assert_eq!(s.id, "127.0.0.1");
    assert_eq!(s.ip_addr, "127.0.0.1");
    assert_eq!(s.storage_port, i64::from(cluster.storage_addr.port()));
    assert_eq!(s.store_path_count, 1);
    assert!(s.join_time > 0 && (s.join_time - now()).abs() < 60, "{s:?}");
    let one = rt
        .block_on(c.list_storages("group1", Some("127.0.0.1")))
        .unwrap();
    assert_eq!(one.len(), 1);

    // Counters reach the tracker with the next heartbeat.
    let before = s.stats.clone();
    let id = rt.block_on(async {
        let mut last = None;
        for i in 0..3u8 {
            last = Some(
                c.upload_buffer(&[i; 10], &Default::default())
                    .await
                    .unwrap(),
            );
        }
        let id = last.unwrap();
        assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), [2u8; 10]);
        c.set_metadata(&id, &meta(&[("a", "1")]), MetaOp::Overwrite)
            .await
            .unwrap();
        c.delete_file(&id).await.unwrap();
        id
    });
    let mut after = before.clone();
    let ok = wait_until(DEADLINE, || {
        after = our_storage(&c, &rt).stats;
        after.success_upload_count >= before.success_upload_count + 3
            && after.success_download_count > before.success_download_count
            && after.success_delete_count > before.success_delete_count
            && after.success_set_meta_count > before.success_set_meta_count
    });
    assert!(
        ok,
        "counters did not increase: {before:?} -> {after:?} ({id})"
    );
    assert!(after.total_upload_count >= after.success_upload_count);
    assert!(after.success_upload_bytes >= before.success_upload_bytes + 30);
    assert!(after.success_download_bytes >= before.success_download_bytes + 10);
    assert!(after.last_source_update > 0);
}

/// A TCP proxy counting the connections it accepted.
struct CountingProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl CountingProxy {
    fn start(target: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        CountingProxy { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Uploads and downloads `n` files through proxies in front of the tracker
/// and the storage; returns (tracker, storage) connections made.
fn count_connections(cluster: &Cluster, pool: bool, n: usize) -> (usize, usize) {
    let tracker = CountingProxy::start(cluster.tracker_addr);
    let storage = CountingProxy::start(cluster.storage_addr);
    let c = Client::new(ClientOptions {
        use_connection_pool: pool,
        ..options(&[tracker.addr])
    })
    .unwrap();
    let opts = UploadOptions {
        storage: Some(ServerAddr {
            ip: "127.0.0.1".into(),
            port: storage.addr.port(),
        }),
        ..Default::default()
    };
    rt().block_on(async {
        for i in 0..n {
            let data = pattern(1000 + i, i as u64);
            let id = c.upload_buffer(&data, &opts).await.unwrap();
            assert!(c.download_to_vec(&id, 0, 0).await.unwrap() == data);
            c.query_store(None).await.unwrap();
        }
    });
    (tracker.accepted(), storage.accepted())
}

#[test]
fn connection_pool_reuses_connections() {
    let cluster = Cluster::start();
    let (tracker, storage) = count_connections(&cluster, true, 10);
    assert_eq!(tracker, 1, "one pooled tracker connection for 20 queries");
    assert_eq!(storage, 1, "one pooled storage connection for 10 uploads");
}

#[test]
fn without_pool_every_operation_connects() {
    let cluster = Cluster::start();
    let (tracker, storage) = count_connections(&cluster, false, 5);
    // Downloads ask the tracker (102) and go to the real storage.
    assert_eq!(tracker, 10, "one tracker connection per query");
    assert_eq!(storage, 5, "one storage connection per upload");
}

#[test]
fn tracker_failover_skips_a_dead_tracker() {
    let cluster = Cluster::start();
    for pool in [false, true] {
        let c = Client::new(ClientOptions {
            use_connection_pool: pool,
            ..options(&[refused_addr(), cluster.tracker_addr])
        })
        .unwrap();
        rt().block_on(async {
            // Enough operations that each tracker is tried first in turn.
            for i in 0..4u8 {
                let id = c.upload_buffer(&[i; 5], &Default::default()).await.unwrap();
                assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), [i; 5]);
                c.set_metadata(&id, &meta(&[("i", "x")]), MetaOp::Merge)
                    .await
                    .unwrap();
                c.delete_file(&id).await.unwrap();
            }
            assert_eq!(c.list_groups().await.unwrap().len(), 1);
        });
    }
    // Only dead trackers: connection refused.
    let c = Client::new(options(&[refused_addr(), refused_addr()])).unwrap();
    let e = rt().block_on(c.query_store(None)).unwrap_err();
    assert_eq!(e.errno(), 111, "{e}");
    assert!(e.is_network());
}

#[test]
fn silent_tracker_times_out() {
    // Accepts (via the kernel backlog) but never reads nor answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = Client::new(ClientOptions {
        network_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(2),
        ..options(&[silent.local_addr().unwrap()])
    })
    .unwrap();
    let rt = rt();
    let e = rt.block_on(c.query_store(None)).unwrap_err();
    assert!(
        matches!(e, ClientError::Timeout) || e.errno() == 110,
        "expected a timeout, got {e:?}"
    );
    assert_eq!(e.errno(), 110);
    let e = rt
        .block_on(c.upload_buffer(HELLO, &Default::default()))
        .unwrap_err();
    assert_eq!(e.errno(), 110, "{e:?}");
    drop(silent);
}

#[test]
fn silent_storage_times_out() {
    let cluster = Cluster::start();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = Client::new(ClientOptions {
        network_timeout: Duration::from_millis(300),
        ..options(&[cluster.tracker_addr])
    })
    .unwrap();
    let opts = UploadOptions {
        storage: Some(ServerAddr {
            ip: "127.0.0.1".into(),
            port: silent.local_addr().unwrap().port(),
        }),
        ..Default::default()
    };
    let e = rt().block_on(c.upload_buffer(HELLO, &opts)).unwrap_err();
    assert_eq!(e.errno(), 110, "{e:?}");
    drop(silent);
}

/// PROTOCOL §2 FDFSStorageStatBuff / appendix A.21: the storage reports
/// connection.alloc_count / current_count / max_count (the C storage sent
/// 64 / 3 / 6).
#[test]
fn storage_reports_connection_counts() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let rt = rt();
    // Two idle connections held open, then an upload so fresh stats are sent.
    let _held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(cluster.storage_addr).unwrap())
        .collect();
    rt.block_on(c.upload_buffer(HELLO, &Default::default()))
        .unwrap();
    let mut last = None;
    let ok = wait_until(DEADLINE, || {
        let s = our_storage(&c, &rt).stats;
        let good = s.connection_alloc_count >= 2
            && s.connection_current_count >= 2
            && s.connection_max_count >= 2;
        last = Some(s);
        good
    });
    assert!(ok, "connection counters not reported: {last:?}");
}

/// The C storage counts file opens, reads and writes (after 4 uploads, an
/// append and 3 downloads it reported file_open 10, file_read 5,
/// file_write 5).
#[test]
fn storage_reports_file_io_counts() {
    let cluster = Cluster::start();
    let c = client(&cluster);
    let rt = rt();
    rt.block_on(async {
        let id = c.upload_buffer(HELLO, &Default::default()).await.unwrap();
        assert_eq!(c.download_to_vec(&id, 0, 0).await.unwrap(), HELLO);
    });
    let mut last = None;
    let ok = wait_until(DEADLINE, || {
        let s = our_storage(&c, &rt).stats;
        let good = s.success_download_count >= 1
            && s.success_file_open_count >= 2
            && s.success_file_write_count >= 1
            && s.success_file_read_count >= 1
            && s.total_file_open_count >= s.success_file_open_count;
        last = Some(s);
        good
    });
    assert!(ok, "file I/O counters not reported: {last:?}");
}

/// ACTIVE_TEST to `server` over a connection from `source`: Ok when the
/// server answers, Err with what happened when it does not.
fn active_test_from(source: &str, server: SocketAddr) -> Result<(), String> {
    rt().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        sock.bind(SocketAddr::new(source.parse().unwrap(), 0))
            .map_err(|e| e.to_string())?;
        let mut s = sock.connect(server).await.map_err(|e| e.to_string())?;
        let mut head = [0u8; 10];
        head[8] = fdfs_proto::CMD_ACTIVE_TEST;
        s.write_all(&head).await.map_err(|e| e.to_string())?;
        let mut answer = [0u8; 10];
        match tokio::time::timeout(DEADLINE, s.read_exact(&mut answer)).await {
            Err(_) => Err("no answer".into()),
            Ok(Err(e)) => Err(format!("closed: {e}")),
            Ok(Ok(_)) if answer[8] == fdfs_proto::CMD_RESP && answer[9] == 0 => Ok(()),
            Ok(Ok(_)) => Err(format!("unexpected answer {answer:?}")),
        }
    })
}

/// `allow_hosts` on the tracker and storage ports, in every form of the
/// original's conf: only 127.0.0.1 is allowed, so a connection from
/// 127.0.0.2 is closed at accept while one from 127.0.0.1 is served.
#[test]
fn allow_hosts_closes_other_addresses_at_accept() {
    for entries in [
        &["127.0.0.1"][..],
        &["10.9.9.9", "127.0.0.1"],
        &["127.0.0.0/31"],
        &["127.0.0.[0-1]"],
        &["localhost"],
    ] {
        let list: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let (for_tracker, for_storage) = (list.clone(), list);
        let cluster = Cluster::start_with(fdfs_testkit::ClusterOptions {
            tweak_tracker: Box::new(move |c| c.allow_hosts = for_tracker),
            tweak_storage: Box::new(move |c| c.allow_hosts = for_storage),
            ..Default::default()
        });
        for (port, addr) in [
            ("tracker", cluster.tracker_addr),
            ("storage", cluster.storage_addr),
        ] {
            assert_eq!(
                active_test_from("127.0.0.1", addr),
                Ok(()),
                "{port} with allow_hosts {entries:?}, from 127.0.0.1"
            );
            let refused = active_test_from("127.0.0.2", addr);
            assert!(
                refused.as_ref().is_err_and(|e| e.starts_with("closed")),
                "{port} with allow_hosts {entries:?}, from 127.0.0.2: {refused:?}"
            );
        }
    }
}

/// With every slot taken by clients that connected and sent half a header,
/// a real client is served at once on the tracker and the storage port:
/// the loop closes an idle connection for it instead of letting it wait
/// for the 60 s idle timeout. The storage's own heartbeat connection to
/// the tracker is never the one closed.
#[test]
fn a_full_server_reclaims_idle_connections() {
    use tokio::io::AsyncWriteExt;
    const SLOTS: u32 = 6;
    /// "At once" on a loaded 2-CPU machine, far below the idle timeout.
    const SERVED_WITHIN: Duration = Duration::from_secs(5);
    let cluster = Cluster::start_with(fdfs_testkit::ClusterOptions {
        tweak_tracker: Box::new(|c| c.net.max_connections = SLOTS),
        tweak_storage: Box::new(|c| c.net.max_connections = SLOTS),
        ..Default::default()
    });
    for (port, addr) in [
        ("tracker", cluster.tracker_addr),
        ("storage", cluster.storage_addr),
    ] {
        rt().block_on(async {
            let mut idle = Vec::new();
            for _ in 0..SLOTS + 2 {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(&[0u8; 5]).await.unwrap();
                idle.push(s);
            }
            let answered = tokio::time::timeout(SERVED_WITHIN, async {
                let mut c = fdfs_testkit::connect(addr).await;
                c.call(fdfs_proto::CMD_ACTIVE_TEST, &[]).await
            })
            .await;
            assert!(
                matches!(answered, Ok(Ok(_))),
                "{port}: a real client waited behind idle ones: {answered:?}"
            );
        });
    }
    let c = client(&cluster);
    let listed = rt().block_on(c.list_storages("group1", None)).unwrap();
    assert_eq!(listed[0].status, storage_status::ACTIVE, "heartbeats kept");
}
