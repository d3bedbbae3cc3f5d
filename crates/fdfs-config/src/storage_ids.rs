//! `storage_ids.conf` (PROTOCOL.md §10.7): one storage per line,
//! `<id> <group_name> <host>[:<port>] [rw=<mode>]`, used when trackers
//! identify storages by id instead of IP.
//!
//! Host names are kept as written; resolving them is the caller's job.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::values::{is_valid_group_name, parse_port, split_hosts_port};
use crate::ConfigError;

/// Largest storage id (24 bits).
pub const MAX_SERVER_ID: u32 = 16_777_215;
/// Port assumed when lines carry none.
pub const DEFAULT_STORAGE_PORT: u16 = 23000;
/// `rw_mode` bits follow POSIX `R_OK` / `W_OK` (§2: none 0, write 2, read 4, both 6).
pub const RW_NONE: u8 = 0;
pub const RW_WRITE: u8 = 2;
pub const RW_READ: u8 = 4;
pub const RW_BOTH: u8 = RW_READ | RW_WRITE;

/// One storage_ids.conf line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageIdEntry {
    /// Decimal 1..=16777215 in canonical form (no sign, no leading zero).
    pub id: String,
    pub group: String,
    /// One address, or two (inner first, outer second for IPv4 literals).
    pub hosts: Vec<String>,
    /// Either every entry has a port or none does.
    pub port: Option<u16>,
    /// Bitmask of [`RW_READ`] / [`RW_WRITE`].
    pub rw_mode: u8,
}

impl StorageIdEntry {
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_STORAGE_PORT)
    }

    /// The line as a tracker sends it in FETCH_STORAGE_IDS (§2.14):
    /// `<id> <group> <host>[:<port>][ rw=<mode>]`, IPv6 and dual addresses
    /// bracketed, the `rw=` option only when not "both". Parses back with
    /// [`StorageIds::parse_str`].
    pub fn to_line(&self) -> String {
        let bracket = self.hosts.len() > 1 || self.hosts.iter().any(|h| h.contains(':'));
        let mut line = if bracket {
            format!("{} {} [{}]", self.id, self.group, self.hosts.join(","))
        } else {
            format!("{} {} {}", self.id, self.group, self.hosts.join(","))
        };
        if let Some(port) = self.port {
            line.push_str(&format!(":{port}"));
        }
        match self.rw_mode {
            RW_NONE => line.push_str(" rw=none"),
            RW_READ => line.push_str(" rw=read"),
            RW_WRITE => line.push_str(" rw=write"),
            _ => {}
        }
        line
    }

    pub fn can_read(&self) -> bool {
        self.rw_mode & RW_READ != 0
    }

    pub fn can_write(&self) -> bool {
        self.rw_mode & RW_WRITE != 0
    }
}

/// The parsed file, entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageIds {
    pub entries: Vec<StorageIdEntry>,
}

fn invalid(file: &str, line: usize, key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        line,
        key: key.to_string(),
        msg: msg.into(),
    }
}

