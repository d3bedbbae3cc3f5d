//! Trunk storage formats (PROTOCOL.md §6.7, §11.5): the trunk location
//! inside a 60-character name, the 24-byte slot header, the trunk file path
//! and `storage_trunk.dat`. Sans-IO: callers read and write the bytes.
//!
//! Trunk location, base64 (no padding) of 12 bytes → 16 characters, placed
//! after the 27-character record of a trunk name:
//!
//! | offset | size | field                           |
//! |--------|------|---------------------------------|
//! | 0      | 4    | trunk file id, int32 BE         |
//! | 4      | 4    | slot offset in the trunk, int32 BE |
//! | 8      | 4    | allocated slot size, int32 BE   |
//!
//! The store path index and the two directory levels of the trunk file are
//! the `Mxx/HH/HH/` of the name itself.
//!
//! Slot header, at the slot's offset inside the trunk file, followed by the
//! file's bytes:
//!
//! | offset | size | field                                              |
//! |--------|------|----------------------------------------------------|
//! | 0      | 1    | file type: `F` regular, `L` link, 0 free           |
//! | 1      | 4    | allocated slot size, int32 BE                      |
//! | 5      | 4    | file size, int32 BE                                |
//! | 9      | 4    | CRC32 of the content, int32 BE                     |
//! | 13     | 4    | mtime (unix seconds), int32 BE                     |
//! | 17     | 7    | ext7 of the name (digits, `.`, extension)          |
//!
//! Trunk file: `<store path>/data/HH/HH/NNNNNN`, NNNNNN the decimal id
//! zero-padded to at least 6 digits.
//!
//! `<base_path>/data/storage_trunk.dat`: the trunk binlog size in bytes on
//! the first line, then one line per free slot,
//! `<ts> A <store path> <high> <low> <id> <offset> <size>` (since 5.01) or
//! the older `<store path> <high> <low> <id> <offset> <size>`, `\n` ends.

use crate::fileid::{
    FileNameRecord, RemoteName, EXT7_LEN, FILENAME_BASE64_LENGTH, TRUNK_FILE_INFO_LEN,
    TRUNK_NAME_LEN,
};
use crate::status::ProtoError;
use crate::trunk_binlog::{TrunkOp, TrunkRecord};
use crate::{base64, fileid::pjw_hash};

/// Size of the header in front of every slot's content.
pub const SLOT_HEADER_LEN: usize = 24;
/// Slot header file type of a regular file.
pub const SLOT_TYPE_REGULAR: u8 = b'F';
/// Slot header file type of a slave stored as a link.
pub const SLOT_TYPE_LINK: u8 = b'L';
/// Slot header file type of a free slot.
pub const SLOT_TYPE_FREE: u8 = 0;
/// Longest content of an `L` slot the original follows: the logic name
/// of the file it stands for, read into a 128-byte buffer with its NUL.
pub const LINK_TARGET_MAX_LEN: usize = 127;
/// Bytes of the trunk location before base64.
pub const TRUNK_INFO_RAW_LEN: usize = 12;
/// Digits of a trunk file's name, zero-padded.
pub const TRUNK_FILE_NAME_DIGITS: usize = 6;
/// Name of the free-space snapshot under `<base_path>/data/`.
pub const TRUNK_DATA_FILE_NAME: &str = "storage_trunk.dat";
/// Length of one FDFSTrunkInfoBuff on the wire (cmds 27/28/29).
pub const TRUNK_INFO_BUFF_LEN: usize = 15;

/// Where a trunk-backed file lives: trunk file and slot (§6.7, FDFSTrunkInfoBuff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkLocation {
    pub store_path_index: u8,
    pub sub_path_high: u8,
    pub sub_path_low: u8,
    pub trunk_file_id: u32,
    /// Offset of the slot (its header) inside the trunk file, bytes.
    pub offset: u32,
    /// Allocated slot size including the header, bytes.
    pub size: u32,
}

