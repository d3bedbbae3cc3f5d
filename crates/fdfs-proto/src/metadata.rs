//! Packed metadata: `name 0x02 value` records separated by `0x01`, no
//! trailing separator. Stored sorted by name on the storage.

/// Separates records.
pub const RECORD_SEPARATOR: u8 = 0x01;
/// Separates a name from its value.
pub const FIELD_SEPARATOR: u8 = 0x02;
/// Longer names are truncated.
pub const MAX_META_NAME_LEN: usize = 64;
/// Longer values are truncated.
pub const MAX_META_VALUE_LEN: usize = 256;
/// Largest packed metadata (a `-m` file) a storage stores or reads: the
/// original's default network buffer (`buff_size`), which every
/// SET_METADATA request must fit into (PROTOCOL.md §1.1, §3.4).
pub const MAX_METADATA_BYTES: usize = 256 * 1024;

/// Overwrite (`'O'`) or merge (`'M'`) for SET_METADATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaOp {
    Overwrite,
    Merge,
}

impl MetaOp {
    pub fn flag(self) -> u8 {
        match self {
            MetaOp::Overwrite => b'O',
            MetaOp::Merge => b'M',
        }
    }

    pub fn from_flag(flag: u8) -> Option<Self> {
        match flag {
            b'O' => Some(MetaOp::Overwrite),
            b'M' => Some(MetaOp::Merge),
            _ => None,
        }
    }
}

pub type MetaPair = (Vec<u8>, Vec<u8>);

/// Parses packed metadata; records without 0x02 are dropped and over-long
/// names and values truncated, as the original does.
pub fn unpack(data: &[u8]) -> Vec<MetaPair> {
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == RECORD_SEPARATOR)
        .filter_map(|rec| {
            let pos = rec.iter().position(|&b| b == FIELD_SEPARATOR)?;
            let name = &rec[..pos];
            let value = &rec[pos + 1..];
            Some((
                name[..name.len().min(MAX_META_NAME_LEN)].to_vec(),
                value[..value.len().min(MAX_META_VALUE_LEN)].to_vec(),
            ))
        })
        .collect()
}

/// Packs records in the given order.
pub fn pack(pairs: &[MetaPair]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.extend_from_slice(name);
        out.push(FIELD_SEPARATOR);
        out.extend_from_slice(value);
    }
    out
}

/// Sorts by name (byte order, like strcmp) keeping the last value of a
/// repeated name.
pub fn normalize(mut pairs: Vec<MetaPair>) -> Vec<MetaPair> {
    // Stable sort keeps the request order among equal names; the last wins.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<MetaPair> = Vec::with_capacity(pairs.len());
    for p in pairs {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    out
}

/// Merges `new` into `old`: a new value replaces the old one of the same name.
pub fn merge(old: Vec<MetaPair>, new: Vec<MetaPair>) -> Vec<MetaPair> {
    let mut all = old;
    all.extend(new);
    normalize(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sorted_like_original() {
        let stored = pack(&normalize(unpack(b"b\x021\x01a\x022")));
        assert_eq!(stored, b"a\x022\x01b\x021");
        let merged = pack(&merge(unpack(&stored), unpack(b"a\x029")));
        assert_eq!(merged, b"a\x029\x01b\x021");
    }

    #[test]
    fn malformed_records_dropped() {
        let stored = pack(&normalize(unpack(b"z\x02last\x01norecord\x01y\x02")));
        assert_eq!(stored, b"y\x02\x01z\x02last");
        let long = [vec![b'n'; 70], vec![2], vec![b'v'; 300]].concat();
        let p = unpack(&long);
        assert_eq!(p[0].0.len(), 64);
        assert_eq!(p[0].1.len(), 256);
    }

    proptest! {
        #[test]
        fn roundtrip(pairs in proptest::collection::vec(("[a-z]{1,10}", "[ -~]{0,20}"), 0..8)) {
            let pairs: Vec<MetaPair> = pairs.into_iter().map(|(n, v)| (n.into_bytes(), v.into_bytes())).collect();
            prop_assert_eq!(unpack(&pack(&pairs)), pairs);
        }

        #[test]
        fn unpack_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = unpack(&data);
        }
    }
}
