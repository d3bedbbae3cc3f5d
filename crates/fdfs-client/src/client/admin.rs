//! Admin commands that must reach every tracker (delete a storage or a
//! group) or the leader (set the trunk server, list the trackers), how
//! their per-tracker answers combine, and the cluster statistics (96–98).

use fdfs_proto::cluster_stat::{
    StorageClusterStat, StorageStatFilter, TrackerStatEntry, TrackerStatFilter, VolumnStat,
    VolumnStatFilter,
};
use fdfs_proto::stat::storage_status;
use fdfs_proto::Status;

use super::{Client, TrackerFuture};
use crate::error::ClientError;
use crate::tracker::TrackerClient;

impl Client {
    /// Runs `f` on tracker number `index` alone (no failover); `args` is
    /// lent to it as in [`Client::with_tracker`].
    async fn on_tracker<A, T, F>(&self, index: usize, args: &A, mut f: F) -> Result<T, ClientError>
    where
        F: for<'t, 'c> FnMut(&'t mut TrackerClient<'c>, &'t A) -> TrackerFuture<'t, T>,
    {
        let mut conn = self.connect_tracker(index).await?;
        let res = f(&mut TrackerClient::new(&mut conn), args).await;
        self.release(conn, res.is_ok()).await;
        res
    }

    /// Runs `f` on every tracker in order, collecting each result.
    async fn on_every_tracker<A, T, F>(&self, args: A, mut f: F) -> Vec<Result<T, ClientError>>
    where
        F: for<'t, 'c> FnMut(&'t mut TrackerClient<'c>, &'t A) -> TrackerFuture<'t, T>,
    {
        let mut out = Vec::with_capacity(self.opts.trackers.len());
        for i in 0..self.opts.trackers.len() {
            out.push(self.on_tracker(i, &args, &mut f).await);
        }
        out
    }

    /// Deletes a storage from a group on every tracker (93). Refused with
    /// EBUSY while any tracker sees it ONLINE/ACTIVE; ENOENT only when no
    /// tracker knows it; EALREADY (already deleted) counts as success.
    pub async fn delete_storage(&self, group: &str, storage_id: &str) -> Result<(), ClientError> {
        let listings = self
            .on_every_tracker((group, storage_id), |t, &(group, storage_id)| {
                Box::pin(t.list_storages(group, Some(storage_id)))
            })
            .await;
        for stats in listings.iter().flatten() {
            if stats.iter().any(|s| {
                matches!(
                    s.status,
                    storage_status::ONLINE | storage_status::ACTIVE | storage_status::RECOVERY
                )
            }) {
                return Err(ClientError::Status(Status::EBUSY));
            }
        }
        let results = self
            .on_every_tracker((group, storage_id), |t, &(group, storage_id)| {
                Box::pin(t.delete_storage(group, storage_id))
            })
            .await;
        fold_all_trackers(results)
    }

    /// Deletes an empty group on every tracker (108).
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let results = self
            .on_every_tracker(group, |t, group| Box::pin(t.delete_group(group)))
            .await;
        fold_all_trackers(results)
    }

    /// Sets the trunk server of a group; only the leader accepts, so each
    /// tracker is tried until one does. Returns the new trunk server id.
    pub async fn set_trunk_server(
        &self,
        group: &str,
        storage_id: &str,
    ) -> Result<String, ClientError> {
        let args = (group, storage_id);
        let mut last = None;
        for i in 0..self.opts.trackers.len() {
            let set = self.on_tracker(i, &args, |t, &(group, storage_id)| {
                Box::pin(t.set_trunk_server(group, storage_id))
            });
            match set.await {
                Ok(id) => return Ok(id),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid("no tracker server configured".into())))
    }
}

impl Client {
    /// TRACKER_CLUSTER_STAT (96) as the C client runs it: ask a tracker
    /// for the leader (95), then ask the leader.
    pub async fn tracker_cluster_stat(
        &self,
        filter: &TrackerStatFilter,
    ) -> Result<Vec<TrackerStatEntry>, ClientError> {
        let leader = self
            .with_tracker((), |t, _| Box::pin(t.get_leader()))
            .await?;
        let mut conn = self.connect(&leader).await?;
        let res = TrackerClient::new(&mut conn)
            .tracker_cluster_stat(filter)
            .await;
        self.release(conn, res.is_ok()).await;
        res
    }

    /// STORAGE_CLUSTER_STAT (97) on any tracker.
    pub async fn storage_cluster_stat(
        &self,
        filter: &StorageStatFilter,
    ) -> Result<StorageClusterStat, ClientError> {
        self.with_tracker(*filter, |t, f| Box::pin(t.storage_cluster_stat(f)))
            .await
    }

    /// STORAGE_VOLUMN_STAT (98) on any tracker.
    pub async fn storage_volumn_stat(
        &self,
        filter: &VolumnStatFilter,
    ) -> Result<VolumnStat, ClientError> {
        self.with_tracker(*filter, |t, f| Box::pin(t.storage_volumn_stat(f)))
            .await
    }
}

/// Combines per-tracker results of an admin command sent to all trackers:
/// ENOENT only if every tracker said so; EALREADY is success; any other
/// error is returned.
fn fold_all_trackers(results: Vec<Result<(), ClientError>>) -> Result<(), ClientError> {
    let total = results.len();
    let mut enoent = 0;
    for r in results {
        match r {
            Ok(()) => {}
            Err(ClientError::Status(Status::ENOENT)) => enoent += 1,
            Err(ClientError::Status(Status::EALREADY)) => {}
            Err(e) => return Err(e),
        }
    }
    if total > 0 && enoent == total {
        return Err(ClientError::Status(Status::ENOENT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_results_fold_like_the_c_library() {
        let st = |s: Status| Err(ClientError::Status(s));
        assert!(fold_all_trackers(vec![Ok(()), st(Status::ENOENT)]).is_ok());
        assert_eq!(
            fold_all_trackers(vec![st(Status::ENOENT), st(Status::ENOENT)])
                .unwrap_err()
                .errno(),
            2
        );
        assert!(fold_all_trackers(vec![st(Status::EALREADY), Ok(())]).is_ok());
        assert_eq!(
            fold_all_trackers(vec![Ok(()), st(Status::EBUSY)])
                .unwrap_err()
                .errno(),
            16
        );
    }
}
