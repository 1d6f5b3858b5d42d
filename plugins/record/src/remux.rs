//! Recordings muxed again as they are read, sent chunked:
//!
//! - `GET /vod/{app}/{stream}.mp4` over recordings that are not all fMP4
//!   (FLV, TS, MP4, or a mix): the files' frames ([`crate::source`]) in
//!   one fragmented MP4.
//! - `GET /vod/seg/{id}.ts` of an FLV or MP4 recording: the file as an
//!   MPEG-TS segment of a VOD playlist. Its times are the wall clock's
//!   time of day (so the segments of one recording follow on, and the
//!   33-bit TS clock does not wrap within a day; the playlist marks a
//!   discontinuity where the day changes).
//!
//! Unlike the fMP4 download ([`crate::download`]) and a file served as it
//! is, the length is not known before the last byte, so there is no
//! `Range` (`accept-ranges: none`; a `Range` header gets the whole file, as
//! HTTP allows). The tracks are those whose configuration comes in the
//! first second of media of the first file; a later file's track of the
//! same codec goes on in the same track. Each file is placed on the
//! timeline by its wall-clock start, as the fMP4 download places files
//! after a gap; fragments are cut every second.

use std::collections::VecDeque;

use bytes::Bytes;
use rill_abi::sdk::{Body, Conn, FileId, Flow, Result};
use rill_abi::*;

use crate::source::Source;
use crate::vod::{text, Request, Row, Stage};
use crate::writer::{Cuts, Format, Media, MediaExt, Out, Writer};
use crate::Record;

/// Bytes read from a file at a time.
const READ: u64 = 1 << 20;
/// Media held before the tracks are fixed (µs).
const TRACKS_WAIT_US: i64 = 1_000_000;
/// Fragments are cut this far apart (µs).
const FRAGMENT_US: i64 = 1_000_000;
/// Frames held before the tracks are fixed, at most.
const MAX_HELD: usize = 4096;
/// A day, µs.
const DAY_US: i64 = 86_400_000_000;

/// What a remux makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// One fragmented MP4 of every row, from 0.
    Download,
    /// One row as an MPEG-TS segment, on the time of day.
    Segment,
}

impl Output {
    fn format(self) -> Format {
        match self {
            Output::Download => Format::Fmp4,
            Output::Segment => Format::Ts,
        }
    }

    /// The download's 0 on the wall clock, for a first file starting at
    /// `start_us`.
    fn base_us(self, start_us: i64) -> i64 {
        match self {
            Output::Download => start_us,
            Output::Segment => start_us - start_us.rem_euclid(DAY_US),
        }
    }
}

/// Frames to fMP4 or TS bytes: the part of a remux without I/O.
pub(crate) struct Remuxer {
    format: Format,
    /// The first file's wall-clock start: the download's 0.
    base_us: i64,
    /// The current file's wall-clock start, and what its frames' times are
    /// moved by (set at its first frame).
    file_start_us: i64,
    shift: Option<i64>,
    /// Codec of each output track (a track is named by its codec).
    codecs: Vec<u32>,
    /// The latest decode time of each output track.
    last: Vec<i64>,
    /// Before the writer: the configurations, and the media from the first
    /// key frame on.
    configs: Vec<Media>,
    held: Vec<Media>,
    writer: Option<Writer>,
}

impl Remuxer {
    /// Files placed from `base_us` on, muxed into `format`.
    pub(crate) fn new(format: Format, base_us: i64) -> Remuxer {
        Remuxer {
            format,
            base_us,
            file_start_us: base_us,
            shift: None,
            codecs: Vec::new(),
            last: Vec::new(),
            configs: Vec::new(),
            held: Vec::new(),
            writer: None,
        }
    }

    /// The next file starts, at wall-clock `start_us`.
    pub(crate) fn next_file(&mut self, start_us: i64) {
        self.file_start_us = start_us;
        self.shift = None;
    }

