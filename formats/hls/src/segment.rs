//! Reading media segments back into frames, for clients of HLS (a relay
//! pulling a stream, the load generator): MPEG-TS segments through
//! `rill-ts`'s demuxer, fMP4 segments (`moof`/`mdat`, after the init
//! segment of their `EXT-X-MAP`) through `rill-mp4`'s reader.
//!
//! Frames come out in the host's model ([`Frame`]): length-prefixed NAL
//! units with the decoder configuration as a config frame, raw AAC with
//! its AudioSpecificConfig, Opus with its `OpusHead`; times in µs, as the
//! source stamped them (TS: unwrapped 90 kHz; fMP4: `tfdt` and the sample
//! durations in the track's timescale). Payloads are slices of the
//! segment's [`Bytes`], not copies.
//!
//! Both readers are bounded by their crates' limits (`rill_ts::Limits`,
//! `rill_mp4::read`'s) and return errors, never panic, on any input.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_VP9, RILL_FRAME_CONFIG, RILL_FRAME_KEY,
};
use rill_mp4::codec::opus::OpusHead;

use crate::Frame;

/// Why a segment gave no frames, or an init segment no tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentError {
    /// The fMP4 reader refused it.
    Mp4(rill_mp4::Error),
    /// An init segment without a track this reader turns into frames.
    NoTracks,
    /// Not MPEG-TS (no packet at all), or the demuxer's last complaint
    /// about a segment that gave no frame.
    Ts(String),
    /// A `moof` without the `mdat` it describes.
    NoMdat,
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentError::Mp4(e) => write!(f, "fMP4: {e}"),
            SegmentError::NoTracks => f.write_str("fMP4: an init segment without a known track"),
            SegmentError::Ts(e) => write!(f, "MPEG-TS: {e}"),
            SegmentError::NoMdat => f.write_str("fMP4: a moof without its mdat"),
        }
    }
}

impl std::error::Error for SegmentError {}

impl From<rill_mp4::Error> for SegmentError {
    fn from(e: rill_mp4::Error) -> Self {
        SegmentError::Mp4(e)
    }
}

/// One track of an fMP4 init segment that this reader turns into frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Track {
    /// `tkhd` track ID (what a `traf` names).
    pub track_id: u32,
    /// The frames' track: the index of this track among the init
    /// segment's known tracks.
    pub index: u32,
    /// `RILL_CODEC_*`.
    pub codec: u32,
    /// `mdhd` timescale (at least 1).
    pub timescale: u32,
    /// The decoder configuration in the host's form (the `avcC`, `hvcC`,
    /// `av1C` or `vpcC` body, the AudioSpecificConfig, an `OpusHead`).
    pub config: Bytes,
    /// Video: the size of the NAL length prefixes (1, 2 or 4).
    pub nal_len: usize,
}

impl Mp4Track {
    /// Whether it is a video track.
    pub fn is_video(&self) -> bool {
        matches!(
            self.codec,
            RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_AV1 | RILL_CODEC_VP9
        )
    }

    /// Track time to µs, saturating.
    fn us(&self, t: i128) -> i64 {
        (t * 1_000_000 / self.timescale as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// One sample of an fMP4 fragment, as [`Mp4Init::samples`] visits them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Sample<'a> {
    /// The track it belongs to.
    pub track: &'a Mp4Track,
    /// Decode time, µs.
    pub dts: i64,
    /// Presentation time, µs.
    pub pts: i64,
    /// A sync sample (audio: always).
    pub key: bool,
    /// Where its bytes are in the data given.
    pub range: Range<usize>,
}

/// The tracks of an fMP4 init segment (`ftyp` + `moov`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Init {
    tracks: Vec<Mp4Track>,
}

impl Mp4Init {
    /// Reads an init segment. Tracks of codecs without a frame form here
    /// are left out; none left is an error.
    pub fn parse(init: &[u8]) -> Result<Mp4Init, SegmentError> {
        let i = rill_mp4::read::parse_init(init)?;
        let mut tracks = Vec::new();
        for t in &i.tracks {
            let Some((codec, config)) = frame_config(&t.entry) else {
                continue;
            };
            if tracks.len() >= rill_mp4::MAX_TRACKS {
                break;
            }
            let nal_len = match (&t.entry.config, codec) {
                (Some((_, b)), RILL_CODEC_H264) if b.len() > 4 => (b[4] & 3) as usize + 1,
                (Some((_, b)), RILL_CODEC_H265) if b.len() > 21 => (b[21] & 3) as usize + 1,
                _ => 4,
            };
            tracks.push(Mp4Track {
                track_id: t.track_id,
                index: tracks.len() as u32,
                codec,
                timescale: t.timescale.max(1),
                config: Bytes::from(config),
                nal_len,
            });
        }
        if tracks.is_empty() {
            return Err(SegmentError::NoTracks);
        }
        Ok(Mp4Init { tracks })
    }

