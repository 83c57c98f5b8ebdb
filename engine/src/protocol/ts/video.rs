//! H.264 and H.265 from FLV to MPEG-TS: decoder configuration records (ISO 14496-15 5.3.3.1 and
//! 8.3.3.1) give the NAL unit length size and the parameter sets; length-prefixed (AVCC/HVCC)
//! access units become Annex B byte streams with an access unit delimiter first and the parameter
//! sets in front of every keyframe.

use super::TsError;
use crate::media::VideoCodec;

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 AUD: nal_unit_type 9, primary_pic_type 7 (any slice type), rbsp stop bit.
const H264_AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];
/// H.265 AUD: nal_unit_type 35, layer 0, temporal id 0 (+1), pic_type 2 (any), rbsp stop bit.
const H265_AUD: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

const H264_SPS: u8 = 7;
const H264_AUD_TYPE: u8 = 9;
const H265_SPS: u8 = 33;
const H265_AUD_TYPE: u8 = 35;

/// What the muxer keeps from a video sequence header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VideoConfig {
    pub(super) codec: VideoCodec,
    /// Bytes of the big-endian length in front of each NAL unit (1, 2 or 4).
    nalu_length_size: usize,
    /// The parameter sets (SPS/PPS, or VPS/SPS/PPS and any SEI of the record), already in Annex B.
    parameter_sets: Vec<u8>,
}

struct Reader<'a> {
    data: &'a [u8],
    codec: VideoCodec,
}

