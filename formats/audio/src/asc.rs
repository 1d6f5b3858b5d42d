//! A first look at an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): object
//! type, sample rate, channel configuration. Only enough to refuse nonsense
//! early with a clear message and to pick the output channel count before
//! the first frame decodes; FDK's `aacDecoder_ConfigRaw` does the full
//! validation, and the decoder's stream info is the truth afterwards (an
//! implicitly signalled HE-AAC stream decodes at twice the rate read here).

use crate::Error;

/// The fields read from an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asc {
    /// Audio object type (2 = AAC-LC, 5 = SBR, 29 = PS, ...).
    pub object_type: u8,
    /// The core sample rate.
    pub sample_rate: u32,
    /// channelConfiguration: 0 = in a program config element, 1 = mono,
    /// 2 = stereo, 3..=7 and 11..=14 = multichannel layouts.
    pub channel_config: u8,
}

const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.pos / 8)
                .ok_or_else(|| Error::BadConfig("AudioSpecificConfig truncated".into()))?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, Error> {
        let t = self.read(5)?;
        Ok(if t == 31 { 32 + self.read(6)? } else { t } as u8)
    }

    fn rate(&mut self) -> Result<u32, Error> {
        match self.read(4)? {
            15 => self.read(24),
            i => RATES
                .get(i as usize)
                .copied()
                .ok_or_else(|| Error::BadConfig(format!("reserved sample rate index {i}"))),
        }
    }
}

impl Asc {
    /// Reads and sanity-checks an AudioSpecificConfig.
    pub fn parse(data: &[u8]) -> Result<Asc, Error> {
        if data.len() < 2 {
            return Err(Error::BadConfig(format!(
                "AudioSpecificConfig of {} bytes",
                data.len()
            )));
        }
        if data.len() > 64 {
            return Err(Error::BadConfig(format!(
                "AudioSpecificConfig of {} bytes, over 64",
                data.len()
            )));
        }
        let mut b = Bits { data, pos: 0 };
        let object_type = b.object_type()?;
        let sample_rate = b.rate()?;
        let channel_config = b.read(4)? as u8;
        if object_type == 0 {
            return Err(Error::BadConfig("audio object type 0".into()));
        }
        if !(7350..=96000).contains(&sample_rate) {
            return Err(Error::UnsupportedRate(sample_rate));
        }
        if matches!(channel_config, 8..=10 | 15) {
            return Err(Error::UnsupportedChannels(format!(
                "reserved AAC channel configuration {channel_config}"
            )));
        }
        Ok(Asc {
            object_type,
            sample_rate,
            channel_config,
        })
    }

    /// The channel count the bridge outputs: mono stays mono, everything
    /// else (stereo, multichannel, a PCE layout) becomes stereo, downmixed
    /// by FDK.
    pub fn output_channels(&self) -> u8 {
        if self.channel_config == 1 {
            1
        } else {
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_configs() {
        // AAC-LC 44.1 kHz stereo.
        let a = Asc::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (a.object_type, a.sample_rate, a.channel_config),
            (2, 44100, 2)
        );
        // AAC-LC 48 kHz mono.
        let a = Asc::parse(&[0x11, 0x88]).unwrap();
        assert_eq!(
            (a.object_type, a.sample_rate, a.channel_config),
            (2, 48000, 1)
        );
        assert_eq!(a.output_channels(), 1);
        // HE-AAC (explicit, AOT 5) 24 kHz core, stereo.
        let a = Asc::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(
            (a.object_type, a.sample_rate, a.channel_config),
            (5, 24000, 2)
        );
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(Asc::parse(&[]).is_err());
        assert!(Asc::parse(&[0x12]).is_err());
        assert!(Asc::parse(&[0x00, 0x10]).is_err()); // object type 0
        assert!(Asc::parse(&[0x16, 0x90]).is_err()); // rate index 13
        assert!(Asc::parse(&[0x12, 0x40]).is_err()); // channel config 8
        assert!(Asc::parse(&[0x17, 0x80, 0x00]).is_err()); // explicit rate, truncated
    }
}
