//! Criterion bench of the storage's upload write path at the system-call
//! level: which way of putting a finished upload under its name costs least
//! (issue #14, points 2 and 5).
//!
//! Every case writes a body into a file nobody can see under a file ID until
//! it is complete (the partial-file guarantee), then places it in one of
//! 16x16 `data/HH/HH` directories made once in setup:
//!
//! - `link`: create `data/.tmp/N.tmp`, write, link it into place (EEXIST
//!   never clobbers), unlink the temp name: today's sequence;
//! - `rename`: create the temp file, write, `renameat2(RENAME_NOREPLACE)`
//!   into place: one call instead of two, same no-clobber rule;
//! - `tmpfile`: `open(data/.tmp, O_TMPFILE)`, write, `linkat` the
//!   `/proc/self/fd/N` link into place: no temp name at all. Skipped, with a
//!   note, where the file system refuses O_TMPFILE.
//!
//! Each runs with and without a `statvfs` of the store path per upload (what
//! the storage does today to pick a path with room), and at 64 KB also with
//! an `fdatasync` before placing (the durability option). Every case does one
//! `fstat` for the mtime that goes into the file name, as the storage does.
//! The body is already in memory: no socket, no CRC, so only the file-system
//! sequence differs between cases.
//!
//! By default criterion gets wall time. With `WRITE_BENCH_CLOCK=cpu` it gets
//! the bench thread's CPU time (user + system) instead: what the server pays
//! per upload, and less disturbed by other load on the machine (an
//! fdatasync's wait for the disk does not count there).
//!
//! The tree lives in `$WRITE_BENCH_DIR` if set, else under Cargo's target
//! temp dir (on the same disk as the target dir, not tmpfs): the bench
//! prints the file system it measured. Placed files are removed in batches
//! outside the measured time so directories stay small. Run with
//! `cargo bench -p fdfs-storage --bench write_path` (add `-- --quick` for a
//! short run, or a filter such as `-- 64KB`).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustix::fs::{AtFlags, RenameFlags, CWD};

/// Subdirectories per level: 16x16 keeps setup to a fraction of a second.
const SUBDIRS_PER_LEVEL: usize = 16;
/// Body sizes measured, in bytes.
const BODY_BYTES: [usize; 3] = [8 * 1024, 64 * 1024, 128 * 1024];
/// The size at which the fdatasync cases run.
const SYNC_BODY_BYTES: usize = 64 * 1024;
/// As the storage's body chunk: bodies up to this size are one write.
const WRITE_CHUNK_BYTES: usize = 256 * 1024;
/// `statfs.f_type` of tmpfs, which would make the figures meaningless.
const TMPFS_MAGIC: i64 = 0x0102_1994;

#[derive(Clone, Copy, Debug)]
enum Placement {
    Link,
    Rename,
    TmpFile,
}

impl Placement {
    fn label(self) -> &'static str {
        match self {
            Placement::Link => "link",
            Placement::Rename => "rename",
            Placement::TmpFile => "tmpfile",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    placement: Placement,
    statvfs: bool,
    fdatasync: bool,
}

impl Case {
    fn label(self) -> String {
        format!(
            "{}{}{}",
            self.placement.label(),
            if self.statvfs { "+statvfs" } else { "" },
            if self.fdatasync { "+fdatasync" } else { "" }
        )
    }
}

/// A store path's `data` tree with its `.tmp` directory and 16x16 subdirs.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tmp: PathBuf,
    subdirs: Vec<PathBuf>,
    seq: u64,
}

impl Tree {
    fn new(base: &Path) -> Self {
        let dir = tempfile::tempdir_in(base).expect("bench tree dir");
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        let tmp = data.join(".tmp");
        std::fs::create_dir_all(&tmp).expect("create .tmp");
        let mut subdirs = Vec::with_capacity(SUBDIRS_PER_LEVEL * SUBDIRS_PER_LEVEL);
        for high in 0..SUBDIRS_PER_LEVEL {
            for low in 0..SUBDIRS_PER_LEVEL {
                let sub = data.join(format!("{high:02X}")).join(format!("{low:02X}"));
                std::fs::create_dir_all(&sub).expect("create subdir");
                subdirs.push(sub);
            }
        }
        Tree {
            _dir: dir,
            root,
            tmp,
            subdirs,
            seq: 0,
        }
    }

    /// Writes one upload the way `case` says; returns its final path.
    fn upload(&mut self, case: Case, body: &[u8]) -> std::io::Result<PathBuf> {
        self.seq += 1;
        if case.statvfs {
            std::hint::black_box(fdfs_util::sys::fs_space_bytes(&self.root)?);
        }
        let subdir = &self.subdirs[self.seq as usize % self.subdirs.len()];
        let final_path = subdir.join(format!("wKgAAWdQ{:016x}.jpg", self.seq));
        match case.placement {
            Placement::Link | Placement::Rename => {
                let temp = self.tmp.join(format!("{:016x}.tmp", self.seq));
                let file = std::fs::File::create(&temp)?;
                let file = write_body(file, body, case.fdatasync)?;
                drop(file);
                if let Placement::Link = case.placement {
                    std::fs::hard_link(&temp, &final_path)?;
                    std::fs::remove_file(&temp)?;
                } else {
                    rustix::fs::renameat_with(
                        CWD,
                        &temp,
                        CWD,
                        &final_path,
                        RenameFlags::NOREPLACE,
                    )?;
                }
            }
            Placement::TmpFile => {
                let file = fdfs_util::sys::open_unnamed_in(&self.tmp)?;
                let file = write_body(file, body, case.fdatasync)?;
                rustix::fs::linkat(
                    CWD,
                    format!("/proc/self/fd/{}", file.as_raw_fd()),
                    CWD,
                    &final_path,
                    AtFlags::SYMLINK_FOLLOW,
                )?;
                drop(file);
            }
        }
        Ok(final_path)
    }
}

