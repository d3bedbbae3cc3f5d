//! Client command-line tools: the classic FastDFS programs (chosen by
//! argv[0]) and the `fdfs` subcommands, with their shared formatting.

pub mod classic;
pub mod format;
pub mod localtime;
pub mod md5;
pub mod modern;
pub mod monitor;
pub mod session;
