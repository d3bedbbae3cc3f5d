//! The one fastdfs-rs binary. Under a classic FastDFS name (a symlink such
//! as `fdfs_upload_file` or `fdfs_trackerd`) it behaves like that program;
//! otherwise it offers `fdfs <subcommand>`.

#[macro_use]
mod stdout;

mod bench;
mod container;
mod daemon;
mod health;
mod logging;
mod privileges;
mod reload;
mod tools;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Lossy: a non-UTF-8 argument must not abort the process.
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest = argv.get(1..).unwrap_or_default();
    match name.as_str() {
        "fdfs_trackerd" => daemon::classic(daemon::Role::Tracker, rest),
        "fdfs_storaged" => daemon::classic(daemon::Role::Storage, rest),
        other => match tools::classic::run(other, &argv) {
            Some(code) => code,
            None => tools::modern::main(),
        },
    }
}
