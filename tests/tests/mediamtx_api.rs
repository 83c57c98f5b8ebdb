//! End-to-end: the control API answers as MediaMTX's v3 API does, checked the way MediaMTX's own
//! tests check it (`internal/core/api_test.go`, `internal/api/*_test.go` of bluenviron/mediamtx):
//! status codes, exact error bodies and the key sets of items, with ffmpeg publishing, curl
//! reading HTTP-FLV and our HTTP client reading HLS.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tests::answer::{assert_error_body, keys, set, RTMP_CONN_KEYS};
use tests::ff::{self, wait_with_timeout};
use tests::http::{self, get};
use tests::{eventually, Engine};

/// MediaMTX's `defs.APIPath` keys; Corestream adds its pull and push state beside them.
const PATH_KEYS: [&str; 18] = [
    "name",
    "confName",
    "source",
    "ready",
    "readyTime",
    "available",
    "availableTime",
    "online",
    "onlineTime",
    "tracks",
    "tracks2",
    "readers",
    "inboundBytes",
    "outboundBytes",
    "inboundFramesInError",
    "bytesReceived",
    "bytesSent",
    // Not in MediaMTX: listed in the README.
    "forwards",
];

#[test]
fn configured_paths_are_listed_from_the_start_and_ready_only_with_tracks() {
    let engine = Engine::start(
        "paths:\n  all_others:\n  ~^cams/:\n  mypath:\n  rtsp:\n    source: rtsp://127.0.0.1:1234/mypath\n    sourceOnDemand: yes\n  rtmp:\n    source: rtmp://127.0.0.1:1234/mypath\n    sourceOnDemand: yes\n",
    );
    // MediaMTX: TestAPIPathsList ("rtsp source", "rtmp source")
    // MediaMTX's TestAPIPathsList "rtsp source" / "rtmp source": listed before any reader, with
    // the source's type, not ready, no tracks. A publisher path nobody publishes has no source.
    let list = engine.api("GET", "/v3/paths/list", None).json();
    assert_eq!(
        (list["itemCount"].clone(), list["pageCount"].clone()),
        (json!(3), json!(1))
    );
    let items = list["items"].as_array().unwrap();
    let brief: Vec<Value> = items
        .iter()
        .map(|i| json!([i["name"], i["source"]["type"], i["ready"], i["tracks"]]))
        .collect();
    assert_eq!(
        brief,
        [
            json!(["mypath", null, false, []]),
            json!(["rtmp", "rtmpSource", false, []]),
            json!(["rtsp", "rtspSource", false, []]),
        ]
    );
    for item in items {
        let k = keys(item);
        assert!(k.is_superset(&set(&PATH_KEYS)), "{item}");
        assert_eq!(item["readyTime"], Value::Null);
        assert_eq!(item["tracks2"], json!([]));
        assert_eq!(item["readers"], json!([]));
    }
    assert_eq!(items[0]["source"], Value::Null);
    assert_eq!(items[1]["source"]["id"], "");
    let mypath = engine.api("GET", "/v3/paths/get/mypath", None);
    assert_eq!(mypath.status, 200);
    assert_eq!(mypath.json()["confName"], "mypath");
    // MediaMTX: TestAPIPathsGet ("not found")
    assert_error_body(
        &engine.api("GET", "/v3/paths/get/nonexisting", None),
        404,
        "path not found",
    );
    // A path added through the API is listed at once; deleted, it goes.
    let added = engine.api("POST", "/v3/config/paths/add/my/nested/path", Some("{}"));
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(
        engine
            .api("GET", "/v3/paths/get/my/nested/path", None)
            .json()["ready"],
        false
    );

    // Published: ready with its tracks, the same moment; tracks2 says what the records say.
    let publisher = ff::publish(&engine.rtmp_url("my/nested/path?key=val"), 12);
    let mut item = Value::Null;
    assert!(
        eventually(Duration::from_secs(15), || {
            item = engine.path_item("my/nested/path");
            item["ready"] == true
        }),
        "{item}"
    );
    assert!(
        !item["tracks"].as_array().unwrap().is_empty(),
        "ready without tracks: {item}"
    );
    // ffmpeg sends both sequence headers before media; wait until both are in.
    assert!(eventually(Duration::from_secs(5), || {
        item = engine.path_item("my/nested/path");
        item["tracks"] == json!(["H264", "MPEG-4 Audio"])
    }));
    assert_eq!(item["source"]["type"], "rtmpConn");
    assert_eq!(
        (item["available"].clone(), item["online"].clone()),
        (json!(true), json!(true))
    );
    assert!(item["readyTime"].is_string() && item["readyTime"] == item["availableTime"]);
    // x264's ultrafast preset writes a Constrained Baseline stream (profile_idc 66).
    let video = &item["tracks2"][0];
    assert_eq!(video["codec"], "H264");
    assert_eq!(
        keys(&video["codecProps"]),
        set(&["width", "height", "profile", "level"])
    );
    assert_eq!(
        (
            video["codecProps"]["width"].clone(),
            video["codecProps"]["height"].clone()
        ),
        (json!(320), json!(240))
    );
    assert_eq!(video["codecProps"]["profile"], "Baseline");
    assert_eq!(
        item["tracks2"][1],
        json!({"codec": "MPEG-4 Audio", "codecProps": {"sampleRate": 44100, "channelCount": 1}})
    );
    assert!(item["inboundBytes"].as_u64().unwrap() > 0);
    assert_eq!(item["inboundBytes"], item["bytesReceived"]);
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    // The publisher left: still listed (configured), not ready, no tracks.
    assert!(eventually(Duration::from_secs(10), || {
        item = engine.path_item("my/nested/path");
        item["ready"] == false && item["tracks"] == json!([]) && item["source"].is_null()
    }));
    assert_eq!(
        engine
            .api("DELETE", "/v3/config/paths/delete/my/nested/path", None)
            .status,
        200
    );
    assert_error_body(
        &engine.api("GET", "/v3/paths/get/my/nested/path", None),
        404,
        "path not found",
    );
}

