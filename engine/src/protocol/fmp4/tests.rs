use bytes::Bytes;

use super::*;

const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00,
    0x00, 0x0c, 0x83, 0xc5, 0x0a, 0xa8,
];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

pub(super) fn avc_record() -> Vec<u8> {
    let mut r = vec![1, 0x42, 0xc0, 0x0d, 0xff, 0xe1];
    r.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    r.extend_from_slice(SPS);
    r.push(1);
    r.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
    r.extend_from_slice(PPS);
    r
}

pub(super) fn video_header() -> Frame {
    let mut p = vec![0x17, 0, 0, 0, 0];
    p.extend(avc_record());
    Frame::new(MediaKind::Video, 0, Bytes::from(p))
}

/// AAC LC, 44.1 kHz, stereo.
pub(super) fn audio_header() -> Frame {
    Frame::new(
        MediaKind::Audio,
        0,
        Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
    )
}

pub(super) fn video(ts: u32, key: bool, cts: i32, body: &[u8]) -> Frame {
    let mut p = vec![if key { 0x17 } else { 0x27 }, 1];
    p.extend_from_slice(&cts.to_be_bytes()[1..]);
    p.extend_from_slice(body);
    Frame::new(MediaKind::Video, ts, Bytes::from(p))
}

pub(super) fn audio(ts: u32, body: &[u8]) -> Frame {
    let mut p = vec![0xaf, 1];
    p.extend_from_slice(body);
    Frame::new(MediaKind::Audio, ts, Bytes::from(p))
}

/// The boxes at the top of `data`: (type, body).
fn boxes(data: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(size >= 8 && size <= rest.len(), "box size {size}");
        out.push((
            String::from_utf8_lossy(&rest[4..8]).into_owned(),
            &rest[8..size],
        ));
        rest = &rest[size..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    out
}

/// The body of the box at `path` (children of full boxes skip `skip` bytes of header).
fn find<'a>(data: &'a [u8], path: &[&str]) -> &'a [u8] {
    let mut cur = data;
    for name in path {
        let (_, body) = boxes(cur)
            .into_iter()
            .find(|(t, _)| t == name)
            .unwrap_or_else(|| panic!("no {name} in {path:?}"));
        // Containers whose children follow a header: stsd (full box + count), dref (same).
        cur = match *name {
            "stsd" | "dref" => &body[8..],
            "avc1" | "hvc1" => &body[78..],
            "mp4a" => &body[28..],
            _ => body,
        };
    }
    cur
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn init_segment_layout() {
    let mut m = Fmp4Muxer::new();
    assert_eq!(m.init_segment(), None);
    assert_eq!(m.push(&video_header()), Ok(Fmp4Push::ConfigChanged));
    assert_eq!(m.push(&audio_header()), Ok(Fmp4Push::ConfigChanged));
    assert_eq!(m.push(&audio_header()), Ok(Fmp4Push::ConfigUnchanged));
    let init = m.init_segment().unwrap();
    let top: Vec<String> = boxes(&init).into_iter().map(|(t, _)| t).collect();
    assert_eq!(top, ["ftyp", "moov"]);
    assert_eq!(&find(&init, &["ftyp"])[..4], b"iso5");
    let moov: Vec<String> = boxes(find(&init, &["moov"]))
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(moov, ["mvhd", "trak", "trak", "mvex"]);
    let tkhd = find(&init, &["moov", "trak", "tkhd"]);
    assert_eq!(u32_at(tkhd, 12), 1, "track id");
    assert_eq!(u32_at(tkhd, 76) >> 16, 320);
    assert_eq!(u32_at(tkhd, 80) >> 16, 240);
    let avcc = find(
        &init,
        &[
            "moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1", "avcC",
        ],
    );
    assert_eq!(avcc, avc_record().as_slice());
    let mdhd = find(&init, &["moov", "trak", "mdia", "mdhd"]);
    assert_eq!(u32_at(mdhd, 12), 90_000);
    let traks: Vec<&[u8]> = boxes(find(&init, &["moov"]))
        .into_iter()
        .filter(|(t, _)| t == "trak")
        .map(|(_, b)| b)
        .collect();
    let audio = traks[1];
    assert_eq!(u32_at(find(audio, &["mdia", "mdhd"]), 12), 44_100);
    assert_eq!(&find(audio, &["mdia", "hdlr"])[8..12], b"soun");
    let esds = find(audio, &["mdia", "minf", "stbl", "stsd", "mp4a", "esds"]);
    // The DecoderSpecificInfo (tag 5, 4-byte length 2) holds the ASC.
    let dsi = esds
        .windows(7)
        .position(|w| w == [5, 0x80, 0x80, 0x80, 2, 0x12, 0x10]);
    assert!(dsi.is_some(), "{esds:02x?}");
    let trex: Vec<u32> = boxes(find(&init, &["moov", "mvex"]))
        .into_iter()
        .map(|(_, b)| u32_at(b, 4))
        .collect();
    assert_eq!(trex, [1, 2]);
}

