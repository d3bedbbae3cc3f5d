//! End-to-end test: a real tracker on 127.0.0.1:0 driven with raw packets
//! built by fdfs-proto and framed by fdfs-client's connection helpers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fdfs_config::TrackerConf;
use fdfs_proto::fileid::{normal_size_field, FileNameRecord};
use fdfs_proto::stat::{storage_status as st, GroupStat, StorageStat, StorageStats};
use fdfs_proto::tracker_msg::{
    put_group, ChangeNotice, FetchTargets, GetMyIpReq, JoinReq, JoinResp, StoreTarget,
};
use fdfs_proto::{Header, CMD_RESP};
use fdfs_util::framing::{read_body, read_header, write_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const POLL_INTERVAL: Duration = Duration::from_millis(20);
const POLL_DEADLINE: Duration = Duration::from_secs(5);

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), fdfs_tracker::TrackerError>>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        let res = tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("tracker stops in time")
            .expect("tracker task");
        res.expect("tracker run result");
    }
}

async fn start(base: &Path) -> Running {
    start_with(TrackerConf {
        base_path: base.to_path_buf(),
        network_timeout_secs: 10,
        ..TrackerConf::default()
    })
    .await
}

/// The default test conf with `tweak` applied.
async fn start_tweaked(base: &Path, tweak: impl FnOnce(&mut TrackerConf)) -> Running {
    let mut conf = TrackerConf {
        base_path: base.to_path_buf(),
        network_timeout_secs: 10,
        ..TrackerConf::default()
    };
    tweak(&mut conf);
    start_with(conf).await
}

async fn start_with(conf: TrackerConf) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(fdfs_tracker::run(listener, conf, stop.clone()));
    Running { addr, stop, handle }
}

async fn call(s: &mut TcpStream, cmd: u8, body: &[u8]) -> (u8, Vec<u8>) {
    write_packet(s, cmd, 0, body).await.unwrap();
    let h = read_header(s).await.unwrap();
    assert_eq!(h.cmd, CMD_RESP);
    let body = read_body(s, h.pkg_len as usize).await.unwrap();
    (h.status, body)
}

fn group_field(name: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_group(&mut b, name);
    b.to_vec()
}

/// Polls `f` until it returns Some, or panics after the deadline.
async fn poll<T, F, Fut>(f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_within(POLL_DEADLINE, f).await
}

/// [`poll`] with its own deadline.
async fn poll_within<T, F, Fut>(within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn list_storage(addr: SocketAddr) -> Vec<StorageStat> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let (status, body) = call(&mut c, 92, &group_field("group1")).await;
    assert_eq!(status, 0);
    StorageStat::decode_list(&body).unwrap()
}

/// Expects the server to close the connection without answering.
async fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(POLL_DEADLINE, s.read(&mut buf))
        .await
        .expect("server closes")
        .unwrap_or(0);
    assert_eq!(n, 0, "no answer expected");
}

fn join_body(tracker: SocketAddr) -> Vec<u8> {
    join_body_with_id(tracker, "")
}

fn join_body_with_id(tracker: SocketAddr, storage_id: &str) -> Vec<u8> {
    encode_join(&JoinReq {
        storage_id: storage_id.into(),
        ..join_req(tracker)
    })
}

/// The JOIN of a new storage of group1 on port 23000 that lists `tracker`.
fn join_req(tracker: SocketAddr) -> JoinReq {
    let now = fdfs_tracker::now_secs();
    JoinReq {
        join_time: now,
        up_time: now,
        tracker_ip: "127.0.0.1".into(),
        trackers: vec![tracker.to_string()],
        ..fdfs_testkit::join_req()
    }
}

fn encode_join(req: &JoinReq) -> Vec<u8> {
    let mut b = BytesMut::new();
    req.encode(&mut b);
    b.to_vec()
}

