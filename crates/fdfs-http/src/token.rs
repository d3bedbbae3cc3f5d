//! Anti-steal token (PROTOCOL.md §9.2):
//! `token = lowercase_hex(md5(file_id_without_group ‖ secret_key ‖ decimal(ts)))`
//! where the id has neither the group nor a leading `/`, and `ts` is read
//! with C `atoi`. `ts = 0` never expires; a future `ts` is accepted.

/// Length of a token: 32 lowercase hex digits.
pub const TOKEN_LEN: usize = 32;

/// Outcome of checking a request's `token` and `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// `token` or `ts` absent: always 400.
    Missing,
    /// Wrong length, wrong hash or expired: the check-fail file or 400.
    Invalid,
}

/// The token for `remote` (e.g. `M00/00/00/xxx.jpg`, no group, no `/`).
pub fn make_token(remote: &str, secret_key: &str, ts: i64) -> String {
    let mut ctx = md5::Context::new();
    ctx.consume(remote.as_bytes());
    ctx.consume(secret_key.as_bytes());
    ctx.consume(ts.to_string().as_bytes());
    format!("{:x}", ctx.compute())
}

/// Strips the group and any leading `/` from a file id, as the module
/// hashes it: `group1/M00/...`, `/group1/M00/...`, `M00/...` → `M00/...`.
pub fn id_without_group(file_id: &str) -> &str {
    let id = file_id.trim_start_matches('/');
    match id.find('/') {
        // A group name never starts with `M` followed by two hex digits and
        // a `/`; anything before the first `/` that is not `Mxx` is a group.
        Some(i) if !is_store_path_part(&id[..i]) => &id[i + 1..],
        _ => id,
    }
}

fn is_store_path_part(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 3 && b[0] == b'M' && b[1].is_ascii_hexdigit() && b[2].is_ascii_hexdigit()
}

/// Checks `token`/`ts` for `remote` at unix time `now`.
pub fn check(
    remote: &str,
    secret_key: &str,
    ttl_secs: u64,
    token: Option<&str>,
    ts: Option<&str>,
    now: i64,
) -> TokenCheck {
    let (Some(token), Some(ts)) = (token, ts) else {
        return TokenCheck::Missing;
    };
    if token.len() != TOKEN_LEN {
        return TokenCheck::Invalid;
    }
    let ts = fdfs_util::text::atoi(ts);
    if make_token(remote, secret_key, ts) != token {
        return TokenCheck::Invalid;
    }
    if ts != 0 && now.saturating_sub(ts) > i64::try_from(ttl_secs).unwrap_or(i64::MAX) {
        return TokenCheck::Invalid;
    }
    TokenCheck::Valid
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "M00/00/00/fwAAAWVT8QCANFZ4AAAADjf5ba8123.txt";
    const KEY: &str = "FastDFS1234567890";

    #[test]
    fn protocol_example() {
        assert_eq!(
            make_token(ID, KEY, 1_700_000_600),
            "fb8bd568262f343c7721be7c3abfa112"
        );
    }

    #[test]
    fn checks() {
        let t = make_token(ID, KEY, 1_700_000_600);
        let ok = |tok: &str, ts: &str, now| check(ID, KEY, 900, Some(tok), Some(ts), now);
        assert_eq!(ok(&t, "1700000600", 1_700_000_600 + 899), TokenCheck::Valid);
        assert_eq!(
            ok(&t, "1700000600", 1_700_000_600 + 901),
            TokenCheck::Invalid
        );
        assert_eq!(ok(&t, "1700000600", 1_600_000_000), TokenCheck::Valid);
        assert_eq!(ok(&t, "01700000600", 1_700_000_600), TokenCheck::Valid);
        assert_eq!(ok(&t, "1700000600abc", 1_700_000_600), TokenCheck::Valid);
        assert_eq!(
            ok(&t.to_uppercase(), "1700000600", 1_700_000_600),
            TokenCheck::Invalid
        );
        assert_eq!(
            ok(&t[1..], "1700000600", 1_700_000_600),
            TokenCheck::Invalid
        );
        assert_eq!(
            ok(&format!("{t}0"), "1700000600", 1_700_000_600),
            TokenCheck::Invalid
        );
        let zero = make_token(ID, KEY, 0);
        assert_eq!(ok(&zero, "0", i64::MAX), TokenCheck::Valid);
        assert_eq!(check(ID, KEY, 900, None, Some("0"), 0), TokenCheck::Missing);
        assert_eq!(
            check(ID, KEY, 900, Some(&zero), None, 0),
            TokenCheck::Missing
        );
        let with_group = make_token(&format!("group1/{ID}"), KEY, 0);
        assert_eq!(ok(&with_group, "0", 0), TokenCheck::Invalid);
    }

    #[test]
    fn ids_without_group() {
        assert_eq!(id_without_group(&format!("group1/{ID}")), ID);
        assert_eq!(id_without_group(&format!("/group1/{ID}")), ID);
        assert_eq!(id_without_group(ID), ID);
        assert_eq!(id_without_group(&format!("/{ID}")), ID);
    }
}
