//! FLV tag bodies (what RTMP audio/video/data messages carry) ↔ media frames.
//!
//! Video: H.264 (codec id 7), legacy HEVC (codec id 12, same layout), and
//! Enhanced RTMP (ExVideoHeader bit set: FourCC `avc1`/`hvc1`/`av01`/`vp09`,
//! packet types SequenceStart/CodedFrames/CodedFramesX/SequenceEnd/Metadata/
//! MPEG2TSSequenceStart, ModEx modifiers). Audio: AAC (10), MP3 (2, 14),
//! G.711 (7, 8), Enhanced RTMP ExAudioHeader (9; Opus and any other FourCC
//! passed through). Multitrack is refused with [`Error::Unsupported`].
//!
//! Frames follow the host's model (see `rill_abi::media`): timestamps in
//! microseconds, decoder configuration as a separate frame flagged
//! `RILL_FRAME_CONFIG` (and no other flag), `RILL_FRAME_KEY` on video key
//! frames and on every coded audio frame, video payloads as length-prefixed
//! NAL units (the form FLV already carries, so payloads are zero-copy slices
//! of the message).

use bytes::{Bytes, BytesMut};
use rill_abi::{
    rill_codec_kind, rill_fourcc, RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265,
    RILL_CODEC_METADATA, RILL_CODEC_MP3, RILL_CODEC_OPUS, RILL_CODEC_PCMA, RILL_CODEC_PCMU,
    RILL_CODEC_VP9, RILL_FRAME_CONFIG, RILL_FRAME_KEY, RILL_TRACK_AUDIO, RILL_TRACK_VIDEO,
};

use crate::amf0::{self, Value};
use crate::error::Error;

/// FLV tag type of audio.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video.
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data.
pub const TAG_SCRIPT: u8 = 18;

/// VP8 has no host constant; it is passed through under its FourCC.
const CODEC_VP8: u32 = rill_fourcc(b"vp08");
const CODEC_AC3: u32 = rill_fourcc(b"ac-3");
const CODEC_EAC3: u32 = rill_fourcc(b"ec-3");
const CODEC_FLAC: u32 = rill_fourcc(b"fLaC");

/// A media frame in the host's model, independent of the ABI's C types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Codec FourCC (`RILL_CODEC_*`, or another FourCC passed through).
    pub codec: u32,
    /// `RILL_FRAME_*` flags.
    pub flags: u32,
    /// Presentation time in microseconds.
    pub pts: i64,
    /// Decode time in microseconds.
    pub dts: i64,
    /// Payload (a slice of the received message: no copy).
    pub payload: Bytes,
}

impl Frame {
    /// Whether the frame carries decoder configuration.
    pub fn is_config(&self) -> bool {
        self.flags & RILL_FRAME_CONFIG != 0
    }

    /// Whether a decoder can start at this frame.
    pub fn is_key(&self) -> bool {
        self.flags & RILL_FRAME_KEY != 0
    }
}

const VIDEO_KEY: u8 = 1;
const VIDEO_INTER: u8 = 2;
const VIDEO_GENERATED_KEY: u8 = 4;
const VIDEO_COMMAND: u8 = 5;

const PKT_SEQUENCE_START: u8 = 0;
const PKT_CODED_FRAMES: u8 = 1;
const PKT_SEQUENCE_END: u8 = 2;
const PKT_CODED_FRAMES_X: u8 = 3;
const PKT_METADATA: u8 = 4;
const PKT_MPEG2TS_SEQUENCE_START: u8 = 5;
const PKT_VIDEO_MULTITRACK: u8 = 6;
const PKT_MODEX: u8 = 7;

const AUDIO_PKT_MULTICHANNEL_CONFIG: u8 = 4;
const AUDIO_PKT_MULTITRACK: u8 = 5;

/// ModEx type carrying a sub-millisecond timestamp offset.
const MODEX_TIMESTAMP_OFFSET_NANO: u8 = 0;

fn ms_to_us(ms: u32) -> i64 {
    ms as i64 * 1000
}

