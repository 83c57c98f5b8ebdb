//! End-to-end: `/v3/paths/forward/list` and `/get` answer as MediaMTX's do
//! (`internal/api/api_forward.go`, `api_forward_test.go`, `internal/defs/api_forward.go` of
//! bluenviron/mediamtx) for Corestream's pushes: ffmpeg publishes a path whose `forward` entries
//! push to another path of the same engine and to a port nobody listens on; the list and get
//! answers are checked for codes, bodies, key sets, moving counters, stable ids, positions that
//! follow a configuration change, pagination and every error MediaMTX words, with our HTTP client
//! and curl.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tests::answer::{keys, set};
use tests::ff;
use tests::http;
use tests::{eventually, free_port, Engine};

/// MediaMTX's `defs.APIForwardDest` keys, exactly.
const DEST_KEYS: [&str; 8] = [
    "id",
    "pos",
    "created",
    "conf",
    "protocol",
    "state",
    "lastError",
    "outboundBytes",
];

/// MediaMTX's `conf.ForwardDest` keys, exactly.
const CONF_KEYS: [&str; 3] = ["dest", "destFingerprint", "whipBearerToken"];

/// MediaMTX's `checkError`: the whole body is `{"status":"error","error":text}`.
#[track_caller]
fn assert_error(r: &http::Response, status: u16, text: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json(), json!({"status": "error", "error": text}));
}

fn list(engine: &Engine, query: &str) -> http::Response {
    engine.api("GET", &format!("/v3/paths/forward/list?{query}"), None)
}

fn get(engine: &Engine, query: &str) -> http::Response {
    engine.api("GET", &format!("/v3/paths/forward/get?{query}"), None)
}

