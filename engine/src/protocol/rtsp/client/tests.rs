use super::*;

fn drain(c: &mut Client) -> String {
    let mut out = BytesMut::new();
    c.poll_transmit(&mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

fn events(c: &mut Client) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:stream=0\r\n\
m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=control:stream=1\r\n";

fn describe_ok(cseq: u32) -> String {
    format!(
        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://cam:8554/test/\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

#[test]
fn full_session_over_tcp_with_keepalive_and_teardown() {
    let t0 = Instant::now();
    let url = RtspUrl::parse("rtsp://cam:8554/test").unwrap();
    let mut c = Client::new(url, "corestream", "cn");
    assert_eq!(
        drain(&mut c),
        "OPTIONS rtsp://cam:8554/test RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: corestream\r\n\r\n"
    );
    c.handle_input(
        t0,
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        drain(&mut c),
        "DESCRIBE rtsp://cam:8554/test RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: corestream\r\n\
         Accept: application/sdp\r\n\r\n"
    );
    c.handle_input(t0, describe_ok(2).as_bytes()).unwrap();
    let ev = events(&mut c);
    let [ClientEvent::Described(sdp)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(sdp.tracks.len(), 2);
    c.setup(&[0, 1]).unwrap();
    assert_eq!(
        drain(&mut c),
        "SETUP rtsp://cam:8554/test/stream=0 RTSP/1.0\r\nCSeq: 3\r\nUser-Agent: corestream\r\n\
         Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    );
    c.handle_input(
        t0,
        b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\
          Session: 7f3a;timeout=10\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        drain(&mut c),
        "SETUP rtsp://cam:8554/test/stream=1 RTSP/1.0\r\nCSeq: 4\r\nUser-Agent: corestream\r\n\
         Session: 7f3a\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n"
    );
    // The server picks other channels: they are followed.
    c.handle_input(
        t0,
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n\
          Session: 7f3a;timeout=10\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        drain(&mut c),
        "PLAY rtsp://cam:8554/test/ RTSP/1.0\r\nCSeq: 5\r\nUser-Agent: corestream\r\n\
         Session: 7f3a\r\nRange: npt=0.000-\r\n\r\n"
    );
    let mut play = b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 7f3a\r\n\
          RTP-Info: url=rtsp://cam:8554/test/stream=0;seq=100;rtptime=9000, \
          url=rtsp://cam:8554/test/stream=1;seq=7;rtptime=4410\r\n\r\n"
        .to_vec();
    play.extend_from_slice(&[
        b'$', 0, 0, 2, 0x80, 0x60, b'$', 5, 0, 1, 0xc8, b'$', 4, 0, 1, 0x80,
    ]);
    c.handle_input(t0, &play).unwrap();
    assert_eq!(
        events(&mut c),
        [
            ClientEvent::Playing {
                rtp_info: vec![
                    RtpInfo {
                        track: 0,
                        seq: Some(100),
                        rtptime: Some(9000)
                    },
                    RtpInfo {
                        track: 1,
                        seq: Some(7),
                        rtptime: Some(4410)
                    }
                ]
            },
            ClientEvent::Rtp {
                track: 0,
                packet: Bytes::from_static(&[0x80, 0x60])
            },
            ClientEvent::Rtcp {
                track: 1,
                packet: Bytes::from_static(&[0xc8])
            },
            ClientEvent::Rtp {
                track: 1,
                packet: Bytes::from_static(&[0x80])
            },
        ]
    );
    // Keep-alive at half the 10 s session timeout, GET_PARAMETER since the server has it.
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    c.handle_timeout(t0 + Duration::from_secs(4));
    assert_eq!(drain(&mut c), "");
    c.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        drain(&mut c),
        "GET_PARAMETER rtsp://cam:8554/test/ RTSP/1.0\r\nCSeq: 6\r\nUser-Agent: corestream\r\n\
         Session: 7f3a\r\n\r\n"
    );
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 6\r\n\r\n")
        .unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // Receiver reports go on each track's RTCP channel, the one the server chose.
    c.send_rtcp(1, &[0x81, 201]);
    c.send_rtcp(9, &[1]);
    let mut out = BytesMut::new();
    c.poll_transmit(&mut out);
    assert_eq!(&out[..], &[b'$', 5, 0, 2, 0x81, 201]);
    // A server's own request is answered.
    c.handle_input(t0, b"OPTIONS * RTSP/1.0\r\nCSeq: 40\r\n\r\n")
        .unwrap();
    assert_eq!(drain(&mut c), "RTSP/1.0 200 OK\r\nCSeq: 40\r\n\r\n");
    c.teardown();
    assert_eq!(
        drain(&mut c),
        "TEARDOWN rtsp://cam:8554/test/ RTSP/1.0\r\nCSeq: 7\r\nUser-Agent: corestream\r\n\
         Session: 7f3a\r\n\r\n"
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn digest_challenge_is_answered_once() {
    let t0 = Instant::now();
    let url = RtspUrl::parse("rtsp://user:pass@cam/s").unwrap();
    let mut c = Client::new(url, "corestream", "cn");
    drain(&mut c);
    let challenge = "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\
        WWW-Authenticate: Digest realm=\"GStreamer RTSP Server\", nonce=\"0123\"\r\n\
        WWW-Authenticate: Basic realm=\"GStreamer RTSP Server\"\r\n\r\n";
    c.handle_input(t0, challenge.as_bytes()).unwrap();
    let ch = Challenge::parse("Digest realm=\"GStreamer RTSP Server\", nonce=\"0123\"").unwrap();
    let auth = ch.authorization("user", "pass", "OPTIONS", "rtsp://cam/s", 1, "cn");
    assert_eq!(
        drain(&mut c),
        format!(
            "OPTIONS rtsp://cam/s RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: corestream\r\n\
             Authorization: {auth}\r\n\r\n"
        )
    );
    // The same refusal again: wrong credentials, reported as the server said it.
    let again = challenge.replace("CSeq: 1", "CSeq: 2");
    let e = c.handle_input(t0, again.as_bytes()).unwrap_err();
    assert_eq!(e.to_string(), "OPTIONS: rtsp status 401 Unauthorized");
}

#[test]
fn a_stale_nonce_is_renewed_once() {
    let t0 = Instant::now();
    let url = RtspUrl::parse("rtsp://user:pass@cam/s").unwrap();
    let mut c = Client::new(url, "cs", "cn");
    drain(&mut c);
    c.handle_input(
        t0,
        b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n1\"\r\n\r\n",
    )
    .unwrap();
    assert!(drain(&mut c).contains("nonce=\"n1\""));
    let stale = |cseq: u32, nonce: &str| {
        format!(
            "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", stale=TRUE\r\n\r\n"
        )
    };
    c.handle_input(t0, stale(2, "n2").as_bytes()).unwrap();
    let resent = drain(&mut c);
    assert!(
        resent.starts_with("OPTIONS rtsp://cam/s RTSP/1.0\r\nCSeq: 3\r\n"),
        "{resent}"
    );
    assert!(resent.contains("nonce=\"n2\""), "{resent}");
    // Stale again for the same request: that is a refusal, not a loop.
    let e = c.handle_input(t0, stale(3, "n3").as_bytes()).unwrap_err();
    assert!(matches!(e, RtspError::Status { status: 401, .. }), "{e}");
}

#[test]
fn no_credentials_means_401_is_final_and_404_is_reported() {
    let t0 = Instant::now();
    let mut c = Client::new(RtspUrl::parse("rtsp://cam/s").unwrap(), "cs", "");
    c.handle_input(
        t0,
        b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n",
    )
    .unwrap_err();
    let mut c = Client::new(RtspUrl::parse("rtsp://cam/nope").unwrap(), "cs", "");
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    let e = c
        .handle_input(t0, b"RTSP/1.0 404 Not Found\r\nCSeq: 2\r\n\r\n")
        .unwrap_err();
    assert_eq!(e.to_string(), "DESCRIBE: rtsp status 404 Not Found");
}

#[test]
fn redirects_name_the_new_url() {
    let t0 = Instant::now();
    let mut c = Client::new(RtspUrl::parse("rtsp://cam/s").unwrap(), "cs", "");
    c.handle_input(
        t0,
        b"RTSP/1.0 302 Moved Temporarily\r\nCSeq: 1\r\nLocation: rtsp://other:8554/s2\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        events(&mut c),
        [ClientEvent::Redirect(
            RtspUrl::parse("rtsp://other:8554/s2").unwrap()
        )]
    );
    let mut c = Client::new(RtspUrl::parse("rtsp://cam/s").unwrap(), "cs", "");
    let e = c
        .handle_input(t0, b"RTSP/1.0 301 Moved\r\nCSeq: 1\r\n\r\n")
        .unwrap_err();
    assert!(matches!(e, RtspError::BadRedirect { status: 301, .. }));
}

#[test]
fn udp_only_answers_are_refused() {
    let t0 = Instant::now();
    let mut c = Client::new(RtspUrl::parse("rtsp://cam/test").unwrap(), "cs", "");
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    c.handle_input(t0, describe_ok(2).as_bytes()).unwrap();
    let _ = events(&mut c);
    c.setup(&[0]).unwrap();
    let e = c
        .handle_input(
            t0,
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\nSession: 1\r\n\r\n",
        )
        .unwrap_err();
    assert!(matches!(e, RtspError::Transport(_)), "{e}");
}

#[test]
fn answer_without_interleaved_keeps_the_channels_asked_for() {
    let t0 = Instant::now();
    let mut c = Client::new(RtspUrl::parse("rtsp://cam/test").unwrap(), "cs", "");
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    c.handle_input(t0, describe_ok(2).as_bytes()).unwrap();
    let _ = events(&mut c);
    c.setup(&[1]).unwrap();
    c.handle_input(
        t0,
        b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast\r\nSession: 1\r\n\r\n",
    )
    .unwrap();
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n$\x00\x00\x01\x80")
        .unwrap();
    let ev = events(&mut c);
    assert_eq!(
        ev[1],
        ClientEvent::Rtp {
            track: 1,
            packet: Bytes::from_static(&[0x80])
        },
        "{ev:?}"
    );
}

#[test]
fn transport_headers_built_and_parsed() {
    assert_eq!(
        TransportSpec::request_udp(50000),
        "RTP/AVP;unicast;client_port=50000-50001"
    );
    assert_eq!(
        TransportSpec::request_tcp(2),
        "RTP/AVP/TCP;unicast;interleaved=2-3"
    );
    let s = TransportSpec::parse(
        "RTP/AVP;unicast;client_port=50000-50001;server_port=6970-6971;ssrc=1234ABCD;mode=\"PLAY\"",
    );
    assert_eq!(
        s,
        TransportSpec {
            tcp: false,
            interleaved: None,
            client_port: Some((50000, 50001)),
            server_port: Some((6970, 6971)),
        }
    );
    // `RTP/AVP/UDP` is UDP too; a lone port puts RTCP one above.
    let s = TransportSpec::parse("RTP/AVP/UDP;unicast;server_port=7000");
    assert!(!s.tcp);
    assert_eq!(s.server_port, Some((7000, 7001)));
    let s = TransportSpec::parse("RTP/AVP/TCP;unicast;interleaved=4-5");
    assert!(s.tcp);
    assert_eq!(s.interleaved, Some(4));
    assert_eq!(s.server_port, None);
    // Garbage ports are left out rather than guessed.
    assert_eq!(
        TransportSpec::parse("RTP/AVP;server_port=x-y").server_port,
        None
    );
    assert_eq!(
        TransportSpec::parse("RTP/AVP;server_port=65535").server_port,
        None
    );
}

#[test]
fn session_over_udp_reads_server_ports() {
    let t0 = Instant::now();
    let url = RtspUrl::parse("rtsp://cam:8554/test").unwrap();
    let mut c = Client::new(url, "corestream", "cn");
    drain(&mut c);
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS\r\n\r\n")
        .unwrap();
    drain(&mut c);
    c.handle_input(t0, describe_ok(2).as_bytes()).unwrap();
    let _ = events(&mut c);
    assert!(c
        .setup_with(&[0, 1], RtpTransport::Udp(vec![50000]))
        .is_err());
    c.setup_with(&[0, 1], RtpTransport::Udp(vec![50000, 50002]))
        .unwrap();
    assert!(c.is_udp());
    assert!(drain(&mut c).contains("Transport: RTP/AVP;unicast;client_port=50000-50001\r\n"));
    c.handle_input(
        t0,
        b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=50000-50001;\
          server_port=6970-6971\r\nSession: 7f3a\r\n\r\n",
    )
    .unwrap();
    assert!(drain(&mut c).contains("Transport: RTP/AVP;unicast;client_port=50002-50003\r\n"));
    c.handle_input(
        t0,
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nTransport: RTP/AVP;unicast;client_port=50002-50003;\
          server_port=6972-6973\r\nSession: 7f3a\r\n\r\n",
    )
    .unwrap();
    assert!(drain(&mut c).starts_with("PLAY "));
    assert_eq!(c.server_ports(0), Some((6970, 6971)));
    assert_eq!(c.server_ports(1), Some((6972, 6973)));
    assert_eq!(c.server_ports(2), None);
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 7f3a\r\n\r\n")
        .unwrap();
    assert!(matches!(events(&mut c)[..], [ClientEvent::Playing { .. }]));
    // Over UDP the caller sends RTCP itself; interleaved data is not expected.
    c.send_rtcp(0, &[0x81, 201, 0, 1, 0, 0, 0, 1]);
    assert_eq!(drain(&mut c), "");
    c.handle_input(t0, &[b'$', 0, 0, 2, 0x80, 0x60]).unwrap();
    assert!(events(&mut c).is_empty());
}

#[test]
fn udp_refused_with_461_ends_the_session_with_the_status() {
    let t0 = Instant::now();
    let url = RtspUrl::parse("rtsp://cam:8554/test").unwrap();
    let mut c = Client::new(url, "corestream", "cn");
    drain(&mut c);
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    c.handle_input(t0, describe_ok(2).as_bytes()).unwrap();
    let _ = events(&mut c);
    c.setup_with(&[0], RtpTransport::Udp(vec![50000])).unwrap();
    let e = c
        .handle_input(t0, b"RTSP/1.0 461 Unsupported Transport\r\nCSeq: 3\r\n\r\n")
        .unwrap_err();
    assert!(
        matches!(
            e,
            RtspError::Status {
                method: "SETUP",
                status: 461,
                ..
            }
        ),
        "{e}"
    );
    // A server that answers UDP with TCP is refused.
    let url = RtspUrl::parse("rtsp://cam:8554/test").unwrap();
    let mut c = Client::new(url, "corestream", "cn");
    c.handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    c.handle_input(t0, describe_ok(2).as_bytes()).unwrap();
    let _ = events(&mut c);
    c.setup_with(&[0], RtpTransport::Udp(vec![50000])).unwrap();
    let e = c
        .handle_input(
            t0,
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\nSession: 1\r\n\r\n",
        )
        .unwrap_err();
    assert!(matches!(e, RtspError::UdpTransport(_)), "{e}");
}