    /// The tracks.
    pub fn tracks(&self) -> &[Mp4Track] {
        &self.tracks
    }

    /// A config frame per track, stamped `dts`.
    pub fn config_frames(&self, dts: i64) -> Vec<Frame> {
        self.tracks
            .iter()
            .map(|t| Frame {
                track: t.index,
                codec: t.codec,
                flags: RILL_FRAME_CONFIG,
                pts: dts,
                dts,
                payload: t.config.clone(),
            })
            .collect()
    }

    /// Visits every sample of the fragments in `data` (a segment or a
    /// part: `moof`+`mdat` pairs, with `styp`, `sidx` or others between),
    /// track by track within each fragment. Samples of tracks the init
    /// segment did not announce are skipped. Returns how many were
    /// visited.
    pub fn samples(
        &self,
        data: &[u8],
        f: &mut dyn FnMut(Mp4Sample<'_>),
    ) -> Result<usize, SegmentError> {
        let frags = rill_mp4::read::parse_fragments(data)?;
        let mut n = 0;
        for frag in &frags {
            if frag.mdat.is_none() {
                return Err(SegmentError::NoMdat);
            }
            for traf in &frag.trafs {
                let Some(t) = self.tracks.iter().find(|t| t.track_id == traf.track_id) else {
                    continue;
                };
                for (s, dts) in traf.samples.iter().zip(traf.decode_times()) {
                    n += 1;
                    let dts = dts as i128;
                    f(Mp4Sample {
                        track: t,
                        dts: t.us(dts),
                        pts: t.us(dts + s.composition_offset as i128),
                        key: !t.is_video() || s.is_sync(),
                        range: s.data.clone(),
                    });
                }
            }
        }
        Ok(n)
    }

    /// The frames of the fragments in `data`, appended to `out` in decode
    /// order (tracks interleaved). Returns how many.
    pub fn frames(&self, data: &Bytes, out: &mut Vec<Frame>) -> Result<usize, SegmentError> {
        let start = out.len();
        let n = self.samples(data, &mut |s| {
            out.push(Frame {
                track: s.track.index,
                codec: s.track.codec,
                flags: if s.key { RILL_FRAME_KEY } else { 0 },
                pts: s.pts,
                dts: s.dts,
                payload: data.slice(s.range),
            })
        })?;
        // Stable: a track's own order is kept where times tie.
        out[start..].sort_by_key(|f| f.dts);
        Ok(n)
    }
}

/// A sample entry's codec and its configuration in the host's form.
fn frame_config(e: &rill_mp4::read::SampleEntry) -> Option<(u32, Vec<u8>)> {
    let body = e.config.as_ref().map(|(_, b)| b.clone());
    Some(match &e.kind {
        b"avc1" | b"avc3" => (RILL_CODEC_H264, body?),
        b"hvc1" | b"hev1" => (RILL_CODEC_H265, body?),
        b"av01" => (RILL_CODEC_AV1, body?),
        b"vp09" => (RILL_CODEC_VP9, body?),
        b"mp4a" => (RILL_CODEC_AAC, e.asc.clone()?),
        b"Opus" => (RILL_CODEC_OPUS, OpusHead::from_dops(&body?)?.packet()),
        _ => return None,
    })
}

/// MPEG-TS segments of one stream, read in order: one demuxer goes on
/// from a segment to the next (its time line, its configurations), and
/// each segment is flushed at its end so its last frame comes out with it.
/// After a discontinuity, [`TsSegments::reset`] starts a new one.
#[derive(Debug)]
pub struct TsSegments {
    demux: rill_ts::Demuxer,
    limits: rill_ts::Limits,
}

impl Default for TsSegments {
    fn default() -> Self {
        TsSegments::new(rill_ts::Limits::default())
    }
}

impl TsSegments {
    /// A reader bounded by `limits`.
    pub fn new(limits: rill_ts::Limits) -> TsSegments {
        TsSegments {
            demux: rill_ts::Demuxer::new(limits.clone()),
            limits,
        }
    }

