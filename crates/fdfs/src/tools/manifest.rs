//! The bulk tools' manifest: one row per uploaded file (local path, file
//! id, URL, and the size, mtime and CRC32 that make a rerun skip it), kept
//! as CSV or as a JSON array, appended and flushed one row at a time so an
//! interrupted run leaves every finished row behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use fdfs_util::json::json_string;

/// CSV column names, in order.
pub const CSV_HEADER: &str = "path,file_id,url,size,mtime_ns,crc32";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// `--format` when given, else `.json` means JSON and anything else CSV.
    pub fn pick(explicit: Option<&str>, path: &Path) -> Result<Format, String> {
        match explicit {
            Some(f) if f.eq_ignore_ascii_case("csv") => Ok(Format::Csv),
            Some(f) if f.eq_ignore_ascii_case("json") => Ok(Format::Json),
            Some(f) => Err(format!("unknown manifest format {f:?}, want csv or json")),
            None => Ok(
                match path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                {
                    Some(e) if e == "json" => Format::Json,
                    _ => Format::Csv,
                },
            ),
        }
    }
}

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The local path as it was given (or found under a given directory).
    pub path: String,
    pub file_id: String,
    pub url: String,
    pub size: u64,
    /// Modification time of the local file at upload, in ns since the epoch.
    pub mtime_ns: i128,
    /// CRC32 of the content, as the file id records it.
    pub crc32: u32,
}

// ---- writing --------------------------------------------------------------

/// Appends rows to a manifest, each one written and flushed on its own.
pub struct Writer {
    file: File,
    format: Format,
    /// JSON: where the closing `]` starts, i.e. just past the last row.
    json_end: u64,
    json_has_rows: bool,
}

impl Writer {
    /// Opens (creating if needed) a manifest for appending. An existing
    /// JSON file is cut back to its last complete row, so a row torn by a
    /// kill is dropped rather than making the file unreadable.
    pub fn open(path: &Path, format: Format) -> std::io::Result<Writer> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let mut w = Writer {
            file,
            format,
            json_end: 0,
            json_has_rows: false,
        };
        match format {
            Format::Csv => {
                if text.is_empty() {
                    w.file.write_all(format!("{CSV_HEADER}\n").as_bytes())?;
                } else if !text.ends_with(b"\n") {
                    // A torn last line: end it so the next row starts clean;
                    // the reader drops the torn one as malformed.
                    w.file.seek(SeekFrom::End(0))?;
                    w.file.write_all(b"\n")?;
                }
                w.file.flush()?;
            }
            Format::Json => {
                match parse_json(&text).2 {
                    Some(end) => {
                        w.json_end = end as u64;
                        w.json_has_rows = true;
                    }
                    None => {
                        w.file.set_len(0)?;
                        w.file.seek(SeekFrom::Start(0))?;
                        w.file.write_all(b"[")?;
                        w.json_end = 1;
                    }
                }
                w.file.set_len(w.json_end)?;
                w.file.seek(SeekFrom::Start(w.json_end))?;
                w.file.write_all(b"\n]\n")?;
                w.file.flush()?;
            }
        }
        Ok(w)
    }

    /// Appends one row and hands it to the OS before returning.
    pub fn append(&mut self, row: &Row) -> std::io::Result<()> {
        match self.format {
            Format::Csv => {
                let line = format!(
                    "{},{},{},{},{},{}\n",
                    csv_field(&row.path),
                    csv_field(&row.file_id),
                    csv_field(&row.url),
                    row.size,
                    row.mtime_ns,
                    row.crc32
                );
                self.file.seek(SeekFrom::End(0))?;
                self.file.write_all(line.as_bytes())?;
            }
            Format::Json => {
                let sep = if self.json_has_rows { ",\n" } else { "\n" };
                let obj = format!(
                    "{sep}{{\"path\":{},\"file_id\":{},\"url\":{},\"size\":{},\"mtime_ns\":{},\"crc32\":{}}}",
                    json_string(&row.path),
                    json_string(&row.file_id),
                    json_string(&row.url),
                    row.size,
                    row.mtime_ns,
                    row.crc32
                );
                self.file.seek(SeekFrom::Start(self.json_end))?;
                // Row and closing bracket in one write: the file is a
                // complete JSON array after every row.
                self.file.write_all(format!("{obj}\n]\n").as_bytes())?;
                self.json_end += obj.len() as u64;
                self.json_has_rows = true;
            }
        }
        self.file.flush()
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

// ---- reading --------------------------------------------------------------

/// A manifest's rows. A missing file reads as empty. Malformed rows (a row
/// torn by a kill) are skipped and counted in the second value.
pub fn read(path: &Path, format: Format) -> std::io::Result<(Vec<Row>, usize)> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    Ok(match format {
        Format::Csv => read_csv(&String::from_utf8_lossy(&text)),
        Format::Json => {
            let (rows, bad, _) = parse_json(&text);
            (rows, bad)
        }
    })
}

