//! FastDFS base64: the standard alphabet with `-` and `_` for 62 and 63 and
//! `.` as the pad. File names use it without padding.

use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const FDFS_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Checked at compile time: an invalid alphabet fails the build.
const ALPHABET: Alphabet = match Alphabet::new(FDFS_ALPHABET) {
    Ok(a) => a,
    Err(_) => panic!("the FastDFS base64 alphabet is invalid"),
};

/// Built at compile time: file names are encoded and decoded on every request.
static ENGINE: GeneralPurpose = GeneralPurpose::new(
    &ALPHABET,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn engine() -> &'static GeneralPurpose {
    &ENGINE
}

/// Encodes without padding (file names, store path marks).
pub fn encode(data: &[u8]) -> String {
    engine().encode(data)
}

/// Encodes with `.` padding (IPv6 short codes).
pub fn encode_padded(data: &[u8]) -> String {
    let mut s = encode(data);
    while !s.len().is_multiple_of(4) {
        s.push('.');
    }
    s
}

/// Decodes like the C decoder: characters outside the alphabet are skipped
/// and `.` padding is optional.
pub fn decode(text: &str) -> Vec<u8> {
    let is_symbol = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    // File names are clean: decode them without copying.
    if text.len() % 4 != 1 && text.bytes().all(is_symbol) {
        return engine().decode(text).unwrap_or_default();
    }
    let cleaned: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    // A single dangling character carries fewer than 8 bits: drop it.
    let usable = if cleaned.len() % 4 == 1 {
        &cleaned[..cleaned.len() - 1]
    } else {
        &cleaned[..]
    };
    engine().decode(usable).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_example() {
        let record = [
            0x7f, 0, 0, 1, 0x65, 0x53, 0xf1, 0, 0x80, 0x34, 0x56, 0x78, 0, 0, 0, 0x0e, 0x37, 0xf9,
            0x6d, 0xaf,
        ];
        assert_eq!(encode(&record), "fwAAAWVT8QCANFZ4AAAADjf5ba8");
        assert_eq!(decode("fwAAAWVT8QCANFZ4AAAADjf5ba8"), record);
    }

    #[test]
    fn ipv6_short_code_padding() {
        assert_eq!(
            encode_padded(&[0xd0, 0x48, 0x14, 0x22, 0, 0, 0, 0]),
            "0EgUIgAAAAA."
        );
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode(&encode(&data)), data.clone());
            prop_assert_eq!(decode(&encode_padded(&data)), data);
        }

        #[test]
        fn decode_never_panics(s in ".{0,80}") {
            let _ = decode(&s);
        }
    }
}
