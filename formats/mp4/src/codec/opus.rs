//! Opus: the identification header `OpusHead` (RFC 7845 5.1) and the
//! `dOps` box body made from it ("Encapsulation of Opus in ISO Base Media
//! File Format" 4.3.2): a version 0 instead of 1, big-endian instead of
//! little-endian fields, and the same channel mapping table.

use crate::error::Error;

/// A parsed `OpusHead`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channel count.
    pub channels: u8,
    /// Samples (at 48 kHz) to drop at the start of decoding.
    pub pre_skip: u16,
    /// The original input rate (informational: Opus decodes at 48 kHz).
    pub input_rate: u32,
    /// Output gain, Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family.
    pub mapping_family: u8,
    /// Stream count, coupled count and channel mapping, for families
    /// other than 0.
    pub mapping: Option<(u8, u8, Vec<u8>)>,
}

impl Default for OpusHead {
    /// Stereo, no pre-skip, 48 kHz: what the muxer assumes when no
    /// `OpusHead` was received.
    fn default() -> Self {
        OpusHead {
            channels: 2,
            pre_skip: 0,
            input_rate: 48000,
            output_gain: 0,
            mapping_family: 0,
            mapping: None,
        }
    }
}

impl OpusHead {
    /// Parses an `OpusHead` packet.
    pub fn parse(data: &[u8]) -> Result<OpusHead, Error> {
        if data.len() < 19 {
            return Err(Error::Truncated("OpusHead"));
        }
        if &data[..8] != b"OpusHead" {
            return Err(Error::Malformed("OpusHead magic"));
        }
        // Major version 0 (versions 0-15) is the one defined.
        if data[8] > 15 {
            return Err(Error::Unsupported("OpusHead version"));
        }
        let channels = data[9];
        if channels == 0 {
            return Err(Error::Malformed("OpusHead channel count 0"));
        }
        let family = data[18];
        let mapping = if family == 0 {
            if channels > 2 {
                return Err(Error::Malformed(
                    "OpusHead family 0 with more than 2 channels",
                ));
            }
            None
        } else {
            let table = data
                .get(19..21 + channels as usize)
                .ok_or(Error::Truncated("OpusHead channel mapping"))?;
            Some((table[0], table[1], table[2..].to_vec()))
        };
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([data[10], data[11]]),
            input_rate: u32::from_le_bytes([data[12], data[13], data[14], data[15]]),
            output_gain: i16::from_le_bytes([data[16], data[17]]),
            mapping_family: family,
            mapping,
        })
    }

    /// Reads a `dOps` box body back (an fMP4 reader's way to the
    /// `OpusHead` a host frame carries); None when it is not one.
    pub fn from_dops(b: &[u8]) -> Option<OpusHead> {
        if b.len() < 11 || b[0] != 0 || b[1] == 0 {
            return None;
        }
        let channels = b[1];
        let mapping_family = b[10];
        let mapping = if mapping_family == 0 {
            if channels > 2 {
                return None;
            }
            None
        } else {
            let t = b.get(11..13 + channels as usize)?;
            Some((t[0], t[1], t[2..].to_vec()))
        };
        Some(OpusHead {
            channels,
            pre_skip: u16::from_be_bytes([b[2], b[3]]),
            input_rate: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            output_gain: i16::from_be_bytes([b[8], b[9]]),
            mapping_family,
            mapping,
        })
    }

    /// The `OpusHead` packet (version 1, little-endian fields).
    pub fn packet(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(19 + 2 + self.channels as usize);
        b.extend_from_slice(b"OpusHead");
        b.push(1);
        b.push(self.channels);
        b.extend_from_slice(&self.pre_skip.to_le_bytes());
        b.extend_from_slice(&self.input_rate.to_le_bytes());
        b.extend_from_slice(&self.output_gain.to_le_bytes());
        b.push(self.mapping_family);
        if let Some((streams, coupled, map)) = &self.mapping {
            b.push(*streams);
            b.push(*coupled);
            b.extend_from_slice(map);
        }
        b
    }

    /// The `dOps` box body.
    pub fn dops(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(11 + self.channels as usize + 2);
        b.push(0); // Version
        b.push(self.channels);
        b.extend_from_slice(&self.pre_skip.to_be_bytes());
        b.extend_from_slice(&self.input_rate.to_be_bytes());
        b.extend_from_slice(&self.output_gain.to_be_bytes());
        b.push(self.mapping_family);
        if let Some((streams, coupled, map)) = &self.mapping {
            b.push(*streams);
            b.push(*coupled);
            b.extend_from_slice(map);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_to_dops() {
        // libopus via ffmpeg: mono, pre-skip 312, 48 kHz.
        let head = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00";
        let h = OpusHead::parse(head).unwrap();
        assert_eq!((h.channels, h.pre_skip, h.input_rate), (1, 312, 48000));
        assert_eq!(h.dops(), [0, 1, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
        // Family 1, 6 channels (5.1): the mapping table follows.
        let mut head = b"OpusHead\x01\x06\x00\x00\x44\xac\x00\x00\x00\x01\x01".to_vec();
        head.extend_from_slice(&[4, 2, 0, 4, 1, 2, 3, 5]);
        let h = OpusHead::parse(&head).unwrap();
        assert_eq!(h.mapping, Some((4, 2, vec![0, 4, 1, 2, 3, 5])));
        let d = h.dops();
        assert_eq!(&d[..11], &[0, 6, 0, 0, 0, 0, 0xac, 0x44, 0x01, 0x00, 1]);
        assert_eq!(&d[11..], &[4, 2, 0, 4, 1, 2, 3, 5]);
        assert!(OpusHead::parse(&head[..head.len() - 1]).is_err());
        // And back: dOps → OpusHead → the same packet.
        assert_eq!(OpusHead::from_dops(&d), Some(h.clone()));
        assert_eq!(h.packet(), head);
        assert_eq!(OpusHead::from_dops(&d[..d.len() - 1]), None);
        assert_eq!(OpusHead::from_dops(&[1; 11]), None, "version 1");
        assert!(OpusHead::parse(b"OpusTags\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err());
        assert!(OpusHead::parse(b"OpusHead\x01\x03\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err());
    }
}
