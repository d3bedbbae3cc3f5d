//! What a file name alone says about a file (PROTOCOL §6), decoded the way
//! `fdfs_file_info` does before deciding whether to ask the storage.

use fdfs_proto::fileid::{
    file_kind, FileKind, FileNameRecord, FileSource, FILENAME_BASE64_LENGTH, LOGIC_FILE_PATH_LEN,
};
use fdfs_proto::NORMAL_LOGIC_FILENAME_LENGTH;

use crate::error::ClientError;

/// File facts, either decoded from the name or fetched from the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub file_type: FileKind,
    /// Numeric storage id from the name (0 in IP mode).
    pub source_id: u32,
    /// Source storage IP (empty when the name carries an id we cannot map).
    pub source_ip: String,
    pub create_timestamp: i64,
    /// Real size; for appender/slave names decoded locally it is the raw,
    /// meaningless size field, callers should fetch from the server.
    pub file_size: i64,
    pub crc32: u32,
    /// True when size/timestamp/CRC32 came from QUERY_FILE_INFO.
    pub get_from_server: bool,
}

impl FileInfo {
    /// True when the name alone cannot give the right size and CRC32
    /// (appender and slave files) or the source IP is unknown.
    pub fn needs_server(&self) -> bool {
        matches!(self.file_type, FileKind::Appender | FileKind::Slave) || self.source_ip.is_empty()
    }
}

/// Decodes a remote file name (without group). Names shorter than 44
/// characters are rejected with EINVAL, as the C client does.
pub fn decode_remote_name(remote: &str) -> Result<FileInfo, ClientError> {
    if remote.len() < NORMAL_LOGIC_FILENAME_LENGTH {
        return Err(ClientError::Invalid(format!(
            "filename is too short, length: {} < {}",
            remote.len(),
            NORMAL_LOGIC_FILENAME_LENGTH
        )));
    }
    let b64 = remote
        .get(LOGIC_FILE_PATH_LEN..LOGIC_FILE_PATH_LEN + FILENAME_BASE64_LENGTH)
        .ok_or_else(|| ClientError::Invalid(format!("invalid file name: {remote}")))?;
    let rec = FileNameRecord::decode(b64)
        .ok_or_else(|| ClientError::Invalid(format!("invalid file name: {remote}")))?;
    let (source_id, source_ip) = match rec.source() {
        FileSource::ServerId(id) => (id, String::new()),
        FileSource::Ip(ip) => (0, ip.to_string()),
    };
    let file_type = file_kind(remote.len(), rec.size_field);
    let mut file_size = rec.size_field as i64;
    if file_type == FileKind::Normal {
        if let Some(size) = rec.file_size() {
            file_size = size as i64;
        }
    }
    Ok(FileInfo {
        file_type,
        source_id,
        source_ip,
        // The name stores a signed 32-bit timestamp.
        create_timestamp: i64::from(rec.timestamp as i32),
        file_size,
        crc32: if file_type == FileKind::Normal {
            rec.crc32
        } else {
            0
        },
        get_from_server: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_file_from_captured_c_output() {
        // fdfs_file_info on the C cluster printed: source 127.0.0.3, size 14,
        // crc32 235977309 (0x0e10ba5d).
        let info = decode_remote_name("M00/00/00/fwAAA2sHEiWAE_cXAAAADg4Qul0089.txt").unwrap();
        assert_eq!(info.file_type, FileKind::Normal);
        assert_eq!(info.source_id, 0);
        assert_eq!(info.source_ip, "127.0.0.3");
        assert_eq!(info.file_size, 14);
        assert_eq!(info.crc32, 235_977_309);
        assert!(!info.needs_server());
    }

    #[test]
    fn appender_and_slave_need_server() {
        let app = decode_remote_name("M00/00/00/fwAAA2sHEiWEEMCdAAAAAFsPT1A924.txt").unwrap();
        assert_eq!(app.file_type, FileKind::Appender);
        assert!(app.needs_server());
        let slave = decode_remote_name("M00/00/00/fwAAA2sHEiWAXTbRAAAADg4Qul0718_big.txt").unwrap();
        assert_eq!(slave.file_type, FileKind::Slave);
        assert!(slave.needs_server());
    }

    #[test]
    fn short_and_odd_names_are_einval() {
        let e = decode_remote_name("abc").unwrap_err();
        assert_eq!(e.errno(), 22);
        assert_eq!(e.to_string(), "filename is too short, length: 3 < 44");
        // Multi-byte characters straddling the base64 window must not panic.
        assert!(decode_remote_name(&"é".repeat(30)).is_err());
    }

    #[test]
    fn trunk_names_decode_locally_as_normal_files() {
        // PROTOCOL.md §6.8's trunk variant: 14 bytes, bit 59 in the size
        // field, trunk file 1 at offset 1024, slot 256. The size is the low
        // 32 bits of the field, the CRC32 the name's: nothing to ask for.
        let info =
            decode_remote_name("M00/00/00/fwAAAWVT8QCIK83vAAAADjf5ba8AAAAAQAABAAAAAEA123.txt")
                .unwrap();
        assert_eq!(info.file_type, FileKind::Normal);
        assert_eq!(info.file_size, 14);
        assert_eq!(info.crc32, 0x37F9_6DAF);
        assert_eq!(info.source_ip, "127.0.0.1");
        assert_eq!(info.create_timestamp, 1_700_000_000);
        assert!(!info.needs_server());
        // The same length without the flag is a slave, sized by the server.
        let slave =
            decode_remote_name("M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8AAAAAQAABAAAAAEA123.txt")
                .unwrap();
        assert_eq!(slave.file_type, FileKind::Slave);
        assert!(slave.needs_server());
    }

    #[test]
    fn server_id_names_have_no_ip() {
        let info = decode_remote_name("M00/00/00/oYYBAGVT8QCANFZ4AAAADjf5ba8123.txt").unwrap();
        assert_eq!(info.source_id, 100_001);
        assert_eq!(info.source_ip, "");
        assert!(info.needs_server());
    }
}