impl<'a> Reader<'a> {
    /// A reader of a decoder configuration record, past its `configurationVersion` (which must
    /// be 1: a later version may change the layout).
    fn config_record(data: &'a [u8], codec: VideoCodec) -> Result<Self, TsError> {
        let mut r = Reader { data, codec };
        let version = r.u8()?;
        if version != 1 {
            return Err(TsError::UnsupportedConfigVersion { codec, version });
        }
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TsError> {
        if self.data.len() < n {
            return Err(TsError::TruncatedDecoderConfig { codec: self.codec });
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TsError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, TsError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// One `u16` length-prefixed NAL unit, appended to `out` in Annex B.
    fn nal_unit(&mut self, out: &mut Vec<u8>) -> Result<(), TsError> {
        let len = self.u16()?;
        let nal = self.take(len)?;
        if !nal.is_empty() {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        Ok(())
    }
}

fn length_size(byte: u8, codec: VideoCodec) -> Result<usize, TsError> {
    match (byte & 0x03) + 1 {
        3 => Err(TsError::BadNaluLengthSize { codec, size: 3 }),
        n => Ok(usize::from(n)),
    }
}

impl VideoConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    pub(super) fn parse_avc(record: &[u8]) -> Result<Self, TsError> {
        let codec = VideoCodec::H264;
        let mut r = Reader::config_record(record, codec)?;
        // AVCProfileIndication, profile_compatibility, AVCLevelIndication
        r.take(3)?;
        let nalu_length_size = length_size(r.u8()?, codec)?;
        let mut parameter_sets = Vec::new();
        let sps_count = r.u8()? & 0x1f;
        for _ in 0..sps_count {
            r.nal_unit(&mut parameter_sets)?;
        }
        let pps_count = r.u8()?;
        for _ in 0..pps_count {
            r.nal_unit(&mut parameter_sets)?;
        }
        // High-profile trailer (chroma format, bit depths, SPS extensions) is not needed in-band.
        Ok(Self {
            codec,
            nalu_length_size,
            parameter_sets,
        })
    }

    /// Parses an HEVCDecoderConfigurationRecord, keeping every NAL unit of its arrays in order.
    pub(super) fn parse_hevc(record: &[u8]) -> Result<Self, TsError> {
        let codec = VideoCodec::H265;
        let mut r = Reader::config_record(record, codec)?;
        // Profile, tier, level, compatibility and constraint flags, segmentation, parallelism,
        // chroma format, bit depths, frame rate: 20 bytes the Annex B stream does not need.
        r.take(20)?;
        let nalu_length_size = length_size(r.u8()?, codec)?;
        let mut parameter_sets = Vec::new();
        let arrays = r.u8()?;
        for _ in 0..arrays {
            let _nal_type = r.u8()? & 0x3f;
            let count = r.u16()?;
            for _ in 0..count {
                r.nal_unit(&mut parameter_sets)?;
            }
        }
        Ok(Self {
            codec,
            nalu_length_size,
            parameter_sets,
        })
    }

    fn nal_type(&self, header: u8) -> u8 {
        match self.codec {
            VideoCodec::H265 => (header >> 1) & 0x3f,
            _ => header & 0x1f,
        }
    }

    /// Iterates the length-prefixed NAL units of `data`.
    fn nal_units<'a>(&self, mut data: &'a [u8]) -> impl Iterator<Item = Result<&'a [u8], TsError>> {
        let size = self.nalu_length_size;
        std::iter::from_fn(move || {
            if data.is_empty() {
                return None;
            }
            if data.len() < size {
                let available = data.len();
                data = &[];
                return Some(Err(TsError::TruncatedNaluLength { available }));
            }
            let declared = data[..size]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let rest = &data[size..];
            if rest.len() < declared {
                data = &[];
                return Some(Err(TsError::NaluOverrun {
                    declared,
                    available: rest.len(),
                }));
            }
            let (nal, tail) = rest.split_at(declared);
            data = tail;
            Some(Ok(nal))
        })
    }

    /// Appends the access unit `data` (length-prefixed NAL units) to `out` as Annex B: an AUD,
    /// then on keyframes the parameter sets (unless the unit carries its own SPS), then every NAL
    /// unit but AUDs and empty ones. On error nothing is appended.
    pub(super) fn write_access_unit(
        &self,
        out: &mut Vec<u8>,
        data: &[u8],
        keyframe: bool,
    ) -> Result<(), TsError> {
        let (sps, aud) = match self.codec {
            VideoCodec::H265 => (H265_SPS, H265_AUD_TYPE),
            _ => (H264_SPS, H264_AUD_TYPE),
        };
        let mut has_sps = false;
        for nal in self.nal_units(data) {
            let nal = nal?;
            if nal.first().map(|&h| self.nal_type(h)) == Some(sps) {
                has_sps = true;
            }
        }
        match self.codec {
            VideoCodec::H265 => out.extend_from_slice(&H265_AUD),
            _ => out.extend_from_slice(&H264_AUD),
        }
        if keyframe && !has_sps {
            out.extend_from_slice(&self.parameter_sets);
        }
        // Already validated above.
        for nal in self.nal_units(data).flatten() {
            match nal.first() {
                None => {}
                Some(&h) if self.nal_type(h) == aud => {}
                Some(_) => {
                    out.extend_from_slice(&START_CODE);
                    out.extend_from_slice(nal);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xab];
    pub(crate) const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    /// An AVCDecoderConfigurationRecord with 4-byte lengths, one SPS, one PPS.
    pub(crate) fn avc_record() -> Vec<u8> {
        let mut r = vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1];
        r.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        r.extend_from_slice(SPS);
        r.push(1);
        r.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        r.extend_from_slice(PPS);
        r
    }

    pub(crate) fn hevc_record() -> Vec<u8> {
        let mut r = vec![1];
        r.extend_from_slice(&[0u8; 20]);
        r.push(0xf3); // lengthSizeMinusOne = 3
        r.push(3);
        for (ty, nal) in [
            (32u8, &[0x40u8, 0x01, 0xaa][..]),
            (33, &[0x42, 0x01, 0xbb]),
            (34, &[0x44, 0x01, 0xcc]),
        ] {
            r.push(0x80 | ty);
            r.extend_from_slice(&1u16.to_be_bytes());
            r.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            r.extend_from_slice(nal);
        }
        r
    }

    fn avcc(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn avc_keyframe_gets_aud_and_parameter_sets() {
        let cfg = VideoConfig::parse_avc(&avc_record()).unwrap();
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        let sei: &[u8] = &[0x06, 0x05, 0x01];
        let mut out = Vec::new();
        cfg.write_access_unit(&mut out, &avcc(&[&[0x09, 0xf0], sei, idr]), true)
            .unwrap();
        let mut expected = vec![0, 0, 0, 1, 0x09, 0xf0];
        for n in [SPS, PPS, sei, idr] {
            expected.extend_from_slice(&[0, 0, 0, 1]);
            expected.extend_from_slice(n);
        }
        assert_eq!(out, expected);

        out.clear();
        let p: &[u8] = &[0x41, 0x9a, 0x02];
        cfg.write_access_unit(&mut out, &avcc(&[p]), false).unwrap();
        assert_eq!(out, [&[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1][..], p].concat());
    }

    #[test]
    fn in_band_sps_is_not_duplicated() {
        let cfg = VideoConfig::parse_avc(&avc_record()).unwrap();
        let idr: &[u8] = &[0x65, 0x88];
        let mut out = Vec::new();
        cfg.write_access_unit(&mut out, &avcc(&[SPS, PPS, idr]), true)
            .unwrap();
        assert_eq!(out.windows(SPS.len()).filter(|w| *w == SPS).count(), 1);
    }

    #[test]
    fn hevc_keyframe() {
        let cfg = VideoConfig::parse_hevc(&hevc_record()).unwrap();
        let idr: &[u8] = &[0x26, 0x01, 0xaf];
        let mut out = Vec::new();
        cfg.write_access_unit(&mut out, &avcc(&[idr]), true)
            .unwrap();
        let expected = [
            &[0, 0, 0, 1, 0x46, 0x01, 0x50][..],
            &[0, 0, 0, 1, 0x40, 0x01, 0xaa],
            &[0, 0, 0, 1, 0x42, 0x01, 0xbb],
            &[0, 0, 0, 1, 0x44, 0x01, 0xcc],
            &[0, 0, 0, 1],
            idr,
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn malformed_input() {
        assert_eq!(
            VideoConfig::parse_avc(&[1, 0x42, 0xc0]),
            Err(TsError::TruncatedDecoderConfig {
                codec: VideoCodec::H264
            })
        );
        assert_eq!(
            VideoConfig::parse_avc(&[0, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0]),
            Err(TsError::UnsupportedConfigVersion {
                codec: VideoCodec::H264,
                version: 0
            })
        );
        let cfg = VideoConfig::parse_avc(&avc_record()).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            cfg.write_access_unit(&mut out, &[0, 0, 0, 9, 0x65, 1], true),
            Err(TsError::NaluOverrun {
                declared: 9,
                available: 2
            })
        );
        assert_eq!(
            cfg.write_access_unit(&mut out, &[0, 0, 0, 1, 0x65, 0, 0], true),
            Err(TsError::TruncatedNaluLength { available: 2 })
        );
        assert!(out.is_empty());
    }
}
