//! `--server-pid`: the CPU time the servers under load spent during a
//! phase, read from `/proc/PID/stat` before and after it, so every round
//! reports the servers' CPU per operation next to files/s.
//!
//! A process's `utime` and `stime` cover all of its threads; `cutime` and
//! `cstime` add the children it has reaped. All four are counted. They tick
//! at the clock-tick rate (`_SC_CLK_TCK`, 100 Hz on Linux), so a phase needs some
//! hundreds of milliseconds of server work for a precise figure.

use std::path::Path;

/// Fields of `/proc/PID/stat` after the `(comm)` field: `state` is the
/// first of them (field 3 of the whole line), so utime (field 14) is at
/// index 11 here, then stime, cutime and cstime.
const UTIME_AFTER_COMM: usize = 11;
const CPU_FIELDS: usize = 4;

/// Total CPU ticks of a process from the text of its `/proc/PID/stat`.
/// `comm` may hold spaces and parentheses, so fields are counted from the
/// last `)`.
pub(super) fn ticks_from_stat(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields
        .get(UTIME_AFTER_COMM..UTIME_AFTER_COMM + CPU_FIELDS)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum()
}

/// CPU time in microseconds consumed so far by the processes `pids`.
pub(super) fn cpu_us(pids: &[i32]) -> Result<u64, String> {
    let mut ticks = 0u64;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let text = std::fs::read_to_string(Path::new(&path))
            .map_err(|e| format!("--server-pid {pid}: {path}: {e}"))?;
        ticks += ticks_from_stat(&text)
            .ok_or_else(|| format!("--server-pid {pid}: unexpected {path} contents"))?;
    }
    Ok(ticks.saturating_mul(1_000_000) / fdfs_util::sys::clock_ticks_per_sec().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_user_system_and_reaped_children() {
        // A comm with a space and a parenthesis, as a process may name itself.
        let stat = "4242 (fdfs (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 50 7 3 20 0 9 0 100 123456 789 18446744073709551615";
        assert_eq!(ticks_from_stat(stat), Some(150 + 50 + 7 + 3));
        assert_eq!(ticks_from_stat("1 (short) S 1 2"), None);
        assert_eq!(ticks_from_stat("no parenthesis"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        // Work until the kernel has charged this process a tick (polled
        // with a generous deadline: the machine may be busy).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        while cpu_us(&[me]).unwrap() == 0 && std::time::Instant::now() < deadline {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
        }
        assert!(cpu_us(&[me]).unwrap() > 0);
        assert!(cpu_us(&[i32::MAX]).unwrap_err().contains("--server-pid"));
    }
}
