//! Pulling a live HLS stream, sans-IO: a [`Puller`] says which URL to
//! fetch next ([`Puller::poll_request`]), takes each whole response
//! ([`Puller::on_response`]), and hands out the stream's frames at the
//! pace of their timestamps ([`Puller::poll_frame`]). The caller owns the
//! connections (one request each, one at a time) and the clock.
//!
//! - The entry URL may be a multivariant playlist: the variant of the
//!   highest `BANDWIDTH` (the first of those) is followed, once.
//! - Whole segments only: MPEG-TS, or fMP4 after the init segment of their
//!   `EXT-X-MAP` (fetched when it changes). Low-latency parts and preload
//!   hints are ignored; `EXT-X-BYTERANGE` becomes a `Range` request.
//! - It starts [`PullConfig::live_edge`] segments before the end of the
//!   playlist and then takes every new segment in order. Reloads come
//!   every target duration after a change, half of it when nothing was
//!   new (RFC 8216 6.3.4).
//! - Timestamps are made one monotonic line across segments: the first
//!   frame is at 0; a discontinuity (`EXT-X-DISCONTINUITY`, a new init
//!   segment, segments skipped, a jump of the source's clock) continues
//!   the line where it was.
//! - Frames are released when their time comes (the first at once), so
//!   the stream flows as a live publisher's would rather than one
//!   segment at a time; one that is more than a second late moves the
//!   clock instead of bunching up.
//!
//! # Failures and limits
//!
//! The pull ends ([`PullError`]) on a non-2xx answer (redirects are
//! followed, [`PullConfig::max_redirects`] at most), a connection that
//! failed or a response cut short, garbage (a playlist or segment that does
//! not parse, a multivariant playlist where a media playlist should be), a
//! request unanswered for [`PullConfig::stall_us`], a playlist that lists
//! nothing new for that long (at least three target durations), no frame
//! for as long, or `EXT-X-ENDLIST` (once the listed segments are played).
//!
//! Bounded: playlists ([`PullConfig::playlist`]), segment and init sizes,
//! the segments waiting to be fetched ([`PullConfig::max_queued`]; past it
//! the oldest are skipped), and the frames held: no segment is fetched
//! while more than `live_edge + 1` target durations of media (or
//! [`PullConfig::max_frames`] frames) wait to be released.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use rill_http::Url;

use crate::parse::{self, best_variant, ByteRange, Media, ParseError, Playlist};
use crate::segment::{Mp4Init, SegmentError, TsSegments};
use crate::Frame;

/// A frame more than this late (µs) moves the release clock.
const LATE_US: i64 = 1_000_000;
/// Where a discontinuity continues the time line: this long (µs) after the
/// last frame.
const GAP_US: i64 = 33_000;
/// Segments that gave no frame, in a row, before the pull gives up.
const MAX_EMPTY: u32 = 3;

/// A pull's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullConfig {
    /// A request unanswered, the playlist not moving (at least three
    /// target durations), or no frame, this long (µs): the pull failed.
    pub stall_us: i64,
    /// Segments before the end of the playlist where the pull starts
    /// (1 to 10; 3, as RFC 8216 advises players).
    pub live_edge: u64,
    /// The playlist reader's limits (1 MiB, 20 000 segments, ...).
    pub playlist: parse::Limits,
    /// Largest media segment, bytes (64 MiB).
    pub max_segment: usize,
    /// Largest init segment, bytes (1 MiB).
    pub max_init: usize,
    /// Segments waiting to be fetched; past it the oldest are skipped
    /// (16).
    pub max_queued: usize,
    /// Redirects followed for one request (5).
    pub max_redirects: u32,
    /// Frames held for release; no segment is fetched past it, and a
    /// segment of more is garbage (100 000).
    pub max_frames: usize,
    /// Release frames on their time (true), or at once.
    pub pace: bool,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            stall_us: 10_000_000,
            live_edge: 3,
            playlist: parse::Limits::default(),
            max_segment: 64 << 20,
            max_init: 1 << 20,
            max_queued: 16,
            max_redirects: 5,
            max_frames: 100_000,
            pace: true,
        }
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// The entry (maybe multivariant) or media playlist.
    Playlist,
    /// An fMP4 init segment (`EXT-X-MAP`).
    Init,
    /// The media segment of this sequence number.
    Segment(u64),
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Playlist => f.write_str("playlist"),
            What::Init => f.write_str("init segment"),
            What::Segment(msn) => write!(f, "segment {msn}"),
        }
    }
}