impl StorageIds {
    pub fn load(path: &Path) -> Result<StorageIds, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_str(&String::from_utf8_lossy(&bytes), path)
    }

    /// Parses the text; `origin` names the file in error messages. A file
    /// with no entries parses to an empty list (the tracker decides whether
    /// that is fatal).
    pub fn parse_str(text: &str, origin: &Path) -> Result<StorageIds, ConfigError> {
        let file = origin.display().to_string();
        let mut entries: Vec<StorageIdEntry> = Vec::new();
        let mut first_line_of_id: HashMap<String, usize> = HashMap::new();
        let mut first_line_of_addr: HashMap<(String, u16), usize> = HashMap::new();
        // Line number and port presence of the first entry, for the
        // all-or-none port rule.
        let mut port_style: Option<(usize, bool)> = None;

        for (idx, raw) in text.split('\n').enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = parse_line(line, &file, line_no)?;

            if let Some(first) = first_line_of_id.get(&entry.id) {
                return Err(invalid(
                    &file,
                    line_no,
                    "id",
                    format!(
                        "duplicate storage id `{}` (first at line {first})",
                        entry.id
                    ),
                ));
            }
            first_line_of_id.insert(entry.id.clone(), line_no);

            match port_style {
                None => port_style = Some((line_no, entry.port.is_some())),
                Some((first, has_port)) if has_port != entry.port.is_some() => {
                    return Err(invalid(
                        &file,
                        line_no,
                        "port",
                        format!(
                            "either every line has a port or none does (line {first} {})",
                            if has_port { "has one" } else { "has none" }
                        ),
                    ));
                }
                Some(_) => {}
            }

            for host in &entry.hosts {
                let key = (host.clone(), entry.port.unwrap_or(0));
                if let Some(first) = first_line_of_addr.get(&key) {
                    return Err(invalid(
                        &file,
                        line_no,
                        "host",
                        format!("duplicate storage address `{host}` (first at line {first})"),
                    ));
                }
                first_line_of_addr.insert(key, line_no);
            }
            entries.push(entry);
        }
        Ok(StorageIds { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn find_by_id(&self, id: &str) -> Option<&StorageIdEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The entry of group `group` (empty = any group) with address `ip` and
    /// port `port` (0 = any port; entries without a port match every port).
    pub fn find_by_addr(&self, group: &str, ip: &str, port: u16) -> Option<&StorageIdEntry> {
        self.entries.iter().find(|e| {
            (group.is_empty() || e.group == group)
                && e.hosts.iter().any(|h| h == ip)
                && (port == 0 || e.port.unwrap_or(port) == port)
        })
    }

    /// Whether any address is IPv6, which forces the wide (46-byte) IP field.
    pub fn has_ipv6(&self) -> bool {
        self.entries
            .iter()
            .flat_map(|e| e.hosts.iter())
            .any(|h| h.contains(':'))
    }
}

fn parse_line(line: &str, file: &str, line_no: usize) -> Result<StorageIdEntry, ConfigError> {
    let mut fields = line.split_whitespace();
    let (Some(id), Some(group), Some(addr)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(invalid(
            file,
            line_no,
            "host",
            format!("expected `<id> <group_name> <host>[:<port>]`, got `{line}`"),
        ));
    };

    let canonical = id
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_SERVER_ID).contains(n) && n.to_string() == id);
    if canonical.is_none() {
        return Err(invalid(
            file,
            line_no,
            "id",
            format!("invalid storage id `{id}`: must be an integer 1..={MAX_SERVER_ID} without leading zeros"),
        ));
    }
    if !is_valid_group_name(group) {
        return Err(invalid(
            file,
            line_no,
            "group_name",
            format!("invalid group name `{group}` (1-16 letters or digits)"),
        ));
    }

    let (mut hosts, port_text) =
        split_hosts_port(addr).map_err(|e| invalid(file, line_no, "host", e.0))?;
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p, addr).map_err(|e| invalid(file, line_no, "port", e.0))?),
    };
    if hosts.len() == 2 {
        order_dual_hosts(&mut hosts).map_err(|msg| invalid(file, line_no, "host", msg))?;
    }

    let mut rw_mode = RW_BOTH;
    for option in fields {
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        if !name.eq_ignore_ascii_case("rw") {
            return Err(invalid(
                file,
                line_no,
                name,
                format!("unknown option `{option}` (only rw=... is supported)"),
            ));
        }
        rw_mode = match value.to_ascii_lowercase().as_str() {
            "none" => RW_NONE,
            "read" | "readonly" => RW_READ,
            "write" | "writeonly" => RW_WRITE,
            "both" | "all" => RW_BOTH,
            _ => {
                return Err(invalid(
                    file,
                    line_no,
                    "rw",
                    format!("invalid rw mode `{value}` (none, read, write or both)"),
                ))
            }
        };
    }

    Ok(StorageIdEntry {
        id: id.to_string(),
        group: group.to_string(),
        hosts,
        port,
        rw_mode,
    })
}

/// Address class as the tracker sees it (§2.0): the three private IPv4
/// ranges, or outer.
#[derive(Debug, PartialEq, Eq)]
enum AddrClass {
    Private10,
    Private172,
    Private192,
    Outer,
}

fn classify(ip: Ipv4Addr) -> AddrClass {
    match ip.octets() {
        [10, ..] => AddrClass::Private10,
        [172, b, ..] if (16..=31).contains(&b) => AddrClass::Private172,
        [192, 168, ..] => AddrClass::Private192,
        _ => AddrClass::Outer,
    }
}

