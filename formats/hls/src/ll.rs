//! Low-Latency HLS over fMP4: the stream's frames cut into parts and
//! segments by a `rill_mp4::Muxer`, kept in a [`Window`].

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_VP9, RILL_FRAME_KEY,
};
use rill_mp4::{Muxer, Sample, TrackInfo};

use crate::cut::{Cut, Cutter};
use crate::window::{Part, Window};
use crate::{playlist, Changed, Config, Error, Frame};
use rill_ts::inputs::{Inputs, Seen};

fn mp4_codec(codec: u32) -> bool {
    matches!(
        codec,
        RILL_CODEC_H264
            | RILL_CODEC_H265
            | RILL_CODEC_AV1
            | RILL_CODEC_VP9
            | RILL_CODEC_AAC
            | RILL_CODEC_OPUS
    )
}

fn is_video(codec: u32) -> bool {
    matches!(
        codec,
        RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_AV1 | RILL_CODEC_VP9
    )
}

/// The muxer of the current configuration.
struct Live {
    mux: Muxer,
    /// Host track id of each muxer track.
    map: Vec<u32>,
    /// The host track whose frames decide the cuts.
    driver: u32,
}

/// One stream's LL-HLS state. `P` is what the caller keeps for each muxed
/// object (init segments and parts).
pub struct LlHls<P> {
    cfg: Config,
    inputs: Inputs,
    live: Option<Live>,
    cutter: Cutter,
    window: Window<P>,
    /// Init segments still referenced, by id.
    inits: Vec<(u32, P)>,
    init_id: u32,
    /// The next segment starts a discontinuity.
    discontinuity: bool,
    codecs: String,
    resolution: Option<(u32, u32)>,
    error: Option<Error>,
}

impl<P: Clone> LlHls<P> {
    /// An empty state; it starts at the first key frame.
    pub fn new(cfg: Config) -> LlHls<P> {
        LlHls {
            cfg,
            inputs: Inputs::default(),
            live: None,
            cutter: Cutter::new(cfg.part_target_us, cfg.segment_target_us),
            window: Window::new(cfg.window, cfg.segment_target_us, cfg.first_msn),
            inits: Vec::new(),
            init_id: 0,
            discontinuity: false,
            codecs: String::new(),
            resolution: None,
            error: None,
        }
    }

    /// Takes one frame; `wall_us` is the wall clock now (Unix µs), `mk`
    /// makes the caller's `P` from muxed bytes.
    pub fn push(&mut self, f: &Frame, wall_us: i64, mk: &mut dyn FnMut(Bytes) -> P) -> Changed {
        let mut changed = Changed::default();
        if !mp4_codec(f.codec) {
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
        if self.live.is_none() {
            if !self.start(f, mk) {
                return changed;
            }
            changed.init = true;
        }
        let Some(live) = self.live.as_mut() else {
            return changed;
        };
        let Some(idx) = live.map.iter().position(|t| *t == f.track) else {
            return changed;
        };
        self.window.observe(wall_us, f.dts);
        // The frame goes in first: it makes its track's previous sample
        // ready (its duration known), so a cut before it takes that one.
        let mut cut = Cut::None;
        let part_start = self.cutter.part_start();
        if f.track == live.driver {
            cut = self.cutter.before(f.dts, f.flags & RILL_FRAME_KEY != 0);
        }
        let sample = Sample::from_frame(f.flags, f.pts, f.dts, f.payload.clone());
        if let Err(e) = live.mux.push(idx, sample) {
            self.error = Some(Error::Mp4(e));
        }
        let segment_cut = cut == Cut::Segment;
        if cut != Cut::None {
            changed.media |= emit(live, &mut self.window, self.init_id, f.dts, part_start, mk);
        }
        if segment_cut {
            self.window.open(false, self.init_id, f.dts);
        }
        if segment_cut {
            self.forget_inits();
        }
        changed
    }

    /// The publisher is gone: the last part and segment are completed;
    /// what comes next (a publisher back) starts a discontinuity.
    pub fn finish(&mut self, mk: &mut dyn FnMut(Bytes) -> P) -> Changed {
        self.restart(mk)
    }

    /// The last frame this refused, if any (taken).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// The segments and parts.
    pub fn window(&self) -> &Window<P> {
        &self.window
    }

    /// Init segment `id` (`init{id}.m4s`).
    pub fn init(&self, id: u32) -> Option<&P> {
        self.inits.iter().find(|(i, _)| *i == id).map(|(_, p)| p)
    }

    /// The `CODECS` attribute of the current configuration.
    pub fn codecs(&self) -> &str {
        &self.codecs
    }

    /// Picture size of the current configuration, when known.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        self.resolution
    }

