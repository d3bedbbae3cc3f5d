//! Trunk servers (PROTOCOL.md §11.5, §2.8, §4.7): with `use_trunk_file`
//! the leader appoints one ACTIVE writable storage per group, the one with
//! the largest trunk binlog (asked with TRUNK_GET_BINLOG_SIZE, 31), and
//! appoints another when it stops beating or leaves; SET_TRUNK_SERVER (94)
//! forces the choice. Followers learn the appointments from the leader's
//! PING_LEADER answers. Only the trunk server may report the group's trunk
//! file id (73) and free trunk space (74). Every change is appended to
//! `logs/trunk_server_change.log`.

use std::sync::Arc;
use std::time::Duration;

use fdfs_client::conn::Conn;
use fdfs_proto::stat::storage_status as st;
use fdfs_proto::tracker_msg::GroupStorageReq;
use fdfs_proto::wire::Reader;
use fdfs_proto::{Status, StorageCmd};
use tokio_util::sync::CancellationToken;

use crate::handler::{bad_length, ConnCtx, HandlerResult, OpError};
use crate::state::{is_visible, no_group, no_storage, Group, StorageRec};
use crate::{guard, now_secs, Tracker};

/// How often the leader checks its groups' trunk servers.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Connect timeout towards a storage (31, 32).
const STORAGE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Answer timeout towards a storage: a stalled candidate must not hold an
/// appointment up for the 60 s of network_timeout.
const STORAGE_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Human-readable record of every trunk server change, in `logs/`.
pub const CHANGE_LOG_FILE: &str = "trunk_server_change.log";

/// How long the trunk server may stay silent before the leader appoints
/// another (the original's rule): 2 × check_active_interval, or while it
/// is young (started less than 10 intervals ago) 3 × (5 × with
/// `trunk_init_check_occupying`), doubled with
/// `trunk_init_reload_from_binlog`: a young trunk server may be busy
/// loading its free space.
pub fn silence_limit_secs(conf: &fdfs_config::TrackerConf, trunk: &StorageRec, now: i64) -> i64 {
    let interval = i64::try_from(conf.check_active_interval_secs.max(1)).unwrap_or(i64::MAX);
    let times = if now - trunk.up_time <= interval.saturating_mul(10) {
        let t = if conf.trunk_init_check_occupying {
            5
        } else {
            3
        };
        if conf.trunk_init_reload_from_binlog {
            t * 2
        } else {
            t
        }
    } else {
        2
    };
    interval.saturating_mul(times)
}

/// Whether the group needs a (new) trunk server now: `Some(current)` when
/// it has none (`Some(None)`) or its current one must be replaced. A trunk
/// server that is gone (deleted, moved, unknown) is replaced at once; one
/// that is not ACTIVE (its connection closed, or it missed its heartbeats)
/// after check_active_interval without a heartbeat, so a restarting storage
/// keeps the role; an ACTIVE one that stopped beating after
/// [`silence_limit_secs`]. `started` is this tracker's start: storages get
/// an interval to come back after it.
pub fn needs_appointment(
    conf: &fdfs_config::TrackerConf,
    g: &Group,
    now: i64,
    started: i64,
) -> Option<Option<String>> {
    let Some(id) = g.trunk_server.as_deref() else {
        return Some(None);
    };
    let replace = match g.storages.get(id).filter(|s| is_visible(s.status)) {
        None => true,
        Some(s) if s.status == st::ACTIVE => {
            now - s.stats.last_heart_beat_time > silence_limit_secs(conf, s, now)
        }
        Some(s) => {
            let interval =
                i64::try_from(conf.check_active_interval_secs.max(1)).unwrap_or(i64::MAX);
            now - s.stats.last_heart_beat_time.max(started) > interval
        }
    };
    replace.then(|| Some(id.to_string()))
}

/// A storage that may become trunk server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// `ip:port` of its service port.
    pub addr: String,
}

