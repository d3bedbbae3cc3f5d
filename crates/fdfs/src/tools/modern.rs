//! `fdfs <subcommand>`: the daemons and friendlier client commands. Client
//! commands read `-c/--conf` (default /etc/fdfs/client.conf when present)
//! and accept `--tracker HOST:PORT` so they also work without a conf file.
//! Errors: one line on stderr, exit status = errno.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fdfs_client::{ClientError, UploadKind, UploadOptions};
use fdfs_config::{ClientConf, TrackerAddr};
use fdfs_proto::metadata::{MetaOp, MetaPair};
use fdfs_proto::FileId;
use tokio::io::AsyncWriteExt;

use crate::daemon::{self, Role};
use crate::tools::classic::{self, format_file_info, split_metadata};
use crate::tools::format::errno_text;
use crate::tools::monitor::{self, MonitorArgs};
use crate::tools::session::{conf_errno, exit_code, Session, DEFAULT_CLIENT_CONF};

#[derive(Parser, Debug)]
#[command(
    name = "fdfs",
    version,
    about = "fastdfs-rs: FastDFS-compatible tracker, storage and client tools in one binary",
    long_about = "fastdfs-rs: FastDFS-compatible tracker, storage and client tools in one binary.\n\n\
                  Started under a classic name (fdfs_upload_file, fdfs_monitor, fdfs_trackerd, ...; \
                  see `fdfs install-links`) it behaves exactly like that FastDFS tool."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a tracker and a storage server in one process.
    Server(daemon::ServerArgs),
    /// Run a tracker from a classic tracker.conf.
    Tracker(daemon::RoleArgs),
    /// Run a storage server from a classic storage.conf.
    Storage(daemon::RoleArgs),
    /// Upload a local file (prints the new file id), or many: several
    /// paths, glob patterns, directories with -r, a --manifest.
    Upload(UploadArgs),
    /// Download a file (whole, or a byte range), or every file of a manifest.
    Download(DownloadArgs),
    /// Delete a file, or every file of a manifest.
    Delete(DeleteArgs),
    /// Show what is known about a file (same text as fdfs_file_info).
    Info(InfoArgs),
    /// Read or change a file's metadata.
    #[command(subcommand)]
    Meta(MetaCmd),
    /// Append a local file to an appender file.
    Append(AppendArgs),
    /// Turn an appender file into a normal file; prints the new file id.
    Regenerate(FileArgs),
    /// Cluster status (same output as fdfs_monitor; `sync` shows replication
    /// progress and lag per peer).
    Monitor(MonitorCmd),
    /// Trunk storage: `check` compares every member's slot headers with
    /// its trunk binlog; --repair releases proven-free quarantined space
    /// and frees leaked slots.
    #[command(subcommand)]
    Trunk(TrunkCmd),
    /// CRC32 of a local file, in hex.
    Crc32 { file: PathBuf },
    /// Create symlinks named after every classic FastDFS tool and daemon,
    /// pointing at this executable (existing links are replaced).
    InstallLinks { dir: PathBuf },
    /// Load test over the binary protocol (works against any FastDFS).
    Bench(crate::bench::BenchArgs),
    /// Print the HTTP URL path of a file signed with an anti-steal token
    /// (`?token=...&ts=...`).
    Token(TokenArgs),
    /// Container entry point: all | tracker | storage | monitor | <tool>.
    Container(crate::container::ContainerArgs),
    /// Exit 0 when every service of this container answers (HEALTHCHECK),
    /// or with -c CONF when the role that conf describes is healthy.
    Health(crate::container::HealthArgs),
    /// Example application: upload through the tracker, read back over HTTP.
    Demo(crate::container::DemoArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["secret", "conf"])))]
struct TokenArgs {
    /// File id, e.g. group1/M00/00/00/xxx.jpg.
    file_id: String,
    /// How long the URL stays valid, in seconds (0: forever, ts=0). The
    /// gateway accepts a token until ts + http.anti_steal.token_ttl, so ts
    /// is set to now + TTL - token_ttl [default: token_ttl, i.e. ts = now].
    #[arg(long)]
    ttl: Option<u64>,
    /// The gateway's http.anti_steal.secret_key.
    #[arg(long)]
    secret: Option<String>,
    /// mod_fastdfs.conf (secret key, token_ttl, url_have_group_name).
    #[arg(short = 'c', long = "conf", value_name = "MOD_FASTDFS_CONF")]
    conf: Option<PathBuf>,
    /// The gateway's http.anti_steal.token_ttl when --secret is given
    /// without --conf [default: 600, the module's default].
    #[arg(long, value_name = "SECONDS")]
    token_ttl: Option<u64>,
}

