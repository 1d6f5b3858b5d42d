//! Replays: a recording published into the engine again, at 0.5–4×, so
//! every player (RTMP, HTTP-FLV, HLS, RTSP, WebRTC) can watch it.
//!
//! A replay is a session without a socket that publishes `path` (default
//! `replay/{stream}`) from the fMP4 recordings of `stream` in a time
//! range. It reads the files in order, 1 MiB at a time while less than
//! [`AHEAD_US`] of media waits, and sends each frame when it is due: at
//! speed `s`, a frame `d` µs of media after the start goes out `d / s` µs
//! after it, stamped `d / s` — the players see a stream at `s`× that
//! plays in real time. Gaps between recordings are skipped; a seek drops
//! what waits and starts again at the first video key frame at or after
//! the time asked. Driven through the API (see [`crate::api`]).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_abi::sdk::{Conn, FileId, FrameInfo, Publisher, Result, TimerHandle, TrackInfo};
use rill_abi::*;
use rill_hls::segment::Mp4Init;
use rill_ts::Frame;

use crate::vod::Row;
use crate::Record;

/// Bytes read from a file at a time.
const READ: u64 = 1 << 20;
/// Media read ahead of the frame due (µs of source time).
const AHEAD_US: i64 = 3_000_000;
/// Most bytes held waiting for a whole fragment.
const MAX_BUFFER: usize = 64 << 20;
/// Replays running at once at most.
pub(crate) const MAX_REPLAYS: usize = 64;
/// Recordings one replay reads at most.
pub(crate) const MAX_ROWS: u32 = 5000;
/// The slowest and fastest speeds.
pub(crate) const SPEEDS: std::ops::RangeInclusive<f64> = 0.5..=4.0;

pub(crate) const TOKEN_ROWS: u64 = 1;
pub(crate) const TOKEN_READ: u64 = 2;
pub(crate) const TIMER_DUE: u64 = 3;

/// What the API asks for.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    pub id: u64,
    pub stream: String,
    pub path: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub speed: f64,
}

/// A message to a replay: go to wall-clock time `at` (µs).
pub(crate) struct Seek(pub i64);

struct Skip {
    into_us: i64,
    /// The file's first decode time.
    first: Option<i64>,
}

pub struct Replay {
    pub(crate) ask: Ask,
    publisher: Option<Publisher>,
    /// Host track of each init track index.
    tracks: Vec<u32>,
    rows: Vec<Row>,
    /// The file being read: its index in `rows`.
    row: usize,
    file: Option<FileId>,
    /// File offset of the next read, and whether one is out.
    pos: u64,
    reading: bool,
    init: Option<(Bytes, Mp4Init)>,
    /// Bytes read, not yet a whole `moof` + `mdat`.
    buf: BytesMut,
    queue: VecDeque<Frame>,
    /// Frames dropped until a video key frame this far (µs) into the
    /// current file.
    skip: Option<Skip>,
    /// (host clock, source dts, output dts) of the frame that set the pace.
    anchor: Option<(i64, i64, i64)>,
    /// The last output dts, of any track and of each.
    last_out: i64,
    last_out_track: Vec<i64>,
    /// The last source dts, to see a new timeline start.
    last_src: Option<i64>,
    timer: Option<TimerHandle>,
    /// Frames sent.
    pub sent: u64,
    done_reading: bool,
    /// The index answered (`rows` is what there is to read); until then
    /// a seek waits in `seek`.
    have_rows: bool,
    seek: Option<i64>,
}

impl Replay {
    pub(crate) fn new(ask: Ask) -> Replay {
        Replay {
            ask,
            publisher: None,
            tracks: Vec::new(),
            rows: Vec::new(),
            row: 0,
            file: None,
            pos: 0,
            reading: false,
            init: None,
            buf: BytesMut::new(),
            queue: VecDeque::new(),
            skip: None,
            anchor: None,
            last_out: 0,
            last_out_track: Vec::new(),
            last_src: None,
            timer: None,
            sent: 0,
            done_reading: false,
            have_rows: false,
            seek: None,
        }
    }

    /// Source time still waiting to be sent.
    fn ahead(&self) -> i64 {
        match (self.queue.front(), self.queue.back()) {
            (Some(a), Some(b)) => b.dts - a.dts,
            _ => 0,
        }
    }

