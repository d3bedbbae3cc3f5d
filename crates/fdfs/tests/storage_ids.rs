//! `use_storage_id` end to end: a tracker with storage_ids.conf and a group
//! of two storages known as 100001 and 100002. File names carry the
//! numeric id (`id_type_in_filename = id`), files replicate to both
//! members with `<id>.mark` progress files, the client maps ids back to
//! addresses, and a storage missing from storage_ids.conf is refused.

use std::time::Duration;

use bytes::BytesMut;
use fdfs_client::{ClientError, Conn, UploadOptions};
use fdfs_proto::fileid::{FileNameRecord, FileSource, FILENAME_BASE64_LENGTH, LOGIC_FILE_PATH_LEN};
use fdfs_proto::storage_msg::DownloadReq;
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::{FileId, StorageCmd, TrackerCmd};
use fdfs_testkit::group::{Group, GroupOptions};
use fdfs_testkit::wait_until;

const DEADLINE: Duration = Duration::from_secs(30);
const IDS: [u32; 2] = [100_001, 100_002];

fn source_of(id: &FileId) -> FileSource {
    let b64 = &id.remote[LOGIC_FILE_PATH_LEN..LOGIC_FILE_PATH_LEN + FILENAME_BASE64_LENGTH];
    FileNameRecord::decode(b64).expect("file record").source()
}

/// DOWNLOAD_FILE straight from member `i` (no tracker involved).
fn download_from(g: &Group, i: usize, id: &FileId) -> Option<Vec<u8>> {
    g.block_on(async {
        let mut c = Conn::connect(
            &g.storage_addr(i).to_string(),
            Duration::from_secs(2),
            Duration::from_secs(10),
        )
        .await
        .ok()?;
        let mut b = BytesMut::new();
        DownloadReq {
            offset: 0,
            length: 0,
            group: id.group.clone(),
            remote: id.remote.clone(),
        }
        .encode(&mut b);
        c.call(StorageCmd::DownloadFile.into(), &b).await.ok()
    })
}

#[test]
fn storage_ids_end_to_end() {
    let mut g = Group::start_with(GroupOptions {
        groups: vec![("group1", 2)],
        storage_ids: IDS.to_vec(),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE), "both members ACTIVE");

    // The tracker lists the members under their ids, with their addresses.
    let listed: Vec<(String, String)> = g
        .list_storages(0, "group1")
        .into_iter()
        .map(|s| (s.id, s.ip_addr))
        .collect();
    assert_eq!(
        listed,
        [
            ("100001".to_string(), g.storage_ip(0).to_string()),
            ("100002".to_string(), g.storage_ip(1).to_string()),
        ]
    );

    let client = g.client();
    let data = b"storage ids end to end\n";
    for (i, id_num) in IDS.into_iter().enumerate() {
        // Upload to member i directly, so both ids appear in names.
        let opts = UploadOptions {
            ext: Some("txt".into()),
            storage: Some(ServerAddr {
                ip: g.storage_ip(i).to_string(),
                port: g.port,
            }),
            ..UploadOptions::default()
        };
        let id = g.block_on(client.upload_buffer(data, &opts)).unwrap();
        assert_eq!(source_of(&id), FileSource::ServerId(id_num), "{id:?}");

        // Replicated to both members.
        for member in 0..2 {
            assert!(
                wait_until(DEADLINE, || download_from(&g, member, &id).as_deref()
                    == Some(&data[..])),
                "member {member} has {}",
                id.remote
            );
        }

        // Through the tracker, and the id mapped back to the address.
        let got = g.block_on(client.download_to_vec(&id, 0, 0)).unwrap();
        assert_eq!(got, data);
        let info = g.block_on(client.file_info(&id, true, 0)).unwrap();
        assert_eq!(info.source_id, id_num);
        assert_eq!(info.source_ip, g.storage_ip(i));
        assert!(!info.get_from_server);
        assert_eq!(info.file_size, data.len() as i64);
        // QUERY_FILE_INFO answered by a storage maps the id as well.
        let answer = g.block_on(client.query_file_info(&id, 0)).unwrap();
        assert_eq!(answer.source_ip, g.storage_ip(i));
    }

    // Replication progress is kept per peer id (§5.2).
    for (i, peer) in [(0, "100002"), (1, "100001")] {
        let mark = g.store_path(i).join(format!("data/sync/{peer}.mark"));
        assert!(
            wait_until(DEADLINE, || mark.exists()),
            "{} missing",
            mark.display()
        );
    }

    // `fdfs monitor sync` names each member with its id, and its peers by id.
    let mut report = String::new();
    let caught_up = wait_until(DEADLINE, || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fdfs"))
            .args(["monitor", "--tracker", &g.tracker_addr.to_string(), "sync"])
            .output()
            .expect("run fdfs monitor");
        report = String::from_utf8_lossy(&out.stdout).into_owned();
        report.contains("from 100002: lag 0 s") && report.contains("from 100001: lag 0 s")
    });
    assert!(caught_up, "{report}");
    for (i, id) in [(0, "100001"), (1, "100002")] {
        let head = format!("  {}:", g.storage_ip(i));
        let line = report.lines().find(|l| l.starts_with(&head)).unwrap_or("");
        assert!(line.ends_with(&format!("(id {id})")), "{report}");
    }

    // A storage that storage_ids.conf does not list is refused: its JOIN
    // (sent here by hand from its own address) answers ENOENT, and the
    // real one never becomes a member.
    let stranger = g.add_storage();
    let ip: std::net::IpAddr = g.storage_ip(stranger).parse().unwrap();
    let refused = g.block_on(async {
        let mut c = Conn::connect_from(
            &g.tracker_addr.to_string(),
            Some(ip),
            Duration::from_secs(2),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let body = g.join_body("group1");
        c.call(TrackerCmd::StorageJoin.into(), &body).await
    });
    match refused {
        Err(ClientError::Status(s)) => assert_eq!(s, fdfs_proto::Status::ENOENT),
        other => panic!("expected ENOENT, got {other:?}"),
    }
    std::thread::sleep(Duration::from_secs(2));
    let members = g.list_storages(0, "group1");
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.iter().all(|s| s.ip_addr != ip.to_string()));
    g.stop_storage(stranger);
}
