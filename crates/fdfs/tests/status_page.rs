//! The status page (issue #13.3) rendered by a real browser: headless
//! Chromium loads `/` from the tracker's HTTP port of a two-storage
//! cluster after our client and py3fdfs moved some files, and from
//! `fdfs server`'s gateway port; the rendered DOM must show the groups,
//! storages, statuses, space and counters that `fdfs monitor` prints for
//! the same cluster. The test fails (never skips) when chromium, python3
//! or py3fdfs is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fdfs_client::{Client, UploadOptions};
use fdfs_testkit::{free_port, wait_until, ProcessGuard};

/// Generous: a loaded 2-CPU machine runs the browser and the cluster.
const DEADLINE: Duration = Duration::from_secs(120);
/// One browser run may take this long before it is killed.
const BROWSER_TIMEOUT_SECS: u32 = 90;
const CHROMIUM: &str = "chromium";

/// One storage as a page or `fdfs monitor` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StorageView {
    id: String,
    host: String,
    status: String,
    total: String,
    free: String,
    uploads: String,
    downloads: String,
}

/// One group as a page or `fdfs monitor` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupView {
    total: String,
    free: String,
    storages: Vec<StorageView>,
}

type ClusterView = BTreeMap<String, GroupView>;

/// The DOM of `url` after its script ran (virtual time: the page's first
/// polls of status.json complete).
fn rendered_dom(url: &str, profile: &Path) -> String {
    let out = Command::new("timeout")
        .args(["-k", "10", &BROWSER_TIMEOUT_SECS.to_string(), CHROMIUM])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `timeout {CHROMIUM}`: {e}"));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed on {url}: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// Fails loudly when the browser is not installed (.ci/run installs it).
fn require_chromium() {
    let found = Command::new(CHROMIUM)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{CHROMIUM}` is required for the status page test: apt-get install chromium"
    );
}

fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the first tag of `html`.
fn attr(html: &str, name: &str) -> Option<String> {
    let tag_end = html.find('>')?;
    let tag = &html[..tag_end];
    let pat = format!(" {name}=\"");
    let start = tag.find(&pat)? + pat.len();
    let len = tag[start..].find('"')?;
    Some(unescape_html(&tag[start..start + len]))
}

/// The text of the first element whose class list starts with `class`.
fn text_of_class(html: &str, class: &str) -> Option<String> {
    let pat = format!("class=\"{class}");
    let at = html.find(&pat)?;
    let open_end = at + html[at..].find('>')? + 1;
    let len = html[open_end..].find('<')?;
    Some(unescape_html(&html[open_end..open_end + len]))
}

/// What the rendered page shows: groups and their storages.
fn page_view(dom: &str) -> ClusterView {
    let start = dom.find("<main id=\"groups\">").expect("groups element");
    let end = start + dom[start..].find("</main>").expect("end of groups");
    let main = &dom[start..end];
    let mut view = ClusterView::new();
    for section in main.split("<section class=\"group\"").skip(1) {
        let name = attr(section, "data-group").expect("data-group");
        let storages = section
            .split("<tr class=\"storage\"")
            .skip(1)
            .map(|row| {
                let row = &row[..row.find("</tr>").expect("end of row")];
                let cell = |class: &str| {
                    text_of_class(row, class).unwrap_or_else(|| panic!("no {class} in {row}"))
                };
                StorageView {
                    id: cell("id"),
                    host: cell("host"),
                    status: cell("status status-"),
                    total: cell("num total"),
                    free: cell("num free"),
                    uploads: cell("num uploads"),
                    downloads: cell("num downloads"),
                }
            })
            .collect();
        let fact = |class: &str| text_of_class(section, class).expect(class);
        view.insert(
            name,
            GroupView {
                total: fact("g-total"),
                free: fact("g-free"),
                storages,
            },
        );
    }
    view
}

/// What `fdfs monitor list` prints, in the same shape.
fn monitor_view(conf: &Path) -> ClusterView {
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(["monitor", "-c"])
        .arg(conf)
        .output()
        .expect("run fdfs monitor");
    assert!(out.status.success(), "fdfs monitor: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = |block: &str, key: &str| -> String {
        let line = block
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` in {block}"));
        line[line.find('=').expect("=") + 1..].trim().to_string()
    };
    let mut view = ClusterView::new();
    for group in text.split("\ngroup name = ").skip(1) {
        let name = group.lines().next().expect("name").trim().to_string();
        let head = &group[..group.find("\tStorage ").unwrap_or(group.len())];
        let storages = group
            .split("\tStorage ")
            .skip(1)
            .map(|block| {
                // `host = 127.0.0.1:23000  ACTIVE`
                let host_line = value(block, "host =");
                let (host, status) = host_line.split_once("  ").expect("host and status");
                StorageView {
                    id: value(block, "id ="),
                    host: host.to_string(),
                    status: status.trim().to_string(),
                    total: value(block, "disk total space"),
                    free: value(block, "disk free space"),
                    uploads: value(block, "success_upload_count"),
                    downloads: value(block, "success_download_count"),
                }
            })
            .collect();
        view.insert(
            name,
            GroupView {
                total: value(head, "disk total space"),
                free: value(head, "disk free space"),
                storages,
            },
        );
    }
    view
}