#[tokio::test]
async fn tracker_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start(dir.path()).await;
    let addr = tr.addr;
    let mut c = TcpStream::connect(addr).await.unwrap();

    // ACTIVE_TEST, unknown command (connection kept), ACTIVE_TEST with a body.
    assert_eq!(call(&mut c, 111, &[]).await, (0, vec![]));
    assert_eq!(call(&mut c, 200, &[]).await, (22, vec![]));
    assert_eq!(call(&mut c, 111, &[]).await, (0, vec![]));
    assert_eq!(call(&mut c, 111, &[1, 2, 3]).await, (22, vec![]));

    // No groups yet.
    assert_eq!(call(&mut c, 101, &[]).await, (2, vec![]));
    assert_eq!(call(&mut c, 101, &[0]).await, (22, vec![]));
    assert_eq!(call(&mut c, 64, &[]).await, (2, vec![]));

    // Storage commands before JOIN.
    assert_eq!(call(&mut c, 83, &[]).await.0, 13);
    assert_eq!(call(&mut c, 88, &[0; 24]).await.0, 13);
    assert_eq!(call(&mut c, 79, &[]).await.0, 13);

    // Storage start-up traffic.
    assert_eq!(
        call(&mut c, 60, &my_ip_request("group1", 23000)).await,
        (0, b"127.0.0.1".to_vec())
    );
    let (status, params) = call(&mut c, 75, &[]).await;
    assert_eq!(status, 0);
    assert_eq!(String::from_utf8(params).unwrap().lines().count(), 26);
    assert_eq!(call(&mut c, 69, &[0, 0, 0, 0, 1]).await, (0, vec![0; 8]));
    assert_eq!(call(&mut c, 69, &[0, 0, 0, 0, 0]).await.0, 95);
    assert_eq!(
        call(&mut c, 95, &[]).await,
        (0, addr.to_string().into_bytes())
    );

    // JOIN as a new storage: INIT, then the first storage of the group gets
    // an empty SYNC_DEST_REQ answer (ONLINE) and its first BEAT activates it.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (status, body) = call(&mut s, 81, &join_body(addr)).await;
    assert_eq!(status, 0);
    let resp = JoinResp::decode(&body).unwrap();
    assert_eq!(resp.status, st::INIT);
    assert_eq!(resp.src_id, "");
    assert_eq!(call(&mut s, 87, &[]).await, (0, vec![]));
    assert_eq!(call(&mut s, 88, &[0; 24]).await, (0, vec![]));
    let mut stats = BytesMut::new();
    StorageStats {
        total_upload_count: 5,
        ..Default::default()
    }
    .encode(&mut stats);
    let (status, body) = call(&mut s, 83, &stats).await;
    assert_eq!(status, 0);
    assert_eq!(body[0], 0x05);
    let notice = ChangeNotice::decode(&body).unwrap();
    let leader = notice.leader.unwrap();
    assert_eq!(leader.ip_addr, "127.0.0.1");
    assert_eq!(leader.id, "127.0.0.1");
    assert_eq!(leader.port, i32::from(addr.port()));
    let members = notice.group_members.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].status, st::ACTIVE);
    assert_eq!(members[0].ip_addr, "127.0.0.1");
    assert_eq!(members[0].port, 23000);
    // Nothing changed since: a single zero byte.
    assert_eq!(call(&mut s, 83, &[]).await, (0, vec![0]));
    assert_eq!(call(&mut s, 83, &[0; 5]).await.0, 22);
    let mut usage = Vec::new();
    usage.extend_from_slice(&100_000i64.to_be_bytes());
    usage.extend_from_slice(&50_000i64.to_be_bytes());
    assert_eq!(call(&mut s, 84, &usage).await, (0, vec![0]));
    assert_eq!(call(&mut s, 77, &[]).await, (0, vec![]));
    assert_eq!(call(&mut s, 81, &join_body(addr)).await.0, 17);

    // Upload target.
    let (status, body) = call(&mut c, 101, &[]).await;
    assert_eq!(status, 0);
    assert_eq!(body.len(), 40);
    let target = StoreTarget::decode(&body).unwrap();
    assert_eq!(target.group, "group1");
    assert_eq!(target.addr.ip, "127.0.0.1");
    assert_eq!(target.addr.port, 23000);
    assert_eq!(target.store_path_index, 0);
    assert_eq!(
        call(&mut c, 104, &group_field("nogroup")).await,
        (2, vec![])
    );
    assert_eq!(call(&mut c, 104, &group_field("group1")).await.1.len(), 40);
    assert_eq!(call(&mut c, 107, &group_field("group1")).await.1.len(), 40);

    // Download target for a well-formed name.
    let rec = FileNameRecord {
        source: [127, 0, 0, 1],
        timestamp: u32::try_from(fdfs_tracker::now_secs()).unwrap(),
        size_field: normal_size_field(14, 3),
        crc32: 7,
    };
    let remote = format!("M00/00/00/{}123.txt", rec.encode());
    let mut req = group_field("group1");
    req.extend_from_slice(remote.as_bytes());
    let (status, body) = call(&mut c, 102, &req).await;
    assert_eq!(status, 0);
    assert_eq!(body.len(), 39);
    let ft = FetchTargets::decode(&body).unwrap();
    assert_eq!(ft.servers[0].ip, "127.0.0.1");
    assert_eq!(ft.servers[0].port, 23000);
    assert_eq!(call(&mut c, 103, &req).await.1.len(), 39);
    assert_eq!(call(&mut c, 102, &req[..37]).await.0, 22);

    // Listings.
    let (status, body) = call(&mut c, 91, &[]).await;
    assert_eq!(status, 0);
    assert_eq!(body.len(), 113);
    let g = &GroupStat::decode_list(&body).unwrap()[0];
    assert_eq!(g.group_name, "group1");
    assert_eq!(g.storage_count, 1);
    assert_eq!(g.writable_server_count, 1);
    assert_eq!(g.total_mb, 100_000);
    assert_eq!(g.free_mb, 50_000);
    assert_eq!(g.reserved_mb, 1024);
    assert_eq!(g.current_trunk_file_id, -1);
    let (status, body) = call(&mut c, 92, &group_field("group1")).await;
    assert_eq!(status, 0);
    assert_eq!(body.len(), 487);
    let list = StorageStat::decode_list(&body).unwrap();
    assert_eq!(list[0].status, st::ACTIVE);
    assert_eq!(list[0].version, "6.16.1");
    assert_eq!(list[0].rw_mode, 6);
    assert_eq!(list[0].id, "127.0.0.1");
    assert_eq!(list[0].stats.total_upload_count, 5);
    assert!(list[0].stats.last_heart_beat_time > 0);
    let (status, body) = call(&mut c, 64, &[]).await;
    assert_eq!((status, body.len(), body[0]), (0, 17, 1));

    // Deleting an ACTIVE storage is refused.
    let mut del = group_field("group1");
    del.extend_from_slice(b"127.0.0.1");
    assert_eq!(call(&mut c, 93, &del).await, (16, vec![]));
    assert_eq!(
        call(&mut c, 108, &group_field("group1")).await,
        (16, vec![])
    );

    // Closing the joined connection takes the storage OFFLINE.
    drop(s);
    poll(|| async {
        let l = list_storage(addr).await;
        (l.len() == 1 && l[0].status == st::OFFLINE && l[0].up_time == 0).then_some(())
    })
    .await;

    // Oversized and negative packets close the connection silently.
    let mut big = TcpStream::connect(addr).await.unwrap();
    let h = Header {
        pkg_len: 256 * 1024,
        cmd: 90,
        status: 0,
    };
    big.write_all(&h.to_bytes()).await.unwrap();
    expect_closed(&mut big).await;
    let mut neg = TcpStream::connect(addr).await.unwrap();
    let h = Header {
        pkg_len: -1,
        cmd: 90,
        status: 0,
    };
    neg.write_all(&h.to_bytes()).await.unwrap();
    expect_closed(&mut neg).await;
    drop(c);

    // Restart: the group and the storage come back, the storage OFFLINE.
    tr.stop().await;
    let tr = start(dir.path()).await;
    let addr = tr.addr;
    let l = list_storage(addr).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].status, st::OFFLINE);
    assert_eq!(l[0].stats.total_upload_count, 5);

    // Now the delete succeeds and the record disappears.
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(call(&mut c, 93, &del).await, (0, vec![]));
    assert_eq!(call(&mut c, 93, &del).await, (114, vec![]));
    assert!(list_storage(addr).await.is_empty());
    drop(c);
    tr.stop().await;
    let changelog = std::fs::read_to_string(dir.path().join("data/storage_changelog.dat")).unwrap();
    assert!(
        changelog.ends_with(" group1 127.0.0.1 4 \n"),
        "{changelog:?}"
    );

    // Second restart: the group persisted, without members.
    let tr = start(dir.path()).await;
    let mut c = TcpStream::connect(tr.addr).await.unwrap();
    let (status, body) = call(&mut c, 91, &[]).await;
    assert_eq!(status, 0);
    let groups = GroupStat::decode_list(&body).unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].group_name, "group1");
    assert_eq!(groups[0].storage_count, 0);
    assert_eq!(groups[0].storage_port, 23000);
    assert!(list_storage(tr.addr).await.is_empty());
    // An empty group can be deleted.
    assert_eq!(call(&mut c, 108, &group_field("group1")).await, (0, vec![]));
    assert_eq!(call(&mut c, 91, &[]).await, (0, vec![]));
    drop(c);
    tr.stop().await;
    let groups_file =
        std::fs::read_to_string(dir.path().join("data/storage_groups_new.dat")).unwrap();
    assert_eq!(groups_file, "[Global]\n\tgroup_count=0\n\n");
}

#[tokio::test]
async fn shutdown_with_idle_connections_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start(dir.path()).await;
    let mut idle = TcpStream::connect(tr.addr).await.unwrap();
    assert_eq!(call(&mut idle, 111, &[]).await, (0, vec![]));
    let started = Instant::now();
    tr.stop().await;
    assert!(started.elapsed() < Duration::from_secs(4));
    expect_closed(&mut idle).await;
    assert!(dir.path().join("data/.tracker_status").exists());
    assert!(dir.path().join("logs").is_dir());
}