/// How to reach the cluster.
#[derive(Args, Debug, Clone)]
struct ClusterArgs {
    /// client.conf to read [default: /etc/fdfs/client.conf when it exists,
    /// else tracker 127.0.0.1:22122].
    #[arg(short = 'c', long = "conf", value_name = "CLIENT_CONF")]
    conf: Option<PathBuf>,
    /// Tracker address (repeatable); replaces the conf's tracker_server lines.
    #[arg(long = "tracker", value_name = "HOST:PORT")]
    trackers: Vec<String>,
}

/// Options of the bulk forms (many files, a manifest).
#[derive(Args, Debug, Clone)]
struct BulkArgs {
    /// Files to handle at once [default: 4].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Manifest of uploaded files (path, file id, URL, size, mtime, CRC32):
    /// upload appends to it and skips files it already lists unchanged;
    /// download and delete work from it.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Manifest format [default: json for a .json file, else csv].
    #[arg(long, value_name = "csv|json", requires = "manifest")]
    format: Option<String>,
}

impl BulkArgs {
    fn jobs(&self) -> usize {
        self.jobs
            .map_or(crate::tools::bulk::DEFAULT_JOBS, usize::from)
    }
}

#[derive(Args, Debug)]
struct UploadArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Local files, directories (with -r) or quoted glob patterns.
    #[arg(required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Upload what directories hold, recursively.
    #[arg(short = 'r', long)]
    recursive: bool,
    #[command(flatten)]
    bulk: BulkArgs,
    /// Upload into this group.
    #[arg(short, long)]
    group: Option<String>,
    /// Create an appender file (can be appended to, modified, truncated).
    #[arg(long)]
    appender: bool,
    /// Extension to store (default: taken from the local file name).
    #[arg(long)]
    ext: Option<String>,
    /// Metadata NAME=VALUE (repeatable).
    #[arg(short, long = "meta", value_name = "NAME=VALUE")]
    meta: Vec<String>,
    /// Upload as a slave of this master file id, with --prefix.
    #[arg(long, value_name = "FILE_ID", requires = "prefix")]
    master: Option<String>,
    /// Slave name prefix (with --master), e.g. _150x150.
    #[arg(long)]
    prefix: Option<String>,
    /// Upload straight to this storage (HOST:PORT), skipping the tracker.
    #[arg(long, value_name = "HOST:PORT")]
    storage: Option<String>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["file_id", "manifest"])))]
struct DownloadArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[arg(conflicts_with = "manifest")]
    file_id: Option<String>,
    #[command(flatten)]
    bulk: BulkArgs,
    /// With --manifest: download under this directory instead of to each
    /// row's own path.
    #[arg(short = 'd', long = "dir", value_name = "DIR", requires = "manifest")]
    dir: Option<PathBuf>,
    /// Output file, `-` for stdout [default: the id's last path component].
    #[arg(short, long, conflicts_with = "manifest")]
    output: Option<PathBuf>,
    /// First byte to download.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Number of bytes (0: to the end).
    #[arg(long, default_value_t = 0)]
    length: u64,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["file_id", "manifest"])))]
struct DeleteArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[arg(conflicts_with = "manifest")]
    file_id: Option<String>,
    #[command(flatten)]
    bulk: BulkArgs,
}

#[derive(Args, Debug)]
struct FileArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    file_id: String,
}

#[derive(Args, Debug)]
struct InfoArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    file_id: String,
    /// Do not compute CRC32 for appender or slave files.
    #[arg(short = 'n', long)]
    no_crc: bool,
    /// Keep silence: the storage does not log a missing file.
    #[arg(short = 's', long)]
    silent: bool,
}