fn read_csv(text: &str) -> (Vec<Row>, usize) {
    let mut rows = Vec::new();
    let mut bad = 0;
    let records = csv_records(text);
    for (i, rec) in records.iter().enumerate() {
        if i == 0 && rec.join(",") == CSV_HEADER {
            continue;
        }
        if rec.len() == 1 && rec[0].is_empty() {
            continue;
        }
        match csv_row(rec) {
            Some(r) => rows.push(r),
            None => bad += 1,
        }
    }
    (rows, bad)
}

fn csv_row(rec: &[String]) -> Option<Row> {
    let [path, file_id, url, size, mtime_ns, crc32] = rec else {
        return None;
    };
    if path.is_empty() || file_id.is_empty() {
        return None;
    }
    Some(Row {
        path: path.clone(),
        file_id: file_id.clone(),
        url: url.clone(),
        size: size.parse().ok()?,
        mtime_ns: mtime_ns.parse().ok()?,
        crc32: crc32.parse().ok()?,
    })
}

/// RFC 4180 records; a last record without its line end (torn) is dropped.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => rec.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                rec.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut rec));
            }
            c => field.push(c),
        }
    }
    records
}

/// Rows, malformed rows, and the offset just past the last complete row
/// (`None` when there is none).
fn parse_json(text: &[u8]) -> (Vec<Row>, usize, Option<usize>) {
    let mut p = Json { s: text, i: 0 };
    let mut rows = Vec::new();
    let mut bad = 0;
    let mut last_end = None;
    p.ws();
    if !p.eat(b'[') {
        return (rows, usize::from(p.i < text.len()), None);
    }
    loop {
        p.ws();
        if p.eat(b']') {
            break;
        }
        let Some(fields) = p.object() else {
            // Torn or foreign text: keep what parsed.
            bad += 1;
            break;
        };
        last_end = Some(p.i);
        match json_row(&fields) {
            Some(r) => rows.push(r),
            None => bad += 1,
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            if !p.eat(b']') {
                bad += usize::from(p.i < p.s.len());
            }
            break;
        }
    }
    (rows, bad, last_end)
}

#[derive(Debug)]
enum JsonValue {
    Str(String),
    Num(String),
    Other,
}

