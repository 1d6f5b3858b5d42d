//! H.265: the HEVCDecoderConfigurationRecord (`hvcC`, ISO/IEC 14496-15
//! 8.3.3.1), its codec string (Annex E.3), and as much of the sequence
//! parameter set (ITU-T H.265 7.3.2.2) as the picture size needs.

use crate::bits::{unescape, BitReader};
use crate::error::Error;

const NAL_SPS: u8 = 33;

/// What the muxer and the codec string need from an `hvcC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    /// `general_profile_space` (0 in every profile in use).
    pub profile_space: u8,
    /// `general_tier_flag` (false: Main tier, true: High tier).
    pub high_tier: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10, 4 RExt, ...).
    pub profile: u8,
    /// `general_profile_compatibility_flags`, flag 0 in the top bit (as
    /// stored).
    pub compatibility: u32,
    /// The 48 bits of general constraint indicator flags, as stored.
    pub constraints: [u8; 6],
    /// `general_level_idc` (30 × the level: 93 = level 3.1).
    pub level: u8,
    /// Bytes of each NAL unit length prefix (1, 2 or 4).
    pub length_size: u8,
    /// Width and height of the first SPS, after the conformance window.
    pub dimensions: Option<(u32, u32)>,
}

impl HevcConfig {
    /// Parses an `hvcC` body. The picture size comes from the first SPS
    /// in the arrays (`None` without one, or if it does not parse).
    pub fn parse(data: &[u8]) -> Result<HevcConfig, Error> {
        if data.len() < 23 {
            return Err(Error::Truncated("hvcC"));
        }
        if data[0] != 1 {
            return Err(Error::Malformed("hvcC version"));
        }
        let length_size = (data[21] & 3) + 1;
        if length_size == 3 {
            return Err(Error::Malformed("hvcC NAL length size 3"));
        }
        let mut pos = 23;
        let mut sps = None;
        for _ in 0..data[22] {
            let head = data
                .get(pos..pos + 3)
                .ok_or(Error::Truncated("hvcC array"))?;
            let nal_type = head[0] & 0x3f;
            let count = u16::from_be_bytes([head[1], head[2]]);
            pos += 3;
            for _ in 0..count {
                let len = data
                    .get(pos..pos + 2)
                    .ok_or(Error::Truncated("hvcC NAL unit length"))?;
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                let nal = data
                    .get(pos + 2..pos + 2 + len)
                    .ok_or(Error::Truncated("hvcC NAL unit"))?;
                if nal_type == NAL_SPS && sps.is_none() {
                    sps = Some(nal);
                }
                pos += 2 + len;
            }
        }
        let mut constraints = [0; 6];
        constraints.copy_from_slice(&data[6..12]);
        Ok(HevcConfig {
            profile_space: data[1] >> 6,
            high_tier: data[1] & 0x20 != 0,
            profile: data[1] & 0x1f,
            compatibility: u32::from_be_bytes([data[2], data[3], data[4], data[5]]),
            constraints,
            level: data[12],
            length_size,
            dimensions: sps.and_then(|s| sps_dimensions(s).ok()),
        })
    }

