//! Audio framing in TS: AAC in ADTS (↔ raw AAC and its
//! AudioSpecificConfig), MPEG audio frame headers (to split a PES of MP3
//! frames), and Opus's control header and channel configuration (the
//! Opus-in-TS mapping as ffmpeg implements it).

use bytes::Bytes;

use crate::error::Error;

/// AAC sampling frequencies by index.
pub const AAC_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Largest ADTS frame (13-bit length).
pub const MAX_ADTS_FRAME: usize = 0x1FFF;

/// What ADTS needs from an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type of the core codec (1..=4 fit in ADTS).
    pub object_type: u8,
    /// Sampling frequency index of the core codec.
    pub rate_index: u8,
    /// channel_configuration (0: defined by a PCE in the stream).
    pub channels: u8,
}

impl AacConfig {
    /// Reads an AudioSpecificConfig. With SBR/PS signalled explicitly (AOT
    /// 5 or 29) the core object type is returned, as ADTS carries it.
    pub fn parse(asc: &[u8]) -> Result<AacConfig, Error> {
        let mut bits = 0u64;
        let n = asc.len().min(8);
        for (i, &b) in asc[..n].iter().enumerate() {
            bits |= (b as u64) << (56 - 8 * i);
        }
        let avail = n * 8;
        let mut pos = 0;
        let mut take = |k: usize| -> Result<u8, Error> {
            if pos + k > avail {
                return Err(Error::Truncated("AudioSpecificConfig"));
            }
            let v = (bits << pos) >> (64 - k);
            pos += k;
            Ok(v as u8)
        };
        let mut aot = take(5)?;
        if aot == 31 {
            aot = 32u8.saturating_add(take(6)?);
        }
        let rate_index = take(4)?;
        if rate_index == 15 {
            return Err(Error::Unsupported("explicit AAC sampling frequency"));
        }
        let channels = take(4)?;
        if aot == 5 || aot == 29 {
            let ext = take(4)?;
            if ext == 15 {
                take(8)?;
                take(8)?;
                take(8)?;
            }
            aot = take(5)?;
            if aot == 31 {
                aot = 32u8.saturating_add(take(6)?);
            }
        }
        if !(1..=4).contains(&aot) {
            return Err(Error::Unsupported(
                "AAC object type not expressible in ADTS",
            ));
        }
        if rate_index as usize >= AAC_RATES.len() {
            return Err(Error::Malformed("AAC sampling frequency index"));
        }
        if channels > 7 {
            return Err(Error::Unsupported("AAC channel configuration above 7"));
        }
        Ok(AacConfig {
            object_type: aot,
            rate_index,
            channels,
        })
    }

    /// The 2-byte AudioSpecificConfig of this configuration.
    pub fn to_asc(self) -> [u8; 2] {
        let v = ((self.object_type as u16) << 11)
            | ((self.rate_index as u16) << 7)
            | ((self.channels as u16) << 3);
        v.to_be_bytes()
    }

    /// The sampling rate in Hz.
    pub fn rate(self) -> u32 {
        AAC_RATES[self.rate_index as usize % AAC_RATES.len()]
    }

    /// The 7-byte ADTS header (no CRC) for `payload_len` bytes of raw AAC.
    pub fn adts_header(self, payload_len: usize) -> Result<[u8; 7], Error> {
        let len = payload_len + 7;
        if len > MAX_ADTS_FRAME {
            return Err(Error::TooLarge {
                len: payload_len,
                max: MAX_ADTS_FRAME - 7,
            });
        }
        let profile = self.object_type - 1;
        Ok([
            0xFF,
            0xF1, // MPEG-4, layer 0, no CRC
            (profile << 6) | (self.rate_index << 2) | (self.channels >> 2),
            ((self.channels & 3) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1F, // buffer fullness 0x7FF (VBR)
            0xFC,                          // fullness, one raw data block
        ])
    }
}

/// One ADTS frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// The configuration the header states.
    pub config: AacConfig,
    /// Header length: 7, or 9 with a CRC.
    pub header_len: usize,
    /// Whole frame length, header included.
    pub frame_len: usize,
    /// Raw data blocks in the frame (1..=4), 1024 samples each.
    pub blocks: usize,
}