fn si24(b: &[u8]) -> i64 {
    let v = ((b[0] as i32) << 16) | ((b[1] as i32) << 8) | b[2] as i32;
    ((v << 8) >> 8) as i64
}

struct Cursor<'a> {
    body: &'a Bytes,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let s = self
            .body
            .get(self.pos..self.pos + n)
            .ok_or(Error::Truncated(what))?;
        self.pos += n;
        Ok(s)
    }

    fn rest(&self) -> Bytes {
        self.body.slice(self.pos.min(self.body.len())..)
    }

    /// Follows a chain of ModEx modifiers; returns the real packet type and
    /// the timestamp offset in microseconds.
    fn modex(&mut self, mut packet_type: u8) -> Result<(u8, i64), Error> {
        let mut offset_us = 0;
        // Each round consumes at least two bytes, so the loop is bounded by
        // the body length.
        while packet_type == PKT_MODEX {
            let mut size = self.take(1, "ModEx")?[0] as usize + 1;
            if size == 256 {
                let b = self.take(2, "ModEx")?;
                size = u16::from_be_bytes([b[0], b[1]]) as usize + 1;
            }
            let data = self.take(size, "ModEx data")?;
            let next = self.take(1, "ModEx")?[0];
            if next >> 4 == MODEX_TIMESTAMP_OFFSET_NANO && data.len() >= 3 {
                let nanos = ((data[0] as i64) << 16) | ((data[1] as i64) << 8) | data[2] as i64;
                offset_us = nanos / 1000;
            }
            packet_type = next & 0x0F;
        }
        Ok((packet_type, offset_us))
    }
}

/// An E-RTMP FourCC this module does not know, passed through as the codec
/// unless the host knows it as another kind of track (an audio FourCC in a
/// video tag would turn into audio on the way out).
fn passthrough(fourcc: &[u8], kind: u32) -> Result<u32, Error> {
    let codec = rill_fourcc(&[fourcc[0], fourcc[1], fourcc[2], fourcc[3]]);
    let known = match codec {
        CODEC_VP8 => RILL_TRACK_VIDEO,
        CODEC_AC3 | CODEC_EAC3 | CODEC_FLAC => RILL_TRACK_AUDIO,
        _ => rill_codec_kind(codec),
    };
    match known {
        0 => Ok(codec),
        k if k == kind => Ok(codec),
        _ => Err(Error::Malformed("E-RTMP FourCC of another track kind")),
    }
}

fn frame(codec: u32, flags: u32, dts: i64, cts_us: i64, payload: Bytes) -> Option<Frame> {
    // An empty coded frame carries nothing a decoder could use.
    if payload.is_empty() && flags & RILL_FRAME_CONFIG == 0 {
        return None;
    }
    Some(Frame {
        codec,
        flags,
        pts: dts + cts_us,
        dts,
        payload,
    })
}

