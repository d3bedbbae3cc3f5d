//! File IDs and remote file names.
//!
//! ```text
//! file id         = <group> "/" <remote filename>
//! remote filename = "M" HEX2(store path) "/" HEX2(dir1) "/" HEX2(dir2) "/" <name>
//! name (normal)   = B64_27 ext7                      (remote length 44)
//! name (trunk)    = B64_27 B64_TRUNK_16 ext7         (remote length 60)
//! name (slave)    = <master name without .ext> <prefix> ["." ext]
//! ```
//!
//! B64_27 encodes a 20-byte record (all big-endian except the server id):
//!
//! | offset | size | field                                                   |
//! |--------|------|---------------------------------------------------------|
//! | 0      | 4    | source: IPv4 octets, or a server id in little-endian    |
//! | 4      | 4    | creation timestamp (unix seconds)                       |
//! | 8      | 8    | size field: size, random high bits, appender/trunk flags|
//! | 16     | 4    | CRC32 of the content                                    |

use crate::status::ProtoError;
use crate::{base64, FILE_EXT_NAME_MAX_LEN, FILE_PREFIX_MAX_LEN, NORMAL_LOGIC_FILENAME_LENGTH};

/// Bit 58 of the size field marks an appender file (its size is not in the name).
pub const APPENDER_FLAG: u64 = 1 << 58;
/// Bit 59 of the size field marks a file stored inside a trunk file.
pub const TRUNK_FLAG: u64 = 1 << 59;
/// Numeric storage ids are 1..=2^24-1.
pub const MAX_SERVER_ID: u32 = 16_777_215;
/// Length of the base64 part of a name.
pub const FILENAME_BASE64_LENGTH: usize = 27;
/// Length of `Mxx/HH/HH/`.
pub const LOGIC_FILE_PATH_LEN: usize = 10;
/// Length of the extension part: digits, dot and extension.
pub const EXT7_LEN: usize = 7;

/// The decoded 20-byte record inside every file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNameRecord {
    /// Raw bytes 0..4: IPv4 octets in order, or a little-endian server id.
    pub source: [u8; 4],
    pub timestamp: u32,
    pub size_field: u64,
    pub crc32: u32,
}

/// Where a file came from, as decoded from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    Ip(std::net::Ipv4Addr),
    ServerId(u32),
}

impl FileNameRecord {
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[0..4].copy_from_slice(&self.source);
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..16].copy_from_slice(&self.size_field.to_be_bytes());
        out[16..20].copy_from_slice(&self.crc32.to_be_bytes());
        out
    }

    pub fn from_bytes(b: &[u8; 20]) -> Self {
        let mut size = [0u8; 8];
        size.copy_from_slice(&b[8..16]);
        FileNameRecord {
            source: [b[0], b[1], b[2], b[3]],
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            size_field: u64::from_be_bytes(size),
            crc32: u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
        }
    }

    /// The 27-character base64 text.
    pub fn encode(&self) -> String {
        base64::encode(&self.to_bytes())
    }

    /// Decodes the 27 base64 characters; None if they do not carry 20 bytes.
    pub fn decode(b64: &str) -> Option<Self> {
        let raw = base64::decode(b64);
        let arr: [u8; 20] = raw.get(..20)?.try_into().ok()?;
        Some(Self::from_bytes(&arr))
    }

    /// Source for a storage in IP mode.
    pub fn ip_source(ip: std::net::Ipv4Addr) -> [u8; 4] {
        ip.octets()
    }

    /// Source for a storage in id mode: little-endian, as the C servers on
    /// x86 write it.
    pub fn id_source(id: u32) -> [u8; 4] {
        id.to_le_bytes()
    }

    pub fn source(&self) -> FileSource {
        let v = u32::from_le_bytes(self.source);
        if v > 0 && v <= MAX_SERVER_ID {
            FileSource::ServerId(v)
        } else {
            FileSource::Ip(std::net::Ipv4Addr::from(self.source))
        }
    }

    /// Source address text (empty for a server id: callers map ids to IPs).
    pub fn source_ip_text(&self) -> String {
        match self.source() {
            FileSource::Ip(ip) => ip.to_string(),
            FileSource::ServerId(_) => String::new(),
        }
    }

    pub fn is_appender(&self) -> bool {
        self.size_field & APPENDER_FLAG != 0
    }

    pub fn is_trunk(&self) -> bool {
        self.size_field & TRUNK_FLAG != 0
    }

    /// The real size, or None for appender files whose size is not in the name.
    pub fn file_size(&self) -> Option<u64> {
        if self.is_appender() {
            None
        } else if self.size_field & (1 << 63) != 0 || self.is_trunk() {
            Some(self.size_field & 0xFFFF_FFFF)
        } else {
            Some(self.size_field)
        }
    }
}