impl TrunkLocation {
    /// The 12 bytes behind the 16 base64 characters of a trunk name.
    pub fn info_bytes(&self) -> [u8; TRUNK_INFO_RAW_LEN] {
        let mut out = [0u8; TRUNK_INFO_RAW_LEN];
        out[0..4].copy_from_slice(&self.trunk_file_id.to_be_bytes());
        out[4..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out
    }

    /// The 16 base64 characters placed after the record in a trunk name.
    pub fn encode_info(&self) -> String {
        base64::encode(&self.info_bytes())
    }

    /// Reads `(trunk_file_id, offset, size)` from 16 base64 characters.
    pub fn decode_info(b64: &str) -> Option<(u32, u32, u32)> {
        if b64.len() != TRUNK_FILE_INFO_LEN {
            return None;
        }
        let raw = base64::decode(b64);
        let raw: &[u8; TRUNK_INFO_RAW_LEN] = raw.get(..TRUNK_INFO_RAW_LEN)?.try_into().ok()?;
        let word = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        Some((word(0), word(4), word(8)))
    }

    /// The trunk location of a parsed remote name: a 60-character name
    /// whose size field carries the trunk flag. A name of that length
    /// without the flag is a slave and has none (§6.7).
    pub fn from_remote(name: &RemoteName) -> Option<Self> {
        if name.name.len() != TRUNK_NAME_LEN || !name.record()?.is_trunk() {
            return None;
        }
        let info = name
            .name
            .get(FILENAME_BASE64_LENGTH..FILENAME_BASE64_LENGTH + TRUNK_FILE_INFO_LEN)?;
        let (trunk_file_id, offset, size) = Self::decode_info(info)?;
        Some(TrunkLocation {
            store_path_index: name.store_path_index,
            sub_path_high: name.dir1,
            sub_path_low: name.dir2,
            trunk_file_id,
            offset,
            size,
        })
    }

    /// The remote name of a file stored in this slot. `record` must carry
    /// the trunk flag (see [`trunk_size_field`]); `ext7` is the 7-character
    /// extension part.
    pub fn remote_name(
        &self,
        record: &FileNameRecord,
        ext7: &str,
    ) -> Result<RemoteName, ProtoError> {
        if ext7.len() != EXT7_LEN || !record.is_trunk() {
            return Err(ProtoError::invalid(
                "trunk name needs the trunk flag and a 7-byte ext",
            ));
        }
        let mut name = String::with_capacity(crate::fileid::TRUNK_NAME_LEN);
        name.push_str(&record.encode());
        name.push_str(&self.encode_info());
        name.push_str(ext7);
        // Refuses ext7 text the original could not have produced. The
        // directory parts come from the slot, so they are valid by
        // construction: the name is checked as `RemoteName::parse` would,
        // without formatting and parsing the whole path (a trunk upload's
        // hot path).
        if crate::fileid::classify_name(&name).is_none() {
            return Err(ProtoError::invalid(format!(
                "invalid filename: {}",
                crate::fileid::escape_for_log(&name)
            )));
        }
        Ok(RemoteName {
            store_path_index: self.store_path_index,
            dir1: self.sub_path_high,
            dir2: self.sub_path_low,
            name,
        })
    }

    /// `data/HH/HH/NNNNNN`, relative to the store path.
    pub fn trunk_file_relative_path(&self) -> String {
        trunk_file_relative_path(self.sub_path_high, self.sub_path_low, self.trunk_file_id)
    }

    /// Offset of the file's first content byte inside the trunk file.
    pub fn content_offset(&self) -> u64 {
        u64::from(self.offset) + SLOT_HEADER_LEN as u64
    }

    /// FDFSTrunkInfoBuff (15 bytes), the body part of cmds 27/28/29.
    pub fn to_info_buff(&self) -> [u8; TRUNK_INFO_BUFF_LEN] {
        let mut out = [0u8; TRUNK_INFO_BUFF_LEN];
        out[0] = self.store_path_index;
        out[1] = self.sub_path_high;
        out[2] = self.sub_path_low;
        out[3..].copy_from_slice(&self.info_bytes());
        out
    }

    /// Reads a FDFSTrunkInfoBuff; EINVAL unless exactly 15 bytes.
    pub fn from_info_buff(b: &[u8]) -> Result<Self, ProtoError> {
        let b: &[u8; TRUNK_INFO_BUFF_LEN] = b.try_into().map_err(|_| {
            ProtoError::invalid(format!(
                "trunk info is {} bytes, expect {TRUNK_INFO_BUFF_LEN}",
                b.len()
            ))
        })?;
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(TrunkLocation {
            store_path_index: b[0],
            sub_path_high: b[1],
            sub_path_low: b[2],
            trunk_file_id: word(3),
            offset: word(7),
            size: word(11),
        })
    }
}

/// Size field of a trunk-backed file (§6.3): random high bits like a
/// normal file, the real size below 4 GiB, and bit 59.
pub fn trunk_size_field(size: u32, random: u32) -> u64 {
    crate::fileid::normal_size_field(u64::from(size), random) | crate::fileid::TRUNK_FLAG
}

/// `NNNNNN`: the decimal id zero-padded to 6 digits (longer ids keep all digits).
pub fn trunk_file_name(trunk_file_id: u32) -> String {
    format!("{trunk_file_id:0width$}", width = TRUNK_FILE_NAME_DIGITS)
}

/// `data/HH/HH/NNNNNN`, relative to a store path.
pub fn trunk_file_relative_path(sub_path_high: u8, sub_path_low: u8, trunk_file_id: u32) -> String {
    format!(
        "data/{sub_path_high:02X}/{sub_path_low:02X}/{}",
        trunk_file_name(trunk_file_id)
    )
}

/// The directory pair of a new trunk file with `file_distribute_path_mode
/// = 1`: the PJW hash of the base64 (no padding) of the id's 4 big-endian
/// bytes, as for normal files (§6.5). In round-robin mode (0) the pair is
/// the storage's rotating write position instead, so it cannot be derived
/// from the id: read it from the name or the trunk binlog.
pub fn random_sub_dirs(trunk_file_id: u32, subdir_count_per_path: u32) -> (u8, u8) {
    let seed = base64::encode(&trunk_file_id.to_be_bytes());
    let n = pjw_hash(seed.as_bytes()) % 65536;
    let count = subdir_count_per_path.max(1);
    // Both results are below 256 because n's bytes are.
    (((n >> 8) % count) as u8, ((n & 0xFF) % count) as u8)
}

/// Rounds a file's needed slot (`24 + size`) as the trunk allocator does
/// (§11.5): at least `slot_min_size`, else a multiple of the alignment when
/// one is set.
pub fn slot_size_for(file_size: u64, slot_min_size: u64, alignment: u64) -> u64 {
    let need = SLOT_HEADER_LEN as u64 + file_size;
    if need < slot_min_size {
        slot_min_size
    } else if alignment > 0 && !need.is_multiple_of(alignment) {
        need + (alignment - need % alignment)
    } else {
        need
    }
}

/// The 24-byte header in front of a slot's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotHeader {
    /// [`SLOT_TYPE_REGULAR`], [`SLOT_TYPE_LINK`] or [`SLOT_TYPE_FREE`]; kept
    /// raw so a damaged header survives a round trip for scrubbing.
    pub file_type: u8,
    pub alloc_size: u32,
    pub file_size: u32,
    pub crc32: u32,
    pub mtime: u32,
    /// The name's ext7 bytes as written.
    pub ext7: [u8; EXT7_LEN],
}