    /// The whole `moof` + `mdat` pairs at the front of `buf`, cut off.
    fn take_fragments(&mut self) -> Option<Bytes> {
        let mut end = 0usize;
        let mut at = 0usize;
        let mut moof = false;
        while at + 8 <= self.buf.len() {
            let b = &self.buf[at..];
            let size = match u32::from_be_bytes([b[0], b[1], b[2], b[3]]) {
                1 if b.len() >= 16 => u64::from_be_bytes(b[8..16].try_into().ok()?) as usize,
                1 => break,
                n => n as usize,
            };
            if size < 8 || at + size > self.buf.len() {
                break;
            }
            match &b[4..8] {
                b"moof" => moof = true,
                b"mdat" if moof => {
                    moof = false;
                    end = at + size;
                }
                _ => {}
            }
            at += size;
        }
        (end > 0).then(|| self.buf.split_to(end).freeze())
    }
}

impl Record {
    /// A replay's session opened: publish, and ask for its recordings.
    pub(crate) fn replay_open(&self, r: &mut Replay, conn: &Conn) -> Result<()> {
        r.publisher = Some(conn.publish(&r.ask.path, "")?);
        let mut q = serde_json::json!({ "stream": r.ask.stream, "limit": MAX_ROWS });
        if let Some(f) = r.ask.from {
            q["from"] = f.into();
        }
        q["to"] = r.ask.to.unwrap_or_else(|| self.host.wall_us()).into();
        self.host
            .recordings_query(conn.id(), &q.to_string(), TOKEN_ROWS)
    }

    pub(crate) fn replay_io(
        &self,
        r: &mut Replay,
        conn: &Conn,
        token: u64,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        match token {
            TOKEN_ROWS => {
                let rows = match crate::vod::rows_of(result, data) {
                    Ok(rows) => rows,
                    Err(e) => {
                        rill_log!(self.host, Warn, "replay {}: the index: {e}", r.ask.id);
                        return conn.close(RILL_END_ERROR);
                    }
                };
                r.have_rows = true;
                r.rows = rows
                    .into_iter()
                    .filter(|row| row.done && row.format == "fmp4")
                    .collect();
                if r.rows.is_empty() {
                    rill_log!(
                        self.host,
                        Info,
                        "replay {}: no fMP4 recordings of {} in its range",
                        r.ask.id,
                        r.ask.stream
                    );
                    return conn.close(RILL_END_NORMAL);
                }
                let at = r.seek.or(r.ask.from).unwrap_or(r.rows[0].start_us);
                self.seek_to(r, conn, at)
            }
            TOKEN_READ => {
                r.reading = false;
                let ended = match result {
                    Ok(_) if !data.is_empty() => {
                        r.pos += data.len() as u64;
                        if r.buf.len() + data.len() > MAX_BUFFER {
                            rill_log!(
                                self.host,
                                Warn,
                                "replay {}: {} holds no whole fragment in {MAX_BUFFER} bytes",
                                r.ask.id,
                                r.rows[r.row].path
                            );
                            true
                        } else {
                            r.buf.extend_from_slice(data);
                            self.parse(r)?;
                            r.pos >= r.rows[r.row].bytes
                        }
                    }
                    // The file ended (or went).
                    _ => true,
                };
                if ended {
                    self.next_file(r, conn)?;
                }
                self.pace(r, conn)
            }
            _ => Ok(()),
        }
    }

    /// Starts again at wall-clock time `at`: the recording holding it (or
    /// the next), from its first video key frame at or after it.
    pub(crate) fn seek_to(&self, r: &mut Replay, conn: &Conn, at: i64) -> Result<()> {
        if !r.have_rows {
            // The index has not answered yet: start there when it does.
            r.seek = Some(at);
            return Ok(());
        }
        let Some(i) = r.rows.iter().position(|row| row.end_us > at) else {
            return self.finish(r, conn, "the range ended");
        };
        r.queue.clear();
        r.anchor = None;
        r.last_src = None;
        let into = (at - r.rows[i].start_us).max(0);
        self.open_file(r, conn, i, Some(into))?;
        self.pace(r, conn)
    }

