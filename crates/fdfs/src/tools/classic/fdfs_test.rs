//! `fdfs_test`, the C client's demo program: upload with a slave copy,
//! download, metadata, delete and query_servers, with the C tool's
//! banner, step names and exit codes (PROTOCOL §12.8).

use std::path::Path;
use std::process::ExitCode;

use fdfs_client::{ClientError, FileInfo, UploadOptions};
use fdfs_config::ClientConf;
use fdfs_http::token::make_token;
use fdfs_proto::fileid::{ext_from_local_name, slave_remote_name};
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::FileId;

use super::{fail_on_stdout, failure_line, prog, run_tool, split_metadata};
use crate::tools::format::{errno_line, local_datetime};
use crate::tools::session::{exit_code, report, Session};

const FDFS_TEST_BANNER: &str = "This is FastDFS client test program v6.16.1\n\
\nCopyright (C) 2008, Happy Fish / YuQing\n\
\nFastDFS may be copied only under the terms of the GNU General\n\
Public License V3, which may be found in the FastDFS source kit.\n\
Please visit the FastDFS Home Page http://www.fastken.com/ \n\
for more detail.\n\n";

/// Runs fdfs_test; `argv` includes the program name.
pub(super) fn main(argv: &[String]) -> ExitCode {
    out!("{FDFS_TEST_BANNER}");
    let usage = |prog: &str| {
        outln!(
            "Usage: {prog} <config_file> <operation>\n\toperation: upload, download, getmeta, setmeta, delete and query_servers"
        )
    };
    run_tool(argv, 3, usage, |s| {
        let prog = prog(argv);
        let op = argv[2].as_str();
        match op {
            "upload" => {
                if argv.len() < 4 {
                    outln!(
                        "Usage: {prog} <config_file> upload <local_filename> [FILE | BUFF | CALLBACK] "
                    );
                    return exit_code(22);
                }
                s.rt.block_on(test_upload(s, &argv[3], argv.get(4).map(String::as_str)))
            }
            "download" | "getmeta" | "setmeta" | "query_servers" | "delete" => {
                if argv.len() < 5 {
                    outln!("Usage: {prog} <config_file> {op} <group_name> <remote_filename>");
                    return exit_code(22);
                }
                s.rt.block_on(test_file_op(s, prog, op, argv))
            }
            _ => {
                outln!("invalid operation: {op}");
                exit_code(22)
            }
        }
    })
}

/// The example URL fdfs_test prints for a file; with anti-steal on it is
/// signed at `now` the way the C tool signs it: over the whole file id,
/// group included (PROTOCOL §9.2).
fn example_url(storage_ip: &str, id: &FileId, conf: &ClientConf, now: i64) -> String {
    let mut url = format!("http://{storage_ip}/{id}");
    if conf.http_anti_steal_check_token {
        let token = make_token(&id.to_string(), &conf.http_anti_steal_secret_key, now);
        url.push_str(&format!("?token={token}&ts={now}"));
    }
    url
}

/// The "source ip / timestamp / size / crc32 / url" block of fdfs_test.
async fn print_uploaded(s: &Session, id: &FileId, storage_ip: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let url = example_url(storage_ip, id, &s.conf, now);
    outln!("group_name={}, remote_filename={}", id.group, id.remote);
    let info = s.client.file_info(id, true, 0).await.unwrap_or(FileInfo {
        file_type: fdfs_proto::fileid::FileKind::Normal,
        source_id: 0,
        source_ip: String::new(),
        create_timestamp: 0,
        file_size: 0,
        crc32: 0,
        get_from_server: false,
    });
    outln!("source ip address: {}", info.source_ip);
    outln!("file timestamp={}", local_datetime(info.create_timestamp));
    outln!("file size={}", info.file_size);
    outln!("file crc32={}", info.crc32);
    outln!("example file url: {url}");
}

