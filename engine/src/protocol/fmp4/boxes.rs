//! ISO BMFF (ISO/IEC 14496-12) boxes of a fragmented MP4: the init segment (`ftyp`, `moov`) and
//! the fragments (`moof`, `mdat`).

use bytes::{BufMut, BytesMut};

/// Writes a box: its size is patched in when `body` returns.
pub(crate) fn write_box(out: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    body(out);
    patch_size(out, start);
}

/// A full box: a box with a version and 24 bits of flags.
pub(crate) fn write_full_box(
    out: &mut BytesMut,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    write_box(out, kind, |out| {
        out.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(out);
    });
}

fn patch_size(out: &mut BytesMut, start: usize) {
    // A box over 4 GiB cannot happen here: fragments are bounded far below that.
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// The unity matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// How a track's samples are described in its `stsd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SampleEntry {
    /// `avc1` with `avcC`, or `hvc1` with `hvcC`: the FLV sequence header's record as is.
    Video {
        fourcc: [u8; 4],
        config_fourcc: [u8; 4],
        record: Vec<u8>,
        width: u16,
        height: u16,
    },
    /// `mp4a` with `esds` around the AudioSpecificConfig.
    Aac {
        asc: Vec<u8>,
        channels: u16,
        sample_rate: u32,
    },
}

/// One track of the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TrackInit {
    pub(super) id: u32,
    pub(super) timescale: u32,
    pub(super) entry: SampleEntry,
}

pub(super) fn write_init(out: &mut BytesMut, tracks: &[TrackInit]) {
    write_box(out, b"ftyp", |out| {
        out.put_slice(b"iso5");
        out.put_u32(512);
        for brand in [b"iso5", b"iso6", b"mp41"] {
            out.put_slice(brand);
        }
    });
    write_box(out, b"moov", |out| {
        write_full_box(out, b"mvhd", 0, 0, |out| {
            out.put_u32(0); // creation_time
            out.put_u32(0); // modification_time
            out.put_u32(1000); // timescale
            out.put_u32(0); // duration: unknown, the movie is fragmented
            out.put_u32(0x0001_0000); // rate 1.0
            out.put_u16(0x0100); // volume 1.0
            out.put_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| out.put_u32(*m));
            out.put_slice(&[0; 24]); // pre_defined
            out.put_u32(tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        });
        for t in tracks {
            write_trak(out, t);
        }
        write_box(out, b"mvex", |out| {
            for t in tracks {
                write_full_box(out, b"trex", 0, 0, |out| {
                    out.put_u32(t.id);
                    out.put_u32(1); // default_sample_description_index
                    out.put_u32(0); // default_sample_duration
                    out.put_u32(0); // default_sample_size
                    out.put_u32(0); // default_sample_flags
                });
            }
        });
    });
}

