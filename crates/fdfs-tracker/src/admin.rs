//! Admin and monitoring commands (PROTOCOL.md §2.4–§2.15): group and
//! storage listings, deletes, leader and tracker status, cluster parameters.

use bytes::BytesMut;
use fdfs_proto::stat::{GroupStat, StorageStat};
use fdfs_proto::tracker_msg::{decode_group_only, GroupStorageReq};
use fdfs_proto::Status;

use crate::handler::{expect_no_body, HandlerResult, OpError};
use crate::state::{no_group, no_storage, Group};
use crate::{now_secs, persist, Tracker};

fn b(v: bool) -> u8 {
    u8::from(v)
}

/// PARAMETER_REQ (75): the 26 `key=value` lines of §2.13.
pub fn parameter_req(t: &Tracker, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    let mut conf = t.conf.clone();
    conf.reserved_storage_space = t.params().reserved;
    Ok(parameter_text(&conf).into_bytes())
}

/// The PARAMETER_REQ text for a configuration.
pub fn parameter_text(c: &fdfs_config::TrackerConf) -> String {
    let id_type = if c.use_storage_id && c.id_type_in_filename.eq_ignore_ascii_case("id") {
        "id"
    } else {
        "ip"
    };
    let hm = |(h, m): (u8, u8)| format!("{h:02}:{m:02}");
    format!(
        "use_storage_id={}\nid_type_in_filename={}\ntrust_storage_server_id={}\n\
         response_ip_addr_size={}\nstorage_ip_changed_auto_adjust={}\n\
         storage_sync_file_max_delay={}\nstore_path={}\nreserved_storage_space={}\n\
         use_trunk_file={}\nslot_min_size={}\nslot_max_size={}\n\
         trunk_alloc_alignment_size={}\ntrunk_file_size={}\ntrunk_create_file_advance={}\n\
         trunk_create_file_time_base={}\ntrunk_create_file_interval={}\n\
         trunk_create_file_space_threshold={}\ntrunk_init_check_occupying={}\n\
         trunk_init_reload_from_binlog={}\ntrunk_free_space_merge={}\n\
         delete_unused_trunk_files={}\ntrunk_compress_binlog_min_interval={}\n\
         trunk_compress_binlog_interval={}\ntrunk_compress_binlog_time_base={}\n\
         trunk_binlog_max_backups={}\nstore_slave_file_use_link={}\n",
        b(c.use_storage_id),
        id_type,
        b(c.trust_storage_server_id),
        c.response_ip_addr_size,
        b(c.storage_ip_changed_auto_adjust),
        c.storage_sync_file_max_delay_secs,
        c.store_path,
        c.reserved_storage_space.to_param_string(),
        b(c.use_trunk_file),
        c.slot_min_size,
        c.slot_max_size,
        c.trunk_alloc_alignment_size_bytes,
        c.trunk_file_size,
        b(c.trunk_create_file_advance),
        hm(c.trunk_create_file_time_base),
        c.trunk_create_file_interval_secs,
        c.trunk_create_file_space_threshold_bytes,
        b(c.trunk_init_check_occupying),
        b(c.trunk_init_reload_from_binlog),
        b(c.trunk_free_space_merge),
        b(c.delete_unused_trunk_files),
        c.trunk_compress_binlog_min_interval_secs,
        c.trunk_compress_binlog_interval_secs,
        hm(c.trunk_compress_binlog_time_base),
        c.trunk_binlog_max_backups,
        b(c.store_slave_file_use_link),
    )
}

pub(crate) fn reserved_mb(t: &Tracker, total_mb: i64) -> i64 {
    let total = u64::try_from(total_mb).unwrap_or(0);
    i64::try_from(t.params().reserved.reserved_mb(total)).unwrap_or(i64::MAX)
}

fn group_stat(t: &Tracker, g: &Group) -> GroupStat {
    GroupStat {
        group_name: g.name.clone(),
        total_mb: g.total_mb,
        free_mb: g.free_mb,
        reserved_mb: reserved_mb(t, g.total_mb),
        trunk_free_mb: g.trunk_free_mb,
        storage_count: g.visible().count() as i64,
        storage_port: i64::from(g.storage_port),
        readable_server_count: g.readable().len() as i64,
        writable_server_count: g.writable().len() as i64,
        current_write_server: g.current_write_server as i64,
        store_path_count: i64::from(g.store_path_count),
        subdir_count_per_path: i64::from(g.subdir_count_per_path),
        current_trunk_file_id: if t.conf.use_trunk_file {
            g.current_trunk_file_id
        } else {
            -1
        },
    }
}

/// SERVER_LIST_ONE_GROUP (90).
pub fn list_one_group(t: &Tracker, body: &[u8]) -> HandlerResult {
    let name = decode_group_only(body)?;
    let c = t.lock();
    let g = c.group(&name).ok_or_else(|| no_group(&name))?;
    let mut buf = BytesMut::new();
    group_stat(t, g).encode(&mut buf);
    Ok(buf.to_vec())
}

