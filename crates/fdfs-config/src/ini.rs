//! The FastDFS ini dialect (libfastcommon `ini_file_reader`, PROTOCOL.md
//! §10.1): line-oriented `key = value`, `#` comments, `#include`, `[section]`
//! headers, repeated keys, and no inline comments.
//!
//! This module only splits text into items; typing values is `values`' job
//! and knowing which keys exist is the typed confs' job.

use std::path::{Path, PathBuf};

use crate::ConfigError;

/// Keys longer than this are cut, as the original's fixed 64-byte name buffer does.
pub const MAX_KEY_BYTES: usize = 63;
/// Values longer than this are cut, as the original's 256-byte value buffer does.
pub const MAX_VALUE_BYTES: usize = 255;
/// Nesting limit for `#include`; a backstop behind the cycle check so that a
/// chain of distinct files cannot recurse without bound.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Most files one configuration may read, the main file included: without
/// it 16 levels of a file including the next twice read 2^16 files
/// (the depth limit bounds nesting, not fan-out).
pub const MAX_INCLUDED_FILES: usize = 256;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniItem {
    pub key: String,
    pub value: String,
    /// Display path of the file the line came from (an included file keeps
    /// its own name so messages point at the right place).
    pub file: String,
    /// 1-based line number within `file`.
    pub line: usize,
}

/// A `[name]` section; repeated headers with the same name are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSection {
    pub name: String,
    pub items: Vec<IniItem>,
}

/// A parsed configuration: global items and sections, each in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IniFile {
    origin: PathBuf,
    global: Vec<IniItem>,
    sections: Vec<IniSection>,
    /// Files read so far, for [`MAX_INCLUDED_FILES`].
    files_read: usize,
}

impl IniFile {
    /// Reads and parses `path`, following `#include` directives.
    pub fn load(path: &Path) -> Result<IniFile, ConfigError> {
        let mut ini = IniFile {
            origin: path.to_path_buf(),
            ..IniFile::default()
        };
        let mut stack = Vec::new();
        ini.load_file(path, &mut stack)?;
        Ok(ini)
    }

    /// Parses `text` as if it had been read from `origin`: `origin` names the
    /// file in messages and anchors relative `#include`s.
    pub fn parse_str(text: &str, origin: &Path) -> Result<IniFile, ConfigError> {
        let mut ini = IniFile {
            origin: origin.to_path_buf(),
            ..IniFile::default()
        };
        let mut stack = vec![identity(origin)];
        ini.files_read = 1;
        ini.parse_text(text, origin, &mut stack)?;
        Ok(ini)
    }

    /// The path this configuration was loaded from (or parsed as).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// `origin()` as shown in messages.
    pub fn display_name(&self) -> String {
        self.origin.display().to_string()
    }

    /// Global-section lookup; the last occurrence wins.
    pub fn get(&self, key: &str) -> Option<&IniItem> {
        self.global.iter().rev().find(|i| i.key == key)
    }

    /// All global occurrences of a repeatable key (e.g. `tracker_server`), in
    /// file order.
    pub fn get_all(&self, key: &str) -> Vec<&IniItem> {
        self.global.iter().filter(|i| i.key == key).collect()
    }

    /// Lookup inside `[section]` (an empty name means the global section);
    /// the last occurrence wins.
    pub fn section_get(&self, section: &str, key: &str) -> Option<&IniItem> {
        self.section_items(section)
            .iter()
            .rev()
            .find(|i| i.key == key)
    }

    /// All occurrences of `key` inside `[section]`, in file order.
    pub fn section_get_all(&self, section: &str, key: &str) -> Vec<&IniItem> {
        self.section_items(section)
            .iter()
            .filter(|i| i.key == key)
            .collect()
    }

    /// Items of `[section]` in file order (empty if there is no such section;
    /// an empty name means the global section).
    pub fn section_items(&self, section: &str) -> &[IniItem] {
        if section.is_empty() {
            return &self.global;
        }
        self.sections
            .iter()
            .find(|s| s.name == section)
            .map(|s| s.items.as_slice())
            .unwrap_or(&[])
    }

