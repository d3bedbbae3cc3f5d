//! Host allow lists in the original's `allow_hosts` syntax (PROTOCOL.md
//! §10.1): `*`, IP addresses, host names, CIDR blocks (`10.0.0.0/24`) and
//! one bracketed numeric range per entry (`10.0.1.[1-15,20]`,
//! `host[01-08,20-25].domain`, the width of the first number giving the
//! zero padding). Names are resolved once, when the list is built, as the
//! original does at start-up. `allow_hosts` and our `trusted_storage_addrs`
//! share it.

use std::net::{IpAddr, ToSocketAddrs};

/// An entry of a host list that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostListError(pub String);

impl std::fmt::Display for HostListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostListError {}

/// Most addresses one bracketed range may expand to: a typo such as
/// `[1-1000000]` must not turn into a million DNS lookups.
const MAX_RANGE_EXPANSION: usize = 65_536;

/// A parsed allow list: either everyone, or a set of address blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostList {
    any: bool,
    /// `(network, prefix length)`; a single address has the full length.
    blocks: Vec<(IpAddr, u8)>,
}

impl Default for HostList {
    /// Nobody.
    fn default() -> Self {
        HostList::none()
    }
}

impl HostList {
    /// Matches no address.
    pub fn none() -> Self {
        HostList {
            any: false,
            blocks: Vec::new(),
        }
    }

    /// Allows one more address.
    pub fn allow(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        self.blocks.push((ip, full_prefix(ip)));
    }

    /// Matches every address.
    pub fn any() -> Self {
        HostList {
            any: true,
            blocks: Vec::new(),
        }
    }

    /// True when every address matches (`*`).
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Builds the list from the entries of a conf key, resolving names with
    /// the system resolver: no entry at all allows nobody (the conf reader
    /// turns an absent `allow_hosts` into `*`). Returns the list and one
    /// warning per entry that did not resolve (skipped, as the original
    /// skips them).
    pub fn load(entries: &[String]) -> Result<(HostList, Vec<String>), HostListError> {
        HostList::parse_with(entries, resolve_system)
    }

    /// [`HostList::load`] with a resolver of names to addresses (tests).
    pub fn parse_with(
        entries: &[String],
        resolve: impl Fn(&str) -> Option<Vec<IpAddr>>,
    ) -> Result<(HostList, Vec<String>), HostListError> {
        let entries: Vec<&str> = entries.iter().flat_map(|e| split_entries(e)).collect();
        if entries.contains(&"*") {
            return Ok((HostList::any(), Vec::new()));
        }
        let mut list = HostList::none();
        let mut warnings = Vec::new();
        let mut add_name = |list: &mut HostList, name: &str| match name.parse::<IpAddr>() {
            Ok(ip) => list.allow(ip),
            Err(_) => match resolve(name).filter(|ips| !ips.is_empty()) {
                Some(ips) => list
                    .blocks
                    .extend(ips.into_iter().map(|ip| (ip, full_prefix(ip)))),
                None => warnings.push(format!("allow_hosts: cannot resolve {name:?}, skipped")),
            },
        };
        for entry in entries {
            if let Some(open) = entry.find('[') {
                for name in expand_range(entry, open)? {
                    add_name(&mut list, &name);
                }
            } else if entry.contains('/') {
                let (net, prefix) = parse_cidr(entry)?;
                list.blocks.push((net.to_canonical(), prefix));
            } else {
                add_name(&mut list, entry);
            }
        }
        Ok((list, warnings))
    }

    /// True when `ip` is allowed. IPv4-mapped IPv6 peers (a dual-stack
    /// listener) match as their IPv4 address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let ip = ip.to_canonical();
        self.blocks
            .iter()
            .any(|&(net, prefix)| in_block(ip, net, prefix))
    }
}