/// Demuxes a video tag body. `Ok(None)` for packets that carry no frame
/// (sequence end, command frames, E-RTMP metadata, empty frames).
pub fn demux_video(body: &Bytes, timestamp_ms: u32) -> Result<Option<Frame>, Error> {
    let mut c = Cursor { body, pos: 0 };
    let b0 = c.take(1, "video tag")?[0];
    let dts = ms_to_us(timestamp_ms);
    if b0 & 0x80 == 0 {
        let frame_type = b0 >> 4;
        let codec = match b0 & 0x0F {
            7 => RILL_CODEC_H264,
            // Not in the FLV spec, but what Chinese CDNs and ffmpeg forks use
            // for HEVC; same layout as AVC.
            12 => RILL_CODEC_H265,
            _ => return Err(Error::Unsupported("FLV video codec")),
        };
        if frame_type == VIDEO_COMMAND {
            return Ok(None);
        }
        let h = c.take(4, "AVC video tag")?;
        let key = matches!(frame_type, VIDEO_KEY | VIDEO_GENERATED_KEY);
        return Ok(match h[0] {
            PKT_SEQUENCE_START => frame(codec, RILL_FRAME_CONFIG, dts, 0, c.rest()),
            PKT_CODED_FRAMES => frame(
                codec,
                key as u32 * RILL_FRAME_KEY,
                dts,
                si24(&h[1..]) * 1000,
                c.rest(),
            ),
            PKT_SEQUENCE_END => None,
            _ => return Err(Error::Malformed("AVC packet type")),
        });
    }

    let frame_type = (b0 >> 4) & 0x07;
    let (packet_type, offset) = c.modex(b0 & 0x0F)?;
    let dts = dts + offset;
    if packet_type == PKT_VIDEO_MULTITRACK {
        return Err(Error::Unsupported("E-RTMP video multitrack"));
    }
    if frame_type == VIDEO_COMMAND && packet_type != PKT_METADATA {
        return Ok(None);
    }
    let fourcc = c.take(4, "E-RTMP video FourCC")?;
    let codec = match fourcc {
        b"avc1" => RILL_CODEC_H264,
        b"hvc1" => RILL_CODEC_H265,
        b"av01" => RILL_CODEC_AV1,
        b"vp09" => RILL_CODEC_VP9,
        other => passthrough(other, RILL_TRACK_VIDEO)?,
    };
    let key = matches!(frame_type, VIDEO_KEY | VIDEO_GENERATED_KEY) as u32 * RILL_FRAME_KEY;
    Ok(match packet_type {
        PKT_SEQUENCE_START => frame(codec, RILL_FRAME_CONFIG, dts, 0, c.rest()),
        PKT_CODED_FRAMES => {
            // Only the NAL-unit codecs carry a composition time here.
            let cts = if codec == RILL_CODEC_H264 || codec == RILL_CODEC_H265 {
                si24(c.take(3, "E-RTMP composition time")?) * 1000
            } else {
                0
            };
            frame(codec, key, dts, cts, c.rest())
        }
        PKT_CODED_FRAMES_X => frame(codec, key, dts, 0, c.rest()),
        // The MPEG-2 TS descriptor form of AV1 configuration is not an
        // av1C record; the sequence header OBU in the key frames suffices.
        PKT_SEQUENCE_END | PKT_METADATA | PKT_MPEG2TS_SEQUENCE_START => None,
        _ => return Err(Error::Unsupported("E-RTMP video packet type")),
    })
}

/// Demuxes an audio tag body. Every coded audio frame is a key frame.
pub fn demux_audio(body: &Bytes, timestamp_ms: u32) -> Result<Option<Frame>, Error> {
    let mut c = Cursor { body, pos: 0 };
    let b0 = c.take(1, "audio tag")?[0];
    let dts = ms_to_us(timestamp_ms);
    let key = RILL_FRAME_KEY;
    match b0 >> 4 {
        10 => {
            let kind = c.take(1, "AAC packet type")?[0];
            Ok(match kind {
                0 => frame(RILL_CODEC_AAC, RILL_FRAME_CONFIG, dts, 0, c.rest()),
                1 => frame(RILL_CODEC_AAC, key, dts, 0, c.rest()),
                _ => return Err(Error::Malformed("AAC packet type")),
            })
        }
        2 | 14 => Ok(frame(RILL_CODEC_MP3, key, dts, 0, c.rest())),
        7 => Ok(frame(RILL_CODEC_PCMA, key, dts, 0, c.rest())),
        8 => Ok(frame(RILL_CODEC_PCMU, key, dts, 0, c.rest())),
        9 => {
            let (packet_type, offset) = c.modex(b0 & 0x0F)?;
            let dts = dts + offset;
            if packet_type == AUDIO_PKT_MULTITRACK {
                return Err(Error::Unsupported("E-RTMP audio multitrack"));
            }
            let fourcc = c.take(4, "E-RTMP audio FourCC")?;
            let codec = match fourcc {
                b"Opus" => RILL_CODEC_OPUS,
                b"mp4a" => RILL_CODEC_AAC,
                b".mp3" => RILL_CODEC_MP3,
                other => passthrough(other, RILL_TRACK_AUDIO)?,
            };
            Ok(match packet_type {
                PKT_SEQUENCE_START => {
                    let rest = c.rest();
                    // Opus may send its comment header here too; only the
                    // identification header (OpusHead) configures a decoder.
                    if codec == RILL_CODEC_OPUS && rest.starts_with(b"OpusTags") {
                        None
                    } else if matches!(codec, RILL_CODEC_MP3 | RILL_CODEC_PCMA | RILL_CODEC_PCMU) {
                        // Self-describing formats: nothing to configure.
                        None
                    } else {
                        frame(codec, RILL_FRAME_CONFIG, dts, 0, rest)
                    }
                }
                PKT_CODED_FRAMES => frame(codec, key, dts, 0, c.rest()),
                PKT_SEQUENCE_END | AUDIO_PKT_MULTICHANNEL_CONFIG => None,
                _ => return Err(Error::Unsupported("E-RTMP audio packet type")),
            })
        }
        _ => Err(Error::Unsupported("FLV audio format")),
    }
}

