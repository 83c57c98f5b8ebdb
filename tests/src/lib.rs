//! Harness for end-to-end tests: starts the real `corestream` binary on free ports and drives it
//! with ffmpeg/ffprobe and with our own clients.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod answer;
pub mod browser;
pub mod ff;
pub mod http;
pub mod netns;
pub mod redis;
pub mod rtmp_client;

/// Path of the engine binary built by `cargo test --workspace` next to this test's executable.
pub fn engine_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CORESTREAM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/corestream
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("corestream");
    assert!(
        bin.exists(),
        "{} not found: run the suite with `cargo test --workspace` (which builds it) or set CORESTREAM_BIN",
        bin.display()
    );
    bin
}

/// A TCP port that was free a moment ago.
///
/// Taken below Linux's ephemeral range (32768 and up by default), so that no client connection
/// of a test running beside this one can be given it as its local port while the engine that
/// owns it restarts.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + seed.wrapping_add(n.wrapping_mul(4099)) % SPAN;
        let port = port as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A running engine. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Engine {
    child: Option<Child>,
    pub rtmp_port: u16,
    pub http_port: u16,
    /// The control API (`apiAddress`).
    pub api_port: u16,
    /// Prometheus (`metricsAddress`).
    pub metrics_port: u16,
    /// The configuration file the engine runs with.
    pub config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    dir: TempDir,
    /// Environment variables the engine runs with (`MTX_*` overrides).
    env: Vec<(String, String)>,
}

/// An engine that was stopped, with its directory and configuration kept for a restart.
pub struct Stopped {
    dir: TempDir,
    config_path: PathBuf,
    ports: [u16; 4],
    env: Vec<(String, String)>,
}

impl Stopped {
    pub fn dir(&self) -> &std::path::Path {
        &self.dir.path
    }
}

impl Engine {
    /// Starts the engine with `extra` YAML appended to a config that sets free ports, two data
    /// cores and debug logging; waits until it says it is ready.
    pub fn start(extra: &str) -> Engine {
        Engine::start_logging(extra, "debug")
    }

    /// Like [`Engine::start`] at another `logLevel` (`info` for load tests, whose thousands of
    /// connections would otherwise log far more than they test).
    pub fn start_logging(extra: &str, log_level: &str) -> Engine {
        Engine::start_with(log_level, |_| extra.to_owned())
    }

    /// Like [`Engine::start_logging`], the extra YAML made from the ports the engine gets
    /// (`[rtmp, http, api, metrics]`): a cluster node advertises its own RTMP port.
    pub fn start_with(log_level: &str, extra: impl Fn([u16; 4]) -> String) -> Engine {
        Engine::launch_on_free_ports(|ports| {
            let extra = extra(ports);
            let [rtmp_port, http_port, api_port, metrics_port] = ports;
            let dir = TempDir::new("engine");
            let config = format!(
                "cores: 2\nlogLevel: {log_level}\nrtmpAddress: 127.0.0.1:{rtmp_port}\nhttpAddress: 127.0.0.1:{http_port}\napiAddress: 127.0.0.1:{api_port}\nmetricsAddress: 127.0.0.1:{metrics_port}\n{extra}"
            );
            let path = dir.path.join("corestream.yaml");
            std::fs::write(&path, config).expect("write test config");
            Stopped {
                dir,
                config_path: path,
                ports,
                env: Vec::new(),
            }
        })
    }

