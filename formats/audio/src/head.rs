//! The Opus identification header, `OpusHead` (RFC 7845 section 5.1): what
//! the host carries as an Opus track's config frame. Written for
//! [`crate::AacToOpus`]'s output, read (channel count) for
//! [`crate::OpusToAac`]'s input. rill-abi has no helper for it, and the
//! container crates' own (rill-mp4, rill-ts) are not dependencies here.

use crate::Error;

/// The fields of an `OpusHead` this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHeadInfo {
    /// Output channel count (1 or 2 here: mapping family 0, or family 1
    /// with at most two channels).
    pub channels: u8,
    /// Samples at 48 kHz the decoder drops at the start.
    pub pre_skip: u16,
    /// The original input rate, informational.
    pub input_rate: u32,
}

/// A mapping-family-0 `OpusHead`: version 1, `channels` (1 or 2),
/// `pre_skip` samples at 48 kHz, input rate 48 kHz, no output gain.
pub fn opus_head(channels: u8, pre_skip: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(channels);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family 0: mono or stereo, one stream
    h
}

impl OpusHeadInfo {
    /// Parses and validates an `OpusHead`. More than two channels (which
    /// needs libopus's multistream decoder) is refused.
    pub fn parse(data: &[u8]) -> Result<OpusHeadInfo, Error> {
        if data.len() < 19 {
            return Err(Error::BadConfig(format!(
                "OpusHead of {} bytes, under 19",
                data.len()
            )));
        }
        if &data[..8] != b"OpusHead" {
            return Err(Error::BadConfig("OpusHead magic missing".into()));
        }
        // Versions 0-15 share the layout (the upper nibble is the
        // incompatible "major" version).
        if data[8] > 15 {
            return Err(Error::BadConfig(format!("OpusHead version {}", data[8])));
        }
        let channels = data[9];
        let family = data[18];
        if channels == 0 {
            return Err(Error::BadConfig("OpusHead with 0 channels".into()));
        }
        if channels > 2 {
            return Err(Error::UnsupportedChannels(format!(
                "{channels} Opus channels (multistream); 1 or 2 supported"
            )));
        }
        match family {
            0 => {}
            // Family 1 with one or two channels is one stream, laid out as
            // family 0 when the mapping is the identity.
            1 => {
                let table = data
                    .get(19..21 + channels as usize)
                    .ok_or_else(|| Error::BadConfig("OpusHead mapping table truncated".into()))?;
                let (streams, coupled, map) = (table[0], table[1], &table[2..]);
                let one_stream = streams == 1 && coupled == channels - 1;
                let identity = map.iter().enumerate().all(|(i, &m)| m as usize == i);
                if !one_stream || !identity {
                    return Err(Error::UnsupportedChannels(format!(
                        "OpusHead family 1 with {streams} streams, {coupled} coupled"
                    )));
                }
            }
            f => {
                return Err(Error::UnsupportedChannels(format!(
                    "OpusHead channel mapping family {f}"
                )))
            }
        }
        Ok(OpusHeadInfo {
            channels,
            pre_skip: u16::from_le_bytes([data[10], data[11]]),
            input_rate: u32::from_le_bytes([data[12], data[13], data[14], data[15]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_head_parses_back() {
        let h = opus_head(2, 312);
        assert_eq!(h.len(), 19);
        assert_eq!(
            OpusHeadInfo::parse(&h).unwrap(),
            OpusHeadInfo {
                channels: 2,
                pre_skip: 312,
                input_rate: 48_000
            }
        );
    }

    #[test]
    fn bad_heads_are_refused() {
        let good = opus_head(1, 0);
        for n in 0..good.len() {
            assert!(OpusHeadInfo::parse(&good[..n]).is_err());
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(OpusHeadInfo::parse(&bad).is_err());
        let mut six = good.clone();
        six[9] = 6;
        six[18] = 1;
        assert!(matches!(
            OpusHeadInfo::parse(&six),
            Err(Error::UnsupportedChannels(_))
        ));
        let mut zero = good.clone();
        zero[9] = 0;
        assert!(OpusHeadInfo::parse(&zero).is_err());
        // Family 1, stereo, one coupled stream, identity map: accepted.
        let mut fam1 = opus_head(2, 0);
        fam1[18] = 1;
        fam1.extend_from_slice(&[1, 1, 0, 1]);
        assert_eq!(OpusHeadInfo::parse(&fam1).unwrap().channels, 2);
    }
}