    /// The codec string of ISO/IEC 14496-15 Annex E.3 for sample entry
    /// `hvc1`: `hvc1.<space><profile>.<compatibility reversed, hex>.
    /// <L|H><level>[.<constraint byte>...]`, trailing zero constraint
    /// bytes left out (as in `hvc1.1.6.L93.B0`).
    pub fn codec_string(&self) -> String {
        let space = match self.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.profile,
            self.compatibility.reverse_bits(),
            if self.high_tier { 'H' } else { 'L' },
            self.level
        );
        let used = self
            .constraints
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &self.constraints[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

/// The `hvcC` for an `hvc1` sample entry: the same record with
/// `array_completeness` set on the VPS, SPS and PPS arrays, as ISO/IEC
/// 14496-15 8.4.1 demands for `hvc1` (every parameter set of those types
/// is in the sample entry). Encoders sending HEVC over Enhanced RTMP
/// leave it 0. Errors where [`HevcConfig::parse`] would.
pub fn hvc1_record(data: &[u8]) -> Result<Vec<u8>, Error> {
    HevcConfig::parse(data)?;
    let mut out = data.to_vec();
    let mut pos = 23;
    for _ in 0..data[22] {
        let t = out[pos] & 0x3f;
        if (32..=34).contains(&t) {
            out[pos] |= 0x80;
        }
        let count = u16::from_be_bytes([out[pos + 1], out[pos + 2]]);
        pos += 3;
        for _ in 0..count {
            let len = u16::from_be_bytes([out[pos], out[pos + 1]]) as usize;
            pos += 2 + len;
        }
    }
    Ok(out)
}

/// Skips a `profile_tier_level(1, max_sub_layers_minus1)`.
fn skip_profile_tier_level(r: &mut BitReader, max_sub_layers_minus1: u32) -> Result<(), Error> {
    // general profile (88 bits) and general_level_idc (8).
    r.skip(96)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(())
}

/// The picture size, after the conformance window, from an H.265 SPS NAL
/// unit (with its two-byte NAL header).
pub fn sps_dimensions(nal: &[u8]) -> Result<(u32, u32), Error> {
    const W: &str = "H.265 SPS";
    if nal.len() < 2 || (nal[0] >> 1) & 0x3f != NAL_SPS {
        return Err(Error::Malformed("not an H.265 SPS"));
    }
    let rbsp = unescape(&nal[2..nal.len().min(4096)]);
    let mut r = BitReader::new(&rbsp, W);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(Error::Malformed(W));
    }
    r.skip(1)?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(Error::Malformed(W));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.bit()?;
    let width = r.ue()? as u64;
    let height = r.ue()? as u64;
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.bit()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        crop_x = sub_w * (left as u64 + right as u64);
        crop_y = sub_h * (top as u64 + bottom as u64);
    }
    match (width.checked_sub(crop_x), height.checked_sub(crop_y)) {
        (Some(w), Some(h)) if w > 0 && h > 0 && w <= 65535 && h <= 65535 => {
            Ok((w as u32, h as u32))
        }
        _ => Err(Error::Malformed("H.265 SPS picture size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds::HVCC_MAIN;

    #[test]
    fn x265_record() {
        let c = HevcConfig::parse(HVCC_MAIN).unwrap();
        assert_eq!((c.profile, c.level, c.high_tier), (1, 60, false));
        assert_eq!(c.dimensions, Some((320, 240)));
        assert_eq!(c.length_size, 4);
        // Main (compatible with Main and Main 10: flags 1 and 2 → 6),
        // level 2, progressive + frame-only source (0x90).
        assert_eq!(c.codec_string(), "hvc1.1.6.L60.90");
    }

    #[test]
    fn hvc1_arrays_complete() {
        let r = hvc1_record(HVCC_MAIN).unwrap();
        assert_eq!(r.len(), HVCC_MAIN.len());
        // VPS, SPS, PPS arrays at 23, 52 and 99.
        assert_eq!((r[23], r[52], r[99]), (0xa0, 0xa1, 0xa2));
        let mut rest = r.clone();
        (rest[23], rest[52], rest[99]) = (0x20, 0x21, 0x22);
        assert_eq!(rest, HVCC_MAIN);
        assert!(hvc1_record(&HVCC_MAIN[..40]).is_err());
    }

    #[test]
    fn annex_e_examples() {
        // The example of ISO/IEC 14496-15 E.5 (Main, level 3.1), then the
        // other fields' forms: profile space, High tier, zero and inner
        // zero constraint bytes.
        let mut c = HevcConfig {
            profile_space: 0,
            high_tier: false,
            profile: 1,
            compatibility: 0x6000_0000,
            constraints: [0xb0, 0, 0, 0, 0, 0],
            level: 93,
            length_size: 4,
            dimensions: None,
        };
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.B0");
        c.profile_space = 1;
        c.profile = 2;
        c.compatibility = 0x2000_0000;
        c.high_tier = true;
        c.level = 120;
        c.constraints = [0x98, 0, 0, 0, 0, 0];
        assert_eq!(c.codec_string(), "hvc1.A2.4.H120.98");
        c.constraints = [0, 0, 0, 0, 0, 0];
        assert_eq!(c.codec_string(), "hvc1.A2.4.H120");
        c.constraints = [0xb0, 0, 0x40, 0, 0, 0];
        assert_eq!(c.codec_string(), "hvc1.A2.4.H120.B0.0.40");
    }

    #[test]
    fn malformed_records_are_errors() {
        for n in 0..HVCC_MAIN.len() {
            assert!(HevcConfig::parse(&HVCC_MAIN[..n]).is_err(), "{n}");
        }
        assert!(sps_dimensions(&[0x40, 0x01, 0x0c]).is_err());
        assert!(sps_dimensions(&[0x42, 0x01, 0x01]).is_err());
    }
}