impl SlotHeader {
    pub fn encode(&self) -> [u8; SLOT_HEADER_LEN] {
        let mut out = [0u8; SLOT_HEADER_LEN];
        out[0] = self.file_type;
        out[1..5].copy_from_slice(&self.alloc_size.to_be_bytes());
        out[5..9].copy_from_slice(&self.file_size.to_be_bytes());
        out[9..13].copy_from_slice(&self.crc32.to_be_bytes());
        out[13..17].copy_from_slice(&self.mtime.to_be_bytes());
        out[17..24].copy_from_slice(&self.ext7);
        out
    }

    pub fn decode(b: &[u8; SLOT_HEADER_LEN]) -> Self {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut ext7 = [0u8; EXT7_LEN];
        ext7.copy_from_slice(&b[17..24]);
        SlotHeader {
            file_type: b[0],
            alloc_size: word(1),
            file_size: word(5),
            crc32: word(9),
            mtime: word(13),
            ext7,
        }
    }

    /// The header a trunk name implies: what a reader compares byte for
    /// byte with the one on disk (§11.5). None unless `name` is a trunk
    /// name. The mtime is the name's timestamp (trunk names use the upload
    /// start time).
    pub fn expected_for(name: &RemoteName, file_type: u8) -> Option<Self> {
        let loc = TrunkLocation::from_remote(name)?;
        let rec = name.record()?;
        let ext: [u8; EXT7_LEN] = name.name.as_bytes()[TRUNK_NAME_LEN - EXT7_LEN..]
            .try_into()
            .ok()?;
        Some(SlotHeader {
            file_type,
            alloc_size: loc.size,
            file_size: (rec.size_field & 0xFFFF_FFFF) as u32,
            crc32: rec.crc32,
            mtime: rec.timestamp,
            ext7: ext,
        })
    }

