//! What the upload tools add to an ENOSPC answer: which storage and store
//! path had no room and why (its free space against the tracker's
//! `reserved_storage_space`, with the figures), from the tracker's lists.

use fdfs_client::{Client, ClientError};
use fdfs_proto::stat::{GroupStat, StorageStat};
use fdfs_proto::tracker_msg::ServerAddr;

/// Where an upload that got ENOSPC was going, as far as the tool knows.
#[derive(Debug, Default, Clone)]
pub struct UploadTarget {
    pub group: Option<String>,
    pub storage: Option<ServerAddr>,
    pub store_path_index: Option<i8>,
}

/// True when `e` is the "no space" status (28).
pub fn is_no_space(e: &ClientError) -> bool {
    matches!(e, ClientError::Status(s) if *s == fdfs_proto::Status::ENOSPC)
}

/// The explanation lines for an ENOSPC, one fact each. A tracker that
/// cannot be asked leaves only what the tool knows itself.
pub async fn explain(client: &Client, target: &UploadTarget) -> Vec<String> {
    let mut lines = Vec::new();
    let refused_by = match (&target.storage, target.store_path_index) {
        (Some(addr), Some(i)) if i >= 0 => format!("storage {addr}, store path {i} (M{i:02X})"),
        (Some(addr), _) => format!("storage {addr} (any store path)"),
        (None, _) => "the cluster (the tracker or the storage it chose)".to_string(),
    };
    lines.push(format!("no space left: refused by {refused_by}"));
    let reserve = match client.tracker_parameters().await {
        Ok(text) => param(&text, "reserved_storage_space"),
        Err(_) => None,
    };
    if let Some(r) = &reserve {
        lines.push(format!(
            "reserved_storage_space = {r} (tracker.conf): a store path must keep more than \
             this free (an absolute reserve is shared among a storage's store paths)"
        ));
    }
    let groups = client.list_groups().await.unwrap_or_default();
    for g in groups.iter().filter(|g| {
        target
            .group
            .as_deref()
            .is_none_or(|want| want == g.group_name)
    }) {
        lines.push(group_line(g));
        for s in client
            .list_storages(&g.group_name, None)
            .await
            .unwrap_or_default()
        {
            let refused = target
                .storage
                .as_ref()
                .is_some_and(|a| a.ip == s.ip_addr && i64::from(a.port) == s.storage_port);
            lines.push(storage_line(&s, refused));
        }
    }
    lines.push(
        "free or add space there (the storage notices within seconds); the storage's log \
         names each store path directory with its free and total MB"
            .to_string(),
    );
    lines
}

/// On ENOSPC, prints the explanation on stderr, each line after `prefix`.
pub async fn print_if_no_space(
    client: &Client,
    e: &ClientError,
    opts: &fdfs_client::UploadOptions,
    prefix: &str,
) {
    if !is_no_space(e) {
        return;
    }
    let target = UploadTarget {
        group: opts.group.clone(),
        storage: opts.storage.clone(),
        store_path_index: opts.store_path_index,
    };
    for line in explain(client, &target).await {
        eprintln!("{prefix}{line}");
    }
}

fn param(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
}

fn group_line(g: &GroupStat) -> String {
    format!(
        "group {}: free {} MB of {} MB, reserved {} MB{}",
        g.group_name,
        g.free_mb,
        g.total_mb,
        g.reserved_mb,
        if g.free_mb <= g.reserved_mb {
            " <- no room"
        } else {
            ""
        }
    )
}

fn storage_line(s: &StorageStat, refused: bool) -> String {
    format!(
        "  storage {}:{}: free {} MB of {} MB over {} store path(s), reserved {} MB, current write path {}{}",
        s.ip_addr,
        s.storage_port,
        s.free_mb,
        s.total_mb,
        s.store_path_count,
        s.reserved_mb,
        s.current_write_path,
        if refused { " <- refused this upload" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_read_from_the_parameter_text() {
        let text = "use_storage_id=0\nstore_path=0\nreserved_storage_space=10.00%\n";
        assert_eq!(
            param(text, "reserved_storage_space").as_deref(),
            Some("10.00%")
        );
        assert_eq!(param(text, "missing"), None);
        let g = GroupStat {
            group_name: "group1".into(),
            total_mb: 7,
            free_mb: 0,
            reserved_mb: 1,
            ..Default::default()
        };
        assert_eq!(
            group_line(&g),
            "group group1: free 0 MB of 7 MB, reserved 1 MB <- no room"
        );
    }
}