/// A connection to the tracker whose source address is `from` (any
/// 127.0.0.x is local on Linux), so JOINs come from distinct storages.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// use_storage_id (§2.13, §2.14, §4.2, §4.6, §7.3): storages are keyed by
/// their storage_ids.conf id, looked up by address or taken from the JOIN
/// when trusted; unknown storages are refused with ENOENT.
#[tokio::test]
async fn storage_id_mode() {
    let dir = tempfile::tempdir().unwrap();
    let ids_path = dir.path().join("storage_ids.conf");
    std::fs::write(
        &ids_path,
        "# test ids\n100001 group1 127.0.0.1\n100002 group1 127.0.0.2 rw=read\n",
    )
    .unwrap();
    let conf = TrackerConf {
        base_path: dir.path().to_path_buf(),
        network_timeout_secs: 10,
        use_storage_id: true,
        storage_ids_filename: ids_path.to_string_lossy().into_owned(),
        id_type_in_filename: "id".into(),
        ..TrackerConf::default()
    };
    let tr = start_with(conf.clone()).await;
    let addr = tr.addr;
    let mut c = TcpStream::connect(addr).await.unwrap();

    let (status, params) = call(&mut c, 75, &[]).await;
    assert_eq!(status, 0);
    let params = String::from_utf8(params).unwrap();
    assert!(
        params.starts_with("use_storage_id=1\nid_type_in_filename=id\ntrust_storage_server_id=1\n"),
        "{params}"
    );

    // FETCH_STORAGE_IDS: total 2, count 2, the lines; allow_empty is moot.
    let mut expected = vec![0, 0, 0, 2, 0, 0, 0, 2];
    expected.extend_from_slice(b"100001 group1 127.0.0.1\n100002 group1 127.0.0.2 rw=read\n");
    assert_eq!(call(&mut c, 69, &[0, 0, 0, 0, 0]).await, (0, expected));
    let (status, tail) = call(&mut c, 69, &[0, 0, 0, 1, 1]).await;
    assert_eq!((status, &tail[..8]), (0, &[0, 0, 0, 2, 0, 0, 0, 1][..]));
    assert_eq!(call(&mut c, 69, &[0, 0, 0, 2, 0]).await.0, 22);
    assert_eq!(call(&mut c, 69, &[0, 0, 0, 0]).await.0, 22);

    // GET_SERVER_ID by group + ip:port, GET_GROUP_NAME by port, GET_MY_IP.
    let mut req = group_field("group1");
    req.extend_from_slice(b"127.0.0.2:23000");
    assert_eq!(call(&mut c, 70, &req).await, (0, b"100002".to_vec()));
    let mut req = group_field("group1");
    req.extend_from_slice(b"127.0.0.9:23000");
    assert_eq!(call(&mut c, 70, &req).await.0, 2);
    let (status, group) = call(&mut c, 109, &23000i32.to_be_bytes()).await;
    assert_eq!((status, group), (0, group_field("group1")));
    let mut req = b"127.0.0.9".to_vec();
    req.extend_from_slice(&23000i32.to_be_bytes());
    assert_eq!(call(&mut c, 109, &req).await.0, 2);
    assert_eq!(
        call(&mut c, 60, &my_ip_request("group1", 23000)).await,
        (0, b"127.0.0.1".to_vec())
    );

    // JOIN by address: 127.0.0.1 is 100001.
    let mut s1 = connect_from("127.0.0.1", addr).await;
    let (status, body) = call(&mut s1, 81, &join_body(addr)).await;
    assert_eq!(status, 0);
    assert_eq!(JoinResp::decode(&body).unwrap().status, st::INIT);
    // An address not in storage_ids.conf is refused.
    let mut stranger = connect_from("127.0.0.3", addr).await;
    assert_eq!(call(&mut stranger, 81, &join_body(addr)).await, (2, vec![]));
    // An unknown reported id too (trust_storage_server_id = true).
    assert_eq!(
        call(&mut stranger, 81, &join_body_with_id(addr, "999")).await,
        (2, vec![])
    );
    // A trusted reported id keys the storage whatever its address.
    let mut s2 = connect_from("127.0.0.2", addr).await;
    let (status, _) = call(&mut s2, 81, &join_body_with_id(addr, "100002")).await;
    assert_eq!(status, 0);
    // But not while it is connected from elsewhere: EBUSY.
    assert_eq!(
        call(&mut stranger, 81, &join_body_with_id(addr, "100002")).await,
        (16, vec![])
    );

    assert_eq!(
        id_addr_mode_rows(addr).await,
        [
            ("100001".into(), "127.0.0.1".into(), 6),
            ("100002".into(), "127.0.0.2".into(), 4)
        ]
    );
    let mut one = group_field("group1");
    one.extend_from_slice(b"100002");
    let (status, body) = call(&mut c, 92, &one).await;
    assert_eq!(status, 0);
    assert_eq!(StorageStat::decode_list(&body).unwrap().len(), 1);

    drop((s1, s2, stranger, c));
    tr.stop().await;
    let servers = std::fs::read_to_string(dir.path().join("data/storage_servers_new.dat")).unwrap();
    assert!(
        servers.contains("[Storage001]\n\tid=100001\n\tgroup_name=group1\n\tip_addr=127.0.0.1\n"),
        "{servers}"
    );
    assert!(servers.contains("\tid=100002\n"), "{servers}");

    // Reloaded in id mode: the same ids, rw_mode again from storage_ids.conf.
    let tr = start_with(conf.clone()).await;
    assert_eq!(
        id_addr_mode_rows(tr.addr).await,
        [
            ("100001".into(), "127.0.0.1".into(), 6),
            ("100002".into(), "127.0.0.2".into(), 4)
        ]
    );
    tr.stop().await;

    // Not trusting reported ids: the address decides, and it must be listed.
    let tr = start_with(TrackerConf {
        trust_storage_server_id: false,
        ..conf
    })
    .await;
    let mut s3 = connect_from("127.0.0.3", tr.addr).await;
    assert_eq!(
        call(&mut s3, 81, &join_body_with_id(tr.addr, "100002")).await,
        (2, vec![])
    );
    tr.stop().await;
}

/// Forwards every connection accepted on `listener` to `to` (a stand-in for
/// NAT or a virtual IP in front of the tracker).
async fn forward(listener: TcpListener, to: SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn tracker_behind_a_forwarder_knows_it_leads() {
    // The storages list the tracker under an address that is not one it
    // listens on. It must still find out that the entry is itself, lead,
    // and send storages the group lists (only a leader does).
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path()).await;
    let front = TcpListener::bind("127.0.0.77:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    let fwd = tokio::spawn(forward(front, t.addr));

    let mut s = TcpStream::connect(front_addr).await.unwrap();
    let (status, _) = call(&mut s, 81, &join_body(front_addr)).await;
    assert_eq!(status, 0);
    let leader = poll(|| async {
        let mut c = TcpStream::connect(t.addr).await.unwrap();
        let (status, body) = call(&mut c, 95, &[]).await;
        (status == 0).then(|| String::from_utf8_lossy(&body).into_owned())
    })
    .await;
    assert_eq!(leader, front_addr.to_string());
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    let (status, body) = call(&mut c, 64, &[]).await;
    assert_eq!(
        (status, body.first().copied()),
        (0, Some(1)),
        "claims leadership"
    );
    // The first BEAT answer carries the leader brief and the group list.
    let (status, body) = call(&mut s, 83, &[]).await;
    assert_eq!(status, 0);
    let notice = ChangeNotice::decode(&body).unwrap();
    assert_eq!(
        notice.leader.map(|b| format!("{}:{}", b.ip_addr, b.port)),
        Some(front_addr.to_string())
    );
    assert_eq!(notice.group_members.map(|m| m.len()), Some(1));
    fwd.abort();
    t.stop().await;
}

/// (id, address, rw_mode) of each storage the tracker lists.
async fn id_addr_mode_rows(tracker: SocketAddr) -> Vec<(String, String, u8)> {
    list_storage(tracker)
        .await
        .into_iter()
        .map(|s| (s.id, s.ip_addr, s.rw_mode))
        .collect()
}

/// A GET_MY_IP (60) body.
fn my_ip_request(group: &str, port: i32) -> Vec<u8> {
    let mut b = BytesMut::new();
    GetMyIpReq {
        group: group.into(),
        port,
    }
    .encode(&mut b);
    b.to_vec()
}

/// JOINs as a storage that lists `tracker` and `other` as its trackers.
async fn join_listing(tracker: SocketAddr, other: SocketAddr) -> TcpStream {
    let body = encode_join(&JoinReq {
        trackers: vec![tracker.to_string(), other.to_string()],
        ..join_req(tracker)
    });
    let mut s = TcpStream::connect(tracker).await.unwrap();
    assert_eq!(call(&mut s, 81, &body).await.0, 0);
    s
}

/// TRACKER_GET_STATUS's leader flag; None while the tracker has no group.
async fn claims_leadership(tracker: SocketAddr) -> Option<bool> {
    let mut c = TcpStream::connect(tracker).await.unwrap();
    let (status, body) = call(&mut c, 64, &[]).await;
    (status == 0).then(|| body.first() == Some(&1))
}

#[tokio::test]
async fn tracker_to_tracker_commands_answer_the_original_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path()).await;
    let other: SocketAddr = "127.0.0.78:22122".parse().unwrap();
    let mut c = TcpStream::connect(t.addr).await.unwrap();

    // No groups yet: no status, no data files to copy.
    assert_eq!(call(&mut c, 64, &[]).await.0, 2);
    assert_eq!(call(&mut c, 61, &[]).await.0, 2);

    // A storage lists us and another tracker that does not answer: we are
    // not leader until an election, which we win (the other is down).
    let _storage = join_listing(t.addr, other).await;
    poll(|| async { claims_leadership(t.addr).await.filter(|l| *l) }).await;

    // 66/67 from a connection that is not a tracker's (the other tracker
    // never answered) → ENOENT, as the original answers for a tracker it
    // does not know; malformed bodies → EINVAL.
    assert_eq!(call(&mut c, 66, b"127.0.0.99:22122").await.0, 2);
    assert_eq!(call(&mut c, 66, b"not an address").await.0, 22);
    assert_eq!(call(&mut c, 67, other.to_string().as_bytes()).await.0, 2);
    // PING before JOIN_LEADER → EINVAL; JOIN_LEADER from an address that is
    // not a listed tracker → ENOENT; bad bodies → EINVAL.
    assert_eq!(call(&mut c, 65, &[0; 12]).await.0, 22);
    assert_eq!(call(&mut c, 65, &[0; 3]).await.0, 22);
    assert_eq!(call(&mut c, 58, &[0; 5]).await.0, 22);
    let mut jl = BytesMut::new();
    fdfs_proto::leader_msg::JoinLeaderReq {
        up_time: 1,
        version: "6.16.1".into(),
        tracker_port: 1,
    }
    .encode(&mut jl);
    let mut far = connect_from("127.0.0.79", t.addr).await;
    assert_eq!(call(&mut far, 58, &jl).await.0, 2);

    // Data-file copy: 63 before 61 → EINVAL; then the four files, a bad
    // index and an offset past the end → EINVAL; 62 releases the lock.
    let copy = |index: u8, offset: i64| {
        let mut b = BytesMut::new();
        fdfs_proto::leader_msg::SysFileReq { index, offset }.encode(&mut b);
        b.to_vec()
    };
    assert_eq!(call(&mut c, 63, &copy(0, 0)).await.0, 22);
    assert_eq!(call(&mut c, 61, &[]).await.0, 0);
    let mut other_conn = TcpStream::connect(t.addr).await.unwrap();
    assert_eq!(call(&mut other_conn, 61, &[]).await.0, 16, "locked: EBUSY");
    let (status, groups) = call(&mut c, 63, &copy(0, 0)).await;
    assert_eq!(status, 0);
    let size = i64::from_be_bytes(groups[..8].try_into().unwrap());
    assert_eq!(size as usize, groups.len() - 8);
    assert!(String::from_utf8_lossy(&groups[8..]).contains("group1"));
    assert_eq!(call(&mut c, 63, &copy(4, 0)).await.0, 22);
    assert_eq!(call(&mut c, 63, &copy(0, size + 1)).await.0, 22);
    assert_eq!(call(&mut c, 62, &[]).await.0, 0);
    assert_eq!(call(&mut other_conn, 61, &[]).await.0, 0, "lock released");

    // 68 steps a leader down; with the other tracker still down, the next
    // election makes us leader again.
    assert_eq!(call(&mut c, 68, &[]).await.0, 0);
    poll(|| async { claims_leadership(t.addr).await.filter(|l| *l) }).await;
    t.stop().await;
}

