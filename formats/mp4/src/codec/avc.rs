//! H.264: the AVCDecoderConfigurationRecord (`avcC`, ISO/IEC 14496-15
//! 5.3.3.1) and as much of the sequence parameter set (ITU-T H.264 7.3.2.1)
//! as the picture size needs.

use crate::bits::{unescape, BitReader};
use crate::error::Error;

/// What the muxer and the codec string need from an `avcC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (66 baseline, 77 main, 100 high, ...).
    pub profile: u8,
    /// `profile_compatibility` (the constraint_set flags).
    pub compatibility: u8,
    /// `AVCLevelIndication` (31 = level 3.1).
    pub level: u8,
    /// Bytes of each NAL unit length prefix (1, 2 or 4).
    pub length_size: u8,
    /// Width and height of the first SPS, after cropping.
    pub dimensions: Option<(u32, u32)>,
}

impl AvcConfig {
    /// Parses an `avcC` body. The record must hold at least one SPS; the
    /// picture size is read from the first one (`None` if it does not
    /// parse: the record stays usable).
    pub fn parse(data: &[u8]) -> Result<AvcConfig, Error> {
        if data.len() < 7 {
            return Err(Error::Truncated("avcC"));
        }
        if data[0] != 1 {
            return Err(Error::Malformed("avcC version"));
        }
        let length_size = (data[4] & 3) + 1;
        if length_size == 3 {
            return Err(Error::Malformed("avcC NAL length size 3"));
        }
        let num_sps = (data[5] & 0x1f) as usize;
        if num_sps == 0 {
            return Err(Error::Malformed("avcC without SPS"));
        }
        let mut pos = 6;
        let mut first_sps = None;
        for _ in 0..num_sps {
            let sps = nal_at(data, &mut pos)?;
            first_sps.get_or_insert(sps);
        }
        let num_pps = *data.get(pos).ok_or(Error::Truncated("avcC PPS count"))?;
        pos += 1;
        for _ in 0..num_pps {
            nal_at(data, &mut pos)?;
        }
        let sps = first_sps.unwrap_or_default();
        Ok(AvcConfig {
            profile: data[1],
            compatibility: data[2],
            level: data[3],
            length_size,
            dimensions: sps_dimensions(sps).ok(),
        })
    }

    /// The RFC 6381 codec string: `avc1.PPCCLL`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

/// A 16-bit-length-prefixed NAL unit at `*pos`.
fn nal_at<'a>(data: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Error> {
    let len = data
        .get(*pos..*pos + 2)
        .ok_or(Error::Truncated("avcC parameter set length"))?;
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let nal = data
        .get(*pos + 2..*pos + 2 + len)
        .ok_or(Error::Truncated("avcC parameter set"))?;
    *pos += 2 + len;
    Ok(nal)
}

/// Profiles whose SPS carries chroma format, bit depths and scaling lists.
fn has_chroma_info(profile: u8) -> bool {
    matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), Error> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// The cropped picture size from an H.264 SPS NAL unit (with its NAL
/// header byte).
pub fn sps_dimensions(nal: &[u8]) -> Result<(u32, u32), Error> {
    const W: &str = "H.264 SPS";
    if nal.first().map(|b| b & 0x1f) != Some(7) {
        return Err(Error::Malformed("not an H.264 SPS"));
    }
    // The SPS fits in a few hundred bytes; a huge one is not an SPS.
    let rbsp = unescape(&nal[1..nal.len().min(4096)]);
    let mut r = BitReader::new(&rbsp, W);
    let profile = r.bits(8)? as u8;
    r.skip(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(Error::Malformed(W));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.skip(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(Error::Malformed(W));
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(Error::Malformed(W)),
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? as u64 + 1;
    let height_map_units = r.ue()? as u64 + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.bit()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        crop_x = left as u64 + right as u64;
        crop_y = top as u64 + bottom as u64;
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (unit_x, unit_y) = if chroma_array_type == 0 {
        (1, field_factor)
    } else {
        (sub_w, sub_h * field_factor)
    };
    let width = (width_mbs * 16).checked_sub(unit_x * crop_x);
    let height = (height_map_units * 16 * field_factor).checked_sub(unit_y * crop_y);
    match (width, height) {
        (Some(w), Some(h)) if w > 0 && h > 0 && w <= 65535 && h <= 65535 => {
            Ok((w as u32, h as u32))
        }
        _ => Err(Error::Malformed("H.264 SPS picture size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds::{AVCC_BASELINE, AVCC_HIGH_31};

    #[test]
    fn x264_records() {
        let c = AvcConfig::parse(AVCC_HIGH_31).unwrap();
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!((c.length_size, c.dimensions), (4, Some((320, 240))));
        let c = AvcConfig::parse(AVCC_BASELINE).unwrap();
        assert_eq!(c.codec_string(), "avc1.42c00d");
        assert_eq!(c.dimensions, Some((320, 240)));
    }

    /// Real x264 parameter sets: 1920x1080 (1088 coded lines cropped by 8),
    /// 1918x1078 (cropped on both axes), 720x576 interlaced (field coding:
    /// frame_mbs_only_flag 0).
    #[test]
    fn cropped_and_interlaced() {
        let hd = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc6, 0x58,
        ];
        assert_eq!(sps_dimensions(&hd).unwrap(), (1920, 1080));
        let odd = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xa9, 0xb0, 0x11, 0x00,
            0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x18, 0x31, 0x96,
        ];
        assert_eq!(sps_dimensions(&odd).unwrap(), (1918, 1078));
        let sd = [
            0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xd8, 0x08, 0x80, 0x00, 0x00,
            0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x0f, 0x8a, 0x14, 0xcb,
        ];
        assert_eq!(sps_dimensions(&sd).unwrap(), (720, 576));
    }

    #[test]
    fn malformed_records_are_errors() {
        for n in 0..AVCC_HIGH_31.len() - 4 {
            // Cut inside the parameter sets (the last 4 bytes are the High
            // profile extension, not read): an error, never a panic.
            let r = AvcConfig::parse(&AVCC_HIGH_31[..n]);
            assert!(r.is_err(), "{n}");
        }
        assert!(sps_dimensions(&[0x68, 1, 2]).is_err());
        assert!(sps_dimensions(&[0x67]).is_err());
        assert!(sps_dimensions(&[0x67, 0x64, 0, 0x1f, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
