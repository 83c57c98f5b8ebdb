//! Ids as MediaMTX's API reads them (google/uuid v1.6.0's `Parse`, which its handlers call on
//! `rtmpconns/get/{id}`, `kick/{id}` and `paths/forward/get?id=`): the canonical
//! `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, the same after `urn:uuid:` (any case) or inside two
//! more characters (`{…}`; what they are is not checked), or 32 bare hex digits. A refusal is
//! worded as Go words it, since clients see the text in the 400's body.
#![forbid(unsafe_code)]

use std::fmt::Write;

use crate::runtime::ConnUuid;

/// The UUID `text` spells, or Go's reason why it spells none.
pub fn parse(text: &str) -> Result<ConnUuid, String> {
    let b = text.as_bytes();
    let canonical = match b.len() {
        36 => b,
        45 => {
            let prefix = &b[..9];
            if !prefix.eq_ignore_ascii_case(b"urn:uuid:") {
                return Err(format!("invalid urn prefix: {}", go_quote(prefix)));
            }
            &b[9..]
        }
        38 => &b[1..37],
        32 => return ConnUuid::parse_bare(b).ok_or_else(|| FORMAT.to_owned()),
        n => return Err(format!("invalid UUID length: {n}")),
    };
    ConnUuid::parse_canonical(canonical).ok_or_else(|| FORMAT.to_owned())
}

const FORMAT: &str = "invalid UUID format";

/// `bytes` as Go's `%q` writes them: in double quotes, printable characters as they are, the
/// usual backslash escapes, `\xNN` for bytes that are not UTF-8 (a 9-byte prefix may cut one).
fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "123e4567-e89b-42d3-a456-426614174000";

    #[test]
    fn every_form_go_reads() {
        let want = parse(ID).unwrap();
        assert_eq!(want.to_string(), ID);
        for form in [
            ID.to_uppercase(),
            format!("urn:uuid:{ID}"),
            format!("URN:UUID:{ID}"),
            format!("{{{ID}}}"),
            // Go skips the first and last of 38 characters without looking at them.
            format!("x{ID}y"),
            ID.replace('-', ""),
        ] {
            assert_eq!(parse(&form), Ok(want), "{form}");
        }
    }

    #[test]
    fn refusals_in_go_words() {
        let refusal = |s: &str| parse(s).unwrap_err();
        assert_eq!(refusal(""), "invalid UUID length: 0");
        assert_eq!(refusal("abc"), "invalid UUID length: 3");
        assert_eq!(refusal(&format!("{ID}0")), "invalid UUID length: 37");
        assert_eq!(
            refusal("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"),
            "invalid UUID format"
        );
        // Dashes in the wrong places, and a 32-digit form with a letter beyond f.
        assert_eq!(refusal(&ID.replace('-', "+")), "invalid UUID format");
        assert_eq!(
            refusal("123e4567e89b42d3a45642661417400g"),
            "invalid UUID format"
        );
        assert_eq!(
            refusal(&format!("urn:uuix:{ID}")),
            "invalid urn prefix: \"urn:uuix:\""
        );
        assert_eq!(
            refusal(&format!("ur\"n\tuu\u{1}:{ID}")),
            "invalid urn prefix: \"ur\\\"n\\tuu\\x01:\""
        );
        // Lengths are counted in bytes, as Go counts them; the prefix may cut a character.
        assert_eq!(
            refusal(&format!("urn:uuid:{ID}x")),
            "invalid UUID length: 46"
        );
        let accented = format!("urn:uu\u{e9}:{ID}");
        assert_eq!(accented.len(), 45);
        assert_eq!(refusal(&accented), "invalid urn prefix: \"urn:uu\u{e9}:\"");
        let cut = format!("urn:uuid\u{e9}{}", &ID[1..]);
        assert_eq!(cut.len(), 45);
        assert_eq!(refusal(&cut), "invalid urn prefix: \"urn:uuid\\xc3\"");
    }
}
