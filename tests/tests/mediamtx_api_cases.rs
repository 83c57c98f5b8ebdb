//! End-to-end: MediaMTX's own API tests (`internal/api/*_test.go` and `internal/core/api_test.go`
//! of bluenviron/mediamtx), one test here per test there, each asserting what MediaMTX's asserts
//! (status codes, exact bodies and error texts, key sets) against the real binary, with ffmpeg
//! publishing and reading where a live path is needed. A MediaMTX test that another file here
//! already covers says so at the covering assertion (`// MediaMTX: TestXxx`); the README's
//! "MediaMTX v3 compatibility, endpoint by endpoint" lists them all.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tests::answer::{assert_error_body, assert_ok, keys, set, RTMP_CONN_KEYS};
use tests::ff::{self, wait_with_timeout};
use tests::http;
use tests::{eventually, Engine, TempDir};

/// A `GET` that must answer 200; its JSON.
#[track_caller]
fn get_json(engine: &Engine, path: &str) -> Value {
    let r = engine.api("GET", path, None);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// The body MediaMTX's config path tests add to `my/path`: a source, a deprecated key and keys
/// of a feature Corestream does not have (Raspberry Pi cameras).
const ADD_MY_PATH: &str = r#"{"source":"rtsp://127.0.0.1:9999/mypath","sourceOnDemand":true,"disablePublisherOverride":true,"rpiCameraVFlip":true,"rpiCameraCodec":"hardwareH264","rpiCameraIDRPeriod":120,"rpiCameraBitrate":3000000,"rpiCameraH264Profile":"main","rpiCameraH264Level":"4.2"}"#;

/// What MediaMTX's config path tests read back: the listed keys of a path configuration.
fn path_conf_fields(v: &Value) -> Value {
    let names = [
        "source",
        "sourceOnDemand",
        "disablePublisherOverride",
        "rpiCameraVFlip",
        "rpiCameraCodec",
        "rpiCameraIDRPeriod",
        "rpiCameraBitrate",
        "rpiCameraH264Profile",
        "rpiCameraH264Level",
    ];
    Value::Array(names.iter().map(|k| v[*k].clone()).collect())
}

// MediaMTX: TestConfigGlobalGet
#[test]
fn config_global_get() {
    let engine = Engine::start(
        "authInternalUsers:\n- user: myuser\n  pass: mypass\n  permissions:\n  - action: api\n",
    );
    // myuser:mypass, the only user allowed the API.
    let auth = [("Authorization", "Basic bXl1c2VyOm15cGFzcw==")];
    let r = http::request(engine.api_port, "GET", "/v3/config/global/get", None, &auth);
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(out["api"], true);
    let users = out["authInternalUsers"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{out}");
    assert_eq!(users[0]["pass"], "<redacted>");
    assert!(!r.text().contains("mypass"), "{}", r.text());
    // MediaMTX's test checks that the request was authenticated with the api action.
    assert_error_body(
        &engine.api("GET", "/v3/config/global/get", None),
        401,
        "authentication error",
    );
}

// MediaMTX: TestConfigGlobalPatch
#[test]
fn config_global_patch() {
    let engine = Engine::start("");
    // A deprecated key (readBufferCount) and one converted to a list (protocols).
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"readTimeout":"7s","protocols":["tcp"],"readBufferCount":4096}"#),
    ));
    let out = get_json(&engine, "/v3/config/global/get");
    assert_eq!(out["readTimeout"], "7s");
    assert_eq!(out["protocols"], json!(["tcp"]));
    assert_eq!(out["readBufferCount"], 4096);
    // What they became, as MediaMTX converts them.
    assert_eq!(out["rtspTransports"], json!(["tcp"]));
    assert_eq!(out["writeQueueSize"], 4096);
    // MediaMTX's test also turns `rtmp` off, which restarts its RTMP server. Corestream's
    // listeners are bound on every core at start: the switch is refused, as the README's
    // "Configuration fields" says, and nothing of the request applies.
    assert_error_body(
        &engine.api(
            "PATCH",
            "/v3/config/global/patch",
            Some(r#"{"rtmp":false,"readTimeout":"8s"}"#),
        ),
        400,
        "'rtmp' cannot be changed while the engine runs: edit the configuration file and restart",
    );
    let out = get_json(&engine, "/v3/config/global/get");
    assert_eq!(
        (out["rtmp"].clone(), out["readTimeout"].clone()),
        (json!(true), json!("7s"))
    );
}

