//! The frame model shared by the host and every plugin: codecs, frame flags,
//! track kinds, time base.
//!
//! Codec identifiers are FourCCs, first character in the lowest byte. They
//! are spelled out with char literals rather than [`rill_fourcc`] calls,
//! which cbindgen cannot evaluate, so that the C header shows the
//! characters; a test checks each against [`rill_fourcc`] of its string.

/// Timestamps (pts/dts) of every frame are in microseconds.
pub const RILL_TIME_BASE_HZ: i64 = 1_000_000;

/// Builds a codec identifier from its four ASCII characters, first character
/// in the lowest byte (so `b"avc1"` reads the same in memory on little-endian).
pub const fn rill_fourcc(c: &[u8; 4]) -> u32 {
    (c[0] as u32) | ((c[1] as u32) << 8) | ((c[2] as u32) << 16) | ((c[3] as u32) << 24)
}

/// H.264/AVC, FourCC "avc1". Payload: length-prefixed NAL units (AVCC,
/// 4-byte lengths); config frame: AVCDecoderConfigurationRecord.
pub const RILL_CODEC_H264: u32 =
    ('a' as u32) | (('v' as u32) << 8) | (('c' as u32) << 16) | (('1' as u32) << 24);
/// H.265/HEVC, FourCC "hvc1". Payload: length-prefixed NAL units (HVCC,
/// 4-byte lengths); config frame: HEVCDecoderConfigurationRecord.
pub const RILL_CODEC_H265: u32 =
    ('h' as u32) | (('v' as u32) << 8) | (('c' as u32) << 16) | (('1' as u32) << 24);
/// AV1, FourCC "av01". Payload: low-overhead OBUs; config frame:
/// AV1CodecConfigurationRecord.
pub const RILL_CODEC_AV1: u32 =
    ('a' as u32) | (('v' as u32) << 8) | (('0' as u32) << 16) | (('1' as u32) << 24);
/// VP9, FourCC "vp09". Payload: one VP9 frame; config frame:
/// VPCodecConfigurationRecord.
pub const RILL_CODEC_VP9: u32 =
    ('v' as u32) | (('p' as u32) << 8) | (('0' as u32) << 16) | (('9' as u32) << 24);
/// VP8, FourCC "vp08" (added in 1.7). Payload: one VP8 frame; no config
/// frame (a key frame carries its size).
pub const RILL_CODEC_VP8: u32 =
    ('v' as u32) | (('p' as u32) << 8) | (('0' as u32) << 16) | (('8' as u32) << 24);
/// AAC, FourCC "mp4a". Payload: one raw AAC frame (no ADTS); config frame:
/// AudioSpecificConfig.
pub const RILL_CODEC_AAC: u32 =
    ('m' as u32) | (('p' as u32) << 8) | (('4' as u32) << 16) | (('a' as u32) << 24);
/// Opus, FourCC "Opus". Payload: one Opus packet; config frame: OpusHead
/// (dOps) when known.
pub const RILL_CODEC_OPUS: u32 =
    ('O' as u32) | (('p' as u32) << 8) | (('u' as u32) << 16) | (('s' as u32) << 24);
/// MP3, FourCC ".mp3". Payload: one MPEG audio frame.
pub const RILL_CODEC_MP3: u32 =
    ('.' as u32) | (('m' as u32) << 8) | (('p' as u32) << 16) | (('3' as u32) << 24);
/// G.711 A-law, FourCC "alaw". Payload: raw samples.
pub const RILL_CODEC_PCMA: u32 =
    ('a' as u32) | (('l' as u32) << 8) | (('a' as u32) << 16) | (('w' as u32) << 24);
/// G.711 mu-law, FourCC "ulaw". Payload: raw samples.
pub const RILL_CODEC_PCMU: u32 =
    ('u' as u32) | (('l' as u32) << 8) | (('a' as u32) << 16) | (('w' as u32) << 24);
/// Stream metadata, FourCC "meta": the body of an FLV script tag (AMF0
/// string "onMetaData" followed by the AMF0 object or ECMA array). Carried
/// on the data track (`RILL_METADATA_TRACK`), never counted as media.
pub const RILL_CODEC_METADATA: u32 =
    ('m' as u32) | (('e' as u32) << 8) | (('t' as u32) << 16) | (('a' as u32) << 24);

/// Frame flag: the frame starts a group of pictures, a decoder can start
/// here. Every audio frame carries it.
pub const RILL_FRAME_KEY: u32 = 1 << 0;
/// Frame flag: the payload is the decoder configuration (sequence header),
/// not media. Stream metadata frames carry it too.
pub const RILL_FRAME_CONFIG: u32 = 1 << 1;
/// Frame flag: timestamps jumped or frames were lost before this frame (for
/// a subscriber: the host dropped frames because it fell behind).
pub const RILL_FRAME_DISCONTINUITY: u32 = 1 << 2;
/// Frame flag (added in 1.7): the frame belongs to a derived track, written
/// by a transformer (`publish_derived`) from the stream's own frames. The
/// host sets it; a plugin's own value is ignored.
pub const RILL_FRAME_DERIVED: u32 = 1 << 3;

/// Track kind: video.
pub const RILL_TRACK_VIDEO: u32 = 1;
/// Track kind: audio.
pub const RILL_TRACK_AUDIO: u32 = 2;
/// Track kind: data (metadata, captions).
pub const RILL_TRACK_DATA: u32 = 3;

/// The kind of track a codec belongs to, or 0 when unknown.
pub const fn rill_codec_kind(codec: u32) -> u32 {
    match codec {
        RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_AV1 | RILL_CODEC_VP9 | RILL_CODEC_VP8 => {
            RILL_TRACK_VIDEO
        }
        RILL_CODEC_AAC | RILL_CODEC_OPUS | RILL_CODEC_MP3 | RILL_CODEC_PCMA | RILL_CODEC_PCMU => {
            RILL_TRACK_AUDIO
        }
        RILL_CODEC_METADATA => RILL_TRACK_DATA,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_literals_match_their_strings() {
        for (v, s) in [
            (RILL_CODEC_H264, b"avc1"),
            (RILL_CODEC_H265, b"hvc1"),
            (RILL_CODEC_AV1, b"av01"),
            (RILL_CODEC_VP9, b"vp09"),
            (RILL_CODEC_VP8, b"vp08"),
            (RILL_CODEC_AAC, b"mp4a"),
            (RILL_CODEC_OPUS, b"Opus"),
            (RILL_CODEC_MP3, b".mp3"),
            (RILL_CODEC_PCMA, b"alaw"),
            (RILL_CODEC_PCMU, b"ulaw"),
            (RILL_CODEC_METADATA, b"meta"),
        ] {
            assert_eq!(v, rill_fourcc(s), "{}", String::from_utf8_lossy(s));
            assert_eq!(&v.to_le_bytes(), s);
        }
        assert_eq!(rill_codec_kind(RILL_CODEC_AAC), RILL_TRACK_AUDIO);
        assert_eq!(rill_codec_kind(RILL_CODEC_H264), RILL_TRACK_VIDEO);
        assert_eq!(rill_codec_kind(RILL_CODEC_METADATA), RILL_TRACK_DATA);
        assert_eq!(rill_codec_kind(0), 0);
    }
}