#[derive(Subcommand, Debug)]
enum MetaCmd {
    /// Print NAME=VALUE lines.
    Get(FileArgs),
    /// Replace (default) or merge metadata.
    Set {
        #[command(flatten)]
        cluster: ClusterArgs,
        file_id: String,
        /// NAME=VALUE pairs (a single argument may hold several, comma separated).
        #[arg(value_name = "NAME=VALUE")]
        pairs: Vec<String>,
        /// Merge with the existing metadata instead of replacing it.
        #[arg(long)]
        merge: bool,
    },
}

#[derive(Args, Debug)]
struct AppendArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    file_id: String,
    file: PathBuf,
}

#[derive(Subcommand, Debug)]
enum TrunkCmd {
    /// Scrub: each ACTIVE member compares the slot headers on its disk
    /// with its trunk binlog; one line per mismatch, then a summary; exit
    /// 1 on any mismatch.
    Check {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Only this group [default: every group].
        #[arg(short, long)]
        group: Option<String>,
        /// Release quarantined slots proven free on every member and free
        /// leaked slots, only while every member is ACTIVE (needs the trunk
        /// server).
        #[arg(long)]
        repair: bool,
        /// The storages' cluster_secret_file: when they have one, a repair
        /// is refused (EPERM) from who does not prove it.
        #[arg(long, value_name = "FILE", requires = "repair")]
        cluster_secret_file: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct MonitorCmd {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Ask this configured tracker (HOST[:PORT]).
    #[arg(short = 'H', long = "host", value_name = "HOST[:PORT]")]
    host: Option<String>,
    /// `list [GROUP]`, `sync [GROUP]` (per-storage sync source, progress
    /// and lag behind each peer), `delete GROUP [STORAGE_ID]` or
    /// `set_trunk_server GROUP [STORAGE_ID]` (default: list), or
    /// `tracker_stat|storage_stat|volumn_stat [OPTIONS]` (the text and
    /// options of fdfs_tracker_stat, fdfs_storage_stat, fdfs_volumn_stat).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Parses argv and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Command::Server(a) => daemon::server(a),
        Command::Tracker(a) => daemon::role(Role::Tracker, a),
        Command::Storage(a) => daemon::role(Role::Storage, a),
        Command::Crc32 { file } => match classic::crc32_of_file(&file) {
            Ok(crc) => {
                outln!("{crc:x}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&file.display().to_string(), &ClientError::Io(e)),
        },
        Command::InstallLinks { dir } => install_links(&dir),
        Command::Bench(a) => crate::bench::run(a),
        Command::Token(a) => token(a),
        Command::Container(a) => crate::container::run(a),
        Command::Health(a) => crate::container::health(a),
        Command::Demo(a) => crate::container::demo(a),
        Command::Monitor(m) => {
            let session = match session(&m.cluster) {
                Ok(s) => s,
                Err(c) => return c,
            };
            let mut rest = m.args;
            let op = if rest.is_empty() {
                "list".to_string()
            } else {
                rest.remove(0)
            };
            let args = MonitorArgs {
                conf: String::new(),
                tracker: m.host,
                op,
                rest,
            };
            monitor::run_with(&session, &args, "fdfs monitor")
        }
        Command::Trunk(TrunkCmd::Check {
            cluster,
            group,
            repair,
            cluster_secret_file,
        }) => {
            let cluster_secret = match cluster_secret_file
                .map(|p| fdfs_util::cluster_secret::ClusterSecret::load(&p))
                .transpose()
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("fdfs: trunk check: {e}");
                    return ExitCode::from(2);
                }
            };
            let session = match session(&cluster) {
                Ok(s) => s,
                Err(c) => return c,
            };
            let args = crate::tools::trunk_check::CheckArgs {
                group,
                repair,
                cluster_secret,
            };
            crate::tools::trunk_check::run(&session, &args)
        }
        Command::Upload(a) => upload(a),
        Command::Download(a) => download(a),
        Command::Delete(a) => delete(a),
        Command::Regenerate(a) => with_file(&a, async |s, id| {
            let new_id = s.client.regenerate_appender_name(&id).await?;
            outln!("{new_id}");
            Ok(())
        }),
        Command::Info(a) => {
            let flags = u8::from(a.no_crc) * fdfs_client::FINFO_FLAG_NO_CRC32
                + u8::from(a.silent) * fdfs_client::FINFO_FLAG_KEEP_SILENCE;
            let fa = FileArgs {
                cluster: a.cluster,
                file_id: a.file_id,
            };
            with_file(&fa, async |s, id| {
                let info = s.client.file_info(&id, true, flags).await?;
                out!("{}", format_file_info(&info, flags));
                Ok(())
            })
        }
        Command::Meta(MetaCmd::Get(a)) => with_file(&a, async |s, id| {
            for (n, v) in s.client.get_metadata(&id).await? {
                outln!(
                    "{}={}",
                    String::from_utf8_lossy(&n),
                    String::from_utf8_lossy(&v)
                );
            }
            Ok(())
        }),
        Command::Meta(MetaCmd::Set {
            cluster,
            file_id,
            pairs,
            merge,
        }) => {
            let meta: Vec<MetaPair> = pairs.iter().flat_map(|p| split_metadata(p)).collect();
            let op = if merge {
                MetaOp::Merge
            } else {
                MetaOp::Overwrite
            };
            let fa = FileArgs { cluster, file_id };
            with_file(&fa, async |s, id| {
                s.client.set_metadata(&id, &meta, op).await
            })
        }
        Command::Append(a) => {
            let fa = FileArgs {
                cluster: a.cluster,
                file_id: a.file_id,
            };
            let file = a.file;
            with_file(&fa, async |s, id| s.client.append_file(&id, &file).await)
        }
    }
}

/// One-line error, exit status = errno.
fn fail(context: &str, e: &ClientError) -> ExitCode {
    let n = i32::from(e.errno());
    let detail = match e {
        // An OS error (a missing local file, a refused connection) reads
        // as its strerror text, not as "network error: … (os error N)".
        ClientError::Status(_) => errno_text(n),
        ClientError::Io(io) if io.raw_os_error().is_some() => errno_text(n),
        other => other.to_string(),
    };
    if e.closed_without_answer() {
        eprintln!("fdfs: {context}: {detail}; {}", ClientError::CLOSED_HINT);
    } else {
        eprintln!("fdfs: {context}: {detail}");
    }
    exit_code(n)
}

/// Conf from `--conf`, else /etc/fdfs/client.conf, else built-in defaults;
/// `--tracker` replaces the tracker list.
fn session(cluster: &ClusterArgs) -> Result<Session, ExitCode> {
    let path = cluster.conf.clone().or_else(|| {
        let p = PathBuf::from(DEFAULT_CLIENT_CONF);
        (cluster.trackers.is_empty() && p.exists()).then_some(p)
    });
    let mut conf = match path {
        Some(p) => match ClientConf::load(&p) {
            Ok((c, _)) => c,
            Err(e) => {
                eprintln!("fdfs: {e}");
                return Err(exit_code(conf_errno(&e)));
            }
        },
        None => ClientConf::default(),
    };
    if !cluster.trackers.is_empty() {
        let mut list = Vec::new();
        for t in &cluster.trackers {
            match t.parse::<TrackerAddr>() {
                Ok(a) => list.push(a),
                Err(e) => {
                    eprintln!("fdfs: invalid --tracker {t}: {e}");
                    return Err(ExitCode::from(22));
                }
            }
        }
        conf.tracker_servers = list;
    }
    Session::from_conf(conf)
}

/// Runs `f` with a session and a parsed file id; errors become one line.
fn with_file(
    a: &FileArgs,
    f: impl AsyncFnOnce(&Session, FileId) -> Result<(), ClientError>,
) -> ExitCode {
    let s = match session(&a.cluster) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let id = match FileId::parse(&a.file_id) {
        Ok(id) => id,
        Err(_) => return fail(&a.file_id, &ClientError::Invalid("invalid file id".into())),
    };
    match s.rt.block_on(f(&s, id)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&a.file_id, &e),
    }
}

