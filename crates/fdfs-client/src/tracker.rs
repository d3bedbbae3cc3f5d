//! Tracker commands a client sends (PROTOCOL §2) over one connection:
//! store/fetch/update queries, group and storage listings, admin deletes.
//! Request bodies are built by small pure functions so they can be tested
//! byte for byte.

use bytes::BytesMut;
use fdfs_config::StorageIds;
use fdfs_proto::cluster_stat::{
    decode_tracker_stats, StorageClusterStat, StorageStatFilter, TrackerStatEntry,
    TrackerStatFilter, VolumnStat, VolumnStatFilter,
};
use fdfs_proto::stat::{GroupStat, StorageStat};
use fdfs_proto::tracker_msg::{
    put_group, FetchTargets, GroupFileReq, GroupStorageReq, ServerAddr, StorageIdsReq,
    StorageIdsResp, StoreTarget, StoreTargets,
};
use fdfs_proto::{TrackerCmd, CMD_ACTIVE_TEST};

use crate::conn::Conn;
use crate::error::ClientError;

/// 16-byte NUL-padded group field (longer names are truncated, as the C
/// client does).
pub fn encode_group(group: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_group(&mut b, group);
    b.to_vec()
}

/// Group field followed by a remote file name (cmds 102, 103, 105).
pub fn encode_group_file(group: &str, remote: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    GroupFileReq {
        group: group.to_string(),
        remote: remote.to_string(),
    }
    .encode(&mut b);
    b.to_vec()
}

/// Group field followed by an optional storage id (cmds 92, 93, 94).
pub fn encode_group_storage(group: &str, storage_id: Option<&str>) -> Vec<u8> {
    let mut b = BytesMut::new();
    GroupStorageReq {
        group: group.to_string(),
        storage_id: storage_id.filter(|s| !s.is_empty()).map(str::to_string),
    }
    .encode(&mut b);
    b.to_vec()
}

/// The store query command and body for an optional group (101 / 104).
pub fn store_query(group: Option<&str>, all: bool) -> (TrackerCmd, Vec<u8>) {
    match (group.filter(|g| !g.is_empty()), all) {
        (None, false) => (TrackerCmd::QueryStoreWithoutGroupOne, Vec::new()),
        (None, true) => (TrackerCmd::QueryStoreWithoutGroupAll, Vec::new()),
        (Some(g), false) => (TrackerCmd::QueryStoreWithGroupOne, encode_group(g)),
        (Some(g), true) => (TrackerCmd::QueryStoreWithGroupAll, encode_group(g)),
    }
}

/// Tracker operations over one borrowed connection.
pub struct TrackerClient<'a> {
    conn: &'a mut Conn,
}

impl<'a> TrackerClient<'a> {
    pub fn new(conn: &'a mut Conn) -> Self {
        TrackerClient { conn }
    }

    async fn call(&mut self, cmd: TrackerCmd, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.conn.call(cmd.into(), body).await
    }

    /// Where to upload (101, or 104 when a group is given).
    pub async fn query_store(&mut self, group: Option<&str>) -> Result<StoreTarget, ClientError> {
        let (cmd, body) = store_query(group, false);
        Ok(StoreTarget::decode(&self.call(cmd, &body).await?)?)
    }

    /// Every writable storage of the chosen group (106, or 107 with a group).
    pub async fn query_store_all(
        &mut self,
        group: Option<&str>,
    ) -> Result<StoreTargets, ClientError> {
        let (cmd, body) = store_query(group, true);
        Ok(StoreTargets::decode(&self.call(cmd, &body).await?)?)
    }