/// SERVER_LIST_ALL_GROUPS (91), groups in name order.
pub fn list_all_groups(t: &Tracker, body: &[u8]) -> HandlerResult {
    expect_no_body(body)?;
    let c = t.lock();
    let mut buf = BytesMut::new();
    for g in c.groups.values() {
        group_stat(t, g).encode(&mut buf);
    }
    if buf.len() as u64 + fdfs_proto::HEADER_LEN as u64 > t.conf.max_pkg_size_bytes() {
        return Err(OpError::new(
            Status::ENOSPC,
            format!("the group list of {} bytes exceeds max_pkg_size", buf.len()),
        ));
    }
    Ok(buf.to_vec())
}

/// SERVER_LIST_STORAGE (92): the group's members in id order (DELETED
/// records are not listed), or only the named one.
pub fn list_storage(t: &Tracker, body: &[u8]) -> HandlerResult {
    let req = GroupStorageReq::decode(body)?;
    let c = t.lock();
    let g = c.group(&req.group).ok_or_else(|| no_group(&req.group))?;
    let width = crate::query::ip_width(t);
    let mut buf = BytesMut::new();
    let mut found = false;
    for s in g.visible() {
        if req.storage_id.as_deref().is_some_and(|id| id != s.id) {
            continue;
        }
        found = true;
        StorageStat {
            status: s.status,
            rw_mode: s.rw_mode,
            id: s.id.clone(),
            ip_addr: s.ip.clone(),
            src_id: s.sync_src_id.clone(),
            version: s.version.clone(),
            join_time: s.join_time,
            up_time: s.up_time,
            total_mb: s.total_mb,
            free_mb: s.free_mb,
            reserved_mb: reserved_mb(t, s.total_mb),
            upload_priority: s.upload_priority,
            store_path_count: i64::from(s.store_path_count),
            subdir_count_per_path: i64::from(s.subdir_count_per_path),
            current_write_path: i64::from(s.current_write_path),
            storage_port: i64::from(s.storage_port),
            stats: s.stats.clone(),
            if_trunk_server: g.is_trunk_server(&s.id),
        }
        .encode(&mut buf, width);
    }
    if let (Some(id), false) = (&req.storage_id, found) {
        return Err(no_storage(&req.group, id));
    }
    Ok(buf.to_vec())
}

/// SERVER_DELETE_STORAGE (93). Besides the original's status rules, a
/// storage that is connected is not deleted (EBUSY), whatever its status.
pub fn delete_storage(t: &Tracker, body: &[u8]) -> HandlerResult {
    let req = GroupStorageReq::decode(body)?;
    let id = req
        .storage_id
        .ok_or_else(|| OpError::invalid("no storage id"))?;
    crate::guard::group(&req.group)?;
    crate::guard::plain("storage id", &id)?;
    let line = t.lock().delete_storage(&req.group, &id, now_secs())?;
    if let Err(e) = persist::append_changelog(&t.data_dir, &line) {
        tracing::error!(error = %e, "cannot append to the changelog");
    }
    tracing::info!(group = %req.group, %id, "storage deleted");
    t.mark_dirty();
    Ok(Vec::new())
}

/// SERVER_DELETE_GROUP (108).
pub fn delete_group(t: &Tracker, body: &[u8]) -> HandlerResult {
    let name = decode_group_only(body)?;
    t.lock().delete_group(&name)?;
    tracing::info!(group = %name, "group deleted");
    t.mark_dirty();
    Ok(Vec::new())
}

/// SERVER_SYNC_STATUS (240, our extension): the sync matrix and full-sync
/// assignments of one group (16-byte name) or of every group (empty body).
pub fn sync_status(t: &Tracker, body: &[u8]) -> HandlerResult {
    use fdfs_proto::tracker_msg::{encode_sync_progress, SyncProgress};
    let only = if body.is_empty() {
        None
    } else {
        Some(decode_group_only(body)?)
    };
    let c = t.lock();
    if let Some(missing) = only.as_deref().filter(|g| c.group(g).is_none()) {
        return Err(no_group(missing));
    }
    let mut lines = Vec::new();
    for (name, g) in &c.groups {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        for s in g.visible() {
            for (dest, ts) in &s.synced_by {
                lines.push(SyncProgress::Synced {
                    group: name.clone(),
                    src_id: s.id.clone(),
                    dest_id: dest.clone(),
                    timestamp: *ts,
                });
            }
            if !s.sync_src_id.is_empty() {
                lines.push(SyncProgress::FullSyncSource {
                    group: name.clone(),
                    storage_id: s.id.clone(),
                    src_id: s.sync_src_id.clone(),
                    until_timestamp: s.sync_until_timestamp,
                });
            }
        }
    }
    let mut buf = BytesMut::new();
    encode_sync_progress(&mut buf, &lines);
    Ok(buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_text_has_26_lines() {
        let conf = fdfs_config::TrackerConf {
            reserved_storage_space: fdfs_config::ReservedSpace::Ratio(0.2),
            ..Default::default()
        };
        let text = parameter_text(&conf);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 26);
        assert_eq!(lines[0], "use_storage_id=0");
        assert_eq!(lines[1], "id_type_in_filename=ip");
        assert_eq!(lines[3], "response_ip_addr_size=16");
        assert_eq!(lines[7], "reserved_storage_space=20.00%");
        assert_eq!(lines[14], "trunk_create_file_time_base=02:00");
        assert_eq!(lines[25], "store_slave_file_use_link=0");
        assert!(text.ends_with('\n'));
        assert!(text.len() < 1024);
    }
}
