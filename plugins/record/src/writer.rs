//! The containers a recording is written in, as byte producers: frames in,
//! [`Out`] writes out (appends, patches at an offset, index appends). No
//! I/O here; the recorder hands the writes to the host.
//!
//! Every writer starts at a key frame (any frame without video) and is
//! given the decoder configurations first. FLV and MP4 files count their
//! media time from their first frame (each file starts at 0); fMP4 and TS
//! files keep the stream's own timeline, so the files of one recording
//! play back to back (a VOD playlist of them needs no discontinuity).

use bytes::{Bytes, BytesMut};
use rill_abi::*;
use rill_mp4::progressive::{self, Index, StoredSample};
use rill_mp4::{Muxer, Sample, TrackInfo};

/// What the recorder writes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// At the end of the file.
    Append(Bytes),
    /// At an offset of the file (a header patched at the end).
    At(u64, Bytes),
    /// At the end of the sidecar index (MP4).
    Index(Bytes),
}

/// A frame as the writers take it: rill-ts's (track, codec, flags, times
/// in µs, payload), the same fields every container needs.
pub use rill_ts::Frame as Media;

/// What the writers ask of a frame beyond `is_config`/`is_key`.
pub trait MediaExt {
    fn is_video(&self) -> bool;
}

impl MediaExt for Media {
    fn is_video(&self) -> bool {
        rill_codec_kind(self.codec) == RILL_TRACK_VIDEO
    }
}

/// When an fMP4 writer cuts fragments: at the first frame `first_us`
/// after the file's start, then every `every_us` (at any frame: a fragment
/// need not start with a key frame).
///
/// A recorder gives each stream its own `first_us`, between half and all
/// of `every_us`: streams whose key frames line up (one encoder, or
/// publishers started together) then write their fragments spread over
/// the period instead of all at once, which delayed every player's frames
/// behind the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cuts {
    pub first_us: i64,
    pub every_us: i64,
}

impl Cuts {
    /// Every `us`, the first too.
    pub fn every(us: i64) -> Cuts {
        Cuts {
            first_us: us,
            every_us: us,
        }
    }

    /// Every `us`, the first after a share of it that `key` picks (the
    /// same key, the same share): from half of `us` to all of it.
    pub fn spread(us: i64, key: &str) -> Cuts {
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        // FNV-1a, then SplitMix64's finalizer: keys that differ in their
        // last byte land apart in the high bits too.
        let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let h = h ^ (h >> 31);
        let share = (h >> 11) as f64 / (1u64 << 53) as f64;
        Cuts {
            first_us: us / 2 + (us as f64 / 2.0 * share) as i64,
            every_us: us,
        }
    }
}

/// The container formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Fmp4,
    Flv,
    Mp4,
    Ts,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "fmp4" => Format::Fmp4,
            "flv" => Format::Flv,
            "mp4" => Format::Mp4,
            "ts" | "hls" => Format::Ts,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Fmp4 => "fmp4",
            Format::Flv => "flv",
            Format::Mp4 => "mp4",
            Format::Ts => "ts",
        }
    }

    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Fmp4 | Format::Mp4 => "mp4",
            Format::Flv => "flv",
            Format::Ts => "ts",
        }
    }
}

/// One file being written.
pub struct Writer {
    kind: Kind,
    /// Subtracted from every time written: the first frame's decode time
    /// (FLV, MP4) or 0 (fMP4, TS: the stream's timeline).
    base: i64,
    /// The first frame's decode time, after `base`.
    first: i64,
    /// The latest decode time written, after `base`.
    last: i64,
    bytes: u64,
    codecs: String,
}

enum Kind {
    Fmp4 {
        mux: Muxer,
        /// Host track id → muxer track.
        map: Vec<u32>,
        /// The next fragment is cut at the first frame from this time on
        /// (after `base`), then `every_us` later.
        next_cut: i64,
        every_us: i64,
    },
    Flv,
    Mp4 {
        tracks: Vec<TrackInfo>,
        map: Vec<u32>,
        samples: Vec<StoredSample>,
        offset: u64,
    },
    Ts {
        mux: Box<rill_ts::LiveMuxer>,
    },
}

/// Largest sample a writer accepts (a bad frame must not make a file
/// unreadable).
const MAX_SAMPLE: usize = 32 << 20;

