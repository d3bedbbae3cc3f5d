//! The Docker image and compose files, for real on this machine's Docker
//! engine: build the image, run the all-in-one compose file with its example
//! app, upload from the host with our CLI and with py3fdfs, download over
//! HTTP, restart without losing data, stop cleanly; then the cluster compose
//! file (2 trackers, 2 groups of 2 storages). Everything the test creates is
//! removed at the end. Fails (never skips) when docker is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fdfs_testkit::free_port;

const DEADLINE: Duration = Duration::from_secs(120);
/// After a partition heals, a sync connection stuck in TCP retransmission
/// recovers within the storage's network_timeout (30 s), then catches up.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(240);
/// The cluster's first start (see where it is used).
const CLUSTER_START_DEADLINE: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is docker installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// docker-compose (v1) or `docker compose` (v2), whichever exists.
fn compose(project: &str, file: &str, env: &[(&str, String)]) -> Command {
    let v1 = Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut c = if v1 {
        Command::new("docker-compose")
    } else {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    };
    c.current_dir(repo()).args(["-p", project, "-f", file]);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn fdfs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fdfs"))
}

fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_for(DEADLINE, what, f)
}

fn poll_for<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn http_get(url: &str) -> Option<Vec<u8>> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let ok = resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200");
    ok.then(|| resp[split + 4..].to_vec())
}

fn container_ip(name: &str) -> String {
    stdout(&run(Command::new("docker").args([
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        name,
    ])))
}

/// `down -v`, retried: on a loaded machine docker-compose v1 can exit
/// non-zero after it removed everything (an API call timing out). What
/// matters is that no container of the project is left.
fn down(project: &str, file: &str, env: &[(&str, String)]) {
    for _ in 0..3 {
        if compose(project, file, env)
            .args(["down", "-v"])
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
    }
    let left = run(compose(project, file, env).args(["ps", "-q"]));
    assert!(
        left.stdout.trim_ascii().is_empty(),
        "containers left after down: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// Removes what the test made, whatever happened.
struct Cleanup {
    projects: Vec<(String, String)>,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (project, file) in &self.projects {
            let _ = compose(project, file, &[])
                .args(["down", "-v", "--remove-orphans"])
                .output();
        }
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.image])
            .output();
    }
}