/// The ACTIVE writable members, the group's store server first (the
/// original starts from it and only a strictly larger binlog wins), then
/// the others in id order; `except` is left out.
pub fn candidates(g: &Group, store_server_mode: u8, except: Option<&str>) -> Vec<Candidate> {
    let first = g.store_server(store_server_mode).map(|s| s.id.clone());
    let mut out: Vec<&StorageRec> = g
        .writable()
        .into_iter()
        .filter(|s| Some(s.id.as_str()) != except)
        .collect();
    out.sort_by_key(|s| Some(&s.id) != first.as_ref());
    out.into_iter()
        .map(|s| Candidate {
            id: s.id.clone(),
            addr: fdfs_util::net::host_port(&s.ip, s.storage_port),
        })
        .collect()
}

/// Picks the candidate with the largest binlog; the first one on ties.
pub fn pick_largest(sizes: &[(Candidate, i64)]) -> Option<&Candidate> {
    let mut best: Option<&(Candidate, i64)> = None;
    for c in sizes {
        if best.is_none_or(|b| c.1 > b.1) {
            best = Some(c);
        }
    }
    best.map(|b| &b.0)
}

async fn storage_call(t: &Tracker, addr: &str, cmd: StorageCmd) -> Result<Vec<u8>, String> {
    let mut conn = Conn::connect_from(
        addr,
        t.own_ip(),
        STORAGE_CONNECT_TIMEOUT,
        STORAGE_IO_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let answer = conn.call(cmd.into(), &[]).await.map_err(|e| e.to_string());
    conn.quit().await;
    answer
}

/// TRUNK_GET_BINLOG_SIZE (31) of the storage at `addr`; -1 when it does
/// not answer with a size (a storage without trunk support answers an
/// error), so it still can be chosen, after any that answered.
async fn binlog_size(t: &Tracker, addr: &str) -> i64 {
    match storage_call(t, addr, StorageCmd::TrunkGetBinlogSize).await {
        Ok(body) => match <[u8; 8]>::try_from(body.as_slice()) {
            Ok(b) => i64::from_be_bytes(b),
            Err(_) => {
                tracing::debug!(%addr, len = body.len(), "bad trunk binlog size answer");
                -1
            }
        },
        Err(e) => {
            tracing::debug!(%addr, error = %e, "trunk binlog size not available");
            -1
        }
    }
}

/// Asks every candidate for its binlog size and picks one.
async fn choose(t: &Tracker, cands: Vec<Candidate>) -> Option<String> {
    let sizes = binlog_sizes(t, cands).await;
    pick_largest(&sizes).map(|c| c.id.clone())
}

async fn binlog_sizes(t: &Tracker, cands: Vec<Candidate>) -> Vec<(Candidate, i64)> {
    let mut out = Vec::with_capacity(cands.len());
    // Few members per group: one after the other keeps the order simple and
    // each call is bounded by the storage timeouts.
    for c in cands {
        let size = binlog_size(t, &c.addr).await;
        out.push((c, size));
    }
    out
}

/// `id/ip` (id mode) or `ip` of a member for the change log; `-` if none.
fn describe(t: &Tracker, g: &Group, id: Option<&str>) -> String {
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        return "-".into();
    };
    let ip = g.storages.get(id).map(|s| s.ip.as_str());
    match (t.conf.use_storage_id, ip) {
        (true, Some(ip)) => format!("{id}/{ip}"),
        (true, None) => format!("{id}/-"),
        (false, Some(ip)) => ip.to_string(),
        (false, None) => id.to_string(),
    }
}

