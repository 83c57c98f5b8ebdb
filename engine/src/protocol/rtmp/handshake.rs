//! The RTMP handshake, server and client sides: C0/C1/C2 and S0/S1/S2, version 3.
//!
//! Two flavours exist in the wild. The *simple* handshake (the published specification) echoes
//! random bytes. The *complex* (digest) handshake, used by Flash, ffmpeg and OBS, hides an
//! HMAC-SHA256 digest in C1/S1 at an offset derived from the packet itself (scheme 0: from the
//! bytes at 8..12, scheme 1: from the bytes at 772..776), keyed with the "Genuine Adobe Flash
//! Player 001" / "Genuine Adobe Flash Media Server 001" constants; C2/S2 end with a digest keyed
//! by the peer's C1/S1 digest. The server answers in kind: a complex S1/S2 when C1 carries a valid
//! digest, the simple echo otherwise.
//!
//! Both sides are fed raw bytes and hand back what to send; when the handshake is over they
//! return the bytes they were given beyond it ([`HandshakeProgress::Completed`]), which belong to
//! the chunk stream. Randomness comes from the caller's RNG, once, at construction.
#![forbid(unsafe_code)]

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use thiserror::Error;

/// The only plain-text RTMP version (6 is RTMPE, which we do not speak).
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
const DIGEST_LEN: usize = 32;

/// Key for client digests: the first 30 bytes sign C1, all 62 derive the C2 key.
pub(crate) const GENUINE_FP_KEY: [u8; 62] = *b"Genuine Adobe Flash Player 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
/// Key for server digests: the first 36 bytes sign S1, all 68 derive the S2 key.
pub(crate) const GENUINE_FMS_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
const FP_KEY_SHORT: usize = 30;
const FMS_KEY_SHORT: usize = 36;

/// Version we put in a complex C1 (what ffmpeg sends: 9.0.124.2).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];
/// Version we put in a complex S1 (FMS 4.5.0.1, as common servers do).
const SERVER_VERSION: [u8; 4] = [4, 5, 0, 1];

/// Ways a peer's handshake can be unusable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("unsupported rtmp version {version} (expected 3)")]
    UnsupportedVersion { version: u8 },
    #[error("input after the handshake completed")]
    AlreadyCompleted,
}

/// Where a handshake stands after some input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum HandshakeProgress {
    /// More input is needed. `response` (possibly empty) must be sent to the peer.
    InProgress { response: Bytes },
    /// The handshake is over: send `response` (possibly empty), then feed `remaining` to the
    /// chunk decoder — they are the first bytes of the chunk stream.
    Completed { response: Bytes, remaining: Bytes },
}

/// Where the digest sits in a C1 or S1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestScheme {
    /// Offset computed from bytes 8..12 (ffmpeg and OBS, unencrypted).
    Scheme0,
    /// Offset computed from bytes 772..776.
    Scheme1,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of every length, so `new_from_slice` never fails; the fallback only
    // exists so that no panic path remains.
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Offset of the 32-byte digest in a 1536-byte C1/S1.
pub fn digest_offset(packet: &[u8], scheme: DigestScheme) -> usize {
    let base = match scheme {
        DigestScheme::Scheme0 => 8,
        DigestScheme::Scheme1 => 772,
    };
    let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
    sum % 728 + base + 4
}

/// The digest of `packet` with the 32 bytes at `offset` left out.
fn packet_digest(packet: &[u8], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..offset], &packet[offset + DIGEST_LEN..]])
}

/// Finds a valid digest in `packet` (1536 bytes) under `key`, trying scheme 0 then 1.
pub fn find_digest(packet: &[u8], key: &[u8]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    if packet.len() != HANDSHAKE_SIZE {
        return None;
    }
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|scheme| {
            let off = digest_offset(packet, scheme);
            let digest = packet_digest(packet, off, key);
            (packet[off..off + DIGEST_LEN] == digest).then_some((scheme, digest))
        })
}