#[test]
fn docker_image_all_in_one_and_cluster() {
    let image = format!("fastdfs-rs:test-{}", std::process::id());
    let single = format!("fdfsrs-one-{}", std::process::id());
    let cluster = format!("fdfsrs-cluster-{}", std::process::id());
    let _cleanup = Cleanup {
        projects: vec![
            (single.clone(), "docker-compose.yml".into()),
            (cluster.clone(), "docker-compose.cluster.yml".into()),
        ],
        image: image.clone(),
    };

    // The image: static binary FROM scratch, non-root, small.
    let built = run(Command::new(repo().join("docker/build.sh")).arg(&image));
    eprintln!("{}", stdout(&built));
    let inspect = stdout(&run(Command::new("docker").args([
        "image",
        "inspect",
        &image,
        "-f",
        "{{.Config.User}} {{.Size}} {{json .Config.Healthcheck.Test}}",
    ])));
    let mut parts = inspect.splitn(3, ' ');
    assert_eq!(parts.next(), Some("1000:1000"), "runs as non-root");
    let size: u64 = parts.next().unwrap().parse().unwrap();
    assert!(size <= 20_000_000, "image is {size} bytes, target 20 MB");
    assert!(
        parts.next().unwrap().contains("health"),
        "HEALTHCHECK uses fdfs health"
    );

    // All-in-one with the example app.
    let (tp, sp, hp) = (free_port(), free_port(), free_port());
    let env = vec![
        ("FDFS_IMAGE", image.clone()),
        ("FDFS_TRACKER_PORT", tp.to_string()),
        ("FDFS_STORAGE_PORT", sp.to_string()),
        ("FDFS_HTTP_PORT", hp.to_string()),
    ];
    run(compose(&single, "docker-compose.yml", &env).args(["up", "-d"]));
    let app = format!("{single}_app_1");
    let status = stdout(&run(Command::new("docker").args(["wait", &app])));
    let logs = run(Command::new("docker").args(["logs", &app]));
    assert_eq!(
        status,
        "0",
        "example app failed: {}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(
        stdout(&logs).starts_with("ok group1/M00/"),
        "{}",
        stdout(&logs)
    );

    // From the host: upload with our CLI through the published tracker port.
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("photo.jpg");
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &content).unwrap();
    let tracker = format!("127.0.0.1:{tp}");
    let id = stdout(&run(fdfs()
        .args(["upload", "--tracker", &tracker])
        .arg(&local)));
    assert!(id.starts_with("group1/M00/"), "{id}");
    let url = format!("http://127.0.0.1:{hp}/{id}");
    assert_eq!(poll("HTTP download", || http_get(&url)), content);

    // py3fdfs from the host, through the advertised address.
    let conf = work.path().join("client.conf");
    std::fs::write(
        &conf,
        format!("connect_timeout = 30\ntracker_server = {tracker}\n"),
    )
    .unwrap();
    let small_local = work.path().join("small.txt");
    std::fs::write(&small_local, b"small file for py3fdfs\n").unwrap();
    let small_id = stdout(&run(fdfs()
        .args(["upload", "--tracker", &tracker])
        .arg(&small_local)));
    let hex: String = b"small file for py3fdfs\n"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let py = Command::new("python3")
        .arg(repo().join("crates/fdfs/tests/py/py3fdfs_interop.py"))
        .arg(&conf)
        .arg(work.path())
        .arg(&small_id)
        .arg(&hex)
        .arg("--no-download-to-file")
        .output()
        .expect("python3 is needed for the py3fdfs part");
    let py_out = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "py3fdfs: {py_out} {}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(py_out.contains("\"foreign_matches\": true"), "{py_out}");
    assert!(py_out.contains("\"buffer_roundtrip\": true"), "{py_out}");

    // Restart: data persists, no "address in use"; stop is clean (SIGTERM
    // handled, so exit code 0 rather than a SIGKILL after the grace period).
    let server = format!("{single}_fastdfs_1");
    run(Command::new("docker").args(["restart", &server]));
    assert_eq!(poll("download after restart", || http_get(&url)), content);
    let logs = run(Command::new("docker").args(["logs", &server]));
    let all_logs = format!("{}{}", stdout(&logs), String::from_utf8_lossy(&logs.stderr));
    assert!(!all_logs.contains("in use"), "{all_logs}");
    let started = Instant::now();
    run(Command::new("docker").args(["stop", &server]));
    let stop_secs = started.elapsed().as_secs_f64();
    let code = stdout(&run(Command::new("docker").args([
        "inspect",
        "-f",
        "{{.State.ExitCode}}",
        &server,
    ])));
    assert_eq!(code, "0", "clean exit on SIGTERM");
    eprintln!("docker stop took {stop_secs:.2}s");
    down(&single, "docker-compose.yml", &env);

    // The cluster: 2 trackers, 2 groups x 2 storages.
    let env = vec![("FDFS_IMAGE", image.clone())];
    run(compose(&cluster, "docker-compose.cluster.yml", &env).args(["up", "-d"]));
    let t1 = format!("{}:22122", container_ip(&format!("{cluster}_tracker1_1")));
    let t2 = format!("{}:22122", container_ip(&format!("{cluster}_tracker2_1")));
    // Four storages create their 65,536 data directories at once on first
    // start, which takes a while on a busy 2-core machine.
    let end = Instant::now() + CLUSTER_START_DEADLINE;
    for t in [&t1, &t2] {
        loop {
            let out = fdfs().args(["monitor", "--tracker", t]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if text.matches(" ACTIVE").count() == 4 {
                break;
            }
            if Instant::now() > end {
                let logs: String = ["group1-a", "group1-b", "group2-a", "group2-b"]
                    .iter()
                    .map(|n| {
                        let o = Command::new("docker")
                            .args(["logs", "--tail", "15", &format!("{cluster}_{n}_1")])
                            .output()
                            .unwrap();
                        format!(
                            "--- {n}\n{}{}",
                            stdout(&o),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .collect();
                panic!("not all four storages ACTIVE on {t}:\n{text}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let id = stdout(&run(fdfs()
        .args(["upload", "--tracker", &t1, "--group", "group1"])
        .arg(&local)));
    assert!(id.starts_with("group1/"), "{id}");
    // Both storages of group1 serve it over HTTP (replication), and a
    // download through tracker 2 works.
    for name in ["group1-a", "group1-b"] {
        let ip = container_ip(&format!("{cluster}_{name}_1"));
        let url = format!("http://{ip}:8888/{id}");
        assert_eq!(
            poll("HTTP from every group1 storage", || http_get(&url)),
            content,
            "{name}"
        );
    }
    let out = work.path().join("via-t2");
    run(fdfs()
        .args(["download", "--tracker", &t2, &id])
        .arg("-o")
        .arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), content);

    // Partition: cut group1-b off its network, keep writing to group1-a,
    // heal. Nothing is lost and the isolated member catches up.
    let a_ip = container_ip(&format!("{cluster}_group1-a_1"));
    let b_name = format!("{cluster}_group1-b_1");
    let b_ip = container_ip(&b_name);
    let network = format!("{cluster}_default");
    run(Command::new("docker").args(["network", "disconnect", &network, &b_name]));
    let mut during = Vec::new();
    for i in 0..5 {
        let f = work.path().join(format!("partition-{i}.bin"));
        std::fs::write(
            &f,
            format!("written while group1-b was cut off: {i}\n").repeat(100),
        )
        .unwrap();
        let id = stdout(&run(fdfs()
            .args([
                "upload",
                "--tracker",
                &t1,
                "--storage",
                &format!("{a_ip}:23000"),
            ])
            .arg(&f)));
        during.push((id, std::fs::read(&f).unwrap()));
    }
    run(Command::new("docker").args(["network", "connect", &network, &b_name]));
    let b_ip_after = container_ip(&b_name);
    assert_eq!(
        b_ip, b_ip_after,
        "compose networks keep the address on reconnect"
    );
    for (id, data) in &during {
        let url = format!("http://{b_ip}:8888/{id}?redirect=1");
        assert_eq!(
            &poll_for(CATCH_UP_DEADLINE, "the healed member to catch up", || {
                http_get(&url)
            }),
            data,
            "{id}"
        );
    }
    down(&cluster, "docker-compose.cluster.yml", &env);
}
