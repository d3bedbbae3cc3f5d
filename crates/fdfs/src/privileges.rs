//! `run_by_group` / `run_by_user`: a daemon started as root binds its
//! listeners, creates its base and store paths for the configured user,
//! then drops to that user and group for good (real, effective and saved
//! ids, supplementary groups cleared), as the original daemons do.

use std::path::Path;

/// The user and group to run as, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunBy {
    pub uid: u32,
    pub gid: u32,
}

impl RunBy {
    /// Resolves the conf values (names or numeric ids). None when both are
    /// empty. An empty group means the user's primary group, so that no
    /// root group is kept behind.
    pub fn resolve(group: &str, user: &str) -> Result<Option<RunBy>, String> {
        let (group, user) = (group.trim(), user.trim());
        if group.is_empty() && user.is_empty() {
            return Ok(None);
        }
        let (uid, primary_gid) = if user.is_empty() {
            (current_uid(), None)
        } else {
            let (uid, gid) =
                lookup_user(user).ok_or_else(|| format!("run_by_user: no such user {user:?}"))?;
            (uid, Some(gid))
        };
        let gid = if group.is_empty() {
            primary_gid.unwrap_or_else(current_gid)
        } else {
            lookup_group(group).ok_or_else(|| format!("run_by_group: no such group {group:?}"))?
        };
        Ok(Some(RunBy { uid, gid }))
    }

    /// Creates `dir` (and missing parents) and hands every directory it
    /// created to the run-by user, as the original chowns a base path it
    /// made. An existing directory is left as it is.
    pub fn prepare_dir(&self, dir: &Path) -> Result<(), String> {
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.exists() {
                break;
            }
            missing.push(d.to_path_buf());
            cur = d.parent();
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for d in missing.iter().rev() {
            std::os::unix::fs::chown(d, Some(self.uid), Some(self.gid))
                .map_err(|e| format!("chown {}: {e}", d.display()))?;
        }
        Ok(())
    }

    /// Hands the directories the log created and the files in `logs_dir`
    /// to the run-by user: the log was opened before the drop, and rotating
    /// or reopening it later creates files there. A failure is logged, not
    /// fatal.
    pub fn hand_over_logs(&self, created: &[std::path::PathBuf], logs_dir: &Path) {
        let files = std::fs::read_dir(logs_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path());
        for p in created.iter().cloned().chain(files) {
            if let Err(e) = std::os::unix::fs::chown(&p, Some(self.uid), Some(self.gid)) {
                tracing::warn!("chown {}: {e}; log rotation may fail", p.display());
            }
        }
    }

    /// Drops to the user and group for good. Only root can; anyone else
    /// may only "drop" to who they already are.
    pub fn apply(&self) -> Result<(), String> {
        if current_uid() != 0 {
            if (self.uid, self.gid) == (current_uid(), current_gid()) {
                return Ok(());
            }
            return Err(format!(
                "run_by_user/run_by_group need root to switch to uid {} gid {}",
                self.uid, self.gid
            ));
        }
        fdfs_util::sys::set_ids(self.uid, self.gid)
    }
}

fn current_uid() -> u32 {
    fdfs_util::sys::uid()
}

fn current_gid() -> u32 {
    fdfs_util::sys::gid()
}

/// `(uid, primary gid)` of a user name or numeric id.
fn lookup_user(user: &str) -> Option<(u32, u32)> {
    if let Some(found) = fdfs_util::sys::lookup_user(user) {
        return Some(found);
    }
    let uid: u32 = user.parse().ok()?;
    // A numeric id without a passwd entry: its group is the same number.
    Some((uid, uid))
}

/// gid of a group name or numeric id.
fn lookup_group(group: &str) -> Option<u32> {
    fdfs_util::sys::lookup_group(group).or_else(|| group.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(RunBy::resolve("", "").unwrap(), None);
        let root = RunBy::resolve("", "root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let numeric = RunBy::resolve("4321", "1234").unwrap().unwrap();
        assert_eq!((numeric.uid, numeric.gid), (1234, 4321));
        assert!(RunBy::resolve("", "no-such-user-fdfs").is_err());
        assert!(RunBy::resolve("no-such-group-fdfs", "").is_err());
    }
}
