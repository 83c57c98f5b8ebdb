//! Authentication: internal users, URL signatures (types A/B/C) and the compiled expression language.
#![forbid(unsafe_code)]

pub mod dsl;
