//! The Prometheus /metrics pages of the real daemons (issue #13.2): a
//! tracker started from a tracker.conf with `http.server_port`, two
//! storages of one group with their HTTP gateways, and `fdfs server`.
//! Pages are parsed by the OpenMetrics parser of the PyPI package
//! prometheus-client (tests/py/metrics_parse.py); traffic comes from our
//! client and from py3fdfs. The test fails (never skips) when python3,
//! prometheus-client or py3fdfs is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fdfs_client::{Client, UploadOptions};
use fdfs_proto::fileid::RemoteName;
use fdfs_proto::FileId;
use fdfs_testkit::{free_port, tracker_client, wait_until, ProcessGuard};

/// Generous: a loaded 2-CPU machine, heartbeats and stat reports every 1 s.
const DEADLINE: Duration = Duration::from_secs(60);
/// Loopback addresses of the two storages, outside the range the test kit
/// hands out (127.0.0.20-249), so a group in IP mode can hold both.
const STORAGE_IPS: [&str; 2] = ["127.0.0.250", "127.0.0.251"];

/// The families of the upstream exporter (fdfs_exporter.c), all gauges,
/// plus `fastdfs_group_active_count` that its dashboard asks for.
const UPSTREAM_TRACKER: &[&str] = &[
    "is_leader",
    "is_active",
    "connections_alloc",
    "connections_current",
    "connections_max",
];
const UPSTREAM_GROUP: &[&str] = &[
    "total_mb",
    "free_mb",
    "reserved_mb",
    "available_mb",
    "storage_count",
    "active_count",
    "readable_server_count",
    "writable_server_count",
];
const UPSTREAM_STORAGE: &[&str] = &[
    "total_mb",
    "free_mb",
    "reserved_mb",
    "available_mb",
    "upload_total",
    "upload_success",
    "upload_bytes_total",
    "download_total",
    "download_success",
    "download_bytes_total",
    "delete_total",
    "delete_success",
    "append_total",
    "append_success",
    "modify_total",
    "modify_success",
    "connections_alloc",
    "connections_current",
    "connections_max",
    "last_heartbeat",
    "heartbeat_delay_seconds",
    "last_synced_timestamp",
    "synced_delay_seconds",
    "sync_in_bytes_total",
    "sync_out_bytes_total",
];

fn fdfs(args: &[&str]) -> ProcessGuard {
    ProcessGuard::spawn(env!("CARGO_BIN_EXE_fdfs"), args, Stdio::null())
}

/// GET over a fresh connection: (status, content type, body).
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let reply = fdfs_testkit::http::http_get(addr, path)?;
    let content_type = reply.header("content-type").unwrap_or_default();
    Ok((reply.status, content_type, reply.body))
}

/// One parsed /metrics page.
#[derive(Debug)]
struct Page {
    /// Family name → type, as the parser read them.
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Page {
    /// Sum of the samples named `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|(_, v)| v).sum()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, l, v)| (l, *v))
    }

    /// The one sample named `name` with `labels`.
    fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self.matching(name, labels).map(|(_, v)| v).collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0]
    }

    /// Every counter sample (`_total` of a counter family, and the
    /// histograms' counts and buckets), by name and labels.
    fn counters(&self) -> BTreeMap<(String, Vec<(String, String)>), f64> {
        let mut out = BTreeMap::new();
        for (name, labels, v) in &self.samples {
            let family = self.types.keys().find(|f| {
                name == *f
                    || name
                        .strip_prefix(f.as_str())
                        .is_some_and(|rest| ["_total", "_count", "_bucket", "_sum"].contains(&rest))
            });
            let Some(family) = family else { continue };
            if matches!(self.types[family].as_str(), "counter" | "histogram") {
                out.insert(
                    (
                        name.clone(),
                        labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    ),
                    *v,
                );
            }
        }
        out
    }
}

/// GETs /metrics from `addr` and parses it with prometheus-client.
fn scrape(addr: &str) -> Page {
    let (status, content_type, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/metrics_parse.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(file.path())
        .output()
        .expect("python3 must be installed to parse /metrics");
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the page (is prometheus-client installed? \
         `python3 -m pip install prometheus-client`): {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&body)
    );
    let mut page = Page {
        types: BTreeMap::new(),
        samples: Vec::new(),
    };
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "T" => {
                page.types.insert(f[1].to_string(), f[2].to_string());
            }
            "S" => {
                let labels = f[2]
                    .split('\x1f')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                page.samples
                    .push((f[1].to_string(), labels, f[3].parse().unwrap()));
            }
            other => panic!("unexpected parser line {other:?}"),
        }
    }
    page
}