fn write_trak(out: &mut BytesMut, t: &TrackInit) {
    let (is_video, width, height) = match &t.entry {
        SampleEntry::Video { width, height, .. } => (true, *width, *height),
        SampleEntry::Aac { .. } => (false, 0, 0),
    };
    write_box(out, b"trak", |out| {
        // Flags: track_enabled | track_in_movie.
        write_full_box(out, b"tkhd", 0, 3, |out| {
            out.put_u32(0);
            out.put_u32(0);
            out.put_u32(t.id);
            out.put_u32(0); // reserved
            out.put_u32(0); // duration
            out.put_slice(&[0; 8]);
            out.put_u16(0); // layer
            out.put_u16(0); // alternate_group
            out.put_u16(if is_video { 0 } else { 0x0100 });
            out.put_u16(0);
            MATRIX.iter().for_each(|m| out.put_u32(*m));
            out.put_u32(u32::from(width) << 16);
            out.put_u32(u32::from(height) << 16);
        });
        write_box(out, b"mdia", |out| {
            write_full_box(out, b"mdhd", 0, 0, |out| {
                out.put_u32(0);
                out.put_u32(0);
                out.put_u32(t.timescale);
                out.put_u32(0);
                out.put_u16(0x55c4); // language "und"
                out.put_u16(0);
            });
            write_full_box(out, b"hdlr", 0, 0, |out| {
                out.put_u32(0);
                out.put_slice(if is_video { b"vide" } else { b"soun" });
                out.put_slice(&[0; 12]);
                out.put_slice(if is_video {
                    b"VideoHandler\0".as_slice()
                } else {
                    b"SoundHandler\0".as_slice()
                });
            });
            write_box(out, b"minf", |out| {
                if is_video {
                    write_full_box(out, b"vmhd", 0, 1, |out| out.put_slice(&[0; 8]));
                } else {
                    write_full_box(out, b"smhd", 0, 0, |out| out.put_u32(0));
                }
                write_box(out, b"dinf", |out| {
                    write_full_box(out, b"dref", 0, 0, |out| {
                        out.put_u32(1);
                        // Flag 1: the media is in this file.
                        write_full_box(out, b"url ", 0, 1, |_| {});
                    });
                });
                write_box(out, b"stbl", |out| {
                    write_full_box(out, b"stsd", 0, 0, |out| {
                        out.put_u32(1);
                        write_sample_entry(out, &t.entry);
                    });
                    // The samples are all in the fragments.
                    write_full_box(out, b"stts", 0, 0, |out| out.put_u32(0));
                    write_full_box(out, b"stsc", 0, 0, |out| out.put_u32(0));
                    write_full_box(out, b"stsz", 0, 0, |out| {
                        out.put_u32(0);
                        out.put_u32(0);
                    });
                    write_full_box(out, b"stco", 0, 0, |out| out.put_u32(0));
                });
            });
        });
    });
}

fn write_sample_entry(out: &mut BytesMut, entry: &SampleEntry) {
    match entry {
        SampleEntry::Video {
            fourcc,
            config_fourcc,
            record,
            width,
            height,
        } => write_box(out, fourcc, |out| {
            out.put_slice(&[0; 6]);
            out.put_u16(1); // data_reference_index
            out.put_slice(&[0; 16]); // pre_defined, reserved
            out.put_u16(*width);
            out.put_u16(*height);
            out.put_u32(0x0048_0000); // 72 dpi
            out.put_u32(0x0048_0000);
            out.put_u32(0);
            out.put_u16(1); // frame_count
            out.put_slice(&[0; 32]); // compressorname
            out.put_u16(0x0018); // depth
            out.put_i16(-1);
            write_box(out, config_fourcc, |out| out.put_slice(record));
        }),
        SampleEntry::Aac {
            asc,
            channels,
            sample_rate,
        } => write_box(out, b"mp4a", |out| {
            out.put_slice(&[0; 6]);
            out.put_u16(1);
            out.put_slice(&[0; 8]);
            out.put_u16(*channels);
            out.put_u16(16); // samplesize
            out.put_u32(0);
            // 16.16 fixed point; rates above 65535 Hz do not fit and the esds has the real one.
            out.put_u32(sample_rate.min(&0xffff) << 16);
            write_full_box(out, b"esds", 0, 0, |out| write_es_descriptor(out, asc));
        }),
    }
}

/// ES_Descriptor (ISO/IEC 14496-1 7.2.6.5) carrying AAC's DecoderSpecificInfo.
fn write_es_descriptor(out: &mut BytesMut, asc: &[u8]) {
    let dsi_len = asc.len();
    let dcd_len = 13 + descriptor_len(dsi_len);
    let es_len = 3 + descriptor_len(dcd_len) + descriptor_len(1);
    put_descriptor_head(out, 0x03, es_len);
    out.put_u16(0); // ES_ID
    out.put_u8(0); // no dependency, URL or OCR stream
    put_descriptor_head(out, 0x04, dcd_len);
    out.put_u8(0x40); // objectTypeIndication: MPEG-4 audio
    out.put_u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    out.put_slice(&[0; 3]); // bufferSizeDB
    out.put_u32(0); // maxBitrate
    out.put_u32(0); // avgBitrate
    put_descriptor_head(out, 0x05, dsi_len);
    out.put_slice(asc);
    put_descriptor_head(out, 0x06, 1);
    out.put_u8(0x02); // SLConfigDescriptor predefined: MP4
}

