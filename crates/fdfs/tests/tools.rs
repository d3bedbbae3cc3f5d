//! The `fdfs` binary as the classic FastDFS tools (symlinked under their
//! names) and as `fdfs <subcommand>`, against a real tracker + storage:
//! exact stdout lines, stderr and exit codes (PROTOCOL §12). Children run
//! with TZ=UTC so printed times are predictable.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use fdfs_client::decode_remote_name;
use fdfs_testkit::{wait_until, Cluster};

const HELLO: &[u8] = b"Hello FastDFS\n";
const DEADLINE: Duration = Duration::from_secs(20);

const BANNER: &str = "This is FastDFS client test program v6.16.1\n\
\nCopyright (C) 2008, Happy Fish / YuQing\n\
\nFastDFS may be copied only under the terms of the GNU General\n\
Public License V3, which may be found in the FastDFS source kit.\n\
Please visit the FastDFS Home Page http://www.fastken.com/ \n\
for more detail.\n\n";

/// The daemon names `fdfs install-links` creates besides the tools.
const DAEMONS: [&str; 2] = ["fdfs_trackerd", "fdfs_storaged"];

/// A cluster, the classic tool names in a bin dir, a client.conf and a
/// work dir the tools run in. The bin dir is made by `fdfs install-links`,
/// so a classic name the binary stopped linking fails the tests that run
/// that tool, without this file keeping its own copy of the list.
struct Env {
    cluster: Cluster,
    conf: PathBuf,
    bin: PathBuf,
    work: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let cluster = Cluster::start();
        let conf = cluster.write_client_conf();
        let work = tempfile::tempdir().unwrap();
        let bin = work.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
            .arg("install-links")
            .arg(&bin)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Env {
            cluster,
            conf,
            bin,
            work,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Runs a classic tool with the client.conf as first argument.
    fn classic(&self, tool: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.arg(&self.conf).args(args);
        self.run(cmd)
    }

    /// Runs `fdfs <args...>`.
    fn fdfs(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fdfs"));
        cmd.args(args);
        self.run(cmd)
    }

    fn run(&self, mut cmd: Command) -> Out {
        let out = cmd
            .current_dir(self.work.path())
            .env("TZ", "UTC")
            .output()
            .unwrap();
        Out::from(out)
    }

    fn tracker(&self) -> String {
        self.cluster.tracker_addr.to_string()
    }

    fn storage_port(&self) -> u16 {
        self.cluster.storage_addr.port()
    }

    /// Uploads with fdfs_upload_file and returns the id.
    fn upload(&self, local: &Path) -> String {
        let out = self.classic("fdfs_upload_file", &[local.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout.trim_end().to_string()
    }
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// `%Y-%m-%d %H:%M:%S` in UTC.
fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `group1/M00/HH/HH/<27 base64 chars><digits>.<ext>`: the digits pad the
/// name to 44 characters (3 digits for `.txt`).
fn is_file_id(id: &str, ext: &str) -> bool {
    let Some(rest) = id.strip_prefix("group1/M00/") else {
        return false;
    };
    let b = rest.as_bytes();
    let hex2 = |s: &[u8]| s.len() == 2 && s.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
    let digits = 6 - ext.len();
    if b.len() != 33 + digits + 1 + ext.len() || !hex2(&b[0..2]) || !hex2(&b[3..5]) {
        return false;
    }
    b[2] == b'/'
        && b[5] == b'/'
        && b[6..33]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        && b[33..33 + digits].iter().all(u8::is_ascii_digit)
        && rest[33 + digits..] == format!(".{ext}")
}

fn file_info_text(get_from_server: bool, kind: &str, ts: i64, size: usize, crc: u32) -> String {
    format!(
        "GET FROM SERVER: {get_from_server}\n\nfile type: {kind}\nsource storage id: 0\n\
         source ip address: 127.0.0.1\nfile create timestamp: {}\nfile size: {size}\n\
         file crc32: {} (0x{crc:08x})\n\n",
        utc(ts),
        crc as i32
    )
}

#[test]
fn file_id_helper() {
    assert!(is_file_id(
        "group1/M00/00/00/fwAAA2sHEiWAE_cXAAAADg4Qul0089.txt",
        "txt"
    ));
    assert!(is_file_id(
        "group1/M00/0A/FF/fwAAAWsHFwqAfvWaAAAADycgeiM.tar.gz",
        "tar.gz"
    ));
    assert!(!is_file_id(
        "group1/M00/0a/00/fwAAA2sHEiWAE_cXAAAADg4Qul0089.txt",
        "txt"
    ));
    assert!(!is_file_id(
        "group1/M00/00/00/fwAAA2sHEiWAE_cXAAAADg4Qul0089.txt",
        "jpg"
    ));
    assert!(!is_file_id(
        "group1/M00/00/00/fwAAA2sHEiWAE_cXAAAADg4Qul00x9.txt",
        "txt"
    ));
    assert!(!is_file_id(
        "group2/M00/00/00/fwAAA2sHEiWAE_cXAAAADg4Qul0089.txt",
        "txt"
    ));
}

#[test]
fn utc_formatting_helper() {
    assert_eq!(utc(0), "1970-01-01 00:00:00");
    assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
}

/// A classic tool run is one process on one thread (#14.1): uploading and
/// downloading start no thread (no tokio blocking pool for the local file),
/// checked by tracing the clone system calls with strace.
#[test]
fn classic_upload_and_download_start_no_thread() {
    let env = Env::start();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let local = env.write("big.bin", &data);
    let traced = |tool: &str, args: &[&str]| -> (Out, String) {
        let trace = env.path(&format!("{tool}.strace"));
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-e", "trace=clone,clone3,fork,vfork", "-o"])
            .arg(&trace)
            .arg(env.bin.join(tool))
            .arg(&env.conf)
            .args(args);
        let out = env.run(cmd);
        let calls = std::fs::read_to_string(&trace).unwrap_or_else(|e| {
            panic!("strace is needed for this test (apt-get install strace): {e}; {out:?}")
        });
        (out, calls)
    };
    let (out, calls) = traced("fdfs_upload_file", &[local.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(calls, "", "fdfs_upload_file started a thread or process");
    let id = out.stdout.trim_end().to_string();
    let (out, calls) = traced("fdfs_download_file", &[&id, "big.down"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(calls, "", "fdfs_download_file started a thread or process");
    assert_eq!(std::fs::read(env.path("big.down")).unwrap(), data);
}

#[test]
fn upload_download_file_info_delete() {
    let env = Env::start();
    let hello = env.write("hello.txt", HELLO);
    let out = env.classic("fdfs_upload_file", &[hello.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    let id = out
        .stdout
        .strip_suffix('\n')
        .expect("one line ending in a newline");
    assert!(!id.contains('\n') && is_file_id(id, "txt"), "{out:?}");

    // Whole file to a named local file.
    let out = env.classic("fdfs_download_file", &[id, "hello.down"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    assert_eq!(std::fs::read(env.path("hello.down")).unwrap(), HELLO);
    // A range.
    let out = env.classic("fdfs_download_file", &[id, "hello.part", "6", "7"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read(env.path("hello.part")).unwrap(), b"FastDFS");
    // No local name: the id's base name in the current directory.
    let out = env.classic("fdfs_download_file", &[id]);
    assert_eq!(out.code, 0, "{out:?}");
    let base = id.rsplit('/').next().unwrap();
    assert_eq!(std::fs::read(env.path(base)).unwrap(), HELLO);

    // fdfs_file_info: the exact §12.6 layout, decoded from the name.
    let ts = decode_remote_name(&id[7..]).unwrap().create_timestamp;
    let want = file_info_text(false, "normal", ts, 14, 0x37F9_6DAF);
    assert!(want.contains("file crc32: 939093423 (0x37f96daf)\n"));
    let out = env.classic("fdfs_file_info", &[id]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, want);
    assert_eq!(out.stderr, "");

    // Delete; then everything reports ENOENT.
    let out = env.classic("fdfs_delete_file", &[id]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let out = env.classic("fdfs_delete_file", &[id]);
    assert_eq!(
        out.stdout,
        "delete file fail, error no: 2, error info: No such file or directory\n"
    );
    assert_eq!(out.code, 2, "{out:?}");
    let out = env.classic("fdfs_download_file", &[id, "gone"]);
    assert_eq!(
        out.stdout,
        "download file fail, error no: 2, error info: No such file or directory\n"
    );
    assert_ne!(
        out.code, 0,
        "deliberate fix: a failed download exits non-zero"
    );
    assert!(!env.path("gone").exists());
    // A deleted normal file still decodes locally.
    let out = env.classic("fdfs_file_info", &[id]);
    assert_eq!((out.code, out.stdout.as_str()), (0, want.as_str()));
    // Appending to a missing file.
    let out = env.classic("fdfs_append_file", &[id, hello.to_str().unwrap()]);
    assert_eq!(
        out.stdout,
        "append file fail, error no: 2, error info: No such file or directory\n"
    );
    assert_eq!(out.code, 2);
}

#[test]
fn upload_errors_and_usage() {
    let env = Env::start();
    let out = env.classic("fdfs_upload_file", &["no-such-file.txt"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .contains("upload file fail, error no: 2, error info: No such file or directory"),
        "{out:?}"
    );
    let out = env.run(Command::new(env.bin.join("fdfs_upload_file")));
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        format!(
            "Usage: {} <config_file> <local_filename> [storage_ip:port] [store_path_index]\n",
            env.bin.join("fdfs_upload_file").display()
        )
    );
    // Straight to the storage, and a double extension.
    let tgz = env.write("a.tar.gz", b"not really gzip");
    let storage = format!("127.0.0.1:{}", env.storage_port());
    let out = env.classic(
        "fdfs_upload_file",
        &[tgz.to_str().unwrap(), storage.as_str(), "0"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(is_file_id(out.stdout.trim_end(), "tar.gz"), "{out:?}");
    // A bad store path index.
    let out = env.classic(
        "fdfs_upload_file",
        &[tgz.to_str().unwrap(), storage.as_str(), "5"],
    );
    assert_eq!(out.code, 22, "{out:?}");
    assert!(out
        .stderr
        .contains("upload file fail, error no: 22, error info: Invalid argument"));
    // A tracker that refuses connections: exit with its errno.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let conf = env.write(
        "dead.conf",
        format!("base_path = /tmp\ntracker_server = 127.0.0.1:{port}\n").as_bytes(),
    );
    let mut cmd = Command::new(env.bin.join("fdfs_upload_file"));
    cmd.arg(&conf).arg("a.tar.gz");
    let out = env.run(cmd);
    assert_eq!(out.code, 111, "{out:?}");
    assert_eq!(out.stdout, "");
}

#[test]
fn appender_append_info_regenerate() {
    let env = Env::start();
    let part1 = env.write("app1.txt", b"appender-part1\n");
    let part2 = env.write("app2.txt", b"appender-part2\n");
    let out = env.classic("fdfs_upload_appender", &[part1.to_str().unwrap()]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let id = out.stdout.trim_end().to_string();
    assert!(is_file_id(&id, "txt"), "{out:?}");

    let out = env.classic("fdfs_append_file", &[&id, part2.to_str().unwrap()]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let want = b"appender-part1\nappender-part2\n";
    env.classic("fdfs_download_file", &[&id, "app.down"]);
    assert_eq!(std::fs::read(env.path("app.down")).unwrap(), want);

    // Appender info comes from the server: size and CRC32 of the content.
    let out = env.classic("fdfs_file_info", &[&id]);
    assert_eq!(out.code, 0, "{out:?}");
    let ts_line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("file create timestamp: "))
        .expect("timestamp line")
        .to_string();
    let name_ts = decode_remote_name(&id[7..]).unwrap().create_timestamp;
    assert_eq!(ts_line, utc(name_ts), "{out:?}");
    let text = file_info_text(true, "appender", name_ts, 30, crc32fast::hash(want));
    assert_eq!(out.stdout, text);
    // -n: no CRC32 for appender files, and then no crc32 line.
    let out = env.classic("fdfs_file_info", &["-n", &id]);
    assert!(out
        .stdout
        .starts_with("GET FROM SERVER: true\n\nfile type: appender\n"));
    assert!(!out.stdout.contains("crc32"), "{out:?}");
    assert!(out.stdout.ends_with("file size: 30\n\n"), "{out:?}");

    // Appending more grows the file again.
    env.classic("fdfs_append_file", &[&id, part1.to_str().unwrap()]);
    let out = env.classic("fdfs_file_info", &[&id]);
    assert!(out.stdout.contains("\nfile size: 45\n"), "{out:?}");

    let out = env.classic("fdfs_regenerate_filename", &[&id]);
    assert_eq!(out.code, 0, "{out:?}");
    let new_id = out.stdout.trim_end();
    assert!(is_file_id(new_id, "txt") && new_id != id, "{out:?}");
    let out = env.classic("fdfs_file_info", &[new_id]);
    assert!(
        out.stdout
            .starts_with("GET FROM SERVER: false\n\nfile type: normal\n"),
        "{out:?}"
    );
    assert!(out.stdout.contains("\nfile size: 45\n"), "{out:?}");
}

#[test]
fn crc32_tool() {
    let env = Env::start();
    let hello = env.write("hello.txt", HELLO);
    let out = env.run({
        let mut c = Command::new(env.bin.join("fdfs_crc32"));
        c.arg(&hello);
        c
    });
    assert_eq!((out.code, out.stdout.as_str()), (0, "37f96daf\n"));
    let out = env.fdfs(&["crc32", hello.to_str().unwrap()]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "37f96daf\n"));
    let out = env.run({
        let mut c = Command::new(env.bin.join("fdfs_crc32"));
        c.arg("missing.txt");
        c
    });
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stdout,
        "open file missing.txt fail, errno: 2, error info: No such file or directory\n"
    );
}

/// The value of `\t\t<name> = <value>` in monitor output.
fn monitor_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("\t\t{name} = ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

#[test]
fn monitor_lists_the_cluster() {
    let env = Env::start();
    let hello = env.write("hello.txt", HELLO);
    let head = format!(
        "tracker server count=1, current server index=0\n\ntracker server is {}\n\n",
        env.tracker()
    );
    let out = env.classic("fdfs_monitor", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = out.stdout;
    assert!(
        text.starts_with(&format!(
            "{head}group count: 1\n\nGroup 1:\ngroup name = group1\n"
        )),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let port = env.storage_port();
    for want in [
        "storage server count = 1".to_string(),
        "readable server count = 1".into(),
        "writable server count = 1".into(),
        format!("storage server port = {port}"),
        "store path count = 1".into(),
        "subdir count per path = 4".into(),
        "\tStorage 1:".into(),
        "\t\tid = 127.0.0.1".into(),
        format!("\t\thost = 127.0.0.1:{port}  ACTIVE"),
        "\t\tread write mode = both (normal)".into(),
        "\t\tversion = 6.16.1".into(),
        "\t\tsource storage id = ".into(),
        "\t\tif_trunk_server = 0".into(),
        "\t\tlast_sync_update = 1970-01-01 00:00:00".into(),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "missing {want:?} in\n{text}"
        );
    }
    assert!(monitor_value(&text, "stotal_download_bytes").is_some());
    assert!(monitor_value(&text, "total_download_bytes").is_none());
    assert_eq!(
        lines.last(),
        Some(&"\t\tlast_synced_timestamp = 1970-01-01 00:00:00 "),
        "{text}"
    );
    assert!(text.ends_with(" \n"));
    let disk = lines
        .iter()
        .find_map(|l| l.strip_prefix("disk total space     = "))
        .expect("disk total line");
    assert_eq!(disk.len(), 7, "right-aligned in 7 columns: {disk:?}");

    // Counters grow with uploads (stats arrive with the next heartbeat).
    let before: i64 = monitor_value(&text, "success_upload_count")
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..2 {
        env.upload(&hello);
    }
    let mut last = String::new();
    let grew = wait_until(DEADLINE, || {
        last = env.classic("fdfs_monitor", &["list"]).stdout;
        monitor_value(&last, "success_upload_count")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|n| n >= before + 2)
    });
    assert!(grew, "success_upload_count stayed at {before}:\n{last}");
    assert!(monitor_value(&last, "success_upload_bytes")
        .unwrap()
        .parse::<i64>()
        .is_ok_and(|n| n >= 28));

    // One group by name: no `group count` / `Group 1:` lines.
    let out = env.classic("fdfs_monitor", &["list", "group1"]);
    assert!(
        out.stdout
            .starts_with(&format!("{head}group name = group1\n")),
        "{out:?}"
    );
    // Unknown group: only the header.
    let out = env.classic("fdfs_monitor", &["list", "nogroup"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, head.as_str()),
        "{out:?}"
    );
    // -h with the configured tracker; -h with an unknown one.
    let out = env.classic("fdfs_monitor", &["-h", &env.tracker()]);
    assert!(out.stdout.starts_with(&head), "{out:?}");
    let out = env.classic("fdfs_monitor", &["-h", "1.2.3.4"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "tracker server: 1.2.3.4 not exists!\n");
    // Our `sync` report under the classic name (the C tool has no `sync`).
    let out = env.classic("fdfs_monitor", &["sync"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with(&format!("{head}group group1: 1 storage(s)\n")),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("  ACTIVE  last heartbeat ")
            && out
                .stdout
                .contains("    sync source: none (first member of the group)\n"),
        "{out:?}"
    );
    let out = env.classic("fdfs_monitor", &["sync", "nogroup"]);
    assert!(
        out.stdout
            .ends_with("sync status: fail, error no: 2, error info: No such file or directory\n"),
        "{out:?}"
    );
    // Admin commands that fail print and exit 0.
    let out = env.classic("fdfs_monitor", &["delete", "nogroup"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.ends_with(
        "delete group: nogroup fail, error no: 2, error info: No such file or directory\n"
    ));

    // The modern front end prints the same listing.
    let out = env.fdfs(&["monitor", "--tracker", &env.tracker()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("{head}group count: 1\n")),
        "{out:?}"
    );
}

/// The upload block fdfs_test prints for one uploaded file.
fn test_upload_block(remote: &str, ts: &str, size: usize, crc: u32) -> String {
    format!(
        "group_name=group1, remote_filename={remote}\nsource ip address: 127.0.0.1\n\
         file timestamp={ts}\nfile size={size}\nfile crc32={crc}\n\
         example file url: http://127.0.0.1/group1/{remote}\n"
    )
}

#[test]
fn fdfs_test_upload_meta_and_file_ops() {
    let env = Env::start();
    let hello = env.write("hello.txt", HELLO);
    let port = env.storage_port();
    let out = env.classic("fdfs_test", &["upload", hello.to_str().unwrap()]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let text = out.stdout.strip_prefix(BANNER).expect("banner first");
    let remotes: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("group_name=group1, remote_filename="))
        .collect();
    assert_eq!(remotes.len(), 2, "{text}");
    let (master, slave) = (remotes[0], remotes[1]);
    assert_eq!(
        slave,
        format!("{}_big.txt", master.strip_suffix(".txt").unwrap())
    );
    let ts = utc(decode_remote_name(master).unwrap().create_timestamp);
    let slave_ts = text
        .lines()
        .filter_map(|l| l.strip_prefix("file timestamp="))
        .nth(1)
        .expect("slave timestamp")
        .to_string();
    let want = format!(
        "tracker_query_storage_store_list_without_group: \n\
         \tserver 1. group_name=, ip_addr=127.0.0.1, port={port}\n\n\
         group_name=group1, ip_addr=127.0.0.1, port={port}\n\
         storage_upload_by_filename\n{}\
         storage_upload_slave_by_filename\n{}",
        test_upload_block(master, &ts, 14, 939_093_423),
        test_upload_block(slave, &slave_ts, 14, 939_093_423),
    );
    assert_eq!(text, want);

    let storage_line = format!("storage=127.0.0.1:{port}\n");
    let op = |args: &[&str]| {
        let out = env.classic("fdfs_test", args);
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout
            .strip_prefix(BANNER)
            .expect("banner first")
            .to_string()
    };
    assert_eq!(
        op(&["getmeta", "group1", master]),
        format!(
            "{storage_line}get meta data success, meta count=4\n\
             ext_name=jpg\nfile_size=115120\nheight=80\nwidth=160\n"
        )
    );
    assert_eq!(
        op(&["setmeta", "group1", master, "M", "color=red,owner=bob"]),
        format!("{storage_line}set meta data success\n")
    );
    assert_eq!(
        op(&["getmeta", "group1", master]),
        format!(
            "{storage_line}get meta data success, meta count=6\ncolor=red\n\
             ext_name=jpg\nfile_size=115120\nheight=80\nowner=bob\nwidth=160\n"
        )
    );
    op(&["setmeta", "group1", master, "O", "only=one"]);
    assert_eq!(
        op(&["getmeta", "group1", master]),
        format!("{storage_line}get meta data success, meta count=1\nonly=one\n")
    );
    assert_eq!(
        op(&["query_servers", "group1", master]),
        format!("server list (1):\n\t127.0.0.1:{port}\n\n")
    );
    let local = env.path("t.down");
    assert_eq!(
        op(&["download", "group1", slave, local.to_str().unwrap()]),
        format!(
            "{storage_line}download file success, file size=14, file save to {}\n",
            local.display()
        )
    );
    assert_eq!(std::fs::read(&local).unwrap(), HELLO);
    assert_eq!(
        op(&["delete", "group1", slave]),
        format!("{storage_line}delete file success\n")
    );
    assert_eq!(
        op(&["getmeta", "group1", slave]),
        format!("{storage_line}getmeta fail, error no: 2, error info: No such file or directory\n")
    );
}

#[test]
fn install_links_creates_working_links() {
    let env = Env::start();
    let dir = env.path("links");
    std::fs::create_dir_all(&dir).unwrap();
    let out = env.fdfs(&["install-links", dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_fdfs")).unwrap();
    // One `<dir>/<name> -> <exe>` line per link, nothing else.
    let prefix = format!("{}/", dir.display());
    let names: Vec<&str> = out
        .stdout
        .lines()
        .map(|line| {
            let (link, target) = line.split_once(" -> ").expect("link -> target");
            assert_eq!(std::fs::canonicalize(target).unwrap(), exe, "{line}");
            link.strip_prefix(&prefix).expect("a link in dir")
        })
        .collect();
    for daemon in DAEMONS {
        assert!(names.contains(&daemon), "{out:?}");
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{out:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), names.len());
    for name in &names {
        let link = dir.join(name);
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::canonicalize(&link).unwrap(), exe, "{name}");
        // Each name is a program of its own, not `fdfs` and its subcommands.
        let out = env.run({
            let mut c = Command::new(&link);
            // The stat tools take their conf with -c only (operands are
            // ignored; without -c they read /etc/fdfs/client.conf, which a
            // machine with FastDFS installed has).
            if name.ends_with("_stat") {
                c.arg("-c");
            }
            c.arg(env.path("no-such.conf"));
            c
        });
        assert_ne!(out.code, 0, "{name}: {out:?}");
        assert!(
            !out.stdout.contains("<COMMAND>") && !out.stderr.contains("<COMMAND>"),
            "{name}: {out:?}"
        );
    }
    // Running again replaces them; the links work as the classic tools.
    assert_eq!(env.fdfs(&["install-links", dir.to_str().unwrap()]).code, 0);
    let hello = env.write("hello.txt", HELLO);
    let out = env.run({
        let mut c = Command::new(dir.join("fdfs_crc32"));
        c.arg(&hello);
        c
    });
    assert_eq!(out.stdout, "37f96daf\n");
    let out = env.run({
        let mut c = Command::new(dir.join("fdfs_upload_file"));
        c.arg(&env.conf).arg(&hello);
        c
    });
    assert!(is_file_id(out.stdout.trim_end(), "txt"), "{out:?}");
}

#[test]
fn modern_subcommands() {
    let env = Env::start();
    let t = env.tracker();
    let hello = env.write("hello.txt", HELLO);
    let out = env.fdfs(&["upload", "--tracker", &t, hello.to_str().unwrap()]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let id = out.stdout.strip_suffix('\n').unwrap().to_string();
    assert!(is_file_id(&id, "txt"), "{out:?}");

    // Download to a file, to stdout, a range, and the default name.
    let out = env.fdfs(&["download", "--tracker", &t, &id, "-o", "m.down"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    assert_eq!(std::fs::read(env.path("m.down")).unwrap(), HELLO);
    let out = env.fdfs(&["download", "--tracker", &t, &id, "-o", "-"]);
    assert_eq!(out.stdout.as_bytes(), HELLO);
    let out = env.fdfs(&[
        "download",
        "--tracker",
        &t,
        &id,
        "-o",
        "-",
        "--offset",
        "6",
        "--length",
        "7",
    ]);
    assert_eq!(out.stdout, "FastDFS");
    let out = env.fdfs(&["download", "--tracker", &t, &id]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read(env.path(id.rsplit('/').next().unwrap())).unwrap(),
        HELLO
    );

    // Info: same text as fdfs_file_info; -c with the client.conf works too.
    let conf = env.conf.to_str().unwrap().to_string();
    let ts = decode_remote_name(&id[7..]).unwrap().create_timestamp;
    let out = env.fdfs(&["info", "-c", &conf, &id]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        file_info_text(false, "normal", ts, 14, 0x37F9_6DAF)
    );

    // Metadata: set (overwrite), get, merge.
    let out = env.fdfs(&["meta", "set", "--tracker", &t, &id, "b=2", "a=1"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let out = env.fdfs(&["meta", "get", "--tracker", &t, &id]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "a=1\nb=2\n"),
        "{out:?}"
    );
    let out = env.fdfs(&["meta", "set", "--tracker", &t, &id, "--merge", "c=3,a=9"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.fdfs(&["meta", "get", "--tracker", &t, &id]);
    assert_eq!(out.stdout, "a=9\nb=2\nc=3\n");
    let out = env.fdfs(&["meta", "set", "--tracker", &t, &id, "z=0"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        env.fdfs(&["meta", "get", "--tracker", &t, &id]).stdout,
        "z=0\n"
    );

    // Appender, append, regenerate.
    let out = env.fdfs(&[
        "upload",
        "--tracker",
        &t,
        "--appender",
        hello.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let app = out.stdout.trim_end().to_string();
    let out = env.fdfs(&["append", "--tracker", &t, &app, hello.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.fdfs(&["info", "--tracker", &t, &app]);
    assert!(out
        .stdout
        .starts_with("GET FROM SERVER: true\n\nfile type: appender\n"));
    assert!(out.stdout.contains("\nfile size: 28\n"), "{out:?}");
    let out = env.fdfs(&["regenerate", "--tracker", &t, &app]);
    assert_eq!(out.code, 0, "{out:?}");
    let regenerated = out.stdout.trim_end().to_string();
    assert!(is_file_id(&regenerated, "txt"), "{out:?}");
    let out = env.fdfs(&["download", "--tracker", &t, &regenerated, "-o", "-"]);
    assert_eq!(out.stdout, "Hello FastDFS\nHello FastDFS\n");

    // Slave upload.
    let out = env.fdfs(&[
        "upload",
        "--tracker",
        &t,
        "--master",
        &id,
        "--prefix",
        "_s",
        hello.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("{}_s.txt\n", id.strip_suffix(".txt").unwrap())
    );

    // Delete; a second delete fails with one stderr line and exit 2.
    let out = env.fdfs(&["delete", "--tracker", &t, &id]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    let out = env.fdfs(&["delete", "--tracker", &t, &id]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!("fdfs: {id}: No such file or directory\n")
    );
    let out = env.fdfs(&["download", "--tracker", &t, &id, "-o", "gone"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(!env.path("gone").exists());
}

#[test]
fn modern_failures_are_one_stderr_line() {
    let env = Env::start();
    let t = env.tracker();
    let check = |out: Out, code: i32| {
        assert_eq!(out.code, code, "{out:?}");
        assert_eq!(out.stdout, "", "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(out.stderr.starts_with("fdfs: "), "{out:?}");
    };
    // Missing local file: strerror text, no "network error" wording.
    let out = env.fdfs(&["upload", "--tracker", &t, "missing.txt"]);
    assert_eq!(out.stderr, "fdfs: missing.txt: No such file or directory\n");
    check(out, 2);
    // Malformed file id.
    check(env.fdfs(&["info", "--tracker", &t, "nogroupslash"]), 22);
    // Name too short.
    check(env.fdfs(&["info", "--tracker", &t, "group1/abc"]), 22);
    // Unknown group.
    let hello = env.write("hello.txt", HELLO);
    let hello = hello.to_str().unwrap();
    check(
        env.fdfs(&["upload", "--tracker", &t, "-g", "nogroup", hello]),
        2,
    );
    // A tracker that refuses connections.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let out = env.fdfs(&["upload", "--tracker", &dead_addr, hello]);
    assert_eq!(out.stderr, format!("fdfs: {hello}: Connection refused\n"));
    check(out, 111);
    // A bad --tracker value.
    check(
        env.fdfs(&["meta", "get", "--tracker", "127.0.0.1:notaport", "g/x"]),
        22,
    );
}

/// A tracker whose allow_hosts does not list us closes the connection at
/// accept; the tools say that this may be why, classic and modern alike.
#[test]
fn tools_name_allow_hosts_when_a_server_closes_at_once() {
    // Closes every connection at accept, as a refusing server does.
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = refusing.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in refusing.incoming() {
            drop(conn);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let hello = work.path().join("hello.txt");
    std::fs::write(&hello, HELLO).unwrap();
    let hello = hello.to_str().unwrap();
    let conf = work.path().join("client.conf");
    std::fs::write(
        &conf,
        format!("base_path = /tmp\ntracker_server = {addr}\n"),
    )
    .unwrap();
    let run = |cmd: &mut Command| Out::from(cmd.output().unwrap());

    let out = run(Command::new(env!("CARGO_BIN_EXE_fdfs")).args([
        "upload",
        "--tracker",
        &addr.to_string(),
        hello,
    ]));
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("allow_hosts"), "{out:?}");

    let bin = work.path().join("fdfs_upload_file");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fdfs"), &bin).unwrap();
    let out = run(Command::new(&bin).arg(&conf).arg(hello));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("tracker_query_storage fail, error no: "),
        "{out:?}"
    );
    assert!(out.stderr.contains("allow_hosts"), "{out:?}");
}

/// A tracker that cannot list its groups (here: one that answers every
/// request with ENOSPC, as ours does for a listing over its package size):
/// fdfs_monitor says so on stderr and exits with the errno, as the C tool
/// does, instead of printing nothing and exiting 0.
#[test]
fn monitor_exits_with_the_errno_when_the_listing_fails() {
    use std::io::{Read, Write};
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = fake.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in fake.incoming().flatten() {
            let mut head = [0u8; 10];
            while conn.read_exact(&mut head).is_ok() {
                let len = u64::from_be_bytes(head[..8].try_into().unwrap());
                let mut body = vec![0u8; len as usize];
                if conn.read_exact(&mut body).is_err() || head[8] == 82 {
                    break;
                }
                let mut answer = [0u8; 10];
                answer[8] = 100;
                answer[9] = 28;
                if conn.write_all(&answer).is_err() {
                    break;
                }
            }
        }
    });
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("client.conf");
    std::fs::write(
        &conf,
        format!("base_path = /tmp\ntracker_server = {addr}\n"),
    )
    .unwrap();
    let out = Out::from(
        Command::new(env!("CARGO_BIN_EXE_fdfs"))
            .args(["monitor", "--conf", conf.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 28, "{out:?}");
    assert!(
        out.stderr
            .contains("list all groups fail, error no: 28, error info: No space left on device"),
        "{out:?}"
    );
}
