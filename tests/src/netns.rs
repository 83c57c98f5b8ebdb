//! Network namespaces of a test's own, joined to the host by a veth pair: a real network link
//! (MTU 1500, the kernel's whole IP path) where the loopback (MTU 64 KiB, every send taken at
//! once) would hide what a link does to the engine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{engine_binary, eventually};

/// A network namespace, deleted (with its interfaces, the veth pair included) when dropped.
pub struct Netns {
    name: String,
}

/// The addresses of a namespace's veth link to the host.
pub struct Link {
    /// The host's end, `/30` with `ns_ip`.
    pub host_ip: String,
    /// The namespace's end, and its interface.
    pub ns_ip: String,
    pub ns_if: String,
}

/// The engine running inside a namespace, its log in a file; killed when dropped.
pub struct NsEngine {
    child: Child,
    config: PathBuf,
    log: PathBuf,
}

impl Netns {
    /// Creates the namespace `NAME` (this test's pid appended, so that runs beside each other do
    /// not meet). Panics, saying why, where it cannot be made (no root, a sandbox): the tests
    /// that need one run as root, as tests/run.sh does, and do not pass by skipping.
    pub fn create(name: &str) -> Netns {
        let name = format!("{name}{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip (tests/run.sh installs iproute2)");
        assert!(
            out.status.success(),
            "this test needs a network namespace of its own (run as root, as tests/run.sh does): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Netns { name }
    }

    /// Runs `ip ARGS` inside the namespace (`ip -n NAME ARGS`); panics if it fails.
    pub fn ip(&self, args: &str) {
        run_ip(&format!("-n {} {args}", self.name));
    }

    /// `program` to be run inside the namespace.
    pub fn exec(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Joins the namespace to the host with a veth pair (the kernel's default MTU, 1500) and
    /// addresses both ends in `10.NET.x.y/30`, a block picked from this test's pid; the
    /// namespace's loopback is brought up too.
    pub fn link_to_host(&self, net: u8) -> Link {
        let pid = std::process::id();
        let n = (pid % 16_000) * 4;
        let host_if = format!("cs{net}x{pid}h");
        let link = Link {
            host_ip: format!("10.{net}.{}.{}", n / 256, n % 256 + 1),
            ns_ip: format!("10.{net}.{}.{}", n / 256, n % 256 + 2),
            ns_if: format!("cs{net}x{pid}n"),
        };
        run_ip(&format!(
            "link add {host_if} type veth peer name {} netns {}",
            link.ns_if, self.name
        ));
        run_ip(&format!("addr add {}/30 dev {host_if}", link.host_ip));
        run_ip(&format!("link set {host_if} up"));
        self.ip("link set lo up");
        self.ip(&format!("addr add {}/30 dev {}", link.ns_ip, link.ns_if));
        self.ip(&format!("link set {} up", link.ns_if));
        link
    }
}

impl NsEngine {
    /// Starts the engine inside `ns` on `yaml`, written to `dir` with its log beside it; waits
    /// until it says it is ready.
    pub fn start(ns: &Netns, dir: &Path, yaml: &str) -> NsEngine {
        let config = dir.join("corestream.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let log = dir.join("engine.log");
        let child = ns
            .exec(&engine_binary())
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start corestream in the namespace");
        let engine = NsEngine { child, config, log };
        engine.wait_for_log("corestream ready", Duration::from_secs(10));
        engine
    }

    /// The configuration file it runs with.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        assert!(
            eventually(timeout, || self.log_text().contains(needle)),
            "engine log never had {needle:?}:\n{}",
            self.log_text()
        );
    }

    /// Stops the engine; its whole log.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log_text()
    }
}

impl Drop for NsEngine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `ip ARGS` on the host; panics if it fails.
fn run_ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip (tests/run.sh installs iproute2)");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
