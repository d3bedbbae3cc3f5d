//! The system calls std has no wrapper for, in one place, each with its
//! safety argument: process limits, file-system space, opening a file
//! strictly beneath a directory, user and group ids, signals. (Zero-copy
//! sends are in `zerocopy`, local time in `localtime`.)

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `(soft, hard)` limit on open descriptors.
#[allow(unsafe_code)]
pub fn nofile_limits() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    Some((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft limit on open descriptors to the hard limit, as servers
/// commonly do: with the usual soft limit of 1024 a busy storage runs out
/// of descriptors (connections, sync peers, the gateway's kept files) long
/// before the hard limit, which is the administrator's real ceiling.
#[allow(unsafe_code)]
pub fn raise_nofile_limit() {
    let Some((soft, hard)) = nofile_limits() else {
        return;
    };
    if soft >= hard {
        return;
    }
    let wanted = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        tracing::debug!("cannot raise the open file limit");
    }
}

/// Bytes of a file system: `(total, available to unprivileged users)`.
#[allow(unsafe_code)]
pub fn fs_space_bytes(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: c_path is a valid NUL-terminated string and st points to
    // writable memory of the right type; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize;
    Ok((
        st.f_blocks.saturating_mul(frsize),
        st.f_bavail.saturating_mul(frsize),
    ))
}

/// openat2(dir, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
/// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a file
/// strictly below `dir`, whatever `name` or the links on the way say.
/// ENOSYS on kernels before 5.6.
#[allow(unsafe_code)]
pub fn openat2_beneath(dir: &std::fs::File, name: &CStr) -> std::io::Result<std::fs::File> {
    /// `struct open_how` (linux/openat2.h); libc's is non-exhaustive.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `dir` is an open descriptor, `name` a NUL-terminated string
    // and `how` a valid open_how of the size passed; all outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("openat2: bad descriptor"))?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Sends `signal` to `pid`; 0 checks that the process exists.
#[allow(unsafe_code)]
pub fn send_signal(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Real user id of this process.
#[allow(unsafe_code)]
pub fn uid() -> u32 {
    // SAFETY: getuid has no arguments and cannot fail.
    unsafe { libc::getuid() }
}

/// Real group id of this process.
#[allow(unsafe_code)]
pub fn gid() -> u32 {
    // SAFETY: getgid has no arguments and cannot fail.
    unsafe { libc::getgid() }
}

/// Drops to `uid` and `gid` for good (real, effective, saved; no
/// supplementary groups). Group first, while still root; the libc wrappers
/// apply each change to every thread of the process.
#[allow(unsafe_code)]
pub fn set_ids(uid: u32, gid: u32) -> Result<(), String> {
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

/// `(uid, primary gid)` of a user in the passwd database.
#[allow(unsafe_code)]
pub fn lookup_user(user: &str) -> Option<(u32, u32)> {
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
    (rc == 0 && !found.is_null()).then_some((pw.pw_uid, pw.pw_gid))
}

/// gid of a group in the group database.
#[allow(unsafe_code)]
pub fn lookup_group(group: &str) -> Option<u32> {
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
    (rc == 0 && !found.is_null()).then_some(gr.gr_gid)
}
