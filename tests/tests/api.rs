//! End-to-end: the control API and /metrics of the real binary, driven over HTTP with a plain
//! std::net client, with ffmpeg publishing and reading.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::answer::assert_ok;
use tests::ff::{self, decoded_frames, wait_with_timeout};
use tests::http::{self, Client};
use tests::{eventually, Engine};

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[track_caller]
fn assert_error(r: &http::Response, status: u16, text: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json()["status"], "error", "{}", r.text());
    assert!(
        r.error().contains(text),
        "expected {text:?} in {}",
        r.text()
    );
}

#[test]
fn config_endpoints_errors_pagination_and_slashes() {
    let engine = Engine::start("");
    // MediaMTX: TestInfo (its key set exactly in mediamtx_api_cases.rs)
    let info = engine.api("GET", "/v3/info", None);
    assert_eq!(info.status, 200);
    assert!(info.json()["version"]
        .as_str()
        .unwrap()
        .contains("corestream"));
    assert!(info
        .header("content-type")
        .unwrap()
        .contains("application/json"));

    // Global configuration.
    let global = engine.api("GET", "/v3/config/global/get", None).json();
    assert_eq!(global["readTimeout"], "10s");
    assert_eq!(global["api"], true);
    assert!(global.get("paths").is_none());
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"readTimeout":"4s"}"#),
    ));
    assert_eq!(
        engine.api("GET", "/v3/config/global/get", None).json()["readTimeout"],
        "4s"
    );
    engine.wait_for_log(
        "reloading configuration (API request)",
        Duration::from_secs(5),
    );
    // What GET returned can be sent back whole.
    let whole = engine.api("GET", "/v3/config/global/get", None).text();
    assert_ok(&engine.api("PATCH", "/v3/config/global/patch", Some(&whole)));
    assert_error(
        &engine.api(
            "PATCH",
            "/v3/config/global/patch",
            Some(r#"{"rtmpAddress":":1"}"#),
        ),
        400,
        "cannot be changed while the engine runs",
    );
    assert_error(
        &engine.api(
            "PATCH",
            "/v3/config/global/patch",
            Some(r#"{"readTimout":"4s"}"#),
        ),
        400,
        "json: unknown field \"readTimout\"",
    );
    assert_error(
        &engine.api(
            "PATCH",
            "/v3/config/global/patch",
            Some(r#"{"readTimeout":4"#),
        ),
        400,
        "json",
    );

    // Path defaults.
    let defaults = engine
        .api("GET", "/v3/config/pathdefaults/get", None)
        .json();
    assert_eq!(defaults["source"], "publisher");
    assert_eq!(defaults["maxReaders"], 0);
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"maxReaders":9}"#),
    ));
    assert_eq!(
        engine
            .api("GET", "/v3/config/pathdefaults/get", None)
            .json()["maxReaders"],
        9
    );
    assert_error(
        &engine.api(
            "PATCH",
            "/v3/config/pathdefaults/patch",
            // MediaMTX's keys (`record`) are kept; a key neither has is refused.
            Some(r#"{"recrd":true}"#),
        ),
        400,
        "json: unknown field \"recrd\"",
    );

    // Paths: add, get, patch, replace, delete, with names containing slashes.
    assert_eq!(
        names(&engine.api("GET", "/v3/config/paths/list", None).json()),
        ["all_others"]
    );
    assert_ok(&engine.api(
        "POST",
        "/v3/config/paths/add/live/cam1",
        Some(r#"{"maxReaders":2}"#),
    ));
    assert_error(
        &engine.api("POST", "/v3/config/paths/add/live/cam1", Some("{}")),
        400,
        "path already exists",
    );
    let cam1 = engine
        .api("GET", "/v3/config/paths/get/live/cam1", None)
        .json();
    assert_eq!(cam1["name"], "live/cam1");
    assert_eq!(cam1["maxReaders"], 2);
    assert_eq!(cam1["source"], "publisher");
    assert_eq!(cam1["sourceOnDemandStartTimeout"], "10s");
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/paths/patch/live/cam1",
        Some(r#"{"overridePublisher":true,"sourceOnDemandCloseAfter":"1m30s"}"#),
    ));
    let cam1 = engine
        .api("GET", "/v3/config/paths/get/live/cam1", None)
        .json();
    assert_eq!(
        (
            cam1["maxReaders"].clone(),
            cam1["overridePublisher"].clone()
        ),
        (json!(2), json!(true))
    );
    assert_eq!(cam1["sourceOnDemandCloseAfter"], "1m30s");
    // Replace drops what it does not set (back to the defaults) and creates when missing.
    assert_ok(&engine.api("POST", "/v3/config/paths/replace/live/cam1", Some("{}")));
    assert_eq!(
        engine
            .api("GET", "/v3/config/paths/get/live/cam1", None)
            .json()["maxReaders"],
        9
    );
    assert_ok(&engine.api(
        "POST",
        "/v3/config/paths/replace/a/b/c",
        Some(r#"{"name":"a/b/c"}"#),
    ));
    assert_ok(&engine.api("POST", "/v3/config/paths/add/~^cams/", Some("{}")));
    assert_eq!(
        engine
            .api("GET", "/v3/config/paths/get/~^cams/", None)
            .json()["name"],
        "~^cams/"
    );
    assert_ok(&engine.api("DELETE", "/v3/config/paths/delete/a/b/c", None));
    assert_error(
        &engine.api("DELETE", "/v3/config/paths/delete/a/b/c", None),
        404,
        "path not found",
    );
    assert_error(
        &engine.api("PATCH", "/v3/config/paths/patch/nope", Some("{}")),
        404,
        "path not found",
    );
    assert_error(
        &engine.api("GET", "/v3/config/paths/get/nope", None),
        404,
        "path configuration not found",
    );
    assert_error(
        &engine.api(
            "POST",
            "/v3/config/paths/add/pull",
            Some(r#"{"source":"rtsps://cam/1"}"#),
        ),
        400,
        "source 'rtsps://cam/1' is not supported yet",
    );
    assert_error(
        &engine.api(
            "POST",
            "/v3/config/paths/add/pull",
            Some(r#"{"source":"srt://origin:9000"}"#),
        ),
        400,
        "is not supported yet",
    );
    assert_error(
        &engine.api(
            "POST",
            "/v3/config/paths/add/x",
            Some(r#"{"sourceOnDemand":true}"#),
        ),
        400,
        "sourceOnDemand",
    );
    assert_error(
        &engine.api(
            "POST",
            "/v3/config/paths/add/x",
            Some(r#"{"maxReaders":-1}"#),
        ),
        400,
        "json",
    );
    assert_error(
        &engine.api("POST", "/v3/config/paths/add/x", Some(r#"{"bogus":1}"#)),
        400,
        "json: unknown field \"bogus\"",
    );
    assert_error(
        &engine.api("POST", "/v3/config/paths/add/~(", Some("{}")),
        400,
        "invalid regular expression: (",
    );
    assert_error(
        &engine.api("POST", "/v3/config/paths/add/bad%20name", Some("{}")),
        400,
        "invalid path name 'bad name': can contain only alphanumeric characters",
    );

    // Pagination, sorted by name.
    for i in 0..5 {
        assert_ok(&engine.api(
            "POST",
            &format!("/v3/config/paths/add/page/p{i}"),
            Some("{}"),
        ));
    }
    let all = engine.api("GET", "/v3/config/paths/list", None).json();
    assert_eq!(all["itemCount"], 8);
    let expected = [
        "all_others",
        "live/cam1",
        "page/p0",
        "page/p1",
        "page/p2",
        "page/p3",
        "page/p4",
        "~^cams/",
    ];
    assert_eq!(names(&all), expected);
    let page = engine
        .api("GET", "/v3/config/paths/list?itemsPerPage=3&page=2", None)
        .json();
    assert_eq!(
        (page["itemCount"].clone(), page["pageCount"].clone()),
        (json!(8), json!(3))
    );
    assert_eq!(names(&page), ["page/p4", "~^cams/"]);
    assert_eq!(
        names(
            &engine
                .api("GET", "/v3/config/paths/list?itemsPerPage=3&page=9", None)
                .json()
        ),
        Vec::<String>::new()
    );
    assert_error(
        &engine.api("GET", "/v3/config/paths/list?itemsPerPage=0", None),
        400,
        "invalid items per page",
    );
    assert_error(
        &engine.api("GET", "/v3/paths/list?page=x", None),
        400,
        "strconv.ParseUint: parsing \"x\": invalid syntax",
    );

    // Runtime endpoints with nothing running, and routing errors.
    let empty = json!({"itemCount": 0, "pageCount": 0, "items": []});
    // The configured paths are listed (as MediaMTX lists them), none of them ready; not the
    // regular expression.
    let runtime = engine.api("GET", "/v3/paths/list", None).json();
    assert_eq!(
        names(&runtime),
        [
            "live/cam1",
            "page/p0",
            "page/p1",
            "page/p2",
            "page/p3",
            "page/p4"
        ]
    );
    assert!(runtime["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["ready"] == false && p["source"].is_null()));
    assert_eq!(engine.api("GET", "/v3/rtmpconns/list", None).json(), empty);
    assert_eq!(engine.api("GET", "/v3/hlsmuxers/list", None).json(), empty);
    assert_error(
        &engine.api("GET", "/v3/paths/get/live/none", None),
        404,
        "path not found",
    );
    let unknown = "/v3/rtmpconns/get/123e4567-e89b-42d3-a456-426614174000";
    assert_error(
        &engine.api("GET", unknown, None),
        404,
        "connection not found",
    );
    assert_error(
        &engine.api(
            "POST",
            "/v3/rtmpconns/kick/123e4567-e89b-42d3-a456-426614174000",
            None,
        ),
        404,
        "connection not found",
    );
    assert_error(
        &engine.api("GET", "/v3/rtmpconns/get/not-a-uuid", None),
        400,
        "invalid UUID length: 10",
    );
    // MediaMTX's router: no route, or a known route with another method, is a plain-text 404.
    for (method, path) in [
        ("GET", "/v3/nothing"),
        ("GET", "/v3/config/paths/add/x"),
        ("POST", "/v3/paths/list"),
        ("DELETE", "/v3/config/global/get"),
    ] {
        let r = engine.api(method, path, None);
        assert_eq!(
            (r.status, r.text()),
            (404, "404 page not found".to_owned()),
            "{method} {path}"
        );
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    }
    // Malformed HTTP and oversized bodies are refused by the parser.
    assert_eq!(
        http::raw_status(engine.api_port, b"GET / HTTP/9.9\r\n\r\n"),
        505
    );
    let big = format!(
        "POST /v3/config/paths/add/big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        10 << 20
    );
    assert_eq!(http::raw_status(engine.api_port, big.as_bytes()), 413);

    // Keep-alive: many requests on one connection.
    let mut c = Client::connect(engine.api_port);
    for _ in 0..20 {
        assert_eq!(c.request("GET", "/v3/info", None, &[]).status, 200);
    }
}

#[test]
fn unconfigured_paths_and_max_readers_are_enforced() {
    let engine = Engine::start("playWaitTimeout: 20s\npaths:\n  live/only:\n    maxReaders: 1\n");
    // No entry matches live/other: publishing it is refused.
    let refused = ff::publish(&engine.rtmp_url("live/other"), 2);
    let out = wait_with_timeout(refused, Duration::from_secs(20), "refused publisher");
    assert!(!out.status.success());
    engine.wait_for_log("no paths entry matches the path", Duration::from_secs(5));

    let url = engine.rtmp_url("live/only");
    let publisher = ff::publish(&url, 6);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let first = ff::spawn_decoder(&url);
    engine.wait_for_log("player started", Duration::from_secs(10));
    let second = ff::spawn_decoder(&url);
    engine.wait_for_log("the path has maxReaders readers", Duration::from_secs(10));
    let out = wait_with_timeout(second, Duration::from_secs(20), "second reader");
    assert!(
        decoded_frames(&out).unwrap_or(0) == 0,
        "the second reader got frames"
    );
    // Raise the limit on the fly: a new reader is admitted, the first keeps playing.
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/paths/patch/live/only",
        Some(r#"{"maxReaders":2}"#),
    ));
    let third = ff::spawn_decoder(&url);
    engine.wait_for_log_count("player started", 2, Duration::from_secs(10));
    for (child, what) in [(first, "first reader"), (third, "third reader")] {
        let out = wait_with_timeout(child, Duration::from_secs(30), what);
        assert!(
            decoded_frames(&out).unwrap_or(0) > 0,
            "{what} decoded nothing"
        );
    }
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn changes_survive_kill_9_and_the_main_file_is_untouched() {
    let engine = Engine::start(
        "# the operator's comment\npaths:\n  all_others:\n  from/file: {maxReaders: 3}\n",
    );
    let main_before = std::fs::read_to_string(&engine.config_path).unwrap();
    assert_ok(&engine.api(
        "POST",
        "/v3/config/paths/add/live/kept",
        Some(r#"{"maxReaders":4}"#),
    ));
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/paths/patch/from/file",
        Some(r#"{"overridePublisher":true}"#),
    ));
    assert_ok(&engine.api("POST", "/v3/config/paths/add/live/dropped", Some("{}")));
    assert_ok(&engine.api("DELETE", "/v3/config/paths/delete/live/dropped", None));
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"maxReaders":7}"#),
    ));
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"playWaitTimeout":"3s"}"#),
    ));
    assert!(engine.state_file().exists());
    // Killed right after the last 200: nothing gets to flush or clean up.
    let stopped = engine.kill();
    let engine = Engine::restart(stopped);
    let get = |p: &str| engine.api("GET", p, None).json();
    assert_eq!(get("/v3/config/paths/get/live/kept")["maxReaders"], 4);
    let from_file = get("/v3/config/paths/get/from/file");
    assert_eq!(
        (
            from_file["maxReaders"].clone(),
            from_file["overridePublisher"].clone()
        ),
        (json!(3), json!(true))
    );
    assert_eq!(
        engine
            .api("GET", "/v3/config/paths/get/live/dropped", None)
            .status,
        404
    );
    assert_eq!(get("/v3/config/pathdefaults/get")["maxReaders"], 7);
    assert_eq!(get("/v3/config/global/get")["playWaitTimeout"], "3s");
    assert_eq!(
        std::fs::read_to_string(&engine.config_path).unwrap(),
        main_before
    );
    // Deleting an entry that comes from the main file survives a restart too.
    assert_ok(&engine.api("DELETE", "/v3/config/paths/delete/from/file", None));
    let engine = Engine::restart(engine.kill());
    assert_eq!(
        engine
            .api("GET", "/v3/config/paths/get/from/file", None)
            .status,
        404
    );
    assert_eq!(
        std::fs::read_to_string(&engine.config_path).unwrap(),
        main_before
    );
}

#[test]
fn api_auth_with_users_cidr_and_trusted_proxies() {
    let engine = Engine::start(
        "apiTrustedProxies: [127.0.0.1]\n\
         authInternalUsers:\n\
         - user: any\n  permissions: [{action: publish}, {action: read}]\n\
         - user: admin\n  pass: s3cret\n  permissions: [{action: api}]\n\
         - user: any\n  ips: [10.0.0.0/8]\n  permissions: [{action: api}]\n\
         - user: scraper\n  pass: m\n  ips: [127.0.0.1]\n  permissions: [{action: metrics}]\n",
    );
    let port = engine.api_port;
    // MediaMTX: TestAuthError (on /v3/info; on /v3/config/global/get in mediamtx_api_cases.rs)
    let r = http::request(port, "GET", "/v3/info", None, &[]);
    assert_error(&r, 401, "authentication error");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"mediamtx\"")
    );
    // admin:wrong
    let r = http::request(
        port,
        "GET",
        "/v3/info",
        None,
        &[("Authorization", "Basic YWRtaW46d3Jvbmc=")],
    );
    assert_error(&r, 401, "authentication error");
    assert_eq!(r.header("www-authenticate"), None, "credentials were sent");
    // admin:s3cret
    let admin = [("Authorization", "Basic YWRtaW46czNjcmV0")];
    assert_eq!(
        http::request(port, "GET", "/v3/info", None, &admin).status,
        200
    );
    // From 10.x through the trusted proxy (127.0.0.1): no credentials needed.
    let via_proxy = [("X-Forwarded-For", "10.1.2.3")];
    assert_eq!(
        http::request(port, "GET", "/v3/info", None, &via_proxy).status,
        200
    );
    assert_eq!(
        http::request(
            port,
            "GET",
            "/v3/info",
            None,
            &[("X-Forwarded-For", "192.0.2.1")]
        )
        .status,
        401
    );
    // A client behind the proxy cannot claim 10.x by prepending it.
    assert_eq!(
        http::request(
            port,
            "GET",
            "/v3/info",
            None,
            &[("X-Forwarded-For", "10.9.9.9, 192.0.2.1")]
        )
        .status,
        401
    );
    // Untrust the proxy on the fly: X-Forwarded-For is ignored from then on.
    let r = http::request(
        port,
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"apiTrustedProxies":[]}"#),
        &admin,
    );
    assert_ok(&r);
    assert_eq!(
        http::request(port, "GET", "/v3/info", None, &via_proxy).status,
        401
    );
    // Metrics: its own action.
    let m = engine.metrics_port;
    assert_eq!(
        http::request(m, "GET", "/metrics", None, &admin).status,
        401
    );
    // scraper:m
    let scraper = [("Authorization", "Basic c2NyYXBlcjpt")];
    assert_eq!(
        http::request(m, "GET", "/metrics", None, &scraper).status,
        200
    );
    assert_eq!(
        http::request(port, "GET", "/v3/info", None, &scraper).status,
        401
    );
}

