//! AV1: the AV1CodecConfigurationRecord (`av1C`, AV1-ISOBMFF 2.3), its
//! codec string (AV1-ISOBMFF "Codecs Parameter String"), and the sequence
//! header OBU (AV1 5.5) as far as the picture size and colour config.

use bytes::Bytes;

use crate::bits::{leb128, BitReader};
use crate::error::Error;

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// What the muxer and the codec string need from an `av1C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Config {
    /// `seq_profile` (0 Main, 1 High, 2 Professional).
    pub profile: u8,
    /// `seq_level_idx_0` (0 = level 2.0, 8 = level 4.0, ...).
    pub level: u8,
    /// `seq_tier_0` (false: Main, true: High).
    pub high_tier: bool,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// `mono_chrome`.
    pub monochrome: bool,
    /// `chroma_subsampling_x`, `chroma_subsampling_y`.
    pub subsampling: (bool, bool),
    /// `chroma_sample_position`.
    pub chroma_sample_position: u8,
    /// The sequence header found in `configOBUs`, if any.
    pub sequence_header: Option<SequenceHeader>,
}

/// The parts of a sequence header OBU this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceHeader {
    /// `max_frame_width_minus_1 + 1`.
    pub width: u32,
    /// `max_frame_height_minus_1 + 1`.
    pub height: u32,
    /// Colour primaries, transfer characteristics, matrix coefficients,
    /// when `color_description_present_flag` is set.
    pub color_description: Option<(u8, u8, u8)>,
    /// `color_range` (true: full range).
    pub full_range: bool,
}

impl Av1Config {
    /// Parses an `av1C` body (4 bytes, then optional configOBUs).
    pub fn parse(data: &[u8]) -> Result<Av1Config, Error> {
        if data.len() < 4 {
            return Err(Error::Truncated("av1C"));
        }
        if data[0] != 0x81 {
            return Err(Error::Malformed("av1C marker/version"));
        }
        let high_bitdepth = data[2] & 0x40 != 0;
        let twelve_bit = data[2] & 0x20 != 0;
        Ok(Av1Config {
            profile: data[1] >> 5,
            level: data[1] & 0x1f,
            high_tier: data[2] & 0x80 != 0,
            bit_depth: match (high_bitdepth, twelve_bit) {
                (false, _) => 8,
                (true, false) => 10,
                (true, true) => 12,
            },
            monochrome: data[2] & 0x10 != 0,
            subsampling: (data[2] & 0x08 != 0, data[2] & 0x04 != 0),
            chroma_sample_position: data[2] & 3,
            sequence_header: find_sequence_header(&data[4..])?,
        })
    }

    /// The codec string: `av01.P.LLT.DD`, and the optional
    /// `.M.CCC.cp.tc.mc.F` fields (all or none) when the stream differs
    /// from their defaults (4:2:0, BT.709 or unspecified colour, limited
    /// range).
    pub fn codec_string(&self) -> String {
        let mut s = format!(
            "av01.{}.{:02}{}.{:02}",
            self.profile,
            self.level,
            if self.high_tier { 'H' } else { 'M' },
            self.bit_depth
        );
        let (colour, full_range) = match self.sequence_header {
            Some(h) => (h.color_description, h.full_range),
            None => (None, false),
        };
        let (cp, tc, mc) = colour.unwrap_or((1, 1, 1));
        let default_colour = |v: u8| v == 1 || v == 2;
        let default = !self.monochrome
            && self.subsampling == (true, true)
            && self.chroma_sample_position == 0
            && default_colour(cp)
            && default_colour(tc)
            && default_colour(mc)
            && !full_range;
        if !default {
            s.push_str(&format!(
                ".{}.{}{}{}.{cp:02}.{tc:02}.{mc:02}.{}",
                self.monochrome as u8,
                self.subsampling.0 as u8,
                self.subsampling.1 as u8,
                self.chroma_sample_position,
                full_range as u8
            ));
        }
        s
    }

    /// The picture size from the sequence header in `configOBUs`.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        self.sequence_header.map(|h| (h.width, h.height))
    }
}

/// The first sequence header OBU in a run of low-overhead OBUs (what
/// `configOBUs` and a key frame's sample hold). `Ok(None)` when there is
/// none; an error when the OBU framing is broken before one is found.
pub fn find_sequence_header(mut obus: &[u8]) -> Result<Option<SequenceHeader>, Error> {
    // Every OBU takes at least one byte, so the loop is bounded.
    while !obus.is_empty() {
        let header = obus[0];
        if header & 0x80 != 0 {
            return Err(Error::Malformed("OBU forbidden bit"));
        }
        let obu_type = (header >> 3) & 0x0f;
        let mut pos = 1 + ((header >> 2) & 1) as usize;
        let size = if header & 0x02 != 0 {
            let (size, n) = leb128(obus.get(pos..).ok_or(Error::Truncated("OBU header"))?)?;
            pos += n;
            size as usize
        } else {
            obus.len().saturating_sub(pos)
        };
        let payload = obus
            .get(pos..pos.saturating_add(size))
            .ok_or(Error::Truncated("OBU"))?;
        if obu_type == OBU_SEQUENCE_HEADER {
            return parse_sequence_header(payload).map(Some);
        }
        obus = &obus[pos + size..];
    }
    Ok(None)
}