    /// Starts an engine on four ports that were free a moment ago. A port can be taken in
    /// between by an engine of a test running beside this one: such a start (the engine says
    /// `Address already in use` and exits) is made again on other ports, a few times at most.
    fn launch_on_free_ports(make: impl Fn([u16; 4]) -> Stopped) -> Engine {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let ports = [free_port(), free_port(), free_port(), free_port()];
            let mut engine = Engine::spawn(make(ports));
            let settled = eventually(Duration::from_secs(10), || {
                engine.count_log("corestream ready") > 0 || !engine.is_running()
            });
            if settled && engine.count_log("corestream ready") > 0 {
                return engine;
            }
            // The process may be gone before its last log lines are read.
            let taken = eventually(Duration::from_secs(2), || {
                engine.count_log("Address already in use") > 0
            });
            if !taken || attempt == ATTEMPTS {
                panic!(
                    "engine log never had \"corestream ready\"; log:\n{}",
                    engine.log().join("\n")
                );
            }
            eprintln!("engine start: a port was taken meanwhile, trying other ports");
            drop(engine.kill());
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts the engine on `file` as it is (a MediaMTX configuration, say), on free ports set
    /// through MediaMTX's environment overrides (`MTX_RTMPADDRESS`, …) and `extra_env`; waits
    /// until it says it is ready. The HTTP port serves `httpAddress` and `hlsAddress` alike.
    pub fn start_file(file: &std::path::Path, extra_env: &[(&str, &str)]) -> Engine {
        Engine::launch_on_free_ports(|ports| Engine::file_on_ports(file, extra_env, ports))
    }

    fn file_on_ports(
        file: &std::path::Path,
        extra_env: &[(&str, &str)],
        ports: [u16; 4],
    ) -> Stopped {
        let [rtmp_port, http_port, api_port, metrics_port] = ports;
        let mut env: Vec<(String, String)> = [
            ("MTX_RTMPADDRESS", rtmp_port),
            ("MTX_HLSADDRESS", http_port),
            ("MTX_HTTPADDRESS", http_port),
            ("MTX_APIADDRESS", api_port),
            ("MTX_METRICSADDRESS", metrics_port),
        ]
        .iter()
        .map(|(k, port)| ((*k).to_owned(), format!("127.0.0.1:{port}")))
        .collect();
        let dir = TempDir::new("engine");
        // API writes go to the test's directory, never beside the file (which may be test data).
        env.push((
            "MTX_APISTATEFILE".to_owned(),
            dir.path.join("state.yaml").display().to_string(),
        ));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Stopped {
            dir,
            config_path: file.to_owned(),
            ports,
            env,
        }
    }

    /// Starts a stopped engine again on the same configuration file and ports. A killed engine's
    /// listeners can outlive the process for a moment (io_uring releases its files after the
    /// process is reaped): a start that finds a port still taken is retried for a few seconds.
    pub fn restart(mut stopped: Stopped) -> Engine {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut engine = Engine::spawn(stopped);
            let ready = eventually(Duration::from_secs(10), || {
                engine.count_log("corestream ready") > 0 || !engine.is_running()
            });
            if ready && engine.count_log("corestream ready") > 0 {
                return engine;
            }
            // The process may be gone before its last log lines are read.
            let busy = eventually(Duration::from_secs(2), || {
                engine.count_log("Address already in use") > 0
            });
            if !busy || Instant::now() > deadline {
                panic!("engine did not restart; log:\n{}", engine.log().join("\n"));
            }
            let why = engine
                .log()
                .into_iter()
                .find(|l| l.contains("Address already in use"))
                .unwrap_or_default();
            eprintln!("engine restart: a port is taken, retrying ({why})");
            stopped = engine.kill();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the engine with SIGKILL (no chance to clean up) and waits for it to be gone.
    pub fn kill(mut self) -> Stopped {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
        let dir = std::mem::replace(
            &mut self.dir,
            TempDir {
                path: PathBuf::new(),
            },
        );
        Stopped {
            dir,
            config_path: self.config_path.clone(),
            ports: [
                self.rtmp_port,
                self.http_port,
                self.api_port,
                self.metrics_port,
            ],
            env: std::mem::take(&mut self.env),
        }
    }

    fn spawn(stopped: Stopped) -> Engine {
        let Stopped {
            dir,
            config_path: path,
            ports: [rtmp_port, http_port, api_port, metrics_port],
            env,
        } = stopped;
        let mut child = Command::new(engine_binary())
            .arg("--config")
            .arg(&path)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start corestream");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("CORESTREAM_TEST_ECHO").is_some() {
                    eprintln!("[engine] {line}");
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        Engine {
            child: Some(child),
            rtmp_port,
            http_port,
            api_port,
            metrics_port,
            config_path: path,
            log,
            dir,
            env,
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http_port)
    }

    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp_port)
    }

