//! The fragment muxer: samples in, `moof` + `mdat` out.
//!
//! Each track keeps its samples until the caller cuts a fragment. A
//! sample's duration is the distance to the next sample's decode time, so
//! the last sample of a track waits for its successor (one sample of
//! latency per track) unless the caller gave its duration or flushes with
//! an end time. Decode times are the frames' own: every sample's decode
//! time in the output is its `dts` in the track's timescale, exactly (the
//! sums of durations in a `trun` land on the next sample's `dts`).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use rill_abi::{RILL_CODEC_AV1, RILL_FRAME_KEY};

use crate::boxes::Writer;
use crate::codec::{av1, codecs_attribute, TrackInfo};
use crate::error::Error;
use crate::init::{init_segment, MAX_TRACKS};

/// Most samples a track holds between two fragments.
pub const MAX_BUFFERED_SAMPLES: usize = 1 << 16;
/// Most payload bytes all tracks hold between two fragments (so a
/// fragment's `mdat` stays far below the 32-bit sizes and offsets).
pub const MAX_BUFFERED_BYTES: usize = 1 << 30;

/// `sample_flags` of a sync sample: depends on no other.
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: depends on others, non-sync.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

const TFHD_DEFAULT_SAMPLE_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x000_001;
const TRUN_DURATION: u32 = 0x000_100;
const TRUN_SIZE: u32 = 0x000_200;
const TRUN_FLAGS: u32 = 0x000_400;
const TRUN_CTO: u32 = 0x000_800;

/// One media sample for [`Muxer::push`]: a coded frame with its times in
/// microseconds (the host's time base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time, µs, not negative, never before the track's previous
    /// sample.
    pub dts: i64,
    /// Presentation time, µs.
    pub pts: i64,
    /// A sync sample (a decoder can start here). Audio samples are always
    /// sync samples, whatever this says.
    pub key: bool,
    /// The payload, in MP4 sample form (length-prefixed NAL units, OBUs,
    /// a raw AAC or Opus frame). Referenced, never copied (AV1's leading
    /// temporal delimiters are sliced off).
    pub data: Bytes,
    /// The duration, µs, if the caller knows it: the sample is then ready
    /// at once instead of waiting for its successor (which, if it comes
    /// before the fragment is cut, still sets the duration exactly).
    pub duration: Option<i64>,
}

impl Sample {
    /// A sample without a known duration.
    pub fn new(dts: i64, pts: i64, key: bool, data: Bytes) -> Self {
        Sample {
            dts,
            pts,
            key,
            data,
            duration: None,
        }
    }

    /// A sample from a frame's fields (`RILL_FRAME_KEY` in `flags` makes it
    /// a sync sample).
    pub fn from_frame(flags: u32, pts: i64, dts: i64, data: Bytes) -> Self {
        Sample::new(dts, pts, flags & RILL_FRAME_KEY != 0, data)
    }

    /// With a known duration in µs.
    pub fn with_duration(mut self, duration: i64) -> Self {
        self.duration = Some(duration);
        self
    }
}

/// A sample waiting in a track.
#[derive(Debug)]
struct Buffered {
    dts_us: i64,
    /// Decode time in the track's timescale.
    dts: u64,
    /// Composition offset in the track's timescale.
    cto: i32,
    key: bool,
    data: Bytes,
    /// Duration in the timescale, once known.
    duration: Option<u32>,
    /// End time in µs, once known.
    end_us: Option<i64>,
    /// The duration came from the successor (final), not from the caller.
    from_successor: bool,
}

#[derive(Debug)]
struct Track {
    timescale: u32,
    video: bool,
    av1: bool,
    nominal_duration: u32,
    samples: VecDeque<Buffered>,
    last_dts_us: Option<i64>,
    last_duration: Option<u32>,
}

/// Microseconds to a timescale (floor; monotonic, so differences of
/// converted times never go negative).
pub(crate) fn to_timescale(us: i64, timescale: u32) -> i128 {
    (us as i128 * timescale as i128).div_euclid(1_000_000)
}

/// Where each track's samples of a fragment are summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentTrack {
    /// The track's index in the muxer (its track ID is this + 1).
    pub track: usize,
    /// Samples of the track in the fragment.
    pub samples: usize,
    /// Decode time of the first sample, µs.
    pub start: i64,
    /// Decode time of the first sample plus all durations, µs.
    pub end: i64,
    /// `baseMediaDecodeTime` written in `tfdt` (track timescale).
    pub base_decode_time: u64,
    /// Sum of the sample durations (track timescale).
    pub duration: u64,
    /// Whether the first sample is a sync sample.
    pub starts_with_sync: bool,
    /// Whether the track is a video track.
    pub video: bool,
}

