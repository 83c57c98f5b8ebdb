//! Issue 14: each attack, tried against the real binary, is refused and sends no media.
//!
//! 1. type C signature splicing and far-future timestamps (RTMP, HTTP-FLV, HLS);
//! 2. the control API driven by a web page (text/plain POST, DNS rebinding, anonymous cross-site);
//! 3. secrets shown (API answers, the log, the state file's mode);
//! 4. memory held by clients without credentials (bodies before credentials, connection caps);
//! 5. descriptor exhaustion (raised limit, EMFILE logged, counted and survived);
//! 6. a forward added while the stream is live starts at once.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tests::ff::{self, wait_with_timeout};
use tests::http::{self, raw_request};
use tests::{cli, eventually, free_port, sign, Engine, TempDir};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends a GET and reads the status and whatever body arrives within `wait` (a live FLV never
/// ends, so the body is not framed).
fn get_some(port: u16, target: &str, host: &str, wait: Duration) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, got)
}

fn has_flv(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"FLV\x01")
}

/// The target (path and query) of a full URL.
fn target_of(url: &str) -> String {
    let after = url.split_once("://").unwrap().1;
    after[after.find('/').unwrap()..].to_owned()
}

const PUBLISH_DOMAIN: &str = "type: publish\nname: 127.0.0.1\napps:\n  - name: live\n";

/// Type C on the play domain `localhost`, hex time (its default).
const PLAY_DOMAIN_C: &str = "\
type: play
name: localhost
publish_domain: 127.0.0.1
url_auth:
  type: C
  sign_param: txSecret
  time_param: txTime
  primary_key: c0ffee42
apps:
  - name: live
";

/// An expiry checked by the expression language, as the documented expiring tokens do.
const PLAY_DOMAIN_EXPIRY: &str = "\
type: play
name: play2.test
publish_domain: 127.0.0.1
apps:
  - name: live
    play_auth_check:
      enabled: true
      params:
        time: get_time()
      checks:
        - ${url_params[expire]} > ${params[time]}
";

#[test]
fn type_c_splicing_and_far_future_timestamps_are_refused() {
    let dir = TempDir::new("sec-c");
    std::fs::create_dir_all(dir.path.join("domains")).unwrap();
    std::fs::write(dir.path.join("domains/publish.yaml"), PUBLISH_DOMAIN).unwrap();
    std::fs::write(dir.path.join("domains/play.yaml"), PLAY_DOMAIN_C).unwrap();
    std::fs::write(dir.path.join("domains/play2.yaml"), PLAY_DOMAIN_EXPIRY).unwrap();
    let engine = Engine::start(&format!(
        "domainsDir: {}\n",
        dir.path.join("domains").display()
    ));
    let config = dir.path.join("cli.yaml");
    std::fs::write(&config, "domainsDir: domains\n").unwrap();
    let check = cli(&config, &["check-config"]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("type C"),
        "check-config warns about type C: {said}"
    );

    // The victim stream `stream` is live; the attacker holds a signed URL for `stream1`.
    let publisher = ff::publish(&engine.rtmp_url("live/stream"), 20);
    engine.wait_for_log("publish started", Duration::from_secs(15));
    let http = engine.http_port;
    let legit = sign(
        &config,
        &format!("http://localhost:{http}/live/stream1.flv"),
        &[],
    );
    let query = legit.split_once('?').unwrap().1;
    let sig = query
        .split('&')
        .find_map(|p| p.strip_prefix("txSecret="))
        .unwrap();
    let t = query
        .split('&')
        .find_map(|p| p.strip_prefix("txTime="))
        .unwrap();
    let spliced = format!("txSecret={sig}&txTime=1{t}");
    // The control: a correctly signed URL of the live stream plays.
    let good = sign(
        &config,
        &format!("http://localhost:{http}/live/stream.flv"),
        &[],
    );
    let (status, body) = get_some(http, &target_of(&good), "localhost", Duration::from_secs(3));
    assert_eq!(status, 200);
    assert!(has_flv(&body), "the signed URL plays");

    // HTTP-FLV and HLS: 403 and no media.
    for path in ["/live/stream.flv", "/live/stream.m3u8"] {
        let (status, body) = get_some(
            http,
            &format!("{path}?{spliced}"),
            "localhost",
            Duration::from_secs(1),
        );
        assert_eq!(status, 403, "{path} spliced");
        assert!(!has_flv(&body) && !String::from_utf8_lossy(&body).contains("#EXTM3U"));
    }
    // A URL signed a year ahead (never expiring) is refused too.
    let ahead = (now() + 365 * 86_400).to_string();
    let far = sign(
        &config,
        &format!("http://localhost:{http}/live/stream.flv"),
        &["--timestamp", &ahead],
    );
    let (status, body) = get_some(http, &target_of(&far), "localhost", Duration::from_secs(1));
    assert_eq!(status, 403, "far-future timestamp");
    assert!(!has_flv(&body));

    // The expression language: an expiry a year ahead never comes, so it is refused; one within
    // the longest window plays.
    let (status, body) = get_some(
        http,
        &format!("/live/stream.flv?expire={ahead}"),
        "play2.test",
        Duration::from_secs(1),
    );
    assert_eq!(status, 403, "never-expiring expression token");
    assert!(!has_flv(&body));
    let soon = now() + 300;
    let (status, body) = get_some(
        http,
        &format!("/live/stream.flv?expire={soon}"),
        "play2.test",
        Duration::from_secs(3),
    );
    assert_eq!(status, 200);
    assert!(has_flv(&body));

    // RTMP: the spliced play fails.
    let probe = ff::spawn_probe(&format!(
        "rtmp://localhost:{}/live/stream?{spliced}",
        engine.rtmp_port
    ));
    let out = wait_with_timeout(probe, Duration::from_secs(20), "spliced rtmp player");
    assert!(!out.status.success(), "the spliced RTMP play is refused");
    assert!(engine.count_log("bad timestamp") >= 3, "the log says why");
    let _ = wait_with_timeout(publisher, Duration::from_secs(40), "publisher");
}