/// What a stand-in rival tracker was asked.
#[derive(Default)]
struct RivalCounts {
    joins: AtomicUsize,
    reselects: AtomicUsize,
}

/// A stand-in for another tracker that claims to lead (64 answers
/// if_leader with the given running time and restart interval) and counts
/// the JOIN_LEADERs (58) and NOTIFY_RESELECT_LEADERs (68) it gets.
async fn rival_leader(
    listener: TcpListener,
    running_time_secs: i64,
    restart_interval_secs: i64,
    counts: Arc<RivalCounts>,
) {
    while let Ok((mut s, _)) = listener.accept().await {
        let counts = counts.clone();
        tokio::spawn(async move {
            while let Ok(h) = read_header(&mut s).await {
                let Ok(_) = read_body(&mut s, h.pkg_len as usize).await else {
                    return;
                };
                let (status, body) = match h.cmd {
                    64 => {
                        let mut b = vec![1u8];
                        b.extend_from_slice(&running_time_secs.to_be_bytes());
                        b.extend_from_slice(&restart_interval_secs.to_be_bytes());
                        (0, b)
                    }
                    58 => {
                        counts.joins.fetch_add(1, Ordering::SeqCst);
                        (0, vec![])
                    }
                    68 => {
                        counts.reselects.fetch_add(1, Ordering::SeqCst);
                        (0, vec![])
                    }
                    65 => (0, vec![]),
                    82 => return,
                    _ => (22, vec![]),
                };
                if write_packet(&mut s, CMD_RESP, status, &body).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Polls until `count` is non-zero.
async fn wait_for_count(count: &AtomicUsize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A tracker that leads while the other tracker its storage lists cannot
/// be reached (a partition), then that rival comes up claiming to lead too,
/// with the given running time and restart interval.
struct RivalScene {
    _dir: tempfile::TempDir,
    /// The storage's JOIN connection, which listed both trackers.
    _storage: TcpStream,
    t: Running,
    rival: SocketAddr,
    counts: Arc<RivalCounts>,
    fake: JoinHandle<()>,
}

async fn rival_scene(
    rival_ip: &str,
    running_time_secs: i64,
    restart_interval_secs: i64,
) -> RivalScene {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path()).await;
    // The rival's address refuses connections at first (the partition).
    let probe = std::net::TcpListener::bind((rival_ip, 0)).unwrap();
    let rival = probe.local_addr().unwrap();
    drop(probe);
    let storage = join_listing(t.addr, rival).await;
    poll(|| async { claims_leadership(t.addr).await.filter(|l| *l) }).await;

    // The partition heals: the rival leads too.
    let counts = Arc::new(RivalCounts::default());
    let listener = TcpListener::bind(rival).await.unwrap();
    let fake = tokio::spawn(rival_leader(
        listener,
        running_time_secs,
        restart_interval_secs,
        counts.clone(),
    ));
    RivalScene {
        _dir: dir,
        _storage: storage,
        t,
        rival,
        counts,
        fake,
    }
}

#[tokio::test]
async fn a_leader_yields_to_a_higher_ranked_rival_after_a_partition() {
    // The rival has run longer.
    let scene = rival_scene("127.0.0.83", 3000, 0).await;
    let (t, rival, counts) = (&scene.t, scene.rival, &scene.counts);
    wait_for_count(&counts.joins, "the leader never yielded").await;
    assert_eq!(
        counts.reselects.load(Ordering::SeqCst),
        0,
        "a higher-ranked rival is followed, not told to step down"
    );
    assert_eq!(
        claims_leadership(t.addr).await,
        Some(false),
        "no longer claims leadership"
    );
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    assert_eq!(
        call(&mut c, 95, &[]).await,
        (0, rival.to_string().into_bytes())
    );
    scene.fake.abort();
    scene.t.stop().await;
}

/// A tracker restarted with its data files knows its groups but not yet the
/// tracker list (only storage JOINs bring it). Until then it must not claim
/// leadership to other trackers: a running leader would yield to it by rank.
#[tokio::test]
async fn a_restarted_tracker_claims_leadership_only_after_hearing_the_tracker_list() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path()).await;
    let storage = join_listing(t.addr, t.addr).await;
    poll(|| async { claims_leadership(t.addr).await.filter(|l| *l) }).await;
    drop(storage);
    t.stop().await;

    let t = start(dir.path()).await;
    assert_eq!(
        claims_leadership(t.addr).await,
        Some(false),
        "groups loaded, tracker list unknown: no claim"
    );
    let _storage = join_listing(t.addr, t.addr).await;
    poll(|| async { claims_leadership(t.addr).await.filter(|l| *l) }).await;
    t.stop().await;
}

/// A rival leader that ranks lower (here: a longer restart interval, as an
/// original tracker that elected itself alone after a restart) is told to
/// step down with NOTIFY_RESELECT_LEADER, and we keep leading.
#[tokio::test]
async fn a_leader_tells_a_lower_ranked_rival_to_step_down() {
    let scene = rival_scene("127.0.0.84", 0, 3000).await;
    let (t, counts) = (&scene.t, &scene.counts);
    wait_for_count(&counts.reselects, "the rival was never told to step down").await;
    assert_eq!(claims_leadership(t.addr).await, Some(true), "we still lead");
    assert_eq!(
        counts.joins.load(Ordering::SeqCst),
        0,
        "we did not follow the lower-ranked rival"
    );
    scene.fake.abort();
    scene.t.stop().await;
}

// ---- Issue #10: who may act on a storage record or on the leadership ----

/// (ip, port, status) of each storage the tracker lists in group1.
async fn rows(tracker: SocketAddr) -> Vec<(String, i64, u8)> {
    list_storage(tracker)
        .await
        .into_iter()
        .map(|s| (s.ip_addr, s.storage_port, s.status))
        .collect()
}

fn row(ip: &str, port: i64, status: u8) -> (String, i64, u8) {
    (ip.to_string(), port, status)
}

/// JOINs from `from` with `req`; the connection and the answer status.
async fn join_from(from: &str, tracker: SocketAddr, req: &JoinReq) -> (TcpStream, u8) {
    let mut s = connect_from(from, tracker).await;
    let (status, _) = call(&mut s, 81, &encode_join(req)).await;
    (s, status)
}

/// JOINs from `from` as a new storage and makes it ACTIVE (first of its
/// group: SYNC_DEST_REQ answers empty, the first BEAT activates) with
/// free space for uploads.
async fn active_storage(from: &str, tracker: SocketAddr) -> TcpStream {
    let (mut s, status) = join_from(from, tracker, &join_req(tracker)).await;
    assert_eq!(status, 0);
    assert_eq!(call(&mut s, 87, &[]).await, (0, vec![]));
    assert_eq!(call(&mut s, 83, &[]).await.0, 0);
    let mut usage = 100_000i64.to_be_bytes().to_vec();
    usage.extend_from_slice(&50_000i64.to_be_bytes());
    assert_eq!(call(&mut s, 84, &usage).await.0, 0);
    s
}

/// Where QUERY_STORE_WITHOUT_GROUP_ONE (101) sends an upload.
async fn upload_target(tracker: SocketAddr) -> String {
    let mut c = TcpStream::connect(tracker).await.unwrap();
    let (status, body) = call(&mut c, 101, &[]).await;
    assert_eq!(status, 0);
    StoreTarget::decode(&body).unwrap().addr.to_string()
}

/// Waits until the storage at `ip` is OFFLINE (its connection closed).
async fn wait_offline(tracker: SocketAddr, ip: &str) {
    poll(|| async {
        rows(tracker)
            .await
            .iter()
            .any(|r| r.0 == ip && r.2 == st::OFFLINE)
            .then_some(())
    })
    .await;
}

/// A JOIN must not list a storage under an address its connection does
/// not come from: one JOIN from anywhere would otherwise reroute every
/// client of the real storage (issue #10, item 1).
#[tokio::test]
async fn a_join_claiming_another_hosts_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start(dir.path()).await;
    let addr = tr.addr;
    let real = active_storage("127.0.0.1", addr).await;
    assert_eq!(rows(addr).await, [row("127.0.0.1", 23000, st::ACTIVE)]);

    // 127.0.0.2 claims to be 127.0.0.1 on port 1: EPERM, while the real
    // storage is connected and after it left.
    let claim = JoinReq {
        storage_id: "127.0.0.1".into(),
        storage_port: 1,
        ..join_req(addr)
    };
    assert_eq!(join_from("127.0.0.2", addr, &claim).await.1, 1);
    drop(real);
    wait_offline(addr, "127.0.0.1").await;
    assert_eq!(join_from("127.0.0.2", addr, &claim).await.1, 1);
    assert_eq!(rows(addr).await, [row("127.0.0.1", 23000, st::OFFLINE)]);

    // The real storage comes back; clients are sent to it.
    let real = active_storage("127.0.0.1", addr).await;
    assert_eq!(upload_target(addr).await, "127.0.0.1:23000");
    drop(real);
    tr.stop().await;
    let servers = std::fs::read_to_string(dir.path().join("data/storage_servers_new.dat")).unwrap();
    assert!(servers.contains("\tip_addr=127.0.0.1\n"), "{servers}");
    assert!(servers.contains("\tstorage_port=23000\n"), "{servers}");
    assert!(!servers.contains("\tstorage_port=1\n"), "{servers}");
}

/// A storage behind NAT or in a container advertises an address it does
/// not connect from; `trusted_storage_addrs` lists the ones accepted.
#[tokio::test]
async fn a_claimed_address_is_accepted_when_the_conf_trusts_it() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start_tweaked(dir.path(), |c| {
        c.trusted_storage_addrs = fdfs_util::HostList::load(&["127.0.0.1, 127.0.0.32/30".into()])
            .unwrap()
            .0;
    })
    .await;
    let addr = tr.addr;
    let claim = |ip: &str| JoinReq {
        storage_id: ip.into(),
        ..join_req(addr)
    };
    let (_a, status) = join_from("127.0.0.2", addr, &claim("127.0.0.1")).await;
    assert_eq!(status, 0);
    let (_b, status) = join_from("127.0.0.3", addr, &claim("127.0.0.33")).await;
    assert_eq!(status, 0);
    // Outside the list: refused.
    let (_c, status) = join_from("127.0.0.4", addr, &claim("127.0.0.40")).await;
    assert_eq!(status, 1);
    assert_eq!(
        rows(addr).await,
        [
            row("127.0.0.1", 23000, st::INIT),
            row("127.0.0.33", 23000, st::INIT)
        ]
    );
    tr.stop().await;
}

/// `fdfs server` trusts the address its own storage advertises only from
/// that storage's source address: a JOIN from another host claiming it,
/// even before the real storage joined, is refused.
#[tokio::test]
async fn the_embedded_storage_address_is_trusted_from_its_source_only() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start_tweaked(dir.path(), |c| {
        c.embedded_storage = Some(fdfs_config::tracker::EmbeddedStorage {
            source: "127.0.0.1".parse().unwrap(),
            advertised: "127.0.0.5".parse().unwrap(),
        });
    })
    .await;
    let addr = tr.addr;
    let claim = JoinReq {
        storage_id: "127.0.0.5".into(),
        storage_port: 1,
        ..join_req(addr)
    };
    let (_attacker, status) = join_from("127.0.0.2", addr, &claim).await;
    assert_eq!(
        status, 1,
        "EPERM for the advertised address from another host"
    );
    let mut c = TcpStream::connect(addr).await.unwrap();
    let (status, _) = call(&mut c, 92, &group_field("group1")).await;
    assert_eq!(
        status, 2,
        "the refused JOIN created nothing, not even its group"
    );
    let real = JoinReq {
        storage_id: "127.0.0.5".into(),
        ..join_req(addr)
    };
    let (_embedded, status) = join_from("127.0.0.1", addr, &real).await;
    assert_eq!(status, 0);
    assert_eq!(rows(addr).await, [row("127.0.0.5", 23000, st::INIT)]);
    tr.stop().await;
}

