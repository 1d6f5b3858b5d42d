//! Progressive MP4 written as it records: [`header`] (`ftyp` and a
//! 64-bit `mdat` header whose size is patched at the end) first, each
//! sample's bytes appended as they come, and at close the `moov` built by
//! [`moov`] from every sample's place and times, after the media ("moov at
//! the end", which every player and `ffprobe` read).
//!
//! A crash loses the `moov`, so a writer also keeps an [`Index`] beside
//! the file: the tracks, then one fixed-size record per sample, appended as
//! the samples are. [`Index::parse`] reads it back (a torn last record is
//! ignored) and the file is repaired by writing the `moov` of the samples
//! whose bytes made it to the disk.

use bytes::{BufMut, Bytes, BytesMut};

use crate::boxes::Writer;
use crate::codec::TrackInfo;
use crate::error::Error;
use crate::init::{trak, MAX_TRACKS};
use crate::mux::to_timescale;

/// The movie timescale (`mvhd`): milliseconds.
const MOVIE_TIMESCALE: u32 = 1000;
/// `ftyp` as [`header`] writes it.
const FTYP: &[u8] = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";
/// Bytes before the first sample: `ftyp` and the `mdat` header.
pub const HEADER_LEN: u64 = FTYP.len() as u64 + 16;
/// Most samples one file may index (a day of 60 fps video and audio).
pub const MAX_SAMPLES: usize = 20_000_000;

/// The start of the file: `ftyp`, and an `mdat` header with a 64-bit size
/// of 0 until [`mdat_size`] patches it.
pub fn header() -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN as usize);
    b.put_slice(FTYP);
    b.put_u32(1); // size 1: the 64-bit largesize follows
    b.put_slice(b"mdat");
    b.put_u64(0);
    b.freeze()
}

/// Where the `mdat` size goes and its bytes, once `data_len` bytes of
/// samples follow the header.
pub fn mdat_size(data_len: u64) -> (u64, [u8; 8]) {
    (FTYP.len() as u64 + 8, (16 + data_len).to_be_bytes())
}

/// One sample in the file: `track` indexes the track list; times in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSample {
    /// The track's index in the list given to [`moov`].
    pub track: u8,
    /// A sync sample (a decoder can start here).
    pub key: bool,
    /// Bytes of the sample.
    pub size: u32,
    /// From the start of the file.
    pub offset: u64,
    /// Decode time.
    pub dts: i64,
    /// Presentation time.
    pub pts: i64,
}

/// The bytes of one [`StoredSample`] in an [`Index`].
pub const RECORD_LEN: usize = 30;

impl StoredSample {
    /// Its fixed-size record.
    pub fn record(&self) -> [u8; RECORD_LEN] {
        let mut r = [0u8; RECORD_LEN];
        r[0] = self.track;
        r[1] = self.key as u8;
        r[2..6].copy_from_slice(&self.size.to_be_bytes());
        r[6..14].copy_from_slice(&self.offset.to_be_bytes());
        r[14..22].copy_from_slice(&self.dts.to_be_bytes());
        r[22..30].copy_from_slice(&self.pts.to_be_bytes());
        r
    }

    fn from_record(r: &[u8]) -> StoredSample {
        let u64_at = |i: usize| u64::from_be_bytes(r[i..i + 8].try_into().unwrap_or_default());
        StoredSample {
            track: r[0],
            key: r[1] != 0,
            size: u32::from_be_bytes(r[2..6].try_into().unwrap_or_default()),
            offset: u64_at(6),
            dts: u64_at(14) as i64,
            pts: u64_at(22) as i64,
        }
    }
}

/// The sidecar index of a progressive MP4 being written.
pub struct Index;

const INDEX_MAGIC: &[u8; 4] = b"RMPI";