    /// Section names in order of first appearance.
    pub fn sections(&self) -> Vec<&str> {
        self.sections.iter().map(|s| s.name.as_str()).collect()
    }

    /// Global items in file order (included files' items where the include was).
    pub fn keys(&self) -> impl Iterator<Item = &IniItem> {
        self.global.iter()
    }

    fn load_file(&mut self, path: &Path, stack: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Conf files in the wild are sometimes not UTF-8 (GBK comments);
        // values we care about are ASCII, so a lossy read is enough.
        let text = String::from_utf8_lossy(&bytes);
        self.files_read += 1;
        stack.push(identity(path));
        let result = self.parse_text(&text, path, stack);
        stack.pop();
        result
    }

    fn parse_text(
        &mut self,
        text: &str,
        origin: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), ConfigError> {
        let file = origin.display().to_string();
        let dir = origin.parent().unwrap_or_else(|| Path::new(""));
        // Index into `self.sections`; `None` is the global section. Every
        // file, included or not, starts in the global section.
        let mut section: Option<usize> = None;

        for (idx, raw) in text.split('\n').enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('#') {
                if let Some(target) = include_target(line) {
                    self.include(target, dir, &file, line_no, stack)?;
                }
                // Other `#@...` directives (annotations, #@if, #@for, #@set)
                // are not used by shipped configs; treated as comments.
                continue;
            }
            if line.len() >= 2 && line.starts_with('[') && line.ends_with(']') {
                let name = line[1..line.len() - 1].trim();
                section = if name.is_empty() {
                    None
                } else {
                    Some(self.section_index(name))
                };
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let key = truncate(k.trim(), MAX_KEY_BYTES).trim_end();
            if key.is_empty() {
                continue;
            }
            let item = IniItem {
                key: key.to_string(),
                value: truncate(v.trim(), MAX_VALUE_BYTES).trim_end().to_string(),
                file: file.clone(),
                line: line_no,
            };
            match section {
                None => self.global.push(item),
                Some(i) => self.sections[i].items.push(item),
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        target: &str,
        dir: &Path,
        file: &str,
        line_no: usize,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), ConfigError> {
        if target.is_empty() {
            return Err(ConfigError::Other(format!(
                "{file}:{line_no}: #include without a file name"
            )));
        }
        if target.starts_with("http://") || target.starts_with("https://") {
            return Err(ConfigError::Other(format!(
                "{file}:{line_no}: #include of a URL (`{target}`) is not supported"
            )));
        }
        let path = if Path::new(target).is_absolute() {
            PathBuf::from(target)
        } else {
            dir.join(target)
        };
        let id = identity(&path);
        if stack.contains(&id) {
            let chain: Vec<String> = stack
                .iter()
                .chain(std::iter::once(&id))
                .map(|p| p.display().to_string())
                .collect();
            return Err(ConfigError::Other(format!(
                "{file}:{line_no}: #include cycle: {}",
                chain.join(" -> ")
            )));
        }
        if self.files_read >= MAX_INCLUDED_FILES {
            return Err(ConfigError::Other(format!(
                "{file}:{line_no}: more than {MAX_INCLUDED_FILES} files read through #include"
            )));
        }
        if stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::Other(format!(
                "{file}:{line_no}: #include nested deeper than {MAX_INCLUDE_DEPTH} files"
            )));
        }
        self.load_file(&path, stack)
    }

    fn section_index(&mut self, name: &str) -> usize {
        if let Some(i) = self.sections.iter().position(|s| s.name == name) {
            return i;
        }
        self.sections.push(IniSection {
            name: name.to_string(),
            items: Vec::new(),
        });
        self.sections.len() - 1
    }
}

/// `#include <file>`: exactly `#include` followed by a space or tab.
fn include_target(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("#include")?;
    if rest.starts_with(' ') || rest.starts_with('\t') {
        Some(rest.trim())
    } else {
        None
    }
}