/// While a storage is connected, a JOIN for its record from another
/// address is refused and the live connection goes on; once it left, the
/// record may be joined again.
#[tokio::test]
async fn a_connected_storage_is_not_taken_over_from_another_address() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start_tweaked(dir.path(), |c| {
        c.trusted_storage_addrs = fdfs_util::HostList::load(&["127.0.0.1".into()]).unwrap().0;
    })
    .await;
    let addr = tr.addr;
    let mut real = active_storage("127.0.0.1", addr).await;
    let claim = JoinReq {
        storage_id: "127.0.0.1".into(),
        storage_port: 1,
        ..join_req(addr)
    };
    let (_other, status) = join_from("127.0.0.2", addr, &claim).await;
    assert_eq!(status, 16, "EBUSY");
    assert_eq!(call(&mut real, 83, &[]).await, (0, vec![0]));
    assert_eq!(rows(addr).await, [row("127.0.0.1", 23000, st::ACTIVE)]);
    assert_eq!(upload_target(addr).await, "127.0.0.1:23000");

    drop(real);
    wait_offline(addr, "127.0.0.1").await;
    let (_other, status) = join_from("127.0.0.2", addr, &claim).await;
    assert_eq!(status, 0, "a record whose storage left may be joined again");
    tr.stop().await;
}