/// Size field of a normal file: `random` supplies the high bits.
pub fn normal_size_field(size: u64, random: u32) -> u64 {
    if size >> 32 != 0 {
        return size;
    }
    let r = u64::from((random & 0x007F_FFFF) | 0x8000_0000);
    (r << 32) | size
}

/// Size field of an appender file: size part 0 and the appender flag.
pub fn appender_size_field(random: u32) -> u64 {
    let r = u64::from((random & 0x007F_FFFF) | 0x8000_0000);
    (r << 32) | APPENDER_FLAG
}

/// Kind of file as the tools report it: appender > slave > normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Normal,
    Slave,
    Appender,
}

impl FileKind {
    pub fn caption(self) -> &'static str {
        match self {
            FileKind::Normal => "normal",
            FileKind::Slave => "slave",
            FileKind::Appender => "appender",
        }
    }
}

/// A parsed remote file name (without group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteName {
    pub store_path_index: u8,
    pub dir1: u8,
    pub dir2: u8,
    /// The last component: base64 record, optional trunk part, ext7 or slave suffix.
    pub name: String,
}

fn hex2_upper(s: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    Some(digit(s[0])? * 16 + digit(s[1])?)
}

fn hex2_any(s: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    Some(digit(s[0])? * 16 + digit(s[1])?)
}

impl RemoteName {
    /// Validates a remote name the way the storage does (§3.0): `Mxx/` with a
    /// hex store path index below `store_path_count`, then `HH/HH/name` with
    /// upper-case hex and no further `/`. A name without `Mxx/` is a legacy
    /// name on store path 0.
    pub fn parse(remote: &str, store_path_count: usize) -> Result<Self, ProtoError> {
        let bytes = remote.as_bytes();
        let (index, rest) = if bytes.first() == Some(&b'M') {
            if bytes.len() < 4 || bytes[3] != b'/' {
                return Err(ProtoError::invalid(format!("invalid filename: {remote}")));
            }
            let idx = hex2_any(&bytes[1..3])
                .ok_or_else(|| ProtoError::invalid(format!("invalid store path in {remote}")))?;
            (idx, &remote[4..])
        } else {
            (0, remote)
        };
        if usize::from(index) >= store_path_count {
            return Err(ProtoError::invalid(format!(
                "store path index {index} out of range in {remote}"
            )));
        }
        let r = rest.as_bytes();
        if r.len() < 7 || r[2] != b'/' || r[5] != b'/' {
            return Err(ProtoError::invalid(format!("invalid filename: {remote}")));
        }
        let dir1 = hex2_upper(&r[0..2]);
        let dir2 = hex2_upper(&r[3..5]);
        let name = &rest[6..];
        match (dir1, dir2) {
            (Some(dir1), Some(dir2)) if !name.contains('/') && !name.contains('\0') => {
                Ok(RemoteName {
                    store_path_index: index,
                    dir1,
                    dir2,
                    name: name.to_string(),
                })
            }
            _ => Err(ProtoError::invalid(format!("invalid filename: {remote}"))),
        }
    }

    /// `HH/HH/name`, relative to `<store path>/data`.
    pub fn relative_path(&self) -> String {
        format!("{:02X}/{:02X}/{}", self.dir1, self.dir2, self.name)
    }

    /// The record in the first 27 characters of the name, when present.
    pub fn record(&self) -> Option<FileNameRecord> {
        let b64 = self.name.get(..FILENAME_BASE64_LENGTH)?;
        FileNameRecord::decode(b64)
    }

