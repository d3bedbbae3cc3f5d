//! Runs input files through one target on stable, printing each panic:
//! `cargo run -p fdfs-fuzz-targets --example replay -- <target> <file>...`
//! (how a crash from `fuzz/artifacts/` is looked at without nightly).

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay <target> <file>...");
    let (_, target) = fdfs_fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let mut failed = 0;
    for file in args {
        let data = std::fs::read(&file).expect("read input");
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            failed += 1;
            eprintln!("^ {file}");
        }
    }
    std::process::exit(i32::from(failed > 0));
}
