//! Debian's `redis-server` and `redis-sentinel` on loopback, for the cluster tests: real
//! servers, started on free ports, stopped (SIGKILL) when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{eventually, free_port, TempDir};

/// A redis-server (or sentinel) process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    /// Extra arguments it was started with, for a restart on the same port.
    args: Vec<String>,
    sentinel: bool,
}

impl RedisServer {
    /// A server without persistence (a restart loses every key, the hard case for the
    /// directory), on a free loopback port.
    pub fn start() -> RedisServer {
        RedisServer::start_args(&[])
    }

    /// A server with extra arguments (`--replicaof 127.0.0.1 PORT`, `--requirepass …`).
    pub fn start_args(args: &[&str]) -> RedisServer {
        let dir = TempDir::new("redis");
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            sentinel: false,
        };
        server.spawn();
        server
    }

    /// A sentinel watching the master at `master_port` as `name`, deciding alone (quorum 1)
    /// after `down_ms` of silence.
    pub fn start_sentinel(name: &str, master_port: u16, down_ms: u32) -> RedisServer {
        let dir = TempDir::new("sentinel");
        let port = free_port();
        let conf = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {name} 127.0.0.1 {master_port} 1\nsentinel down-after-milliseconds {name} {down_ms}\nsentinel failover-timeout {name} 5000\nsentinel parallel-syncs {name} 1\n",
            dir.path.display()
        );
        let path = dir.path.join("sentinel.conf");
        std::fs::write(&path, conf).expect("write sentinel.conf");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            args: vec![path.display().to_string()],
            sentinel: true,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = if self.sentinel {
            let mut c = Command::new("redis-sentinel");
            c.args(&self.args);
            c
        } else {
            let mut c = Command::new("redis-server");
            c.args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--dir", &self.dir.path.display().to_string()])
                .args(&self.args);
            c
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/run.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        assert!(
            eventually(Duration::from_secs(10), || ping(port)),
            "redis on port {port} did not answer PING"
        );
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One command, its reply as text (RESP, as received).
    pub fn command(&self, args: &[&str]) -> String {
        command(self.port, args)
    }

    /// One command after `AUTH password`, its reply as text.
    pub fn command_auth(&self, password: &str, args: &[&str]) -> String {
        let reply = command_pipelined(self.port, &[&["AUTH", password], args]);
        reply
            .split_once("\r\n")
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path.clone()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a server answers PING on `port` (`-NOAUTH` from one with a password is an answer).
pub fn ping(port: u16) -> bool {
    let reply = command(port, &["PING"]);
    reply.contains("PONG") || reply.starts_with("-NOAUTH")
}

/// Sends one command (RESP array) and returns what came back within a short wait.
pub fn command(port: u16, args: &[&str]) -> String {
    command_pipelined(port, &[args])
}

/// Sends commands in one write and returns every reply, as received.
pub fn command_pipelined(port: u16, commands: &[&[&str]]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut req = String::new();
    for args in commands {
        req.push_str(&format!("*{}\r\n", args.len()));
        for a in args.iter() {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
    }
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // A whole simple reply, or a bulk/array reply that has settled.
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
