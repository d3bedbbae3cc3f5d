//! `fdfs health -c CONF`: checks the role a classic conf describes, for
//! systemd and Kubernetes probes outside our image. A tracker.conf: the
//! tracker port answers ACTIVE_TEST. A storage.conf: the storage port
//! answers, and every tracker of the conf that answers lists the storage
//! ACTIVE (at least one must answer). A client.conf: every tracker answers.
//! A tracker.conf or storage.conf that sets `http.server_port` (non-zero)
//! also has its /metrics page fetched: it must answer 200 with a complete
//! OpenMetrics page.
//!
//! The kind of conf is told by its keys: `group_name` makes a storage.conf,
//! `tracker_server` without it a client.conf, neither a tracker.conf.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use fdfs_client::{ClientError, Conn, TrackerClient};
use fdfs_config::{ClientConf, IniFile, StorageConf, TrackerAddr, TrackerConf};
use fdfs_proto::stat::storage_status;
use fdfs_proto::{Status, CMD_ACTIVE_TEST};
use fdfs_util::net::host_port;

/// Each probe (connect, then answer) must finish within this time.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One check and its outcome (`Err`: what is wrong).
struct Check {
    what: String,
    outcome: Result<(), String>,
}

/// The role a conf file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Tracker,
    Storage,
    Client,
}

/// Tells the role from the conf's keys.
pub fn role_of(ini: &IniFile) -> Role {
    if ini.get("group_name").is_some() {
        Role::Storage
    } else if ini.get("tracker_server").is_some() {
        Role::Client
    } else {
        Role::Tracker
    }
}

/// Where to reach a server bound to `bind_addr` (empty: every address,
/// so loopback).
fn local_target(bind_addr: &str, port: u16) -> String {
    let host = match bind_addr.trim() {
        "" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        h => h,
    };
    host_port(host, port)
}

async fn connect(addr: &str) -> Result<Conn, String> {
    Conn::connect(addr, PROBE_TIMEOUT, PROBE_TIMEOUT)
        .await
        .map_err(|e| describe(&e))
}

fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Status(s) => format!("answered status {}", s.0),
        other => other.to_string(),
    }
}

/// ACTIVE_TEST (111) must answer status 0.
async fn active_test(addr: &str) -> Result<(), String> {
    let mut conn = connect(addr).await?;
    let res = tokio::time::timeout(PROBE_TIMEOUT, conn.call(CMD_ACTIVE_TEST, &[]))
        .await
        .map_err(|_| "no answer in time".to_string())?;
    res.map_err(|e| describe(&e))?;
    conn.quit().await;
    Ok(())
}

/// Largest /metrics page read (a big cluster's page is some hundred KB).
const MAX_METRICS_PAGE_BYTES: u64 = 16 * 1024 * 1024;

/// GET /metrics on `addr` must answer 200 with a page ending in `# EOF`.
async fn metrics_page(addr: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: fdfs-health\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut page = Vec::new();
        stream
            .take(MAX_METRICS_PAGE_BYTES)
            .read_to_end(&mut page)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(page)
    };
    let page = tokio::time::timeout(PROBE_TIMEOUT, fetch)
        .await
        .map_err(|_| "no answer in time".to_string())??;
    let text = String::from_utf8_lossy(&page);
    let status = text.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.") || status.split(' ').nth(1) != Some("200") {
        // Peer text: {:?} escapes it.
        let status: String = status.chars().take(80).collect();
        return Err(format!("answered {status:?}"));
    }
    if !text.trim_end().ends_with("# EOF") {
        return Err("the page is cut short (no # EOF)".into());
    }
    Ok(())
}

/// The /metrics check of a conf that sets `http.server_port`.
async fn metrics_check(ini: &IniFile, bind_addr: &str, port: u16) -> Option<Check> {
    let set = ini.get("http.server_port").is_some();
    if !set || port == 0 {
        return None;
    }
    let target = local_target(bind_addr, port);
    Some(Check {
        outcome: metrics_page(&target).await,
        what: format!("metrics http://{target}/metrics"),
    })
}

fn tracker_targets(trackers: &[TrackerAddr]) -> Vec<String> {
    trackers
        .iter()
        .filter_map(|t| t.hosts.first().map(|h| host_port(h, t.port)))
        .collect()
}

/// True when `ip` is an address of this host.
fn is_local_ip(ip: &str) -> bool {
    ip.parse::<IpAddr>()
        .is_ok_and(|ip| std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok())
}

/// The status `tracker` lists the storage of `conf` with: the outer `Err`
/// when the tracker does not answer, the inner one when it answers
/// without listing the storage.
async fn storage_status_on(
    tracker: &str,
    conf: &StorageConf,
) -> Result<Result<u8, String>, String> {
    let mut conn = connect(tracker).await?;
    let listing = tokio::time::timeout(
        PROBE_TIMEOUT,
        TrackerClient::new(&mut conn).list_storages(&conf.group_name, None),
    )
    .await
    .map_err(|_| "no answer in time".to_string())?;
    let listing = match listing {
        Ok(l) => l,
        Err(ClientError::Status(s)) if s == Status::ENOENT => {
            return Ok(Err(format!("does not know group {}", conf.group_name)))
        }
        Err(e) => return Err(describe(&e)),
    };
    conn.quit().await;
    let own_ip = conf
        .advertise_addr
        .clone()
        .filter(|a| !a.is_empty())
        .or_else(|| Some(conf.bind_addr.clone()).filter(|a| !a.is_empty()));
    Ok(listing
        .iter()
        .find(|s| {
            i64::from(conf.port) == s.storage_port
                && own_ip
                    .as_deref()
                    .map_or_else(|| is_local_ip(&s.ip_addr), |ip| ip == s.ip_addr)
        })
        .map(|s| s.status)
        .ok_or_else(|| format!("does not list this storage in {}", conf.group_name)))
}

