//! Replays the committed fuzz seeds (`fuzz/seeds/<target>/`) and every
//! saved crash (`fuzz/regressions/<target>/`) through the stable target
//! functions: what CI runs instead of the fuzzer.

use std::path::{Path, PathBuf};

use fdfs_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Files of `dir`, sorted; a missing dir is none.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read corpus dir").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
}

fn replay(kind: &str, require_inputs: bool) {
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join(kind).join(name);
        let files = inputs(&dir);
        assert!(
            !require_inputs || !files.is_empty(),
            "no {kind} inputs for target {name} in {}",
            dir.display()
        );
        for file in files {
            let data = std::fs::read(&file).expect("read input");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their target: {failures:#?}"
    );
}

#[test]
fn every_target_has_seeds_and_they_pass() {
    replay("seeds", true);
}

#[test]
fn saved_crashes_stay_fixed() {
    replay("regressions", false);
}

#[test]
fn every_target_has_a_cargo_fuzz_entry() {
    for (name, _) in TARGETS {
        let entry = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&entry).unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
        assert!(
            text.contains(&format!("fdfs_fuzz_targets::{name}(")),
            "{}",
            entry.display()
        );
    }
}
