//! AAC: the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), enough of it for
//! the sample entry (rate, channels) and the codec string.

use crate::bits::BitReader;
use crate::error::Error;

const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What the muxer and the codec string need from an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// The first audio object type signalled (2 AAC-LC, 5 SBR = HE-AAC,
    /// 29 PS = HE-AACv2, ...): the one the codec string names.
    pub object_type: u8,
    /// The output sample rate (with explicit SBR: the extension rate).
    pub sample_rate: u32,
    /// `channelConfiguration` (0: defined by a program config element).
    pub channel_config: u8,
}

fn object_type(r: &mut BitReader) -> Result<u8, Error> {
    let t = r.bits(5)?;
    Ok(if t == 31 {
        32 + r.bits(6)? as u8
    } else {
        t as u8
    })
}

fn sample_rate(r: &mut BitReader) -> Result<u32, Error> {
    match r.bits(4)? {
        15 => match r.bits(24)? {
            0 => Err(Error::Malformed("AAC sample rate 0")),
            rate => Ok(rate),
        },
        i => RATES
            .get(i as usize)
            .copied()
            .ok_or(Error::Malformed("AAC sampling frequency index")),
    }
}

impl AacConfig {
    /// Parses an AudioSpecificConfig; what follows the fields named here
    /// (GASpecificConfig, sync extensions) is not read.
    pub fn parse(asc: &[u8]) -> Result<AacConfig, Error> {
        let mut r = BitReader::new(asc, "AudioSpecificConfig");
        let object = object_type(&mut r)?;
        if object == 0 {
            return Err(Error::Malformed("AAC object type 0"));
        }
        let mut rate = sample_rate(&mut r)?;
        let channel_config = r.bits(4)? as u8;
        if object == 5 || object == 29 {
            // Explicit SBR: the output rate follows, then the core type.
            rate = sample_rate(&mut r)?;
        }
        Ok(AacConfig {
            object_type: object,
            sample_rate: rate,
            channel_config,
        })
    }

    /// The channel count for the sample entry (2 when a program config
    /// element defines the layout).
    pub fn channels(&self) -> u16 {
        match self.channel_config {
            0 => 2,
            c @ 1..=6 => c as u16,
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            _ => 2,
        }
    }

    /// The RFC 6381 codec string: `mp4a.40.<object type>`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_configs() {
        // ffmpeg's AAC-LC, 44.1 kHz mono (with its sync extension).
        let c = AacConfig::parse(&[0x12, 0x08, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels()), (2, 44100, 1));
        assert_eq!(c.codec_string(), "mp4a.40.2");
        // AAC-LC 48 kHz stereo.
        let c = AacConfig::parse(&[0x11, 0x90]).unwrap();
        assert_eq!((c.sample_rate, c.channels()), (48000, 2));
        // HE-AAC explicit: SBR, 24 kHz core, 48 kHz output, stereo.
        let c = AacConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!((c.object_type, c.sample_rate), (5, 48000));
        assert_eq!(c.codec_string(), "mp4a.40.5");
        // Escape: explicit 24-bit rate.
        let c = AacConfig::parse(&[0x17, 0x80, 0x00, 0xfa, 0x10]).unwrap();
        assert_eq!((c.sample_rate, c.channel_config), (500, 2));
        assert!(AacConfig::parse(&[0x12]).is_err());
        assert!(AacConfig::parse(&[0x16, 0x88]).is_err()); // index 13
        assert!(AacConfig::parse(&[0x00, 0x00]).is_err());
    }
}