async fn check_storage(conf: &StorageConf) -> Vec<Check> {
    let me = local_target(&conf.bind_addr, conf.port);
    let mut checks = vec![Check {
        what: format!("storage {me}"),
        outcome: active_test(&me).await,
    }];
    let mut answered = 0;
    for tracker in tracker_targets(&conf.tracker_servers) {
        let outcome = match storage_status_on(&tracker, conf).await {
            Ok(Ok(storage_status::ACTIVE)) => {
                answered += 1;
                Ok(())
            }
            Ok(Ok(status)) => {
                answered += 1;
                Err(format!(
                    "lists this storage {}",
                    storage_status::caption(status)
                ))
            }
            Ok(Err(e)) => {
                answered += 1;
                Err(e)
            }
            Err(e) => {
                // A tracker that is down does not make the storage sick.
                checks.push(Check {
                    what: format!("tracker {tracker} (not counted)"),
                    outcome: Err(e),
                });
                continue;
            }
        };
        checks.push(Check {
            what: format!("tracker {tracker}"),
            outcome,
        });
    }
    if answered == 0 {
        checks.push(Check {
            what: "trackers".into(),
            outcome: Err("none of the storage's trackers answers".into()),
        });
    }
    checks
}

async fn check_trackers(trackers: &[TrackerAddr]) -> Vec<Check> {
    let mut checks = Vec::new();
    for t in tracker_targets(trackers) {
        checks.push(Check {
            outcome: active_test(&t).await,
            what: format!("tracker {t}"),
        });
    }
    if checks.is_empty() {
        checks.push(Check {
            what: "client.conf".into(),
            outcome: Err("names no tracker_server".into()),
        });
    }
    checks
}

/// Loads the conf and runs the checks of its role.
async fn run_checks(path: &Path) -> Result<Vec<Check>, String> {
    let ini = IniFile::load(path).map_err(|e| e.to_string())?;
    Ok(match role_of(&ini) {
        Role::Tracker => {
            let (conf, _) = TrackerConf::load(path).map_err(|e| e.to_string())?;
            let me = local_target(&conf.bind_addr, conf.port);
            let mut checks = vec![Check {
                outcome: active_test(&me).await,
                what: format!("tracker {me}"),
            }];
            checks.extend(metrics_check(&ini, &conf.bind_addr, conf.http_server_port).await);
            checks
        }
        Role::Storage => {
            let (conf, _) = StorageConf::load(path).map_err(|e| e.to_string())?;
            let mut checks = check_storage(&conf).await;
            checks.extend(metrics_check(&ini, &conf.bind_addr, conf.http_server_port).await);
            checks
        }
        Role::Client => {
            let (conf, _) = ClientConf::load(path).map_err(|e| e.to_string())?;
            check_trackers(&conf.tracker_servers).await
        }
    })
}

/// Runs the checks of `conf`; exit 0 when all pass. Without `verbose` a
/// failure is one line on stderr; with it every check is reported.
pub fn check_conf(conf: &Path, verbose: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fdfs health: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = match rt.block_on(run_checks(conf)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fdfs health: {}: {e}", conf.display());
            return ExitCode::FAILURE;
        }
    };
    let failed: Vec<&Check> = checks
        .iter()
        .filter(|c| c.outcome.is_err() && !c.what.ends_with("(not counted)"))
        .collect();
    if verbose {
        for c in &checks {
            match &c.outcome {
                Ok(()) => outln!("ok: {}", c.what),
                Err(e) => outln!("FAIL: {}: {e}", c.what),
            }
        }
    }
    match failed.first() {
        None => ExitCode::SUCCESS,
        Some(c) => {
            let more = match failed.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            eprintln!(
                "fdfs health: {}: {}{more}",
                c.what,
                c.outcome.as_ref().err().map_or("", String::as_str)
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_is_told_by_the_keys() {
        let parse = |t: &str| IniFile::parse_str(t, Path::new("x.conf")).unwrap();
        assert_eq!(role_of(&parse("port = 22122\n")), Role::Tracker);
        assert_eq!(
            role_of(&parse("group_name = g1\ntracker_server = 1.2.3.4:22122\n")),
            Role::Storage
        );
        assert_eq!(
            role_of(&parse("tracker_server = 1.2.3.4:22122\n")),
            Role::Client
        );
    }

    #[test]
    fn a_wildcard_bind_is_probed_on_loopback() {
        assert_eq!(local_target("", 22122), "127.0.0.1:22122");
        assert_eq!(local_target("0.0.0.0", 1), "127.0.0.1:1");
        assert_eq!(local_target("::", 1), "[::1]:1");
        assert_eq!(local_target("127.0.0.2", 1), "127.0.0.2:1");
    }
}