/// Appoints `chosen` (or nobody) as trunk server of `group`, if the group's
/// trunk server is still `expected` and `chosen` still ACTIVE and writable.
/// A storage that replaces another trunk server is first told to drop its
/// trunk data file and marks (32, best effort: our storage quarantines the
/// free space it knows anyway). The change is logged and saved before this
/// returns. EBUSY when the state moved meanwhile.
pub async fn appoint(
    t: &Tracker,
    group: &str,
    expected: Option<&str>,
    chosen: Option<&str>,
) -> Result<(), OpError> {
    if let Some(new) = chosen {
        let target = {
            let c = t.lock();
            let g = c.group(group).ok_or_else(|| no_group(group))?;
            let s = g.storages.get(new).ok_or_else(|| no_storage(group, new))?;
            (!g.last_trunk_server.is_empty() && g.last_trunk_server != new)
                .then(|| fdfs_util::net::host_port(&s.ip, s.storage_port))
        };
        if let Some(addr) = target {
            if let Err(e) = storage_call(t, &addr, StorageCmd::TrunkDeleteBinlogMarks).await {
                tracing::info!(%group, id = %new, error = %e, "TRUNK_DELETE_BINLOG_MARKS not done");
            }
        }
    }
    let line = {
        let mut c = t.lock();
        let g = c.group(group).ok_or_else(|| no_group(group))?;
        if g.trunk_server.as_deref() != expected {
            return Err(OpError::new(
                Status::EBUSY,
                format!("the trunk server of {group} changed meanwhile"),
            ));
        }
        if let Some(new) = chosen {
            let ok = g.storages.get(new).is_some_and(|s| s.is_writable());
            if !ok {
                return Err(OpError::new(
                    Status::EBUSY,
                    format!("{new} is no longer ACTIVE and writable"),
                ));
            }
        }
        let last = g
            .trunk_server
            .clone()
            .or_else(|| Some(g.last_trunk_server.clone()).filter(|l| !l.is_empty()));
        let line = format!(
            "[{}] {}  {}  =>  {}\n",
            fdfs_util::localtime::format_datetime(now_secs()),
            group,
            describe(t, g, last.as_deref()),
            describe(t, g, chosen),
        );
        if c.set_trunk_server(group, chosen).is_none() {
            return Ok(());
        }
        line
    };
    match chosen {
        Some(id) => tracing::info!(%group, %id, "trunk server appointed"),
        None => tracing::warn!(%group, "no storage can be trunk server"),
    }
    let path = t.conf.base_path.join("logs").join(CHANGE_LOG_FILE);
    let saved = t.save_async().await;
    let logged = tokio::task::spawn_blocking(move || append_line(&path, &line)).await;
    if let Err(e) = saved {
        tracing::error!(error = %e, "cannot save the trunk server change");
    }
    if let Ok(Err(e)) = logged {
        tracing::warn!(error = %e, "cannot write {CHANGE_LOG_FILE}");
    }
    Ok(())
}

fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

/// One round of the leader's check over every group.
async fn check_groups(t: &Tracker) {
    let now = now_secs();
    let store_server = t.params().store_server;
    let due: Vec<(String, Option<String>, Vec<Candidate>)> = {
        let c = t.lock();
        c.groups
            .values()
            .filter_map(|g| {
                let replacing = needs_appointment(&t.conf, g, now, t.start_time)?;
                let cands = candidates(g, store_server, replacing.as_deref());
                // Nobody to replace and nobody to appoint: nothing to do.
                (replacing.is_some() || !cands.is_empty())
                    .then(|| (g.name.clone(), replacing, cands))
            })
            .collect()
    };
    for (group, replacing, cands) in due {
        if let Some(old) = &replacing {
            tracing::info!(%group, %old, "trunk server gone or silent: appointing another");
        }
        let chosen = choose(t, cands).await;
        if let Err(e) = appoint(t, &group, replacing.as_deref(), chosen.as_deref()).await {
            tracing::debug!(%group, reason = ?e.reason, "trunk server appointment skipped");
        }
    }
}

/// The leader's trunk task: checks every [`CHECK_INTERVAL`] until `cancel`.
pub(crate) async fn run(t: Arc<Tracker>, cancel: CancellationToken) {
    if !t.conf.use_trunk_file {
        return;
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
        if t.relation().is_leader() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = check_groups(&t) => {}
            }
        }
    }
}

