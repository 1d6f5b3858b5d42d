//! The tracks a live stream declared and their configurations, and what a
//! new frame changes about them: the bookkeeping every muxer of host
//! frames does first (HLS, fMP4, TS over SRT).

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3, RILL_CODEC_OPUS,
    RILL_FRAME_CONFIG, RILL_FRAME_DISCONTINUITY, RILL_FRAME_KEY,
};

use crate::{Frame, MuxTrack};

/// A track the stream declared (by a config frame or its first frame).
#[derive(Debug)]
pub struct Input {
    /// The host's track id.
    pub track: u32,
    /// `RILL_CODEC_*`.
    pub codec: u32,
    /// The latest configuration (from a config frame).
    pub config: Option<Bytes>,
}

/// What a frame means for the muxer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A config frame: nothing to mux.
    Config,
    /// A media frame.
    Media,
}

/// The tracks seen so far.
#[derive(Debug, Default)]
pub struct Inputs {
    /// In the order they appeared.
    pub list: Vec<Input>,
}

impl Inputs {
    /// Records what `f` says about its track; `restart` is set when the
    /// running muxer can no longer carry the stream (a changed
    /// configuration or codec, a discontinuity).
    pub fn take(&mut self, f: &Frame, restart: &mut bool) -> Seen {
        let i = match self.list.iter().position(|t| t.track == f.track) {
            Some(i) => i,
            None => {
                self.list.push(Input {
                    track: f.track,
                    codec: f.codec,
                    config: None,
                });
                self.list.len() - 1
            }
        };
        let t = &mut self.list[i];
        if f.flags & RILL_FRAME_CONFIG != 0 {
            if t.config.as_ref() != Some(&f.payload) || t.codec != f.codec {
                t.codec = f.codec;
                t.config = Some(f.payload.clone());
                *restart = true;
            }
            return Seen::Config;
        }
        if t.codec != f.codec {
            // A codec change without a config frame: start over.
            t.codec = f.codec;
            t.config = None;
            *restart = true;
        }
        *restart |= f.flags & RILL_FRAME_DISCONTINUITY != 0;
        Seen::Media
    }

    /// Whether a muxer may start at `f`: a key frame of a video track when
    /// the stream has configured video, else any audio frame.
    pub fn starts_at(&self, f: &Frame, is_video: fn(u32) -> bool) -> bool {
        let has_video = self
            .list
            .iter()
            .any(|t| is_video(t.codec) && t.config.is_some());
        if has_video {
            is_video(f.codec) && f.flags & RILL_FRAME_KEY != 0
        } else {
            !is_video(f.codec)
        }
    }

    /// The tracks a TS muxer can carry now (those with a configuration, and
    /// MP3 and Opus, which need none) and their host track ids, in order.
    pub fn mux_tracks(&self) -> (Vec<MuxTrack>, Vec<u32>) {
        let mut tracks = Vec::new();
        let mut ids = Vec::new();
        for t in &self.list {
            let config = match (&t.config, t.codec) {
                (Some(c), _) => c.clone(),
                (None, RILL_CODEC_MP3 | RILL_CODEC_OPUS) => Bytes::new(),
                (None, _) => continue,
            };
            tracks.push(MuxTrack::new(t.codec, config));
            ids.push(t.track);
        }
        (tracks, ids)
    }
}

/// Whether MPEG-TS carries this codec (`RILL_CODEC_*`).
pub fn ts_codec(codec: u32) -> bool {
    matches!(
        codec,
        RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_AAC | RILL_CODEC_MP3 | RILL_CODEC_OPUS
    )
}

/// Whether the codec is a video codec TS carries.
pub fn is_video(codec: u32) -> bool {
    matches!(codec, RILL_CODEC_H264 | RILL_CODEC_H265)
}
