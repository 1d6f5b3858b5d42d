//! Classic HLS over MPEG-TS: segments only, cut on key frames of the
//! driving track, for players without fMP4 (older TVs, set-top boxes).

use bytes::{Bytes, BytesMut};
use rill_abi::RILL_FRAME_KEY;
use rill_ts::inputs::{is_video, ts_codec, Inputs, Seen};
use rill_ts::{Muxer, MuxerConfig};

use crate::cut::{Cut, Cutter};
use crate::window::{Part, Window};
use crate::{playlist, Changed, Config, Error, Frame};

struct Live {
    mux: Muxer,
    map: Vec<u32>,
    driver: u32,
    buf: BytesMut,
    start_dts: i64,
    /// The driving track's latest dts and frame interval.
    last_dts: i64,
    interval: i64,
}

/// One stream's classic HLS state.
pub struct TsHls<P> {
    inputs: Inputs,
    live: Option<Live>,
    cutter: Cutter,
    window: Window<P>,
    discontinuity: bool,
    error: Option<Error>,
}

impl<P: Clone> TsHls<P> {
    /// An empty state; it starts at the first key frame.
    pub fn new(cfg: Config) -> TsHls<P> {
        TsHls {
            inputs: Inputs::default(),
            live: None,
            cutter: Cutter::new(0, cfg.segment_target_us),
            window: Window::new(cfg.window, cfg.segment_target_us, cfg.first_msn),
            discontinuity: false,
            error: None,
        }
    }

    /// Takes one frame (see [`crate::LlHls::push`]).
    pub fn push(&mut self, f: &Frame, wall_us: i64, mk: &mut dyn FnMut(Bytes) -> P) -> Changed {
        let mut changed = Changed::default();
        if !ts_codec(f.codec) {
            // Metadata and codecs this format cannot carry.
            return changed;
        }
        let mut restart = false;
        let seen = self.inputs.take(f, &mut restart);
        if restart && self.live.is_some() {
            changed = self.restart(mk);
        }
        if seen == Seen::Config {
            return changed;
        }
        if self.live.is_none() && !self.start(f) {
            return changed;
        }
        let Some(live) = self.live.as_mut() else {
            return changed;
        };
        let Some(idx) = live.map.iter().position(|t| *t == f.track) else {
            return changed;
        };
        self.window.observe(wall_us, f.dts);
        if f.track == live.driver && f.dts > live.last_dts {
            live.interval = f.dts - live.last_dts;
            live.last_dts = f.dts;
        }
        if f.track == live.driver
            && self.cutter.before(f.dts, f.flags & RILL_FRAME_KEY != 0) == Cut::Segment
        {
            let data = live.buf.split().freeze();
            let part = Part {
                duration_us: (f.dts - live.start_dts).max(1),
                independent: true,
                len: data.len(),
                data: mk(data),
            };
            self.window.push(part, 0);
            self.window.close();
            self.window.open(false, 0, f.dts);
            live.start_dts = f.dts;
            live.mux.start_segment(&mut live.buf);
            changed.media = true;
        }
        let frame = rill_ts::Frame {
            track: idx as u32,
            codec: f.codec,
            flags: f.flags,
            pts: f.pts,
            dts: f.dts,
            payload: f.payload.clone(),
        };
        if let Err(e) = live.mux.write(&frame, &mut live.buf) {
            self.error = Some(Error::Ts(e.to_string()));
        }
        changed
    }

    /// The publisher is gone: the last segment is completed; what comes
    /// next starts a discontinuity.
    pub fn finish(&mut self, mk: &mut dyn FnMut(Bytes) -> P) -> Changed {
        self.restart(mk)
    }

    /// The last frame this refused, if any (taken).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// The segments.
    pub fn window(&self) -> &Window<P> {
        &self.window
    }

    /// Whether a complete segment exists.
    pub fn has_segment(&self) -> bool {
        self.window.complete_count() > 0
    }

    /// The media playlist; `suffix` is appended to every URI.
    pub fn playlist(&self, suffix: &str) -> String {
        playlist::ts_media(&self.window, suffix)
    }

    fn start(&mut self, f: &Frame) -> bool {
        if !self.inputs.starts_at(f, is_video) {
            return false;
        }
        let (tracks, map) = self.inputs.mux_tracks();
        if !map.contains(&f.track) {
            return false;
        }
        let mut mux = match Muxer::new(&tracks, MuxerConfig::default()) {
            Ok(m) => m,
            Err(e) => {
                self.error = Some(Error::Ts(e.to_string()));
                return false;
            }
        };
        let mut buf = BytesMut::with_capacity(256 << 10);
        mux.start_segment(&mut buf);
        self.live = Some(Live {
            mux,
            map,
            driver: f.track,
            buf,
            start_dts: f.dts,
            last_dts: f.dts,
            interval: 0,
        });
        self.cutter.reset();
        let disc = std::mem::take(&mut self.discontinuity);
        self.window.open(disc, 0, f.dts);
        true
    }

    fn restart(&mut self, mk: &mut dyn FnMut(Bytes) -> P) -> Changed {
        let mut changed = Changed::default();
        if let Some(mut live) = self.live.take() {
            if !live.buf.is_empty() {
                let data = live.buf.split().freeze();
                let part = Part {
                    // To the driving track's last frame, plus its interval.
                    duration_us: (live.last_dts - live.start_dts + live.interval).max(1),
                    independent: true,
                    len: data.len(),
                    data: mk(data),
                };
                self.window.push(part, 0);
                changed.media = true;
            }
            self.window.close();
            self.discontinuity = true;
        }
        self.cutter.reset();
        changed
    }
}