    /// Reads file `i`; `skip`: drop what comes before this far into it.
    fn open_file(&self, r: &mut Replay, conn: &Conn, i: usize, skip: Option<i64>) -> Result<()> {
        if let Some(f) = r.file.take() {
            let _ = self.host.file_close(f, 0);
        }
        r.row = i;
        r.pos = 0;
        r.buf.clear();
        r.skip = skip.map(|into_us| Skip {
            into_us,
            first: None,
        });
        r.done_reading = false;
        match self
            .host
            .file_open(conn.id(), &r.rows[i].path, RILL_FILE_READ)
        {
            Ok(f) => r.file = Some(f),
            Err(e) => {
                rill_log!(
                    self.host,
                    Warn,
                    "replay {}: {}: {e}",
                    r.ask.id,
                    r.rows[i].path
                );
                return self.next_file(r, conn);
            }
        }
        self.read_more(r)
    }

    /// Goes on with the next file, or marks the end of reading (the queue
    /// still goes out: callers [`Record::pace`] next).
    fn next_file(&self, r: &mut Replay, conn: &Conn) -> Result<()> {
        if r.row + 1 < r.rows.len() {
            let next = r.row + 1;
            return self.open_file(r, conn, next, None);
        }
        if let Some(f) = r.file.take() {
            let _ = self.host.file_close(f, 0);
        }
        r.done_reading = true;
        Ok(())
    }

    fn read_more(&self, r: &mut Replay) -> Result<()> {
        let (Some(f), false) = (r.file, r.reading) else {
            return Ok(());
        };
        if r.ahead() >= AHEAD_US || r.pos >= r.rows[r.row].bytes {
            return Ok(());
        }
        r.reading = true;
        self.host.file_read(f, r.pos, READ, TOKEN_READ)
    }

    /// Frames out of the whole fragments read.
    fn parse(&self, r: &mut Replay) -> Result<()> {
        if r.init.is_none() {
            let Some(end) = crate::vod::init_len(&r.buf) else {
                return Ok(());
            };
            let bytes = r.buf.split_to(end as usize).freeze();
            let init = match Mp4Init::parse(&bytes) {
                Ok(i) => i,
                Err(e) => {
                    rill_log!(
                        self.host,
                        Warn,
                        "replay {}: {}: {e}",
                        r.ask.id,
                        r.rows[r.row].path
                    );
                    r.pos = r.rows[r.row].bytes;
                    return Ok(());
                }
            };
            self.tracks(r, bytes, init)?;
        } else if r.pos as usize == r.buf.len() {
            // A later file's own init segment: the same tracks, or new
            // configurations sent before its frames.
            let Some(end) = crate::vod::init_len(&r.buf) else {
                return Ok(());
            };
            let bytes = r.buf.split_to(end as usize).freeze();
            if r.init.as_ref().is_some_and(|(b, _)| *b != bytes) {
                if let Ok(init) = Mp4Init::parse(&bytes) {
                    self.tracks(r, bytes, init)?;
                }
            }
        }
        // Held apart while frames are taken out of `r`.
        let Some((bytes, init)) = r.init.take() else {
            return Ok(());
        };
        let has_video = init.tracks().iter().any(|t| t.is_video());
        while let Some(frags) = r.take_fragments() {
            let mut frames = Vec::new();
            if init.frames(&frags, &mut frames).is_err() {
                continue;
            }
            for f in frames {
                if let Some(skip) = &mut r.skip {
                    let first = *skip.first.get_or_insert(f.dts);
                    let key_video = f.flags & RILL_FRAME_KEY != 0
                        && (!has_video || rill_codec_kind(f.codec) == RILL_TRACK_VIDEO);
                    if f.dts - first < skip.into_us || !key_video {
                        continue;
                    }
                    r.skip = None;
                }
                r.queue.push_back(f);
            }
        }
        r.init = Some((bytes, init));
        Ok(())
    }

    /// Tracks (and their configurations) of an init segment.
    fn tracks(&self, r: &mut Replay, bytes: Bytes, init: Mp4Init) -> Result<()> {
        let Some(p) = &r.publisher else {
            return Ok(());
        };
        if r.tracks.is_empty() {
            for t in init.tracks() {
                let mut ti = TrackInfo::new();
                ti.kind = rill_codec_kind(t.codec);
                ti.codec = t.codec;
                r.tracks.push(p.add_track(&ti)?);
            }
        }
        // Configurations go first, stamped with the next frame's time.
        let at = r.last_out;
        for c in init.config_frames(at) {
            let Some(&track) = r.tracks.get(c.track as usize) else {
                continue;
            };
            let info = FrameInfo {
                track,
                codec: c.codec,
                flags: c.flags,
                pts: at,
                dts: at,
                ..FrameInfo::new()
            };
            let f = self.host.frame_wrap(c.payload, &info)?;
            p.write(&f)?;
        }
        r.init = Some((bytes, init));
        Ok(())
    }

