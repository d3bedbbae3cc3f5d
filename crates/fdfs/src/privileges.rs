//! `run_by_group` / `run_by_user`: a daemon started as root binds its
//! listeners, creates its base and store paths for the configured user,
//! then drops to that user and group for good (real, effective and saved
//! ids, supplementary groups cleared), as the original daemons do.

use std::ffi::CString;
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
        set_ids(self.uid, self.gid)
    }
}

#[allow(unsafe_code)]
fn current_uid() -> u32 {
    // SAFETY: getuid has no arguments and cannot fail.
    unsafe { libc::getuid() }
}

#[allow(unsafe_code)]
fn current_gid() -> u32 {
    // SAFETY: getgid has no arguments and cannot fail.
    unsafe { libc::getgid() }
}

/// Group first, while we are still root; the libc wrappers apply each
/// change to every thread of the process.
#[allow(unsafe_code)]
fn set_ids(uid: u32, gid: u32) -> Result<(), String> {
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain system calls on integer ids; setgroups reads no list
    // when its size is 0.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(os("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(os("setuid"));
        }
    }
    Ok(())
}

/// Buffer for the reentrant passwd/group lookups (names, home, shell).
const LOOKUP_BUF_BYTES: usize = 16 * 1024;

/// `(uid, primary gid)` of a user name or numeric id.
#[allow(unsafe_code)]
fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let name = CString::new(user).ok()?;
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF_BYTES];
    // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids)
    // that getpwnam_r fills in; buf outlives every pointer it sets.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf.len() is its size.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() {
        return Some((pw.pw_uid, pw.pw_gid));
    }
    let uid: u32 = user.parse().ok()?;
    // A numeric id without a passwd entry: its group is the same number.
    Some((uid, uid))
}

/// gid of a group name or numeric id.
#[allow(unsafe_code)]
fn lookup_group(group: &str) -> Option<u32> {
    let name = CString::new(group).ok()?;
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF_BYTES];
    // SAFETY: as in lookup_user, for struct group and getgrnam_r.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf.len() is its size.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() {
        return Some(gr.gr_gid);
    }
    group.parse().ok()
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