    /// Whether a complete segment exists (what a new player needs).
    pub fn has_segment(&self) -> bool {
        self.window.complete_count() > 0
    }

    /// The media playlist; `suffix` (a query, `?token=…`, or empty) is
    /// appended to every URI in it.
    pub fn playlist(&self, suffix: &str) -> String {
        playlist::ll_media(&self.window, self.cfg.part_target_us, suffix)
    }

    /// The multivariant playlist pointing at `media_uri`, once the stream
    /// has a segment.
    pub fn multivariant(&self, media_uri: &str) -> Option<String> {
        // (the caller puts any query on `media_uri` itself)
        self.has_segment().then(|| {
            playlist::multivariant(
                media_uri,
                self.window.peak_bps(),
                &self.codecs,
                self.resolution,
            )
        })
    }

    /// Makes a muxer for the tracks known now, at a key frame of the
    /// driving track (video when there is video). False: not now.
    fn start(&mut self, f: &Frame, mk: &mut dyn FnMut(Bytes) -> P) -> bool {
        if !self.inputs.starts_at(f, is_video) {
            return false;
        }
        let mut infos = Vec::new();
        let mut map = Vec::new();
        for t in &self.inputs.list {
            let config = match (&t.config, t.codec) {
                (Some(c), _) => c.clone(),
                // Opus may come without a header: stereo 48 kHz.
                (None, RILL_CODEC_OPUS) => Bytes::new(),
                (None, _) => continue,
            };
            let Ok(mut info) = TrackInfo::new(t.codec, config) else {
                continue;
            };
            if t.track == f.track {
                info.learn_from_keyframe(&f.payload);
            }
            infos.push(info);
            map.push(t.track);
        }
        if !map.contains(&f.track) {
            return false;
        }
        let resolution = infos
            .iter()
            .find(|i| i.is_video() && i.width > 0)
            .map(|i| (i.width, i.height));
        let mux = match Muxer::new(infos) {
            Ok(m) => m,
            Err(e) => {
                self.error = Some(Error::Mp4(e));
                return false;
            }
        };
        let init = match mux.init_segment() {
            Ok(b) => b,
            Err(e) => {
                self.error = Some(Error::Mp4(e));
                return false;
            }
        };
        self.init_id += 1;
        self.inits.push((self.init_id, mk(init)));
        self.codecs = mux.codecs();
        self.resolution = resolution;
        self.live = Some(Live {
            mux,
            map,
            driver: f.track,
        });
        self.cutter.reset();
        let disc = std::mem::take(&mut self.discontinuity);
        self.window.open(disc, self.init_id, f.dts);
        true
    }

    /// Ends the current configuration: the held samples become the last
    /// part, the segment closes, the next one starts a discontinuity.
    fn restart(&mut self, mk: &mut dyn FnMut(Bytes) -> P) -> Changed {
        let mut changed = Changed::default();
        if let Some(mut live) = self.live.take() {
            if let Some(frag) = live.mux.flush(None) {
                // The driving track's span from the part's start: what a
                // player plays of it, and within the part target.
                let driver = live.map.iter().position(|t| *t == live.driver);
                let end = frag
                    .tracks
                    .iter()
                    .find(|t| Some(t.track) == driver)
                    .map_or(frag.end(), |t| t.end);
                let part = Part {
                    duration_us: (end - self.cutter.part_start().max(frag.start()))
                        .clamp(1, self.cfg.part_target_us),
                    independent: frag.independent(),
                    len: frag.len(),
                    data: mk(frag.to_bytes()),
                };
                self.window.push(part, self.init_id);
                changed.media = true;
            }
            self.window.close();
            self.discontinuity = true;
            self.forget_inits();
        }
        self.cutter.reset();
        changed
    }

    fn forget_inits(&mut self) {
        let current = self.init_id;
        let window = &self.window;
        self.inits
            .retain(|(id, _)| *id == current || window.segments().any(|s| s.init == *id));
    }
}

/// Cuts the ready samples before `limit` into a part of the open segment.
fn emit<P>(
    live: &mut Live,
    window: &mut Window<P>,
    init: u32,
    limit: i64,
    part_start: i64,
    mk: &mut dyn FnMut(Bytes) -> P,
) -> bool {
    let Some(frag) = live.mux.fragment_before(limit) else {
        return false;
    };
    let part = Part {
        duration_us: (limit - part_start).max(1),
        independent: frag.independent(),
        len: frag.len(),
        data: mk(frag.to_bytes()),
    };
    window.push(part, init);
    true
}