impl Index {
    /// The index's head: its magic and the tracks (codec, picture size,
    /// decoder configuration).
    pub fn head(tracks: &[TrackInfo]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_slice(INDEX_MAGIC);
        b.put_u8(1);
        b.put_u8(tracks.len() as u8);
        for t in tracks {
            b.put_u32(t.codec);
            b.put_u32(t.width);
            b.put_u32(t.height);
            b.put_u32(t.config.len() as u32);
            b.put_slice(&t.config);
        }
        b.freeze()
    }

    /// Reads an index back: the tracks and every whole record.
    pub fn parse(data: &[u8]) -> Result<(Vec<TrackInfo>, Vec<StoredSample>), Error> {
        let bad = Error::Malformed("recording index");
        if data.len() < 6 || &data[..4] != INDEX_MAGIC || data[4] != 1 {
            return Err(bad);
        }
        let n = data[5] as usize;
        if n == 0 || n > MAX_TRACKS {
            return Err(bad);
        }
        let mut at = 6;
        let mut tracks = Vec::with_capacity(n);
        for _ in 0..n {
            let u32_at = |i: usize| -> Result<u32, Error> {
                data.get(i..i + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(Error::Malformed("recording index"))
            };
            let (codec, width, height, len) = (
                u32_at(at)?,
                u32_at(at + 4)?,
                u32_at(at + 8)?,
                u32_at(at + 12)? as usize,
            );
            at += 16;
            let config = data
                .get(at..at + len)
                .ok_or(Error::Malformed("recording index"))?;
            at += len;
            let mut t = TrackInfo::new(codec, Bytes::copy_from_slice(config))?;
            if t.width == 0 {
                (t.width, t.height) = (width, height);
            }
            tracks.push(t);
        }
        let records = &data[at..];
        let count = (records.len() / RECORD_LEN).min(MAX_SAMPLES);
        let samples = records
            .chunks_exact(RECORD_LEN)
            .take(count)
            .map(StoredSample::from_record)
            .filter(|s| (s.track as usize) < n)
            .collect();
        Ok((tracks, samples))
    }
}

/// One track's sample table, in its timescale.
pub(crate) struct Table {
    timescale: u32,
    durations: Vec<u32>,
    /// Composition offsets (`ctts`), when any is not 0.
    cts: Option<Vec<i32>>,
    sizes: Vec<u32>,
    offsets: Vec<u64>,
    /// 1-based numbers of sync samples; `None` when all are.
    sync: Option<Vec<u32>>,
    /// Where the track starts after the movie's start, movie timescale.
    delay: u32,
}

impl Table {
    fn new(t: &TrackInfo, samples: &[&StoredSample], movie_start: i64) -> Table {
        let ts = t.timescale.max(1);
        let dts: Vec<i128> = samples.iter().map(|s| to_timescale(s.dts, ts)).collect();
        let mut durations: Vec<u32> = dts
            .windows(2)
            .map(|w| (w[1] - w[0]).clamp(0, u32::MAX as i128) as u32)
            .collect();
        // The last sample lasts as long as the one before it.
        durations.push(durations.last().copied().unwrap_or(0));
        let cts: Vec<i32> = samples
            .iter()
            .zip(&dts)
            .map(|(s, d)| {
                (to_timescale(s.pts, ts) - d).clamp(i32::MIN as i128, i32::MAX as i128) as i32
            })
            .collect();
        let sync: Vec<u32> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.key)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let first = samples.first().map_or(movie_start, |s| s.dts);
        Table {
            timescale: ts,
            durations,
            cts: cts.iter().any(|c| *c != 0).then_some(cts),
            sizes: samples.iter().map(|s| s.size).collect(),
            offsets: samples.iter().map(|s| s.offset).collect(),
            sync: (sync.len() != samples.len()).then_some(sync),
            delay: ((first as i128 - movie_start as i128) * MOVIE_TIMESCALE as i128 / 1_000_000)
                .clamp(0, u32::MAX as i128) as u32,
        }
    }

    pub(crate) fn media_duration(&self) -> u32 {
        self.durations
            .iter()
            .map(|d| *d as u64)
            .sum::<u64>()
            .min(u32::MAX as u64) as u32
    }