/// curl reading an HTTP-FLV stream until killed.
fn curl_flv(url: &str) -> Child {
    Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "30", url])
        .stdin(Stdio::null())
        .spawn()
        .expect("curl is installed (tests/run.sh installs it)")
}

#[test]
fn rtmpconns_hold_rtmp_clients_and_hls_muxers_answer_by_name() {
    let engine = Engine::start("");
    // The default user `any` admits any credentials; MediaMTX shows the user that was sent.
    let publisher = ff::publish(&engine.rtmp_url("mypath?k=val&user=alice&pass=secret"), 15);
    assert!(eventually(Duration::from_secs(15), || {
        engine.path_item("mypath")["ready"] == true
    }));
    // An HTTP-FLV viewer and an HLS client: HTTP connections, not rtmpconns.
    let mut viewer = curl_flv(&engine.http_url("mypath.flv"));
    let playlist = get(engine.http_port, "/mypath/index.m3u8", &[]);
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    std::thread::sleep(Duration::from_millis(500));
    let conns = engine.api("GET", "/v3/rtmpconns/list", None).json();
    assert_eq!(conns["itemCount"], 1, "{conns}");
    // MediaMTX: TestAPIProtocolListGet ("rtmp") (these keys, no others)
    let c = &conns["items"][0];
    assert_eq!(keys(c), set(&RTMP_CONN_KEYS));
    assert_eq!(
        (
            c["state"].clone(),
            c["path"].clone(),
            c["query"].clone(),
            c["user"].clone()
        ),
        (
            json!("publish"),
            json!("mypath"),
            json!("k=val&user=alice&pass=<redacted>"),
            json!("alice")
        )
    );
    // ffmpeg's flashVer.
    assert!(
        c["userAgent"].as_str().unwrap().starts_with("FMLE/3.0"),
        "{c}"
    );
    let id = c["id"].as_str().unwrap();
    assert_eq!(
        engine
            .api("GET", &format!("/v3/rtmpconns/get/{id}"), None)
            .json()["id"],
        id
    );

    // MediaMTX: TestAPIProtocolListGet ("hls muxers"), TestHLSMuxersList, TestHLSMuxersGet
    // (these keys, no others; get by path name)
    let muxers = engine.api("GET", "/v3/hlsmuxers/list", None).json();
    assert_eq!(muxers["itemCount"], 1, "{muxers}");
    let m = &muxers["items"][0];
    assert_eq!(
        keys(m),
        set(&[
            "path",
            "created",
            "lastRequest",
            "outboundBytes",
            "outboundFramesDiscarded",
            "bytesSent",
        ])
    );
    assert_eq!(m["path"], "mypath");
    assert!(m["outboundBytes"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["outboundBytes"], m["bytesSent"]);
    let got = engine.api("GET", "/v3/hlsmuxers/get/mypath", None);
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["path"], "mypath");
    // MediaMTX: TestAPIProtocolGetNotFound ("hls muxers")
    assert_error_body(
        &engine.api("GET", "/v3/hlsmuxers/get/nonexisting", None),
        404,
        "muxer not found",
    );
    assert_error_body(
        &engine.api("GET", "/v3/hlsmuxers/get/", None),
        400,
        "invalid name",
    );

    let _ = viewer.kill();
    let _ = viewer.wait();
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

/// The media URIs of a playlist (lines and `URI="…"` attributes), as the playlist gives them.
fn media_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| {
            if !l.starts_with('#') {
                return (!l.is_empty()).then(|| l.to_owned());
            }
            let (_, rest) = l.split_once("URI=\"")?;
            rest.split_once('"').map(|(uri, _)| uri.to_owned())
        })
        .collect()
}