async fn test_upload(s: &Session, local: &str, mode: Option<&str>) -> ExitCode {
    let (fn_name, slave_fn, prefix) = match mode {
        Some("BUFF") => (
            "storage_upload_by_filebuff",
            "storage_upload_slave_by_filebuff",
            "1024x1024",
        ),
        Some("CALLBACK") => (
            "storage_upload_by_callback",
            "storage_upload_slave_by_callback",
            "-small",
        ),
        _ => (
            "storage_upload_by_filename",
            "storage_upload_slave_by_filename",
            "_big",
        ),
    };
    if let Ok(list) = s.client.query_store_all(None).await {
        outln!("tracker_query_storage_store_list_without_group: ");
        for (i, srv) in list.servers.iter().enumerate() {
            // The C tool prints the group before it is known: always empty.
            outln!(
                "\tserver {}. group_name=, ip_addr={}, port={}",
                i + 1,
                srv.ip,
                srv.port
            );
        }
        outln!();
    }
    let target = match s.client.query_store(None).await {
        Ok(t) => t,
        Err(e) => return fail_on_stdout("tracker_query_storage", &e),
    };
    outln!(
        "group_name={}, ip_addr={}, port={}",
        target.group,
        target.addr.ip,
        target.addr.port
    );
    let meta: Vec<MetaPair> = [
        ("ext_name", "jpg"),
        ("width", "160"),
        ("height", "80"),
        ("file_size", "115120"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    let ext = ext_from_local_name(local);
    let opts = UploadOptions {
        ext: Some(ext.clone()),
        metadata: meta.clone(),
        storage: Some(target.addr.clone()),
        store_path_index: Some(target.store_path_index as i8),
        ..Default::default()
    };
    let res = s.client.upload_file(Path::new(local), &opts).await;
    outln!("{fn_name}");
    let master = match res {
        Ok(id) => id,
        Err(e) => return fail_on_stdout("upload file", &e),
    };
    print_uploaded(s, &master, &target.addr.ip).await;
    let res = s
        .client
        .upload_slave_file(&master, prefix, Some(&ext), Path::new(local), &meta)
        .await;
    outln!("{slave_fn}");
    let slave = match res {
        Ok(id) => id,
        Err(e) => return fail_on_stdout("upload slave file", &e),
    };
    print_uploaded(s, &slave, &target.addr.ip).await;
    if let Ok(expected) = slave_remote_name(&master.remote, prefix, &ext) {
        if expected != slave.remote {
            outln!(
                "slave_filename={expected}\nremote_filename={}\nnot equal!",
                slave.remote
            );
        }
    }
    active_tests(s, Some(&target.addr)).await
}

/// The closing ACTIVE_TESTs of fdfs_test; their result is the exit code.
async fn active_tests(s: &Session, storage: Option<&ServerAddr>) -> ExitCode {
    let mut result = 0;
    if let Err(e) = s.client.active_test_tracker().await {
        result = i32::from(e.errno());
        let t = s
            .client
            .trackers()
            .first()
            .map(|t| t.to_string())
            .unwrap_or_default();
        outln!("active_test to tracker server {t} fail, errno: {result}");
    }
    if let Some(addr) = storage {
        if let Err(e) = s
            .client
            .with_storage(addr, async |c| c.active_test().await)
            .await
        {
            result = i32::from(e.errno());
            outln!("active_test to storage server {addr} fail, errno: {result}");
        }
    }
    exit_code(result)
}

async fn test_file_op(s: &Session, prog: &str, op: &str, argv: &[String]) -> ExitCode {
    let group: String = argv[3].chars().take(16).collect();
    let id = FileId::new(group, argv[4].clone());
    if op == "query_servers" {
        return match s.client.query_fetch_all(&id).await {
            Ok(list) => {
                outln!("server list ({}):", list.len());
                for a in &list {
                    outln!("\t{a}");
                }
                outln!();
                ExitCode::SUCCESS
            }
            Err(e) => {
                let n = report(&e);
                outln!(
                    "tracker_query_storage_list fail, group_name={}, filename={}, {}",
                    id.group,
                    id.remote,
                    errno_line(n)
                );
                exit_code(n)
            }
        };
    }
    let query = if op == "setmeta" || op == "delete" {
        s.client.query_update(&id).await
    } else {
        s.client.query_fetch(&id).await
    };
    let storage = match query {
        Ok(a) => a,
        Err(e) => {
            let n = report(&e);
            outln!(
                "tracker_query_storage_fetch fail, group_name={}, filename={}, {}",
                id.group,
                id.remote,
                errno_line(n)
            );
            return exit_code(n);
        }
    };
    outln!("storage={storage}");
    match op {
        "download" => {
            let local = match argv.get(5) {
                Some(l) => l.clone(),
                None => id
                    .remote
                    .rsplit('/')
                    .next()
                    .unwrap_or(&id.remote)
                    .to_string(),
            };
            let res = s
                .client
                .with_storage(&storage, async |c| {
                    let mut data = Vec::new();
                    c.download(&id.group, &id.remote, 0, 0, &mut data).await?;
                    Ok(data)
                })
                .await
                .and_then(|data| {
                    std::fs::write(&local, &data)?;
                    Ok(data.len())
                });
            match res {
                Ok(n) => outln!("download file success, file size={n}, file save to {local}"),
                Err(e) => outln!("{}", failure_line("download file", &e).0),
            }
        }
        "getmeta" => {
            let res = s
                .client
                .with_storage(&storage, async |c| {
                    c.get_metadata(&id.group, &id.remote).await
                })
                .await;
            match res {
                Ok(meta) => {
                    outln!("get meta data success, meta count={}", meta.len());
                    for (n, v) in meta {
                        outln!(
                            "{}={}",
                            String::from_utf8_lossy(&n),
                            String::from_utf8_lossy(&v)
                        );
                    }
                }
                Err(e) => outln!("{}", failure_line("getmeta", &e).0),
            }
        }
        "setmeta" => {
            if argv.len() < 7 {
                outln!(
                    "Usage: {prog} <config_file> {op} <group_name> <remote_filename> <op_flag> <metadata_list>\n\
                     \top_flag: O for overwrite, M for merge\n\
                     \tmetadata_list: name1=value1,name2=value2,..."
                );
                return exit_code(22);
            }
            let meta = split_metadata(&argv[6]);
            let flag = argv[5].bytes().next().unwrap_or(0);
            let res = match MetaOp::from_flag(flag) {
                Some(mop) => s.client.set_metadata(&id, &meta, mop).await,
                None => Err(ClientError::Status(fdfs_proto::Status::EINVAL)),
            };
            match res {
                Ok(()) => outln!("set meta data success"),
                Err(e) => outln!("{}", failure_line("setmeta", &e).0),
            }
        }
        _ => match s.client.delete_file(&id).await {
            Ok(()) => outln!("delete file success"),
            Err(e) => outln!("{}", failure_line("delete file", &e).0),
        },
    }
    active_tests(s, Some(&storage)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_url_signs_the_whole_file_id() {
        let id = FileId::parse("group1/M00/00/00/x.txt").unwrap();
        let mut conf = ClientConf::default();
        assert_eq!(
            example_url("10.0.0.1", &id, &conf, 1234),
            "http://10.0.0.1/group1/M00/00/00/x.txt"
        );
        conf.http_anti_steal_check_token = true;
        conf.http_anti_steal_secret_key = "key".into();
        // md5("group1/M00/00/00/x.txtkey1234")
        assert_eq!(
            example_url("10.0.0.1", &id, &conf, 1234),
            "http://10.0.0.1/group1/M00/00/00/x.txt?token=db6e8f3c90bc5f4f40dda6e25bac70a0&ts=1234"
        );
    }
}
