//! Builds a trunk data directory by hand with the `fdfs_proto` codecs, as
//! the original's storage leaves it: trunk files `data/HH/HH/NNNNNN` with
//! 24-byte slot headers, 60-character names, and the storage binlog's
//! CREATE records. Independent of the storage's own slot code, so tests
//! read through the server what was laid down here.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fdfs_proto::fileid::{FileNameRecord, RemoteName};
use fdfs_proto::trunk::{
    slot_size_for, trunk_size_field, SlotHeader, TrunkLocation, SLOT_HEADER_LEN, SLOT_TYPE_LINK,
    SLOT_TYPE_REGULAR,
};

/// Slot rounding of the original's defaults (`slot_min_size`, bytes).
pub const SLOT_MIN_BYTES: u64 = 256;

/// One file placed into a trunk slot.
#[derive(Debug, Clone)]
pub struct TrunkFixtureFile {
    /// `Mxx/HH/HH/<60 characters>`, without the group.
    pub remote: String,
    pub content: Vec<u8>,
    pub loc: TrunkLocation,
    /// The name's timestamp, which is also the header's mtime.
    pub timestamp: u32,
    /// For an `L` slot: the name it stands for (`content` is that name).
    pub link_to: Option<String>,
}

/// Lays out files in trunk files of one store path.
#[derive(Debug)]
pub struct TrunkDirBuilder {
    store_root: PathBuf,
    store_path_index: u8,
    trunk_file_size: u64,
    source: [u8; 4],
    /// Next free offset of each trunk file (id, dirs) written so far.
    next: Vec<(TrunkLocation, u64)>,
    pub files: Vec<TrunkFixtureFile>,
}

impl TrunkDirBuilder {
    /// Trunk files of `trunk_file_size` bytes (sparse) under `store_root`,
    /// names carrying 127.0.0.1 as their source.
    pub fn new(store_root: &Path, store_path_index: u8, trunk_file_size: u64) -> Self {
        TrunkDirBuilder {
            store_root: store_root.to_path_buf(),
            store_path_index,
            trunk_file_size,
            source: [127, 0, 0, 1],
            next: Vec::new(),
            files: Vec::new(),
        }
    }

    /// The source address written into the names.
    pub fn source(mut self, ip: [u8; 4]) -> Self {
        self.source = ip;
        self
    }

    /// Path of a trunk file of this builder.
    pub fn trunk_file_path(&self, loc: &TrunkLocation) -> PathBuf {
        self.store_root.join(loc.trunk_file_relative_path())
    }

    /// Stores `content` in the next slot of trunk file `trunk_file_id` in
    /// `data/<high>/<low>`, with extension `ext` (`ext7` made from it with
    /// the digits `123`), and returns the file.
    pub fn add(
        &mut self,
        dirs: (u8, u8, u32),
        content: &[u8],
        ext: &str,
        timestamp: u32,
    ) -> TrunkFixtureFile {
        let crc32 = crc32fast::hash(content);
        self.place(dirs, content, ext, timestamp, SLOT_TYPE_REGULAR, crc32)
    }

    /// An `L` slot standing for `target` (a name of this store path), as
    /// the original's CREATE_LINK (20) leaves one: its content is the
    /// target's name, its CRC32 a random number (the original's `rand()`).
    pub fn add_link(
        &mut self,
        dirs: (u8, u8, u32),
        target: &str,
        ext: &str,
        timestamp: u32,
    ) -> TrunkFixtureFile {
        let random_crc32 = 0x5eed_0000 | (self.files.len() as u32);
        let mut f = self.place(
            dirs,
            target.as_bytes(),
            ext,
            timestamp,
            SLOT_TYPE_LINK,
            random_crc32,
        );
        f.link_to = Some(target.to_string());
        *self.files.last_mut().expect("just placed") = f.clone();
        f
    }