/// Writes the digest of `packet` under `key` at the scheme's offset and returns it.
fn imprint_digest(packet: &mut [u8], scheme: DigestScheme, key: &[u8]) -> [u8; DIGEST_LEN] {
    let off = digest_offset(packet, scheme);
    let digest = packet_digest(packet, off, key);
    packet[off..off + DIGEST_LEN].copy_from_slice(&digest);
    digest
}

/// Writes the C2/S2 signature: the last 32 bytes, keyed by HMAC(`long_key`, peer digest).
fn sign_response(packet: &mut [u8], long_key: &[u8], peer_digest: &[u8]) {
    let key = hmac_sha256(long_key, &[peer_digest]);
    let split = HANDSHAKE_SIZE - DIGEST_LEN;
    let sig = hmac_sha256(&key, &[&packet[..split]]);
    packet[split..].copy_from_slice(&sig);
}

/// Whether a C2/S2 carries the signature derived from `peer_digest`.
pub fn verify_response(packet: &[u8], long_key: &[u8], peer_digest: &[u8]) -> bool {
    if packet.len() != HANDSHAKE_SIZE {
        return false;
    }
    let key = hmac_sha256(long_key, &[peer_digest]);
    let split = HANDSHAKE_SIZE - DIGEST_LEN;
    hmac_sha256(&key, &[&packet[..split]])[..] == packet[split..]
}

/// Buffers the peer's first packet (C0 C1 or S0 S1) and splits it off once it is whole. A wrong
/// version is refused on its first byte, before the rest is buffered.
fn take_first_packet(buf: &mut BytesMut, input: &[u8]) -> Result<Option<BytesMut>, HandshakeError> {
    const LEN: usize = 1 + HANDSHAKE_SIZE;
    if let Some(&version) = buf.first().or(input.first()) {
        if version != RTMP_VERSION {
            return Err(HandshakeError::UnsupportedVersion { version });
        }
    }
    buf.extend_from_slice(input);
    Ok((buf.len() >= LEN).then(|| buf.split_to(LEN)))
}