    /// A new demuxer: a new time line, configurations sent again.
    pub fn reset(&mut self) {
        self.demux = rill_ts::Demuxer::new(self.limits.clone());
    }

    /// The frames of one whole segment, appended to `out`; returns how
    /// many, and the last thing the demuxer found wrong (it skips what is
    /// broken and goes on). A segment that gave no frame and had a
    /// complaint is an error.
    pub fn segment(
        &mut self,
        data: &[u8],
        out: &mut Vec<Frame>,
    ) -> Result<(usize, Option<rill_ts::Error>), SegmentError> {
        let mut events = Vec::new();
        self.demux.feed(data, &mut events);
        self.demux.flush(&mut events);
        let mut n = 0;
        let mut error = None;
        for e in events {
            match e {
                rill_ts::Event::Frame(f) => {
                    n += 1;
                    out.push(f);
                }
                rill_ts::Event::Tracks(_) => {}
                rill_ts::Event::Error { error: e, .. } => error = Some(e),
            }
        }
        match error {
            Some(e) if n == 0 => Err(SegmentError::Ts(e.to_string())),
            e => Ok((n, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An avcC of a 320x240 Baseline stream (from rill-mp4's docs).
    const AVCC: &[u8] = &[
        1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 0x19, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb,
        0x01, 0x10, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x20, 0xf1, 0x42, 0x99, 0x20, 1, 0, 4, 0x68,
        0xcb, 0x83, 0xcb, 0x20,
    ];

    fn nal(key: bool) -> Bytes {
        Bytes::from_static(if key {
            &[0, 0, 0, 3, 0x65, 0x88, 0x80]
        } else {
            &[0, 0, 0, 3, 0x41, 0x9a, 0x00]
        })
    }

    #[test]
    fn fmp4_segments_read_back_as_frames() {
        let v = rill_mp4::TrackInfo::new(RILL_CODEC_H264, Bytes::from_static(AVCC)).unwrap();
        let a =
            rill_mp4::TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])).unwrap();
        let head = OpusHead::default();
        let o = rill_mp4::TrackInfo::new(RILL_CODEC_OPUS, head.packet().into()).unwrap();
        let mut mux = rill_mp4::Muxer::new(vec![v, a, o]).unwrap();
        let init = Mp4Init::parse(&mux.init_segment().unwrap()).unwrap();
        let t = init.tracks();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].codec, t[0].nal_len), (RILL_CODEC_H264, 4));
        assert_eq!(&t[0].config[..], AVCC);
        assert_eq!(
            (t[1].codec, &t[1].config[..]),
            (RILL_CODEC_AAC, &[0x12, 0x10][..])
        );
        assert_eq!(t[2].codec, RILL_CODEC_OPUS);
        assert_eq!(OpusHead::parse(&t[2].config).unwrap(), head);
        assert!(t[0].is_video() && !t[1].is_video());
        let base = 10_000_000i64;
        for i in 0..10i64 {
            let ts = base + i * 40_000;
            mux.push(
                0,
                rill_mp4::Sample::new(ts, ts + 80_000, i == 0, nal(i == 0)),
            )
            .unwrap();
            mux.push(
                1,
                rill_mp4::Sample::new(ts, ts, true, Bytes::from_static(&[0x21, 0x10, 4])),
            )
            .unwrap();
            mux.push(
                2,
                rill_mp4::Sample::new(ts, ts, true, Bytes::from_static(&[0xfc])),
            )
            .unwrap();
        }
        let seg = mux.fragment_before(base + 400_000).unwrap().to_bytes();
        let mut frames = Vec::new();
        let n = init.frames(&seg, &mut frames).unwrap();
        assert_eq!(n, frames.len());
        let video: Vec<_> = frames.iter().filter(|f| f.track == 0).collect();
        assert_eq!(video.len(), 9, "the last sample waits for its duration");
        assert!(video[0].is_key() && !video[1].is_key());
        assert_eq!(video[1].dts, base + 40_000);
        assert_eq!(video[1].pts, base + 120_000);
        assert_eq!(video[1].payload, nal(false));
        assert!(frames.iter().filter(|f| f.track != 0).all(|f| f.is_key()));
        assert!(
            frames.windows(2).all(|w| w[0].dts <= w[1].dts),
            "decode order"
        );
        let c = init.config_frames(5);
        assert!(c.iter().all(|f| f.is_config() && f.dts == 5));
        // A fragment without its mdat, and garbage.
        let cut = &seg[..seg.len() - 20];
        assert!(init
            .frames(&Bytes::copy_from_slice(cut), &mut frames)
            .is_err());
        assert!(Mp4Init::parse(b"<html>").is_err());
        assert!(init
            .frames(&Bytes::from_static(b"\0\0\0\x08moof"), &mut frames)
            .is_err());
    }