/// Parses a Prometheus text scrape; panics on any line that is not a comment or `name value`.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            let metric = name.split('{').next().unwrap();
            assert!(
                !metric.is_empty()
                    && metric
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad name in {l:?}"
            );
            if let Some(labels) = name.strip_prefix(metric) {
                assert!(
                    labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                    "{l:?}"
                );
            }
            (name.to_owned(), v)
        })
        .collect()
}

#[test]
fn publish_read_kick_and_metrics() {
    let engine = Engine::start("playWaitTimeout: 20s\n");
    let url = engine.rtmp_url("live/kickme");
    let publisher = ff::publish(&url, 20);
    assert!(
        eventually(Duration::from_secs(15), || {
            let list = engine.api("GET", "/v3/paths/list", None).json();
            list["items"][0]["ready"] == true
                && !list["items"][0]["tracks"].as_array().unwrap().is_empty()
        }),
        "path never became ready: {}",
        engine.api("GET", "/v3/paths/list", None).text()
    );
    let reader = ff::spawn_decoder(&url);
    let reader_id = {
        let mut id = String::new();
        assert!(eventually(Duration::from_secs(15), || {
            let list = engine.api("GET", "/v3/rtmpconns/list", None).json();
            let found = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["state"] == "read")
                .cloned();
            if let Some(c) = found {
                id = c["id"].as_str().unwrap().to_owned();
                c["bytesSent"].as_u64().unwrap() > 0
            } else {
                false
            }
        }));
        id
    };
    let path = engine.api("GET", "/v3/paths/get/live/kickme", None).json();
    assert_eq!(path["name"], "live/kickme");
    assert_eq!(path["confName"], "all_others");
    assert_eq!(path["ready"], true);
    assert_eq!(path["source"]["type"], "rtmpConn");
    assert_eq!(path["tracks"], json!(["H264", "MPEG-4 Audio"]));
    assert_eq!(
        path["readers"],
        json!([{"type": "rtmpConn", "id": reader_id}])
    );
    assert!(path["inboundBytes"].as_u64().unwrap() > 0);
    assert!(path["outboundBytes"].as_u64().unwrap() > 0);
    let conn = engine
        .api("GET", &format!("/v3/rtmpconns/get/{reader_id}"), None)
        .json();
    assert_eq!(
        (conn["state"].clone(), conn["path"].clone()),
        (json!("read"), json!("live/kickme"))
    );
    assert!(conn["remoteAddr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let publisher_id = path["source"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        engine
            .api("GET", &format!("/v3/rtmpconns/get/{publisher_id}"), None)
            .json()["state"],
        "publish"
    );

    // Metrics: every line parses; MediaMTX's names and per-core figures are there.
    let scrape = http::request(engine.metrics_port, "GET", "/metrics", None, &[]);
    assert_eq!(scrape.status, 200);
    let samples = parse_metrics(&scrape.text());
    let value = |name: &str| samples.iter().find(|(n, _)| n == name).map(|s| s.1);
    assert_eq!(
        value("paths{name=\"live/kickme\",state=\"ready\"}"),
        Some(1.0)
    );
    assert!(value("paths_inbound_bytes{name=\"live/kickme\",state=\"ready\"}").unwrap() > 0.0);
    assert!(value("paths_outbound_bytes{name=\"live/kickme\",state=\"ready\"}").unwrap() > 0.0);
    assert_eq!(
        value(&format!("rtmp_conns{{id=\"{reader_id}\",state=\"read\"}}")),
        Some(1.0)
    );
    assert!(
        value(&format!(
            "rtmp_conns_outbound_bytes{{id=\"{reader_id}\",state=\"read\"}}"
        ))
        .unwrap()
            > 0.0
    );
    assert!(value(&format!(
        "rtmp_conns_outbound_frames_discarded{{id=\"{reader_id}\",state=\"read\"}}"
    ))
    .is_some());
    assert_eq!(value("hls_muxers"), Some(0.0));
    for core in ["0", "1"] {
        assert!(value(&format!(
            "corestream_core_connections_open{{core=\"{core}\"}}"
        ))
        .is_some());
    }
    assert!(value("corestream_mesh_round_trip_seconds_count").unwrap() > 0.0);

    // Kick the reader: it is closed and gone.
    assert_ok(&engine.api("POST", &format!("/v3/rtmpconns/kick/{reader_id}"), None));
    let out = wait_with_timeout(reader, Duration::from_secs(20), "kicked reader");
    assert!(decoded_frames(&out).unwrap_or(0) > 0);
    assert!(eventually(Duration::from_secs(5), || {
        engine
            .api("GET", &format!("/v3/rtmpconns/get/{reader_id}"), None)
            .status
            == 404
    }));
    assert_eq!(
        engine.api("GET", "/v3/paths/get/live/kickme", None).json()["readers"],
        json!([])
    );
    assert_error(
        &engine.api("POST", &format!("/v3/rtmpconns/kick/{reader_id}"), None),
        404,
        "connection not found",
    );
    // Kick the publisher: the path goes away.
    assert_ok(&engine.api("POST", &format!("/v3/rtmpconns/kick/{publisher_id}"), None));
    let _ = wait_with_timeout(publisher, Duration::from_secs(20), "kicked publisher");
    assert!(eventually(Duration::from_secs(5), || {
        engine.api("GET", "/v3/paths/list", None).json()["itemCount"] == 0
    }));
}

