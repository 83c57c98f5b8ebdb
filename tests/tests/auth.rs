//! End-to-end authentication: signed URLs (types A and B), the expression language and internal
//! users, checked by the real engine on RTMP, HTTP-FLV and HLS, with ffmpeg as the client; and the
//! operator tools (`sign`, `auth check`, `check-config`).

use std::path::Path;
use std::time::Duration;

use tests::ff::{self, parse_probe, wait_with_timeout};
use tests::http::get;
use tests::{cli, sign, Engine, TempDir};

/// The publish domain is `127.0.0.1` (type B signatures, primary and backup keys); the play domain
/// is `localhost` (type A, plus an expression check), serving the publish domain's streams.
const PUBLISH_DOMAIN: &str = "\
type: publish
name: 127.0.0.1
url_auth:
  type: B
  sign_param: volcSecret
  time_param: volcTime
  primary_key: 123abc
  backup_key: 456def
apps:
  - name: live
";

const PLAY_DOMAIN: &str = "\
type: play
name: localhost
publish_domain: 127.0.0.1
url_auth:
  type: A
  sign_param: auth_key
  primary_key: play789
apps:
  - name: live
    play_auth_check:
      enabled: true
      params:
        banned: string(mallory)
      checks:
        - \"${url_params[viewer]} != ${params[banned]}\"
";

fn write_domains(dir: &Path) {
    std::fs::create_dir_all(dir.join("domains")).unwrap();
    std::fs::write(dir.join("domains/publish.yaml"), PUBLISH_DOMAIN).unwrap();
    std::fs::write(dir.join("domains/play.yaml"), PLAY_DOMAIN).unwrap();
}

/// An engine with the two domains, and the path of a config file the CLI can use with them.
fn engine_with_domains(extra: &str) -> (Engine, TempDir, std::path::PathBuf) {
    let dir = TempDir::new("auth");
    write_domains(&dir.path);
    let domains = dir.path.join("domains");
    let engine = Engine::start(&format!(
        "domainsDir: {}\nplayWaitTimeout: 10s\n{extra}",
        domains.display()
    ));
    let config = dir.path.join("cli.yaml");
    std::fs::write(&config, format!("domainsDir: domains\n{extra}")).unwrap();
    (engine, dir, config)
}

#[test]
fn signed_publish_and_play_over_rtmp_flv_and_hls() {
    let (engine, _dir, config) =
        engine_with_domains("hlsVariant: mpegts\nhlsSegmentDuration: 1s\n");
    let (rtmp, http) = (engine.rtmp_port, engine.http_port);

    // Unsigned, tampered and expired publishes are refused.
    let unsigned = ff::publish(&format!("rtmp://127.0.0.1:{rtmp}/live/s"), 2);
    assert!(
        !wait_with_timeout(unsigned, Duration::from_secs(15), "unsigned publisher")
            .status
            .success()
    );
    let signed = sign(&config, &format!("rtmp://127.0.0.1:{rtmp}/live/s"), &[]);
    let tampered = signed.replace("/live/s?", "/live/t?");
    let out = wait_with_timeout(
        ff::publish(&tampered, 2),
        Duration::from_secs(15),
        "tampered publisher",
    );
    assert!(!out.status.success());
    let old = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 601)
        .to_string();
    let expired = sign(
        &config,
        &format!("rtmp://127.0.0.1:{rtmp}/live/s"),
        &["--timestamp", &old],
    );
    let out = wait_with_timeout(
        ff::publish(&expired, 2),
        Duration::from_secs(15),
        "expired publisher",
    );
    assert!(!out.status.success());
    assert!(
        engine.count_log("refused:") >= 3,
        "{}",
        engine.log().join("\n")
    );
    assert_eq!(engine.count_log("publish started"), 0);

    // Signed with the backup key: accepted (keys can be rolled without a cut).
    let backup = sign(
        &config,
        &format!("rtmp://127.0.0.1:{rtmp}/live/s"),
        &["--key", "backup"],
    );
    let publisher = ff::publish(&backup, 12);
    engine.wait_for_log("publish started", Duration::from_secs(10));

    // Players come through the play domain `localhost`, signed with type A.
    let rtmp_play = sign(&config, &format!("rtmp://localhost:{rtmp}/live/s"), &[]);
    let flv_play = sign(&config, &format!("http://localhost:{http}/live/s.flv"), &[]);
    let rtmp_probe = ff::spawn_probe(&rtmp_play);
    let flv_probe = ff::spawn_probe(&flv_play);

    // Unsigned or banned viewers are refused: RTMP fails, HTTP gets 403.
    let unsigned_play = ff::spawn_probe(&format!("rtmp://localhost:{rtmp}/live/s"));
    assert!(
        !wait_with_timeout(unsigned_play, Duration::from_secs(15), "unsigned player")
            .status
            .success()
    );
    let flv_unsigned = get(http, "/live/s.flv", &[("Host", "localhost")]);
    assert_eq!(flv_unsigned.status, 403);
    let banned = sign(
        &config,
        &format!("http://localhost:{http}/live/s.flv?viewer=mallory"),
        &[],
    );
    let banned_path = banned.split_once(&format!(":{http}")).unwrap().1;
    assert_eq!(get(http, banned_path, &[("Host", "localhost")]).status, 403);
    // The publish domain does not serve players.
    assert_eq!(get(http, "/live/s.flv", &[]).status, 403);

    // HLS: every playlist and segment request is checked; the playlist carries its signature
    // onto the segment URIs.
    let hls = sign(
        &config,
        &format!("http://localhost:{http}/live/s.m3u8"),
        &[],
    );
    let hls_path = hls.split_once(&format!(":{http}")).unwrap().1.to_owned();
    let playlist = get(http, &hls_path, &[("Host", "localhost")]);
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let query = hls_path.split_once('?').unwrap().1;
    let segment = playlist
        .text()
        .lines()
        .find(|l| l.contains(".ts"))
        .unwrap()
        .to_owned();
    // The viewer's HLS session (the redirect added it) rides along after the signature.
    assert!(segment.contains(&format!("?{query}&session=")), "{segment}");
    assert_eq!(
        get(http, &format!("/live/{segment}"), &[("Host", "localhost")]).status,
        200
    );
    let bare = segment.split('?').next().unwrap();
    assert_eq!(
        get(http, &format!("/live/{bare}"), &[("Host", "localhost")]).status,
        403
    );
    assert_eq!(
        get(http, "/live/s.m3u8", &[("Host", "localhost")]).status,
        403
    );
    // The player page is checked as the HLS it plays: the playlist's signature opens it, and
    // its script passes that query on to the media.
    let page = get(http, &format!("/live/s?{query}"), &[("Host", "localhost")]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("location.search"));
    assert_eq!(get(http, "/live/s", &[("Host", "localhost")]).status, 403);

    assert!(
        wait_with_timeout(publisher, Duration::from_secs(30), "publisher")
            .status
            .success()
    );
    for (what, probe) in [("rtmp", rtmp_probe), ("flv", flv_probe)] {
        let p = parse_probe(&wait_with_timeout(probe, Duration::from_secs(30), what)).unwrap();
        assert_eq!(p.video_codec, "h264", "{what}");
        assert!(p.video_frames > 0, "{what}: {p:?}");
    }
}