    /// A request to the control API.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> http::Response {
        http::request(self.api_port, method, path, body, &[])
    }

    /// A path's `/v3/paths/get` item (Null while the path is unknown).
    pub fn path_item(&self, path: &str) -> serde_json::Value {
        let r = self.api("GET", &format!("/v3/paths/get/{path}"), None);
        if r.status == 200 {
            r.json()
        } else {
            serde_json::Value::Null
        }
    }

    /// Waits until the path's `sourceState` is `state`; panics with the item otherwise.
    pub fn wait_source_state(
        &self,
        path: &str,
        state: &str,
        timeout: Duration,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let ok = eventually(timeout, || {
            last = self.path_item(path);
            last["sourceState"] == state
        });
        assert!(ok, "{path} never had sourceState {state}: {last}");
        last
    }

    /// The `/metrics` scrape, as `(name{labels}, value)` pairs.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let scrape = http::request(self.metrics_port, "GET", "/metrics", None, &[]);
        assert_eq!(scrape.status, 200, "{}", scrape.text());
        scrape
            .text()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// `corestream_limit_hits_total` for the limit `key`, summed over the cores.
    pub fn limit_hits(&self, key: &str) -> u64 {
        let label = format!("limit=\"{key}\"");
        self.metrics()
            .iter()
            .filter(|(n, _)| n.starts_with("corestream_limit_hits_total{") && n.contains(&label))
            .map(|(_, v)| *v as u64)
            .sum()
    }

    /// `corestream_core_connections_open`, summed over the cores.
    pub fn open_connections(&self) -> u64 {
        self.metrics()
            .iter()
            .filter(|(n, _)| n.starts_with("corestream_core_connections_open{"))
            .map(|(_, v)| *v as u64)
            .sum()
    }

    /// The engine's resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The engine's open file descriptors (`/proc/PID/fd`).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// The state file the API persists to (the default, beside the configuration).
    pub fn state_file(&self) -> PathBuf {
        self.dir.path.join("corestream.state.yaml")
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until some log line contains `needle`; panics with the log after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits until `count` log lines contain `needle`; returns the last of them.
    pub fn wait_for_log_count(&self, needle: &str, count: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let lines: Vec<String> = self
                .log()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            if lines.len() >= count {
                return lines[count - 1].clone();
            }
            if Instant::now() > deadline {
                self.assert_not_stopped_by_someone_else();
                panic!(
                    "engine log never had {count} line(s) with {needle:?} within {timeout:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Data cores that accepted connections so far, from the per-connection log lines
    /// (`rtmp{core=N …}: connection accepted`, likewise `http{…}`).
    pub fn cores_with_connections(&self) -> std::collections::BTreeSet<u16> {
        self.log()
            .iter()
            .filter(|l| l.contains("connection accepted"))
            .filter_map(|l| {
                let rest = &l[l.find("core=")? + 5..];
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Starts ffprobe and ffmpeg players of `url` alternately (at least four, at most sixteen)
    /// until both data cores hold at least one: SO_REUSEPORT spreads connections by their ports,
    /// so whichever core a publisher lands on, some player is then remote from it.
    /// Returns the ffprobe and the ffmpeg children.
    pub fn players_on_both_cores(&self, url: &str) -> (Vec<Child>, Vec<Child>) {
        let (mut probes, mut decoders) = (Vec::new(), Vec::new());
        let before = self.count_log("connection accepted");
        for i in 0..16 {
            if i % 2 == 0 {
                probes.push(ff::spawn_probe(url));
            } else {
                decoders.push(ff::spawn_decoder(url));
            }
            self.wait_for_log_count(
                "connection accepted",
                before + i + 1,
                Duration::from_secs(10),
            );
            if i >= 3 && self.cores_with_connections().len() == 2 {
                break;
            }
        }
        assert_eq!(
            self.cores_with_connections().len(),
            2,
            "players landed on one core only"
        );
        (probes, decoders)
    }

    /// The engine's "stopping" line if it was stopped by a signal the harness did not send (on
    /// a shared machine, someone's `pkill corestream`): a failure after that is not the test's.
    pub fn stopped_by_someone_else(&self) -> Option<String> {
        // No child: the harness stopped the engine itself.
        self.child.as_ref()?;
        self.log()
            .into_iter()
            .find(|l| l.contains("stopping signal="))
    }

    /// Panics saying so if [`Engine::stopped_by_someone_else`].
    pub fn assert_not_stopped_by_someone_else(&self) {
        if let Some(line) = self.stopped_by_someone_else() {
            panic!("the engine (pid {}) was stopped by a signal this test did not send, so nothing it did after can be checked: {line}", self.pid());
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running engine").id()
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running engine");
        let start = Instant::now();
        signal(child.id(), "TERM");
        let deadline = start + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait for engine") {
                return (status, start.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("engine did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends a signal with kill(1), so the harness needs no libc bindings.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "corestream-test-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs `check` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Runs the engine's CLI (`corestream ARGS --config CONFIG`) and waits for it.
pub fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(engine_binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run corestream")
}

/// `corestream sign --url URL EXTRA…`: the signed URL it prints.
pub fn sign(config: &Path, url: &str, extra: &[&str]) -> String {
    let mut args = vec!["sign", "--url", url];
    args.extend_from_slice(extra);
    let out = cli(config, &args);
    assert!(
        out.status.success(),
        "sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}