/// `HOST:PORT` (or `[v6]:PORT`) of a storage.
fn parse_server_addr(text: &str) -> Result<fdfs_proto::tracker_msg::ServerAddr, ClientError> {
    let bad = || ClientError::Invalid(format!("invalid storage address {text:?}, want HOST:PORT"));
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    if ip.is_empty() {
        return Err(bad());
    }
    Ok(fdfs_proto::tracker_msg::ServerAddr {
        ip: ip.to_string(),
        port,
    })
}

/// Whether an upload takes the bulk path: anything but one existing (or
/// missing, non-pattern) file with no bulk option keeps the single-file
/// form and its output.
fn is_bulk_upload(a: &UploadArgs) -> bool {
    let [only] = a.files.as_slice() else {
        return true;
    };
    a.recursive
        || a.bulk.jobs.is_some()
        || a.bulk.manifest.is_some()
        || only.is_dir()
        || (only.symlink_metadata().is_err() && only.to_string_lossy().contains(['*', '?', '[']))
}

fn bulk_upload(a: UploadArgs) -> ExitCode {
    if a.appender || a.master.is_some() {
        eprintln!("fdfs: --appender and --master upload one file at a time");
        return ExitCode::from(22);
    }
    let storage = match a.storage.as_deref().map(parse_server_addr).transpose() {
        Ok(s) => s,
        Err(e) => return fail("--storage", &e),
    };
    let s = match session(&a.cluster) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let job = crate::tools::bulk::UploadJob {
        jobs: a.bulk.jobs(),
        paths: a.files,
        recursive: a.recursive,
        manifest: a.bulk.manifest,
        format: a.bulk.format,
        group: a.group,
        ext: a.ext,
        metadata: a.meta.iter().flat_map(|p| split_metadata(p)).collect(),
        storage,
    };
    crate::tools::bulk::upload(&s, job)
}

