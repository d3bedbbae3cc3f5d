//! JSON string literals for the hand-written JSON we emit (status page
//! data, log lines, manifests): one escaping rule, safe for peer text.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal. Besides what JSON requires, DEL,
/// `<`, `>`, `&` and the two JavaScript line separators are escaped, so
/// text that came from a peer stays inert even when the JSON is pasted
/// into HTML or a script.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || matches!(c, '<' | '>' | '&' | '\u{7f}' | '\u{2028}' | '\u{2029}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal (see [`push_json_string`]).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn escapes_quotes_controls_and_html_specials() {
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_string("l1\nl2\t\r"), r#""l1\nl2\t\r""#);
        assert_eq!(json_string("\u{1}\u{7f}"), r#""\u0001\u007f""#);
        assert_eq!(
            json_string("<script>&</script>"),
            r#""\u003cscript\u003e\u0026\u003c/script\u003e""#
        );
        assert_eq!(json_string("\u{2028}é"), "\"\\u2028é\"");
    }
}