/// Writes `body`, optionally fdatasyncs, and reads the mtime the file name
/// carries.
fn write_body(
    mut file: std::fs::File,
    body: &[u8],
    fdatasync: bool,
) -> std::io::Result<std::fs::File> {
    for chunk in body.chunks(WRITE_CHUNK_BYTES) {
        file.write_all(chunk)?;
    }
    if fdatasync {
        rustix::fs::fdatasync(&file)?;
    }
    std::hint::black_box(rustix::fs::fstat(&file)?.st_mtime);
    Ok(file)
}

/// What criterion is given as an iteration's time.
#[derive(Clone, Copy, Debug)]
enum Clock {
    Wall,
    ThreadCpu,
}

impl Clock {
    fn from_env() -> Self {
        match std::env::var("WRITE_BENCH_CLOCK").as_deref() {
            Ok("cpu") => Clock::ThreadCpu,
            Ok("wall") | Err(_) => Clock::Wall,
            Ok(other) => panic!("WRITE_BENCH_CLOCK={other}: use wall or cpu"),
        }
    }

    /// Time since an arbitrary start, comparable within one clock.
    fn now(self) -> Duration {
        match self {
            Clock::Wall => WALL_START.with(|start| start.elapsed()),
            Clock::ThreadCpu => {
                let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
                Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
            }
        }
    }
}

thread_local! {
    static WALL_START: Instant = Instant::now();
}

/// Where the trees go: `$WRITE_BENCH_DIR`, else Cargo's target temp dir.
fn bench_base() -> PathBuf {
    let base = std::env::var_os("WRITE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench base dir");
    base
}

/// Says which file system is measured; tmpfs would not be the data disk.
fn describe_fs(base: &Path) {
    let st = rustix::fs::statfs(base).expect("statfs of the bench dir");
    let f_type = st.f_type as i64;
    println!(
        "write_path: trees under {} (statfs f_type {f_type:#x})",
        base.display()
    );
    if f_type == TMPFS_MAGIC {
        println!("write_path: WARNING: tmpfs, not a disk; set WRITE_BENCH_DIR to a disk path");
    }
}

/// True when `base`'s file system takes O_TMPFILE + linkat and
/// RENAME_NOREPLACE; prints a note for each it refuses.
fn supported(base: &Path, placement: Placement) -> bool {
    let mut tree = Tree::new(base);
    let case = Case {
        placement,
        statvfs: false,
        fdatasync: false,
    };
    match tree.upload(case, b"probe") {
        Ok(_) => true,
        Err(e) => {
            println!(
                "write_path: skipping {}: the file system refuses it ({e})",
                placement.label()
            );
            false
        }
    }
}

fn write_path(c: &mut Criterion) {
    let base = bench_base();
    describe_fs(&base);
    let clock = Clock::from_env();
    println!("write_path: measuring {clock:?} time");
    let placements: Vec<Placement> = [Placement::Link, Placement::Rename, Placement::TmpFile]
        .into_iter()
        .filter(|&p| supported(&base, p))
        .collect();

    let mut group = c.benchmark_group("write_path");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let run = |group: &mut criterion::BenchmarkGroup<_>, case: Case, size: usize| {
        let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        let id = BenchmarkId::new(case.label(), format!("{}KB", size / 1024));
        group.bench_with_input(id, &body, |b, body| {
            let mut tree = Tree::new(&base);
            b.iter_custom(|iters| {
                let mut placed = Vec::with_capacity(iters as usize);
                let start = clock.now();
                for _ in 0..iters {
                    placed.push(tree.upload(case, body).expect("upload"));
                }
                let took = clock.now().saturating_sub(start);
                for path in placed {
                    let _ = std::fs::remove_file(path);
                }
                took
            });
            let left = std::fs::read_dir(&tree.tmp).expect("read .tmp").count();
            assert_eq!(left, 0, "a temp file was left behind");
        });
    };
    for &size in &BODY_BYTES {
        for &placement in &placements {
            for statvfs in [false, true] {
                let case = Case {
                    placement,
                    statvfs,
                    fdatasync: false,
                };
                run(&mut group, case, size);
            }
        }
    }
    for &placement in &placements {
        let case = Case {
            placement,
            statvfs: false,
            fdatasync: true,
        };
        run(&mut group, case, SYNC_BODY_BYTES);
    }
    group.finish();
}

criterion_group!(benches, write_path);
criterion_main!(benches);
