//! The command line, as an operator meets it: config validation and its exit codes. (Also makes
//! `cargo test --workspace` build the `corestream` binary the end-to-end tests start.)

use std::process::Command;

fn corestream(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_corestream"))
        .args(args)
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