    /// A file's frames; the bytes to send are appended to `out`. An error
    /// ends the download (a frame the muxer refuses).
    pub(crate) fn push(&mut self, frames: Vec<Media>, out: &mut Vec<Bytes>) -> Result<(), String> {
        for mut f in frames {
            let shift = *self
                .shift
                .get_or_insert((self.file_start_us - self.base_us).max(0) - f.dts);
            let track = match self.codecs.iter().position(|&c| c == f.codec) {
                Some(t) => t,
                None if self.codecs.len() < rill_mp4::MAX_TRACKS => {
                    self.codecs.push(f.codec);
                    self.last.push(0);
                    self.codecs.len() - 1
                }
                None => continue,
            };
            // On the download's timeline, never before the track's last.
            let dts = (f.dts + shift).max(self.last[track]);
            f.pts = (f.pts + shift).max(dts);
            f.dts = dts;
            f.track = track as u32;
            self.last[track] = dts;
            self.one(f, out)?;
        }
        Ok(())
    }

    fn one(&mut self, f: Media, out: &mut Vec<Bytes>) -> Result<(), String> {
        if let Some(w) = &mut self.writer {
            let mut outs = Vec::new();
            let r = w.push(&f, &mut outs);
            appends(outs, out);
            return r;
        }
        if f.is_config() {
            self.configs.retain(|c| c.track != f.track);
            self.configs.push(f);
            return Ok(());
        }
        // The first frame: a video key frame (any frame without video).
        let video = self.configs.iter().any(MediaExt::is_video);
        if self.held.is_empty() && !(f.is_key() && (f.is_video() || !video)) {
            return Ok(());
        }
        let waited = self
            .held
            .first()
            .is_some_and(|h| f.dts - h.dts >= TRACKS_WAIT_US);
        self.held.push(f);
        if waited || self.held.len() >= MAX_HELD {
            self.start(out)?;
        }
        Ok(())
    }

    /// Fixes the tracks: the writer, then what was held.
    fn start(&mut self, out: &mut Vec<Bytes>) -> Result<(), String> {
        let held = std::mem::take(&mut self.held);
        let Some(first) = held.first() else {
            return Ok(());
        };
        let mut outs = Vec::new();
        let mut w = Writer::new(
            self.format,
            &self.configs,
            first,
            Cuts::every(FRAGMENT_US),
            &mut outs,
        )?;
        for f in &held {
            w.push(f, &mut outs)?;
        }
        appends(outs, out);
        self.writer = Some(w);
        Ok(())
    }

    /// The last file ended: what is held, and the last fragment. Whether
    /// anything was written at all.
    pub(crate) fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<bool, String> {
        if self.writer.is_none() {
            self.start(out)?;
        }
        let Some(w) = &mut self.writer else {
            return Ok(false);
        };
        let mut outs = Vec::new();
        w.finish(&mut outs);
        appends(outs, out);
        Ok(true)
    }

    /// The writer exists: the response has begun.
    pub(crate) fn started(&self) -> bool {
        self.writer.is_some()
    }
}

fn appends(outs: Vec<Out>, out: &mut Vec<Bytes>) {
    out.extend(outs.into_iter().filter_map(|o| match o {
        Out::Append(b) => Some(b),
        // fMP4 and TS writers only append.
        Out::At(..) | Out::Index(_) => None,
    }));
}

/// A remux being read and sent.
pub(crate) struct Remux {
    output: Output,
    rows: Vec<Row>,
    /// The file being read: its index in `rows`.
    row: usize,
    file: Option<FileId>,
    source: Option<Source>,
    reading: bool,
    remuxer: Remuxer,
    /// Bytes made, not yet handed to the connection.
    pending: VecDeque<Bytes>,
    /// The connection asked to wait.
    full: bool,
    responded: bool,
    /// Every file read.
    read_all: bool,
}

/// The token of a remuxed download's reads.
pub(crate) const TOKEN_REMUX: u64 = 5;

impl Record {
    /// Rows remuxed as they are read: a download of rows not all fMP4, or
    /// a segment.
    pub(crate) fn remux_rows(
        &self,
        r: &mut Request,
        conn: &Conn,
        rows: Vec<Row>,
        output: Output,
    ) -> Result<()> {
        let rows: Vec<Row> = rows
            .into_iter()
            .filter(|row| Source::reads(&row.format))
            .collect();
        let Some(first) = rows.first() else {
            return text(conn, 404, "no recordings in that range\n");
        };
        if r.head {
            self.remux_respond(conn, output, &rows[0])?;
            return conn.close(RILL_END_NORMAL);
        }
        let remuxer = Remuxer::new(output.format(), output.base_us(first.start_us));
        r.stage = Stage::Remux(Box::new(Remux {
            output,
            rows,
            row: 0,
            file: None,
            source: None,
            reading: false,
            remuxer,
            pending: VecDeque::new(),
            full: false,
            responded: false,
            read_all: false,
        }));
        self.remux_open(r, conn, 0)
    }