/// A descriptor's whole size: tag, a 4-byte size field, body.
fn descriptor_len(body: usize) -> usize {
    1 + 4 + body
}

fn put_descriptor_head(out: &mut BytesMut, tag: u8, len: usize) {
    out.put_u8(tag);
    // The 4-byte form of the expandable size: 7 bits per byte, continuation bit set.
    out.put_u8(0x80 | ((len >> 21) & 0x7f) as u8);
    out.put_u8(0x80 | ((len >> 14) & 0x7f) as u8);
    out.put_u8(0x80 | ((len >> 7) & 0x7f) as u8);
    out.put_u8((len & 0x7f) as u8);
}

/// One sample of a fragment's track run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SampleInfo {
    pub(super) duration: u32,
    pub(super) size: u32,
    pub(super) flags: u32,
    pub(super) composition_offset: i32,
}

/// A track's samples in one fragment: they start at `base_decode_time` and their data lies
/// contiguous in the `mdat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TrackRun<'a> {
    pub(super) id: u32,
    pub(super) base_decode_time: u64,
    pub(super) samples: &'a [SampleInfo],
    /// Whether the samples carry composition offsets (video).
    pub(super) with_offsets: bool,
}

/// `trun` flags: data-offset, sample-duration, sample-size, sample-flags present.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400;
/// `trun` flag: sample-composition-time-offsets present.
const TRUN_OFFSETS: u32 = 0x000800;
/// `tfhd` flag: data offsets are relative to the `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x020000;

/// Writes `moof` then the `mdat` header; the caller appends each run's data, in run order, and
/// `mdat_len` must be their total size.
pub(super) fn write_fragment_head(
    out: &mut BytesMut,
    sequence: u32,
    runs: &[TrackRun<'_>],
    mdat_len: usize,
) {
    let moof_start = out.len();
    let mut data_offset_fields = Vec::with_capacity(runs.len());
    write_box(out, b"moof", |out| {
        write_full_box(out, b"mfhd", 0, 0, |out| out.put_u32(sequence));
        for run in runs {
            write_box(out, b"traf", |out| {
                write_full_box(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |out| {
                    out.put_u32(run.id);
                });
                write_full_box(out, b"tfdt", 1, 0, |out| out.put_u64(run.base_decode_time));
                let flags = TRUN_FLAGS | if run.with_offsets { TRUN_OFFSETS } else { 0 };
                // Version 1: signed composition offsets (B-frames before their reference).
                write_full_box(out, b"trun", 1, flags, |out| {
                    out.put_u32(run.samples.len() as u32);
                    data_offset_fields.push(out.len());
                    out.put_i32(0);
                    for s in run.samples {
                        out.put_u32(s.duration);
                        out.put_u32(s.size);
                        out.put_u32(s.flags);
                        if run.with_offsets {
                            out.put_i32(s.composition_offset);
                        }
                    }
                });
            });
        }
    });
    let moof_len = out.len() - moof_start;
    let mut offset = moof_len + 8;
    for (field, run) in data_offset_fields.into_iter().zip(runs) {
        let value = i32::try_from(offset).unwrap_or(i32::MAX);
        out[field..field + 4].copy_from_slice(&value.to_be_bytes());
        offset += run.samples.iter().map(|s| s.size as usize).sum::<usize>();
    }
    out.put_u32(u32::try_from(8 + mdat_len).unwrap_or(u32::MAX));
    out.put_slice(b"mdat");
}

/// `sample_flags` of a sync sample: depends on no other.
pub(super) const SYNC_SAMPLE: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: depends on others, is_non_sync_sample.
pub(super) const NON_SYNC_SAMPLE: u32 = 0x0101_0000;
