//! Upload contents: random slices of one shared block or the files of a
//! directory, and the small generator that picks sizes and files.

use std::path::{Path, PathBuf};

use super::BenchArgs;

/// Small deterministic generator: content and sizes only need variety.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A size uniform in `min..=max` from one random draw.
fn uniform_size(min: usize, max: usize, r: u64) -> usize {
    let span = (max - min) as u64 + 1;
    min + (r % span) as usize
}

/// Where upload contents come from.
pub(super) enum Payload {
    /// Slices of one shared block of random bytes, sizes uniform in min..=max.
    Random {
        pool: Vec<u8>,
        min: usize,
        max: usize,
    },
    /// The files of a directory: (contents, extension).
    Files(Vec<(Vec<u8>, String)>),
}

const POOL_SLACK: usize = 4096;

impl Payload {
    pub(super) fn random(min: usize, max: usize) -> Self {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let pool = (0..max + POOL_SLACK).map(|_| rng.next() as u8).collect();
        Payload::Random { pool, min, max }
    }

    fn from_dir(dir: &Path) -> Result<Self, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            files.push((data, ext_of(&p)));
        }
        if files.is_empty() {
            return Err(format!("{}: no files", dir.display()));
        }
        Ok(Payload::Files(files))
    }

    /// The bytes and extension of the next upload.
    pub(super) fn pick(&self, rng: &mut Rng) -> (&[u8], &str) {
        match self {
            Payload::Random { pool, min, max } => {
                let size = uniform_size(*min, *max, rng.next());
                let off = (rng.next() % POOL_SLACK as u64) as usize;
                (&pool[off..off + size], "jpg")
            }
            Payload::Files(files) => {
                let (data, ext) = &files[(rng.next() % files.len() as u64) as usize];
                (data, ext)
            }
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Payload::Random { min, max, .. } if min == max => format!("fixed {min} B"),
            Payload::Random { min, max, .. } => format!("uniform {min}-{max} B"),
            Payload::Files(f) => {
                let total: usize = f.iter().map(|(d, _)| d.len()).sum();
                format!("{} files of a directory, {total} B in all", f.len())
            }
        }
    }
}

/// The extension FastDFS will store for a local file ("bin" when unusable).
fn ext_of(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && fdfs_proto::fileid::is_valid_ext(e))
        .unwrap_or("bin")
        .to_string()
}

/// The payload the command line asks for.
pub(super) fn payload(args: &BenchArgs) -> Result<Payload, String> {
    if let Some(dir) = &args.files {
        return Payload::from_dir(dir);
    }
    let (min, max) = match args.size {
        Some(n) => (n, n),
        None => (args.min_size, args.max_size),
    };
    if min > max {
        return Err("need --min-size <= --max-size".into());
    }
    Ok(Payload::random(min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_sizes_stay_in_range_and_cover_it() {
        let mut rng = Rng(7);
        let (min, max) = (8 * 1024, 128 * 1024);
        let sizes: Vec<usize> = (0..20_000)
            .map(|_| uniform_size(min, max, rng.next()))
            .collect();
        assert!(sizes.iter().all(|&s| (min..=max).contains(&s)));
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        let want = (min + max) as f64 / 2.0;
        assert!((mean - want).abs() / want < 0.02, "mean {mean}");
        assert!(sizes.iter().any(|&s| s < min + 1024));
        assert!(sizes.iter().any(|&s| s > max - 1024));
        assert_eq!(uniform_size(5, 5, 12345), 5);
    }

    #[test]
    fn payload_random_and_files() {
        let p = Payload::random(100, 200);
        let mut rng = Rng(3);
        for _ in 0..100 {
            let (d, ext) = p.pick(&mut rng);
            assert!((100..=200).contains(&d.len()));
            assert_eq!(ext, "jpg");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"hello").unwrap();
        std::fs::write(dir.path().join("b.toolongext"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let p = Payload::from_dir(dir.path()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let (d, ext) = p.pick(&mut rng);
            seen.insert((d.to_vec(), ext.to_string()));
        }
        let want: std::collections::BTreeSet<_> = [
            (b"hello".to_vec(), "png".to_string()),
            (b"x".to_vec(), "bin".to_string()),
        ]
        .into();
        assert_eq!(seen, want);
        let empty = tempfile::tempdir().unwrap();
        assert!(Payload::from_dir(empty.path()).is_err());
    }
}