/// Parses the ADTS header at the start of `data`.
pub fn parse_adts(data: &[u8]) -> Result<AdtsHeader, Error> {
    if data.len() < 7 {
        return Err(Error::Truncated("ADTS header"));
    }
    if data[0] != 0xFF || data[1] & 0xF6 != 0xF0 {
        return Err(Error::Malformed("ADTS sync"));
    }
    let header_len = if data[1] & 1 == 0 { 9 } else { 7 };
    let rate_index = (data[2] >> 2) & 0x0F;
    if rate_index as usize >= AAC_RATES.len() {
        return Err(Error::Malformed("ADTS sampling frequency index"));
    }
    let frame_len =
        ((data[3] as usize & 3) << 11) | ((data[4] as usize) << 3) | (data[5] as usize >> 5);
    if frame_len < header_len {
        return Err(Error::Malformed("ADTS frame length"));
    }
    Ok(AdtsHeader {
        config: AacConfig {
            object_type: (data[2] >> 6) + 1,
            rate_index,
            channels: ((data[2] & 1) << 2) | (data[3] >> 6),
        },
        header_len,
        frame_len,
        blocks: (data[6] & 3) as usize + 1,
    })
}

/// One MPEG audio (layer I/II/III) frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpegAudioHeader {
    /// Frame length in bytes, header included.
    pub frame_len: usize,
    /// Samples per channel in the frame.
    pub samples: u32,
    /// Sampling rate in Hz.
    pub rate: u32,
}