#[test]
fn fragment_layout_times_and_offsets() {
    let mut m = Fmp4Muxer::new();
    let _ = m.push(&video_header()).unwrap();
    let _ = m.push(&audio_header()).unwrap();
    let mut out = BytesMut::new();
    assert_eq!(m.fragment(&mut out), None);
    // Keyframe at 1000 ms (the epoch), a B-frame order: P at 1080 shown at 1120, B at 1040.
    assert_eq!(m.push(&video(1000, true, 40, b"KEY")), Ok(Fmp4Push::Queued));
    let _ = m.push(&audio(1000, b"A0")).unwrap();
    let _ = m.push(&video(1040, false, 80, b"P1")).unwrap();
    let _ = m.push(&audio(1023, b"A1")).unwrap();
    let _ = m.push(&video(1080, false, -40, b"B2")).unwrap();
    let _ = m.push(&audio(1046, b"A2")).unwrap();
    let info = m.fragment(&mut out).unwrap();
    assert_eq!(
        info,
        FragmentInfo {
            start_ms: 0,
            duration_ms: 80,
            independent: true
        }
    );
    let frag = out.split().freeze();
    let top: Vec<String> = boxes(&frag).into_iter().map(|(t, _)| t).collect();
    assert_eq!(top, ["moof", "mdat"]);
    assert_eq!(u32_at(find(&frag, &["moof", "mfhd"]), 4), 1);
    let trafs: Vec<&[u8]> = boxes(find(&frag, &["moof"]))
        .into_iter()
        .filter(|(t, _)| t == "traf")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(trafs.len(), 2);
    // Video: tfhd default-base-is-moof, tfdt 0, trun v1 with offsets.
    let tfhd = find(trafs[0], &["tfhd"]);
    assert_eq!(u32_at(tfhd, 0), 0x020000);
    assert_eq!(u32_at(tfhd, 4), 1);
    let tfdt = find(trafs[0], &["tfdt"]);
    assert_eq!(tfdt[0], 1);
    assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 0);
    let trun = find(trafs[0], &["trun"]);
    assert_eq!(u32_at(trun, 0), 0x0100_0f01);
    assert_eq!(
        u32_at(trun, 4),
        2,
        "the last video frame waits for its duration"
    );
    let data_offset = u32_at(trun, 8) as usize;
    // Sample 0: duration 3600, size 3, sync, offset 3600; sample 1: non-sync, offset 7200.
    assert_eq!(
        [
            u32_at(trun, 12),
            u32_at(trun, 16),
            u32_at(trun, 20),
            u32_at(trun, 24)
        ],
        [3600, 3, SYNC_SAMPLE, 3600]
    );
    assert_eq!(
        [
            u32_at(trun, 28),
            u32_at(trun, 32),
            u32_at(trun, 36),
            u32_at(trun, 40)
        ],
        [3600, 2, NON_SYNC_SAMPLE, 7200]
    );
    assert_eq!(&frag[data_offset..data_offset + 5], b"KEYP1");
    let atrun = find(trafs[1], &["trun"]);
    assert_eq!(u32_at(atrun, 0), 0x0100_0701);
    assert_eq!(u32_at(atrun, 4), 2);
    let audio_offset = u32_at(atrun, 8) as usize;
    assert_eq!(&frag[audio_offset..audio_offset + 4], b"A0A1");
    // 23 ms at 44.1 kHz, from the millisecond timeline.
    assert_eq!(u32_at(atrun, 12), 1014);

    // The next fragment starts where this one ended, with the held samples.
    let _ = m.push(&video(1120, true, 0, b"K3")).unwrap();
    let info = m.fragment(&mut out).unwrap();
    assert_eq!(
        (info.start_ms, info.duration_ms, info.independent),
        (80, 40, false)
    );
    let frag = out.split().freeze();
    assert_eq!(u32_at(find(&frag, &["moof", "mfhd"]), 4), 2);
    let tfdt = find(&frag, &["moof", "traf", "tfdt"]);
    assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 7200);
    m.flush(40);
    let info = m.fragment(&mut out).unwrap();
    assert_eq!(
        (info.start_ms, info.duration_ms, info.independent),
        (120, 40, true)
    );
}

