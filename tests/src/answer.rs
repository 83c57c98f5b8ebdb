//! What MediaMTX's API tests check of an answer (its `checkError`, `checkOK` and key sets), for
//! the tests that hold the API to MediaMTX's behaviour.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::http::Response;

/// MediaMTX's `defs.APIRTMPConn` keys.
pub const RTMP_CONN_KEYS: [&str; 13] = [
    "id",
    "created",
    "remoteAddr",
    "state",
    "path",
    "query",
    "user",
    "userAgent",
    "inboundBytes",
    "outboundBytes",
    "outboundFramesDiscarded",
    "bytesReceived",
    "bytesSent",
];

/// The keys of a JSON object.
#[track_caller]
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// A set of key names, to compare with [`keys`].
pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// MediaMTX's `checkError`: the whole body is `{"status":"error","error":text}`.
#[track_caller]
pub fn assert_error_body(r: &Response, status: u16, text: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json(), json!({"status": "error", "error": text}));
}

/// MediaMTX's `checkOK`: a 200 whose whole body is `{"status":"ok"}`.
#[track_caller]
pub fn assert_ok(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"status": "ok"}));
}
