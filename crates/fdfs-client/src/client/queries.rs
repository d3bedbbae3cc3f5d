//! Tracker questions with failover: where to store, where a file lives,
//! the cluster's groups and storages, and the storage id table.

use std::sync::Arc;

use fdfs_config::StorageIds;
use fdfs_proto::stat::{GroupStat, StorageStat};
use fdfs_proto::tracker_msg::{ServerAddr, StoreTarget, StoreTargets};
use fdfs_proto::FileId;

use super::Client;
use crate::error::ClientError;

impl Client {
    pub async fn query_store(&self, group: Option<&str>) -> Result<StoreTarget, ClientError> {
        self.with_tracker(group, |t, &group| Box::pin(t.query_store(group)))
            .await
    }

    pub async fn query_store_all(&self, group: Option<&str>) -> Result<StoreTargets, ClientError> {
        self.with_tracker(group, |t, &group| Box::pin(t.query_store_all(group)))
            .await
    }

    pub async fn query_fetch(&self, id: &FileId) -> Result<ServerAddr, ClientError> {
        self.with_tracker(id, |t, id| Box::pin(t.query_fetch(&id.group, &id.remote)))
            .await
    }

    pub async fn query_update(&self, id: &FileId) -> Result<ServerAddr, ClientError> {
        self.with_tracker(id, |t, id| Box::pin(t.query_update(&id.group, &id.remote)))
            .await
    }

    pub async fn query_fetch_all(&self, id: &FileId) -> Result<Vec<ServerAddr>, ClientError> {
        self.with_tracker(id, |t, id| {
            Box::pin(t.query_fetch_all(&id.group, &id.remote))
        })
        .await
    }

    /// The tracker's cluster parameters (see [`TrackerClient::parameters`]).
    pub async fn tracker_parameters(&self) -> Result<String, ClientError> {
        self.with_tracker((), |t, _| Box::pin(t.parameters())).await
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupStat>, ClientError> {
        self.with_tracker((), |t, _| Box::pin(t.list_groups()))
            .await
    }

    pub async fn list_group(&self, group: &str) -> Result<GroupStat, ClientError> {
        self.with_tracker(group, |t, group| Box::pin(t.list_one_group(group)))
            .await
    }

    pub async fn list_storages(
        &self,
        group: &str,
        storage_id: Option<&str>,
    ) -> Result<Vec<StorageStat>, ClientError> {
        self.with_tracker((group, storage_id), |t, &(group, storage_id)| {
            Box::pin(t.list_storages(group, storage_id))
        })
        .await
    }

    pub async fn active_test_tracker(&self) -> Result<(), ClientError> {
        self.with_tracker((), |t, _| Box::pin(t.active_test()))
            .await
    }

    /// The tracker's storage id table (FETCH_STORAGE_IDS, 69), fetched
    /// once; empty when the trackers run in IP mode.
    pub async fn storage_ids(&self) -> Result<Arc<StorageIds>, ClientError> {
        self.storage_ids
            .get_or_try_init(|| async {
                self.with_tracker((), |t, _| Box::pin(t.fetch_storage_ids()))
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The first address of storage id `id` (file names in id mode carry
    /// the id instead of an IP); empty when no tracker knows it, so callers
    /// ask the storage instead, as the C client does.
    pub async fn storage_address(&self, id: u32) -> String {
        match self.storage_ids().await {
            Ok(ids) => ids
                .find_by_id(&id.to_string())
                .and_then(|e| e.hosts.first().cloned())
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot fetch the storage id table");
                String::new()
            }
        }
    }
}
