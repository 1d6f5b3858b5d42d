//! Host frames to one continuous MPEG-TS stream, frame by frame: what a
//! live TS player (SRT, UDP, HTTP-TS) receives. It starts at the first key
//! frame (any audio frame when the stream has no video), repeats PAT and
//! PMT before every video key frame (and every half second without video)
//! so a player can join at any key frame, and starts a new muxer when a
//! track's configuration or codec changes or a track appears (a TS
//! source's audio often shows up a few frames after its video): at once,
//! with a new PMT, so a player already watching loses nothing.

use bytes::BytesMut;
use rill_abi::RILL_FRAME_KEY;

use crate::inputs::{is_video, ts_codec, Inputs, Seen};
use crate::{Error, Frame, Muxer, MuxerConfig};

/// PAT/PMT repetition without video key frames, µs.
const PSI_INTERVAL: i64 = 500_000;

struct Live {
    mux: Muxer,
    map: Vec<u32>,
    has_video: bool,
    last_psi: i64,
    /// No PAT/PMT written yet.
    fresh: bool,
}

/// The muxer of one live stream.
pub struct LiveMuxer {
    cfg: MuxerConfig,
    inputs: Inputs,
    live: Option<Live>,
    /// A running muxer was dropped for a new one: start the next at once.
    restarting: bool,
}

impl LiveMuxer {
    /// A muxer that starts at the first frame it can start at.
    pub fn new(cfg: MuxerConfig) -> LiveMuxer {
        LiveMuxer {
            cfg,
            inputs: Inputs::default(),
            live: None,
            restarting: false,
        }
    }

    /// Takes one frame and appends its packets to `out`: nothing for config
    /// frames, for frames before the start and for codecs TS does not
    /// carry. Returns whether the bytes begin with PAT/PMT (a point a new
    /// player can start at).
    pub fn push(&mut self, f: &Frame, out: &mut BytesMut) -> Result<bool, Error> {
        if !ts_codec(f.codec) {
            return Ok(false);
        }
        let mut restart = false;
        let seen = self.inputs.take(f, &mut restart);
        if restart && self.live.take().is_some() {
            self.restarting = true;
        }
        if seen == Seen::Config {
            return Ok(false);
        }
        if self.live.is_none() {
            let continuing = self.restarting;
            if !self.start(f, continuing)? {
                return Ok(false);
            }
            self.restarting = false;
        }
        let Some(live) = self.live.as_mut() else {
            return Ok(false);
        };
        let Some(idx) = live.map.iter().position(|t| *t == f.track) else {
            return Ok(false);
        };
        let key_video = is_video(f.codec) && f.flags & RILL_FRAME_KEY != 0;
        let psi = if std::mem::take(&mut live.fresh) {
            true
        } else if live.has_video {
            key_video
        } else {
            f.dts - live.last_psi >= PSI_INTERVAL || f.dts < live.last_psi
        };
        if psi {
            live.mux.start_segment(out);
            live.last_psi = f.dts;
        }
        let frame = Frame {
            track: idx as u32,
            payload: f.payload.clone(),
            ..*f
        };
        live.mux.write(&frame, out)?;
        Ok(psi)
    }

    /// Starts a muxer at `f`: at a start point, or anywhere when it
    /// replaces a running one (`continuing`).
    fn start(&mut self, f: &Frame, continuing: bool) -> Result<bool, Error> {
        if !continuing && !self.inputs.starts_at(f, is_video) {
            return Ok(false);
        }
        let (tracks, map) = self.inputs.mux_tracks();
        if !map.contains(&f.track) {
            return Ok(false);
        }
        let has_video = tracks.iter().any(|t| is_video(t.codec));
        self.live = Some(Live {
            mux: Muxer::new(&tracks, self.cfg.clone())?,
            map,
            has_video,
            last_psi: i64::MIN / 2,
            fresh: true,
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;
    use crate::{Demuxer, Event, Limits};
    use bytes::Bytes;
    use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_FRAME_CONFIG};

    fn frame(track: u32, codec: u32, flags: u32, t: i64, payload: Bytes) -> Frame {
        Frame {
            track,
            codec,
            flags,
            pts: t,
            dts: t,
            payload,
        }
    }

    #[test]
    fn starts_at_a_key_frame_with_psi_and_demuxes() {
        let mut m = LiveMuxer::new(MuxerConfig::default());
        let mut out = BytesMut::new();
        let cfg = seeds::video_config(RILL_CODEC_H264);
        let h = RILL_CODEC_H264;
        assert!(!m
            .push(&frame(0, h, RILL_FRAME_CONFIG, 0, cfg), &mut out)
            .unwrap());
        let au = |key| seeds::video_au(h, key, 300, false, &[1]);
        // A delta frame before any key frame is skipped.
        assert!(!m.push(&frame(0, h, 0, 0, au(false)), &mut out).unwrap());
        assert!(out.is_empty());
        let mut starts = 0;
        for i in 0..10 {
            let key = i % 5 == 0;
            let flags = if key { RILL_FRAME_KEY } else { 0 };
            let psi = m
                .push(&frame(0, h, flags, 40_000 * (i + 1), au(key)), &mut out)
                .unwrap();
            assert_eq!(psi, key);
            starts += psi as usize;
        }
        assert_eq!(starts, 2);
        let mut d = Demuxer::new(Limits::default());
        let mut ev = Vec::new();
        d.feed(&out, &mut ev);
        d.flush(&mut ev);
        let frames = ev
            .iter()
            .filter(|e| matches!(e, Event::Frame(f) if !f.is_config()))
            .count();
        assert_eq!(frames, 10);
    }

    /// Audio announced after the video started: the muxer restarts at once
    /// with both tracks, no video frame lost.
    #[test]
    fn a_late_track_restarts_in_place() {
        let mut m = LiveMuxer::new(MuxerConfig::default());
        let mut out = BytesMut::new();
        let (h, a) = (RILL_CODEC_H264, RILL_CODEC_AAC);
        let cfg = seeds::video_config(h);
        m.push(&frame(0, h, RILL_FRAME_CONFIG, 0, cfg), &mut out)
            .unwrap();
        let au = |key| seeds::video_au(h, key, 300, false, &[1]);
        for i in 0..10 {
            let flags = if i == 0 { RILL_FRAME_KEY } else { 0 };
            m.push(&frame(0, h, flags, 40_000 * i, au(i == 0)), &mut out)
                .unwrap();
            if i == 3 {
                let asc = Bytes::from_static(&seeds::AAC_ASC);
                m.push(&frame(1, a, RILL_FRAME_CONFIG, 0, asc), &mut out)
                    .unwrap();
                let psi = m
                    .push(
                        &frame(
                            1,
                            a,
                            RILL_FRAME_KEY,
                            130_000,
                            Bytes::from_static(&[0x21, 0x10, 4]),
                        ),
                        &mut out,
                    )
                    .unwrap();
                assert!(psi, "the new muxer starts with PAT/PMT");
            }
        }
        let mut d = Demuxer::new(Limits::default());
        let mut ev = Vec::new();
        d.feed(&out, &mut ev);
        d.flush(&mut ev);
        let video = ev
            .iter()
            .filter(|e| matches!(e, Event::Frame(f) if !f.is_config() && f.codec == h))
            .count();
        let audio = ev
            .iter()
            .filter(|e| matches!(e, Event::Frame(f) if !f.is_config() && f.codec == a))
            .count();
        assert_eq!((video, audio), (10, 1));
    }
}
