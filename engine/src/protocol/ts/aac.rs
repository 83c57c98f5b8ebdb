//! AAC: the AudioSpecificConfig of the FLV sequence header (ISO 14496-3 1.6.2.1) and the ADTS
//! header (ISO 14496-3 1.A.2.2) that MPEG-TS carries in front of every raw frame.

use super::TsError;

/// ADTS header without CRC.
pub(super) const ADTS_HEADER_LEN: usize = 7;
/// `frame_length` is 13 bits and counts the header.
const MAX_ADTS_FRAME: usize = 0x1fff;

/// What an ADTS header needs from the AudioSpecificConfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AacConfig {
    /// ADTS `profile`: the MPEG-4 audio object type minus one (Main, LC, SSR, LTP).
    pub(super) profile: u8,
    pub(super) sampling_frequency_index: u8,
    pub(super) channel_configuration: u8,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, TsError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.pos / 8)
                .ok_or(TsError::TruncatedAudioSpecificConfig)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u32, TsError> {
        let aot = self.read(5)?;
        if aot == 31 {
            return Ok(32 + self.read(6)?);
        }
        Ok(aot)
    }

    fn frequency_index(&mut self) -> Result<u8, TsError> {
        let index = self.read(4)? as u8;
        if index == 15 {
            return Err(TsError::ExplicitSampleRate {
                rate: self.read(24)?,
            });
        }
        Ok(index)
    }
}

impl AacConfig {
    /// Parses an AudioSpecificConfig. Explicitly signalled HE-AAC (object type 5 or 29) is
    /// described by its core AAC-LC layer, which is what ADTS can say (implicit SBR/PS signalling).
    pub(super) fn parse(asc: &[u8]) -> Result<Self, TsError> {
        let mut bits = Bits { data: asc, pos: 0 };
        let mut aot = bits.object_type()?;
        let sampling_frequency_index = bits.frequency_index()?;
        let channel_configuration = bits.read(4)? as u8;
        if aot == 5 || aot == 29 {
            // extensionSamplingFrequencyIndex, then the core object type.
            let _ = bits.frequency_index()?;
            aot = bits.object_type()?;
        }
        if !(1..=4).contains(&aot) {
            return Err(TsError::UnsupportedAudioObjectType { object_type: aot });
        }
        if sampling_frequency_index > 12 {
            return Err(TsError::ReservedSampleRateIndex {
                index: sampling_frequency_index,
            });
        }
        if !(1..=7).contains(&channel_configuration) {
            return Err(TsError::UnsupportedChannelConfiguration {
                channels: channel_configuration,
            });
        }
        Ok(Self {
            profile: (aot - 1) as u8,
            sampling_frequency_index,
            channel_configuration,
        })
    }

    /// The 7-byte ADTS header (MPEG-4, no CRC, one raw data block) for a raw frame of
    /// `payload_len` bytes.
    pub(super) fn adts_header(&self, payload_len: usize) -> Result<[u8; ADTS_HEADER_LEN], TsError> {
        let frame_len = payload_len + ADTS_HEADER_LEN;
        if frame_len > MAX_ADTS_FRAME {
            return Err(TsError::AacFrameTooLarge { len: payload_len });
        }
        let len = frame_len as u16;
        Ok([
            0xff,
            // syncword low nibble, ID 0 (MPEG-4), layer 00, protection_absent 1
            0xf1,
            (self.profile << 6)
                | (self.sampling_frequency_index << 2)
                | (self.channel_configuration >> 2),
            ((self.channel_configuration & 0x03) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 0x07) as u8) << 5 | 0x1f, // buffer fullness 0x7ff: variable bit rate
            0xfc,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_lc_44100_stereo() {
        let cfg = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            cfg,
            AacConfig {
                profile: 1,
                sampling_frequency_index: 4,
                channel_configuration: 2
            }
        );
        // frame_length = 7 + 100 = 107 = 0b000_0000_1101_011
        assert_eq!(
            cfg.adts_header(100).unwrap(),
            [0xff, 0xf1, 0x50, 0x80, 0x0d, 0x7f, 0xfc]
        );
    }

    #[test]
    fn he_aac_uses_core_layer() {
        // aot 5 (SBR), sfi 6 (24 kHz core), 2 channels, ext sfi 3 (48 kHz), core aot 2.
        // 00101 0110 0010 0011 00010 -> 0010 1011 0001 0001 1000 10..
        let cfg = AacConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(cfg.profile, 1);
        assert_eq!(cfg.sampling_frequency_index, 6);
        assert_eq!(cfg.channel_configuration, 2);
    }

    #[test]
    fn bad_configs() {
        assert_eq!(
            AacConfig::parse(&[0x12]),
            Err(TsError::TruncatedAudioSpecificConfig)
        );
        // aot 2, sfi 15 (explicit 44100 = 0x00ac44), ...
        assert_eq!(
            AacConfig::parse(&[0x17, 0x80, 0x56, 0x22, 0x10]),
            Err(TsError::ExplicitSampleRate { rate: 44100 })
        );
        // aot 23 (ER AAC LD)
        assert_eq!(
            AacConfig::parse(&[0xba, 0x10]),
            Err(TsError::UnsupportedAudioObjectType { object_type: 23 })
        );
        // channel configuration 0
        assert_eq!(
            AacConfig::parse(&[0x12, 0x00]),
            Err(TsError::UnsupportedChannelConfiguration { channels: 0 })
        );
        let cfg = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            cfg.adts_header(8185),
            Err(TsError::AacFrameTooLarge { len: 8185 })
        );
    }
}