    async fn query_one(
        &mut self,
        cmd: TrackerCmd,
        group: &str,
        remote: &str,
    ) -> Result<ServerAddr, ClientError> {
        let body = self.call(cmd, &encode_group_file(group, remote)).await?;
        FetchTargets::decode(&body)?
            .servers
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Invalid("tracker answered no storage".into()))
    }

    /// A storage that can serve a download (102).
    pub async fn query_fetch(
        &mut self,
        group: &str,
        remote: &str,
    ) -> Result<ServerAddr, ClientError> {
        self.query_one(TrackerCmd::QueryFetchOne, group, remote)
            .await
    }

    /// The storage that must apply a change to the file (103).
    pub async fn query_update(
        &mut self,
        group: &str,
        remote: &str,
    ) -> Result<ServerAddr, ClientError> {
        self.query_one(TrackerCmd::QueryUpdate, group, remote).await
    }

    /// Every storage able to serve the file (105).
    pub async fn query_fetch_all(
        &mut self,
        group: &str,
        remote: &str,
    ) -> Result<Vec<ServerAddr>, ClientError> {
        let body = self
            .call(TrackerCmd::QueryFetchAll, &encode_group_file(group, remote))
            .await?;
        Ok(FetchTargets::decode(&body)?.servers)
    }

    /// The cluster parameters a tracker hands its storages (90,
    /// PARAMETER_REQ): `key=value` lines, `reserved_storage_space` among
    /// them.
    pub async fn parameters(&mut self) -> Result<String, ClientError> {
        let body = self.call(TrackerCmd::StorageParameterReq, &[]).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Stats of every group, sorted by name (91).
    pub async fn list_groups(&mut self) -> Result<Vec<GroupStat>, ClientError> {
        let body = self.call(TrackerCmd::ServerListAllGroups, &[]).await?;
        Ok(GroupStat::decode_list(&body)?)
    }

    /// Stats of one group (90).
    pub async fn list_one_group(&mut self, group: &str) -> Result<GroupStat, ClientError> {
        let body = self
            .call(TrackerCmd::ServerListOneGroup, &encode_group(group))
            .await?;
        GroupStat::decode_list(&body)?
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Invalid("empty group stat answer".into()))
    }

    /// Storages of a group, or the one with `storage_id` (92).
    pub async fn list_storages(
        &mut self,
        group: &str,
        storage_id: Option<&str>,
    ) -> Result<Vec<StorageStat>, ClientError> {
        let body = self
            .call(
                TrackerCmd::ServerListStorage,
                &encode_group_storage(group, storage_id),
            )
            .await?;
        if body.is_empty() {
            return Ok(Vec::new());
        }
        Ok(StorageStat::decode_list(&body)?)
    }

    /// Deletes a storage record on this tracker (93).
    pub async fn delete_storage(
        &mut self,
        group: &str,
        storage_id: &str,
    ) -> Result<(), ClientError> {
        self.call(
            TrackerCmd::ServerDeleteStorage,
            &encode_group_storage(group, Some(storage_id)),
        )
        .await
        .map(drop)
    }

    /// Deletes an empty group on this tracker (108).
    pub async fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        self.call(TrackerCmd::ServerDeleteGroup, &encode_group(group))
            .await
            .map(drop)
    }

    /// Sets (or, with an empty id, lets the tracker pick) the trunk server of
    /// a group (94). Returns the new trunk server id.
    pub async fn set_trunk_server(
        &mut self,
        group: &str,
        storage_id: &str,
    ) -> Result<String, ClientError> {
        let body = self
            .call(
                TrackerCmd::ServerSetTrunkServer,
                &encode_group_storage(group, Some(storage_id)),
            )
            .await?;
        Ok(fdfs_proto::wire::fixed_str(&body))
    }

    /// `ip:port` of the leader tracker (95).
    pub async fn get_leader(&mut self) -> Result<String, ClientError> {
        let body = self.call(TrackerCmd::ServerGetLeader, &[]).await?;
        Ok(fdfs_proto::wire::fixed_str(&body))
    }

    /// TRACKER_GET_STATUS (64): the leader flag and election keys.
    pub async fn tracker_status(
        &mut self,
    ) -> Result<fdfs_proto::leader_msg::TrackerStatus, ClientError> {
        let body = self.call(TrackerCmd::TrackerGetStatus, &[]).await?;
        fdfs_proto::leader_msg::TrackerStatus::decode(&body).map_err(ClientError::from)
    }

    /// Replication progress as the tracker knows it (our extension 240; the
    /// original answers EINVAL).
    pub async fn sync_status(
        &mut self,
        group: Option<&str>,
    ) -> Result<Vec<fdfs_proto::tracker_msg::SyncProgress>, ClientError> {
        let mut body = bytes::BytesMut::new();
        if let Some(g) = group {
            fdfs_proto::tracker_msg::put_group(&mut body, g);
        }
        let answer = self.call(TrackerCmd::ServerSyncStatus, &body).await?;
        fdfs_proto::tracker_msg::decode_sync_progress(&answer).map_err(ClientError::from)
    }

    /// TRACKER_CLUSTER_STAT (96) on this connection: only the leader
    /// answers (EOPNOTSUPP elsewhere); see [`crate::Client::tracker_cluster_stat`].
    pub async fn tracker_cluster_stat(
        &mut self,
        filter: &TrackerStatFilter,
    ) -> Result<Vec<TrackerStatEntry>, ClientError> {
        let mut req = BytesMut::new();
        filter.encode(&mut req);
        let body = self
            .call(TrackerCmd::ServerTrackerClusterStat, &req)
            .await?;
        Ok(decode_tracker_stats(&body)?)
    }

    /// STORAGE_CLUSTER_STAT (97): every storage of every group, compact.
    pub async fn storage_cluster_stat(
        &mut self,
        filter: &StorageStatFilter,
    ) -> Result<StorageClusterStat, ClientError> {
        let mut req = BytesMut::new();
        filter.encode(&mut req);
        let body = self
            .call(TrackerCmd::ServerStorageClusterStat, &req)
            .await?;
        Ok(StorageClusterStat::decode(&body)?)
    }

    /// STORAGE_VOLUMN_STAT (98): the space of every group.
    pub async fn storage_volumn_stat(
        &mut self,
        filter: &VolumnStatFilter,
    ) -> Result<VolumnStat, ClientError> {
        let mut req = BytesMut::new();
        filter.encode(&mut req);
        let body = self.call(TrackerCmd::ServerStorageVolumnStat, &req).await?;
        Ok(VolumnStat::decode(&body)?)
    }

    /// Header-only ping (111).
    pub async fn active_test(&mut self) -> Result<(), ClientError> {
        self.conn.call(CMD_ACTIVE_TEST, &[]).await.map(drop)
    }

    /// The tracker's storage id table (69); empty when the tracker runs
    /// in IP mode.
    pub async fn fetch_storage_ids(&mut self) -> Result<StorageIds, ClientError> {
        fetch_storage_ids(self.conn).await
    }
}