/// A group field followed by a FDFSStorageBrief, as REPORT_STATUS sends.
fn report_status_body(id: &str, status: u8) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_group(&mut b, "group1");
    fdfs_proto::stat::StorageBrief {
        status,
        port: 0,
        id: id.into(),
        ip_addr: id.into(),
    }
    .encode(&mut b);
    b.to_vec()
}

/// A group field followed by the storage id, as DELETE_STORAGE sends.
fn delete_body(id: &str) -> Vec<u8> {
    let mut b = group_field("group1");
    b.extend_from_slice(id.as_bytes());
    b
}

/// A REPORT_IP_CHANGED (78) body.
fn ip_changed_body(old: &str, new: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_group(&mut b, "group1");
    fdfs_proto::wire::put_fixed(&mut b, old.as_bytes(), fdfs_proto::IP_ADDRESS_SIZE);
    fdfs_proto::wire::put_fixed(&mut b, new.as_bytes(), fdfs_proto::IP_ADDRESS_SIZE);
    b.to_vec()
}

/// A connected storage is not deleted (93), moved (78) or reported away
/// (76), whatever its status; REPORT_STATUS comes only from members.
#[tokio::test]
async fn a_connected_storage_is_neither_deleted_nor_moved() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start(dir.path()).await;
    let addr = tr.addr;
    let _source = active_storage("127.0.0.1", addr).await;
    // A new member: WAIT_SYNC with 127.0.0.1 as its source, connected.
    let (mut new, status) = join_from("127.0.0.2", addr, &join_req(addr)).await;
    assert_eq!(status, 0);
    let (status, body) = call(&mut new, 87, &[]).await;
    assert_eq!((status, body.len()), (0, 24));
    let mut admin = connect_from("127.0.0.9", addr).await;
    assert_eq!(call(&mut admin, 93, &delete_body("127.0.0.2")).await.0, 16);
    let mut moved = connect_from("127.0.0.5", addr).await;
    assert_eq!(
        call(&mut moved, 78, &ip_changed_body("127.0.0.2", "127.0.0.5"))
            .await
            .0,
        16
    );
    // REPORT_STATUS: a stranger is refused; the source's DELETED for a
    // connected member is not applied, its SYNCING is.
    let mut stranger = connect_from("127.0.0.7", addr).await;
    assert_eq!(
        call(
            &mut stranger,
            76,
            &report_status_body("127.0.0.2", st::SYNCING)
        )
        .await
        .0,
        1
    );
    let mut source = connect_from("127.0.0.1", addr).await;
    assert_eq!(
        call(
            &mut source,
            76,
            &report_status_body("127.0.0.2", st::DELETED)
        )
        .await
        .0,
        0
    );
    assert_eq!(
        call(
            &mut source,
            76,
            &report_status_body("127.0.0.2", st::SYNCING)
        )
        .await
        .0,
        0
    );
    assert_eq!(
        rows(addr).await,
        [
            row("127.0.0.1", 23000, st::ACTIVE),
            row("127.0.0.2", 23000, st::SYNCING)
        ]
    );
    // Gone, it may be deleted.
    drop(new);
    poll(|| async {
        let mut admin = connect_from("127.0.0.9", addr).await;
        let status = call(&mut admin, 93, &delete_body("127.0.0.2")).await.0;
        (status == 0).then_some(())
    })
    .await;
    assert_eq!(rows(addr).await, [row("127.0.0.1", 23000, st::ACTIVE)]);
    tr.stop().await;
}

/// REPORT_IP_CHANGED moves a record only to the address the report comes
/// from (the original's rule, PROTOCOL.md §4.6).
#[tokio::test]
async fn an_address_change_must_come_from_the_new_address() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start(dir.path()).await;
    let addr = tr.addr;
    drop(active_storage("127.0.0.1", addr).await);
    wait_offline(addr, "127.0.0.1").await;
    let report = ip_changed_body("127.0.0.1", "127.0.0.3");
    let mut elsewhere = connect_from("127.0.0.2", addr).await;
    assert_eq!(call(&mut elsewhere, 78, &report).await, (22, vec![]));
    assert_eq!(rows(addr).await, [row("127.0.0.1", 23000, st::OFFLINE)]);
    let mut moved = connect_from("127.0.0.3", addr).await;
    assert_eq!(call(&mut moved, 78, &report).await, (0, vec![]));
    assert_eq!(rows(addr).await, [row("127.0.0.3", 23000, st::OFFLINE)]);
    tr.stop().await;
}

/// A JOIN_LEADER (58) body naming tracker port `port`.
fn join_leader_body(port: u16) -> Vec<u8> {
    let mut b = BytesMut::new();
    fdfs_proto::leader_msg::JoinLeaderReq {
        up_time: 1,
        version: "6.16.1".into(),
        tracker_port: port,
    }
    .encode(&mut b);
    b.to_vec()
}

/// Leadership commands are taken only from trackers of our list that
/// answered as trackers (issue #10, item 7): a stranger's 68 or 66 must
/// not make the leader step down, nor 66 + 67 move the leadership.
#[tokio::test]
async fn leadership_commands_from_a_stranger_change_nothing() {
    // We lead; the rival tracker ranks lower and answers our probes.
    let scene = rival_scene("127.0.0.86", 0, 3000).await;
    let (t, rival, counts) = (&scene.t, scene.rival, &scene.counts);
    wait_for_count(&counts.reselects, "the rival was never probed").await;
    let rival_text = rival.to_string();

    let mut stranger = connect_from("127.0.0.92", t.addr).await;
    assert_eq!(call(&mut stranger, 68, &[]).await, (2, vec![]));
    assert_eq!(
        call(&mut stranger, 66, rival_text.as_bytes()).await,
        (2, vec![])
    );
    assert_eq!(
        call(&mut stranger, 67, rival_text.as_bytes()).await,
        (2, vec![])
    );
    assert_eq!(
        call(&mut stranger, 58, &join_leader_body(rival.port()))
            .await
            .0,
        2
    );
    // An address a JOIN listed as a tracker, but that never answered as
    // one, may not attach as a follower either.
    let listed_only: SocketAddr = "127.0.0.93:1".parse().unwrap();
    let listing = JoinReq {
        trackers: vec![
            t.addr.to_string(),
            rival_text.clone(),
            listed_only.to_string(),
        ],
        ..join_req(t.addr)
    };
    assert_eq!(join_from("127.0.0.1", t.addr, &listing).await.1, 0);
    let mut follower = connect_from("127.0.0.93", t.addr).await;
    assert_eq!(call(&mut follower, 58, &join_leader_body(1)).await.0, 2);
    assert_eq!(claims_leadership(t.addr).await, Some(true), "we still lead");
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    assert_eq!(
        call(&mut c, 95, &[]).await,
        (0, t.addr.to_string().into_bytes())
    );
    // From the rival's own address the commands pass the check: a commit
    // without a proposal then fails the proposal rule (EINVAL).
    let mut from_rival = connect_from("127.0.0.86", t.addr).await;
    assert_eq!(
        call(&mut from_rival, 67, rival_text.as_bytes()).await,
        (22, vec![])
    );
    scene.fake.abort();
    scene.t.stop().await;
}

