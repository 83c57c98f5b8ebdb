//! TLS for `https://` pull sources: a thin sans-IO adapter over rustls' `ClientConnection`.
//!
//! [`TlsClient`] never touches a socket. Call order, as with the engine's other sessions:
//! write plaintext with [`TlsClient::write_plain`] (it is held until the handshake is done),
//! drain [`TlsClient::poll_transmit`] to the socket, feed every byte read from the socket to
//! [`TlsClient::handle_input`] (decrypted bytes come out into the caller's buffer), and drain
//! `poll_transmit` again after each input (handshake replies, held plaintext, alerts).
//!
//! Certificates are checked against Mozilla's roots (`webpki-roots`), or, when the path has a
//! `sourceFingerprint`, pinned: the server's leaf certificate must hash (SHA-256 over its DER)
//! to exactly that fingerprint, as MediaMTX does for self-signed sources; the handshake
//! signatures are still verified with the certificate's key.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError};
use rustls::{RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// Why a TLS session failed. The text is the API's `sourceError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The chain does not lead to a known root (a self-signed certificate without a
    /// `sourceFingerprint`); Go's words, as MediaMTX reports it.
    #[error("tls: certificate signed by unknown authority")]
    UnknownAuthority,
    /// The server's certificate is a CA certificate outside the roots: what `openssl req
    /// -x509` makes, i.e. almost always a self-signed certificate that wants pinning.
    #[error(
        "tls: certificate signed by unknown authority (self-signed: pin it with sourceFingerprint)"
    )]
    SelfSigned,
    /// The pinned fingerprint does not match the certificate; MediaMTX's words.
    #[error("source fingerprint does not match: expected {expected}, got {got}")]
    FingerprintMismatch { expected: String, got: String },
    /// Any other certificate problem (expired, wrong name, …), in rustls' words.
    #[error("tls: {0}")]
    Certificate(String),
    /// The server refused the handshake with an alert.
    #[error("tls: remote error: {0}")]
    Alert(String),
    /// The server closed the connection before the handshake was done.
    #[error("tls: handshake failure: connection closed by the peer")]
    ClosedInHandshake,
    /// The host is neither a DNS name nor an IP address rustls accepts.
    #[error("tls: invalid server name '{0}'")]
    ServerName(String),
    /// The server broke the protocol (not TLS at all, a bad record, …), in rustls' words.
    #[error("tls: {0}")]
    Protocol(String),
}

impl TlsError {
    fn from_rustls(e: rustls::Error) -> TlsError {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                TlsError::UnknownAuthority
            }
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(other)))
                if matches!(
                    other.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                TlsError::SelfSigned
            }
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(other))) => {
                match other.downcast_ref::<TlsError>() {
                    Some(mismatch) => mismatch.clone(),
                    None => TlsError::Certificate(other.to_string()),
                }
            }
            e @ rustls::Error::InvalidCertificate(_) => TlsError::Certificate(e.to_string()),
            rustls::Error::AlertReceived(alert) => TlsError::Alert(words(&format!("{alert:?}"))),
            other => TlsError::Protocol(other.to_string()),
        }
    }
}

/// What a `handle_input` call found besides plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(super) enum TlsInput {
    /// More may come.
    Open,
    /// The server sent `close_notify`: no more plaintext will come.
    PeerClosed,
}

/// One TLS client session (see the module docs for the call order).
pub(super) struct TlsClient {
    conn: ClientConnection,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("handshaking", &self.conn.is_handshaking())
            .finish()
    }
}

impl TlsClient {
    /// A session to `host`, checked against the webpki roots, or pinned to `fingerprint` (hex
    /// SHA-256 of the server certificate, any case) when given.
    pub(super) fn new(host: &str, fingerprint: Option<&str>) -> Result<TlsClient, TlsError> {
        let config = client_config(fingerprint)?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::ServerName(host.to_owned()))?;
        let conn = ClientConnection::new(Arc::new(config), name)
            .map_err(|e| TlsError::Protocol(e.to_string()))?;
        Ok(TlsClient { conn })
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Queues plaintext to send (held until the handshake is done).
    pub(super) fn write_plain(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.conn
            .writer()
            .write_all(data)
            .map_err(|e| TlsError::Protocol(e.to_string()))
    }

