//! Interop with an independent FastDFS client: the PyPI package py3fdfs
//! uploads, downloads, appends, edits and deletes through our tracker and
//! storage, and our side checks every result byte for byte. The test fails
//! (never skips) when python3 or py3fdfs is missing.

use std::process::Command;

use bytes::{BufMut, BytesMut};
use fdfs_client::Conn;
use fdfs_proto::storage_msg::{DownloadReq, FileIdResp, UploadReq};
use fdfs_proto::StorageCmd;
use fdfs_testkit::{rt, Cluster};

async fn storage(cluster: &Cluster) -> Conn {
    fdfs_testkit::connect(cluster.storage_addr).await
}

async fn download(conn: &mut Conn, file_id: &str) -> Result<Vec<u8>, fdfs_client::ClientError> {
    let (group, remote) = file_id.split_once('/').unwrap();
    let mut b = BytesMut::new();
    DownloadReq {
        offset: 0,
        length: 0,
        group: group.into(),
        remote: remote.into(),
    }
    .encode(&mut b);
    conn.call(StorageCmd::DownloadFile.into(), &b).await
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn py3fdfs_drives_our_servers() {
    let cluster = Cluster::start();
    let conf = cluster.write_client_conf();
    let work = tempfile::tempdir().unwrap();

    // A file uploaded by our side, for py3fdfs to read.
    let ours = b"uploaded by fastdfs-rs\n".repeat(100);
    let ours_id = rt().block_on(async {
        let mut s = storage(&cluster).await;
        let mut b = BytesMut::new();
        UploadReq {
            store_path_index: -1,
            file_size: ours.len() as u64,
            ext: "txt".into(),
        }
        .encode_head(&mut b);
        b.put_slice(&ours);
        let r =
            FileIdResp::decode(&s.call(StorageCmd::UploadFile.into(), &b).await.unwrap()).unwrap();
        format!("{}/{}", r.group, r.remote)
    });

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/py3fdfs_interop.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&conf)
        .arg(work.path())
        .arg(&ours_id)
        .arg(hex(&ours))
        .output()
        .expect("python3 must be installed to run the py3fdfs interop test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "py3fdfs script failed (is py3fdfs installed? `python3 -m pip install py3fdfs`)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |key: &str| -> String {
        let pat = format!("\"{key}\": ");
        let start = stdout
            .find(&pat)
            .unwrap_or_else(|| panic!("{key} missing in {stdout}"))
            + pat.len();
        let rest = &stdout[start..];
        if let Some(s) = rest.strip_prefix('"') {
            s[..s.find('"').unwrap()].to_string()
        } else {
            rest[..rest.find([',', '}']).unwrap()].to_string()
        }
    };

    assert_eq!(field("buffer_status"), "Upload successed.");
    assert_eq!(field("buffer_roundtrip"), "true");
    assert_eq!(field("file_roundtrip"), "true");
    assert_eq!(
        field("foreign_matches"),
        "true",
        "py3fdfs reads what we uploaded"
    );
    assert!(
        field("file_id").ends_with(".tar.gz"),
        "double extension kept"
    );
    assert_eq!(field("append_status"), "Append file successed.");
    assert_eq!(field("appender_content"), "line one\\nline two\\n");
    assert_eq!(field("appender_after_edit"), "LINE one");
    assert_eq!(field("delete_result"), "Delete file successed.");
    assert!(field("second_delete").contains("Error: 2"), "{stdout}");
    assert!(field("download_deleted").contains("Error: 2"), "{stdout}");

    // Our side agrees with what py3fdfs did.
    rt().block_on(async {
        let mut s = storage(&cluster).await;
        let local: Vec<u8> = (0..=255u8).collect::<Vec<u8>>().repeat(300);
        assert_eq!(download(&mut s, &field("file_id")).await.unwrap(), local);
        assert_eq!(
            download(&mut s, &field("appender_id")).await.unwrap(),
            b"LINE one"
        );
        assert!(
            download(&mut s, &field("buffer_id")).await.is_err(),
            "deleted by py3fdfs"
        );
    });
}
