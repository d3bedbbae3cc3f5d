//! The status page (issue #13.3): a JSON snapshot of what this tracker
//! knows (groups, storages and their statuses as fdfs_monitor names them,
//! space per store path, replication lag, the leader, the cumulative
//! upload and download counters the storages report in their heartbeats)
//! and the self-contained HTML page that polls it and draws it. Whatever
//! serves HTTP (the tracker's HTTP port, `fdfs server`'s gateway) routes
//! `/` and `/status.json` here through [`route`].
//!
//! Group names, ids, hosts and versions come from peers: the JSON escapes
//! them (including `<`, `>` and `&`), and the page only ever puts them in
//! the DOM as text.

use std::fmt::Write as _;

use fdfs_proto::stat::storage_status;
use fdfs_util::json::push_json_string;

use crate::state::{Cluster, StorageRec};
use crate::{now_secs, Relation, Tracker};

/// The page: one HTML document with its style and script inlined, so it
/// needs no other request, no build step and no network beyond us.
pub const STATUS_PAGE_HTML: &str = concat!(
    include_str!("status_page/head.html"),
    "<style>\n",
    include_str!("status_page/status.css"),
    "</style>\n",
    include_str!("status_page/body.html"),
    "<script>\n",
    include_str!("status_page/status.js"),
    "</script>\n</body>\n</html>\n"
);

/// Where the page is served.
pub const STATUS_PAGE_PATH: &str = "/";
/// Where the page's data is served.
pub const STATUS_JSON_PATH: &str = "/status.json";

/// A response body for one of the status routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    pub content_type: &'static str,
    pub body: String,
}

/// The answer for `path` if it is one of the status routes (`/`,
/// `/index.html`, `/status.json`), None otherwise.
pub fn route(t: &Tracker, path: &str) -> Option<StatusResponse> {
    match path {
        STATUS_PAGE_PATH | "/index.html" => Some(StatusResponse {
            content_type: "text/html; charset=utf-8",
            body: STATUS_PAGE_HTML.to_string(),
        }),
        STATUS_JSON_PATH => Some(StatusResponse {
            content_type: "application/json",
            body: snapshot_json(t),
        }),
        _ => None,
    }
}

/// The JSON document the page polls. Held locks: the relation, then the
/// cluster, one after the other (never both), each only while copying.
pub fn snapshot_json(t: &Tracker) -> String {
    let trackers = TrackerView::of(&t.relation(), t.listen_addr.get().copied());
    let cluster = t.lock();
    render(&cluster, &trackers, now_secs(), |total_mb| {
        crate::admin::reserved_mb(t, total_mb)
    })
}

/// The tracker part of the snapshot, copied out of the [`Relation`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrackerView {
    /// This tracker's address as its peers know it (or where it listens).
    pub self_addr: Option<String>,
    /// The leader's address; None while an election is due.
    pub leader: Option<String>,
    pub is_leader: bool,
    /// The other trackers of the list that answered as trackers.
    pub peers: Vec<String>,
}

impl TrackerView {
    fn of(rel: &Relation, listen: Option<std::net::SocketAddr>) -> TrackerView {
        let self_addr = rel.self_addr.or(listen);
        let is_leader = rel.is_leader();
        // A lone tracker leads before any storage has told it the address
        // its peers know it by: then it is the address it listens on.
        let leader = rel
            .leader_addr()
            .or(if is_leader { self_addr } else { None });
        TrackerView {
            self_addr: self_addr.map(|a| a.to_string()),
            leader: leader.map(|a| a.to_string()),
            is_leader,
            peers: rel
                .listed
                .iter()
                .filter(|p| !p.is_self && p.verified)
                .map(|p| p.addr.map_or_else(|| p.text.clone(), |a| a.to_string()))
                .collect(),
        }
    }
}