/// One GET to make, on a connection of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Names the answer ([`Puller::on_response`]).
    pub id: u64,
    /// What it is for.
    pub what: What,
    /// Where.
    pub url: Url,
    /// A byte range (first and last byte), for `EXT-X-BYTERANGE`.
    pub range: Option<(u64, u64)>,
    /// The largest body to accept.
    pub max_body: usize,
}

impl Request {
    /// The HTTP request, with `user_agent` (and `Range` when there is one).
    pub fn http(&self, user_agent: &str) -> rill_http::Request {
        let r = rill_http::Request::get(&self.url)
            .header("User-Agent", user_agent)
            .header("Accept", "*/*");
        match self.range {
            Some((a, b)) => r.header("Range", &format!("bytes={a}-{b}")),
            None => r,
        }
    }

    /// The response reader's limits: the body bounded by `max_body`.
    pub fn limits(&self) -> rill_http::Limits {
        rill_http::Limits {
            max_body: self.max_body as u64,
            ..rill_http::Limits::default()
        }
    }
}

/// A whole response (for a non-2xx answer, its head is enough).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// A redirect's `Location`.
    pub location: Option<String>,
    /// The body (empty for non-2xx).
    pub body: Bytes,
}

/// Why a pull ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PullError {
    /// A non-2xx answer.
    Http {
        /// To what.
        what: What,
        /// The status.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// More redirects than [`PullConfig::max_redirects`] for one request.
    Redirects(What),
    /// A URL that does not resolve (a bad URI in a playlist, a redirect).
    Url(What, rill_http::Error),
    /// The connection failed or the response was cut short (the caller's
    /// words).
    Fetch(What, String),
    /// A request unanswered for [`PullConfig::stall_us`].
    Timeout(What),
    /// A playlist that does not parse.
    Playlist(ParseError),
    /// The variant of a multivariant playlist is not a media playlist.
    NotMedia,
    /// A multivariant playlist without variants.
    NoVariants,
    /// A segment or init segment that gave no frame.
    Segment(What, SegmentError),
    /// Segments that gave no frame, three in a row.
    Empty,
    /// A segment of more frames than [`PullConfig::max_frames`].
    TooManyFrames(What),
    /// The playlist listed nothing new for this long (µs).
    Stalled(i64),
    /// No frame came out for this long (µs).
    NoMedia(i64),
    /// `EXT-X-ENDLIST`: the source ended.
    Ended,
}

impl fmt::Display for PullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |us: &i64| std::time::Duration::from_micros((*us).max(0) as u64);
        match self {
            PullError::Http {
                what,
                status,
                reason,
            } => write!(f, "HLS {what}: HTTP {status} {reason}"),
            PullError::Redirects(w) => write!(f, "HLS {w}: too many redirects"),
            PullError::Url(w, e) => write!(f, "HLS {w}: {e}"),
            PullError::Fetch(w, e) => write!(f, "HLS {w}: {e}"),
            PullError::Timeout(w) => write!(f, "HLS {w}: no answer in time"),
            PullError::Playlist(e) => write!(f, "HLS playlist: {e}"),
            PullError::NotMedia => f.write_str("HLS: the variant is not a media playlist"),
            PullError::NoVariants => f.write_str("HLS: a multivariant playlist without variants"),
            PullError::Segment(w, e) => write!(f, "HLS {w}: {e}"),
            PullError::Empty => write!(f, "HLS: {MAX_EMPTY} segments in a row without media"),
            PullError::TooManyFrames(w) => write!(f, "HLS {w}: too many frames"),
            PullError::Stalled(us) => {
                write!(f, "HLS: the playlist listed nothing new for {:?}", secs(us))
            }
            PullError::NoMedia(us) => write!(f, "HLS: no media for {:?}", secs(us)),
            PullError::Ended => f.write_str("HLS: the source ended (EXT-X-ENDLIST)"),
        }
    }
}

impl std::error::Error for PullError {}

/// What a pull did, for logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Playlists read.
    pub playlists: u64,
    /// Segments read.
    pub segments: u64,
    /// Segments skipped (fallen out of the window, or past `max_queued`).
    pub skipped: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Frames released.
    pub frames: u64,
}

/// The init segment in force: where from, and its tracks.
type InitKey = (Url, Option<(u64, u64)>);

