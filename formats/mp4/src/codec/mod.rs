//! Decoder configurations → what the init segment and a playlist need:
//! the codec string (RFC 6381 style, for HLS `CODECS` and MSE
//! `isTypeSupported`), the media timescale, the picture size or the audio
//! rate and channels. One module per codec holds its record parser.

pub mod aac;
pub mod av1;
pub mod avc;
pub mod hevc;
pub mod opus;
pub mod vp9;

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_VP9,
};

use crate::error::Error;

/// Largest decoder configuration accepted, in bytes (an `hvcC` with SEI
/// arrays is a few KiB; nothing legitimate comes near this).
pub const MAX_CONFIG: usize = 64 * 1024;

/// The timescale of every video track: the 90 kHz clock of MPEG systems,
/// exact for every common frame rate and for millisecond timestamps.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// One track of the muxer: its codec, decoder configuration and what was
/// learnt from it. Made by [`TrackInfo::new`] from a config frame; the
/// fields are public so a caller can fill what the configuration does not
/// say (a VP9 or AV1 picture size, see [`TrackInfo::learn_from_keyframe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// `RILL_CODEC_*`: H.264, H.265, AV1, VP9, AAC or Opus.
    pub codec: u32,
    /// The configuration frame's payload: `avcC`/`hvcC`/`av1C`/`vpcC`
    /// body, AudioSpecificConfig or `OpusHead` (may be empty for Opus).
    pub config: Bytes,
    /// The codec string (`avc1.64001f`, `mp4a.40.2`, `opus`, ...).
    pub codec_string: String,
    /// Media timescale in Hz: [`VIDEO_TIMESCALE`] for video, the sample
    /// rate for AAC, 48000 for Opus.
    pub timescale: u32,
    /// Picture width (0 when unknown; video only).
    pub width: u32,
    /// Picture height (0 when unknown; video only).
    pub height: u32,
    /// Audio sample rate (audio only).
    pub sample_rate: u32,
    /// Audio channel count (audio only).
    pub channels: u16,
}

impl TrackInfo {
    /// Reads the decoder configuration of `codec` (a config frame's
    /// payload). Errors for codecs without an MP4 mapping here and for
    /// configurations that do not parse.
    pub fn new(codec: u32, config: Bytes) -> Result<TrackInfo, Error> {
        if config.len() > MAX_CONFIG {
            return Err(Error::Limit("decoder configuration size"));
        }
        let video = |codec_string: String, dims: Option<(u32, u32)>, config: Bytes| {
            let (width, height) = dims.unwrap_or((0, 0));
            TrackInfo {
                codec,
                config,
                codec_string,
                timescale: VIDEO_TIMESCALE,
                width,
                height,
                sample_rate: 0,
                channels: 0,
            }
        };
        let audio = |codec_string: String, rate: u32, channels: u16, timescale, config| TrackInfo {
            codec,
            config,
            codec_string,
            timescale,
            width: 0,
            height: 0,
            sample_rate: rate,
            channels,
        };
        Ok(match codec {
            RILL_CODEC_H264 => {
                let c = avc::AvcConfig::parse(&config)?;
                video(c.codec_string(), c.dimensions, config)
            }
            RILL_CODEC_H265 => {
                let c = hevc::HevcConfig::parse(&config)?;
                video(c.codec_string(), c.dimensions, config)
            }
            RILL_CODEC_AV1 => {
                let c = av1::Av1Config::parse(&config)?;
                video(c.codec_string(), c.dimensions(), config)
            }
            RILL_CODEC_VP9 => {
                let c = vp9::Vp9Config::parse(&config)?;
                video(c.codec_string(), None, config)
            }
            RILL_CODEC_AAC => {
                let c = aac::AacConfig::parse(&config)?;
                audio(
                    c.codec_string(),
                    c.sample_rate,
                    c.channels(),
                    c.sample_rate,
                    config,
                )
            }
            RILL_CODEC_OPUS => {
                let head = opus_head(&config)?;
                audio("opus".into(), 48000, head.channels as u16, 48000, config)
            }
            _ => return Err(Error::Unsupported("codec has no fMP4 mapping here")),
        })
    }