    /// Duration in the movie timescale, the start delay included.
    pub(crate) fn movie_duration(&self) -> u32 {
        let media = self.media_duration() as u64 * MOVIE_TIMESCALE as u64 / self.timescale as u64;
        (media + self.delay as u64).min(u32::MAX as u64) as u32
    }

    /// `edts`: an empty edit for a track that starts late, then the media
    /// from its first presentation time.
    pub(crate) fn edit_list(&self, w: &mut Writer) {
        let edts = w.begin(b"edts");
        let entries = if self.delay > 0 { 2 } else { 1 };
        let elst = w.begin_full(b"elst", 0, 0);
        w.u32(entries);
        if self.delay > 0 {
            w.u32(self.delay);
            w.u32(u32::MAX); // media_time -1: empty
            w.u32(0x0001_0000);
        }
        let media = self.media_duration() as u64 * MOVIE_TIMESCALE as u64 / self.timescale as u64;
        w.u32(media.min(u32::MAX as u64) as u32);
        let start = self
            .cts
            .as_ref()
            .and_then(|c| c.first())
            .copied()
            .unwrap_or(0);
        w.u32(start.max(0) as u32);
        w.u32(0x0001_0000); // rate 1.0
        w.end(elst);
        w.end(edts);
    }

    /// `stts`, `ctts`, `stss`, `stsc`, `stsz`, `co64`: one sample per chunk.
    pub(crate) fn boxes(&self, w: &mut Writer) {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for d in &self.durations {
            match runs.last_mut() {
                Some((n, v)) if v == d => *n += 1,
                _ => runs.push((1, *d)),
            }
        }
        let stts = w.begin_full(b"stts", 0, 0);
        w.u32(runs.len() as u32);
        for (n, d) in runs {
            w.u32(n);
            w.u32(d);
        }
        w.end(stts);
        if let Some(cts) = &self.cts {
            let mut runs: Vec<(u32, i32)> = Vec::new();
            for c in cts {
                match runs.last_mut() {
                    Some((n, v)) if v == c => *n += 1,
                    _ => runs.push((1, *c)),
                }
            }
            // Version 1: signed offsets.
            let ctts = w.begin_full(b"ctts", 1, 0);
            w.u32(runs.len() as u32);
            for (n, c) in runs {
                w.u32(n);
                w.u32(c as u32);
            }
            w.end(ctts);
        }
        if let Some(sync) = &self.sync {
            let stss = w.begin_full(b"stss", 0, 0);
            w.u32(sync.len() as u32);
            for n in sync {
                w.u32(*n);
            }
            w.end(stss);
        }
        let stsc = w.begin_full(b"stsc", 0, 0);
        w.u32(1);
        w.u32(1); // first_chunk
        w.u32(1); // samples_per_chunk
        w.u32(1); // sample_description_index
        w.end(stsc);
        let stsz = w.begin_full(b"stsz", 0, 0);
        w.u32(0);
        w.u32(self.sizes.len() as u32);
        for s in &self.sizes {
            w.u32(*s);
        }
        w.end(stsz);
        let co64 = w.begin_full(b"co64", 0, 0);
        w.u32(self.offsets.len() as u32);
        for o in &self.offsets {
            w.u64(*o);
        }
        w.end(co64);
    }
}

