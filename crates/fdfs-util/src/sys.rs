//! The system calls std has no wrapper for, in one place: process limits,
//! file-system space, opening a file strictly beneath a directory, user and
//! group ids, signals, clock ticks, descriptor shortages. Most go through rustix's safe wrappers; what rustix
//! cannot do process-wide (setgroups/setuid) or at all (the passwd and group
//! databases) stays on libc, each call with its safety argument. (Zero-copy
//! sends are in `zerocopy`, local time in `localtime`.)

use std::ffi::{CStr, CString};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::process::{Pid, Resource, Rlimit, Signal};

/// Clock ticks per second of the CPU times in `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// `(soft, hard)` limit on open descriptors (unlimited: `u64::MAX`, as
/// RLIM_INFINITY reads).
pub fn nofile_limits() -> Option<(u64, u64)> {
    let lim = rustix::process::getrlimit(Resource::Nofile);
    Some((
        lim.current.unwrap_or(u64::MAX),
        lim.maximum.unwrap_or(u64::MAX),
    ))
}

/// Times this process ran out of descriptors (EMFILE, ENFILE), as noted by
/// [`note_if_out_of_descriptors`]. Caches of open files watch it and let
/// their handles go, so that connections and uploads get descriptors first.
static DESCRIPTOR_SHORTAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts `e` when it says the process or the system has no descriptor
/// left (see [`descriptor_shortages`]).
pub fn note_if_out_of_descriptors(e: &std::io::Error) {
    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        DESCRIPTOR_SHORTAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many descriptor shortages were noted so far.
pub fn descriptor_shortages() -> u64 {
    DESCRIPTOR_SHORTAGES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Raises the soft limit on open descriptors to the hard limit, as servers
/// commonly do: with the usual soft limit of 1024 a busy storage runs out
/// of descriptors (connections, sync peers, the gateway's kept files) long
/// before the hard limit, which is the administrator's real ceiling.
pub fn raise_nofile_limit() {
    let Some((soft, hard)) = nofile_limits() else {
        return;
    };
    if soft >= hard {
        return;
    }
    let hard = (hard != u64::MAX).then_some(hard);
    let wanted = Rlimit {
        current: hard,
        maximum: hard,
    };
    if rustix::process::setrlimit(Resource::Nofile, wanted).is_err() {
        tracing::debug!("cannot raise the open file limit");
    }
}

/// posix_fadvise(RANDOM) on a whole file: no readahead for its reads.
pub fn advise_random_reads(file: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Random)?;
    Ok(())
}

/// Most parts one pwritev of [`write_all_vectored_at`] takes: its slices
/// live on the stack (4 KB), well under the kernel's IOV_MAX of 1024.
const VECTORED_PARTS_PER_CALL: usize = 256;

/// Writes every byte of `parts`, one after another, at `offset` of `file`:
/// one pwritev for all of them where the kernel takes them whole (and at
/// most [`VECTORED_PARTS_PER_CALL`] parts per call). On an error, also how
/// many bytes went in before it.
pub fn write_all_vectored_at(
    file: &std::fs::File,
    parts: &[&[u8]],
    offset: u64,
) -> Result<(), (usize, std::io::Error)> {
    use std::io::IoSlice;
    let mut done = 0usize;
    // The first part not written whole yet, and how much of it is.
    let (mut first, mut into_first) = (0usize, 0usize);
    let mut slices = [IoSlice::new(&[]); VECTORED_PARTS_PER_CALL];
    loop {
        while first < parts.len() && into_first == parts[first].len() {
            first += 1;
            into_first = 0;
        }
        if first == parts.len() {
            return Ok(());
        }
        let rest = &parts[first..];
        let count = rest.len().min(VECTORED_PARTS_PER_CALL);
        slices[0] = IoSlice::new(&rest[0][into_first..]);
        for (slot, part) in slices[1..count].iter_mut().zip(&rest[1..count]) {
            *slot = IoSlice::new(part);
        }
        let mut n = match rustix::io::pwritev(file, &slices[..count], offset + done as u64) {
            Ok(0) => return Err((done, std::io::ErrorKind::WriteZero.into())),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err((done, e.into())),
        };
        done += n;
        while first < parts.len() && n >= parts[first].len() - into_first {
            n -= parts[first].len() - into_first;
            first += 1;
            into_first = 0;
        }
        into_first += n;
    }
}

/// Opens `path` with `options` plus O_NOATIME, so that reads do not
/// update the access time: on a file written since its last read, every
/// read would otherwise dirty and journal its inode. Without the right to
/// (not the file's owner), as `options` alone.
pub fn open_noatime(options: &std::fs::OpenOptions, path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut with = options.clone();
    with.custom_flags(libc::O_NOATIME);
    match with.open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => options.open(path),
        opened => opened,
    }
}

