//! The classic FastDFS client tools, selected by argv[0]: same arguments,
//! stdout/stderr text and exit codes as the C 6.16 tools (PROTOCOL §12).
//! One deliberate difference: fdfs_download_file exits with the errno on
//! failure (the original exits 0).

use std::path::Path;
use std::process::ExitCode;

use fdfs_client::{ClientError, FileInfo, UploadKind, UploadOptions, FINFO_FLAG_NO_CRC32};
use fdfs_proto::fileid::{ext_from_local_name, slave_remote_name};
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::FileId;

use crate::tools::format::{errno_line, local_datetime};
use crate::tools::session::{exit_code, report, Session};

/// Classic names this binary answers to (besides the daemons).
pub const TOOL_NAMES: [&str; 10] = [
    "fdfs_upload_file",
    "fdfs_download_file",
    "fdfs_delete_file",
    "fdfs_file_info",
    "fdfs_upload_appender",
    "fdfs_append_file",
    "fdfs_monitor",
    "fdfs_crc32",
    "fdfs_test",
    "fdfs_regenerate_filename",
];

/// Runs the classic tool `name`; `argv` includes the program name.
pub fn run(name: &str, argv: &[String]) -> Option<ExitCode> {
    Some(match name {
        "fdfs_upload_file" => upload_file(argv),
        "fdfs_download_file" => download_file(argv),
        "fdfs_delete_file" => delete_file(argv),
        "fdfs_file_info" => file_info(argv),
        "fdfs_upload_appender" => upload_appender(argv),
        "fdfs_append_file" => append_file(argv),
        "fdfs_monitor" => crate::tools::monitor::main(argv),
        "fdfs_crc32" => crc32(argv),
        "fdfs_test" => fdfs_test(argv),
        "fdfs_regenerate_filename" => regenerate_filename(argv),
        _ => return None,
    })
}

fn prog(argv: &[String]) -> &str {
    argv.first().map_or("fdfs", String::as_str)
}

/// Loads the conf and checks a tracker answers, as every C tool does
/// before its real work.
fn start(conf: &str) -> Result<Session, ExitCode> {
    let s = Session::load(conf)?;
    s.tracker_get_connection()?;
    Ok(s)
}

fn parse_file_id(id: &str) -> Result<FileId, ClientError> {
    FileId::parse(id).map_err(|_| ClientError::Invalid(format!("invalid file id: {id}")))
}

/// `host[:port]` of a storage, default port 23000.
fn parse_storage_addr(text: &str) -> Option<ServerAddr> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse().ok()?,
        ),
        _ => (text, 23000),
    };
    if host.is_empty() {
        return None;
    }
    Some(ServerAddr {
        ip: host.to_string(),
        port,
    })
}