/// The `moov` for `samples` of `tracks` (a track without samples is left
/// out). Errors without any sample, or with more than [`MAX_SAMPLES`].
pub fn moov(tracks: &[TrackInfo], samples: &[StoredSample]) -> Result<Bytes, Error> {
    if tracks.is_empty() || tracks.len() > MAX_TRACKS {
        return Err(Error::Limit("tracks"));
    }
    if samples.len() > MAX_SAMPLES {
        return Err(Error::Limit("samples"));
    }
    let movie_start = samples
        .iter()
        .map(|s| s.dts)
        .min()
        .ok_or(Error::Malformed("no samples"))?;
    let tables: Vec<(usize, Table)> = tracks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let own: Vec<&StoredSample> =
                samples.iter().filter(|s| s.track as usize == i).collect();
            (!own.is_empty()).then(|| (i, Table::new(t, &own, movie_start)))
        })
        .collect();
    let mut w = Writer::with_capacity(4096 + samples.len() * 24);
    let moov = w.begin(b"moov");
    let mvhd = w.begin_full(b"mvhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(MOVIE_TIMESCALE);
    w.u32(
        tables
            .iter()
            .map(|(_, t)| t.movie_duration())
            .max()
            .unwrap_or(0),
    );
    w.u32(0x0001_0000);
    w.u16(0x0100);
    w.zeros(2 + 8);
    w.matrix();
    w.zeros(24);
    w.u32(tables.len() as u32 + 1);
    w.end(mvhd);
    for (n, (i, table)) in tables.iter().enumerate() {
        trak(&mut w, n as u32 + 1, &tracks[*i], Some(table))?;
    }
    w.end(moov);
    Ok(w.buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let s = StoredSample {
            track: 1,
            key: true,
            size: 1234,
            offset: 5_000_000_000,
            dts: -40_000,
            pts: 1_000_000,
        };
        assert_eq!(StoredSample::from_record(&s.record()), s);
    }

    #[test]
    fn the_moov_reads_back_as_the_samples_written() {
        use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264};
        let v = TrackInfo::new(
            RILL_CODEC_H264,
            Bytes::from_static(crate::fuzzing::seeds::AVCC_HIGH_31),
        )
        .unwrap();
        let a = TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(&[0x11, 0x90])).unwrap();
        // Video at 25 fps with B-frame reordering from 1 s; audio
        // (48 kHz, 1024 samples a frame) from 1.1 s, interleaved.
        let mut samples = Vec::new();
        let mut offset = HEADER_LEN;
        for i in 0..50i64 {
            let dts = 1_000_000 + i * 40_000;
            let pts = dts + if i % 3 == 1 { 80_000 } else { 40_000 };
            let size = 1000 + i as u32;
            samples.push(StoredSample {
                track: 0,
                key: i % 25 == 0,
                size,
                offset,
                dts,
                pts,
            });
            offset += size as u64;
            let at = 1_100_000 + i * 21_333;
            samples.push(StoredSample {
                track: 1,
                key: true,
                size: 300,
                offset,
                dts: at,
                pts: at,
            });
            offset += 300;
        }
        let moov = moov(&[v, a], &samples).unwrap();
        let back = crate::read::sample_tables(&moov, 1000).unwrap();
        assert_eq!(back.len(), samples.len());
        for (b, s) in back.iter().zip(&samples) {
            assert_eq!(
                (b.track_id, b.key, b.offset, b.size),
                (s.track as u32 + 1, s.key, s.offset, s.size)
            );
            // Times from the movie's start, to the tick of each timescale.
            let (dts, pts) = (s.dts - 1_000_000, s.pts - 1_000_000);
            assert!((b.dts - dts).abs() <= 25, "{b:?} {s:?}");
            assert!((b.pts - pts).abs() <= 25, "{b:?} {s:?}");
        }
        // Too many samples for the limit: refused, not read.
        assert!(matches!(
            crate::read::sample_tables(&moov, 99),
            Err(Error::Limit(_))
        ));
        // Cut short anywhere: an error, no panic.
        for n in (0..moov.len()).step_by(7) {
            let _ = crate::read::sample_tables(&moov[..n], 1000);
        }
    }

    #[test]
    fn header_is_ftyp_then_mdat() {
        let h = header();
        assert_eq!(h.len() as u64, HEADER_LEN);
        assert_eq!(&h[4..8], b"ftyp");
        assert_eq!(
            u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize,
            FTYP.len()
        );
        assert_eq!(&h[FTYP.len() + 4..FTYP.len() + 8], b"mdat");
        let (at, size) = mdat_size(100);
        assert_eq!(at, FTYP.len() as u64 + 8);
        assert_eq!(u64::from_be_bytes(size), 116);
    }
}