    fn place(
        &mut self,
        (high, low, trunk_file_id): (u8, u8, u32),
        content: &[u8],
        ext: &str,
        timestamp: u32,
        file_type: u8,
        crc32: u32,
    ) -> TrunkFixtureFile {
        let slot_size = slot_size_for(content.len() as u64, SLOT_MIN_BYTES, 0);
        let key = TrunkLocation {
            store_path_index: self.store_path_index,
            sub_path_high: high,
            sub_path_low: low,
            trunk_file_id,
            offset: 0,
            size: 0,
        };
        let offset = match self.next.iter_mut().find(|(k, _)| *k == key) {
            Some((_, next)) => {
                let at = *next;
                *next += slot_size;
                at
            }
            None => {
                self.next.push((key, slot_size));
                0
            }
        };
        let loc = TrunkLocation {
            offset: u32::try_from(offset).expect("offset fits"),
            size: u32::try_from(slot_size).expect("slot fits"),
            ..key
        };
        let (name, header) = name_and_header(
            &loc,
            self.source,
            timestamp,
            (content.len(), crc32),
            ext,
            file_type,
        );
        self.write_slot(&loc, &header.encode(), content);
        let file = TrunkFixtureFile {
            remote: name.to_string(),
            content: content.to_vec(),
            loc,
            timestamp,
            link_to: None,
        };
        self.files.push(file.clone());
        file
    }

    /// Writes raw header bytes and content at a slot (also for damaged
    /// slots a test makes on purpose).
    pub fn write_slot(&self, loc: &TrunkLocation, header: &[u8; SLOT_HEADER_LEN], content: &[u8]) {
        let path = self.trunk_file_path(loc);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("trunk dir");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("trunk file");
        if file.metadata().expect("stat").len() < self.trunk_file_size {
            file.set_len(self.trunk_file_size).expect("set_len");
        }
        file.write_all_at(header, u64::from(loc.offset))
            .expect("header");
        file.write_all_at(content, loc.content_offset())
            .expect("content");
    }

    /// The storage binlog lines (`<ts> C <name>`, `<ts> L <link> <target>`)
    /// that record every file added so far, as the storage that took the
    /// uploads writes them.
    pub fn binlog_lines(&self) -> String {
        self.files
            .iter()
            .map(|f| match &f.link_to {
                Some(target) => format!("{} L {} {target}\n", f.timestamp, f.remote),
                None => format!("{} C {}\n", f.timestamp, f.remote),
            })
            .collect()
    }

    /// Appends [`Self::binlog_lines`] to `<base_path>/data/sync/binlog.000`
    /// (the storage must be stopped).
    pub fn append_binlog(&self, base_path: &Path) {
        use std::io::Write;
        let dir = base_path.join("data/sync");
        std::fs::create_dir_all(&dir).expect("sync dir");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("binlog.000"))
            .expect("binlog");
        f.write_all(self.binlog_lines().as_bytes())
            .expect("binlog write");
    }
}

/// The 60-character name, and the slot header, of a file of `len` bytes
/// with CRC32 `crc32` stored in slot `loc` from `source` at `timestamp`,
/// as the original makes them (extension `ext`, its `ext7` padded with the
/// digit 1 where the original draws random digits: `111.bin` for `bin`).
pub fn name_and_header(
    loc: &TrunkLocation,
    source: [u8; 4],
    timestamp: u32,
    (len, crc32): (usize, u32),
    ext: &str,
    file_type: u8,
) -> (RemoteName, SlotHeader) {
    let record = FileNameRecord {
        source,
        timestamp,
        size_field: trunk_size_field(u32::try_from(len).expect("slot-sized file"), 0x0012_3456),
        crc32,
    };
    let ext7 = fdfs_proto::fileid::format_ext7(ext, || 1);
    let name = loc.remote_name(&record, &ext7).expect("trunk name");
    let header = SlotHeader::expected_for(&name, file_type).expect("header");
    (name, header)
}

/// The parsed name of a fixture file (for codecs that want one).
pub fn parse_name(remote: &str) -> RemoteName {
    RemoteName::parse(remote, 256).expect("fixture name")
}

/// The slot right after `loc` in its trunk file, of the same size: where
/// the next allocation of that size goes while the trunk server allocates
/// sequentially (a fresh trunk file, no frees).
pub fn slot_after(loc: &TrunkLocation) -> TrunkLocation {
    TrunkLocation {
        offset: loc.offset + loc.size,
        ..*loc
    }
}

/// A file header that no file name has, for a slot of `alloc_size`
/// bytes: what an upload cut short by a crash leaves, or another file's
/// header where a slot is handed out twice.
pub fn stray_header(alloc_size: u32, file_size: u32) -> SlotHeader {
    SlotHeader {
        file_type: SLOT_TYPE_REGULAR,
        alloc_size,
        file_size,
        crc32: 0x1234_5678,
        mtime: 1_700_000_000,
        ext7: *b"bin\0\0\0\0",
    }
}