    fn remux_respond(&self, conn: &Conn, output: Output, row: &Row) -> Result<()> {
        let name = format!(
            "attachment; filename=\"{}.mp4\"",
            row.stream.replace(['/', '"', '\\'], "_")
        );
        let mut headers = vec![
            ("accept-ranges", "none"),
            ("access-control-allow-origin", "*"),
        ];
        match output {
            Output::Download => headers.extend([
                ("content-type", "video/mp4"),
                ("content-disposition", name.as_str()),
            ]),
            Output::Segment => headers.extend([
                ("content-type", "video/mp2t"),
                ("cache-control", "max-age=31536000, immutable"),
            ]),
        }
        conn.http_respond(200, &headers, Body::Chunked)
    }

    /// Opens file `i` (or, past the last, finishes).
    fn remux_open(&self, r: &mut Request, conn: &Conn, i: usize) -> Result<()> {
        let Stage::Remux(m) = &mut r.stage else {
            return Ok(());
        };
        if let Some(f) = m.file.take() {
            let _ = self.host.file_close(f, 0);
        }
        m.row = i;
        let Some(row) = m.rows.get(i) else {
            m.read_all = true;
            let mut out = Vec::new();
            return match m.remuxer.finish(&mut out) {
                Ok(true) => {
                    m.pending.extend(out);
                    self.remux_pump(r, conn)
                }
                Ok(false) if !m.responded => {
                    r.stage = Stage::Done;
                    text(conn, 404, "no readable recordings in that range\n")
                }
                Ok(false) => self.remux_pump(r, conn),
                Err(e) => self.remux_fail(r, conn, &e),
            };
        };
        m.remuxer.next_file(row.start_us);
        m.source = Source::new(&row.format);
        match self.host.file_open(conn.id(), &row.path, RILL_FILE_READ) {
            Ok(f) => m.file = Some(f),
            Err(e) => {
                rill_log!(self.host, Warn, "{}: {e}: left out of a download", row.path);
                return self.remux_open(r, conn, i + 1);
            }
        }
        self.remux_pump(r, conn)
    }

    /// Hands what waits to the connection, then reads on while it takes
    /// more.
    pub(crate) fn remux_pump(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        let Stage::Remux(m) = &mut r.stage else {
            return Ok(());
        };
        m.full = false;
        if !m.pending.is_empty() && !m.responded {
            self.remux_respond(conn, m.output, &m.rows[0])?;
            m.responded = true;
        }
        while let Some(b) = m.pending.pop_front() {
            if matches!(conn.write(&b)?, Flow::Full) {
                m.full = true;
                return Ok(());
            }
        }
        if m.read_all {
            r.stage = Stage::Done;
            return conn.close(RILL_END_NORMAL);
        }
        if m.reading {
            return Ok(());
        }
        let (Some(f), Some(s)) = (m.file, m.source.as_ref()) else {
            return Ok(());
        };
        m.reading = true;
        self.host.file_read(f, s.position(), READ, TOKEN_REMUX)
    }

    /// A read came: its frames are muxed, and the next file opened at the
    /// end of this one.
    pub(crate) fn remux_read(
        &self,
        r: &mut Request,
        conn: &Conn,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        let Stage::Remux(m) = &mut r.stage else {
            return Ok(());
        };
        m.reading = false;
        let row = &m.rows[m.row];
        let mut frames = Vec::new();
        let read = result.is_ok().then_some(data);
        let (ended, error) = Source::read_on(m.source.as_mut(), read, row.bytes, &mut frames);
        if let Some(e) = error {
            let path = &row.path;
            rill_log!(self.host, Warn, "{path}: {e}: the rest left out");
        }
        let mut out = Vec::new();
        let pushed = m.remuxer.push(frames, &mut out);
        m.pending.extend(out);
        if let Err(e) = pushed {
            return self.remux_fail(r, conn, &e);
        }
        if ended {
            let next = m.row + 1;
            return self.remux_open(r, conn, next);
        }
        if m.full {
            return Ok(());
        }
        self.remux_pump(r, conn)
    }

