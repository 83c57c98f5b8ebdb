//! Crash safety of the API state file: kill -9 at random moments while API writes go on, 20
//! times. Every time, the file parses and holds either the last acknowledged change or the one
//! in flight (never a torn mix), and the engine restarts on it and serves it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corestream::config::state::read_overlay;
use rand::Rng;
use serde_json::Value;
use tests::Engine;

const ROUNDS: usize = 20;
const PATH: &str = "crash/p";

/// One PATCH of [`PATH`] on a new connection; its status, or `None` if the engine died first.
fn patch(port: u16, body: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let request = format!(
        "PATCH /v3/config/paths/patch/{PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// `maxReaders` of [`PATH`] in the overlay, or `None` if the overlay has no such entry.
fn persisted(overlay: &serde_json::Map<String, Value>) -> Option<i64> {
    overlay.get("paths")?.get(PATH)?.get("maxReaders")?.as_i64()
}

#[test]
fn state_file_survives_kill_9_during_writes() {
    let mut engine = Engine::start("");
    let created = engine.api(
        "POST",
        &format!("/v3/config/paths/add/{PATH}"),
        Some(r#"{"maxReaders": 1}"#),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let mut value = 1i64;
    let mut rng = rand::thread_rng();
    let mut torn_checks = 0;
    let mut in_flight_won = 0;
    for round in 0..ROUNDS {
        // Each write sets maxReaders to the next number: `acked` is the last one answered 200,
        // and the write in flight at the kill is `acked + 1`.
        let acked = Arc::new(AtomicI64::new(value));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (acked, stop, port) = (acked.clone(), stop.clone(), engine.api_port);
            std::thread::spawn(move || {
                let mut next = acked.load(Ordering::SeqCst) + 1;
                while !stop.load(Ordering::SeqCst) {
                    let body = format!("{{\"maxReaders\": {next}}}");
                    match patch(port, &body) {
                        Some(200) => {
                            acked.store(next, Ordering::SeqCst);
                            next += 1;
                        }
                        // Killed mid-request: the connection fails, nothing is known.
                        _ => return,
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        let stopped = engine.kill();
        stop.store(true, Ordering::SeqCst);
        let _ = writer.join();
        let acked = acked.load(Ordering::SeqCst);

        let state = stopped.dir().join("corestream.state.yaml");
        let overlay = read_overlay(&state)
            .unwrap_or_else(|e| panic!("round {round}: state file does not parse: {e}"));
        let on_disk = persisted(&overlay)
            .unwrap_or_else(|| panic!("round {round}: {PATH} missing: {overlay:?}"));
        assert!(
            on_disk == acked || on_disk == acked + 1,
            "round {round}: state file has maxReaders {on_disk}, acknowledged {acked}"
        );
        assert_eq!(
            overlay.keys().collect::<Vec<_>>(),
            ["paths"],
            "round {round}: {overlay:?}"
        );
        torn_checks += 1;
        if on_disk == acked + 1 {
            in_flight_won += 1;
        }

        engine = Engine::restart(stopped);
        let served = engine
            .api("GET", &format!("/v3/config/paths/get/{PATH}"), None)
            .json();
        assert_eq!(served["maxReaders"], on_disk, "round {round}");
        value = on_disk;
    }
    eprintln!(
        "state_crash: {torn_checks} kills during writes, the state file always whole; the write in flight had landed in {in_flight_won}; final maxReaders {value}"
    );
}