/// JOINs may list any addresses as trackers: the list stays bounded, the
/// entries that never answer stop being polled as peers, and a real
/// tracker listed afterwards is still found (issue #10, item 7).
#[tokio::test]
async fn fake_tracker_lists_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = fdfs_tracker::Tracker::open(TrackerConf {
        base_path: dir.path().to_path_buf(),
        network_timeout_secs: 10,
        ..TrackerConf::default()
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(fdfs_tracker::serve(listener, tracker.clone(), stop.clone()));
    // 13 JOINs of 16 entries each: 208 addresses where nothing listens.
    for j in 0..13u16 {
        let trackers = (0..16u16)
            .map(|k| format!("127.0.0.{}:{}", 100 + j, 1 + k))
            .collect();
        let req = JoinReq {
            trackers,
            ..join_req(addr)
        };
        let (_s, status) = join_from("127.0.0.1", addr, &req).await;
        assert_eq!(status, 0);
    }
    let bound = fdfs_tracker::leader::MAX_UNVERIFIED_TRACKERS;
    assert!(tracker.relation().listed.len() <= bound);
    poll_within(Duration::from_secs(60), || async {
        (!tracker.relation().has_peers()).then_some(())
    })
    .await;

    // A real tracker (a stand-in answering as one) listed now takes the
    // place of a dormant entry and is verified.
    let counts = Arc::new(RivalCounts::default());
    let real_listener = TcpListener::bind("127.0.0.88:0").await.unwrap();
    let real = real_listener.local_addr().unwrap();
    let fake = tokio::spawn(rival_leader(real_listener, 0, 0, counts.clone()));
    let req = JoinReq {
        trackers: vec![real.to_string()],
        ..join_req(addr)
    };
    let (_s, status) = join_from("127.0.0.1", addr, &req).await;
    assert_eq!(status, 0);
    poll_within(Duration::from_secs(60), || async {
        tracker.relation().is_verified(real).then_some(())
    })
    .await;
    assert!(tracker.relation().listed.len() <= bound);
    fake.abort();
    stop.cancel();
    handle.await.unwrap().unwrap();
}

/// Every line of a data file rendered in the original's layout.
fn well_formed_data_line(line: &str) -> bool {
    line.is_empty()
        || line.starts_with("# ")
        || line == "[Global]"
        || ["[Group", "[Storage"]
            .iter()
            .any(|p| line.starts_with(p) && line.ends_with(']'))
        || line
            .strip_prefix('\t')
            .and_then(|l| l.split_once('='))
            .is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
}

/// Peer text that would break the data files (a newline starts a new
/// line, a space a new changelog field) is refused with EINVAL before it
/// is stored (issue #10, item 9).
#[tokio::test]
async fn text_fields_that_would_break_the_data_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tr = start(dir.path()).await;
    let addr = tr.addr;
    let _good = active_storage("127.0.0.1", addr).await;

    // The 8-byte version field starts at offset 65 (§4.2).
    let mut body = join_body(addr);
    body[65..73].copy_from_slice(b"6.1\n[x]\0");
    let mut s = connect_from("127.0.0.2", addr).await;
    assert_eq!(call(&mut s, 81, &body).await, (22, vec![]));
    let bad_id = JoinReq {
        storage_id: "127.0.0.2\nx".into(),
        ..join_req(addr)
    };
    assert_eq!(join_from("127.0.0.2", addr, &bad_id).await.1, 22);
    let bad_tracker = JoinReq {
        trackers: vec![format!("{addr} x")],
        ..join_req(addr)
    };
    assert_eq!(join_from("127.0.0.2", addr, &bad_tracker).await.1, 22);
    let mut c = connect_from("127.0.0.1", addr).await;
    assert_eq!(call(&mut c, 93, &delete_body("1\n2")).await.0, 22);
    assert_eq!(
        call(&mut c, 76, &report_status_body("127.0.0.1 x", st::OFFLINE))
            .await
            .0,
        22
    );
    assert_eq!(
        call(&mut c, 78, &ip_changed_body("1 2", "127.0.0.1"))
            .await
            .0,
        22
    );
    assert_eq!(rows(addr).await, [row("127.0.0.1", 23000, st::ACTIVE)]);
    drop((s, c));
    tr.stop().await;
    for file in ["storage_servers_new.dat", "storage_groups_new.dat"] {
        let text = std::fs::read_to_string(dir.path().join("data").join(file)).unwrap();
        assert!(text.lines().all(well_formed_data_line), "{file}:\n{text}");
    }
    let servers = std::fs::read_to_string(dir.path().join("data/storage_servers_new.dat")).unwrap();
    assert_eq!(servers.matches("[Storage").count(), 1, "{servers}");
    assert!(servers.contains("\tversion=6.16.1\n"), "{servers}");
}

// ---- Issue #13.1: the cluster statistics commands 96, 97, 98 ----

use fdfs_proto::cluster_stat::{
    decode_tracker_stats, StorageClusterStat, TrackerStatEntry, VolumnStat,
};

async fn tracker_stats(c: &mut TcpStream, filter: [u8; 3]) -> Vec<TrackerStatEntry> {
    let (status, body) = call(c, 96, &filter).await;
    assert_eq!(status, 0);
    decode_tracker_stats(&body).unwrap()
}

async fn storage_stats(c: &mut TcpStream, filter: [u8; 4]) -> StorageClusterStat {
    let (status, body) = call(c, 97, &filter).await;
    assert_eq!(status, 0);
    StorageClusterStat::decode(&body).unwrap()
}

async fn volumn_stats(c: &mut TcpStream, filter: [u8; 4]) -> VolumnStat {
    let (status, body) = call(c, 98, &filter).await;
    assert_eq!(status, 0);
    VolumnStat::decode(&body).unwrap()
}

/// 96/97/98 answer as the original (§2.10–§2.12): wrong body lengths are
/// EINVAL and leave the connection usable, the filters select as the C
/// tools ask, and the listings carry what the storages reported.
#[tokio::test]
async fn cluster_stat_commands_answer_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path()).await;
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    for (cmd, good) in [(96u8, 3usize), (97, 4), (98, 4)] {
        for len in [0, good - 1, good + 1] {
            assert_eq!(
                call(&mut c, cmd, &vec![0; len]).await.0,
                22,
                "cmd {cmd} len {len}"
            );
        }
    }

    // No groups yet: empty listings; a lone tracker leads and lists itself.
    assert_eq!(
        storage_stats(&mut c, [0, b'=', 0, 0]).await.storages,
        vec![]
    );
    assert_eq!(volumn_stats(&mut c, [0; 4]).await.groups, vec![]);
    let me = tracker_stats(&mut c, [0; 3]).await;
    assert_eq!(me.len(), 1);
    let me = &me[0];
    assert_eq!(me.host, t.addr.to_string());
    assert!(me.is_leader && me.is_active);
    assert_eq!(me.version, "6.16.1");
    assert_eq!(me.last_heartbeat_time, 0);
    assert!(
        (fdfs_tracker::now_secs() - me.up_time).abs() < 120,
        "up_time is the start time"
    );
    assert!(me.connections.current >= 1 && me.connections.max >= me.connections.current);
    // Filters: followers only (-F) and inactive only (-N) list nothing.
    assert!(tracker_stats(&mut c, [2, 0, 0]).await.is_empty());
    assert!(tracker_stats(&mut c, [1, 0, 0]).await.is_empty());
    assert_eq!(tracker_stats(&mut c, [3, 1, 1]).await.len(), 1);

    // Two storages: one ACTIVE with space, one that joined only.
    let _active = active_storage("127.0.0.41", t.addr).await;
    let (_joined, status) = join_from("127.0.0.42", t.addr, &join_req(t.addr)).await;
    assert_eq!(status, 0);
    let all = storage_stats(&mut c, [0, b'=', 0, 0]).await;
    assert!(!all.use_storage_id && !all.use_trunk_file);
    let hosts: Vec<(&str, u8)> = all
        .storages
        .iter()
        .map(|s| (s.host.as_str(), s.status))
        .collect();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0], ("127.0.0.41:23000", st::ACTIVE));
    assert_eq!(hosts[1].0, "127.0.0.42:23000");
    let active = &all.storages[0];
    assert_eq!(active.id, "127.0.0.41");
    assert_eq!(active.version, "6.16.1");
    assert!(active.up_time > 0);
    assert!(active.last_heartbeat_time > 0, "the BEAT time");
    // -A (= ACTIVE), -N (! ACTIVE), an unknown operator lists nothing; the
    // trunk filter is ignored without trunk files.
    let ids = |s: StorageClusterStat| s.storages.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(storage_stats(&mut c, [2, b'=', 7, 0]).await),
        ["127.0.0.41"]
    );
    assert_eq!(
        ids(storage_stats(&mut c, [2, b'!', 7, 0]).await),
        ["127.0.0.42"]
    );
    assert!(ids(storage_stats(&mut c, [2, b'<', 7, 0]).await).is_empty());
    assert_eq!(ids(storage_stats(&mut c, [1, b'=', 0, 1]).await).len(), 2);

    // The group's space: the ACTIVE storage reported 100 000 MB total and
    // 50 000 MB free; the default reservation is 1024 MB.
    let v = volumn_stats(&mut c, [0; 4]).await;
    assert!(!v.use_trunk_file);
    assert_eq!(v.groups.len(), 1);
    let g = &v.groups[0];
    assert_eq!(g.group_name, "group1");
    assert_eq!(
        (g.total_mb, g.free_mb, g.reserved_mb),
        (100_000, 50_000, 1024)
    );
    assert_eq!(g.avail_mb, 50_000 - 1024);
    assert_eq!(g.trunk_free_mb, 0);
    assert!(g.is_disk_available && !g.is_trunk_available);
    // -A lists it, -N and -d do not.
    assert_eq!(volumn_stats(&mut c, [4, 0, 0, 1]).await.groups.len(), 1);
    assert!(volumn_stats(&mut c, [4, 0, 0, 0]).await.groups.is_empty());
    assert!(volumn_stats(&mut c, [1, 0, 0, 0]).await.groups.is_empty());
    t.stop().await;
}