    pub fn is_free(&self) -> bool {
        self.file_type == SLOT_TYPE_FREE
    }

    /// The reader's check (§11.5): the slot at the name's location holds
    /// this name's file when its type is `F` or `L` and every other header
    /// byte equals what the name implies. False (ENOENT to the client) for
    /// a free slot, a damaged type or any field that differs.
    pub fn matches_name(on_disk: &[u8; SLOT_HEADER_LEN], name: &RemoteName) -> bool {
        let file_type = on_disk[0];
        if file_type != SLOT_TYPE_REGULAR && file_type != SLOT_TYPE_LINK {
            return false;
        }
        Self::expected_for(name, file_type).is_some_and(|h| h.encode() == *on_disk)
    }
}

/// The file an `L` slot stands for: its content is the logic name
/// (`Mxx/HH/HH/name`) of a data file of the same storage, made by
/// CREATE_LINK (20) or SYNC_CREATE_LINK (19). None for content that is not
/// such a name (too long, not ASCII, a store path we lack, a `-m` name):
/// the slot's bytes come from disk and are checked like a peer's.
pub fn link_target(content: &[u8], store_path_count: usize) -> Option<RemoteName> {
    if content.len() > LINK_TARGET_MAX_LEN {
        return None;
    }
    let text = std::str::from_utf8(content).ok()?;
    let name = RemoteName::parse(text, store_path_count).ok()?;
    name.is_data_file().then_some(name)
}

/// One free slot line of `storage_trunk.dat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSlot {
    /// Time the line was written; 0 for the pre-5.01 six-column form.
    pub timestamp: i64,
    pub location: TrunkLocation,
}

impl FreeSlot {
    /// The trunk binlog `A` record this line of `storage_trunk.dat` is.
    pub fn as_record(&self) -> TrunkRecord {
        TrunkRecord {
            timestamp: self.timestamp,
            op: TrunkOp::AddSpace,
            slot: self.location,
        }
    }
}

/// `storage_trunk.dat`: a snapshot of the free pool at a trunk binlog offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkDataFile {
    /// Size of `data/trunk/binlog` when the snapshot was taken; replay
    /// starts there.
    pub binlog_size: u64,
    pub free: Vec<FreeSlot>,
}

impl TrunkDataFile {
    /// The file as the original writes it: every line in the 8-column
    /// form of a trunk binlog `A` record.
    pub fn print(&self) -> String {
        let mut out = format!("{}\n", self.binlog_size);
        for s in &self.free {
            out.push_str(&s.as_record().to_line());
        }
        out
    }

