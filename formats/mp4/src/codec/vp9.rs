//! VP9: the VPCodecConfigurationRecord (`vpcC`, "VP Codec ISO Media File
//! Format Binding" 2.2), its codec string, and the picture size from a key
//! frame's uncompressed header (VP9 6.2), since the record has none.

use crate::bits::BitReader;
use crate::error::Error;

/// A parsed `vpcC` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp9Config {
    /// Profile 0-3.
    pub profile: u8,
    /// Level × 10 (10 = level 1, 31 = level 3.1).
    pub level: u8,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// 0: 4:2:0 vertical, 1: 4:2:0 colocated, 2: 4:2:2, 3: 4:4:4.
    pub chroma_subsampling: u8,
    /// `videoFullRangeFlag`.
    pub full_range: bool,
    /// Colour primaries, transfer characteristics, matrix coefficients
    /// (ISO/IEC 23091-2 code points).
    pub colour: (u8, u8, u8),
    record_start: usize,
}

impl Vp9Config {
    /// Parses a VPCodecConfigurationRecord, bare (as the host's model
    /// carries it) or behind the `vpcC` box's version 1 and flags (as
    /// ffmpeg's Enhanced RTMP muxer sends it).
    pub fn parse(data: &[u8]) -> Result<Vp9Config, Error> {
        let init_size = |d: &[u8], at: usize| {
            d.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        };
        // The full-box form starts 01 00 00 00; as a bare record that would
        // be profile 1, level 0 and bit depth 0, which no stream has.
        let start = if data.len() >= 12
            && data[..4] == [1, 0, 0, 0]
            && init_size(data, 10).is_some_and(|n| 12 + n == data.len())
        {
            4
        } else {
            0
        };
        let r = &data[start..];
        let n = init_size(r, 6).ok_or(Error::Truncated("vpcC"))?;
        if r.len() < 8 + n {
            return Err(Error::Truncated("vpcC initialization data"));
        }
        let bit_depth = r[2] >> 4;
        if !matches!(bit_depth, 8 | 10 | 12) || r[0] > 3 {
            return Err(Error::Malformed("vpcC"));
        }
        Ok(Vp9Config {
            profile: r[0],
            level: r[1],
            bit_depth,
            chroma_subsampling: (r[2] >> 1) & 7,
            full_range: r[2] & 1 != 0,
            colour: (r[3], r[4], r[5]),
            record_start: start,
        })
    }

    /// The record without the box's version and flags: what goes into a
    /// `vpcC` box after its own version 1 and flags.
    pub fn record<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.record_start.min(data.len())..]
    }

    /// The codec string: `vp09.PP.LL.DD`, and the optional
    /// `.CC.cp.tc.mc.FF` fields (all or none) when the stream differs from
    /// their defaults (4:2:0 colocated, BT.709 or unspecified colour,
    /// limited range).
    pub fn codec_string(&self) -> String {
        let mut s = format!(
            "vp09.{:02}.{:02}.{:02}",
            self.profile, self.level, self.bit_depth
        );
        let (cp, tc, mc) = self.colour;
        let default_colour = |v: u8| v == 1 || v == 2;
        if self.chroma_subsampling != 1
            || !default_colour(cp)
            || !default_colour(tc)
            || !default_colour(mc)
            || self.full_range
        {
            s.push_str(&format!(
                ".{:02}.{cp:02}.{tc:02}.{mc:02}.{:02}",
                self.chroma_subsampling, self.full_range as u8
            ));
        }
        s
    }
}

/// The picture size from a VP9 key frame (the first frame of a
/// superframe). `Ok(None)` for a frame that is not a key frame.
pub fn keyframe_dimensions(frame: &[u8]) -> Result<Option<(u32, u32)>, Error> {
    let mut r = BitReader::new(frame, "VP9 frame header");
    if r.bits(2)? != 2 {
        return Err(Error::Malformed("VP9 frame marker"));
    }
    let low = r.bits(1)?;
    let profile = (r.bits(1)? << 1) | low;
    if profile == 3 {
        r.skip(1)?;
    }
    if r.bit()? {
        return Ok(None); // show_existing_frame
    }
    if r.bit()? {
        return Ok(None); // not a key frame
    }
    r.skip(2)?; // show_frame, error_resilient_mode
    if r.bits(24)? != 0x49_83_42 {
        return Err(Error::Malformed("VP9 sync code"));
    }
    if profile >= 2 {
        r.skip(1)?;
    }
    if r.bits(3)? != 7 {
        r.skip(1)?; // color_range
        if profile == 1 || profile == 3 {
            r.skip(3)?;
        }
    } else if profile == 1 || profile == 3 {
        r.skip(1)?;
    }
    let width = r.bits(16)? + 1;
    let height = r.bits(16)? + 1;
    Ok(Some((width, height)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds::VPCC_FULL_BOX;

    #[test]
    fn ffmpeg_record() {
        let c = Vp9Config::parse(VPCC_FULL_BOX).unwrap();
        assert_eq!((c.profile, c.level, c.bit_depth), (0, 20, 8));
        assert_eq!(c.record(VPCC_FULL_BOX), &VPCC_FULL_BOX[4..]);
        // What ffmpeg's DASH muxer writes for the same stream.
        assert_eq!(c.codec_string(), "vp09.00.20.08");
        // The bare record parses the same.
        let bare = Vp9Config::parse(&VPCC_FULL_BOX[4..]).unwrap();
        assert_eq!(bare.codec_string(), "vp09.00.20.08");
        assert_eq!(bare.record(&VPCC_FULL_BOX[4..]), &VPCC_FULL_BOX[4..]);
    }

    #[test]
    fn long_form() {
        // Profile 2, level 4.1, 10 bit, 4:2:0 colocated, BT.2020 PQ.
        let c = Vp9Config::parse(&[2, 41, 0xa2, 9, 16, 9, 0, 0]).unwrap();
        assert_eq!(c.codec_string(), "vp09.02.41.10.01.09.16.09.00");
        assert!(Vp9Config::parse(&[0, 10, 0x02, 1, 1, 1, 0, 0]).is_err());
        assert!(Vp9Config::parse(&[0, 10, 0x82, 1, 1, 1, 0, 2, 0]).is_err());
        assert!(Vp9Config::parse(&[0, 10]).is_err());
    }

    #[test]
    fn keyframe_header() {
        // Profile 0 key frame: marker 10, profile 00, show_existing 0,
        // key 0, show 1, error_res 0, sync code, colour space 2 (BT.709)
        // + range 0, then 320-1 and 240-1 on 16 bits each.
        let mut bits = String::from("10000010");
        bits += "010010011000001101000010";
        bits += "0100";
        bits += &format!("{:016b}{:016b}", 319, 239);
        let bytes: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| {
                let s = std::str::from_utf8(c).unwrap();
                u8::from_str_radix(&format!("{s:0<8}"), 2).unwrap()
            })
            .collect();
        assert_eq!(keyframe_dimensions(&bytes).unwrap(), Some((320, 240)));
        // An inter frame.
        assert_eq!(keyframe_dimensions(&[0b1000_0110]).unwrap(), None);
        assert!(keyframe_dimensions(&[0]).is_err());
        assert!(keyframe_dimensions(&bytes[..6]).is_err());
    }
}