/// The sample without its leading temporal delimiter OBUs: AV1-ISOBMFF
/// (2.4) leaves them out of samples, while encoders and Enhanced RTMP
/// start each temporal unit with one. A slice of the same buffer, no copy;
/// the sample as it was if its OBU framing does not parse.
pub fn strip_temporal_delimiters(sample: &Bytes) -> Bytes {
    let mut at = 0;
    // Each round consumes at least the one-byte header.
    while let Some(&header) = sample.get(at) {
        if (header >> 3) & 0x0f != OBU_TEMPORAL_DELIMITER || header & 0x80 != 0 {
            break;
        }
        let mut pos = at + 1 + ((header >> 2) & 1) as usize;
        let size = if header & 0x02 != 0 {
            match sample.get(pos..).map(leb128) {
                Some(Ok((size, n))) => {
                    pos += n;
                    size as usize
                }
                _ => return sample.clone(),
            }
        } else {
            // Without a size field the OBU runs to the end: nothing after.
            return sample.clone();
        };
        match pos.checked_add(size).filter(|&end| end <= sample.len()) {
            Some(end) => at = end,
            None => return sample.clone(),
        }
    }
    sample.slice(at..)
}

/// Parses a sequence header OBU payload (AV1 5.5.1) up to its colour
/// config.
pub fn parse_sequence_header(payload: &[u8]) -> Result<SequenceHeader, Error> {
    let mut r = BitReader::new(payload, "AV1 sequence header");
    let profile = r.bits(3)?;
    r.skip(1)?; // still_picture
    let reduced = r.bit()?;
    if reduced {
        r.skip(5)?; // seq_level_idx[0]
    } else {
        let mut decoder_model_info = false;
        let mut buffer_delay_length = 0;
        if r.bit()? {
            // timing_info()
            r.skip(64)?;
            if r.bit()? {
                r.uvlc()?;
            }
            decoder_model_info = r.bit()?;
            if decoder_model_info {
                buffer_delay_length = r.bits(5)? as usize + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay = r.bit()?;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            if r.bits(5)? > 7 {
                r.skip(1)?; // seq_tier
            }
            if decoder_model_info && r.bit()? {
                r.skip(2 * buffer_delay_length + 1)?;
            }
            if initial_display_delay && r.bit()? {
                r.skip(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = r.bits(width_bits)? as u64 + 1;
    let height = r.bits(height_bits)? as u64 + 1;
    let frame_id_numbers = !reduced && r.bit()?;
    if frame_id_numbers {
        r.skip(7)?;
    }
    r.skip(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        r.skip(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = r.bit()?;
        if order_hint {
            r.skip(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let force_screen_content_tools = if r.bit()? { 2 } else { r.bits(1)? };
        if force_screen_content_tools > 0 && !r.bit()? {
            r.skip(1)?; // seq_force_integer_mv
        }
        if order_hint {
            r.skip(3)?;
        }
    }
    r.skip(3)?; // enable_superres, enable_cdef, enable_restoration
                // color_config()
    let high_bitdepth = r.bit()?;
    if profile == 2 && high_bitdepth {
        r.skip(1)?;
    }
    let mono = profile != 1 && r.bit()?;
    let color_description = if r.bit()? {
        Some((r.bits(8)? as u8, r.bits(8)? as u8, r.bits(8)? as u8))
    } else {
        None
    };
    // sRGB (BT.709 primaries, sRGB transfer, identity matrix) is full
    // range by definition; otherwise the flag follows.
    let full_range = if !mono && color_description == Some((1, 13, 0)) {
        true
    } else {
        r.bit()?
    };
    Ok(SequenceHeader {
        width: width as u32,
        height: height as u32,
        color_description,
        full_range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds::AV1C_MAIN;

    #[test]
    fn svt_record() {
        let c = Av1Config::parse(AV1C_MAIN).unwrap();
        assert_eq!((c.profile, c.level, c.bit_depth), (0, 0, 8));
        assert_eq!(c.dimensions(), Some((320, 240)));
        // What ffmpeg's DASH muxer writes for the same stream.
        assert_eq!(c.codec_string(), "av01.0.00M.08");
    }

    #[test]
    fn long_form_when_not_default() {
        let mut c = Av1Config::parse(AV1C_MAIN).unwrap();
        c.level = 13;
        c.high_tier = true;
        c.bit_depth = 10;
        c.sequence_header = Some(SequenceHeader {
            width: 3840,
            height: 2160,
            color_description: Some((9, 16, 9)),
            full_range: false,
        });
        // The AV1-ISOBMFF example of BT.2100 PQ.
        assert_eq!(c.codec_string(), "av01.0.13H.10.0.110.09.16.09.0");
        c.sequence_header = None;
        assert_eq!(c.codec_string(), "av01.0.13H.10");
    }

    #[test]
    fn temporal_delimiters_left_out() {
        let s = Bytes::from_static(&[0x12, 0x00, 0x12, 0x00, 0x32, 0x01, 0xaa]);
        assert_eq!(&strip_temporal_delimiters(&s)[..], &[0x32, 0x01, 0xaa]);
        for keep in [
            &[0x32, 0x01, 0xaa][..],
            &[0x12],
            &[0x12, 0x05, 0],
            &[0x10, 0],
        ] {
            let s = Bytes::copy_from_slice(keep);
            assert_eq!(strip_temporal_delimiters(&s), s);
        }
        assert!(strip_temporal_delimiters(&Bytes::from_static(&[0x12, 0])).is_empty());
    }

    #[test]
    fn broken_records_are_errors() {
        assert!(Av1Config::parse(&[0x81, 0, 0]).is_err());
        assert!(Av1Config::parse(&[0x01, 0, 0, 0]).is_err());
        // The sequence header cut short.
        for n in 6..AV1C_MAIN.len() {
            assert!(Av1Config::parse(&AV1C_MAIN[..n]).is_err(), "{n}");
        }
        // No configOBUs: valid, no size.
        assert_eq!(
            Av1Config::parse(&AV1C_MAIN[..4]).unwrap().dimensions(),
            None
        );
    }
}