/// Loads the page until it shows what `fdfs monitor` shows at the same
/// moment (space figures move while other tests write to the disk, and
/// counters arrive with the next statistics report), and returns the last
/// DOM. Panics with both views when they never agree.
fn page_matching_monitor(url: &str, conf: &Path, profile: &Path) -> (String, ClusterView) {
    let end = Instant::now() + DEADLINE;
    loop {
        let before = monitor_view(conf);
        let dom = rendered_dom(url, profile);
        let page = page_view(&dom);
        let after = monitor_view(conf);
        if page == before || page == after {
            return (dom, page);
        }
        assert!(
            Instant::now() < end,
            "the page never showed what fdfs monitor shows\npage: {page:#?}\nmonitor: {after:#?}"
        );
    }
}

/// Uploads `n` files with our client and downloads each; returns their ids.
fn our_traffic(client: &Client, rt: &tokio::runtime::Runtime, n: usize) -> Vec<String> {
    rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..n {
            let data = format!("fastdfs-rs status page file {i}\n").repeat(40);
            let id = client
                .upload_buffer(data.as_bytes(), &UploadOptions::default())
                .await
                .expect("upload");
            let back = client.download_to_vec(&id, 0, 0).await.expect("download");
            assert_eq!(back, data.as_bytes());
            ids.push(id.to_string());
        }
        ids
    })
}

/// Uploads and reads back `n` files with py3fdfs; returns their ids.
fn py3fdfs_traffic(conf: &Path, n: usize) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/py3fdfs_traffic.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(conf)
        .arg(n.to_string())
        .arg("3000")
        .output()
        .expect("python3 must be installed to run the status page test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.contains("BAD "),
        "py3fdfs script failed (is py3fdfs installed? `python3 -m pip install py3fdfs`)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ID "))
        .map(str::to_string)
        .collect()
}