fn upload(a: UploadArgs) -> ExitCode {
    if is_bulk_upload(&a) {
        return bulk_upload(a);
    }
    let file = a.files[0].clone();
    let s = match session(&a.cluster) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let meta: Vec<MetaPair> = a.meta.iter().flat_map(|p| split_metadata(p)).collect();
    let res = s.rt.block_on(async {
        if let (Some(master), Some(prefix)) = (&a.master, &a.prefix) {
            let master = FileId::parse(master)?;
            return s
                .client
                .upload_slave_file(&master, prefix, a.ext.as_deref(), &file, &meta)
                .await;
        }
        let storage = a.storage.as_deref().map(parse_server_addr).transpose()?;
        let opts = UploadOptions {
            group: a.group.clone(),
            kind: if a.appender {
                UploadKind::Appender
            } else {
                UploadKind::Normal
            },
            ext: a.ext.clone(),
            metadata: meta.clone(),
            storage,
            ..Default::default()
        };
        let uploaded = s.client.upload_file(&file, &opts).await;
        if let Err(e) = &uploaded {
            crate::tools::nospace::print_if_no_space(&s.client, e, &opts, "fdfs: ").await;
        }
        uploaded
    });
    match res {
        Ok(id) => {
            outln!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&file.display().to_string(), &e),
    }
}

fn delete(a: DeleteArgs) -> ExitCode {
    if let Some(manifest) = &a.bulk.manifest {
        let s = match session(&a.cluster) {
            Ok(s) => s,
            Err(c) => return c,
        };
        return crate::tools::bulk::delete(&s, manifest, a.bulk.format.as_deref(), a.bulk.jobs());
    }
    let fa = FileArgs {
        cluster: a.cluster,
        file_id: a.file_id.unwrap_or_default(),
    };
    with_file(&fa, async |s, id| s.client.delete_file(&id).await)
}

fn download(a: DownloadArgs) -> ExitCode {
    if let Some(manifest) = &a.bulk.manifest {
        let s = match session(&a.cluster) {
            Ok(s) => s,
            Err(c) => return c,
        };
        return crate::tools::bulk::download(
            &s,
            manifest,
            a.bulk.format.as_deref(),
            a.dir.as_deref(),
            a.bulk.jobs(),
        );
    }
    let file_id = a.file_id.clone().unwrap_or_default();
    let fa = FileArgs {
        cluster: a.cluster,
        file_id: file_id.clone(),
    };
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(file_id.rsplit('/').next().unwrap_or(&file_id)));
    with_file(&fa, async |s, id| {
        if output.as_os_str() == "-" {
            let mut out = BlockingStdout(std::io::stdout());
            s.client
                .download_to_writer(&id, a.offset, a.length, &mut out)
                .await?;
            out.flush().await?;
        } else {
            s.client
                .download_to_file(&id, &output, a.offset, a.length)
                .await?;
        }
        Ok(())
    })
}

