//! Headless Debian chromium driven over the DevTools protocol, for the browser tests.
//!
//! The protocol runs over `--remote-debugging-pipe` (JSON messages ended by a NUL byte on the
//! browser's fds 3 and 4) rather than a WebSocket: no client crate is needed, and no port. A
//! shell `exec`s chromium with our stdin on fd 3 and our stdout on fd 4.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::TempDir;

/// A running headless chromium. Killed when dropped.
pub struct Browser {
    child: Child,
    to: ChildStdin,
    from: Receiver<Value>,
    next_id: u64,
    _profile: TempDir,
}

/// A tab: its DevTools session.
pub struct Tab {
    session: String,
}

impl Browser {
    /// Starts chromium with the flags that work on a machine without a display or a GPU.
    pub fn launch() -> Browser {
        let profile = TempDir::new("chromium");
        let flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
            "--mute-audio",
            "--window-size=640,480",
            // Several pages play at once, each in its own window: none may be throttled or
            // have its media deferred as a background page.
            "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--remote-debugging-pipe",
        ];
        let script = format!(
            "exec chromium {} --user-data-dir={} about:blank 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null",
            flags.join(" "),
            profile.path.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium is installed (tests/run.sh installs Debian's)");
        let to = child.stdin.take().expect("piped stdin");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            to,
            from,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a command and waits for its result (events in between are skipped).
    pub fn call(&mut self, tab: Option<&Tab>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(t) = tab {
            msg["sessionId"] = json!(t.session);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .and_then(|_| self.to.flush())
            .expect("chromium takes commands");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => panic!("chromium did not answer {method}"),
                Err(RecvTimeoutError::Disconnected) => panic!("chromium exited during {method}"),
            }
        }
    }

    /// Opens `url` in a new tab.
    pub fn open(&mut self, url: &str) -> Tab {
        let target = self.call(
            None,
            "Target.createTarget",
            json!({ "url": url, "newWindow": true }),
        );
        let id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": id, "flatten": true }),
        );
        Tab {
            session: attached["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_owned(),
        }
    }

    /// Evaluates `expression` in the tab; its value (JSON-serialisable).
    pub fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let r = self.call(
            Some(tab),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Saves a PNG of the tab to `path`.
    pub fn screenshot(&mut self, tab: &Tab, path: &Path) {
        self.capture(tab, path, json!({ "format": "png" }));
    }

    /// Saves a PNG of the CSS-pixel rectangle `(x, y, width, height)` of the tab to `path`.
    pub fn screenshot_clip(&mut self, tab: &Tab, path: &Path, clip: (f64, f64, f64, f64)) {
        let (x, y, width, height) = clip;
        let clip = json!({ "x": x, "y": y, "width": width, "height": height, "scale": 1 });
        self.capture(tab, path, json!({ "format": "png", "clip": clip }));
    }

    fn capture(&mut self, tab: &Tab, path: &Path, params: Value) {
        let r = self.call(Some(tab), "Page.captureScreenshot", params);
        let png = base64_decode(r["data"].as_str().unwrap_or_default());
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    pub fn close(&mut self, tab: Tab) {
        let _ = self.call(Some(&tab), "Page.close", json!({}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (screenshots come as such).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_decode("aGVsbG8="), b"hello");
        assert_eq!(super::base64_decode("YWI="), b"ab");
    }
}