/// Two IPv4 literals must be of different classes and the outer one goes
/// second. Host names and IPv6 are left as written (they would need
/// resolving, which is not this crate's business).
fn order_dual_hosts(hosts: &mut [String]) -> Result<(), String> {
    let (Ok(a), Ok(b)) = (hosts[0].parse::<Ipv4Addr>(), hosts[1].parse::<Ipv4Addr>()) else {
        return Ok(());
    };
    let (ca, cb) = (classify(a), classify(b));
    if ca == cb {
        return Err(format!(
            "`{}` and `{}` are of the same address class; a dual address needs one inner and one outer, or two different private ranges",
            hosts[0], hosts[1]
        ));
    }
    if ca == AddrClass::Outer {
        hosts.swap(0, 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StorageIds, ConfigError> {
        StorageIds::parse_str(text, Path::new("storage_ids.conf"))
    }

    #[test]
    fn sample_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/storage_ids.conf");
        let ids = StorageIds::load(&path).unwrap();
        assert!(ids.is_empty());
    }

    /// Fuzz finding (fuzz/regressions/storage_ids/nested_bracket_host):
    /// `[[a]` was accepted as host `[a`, which `to_line` writes as a line
    /// that no longer parses.
    #[test]
    fn hosts_with_brackets_are_refused() {
        for line in [
            "1 g1 [[a]",
            "1 g1 [a[b]:23000",
            "1 g1 a]b",
            "1 g1 [10.0.0.1,[b]",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
        assert!(parse("1 g1 [a]").is_ok());
    }

    #[test]
    fn wire_lines_parse_back() {
        let text = "100001 group1 192.168.0.196\n100002 group1 122.244.141.46,10.0.0.5 rw=readonly\n100003 group2 [2409:8a20::1,fe80::1] RW=Write\n100004 group2 storage.local rw=none\n";
        let ids = parse(text).unwrap();
        let lines: Vec<String> = ids.entries.iter().map(StorageIdEntry::to_line).collect();
        assert_eq!(
            lines,
            [
                "100001 group1 192.168.0.196",
                "100002 group1 [10.0.0.5,122.244.141.46] rw=read",
                "100003 group2 [2409:8a20::1,fe80::1] rw=write",
                "100004 group2 storage.local rw=none",
            ]
        );
        assert_eq!(parse(&lines.join("\n")).unwrap(), ids);
        let with_port = parse("7 g1 10.0.0.1:23001\n8 g1 [::1]:23002\n").unwrap();
        let lines: Vec<String> = with_port
            .entries
            .iter()
            .map(StorageIdEntry::to_line)
            .collect();
        assert_eq!(lines, ["7 g1 10.0.0.1:23001", "8 g1 [::1]:23002"]);
    }

    #[test]
    fn entries_and_lookups() {
        let ids = parse(
            "# comment\n\n100001   group1  192.168.0.196\n 100002 group1 122.244.141.46,10.0.0.5 rw=readonly\n100003\tgroup2\t[2409:8a20::1,fe80::1]  RW=Write\n100004 group2 storage.local rw=none\n",
        )
        .unwrap();
        assert_eq!(ids.len(), 4);
        let e = ids.find_by_id("100001").unwrap();
        assert_eq!(
            (e.group.as_str(), e.port, e.rw_mode),
            ("group1", None, RW_BOTH)
        );
        assert_eq!(e.port_or_default(), 23000);
        // The outer address is moved to the second position.
        let e = ids.find_by_id("100002").unwrap();
        assert_eq!(e.hosts, ["10.0.0.5", "122.244.141.46"]);
        assert!(e.can_read() && !e.can_write());
        let e = ids.find_by_id("100003").unwrap();
        assert_eq!(e.hosts, ["2409:8a20::1", "fe80::1"]);
        assert_eq!(e.rw_mode, RW_WRITE);
        assert_eq!(ids.find_by_id("100004").unwrap().rw_mode, RW_NONE);
        assert!(ids.find_by_id("1").is_none());

        assert_eq!(
            ids.find_by_addr("group1", "122.244.141.46", 23000)
                .unwrap()
                .id,
            "100002"
        );
        assert_eq!(ids.find_by_addr("", "fe80::1", 0).unwrap().id, "100003");
        assert!(ids.find_by_addr("group2", "192.168.0.196", 23000).is_none());
        assert!(ids.has_ipv6());
    }

    #[test]
    fn ports() {
        let ids = parse("1 g1 10.0.0.1:23000\n2 g1 10.0.0.1:23001\n3 g1 [::1]:23002\n").unwrap();
        assert_eq!(ids.find_by_addr("g1", "10.0.0.1", 23001).unwrap().id, "2");
        assert_eq!(
            ids.find_by_addr("g1", "::1", 23002).unwrap().port,
            Some(23002)
        );
        assert!(ids.find_by_addr("g1", "10.0.0.1", 23005).is_none());
        assert!(!parse("1 g1 10.0.0.1\n").unwrap().has_ipv6());
    }

    fn err_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = err_of("100001 group1 10.0.0.1\n\n100001 group1 10.0.0.2\n");
        assert!(
            e.starts_with("storage_ids.conf:3: key `id`: duplicate"),
            "{e}"
        );
        let e = err_of("1 g1 10.0.0.1:23000\n2 g1 10.0.0.2\n");
        assert!(e.starts_with("storage_ids.conf:2: key `port`"), "{e}");
        let e = err_of("1 g1 10.0.0.1\n2 g1 10.0.0.1\n");
        assert!(
            e.starts_with("storage_ids.conf:2: key `host`: duplicate"),
            "{e}"
        );
        for bad_id in ["0", "007", "-1", "+5", "16777216", "abc"] {
            let e = err_of(&format!("# x\n{bad_id} g1 10.0.0.1\n"));
            assert!(
                e.starts_with("storage_ids.conf:2: key `id`"),
                "{bad_id}: {e}"
            );
        }
        assert!(err_of("1 g1\n").starts_with("storage_ids.conf:1:"));
        assert!(err_of("1 bad-group 10.0.0.1\n").contains("key `group_name`"));
        assert!(err_of("1 g1 10.0.0.1 rw=maybe\n").contains("key `rw`"));
        assert!(err_of("1 g1 10.0.0.1 speed=fast\n").contains("unknown option"));
        assert!(err_of("1 g1 ::1\n").contains("bracketed"));
        assert!(err_of("1 g1 10.0.0.1:abc\n").contains("key `port`"));
        assert!(err_of("1 g1 10.0.0.1,10.0.0.2\n").contains("same address class"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }
    }
}