/// One `moof` + `mdat`: the boxes as one buffer and the sample payloads
/// by reference, in `mdat` order. Written in order —
/// [`Fragment::chunks`], e.g. with vectored writes — or joined with
/// [`Fragment::to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The `mfhd` sequence number (1 for the first fragment).
    pub sequence: u32,
    /// `moof` and the `mdat` header.
    pub header: Bytes,
    /// The samples' payloads: the `mdat` body.
    pub payloads: Vec<Bytes>,
    /// Per track present in the fragment, in track order.
    pub tracks: Vec<FragmentTrack>,
}

impl Fragment {
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.header.len() + self.payloads.iter().map(Bytes::len).sum::<usize>()
    }

    /// Never true: a fragment holds at least one sample (kept for the
    /// `len` convention).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffers to write, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.header).chain(self.payloads.iter())
    }

    /// The whole fragment in one buffer (a copy of the payloads).
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len());
        for c in self.chunks() {
            b.extend_from_slice(c);
        }
        b.freeze()
    }

    /// The earliest decode time in the fragment, µs.
    pub fn start(&self) -> i64 {
        self.tracks.iter().map(|t| t.start).min().unwrap_or(0)
    }

    /// The latest end time in the fragment, µs.
    pub fn end(&self) -> i64 {
        self.tracks.iter().map(|t| t.end).max().unwrap_or(0)
    }

    /// Whether playback can start here (LL-HLS `INDEPENDENT=YES`): every
    /// video track in the fragment starts with a sync sample (true when
    /// the fragment holds no video).
    pub fn independent(&self) -> bool {
        self.tracks.iter().all(|t| t.starts_with_sync || !t.video)
    }
}

/// The fMP4 muxer for a fixed set of tracks. Sans-IO: samples in,
/// [`Bytes`] out.
#[derive(Debug)]
pub struct Muxer {
    infos: Vec<TrackInfo>,
    tracks: Vec<Track>,
    sequence: u32,
    buffered_bytes: usize,
}

impl Muxer {
    /// A muxer for `tracks` (track `i` gets track ID `i + 1`). Errors for
    /// no tracks, more than [`MAX_TRACKS`], or a
    /// timescale of 0.
    pub fn new(tracks: Vec<TrackInfo>) -> Result<Muxer, Error> {
        if tracks.is_empty() {
            return Err(Error::Malformed("muxer without tracks"));
        }
        if tracks.len() > MAX_TRACKS {
            return Err(Error::Limit("tracks"));
        }
        if tracks.iter().any(|t| t.timescale == 0) {
            return Err(Error::Malformed("timescale 0"));
        }
        Ok(Muxer {
            tracks: tracks
                .iter()
                .map(|info| Track {
                    timescale: info.timescale,
                    video: info.is_video(),
                    av1: info.codec == RILL_CODEC_AV1,
                    nominal_duration: info.nominal_sample_duration(),
                    samples: VecDeque::new(),
                    last_dts_us: None,
                    last_duration: None,
                })
                .collect(),
            infos: tracks,
            sequence: 0,
            buffered_bytes: 0,
        })
    }

