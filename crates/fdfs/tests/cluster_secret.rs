//! The cluster secret (#12.7a, `cluster_secret_file`): with it, a tracker
//! takes JOIN and REPORT_IP_CHANGED only from a connection that proved the
//! secret, and a storage takes REPORT_SERVER_ID and SYNC_* only from a peer
//! that proved it; our storages prove it on their own, and clients (ours
//! and py3fdfs) are unaffected.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use fdfs_client::{ClientError, Conn, UploadOptions};
use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::sync_msg::SyncFileReq;
use fdfs_proto::{Status, StorageCmd, TrackerCmd};
use fdfs_testkit::group::{Group, GroupOptions};
use fdfs_testkit::wait_until;
use fdfs_util::cluster_secret::{ClusterSecret, Purpose};

const DEADLINE: Duration = Duration::from_secs(60);
const SECRET: &[u8] = b"a cluster secret of enough bytes\n";

fn secret() -> ClusterSecret {
    ClusterSecret::from_bytes(SECRET).unwrap()
}

/// A tracker and `members` storages of group1, all with the secret.
fn secret_group(members: usize) -> Group {
    let g = Group::start_with(GroupOptions {
        groups: vec![("group1", members)],
        tweak_tracker: Some(Arc::new(|c| c.cluster_secret = Some(secret()))),
        tweak_storage: Some(Arc::new(|c| c.cluster_secret = Some(secret()))),
        ..GroupOptions::default()
    });
    assert!(
        g.wait_all_active(DEADLINE),
        "storages that prove the secret join and turn ACTIVE"
    );
    g
}

fn status(r: Result<Vec<u8>, ClientError>) -> u8 {
    match r {
        Ok(_) => 0,
        Err(ClientError::Status(s)) => s.0,
        Err(e) => panic!("no status: {e}"),
    }
}

#[test]
fn a_rogue_join_is_refused_without_the_secret() {
    let g = secret_group(1);
    let eperm = Status::EPERM.0;
    g.block_on(async {
        let mut t = fdfs_testkit::connect(g.tracker_addr).await;
        assert_eq!(
            status(
                t.call(TrackerCmd::StorageJoin.into(), &g.join_body("group1"))
                    .await
            ),
            eperm,
            "JOIN without a proof"
        );
        // The refusal closed nothing: the rogue tries a wrong secret.
        let mut t = fdfs_testkit::connect(g.tracker_addr).await;
        let wrong = ClusterSecret::from_bytes(b"not the cluster secret at all").unwrap();
        let err = t
            .prove_cluster_secret(&wrong, Purpose::TrackerJoin)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Status(s) if s == Status::EPERM),
            "{err}"
        );
        assert_eq!(
            status(
                t.call(TrackerCmd::StorageJoin.into(), &g.join_body("group1"))
                    .await
            ),
            eperm,
            "JOIN after a wrong proof"
        );
        // A proof made for storage sync does not open the tracker.
        let mut t = fdfs_testkit::connect(g.tracker_addr).await;
        let nonce = t
            .call(fdfs_proto::CMD_CLUSTER_CHALLENGE, &[])
            .await
            .unwrap();
        let proof = secret().prove(Purpose::StorageSync, &nonce);
        assert_eq!(
            status(t.call(fdfs_proto::CMD_CLUSTER_PROVE, &proof).await),
            eperm
        );
        // A proof without a challenge, replaying the last nonce.
        let proof = secret().prove(Purpose::TrackerJoin, &nonce);
        assert_eq!(
            status(t.call(fdfs_proto::CMD_CLUSTER_PROVE, &proof).await),
            eperm,
            "each challenge takes one answer"
        );
        assert_eq!(
            status(
                t.call(TrackerCmd::StorageReportIpChanged.into(), &[0u8; 32])
                    .await
            ),
            eperm,
            "REPORT_IP_CHANGED without a proof"
        );
    });
    assert_eq!(g.list_storages(0, "group1").len(), 1, "nobody was added");

    // The same JOIN with the secret proven is taken: the refusal was the
    // secret's doing.
    g.block_on(async {
        let mut t = fdfs_testkit::connect(g.tracker_addr).await;
        t.prove_cluster_secret(&secret(), Purpose::TrackerJoin)
            .await
            .unwrap();
        t.call(TrackerCmd::StorageJoin.into(), &g.join_body("group1"))
            .await
            .unwrap();
    });
    assert_eq!(g.list_storages(0, "group1").len(), 2);
}