#[test]
fn hls_sessions_are_opened_by_the_first_playlist_request_and_listed_got_and_kicked() {
    let engine = Engine::start("paths:\n  cam:\n  one:\n    maxReaders: 1\n");
    let publisher = ff::publish(&engine.rtmp_url("cam"), 30);
    let one = ff::publish(&engine.rtmp_url("one"), 30);
    assert!(eventually(Duration::from_secs(15), || {
        engine.path_item("cam")["ready"] == true && engine.path_item("one")["ready"] == true
    }));
    let agent = [("User-Agent", "session-test/1")];

    // The first request opens a session and sends the viewer to it (MediaMTX's `session`
    // query parameter); nothing may cache that answer.
    let first = http::request(
        engine.http_port,
        "GET",
        "/cam/index.m3u8?token=t1",
        None,
        &agent,
    );
    assert_eq!(first.status, 302, "{}", first.text());
    assert_eq!(first.header("Cache-Control"), Some("no-store"));
    let location = first.header("Location").unwrap().to_owned();
    let secret = location
        .strip_prefix("/cam/index.m3u8?token=t1&session=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_owned();
    assert_eq!(secret.len(), 36, "{location}");

    // The playlist carries the session onto every media URI; its bodies count for the session.
    let playlist = get(engine.http_port, &location, &agent);
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let uris = media_uris(&playlist.text());
    assert!(!uris.is_empty(), "{}", playlist.text());
    for uri in &uris {
        assert!(
            uri.ends_with(&format!("?token=t1&session={secret}")),
            "{uri}"
        );
    }
    // `/cam/index.m3u8` is MediaMTX's name for our `/cam.m3u8`: its media sit one level up.
    let media_path = format!("/{}", uris[0].strip_prefix("../").unwrap_or(&uris[0]));
    let media = get(engine.http_port, &media_path, &agent);
    assert_eq!(media.status, 200, "{media_path}");
    let sent = (playlist.body.len() + media.body.len()) as u64;

    // MediaMTX: TestAPIProtocolListGet ("hls sessions"), TestHLSSessionsList, TestHLSSessionsGet
    // These keys, no others; the secret and
    // the token are shown nowhere.
    assert!(eventually(Duration::from_secs(5), || {
        engine.api("GET", "/v3/hlssessions/list", None).json()["items"][0]["outboundBytes"] == sent
    }));
    let list = engine.api("GET", "/v3/hlssessions/list", None);
    assert!(
        !list.text().contains(&secret) && !list.text().contains("t1"),
        "{}",
        list.text()
    );
    let list = list.json();
    assert_eq!(list["itemCount"], 1, "{list}");
    let item = &list["items"][0];
    assert_eq!(
        keys(item),
        set(&[
            "id",
            "created",
            "remoteAddr",
            "path",
            "query",
            "user",
            "userAgent",
            "isCDN",
            "outboundBytes",
        ])
    );
    assert_eq!(item["path"], "cam");
    assert_eq!(item["query"], "token=<redacted>");
    assert_eq!(item["userAgent"], "session-test/1");
    assert_eq!(item["isCDN"], false);
    assert!(
        item["remoteAddr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{item}"
    );
    let id = item["id"].as_str().unwrap().to_owned();
    assert_ne!(id, secret);
    let got = engine.api("GET", &format!("/v3/hlssessions/get/{id}"), None);
    assert_eq!((got.status, &got.json()), (200, item));
    // The session reads its path, as MediaMTX lists it.
    let readers = engine.path_item("cam")["readers"].clone();
    assert_eq!(readers, json!([{"type": "hlsSession", "id": id}]));
    let metrics = get(engine.metrics_port, "/metrics", &[]).text();
    assert!(
        metrics.contains(&format!("hls_sessions{{id=\"{id}\",path=\"cam\",")),
        "{metrics}"
    );

    // Errors in MediaMTX's words.
    // MediaMTX: TestAPIProtocolGetNotFound ("hls sessions")
    assert_error_body(
        &engine.api(
            "GET",
            "/v3/hlssessions/get/123e4567-e89b-42d3-a456-426614174000",
            None,
        ),
        404,
        "session not found",
    );
    assert_error_body(
        &engine.api("GET", "/v3/hlssessions/get/abc", None),
        400,
        "invalid UUID length: 3",
    );
    assert_error_body(
        &engine.api("GET", "/v3/hlssessions/list?itemsPerPage=0", None),
        400,
        "invalid items per page",
    );
    let wrong = engine.api("GET", &format!("/v3/hlssessions/kick/{id}"), None);
    assert_eq!(
        (wrong.status, wrong.text()),
        (404, "404 page not found".to_owned())
    );

    // `maxReaders` counts HLS viewers: the one reader of `one` is an HLS session, so another
    // session and an HTTP-FLV viewer are refused.
    let reader = get(engine.http_port, "/one/index.m3u8", &agent);
    assert_eq!(reader.status, 200, "{}", reader.text());
    let second = http::request(engine.http_port, "GET", "/one/index.m3u8", None, &agent);
    assert_eq!(second.status, 503, "{}", second.text());
    let flv = http::request(engine.http_port, "GET", "/one.flv", None, &agent);
    assert_eq!(flv.status, 503);

    // Kicked: its playlist and media are refused, and it is gone from the lists.
    // MediaMTX: TestHLSSessionsKick, TestAPIProtocolKick ("hls"), TestAPIProtocolKickNotFound ("hls")
    let kicked = engine.api("POST", &format!("/v3/hlssessions/kick/{id}"), None);
    assert_eq!(
        (kicked.status, kicked.json()),
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        http::request(engine.http_port, "GET", &location, None, &agent).status,
        401
    );
    assert_eq!(
        http::request(engine.http_port, "GET", &media_path, None, &agent).status,
        401
    );
    assert_error_body(
        &engine.api("POST", &format!("/v3/hlssessions/kick/{id}"), None),
        404,
        "session not found",
    );
    let sessions = engine.api("GET", "/v3/hlssessions/list", None).json();
    assert_eq!(sessions["itemCount"], 1, "{sessions}");
    assert_eq!(sessions["items"][0]["path"], "one");
    assert_eq!(engine.path_item("cam")["readers"], json!([]));

    // A secret no session holds (as after 30 s without requests) opens a session under it again,
    // without a redirect: a player that paused keeps its URL.
    let closed = "123e4567-e89b-42d3-a456-426614174000";
    let again = http::request(
        engine.http_port,
        "GET",
        &format!("/cam/index.m3u8?session={closed}"),
        None,
        &agent,
    );
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(again.text().contains(&format!("session={closed}")));
    assert!(engine.path_item("cam")["readers"][0]["type"] == "hlsSession");

    // A player that follows the redirect, as any does, plays through a new session.
    let probe = ff::probe_live_hls(&engine.http_url("cam/index.m3u8"));
    assert_eq!(probe.video_codec, "h264");
    let sessions = engine
        .api("GET", "/v3/hlssessions/list?itemsPerPage=1&page=1", None)
        .json();
    let count = sessions["itemCount"].as_u64().unwrap();
    assert!(count >= 3, "{sessions}");
    assert_eq!(sessions["pageCount"], count);
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1);

    wait_with_timeout(publisher, Duration::from_secs(40), "publisher");
    wait_with_timeout(one, Duration::from_secs(40), "publisher");
}

#[test]
fn pagination_and_config_write_errors_in_mediamtx_words() {
    let engine = Engine::start("");
    // Every list, runtime lists included.
    for list in [
        "/v3/config/paths/list",
        "/v3/paths/list",
        "/v3/rtmpconns/list",
        "/v3/hlsmuxers/list",
    ] {
        assert_error_body(
            &engine.api("GET", &format!("{list}?itemsPerPage=0"), None),
            400,
            "invalid items per page",
        );
        assert_error_body(
            &engine.api("GET", &format!("{list}?page=x"), None),
            400,
            "strconv.ParseUint: parsing \"x\": invalid syntax",
        );
        assert_error_body(
            &engine.api("GET", &format!("{list}?itemsPerPage=-1"), None),
            400,
            "strconv.ParseUint: parsing \"-1\": invalid syntax",
        );
        let empty = engine.api("GET", &format!("{list}?itemsPerPage=1&page=5"), None);
        assert_eq!(empty.status, 200, "{list}: {}", empty.text());
        assert_eq!(empty.json()["items"], json!([]));
    }

    // Names.
    for endpoint in [
        ("POST", "/v3/config/paths/add/"),
        ("PATCH", "/v3/config/paths/patch/"),
        ("POST", "/v3/config/paths/replace/"),
        ("DELETE", "/v3/config/paths/delete/"),
        ("GET", "/v3/config/paths/get/"),
        ("GET", "/v3/paths/get/"),
    ] {
        let body = (endpoint.0 != "GET" && endpoint.0 != "DELETE").then_some("{}");
        assert_error_body(
            &engine.api(endpoint.0, endpoint.1, body),
            400,
            "invalid name",
        );
    }
    for name in ["a/../b", "a/./b", ".."] {
        assert_error_body(
            &engine.api("POST", &format!("/v3/config/paths/add/{name}"), Some("{}")),
            400,
            &format!("invalid path name '{name}': can't contain dot path segments"),
        );
    }
    for name in ["a:b", "a~b"] {
        assert_error_body(
            &engine.api("POST", &format!("/v3/config/paths/add/{name}"), Some("{}")),
            400,
            &format!("invalid path name '{name}': can contain only alphanumeric characters, underscore, dot, minus, slash"),
        );
    }
    assert_error_body(
        &engine.api("POST", "/v3/config/paths/add/~^(cams", Some("{}")),
        400,
        "invalid regular expression: ^(cams",
    );
    assert_error_body(
        &engine.api("POST", "/v3/config/paths/replace/x/", Some("{}")),
        400,
        "invalid path name 'x/': can't end with a slash",
    );
    // Unknown fields, in paths, path defaults and the global configuration.
    // MediaMTX: TestConfigPathsAddUnknownField, TestConfigGlobalPatchUnknownField
    assert_error_body(
        &engine.api("POST", "/v3/config/paths/add/x", Some(r#"{"sourceX":"a"}"#)),
        400,
        "json: unknown field \"sourceX\"",
    );
    assert_error_body(
        &engine.api(
            "PATCH",
            "/v3/config/pathdefaults/patch",
            Some(r#"{"nope":1}"#),
        ),
        400,
        "json: unknown field \"nope\"",
    );
    assert_error_body(
        &engine.api("PATCH", "/v3/config/global/patch", Some(r#"{"nope":1}"#)),
        400,
        "json: unknown field \"nope\"",
    );
    // A second add, and writes on entries that do not exist.
    assert_eq!(
        engine
            .api("POST", "/v3/config/paths/add/cam", Some("{}"))
            .status,
        200
    );
    assert_error_body(
        &engine.api("POST", "/v3/config/paths/add/cam", Some("{}")),
        400,
        "path already exists",
    );
    assert_error_body(
        &engine.api("PATCH", "/v3/config/paths/patch/nope", Some("{}")),
        404,
        "path not found",
    );
    assert_error_body(
        &engine.api("DELETE", "/v3/config/paths/delete/nope", None),
        404,
        "path not found",
    );
    assert_error_body(
        &engine.api("GET", "/v3/config/paths/get/nope", None),
        404,
        "path configuration not found",
    );
    // Connection ids as MediaMTX's UUID parser judges them.
    // MediaMTX: TestAPIProtocolGetNotFound ("rtmp")
    assert_error_body(
        &engine.api("GET", "/v3/rtmpconns/get/abc", None),
        400,
        "invalid UUID length: 3",
    );
    assert_error_body(
        &engine.api(
            "POST",
            "/v3/rtmpconns/kick/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
            None,
        ),
        400,
        "invalid UUID format",
    );
    assert_error_body(
        &engine.api(
            "GET",
            "/v3/rtmpconns/get/123e4567-e89b-42d3-a456-426614174000",
            None,
        ),
        404,
        "connection not found",
    );
    // The routes of servers Corestream does not run are absent, as in a MediaMTX that runs none
    // of them (its router registers them with their server).
    for path in [
        "/v3/rtmpsconns/list",
        "/v3/rtspconns/list",
        "/v3/rtspsessions/list",
        "/v3/webrtcsessions/list",
        "/v3/srtconns/list",
    ] {
        let r = engine.api("GET", path, None);
        assert_eq!(
            (r.status, r.text()),
            (404, "404 page not found".to_owned()),
            "{path}"
        );
    }
    // A known route with another method: MediaMTX's router has no 405.
    let wrong = engine.api("PATCH", "/v3/config/paths/add/x", Some("{}"));
    assert_eq!(
        (wrong.status, wrong.text()),
        (404, "404 page not found".to_owned())
    );
}

#[test]
fn deprecated_keys_sent_to_the_api_convert_as_mediamtx_converts_them() {
    // No `all_others`: MediaMTX's conversion would give it a read user `any` on `~^.*$`, which
    // admits everyone to every path, `secure` included.
    let engine = Engine::start("paths:\n  open:\n");
    // Global aliases: kept under their successors, and persisted so.
    let r = engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"readBufferCount":1024,"protocols":["tcp"],"apiAllowOrigin":"http://dash.example"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let global = engine.api("GET", "/v3/config/global/get", None).json();
    assert_eq!(global["writeQueueSize"], 1024, "{global}");
    assert_eq!(global["rtspTransports"], json!(["tcp"]));
    assert_eq!(global["apiAllowOrigins"], json!(["http://dash.example"]));
    // Path aliases: `disablePublisherOverride` negated into `overridePublisher`; the legacy
    // per-path credentials made `authInternalUsers` (MediaMTX's conversion).
    let r = engine.api(
        "POST",
        "/v3/config/paths/add/secure",
        Some(r#"{"disablePublisherOverride":false,"readUser":"viewer","readPass":"S3cretRead"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let secure = engine
        .api("GET", "/v3/config/paths/get/secure", None)
        .json();
    assert_eq!(secure["overridePublisher"], true, "{secure}");
    let users =
        engine.api("GET", "/v3/config/global/get", None).json()["authInternalUsers"].clone();
    let viewer = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "viewer")
        .unwrap_or_else(|| panic!("no converted read user in {users}"));
    assert_eq!(viewer["pass"], "<redacted>");
    assert_eq!(
        viewer["permissions"],
        json!([{"action": "read", "path": "secure"}])
    );

    // The converted users decide: reading `secure` needs the read credentials.
    let publisher = ff::publish(&engine.rtmp_url("secure"), 12);
    engine.wait_for_log("publish started", Duration::from_secs(15));
    let refused = ff::spawn_probe(&engine.rtmp_url("secure"));
    let out = wait_with_timeout(
        refused,
        Duration::from_secs(20),
        "ffprobe without credentials",
    );
    assert!(
        !out.status.success(),
        "read without credentials was admitted"
    );
    let admitted = ff::spawn_probe_with(
        &engine.rtmp_url("secure?user=viewer&pass=S3cretRead"),
        &["-read_intervals", "%+2"],
    );
    let out = wait_with_timeout(
        admitted,
        Duration::from_secs(20),
        "ffprobe with credentials",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");

    // What the old names set is persisted under the successors, which the next start reads
    // (the state file is laid over the main file; `changes_survive_kill_9…` in api.rs restarts).
    let state = std::fs::read_to_string(engine.state_file()).expect("the state file");
    assert!(state.contains("writeQueueSize: 1024"), "{state}");
    assert!(state.contains("rtspTransports:"), "{state}");
    // The old name is kept beside its successor, as MediaMTX keeps it (TestConfigGlobalPatch).
    assert!(state.contains("readBufferCount: 1024"), "{state}");
    assert!(state.contains("readUser: viewer"), "{state}");
}

/// Opens and closes a TCP connection to `port`; true if it was accepted.
fn connects(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn log_level_and_the_api_and_metrics_switches_change_while_running() {
    let engine = Engine::start("");
    // logLevel applies at once, on every core: the data cores' debug lines stop and come back.
    let accepted = |engine: &Engine| engine.count_log("connection accepted");
    assert!(connects(engine.rtmp_port));
    assert!(eventually(Duration::from_secs(5), || accepted(&engine) == 1));
    let r = engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"logLevel":"warn"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        engine.api("GET", "/v3/config/global/get", None).json()["logLevel"],
        "warn"
    );
    // Both data cores (SO_REUSEPORT spreads the connections) stay quiet.
    for _ in 0..8 {
        assert!(connects(engine.rtmp_port));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(accepted(&engine), 1, "debug lines after logLevel: warn");
    let r = engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"logLevel":"debug"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(connects(engine.rtmp_port));
    assert!(eventually(Duration::from_secs(5), || accepted(&engine) == 2));

    // metrics: false closes its listener; true opens it again.
    let r = engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"metrics":false}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(eventually(Duration::from_secs(5), || !connects(
        engine.metrics_port
    )));
    let r = engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"metrics":true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(engine.metrics_port, "/metrics", &[]).status, 200);

    // What cannot change while running is refused, and nothing of the request applies.
    let r = engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"rtmpAddress":"127.0.0.1:1","readTimeout":"7s"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        engine.api("GET", "/v3/config/global/get", None).json()["readTimeout"],
        "10s"
    );

    // MediaMTX: TestAPIConfigGlobalPatchDisableAPI (answered, then the API is gone)
    let r = engine.api("PATCH", "/v3/config/global/patch", Some(r#"{"api":false}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(eventually(Duration::from_secs(5), || !connects(
        engine.api_port
    )));
    engine.wait_for_log("api listener closed", Duration::from_secs(5));
    // The data plane goes on.
    assert!(connects(engine.rtmp_port));
}

#[test]
fn forward_entries_and_kept_keys_are_shown_as_mediamtx_shows_them() {
    let engine = Engine::start("");
    let defaults = engine
        .api("GET", "/v3/config/pathdefaults/get", None)
        .json();
    assert_eq!(defaults["forward"], json!([]), "{defaults}");
    let r = engine.api(
        "POST",
        "/v3/config/paths/add/fw",
        Some(
            r#"{"forward":[{"dest":"rtmp://127.0.0.1:1/live","destFingerprint":"","whipBearerToken":""}],"runOnDemand":"ffmpeg -i x"}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let fw = engine.api("GET", "/v3/config/paths/get/fw", None).json();
    assert_eq!(
        fw["forward"],
        json!([{"dest": "rtmp://127.0.0.1:1/live", "destFingerprint": "", "whipBearerToken": ""}])
    );
    // A key of a feature Corestream does not have: kept, shown back, logged once.
    assert_eq!(fw["runOnDemand"], "ffmpeg -i x");
    let hooks = "hooks (runOn* commands): not served by corestream";
    let line = engine.wait_for_log(hooks, Duration::from_secs(5));
    assert!(line.contains("paths.fw.runOnDemand"), "{line}");
    let r = engine.api(
        "PATCH",
        "/v3/config/paths/patch/fw",
        Some(r#"{"maxReaders":3}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(engine.count_log(hooks), 1);
    // What GET gave can be sent back whole (MediaMTX's round trip).
    let whole = engine.api("GET", "/v3/config/paths/get/fw", None).text();
    let r = engine.api("POST", "/v3/config/paths/replace/fw", Some(&whole));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = engine.api("POST", "/v3/config/paths/add/plain", Some("{}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        engine.api("GET", "/v3/config/paths/get/plain", None).json()["forward"],
        json!([])
    );
}