/// A TCP listener standing in for the attacker's RTMP server: counts who connects.
fn attacker_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn connections(l: &TcpListener) -> usize {
    let mut n = 0;
    while l.accept().is_ok() {
        n += 1;
    }
    n
}

#[test]
fn a_web_page_cannot_drive_the_api() {
    let engine = Engine::start("");
    let (attacker, attacker_port) = attacker_server();
    let publisher = ff::publish(&engine.rtmp_url("live/cam"), 12);
    engine.wait_for_log("publish started", Duration::from_secs(15));
    let api = engine.api_port;
    let body = format!(r#"{{"forward":[{{"dest":"rtmp://127.0.0.1:{attacker_port}/steal"}}]}}"#);
    let send = |extra: &str, ct: &str| {
        raw_request(
            api,
            format!(
                "PATCH /v3/config/paths/patch/all_others HTTP/1.1\r\n{extra}Content-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    // A cross-site form or fetch without preflight: text/plain.
    let r = send(
        "Host: 127.0.0.1\r\nOrigin: http://evil.example\r\n",
        "text/plain",
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let r = send("Host: 127.0.0.1\r\n", "application/x-www-form-urlencoded");
    assert_eq!(r.status, 415);
    // DNS rebinding: the attacker's name resolving to 127.0.0.1.
    let r = send(
        &format!("Host: rebind.evil.example:{api}\r\n"),
        "application/json",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // Anonymous (user `any` by address) from another site: refused despite `*`.
    let r = send(
        &format!("Host: 127.0.0.1:{api}\r\nOrigin: http://evil.example\r\n"),
        "application/json",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let get = http::request(
        api,
        "GET",
        "/v3/config/global/get",
        None,
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(get.status, 403);
    // The same on the metrics port.
    let m = http::get(engine.metrics_port, "/metrics", &[("Host", "evil.example")]);
    assert_eq!(m.status, 403);
    let m = http::get(
        engine.metrics_port,
        "/metrics",
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(m.status, 403);
    // A preflight is answered (CORS as MediaMTX), and same-origin JSON still works.
    // MediaMTX: TestPreflightRequest (from another origin; the same without one in mediamtx_api_cases.rs)
    let pre = http::request(
        api,
        "OPTIONS",
        "/v3/config/paths/patch/all_others",
        None,
        &[
            ("Origin", "http://dash.example"),
            ("Access-Control-Request-Method", "PATCH"),
        ],
    );
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some("http://dash.example")
    );
    assert!(pre
        .header("Access-Control-Allow-Methods")
        .is_some_and(|m| m.contains("PATCH")));
    let conf = engine
        .api("GET", "/v3/config/paths/get/all_others", None)
        .json();
    assert!(
        conf["forward"].as_array().is_none_or(|f| f.is_empty()),
        "{conf}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(connections(&attacker), 0, "no media went to the attacker");
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

const SECRET_PASS: &str = "Adm1nS3cretPass";
const RTSP_PASS: &str = "RtspPassw0rd77";
const PRIMARY: &str = "PrimKey12345";
const BACKUP: &str = "BackKey67890";

#[test]
fn secrets_are_never_shown() {
    let dir = TempDir::new("sec-secrets");
    std::fs::create_dir_all(dir.path.join("domains")).unwrap();
    std::fs::write(
        dir.path.join("domains/publish.yaml"),
        format!(
            "type: publish\nname: 127.0.0.1\nurl_auth:\n  type: B\n  sign_param: volcSecret\n  time_param: volcTime\n  primary_key: {PRIMARY}\n  backup_key: {BACKUP}\napps:\n  - name: live\n"
        ),
    )
    .unwrap();
    let rtsp_port = free_port();
    let users = format!(
        "authInternalUsers:\n  - user: any\n    permissions: [{{action: publish}}, {{action: read}}, {{action: metrics}}]\n  - user: admin\n    pass: {SECRET_PASS}\n    permissions: [{{action: api}}]\n"
    );
    let engine = Engine::start(&format!(
        "domainsDir: {}\napiTrustedProxies: [127.0.0.1]\n{users}paths:\n  cams/door:\n    source: rtsp://viewer:{RTSP_PASS}@127.0.0.1:{rtsp_port}/door\n  all_others: {{}}\n",
        dir.path.join("domains").display()
    ));
    let config = dir.path.join("cli.yaml");
    std::fs::write(&config, "domainsDir: domains\n").unwrap();
    let signed = sign(&config, &engine.rtmp_url("live/s"), &[]);
    let signature = signed
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("volcSecret="))
        .unwrap()
        .to_owned();
    let publisher = ff::publish(&format!("{signed}&pass=QueryPass99"), 10);
    engine.wait_for_log("publish started", Duration::from_secs(15));
    engine.wait_for_log("source starting", Duration::from_secs(10));

    let auth = ("Authorization", "Basic YWRtaW46QWRtMW5TM2NyZXRQYXNz"); // admin:Adm1nS3cretPass
    let api = |method: &str, path: &str, body: Option<&str>| {
        http::request(engine.api_port, method, path, body, &[auth])
    };
    let mut answers = String::new();
    for path in [
        "/v3/config/global/get",
        "/v3/config/pathdefaults/get",
        "/v3/config/paths/list",
        "/v3/config/paths/get/cams/door",
        "/v3/paths/list",
        "/v3/paths/get/live/s",
        "/v3/rtmpconns/list",
        "/v3/hlsmuxers/list",
        "/v3/info",
    ] {
        let r = api("GET", path, None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        answers.push_str(&r.text());
    }
    answers.push_str(&http::get(engine.metrics_port, "/metrics", &[]).text());
    assert!(answers.contains("<redacted>"), "{answers}");
    assert!(
        answers.contains("volcSecret=<redacted>") && answers.contains("pass=<redacted>"),
        "the publisher's query is shown redacted: {answers}"
    );
    assert!(
        answers.contains(r#""apiTrustedProxies":["127.0.0.1/32"]"#),
        "trusted proxies are shown as networks"
    );
    // A GET, edit, PATCH round trip keeps the stored password: admin still logs in.
    let mut global = api("GET", "/v3/config/global/get", None).json();
    let users = global["authInternalUsers"].clone();
    assert_eq!(users[1]["pass"], "<redacted>");
    let patch = serde_json::json!({"authInternalUsers": users, "readTimeout": "9s"}).to_string();
    let r = api("PATCH", "/v3/config/global/patch", Some(&patch));
    assert_eq!(r.status, 200, "{}", r.text());
    global = api("GET", "/v3/config/global/get", None).json();
    assert_eq!(global["readTimeout"], "9s");
    let door = api("GET", "/v3/config/paths/get/cams/door", None).json();
    let r = api(
        "PATCH",
        "/v3/config/paths/patch/cams/door",
        Some(&serde_json::json!({"source": door["source"]}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let state = std::fs::read_to_string(engine.state_file()).unwrap();
    assert!(
        state.contains(SECRET_PASS),
        "the stored value is kept: {state}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(engine.state_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "state file mode {mode:o}");
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");

    let log = engine.log().join("\n");
    for secret in [
        SECRET_PASS,
        RTSP_PASS,
        PRIMARY,
        BACKUP,
        &signature,
        "QueryPass99",
    ] {
        assert!(
            !answers.contains(secret),
            "{secret} in an API answer: {answers}"
        );
        assert!(!log.contains(secret), "{secret} in the log");
    }
    let check = cli(&config, &["check-config"]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(!said.contains(PRIMARY) && !said.contains(BACKUP), "{said}");
}

#[test]
fn clients_without_credentials_cannot_hold_memory() {
    let engine = Engine::start_logging(
        "apiMaxConnections: 40\nauthInternalUsers:\n  - user: any\n    permissions: [{action: publish}, {action: read}, {action: metrics}]\n  - user: admin\n    pass: pw\n    permissions: [{action: api}]\n",
        "info",
    );
    let before = engine.rss_kib();
    // 1,000 connections without credentials announcing 200 KB bodies: each is refused on its
    // head (401) and closed; none has its body buffered.
    let mut refused = 0;
    for _ in 0..1000 {
        let mut s = TcpStream::connect(("127.0.0.1", engine.api_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = "POST /v3/config/paths/add/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{\"source\":";
        let _ = s.write_all(head.as_bytes());
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401") {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1000);
    let grown = engine.rss_kib().saturating_sub(before);
    assert!(grown < 20 * 1024, "RSS grew {grown} KiB");
    // Idle connections past apiMaxConnections are closed at once, and counted.
    let idle: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(("127.0.0.1", engine.api_port)).unwrap())
        .collect();
    assert!(eventually(Duration::from_secs(5), || engine
        .limit_hits("apiMaxConnections")
        >= 20));
    drop(idle);
    // A slow head is cut at readTimeout and counted.
    let mut slow = TcpStream::connect(("127.0.0.1", engine.metrics_port)).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    assert!(eventually(Duration::from_secs(15), || engine
        .limit_hits("readTimeout")
        >= 1));
    // The API still answers its administrator.
    let ok = http::request(
        engine.api_port,
        "GET",
        "/v3/info",
        None,
        &[("Authorization", "Basic YWRtaW46cHc=")],
    );
    assert_eq!(ok.status, 200);
}

#[test]
fn descriptor_exhaustion_is_logged_counted_and_survived() {
    let engine = Engine::start_logging("handshakeTimeout: 30s\n", "info");
    let line = engine.wait_for_log("descriptor limit", Duration::from_secs(5));
    let field = |name: &str| -> u64 {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    assert_eq!(
        field("soft"),
        field("hard"),
        "soft limit raised to the hard one"
    );
    // Lower the running engine's limit as a small systemd unit would set it.
    let limit = engine.fd_count() + 60;
    let st = Command::new("prlimit")
        .arg(format!("--pid={}", engine.pid()))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit");
    assert!(st.success());
    let idle: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", engine.rtmp_port)).ok())
        .collect();
    engine.wait_for_log("accept failed", Duration::from_secs(10));
    assert!(engine.limit_hits("descriptors") >= 1);
    // The oldest unfinished handshake went first: the first idle client was closed.
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    let closed = match first.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "the oldest handshake was shed");
    assert!(engine.count_log("shed_handshake=true") >= 1);
    let failures = engine.count_log("accept failed");
    std::thread::sleep(Duration::from_secs(1));
    // Paused between tries, not spinning: a handful of lines a second per listener, not thousands.
    assert!(
        engine.count_log("accept failed") - failures < 50,
        "accept failures keep spinning"
    );
    drop(idle);
    // Once the idle clients are gone, publishing works again.
    let publisher = ff::publish(&engine.rtmp_url("live/after"), 3);
    engine.wait_for_log("publish started", Duration::from_secs(15));
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn a_forward_added_while_live_starts_at_once() {
    let target = Engine::start("playWaitTimeout: 20s\n");
    let source = Engine::start("");
    let publisher = ff::publish(&source.rtmp_url("live/p"), 15);
    source.wait_for_log("publish started", Duration::from_secs(15));
    let body = format!(
        r#"{{"forward":[{{"dest":"rtmp://127.0.0.1:{}/pushed"}}]}}"#,
        target.rtmp_port
    );
    let r = source.api("PATCH", "/v3/config/paths/patch/all_others", Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut item = Value::Null;
    assert!(
        eventually(Duration::from_secs(8), || {
            item = source.path_item("live/p");
            item["forwards"][0]["state"] == "live"
                && item["forwards"][0]["bytesSent"].as_u64() > Some(0)
        }),
        "the forward did not start while the stream was live: {item}"
    );
    target.wait_for_log("publish started", Duration::from_secs(5));
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}