#[test]
fn viewer_keeps_every_frame_while_other_paths_change_and_api_load() {
    const SECONDS: u32 = 8;
    let engine =
        Engine::start("playWaitTimeout: 20s\npaths:\n  all_others:\n  live/keep:\n  live/gone:\n");
    let keep = engine.rtmp_url("live/keep");
    // The viewer waits for the stream, so it must get every frame from the first.
    let viewer = ff::spawn_decoder(&keep);
    engine.wait_for_log("play requested", Duration::from_secs(10));
    let publisher = ff::publish(&keep, SECONDS);
    let doomed = ff::publish(&engine.rtmp_url("live/gone"), 30);
    engine.wait_for_log_count("publish started", 2, Duration::from_secs(10));
    engine.wait_for_log("player started", Duration::from_secs(10));

    // Churn the configuration of other paths while the viewer plays.
    for i in 0..10 {
        assert_ok(&engine.api(
            "POST",
            &format!("/v3/config/paths/add/other/p{i}"),
            Some("{}"),
        ));
        assert_ok(&engine.api(
            "PATCH",
            &format!("/v3/config/paths/patch/other/p{i}"),
            Some(r#"{"maxReaders":3}"#),
        ));
        assert_ok(&engine.api(
            "DELETE",
            &format!("/v3/config/paths/delete/other/p{i}"),
            None,
        ));
    }
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"maxReaders":50}"#),
    ));
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"readTimeout":"12s"}"#),
    ));
    assert_ok(&engine.api(
        "PATCH",
        "/v3/config/paths/patch/live/keep",
        Some(r#"{"overridePublisher":true}"#),
    ));

    // Deleting live/gone closes its publisher (its entry changed: it now falls under all_others).
    assert_ok(&engine.api("DELETE", "/v3/config/paths/delete/live/gone", None));
    let out = wait_with_timeout(
        doomed,
        Duration::from_secs(15),
        "publisher of the deleted path",
    );
    assert!(
        !out.status.success(),
        "the deleted path's publisher kept going"
    );
    engine.wait_for_log(
        "its path configuration was removed or changed",
        Duration::from_secs(5),
    );

    // Load: a bounded loop of runtime queries on one kept-alive connection while the stream flows.
    let mut client = Client::connect(engine.api_port);
    let requests = 1500;
    let started = Instant::now();
    for _ in 0..requests {
        let r = client.request("GET", "/v3/paths/list", None, &[]);
        assert_eq!(r.status, 200);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "api load: {requests} GET /v3/paths/list in {elapsed:?} = {:.0} requests/s (debug build, stream flowing)",
        f64::from(requests) / elapsed.as_secs_f64()
    );

    // Under that load no core lost a frame or dropped one for a player.
    let scrape = http::request(engine.metrics_port, "GET", "/metrics", None, &[]);
    for (name, value) in parse_metrics(&scrape.text()) {
        if name.starts_with("corestream_core_frames_lost_remote_total")
            || name.starts_with("corestream_core_frames_discarded_total")
            || name.starts_with("corestream_core_players_too_slow_total")
        {
            assert_eq!(value, 0.0, "{name}");
        }
    }

    let out = wait_with_timeout(viewer, Duration::from_secs(40), "viewer");
    assert_eq!(
        decoded_frames(&out),
        Some(25 * u64::from(SECONDS)),
        "viewer lost frames: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    assert_eq!(engine.count_log("player too slow"), 0);
}