/// SERVER_SET_TRUNK_SERVER (94, §2.8): group (16) + optional storage id.
/// Answers the trunk server id with its NUL.
pub(crate) async fn set_trunk_server(t: &Tracker, body: &[u8]) -> HandlerResult {
    let req = GroupStorageReq::decode(body)?;
    guard::group(&req.group)?;
    if let Some(id) = &req.storage_id {
        guard::plain("storage id", id)?;
    }
    if t.lock().group(&req.group).is_none() {
        return Err(no_group(&req.group));
    }
    if !(t.conf.use_trunk_file && t.relation().is_leader()) {
        return Err(OpError::new(
            Status::EOPNOTSUPP,
            "only the leader tracker with use_trunk_file sets trunk servers",
        ));
    }
    let group = req.group.as_str();
    let (current, active, cands) = {
        let c = t.lock();
        let g = c.group(group).ok_or_else(|| no_group(group))?;
        let active = g.trunk_server_rec().is_some_and(|s| s.status == st::ACTIVE);
        (
            g.trunk_server.clone(),
            active,
            candidates(g, t.params().store_server, None),
        )
    };
    let chosen = match (&req.storage_id, &current) {
        (None, Some(cur)) if active => return Ok(with_nul(cur)),
        (None, _) => {
            if cands.is_empty() {
                return Err(OpError::not_found(format!(
                    "no ACTIVE writable storage in group {group}"
                )));
            }
            choose(t, cands)
                .await
                .ok_or_else(|| OpError::not_found("no trunk server candidate"))?
        }
        (Some(id), Some(cur)) if active => {
            let status = if id == cur {
                Status::EALREADY
            } else {
                Status::EEXIST
            };
            return Err(OpError::new(
                status,
                format!("{cur} is the trunk server of {group}"),
            ));
        }
        (Some(id), _) => {
            let c = t.lock();
            let g = c.group(group).ok_or_else(|| no_group(group))?;
            let s = g
                .storages
                .get(id)
                .filter(|s| is_visible(s.status))
                .ok_or_else(|| no_storage(group, id))?;
            if s.status != st::ACTIVE {
                return Err(OpError::new(
                    Status::ENONET,
                    format!("storage {id} is not ACTIVE"),
                ));
            }
            if !s.is_writable() {
                return Err(OpError::new(
                    Status::EACCES,
                    format!("storage {id} is not writable"),
                ));
            }
            id.clone()
        }
    };
    appoint(t, group, current.as_deref(), Some(&chosen)).await?;
    Ok(with_nul(&chosen))
}

fn with_nul(id: &str) -> Vec<u8> {
    let mut out = id.as_bytes().to_vec();
    out.push(0);
    out
}

/// The joined storage of `ctx`, if it is its group's trunk server (EINVAL
/// otherwise: the original's answer to a report from another member).
fn trunk_reporter(t: &Tracker, ctx: &ConnCtx) -> Result<crate::handler::Joined, OpError> {
    let j = ctx.joined()?;
    let c = t.lock();
    let g = c.group(&j.group).ok_or_else(|| no_group(&j.group))?;
    if !g.is_trunk_server(&j.id) {
        return Err(OpError::invalid(format!(
            "{} is not the trunk server of {}",
            j.id, j.group
        )));
    }
    Ok(j)
}

/// REPORT_TRUNK_FID (73): the trunk server raises the group's trunk file
/// id. The raised id is on disk before the answer: the storage creates the
/// trunk file only after this OK, so no id is ever handed out twice.
pub(crate) async fn report_trunk_fid(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let j = trunk_reporter(t, ctx)?;
    let Ok(raw) = <[u8; 4]>::try_from(body) else {
        return Err(bad_length(body));
    };
    let fid = i32::from_be_bytes(raw);
    if fid < 0 {
        return Err(OpError::invalid(format!("trunk file id {fid}")));
    }
    let raised = {
        let mut c = t.lock();
        let g = c
            .groups
            .get_mut(&j.group)
            .ok_or_else(|| no_group(&j.group))?;
        if i64::from(fid) > g.current_trunk_file_id {
            g.current_trunk_file_id = i64::from(fid);
            true
        } else {
            false
        }
    };
    if raised {
        t.save_async().await.map_err(|e| {
            tracing::error!(error = %e, "cannot save the trunk file id");
            OpError::new(Status::EIO, format!("saving the trunk file id: {e}"))
        })?;
    }
    Ok(Vec::new())
}