    /// The tracks, in track ID order.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.infos
    }

    /// The initialization segment for these tracks.
    pub fn init_segment(&self) -> Result<Bytes, Error> {
        init_segment(&self.infos)
    }

    /// The HLS `CODECS` value for these tracks.
    pub fn codecs(&self) -> String {
        codecs_attribute(&self.infos)
    }

    /// The sequence number the next fragment will carry.
    pub fn next_sequence(&self) -> u32 {
        self.sequence.wrapping_add(1).max(1)
    }

    /// Adds a sample to `track`. A sample that is refused (an error) is
    /// not kept and changes nothing: a negative `dts`, a `dts` before the
    /// track's previous one, a gap or composition offset too large for
    /// the 32-bit fields, or the buffering limits reached.
    pub fn push(&mut self, track: usize, sample: Sample) -> Result<(), Error> {
        let t = self
            .tracks
            .get_mut(track)
            .ok_or(Error::Malformed("no such track"))?;
        let scale = t.timescale;
        if sample.dts < 0 {
            return Err(Error::Timestamp("negative dts"));
        }
        let dts = to_timescale(sample.dts, scale);
        if let Some(last) = t.last_dts_us {
            if sample.dts < last {
                return Err(Error::Timestamp("dts going backwards"));
            }
            if dts - to_timescale(last, scale) > u32::MAX as i128 {
                return Err(Error::Timestamp("gap between samples too long"));
            }
        }
        let cto = to_timescale(sample.pts, scale) - dts;
        let cto = i32::try_from(cto).map_err(|_| Error::Timestamp("pts too far from dts"))?;
        let duration = match sample.duration {
            None => None,
            Some(d) if d < 0 => return Err(Error::Timestamp("negative duration")),
            Some(d) => {
                let end = sample
                    .dts
                    .checked_add(d)
                    .ok_or(Error::Timestamp("duration"))?;
                let ts = u32::try_from(to_timescale(end, scale) - dts)
                    .map_err(|_| Error::Timestamp("duration too long"))?;
                Some((ts, end))
            }
        };
        if t.samples.len() >= MAX_BUFFERED_SAMPLES {
            return Err(Error::Limit("samples buffered in a track"));
        }
        if self.buffered_bytes + sample.data.len() > MAX_BUFFERED_BYTES {
            return Err(Error::Limit("bytes buffered"));
        }
        // The previous sample's duration, now exact.
        if let Some(prev) = t.samples.back_mut() {
            if !prev.from_successor {
                prev.duration = Some((dts - prev.dts as i128) as u32);
                prev.end_us = Some(sample.dts);
                prev.from_successor = true;
            }
        }
        let data = if t.av1 {
            av1::strip_temporal_delimiters(&sample.data)
        } else {
            sample.data
        };
        self.buffered_bytes += data.len();
        t.last_dts_us = Some(sample.dts);
        t.samples.push_back(Buffered {
            dts_us: sample.dts,
            dts: dts as u64,
            cto,
            key: sample.key || !t.video,
            data,
            duration: duration.map(|d| d.0),
            end_us: duration.map(|d| d.1),
            from_successor: false,
        });
        Ok(())
    }

    /// The end time (µs) of the last sample of `track` that a fragment
    /// could take now, if any.
    pub fn ready_end(&self, track: usize) -> Option<i64> {
        let t = self.tracks.get(track)?;
        t.samples.iter().rev().find_map(|s| s.end_us)
    }

    /// Samples buffered in `track`, ready or not.
    pub fn buffered(&self, track: usize) -> usize {
        self.tracks.get(track).map_or(0, |t| t.samples.len())
    }

    /// A fragment of every ready sample (all but each track's last, unless
    /// its duration was given). `None` when nothing is ready.
    pub fn fragment(&mut self) -> Option<Fragment> {
        self.fragment_before(i64::MAX)
    }

    /// A fragment of the ready samples whose decode time is before
    /// `limit` (µs): call it with a video key frame's `dts` just after
    /// pushing that key frame, and the key frame starts the next fragment
    /// while each track's samples before it go into this one. `None` when
    /// no sample qualifies.
    pub fn fragment_before(&mut self, limit: i64) -> Option<Fragment> {
        let counts: Vec<usize> = self
            .tracks
            .iter()
            .map(|t| {
                t.samples
                    .iter()
                    .take_while(|s| s.duration.is_some() && s.dts_us < limit)
                    .count()
            })
            .collect();
        self.build(&counts)
    }

    /// A fragment of every buffered sample. Each track's last sample,
    /// when its duration is unknown, lasts until `end` (µs) if that is
    /// after it, else as long as the track's previous sample, else the
    /// codec's nominal duration. For the end of a stream, or for cutting
    /// at a time without waiting for the next samples (the next fragment
    /// then starts at its first sample's own time: a gap or overlap
    /// of what `end` guessed wrong).
    pub fn flush(&mut self, end: Option<i64>) -> Option<Fragment> {
        for t in &mut self.tracks {
            let scale = t.timescale;
            // The previous sample's duration, buffered or sent.
            let n = t.samples.len();
            let fallback = (n >= 2)
                .then(|| t.samples[n - 2].duration)
                .flatten()
                .or(t.last_duration)
                .unwrap_or(t.nominal_duration);
            if let Some(last) = t.samples.back_mut() {
                if last.duration.is_none() {
                    let until = end
                        .filter(|&e| e > last.dts_us)
                        .and_then(|e| u32::try_from(to_timescale(e, scale) - last.dts as i128).ok())
                        .filter(|&d| d > 0);
                    let d = until.unwrap_or(fallback);
                    last.duration = Some(d);
                    last.end_us = Some(match until {
                        Some(_) => end.unwrap_or(last.dts_us),
                        None => last
                            .dts_us
                            .saturating_add((d as i64 * 1_000_000) / scale as i64),
                    });
                }
            }
        }
        let counts: Vec<usize> = self.tracks.iter().map(|t| t.samples.len()).collect();
        self.build(&counts)
    }

    /// Takes `counts[i]` samples of track `i` into one fragment.
    fn build(&mut self, counts: &[usize]) -> Option<Fragment> {
        if counts.iter().all(|&n| n == 0) {
            return None;
        }
        self.sequence = self.next_sequence();
        let mut taken: Vec<(usize, Vec<Buffered>)> = Vec::new();
        for (i, (t, &n)) in self.tracks.iter_mut().zip(counts).enumerate() {
            if n == 0 {
                continue;
            }
            let samples: Vec<Buffered> = t.samples.drain(..n).collect();
            t.last_duration = samples.last().and_then(|s| s.duration);
            taken.push((i, samples));
        }
        let per_sample_max = 16;
        let mut w = Writer::with_capacity(
            64 + taken
                .iter()
                .map(|(_, s)| 96 + s.len() * per_sample_max)
                .sum::<usize>(),
        );
        let moof = w.begin(b"moof");
        let mfhd = w.begin_full(b"mfhd", 0, 0);
        w.u32(self.sequence);
        w.end(mfhd);
        let mut offsets = Vec::with_capacity(taken.len());
        let mut summaries = Vec::with_capacity(taken.len());
        for (i, samples) in &taken {
            let video = self.tracks[*i].video;
            let traf = w.begin(b"traf");
            let mut tfhd_flags = TFHD_DEFAULT_BASE_IS_MOOF;
            if !video {
                tfhd_flags |= TFHD_DEFAULT_SAMPLE_FLAGS;
            }
            let tfhd = w.begin_full(b"tfhd", 0, tfhd_flags);
            w.u32(*i as u32 + 1);
            if !video {
                w.u32(SAMPLE_FLAGS_SYNC);
            }
            w.end(tfhd);
            let base = samples[0].dts;
            let tfdt = w.begin_full(b"tfdt", 1, 0);
            w.u64(base);
            w.end(tfdt);
            let with_cto = samples.iter().any(|s| s.cto != 0);
            let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE;
            if video {
                flags |= TRUN_FLAGS;
            }
            if with_cto {
                flags |= TRUN_CTO;
            }
            let trun = w.begin_full(b"trun", with_cto as u8, flags);
            w.u32(samples.len() as u32);
            offsets.push(w.buf.len());
            w.u32(0); // data_offset, patched below
            let mut duration = 0u64;
            for s in samples {
                let d = s.duration.unwrap_or(0);
                duration += d as u64;
                w.u32(d);
                w.u32(s.data.len() as u32);
                if video {
                    w.u32(if s.key {
                        SAMPLE_FLAGS_SYNC
                    } else {
                        SAMPLE_FLAGS_NON_SYNC
                    });
                }
                if with_cto {
                    w.u32(s.cto as u32);
                }
            }
            w.end(trun);
            w.end(traf);
            let last = &samples[samples.len() - 1];
            summaries.push(FragmentTrack {
                track: *i,
                samples: samples.len(),
                start: samples[0].dts_us,
                end: last.end_us.unwrap_or(last.dts_us),
                base_decode_time: base,
                duration,
                starts_with_sync: samples[0].key,
                video,
            });
        }
        w.end(moof);
        // data_offset: from the start of moof to each track's first byte
        // in mdat (default-base-is-moof).
        let mut at = w.buf.len() + 8;
        let mut payloads = Vec::new();
        for ((_, samples), pos) in taken.into_iter().zip(offsets) {
            w.buf[pos..pos + 4].copy_from_slice(&(at as u32).to_be_bytes());
            for s in samples {
                at += s.data.len();
                self.buffered_bytes -= s.data.len();
                payloads.push(s.data);
            }
        }
        let mdat_size = 8 + payloads.iter().map(Bytes::len).sum::<usize>();
        w.u32(mdat_size as u32);
        w.bytes(b"mdat");
        Some(Fragment {
            sequence: self.sequence,
            header: w.buf.freeze(),
            payloads,
            tracks: summaries,
        })
    }
}
