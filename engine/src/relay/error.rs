//! Why a pull or a push failed. The text is what the API shows as the link's last error, so OS
//! errors keep the system's own words (`connection refused`, `no route to host`) and peer refusals
//! the peer's (`NetStream.Play.StreamNotFound`).
#![forbid(unsafe_code)]

use std::io;
use std::net::SocketAddr;

use super::tls::TlsError;
use super::url::UrlError;
use crate::protocol::flv::FlvError;
use crate::protocol::fmp4::demux::Fmp4DemuxError;
use crate::protocol::http::{EncodeError, HttpError};
use crate::protocol::rtmp::SessionError;
use crate::protocol::rtsp::RtspError;
use crate::protocol::ts::TsDemuxError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("invalid url: {0}")]
    Url(#[from] UrlError),
    #[error("resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("connect {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("i/o timeout ({0})")]
    Timeout(&'static str),
    #[error("read: {0}")]
    Read(String),
    #[error("connection closed by the peer")]
    Closed,
    #[error("rtmp: {0}")]
    Rtmp(#[from] SessionError),
    #[error("{code}: {description}")]
    Status { code: String, description: String },
    #[error("http status {status} {reason}")]
    HttpStatus { status: u16, reason: String },
    /// TLS of an `https://` or `rtmps://` link: certificate, fingerprint, handshake, in full.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A forward's pin does not match its target's certificate (sources say it in MediaMTX's
    /// words, [`TlsError::FingerprintMismatch`]).
    #[error("forward fingerprint does not match: expected {expected}, got {got}")]
    ForwardFingerprintMismatch { expected: String, got: String },
    /// A forward's target has a self-signed certificate and the forward no pin.
    #[error("tls: certificate signed by unknown authority (self-signed: pin it with the forward's fingerprint)")]
    ForwardSelfSigned,
    #[error("http: {0}")]
    Http(#[from] HttpError),
    #[error("flv: {0}")]
    Flv(#[from] FlvError),
    /// An HLS origin's playlist that cannot be followed (not a playlist, another server).
    #[error("hls playlist: {0}")]
    HlsPlaylist(String),
    /// An HLS origin's answer that cannot be read whole on a kept-alive connection.
    #[error("hls: {0}")]
    HlsBody(String),
    #[error("mpeg-ts: {0}")]
    Ts(#[from] TsDemuxError),
    #[error("fmp4: {0}")]
    Fmp4(#[from] Fmp4DemuxError),
    #[error("http request: {0}")]
    Request(#[from] EncodeError),
    /// The RTSP server's refusal (`DESCRIBE: rtsp status 401 Unauthorized`) or misbehaviour.
    #[error("{0}")]
    Rtsp(#[from] RtspError),
    #[error("the stream has no track we can relay (h264, aac, g711): {0}")]
    NoTracks(String),
    #[error("too many redirects (last: {0})")]
    TooManyRedirects(String),
    #[error("no stream name in the url")]
    NoStreamName,
    #[error("the peer reads too slowly")]
    TooSlow,
    #[error("the stream ended")]
    Ended,
    #[error("the path is already being published")]
    AlreadyPublishing,
    #[error("the stream's home core did not answer")]
    Unavailable,
    #[error("this core already has maxStreamsPerCore ({limit}) streams")]
    TooManyStreams { limit: usize },
    #[error("cannot set up the connection")]
    Setup,
    /// Told to stop (configuration change, last reader gone, shutdown): not a failure.
    #[error("stopped")]
    Stopped,
}

impl RelayError {
    /// This error as a push reports it: certificate advice names the forward's `fingerprint`,
    /// not `sourceFingerprint`.
    pub(super) fn for_forward(self) -> RelayError {
        match self {
            RelayError::Tls(TlsError::FingerprintMismatch { expected, got }) => {
                RelayError::ForwardFingerprintMismatch { expected, got }
            }
            RelayError::Tls(TlsError::SelfSigned) => RelayError::ForwardSelfSigned,
            other => other,
        }
    }

    /// Whether the peer said it does not have the stream (an edge then tries the next origin).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RelayError::Status { code, .. } if code.ends_with("StreamNotFound"))
            || matches!(self, RelayError::HttpStatus { status: 404, .. })
            || matches!(
                self,
                RelayError::Rtsp(RtspError::Status { status: 404, .. })
            )
    }
}

/// An I/O error in the system's words: `strerror` without the `(os error N)` suffix, lowercased
/// as Go and MediaMTX print it (`connection refused`, `no route to host`).
pub fn os_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".to_owned();
    }
    let text = match e.raw_os_error() {
        Some(code) => {
            let full = io::Error::from_raw_os_error(code).to_string();
            match full.rfind(" (os error") {
                Some(i) => full[..i].to_owned(),
                None => full,
            }
        }
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_in_the_systems_words() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(os_text(&refused), "connection refused");
        let unreachable = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(os_text(&unreachable), "no route to host");
        assert_eq!(os_text(&io::ErrorKind::TimedOut.into()), "i/o timeout");
        let e = RelayError::Connect {
            addr: "127.0.0.1:1".parse().unwrap(),
            reason: os_text(&refused),
        };
        assert_eq!(e.to_string(), "connect 127.0.0.1:1: connection refused");
    }

    #[test]
    fn not_found_is_recognised() {
        let nf = RelayError::Status {
            code: "NetStream.Play.StreamNotFound".into(),
            description: "x".into(),
        };
        assert!(nf.is_not_found());
        assert!(!RelayError::Closed.is_not_found());
    }

    #[test]
    fn forwards_name_their_own_pin() {
        let self_signed = RelayError::from(TlsError::SelfSigned).for_forward();
        assert_eq!(
            self_signed.to_string(),
            "tls: certificate signed by unknown authority (self-signed: pin it with the forward's fingerprint)"
        );
        let mismatch = RelayError::from(TlsError::FingerprintMismatch {
            expected: "ab".into(),
            got: "cd".into(),
        });
        assert_eq!(
            mismatch.for_forward().to_string(),
            "forward fingerprint does not match: expected ab, got cd"
        );
        assert_eq!(
            RelayError::Closed.for_forward().to_string(),
            "connection closed by the peer"
        );
    }
}