/// Splits the peer's second packet (C2 or S2) off `buf` once it is whole, with what followed
/// it: the first bytes of the chunk stream.
fn take_second_packet(buf: &mut BytesMut) -> Option<(BytesMut, Bytes)> {
    if buf.len() < HANDSHAKE_SIZE {
        return None;
    }
    let packet = buf.split_to(HANDSHAKE_SIZE);
    Some((packet, std::mem::take(buf).freeze()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    ExpectC0C1,
    ExpectC2,
    Done,
}

/// Server side of the handshake: feed it what the client sends until it reports `Completed`.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    buf: BytesMut,
    /// Random filler for S1 and S2, drawn at construction.
    random: Box<[u8; 2 * HANDSHAKE_SIZE]>,
    /// Which flavour the client used, once C1 is in (for logs and tests).
    scheme: Option<DigestScheme>,
}

impl ServerHandshake {
    pub fn new(rng: &mut impl RngCore) -> Self {
        let mut random = Box::new([0u8; 2 * HANDSHAKE_SIZE]);
        rng.fill_bytes(&mut random[..]);
        Self {
            state: ServerState::ExpectC0C1,
            buf: BytesMut::with_capacity(1 + HANDSHAKE_SIZE),
            random,
            scheme: None,
        }
    }

    /// The digest scheme of the client's C1, `None` for a simple handshake (or before C1).
    pub fn client_scheme(&self) -> Option<DigestScheme> {
        self.scheme
    }

    pub fn handle_input(&mut self, input: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        match self.state {
            ServerState::ExpectC0C1 => {
                let Some(c0c1) = take_first_packet(&mut self.buf, input)? else {
                    return Ok(HandshakeProgress::InProgress {
                        response: Bytes::new(),
                    });
                };
                let response = self.respond(&c0c1[1..]);
                self.state = ServerState::ExpectC2;
                // C2 may already be here.
                self.after_c1(response)
            }
            ServerState::ExpectC2 => self.after_c1_input(input),
            ServerState::Done => Err(HandshakeError::AlreadyCompleted),
        }
    }

    fn after_c1_input(&mut self, input: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        self.buf.extend_from_slice(input);
        self.after_c1(Bytes::new())
    }

    fn after_c1(&mut self, response: Bytes) -> Result<HandshakeProgress, HandshakeError> {
        // C2 is not checked: clients disagree on what it holds and it proves nothing we need.
        let Some((_c2, remaining)) = take_second_packet(&mut self.buf) else {
            return Ok(HandshakeProgress::InProgress { response });
        };
        self.state = ServerState::Done;
        Ok(HandshakeProgress::Completed {
            response,
            remaining,
        })
    }

    /// Builds S0 S1 S2 for the given C1.
    fn respond(&mut self, c1: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        let (s1_random, s2_random) = self.random.split_at(HANDSHAKE_SIZE);
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        s1.copy_from_slice(s1_random);
        s1[0..4].fill(0); // our epoch
        let client_digest = if c1[4..8] == [0, 0, 0, 0] {
            None
        } else {
            find_digest(c1, &GENUINE_FP_KEY[..FP_KEY_SHORT])
        };
        match client_digest {
            Some((scheme, c1_digest)) => {
                self.scheme = Some(scheme);
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                imprint_digest(&mut s1, scheme, &GENUINE_FMS_KEY[..FMS_KEY_SHORT]);
                out.put_slice(&s1);
                let mut s2 = [0u8; HANDSHAKE_SIZE];
                s2.copy_from_slice(s2_random);
                sign_response(&mut s2, &GENUINE_FMS_KEY, &c1_digest);
                out.put_slice(&s2);
            }
            None => {
                s1[4..8].fill(0);
                out.put_slice(&s1);
                // Simple handshake: S2 echoes C1.
                out.put_slice(c1);
            }
        }
        out.freeze()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    ExpectS0S1,
    ExpectS2,
    Done,
}

/// Client side of the handshake, complex (digest, scheme 0) like ffmpeg.
///
/// Send [`ClientHandshake::c0c1`] first, then feed what the server sends. C2 goes out as soon
/// as S1 is in; the handshake completes once S2 is in.
#[derive(Debug)]
pub struct ClientHandshake {
    state: ClientState,
    buf: BytesMut,
    c0c1: Bytes,
    c1_digest: [u8; DIGEST_LEN],
    /// Random filler for C2.
    c2_random: Box<[u8; HANDSHAKE_SIZE]>,
    /// Whether S1 carried a valid server digest.
    server_digest: Option<[u8; DIGEST_LEN]>,
    /// Whether S2 was signed over our C1 digest (complex servers only).
    s2_verified: bool,
}

impl ClientHandshake {
    pub fn new(rng: &mut impl RngCore) -> Self {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        rng.fill_bytes(&mut c1);
        c1[0..4].fill(0);
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        let c1_digest = imprint_digest(
            &mut c1,
            DigestScheme::Scheme0,
            &GENUINE_FP_KEY[..FP_KEY_SHORT],
        );
        let mut c0c1 = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        c0c1.put_u8(RTMP_VERSION);
        c0c1.put_slice(&c1);
        let mut c2_random = Box::new([0u8; HANDSHAKE_SIZE]);
        rng.fill_bytes(&mut c2_random[..]);
        Self {
            state: ClientState::ExpectS0S1,
            buf: BytesMut::new(),
            c0c1: c0c1.freeze(),
            c1_digest,
            c2_random,
            server_digest: None,
            s2_verified: false,
        }
    }

    /// C0 and C1: the first bytes the client sends.
    pub fn c0c1(&self) -> Bytes {
        self.c0c1.clone()
    }

    /// Whether the server answered with a complex handshake whose S2 verified.
    pub fn server_verified(&self) -> bool {
        self.server_digest.is_some() && self.s2_verified
    }

    pub fn handle_input(&mut self, input: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        match self.state {
            ClientState::ExpectS0S1 => {
                let Some(s0s1) = take_first_packet(&mut self.buf, input)? else {
                    return Ok(HandshakeProgress::InProgress {
                        response: Bytes::new(),
                    });
                };
                let s1 = &s0s1[1..];
                let mut c2 = [0u8; HANDSHAKE_SIZE];
                self.server_digest = if s1[4..8] == [0, 0, 0, 0] {
                    None
                } else {
                    find_digest(s1, &GENUINE_FMS_KEY[..FMS_KEY_SHORT]).map(|(_, d)| d)
                };
                match self.server_digest {
                    Some(s1_digest) => {
                        c2.copy_from_slice(&self.c2_random[..]);
                        sign_response(&mut c2, &GENUINE_FP_KEY, &s1_digest);
                    }
                    None => c2.copy_from_slice(s1),
                }
                self.state = ClientState::ExpectS2;
                self.after_s1(Bytes::copy_from_slice(&c2))
            }
            ClientState::ExpectS2 => {
                self.buf.extend_from_slice(input);
                self.after_s1(Bytes::new())
            }
            ClientState::Done => Err(HandshakeError::AlreadyCompleted),
        }
    }

    fn after_s1(&mut self, response: Bytes) -> Result<HandshakeProgress, HandshakeError> {
        let Some((s2, remaining)) = take_second_packet(&mut self.buf) else {
            return Ok(HandshakeProgress::InProgress { response });
        };
        // Not fatal: plenty of servers sign S2 loosely or echo C1; we only record it.
        self.s2_verified = verify_response(&s2, &GENUINE_FMS_KEY, &self.c1_digest);
        self.state = ClientState::Done;
        Ok(HandshakeProgress::Completed {
            response,
            remaining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A C1 like ffmpeg's: time 0, version 9.0.124.2, filler `(i * 37 + 11) mod 256`, and the
    /// scheme-0 digest at offset 438, computed independently (Python's `hmac` module).
    fn known_c1() -> Vec<u8> {
        let mut c1 = vec![0u8; HANDSHAKE_SIZE];
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = ((i * 37 + 11) & 0xff) as u8;
        }
        assert_eq!(digest_offset(&c1, DigestScheme::Scheme0), 438);
        c1[438..470].copy_from_slice(&hex(
            "335c28c8d311a6091ad0bd6790a26bf416b238604854417c50aa64b115b4cfe6",
        ));
        c1
    }

    #[test]
    fn known_complex_c1_is_accepted_and_answered_with_valid_digests() {
        let c1 = known_c1();
        let mut server = ServerHandshake::new(&mut StdRng::seed_from_u64(1));
        let mut input = vec![RTMP_VERSION];
        input.extend_from_slice(&c1);
        let HandshakeProgress::InProgress { response } = server.handle_input(&input).unwrap()
        else {
            panic!("completed before C2");
        };
        assert_eq!(server.client_scheme(), Some(DigestScheme::Scheme0));
        assert_eq!(response.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(response[0], RTMP_VERSION);
        let s1 = &response[1..1 + HANDSHAKE_SIZE];
        let s2 = &response[1 + HANDSHAKE_SIZE..];
        let (scheme, _) = find_digest(s1, &GENUINE_FMS_KEY[..36]).expect("S1 digest");
        assert_eq!(scheme, DigestScheme::Scheme0);
        let c1_digest = &c1[438..470];
        assert!(verify_response(s2, &GENUINE_FMS_KEY, c1_digest));

        // C2 plus the first chunk bytes: those come back as `remaining`.
        let mut c2 = vec![0u8; HANDSHAKE_SIZE];
        c2.extend_from_slice(&[0x02, 0xaa]);
        let HandshakeProgress::Completed {
            response,
            remaining,
        } = server.handle_input(&c2).unwrap()
        else {
            panic!("not completed");
        };
        assert!(response.is_empty());
        assert_eq!(&remaining[..], &[0x02, 0xaa]);
        assert_eq!(
            server.handle_input(&[1]),
            Err(HandshakeError::AlreadyCompleted)
        );
    }

    #[test]
    fn scheme1_digest_is_found() {
        let mut c1 = known_c1();
        c1[438..470].fill(0);
        let d = imprint_digest(&mut c1, DigestScheme::Scheme1, &GENUINE_FP_KEY[..30]);
        assert_eq!(
            find_digest(&c1, &GENUINE_FP_KEY[..30]),
            Some((DigestScheme::Scheme1, d))
        );
    }

    #[test]
    fn simple_c1_gets_an_echo() {
        let mut c1 = known_c1();
        c1[4..8].fill(0);
        let mut server = ServerHandshake::new(&mut StdRng::seed_from_u64(2));
        let mut input = vec![RTMP_VERSION];
        input.extend_from_slice(&c1);
        input.extend_from_slice(&[0u8; HANDSHAKE_SIZE]); // C2 in the same read
        let HandshakeProgress::Completed {
            response,
            remaining,
        } = server.handle_input(&input).unwrap()
        else {
            panic!("not completed");
        };
        assert!(remaining.is_empty());
        assert_eq!(server.client_scheme(), None);
        assert_eq!(&response[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn digest_mismatch_falls_back_to_simple() {
        let mut c1 = known_c1();
        c1[500] ^= 1; // breaks the digest
        let mut server = ServerHandshake::new(&mut StdRng::seed_from_u64(3));
        let mut input = vec![RTMP_VERSION];
        input.extend_from_slice(&c1);
        let HandshakeProgress::InProgress { response } = server.handle_input(&input).unwrap()
        else {
            panic!()
        };
        assert_eq!(server.client_scheme(), None);
        assert_eq!(&response[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn wrong_version_is_refused() {
        let mut server = ServerHandshake::new(&mut StdRng::seed_from_u64(4));
        assert_eq!(
            server.handle_input(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::UnsupportedVersion { version: b'G' })
        );
        let mut client = ClientHandshake::new(&mut StdRng::seed_from_u64(4));
        assert_eq!(
            client.handle_input(&[6]),
            Err(HandshakeError::UnsupportedVersion { version: 6 })
        );
    }

    #[test]
    fn client_and_server_complete_byte_by_byte() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut client = ClientHandshake::new(&mut rng);
        let mut server = ServerHandshake::new(&mut rng);
        let c0c1 = client.c0c1();
        let mut s_out = Vec::new();
        for b in c0c1.iter() {
            match server.handle_input(&[*b]).unwrap() {
                HandshakeProgress::InProgress { response } => s_out.extend_from_slice(&response),
                HandshakeProgress::Completed { .. } => panic!("early"),
            }
        }
        assert_eq!(server.client_scheme(), Some(DigestScheme::Scheme0));
        let HandshakeProgress::Completed {
            response: c2,
            remaining,
        } = client.handle_input(&s_out).unwrap()
        else {
            panic!("S0 S1 S2 all arrived")
        };
        assert!(remaining.is_empty());
        assert!(client.server_verified());
        // The server's C2 check is lenient, but ours is signed over the S1 digest.
        let (_, s1_digest) =
            find_digest(&s_out[1..1 + HANDSHAKE_SIZE], &GENUINE_FMS_KEY[..36]).unwrap();
        assert!(verify_response(&c2, &GENUINE_FP_KEY, &s1_digest));
        assert!(matches!(
            server.handle_input(&c2).unwrap(),
            HandshakeProgress::Completed { .. }
        ));
    }
}
