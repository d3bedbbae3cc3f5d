//! What every client tool sets up first: the client.conf, a client, and a
//! single-threaded runtime to drive it.

use std::process::ExitCode;

use fdfs_client::{Client, ClientError, ClientOptions};
use fdfs_config::{ClientConf, ConfigError};

use crate::tools::format::{errno_line, log_error};

/// Conf file the classic tools and `fdfs` subcommands fall back to.
pub const DEFAULT_CLIENT_CONF: &str = "/etc/fdfs/client.conf";

/// An exit status from an errno: shells see it modulo 256, as with the C
/// tools' `return result`.
pub fn exit_code(errno: i32) -> ExitCode {
    ExitCode::from((errno & 0xFF) as u8)
}

/// Errno for an error, logging the detail the C library would have logged
/// for failures that carry a message of their own.
pub fn report(e: &ClientError) -> i32 {
    if let ClientError::Invalid(msg) = e {
        log_error(msg);
    }
    if e.closed_without_answer() {
        log_error(ClientError::CLOSED_HINT);
    }
    i32::from(e.errno())
}

pub struct Session {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    pub conf: ClientConf,
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            log_error(&format!("cannot start the async runtime: {e}"));
            exit_code(e.raw_os_error().unwrap_or(12))
        })
}

/// Errno for a conf loading failure (ENOENT for a missing file).
pub fn conf_errno(e: &ConfigError) -> i32 {
    match e {
        ConfigError::Io { source, .. } => source.raw_os_error().unwrap_or(2),
        _ => 22,
    }
}

impl Session {
    /// Loads `conf_path` like `fdfs_client_init`: on failure an error line
    /// goes to stderr and the errno becomes the exit status.
    pub fn load(conf_path: &str) -> Result<Session, ExitCode> {
        let conf = match ClientConf::load(std::path::Path::new(conf_path)) {
            Ok((conf, _warnings)) => conf,
            Err(e) => {
                log_error(&format!("load conf file \"{conf_path}\" fail, {e}"));
                return Err(exit_code(conf_errno(&e)));
            }
        };
        Session::from_conf(conf)
    }

    /// A session for an already built conf. Connections are pooled for the
    /// life of the process, so the tracker connection made up front (see
    /// [`Session::tracker_get_connection`]) serves the first query.
    pub fn from_conf(conf: ClientConf) -> Result<Session, ExitCode> {
        let mut opts = ClientOptions::from_conf(&conf);
        opts.use_connection_pool = true;
        // One short-lived thread: a blocking-pool thread per file read
        // would cost more than the read.
        opts.inline_file_io = true;
        let client = Client::new(opts).map_err(|e| {
            log_error(&e.to_string());
            exit_code(22)
        })?;
        Ok(Session {
            rt: runtime()?,
            client,
            conf,
        })
    }

    /// Like the C tools' `tracker_get_connection()` at start: fail early,
    /// with the connect errno, when no tracker answers.
    pub fn tracker_get_connection(&self) -> Result<(), ExitCode> {
        self.rt.block_on(async {
            let mut last = 111;
            for i in 0..self.client.trackers().len() {
                match self.client.connect_tracker(i).await {
                    Ok(conn) => {
                        self.client.release(conn, true).await;
                        return Ok(());
                    }
                    Err(e) => {
                        last = i32::from(e.errno());
                        log_error(&format!(
                            "connect to server {} fail, {}",
                            self.client.trackers()[i],
                            errno_line(last).replace("error no", "errno")
                        ));
                    }
                }
            }
            Err(exit_code(last))
        })
    }
}
