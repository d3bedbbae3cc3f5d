//! Target `conf_include`: the ini reader with `#include`, on real files in
//! a temp dir, then the typed tracker, storage, client and HTTP confs.
//! The input is up to [`MAX_FILES`] files separated by NUL bytes: the first
//! is `main.conf`, the others `1.conf`, `2.conf`, ... Inputs that would
//! include a file outside the temp dir are skipped.

use std::path::Path;

use fdfs_config::ini::{IniFile, MAX_INCLUDED_FILES, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// Files one input may spell.
const MAX_FILES: usize = 8;

pub fn conf_include(data: &[u8]) {
    let texts: Vec<&[u8]> = data.splitn(MAX_FILES, |&b| b == 0).collect();
    if texts.iter().any(|t| escapes_dir(t)) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let names: Vec<String> = (0..texts.len())
        .map(|i| {
            if i == 0 {
                "main.conf".to_string()
            } else {
                format!("{i}.conf")
            }
        })
        .collect();
    for (name, text) in names.iter().zip(&texts) {
        std::fs::write(dir.path().join(name), text).expect("write conf");
    }
    let main = dir.path().join("main.conf");
    let Ok(ini) = IniFile::load(&main) else {
        return;
    };
    check_items(&ini, dir.path(), &texts);
    let _ = fdfs_config::TrackerConf::from_ini(&ini);
    let _ = fdfs_config::StorageConf::from_ini(&ini);
    let _ = fdfs_config::ClientConf::from_ini(&ini);
    let _ = fdfs_config::HttpConf::from_ini(&ini);
}

/// True when a `#include` line names anything but a plain file in the dir.
fn escapes_dir(text: &[u8]) -> bool {
    String::from_utf8_lossy(text).split('\n').any(|line| {
        line.trim().strip_prefix("#include").is_some_and(|target| {
            let t = target.trim();
            t.contains('/') || t.contains('\\') || t.starts_with('.') || t.contains(':')
        })
    })
}

fn check_items(ini: &IniFile, dir: &Path, texts: &[&[u8]]) {
    // At most MAX_INCLUDED_FILES files are read, none longer than the
    // longest input file.
    let most_lines = texts.iter().map(|t| t.split(|&b| b == b'\n').count()).max();
    let items = ini.keys().count()
        + ini
            .sections()
            .iter()
            .map(|s| ini.section_items(s).len())
            .sum::<usize>();
    assert!(
        items <= MAX_INCLUDED_FILES * most_lines.unwrap_or(0),
        "{items} items: #include fan-out is not bounded"
    );
    let all = ini.keys().chain(
        ini.sections()
            .into_iter()
            .flat_map(|s| ini.section_items(s)),
    );
    for item in all {
        assert!(
            !item.key.is_empty() && item.key.len() <= MAX_KEY_BYTES,
            "{item:?}"
        );
        assert!(item.value.len() <= MAX_VALUE_BYTES, "{item:?}");
        assert_eq!(item.key.trim(), item.key, "untrimmed key {item:?}");
        assert_eq!(item.value.trim(), item.value, "untrimmed value {item:?}");
        assert!(!item.key.contains('\n') && !item.value.contains('\n'));
        let file = Path::new(&item.file);
        assert_eq!(
            file.parent(),
            Some(dir),
            "item from outside the dir: {item:?}"
        );
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let index = if name == "main.conf" {
            0
        } else {
            name.trim_end_matches(".conf")
                .parse::<usize>()
                .expect("our file name")
        };
        let lines = texts[index].split(|&b| b == b'\n').count();
        assert!(
            (1..=lines).contains(&item.line),
            "line out of the file: {item:?}"
        );
    }
}
