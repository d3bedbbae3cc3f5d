//! `fdfs health` against real servers, up and down: `-c CONF` for a
//! tracker.conf, storage.conf and client.conf (issue #13.7), and the
//! container's `--base-path` check.

use std::path::{Path, PathBuf};
use std::process::Command;

use fdfs_testkit::{wait_until, Cluster};

/// Runs `fdfs health <args>`: exit code, stdout, stderr.
fn health(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .arg("health")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

struct Confs {
    tracker: PathBuf,
    storage: PathBuf,
    client: PathBuf,
    /// The storage.conf with a group the tracker does not know.
    stranger: PathBuf,
}

fn confs(c: &Cluster, dir: &Path) -> Confs {
    let (t, s) = (c.tracker_addr, c.storage_addr);
    let storage = |group: &str| {
        format!(
            "group_name = {group}\nbind_addr = {}\nport = {}\nbase_path = {}\n\
             store_path0 = {}\ntracker_server = {t}\n",
            s.ip(),
            s.port(),
            dir.display(),
            dir.display()
        )
    };
    Confs {
        tracker: write(
            dir,
            "tracker.conf",
            &format!(
                "bind_addr = {}\nport = {}\nbase_path = {}\n",
                t.ip(),
                t.port(),
                dir.display()
            ),
        ),
        storage: write(dir, "storage.conf", &storage(&c.group)),
        client: write(
            dir,
            "client.conf",
            &format!("base_path = {}\ntracker_server = {t}\n", dir.display()),
        ),
        stranger: write(dir, "stranger.conf", &storage("nosuchgroup")),
    }
}

#[test]
fn health_with_a_conf_checks_its_role_up_and_down() {
    let cluster = Cluster::start();
    cluster.wait_active();
    let dir = tempfile::tempdir().unwrap();
    let c = confs(&cluster, dir.path());
    let arg = |p: &PathBuf| p.to_str().unwrap().to_string();

    for conf in [&c.tracker, &c.storage, &c.client] {
        let (code, out, err) = health(&["-c", &arg(conf)]);
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""), "{conf:?}");
    }
    let (code, out, _) = health(&["-c", &arg(&c.storage), "--verbose"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "ok: storage {}\nok: tracker {}\n",
            cluster.storage_addr, cluster.tracker_addr
        )
    );

    // A storage its tracker does not list is not healthy.
    let (code, _, err) = health(&["-c", &arg(&c.stranger)]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(": does not know group nosuchgroup"), "{err}");

    // A storage.conf whose port the group's storage does not use: that
    // port does not answer and the tracker lists no such storage.
    let moved = write(
        dir.path(),
        "moved.conf",
        &std::fs::read_to_string(&c.storage).unwrap().replace(
            &format!("port = {}", cluster.storage_addr.port()),
            &format!("port = {}", fdfs_testkit::free_port()),
        ),
    );
    let (code, out, err) = health(&["-c", &arg(&moved), "-v"]);
    assert_eq!(code, 1);
    assert!(
        out.contains(": does not list this storage in group1\n"),
        "{out}"
    );
    assert!(
        err.starts_with("fdfs health: storage ") && err.trim_end().ends_with("(and 1 more)"),
        "{err}"
    );

    // A client.conf with a tracker that is down.
    let down = fdfs_testkit::free_port();
    let client2 = write(
        dir.path(),
        "client2.conf",
        &format!(
            "base_path = {}\ntracker_server = {}\ntracker_server = 127.0.0.1:{down}\n",
            dir.path().display(),
            cluster.tracker_addr
        ),
    );
    let (code, out, err) = health(&["-c", &arg(&client2), "-v"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(&format!("ok: tracker {}\n", cluster.tracker_addr)),
        "{out}"
    );
    assert!(
        out.contains(&format!("FAIL: tracker 127.0.0.1:{down}: ")),
        "{out}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // Everything down.
    let tracker_addr = cluster.tracker_addr;
    drop(cluster.stop());
    assert!(wait_until(std::time::Duration::from_secs(30), || {
        std::net::TcpStream::connect(tracker_addr).is_err()
    }));
    for conf in [&c.tracker, &c.storage, &c.client] {
        let (code, _, err) = health(&["-c", &arg(conf)]);
        assert_eq!(code, 1, "{conf:?}");
        assert!(
            err.starts_with("fdfs health: ") && err.lines().count() == 1,
            "{err}"
        );
    }
    // A conf that cannot be read.
    let (code, _, err) = health(&["-c", "/nonexistent/tracker.conf"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/tracker.conf"), "{err}");
}

/// The container check (`--base-path`) keeps working: it probes what the
/// health file lists.
#[test]
fn health_with_a_base_path_probes_the_health_file() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".fdfs-health",
        &format!(
            "tracker {}\nstorage {}\n",
            cluster.tracker_addr, cluster.storage_addr
        ),
    );
    let base = dir.path().to_str().unwrap();
    assert_eq!(health(&["--base-path", base]).0, 0);
    drop(cluster.stop());
    let (code, _, err) = health(&["--base-path", base]);
    assert_eq!(code, 1);
    assert!(err.starts_with("fdfs health: tracker "), "{err}");
}