    #[test]
    fn ts_segments_go_on_from_one_to_the_next() {
        use rill_ts::{MuxTrack, Muxer, MuxerConfig};
        let tracks = [
            MuxTrack::new(RILL_CODEC_H264, Bytes::from_static(AVCC)),
            MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])),
        ];
        let mut mux = Muxer::new(&tracks, MuxerConfig::default()).unwrap();
        let mut segs = [Vec::new(), Vec::new()];
        for i in 0..20i64 {
            let t = 1_000_000 + i * 40_000;
            let seg = &mut segs[(i / 10) as usize];
            let key = i % 10 == 0;
            let v = Frame {
                track: 0,
                codec: RILL_CODEC_H264,
                flags: if key { RILL_FRAME_KEY } else { 0 },
                pts: t,
                dts: t,
                payload: nal(key),
            };
            mux.write(&v, seg).unwrap();
            let a = Frame {
                track: 1,
                codec: RILL_CODEC_AAC,
                flags: 0,
                pts: t,
                dts: t,
                payload: Bytes::from_static(&[0x21, 0x10, 4, 5]),
            };
            mux.write(&a, seg).unwrap();
        }
        let mut r = TsSegments::default();
        let mut out = Vec::new();
        let (n, err) = r.segment(&segs[0], &mut out).unwrap();
        assert_eq!(err, None);
        let media = |o: &[Frame]| o.iter().filter(|f| !f.is_config()).count();
        assert_eq!(media(&out), 20, "the last frame comes out at the end");
        assert_eq!(n, out.len());
        let configs = out.len() - 20;
        let first_video = |o: &[Frame]| {
            o.iter()
                .find(|f| f.track == 0 && !f.is_config())
                .unwrap()
                .dts
        };
        let d0 = first_video(&out);
        out.clear();
        r.segment(&segs[1], &mut out).unwrap();
        assert_eq!(out.len(), 20, "configurations are not repeated");
        assert_eq!(first_video(&out), d0 + 400_000);
        r.reset();
        out.clear();
        r.segment(&segs[1], &mut out).unwrap();
        assert_eq!(
            out.len() - media(&out),
            configs,
            "a new demuxer sends them again"
        );
        assert!(matches!(
            r.segment(b"<html><body>not found</body></html>", &mut out),
            Err(SegmentError::Ts(_))
        ));
    }
}
