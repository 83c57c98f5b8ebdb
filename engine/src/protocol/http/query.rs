//! Percent-decoding (RFC 3986 2.1) of paths and `application/x-www-form-urlencoded` queries.

use super::HttpError;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX`; `Err` on a malformed escape when `strict`, else the escape is kept literally.
fn decode(s: &str, plus_as_space: bool, strict: bool) -> Result<Vec<u8>, HttpError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ if strict => return Err(HttpError::InvalidPercentEncoding),
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// Percent-decodes a request path. A malformed escape or a result that is not UTF-8 is an error;
/// `+` stays `+`.
pub fn percent_decode_path(path: &str) -> Result<String, HttpError> {
    String::from_utf8(decode(path, false, true)?).map_err(|_| HttpError::InvalidPercentEncoding)
}

/// Splits a query string (with or without its leading `?`) into decoded `(name, value)` pairs,
/// in order, duplicates kept. `+` is a space; a name without `=` has an empty value; empty pieces
/// are skipped. Lenient, as browsers are: a malformed escape is kept as written and bytes that are
/// not UTF-8 become U+FFFD.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let lossy = |s: &str| {
        // Not strict: cannot fail.
        let bytes = decode(s, true, false).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((k, v)) => (lossy(k), lossy(v)),
            None => (lossy(piece), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path() {
        assert_eq!(percent_decode_path("/live/a%20b+c").unwrap(), "/live/a b+c");
        assert_eq!(percent_decode_path("/%E4%BD%A0").unwrap(), "/你");
        assert_eq!(
            percent_decode_path("/a%2"),
            Err(HttpError::InvalidPercentEncoding)
        );
        assert_eq!(
            percent_decode_path("/a%zz"),
            Err(HttpError::InvalidPercentEncoding)
        );
        assert_eq!(
            percent_decode_path("/%ff"),
            Err(HttpError::InvalidPercentEncoding)
        );
    }

    #[test]
    fn query() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            parse_query("?auth_key=1700000000-0-0-abc%2Bdef&x=a+b&flag&&y=%zz&k=v=w"),
            pairs(&[
                ("auth_key", "1700000000-0-0-abc+def"),
                ("x", "a b"),
                ("flag", ""),
                ("y", "%zz"),
                ("k", "v=w"),
            ])
        );
        assert!(parse_query("").is_empty());
        assert_eq!(parse_query("a=%ff"), pairs(&[("a", "\u{fffd}")]));
    }
}