/// Demuxes a script data body: `onMetaData` (optionally behind
/// `@setDataFrame`, as publishers send it) becomes a metadata frame whose
/// payload is the `onMetaData` body to replay to players. Other script data
/// gives `Ok(None)`. The body is decoded within `max_amf_depth` and
/// `max_amf_values` (see [`amf0::Decoder::max_values`]).
pub fn demux_script(
    body: &Bytes,
    timestamp_ms: u32,
    max_amf_depth: usize,
    max_amf_values: usize,
) -> Result<Option<Frame>, Error> {
    let mut d = amf0::Decoder::new(body, max_amf_depth).max_values(max_amf_values);
    let first = d.decode()?;
    let payload = match first.as_str() {
        Some("onMetaData") => {
            // Validate the rest, then forward the body untouched.
            while !d.is_empty() {
                d.decode()?;
            }
            body.clone()
        }
        Some("@setDataFrame") => {
            // Checked as what is forwarded, with its own value budget (the
            // budget grows with the input): what passes here must pass
            // again wherever the forwarded body is read.
            let rest = body.slice(d.position()..);
            let mut r = amf0::Decoder::new(&rest, max_amf_depth).max_values(max_amf_values);
            if r.decode()?.as_str() != Some("onMetaData") {
                return Ok(None);
            }
            while !r.is_empty() {
                r.decode()?;
            }
            rest
        }
        _ => return Ok(None),
    };
    let ts = ms_to_us(timestamp_ms);
    Ok(Some(Frame {
        codec: RILL_CODEC_METADATA,
        flags: 0,
        pts: ts,
        dts: ts,
        payload,
    }))
}

/// Demuxes any tag body by FLV tag type (the AMF0 limits apply to script
/// data, see [`demux_script`]).
pub fn demux(
    tag_type: u8,
    body: &Bytes,
    timestamp_ms: u32,
    max_amf_depth: usize,
    max_amf_values: usize,
) -> Result<Option<Frame>, Error> {
    match tag_type {
        TAG_AUDIO => demux_audio(body, timestamp_ms),
        TAG_VIDEO => demux_video(body, timestamp_ms),
        TAG_SCRIPT => demux_script(body, timestamp_ms, max_amf_depth, max_amf_values),
        _ => Err(Error::Unsupported("FLV tag type")),
    }
}

/// The FLV framing of one frame: tag type, timestamp and the few bytes that
/// precede the payload. Keeping them apart lets the chunk writer copy the
/// payload once, straight into the chunked output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagPrefix {
    /// FLV tag type (8, 9 or 18) = RTMP message type.
    pub tag_type: u8,
    /// Timestamp in milliseconds (from the frame's dts).
    pub timestamp: u32,
    bytes: [u8; 8],
    len: u8,
}

impl TagPrefix {
    fn new(tag_type: u8, timestamp: u32, bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        TagPrefix {
            tag_type,
            timestamp,
            bytes: b,
            len: bytes.len() as u8,
        }
    }