#[test]
fn a_rogue_sync_create_is_refused_without_the_secret() {
    let g = secret_group(1);
    let remote = "M00/00/00/rogue.txt";
    let mut create = BytesMut::new();
    SyncFileReq {
        remote: remote.into(),
        file_size: 5,
        timestamp: 1_700_000_000,
        group: "group1".into(),
    }
    .encode_head(&mut create);
    create.put_slice(b"rogue");
    let mut server_id = BytesMut::new();
    fdfs_proto::wire::put_fixed(
        &mut server_id,
        b"127.0.0.1",
        fdfs_proto::STORAGE_ID_MAX_SIZE,
    );
    g.block_on(async {
        let mut s = fdfs_testkit::connect(g.storage_addr(0)).await;
        assert_eq!(
            status(s.call(StorageCmd::SyncCreateFile.into(), &create).await),
            Status::EPERM.0
        );
        let mut s = fdfs_testkit::connect(g.storage_addr(0)).await;
        assert_eq!(
            status(s.call(StorageCmd::ReportServerId.into(), &server_id).await),
            Status::EPERM.0
        );
        // A wrong proof does not help either.
        let mut s = fdfs_testkit::connect(g.storage_addr(0)).await;
        let wrong = ClusterSecret::from_bytes(b"not the cluster secret at all").unwrap();
        assert!(s
            .prove_cluster_secret(&wrong, Purpose::StorageSync)
            .await
            .is_err());
        assert_eq!(
            status(s.call(StorageCmd::SyncCreateFile.into(), &create).await),
            Status::EPERM.0
        );
        // With the proof, the peer is heard.
        let mut s: Conn = fdfs_testkit::connect(g.storage_addr(0)).await;
        s.prove_cluster_secret(&secret(), Purpose::StorageSync)
            .await
            .unwrap();
        s.call(StorageCmd::ReportServerId.into(), &server_id)
            .await
            .unwrap();
    });
    assert!(
        !g.store_path(0).join("data/00/00/rogue.txt").exists(),
        "nothing was written"
    );
}

#[test]
fn a_secret_cluster_replicates_and_serves_clients() {
    let g = secret_group(2);
    let client = g.client();
    let data = b"replicated under a cluster secret".to_vec();
    let id = g
        .block_on(client.upload_buffer(&data, &UploadOptions::default()))
        .unwrap();
    let on_both = wait_until(DEADLINE, || {
        (0..2).all(|i| {
            g.block_on(async {
                let Ok(mut c) = fdfs_testkit::try_connect(g.storage_addr(i)).await else {
                    return false;
                };
                let mut req = BytesMut::new();
                DownloadReq {
                    offset: 0,
                    length: 0,
                    group: id.group.clone(),
                    remote: id.remote.clone(),
                }
                .encode(&mut req);
                c.call(StorageCmd::DownloadFile.into(), &req)
                    .await
                    .is_ok_and(|b| b == data)
            })
        })
    });
    assert!(on_both, "{id} reached both members");

    // py3fdfs, which knows nothing of the secret, works as before.
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "connect_timeout = 30\nnetwork_timeout = 30\nbase_path = {}\ntracker_server = {}\n",
            work.path().display(),
            g.tracker_addr
        ),
    )
    .unwrap();
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/py3fdfs_interop.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&conf)
        .arg(work.path())
        .arg(id.to_string())
        .arg(hex)
        .output()
        .expect("python3 must be installed to run the py3fdfs interop test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "py3fdfs script failed (is py3fdfs installed?)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "\"buffer_roundtrip\": true",
        "\"file_roundtrip\": true",
        "\"foreign_matches\": true",
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
}
