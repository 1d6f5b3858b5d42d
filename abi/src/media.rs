//! The frame model shared by the host and every plugin: codecs, frame flags,
//! time base.

/// Timestamps (pts/dts) of every frame are in microseconds.
pub const RILL_TIME_BASE_HZ: i64 = 1_000_000;

/// Builds a codec identifier from its four ASCII characters, first character
/// in the lowest byte (so `b"avc1"` reads the same in memory on little-endian).
pub const fn rill_fourcc(c: &[u8; 4]) -> u32 {
    (c[0] as u32) | ((c[1] as u32) << 8) | ((c[2] as u32) << 16) | ((c[3] as u32) << 24)
}

/// H.264/AVC. Payload: length-prefixed NAL units (AVCC, 4-byte lengths);
/// config frame: AVCDecoderConfigurationRecord.
pub const RILL_CODEC_H264: u32 = rill_fourcc(b"avc1");
/// H.265/HEVC. Payload: length-prefixed NAL units (HVCC, 4-byte lengths);
/// config frame: HEVCDecoderConfigurationRecord.
pub const RILL_CODEC_H265: u32 = rill_fourcc(b"hvc1");
/// AV1. Payload: low-overhead OBUs; config frame: AV1CodecConfigurationRecord.
pub const RILL_CODEC_AV1: u32 = rill_fourcc(b"av01");
/// VP9. Payload: one VP9 frame; config frame: VPCodecConfigurationRecord.
pub const RILL_CODEC_VP9: u32 = rill_fourcc(b"vp09");
/// AAC. Payload: one raw AAC frame (no ADTS); config frame: AudioSpecificConfig.
pub const RILL_CODEC_AAC: u32 = rill_fourcc(b"mp4a");
/// Opus. Payload: one Opus packet; config frame: OpusHead (dOps) when known.
pub const RILL_CODEC_OPUS: u32 = rill_fourcc(b"Opus");
/// MP3. Payload: one MPEG audio frame.
pub const RILL_CODEC_MP3: u32 = rill_fourcc(b".mp3");
/// G.711 A-law. Payload: raw samples.
pub const RILL_CODEC_PCMA: u32 = rill_fourcc(b"alaw");
/// G.711 mu-law. Payload: raw samples.
pub const RILL_CODEC_PCMU: u32 = rill_fourcc(b"ulaw");
/// Stream metadata (FLV onMetaData as an AMF0 script body). Carried on the
/// data track, never counted as media.
pub const RILL_CODEC_METADATA: u32 = rill_fourcc(b"meta");

/// The frame starts a group of pictures: a decoder can start here. Every audio
/// frame carries it.
pub const RILL_FRAME_KEY: u32 = 1 << 0;
/// The payload is the decoder configuration (sequence header), not media.
pub const RILL_FRAME_CONFIG: u32 = 1 << 1;
/// Timestamps jumped or frames were lost before this frame.
pub const RILL_FRAME_DISCONTINUITY: u32 = 1 << 2;

/// Kinds of track.
pub const RILL_TRACK_VIDEO: u32 = 1;
/// An audio track.
pub const RILL_TRACK_AUDIO: u32 = 2;
/// A data track (metadata, captions).
pub const RILL_TRACK_DATA: u32 = 3;

/// The kind of track a codec belongs to, or 0 when unknown.
pub const fn rill_codec_kind(codec: u32) -> u32 {
    match codec {
        RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_AV1 | RILL_CODEC_VP9 => RILL_TRACK_VIDEO,
        RILL_CODEC_AAC | RILL_CODEC_OPUS | RILL_CODEC_MP3 | RILL_CODEC_PCMA | RILL_CODEC_PCMU => {
            RILL_TRACK_AUDIO
        }
        RILL_CODEC_METADATA => RILL_TRACK_DATA,
        _ => 0,
    }
}