/// fdfs_monitor's replication lag of `storages[index]` (its "(… delay)"):
/// how far its last synced timestamp trails the newest source update of
/// the other members. None when no other member ever had a source update
/// (nothing to lag behind); `Some(None)` when it never synced.
fn sync_lag_secs(index: usize, storages: &[&StorageRec]) -> Option<Option<i64>> {
    let newest_source_update = storages
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, s)| s.stats.last_source_update)
        .fold(0, i64::max);
    if newest_source_update == 0 {
        return None;
    }
    let synced = storages[index].stats.last_synced_timestamp;
    Some((synced != 0).then(|| (newest_source_update - synced).max(0)))
}

/// Renders the snapshot. `reserved_mb` maps a total to the reserved space
/// (`reserved_storage_space`), as LIST_STORAGE reports it.
pub(crate) fn render(
    cluster: &Cluster,
    trackers: &TrackerView,
    now: i64,
    reserved_mb: impl Fn(i64) -> i64,
) -> String {
    let mut j = Json::default();
    j.open('{');
    j.key("now").num(now);
    j.key("version").str(fdfs_proto::FDFS_VERSION);
    j.key("tracker").open('{');
    j.key("self").opt_str(trackers.self_addr.as_deref());
    j.key("leader").opt_str(trackers.leader.as_deref());
    j.key("is_leader").bool(trackers.is_leader);
    j.key("peers").open('[');
    for p in &trackers.peers {
        j.item().str(p);
    }
    j.close(']');
    j.close('}');
    let mut totals = Counters::default();
    j.key("groups").open('[');
    for g in cluster.groups.values() {
        let members: Vec<&StorageRec> = g.visible().collect();
        let mut group_totals = Counters::default();
        j.item().open('{');
        j.key("name").str(&g.name);
        j.key("total_mb").num(g.total_mb);
        j.key("free_mb").num(g.free_mb);
        j.key("reserved_mb").num(reserved_mb(g.total_mb));
        j.key("storage_count").num(members.len() as i64);
        j.key("active_count").num(
            members
                .iter()
                .filter(|s| s.status == storage_status::ACTIVE)
                .count() as i64,
        );
        j.key("trunk_server").opt_str(g.trunk_server.as_deref());
        j.key("trunk_free_mb").num(g.trunk_free_mb);
        j.key("storages").open('[');
        for (k, s) in members.iter().enumerate() {
            let c = Counters::of(s);
            group_totals.add(&c);
            j.item().open('{');
            j.key("id").str(&s.id);
            j.key("ip").str(&s.ip);
            j.key("port").num(i64::from(s.storage_port));
            j.key("status").str(storage_status::caption(s.status));
            j.key("version").str(&s.version);
            j.key("up_time").num(s.up_time);
            j.key("last_heart_beat_time")
                .num(s.stats.last_heart_beat_time);
            j.key("total_mb").num(s.total_mb);
            j.key("free_mb").num(s.free_mb);
            j.key("reserved_mb").num(reserved_mb(s.total_mb));
            j.key("paths").open('[');
            for p in &s.paths {
                j.item().open('{');
                j.key("total_mb").num(p.total_mb);
                j.key("free_mb").num(p.free_mb);
                j.close('}');
            }
            j.close(']');
            match sync_lag_secs(k, &members) {
                None => j.key("sync_lag_secs").null(),
                Some(None) => j.key("sync_lag_secs").str("never"),
                Some(Some(secs)) => j.key("sync_lag_secs").num(secs),
            }
            j.key("sync_src_id").str(&s.sync_src_id);
            c.write(&mut j);
            j.close('}');
        }
        j.close(']');
        group_totals.write(&mut j);
        totals.add(&group_totals);
        j.close('}');
    }
    j.close(']');
    j.key("totals").open('{');
    totals.write(&mut j);
    j.close('}');
    j.close('}');
    j.out
}

/// The cumulative transfer counters the page turns into rates.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    upload_count: i64,
    upload_bytes: i64,
    download_count: i64,
    download_bytes: i64,
}

impl Counters {
    fn of(s: &StorageRec) -> Counters {
        let st = &s.stats;
        Counters {
            upload_count: st.success_upload_count,
            upload_bytes: st.success_upload_bytes,
            download_count: st.success_download_count,
            download_bytes: st.success_download_bytes,
        }
    }

