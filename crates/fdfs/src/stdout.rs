//! Printing to stdout that survives a closed pipe: `fdfs bench | head` or
//! `fdfs_monitor | head` must not panic (the C tools simply die of SIGPIPE
//! there).

/// `print!` that ignores write errors.
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
