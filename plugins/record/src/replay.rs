//! Replays: a recording published into the engine again, at 0.5–4×, so
//! every player (RTMP, HTTP-FLV, HLS, RTSP, WebRTC) can watch it.
//!
//! A replay is a session without a socket that publishes `path` (default
//! `replay/{stream}`) from the recordings of `stream` in a time range
//! (fMP4, FLV, TS or MP4: see [`crate::source`]). It reads the files in
//! order, 1 MiB at a time while less than
//! [`AHEAD_US`] of media waits, and sends each frame when it is due: at
//! speed `s`, a frame `d` µs of media after the start goes out `d / s` µs
//! after it, stamped `d / s` — the players see a stream at `s`× that
//! plays in real time. Gaps between recordings are skipped; a seek drops
//! what waits and starts again at the first video key frame at or after
//! the time asked. Driven through the API (see [`crate::api`]).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rill_abi::sdk::{Conn, FileId, FrameInfo, Publisher, Result, TimerHandle, TrackInfo};
use rill_abi::*;
use rill_ts::Frame;

use crate::source::Source;
use crate::vod::Row;
use crate::Record;

/// Bytes read from a file at a time.
const READ: u64 = 1 << 20;
/// Media read ahead of the frame due (µs of source time).
const AHEAD_US: i64 = 3_000_000;
/// Tracks one replay publishes at most (a codec change adds one).
const MAX_TRACKS: usize = 8;
/// Replays running at once at most.
pub(crate) const MAX_REPLAYS: usize = 64;
/// Recordings one replay reads at most.
pub(crate) const MAX_ROWS: u32 = 5000;
/// The slowest and fastest speeds.
pub(crate) const SPEEDS: std::ops::RangeInclusive<f64> = 0.5..=4.0;

pub(crate) const TOKEN_ROWS: u64 = 1;
/// `TOKEN_READ + n`: a read of the `n`th file opened (a read still out
/// when a seek opens another brings the old file's bytes: dropped).
pub(crate) const TOKEN_READ: u64 = 1 << 16;
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
    /// The tracks published: (the file's track, codec, host track). A
    /// queued frame's `track` is an index in here.
    tracks: Vec<(u32, u32, u32)>,
    /// The last config sent on each track (a later file repeats it).
    configs: Vec<Option<Bytes>>,
    rows: Vec<Row>,
    /// The file being read: its index in `rows`.
    row: usize,
    file: Option<FileId>,
    /// A read is out.
    reading: bool,
    /// The current file's frames.
    source: Option<Source>,
    queue: VecDeque<Frame>,
    /// Frames dropped until a video key frame this far (µs) into the
    /// current file.
    skip: Option<Skip>,
    /// Configs met while skipping: they go out with the key frame.
    skipped_configs: Vec<Frame>,
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
    /// Files opened so far (mod [`TOKEN_READ`]): the current one's reads.
    opened: u64,
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
            configs: Vec::new(),
            rows: Vec::new(),
            row: 0,
            file: None,
            reading: false,
            source: None,
            queue: VecDeque::new(),
            skip: None,
            skipped_configs: Vec::new(),
            anchor: None,
            last_out: 0,
            last_out_track: Vec::new(),
            last_src: None,
            timer: None,
            sent: 0,
            done_reading: false,
            opened: 0,
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
                    .filter(|row| row.done && Source::reads(&row.format))
                    .collect();
                if r.rows.is_empty() {
                    rill_log!(
                        self.host,
                        Info,
                        "replay {}: no recordings of {} in its range",
                        r.ask.id,
                        r.ask.stream
                    );
                    return conn.close(RILL_END_NORMAL);
                }
                let at = r.seek.or(r.ask.from).unwrap_or(r.rows[0].start_us);
                self.seek_to(r, conn, at)
            }
            t if t >= TOKEN_READ => {
                r.reading = false;
                if t - TOKEN_READ != r.opened {
                    return self.read_more(r);
                }
                let mut frames = Vec::new();
                let row = &r.rows[r.row];
                let read = result.is_ok().then_some(data);
                let (ended, error) =
                    Source::read_on(r.source.as_mut(), read, row.bytes, &mut frames);
                if let Some(e) = error {
                    let id = r.ask.id;
                    rill_log!(self.host, Warn, "replay {id}: {}: {e}", row.path);
                }
                self.take(r, frames)?;
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
        r.opened = (r.opened + 1) % TOKEN_READ;
        r.source = Source::new(&r.rows[i].format);
        r.skipped_configs.clear();
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
        let Some(pos) = r.source.as_ref().map(Source::position) else {
            return Ok(());
        };
        if r.ahead() >= AHEAD_US || pos >= r.rows[r.row].bytes {
            return Ok(());
        }
        r.reading = true;
        self.host.file_read(f, pos, READ, TOKEN_READ + r.opened)
    }

    /// Queues a file's frames: those before the seek's key frame dropped,
    /// each on its published track (declared at its first frame).
    fn take(&self, r: &mut Replay, frames: Vec<Frame>) -> Result<()> {
        let has_video = r
            .source
            .as_ref()
            .and_then(Source::has_video)
            .unwrap_or(true);
        for mut f in frames {
            let config = f.flags & RILL_FRAME_CONFIG != 0;
            if let Some(skip) = &mut r.skip {
                if config {
                    r.skipped_configs.retain(|c| c.track != f.track);
                    r.skipped_configs.push(f);
                    continue;
                }
                let first = *skip.first.get_or_insert(f.dts);
                let key_video = f.flags & RILL_FRAME_KEY != 0
                    && (!has_video || rill_codec_kind(f.codec) == RILL_TRACK_VIDEO);
                if f.dts - first < skip.into_us || !key_video {
                    continue;
                }
                r.skip = None;
                for mut c in std::mem::take(&mut r.skipped_configs) {
                    (c.dts, c.pts) = (f.dts, f.dts);
                    if let Some(i) = self.track_of(r, &c)? {
                        c.track = i;
                        r.queue.push_back(c);
                    }
                }
            }
            if let Some(i) = self.track_of(r, &f)? {
                f.track = i;
                r.queue.push_back(f);
            }
        }
        Ok(())
    }

    /// The published track of a file's frame (declared now if new), as an
    /// index in `r.tracks`; `None` past [`MAX_TRACKS`].
    fn track_of(&self, r: &mut Replay, f: &Frame) -> Result<Option<u32>> {
        if let Some(i) = r
            .tracks
            .iter()
            .position(|&(t, c, _)| t == f.track && c == f.codec)
        {
            return Ok(Some(i as u32));
        }
        let Some(p) = &r.publisher else {
            return Ok(None);
        };
        if r.tracks.len() >= MAX_TRACKS {
            return Ok(None);
        }
        let mut ti = TrackInfo::new();
        ti.kind = rill_codec_kind(f.codec);
        ti.codec = f.codec;
        r.tracks.push((f.track, f.codec, p.add_track(&ti)?));
        r.configs.push(None);
        Ok(Some(r.tracks.len() as u32 - 1))
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
            let i = f.track as usize;
            let Some(&(_, _, track)) = r.tracks.get(i) else {
                continue;
            };
            if f.flags & RILL_FRAME_CONFIG != 0 {
                // A later file's same config is not news to the players.
                if r.configs[i].as_ref() == Some(&f.payload) {
                    continue;
                }
                r.configs[i] = Some(f.payload.clone());
            }
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