#[test]
fn internal_users_guard_publishing() {
    let users = "authInternalUsers:\n  - user: encoder\n    pass: s3cret\n    ips: [127.0.0.0/8]\n    permissions:\n      - action: publish\n        path: live/cam\n  - user: any\n    permissions:\n      - action: read\n";
    let engine = Engine::start(users);
    let url = engine.rtmp_url("live/cam");
    let out = wait_with_timeout(
        ff::publish(&url, 2),
        Duration::from_secs(15),
        "anonymous publisher",
    );
    assert!(!out.status.success());
    let out = wait_with_timeout(
        ff::publish(&format!("{url}?user=encoder&pass=wrong"), 2),
        Duration::from_secs(15),
        "wrong password",
    );
    assert!(!out.status.success());
    let out = wait_with_timeout(
        ff::publish(
            &format!("{}?user=encoder&pass=s3cret", engine.rtmp_url("live/other")),
            2,
        ),
        Duration::from_secs(15),
        "publisher on a path it may not use",
    );
    assert!(!out.status.success());
    let publisher = ff::publish(&format!("{url}?user=encoder&pass=s3cret"), 4);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let probe = ff::spawn_probe(&url);
    let p = parse_probe(&wait_with_timeout(probe, Duration::from_secs(30), "reader")).unwrap();
    assert!(p.video_frames > 0);
    assert!(
        wait_with_timeout(publisher, Duration::from_secs(20), "publisher")
            .status
            .success()
    );
}

#[test]
fn auth_check_tool_explains_and_exits_by_outcome() {
    let dir = TempDir::new("authcli");
    write_domains(&dir.path);
    let config = dir.path.join("c.yaml");
    std::fs::write(&config, "domainsDir: domains\n").unwrap();
    // The published example of type B: md5("/live/test" + "123abc" + "1758296819").
    let url = "rtmp://127.0.0.1/live/test?volcSecret=1e2ea5d60de5adcf5e4b7688ccd76915&volcTime=1758296819";
    let allow = cli(
        &config,
        &[
            "auth",
            "check",
            "--action",
            "publish",
            "--url",
            url,
            "--now",
            "1758296900",
        ],
    );
    assert_eq!(
        allow.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allow.stdout)
    );
    assert!(String::from_utf8_lossy(&allow.stdout)
        .trim_end()
        .ends_with("allow"));
    // At valid_seconds after the timestamp it has expired.
    let expired = cli(
        &config,
        &[
            "auth",
            "check",
            "--action",
            "publish",
            "--url",
            url,
            "--now",
            "1758297419",
        ],
    );
    assert_eq!(expired.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&expired.stdout).contains("deny: "));
    // The expression check prints the values it compared.
    let banned = cli(
        &config,
        &[
            "auth",
            "check",
            "--action",
            "read",
            "--url",
            "http://localhost/live/s.flv?viewer=mallory",
        ],
    );
    assert_eq!(banned.status.code(), Some(1));
    // A broken domain file: exit 2 with file:line:column.
    std::fs::write(
        dir.path.join("domains/bad.yaml"),
        "type: publish\nname: bad.example\napps:\n  - name: app\n    publish_auth_check:\n      checks:\n        - \"${stream} == abc\"\n",
    )
    .unwrap();
    let broken = cli(&config, &["check-config"]);
    assert_eq!(broken.status.code(), Some(2));
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("bad.yaml:7:"), "{err}");
    let same = cli(
        &config,
        &["auth", "check", "--action", "publish", "--url", url],
    );
    assert_eq!(same.status.code(), Some(2));
}
