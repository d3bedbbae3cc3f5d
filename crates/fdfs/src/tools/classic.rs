//! The classic FastDFS client tools, selected by argv[0]: same arguments,
//! stdout/stderr text and exit codes as the C 6.16 tools (PROTOCOL §12).
//! One deliberate difference: fdfs_download_file exits with the errno on
//! failure (the original exits 0).

use std::path::Path;
use std::process::ExitCode;

use fdfs_client::{ClientError, FileInfo, UploadKind, UploadOptions, FINFO_FLAG_NO_CRC32};
// The C tools read numbers with atoi/strtoll, as the gateway reads `ts`.
use fdfs_proto::metadata::MetaPair;
use fdfs_proto::tracker_msg::ServerAddr;
use fdfs_proto::FileId;
use fdfs_util::text::atoi as c_atoi;

use crate::tools::format::{errno_line, local_datetime};
use crate::tools::session::{exit_code, report, Session};

mod fdfs_test;

/// Classic names this binary answers to (besides the daemons).
pub const TOOL_NAMES: [&str; 13] = [
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
    "fdfs_tracker_stat",
    "fdfs_storage_stat",
    "fdfs_volumn_stat",
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
        "fdfs_test" => fdfs_test::main(argv),
        "fdfs_regenerate_filename" => regenerate_filename(argv),
        _ => {
            let tool = crate::tools::cluster_stat::StatTool::by_name(name)?;
            crate::tools::cluster_stat::main(tool, argv)
        }
    })
}

fn prog(argv: &[String]) -> &str {
    argv.first().map_or("fdfs", String::as_str)
}

/// The prelude of the tools that talk to the cluster, as the C tools run
/// it: fewer than `min_args` arguments (the program name counts) print
/// `usage` and exit 1; then the conf is loaded and a tracker must answer
/// before `work` runs.
fn run_tool(
    argv: &[String],
    min_args: usize,
    usage: impl FnOnce(&str),
    work: impl FnOnce(&Session) -> ExitCode,
) -> ExitCode {
    if argv.len() < min_args {
        usage(prog(argv));
        return ExitCode::from(1);
    }
    let session = match Session::load(&argv[1]) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let code = match session.tracker_get_connection() {
        Ok(()) => work(&session),
        Err(code) => code,
    };
    // The process ends right after: an orderly teardown (deregistering
    // and closing each socket, dropping the runtime) only adds system
    // calls to every run; the kernel closes the sockets at exit, as it
    // does for the C tools.
    std::mem::forget(session);
    code
}

/// The C tools' failure line `<what> fail, error no: N, error info: …`,
/// after the detail the C library would have logged; and the errno.
fn failure_line(what: &str, e: &ClientError) -> (String, i32) {
    let n = report(e);
    (format!("{what} fail, {}", errno_line(n)), n)
}

/// A failure printed on stdout, where most C tools print theirs; the
/// errno becomes the exit status.
fn fail_on_stdout(what: &str, e: &ClientError) -> ExitCode {
    let (line, n) = failure_line(what, e);
    outln!("{line}");
    exit_code(n)
}

/// A failure printed on stderr, as the upload tools print theirs.
fn fail_on_stderr(what: &str, e: &ClientError) -> ExitCode {
    let (line, n) = failure_line(what, e);
    eprintln!("{line}");
    exit_code(n)
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

fn upload_file(argv: &[String]) -> ExitCode {
    let usage = |prog: &str| {
        outln!("Usage: {prog} <config_file> <local_filename> [storage_ip:port] [store_path_index]")
    };
    run_tool(argv, 3, usage, |s| {
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
        upload_and_print(s, &argv[2], opts)
    })
}

fn upload_appender(argv: &[String]) -> ExitCode {
    let usage = |prog: &str| outln!("Usage: {prog} <config_file> <local_filename>");
    run_tool(argv, 3, usage, |s| {
        let opts = UploadOptions {
            kind: UploadKind::Appender,
            ..Default::default()
        };
        upload_and_print(s, &argv[2], opts)
    })
}

/// Uploads `local` where `opts` says, asking the tracker for a storage
/// first when it names none, and prints the new file id.
fn upload_and_print(s: &Session, local: &str, mut opts: UploadOptions) -> ExitCode {
    s.rt.block_on(async {
        if opts.storage.is_none() {
            match s.client.query_store(None).await {
                Ok(t) => {
                    opts.storage = Some(t.addr);
                    opts.store_path_index = Some(t.store_path_index as i8);
                }
                Err(e) => {
                    crate::tools::nospace::print_if_no_space(&s.client, &e, &opts, "").await;
                    return fail_on_stderr("tracker_query_storage", &e);
                }
            }
        }
        match s.client.upload_file(Path::new(local), &opts).await {
            Ok(id) => {
                outln!("{id}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                crate::tools::nospace::print_if_no_space(&s.client, &e, &opts, "").await;
                fail_on_stderr("upload file", &e)
            }
        }
    })
}

fn download_file(argv: &[String]) -> ExitCode {
    let usage = |prog: &str| {
        outln!(
            "Usage: {prog} <config_file> <file_id> [local_filename] [<download_offset> <download_bytes>]"
        )
    };
    run_tool(argv, 3, usage, |s| {
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
            Err(e) => fail_on_stdout("download file", &e),
        }
    })
}

fn delete_file(argv: &[String]) -> ExitCode {
    let usage = |prog: &str| outln!("Usage: {prog} <config_file> <file_id>");
    run_tool(argv, 3, usage, |s| {
        let res = s.rt.block_on(async {
            let id = parse_file_id(&argv[2])?;
            s.client.delete_file(&id).await
        });
        match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail_on_stdout("delete file", &e),
        }
    })
}

fn append_file(argv: &[String]) -> ExitCode {
    let usage =
        |prog: &str| outln!("Usage: {prog} <config_file> <appender_file_id> <local_filename>");
    run_tool(argv, 4, usage, |s| {
        let res = s.rt.block_on(async {
            let id = parse_file_id(&argv[2])?;
            s.client.append_file(&id, Path::new(&argv[3])).await
        });
        match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail_on_stdout("append file", &e),
        }
    })
}

fn regenerate_filename(argv: &[String]) -> ExitCode {
    let usage = |prog: &str| {
        eprintln!(
            "regenerate filename for the appender file.\n\
             NOTE: the regenerated file will be a normal file!\n\
             Usage: {prog} <config_file> <appender_file_id>"
        )
    };
    run_tool(argv, 3, usage, |s| {
        let res = s.rt.block_on(async {
            let id = parse_file_id(&argv[2])?;
            s.client.regenerate_appender_name(&id).await
        });
        match res {
            Ok(id) => {
                outln!("{id}");
                ExitCode::SUCCESS
            }
            Err(e) => fail_on_stderr(&format!("regenerate file {}", argv[2]), &e),
        }
    })
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
        // The C tool exits 0 even then.
        Err(e) => eprintln!("{}", failure_line("query file info", &e).0),
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
