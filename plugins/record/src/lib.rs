//! Recording: every published stream that matches a rule is written to
//! files (fMP4, FLV, MP4 or MPEG-TS) cut on key frames near the rule's
//! segment length, through the host's storage, and each file is a row of
//! the host's recording index (which the management API lists, serves and
//! deletes).
//!
//! One session without a socket per recorded stream subscribes to it and
//! feeds a [`writer::Writer`]; the writes go to the host's I/O threads,
//! never blocking a callback. fMP4, FLV and TS files are complete after
//! every fragment, tag or packet written, so a crash loses at most the
//! last one; an MP4 gets its `moov` at close, and keeps a sidecar index
//! (`.idx`) meanwhile from which a file left by a crash is repaired.
//! Rows still open when nobody updates them any more (the server died)
//! are repaired and closed at the next checks ([`repair`]).
//!
//! The instance checks every `check_interval`: the free space where each
//! rule writes (below `min_free` recording stops, the streams go on, and
//! resumes at the next publish once there is room again) and each rule's
//! retention (`max_age`, `max_bytes`: the host deletes the oldest files).

#![forbid(unsafe_code)]

mod api;
mod config;
mod download;
pub mod fuzzing;
mod remux;
mod repair;
mod replay;
pub(crate) mod source;
mod vod;
mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use rill_abi::sdk::{
    Conn, ConnId, Error, FileId, FrameRef, Host, HttpRequest, Plugin, Recording, Result,
    Subscriber, SubscriberId,
};
use rill_abi::*;

use config::{Config, Rule};
use writer::{Format, Media, MediaExt, Out, Writer};

/// The HTTP route of VOD playback (`/vod/*`).
const ROUTE_VOD: u32 = 1;
/// The management routes (`/api/v1/plugins/record/*`).
const ROUTE_API: u32 = 2;
/// The instance timer of the free-space and retention checks.
const TIMER_CHECK: u64 = 1;
/// A recorder's timer: its row brought up to date even without frames,
/// so a row nobody updates means a dead writer ([`repair`]).
const TIMER_ROW: u64 = 2;
/// How often a recorder brings its row up to date (end, size).
const ROW_UPDATE_US: i64 = 1_000_000;

/// What an instance-level completion was for.
enum Pending {
    /// A file closed: its row becomes complete (and an MP4's sidecar goes).
    Closed {
        row: u64,
        rec: Recording,
        sidecar: Option<String>,
    },
    /// The free space where rule `rule` writes.
    Free { rule: usize },
    /// Retention of a rule ran.
    Expired { rule: usize },
    /// A step of a repair.
    Repair(repair::Step),
    /// Nothing to do with the answer.
    Ignore,
}

pub struct Record {
    host: Host,
    cfg: Config,
    /// Streams being recorded, with their recorder session.
    active: Mutex<HashMap<String, ConnId>>,
    /// Streams published now (from stream events).
    published: Mutex<HashSet<String>>,
    /// Below `min_free` somewhere: no new recording starts.
    low_space: AtomicBool,
    pending: Mutex<HashMap<u64, Pending>>,
    next_token: AtomicU64,
    repairs: repair::Repairs,
    /// fMP4 files' init segment sizes, by row (VOD playlists list the
    /// media by byte range after them).
    init_lens: Mutex<HashMap<u64, u64>>,
    /// Replays running, by id: their session and what was asked.
    replays: Mutex<HashMap<u64, (ConnId, replay::Ask)>>,
    next_replay: AtomicU64,
}

/// A session: a stream's recorder, a VOD request, or a replay.
pub enum Session {
    Recorder(Recorder),
    Vod(vod::Request),
    Replay(Box<replay::Replay>),
}

pub struct Recorder {
    stream: String,
    rule: usize,
    sub: Option<Subscriber>,
    /// The latest config frame of each track.
    configs: Vec<Media>,
    seg: Option<Segment>,
    /// The configurations changed: the next key frame starts a new file.
    reconfigured: bool,
    stopped: bool,
}