fn json_row(fields: &[(String, JsonValue)]) -> Option<Row> {
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let text = |name: &str| match get(name) {
        Some(JsonValue::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let num = |name: &str| match get(name) {
        Some(JsonValue::Num(n)) => Some(n.clone()),
        Some(JsonValue::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let path = text("path").filter(|p| !p.is_empty())?;
    let file_id = text("file_id").filter(|p| !p.is_empty())?;
    Some(Row {
        path,
        file_id,
        url: text("url").unwrap_or_default(),
        size: num("size")?.parse().ok()?,
        mtime_ns: num("mtime_ns").map_or(Some(0), |n| n.parse().ok())?,
        crc32: num("crc32").map_or(Some(0), |n| n.parse().ok())?,
    })
}

/// Just enough JSON for manifests: objects of strings and numbers (other
/// values are parsed and ignored).
struct Json<'a> {
    s: &'a [u8],
    i: usize,
}

impl Json<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn object(&mut self) -> Option<Vec<(String, JsonValue)>> {
        self.ws();
        if !self.eat(b'{') {
            return None;
        }
        let mut fields = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Some(fields);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            if !self.eat(b':') {
                return None;
            }
            self.ws();
            let value = self.value()?;
            fields.push((key, value));
            self.ws();
            if self.eat(b'}') {
                return Some(fields);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn value(&mut self) -> Option<JsonValue> {
        match *self.s.get(self.i)? {
            b'"' => self.string().map(JsonValue::Str),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                {
                    self.i += 1;
                }
                Some(JsonValue::Num(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            b'{' => self.object().map(|_| JsonValue::Other),
            b'[' => {
                self.i += 1;
                loop {
                    self.ws();
                    if self.eat(b']') {
                        return Some(JsonValue::Other);
                    }
                    self.value()?;
                    self.ws();
                    if !self.eat(b',') {
                        return self.eat(b']').then_some(JsonValue::Other);
                    }
                }
            }
            _ => {
                for word in [&b"true"[..], b"false", b"null"] {
                    if self.s[self.i..].starts_with(word) {
                        self.i += word.len();
                        return Some(JsonValue::Other);
                    }
                }
                None
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = *self.s.get(self.i)?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) {
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return None;
                                }
                                let low = self.hex4()?;
                                code = 0x10000
                                    + ((code - 0xD800) << 10)
                                    + (low.checked_sub(0xDC00)?);
                            }
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b => out.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u32, path: &str) -> Row {
        Row {
            path: path.to_string(),
            file_id: format!("group1/M00/00/00/f{n}.txt"),
            url: format!("http://127.0.0.1:8080/group1/M00/00/00/f{n}.txt"),
            size: u64::from(n) * 10,
            mtime_ns: 1_700_000_000_123_456_789,
            crc32: n * 7,
        }
    }

    fn roundtrip(format: Format, name: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let rows = vec![
            row(1, "plain.txt"),
            row(2, "with,comma \"quoted\"\nnewline.txt"),
            row(3, "ünï\\côde\t.bin"),
        ];
        {
            let mut w = Writer::open(&path, format).unwrap();
            w.append(&rows[0]).unwrap();
            w.append(&rows[1]).unwrap();
        }
        assert_eq!(read(&path, format).unwrap(), (rows[..2].to_vec(), 0));
        // Reopening appends after what is there.
        Writer::open(&path, format)
            .unwrap()
            .append(&rows[2])
            .unwrap();
        assert_eq!(read(&path, format).unwrap(), (rows.clone(), 0));
    }

    #[test]
    fn csv_roundtrip() {
        roundtrip(Format::Csv, "m.csv");
    }

    #[test]
    fn json_roundtrip_and_stays_a_json_array() {
        roundtrip(Format::Json, "m.json");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        Writer::open(&path, Format::Json)
            .unwrap()
            .append(&row(1, "a"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("[\n{\"path\":\"a\""), "{text}");
        assert!(text.ends_with("}\n]\n"), "{text}");
    }

    #[test]
    fn torn_rows_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("m.csv");
        Writer::open(&csv, Format::Csv)
            .unwrap()
            .append(&row(1, "a"))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&csv).unwrap();
        f.write_all(b"b,group1/M00/00/00/x.txt,http://h/x,1")
            .unwrap();
        drop(f);
        assert_eq!(read(&csv, Format::Csv).unwrap(), (vec![row(1, "a")], 0));
        // The next writer finishes the torn line; the reader skips it.
        Writer::open(&csv, Format::Csv)
            .unwrap()
            .append(&row(2, "c"))
            .unwrap();
        assert_eq!(
            read(&csv, Format::Csv).unwrap(),
            (vec![row(1, "a"), row(2, "c")], 1)
        );

        let json = dir.path().join("m.json");
        Writer::open(&json, Format::Json)
            .unwrap()
            .append(&row(1, "a"))
            .unwrap();
        let text = std::fs::read_to_string(&json).unwrap();
        let torn = format!(
            "{},\n{{\"path\":\"b\",\"fi",
            text.trim_end().trim_end_matches(']')
        );
        std::fs::write(&json, torn).unwrap();
        assert_eq!(read(&json, Format::Json).unwrap(), (vec![row(1, "a")], 1));
        Writer::open(&json, Format::Json)
            .unwrap()
            .append(&row(2, "c"))
            .unwrap();
        assert_eq!(
            read(&json, Format::Json).unwrap(),
            (vec![row(1, "a"), row(2, "c")], 0)
        );
    }

    #[test]
    fn format_by_flag_or_extension() {
        let p = Path::new("x.JSON");
        assert_eq!(Format::pick(None, p), Ok(Format::Json));
        assert_eq!(Format::pick(None, Path::new("x.txt")), Ok(Format::Csv));
        assert_eq!(
            Format::pick(Some("json"), Path::new("x.csv")),
            Ok(Format::Json)
        );
        assert!(Format::pick(Some("xml"), p).is_err());
    }

    #[test]
    fn missing_manifest_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(&dir.path().join("none.csv"), Format::Csv).unwrap(),
            (vec![], 0)
        );
    }
}