/// `fdfs token`: the signed URL path of a file.
fn token(a: TokenArgs) -> ExitCode {
    let (secret, server_ttl, with_group) = match (&a.secret, &a.conf) {
        (Some(k), _) => (
            k.clone(),
            a.token_ttl
                .unwrap_or(fdfs_config::HttpConf::default().token_ttl_secs),
            true,
        ),
        (None, Some(p)) => match fdfs_config::HttpConf::load(p) {
            Ok((h, _)) if !h.secret_key.is_empty() => {
                (h.secret_key, h.token_ttl_secs, h.url_have_group_name)
            }
            Ok(_) => {
                eprintln!(
                    "fdfs: {}: http.anti_steal.secret_key is not set",
                    p.display()
                );
                return ExitCode::from(22);
            }
            Err(e) => {
                eprintln!("fdfs: {e}");
                return exit_code(conf_errno(&e));
            }
        },
        (None, None) => {
            eprintln!("fdfs: token: --secret or -c is required");
            return ExitCode::from(22);
        }
    };
    let Ok(id) = FileId::parse(a.file_id.trim_start_matches('/')) else {
        return fail(&a.file_id, &ClientError::Invalid("invalid file id".into()));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let ts = match a.ttl {
        Some(0) => 0,
        Some(ttl) => now + ttl as i64 - server_ttl as i64,
        None => now,
    };
    let tok = fdfs_http::token::make_token(&id.remote, &secret, ts);
    let path = if with_group {
        format!("/{id}")
    } else {
        format!("/{}", id.remote)
    };
    outln!("{path}?token={tok}&ts={ts}");
    ExitCode::SUCCESS
}

/// Stdout as an `AsyncWrite` with plain blocking writes: fine for a CLI on
/// a single-threaded runtime (tokio's own stdout needs a feature this
/// workspace does not enable).
struct BlockingStdout(std::io::Stdout);

impl tokio::io::AsyncWrite for BlockingStdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::io::Write;
        std::task::Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Write;
        std::task::Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Every name `install-links` creates.
fn link_names() -> impl Iterator<Item = &'static str> {
    ["fdfs_trackerd", "fdfs_storaged"]
        .into_iter()
        .chain(classic::TOOL_NAMES)
}

fn install_links(dir: &Path) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail("current executable", &ClientError::Io(e)),
    };
    for name in link_names() {
        let link = dir.join(name);
        if link.symlink_metadata().is_ok() {
            if let Err(e) = std::fs::remove_file(&link) {
                return fail(&link.display().to_string(), &ClientError::Io(e));
            }
        }
        if let Err(e) = std::os::unix::fs::symlink(&exe, &link) {
            return fail(&link.display().to_string(), &ClientError::Io(e));
        }
        outln!("{} -> {}", link.display(), exe.display());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_flags_parse() {
        let cli = Cli::try_parse_from([
            "fdfs",
            "upload",
            "--tracker",
            "127.0.0.1:22122",
            "--tracker",
            "10.0.0.1",
            "-m",
            "a=1",
            "x.jpg",
        ])
        .unwrap();
        match cli.cmd {
            Command::Upload(u) => {
                assert_eq!(u.cluster.trackers.len(), 2);
                assert_eq!(u.meta, ["a=1"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["fdfs", "meta", "set", "g/x", "a=1", "--merge"]).is_ok());
        assert!(Cli::try_parse_from(["fdfs", "monitor", "-H", "h", "list", "group1"]).is_ok());
    }

    #[test]
    fn links_cover_daemons_and_tools() {
        let names: Vec<_> = link_names().collect();
        assert_eq!(names.len(), 15);
        assert!(names.contains(&"fdfs_trackerd"));
        assert!(names.contains(&"fdfs_monitor"));
    }

    #[test]
    fn install_links_replaces_existing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fdfs_test"), b"old").unwrap();
        assert_eq!(install_links(dir.path()), ExitCode::SUCCESS);
        let target = std::fs::read_link(dir.path().join("fdfs_test")).unwrap();
        assert_eq!(target, std::env::current_exe().unwrap());
    }
}
