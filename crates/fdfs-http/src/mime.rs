//! Content-Type by file extension from a `mime.types` table ("type ext1
//! ext2 ...", `#` comments; PROTOCOL.md §9.4). Lookups ignore case.

use std::collections::HashMap;
use std::path::Path;

/// The table shipped as conf/mime.types, used when no
/// `http.mime_types_filename` is configured.
const BUILTIN: &str = include_str!("../../../conf/mime.types");

/// Extension (lower case, no dot) → content type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MimeTypes {
    by_ext: HashMap<String, String>,
}

impl MimeTypes {
    /// Parses the text of a mime.types file. Later lines win on duplicates.
    /// Tolerates nginx's `types { ... }` syntax (braces and `;` are ignored).
    pub fn parse(text: &str) -> Self {
        let mut by_ext = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line
                .split(|c: char| c.is_whitespace() || c == ';')
                .filter(|w| !w.is_empty() && *w != "{" && *w != "}" && *w != "types");
            let Some(ty) = words.next() else { continue };
            if !ty.contains('/') {
                continue;
            }
            for ext in words {
                by_ext.insert(ext.to_ascii_lowercase(), ty.to_string());
            }
        }
        MimeTypes { by_ext }
    }

    pub fn load(path: &Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    pub fn builtin() -> Self {
        Self::parse(BUILTIN)
    }

    pub fn len(&self) -> usize {
        self.by_ext.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ext.is_empty()
    }

    /// Type for the extension of `file_name` (text after the last `.`).
    pub fn lookup(&self, file_name: &str) -> Option<&str> {
        let (_, ext) = file_name.rsplit_once('.')?;
        if ext.is_empty() || ext.contains('/') {
            return None;
        }
        self.by_ext
            .get(ext.to_ascii_lowercase().as_str())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_covers_common_types() {
        let m = MimeTypes::builtin();
        assert!(m.len() > 50);
        assert_eq!(m.lookup("a.jpg"), Some("image/jpeg"));
        assert_eq!(m.lookup("x_150x150.JPG"), Some("image/jpeg"));
        assert_eq!(m.lookup("a.txt"), Some("text/plain"));
        assert_eq!(m.lookup("a.mp4"), Some("video/mp4"));
        assert_eq!(m.lookup("a.json"), Some("application/json"));
        assert_eq!(m.lookup("noext"), None);
        assert_eq!(m.lookup("a."), None);
        assert_eq!(m.lookup("a.unknownext"), None);
    }

    #[test]
    fn parses_both_dialects() {
        let m = MimeTypes::parse(
            "# c\ntext/x-a  aa\tab # trailing\nbogus\ntypes {\n  image/x-b bb;\n}\n",
        );
        assert_eq!(m.lookup("f.aa"), Some("text/x-a"));
        assert_eq!(m.lookup("f.ab"), Some("text/x-a"));
        assert_eq!(m.lookup("f.bb"), Some("image/x-b"));
        assert_eq!(m.len(), 3);
    }
}