/// The C client asks at most this many times for the rest of the id table.
const MAX_STORAGE_ID_REQUESTS: usize = 32;

/// FETCH_STORAGE_IDS (69, §2.14) until the whole table arrived, with
/// `allow_empty` set: a tracker in IP mode answers an empty table.
pub async fn fetch_storage_ids(conn: &mut Conn) -> Result<StorageIds, ClientError> {
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..MAX_STORAGE_ID_REQUESTS {
        let mut body = BytesMut::new();
        StorageIdsReq {
            start_index: i32::try_from(lines.len()).unwrap_or(i32::MAX),
            allow_empty: true,
        }
        .encode(&mut body);
        let answer = conn
            .call(TrackerCmd::StorageFetchStorageIds.into(), &body)
            .await?;
        let chunk = StorageIdsResp::decode(&answer)?;
        let total = usize::try_from(chunk.total).unwrap_or(0);
        if chunk.lines.is_empty() && lines.len() < total {
            return Err(ClientError::Invalid(
                "tracker sent an empty chunk of the storage id table".into(),
            ));
        }
        lines.extend(chunk.lines);
        if lines.len() >= total {
            let text = lines.join("\n");
            return StorageIds::parse_str(&text, std::path::Path::new("tracker storage ids"))
                .map_err(|e| ClientError::Invalid(e.to_string()));
        }
    }
    Err(ClientError::Invalid(
        "storage id table not complete after 32 requests".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_field_is_sixteen_nul_padded_bytes() {
        let b = encode_group("group1");
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..6], b"group1");
        assert!(b[6..].iter().all(|&c| c == 0));
        assert_eq!(encode_group("abcdefghijklmnopqrs").len(), 16);
    }

    #[test]
    fn fetch_request_is_group_then_name() {
        let remote = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
        let b = encode_group_file("group1", remote);
        assert_eq!(b.len(), 16 + 44);
        assert_eq!(&b[16..], remote.as_bytes());
    }

    #[test]
    fn store_query_picks_command_by_group() {
        assert_eq!(
            store_query(None, false),
            (TrackerCmd::QueryStoreWithoutGroupOne, vec![])
        );
        assert_eq!(
            store_query(Some(""), false),
            (TrackerCmd::QueryStoreWithoutGroupOne, vec![])
        );
        let (cmd, body) = store_query(Some("g2"), false);
        assert_eq!(cmd, TrackerCmd::QueryStoreWithGroupOne);
        assert_eq!(body.len(), 16);
        assert_eq!(
            store_query(None, true).0,
            TrackerCmd::QueryStoreWithoutGroupAll
        );
        assert_eq!(
            store_query(Some("g"), true).0,
            TrackerCmd::QueryStoreWithGroupAll
        );
    }

    #[test]
    fn storage_request_appends_id_only_when_given() {
        assert_eq!(encode_group_storage("group1", None).len(), 16);
        assert_eq!(encode_group_storage("group1", Some("")).len(), 16);
        let b = encode_group_storage("group1", Some("127.0.0.1"));
        assert_eq!(&b[16..], b"127.0.0.1");
    }
}