    /// Appends the records waiting to go to the server to `out`.
    pub(super) fn poll_transmit(&mut self, out: &mut BytesMut) {
        let mut w = out.writer();
        while self.conn.wants_write() {
            // Writing into memory cannot fail.
            match self.conn.write_tls(&mut w) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Feeds bytes read from the server; decrypted application data is appended to `plain`.
    pub(super) fn handle_input(
        &mut self,
        mut data: &[u8],
        plain: &mut BytesMut,
    ) -> Result<TlsInput, TlsError> {
        let mut state = TlsInput::Open;
        while !data.is_empty() {
            let n = self
                .conn
                .read_tls(&mut data)
                .map_err(|e| TlsError::Protocol(e.to_string()))?;
            let io = self
                .conn
                .process_new_packets()
                .map_err(TlsError::from_rustls)?;
            if io.peer_has_closed() {
                state = TlsInput::PeerClosed;
            }
            let ready = io.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plain.len();
                plain.resize(start + ready, 0);
                match self.conn.reader().read(&mut plain[start..]) {
                    Ok(got) => plain.truncate(start + got),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => plain.truncate(start),
                    Err(e) => return Err(TlsError::Protocol(e.to_string())),
                }
            }
            if n == 0 {
                break;
            }
        }
        Ok(state)
    }
}

/// `HandshakeFailure` as `handshake failure` (an alert's name as Go and OpenSSL print it).
fn words(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(fingerprint: Option<&str>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Protocol(e.to_string()))?;
    let config = match fingerprint {
        Some(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Fingerprint::new(fp)))
            .with_no_client_auth(),
        None => {
            let roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

/// Hex SHA-256 of a certificate's DER, lowercase: what `openssl x509 -noout -fingerprint
/// -sha256` prints, colons removed.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accepts exactly the server certificate whose fingerprint is pinned (MediaMTX's
/// `sourceFingerprint`), whatever its issuer, name or dates; the handshake signatures are still
/// checked against that certificate's key, so the server must hold its private key.
#[derive(Debug)]
struct Fingerprint {
    /// Lowercase hex.
    expected: String,
    provider: Arc<CryptoProvider>,
}

impl Fingerprint {
    fn new(expected: &str) -> Fingerprint {
        Fingerprint {
            expected: expected.to_ascii_lowercase(),
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for Fingerprint {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint_of(end_entity);
        if got == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = TlsError::FingerprintMismatch {
            expected: self.expected.clone(),
            got,
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection};

    /// A self-signed P-256 certificate for 127.0.0.1 and its key (test-only, made with
    /// `openssl req -x509 -newkey ec …`).
    const CERT: &[u8] = include_bytes!("testdata/tls_cert.der");
    const KEY: &[u8] = include_bytes!("testdata/tls_key.der");
    /// `openssl x509 -noout -fingerprint -sha256` of `CERT`, colons removed.
    const FINGERPRINT: &str = "0F22154EA347758177E565C4A9130B73DAD99AA5F6A23F8D515009FE317D7EE7";

    fn server() -> ServerConnection {
        let key = PrivateKeyDer::try_from(KEY.to_vec()).unwrap();
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(CERT.to_vec())], key)
            .unwrap();
        ServerConnection::new(Arc::new(config)).unwrap()
    }

    /// Drives a client and a server against each other in memory until neither has anything
    /// to send; returns the client's plaintext, or its first error.
    fn run(client: &mut TlsClient, server: &mut ServerConnection) -> Result<BytesMut, TlsError> {
        let mut plain = BytesMut::new();
        for _ in 0..20 {
            let mut to_server = BytesMut::new();
            client.poll_transmit(&mut to_server);
            let mut data = &to_server[..];
            while !data.is_empty() {
                server.read_tls(&mut data).unwrap();
            }
            // A failure here is the client's alert; what the client saw is the point.
            let _ = server.process_new_packets();
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut to_client).unwrap();
            }
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            let _ = client.handle_input(&to_client, &mut plain)?;
        }
        Ok(plain)
    }

    #[test]
    fn fingerprint_is_what_openssl_prints() {
        assert_eq!(fingerprint_of(CERT), FINGERPRINT.to_ascii_lowercase());
    }

    #[test]
    fn pinned_certificate_is_accepted_and_data_flows() {
        let mut client = TlsClient::new("127.0.0.1", Some(FINGERPRINT)).unwrap();
        let mut server = server();
        client
            .write_plain(b"GET /live/s.flv HTTP/1.1\r\n\r\n")
            .unwrap();
        assert!(client.is_handshaking());
        run(&mut client, &mut server).unwrap();
        assert!(!client.is_handshaking());
        let mut request = [0u8; 64];
        let n = server.reader().read(&mut request).unwrap();
        assert_eq!(&request[..n], b"GET /live/s.flv HTTP/1.1\r\n\r\n");
        server
            .writer()
            .write_all(b"HTTP/1.1 200 OK\r\n\r\nFLV")
            .unwrap();
        let plain = run(&mut client, &mut server).unwrap();
        assert_eq!(&plain[..], b"HTTP/1.1 200 OK\r\n\r\nFLV");
        server.send_close_notify();
        let mut tail = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut tail).unwrap();
        }
        let mut rest = BytesMut::new();
        assert_eq!(
            client.handle_input(&tail, &mut rest).unwrap(),
            TlsInput::PeerClosed
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn wrong_fingerprint_is_refused_in_mediamtx_words() {
        let wrong = "ab".repeat(32);
        let mut client = TlsClient::new("127.0.0.1", Some(&wrong)).unwrap();
        let e = run(&mut client, &mut server()).unwrap_err();
        assert_eq!(
            e,
            TlsError::FingerprintMismatch {
                expected: wrong.clone(),
                got: FINGERPRINT.to_ascii_lowercase(),
            }
        );
        assert_eq!(
            e.to_string(),
            format!(
                "source fingerprint does not match: expected {wrong}, got {}",
                FINGERPRINT.to_ascii_lowercase()
            )
        );
    }

    #[test]
    fn unpinned_self_signed_certificate_is_unknown() {
        let mut client = TlsClient::new("127.0.0.1", None).unwrap();
        let e = run(&mut client, &mut server()).unwrap_err();
        assert_eq!(e, TlsError::SelfSigned);
    }

    #[test]
    fn alerts_and_garbage_are_reported() {
        let mut client = TlsClient::new("127.0.0.1", None).unwrap();
        let mut out = BytesMut::new();
        client.poll_transmit(&mut out);
        // A handshake_failure alert: what a server with no common cipher answers.
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
        let e = client
            .handle_input(&alert, &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(e.to_string(), "tls: remote error: handshake failure");
        // A plain HTTP server on a TLS port.
        let mut client = TlsClient::new("127.0.0.1", None).unwrap();
        client.poll_transmit(&mut out);
        let e = client
            .handle_input(b"HTTP/1.1 400 Bad Request\r\n\r\n", &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(e, TlsError::Protocol(_)), "{e:?}");
        assert!(TlsClient::new("bad name!", None).is_err());
    }
}