    /// Reads both line forms. Stricter than the original: a field that is
    /// not a number in range, an op other than `A`, or a last line without
    /// its `\n` is EINVAL instead of a silent 0.
    pub fn parse(text: &str) -> Result<Self, ProtoError> {
        let bad = |line: usize, why: &str| {
            ProtoError::invalid(format!("{TRUNK_DATA_FILE_NAME} line {line}: {why}"))
        };
        let Some(body) = text.strip_suffix('\n') else {
            return Err(bad(0, "missing final newline"));
        };
        let mut lines = body.split('\n');
        let first = lines.next().unwrap_or("");
        let binlog_size = first
            .trim()
            .parse::<u64>()
            .map_err(|_| bad(1, "binlog size is not a number"))?;
        let mut free = Vec::new();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let cols: Vec<&str> = line.split(' ').collect();
            let slot = match cols.as_slice() {
                [_, "A", rest @ ..] if rest.len() == 6 => {
                    let record = TrunkRecord::parse(line).ok_or_else(|| bad(n, "bad field"))?;
                    FreeSlot {
                        timestamp: record.timestamp,
                        location: record.slot,
                    }
                }
                nums if nums.len() == 6 => {
                    let byte = |s: &str| s.parse::<u8>().map_err(|_| bad(n, "bad path field"));
                    let word = |s: &str| s.parse::<u32>().map_err(|_| bad(n, "bad trunk field"));
                    FreeSlot {
                        timestamp: 0,
                        location: TrunkLocation {
                            store_path_index: byte(nums[0])?,
                            sub_path_high: byte(nums[1])?,
                            sub_path_low: byte(nums[2])?,
                            trunk_file_id: word(nums[3])?,
                            offset: word(nums[4])?,
                            size: word(nums[5])?,
                        },
                    }
                }
                _ => return Err(bad(n, "expect 8 or 6 space-separated fields")),
            };
            free.push(slot);
        }
        Ok(TrunkDataFile { binlog_size, free })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileid::{FileKind, TRUNK_FLAG};
    use proptest::prelude::*;

    /// §6.8's inputs with the trunk size field.
    fn example_record() -> FileNameRecord {
        FileNameRecord {
            source: [127, 0, 0, 1],
            timestamp: 1_700_000_000,
            size_field: 0x882B_CDEF_0000_000E,
            crc32: 0x37F9_6DAF,
        }
    }

    const GOLDEN_REMOTE: &str = "M00/00/00/fwAAAWVT8QCIK83vAAAADjf5ba8AAAAAQAABAAAAAEA123.txt";

    fn golden_location() -> TrunkLocation {
        TrunkLocation {
            store_path_index: 0,
            sub_path_high: 0,
            sub_path_low: 0,
            trunk_file_id: 1,
            offset: 1024,
            size: 256,
        }
    }

    #[test]
    fn golden_trunk_name_section_6_8() {
        let loc = golden_location();
        assert_eq!(loc.encode_info(), "AAAAAQAABAAAAAEA");
        let name = loc.remote_name(&example_record(), "123.txt").unwrap();
        assert_eq!(name.to_string(), GOLDEN_REMOTE);
        assert_eq!(name.to_string().len(), crate::TRUNK_LOGIC_FILENAME_LENGTH);

        let parsed = RemoteName::parse(GOLDEN_REMOTE, 1).unwrap();
        assert_eq!(TrunkLocation::from_remote(&parsed), Some(loc));
        assert!(parsed.is_data_file());
        assert_eq!(parsed.kind(), FileKind::Normal);
        let rec = parsed.record().unwrap();
        assert!(rec.is_trunk());
        assert_eq!(rec.file_size(), Some(14));
        assert_eq!(rec.source_ip_text(), "127.0.0.1");
    }

    #[test]
    fn file_id_with_a_trunk_name() {
        let id = crate::FileId::parse(&format!("group1/{GOLDEN_REMOTE}")).unwrap();
        assert_eq!(id.group, "group1");
        let name = RemoteName::parse(&id.remote, 1).unwrap();
        assert_eq!(name.trunk_location(), Some(golden_location()));
        assert_eq!(name.relative_path(), &GOLDEN_REMOTE[4..]);
    }

