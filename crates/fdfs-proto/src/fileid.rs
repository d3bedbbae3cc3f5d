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
//!
//! Every name that arrives from a peer (wire, binlog, URL) is checked here,
//! by [`RemoteName::parse`], against the shapes the original can create:
//! after validation a name is ASCII, one token (no space, control character
//! or `/`), and short enough for the original's buffers, so it can go into
//! a binlog line or a path as it is.

use std::borrow::Cow;

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
/// Length of the base64 trunk location inside a trunk file's name (§6.7).
pub const TRUNK_FILE_INFO_LEN: usize = 16;
/// Length of the last component of a normal name: base64 record + ext7.
pub const NORMAL_NAME_LEN: usize = FILENAME_BASE64_LENGTH + EXT7_LEN;
/// Length of the last component of a trunk name.
pub const TRUNK_NAME_LEN: usize = FILENAME_BASE64_LENGTH + TRUNK_FILE_INFO_LEN + EXT7_LEN;
/// Suffix of a data file's metadata companion (`<name>-m`).
pub const METADATA_SUFFIX: &str = "-m";
/// Longest remote name (without group) of a data file the original can
/// create: a slave of a master at the 127-byte limit of UPLOAD_SLAVE_FILE,
/// with a 16-byte prefix and `.` plus a 6-byte extension (§3.2, §6.6).
pub const MAX_DATA_REMOTE_NAME_LEN: usize =
    crate::storage_msg::MAX_FILENAME_LEN - 1 + FILE_PREFIX_MAX_LEN + 1 + FILE_EXT_NAME_MAX_LEN;
/// Longest remote name accepted at all: a data file's, or its metadata's.
pub const MAX_REMOTE_NAME_LEN: usize = MAX_DATA_REMOTE_NAME_LEN + METADATA_SUFFIX.len();
/// Characters of a peer-supplied name quoted in an error message.
const MAX_QUOTED_NAME_CHARS: usize = 160;

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

fn hex_digit_upper(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex2_upper(hi: u8, lo: u8) -> Option<u8> {
    Some(hex_digit_upper(hi)? * 16 + hex_digit_upper(lo)?)
}

fn hex2_any(hi: u8, lo: u8) -> Option<u8> {
    hex2_upper(hi.to_ascii_uppercase(), lo.to_ascii_uppercase())
}

/// The base64 alphabet of names (§6.2.2).
fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Extension and slave prefix characters: `[A-Za-z0-9._-]` (§3.1, §3.2).
fn is_ext_char(b: u8) -> bool {
    is_base64_char(b) || b == b'.'
}

/// A random digit of ext7; `:` is what the original writes when `rand()`
/// returns `RAND_MAX` (quirk 22).
fn is_ext7_digit(b: u8) -> bool {
    b.is_ascii_digit() || b == b':'
}

/// What follows the base64 record: ext7 digits, extension and prefix
/// characters, a trunk location.
fn is_tail_char(b: u8) -> bool {
    is_ext_char(b) || b == b':'
}

/// 27 base64 characters, then at least one more name character.
fn has_name_shape(name: &[u8]) -> bool {
    name.len() > FILENAME_BASE64_LENGTH
        && name.len() <= MAX_REMOTE_NAME_LEN - LOGIC_FILE_PATH_LEN
        && name
            .iter()
            .take(FILENAME_BASE64_LENGTH)
            .all(|&b| is_base64_char(b))
        && name
            .iter()
            .skip(FILENAME_BASE64_LENGTH)
            .all(|&b| is_tail_char(b))
}

/// `format_ext7`'s output: 7 random digits, or digits, `.` and a non-empty
/// extension.
fn is_ext7(part: &[u8]) -> bool {
    if part.len() != EXT7_LEN {
        return false;
    }
    let digits = part.iter().take_while(|&&b| is_ext7_digit(b)).count();
    match part.get(digits..) {
        Some([]) => true,
        Some([b'.', ext @ ..]) => !ext.is_empty() && ext.iter().all(|&b| is_ext_char(b)),
        _ => false,
    }
}

/// A normal (non-trunk, non-slave) name: record + ext7.
fn is_normal_name(name: &[u8]) -> bool {
    name.len() == NORMAL_NAME_LEN && has_name_shape(name) && has_normal_tail(name)
}

/// What a normal name has beyond [`has_name_shape`].
fn has_normal_tail(name: &[u8]) -> bool {
    name.len() == NORMAL_NAME_LEN && is_ext7(&name[FILENAME_BASE64_LENGTH..])
}

/// What a trunk name (record + base64 trunk location + ext7, §6.7) has
/// beyond [`has_name_shape`].
fn has_trunk_tail(name: &[u8]) -> bool {
    let ext_at = FILENAME_BASE64_LENGTH + TRUNK_FILE_INFO_LEN;
    name.len() == TRUNK_NAME_LEN
        && name[FILENAME_BASE64_LENGTH..ext_at]
            .iter()
            .all(|&b| is_base64_char(b))
        && is_ext7(&name[ext_at..])
}

/// What the last component of a remote name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameClass {
    /// A file a client uploaded: normal, appender, trunk or slave.
    Data,
    /// The metadata companion `<data name>-m` of a data file.
    Metadata,
}