/// Parses the MPEG audio frame header at the start of `data`. Free-format
/// frames (bitrate index 0) have no length here and are refused.
pub fn parse_mpeg_audio(data: &[u8]) -> Result<MpegAudioHeader, Error> {
    const BITRATES: [[u16; 15]; 5] = [
        // MPEG-1 layer I, II, III; MPEG-2/2.5 layer I; layers II and III.
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ];
    if data.len() < 4 {
        return Err(Error::Truncated("MPEG audio header"));
    }
    if data[0] != 0xFF || data[1] & 0xE0 != 0xE0 {
        return Err(Error::Malformed("MPEG audio sync"));
    }
    let version = (data[1] >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
    let layer = (data[1] >> 1) & 3; // 1: III, 2: II, 3: I
    let br_index = (data[2] >> 4) as usize;
    let sr_index = ((data[2] >> 2) & 3) as usize;
    let padding = ((data[2] >> 1) & 1) as u32;
    if version == 1 || layer == 0 || br_index == 15 || sr_index == 3 {
        return Err(Error::Malformed("MPEG audio header"));
    }
    if br_index == 0 {
        return Err(Error::Unsupported("free-format MPEG audio"));
    }
    let mpeg1 = version == 3;
    let table = match (mpeg1, layer) {
        (true, 3) => 0,
        (true, 2) => 1,
        (true, _) => 2,
        (false, 3) => 3,
        (false, _) => 4,
    };
    let bitrate = BITRATES[table][br_index] as u32 * 1000;
    let base = [44_100, 48_000, 32_000][sr_index];
    let rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let (frame_len, samples) = match layer {
        3 => ((12 * bitrate / rate + padding) * 4, 384),
        2 => (144 * bitrate / rate + padding, 1152),
        _ if mpeg1 => (144 * bitrate / rate + padding, 1152),
        _ => (72 * bitrate / rate + padding, 576),
    };
    if frame_len < 4 {
        return Err(Error::Malformed("MPEG audio frame length"));
    }
    Ok(MpegAudioHeader {
        frame_len: frame_len as usize,
        samples,
        rate,
    })
}

/// Opus streams/coupled-streams by channel count (index 0 unused), as the
/// Vorbis channel order maps them.
const OPUS_COUPLED: [u8; 9] = [1, 0, 1, 1, 2, 2, 2, 3, 3];
/// The Vorbis-order channel mapping ("table a" of the Opus-in-TS draft).
const OPUS_MAP_A: [[u8; 8]; 8] = [
    [0, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0, 0, 0],
    [0, 2, 1, 0, 0, 0, 0, 0],
    [0, 1, 2, 3, 0, 0, 0, 0],
    [0, 4, 1, 2, 3, 0, 0, 0],
    [0, 4, 1, 2, 3, 5, 0, 0],
    [0, 4, 1, 2, 3, 5, 6, 0],
    [0, 6, 1, 2, 3, 4, 5, 7],
];

/// The channel_config_code of the Opus audio descriptor for an OpusHead
/// (as ffmpeg chooses it): the channel count for mapping family 0 and for
/// family 1 in Vorbis order, 0x80 | count for uncoupled identity-mapped
/// streams (family 1 or 255), 0xFF (unsupported here) otherwise. Without an OpusHead the
/// stream is assumed stereo.
pub fn opus_channel_code(head: Option<&[u8]>) -> u8 {
    let Some(h) = head.filter(|h| h.len() >= 19 && h.starts_with(b"OpusHead")) else {
        return 2;
    };
    let ch = h[9] as usize;
    match h[18] {
        0 if (1..=2).contains(&ch) => ch as u8,
        family @ (1 | 255) if (1..=8).contains(&ch) && h.len() >= 21 + ch => {
            let map = &h[21..21 + ch];
            if family == 1
                && h[19] as usize == ch - OPUS_COUPLED[ch] as usize
                && h[20] == OPUS_COUPLED[ch]
                && map == &OPUS_MAP_A[ch - 1][..ch]
            {
                ch as u8
            } else if ch >= 2
                && h[19] as usize == ch
                && h[20] == 0
                && map.iter().enumerate().all(|(i, &m)| m as usize == i)
            {
                ch as u8 | 0x80
            } else {
                0xFF
            }
        }
        _ => 0xFF,
    }
}

/// The OpusHead a channel_config_code stands for (pre-skip 0, 48 kHz, no
/// gain), or None for codes this crate does not map (0xFF: extended).
pub fn opus_head_for_code(code: u8) -> Option<Bytes> {
    let mut h = b"OpusHead\x01\x02\x00\x00\x80\xBB\x00\x00\x00\x00\x00".to_vec();
    match code {
        1..=8 => {
            let ch = code as usize;
            h[9] = code;
            if ch > 2 {
                h[18] = 1;
                h.push((ch - OPUS_COUPLED[ch] as usize) as u8);
                h.push(OPUS_COUPLED[ch]);
                h.extend_from_slice(&OPUS_MAP_A[ch - 1][..ch]);
            }
        }
        0x81..=0x88 | 0x00 => {
            // 0x00 is dual mono: two uncoupled streams.
            let ch = if code == 0 { 2 } else { (code & 0x0F) as usize };
            h[9] = ch as u8;
            h[18] = 255;
            h.push(ch as u8);
            h.push(0);
            h.extend((0..ch as u8).collect::<Vec<_>>());
        }
        _ => return None,
    }
    Some(Bytes::from(h))
}

/// The duration of an Opus packet in 48 kHz samples, from its TOC byte
/// (and frame count byte); None when the packet is empty or malformed.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][(config & 3) as usize],
        12..=15 => [480, 960][(config & 1) as usize],
        _ => [120, 240, 480, 960][(config & 3) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3F) as u32,
    };
    let total = frame * frames;
    // At most 120 ms in a packet.
    (frames > 0 && total <= 5760).then_some(total)
}

/// The opus_control_header (prefix, no trims, au_size) for a packet of
/// `len` bytes, written into `out`; returns its length.
pub fn opus_control_header(len: usize, out: &mut Vec<u8>) -> usize {
    out.clear();
    out.extend_from_slice(&[0x7F, 0xE0]);
    let mut n = len;
    loop {
        let b = n.min(255);
        out.push(b as u8);
        if n < 255 {
            break;
        }
        n -= 255;
    }
    out.len()
}

/// A parsed opus_control_header: where the packet starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusControl {
    /// Bytes of the control header (prefix, au_size, trims, extension).
    pub header_len: usize,
    /// Bytes of the Opus packet after it.
    pub au_size: usize,
}