    /// Total length of the remote name, as `IS_SLAVE_FILE` measures it.
    pub fn remote_len(&self) -> usize {
        LOGIC_FILE_PATH_LEN + self.name.len()
    }

    pub fn kind(&self) -> FileKind {
        file_kind(
            self.remote_len(),
            self.record().map(|r| r.size_field).unwrap_or(0),
        )
    }
}

impl std::fmt::Display for RemoteName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "M{:02X}/{:02X}/{:02X}/{}",
            self.store_path_index, self.dir1, self.dir2, self.name
        )
    }
}

/// Classifies a file from its remote-name length and size field.
pub fn file_kind(remote_len: usize, size_field: u64) -> FileKind {
    if size_field & APPENDER_FLAG != 0 {
        FileKind::Appender
    } else if remote_len > crate::TRUNK_LOGIC_FILENAME_LENGTH
        || (remote_len > NORMAL_LOGIC_FILENAME_LENGTH && size_field & TRUNK_FLAG == 0)
    {
        FileKind::Slave
    } else {
        FileKind::Normal
    }
}

/// `group/remote` as the tools and HTTP URLs spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    pub group: String,
    pub remote: String,
}

impl FileId {
    pub fn new(group: impl Into<String>, remote: impl Into<String>) -> Self {
        FileId {
            group: group.into(),
            remote: remote.into(),
        }
    }

    /// Splits at the first `/`; both parts must be non-empty.
    pub fn parse(id: &str) -> Result<Self, ProtoError> {
        match id.split_once('/') {
            Some((g, r)) if !g.is_empty() && !r.is_empty() => Ok(FileId::new(g, r)),
            _ => Err(ProtoError::invalid(format!("invalid file id: {id}"))),
        }
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.group, self.remote)
    }
}

/// True for an extension the storage accepts: `[A-Za-z0-9._-]`, at most 6.
pub fn is_valid_ext(ext: &str) -> bool {
    ext.len() <= FILE_EXT_NAME_MAX_LEN
        && ext
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// True for a slave prefix: 1..=16 of `[A-Za-z0-9._-]`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && prefix.len() <= FILE_PREFIX_MAX_LEN && is_valid_ext_chars(prefix)
}

fn is_valid_ext_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Builds the 7-character extension part: random digits, `.`, extension.
/// `digit` yields random decimal digits (0..=9).
pub fn format_ext7(ext: &str, mut digit: impl FnMut() -> u8) -> String {
    let mut out = String::with_capacity(EXT7_LEN);
    let digits = if ext.is_empty() {
        EXT7_LEN
    } else {
        FILE_EXT_NAME_MAX_LEN - ext.len().min(FILE_EXT_NAME_MAX_LEN)
    };
    for _ in 0..digits {
        out.push(char::from(b'0' + digit() % 10));
    }
    if !ext.is_empty() {
        out.push('.');
        out.push_str(&ext[..ext.len().min(FILE_EXT_NAME_MAX_LEN)]);
    }
    out
}

/// Extension of a local file name as the C client derives it: the text after
/// the last `.` when at most 6 characters without `/`, widened to a double
/// extension (`tar.gz`) when it still fits.
pub fn ext_from_local_name(local: &str) -> String {
    let Some(dot) = local.rfind('.') else {
        return String::new();
    };
    let ext = &local[dot + 1..];
    if ext.len() > FILE_EXT_NAME_MAX_LEN || ext.contains('/') {
        return String::new();
    }
    let before = &local[..dot];
    if let Some(prev) = before.rfind('.') {
        let double = &local[prev + 1..];
        if double.len() <= FILE_EXT_NAME_MAX_LEN && !double.contains('/') {
            return double.to_string();
        }
    }
    ext.to_string()
}