/// Classifies the last component of a remote name, or None when the
/// original could not have created it (§6): 27 base64 characters, then
/// ext7, a trunk location and ext7, or a slave's prefix and extension,
/// optionally followed by `-m`. Normal and trunk shapes win over the
/// metadata reading, as their lengths are fixed (an extension may itself
/// end in `-m`); any other name ending in `-m` is the metadata of the name
/// before it when that is a data file's.
pub fn classify_name(name: &str) -> Option<NameClass> {
    let b = name.as_bytes();
    if !has_name_shape(b) {
        return None;
    }
    if has_normal_tail(b) || has_trunk_tail(b) {
        return Some(NameClass::Data);
    }
    if let Some(stem) = name.strip_suffix(METADATA_SUFFIX) {
        if classify_name(stem) == Some(NameClass::Data) {
            return Some(NameClass::Metadata);
        }
    }
    (b.len() <= MAX_DATA_REMOTE_NAME_LEN - LOGIC_FILE_PATH_LEN).then_some(NameClass::Data)
}

/// True for a data-file name whose metadata companion `<name>-m` is not
/// itself a data-file name. Normal and trunk names always are; a slave
/// name the storage is asked to create must be too (the original refuses
/// only the prefix `-m` without an extension, §6.6), or its metadata file
/// would be served as a data file.
pub fn is_creatable_data_name(name: &str) -> bool {
    classify_name(name) == Some(NameClass::Data)
        && classify_name(&format!("{name}{METADATA_SUFFIX}")) == Some(NameClass::Metadata)
}

/// `text` for an error message: at most [`MAX_QUOTED_NAME_CHARS`]
/// characters, quoted and escaped, so peer bytes never forge log lines.
fn quoted(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED_NAME_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_QUOTED_NAME_CHARS).collect();
        format!("{head:?}... ({} bytes)", text.len())
    }
}

