//! One pure function per fuzz target, `pub fn <target>(data: &[u8])`: each
//! decodes the input and panics when an invariant breaks (consumed bytes
//! within the input, decode of encode equals the original, accepted names
//! re-parse to themselves, paths stay inside the data dir). The cargo-fuzz
//! project in `fuzz/` and the stable `replay_corpus` test both call these.

mod binlog;
mod conf;
mod header;
mod http;
mod names;
mod storage;
mod storage_ids;
mod tracker;
mod trunk_binlog;

pub use binlog::binlog_line;
pub use conf::conf_include;
pub use header::packet_header;
pub use http::http_request;
pub use names::file_id;
pub use storage::storage_msg;
pub use storage_ids::storage_ids;
pub use tracker::tracker_msg;
pub use trunk_binlog::trunk_binlog_line;

/// A fuzz target: panics on an invariant failure, returns otherwise.
pub type Target = fn(&[u8]);

/// Every target by the name its `fuzz/fuzz_targets/<name>.rs`, corpus and
/// regression directories carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("packet_header", packet_header),
    ("tracker_msg", tracker_msg),
    ("storage_msg", storage_msg),
    ("binlog_line", binlog_line),
    ("file_id", file_id),
    ("conf_include", conf_include),
    ("storage_ids", storage_ids),
    ("http_request", http_request),
    ("trunk_binlog_line", trunk_binlog_line),
];

/// Asserts `decode(encode(x)) == x`. Decoders read text fields lossily
/// (invalid UTF-8 becomes U+FFFD, three bytes) and encoders truncate to the
/// field width, so a value holding U+FFFD need not survive: those are
/// skipped, everything else must.
pub(crate) fn assert_round_trip<T, E>(
    what: &str,
    value: &T,
    encode: impl Fn(&T, &mut bytes::BytesMut),
    decode: impl Fn(&[u8]) -> Result<T, E>,
) where
    T: PartialEq + std::fmt::Debug,
    E: std::fmt::Debug,
{
    let mut buf = bytes::BytesMut::new();
    encode(value, &mut buf);
    let again = decode(&buf);
    if format!("{value:?}").contains('\u{FFFD}') {
        return;
    }
    match again {
        Ok(again) => assert_eq!(&again, value, "{what}: decode(encode(x)) != x"),
        Err(e) => panic!("{what}: encode of an accepted value does not decode: {e:?} ({value:?})"),
    }
}

/// Decode, then check that encoding the value decodes to it again.
pub(crate) fn rt<T, E: std::fmt::Debug>(
    what: &str,
    body: &[u8],
    decode: fn(&[u8]) -> Result<T, E>,
    encode: fn(&T, &mut bytes::BytesMut),
) where
    T: PartialEq + std::fmt::Debug,
{
    if let Ok(v) = decode(body) {
        assert_round_trip(what, &v, encode, decode);
    }
}

/// Splits fuzz input into a selector byte and the rest.
pub(crate) fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}