    fn add(&mut self, o: &Counters) {
        self.upload_count = self.upload_count.saturating_add(o.upload_count);
        self.upload_bytes = self.upload_bytes.saturating_add(o.upload_bytes);
        self.download_count = self.download_count.saturating_add(o.download_count);
        self.download_bytes = self.download_bytes.saturating_add(o.download_bytes);
    }

    fn write(&self, j: &mut Json) {
        j.key("upload_count").num(self.upload_count);
        j.key("upload_bytes").num(self.upload_bytes);
        j.key("download_count").num(self.download_count);
        j.key("download_bytes").num(self.download_bytes);
    }
}

/// A minimal JSON writer: objects, arrays, strings, integers. Commas are
/// placed by tracking whether the current container has an entry yet.
#[derive(Default)]
struct Json {
    out: String,
    /// One entry per open container: true once it holds an entry.
    has_entry: Vec<bool>,
}

impl Json {
    fn sep(&mut self) {
        if let Some(has) = self.has_entry.last_mut() {
            if *has {
                self.out.push(',');
            }
            *has = true;
        }
    }

    fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        push_json_string(&mut self.out, k);
        self.out.push(':');
        self
    }

    fn item(&mut self) -> &mut Self {
        self.sep();
        self
    }

    fn open(&mut self, c: char) -> &mut Self {
        self.out.push(c);
        self.has_entry.push(false);
        self
    }

    fn close(&mut self, c: char) {
        self.has_entry.pop();
        self.out.push(c);
    }

    fn str(&mut self, s: &str) {
        push_json_string(&mut self.out, s);
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    fn num(&mut self, n: i64) {
        let _ = write!(self.out, "{n}");
    }

    fn bool(&mut self, b: bool) {
        self.out.push_str(if b { "true" } else { "false" });
    }

    fn null(&mut self) {
        self.out.push_str("null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Group;
    use fdfs_proto::tracker_msg::PathUsage;

    fn storage(id: &str, status: u8) -> StorageRec {
        let mut s = StorageRec::new(id, id, status);
        s.storage_port = 23000;
        s.version = "6.16.1".into();
        s
    }

    fn two_storage_cluster() -> Cluster {
        let mut g = Group::new("group1");
        let mut a = storage("10.0.0.1", storage_status::ACTIVE);
        a.total_mb = 2000;
        a.free_mb = 1500;
        a.paths = vec![
            PathUsage {
                total_mb: 1000,
                free_mb: 900,
            },
            PathUsage {
                total_mb: 1000,
                free_mb: 600,
            },
        ];
        a.stats.success_upload_count = 3;
        a.stats.success_upload_bytes = 3000;
        a.stats.success_download_count = 1;
        a.stats.success_download_bytes = 100;
        a.stats.last_source_update = 1_000;
        a.stats.last_synced_timestamp = 950;
        let mut b = storage("10.0.0.2", storage_status::OFFLINE);
        b.stats.success_upload_count = 2;
        b.stats.success_upload_bytes = 20;
        b.stats.last_source_update = 990;
        b.stats.last_synced_timestamp = 0;
        let deleted = storage("10.0.0.3", storage_status::DELETED);
        for s in [a, b, deleted] {
            g.storages.insert(s.id.clone(), s);
        }
        g.total_mb = 2000;
        g.free_mb = 1500;
        let mut c = Cluster::default();
        c.groups.insert(g.name.clone(), g);
        c
    }

    fn view() -> TrackerView {
        TrackerView {
            self_addr: Some("127.0.0.1:22122".into()),
            leader: Some("127.0.0.1:22122".into()),
            is_leader: true,
            peers: vec!["127.0.0.2:22122".into()],
        }
    }

    #[test]
    fn snapshot_lists_groups_storages_space_lag_and_counters() {
        let json = render(&two_storage_cluster(), &view(), 1234, |t| t / 10);
        assert!(json.starts_with("{\"now\":1234,\"version\":\"6.16.1\","));
        assert!(json.contains(
            "\"tracker\":{\"self\":\"127.0.0.1:22122\",\"leader\":\"127.0.0.1:22122\",\
             \"is_leader\":true,\"peers\":[\"127.0.0.2:22122\"]}"
        ));
        assert!(json.contains(
            "{\"name\":\"group1\",\"total_mb\":2000,\"free_mb\":1500,\"reserved_mb\":200,\
             \"storage_count\":2,\"active_count\":1,"
        ));
        // The first member trails the other's newest source update by 40 s;
        // the second never synced.
        assert!(json.contains(
            "\"id\":\"10.0.0.1\",\"ip\":\"10.0.0.1\",\"port\":23000,\"status\":\"ACTIVE\""
        ));
        assert!(json.contains(
            "\"paths\":[{\"total_mb\":1000,\"free_mb\":900},{\"total_mb\":1000,\"free_mb\":600}],\
             \"sync_lag_secs\":40,"
        ));
        assert!(json.contains("\"status\":\"OFFLINE\""));
        assert!(json.contains("\"sync_lag_secs\":\"never\""));
        assert!(json.contains("\"trunk_server\":null,\"trunk_free_mb\":0,\"storages\""));
        // DELETED records are not shown, as fdfs_monitor does not list them.
        assert!(!json.contains("10.0.0.3"));
        assert!(json.ends_with(
            "\"totals\":{\"upload_count\":5,\"upload_bytes\":3020,\
             \"download_count\":1,\"download_bytes\":100}}"
        ));
        assert_balanced(&json);
    }

    #[test]
    fn lone_storage_has_no_lag_and_empty_cluster_renders() {
        let mut c = Cluster::default();
        let mut g = Group::new("g");
        let s = storage("s1", storage_status::ACTIVE);
        g.storages.insert(s.id.clone(), s);
        c.groups.insert("g".into(), g);
        let json = render(&c, &TrackerView::default(), 1, |_| 0);
        assert!(json.contains("\"sync_lag_secs\":null"));
        assert!(json.contains("\"self\":null,\"leader\":null,\"is_leader\":false,\"peers\":[]"));
        let empty = render(&Cluster::default(), &TrackerView::default(), 1, |_| 0);
        assert!(empty.contains("\"groups\":[],\"totals\":{\"upload_count\":0,"));
        assert_balanced(&empty);
    }

    #[test]
    fn peer_text_is_escaped() {
        let mut c = Cluster::default();
        let name = "g<script>\"&\\\u{1}\u{2028}";
        let mut g = Group::new(name);
        let mut s = storage("<img src=x onerror=alert(1)>", storage_status::ACTIVE);
        s.version = "v\n1".into();
        g.storages.insert(s.id.clone(), s);
        c.groups.insert(name.into(), g);
        let json = render(&c, &TrackerView::default(), 1, |_| 0);
        assert!(json.contains("\"name\":\"g\\u003cscript\\u003e\\\"\\u0026\\\\\\u0001\\u2028\""));
        assert!(json.contains("\"id\":\"\\u003cimg src=x onerror=alert(1)\\u003e\""));
        assert!(json.contains("\"version\":\"v\\n1\""));
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        assert_balanced(&json);
    }

    #[test]
    fn page_is_self_contained() {
        let page = STATUS_PAGE_HTML;
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("\"status.json\""));
        // Offline: nothing is fetched from elsewhere.
        for outside in ["http://", "https://", "//cdn", "src=\"", "<link"] {
            assert!(!page.contains(outside), "page refers outside: {outside}");
        }
        // Peer text reaches the DOM only as text.
        assert!(!page.contains("innerHTML"));
        assert!(!page.contains("insertAdjacentHTML"));
        assert!(!page.contains("document.write"));
        assert!(page.ends_with("</html>\n"));
    }

    /// Brackets and braces outside strings pair up.
    fn assert_balanced(json: &str) {
        let mut stack = Vec::new();
        let mut in_str = false;
        let mut escaped = false;
        for c in json.chars() {
            if in_str {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '{' | '[' => stack.push(c),
                '}' => assert_eq!(stack.pop(), Some('{'), "{json}"),
                ']' => assert_eq!(stack.pop(), Some('['), "{json}"),
                _ => {}
            }
        }
        assert!(stack.is_empty() && !in_str, "{json}");
    }
}
