//! `Pair`: a [`ClientSession`] and a [`ServerSession`] wired together in memory, so protocol
//! flows are tested without sockets. There is no simulated clock: RTMP has no timers.
#![forbid(unsafe_code)]

use bytes::{Bytes, BytesMut};

use super::chunk::{encode_message, ChunkDecoder, RawMessage};
use super::client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use super::handshake::HANDSHAKE_SIZE;
use super::message::{Command, Message};
use super::session::{RequestId, ServerEvent, ServerSession, SessionConfig, SessionError};

pub(crate) struct Pair {
    pub(crate) client: ClientSession,
    pub(crate) server: ServerSession,
    pub(crate) server_events: Vec<ServerEvent>,
    pub(crate) client_events: Vec<ClientEvent>,
    /// Largest piece handed to `handle_input` at once (1 exercises every partial read).
    pub(crate) segment: usize,
    /// Everything the server sent, for byte-level checks.
    pub(crate) server_sent: Vec<u8>,
}

impl Pair {
    pub(crate) fn new(client: ClientConfig, server: SessionConfig) -> Self {
        Self {
            client: ClientSession::new(client),
            server: ServerSession::new(server),
            server_events: Vec::new(),
            client_events: Vec::new(),
            segment: usize::MAX,
            server_sent: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything to send.
    pub(crate) fn run(&mut self) -> Result<(), SessionError> {
        loop {
            let mut moved = false;
            let mut buf = BytesMut::new();
            if self.client.poll_transmit(&mut buf) {
                moved = true;
                for piece in buf.chunks(self.segment) {
                    self.server.handle_input(piece)?;
                }
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            let mut buf = BytesMut::new();
            if self.server.poll_transmit(&mut buf) {
                moved = true;
                self.server_sent.extend_from_slice(&buf);
                for piece in buf.chunks(self.segment) {
                    self.client.handle_input(piece)?;
                }
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            if !moved {
                return Ok(());
            }
        }
    }

    /// Runs until the server asks about a publish, and returns that request.
    pub(crate) fn publish_request(&mut self) -> RequestId {
        self.run().unwrap();
        self.server_events
            .iter()
            .find_map(|e| match e {
                ServerEvent::PublishRequested { request, .. } => Some(*request),
                _ => None,
            })
            .expect("no PublishRequested")
    }

    pub(crate) fn play_request(&mut self) -> RequestId {
        self.run().unwrap();
        self.server_events
            .iter()
            .find_map(|e| match e {
                ServerEvent::PlayRequested { request, .. } => Some(*request),
                _ => None,
            })
            .expect("no PlayRequested")
    }

    /// Every message the server sent after the handshake.
    pub(crate) fn server_messages(&self) -> Vec<Message> {
        let mut input = BytesMut::from(&self.server_sent[1 + 2 * HANDSHAKE_SIZE..]);
        let mut dec = ChunkDecoder::default();
        let mut out = Vec::new();
        while let Some(raw) = dec.decode(&mut input).unwrap() {
            out.push(Message::decode(&raw).unwrap());
        }
        assert!(input.is_empty());
        out
    }

    pub(crate) fn server_commands(&self) -> Vec<Command> {
        self.server_messages()
            .into_iter()
            .filter_map(|m| match m {
                Message::Command(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Media the client received.
    pub(crate) fn client_media(&self) -> Vec<crate::media::Frame> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Media(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn server_media(&self) -> Vec<crate::media::Frame> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Media(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    /// Injects a message into the server as the client's chunk stream would carry it (the
    /// client's current chunk size is the configured one).
    pub(crate) fn inject(
        &mut self,
        csid: u32,
        raw: RawMessage,
        chunk_size: usize,
    ) -> Result<(), SessionError> {
        let mut buf = BytesMut::new();
        encode_message(&mut buf, csid, &raw, chunk_size);
        self.server.handle_input(&buf)
    }
}

pub(crate) fn publisher(stream: &str) -> ClientConfig {
    ClientConfig::new("live", "rtmp://h/live", stream, ClientMode::Publish)
}

pub(crate) fn player(stream: &str) -> ClientConfig {
    ClientConfig::new("live", "rtmp://h/live", stream, ClientMode::Play)
}

pub(crate) fn bytes_of(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Frame, MediaKind};
    use crate::protocol::rtmp::amf0::{self, Amf0Value};
    use crate::protocol::rtmp::chunk::{encode_media, ChunkError, OUT_CHUNK_SIZE};
    use crate::protocol::rtmp::message::{type_id, MessageError, UserControl};
    use crate::protocol::rtmp::session::Reject;
    use crate::protocol::rtmp::Amf0Error;

    fn metadata_body() -> Bytes {
        let mut out = BytesMut::new();
        amf0::encode_all(
            &mut out,
            &[
                Amf0Value::string("onMetaData"),
                Amf0Value::EcmaArray(vec![
                    ("width".into(), Amf0Value::Number(1280.0)),
                    ("height".into(), Amf0Value::Number(720.0)),
                ]),
            ],
        )
        .unwrap();
        out.freeze()
    }

    fn has_status(events: &[ClientEvent], want: &str) -> bool {
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Status { code, .. } if code == want))
    }

    #[test]
    fn full_publish_flow() {
        let mut cfg = publisher("cam?k=v");
        cfg.app = "live?token=x".into();
        cfg.tc_url = "rtmp://h/live?token=x".into();
        let mut pair = Pair::new(cfg, SessionConfig::default());
        let request = pair.publish_request();
        assert!(matches!(
            &pair.server_events[0],
            ServerEvent::Connected { app, tc_url: Some(t), query, .. }
                if app == "live" && t == "rtmp://h/live?token=x" && query == "token=x"
        ));
        let ServerEvent::PublishRequested {
            app,
            stream,
            query,
            publish_type,
            stream_id,
            ..
        } = &pair.server_events[1]
        else {
            panic!("{:?}", pair.server_events);
        };
        assert_eq!(
            (
                app.as_str(),
                stream.as_str(),
                query.as_str(),
                publish_type.as_str(),
                *stream_id
            ),
            ("live", "cam", "token=x&k=v", "live", 1)
        );
        assert!(!pair.client.is_publishing());
        assert!(pair.server.accept_publish(request));
        assert!(!pair.server.accept_publish(request), "answered once");
        pair.run().unwrap();
        assert!(pair
            .client_events
            .contains(&ClientEvent::PublishStarted { stream_id: 1 }));
        assert!(pair.client.is_publishing() && pair.server.is_publishing());

        // What the server sent, in order: connect answer then the publish answer.
        let msgs = pair.server_messages();
        assert_eq!(msgs[0], Message::WindowAckSize(50_000_000));
        assert!(matches!(
            msgs[1],
            Message::SetPeerBandwidth {
                size: 50_000_000,
                ..
            }
        ));
        assert_eq!(msgs[2], Message::SetChunkSize(OUT_CHUNK_SIZE as u32));
        let cmds = pair.server_commands();
        let connect = &cmds[0];
        assert_eq!(
            (connect.name.as_str(), connect.transaction_id),
            ("_result", 1.0)
        );
        assert_eq!(
            connect.args[0].get("code").and_then(Amf0Value::as_str),
            Some("NetConnection.Connect.Success")
        );
        assert!(connect.object.get("fmsVer").is_some());
        let names: Vec<_> = cmds
            .iter()
            .map(|c| (c.name.as_str(), c.transaction_id))
            .collect();
        assert_eq!(
            names,
            vec![
                ("_result", 1.0),     // connect
                ("_result", 2.0),     // releaseStream
                ("onFCPublish", 0.0), // FCPublish
                ("_result", 3.0),
                ("_result", 4.0), // createStream
                ("onStatus", 0.0),
            ]
        );
        assert_eq!(cmds[4].args, vec![Amf0Value::Number(1.0)]);
        assert!(
            msgs.contains(&Message::UserControl(UserControl::StreamBegin {
                stream_id: 1
            }))
        );

        // Media: metadata unwrapped, audio and video untouched.
        let frames = vec![
            Frame::new(MediaKind::Script, 0, metadata_body()),
            Frame::new(
                MediaKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2]),
            ),
            Frame::new(
                MediaKind::Audio,
                0,
                Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
            ),
            Frame::new(MediaKind::Video, 40, bytes_of(10_000, 7)),
        ];
        for f in &frames {
            pair.client.send_media(f);
        }
        pair.run().unwrap();
        assert_eq!(pair.server_media(), frames);

        pair.client.goodbye();
        pair.run().unwrap();
        assert_eq!(
            pair.server_events.last(),
            Some(&ServerEvent::PublishStopped)
        );
        assert!(!pair.server.is_publishing());
    }

    #[test]
    fn publish_flow_byte_by_byte() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        pair.segment = 1;
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        let frame = Frame::new(MediaKind::Video, 5, bytes_of(9_000, 1));
        pair.client.send_media(&frame);
        pair.run().unwrap();
        assert_eq!(pair.server_media(), vec![frame]);
    }

    #[test]
    fn full_play_flow_with_media() {
        let mut pair = Pair::new(player("cam?sig=abc"), SessionConfig::default());
        let request = pair.play_request();
        let ServerEvent::PlayRequested {
            stream,
            query,
            start,
            ..
        } = &pair.server_events[1]
        else {
            panic!()
        };
        assert_eq!(
            (stream.as_str(), query.as_str(), *start),
            ("cam", "sig=abc", -2.0)
        );
        assert_eq!(pair.server.play_stream_id(), None);
        assert!(pair.server.accept_play(request));
        pair.run().unwrap();
        assert_eq!(pair.server.play_stream_id(), Some(1));
        assert_eq!(pair.server.buffer_ms(), Some(3000));
        assert!(pair
            .client_events
            .contains(&ClientEvent::PlayStarted { stream_id: 1 }));
        let codes: Vec<_> = pair
            .client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Status { code, .. } => Some(code.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(codes, vec!["NetStream.Play.Reset", "NetStream.Play.Start"]);
        let data: Vec<_> = pair
            .server_messages()
            .into_iter()
            .filter_map(|m| match m {
                Message::Data(p) => Some(amf0::decode_all(&p).unwrap()[0].clone()),
                _ => None,
            })
            .collect();
        assert_eq!(data, vec![Amf0Value::string("|RtmpSampleAccess")]);

        // Media as the driver sends it: one shared encoding, written next to session output.
        let frames = vec![
            Frame::new(MediaKind::Script, 0, metadata_body()),
            Frame::new(
                MediaKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            ),
            Frame::new(MediaKind::Audio, 10, bytes_of(300, 3)),
            Frame::new(MediaKind::Video, 40, bytes_of(20_000, 9)),
        ];
        let mut shared = BytesMut::new();
        for f in &frames {
            encode_media(&mut shared, f, 1, OUT_CHUNK_SIZE);
        }
        pair.client.handle_input(&shared).unwrap();
        // And through the session's own path.
        pair.server.send_media(&frames[3]);
        pair.run().unwrap();
        let mut want = frames.clone();
        want.push(frames[3].clone());
        assert_eq!(pair.client_media(), want);

        pair.server.stream_eof();
        pair.run().unwrap();
        assert!(pair.client_events.contains(&ClientEvent::StreamEof));
        assert!(has_status(
            &pair.client_events,
            "NetStream.Play.UnpublishNotify"
        ));
        assert_eq!(pair.server.play_stream_id(), None);
    }

    #[test]
    fn player_leaving_is_reported() {
        let mut pair = Pair::new(player("cam"), SessionConfig::default());
        let request = pair.play_request();
        pair.server.accept_play(request);
        pair.run().unwrap();
        pair.client.goodbye();
        pair.run().unwrap();
        assert_eq!(pair.server_events.last(), Some(&ServerEvent::PlayStopped));
    }

    #[test]
    fn rejections_reach_the_client() {
        for (reason, code) in [
            (Reject::BadName, "NetStream.Publish.BadName"),
            (Reject::Unauthorized, "NetStream.Publish.BadName"),
        ] {
            let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
            let request = pair.publish_request();
            assert!(pair.server.reject_publish(request, reason));
            pair.run().unwrap();
            assert!(pair.client_events.iter().any(|e| matches!(e,
                ClientEvent::Status { level, code: c, .. } if level == "error" && c == code)));
            assert!(!pair.client.is_publishing());
        }
        for (reason, code) in [
            (Reject::NotFound, "NetStream.Play.StreamNotFound"),
            (Reject::Unauthorized, "NetStream.Play.Failed"),
        ] {
            let mut pair = Pair::new(player("cam"), SessionConfig::default());
            let request = pair.play_request();
            assert!(pair.server.reject_play(request, reason));
            pair.run().unwrap();
            assert!(has_status(&pair.client_events, code));
        }
    }

    #[test]
    fn extended_timestamps_survive_the_trip() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        let frames: Vec<_> = [0xFF_FFFE, 0xFF_FFFF, 0x100_0000, 0xFFFF_FFFF]
            .into_iter()
            .map(|ts| Frame::new(MediaKind::Video, ts, bytes_of(9_000, ts as u8)))
            .collect();
        for f in &frames {
            pair.client.send_media(f);
        }
        pair.run().unwrap();
        assert_eq!(pair.server_media(), frames);
    }

    #[test]
    fn chunk_size_change_mid_stream() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        let mut sent = Vec::new();
        for (i, size) in [128u32, 1, 100, 60_000].into_iter().enumerate() {
            pair.client.set_chunk_size(size);
            let f = Frame::new(MediaKind::Audio, i as u32 * 20, bytes_of(1_000, i as u8));
            pair.client.send_media(&f);
            sent.push(f);
        }
        pair.run().unwrap();
        assert_eq!(pair.server_media(), sent);
    }

    #[test]
    fn client_announces_its_chunk_size_so_shared_encodings_can_follow() {
        // A relay push feeds the client's connection with frames chunked once for every player
        // (at OUT_CHUNK_SIZE): the server must have been told that size.
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        let f = Frame::new(MediaKind::Video, 40, bytes_of(10_000, 7));
        let mut buf = BytesMut::new();
        super::super::chunk::encode_media(&mut buf, &f, 1, super::super::chunk::OUT_CHUNK_SIZE);
        pair.server.handle_input(&buf).unwrap();
        while let Some(e) = pair.server.poll_event() {
            pair.server_events.push(e);
        }
        assert_eq!(pair.server_media(), vec![f]);
    }

    #[test]
    fn acknowledgements_after_window_bytes() {
        let mut client = publisher("cam");
        client.window_ack_size = 5_000;
        let server = SessionConfig {
            window_ack_size: 4_000,
            ..SessionConfig::default()
        };
        let mut pair = Pair::new(client, server);
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        for i in 0..10 {
            pair.client.send_media(&Frame::new(
                MediaKind::Video,
                i * 40,
                bytes_of(2_000, i as u8),
            ));
            pair.run().unwrap();
        }
        let acks: Vec<u32> = pair
            .server_messages()
            .into_iter()
            .filter_map(|m| match m {
                Message::Acknowledgement { sequence } => Some(sequence),
                _ => None,
            })
            .collect();
        // ~20 KB of media at a 5000-byte window: an ack every 5000 bytes or so.
        assert!(acks.len() >= 3, "{acks:?}");
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 5_000), "{acks:?}");
        assert!(acks[0] >= 5_000);
    }

    #[test]
    fn ping_is_answered_and_unknown_calls_get_an_error() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        pair.run().unwrap();
        let ping = Message::UserControl(UserControl::PingRequest { timestamp: 77 })
            .to_raw(0, 0)
            .unwrap();
        pair.inject(2, ping, OUT_CHUNK_SIZE).unwrap();
        let call = Message::Command(Command::new("frobnicate", 42.0, Amf0Value::Null, vec![]))
            .to_raw(0, 0)
            .unwrap();
        pair.inject(3, call, OUT_CHUNK_SIZE).unwrap();
        pair.run().unwrap();
        let msgs = pair.server_messages();
        assert!(
            msgs.contains(&Message::UserControl(UserControl::PingResponse {
                timestamp: 77
            }))
        );
        let err = pair
            .server_commands()
            .into_iter()
            .find(|c| c.name == "_error")
            .unwrap();
        assert_eq!(err.transaction_id, 42.0);
    }