/// The path's destinations (the list answer's `items`); panics unless the answer is a 200.
fn items(engine: &Engine, path: &str) -> Vec<Value> {
    let r = list(engine, &format!("path={path}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let items = body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(body["itemCount"], items.len(), "{body}");
    items
}

#[test]
// MediaMTX: TestForward
fn forward_destinations_are_listed_and_got_as_mediamtx_shows_them() {
    let dead_port = free_port();
    let engine = Engine::start_with("debug", |[rtmp, ..]| {
        format!(
            "paths:\n  cam/main:\n    forward:\n\
             \x20     - dest: rtmp://127.0.0.1:{rtmp}/relayed\n\
             \x20     - dest: rtmp://127.0.0.1:{dead_port}/nowhere\n\
             \x20 relayed/main:\n  mirror/main:\n  ~^live/:\n    forward:\n\
             \x20     - dest: rtmp://127.0.0.1:{dead_port}/x\n"
        )
    });

    // A configured path that is not live has no pushes yet (Corestream's pushes live with the
    // stream); a regex entry is no path until something publishes under it.
    assert_eq!(
        list(&engine, "path=cam/main").json(),
        json!({"itemCount": 0, "pageCount": 0, "items": []})
    );
    assert_error(&list(&engine, "path=live/x"), 404, "path not found");

    let mut publisher = ff::publish(&engine.rtmp_url("cam/main"), 40);
    let mut dests = Vec::new();
    let live = eventually(Duration::from_secs(20), || {
        dests = items(&engine, "cam/main");
        dests.len() == 2
            && dests[0]["outboundBytes"].as_u64() > Some(0)
            && dests[1]["state"] == "error"
            && engine.path_item("relayed/main")["ready"] == true
    });
    assert!(live, "{dests:?}");

    // MediaMTX's shape, key for key; the pushed path is live from the first push.
    for d in &dests {
        assert_eq!(keys(d), set(&DEST_KEYS), "{d}");
        assert_eq!(keys(&d["conf"]), set(&CONF_KEYS), "{d}");
        assert_eq!(d["protocol"], "rtmp", "{d}");
        assert_eq!(d["id"].as_str().map(str::len), Some(36), "{d}");
        assert_eq!(d["conf"]["whipBearerToken"], "", "{d}");
        assert_eq!(d["conf"]["destFingerprint"], "", "{d}");
    }
    let (relayed, dead) = (dests[0].clone(), dests[1].clone());
    assert_eq!(
        (relayed["pos"].clone(), dead["pos"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(relayed["state"], "forwarding", "{relayed}");
    assert_eq!(relayed["lastError"], "", "{relayed}");
    assert_eq!(
        relayed["conf"]["dest"],
        format!("rtmp://127.0.0.1:{}/relayed", engine.rtmp_port)
    );
    assert_eq!(
        dead["conf"]["dest"],
        format!("rtmp://127.0.0.1:{dead_port}/nowhere")
    );
    assert_eq!(
        dead["lastError"],
        format!("connect 127.0.0.1:{dead_port}: connection refused"),
        "{dead}"
    );
    // Created when the stream went live (the publisher's ready time is taken on its own core
    // around the same moment, so the two are compared to the second, not ordered).
    let published = engine.path_item("cam/main")["readyTime"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let created = relayed["created"].as_str().unwrap_or_default();
    assert_eq!(created.len(), published.len(), "{created} / {published}");
    assert!(created.ends_with('Z'), "{created}");
    let apart = (time_of_day_ms(created) - time_of_day_ms(&published)).rem_euclid(86_400_000);
    assert!(
        apart.min(86_400_000 - apart) < 2_000,
        "{created} / {published}"
    );

    // Get: the same item by id (path URL-encoded as MediaMTX's own test sends it), the counter
    // moving, the id kept across the dead target's retries.
    let id = relayed["id"].as_str().unwrap_or_default().to_owned();
    let dead_id = dead["id"].as_str().unwrap_or_default().to_owned();
    let first = get(&engine, &format!("path=cam%2Fmain&id={id}"));
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    for k in ["id", "pos", "created", "conf", "protocol"] {
        assert_eq!(first[k], relayed[k], "{k}");
    }
    let moved = eventually(Duration::from_secs(10), || {
        get(&engine, &format!("path=cam/main&id={id}")).json()["outboundBytes"].as_u64()
            > first["outboundBytes"].as_u64()
    });
    assert!(moved, "outboundBytes did not move past {first}");
    engine.wait_for_log_count("push failed", 3, Duration::from_secs(20));
    let again = get(&engine, &format!("path=cam/main&id={dead_id}")).json();
    assert_eq!(
        (again["id"].clone(), again["created"].clone()),
        (dead["id"].clone(), dead["created"].clone())
    );
    // Go's UUID forms are read as Go reads them.
    let urn = get(
        &engine,
        &format!("path=cam/main&id=urn:uuid:{}", id.to_uppercase()),
    );
    assert_eq!(urn.json()["id"], id.as_str(), "{}", urn.text());

    // A real client nobody here wrote sees the same list.
    let out = Command::new("curl")
        .args(["-s", "-g", "--max-time", "10"])
        .arg(format!(
            "http://127.0.0.1:{}/v3/paths/forward/list?path=cam%2Fmain&itemsPerPage=1&page=1",
            engine.api_port
        ))
        .output()
        .expect("curl is installed (tests/run.sh installs it)");
    let page: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("curl got no JSON ({e}): {out:?}"));
    assert_eq!(
        (
            page["itemCount"].clone(),
            page["pageCount"].clone(),
            page["items"][0]["id"].clone()
        ),
        (json!(2), json!(2), json!(dead_id))
    );

    // Pagination as on every list.
    let first_page = list(&engine, "path=cam/main&itemsPerPage=1").json();
    assert_eq!(first_page["items"][0]["id"], id.as_str(), "{first_page}");
    assert_eq!(
        list(&engine, "path=cam/main&itemsPerPage=1&page=5").json()["items"],
        json!([])
    );
    assert_error(
        &list(&engine, "path=cam/main&itemsPerPage=0"),
        400,
        "invalid items per page",
    );
    assert_error(
        &list(&engine, "path=cam/main&page=x"),
        400,
        "strconv.ParseUint: parsing \"x\": invalid syntax",
    );

    // Every error MediaMTX words, in its order of checks.
    assert_error(&list(&engine, ""), 400, "invalid path");
    assert_error(&list(&engine, "path="), 400, "invalid path");
    assert_error(&list(&engine, "path=nothing/here"), 404, "path not found");
    // The path is looked up before the pagination parameters are read.
    assert_error(
        &list(&engine, "path=nothing/here&itemsPerPage=0"),
        404,
        "path not found",
    );
    assert_error(
        &get(&engine, "path=cam/main"),
        400,
        "invalid UUID length: 0",
    );
    assert_error(&get(&engine, "id=abc"), 400, "invalid UUID length: 3");
    assert_error(
        &get(
            &engine,
            "path=cam/main&id=zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        ),
        400,
        "invalid UUID format",
    );
    assert_error(&get(&engine, &format!("id={id}")), 400, "invalid path");
    assert_error(
        &get(&engine, &format!("path=nothing/here&id={id}")),
        404,
        "path not found",
    );
    assert_error(
        &get(
            &engine,
            "path=cam/main&id=123e4567-e89b-42d3-a456-426614174000",
        ),
        404,
        "forward destination not found",
    );
    // Another path's push is not this path's; the pushed path has none of its own.
    assert_error(
        &get(&engine, &format!("path=relayed/main&id={id}")),
        404,
        "forward destination not found",
    );
    assert_eq!(items(&engine, "relayed/main"), Vec::<Value>::new());
    // Known paths with another method: MediaMTX's router has no 405.
    for (method, path) in [
        ("POST", "/v3/paths/forward/list?path=cam/main"),
        ("DELETE", "/v3/paths/forward/get?path=cam/main"),
    ] {
        let r = engine.api(method, path, None);
        assert_eq!(
            (r.status, r.text()),
            (404, "404 page not found".to_owned()),
            "{method} {path}"
        );
    }

    // An entry added in front through the API: a new push at position 1, the running ones keep
    // their ids and move down.
    let patch = format!(
        r#"{{"forward":[{{"dest":"rtmp://127.0.0.1:{rtmp}/mirror"}},{{"dest":"rtmp://127.0.0.1:{rtmp}/relayed"}},{{"dest":"rtmp://127.0.0.1:{dead_port}/nowhere"}}]}}"#,
        rtmp = engine.rtmp_port
    );
    let r = engine.api("PATCH", "/v3/config/paths/patch/cam/main", Some(&patch));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut after = Vec::new();
    let moved = eventually(Duration::from_secs(15), || {
        after = items(&engine, "cam/main");
        after.len() == 3 && after[0]["outboundBytes"].as_u64() > Some(0)
    });
    assert!(moved, "{after:?}");
    let brief: Vec<Value> = after.iter().map(|d| json!([d["pos"], d["id"]])).collect();
    assert_eq!(brief[1], json!([2, id]), "{after:?}");
    assert_eq!(brief[2], json!([3, dead_id]), "{after:?}");
    assert!(
        ![id.as_str(), dead_id.as_str()].contains(&after[0]["id"].as_str().unwrap_or_default()),
        "{after:?}"
    );
    assert_eq!(
        after[0]["conf"]["dest"],
        format!("rtmp://127.0.0.1:{}/mirror", engine.rtmp_port)
    );

    // The stream ends: its pushes go, and their ids with them.
    let _ = publisher.kill();
    let _ = publisher.wait();
    let gone = eventually(Duration::from_secs(15), || {
        items(&engine, "cam/main").is_empty()
    });
    assert!(gone, "{:?}", items(&engine, "cam/main"));
    assert_error(
        &get(&engine, &format!("path=cam/main&id={id}")),
        404,
        "forward destination not found",
    );
}

/// The milliseconds since midnight of an RFC 3339 UTC time with milliseconds
/// (`2026-12-05T19:42:38.646Z`).
fn time_of_day_ms(rfc3339: &str) -> i64 {
    let clock = rfc3339.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = clock.split(':');
    let (h, m) = (parts.next().unwrap(), parts.next().unwrap());
    let s: f64 = parts.next().unwrap().parse().unwrap();
    (h.parse::<i64>().unwrap() * 3600 + m.parse::<i64>().unwrap() * 60) * 1000
        + (s * 1000.0).round() as i64
}