    /// The download cannot go on: an answer if none began, else cut short.
    fn remux_fail(&self, r: &mut Request, conn: &Conn, why: &str) -> Result<()> {
        let began = matches!(&r.stage, Stage::Remux(m) if m.responded || m.remuxer.started());
        if let Stage::Remux(m) = &mut r.stage {
            if let Some(f) = m.file.take() {
                let _ = self.host.file_close(f, 0);
            }
        }
        r.stage = Stage::Done;
        rill_log!(self.host, Warn, "a remuxed download: {why}");
        if began {
            return conn.close(RILL_END_ERROR);
        }
        text(
            conn,
            500,
            &format!("the recordings cannot be remuxed: {why}\n"),
        )
    }

    pub(crate) fn remux_closed(&self, m: Remux) {
        if let Some(f) = m.file {
            let _ = self.host.file_close(f, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(codec: u32, flags: u32, dts: i64) -> Media {
        Media {
            track: 9,
            codec,
            flags,
            pts: dts,
            dts,
            payload: if flags & RILL_FRAME_CONFIG != 0 {
                match codec {
                    RILL_CODEC_H264 => Bytes::from_static(rill_mp4::fuzzing::seeds::AVCC_HIGH_31),
                    _ => Bytes::from_static(&[0x11, 0x90]),
                }
            } else {
                Bytes::from_static(&[0, 0, 0, 1, 0x65])
            },
        }
    }

    /// Two files of 2 s, H.264 at 25 fps and AAC, the second starting at
    /// wall clock 10 s after the first: one init segment, the second file's
    /// frames 10 s on.
    #[test]
    fn files_become_one_fragmented_mp4() {
        let mut m = Remuxer::new(Format::Fmp4, 1_000_000_000);
        let mut out = Vec::new();
        for (file, start) in [(0, 1_000_000_000i64), (1, 1_010_000_000)] {
            m.next_file(start);
            // Each file's own times start at 5 s; the audio config comes
            // after the first video frame (as a TS demuxer gives it).
            let mut frames = vec![
                frame(RILL_CODEC_H264, RILL_FRAME_CONFIG, 5_000_000),
                frame(RILL_CODEC_H264, RILL_FRAME_KEY, 5_000_000),
                frame(RILL_CODEC_AAC, RILL_FRAME_CONFIG, 5_010_000),
            ];
            for i in 0..50 {
                let t = 5_000_000 + i * 40_000;
                if i > 0 {
                    let flags = if i % 25 == 0 { RILL_FRAME_KEY } else { 0 };
                    frames.push(frame(RILL_CODEC_H264, flags, t));
                }
                frames.push(frame(RILL_CODEC_AAC, RILL_FRAME_KEY, t + 10_000));
            }
            m.push(frames, &mut out).unwrap();
            assert_eq!(m.started(), file == 0 || m.started());
        }
        assert!(m.finish(&mut out).unwrap());
        let all: Vec<u8> = out.concat();
        let init = rill_mp4::read::parse_init(&all).unwrap();
        assert_eq!(init.tracks.len(), 2, "video and audio");
        let frags = rill_mp4::read::parse_fragments(&all).unwrap();
        let mut video = Vec::new();
        for f in &frags {
            for t in f.trafs.iter().filter(|t| t.track_id == 1) {
                video.extend(
                    t.decode_times()
                        .iter()
                        .map(|&d| d as i64 * 1_000_000 / 90_000),
                );
            }
        }
        assert_eq!(video.len(), 100);
        assert_eq!(video[0], 0);
        assert_eq!(video[50], 10_000_000, "the second file placed by its start");
        assert!(video.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn nothing_readable_writes_nothing() {
        let mut m = Remuxer::new(Format::Fmp4, 0);
        let mut out = Vec::new();
        // Media before any key frame, and a config alone.
        m.push(
            vec![
                frame(RILL_CODEC_H264, RILL_FRAME_CONFIG, 0),
                frame(RILL_CODEC_H264, 0, 40_000),
            ],
            &mut out,
        )
        .unwrap();
        assert!(!m.finish(&mut out).unwrap());
        assert!(out.is_empty());
    }
}