    #[test]
    fn malformed_amf_in_a_command_is_a_session_error() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        pair.run().unwrap();
        // "connect" cut short inside its name.
        let raw = RawMessage::new(
            type_id::COMMAND_AMF0,
            0,
            0,
            Bytes::from_static(&[0x02, 0x00, 0x07, b'c', b'o', b'n']),
        );
        assert!(matches!(
            pair.inject(3, raw, OUT_CHUNK_SIZE),
            Err(SessionError::Message(MessageError::Amf0(
                Amf0Error::Truncated { .. }
            )))
        ));
    }

    #[test]
    fn bad_chunk_size_and_message_too_large() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        pair.run().unwrap();
        let raw = Message::SetChunkSize(0).to_raw(0, 0).unwrap();
        assert_eq!(
            pair.inject(2, raw, OUT_CHUNK_SIZE),
            Err(SessionError::Chunk(ChunkError::ChunkSizeZero))
        );

        let server = SessionConfig {
            max_message_len: 1_000,
            ..SessionConfig::default()
        };
        let mut pair = Pair::new(publisher("cam"), server);
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        pair.client
            .send_media(&Frame::new(MediaKind::Video, 0, bytes_of(1_001, 0)));
        assert_eq!(
            pair.run(),
            Err(SessionError::Chunk(ChunkError::MessageTooLarge {
                length: 1_001,
                limit: 1_000
            }))
        );
    }

    #[test]
    fn commands_before_connect_and_second_publish_are_errors() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        // Let only the handshake through: stop the client's connect from reaching the server.
        let mut buf = BytesMut::new();
        assert!(pair.client.poll_transmit(&mut buf));
        pair.server.handle_input(&buf).unwrap();
        let mut buf = BytesMut::new();
        pair.server.poll_transmit(&mut buf);
        pair.client.handle_input(&buf).unwrap();
        let mut buf = BytesMut::new();
        pair.client.poll_transmit(&mut buf);
        pair.server.handle_input(&buf[..HANDSHAKE_SIZE]).unwrap();
        let call = Message::Command(Command::new(
            "play",
            0.0,
            Amf0Value::Null,
            vec![Amf0Value::string("x")],
        ))
        .to_raw(1, 0)
        .unwrap();
        assert_eq!(
            pair.inject(8, call, 128),
            Err(SessionError::CommandBeforeConnect {
                command: "play".into()
            })
        );

        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        let _ = pair.publish_request();
        let again = Message::Command(Command::new(
            "publish",
            5.0,
            Amf0Value::Null,
            vec![Amf0Value::string("x")],
        ))
        .to_raw(1, 0)
        .unwrap();
        assert_eq!(
            pair.inject(8, again, OUT_CHUNK_SIZE),
            Err(SessionError::StreamBusy { command: "publish" })
        );
    }

    #[test]
    fn query_on_tc_url_only() {
        let mut cfg = publisher("cam");
        cfg.tc_url = "rtmp://h/live?token=x".into();
        let mut pair = Pair::new(cfg, SessionConfig::default());
        let _ = pair.publish_request();
        assert!(matches!(&pair.server_events[1],
            ServerEvent::PublishRequested { query, stream, .. } if query == "token=x" && stream == "cam"));
    }

    #[test]
    fn plain_on_metadata_and_other_data() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        let plain = RawMessage::new(type_id::DATA_AMF0, 1, 0, metadata_body());
        pair.inject(5, plain, OUT_CHUNK_SIZE).unwrap();
        let mut other = BytesMut::new();
        amf0::encode(&mut other, &Amf0Value::string("onCuePoint")).unwrap();
        pair.inject(
            5,
            RawMessage::new(type_id::DATA_AMF0, 1, 0, other.freeze()),
            OUT_CHUNK_SIZE,
        )
        .unwrap();
        pair.run().unwrap();
        assert_eq!(
            pair.server_media(),
            vec![Frame::new(MediaKind::Script, 0, metadata_body())]
        );
    }

    #[test]
    fn random_garbage_after_connect_never_panics() {
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        for _ in 0..300 {
            let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
            let request = pair.publish_request();
            pair.server.accept_publish(request);
            pair.run().unwrap();
            let mut junk = vec![0u8; rng.gen_range(1..3_000)];
            rng.fill_bytes(&mut junk);
            // Keep some chunks plausible: a valid basic header byte on a known chunk stream.
            junk[0] = [0x03, 0x43, 0x83, 0xc3, 0x05, 0xc4][rng.gen_range(0..6)];
            let _ = pair.server.handle_input(&junk);
            let _ = pair.client.handle_input(&junk);
            while pair.server.poll_event().is_some() {}
        }
    }

    #[test]
    fn media_sent_before_the_publish_answer_is_kept_until_accept() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        let request = pair.publish_request();
        // A client that does not wait for NetStream.Publish.Start.
        let early = [
            Frame::new(MediaKind::Script, 0, metadata_body()),
            Frame::new(
                MediaKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            ),
        ];
        for (i, f) in early.iter().enumerate() {
            let mut p = f.payload.clone();
            if f.kind == MediaKind::Script {
                p = crate::protocol::rtmp::message::wrap_set_data_frame(&p);
            }
            let raw = RawMessage::new(f.kind as u8, 1, f.timestamp, p);
            pair.inject(4 + i as u32, raw, OUT_CHUNK_SIZE).unwrap();
        }
        pair.run().unwrap();
        assert!(pair.server_media().is_empty());
        pair.server.accept_publish(request);
        pair.run().unwrap();
        assert_eq!(pair.server_media(), early.to_vec());
    }

    #[test]
    fn goodbye_says_so() {
        let mut pair = Pair::new(publisher("cam"), SessionConfig::default());
        let request = pair.publish_request();
        pair.server.accept_publish(request);
        pair.run().unwrap();
        pair.server.goodbye();
        pair.run().unwrap();
        assert!(has_status(
            &pair.client_events,
            "NetStream.Unpublish.Success"
        ));
        assert!(has_status(
            &pair.client_events,
            "NetConnection.Connect.Closed"
        ));
    }
}
