//! H.264 and H.265 NAL units: Annex-B start codes ↔ length prefixes, the
//! decoder configuration records (AVCDecoderConfigurationRecord,
//! HEVCDecoderConfigurationRecord) read for their parameter sets and built
//! from in-band ones, and the little SPS parsing that building needs.

use bytes::{BufMut, Bytes};

use crate::error::Error;

/// Which of the two codecs a NAL unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

/// What a NAL unit is, as far as TS framing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalKind {
    /// Access unit delimiter.
    Aud,
    /// Video parameter set (H.265).
    Vps,
    /// Sequence parameter set.
    Sps,
    /// Picture parameter set.
    Pps,
    /// A picture a decoder can start at (H.264 IDR, H.265 IRAP).
    Idr,
    /// Anything else (slices, SEI, ...).
    Other,
}

impl VideoCodec {
    /// The NAL unit type of a NAL (0 for an empty one).
    pub fn nal_type(self, nal: &[u8]) -> u8 {
        match (self, nal.first()) {
            (_, None) => 0,
            (VideoCodec::H264, Some(b)) => b & 0x1F,
            (VideoCodec::H265, Some(b)) => (b >> 1) & 0x3F,
        }
    }

    /// The kind of a NAL.
    pub fn kind(self, nal: &[u8]) -> NalKind {
        let t = self.nal_type(nal);
        match self {
            VideoCodec::H264 => match t {
                9 => NalKind::Aud,
                7 => NalKind::Sps,
                8 => NalKind::Pps,
                5 => NalKind::Idr,
                _ => NalKind::Other,
            },
            VideoCodec::H265 => match t {
                35 => NalKind::Aud,
                32 => NalKind::Vps,
                33 => NalKind::Sps,
                34 => NalKind::Pps,
                16..=21 => NalKind::Idr,
                _ => NalKind::Other,
            },
        }
    }

    /// An access unit delimiter with a 4-byte start code, allowing every
    /// picture type.
    pub fn aud(self) -> &'static [u8] {
        match self {
            VideoCodec::H264 => &[0, 0, 0, 1, 0x09, 0xF0],
            VideoCodec::H265 => &[0, 0, 0, 1, 0x46, 0x01, 0x50],
        }
    }
}

/// The 4-byte Annex-B start code the muxer writes before every NAL.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Splits an Annex-B byte stream into NAL units (start codes and the zero
/// bytes before them removed). Bytes before the first start code are
/// skipped.
pub fn annexb_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = find_start_code(data, 0).map(|p| p + 3);
    std::iter::from_fn(move || loop {
        let start = pos?;
        let next = find_start_code(data, start);
        let end = next.unwrap_or(data.len());
        pos = next.map(|p| p + 3);
        let mut nal = &data[start..end];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            return Some(nal);
        }
        next?;
    })
}

/// The offset of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 2 < data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i + 1] != 0 {
            i += 2;
        } else if data[i] != 0 || data[i + 2] != 1 {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

/// Splits a length-prefixed (AVCC/HVCC) payload into NAL units; a length
/// running past the end is an error.
pub fn length_prefixed_nals(
    data: &[u8],
    length_size: usize,
) -> impl Iterator<Item = Result<&[u8], Error>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() < length_size {
            rest = &[];
            return Some(Err(Error::Truncated("NAL length")));
        }
        let len = rest[..length_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        let body = &rest[length_size..];
        if len > body.len() {
            rest = &[];
            return Some(Err(Error::Truncated("NAL unit")));
        }
        rest = &body[len..];
        Some(Ok(&body[..len]))
    })
}