    /// Sends what is due, reads ahead, and sets the timer for the next.
    pub(crate) fn pace(&self, r: &mut Replay, conn: &Conn) -> Result<()> {
        let now = self.host.now_us();
        let speed = r.ask.speed;
        while let Some(f) = r.queue.front() {
            // The first frame, or a new timeline (a recording after a gap,
            // a timestamp jump back or of more than 2 s): paced from now.
            // (Tracks interleave: a step back within a second is none.)
            let jump = r
                .last_src
                .is_some_and(|s| f.dts < s - 1_000_000 || f.dts - s > 2_000_000);
            let anchor = match r.anchor {
                Some(a) if !jump => a,
                _ => {
                    let out = if r.sent == 0 { 0 } else { r.last_out + 40_000 };
                    let a = (now, f.dts, out);
                    r.anchor = Some(a);
                    a
                }
            };
            let scaled = |t: i64| anchor.2 + ((t - anchor.1) as f64 / speed) as i64;
            let due = anchor.0 + ((f.dts - anchor.1) as f64 / speed) as i64;
            if due > now {
                let wait = Duration::from_micros((due - now) as u64);
                if let Some(t) = r.timer.take() {
                    let _ = self.host.timer_cancel(t);
                }
                r.timer = Some(conn.timer_start(wait, false, TIMER_DUE)?);
                break;
            }
            let f = r.queue.pop_front().expect("front");
            let Some(&track) = r.tracks.get(f.track as usize) else {
                continue;
            };
            let i = f.track as usize;
            if r.last_out_track.len() <= i {
                r.last_out_track.resize(i + 1, i64::MIN);
            }
            let dts = scaled(f.dts).max(r.last_out_track[i]);
            r.last_out_track[i] = dts;
            let info = FrameInfo {
                track,
                codec: f.codec,
                flags: f.flags,
                pts: scaled(f.pts).max(dts),
                dts,
                ..FrameInfo::new()
            };
            r.last_src = Some(f.dts);
            r.last_out = r.last_out.max(dts);
            if let Some(p) = &r.publisher {
                let frame = self.host.frame_wrap(f.payload, &info)?;
                p.write(&frame)?;
                r.sent += 1;
            }
        }
        if r.queue.is_empty() && r.done_reading {
            return self.finish(r, conn, "the range ended");
        }
        self.read_more(r)
    }

    fn finish(&self, r: &mut Replay, conn: &Conn, why: &str) -> Result<()> {
        rill_log!(
            self.host,
            Info,
            "replay {} of {} as {}: {why} ({} frames)",
            r.ask.id,
            r.ask.stream,
            r.ask.path,
            r.sent
        );
        conn.close(RILL_END_NORMAL)
    }

    pub(crate) fn replay_closed(&self, r: Replay) {
        if let Some(f) = r.file {
            let _ = self.host.file_close(f, 0);
        }
        crate::lock(&self.replays).remove(&r.ask.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], len: usize) -> Vec<u8> {
        [&((len + 8) as u32).to_be_bytes()[..], kind, &vec![7; len]].concat()
    }

    #[test]
    fn whole_fragments_are_cut_off_the_front() {
        let mut r = Replay::new(Ask {
            id: 1,
            stream: "a/b".into(),
            path: "replay/a/b".into(),
            from: None,
            to: None,
            speed: 1.0,
        });
        let pair = [boxed(b"moof", 20), boxed(b"mdat", 100)].concat();
        r.buf.extend_from_slice(&pair);
        r.buf.extend_from_slice(&pair);
        // The third pair only begins.
        r.buf.extend_from_slice(&pair[..50]);
        assert_eq!(r.take_fragments().map(|b| b.len()), Some(2 * pair.len()));
        assert_eq!(r.buf.len(), 50);
        assert_eq!(r.take_fragments(), None);
        // An mdat without its moof is no fragment; a bad size stops.
        let mut r2 = Replay::new(r.ask.clone());
        r2.buf.extend_from_slice(&boxed(b"mdat", 10));
        assert_eq!(r2.take_fragments(), None);
        r2.buf.clear();
        r2.buf
            .extend_from_slice(&[0, 0, 0, 3, b'm', b'o', b'o', b'f']);
        assert_eq!(r2.take_fragments(), None);
    }
}
