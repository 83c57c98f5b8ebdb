//! The I/O half of `authMethod: http`: one short-lived connection to the auth service per check.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::auth::http_hook::verdict;

/// How long the auth service gets to answer; a client is refused when it does not.
const HOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// The answer's head must fit in this much.
const MAX_ANSWER: usize = 64 * 1024;

/// Sends `request` to the auth service at `addr`; `Ok` if it answered 2xx, else why not.
pub(crate) async fn ask(addr: SocketAddr, request: BytesMut) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach the auth service at {addr}: {e}"))?;
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("auth service at {addr}: {e}"))?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(v) = verdict(&answer) {
                return Ok(v);
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("auth service at {addr}: {e}"))?;
            if n == 0 || answer.len() > MAX_ANSWER {
                return Err(format!(
                    "the auth service at {addr} closed without a whole answer"
                ));
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    };
    match glommio::timer::timeout(HOOK_TIMEOUT, async { Ok(exchange.await) }).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "the auth service at {addr} did not answer within {HOOK_TIMEOUT:?}"
        )),
    }
}