/// The parameter sets (and other NAL units) of a decoder configuration
/// record, in record order, and the NAL length size of the samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSets {
    /// Bytes in each NAL length prefix (1, 2 or 4).
    pub length_size: usize,
    /// The NAL units (VPS, SPS, PPS, ... as the record lists them).
    pub nals: Vec<Bytes>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let s = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or(Error::Truncated(self.what))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Most NAL units a record may list (a record of 64 KiB of tiny NALs
/// stays bounded anyway; this just refuses nonsense early).
const MAX_RECORD_NALS: usize = 64;

/// Reads an AVCDecoderConfigurationRecord.
pub fn parse_avc_record(record: &[u8]) -> Result<ParamSets, Error> {
    let mut r = Reader {
        data: record,
        pos: 0,
        what: "AVCDecoderConfigurationRecord",
    };
    let head = r.take(5)?;
    if head[0] != 1 {
        return Err(Error::Malformed("AVCDecoderConfigurationRecord version"));
    }
    let length_size = (head[4] & 3) as usize + 1;
    if length_size == 3 {
        return Err(Error::Malformed("AVC NAL length size 3"));
    }
    let mut nals = Vec::new();
    for mask in [0x1F, 0xFF] {
        let n = r.u8()? & mask;
        for _ in 0..n {
            let len = r.u16()? as usize;
            nals.push(Bytes::copy_from_slice(r.take(len)?));
        }
    }
    Ok(ParamSets { length_size, nals })
}

/// Reads an HEVCDecoderConfigurationRecord.
pub fn parse_hevc_record(record: &[u8]) -> Result<ParamSets, Error> {
    let mut r = Reader {
        data: record,
        pos: 0,
        what: "HEVCDecoderConfigurationRecord",
    };
    let head = r.take(23)?;
    if head[0] != 1 {
        return Err(Error::Malformed("HEVCDecoderConfigurationRecord version"));
    }
    let length_size = (head[21] & 3) as usize + 1;
    if length_size == 3 {
        return Err(Error::Malformed("HEVC NAL length size 3"));
    }
    let mut nals = Vec::new();
    for _ in 0..head[22] {
        r.u8()?; // array_completeness, NAL_unit_type
        let n = r.u16()?;
        for _ in 0..n {
            if nals.len() >= MAX_RECORD_NALS {
                return Err(Error::Malformed("HEVC record: too many NAL units"));
            }
            let len = r.u16()? as usize;
            nals.push(Bytes::copy_from_slice(r.take(len)?));
        }
    }
    Ok(ParamSets { length_size, nals })
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`) from at most
/// the first `max` bytes of a NAL.
fn unescape(nal: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len().min(max));
    let mut zeros = 0;
    for &b in nal.iter().take(max) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// An MSB-first bit reader over an RBSP, with Exp-Golomb codes.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<u32, Error> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or(Error::Truncated("parameter set"))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b as u32)
    }
    fn bits(&mut self, n: usize) -> Result<u32, Error> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }
    fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.pos += n;
        if self.pos > self.data.len() * 8 {
            return Err(Error::Truncated("parameter set"));
        }
        Ok(())
    }
    fn ue(&mut self) -> Result<u32, Error> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::Malformed("Exp-Golomb code"));
            }
        }
        Ok(((1u64 << zeros) - 1 + self.bits(zeros)? as u64).min(u32::MAX as u64) as u32)
    }
}

/// The id of a parameter set NAL (VPS, SPS or PPS), which decides which
/// earlier one it replaces.
pub fn param_set_id(codec: VideoCodec, nal: &[u8]) -> Result<u32, Error> {
    let kind = codec.kind(nal);
    match (codec, kind) {
        (VideoCodec::H264, NalKind::Sps) => {
            let rbsp = unescape(nal, 16);
            let mut b = Bits {
                data: rbsp.get(4..).ok_or(Error::Truncated("SPS"))?,
                pos: 0,
            };
            b.ue()
        }
        (VideoCodec::H264, NalKind::Pps) => {
            let rbsp = unescape(nal, 16);
            let mut b = Bits {
                data: rbsp.get(1..).ok_or(Error::Truncated("PPS"))?,
                pos: 0,
            };
            b.ue()
        }
        (VideoCodec::H265, NalKind::Vps) => {
            Ok((*nal.get(2).ok_or(Error::Truncated("VPS"))? >> 4) as u32)
        }
        (VideoCodec::H265, NalKind::Sps) => Ok(hevc_sps(nal)?.id),
        (VideoCodec::H265, NalKind::Pps) => {
            let rbsp = unescape(nal, 16);
            let mut b = Bits {
                data: rbsp.get(2..).ok_or(Error::Truncated("PPS"))?,
                pos: 0,
            };
            b.ue()
        }
        _ => Err(Error::Malformed("not a parameter set")),
    }
}

/// What an H.264 SPS says that the record needs.
struct AvcSps {
    profile: u8,
    compat: u8,
    level: u8,
    /// chroma_format_idc, bit_depth_luma_minus8, bit_depth_chroma_minus8,
    /// for the high profiles that carry them.
    high: Option<(u8, u8, u8)>,
}

fn avc_sps(nal: &[u8]) -> Result<AvcSps, Error> {
    let rbsp = unescape(nal, 64);
    if rbsp.len() < 4 {
        return Err(Error::Truncated("SPS"));
    }
    let profile = rbsp[1];
    let mut sps = AvcSps {
        profile,
        compat: rbsp[2],
        level: rbsp[3],
        high: None,
    };
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let mut b = Bits {
            data: &rbsp[4..],
            pos: 0,
        };
        b.ue()?; // seq_parameter_set_id
        let chroma = b.ue()?;
        if chroma == 3 {
            b.skip(1)?;
        }
        let luma = b.ue()?;
        let chroma_depth = b.ue()?;
        if chroma > 3 || luma > 6 || chroma_depth > 6 {
            return Err(Error::Malformed("SPS"));
        }
        sps.high = Some((chroma as u8, luma as u8, chroma_depth as u8));
    }
    Ok(sps)
}

/// Builds an AVCDecoderConfigurationRecord (4-byte NAL lengths) from SPSs
/// and PPSs; the first SPS gives profile and level.
pub fn build_avc_record(sps: &[&[u8]], pps: &[&[u8]]) -> Result<Bytes, Error> {
    let first = sps.first().ok_or(Error::MissingConfig("no SPS"))?;
    if pps.is_empty() {
        return Err(Error::MissingConfig("no PPS"));
    }
    if sps.len() > 31 {
        return Err(Error::TooManyParameterSets(31));
    }
    if pps.len() > 255 {
        return Err(Error::TooManyParameterSets(255));
    }
    let info = avc_sps(first)?;
    let size = 7 + sps.iter().chain(pps).map(|n| 2 + n.len()).sum::<usize>() + 4;
    let mut r = Vec::with_capacity(size);
    r.extend_from_slice(&[1, info.profile, info.compat, info.level, 0xFF]);
    r.push(0xE0 | sps.len() as u8);
    for n in sps.iter().chain(pps) {
        if n.len() > 0xFFFF {
            return Err(Error::TooLarge {
                len: n.len(),
                max: 0xFFFF,
            });
        }
    }
    for n in sps {
        r.put_u16(n.len() as u16);
        r.extend_from_slice(n);
    }
    r.push(pps.len() as u8);
    for n in pps {
        r.put_u16(n.len() as u16);
        r.extend_from_slice(n);
    }
    if let Some((chroma, luma, chroma_depth)) = info.high {
        r.push(0xFC | chroma);
        r.push(0xF8 | luma);
        r.push(0xF8 | chroma_depth);
        r.push(0); // numOfSequenceParameterSetExt
    }
    Ok(Bytes::from(r))
}

/// What an H.265 SPS says that the record needs.
struct HevcSps {
    id: u32,
    /// general_profile_space .. general_level_idc: 12 bytes.
    ptl: [u8; 12],
    max_sub_layers: u8,
    temporal_id_nesting: bool,
    chroma: u8,
    luma_depth: u8,
    chroma_depth: u8,
}

fn hevc_sps(nal: &[u8]) -> Result<HevcSps, Error> {
    let rbsp = unescape(nal, 256);
    let data = rbsp.get(2..).ok_or(Error::Truncated("SPS"))?;
    if data.len() < 13 {
        return Err(Error::Truncated("SPS"));
    }
    let max_sub_layers_minus1 = (data[0] >> 1) & 7;
    let mut ptl = [0u8; 12];
    ptl.copy_from_slice(&data[1..13]);
    let mut b = Bits { data, pos: 8 + 96 };
    let n = max_sub_layers_minus1 as usize;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(n) {
        *p = (b.bit()? == 1, b.bit()? == 1);
    }
    if n > 0 {
        b.skip(2 * (8 - n))?;
    }
    for &(profile, level) in present.iter().take(n) {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    let id = b.ue()?;
    let chroma = b.ue()?;
    if chroma == 3 {
        b.skip(1)?;
    }
    b.ue()?; // pic_width_in_luma_samples
    b.ue()?; // pic_height_in_luma_samples
    if b.bit()? == 1 {
        for _ in 0..4 {
            b.ue()?;
        }
    }
    let luma_depth = b.ue()?;
    let chroma_depth = b.ue()?;
    if id > 15 || chroma > 3 || luma_depth > 8 || chroma_depth > 8 {
        return Err(Error::Malformed("SPS"));
    }
    Ok(HevcSps {
        id,
        ptl,
        max_sub_layers: max_sub_layers_minus1 + 1,
        temporal_id_nesting: data[0] & 1 != 0,
        chroma: chroma as u8,
        luma_depth: luma_depth as u8,
        chroma_depth: chroma_depth as u8,
    })
}

/// Builds an HEVCDecoderConfigurationRecord (4-byte NAL lengths) from
/// VPSs, SPSs and PPSs; the first SPS gives profile, tier and level.
pub fn build_hevc_record(vps: &[&[u8]], sps: &[&[u8]], pps: &[&[u8]]) -> Result<Bytes, Error> {
    let first = sps.first().ok_or(Error::MissingConfig("no SPS"))?;
    if vps.is_empty() {
        return Err(Error::MissingConfig("no VPS"));
    }
    if pps.is_empty() {
        return Err(Error::MissingConfig("no PPS"));
    }
    let info = hevc_sps(first)?;
    let mut r = Vec::with_capacity(
        23 + 9
            + vps
                .iter()
                .chain(sps)
                .chain(pps)
                .map(|n| 2 + n.len())
                .sum::<usize>(),
    );
    r.push(1);
    r.extend_from_slice(&info.ptl);
    r.put_u16(0xF000); // min_spatial_segmentation_idc 0
    r.push(0xFC); // parallelismType unknown
    r.push(0xFC | info.chroma);
    r.push(0xF8 | info.luma_depth);
    r.push(0xF8 | info.chroma_depth);
    r.put_u16(0); // avgFrameRate unknown
    r.push((info.max_sub_layers << 3) | ((info.temporal_id_nesting as u8) << 2) | 3);
    r.push(3);
    for (t, nals) in [(32u8, vps), (33, sps), (34, pps)] {
        if nals.len() > 0xFFFF {
            return Err(Error::TooManyParameterSets(0xFFFF));
        }
        r.push(0x80 | t);
        r.put_u16(nals.len() as u16);
        for n in nals {
            if n.len() > 0xFFFF {
                return Err(Error::TooLarge {
                    len: n.len(),
                    max: 0xFFFF,
                });
            }
            r.put_u16(n.len() as u16);
            r.extend_from_slice(n);
        }
    }
    Ok(Bytes::from(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_split() {
        let data = [
            0xAA, 0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 0, 1, 0x65, 0, 0, 3, 1, 0,
            0, 1,
        ];
        let nals: Vec<&[u8]> = annexb_nals(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x09, 0xF0][..], &[0x67, 1, 2], &[0x65, 0, 0, 3, 1]]
        );
        assert_eq!(annexb_nals(&[1, 2, 3]).count(), 0);
        assert_eq!(annexb_nals(&[0, 0, 1]).count(), 0);
        assert_eq!(
            annexb_nals(&[0, 0, 1, 0, 0, 1, 5]).collect::<Vec<_>>(),
            vec![&[5][..]]
        );
    }

    #[test]
    fn length_prefixed_split() {
        let data = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41];
        let nals: Vec<_> = length_prefixed_nals(&data, 4).collect();
        assert_eq!(nals, vec![Ok(&[0x65, 1][..]), Ok(&[0x41][..])]);
        let bad: Vec<_> = length_prefixed_nals(&[0, 0, 0, 9, 1], 4).collect();
        assert!(bad[0].is_err());
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn unescape_removes_emulation_prevention() {
        assert_eq!(
            unescape(&[1, 0, 0, 3, 1, 0, 0, 3], 100),
            vec![1, 0, 0, 1, 0, 0]
        );
        assert_eq!(unescape(&[0, 0, 3, 0, 0, 3, 0], 100), vec![0, 0, 0, 0, 0]);
    }
}