fn write_client_conf(dir: &Path, tracker: &str) -> PathBuf {
    let path = dir.join("client.conf");
    std::fs::write(
        &path,
        format!(
            "connect_timeout = 30\nnetwork_timeout = 60\nbase_path = {}\ntracker_server = {tracker}\nlog_level = error\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

/// Sum of a counter over every storage of the view.
fn total(view: &ClusterView, counter: fn(&StorageView) -> &String) -> u64 {
    view.values()
        .flat_map(|g| &g.storages)
        .map(|s| counter(s).parse::<u64>().expect("a count"))
        .sum()
}

/// The status JSON over plain HTTP.
fn get(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", url])
        .output()
        .expect("curl is required");
    assert!(out.status.success(), "curl {url}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn fdfs_server_gateway_serves_the_status_page() {
    require_chromium();
    let dir = tempfile::tempdir().unwrap();
    let (tracker_port, storage_port, http_port) = (free_port(), free_port(), free_port());
    let base = dir.path().join("data");
    let mut server = ProcessGuard::spawn(
        env!("CARGO_BIN_EXE_fdfs"),
        &[
            "server",
            "--base-path",
            base.to_str().unwrap(),
            "--tracker-port",
            &tracker_port.to_string(),
            "--storage-port",
            &storage_port.to_string(),
            "--http-port",
            &http_port.to_string(),
            "--log-level",
            "warn",
        ],
        Stdio::null(),
    );
    let tracker = format!("127.0.0.1:{tracker_port}");
    let conf = write_client_conf(dir.path(), &tracker);
    let url = format!("http://127.0.0.1:{http_port}/");
    let json_url = format!("{url}status.json");
    assert!(
        wait_until(DEADLINE, || {
            Command::new("curl")
                .args(["-sf", "--max-time", "5", &json_url])
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("\"ACTIVE\"")
                })
        }),
        "the embedded storage never showed ACTIVE on {json_url}"
    );

    let client = Client::new(fdfs_client::ClientOptions {
        trackers: vec![fdfs_config::TrackerAddr {
            hosts: vec!["127.0.0.1".into()],
            port: tracker_port,
        }],
        ..fdfs_client::ClientOptions::default()
    })
    .unwrap();
    let rt = fdfs_testkit::rt();
    let ours = our_traffic(&client, &rt, 2);
    let theirs = py3fdfs_traffic(&conf, 2);
    assert_eq!((ours.len(), theirs.len()), (2, 2));

    // The embedded storage reports its counters every 30 s: wait for them
    // through the protocol, which is cheaper than a browser run.
    let counted = || -> (i64, i64) {
        let list = rt
            .block_on(client.list_storages("group1", None))
            .unwrap_or_default();
        (
            list.iter().map(|s| s.stats.success_upload_count).sum(),
            list.iter().map(|s| s.stats.success_download_count).sum(),
        )
    };
    assert!(
        wait_until(DEADLINE, || counted() == (4, 4)),
        "uploads and downloads never counted: {:?}",
        counted()
    );
    let profile = tempfile::tempdir().unwrap();
    let (dom, page) = page_matching_monitor(&url, &conf, profile.path());
    assert_eq!(total(&page, |s| &s.uploads), 4, "{page:#?}");
    assert_eq!(total(&page, |s| &s.downloads), 4, "{page:#?}");
    let group = &page["group1"];
    assert_eq!(group.storages.len(), 1);
    assert_eq!(group.storages[0].status, "ACTIVE");
    assert_eq!(group.storages[0].host, format!("127.0.0.1:{storage_port}"));
    assert!(
        dom.contains(&format!("id=\"tracker-leader\">{tracker} (this tracker)<")),
        "the leader is this tracker"
    );
    // The JSON and the page agree with each other.
    let json = get(&json_url);
    assert!(json.contains("\"name\":\"group1\""), "{json}");
    assert!(
        json.contains(&format!("\"leader\":\"{tracker}\"")),
        "{json}"
    );
    assert!(server.terminate().is_some_and(|s| s.success()));
}

/// Uploads and downloads counted by the trackers' view of `group`.
fn counted(client: &Client, rt: &tokio::runtime::Runtime, group: &str) -> (i64, i64) {
    let list = rt
        .block_on(client.list_storages(group, None))
        .unwrap_or_default();
    (
        list.iter().map(|s| s.stats.success_upload_count).sum(),
        list.iter().map(|s| s.stats.success_download_count).sum(),
    )
}

fn client_of(tracker_port: u16) -> Client {
    Client::new(fdfs_client::ClientOptions {
        trackers: vec![fdfs_config::TrackerAddr {
            hosts: vec!["127.0.0.1".into()],
            port: tracker_port,
        }],
        ..fdfs_client::ClientOptions::default()
    })
    .unwrap()
}

/// `fdfs <role> -c <conf>` with its log in `<conf>.log`.
fn spawn_role(role: &str, conf: &Path) -> ProcessGuard {
    let log = std::fs::File::create(conf.with_extension("log")).unwrap();
    ProcessGuard::spawn(
        env!("CARGO_BIN_EXE_fdfs"),
        &[role, "-c", conf.to_str().unwrap()],
        Stdio::from(log),
    )
}

#[test]
fn tracker_http_port_serves_the_status_page_of_two_storages() {
    require_chromium();
    let dir = tempfile::tempdir().unwrap();
    let (tracker_port, http_port, storage_port) = (free_port(), free_port(), free_port());
    let tracker = format!("127.0.0.1:{tracker_port}");
    let tracker_dir = dir.path().join("tracker");
    std::fs::create_dir_all(&tracker_dir).unwrap();
    let tracker_conf = dir.path().join("tracker.conf");
    std::fs::write(
        &tracker_conf,
        format!(
            "bind_addr = 127.0.0.1\nport = {tracker_port}\nbase_path = {}\n\
             http.server_port = {http_port}\nreserved_storage_space = 1MB\n\
             check_active_interval = 5\nlog_level = warn\n",
            tracker_dir.display()
        ),
    )
    .unwrap();
    let _tracker = spawn_role("tracker", &tracker_conf);

    // Two storages of group1 on their own loopback addresses, one port.
    let storage_ips = ["127.0.0.3", "127.0.0.4"];
    let _storages: Vec<ProcessGuard> = storage_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let base = dir.path().join(format!("storage{i}"));
            std::fs::create_dir_all(&base).unwrap();
            let conf = dir.path().join(format!("storage{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "group_name = group1\nbind_addr = {ip}\nport = {storage_port}\n\
                     base_path = {b}\nstore_path0 = {b}\ntracker_server = {tracker}\n\
                     heart_beat_interval = 1\nstat_report_interval = 1\n\
                     sync_interval = 0\nhttp.server_port = 0\nlog_level = warn\n",
                    b = base.display()
                ),
            )
            .unwrap();
            spawn_role("storage", &conf)
        })
        .collect();

    let client = client_of(tracker_port);
    let rt = fdfs_testkit::rt();
    let all_active = || {
        rt.block_on(client.list_storages("group1", None))
            .is_ok_and(|l| {
                l.len() == 2
                    && l.iter()
                        .all(|s| s.status == fdfs_proto::stat::storage_status::ACTIVE)
            })
    };
    assert!(
        wait_until(DEADLINE, all_active),
        "two ACTIVE storages never listed; tracker log: {}",
        std::fs::read_to_string(tracker_conf.with_extension("log")).unwrap_or_default()
    );

    let conf = write_client_conf(dir.path(), &tracker);
    let ours = our_traffic(&client, &rt, 3);
    let theirs = py3fdfs_traffic(&conf, 2);
    assert_eq!((ours.len(), theirs.len()), (3, 2));
    assert!(
        wait_until(DEADLINE, || counted(&client, &rt, "group1") == (5, 5)),
        "uploads and downloads never counted: {:?}",
        counted(&client, &rt, "group1")
    );

    let url = format!("http://127.0.0.1:{http_port}/");
    let profile = tempfile::tempdir().unwrap();
    let (dom, page) = page_matching_monitor(&url, &conf, profile.path());
    let group = &page["group1"];
    let mut hosts: Vec<&str> = group.storages.iter().map(|s| s.host.as_str()).collect();
    hosts.sort();
    assert_eq!(
        hosts,
        storage_ips
            .iter()
            .map(|ip| format!("{ip}:{storage_port}"))
            .collect::<Vec<_>>()
    );
    assert!(group.storages.iter().all(|s| s.status == "ACTIVE"));
    assert_eq!(total(&page, |s| &s.uploads), 5, "{page:#?}");
    assert_eq!(total(&page, |s| &s.downloads), 5, "{page:#?}");
    assert!(
        dom.contains(&format!("id=\"tracker-leader\">{tracker} (this tracker)<")),
        "the leader is this tracker"
    );
    assert!(
        dom.contains("id=\"storage-active\">2 / 2<"),
        "summary counts both"
    );
    // One free-space bar per store path, and a replication lag cell per storage.
    assert_eq!(dom.matches("class=\"path\"").count(), 2);
    assert_eq!(dom.matches("<td class=\"lag").count(), 2);

    // The JSON the page polls names the same storages.
    let json = get(&format!("{url}status.json"));
    for ip in storage_ips {
        assert!(json.contains(&format!("\"ip\":\"{ip}\"")), "{json}");
    }
    assert!(json.contains("\"upload_count\":5"), "{json}");
}