// MediaMTX: TestConfigGlobalPatchUnknownField
#[test]
fn config_global_patch_unknown_field() {
    let engine = Engine::start("");
    assert_error_body(
        &engine.api(
            "PATCH",
            "/v3/config/global/patch",
            Some(r#"{"test":"asd"}"#),
        ),
        400,
        "json: unknown field \"test\"",
    );
}

// MediaMTX: TestConfigPathDefaultsGet
#[test]
fn config_path_defaults_get() {
    let engine = Engine::start("pathDefaults:\n  readUser: myuser\n  readPass: mypass\n");
    let r = engine.api("GET", "/v3/config/pathdefaults/get", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(out["source"], "publisher");
    assert_eq!(out["readUser"], "myuser");
    assert_eq!(out["readPass"], "<redacted>");
    assert!(!r.text().contains("mypass"), "{}", r.text());
}

// MediaMTX: TestConfigPathDefaultsPatch
#[test]
fn config_path_defaults_patch() {
    let engine = Engine::start("");
    // fmp4 is the default: MediaMTX's value is set after another, so the patch shows.
    for format in ["mpegts", "fmp4"] {
        assert_ok(&engine.api(
            "PATCH",
            "/v3/config/pathdefaults/patch",
            Some(&format!(r#"{{"recordFormat":"{format}"}}"#)),
        ));
        let out = get_json(&engine, "/v3/config/pathdefaults/get");
        assert_eq!(out["recordFormat"], format);
    }
}

// MediaMTX: TestConfigPathsList
#[test]
fn config_paths_list() {
    let engine = Engine::start(
        "paths:\n  path1:\n    readUser: myuser1\n    readPass: mypass1\n  path2:\n    readUser: myuser2\n    readPass: mypass2\n",
    );
    let r = engine.api("GET", "/v3/config/paths/list", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(
        (out["itemCount"].clone(), out["pageCount"].clone()),
        (json!(2), json!(1))
    );
    let items = out["items"].as_array().unwrap();
    for (item, n) in items.iter().zip(1..) {
        assert_eq!(item["name"], format!("path{n}"));
        assert_eq!(item["readUser"], format!("myuser{n}"));
        assert_eq!(item["readPass"], "<redacted>");
    }
    assert!(!r.text().contains("mypass"), "{}", r.text());
}

// MediaMTX: TestConfigPathsGet
#[test]
fn config_paths_get() {
    let engine = Engine::start("paths:\n  my/path:\n    readUser: myuser\n    readPass: mypass\n");
    let out = get_json(&engine, "/v3/config/paths/get/my/path");
    assert_eq!(out["name"], "my/path");
    assert_eq!(out["readUser"], "myuser");
    assert_eq!(out["readPass"], "<redacted>");
}

// MediaMTX: TestConfigPathsAdd
#[test]
fn config_paths_add() {
    let engine = Engine::start("");
    assert_ok(&engine.api("POST", "/v3/config/paths/add/my/path", Some(ADD_MY_PATH)));
    let out = get_json(&engine, "/v3/config/paths/get/my/path");
    assert_eq!(
        path_conf_fields(&out),
        json!([
            "rtsp://127.0.0.1:9999/mypath",
            true,
            true,
            true,
            "hardwareH264",
            120,
            3000000,
            "main",
            "4.2"
        ])
    );
    // The deprecated key, converted: a second publisher does not replace the first.
    assert_eq!(out["overridePublisher"], false);
}

// MediaMTX: TestConfigPathsAddUnknownField
#[test]
fn config_paths_add_unknown_field() {
    let engine = Engine::start("");
    assert_error_body(
        &engine.api(
            "POST",
            "/v3/config/paths/add/my/path",
            Some(r#"{"test":"asd"}"#),
        ),
        400,
        "json: unknown field \"test\"",
    );
    assert_eq!(
        engine
            .api("GET", "/v3/config/paths/get/my/path", None)
            .status,
        404
    );
}

// MediaMTX: TestConfigPathsPatch
#[test]
fn config_paths_patch() {
    let engine = Engine::start("");
    assert_ok(&engine.api("POST", "/v3/config/paths/add/my/path", Some(ADD_MY_PATH)));
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/paths/patch/my/path",
        Some(r#"{"source":"rtsp://127.0.0.1:9998/mypath","sourceOnDemand":true,"rpiCameraCodec":"softwareH264","rpiCameraBitrate":4000000,"rpiCameraH264Level":"4.0"}"#),
    ));
    let out = get_json(&engine, "/v3/config/paths/get/my/path");
    assert_eq!(
        path_conf_fields(&out),
        json!([
            "rtsp://127.0.0.1:9998/mypath",
            true,
            true,
            true,
            "softwareH264",
            120,
            4000000,
            "main",
            "4.0"
        ])
    );
}

// MediaMTX: TestConfigPathsReplace
#[test]
fn config_paths_replace() {
    let engine = Engine::start("");
    assert_ok(&engine.api("POST", "/v3/config/paths/add/my/path", Some(ADD_MY_PATH)));
    assert_ok(&engine.api(
        "POST",
        "/v3/config/paths/replace/my/path",
        Some(r#"{"source":"rtsp://127.0.0.1:9998/mypath","sourceOnDemand":true}"#),
    ));
    let out = get_json(&engine, "/v3/config/paths/get/my/path");
    // The deprecated key is gone, the Raspberry Pi camera keys are MediaMTX's defaults again.
    assert_eq!(
        path_conf_fields(&out),
        json!([
            "rtsp://127.0.0.1:9998/mypath",
            true,
            null,
            false,
            "auto",
            60,
            5000000,
            "auto",
            "4.1"
        ])
    );
    assert!(out.get("disablePublisherOverride").is_none(), "{out}");
}

// MediaMTX: TestConfigPathsReplaceNonExisting
#[test]
fn config_paths_replace_non_existing() {
    let engine = Engine::start("");
    assert_ok(&engine.api(
        "POST",
        "/v3/config/paths/replace/my/path",
        Some(r#"{"source":"rtsp://127.0.0.1:9998/mypath","sourceOnDemand":true}"#),
    ));
    let out = get_json(&engine, "/v3/config/paths/get/my/path");
    assert_eq!(out["source"], "rtsp://127.0.0.1:9998/mypath");
    assert_eq!(out["sourceOnDemand"], true);
    assert_eq!(out["disablePublisherOverride"], Value::Null);
    assert_eq!(out["rpiCameraVFlip"], false);
}

// MediaMTX: TestConfigPathsDelete
#[test]
fn config_paths_delete() {
    let engine = Engine::start("");
    assert_ok(&engine.api(
        "POST",
        "/v3/config/paths/add/my/path",
        Some(r#"{"source":"rtsp://127.0.0.1:9999/mypath","sourceOnDemand":true}"#),
    ));
    assert_ok(&engine.api("DELETE", "/v3/config/paths/delete/my/path", None));
    assert_error_body(
        &engine.api("GET", "/v3/config/paths/get/my/path", None),
        404,
        "path configuration not found",
    );
}

/// The fields MediaMTX's `TestAPIPathsList` and `TestAPIPathsGet` decode from a path item.
fn path_brief(item: &Value) -> Value {
    json!({
        "name": item["name"],
        "source": {"type": item["source"]["type"]},
        "ready": item["ready"],
        "tracks": item["tracks"],
        "inboundBytes": item["inboundBytes"],
        "outboundBytes": item["outboundBytes"],
        "inboundFramesInError": item["inboundFramesInError"],
        "bytesReceived": item["bytesReceived"],
        "bytesSent": item["bytesSent"],
    })
}

// MediaMTX: TestAPIPathsList ("rtsp source", "rtmp source", "hls source")
#[test]
fn api_paths_list_static_sources() {
    for (source, kind) in [
        ("rtsp://127.0.0.1:1234/mypath", "rtspSource"),
        ("rtmp://127.0.0.1:1234/mypath", "rtmpSource"),
        ("http://127.0.0.1:1234/mypath", "hlsSource"),
    ] {
        let engine = Engine::start(&format!(
            "paths:\n  mypath:\n    source: {source}\n    sourceOnDemand: yes\n"
        ));
        let out = get_json(&engine, "/v3/paths/list");
        assert_eq!(
            (out["itemCount"].clone(), out["pageCount"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(
            path_brief(&out["items"][0]),
            json!({
                "name": "mypath",
                "source": {"type": kind},
                "ready": false,
                "tracks": [],
                "inboundBytes": 0,
                "outboundBytes": 0,
                "inboundFramesInError": 0,
                "bytesReceived": 0,
                "bytesSent": 0,
            }),
            "{source}"
        );
    }
}

/// ffmpeg reading `url` (RTMP) for at most `seconds`, decoding nothing.
fn ffmpeg_reader(url: &str, seconds: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i", url])
        .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (tests/run.sh installs it)")
}

// MediaMTX: TestPathsList
#[test]
fn paths_list() {
    let engine = Engine::start("paths:\n  test1:\n  test2:\n");
    let publisher = ff::publish(&engine.rtmp_url("test1"), 15);
    assert!(eventually(Duration::from_secs(15), || {
        engine.path_item("test1")["tracks"] == json!(["H264", "MPEG-4 Audio"])
    }));
    let mut reader = ffmpeg_reader(&engine.rtmp_url("test1"), 10);
    let mut out = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            out = get_json(&engine, "/v3/paths/list");
            out["items"][0]["readers"]
                .as_array()
                .is_some_and(|r| r.len() == 1)
        }),
        "{out}"
    );
    assert_eq!(
        (out["itemCount"].clone(), out["pageCount"].clone()),
        (json!(2), json!(1))
    );
    let items = out["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let test1 = &items[0];
    assert_eq!(test1["name"], "test1");
    assert_eq!(test1["confName"], "test1");
    assert_eq!(test1["source"]["type"], "rtmpConn");
    assert_eq!(test1["ready"], true);
    assert!(test1["readyTime"].is_string(), "{test1}");
    assert_eq!(test1["readers"][0]["type"], "rtmpConn");
    assert!(test1["inboundBytes"].as_u64().unwrap() > 0, "{test1}");
    assert_eq!(test1["inboundFramesInError"], 0);
    let test2 = &items[1];
    assert_eq!(
        (
            test2["name"].clone(),
            test2["ready"].clone(),
            test2["tracks"].clone(),
            test2["readers"].clone()
        ),
        (json!("test2"), json!(false), json!([]), json!([]))
    );
    let _ = reader.kill();
    let _ = reader.wait();
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

// MediaMTX: TestAPIPathsGet ("ok", "ok-nested", "not found"), TestPathsGet
#[test]
fn api_paths_get() {
    let engine = Engine::start("paths:\n  all_others:\n");
    let names = ["mypath", "my/nested/path"];
    let publishers: Vec<Child> = names
        .iter()
        .map(|n| ff::publish(&engine.rtmp_url(n), 12))
        .collect();
    for name in names {
        let mut out = Value::Null;
        assert!(
            eventually(Duration::from_secs(15), || {
                out = engine.path_item(name);
                out["tracks"] == json!(["H264", "MPEG-4 Audio"])
            }),
            "{out}"
        );
        let brief = path_brief(&out);
        assert_eq!(
            json!([
                brief["name"],
                brief["source"],
                brief["ready"],
                brief["tracks"]
            ]),
            json!([name, {"type": "rtmpConn"}, true, ["H264", "MPEG-4 Audio"]])
        );
        // TestPathsGet: the byte counters, under both names.
        assert!(out["inboundBytes"].as_u64().unwrap() > 0, "{out}");
        assert_eq!(out["inboundBytes"], out["bytesReceived"]);
        assert_eq!(out["outboundBytes"], out["bytesSent"]);
        assert_eq!(out["confName"], "all_others");
    }
    assert_error_body(
        &engine.api("GET", "/v3/paths/get/nonexisting", None),
        404,
        "path not found",
    );
    for p in publishers {
        wait_with_timeout(p, Duration::from_secs(30), "publisher");
    }
}

/// An item without its counters (they move while a client sends).
fn without_counters(item: &Value) -> Value {
    let mut item = item.clone();
    if let Value::Object(m) = &mut item {
        m.retain(|k, _| {
            !k.ends_with("Bytes") && !k.starts_with("bytes") && k != "outboundFramesDiscarded"
        });
    }
    item
}

// MediaMTX: TestRTMPConnsList, TestRTMPConnsGet, TestRTMPConnsKick, TestAPIProtocolListGet ("rtmp"), TestAPIProtocolKick ("rtmp")
#[test]
fn rtmp_conns_list_get_and_kick() {
    let engine = Engine::start("");
    let publisher = ff::publish(&engine.rtmp_url("live/mypath?key=val"), 20);
    assert!(eventually(Duration::from_secs(15), || {
        engine.path_item("live/mypath")["ready"] == true
    }));
    let mut reader = ffmpeg_reader(&engine.rtmp_url("live/mypath"), 15);
    let mut out = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            out = get_json(&engine, "/v3/rtmpconns/list");
            out["itemCount"] == 2 && out["items"].to_string().contains(r#""state":"read""#)
        }),
        "{out}"
    );
    assert_eq!(out["pageCount"], 1);
    let items = out["items"].as_array().unwrap();
    let by_state = |state: &str| {
        items
            .iter()
            .find(|i| i["state"] == state)
            .unwrap_or_else(|| panic!("no {state} connection in {out}"))
            .clone()
    };
    let published = by_state("publish");
    let read = by_state("read");
    for item in [&published, &read] {
        assert_eq!(keys(item), set(&RTMP_CONN_KEYS), "{item}");
        assert_eq!(item["path"], "live/mypath");
        assert_eq!(item["user"], "");
        assert!(
            item["remoteAddr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{item}"
        );
        assert_eq!(item["inboundBytes"], item["bytesReceived"]);
        assert_eq!(item["outboundBytes"], item["bytesSent"]);
        assert_eq!(item["outboundFramesDiscarded"], 0);
    }
    // MediaMTX shows `key=val`; a `key` parameter is a stream key here, a secret, and secrets
    // are never shown (README, Control API: `pass`/`password`/`token`/`key` read `<redacted>`).
    assert_eq!(published["query"], "key=<redacted>");
    assert_eq!(read["query"], "");
    // ffmpeg's flashVer (MediaMTX's test client sends `LNX 9,0,124,2`).
    assert!(
        published["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("FMLE/3.0"),
        "{published}"
    );
    assert!(
        published["inboundBytes"].as_u64().unwrap() > 0,
        "{published}"
    );
    assert!(read["outboundBytes"].as_u64().unwrap() > 0, "{read}");

    // Get: the list's item.
    let id = published["id"].as_str().unwrap().to_owned();
    let got = get_json(&engine, &format!("/v3/rtmpconns/get/{id}"));
    assert_eq!(without_counters(&got), without_counters(&published));
    assert!(got["inboundBytes"].as_u64() >= published["inboundBytes"].as_u64());

    // Kick both (the reader first: a kicked publisher's readers go with its stream): the list
    // is empty.
    for item in [&read, &published] {
        let id = item["id"].as_str().unwrap();
        assert_ok(&engine.api("POST", &format!("/v3/rtmpconns/kick/{id}"), None));
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            out = get_json(&engine, "/v3/rtmpconns/list");
            out["items"] == json!([])
        }),
        "{out}"
    );
    let _ = reader.kill();
    let _ = reader.wait();
    let kicked = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    assert!(
        !kicked.status.success(),
        "the kicked publisher ran to its end"
    );
}

// MediaMTX: TestAPIProtocolGetNotFound ("rtmp"), TestAPIProtocolKickNotFound ("rtmp")
#[test]
fn rtmp_conns_get_and_kick_not_found() {
    let engine = Engine::start("paths:\n  all_others:\n");
    let id = "18294761-f9d1-4ea9-9a35-fe265b62eb41";
    assert_error_body(
        &engine.api("GET", &format!("/v3/rtmpconns/get/{id}"), None),
        404,
        "connection not found",
    );
    assert_error_body(
        &engine.api("POST", &format!("/v3/rtmpconns/kick/{id}"), None),
        404,
        "connection not found",
    );
}

// MediaMTX: TestHLSSessionsKickNotFound, TestAPIProtocolKickNotFound ("hls"), TestAPIProtocolGetNotFound ("hls sessions", "hls muxers")
#[test]
fn hls_sessions_and_muxers_not_found() {
    let engine = Engine::start("paths:\n  all_others:\n");
    let id = "18294761-f9d1-4ea9-9a35-fe265b62eb41";
    assert_error_body(
        &engine.api("POST", &format!("/v3/hlssessions/kick/{id}"), None),
        404,
        "session not found",
    );
    assert_error_body(
        &engine.api("GET", &format!("/v3/hlssessions/get/{id}"), None),
        404,
        "session not found",
    );
    assert_error_body(
        &engine.api("GET", &format!("/v3/hlsmuxers/get/{id}"), None),
        404,
        "muxer not found",
    );
}

/// `recordPath` as MediaMTX's recording tests set it, under `dir`.
fn record_conf(dir: &std::path::Path, paths: &str) -> String {
    format!(
        "pathDefaults:\n  recordPath: {}/%path/%Y-%m-%d_%H-%M-%S-%f\npaths:\n{paths}",
        dir.display()
    )
}

/// An empty segment file, as MediaMTX's tests write them: only the name is read.
fn touch(dir: &std::path::Path, path: &str, name: &str) -> std::path::PathBuf {
    let d = dir.join(path);
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join(name);
    std::fs::write(&f, b"").unwrap();
    f
}

// Corestream names and reads segment times in UTC; MediaMTX in the local zone, which is the
// same text on a host that runs in UTC.

// MediaMTX: TestRecordingsList
#[test]
fn recordings_list() {
    let dir = TempDir::new("mtx-rec-list");
    let engine = Engine::start(&record_conf(&dir.path, "  mypath1:\n  all_others:\n"));
    touch(&dir.path, "mypath1", "2008-11-07_11-22-00-500000.mp4");
    touch(&dir.path, "mypath1", "2009-11-07_11-22-00-900000.mp4");
    touch(&dir.path, "mypath2", "2009-11-07_11-22-00-900000.mp4");
    assert_eq!(
        get_json(&engine, "/v3/recordings/list"),
        json!({
            "itemCount": 2,
            "pageCount": 1,
            "items": [
                {"name": "mypath1", "segments": [
                    {"start": "2008-11-07T11:22:00.5Z"},
                    {"start": "2009-11-07T11:22:00.9Z"},
                ]},
                {"name": "mypath2", "segments": [
                    {"start": "2009-11-07T11:22:00.9Z"},
                ]},
            ],
        })
    );
}

// MediaMTX: TestRecordingsGet
#[test]
fn recordings_get() {
    let dir = TempDir::new("mtx-rec-get");
    let engine = Engine::start(&record_conf(&dir.path, "  all_others:\n"));
    touch(&dir.path, "mypath1", "2008-11-07_11-22-00-000000.mp4");
    touch(&dir.path, "mypath1", "2009-11-07_11-22-00-900000.mp4");
    assert_eq!(
        get_json(&engine, "/v3/recordings/get/mypath1"),
        json!({"name": "mypath1", "segments": [
            {"start": "2008-11-07T11:22:00Z"},
            {"start": "2009-11-07T11:22:00.9Z"},
        ]})
    );
}

// MediaMTX: TestRecordingsDeleteSegment
#[test]
fn recordings_delete_segment() {
    let dir = TempDir::new("mtx-rec-del");
    let engine = Engine::start(&record_conf(&dir.path, "  all_others:\n"));
    let segment = touch(&dir.path, "group/cam1", "2008-11-07_11-22-00-900000.mp4");
    let r = engine.api(
        "DELETE",
        "/v3/recordings/deletesegment?path=group%2Fcam1&start=2008-11-07T11%3A22%3A00.9Z",
        None,
    );
    assert_ok(&r);
    assert!(!segment.exists());
}

// MediaMTX: TestRecordingsDeleteSegmentInvalidPath
#[test]
fn recordings_delete_segment_invalid_path() {
    let dir = TempDir::new("mtx-rec-del-bad");
    let engine = Engine::start(&record_conf(&dir.path, "  all_others:\n"));
    let segment = touch(&dir.path, "group/cam1", "2008-11-07_11-22-00-900000.mp4");
    let r = engine.api(
        "DELETE",
        "/v3/recordings/deletesegment?path=group%2F..%2Fcam1&start=2008-11-07T11%3A22%3A00.9Z",
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(segment.exists());
}

// MediaMTX: TestRecordingsSegmentGetInvalidPath
#[test]
fn recordings_segment_get_invalid_path() {
    let dir = TempDir::new("mtx-rec-get-bad");
    let engine = Engine::start(&record_conf(&dir.path, "  all_others:\n"));
    let r = engine.api("GET", "/v3/recordings/get/group/../cam1", None);
    assert_eq!(r.status, 400, "{}", r.text());
}

// MediaMTX: TestPreflightRequest
#[test]
fn preflight_request() {
    let engine = Engine::start("");
    let r = http::request(
        engine.api_port,
        "OPTIONS",
        "/",
        None,
        &[("Access-Control-Request-Method", "GET")],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("OPTIONS, GET, POST, PATCH, DELETE")
    );
    assert_eq!(
        r.header("Access-Control-Allow-Headers"),
        Some("Authorization, Content-Type")
    );
    assert!(r.body.is_empty());
}

// MediaMTX: TestInfo
#[test]
fn info() {
    let engine = Engine::start("");
    let out = get_json(&engine, "/v3/info");
    assert_eq!(keys(&out), set(&["started", "version"]));
    assert!(
        out["version"].as_str().unwrap().starts_with("corestream "),
        "{out}"
    );
    // RFC 3339, in UTC, the day the engine logged itself ready (its lines begin with the time).
    let started = out["started"].as_str().unwrap();
    let ready = engine.wait_for_log("corestream ready", Duration::from_secs(1));
    assert_eq!(started.get(..10), ready.get(..10), "{started} / {ready}");
    assert!(
        started.len() >= 20 && &started[10..11] == "T" && started.ends_with('Z'),
        "{started}"
    );
}

// MediaMTX: TestAuthJWKSRefresh (no JWT authentication here: the route is absent)
#[test]
fn auth_jwks_refresh_is_absent() {
    let engine = Engine::start("");
    let r = engine.api("POST", "/v3/auth/jwks/refresh", None);
    assert_eq!((r.status, r.text()), (404, "404 page not found".to_owned()));
}

// MediaMTX: TestAuthError
#[test]
fn auth_error() {
    let engine = Engine::start(
        "authInternalUsers:\n- user: myuser\n  pass: mypass\n  permissions:\n  - action: api\n",
    );
    let r = engine.api("GET", "/v3/config/global/get", None);
    assert_error_body(&r, 401, "authentication error");
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"mediamtx\"")
    );
    // myuser:wrong
    let r = http::request(
        engine.api_port,
        "GET",
        "/v3/config/global/get",
        None,
        &[("Authorization", "Basic bXl1c2VyOndyb25n")],
    );
    assert_error_body(&r, 401, "authentication error");
    assert_eq!(r.header("WWW-Authenticate"), None);
}
