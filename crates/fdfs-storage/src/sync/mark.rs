//! The mark file of one peer (`data/sync/<peer ip>_<our port>.mark`, or
//! `<peer id>.mark` with storage ids, §5.2): how far into our binlog the
//! peer has been sent, and where its full sync stands, in the original's
//! `key=value` format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fdfs_proto::stat::StorageBrief;

use crate::state::Storage;

/// Replication progress towards one peer, in the original's mark format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    pub binlog_index: u32,
    pub binlog_offset: u64,
    pub need_sync_old: bool,
    pub sync_old_done: bool,
    pub until_timestamp: i64,
    pub scan_row_count: u64,
    pub sync_row_count: u64,
}

impl Mark {
    pub fn to_text(&self) -> String {
        format!(
            "binlog_index={}\nbinlog_offset={}\nneed_sync_old={}\nsync_old_done={}\nuntil_timestamp={}\nscan_row_count={}\nsync_row_count={}\n",
            self.binlog_index,
            self.binlog_offset,
            u8::from(self.need_sync_old),
            u8::from(self.sync_old_done),
            self.until_timestamp,
            self.scan_row_count,
            self.sync_row_count
        )
    }

    pub fn parse(text: &str) -> Option<Mark> {
        let map: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let num = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok());
        Some(Mark {
            binlog_index: num("binlog_index")? as u32,
            binlog_offset: num("binlog_offset")? as u64,
            need_sync_old: num("need_sync_old")? != 0,
            sync_old_done: num("sync_old_done")? != 0,
            until_timestamp: num("until_timestamp")?,
            scan_row_count: num("scan_row_count")? as u64,
            sync_row_count: num("sync_row_count")? as u64,
        })
    }
}

/// `data/sync/<peer id>.mark` in id mode, else `<peer ip>_<our port>.mark` (§5.2).
pub(super) fn mark_path(storage: &Storage, peer: &StorageBrief) -> PathBuf {
    let name = if storage.params().use_storage_id {
        format!("{}.mark", peer.id)
    } else {
        format!("{}_{}.mark", peer.ip_addr, storage.port)
    };
    storage.data_dir().join("sync").join(name)
}

/// Writes the mark file durably (two fsyncs) on the blocking pool.
pub(super) async fn save_mark(path: &Path, mark: &Mark) {
    let (path, text) = (path.to_path_buf(), mark.to_text());
    let written = tokio::task::spawn_blocking(move || {
        crate::state::write_atomic(&path, text.as_bytes()).map_err(|e| (e, path))
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err((e, path))) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot write mark file")
        }
        Err(e) => tracing::warn!(error = %e, "mark file task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_file_format() {
        let m = Mark {
            binlog_index: 0,
            binlog_offset: 996,
            need_sync_old: true,
            sync_old_done: true,
            until_timestamp: 1_795_623_843,
            scan_row_count: 16,
            sync_row_count: 15,
        };
        assert_eq!(
            m.to_text(),
            "binlog_index=0\nbinlog_offset=996\nneed_sync_old=1\nsync_old_done=1\nuntil_timestamp=1795623843\nscan_row_count=16\nsync_row_count=15\n"
        );
        assert_eq!(Mark::parse(&m.to_text()), Some(m));
        assert_eq!(Mark::parse("binlog_index=0\n"), None);
    }
}
