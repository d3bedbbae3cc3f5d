//! Conf files for a tracker and one storage with its HTTP gateway, laid out
//! as a user lays them out (tracker.conf, storage.conf, and
//! mod_fastdfs.conf that includes http.conf), for tests that start the
//! daemons as processes.

use std::path::{Path, PathBuf};

use crate::free_port;

/// A temp directory with `tracker/`, `storage/` and `conf/`, free ports and
/// the three conf files written; each test writes its own `http.conf`.
pub struct GatewayConfs {
    dir: tempfile::TempDir,
    pub tracker_port: u16,
    pub storage_port: u16,
    pub http_port: u16,
}

impl GatewayConfs {
    /// Writes the confs; `tracker_extra` and `storage_extra` (whole lines)
    /// are appended to tracker.conf and storage.conf.
    pub fn write(tracker_extra: &str, storage_extra: &str) -> GatewayConfs {
        let confs = GatewayConfs {
            dir: tempfile::tempdir().expect("temp dir"),
            tracker_port: free_port(),
            storage_port: free_port(),
            http_port: free_port(),
        };
        for sub in ["tracker", "storage", "conf"] {
            std::fs::create_dir_all(confs.dir().join(sub)).expect("test dirs");
        }
        let store = confs.dir().join("storage");
        let (tp, sp, hp) = (confs.tracker_port, confs.storage_port, confs.http_port);
        confs.write_tracker_conf(tracker_extra);
        std::fs::write(
            confs.conf_dir().join("storage.conf"),
            format!(
                "group_name = group1\nbind_addr = 127.0.0.1\nport = {sp}\nbase_path = {b}\nstore_path0 = {b}\n\
                 subdir_count_per_path = 2\ntracker_server = 127.0.0.1:{tp}\nheart_beat_interval = 1\n\
                 stat_report_interval = 1\nhttp.server_port = {hp}\n{storage_extra}",
                b = store.display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(
            confs.conf_dir().join("mod_fastdfs.conf"),
            format!(
                "base_path = {b}\ngroup_name = group1\nurl_have_group_name = true\nstore_path0 = {b}\n\
                 tracker_server = 127.0.0.1:{tp}\nstorage_server_port = {sp}\n#include http.conf\n",
                b = store.display()
            ),
        )
        .expect("mod_fastdfs.conf");
        confs
    }

    /// (Re)writes tracker.conf with `extra` (whole lines) appended.
    pub fn write_tracker_conf(&self, extra: &str) {
        std::fs::write(
            self.conf_dir().join("tracker.conf"),
            format!(
                "bind_addr = 127.0.0.1\nport = {}\nbase_path = {}\n{extra}",
                self.tracker_port,
                self.dir().join("tracker").display()
            ),
        )
        .expect("tracker.conf");
    }

    /// The test's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the conf files are.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir().join("conf")
    }
}