#[test]
fn errors_and_ignored_frames() {
    let mut m = Fmp4Muxer::new();
    assert_eq!(
        m.push(&video(0, true, 0, b"x")),
        Err(Fmp4Error::MissingConfig {
            kind: MediaKind::Video
        })
    );
    let mp3 = Frame::new(MediaKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff]));
    assert!(matches!(
        m.push(&mp3),
        Err(Fmp4Error::UnsupportedAudioCodec { .. })
    ));
    let script = Frame::new(MediaKind::Script, 0, Bytes::from_static(b"\x02\x00\x01x"));
    assert_eq!(m.push(&script), Ok(Fmp4Push::Ignored));
    assert_eq!(
        m.push(&Frame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0])
        )),
        Err(Fmp4Error::BadAudioSpecificConfig)
    );
    assert_eq!(parse_asc(&[0x11, 0x90]), Some((48000, 2)));
    assert_eq!(parse_asc(&[0x12, 0x08]), Some((44100, 1)));
}

#[test]
fn hevc_gets_hvc1_with_the_record_and_metadata_size() {
    use crate::protocol::rtmp::amf0::{self, Amf0Value};
    let mut m = Fmp4Muxer::new();
    let mut meta = bytes::BytesMut::new();
    amf0::encode_all(
        &mut meta,
        &[
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("height".into(), Amf0Value::Number(720.0)),
            ]),
        ],
    )
    .unwrap();
    let _ = m
        .push(&Frame::new(MediaKind::Script, 0, meta.freeze()))
        .unwrap();
    // Legacy FLV HEVC (codec id 12) sequence header: the record is passed on as is.
    let record = [
        1u8, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0,
        0x0f, 0,
    ];
    let mut p = vec![0x1c, 0, 0, 0, 0];
    p.extend_from_slice(&record);
    assert_eq!(
        m.push(&Frame::new(MediaKind::Video, 0, Bytes::from(p))),
        Ok(Fmp4Push::ConfigChanged)
    );
    let init = m.init_segment().unwrap();
    // The children of hvc1 (past its 78 bytes of visual sample entry): hvcC first.
    let hvcc = find(
        &init,
        &["moov", "trak", "mdia", "minf", "stbl", "stsd", "hvc1"],
    );
    assert_eq!(&hvcc[4..8], b"hvcC");
    assert_eq!(&hvcc[8..], record.as_slice());
    let tkhd = find(&init, &["moov", "trak", "tkhd"]);
    assert_eq!(
        (u32_at(tkhd, 76) >> 16, u32_at(tkhd, 80) >> 16),
        (1280, 720)
    );
}
