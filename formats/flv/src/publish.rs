//! Publishing FLV frames to the host: what an RTMP publisher, an RTMP pull
//! and an HTTP-FLV pull share. Tracks are declared from the first frame of
//! each kind and codec (a codec change declares a new track), with the
//! sizes and rates `onMetaData` announced; frames go to the host without a
//! copy; metadata goes through `set_metadata`.

use rill_abi::sdk::{Error as SdkError, FrameInfo, Host, Publisher, Result, TrackInfo};
use rill_abi::{
    rill_codec_kind, rill_fourcc, rill_log, RILL_CODEC_METADATA, RILL_FRAME_CONFIG,
    RILL_METADATA_TRACK, RILL_TRACK_AUDIO, RILL_TRACK_DATA, RILL_TRACK_VIDEO,
};

use crate::amf0::{self, Value};
use crate::Frame;

/// Tracks one publisher may declare (a codec change declares a new one).
pub const MAX_TRACKS: usize = 8;

/// How deep and how large an `onMetaData` body may be when read for the
/// track hints.
#[derive(Debug, Clone, Copy)]
pub struct MetaLimits {
    /// Nesting depth of AMF0 values.
    pub max_depth: usize,
    /// Values in all.
    pub max_values: usize,
}

impl Default for MetaLimits {
    fn default() -> Self {
        MetaLimits {
            max_depth: 32,
            max_values: amf0::DEFAULT_MAX_VALUES,
        }
    }
}

/// A host publisher fed with FLV frames.
pub struct FlvPublisher {
    path: String,
    publisher: Publisher,
    /// (kind, codec, track id) declared so far.
    tracks: Vec<(u32, u32, u32)>,
    meta: TrackHints,
    /// Write errors already logged.
    warned: Vec<i32>,
}

/// What `onMetaData` says about the tracks, for their declarations.
#[derive(Default, Clone, Copy)]
struct TrackHints {
    width: u32,
    height: u32,
    sample_rate: u32,
    channels: u32,
}

impl FlvPublisher {
    /// Wraps `publisher`, which publishes `path`.
    pub fn new(publisher: Publisher, path: impl Into<String>) -> FlvPublisher {
        FlvPublisher {
            path: path.into(),
            publisher,
            tracks: Vec::new(),
            meta: TrackHints::default(),
            warned: Vec::new(),
        }
    }

    /// The stream's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host publisher.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Publishes a media frame; problems are logged once per kind (`peer`
    /// names the source in the log) and the frame is dropped.
    pub fn write(&mut self, host: &Host, peer: &str, frame: Frame) {
        let kind = kind_of(frame.codec);
        if kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO {
            return self.warn(host, peer, SdkError::UNSUPPORTED.code(), "unknown codec");
        }
        let r = self.track(host, kind, frame.codec).and_then(|track| {
            let info = FrameInfo {
                track,
                codec: frame.codec,
                flags: frame.flags,
                pts: frame.pts,
                dts: frame.dts,
                ..FrameInfo::new()
            };
            let f = host.frame_wrap(frame.payload, &info)?;
            self.publisher.write(&f)
        });
        if let Err(e) = r {
            self.warn(host, peer, e.code(), &e.to_string());
        }
    }

    /// Sets the stream metadata from an `onMetaData` frame, and keeps its
    /// sizes and rates for the tracks declared later.
    pub fn set_metadata(&mut self, host: &Host, peer: &str, frame: Frame, limits: MetaLimits) {
        if let Ok(values) =
            amf0::decode_all_limited(&frame.payload, limits.max_depth, limits.max_values)
        {
            if let Some(obj) = values.get(1) {
                let num = |k: &str| {
                    obj.get(k)
                        .and_then(Value::as_f64)
                        .filter(|n| n.is_finite() && *n >= 0.0 && *n < u32::MAX as f64)
                        .map_or(0, |n| n as u32)
                };
                self.meta = TrackHints {
                    width: num("width"),
                    height: num("height"),
                    sample_rate: num("audiosamplerate"),
                    channels: match obj.get("stereo") {
                        Some(Value::Boolean(true)) => 2,
                        Some(Value::Boolean(false)) => 1,
                        _ => num("audiochannels"),
                    },
                };
            }
        }
        let info = FrameInfo {
            track: RILL_METADATA_TRACK,
            codec: RILL_CODEC_METADATA,
            flags: RILL_FRAME_CONFIG,
            pts: frame.pts,
            dts: frame.dts,
            ..FrameInfo::new()
        };
        let r = host
            .frame_wrap(frame.payload, &info)
            .and_then(|f| self.publisher.set_metadata(&f));
        if let Err(e) = r {
            self.warn(host, peer, e.code(), &format!("metadata: {e}"));
        }
    }

    fn track(&mut self, host: &Host, kind: u32, codec: u32) -> Result<u32> {
        if let Some(t) = self
            .tracks
            .iter()
            .rev()
            .find(|t| t.0 == kind && t.1 == codec)
        {
            return Ok(t.2);
        }
        if self.tracks.len() >= MAX_TRACKS {
            return Err(SdkError::NOMEM);
        }
        let mut ti = TrackInfo::new();
        ti.kind = kind;
        ti.codec = codec;
        if kind == RILL_TRACK_VIDEO {
            ti.width = self.meta.width;
            ti.height = self.meta.height;
        } else {
            ti.sample_rate = self.meta.sample_rate;
            ti.channels = self.meta.channels;
        }
        let id = self.publisher.add_track(&ti)?;
        rill_log!(
            host,
            Debug,
            "{}: track {id}: {}",
            self.path,
            fourcc_name(codec)
        );
        self.tracks.push((kind, codec, id));
        Ok(id)
    }

    /// Logs a write problem once per kind.
    fn warn(&mut self, host: &Host, peer: &str, code: i32, what: &str) {
        if !self.warned.contains(&code) && self.warned.len() < 8 {
            self.warned.push(code);
            rill_log!(
                host,
                Warn,
                "{peer}: frames of {} not published: {what}",
                self.path
            );
        }
    }
}

/// The track kind of a codec, including FourCCs the host has no constant
/// for but FLV carries.
pub fn kind_of(codec: u32) -> u32 {
    match rill_codec_kind(codec) {
        0 => match codec {
            c if c == rill_fourcc(b"vp08") => RILL_TRACK_VIDEO,
            c if c == rill_fourcc(b"ac-3")
                || c == rill_fourcc(b"ec-3")
                || c == rill_fourcc(b"fLaC") =>
            {
                RILL_TRACK_AUDIO
            }
            _ => 0,
        },
        RILL_TRACK_DATA => RILL_TRACK_DATA,
        k => k,
    }
}

/// A codec FourCC as text for logs (unprintable bytes as `?`).
pub fn fourcc_name(codec: u32) -> String {
    codec
        .to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of(rill_abi::RILL_CODEC_H264), RILL_TRACK_VIDEO);
        assert_eq!(kind_of(rill_abi::RILL_CODEC_OPUS), RILL_TRACK_AUDIO);
        assert_eq!(kind_of(rill_fourcc(b"vp08")), RILL_TRACK_VIDEO);
        assert_eq!(kind_of(rill_fourcc(b"fLaC")), RILL_TRACK_AUDIO);
        assert_eq!(kind_of(RILL_CODEC_METADATA), RILL_TRACK_DATA);
        assert_eq!(kind_of(rill_fourcc(b"zzzz")), 0);
        assert_eq!(fourcc_name(rill_abi::RILL_CODEC_H265), "hvc1");
    }
}
