//! URL query parsing: `a=1&b=x%20y`, values percent-decoded.
//!
//! Only `%XX` is decoded; `+` stays `+` (base64 tokens often carry a literal `+`). A malformed
//! escape is kept as written. The first occurrence of a repeated key wins.

/// A parsed query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Percent-decodes `s` (`%XX` only).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

impl Query {
    /// Parses a raw query (without the leading `?`).
    pub fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Self { pairs }
    }

    /// The decoded value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        let q = Query::parse("a=1&b=x%20y%2&c&a=2&d=%zz+");
        assert_eq!(q.get(b"a"), Some(&b"1"[..]));
        assert_eq!(q.get(b"b"), Some(&b"x y%2"[..]));
        assert_eq!(q.get(b"c"), Some(&b""[..]));
        assert_eq!(q.get(b"d"), Some(&b"%zz+"[..]));
        assert_eq!(q.get(b"e"), None);
        assert_eq!(percent_decode("%41%"), b"A%");
    }
}
