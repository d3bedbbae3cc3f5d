//! The `list` text of fdfs_monitor, line for line as the C tool prints it
//! (PROTOCOL §12.7), built from GroupStat / StorageStat records.

use std::fmt::Write as _;

use fdfs_client::TrackerClient;
use fdfs_proto::stat::{storage_status, GroupStat, StorageStat};

use super::formatted_ip;
use crate::tools::format::{local_datetime, mb_to_human, seconds_to_human};

fn rw_caption(rw_mode: u8) -> &'static str {
    match rw_mode {
        0 => "none (disabled)",
        2 => "readonly",
        4 => "writeonly",
        6 => "both (normal)",
        _ => "unknown",
    }
}

/// The "(… delay)" text for `storage`, from the newest source update of
/// the *other* storages of the group.
fn synced_delay_text(storage_index: usize, storages: &[StorageStat]) -> String {
    let max_last_source_update = storages
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != storage_index)
        .map(|(_, s)| s.stats.last_source_update)
        .fold(0, i64::max);
    if max_last_source_update == 0 {
        return String::new();
    }
    let synced = storages[storage_index].stats.last_synced_timestamp;
    if synced == 0 {
        "(never synced)".to_string()
    } else {
        format!(
            "({} delay)",
            seconds_to_human(max_last_source_update - synced)
        )
    }
}

/// One group block as `list_storages` prints it: group lines, then one
/// block per storage.
pub fn format_group(g: &GroupStat, storages: &[StorageStat]) -> String {
    let mut out = String::new();
    let avail = (g.free_mb - g.reserved_mb).max(0);
    // Writing to a String cannot fail; the results are ignored.
    let _ = write!(
        out,
        "group name = {}\n\
         disk total space     = {:>7}\n\
         disk free space      = {:>7}\n\
         disk reserved space  = {:>7}\n\
         disk available space = {:>7}\n",
        g.group_name,
        mb_to_human(g.total_mb),
        mb_to_human(g.free_mb),
        mb_to_human(g.reserved_mb),
        mb_to_human(avail)
    );
    let uses_trunk = g.current_trunk_file_id >= 0;
    if uses_trunk {
        let _ = writeln!(
            out,
            "trunk free space = {:>7}",
            mb_to_human(g.trunk_free_mb)
        );
    }
    let _ = write!(
        out,
        "storage server count = {}\n\
         readable server count = {}\n\
         writable server count = {}\n\
         storage server port = {}\n\
         store path count = {}\n\
         subdir count per path = {}\n\
         current write server index = {}\n",
        g.storage_count,
        g.readable_server_count,
        g.writable_server_count,
        g.storage_port,
        g.store_path_count,
        g.subdir_count_per_path,
        g.current_write_server
    );
    match storages.iter().find(|s| s.if_trunk_server) {
        Some(t) if uses_trunk => {
            let _ = write!(
                out,
                "current trunk server = {} ({})\ncurrent trunk file id = {}\n\n",
                t.id, t.ip_addr, g.current_trunk_file_id
            );
        }
        _ => out.push('\n'),
    }
    for (k, s) in storages.iter().enumerate() {
        format_storage(&mut out, k, s, &synced_delay_text(k, storages));
    }
    out
}

fn format_storage(out: &mut String, k: usize, s: &StorageStat, delay: &str) {
    let up_time = if s.up_time != 0 {
        local_datetime(s.up_time)
    } else {
        String::new()
    };
    let avail = (s.free_mb - s.reserved_mb).max(0);
    let st = &s.stats;
    let _ = write!(
        out,
        "\tStorage {}:\n\
         \t\tid = {}\n\
         \t\thost = {}:{}  {}\n\
         \t\tread write mode = {}\n\
         \t\tversion = {}\n\
         \t\tjoin time = {}\n\
         \t\tup time = {}\n\
         \t\tdisk total space     = {:>7}\n\
         \t\tdisk free space      = {:>7}\n\
         \t\tdisk reserved space  = {:>7}\n\
         \t\tdisk available space = {:>7}\n\
         \t\tupload priority = {}\n\
         \t\tstore_path_count = {}\n\
         \t\tsubdir_count_per_path = {}\n\
         \t\tcurrent_write_path = {}\n\
         \t\tsource storage id = {}\n\
         \t\tif_trunk_server = {}\n\
         \t\tconnection.alloc_count = {}\n\
         \t\tconnection.current_count = {}\n\
         \t\tconnection.max_count = {}\n",
        k + 1,
        s.id,
        formatted_ip(&s.ip_addr),
        s.storage_port,
        storage_status::caption(s.status),
        rw_caption(s.rw_mode),
        s.version,
        local_datetime(s.join_time),
        up_time,
        mb_to_human(s.total_mb),
        mb_to_human(s.free_mb),
        mb_to_human(s.reserved_mb),
        mb_to_human(avail),
        s.upload_priority,
        s.store_path_count,
        s.subdir_count_per_path,
        s.current_write_path,
        s.src_id,
        u8::from(s.if_trunk_server),
        st.connection_alloc_count,
        st.connection_current_count,
        st.connection_max_count,
    );
    // The 38 counters, in wire order; the C tool misspells one of them.
    for (name, value) in st.counters() {
        if name.starts_with("last_") {
            continue;
        }
        let name = if name == "total_download_bytes" {
            "stotal_download_bytes"
        } else {
            name
        };
        let _ = writeln!(out, "\t\t{name} = {value}");
    }
    let _ = write!(
        out,
        "\t\tlast_heart_beat_time = {}\n\
         \t\tlast_source_update = {}\n\
         \t\tlast_sync_update = {}\n\
         \t\tlast_synced_timestamp = {} {}\n",
        local_datetime(st.last_heart_beat_time),
        local_datetime(st.last_source_update),
        local_datetime(st.last_sync_update),
        local_datetime(st.last_synced_timestamp),
        delay
    );
}