    /// Whether this is a video track.
    pub fn is_video(&self) -> bool {
        matches!(
            self.codec,
            RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_AV1 | RILL_CODEC_VP9
        )
    }

    /// Fills an unknown picture size from a key frame's payload: the
    /// uncompressed header of a VP9 key frame, or the sequence header OBU
    /// of an AV1 key frame. Returns whether the size is known now. Call it
    /// before building the init segment when the configuration had no
    /// size (always for VP9).
    pub fn learn_from_keyframe(&mut self, payload: &[u8]) -> bool {
        if self.width == 0 || self.height == 0 {
            let dims = match self.codec {
                RILL_CODEC_VP9 => vp9::keyframe_dimensions(payload).ok().flatten(),
                RILL_CODEC_AV1 => av1::find_sequence_header(payload)
                    .ok()
                    .flatten()
                    .map(|h| (h.width, h.height)),
                _ => None,
            };
            if let Some((w, h)) = dims {
                self.width = w;
                self.height = h;
            }
        }
        self.width != 0 && self.height != 0
    }

    /// Nominal duration of one sample in the track's timescale, for the
    /// last sample of a stream when nothing better is known: 1024 for AAC,
    /// 20 ms for Opus, 1/30 s for video.
    pub fn nominal_sample_duration(&self) -> u32 {
        match self.codec {
            RILL_CODEC_AAC => 1024,
            RILL_CODEC_OPUS => 960,
            _ => self.timescale / 30,
        }
    }
}

/// The `OpusHead` of an Opus configuration; an empty one means the
/// defaults (stereo, 48 kHz, no pre-skip).
pub(crate) fn opus_head(config: &[u8]) -> Result<opus::OpusHead, Error> {
    if config.is_empty() {
        Ok(opus::OpusHead::default())
    } else {
        opus::OpusHead::parse(config)
    }
}

/// The HLS `CODECS` attribute value (and MSE type parameter) for a set of
/// tracks: their codec strings joined with commas.
pub fn codecs_attribute(tracks: &[TrackInfo]) -> String {
    tracks
        .iter()
        .map(|t| t.codec_string.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_abi::RILL_CODEC_MP3;

    #[test]
    fn track_info_from_configs() {
        let v = TrackInfo::new(
            RILL_CODEC_H264,
            Bytes::from_static(crate::fuzzing::seeds::AVCC_HIGH_31),
        )
        .unwrap();
        assert_eq!((v.width, v.height, v.timescale), (320, 240, 90000));
        assert!(v.is_video());
        let a = TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!((a.sample_rate, a.channels, a.timescale), (44100, 2, 44100));
        assert_eq!(codecs_attribute(&[v, a]), "avc1.64001f,mp4a.40.2");
        let o = TrackInfo::new(RILL_CODEC_OPUS, Bytes::new()).unwrap();
        assert_eq!((o.codec_string.as_str(), o.channels), ("opus", 2));
        assert!(TrackInfo::new(RILL_CODEC_MP3, Bytes::new()).is_err());
        assert!(TrackInfo::new(RILL_CODEC_H264, Bytes::from(vec![1; MAX_CONFIG + 1])).is_err());
    }

    #[test]
    fn vp9_size_from_key_frame() {
        let mut t = TrackInfo::new(
            RILL_CODEC_VP9,
            Bytes::from_static(&[0, 10, 0x82, 2, 2, 2, 0, 0]),
        )
        .unwrap();
        assert_eq!((t.width, t.height), (0, 0));
        assert!(!t.learn_from_keyframe(&[0b1000_0110]));
        // marker, profile 0, key frame, sync code, BT.709, 64x48.
        let key = [0x82, 0x49, 0x83, 0x42, 0x40, 0x03, 0xf0, 0x02, 0xf0];
        assert!(t.learn_from_keyframe(&key));
        assert_eq!((t.width, t.height), (64, 48));
    }
}
