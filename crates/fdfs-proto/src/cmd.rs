//! Command codes of the tracker and storage protocols, named after the
//! original C constants.

/// Every response carries this command code.
pub const CMD_RESP: u8 = 100;
/// Close the connection; no response.
pub const CMD_QUIT: u8 = 82;
/// fastdfs-rs extension, on tracker and storage: the answer is a nonce the
/// peer must prove the cluster secret against.
pub const CMD_CLUSTER_CHALLENGE: u8 = 230;
/// fastdfs-rs extension: the proof (HMAC of the nonce); EPERM when wrong.
pub const CMD_CLUSTER_PROVE: u8 = 231;
/// Ping; header-only request and response.
pub const CMD_ACTIVE_TEST: u8 = 111;

macro_rules! command_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($variant = $code,)* }

        impl TryFrom<u8> for $name {
            type Error = u8;
            fn try_from(code: u8) -> Result<Self, u8> {
                match code {
                    $($code => Ok($name::$variant),)*
                    other => Err(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(cmd: $name) -> u8 { cmd as u8 }
        }

        impl $name {
            /// The variant's name, as metrics label requests with it.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)*
                }
            }

            /// The name of a command code, when it is one of ours.
            pub fn name_of(code: u8) -> Option<&'static str> {
                $name::try_from(code).ok().map($name::name)
            }
        }
    };
}

command_enum! {
    /// Commands a tracker accepts (`TRACKER_PROTO_CMD_*`).
    TrackerCmd {
        TrackerJoinLeader = 58,
        StorageChangeStatus = 59,
        StorageGetMyIp = 60,
        TrackerGetSysFilesStart = 61,
        TrackerGetSysFilesEnd = 62,
        TrackerGetOneSysFile = 63,
        TrackerGetStatus = 64,
        TrackerPingLeader = 65,
        TrackerNotifyNextLeader = 66,
        TrackerCommitNextLeader = 67,
        TrackerNotifyReselectLeader = 68,
        StorageFetchStorageIds = 69,
        StorageGetServerId = 70,
        StorageGetStatus = 71,
        StorageFetchTrunkFid = 72,
        StorageReportTrunkFid = 73,
        StorageReportTrunkFree = 74,
        StorageParameterReq = 75,
        StorageReportStatus = 76,
        StorageChangelogReq = 77,
        StorageReportIpChanged = 78,
        StorageSyncDestQuery = 79,
        StorageJoin = 81,
        Quit = 82,
        StorageBeat = 83,
        StorageReportDiskUsage = 84,
        StorageReplicaChg = 85,
        StorageSyncSrcReq = 86,
        StorageSyncDestReq = 87,
        StorageSyncNotify = 88,
        StorageSyncReport = 89,
        ServerListOneGroup = 90,
        ServerListAllGroups = 91,
        ServerListStorage = 92,
        ServerDeleteStorage = 93,
        ServerSetTrunkServer = 94,
        ServerGetLeader = 95,
        ServerTrackerClusterStat = 96,
        ServerStorageClusterStat = 97,
        ServerStorageVolumnStat = 98,
        QueryStoreWithoutGroupOne = 101,
        QueryFetchOne = 102,
        QueryUpdate = 103,
        QueryStoreWithGroupOne = 104,
        QueryFetchAll = 105,
        QueryStoreWithoutGroupAll = 106,
        QueryStoreWithGroupAll = 107,
        ServerDeleteGroup = 108,
        StorageGetGroupName = 109,
        ActiveTest = 111,
        // fastdfs-rs extension (not in the original): per-peer sync
        // progress for `fdfs monitor sync`; see tracker_msg::SyncProgress.
        ServerSyncStatus = 240,
        // fastdfs-rs extension: the answer is the tracker's 8-byte instance
        // id, so a tracker can tell that a list entry leads to itself.
        TrackerInstanceId = 241,
        // fastdfs-rs extensions: the cluster secret (fdfs_util::cluster_secret).
        ClusterChallenge = 230,
        ClusterProve = 231,
    }
}

command_enum! {
    /// Commands a storage server accepts (`STORAGE_PROTO_CMD_*`).
    StorageCmd {
        ReportServerId = 9,
        UploadFile = 11,
        DeleteFile = 12,
        SetMetadata = 13,
        DownloadFile = 14,
        GetMetadata = 15,
        SyncCreateFile = 16,
        SyncDeleteFile = 17,
        SyncUpdateFile = 18,
        SyncCreateLink = 19,
        CreateLink = 20,
        UploadSlaveFile = 21,
        QueryFileInfo = 22,
        UploadAppenderFile = 23,
        AppendFile = 24,
        SyncAppendFile = 25,
        FetchOnePathBinlog = 26,
        TrunkAllocSpace = 27,
        TrunkAllocConfirm = 28,
        TrunkFreeSpace = 29,
        TrunkSyncBinlog = 30,
        TrunkGetBinlogSize = 31,
        TrunkDeleteBinlogMarks = 32,
        TrunkTruncateBinlogFile = 33,
        ModifyFile = 34,
        SyncModifyFile = 35,
        TruncateFile = 36,
        SyncTruncateFile = 37,
        RegenerateAppenderFilename = 38,
        SyncRenameFile = 40,
        Quit = 82,
        // fastdfs-rs extensions: the cluster secret (fdfs_util::cluster_secret).
        ClusterChallenge = 230,
        ClusterProve = 231,
        // fastdfs-rs extension: disk recovery progress for `fdfs monitor
        // sync` (storage_msg::RecoveryProgress), answered while recovering.
        RecoveryProgress = 242,
        // fastdfs-rs extension: `fdfs trunk check` (trunk_scrub): slot
        // headers against the trunk binlog, and the repairs it proves safe.
        TrunkScrub = 243,
        ActiveTest = 111,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip() {
        for code in 0..=255u8 {
            if let Ok(c) = TrackerCmd::try_from(code) {
                assert_eq!(u8::from(c), code);
            }
            if let Ok(c) = StorageCmd::try_from(code) {
                assert_eq!(u8::from(c), code);
            }
        }
        assert_eq!(TrackerCmd::try_from(80), Err(80));
        assert_eq!(StorageCmd::try_from(39), Err(39));
        assert_eq!(StorageCmd::try_from(11), Ok(StorageCmd::UploadFile));
    }
}
