//! Client command-line tools: the classic FastDFS programs (chosen by
//! argv[0]) and the `fdfs` subcommands, with their shared formatting.

/// `print!` that ignores write errors: `fdfs_monitor | head` must not
/// panic on a closed pipe (the C tools simply die of SIGPIPE there).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `println!` that ignores write errors (see `out!`).
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod bulk;
pub mod classic;
pub mod cluster_stat;
pub mod format;
pub mod localtime;
pub mod manifest;
pub mod modern;
pub mod monitor;
pub mod nospace;
pub mod session;
pub mod trunk_check;