struct Segment {
    file: FileId,
    path: String,
    /// The MP4 sidecar index.
    sidecar: Option<(FileId, String)>,
    row: u64,
    rec: Recording,
    writer: Writer,
    first_dts: i64,
    last_row_update: i64,
    /// When the latest frame was received: the row's end at close.
    last_frame_wall: i64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The message that stops a recorder (low space, the API).
struct Stop(&'static str);

impl Record {
    fn token(&self, p: Pending) -> u64 {
        let t = self.next_token.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).insert(t, p);
        t
    }

    /// Rule `i`; past the configured ones, the API's manual rule.
    fn rule(&self, i: usize) -> &Rule {
        self.cfg.rules.get(i).unwrap_or(&self.cfg.manual)
    }

    /// Starts recording `path` if a rule wants it and nothing stops it.
    fn start(&self, path: &str) -> Result<()> {
        match self.cfg.rule_for(path) {
            // Below the floor it was logged; the stream goes on.
            Some(rule) => match self.start_with(path, rule) {
                Err(Error::NO_SPACE) => Ok(()),
                r => r.map(drop),
            },
            None => Ok(()),
        }
    }

    /// Starts recording `path` with rule `rule`; false when it already is
    /// (or the disk is below the floor).
    fn start_with(&self, path: &str, rule: usize) -> Result<bool> {
        if self.low_space.load(Ordering::Relaxed) {
            rill_log!(
                self.host,
                Warn,
                "not recording {path}: the disk is below min_free"
            );
            return Err(Error::NO_SPACE);
        }
        let mut active = lock(&self.active);
        if active.contains_key(path) {
            return Ok(false);
        }
        let id = self.host.session_open(Session::Recorder(Recorder {
            stream: path.to_owned(),
            rule,
            sub: None,
            configs: Vec::new(),
            seg: None,
            reconfigured: false,
            stopped: false,
        }))?;
        active.insert(path.to_owned(), id);
        Ok(true)
    }

    /// Opens a new file for `r` at frame `m`.
    fn open_segment(&self, r: &mut Recorder, m: &Media) -> Result<()> {
        let rule = self.rule(r.rule);
        let now = self.host.wall_us();
        let path = config::expand(rule, &r.stream, now);
        let flags = RILL_FILE_WRITE | RILL_FILE_CREATE | RILL_FILE_EXCLUSIVE;
        let mut outs = Vec::new();
        let writer = match Writer::new(
            rule.format,
            &r.configs,
            m,
            writer::Cuts::spread(self.cfg.fragment.as_micros() as i64, &r.stream),
            &mut outs,
        ) {
            Ok(w) => w,
            Err(e) => {
                rill_log!(self.host, Warn, "{}: not recorded: {e}", r.stream);
                r.stopped = true;
                return Ok(());
            }
        };
        // Completions of files go to the instance: they outlive the session.
        let file = self.host.file_open(ConnId::INSTANCE, &path, flags)?;
        let sidecar = if rule.format == Format::Mp4 {
            let side = repair::sidecar_path(&path);
            Some((self.host.file_open(ConnId::INSTANCE, &side, flags)?, side))
        } else {
            None
        };
        let rec = Recording {
            stream: r.stream.clone(),
            format: rule.format.name().to_owned(),
            path: path.clone(),
            group: rule.name.clone(),
            codecs: writer.codecs().to_owned(),
            start_us: now,
            end_us: now,
            duration_us: 0,
            bytes: 0,
            done: false,
        };
        let row = self.host.recording_add(&rec)?;
        lock(&self.repairs.own).insert(row);
        if let (Format::Fmp4, Some(Out::Append(init))) = (rule.format, outs.first()) {
            let mut known = lock(&self.init_lens);
            if known.len() >= 100_000 {
                known.clear();
            }
            known.insert(row, init.len() as u64);
        }
        rill_log!(self.host, Info, "recording {} to {path}", r.stream);
        let mut seg = Segment {
            file,
            path,
            sidecar,
            row,
            rec,
            writer,
            first_dts: m.dts,
            last_row_update: now,
            last_frame_wall: now,
        };
        self.write(&mut seg, outs)?;
        r.seg = Some(seg);
        Ok(())
    }

    /// Hands `outs` to the host, in order.
    fn write(&self, seg: &mut Segment, outs: Vec<Out>) -> Result<()> {
        for o in outs {
            match o {
                Out::Append(b) => self.host.file_write(seg.file, None, &b)?,
                Out::At(at, b) => self.host.file_write(seg.file, Some(at), &b)?,
                Out::Index(b) => {
                    if let Some((f, _)) = &seg.sidecar {
                        self.host.file_write(*f, None, &b)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends `r`'s file: the writer's tail, the close, and the row done
    /// once the close succeeded.
    fn close_segment(&self, r: &mut Recorder, why: &str) {
        let Some(mut seg) = r.seg.take() else {
            return;
        };
        let mut outs = Vec::new();
        seg.writer.finish(&mut outs);
        let wrote = self.write(&mut seg, outs);
        let mut rec = seg.rec.clone();
        rec.end_us = seg.last_frame_wall;
        rec.duration_us = seg.writer.duration_us();
        rec.bytes = seg.writer.bytes();
        rec.done = true;
        let sidecar = seg.sidecar.as_ref().map(|(_, p)| p.clone());
        if let Some((f, _)) = seg.sidecar {
            let _ = self.host.file_close(f, 0);
        }
        let token = self.token(match wrote {
            Ok(()) => Pending::Closed {
                row: seg.row,
                rec,
                sidecar,
            },
            // The row stays unfinished: the repair looks at the file.
            Err(_) => Pending::Ignore,
        });
        if self.host.file_close(seg.file, token).is_err() {
            lock(&self.pending).remove(&token);
        }
        rill_log!(self.host, Info, "{}: closed {} ({why})", r.stream, seg.path);
    }

    /// Brings the row of an open file up to date. While a file is written
    /// its row ends now: a row whose end stops moving was left by a writer
    /// that died.
    fn update_row(&self, seg: &mut Segment, now: i64) {
        seg.last_row_update = now;
        seg.rec.end_us = now;
        seg.rec.duration_us = seg.writer.duration_us();
        seg.rec.bytes = seg.writer.bytes();
        let _ = self.host.recording_update(seg.row, &seg.rec);
    }

    /// A write failed: stop recording this stream (the disk is full, or
    /// cannot keep up), the stream goes on.
    fn write_failed(&self, r: &mut Recorder, e: Error) {
        let why = match e {
            Error::NO_SPACE => {
                self.low_space.store(true, Ordering::Relaxed);
                "the disk is full"
            }
            Error::AGAIN => "the disk cannot keep up",
            _ => "a write failed",
        };
        rill_log!(
            self.host,
            Error,
            "{}: recording stopped: {why} ({e})",
            r.stream
        );
        self.close_segment(r, why);
        r.stopped = true;
    }

    fn frame(&self, r: &mut Recorder, m: Media) -> Result<()> {
        if m.is_config() {
            let changed = r
                .configs
                .iter()
                .find(|c| c.track == m.track)
                .is_none_or(|c| c.codec != m.codec || c.payload != m.payload);
            r.configs.retain(|c| c.track != m.track);
            r.configs.push(m);
            if changed && r.seg.is_some() {
                r.reconfigured = true;
            }
            return Ok(());
        }
        let has_video = r.configs.iter().any(|c| c.is_video());
        let starts = if has_video {
            m.is_video() && m.is_key()
        } else {
            true
        };
        if let Some(seg) = &r.seg {
            let long = m.dts - seg.first_dts >= self.rule(r.rule).segment.as_micros() as i64;
            if starts && (long || r.reconfigured) {
                let why = if r.reconfigured {
                    "new codec configuration"
                } else {
                    "segment length"
                };
                self.close_segment(r, why);
            }
        }
        if r.seg.is_none() {
            if !starts || r.configs.is_empty() {
                return Ok(());
            }
            r.reconfigured = false;
            self.open_segment(r, &m)?;
        }
        let Some(mut seg) = r.seg.take() else {
            return Ok(());
        };
        let mut outs = Vec::new();
        if let Err(e) = seg.writer.push(&m, &mut outs) {
            rill_log!(self.host, Warn, "{}: frame skipped: {e}", r.stream);
        }
        let res = self.write(&mut seg, outs);
        let now = self.host.wall_us();
        seg.last_frame_wall = now;
        if res.is_ok() && now - seg.last_row_update >= ROW_UPDATE_US {
            self.update_row(&mut seg, now);
        }
        r.seg = Some(seg);
        if let Err(e) = res {
            self.write_failed(r, e);
        }
        Ok(())
    }

    fn check(&self) {
        for (i, rule) in self.cfg.rules.iter().enumerate() {
            let probe = config::expand(rule, "probe/probe", 0);
            let t = self.token(Pending::Free { rule: i });
            if self
                .host
                .fs_op(ConnId::INSTANCE, RILL_FS_FREE, &probe, "", 0, t)
                .is_err()
            {
                lock(&self.pending).remove(&t);
            }
            if !rule.max_age.is_zero() || rule.max_bytes > 0 {
                let t = self.token(Pending::Expired { rule: i });
                let age = (!rule.max_age.is_zero()).then_some(rule.max_age);
                if self
                    .host
                    .recordings_expire(ConnId::INSTANCE, &rule.name, age, rule.max_bytes, t)
                    .is_err()
                {
                    lock(&self.pending).remove(&t);
                }
            }
        }
        repair::scan(self);
    }

    fn free_space(&self, rule: usize, free: i64) {
        let low = (free.max(0) as u64) < self.cfg.min_free;
        let was = self.low_space.swap(low, Ordering::Relaxed);
        if low && !was {
            rill_log!(
                self.host,
                Error,
                "recording stopped: {free} bytes free where rule {} writes, below min_free ({})",
                self.rule(rule).name,
                self.cfg.min_free
            );
            for id in lock(&self.active).values() {
                let _ = self
                    .host
                    .post(*id, Box::new(Stop("the disk is below min_free")));
            }
        } else if !low && was {
            rill_log!(self.host, Info, "recording resumes: {free} bytes free");
            let streams: Vec<String> = lock(&self.published).iter().cloned().collect();
            for s in streams {
                let _ = self.start(&s);
            }
        }
    }
}

impl Plugin for Record {
    type Session = Session;
    const DESCRIPTION: &'static str =
        "Recording to fMP4, FLV, MP4 or MPEG-TS files, indexed; VOD playback";
    const WANTS_STREAM_EVENTS: bool = true;

    fn create(host: &Host) -> Result<Self> {
        let cfg = host.parse_config(Config::parse)?;
        for method in ["GET", "HEAD"] {
            host.http_route(method, "/vod/*", ROUTE_VOD)?;
        }
        host.http_route("", api::PREFIX_PATTERN, ROUTE_API)?;
        host.timer_start(cfg.check_interval, true, TIMER_CHECK)?;
        Ok(Record {
            host: *host,
            cfg,
            active: Mutex::new(HashMap::new()),
            published: Mutex::new(HashSet::new()),
            low_space: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            repairs: repair::Repairs::default(),
            init_lens: Mutex::new(HashMap::new()),
            replays: Mutex::new(HashMap::new()),
            next_replay: AtomicU64::new(1),
        })
    }

    fn on_http_request(&self, conn: &Conn, route: u32, req: &HttpRequest<'_>) -> Result<Session> {
        if route == ROUTE_API {
            self.api(conn, req)?;
            return Ok(Session::Vod(vod::Request::answered()));
        }
        let mut r = match vod::Request::parse(req) {
            Ok(r) => r,
            Err((status, why)) => {
                conn.http_respond(
                    status,
                    &[("content-type", "text/plain; charset=utf-8")],
                    rill_abi::sdk::Body::Fixed(why.len() as u64),
                )?;
                conn.write(why.as_bytes())?;
                conn.close(RILL_END_NORMAL)?;
                return Ok(Session::Vod(vod::Request::answered()));
            }
        };
        self.vod_start(&mut r, conn)?;
        Ok(Session::Vod(r))
    }

    fn on_admit(
        &self,
        s: &mut Session,
        conn: &Conn,
        _ticket: u64,
        result: Result<()>,
    ) -> Result<()> {
        let Session::Vod(r) = s else {
            return Ok(());
        };
        match result {
            Ok(()) => self.vod_admitted(r, conn),
            Err(e) => self.vod_refused(conn, e),
        }
    }

    fn on_writable(&self, s: &mut Session, conn: &Conn) -> Result<()> {
        match s {
            Session::Vod(r) => self.vod_writable(r, conn),
            Session::Recorder(_) | Session::Replay(_) => Ok(()),
        }
    }

    fn on_session_open(&self, s: &mut Session, conn: &Conn, _kind: u32) -> Result<()> {
        if let Session::Replay(r) = s {
            return self.replay_open(r, conn);
        }
        let Session::Recorder(r) = s else {
            return Ok(());
        };
        r.sub = Some(conn.subscribe(&r.stream, "", None)?);
        conn.timer_start(
            std::time::Duration::from_micros(ROW_UPDATE_US as u64),
            true,
            TIMER_ROW,
        )?;
        Ok(())
    }

    fn on_frame(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let Session::Recorder(r) = s else {
            return Ok(());
        };
        if r.stopped {
            return conn.close(RILL_END_NORMAL);
        }
        let m = Media::from(frame);
        if let Err(e) = self.frame(r, m) {
            rill_log!(self.host, Error, "{}: recording stopped: {e}", r.stream);
            self.close_segment(r, "error");
            r.stopped = true;
            return conn.close(RILL_END_NORMAL);
        }
        if r.stopped {
            return conn.close(RILL_END_NORMAL);
        }
        Ok(())
    }

    fn on_subscribe_end(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        _reason: u32,
        why: &str,
    ) -> Result<()> {
        if let Session::Recorder(r) = s {
            r.sub = None;
            self.close_segment(r, why);
        }
        conn.close(RILL_END_NORMAL)
    }

    fn on_post(
        &self,
        session: Option<(&mut Session, &Conn)>,
        msg: Box<dyn std::any::Any + Send>,
    ) -> Result<()> {
        match session {
            Some((Session::Recorder(r), conn)) => {
                if let Ok(stop) = msg.downcast::<Stop>() {
                    self.close_segment(r, stop.0);
                    r.stopped = true;
                    return conn.close(RILL_END_NORMAL);
                }
            }
            Some((Session::Replay(r), conn)) => {
                if let Some(seek) = msg.downcast_ref::<replay::Seek>() {
                    return self.seek_to(r, conn, seek.0);
                }
                if msg.is::<Stop>() {
                    return conn.close(RILL_END_NORMAL);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn on_close(&self, s: Session, _conn: &Conn, _reason: u32, why: &str) {
        match s {
            Session::Recorder(mut r) => {
                self.close_segment(&mut r, why);
                lock(&self.active).remove(&r.stream);
            }
            Session::Vod(r) => self.vod_closed(r),
            Session::Replay(r) => self.replay_closed(*r),
        }
    }

    fn on_timer(&self, session: Option<(&mut Session, &Conn)>, timer_id: u64) -> Result<()> {
        match (session, timer_id) {
            (None, TIMER_CHECK) => self.check(),
            (Some((Session::Replay(r), conn)), replay::TIMER_DUE) => self.pace(r, conn)?,
            (Some((Session::Recorder(r), _)), TIMER_ROW) => {
                if let Some(seg) = r.seg.as_mut() {
                    self.update_row(seg, self.host.wall_us());
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn on_io(
        &self,
        session: Option<(&mut Session, &Conn)>,
        token: u64,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        match session {
            Some((Session::Vod(r), conn)) => self.vod_io(r, conn, token, result, data),
            Some((Session::Replay(r), conn)) => self.replay_io(r, conn, token, result, data),
            Some((Session::Recorder(_), _)) => Ok(()),
            None => self.instance_io(token, result, data),
        }
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        match event {
            RILL_STREAM_PUBLISHED => {
                lock(&self.published).insert(path.to_owned());
                self.start(path)
            }
            RILL_STREAM_UNPUBLISHED => {
                lock(&self.published).remove(path);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl Record {
    /// An instance-level completion (files, retention, repairs).
    fn instance_io(&self, token: u64, result: Result<i64>, data: &[u8]) -> Result<()> {
        let Some(p) = lock(&self.pending).remove(&token) else {
            return Ok(());
        };
        match p {
            Pending::Closed {
                row,
                mut rec,
                sidecar,
            } => match result {
                Ok(size) => {
                    lock(&self.repairs.own).remove(&row);
                    rec.bytes = size.max(0) as u64;
                    self.host.recording_update(row, &rec)?;
                    if let Some(side) = sidecar {
                        let t = self.token(Pending::Ignore);
                        self.host
                            .fs_op(ConnId::INSTANCE, RILL_FS_REMOVE, &side, "", 0, t)?;
                    }
                }
                Err(e) => {
                    rill_log!(
                        self.host,
                        Error,
                        "{}: {} not complete: {e}",
                        rec.stream,
                        rec.path
                    );
                }
            },
            Pending::Free { rule } => match result {
                Ok(free) => self.free_space(rule, free),
                Err(e) => rill_log!(
                    self.host,
                    Warn,
                    "free space of rule {}: {e}",
                    self.rule(rule).name
                ),
            },
            Pending::Expired { rule } => {
                if let Ok(n) = result {
                    if n > 0 {
                        rill_log!(
                            self.host,
                            Info,
                            "retention of {}: {n} recordings deleted",
                            self.rule(rule).name
                        );
                    }
                }
            }
            Pending::Repair(step) => repair::on_io(self, step, result, data),
            Pending::Ignore => {}
        }
        Ok(())
    }
}

rill_abi::export_plugin!(Record, "record");
