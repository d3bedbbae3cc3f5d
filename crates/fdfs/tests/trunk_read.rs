//! Trunk-backed files (issue #15, PROTOCOL.md §6.7, §11.5) served by our
//! storage from a trunk data directory laid out by hand with the
//! `fdfs_proto` codecs (as the original's storage leaves one): downloads
//! whole and ranged, file info, metadata and delete through our client and
//! through py3fdfs, the HTTP gateway (token, Range, ETag), replication of
//! trunk names to a new member, and slots whose header does not match
//! their name.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdfs_client::{ClientError, StorageClient};
use fdfs_proto::metadata::MetaOp;
use fdfs_proto::trunk::{SlotHeader, SLOT_HEADER_LEN};
use fdfs_proto::FileId;
use fdfs_testkit::gateway::GatewayConfs;
use fdfs_testkit::group::{Group, GroupOptions};
use fdfs_testkit::http::http_get_then_eof;
use fdfs_testkit::trunk::{TrunkDirBuilder, TrunkFixtureFile};
use fdfs_testkit::{tracker_client, ProcessGuard};

const DEADLINE: Duration = Duration::from_secs(30);
/// Size of the hand-made trunk files (sparse), bytes.
const TRUNK_FILE_BYTES: u64 = 1 << 20;
/// Timestamp of the fixture names (and mtime of their slot headers).
const TS: u32 = 1_700_000_000;
const ENOENT: u8 = 2;
const EINVAL: u8 = 22;

fn fdfs(args: &[&str]) -> ProcessGuard {
    ProcessGuard::spawn(env!("CARGO_BIN_EXE_fdfs"), args, Stdio::null())
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 31 + seed * 7 + i / 251) as u8)
        .collect()
}

/// Files of several sizes in three trunk files and two directories.
fn lay_out(b: &mut TrunkDirBuilder) -> Vec<TrunkFixtureFile> {
    vec![
        b.add((0, 1, 1), b"Hello FastDFS\n", "txt", TS),
        b.add((0, 1, 1), &pattern(1000, 1), "bin", TS + 1),
        b.add((1, 0, 2), &pattern(200_000, 2), "", TS + 2),
        b.add((1, 1, 3), &pattern(3, 3), "jpg", TS + 3),
        b.add((0, 1, 1), &pattern(70_000, 4), "dat", TS + 4),
    ]
}

/// A file whose slot then gets a header that differs from its name in the
/// mtime: a deleted-and-reused slot as a reader sees it.
fn add_mismatched(b: &mut TrunkDirBuilder) -> TrunkFixtureFile {
    let f = b.add((0, 1, 1), b"stale name", "txt", TS + 9);
    let name = fdfs_testkit::trunk::parse_name(&f.remote);
    let mut header = SlotHeader::expected_for(&name, fdfs_proto::trunk::SLOT_TYPE_REGULAR).unwrap();
    header.mtime += 1;
    b.write_slot(&f.loc, &header.encode(), &f.content);
    f
}

fn id_of(f: &TrunkFixtureFile) -> FileId {
    FileId::parse(&format!("group1/{}", f.remote)).unwrap()
}

fn status(r: Result<impl Sized, ClientError>) -> u8 {
    match r {
        Ok(_) => 0,
        Err(e) => e.errno(),
    }
}