/// 96 lists the other trackers of the list with what they told the leader
/// (JOIN_LEADER: start time and version; PING_LEADER: connection counts),
/// active while they ping; a tracker that follows answers EOPNOTSUPP.
#[tokio::test]
async fn tracker_cluster_stat_lists_followers_and_only_the_leader_answers() {
    // We lead; the other tracker answered GET_STATUS but has not joined us.
    let scene = rival_scene("127.0.0.85", 0, 3000).await;
    let (t, rival) = (&scene.t, scene.rival);
    wait_for_count(
        &scene.counts.reselects,
        "the rival was never told to step down",
    )
    .await;
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    let listed = tracker_stats(&mut c, [0; 3]).await;
    let other = listed
        .iter()
        .find(|e| e.host == rival.to_string())
        .expect("the other tracker is listed");
    assert!(!other.is_leader && !other.is_active);
    assert_eq!(other.version, "");
    let inactive = tracker_stats(&mut c, [1, 0, 0]).await;
    assert_eq!(inactive.len(), 1);
    assert_eq!(inactive[0].host, rival.to_string());

    // It joins us as a follower and pings.
    let mut follower = connect_from(&rival.ip().to_string(), t.addr).await;
    let mut jl = BytesMut::new();
    fdfs_proto::leader_msg::JoinLeaderReq {
        up_time: 1_700_000_000,
        version: "6.16.1".into(),
        tracker_port: rival.port(),
    }
    .encode(&mut jl);
    assert_eq!(call(&mut follower, 58, &jl).await.0, 0);
    let mut ping = BytesMut::new();
    fdfs_proto::leader_msg::PingLeaderReq {
        alloc_connections: 64,
        current_connections: 3,
        max_connections: 9,
    }
    .encode(&mut ping);
    assert_eq!(call(&mut follower, 65, &ping).await.0, 0);
    let followers = tracker_stats(&mut c, [2, 0, 0]).await;
    assert_eq!(followers.len(), 1);
    let f = &followers[0];
    assert_eq!(f.host, rival.to_string());
    assert!(f.is_active && !f.is_leader);
    assert_eq!((f.version.as_str(), f.up_time), ("6.16.1", 1_700_000_000));
    assert_eq!(
        (
            f.connections.alloc,
            f.connections.current,
            f.connections.max
        ),
        (64, 3, 9)
    );
    assert!(f.last_heartbeat_time > 0);
    scene.fake.abort();
    scene.t.stop().await;

    // A tracker that follows another answers EOPNOTSUPP.
    let scene = rival_scene("127.0.0.86", 3000, 0).await;
    wait_for_count(&scene.counts.joins, "the tracker never followed").await;
    let mut c = TcpStream::connect(scene.t.addr).await.unwrap();
    assert_eq!(call(&mut c, 96, &[0; 3]).await.0, 95);
    // 97 and 98 are answered by every tracker.
    assert_eq!(call(&mut c, 97, &[0, b'=', 0, 0]).await.0, 0);
    assert_eq!(call(&mut c, 98, &[0; 4]).await.0, 0);
    scene.fake.abort();
    scene.t.stop().await;
}

/// A group whose free space is within the reservation is not disk
/// available: 98 reports avail 0 and `-d` (not disk available) lists it.
#[tokio::test]
async fn volumn_stat_reports_a_full_group_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let t = start_tweaked(dir.path(), |c| {
        c.reserved_storage_space = fdfs_config::ReservedSpace::Megabytes(60_000);
    })
    .await;
    let _storage = active_storage("127.0.0.43", t.addr).await;
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    let v = volumn_stats(&mut c, [0; 4]).await;
    let g = &v.groups[0];
    assert_eq!((g.free_mb, g.reserved_mb, g.avail_mb), (50_000, 60_000, 0));
    assert!(!g.is_disk_available && !g.is_trunk_available);
    assert_eq!(volumn_stats(&mut c, [1, 0, 0, 0]).await.groups.len(), 1);
    assert!(volumn_stats(&mut c, [4, 0, 0, 1]).await.groups.is_empty());
    t.stop().await;
}

/// PARAMETER_REQ (75) of a trunk-enabled tracker.conf carries every trunk
/// key as the original prints it (§2.13): caps applied, times as HH:MM,
/// booleans as 0/1, sizes in bytes. The text also reads back into the
/// storage's typed settings.
#[tokio::test]
async fn parameter_answer_carries_the_trunk_settings() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "base_path = {}\nnetwork_timeout = 10\nuse_trunk_file = true\nslot_min_size = 256\n\
         slot_max_size = 4MB\ntrunk_file_size = 4MB\ntrunk_alloc_alignment_size = 512\n\
         trunk_create_file_advance = true\ntrunk_create_file_time_base = 02:30\n\
         trunk_create_file_interval = 3600\ntrunk_create_file_space_threshold = 20G\n\
         trunk_init_check_occupying = true\ntrunk_init_reload_from_binlog = true\n\
         trunk_free_space_merge = true\ndelete_unused_trunk_files = true\n\
         trunk_compress_binlog_min_interval = 60\ntrunk_compress_binlog_interval = 86400\n\
         trunk_compress_binlog_time_base = 03:15\ntrunk_binlog_max_backups = 7\n\
         store_slave_file_use_link = true\n",
        dir.path().display()
    );
    let ini = fdfs_config::IniFile::parse_str(&text, Path::new("tracker.conf")).unwrap();
    let (conf, _warnings) = TrackerConf::from_ini(&ini).unwrap();
    let expected = conf.trunk_params();
    let t = start_with(conf).await;
    let mut s = TcpStream::connect(t.addr).await.unwrap();
    let (status, body) = call(&mut s, 75, &[]).await;
    assert_eq!(status, 0);
    let answer = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(lines.len(), 26, "{answer}");
    assert_eq!(
        &lines[8..],
        &[
            "use_trunk_file=1",
            // Raised to the alignment.
            "slot_min_size=512",
            // Capped at trunk_file_size / 2.
            "slot_max_size=2097152",
            "trunk_alloc_alignment_size=512",
            "trunk_file_size=4194304",
            "trunk_create_file_advance=1",
            "trunk_create_file_time_base=02:30",
            "trunk_create_file_interval=3600",
            "trunk_create_file_space_threshold=21474836480",
            "trunk_init_check_occupying=1",
            "trunk_init_reload_from_binlog=1",
            "trunk_free_space_merge=1",
            "delete_unused_trunk_files=1",
            "trunk_compress_binlog_min_interval=60",
            "trunk_compress_binlog_interval=86400",
            "trunk_compress_binlog_time_base=03:15",
            "trunk_binlog_max_backups=7",
            "store_slave_file_use_link=1",
        ]
    );
    assert!(answer.len() < 1024);
    let learnt = fdfs_config::TrunkParams::default().with_parameter_text(&answer);
    assert_eq!(learnt, expected);
    assert!(learnt.use_trunk_file);
    drop(s);
    t.stop().await;
}