    /// The bytes to write before the frame payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Microseconds → FLV milliseconds. RTMP time is 32-bit and wraps; the host
/// keeps timestamps non-negative and monotonic.
fn us_to_ms(us: i64) -> u32 {
    us.div_euclid(1000) as u32
}

fn cts_bytes(frame: &Frame) -> [u8; 3] {
    let cts = (frame.pts - frame.dts)
        .div_euclid(1000)
        .clamp(-(1 << 23), (1 << 23) - 1) as i32;
    let b = cts.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// The FLV prefix for `frame`: classic tags for H.264, AAC, MP3 and G.711,
/// Enhanced RTMP for HEVC, AV1, VP9, VP8, Opus, AC-3, E-AC-3 and FLAC.
pub fn mux_prefix(frame: &Frame) -> Result<TagPrefix, Error> {
    let ts = us_to_ms(frame.dts);
    let config = frame.is_config();
    let frame_type = if config || frame.is_key() {
        VIDEO_KEY
    } else {
        VIDEO_INTER
    };
    let fourcc = frame.codec.to_le_bytes();
    Ok(match frame.codec {
        RILL_CODEC_H264 => {
            let cts = if config { [0; 3] } else { cts_bytes(frame) };
            let pkt = if config {
                PKT_SEQUENCE_START
            } else {
                PKT_CODED_FRAMES
            };
            TagPrefix::new(
                TAG_VIDEO,
                ts,
                &[frame_type << 4 | 7, pkt, cts[0], cts[1], cts[2]],
            )
        }
        RILL_CODEC_H265 | RILL_CODEC_AV1 | RILL_CODEC_VP9 | CODEC_VP8 => {
            let cts = cts_bytes(frame);
            let with_cts = frame.codec == RILL_CODEC_H265 && cts != [0; 3];
            let pkt = match (config, with_cts) {
                (true, _) => PKT_SEQUENCE_START,
                (false, true) => PKT_CODED_FRAMES,
                // HEVC without reordering uses the shorter CodedFramesX; for
                // AV1/VP9/VP8 CodedFrames has no composition time anyway.
                (false, false) if frame.codec == RILL_CODEC_H265 => PKT_CODED_FRAMES_X,
                (false, false) => PKT_CODED_FRAMES,
            };
            let mut b = [
                0x80 | frame_type << 4 | pkt,
                fourcc[0],
                fourcc[1],
                fourcc[2],
                fourcc[3],
                0,
                0,
                0,
            ];
            let mut len = 5;
            if pkt == PKT_CODED_FRAMES && with_cts {
                b[5..8].copy_from_slice(&cts);
                len = 8;
            }
            TagPrefix::new(TAG_VIDEO, ts, &b[..len])
        }
        RILL_CODEC_AAC => TagPrefix::new(TAG_AUDIO, ts, &[0xAF, if config { 0 } else { 1 }]),
        RILL_CODEC_OPUS | CODEC_AC3 | CODEC_EAC3 | CODEC_FLAC => {
            let pkt = if config {
                PKT_SEQUENCE_START
            } else {
                PKT_CODED_FRAMES
            };
            let b = [0x90 | pkt, fourcc[0], fourcc[1], fourcc[2], fourcc[3]];
            TagPrefix::new(TAG_AUDIO, ts, &b)
        }
        // 44 kHz, 16-bit, stereo: the conventional flags for MP3 in FLV.
        RILL_CODEC_MP3 => TagPrefix::new(TAG_AUDIO, ts, &[0x2F]),
        // G.711 is 8 kHz mono by definition; the rate bits are ignored.
        RILL_CODEC_PCMA => TagPrefix::new(TAG_AUDIO, ts, &[0x72]),
        RILL_CODEC_PCMU => TagPrefix::new(TAG_AUDIO, ts, &[0x82]),
        RILL_CODEC_METADATA => TagPrefix::new(TAG_SCRIPT, ts, &[]),
        _ => return Err(Error::Unsupported("codec has no FLV mapping")),
    })
}

/// Muxes a frame into an FLV tag body: (tag type, timestamp in ms, body).
pub fn mux(frame: &Frame) -> Result<(u8, u32, Bytes), Error> {
    let prefix = mux_prefix(frame)?;
    let mut b = BytesMut::with_capacity(prefix.as_bytes().len() + frame.payload.len());
    b.extend_from_slice(prefix.as_bytes());
    b.extend_from_slice(&frame.payload);
    Ok((prefix.tag_type, prefix.timestamp, b.freeze()))
}

/// An `onMetaData` script body from properties (for players when the
/// publisher sent none, or for tests).
pub fn metadata_body(props: Vec<(String, Value)>) -> Result<Bytes, Error> {
    Ok(amf0::encode_all(&[Value::string("onMetaData"), Value::EcmaArray(props)])?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: &[u8]) -> Bytes {
        Bytes::copy_from_slice(x)
    }

    /// An AVCDecoderConfigurationRecord as ffmpeg/x264 emit it (baseline
    /// 320x240), behind the 5-byte FLV video header.
    const AVC_SEQ: &[u8] = &[
        0x17, 0x00, 0x00, 0x00, 0x00, // key, AVC, sequence header, cts 0
        0x01, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41,
        0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42,
        0x99, 0x20, 0x01, 0x00, 0x04, 0x68, 0xcb, 0x83, 0xcb, 0x20,
    ];

    #[test]
    fn h264_sequence_header_and_nalus() {
        let f = demux_video(&b(AVC_SEQ), 0).unwrap().unwrap();
        assert_eq!(f.codec, RILL_CODEC_H264);
        assert_eq!(f.flags, RILL_FRAME_CONFIG);
        assert_eq!(&f.payload[..], &AVC_SEQ[5..]);
        assert_eq!(mux(&f).unwrap(), (TAG_VIDEO, 0, b(AVC_SEQ)));

        // Inter frame at 1000 ms with a composition time of 80 ms.
        let body = b(&[0x27, 0x01, 0x00, 0x00, 0x50, 0, 0, 0, 2, 0x41, 0x9a]);
        let f = demux_video(&body, 1000).unwrap().unwrap();
        assert_eq!((f.dts, f.pts, f.flags), (1_000_000, 1_080_000, 0));
        assert_eq!(&f.payload[..], &[0, 0, 0, 2, 0x41, 0x9a]);
        assert_eq!(mux(&f).unwrap(), (TAG_VIDEO, 1000, body));

        // Negative composition time survives the round trip.
        let body = b(&[0x17, 0x01, 0xff, 0xff, 0xf6, 0, 0, 0, 1, 0x65]);
        let f = demux_video(&body, 40).unwrap().unwrap();
        assert_eq!((f.pts, f.flags), (30_000, RILL_FRAME_KEY));
        assert_eq!(mux(&f).unwrap().2, body);

        assert_eq!(demux_video(&b(&[0x17, 0x02, 0, 0, 0]), 0).unwrap(), None);
        assert_eq!(demux_video(&b(&[0x57, 0x00]), 0).unwrap(), None);
        assert!(demux_video(&b(&[0x17, 0x01, 0]), 0).is_err());
        assert!(demux_video(&b(&[0x12, 0x01, 0, 0, 0, 1]), 0).is_err());
    }

    #[test]
    fn legacy_hevc_codec_id_12() {
        let f = demux_video(&b(&[0x1c, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x26]), 5)
            .unwrap()
            .unwrap();
        assert_eq!((f.codec, f.flags), (RILL_CODEC_H265, RILL_FRAME_KEY));
        // Muxed back as Enhanced RTMP (CodedFramesX: no composition time).
        let (_, _, body) = mux(&f).unwrap();
        assert_eq!(&body[..5], b"\x93hvc1");
        assert_eq!(demux_video(&body, 5).unwrap().unwrap(), f);
    }

    #[test]
    fn enhanced_video() {
        // hvc1 SequenceStart, CodedFrames with cts, CodedFramesX.
        let seq = b(b"\x90hvc1\x01\x02\x03");
        let f = demux_video(&seq, 0).unwrap().unwrap();
        assert_eq!(
            (f.codec, f.flags, &f.payload[..]),
            (RILL_CODEC_H265, RILL_FRAME_CONFIG, &[1u8, 2, 3][..])
        );
        assert_eq!(mux(&f).unwrap().2, seq);
        let coded = b(b"\xa1hvc1\x00\x00\x28\x00\x00\x00\x01\x02");
        let f = demux_video(&coded, 100).unwrap().unwrap();
        assert_eq!((f.flags, f.dts, f.pts), (0, 100_000, 140_000));
        assert_eq!(mux(&f).unwrap().2, coded);
        let x = b(b"\x93hvc1\x00\x00\x00\x01\x26");
        let f = demux_video(&x, 100).unwrap().unwrap();
        assert_eq!((f.flags, f.pts), (RILL_FRAME_KEY, 100_000));
        assert_eq!(mux(&f).unwrap().2, x);

        // av01 and vp09: CodedFrames without composition time.
        for (cc, codec) in [(b"av01", RILL_CODEC_AV1), (b"vp09", RILL_CODEC_VP9)] {
            let mut body = vec![0x91];
            body.extend_from_slice(cc);
            body.extend_from_slice(&[0x12, 0x00, 0x0a]);
            let body = Bytes::from(body);
            let f = demux_video(&body, 7).unwrap().unwrap();
            assert_eq!(
                (f.codec, f.flags, f.pts, &f.payload[..]),
                (codec, RILL_FRAME_KEY, 7000, &[0x12, 0, 0x0a][..])
            );
            assert_eq!(mux(&f).unwrap().2, body);
        }

        // Ignored packet types, multitrack refused, unknown FourCC passed through.
        for body in [
            &b"\x92hvc1"[..],
            b"\x94hvc1\x02",
            b"\x95av01\x80",
            b"\xd1hvc1\x00",
        ] {
            assert_eq!(demux_video(&b(body), 0).unwrap(), None, "{body:?}");
        }
        assert_eq!(
            demux_video(&b(b"\x96\x00\x00hvc1"), 0),
            Err(Error::Unsupported("E-RTMP video multitrack"))
        );
        // A FourCC of the other kind is refused (it would change track kind).
        assert!(demux_video(&b(b"\x91Opus\x01"), 0).is_err());
        assert!(demux_audio(&b(b"\x91avc1\x01"), 0).is_err());
        let f = demux_video(&b(b"\x91vp08\x01"), 0).unwrap().unwrap();
        assert_eq!(f.codec, rill_fourcc(b"vp08"));
        assert_eq!(mux(&f).unwrap().2, b(b"\x91vp08\x01"));
    }

    #[test]
    fn enhanced_video_modex_timestamp_offset() {
        // ModEx: size 3 (encoded 2), 500_000 ns, then type TimestampOffsetNano
        // with packet type CodedFramesX.
        let body = b(&[
            0x97, 0x02, 0x07, 0xa1, 0x20, 0x03, b'a', b'v', b'0', b'1', 0x0a,
        ]);
        let f = demux_video(&body, 10).unwrap().unwrap();
        assert_eq!((f.codec, f.dts, f.pts), (RILL_CODEC_AV1, 10_500, 10_500));
        assert!(demux_video(&b(&[0x97, 0x02, 0x07]), 0).is_err());
    }

    #[test]
    fn aac() {
        let seq = b(&[0xaf, 0x00, 0x12, 0x10]);
        let f = demux_audio(&seq, 0).unwrap().unwrap();
        assert_eq!(
            (f.codec, f.flags, &f.payload[..]),
            (RILL_CODEC_AAC, RILL_FRAME_CONFIG, &[0x12, 0x10][..])
        );
        assert_eq!(mux(&f).unwrap(), (TAG_AUDIO, 0, seq));
        let raw = b(&[0xaf, 0x01, 0x21, 0x10, 0x04]);
        let f = demux_audio(&raw, 23).unwrap().unwrap();
        assert_eq!((f.flags, f.pts, f.dts), (RILL_FRAME_KEY, 23_000, 23_000));
        assert_eq!(mux(&f).unwrap(), (TAG_AUDIO, 23, raw));
    }

    #[test]
    fn legacy_audio_passthrough() {
        for (byte, codec) in [
            (0x2f, RILL_CODEC_MP3),
            (0x72, RILL_CODEC_PCMA),
            (0x82, RILL_CODEC_PCMU),
        ] {
            let body = b(&[byte, 1, 2, 3]);
            let f = demux_audio(&body, 9).unwrap().unwrap();
            assert_eq!(
                (f.codec, f.flags, &f.payload[..]),
                (codec, RILL_FRAME_KEY, &[1u8, 2, 3][..])
            );
            assert_eq!(mux(&f).unwrap().2, body);
        }
        assert_eq!(
            demux_audio(&b(&[0xb6, 1]), 0),
            Err(Error::Unsupported("FLV audio format"))
        );
    }

    #[test]
    fn enhanced_audio() {
        let head = b(b"\x90OpusOpusHead\x01\x02");
        let f = demux_audio(&head, 0).unwrap().unwrap();
        assert_eq!((f.codec, f.flags), (RILL_CODEC_OPUS, RILL_FRAME_CONFIG));
        assert_eq!(mux(&f).unwrap().2, head);
        assert_eq!(demux_audio(&b(b"\x90OpusOpusTags"), 0).unwrap(), None);
        let pkt = b(b"\x91Opus\xfc\xff\xfe");
        let f = demux_audio(&pkt, 20).unwrap().unwrap();
        assert_eq!(
            (f.flags, &f.payload[..]),
            (RILL_FRAME_KEY, &[0xfc, 0xff, 0xfe][..])
        );
        assert_eq!(mux(&f).unwrap().2, pkt);
        let ac3 = b(b"\x91ac-3\x0b\x77");
        let f = demux_audio(&ac3, 0).unwrap().unwrap();
        assert_eq!(f.codec, rill_fourcc(b"ac-3"));
        assert_eq!(mux(&f).unwrap().2, ac3);
        let aac = demux_audio(&b(b"\x90mp4a\x12\x10"), 0).unwrap().unwrap();
        assert_eq!((aac.codec, aac.flags), (RILL_CODEC_AAC, RILL_FRAME_CONFIG));
        assert_eq!(demux_audio(&b(b"\x92Opus"), 0).unwrap(), None);
        assert_eq!(
            demux_audio(&b(b"\x95\x00Opus"), 0),
            Err(Error::Unsupported("E-RTMP audio multitrack"))
        );
        assert!(demux_audio(&b(b"\x91Op"), 0).is_err());
    }

    #[test]
    fn script_metadata() {
        let meta = amf0::encode_all(&[
            Value::string("@setDataFrame"),
            Value::string("onMetaData"),
            Value::EcmaArray(vec![("width".into(), Value::Number(1280.0))]),
        ])
        .unwrap();
        let f = demux_script(&Bytes::from(meta.clone()), 0, 32, amf0::DEFAULT_MAX_VALUES)
            .unwrap()
            .unwrap();
        assert_eq!(f.codec, RILL_CODEC_METADATA);
        let values = amf0::decode_all(&f.payload, 32).unwrap();
        assert_eq!(values[0].as_str(), Some("onMetaData"));
        assert_eq!(values[1].get("width"), Some(&Value::Number(1280.0)));
        assert_eq!(&f.payload[..], &meta[16..]);
        // Re-muxed, it is a script tag with the onMetaData body.
        assert_eq!(mux(&f).unwrap(), (TAG_SCRIPT, 0, f.payload.clone()));
        let other = amf0::encode_all(&[Value::string("onTextData"), Value::Null]).unwrap();
        assert_eq!(
            demux_script(&Bytes::from(other), 0, 32, amf0::DEFAULT_MAX_VALUES).unwrap(),
            None
        );
        assert!(demux_script(&b(&[0x02, 0, 10, b'o']), 0, 32, amf0::DEFAULT_MAX_VALUES).is_err());
    }

    #[test]
    fn unknown_codec_cannot_be_muxed() {
        let f = Frame {
            codec: rill_fourcc(b"xxxx"),
            flags: 0,
            pts: 0,
            dts: 0,
            payload: Bytes::new(),
        };
        assert!(mux(&f).is_err());
    }
}