/// The entries of one conf value: separated by commas or white space
/// outside brackets (the original reads one entry per line; a list on one
/// line is taken too).
fn split_entries(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in value.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' | ' ' | '\t' if depth == 0 => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter().filter(|e| !e.is_empty()).collect()
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn resolve_system(name: &str) -> Option<Vec<IpAddr>> {
    let addrs = (name, 0u16).to_socket_addrs().ok()?;
    Some(addrs.map(|a| a.ip()).collect())
}

fn in_block(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `ADDR/BITS`. The original takes IPv4 with 10 to 31 bits; any valid
/// prefix length of either family is taken here.
fn parse_cidr(entry: &str) -> Result<(IpAddr, u8), HostListError> {
    let bad = || HostListError(format!("allow_hosts: invalid CIDR {entry:?}"));
    let (addr, bits) = entry.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let bits = bits.trim();
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let prefix: u8 = bits.parse().map_err(|_| bad())?;
    if prefix > full_prefix(ip) {
        return Err(bad());
    }
    Ok((ip, prefix))
}

/// `head[a-b,c,...]tail` → `head<a>tail`, ..., each number zero-padded to
/// the width the entry wrote it with.
fn expand_range(entry: &str, open: usize) -> Result<Vec<String>, HostListError> {
    let bad = |why: &str| HostListError(format!("allow_hosts: {why} in {entry:?}"));
    let close = entry[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| bad("expected \"]\""))?;
    let (head, tail) = (&entry[..open], &entry[close + 1..]);
    let mut names = Vec::new();
    for part in entry[open + 1..close].split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let number = |s: &str| -> Result<u64, HostListError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("a range needs numbers"));
            }
            s.parse().map_err(|_| bad("a range number is too large"))
        };
        let (from, to) = (number(first)?, number(last)?);
        let width = first.len();
        let count =
            usize::try_from(to.saturating_sub(from).saturating_add(1)).unwrap_or(usize::MAX);
        if to >= from && names.len().saturating_add(count) > MAX_RANGE_EXPANSION {
            return Err(bad("the range is too large"));
        }
        for n in from..=to {
            names.push(format!("{head}{n:0width$}{tail}"));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> HostList {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        let resolve = |name: &str| match name {
            "tracker.example" => Some(vec!["192.0.2.7".parse().unwrap()]),
            "web01.dc" => Some(vec!["198.51.100.1".parse().unwrap()]),
            "web02.dc" => Some(vec!["198.51.100.2".parse().unwrap()]),
            _ => None,
        };
        HostList::parse_with(&entries, resolve).unwrap().0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn star_allows_everyone_and_nothing_allows_nobody() {
        assert!(list(&["10.0.0.1", "*"]).allows(ip("203.0.113.9")));
        assert!(!list(&[]).allows(ip("203.0.113.9")));
        assert!(!list(&[""]).allows_any());
        let mut one = HostList::none();
        one.allow(ip("::ffff:127.0.0.5"));
        assert!(one.allows(ip("127.0.0.5")) && !one.allows(ip("127.0.0.6")));
    }

    #[test]
    fn addresses_names_cidr_and_ranges() {
        let l = list(&[
            "127.0.0.1",
            "tracker.example",
            "10.1.0.0/16",
            "10.0.0.[1-10]",
            "web[01-02].dc",
            "::1",
        ]);
        for yes in [
            "127.0.0.1",
            "192.0.2.7",
            "10.1.200.3",
            "10.0.0.1",
            "10.0.0.10",
            "198.51.100.2",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(l.allows(ip(yes)), "{yes}");
        }
        for no in ["127.0.0.2", "10.2.0.1", "10.0.0.11", "10.0.0.0", "::2"] {
            assert!(!l.allows(ip(no)), "{no}");
        }
    }

    #[test]
    fn lists_on_one_line() {
        assert_eq!(
            split_entries(" 10.0.0.1, h[1-2,5].dc\t10.1.0.0/16 "),
            ["10.0.0.1", "h[1-2,5].dc", "10.1.0.0/16"]
        );
        let l = list(&["10.0.0.1,10.0.0.[7-8]"]);
        assert!(l.allows(ip("10.0.0.8")) && !l.allows(ip("10.0.0.2")));
    }

    #[test]
    fn range_lists_and_padding() {
        let names = expand_range("h[01-03,7,10-11]x", 1).unwrap();
        assert_eq!(names, ["h01x", "h02x", "h03x", "h7x", "h10x", "h11x"]);
        let l = list(&["10.0.1.[1-15,20]"]);
        assert!(l.allows(ip("10.0.1.15")) && l.allows(ip("10.0.1.20")));
        assert!(!l.allows(ip("10.0.1.16")));
    }

    #[test]
    fn errors_and_warnings() {
        let parse = |e: &str| HostList::parse_with(&[e.to_string()], |_| None);
        for bad in [
            "10.0.0.[1-5",
            "10.0.0.[a-b]",
            "10.0.0.[]",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "nonsense/8",
            "10.0.[0-9999999]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let (l, warnings) = parse("no-such-host.invalid").unwrap();
        assert_eq!(warnings.len(), 1);
        // Nothing resolved: nobody is allowed, as in the original.
        assert!(!l.allows(ip("127.0.0.1")));
    }

    #[test]
    fn cidr_edges() {
        let l = list(&["192.168.5.64/26", "0.0.0.0/0"]);
        assert!(l.allows(ip("8.8.8.8")));
        let l = list(&["192.168.5.64/26"]);
        assert!(l.allows(ip("192.168.5.127")));
        assert!(!l.allows(ip("192.168.5.128")));
        let l = list(&["fd00::/8"]);
        assert!(l.allows(ip("fd12::1")) && !l.allows(ip("fe80::1")));
    }
}