fn wait_healthy(port: u16) {
    let end = Instant::now() + DEADLINE;
    while !http_get_then_eof(("127.0.0.1", port), "/healthz", "")
        .is_ok_and(|r| r.status == 200 && r.body == b"ok\n")
    {
        assert!(Instant::now() < end, "gateway on {port} never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signed_url(conf: &Path, id: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs"))
        .args(["token", id, "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "fdfs token failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn trunk_files_read_through_our_client_py3fdfs_and_the_gateway() {
    let confs = GatewayConfs::write("", "");
    let (tp, hp) = (confs.tracker_port, confs.http_port);
    let conf = confs.conf_dir();
    std::fs::write(
        conf.join("http.conf"),
        "http.anti_steal.check_token = true\nhttp.anti_steal.token_ttl = 900\n\
         http.anti_steal.secret_key = TrunkS3cret\n",
    )
    .unwrap();
    let conf_path = |n: &str| conf.join(n).to_str().unwrap().to_string();
    let _tracker = fdfs(&["tracker", "-c", &conf_path("tracker.conf")]);
    let _storage = fdfs(&["storage", "-c", &conf_path("storage.conf")]);
    wait_healthy(hp);

    let store = confs.dir().join("storage");
    let mut b = TrunkDirBuilder::new(&store, 0, TRUNK_FILE_BYTES);
    let files = lay_out(&mut b);
    let stale = add_mismatched(&mut b);
    assert!(store.join("data/00/01/000001").is_file());

    let (rt, client) = tracker_client(tp, Duration::from_secs(5));
    // The storage reaches ACTIVE on its own time: the first read retries.
    let end = Instant::now() + DEADLINE;
    while rt
        .block_on(client.download_to_vec(&id_of(&files[0]), 0, 0))
        .is_err()
    {
        assert!(
            Instant::now() < end,
            "the first trunk file never downloaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    for f in &files {
        let id = id_of(f);
        let len = f.content.len() as u64;
        let whole = rt.block_on(client.download_to_vec(&id, 0, 0)).unwrap();
        assert!(whole == f.content, "{}: whole download differs", f.remote);
        let (off, n) = (1u64, 2u64.min(len - 1));
        let part = rt.block_on(client.download_to_vec(&id, off, n)).unwrap();
        assert_eq!(
            part,
            &f.content[off as usize..(off + n) as usize],
            "{}",
            f.remote
        );
        // Past the end is clamped; at the end is EINVAL, as for any file.
        let tail = rt
            .block_on(client.download_to_vec(&id, len - 1, 100))
            .unwrap();
        assert_eq!(tail, &f.content[f.content.len() - 1..]);
        assert_eq!(
            status(rt.block_on(client.download_to_vec(&id, len, 0))),
            EINVAL
        );

        let info = rt.block_on(client.query_file_info(&id, 0)).unwrap();
        assert_eq!(info.file_size, len as i64, "{}", f.remote);
        assert_eq!(info.create_timestamp, i64::from(f.timestamp));
        assert_eq!(info.crc32, crc32fast::hash(&f.content));
        assert_eq!(info.source_ip, "127.0.0.1");
        let local = rt.block_on(client.file_info(&id, true, 0)).unwrap();
        assert_eq!(local.file_size, len as i64);
        assert!(!local.get_from_server, "a trunk name is decoded locally");
    }
    // A slot whose header is not the name's: no such file, to every reader.
    let stale_id = id_of(&stale);
    assert_eq!(
        status(rt.block_on(client.download_to_vec(&stale_id, 0, 0))),
        ENOENT
    );
    assert_eq!(
        status(rt.block_on(client.query_file_info(&stale_id, 0))),
        ENOENT
    );
    assert_eq!(
        status(rt.block_on(client.set_metadata(
            &stale_id,
            &[(b"k".to_vec(), b"v".to_vec())],
            MetaOp::Overwrite
        ))),
        ENOENT
    );

    // Metadata of a trunk name lives in `<name>-m` beside its trunk file.
    let meta_id = id_of(&files[1]);
    let pairs = vec![(b"kind".to_vec(), b"trunk".to_vec())];
    rt.block_on(client.set_metadata(&meta_id, &pairs, MetaOp::Overwrite))
        .unwrap();
    assert_eq!(rt.block_on(client.get_metadata(&meta_id)).unwrap(), pairs);
    assert!(store
        .join(format!("data/{}-m", &files[1].remote[4..]))
        .is_file());

    // py3fdfs, an independent client: whole and ranged.
    let expected: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (format!("group1/{}", f.remote), f.content.clone()))
        .collect();
    py3fdfs_reads(confs.dir(), tp, &expected);

    // The gateway: token, whole, Range, ETag.
    let mod_conf = conf.join("mod_fastdfs.conf");
    for f in &files {
        let id = format!("group1/{}", f.remote);
        let url = signed_url(&mod_conf, &id);
        let r = http_get_then_eof(("127.0.0.1", hp), &url, "").unwrap();
        assert_eq!(r.status, 200, "{url}");
        assert!(r.body == f.content, "{id}: HTTP body differs");
        let etag = r.header("etag").expect("an ETag");
        let r = http_get_then_eof(("127.0.0.1", hp), &url, "Range: bytes=1-2\r\n").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (206, &f.content[1..3]),
            "{id}"
        );
        let r = http_get_then_eof(
            ("127.0.0.1", hp),
            &url,
            &format!("If-None-Match: {etag}\r\n"),
        )
        .unwrap();
        assert_eq!(r.status, 304, "{id}");
        let r = http_get_then_eof(("127.0.0.1", hp), &format!("/{id}"), "").unwrap();
        assert_eq!(r.status, 400, "{id}: served without a token");
    }
    let r = http_get_then_eof(
        ("127.0.0.1", hp),
        &signed_url(&mod_conf, &format!("group1/{}", stale.remote)),
        "",
    )
    .unwrap();
    assert_ne!(r.status, 200, "a mismatched slot was served");
    assert!(r.status >= 400, "{}", r.status);

    // Delete: the slot is marked free (type 0) so that the original takes
    // it as free, with a tombstone of the deleted file; the metadata goes,
    // the neighbours stay.
    rt.block_on(client.delete_file(&meta_id)).unwrap();
    assert_eq!(
        status(rt.block_on(client.download_to_vec(&meta_id, 0, 0))),
        ENOENT
    );
    assert_eq!(status(rt.block_on(client.delete_file(&meta_id))), ENOENT);
    let trunk = std::fs::read(store.join("data/00/01/000001")).unwrap();
    let at = files[1].loc.offset as usize;
    let left = SlotHeader::decode(trunk[at..at + SLOT_HEADER_LEN].try_into().unwrap());
    assert_eq!(left.file_type, 0, "type 0: free");
    assert_eq!(left.alloc_size, files[1].loc.size, "the slot size stays");
    // What the original checks before it writes into a slot.
    assert_eq!((left.crc32, left.mtime, left.ext7), (0, 0, [0; 7]));
    // The tombstone record (23 bytes), then zeros.
    assert!(
        trunk[at + SLOT_HEADER_LEN + 23..at + files[1].loc.size as usize]
            .iter()
            .all(|&b| b == 0),
        "content wiped"
    );
    assert!(!store
        .join(format!("data/{}-m", &files[1].remote[4..]))
        .exists());
    let binlog = std::fs::read_to_string(store.join("data/sync/binlog.000")).unwrap();
    assert!(
        binlog.contains(&format!(" D {}\n", files[1].remote)),
        "{binlog}"
    );
    assert!(
        binlog.contains(&format!(" D {}-m\n", files[1].remote)),
        "{binlog}"
    );
    let r = http_get_then_eof(
        ("127.0.0.1", hp),
        &signed_url(&mod_conf, &format!("group1/{}", files[1].remote)),
        "",
    )
    .unwrap();
    assert_ne!(r.status, 200, "a deleted trunk file was served");
    for f in [&files[0], &files[4]] {
        assert!(
            rt.block_on(client.download_to_vec(&id_of(f), 0, 0))
                .unwrap()
                == f.content
        );
    }
}

/// Reads every `(file id, content)` with py3fdfs, whole and ranged, and
/// checks them all.
fn py3fdfs_reads(dir: &Path, tracker_port: u16, expected: &[(String, Vec<u8>)]) {
    let client_conf = dir.join("client.conf");
    std::fs::write(
        &client_conf,
        format!(
            "connect_timeout = 30\nnetwork_timeout = 30\nbase_path = {}\ntracker_server = 127.0.0.1:{tracker_port}\n",
            dir.display()
        ),
    )
    .unwrap();
    let listing = dir.join("py3fdfs-files.txt");
    let lines: String = expected
        .iter()
        .map(|(id, content)| {
            let hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
            format!("{id} {hex}\n")
        })
        .collect();
    std::fs::write(&listing, lines).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/py/py3fdfs_trunk_check.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(&client_conf)
        .arg(&listing)
        .output()
        .expect("python3 must be installed to run the py3fdfs part");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py3fdfs check failed (is py3fdfs installed? `python3 -m pip install py3fdfs`)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!(
        "\"checked\": {n}, \"ranged\": {n}, \"bad\": []",
        n = expected.len()
    );
    assert!(stdout.contains(&want), "{stdout}");
}

/// `L` slots (PROTOCOL.md §11.5), as the original's CREATE_LINK (20)
/// leaves them: the link's name serves the file its slot names, a trunk
/// file or a plain one, through our client, py3fdfs and the gateway; file
/// info gives the target's size and the link's own time. A link to a link,
/// or one whose content names no file, is no file. A delete frees the
/// link's slot and leaves its target.
#[test]
fn link_slots_serve_the_file_they_name() {
    let confs = GatewayConfs::write("", "");
    let (tp, hp) = (confs.tracker_port, confs.http_port);
    let conf = confs.conf_dir();
    std::fs::write(conf.join("http.conf"), "").unwrap();
    let conf_path = |n: &str| conf.join(n).to_str().unwrap().to_string();
    let _tracker = fdfs(&["tracker", "-c", &conf_path("tracker.conf")]);
    let _storage = fdfs(&["storage", "-c", &conf_path("storage.conf")]);
    wait_healthy(hp);
    let (rt, client) = tracker_client(tp, Duration::from_secs(5));
    let plain_content = pattern(5000, 8);
    let end = Instant::now() + DEADLINE;
    let plain = loop {
        let opts = fdfs_client::UploadOptions {
            ext: Some("png".into()),
            ..Default::default()
        };
        match rt.block_on(client.upload_buffer(&plain_content, &opts)) {
            Ok(id) => break id,
            Err(e) => assert!(Instant::now() < end, "no upload: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(plain.remote.len(), 44, "{}", plain.remote);

    let store = confs.dir().join("storage");
    let mut b = TrunkDirBuilder::new(&store, 0, TRUNK_FILE_BYTES);
    let trunk_target = b.add((0, 1, 1), &pattern(3000, 9), "jpg", TS);
    let to_trunk = b.add_link((0, 1, 1), &trunk_target.remote, "jpg", TS + 20);
    let to_plain = b.add_link((1, 0, 2), &plain.remote, "png", TS + 21);
    let to_link = b.add_link((0, 1, 1), &to_trunk.remote, "jpg", TS + 22);
    let to_nothing = b.add_link((0, 1, 1), "M00/00/00/not-a-name", "", TS + 23);
    let to_gone = b.add_link(
        (0, 1, 1),
        "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt",
        "",
        TS + 24,
    );
    let links = [
        (&to_trunk, &trunk_target.content, TS + 20),
        (&to_plain, &plain_content, TS + 21),
    ];
    for (link, content, ts) in links {
        let id = id_of(link);
        let got = rt.block_on(client.download_to_vec(&id, 0, 0)).unwrap();
        assert!(
            got == **content,
            "{}: the link's download differs",
            link.remote
        );
        let part = rt.block_on(client.download_to_vec(&id, 10, 20)).unwrap();
        assert_eq!(part, &content[10..30], "{}", link.remote);
        let info = rt.block_on(client.query_file_info(&id, 0)).unwrap();
        assert_eq!(info.file_size, content.len() as i64, "{}", link.remote);
        assert_eq!(info.create_timestamp, i64::from(ts), "{}", link.remote);

        let url = format!("/group1/{}", link.remote);
        let r = http_get_then_eof(("127.0.0.1", hp), &url, "").unwrap();
        assert_eq!(r.status, 200, "{url}");
        assert!(r.body == **content, "{url}: HTTP body differs");
        let r = http_get_then_eof(("127.0.0.1", hp), &url, "Range: bytes=5-9\r\n").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (206, &content[5..10]),
            "{url}"
        );
    }
    for dangling in [&to_link, &to_nothing, &to_gone] {
        let id = id_of(dangling);
        assert_eq!(
            status(rt.block_on(client.download_to_vec(&id, 0, 0))),
            ENOENT,
            "{}",
            dangling.remote
        );
        assert_eq!(
            status(rt.block_on(client.query_file_info(&id, 0))),
            ENOENT,
            "{}",
            dangling.remote
        );
        let url = format!("/group1/{}", dangling.remote);
        let r = http_get_then_eof(("127.0.0.1", hp), &url, "").unwrap();
        assert_eq!(r.status, 404, "{url}");
    }
    py3fdfs_reads(
        confs.dir(),
        tp,
        &links.map(|(l, c, _)| (format!("group1/{}", l.remote), c.clone())),
    );

    // Deleting a link frees its own slot; the file it named stays.
    rt.block_on(client.delete_file(&id_of(&to_trunk))).unwrap();
    assert_eq!(
        status(rt.block_on(client.download_to_vec(&id_of(&to_trunk), 0, 0))),
        ENOENT
    );
    let trunk = std::fs::read(store.join("data/00/01/000001")).unwrap();
    let at = to_trunk.loc.offset as usize;
    assert_eq!(trunk[at], 0, "the link's slot is free");
    assert!(
        rt.block_on(client.download_to_vec(&id_of(&trunk_target), 0, 0))
            .unwrap()
            == trunk_target.content
    );
}

/// Member `i`'s copy of a file, straight from that storage.
fn download_from(g: &Group, i: usize, remote: &str) -> Result<Vec<u8>, ClientError> {
    g.block_on(async {
        let mut c = fdfs_testkit::try_connect(g.storage_addr(i)).await?;
        let mut out = Vec::new();
        StorageClient::new(&mut c)
            .download("group1", remote, 0, 0, &mut out)
            .await?;
        Ok(out)
    })
}

fn wait_until(mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn trunk_names_replicate_into_the_same_slots_of_a_new_member() {
    let mut g = Group::start_with(GroupOptions {
        groups: vec![("group1", 1)],
        tweak_storage: Some(Arc::new(|c| c.subdir_count_per_path = 2)),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE), "group never turned ACTIVE");
    // The source's files and their CREATE records, laid down while it is
    // stopped, as if it had taken the uploads.
    g.stop_storage(0);
    let ip: std::net::Ipv4Addr = g.storage_ip(0).parse().unwrap();
    let mut b = TrunkDirBuilder::new(&g.store_path(0), 0, TRUNK_FILE_BYTES).source(ip.octets());
    let files = lay_out(&mut b);
    // A link slot (the original's CREATE_LINK) travels as SYNC_CREATE_LINK.
    let link = b.add_link((0, 1, 1), &files[1].remote, "bin", TS + 30);
    b.append_binlog(&g.store_path(0));
    g.start_storage(0);
    let new = g.add_storage();
    assert!(
        g.wait_all_active(DEADLINE),
        "the new member never turned ACTIVE"
    );

    for f in &files {
        assert!(
            wait_until(|| download_from(&g, new, &f.remote).is_ok_and(|d| d == f.content)),
            "{} never reached the new member intact",
            f.remote
        );
        // In its own copy of the trunk file, at the same slot.
        let trunk =
            std::fs::read(g.store_path(new).join(f.loc.trunk_file_relative_path())).unwrap();
        let start = f.loc.content_offset() as usize;
        assert!(trunk[start..start + f.content.len()] == f.content[..]);
    }
    assert!(
        wait_until(|| download_from(&g, new, &link.remote).is_ok_and(|d| d == files[1].content)),
        "the link slot never reached the new member"
    );
    let trunk = std::fs::read(g.store_path(new).join(link.loc.trunk_file_relative_path())).unwrap();
    let at = link.loc.offset as usize;
    assert_eq!(trunk[at], b'L', "the replica is a link slot");
    let start = link.loc.content_offset() as usize;
    assert_eq!(
        &trunk[start..start + link.content.len()],
        files[1].remote.as_bytes()
    );
    let binlog = std::fs::read_to_string(g.store_path(new).join("data/sync/binlog.000")).unwrap();
    for f in &files {
        assert!(binlog.contains(&format!(" c {}\n", f.remote)), "{binlog}");
    }
    assert!(
        binlog.contains(&format!(" l {} {}\n", link.remote, files[1].remote)),
        "{binlog}"
    );

    // A delete on the source clears the replica's slot too.
    let gone = &files[2];
    g.block_on(async {
        let mut c = fdfs_testkit::connect(g.storage_addr(0)).await;
        StorageClient::new(&mut c)
            .delete("group1", &gone.remote)
            .await
            .unwrap();
    });
    assert!(
        wait_until(|| download_from(&g, new, &gone.remote).is_err_and(|e| e.errno() == ENOENT)),
        "the delete never reached the new member"
    );
    assert!(download_from(&g, new, &files[0].remote).unwrap() == files[0].content);
}

/// `store_slave_file_use_link` (issue #15 point 7, PROTOCOL.md §3.2): a
/// slave's content goes under a fresh normal name and the slave name is a
/// symlink to it, also for a trunk-backed master; both replicate (the link
/// with SYNC_CREATE_LINK) and a delete takes link and target.
#[test]
fn slaves_are_symlinks_with_store_slave_file_use_link() {
    let mut g = Group::start_with(GroupOptions {
        groups: vec![("group1", 1)],
        tweak_tracker: Some(Arc::new(|c| c.store_slave_file_use_link = true)),
        tweak_storage: Some(Arc::new(|c| c.subdir_count_per_path = 2)),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE), "group never turned ACTIVE");
    let store = g.store_path(0);
    let ip: std::net::Ipv4Addr = g.storage_ip(0).parse().unwrap();
    let mut b = TrunkDirBuilder::new(&store, 0, TRUNK_FILE_BYTES).source(ip.octets());
    let trunk_master = b.add((1, 0, 5), b"trunk master", "jpg", TS);

    let (plain_master, slaves) = g.block_on(async {
        let mut c = fdfs_testkit::connect(g.storage_addr(0)).await;
        let mut sc = StorageClient::new(&mut c);
        let master = sc
            .upload(
                fdfs_client::UploadKind::Normal,
                -1,
                "jpg",
                &mut &b"plain master"[..],
                12,
            )
            .await
            .unwrap();
        let mut slaves = Vec::new();
        for (m, body) in [
            (&master.remote, &b"plain slave"[..]),
            (&trunk_master.remote, &b"trunk slave"[..]),
        ] {
            let id = sc
                .upload_slave(m, "_150x150", "jpg", &mut &body[..], body.len() as u64)
                .await
                .unwrap();
            slaves.push((id.remote, body.to_vec()));
        }
        (master, slaves)
    });
    let binlog = std::fs::read_to_string(store.join("data/sync/binlog.000")).unwrap();
    for (slave, content) in &slaves {
        let link = store.join("data").join(&slave[4..]);
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "{slave} is not a link");
        let target = std::fs::read_link(&link).unwrap();
        assert!(
            target.is_absolute() && target.starts_with(store.join("data")),
            "{target:?}"
        );
        let real = format!(
            "M00/{}",
            target.strip_prefix(store.join("data")).unwrap().display()
        );
        assert_eq!(real.len(), 44, "the content has a normal name: {real}");
        assert!(binlog.contains(&format!(" C {real}\n")), "{binlog}");
        assert!(binlog.contains(&format!(" L {slave} {real}\n")), "{binlog}");
        assert!(download_from(&g, 0, slave).unwrap() == *content);
        let info = g.block_on(async {
            let mut c = fdfs_testkit::connect(g.storage_addr(0)).await;
            StorageClient::new(&mut c)
                .query_file_info("group1", slave, 0)
                .await
                .unwrap()
        });
        assert_eq!(info.file_size, content.len() as i64);
        assert_eq!(info.crc32, crc32fast::hash(content));
    }

    // A new member: the real files arrive as creates, the links as links.
    let new = g.add_storage();
    assert!(
        g.wait_all_active(DEADLINE),
        "the new member never turned ACTIVE"
    );
    for (slave, content) in &slaves {
        assert!(
            wait_until(|| download_from(&g, new, slave).is_ok_and(|d| d == *content)),
            "{slave} never reached the new member"
        );
        let link = g.store_path(new).join("data").join(&slave[4..]);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    let theirs = std::fs::read_to_string(g.store_path(new).join("data/sync/binlog.000")).unwrap();
    assert!(
        theirs.contains(&format!(" l {} M00/", slaves[0].0)),
        "{theirs}"
    );

    // Deleting a linked slave takes its target too, here and there.
    let (slave, _) = &slaves[0];
    g.block_on(async {
        let mut c = fdfs_testkit::connect(g.storage_addr(0)).await;
        StorageClient::new(&mut c)
            .delete("group1", slave)
            .await
            .unwrap();
    });
    assert!(std::fs::symlink_metadata(store.join("data").join(&slave[4..])).is_err());
    assert!(
        wait_until(|| download_from(&g, new, slave).is_err_and(|e| e.errno() == ENOENT)),
        "the delete never reached the new member"
    );
    assert!(download_from(&g, new, &plain_master.remote).unwrap() == b"plain master");
}

/// Disk recovery (FETCH_ONE_PATH_BINLOG, PROTOCOL.md §5.6) of a member
/// whose store path was wiped: the trunk names come back into the same
/// slots of its own trunk files.
#[test]
fn a_wiped_member_gets_its_trunk_files_back_by_disk_recovery() {
    let mut g = Group::start_with(GroupOptions {
        groups: vec![("group1", 2)],
        tweak_storage: Some(Arc::new(|c| {
            c.store_paths = vec![c.base_path.join("store0")];
            c.subdir_count_per_path = 2;
            // One thread, so that the binlog's order below is the order
            // of recovery.
            c.disk_recovery_threads = 1;
        })),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE), "group never turned ACTIVE");
    let store_root = |g: &Group, i: usize| g.store_path(i).join("store0");
    g.stop_storage(0);
    let ip: std::net::Ipv4Addr = g.storage_ip(0).parse().unwrap();
    let mut b = TrunkDirBuilder::new(&store_root(&g, 0), 0, TRUNK_FILE_BYTES).source(ip.octets());
    let files = lay_out(&mut b);
    let link = b.add_link((1, 1, 3), &files[0].remote, "txt", TS + 30);
    // A link met before its target, as one of several recovery threads
    // may: the target's name is learnt from a scratch layout of the same
    // slot (offset 0 of a trunk file of its own).
    let scratch = tempfile::tempdir().unwrap();
    let late_content = pattern(500, 11);
    let late_name = TrunkDirBuilder::new(scratch.path(), 0, TRUNK_FILE_BYTES)
        .source(ip.octets())
        .add((1, 1, 9), &late_content, "png", TS + 31)
        .remote;
    let early_link = b.add_link((1, 1, 3), &late_name, "txt", TS + 31);
    let late = b.add((1, 1, 9), &late_content, "png", TS + 31);
    assert_eq!(late.remote, late_name);
    b.append_binlog(&g.store_path(0));
    g.start_storage(0);
    for f in &files {
        assert!(
            wait_until(|| download_from(&g, 1, &f.remote).is_ok_and(|d| d == f.content)),
            "{} never replicated",
            f.remote
        );
    }

    g.stop_storage(1);
    let wiped = store_root(&g, 1);
    std::fs::remove_dir_all(&wiped).unwrap();
    std::fs::create_dir_all(&wiped).unwrap();
    g.start_storage(1);
    for f in &files {
        assert!(
            wait_until(|| download_from(&g, 1, &f.remote).is_ok_and(|d| d == f.content)),
            "{} was not recovered",
            f.remote
        );
        let trunk = std::fs::read(wiped.join(f.loc.trunk_file_relative_path())).unwrap();
        let start = f.loc.content_offset() as usize;
        assert!(trunk[start..start + f.content.len()] == f.content[..]);
    }
    // The links come back as link slots, not as copies of their targets.
    for (link, content) in [(&link, &files[0].content), (&early_link, &late_content)] {
        assert!(
            wait_until(|| download_from(&g, 1, &link.remote).is_ok_and(|d| d == *content)),
            "the link slot {} was not recovered",
            link.remote
        );
        let trunk = std::fs::read(wiped.join(link.loc.trunk_file_relative_path())).unwrap();
        assert_eq!(trunk[link.loc.offset as usize], b'L');
    }
}

/// One SYNC_CREATE_FILE (16) as a peer sends it; the answer's status.
fn sync_create(addr: std::net::SocketAddr, remote: &str, content: &[u8], ts: u32) -> u8 {
    fdfs_testkit::rt().block_on(fdfs_testkit::sync_create(addr, remote, content, ts))
}

/// Trunk design rule 4 on the wire: a replica receiving a trunk name
/// writes it into a free slot (creating the trunk file), recognises the
/// same file (EEXIST, as an existing file), and never overwrites a slot
/// that holds another file (EBUSY, which the sender retries; the slot keeps
/// its file, also once the refusal lasted long enough for the check for a
/// header that no file name has).
#[test]
fn a_replica_never_overwrites_a_slot_that_holds_another_file() {
    let cluster = fdfs_testkit::Cluster::start();
    let store = &cluster.store_paths[0];
    let mut b = TrunkDirBuilder::new(store, 0, TRUNK_FILE_BYTES);
    let held = b.add((0, 1, 1), b"the slot's own file", "txt", TS);
    // Names of other files, laid out in a builder of their own (another
    // member's view): the first takes the same slot as `held`.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut other = TrunkDirBuilder::new(elsewhere.path(), 0, TRUNK_FILE_BYTES);
    let rival = other.add((0, 1, 1), b"a rival for the slot", "txt", TS + 5);
    let fresh = other.add((1, 1, 9), b"into a new trunk file", "bin", TS + 6);
    assert_eq!(rival.loc.offset, held.loc.offset);

    let addr = cluster.storage_addr;
    const EEXIST: u8 = 17;
    // EBUSY, so the sender retries: the held file may be one deleted on
    // another member whose delete is still on the way (EEXIST only after
    // that wait; the slot is never overwritten).
    const EBUSY: u8 = 16;
    // The same file again: recognised, and recorded in the binlog.
    assert_eq!(sync_create(addr, &held.remote, &held.content, TS), EEXIST);
    assert_eq!(
        sync_create(addr, &rival.remote, &rival.content, TS + 5),
        EBUSY
    );
    // Refused for longer than the storage waits before it checks the slot
    // for a header no file name has: this one has a name, so it stays.
    let refused_since = Instant::now();
    assert!(
        wait_until(|| {
            sync_create(addr, &rival.remote, &rival.content, TS + 5) == EBUSY
                && refused_since.elapsed() > Duration::from_secs(7)
        }),
        "the rival was not refused for long"
    );
    assert_eq!(sync_create(addr, &fresh.remote, &fresh.content, TS + 6), 0);
    let trunk = store.join(fresh.loc.trunk_file_relative_path());
    assert!(std::fs::metadata(&trunk).unwrap().len() >= fresh.loc.content_offset());

    let rt = fdfs_testkit::rt();
    let get = |remote: &str| {
        rt.block_on(async {
            let mut c = fdfs_testkit::connect(addr).await;
            let mut out = Vec::new();
            StorageClient::new(&mut c)
                .download("group1", remote, 0, 0, &mut out)
                .await
                .map(|_| out)
        })
    };
    assert!(
        get(&held.remote).unwrap() == held.content,
        "the slot lost its file"
    );
    assert_eq!(status(get(&rival.remote)), ENOENT);
    assert!(get(&fresh.remote).unwrap() == fresh.content);
    let binlog =
        std::fs::read_to_string(cluster.storage_base.join("data/sync/binlog.000")).unwrap();
    assert!(
        binlog.contains(&format!(" c {}\n", fresh.remote)),
        "{binlog}"
    );
    assert!(
        binlog.contains(&format!(" c {}\n", held.remote)),
        "{binlog}"
    );
    assert!(!binlog.contains(&rival.remote), "{binlog}");
}

/// Disk recovery of linked slaves: the `L` lines of the peer's binlog make
/// the links again, pointing at the recovered real files.
#[test]
fn disk_recovery_makes_linked_slaves_links_again() {
    let mut g = Group::start_with(GroupOptions {
        groups: vec![("group1", 2)],
        tweak_tracker: Some(Arc::new(|c| c.store_slave_file_use_link = true)),
        tweak_storage: Some(Arc::new(|c| {
            c.store_paths = vec![c.base_path.join("store0")];
            c.subdir_count_per_path = 2;
        })),
        ..GroupOptions::default()
    });
    assert!(g.wait_all_active(DEADLINE), "group never turned ACTIVE");
    let slave = g.block_on(async {
        let mut c = fdfs_testkit::connect(g.storage_addr(0)).await;
        let mut sc = StorageClient::new(&mut c);
        let master = sc
            .upload(
                fdfs_client::UploadKind::Normal,
                -1,
                "png",
                &mut &b"master"[..],
                6,
            )
            .await
            .unwrap();
        sc.upload_slave(&master.remote, "_t", "png", &mut &b"thumb"[..], 5)
            .await
            .unwrap()
            .remote
    });
    assert!(
        wait_until(|| download_from(&g, 1, &slave).is_ok_and(|d| d == b"thumb")),
        "the slave never replicated"
    );
    g.stop_storage(1);
    let wiped = g.store_path(1).join("store0");
    std::fs::remove_dir_all(&wiped).unwrap();
    std::fs::create_dir_all(&wiped).unwrap();
    g.start_storage(1);
    assert!(
        wait_until(|| download_from(&g, 1, &slave).is_ok_and(|d| d == b"thumb")),
        "the slave was not recovered"
    );
    let link = wiped.join("data").join(&slave[4..]);
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "recovered as a copy, not a link"
    );
    assert!(std::fs::read_link(&link).unwrap().starts_with(&wiped));
}