/// REPORT_TRUNK_FREE (74): the trunk server's free trunk space in MB.
pub(crate) fn report_trunk_free(t: &Tracker, ctx: &ConnCtx, body: &[u8]) -> HandlerResult {
    let j = trunk_reporter(t, ctx)?;
    if body.len() != 8 {
        return Err(bad_length(body));
    }
    let mb = Reader::new(body).i64()?;
    if mb < 0 {
        return Err(OpError::invalid(format!("trunk free space {mb} MB")));
    }
    if let Some(g) = t.lock().groups.get_mut(&j.group) {
        g.trunk_free_mb = mb;
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_config::TrackerConf;

    fn member(id: &str, status: u8, beat: i64, up: i64) -> StorageRec {
        let mut s = StorageRec::new(id, id, status);
        s.stats.last_heart_beat_time = beat;
        s.up_time = up;
        s.storage_port = 23000;
        s
    }

    fn group(members: &[StorageRec]) -> Group {
        let mut g = Group::new("group1");
        for m in members {
            g.storages.insert(m.id.clone(), m.clone());
        }
        g
    }

    #[test]
    fn the_original_silence_rule() {
        let conf = TrackerConf {
            check_active_interval_secs: 10,
            trunk_init_check_occupying: false,
            trunk_init_reload_from_binlog: false,
            ..TrackerConf::default()
        };
        let old = member("a", st::ACTIVE, 0, 0);
        assert_eq!(silence_limit_secs(&conf, &old, 1000), 20);
        let young = member("a", st::ACTIVE, 0, 950);
        assert_eq!(silence_limit_secs(&conf, &young, 1000), 30);
        let both = TrackerConf {
            trunk_init_check_occupying: true,
            trunk_init_reload_from_binlog: true,
            ..conf
        };
        assert_eq!(silence_limit_secs(&both, &young, 1000), 100);
    }

    #[test]
    fn when_a_trunk_server_is_replaced() {
        let conf = TrackerConf {
            check_active_interval_secs: 10,
            ..TrackerConf::default()
        };
        let mut g = group(&[
            member("a", st::ACTIVE, 995, 0),
            member("b", st::ACTIVE, 995, 0),
        ]);
        assert_eq!(needs_appointment(&conf, &g, 1000, 0), Some(None));
        g.set_trunk_server(Some("a"));
        assert_eq!(needs_appointment(&conf, &g, 1000, 0), None);
        // Silent for longer than 2 intervals.
        assert_eq!(
            needs_appointment(&conf, &g, 1016, 0),
            Some(Some("a".into()))
        );
        // Its connection closed: one interval without a heartbeat.
        g.set_status("a", st::OFFLINE);
        assert_eq!(needs_appointment(&conf, &g, 1004, 0), None);
        assert_eq!(
            needs_appointment(&conf, &g, 1006, 0),
            Some(Some("a".into()))
        );
        // ... counted from our own start when we just started.
        assert_eq!(needs_appointment(&conf, &g, 1006, 1000), None);
        // Deleted: at once.
        g.set_status("a", st::DELETED);
        assert_eq!(needs_appointment(&conf, &g, 996, 0), Some(Some("a".into())));
    }

    #[test]
    fn candidates_and_choice() {
        let mut g = group(&[
            member("10.0.0.3", st::ACTIVE, 0, 0),
            member("10.0.0.1", st::ACTIVE, 0, 0),
            member("10.0.0.2", st::OFFLINE, 0, 0),
            member("10.0.0.4", st::ACTIVE, 0, 0),
        ]);
        g.storages.get_mut("10.0.0.4").unwrap().rw_mode = crate::state::RW_READ;
        let c = candidates(&g, fdfs_config::tracker::STORE_SERVER_FIRST_BY_IP, None);
        let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(c[0].addr, "10.0.0.1:23000");
        let c2 = candidates(&g, 1, Some("10.0.0.1"));
        assert_eq!(c2.len(), 1);
        // Ties keep the first; a larger binlog wins; errors count as -1.
        let sized = vec![(c[0].clone(), -1), (c[1].clone(), -1)];
        assert_eq!(pick_largest(&sized).unwrap().id, "10.0.0.1");
        let sized = vec![(c[0].clone(), 10), (c[1].clone(), 300)];
        assert_eq!(pick_largest(&sized).unwrap().id, "10.0.0.3");
        assert!(pick_largest(&[]).is_none());
    }

    /// A tracker alone (so the leader) with group1 = a, b (ACTIVE, ports
    /// that answer nothing) and c (ACTIVE, read-only), d (OFFLINE).
    fn lone_tracker(use_trunk_file: bool) -> (tempfile::TempDir, Arc<Tracker>) {
        let dir = tempfile::tempdir().unwrap();
        let t = Tracker::open(TrackerConf {
            base_path: dir.path().to_path_buf(),
            use_trunk_file,
            ..TrackerConf::default()
        })
        .unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut g = Group::new("group1");
        g.storage_port = closed;
        for (id, status) in [
            ("a", st::ACTIVE),
            ("b", st::ACTIVE),
            ("c", st::ACTIVE),
            ("d", st::OFFLINE),
        ] {
            let mut s = member(id, status, now_secs(), 0);
            s.ip = "127.0.0.1".into();
            s.storage_port = closed;
            g.storages.insert(id.into(), s);
        }
        g.storages.get_mut("c").unwrap().rw_mode = crate::state::RW_READ;
        t.lock().groups.insert("group1".into(), g);
        (dir, t)
    }

    fn body(group: &str, id: &str) -> Vec<u8> {
        let mut b = bytes::BytesMut::new();
        GroupStorageReq {
            group: group.into(),
            storage_id: Some(id.to_string()).filter(|i| !i.is_empty()),
        }
        .encode(&mut b);
        b.to_vec()
    }

    async fn set(t: &Tracker, group: &str, id: &str) -> Result<Vec<u8>, Status> {
        set_trunk_server(t, &body(group, id))
            .await
            .map_err(|e| e.status)
    }

    #[tokio::test]
    async fn set_trunk_server_rules() {
        let (_off_dir, off) = lone_tracker(false);
        assert_eq!(set(&off, "group1", "").await, Err(Status::EOPNOTSUPP));
        assert_eq!(set(&off, "nogroup", "").await, Err(Status::ENOENT));

        let (dir, t) = lone_tracker(true);
        assert_eq!(set(&t, "nogroup", "").await, Err(Status::ENOENT));
        assert_eq!(set(&t, "group1", "zz").await, Err(Status::ENOENT));
        assert_eq!(set(&t, "group1", "d").await, Err(Status::ENONET));
        assert_eq!(set(&t, "group1", "c").await, Err(Status::EACCES));
        assert_eq!(
            set_trunk_server(&t, b"short").await.map_err(|e| e.status),
            Err(Status::EINVAL)
        );
        // Empty id, none yet: the candidates answer no size, the first wins.
        assert_eq!(set(&t, "group1", "").await, Ok(b"a\0".to_vec()));
        assert_eq!(set(&t, "group1", "").await, Ok(b"a\0".to_vec()));
        assert_eq!(set(&t, "group1", "a").await, Err(Status::EALREADY));
        assert_eq!(set(&t, "group1", "b").await, Err(Status::EEXIST));
        // Not ACTIVE any more: another may be set.
        t.lock()
            .groups
            .get_mut("group1")
            .unwrap()
            .set_status("a", st::OFFLINE);
        assert_eq!(set(&t, "group1", "b").await, Ok(b"b\0".to_vec()));
        let g = t.lock().groups["group1"].clone();
        assert_eq!(
            (g.trunk_server.as_deref(), g.last_trunk_server.as_str()),
            (Some("b"), "b")
        );
        let saved =
            std::fs::read_to_string(dir.path().join("data/storage_groups_new.dat")).unwrap();
        assert!(
            saved.contains("\ttrunk_server=b\n\tlast_trunk_server=b\n"),
            "{saved}"
        );
        let log = std::fs::read_to_string(dir.path().join("logs").join(CHANGE_LOG_FILE)).unwrap();
        let lines: Vec<&str> = log.lines().map(|l| l.split_once("] ").unwrap().1).collect();
        assert_eq!(
            lines,
            [
                "group1  -  =>  127.0.0.1",
                "group1  127.0.0.1  =>  127.0.0.1"
            ]
        );
    }

    /// A storage port that answers TRUNK_GET_BINLOG_SIZE (31) with `size`
    /// (or EINVAL when None) and counts TRUNK_DELETE_BINLOG_MARKS (32).
    async fn fake_storage(
        ip: &str,
        port: u16,
        size: Option<i64>,
    ) -> Arc<std::sync::atomic::AtomicU32> {
        use fdfs_util::framing::{read_body, read_header, write_packet};
        let marks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let l = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
        let seen = marks.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    while let Ok(h) = read_header(&mut s).await {
                        let _ = read_body(&mut s, h.body_len().unwrap_or(0) as usize).await;
                        let (status, body) = match (h.cmd, size) {
                            (31, Some(n)) => (0, n.to_be_bytes().to_vec()),
                            (32, _) => {
                                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                (0, Vec::new())
                            }
                            (fdfs_proto::CMD_QUIT, _) => return,
                            _ => (Status::EINVAL.0, Vec::new()),
                        };
                        if write_packet(&mut s, fdfs_proto::CMD_RESP, status, &body)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        marks
    }

    #[tokio::test]
    async fn the_largest_binlog_wins_and_a_successor_drops_its_marks() {
        // Three members on one port at three loopback addresses.
        let port = std::net::TcpListener::bind("127.0.0.71:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a = fake_storage("127.0.0.71", port, Some(10)).await;
        let b = fake_storage("127.0.0.72", port, Some(500)).await;
        let c = fake_storage("127.0.0.73", port, None).await;
        let (_dir, t) = lone_tracker(true);
        {
            let mut cl = t.lock();
            let g = cl.groups.get_mut("group1").unwrap();
            g.storages.clear();
            for ip in ["127.0.0.71", "127.0.0.72", "127.0.0.73"] {
                let mut s = member(ip, st::ACTIVE, now_secs(), 0);
                s.storage_port = port;
                g.storages.insert(ip.into(), s);
            }
            g.storage_port = port;
        }
        check_groups(&t).await;
        assert_eq!(
            t.lock().groups["group1"].trunk_server.as_deref(),
            Some("127.0.0.72")
        );
        // The first appointment replaces nobody: no 32.
        assert_eq!(b.load(std::sync::atomic::Ordering::SeqCst), 0);
        // It goes away: the larger of the others (an error counts as -1).
        t.lock()
            .groups
            .get_mut("group1")
            .unwrap()
            .set_status("127.0.0.72", st::DELETED);
        check_groups(&t).await;
        let g = t.lock().groups["group1"].clone();
        assert_eq!(g.trunk_server.as_deref(), Some("127.0.0.71"));
        assert_eq!(g.last_trunk_server, "127.0.0.71");
        assert_eq!(
            a.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "told to drop its marks"
        );
        assert_eq!(c.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn set_trunk_server_keeps_the_last_one() {
        let mut g = group(&[member("a", st::ACTIVE, 0, 0)]);
        assert_eq!(g.set_trunk_server(Some("a")), Some(None));
        assert_eq!(g.set_trunk_server(Some("a")), None);
        g.trunk_free_mb = 5;
        assert_eq!(g.set_trunk_server(None), Some(Some("a".into())));
        assert_eq!((g.last_trunk_server.as_str(), g.trunk_free_mb), ("a", 0));
        assert_eq!(g.trunk_change_count, 2);
    }
}