/// A segment waiting to be fetched.
#[derive(Debug, Clone)]
struct Queued {
    msn: u64,
    url: Url,
    range: Option<(u64, u64)>,
    map: Option<InitKey>,
    discontinuity: bool,
}

#[derive(Debug, Clone)]
struct InFlight {
    req: Request,
    started_us: i64,
    redirects: u32,
}

/// The source's times to one monotonic line (see the module's docs).
#[derive(Debug, Default)]
struct Timeline {
    offset: Option<i64>,
    /// The latest time given out.
    last: i64,
    /// Per track: the last decode time given out.
    tracks: Vec<(u32, i64)>,
}

impl Timeline {
    /// Maps one segment's frames; `cut`: continue the line from where it
    /// was whatever the source's times say.
    fn map(&mut self, frames: &mut [Frame], cut: bool, jump_us: i64) {
        let Some(first) = frames
            .iter()
            .filter(|f| !f.is_config())
            .map(|f| f.dts)
            .min()
        else {
            return;
        };
        let offset = match self.offset {
            None => first.saturating_neg(),
            Some(o) => {
                let at = first.saturating_add(o);
                let far = at < self.last.saturating_sub(jump_us)
                    || at > self.last.saturating_add(jump_us);
                if cut || far {
                    (self.last + GAP_US).saturating_sub(first)
                } else {
                    o
                }
            }
        };
        self.offset = Some(offset);
        for f in frames.iter_mut() {
            let dts = f.dts.saturating_add(offset);
            let pts = f.pts.saturating_add(offset);
            let last = match self.tracks.iter_mut().find(|t| t.0 == f.track) {
                Some(t) => t,
                None => {
                    self.tracks.push((f.track, i64::MIN));
                    self.tracks.last_mut().expect("just pushed")
                }
            };
            // Never back within a track (a config frame takes its
            // media's time).
            f.dts = dts.max(last.1).max(0);
            f.pts = pts.max(f.dts);
            last.1 = f.dts;
            self.last = self.last.max(f.dts);
        }
    }
}

/// One HLS pull (see the module's docs).
#[derive(Debug)]
pub struct Puller {
    cfg: PullConfig,
    entry: Url,
    /// The media playlist to reload (after a multivariant one).
    media: Option<Url>,
    /// Where the last media playlist came from (after redirects): its URIs
    /// resolve against it.
    base: Option<Url>,
    target_us: i64,
    /// The next segment to queue.
    next_msn: Option<u64>,
    queue: VecDeque<Queued>,
    init: Option<(InitKey, Mp4Init)>,
    /// The init segment of the last segment read (None: TS), to see it
    /// change.
    last_map: Option<Option<InitKey>>,
    ts: TsSegments,
    in_flight: Option<InFlight>,
    /// A redirected request, to make next.
    redirected: Option<InFlight>,
    next_id: u64,
    reload_at_us: i64,
    /// When the playlist last listed a new segment.
    moved_us: i64,
    /// When a frame last came out (or the pull started).
    media_us: i64,
    /// Something was skipped: the next segment continues the time line.
    cut: bool,
    endlist: bool,
    empty: u32,
    timeline: Timeline,
    ready: VecDeque<Frame>,
    /// (wall µs, frame µs) of the release clock.
    anchor: Option<(i64, i64)>,
    failed: Option<PullError>,
    stats: Stats,
}

impl Puller {
    /// A pull of `entry` (a multivariant or media playlist), starting at
    /// `now_us` (the caller's monotonic clock, µs).
    pub fn new(entry: Url, mut cfg: PullConfig, now_us: i64) -> Puller {
        cfg.live_edge = cfg.live_edge.clamp(1, 10);
        cfg.max_queued = cfg.max_queued.max(cfg.live_edge as usize);
        Puller {
            cfg,
            entry,
            media: None,
            base: None,
            target_us: 2_000_000,
            next_msn: None,
            queue: VecDeque::new(),
            init: None,
            last_map: None,
            ts: TsSegments::default(),
            in_flight: None,
            redirected: None,
            next_id: 0,
            reload_at_us: now_us,
            moved_us: now_us,
            media_us: now_us,
            cut: false,
            endlist: false,
            empty: 0,
            timeline: Timeline::default(),
            ready: VecDeque::new(),
            anchor: None,
            failed: None,
            stats: Stats::default(),
        }
    }

