//! Criterion bench of the storage write path for 8 KB / 64 KB / 1 MB files,
//! with fsync on and off.
//!
//! The upload code itself (`ops::upload::receive_to_temp` and
//! `commit_new_name`) is private to the crate and needs a live connection, so
//! this bench replicates its file-system sequence with `std::fs`, using the
//! public `store` helpers for the tree and the file name:
//!
//! 1. create `data/.tmp/<random>.tmp`,
//! 2. write the body in chunks of at most 256 KB while updating a CRC32,
//! 3. optionally `sync_all` (the storage does so when the file reaches
//!    `fsync_after_written_bytes`),
//! 4. `stat` the temp file (mtime goes into the name), build the remote name,
//! 5. hard-link it to `data/HH/HH/<name>` and remove the temp file.
//!
//! Final files are removed outside the measured time, in batches, so the
//! directory does not grow without bound. Run with
//! `cargo bench -p fdfs-storage --bench write_path`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fdfs_proto::FileNameRecord;
use fdfs_storage::store::{self, StorePath};

/// As `ops::BODY_CHUNK_BYTES`.
const CHUNK: usize = 256 * 1024;

struct Tree {
    _dir: tempfile::TempDir,
    path: StorePath,
    seq: u64,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = StorePath {
            root: dir.path().to_path_buf(),
            readonly: false,
        };
        // 16x16 directories keep setup quick; the sequence is the same as with 256.
        if store::init_tree(&path, 16).expect("init_tree") {
            store::build_tree(&path, 16).expect("build_tree");
        }
        Tree {
            _dir: dir,
            path,
            seq: 0,
        }
    }

    /// One upload as the storage writes it; returns the final path.
    fn write_one(&mut self, data: &[u8], fsync: bool) -> std::io::Result<PathBuf> {
        self.seq += 1;
        let tmp = self.path.tmp_dir().join(format!("{:016x}.tmp", self.seq));
        let mut file = std::fs::File::create(&tmp)?;
        let mut hasher = crc32fast::Hasher::new();
        for chunk in data.chunks(CHUNK) {
            hasher.update(chunk);
            file.write_all(chunk)?;
        }
        if fsync {
            file.sync_all()?;
        }
        drop(file);
        let mtime = std::fs::metadata(&tmp)?
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let record = FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: mtime as u32,
            size_field: fdfs_proto::fileid::normal_size_field(data.len() as u64, self.seq as u32),
            crc32: hasher.finalize(),
        };
        let dir = ((self.seq >> 4) as u8 & 0x0F, self.seq as u8 & 0x0F);
        let ext7 = fdfs_proto::fileid::format_ext7("jpg", || 1);
        let remote = store::remote_name(0, dir, &record, &ext7);
        let final_path = store::file_path(&self.path.root, &remote[4..]);
        std::fs::hard_link(&tmp, &final_path)?;
        std::fs::remove_file(&tmp)?;
        Ok(final_path)
    }
}

fn cleanup(paths: &mut Vec<PathBuf>) {
    for p in paths.drain(..) {
        let _ = std::fs::remove_file(&p);
    }
}

fn write_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("storage_write");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for &size in &[8 * 1024usize, 64 * 1024, 1024 * 1024] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        for fsync in [false, true] {
            let label = if fsync { "fsync" } else { "no_fsync" };
            let id = BenchmarkId::new(label, format!("{}KB", size / 1024));
            g.bench_with_input(id, &data, |b, data| {
                let mut tree = Tree::new();
                b.iter_custom(|iters| {
                    let mut made = Vec::with_capacity(iters as usize);
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        made.push(tree.write_one(data, fsync).expect("write"));
                    }
                    let took = t0.elapsed();
                    cleanup(&mut made);
                    took
                });
                assert!(Path::new(&tree.path.tmp_dir()).is_dir());
            });
        }
    }
    g.finish();
}

criterion_group!(benches, write_path);
criterion_main!(benches);