/// Peer text made safe for one log line or one space-separated log field:
/// printable ASCII other than space and `\` is kept, every other byte is
/// written as `\xNN`.
pub fn escape_for_log(text: &str) -> Cow<'_, str> {
    let keep = |b: u8| b.is_ascii_graphic() && b != b'\\';
    if text.bytes().all(keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for b in text.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

impl RemoteName {
    /// Validates a remote name the way the storage does (§3.0): `Mxx/` with a
    /// hex store path index below `store_path_count`, then `HH/HH/name` with
    /// upper-case hex and no further `/`. A name without `Mxx/` is a legacy
    /// name on store path 0. Stricter than the original, the last component
    /// must have a shape the original creates ([`classify_name`]: a data
    /// file's name or its `-m` metadata name), and the whole name must fit
    /// [`MAX_REMOTE_NAME_LEN`]; everything else is EINVAL.
    pub fn parse(remote: &str, store_path_count: usize) -> Result<Self, ProtoError> {
        Self::parse_classified(remote, store_path_count).map(|(name, _)| name)
    }

    /// [`Self::parse`], with what the name names (the test
    /// [`Self::is_data_file`] makes, without making it again).
    pub fn parse_classified(
        remote: &str,
        store_path_count: usize,
    ) -> Result<(Self, NameClass), ProtoError> {
        let invalid = || ProtoError::invalid(format!("invalid filename: {}", quoted(remote)));
        let bytes = remote.as_bytes();
        if bytes.len() > MAX_REMOTE_NAME_LEN || !remote.is_ascii() {
            return Err(invalid());
        }
        let (index, rest) = match bytes {
            [b'M', hi, lo, b'/', rest @ ..] => {
                let idx = hex2_any(*hi, *lo).ok_or_else(|| {
                    ProtoError::invalid(format!("invalid store path in {}", quoted(remote)))
                })?;
                (idx, rest)
            }
            [b'M', ..] => return Err(invalid()),
            _ => (0, bytes),
        };
        if usize::from(index) >= store_path_count {
            return Err(ProtoError::invalid(format!(
                "store path index {index} out of range in {}",
                quoted(remote)
            )));
        }
        let [h1, l1, b'/', h2, l2, b'/', name @ ..] = rest else {
            return Err(invalid());
        };
        let (Some(dir1), Some(dir2)) = (hex2_upper(*h1, *l1), hex2_upper(*h2, *l2)) else {
            return Err(invalid());
        };
        // ASCII was checked above, so this cannot fail.
        let name = std::str::from_utf8(name).map_err(|_| invalid())?;
        let Some(class) = classify_name(name) else {
            return Err(invalid());
        };
        let parsed = RemoteName {
            store_path_index: index,
            dir1,
            dir2,
            name: name.to_string(),
        };
        Ok((parsed, class))
    }

    /// True when this names a data file a client may address (download,
    /// delete, info, metadata of it, …): not a `-m` metadata file, and a
    /// shape the original creates. The HTTP gateway uses the same test.
    pub fn is_data_file(&self) -> bool {
        classify_name(&self.name) == Some(NameClass::Data)
    }

    /// True when the whole name is an appender file's: a normal name (an
    /// appender is never a trunk or slave file) with the appender flag.
    /// Slaves of an appender and its `-m` file share its first 27
    /// characters but are not appenders.
    pub fn is_appender_file(&self) -> bool {
        is_normal_name(self.name.as_bytes()) && self.record().is_some_and(|r| r.is_appender())
    }

    /// The 7-character extension part of a normal name (kept by
    /// REGENERATE), None for other names.
    pub fn ext7(&self) -> Option<&str> {
        if is_normal_name(self.name.as_bytes()) {
            self.name.get(FILENAME_BASE64_LENGTH..)
        } else {
            None
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

    /// Where the file lives inside a trunk file, for a 60-character name
    /// with the trunk flag (§6.7); None for every other name.
    pub fn trunk_location(&self) -> Option<crate::trunk::TrunkLocation> {
        crate::trunk::TrunkLocation::from_remote(self)
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
        let mut end = ext.len().min(FILE_EXT_NAME_MAX_LEN);
        while !ext.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(ext.get(..end).unwrap_or_default());
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
        let other = "M01/0A/FF/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
        assert_eq!(RemoteName::parse(other, 2).unwrap().to_string(), other);
        assert_eq!(
            RemoteName::parse("m0a/0A/FF/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 11).ok(),
            None,
            "only the M is fixed case"
        );
        assert_eq!(
            RemoteName::parse("M0a/0A/FF/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 11)
                .unwrap()
                .store_path_index,
            10,
            "the store path index may be lower-case hex, as in the original"
        );
    }

    const NORMAL: &str = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";

    #[test]
    fn names_outside_the_original_shapes_are_refused() {
        let b64 = "fwAAAWVT8QCANFZ4AAAADjf5ba8";
        for bad in [
            // The binlog injection of issue #10: a newline and a forged record.
            format!("M00/00/00/{b64}123.txt\n1700000001 D x"),
            format!("M00/00/00/{b64}123.txt 1 2"),
            format!("M00/00/00/{b64}123.t\x1bxt"),
            format!("M00/00/00/{b64}12\u{e9}\u{e9}.txt"),
            format!("M00/00/00/{b64}123.txt\\"),
            format!("M00/00/00/{b64}123.t*t"),
            format!("M00/00/00/{b64}"),
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5b.8123.txt".to_string(),
            "M00/00/00/x".to_string(),
            "M00/00/00/..".to_string(),
            "M00/00/00/short.txt".to_string(),
            format!("M00/00/00/{b64}{}", "x".repeat(5_000)),
            format!("M00/00/00/{b64}{}", "x".repeat(MAX_REMOTE_NAME_LEN)),
        ] {
            assert!(RemoteName::parse(&bad, 1).is_err(), "{bad:?}");
        }
        let e = RemoteName::parse(&format!("M00/00/00/{b64}123.txt\nX"), 1).unwrap_err();
        assert_eq!(e.status(), crate::Status::EINVAL);
        assert!(!e.to_string().contains('\n'), "{e}");
        let long = RemoteName::parse(&format!("M00/00/00/{}", "é".repeat(5_000)), 1).unwrap_err();
        assert!(long.to_string().len() < 400, "{long}");
    }

    #[test]
    fn every_shape_the_original_creates_is_accepted() {
        let m = "M00/02/E0/fwAAAWsHALGAd-JtAAAAGmuSJBk829.jpg";
        let names = [
            NORMAL.to_string(),
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba87768722".to_string(),
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8.tar.gz".to_string(),
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba850..txt".to_string(),
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba80.a-b_c".to_string(),
            "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba812:.txt".to_string(),
            // trunk (§6.8)
            "M00/00/00/fwAAAWVT8QCIK83vAAAADjf5ba8AAAAAQAABAAAAAEA123.txt".to_string(),
            slave_remote_name(m, "_150x150", "jpg").unwrap(),
            slave_remote_name(m, "_s", "").unwrap(),
            slave_remote_name(m, ".dot", "tx.t").unwrap(),
            slave_remote_name(
                &slave_remote_name(m, "_150x150", "jpg").unwrap(),
                "_ss",
                "txt",
            )
            .unwrap(),
            slave_remote_name(
                &format!("M00/00/00/{}", "A".repeat(117)),
                &"p".repeat(16),
                "abcdef",
            )
            .unwrap(),
        ];
        for n in &names {
            let r = RemoteName::parse(n, 1).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert!(r.is_data_file(), "{n}");
            assert_eq!(&r.to_string(), n);
            let meta = RemoteName::parse(&format!("{n}-m"), 1).unwrap();
            assert!(!meta.is_data_file(), "{n}-m");
            assert!(is_creatable_data_name(&r.name), "{n}");
        }
        assert_eq!(
            names.last().map(String::len),
            Some(MAX_DATA_REMOTE_NAME_LEN)
        );
    }

    #[test]
    fn metadata_names_are_not_data_files() {
        let meta = RemoteName::parse(&format!("{NORMAL}-m"), 1).unwrap();
        assert!(!meta.is_data_file());
        assert!(!meta.is_appender_file());
        // An extension may end in `-m`: a normal name is still a data file.
        let ext_m = RemoteName::parse("M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8000.a-m", 1).unwrap();
        assert!(ext_m.is_data_file());
        // ...which is why a slave `…000.a` may not be created: its metadata
        // file would have that very name.
        assert!(!is_creatable_data_name("fwAAAWVT8QCANFZ4AAAADjf5ba8000.a"));
        assert!(is_creatable_data_name("fwAAAWVT8QCANFZ4AAAADjf5ba8000_a"));
        // Prefix `-m` without extension (refused by the original too).
        let s = slave_remote_name(NORMAL, "-m", "").unwrap();
        assert!(!RemoteName::parse(&s, 1).unwrap().is_data_file());
    }

    #[test]
    fn appender_check_covers_the_whole_name() {
        let mut app = example();
        app.size_field = appender_size_field(7);
        let name = format!("M00/00/00/{}123.log", app.encode());
        let r = RemoteName::parse(&name, 1).unwrap();
        assert!(r.is_appender_file());
        assert_eq!(r.ext7(), Some("123.log"));
        for other in [
            format!("{name}-m"),
            slave_remote_name(&name, "_s", "log").unwrap(),
        ] {
            let o = RemoteName::parse(&other, 1).unwrap();
            assert!(o.record().unwrap().is_appender(), "shares the record");
            assert!(!o.is_appender_file(), "{other}");
            assert_eq!(o.ext7(), None);
        }
        assert!(!RemoteName::parse(NORMAL, 1).unwrap().is_appender_file());
    }

    #[test]
    fn log_escaping() {
        assert_eq!(escape_for_log(NORMAL), NORMAL);
        assert_eq!(
            escape_for_log("a b\n1700000001 D x\u{1b}[2J\\é"),
            "a\\x20b\\x0a1700000001\\x20D\\x20x\\x1b[2J\\x5c\\xc3\\xa9"
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

    /// The invariants every name parser keeps on any input: no panic, and
    /// an accepted name is one token of the name alphabet that re-parses to
    /// itself and maps to `HH/HH/<name>` inside the data directory.
    fn check_parsers(s: &str, store_paths: usize) -> Result<(), TestCaseError> {
        let _ = FileId::parse(s);
        let _ = slave_remote_name(s, "_x", "jpg");
        let _ = format_ext7(s, || 1);
        let _ = ext_from_local_name(s);
        let _ = FileNameRecord::decode(s);
        let _ = classify_name(s);
        let _ = escape_for_log(s);
        if let Ok(id) = FileId::parse(s) {
            prop_assert_eq!(id.to_string(), s);
        }
        let Ok(rn) = RemoteName::parse(s, store_paths) else {
            return Ok(());
        };
        prop_assert!(usize::from(rn.store_path_index) < store_paths);
        let shown = rn.to_string();
        prop_assert!(shown.len() <= MAX_REMOTE_NAME_LEN + 4);
        let again = RemoteName::parse(&shown, store_paths);
        prop_assert_eq!(again.as_ref(), Ok(&rn));
        let same_case = s.get(1..3).is_some_and(|i| i == &shown[1..3]);
        if s.starts_with('M') && same_case {
            prop_assert_eq!(&shown, s);
        }
        let rel = rn.relative_path();
        let parts: Vec<&str> = rel.split('/').collect();
        prop_assert_eq!(parts.len(), 3);
        prop_assert!(parts[..2]
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| hex_digit_upper(b).is_some())));
        prop_assert!(parts[2].len() > FILENAME_BASE64_LENGTH);
        prop_assert!(parts[2].bytes().all(is_tail_char), "{:?}", rel);
        prop_assert!(rn.record().is_some());
        prop_assert_eq!(escape_for_log(s), Cow::Borrowed(s));
        if rn.is_appender_file() {
            prop_assert!(rn.is_data_file());
            prop_assert!(rn.ext7().is_some());
        }
        Ok(())
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
        fn remote_name_roundtrip(idx in 0u8..=255, d1 in any::<u8>(), d2 in any::<u8>(), name in "[A-Za-z0-9_-]{27}[A-Za-z0-9_.-]{1,40}") {
            let rn = RemoteName { store_path_index: idx, dir1: d1, dir2: d2, name };
            let parsed = RemoteName::parse(&rn.to_string(), 256).unwrap();
            prop_assert_eq!(parsed, rn);
        }

        #[test]
        fn generated_names_are_data_files(rec in any::<[u8; 20]>(), ext in "[A-Za-z0-9._-]{0,6}", digit in 0u8..10, prefix in "[A-Za-z0-9._-]{1,16}", sext in "[A-Za-z0-9._-]{0,6}") {
            let b64 = base64::encode(&rec);
            let remote = format!("M00/00/00/{b64}{}", format_ext7(&ext, || digit));
            let r = RemoteName::parse(&remote, 1).unwrap();
            prop_assert!(r.is_data_file());
            prop_assert!(is_creatable_data_name(&r.name));
            prop_assert_eq!(r.ext7().map(str::len), Some(EXT7_LEN));
            let meta = format!("{remote}-m");
            prop_assert!(!RemoteName::parse(&meta, 1).unwrap().is_data_file());
            let slave = slave_remote_name(&remote, &prefix, &sext).unwrap();
            let s = RemoteName::parse(&slave, 1).unwrap();
            prop_assert_eq!(s.to_string(), slave);
        }

        #[test]
        fn parse_never_panics(s in ".{0,200}", n in 0usize..300) {
            check_parsers(&s, n)?;
        }

        #[test]
        fn parse_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..200), n in 0usize..300) {
            check_parsers(&String::from_utf8_lossy(&b), n)?;
        }

        #[test]
        fn parse_near_misses(
            m in "(M[0-9A-Fa-f]{2}/|M.{0,3}|)",
            dirs in "([0-9A-F]{2}/[0-9A-F]{2}/|.{0,6})",
            b64 in "[A-Za-z0-9_-]{20,30}",
            tail in "[A-Za-z0-9._:/ \\n\\x00é-]{0,12}(-m)?",
        ) {
            check_parsers(&format!("{m}{dirs}{b64}{tail}"), 256)?;
        }

        #[test]
        fn record_decode_never_panics(s in ".{0,40}") {
            if let Some(rec) = FileNameRecord::decode(&s) {
                prop_assert_eq!(FileNameRecord::decode(&rec.encode()), Some(rec));
            }
        }

        #[test]
        fn normal_size_roundtrip(size in 0u64..(1u64 << 40), r in any::<u32>()) {
            let rec = FileNameRecord { source: [1,2,3,4], timestamp: 0, size_field: normal_size_field(size, r), crc32: 0 };
            prop_assert_eq!(rec.file_size(), Some(size));
            prop_assert!(!rec.is_appender());
        }
    }
}
