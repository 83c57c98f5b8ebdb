//! The command line, as an operator meets it: config validation and its exit codes. (Also makes
//! `cargo test --workspace` build the `corestream` binary the end-to-end tests start.)

use std::process::Command;

fn corestream(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_corestream"))
        .args(args)
        // Without --config the engine looks for a file; here it may look nowhere.
        .env("CORESTREAM_CONFIG_SEARCH", "")
        .output()
        .expect("run corestream")
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("corestream-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn embedded_default_checks_clean() {
    let out = corestream(&["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("embedded config/corestream.yaml"));
}

#[test]
fn bad_config_exits_2_with_file_line_and_key() {
    let path = temp_config("bad", "logLevel: info\nrtmpAdress: :1935\n");
    let out = corestream(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:1: ", path.display())), "{err}");
    assert!(err.contains("rtmpAdress"), "{err}");
    // Running refuses the same file the same way, before binding anything.
    let out = corestream(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn too_many_cores_is_a_start_up_error() {
    let path = temp_config(
        "cores",
        "cores: 1024\nrtmpAddress: 127.0.0.1:0\nhttpAddress: 127.0.0.1:0\n",
    );
    let out = corestream(&["--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1024 data cores configured but only"), "{err}");
}

#[test]
fn without_config_the_first_file_of_the_search_list_is_loaded_and_named() {
    let dir = std::env::temp_dir().join(format!("corestream-cli-{}-search", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_corestream"))
            .args(args)
            .current_dir(&dir)
            .env("CORESTREAM_CONFIG_SEARCH", "corestream.yml:mediamtx.yml")
            .output()
            .expect("run corestream")
    };
    let stdout = |out: std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout(run(&["check-config"])).contains("<embedded config/corestream.yaml>: ok"));
    std::fs::write(
        dir.join("mediamtx.yml"),
        "rtsp: yes\nrtmpAddress: 127.0.0.1:0\n",
    )
    .unwrap();
    let out = stdout(run(&["check-config"]));
    assert!(out.starts_with("mediamtx.yml: ok"), "{out}");
    assert!(out.contains("RTSP server: ASKED FOR by rtsp"), "{out}");
    std::fs::write(dir.join("corestream.yml"), "logLevel: warn\n").unwrap();
    assert!(stdout(run(&["check-config"])).starts_with("corestream.yml: ok"));
    // Running says which file it loaded, and what the file asks for that is not served.
    std::fs::remove_file(dir.join("corestream.yml")).unwrap();
    std::fs::write(
        dir.join("mediamtx.yml"),
        "rtsp: yes\ncores: 1\napi: no\nmetrics: no\nrtmpAddress: 127.0.0.1:0\nhlsAddress: 127.0.0.1:0\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corestream"))
        .current_dir(&dir)
        .env("CORESTREAM_CONFIG_SEARCH", "corestream.yml:mediamtx.yml")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run corestream");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        seen.push(line);
        if seen.last().unwrap().contains("corestream ready") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = seen.join("\n");
    assert!(
        log.contains("starting: configuration found at mediamtx.yml (no --config given)"),
        "{log}"
    );
    assert!(
        log.contains("RTSP server: not served by corestream (asked for by rtsp)"),
        "{log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