    #[test]
    fn golden_size_field_from_rand() {
        // §6.8's trunk variant: R = 0x802BCDEF plus bit 59 in the high word.
        assert_eq!(trunk_size_field(14, 0x002B_CDEF), 0x882B_CDEF_0000_000E);
    }

    #[test]
    fn same_length_without_flag_is_a_slave_without_location() {
        let mut rec = example_record();
        rec.size_field &= !TRUNK_FLAG;
        let name = format!("M00/00/00/{}AAAAAQAABAAAAAEA123.txt", rec.encode());
        let parsed = RemoteName::parse(&name, 1).unwrap();
        assert_eq!(parsed.kind(), FileKind::Slave);
        assert_eq!(TrunkLocation::from_remote(&parsed), None);
        assert!(golden_location().remote_name(&rec, "123.txt").is_err());
    }

    #[test]
    fn normal_names_have_no_location() {
        let parsed = RemoteName::parse("M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 1).unwrap();
        assert_eq!(TrunkLocation::from_remote(&parsed), None);
        assert_eq!(SlotHeader::expected_for(&parsed, SLOT_TYPE_REGULAR), None);
    }

    #[test]
    fn location_uses_the_names_path() {
        let mut loc = golden_location();
        loc.store_path_index = 2;
        loc.sub_path_high = 0xAB;
        loc.sub_path_low = 0x0C;
        let name = loc.remote_name(&example_record(), "4821937").unwrap();
        let text = name.to_string();
        assert!(text.starts_with("M02/AB/0C/"), "{text}");
        let back = RemoteName::parse(&text, 3).unwrap();
        assert_eq!(TrunkLocation::from_remote(&back), Some(loc));
        assert_eq!(loc.trunk_file_relative_path(), "data/AB/0C/000001");
    }

    #[test]
    fn trunk_file_paths() {
        assert_eq!(trunk_file_relative_path(0, 0, 1), "data/00/00/000001");
        assert_eq!(
            trunk_file_relative_path(0xFF, 0x10, 123_456),
            "data/FF/10/123456"
        );
        assert_eq!(
            trunk_file_relative_path(1, 2, 1_234_567),
            "data/01/02/1234567"
        );
        assert_eq!(trunk_file_name(42), "000042");
    }

    #[test]
    fn random_sub_dirs_follow_the_pjw_of_the_id() {
        // base64 of 00 00 00 01 is "AAAAAQ".
        assert_eq!(base64::encode(&1u32.to_be_bytes()), "AAAAAQ");
        let n = pjw_hash(b"AAAAAQ") % 65536;
        let (h, l) = random_sub_dirs(1, 256);
        assert_eq!((u32::from(h), u32::from(l)), (n >> 8, n & 0xFF));
        let (h, l) = random_sub_dirs(1, 16);
        assert!(h < 16 && l < 16);
        assert_eq!(random_sub_dirs(7, 0), (0, 0));
    }

    #[test]
    fn slot_sizes() {
        assert_eq!(slot_size_for(14, 256, 0), 256);
        assert_eq!(slot_size_for(1000, 256, 0), 1024);
        assert_eq!(slot_size_for(1000, 256, 512), 1024);
        assert_eq!(slot_size_for(1001, 256, 512), 1536);
        assert_eq!(slot_size_for(232, 256, 0), 256);
    }

    #[test]
    fn golden_slot_header() {
        let parsed = RemoteName::parse(GOLDEN_REMOTE, 1).unwrap();
        let h = SlotHeader::expected_for(&parsed, SLOT_TYPE_REGULAR).unwrap();
        let bytes = h.encode();
        let golden: [u8; SLOT_HEADER_LEN] = [
            b'F', // regular file
            0x00, 0x00, 0x01, 0x00, // alloc 256
            0x00, 0x00, 0x00, 0x0E, // size 14
            0x37, 0xF9, 0x6D, 0xAF, // crc32
            0x65, 0x53, 0xF1, 0x00, // mtime 1700000000
            b'1', b'2', b'3', b'.', b't', b'x', b't',
        ];
        assert_eq!(bytes, golden);
        assert_eq!(SlotHeader::decode(&golden), h);
        assert!(!h.is_free());
        assert!(SlotHeader::decode(&[0u8; SLOT_HEADER_LEN]).is_free());
    }

    #[test]
    fn reader_check_compares_every_header_byte() {
        let parsed = RemoteName::parse(GOLDEN_REMOTE, 1).unwrap();
        let good = SlotHeader::expected_for(&parsed, SLOT_TYPE_REGULAR)
            .unwrap()
            .encode();
        assert!(SlotHeader::matches_name(&good, &parsed));
        let mut link = good;
        link[0] = SLOT_TYPE_LINK;
        assert!(SlotHeader::matches_name(&link, &parsed));
        for i in 0..SLOT_HEADER_LEN {
            let mut bad = good;
            bad[i] ^= 0x01;
            assert!(!SlotHeader::matches_name(&bad, &parsed), "byte {i}");
        }
        let mut free = good;
        free[0] = SLOT_TYPE_FREE;
        assert!(!SlotHeader::matches_name(&free, &parsed));
        let normal = RemoteName::parse("M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 1).unwrap();
        assert!(!SlotHeader::matches_name(&good, &normal));
    }

    #[test]
    fn link_content_names_a_data_file_or_nothing() {
        let target = link_target(GOLDEN_REMOTE.as_bytes(), 1).unwrap();
        assert_eq!(target, RemoteName::parse(GOLDEN_REMOTE, 1).unwrap());
        let plain = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
        assert!(link_target(plain.as_bytes(), 1).is_some());
        // Store path 1 on a one-path storage, a metadata name, bytes that
        // are no name, a name past the original's buffer.
        assert!(link_target(b"M01/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt", 1).is_none());
        assert!(link_target(format!("{plain}-m").as_bytes(), 1).is_none());
        assert!(link_target(b"../../etc/passwd", 1).is_none());
        assert!(link_target(&[0xff; 40], 1).is_none());
        let long = format!("M00/00/00/{}.txt", "A".repeat(LINK_TARGET_MAX_LEN));
        assert!(link_target(long.as_bytes(), 1).is_none());
    }

    #[test]
    fn info_buff_golden() {
        let mut loc = golden_location();
        loc.store_path_index = 1;
        loc.sub_path_high = 2;
        loc.sub_path_low = 3;
        let b = loc.to_info_buff();
        assert_eq!(b, [1, 2, 3, 0, 0, 0, 1, 0, 0, 4, 0, 0, 0, 1, 0]);
        assert_eq!(TrunkLocation::from_info_buff(&b).unwrap(), loc);
        assert!(TrunkLocation::from_info_buff(&b[..14]).is_err());
    }

    #[test]
    fn trunk_data_file_both_forms() {
        let text = "4096\n1700000000 A 0 0 0 1 1024 256\n0 1 2 3 4096 512\n";
        let f = TrunkDataFile::parse(text).unwrap();
        assert_eq!(f.binlog_size, 4096);
        assert_eq!(f.free.len(), 2);
        assert_eq!(f.free[0].timestamp, 1_700_000_000);
        assert_eq!(f.free[0].location, golden_location());
        assert_eq!(f.free[1].timestamp, 0);
        assert_eq!(
            f.free[1].location,
            TrunkLocation {
                store_path_index: 0,
                sub_path_high: 1,
                sub_path_low: 2,
                trunk_file_id: 3,
                offset: 4096,
                size: 512
            }
        );
        assert_eq!(
            f.print(),
            "4096\n1700000000 A 0 0 0 1 1024 256\n0 A 0 1 2 3 4096 512\n"
        );
        assert_eq!(
            TrunkDataFile::parse("0\n").unwrap(),
            TrunkDataFile::default()
        );
    }

    #[test]
    fn trunk_data_file_rejects_damage() {
        for bad in [
            "",
            "12",
            "x\n",
            "1\n1 D 0 0 0 1 0 256\n",
            "1\n1 A 0 0 0 1 0\n",
            "1\n1 A 0 0 0 1 0 256",
            "1\n1 A 0 300 0 1 0 256\n",
            "1\n1 A 0 0 0 1 -5 256\n",
            "1\n\n",
        ] {
            assert!(TrunkDataFile::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn trunk_name_roundtrip(
            idx in 0u8..=255, high in any::<u8>(), low in any::<u8>(),
            id in any::<u32>(), offset in any::<u32>(), size in any::<u32>(),
            src in any::<[u8; 4]>(), ts in any::<u32>(), fsize in any::<u32>(),
            r in any::<u32>(), crc in any::<u32>(), ext in "[A-Za-z0-9._-]{0,6}", digit in 0u8..10,
        ) {
            let loc = TrunkLocation { store_path_index: idx, sub_path_high: high, sub_path_low: low, trunk_file_id: id, offset, size };
            let rec = FileNameRecord { source: src, timestamp: ts, size_field: trunk_size_field(fsize, r), crc32: crc };
            let ext7 = crate::fileid::format_ext7(&ext, || digit);
            let name = loc.remote_name(&rec, &ext7).unwrap();
            let text = name.to_string();
            prop_assert_eq!(text.len(), crate::TRUNK_LOGIC_FILENAME_LENGTH);
            let back = RemoteName::parse(&text, 256).unwrap();
            prop_assert!(back.is_data_file());
            prop_assert_eq!(back.kind(), FileKind::Normal);
            prop_assert_eq!(TrunkLocation::from_remote(&back), Some(loc));
            prop_assert_eq!(back.record(), Some(rec));
            prop_assert_eq!(rec.file_size(), Some(u64::from(fsize)));
            let h = SlotHeader::expected_for(&back, SLOT_TYPE_REGULAR).unwrap();
            prop_assert_eq!(h.alloc_size, size);
            prop_assert_eq!(h.file_size, fsize);
            prop_assert_eq!(&h.ext7[..], ext7.as_bytes());
        }

        #[test]
        fn info_roundtrip(id in any::<u32>(), offset in any::<u32>(), size in any::<u32>(), p in any::<[u8; 3]>()) {
            let loc = TrunkLocation { store_path_index: p[0], sub_path_high: p[1], sub_path_low: p[2], trunk_file_id: id, offset, size };
            let text = loc.encode_info();
            prop_assert_eq!(text.len(), TRUNK_FILE_INFO_LEN);
            prop_assert_eq!(TrunkLocation::decode_info(&text), Some((id, offset, size)));
            prop_assert_eq!(TrunkLocation::from_info_buff(&loc.to_info_buff()).unwrap(), loc);
        }

        #[test]
        fn slot_header_roundtrip(b in any::<[u8; SLOT_HEADER_LEN]>()) {
            prop_assert_eq!(SlotHeader::decode(&b).encode(), b);
        }

        #[test]
        fn trunk_data_file_roundtrip(
            size in any::<u64>(),
            // Slots as the original can hold them: 32-bit signed columns, a
            // slot of at least one byte that ends within the offset range.
            slots in proptest::collection::vec(
                (0i64..=i64::MAX, any::<[u8; 3]>(), (0u32..1 << 31, 0u32..1 << 30, 1u32..1 << 30).prop_map(|(a, b, c)| [a, b, c])),
                0..20,
            ),
        ) {
            let f = TrunkDataFile {
                binlog_size: size,
                free: slots.into_iter().map(|(ts, p, w)| FreeSlot {
                    timestamp: ts,
                    location: TrunkLocation { store_path_index: p[0], sub_path_high: p[1], sub_path_low: p[2], trunk_file_id: w[0], offset: w[1], size: w[2] },
                }).collect(),
            };
            prop_assert_eq!(TrunkDataFile::parse(&f.print()).unwrap(), f);
        }

        #[test]
        fn trunk_data_file_never_panics(s in ".{0,200}") {
            let _ = TrunkDataFile::parse(&s);
        }

        #[test]
        fn info_decode_never_panics(s in ".{0,20}") {
            let _ = TrunkLocation::decode_info(&s);
        }
    }
}
