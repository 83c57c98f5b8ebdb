//! `authMethod: http`: every publish and read is asked of an external auth service (here a small
//! one this test runs, as an operator's backend would be), with MediaMTX's JSON body.

use std::time::Duration;

use tests::ff::{self, parse_probe, wait_with_timeout};
use tests::http::{auth_service, get};
use tests::Engine;

#[test]
fn publish_and_read_are_asked_of_the_auth_service() {
    let (port, seen) = auth_service();
    let engine = Engine::start(&format!(
        "authMethod: http\nauthHTTPAddress: http://127.0.0.1:{port}/auth\nplayWaitTimeout: 10s\n"
    ));
    let url = engine.rtmp_url("live/cam");

    let refused = ff::publish(&format!("{url}?user=bad&pass=x"), 2);
    assert!(
        !wait_with_timeout(refused, Duration::from_secs(15), "refused publisher")
            .status
            .success()
    );
    engine.wait_for_log("the auth service answered 401", Duration::from_secs(5));

    let publisher = ff::publish(&format!("{url}?user=good&pass=secret"), 4);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let probe = ff::spawn_probe(&format!("{url}?user=good&pass=p2"));
    let p = parse_probe(&wait_with_timeout(probe, Duration::from_secs(30), "reader")).unwrap();
    assert!(p.video_frames > 0);
    // HTTP-FLV with Basic credentials: refused for a user the service does not know.
    let flv = get(
        engine.http_port,
        "/live/cam.flv",
        &[("Authorization", "Basic YmFkOng=")],
    );
    assert_eq!(flv.status, 403);
    assert!(
        wait_with_timeout(publisher, Duration::from_secs(20), "publisher")
            .status
            .success()
    );

    let bodies = seen.lock().unwrap().clone();
    let publish = bodies
        .iter()
        .find(|b| b["action"] == "publish" && b["user"] == "good")
        .expect("the accepted publish was asked");
    assert_eq!(publish["password"], "secret");
    assert_eq!(publish["path"], "live/cam");
    assert_eq!(publish["protocol"], "rtmp");
    assert_eq!(publish["ip"], "127.0.0.1");
    assert_eq!(publish["query"], "user=good&pass=secret");
    assert!(
        publish["id"].as_str().is_some_and(|id| id.len() == 36),
        "{publish}"
    );
    assert!(bodies
        .iter()
        .any(|b| b["action"] == "read" && b["user"] == "good"));
    assert!(bodies
        .iter()
        .any(|b| b["action"] == "read" && b["user"] == "bad"));

    // The API is excluded by default: judged by the internal users (localhost), not asked.
    let asked = bodies.len();
    assert_eq!(engine.api("GET", "/v3/info", None).status, 200);
    assert_eq!(seen.lock().unwrap().len(), asked);
}

#[test]
fn an_unreachable_auth_service_refuses() {
    let closed = tests::free_port();
    let engine = Engine::start(&format!(
        "authMethod: http\nauthHTTPAddress: http://127.0.0.1:{closed}/auth\n"
    ));
    let out = wait_with_timeout(
        ff::publish(&format!("{}?user=good", engine.rtmp_url("live/x")), 2),
        Duration::from_secs(15),
        "publisher",
    );
    assert!(!out.status.success());
    engine.wait_for_log("cannot reach the auth service", Duration::from_secs(5));
}

#[test]
fn http_method_without_an_address_is_a_config_error() {
    let dir = tests::TempDir::new("authhttp");
    let config = dir.path.join("c.yaml");
    std::fs::write(&config, "authMethod: http\n").unwrap();
    let out = std::process::Command::new(tests::engine_binary())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("authHTTPAddress"));
}