/// A stable identity for cycle detection: the canonical path when the file
/// exists, else the path as written.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Cuts `s` to at most `max` bytes without splitting a UTF-8 character.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> IniFile {
        IniFile::parse_str(text, Path::new("t.conf")).unwrap()
    }

    #[test]
    fn basic_items_comments_and_blank_lines() {
        let ini = parse("# comment\n\n  port = 22122  \r\nbase_path=/var/fdfs\nno equals here\n");
        assert_eq!(ini.get("port").unwrap().value, "22122");
        assert_eq!(ini.get("port").unwrap().line, 3);
        assert_eq!(ini.get("port").unwrap().file, "t.conf");
        assert_eq!(ini.get("base_path").unwrap().value, "/var/fdfs");
        assert_eq!(ini.keys().count(), 2);
    }

    #[test]
    fn no_inline_comments() {
        let ini = parse("port = 22122 # x\nsecret = a#b\nurl = x=y\n");
        assert_eq!(ini.get("port").unwrap().value, "22122 # x");
        assert_eq!(ini.get("secret").unwrap().value, "a#b");
        assert_eq!(ini.get("url").unwrap().value, "x=y");
    }

    #[test]
    fn last_occurrence_wins_and_get_all_keeps_order() {
        let ini =
            parse("port=1\ntracker_server=a:1\nport=2\ntracker_server=b:2\ntracker_server=c:3\n");
        assert_eq!(ini.get("port").unwrap().value, "2");
        let all: Vec<_> = ini
            .get_all("tracker_server")
            .iter()
            .map(|i| i.value.as_str())
            .collect();
        assert_eq!(all, ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn sections_merge_and_empty_header_returns_to_global() {
        let ini = parse(
            "a=1\n[access-log]\nenabled=true\n[]\nb=2\n[error-log]\nx=1\n[access-log]\ntime_precision=us\n",
        );
        assert_eq!(ini.sections(), ["access-log", "error-log"]);
        assert_eq!(
            ini.section_get("access-log", "enabled").unwrap().value,
            "true"
        );
        assert_eq!(
            ini.section_get("access-log", "time_precision")
                .unwrap()
                .value,
            "us"
        );
        assert_eq!(ini.get("b").unwrap().value, "2");
        assert!(ini.get("enabled").is_none());
        assert!(ini.section_get("nope", "x").is_none());
    }

    #[test]
    fn truncation() {
        let key = "k".repeat(100);
        let value = "v".repeat(400);
        let ini = parse(&format!("{key}={value}\n"));
        let item = ini.keys().next().unwrap();
        assert_eq!(item.key.len(), MAX_KEY_BYTES);
        assert_eq!(item.value.len(), MAX_VALUE_BYTES);
    }

    #[test]
    fn include_directive_needs_space_or_tab() {
        let ini = parse("#includefoo.conf\n#include_x\nport=1\n");
        assert_eq!(ini.get("port").unwrap().value, "1");
    }

    #[test]
    fn include_resolution_relative_to_including_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("main.conf"),
            "port=1\n[access-log]\n#include sub/a.conf\nenabled=true\n",
        )
        .unwrap();
        // a.conf includes b.conf relative to its own directory (sub/).
        std::fs::write(dir.path().join("sub/a.conf"), "x=1\n#include\tb.conf\n").unwrap();
        std::fs::write(dir.path().join("sub/b.conf"), "y=2\nport=3\n").unwrap();
        let ini = IniFile::load(&dir.path().join("main.conf")).unwrap();
        assert_eq!(ini.get("x").unwrap().value, "1");
        assert_eq!(ini.get("y").unwrap().value, "2");
        assert!(ini.get("y").unwrap().file.ends_with("b.conf"));
        assert_eq!(ini.get("y").unwrap().line, 1);
        // The included port comes later in file order, so it wins.
        assert_eq!(ini.get("port").unwrap().value, "3");
        // Included items go to the global section; the including file's
        // section continues afterwards.
        assert_eq!(
            ini.section_get("access-log", "enabled").unwrap().value,
            "true"
        );
        assert!(ini.section_get("access-log", "x").is_none());
    }

    #[test]
    fn include_from_parse_str_uses_origin_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("http.conf"), "http.x=1\n").unwrap();
        let ini =
            IniFile::parse_str("#include http.conf\n", &dir.path().join("virtual.conf")).unwrap();
        assert_eq!(ini.get("http.x").unwrap().value, "1");
    }

    #[test]
    fn missing_include_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.conf"), "#include nope.conf\n").unwrap();
        let err = IniFile::load(&dir.path().join("main.conf")).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope.conf"));
    }

    #[test]
    fn include_cycle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.conf"), "a=1\n#include b.conf\n").unwrap();
        std::fs::write(dir.path().join("b.conf"), "b=1\n#include a.conf\n").unwrap();
        let err = IniFile::load(&dir.path().join("a.conf")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cycle"), "{msg}");
        assert!(msg.contains("b.conf:2"), "{msg}");

        std::fs::write(dir.path().join("self.conf"), "#include self.conf\n").unwrap();
        let err = IniFile::load(&dir.path().join("self.conf")).unwrap_err();
        assert!(err.to_string().contains("cycle"));
    }

    /// Fuzz finding (fuzz/regressions/conf_include/fanout): each level
    /// including the next twice stays within the depth limit yet reads
    /// 2^depth files.
    #[test]
    fn include_fan_out_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let levels = MAX_INCLUDE_DEPTH - 1;
        for i in 0..levels {
            let next = format!("#include {}.conf\n", i + 1);
            std::fs::write(
                dir.path().join(format!("{i}.conf")),
                format!("k{i}=1\n{next}{next}"),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join(format!("{levels}.conf")), "leaf=1\n").unwrap();
        let err = IniFile::load(&dir.path().join("0.conf")).unwrap_err();
        assert!(err.to_string().contains("more than 256 files"), "{err}");

        // A wide but small tree still loads.
        std::fs::write(
            dir.path().join("wide.conf"),
            "#include 15.conf\n".repeat(200),
        )
        .unwrap();
        let ini = IniFile::load(&dir.path().join("wide.conf")).unwrap();
        assert_eq!(ini.get_all("leaf").len(), 200);
    }

    /// Fuzz finding (fuzz/regressions/conf_include/key_cut_before_whitespace):
    /// cutting a long key or value at its byte limit could leave
    /// whitespace at its end.
    #[test]
    fn cut_keys_and_values_are_trimmed_again() {
        let key = format!("{}{}x", "k".repeat(MAX_KEY_BYTES - 2), " ".repeat(5));
        let value = format!("{}{}y", "v".repeat(MAX_VALUE_BYTES - 1), "\t".repeat(3));
        let ini = parse(&format!("{key} = {value}\n"));
        let item = ini.keys().next().unwrap();
        assert_eq!(item.key, "k".repeat(MAX_KEY_BYTES - 2));
        assert_eq!(item.value, "v".repeat(MAX_VALUE_BYTES - 1));
    }

    #[test]
    fn include_url_is_rejected() {
        let err =
            IniFile::parse_str("#include http://x/y.conf\n", Path::new("t.conf")).unwrap_err();
        assert!(err.to_string().contains("t.conf:1"));
    }

    proptest! {
        #[test]
        fn parse_str_never_panics(text in "\\PC*") {
            let dir = std::env::temp_dir().join("fdfs-config-proptest-nonexistent");
            let _ = IniFile::parse_str(&text, &dir.join("x.conf"));
        }

        #[test]
        fn parse_str_never_panics_on_ini_like_text(
            lines in proptest::collection::vec("[ \\t]*(\\[[a-z\\-]*\\]|[a-z_.]{0,70}[ ]*=[ ]*[^\\n]{0,300}|# [^\\n]{0,10})", 0..20)
        ) {
            let text = lines.join("\n");
            let ini = IniFile::parse_str(&text, Path::new("p.conf")).unwrap();
            for item in ini.keys() {
                prop_assert!(item.key.len() <= MAX_KEY_BYTES);
                prop_assert!(item.value.len() <= MAX_VALUE_BYTES);
            }
        }
    }
}