/// Opens `path` for reading only if every step of its path walk is in the
/// kernel's dentry cache (openat2 with RESOLVE_CACHED, Linux 5.12): then
/// the open does no disk I/O, and an async worker may make it without a
/// hand-off to a blocking thread. `None` when the walk would need the
/// disk, or the kernel cannot tell (the caller opens on a blocking thread);
/// a missing file is an error as from `File::open`.
pub fn open_read_if_cached(path: &Path) -> Option<std::io::Result<std::fs::File>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Set when the kernel refused the flag: no later call tries it.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let opened = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::CACHED,
    );
    match opened {
        Ok(fd) => Some(Ok(std::fs::File::from(fd))),
        Err(rustix::io::Errno::AGAIN) => None,
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            None
        }
        Err(e) => Some(Err(e.into())),
    }
}

/// Whether every page of `len` bytes at `offset` of `file` is in the page
/// cache (cachestat(2), Linux 6.5), so that sending them reads no disk.
/// `None` where the kernel cannot tell.
#[allow(unsafe_code)]
pub fn cached_fully(file: &std::fs::File, offset: u64, len: u64) -> Option<bool> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// cachestat's number, the same on every architecture.
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        offset: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Counts {
        cached_pages: u64,
        dirty_pages: u64,
        writeback_pages: u64,
        evicted_pages: u64,
        recently_evicted_pages: u64,
    }
    // Set when the kernel lacks the call (or a sandbox refuses it).
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if len == 0 {
        return Some(true);
    }
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let range = Range { offset, len };
    let mut counts = Counts::default();
    // SAFETY: both pointers are to live values of the layouts the call
    // reads and writes; the descriptor is open for the call's duration.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut counts as *mut Counts,
            0u32,
        )
    };
    if rc != 0 {
        UNSUPPORTED.store(true, Ordering::Relaxed);
        return None;
    }
    let page_bytes = rustix::param::page_size() as u64;
    let first_page = offset / page_bytes;
    let end_page = offset.saturating_add(len).div_ceil(page_bytes);
    Some(counts.cached_pages >= end_page - first_page)
}

/// Asks the kernel to drop the clean cached pages of `file`
/// (POSIX_FADV_DONTNEED), as tests do to make a later read come from the
/// disk.
pub fn drop_cached_pages(file: &std::fs::File) -> std::io::Result<()> {
    Ok(rustix::fs::fadvise(
        file,
        0,
        None,
        rustix::fs::Advice::DontNeed,
    )?)
}