/// Derives a slave's remote name from its master's (§6.6): the master's
/// extension (the first `.` in its last 7 characters) is replaced by
/// `prefix` and `ext` (no extension when `ext` is empty).
pub fn slave_remote_name(master: &str, prefix: &str, ext: &str) -> Result<String, ProtoError> {
    if master.len() < 34 {
        return Err(ProtoError::invalid(format!(
            "master name too short: {master}"
        )));
    }
    if !is_valid_prefix(prefix) {
        return Err(ProtoError::invalid(format!("invalid prefix: {prefix:?}")));
    }
    if !is_valid_ext(ext) {
        return Err(ProtoError::invalid(format!("invalid ext: {ext:?}")));
    }
    let tail_start = master.len().saturating_sub(EXT7_LEN);
    let base = match master.get(tail_start..).and_then(|tail| tail.find('.')) {
        Some(i) => &master[..tail_start + i],
        None => master,
    };
    let mut out = String::with_capacity(base.len() + prefix.len() + ext.len() + 1);
    out.push_str(base);
    out.push_str(prefix);
    if !ext.is_empty() {
        if !ext.starts_with('.') {
            out.push('.');
        }
        out.push_str(ext);
    }
    Ok(out)
}

/// PJW hash with the C implementation's signed arithmetic, used by
/// `file_distribute_path_mode = 1`.
pub fn pjw_hash(data: &[u8]) -> u32 {
    let mut h: i32 = 0;
    for &c in data {
        h = h.wrapping_shl(4).wrapping_add(i32::from(c));
        let t = (h as u32 & 0xF000_0000) as i32;
        if t != 0 {
            h = (h ^ (t >> 24)) & 0x0FFF_FFFF;
        }
    }
    h as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn example() -> FileNameRecord {
        FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: 1_700_000_000,
            size_field: normal_size_field(14, 0x1234_5678),
            crc32: 0x37F9_6DAF,
        }
    }

    #[test]
    fn worked_example_section_6_8() {
        let rec = example();
        assert_eq!(rec.size_field, 0x8034_5678_0000_000E);
        assert_eq!(rec.encode(), "fwAAAWVT8QCANFZ4AAAADjf5ba8");
        let ext = format_ext7("txt", {
            let mut d = [1u8, 2, 3].into_iter();
            move || d.next().unwrap_or(0)
        });
        assert_eq!(ext, "123.txt");
        let remote = format!("M00/00/00/{}{}", rec.encode(), ext);
        assert_eq!(remote, "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt");
        let parsed = RemoteName::parse(&remote, 1).unwrap();
        let back = parsed.record().unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.source(), FileSource::Ip([127, 0, 0, 1].into()));
        assert_eq!(back.file_size(), Some(14));
        assert_eq!(parsed.kind(), FileKind::Normal);
    }

    #[test]
    fn variants_section_6_8() {
        let mut rec = example();
        rec.source = FileNameRecord::id_source(100_001);
        assert_eq!(rec.encode(), "oYYBAGVT8QCANFZ4AAAADjf5ba8");
        assert_eq!(rec.source(), FileSource::ServerId(100_001));

        let mut app = example();
        app.size_field = appender_size_field(0x0BAD_BEEF);
        assert_eq!(app.size_field, 0x842D_BEEF_0000_0000);
        assert_eq!(app.encode(), "fwAAAWVT8QCELb7vAAAAADf5ba8");
        assert!(app.is_appender());
        assert_eq!(app.file_size(), None);

        let slave = slave_remote_name(
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt",
            "_150x150",
            "txt",
        )
        .unwrap();
        assert_eq!(
            slave,
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123_150x150.txt"
        );
        assert_eq!(
            RemoteName::parse(&slave, 1).unwrap().kind(),
            FileKind::Slave
        );
    }

    #[test]
    fn golden_a4_name_decodes() {
        let r = RemoteName::parse("M00/02/E1/fwAAAWsHARmAQdxWAAAADjf5ba8161.txt", 1).unwrap();
        assert_eq!((r.dir1, r.dir2), (2, 0xE1));
        let rec = r.record().unwrap();
        assert_eq!(rec.source_ip_text(), "127.0.0.1");
        assert_eq!(rec.timestamp, 1_795_621_145);
        assert_eq!(rec.size_field, 0x8041_DC56_0000_000E);
        assert_eq!(rec.crc32, crate::crc32(b"Hello FastDFS\n"));
    }

    #[test]
    fn slave_names_section_6_6() {
        let m = "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829.jpg";
        assert_eq!(
            slave_remote_name(m, "_150x150", "jpg").unwrap(),
            "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829_150x150.jpg"
        );
        assert_eq!(
            slave_remote_name(m, "_s", "").unwrap(),
            "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829_s"
        );
        assert_eq!(
            slave_remote_name(m, "_z", ".txt").unwrap(),
            "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829_z.txt"
        );
        let ss = slave_remote_name(
            "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829_150x150.jpg",
            "_ss",
            "txt",
        )
        .unwrap();
        assert_eq!(
            ss,
            "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829_150x150_ss.txt"
        );
        assert!(slave_remote_name(m, "", "jpg").is_err());
        assert!(slave_remote_name(m, "a b", "jpg").is_err());
    }

    #[test]
    fn ext7_shapes() {
        let z = || 7u8;
        assert_eq!(format_ext7("", z), "7777777");
        assert_eq!(format_ext7("jpeg", z), "77.jpeg");
        assert_eq!(format_ext7("tar.gz", z), ".tar.gz");
        assert_eq!(format_ext7(".txt", z), "77..txt");
        assert_eq!(ext_from_local_name("a.tar.gz"), "tar.gz");
        assert_eq!(ext_from_local_name("photo.jpeg"), "jpeg");
        assert_eq!(ext_from_local_name("noext"), "");
        assert_eq!(ext_from_local_name("x.toolongext"), "");
    }

    #[test]
    fn remote_name_validation() {
        let good = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
        assert!(RemoteName::parse(good, 1).is_ok());
        assert!(RemoteName::parse("M00/00/0a/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 1).is_err());
        assert!(RemoteName::parse("M05/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 1).is_err());
        assert!(RemoteName::parse("M00/00/00/a/b", 1).is_err());
        assert!(RemoteName::parse("M00/00/00", 1).is_err());
        assert!(RemoteName::parse("M00/00/00/", 1).is_err());
        let legacy = RemoteName::parse("00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 1).unwrap();
        assert_eq!(legacy.store_path_index, 0);
        assert_eq!(
            RemoteName::parse("M01/0A/FF/x", 2).unwrap().to_string(),
            "M01/0A/FF/x"
        );
    }

    #[test]
    fn pjw_matches_c_build() {
        assert_eq!(pjw_hash(b"fwAAAWVT8QCANFZ4AAAADjf5ba8") % 65536, 0x1658);
        assert_eq!(pjw_hash(b"fwAAAWVT8QCANFZ4AAAADjf5ba8"), 260_839_000);
    }

    #[test]
    fn last_octet_zero_quirk() {
        let rec = FileNameRecord {
            source: [192, 168, 1, 0],
            ..example()
        };
        assert!(matches!(rec.source(), FileSource::ServerId(_)));
    }

    proptest! {
        #[test]
        fn record_roundtrip(src in any::<[u8;4]>(), ts in any::<u32>(), size in any::<u64>(), crc in any::<u32>()) {
            let rec = FileNameRecord { source: src, timestamp: ts, size_field: size, crc32: crc };
            let text = rec.encode();
            prop_assert_eq!(text.len(), FILENAME_BASE64_LENGTH);
            prop_assert_eq!(FileNameRecord::decode(&text), Some(rec));
        }

        #[test]
        fn remote_name_roundtrip(idx in 0u8..=255, d1 in any::<u8>(), d2 in any::<u8>(), name in "[A-Za-z0-9_.-]{1,40}") {
            let rn = RemoteName { store_path_index: idx, dir1: d1, dir2: d2, name };
            let parsed = RemoteName::parse(&rn.to_string(), 256).unwrap();
            prop_assert_eq!(parsed, rn);
        }

        #[test]
        fn parse_never_panics(s in ".{0,140}") {
            let _ = RemoteName::parse(&s, 256);
            let _ = FileId::parse(&s);
            let _ = slave_remote_name(&s, "_x", "jpg");
        }

        #[test]
        fn normal_size_roundtrip(size in 0u64..(1u64 << 40), r in any::<u32>()) {
            let rec = FileNameRecord { source: [1,2,3,4], timestamp: 0, size_field: normal_size_field(size, r), crc32: 0 };
            prop_assert_eq!(rec.file_size(), Some(size));
            prop_assert!(!rec.is_appender());
        }
    }
}