/// C `atoi`/`strtoll`: optional sign and leading digits, anything else 0.
fn c_atoi(text: &str) -> i64 {
    let t = text.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let v = digits[..end].parse::<i64>().unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

fn upload_file(argv: &[String]) -> ExitCode {
    if argv.len() < 3 {
        outln!(
            "Usage: {} <config_file> <local_filename> [storage_ip:port] [store_path_index]",
            prog(argv)
        );
        return ExitCode::from(1);
    }
    let s = match start(&argv[1]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut opts = UploadOptions::default();
    if let Some(host) = argv.get(3) {
        let Some(addr) = parse_storage_addr(host) else {
            eprintln!(
                "resolve ip address of storage server: {host} fail!, error info: Unknown host"
            );
            return ExitCode::from(1);
        };
        opts.storage = Some(addr);
        opts.store_path_index = Some(argv.get(4).map_or(-1, |i| c_atoi(i) as i8));
    }
    s.rt.block_on(async {
        if opts.storage.is_none() {
            match s.client.query_store(None).await {
                Ok(t) => {
                    opts.storage = Some(t.addr);
                    opts.store_path_index = Some(t.store_path_index as i8);
                }
                Err(e) => {
                    let n = report(&e);
                    eprintln!("tracker_query_storage fail, {}", errno_line(n));
                    return exit_code(n);
                }
            }
        }
        match s.client.upload_file(Path::new(&argv[2]), &opts).await {
            Ok(id) => {
                outln!("{id}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                let n = report(&e);
                eprintln!("upload file fail, {}", errno_line(n));
                exit_code(n)
            }
        }
    })
}

fn upload_appender(argv: &[String]) -> ExitCode {
    if argv.len() < 3 {
        outln!("Usage: {} <config_file> <local_filename>", prog(argv));
        return ExitCode::from(1);
    }
    let s = match start(&argv[1]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    s.rt.block_on(async {
        let target = match s.client.query_store(None).await {
            Ok(t) => t,
            Err(e) => {
                let n = report(&e);
                eprintln!("tracker_query_storage fail, {}", errno_line(n));
                return exit_code(n);
            }
        };
        let opts = UploadOptions {
            kind: UploadKind::Appender,
            storage: Some(target.addr),
            store_path_index: Some(target.store_path_index as i8),
            ..Default::default()
        };
        match s.client.upload_file(Path::new(&argv[2]), &opts).await {
            Ok(id) => {
                outln!("{id}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                let n = report(&e);
                eprintln!("upload file fail, {}", errno_line(n));
                exit_code(n)
            }
        }
    })
}

fn download_file(argv: &[String]) -> ExitCode {
    if argv.len() < 3 {
        outln!(
            "Usage: {} <config_file> <file_id> [local_filename] [<download_offset> <download_bytes>]",
            prog(argv)
        );
        return ExitCode::from(1);
    }
    let s = match start(&argv[1]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let file_id = &argv[2];
    let (local, offset, bytes) = match argv.get(3) {
        Some(local) => {
            let (o, b) = if argv.len() >= 6 {
                (c_atoi(&argv[4]), c_atoi(&argv[5]))
            } else {
                (0, 0)
            };
            (local.clone(), o, b)
        }
        None => (
            file_id.rsplit('/').next().unwrap_or(file_id).to_string(),
            0,
            0,
        ),
    };
    let res = s.rt.block_on(async {
        let id = parse_file_id(file_id)?;
        // Negative values are sent as-is by the C tool and refused by the
        // storage with EINVAL; refuse them here the same way.
        let (Ok(offset), Ok(bytes)) = (u64::try_from(offset), u64::try_from(bytes)) else {
            return Err(ClientError::Status(fdfs_proto::Status::EINVAL));
        };
        s.client
            .download_to_file(&id, Path::new(&local), offset, bytes)
            .await
    });
    match res {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let n = report(&e);
            outln!("download file fail, {}", errno_line(n));
            exit_code(n)
        }
    }
}

fn delete_file(argv: &[String]) -> ExitCode {
    if argv.len() < 3 {
        outln!("Usage: {} <config_file> <file_id>", prog(argv));
        return ExitCode::from(1);
    }
    let s = match start(&argv[1]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let res = s.rt.block_on(async {
        let id = parse_file_id(&argv[2])?;
        s.client.delete_file(&id).await
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let n = report(&e);
            outln!("delete file fail, {}", errno_line(n));
            exit_code(n)
        }
    }
}

fn append_file(argv: &[String]) -> ExitCode {
    if argv.len() < 4 {
        outln!(
            "Usage: {} <config_file> <appender_file_id> <local_filename>",
            prog(argv)
        );
        return ExitCode::from(1);
    }
    let s = match start(&argv[1]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let res = s.rt.block_on(async {
        let id = parse_file_id(&argv[2])?;
        s.client.append_file(&id, Path::new(&argv[3])).await
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let n = report(&e);
            outln!("append file fail, {}", errno_line(n));
            exit_code(n)
        }
    }
}

fn regenerate_filename(argv: &[String]) -> ExitCode {
    if argv.len() < 3 {
        eprintln!(
            "regenerate filename for the appender file.\n\
             NOTE: the regenerated file will be a normal file!\n\
             Usage: {} <config_file> <appender_file_id>",
            prog(argv)
        );
        return ExitCode::from(1);
    }
    let s = match start(&argv[1]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let res = s.rt.block_on(async {
        let id = parse_file_id(&argv[2])?;
        s.client.regenerate_appender_name(&id).await
    });
    match res {
        Ok(id) => {
            outln!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let n = report(&e);
            eprintln!("regenerate file {} fail, {}", argv[2], errno_line(n));
            exit_code(n)
        }
    }
}

/// The text fdfs_file_info prints for a successful query.
pub fn format_file_info(info: &FileInfo, flags: u8) -> String {
    let mut out = format!(
        "GET FROM SERVER: {}\n\nfile type: {}\nsource storage id: {}\nsource ip address: {}\n\
         file create timestamp: {}\nfile size: {}\n",
        info.get_from_server,
        info.file_type.caption(),
        info.source_id,
        info.source_ip,
        local_datetime(info.create_timestamp),
        info.file_size
    );
    if flags & FINFO_FLAG_NO_CRC32 == 0 || info.crc32 != 0 {
        out.push_str(&format!(
            "file crc32: {} (0x{:08x})\n",
            info.crc32 as i32, info.crc32
        ));
    }
    out.push('\n');
    out
}

fn file_info_usage(prog: &str) {
    eprint!(
        "Usage: {prog} [options] <config_file> <file_id>\n  options: \n    \
         -s: keep silence, when this file not exist, do not log error on storage server\n    \
         -n: do NOT calculate CRC32 for appender file or slave file\n\n"
    );
}

fn file_info(argv: &[String]) -> ExitCode {
    let prog = prog(argv);
    if argv.len() < 3 {
        file_info_usage(prog);
        return ExitCode::from(1);
    }
    // getopt("ns") with GNU argument permutation; "--" ends options.
    let mut flags = 0u8;
    let mut positional = Vec::new();
    let mut options_done = false;
    for a in &argv[1..] {
        if !options_done && a == "--" {
            options_done = true;
        } else if !options_done && a.len() > 1 && a.starts_with('-') {
            for c in a[1..].chars() {
                match c {
                    'n' => flags |= fdfs_client::FINFO_FLAG_NO_CRC32,
                    's' => flags |= fdfs_client::FINFO_FLAG_KEEP_SILENCE,
                    other => {
                        eprintln!("{prog}: invalid option -- '{other}'");
                        file_info_usage(prog);
                        return ExitCode::from(1);
                    }
                }
            }
        } else {
            positional.push(a.clone());
        }
    }
    if positional.len() < 2 {
        file_info_usage(prog);
        return ExitCode::from(1);
    }
    let s = match Session::load(&positional[0]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let res = s.rt.block_on(async {
        let id = parse_file_id(&positional[1])?;
        s.client.file_info(&id, true, flags).await
    });
    match res {
        Ok(info) => out!("{}", format_file_info(&info, flags)),
        Err(e) => {
            let n = report(&e);
            eprintln!("query file info fail, {}", errno_line(n));
        }
    }
    ExitCode::SUCCESS
}

fn crc32(argv: &[String]) -> ExitCode {
    let Some(path) = argv.get(1) else {
        outln!("Usage: {} <filename>", prog(argv));
        return ExitCode::from(1);
    };
    match crc32_of_file(Path::new(path)) {
        Ok(crc) => {
            outln!("{crc:x}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let n = e.raw_os_error().unwrap_or(13);
            outln!(
                "open file {path} fail, errno: {n}, error info: {}",
                crate::tools::format::errno_text(n)
            );
            exit_code(n)
        }
    }
}

pub use fdfs_util::fs::crc32_of_file;

/// Splits `name1=value1,name2=value2` as fdfs_test does.
pub fn split_metadata(text: &str) -> Vec<MetaPair> {
    text.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('=') {
            Some((n, v)) => (n.as_bytes().to_vec(), v.as_bytes().to_vec()),
            None => (r.as_bytes().to_vec(), Vec::new()),
        })
        .collect()
}

const FDFS_TEST_BANNER: &str = "This is FastDFS client test program v6.16.1\n\
\nCopyright (C) 2008, Happy Fish / YuQing\n\
\nFastDFS may be copied only under the terms of the GNU General\n\
Public License V3, which may be found in the FastDFS source kit.\n\
Please visit the FastDFS Home Page http://www.fastken.com/ \n\
for more detail.\n\n";

fn fdfs_test(argv: &[String]) -> ExitCode {
    out!("{FDFS_TEST_BANNER}");
    let prog = prog(argv);
    if argv.len() < 3 {
        outln!(
            "Usage: {prog} <config_file> <operation>\n\toperation: upload, download, getmeta, setmeta, delete and query_servers"
        );
        return ExitCode::from(1);
    }
    let s = match start(&argv[1]) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let op = argv[2].as_str();
    match op {
        "upload" => {
            if argv.len() < 4 {
                outln!(
                    "Usage: {prog} <config_file> upload <local_filename> [FILE | BUFF | CALLBACK] "
                );
                return exit_code(22);
            }
            s.rt.block_on(test_upload(&s, &argv[3], argv.get(4).map(String::as_str)))
        }
        "download" | "getmeta" | "setmeta" | "query_servers" | "delete" => {
            if argv.len() < 5 {
                outln!("Usage: {prog} <config_file> {op} <group_name> <remote_filename>");
                return exit_code(22);
            }
            s.rt.block_on(test_file_op(&s, prog, op, argv))
        }
        _ => {
            outln!("invalid operation: {op}");
            exit_code(22)
        }
    }
}

/// The "source ip / timestamp / size / crc32 / url" block of fdfs_test.
async fn print_uploaded(s: &Session, id: &FileId, storage_ip: &str) {
    let mut url = format!("http://{storage_ip}/{id}");
    if s.conf.http_anti_steal_check_token {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = crate::tools::md5::http_token(
            &id.to_string(),
            s.conf.http_anti_steal_secret_key.as_bytes(),
            ts,
        );
        url.push_str(&format!("?token={token}&ts={ts}"));
    }
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
        Err(e) => {
            let n = report(&e);
            outln!("tracker_query_storage fail, {}", errno_line(n));
            return exit_code(n);
        }
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
        Err(e) => {
            let n = report(&e);
            outln!("upload file fail, {}", errno_line(n));
            return exit_code(n);
        }
    };
    print_uploaded(s, &master, &target.addr.ip).await;
    let res = s
        .client
        .upload_slave_file(&master, prefix, Some(&ext), Path::new(local), &meta)
        .await;
    outln!("{slave_fn}");
    let slave = match res {
        Ok(id) => id,
        Err(e) => {
            let n = report(&e);
            outln!("upload slave file fail, {}", errno_line(n));
            return exit_code(n);
        }
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
                Err(e) => outln!("download file fail, {}", errno_line(report(&e))),
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
                Err(e) => outln!("getmeta fail, {}", errno_line(report(&e))),
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
                Err(e) => outln!("setmeta fail, {}", errno_line(report(&e))),
            }
        }
        _ => match s.client.delete_file(&id).await {
            Ok(()) => outln!("delete file success"),
            Err(e) => outln!("delete file fail, {}", errno_line(report(&e))),
        },
    }
    active_tests(s, Some(&storage)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::fileid::FileKind;

    #[test]
    fn file_info_text_matches_section_12_6() {
        let info = FileInfo {
            file_type: FileKind::Normal,
            source_id: 0,
            source_ip: "127.0.0.1".into(),
            create_timestamp: 1_700_000_000,
            file_size: 14,
            crc32: 939_093_423,
            get_from_server: false,
        };
        let text = format_file_info(&info, 0);
        let want = format!(
            "GET FROM SERVER: false\n\nfile type: normal\nsource storage id: 0\n\
             source ip address: 127.0.0.1\nfile create timestamp: {}\nfile size: 14\n\
             file crc32: 939093423 (0x37f96daf)\n\n",
            local_datetime(1_700_000_000)
        );
        assert_eq!(text, want);
        // Negative as signed, lowercase hex as unsigned.
        let app = FileInfo {
            file_type: FileKind::Appender,
            crc32: 0x830f_9091,
            get_from_server: true,
            ..info.clone()
        };
        let text = format_file_info(&app, 0);
        assert!(text.starts_with("GET FROM SERVER: true\n\nfile type: appender\n"));
        assert!(text.contains("file crc32: -2096131951 (0x830f9091)\n"));
        // -n with a zero CRC drops the line.
        let zero = FileInfo { crc32: 0, ..app };
        assert!(!format_file_info(&zero, FINFO_FLAG_NO_CRC32).contains("crc32"));
        assert!(format_file_info(&zero, 0).contains("file crc32: 0 (0x00000000)"));
    }

    #[test]
    fn c_style_number_parsing() {
        assert_eq!(c_atoi("12abc"), 12);
        assert_eq!(c_atoi("-3"), -3);
        assert_eq!(c_atoi("x"), 0);
        assert_eq!(c_atoi(" +7"), 7);
    }

    #[test]
    fn storage_addresses() {
        let a = parse_storage_addr("127.0.0.1:23001").unwrap();
        assert_eq!((a.ip.as_str(), a.port), ("127.0.0.1", 23001));
        assert_eq!(parse_storage_addr("10.0.0.1").unwrap().port, 23000);
        assert_eq!(parse_storage_addr("[::1]:23002").unwrap().ip, "::1");
    }

    #[test]
    fn metadata_list_splitting() {
        let m = split_metadata("color=red,owner=bob,flag");
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], (b"color".to_vec(), b"red".to_vec()));
        assert_eq!(m[2], (b"flag".to_vec(), Vec::new()));
    }

    #[test]
    fn crc32_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hello.txt");
        std::fs::write(&p, b"Hello FastDFS\n").unwrap();
        assert_eq!(format!("{:x}", crc32_of_file(&p).unwrap()), "37f96daf");
    }
}
