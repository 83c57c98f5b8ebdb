//! Authentication: internal users, URL signatures (types A/B/C) and the compiled expression language.
#![forbid(unsafe_code)]

pub mod dsl;
mod locate;
pub mod query;
pub mod url_sign;
pub mod users;

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