impl Writer {
    /// A writer for `configs` (the latest config frame of each track),
    /// starting at `first` (a key frame). Writes the file's head.
    pub fn new(
        format: Format,
        configs: &[Media],
        first: &Media,
        cuts: Cuts,
        out: &mut Vec<Out>,
    ) -> Result<Writer, String> {
        let base = match format {
            Format::Flv | Format::Mp4 => first.dts,
            Format::Fmp4 | Format::Ts => 0,
        };
        let infos = || -> Result<(Vec<TrackInfo>, Vec<u32>), String> {
            let mut infos = Vec::new();
            let mut map = Vec::new();
            for c in configs {
                let Ok(mut info) = TrackInfo::new(c.codec, c.payload.clone()) else {
                    continue;
                };
                if c.track == first.track {
                    info.learn_from_keyframe(&first.payload);
                }
                infos.push(info);
                map.push(c.track);
            }
            if infos.is_empty() {
                return Err("no track MP4 can carry".to_owned());
            }
            Ok((infos, map))
        };
        let mut w = Writer {
            kind: Kind::Flv,
            base,
            first: first.dts - base,
            last: first.dts - base,
            bytes: 0,
            codecs: String::new(),
        };
        match format {
            Format::Fmp4 => {
                let (infos, map) = infos()?;
                w.codecs = rill_mp4::codecs_attribute(&infos);
                let mux = Muxer::new(infos).map_err(|e| e.to_string())?;
                let init = mux.init_segment().map_err(|e| e.to_string())?;
                w.emit(out, Out::Append(init));
                w.kind = Kind::Fmp4 {
                    mux,
                    map,
                    next_cut: w.first + cuts.first_us.max(1),
                    every_us: cuts.every_us.max(1),
                };
            }
            Format::Mp4 => {
                let (infos, map) = infos()?;
                w.codecs = rill_mp4::codecs_attribute(&infos);
                out.push(Out::Index(Index::head(&infos)));
                w.emit(out, Out::Append(progressive::header()));
                w.kind = Kind::Mp4 {
                    tracks: infos,
                    map,
                    samples: Vec::new(),
                    offset: progressive::HEADER_LEN,
                };
            }
            Format::Flv => {
                let audio = configs.iter().any(|c| !c.is_video());
                let video = configs.iter().any(|c| c.is_video());
                w.emit(
                    out,
                    Out::Append(Bytes::copy_from_slice(&rill_flv::stream::header(
                        audio, video,
                    ))),
                );
                w.codecs = codec_names(configs);
                for c in configs {
                    w.flv_tag(c, out);
                }
            }
            Format::Ts => {
                let mut mux = rill_ts::LiveMuxer::new(rill_ts::MuxerConfig::default());
                let mut buf = BytesMut::new();
                for c in configs {
                    let _ = mux.push(&w.ts_frame(c), &mut buf);
                }
                w.codecs = codec_names(configs);
                w.kind = Kind::Ts { mux: Box::new(mux) };
            }
        }
        Ok(w)
    }

    fn emit(&mut self, out: &mut Vec<Out>, o: Out) {
        if let Out::Append(b) = &o {
            self.bytes += b.len() as u64;
        }
        out.push(o);
    }

    /// Bytes in the file so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Media time written, µs.
    pub fn duration_us(&self) -> i64 {
        self.last - self.first
    }

    /// RFC 6381 codecs (MP4) or codec names.
    pub fn codecs(&self) -> &str {
        &self.codecs
    }

    fn rel(&self, t: i64) -> i64 {
        t - self.base
    }

    fn flv_tag(&mut self, m: &Media, out: &mut Vec<Out>) {
        let f = rill_flv::Frame {
            codec: m.codec,
            flags: m.flags,
            pts: self.rel(m.pts).max(0),
            dts: self.rel(m.dts).max(0),
            payload: m.payload.clone(),
        };
        if let Ok((kind, ts, body)) = rill_flv::tag::mux(&f) {
            let tag = rill_flv::stream::tag(kind, ts, &body);
            self.emit(out, Out::Append(tag));
        }
    }

    fn ts_frame(&self, m: &Media) -> Media {
        Media {
            pts: self.rel(m.pts).max(0),
            dts: self.rel(m.dts).max(0),
            ..m.clone()
        }
    }