/// A new file without a name in directory `dir` (O_TMPFILE), for writing:
/// nothing of it is visible, and nothing is left after a crash, until
/// [`link_unnamed`] names it. Its inode is allocated near `dir`, as a file
/// created there would be. Errors where the file system does not support
/// it (EOPNOTSUPP, EISDIR on old kernels).
pub fn open_unnamed_in(dir: &Path) -> std::io::Result<std::fs::File> {
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Gives a file from [`open_unnamed_in`] the name `to` (EEXIST when `to`
/// exists: never replaces a file). Through the descriptor itself where the
/// process may (CAP_DAC_READ_SEARCH), otherwise through its
/// `/proc/self/fd` link.
pub fn link_unnamed(file: &std::fs::File, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    // Set once the descriptor link was refused and the /proc link worked:
    // the process lacks the capability, so later links skip the first try.
    static THROUGH_PROC: AtomicBool = AtomicBool::new(false);
    let through_proc = || {
        let link = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(CWD, link.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)
    };
    if THROUGH_PROC.load(Ordering::Relaxed) {
        return Ok(through_proc()?);
    }
    match rustix::fs::linkat(file, "", CWD, to, AtFlags::EMPTY_PATH) {
        // Without the capability the kernel answers ENOENT (or EPERM).
        Err(rustix::io::Errno::PERM | rustix::io::Errno::NOENT) => {
            through_proc()?;
            THROUGH_PROC.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Bytes of a file system: `(total, available to unprivileged users)`.
pub fn fs_space_bytes(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    let frsize = st.f_frsize;
    Ok((
        st.f_blocks.saturating_mul(frsize),
        st.f_bavail.saturating_mul(frsize),
    ))
}

/// [`openat2_beneath`] only when every step of the walk is in the dentry
/// cache (RESOLVE_CACHED, Linux 5.12), so that it reads no disk: `None`
/// when the walk would need the disk; then the caller opens on a thread
/// that may block. A kernel without the flag opens as [`openat2_beneath`]
/// does.
pub fn openat2_beneath_if_cached(
    dir: &std::fs::File,
    name: &CStr,
) -> Option<std::io::Result<std::fs::File>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Set when the kernel refused the flag: every open may then block.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return Some(openat2_beneath(dir, name));
    }
    match open_beneath_with(dir, name, ResolveFlags::CACHED) {
        Ok(fd) => Some(Ok(std::fs::File::from(fd))),
        Err(rustix::io::Errno::AGAIN) => None,
        Err(rustix::io::Errno::INVAL) => {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            Some(openat2_beneath(dir, name))
        }
        Err(e) => Some(Err(e.into())),
    }
}

/// openat2(dir, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
/// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a file
/// strictly below `dir`, whatever `name` or the links on the way say.
/// ENOSYS on kernels before 5.6.
pub fn openat2_beneath(dir: &std::fs::File, name: &CStr) -> std::io::Result<std::fs::File> {
    let fd = open_beneath_with(dir, name, ResolveFlags::empty())?;
    Ok(std::fs::File::from(fd))
}

/// The openat2 of [`openat2_beneath`], with `more` resolve flags.
fn open_beneath_with(
    dir: &std::fs::File,
    name: &CStr,
    more: ResolveFlags,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    rustix::fs::openat2(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | more,
    )
}

/// Sends `signal` to process `pid`; 0 checks that the process exists.
/// Refuses (false) a pid <= 0: kill(2) reads -1 as "every process we may
/// signal" and 0 as "our own process group", which a damaged pid file must
/// never turn into. Also false for a signal number that is not a named one.
pub fn send_signal(pid: i32, signal: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Some(pid) = Pid::from_raw(pid) else {
        return false;
    };
    if signal == 0 {
        return rustix::process::test_kill_process(pid).is_ok();
    }
    Signal::from_named_raw(signal)
        .is_some_and(|signal| rustix::process::kill_process(pid, signal).is_ok())
}

/// Real user id of this process.
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Real group id of this process.
pub fn gid() -> u32 {
    rustix::process::getgid().as_raw()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_emfile_and_enfile_count_as_descriptor_shortages() {
        let before = descriptor_shortages();
        note_if_out_of_descriptors(&std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(descriptor_shortages(), before);
        note_if_out_of_descriptors(&std::io::Error::from_raw_os_error(libc::EMFILE));
        note_if_out_of_descriptors(&std::io::Error::from_raw_os_error(libc::ENFILE));
        assert_eq!(descriptor_shortages(), before + 2);
    }

    #[test]
    fn vectored_writes_land_in_order_at_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'.'; 16]).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        write_all_vectored_at(&file, &[b"head", b"", b"body"], 3).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"...headbody.....");
        write_all_vectored_at(&file, &[b"", b""], 0).unwrap();
        let read_only = std::fs::File::open(&path).unwrap();
        let (written, e) = write_all_vectored_at(&read_only, &[b"x"], 0).unwrap_err();
        assert_eq!((written, e.raw_os_error()), (0, Some(libc::EBADF)));
    }

    #[test]
    fn vectored_writes_of_more_parts_than_one_call_takes_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).unwrap();
        // Parts of 0-6 bytes, three times as many as one call takes.
        let owned: Vec<Vec<u8>> = (0..3 * VECTORED_PARTS_PER_CALL)
            .map(|i| vec![(i % 251) as u8; i % 7])
            .collect();
        let parts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        write_all_vectored_at(&file, &parts, 5).unwrap();
        let mut expect = vec![0u8; 5];
        expect.extend(owned.concat());
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn nofile_limits_are_ordered_and_raising_reaches_the_hard_limit() {
        let (soft, hard) = nofile_limits().unwrap();
        assert!(soft <= hard && soft > 0, "({soft}, {hard})");
        raise_nofile_limit();
        assert_eq!(nofile_limits().unwrap(), (hard, hard));
    }

    #[test]
    fn a_cached_path_opens_inline_and_a_missing_one_never_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"cached").unwrap();
        // Just written: every dentry of the walk is cached (this kernel
        // has RESOLVE_CACHED; CI runs on the same kind of machine).
        let mut file = open_read_if_cached(&path)
            .expect("a path just made is in the dentry cache")
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(text, "cached");
        match open_read_if_cached(&dir.path().join("missing")) {
            None => {}
            Some(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
            Some(Ok(_)) => panic!("a missing file opened"),
        }
    }

    #[test]
    fn a_cached_walk_beneath_a_directory_opens_inline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), b"beneath").unwrap();
        let top = std::fs::File::open(dir.path()).unwrap();
        let name = CString::new("sub/f").unwrap();
        let mut file = openat2_beneath_if_cached(&top, &name)
            .expect("a path just made is in the dentry cache")
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(text, "beneath");
        // The same rules as without the flag: no way out, no symlink.
        std::os::unix::fs::symlink(dir.path().join("sub/f"), dir.path().join("link")).unwrap();
        for escape in ["../x", "link", "/etc/hostname"] {
            let name = CString::new(escape).unwrap();
            assert!(
                !matches!(openat2_beneath_if_cached(&top, &name), Some(Ok(_))),
                "{escape} opened"
            );
        }
    }

    #[test]
    fn cachestat_tells_cached_pages_from_dropped_ones() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::File::create_new(&path).unwrap();
        file.write_all_at(&[7u8; 64 * 1024], 0).unwrap();
        // Just written: in the page cache (this kernel has cachestat; CI
        // runs on the same kind of machine).
        assert_eq!(cached_fully(&file, 0, 64 * 1024), Some(true));
        assert_eq!(cached_fully(&file, 4000, 100), Some(true));
        // Written out and dropped from the cache: no longer all there.
        file.sync_all().unwrap();
        drop_cached_pages(&file).unwrap();
        assert_eq!(cached_fully(&file, 0, 64 * 1024), Some(false));
    }

    #[test]
    fn fs_space_of_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (total, avail) = fs_space_bytes(dir.path()).unwrap();
        assert!(total > 0 && avail <= total, "({total}, {avail})");
        let missing = dir.path().join("missing");
        assert_eq!(
            fs_space_bytes(&missing).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }

    #[test]
    fn openat2_opens_only_beneath_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("sub/link")).unwrap();
        let sub = std::fs::File::open(dir.path().join("sub")).unwrap();
        let read = |name: &CStr| -> std::io::Result<String> {
            std::io::read_to_string(openat2_beneath(&sub, name)?)
        };
        match read(c"f") {
            // Kernels before 5.6 have no openat2; nothing more to check.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => return,
            r => assert_eq!(r.unwrap(), "x"),
        }
        for escape in [c"../sub/f", c"link", c"/etc/passwd"] {
            assert!(read(escape).is_err(), "{escape:?} opened");
        }
    }

    #[test]
    fn signals_reach_only_a_positive_pid() {
        // Signal 0 delivers nothing, so the refusals are safe to check.
        assert!(!send_signal(-1, 0), "-1 would mean every process");
        assert!(!send_signal(0, 0), "0 would mean our process group");
        assert!(send_signal(std::process::id() as i32, 0));
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(send_signal(pid, libc::SIGTERM));
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        assert!(!send_signal(pid, 0), "reaped child still answers");
    }

    #[test]
    fn ids_match_the_owner_of_a_new_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), uid());
        // A new file takes the effective gid unless the dir is setgid.
        assert!(meta.gid() == gid() || dir.path().metadata().unwrap().mode() & 0o2000 != 0);
    }
}