/// Every counter of `before` is still there in `after`, not smaller.
fn assert_no_counter_went_back(before: &Page, after: &Page, what: &str) {
    let after = after.counters();
    for (key, v) in before.counters() {
        let now = after
            .get(&key)
            .unwrap_or_else(|| panic!("{what}: counter {key:?} vanished"));
        assert!(
            *now >= v,
            "{what}: counter {key:?} went back from {v} to {now}"
        );
    }
}

/// Metric names the shipped Grafana dashboard queries.
fn dashboard_metric_names() -> std::collections::BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/fastdfs-dashboard.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text
        .match_indices("fastdfs_")
        .chain(text.match_indices("fdfs_"))
    {
        let preceded_by_word = text[..i]
            .bytes()
            .next_back()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        if preceded_by_word {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        names.insert(name);
    }
    names
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn client(tracker_port: u16) -> (tokio::runtime::Runtime, Client) {
    tracker_client(tracker_port, Duration::from_secs(10))
}

/// Uploads `data`, retrying while the cluster is still coming up.
fn upload(rt: &tokio::runtime::Runtime, client: &Client, data: &[u8]) -> FileId {
    let opts = UploadOptions {
        ext: Some("bin".into()),
        ..Default::default()
    };
    let end = Instant::now() + DEADLINE;
    loop {
        match rt.block_on(client.upload_buffer(data, &opts)) {
            Ok(id) => return id,
            Err(e) => assert!(Instant::now() < end, "upload never succeeded: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `fdfs <args>`: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `key = value` counters per storage id from `fdfs monitor`.
fn monitor_counts(client_conf: &str) -> BTreeMap<String, BTreeMap<String, i64>> {
    let (code, out, err) = run(&["monitor", "-c", client_conf]);
    assert_eq!(code, 0, "{err}");
    let mut by_id: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut current = None;
    for line in out.lines() {
        let Some((k, v)) = line.trim().split_once(" = ") else {
            continue;
        };
        if k == "id" {
            current = Some(v.to_string());
        } else if let (Some(id), Ok(n)) = (&current, v.trim().parse::<i64>()) {
            by_id
                .entry(id.clone())
                .or_default()
                .insert(k.to_string(), n);
        }
    }
    by_id
}

struct Cluster {
    _procs: Vec<ProcessGuard>,
    dir: tempfile::TempDir,
    tracker_port: u16,
    tracker_http: String,
    /// Gateway address of each storage, by storage IP.
    gateways: BTreeMap<String, String>,
    client_conf: String,
}

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (tp, thp, sp) = (free_port(), free_port(), free_port());
    std::fs::create_dir_all(d.join("tracker")).unwrap();
    write(
        &d.join("tracker.conf"),
        &format!(
            "bind_addr = 127.0.0.1\nport = {tp}\nbase_path = {}\nreserved_storage_space = 1%\n\
             http.server_port = {thp}\nallow_hosts = 127.0.0.1, {}, {}\n",
            d.join("tracker").display(),
            STORAGE_IPS[0],
            STORAGE_IPS[1]
        ),
    );
    let mut procs = vec![fdfs(&[
        "tracker",
        "-c",
        d.join("tracker.conf").to_str().unwrap(),
    ])];
    let mut gateways = BTreeMap::new();
    for (i, ip) in STORAGE_IPS.iter().enumerate() {
        let base = d.join(format!("storage{i}"));
        std::fs::create_dir_all(&base).unwrap();
        let hp = free_port();
        let conf = d.join(format!("storage{i}.conf"));
        write(
            &conf,
            &format!(
                "group_name = group1\nbind_addr = {ip}\nport = {sp}\nbase_path = {b}\nstore_path0 = {b}\n\
                 subdir_count_per_path = 2\ntracker_server = 127.0.0.1:{tp}\nheart_beat_interval = 1\n\
                 stat_report_interval = 1\nsync_interval = 0\nhttp.server_port = {hp}\n",
                b = base.display()
            ),
        );
        procs.push(fdfs(&["storage", "-c", conf.to_str().unwrap()]));
        gateways.insert(ip.to_string(), format!("{ip}:{hp}"));
    }
    let client_conf = d.join("client.conf");
    write(
        &client_conf,
        &format!(
            "connect_timeout = 30\nnetwork_timeout = 30\nbase_path = {}\ntracker_server = 127.0.0.1:{tp}\nlog_level = error\n",
            d.display()
        ),
    );
    Cluster {
        _procs: procs,
        tracker_port: tp,
        tracker_http: format!("127.0.0.1:{thp}"),
        gateways,
        client_conf: client_conf.to_str().unwrap().to_string(),
        dir,
    }
}

#[test]
fn tracker_and_storages_serve_upstream_names_and_counters_that_follow_traffic() {
    let c = start_cluster();
    // Both storages ACTIVE, as the tracker's own page says.
    assert!(
        wait_until(DEADLINE, || {
            http_get(&c.tracker_http, "/metrics").is_ok_and(|(s, _, b)| {
                s == 200
                    && String::from_utf8_lossy(&b)
                        .contains("fastdfs_group_active_count{group=\"group1\"} 2\n")
            })
        }),
        "the tracker never listed two ACTIVE storages"
    );
    for gw in c.gateways.values() {
        assert!(
            wait_until(DEADLINE, || http_get(gw, "/healthz")
                .is_ok_and(|r| r.0 == 200)),
            "gateway {gw} never answered"
        );
    }

    // The upstream exporter's families, types and labels.
    let t0 = scrape(&c.tracker_http);
    for (prefix, names) in [
        ("fastdfs_tracker_", UPSTREAM_TRACKER),
        ("fastdfs_group_", UPSTREAM_GROUP),
        ("fastdfs_storage_", UPSTREAM_STORAGE),
    ] {
        for n in names {
            let family = format!("{prefix}{n}");
            assert_eq!(
                t0.types.get(&family).map(String::as_str),
                Some("gauge"),
                "{family}"
            );
        }
    }
    let tracker_host = format!("127.0.0.1:{}", c.tracker_port);
    assert_eq!(
        t0.one("fastdfs_tracker_is_leader", &[("host", &tracker_host)]),
        1.0
    );
    assert_eq!(
        t0.one("fastdfs_tracker_is_active", &[("host", &tracker_host)]),
        1.0
    );
    assert_eq!(
        t0.one("fastdfs_group_storage_count", &[("group", "group1")]),
        2.0
    );
    assert_eq!(
        t0.one(
            "fastdfs_group_writable_server_count",
            &[("group", "group1")]
        ),
        2.0
    );
    for ip in STORAGE_IPS {
        let labels = [
            ("group", "group1"),
            ("storage_id", ip),
            ("ip", ip),
            ("status", "7"),
        ];
        for n in UPSTREAM_STORAGE {
            t0.one(&format!("fastdfs_storage_{n}"), &labels);
        }
        let by_ip = [("ip", ip)];
        let (l, _) = t0
            .matching("fastdfs_storage_total_mb", &by_ip)
            .next()
            .unwrap();
        let keys: Vec<&str> = l.keys().map(String::as_str).collect();
        assert_eq!(keys, ["group", "ip", "status", "storage_id"]);
        assert!(t0.one("fastdfs_storage_total_mb", &labels) > 0.0);
    }
    let g0: BTreeMap<&str, Page> = c
        .gateways
        .iter()
        .map(|(ip, a)| (ip.as_str(), scrape(a)))
        .collect();

    // Traffic: our client, then py3fdfs.
    let (rt, client) = client(c.tracker_port);
    let sizes: Vec<usize> = (0..5).map(|i| 1000 + 37 * i).collect();
    let mut ids = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = vec![b'a' + i as u8; *size];
        let id = upload(&rt, &client, &data);
        assert_eq!(
            rt.block_on(client.download_to_vec(&id, 0, 0)).unwrap(),
            data
        );
        ids.push(id);
    }
    let (py_count, py_size) = (3usize, 2000usize);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/py3fdfs_traffic.py");
    let out = Command::new("python3")
        .args([
            script,
            &c.client_conf,
            &py_count.to_string(),
            &py_size.to_string(),
        ])
        .output()
        .expect("python3 must be installed to run py3fdfs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py3fdfs failed (is it installed? `python3 -m pip install py3fdfs`): {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ID ")).count(),
        py_count,
        "{stdout}"
    );
    assert!(!stdout.contains("BAD "), "{stdout}");
    let uploads = (sizes.len() + py_count) as f64;
    let upload_bytes = (sizes.iter().sum::<usize>() + py_count * py_size) as f64;

    // The tracker's numbers follow once the storages have reported.
    let base_uploads = t0.sum("fastdfs_storage_upload_total", &[]);
    let base_downloads = t0.sum("fastdfs_storage_download_total", &[]);
    let mut t1 = scrape(&c.tracker_http);
    assert!(
        wait_until(DEADLINE, || {
            t1 = scrape(&c.tracker_http);
            t1.sum("fastdfs_storage_upload_total", &[]) == base_uploads + uploads
                && t1.sum("fastdfs_storage_download_total", &[]) == base_downloads + uploads
                && t1.sum("fastdfs_storage_last_synced_timestamp", &[]) > 0.0
        }),
        "upload/download counts never reached +{uploads}: {:?}",
        t1.matching("fastdfs_storage_upload_total", &[])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        t1.sum("fastdfs_storage_upload_bytes_total", &[])
            - t0.sum("fastdfs_storage_upload_bytes_total", &[]),
        upload_bytes
    );
    assert_eq!(
        t1.sum("fastdfs_storage_download_bytes_total", &[])
            - t0.sum("fastdfs_storage_download_bytes_total", &[]),
        upload_bytes
    );
    assert!(
        t1.sum(
            "fdfs_tracker_requests_total",
            &[("command", "QueryStoreWithoutGroupOne")]
        ) >= t0.sum(
            "fdfs_tracker_requests_total",
            &[("command", "QueryStoreWithoutGroupOne")]
        ) + uploads
    );
    assert_no_counter_went_back(&t0, &t1, "tracker");
    // Each storage has caught up with the other once replication is done.
    let mut lag = Vec::new();
    assert!(
        wait_until(DEADLINE, || {
            lag = scrape(&c.tracker_http)
                .matching(
                    "fdfs_tracker_replication_lag_seconds",
                    &[("group", "group1")],
                )
                .map(|(l, v)| (l["storage_id"].clone(), l["peer"].clone(), v))
                .collect();
            lag.len() == 2 && lag.iter().all(|(_, _, v)| *v == 0.0)
        }),
        "replication lag never reached 0: {lag:?}"
    );
    assert_ne!(lag[0].0, lag[0].1);

    // The same numbers as `fdfs monitor` prints (nothing moves now).
    let monitor = monitor_counts(&c.client_conf);
    for ip in STORAGE_IPS {
        let m = &monitor[ip];
        for (upstream, key) in [
            ("upload_total", "total_upload_count"),
            ("upload_success", "success_upload_count"),
            ("download_total", "total_download_count"),
            ("upload_bytes_total", "total_upload_bytes"),
            ("delete_total", "total_delete_count"),
        ] {
            assert_eq!(
                t1.one(
                    &format!("fastdfs_storage_{upstream}"),
                    &[("storage_id", ip)]
                ),
                m[key] as f64,
                "{ip} {upstream} vs monitor {key}"
            );
        }
    }

    // Each storage's own page: requests per command and bytes in.
    let mut s1 = BTreeMap::new();
    for (ip, addr) in &c.gateways {
        s1.insert(ip.as_str(), scrape(addr));
    }
    let delta = |name: &str, labels: &[(&str, &str)]| -> f64 {
        STORAGE_IPS
            .iter()
            .map(|ip| s1[ip].sum(name, labels) - g0[ip].sum(name, labels))
            .sum()
    };
    assert_eq!(
        delta("fdfs_storage_requests_total", &[("command", "UploadFile")]),
        uploads
    );
    assert_eq!(
        delta(
            "fdfs_storage_requests_total",
            &[("command", "DownloadFile")]
        ),
        uploads
    );
    assert_eq!(delta("fdfs_storage_files_uploaded_total", &[]), uploads);
    assert_eq!(
        delta(
            "fdfs_storage_request_duration_seconds_count",
            &[("command", "UploadFile")]
        ),
        uploads
    );
    // Uploads, and their replicas once the peer has them.
    assert!(delta("fdfs_storage_bytes_in_total", &[]) >= upload_bytes);
    for ip in STORAGE_IPS {
        assert_no_counter_went_back(&g0[ip], &s1[ip], ip);
        assert!(s1[ip].one("fdfs_storage_path_total_bytes", &[]) > 0.0);
        assert!(s1[ip]
            .types
            .contains_key("fdfs_storage_connections_refused"));
    }

    // HTTP status codes, hits and misses on the gateway of a file's source.
    let id = &ids[0];
    let source = RemoteName::parse(&id.remote, 1)
        .unwrap()
        .record()
        .unwrap()
        .source_ip_text();
    let gw = &c.gateways[&source];
    let h0 = scrape(gw);
    let (status, _, body) = http_get(gw, &format!("/{id}")).unwrap();
    assert_eq!((status, body.len()), (200, sizes[0]));
    // A name never stored, already redirected once: 404 whatever holds it.
    let (dir, name) = id.remote.rsplit_once('/').unwrap();
    let missing = format!(
        "/{}/{dir}/{}x.bin?redirect=1",
        id.group,
        name.trim_end_matches(".bin")
    );
    assert_eq!(http_get(gw, &missing).unwrap().0, 404);
    let h1 = scrape(gw);
    let code = |p: &Page, code: &str| p.sum("fdfs_http_responses_total", &[("code", code)]);
    // The first scrape's own 200 is counted once it was answered.
    assert_eq!(code(&h1, "200") - code(&h0, "200"), 2.0);
    assert_eq!(code(&h1, "404") - code(&h0, "404"), 1.0);
    assert_eq!(
        h1.sum("fdfs_http_local_hits_total", &[]) - h0.sum("fdfs_http_local_hits_total", &[]),
        1.0
    );
    assert_eq!(
        h1.sum("fdfs_http_local_misses_total", &[]) - h0.sum("fdfs_http_local_misses_total", &[]),
        1.0
    );
    assert_no_counter_went_back(&h0, &h1, "gateway");

    // Every series the dashboard (deploy/grafana) queries is served.
    let pages: Vec<&Page> = [&t1, &h1].into_iter().chain(s1.values()).collect();
    for name in dashboard_metric_names() {
        let served = pages
            .iter()
            .any(|p| p.samples.iter().any(|(n, _, _)| *n == name) || p.types.contains_key(&name));
        assert!(served, "the dashboard queries {name}, which no page serves");
    }

    // A connection from an address allow_hosts does not list is counted.
    let refused = |p: &Page| p.one("fdfs_tracker_connections_refused_total", &[]);
    let before = refused(&t1);
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = sock
            .connect(format!("127.0.0.1:{}", c.tracker_port).parse().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        // The tracker closes it at once.
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    });
    assert_eq!(refused(&scrape(&c.tracker_http)), before + 1.0);

    // `fdfs health -c` checks the metrics pages of the confs that set one.
    let d = c.dir.path();
    let (code, out, err) = run(&[
        "health",
        "-c",
        d.join("tracker.conf").to_str().unwrap(),
        "-v",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("ok: metrics http://{}/metrics\n", c.tracker_http)),
        "{out}"
    );
    let (code, out, err) = run(&[
        "health",
        "-c",
        d.join("storage0.conf").to_str().unwrap(),
        "-v",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "ok: metrics http://{}/metrics\n",
            c.gateways[STORAGE_IPS[0]]
        )),
        "{out}"
    );
    let dead = d.join("dead.conf");
    write(
        &dead,
        &std::fs::read_to_string(d.join("tracker.conf"))
            .unwrap()
            .replace(
                &format!(
                    "http.server_port = {}",
                    c.tracker_http.rsplit(':').next().unwrap()
                ),
                &format!("http.server_port = {}", free_port()),
            ),
    );
    let (code, out, err) = run(&["health", "-c", dead.to_str().unwrap(), "--verbose"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL: metrics http://127.0.0.1:"), "{out}");
    assert!(err.starts_with("fdfs health: metrics http://"), "{err}");
}

#[test]
fn fdfs_server_serves_tracker_storage_and_gateway_series_on_its_gateway_port() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp, hp) = (free_port(), free_port(), free_port());
    let _server = fdfs(&[
        "server",
        "--base-path",
        dir.path().to_str().unwrap(),
        "--tracker-port",
        &tp.to_string(),
        "--storage-port",
        &sp.to_string(),
        "--http-port",
        &hp.to_string(),
    ]);
    let gw = format!("127.0.0.1:{hp}");
    assert!(
        wait_until(DEADLINE, || http_get(&gw, "/healthz")
            .is_ok_and(|r| r.0 == 200)),
        "fdfs server never answered on {gw}"
    );
    let before = scrape(&gw);
    let (rt, client) = client(tp);
    for i in 0..3 {
        upload(&rt, &client, &vec![b'x'; 100 + i]);
    }
    let mut after = scrape(&gw);
    assert!(
        wait_until(DEADLINE, || {
            after = scrape(&gw);
            after.sum("fastdfs_storage_upload_total", &[]) == 3.0
        }),
        "the tracker series never counted 3 uploads"
    );
    assert_eq!(
        after.one("fastdfs_group_active_count", &[("group", "group1")]),
        1.0
    );
    assert_eq!(
        after.sum("fdfs_storage_requests_total", &[("command", "UploadFile")]),
        3.0
    );
    assert!(after.sum("fdfs_tracker_requests_total", &[("command", "StorageJoin")]) >= 1.0);
    assert!(after.types.contains_key("fdfs_http_responses"));
    assert_eq!(
        after.types["fdfs_storage_request_duration_seconds"],
        "histogram"
    );
    assert_no_counter_went_back(&before, &after, "fdfs server");
}