    /// Writes one frame (config frames of known tracks are ignored: a
    /// changed configuration starts a new file, the recorder's call).
    pub fn push(&mut self, m: &Media, out: &mut Vec<Out>) -> Result<(), String> {
        if m.payload.len() > MAX_SAMPLE {
            return Err(format!("a {} byte frame is too large", m.payload.len()));
        }
        let dts = self.rel(m.dts);
        if dts < self.first {
            // Before the segment's start (audio just ahead of the key
            // frame): it belongs to the previous file.
            return Ok(());
        }
        let pts = self.rel(m.pts);
        match &mut self.kind {
            Kind::Fmp4 {
                mux,
                map,
                next_cut,
                every_us,
            } => {
                let Some(t) = map.iter().position(|t| *t == m.track) else {
                    return Ok(());
                };
                if m.is_config() {
                    return Ok(());
                }
                mux.push(t, Sample::from_frame(m.flags, pts, dts, m.payload.clone()))
                    .map_err(|e| e.to_string())?;
                let frag = if dts >= *next_cut {
                    *next_cut = dts + *every_us;
                    mux.fragment_before(dts)
                } else {
                    None
                };
                if let Some(f) = frag {
                    self.last = self.last.max(f.end());
                    let b = f.to_bytes();
                    self.emit(out, Out::Append(b));
                }
            }
            Kind::Mp4 {
                map,
                samples,
                offset,
                ..
            } => {
                let Some(t) = map.iter().position(|t| *t == m.track) else {
                    return Ok(());
                };
                if m.is_config() {
                    return Ok(());
                }
                if samples.len() >= progressive::MAX_SAMPLES {
                    return Err("too many samples in one file".to_owned());
                }
                let s = StoredSample {
                    track: t as u8,
                    key: m.is_key() || !m.is_video(),
                    size: m.payload.len() as u32,
                    offset: *offset,
                    dts,
                    pts,
                };
                *offset += m.payload.len() as u64;
                samples.push(s);
                self.last = self.last.max(dts);
                let payload = m.payload.clone();
                self.emit(out, Out::Append(payload));
                out.push(Out::Index(Bytes::copy_from_slice(&s.record())));
            }
            Kind::Flv => {
                if m.is_config() {
                    return Ok(());
                }
                self.last = self.last.max(dts);
                self.flv_tag(m, out);
            }
            Kind::Ts { mux } => {
                let f = Media {
                    pts: pts.max(0),
                    dts,
                    ..m.clone()
                };
                let mut buf = BytesMut::new();
                mux.push(&f, &mut buf).map_err(|e| e.to_string())?;
                self.last = self.last.max(dts);
                if !buf.is_empty() {
                    self.emit(out, Out::Append(buf.freeze()));
                }
            }
        }
        Ok(())
    }

    /// Ends the file: the last fragment (fMP4), the `moov` and the `mdat`
    /// size (MP4).
    pub fn finish(&mut self, out: &mut Vec<Out>) {
        let last = self.last;
        match &mut self.kind {
            Kind::Fmp4 { mux, .. } => {
                if let Some(f) = mux.flush(None) {
                    self.last = last.max(f.end());
                    let b = f.to_bytes();
                    self.emit(out, Out::Append(b));
                }
            }
            Kind::Mp4 {
                tracks,
                samples,
                offset,
                ..
            } => {
                if let Some((moov, patch)) = close_mp4(tracks, samples, *offset) {
                    self.bytes += moov.len() as u64;
                    out.push(Out::Append(moov));
                    out.push(patch);
                }
            }
            Kind::Flv | Kind::Ts { .. } => {}
        }
    }
}

/// The `moov` (appended where the samples' data ends, at `end`) and the
/// write that patches the `mdat` size; `None` without samples.
pub fn close_mp4(tracks: &[TrackInfo], samples: &[StoredSample], end: u64) -> Option<(Bytes, Out)> {
    let moov = progressive::moov(tracks, samples).ok()?;
    let (at, size) = progressive::mdat_size(end.saturating_sub(progressive::HEADER_LEN));
    Some((moov, Out::At(at, Bytes::copy_from_slice(&size))))
}

/// Codec names for formats without RFC 6381 strings of their own.
fn codec_names(configs: &[Media]) -> String {
    let names: Vec<String> = configs
        .iter()
        .filter_map(|c| TrackInfo::new(c.codec, c.payload.clone()).ok())
        .map(|i| i.codec_string)
        .collect();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_spread_between_half_and_all_of_the_period() {
        let firsts: Vec<i64> = (0..100)
            .map(|i| Cuts::spread(1_000_000, &format!("live/{i}")).first_us)
            .collect();
        assert!(firsts.iter().all(|f| (500_000..=1_000_000).contains(f)));
        // Spread, not bunched: every tenth of the range gets some.
        for d in 0..5 {
            let lo = 500_000 + d * 100_000;
            assert!(
                firsts.iter().any(|f| (lo..lo + 100_000).contains(f)),
                "{lo}"
            );
        }
        assert_eq!(
            Cuts::spread(1_000_000, "a/b"),
            Cuts::spread(1_000_000, "a/b")
        );
        assert_eq!(Cuts::spread(1_000_000, "a/b").every_us, 1_000_000);
    }

    #[test]
    fn formats_parse() {
        for f in [Format::Fmp4, Format::Flv, Format::Mp4, Format::Ts] {
            assert_eq!(Format::parse(f.name()), Some(f));
        }
        assert_eq!(Format::parse("hls"), Some(Format::Ts));
        assert_eq!(Format::parse("avi"), None);
    }
}