/// Parses the opus_control_header at the start of `data`.
pub fn parse_opus_control(data: &[u8]) -> Result<OpusControl, Error> {
    if data.len() < 3 {
        return Err(Error::Truncated("opus_control_header"));
    }
    if data[0] != 0x7F || data[1] & 0xE0 != 0xE0 {
        return Err(Error::Malformed("opus_control_header prefix"));
    }
    let flags = data[1];
    let mut pos = 2;
    let mut au_size = 0usize;
    loop {
        let b = *data.get(pos).ok_or(Error::Truncated("opus au_size"))?;
        pos += 1;
        au_size += b as usize;
        if b != 255 {
            break;
        }
    }
    if flags & 0x10 != 0 {
        pos += 2; // start_trim
    }
    if flags & 0x08 != 0 {
        pos += 2; // end_trim
    }
    if flags & 0x04 != 0 {
        let ext = *data
            .get(pos)
            .ok_or(Error::Truncated("opus control extension"))? as usize;
        pos += 1 + ext;
    }
    if pos > data.len() {
        return Err(Error::Truncated("opus_control_header"));
    }
    Ok(OpusControl {
        header_len: pos,
        au_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_and_adts() {
        // AAC-LC 44.1 kHz stereo.
        let c = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!((c.object_type, c.rate_index, c.channels), (2, 4, 2));
        assert_eq!(c.to_asc(), [0x12, 0x10]);
        assert_eq!(c.rate(), 44_100);
        let h = c.adts_header(100).unwrap();
        let p = parse_adts(&h).unwrap();
        assert_eq!(p.config, c);
        assert_eq!((p.header_len, p.frame_len, p.blocks), (7, 107, 1));
        assert!(c.adts_header(9000).is_err());
        // HE-AAC, explicit hierarchical signalling: AOT 5, 24 kHz core,
        // stereo, 48 kHz extension, core AOT 2.
        let he = AacConfig::parse(&[0x2B, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!((he.object_type, he.rate_index, he.channels), (2, 6, 2));
        assert!(AacConfig::parse(&[0x12]).is_err());
        assert!(AacConfig::parse(&[0xF8, 0x00, 0x00]).is_err());
        assert!(parse_adts(&[0xFF, 0xF1, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn mpeg_audio_headers() {
        // MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes.
        let h = parse_mpeg_audio(&[0xFF, 0xFB, 0x90, 0x00]).unwrap();
        assert_eq!((h.frame_len, h.samples, h.rate), (417, 1152, 44_100));
        // MPEG-2 layer III, 64 kbit/s, 22.05 kHz: 72*64000/22050 = 208.
        let h = parse_mpeg_audio(&[0xFF, 0xF3, 0x80, 0x00]).unwrap();
        assert_eq!((h.frame_len, h.samples, h.rate), (208, 576, 22_050));
        // MPEG-2.5 layer III, 8 kHz.
        let h = parse_mpeg_audio(&[0xFF, 0xE3, 0x18, 0x00]).unwrap();
        assert_eq!((h.rate, h.samples), (8_000, 576));
        assert!(parse_mpeg_audio(&[0xFF, 0xFB, 0x00, 0x00]).is_err());
        assert!(parse_mpeg_audio(&[0xFF, 0xFB, 0xF0, 0x00]).is_err());
    }

    #[test]
    fn opus_pieces() {
        let mut hdr = Vec::new();
        for len in [0usize, 1, 254, 255, 256, 600] {
            let n = opus_control_header(len, &mut hdr);
            let mut data = hdr.clone();
            data.resize(n + len, 0xAB);
            let c = parse_opus_control(&data).unwrap();
            assert_eq!((c.header_len, c.au_size), (n, len));
        }
        assert_eq!(opus_packet_samples(&[0xFC]), Some(960)); // CELT FB 20 ms
        assert_eq!(opus_packet_samples(&[0x4B, 0x03]), Some(2880)); // 3 x 20 ms SILK... config 9
        assert_eq!(opus_packet_samples(&[]), None);
        assert_eq!(opus_packet_samples(&[0x03, 0x00]), None);
        for code in [1u8, 2, 6, 8, 0x82, 0x88] {
            let head = opus_head_for_code(code).unwrap();
            assert_eq!(opus_channel_code(Some(&head)), code, "code {code:#x}");
        }
        assert_eq!(opus_head_for_code(0xFF), None);
        assert_eq!(opus_channel_code(None), 2);
    }
}
