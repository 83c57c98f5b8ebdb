//! Network namespaces of a test's own, joined to the host by a veth pair: a real network link
//! (MTU 1500, the kernel's whole IP path) where the loopback (MTU 64 KiB, every send taken at
//! once) would hide what a link does to the engine.

use std::path::Path;
use std::process::Command;

/// A network namespace, deleted (with its interfaces, the veth pair included) when dropped.
pub struct Netns {
    name: String,
}

/// Both ends of a namespace's veth link to the host.
pub struct Link {
    /// The host's end, `/30` with `ns_ip`.
    pub host_ip: String,
    pub host_if: String,
    /// The namespace's end.
    pub ns_ip: String,
    pub ns_if: String,
}

impl Netns {
    /// Creates the namespace `NAME` (this test's pid appended, so that runs beside each other do
    /// not meet); the error says why it cannot be made here (no root, no `ip`, a sandbox).
    pub fn create(name: &str) -> Result<Netns, String> {
        let name = format!("{name}{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Netns { name })
    }

    pub fn name(&self) -> &str {
        &self.name
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
        let link = Link {
            host_ip: format!("10.{net}.{}.{}", n / 256, n % 256 + 1),
            host_if: format!("cs{net}x{pid}h"),
            ns_ip: format!("10.{net}.{}.{}", n / 256, n % 256 + 2),
            ns_if: format!("cs{net}x{pid}n"),
        };
        run_ip(&format!(
            "link add {} type veth peer name {} netns {}",
            link.host_if, link.ns_if, self.name
        ));
        run_ip(&format!(
            "addr add {}/30 dev {}",
            link.host_ip, link.host_if
        ));
        run_ip(&format!("link set {} up", link.host_if));
        self.ip("link set lo up");
        self.ip(&format!("addr add {}/30 dev {}", link.ns_ip, link.ns_if));
        self.ip(&format!("link set {} up", link.ns_if));
        link
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