/// `list [group]`: the whole listing text, or None if the group list could
/// not be read (the C tool then prints nothing more and still exits 0).
pub(super) async fn list_all_groups(
    tc: &mut TrackerClient<'_>,
    group: Option<&str>,
) -> Result<String, fdfs_client::ClientError> {
    let groups = tc.list_groups().await?;
    let mut out = String::new();
    match group {
        None => {
            let _ = writeln!(out, "group count: {}", groups.len());
            for (i, g) in groups.iter().enumerate() {
                let _ = write!(out, "\nGroup {}:\n", i + 1);
                if let Ok(storages) = tc.list_storages(&g.group_name, None).await {
                    out.push_str(&format_group(g, &storages));
                }
            }
        }
        Some(name) => {
            if let Some(g) = groups.iter().find(|g| g.group_name == name) {
                if let Ok(storages) = tc.list_storages(&g.group_name, None).await {
                    out.push_str(&format_group(g, &storages));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::monitor::tests::captured;

    #[test]
    fn layout_matches_captured_c_output() {
        let (g, s) = captured();
        let text = format_group(&g, std::slice::from_ref(&s));
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "group name = group1");
        assert_eq!(lines[1], "disk total space     =  252 GB");
        assert_eq!(lines[2], "disk free space      =   79 GB");
        assert_eq!(lines[3], "disk reserved space  =  2.5 GB");
        assert_eq!(lines[4], "disk available space =   77 GB");
        assert_eq!(lines[5], "storage server count = 1");
        assert_eq!(lines[11], "current write server index = 0");
        assert_eq!(lines[12], "");
        assert_eq!(lines[13], "\tStorage 1:");
        assert_eq!(lines[14], "\t\tid = 127.0.0.3");
        assert_eq!(lines[15], "\t\thost = 127.0.0.3:23000  ACTIVE");
        assert_eq!(lines[16], "\t\tread write mode = both (normal)");
        assert_eq!(lines[19], "\t\tup time = ");
        assert_eq!(lines[20], "\t\tdisk total space     =  252 GB");
        assert_eq!(lines[28], "\t\tsource storage id = ");
        assert!(text.contains("\n\t\ttotal_upload_count = 4\n\t\tsuccess_upload_count = 4\n"));
        assert!(
            text.contains("\n\t\tstotal_download_bytes = 51\n\t\tsuccess_download_bytes = 51\n")
        );
        assert!(text.contains("\n\t\tsuccess_file_write_count = 0\n\t\tlast_heart_beat_time = "));
        // A single storage has no delay text, but the separating space stays.
        assert!(text.ends_with(" \n"), "{text:?}");
        assert_eq!(text.matches('\n').count(), 13 + 62);
    }

    #[test]
    fn trunk_lines_and_delay_text() {
        let (mut g, s) = captured();
        g.current_trunk_file_id = 3;
        g.trunk_free_mb = 1024;
        let mut a = s.clone();
        a.if_trunk_server = true;
        a.stats.last_source_update = 1000;
        a.stats.last_synced_timestamp = 0;
        let mut b = s;
        b.id = "127.0.0.4".into();
        b.ip_addr = "127.0.0.4".into();
        b.stats.last_source_update = 0;
        b.stats.last_synced_timestamp = 1000 - 3661;
        let text = format_group(&g, &[a, b]);
        assert!(text.contains("\ntrunk free space =  1.0 GB\n"));
        assert!(text.contains(
            "current write server index = 0\ncurrent trunk server = 127.0.0.3 (127.0.0.3)\ncurrent trunk file id = 3\n\n\tStorage 1:"
        ));
        // Storage 1: the other storage never updated anything → no text.
        // Storage 2: 1 h 1 min 1 s behind storage 1.
        assert!(text.contains("(1 hour 1 minute 1 second delay)\n"));
        let first = text.split("\tStorage 2:").next().unwrap_or("");
        assert!(first.ends_with(" \n"));
        let (_, s) = captured();
        let mut never = s.clone();
        never.stats.last_source_update = 5;
        let text = format_group(&g, &[never, s]);
        assert!(text.ends_with("(never synced)\n"));
    }
}
