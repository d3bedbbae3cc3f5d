//! The bulk forms of `fdfs upload`, `fdfs download` and `fdfs delete`
//! against a real tracker + storage: a nested tree uploaded with -r -j 8
//! into CSV and JSON manifests, every row read back by the independent
//! client py3fdfs and by ours, resuming after a kill, deleting from a
//! manifest, and per-file errors with a non-zero exit. Fails (never skips)
//! when python3 or py3fdfs is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use fdfs_testkit::{wait_until, Cluster};

/// HTTP port written into the client.conf, to see it in the URLs.
const HTTP_PORT: u16 = 8888;
const DEADLINE: Duration = Duration::from_secs(60);
const TREE_FILES: usize = 50;

struct Env {
    /// `None` once stopped.
    cluster: Option<Cluster>,
    conf: PathBuf,
    work: tempfile::TempDir,
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

impl Out {
    /// The summary line (the last stderr line).
    fn summary(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

/// A manifest as py3fdfs saw it.
#[derive(Debug)]
struct Check {
    ok: usize,
    bad: Vec<String>,
    /// (path, file id, url) per row, in file order.
    rows: Vec<(String, String, String)>,
}

impl Env {
    fn start() -> Env {
        let cluster = Cluster::start();
        let conf = cluster.write_client_conf();
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("http.tracker_server_port = {HTTP_PORT}\n"));
        std::fs::write(&conf, text).unwrap();
        Env {
            cluster: Some(cluster),
            conf,
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fdfs"));
        cmd.args(args).current_dir(self.work.path());
        cmd
    }

    /// `fdfs SUBCOMMAND -c CONF ARGS...` in the work dir.
    fn fdfs(&self, sub: &str, args: &[&str]) -> Out {
        let conf = self.conf.to_str().unwrap();
        let mut all = vec![sub, "-c", conf];
        all.extend_from_slice(args);
        Out::from(self.command(&all).output().unwrap())
    }

    /// py3fdfs's view of a manifest (`mode`: present | gone).
    fn py_check(&self, manifest: &str, mode: &str) -> Check {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/bulk_manifest_check.py"
        );
        let out = Command::new("python3")
            .arg(script)
            .arg(&self.conf)
            .arg(self.path(manifest))
            .arg(self.work.path())
            .arg(mode)
            .output()
            .expect("python3 must be installed to run the bulk tools tests");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "manifest check failed (is py3fdfs installed? `python3 -m pip install py3fdfs`)\n\
             stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut check = Check {
            ok: 0,
            bad: Vec::new(),
            rows: Vec::new(),
        };
        for line in stdout.lines() {
            if let Some(n) = line.strip_prefix("ok ") {
                check.ok = n.parse().unwrap();
            } else if let Some(b) = line.strip_prefix("bad ") {
                check.bad.push(b.to_string());
            } else if let Some(r) = line.strip_prefix("row\t") {
                let f: Vec<&str> = r.split('\t').collect();
                check
                    .rows
                    .push((f[0].to_string(), f[1].to_string(), f[2].to_string()));
            }
        }
        check
    }
}

/// Deterministic content of `len` bytes, different per seed.
fn content(seed: usize, len: usize) -> Vec<u8> {
    let mut x = (seed as u32).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `tree/` with nested directories, names with spaces, commas, quotes and
/// non-ASCII, one empty file; returns relative path -> content.
fn make_tree(root: &Path, files: usize) -> BTreeMap<String, Vec<u8>> {
    let dirs = [
        "tree",
        "tree/a",
        "tree/a/deep",
        "tree/a/deep/deeper",
        "tree/b with space",
        "tree/c,comma",
        "tree/ünï",
    ];
    let mut all = BTreeMap::new();
    for i in 0..files {
        let dir = dirs[i % dirs.len()];
        let name = match i % 5 {
            0 => format!("file{i}.txt"),
            1 => format!("img {i}.jpg"),
            2 => format!("q\"uote{i}.tar.gz"),
            3 => format!("noext{i}"),
            _ => format!("data,{i}.bin"),
        };
        let rel = format!("{dir}/{name}");
        let len = if i == 7 { 0 } else { (i * 7919) % 300_000 + 1 };
        let data = content(i, len);
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(&rel), &data).unwrap();
        all.insert(rel, data);
    }
    all
}

fn summary_counts(summary: &str) -> String {
    // "upload: 50 uploaded, 0 skipped, 0 failed, 123 bytes, 0.12 s" without
    // the elapsed time.
    summary
        .rsplit_once(", ")
        .map_or(summary, |(head, _)| head)
        .to_string()
}

fn assert_all_present(env: &Env, manifest: &str, tree: &BTreeMap<String, Vec<u8>>) -> Check {
    let check = env.py_check(manifest, "present");
    assert!(check.bad.is_empty(), "{:#?}", check.bad);
    assert_eq!(check.ok, tree.len(), "{check:?}");
    let paths: BTreeSet<&str> = check.rows.iter().map(|r| r.0.as_str()).collect();
    let want: BTreeSet<&str> = tree.keys().map(String::as_str).collect();
    assert_eq!(paths, want, "one row per file");
    assert_eq!(paths.len(), check.rows.len(), "no duplicate rows");
    let ids: BTreeSet<&str> = check.rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(ids.len(), check.rows.len(), "one file id per row");
    for (_, id, url) in &check.rows {
        assert!(id.starts_with("group1/M00/"), "{id}");
        assert_eq!(
            url,
            &format!("http://127.0.0.1:{HTTP_PORT}/{id}"),
            "storage IP, http.tracker_server_port, file id"
        );
    }
    check
}

/// Every file of `tree` exists under `dir` with the same bytes.
fn assert_tree_restored(dir: &Path, tree: &BTreeMap<String, Vec<u8>>) {
    for (rel, data) in tree {
        let got = std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(got == *data, "{rel}: restored bytes differ");
    }
}

#[test]
fn tree_uploads_into_csv_and_json_manifests_and_round_trips() {
    let env = Env::start();
    let tree = make_tree(env.work.path(), TREE_FILES);
    let total: usize = tree.values().map(Vec::len).sum();

    for manifest in ["m.csv", "m.json"] {
        let out = env.fdfs("upload", &["-r", "-j", "8", "--manifest", manifest, "tree"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout, "", "the manifest is the record");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert_eq!(
            summary_counts(out.summary()),
            format!("upload: {TREE_FILES} uploaded, 0 skipped, 0 failed, {total} bytes"),
        );
        assert!(out.summary().ends_with(" s"), "{out:?}");
        assert_all_present(&env, manifest, &tree);

        // A rerun finds everything listed and unchanged.
        let again = env.fdfs("upload", &["-r", "-j", "8", "--manifest", manifest, "tree"]);
        assert_eq!(again.code, 0, "{again:?}");
        assert_eq!(
            summary_counts(again.summary()),
            format!("upload: 0 uploaded, {TREE_FILES} skipped, 0 failed, 0 bytes"),
        );
        let text = std::fs::read_to_string(env.path(manifest)).unwrap();
        assert_eq!(
            text.matches("group1/M00/").count(),
            2 * TREE_FILES,
            "no row added (an id and a URL per row)"
        );
    }
    let json_text = std::fs::read_to_string(env.path("m.json")).unwrap();
    assert!(json_text.starts_with("[\n{") && json_text.ends_with("}\n]\n"));
    assert!(std::fs::read_to_string(env.path("m.csv"))
        .unwrap()
        .starts_with("path,file_id,url,size,mtime_ns,crc32\n"));

    // Our client restores both manifests byte for byte (it also checks
    // size and CRC32 against each file id).
    for (manifest, dir) in [("m.csv", "out-csv"), ("m.json", "out-json")] {
        let out = env.fdfs("download", &["--manifest", manifest, "-d", dir, "-j", "8"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            summary_counts(out.summary()),
            format!("download: {TREE_FILES} downloaded, 0 failed, {total} bytes"),
        );
        assert_tree_restored(&env.path(dir), &tree);
        let leftovers: Vec<_> = walk(&env.path(dir))
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".fdfs-part"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    // Without -d each row goes back to its own path.
    std::fs::remove_dir_all(env.path("tree")).unwrap();
    let out = env.fdfs("download", &["--manifest", "m.csv"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_tree_restored(env.work.path(), &tree);

    // Delete from the JSON manifest: py3fdfs then fails on every row, and
    // the CSV manifest's files (other ids) are untouched.
    let out = env.fdfs("delete", &["--manifest", "m.json", "-j", "8"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        summary_counts(out.summary()),
        format!("delete: {TREE_FILES} deleted, 0 failed")
    );
    let gone = env.py_check("m.json", "gone");
    assert!(gone.bad.is_empty(), "{:#?}", gone.bad);
    assert_eq!(gone.ok, TREE_FILES);
    assert_all_present(&env, "m.csv", &tree);

    // Deleting again: one line per row naming path, id and reason, exit 2.
    let out = env.fdfs("delete", &["--manifest", "m.json"]);
    assert_eq!(out.code, 2, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), TREE_FILES + 1, "{out:?}");
    for (path, id, _) in &gone.rows {
        let line = format!("fdfs: {path} ({id}): No such file or directory");
        assert!(lines.contains(&line.as_str()), "{line} missing in {out:?}");
    }
    assert_eq!(
        summary_counts(out.summary()),
        format!("delete: 0 deleted, {TREE_FILES} failed")
    );
    // And downloading them fails per row, leaving no partial files.
    let out = env.fdfs("download", &["--manifest", "m.json", "-d", "after-delete"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(walk(&env.path("after-delete")).iter().all(|p| p.is_dir()));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

fn wait_exit(child: &mut Child) {
    assert!(
        wait_until(DEADLINE, || child.try_wait().unwrap().is_some()),
        "killed upload did not exit"
    );
}

/// Kills the child when dropped (a failing assertion must not leave it).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn interrupted_upload_resumes_from_its_manifest() {
    let env = Env::start();
    let tree = make_tree(env.work.path(), 20);
    let paths: Vec<&str> = tree.keys().map(String::as_str).collect();

    // First: a manifest already holding half the rows (one subdirectory
    // uploaded before); the whole tree then uploads only the rest.
    let out = env.fdfs("upload", &["-r", "--manifest", "half.csv", "tree/a"]);
    assert_eq!(out.code, 0, "{out:?}");
    let first = env.py_check("half.csv", "present").rows.len();
    assert!(first > 0 && first < tree.len(), "{first}");
    let out = env.fdfs(
        "upload",
        &["-r", "-j", "8", "--manifest", "half.csv", "tree"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.summary().starts_with(&format!(
            "upload: {} uploaded, {first} skipped, 0 failed,",
            tree.len() - first
        )),
        "{out:?}"
    );
    assert_all_present(&env, "half.csv", &tree);

    // Then a real kill mid-run. One job works through the paths in order;
    // a FIFO in the middle blocks the open until the test kills the
    // process, so the cut falls at a known row.
    let fifo = env.path("blocker.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let conf = env.conf.to_str().unwrap().to_string();
    let mut args: Vec<&str> = vec!["upload", "-c", &conf, "-j", "1", "--manifest", "kill.json"];
    args.extend_from_slice(&paths[..10]);
    args.push("blocker.fifo");
    args.extend_from_slice(&paths[10..]);
    let mut child = Reaper(
        env.command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let manifest = env.path("kill.json");
    assert!(
        wait_until(DEADLINE, || std::fs::read_to_string(&manifest)
            .is_ok_and(|t| t.matches("\"file_id\"").count() == 10)),
        "the first 10 rows never appeared"
    );
    child.0.kill().unwrap();
    wait_exit(&mut child.0);
    drop(child);
    assert_eq!(env.py_check("kill.json", "present").rows.len(), 10);

    let mut rerun: Vec<&str> = vec!["-j", "4", "--manifest", "kill.json"];
    rerun.extend_from_slice(&paths);
    let out = env.fdfs("upload", &rerun);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.summary().starts_with(&format!(
            "upload: {} uploaded, 10 skipped, 0 failed,",
            paths.len() - 10
        )),
        "{out:?}"
    );
    assert_all_present(&env, "kill.json", &tree);

    // A changed file is uploaded again: once with a new size, once with
    // the same size but a new mtime. The newest row wins on download.
    let grown = paths[0];
    std::fs::write(env.path(grown), b"grown content").unwrap();
    let same_size = paths[1];
    let mut data = tree[same_size].clone();
    data[0] ^= 0xFF;
    std::fs::write(env.path(same_size), &data).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(env.path(same_size))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    drop(f);
    let out = env.fdfs("upload", &rerun);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.summary().starts_with(&format!(
            "upload: 2 uploaded, {} skipped, 0 failed,",
            paths.len() - 2
        )),
        "{out:?}"
    );
    let out = env.fdfs("download", &["--manifest", "kill.json", "-d", "restored"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read(env.path("restored").join(grown)).unwrap(),
        b"grown content"
    );
    assert_eq!(
        std::fs::read(env.path("restored").join(same_size)).unwrap(),
        data
    );
}

#[test]
fn failures_are_reported_per_file_with_a_nonzero_exit() {
    let mut env = Env::start();
    let tree = make_tree(env.work.path(), 10);
    let good: Vec<&str> = tree
        .keys()
        .filter(|k| k.starts_with("tree/a/") && !k.contains("deep"))
        .map(String::as_str)
        .collect();
    assert!(!good.is_empty());

    // A missing path, a directory without -r and a pattern matching
    // nothing fail one by one; the good file still goes up.
    let out = env.fdfs(
        "upload",
        &[
            "--manifest",
            "m.csv",
            "missing.txt",
            good[0],
            "tree/b with space",
            "nomatch*.zip",
        ],
    );
    assert_eq!(out.code, 2, "first failure's errno: {out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "fdfs: missing.txt: No such file or directory",
            "fdfs: tree/b with space: Is a directory (use -r to upload what it holds)",
            "fdfs: nomatch*.zip: no file matches this pattern",
        ],
        "{out:?}"
    );
    assert!(
        out.summary()
            .starts_with("upload: 1 uploaded, 0 skipped, 3 failed,"),
        "{out:?}"
    );
    assert_eq!(env.py_check("m.csv", "present").ok, 1);

    // A quoted pattern is expanded by the tool itself; the directory it
    // matches is an error without -r, the files go up.
    let out = env.fdfs("upload", &["tree/a/*"]);
    assert_eq!(out.code, 21, "{out:?}");
    assert!(out
        .stderr
        .starts_with("fdfs: tree/a/deep: Is a directory (use -r to upload what it holds)\n"));
    let listed: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, good,
        "without a manifest: PATH<TAB>FILE_ID per file"
    );

    // A server error per file: the tracker knows no such group.
    let out = env.fdfs("upload", &["-g", "nogroup", good[0], good[1]]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "");
    for g in &good[..2] {
        let line = format!("fdfs: {g}: No such file or directory");
        assert!(out.stderr.lines().any(|l| l == line), "{line} in {out:?}");
    }
    assert!(
        out.summary()
            .starts_with("upload: 0 uploaded, 0 skipped, 2 failed,"),
        "{out:?}"
    );

    // Bytes that no longer match the file id: the stored copy of the
    // manifest's file is altered on disk (same size); our download says
    // so, exits EIO and leaves nothing behind.
    let check = env.py_check("m.csv", "present");
    let id = &check.rows[0].1;
    let remote = id.strip_prefix("group1/M00/").unwrap();
    let stored = env.cluster.as_ref().unwrap().store_paths[0]
        .join("data")
        .join(remote);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[0] ^= 0x55;
    std::fs::write(&stored, &bytes).unwrap();
    let out = env.fdfs("download", &["--manifest", "m.csv", "-d", "tampered"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "fdfs: {} ({id}): verification failed: got ",
            good[0]
        )),
        "{out:?}"
    );
    assert!(!env.path("tampered").join(good[0]).exists());
    assert!(walk(&env.path("tampered")).iter().all(|p| p.is_dir()));

    // A cluster that stopped: every row of a download fails with the
    // connect error, nothing is written.
    let manifest = env.path("m.csv");
    let cluster_dir = env.cluster.take().unwrap().stop();
    let out = env.fdfs("download", &["--manifest", "m.csv", "-d", "down"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 2, "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("fdfs: {} (group1/", good[0])),
        "{out:?}"
    );
    assert!(!env.path("down").join(good[0]).exists());
    drop(cluster_dir);

    // A manifest that does not exist: one line, ENOENT.
    std::fs::remove_file(&manifest).unwrap();
    let out = env.fdfs("delete", &["--manifest", "m.csv"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

/// A manifest written by hand (no size, mtime or CRC32 known) naming an
/// appender file that grew after upload: download checks it against the
/// storage's own size and CRC32, since the name no longer tells them.
#[test]
fn hand_written_manifest_with_an_appender_file_downloads() {
    let env = Env::start();
    std::fs::write(env.path("part1.log"), b"first line\n").unwrap();
    let out = env.fdfs("upload", &["--appender", "part1.log"]);
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.stdout.trim_end().to_string();
    let out = env.fdfs("append", &[&id, "part1.log"]);
    assert_eq!(out.code, 0, "{out:?}");
    std::fs::write(
        env.path("hand.json"),
        format!("[{{\"path\": \"logs/app.log\", \"file_id\": \"{id}\", \"size\": 0}}]"),
    )
    .unwrap();
    let out = env.fdfs("download", &["--manifest", "hand.json", "-d", "got"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read(env.path("got/logs/app.log")).unwrap(),
        b"first line\nfirst line\n"
    );
}
