//! Client command-line tools: the classic FastDFS programs (chosen by
//! argv[0]) and the `fdfs` subcommands, with their shared formatting.

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