    /// What the pull did so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Why it ended, once it did.
    pub fn error(&self) -> Option<&PullError> {
        self.failed.as_ref()
    }

    /// Whether a media playlist was read.
    pub fn started(&self) -> bool {
        self.base.is_some()
    }

    /// The request in flight.
    pub fn in_flight(&self) -> Option<&Request> {
        self.in_flight.as_ref().map(|f| &f.req)
    }

    fn fail(&mut self, e: PullError) -> Result<(), PullError> {
        self.in_flight = None;
        self.redirected = None;
        self.ready.clear();
        self.queue.clear();
        self.failed.get_or_insert(e.clone());
        Err(e)
    }

    fn request(&mut self, what: What, url: Url, range: Option<(u64, u64)>, now_us: i64) -> Request {
        self.next_id += 1;
        let max_body = match what {
            What::Playlist => self.cfg.playlist.max_bytes,
            What::Init => self.cfg.max_init,
            What::Segment(_) => self.cfg.max_segment,
        };
        let req = Request {
            id: self.next_id,
            what,
            url,
            range,
            max_body,
        };
        self.in_flight = Some(InFlight {
            req: req.clone(),
            started_us: now_us,
            redirects: 0,
        });
        req
    }

    /// Media held, µs (from the first frame waiting to the last).
    fn buffered_us(&self) -> i64 {
        match (self.ready.front(), self.ready.back()) {
            (Some(a), Some(b)) => b.dts - a.dts,
            _ => 0,
        }
    }

    /// The next request to make, if one is due (one at a time: none while
    /// one is in flight).
    pub fn poll_request(&mut self, now_us: i64) -> Option<Request> {
        if self.failed.is_some() || self.in_flight.is_some() {
            return None;
        }
        if let Some(mut r) = self.redirected.take() {
            self.next_id += 1;
            r.req.id = self.next_id;
            r.started_us = now_us;
            let req = r.req.clone();
            self.in_flight = Some(r);
            return Some(req);
        }
        let budget = (self.cfg.live_edge as i64 + 1).saturating_mul(self.target_us);
        let room = self.buffered_us() < budget && self.ready.len() < self.cfg.max_frames;
        if let (Some(q), true) = (self.queue.front(), room) {
            if let Some(map) = &q.map {
                if self.init.as_ref().map(|i| &i.0) != Some(map) {
                    let (url, range) = map.clone();
                    return Some(self.request(What::Init, url, range, now_us));
                }
            }
            let (msn, url, range) = (q.msn, q.url.clone(), q.range);
            return Some(self.request(What::Segment(msn), url, range, now_us));
        }
        if self.endlist || now_us < self.reload_at_us {
            return None;
        }
        let url = self.media.clone().unwrap_or_else(|| self.entry.clone());
        Some(self.request(What::Playlist, url, None, now_us))
    }

