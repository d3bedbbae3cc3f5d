//! Process limits: the open-descriptor limit a server raises at start and
//! sizes its caches by.

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