    /// The answer to request `id`, or why there is none (the connection
    /// failed, the response was cut short). Answers to requests no longer
    /// in flight are ignored.
    pub fn on_response(
        &mut self,
        now_us: i64,
        id: u64,
        result: Result<Response, String>,
    ) -> Result<(), PullError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(f) = self.in_flight.take_if(|f| f.req.id == id) else {
            return Ok(());
        };
        let what = f.req.what;
        let resp = match result {
            Ok(r) => r,
            Err(e) => return self.fail(PullError::Fetch(what, e)),
        };
        if let Some(loc) = resp.location.as_deref() {
            if f.redirects >= self.cfg.max_redirects {
                return self.fail(PullError::Redirects(what));
            }
            let url = match f.req.url.join(loc) {
                Ok(u) => u,
                Err(e) => return self.fail(PullError::Url(what, e)),
            };
            self.redirected = Some(InFlight {
                req: Request { url, ..f.req },
                started_us: now_us,
                redirects: f.redirects + 1,
            });
            return Ok(());
        }
        if !(200..300).contains(&resp.status) {
            return self.fail(PullError::Http {
                what,
                status: resp.status,
                reason: resp.reason,
            });
        }
        self.stats.bytes += resp.body.len() as u64;
        let mut body = resp.body;
        if let (Some((a, b)), 200) = (f.req.range, resp.status) {
            // The whole resource where a range was asked: cut it here.
            let (a, b) = (a as usize, b.saturating_add(1) as usize);
            if body.len() < b || a > b {
                let e = "the byte range is not in the answer".to_owned();
                return self.fail(PullError::Fetch(what, e));
            }
            body = body.slice(a..b);
        }
        match what {
            What::Playlist => self.playlist(now_us, f, &body),
            What::Init => match Mp4Init::parse(&body) {
                Ok(init) => {
                    // Named as the queue names it (before any redirect).
                    if let Some(key) = self.queue.front().and_then(|q| q.map.clone()) {
                        self.init = Some((key, init));
                    }
                    Ok(())
                }
                Err(e) => self.fail(PullError::Segment(what, e)),
            },
            What::Segment(msn) => self.segment(msn, body),
        }
    }

    fn playlist(&mut self, now_us: i64, f: InFlight, body: &[u8]) -> Result<(), PullError> {
        self.stats.playlists += 1;
        let text = String::from_utf8_lossy(body);
        let m = match parse::parse_with(&text, &self.cfg.playlist) {
            Ok(Playlist::Media(m)) => m,
            Ok(Playlist::Multivariant(v)) => {
                if self.media.is_some() {
                    return self.fail(PullError::NotMedia);
                }
                let Some(uri) = best_variant(&v).map(|v| v.uri.clone()) else {
                    return self.fail(PullError::NoVariants);
                };
                match f.req.url.join(&uri) {
                    Ok(u) => self.media = Some(u),
                    Err(e) => return self.fail(PullError::Url(What::Playlist, e)),
                }
                self.reload_at_us = now_us;
                return Ok(());
            }
            Err(e) => return self.fail(PullError::Playlist(e)),
        };
        let base = f.req.url.clone();
        if self.media.is_none() {
            // The entry was the media playlist: reload it, not where it
            // redirected to (a redirect may be for once).
            self.media = Some(self.entry.clone());
        }
        self.target_us = ((m.target_duration * 1e6) as i64).clamp(100_000, 60_000_000);
        if self.base.is_none() {
            self.moved_us = now_us;
            self.media_us = now_us;
        }
        self.base = Some(base.clone());
        let changed = match self.take_segments(&m, &base) {
            Ok(c) => c,
            Err(e) => return self.fail(e),
        };
        if changed {
            self.moved_us = now_us;
        }
        self.endlist = m.endlist;
        let wait = if changed {
            self.target_us
        } else {
            self.target_us / 2
        };
        self.reload_at_us = f.started_us + wait;
        Ok(())
    }

    /// Queues the segments of `m` not queued yet; whether there were any.
    fn take_segments(&mut self, m: &Media, base: &Url) -> Result<bool, PullError> {
        let start = m.segment_start(self.cfg.live_edge);
        let next = match self.next_msn {
            None => start,
            // Fallen out of the window: on from the live edge.
            Some(n) if n < m.first_msn() => {
                self.stats.skipped = self.stats.skipped.saturating_add(start - n);
                self.cut = true;
                start
            }
            // The numbers went back (the source started again): on from
            // its live edge. A step or two back is a stale copy.
            Some(n) if m.next_msn().saturating_add(3) < n => {
                self.cut = true;
                start
            }
            Some(n) => n,
        };
        let mut changed = false;
        let mut next_msn = next;
        for s in &m.segments {
            let Some(uri) = s.uri.as_deref() else {
                continue;
            };
            if s.msn < next_msn {
                continue;
            }
            let url = base
                .join(uri)
                .map_err(|e| PullError::Url(What::Segment(s.msn), e))?;
            let map = match &s.map {
                Some(map) => Some((
                    base.join(&map.uri)
                        .map_err(|e| PullError::Url(What::Init, e))?,
                    map.byterange.and_then(range),
                )),
                None => None,
            };
            self.queue.push_back(Queued {
                msn: s.msn,
                url,
                range: s.byterange.and_then(range),
                map,
                discontinuity: s.discontinuity,
            });
            next_msn = s.msn.saturating_add(1);
            changed = true;
        }
        self.next_msn = Some(next_msn);
        // (Nothing else is in flight while a playlist is read.)
        while self.queue.len() > self.cfg.max_queued {
            self.queue.pop_front();
            self.stats.skipped += 1;
            self.cut = true;
        }
        Ok(changed)
    }

    fn segment(&mut self, msn: u64, body: Bytes) -> Result<(), PullError> {
        let Some(q) = self.queue.front().filter(|q| q.msn == msn).cloned() else {
            return Ok(());
        };
        self.queue.pop_front();
        self.stats.segments += 1;
        let what = What::Segment(msn);
        let mut frames = Vec::new();
        let new_map = self.last_map.as_ref() != Some(&q.map);
        let mut cut = std::mem::take(&mut self.cut) || q.discontinuity;
        if self.last_map.is_some() && new_map {
            cut = true;
        }
        match &q.map {
            Some(key) => {
                let Some((_, init)) = self.init.as_ref().filter(|(k, _)| k == key) else {
                    return self.fail(PullError::Segment(what, SegmentError::NoTracks));
                };
                if let Err(e) = init.frames(&body, &mut frames) {
                    return self.fail(PullError::Segment(what, e));
                }
                if new_map && !frames.is_empty() {
                    let dts = frames.iter().map(|f| f.dts).min().unwrap_or(0);
                    let mut c = init.config_frames(dts);
                    c.append(&mut frames);
                    frames = c;
                }
            }
            None => {
                if cut || new_map {
                    self.ts.reset();
                }
                if let Err(e) = self.ts.segment(&body, &mut frames) {
                    return self.fail(PullError::Segment(what, e));
                }
            }
        }
        self.last_map = Some(q.map);
        if frames.len() > self.cfg.max_frames {
            return self.fail(PullError::TooManyFrames(what));
        }
        if !frames.iter().any(|f| !f.is_config()) {
            self.empty += 1;
            if self.empty >= MAX_EMPTY {
                return self.fail(PullError::Empty);
            }
            return Ok(());
        }
        self.empty = 0;
        let jump = (3 * self.target_us).max(10_000_000);
        self.timeline.map(&mut frames, cut, jump);
        self.ready.extend(frames);
        Ok(())
    }

    /// The next frame whose time has come (all of them at once without
    /// pacing).
    pub fn poll_frame(&mut self, now_us: i64) -> Option<Frame> {
        let f = self.ready.front()?;
        if self.cfg.pace {
            let (wall, at) = *self.anchor.get_or_insert((now_us, f.dts));
            let due = wall.saturating_add(f.dts - at);
            let wait_max = (2 * self.target_us).max(5_000_000);
            if due > now_us && due - now_us <= wait_max {
                return None;
            }
            // Late (a slow fetch, a queue that ran dry), or a jump ahead
            // within a segment: the clock moves to this frame.
            if now_us - due > LATE_US || due - now_us > wait_max {
                self.anchor = Some((now_us, f.dts));
            }
        }
        self.media_us = now_us;
        self.stats.frames += 1;
        self.ready.pop_front()
    }

    /// When the caller should call [`Puller::poll_frame`] again, if a
    /// frame waits.
    pub fn next_frame_us(&self) -> Option<i64> {
        let f = self.ready.front()?;
        Some(match self.anchor {
            Some((wall, at)) if self.cfg.pace => wall.saturating_add(f.dts - at),
            _ => i64::MIN,
        })
    }

    /// The clocks: a request unanswered, a playlist that stopped, no
    /// media, the end of a finished playlist. Call it every few hundred
    /// milliseconds or less.
    pub fn tick(&mut self, now_us: i64) -> Result<(), PullError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let stall = self.cfg.stall_us;
        if let Some(f) = &self.in_flight {
            if now_us - f.started_us >= stall {
                let what = f.req.what;
                return self.fail(PullError::Timeout(what));
            }
        }
        if !self.started() {
            return Ok(());
        }
        if self.endlist {
            if self.queue.is_empty() && self.in_flight.is_none() && self.ready.is_empty() {
                return self.fail(PullError::Ended);
            }
            return Ok(());
        }
        let still = stall.max(3 * self.target_us);
        if now_us - self.moved_us >= still {
            return self.fail(PullError::Stalled(now_us - self.moved_us));
        }
        let budget = (self.cfg.live_edge as i64 + 1) * self.target_us;
        if now_us - self.media_us >= still + budget {
            return self.fail(PullError::NoMedia(now_us - self.media_us));
        }
        Ok(())
    }
}

/// A playlist's byte range as first and last byte (an offset left out is
/// 0, as for `EXT-X-MAP`).
fn range(r: ByteRange) -> Option<(u64, u64)> {
    let r = ByteRange {
        offset: Some(r.offset.unwrap_or(0)),
        ..r
    };
    match r.http() {
        Some((a, Some(b))) => Some((a, b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
